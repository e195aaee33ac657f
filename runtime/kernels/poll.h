/*
 * poll.h - the progress hook: a call the kernels make between blocks of work, so that the
 * distributed layer can progress open nonblocking allreduces while backward computes (Open MPI
 * has no progress thread; issue 13).
 *
 * The hook runs only on the thread that installed it (the rank's main thread, which is the only
 * one that calls MPI: MPI_THREAD_FUNNELED); on pool workers dt_poll() is a thread-local load and
 * a branch. Kernels call it every few tens of microseconds of work (between GEMM panels, blocks
 * of batch lanes, chunks of a parallel loop), never inside an inner loop.
 */
#ifndef DT_KERNELS_POLL_H
#define DT_KERNELS_POLL_H

typedef void (*dt_poll_fn)(void);

extern dt_poll_fn dt_poll_hook;        /* NULL: none */
extern _Thread_local int dt_poll_here; /* 1 on the thread that installed the hook */

/* Installs fn (NULL removes it) and makes the calling thread the one that runs it. */
void dt_poll_set(dt_poll_fn fn);

static inline void dt_poll(void)
{
    if (dt_poll_here && dt_poll_hook)
        dt_poll_hook();
}

#endif
