/*
 * sgemm_rate.c - the single-precision GEMM rate of the OpenBLAS dtrain links, at 1 thread: the
 * reference ("peak") that bench/run.sh sets dtrain's achieved GFLOP/s against.
 *
 *   sgemm_rate [MxNxK[:label] ...]     default: 512x512x512:square 128x512x784:mlp-fc1-forward
 *                                               16x2048x144:resnet20-3x3-16ch-forward
 *
 * For each shape, C (M x N) = A (M x K) @ B (K x N), row-major, no transposes, beta = 0, through
 * cblas_sgemm (what runtime/ calls). FLOPs = 2*M*N*K per call. One warm-up call, then TRIALS trials
 * of as many calls as fill about 100 ms each; the rate of each trial is FLOPs / its time. Prints one
 * line per shape:
 *   sgemm M=512 N=512 K=512 label=square median_gflops=... best_gflops=... trials=5
 * Threads: openblas_set_num_threads(1) (run.sh also exports OPENBLAS_NUM_THREADS=1).
 * Built by bench/run.sh with the Makefile's CC, warning and optimization flags and pkg-config openblas.
 */
#include <sched.h> /* Debian's cblas.h names cpu_set_t without including it */

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TRIALS 5
#define TRIAL_S 0.1

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float *filled(size_t n, unsigned *seed)
{
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "sgemm_rate: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        p[i] = (float)(*seed >> 8) / 16777216.0f - 0.5f;
    }
    return p;
}

static int run_shape(const char *spec)
{
    int M, N, K, used = 0;
    if (sscanf(spec, "%dx%dx%d%n", &M, &N, &K, &used) != 3 || M < 1 || N < 1 || K < 1 ||
        (spec[used] != '\0' && spec[used] != ':')) {
        fprintf(stderr, "sgemm_rate: '%s': expected MxNxK[:label] with positive sizes\n", spec);
        return 1;
    }
    const char *label = spec[used] == ':' ? spec + used + 1 : "-";
    unsigned seed = 12345u;
    float *A = filled((size_t)M * K, &seed), *B = filled((size_t)K * N, &seed);
    float *C = filled((size_t)M * N, &seed);
    const double flop = 2.0 * M * N * K;

    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    /* calls per trial: from the time of a few calls */
    int reps = 1;
    for (;;) {
        double t0 = now();
        for (int r = 0; r < reps; r++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N, 0.0f,
                        C, N);
        double dt = now() - t0;
        if (dt > 0.01 || reps >= (1 << 20)) {
            reps = (int)(reps * TRIAL_S / (dt > 1e-9 ? dt : 1e-9)) + 1;
            break;
        }
        reps *= 4;
    }
    double rate[TRIALS];
    for (int t = 0; t < TRIALS; t++) {
        double t0 = now();
        for (int r = 0; r < reps; r++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N, 0.0f,
                        C, N);
        rate[t] = flop * reps / (now() - t0) / 1e9;
    }
    qsort(rate, TRIALS, sizeof rate[0], cmp_double);
    /* keep the result observable */
    volatile float sink = C[(size_t)(M - 1) * N + (N - 1)];
    (void)sink;
    printf("sgemm M=%d N=%d K=%d label=%s median_gflops=%.1f best_gflops=%.1f trials=%d\n", M, N, K,
           label, rate[TRIALS / 2], rate[TRIALS - 1], TRIALS);
    free(A);
    free(B);
    free(C);
    return 0;
}

int main(int argc, char **argv)
{
    static const char *const defaults[] = {"512x512x512:square", "128x512x784:mlp-fc1-forward",
                                           "16x2048x144:resnet20-3x3-16ch-forward"};
    openblas_set_num_threads(1);
    printf("openblas core=%s config=%s\n", openblas_get_corename(), openblas_get_config());
    int rc = 0;
    if (argc > 1)
        for (int i = 1; i < argc; i++)
            rc |= run_shape(argv[i]);
    else
        for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
            rc |= run_shape(defaults[i]);
    return rc;
}
