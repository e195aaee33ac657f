/*
 * layers/linear.c - the [linear] layer kind (linear.h); the math is dt_linear_* (kernels.h).
 *
 * With train.precision = bf16 (net->lowp, lowp.h) its three products run on the bf16 GEMM of
 * the kernel table in use (kernels/bf16.h: operands rounded to bf16 while packed, vdpbf16ps
 * native or emulated bit for bit, fp32 accumulation), as PyTorch's CPU autocast runs linear;
 * the bias gradient stays an fp32 sum. fp16 runs the fp32 kernels on the values net.c rounded.
 */
#include "linear.h"

#include <stddef.h>
#include <string.h>

#include "common.h"
#include "kernels/bf16.h"
#include "kernels/gemm.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "lowp.h"

/* ---- linear: torch.nn.Linear(in, out, bias) ---- */

typedef struct {
    int out;     /* OUT */
    int no_bias; /* bias = 0 given (zeroed priv means PyTorch's default bias=True) */
    int set;     /* out given */
} linear_priv;

static const dt_layer_opt linear_opts[] = {
    {"out", DT_OPT_INT, 1, 1 << 24, offsetof(linear_priv, out), offsetof(linear_priv, set), NULL},
    {"bias", DT_OPT_NOT, 0, 1, offsetof(linear_priv, no_bias), 0, NULL},
    {NULL, 0, 0, 0, 0, 0, NULL},
};

static int linear_setup(dt_layer *l, dt_net *net)
{
    linear_priv *p = l->priv;
    if (!p->set)
        return dt_err("%s:%d: [linear] needs out = N", l->src, l->line);
    if (l->in_h != 1 || l->in_w != 1)
        return dt_err("%s:%d: [linear] input is %dx%dx%d: expected a flat input (add [flatten])",
                      l->src, l->line, l->in_c, l->in_h, l->in_w);
    int wshape[2] = {p->out, l->in_c};
    /* bf16: all three products run on the bf16 GEMM, which rounds W as it packs it */
    dt_net_add_param(net, l, "weight", 2, wshape, DT_PARAM_BF16_PACKED);
    if (!p->no_bias)
        dt_net_add_param(net, l, "bias", 1, &p->out, DT_PARAM_BIAS);
    l->c = p->out;
    l->h = l->w = 1;
    return DT_OK;
}

/* torch.nn.Linear.reset_parameters (torch 1.13): Kaiming uniform over fan_in = IN. */
static void linear_init(dt_layer *l, dt_net *net, dt_mt19937 *g)
{
    dt_layer_kaiming_init(l, net, g, l->in_c);
}

/* out (N, OUT) = inp (N, IN) @ W^T + b, W (OUT, IN), in bf16 */
static void forward_bf16(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int IN, int OUT)
{
    dt_bf16_gemm(0, 1, N, OUT, IN, inp, IN, weight, IN, bias, 0, out, OUT);
}

/* dW (OUT, IN) = dout^T @ inp and dinp (N, IN) (+)= dout @ W in bf16; dbias: the fp32 sum */
static void backward_bf16(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int N, int IN, int OUT, int accum)
{
    dt_bf16_gemm(1, 0, OUT, IN, N, dout, OUT, inp, IN, NULL, 0, dweight, IN);
    if (dbias) {
        memset(dbias, 0, (size_t)OUT * sizeof *dbias);
        for (int n = 0; n < N; n++) {
            const float *row = dout + (size_t)n * OUT;
            for (int o = 0; o < OUT; o++)
                dbias[o] += row[o];
        }
    }
    if (dinp)
        dt_bf16_gemm(0, 0, N, IN, OUT, dout, OUT, weight, IN, NULL, accum, dinp, IN);
}

static void linear_forward(dt_layer *l, dt_net *net, int N, int train)
{
    (void)train;
    linear_priv *p = l->priv;
    (net->lowp == DT_BF16 ? forward_bf16 : dt_linear_forward)(
        l->out, dt_layer_in(net, l), dt_layer_param(net, l, 0),
        p->no_bias ? NULL : dt_layer_param(net, l, 1), N, l->in_c, p->out);
}

static void linear_backward(dt_layer *l, dt_net *net, int N)
{
    linear_priv *p = l->priv;
    (net->lowp == DT_BF16 ? backward_bf16 : dt_linear_backward)(
        dt_layer_din(net, l), dt_layer_grad(net, l, 0),
        p->no_bias ? NULL : dt_layer_grad(net, l, 1), l->dout, dt_layer_in(net, l),
        dt_layer_param(net, l, 0), N, l->in_c, p->out, l->accum);
}

const dt_layer_ops dt_linear_ops = {
    .kind = "linear",
    .priv_size = sizeof(linear_priv),
    .opts = linear_opts,
    .setup = linear_setup,
    .init = linear_init,
    .forward = linear_forward,
    .backward = linear_backward,
    .bwd_reads = DT_BWD_IN, /* runtime/net_act.h */
};
