/*
 * layers/flatten.c - the [flatten] layer kind (flatten.h).
 */
#include "flatten.h"

#include <stddef.h>

#include "common.h"

/* ---- flatten: torch.nn.Flatten; a view, so no memory and no work ---- */

static int flatten_setup(dt_layer *l, dt_net *net)
{
    (void)net;
    l->c = l->in_c * l->in_h * l->in_w;
    l->h = l->w = 1;
    return DT_OK;
}

static void flatten_noop_forward(dt_layer *l, dt_net *net, int N, int train)
{
    (void)l, (void)net, (void)N, (void)train;
}

static void flatten_noop_backward(dt_layer *l, dt_net *net, int N) { (void)l, (void)net, (void)N; }

const dt_layer_ops dt_flatten_ops = {
    .kind = "flatten",
    .setup = flatten_setup,
    .forward = flatten_noop_forward,
    .backward = flatten_noop_backward,
    .alias = 1,
};
