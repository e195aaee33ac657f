/*
 * layers/add.c - the [add] layer kind (add.h); the math is dt_add_* (layer_kernels.h).
 */
#include "add.h"

#include <stddef.h>

#include "common.h"
#include "kernels/layer_kernels.h"

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
    /* bf16 activations: the sum rounded as it is written */
    dt_add_forward(l->out, dt_layer_in(net, l), dt_layer_in2(net, l), (long)N * (long)l->out_size,
                   dt_layer_bf16_rounds_out(l, net));
}

static void add_backward(dt_layer *l, dt_net *net, int N)
{
    const long n = (long)N * (long)l->out_size;
    float *din2 = dt_layer_din2(net, l), *din = dt_layer_din(net, l);
    const int rnd = dt_layer_bf16_rounds_dout(l, net, N);
    if (din2)
        dt_add_backward(din2, l->dout, n, l->accum2, rnd);
    /* din in place (it is the add's own dout: net.c's grad_in_place, where the add is its input's
     * one reader) and rounded by the input's backward as it reads it: nothing to do, in bf16 too
     * (rounding twice gives the bits of rounding once; the pass over the gradient it saves was
     * 2.6 ms of resnet20's bf16 step at batch 128) */
    if (din && !(din == l->dout && !l->accum && (!rnd || dt_layer_reader_rounds(net, l->input, N))))
        dt_add_backward(din, l->dout, n, l->accum, rnd);
}

const dt_layer_ops dt_add_ops = {
    .kind = "add",
    .setup = add_setup,
    .forward = add_forward,
    .backward = add_backward,
    /* bf16: the kernel rounds the gradient it reads and the sum it writes */
    .rounds_dout = dt_layer_bf16_rounds_dout,
    .rounds_out = dt_layer_bf16_rounds_out,
    .two_inputs = 1,
    .din_is_dout = 1,
    .bwd_reads = DT_BWD_NONE,     /* runtime/net_act.h */
    .lanes = dt_layer_lanes_keep, /* elementwise: either layout */
};
