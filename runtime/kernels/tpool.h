/*
 * tpool.h - the rank's thread pool (issue 13): `threads` workers including the caller, created once
 * (dt_tpool_init) before the net is built, reused by every parallel loop of the kernel layer.
 *
 * A parallel loop is dt_tpool_run(n, fn, arg): fn(arg, chunk, thread) for every chunk in [0, n),
 * each exactly once, on any of the pool's threads (thread in [0, dt_tpool_threads()): an index for
 * per-thread scratch; the caller is thread 0). Chunks are handed out dynamically, so the chunking
 * itself must carry every decision that affects results: a kernel splits its work into chunks
 * whose boundaries do not depend on the thread count (or the ISA, where results must agree across
 * ISAs), writes each chunk's partial reduction to a slot of its own, and sums the slots in chunk
 * order afterwards. That is what keeps training bitwise the same whatever `threads` is.
 *
 * No allocation and no thread creation inside dt_tpool_run. Workers spin briefly for the next loop
 * (a step's kernels follow each other within microseconds), then sleep on a futex, so an idle rank
 * does not burn cores. The caller calls dt_poll() (poll.h) between the chunks it runs.
 * Not reentrant: a dt_tpool_run from inside a chunk runs its chunks serially on that thread.
 *
 * DT_POOL_STATS=1 (read by dt_tpool_init): per call site of dt_tpool_run / dt_tpool_for, the calls,
 * chunks, the caller's wall time, each thread's chunk CPU time (CLOCK_THREAD_CPUTIME_ID: other load
 * on the machine does not count) and the caller's CPU time between regions, printed to stderr at
 * exit with the serial fraction (caller CPU outside regions that split, over its CPU from the
 * first region to the end of the last). At 1 thread the kernels then split as for 2 threads
 * (dt_tpool_parts), run the parts in order on the caller, and a list schedule of each call's parts
 * on 2 threads predicts the 2-thread time; sites are offsets for `addr2line -f -e dtrain`
 * (bench/pool_stats.sh resolves them). Each chunk pays two clock reads (about 1 us on a VM).
 */
#ifndef DT_KERNELS_TPOOL_H
#define DT_KERNELS_TPOOL_H

#include <sched.h> /* cpu_set_t (_GNU_SOURCE) */

/* The most threads a pool may have (config bound of `threads`). */
#define DT_TPOOL_MAX 1024

typedef void dt_tpool_fn(void *arg, int chunk, int thread);

/* Makes the pool `threads` threads (the caller and threads - 1 workers), stopping the previous
 * workers first. 1 (the default before any call) runs every loop on the caller. threads in
 * [1, DT_TPOOL_MAX] (asserted); a failed pthread_create is fatal (DT_ASSERT). */
void dt_tpool_init(int threads);
/* Stops the workers (the pool is then 1 thread). No-op when there are none. */
void dt_tpool_free(void);
/* The pool's thread count (1 before dt_tpool_init). */
int dt_tpool_threads(void);
/* Binds pool thread i (0: the caller) to CPU cpu[i], for i < dt_tpool_threads() (Linux
 * sched_setaffinity / pthread_setaffinity_np). Returns 0, or -1 with errno when one failed: the
 * threads bound before it then get `all` back (all or none). Why: threads.h, `bind`. */
int dt_tpool_bind(const int *cpu, const cpu_set_t *all);
/* Places pool thread i (0: the caller) on CPU cpu[i] without binding it: each thread moves there
 * itself (sched_setaffinity to that CPU alone) and takes `all` back at once; the OS leaves a
 * running thread where it is unless it needs that CPU, so the threads run spread over their CPUs
 * and may still move. The caller moves now, a worker as soon as it runs (it spins; a sleeping one
 * is woken for it), and a worker moves back each time it wakes from FUTEX_WAIT, and the caller
 * each time it wakes sleeping workers (a wake-up may put the wakee on the waker's CPU). Until the
 * next dt_tpool_init. A failed move leaves that thread where it is. Why: threads.h, `bind`. */
void dt_tpool_place(const int *cpu, const cpu_set_t *all);
/* How many threads dt_tpool_place placed since the last dt_tpool_init (0: none), their CPUs into
 * cpu (when not NULL, dt_tpool_threads() entries). */
int dt_tpool_placed(int *cpu);
/* The workers that have not yet moved to their CPU since the last dt_tpool_place (tests). */
int dt_tpool_placing(void);
/* How many threads dt_tpool_bind bound since the last dt_tpool_init (0: none), their CPUs into
 * cpu (when not NULL, dt_tpool_threads() entries). */
int dt_tpool_bound(int *cpu);
/* How many parts a kernel splits a loop without reductions into: dt_tpool_threads(), but 2 at
 * 1 thread under DT_POOL_STATS=1, so that the statistics see the split 2 threads would get (such a
 * split must not change results: it is the same bits at any part count). */
int dt_tpool_parts(void);
/* Runs fn(arg, c, thread) for c in [0, n) over the pool and returns when every call returned.
 * n <= 0 does nothing. */
void dt_tpool_run(int n, dt_tpool_fn *fn, void *arg);

/* For loops whose every element is computed alone (no sum across elements): fn(arg, lo, hi) over
 * parts of [0, n) that cover it exactly, each part a multiple of `align` elements but the last,
 * about n / threads long, none shorter than grain (n < 2 grain: one call on the caller). The
 * parts may depend on the thread count, so a loop that reduces must not use this. */
typedef void dt_tpool_range_fn(void *arg, long lo, long hi);
void dt_tpool_for(long n, long grain, long align, dt_tpool_range_fn *fn, void *arg);

/* [lo, hi) of chunk c of `chunks` equal parts of [0, n) (the first n % chunks one longer). */
void dt_tpool_range(long n, int chunks, int c, long *lo, long *hi);

#endif
