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
 *
 * Built with -DSGEMM_DTRAIN against build/libdtrain.a it also times dtrain's gemm family, each ISA
 * table this CPU runs (dt_gemm_kern: the hand-written kernel), next to cblas_sgemm, interleaved
 * trial by trial (the machine's load hits all alike), on the mlp's nine products and 512^3, rates
 * over the thread's CPU time (CLOCK_THREAD_CPUTIME_ID: time descheduled does not count):
 *   sgemm_rate --isa [MxNxK[:TATB][:label] ...]     TATB: the transpose flags, e.g. 01 (A, B^T)
 * one line per kernel and shape:
 *   gemm kern=avx512 M=128 N=512 K=784 t=01 label=fc1-fwd median_gflops=... best_gflops=...
 * SGEMM_KERNS=openblas,avx512 (names, comma-separated) times only those.
 * Run it with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (env -u) to time OpenBLAS's own
 * kernel for the CPU. Build (from the repository root, after make):
 *   gcc -std=c11 -O3 -D_GNU_SOURCE -DSGEMM_DTRAIN -iquote runtime \
 *       $(pkg-config --cflags ompi-c openblas hdf5) -o build/sgemm_rate bench/sgemm_rate.c \
 *       build/libdtrain.a $(pkg-config --libs ompi-c openblas hdf5) -lm
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

#ifdef SGEMM_DTRAIN
#include "kernels/gemm.h"
#include "kernels/gemm_k.h"
#include "kernels/isa.h"

#ifdef SGEMM_CANDIDATES
/* extra builds of runtime/kernels/isa/gemm.c with other register tiles (-DDT_GEMM_MR=.. -DDT_GEMM_NV=..
 * -DDT_KSUF=_cand1 ...), to compare tiles; not part of the normal build */
extern const struct dt_kgemm dt_kgemm_cand1, dt_kgemm_cand2, dt_kgemm_cand3;
#endif

/* many short interleaved trials: on a shared machine the best of them is the kernel's own speed */
enum { MAXK = 8, ITRIALS = 21 };

/* kernels timed: kern[i] NULL is cblas_sgemm */
static int nkern;
static const struct dt_kgemm *kern[MAXK];
static const char *kname[MAXK];

/* SGEMM_KERNS=openblas,avx512 (a comma-separated list) times only those */
static void add_kern(const char *name, const struct dt_kgemm *g)
{
    const char *only = getenv("SGEMM_KERNS");
    if (only && *only) {
        const size_t n = strlen(name);
        const char *at = only;
        while ((at = strstr(at, name)) &&
               ((at != only && at[-1] != ',') || (at[n] != '\0' && at[n] != ',')))
            at += n;
        if (!at)
            return;
    }
    if (nkern < MAXK)
        kname[nkern] = name, kern[nkern++] = g;
}

static void call(int i, int ta, int tb, int M, int N, int K, const float *A, const float *B,
                 float *C)
{
    const int lda = ta ? M : K, ldb = tb ? K : N;
    if (kern[i])
        dt_gemm_kern(kern[i], ta, tb, M, N, K, A, lda, B, ldb, NULL, 0, C, N);
    else
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);
}

/* this thread's CPU time: the time it was descheduled on a shared machine does not count */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* one trial of reps calls of kernel i: GFLOP/s of this thread's CPU time */
static double trial(int i, int reps, int ta, int tb, int M, int N, int K, const float *A,
                    const float *B, float *C)
{
    const double t0 = cpu_now();
    for (int r = 0; r < reps; r++)
        call(i, ta, tb, M, N, K, A, B, C);
    return 2.0 * M * N * K * reps / (cpu_now() - t0) / 1e9;
}

/* MxNxK[:TATB][:label]: every kernel, ITRIALS interleaved trials of about TRIAL_S / 10 each */
static int run_isa_shape(const char *spec)
{
    int M, N, K, used = 0, ta = 0, tb = 0;
    if (sscanf(spec, "%dx%dx%d%n", &M, &N, &K, &used) != 3 || M < 1 || N < 1 || K < 1) {
        fprintf(stderr, "sgemm_rate: '%s': expected MxNxK[:TATB][:label]\n", spec);
        return 1;
    }
    const char *rest = spec + used;
    if (rest[0] == ':' && (rest[1] == '0' || rest[1] == '1') && (rest[2] == '0' || rest[2] == '1'))
        ta = rest[1] - '0', tb = rest[2] - '0', rest += 3;
    const char *label = rest[0] == ':' ? rest + 1 : "-";
    unsigned seed = 12345u;
    float *A = filled((size_t)M * K, &seed), *B = filled((size_t)K * N, &seed);
    float *C = filled((size_t)M * N, &seed);
    int reps[MAXK];
    double rate[MAXK][ITRIALS];
    for (int i = 0; i < nkern; i++) {
        call(i, ta, tb, M, N, K, A, B, C);
        const double t0 = now();
        call(i, ta, tb, M, N, K, A, B, C);
        const double dt = now() - t0;
        reps[i] = (int)(TRIAL_S / 10 / (dt > 1e-7 ? dt : 1e-7)) + 1;
    }
    for (int t = 0; t < ITRIALS; t++)
        for (int i = 0; i < nkern; i++)
            rate[i][t] = trial(i, reps[i], ta, tb, M, N, K, A, B, C);
    for (int i = 0; i < nkern; i++) {
        qsort(rate[i], ITRIALS, sizeof rate[i][0], cmp_double);
        printf("gemm kern=%-10s M=%d N=%d K=%d t=%d%d label=%s median_gflops=%.1f "
               "best_gflops=%.1f\n",
               kname[i], M, N, K, ta, tb, label, rate[i][ITRIALS / 2], rate[i][ITRIALS - 1]);
    }
    free(A), free(B), free(C);
    return 0;
}

static int run_isa(int argc, char **argv)
{
    /* the mlp (784-512-256-10, batch 128): forward inp @ W^T (01), dweight dout^T @ inp (10),
     * dinp dout @ W (00) of each layer (the first layer's dinp is not computed in training) */
    static const char *const defaults[] = {"128x512x784:01:fc1-fwd",  "512x784x128:10:fc1-dw",
                                           "128x256x512:01:fc2-fwd",  "256x512x128:10:fc2-dw",
                                           "128x512x256:00:fc2-dinp", "128x10x256:01:fc3-fwd",
                                           "10x256x128:10:fc3-dw",    "128x256x10:00:fc3-dinp",
                                           "128x784x512:00:fc1-dinp", "512x512x512:00:square"};
    add_kern("openblas", NULL);
    for (int i = 0; i < DT_ISA_COUNT; i++) {
        const dt_kern *t = dt_kern_table((dt_isa)i);
        if (t && t->gemm && i != DT_ISA_AVX512BF16 && i != DT_ISA_AVX2W16)
            add_kern(t->name, t->gemm);
    }
#ifdef SGEMM_CANDIDATES
    add_kern("cand1", &dt_kgemm_cand1);
    add_kern("cand2", &dt_kgemm_cand2);
    add_kern("cand3", &dt_kgemm_cand3);
#endif
    int rc = 0;
    if (argc > 0)
        for (int i = 0; i < argc; i++)
            rc |= run_isa_shape(argv[i]);
    else
        for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
            rc |= run_isa_shape(defaults[i]);
    return rc;
}
#endif

int main(int argc, char **argv)
{
    static const char *const defaults[] = {"512x512x512:square", "128x512x784:mlp-fc1-forward",
                                           "16x2048x144:resnet20-3x3-16ch-forward"};
    openblas_set_num_threads(1);
    printf("openblas core=%s config=%s\n", openblas_get_corename(), openblas_get_config());
#ifdef SGEMM_DTRAIN
    if (argc > 1 && strcmp(argv[1], "--isa") == 0)
        return run_isa(argc - 2, argv + 2);
#endif
    int rc = 0;
    if (argc > 1)
        for (int i = 1; i < argc; i++)
            rc |= run_shape(argv[i]);
    else
        for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
            rc |= run_shape(defaults[i]);
    return rc;
}
