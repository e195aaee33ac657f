/*
 * bf16_rate.c - the bf16 GEMM (kernels/bf16.h, the table of the ISA in use) against the fp32
 * dt_gemm on the mlp's products (784-512-256-10, batch 128: per layer the forward
 * out = inp W^T + b, dW = dout^T inp and dinp = dout W), at 1 thread: is native bf16 worth it?
 *
 *   bf16_rate [ISA]      ISA: the bf16 table to time (default: the one DTRAIN_KERNELS_ISA or the
 *                        CPU picks; avx512bf16 is native, others emulate vdpbf16ps)
 *
 * Per product: one warm-up call, then TRIALS short trials (about 4 ms each: on a shared machine
 * some fall between other processes' time slices), fp32 and bf16 interleaved trial by trial.
 * Prints one line per product (best and median GFLOP/s of each, FLOPs = 2 M N K; ratios in one
 * run, not absolute rates) and the layers' sum of best times as one mlp step's GEMM time. Built by hand against build/libdtrain.a:
 *   cc -O2 -iquote runtime $(pkg-config --cflags ompi-c openblas hdf5) -o bench/out/bf16_rate \
 *      bench/bf16_rate.c build/libdtrain.a $(pkg-config --libs ompi-c openblas hdf5) -lm
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "kernels/bf16.h"
#include "kernels/gemm.h"
#include "kernels/isa.h"

#define TRIALS 31
#define TRIAL_S 0.004

typedef void (*gemm_fn)(int, int, int, int, int, const float *, int, const float *, int,
                        const float *, int, float *, int);

typedef struct {
    const char *label;
    int ta, tb, M, N, K, bias;
} shape;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float *filled(size_t n, unsigned *seed)
{
    float *p = dt_xmalloc(n, sizeof *p);
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        p[i] = (float)(*seed >> 8) / 16777216.0f - 0.5f;
    }
    return p;
}

/* seconds per call of f on s, over reps calls */
static double per_call(gemm_fn f, const shape *s, int reps, const float *A, const float *B,
                       const float *bias, float *C)
{
    const int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
    const double t0 = now();
    for (int r = 0; r < reps; r++)
        f(s->ta, s->tb, s->M, s->N, s->K, A, lda, B, ldb, s->bias ? bias : NULL, 0, C, s->N);
    return (now() - t0) / reps;
}

/* best seconds per call of fp32 and bf16 (and the median's rates printed), trials interleaved */
static void run_shape(const shape *s, gemm_fn bf16, double *t32, double *t16)
{
    unsigned seed = 12345u;
    float *A = filled((size_t)s->M * s->K, &seed), *B = filled((size_t)s->K * s->N, &seed);
    float *C = filled((size_t)s->M * s->N, &seed), *bias = filled((size_t)s->N, &seed);
    const gemm_fn f[2] = {dt_gemm, bf16};
    int reps[2];
    for (int i = 0; i < 2; i++) {
        const double one = per_call(f[i], s, 1, A, B, bias, C); /* warm-up */
        reps[i] = (int)(TRIAL_S / (one > 1e-7 ? one : 1e-7)) + 1;
    }
    double t[2][TRIALS];
    for (int k = 0; k < TRIALS; k++)
        for (int i = 0; i < 2; i++)
            t[i][k] = per_call(f[i], s, reps[i], A, B, bias, C);
    for (int i = 0; i < 2; i++)
        qsort(t[i], TRIALS, sizeof t[i][0], cmp_double);
    *t32 = t[0][0];
    *t16 = t[1][0];
    const double flop = 2.0 * s->M * s->N * s->K;
    printf("%-12s M=%-4d N=%-4d K=%-4d GFLOP/s best (median): fp32 %5.1f (%5.1f)  bf16 %5.1f "
           "(%5.1f)  bf16/fp32 %.2f\n",
           s->label, s->M, s->N, s->K, flop / *t32 / 1e9, flop / t[0][TRIALS / 2] / 1e9,
           flop / *t16 / 1e9, flop / t[1][TRIALS / 2] / 1e9, *t32 / *t16);
    free(A), free(B), free(C), free(bias);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        dt_isa isa;
        if (dt_isa_parse(argv[1], &isa, NULL) != 0 || dt_kern_select(isa) != 0) {
            fprintf(stderr, "bf16_rate: '%s': not an ISA this CPU runs\n", argv[1]);
            return 1;
        }
    }
    const dt_kern *k = dt_kern_get();
    printf("bf16 table: %s (%s vdpbf16ps); fp32: dt_gemm\n", k->name,
           k->bf16_native ? "native" : "emulated");
    enum { NB = 128 };
    static const int mlp[] = {784, 512, 256, 10};
    double s32 = 0.0, s16 = 0.0;
    for (int l = 0; l < 3; l++) {
        const int IN = mlp[l], OUT = mlp[l + 1];
        char fw[32], dw[32], di[32];
        snprintf(fw, sizeof fw, "fc%d.forward", l + 1);
        snprintf(dw, sizeof dw, "fc%d.dweight", l + 1);
        snprintf(di, sizeof di, "fc%d.dinp", l + 1);
        const shape sh[3] = {{fw, 0, 1, NB, OUT, IN, 1},  /* out = inp W^T + b */
                             {dw, 1, 0, OUT, IN, NB, 0},  /* dW = dout^T inp */
                             {di, 0, 0, NB, IN, OUT, 0}}; /* dinp = dout W */
        for (int i = 0; i < (l == 0 ? 2 : 3); i++) {      /* fc1 has no dinp (the input) */
            double a, b;
            run_shape(&sh[i], dt_bf16_gemm, &a, &b);
            s32 += a, s16 += b;
        }
    }
    printf("mlp step GEMMs: fp32 %.1f us  bf16 %.1f us  bf16/fp32 speed %.2f\n", s32 * 1e6,
           s16 * 1e6, s32 / s16);
    return 0;
}
