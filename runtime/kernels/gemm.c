/*
 * gemm.c - single-precision matrix product for the linear layers, see gemm.h: the dispatch to the
 * ISA in use, the packing buffers every ISA shares, and the cblas_sgemm path.
 *
 * The kernels themselves are in isa/gemm.c, written once over W lanes and built per ISA. On the
 * generic ISA (W = 4, no FMA) OpenBLAS's sgemm measured faster than the hand-written kernel, so
 * dt_gemm calls it there (the table's blas flag); the kernel stays built and tested (numbers and
 * CPU: docs/performance.md).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "common.h"
#include "gemm.h"
#include "gemm_k.h"
#include "isa.h"

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

/* Packing buffers, allocated once for the largest blocks of the ISAs this CPU runs (and kept for
 * the process's life). */
static float *pack_a, *pack_b;

/* p rounded up to a 64-byte boundary (p has 16 floats of slack): the kernel's B loads are whole
 * 64-byte vectors, and one that straddles two cache lines costs two L1 accesses */
static float *align64(float *p) { return p + (64 - (uintptr_t)p % 64) % 64 / sizeof *p; }

void dt_gemm_prepare(void)
{
    if (pack_a)
        return;
    size_t na = 0, nb = 0;
    for (int i = 0; i < DT_ISA_COUNT; i++) {
        const dt_kern *t = dt_kern_table((dt_isa)i);
        if (t && t->gemm) {
            na = t->gemm->pack_a > na ? t->gemm->pack_a : na;
            nb = t->gemm->pack_b > nb ? t->gemm->pack_b : nb;
        }
    }
    DT_ASSERT(na > 0 && nb > 0);
    pack_a = align64(dt_xmalloc(na + 16, sizeof *pack_a));
    pack_b = align64(dt_xmalloc(nb + 16, sizeof *pack_b));
}

void dt_gemm_kern(const struct dt_kgemm *g, int ta, int tb, int M, int N, int K, const float *A,
                  int lda, const float *B, int ldb, const float *bias, int accum, float *C, int ldc)
{
    DT_ASSERT(M >= 1 && N >= 1 && K >= 1);
    dt_gemm_prepare();
    g->run(ta, tb, M, N, K, A, lda, B, ldb, bias, accum, C, ldc, pack_a, pack_b);
}

void dt_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
             const float *bias, int accum, float *C, int ldc)
{
    const struct dt_kgemm *g = dt_kern_get()->gemm;
    if (g && !g->blas)
        dt_gemm_kern(g, ta, tb, M, N, K, A, lda, B, ldb, bias, accum, C, ldc);
    else
        dt_gemm_blas(ta, tb, M, N, K, A, lda, B, ldb, bias, accum, C, ldc);
}
