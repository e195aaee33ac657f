/*
 * bf16_lanes.c - the bf16 batch-lane convolutions of bf16_conv.h, written once over DT_W lanes
 * and compiled per ISA (isa/vec.h; avx512bf16 gets the native vdpbf16ps, every other ISA its
 * bit-exact emulation, isa/bf16_vec.h).
 *
 * Per block of L = DT_W images (the last block of a batch may be partial: its missing lanes are
 * zero), with "pair" a 32-bit lane holding two bf16 (the first in the low half, vbf_pack):
 *   x8  [C][Hp][Wp][L]   the input, zero-padded, transposed from NCHW (fp32)
 *   xb  forward: [C/2][Hp][Wp][L] pairs of channels (c, c+1) of x8, or [C][Hp][Wp][L] pairs
 *       (x, x one column right) for tap pairs (kw, kw+1); dweight: [C][Hp][Wp][L] pairs
 *       (x, x stride columns right), the input pixels of two adjacent output pixels
 *   forward:  o8[oc][p][L] = bias + sum over pair taps u of dot(xb[pix(p) + off(u)], wr[oc][u]),
 *             a tile of fc channels x fp pixels in registers over all the pair taps
 *   dweight:  dw[oc][t] = sum over output rows and pixel pairs (ow, ow+1) of
 *             dot(dbw[oc][oh][ow/2], xb[pix(oh, ow) + off(t)]), a tile of wc channels x wt taps in
 *             registers; each image's sum (one lane) in double, the 16 images of a chunk
 *             (DT_BC_CHUNK) summed pairwise (at W = 16 in registers as the tile ends, lane_sums8;
 *             else through the slots n % 16 of the weight), the chunks' sums added in chunk
 *             order: the same order for every DT_W and every thread count
 *   dinp:     stride 1 with "same" padding: the forward's kernel on the padded dout (pairs of
 *             output channels) with the flipped, transposed weight (plan_transposed); otherwise
 *             the GEMM form of the transposed convolution (conv_n8.c): a tile of 4 taps x 6 pixels
 *             of col[t][p] = sum over output channel pairs of dot(dbx[oc/2][p], wx[t][oc/2]),
 *             added to dx8[pix(p) + off(t)] (fp32) in tile order; the tile is the same for every
 *             DT_W, so are the additions' order and the result.
 * Forward and dweight are sums in a fixed order per image whatever the tile, so the tiles are
 * sized for the registers of each width: 24 accumulators of 32 zmm, 12 of 16 ymm. So every ISA,
 * generic included, gives the same bits (tests/test_kern_bf16conv.c).
 * Threads: the batch is split into chunks of DT_BC_CHUNK images over the pool (kernels/tpool.h),
 * each pool thread with its own part of the workspace (planes, packed pairs, slots), the packed
 * weights shared; a chunk's forward and input gradient are its own images', its weight and bias
 * gradient sums go to the chunk's row of sums, added in chunk order after the loop.
 * Why channel pairs for the forward and not pairs of images: the packing then stays a per-image
 * transpose (conv_n8.c's) plus one pack pass, and a block stays W images. Tap pairs for C = 1
 * (lenet5's and cnn's first layers) waste 1 tap in 4 or 6 instead of half of every dot.
 * The packed operands never hold a bf16 denormal (vbf_pack flushes them, pair_of too), so the
 * dots are vbf_dot_nd: the emulation skips its DAZ step.
 */
#include "bf16_vec.h"

#include "common.h"
#include "kernels/bf16.h"
#include "kernels/bf16_conv.h"
#include "kernels/isa/bf16_plan.h" /* the tiles, ACCS, XT, XP, SLOTS; the plan: bc_plan */
#include "kernels/isa/lanes_io.h"
#include "kernels/poll.h"
#include "kernels/tpool.h"

typedef double vd __attribute__((vector_size(DT_W * sizeof(double))));

/* bf16(f) with a denormal as a signed zero (what vdpbf16ps reads it as): packed operands never
 * hold a bf16 denormal, so the kernels use vbf_dot_nd */
static uint32_t bf16_nd(float f)
{
    /* dt_bf16_round's cases (bf16.c), inline: the weight packing runs it for every weight of
     * every conv each call (about 1.8 ms of a resnet20 step out of line) */
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (u >> 16) | 0x40u; /* NaN: truncated and quieted */
    if ((u & 0x7f800000u) == 0)
        return (u >> 16) & 0x8000u; /* zero, denormal: a signed zero */
    /* nearest even; a normal float stays normal (rounding only grows the magnitude) */
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}
static uint32_t pair_of(float lo, float hi) { return bf16_nd(lo) | bf16_nd(hi) << 16; }

/* ---- packing ---- */

/* the forward's pair-tap offsets off[u] (words into xb) */
static void pair_offsets(int32_t *off, const dt_bc_plan *q)
{
    const int L = DT_W, C2 = (q->C + 1) / 2, KW2 = (q->KW + 1) / 2;
    int u = 0;
    if (q->tap_pairs)
        for (int c = 0; c < q->C; c++)
            for (int kh = 0; kh < q->KH; kh++)
                for (int k2 = 0; k2 < KW2; k2++)
                    off[u++] = ((c * q->Hp + kh) * q->Wp + 2 * k2) * L;
    else
        for (int c2 = 0; c2 < C2; c2++)
            for (int kh = 0; kh < q->KH; kh++)
                for (int kw = 0; kw < q->KW; kw++)
                    off[u++] = ((c2 * q->Hp + kh) * q->Wp + kw) * L;
}

/* the taps' offsets offk[t] (words into xb and dx8) for t < K, then copies of the last up to n */
static void tap_offsets(int32_t *offk, int n, const dt_bc_plan *q)
{
    const int L = DT_W;
    int t = 0;
    for (int c = 0; c < q->C; c++)
        for (int kh = 0; kh < q->KH; kh++)
            for (int kw = 0; kw < q->KW; kw++)
                offk[t++] = ((c * q->Hp + kh) * q->Wp + kw) * L;
    for (; t < n; t++)
        offk[t] = offk[q->K - 1];
}

/* wr[c0*T2 + u*fc + i]: the pair of weights of channel c0 + i for pair tap u (0 past OC) */
static void pack_fwd_weights(uint32_t *wr, const float *weight, const dt_bc_plan *q)
{
    const int KK = q->KH * q->KW, fc = q->fc, T2 = q->T2, KW2 = (q->KW + 1) / 2;
    for (int c0 = 0; c0 < q->OCf; c0 += fc)
        for (int u = 0; u < T2; u++)
            for (int i = 0; i < fc; i++) {
                const int oc = c0 + i;
                float lo = 0.0f, hi = 0.0f;
                if (oc < q->OC) {
                    const float *w = weight + (size_t)oc * q->K;
                    if (q->tap_pairs) { /* u = (c, kh, k2): taps kw = 2 k2, 2 k2 + 1 */
                        const int c = u / (q->KH * KW2), kh = u / KW2 % q->KH, kw = 2 * (u % KW2);
                        lo = w[c * KK + kh * q->KW + kw];
                        hi = kw + 1 < q->KW ? w[c * KK + kh * q->KW + kw + 1] : 0.0f;
                    } else { /* u = (c2, kh, kw): channels 2 c2, 2 c2 + 1 */
                        const int c = 2 * (u / KK), r = u % KK;
                        lo = w[c * KK + r];
                        hi = c + 1 < q->C ? w[(c + 1) * KK + r] : 0.0f;
                    }
                }
                wr[(size_t)c0 * T2 + (size_t)u * fc + i] = pair_of(lo, hi);
            }
}

/* wx[t0*OC2 + o*XT + j]: the pair (weight[2o][t0 + j], weight[2o + 1][t0 + j]), 0 past OC, K */
static void pack_dinp_weights(uint32_t *wx, const float *weight, const dt_bc_plan *q)
{
    const int K = q->K, OC = q->OC;
    for (int t0 = 0; t0 < q->Kx; t0 += XT)
        for (int o = 0; o < q->OC2; o++)
            for (int j = 0; j < XT; j++) {
                const int t = t0 + j;
                const float lo = t < K ? weight[(size_t)2 * o * K + t] : 0.0f;
                const float hi =
                    t < K && 2 * o + 1 < OC ? weight[(size_t)(2 * o + 1) * K + t] : 0.0f;
                wx[(size_t)t0 * q->OC2 + (size_t)o * XT + j] = pair_of(lo, hi);
            }
}

/* xb[c2][e] = pairs (x8[2 c2][e], x8[2 c2 + 1][e]) of the n = Hp*Wp pixels e of each plane */
static void pack_channel_pairs(uint32_t *restrict xb, const float *restrict x8, int C, size_t n)
{
    const vf zero = vf_zero();
    for (int c = 0; c < C; c += 2) {
        const float *a = x8 + (size_t)c * n * DT_W, *b = a + n * DT_W;
        uint32_t *d = xb + (size_t)c / 2 * n * DT_W;
        for (size_t e = 0; e < n; e++)
            vbf_store(d + e * DT_W,
                      vbf_pack(vf_load(a + e * DT_W), c + 1 < C ? vf_load(b + e * DT_W) : zero));
    }
}

/* A full block's input straight from its images into channel pairs: what to_lanes into x8 (its
 * interior) and pack_channel_pairs give, without the float32 planes (x8 written and read back
 * was most of the forward's packing, cnn's and resnet20's planes outgrowing L2). W x W transposes
 * of W consecutive values of channels c and c + 1 (zeros past C), packed into pairs: in each row
 * when rows are a multiple of W long, else over the flattened plane as to_lanes_flat goes, the
 * last few values one by one. xb's border pairs are not written (zero: fwd_chunk). */
DT_KINL void to_channel_pairs(uint32_t *restrict xb, const void *restrict src, int h, size_t simg,
                              const dt_bc_plan *q)
{
    const int C = q->C, R = q->H, cols = q->W;
    const size_t HW = (size_t)R * cols, n = (size_t)q->Hp * q->Wp;
    const size_t interior = (size_t)q->pad * q->Wp + q->pad;
    const vf zero = vf_zero();
    for (int c = 0; c < C; c += 2) {
        const size_t a = (size_t)c * HW, b = a + HW; /* channels c and c + 1 in src */
        const int two = c + 1 < C;
        uint32_t *d = xb + (size_t)c / 2 * n * DT_W + interior * DT_W;
        size_t e = 0;
        if (cols % DT_W == 0) {
            for (int r = 0; r < R; r++)
                for (int k = 0; k < cols; k += DT_W, e += DT_W) {
                    vf va[DT_W], vb[DT_W];
                    for (int i = 0; i < DT_W; i++) {
                        va[i] = src_v(src, a + i * simg + e, h);
                        vb[i] = two ? src_v(src, b + i * simg + e, h) : zero;
                    }
                    tr_block(va), tr_block(vb);
                    uint32_t *o = d + ((size_t)r * q->Wp + k) * DT_W;
                    for (int j = 0; j < DT_W; j++)
                        vbf_store(o + (size_t)j * DT_W, vbf_pack(va[j], vb[j]));
                }
            continue;
        }
        for (; e + DT_W <= HW; e += DT_W) {
            vf va[DT_W], vb[DT_W];
            for (int i = 0; i < DT_W; i++) {
                va[i] = src_v(src, a + i * simg + e, h);
                vb[i] = two ? src_v(src, b + i * simg + e, h) : zero;
            }
            tr_block(va), tr_block(vb);
            for (int j = 0; j < DT_W; j++) {
                const size_t f = e + (size_t)j;
                vbf_store(d + (f / (size_t)cols * q->Wp + f % (size_t)cols) * DT_W,
                          vbf_pack(va[j], vb[j]));
            }
        }
        for (; e < HW; e++) {
            float la[DT_W], lb[DT_W];
            for (int i = 0; i < DT_W; i++) {
                la[i] = src_1(src, a + i * simg + e, h);
                lb[i] = two ? src_1(src, b + i * simg + e, h) : 0.0f;
            }
            vbf_store(d + (e / (size_t)cols * q->Wp + e % (size_t)cols) * DT_W,
                      vbf_pack(vf_load(la), vf_load(lb)));
        }
    }
}

/* to_channel_pairs of a block already in lanes (bf16_conv.h's in_lanes): the same pairs, packed
 * straight from the block's planes (src as src_v reads it: floats, or a bf16 copy) */
DT_KINL void lanes_channel_pairs(uint32_t *restrict xb, const void *restrict src, int h,
                                 const dt_bc_plan *q)
{
    const int C = q->C;
    const size_t HW = (size_t)q->H * q->W, n = (size_t)q->Hp * q->Wp;
    const size_t interior = (size_t)q->pad * q->Wp + q->pad;
    const vf zero = vf_zero();
    for (int c = 0; c < C; c += 2) {
        const size_t a = (size_t)c * HW * DT_W, b = a + HW * DT_W;
        const int two = c + 1 < C;
        uint32_t *d = xb + (size_t)c / 2 * n * DT_W + interior * DT_W;
        for (int r = 0; r < q->H; r++) {
            const size_t e0 = (size_t)r * q->W * DT_W;
            uint32_t *o = d + (size_t)r * q->Wp * DT_W;
            for (size_t k = 0; k < (size_t)q->W * DT_W; k += DT_W)
                vbf_store(o + k, vbf_pack(src_v(src, a + e0 + k, h),
                                          two ? src_v(src, b + e0 + k, h) : zero));
        }
    }
}

/* xb[r][w] = pairs (x8[r][w], x8[r][w + step]) (0 past the row) of R rows of Wp pixels */
static void pack_shift_pairs(uint32_t *restrict xb, const float *restrict x8, size_t R, int Wp,
                             int step)
{
    const vf zero = vf_zero();
    for (size_t r = 0; r < R; r++) {
        const float *a = x8 + r * Wp * DT_W;
        uint32_t *d = xb + r * Wp * DT_W;
        for (int w = 0; w < Wp; w++)
            vbf_store(d + (size_t)w * DT_W,
                      vbf_pack(vf_load(a + (size_t)w * DT_W),
                               w + step < Wp ? vf_load(a + (size_t)(w + step) * DT_W) : zero));
    }
}

/* pack_shift_pairs of the zero-padded planes of a block in the lane layout (bf16_conv.h's
 * in_lanes), straight from the block (src as src_v reads it: floats, or h its bf16 copy) without
 * the padded float planes: the same pairs, each value read where it is and packed once per pair
 * it is in. */
static void lanes_shift_pairs(uint32_t *restrict xb, const void *restrict src, int h,
                              const dt_bc_plan *q, int step)
{
    const int Hp = q->Hp, Wp = q->Wp, pad = q->pad, H = q->H, W = q->W;
    const vf zero = vf_zero();
    for (int c = 0; c < q->C; c++)
        for (int r = 0; r < Hp; r++) {
            uint32_t *d = xb + ((size_t)c * Hp + r) * Wp * DT_W;
            const int ir = r - pad;
            if (ir < 0 || ir >= H) {
                memset(d, 0, (size_t)Wp * DT_W * sizeof *d); /* pairs of zeros */
                continue;
            }
            const size_t row = ((size_t)c * H + ir) * W * DT_W;
            for (int w = 0; w < Wp; w++) {
                const int a = w - pad, b = a + step;
                const vf lo = a >= 0 && a < W ? src_v(src, row + (size_t)a * DT_W, h) : zero;
                const vf hi = b >= 0 && b < W ? src_v(src, row + (size_t)b * DT_W, h) : zero;
                vbf_store(d + (size_t)w * DT_W, vbf_pack(lo, hi));
            }
        }
}

/* ---- forward: CB channels x PB pixels ----
 * o8[i*ostr + j*L] = bias[i] + sum over pair taps u of dot(xb[xp[j] + off[u]], wr[u*CB + i]) for
 * the n pixels j < n (xp[j] of the others: any valid pixel) */
DT_KINL void fwd_tile(float *o8, size_t ostr, const uint32_t *xb, const int *xp, const int32_t *off,
                      int T, const uint32_t *wr, const float *bias, int n, const int CB,
                      const int PB)
{
    vf acc[4][12];
    for (int i = 0; i < CB; i++) {
        const vf b = vf_set1(bias[i]);
        for (int j = 0; j < PB; j++)
            acc[i][j] = b;
    }
    for (int u = 0; u < T; u++) {
        const uint32_t *x = xb + off[u];
        const uint32_t *w = wr + (size_t)u * CB;
        vbf wv[4];
        for (int i = 0; i < CB; i++)
            wv[i] = vbf_set1(w[i]);
        for (int j = 0; j < PB; j++) {
            const vbf xv = vbf_load(x + xp[j]);
            for (int i = 0; i < CB; i++)
                acc[i][j] = vbf_dot_nd(acc[i][j], xv, wv[i]);
        }
    }
    if (n == PB) {
        for (int i = 0; i < CB; i++)
            for (int j = 0; j < PB; j++)
                vf_store(o8 + i * ostr + (size_t)j * DT_W, acc[i][j]);
        return;
    }
    for (int i = 0; i < CB; i++)
        for (int j = 0; j < PB; j++)
            if (j < n)
                vf_store(o8 + i * ostr + (size_t)j * DT_W, acc[i][j]);
}

/* pixel bases xp[0..m) (words) of the n pixels from flat index p0; xp[n..m) = xp[0] */
static void pixel_bases(int *xp, int p0, int n, int m, const dt_bc_plan *q)
{
    int oh = p0 / q->OW, ow = p0 % q->OW;
    for (int j = 0; j < n; j++) {
        xp[j] = (oh * q->stride * q->Wp + ow * q->stride) * DT_W;
        if (++ow == q->OW)
            ow = 0, oh++;
    }
    for (int j = n; j < m; j++)
        xp[j] = xp[0];
}

/* o8 (channels g0 <= c < g1 of OCf, each P pixels; o8 holds channel g0 first) = the block's
 * forward, pixel tiles outermost (the pair taps of a few pixels stay in L1 while every channel
 * tile reads them); g0, g1 multiples of fc */
static void fwd_block(float *o8, const uint32_t *xb, const int32_t *off, const uint32_t *wr,
                      const float *bias, const dt_bc_plan *q, int g0, int g1)
{
    const size_t ostr = (size_t)q->P * DT_W;
    const int T = q->T2, fp = q->fp;
    int xp[12];
    for (int p0 = 0; p0 < q->P; p0 += fp) {
        const int n = q->P - p0 < fp ? q->P - p0 : fp;
        pixel_bases(xp, p0, n, fp, q);
        for (int c0 = g0; c0 < g1; c0 += q->fc) {
            float *o = o8 + (c0 - g0) * ostr + (size_t)p0 * DT_W;
            const uint32_t *w = wr + (size_t)c0 * T;
            if (q->fc == 4)
                fwd_tile(o, ostr, xb, xp, off, T, w, bias + c0, n, 4, ACCS / 4);
            else if (q->fc == 3)
                fwd_tile(o, ostr, xb, xp, off, T, w, bias + c0, n, 3, ACCS / 3);
            else
                fwd_tile(o, ostr, xb, xp, off, T, w, bias + c0, n, 2, ACCS / 2);
        }
    }
}

/* ---- weight gradient ---- */

/* adds lanes l < nv of v to the double slots s[l] */
DT_KINL void add_slots(double *s, vf v, int nv)
{
    if (nv == DT_W) {
        vd a;
        memcpy(&a, s, sizeof a);
        a += __builtin_convertvector(v, vd);
        memcpy(s, &a, sizeof a);
    } else {
        for (int l = 0; l < nv; l++)
            s[l] += (double)v[l];
    }
}

/* dbw[oc][oh][o2] = pairs (d8[oc][oh][2 o2], d8[oc][oh][2 o2 + 1]) (0 past the row) for the
 * channels g0 <= oc < g1 (d8 holds channel g0 first); channels OC..OCw are zero. bacc (OW even
 * only; NULL: none): bias_block's sums, from the values the pairs load anyway */
static void pack_pixel_pairs(uint32_t *restrict dbw, const float *restrict d8, const dt_bc_plan *q,
                             int g0, int g1, double *bacc, int nv)
{
    const vf zero = vf_zero();
    uint32_t *d = dbw;
    if (bacc) { /* OW even: pixel p's parity is its column's, its pair half's */
        DT_ASSERT(q->OW % 2 == 0);
        for (int oc = g0; oc < g1; oc++) {
            if (oc >= q->OC) {
                for (size_t e = 0; e < (size_t)q->OH * q->OW2; e++, d += DT_W)
                    vbf_store(d, vbf_pack(zero, zero));
                continue;
            }
            const float *s = d8 + (size_t)(oc - g0) * q->P * DT_W;
            vf a = zero, b = zero;
            for (int p = 0; p < q->P; p += 2, d += DT_W) {
                const vf lo = vf_load(s + (size_t)p * DT_W),
                         hi = vf_load(s + (size_t)(p + 1) * DT_W);
                a = a + lo;
                b = b + hi;
                vbf_store(d, vbf_pack(lo, hi));
            }
            add_slots(bacc + (size_t)oc * SLOTS, a + b, nv);
        }
        return;
    }
    for (int oc = g0; oc < g1; oc++)
        for (int oh = 0; oh < q->OH; oh++) {
            const float *s = d8 + ((size_t)(oc - g0) * q->P + (size_t)oh * q->OW) * DT_W;
            for (int o2 = 0; o2 < q->OW2; o2++, d += DT_W) {
                const int w = 2 * o2;
                if (oc >= q->OC) {
                    vbf_store(d, vbf_pack(zero, zero));
                    continue;
                }
                vbf_store(d, vbf_pack(vf_load(s + (size_t)w * DT_W),
                                      w + 1 < q->OW ? vf_load(s + (size_t)(w + 1) * DT_W) : zero));
            }
        }
}

#if DT_W == 16
/* r[k] = sum_slots of the 16 lanes of a[k] in double (lanes >= nv as 0) for k < 8: the pairwise
 * tree of sum_slots (lanes 0-7, lanes 8-15, then the two) */
DT_KINL void lane_sums8(vd8 *r, const vf a[8], int nv)
{
    vd8 lo[8], hi[8];
    vi lane;
    for (int l = 0; l < DT_W; l++)
        lane[l] = l;
    const vi keep = lane < nv;
    for (int k = 0; k < 8; k++)
        lane_halves(&lo[k], &hi[k], nv < DT_W ? (vf)((vi)a[k] & keep) : a[k]);
    vd8 l, h;
    pairwise8(&l, lo);
    pairwise8(&h, hi);
    *r = l + h;
}
#endif

/* CB channels x TB taps over the block's pixel pairs, for i < nc, j < nt: at W = 16 (the block
 * is its chunk) res[(c0 + i)*K + t0 + j] = the pairwise sum of the lanes l < nv (lane_sums8;
 * res points at weight (c0, t0)); else acc[((c0 + i)*K + t0 + j)*SLOTS + l] += lane l (the
 * slots of image n0 + l; acc points at slot n0 % SLOTS of weight (c0, t0)) */
DT_KINL void dw_tile(double *acc, const uint32_t *dbw, const uint32_t *xb, const int32_t *off,
                     const dt_bc_plan *q, int nc, int nt, int nv, const int CB, const int TB)
{
    vf a[4][12];
    for (int i = 0; i < CB; i++)
        for (int j = 0; j < TB; j++)
            a[i][j] = vf_zero();
    const size_t dstr = (size_t)q->OH * q->OW2 * DT_W;
    const size_t xs = (size_t)2 * q->stride * DT_W;
    const uint32_t *d = dbw;
    for (int oh = 0; oh < q->OH; oh++) {
        const uint32_t *x = xb + (size_t)oh * q->stride * q->Wp * DT_W;
        for (int o2 = 0; o2 < q->OW2; o2++, d += DT_W, x += xs) {
            vbf dv[4];
            for (int i = 0; i < CB; i++)
                dv[i] = vbf_load(d + i * dstr);
            for (int j = 0; j < TB; j++) {
                const vbf xv = vbf_load(x + off[j]);
                for (int i = 0; i < CB; i++)
                    a[i][j] = vbf_dot_nd(a[i][j], dv[i], xv);
            }
        }
    }
#if DT_W == 16
    /* the tile's CB x TB (24) accumulators, 8 at a time in (i, j) order */
    _Static_assert(ACCS % 8 == 0, "dw tiles of whole groups of 8");
    for (int g = 0; g < CB * TB; g += 8) {
        vf v[8];
        for (int k = 0; k < 8; k++)
            v[k] = a[(g + k) / TB][(g + k) % TB];
        vd8 r;
        lane_sums8(&r, v, nv);
        for (int k = 0; k < 8; k++) {
            const int i = (g + k) / TB, j = (g + k) % TB;
            if (i < nc && j < nt)
                acc[(size_t)i * q->K + j] = r[k];
        }
    }
#else
    for (int i = 0; i < CB; i++)
        for (int j = 0; j < TB; j++)
            if (i < nc && j < nt)
                add_slots(acc + ((size_t)i * q->K + j) * SLOTS, a[i][j], nv);
#endif
}

/* the block's weight-gradient tiles of channels g0 <= oc < g1 (dbw holds channel g0 first): acc
 * is the chunk's sums (W = 16) or the slot n0 % SLOTS of weight 0 (dw_tile) */
static void dw_block(double *acc, const uint32_t *dbw, const uint32_t *xb, const int32_t *offk,
                     int nv, const dt_bc_plan *q, int g0, int g1)
{
    const size_t dstr = (size_t)q->OH * q->OW2 * DT_W;
    const int wc = q->wc, wt = q->wt;
#if DT_W == 16
    const size_t per = 1; /* doubles per weight */
#else
    const size_t per = SLOTS;
#endif
    for (int c0 = g0; c0 < g1; c0 += wc) {
        const int nc = q->OC - c0 < wc ? q->OC - c0 : wc;
        for (int t0 = 0; t0 < q->Kw; t0 += wt) {
            const int nt = q->K - t0 < wt ? q->K - t0 : wt;
            double *a = acc + ((size_t)c0 * q->K + t0) * per;
            const uint32_t *d = dbw + (c0 - g0) * dstr;
            if (wc == 4)
                dw_tile(a, d, xb, offk + t0, q, nc, nt, nv, 4, ACCS / 4);
            else if (wc == 3)
                dw_tile(a, d, xb, offk + t0, q, nc, nt, nv, 3, ACCS / 3);
            else
                dw_tile(a, d, xb, offk + t0, q, nc, nt, nv, 2, ACCS / 2);
        }
    }
}

/* per channel g0 <= oc < g1 (d8 holds channel g0 first), the lanes' fp32 sums of d8 over the
 * pixels (two chains, alternating pixels) into the double slots */
static void bias_block(double *acc, const float *d8, int nv, const dt_bc_plan *q, int g0, int g1)
{
    for (int oc = g0; oc < g1; oc++) {
        const float *d = d8 + (size_t)(oc - g0) * q->P * DT_W;
        vf a = vf_zero(), b = vf_zero();
        int p = 0;
        for (; p + 2 <= q->P; p += 2) {
            a = a + vf_load(d + (size_t)p * DT_W);
            b = b + vf_load(d + (size_t)(p + 1) * DT_W);
        }
        if (p < q->P)
            a = a + vf_load(d + (size_t)p * DT_W);
        add_slots(acc + (size_t)oc * SLOTS, a + b, nv);
    }
}

/* the 16 slots' sum, pairwise (the same tree for every DT_W, and lane_sums8's) */
static double sum_slots(const double *s)
{
    double t[SLOTS];
    memcpy(t, s, sizeof t);
    for (int w = SLOTS / 2; w >= 1; w /= 2)
        for (int i = 0; i < w; i++)
            t[i] = t[2 * i] + t[2 * i + 1];
    return t[0];
}

/* ---- input gradient: XT taps x XP pixels, the sum over output channel pairs in registers ----
 * dx8[xp[k] + off[j]] += sum_o dot(dbx[o*dstr + k*L], wx[o*XT + j]) for j < nt, k < n */
DT_KINL void dx_tile(float *dx8, const int *xp, const int32_t *off, const uint32_t *dbx,
                     size_t dstr, int OC2, const uint32_t *w, int n, int nt)
{
    vf a[XT][XP];
    size_t dk[XP];
    for (int k = 0; k < XP; k++)
        dk[k] = (size_t)(k < n ? k : 0) * DT_W;
    for (int j = 0; j < XT; j++)
        for (int k = 0; k < XP; k++)
            a[j][k] = vf_zero();
    for (int o = 0; o < OC2; o++, dbx += dstr, w += XT) {
        vbf dv[XP];
        for (int k = 0; k < XP; k++)
            dv[k] = vbf_load(dbx + dk[k]);
        for (int j = 0; j < XT; j++) {
            const vbf wv = vbf_set1(w[j]);
            for (int k = 0; k < XP; k++)
                a[j][k] = vbf_dot_nd(a[j][k], dv[k], wv);
        }
    }
    /* in order: two (tap, pixel) pairs of a tile can hit the same input pixel */
    if (n == XP && nt == XT) { /* straight from the registers */
        for (int j = 0; j < XT; j++)
            for (int k = 0; k < XP; k++) {
                float *r = dx8 + xp[k] + off[j];
                vf_store(r, vf_load(r) + a[j][k]);
            }
        return;
    }
    for (int j = 0; j < XT; j++)
        for (int k = 0; k < XP; k++)
            if (j < nt && k < n) {
                float *r = dx8 + xp[k] + off[j];
                vf_store(r, vf_load(r) + a[j][k]);
            }
}

/* dbx[o][p] = pairs (d8[2 o][p], d8[2 o + 1][p]) (0 past OC) */
static void pack_channel_pairs_d(uint32_t *restrict dbx, const float *restrict d8,
                                 const dt_bc_plan *q)
{
    const size_t n = (size_t)q->P * DT_W;
    const vf zero = vf_zero();
    for (int o = 0; o < q->OC2; o++) {
        const float *a = d8 + 2 * o * n, *b = a + n;
        uint32_t *d = dbx + o * n;
        for (size_t e = 0; e < n; e += DT_W)
            vbf_store(d + e, vbf_pack(vf_load(a + e), 2 * o + 1 < q->OC ? vf_load(b + e) : zero));
    }
}

static void dx_block(float *dx8, const uint32_t *dbx, const int32_t *offk, const uint32_t *wx,
                     const dt_bc_plan *q)
{
    const size_t dstr = (size_t)q->P * DT_W;
    int xp[XP];
    for (int p0 = 0; p0 < q->P; p0 += XP) {
        const int n = q->P - p0 < XP ? q->P - p0 : XP;
        pixel_bases(xp, p0, n, XP, q);
        /* pixel bases are into the padded plane of pair words: the same for dx8's floats */
        const uint32_t *d = dbx + (size_t)p0 * DT_W;
        for (int t0 = 0; t0 < q->Kx; t0 += XT) {
            const int nt = q->K - t0 < XT ? q->K - t0 : XT;
            dx_tile(dx8, xp, offk + t0, d, dstr, q->OC2, wx + (size_t)t0 * q->OC2, n, nt);
        }
    }
}

/* ---- entry points ---- */

/* Channels per group of a block's output (or output gradient) in lanes, a multiple of step up to
 * n: about GROUP_BYTES of lanes, so that what the next pass reads is still in L2 (cnn's conv1:
 * 32 channels of 28 x 28 pixels are 1.6 MB a block, more than a Zen 5 core's 1 MB L2). */
#ifndef GROUP_BYTES
#define GROUP_BYTES (192 * 1024)
#endif
static int out_group(int n, int step, size_t P)
{
    const size_t per = P * DT_W * sizeof(float);
    int g = (int)(GROUP_BYTES / per) / step * step;
    g = g < step ? step : g;
    return g < n ? g : n;
}

/* What a parallel loop over the chunks of a batch shares (forward and backward). */
typedef struct {
    const dt_bc_plan *q, *qt; /* qt: the transposed input gradient's plan (backward, transposed) */
    float *ws;
    int N;
    float *out;
    int32_t *code;
    const float *inp;
    const uint16_t *inp16; /* inp as its bf16 copy (net_act.h), NULL: inp */
    float *dinp;
    const float *dout;
    int accum, dbias, fuse_bias, direct, G;
    double *res;                        /* backward: each chunk's sums (q->chunk / 2 doubles) */
    unsigned char zeroed[DT_TPOOL_MAX]; /* thread t's padding and zero planes are written */
} bc_job;

/* The forward of one chunk of images, block by block on pool thread `thread`'s part of ws */
static void fwd_chunk(void *arg, int c, int thread)
{
    bc_job *j = arg;
    const dt_bc_plan *q = j->q;
    const int32_t *off = (const int32_t *)(j->ws + q->off);
    const uint32_t *wr = (const uint32_t *)(j->ws + q->wr);
    const float *bp = j->ws + q->bias;
    float *tw = j->ws + (size_t)thread * q->thr;
    uint32_t *xb = (uint32_t *)(tw + q->xb);
    float *x8 = tw + q->x8, *o8 = tw + q->o8;
    const size_t HpWp = (size_t)q->Hp * q->Wp, plane = (size_t)q->C * HpWp * DT_W;
    const size_t HW = (size_t)q->H * q->W, P = (size_t)q->P, PP = (size_t)q->PP;
    if (!j->zeroed[thread]) {
        memset(x8, 0, plane * sizeof *x8);
        /* to_channel_pairs writes the interiors only: the border pairs zero (a backward may have
         * left other pairs there) */
        if (!q->tap_pairs)
            memset(xb, 0, (size_t)(q->C + 1) / 2 * HpWp * DT_W * sizeof *xb);
        j->zeroed[thread] = 1;
    }
    int n0, n1;
    chunk_images(j->N, DT_BC_CHUNK, c, &n0, &n1);
    /* the input: floats, or its bf16 copy (the same pairs: the copy holds the rounded values
     * vbf_pack rounds the floats to). The two inlined packers are called with h as a constant,
     * so each source type gets its own loop instead of a test at every load. */
    const int h = j->inp16 != NULL;
    for (; n0 < n1; n0 += DT_W) {
        const int nv = n1 - n0 < DT_W ? n1 - n0 : DT_W;
        const size_t s0 = (size_t)n0 * q->C * HW;
        const void *src = h ? (const void *)(j->inp16 + s0) : (const void *)(j->inp + s0);
        if (q->in_lanes && !q->tap_pairs) {
            if (h)
                lanes_channel_pairs(xb, src, 1, q);
            else
                lanes_channel_pairs(xb, src, 0, q);
        } else if (q->in_lanes) {
            lanes_shift_pairs(xb, src, h, q, 1);
        } else if (!q->tap_pairs && nv == DT_W) {
            if (h)
                to_channel_pairs(xb, src, 1, (size_t)q->C * HW, q);
            else
                to_channel_pairs(xb, src, 0, (size_t)q->C * HW, q);
        } else {
            to_lanes_any(x8 + ((size_t)q->pad * q->Wp + q->pad) * DT_W, HpWp * DT_W,
                         (size_t)q->Wp * DT_W, src, h, (size_t)q->C * HW, HW, (size_t)q->W, q->C,
                         q->H, q->W, nv);
            if (q->tap_pairs)
                pack_shift_pairs(xb, x8, (size_t)q->C * q->Hp, q->Wp, 1);
            else
                pack_channel_pairs(xb, x8, q->C, HpWp);
        }
        /* the output a group of channels at a time: its lanes stay in L2 until written out */
        float *ob = q->out_lanes ? j->out + (size_t)n0 * q->OC * P : NULL; /* the block's */
        for (int g0 = 0; g0 < q->OC; g0 += j->G) {
            const int g1 = g0 + j->G < q->OCf ? g0 + j->G : q->OCf,
                      m = (g1 < q->OC ? g1 : q->OC) - g0;
            if (ob && g1 <= q->OC) { /* the lane layout is o8's: straight into the output */
                fwd_block(ob + (size_t)g0 * P * DT_W, xb, off, wr, bp, q, g0, g1);
                continue;
            }
            fwd_block(o8, xb, off, wr, bp, q, g0, g1);
            if (ob) {
                memcpy(ob + (size_t)g0 * P * DT_W, o8, (size_t)m * P * DT_W * sizeof *o8);
                continue;
            }
            if (j->code) {
                float *p8 = tw + q->p8;
                /* the conv's output rounded to bf16 as it is read, as the separate layers read it:
                 * ties after rounding pick the pixel they pick */
                lanes_relu_pool(
                    p8, (uint8_t *)j->code + (size_t)n0 * q->OC * PP + (size_t)g0 * PP * DT_W, o8,
                    m, P, q->OW, q->PH, q->PW, 1);
                from_lanes(j->out + (size_t)n0 * q->OC * PP + (size_t)g0 * PP, (size_t)q->OC * PP,
                           PP, 0, p8, PP * DT_W, 0, m, 1, q->PP, nv, 0);
            } else {
                from_lanes(j->out + (size_t)n0 * q->OC * P + (size_t)g0 * P, (size_t)q->OC * P, P,
                           0, o8, P * DT_W, 0, m, 1, q->P, nv, 0);
            }
        }
        dt_poll();
    }
}

static void DT_KFN(bc_forward)(const dt_bc_plan *q, float *out, int32_t *code, const float *inp,
                               const uint16_t *inp16, const float *weight, const float *bias, int N,
                               float *ws)
{
    DT_ASSERT((inp == NULL) != (inp16 == NULL));
    DT_ASSERT(N >= 1 && q->L == DT_W && (!code || q->PP >= 1));
    DT_ASSERT(!(q->in_lanes || q->out_lanes) || (N % DT_W == 0 && !code));
    float *bp = ws + q->bias;
    pair_offsets((int32_t *)(ws + q->off), q);
    pack_fwd_weights((uint32_t *)(ws + q->wr), weight, q);
    for (int c = 0; c < q->OCf; c++)
        bp[c] = bias && c < q->OC ? bias[c] : 0.0f;
    bc_job j = {.q = q,
                .ws = ws,
                .N = N,
                .out = out,
                .code = code,
                .inp = inp,
                .inp16 = inp16,
                .G = out_group(q->OCf, q->fc, (size_t)q->P)};
    memset(j.zeroed, 0, (size_t)dt_tpool_threads());
    dt_tpool_run((N + DT_BC_CHUNK - 1) / DT_BC_CHUNK, fwd_chunk, &j);
}

/* dst[0 .. n*W) = src's rounded to bf16 (round_lanes: in place), bitwise dt_round_bf16
 * (isa/elem.c): nearest even on the upper 16 bits, NaN kept */
static void round_lanes_to(float *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n * DT_W; i += DT_W) {
        vu u;
        memcpy(&u, src + i, sizeof u);
        u = vu_round_bf16(u);
        memcpy(dst + i, &u, sizeof u);
    }
}
static void round_lanes(float *x, size_t n) { round_lanes_to(x, x, n); }

/* d8 (channel g0 first) of channels g0 <= oc < g1 of the block at n0: dout transposed, or the
 * pooled gradient unpooled by code */
static void block_dout(float *d8, const float *dout, const int32_t *code, int n0, int nv, float *ws,
                       const dt_bc_plan *q, int g0, int g1, int rnd)
{
    const int OC = q->OC, m = g1 - g0;
    const size_t P = (size_t)q->P, PP = (size_t)q->PP;
    if (code) {
        float *dp8 = ws + q->p8;
        to_lanes(dp8, PP * DT_W, 0, dout + (size_t)n0 * OC * PP + (size_t)g0 * PP, (size_t)OC * PP,
                 PP, 0, m, 1, q->PP, nv);
        if (rnd)
            round_lanes(dp8, (size_t)m * PP);
        lanes_unpool(d8, dp8, (const uint8_t *)code + (size_t)n0 * OC * PP + (size_t)g0 * PP * DT_W,
                     m, P, q->OW, q->PH, q->PW, 1);
    } else {
        to_lanes(d8, P * DT_W, 0, dout + (size_t)n0 * OC * P + (size_t)g0 * P, (size_t)OC * P, P, 0,
                 m, 1, q->P, nv);
        if (rnd)
            round_lanes(d8, (size_t)m * P);
    }
}

/* the transposed input gradient's shared setup per call (plan_transposed): its plan, the flipped
 * weights packed, offsets, zero bias (each thread clears its padded dout planes' border) */
static void dinp_t_prepare(dt_bc_plan *qt, const dt_bc_plan *q, const float *weight, float *ws)
{
    plan_transposed(qt, q);
    float *wt = ws + q->t_w;
    const int C = q->C, OC = q->OC, KH = q->KH, KW = q->KW;
    for (int c = 0; c < C; c++)
        for (int oc = 0; oc < OC; oc++)
            for (int kh = 0; kh < KH; kh++)
                for (int kw = 0; kw < KW; kw++)
                    wt[(((size_t)c * OC + oc) * KH + kh) * KW + kw] =
                        weight[(((size_t)oc * C + c) * KH + KH - 1 - kh) * KW + KW - 1 - kw];
    pack_fwd_weights((uint32_t *)(ws + q->t_wr), wt, qt);
    pair_offsets((int32_t *)(ws + q->t_off), qt);
    memset(ws + q->t_bias, 0, (size_t)qt->OCf * sizeof *ws);
}

/* xb's interior pixels = the pairs of d8 (OC planes of OH x OW pixels) as the forward packs the
 * padded planes: (oc, oc + 1) pairs of one pixel, or for tap pairs (C = 1: OC = 1 here) pairs of
 * a pixel and the one right of it (0 past the row, the right border being zero). The same pairs
 * as copying d8 into a zero-padded x8 and packing that, without the copy. */
static void dinp_t_pack(uint32_t *restrict xb, const float *restrict d8, const dt_bc_plan *qt,
                        const dt_bc_plan *q, int g0, int g1)
{
    const vf zero = vf_zero();
    const size_t P = (size_t)q->P;
    const int OW = q->OW, Wp = qt->Wp, pad = qt->pad;
    if (qt->tap_pairs) {
        for (int oc = g0; oc < g1; oc++)
            for (int oh = 0; oh < q->OH; oh++) {
                const float *a = d8 + ((size_t)(oc - g0) * P + (size_t)oh * OW) * DT_W;
                uint32_t *d = xb + (((size_t)oc * qt->Hp + oh + pad) * Wp + pad) * DT_W;
                /* the left border's pixel pairs with the row's first: (0, a[0]) */
                if (pad > 0)
                    vbf_store(d - DT_W, vbf_pack(zero, vf_load(a)));
                for (int w = 0; w < OW; w++)
                    vbf_store(d + (size_t)w * DT_W,
                              vbf_pack(vf_load(a + (size_t)w * DT_W),
                                       w + 1 < OW ? vf_load(a + (size_t)(w + 1) * DT_W) : zero));
            }
        return;
    }
    for (int oc = g0; oc < g1; oc += 2)
        for (int oh = 0; oh < q->OH; oh++) {
            const float *a = d8 + ((size_t)(oc - g0) * P + (size_t)oh * OW) * DT_W,
                        *b = a + P * DT_W;
            uint32_t *d = xb + (((size_t)oc / 2 * qt->Hp + oh + pad) * Wp + pad) * DT_W;
            for (int w = 0; w < OW; w++)
                vbf_store(d + (size_t)w * DT_W,
                          vbf_pack(vf_load(a + (size_t)w * DT_W),
                                   oc + 1 < q->OC ? vf_load(b + (size_t)w * DT_W) : zero));
        }
}

/* pack_pixel_pairs (OW even, bacc its bias sums or NULL) and dinp_t_pack (qt not tap pairs) of
 * channels g0 <= oc < g1 (g0 even) in one pass over d8: each value of the output gradient read
 * once for both (it comes from L2 or memory; the two passes read it twice). The same words and
 * the same sums in the same order as the two functions. */
static void pack_both(uint32_t *restrict dbw, uint32_t *restrict xbt, const float *restrict d8,
                      const dt_bc_plan *qt, const dt_bc_plan *q, int g0, int g1, double *bacc,
                      int nv)
{
    const vf zero = vf_zero();
    const size_t P = (size_t)q->P, pl = (size_t)q->OH * q->OW2 * DT_W;
    const int OW = q->OW, Wp = qt->Wp, pad = qt->pad;
    DT_ASSERT(OW % 2 == 0 && g0 % 2 == 0 && !qt->tap_pairs);
    for (int oc = g0; oc < g1; oc += 2) {
        const int two = oc + 1 < g1, real1 = oc + 1 < q->OC;
        uint32_t *d0 = dbw + (size_t)(oc - g0) * pl, *d1 = d0 + pl;
        if (oc >= q->OC) { /* padding channels of the weight-gradient tiles */
            memset(d0, 0, (two ? 2 : 1) * pl * sizeof *d0);
            continue;
        }
        const float *a = d8 + (size_t)(oc - g0) * P * DT_W, *b = a + P * DT_W;
        vf a0 = zero, b0 = zero, a1 = zero, b1 = zero;
        for (int oh = 0; oh < q->OH; oh++) {
            uint32_t *t = xbt + (((size_t)oc / 2 * qt->Hp + oh + pad) * Wp + pad) * DT_W;
            for (int w = 0; w < OW; w += 2) {
                const size_t p = (size_t)oh * OW + (size_t)w;
                const vf x00 = vf_load(a + p * DT_W), x01 = vf_load(a + (p + 1) * DT_W);
                const vf x10 = real1 ? vf_load(b + p * DT_W) : zero;
                const vf x11 = real1 ? vf_load(b + (p + 1) * DT_W) : zero;
                vbf_store(d0 + p / 2 * DT_W, vbf_pack(x00, x01));
                if (two)
                    vbf_store(d1 + p / 2 * DT_W, vbf_pack(x10, x11));
                a0 = a0 + x00, b0 = b0 + x01, a1 = a1 + x10, b1 = b1 + x11;
                vbf_store(t + (size_t)w * DT_W, vbf_pack(x00, x10));
                vbf_store(t + (size_t)(w + 1) * DT_W, vbf_pack(x01, x11));
            }
        }
        if (bacc) {
            add_slots(bacc + (size_t)oc * SLOTS, a0 + b0, nv);
            if (real1)
                add_slots(bacc + (size_t)(oc + 1) * SLOTS, a1 + b1, nv);
        }
    }
}

/* The fused pool's backward without d8 (OH = 2 PH, OW = 2 PW): for channels g0 <= oc < g1
 * (dp8 and code hold channel g0 first, dp8 rounded), straight from each window's pooled gradient
 * and code what pack_pixel_pairs (with bacc: and bias_block's sums), and with xbt dinp_t_pack's
 * channel pairs (qt not tap pairs, g0 even), would make of lanes_unpool's d8: the same values
 * (lanes_unpool's (k == pos) & (0 + d)), the same sums in the same order. */
static void unpool_pairs(uint32_t *restrict dbw, double *bacc, int nv, uint32_t *restrict xbt,
                         const dt_bc_plan *qt, const float *restrict dp8, const uint8_t *code,
                         const dt_bc_plan *q, int g0, int g1)
{
    const vf zero = vf_zero();
    const int PH = q->PH, PW = q->PW;
    const size_t PP = (size_t)q->PP, pl = (size_t)q->OH * q->OW2 * DT_W;
    DT_ASSERT(q->OH == 2 * PH && q->OW == 2 * PW && g0 % 2 == 0);
    for (int oc = g0; oc < g1; oc += 2) {
        const int two = oc + 1 < g1, real1 = oc + 1 < q->OC;
        uint32_t *d0 = dbw + (size_t)(oc - g0) * pl, *d1 = d0 + pl;
        if (oc >= q->OC) { /* padding channels of the weight-gradient tiles */
            memset(d0, 0, (two ? 2 : 1) * pl * sizeof *d0);
            continue;
        }
        vf a0 = zero, b0 = zero, a1 = zero, b1 = zero;
        for (int ph = 0; ph < PH; ph++)
            for (int r = 0; r < 2; r++) {
                const int oh = 2 * ph + r;
                uint32_t *t =
                    xbt ? xbt + (((size_t)oc / 2 * qt->Hp + oh + qt->pad) * qt->Wp + qt->pad) * DT_W
                        : NULL;
                for (int pw = 0; pw < PW; pw++) {
                    const size_t e0 = ((size_t)(oc - g0) * PP + (size_t)ph * PW + pw) * DT_W;
                    const size_t e1 = e0 + PP * DT_W;
                    vi k = code_load(code, e0, 1);
                    const vi v = (vi)(zero + vf_load(dp8 + e0));
                    const vf lo0 = (vf)((k == 2 * r) & v), hi0 = (vf)((k == 2 * r + 1) & v);
                    vf lo1 = zero, hi1 = zero;
                    if (real1) {
                        k = code_load(code, e1, 1);
                        const vi v1 = (vi)(zero + vf_load(dp8 + e1));
                        lo1 = (vf)((k == 2 * r) & v1), hi1 = (vf)((k == 2 * r + 1) & v1);
                    }
                    const size_t o = ((size_t)oh * PW + pw) * DT_W;
                    vbf_store(d0 + o, vbf_pack(lo0, hi0));
                    if (two)
                        vbf_store(d1 + o, vbf_pack(lo1, hi1));
                    a0 = a0 + lo0, b0 = b0 + hi0, a1 = a1 + lo1, b1 = b1 + hi1;
                    if (t) {
                        vbf_store(t + (size_t)2 * pw * DT_W, vbf_pack(lo0, lo1));
                        vbf_store(t + (size_t)(2 * pw + 1) * DT_W, vbf_pack(hi0, hi1));
                    }
                }
            }
        if (bacc) {
            add_slots(bacc + (size_t)oc * SLOTS, a0 + b0, nv);
            if (real1)
                add_slots(bacc + (size_t)(oc + 1) * SLOTS, a1 + b1, nv);
        }
    }
}

/* dinp (the block's first image) (+)= the forward of qt on the block's d8, packed into the
 * thread's t_xb by dinp_t_pack (tw: the thread's part of ws) */
static void dinp_t_block(float *dinp, const dt_bc_plan *qt, const dt_bc_plan *q, float *ws,
                         float *tw, int nv, int accum)
{
    float *o8 = tw + q->t_o8;
    const uint32_t *xb = (const uint32_t *)(tw + q->t_xb);
    const size_t HW = (size_t)q->H * q->W;
    const int32_t *off = (const int32_t *)(ws + q->t_off);
    const uint32_t *wr = (const uint32_t *)(ws + q->t_wr);
    if (q->in_lanes && !accum && qt->OCf == q->C) { /* o8's layout: straight into dinp */
        fwd_block(dinp, xb, off, wr, ws + q->t_bias, qt, 0, qt->OCf);
        return;
    }
    fwd_block(o8, xb, off, wr, ws + q->t_bias, qt, 0, qt->OCf);
    if (q->in_lanes)
        planes_to_block(dinp, o8, HW * DT_W, 0, q->C, 1, (int)HW, accum);
    else
        from_lanes(dinp, (size_t)q->C * HW, HW, 0, o8, (size_t)qt->P * DT_W, 0, q->C, 1, qt->P, nv,
                   accum);
}

/* the block's output gradient, channels g0 <= oc < g1, in the lane layout (out_lanes): the
 * block's own planes, or (round_dout) d8 = them rounded as block_dout rounds */
static const float *lanes_dout(float *d8, const float *dout, int n0, const dt_bc_plan *q, int g0,
                               int g1, int rnd)
{
    const size_t P = (size_t)q->P;
    const float *s = dout + (size_t)n0 * q->OC * P + (size_t)g0 * P * DT_W;
    if (!rnd)
        return s;
    round_lanes_to(d8, s, (size_t)(g1 - g0) * P);
    return d8;
}

/* bwd_chunk's first call on a thread: the thread's planes zeroed where later writes leave
 * borders (x8's padding, d8's pixels outside the pool windows, the packed planes' frames) */
static void bwd_zero(const bc_job *j, float *x8, float *d8, uint32_t *txb, size_t plane)
{
    const dt_bc_plan *q = j->q, *qt = j->qt;
    memset(x8, 0, plane * sizeof *x8);
    if (!j->direct) /* lanes_unpool writes only the pool windows: d8's other pixels stay 0 */
        memset(d8, 0, (size_t)j->G * q->P * DT_W * sizeof *d8);
    if (txb) {
        /* the packed planes' zero border (pairs of zeros: vbf_pack(0, 0) is 0); dinp_t_pack
         * writes only their interiors; channel pairs fill (OC + 1) / 2 planes, tap pairs OC */
        const size_t planes = qt->tap_pairs ? (size_t)q->OC : (size_t)(q->OC + 1) / 2;
        memset(txb, 0, planes * qt->Hp * qt->Wp * DT_W * sizeof *txb);
    }
}

/* bwd_chunk: images n0.. (nv of them) of the input as the shifted channel pairs xb (through the
 * padded lanes x8 unless the input is in lanes already) */
static void bwd_input(uint32_t *xb, float *x8, const bc_job *j, int n0, int nv)
{
    const dt_bc_plan *q = j->q;
    const size_t HpWp = (size_t)q->Hp * q->Wp, HW = (size_t)q->H * q->W;
    const size_t interior = ((size_t)q->pad * q->Wp + q->pad) * DT_W;
    if (q->in_lanes) {
        lanes_shift_pairs(xb,
                          j->inp16 ? (const void *)(j->inp16 + (size_t)n0 * q->C * HW)
                                   : (const void *)(j->inp + (size_t)n0 * q->C * HW),
                          j->inp16 != NULL, q, q->stride);
        return;
    }
    if (j->inp16)
        to_lanes_h(x8 + interior, HpWp * DT_W, (size_t)q->Wp * DT_W,
                   j->inp16 + (size_t)n0 * q->C * HW, (size_t)q->C * HW, HW, (size_t)q->W, q->C,
                   q->H, q->W, nv);
    else
        to_lanes(x8 + interior, HpWp * DT_W, (size_t)q->Wp * DT_W, j->inp + (size_t)n0 * q->C * HW,
                 (size_t)q->C * HW, HW, (size_t)q->W, q->C, q->H, q->W, nv);
    pack_shift_pairs(xb, x8, (size_t)q->C * q->Hp, q->Wp, q->stride);
}

/* bwd_chunk without the transposed plan: images n0.. (nv) of dinp from the group's output
 * gradient dd (one group: every channel) through the padded lanes dx8 */
static void bwd_dinp(const bc_job *j, uint32_t *db, const float *dd, float *dx8,
                     const int32_t *offk, const uint32_t *wx, int n0, int nv)
{
    const dt_bc_plan *q = j->q;
    const size_t HpWp = (size_t)q->Hp * q->Wp, HW = (size_t)q->H * q->W;
    const size_t interior = ((size_t)q->pad * q->Wp + q->pad) * DT_W;
    pack_channel_pairs_d(db, dd, q);
    memset(dx8, 0, (size_t)q->C * HpWp * DT_W * sizeof *dx8);
    dx_block(dx8, db, offk, wx, q);
    if (q->in_lanes)
        planes_to_block(j->dinp + (size_t)n0 * q->C * HW, dx8 + interior, HpWp * DT_W,
                        (size_t)q->Wp * DT_W, q->C, q->H, q->W, j->accum);
    else
        from_lanes(j->dinp + (size_t)n0 * q->C * HW, (size_t)q->C * HW, HW, (size_t)q->W,
                   dx8 + interior, HpWp * DT_W, (size_t)q->Wp * DT_W, q->C, q->H, q->W, nv,
                   j->accum);
}

/* The backward of one chunk of images on pool thread `thread`: its dinp, and its weight and bias
 * gradient sums (sum_slots of its 16 images) in the chunk's part of j->res. */
static void bwd_chunk(void *arg, int c, int thread)
{
    bc_job *j = arg;
    const dt_bc_plan *q = j->q, *qt = j->qt;
    float *ws = j->ws, *tw = ws + (size_t)thread * q->thr;
    const int32_t *offk = (const int32_t *)(ws + q->offk);
    const uint32_t *wx = (const uint32_t *)(ws + q->wx);
    uint32_t *xb = (uint32_t *)(tw + q->xb), *db = (uint32_t *)(tw + q->db);
    uint32_t *txb = qt ? (uint32_t *)(tw + q->t_xb) : NULL;
    float *x8 = tw + q->x8, *d8 = tw + q->o8, *dx8 = tw + q->dx8;
    double *bacc = align_d(tw + q->acc), *wacc = bacc + (size_t)q->OC * SLOTS;
    const int K = q->K, OC = q->OC, G = j->G;
    const size_t HW = (size_t)q->H * q->W;
    if (!j->zeroed[thread]) {
        bwd_zero(j, x8, d8, txb, (size_t)q->C * q->Hp * q->Wp * DT_W);
        j->zeroed[thread] = 1;
    }
    double *res = j->res + (size_t)c * (q->chunk / 2);
    if (j->dbias)
        memset(bacc, 0, (size_t)OC * SLOTS * sizeof *bacc);
#if DT_W == 16
    double *acc = res; /* dw_tile writes each weight's sum over the chunk's one block */
#else
    double *acc = wacc;
    memset(wacc, 0, (size_t)OC * K * SLOTS * sizeof *wacc);
#endif
    int n0, n1;
    chunk_images(j->N, DT_BC_CHUNK, c, &n0, &n1);
    const float *dd = d8; /* the group's output gradient in lanes: d8, or (out_lanes) dout's */
    /* round_dout: only the bias sums need the rounded floats. Everything else packs them into
     * bf16 pairs, whose rounding (nearest even, a denormal flushed: vbf_pack) of a float gives the
     * pair of the float rounded first (bf16 shares float32's exponents, so a normal float rounds
     * to a normal bf16 and a denormal to a denormal or zero, flushed either way). */
    const int rnd = q->round_dout && j->dbias;
    for (; n0 < n1; n0 += DT_W) {
        const int nv = n1 - n0 < DT_W ? n1 - n0 : DT_W;
        const int slot = n0 % SLOTS; /* W = 16: 0, the chunk's one block */
        double *ba = j->dbias ? bacc + slot : NULL;
        bwd_input(xb, x8, j, n0, nv);
        for (int g0 = 0; g0 < q->OCw; g0 += G) {
            const int g1 = g0 + G < q->OCw ? g0 + G : q->OCw, g1c = g1 < OC ? g1 : OC;
            if (j->direct) {
                float *dp8 = tw + q->p8;
                const size_t PP = (size_t)q->PP;
                to_lanes(dp8, PP * DT_W, 0, j->dout + (size_t)n0 * OC * PP + (size_t)g0 * PP,
                         (size_t)OC * PP, PP, 0, g1c - g0, 1, q->PP, nv);
                if (q->round_dout)
                    round_lanes(dp8, (size_t)(g1c - g0) * PP);
                unpool_pairs(db, ba, nv, txb, qt, dp8,
                             (const uint8_t *)j->code + (size_t)n0 * OC * PP +
                                 (size_t)g0 * PP * DT_W,
                             q, g0, g1);
                dw_block(acc + slot, db, xb, offk, nv, q, g0, g1);
                continue;
            }
            if (q->out_lanes) {
                dd = lanes_dout(d8, j->dout, n0, q, g0, g1c, rnd);
            } else {
                block_dout(d8, j->dout, j->code, n0, nv, tw, q, g0, g1c, rnd);
                dd = d8;
            }
            if (ba && !j->fuse_bias)
                bias_block(ba, dd, nv, q, g0, g1c);
            if (txb && !qt->tap_pairs && q->OW % 2 == 0) { /* both packings in one pass */
                pack_both(db, txb, dd, qt, q, g0, g1, ba, nv);
                dw_block(acc + slot, db, xb, offk, nv, q, g0, g1);
                continue;
            }
            pack_pixel_pairs(db, dd, q, g0, g1, j->fuse_bias ? ba : NULL, nv);
            dw_block(acc + slot, db, xb, offk, nv, q, g0, g1);
            if (txb)
                dinp_t_pack(txb, dd, qt, q, g0, g1c);
        }
        if (txb)
            dinp_t_block(j->dinp + (size_t)n0 * q->C * HW, qt, q, ws, tw, nv, j->accum);
        else if (j->dinp)
            bwd_dinp(j, db, dd, dx8, offk, wx, n0, nv);
        dt_poll();
    }
#if DT_W < 16
    for (size_t i = 0; i < (size_t)OC * K; i++)
        res[i] = sum_slots(wacc + i * SLOTS);
#else
    (void)wacc;
#endif
    if (j->dbias)
        for (int oc = 0; oc < OC; oc++)
            res[(size_t)OC * K + oc] = sum_slots(bacc + (size_t)oc * SLOTS);
}

static void DT_KFN(bc_backward)(const dt_bc_plan *q, float *dinp, float *dweight, float *dbias,
                                const float *dout, const int32_t *code, const float *inp,
                                const uint16_t *inp16, const float *weight, int N, int accum,
                                float *ws)
{
    DT_ASSERT(N >= 1 && dweight && q->L == DT_W && (!code || q->PP >= 1));
    DT_ASSERT(!(q->in_lanes || q->out_lanes) || (N % DT_W == 0 && !code));
    const int K = q->K, OC = q->OC, nch = (N + DT_BC_CHUNK - 1) / DT_BC_CHUNK;
    tap_offsets((int32_t *)(ws + q->offk), q->Kw > q->Kx ? q->Kw : q->Kx, q);
    dt_bc_plan qt;
    const int tr = dinp && q->transposed;
    if (tr)
        dinp_t_prepare(&qt, q, weight, ws);
    else if (dinp)
        pack_dinp_weights((uint32_t *)(ws + q->wx), weight, q);
    /* dout a group of channels at a time (its lanes, pairs, the dweight tiles and the transposed
     * input gradient's packing read it while it is in L2); the GEMM form of the input gradient
     * reads all channels' pairs at once: one group */
    const int step = q->wc % 2 ? 2 * q->wc : q->wc;
    const int G = dinp && !tr ? q->OCw : out_group(q->OCw, step, (size_t)q->P);
    bc_job j = {.q = q,
                .qt = tr ? &qt : NULL,
                .ws = ws,
                .N = N,
                .code = (int32_t *)code,
                .inp = inp,
                .inp16 = inp16,
                .dinp = dinp,
                .dout = dout,
                .accum = accum,
                .dbias = dbias != NULL,
                /* dbias in the pixel pairs' pass (bias_block's two chains) when rows are even */
                .fuse_bias = dbias && q->OW % 2 == 0,
                /* the fused pool's gradient packed straight from the pooled one, without d8 */
                .direct = code && q->OH == 2 * q->PH && q->OW == 2 * q->PW && (!dinp || tr) &&
                          !(tr && qt.tap_pairs) && G % 2 == 0,
                .G = G,
                .res = align_d(ws + q->x8 + (size_t)dt_tpool_threads() * q->thr)};
    memset(j.zeroed, 0, (size_t)dt_tpool_threads());
    dt_tpool_run(nch, bwd_chunk, &j);
    /* the chunks in order: the same sums whatever the thread count */
    const size_t nw = (size_t)OC * K;
    fold_chunks(j.res, q->chunk / 2, nw + (dbias ? (size_t)OC : 0), nch);
    for (size_t i = 0; i < nw; i++)
        dweight[i] = (float)j.res[i];
    if (dbias)
        for (int oc = 0; oc < OC; oc++)
            dbias[oc] = (float)j.res[nw + oc];
}

const struct dt_kbf16conv DT_KFN(dt_kbf16conv) = {
    .plan = DT_KFN(bc_plan),
    .forward = DT_KFN(bc_forward),
    .backward = DT_KFN(bc_backward),
};
