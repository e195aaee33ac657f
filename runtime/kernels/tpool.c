/*
 * tpool.c - the rank's thread pool, see tpool.h.
 *
 * One loop at a time. Its chunks are claimed through one 64-bit atomic: the loop's generation in
 * the high half, the next chunk in the low half, so a worker that still holds the previous loop's
 * generation can never claim a chunk of the next one (its compare-and-swap fails). The caller
 * counts finished chunks and returns when all n are done; a worker that wakes late finds nothing
 * left to claim and goes back to waiting.
 *
 * Waiting: workers spin on the generation word for a while (SPIN iterations of a pause, tens of
 * microseconds: a training step's kernels follow each other closely), then sleep on it with
 * FUTEX_WAIT; the caller wakes sleepers (FUTEX_WAKE) only when some are asleep. Linux only, like
 * the rest of dtrain's CPU-affinity handling.
 */
#include "tpool.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"
#include "poll.h"

#ifndef DT_TPOOL_SPIN
#define DT_TPOOL_SPIN 20000 /* pause iterations before a worker sleeps (about 50-100 us) */
#endif

static struct {
    int threads;
    pthread_t tid[DT_TPOOL_MAX];
    _Atomic uint32_t gen;      /* the loop's generation: the futex word */
    _Atomic uint64_t next;     /* gen << 32 | next chunk to claim */
    _Atomic int finished;      /* chunks of the current loop done */
    _Atomic int sleepers;      /* workers in FUTEX_WAIT (or about to be) */
    _Atomic int quit;          /* 1: workers exit */
    _Atomic(dt_tpool_fn *) fn; /* the current loop (atomics: a stale worker may read them) */
    _Atomic(void *) arg;
    _Atomic int n;
} P = {.threads = 1};

static _Thread_local int in_pool; /* 1 inside a chunk or on a worker: nested loops run serially */

static void futex_wait(_Atomic uint32_t *w, uint32_t v)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
}

static void futex_wake_all(_Atomic uint32_t *w)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Claims and runs chunks of generation g until none is left; returns how many it ran. */
static int run_chunks(uint32_t g, int thread, int poll)
{
    dt_tpool_fn *fn = atomic_load_explicit(&P.fn, memory_order_acquire);
    void *arg = atomic_load_explicit(&P.arg, memory_order_acquire);
    const int n = atomic_load_explicit(&P.n, memory_order_acquire);
    int ran = 0;
    uint64_t v = atomic_load_explicit(&P.next, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(v >> 32) != g || (int)(uint32_t)v >= n)
            return ran;
        if (!atomic_compare_exchange_weak_explicit(&P.next, &v, v + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        fn(arg, (int)(uint32_t)v, thread);
        atomic_fetch_add_explicit(&P.finished, 1, memory_order_release);
        ran++;
        if (poll)
            dt_poll();
        v = atomic_load_explicit(&P.next, memory_order_acquire);
    }
}

static void *worker(void *p)
{
    const int me = (int)(intptr_t)p;
    in_pool = 1;
    uint32_t seen = atomic_load_explicit(&P.gen, memory_order_acquire);
    for (;;) {
        uint32_t g;
        int spin = 0;
        while ((g = atomic_load_explicit(&P.gen, memory_order_acquire)) == seen &&
               !atomic_load_explicit(&P.quit, memory_order_acquire)) {
            if (spin++ < DT_TPOOL_SPIN) {
                cpu_relax();
                continue;
            }
            atomic_fetch_add(&P.sleepers, 1);
            /* returns at once if gen moved on after the load above: no lost wake-up */
            if (atomic_load(&P.gen) == seen && !atomic_load(&P.quit))
                futex_wait(&P.gen, seen);
            atomic_fetch_sub(&P.sleepers, 1);
        }
        if (atomic_load_explicit(&P.quit, memory_order_acquire))
            return NULL;
        seen = g;
        run_chunks(g, me, 0);
    }
}

void dt_tpool_free(void)
{
    if (P.threads <= 1)
        return;
    atomic_store(&P.quit, 1);
    atomic_fetch_add(&P.gen, 1);
    futex_wake_all(&P.gen);
    for (int i = 1; i < P.threads; i++)
        DT_ASSERT(pthread_join(P.tid[i], NULL) == 0);
    atomic_store(&P.quit, 0);
    P.threads = 1;
}

void dt_tpool_init(int threads)
{
    DT_ASSERT(threads >= 1 && threads <= DT_TPOOL_MAX);
    DT_ASSERT(!in_pool);
    dt_tpool_free();
    for (int i = 1; i < threads; i++)
        DT_ASSERT(pthread_create(&P.tid[i], NULL, worker, (void *)(intptr_t)i) == 0);
    P.threads = threads;
}

int dt_tpool_threads(void) { return P.threads; }

void dt_tpool_run(int n, dt_tpool_fn *fn, void *arg)
{
    if (n <= 0)
        return;
    if (P.threads <= 1 || n == 1 || in_pool) {
        for (int c = 0; c < n; c++) {
            fn(arg, c, 0);
            if (!in_pool)
                dt_poll();
        }
        return;
    }
    atomic_store_explicit(&P.fn, fn, memory_order_relaxed);
    atomic_store_explicit(&P.arg, arg, memory_order_relaxed);
    atomic_store_explicit(&P.n, n, memory_order_relaxed);
    atomic_store_explicit(&P.finished, 0, memory_order_relaxed);
    const uint32_t g = atomic_load_explicit(&P.gen, memory_order_relaxed) + 1;
    atomic_store_explicit(&P.next, (uint64_t)g << 32, memory_order_release);
    atomic_store(&P.gen, g); /* seq_cst: ordered before the sleepers load below */
    if (atomic_load(&P.sleepers) > 0)
        futex_wake_all(&P.gen);
    in_pool = 1;
    run_chunks(g, 0, 1);
    in_pool = 0;
    /* the workers' last chunks: keep the progress hook turning while they finish */
    while (atomic_load_explicit(&P.finished, memory_order_acquire) < n) {
        cpu_relax();
        dt_poll();
    }
}

void dt_tpool_range(long n, int chunks, int c, long *lo, long *hi)
{
    DT_ASSERT(chunks >= 1 && c >= 0 && c < chunks && n >= 0);
    const long q = n / chunks, r = n % chunks;
    *lo = c * q + (c < r ? c : r);
    *hi = *lo + q + (c < r ? 1 : 0);
}

typedef struct {
    dt_tpool_range_fn *fn;
    void *arg;
    long n, step;
} range_job;

static void range_chunk(void *arg, int c, int thread)
{
    (void)thread;
    const range_job *j = arg;
    const long lo = c * j->step;
    j->fn(j->arg, lo, j->n - lo < j->step ? j->n : lo + j->step);
}

void dt_tpool_for(long n, long grain, long align, dt_tpool_range_fn *fn, void *arg)
{
    DT_ASSERT(n >= 0 && grain >= 1 && align >= 1);
    long parts = n / grain;
    parts = parts > P.threads ? P.threads : parts;
    if (parts <= 1 || in_pool) {
        if (n > 0)
            fn(arg, 0, n);
        return;
    }
    range_job j = {fn, arg, n, ((n + parts - 1) / parts + align - 1) / align * align};
    dt_tpool_run((int)((n + j.step - 1) / j.step), range_chunk, &j);
}
