/*
 * dist_shm.h - the gradient allreduce through MPI-3 shared memory (train.allreduce = shm): the
 * ranks of one node sum their gradient buckets in a window that every rank maps
 * (MPI_Win_allocate_shared), with flags instead of messages. The back end of dist.h's
 * dt_grad_sync when s->shm is set; docs/internals.md describes the protocol.
 *
 * Each rank's segment of the window holds its flags and its gradient itself (n floats: the
 * trainer's net->grad points there, dt_shm_grad), so nothing is copied in or out.
 * A bucket k of step `gen` (the buckets follow the layers, the same on every rank):
 *   1. start: the rank's backward has written g[lo, hi) in its segment; it sets
 *      ready[k] = gen (release);
 *   2. reduce: once every rank's ready[k] == gen (acquire), rank r sums its share r of the
 *      bucket (a 1/world slice) over the ranks' segments in rank order, times 1/world (the MPI
 *      path's arithmetic: at 2 ranks a + b == b + a, so the same bits), writes the mean into
 *      EVERY rank's segment (share r of each is written by rank r alone), and sets
 *      done[k] = gen;
 *   3. collect: once every rank's done[k] == gen, the bucket's mean is in this rank's segment.
 * Once a rank has collected all of a step's buckets, no other rank touches its segment until
 * that rank publishes a bucket of the next step: its next backward may write at once (no flag
 * or barrier between steps).
 */
#ifndef DT_DIST_SHM_H
#define DT_DIST_SHM_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dt_shm dt_shm;

/* Collective over comm (2+ ranks): the window for a gradient of n floats and up to maxb buckets
 * a step, when every rank of comm is on one node, its segment's gradient a copy of g[0, n).
 * Returns the state; NULL with the reason in why (the same on every rank) when the ranks span
 * several nodes or the window could not be allocated. */
dt_shm *dt_shm_open(MPI_Comm comm, const float *g, size_t n, int maxb, char *why, size_t why_size);
/* Collective: unmaps the window. NULL: no-op. */
void dt_shm_close(dt_shm *sh);
/* Before a step's buckets: its number (1, 2, ...: the same on every rank). */
void dt_shm_begin(dt_shm *sh, uint64_t gen);
/* This rank's gradient in the window (n floats): where backward writes, averaged in place. */
float *dt_shm_grad(const dt_shm *sh);
/* Bucket k (the step's k-th) is g[lo, hi) of dt_shm_grad, final for this step: published.
 * Returns k. */
int dt_shm_start(dt_shm *sh, size_t lo, size_t hi);
/* Nonblocking: sums this rank's share of every bucket all ranks have published (in order), and
 * collects every bucket all ranks have summed. Returns the buckets collected (0, 1, ...: those
 * below it are averaged in dt_shm_grad). */
int dt_shm_progress(dt_shm *sh);
/* 1 when dt_shm_progress can do something now (a predicate to wait on; sh as void *). */
int dt_shm_more(void *sh);
/* The step is over on this rank: every bucket collected (asserted). */
void dt_shm_end(dt_shm *sh);

#endif
