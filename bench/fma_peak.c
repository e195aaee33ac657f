/*
 * fma_peak.c - the machine's measured floating-point peak per core: what bench/run.sh sets each
 * configuration's achieved GFLOP/s against ("% of peak" of the ISA in use), measured rather than
 * taken from a data sheet because clocks under vector load, and whether a CPU splits 512-bit
 * operations into two halves, differ from machine to machine.
 *
 *   fma_peak [MS]     MS: milliseconds per measurement (default 200), best of 3 per kernel
 *
 * Three kernels, each a loop of independent multiply-add chains on registers (CHAINS accumulators,
 * more than FMA latency x FMA pipes on the CPUs we know, so the loop is throughput-bound, not
 * latency-bound; no loads or stores inside the loop):
 *   ymm   vfmadd231ps ymm (AVX2 + FMA):   8 lanes, 2 x 8  = 16 FLOPs per instruction
 *   zmm   vfmadd231ps zmm (AVX-512F):    16 lanes, 2 x 16 = 32 FLOPs per instruction
 *   bf16  vdpbf16ps zmm (AVX512_BF16):   16 fp32 lanes, each accumulating two bf16 products:
 *                                        counted as 2 x 32 = 64 FLOPs per instruction
 * GFLOP/s = FLOPs per instruction x instructions / seconds, the best of 3 runs of about MS ms each.
 * The seconds are this thread's CPU time (CLOCK_THREAD_CPUTIME_ID): on a machine shared with other
 * jobs, time-slicing then does not lower the peak (it is a property of the core); the wall-clock
 * rate is printed next to it, and the two agree on an idle core.
 * Each kernel is a function with its own target attribute, so the file builds with the Makefile's
 * flags (no -m options) on any x86-64; a kernel the CPU cannot run (__builtin_cpu_supports) prints
 * n/a. One line per kernel:
 *   fma ymm isa=avx2,fma lanes=8 chains=12 flops_per_insn=16 gflops=G gflops_wall=G trials=3
 *   fma bf16 isa=avx512f,avx512bf16 gflops=n/a (CPU lacks it)
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 199309L /* clock_gettime under -std=c11 */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

#define TRIALS 3

static double seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#if HAVE_X86

/* Each kernel runs n iterations of CHAINS independent instructions and returns a value that
 * depends on every accumulator (so nothing is dead code). The multiplier is slightly below 1 and
 * the addend small, so the accumulators neither overflow nor turn denormal. The chains are written
 * out (no array) so that they stay in registers: 12 of 16 ymm registers (2 for the operands), 16 of
 * 32 zmm registers. */

#define CH12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define CH16(X) CH12(X) X(12) X(13) X(14) X(15)

__attribute__((target("avx2,fma"), noinline)) static float kernel_ymm(long n)
{
#define DECL(i) __m256 a##i = _mm256_set1_ps(1.0f + 0.001f * (float)(i));
#define STEP(i) a##i = _mm256_fmadd_ps(a##i, m, c);
#define SUM(i) s = _mm256_add_ps(s, a##i);
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
    CH12(DECL)
    for (long k = 0; k < n; k++) {
        CH12(STEP)
    }
    __m256 s = _mm256_setzero_ps();
    CH12(SUM)
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
#undef DECL
#undef STEP
#undef SUM
}

__attribute__((target("avx512f"), noinline)) static float kernel_zmm(long n)
{
#define DECL(i) __m512 a##i = _mm512_set1_ps(1.0f + 0.001f * (float)(i));
#define STEP(i) a##i = _mm512_fmadd_ps(a##i, m, c);
#define SUM(i) s = _mm512_add_ps(s, a##i);
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
    CH16(DECL)
    for (long k = 0; k < n; k++) {
        CH16(STEP)
    }
    __m512 s = _mm512_setzero_ps();
    CH16(SUM)
    return _mm512_reduce_add_ps(s);
#undef DECL
#undef STEP
#undef SUM
}

/* vdpbf16ps: acc[i] += x[2i] * y[2i] + x[2i+1] * y[2i+1] for 16 fp32 lanes of bf16 pairs. The
 * operands are small (2^-10) so that 16 chains x n steps stay far from overflow. */
__attribute__((target("avx512f,avx512bf16"), noinline)) static float kernel_bf16(long n)
{
#define DECL(i) __m512 a##i = _mm512_set1_ps(0.001f * (float)(i));
#define STEP(i) a##i = _mm512_dpbf16_ps(a##i, x, y);
#define SUM(i) s = _mm512_add_ps(s, a##i);
    const __m512bh x =
        _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.0009765625f), _mm512_set1_ps(0.0009765625f));
    const __m512bh y = x;
    CH16(DECL)
    for (long k = 0; k < n; k++) {
        CH16(STEP)
    }
    __m512 s = _mm512_setzero_ps();
    CH16(SUM)
    return _mm512_reduce_add_ps(s);
#undef DECL
#undef STEP
#undef SUM
}

#else /* not x86-64: every kernel prints n/a; these are never called */

static float kernel_ymm(long n) { return (float)n; }
static float kernel_zmm(long n) { return (float)n; }
static float kernel_bf16(long n) { return (float)n; }

#endif /* HAVE_X86 */

typedef float (*kernel_fn)(long n);

/* Calibrates n to about ms milliseconds of this thread's CPU time, then the best of TRIALS timed
 * runs, in GFLOP/s: best[0] over this thread's CPU time, best[1] over wall-clock time. */
static void measure(kernel_fn fn, int chains, int flops_per_insn, double ms, volatile float *sink,
                    double best[2])
{
    long n = 1000;
    double t = 0.0;
    for (;;) { /* grow n until one run takes >= 20 ms, then scale it to ms */
        const double t0 = seconds(CLOCK_THREAD_CPUTIME_ID);
        *sink += fn(n);
        t = seconds(CLOCK_THREAD_CPUTIME_ID) - t0;
        if (t >= 0.02 || n > (1L << 40))
            break;
        n *= 4;
    }
    n = (long)((double)n * (ms / 1000.0) / (t > 0 ? t : 1e-9));
    if (n < 1)
        n = 1;
    const double flops = (double)n * chains * flops_per_insn;
    best[0] = best[1] = 0.0;
    for (int i = 0; i < TRIALS; i++) {
        const double w0 = seconds(CLOCK_MONOTONIC), c0 = seconds(CLOCK_THREAD_CPUTIME_ID);
        *sink += fn(n);
        const double c = seconds(CLOCK_THREAD_CPUTIME_ID) - c0, w = seconds(CLOCK_MONOTONIC) - w0;
        if (c > 0 && flops / c / 1e9 > best[0])
            best[0] = flops / c / 1e9;
        if (w > 0 && flops / w / 1e9 > best[1])
            best[1] = flops / w / 1e9;
    }
}

int main(int argc, char **argv)
{
    double ms = 200.0;
    if (argc > 2 || (argc == 2 && ((ms = atof(argv[1])) < 1.0 || ms > 100000.0))) {
        fprintf(stderr, "usage: fma_peak [MS]   (milliseconds per measurement, 1-100000)\n");
        return 2;
    }
    volatile float sink = 0.0f;
    const struct {
        const char *name, *isa;
        int lanes, chains, flops_per_insn;
        kernel_fn fn;
    } k[] = {
        {"ymm", "avx2,fma", 8, 12, 16, kernel_ymm},
        {"zmm", "avx512f", 16, 16, 32, kernel_zmm},
        {"bf16", "avx512f,avx512bf16", 16, 16, 64, kernel_bf16},
    };
#if HAVE_X86
    __builtin_cpu_init();
    const int have[] = {__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"),
                        __builtin_cpu_supports("avx512f"),
                        __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16")};
#else
    const int have[] = {0, 0, 0};
#endif
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        if (!have[i]) {
            printf("fma %s isa=%s gflops=n/a (%s)\n", k[i].name, k[i].isa,
                   HAVE_X86 ? "CPU lacks it" : "not an x86-64 build");
            continue;
        }
        double g[2];
        measure(k[i].fn, k[i].chains, k[i].flops_per_insn, ms, &sink, g);
        printf("fma %s isa=%s lanes=%d chains=%d flops_per_insn=%d gflops=%.1f gflops_wall=%.1f "
               "trials=%d\n",
               k[i].name, k[i].isa, k[i].lanes, k[i].chains, k[i].flops_per_insn, g[0], g[1],
               TRIALS);
        fflush(stdout);
    }
    return 0;
}
