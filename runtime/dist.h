/*
 * dist.h - the MPI side of data parallelism: start-up, agreement on errors, gradient averaging
 * (bucketed, overlapped with backward), parameter broadcast, the per-step control message from
 * rank 0, the watchdog (dist.timeout) and pre-emption signal handlers, and a replica-consistency
 * check.
 *
 * Every function that takes a `comm` is collective over it: all ranks call it in the same order.
 * The others (signals, watchdog step and stop, fingerprint) are local to the calling rank.
 */
#ifndef DT_DIST_H
#define DT_DIST_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

/* MPI_Init; sets dt_rank. Returns the world size. */
int dt_dist_init(int *argc, char ***argv);
void dt_dist_finalize(void);

/* Agreement after a fallible phase: each rank passes its own rc. If any rank failed, the lowest
 * failing rank prints its recorded message ("dtrain: error: ...", prefixed with the rank when
 * world > 1) and every rank gets DT_ERR; otherwise DT_OK. A failure is printed once: after it,
 * every rank marks it reported (dt_err_mark_reported), and an outer agreement over the same
 * failure (no new dt_err since) prints nothing. Never hangs: every rank must call it. */
int dt_dist_agree(int rc, MPI_Comm comm);

/* g[0..n) <- mean over ranks of g (MPI_Allreduce sum, then * 1/world). */
void dt_dist_average(float *g, size_t n, MPI_Comm comm);

/* Bucketed gradient averaging overlapped with backward (PyTorch DDP's buckets). Backward finishes
 * layers last to first, so the finished gradients are always a tail [off, n) of the flat buffer:
 * as soon as the unreduced part of that tail holds at least `cap` floats, its MPI_Iallreduce
 * starts, while backward goes on with earlier layers (and each later call progresses the
 * reductions in flight with MPI_Testall). finish starts the rest, waits, and divides by the world
 * size. With cap = 0, one rank, or a model smaller than one bucket, finish does what
 * dt_dist_average does (one blocking MPI_Allreduce): the same bits as before buckets existed.
 * Every rank must make the same calls (the buckets follow the layers, equal on every rank). */
typedef struct dt_grad_sync {
    MPI_Comm comm;
    int world;
    float *g;
    size_t n, cap;  /* gradient floats; bucket size in floats (0: no buckets) */
    size_t started; /* [started, n) has been handed to MPI this step */
    int nreq, maxreq;
    MPI_Request *req;
} dt_grad_sync;
void dt_grad_sync_init(dt_grad_sync *s, float *g, size_t n, size_t cap, MPI_Comm comm);
void dt_grad_sync_free(dt_grad_sync *s);
/* Before backward. */
void dt_grad_sync_begin(dt_grad_sync *s);
/* During backward: g[off, n) is final. */
void dt_grad_sync_ready(dt_grad_sync *s, size_t off);
/* After backward: every rank's g is the mean over ranks. */
void dt_grad_sync_finish(dt_grad_sync *s);

/* Broadcast n floats from rank 0. */
void dt_dist_bcast(float *p, size_t n, MPI_Comm comm);

/* What rank 0 decides each step and sends to every rank, plus what any rank raises. */
typedef struct dt_ctrl {
    double lr;
    double momentum;
    int32_t flags;  /* DT_CTRL_* */
    int32_t signal; /* the pre-emption signal one of the ranks received (0: none) */
} dt_ctrl;
enum { DT_CTRL_STOP = 1, DT_CTRL_CHECKPOINT = 2 };

/* The per-step control message: every rank gets rank 0's lr, momentum and flags, OR'ed with
 * DT_CTRL_STOP when ANY rank has a pending signal (a Slurm pre-emption signal may reach only
 * some ranks). One MPI_Iallreduce (max), waited on under the watchdog (DT_PHASE_CONTROL): no
 * more latency than a broadcast. Collective. */
void dt_dist_ctrl(dt_ctrl *c, MPI_Comm comm);

/* ---- the watchdog (dist.timeout): no rank waits forever ----
 * Where a rank is: the step it works on and the phase of the collective it waits in. */
typedef enum {
    DT_PHASE_START,     /* before the first step */
    DT_PHASE_CONTROL,   /* the per-step control message */
    DT_PHASE_GRADIENTS, /* the allreduce of gradients */
    DT_PHASE_AGREE,     /* an error agreement (dt_dist_agree) */
    DT_PHASE_EPOCH,     /* the end-of-epoch sums and evaluation */
    DT_PHASE_CHECKPOINT /* a checkpoint's collective part */
} dt_phase;

/* Starts watching the waits of this process on `comm` (collective: duplicates comm for the
 * watchdog's own messages). timeout_s <= 0, or one rank, leaves the watchdog off: waits are then
 * plain MPI waits. The limit of a wait is max(timeout_s, 20 x the median time of the last 64
 * steps, once 5 are measured), so a slow model is never taken for a stalled one. A wait that
 * passes the limit tells every rank; every rank that is waiting itself answers with its own step
 * and phase; after a grace of 2 s the lowest answering rank prints ONE line naming the ranks
 * that did not answer, the step and phase they have not reached and where every rank was last
 * seen together, and calls MPI_Abort(comm, 1). */
void dt_dist_watchdog_start(double timeout_s, MPI_Comm comm);
/* Stops watching (collective over the comm given to start). No-op when not started. */
void dt_dist_watchdog_stop(void);
/* This rank begins training step `step` (also times the steps for the median). */
void dt_dist_watchdog_step(int64_t step);
/* A watched barrier: every rank has reached `phase` of the current step. Placed before a
 * blocking reduction (kept blocking so that its summation order, and the results, stay the same)
 * so that a rank that never arrives is named. No-op when the watchdog is off. */
void dt_dist_arrive(dt_phase phase, MPI_Comm comm);

/* Installs SIGTERM and SIGUSR1 handlers that only record the signal (idempotent: a second
 * signal changes nothing), so the job can checkpoint at the next step boundary and exit 0. */
void dt_dist_catch_signals(void);
/* The signal recorded on this rank (0: none). */
int dt_dist_signal(void);

/* Order-independent fingerprint of n floats' bit patterns. */
uint64_t dt_dist_fingerprint(const float *p, size_t n);
/* 1 when every rank holds the same fingerprint. */
int dt_dist_same(uint64_t fp, MPI_Comm comm);

#endif
