/*
 * layers/pool.c - the pooling layer kinds (pool.h): maxpool, avgpool, gap; the math is in
 * layer_kernels.h. The maxpool argmax is allocated once at build time.
 */
#include "pool.h"

#include <stddef.h>
#include <stdlib.h>

#include "common.h"
#include "kernels/layer_kernels.h"

/* ---- maxpool / avgpool: torch.nn.MaxPool2d / AvgPool2d(size, stride = size, padding) ---- */

typedef struct {
    int k, stride, pad;
    int32_t *argmax; /* (max_batch, out_size), maxpool only */
} pool_priv;

static const dt_layer_opt pool_opts[] = {
    {"size", DT_OPT_INT, 1, 64, offsetof(pool_priv, k), 0, NULL},
    {"stride", DT_OPT_INT, 1, 64, offsetof(pool_priv, stride), 0, NULL},
    {"pad", DT_OPT_INT, 0, 64, offsetof(pool_priv, pad), 0, NULL},
    {NULL, 0, 0, 0, 0, 0, NULL},
};

void dt_pool_window(const dt_layer *l, int *k, int *stride, int *pad)
{
    const pool_priv *p = l->priv;
    *k = p->k;
    *stride = p->stride;
    *pad = p->pad;
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
    l->h = dt_conv_out_size(l->in_h, p->k, p->stride, p->pad);
    l->w = dt_conv_out_size(l->in_w, p->k, p->stride, p->pad);
    if (l->h < 1 || l->w < 1)
        return dt_err("%s:%d: [%s] size %d does not fit the %dx%d input", l->src, l->line,
                      l->ops->kind, p->k, l->in_h, l->in_w);
    if (dt_net_check_sizes(net, l, 0, (size_t)l->c, (size_t)l->h, (size_t)l->w) != 0)
        return DT_ERR;
    if (l->ops == &dt_maxpool_ops)
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
    .opts = pool_opts,
    .setup = pool_setup,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
    .free = pool_free,
    .bwd_reads = DT_BWD_NONE, /* runtime/net_act.h: its argmax only */
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
    .opts = pool_opts,
    .setup = pool_setup,
    .forward = avgpool_forward,
    .backward = avgpool_backward,
    .bwd_reads = DT_BWD_NONE, /* runtime/net_act.h */
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
    dt_gap_forward(l->out, dt_layer_in(net, l), N, l->in_c, l->in_h * l->in_w,
                   dt_layer_in_lanes(net, l));
}

static void gap_backward(dt_layer *l, dt_net *net, int N)
{
    float *din = dt_layer_din(net, l);
    if (din)
        dt_gap_backward(din, l->dout, N, l->in_c, l->in_h * l->in_w, l->accum,
                        dt_layer_in_lanes(net, l));
}

/* reads its input in the lane layout; its output (N, C) */
static int gap_lanes(const dt_layer *l, const dt_net *net, int N)
{
    (void)l, (void)net, (void)N;
    return DT_LANES_READ;
}

const dt_layer_ops dt_gap_ops = {
    .kind = "gap",
    .setup = gap_setup,
    .forward = gap_forward,
    .backward = gap_backward,
    .bwd_reads = DT_BWD_NONE, /* runtime/net_act.h */
    .lanes = gap_lanes,
};
