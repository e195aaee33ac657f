/*
 * dist_shm.h - the gradient allreduce through MPI-3 shared memory (train.allreduce = shm): the
 * ranks of one node sum their gradient buckets in a window that every rank maps
 * (MPI_Win_allocate_shared), with flags instead of messages. The back end of dist.h's
 * dt_grad_sync when s->shm is set; docs/internals.md describes the protocol.
 *
 * Each rank's segment of the window holds its flags and a copy of its gradient (n floats).
 * A bucket k of step `gen` (the buckets follow the layers, the same on every rank):
 *   1. start: the rank copies its g[lo, hi) into its segment, then sets ready[k] = gen (release);
 *   2. reduce: once every rank's ready[k] == gen (acquire), rank r sums its share r of the
 *      bucket (a 1/world slice) over the ranks' segments in rank order, times 1/world (the MPI
 *      path's arithmetic: at 2 ranks a + b == b + a, so the same bits), writes it into its own
 *      segment and its g, and sets done[k] = gen;
 *   3. collect: once every rank's done[k] == gen, each rank copies the other shares into its g.
 * After the step a rank sets out = gen; before it writes its segment in the next step it waits
 * until every rank's out == gen - 1 (all have read it). Flags only: no barrier per step.
 */
#ifndef DT_DIST_SHM_H
#define DT_DIST_SHM_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dt_shm dt_shm;

/* Collective over comm (2+ ranks): the window for g[0, n) and up to maxb buckets a step, when
 * every rank of comm is on one node. Returns the state; NULL with the reason in why (the same
 * on every rank) when the ranks span several nodes or the window could not be allocated. g is
 * the rank's gradient, averaged in place. */
dt_shm *dt_shm_open(MPI_Comm comm, float *g, size_t n, int maxb, char *why, size_t why_size);
/* Collective: unmaps the window. NULL: no-op. */
void dt_shm_close(dt_shm *sh);
/* Before a step's buckets: its number (1, 2, ...: the same on every rank). */
void dt_shm_begin(dt_shm *sh, uint64_t gen);
/* Whether this rank may write its segment for the step begun: every rank has collected the
 * previous one (a predicate for dt_dist_wait_until; sh as void *). */
int dt_shm_clear(void *sh);
/* Bucket k (the step's k-th) is g[lo, hi): copied into this rank's segment and published.
 * Needs dt_shm_clear. Returns k. */
int dt_shm_start(dt_shm *sh, size_t lo, size_t hi);
/* Nonblocking: sums this rank's share of every bucket all ranks have published (in order), and
 * collects every bucket all ranks have summed. Returns the buckets collected (0, 1, ...: those
 * below it are averaged in g). */
int dt_shm_progress(dt_shm *sh);
/* 1 when dt_shm_progress can do something now (a predicate to wait on; sh as void *). */
int dt_shm_more(void *sh);
/* The step is over on this rank: every bucket collected (asserted). */
void dt_shm_end(dt_shm *sh);

#endif
