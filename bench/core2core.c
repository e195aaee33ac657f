/*
 * core2core.c - what two cores of this machine share: the price of data one core wrote and
 * another reads. It bounds what threads inside a rank and ranks on one node can gain (issue 13):
 * every layer whose input another thread wrote, and every shared-memory allreduce, pays it.
 *
 *   core2core [MB]     MB: the buffer for the bandwidth test (default 1, about an mlp layer's
 *                      weight gradient), on the first two CPUs of this process's affinity mask
 *
 * Two measurements, each a median over repetitions (so that another job time-slicing one of the
 * CPUs for a while does not set the figure), two threads pinned to the two CPUs:
 *   latency   one cache line passed back and forth (each thread waits for the other's store,
 *             then stores): the round trip in ns. Cores that share a cache (an L3) pass it in
 *             tens of ns; cores on different dies, or a VM's vCPUs on different chiplets, in
 *             hundreds.
 *   bandwidth one thread writes MB, the other then reads it (an integer sum, vectorized):
 *             GB/s of that read, against the same thread reading it again (now in its own
 *             caches). The ratio is what a kernel reading another thread's output loses.
 * One line each:
 *   core2core cpus=A,B round_trip_ns=R
 *   core2core cpus=A,B mb=M remote_gbs=X local_gbs=Y remote_over_local=Z
 * On a machine with one CPU in the mask: "core2core: needs 2 CPUs" and exit status 0.
 */
#if !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* CPU_SET, pthread_setaffinity_np */
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define PINGS 200000
#define PING_BLOCKS 40 /* the latency: median over blocks of PINGS / PING_BLOCKS round trips */
#define BW_REPS 101

static int cpu[2];
static _Alignas(64) _Atomic long ball;
static _Alignas(64) _Atomic long turn;
static uint32_t *buf;
static size_t words;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void pin(int c)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(c, &s);
    pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

static int cmp(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void *partner(void *arg)
{
    (void)arg;
    pin(cpu[1]);
    for (long i = 0; i < PINGS; i++) { /* the ball: odd from the main thread, even back */
        while (atomic_load_explicit(&ball, memory_order_acquire) != 2 * i + 1)
            ;
        atomic_store_explicit(&ball, 2 * i + 2, memory_order_release);
    }
    for (long r = 0; r < BW_REPS; r++) { /* write the buffer, then hand it over */
        while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * r)
            ;
        for (size_t i = 0; i < words; i++)
            buf[i] = (uint32_t)(r + (long)i);
        atomic_store_explicit(&turn, 2 * r + 1, memory_order_release);
    }
    return NULL;
}

/* the read: an integer sum (vectorized: unsigned adds reassociate), so that the loop runs at the
 * caches' rate; built for AVX2 and AVX-512 too where the CPU has them (the Makefile's flags are
 * the baseline's SSE2, whose 16-byte loads cap the rate below what the caches deliver) */
#define SUM_BODY                                                                                   \
    const uint32_t *p = buf;                                                                       \
    const size_t n = words;                                                                        \
    uint32_t s = 0;                                                                                \
    for (size_t i = 0; i < n; i++)                                                                 \
        s += p[i];                                                                                 \
    return s;

static uint32_t sum_base(void) { SUM_BODY }

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2"))) static uint32_t sum_avx2(void) { SUM_BODY }
__attribute__((target("avx512f"))) static uint32_t sum_avx512(void) { SUM_BODY }
#endif

static uint32_t sum(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512f"))
        return sum_avx512();
    if (__builtin_cpu_supports("avx2"))
        return sum_avx2();
#endif
    return sum_base();
}

int main(int argc, char **argv)
{
    const double mb = argc > 1 ? atof(argv[1]) : 1.0;
    if (!(mb > 0 && mb <= 4096)) {
        fprintf(stderr, "usage: core2core [MB in (0, 4096]]\n");
        return 2;
    }
    cpu_set_t mask;
    CPU_ZERO(&mask);
    if (sched_getaffinity(0, sizeof mask, &mask) != 0 || CPU_COUNT(&mask) < 2) {
        printf("core2core: needs 2 CPUs in the affinity mask\n");
        return 0;
    }
    for (int c = 0, k = 0; c < CPU_SETSIZE && k < 2; c++)
        if (CPU_ISSET(c, &mask))
            cpu[k++] = c;
    words = (size_t)(mb * 1048576.0 / sizeof *buf);
    buf = aligned_alloc(64, (words * sizeof *buf + 63) / 64 * 64);
    if (!buf) {
        fprintf(stderr, "core2core: out of memory\n");
        return 1;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, partner, NULL) != 0) {
        fprintf(stderr, "core2core: pthread_create failed\n");
        return 1;
    }
    pin(cpu[0]);
    double block[PING_BLOCKS];
    for (long i = 0, k = 0; k < PING_BLOCKS; k++) {
        const double t0 = now();
        for (long e = i + PINGS / PING_BLOCKS; i < e; i++) {
            atomic_store_explicit(&ball, 2 * i + 1, memory_order_release);
            while (atomic_load_explicit(&ball, memory_order_acquire) != 2 * i + 2)
                ;
        }
        block[k] = (now() - t0) / (PINGS / PING_BLOCKS);
    }
    qsort(block, PING_BLOCKS, sizeof *block, cmp);
    const double rt = block[PING_BLOCKS / 2];
    double remote[BW_REPS], local[BW_REPS];
    volatile uint32_t sink = 0;
    for (long r = 0; r < BW_REPS; r++) {
        while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * r + 1)
            ;
        const double a = now();
        sink += sum();
        const double b = now();
        sink += sum();
        const double c = now();
        remote[r] = b - a;
        local[r] = c - b;
        atomic_store_explicit(&turn, 2 * r + 2, memory_order_release);
    }
    pthread_join(t, NULL);
    qsort(remote, BW_REPS, sizeof *remote, cmp);
    qsort(local, BW_REPS, sizeof *local, cmp);
    const double bytes = (double)words * sizeof *buf;
    const double rg = bytes / remote[BW_REPS / 2] * 1e-9, lg = bytes / local[BW_REPS / 2] * 1e-9;
    printf("core2core cpus=%d,%d round_trip_ns=%.0f\n", cpu[0], cpu[1], rt * 1e9);
    printf("core2core cpus=%d,%d mb=%g remote_gbs=%.1f local_gbs=%.1f remote_over_local=%.2f\n",
           cpu[0], cpu[1], mb, rg, lg, rg / lg);
    free(buf);
    return (int)(sink & 0); /* sink keeps the sums */
}
