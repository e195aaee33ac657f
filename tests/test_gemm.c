/*
 * test_gemm.c - dt_gemm (runtime/kernels/gemm.c, the packed AVX2 kernel of the linear layers) against a
 * double-precision reference product, for all four transpose combinations, with and without the
 * bias row and accumulation, on shapes that exercise every edge: partial 6-row and 16-column
 * tiles, K longer than one 256-deep block, M taller than one 144-row block, N wider than one
 * 2048-column block, strided operands (lda/ldb/ldc larger than the rows). The cblas_sgemm
 * fallback (dt_gemm_blas, the same contract) is checked the same way. Garbage in C must be
 * overwritten when not accumulating.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"
#include "fdcheck.h"
#include "kernels/gemm.h"

typedef void (*gemm_fn)(int, int, int, int, int, const float *, int, const float *, int,
                        const float *, int, float *, int);

static void test_shape(gemm_fn f, const char *name, int ta, int tb, int M, int N, int K, int pad)
{
    /* stored shapes: A is (M, K) or (K, M), B is (K, N) or (N, K), each row padded by pad */
    const int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    const int lda = ac + pad, ldb = bc + pad, ldc = N + pad;
    float *A = falloc((size_t)ar * lda), *B = falloc((size_t)br * ldb);
    float *C = falloc((size_t)M * ldc), *C0 = falloc((size_t)M * ldc), *bias = falloc(N);
    double *want = dt_xcalloc((size_t)M * N, sizeof *want);
    fill(A, (size_t)ar * lda, -1, 1), fill(B, (size_t)br * ldb, -1, 1), fill(bias, N, -1, 1);
    fill(C0, (size_t)M * ldc, -1, 1);
    for (int variant = 0; variant < 4; variant++) {
        const int use_bias = variant & 1, accum = variant >> 1;
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double s = accum ? C0[(size_t)i * ldc + j] : 0.0;
                if (use_bias)
                    s += bias[j];
                for (int k = 0; k < K; k++) {
                    const double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                    const double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                    s += a * b;
                }
                want[(size_t)i * N + j] = s;
            }
        memcpy(C, C0, (size_t)M * ldc * sizeof *C);
        if (!accum)
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++)
                    C[(size_t)i * ldc + j] = NAN;
        f(ta, tb, M, N, K, A, lda, B, ldb, use_bias ? bias : NULL, accum, C, ldc);
        /* float sums of K products of O(1) terms: error ~ sqrt(K) ulp-scale */
        const double tol = 1e-6 * (4.0 + 2.0 * sqrt((double)K));
        double worst = 0.0;
        int pad_ok = 1;
        for (int i = 0; i < M; i++) {
            for (int j = 0; j < N; j++) {
                const double e = fabs(C[(size_t)i * ldc + j] - want[(size_t)i * N + j]);
                worst = e > worst || e != e ? e : worst;
            }
            for (int j = N; j < ldc; j++) /* the padding of C is never touched */
                pad_ok &= C[(size_t)i * ldc + j] == C0[(size_t)i * ldc + j];
        }
        CHECK(worst <= tol);
        CHECK(pad_ok);
        if (!(worst <= tol) || !pad_ok)
            fprintf(stderr,
                    "  %s ta%d tb%d M%d N%d K%d pad%d bias%d accum%d: max error %.3g "
                    "(tolerance %.3g), C padding %s\n",
                    name, ta, tb, M, N, K, pad, use_bias, accum, worst, tol,
                    pad_ok ? "kept" : "overwritten");
    }
    free(A), free(B), free(C), free(C0), free(bias), free(want);
}

static void test_all(gemm_fn f, const char *name)
{
    static const int shapes[][3] = {
        {1, 1, 1},      {6, 16, 8},     {5, 15, 7},     {7, 17, 9},   {13, 33, 300},
        {128, 10, 256}, {150, 40, 520}, {12, 2100, 20}, {37, 100, 1}, {128, 512, 96},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                test_shape(f, name, ta, tb, shapes[s][0], shapes[s][1], shapes[s][2],
                           (int)(s % 3) * 3);
}

int main(void)
{
    dt_mt_seed(&rng, 20261125);
    if (dt_gemm_fast())
        test_all(dt_gemm, "dt_gemm (AVX2)");
    else
        printf("test_gemm: no AVX2 + FMA: dt_gemm is the cblas_sgemm path\n");
    test_all(dt_gemm_blas, "dt_gemm_blas");
    /* dt_gemm_set_fast(0) routes dt_gemm to cblas */
    const int old = dt_gemm_set_fast(0);
    CHECK(!dt_gemm_fast());
    test_shape(dt_gemm, "dt_gemm (forced cblas)", 0, 1, 9, 20, 30, 1);
    dt_gemm_set_fast(old);
    CHECK(dt_gemm_fast() == old);
    return check_finish("test_gemm");
}
