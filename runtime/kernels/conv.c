/*
 * conv.c - 2-D convolution kernels (torch.nn.Conv2d, groups 1, dilation 1), see layer_kernels.h.
 *
 * Two kernel families, chosen per shape (plan_conv): the batch-lane kernels of the ISA in use
 * (isa/lanes.c: 4, 8 or 16 images in the lanes of a vector; every layer of lenet5, cnn and
 * resnet20, and the fused conv + ReLU + 2x2 max pool), and, for wide layers, the paths below,
 * whose inner loops are the ISA's too (isa/lanes_conv.c, struct dt_kconvh). Which family wins on
 * which shape is measured by bench/conv_layers.c (numbers: docs/performance.md), never recorded
 * here.
 *
 * im2col + sgemm (Chellapilla et al., "High performance convolutional neural networks
 * for document processing", 2006; Caffe). With K = C*KH*KW and P output pixels of a chunk:
 *   forward:  col (K, P) = im2col(inp); tmp (OC, P) = weight (OC, K) @ col; out = permute(tmp)+bias
 *   backward: dbias = sums of the planes of dout; dmat (OC, P) = permute(dout);
 *             col = im2col(inp); dweight (OC, K) += dmat @ col^T;
 *             dinp, general:  col = weight^T (K, OC) @ dmat; dinp (+)= col2im(col)
 *             dinp, stride 1 with "same" padding (2 pad = KH - 1 = KW - 1) and C >= 8: a forward
 *                   conv of dout with the flipped, transposed weight wt (C, OC, KH, KW):
 *                   col = im2col(dout); tmp (C, P) = wt (C, OC*KH*KW) @ col; dinp (+)= permute(tmp)
 *                   - the same FLOPs as a GEMM with inner dimension OC*KH*KW instead of OC, and a
 *                   permute instead of the scattered col2im (faster on resnet20's 3x3 convs).
 * A 1x1, stride 1, pad 0 convolution needs no im2col: col is inp permuted to (C, P).
 * The products are dt_gemm's (gemm.h: the ISA's packed kernel, cblas_sgemm on generic), split over
 * the thread pool in panels of the output, so their bits do not depend on the thread count (a
 * threaded OpenBLAS sgemm's do: measured on resnet9's wide layers).
 * Direct path, stride 1 with C*KH*KW <= DT_CONV_DIRECT_TAPS (first layers: lenet5's and cnn's
 * conv1, C = 1): with so few taps the GEMM is skinny (M = OC, K <= 32) and im2col's copies cost
 * more than the arithmetic; instead the forward and the weight (+ bias) gradient loop directly
 * over zero-padded input planes, see conv_direct_forward. dinp, if asked for, takes the GEMM
 * path.
 *
 * Chunks: P is the output pixels of a group of whole images (or, when one image's columns are too
 * big, of a band of output rows of one image), sized so the im2col block (K, P) stays in cache
 * (DT_CONV_COL_FLOATS) between im2col and the GEMM's packing. When the whole batch fits (lenet5's
 * convs at N = 128) that is ONE sgemm over the batch; otherwise one sgemm per group of images, P
 * still in the thousands. That beats one batch-wide im2col matrix (resnet20: (144, 131072),
 * 75 MB written by im2col and read back by the GEMM at DRAM speed), and the workspace shrinks
 * from 84 MB to under 2 MB.
 * The price of batching images into one GEMM is the (OC, n, OH*OW) <-> NCHW permutes, one pass
 * over an output-sized block each, in cache.
 *
 * im2col/col2im loop over (n, c) outermost: the input plane stays in L1 while its KH*KW rows of
 * col are written (col2im: summed).
 */
#include <stdint.h>
#include <string.h>

#include "gemm.h"
#include "common.h"
#include "isa.h"
#include "lanes.h"
#include "layer_kernels.h"
#include "tpool.h"

int dt_conv_out_size(int in, int k, int stride, int pad)
{
    DT_ASSERT(stride >= 1 && pad >= 0 && k >= 1);
    long span = (long)in + 2L * pad - k;
    if (span < 0)
        return 0;
    return (int)(span / stride + 1);
}

/* Floats of im2col columns per chunk (1 MiB: about a Zen 3 / Skylake-SP L2). */
#ifndef DT_CONV_COL_FLOATS
#define DT_CONV_COL_FLOATS (256L * 1024)
#endif
#ifndef DT_CONV_MIN_COLS
#define DT_CONV_MIN_COLS 512
#endif
/* Direct path (no im2col, no GEMM) for stride-1 convs with C*KH*KW <= this: first layers. */
#ifndef DT_CONV_DIRECT_TAPS
#define DT_CONV_DIRECT_TAPS 32
#endif
/* AUTO takes the batch-lane kernels when their workspace is at most this: 4 MiB with 8 lanes
 * (avx2), 96 MiB with 16 (avx512, avx2w16), see lanes_auto */
#ifndef DT_CONV_LANES_FLOATS
#define DT_CONV_LANES_FLOATS (1024L * 1024)
#endif
#ifndef DT_CONV_LANES16_FLOATS
#define DT_CONV_LANES16_FLOATS (24L * 1024 * 1024)
#endif
#define DIRECT_LANES DT_CONV_DIRECT_LANES /* float lanes of the direct kernels' loops */

/* Everything a call derives from the shape: sizes, the path, the chunking, the workspace layout. */
typedef struct {
    int OH, OW, K; /* K = C*KH*KW */
    size_t OHW, HW;
    int pointwise;  /* 1x1, stride 1, pad 0: col is a permute of inp */
    int transposed; /* dinp as a forward conv of dout (stride 1, same padding, not pointwise) */
    int direct;     /* direct forward and weight gradient: few input taps, stride 1 */
    int Wp;         /* direct: padded input row length W + 2*pad */
    size_t L, Sp;   /* direct: flat loop length (OH*Wp rounded up), padded plane stride */
    size_t dacc, dpin, dbuf; /* direct: workspace offsets (floats) */
    int nb, rows; /* a chunk is nb images x rows output rows (rows < OH only if nb == 1) */
    size_t col, tmp, wt, total; /* workspace offsets (floats) and size */
    const struct dt_kconvh *h;  /* the ISA's im2col and direct-path loops */
    const struct dt_klanes *lk; /* the ISA's batch-lane kernels */
    int lanes;                  /* 1: the batch-lane kernels (isa/lanes.c) */
    dt_lanes_plan lp;
} conv_plan;

/* AUTO's choice of the batch-lane kernels, from timings of bench/conv_layers.c at N = 128
 * (docs/performance.md). With 8 lanes (avx2) they win on every layer of lenet5, cnn and resnet20,
 * where the im2col GEMM is skinny (few output channels or taps) or im2col copies short rows, and
 * tie or lose on resnet9's wide layers (64 -> 128 channels at 32x32 up to 512 -> 512 at 4x4),
 * where the GEMM is efficient and a block of images no longer fits in L2; the size of their
 * workspace separates the two groups (under 4 MiB for the first, about 14 MiB and more for the
 * second). With 16 lanes and 32 registers (avx512) they win on resnet9's wide layers too, but for
 * 512 -> 512 at 4x4 (a tie: its 16 pixels per image leave the weight gradient's tiles little
 * work per block), whose workspace (165 MiB, mostly the weight gradient's double sums) is the
 * largest. avx2w16 decides as avx512 (the same kernels, bitwise). With 4 lanes and no FMA
 * (generic) they lose to im2col + OpenBLAS's sgemm on every layer measured but the first layers
 * of lenet5 and cnn, where they beat the direct path (whose 8-float vectors the baseline ISA
 * splits in halves): generic takes them where the plan would take the direct path. */
static int lanes_auto(const dt_lanes_plan *q, int direct)
{
    if (q->lanes < 8)
        return direct;
    return q->total <=
           (q->lanes >= 16 ? (size_t)DT_CONV_LANES16_FLOATS : (size_t)DT_CONV_LANES_FLOATS);
}

static void plan_conv(conv_plan *g, const dt_conv_opts *o, int N, int C, int H, int W, int OC,
                      int KH, int KW, int stride, int pad)
{
    const dt_kern *kern = o && o->kern ? o->kern : dt_kern_get();
    const int path = o ? o->path : DT_CONV_AUTO;
    DT_ASSERT(path == DT_CONV_AUTO || path == DT_CONV_GEMM || path == DT_CONV_LANES);
    DT_ASSERT(kern->conv && kern->conv->help);
    g->lk = kern->conv;
    g->h = kern->conv->help;
    DT_ASSERT(N >= 1 && C >= 1 && H >= 1 && W >= 1 && OC >= 1 && KH >= 1 && KW >= 1);
    DT_ASSERT(stride >= 1 && pad >= 0);
    g->OH = dt_conv_out_size(H, KH, stride, pad);
    g->OW = dt_conv_out_size(W, KW, stride, pad);
    DT_ASSERT(g->OH >= 1 && g->OW >= 1);
    /* BLAS dimensions are int */
    DT_ASSERT((long)N * g->OH * g->OW <= INT32_MAX && (long)C * KH * KW <= INT32_MAX &&
              (long)OC * KH * KW <= INT32_MAX);
    g->K = C * KH * KW;
    g->OHW = (size_t)g->OH * g->OW;
    g->HW = (size_t)H * W;
    g->pointwise = KH == 1 && KW == 1 && stride == 1 && pad == 0;
    /* the transposed backward's GEMM has C rows: with few input channels (a first layer) it
     * degenerates to a matrix-vector product, slower than the col2im path */
    g->transposed = !g->pointwise && stride == 1 && KH == KW && 2 * pad == KH - 1 && C >= 8;

    /* rows of col a chunk needs: K for inp, OC*KH*KW for dout in the transposed backward */
    const size_t kcol = (size_t)(g->transposed && OC > C ? OC * KH * KW : g->K);
    /* columns per chunk: what fits DT_CONV_COL_FLOATS, but at least DT_CONV_MIN_COLS, so that
     * the GEMM's packing of the weights (OC*K floats per call) stays small next to its work */
    size_t cols = (size_t)DT_CONV_COL_FLOATS / kcol;
    cols = cols < DT_CONV_MIN_COLS ? DT_CONV_MIN_COLS : cols;
    if (cols >= g->OHW) {
        size_t nb = cols / g->OHW;
        g->nb = nb > (size_t)N ? N : (int)nb;
        g->rows = g->OH;
    } else {
        /* one image per chunk, in bands of equal height */
        size_t rows = cols / (size_t)g->OW;
        rows = rows < 1 ? 1 : rows;
        size_t bands = ((size_t)g->OH + rows - 1) / rows;
        g->nb = 1;
        g->rows = (int)(((size_t)g->OH + bands - 1) / bands);
    }
    const size_t P = (size_t)g->nb * g->rows * g->OW;
    const int ctmp = g->transposed && C > OC ? C : OC;
    g->col = 0;
    g->tmp = kcol * P;
    g->wt = g->tmp + (size_t)ctmp * P;
    g->total = g->wt + (g->transposed ? (size_t)OC * g->K : 0);

    /* direct path (see conv_direct_forward): workspace = doubles for the weight gradient, the
     * C zero-padded input planes of one image, one padded output/dout plane */
    g->direct = !g->pointwise && stride == 1 && g->K <= DT_CONV_DIRECT_TAPS;
    g->Wp = W + 2 * pad;
    g->L = ((size_t)g->OH * g->Wp + DIRECT_LANES - 1) / DIRECT_LANES * DIRECT_LANES;
    /* reads reach index L - 1 + (KH-1)*Wp + KW-1 of a plane of (H + 2 pad) rows of Wp */
    g->Sp = ((size_t)(H + 2 * pad) * g->Wp + KW + DIRECT_LANES + 7) / 8 * 8;
    if (g->direct) {
        g->dacc = 0;
        /* OC x (K rounded up to 3, + 1 for dbias) x 8 doubles, + 2 floats: room to align them */
        g->dpin = 16 * (size_t)OC * ((g->K + 2) / 3 * 3 + 1) + 2;
        g->dbuf = g->dpin + (size_t)C * g->Sp;
        const size_t need = g->dbuf + 2 * g->L; /* forward: two output planes */
        g->total = g->total > need ? g->total : need;
    }
    /* the backward writes wt before the direct weight gradient reuses the workspace: never both
     * (transposed needs C >= 8 and KH = KW >= 3, so C*KH*KW >= 72) */
    DT_ASSERT(!(g->direct && g->transposed));

    g->lanes = 0;
    if (path != DT_CONV_GEMM) {
        g->lk->plan(&g->lp, C, H, W, OC, KH, KW, stride, pad);
        g->lanes = path == DT_CONV_LANES || lanes_auto(&g->lp, g->direct);
        const size_t lws = dt_lanes_ws_floats(&g->lp, N, dt_tpool_threads());
        if (g->lanes && lws > g->total)
            g->total = lws;
    }
}

size_t dt_conv2d_ws_floats_with(const dt_conv_opts *o, int N, int C, int H, int W, int OC, int KH,
                                int KW, int stride, int pad)
{
    conv_plan g;
    plan_conv(&g, o, N, C, H, W, OC, KH, KW, stride, pad);
    return g.total;
}

size_t dt_conv2d_ws_floats(int N, int C, int H, int W, int OC, int KH, int KW, int stride, int pad)
{
    return dt_conv2d_ws_floats_with(NULL, N, C, H, W, OC, KH, KW, stride, pad);
}

/* The range [lo, hi) of output columns ow whose input column ow*stride - pad + kw is inside
 * [0, W) (the rest read padding); the same for rows. */
static void valid_range(int OW, int W, int kw, int stride, int pad, int *lo, int *hi)
{
    int l = 0, h = OW;
    if (kw < pad)
        l = (pad - kw + stride - 1) / stride;
    if (W - 1 + pad - kw < 0)
        h = 0;
    else if ((W - 1 + pad - kw) / stride + 1 < OW)
        h = (W - 1 + pad - kw) / stride + 1;
    l = l < OW ? l : OW;
    *lo = l;
    *hi = h > l ? h : l;
}

/* col (C*KH*KW, nb*R), R = (oh1 - oh0)*OW, for output rows [oh0, oh1) of images [0, nb):
 * col[(c*KH + kh)*KW + kw][n*R + (oh - oh0)*OW + ow] =
 *     inp[n][c][oh*stride - pad + kh][ow*stride - pad + kw], 0 in the padding. */
static void im2col(const struct dt_kconvh *h, float *restrict col, const float *restrict inp,
                   int nb, int C, int H, int W, int KH, int KW, int stride, int pad, int OW,
                   int oh0, int oh1)
{
    const size_t R = (size_t)(oh1 - oh0) * OW, P = (size_t)nb * R;
    const int OH = dt_conv_out_size(H, KH, stride, pad);
    /* stride 1 and OW == W ("same" width): the valid rows of a block are one contiguous shifted
     * copy of the input plane, but for the columns that wrap around, zeroed after */
    const int same_w = stride == 1 && OW == W;
    for (int n = 0; n < nb; n++)
        for (int c = 0; c < C; c++) {
            const float *restrict src = inp + ((size_t)n * C + c) * H * W;
            for (int kh = 0; kh < KH; kh++) {
                int lo_h, hi_h;
                valid_range(OH, H, kh, stride, pad, &lo_h, &hi_h);
                /* clamp both to [oh0, oh1] with lo_h <= hi_h */
                lo_h = lo_h < oh0 ? oh0 : lo_h > oh1 ? oh1 : lo_h;
                hi_h = hi_h > oh1 ? oh1 : hi_h < lo_h ? lo_h : hi_h;
                for (int kw = 0; kw < KW; kw++) {
                    int lo, hi;
                    valid_range(OW, W, kw, stride, pad, &lo, &hi);
                    float *restrict dst = col + ((size_t)(c * KH + kh) * KW + kw) * P + n * R;
                    /* dst[(oh - oh0)*OW + ow] is output pixel (oh, ow) */
                    for (size_t j = 0; j < (size_t)(lo_h - oh0) * OW; j++)
                        dst[j] = 0.0f;
                    if (same_w && lo_h < hi_h && lo < hi) {
                        /* OW == W: input index = output index + shift */
                        const long shift = (long)(oh0 + kh - pad) * W + (kw - pad);
                        const size_t j0 = (size_t)(lo_h - oh0) * OW + lo;
                        const size_t j1 = (size_t)(hi_h - 1 - oh0) * OW + hi;
                        h->copy_floats(dst + j0, src + (long)j0 + shift, j1 - j0);
                    } else {
                        for (int oh = lo_h; oh < hi_h; oh++) {
                            float *restrict d = dst + (size_t)(oh - oh0) * OW;
                            const float *restrict s =
                                src + (long)(oh * stride - pad + kh) * W - pad + kw;
                            if (stride == 1)
                                h->copy_floats(d + lo, s + lo, (size_t)(hi - lo));
                            else
                                for (int ow = lo; ow < hi; ow++)
                                    d[ow] = s[ow * stride];
                        }
                    }
                    /* the padding columns, column by column (a row-wise loop of one or two
                     * stores would become a memset call per row) */
                    for (int ow = 0; ow < lo; ow++)
                        for (int oh = lo_h; oh < hi_h; oh++)
                            dst[(size_t)(oh - oh0) * OW + ow] = 0.0f;
                    for (int ow = hi; ow < OW; ow++)
                        for (int oh = lo_h; oh < hi_h; oh++)
                            dst[(size_t)(oh - oh0) * OW + ow] = 0.0f;
                    for (size_t j = (size_t)(hi_h - oh0) * OW; j < R; j++)
                        dst[j] = 0.0f;
                }
            }
        }
}

/* dinp (+)= col2im(col), the adjoint of im2col (same arguments): every col entry is added to
 * the input value it was copied from. zero_first zeroes each plane first (in cache). */
static void col2im(float *restrict dinp, const float *restrict col, int nb, int C, int H, int W,
                   int KH, int KW, int stride, int pad, int OW, int oh0, int oh1, int zero_first)
{
    const size_t R = (size_t)(oh1 - oh0) * OW, P = (size_t)nb * R;
    const int OH = dt_conv_out_size(H, KH, stride, pad);
    for (int n = 0; n < nb; n++)
        for (int c = 0; c < C; c++) {
            float *restrict dst = dinp + ((size_t)n * C + c) * H * W;
            if (zero_first)
                memset(dst, 0, (size_t)H * W * sizeof *dst);
            for (int kh = 0; kh < KH; kh++) {
                int lo_h, hi_h;
                valid_range(OH, H, kh, stride, pad, &lo_h, &hi_h);
                lo_h = lo_h > oh0 ? lo_h : oh0;
                hi_h = hi_h < oh1 ? hi_h : oh1;
                for (int kw = 0; kw < KW; kw++) {
                    int lo, hi;
                    valid_range(OW, W, kw, stride, pad, &lo, &hi);
                    const float *src = col + ((size_t)(c * KH + kh) * KW + kw) * P + n * R;
                    for (int oh = lo_h; oh < hi_h; oh++) {
                        const float *restrict s = src + (size_t)(oh - oh0) * OW;
                        float *restrict d = dst + (long)(oh * stride - pad + kh) * W - pad + kw;
                        if (stride == 1)
                            for (int ow = lo; ow < hi; ow++)
                                d[ow] += s[ow];
                        else
                            for (int ow = lo; ow < hi; ow++)
                                d[ow * stride] += s[ow];
                    }
                }
            }
        }
}

/* dst (C, nb*len) = the spans [off, off + len) of the nb*C planes (S floats each) of src:
 * dst[c][n*len + j] = src[n][c][off + j]. The pointwise im2col, and dout's layout change. */
static void gather_planes(const struct dt_kconvh *h, float *restrict dst, const float *restrict src,
                          int nb, int C, size_t S, size_t off, size_t len)
{
    const size_t P = (size_t)nb * len;
    for (int n = 0; n < nb; n++)
        for (int c = 0; c < C; c++)
            h->copy_floats(dst + c * P + n * len, src + ((size_t)n * C + c) * S + off, len);
}

/* col for a chunk of inp (nb images from the chunk's first, output rows [oh0, oh1)) */
static void make_col(float *col, const float *inp, const conv_plan *g, int nb, int C, int H, int W,
                     int KH, int KW, int stride, int pad, int oh0, int oh1)
{
    if (g->pointwise)
        gather_planes(g->h, col, inp, nb, C, g->HW, (size_t)oh0 * g->OW,
                      (size_t)(oh1 - oh0) * g->OW);
    else
        im2col(g->h, col, inp, nb, C, H, W, KH, KW, stride, pad, g->OW, oh0, oh1);
}

/* ---- direct path: stride 1, few taps (C*KH*KW <= DT_CONV_DIRECT_TAPS), not pointwise ----
 * Each image's C input planes are copied into zero-padded planes of rows of Wp = W + 2 pad
 * (the border zeroed once per call). On these, output pixel (oh, ow) of tap (c, kh, kw) reads
 * padded index j + kh*Wp + kw with j = oh*Wp + ow: every tap is one flat, shifted loop over
 * j in [0, L), L = OH*Wp rounded up to DIRECT_LANES. Columns ow >= OW of the flat output are
 * junk (they read the next row's padding) and are dropped; the weight gradient zeroes them in
 * dout's padded copy, so they add nothing.
 *   forward:  per (image, oc): acc[j] = bias + sum over taps of w * pin[c][j + kh*Wp + kw] in an
 *             L1-resident plane, then its OH rows of OW are copied to out;
 *   dweight:  per (image, oc, tap): a DIRECT_LANES-lane float dot product of dout's padded plane
 *             with the shifted input plane, summed over the batch in double. */

/* pin (C planes of Sp floats): the padded copies of the C planes of one image (interior only;
 * the border and tail stay as zeroed) */
static void direct_pad_input(const struct dt_kconvh *h, float *restrict pin,
                             const float *restrict inp, int C, int H, int W, int pad, int Wp,
                             size_t Sp)
{
    for (int c = 0; c < C; c++)
        h->copy_rows(pin + c * Sp + (size_t)pad * Wp + pad, (size_t)Wp, inp + (size_t)c * H * W,
                     (size_t)W, H, W);
}

static void conv_direct_forward(float *out, const float *inp, const float *weight,
                                const float *bias, int N, int C, int H, int W, int OC, int KH,
                                int KW, int pad, const conv_plan *g, float *ws)
{
    float *pin = ws + g->dpin, *acc = ws + g->dbuf;
    const int Wp = g->Wp, OW = g->OW, OH = g->OH;
    const size_t L = g->L, Sp = g->Sp;
    size_t off[DT_CONV_DIRECT_TAPS]; /* tap (c, kh, kw) reads pin + off[tap] */
    for (int c = 0; c < C; c++)
        for (int kh = 0; kh < KH; kh++)
            for (int kw = 0; kw < KW; kw++)
                off[(c * KH + kh) * KW + kw] = c * Sp + (size_t)kh * Wp + kw;
    memset(pin, 0, (size_t)C * Sp * sizeof *pin);
    for (int n = 0; n < N; n++) {
        direct_pad_input(g->h, pin, inp + (size_t)n * C * g->HW, C, H, W, pad, Wp, Sp);
        int oc = 0;
        for (; oc + 2 <= OC; oc += 2) {
            g->h->direct_taps2(acc, acc + L, pin, off, weight + (size_t)oc * g->K,
                               weight + (size_t)(oc + 1) * g->K, g->K, bias ? bias[oc] : 0.0f,
                               bias ? bias[oc + 1] : 0.0f, L);
            float *o = out + ((size_t)n * OC + oc) * g->OHW;
            g->h->copy_rows(o, (size_t)OW, acc, (size_t)Wp, OH, OW);
            g->h->copy_rows(o + g->OHW, (size_t)OW, acc + L, (size_t)Wp, OH, OW);
        }
        if (oc < OC) {
            g->h->direct_taps(acc, pin, off, weight + (size_t)oc * g->K, g->K,
                              bias ? bias[oc] : 0.0f, L);
            g->h->copy_rows(out + ((size_t)n * OC + oc) * g->OHW, (size_t)OW, acc, (size_t)Wp, OH,
                            OW);
        }
    }
}

static double sum8(const double *d)
{
    return ((d[0] + d[1]) + (d[2] + d[3])) + ((d[4] + d[5]) + (d[6] + d[7]));
}

static void conv_direct_dweight(float *dweight, float *dbias, const float *dout, const float *inp,
                                int N, int C, int H, int W, int OC, int KH, int KW, int pad,
                                const conv_plan *g, float *ws)
{
    /* dw[oc][tap][8]: double lanes; taps padded to a multiple of 3 (the extra ones repeat the
     * last tap and are dropped), then dbias's lanes db[oc][8]: dout is read once for both */
    double *dw = (double *)(((uintptr_t)(ws + g->dacc) + 7) & ~(uintptr_t)7);
    float *pin = ws + g->dpin, *dpad = ws + g->dbuf;
    const int Wp = g->Wp, OW = g->OW, OH = g->OH, K = g->K, KT = (K + 2) / 3 * 3;
    const size_t L = g->L, Sp = g->Sp;
    size_t off[DT_CONV_DIRECT_TAPS + 2];
    for (int c = 0; c < C; c++)
        for (int kh = 0; kh < KH; kh++)
            for (int kw = 0; kw < KW; kw++)
                off[(c * KH + kh) * KW + kw] = c * Sp + (size_t)kh * Wp + kw;
    for (int t = K; t < KT; t++)
        off[t] = off[K - 1];
    memset(pin, 0, (size_t)C * Sp * sizeof *pin);
    memset(dpad, 0, L * sizeof *dpad); /* the junk columns and the tail stay 0 */
    double *db = dw + (size_t)OC * KT * 8;
    for (size_t i = 0; i < (size_t)OC * (KT + 1) * 8; i++)
        dw[i] = 0.0;
    for (int n = 0; n < N; n++) {
        direct_pad_input(g->h, pin, inp + (size_t)n * C * g->HW, C, H, W, pad, Wp, Sp);
        for (int oc = 0; oc < OC; oc++) {
            const float *dy = dout + ((size_t)n * OC + oc) * g->OHW;
            g->h->copy_rows(dpad, (size_t)Wp, dy, (size_t)OW, OH, OW);
            for (int t = 0; t < KT; t += 3)
                g->h->direct_dot3(dpad, pin, off + t, L, dw + ((size_t)oc * KT + t) * 8);
            if (dbias)
                g->h->direct_sum(dpad, L, db + (size_t)oc * 8);
        }
    }
    if (dbias)
        for (int oc = 0; oc < OC; oc++)
            dbias[oc] = (float)sum8(db + (size_t)oc * 8);
    for (int oc = 0; oc < OC; oc++)
        for (int t = 0; t < K; t++) {
            dweight[(size_t)oc * K + t] = (float)sum8(dw + ((size_t)oc * KT + t) * 8);
        }
}

void dt_conv2d_forward_with(const dt_conv_opts *o, float *out, const float *inp,
                            const float *weight, const float *bias, int N, int C, int H, int W,
                            int OC, int KH, int KW, int stride, int pad, float *ws)
{
    conv_plan g;
    plan_conv(&g, o, N, C, H, W, OC, KH, KW, stride, pad);
    if (g.lanes) {
        g.lk->forward(&g.lp, out, NULL, inp, weight, bias, N, ws);
        return;
    }
    if (g.direct) {
        conv_direct_forward(out, inp, weight, bias, N, C, H, W, OC, KH, KW, pad, &g, ws);
        return;
    }
    float *col = ws + g.col, *tmp = ws + g.tmp;
    for (int n0 = 0; n0 < N; n0 += g.nb)
        for (int oh0 = 0; oh0 < g.OH; oh0 += g.rows) {
            const int b = N - n0 < g.nb ? N - n0 : g.nb;
            const int oh1 = g.OH - oh0 < g.rows ? g.OH : oh0 + g.rows;
            const size_t len = (size_t)(oh1 - oh0) * g.OW, P = (size_t)b * len;
            make_col(col, inp + (size_t)n0 * C * g.HW, &g, b, C, H, W, KH, KW, stride, pad, oh0,
                     oh1);
            /* tmp (OC, P) = weight (OC, K) @ col (K, P) */
            dt_gemm(0, 0, OC, (int)P, g.K, weight, g.K, col, (int)P, NULL, 0, tmp, (int)P);
            g.h->scatter_planes(out + (size_t)n0 * OC * g.OHW, tmp, b, OC, g.OHW,
                                (size_t)oh0 * g.OW, len, bias, 0);
        }
}

void dt_conv2d_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                       int C, int H, int W, int OC, int KH, int KW, int stride, int pad, float *ws)
{
    dt_conv2d_forward_with(NULL, out, inp, weight, bias, N, C, H, W, OC, KH, KW, stride, pad, ws);
}

void dt_conv2d_backward_with(const dt_conv_opts *o, float *dinp, float *dweight, float *dbias,
                             const float *dout, const float *inp, const float *weight, int N, int C,
                             int H, int W, int OC, int KH, int KW, int stride, int pad, int accum,
                             float *ws)
{
    conv_plan g;
    plan_conv(&g, o, N, C, H, W, OC, KH, KW, stride, pad);
    if (g.lanes) {
        g.lk->backward(&g.lp, dinp, dweight, dbias, dout, NULL, inp, weight, N, accum, ws);
        return;
    }
    float *col = ws + g.col, *dmat = ws + g.tmp, *wt = ws + g.wt;
    const int KT = OC * KH * KW; /* inner dimension of the transposed path */

    if (dinp && g.transposed)
        /* wt[c][oc][kh][kw] = weight[oc][c][KH-1-kh][KW-1-kw]: with stride 1 and pad' =
         * KH-1-pad = pad, dinp[ih] = sum dout[ih - pad + kh'] wt[kh'] is a forward conv */
        for (int c = 0; c < C; c++)
            for (int oc = 0; oc < OC; oc++)
                for (int kh = 0; kh < KH; kh++)
                    for (int kw = 0; kw < KW; kw++)
                        wt[(((size_t)c * OC + oc) * KH + kh) * KW + kw] =
                            weight[(((size_t)oc * C + c) * KH + KH - 1 - kh) * KW + KW - 1 - kw];
    /* dbias: sums over whole planes of dout, in double (the direct path sums them itself) */
    if (dbias && !g.direct)
        for (int oc = 0; oc < OC; oc++) {
            double acc = 0.0;
            for (int n = 0; n < N; n++)
                acc += g.h->row_sum(dout + ((size_t)n * OC + oc) * g.OHW, g.OHW);
            dbias[oc] = (float)acc;
        }
    if (g.direct) {
        conv_direct_dweight(dweight, dbias, dout, inp, N, C, H, W, OC, KH, KW, pad, &g, ws);
        if (!dinp)
            return;
    }

    for (int n0 = 0; n0 < N; n0 += g.nb)
        for (int oh0 = 0; oh0 < g.OH; oh0 += g.rows) {
            const int b = N - n0 < g.nb ? N - n0 : g.nb;
            const int oh1 = g.OH - oh0 < g.rows ? g.OH : oh0 + g.rows;
            const size_t len = (size_t)(oh1 - oh0) * g.OW, P = (size_t)b * len;
            const float *x = inp + (size_t)n0 * C * g.HW, *dy = dout + (size_t)n0 * OC * g.OHW;
            float *dx = dinp ? dinp + (size_t)n0 * C * g.HW : NULL;

            /* dmat (OC, P) = the chunk of dout */
            gather_planes(g.h, dmat, dy, b, OC, g.OHW, (size_t)oh0 * g.OW, len);

            /* dweight (OC, K) (+)= dmat (OC, P) @ col^T (P, K) (done above on the direct path) */
            if (!g.direct) {
                make_col(col, x, &g, b, C, H, W, KH, KW, stride, pad, oh0, oh1);
                dt_gemm(0, 1, OC, g.K, (int)P, dmat, (int)P, col, (int)P, NULL,
                        !(n0 == 0 && oh0 == 0), dweight, g.K);
            }
            if (!dx)
                continue;

            if (g.pointwise) {
                /* col (C, P) = weight^T (C, OC) @ dmat (OC, P) */
                dt_gemm(1, 0, C, (int)P, OC, weight, C, dmat, (int)P, NULL, 0, col, (int)P);
                g.h->scatter_planes(dx, col, b, C, g.HW, (size_t)oh0 * g.OW, len, NULL, accum);
            } else if (g.transposed) {
                /* tmp (C, P) = wt (C, OC*KH*KW) @ im2col(dout) (OC*KH*KW, P); OH = H, OW = W */
                im2col(g.h, col, dy, b, OC, g.OH, g.OW, KH, KW, 1, pad, g.OW, oh0, oh1);
                dt_gemm(0, 0, C, (int)P, KT, wt, KT, col, (int)P, NULL, 0, dmat, (int)P);
                g.h->scatter_planes(dx, dmat, b, C, g.HW, (size_t)oh0 * g.OW, len, NULL, accum);
            } else {
                /* col (K, P) = weight^T (K, OC) @ dmat (OC, P), scattered back onto dinp */
                dt_gemm(1, 0, g.K, (int)P, OC, weight, g.K, dmat, (int)P, NULL, 0, col, (int)P);
                col2im(dx, col, b, C, H, W, KH, KW, stride, pad, g.OW, oh0, oh1,
                       !accum && oh0 == 0);
            }
        }
}

void dt_conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int N, int C, int H, int W, int OC,
                        int KH, int KW, int stride, int pad, int accum, float *ws)
{
    dt_conv2d_backward_with(NULL, dinp, dweight, dbias, dout, inp, weight, N, C, H, W, OC, KH, KW,
                            stride, pad, accum, ws);
}

/* ---- conv -> ReLU -> MaxPool2d(2, 2), fused (batch-lane kernels only) ---- */

int dt_conv2d_relu_pool2_ok_with(const dt_conv_opts *o, int N, int C, int H, int W, int OC, int KH,
                                 int KW, int stride, int pad)
{
    conv_plan g;
    plan_conv(&g, o, N, C, H, W, OC, KH, KW, stride, pad);
    return g.lanes && g.OH >= 2 && g.OW >= 2;
}

int dt_conv2d_relu_pool2_ok(int N, int C, int H, int W, int OC, int KH, int KW, int stride, int pad)
{
    return dt_conv2d_relu_pool2_ok_with(NULL, N, C, H, W, OC, KH, KW, stride, pad);
}

/* the lanes layout of every ISA: blocks of at most 16 images */
size_t dt_conv2d_relu_pool2_code_size(int N, int OC, int OH, int OW)
{
    return (size_t)(N + 15) / 16 * 16 * OC * (size_t)(OH / 2) * (size_t)(OW / 2);
}

void dt_conv2d_relu_pool2_forward_with(const dt_conv_opts *o, float *pout, int32_t *code,
                                       const float *inp, const float *weight, const float *bias,
                                       int N, int C, int H, int W, int OC, int KH, int KW,
                                       int stride, int pad, int round_to, float *ws)
{
    conv_plan g;
    plan_conv(&g, o, N, C, H, W, OC, KH, KW, stride, pad);
    DT_ASSERT(g.lanes && g.OH >= 2 && g.OW >= 2 && code);
    g.lp.round_to = round_to;
    g.lk->forward(&g.lp, pout, code, inp, weight, bias, N, ws);
}

void dt_conv2d_relu_pool2_forward(float *pout, int32_t *code, const float *inp, const float *weight,
                                  const float *bias, int N, int C, int H, int W, int OC, int KH,
                                  int KW, int stride, int pad, int round_to, float *ws)
{
    dt_conv2d_relu_pool2_forward_with(NULL, pout, code, inp, weight, bias, N, C, H, W, OC, KH, KW,
                                      stride, pad, round_to, ws);
}

void dt_conv2d_relu_pool2_backward_with(const dt_conv_opts *o, float *dinp, float *dweight,
                                        float *dbias, const float *dpout, const int32_t *code,
                                        const float *inp, const float *weight, int N, int C, int H,
                                        int W, int OC, int KH, int KW, int stride, int pad,
                                        int accum, float *ws)
{
    conv_plan g;
    plan_conv(&g, o, N, C, H, W, OC, KH, KW, stride, pad);
    DT_ASSERT(g.lanes && g.OH >= 2 && g.OW >= 2 && code);
    g.lk->backward(&g.lp, dinp, dweight, dbias, dpout, code, inp, weight, N, accum, ws);
}

void dt_conv2d_relu_pool2_backward(float *dinp, float *dweight, float *dbias, const float *dpout,
                                   const int32_t *code, const float *inp, const float *weight,
                                   int N, int C, int H, int W, int OC, int KH, int KW, int stride,
                                   int pad, int accum, float *ws)
{
    dt_conv2d_relu_pool2_backward_with(NULL, dinp, dweight, dbias, dpout, code, inp, weight, N, C,
                                       H, W, OC, KH, KW, stride, pad, accum, ws);
}

/* ---- references: direct loops, double accumulation ---- */

void dt_conv2d_forward_ref(float *out, const float *inp, const float *weight, const float *bias,
                           int N, int C, int H, int W, int OC, int KH, int KW, int stride, int pad)
{
    DT_ASSERT(N >= 1 && C >= 1 && OC >= 1);
    const int OH = dt_conv_out_size(H, KH, stride, pad), OW = dt_conv_out_size(W, KW, stride, pad);
    DT_ASSERT(OH >= 1 && OW >= 1);
    for (int n = 0; n < N; n++)
        for (int oc = 0; oc < OC; oc++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    double acc = bias ? bias[oc] : 0.0;
                    for (int c = 0; c < C; c++)
                        for (int kh = 0; kh < KH; kh++) {
                            int ih = oh * stride - pad + kh;
                            if (ih < 0 || ih >= H)
                                continue;
                            for (int kw = 0; kw < KW; kw++) {
                                int iw = ow * stride - pad + kw;
                                if (iw < 0 || iw >= W)
                                    continue;
                                acc += (double)inp[(((size_t)n * C + c) * H + ih) * W + iw] *
                                       weight[(((size_t)oc * C + c) * KH + kh) * KW + kw];
                            }
                        }
                    out[(((size_t)n * OC + oc) * OH + oh) * OW + ow] = (float)acc;
                }
}

void dt_conv2d_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, int N, int C, int H, int W,
                            int OC, int KH, int KW, int stride, int pad, int accum)
{
    DT_ASSERT(N >= 1 && C >= 1 && OC >= 1);
    const int OH = dt_conv_out_size(H, KH, stride, pad), OW = dt_conv_out_size(W, KW, stride, pad);
    DT_ASSERT(OH >= 1 && OW >= 1);
#define DOUT(n, oc, oh, ow) dout[(((size_t)(n)*OC + (oc)) * OH + (oh)) * OW + (ow)]
    for (int oc = 0; oc < OC; oc++) {
        for (int c = 0; c < C; c++)
            for (int kh = 0; kh < KH; kh++)
                for (int kw = 0; kw < KW; kw++) {
                    double acc = 0.0;
                    for (int n = 0; n < N; n++)
                        for (int oh = 0; oh < OH; oh++) {
                            int ih = oh * stride - pad + kh;
                            if (ih < 0 || ih >= H)
                                continue;
                            for (int ow = 0; ow < OW; ow++) {
                                int iw = ow * stride - pad + kw;
                                if (iw < 0 || iw >= W)
                                    continue;
                                acc += (double)DOUT(n, oc, oh, ow) *
                                       inp[(((size_t)n * C + c) * H + ih) * W + iw];
                            }
                        }
                    dweight[(((size_t)oc * C + c) * KH + kh) * KW + kw] = (float)acc;
                }
        if (dbias) {
            double acc = 0.0;
            for (int n = 0; n < N; n++)
                for (int oh = 0; oh < OH; oh++)
                    for (int ow = 0; ow < OW; ow++)
                        acc += DOUT(n, oc, oh, ow);
            dbias[oc] = (float)acc;
        }
    }
    if (!dinp)
        return;
    /* gather form: input (ih, iw) receives dout (oh, ow) when ih = oh*stride - pad + kh */
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int ih = 0; ih < H; ih++)
                for (int iw = 0; iw < W; iw++) {
                    float *d = &dinp[(((size_t)n * C + c) * H + ih) * W + iw];
                    double acc = accum ? *d : 0.0;
                    for (int oc = 0; oc < OC; oc++)
                        for (int kh = 0; kh < KH; kh++) {
                            int th = ih + pad - kh;
                            if (th < 0 || th % stride || th / stride >= OH)
                                continue;
                            for (int kw = 0; kw < KW; kw++) {
                                int tw = iw + pad - kw;
                                if (tw < 0 || tw % stride || tw / stride >= OW)
                                    continue;
                                acc += (double)DOUT(n, oc, th / stride, tw / stride) *
                                       weight[(((size_t)oc * C + c) * KH + kh) * KW + kw];
                            }
                        }
                    *d = (float)acc;
                }
#undef DOUT
}
