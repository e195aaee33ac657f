/*
 * tpool.c - the rank's thread pool, see tpool.h.
 *
 * One loop at a time. Each thread owns a contiguous range of the loop's chunks, the same range for
 * the same n in every loop: thread t starts at chunk t * n / T, so in a training step the images
 * (or panels, or parameters) a thread handles in one layer are those it handled in the layer
 * before and in the step before, and their data stays in that core's caches. With chunks claimed
 * from one shared counter instead, every chunk landed on whichever thread came first, and each
 * core kept reading what the other had just written: at 2 threads the same kernels took 1.2x to
 * 3x the CPU time of 1 thread (lenet5's convolutions 1.35x, the mlp's SGD 3.1x; DT_POOL_STATS).
 * A thread that finishes its range early takes chunks from the end of the others' ranges (work
 * stealing), so a late or preempted thread does not hold the loop up.
 *
 * A range is one 64-bit atomic per thread, on its own cache line: the loop's generation in the
 * high half, the next chunk and the range's end in 16 bits each; the owner claims from the front
 * and thieves from the back, both by compare-and-swap, so a worker that still holds the previous
 * loop's generation can never claim a chunk of the next one (its compare-and-swap fails). Loops
 * of more than 65535 chunks are split by dt_tpool_run into loops of fewer. The caller counts
 * finished chunks and returns when all n are done; a worker that wakes late finds nothing left to
 * claim and goes back to waiting.
 *
 * Waiting: workers spin on the generation word for a while (SPIN iterations of a pause, tens of
 * microseconds: a training step's kernels follow each other closely), then sleep on it with
 * FUTEX_WAIT; the caller wakes sleepers (FUTEX_WAKE) only when some are asleep. Linux only, like
 * the rest of dtrain's CPU-affinity handling.
 */
#include "tpool.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
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
    _Atomic int finished;      /* chunks of the current loop done */
    _Atomic int sleepers;      /* workers in FUTEX_WAIT (or about to be) */
    _Atomic int quit;          /* 1: workers exit */
    uint32_t gen0;             /* gen when the workers were created */
    _Atomic(dt_tpool_fn *) fn; /* the current loop (atomics: a stale worker may read them) */
    _Atomic(void *) arg;
} P = {.threads = 1};

/* Thread t's range of the current loop: gen << 32 | end << 16 | next (chunks [next, end) left) */
typedef struct {
    _Alignas(64) _Atomic uint64_t v;
} range_slot;
static range_slot R[DT_TPOOL_MAX];
#define RANGE_MAX 65535 /* chunks per loop (16 bits) */

static inline uint64_t range_pack(uint32_t g, unsigned lo, unsigned hi)
{
    return (uint64_t)g << 32 | (uint64_t)hi << 16 | lo;
}

static int bound_cpu[DT_TPOOL_MAX], nbound; /* dt_tpool_bind's CPUs, per thread */
/* dt_tpool_place: each thread's CPU (-1: none) and the mask it gets back once there; a worker
 * (re)places itself when place_gen moved past the one it last placed itself at, and after every
 * sleep in FUTEX_WAIT */
static cpu_set_t place_all;         /* written before place_gen's release increment, read after */
static int place_cpu[DT_TPOOL_MAX]; /* an acquire of it (and never while workers place) */
static _Atomic uint32_t place_gen;
static struct {
    _Alignas(64) _Atomic uint32_t gen;
} placed_at[DT_TPOOL_MAX];

/* the calling thread onto CPU cpu (it moves there now: it is running), then its whole mask back:
 * the OS leaves a running thread where it is unless it needs that CPU */
static void place_self(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (sched_setaffinity(0, sizeof one, &one) == 0)
        sched_setaffinity(0, sizeof place_all, &place_all);
}

static _Thread_local int in_pool; /* 1 inside a chunk or on a worker: nested loops run serially */

/* ---- DT_POOL_STATS=1: per-region accounting, printed at exit (see tpool.h) ---- */

#define STAT_SITES 128
#define STAT_THREADS DT_TPOOL_MAX /* a slot per thread: each thread adds to its own */

typedef struct {
    const void *site;           /* the return address of the dt_tpool_run / dt_tpool_for call */
    long calls, serial, chunks; /* serial: calls that ran on the caller alone (one part) */
    double wall;                /* caller's wall time inside the calls */
    double cpu[STAT_THREADS];   /* chunk CPU time per thread */
    double two;                 /* simulated time on 2 threads (greedy in chunk order) */
    double even;                /* its bound: max(half the CPU time, the longest chunk) */
    double gap;                 /* caller CPU time since the previous region ended: serial work */
    double ccpu;                /* caller CPU time inside the calls (its chunks, its waits) */
} stat_site;

static struct {
    int on;
    stat_site site[STAT_SITES];
    int nsite;
    double wall0, cpu0; /* at the first region: the window starts there */
    double wall1;       /* end of the last region */
    double cpu1;        /* the caller's CPU time then */
    double cbeg;        /* the caller's CPU time at the start of the current region */
    double read;        /* what one clock read costs (calibrated at init) */
} S;

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static stat_site *stat_find(const void *site)
{
    for (int i = 0; i < S.nsite; i++)
        if (S.site[i].site == site)
            return &S.site[i];
    if (S.nsite == STAT_SITES)
        return &S.site[STAT_SITES - 1];
    S.site[S.nsite].site = site;
    return &S.site[S.nsite++];
}

static stat_site *_Atomic cur_site; /* the region being run (one at a time) */
static double two_load[3]; /* the current call's 2-thread simulation; [2]: its longest chunk */

/* One chunk's CPU time, on the thread that ran it (each thread has its own cpu[] slot). */
static void stat_chunk(stat_site *st, int thread, double cpu)
{
    st->cpu[thread] += cpu;
    if (dt_tpool_threads() == 1) { /* the list schedule 2 threads would get, chunks in order */
        int k = two_load[1] < two_load[0];
        two_load[k] += cpu;
        two_load[2] = cpu > two_load[2] ? cpu : two_load[2];
    }
}

/* At exit: one line per call site, then the totals. "split" regions ran in 2 or more parts (at
 * threads = 1: would have, at 2); the rest of the caller's CPU time is serial at any thread count. */
static void stat_print(void)
{
    const double wall = S.wall1 - S.wall0, cpu = S.cpu1 - S.cpu0;
    double split_cpu = 0, split_ccpu = 0, split_wall = 0, two = 0, even = 0;
    long calls = 0, split = 0, chunks = 0;
    fprintf(stderr,
            "pool stats: threads=%d, from the first region to the end of the last: %.2f ms wall, "
            "caller CPU %.2f ms\n",
            dt_tpool_threads(), 1e3 * wall, 1e3 * cpu);
    fprintf(stderr,
            "pool stats: site calls one_part chunks wall_ms cpu_ms/thread... two_ms even_ms gap_ms "
            "(caller CPU before the call since the previous region)\n");
    for (int i = 0; i < S.nsite; i++) {
        const stat_site *st = &S.site[i];
        Dl_info di; /* the offset in its object, for addr2line -f -e OBJECT */
        const char *base = dladdr(st->site, &di) && di.dli_fbase ? di.dli_fbase : NULL;
        fprintf(stderr, "pool site 0x%lx %ld %ld %ld %.3f",
                (unsigned long)((const char *)st->site - base), st->calls, st->serial, st->chunks,
                1e3 * st->wall);
        for (int t = 0; t < STAT_THREADS && t < dt_tpool_threads(); t++)
            fprintf(stderr, " %.3f", 1e3 * st->cpu[t]);
        fprintf(stderr, " %.3f %.3f gap %.3f\n", 1e3 * st->two, 1e3 * st->even, 1e3 * st->gap);
        calls += st->calls;
        chunks += st->chunks;
        split += st->calls - st->serial;
        if (st->calls > st->serial) { /* sites whose calls split (all but a few, or none) */
            split_cpu += st->cpu[0];
            split_ccpu += st->ccpu;
            split_wall += st->wall;
        }
        two += st->two;
        even += st->even;
    }
    /* the stats' own clock reads: 4 per region, 2 per chunk; about 1 per region falls between
     * regions, in the serial time, and 1 per chunk inside the chunk's time */
    const double reads = S.read * (double)(4 * calls + 2 * chunks);
    const double serial = cpu - split_ccpu - S.read * (double)calls;
    const double half_reads = S.read * (double)chunks / 2; /* in the 2-thread schedule's chunks */
    fprintf(stderr,
            "pool stats: %ld regions, %ld split; caller CPU outside split regions %.2f ms = "
            "%.1f %% of its CPU less the stats' clock reads (%.2f ms, %.2f us each); in split "
            "regions: wall %.2f ms, caller CPU %.2f ms, of which outside its chunks %.2f ms "
            "(waiting for the workers' last chunks, the clock reads)",
            calls, split, 1e3 * serial, 100 * serial / (cpu - reads), 1e3 * reads, 1e6 * S.read,
            1e3 * split_wall, 1e3 * split_ccpu, 1e3 * (split_ccpu - split_cpu));
    if (dt_tpool_threads() == 1)
        fprintf(stderr,
                "; split regions on 2 threads: list schedule of the parts %.2f ms, even split "
                "%.2f ms: predicted 1x2/1x1 %.2f to %.2f (no fork/join cost)",
                1e3 * two, 1e3 * even, (cpu - reads) / (serial + two - half_reads),
                (cpu - reads) / (serial + even - half_reads));
    fprintf(stderr, "\n");
}

static stat_site *stat_begin(const void *site, double *t0)
{
    if (S.wall0 == 0) {
        S.wall0 = clock_s(CLOCK_MONOTONIC);
        S.cpu0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        atexit(stat_print);
    }
    stat_site *st = stat_find(site);
    const double c = clock_s(CLOCK_THREAD_CPUTIME_ID);
    st->gap += S.cpu1 > 0 ? c - S.cpu1 : 0;
    S.cbeg = c;
    st->calls++;
    two_load[0] = two_load[1] = two_load[2] = 0;
    atomic_store(&cur_site, st);
    *t0 = clock_s(CLOCK_MONOTONIC);
    return st;
}

static void stat_end(stat_site *st, double t0, int n, int serial)
{
    atomic_store(&cur_site, NULL);
    S.wall1 = clock_s(CLOCK_MONOTONIC);
    S.cpu1 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    st->ccpu += S.cpu1 - S.cbeg;
    st->wall += S.wall1 - t0;
    st->chunks += n;
    st->serial += serial;
    st->two += two_load[0] > two_load[1] ? two_load[0] : two_load[1];
    const double half = (two_load[0] + two_load[1]) / 2;
    st->even += half > two_load[2] ? half : two_load[2];
}

/* Runs fn(arg, c, thread) and accounts its CPU time to the current region (stats on). */
static inline void call_chunk(dt_tpool_fn *fn, void *arg, int c, int thread)
{
    stat_site *st = S.on ? atomic_load(&cur_site) : NULL;
    if (!st) {
        fn(arg, c, thread);
        return;
    }
    const double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    fn(arg, c, thread);
    stat_chunk(st, thread, clock_s(CLOCK_THREAD_CPUTIME_ID) - c0);
}

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

/* One chunk of generation g from range slot r: the front when r is the thread's own (front = 1),
 * the back when stealing. Returns the chunk, or -1 when the range is empty or of another loop. */
static int claim(range_slot *r, uint32_t g, int front)
{
    uint64_t v = atomic_load_explicit(&r->v, memory_order_acquire);
    for (;;) {
        const unsigned lo = (unsigned)(v & 0xffff), hi = (unsigned)(v >> 16 & 0xffff);
        if ((uint32_t)(v >> 32) != g || lo >= hi)
            return -1;
        const uint64_t w = front ? range_pack(g, lo + 1, hi) : range_pack(g, lo, hi - 1);
        if (atomic_compare_exchange_weak_explicit(&r->v, &v, w, memory_order_acq_rel,
                                                  memory_order_acquire))
            return (int)(front ? lo : hi - 1);
    }
}

/* Runs chunks of generation g, its own range first, then the others' (stolen from their ends),
 * until none is left; returns how many it ran. */
static int run_chunks(uint32_t g, int thread, int poll)
{
    dt_tpool_fn *fn = atomic_load_explicit(&P.fn, memory_order_acquire);
    void *arg = atomic_load_explicit(&P.arg, memory_order_acquire);
    const int T = P.threads;
    int ran = 0;
    for (int k = 0; k < T; k++) {
        range_slot *r = &R[(thread + k) % T];
        int c;
        while ((c = claim(r, g, k == 0)) >= 0) {
            call_chunk(fn, arg, c, thread);
            atomic_fetch_add_explicit(&P.finished, 1, memory_order_release);
            ran++;
            if (poll)
                dt_poll();
        }
    }
    return ran;
}

static void *worker(void *p)
{
    const int me = (int)(intptr_t)p;
    in_pool = 1;
    /* the generation when the pool was made, not now: a loop may have started already, before
     * this thread ran, and this thread must take part in it (its range is waiting) */
    uint32_t seen = P.gen0;
    for (;;) {
        uint32_t g;
        int spin = 0;
        while ((g = atomic_load_explicit(&P.gen, memory_order_acquire)) == seen &&
               !atomic_load_explicit(&P.quit, memory_order_acquire)) {
            const uint32_t pg = atomic_load_explicit(&place_gen, memory_order_acquire);
            if (atomic_load_explicit(&placed_at[me].gen, memory_order_relaxed) != pg) {
                place_self(place_cpu[me]); /* dt_tpool_place */
                atomic_store_explicit(&placed_at[me].gen, pg, memory_order_release);
            }
            if (spin++ < DT_TPOOL_SPIN) {
                cpu_relax();
                continue;
            }
            atomic_fetch_add(&P.sleepers, 1);
            /* returns at once if gen moved on after the load above: no lost wake-up */
            if (atomic_load(&P.gen) == seen && !atomic_load(&P.quit)) {
                futex_wait(&P.gen, seen);
                /* woken by the caller, the OS may have put it on the caller's CPU (on the 2-CPU
                 * test VM it did, for ~30 steps, until it balanced them again): back to its own,
                 * if it has taken up the placement in force (its CPU and mask are read after the
                 * acquire that saw it published; a newer one: the loop's check above) */
                if (atomic_load_explicit(&placed_at[me].gen, memory_order_relaxed) ==
                    atomic_load_explicit(&place_gen, memory_order_acquire))
                    place_self(place_cpu[me]);
            }
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
    const char *e = getenv("DT_POOL_STATS");
    S.on = e && e[0] == '1' && !e[1];
    if (S.on && S.read == 0) {
        const double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        for (int i = 0; i < 1000; i++)
            clock_s(CLOCK_THREAD_CPUTIME_ID);
        S.read = (clock_s(CLOCK_THREAD_CPUTIME_ID) - c0) / 1001;
    }
    P.gen0 = atomic_load(&P.gen);
    nbound = 0;
    for (int i = 0; i < DT_TPOOL_MAX; i++)
        place_cpu[i] = -1;
    for (int i = 0; i < threads; i++)
        atomic_store(&placed_at[i].gen, atomic_load(&place_gen));
    for (int i = 1; i < threads; i++)
        DT_ASSERT(pthread_create(&P.tid[i], NULL, worker, (void *)(intptr_t)i) == 0);
    P.threads = threads;
}

int dt_tpool_threads(void) { return P.threads; }

/* thread i's affinity to `set` (errno on failure: pthread_setaffinity_np returns it) */
static int set_affinity(int i, const cpu_set_t *set)
{
    return i == 0 ? sched_setaffinity(0, sizeof *set, set)
                  : (errno = pthread_setaffinity_np(P.tid[i], sizeof *set, set));
}

int dt_tpool_bind(const int *cpu, const cpu_set_t *all)
{
    nbound = 0;
    for (int i = 0; i < P.threads; i++) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu[i], &one);
        if (set_affinity(i, &one) != 0) {
            const int e = errno;
            for (int j = 0; j < i; j++) /* all or none */
                set_affinity(j, all);
            errno = e;
            return -1;
        }
        bound_cpu[i] = cpu[i];
    }
    nbound = P.threads;
    return 0;
}

void dt_tpool_place(const int *cpu, const cpu_set_t *all)
{
    place_all = *all;
    for (int i = 0; i < P.threads; i++)
        place_cpu[i] = cpu[i];
    place_self(place_cpu[0]);
    atomic_fetch_add_explicit(&place_gen, 1, memory_order_release);
    /* a worker asleep in FUTEX_WAIT places itself as it wakes */
    if (P.threads > 1 && atomic_load(&P.sleepers) > 0)
        futex_wake_all(&P.gen);
}

int dt_tpool_placed(int *cpu)
{
    int n = 0;
    while (n < P.threads && place_cpu[n] >= 0) {
        if (cpu)
            cpu[n] = place_cpu[n];
        n++;
    }
    return n == P.threads && P.threads > 1 ? n : 0;
}

int dt_tpool_placing(void)
{
    const uint32_t pg = atomic_load_explicit(&place_gen, memory_order_acquire);
    int n = 0;
    for (int i = 1; i < P.threads; i++)
        n += atomic_load_explicit(&placed_at[i].gen, memory_order_acquire) != pg;
    return n;
}

int dt_tpool_bound(int *cpu)
{
    if (cpu)
        for (int i = 0; i < nbound; i++)
            cpu[i] = bound_cpu[i];
    return nbound;
}

int dt_tpool_parts(void) { return S.on && P.threads == 1 ? 2 : P.threads; }

/* dt_tpool_run's body; serial: the loop ran in one part (at threads = 1 with stats on: one that
 * would run in one part at 2 threads too). */
static void run_loop(int n, dt_tpool_fn *fn, void *arg)
{
    if (P.threads <= 1 || n == 1 || in_pool) {
        for (int c = 0; c < n; c++) {
            call_chunk(fn, arg, c, 0);
            if (!in_pool)
                dt_poll();
        }
        return;
    }
    DT_ASSERT(n <= RANGE_MAX);
    atomic_store_explicit(&P.fn, fn, memory_order_relaxed);
    atomic_store_explicit(&P.arg, arg, memory_order_relaxed);
    atomic_store_explicit(&P.finished, 0, memory_order_relaxed);
    const uint32_t g = atomic_load_explicit(&P.gen, memory_order_relaxed) + 1;
    const int T = P.threads;
    for (int t = 0; t < T; t++) /* thread t: chunks [t n / T, (t + 1) n / T) */
        atomic_store_explicit(
            &R[t].v, range_pack(g, (unsigned)((long)t * n / T), (unsigned)((long)(t + 1) * n / T)),
            memory_order_release);
    atomic_store(&P.gen, g); /* seq_cst: ordered before the sleepers load below */
    if (atomic_load(&P.sleepers) > 0) {
        place_self(place_cpu[0]); /* dt_tpool_place: as the woken workers do */
        futex_wake_all(&P.gen);
    }
    in_pool = 1;
    run_chunks(g, 0, 1);
    in_pool = 0;
    /* the workers' last chunks: keep the progress hook turning while they finish */
    while (atomic_load_explicit(&P.finished, memory_order_acquire) < n) {
        cpu_relax();
        dt_poll();
    }
}

/* run_loop, accounted to call site `site` when stats are on (never inside a chunk). */
static void run_site(int n, dt_tpool_fn *fn, void *arg, const void *site)
{
    if (!S.on || in_pool) {
        run_loop(n, fn, arg);
        return;
    }
    double t0;
    stat_site *st = stat_begin(site, &t0);
    run_loop(n, fn, arg);
    stat_end(st, t0, n, n == 1);
}

typedef struct {
    dt_tpool_fn *fn;
    void *arg;
    int base;
} offset_job;

static void offset_chunk(void *arg, int c, int thread)
{
    const offset_job *j = arg;
    j->fn(j->arg, j->base + c, thread);
}

void dt_tpool_run(int n, dt_tpool_fn *fn, void *arg)
{
    if (n <= 0)
        return;
    if (n <= RANGE_MAX) {
        run_site(n, fn, arg, __builtin_return_address(0));
        return;
    }
    for (int base = 0; base < n; base += RANGE_MAX) { /* the ranges hold 16-bit chunk numbers */
        offset_job j = {fn, arg, base};
        run_site(n - base < RANGE_MAX ? n - base : RANGE_MAX, offset_chunk, &j,
                 __builtin_return_address(0));
    }
}

void dt_tpool_range(long n, int chunks, int c, long *lo, long *hi)
{
    DT_ASSERT(chunks >= 1 && c >= 0 && c < chunks && n >= 0);
    const long q = n / chunks, r = n % chunks;
    *lo = c * q + (c < r ? c : r);
    *hi = *lo + q + (c < r ? 1 : 0);
}

#define PARTS_PER_THREAD 4

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
    /* stats at threads = 1: the parts 2 threads would get, so the simulation sees them */
    const long t = dt_tpool_parts();
    /* PARTS_PER_THREAD parts a thread, so that a thread that finishes early can take some of
     * another's: equal parts do not take equal times (a thread that starts late or is preempted) */
    parts = parts > t * PARTS_PER_THREAD ? t * PARTS_PER_THREAD : parts;
    parts = t == 1 ? 1 : parts;
    if (parts <= 1 || in_pool) {
        if (n <= 0)
            return;
        if (!S.on || in_pool) {
            fn(arg, 0, n);
            return;
        }
        range_job j = {fn, arg, n, n};
        run_site(1, range_chunk, &j, __builtin_return_address(0));
        return;
    }
    range_job j = {fn, arg, n, ((n + parts - 1) / parts + align - 1) / align * align};
    run_site((int)((n + j.step - 1) / j.step), range_chunk, &j, __builtin_return_address(0));
}
