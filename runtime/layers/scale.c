/*
 * layers/scale.c - the [scale] layer kind (scale.h).
 */
#include "scale.h"

#include <stddef.h>

#include "common.h"

/* ---- scale: out = factor * input (the 0.125 logit scale of resnet9) ---- */

typedef struct {
    float factor;
    int set;
} scale_priv;

static const dt_layer_opt scale_opts[] = {
    {"factor", DT_OPT_FLOAT, -1e6, 1e6, offsetof(scale_priv, factor), offsetof(scale_priv, set),
     "a number"},
    {NULL, 0, 0, 0, 0, 0, NULL},
};

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
    .opts = scale_opts,
    .setup = scale_setup,
    .forward = scale_forward,
    .backward = scale_backward,
    .bwd_reads = DT_BWD_NONE, /* runtime/net_act.h */
};
