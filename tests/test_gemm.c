/*
 * test_gemm.c - the gemm family (runtime/kernels/gemm.c, isa/gemm.c) on every ISA this CPU runs,
 * plus avx2w16 (the 16-lane kernel lowered to AVX2, so the AVX-512 blocking and tails are tested on
 * AVX2-only machines too), against a double-precision reference product and against each other.
 *
 * Per shape: all four transpose combinations, with and without the bias row and accumulation;
 * shapes: the linear layers of the five built-in models at batch 128 (forward, dweight and dinp
 * products, with the flags linear.c uses), and odd ones that reach every edge (1 x 1 x 1, partial
 * MR-row and NR-column tiles, K > KC and not a multiple of it nor of 8, M taller than MC, N wider
 * than NC, strided operands: lda/ldb/ldc larger than the rows). Garbage in C must be overwritten
 * when not accumulating, and C's padding never touched. The cblas_sgemm path (dt_gemm_blas) and
 * dt_gemm itself (the table in use) are checked the same way, and dt_gemm is checked to follow
 * dt_kern_select (bitwise the selected table's kernel, or cblas_sgemm on generic).
 *
 * Bitwise: avx2w16 == avx512 (same lanes, same order) and avx2 == avx512 / avx2w16 (every x86
 * ISA keeps the same K blocks and per-element order, isa/gemm.c). ISAs this CPU lacks are skipped,
 * and the test says so.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"
#include "fdcheck.h"
#include "kernels/gemm.h"
#include "kernels/gemm_k.h"
#include "kernels/isa.h"

/* the ISAs under test: a gemm table each (avx512bf16 shares avx512's), NULL where skipped */
static const struct dt_kgemm *kg[DT_ISA_COUNT];

/* C (M, N, stride ldc) := the product by kern (-1: dt_gemm_blas, DT_ISA_COUNT: dt_gemm) */
static void call(int kern, int ta, int tb, int M, int N, int K, const float *A, int lda,
                 const float *B, int ldb, const float *bias, int accum, float *C, int ldc)
{
    if (kern < 0)
        dt_gemm_blas(ta, tb, M, N, K, A, lda, B, ldb, bias, accum, C, ldc);
    else if (kern == DT_ISA_COUNT)
        dt_gemm(ta, tb, M, N, K, A, lda, B, ldb, bias, accum, C, ldc);
    else
        dt_gemm_kern(kg[kern], ta, tb, M, N, K, A, lda, B, ldb, bias, accum, C, ldc);
}

static const char *kern_name(int kern)
{
    return kern < 0 ? "dt_gemm_blas" : kern == DT_ISA_COUNT ? "dt_gemm" : dt_isa_name(kern);
}

/* max |C - want| over the M x N block (NaN counts as infinite); *pad_ok: C's padding kept */
static double worst_error(const float *C, const float *C0, const double *want, int M, int N,
                          int ldc, int *pad_ok)
{
    double worst = 0.0;
    *pad_ok = 1;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            const double e = fabs(C[(size_t)i * ldc + j] - want[(size_t)i * N + j]);
            worst = e > worst || e != e ? (e != e ? INFINITY : e) : worst;
        }
        for (int j = N; j < ldc; j++)
            *pad_ok &= memcmp(&C[(size_t)i * ldc + j], &C0[(size_t)i * ldc + j], sizeof *C) == 0;
    }
    return worst;
}

typedef struct {
    int ta, tb, M, N, K, pad;
    int lda, ldb, ldc;
    float *A, *B, *C0, *bias;
    double *prod; /* op(A) op(B) in double */
} problem;

/* One bias/accum variant of p on every kernel: tolerance against the double reference, padding,
 * and the bitwise equalities between the x86 ISAs. */
static void run_variant(const problem *p, int use_bias, int accum, float *C[DT_ISA_COUNT + 2],
                        double *want)
{
    const int M = p->M, N = p->N, ldc = p->ldc;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            want[(size_t)i * N + j] = (accum ? p->C0[(size_t)i * ldc + j] : 0.0) +
                                      (use_bias ? p->bias[j] : 0.0) + p->prod[(size_t)i * N + j];
    /* float sums of K products of O(1) terms: error ~ sqrt(K) ulp-scale */
    const double tol = 1e-6 * (4.0 + 2.0 * sqrt((double)p->K));
    for (int kern = -1; kern <= DT_ISA_COUNT; kern++) {
        if (kern >= 0 && kern < DT_ISA_COUNT && !kg[kern])
            continue;
        float *c = C[kern + 1];
        memcpy(c, p->C0, (size_t)M * ldc * sizeof *c);
        if (!accum)
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++)
                    c[(size_t)i * ldc + j] = NAN;
        call(kern, p->ta, p->tb, M, N, p->K, p->A, p->lda, p->B, p->ldb, use_bias ? p->bias : NULL,
             accum, c, ldc);
        int pad_ok;
        const double worst = worst_error(c, p->C0, want, M, N, ldc, &pad_ok);
        CHECK(worst <= tol);
        CHECK(pad_ok);
        if (!(worst <= tol) || !pad_ok)
            fprintf(stderr,
                    "  %s ta%d tb%d M%d N%d K%d pad%d bias%d accum%d: max error %.3g "
                    "(tolerance %.3g), C padding %s\n",
                    kern_name(kern), p->ta, p->tb, M, N, p->K, p->pad, use_bias, accum, worst, tol,
                    pad_ok ? "kept" : "overwritten");
    }
    /* bitwise pairs among the x86 ISAs: (avx2w16, avx512), (avx2, avx2w16), (avx2, avx512) */
    static const int pairs[][2] = {{DT_ISA_AVX2W16, DT_ISA_AVX512},
                                   {DT_ISA_AVX2, DT_ISA_AVX2W16},
                                   {DT_ISA_AVX2, DT_ISA_AVX512}};
    for (size_t q = 0; q < sizeof pairs / sizeof pairs[0]; q++) {
        const int x = pairs[q][0], y = pairs[q][1];
        if (!kg[x] || !kg[y])
            continue;
        const int same = memcmp(C[x + 1], C[y + 1], (size_t)M * ldc * sizeof(float)) == 0;
        CHECK(same);
        if (!same)
            fprintf(stderr, "  %s != %s bitwise: ta%d tb%d M%d N%d K%d bias%d accum%d\n",
                    dt_isa_name(x), dt_isa_name(y), p->ta, p->tb, M, N, p->K, use_bias, accum);
    }
}

static void test_shape(int ta, int tb, int M, int N, int K, int pad)
{
    /* stored shapes: A is (M, K) or (K, M), B is (K, N) or (N, K), each row padded by pad */
    problem p = {.ta = ta, .tb = tb, .M = M, .N = N, .K = K, .pad = pad};
    const int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    p.lda = ac + pad, p.ldb = bc + pad, p.ldc = N + pad;
    p.A = falloc((size_t)ar * p.lda), p.B = falloc((size_t)br * p.ldb);
    p.C0 = falloc((size_t)M * p.ldc), p.bias = falloc(N);
    fill(p.A, (size_t)ar * p.lda, -1, 1), fill(p.B, (size_t)br * p.ldb, -1, 1);
    fill(p.bias, N, -1, 1), fill(p.C0, (size_t)M * p.ldc, -1, 1);
    p.prod = dt_xcalloc((size_t)M * N, sizeof *p.prod);
    double *row = dt_xcalloc((size_t)N, sizeof *row);
    for (int i = 0; i < M; i++) {
        memset(row, 0, (size_t)N * sizeof *row);
        for (int k = 0; k < K; k++) {
            const double a = ta ? p.A[(size_t)k * p.lda + i] : p.A[(size_t)i * p.lda + k];
            for (int j = 0; j < N; j++)
                row[j] += a * (tb ? p.B[(size_t)j * p.ldb + k] : p.B[(size_t)k * p.ldb + j]);
        }
        memcpy(p.prod + (size_t)i * N, row, (size_t)N * sizeof *row);
    }
    float *C[DT_ISA_COUNT + 2];
    for (int c = 0; c < DT_ISA_COUNT + 2; c++)
        C[c] = falloc((size_t)M * p.ldc);
    double *want = dt_xcalloc((size_t)M * N, sizeof *want);
    for (int variant = 0; variant < 4; variant++)
        run_variant(&p, variant & 1, variant >> 1, C, want);
    for (int c = 0; c < DT_ISA_COUNT + 2; c++)
        free(C[c]);
    free(p.A), free(p.B), free(p.C0), free(p.bias), free(p.prod), free(row), free(want);
}

/* The three products of a linear layer IN -> OUT at batch Nb, as linear.c calls them. */
static void test_linear(int Nb, int IN, int OUT)
{
    test_shape(0, 1, Nb, OUT, IN, 0); /* out = inp @ W^T + b */
    test_shape(1, 0, OUT, IN, Nb, 0); /* dweight = dout^T @ inp */
    test_shape(0, 0, Nb, IN, OUT, 0); /* dinp = dout @ W */
}

/* dt_gemm follows dt_kern_select: bitwise the selected ISA's kernel, or cblas_sgemm where the
 * table's blas flag says so (generic) */
static void test_dispatch(void)
{
    enum { M = 37, N = 45, K = 333 };
    float *A = falloc((size_t)M * K), *B = falloc((size_t)N * K), *bias = falloc(N);
    float *want = falloc((size_t)M * N), *got = falloc((size_t)M * N);
    fill(A, (size_t)M * K, -1, 1), fill(B, (size_t)N * K, -1, 1), fill(bias, N, -1, 1);
    const dt_isa before = dt_kern_get()->isa;
    for (int i = 0; i < DT_ISA_COUNT; i++) {
        const dt_kern *t = dt_kern_table((dt_isa)i);
        if (!t)
            continue;
        CHECK(dt_kern_select((dt_isa)i) == 0);
        if (t->gemm->blas)
            dt_gemm_blas(0, 1, M, N, K, A, K, B, K, bias, 0, want, N);
        else
            dt_gemm_kern(t->gemm, 0, 1, M, N, K, A, K, B, K, bias, 0, want, N);
        dt_gemm(0, 1, M, N, K, A, K, B, K, bias, 0, got, N);
        const int same = memcmp(want, got, (size_t)M * N * sizeof *got) == 0;
        CHECK(same);
        if (!same)
            fprintf(stderr, "  dt_gemm on %s is not its table's product\n", t->name);
    }
    CHECK(dt_kern_select(before) == 0);
    free(A), free(B), free(bias), free(want), free(got);
}

int main(void)
{
    dt_mt_seed(&rng, 20261125);
    for (int i = 0; i < DT_ISA_COUNT; i++) {
        const dt_kern *t = dt_kern_table((dt_isa)i);
        if (i == DT_ISA_AVX512BF16) {
            if (t)
                CHECK(t->gemm == dt_kern_table(DT_ISA_AVX512)->gemm); /* the same fp32 code */
            continue;
        }
        kg[i] = t ? t->gemm : NULL;
        if (!kg[i])
            printf("test_gemm: skipped %s (this CPU or build cannot run it)\n", dt_isa_name(i));
        else
            printf("test_gemm: %s: MR x NR = %d x %d, MC %d, KC %d, NC %d, dt_gemm uses %s\n",
                   dt_isa_name(i), kg[i]->mr, kg[i]->nr, kg[i]->mc, kg[i]->kc, kg[i]->nc,
                   kg[i]->blas ? "cblas_sgemm" : "this kernel");
    }
    /* the linear layers of the built-in models at batch 128 */
    static const int lin[][2] = {{784, 512},  {512, 256}, {256, 10}, /* mlp */
                                 {3136, 128}, {128, 10},             /* cnn */
                                 {400, 120},  {120, 84},  {84, 10},  /* lenet5 */
                                 {64, 10},                           /* resnet20 */
                                 {512, 10}};                         /* resnet9 */
    for (size_t s = 0; s < sizeof lin / sizeof lin[0]; s++)
        test_linear(128, lin[s][0], lin[s][1]);
    test_linear(100, 784, 512); /* a batch that is no multiple of any MR */
    /* odd shapes, all four transpose combinations, strided every third */
    static const int shapes[][3] = {
        {1, 1, 1},      {6, 16, 8},   {5, 15, 7},     {7, 17, 9},     {13, 33, 300},
        {12, 32, 16},   {11, 31, 17}, {25, 65, 641},  {128, 10, 256}, {150, 40, 520},
        {12, 2100, 20}, {37, 100, 1}, {128, 512, 96}, {300, 70, 333},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                test_shape(ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], (int)(s % 3) * 3);
    test_dispatch();
    return check_finish("test_gemm");
}
