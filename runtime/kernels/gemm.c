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

#include "bf16.h"
#include "blas.h"
#include "common.h"
#include "gemm.h"
#include "gemm_k.h"
#include "isa.h"
#include "tpool.h"

/* one cblas_sgemm on the calling thread */
static void gemm_blas1(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
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

/* Packing buffers, one pair per pool thread, allocated for the largest blocks of the ISAs this
 * CPU runs when the net is built (and again only if the pool grew since). */
static float **pack_a, **pack_b;
static int packs; /* threads with buffers */

/* p rounded up to a 64-byte boundary (p has 16 floats of slack): the kernel's B loads are whole
 * 64-byte vectors, and one that straddles two cache lines costs two L1 accesses */
static float *align64(float *p) { return p + (64 - (uintptr_t)p % 64) % 64 / sizeof *p; }

void dt_gemm_prepare(void)
{
    const int T = dt_tpool_threads();
    if (packs >= T)
        return;
    size_t na = 0, nb = 0;
    for (int i = 0; i < DT_ISA_COUNT; i++) {
        const dt_kern *t = dt_kern_table((dt_isa)i);
        /* the fp32 GEMM's and the bf16 GEMM's (bf16.h): dt_gemm_kern runs both */
        const struct dt_kgemm *g[2] = {t ? t->gemm : NULL, t && t->bf16 ? t->bf16->gemm : NULL};
        for (int k = 0; k < 2; k++)
            if (g[k]) {
                na = g[k]->pack_a > na ? g[k]->pack_a : na;
                nb = g[k]->pack_b > nb ? g[k]->pack_b : nb;
            }
    }
    DT_ASSERT(na > 0 && nb > 0);
    /* the old buffers stay (a process holds one set per pool size it had: tests) */
    float **a = dt_xcalloc((size_t)T, sizeof *a), **b = dt_xcalloc((size_t)T, sizeof *b);
    for (int i = 0; i < T; i++) {
        /* zeroed now: a page touched first inside a step costs a page fault there */
        a[i] = i < packs ? pack_a[i] : align64(dt_xcalloc(na + 16, sizeof **a));
        b[i] = i < packs ? pack_b[i] : align64(dt_xcalloc(nb + 16, sizeof **b));
    }
    free(pack_a);
    free(pack_b);
    pack_a = a, pack_b = b, packs = T;
}

/* Below this many multiply-adds a product runs on the caller alone (waking the pool costs more). */
#define PAR_MIN_FMAS (1L << 18)

/* One panel of C for each pool chunk: rows (by_rows) or columns in multiples of the register
 * tile. Every element of C gets the same arithmetic whichever panel holds it (bias, then k in
 * order in the K blocks, which depend only on K), so the split changes no bits. */
typedef struct {
    const struct dt_kgemm *g;
    int ta, tb, M, N, K, lda, ldb, ldc, accum, by_rows, step;
    const float *A, *B, *bias;
    float *C;
} gemm_job;

static void gemm_panel(void *arg, int c, int thread)
{
    const gemm_job *j = arg;
    const int lo = c * j->step, n = j->by_rows ? j->M : j->N;
    const int len = n - lo < j->step ? n - lo : j->step;
    if (j->by_rows) {
        const float *A = j->ta ? j->A + lo : j->A + (size_t)lo * j->lda;
        j->g->run(j->ta, j->tb, len, j->N, j->K, A, j->lda, j->B, j->ldb, j->bias, j->accum,
                  j->C + (size_t)lo * j->ldc, j->ldc, pack_a[thread], pack_b[thread]);
    } else {
        const float *B = j->tb ? j->B + (size_t)lo * j->ldb : j->B + lo;
        const float *bias = j->bias ? j->bias + lo : NULL;
        j->g->run(j->ta, j->tb, j->M, len, j->K, j->A, j->lda, B, j->ldb, bias, j->accum, j->C + lo,
                  j->ldc, pack_a[thread], pack_b[thread]);
    }
}

/* The largest panel (rows or columns) when n is cut into `parts` panels of whole tiles. */
static int max_panel(int n, int tile, int parts)
{
    const int tiles = (n + tile - 1) / tile, p = tiles < parts ? tiles : parts;
    const int step = (tiles + p - 1) / p * tile;
    return step < n ? step : n;
}

void dt_gemm_kern(const struct dt_kgemm *g, int ta, int tb, int M, int N, int K, const float *A,
                  int lda, const float *B, int ldb, const float *bias, int accum, float *C, int ldc)
{
    DT_ASSERT(M >= 1 && N >= 1 && K >= 1);
    dt_gemm_prepare();
    const int T = dt_tpool_parts();
    if (T == 1 || (long)M * N * K < PAR_MIN_FMAS) {
        g->run(ta, tb, M, N, K, A, lda, B, ldb, bias, accum, C, ldc, pack_a[0], pack_b[0]);
        return;
    }
    /* split into T panels of whole register tiles the dimension whose largest panel is the
     * smaller share of C (the other on a tie if it has more tiles): on small layers tiles are
     * few and their count is odd (M = 128 rows are 11 tiles of 12: 72 + 56 rows) */
    const int tm = (M + g->mr - 1) / g->mr, tn = (N + g->nr - 1) / g->nr;
    const long rows = (long)max_panel(M, g->mr, T) * N, cols = (long)max_panel(N, g->nr, T) * M;
    const int by_rows = rows != cols ? rows < cols : tm >= tn;
    const int tiles = by_rows ? tm : tn, tile = by_rows ? g->mr : g->nr;
    const int parts = tiles < T ? tiles : T;
    gemm_job j = {g,   ta,  tb,   M,     N,       K,
                  lda, ldb, ldc,  accum, by_rows, (tiles + parts - 1) / parts * tile,
                  A,   B,   bias, C};
    const int n = by_rows ? M : N;
    dt_tpool_run((n + j.step - 1) / j.step, gemm_panel, &j);
}

void dt_bf16_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                  int ldb, const float *bias, int accum, float *C, int ldc)
{
    dt_gemm_kern(dt_kern_get()->bf16->gemm, ta, tb, M, N, K, A, lda, B, ldb, bias, accum, C, ldc);
}

/* On the caller alone, OpenBLAS single-threaded (threads.c): a threaded sgemm's bits, and those
 * of sgemm calls on panels of C, depend on the split (measured), so this path gives up threads
 * to keep training independent of them. Only the generic ISA takes it. */
void dt_gemm_blas(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                  int ldb, const float *bias, int accum, float *C, int ldc)
{
    gemm_blas1(ta, tb, M, N, K, A, lda, B, ldb, bias, accum, C, ldc);
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
