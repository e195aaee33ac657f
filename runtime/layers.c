/*
 * layers.c - layer kinds: linear, relu, flatten. Each is an ops table over its own small struct;
 * the math is in the kernels (kernels.h). Option parsing errors name the model file and line.
 */
#include "layers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kernels.h"

void dt_uniform_fill(float *x, size_t n, double from, double to, dt_mt19937 *g)
{
    /* aten/src/ATen/core/TransformationHelper.h uniform_real: 24 random bits scaled by 2^-24,
     * then u * (to - from) + from in float. PyTorch's AVX2/AVX-512 CPU kernels contract that to
     * one fused multiply-add (one rounding); fmaf reproduces it bitwise on any CPU
     * (tests/test_torch_ref.c checks every initial weight against torch's). */
    float f = (float)from, t = (float)to;
    for (size_t i = 0; i < n; i++) {
        float u = (float)(dt_mt_next(g) & ((1u << 24) - 1)) * (1.0f / 16777216.0f);
        x[i] = fmaf(u, t - f, f);
    }
}

static int parse_int_opt(const char *val, long lo, long hi, long *out)
{
    char *e;
    long v = strtol(val, &e, 10);
    if (e == val || *e || v < lo || v > hi)
        return DT_ERR;
    *out = v;
    return DT_OK;
}

/* ---- linear: torch.nn.Linear(in, out, bias) ---- */

typedef struct {
    int out;  /* OUT */
    int no_bias; /* bias = 0 given (zeroed priv means PyTorch's default bias=True) */
    int set;     /* out given */
} linear_priv;

static int linear_option(dt_layer *l, const char *key, const char *val, const char *src, int line)
{
    linear_priv *p = l->priv;
    long v;
    if (strcmp(key, "out") == 0) {
        if (parse_int_opt(val, 1, 1 << 24, &v) != 0)
            return dt_err("%s:%d: [linear] out = '%s': expected an integer in [1, %d]", src, line,
                          val, 1 << 24);
        p->out = (int)v;
        p->set = 1;
        return DT_OK;
    }
    if (strcmp(key, "bias") == 0) {
        if (parse_int_opt(val, 0, 1, &v) != 0)
            return dt_err("%s:%d: [linear] bias = '%s': expected 0 or 1", src, line, val);
        p->no_bias = !v;
        return DT_OK;
    }
    return dt_err("%s:%d: [linear] unknown key '%s': expected name, input, out, bias", src, line,
                  key);
}

static int linear_setup(dt_layer *l, dt_net *net)
{
    linear_priv *p = l->priv;
    if (!p->set)
        return dt_err("%s:%d: [linear] needs out = N", l->src, l->line);
    if (l->in_h != 1 || l->in_w != 1)
        return dt_err("%s:%d: [linear] input is %dx%dx%d: expected a flat input (add [flatten])",
                      l->src, l->line, l->in_c, l->in_h, l->in_w);
    int wshape[2] = {p->out, l->in_c};
    dt_net_add_param(net, l, "weight", 2, wshape, 0);
    if (!p->no_bias)
        dt_net_add_param(net, l, "bias", 1, &p->out, DT_PARAM_BIAS);
    l->c = p->out;
    l->h = l->w = 1;
    return DT_OK;
}

/* torch.nn.Linear.reset_parameters (torch 1.13): weight kaiming_uniform_(a=sqrt(5)), i.e.
 * U(-b, b) with b = sqrt(3) * sqrt(2 / (1 + a^2)) / sqrt(fan_in); bias U(-1/sqrt(fan_in), ..). */
static void linear_init(dt_layer *l, dt_net *net, dt_mt19937 *g)
{
    linear_priv *p = l->priv;
    double fan_in = l->in_c;
    double a = sqrt(5.0);
    double bound = sqrt(3.0) * (sqrt(2.0 / (1.0 + a * a)) / sqrt(fan_in));
    dt_uniform_fill(dt_layer_param(net, l, 0), (size_t)p->out * (size_t)l->in_c, -bound, bound, g);
    if (!p->no_bias) {
        double bb = 1.0 / sqrt(fan_in);
        dt_uniform_fill(dt_layer_param(net, l, 1), (size_t)p->out, -bb, bb, g);
    }
}

static void linear_forward(dt_layer *l, dt_net *net, int N, int train)
{
    (void)train;
    linear_priv *p = l->priv;
    dt_linear_forward(l->out, dt_layer_in(net, l), dt_layer_param(net, l, 0),
                      p->no_bias ? NULL : dt_layer_param(net, l, 1), N, l->in_c, p->out);
}

static void linear_backward(dt_layer *l, dt_net *net, int N)
{
    linear_priv *p = l->priv;
    dt_linear_backward(dt_layer_din(net, l), dt_layer_grad(net, l, 0),
                       p->no_bias ? NULL : dt_layer_grad(net, l, 1), l->dout, dt_layer_in(net, l),
                       dt_layer_param(net, l, 0), N, l->in_c, p->out, l->accum);
}

static const dt_layer_ops linear_ops = {
    .kind = "linear",
    .priv_size = sizeof(linear_priv),
    .keys = "name, out, bias",
    .option = linear_option,
    .setup = linear_setup,
    .init = linear_init,
    .forward = linear_forward,
    .backward = linear_backward,
};

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
        dt_relu_backward(din, l->dout, l->out, (long)N * (long)l->out_size, l->accum);
}

static const dt_layer_ops relu_ops = {
    .kind = "relu",
    .keys = "name",
    .forward = relu_forward,
    .backward = relu_backward,
};

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

static void flatten_noop_backward(dt_layer *l, dt_net *net, int N)
{
    (void)l, (void)net, (void)N;
}

static const dt_layer_ops flatten_ops = {
    .kind = "flatten",
    .keys = "name",
    .setup = flatten_setup,
    .forward = flatten_noop_forward,
    .backward = flatten_noop_backward,
    .alias = 1,
};

static const dt_layer_ops *const kinds[] = {
    &linear_ops,       &relu_ops,       &flatten_ops, &dt_conv_ops,  &dt_maxpool_ops,
    &dt_avgpool_ops,   &dt_gap_ops,     &dt_batchnorm_ops, &dt_dropout_ops, &dt_add_ops,
    &dt_scale_ops,
};

const dt_layer_ops *dt_layer_kind(const char *kind)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i]->kind, kind) == 0)
            return kinds[i];
    return NULL;
}

const char *dt_layer_kinds(void)
{
    return "linear, relu, flatten, conv, maxpool, avgpool, gap, batchnorm, dropout, add, scale";
}
