/*
 * layers/relu.c - the [relu] layer kind (relu.h); the math is dt_relu_* (kernels.h).
 */
#include "relu.h"

#include <stddef.h>

#include "common.h"
#include "kernels/kernels.h"
#include "net_act.h"

/* ---- relu: torch.nn.ReLU ---- */

static void relu_forward(dt_layer *l, dt_net *net, int N, int train)
{
    (void)train;
    dt_relu_forward(l->out, dt_layer_in(net, l), (long)N * (long)l->out_size);
}

static void relu_backward(dt_layer *l, dt_net *net, int N)
{
    float *din = dt_layer_din(net, l);
    if (!din)
        return;
    const long n = (long)N * (long)l->out_size;
    const int rnd = dt_layer_bf16_rounds_dout(l, net, N);
    /* bf16 activations: the output from its bf16 copy (relu_bwd_skips) */
    const uint16_t *o16 = dt_net_act_copy(net, l->index);
    if (o16)
        dt_relu_backward_h(din, l->dout, o16, n, l->accum, rnd);
    else
        dt_relu_backward(din, l->dout, l->out, n, l->accum, rnd);
}

static int relu_bwd_skips(const dt_layer *l, const dt_net *net, int N, int k)
{
    (void)N;
    const uint16_t *h = dt_net_act_copy(net, k);
    return h && h == dt_net_act_copy(net, l->index);
}

const dt_layer_ops dt_relu_ops = {
    .kind = "relu",
    .forward = relu_forward,
    .backward = relu_backward,
    /* bf16: the kernel rounds the gradient it reads; with bf16 activations its input is a bf16
     * value, and so is max(input, 0) */
    .rounds_dout = dt_layer_bf16_rounds_dout,
    .rounds_out = dt_layer_bf16_rounds_out,
    .bwd_reads = DT_BWD_OUT, /* runtime/net_act.h */
    .bwd_skips = relu_bwd_skips,
    .lanes = dt_layer_lanes_keep, /* elementwise: either layout */
};
