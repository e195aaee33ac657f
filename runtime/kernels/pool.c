/*
 * pool.c - pooling kernels over each (n, c) plane of NCHW tensors, see layer_kernels.h:
 * max pooling (torch.nn.MaxPool2d, with argmax indices for the backward), average pooling
 * (torch.nn.AvgPool2d, count_include_pad=True) and global average pooling
 * (torch.nn.AdaptiveAvgPool2d(1)). Floor mode: OH = floor((H + 2 pad - K) / stride) + 1.
 *
 * The fast kernels clip each window to the input once (padding contributes nothing: -inf for max,
 * 0 for the sum) and special-case the common 2x2 stride-2 unpadded window; the _ref kernels test
 * every window position against the bounds.
 * Semantics follow ATen's CPU kernels (aten/src/ATen/native/cpu/MaxPoolKernel.cpp,
 * AvgPoolKernel.cpp): the max takes the first maximum in row-major window order, a NaN wins;
 * the average divides the float window sum by K*K. Global average pooling's loops are the `elem`
 * family's (kernels/elem.h), chosen per instruction set.
 */
#include <math.h>
#include <string.h>

#include "common.h"
#include "kernels/elem.h"
#include "kernels/isa.h"
#include "kernels/tpool.h"
#include "layer_kernels.h"

/* checks shared by max and avg pooling; returns OH, OW */
static void pool_shape(int N, int C, int H, int W, int K, int stride, int pad, int *OH, int *OW)
{
    DT_ASSERT(N >= 1 && C >= 1 && H >= 1 && W >= 1 && K >= 1 && stride >= 1);
    /* torch: "pad should be at most half of effective kernel size" */
    DT_ASSERT(pad >= 0 && pad <= K / 2);
    *OH = dt_conv_out_size(H, K, stride, pad);
    *OW = dt_conv_out_size(W, K, stride, pad);
    DT_ASSERT(*OH >= 1 && *OW >= 1);
    DT_ASSERT((long)H * W <= INT32_MAX);
}

/* the window of output position o, [o * stride - pad, o * stride - pad + K), clipped to the input
 * [0, size) */
static inline void pool_window(int o, int K, int stride, int pad, int size, int *lo, int *hi)
{
    const int a = o * stride - pad, b = a + K;
    *lo = a < 0 ? 0 : a;
    *hi = b > size ? size : b;
}

/* ---- max pooling ---- */

static void maxpool_forward(float *out, int32_t *argmax, const float *inp, int N, int C, int H,
                            int W, int K, int stride, int pad)
{
    int OH, OW;
    pool_shape(N, C, H, W, K, stride, pad, &OH, &OW);
    const size_t planes = (size_t)N * C, HW = (size_t)H * W, OHW = (size_t)OH * OW;
    if (K == 2 && stride == 2 && pad == 0) {
        for (size_t p = 0; p < planes; p++) {
            const float *x = inp + p * HW;
            float *y = out + p * OHW;
            int32_t *a = argmax + p * OHW;
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    int i = 2 * oh * W + 2 * ow, idx[4] = {i, i + 1, i + W, i + W + 1};
                    float m = x[i];
                    int best = i;
                    for (int t = 1; t < 4; t++) {
                        float v = x[idx[t]];
                        if (v > m || isnan(v)) {
                            m = v;
                            best = idx[t];
                        }
                    }
                    y[oh * OW + ow] = m;
                    a[oh * OW + ow] = best;
                }
        }
        return;
    }
    for (size_t p = 0; p < planes; p++) {
        const float *x = inp + p * HW;
        float *y = out + p * OHW;
        int32_t *a = argmax + p * OHW;
        for (int oh = 0; oh < OH; oh++) {
            int h0, h1;
            pool_window(oh, K, stride, pad, H, &h0, &h1);
            for (int ow = 0; ow < OW; ow++) {
                int w0, w1;
                pool_window(ow, K, stride, pad, W, &w0, &w1);
                float m = -INFINITY;
                int best = h0 * W + w0;
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) {
                        float v = x[ih * W + iw];
                        if (v > m || isnan(v)) {
                            m = v;
                            best = ih * W + iw;
                        }
                    }
                y[oh * OW + ow] = m;
                a[oh * OW + ow] = best;
            }
        }
    }
}

void dt_maxpool_forward_ref(float *out, int32_t *argmax, const float *inp, int N, int C, int H,
                            int W, int K, int stride, int pad)
{
    int OH, OW;
    pool_shape(N, C, H, W, K, stride, pad, &OH, &OW);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    const float *x = inp + ((size_t)n * C + c) * H * W;
                    float m = -INFINITY;
                    int best = -1;
                    for (int kh = 0; kh < K; kh++)
                        for (int kw = 0; kw < K; kw++) {
                            int ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W)
                                continue;
                            float v = x[ih * W + iw];
                            if (best < 0 || v > m || isnan(v)) {
                                m = v;
                                best = ih * W + iw;
                            }
                        }
                    size_t o = (((size_t)n * C + c) * OH + oh) * OW + ow;
                    out[o] = m;
                    argmax[o] = best;
                }
}

static void maxpool_backward(float *dinp, const float *dout, const int32_t *argmax, int N, int C,
                             int H, int W, int OH, int OW, int accum)
{
    DT_ASSERT(N >= 1 && C >= 1 && H >= 1 && W >= 1 && OH >= 1 && OW >= 1);
    const size_t planes = (size_t)N * C, HW = (size_t)H * W, OHW = (size_t)OH * OW;
    if (!accum)
        memset(dinp, 0, planes * HW * sizeof *dinp);
    for (size_t p = 0; p < planes; p++) {
        float *dx = dinp + p * HW;
        const float *dy = dout + p * OHW;
        const int32_t *a = argmax + p * OHW;
        for (size_t o = 0; o < OHW; o++)
            dx[a[o]] += dy[o];
    }
}

/* The planes (n, c) are split over the thread pool (kernels/tpool.h): each plane is pooled
 * alone, so the split changes no bits. A part is a run of whole planes, passed to the serial
 * kernels as a batch of that many one-channel images. */
#define GRAIN 16384 /* values of input per part, at least */

typedef struct {
    float *out;
    int32_t *argmax;
    const float *inp;
    int H, W, K, stride, pad, OH, OW, accum, kind;
    int lanes, C; /* global pooling in the lane layout: blocks of `lanes` images of C channels */
} planes_job;

static void planes_part(void *arg, long p0, long p1)
{
    const planes_job *j = arg;
    const size_t HW = (size_t)j->H * j->W, OHW = (size_t)j->OH * j->OW;
    const int n = (int)(p1 - p0);
    switch (j->kind) {
    case 0:
        maxpool_forward(j->out + p0 * OHW, j->argmax + p0 * OHW, j->inp + p0 * HW, n, 1, j->H, j->W,
                        j->K, j->stride, j->pad);
        break;
    case 1:
        maxpool_backward(j->out + p0 * HW, j->inp + p0 * OHW, j->argmax + p0 * OHW, n, 1, j->H,
                         j->W, j->OH, j->OW, j->accum);
        break;
    case 2: dt_kern_get()->elem->gap_forward(j->out + p0, j->inp + p0 * HW, (size_t)n, j->H); break;
    case 3:
        dt_kern_get()->elem->gap_backward(j->out + p0 * HW, j->inp + p0, (size_t)n, j->H, j->accum);
        break;
    default: /* the lane layout: blocks p0 <= b < p1 as (C, HW, lanes) (layer_kernels.h) */
        for (long b = p0; b < p1; b++) {
            const long blk = (long)j->lanes * j->C * (long)HW, rows = (long)j->lanes * j->C;
            if (j->kind == 4)
                dt_kern_get()->elem->gap_forward_l(j->out + b * rows, j->inp + b * blk, j->C, j->H);
            else
                dt_kern_get()->elem->gap_backward_l(j->out + b * blk, j->inp + b * rows, j->C, j->H,
                                                    j->accum);
        }
        break;
    }
}

static void planes_run(const planes_job *j, long planes)
{
    const long per = (long)j->H * j->W;
    dt_tpool_for(planes, GRAIN / per + 1, 1, planes_part, (void *)j);
}

void dt_maxpool_forward(float *out, int32_t *argmax, const float *inp, int N, int C, int H, int W,
                        int K, int stride, int pad)
{
    int OH, OW;
    pool_shape(N, C, H, W, K, stride, pad, &OH, &OW);
    planes_job j = {.out = out,
                    .argmax = argmax,
                    .inp = inp,
                    .H = H,
                    .W = W,
                    .K = K,
                    .stride = stride,
                    .pad = pad,
                    .OH = OH,
                    .OW = OW,
                    .kind = 0};
    planes_run(&j, (long)N * C);
}

void dt_maxpool_backward(float *dinp, const float *dout, const int32_t *argmax, int N, int C, int H,
                         int W, int OH, int OW, int accum)
{
    DT_ASSERT(N >= 1 && C >= 1 && H >= 1 && W >= 1 && OH >= 1 && OW >= 1);
    planes_job j = {.out = dinp,
                    .argmax = (int32_t *)argmax,
                    .inp = dout,
                    .H = H,
                    .W = W,
                    .OH = OH,
                    .OW = OW,
                    .accum = accum,
                    .kind = 1};
    planes_run(&j, (long)N * C);
}

/* ---- average pooling ---- */

void dt_avgpool_forward(float *out, const float *inp, int N, int C, int H, int W, int K, int stride,
                        int pad)
{
    int OH, OW;
    pool_shape(N, C, H, W, K, stride, pad, &OH, &OW);
    const size_t planes = (size_t)N * C, HW = (size_t)H * W, OHW = (size_t)OH * OW;
    const float div = (float)(K * K);
    if (K == 2 && stride == 2 && pad == 0) {
        for (size_t p = 0; p < planes; p++) {
            const float *x = inp + p * HW;
            float *y = out + p * OHW;
            for (int oh = 0; oh < OH; oh++) {
                const float *r0 = x + (size_t)2 * oh * W, *r1 = r0 + W;
                for (int ow = 0; ow < OW; ow++)
                    y[oh * OW + ow] =
                        (r0[2 * ow] + r0[2 * ow + 1] + r1[2 * ow] + r1[2 * ow + 1]) / div;
            }
        }
        return;
    }
    for (size_t p = 0; p < planes; p++) {
        const float *x = inp + p * HW;
        float *y = out + p * OHW;
        for (int oh = 0; oh < OH; oh++) {
            int h0, h1;
            pool_window(oh, K, stride, pad, H, &h0, &h1);
            for (int ow = 0; ow < OW; ow++) {
                int w0, w1;
                pool_window(ow, K, stride, pad, W, &w0, &w1);
                float s = 0.0f;
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++)
                        s += x[ih * W + iw];
                y[oh * OW + ow] = s / div;
            }
        }
    }
}

void dt_avgpool_forward_ref(float *out, const float *inp, int N, int C, int H, int W, int K,
                            int stride, int pad)
{
    int OH, OW;
    pool_shape(N, C, H, W, K, stride, pad, &OH, &OW);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    const float *x = inp + ((size_t)n * C + c) * H * W;
                    double s = 0.0;
                    for (int kh = 0; kh < K; kh++)
                        for (int kw = 0; kw < K; kw++) {
                            int ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
                            if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                                s += x[ih * W + iw];
                        }
                    out[(((size_t)n * C + c) * OH + oh) * OW + ow] = (float)(s / (K * K));
                }
}

void dt_avgpool_backward(float *dinp, const float *dout, int N, int C, int H, int W, int K,
                         int stride, int pad, int accum)
{
    int OH, OW;
    pool_shape(N, C, H, W, K, stride, pad, &OH, &OW);
    const size_t planes = (size_t)N * C, HW = (size_t)H * W, OHW = (size_t)OH * OW;
    const float div = (float)(K * K);
    if (!accum)
        memset(dinp, 0, planes * HW * sizeof *dinp);
    for (size_t p = 0; p < planes; p++) {
        float *dx = dinp + p * HW;
        const float *dy = dout + p * OHW;
        for (int oh = 0; oh < OH; oh++) {
            int h0, h1;
            pool_window(oh, K, stride, pad, H, &h0, &h1);
            for (int ow = 0; ow < OW; ow++) {
                int w0, w1;
                pool_window(ow, K, stride, pad, W, &w0, &w1);
                float g = dy[oh * OW + ow] / div;
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++)
                        dx[ih * W + iw] += g;
            }
        }
    }
}

void dt_avgpool_backward_ref(float *dinp, const float *dout, int N, int C, int H, int W, int K,
                             int stride, int pad, int accum)
{
    int OH, OW;
    pool_shape(N, C, H, W, K, stride, pad, &OH, &OW);
    /* gather form: input (ih, iw) is in window (oh, ow) when ih = oh*stride - pad + kh */
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int ih = 0; ih < H; ih++)
                for (int iw = 0; iw < W; iw++) {
                    float *d = &dinp[(((size_t)n * C + c) * H + ih) * W + iw];
                    double s = accum ? *d : 0.0;
                    for (int kh = 0; kh < K; kh++)
                        for (int kw = 0; kw < K; kw++) {
                            int th = ih + pad - kh, tw = iw + pad - kw;
                            if (th < 0 || tw < 0 || th % stride || tw % stride ||
                                th / stride >= OH || tw / stride >= OW)
                                continue;
                            s += (double)dout[(((size_t)n * C + c) * OH + th / stride) * OW +
                                              tw / stride] /
                                 (K * K);
                        }
                    *d = (float)s;
                }
}

/* ---- global average pooling ---- */

/* the lane layout's job: blocks of `lanes` images of C channels */
static void gap_lanes(planes_job *j, int N, int C, int lanes)
{
    DT_ASSERT(N % lanes == 0 && dt_kern_get()->lanes == lanes);
    j->lanes = lanes, j->C = C;
    const long per = (long)lanes * C * j->H;
    dt_tpool_for(N / lanes, GRAIN / per + 1, 1, planes_part, (void *)j);
}

void dt_gap_forward(float *out, const float *inp, int N, int C, int HW, int lanes)
{
    DT_ASSERT(N >= 1 && C >= 1 && HW >= 1);
    planes_job j = {.out = out, .inp = inp, .H = HW, .W = 1, .kind = lanes ? 4 : 2};
    if (lanes)
        gap_lanes(&j, N, C, lanes);
    else
        planes_run(&j, (long)N * C);
}

void dt_gap_backward(float *dinp, const float *dout, int N, int C, int HW, int accum, int lanes)
{
    DT_ASSERT(N >= 1 && C >= 1 && HW >= 1);
    planes_job j = {
        .out = dinp, .inp = dout, .H = HW, .W = 1, .accum = accum, .kind = lanes ? 5 : 3};
    if (lanes)
        gap_lanes(&j, N, C, lanes);
    else
        planes_run(&j, (long)N * C);
}
