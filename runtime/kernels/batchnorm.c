/*
 * batchnorm.c - batch normalization kernels (torch.nn.BatchNorm1d/2d and SyncBatchNorm), see
 * layer_kernels.h. Tensors are (N, C, HW): BatchNorm1d on (N, C) is HW = 1.
 *
 * Ioffe & Szegedy 2015, with PyTorch's conventions (torch.nn.BatchNorm2d docs):
 *   normalization by the biased batch variance, y = (x - mean) / sqrt(var + eps) * w + b;
 *   running_x = (1 - momentum) * running_x + momentum * x_batch, with the UNBIASED variance
 *   var * M / (M - 1) for running_var.
 * Statistics are sums in double (sum x, sum x^2; sum dy, sum dy * x): summable over ranks for a
 * synchronized BN, and accurate enough in double that var = E[x^2] - mean^2 loses nothing that
 * matters to float results. The backward is PyTorch SyncBatchNorm's
 * (torch/nn/modules/_functions.py: batch_norm_backward_reduce on local data, allreduce of
 * sum_dy and sum_dy_xmu, batch_norm_backward_elemt with the global mean_dy, mean_dy_xmu).
 *
 * Every kernel loops over channels outermost, so the per-channel constants are scalars (no
 * workspace), and over the HW values of each (n, c) plane innermost. The loops over the data are
 * the `elem` family's (kernels/elem.h: bn_sums, bn_dots, bn_affine, bn_backward), chosen per
 * instruction set; the per-channel arithmetic in double stays here.
 */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "common.h"
#include "kernels/elem.h"
#include "kernels/isa.h"
#include "kernels/tpool.h"
#include "layer_kernels.h"

static void bn_shape(int N, int C, int HW) { DT_ASSERT(N >= 0 && C >= 1 && HW >= 1); }

/* Work is split over the thread pool (kernels/tpool.h) by images where the planes are large
 * enough (bn_images), else by channels: each channel's sums and loops are one thread's, in the
 * order one thread would run them, so the bits do not depend on the thread count. Tensors under
 * this many values stay on the caller. */
#define GRAIN 16384
/* Planes of at least this many values split by images (BatchNorm2d after a convolution); the
 * smaller ones (BatchNorm1d: HW = 1) by channels, where a call per plane would cost more than
 * the plane. */
#define IMAGE_HW 16

/* Everything a loop over channels needs (one per kernel below, the unused fields zero). */
typedef struct {
    int kind;
    float *out, *save_mean, *save_invstd, *running_mean, *running_var;
    const float *inp, *dout, *weight, *bias, *mean, *var;
    const float *ro; /* a fused ReLU's output (backward), NULL: none */
    const void *res; /* the forward's DT_BN_ADD residual (out's layout; DT_BN_RES16: bf16) */
    /* the backward's inp and ro read from their bf16 copies (h: inp16, and ro16 for ro) */
    const uint16_t *inp16, *ro16;
    int h;
    int flags; /* the forward's DT_BN_RELU, DT_BN_ROUND (layer_kernels.h) */
    double *sum, *sumsq;
    const double *gsum, *gsumsq;
    double count;
    int N, C, HW, accum;
    int lanes; /* 0: (N, C, HW); L: blocks of L images as (C, HW, L) (layer_kernels.h) */
    int rnd;   /* the backward's dout read rounded to bf16 (kernels/elem.h) */
    float eps, momentum;
    /* the backward's d2 (NULL: none): (=|+= accum2) the gradient it reads, masked by the fused
     * ReLU (relu_backward's values): a fused residual add's second input's gradient */
    float *d2;
    int accum2;
} bn_job;

enum { BN_STATS, BN_DOTS, BN_TRAIN, BN_EVAL, BN_BACK };

static void bn_channels(const bn_job *j, int c0, int c1);
static void bn_images(const bn_job *j);

static void bn_part(void *arg, long c0, long c1) { bn_channels(arg, (int)c0, (int)c1); }

/* j's kernel over all channels: in parts over the pool when the tensor is large enough.
 * Returns 1 when it split by images (their d2 done with them), 0 by channels. */
static int bn_run(const bn_job *j)
{
    const long n = (long)j->N * j->C * j->HW;
    /* grain in channels: at least GRAIN values per part */
    long g = (long)GRAIN / ((long)j->N * j->HW > 0 ? (long)j->N * j->HW : 1);
    g = g < 1 ? 1 : g;
    if (j->lanes || (n >= 2 * GRAIN && j->HW >= IMAGE_HW && j->N >= 2)) {
        bn_images(j); /* with lanes its block path: the one that reads the lane layout */
        return 1;
    }
    if (n < 2 * GRAIN)
        bn_channels(j, 0, j->C);
    else
        dt_tpool_for(j->C, g, 1, bn_part, (void *)j);
    return 0;
}

/* the job's d2 over n values from off (an image's or a block's, while its gradient is in cache),
 * as relu_backward(_h) writes a gradient */
static void d2_part(const bn_job *j, size_t off, long n)
{
    const struct dt_kelem *k = dt_kern_get()->elem;
    if (j->h)
        k->relu_backward_h(j->d2 + off, j->dout + off, j->ro16 + off, n, j->accum2, j->rnd);
    else
        k->relu_backward(j->d2 + off, j->dout + off, j->ro + off, n, j->accum2, j->rnd);
}

/* ---- split by images ----
 * The layers around a BatchNorm2d split their work by images (the batch-lane convolutions, the
 * elementwise passes over the flat tensor: kernels/tpool.c gives each thread the same contiguous
 * range of them every time), so splitting BatchNorm by channels made every thread read the
 * planes of the other threads' images, and its outputs be read by them in turn: between cores
 * that share no L3 that is 3-4x the cost of a thread's own data (docs/performance.md). Here each
 * thread handles whole images, and the bits stay those of bn_channels:
 *   - statistics: a channel's sum is 0.0 + p(0) + p(1) + ... over images n in order, p(n) its
 *     plane sum (elem.c's 4-lane order); each p(n) is computed alone (bn_sums/bn_dots on one
 *     image, as 0.0 + p(n), which only turns a -0.0 into +0.0, and a fold that starts at +0.0
 *     never holds -0.0, so adding either gives the same) and the caller folds them in image order;
 *   - normalization and the backward's elementwise pass: per-channel constants first, exactly as
 *     bn_channels computes them, then each (n, c) plane alone (bn_affine, bn_backward with N = 1
 *     on the image's offset). */

/* per-image partial sums (2 N C doubles) and per-channel constants (4 C floats), grown by
 * dt_bn_reserve at net build; beyond that (kernel tests) grown on demand */
static double *img_sum;
static float *chan_k;
static size_t img_cap, chan_cap;

static void reserve(int N, int C)
{
    const size_t ns = 2 * (size_t)N * (size_t)C, nc = 4 * (size_t)C;
    if (ns > img_cap) {
        free(img_sum);
        img_sum = dt_xmalloc(ns, sizeof *img_sum);
        img_cap = ns;
    }
    if (nc > chan_cap) {
        free(chan_k);
        chan_k = dt_xmalloc(nc, sizeof *chan_k);
        chan_cap = nc;
    }
}

void dt_bn_reserve(int N, int C)
{
    DT_ASSERT(N >= 1 && C >= 1);
    reserve(N, C);
}

/* Channel c's constants, the same for both splits: BN_TRAIN (its statistics saved and the running
 * ones updated) and BN_EVAL: the affine pass's mean, a = invstd * weight and b = bias; BN_BACK:
 * the backward's k = invstd * weight, mean_dy and slope,
 *   dx = k * (dy - mean_dy - (x - mean) * slope) = w invstd (dy - mean_dy - xhat mean_dy_xhat). */
static void channel_constants(const bn_job *j, int c, float *k0, float *k1, float *k2)
{
    const float w = j->weight ? j->weight[c] : 1.0f;
    if (j->kind == BN_BACK) {
        const double invstd = j->var[c]; /* save_invstd */
        *k0 = (float)(invstd * w);
        *k1 = (float)(j->gsum[c] / j->count);
        *k2 = (float)(invstd * j->gsumsq[c] / j->count);
        return;
    }
    *k2 = j->bias ? j->bias[c] : 0.0f;
    if (j->kind == BN_EVAL) {
        const float invstd = (float)(1.0 / sqrt((double)j->var[c] + j->eps));
        *k0 = j->mean[c];
        *k1 = invstd * w;
        return;
    }
    double mean = j->sum[c] / j->count;
    double var = j->sumsq[c] / j->count - mean * mean;
    var = var > 0.0 ? var : 0.0;
    double invstd = 1.0 / sqrt(var + j->eps);
    j->save_mean[c] = (float)mean;
    j->save_invstd[c] = (float)invstd;
    /* torch batch_norm_cpu_update_stats_template: momentum * stat + (1 - momentum) * running */
    if (j->running_mean)
        j->running_mean[c] = (float)(j->momentum * mean + (1.0 - j->momentum) * j->running_mean[c]);
    if (j->running_var)
        j->running_var[c] = (float)(j->momentum * (var * j->count / (j->count - 1.0)) +
                                    (1.0 - j->momentum) * j->running_var[c]);
    *k0 = (float)mean;
    *k1 = (float)invstd * w;
}

/* the forward's residual from value off on (NULL: none) */
static const void *res_at(const bn_job *j, size_t off)
{
    if (!j->res)
        return NULL;
    if (j->flags & DT_BN_RES16)
        return (const uint16_t *)j->res + off;
    return (const float *)j->res + off;
}

/* Images n0 <= n < n1, or with the lane layout blocks of L images (each block's per-image sums,
 * bn_sums_l / bn_dots_l, are those images' NCHW sums, into their rows; the elementwise passes
 * run on a block's planes of HW * L values, whose bits do not depend on the layout). */
static void img_part(void *arg, long n0, long n1)
{
    const bn_job *j = arg;
    const struct dt_kelem *k = dt_kern_get()->elem;
    const int C = j->C, HW = j->HW, L = j->lanes ? j->lanes : 1, PHW = HW * L;
    const size_t part = (size_t)L * C * HW, NC = (size_t)j->N * C;
    for (long n = n0; n < n1; n++) {
        const size_t off = (size_t)n * part;
        double *ps = img_sum + (size_t)n * L * C, *pss = img_sum + NC + (size_t)n * L * C;
        const float *ro = j->ro ? j->ro + off : NULL;
        const uint16_t *ro16 = j->ro16 ? j->ro16 + off : NULL;
        switch (j->kind) {
        case BN_STATS:
            if (j->lanes)
                k->bn_sums_l(ps, pss, j->inp + off, C, HW);
            else
                k->bn_sums(ps, pss, j->inp + off, 1, C, HW, 0, C);
            break;
        case BN_DOTS:
            if (j->lanes && j->h)
                k->bn_dots_lh(ps, pss, j->dout + off, j->inp16 + off, ro16, C, HW, j->rnd);
            else if (j->lanes)
                k->bn_dots_l(ps, pss, j->dout + off, j->inp + off, ro, C, HW, j->rnd);
            else if (j->h)
                k->bn_dots_h(ps, pss, j->dout + off, j->inp16 + off, ro16, 1, C, HW, 0, C, j->rnd);
            else
                k->bn_dots(ps, pss, j->dout + off, j->inp + off, ro, 1, C, HW, 0, C, j->rnd);
            break;
        case BN_TRAIN:
        case BN_EVAL:
            for (int c = 0; c < C; c++)
                k->bn_affine(j->out + off, j->inp + off, 1, C, PHW, c, chan_k[c], chan_k[C + c],
                             chan_k[2 * C + c], j->flags, res_at(j, off));
            break;
        default:
            for (int c = 0; c < C; c++)
                if (j->h)
                    k->bn_backward_h(j->out + off, j->dout + off, j->inp16 + off, ro16, 1, C, PHW,
                                     c, chan_k[c], chan_k[C + c], j->mean[c], chan_k[2 * C + c],
                                     j->accum, j->rnd);
                else
                    k->bn_backward(j->out + off, j->dout + off, j->inp + off, ro, 1, C, PHW, c,
                                   chan_k[c], chan_k[C + c], j->mean[c], chan_k[2 * C + c],
                                   j->accum, j->rnd);
            if (j->d2)
                d2_part(j, off, (long)part);
            break;
        }
    }
}

static void bn_images(const bn_job *j)
{
    const int N = j->N, C = j->C;
    reserve(N, C);
    const size_t NC = (size_t)N * C;
    if (j->kind != BN_STATS && j->kind != BN_DOTS)
        for (int c = 0; c < C; c++)
            channel_constants(j, c, &chan_k[c], &chan_k[C + c], &chan_k[2 * C + c]);
    /* images per part: at least GRAIN values */
    long g = (long)GRAIN / ((long)C * j->HW);
    if (j->lanes) { /* blocks of L images */
        DT_ASSERT(N % j->lanes == 0 && dt_kern_get()->lanes == j->lanes);
        g /= j->lanes;
    }
    g = g < 1 ? 1 : g;
    dt_tpool_for(j->lanes ? N / j->lanes : N, g, 1, img_part, (void *)j);
    if (j->kind != BN_STATS && j->kind != BN_DOTS)
        return;
    /* the fold over images, in image order for every channel */
    for (int c = 0; c < C; c++)
        j->sum[c] = 0.0, j->sumsq[c] = 0.0;
    for (int n = 0; n < N; n++) {
        const double *ps = img_sum + (size_t)n * C, *pss = img_sum + NC + (size_t)n * C;
        for (int c = 0; c < C; c++) {
            j->sum[c] += ps[c];
            j->sumsq[c] += pss[c];
        }
    }
    if (j->kind == BN_DOTS)
        for (int c = 0; c < C; c++) /* as bn_channels' BN_DOTS */
            j->sumsq[c] = (j->sumsq[c] - (double)j->mean[c] * j->sum[c]) * j->var[c];
}

void dt_bn_stats(double *sum, double *sumsq, const float *inp, int N, int C, int HW, int lanes)
{
    bn_shape(N, C, HW);
    bn_job j = {.kind = BN_STATS,
                .sum = sum,
                .sumsq = sumsq,
                .inp = inp,
                .N = N,
                .C = C,
                .HW = HW,
                .lanes = N > 0 ? lanes : 0};
    bn_run(&j);
}

static void bn_channels(const bn_job *j, int c0, int c1)
{
    const struct dt_kelem *k = dt_kern_get()->elem;
    switch (j->kind) {
    case BN_STATS: k->bn_sums(j->sum, j->sumsq, j->inp, j->N, j->C, j->HW, c0, c1); break;
    case BN_DOTS:
        if (j->h)
            k->bn_dots_h(j->sum, j->sumsq, j->dout, j->inp16, j->ro16, j->N, j->C, j->HW, c0, c1,
                         j->rnd);
        else
            k->bn_dots(j->sum, j->sumsq, j->dout, j->inp, j->ro, j->N, j->C, j->HW, c0, c1, j->rnd);
        for (int c = c0; c < c1; c++) {
            /* sum dy * (x - mean) * invstd = (sum dy * x - mean * sum dy) * invstd */
            const double s = j->sum[c], sxy = j->sumsq[c];
            j->sumsq[c] = (sxy - (double)j->mean[c] * s) * j->var[c];
        }
        break;
    case BN_TRAIN:
    case BN_EVAL:
        for (int c = c0; c < c1; c++) {
            float mean, a, b;
            channel_constants(j, c, &mean, &a, &b);
            k->bn_affine(j->out, j->inp, j->N, j->C, j->HW, c, mean, a, b, j->flags, j->res);
        }
        break;
    default:
        for (int c = c0; c < c1; c++) {
            float kc, mean_dy, slope;
            channel_constants(j, c, &kc, &mean_dy, &slope);
            if (j->h)
                k->bn_backward_h(j->out, j->dout, j->inp16, j->ro16, j->N, j->C, j->HW, c, kc,
                                 mean_dy, j->mean[c], slope, j->accum, j->rnd);
            else
                k->bn_backward(j->out, j->dout, j->inp, j->ro, j->N, j->C, j->HW, c, kc, mean_dy,
                               j->mean[c], slope, j->accum, j->rnd);
        }
        break;
    }
}

void dt_bn_forward_train(float *out, float *save_mean, float *save_invstd, float *running_mean,
                         float *running_var, const float *inp, const float *weight,
                         const float *bias, const double *sum, const double *sumsq, double count,
                         int N, int C, int HW, float eps, float momentum, int flags, int lanes,
                         const void *res)
{
    bn_shape(N, C, HW);
    /* torch: "Expected more than 1 value per channel when training" */
    DT_ASSERT(count > 1.0);
    DT_ASSERT(eps >= 0.0f && momentum >= 0.0f && momentum <= 1.0f);
    bn_job j = {.kind = BN_TRAIN,
                .flags = flags,
                .out = out,
                .save_mean = save_mean,
                .save_invstd = save_invstd,
                .running_mean = running_mean,
                .running_var = running_var,
                .inp = inp,
                .weight = weight,
                .bias = bias,
                .sum = (double *)sum,
                .sumsq = (double *)sumsq,
                .count = count,
                .N = N,
                .C = C,
                .HW = HW,
                .eps = eps,
                .momentum = momentum,
                .lanes = lanes,
                .res = res};
    bn_run(&j);
}

void dt_bn_forward_eval(float *out, const float *inp, const float *running_mean,
                        const float *running_var, const float *weight, const float *bias, int N,
                        int C, int HW, float eps, int flags, int lanes, const void *res)
{
    bn_shape(N, C, HW);
    bn_job j = {.kind = BN_EVAL,
                .flags = flags,
                .out = out,
                .inp = inp,
                .mean = running_mean,
                .var = running_var,
                .weight = weight,
                .bias = bias,
                .N = N,
                .C = C,
                .HW = HW,
                .eps = eps,
                .lanes = lanes,
                .res = res};
    bn_run(&j);
}

/* dt_bn_backward_reduce's job: inp and relu_out as floats, or (h) their bf16 copies */
static void backward_reduce(double *sum_dy, double *sum_dy_xhat, const float *dout,
                            const float *inp, const uint16_t *inp16, const float *save_mean,
                            const float *save_invstd, int N, int C, int HW, const float *relu_out,
                            const uint16_t *relu_out16, int h, int rnd, int lanes)
{
    bn_shape(N, C, HW);
    /* sum_dy_xhat first holds sum dy * x */
    bn_job j = {.kind = BN_DOTS,
                .ro = relu_out,
                .inp16 = inp16,
                .ro16 = relu_out16,
                .h = h,
                .rnd = rnd,
                .sum = sum_dy,
                .sumsq = sum_dy_xhat,
                .dout = dout,
                .inp = inp,
                .mean = save_mean,
                .var = save_invstd,
                .N = N,
                .C = C,
                .HW = HW,
                .lanes = N > 0 ? lanes : 0};
    bn_run(&j);
}

void dt_bn_backward_reduce(double *sum_dy, double *sum_dy_xhat, const float *dout, const float *inp,
                           const float *save_mean, const float *save_invstd, int N, int C, int HW,
                           const float *relu_out, int rnd, int lanes)
{
    backward_reduce(sum_dy, sum_dy_xhat, dout, inp, NULL, save_mean, save_invstd, N, C, HW,
                    relu_out, NULL, 0, rnd, lanes);
}

void dt_bn_backward_reduce_h(double *sum_dy, double *sum_dy_xhat, const float *dout,
                             const uint16_t *inp, const float *save_mean, const float *save_invstd,
                             int N, int C, int HW, const uint16_t *relu_out, int rnd, int lanes)
{
    backward_reduce(sum_dy, sum_dy_xhat, dout, NULL, inp, save_mean, save_invstd, N, C, HW, NULL,
                    relu_out, 1, rnd, lanes);
}

/* dt_bn_backward's work: inp and relu_out as floats, or (h) their bf16 copies */
static void backward_elemt(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const uint16_t *inp16, const float *save_mean,
                           const float *save_invstd, const float *weight,
                           const double *local_sum_dy, const double *local_sum_dy_xhat,
                           const double *global_sum_dy, const double *global_sum_dy_xhat,
                           double count, int N, int C, int HW, int accum, const float *relu_out,
                           const uint16_t *relu_out16, int h, int rnd, int lanes, float *din2,
                           int accum2)
{
    bn_shape(N, C, HW);
    DT_ASSERT(!din2 || relu_out || relu_out16);
    for (int c = 0; c < C; c++) {
        if (dweight)
            dweight[c] = (float)local_sum_dy_xhat[c];
        if (dbias)
            dbias[c] = (float)local_sum_dy[c];
    }
    if (!dinp) {
        if (din2) { /* only the second input's gradient */
            const bn_job j2 = {.ro = relu_out,
                               .ro16 = relu_out16,
                               .h = h,
                               .dout = dout,
                               .rnd = rnd,
                               .d2 = din2,
                               .accum2 = accum2};
            d2_part(&j2, 0, (long)N * C * HW);
        }
        return;
    }
    DT_ASSERT(count > 0.0);
    bn_job j = {.kind = BN_BACK,
                .ro = relu_out,
                .inp16 = inp16,
                .ro16 = relu_out16,
                .h = h,
                .out = dinp,
                .dout = dout,
                .inp = inp,
                .mean = save_mean,
                .var = save_invstd,
                .weight = weight,
                .gsum = global_sum_dy,
                .gsumsq = global_sum_dy_xhat,
                .count = count,
                .N = N,
                .C = C,
                .HW = HW,
                .accum = accum,
                .rnd = rnd,
                .lanes = lanes,
                .d2 = din2,
                .accum2 = accum2};
    if (!bn_run(&j) && din2) /* split by channels: d2 in a pass of its own */
        d2_part(&j, 0, (long)N * C * HW);
}

void dt_bn_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                    const float *save_mean, const float *save_invstd, const float *weight,
                    const double *local_sum_dy, const double *local_sum_dy_xhat,
                    const double *global_sum_dy, const double *global_sum_dy_xhat, double count,
                    int N, int C, int HW, int accum, const float *relu_out, int rnd, int lanes,
                    float *din2, int accum2)
{
    backward_elemt(dinp, dweight, dbias, dout, inp, NULL, save_mean, save_invstd, weight,
                   local_sum_dy, local_sum_dy_xhat, global_sum_dy, global_sum_dy_xhat, count, N, C,
                   HW, accum, relu_out, NULL, 0, rnd, lanes, din2, accum2);
}

void dt_bn_backward_h(float *dinp, float *dweight, float *dbias, const float *dout,
                      const uint16_t *inp, const float *save_mean, const float *save_invstd,
                      const float *weight, const double *local_sum_dy,
                      const double *local_sum_dy_xhat, const double *global_sum_dy,
                      const double *global_sum_dy_xhat, double count, int N, int C, int HW,
                      int accum, const uint16_t *relu_out, int rnd, int lanes, float *din2,
                      int accum2)
{
    backward_elemt(dinp, dweight, dbias, dout, NULL, inp, save_mean, save_invstd, weight,
                   local_sum_dy, local_sum_dy_xhat, global_sum_dy, global_sum_dy_xhat, count, N, C,
                   HW, accum, NULL, relu_out, 1, rnd, lanes, din2, accum2);
}
