/*
 * lanes.c - "batch-lane" convolution for small layers: DT_W images side by side in the DT_W
 * float lanes of a vector (4 generic, 8 avx2, 16 avx2w16 and avx512; compiled once per ISA, see
 * isa/vec.h), so every multiply-add of the convolution is one lane-wise FMA of a broadcast weight
 * with DT_W images' values of one input pixel - no im2col matrix, no skinny GEMM, and no padding
 * or row-length constraint on the vector width.
 *
 * Why: in lenet5 (1 -> 6 and 6 -> 16 channels, 5x5, 28x28 and 14x14) and the layers of cnn and
 * resnet20, im2col + sgemm spends more time copying rows of 8 to 32 floats and packing skinny
 * matrices (M = OC = 6..64) than multiplying. Batch lanes make every layer shape a dense
 * register-tiled loop of FMAs (the layout of oneDNN's "nChw8c"/"nChw16c" and of the direct
 * convolution papers, e.g. Zhang et al., "High performance zero-memory overhead direct
 * convolutions", ICML 2018, but blocked over images instead of channels: channel counts of 1, 3
 * and 6 do not fill a vector, a batch of 128 does).
 *
 * Per block of W = DT_W images (the last block of a batch may be partial: its missing lanes are
 * zero):
 *   xl  [C][Hp][Wp][W]  the input, zero-padded (Hp = H + 2 pad, Wp = W + 2 pad), transposed from
 *                       NCHW with W x W register transposes (tr_block);
 *   forward:  ol[oc][p][W] = bias + sum over taps t = (c, kh, kw) in order of w[oc][t] *
 *             xl[pix(p) + off(t)]; a tile of fc channels x fp pixels stays in registers over all
 *             the taps; ol is transposed back to NCHW.
 *   dweight:  dw[oc][t] = sum over the images and pixels of dl[oc][p] . xl[pix(p) + off(t)]: a
 *             tile of wc channels x wt taps sums over the block's pixels in float registers;
 *   dinp:     the GEMM form of the transposed convolution: a tile of xt taps x xp pixels of
 *             col[t][p] = sum over oc of w[oc][t] * dl[oc][p] in registers, then added to
 *             dxl[pix(p) + off(t)] (the col2im "scatter" from registers); dxl's interior is
 *             transposed back. Exactly the forward's FLOPs for any padding.
 * dbias sums dl's lanes per channel. Everything of a block stays in L2 between the transposes and
 * the kernels (the plan's workspace bound in conv.c keeps it so).
 *
 * Tiles: 12 accumulators where the ISA has 16 vector registers (generic, avx2: fc x fp = 4x3,
 * 3x4 or 2x6), 24 where it has 32 (avx512: 4x6, 3x8 or 2x12; dinp 8 taps x 3 pixels): twice the
 * work per load of the broadcast weights and the pixel vectors (measured against avx512 with the
 * 12-accumulator tiles: docs/performance.md). avx2w16 uses avx512's tiles (each accumulator two
 * ymm halves: it spills, and exists to test avx512's indexing and bits).
 *
 * Arithmetic order, the same for every W (so avx2, avx2w16 and avx512 give the same bits; the
 * generic ISA differs only in rounding a * b + c twice, having no FMA):
 *   forward and dinp are per image (per lane): the forward starts at the bias and adds the taps
 *   in order whatever the tile; dinp sums over oc in order in a register, and the pixel tile is
 *   3 on every ISA, so a value of dxl receives its (tap, pixel) terms in one order (pixel tile,
 *   tap, pixel) whatever xt.
 *   dweight and dbias reduce over images in groups of 8 (images 8g .. 8g + 7, whatever W): each
 *   image's float sum over the pixels (in pixel order) is added in double to the slot of its
 *   index mod 8, group after group; the 8 slots are summed pairwise at the end. A 16-lane block is
 *   two groups, added in order; a 4-lane block half of one.
 */
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "kernels/isa/vec.h"
#include "kernels/elem.h"
#include "kernels/lanes.h"
#include "kernels/poll.h"
#include "kernels/tpool.h"
#include "lowp.h"

#include "kernels/isa/lanes_io.h"

#if DT_W >= 16
#define ACC 24 /* accumulators of a tile */
#define XT 8   /* dinp tile: taps */
#else
#define ACC 12
#define XT 4
#endif
#define FPMAX (ACC / 2) /* the most pixels (forward) or taps (dweight) of a tile */
#define XP 3            /* dinp tile: pixels (fixed: it sets the order of dxl's sums) */
#define SLOTS 8         /* images per group of the weight gradient's reduction */

/* tile shapes: ACC accumulators over tile_channels (lanes_io.h) channels */
static void plan(dt_lanes_plan *q, int C, int H, int W, int OC, int KH, int KW, int stride, int pad)
{
    DT_ASSERT(C >= 1 && H >= 1 && W >= 1 && OC >= 1 && KH >= 1 && KW >= 1 && stride >= 1 &&
              pad >= 0);
    q->lanes = DT_W;
    q->C = C, q->H = H, q->W = W, q->OC = OC, q->KH = KH, q->KW = KW;
    q->stride = stride, q->pad = pad;
    q->round_to = 0; /* the fused forward sets it per call */
    DT_ASSERT(H + 2 * pad >= KH && W + 2 * pad >= KW);
    q->OH = (H + 2 * pad - KH) / stride + 1;
    q->OW = (W + 2 * pad - KW) / stride + 1;
    q->Hp = H + 2 * pad, q->Wp = W + 2 * pad;
    /* offsets into xl are int: the planes of one block must be addressable */
    DT_ASSERT((long)C * q->Hp * q->Wp * DT_W <= INT32_MAX);
    q->K = C * KH * KW;
    q->P = q->OH * q->OW;
    q->fc = tile_channels(OC), q->fp = ACC / q->fc;
    q->wc = q->fc, q->wt = ACC / q->wc;
    q->xt = XT, q->xp = XP;
    q->OCf = round_up(OC, q->fc), q->OCw = round_up(OC, q->wc);
    q->Kw = round_up(q->K, q->wt), q->Kx = round_up(q->K, q->xt);
    const size_t kmax = (size_t)(q->Kw > q->Kx ? q->Kw : q->Kx);
    const size_t plane = (size_t)C * q->Hp * q->Wp * DT_W;
    const size_t ocm = (size_t)(q->OCf > q->OCw ? q->OCf : q->OCw);
    size_t at = 0;
    q->off = at, at += kmax;                 /* int32 tap offsets */
    q->wr = at, at += (size_t)q->OCf * q->K; /* forward weights [oc tile][t][fc] */
    q->wx = at, at += (size_t)q->Kx * OC;    /* dinp weights [t tile][oc][xt] */
    q->bias = at, at += (size_t)q->OCf;
    at = (at + 15) / 16 * 16;
    q->xl = at, at += plane;
    q->ol = at, at += ocm * q->P * DT_W; /* ol or dl */
    q->dxl = at, at += plane;
    q->PH = q->OH / 2, q->PW = q->OW / 2, q->PP = q->PH * q->PW;
    q->pl = at, at += (size_t)OC * q->PP * DT_W;
    at = (at + 7) / 8 * 8;
    q->acc = at, at += 2 * ((size_t)q->OCw * q->Kw * SLOTS + (size_t)OC * SLOTS); /* doubles */
    q->total = at + 8; /* room to align the doubles */
    /* a pool thread's part: xl .. acc (+ alignment), one per thread (dt_lanes_ws_floats) */
    q->thr = (q->total - q->xl + 15) / 16 * 16;
    q->chunk = 2 * ((size_t)q->OCw * q->Kw + (size_t)OC); /* doubles of a chunk's sums */
}

/* the base of pool thread `thread`'s part of ws: its xl, ol/dl, dxl, pl and acc are at q's
 * offsets from it (thread 0's are ws's own) */
static float *thread_ws(const dt_lanes_plan *q, float *ws, int thread)
{
    return ws + (size_t)thread * q->thr;
}

/* ---- forward: CB channels x PB pixels ----
 * ol[i*ostr + (p0 + j)*W] = bias[i] + sum_t wr[t*CB + i] * xl[xp[j] + off[t]] */
DT_KINL void fwd_tile(float *o, size_t ostr, const float *xl, const int *xp, const int32_t *off,
                      int T, const float *wr, const float *bias, const int CB, const int PB)
{
    vf acc[4][FPMAX];
    const float *p[FPMAX];
    for (int i = 0; i < CB; i++) {
        const vf b = vf_set1(bias[i]);
        for (int j = 0; j < PB; j++)
            acc[i][j] = b;
    }
    for (int j = 0; j < PB; j++)
        p[j] = xl + xp[j];
    if (CB >= PB) {
        for (int t = 0; t < T; t++) {
            const int of = off[t];
            const float *w = wr + (size_t)t * CB;
            vf x[FPMAX];
            for (int j = 0; j < PB; j++)
                x[j] = vf_load(p[j] + of);
            for (int i = 0; i < CB; i++) {
                const vf wv = vf_set1(w[i]);
                for (int j = 0; j < PB; j++)
                    acc[i][j] = vf_fma(wv, x[j], acc[i][j]);
            }
        }
    } else {
        for (int t = 0; t < T; t++) {
            const int of = off[t];
            const float *w = wr + (size_t)t * CB;
            vf wv[4];
            for (int i = 0; i < CB; i++)
                wv[i] = vf_set1(w[i]);
            for (int j = 0; j < PB; j++) {
                const vf x = vf_load(p[j] + of);
                for (int i = 0; i < CB; i++)
                    acc[i][j] = vf_fma(wv[i], x, acc[i][j]);
            }
        }
    }
    for (int i = 0; i < CB; i++)
        for (int j = 0; j < PB; j++)
            vf_store(o + i * ostr + (size_t)j * DT_W, acc[i][j]);
}

/* pixel bases xp[0..n) of the n pixels from flat index p0 */
static void pixel_bases(int *xp, int p0, int n, const dt_lanes_plan *q)
{
    int oh = p0 / q->OW, ow = p0 % q->OW;
    for (int j = 0; j < n; j++) {
        xp[j] = (oh * q->stride * q->Wp + ow * q->stride) * DT_W;
        if (++ow == q->OW)
            ow = 0, oh++;
    }
}

/* one case per tile width; those with more than ACC accumulators never run (and are dropped) */
#define FWD_CASE(CB, PB)                                                                           \
    case PB:                                                                                       \
        if ((CB) * (PB) <= ACC)                                                                    \
            fwd_tile(o, ostr, xl, xp, off, T, w, b, CB, PB);                                       \
        break;
#if FPMAX > 6
#define FWD_WIDE(CB)                                                                               \
    FWD_CASE(CB, 7)                                                                                \
    FWD_CASE(CB, 8) FWD_CASE(CB, 9) FWD_CASE(CB, 10) FWD_CASE(CB, 11) FWD_CASE(CB, 12)
#else
#define FWD_WIDE(CB)
#endif
#define FWD_CASES(CB)                                                                              \
    switch (n) {                                                                                   \
        FWD_CASE(CB, 1)                                                                            \
        FWD_CASE(CB, 2)                                                                            \
        FWD_CASE(CB, 3)                                                                            \
        FWD_CASE(CB, 4)                                                                            \
        FWD_CASE(CB, 5)                                                                            \
        FWD_CASE(CB, 6)                                                                            \
        FWD_WIDE(CB)                                                                               \
    default: DT_ASSERT(!"forward tile width");                                                     \
    }

/* ol (OCf channels of P pixels) = the block's forward, pixel tiles outermost (the taps of a few
 * pixels stay in L1 while every channel tile reads them) */
static void fwd_block(float *ol, const float *xl, const int32_t *off, const float *wr,
                      const float *bias, const dt_lanes_plan *q)
{
    const size_t ostr = (size_t)q->P * DT_W;
    const int T = q->K;
    int xp[FPMAX];
    for (int p0 = 0; p0 < q->P; p0 += q->fp) {
        const int n = q->P - p0 < q->fp ? q->P - p0 : q->fp;
        pixel_bases(xp, p0, n, q);
        for (int c0 = 0; c0 < q->OCf; c0 += q->fc) {
            float *o = ol + c0 * ostr + (size_t)p0 * DT_W;
            const float *w = wr + (size_t)c0 * T, *b = bias + c0;
            if (q->fc == 4) {
                FWD_CASES(4)
            } else if (q->fc == 3) {
                FWD_CASES(3)
            } else {
                FWD_CASES(2)
            }
        }
    }
}

/* r[0..n) += f[0..n) in double, n = 8 (or 4): converted and added as vectors */
typedef float vf4 __attribute__((vector_size(4 * sizeof(float))));
#define ADD_DOUBLES(VF, VD, r, f)                                                                  \
    do {                                                                                           \
        VF x_;                                                                                     \
        VD a_;                                                                                     \
        memcpy(&x_, (f), sizeof x_);                                                               \
        memcpy(&a_, (r), sizeof a_);                                                               \
        a_ += __builtin_convertvector(x_, VD);                                                     \
        memcpy((r), &a_, sizeof a_);                                                               \
    } while (0)

/* r[s] += the float lanes of a in double, image by image: lane i is image n0 + i, slot
 * (n0 + i) mod 8 (s0 = n0 mod 8), a group of 8 images after the other; lanes >= nv hold no
 * image and add nothing. first (W = 8: the chunk's first block): r[s] = 0.0 + lane s, the
 * additions to slots just zeroed without the zeroing (a chunk's memset of its slots: 1.2 MB for
 * cnn's conv2) */
DT_KINL void add_slots(double *restrict r, vf a, int s0, int nv, int first)
{
    float f[DT_W];
    memcpy(f, &a, sizeof f);
#if DT_W == 8
    (void)s0, (void)nv;
    if (first) {
        const vd8 d = (vd8){0} + __builtin_convertvector(a, vd8);
        memcpy(r, &d, sizeof d);
    } else {
        ADD_DOUBLES(vf8, vd8, r, f);
    }
#elif DT_W >= SLOTS
    (void)s0, (void)first;
    for (int g = 0; g < DT_W / SLOTS && g * SLOTS < nv; g++)
        ADD_DOUBLES(vf8, vd8, r, f + g * SLOTS);
#else
    (void)nv, (void)first;
    ADD_DOUBLES(vf4, vd4, r + s0, f);
#endif
}

#if DT_W < 16
/* add_slots of a tile's CB x TB accumulators (row stride `stride`) into the slots of weights
 * (i, j), acc + (i Kw + j) SLOTS: one call per tile, not inlined (inlined into dw_tile, GCC held
 * a register across its loop and reloaded a pixel vector from memory for every FMA instead; a
 * call per accumulator cost 3 % of cnn's avx2 step) */
static __attribute__((noinline)) void tile_slots(double *restrict acc, size_t Kw, const vf *a,
                                                 int CB, int TB, int stride, int s0, int nv,
                                                 int first)
{
    for (int i = 0; i < CB; i++)
        for (int j = 0; j < TB; j++)
            add_slots(acc + ((size_t)i * Kw + j) * SLOTS, a[i * stride + j], s0, nv, first);
}
#endif

#if DT_W == 16
/* The weight gradient's chunk sums straight from a tile's accumulators (the block is its chunk),
 * without the slots' pass through memory: for each of the n = CB x TB accumulators a[k] (lanes:
 * images), res[(k / TB) Kw + k % TB] = slots8 of the slots add_slots would hold, slot s =
 * (0.0 + lane s) (+ lane 8 + s when nv > 8): the same additions in the same order. Not inlined
 * (add_slots: GCC reloaded pixel vectors inside dw_tile's loop). Only at W = 16: at W = 8 (a
 * chunk is two blocks) the register sums measured slower than the slots on avx2. */
static __attribute__((noinline)) void tile_sums(double *restrict res, size_t Kw, const vf *a,
                                                int CB, int TB, int stride, int nv)
{
    const int n = CB * TB;
    for (int g = 0; g < n; g += 8) {
        vd8 v[8];
        for (int k = 0; k < 8; k++) {
            const int e = g + k < n ? g + k : n - 1, i = e / TB, j = e % TB;
            vd8 lo, hi;
            lane_halves(&lo, &hi, a[i * stride + j]);
            v[k] = (vd8){0} + lo; /* the slots' first addition, to 0.0 */
            if (nv > 8)
                v[k] += hi;
        }
        vd8 r;
        pairwise8(&r, v);
        for (int k = 0; k < 8 && g + k < n; k++)
            res[(size_t)((g + k) / TB) * Kw + (size_t)((g + k) % TB)] = r[k];
    }
}
#endif

/* ---- weight gradient: CB channels x TB taps over all pixels of a block ----
 * acc[(i*Kw + j)*8 + slot] += sum_p dl[i*dstr + p*W + l] * xl[pix(p) + off[j] + l] (double) */
DT_KINL void dw_tile(double *acc, double *res, size_t Kw, const float *dl, size_t dstr,
                     const float *xl, const int32_t *off, const dt_lanes_plan *q, int s0, int nv,
                     int first, const int CB, const int TB)
{
    vf a[4][FPMAX];
    int o[FPMAX];
    for (int i = 0; i < CB; i++)
        for (int j = 0; j < TB; j++)
            a[i][j] = vf_zero();
    for (int j = 0; j < TB; j++)
        o[j] = off[j];
    const float *d = dl;
    const size_t xs = (size_t)q->stride * DT_W;
    for (int oh = 0; oh < q->OH; oh++) {
        const float *xr = xl + (size_t)oh * q->stride * q->Wp * DT_W;
        for (int ow = 0; ow < q->OW; ow++, d += DT_W, xr += xs) {
            if (CB <= TB) {
                vf dv[4];
                for (int i = 0; i < CB; i++)
                    dv[i] = vf_load(d + i * dstr);
                for (int j = 0; j < TB; j++) {
                    const vf x = vf_load(xr + o[j]);
                    for (int i = 0; i < CB; i++)
                        a[i][j] = vf_fma(dv[i], x, a[i][j]);
                }
            } else {
                vf x[FPMAX];
                for (int j = 0; j < TB; j++)
                    x[j] = vf_load(xr + o[j]);
                for (int i = 0; i < CB; i++) {
                    const vf dv = vf_load(d + i * dstr);
                    for (int j = 0; j < TB; j++)
                        a[i][j] = vf_fma(dv, x[j], a[i][j]);
                }
            }
        }
    }
#if DT_W == 16 /* the block is its chunk: its sums (backward_chunk) */
    (void)s0, (void)acc, (void)first;
    tile_sums(res, Kw, &a[0][0], CB, TB, FPMAX, nv);
#else
    (void)res;
    tile_slots(acc, Kw, &a[0][0], CB, TB, FPMAX, s0, nv, first);
#endif
}

/* res (W = 16): the chunk's sums, [OCw][Kw]; else acc's slots (first: add_slots') */
static void dw_block(double *acc, double *res, const float *dl, const float *xl, const int32_t *off,
                     const dt_lanes_plan *q, int s0, int nv, int first)
{
    const size_t dstr = (size_t)q->P * DT_W, Kw = (size_t)q->Kw;
    for (int c0 = 0; c0 < q->OCw; c0 += q->wc)
        for (int t0 = 0; t0 < q->Kw; t0 += q->wt) {
            double *a = acc + ((size_t)c0 * Kw + t0) * SLOTS;
            double *r = res ? res + (size_t)c0 * Kw + t0 : NULL;
            const float *d = dl + c0 * dstr;
            if (q->wc == 4)
                dw_tile(a, r, Kw, d, dstr, xl, off + t0, q, s0, nv, first, 4, ACC / 4);
            else if (q->wc == 3)
                dw_tile(a, r, Kw, d, dstr, xl, off + t0, q, s0, nv, first, 3, ACC / 3);
            else
                dw_tile(a, r, Kw, d, dstr, xl, off + t0, q, s0, nv, first, 2, ACC / 2);
        }
}

/* ---- input gradient: TB taps x PB pixels, the sum over all output channels in registers ----
 * dxl[xp[k] + off[j]] += sum_oc w[oc*TB + j] * dl[oc*dstr + k*W] */
DT_KINL void dx_tile(float *dxl, const int *xp, const int32_t *off, const float *dl, size_t dstr,
                     int OC, const float *w, const int TB, const int PB)
{
    vf a[XT][XP];
    for (int j = 0; j < TB; j++)
        for (int k = 0; k < PB; k++)
            a[j][k] = vf_zero();
    for (int oc = 0; oc < OC; oc++, dl += dstr, w += TB) {
        vf dv[XP];
        for (int k = 0; k < PB; k++)
            dv[k] = vf_load(dl + (size_t)k * DT_W);
        for (int j = 0; j < TB; j++) {
            const vf wv = vf_set1(w[j]);
            for (int k = 0; k < PB; k++)
                a[j][k] = vf_fma(wv, dv[k], a[j][k]);
        }
    }
    /* in order: two (tap, pixel) pairs of a tile can hit the same input pixel */
    for (int j = 0; j < TB; j++)
        for (int k = 0; k < PB; k++) {
            float *r = dxl + xp[k] + off[j];
            vf_store(r, vf_load(r) + a[j][k]);
        }
}

static void dx_block(float *dxl, const float *dl, const int32_t *off, const float *wx,
                     const dt_lanes_plan *q)
{
    const size_t dstr = (size_t)q->P * DT_W;
    int xp[XP];
    for (int p0 = 0; p0 < q->P; p0 += XP) {
        const int n = q->P - p0 < XP ? q->P - p0 : XP;
        pixel_bases(xp, p0, n, q);
        const float *d = dl + (size_t)p0 * DT_W;
        for (int t0 = 0; t0 < q->Kx; t0 += XT) {
            const float *w = wx + (size_t)t0 * q->OC;
            if (n == 3)
                dx_tile(dxl, xp, off + t0, d, dstr, q->OC, w, XT, 3);
            else if (n == 2)
                dx_tile(dxl, xp, off + t0, d, dstr, q->OC, w, XT, 2);
            else
                dx_tile(dxl, xp, off + t0, d, dstr, q->OC, w, XT, 1);
        }
    }
}

/* off[t] for t < K, then copies of off[K - 1] up to n */
static void tap_offsets(int32_t *off, int n, const dt_lanes_plan *q)
{
    int t = 0;
    for (int c = 0; c < q->C; c++)
        for (int kh = 0; kh < q->KH; kh++)
            for (int kw = 0; kw < q->KW; kw++)
                off[t++] = ((c * q->Hp + kh) * q->Wp + kw) * DT_W;
    for (; t < n; t++)
        off[t] = off[q->K - 1];
}

/* What a parallel loop over the chunks of a batch shares (forward and backward). */
typedef struct {
    const dt_lanes_plan *q;
    float *ws;
    int N;
    float *out;
    int32_t *code;
    const float *inp;
    float *dinp, *dweight, *dbias;
    const float *dout;
    int accum;
    double *res;                        /* backward: each chunk's sums (q->chunk / 2 doubles) */
    unsigned char zeroed[DT_TPOOL_MAX]; /* thread t's padding (xl; dl past OC) is zero */
} lanes_job;

/* The forward of one chunk of images, block by block; with code, ReLU + 2x2 max pool of each
 * block before its transpose (out is then the pooled output). */
static void forward_chunk(void *arg, int c, int thread)
{
    lanes_job *j = arg;
    const dt_lanes_plan *q = j->q;
    const int32_t *off = (const int32_t *)(const void *)(j->ws + q->off);
    const float *wr = j->ws + q->wr, *bp = j->ws + q->bias;
    float *tw = thread_ws(q, j->ws, thread);
    float *xl = tw + q->xl, *ol = tw + q->ol, *pl = tw + q->pl;
    const size_t plane = (size_t)q->C * q->Hp * q->Wp * DT_W;
    const size_t HW = (size_t)q->H * q->W, P = (size_t)q->P, PP = (size_t)q->PP;
    if (!j->zeroed[thread]) {
        memset(xl, 0, plane * sizeof *xl);
        j->zeroed[thread] = 1;
    }
    int n0, n1;
    chunk_images(j->N, DT_LANES_CHUNK, c, &n0, &n1);
    for (; n0 < n1; n0 += DT_W) {
        const int nv = n1 - n0 < DT_W ? n1 - n0 : DT_W;
        to_lanes(xl + ((size_t)q->pad * q->Wp + q->pad) * DT_W, (size_t)q->Hp * q->Wp * DT_W,
                 (size_t)q->Wp * DT_W, j->inp + (size_t)n0 * q->C * HW, (size_t)q->C * HW, HW,
                 (size_t)q->W, q->C, q->H, q->W, nv);
        fwd_block(ol, xl, off, wr, bp, q);
        if (j->code) {
            /* 16-bit training: the pool compares what the separate layers would */
            if (q->round_to)
                (q->round_to == DT_FP16
                     ? DT_KFN(dt_kelem).round_fp16
                     : DT_KFN(dt_kelem).round_bf16)(ol, (size_t)q->OC * P * DT_W);
            lanes_relu_pool(pl, j->code + (size_t)n0 * q->OC * PP, ol, q->OC, P, q->OW, q->PH,
                            q->PW, 0);
            from_lanes(j->out + (size_t)n0 * q->OC * PP, (size_t)q->OC * PP, PP, 0, pl, PP * DT_W,
                       0, q->OC, 1, q->PP, nv, 0);
        } else {
            from_lanes(j->out + (size_t)n0 * q->OC * P, (size_t)q->OC * P, P, 0, ol, P * DT_W, 0,
                       q->OC, 1, q->P, nv, 0);
        }
        dt_poll();
    }
}

/* The forward of every chunk of DT_LANES_CHUNK images over the thread pool. */
static void forward(const dt_lanes_plan *q, float *out, int32_t *code, const float *inp,
                    const float *weight, const float *bias, int N, float *ws)
{
    DT_ASSERT(N >= 1 && q->lanes == DT_W && (!code || q->PP >= 1));
    int32_t *off = (int32_t *)(void *)(ws + q->off); /* int32 slots of ws */
    float *wr = ws + q->wr, *bp = ws + q->bias;
    const int K = q->K, fc = q->fc;
    tap_offsets(off, K, q);
    /* wr[(c0 + i)*K + t*fc ... ]: tile c0 holds [t][fc] */
    for (int c0 = 0; c0 < q->OCf; c0 += fc)
        for (int t = 0; t < K; t++)
            for (int i = 0; i < fc; i++)
                wr[(size_t)c0 * K + (size_t)t * fc + i] =
                    c0 + i < q->OC ? weight[(size_t)(c0 + i) * K + t] : 0.0f;
    for (int c = 0; c < q->OCf; c++)
        bp[c] = bias && c < q->OC ? bias[c] : 0.0f;
    lanes_job j = {.q = q, .ws = ws, .N = N, .out = out, .code = code, .inp = inp};
    memset(j.zeroed, 0, (size_t)dt_tpool_threads());
    dt_tpool_run(dt_lanes_chunks(N), forward_chunk, &j);
}

/* sum of the 8 double slots, pairwise */
static double slots8(const double *d)
{
    return ((d[0] + d[1]) + (d[2] + d[3])) + ((d[4] + d[5]) + (d[6] + d[7]));
}

static void bias_block(double *acc, const float *dl, int OC, int P, int s0, int nv, int first)
{
    for (int c = 0; c < OC; c++) {
        const float *d = dl + (size_t)c * P * DT_W;
        vf a = vf_zero(), b = vf_zero();
        int p = 0;
        for (; p + 2 <= P; p += 2) {
            a = a + vf_load(d + (size_t)p * DT_W);
            b = b + vf_load(d + (size_t)p * DT_W + DT_W);
        }
        if (p < P)
            a = a + vf_load(d + (size_t)p * DT_W);
        add_slots(acc + (size_t)c * SLOTS, a + b, s0, nv, first);
    }
}

/* the block's dl from dout (or, with code, from the pooled gradient) */
static void grad_lanes(float *dl, const dt_lanes_plan *q, const float *dout, const int32_t *code,
                       int n0, int nv, float *ws)
{
    const int OC = q->OC;
    if (code) {
        const size_t PP = (size_t)q->PP;
        float *dpl = ws + q->pl;
        to_lanes(dpl, PP * DT_W, 0, dout + (size_t)n0 * OC * PP, (size_t)OC * PP, PP, 0, OC, 1,
                 q->PP, nv);
        lanes_unpool(dl, dpl, code + (size_t)n0 * OC * PP, OC, (size_t)q->P, q->OW, q->PH, q->PW,
                     0);
    } else {
        const size_t P = (size_t)q->P;
        to_lanes(dl, P * DT_W, 0, dout + (size_t)n0 * OC * P, (size_t)OC * P, P, 0, OC, 1, q->P,
                 nv);
    }
}

/* The backward of one chunk of images: its dinp, and its weight and bias gradient sums (each
 * image's float sum over pixels added in double to slot n mod 8, the slots summed pairwise) in
 * the chunk's part of j->res. */
static void backward_chunk(void *arg, int c, int thread)
{
    lanes_job *j = arg;
    const dt_lanes_plan *q = j->q;
    const int32_t *off = (const int32_t *)(const void *)(j->ws + q->off);
    const float *wx = j->ws + q->wx;
    float *tw = thread_ws(q, j->ws, thread);
    float *xl = tw + q->xl, *dl = tw + q->ol, *dxl = tw + q->dxl;
    double *acc = align_d(tw + q->acc);
    double *bacc = acc + (size_t)q->OCw * q->Kw * SLOTS;
    const int K = q->K, OC = q->OC;
    const size_t plane = (size_t)q->C * q->Hp * q->Wp * DT_W;
    const size_t HW = (size_t)q->H * q->W;
    const size_t lcs = (size_t)q->Hp * q->Wp * DT_W, lrs = (size_t)q->Wp * DT_W;
    const size_t interior = ((size_t)q->pad * q->Wp + q->pad) * DT_W;
    if (!j->zeroed[thread]) {
        memset(xl, 0, plane * sizeof *xl);
        /* dl's padded channels (OC..OCw) stay zero */
        memset(dl, 0, (size_t)q->OCw * q->P * DT_W * sizeof *dl);
        j->zeroed[thread] = 1;
    }
    double *r = j->res + (size_t)c * (q->chunk / 2);
#if DT_W == 16 /* the weights' sums in registers (tile_sums): only the bias's slots */
    memset(bacc, 0, (size_t)OC * SLOTS * sizeof *bacc);
#elif DT_W == 4 /* W = 8: the first block stores its slots (add_slots) */
    memset(acc, 0, ((size_t)q->OCw * q->Kw + (size_t)OC) * SLOTS * sizeof *acc);
#endif
    int n0, n1;
    chunk_images(j->N, DT_LANES_CHUNK, c, &n0, &n1);
    for (; n0 < n1; n0 += DT_W) {
        const int nv = n1 - n0 < DT_W ? n1 - n0 : DT_W, s0 = n0 % SLOTS;
        const int first = n0 % DT_LANES_CHUNK == 0;
        to_lanes(xl + interior, lcs, lrs, j->inp + (size_t)n0 * q->C * HW, (size_t)q->C * HW, HW,
                 (size_t)q->W, q->C, q->H, q->W, nv);
        grad_lanes(dl, q, j->dout, j->code, n0, nv, tw);
        dw_block(acc, r, dl, xl, off, q, s0, nv, first);
        if (j->dbias)
            bias_block(bacc, dl, OC, q->P, s0, nv, first);
        if (j->dinp) {
            memset(dxl, 0, plane * sizeof *dxl);
            dx_block(dxl, dl, off, wx, q);
            from_lanes(j->dinp + (size_t)n0 * q->C * HW, (size_t)q->C * HW, HW, (size_t)q->W,
                       dxl + interior, lcs, lrs, q->C, q->H, q->W, nv, j->accum);
        }
        dt_poll();
    }
#if DT_W < 16
    for (int oc = 0; oc < OC; oc++)
        for (int t = 0; t < K; t++)
            r[(size_t)oc * q->Kw + t] = slots8(acc + ((size_t)oc * q->Kw + t) * SLOTS);
#else
    (void)K;
#endif
    for (int oc = 0; oc < OC; oc++)
        r[(size_t)q->OCw * q->Kw + oc] = slots8(bacc + (size_t)oc * SLOTS);
}

/* The backward of every chunk over the thread pool, from dout or (code != NULL) from the pooled
 * gradient dpout; the chunks' weight and bias gradient sums added in chunk order. */
static void backward(const dt_lanes_plan *q, float *dinp, float *dweight, float *dbias,
                     const float *dout, const int32_t *code, const float *inp, const float *weight,
                     int N, int accum, float *ws)
{
    DT_ASSERT(N >= 1 && dweight && q->lanes == DT_W && (!code || q->PP >= 1));
    int32_t *off = (int32_t *)(void *)(ws + q->off); /* int32 slots of ws */
    float *wx = ws + q->wx;
    const int K = q->K, OC = q->OC, nch = dt_lanes_chunks(N);
    tap_offsets(off, q->Kw > q->Kx ? q->Kw : q->Kx, q);
    if (dinp) /* wx[t0*OC + oc*XT + j] = weight[oc][t0 + j] (0 past K) */
        for (int t0 = 0; t0 < q->Kx; t0 += XT)
            for (int oc = 0; oc < OC; oc++)
                for (int j = 0; j < XT; j++)
                    wx[(size_t)t0 * OC + (size_t)oc * XT + j] =
                        t0 + j < K ? weight[(size_t)oc * K + t0 + j] : 0.0f;
    lanes_job j = {.q = q,
                   .ws = ws,
                   .N = N,
                   .code = (int32_t *)code,
                   .inp = inp,
                   .dinp = dinp,
                   .dweight = dweight,
                   .dbias = dbias,
                   .dout = dout,
                   .accum = accum,
                   .res = align_d(ws + q->xl + (size_t)dt_tpool_threads() * q->thr)};
    memset(j.zeroed, 0, (size_t)dt_tpool_threads());
    dt_tpool_run(nch, backward_chunk, &j);
    /* the chunks in order: the same sums whatever the thread count */
    const size_t bo = (size_t)q->OCw * q->Kw;
    fold_chunks(j.res, q->chunk / 2, bo + (dbias ? (size_t)OC : 0), nch);
    for (int oc = 0; oc < OC; oc++)
        for (int t = 0; t < K; t++)
            dweight[(size_t)oc * K + t] = (float)j.res[(size_t)oc * q->Kw + t];
    if (dbias)
        for (int oc = 0; oc < OC; oc++)
            dbias[oc] = (float)j.res[bo + oc];
}

/* The table's name through a macro of its own: scripts/check-structure.sh reads the struct tag
 * of `const struct dt_klanes DT_KFN(dt_klanes)` as the name defined, and would take lanes.h
 * (which declares the tag) for a user of this file. */
#define LANES_TABLE DT_KFN(dt_klanes)
#define CONVH_TABLE DT_KFN(dt_kconvh)
extern const struct dt_kconvh CONVH_TABLE;
const struct dt_klanes LANES_TABLE = {
    .lanes = DT_W,
    .plan = plan,
    .forward = forward,
    .backward = backward,
    .help = &CONVH_TABLE,
};
