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

/* MPI_Init_thread asking for MPI_THREAD_FUNNELED (only the main thread calls MPI; the thread pool's
 * workers and the watchdog's backstop thread never do, except the backstop's MPI_Abort); sets
 * dt_rank. Returns the world size. */
int dt_dist_init(int *argc, char ***argv);
/* The rank an MPI launcher (mpirun, or srun with PMI or PMIx) gave this process, from its
 * environment, before MPI_Init; -1: started without one (a singleton). */
int dt_dist_launcher_rank(void);
void dt_dist_finalize(void);
/* 1 when dt_dist_init chose Open MPI's ring algorithm for the nonblocking allreduce of the
 * gradient buckets (2 ranks, coll_libnbc_iallreduce_algorithm not set by the user): dist.c says
 * why. */
extern int dt_dist_tuned_iallreduce;
/* NULL when MPI provided MPI_THREAD_FUNNELED or more; otherwise one line saying what it provided
 * and what dtrain does then (no progress hook: buckets progress between layers only), for the
 * run header. */
const char *dt_dist_thread_note(void);
/* 1 when MPI provided at least MPI_THREAD_FUNNELED. */
int dt_dist_funneled(void);

/* Agreement after a fallible phase: each rank passes its own rc. If any rank failed, the lowest
 * failing rank prints its recorded message ("dtrain: error: ...", prefixed with the rank when
 * world > 1) and every rank gets DT_ERR; otherwise DT_OK. A failure is printed once: after it,
 * every rank marks it reported (dt_err_mark_reported), and an outer agreement over the same
 * failure (no new dt_err since) prints nothing. Never hangs: every rank must call it. */
int dt_dist_agree(int rc, MPI_Comm comm);

/* g[0..n) <- mean over ranks of g (MPI_Allreduce sum, then * 1/world). Blocking and unwatched:
 * callers in the training path wait behind dt_dist_arrive and inside dt_dist_block_begin/end. */
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
    /* per request of the step (maxreq): when it started and completed (dt_now), its floats */
    double *t_start, *t_done;
    size_t *len;
    size_t *off;  /* (maxreq) its first float */
    char *fin;    /* (maxreq) 1 once averaged and handed to on_done */
    int *idx;     /* (maxreq) MPI_Testsome's scratch */
    int ndone;    /* requests of the step seen complete */
    double wait0; /* when finish began waiting */
    /* the last step: seconds finish waited (the exposed communication) */
    double exposed_s;
    /* NULL, or called by finish for each averaged range [lo, hi) as soon as it is final (a
     * bucket, in the order they complete; the ranges cover [0, n) once): the trainer's
     * optimizer runs on one bucket while the later ones are still in flight */
    void (*on_done)(void *ctx, size_t lo, size_t hi);
    void *on_done_ctx;
    /* train.allreduce = shm (dt_grad_sync_path): the buckets are summed through a shared-memory
     * window (dist_shm.h) instead of MPI_Iallreduce; NULL: the MPI path */
    struct dt_shm *shm; /* dist_shm.h */
    float *g_own;       /* with shm: the g given to init (g is the window's; restored by free) */
    uint64_t gen;       /* steps begun (the shm path's flags carry it, so steps never mix) */
    char path[96];      /* the path taken, for the run header: "mpi", "shm (2 ranks on one node)" */
} dt_grad_sync;
void dt_grad_sync_init(dt_grad_sync *s, float *g, size_t n, size_t cap, MPI_Comm comm);

/* train.allreduce (the CHOICE order) */
enum { DT_ALLREDUCE_AUTO, DT_ALLREDUCE_MPI, DT_ALLREDUCE_SHM };
/* Chooses how s averages (collective over s->comm; after dt_grad_sync_init): DT_ALLREDUCE_MPI,
 * MPI_Iallreduce (and MPI_Allreduce for one bucket); DT_ALLREDUCE_SHM, through an MPI-3
 * shared-memory window on every rank's node, which needs every rank on one node (an error
 * naming train.allreduce and why otherwise, DT_ERR on the ranks that found it: the caller
 * agrees); DT_ALLREDUCE_AUTO, shm where it gives the MPI path's bits (2 ranks, on one node,
 * window allocated), else mpi. At 1 rank there is nothing to reduce: path "none". s->path names
 * the choice. With shm, s->g becomes this rank's gradient in the window (a copy of the buffer
 * given to init): the caller's backward must write there, so it points its gradient at s->g;
 * dt_grad_sync_free copies it back into the caller's buffer and sets s->g to that again.
 * Returns DT_OK or DT_ERR. */
int dt_grad_sync_path(dt_grad_sync *s, int mode);
void dt_grad_sync_free(dt_grad_sync *s);
/* Before backward. */
void dt_grad_sync_begin(dt_grad_sync *s);
/* During backward: g[off, n) is final. */
void dt_grad_sync_ready(dt_grad_sync *s, size_t off);
/* After backward: every rank's g is the mean over ranks, each range handed to s->on_done (when
 * set) as soon as it is averaged. s->exposed_s is the time it waited on MPI (the whole allreduce
 * when nothing was started during backward; not the time on_done ran); with the timeline on,
 * each bucket's allreduce, from start to completion, the wait and each on_done are recorded
 * (timeline.h). */
void dt_grad_sync_finish(dt_grad_sync *s);
/* The gradient hook (kernels/poll.h dt_grad_done: the trainer installs it with dt_grad_done_set
 * on its main thread): a kernel finished g[from - g, n) within a layer (a panel of the weight
 * gradient); starts its bucket when it holds one, as dt_grad_sync_ready. Ignored while no step's
 * buckets are open or when from is outside the open step's g. */
void dt_grad_sync_done_at(const float *from);
/* The progress hook (kernels/poll.h: the trainer installs it with dt_poll_set on its main
 * thread): while a step's buckets are open, tests them (MPI_Testsome, recording completions) at
 * most every 20 us; otherwise, or before that, returns after one clock read (tens of ns). */
void dt_grad_sync_poll(void);

/* Waits until done(ctx) returns nonzero: first a short spin with a pause, then yielding the core
 * between calls, as the watched waits (below) do; with the watchdog on, a wait past its limit
 * ends the job naming this rank's step and `phase` and the ranks that did not answer, as for a
 * watched MPI wait. For waits on flags in shared memory (dist_shm.c), which MPI cannot see. */
void dt_dist_wait_until(int (*done)(void *ctx), void *ctx, int phase);

/* Broadcast n floats from rank 0 (watched, DT_PHASE_BCAST). */
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
    DT_PHASE_START,      /* before the first step */
    DT_PHASE_CONTROL,    /* the per-step control message */
    DT_PHASE_GRADIENTS,  /* the allreduce of gradients */
    DT_PHASE_AGREE,      /* an error agreement (dt_dist_agree) */
    DT_PHASE_EPOCH,      /* the end-of-epoch sums and evaluation */
    DT_PHASE_CHECKPOINT, /* a checkpoint's collective part */
    DT_PHASE_BATCHNORM,  /* SyncBatchNorm's (or a BN refresh's) statistics */
    DT_PHASE_LOG,        /* a metrics-log row's sums */
    DT_PHASE_BCAST       /* a broadcast of parameters or buffers from rank 0 */
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

/* ---- watched collectives ----
 * Every collective of the training path either waits in a watched wait (these: nonblocking
 * MPI calls, so a rank that never arrives is named) or, for the few that stay blocking (the
 * one-bucket gradient allreduce, whose summation order is MPI_Allreduce's), runs behind a watched
 * barrier (dt_dist_arrive) and inside dt_dist_block_begin/end, where the backstop thread ends the
 * job if it never returns. With the watchdog off they are plain MPI waits. */

/* x[0..n) <- the sum over ranks, added in rank order 0, 1, ..., W-1 on every rank (an
 * MPI_Iallgather, then local sums): the same bits on every rank, whatever MPI's algorithm; at
 * 1 and 2 ranks the same bits as MPI_Allreduce. For small n (statistics, counters). */
void dt_dist_sum(double *x, int n, dt_phase phase, MPI_Comm comm);
/* x[0..n) <- the maximum over ranks (exact in any order). */
void dt_dist_max(double *x, int n, dt_phase phase, MPI_Comm comm);
/* Broadcast `bytes` bytes from rank 0. */
void dt_dist_bcast_bytes(void *p, size_t bytes, dt_phase phase, MPI_Comm comm);
/* Rank 0's out[r * bytes ..] <- rank r's in[0 .. bytes) (out unused elsewhere). */
void dt_dist_gather_bytes(const void *in, void *out, size_t bytes, dt_phase phase, MPI_Comm comm);
/* Around a blocking collective every rank has entered (after dt_dist_arrive): the backstop
 * thread ends the job, naming the phase, when it does not return within the watchdog's limit. */
void dt_dist_block_begin(dt_phase phase);
void dt_dist_block_end(void);

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
