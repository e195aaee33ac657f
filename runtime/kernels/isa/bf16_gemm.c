/*
 * isa/bf16_gemm.c - the bf16 family's per-ISA table (kernels/bf16.h): the vdpbf16ps dot and
 * pack over arrays (the tests' view of bf16_vec.h), and the bf16 GEMM of the linear layers.
 *
 * The GEMM has the structure of gemm.c (BLIS / GotoBLAS: B packed in blocks of KC x NC as panels
 * of NR columns, A in blocks of MC x KC as panels of MR rows, a micro-kernel over one KC stretch
 * of both), with k counted in pairs: a packed element is a uint32_t holding the bf16 pair
 * (k, k + 1), rounded from fp32 while packing. Per pair the micro-kernel loads NB vectors of B
 * (NR = NB W columns) and broadcasts one pair of each of its MR rows of A:
 *   avx512bf16 (native): MR x NR = 14 x 32: 28 accumulators + 2 B vectors + 1 broadcast = 31 of
 *     the 32 zmm registers; 28 independent vdpbf16ps chains per pair cover the instruction's
 *     latency many times over, and 16 loads (2 + 14 broadcasts, folded into the vdpbf16ps as
 *     {1to16} operands) per 28 vdpbf16ps stay under two loads per cycle.
 *   elsewhere (emulated): 4 x 2W: the emulated dot needs many registers of its own.
 * Block sizes in pairs: KCP <= 192 (a 14 x 192 A panel of 10.5 KB and a 192 x 32 B panel of 24 KB
 * share a 48 KB L1), MC = 12 MR rows (A block 126 KB, in L2), NC = 1024 columns.
 * Each C element starts from its value (bias, C + bias or 0, written before the K loop) and adds
 * its pairs in k order, one vbf_dot per pair, stored and reloaded exactly between K blocks: the
 * blocking and W change nothing, and the emulated ISAs give the native bits.
 */
#include "bf16_vec.h"
#include "common.h"
#include "kernels/bf16.h"

#if DT_BF16_NATIVE
enum { MR = 14, NB = 2 };
#else
enum { MR = 4, NB = 2 };
#endif
enum { NR = NB * DT_W, KCP = 192, MC = 12 * MR, NC = 1024 };

static void dot_n(float *acc, const uint32_t *a, const uint32_t *b, size_t n)
{
    DT_ASSERT(n % DT_W == 0);
    for (size_t i = 0; i < n; i += DT_W)
        vf_store(acc + i, vbf_dot(vf_load(acc + i), vbf_load(a + i), vbf_load(b + i)));
}

static void pack_n(uint32_t *out, const float *even, const float *odd, size_t n)
{
    DT_ASSERT(n % DT_W == 0);
    for (size_t i = 0; i < n; i += DT_W)
        vbf_store(out + i, vbf_pack(vf_load(even + i), vf_load(odd + i)));
}

/* n (<= W, may be <= 0) floats from p, the rest zeros */
DT_KINL vf load_n(const float *p, int n)
{
    if (n >= DT_W)
        return vf_load(p);
    vf v = vf_zero();
    if (n > 0)
        memcpy(&v, p, (size_t)n * sizeof(float));
    return v;
}

static int imin(int a, int b) { return a < b ? a : b; }

/* One panel of `width` rows r of op(X) over kc elements of k from k0: d[p][r] = the pair
 * (X(r, k0 + 2p), X(r, k0 + 2p + 1)) for the R valid rows, zeros beyond R and beyond kc.
 * kstrided: X(r, k) = X[k ldx + r] (rows of one k contiguous); else X(r, k) = X[r ldx + k]. */
static void pack_panel(uint32_t *restrict d, int width, const float *X, int ldx, int kstrided,
                       int R, int kc)
{
    const int kp = (kc + 1) / 2;
    if (kstrided) {
        for (int p = 0; p < kp; p++) {
            const float *e = X + (size_t)(2 * p) * ldx;
            const int odd = 2 * p + 1 < kc;
            for (int r = 0; r < width; r += DT_W) {
                const int n = R - r;
                const vbf v = vbf_pack(load_n(e + r, n), odd ? load_n(e + ldx + r, n) : vf_zero());
                memcpy(d + (size_t)p * width + r, &v, (size_t)imin(DT_W, width - r) * 4);
            }
        }
        return;
    }
    for (int r = 0; r < width; r++) {
        if (r >= R) {
            for (int p = 0; p < kp; p++)
                d[(size_t)p * width + r] = 0;
            continue;
        }
        const float *s = X + (size_t)r * ldx;
        for (int p = 0; p < kp; p += DT_W) {
            const int n = kc - 2 * p; /* floats left in the row */
            const vbf v = vbf_pack_seq(load_n(s + 2 * p, n), load_n(s + 2 * p + DT_W, n - DT_W));
            const int np = imin(DT_W, kp - p);
            for (int l = 0; l < np; l++)
                d[(size_t)(p + l) * width + r] = v[l];
        }
    }
}

/* rows [0, rows) of op(X) in panels of width rows, each kp x width: d[q][p][r] */
static void pack_block(uint32_t *restrict d, int width, const float *X, int ldx, int kstrided,
                       int rows, int kc)
{
    const int kp = (kc + 1) / 2;
    for (int q = 0; q < rows; q += width) {
        const float *x = kstrided ? X + q : X + (size_t)q * ldx;
        pack_panel(d + (size_t)q * kp, width, x, ldx, kstrided, imin(width, rows - q), kc);
    }
}

/* c (m x n of an MR x NR tile, row stride ldc) += a panel . b panel over kp pairs */
static void micro(int kp, const uint32_t *restrict a, const uint32_t *restrict b, float *c, int ldc,
                  int m, int n)
{
    float t[MR * NR];
    float *d = c;
    int ld = ldc;
    if (m < MR || n < NR) {
        memset(t, 0, sizeof t);
        for (int r = 0; r < m; r++)
            memcpy(t + r * NR, c + (size_t)r * ldc, (size_t)n * sizeof *t);
        d = t;
        ld = NR;
    }
    vf acc[MR][NB];
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int q = 0; q < NB; q++)
            acc[r][q] = vf_load(d + (size_t)r * ld + q * DT_W);
    for (int p = 0; p < kp; p++, a += MR, b += NR) {
        vbf bv[NB];
#pragma GCC unroll 4
        for (int q = 0; q < NB; q++)
            bv[q] = vbf_load(b + q * DT_W);
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++) {
            const vbf av = vbf_set1(a[r]);
#pragma GCC unroll 4
            for (int q = 0; q < NB; q++)
                acc[r][q] = vbf_dot(acc[r][q], bv[q], av);
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int q = 0; q < NB; q++)
            vf_store(d + (size_t)r * ld + q * DT_W, acc[r][q]);
    if (d == t)
        for (int r = 0; r < m; r++)
            memcpy(c + (size_t)r * ldc, t + r * NR, (size_t)n * sizeof *t);
}

/* C's starting values: bias (or 0), or C + bias */
static void start_c(int M, int N, const float *bias, int accum, float *C, int ldc)
{
    if (accum && !bias)
        return;
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (accum)
            for (int j = 0; j < N; j++)
                c[j] += bias[j];
        else if (bias)
            memcpy(c, bias, (size_t)N * sizeof *c);
        else
            memset(c, 0, (size_t)N * sizeof *c);
    }
}

static uint32_t *pack_a, *pack_b; /* MC x KCP and KCP x NC pairs, allocated on first use */

static void gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                 int ldb, const float *bias, int accum, float *C, int ldc)
{
    DT_ASSERT(M >= 1 && N >= 1 && K >= 1);
    if (!pack_a) {
        pack_a = dt_xmalloc((size_t)MC * KCP, sizeof *pack_a);
        pack_b = dt_xmalloc((size_t)KCP * ((NC + NR - 1) / NR * NR), sizeof *pack_b);
    }
    start_c(M, N, bias, accum, C, ldc);
    const int kpairs = (K + 1) / 2, nk = (kpairs + KCP - 1) / KCP;
    const int kcp = (kpairs + nk - 1) / nk; /* equal K blocks, in pairs */
    for (int j0 = 0; j0 < N; j0 += NC) {
        const int nc = imin(NC, N - j0);
        for (int k0 = 0; k0 < K; k0 += 2 * kcp) {
            const int kc = imin(2 * kcp, K - k0), kp = (kc + 1) / 2;
            /* op(B)(k, j) = B[k ldb + j] (tb = 0) or B[j ldb + k]: as rows j of B^T */
            const float *b = tb ? B + (size_t)j0 * ldb + k0 : B + (size_t)k0 * ldb + j0;
            pack_block(pack_b, NR, b, ldb, !tb, nc, kc);
            for (int i0 = 0; i0 < M; i0 += MC) {
                const int mc = imin(MC, M - i0);
                const float *a = ta ? A + (size_t)k0 * lda + i0 : A + (size_t)i0 * lda + k0;
                pack_block(pack_a, MR, a, lda, ta, mc, kc);
                for (int jr = 0; jr < nc; jr += NR)
                    for (int ir = 0; ir < mc; ir += MR)
                        micro(kp, pack_a + (size_t)ir * kp, pack_b + (size_t)jr * kp,
                              C + (size_t)(i0 + ir) * ldc + j0 + jr, ldc, imin(MR, mc - ir),
                              imin(NR, nc - jr));
            }
        }
    }
}

const struct dt_kbf16 DT_KFN(dt_kbf16) = {
    .lanes = DT_W,
    .dot = dot_n,
    .pack = pack_n,
    .gemm = gemm,
};
