/*
 * layers/conv.c - the [conv] layer kind (conv.h), and its side of the conv -> relu -> maxpool
 * fusion (the pass itself is the registry's); the math is dt_conv2d_* (layer_kernels.h), or, in
 * bf16 training (net->lowp == DT_BF16) where the table in use has them and they take the shape,
 * the bf16 batch-lane kernels dt_bf16conv_* (kernels/conv_bf16.h: vdpbf16ps or its emulation),
 * fused the same way. Forward and backward of a step choose alike (same precision, same shape).
 * In 16-bit training the fused pool compares the conv's outputs rounded to that format, as the
 * separate [relu] and [maxpool] would (their inputs are rounded), so fusion changes no bits.
 */
#include "conv.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "kernels/conv_bf16.h"
#include "kernels/conv_dnnl.h"
#include "kernels/layer_kernels.h"
#include "lowp.h"
#include "net_act.h"

/* ---- conv: torch.nn.Conv2d(C, out, kernel, stride, padding, bias) ---- */

typedef struct {
    int out, k, stride, pad;
    int no_bias, set;
    int pool;      /* > 0: the [maxpool] layer whose [relu] + pooling this conv does (fused) */
    int32_t *code; /* fused: where each pooled gradient goes (dt_conv2d_relu_pool2_forward) */
    /* oneDNN (kernels/conv_dnnl.h), per precision (0: fp32 and fp16, 1: bf16), made at the first
     * step that wants it; dnnl_none[b]: oneDNN has no kernel for the shape (dtrain's run) */
    dt_dnnl_conv *dnnl[2];
    int dnnl_none[2];
} conv_priv;

static const dt_layer_opt conv_opts[] = {
    {"out", DT_OPT_INT, 1, 1 << 20, offsetof(conv_priv, out), offsetof(conv_priv, set), NULL},
    {"kernel", DT_OPT_INT, 1, 64, offsetof(conv_priv, k), 0, NULL},
    {"stride", DT_OPT_INT, 1, 64, offsetof(conv_priv, stride), 0, NULL},
    {"pad", DT_OPT_INT, 0, 64, offsetof(conv_priv, pad), 0, NULL},
    {"bias", DT_OPT_NOT, 0, 1, offsetof(conv_priv, no_bias), 0, NULL},
    {NULL, 0, 0, 0, 0, 0, NULL},
};

static int conv_setup(dt_layer *l, dt_net *net)
{
    conv_priv *p = l->priv;
    if (!p->set)
        return dt_err("%s:%d: [conv] needs out = N", l->src, l->line);
    if (!p->k)
        p->k = 3;
    if (!p->stride)
        p->stride = 1;
    int oh = dt_conv_out_size(l->in_h, p->k, p->stride, p->pad);
    int ow = dt_conv_out_size(l->in_w, p->k, p->stride, p->pad);
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
    /* the precision is set after the build: room for the bf16 kernels too */
    l->ws_floats = dt_conv2d_ws_floats(net->max_batch, l->in_c, l->in_h, l->in_w, p->out, p->k,
                                       p->k, p->stride, p->pad);
    const size_t bws = dt_bf16conv_ws_floats(net->max_batch, l->in_c, l->in_h, l->in_w, p->out,
                                             p->k, p->k, p->stride, p->pad);
    l->ws_floats = bws > l->ws_floats ? bws : l->ws_floats;
    return DT_OK;
}

/* torch.nn.Conv2d.reset_parameters (torch 1.13): Kaiming uniform over fan_in = C*KH*KW, as
 * linear. */
static void conv_init(dt_layer *l, dt_net *net, dt_mt19937 *g)
{
    conv_priv *p = l->priv;
    dt_layer_kaiming_init(l, net, g, (double)l->in_c * p->k * p->k);
}

/* 1: dtrain's kernels for bf16 (bf16) or fp32 take the shape at batch N */
static int own_ok(const dt_layer *l, int bf16, int N)
{
    const conv_priv *p = l->priv;
    return !bf16 ||
           dt_bf16conv_ok(N, l->in_c, l->in_h, l->in_w, p->out, p->k, p->k, p->stride, p->pad);
}

/* the oneDNN state this step runs on (kernels.conv, conv_dnnl.h), or NULL: dtrain's kernels. The
 * fused conv -> ReLU -> pool stays on dtrain's fused kernels. */
static dt_dnnl_conv *use_dnnl(dt_layer *l, const dt_net *net, int N)
{
    conv_priv *p = l->priv;
    const int b = net->lowp == DT_BF16;
    if (p->pool || p->dnnl_none[b] || !dt_dnnl_conv_wanted(l->in_c, p->k, p->k, b, own_ok(l, b, N)))
        return NULL;
    if (!p->dnnl[b]) {
        p->dnnl[b] = dt_dnnl_conv_new(l->in_c, l->in_h, l->in_w, p->out, p->k, p->k, p->stride,
                                      p->pad, !p->no_bias, b);
        p->dnnl_none[b] = !p->dnnl[b];
    }
    return p->dnnl[b];
}

/* 1: this step runs the bf16 kernels */
static int use_bf16(const dt_layer *l, const dt_net *net, int N)
{
    const conv_priv *p = l->priv;
    return net->lowp == DT_BF16 &&
           dt_bf16conv_ok(N, l->in_c, l->in_h, l->in_w, p->out, p->k, p->k, p->stride, p->pad);
}

/* the bf16 kernels round the gradient they read as they transpose it (no pass of its own) */
static int conv_rounds_dout(const dt_layer *l, const dt_net *net, int N)
{
    /* oneDNN's bf16 primitives read it through a float32 -> bf16 reorder (nearest even); asking
     * makes the layer's oneDNN state (l is this layer's own, only its priv changes) */
    if (net->lowp == DT_BF16 && use_dnnl((dt_layer *)l, net, N))
        return 1;
    return use_bf16(l, net, N);
}

/* the lane layout of this step (layer.h) as the bf16 kernels' io */
static int lanes_io(const dt_layer *l, const dt_net *net)
{
    return (dt_layer_in_lanes(net, l) ? DT_BC_IN_LANES : 0) |
           (dt_layer_lanes(net, l) ? DT_BC_OUT_LANES : 0);
}

/* the bf16 kernels (not with the fused pool, not oneDNN's) read and write the lane layout */
static int conv_lanes(const dt_layer *l, const dt_net *net, int N)
{
    const conv_priv *p = l->priv;
    if (p->pool || !use_bf16(l, net, N) || use_dnnl((dt_layer *)l, net, N))
        return 0;
    return DT_LANES_READ | DT_LANES_WRITE;
}

/* bf16 activations: every forward of this layer runs dtrain's bf16 kernels without the fused
 * pool (never oneDNN's, never the fp32 kernels), which read the input from its bf16 copy */
static int conv_reads_copy(const dt_layer *l, const dt_net *net)
{
    const conv_priv *p = l->priv;
    return net->lowp == DT_BF16 && !p->pool && own_ok(l, 1, net->max_batch) &&
           !dt_dnnl_conv_wanted(l->in_c, p->k, p->k, 1, 1);
}

/* the input from its bf16 copy where it has one (net_act.h): its float32 slot is then free once
 * its writer is done */
static int conv_fwd_copy(const dt_layer *l, const dt_net *net, int k)
{
    return k == dt_net_act_owner(net, l->input) && conv_reads_copy(l, net);
}

static void conv_forward_bf16(dt_layer *l, dt_net *net, int N)
{
    conv_priv *p = l->priv;
    const float *b = p->no_bias ? NULL : dt_layer_param(net, l, 1);
    if (p->pool)
        dt_bf16conv_relu_pool2_forward(net->layers[p->pool].out, p->code, dt_layer_in(net, l),
                                       dt_layer_param(net, l, 0), b, N, l->in_c, l->in_h, l->in_w,
                                       p->out, p->k, p->k, p->stride, p->pad, net->ws);
    else {
        /* bf16 activations: the input from its copy (conv_fwd_copy) */
        const uint16_t *x16 = conv_reads_copy(l, net) ? dt_net_act_copy(net, l->input) : NULL;
        dt_bf16conv_forward(l->out, x16 ? NULL : dt_layer_in(net, l), x16,
                            dt_layer_param(net, l, 0), b, N, l->in_c, l->in_h, l->in_w, p->out,
                            p->k, p->k, p->stride, p->pad, net->ws, lanes_io(l, net));
    }
}

static void conv_backward_bf16(dt_layer *l, dt_net *net, int N)
{
    conv_priv *p = l->priv;
    float *db = p->no_bias ? NULL : dt_layer_grad(net, l, 1);
    /* bf16 activations: the input straight from its bf16 copy (conv_bwd_skips) */
    const uint16_t *x16 = dt_net_act_copy(net, l->input);
    const float *x = x16 ? NULL : dt_layer_in(net, l);
    if (p->pool)
        dt_bf16conv_relu_pool2_backward(
            dt_layer_din(net, l), dt_layer_grad(net, l, 0), db, net->layers[p->pool].dout, p->code,
            x, x16, dt_layer_param(net, l, 0), N, l->in_c, l->in_h, l->in_w, p->out, p->k, p->k,
            p->stride, p->pad, l->accum, 1, net->ws);
    else
        dt_bf16conv_backward(dt_layer_din(net, l), dt_layer_grad(net, l, 0), db, l->dout, x, x16,
                             dt_layer_param(net, l, 0), N, l->in_c, l->in_h, l->in_w, p->out, p->k,
                             p->k, p->stride, p->pad, l->accum, 1, net->ws, lanes_io(l, net));
}

/* The bf16 kernels read the input from its bf16 copy, and the fused group's backward reads the
 * pool's output not at all (its codes and its gradient only); oneDNN and the fp32 kernels read
 * the float32 slot. */
static int conv_bwd_skips(const dt_layer *l, const dt_net *net, int N, int k)
{
    const conv_priv *p = l->priv;
    if (!use_bf16(l, net, N) || use_dnnl((dt_layer *)l, net, N))
        return 0;
    const uint16_t *h = dt_net_act_copy(net, k);
    return (h && h == dt_net_act_copy(net, l->input)) || (p->pool && k == p->pool);
}

static void conv_forward(dt_layer *l, dt_net *net, int N, int train)
{
    (void)train;
    conv_priv *p = l->priv;
    dt_dnnl_conv *dn = use_dnnl(l, net, N);
    if (dn) {
        dt_dnnl_conv_forward(dn, l->out, dt_layer_in(net, l), dt_layer_param(net, l, 0),
                             p->no_bias ? NULL : dt_layer_param(net, l, 1), N);
        return;
    }
    if (use_bf16(l, net, N)) {
        conv_forward_bf16(l, net, N);
        return;
    }
    if (p->pool) {
        dt_conv2d_relu_pool2_forward(
            net->layers[p->pool].out, p->code, dt_layer_in(net, l), dt_layer_param(net, l, 0),
            p->no_bias ? NULL : dt_layer_param(net, l, 1), N, l->in_c, l->in_h, l->in_w, p->out,
            p->k, p->k, p->stride, p->pad, net->lowp, net->ws);
        return;
    }
    dt_conv2d_forward(l->out, dt_layer_in(net, l), dt_layer_param(net, l, 0),
                      p->no_bias ? NULL : dt_layer_param(net, l, 1), N, l->in_c, l->in_h, l->in_w,
                      p->out, p->k, p->k, p->stride, p->pad, net->ws);
}

static void conv_backward(dt_layer *l, dt_net *net, int N)
{
    conv_priv *p = l->priv;
    dt_dnnl_conv *dn = use_dnnl(l, net, N);
    if (dn) {
        dt_dnnl_conv_backward(dn, dt_layer_din(net, l), dt_layer_grad(net, l, 0),
                              p->no_bias ? NULL : dt_layer_grad(net, l, 1), l->dout,
                              dt_layer_in(net, l), dt_layer_param(net, l, 0), N, l->accum);
        return;
    }
    if (use_bf16(l, net, N)) {
        conv_backward_bf16(l, net, N);
        return;
    }
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
    for (int b = 0; b < 2; b++) {
        dt_dnnl_conv_free(p->dnnl[b]);
        p->dnnl[b] = NULL;
    }
}

const dt_layer_ops dt_conv_ops = {
    .kind = "conv",
    .priv_size = sizeof(conv_priv),
    .opts = conv_opts,
    .setup = conv_setup,
    .init = conv_init,
    .forward = conv_forward,
    .backward = conv_backward,
    .free = conv_free,
    .rounds_dout = conv_rounds_dout,
    .bwd_skips = conv_bwd_skips,
    .bwd_reads = DT_BWD_IN, /* runtime/net_act.h: the input, not its own output */
    .fwd_copy = conv_fwd_copy,
    .lanes = conv_lanes,
};

int dt_conv_fuse_relu_pool2(dt_net *net, dt_layer *cv, int pool)
{
    conv_priv *p = cv->priv;
    if (cv->fused || !dt_conv2d_relu_pool2_ok(net->max_batch, cv->in_c, cv->in_h, cv->in_w, p->out,
                                              p->k, p->k, p->stride, p->pad))
        return 0;
    p->pool = pool;
    /* the fp32 or the bf16 kernels' layout (the precision is set after the build) */
    const size_t n32 = dt_conv2d_relu_pool2_code_size(net->max_batch, p->out, cv->h, cv->w);
    const size_t n16 = dt_bf16conv_code_size(net->max_batch, p->out, cv->h, cv->w);
    /* written now (zeros), not in the first training step: on the project's VM each page
     * fault there cost tens of microseconds (cnn: 4.8 MB of codes, 1,170 faults) */
    p->code = dt_xcalloc(n32 > n16 ? n32 : n16, sizeof *p->code);
    return 1;
}

int dt_conv_where(const dt_net *net, int bf16, char *buf, size_t size)
{
    int n = 0, on = 0;
    for (int i = 0; i < net->nlayers; i++) {
        const dt_layer *l = &net->layers[i];
        if (l->ops != &dt_conv_ops)
            continue;
        const conv_priv *p = l->priv;
        n++;
        on += !p->pool &&
              dt_dnnl_conv_wanted(l->in_c, p->k, p->k, bf16, own_ok(l, bf16, net->max_batch));
    }
    char dn[64] = "oneDNN"; /* its version matters only where it runs */
    if (on)
        dt_dnnl_describe(dn, (int)sizeof dn);
    if (n)
        snprintf(buf, size, "%d of %d convolutions on %s", on, n, dn);
    else
        snprintf(buf, size, "no convolutions");
    return n;
}
