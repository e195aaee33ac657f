/*
 * layers/batchnorm.c - the [batchnorm] layer kind (batchnorm.h); the math is dt_bn_*
 * (layer_kernels.h).
 * The statistics of SyncBatchNorm and of a refresh pass are summed over the processes by the
 * step context's reduction (dt_layer_allreduce_sum): no MPI here.
 */
#include "batchnorm.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kernels/kernels.h"
#include "kernels/layer_kernels.h"
#include "lowp.h"
#include "net_act.h"

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
    int relu; /* > 0: the [relu] layer this BatchNorm's kernels do too (fused, dt_bn_fuse_relu) */
    int add;  /* > 0: the residual [add] before that [relu] (dt_bn_fuse_add_relu) */
} bn_priv;

static const dt_layer_opt bn_opts[] = {
    {"eps", DT_OPT_FLOAT, 1e-12, 1.0, offsetof(bn_priv, eps), offsetof(bn_priv, set_eps),
     "a number in [1e-12, 1]"},
    {"momentum", DT_OPT_FLOAT, 0.0, 1.0, offsetof(bn_priv, momentum),
     offsetof(bn_priv, set_momentum), "a number in [0, 1]"},
    {"affine", DT_OPT_NOT, 0, 1, offsetof(bn_priv, no_affine), 0, NULL},
    {NULL, 0, 0, 0, 0, 0, NULL},
};

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
    dt_bn_reserve(net->max_batch > 0 ? net->max_batch : 1, C);
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

/* a fused add's other input (the one that is not this BatchNorm), its gradient and whether the
 * add's backward accumulates into it */
static int other_input(const dt_layer *l, const dt_net *net)
{
    const dt_layer *ad = &net->layers[((const bn_priv *)l->priv)->add];
    return ad->input == l->index ? ad->input2 : ad->input;
}
static const float *add_other(const dt_layer *l, const dt_net *net)
{
    const dt_layer *ad = &net->layers[((const bn_priv *)l->priv)->add];
    return ad->input == l->index ? dt_layer_in2(net, ad) : dt_layer_in(net, ad);
}
static float *add_other_grad(const dt_layer *l, const dt_net *net, int *accum)
{
    const dt_layer *ad = &net->layers[((const bn_priv *)l->priv)->add];
    const int second = ad->input == l->index;
    *accum = second ? ad->accum2 : ad->accum;
    return second ? dt_layer_din2(net, ad) : dt_layer_din(net, ad);
}

/* The fused add + ReLU's forward where one pass cannot give the separate layers' bits: in fp16,
 * and in bf16 without bf16 activations, net.c would round each layer's input to the format
 * (BatchNorm's output, then the sum): out holds BatchNorm's output (flags without the add); here
 * the rest, as the separate layers and net.c would do it. */
static void add_relu_passes(const dt_layer *l, dt_net *net, float *out, long n)
{
    /* the add's inputs: this BatchNorm's output and the other, rounded in place (its memory is
     * the add's input, as net.c rounds it for the add) */
    float *other = (float *)add_other(l, net);
    dt_round_to(net->lowp, out, (size_t)n);
    dt_round_to(net->lowp, other, (size_t)n);
    dt_add_forward(out, out, other, n, 0);
    dt_round_to(net->lowp, out, (size_t)n);
    dt_relu_forward(out, out, n);
}

static void bn_forward(dt_layer *l, dt_net *net, int N, int train)
{
    bn_priv *p = l->priv;
    int C = l->in_c, HW = l->in_h * l->in_w;
    const int L = dt_layer_lanes(net, l); /* its input's, its output's and a fused ReLU's */
    /* fused: max(BatchNorm, 0) straight into the ReLU's output */
    float *out = p->relu ? net->layers[p->relu].out : l->out;
    /* bf16 activations: the output rounded as it is written */
    int flags =
        (p->relu > 0 ? DT_BN_RELU : 0) | (dt_layer_bf16_rounds_out(l, net) ? DT_BN_ROUND : 0);
    /* fused with the residual add and its ReLU: one pass where that gives their bits */
    const int passes = p->add > 0 && net->lowp && !net->act;
    /* the add's other input: its bf16 copy where bf16 activations keep one (bn_fwd_copy) */
    const uint16_t *o16 = p->add > 0 ? dt_net_act_copy(net, other_input(l, net)) : NULL;
    const void *res = NULL;
    if (p->add > 0 && !passes)
        res = o16 ? (const void *)o16 : (const void *)add_other(l, net);
    if (p->add > 0)
        flags = passes ? 0 : DT_BN_ADD | (flags & DT_BN_ROUND) | (o16 ? DT_BN_RES16 : 0);
    const long n = (long)N * (long)l->out_size;
    const float *w = p->no_affine ? NULL : dt_layer_param(net, l, 0);
    const float *b = p->no_affine ? NULL : dt_layer_param(net, l, 1);
    float *rm = dt_layer_buffer(net, l, 0), *rv = dt_layer_buffer(net, l, 1);
    if (!train) {
        dt_bn_forward_eval(out, dt_layer_in(net, l), rm, rv, w, b, N, C, HW, p->eps, flags, L, res);
        if (passes)
            add_relu_passes(l, net, out, n);
        return;
    }
    double *sum = p->sums, *sumsq = p->sums + C;
    dt_bn_stats(sum, sumsq, dt_layer_in(net, l), N, C, HW, L);
    double count = (double)N * HW;
    /* SyncBatchNorm: statistics of the global batch. A refresh pass always synchronizes, so the
     * refreshed statistics do not depend on the number of ranks. */
    if (net->ctx->sync_bn || net->ctx->bn_refresh) {
        dt_layer_allreduce_sum(net, p->sums, 2 * C);
        dt_layer_allreduce_sum(net, &count, 1);
    }
    p->count = count;
    if (net->ctx->bn_refresh) {
        /* normalize with the batch statistics, accumulate them; running stats untouched */
        for (int c = 0; c < 2 * C; c++)
            p->acc[c] += p->sums[c];
        p->acc[2 * C] += count;
        float *rm2 = p->scratch, *rv2 = p->scratch + C;
        for (int c = 0; c < C; c++) {
            rm2[c] = rm[c];
            rv2[c] = rv[c];
        }
        dt_bn_forward_train(out, p->save_mean, p->save_invstd, rm2, rv2, dt_layer_in(net, l), w, b,
                            sum, sumsq, count, N, C, HW, p->eps, 0.0f, flags, L, res);
        if (passes)
            add_relu_passes(l, net, out, n);
        return;
    }
    dt_bn_forward_train(out, p->save_mean, p->save_invstd, rm, rv, dt_layer_in(net, l), w, b, sum,
                        sumsq, count, N, C, HW, p->eps, p->momentum, flags, L, res);
    if (passes)
        add_relu_passes(l, net, out, n);
    dt_layer_buffer(net, l, 2)[0] += 1.0f;
}

/* 1: bf16 activations give the backward its input and a fused ReLU's output as bf16 copies
 * (dt_net_act_copy, into *x16 and *ro16: NULL without the ReLU), and it reads those */
static int from_copies(const dt_layer *l, const dt_net *net, const uint16_t **x16,
                       const uint16_t **ro16)
{
    const bn_priv *p = l->priv;
    *x16 = dt_net_act_copy(net, l->input);
    *ro16 = p->relu ? dt_net_act_copy(net, p->relu) : NULL;
    return *x16 && (!p->relu || *ro16);
}

static void bn_backward(dt_layer *l, dt_net *net, int N)
{
    bn_priv *p = l->priv;
    int C = l->in_c, HW = l->in_h * l->in_w;
    const int L = dt_layer_lanes(net, l);
    double count = p->count;
    double *lsum = p->sums, *lsumx = p->sums + C; /* reuse: forward sums are spent */
    double *gsum = p->sums + 2 * C, *gsumx = p->sums + 3 * C;
    /* fused: the ReLU's output gradient, masked by its output inside the kernels */
    const float *dout = p->relu ? net->layers[p->relu].dout : l->dout;
    const float *ro = p->relu ? net->layers[p->relu].out : NULL;
    const int rnd = dt_layer_bf16_rounds_dout(l, net, N);
    const uint16_t *x16, *ro16;
    const int h = from_copies(l, net, &x16, &ro16);
    if (h)
        dt_bn_backward_reduce_h(lsum, lsumx, dout, x16, p->save_mean, p->save_invstd, N, C, HW,
                                ro16, rnd, L);
    else
        dt_bn_backward_reduce(lsum, lsumx, dout, dt_layer_in(net, l), p->save_mean, p->save_invstd,
                              N, C, HW, ro, rnd, L);
    memcpy(gsum, lsum, (size_t)C * sizeof *gsum);
    memcpy(gsumx, lsumx, (size_t)C * sizeof *gsumx);
    if (net->ctx->sync_bn)
        dt_layer_allreduce_sum(net, gsum, 2 * C);
    float *dw = p->no_affine ? NULL : dt_layer_grad(net, l, 0);
    float *db = p->no_affine ? NULL : dt_layer_grad(net, l, 1);
    const float *w = p->no_affine ? NULL : dt_layer_param(net, l, 0);
    /* a fused residual add's other input gets the gradient the add passes on: the ReLU's,
     * masked (the add's copy of it adds nothing) */
    int accum2 = 0;
    float *din2 = p->add > 0 ? add_other_grad(l, net, &accum2) : NULL;
    if (h)
        dt_bn_backward_h(dt_layer_din(net, l), dw, db, dout, x16, p->save_mean, p->save_invstd, w,
                         lsum, lsumx, gsum, gsumx, count, N, C, HW, l->accum, ro16, rnd, L, din2,
                         accum2);
    else
        dt_bn_backward(dt_layer_din(net, l), dw, db, dout, dt_layer_in(net, l), p->save_mean,
                       p->save_invstd, w, lsum, lsumx, gsum, gsumx, count, N, C, HW, l->accum, ro,
                       rnd, L, din2, accum2);
}

static int bn_bwd_skips(const dt_layer *l, const dt_net *net, int N, int k)
{
    (void)N;
    const uint16_t *x16, *ro16, *h = dt_net_act_copy(net, k);
    return from_copies(l, net, &x16, &ro16) && h && (h == x16 || h == ro16);
}

/* a fused add's other input: from its bf16 copy (net_act.h; no float32 slot held for it from
 * the block's start to its end) */
static int bn_fwd_copy(const dt_layer *l, const dt_net *net, int k)
{
    const bn_priv *p = l->priv;
    return p->add > 0 && k == other_input(l, net);
}

/* the affine pass is elementwise (isa/elem.c bn_affine, after the statistics' pass): its output,
 * a fused ReLU's or add's, may overwrite its input */
static int bn_fwd_in_place(const dt_layer *l, const dt_net *net)
{
    (void)l, (void)net;
    return 1;
}

int dt_bn_fuse_relu(dt_layer *bn, int relu)
{
    bn_priv *p = bn->priv;
    if (bn->fused || p->relu)
        return 0;
    p->relu = relu;
    return 1;
}

int dt_bn_fuse_add_relu(dt_layer *bn, int add, int relu)
{
    bn_priv *p = bn->priv;
    if (bn->fused || p->relu)
        return 0;
    p->add = add;
    p->relu = relu;
    return 1;
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
    .opts = bn_opts,
    .setup = bn_setup,
    .init = bn_init,
    .forward = bn_forward,
    .backward = bn_backward,
    /* bf16: the kernels round the gradient they read (a fused ReLU's too) and the output they
     * write: no pass of their own in net.c, net_act.c */
    .rounds_dout = dt_layer_bf16_rounds_dout,
    .rounds_out = dt_layer_bf16_rounds_out,
    .free = bn_free,
    .refresh = bn_refresh,
    /* runtime/net_act.h: its input, and a fused ReLU's output (not a fused add's other input) */
    .bwd_reads = DT_BWD_IN | DT_BWD_FUSED_OUT,
    .bwd_skips = bn_bwd_skips,
    .fwd_copy = bn_fwd_copy,
    .fwd_in_place = bn_fwd_in_place,
    .lanes = dt_layer_lanes_keep, /* per channel: either layout (layer_kernels.h) */
};
