/*
 * layers/relu.c - the [relu] layer kind (relu.h); the math is dt_relu_* (kernels.h).
 */
#include "relu.h"

#include <stddef.h>

#include "common.h"
#include "kernels/kernels.h"
#include "lowp.h"

/* ---- relu: torch.nn.ReLU ---- */

static void relu_forward(dt_layer *l, dt_net *net, int N, int train)
{
    (void)train;
    dt_relu_forward(l->out, dt_layer_in(net, l), (long)N * (long)l->out_size);
}

static void relu_backward(dt_layer *l, dt_net *net, int N)
{
    float *din = dt_layer_din(net, l);
    if (din)
        dt_relu_backward(din, l->dout, l->out, (long)N * (long)l->out_size, l->accum,
                         net->lowp == DT_BF16);
}

/* bf16 activations: its input is a bf16 value (every activation is), and so is max(input, 0) */
static int relu_rounds_out(const dt_layer *l, const dt_net *net)
{
    (void)l;
    return net->act != NULL;
}

/* bf16: the kernel rounds the gradient it reads (no pass of its own, net.c) */
static int relu_rounds_dout(const dt_layer *l, const dt_net *net, int N)
{
    (void)l, (void)N;
    return net->lowp == DT_BF16;
}

const dt_layer_ops dt_relu_ops = {
    .kind = "relu",
    .forward = relu_forward,
    .backward = relu_backward,
    .rounds_dout = relu_rounds_dout,
    .rounds_out = relu_rounds_out,
    .bwd_reads = DT_BWD_OUT, /* runtime/net_act.h */
};
