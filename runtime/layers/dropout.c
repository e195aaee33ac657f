/*
 * layers/dropout.c - the [dropout] layer kind (dropout.h); the math is dt_dropout_*
 * (layer_kernels.h).
 */
#include "dropout.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kernels/layer_kernels.h"
#include "rng.h"

/* ---- dropout: torch.nn.Dropout(p), inverted; masks from (seed, rank, step, layer) ---- */

typedef struct {
    float p;
    int set;
    uint8_t *mask; /* (max_batch, size) */
    int used;      /* the last forward was a training one (mask valid) */
} dropout_priv;

static const dt_layer_opt dropout_opts[] = {
    {"p", DT_OPT_FLOAT, 0.0, 0.999999, offsetof(dropout_priv, p), offsetof(dropout_priv, set),
     "a number in [0, 1)"},
    {NULL, 0, 0, 0, 0, 0, NULL},
};

static int dropout_setup(dt_layer *l, dt_net *net)
{
    dropout_priv *p = l->priv;
    if (!p->set)
        p->p = 0.5f;
    p->mask = dt_xcalloc((size_t)net->max_batch * (size_t)l->c * (size_t)l->h * (size_t)l->w, 1);
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
    const dt_step_ctx *c = net->ctx;
    uint64_t seed = dt_rng_key(c->seed, (uint64_t)c->rank, (uint64_t)c->step, (uint64_t)l->index);
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
    .opts = dropout_opts,
    .setup = dropout_setup,
    .forward = dropout_forward,
    .backward = dropout_backward,
    .free = dropout_free,
    .bwd_reads = DT_BWD_NONE, /* runtime/net_act.h: its mask only */
};
