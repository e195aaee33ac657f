/*
 * isa/gemm.c - the packed fp32 GEMM of gemm.h, written once over W float lanes (vec.h) and built
 * per ISA (the gemm family of isa.h: dt_kgemm_generic, _avx2, _avx2w16, _avx512).
 *
 * The structure of BLIS / GotoBLAS (Goto and van de Geijn, "Anatomy of high-performance matrix
 * multiplication", TOMS 2008; Van Zee and van de Geijn, "BLIS", TOMS 2015): op(B) is packed in
 * blocks of KC x NC, as panels of NR = NV * W columns (k-major, zero-padded); op(A) in blocks of
 * MC x KC, as panels of MR rows; an MR x NR micro-kernel keeps MR * NV vector accumulators over one
 * KC-long stretch of both panels: per k, NV loads of B, MR broadcasts of A, MR * NV FMAs. The B
 * panel stays in L1 while the kernel sweeps the A panels of the block (L2).
 *
 * Register tiles (MR x NR):
 *   W = 4  (generic, 16 xmm)  6 x 8:  12 accumulators + 2 B vectors + 1 broadcast.
 *   W = 8  (avx2, 16 ymm)     6 x 16: the same count; today's tile, kept for its bitwise results.
 *   W = 16 (avx512, 32 zmm)   12 x 32: 24 accumulators + 2 B vectors + broadcasts folded into the
 *          FMAs ({1to16} memory operands). Against 14 x 32 (28 accumulators) it wasted less of
 *          the mlp's M = 128 rows (11 panels of 12 cover 132 rows, 10 of 14 cover 140; now the
 *          last panel runs 8 rows: micro) and measured as fast on full tiles; 8 x 48 and 6 x 64
 *          load 3 and 4 B vectors per 24 FMAs and pad N = 256 / 784 / 10 more. Two FMA pipes of latency 4 need 8 independent chains: 24 is
 *          plenty. Candidates were compared with bench/sgemm_rate.c (DT_GEMM_MR / DT_GEMM_NV /
 *          DT_GEMM_KC / DT_GEMM_KU override the tile, KC and the k unroll at build time; none of
 *          the candidates was faster); numbers and CPU: docs/performance.md.
 * The k loop is not unrolled: GCC then keeps each accumulator in one register (unrolled, it
 * renamed the array's accumulators through extra register moves at every FMA, for no gain).
 * A tile whose columns fit in one vector (n <= W: the mlp's N = 10 output layer) runs that
 * vector's FMAs alone. Full tiles are stored from the registers; only partial ones go through a
 * buffer (picking lanes by index would keep every tile's accumulators in memory).
 *
 * Cache blocks: KC = 320 on every ISA, and K is cut into equal blocks of at most KC (784 = 3 x 262,
 * not 2 x 320 + 144). The result of one element is its bias, then FMAs over k in order within a
 * block, each block's sum added to C: an order that depends on neither W nor the tile, so avx2,
 * avx2w16 and avx512 give bitwise equal products (generic differs: no FMA; its table calls
 * cblas_sgemm anyway, gemm.c), and so do the linear layers on every x86 ISA. A B panel is then at most 320 x 32 x 4 = 40 KB (W = 16):
 * within the 48 KB L1 of Zen 5; on the 32 KB L1 of Zen 4 and Skylake-SP it streams partly from L2,
 * which the 24-FMA step per 2 B loads tolerates (KC = 256, 192 and 128 for W = 16, which keep the
 * panel in a 32 KB L1, measured no faster on Zen 5 and would give up the bitwise equality). MC = 144
 * rows (W = 16: 12 panels of 12) makes the A block 184 KB, well inside the 1 MB L2 of Zen 4/5 and
 * Skylake-SP (and Zen 3's 512 KB); NC = 2048 columns of B per block (2.6 MB, L3: each B panel is
 * read from it once per A block).
 *
 * The forward's accumulators start from the bias (no bias copy pass), and later K blocks add into
 * C in place (no separate beta pass). Transposed packing uses 8 x 8 AVX transposes where the ISA
 * has AVX2 (every x86 ISA but generic), plain loops elsewhere.
 */
#include "vec.h"

#include "kernels/gemm_k.h"
#include "kernels/poll.h"

#ifndef DT_GEMM_MR
#if DT_W == 16
#define DT_GEMM_MR 12
#else
#define DT_GEMM_MR 6
#endif
#endif
#ifndef DT_GEMM_NV
#define DT_GEMM_NV 2
#endif
#ifndef DT_GEMM_KC
#define DT_GEMM_KC 320
#endif
/* the k loop's unroll factor */
#ifndef DT_GEMM_KU
#define DT_GEMM_KU 1
#endif
#define PRAGMA_(x) _Pragma(#x)
#define PRAGMA(x) PRAGMA_(x)

enum {
    MR = DT_GEMM_MR,
    NV = DT_GEMM_NV,
    NR = NV * DT_W,
    KC = DT_GEMM_KC,
    MC = (144 + MR - 1) / MR * MR,
    NC = (2048 + NR - 1) / NR * NR,
    SPILL = 16 /* floats the transposing stores may write past a block */
};

#if defined(__AVX2__)
#include "kernels/simd_avx2.h"

/* 8 k of an A panel (m <= MR rows from s, row stride lda; zeros below) into d (k-major, MR per
 * k): groups of 8 rows transposed; a group's row q holds k + q's values, of which the first
 * min(8, MR - 8g) are stored (a full 8-float store; what spills past them is rewritten by the next
 * k's first group, the last k's spill lands in the next panel, packed later, or the slack) */
DT_KINL void pack_a8(float *restrict d, const float *s, int lda, int m)
{
    enum { G = (MR + 7) / 8 };
    __m256 r[G][8];
    for (int g = 0; g < G; g++)
        for (int q = 0; q < 8; q++)
            r[g][q] = 8 * g + q < m ? _mm256_loadu_ps(s + (size_t)(8 * g + q) * lda)
                                    : _mm256_setzero_ps();
    for (int g = 0; g < G; g++)
        dt_tr8x8(r[g]);
    for (int q = 0; q < 8; q++)
        for (int g = 0; g < G; g++)
            _mm256_storeu_ps(d + (size_t)q * MR + 8 * g, r[g][q]);
}

/* 8 k of a B panel whose columns are rows of B (n <= NR rows from s, stride ldb; zero columns
 * after them) into d */
DT_KINL void pack_b8(float *restrict d, const float *s, int ldb, int n)
{
    for (int h = 0; h < NR / 8; h++) {
        __m256 r[8];
        for (int c = 0; c < 8; c++)
            r[c] = 8 * h + c < n ? _mm256_loadu_ps(s + (size_t)(8 * h + c) * ldb)
                                 : _mm256_setzero_ps();
        dt_tr8x8(r);
        for (int q = 0; q < 8; q++)
            _mm256_storeu_ps(d + (size_t)q * NR + 8 * h, r[q]);
    }
}
#define HAVE_TR8 1
#else
#define HAVE_TR8 0
#endif

/* Ap: the mc x kc block of op(A) at (i0, k0) as panels of MR rows: Ap[p][k][r], zero-padded */
__attribute__((noinline)) static void pack_A(float *restrict Ap, int ta, const float *A, int lda,
                                             int i0, int mc, int k0, int kc)
{
    for (int p = 0; p < mc; p += MR) {
        const int m = mc - p < MR ? mc - p : MR;
        float *d = Ap + (size_t)p * kc;
        if (ta) { /* element (i, k) = A[k*lda + i]: MR contiguous floats per k */
            const float *s = A + (size_t)k0 * lda + i0 + p;
            if (m == MR)
                for (int k = 0; k < kc; k++, s += lda, d += MR)
                    memcpy(d, s, MR * sizeof *d);
            else
                for (int k = 0; k < kc; k++, s += lda, d += MR)
                    for (int r = 0; r < MR; r++)
                        d[r] = r < m ? s[r] : 0.0f;
            continue;
        }
        /* element (i, k) = A[i*lda + k] */
        const float *s = A + (size_t)(i0 + p) * lda + k0;
        int k = 0;
#if HAVE_TR8
        if (m == MR)
            for (; k + 8 <= kc; k += 8)
                pack_a8(d + (size_t)k * MR, s + k, lda, MR);
        else
            for (; k + 8 <= kc; k += 8)
                pack_a8(d + (size_t)k * MR, s + k, lda, m);
#endif
        for (; k < kc; k++)
            for (int r = 0; r < MR; r++)
                d[(size_t)k * MR + r] = r < m ? s[(size_t)r * lda + k] : 0.0f;
    }
}

/* Bp: the kc x nc block of op(B) at (k0, j0) as panels of NR columns: Bp[p][k][c], zero-padded */
__attribute__((noinline)) static void pack_B(float *restrict Bp, int tb, const float *B, int ldb,
                                             int k0, int kc, int j0, int nc)
{
    if (!tb) {
        /* element (k, j) = B[k*ldb + j]: each row of the block read once, front to back (going
         * down a panel instead touches a new cache line per row, and B, produced or last read a
         * whole layer earlier, is usually no longer in L2) */
        const int full = nc / NR * NR;
        for (int k = 0; k < kc; k++) {
            const float *s = B + (size_t)(k0 + k) * ldb + j0;
            float *d = Bp + (size_t)k * NR;
            for (int p = 0; p < full; p += NR)
                for (int v = 0; v < NV; v++)
                    vf_store(d + (size_t)p * kc + v * DT_W, vf_load(s + p + v * DT_W));
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
#if HAVE_TR8
        if (n == NR)
            for (; k + 8 <= kc; k += 8)
                pack_b8(d + (size_t)k * NR, s + k, ldb, NR);
        else
            for (; k + 8 <= kc; k += 8)
                pack_b8(d + (size_t)k * NR, s + k, ldb, n);
#endif
        for (; k < kc; k++)
            for (int c = 0; c < NR; c++)
                d[(size_t)k * NR + c] = c < n ? s[(size_t)c * ldb + k] : 0.0f;
    }
}

/* the m x n corner of a tile buf into c (row stride ldc): overwrite, or add when add */
__attribute__((noinline)) static void partial_tile(float *c, int ldc, int m, int n,
                                                   float buf[MR][NR], int add)
{
    for (int r = 0; r < m; r++)
        for (int j = 0; j < n; j++) {
            const float x = buf[r][j];
            c[(size_t)r * ldc + j] = add ? c[(size_t)r * ldc + j] + x : x;
        }
}

/* the m x n corner of an R x NR tile acc (R <= MR rows) into c (row stride ldc): overwrite, or
 * add when add. A full tile goes from the registers; a partial one through a buffer (its lanes
 * are picked by index, which would otherwise make GCC keep every accumulator in memory for every
 * tile) */
DT_KINL void store_tile(float *c, int ldc, int m, int n, vf acc[MR][NV], int add, const int R)
{
    if (m == R && n == NR) {
#pragma GCC unroll 16
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) {
                float *d = c + (size_t)r * ldc + v * DT_W;
                vf_store(d, add ? vf_load(d) + acc[r][v] : acc[r][v]);
            }
        return;
    }
    float buf[MR][NR];
#pragma GCC unroll 16
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            vf_store(&buf[r][v * DT_W], acc[r][v]);
    partial_tile(c, ldc, m, n, buf, add);
}

/* c (m x n of an R x NR tile, m <= R <= MR, row stride ldc) (+)= the first R rows of an A panel
 * (MR rows per k) . b panel over kc: the accumulators start from bias (n floats; NULL: 0); add:
 * add to c instead of overwriting it. Each element is its bias, then the FMAs over k in order,
 * whatever R: the tile's height changes which rows are computed, not how. */
DT_KINL void micro_rows(int kc, const float *restrict a, const float *restrict b, float *c, int ldc,
                        int m, int n, const float *bias, int add, const int R)
{
    vf acc[MR][NV];
    if (bias) {
        float bb[NR] = {0};
        for (int j = 0; j < n; j++)
            bb[j] = bias[j];
#pragma GCC unroll 16
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                acc[r][v] = vf_load(bb + v * DT_W);
    } else {
#pragma GCC unroll 16
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                acc[r][v] = vf_zero();
    }
    if (NV > 1 && n <= DT_W) {
        /* one vector of columns holds them all (the mlp's last layer, N = 10): its FMAs alone,
         * the same ones the full loop computes for these lanes */
        for (int k = 0; k < kc; k++, a += MR, b += NR) {
            const vf b0 = vf_load(b);
#pragma GCC unroll 16
            for (int r = 0; r < R; r++)
                acc[r][0] = vf_fma(vf_set1(a[r]), b0, acc[r][0]);
        }
        store_tile(c, ldc, m, n, acc, add, R);
        return;
    }
    PRAGMA(GCC unroll DT_GEMM_KU)
    for (int k = 0; k < kc; k++, a += MR, b += NR) {
        vf bv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            bv[v] = vf_load(b + v * DT_W);
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
            const vf x = vf_set1(a[r]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                acc[r][v] = vf_fma(x, bv[v], acc[r][v]);
        }
    }
    store_tile(c, ldc, m, n, acc, add, R);
}

/* c (m x n of an MR x NR tile) (+)= a panel . b panel over kc (micro_rows). A tile of the last
 * few rows of M runs a third or two thirds of the rows when that covers them (MR = 12: 4 or 8
 * rows; MR = 6: 2 or 4): M = 64 (a batch of 64 in the linear layers' forward and input
 * gradient) is 5 tiles of 12 and one of 4, not 6 tiles of 12 with 8 rows of zeros; the same
 * bits. */
static void micro(int kc, const float *restrict a, const float *restrict b, float *c, int ldc,
                  int m, int n, const float *bias, int add)
{
    if (m <= MR / 3)
        micro_rows(kc, a, b, c, ldc, m, n, bias, add, MR / 3);
    else if (m <= 2 * MR / 3)
        micro_rows(kc, a, b, c, ldc, m, n, bias, add, 2 * MR / 3);
    else
        micro_rows(kc, a, b, c, ldc, m, n, bias, add, MR);
}

#if (DT_W == 16 && defined(__AVX512F__)) || (DT_W == 8 && defined(__AVX2__))
#include "kernels/isa/lanes_io.h" /* tr_block */

/* ---- C = A . B^T as C^T = B . A^T: the weights read in place (AVX-512, AVX2) ----
 * The linear layers' forward (C = X W^T, W of N x K rows, N > M) packed W^T, the larger operand,
 * every step: 8 x 8 transposes of all of W (the mlp's 1.6 MB fc1 weights, which the optimizer
 * has just written, so from L3). Computed as C^T = W X^T instead, W's rows are the A side, read
 * in place (MR rows, one broadcast of each per k, each row's cache lines serving 16 k), and X^T,
 * M columns, is what gets packed (pack_B of X's rows); each tile of C^T is transposed in
 * registers (W x W) as it is stored, m floats a row under a mask. Each element is the same
 * bias, the same FMAs over k in the same K blocks and order (fma(x, w, c) = fma(w, x, c)), so
 * the same bits as run's tiles (the 16-lane kernel lowered to AVX2 keeps run's way, and equals
 * both bitwise). Zen 5,
 * bench/sgemm_rate --isa, 3 interleaved rounds against run's way: 64x512x784 (B^T) 194-197 ->
 * 205-228 GFLOP/s, 128x512x784 207-224 -> 225-231, 64x256x512 179-194 -> 228-232, 128x256x512
 * 200-213 -> 225-231 (the zmm peak measured that hour: 247-256). */

/* C (column stride 1, row stride ldc) (+)= the transpose of the m x n corner of acc (R rows of
 * NR columns): row j of C, columns 0..m-1, from column j of acc; W x W register transposes
 * (16 x 16 on AVX-512, 8 x 8 on AVX2), masked stores of m floats */
DT_KINL void store_tile_t(float *c, int ldc, int m, int n, vf acc[MR][NV], int add, const int R)
{
#if DT_W == 16
    const __mmask16 km = (__mmask16)((1u << m) - 1u);
#else
    const __m256i km =
        _mm256_cmpgt_epi32(_mm256_set1_epi32(m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
#endif
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
        if (v * DT_W >= n)
            break;
        vf t[DT_W];
#pragma GCC unroll 16
        for (int r = 0; r < DT_W; r++)
            t[r] = r < R ? acc[r][v] : vf_zero();
        tr_block(t);
        const int cols = n - v * DT_W < DT_W ? n - v * DT_W : DT_W;
        for (int j = 0; j < cols; j++) {
            float *d = c + (size_t)(v * DT_W + j) * ldc;
#if DT_W == 16
            const __m512 x =
                add ? _mm512_add_ps(_mm512_maskz_loadu_ps(km, d), (__m512)t[j]) : (__m512)t[j];
            _mm512_mask_storeu_ps(d, km, x);
#else
            const __m256 x =
                add ? _mm256_add_ps(_mm256_maskload_ps(d, km), (__m256)t[j]) : (__m256)t[j];
            _mm256_maskstore_ps(d, km, x);
#endif
        }
    }
}

/* C^T's R x NR tile (m x n used, m <= R): rows a[r * la + k] (row m - 1 stands in for the rows
 * past m), the B panel b over kc; from bias (R per-row values, NULL: 0) or 0; add: into C */
DT_KINL void micro_t_rows(int kc, const float *a, int la, const float *restrict b, float *c,
                          int ldc, int m, int n, const float *bias, int add, const int R)
{
    vf acc[MR][NV];
    const float *ar[MR];
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) {
        ar[r] = a + (size_t)(r < m ? r : m - 1) * la;
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            acc[r][v] = bias ? vf_set1(bias[r < m ? r : m - 1]) : vf_zero();
    }
    for (int k = 0; k < kc; k++, b += NR) {
        vf bv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            bv[v] = vf_load(b + v * DT_W);
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
            const vf x = vf_set1(ar[r][k]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                acc[r][v] = vf_fma(x, bv[v], acc[r][v]);
        }
    }
    store_tile_t(c, ldc, m, n, acc, add, R);
}

static void micro_t(int kc, const float *a, int la, const float *restrict b, float *c, int ldc,
                    int m, int n, const float *bias, int add)
{
    if (m <= MR / 3)
        micro_t_rows(kc, a, la, b, c, ldc, m, n, bias, add, MR / 3);
    else if (m <= 2 * MR / 3)
        micro_t_rows(kc, a, la, b, c, ldc, m, n, bias, add, 2 * MR / 3);
    else
        micro_t_rows(kc, a, la, b, c, ldc, m, n, bias, add, MR);
}

/* C (M x N) (+)= A (M x K) . B^T (B: N x K, row stride ldb) + bias (N), as C^T = B . A^T */
static void run_bt(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                   const float *bias, int accum, float *C, int ldc, float *pb)
{
    for (int jc = 0; jc < M; jc += NC) {
        const int nc = M - jc < NC ? M - jc : NC;
        const int kb = (K + KC - 1) / KC, kstep = (K + kb - 1) / kb; /* run's K blocks */
        for (int pc = 0; pc < K; pc += kstep) {
            const int kc = K - pc < kstep ? K - pc : kstep;
            pack_B(pb, 1, A, lda, pc, kc, jc, nc); /* A^T's columns: rows of A */
            const int add = pc > 0 || accum;
            for (int ir = 0; ir < N; ir += MR) {
                const int m = N - ir < MR ? N - ir : MR;
                dt_poll(); /* progress the open gradient buckets (poll.h) */
                for (int jr = 0; jr < nc; jr += NR) {
                    const int n = nc - jr < NR ? nc - jr : NR;
                    micro_t(kc, B + (size_t)ir * ldb + pc, ldb, pb + (size_t)jr * kc,
                            C + (size_t)(jc + jr) * ldc + ir, ldc, m, n,
                            pc == 0 && bias ? bias + ir : NULL, add);
                }
            }
        }
    }
}
#define HAVE_RUN_BT 1
#else
#define HAVE_RUN_BT 0
#endif

static void run(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                int ldb, const float *bias, int accum, float *C, int ldc, float *pa, float *pb)
{
#if HAVE_RUN_BT
    /* B^T the larger operand (the linear layers' forward, weights of N x K): run_bt. Not on
     * avx2w16 (16 lanes lowered to AVX2, run's way), which equals both bitwise. */
    if (!ta && tb && N > M && N >= MR) {
        run_bt(M, N, K, A, lda, B, ldb, bias, accum, C, ldc, pb);
        return;
    }
#endif
    for (int jc = 0; jc < N; jc += NC) {
        const int nc = N - jc < NC ? N - jc : NC;
        /* K in equal blocks of at most KC (784 = 3 x 262, not 2 x 320 + 144) */
        const int kb = (K + KC - 1) / KC, kstep = (K + kb - 1) / kb;
        for (int pc = 0; pc < K; pc += kstep) {
            const int kc = K - pc < kstep ? K - pc : kstep;
            pack_B(pb, tb, B, ldb, pc, kc, jc, nc);
            /* the first k block starts from the bias and overwrites C unless accumulating */
            const float *bs = pc == 0 && bias ? bias + jc : NULL;
            const int add = pc > 0 || accum;
            for (int ic = 0; ic < M; ic += MC) {
                const int mc = M - ic < MC ? M - ic : MC;
                dt_poll(); /* between blocks of A: tens of microseconds apart */
                pack_A(pa, ta, A, lda, ic, mc, pc, kc);
                dt_poll(); /* progress the open gradient buckets (poll.h) */
                for (int jr = 0; jr < nc; jr += NR) {
                    const int n = nc - jr < NR ? nc - jr : NR;
                    for (int ir = 0; ir < mc; ir += MR) {
                        const int m = mc - ir < MR ? mc - ir : MR;
                        micro(kc, pa + (size_t)ir * kc, pb + (size_t)jr * kc,
                              C + (size_t)(ic + ir) * ldc + jc + jr, ldc, m, n, bs ? bs + jr : NULL,
                              add);
                    }
                }
            }
        }
    }
}

const struct dt_kgemm DT_KFN(dt_kgemm) = {
    .mr = MR,
    .nr = NR,
    .mc = MC,
    .kc = KC,
    .nc = NC,
    .blas = DT_W == 4,
    .pack_a = (size_t)MC * KC + SPILL,
    .pack_b = (size_t)KC * NC + SPILL,
    .run = run,
};
