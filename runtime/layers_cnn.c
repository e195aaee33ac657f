/*
 * layers_cnn.c - layer kinds of convolutional and residual nets: conv, maxpool, avgpool, gap,
 * batchnorm (1d/2d, optionally synchronized over ranks), dropout, add. Each is an ops table over
 * its own small struct; the math is in layer_kernels.h. Per-layer memory beyond the activation
 * arena (pooling argmax, BN saved statistics, dropout masks) is allocated once at build time.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "layer_kernels.h"
#include "layers.h"

static int opt_int(const char *val, long lo, long hi, int *out)
{
    char *e;
    long v = strtol(val, &e, 10);
    if (e == val || *e || v < lo || v > hi)
        return DT_ERR;
    *out = (int)v;
    return DT_OK;
}

static int opt_float(const char *val, double lo, double hi, float *out)
{
    char *e;
    double v = strtod(val, &e);
    if (e == val || *e || !(v >= lo && v <= hi))
        return DT_ERR;
    *out = (float)v;
    return DT_OK;
}

/* Output size of a window of K with stride S and padding P over n (floor mode, as torch). */
static int out_dim(int n, int K, int S, int P)
{
    return n + 2 * P < K ? 0 : (n + 2 * P - K) / S + 1;
}

/* ---- conv: torch.nn.Conv2d(C, out, kernel, stride, padding, bias) ---- */

typedef struct {
    int out, k, stride, pad;
    int no_bias, set;
    int pool;      /* > 0: the [maxpool] layer whose [relu] + pooling this conv does (fused) */
    int32_t *code; /* fused: where each pooled gradient goes (dt_conv2d_relu_pool2_forward) */
} conv_priv;

static int conv_option(dt_layer *l, const char *key, const char *val, const char *src, int line)
{
    conv_priv *p = l->priv;
    if (strcmp(key, "out") == 0) {
        if (opt_int(val, 1, 1 << 20, &p->out) != 0)
            return dt_err("%s:%d: [conv] out = '%s': expected an integer in [1, %d]", src, line, val,
                          1 << 20);
        p->set = 1;
    } else if (strcmp(key, "kernel") == 0) {
        if (opt_int(val, 1, 64, &p->k) != 0)
            return dt_err("%s:%d: [conv] kernel = '%s': expected an integer in [1, 64]", src, line, val);
    } else if (strcmp(key, "stride") == 0) {
        if (opt_int(val, 1, 64, &p->stride) != 0)
            return dt_err("%s:%d: [conv] stride = '%s': expected an integer in [1, 64]", src, line, val);
    } else if (strcmp(key, "pad") == 0) {
        if (opt_int(val, 0, 64, &p->pad) != 0)
            return dt_err("%s:%d: [conv] pad = '%s': expected an integer in [0, 64]", src, line, val);
    } else if (strcmp(key, "bias") == 0) {
        int b;
        if (opt_int(val, 0, 1, &b) != 0)
            return dt_err("%s:%d: [conv] bias = '%s': expected 0 or 1", src, line, val);
        p->no_bias = !b;
    } else {
        return dt_err("%s:%d: [conv] unknown key '%s': expected name, input, out, kernel, stride, "
                      "pad, bias",
                      src, line, key);
    }
    return DT_OK;
}

static int conv_setup(dt_layer *l, dt_net *net)
{
    conv_priv *p = l->priv;
    if (!p->set)
        return dt_err("%s:%d: [conv] needs out = N", l->src, l->line);
    if (!p->k)
        p->k = 3;
    if (!p->stride)
        p->stride = 1;
    int oh = out_dim(l->in_h, p->k, p->stride, p->pad), ow = out_dim(l->in_w, p->k, p->stride, p->pad);
    if (oh < 1 || ow < 1)
        return dt_err("%s:%d: [conv] kernel %d with pad %d does not fit the %dx%d input", l->src,
                      l->line, p->k, p->pad, l->in_h, l->in_w);
    /* before the workspace plan: its int GEMM dimensions hold within these limits */
    size_t wn;
    if (dt_mul_overflow((size_t)p->out, (size_t)l->in_c, &wn) ||
        dt_mul_overflow(wn, (size_t)p->k * (size_t)p->k, &wn) || wn > SIZE_MAX - (size_t)p->out)
        wn = SIZE_MAX;
    else if (!p->no_bias)
        wn += (size_t)p->out;
    if (dt_net_check_sizes(net, l, wn, (size_t)p->out, (size_t)oh, (size_t)ow) != 0)
        return DT_ERR;
    int ws[4] = {p->out, l->in_c, p->k, p->k};
    dt_net_add_param(net, l, "weight", 4, ws, 0);
    if (!p->no_bias)
        dt_net_add_param(net, l, "bias", 1, &p->out, DT_PARAM_BIAS);
    l->c = p->out;
    l->h = oh;
    l->w = ow;
    l->ws_floats = dt_conv2d_ws_floats(net->max_batch, l->in_c, l->in_h, l->in_w, p->out, p->k,
                                       p->k, p->stride, p->pad);
    return DT_OK;
}

/* torch.nn.Conv2d.reset_parameters (torch 1.13): kaiming_uniform_(a=sqrt(5)) over
 * fan_in = C*KH*KW, bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)) — as linear. */
static void conv_init(dt_layer *l, dt_net *net, dt_mt19937 *g)
{
    conv_priv *p = l->priv;
    double fan_in = (double)l->in_c * p->k * p->k;
    double a = sqrt(5.0);
    double bound = sqrt(3.0) * (sqrt(2.0 / (1.0 + a * a)) / sqrt(fan_in));
    dt_uniform_fill(dt_layer_param(net, l, 0), (size_t)p->out * (size_t)fan_in, -bound, bound, g);
    if (!p->no_bias) {
        double bb = 1.0 / sqrt(fan_in);
        dt_uniform_fill(dt_layer_param(net, l, 1), (size_t)p->out, -bb, bb, g);
    }
}

static void conv_forward(dt_layer *l, dt_net *net, int N, int train)
{
    (void)train;
    conv_priv *p = l->priv;
    if (p->pool) {
        dt_conv2d_relu_pool2_forward(net->layers[p->pool].out, p->code, dt_layer_in(net, l),
                                     dt_layer_param(net, l, 0),
                                     p->no_bias ? NULL : dt_layer_param(net, l, 1), N, l->in_c,
                                     l->in_h, l->in_w, p->out, p->k, p->k, p->stride, p->pad,
                                     net->ws);
        return;
    }
    dt_conv2d_forward(l->out, dt_layer_in(net, l), dt_layer_param(net, l, 0),
                      p->no_bias ? NULL : dt_layer_param(net, l, 1), N, l->in_c, l->in_h, l->in_w,
                      p->out, p->k, p->k, p->stride, p->pad, net->ws);
}

static void conv_backward(dt_layer *l, dt_net *net, int N)
{
    conv_priv *p = l->priv;
    if (p->pool) {
        dt_conv2d_relu_pool2_backward(dt_layer_din(net, l), dt_layer_grad(net, l, 0),
                                      p->no_bias ? NULL : dt_layer_grad(net, l, 1),
                                      net->layers[p->pool].dout, p->code, dt_layer_in(net, l),
                                      dt_layer_param(net, l, 0), N, l->in_c, l->in_h, l->in_w,
                                      p->out, p->k, p->k, p->stride, p->pad, l->accum, net->ws);
        return;
    }
    dt_conv2d_backward(dt_layer_din(net, l), dt_layer_grad(net, l, 0),
                       p->no_bias ? NULL : dt_layer_grad(net, l, 1), l->dout, dt_layer_in(net, l),
                       dt_layer_param(net, l, 0), N, l->in_c, l->in_h, l->in_w, p->out, p->k, p->k,
                       p->stride, p->pad, l->accum, net->ws);
}

static void conv_free(dt_layer *l)
{
    conv_priv *p = l->priv;
    free(p->code);
    p->code = NULL;
}

const dt_layer_ops dt_conv_ops = {
    .kind = "conv",
    .priv_size = sizeof(conv_priv),
    .option = conv_option,
    .setup = conv_setup,
    .init = conv_init,
    .forward = conv_forward,
    .backward = conv_backward,
    .free = conv_free,
};

/* ---- maxpool / avgpool: torch.nn.MaxPool2d / AvgPool2d(size, stride = size, padding) ---- */

typedef struct {
    int k, stride, pad;
    int32_t *argmax; /* (max_batch, out_size), maxpool only */
} pool_priv;

static int pool_option(dt_layer *l, const char *key, const char *val, const char *src, int line)
{
    pool_priv *p = l->priv;
    int *dst = strcmp(key, "size") == 0 ? &p->k : strcmp(key, "stride") == 0 ? &p->stride
               : strcmp(key, "pad") == 0 ? &p->pad : NULL;
    if (!dst)
        return dt_err("%s:%d: [%s] unknown key '%s': expected name, input, size, stride, pad", src,
                      line, l->ops->kind, key);
    if (opt_int(val, dst == &p->pad ? 0 : 1, 64, dst) != 0)
        return dt_err("%s:%d: [%s] %s = '%s': expected an integer in [%d, 64]", src, line,
                      l->ops->kind, key, val, dst == &p->pad ? 0 : 1);
    return DT_OK;
}

static int pool_setup(dt_layer *l, dt_net *net)
{
    pool_priv *p = l->priv;
    if (!p->k)
        p->k = 2;
    if (!p->stride)
        p->stride = p->k;
    if (2 * p->pad > p->k)
        return dt_err("%s:%d: [%s] pad %d: expected at most half the size %d (as torch)", l->src,
                      l->line, l->ops->kind, p->pad, p->k);
    l->h = out_dim(l->in_h, p->k, p->stride, p->pad);
    l->w = out_dim(l->in_w, p->k, p->stride, p->pad);
    if (l->h < 1 || l->w < 1)
        return dt_err("%s:%d: [%s] size %d does not fit the %dx%d input", l->src, l->line,
                      l->ops->kind, p->k, l->in_h, l->in_w);
    if (dt_net_check_sizes(net, l, 0, (size_t)l->c, (size_t)l->h, (size_t)l->w) != 0)
        return DT_ERR;
    if (strcmp(l->ops->kind, "maxpool") == 0)
        p->argmax = dt_xmalloc((size_t)net->max_batch * (size_t)l->c * (size_t)l->h * (size_t)l->w,
                               sizeof *p->argmax);
    return DT_OK;
}

static void maxpool_forward(dt_layer *l, dt_net *net, int N, int train)
{
    (void)train;
    pool_priv *p = l->priv;
    dt_maxpool_forward(l->out, p->argmax, dt_layer_in(net, l), N, l->in_c, l->in_h, l->in_w, p->k,
                       p->stride, p->pad);
}

static void maxpool_backward(dt_layer *l, dt_net *net, int N)
{
    pool_priv *p = l->priv;
    float *din = dt_layer_din(net, l);
    if (din)
        dt_maxpool_backward(din, l->dout, p->argmax, N, l->in_c, l->in_h, l->in_w, l->h, l->w,
                            l->accum);
}

static void pool_free(dt_layer *l)
{
    pool_priv *p = l->priv;
    free(p->argmax);
    p->argmax = NULL;
}

const dt_layer_ops dt_maxpool_ops = {
    .kind = "maxpool",
    .priv_size = sizeof(pool_priv),
    .option = pool_option,
    .setup = pool_setup,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
    .free = pool_free,
};

static void avgpool_forward(dt_layer *l, dt_net *net, int N, int train)
{
    (void)train;
    pool_priv *p = l->priv;
    dt_avgpool_forward(l->out, dt_layer_in(net, l), N, l->in_c, l->in_h, l->in_w, p->k, p->stride,
                       p->pad);
}

static void avgpool_backward(dt_layer *l, dt_net *net, int N)
{
    pool_priv *p = l->priv;
    float *din = dt_layer_din(net, l);
    if (din)
        dt_avgpool_backward(din, l->dout, N, l->in_c, l->in_h, l->in_w, p->k, p->stride, p->pad,
                            l->accum);
}

const dt_layer_ops dt_avgpool_ops = {
    .kind = "avgpool",
    .priv_size = sizeof(pool_priv),
    .option = pool_option,
    .setup = pool_setup,
    .forward = avgpool_forward,
    .backward = avgpool_backward,
};

/* ---- gap: global average pooling, torch.nn.AdaptiveAvgPool2d(1) ---- */

static int gap_setup(dt_layer *l, dt_net *net)
{
    (void)net;
    l->h = l->w = 1;
    return DT_OK;
}

static void gap_forward(dt_layer *l, dt_net *net, int N, int train)
{
    (void)train;
    dt_gap_forward(l->out, dt_layer_in(net, l), N, l->in_c, l->in_h * l->in_w);
}

static void gap_backward(dt_layer *l, dt_net *net, int N)
{
    float *din = dt_layer_din(net, l);
    if (din)
        dt_gap_backward(din, l->dout, N, l->in_c, l->in_h * l->in_w, l->accum);
}

const dt_layer_ops dt_gap_ops = {
    .kind = "gap",
    .setup = gap_setup,
    .forward = gap_forward,
    .backward = gap_backward,
};

/* ---- batchnorm: torch.nn.BatchNorm1d/2d(C, eps, momentum, affine), or SyncBatchNorm ---- */

typedef struct {
    float eps, momentum;
    int no_affine;
    int set_eps, set_momentum;
    float *save_mean, *save_invstd; /* (C) */
    double *sums;                   /* (4C): forward sum, sumsq; backward global sums */
    double count;                   /* samples x pixels behind the last batch statistics */
    double *acc;                    /* (2C + 1): refresh accumulators: sum, sumsq, count */
    float *scratch;                 /* (2C): where a refresh pass sends the running update */
} bn_priv;

static int bn_option(dt_layer *l, const char *key, const char *val, const char *src, int line)
{
    bn_priv *p = l->priv;
    if (strcmp(key, "eps") == 0) {
        if (opt_float(val, 1e-12, 1.0, &p->eps) != 0)
            return dt_err("%s:%d: [batchnorm] eps = '%s': expected a number in [1e-12, 1]", src,
                          line, val);
        p->set_eps = 1;
    } else if (strcmp(key, "momentum") == 0) {
        if (opt_float(val, 0.0, 1.0, &p->momentum) != 0)
            return dt_err("%s:%d: [batchnorm] momentum = '%s': expected a number in [0, 1]", src,
                          line, val);
        p->set_momentum = 1;
    } else if (strcmp(key, "affine") == 0) {
        int a;
        if (opt_int(val, 0, 1, &a) != 0)
            return dt_err("%s:%d: [batchnorm] affine = '%s': expected 0 or 1", src, line, val);
        p->no_affine = !a;
    } else {
        return dt_err("%s:%d: [batchnorm] unknown key '%s': expected name, input, eps, momentum, "
                      "affine",
                      src, line, key);
    }
    return DT_OK;
}

static int bn_setup(dt_layer *l, dt_net *net)
{
    bn_priv *p = l->priv;
    if (!p->set_eps)
        p->eps = 1e-5f;
    if (!p->set_momentum)
        p->momentum = 0.1f;
    int C = l->in_c;
    if (!p->no_affine) {
        dt_net_add_param(net, l, "weight", 1, &C, DT_PARAM_NO_DECAY);
        dt_net_add_param(net, l, "bias", 1, &C, DT_PARAM_BIAS);
    }
    int one = 1;
    dt_net_add_buffer(net, l, "running_mean", 1, &C);
    dt_net_add_buffer(net, l, "running_var", 1, &C);
    /* an int64 tensor in torch; a float counts exactly to 2^24 batches, ample for a run */
    dt_net_add_buffer(net, l, "num_batches_tracked", 1, &one);
    p->save_mean = dt_xcalloc((size_t)C, sizeof *p->save_mean);
    p->save_invstd = dt_xcalloc((size_t)C, sizeof *p->save_invstd);
    p->sums = dt_xcalloc(4 * (size_t)C, sizeof *p->sums);
    p->acc = dt_xcalloc(2 * (size_t)C + 1, sizeof *p->acc);
    p->scratch = dt_xcalloc(2 * (size_t)C, sizeof *p->scratch);
    return DT_OK;
}

/* torch.nn.BatchNorm reset_parameters: weight 1, bias 0, running_mean 0, running_var 1; no RNG. */
static void bn_init(dt_layer *l, dt_net *net, dt_mt19937 *g)
{
    (void)g;
    bn_priv *p = l->priv;
    int C = l->in_c;
    if (!p->no_affine) {
        float *w = dt_layer_param(net, l, 0), *b = dt_layer_param(net, l, 1);
        for (int c = 0; c < C; c++) {
            w[c] = 1.0f;
            b[c] = 0.0f;
        }
    }
    float *rm = dt_layer_buffer(net, l, 0), *rv = dt_layer_buffer(net, l, 1);
    for (int c = 0; c < C; c++) {
        rm[c] = 0.0f;
        rv[c] = 1.0f;
    }
    dt_layer_buffer(net, l, 2)[0] = 0.0f;
}

static void bn_forward(dt_layer *l, dt_net *net, int N, int train)
{
    bn_priv *p = l->priv;
    int C = l->in_c, HW = l->in_h * l->in_w;
    const float *w = p->no_affine ? NULL : dt_layer_param(net, l, 0);
    const float *b = p->no_affine ? NULL : dt_layer_param(net, l, 1);
    float *rm = dt_layer_buffer(net, l, 0), *rv = dt_layer_buffer(net, l, 1);
    if (!train) {
        dt_bn_forward_eval(l->out, dt_layer_in(net, l), rm, rv, w, b, N, C, HW, p->eps);
        return;
    }
    double *sum = p->sums, *sumsq = p->sums + C;
    dt_bn_stats(sum, sumsq, dt_layer_in(net, l), N, C, HW);
    double count = (double)N * HW;
    /* SyncBatchNorm: statistics of the global batch. A refresh pass always synchronizes, so the
     * refreshed statistics do not depend on the number of ranks. */
    if (net->sync_bn || net->bn_refresh) {
        MPI_Allreduce(MPI_IN_PLACE, p->sums, 2 * C, MPI_DOUBLE, MPI_SUM, net->comm);
        MPI_Allreduce(MPI_IN_PLACE, &count, 1, MPI_DOUBLE, MPI_SUM, net->comm);
    }
    p->count = count;
    if (net->bn_refresh) {
        /* normalize with the batch statistics, accumulate them; running stats untouched */
        for (int c = 0; c < 2 * C; c++)
            p->acc[c] += p->sums[c];
        p->acc[2 * C] += count;
        float *rm2 = p->scratch, *rv2 = p->scratch + C;
        for (int c = 0; c < C; c++) {
            rm2[c] = rm[c];
            rv2[c] = rv[c];
        }
        dt_bn_forward_train(l->out, p->save_mean, p->save_invstd, rm2, rv2, dt_layer_in(net, l),
                            w, b, sum, sumsq, count, N, C, HW, p->eps, 0.0f);
        return;
    }
    dt_bn_forward_train(l->out, p->save_mean, p->save_invstd, rm, rv, dt_layer_in(net, l), w, b,
                        sum, sumsq, count, N, C, HW, p->eps, p->momentum);
    dt_layer_buffer(net, l, 2)[0] += 1.0f;
}

static void bn_backward(dt_layer *l, dt_net *net, int N)
{
    bn_priv *p = l->priv;
    int C = l->in_c, HW = l->in_h * l->in_w;
    double count = p->count;
    double *lsum = p->sums, *lsumx = p->sums + C;         /* reuse: forward sums are spent */
    double *gsum = p->sums + 2 * C, *gsumx = p->sums + 3 * C;
    dt_bn_backward_reduce(lsum, lsumx, l->dout, dt_layer_in(net, l), p->save_mean, p->save_invstd,
                          N, C, HW);
    memcpy(gsum, lsum, (size_t)C * sizeof *gsum);
    memcpy(gsumx, lsumx, (size_t)C * sizeof *gsumx);
    if (net->sync_bn)
        MPI_Allreduce(MPI_IN_PLACE, gsum, 2 * C, MPI_DOUBLE, MPI_SUM, net->comm);
    dt_bn_backward(dt_layer_din(net, l), p->no_affine ? NULL : dt_layer_grad(net, l, 0),
                   p->no_affine ? NULL : dt_layer_grad(net, l, 1), l->dout, dt_layer_in(net, l),
                   p->save_mean, p->save_invstd, p->no_affine ? NULL : dt_layer_param(net, l, 0),
                   lsum, lsumx, gsum, gsumx, count, N, C, HW, l->accum);
}

/* torch.optim.swa_utils.update_bn: reset, then a pass in training mode with a cumulative average
 * (momentum None). Here the average is weighted by sample count over all ranks, which is the
 * mean and (unbiased) variance of the layer's inputs over the whole pass. */
static void bn_refresh(dt_layer *l, dt_net *net, int phase)
{
    bn_priv *p = l->priv;
    int C = l->in_c;
    if (phase == 0) {
        memset(p->acc, 0, (2 * (size_t)C + 1) * sizeof *p->acc);
        return;
    }
    double M = p->acc[2 * C];
    if (M <= 0.0)
        return;
    float *rm = dt_layer_buffer(net, l, 0), *rv = dt_layer_buffer(net, l, 1);
    for (int c = 0; c < C; c++) {
        double mean = p->acc[c] / M, var = p->acc[C + c] / M - mean * mean;
        if (var < 0.0)
            var = 0.0;
        rm[c] = (float)mean;
        rv[c] = (float)(M > 1.0 ? var * M / (M - 1.0) : var);
    }
}

static void bn_free(dt_layer *l)
{
    bn_priv *p = l->priv;
    free(p->acc);
    free(p->scratch);
    free(p->save_mean);
    free(p->save_invstd);
    free(p->sums);
}

const dt_layer_ops dt_batchnorm_ops = {
    .kind = "batchnorm",
    .priv_size = sizeof(bn_priv),
    .option = bn_option,
    .setup = bn_setup,
    .init = bn_init,
    .forward = bn_forward,
    .backward = bn_backward,
    .free = bn_free,
    .refresh = bn_refresh,
};

/* ---- dropout: torch.nn.Dropout(p), inverted; masks from (seed, rank, step, layer) ---- */

typedef struct {
    float p;
    int set;
    uint8_t *mask; /* (max_batch, size) */
    int used;      /* the last forward was a training one (mask valid) */
} dropout_priv;

static int dropout_option(dt_layer *l, const char *key, const char *val, const char *src, int line)
{
    dropout_priv *p = l->priv;
    if (strcmp(key, "p") != 0)
        return dt_err("%s:%d: [dropout] unknown key '%s': expected name, input, p", src, line, key);
    if (opt_float(val, 0.0, 0.999999, &p->p) != 0)
        return dt_err("%s:%d: [dropout] p = '%s': expected a number in [0, 1)", src, line, val);
    p->set = 1;
    return DT_OK;
}

static int dropout_setup(dt_layer *l, dt_net *net)
{
    dropout_priv *p = l->priv;
    if (!p->set)
        p->p = 0.5f;
    p->mask = dt_xmalloc((size_t)net->max_batch * (size_t)l->c * (size_t)l->h * (size_t)l->w, 1);
    return DT_OK;
}

static void dropout_forward(dt_layer *l, dt_net *net, int N, int train)
{
    dropout_priv *p = l->priv;
    long n = (long)N * (long)l->out_size;
    const float *in = dt_layer_in(net, l);
    if (!train || p->p == 0.0f) {
        if (l->out != in)
            memcpy(l->out, in, (size_t)n * sizeof *in);
        p->used = 0;
        return;
    }
    uint64_t seed =
        dt_rng_key(net->seed, (uint64_t)net->rank, (uint64_t)net->step, (uint64_t)l->index);
    dt_dropout_forward(l->out, p->mask, in, n, p->p, seed);
    p->used = 1;
}

static void dropout_backward(dt_layer *l, dt_net *net, int N)
{
    dropout_priv *p = l->priv;
    float *din = dt_layer_din(net, l);
    long n = (long)N * (long)l->out_size;
    if (!din)
        return;
    if (p->used) {
        dt_dropout_backward(din, l->dout, p->mask, n, p->p, l->accum);
    } else if (l->accum) {
        for (long i = 0; i < n; i++)
            din[i] += l->dout[i];
    } else {
        memcpy(din, l->dout, (size_t)n * sizeof *din);
    }
}

static void dropout_free(dt_layer *l)
{
    dropout_priv *p = l->priv;
    free(p->mask);
}

const dt_layer_ops dt_dropout_ops = {
    .kind = "dropout",
    .priv_size = sizeof(dropout_priv),
    .option = dropout_option,
    .setup = dropout_setup,
    .forward = dropout_forward,
    .backward = dropout_backward,
    .free = dropout_free,
};

/* ---- add: residual connection, out = input + from ---- */

static int add_setup(dt_layer *l, dt_net *net)
{
    int c2 = net->in_c, h2 = net->in_h, w2 = net->in_w;
    if (l->input2 >= 0) {
        const dt_layer *o = &net->layers[l->input2];
        c2 = o->c;
        h2 = o->h;
        w2 = o->w;
    }
    if (c2 != l->in_c || h2 != l->in_h || w2 != l->in_w)
        return dt_err("%s:%d: [add] inputs differ in shape: %dx%dx%d and %dx%dx%d (a projection "
                      "shortcut needs a 1x1 [conv] + [batchnorm] on the from path)",
                      l->src, l->line, l->in_c, l->in_h, l->in_w, c2, h2, w2);
    return DT_OK;
}

static void add_forward(dt_layer *l, dt_net *net, int N, int train)
{
    (void)train;
    const float *a = dt_layer_in(net, l), *b = dt_layer_in2(net, l);
    long n = (long)N * (long)l->out_size;
    for (long i = 0; i < n; i++)
        l->out[i] = a[i] + b[i];
}

static void pass_grad(float *din, const float *dout, long n, int accum)
{
    if (!din)
        return;
    if (accum)
        for (long i = 0; i < n; i++)
            din[i] += dout[i];
    else
        memcpy(din, dout, (size_t)n * sizeof *din);
}

static void add_backward(dt_layer *l, dt_net *net, int N)
{
    long n = (long)N * (long)l->out_size;
    pass_grad(dt_layer_din2(net, l), l->dout, n, l->accum2);
    pass_grad(dt_layer_din(net, l), l->dout, n, l->accum);
}

const dt_layer_ops dt_add_ops = {
    .kind = "add",
    .setup = add_setup,
    .forward = add_forward,
    .backward = add_backward,
    .two_inputs = 1,
};

/* ---- scale: out = factor * input (the 0.125 logit scale of resnet9) ---- */

typedef struct {
    float factor;
    int set;
} scale_priv;

static int scale_option(dt_layer *l, const char *key, const char *val, const char *src, int line)
{
    scale_priv *p = l->priv;
    if (strcmp(key, "factor") != 0)
        return dt_err("%s:%d: [scale] unknown key '%s': expected name, input, factor", src, line,
                      key);
    if (opt_float(val, -1e6, 1e6, &p->factor) != 0)
        return dt_err("%s:%d: [scale] factor = '%s': expected a number", src, line, val);
    p->set = 1;
    return DT_OK;
}

static int scale_setup(dt_layer *l, dt_net *net)
{
    (void)net;
    scale_priv *p = l->priv;
    if (!p->set)
        return dt_err("%s:%d: [scale] needs factor = X", l->src, l->line);
    return DT_OK;
}

static void scale_forward(dt_layer *l, dt_net *net, int N, int train)
{
    (void)train;
    scale_priv *p = l->priv;
    const float *in = dt_layer_in(net, l);
    long n = (long)N * (long)l->out_size;
    for (long i = 0; i < n; i++)
        l->out[i] = p->factor * in[i];
}

static void scale_backward(dt_layer *l, dt_net *net, int N)
{
    scale_priv *p = l->priv;
    float *din = dt_layer_din(net, l);
    long n = (long)N * (long)l->out_size;
    if (!din)
        return;
    if (l->accum)
        for (long i = 0; i < n; i++)
            din[i] += p->factor * l->dout[i];
    else
        for (long i = 0; i < n; i++)
            din[i] = p->factor * l->dout[i];
}

const dt_layer_ops dt_scale_ops = {
    .kind = "scale",
    .priv_size = sizeof(scale_priv),
    .option = scale_option,
    .setup = scale_setup,
    .forward = scale_forward,
    .backward = scale_backward,
};

/* ---- fusion: [conv] -> [relu] -> [maxpool] size 2 as one kernel ---- */

static int fusion_on = 1;

int dt_layers_set_fusion(int on)
{
    const int old = fusion_on;
    fusion_on = on != 0;
    return old;
}

void dt_layers_fuse(dt_net *net)
{
    if (!fusion_on)
        return;
    /* consumers of each layer's output (a fused tensor must have exactly one) */
    int *uses = dt_xcalloc((size_t)net->nlayers + 1, sizeof *uses);
    for (int i = 0; i < net->nlayers; i++) {
        const dt_layer *l = &net->layers[i];
        uses[l->input + 1]++;
        if (l->input2 >= -1)
            uses[l->input2 + 1]++;
    }
    for (int i = 0; i + 2 < net->nlayers; i++) {
        dt_layer *cv = &net->layers[i], *r = &net->layers[i + 1], *mp = &net->layers[i + 2];
        if (cv->ops != &dt_conv_ops || strcmp(r->ops->kind, "relu") != 0 ||
            mp->ops != &dt_maxpool_ops || r->input != i || mp->input != i + 1 ||
            uses[i + 1] != 1 || uses[i + 2] != 1)
            continue;
        conv_priv *p = cv->priv;
        const pool_priv *q = mp->priv;
        if (q->k != 2 || q->stride != 2 || q->pad != 0 || cv->fused ||
            !dt_conv2d_relu_pool2_ok(net->max_batch, cv->in_c, cv->in_h, cv->in_w, p->out, p->k,
                                     p->k, p->stride, p->pad))
            continue;
        p->pool = i + 2;
        p->code = dt_xmalloc(dt_conv2d_relu_pool2_code_size(net->max_batch, p->out, cv->h, cv->w),
                             sizeof *p->code);
        r->fused = mp->fused = 1;
    }
    free(uses);
}
