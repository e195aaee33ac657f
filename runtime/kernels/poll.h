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

#include <stddef.h>

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

/* The gradient hook: a kernel that computes a layer's weight gradient in parts (row panels of
 * dW, last rows first) announces each finished part, so that its allreduce bucket can start
 * before the layer ends (the mlp's first layer holds 75 % of its parameters and is the last
 * one backward computes). dt_grad_done(from) says: the flat gradient buffer from `from` to its
 * end is final. dt_grad_panel() is how many floats a part should hold (0: no hook on this
 * thread, compute the gradient whole). Installed by the trainer on its main thread. */
typedef void (*dt_grad_done_fn)(const float *from);

extern dt_grad_done_fn dt_grad_done_hook;   /* NULL: none */
extern size_t dt_grad_done_panel;           /* floats per part */
extern _Thread_local int dt_grad_done_here; /* 1 on the thread that installed the hook */

/* Installs fn with the panel size (NULL removes it) on the calling thread. */
void dt_grad_done_set(dt_grad_done_fn fn, size_t panel);

static inline size_t dt_grad_panel(void)
{
    return dt_grad_done_here && dt_grad_done_hook ? dt_grad_done_panel : 0;
}

static inline void dt_grad_done(const float *from)
{
    if (dt_grad_done_here && dt_grad_done_hook)
        dt_grad_done_hook(from);
}

#endif
