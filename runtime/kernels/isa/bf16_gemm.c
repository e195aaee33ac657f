/*
 * isa/bf16_gemm.c - the bf16 family's per-ISA table (kernels/bf16.h): the vdpbf16ps dot and
 * pack over arrays (the tests' view of bf16_vec.h), and the bf16 GEMM of the linear layers.
 *
 * The GEMM has the structure of gemm.c (BLIS / GotoBLAS: B packed in blocks of KC x NC as panels
 * of NR columns, A in blocks of MC x KC as panels of MR rows, a micro-kernel over one KC stretch
 * of both), with k counted in pairs: a packed element is a uint32_t holding the bf16 pair
 * (k, k + 1), rounded from fp32 while packing: first as dt_round_bf16 rounds (nearest even, a
 * denormal kept, so that one just below 2^-126 may round up to a normal bf16), then as
 * VCVTNE2PS2BF16 packs (which flushes what is still denormal). So a float32 operand packs to the
 * bits of its rounded copy: the linear layers give the float32 master weights, not a rounded
 * copy of them (layer.h, DT_PARAM_BF16_PACKED), and activations already rounded pack unchanged.
 * Per pair the micro-kernel loads NB vectors of B (NR = NB W columns) and broadcasts one pair of
 * each of its MR rows of A:
 *   avx512bf16 (native): MR x NR = 14 x 32: 28 accumulators + 2 B vectors + 1 broadcast = 31 of
 *     the 32 zmm registers; 28 independent vdpbf16ps chains per pair cover the instruction's
 *     latency many times over, and 16 loads (2 + 14 broadcasts, folded into the vdpbf16ps as
 *     {1to16} operands) per 28 vdpbf16ps stay under two loads per cycle.
 *   elsewhere (emulated): 4 x 2W: the emulated dot needs many registers of its own.
 * Block sizes in pairs: KCP <= 192 (a 14 x 192 A panel of 10.5 KB and a 192 x 32 B panel of 24 KB
 * share a 48 KB L1), MC = 12 MR rows (A block 126 KB, in L2), NC = 1024 columns.
 * Each C element starts from its value (bias, C + bias, C or 0, in the first K block) and adds
 * its pairs in k order, one vbf_dot per pair, stored and reloaded exactly between K blocks: the
 * blocking and W change nothing, and the emulated ISAs give the native bits.
 */
#include <string.h>

#include "bf16_vec.h"
#include "common.h"
#include "kernels/bf16.h"
#include "kernels/gemm_k.h"

#if DT_BF16_NATIVE
enum { MR = 14, NB = 2 };
#else
enum { MR = 4, NB = 2 };
#endif
enum { NR = NB * DT_W, KCP = 192, MC = 12 * MR, NC = 1024, SLACK = 256 };

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
#if DT_W == 16 && defined(__AVX512F__)
    if (n > 0)
        v = (vf)_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p);
#else
    if (n > 0)
        memcpy(&v, p, (size_t)n * sizeof(float));
#endif
    return v;
}

/* load_n rounded to bf16 as dt_round_bf16 rounds (the packs' operands) */
DT_KINL vf load_r(const float *p, int n) { return (vf)vu_round_bf16((vu)load_n(p, n)); }

/* the first n (1 <= n <= W) lanes of v to p */
DT_KINL void store_n(uint32_t *p, vbf v, int n)
{
#if DT_W == 16 && defined(__AVX512F__)
    _mm512_mask_storeu_epi32(p, (__mmask16)(n >= 16 ? 0xffffu : (1u << n) - 1), (__m512i)v);
#else
    memcpy(p, &v, (size_t)n * sizeof(uint32_t));
#endif
}

static int imin(int a, int b) { return a < b ? a : b; }

#if DT_W == 16 && defined(__AVX512F__)
/* r[i][j] <- r[j][i] (16 x 16 lanes of 32 bits) */
DT_KINL void tr16(__m512i r[16])
{
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0xdd);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
        r[i + 4] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
        r[i + 12] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0xdd);
    }
}

/* pack_panel's k-contiguous case, 16 rows x 16 pairs at a time transposed in registers (rows
 * from R on are zeros). Each pair's store writes 16 lanes: when width is not a multiple of 16,
 * the lanes past it spill into the next pair's slots (which its store rewrites) or, after the
 * last pair, past the panel (into the next panel, packed later, or the buffers' slack). */
static void pack_kcontig16(uint32_t *restrict d, int width, const float *X, int ldx, int R, int kc)
{
    const int kp = (kc + 1) / 2;
    for (int r0 = 0; r0 < width; r0 += 16)
        for (int p0 = 0; p0 < kp; p0 += 16) {
            __m512i v[16];
            const int n = kc - 2 * p0; /* floats left in each row */
            for (int i = 0; i < 16; i++) {
                v[i] = _mm512_setzero_si512();
                if (r0 + i < R) {
                    const float *s = X + (size_t)(r0 + i) * ldx + 2 * p0;
                    v[i] = (__m512i)vbf_pack_seq(load_r(s, n), load_r(s + 16, n - 16));
                }
            }
            tr16(v);
            const int np = imin(16, kp - p0);
            for (int j = 0; j < np; j++)
                _mm512_storeu_si512(d + (size_t)(p0 + j) * width + r0, v[j]);
        }
}
#endif

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
                const vbf v = vbf_pack(load_r(e + r, n), odd ? load_r(e + ldx + r, n) : vf_zero());
                store_n(d + (size_t)p * width + r, v, imin(DT_W, width - r));
            }
        }
        return;
    }
#if DT_W == 16 && defined(__AVX512F__)
    if (width >= 14) {
        pack_kcontig16(d, width, X, ldx, R, kc);
        return;
    }
#endif
    for (int r = 0; r < width; r++) {
        if (r >= R) {
            for (int p = 0; p < kp; p++)
                d[(size_t)p * width + r] = 0;
            continue;
        }
        const float *s = X + (size_t)r * ldx;
        for (int p = 0; p < kp; p += DT_W) {
            const int n = kc - 2 * p; /* floats left in the row */
            const vbf v = vbf_pack_seq(load_r(s + 2 * p, n), load_r(s + 2 * p + DT_W, n - DT_W));
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

/* the first R rows of the micro-kernel's accumulators from d (row stride ld) when load (+ the
 * bias row bb when given), else from bb (NULL: zeros) */
DT_KINL void acc_start(vf acc[MR][NB], const float *d, int ld, int load, const float *bb,
                       const int R)
{
#pragma GCC unroll 16
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int q = 0; q < NB; q++) {
            const vf b = bb ? vf_load(bb + q * DT_W) : vf_zero();
            acc[r][q] = load ? (bb ? vf_load(d + (size_t)r * ld + q * DT_W) + b
                                   : vf_load(d + (size_t)r * ld + q * DT_W))
                             : b;
        }
}

/* c (m x n of an R x NR tile, m <= R <= MR, row stride ldc) = its start + the first R rows of an
 * A panel (MR rows per pair) . b panel over kp pairs; the start: c when load (+ bias when given:
 * c + bias rounded once, as C + bias is), else bias (NULL: zeros); bias: the tile's n columns of
 * the bias row. R changes which rows are computed, not how: the same bits for every R. */
DT_KINL void micro_rows(int kp, const uint32_t *restrict a, const uint32_t *restrict b, float *c,
                        int ldc, int m, int n, int load, const float *bias, const int R)
{
    float t[MR * NR], bb[NR];
    float *d = c;
    int ld = ldc;
    if (bias) {
        memset(bb, 0, sizeof bb);
        memcpy(bb, bias, (size_t)n * sizeof *bb);
    }
    if (m < R || n < NR) {
        if (load) {
            memset(t, 0, sizeof t);
            for (int r = 0; r < m; r++)
                memcpy(t + r * NR, c + (size_t)r * ldc, (size_t)n * sizeof *t);
        }
        d = t;
        ld = NR;
    }
    vf acc[MR][NB];
    acc_start(acc, d, ld, load, bias ? bb : NULL, R);
    for (int p = 0; p < kp; p++, a += MR, b += NR) {
        vbf bv[NB];
#pragma GCC unroll 4
        for (int q = 0; q < NB; q++)
            bv[q] = vbf_load(b + q * DT_W);
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
            const vbf av = vbf_set1(a[r]);
#pragma GCC unroll 4
            for (int q = 0; q < NB; q++)
                acc[r][q] = vbf_dot_nd(acc[r][q], bv[q], av);
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int q = 0; q < NB; q++)
            vf_store(d + (size_t)r * ld + q * DT_W, acc[r][q]);
    if (d == t)
        for (int r = 0; r < m; r++)
            memcpy(c + (size_t)r * ldc, t + r * NR, (size_t)n * sizeof *t);
}

/* micro_rows over an MR x NR tile, or over 4 or 8 rows when the last rows of M fit them (native,
 * MR = 14): M = 128 is 9 tiles of 14 and one of 4, not 10 of 14 with 12 rows of zeros; M = 64
 * 4 of 14 and one of 8 */
static void micro(int kp, const uint32_t *restrict a, const uint32_t *restrict b, float *c, int ldc,
                  int m, int n, int load, const float *bias)
{
#if DT_BF16_NATIVE
    if (m <= 4) {
        micro_rows(kp, a, b, c, ldc, m, n, load, bias, 4);
        return;
    }
    if (m <= 8) {
        micro_rows(kp, a, b, c, ldc, m, n, load, bias, 8);
        return;
    }
#endif
    micro_rows(kp, a, b, c, ldc, m, n, load, bias, MR);
}

/* gemm_k.h's run: the product on the caller, packing into pa (MC x KCP pairs + SLACK) and pb
 * (KCP x NC pairs + SLACK); kernels/gemm.c's dt_gemm_kern splits C into panels over the pool */
static void run(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                int ldb, const float *bias, int accum, float *C, int ldc, float *pa, float *pb)
{
    DT_ASSERT(M >= 1 && N >= 1 && K >= 1);
    uint32_t *pack_a = (uint32_t *)(void *)pa, *pack_b = (uint32_t *)(void *)pb;
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
                /* the first K block starts from bias / C + bias / C / 0, the others from C */
                const int load = k0 > 0 || accum;
                for (int jr = 0; jr < nc; jr += NR) {
                    const float *bj = bias && k0 == 0 ? bias + j0 + jr : NULL;
                    for (int ir = 0; ir < mc; ir += MR)
                        micro(kp, pack_a + (size_t)ir * kp, pack_b + (size_t)jr * kp,
                              C + (size_t)(i0 + ir) * ldc + j0 + jr, ldc, imin(MR, mc - ir),
                              imin(NR, nc - jr), load, bj);
                }
            }
        }
    }
}

static void act_store(float *restrict x, uint16_t *restrict h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        const uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
        /* all ones for a NaN (|x|'s bits above infinity's), from the sign of the difference */
        const uint32_t nan = 0u - ((0x7f800000u - (u & 0x7fffffffu)) >> 31);
        const uint32_t v = (nan & u) | (~nan & r);
        memcpy(x + i, &v, sizeof v);
        h[i] = (uint16_t)((v >> 16) | (nan & 0x40u));
    }
}

static void act_pack(const float *restrict x, uint16_t *restrict h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        const uint32_t nan = 0u - ((0x7f800000u - (u & 0x7fffffffu)) >> 31);
        h[i] = (uint16_t)((u >> 16) | (nan & 0x40u));
    }
}

static void act_load(float *restrict x, const uint16_t *restrict h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const uint32_t u = (uint32_t)h[i] << 16;
        memcpy(x + i, &u, sizeof u);
    }
}

/* the table's name through a macro (scripts/check-structure.sh reads `const struct TAG NAME`) */
#define GEMM_TABLE DT_KFN(dt_kgemm_bf16)
static const struct dt_kgemm GEMM_TABLE = {
    .mr = MR,
    .nr = NR,
    .mc = MC,
    .kc = 2 * KCP,
    .nc = NC,
    .blas = 0,
    .pack_a = (size_t)MC * KCP + SLACK, /* + SLACK: pack_kcontig16's spill past the last panel */
    .pack_b = (size_t)KCP * ((NC + NR - 1) / NR * NR) + SLACK,
    .run = run,
};

const struct dt_kbf16 DT_KFN(dt_kbf16) = {
    .lanes = DT_W,
    .dot = dot_n,
    .pack = pack_n,
    .gemm = &GEMM_TABLE,
    .act_store = act_store,
    .act_load = act_load,
    .act_pack = act_pack,
};
