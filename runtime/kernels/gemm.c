/*
 * gemm.c - single-precision matrix product for the linear layers, see gemm.h.
 *
 * The structure of BLIS / GotoBLAS (Goto and van de Geijn, "Anatomy of high-performance matrix
 * multiplication", TOMS 2008; Van Zee and van de Geijn, "BLIS", TOMS 2015): op(B) is packed in
 * blocks of KC x NC, as panels of NR = 16 columns (k-major, zero-padded); op(A) in blocks of
 * MC x KC, as panels of MR = 6 rows; a 6 x 16 micro-kernel keeps 12 AVX2 accumulators over one
 * KC-long stretch of both panels: per k, 2 loads of B, 6 broadcasts of A, 12 FMAs.
 * The 16-float B panel (KC = 320: 20 KB) stays in L1 while the kernel sweeps the A panels of the
 * block (MC = 144: 184 KB, L2).
 *
 * Why not OpenBLAS: the mlp is GEMM-bound, on the same OpenBLAS as the PyTorch it is compared
 * with, so only a faster product moves its ratio: the K loop is unrolled 8 times, which measured
 * faster than 4 and than OpenBLAS 0.3.21's sgemm on the mlp's shapes (bench/sgemm_rate.c and
 * `make bench`; the numbers and the CPU they were measured on: docs/performance.md). It also
 * starts the forward's accumulators from the bias (no bias copy pass) and never scales C by beta
 * in a separate pass. K is cut into equal blocks (784 = 3 x 262, not 2 x 320 + 144).
 *
 * Compiled into AVX2 + FMA functions (GCC target attribute) chosen at run time; other CPUs and
 * compilers call cblas_sgemm with the same contract.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "common.h"
#include "gemm.h"

/* The same contract through cblas_sgemm (CPUs without AVX2 + FMA, and the tests' baseline). */
void dt_gemm_blas(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                  int ldb, const float *bias, int accum, float *C, int ldc)
{
    DT_ASSERT(M >= 1 && N >= 1 && K >= 1);
    float beta = accum ? 1.0f : 0.0f;
    if (bias) {
        for (int i = 0; i < M; i++) {
            float *c = C + (size_t)i * ldc;
            if (accum)
                for (int j = 0; j < N; j++)
                    c[j] += bias[j];
            else
                memcpy(c, bias, (size_t)N * sizeof *c);
        }
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
                K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include "simd_avx2.h"

enum { MR = 6, NR = 16, KC = 320, MC = 144, NC = 2048 };

#define GEMM_T DT_AVX2_TARGET

/* Packing buffers, grown on first use (one rank runs one step at a time: no threads). */
static float *pack_a, *pack_b;

/* Ap: the mc x kc block of op(A) at (i0, k0) as panels of MR rows: Ap[p][k][r], zero-padded */
__attribute__((noinline)) GEMM_T static void pack_A(float *restrict Ap, int ta, const float *A,
                                                    int lda, int i0, int mc, int k0, int kc)
{
    for (int p = 0; p < mc; p += MR) {
        const int m = mc - p < MR ? mc - p : MR;
        float *d = Ap + (size_t)p * kc;
        if (ta) { /* element (i, k) = A[k*lda + i]: MR contiguous floats per k */
            const float *s = A + (size_t)k0 * lda + i0 + p;
            for (int k = 0; k < kc; k++, s += lda, d += MR)
                for (int r = 0; r < MR; r++)
                    d[r] = r < m ? s[r] : 0.0f;
        } else { /* element (i, k) = A[i*lda + k]: 8 x 8 transposes of MR rows (+ 2 unused) */
            const float *s = A + (size_t)(i0 + p) * lda + k0;
            int k = 0;
            if (m == MR)
                for (; k + 8 <= kc; k += 8) {
                    __m256 r[8];
                    for (int q = 0; q < MR; q++)
                        r[q] = _mm256_loadu_ps(s + (size_t)q * lda + k);
                    r[6] = r[7] = _mm256_setzero_ps();
                    dt_tr8x8(r);
                    /* row q of the transpose is k + q's MR values (+ 2 zeros): each store
                     * spills 2 floats into the next k's slot, which the next store rewrites;
                     * the last spills into the next panel (packed later) or the slack */
                    for (int q = 0; q < 8; q++)
                        _mm256_storeu_ps(d + (size_t)(k + q) * MR, r[q]);
                }
            for (; k < kc; k++)
                for (int r = 0; r < MR; r++)
                    d[(size_t)k * MR + r] = r < m ? s[(size_t)r * lda + k] : 0.0f;
        }
    }
}

/* Bp: the kc x nc block of op(B) at (k0, j0) as panels of NR columns: Bp[p][k][c], zero-padded */
GEMM_T static void pack_B(float *restrict Bp, int tb, const float *B, int ldb, int k0, int kc,
                          int j0, int nc)
{
    if (!tb) {
        /* element (k, j) = B[k*ldb + j]: each row of the block read once, front to back (going
         * down a 16-column panel instead touches a new cache line per row, and B, produced
         * or last read a whole layer earlier, is usually no longer in L2) */
        const int full = nc / NR * NR;
        for (int k = 0; k < kc; k++) {
            const float *s = B + (size_t)(k0 + k) * ldb + j0;
            float *d = Bp + (size_t)k * NR;
            for (int p = 0; p < full; p += NR) {
                float *q = d + (size_t)p * kc;
                _mm256_storeu_ps(q, _mm256_loadu_ps(s + p));
                _mm256_storeu_ps(q + 8, _mm256_loadu_ps(s + p + 8));
            }
            if (full < nc) {
                float *q = d + (size_t)full * kc;
                for (int c = 0; c < NR; c++)
                    q[c] = full + c < nc ? s[full + c] : 0.0f;
            }
        }
        return;
    }
    for (int p = 0; p < nc; p += NR) {
        /* element (k, j) = B[j*ldb + k]: rows of B are columns of the panel */
        const int n = nc - p < NR ? nc - p : NR;
        float *d = Bp + (size_t)p * kc;
        const float *s = B + (size_t)(j0 + p) * ldb + k0;
        int k = 0;
        if (n == NR)
            for (; k + 8 <= kc; k += 8)
                for (int h = 0; h < 2; h++) {
                    __m256 r[8];
                    for (int c = 0; c < 8; c++)
                        r[c] = _mm256_loadu_ps(s + (size_t)(8 * h + c) * ldb + k);
                    dt_tr8x8(r);
                    for (int q = 0; q < 8; q++)
                        _mm256_storeu_ps(d + (size_t)(k + q) * NR + 8 * h, r[q]);
                }
        for (; k < kc; k++)
            for (int c = 0; c < NR; c++)
                d[(size_t)k * NR + c] = c < n ? s[(size_t)c * ldb + k] : 0.0f;
    }
}

/* c (m x n of a 6 x 16 tile, row stride ldc) (+)= a panel . b panel over kc, + bias row:
 * init: the accumulators start from bias (NULL: 0); add: add to c instead of overwriting */
GEMM_T static void micro(int kc, const float *restrict a, const float *restrict b, float *c,
                         int ldc, int m, int n, const float *bias, int add)
{
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    if (bias) {
        float bb[NR] = {0};
        for (int j = 0; j < n; j++)
            bb[j] = bias[j];
        c00 = c10 = c20 = c30 = c40 = c50 = _mm256_loadu_ps(bb);
        c01 = c11 = c21 = c31 = c41 = c51 = _mm256_loadu_ps(bb + 8);
    } else {
        c00 = c01 = c10 = c11 = c20 = c21 = _mm256_setzero_ps();
        c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    }
#pragma GCC unroll 8
    for (int k = 0; k < kc; k++, a += MR, b += NR) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        __m256 x;
#define GEMM_ROW(r, lo, hi)                                                                        \
    x = _mm256_broadcast_ss(a + (r));                                                              \
    lo = _mm256_fmadd_ps(x, b0, lo);                                                               \
    hi = _mm256_fmadd_ps(x, b1, hi);
        GEMM_ROW(0, c00, c01)
        GEMM_ROW(1, c10, c11)
        GEMM_ROW(2, c20, c21)
        GEMM_ROW(3, c30, c31)
        GEMM_ROW(4, c40, c41)
        GEMM_ROW(5, c50, c51)
#undef GEMM_ROW
    }
    const __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                               {c30, c31}, {c40, c41}, {c50, c51}};
    if (m == MR && n == NR) {
        for (int r = 0; r < MR; r++) {
            float *d = c + (size_t)r * ldc;
            if (add) {
                _mm256_storeu_ps(d, _mm256_add_ps(_mm256_loadu_ps(d), acc[r][0]));
                _mm256_storeu_ps(d + 8, _mm256_add_ps(_mm256_loadu_ps(d + 8), acc[r][1]));
            } else {
                _mm256_storeu_ps(d, acc[r][0]);
                _mm256_storeu_ps(d + 8, acc[r][1]);
            }
        }
        return;
    }
    float t[MR * NR];
    for (int r = 0; r < MR; r++) {
        _mm256_storeu_ps(t + r * NR, acc[r][0]);
        _mm256_storeu_ps(t + r * NR + 8, acc[r][1]);
    }
    for (int r = 0; r < m; r++)
        for (int j = 0; j < n; j++)
            c[(size_t)r * ldc + j] = add ? c[(size_t)r * ldc + j] + t[r * NR + j] : t[r * NR + j];
}

void dt_gemm_prepare(void)
{
    if (!pack_a) {
        pack_a = dt_xmalloc((size_t)MC * KC + 8, sizeof *pack_a); /* + the transposes' spill */
        pack_b = dt_xmalloc((size_t)KC * NC, sizeof *pack_b);
    }
}

GEMM_T static void gemm_avx2(int ta, int tb, int M, int N, int K, const float *A, int lda,
                             const float *B, int ldb, const float *bias, int accum, float *C,
                             int ldc)
{
    dt_gemm_prepare();
    for (int jc = 0; jc < N; jc += NC) {
        const int nc = N - jc < NC ? N - jc : NC;
        /* K in equal blocks of at most KC (784 = 3 x 262, not 2 x 320 + 144) */
        const int kb = (K + KC - 1) / KC, kstep = (K + kb - 1) / kb;
        for (int pc = 0; pc < K; pc += kstep) {
            const int kc = K - pc < kstep ? K - pc : kstep;
            pack_B(pack_b, tb, B, ldb, pc, kc, jc, nc);
            /* the first k block starts from the bias and overwrites C unless accumulating */
            const float *bs = pc == 0 && bias ? bias + jc : NULL;
            const int add = pc > 0 || accum;
            for (int ic = 0; ic < M; ic += MC) {
                const int mc = M - ic < MC ? M - ic : MC;
                pack_A(pack_a, ta, A, lda, ic, mc, pc, kc);
                for (int jr = 0; jr < nc; jr += NR) {
                    const int n = nc - jr < NR ? nc - jr : NR;
                    for (int ir = 0; ir < mc; ir += MR) {
                        const int m = mc - ir < MR ? mc - ir : MR;
                        micro(kc, pack_a + (size_t)ir * kc, pack_b + (size_t)jr * kc,
                              C + (size_t)(ic + ir) * ldc + jc + jr, ldc, m, n, bs ? bs + jr : NULL,
                              add);
                    }
                }
            }
        }
    }
}

static int use_fast = -1;

int dt_gemm_fast(void)
{
    if (use_fast < 0)
        use_fast = dt_cpu_avx2_fma();
    return use_fast;
}

int dt_gemm_set_fast(int on)
{
    const int old = dt_gemm_fast();
    use_fast = on && dt_cpu_avx2_fma();
    return old;
}

void dt_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
             const float *bias, int accum, float *C, int ldc)
{
    DT_ASSERT(M >= 1 && N >= 1 && K >= 1);
    if (dt_gemm_fast())
        gemm_avx2(ta, tb, M, N, K, A, lda, B, ldb, bias, accum, C, ldc);
    else
        dt_gemm_blas(ta, tb, M, N, K, A, lda, B, ldb, bias, accum, C, ldc);
}

#else

void dt_gemm_prepare(void) {}

int dt_gemm_fast(void) { return 0; }

int dt_gemm_set_fast(int on)
{
    (void)on;
    return 0;
}

void dt_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
             const float *bias, int accum, float *C, int ldc)
{
    dt_gemm_blas(ta, tb, M, N, K, A, lda, B, ldb, bias, accum, C, ldc);
}
#endif
