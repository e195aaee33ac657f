/*
 * layer.c - the layer API (layer.h): parameter and buffer declaration, tensor and activation
 * accessors, size checks, PyTorch's initializers and the option tables of the layer kinds.
 * Below net.c: it calls nothing of the net's driver.
 */
#include "layer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "lowp.h"

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

void dt_layer_kaiming_init(dt_layer *l, dt_net *net, dt_mt19937 *g, double fan_in)
{
    DT_ASSERT(l->nparam >= 1 && l->nparam <= 2);
    double a = sqrt(5.0);
    double bound = sqrt(3.0) * (sqrt(2.0 / (1.0 + a * a)) / sqrt(fan_in));
    dt_uniform_fill(dt_layer_param(net, l, 0), net->params[l->param0].numel, -bound, bound, g);
    if (l->nparam == 2) {
        double bb = 1.0 / sqrt(fan_in);
        dt_uniform_fill(dt_layer_param(net, l, 1), net->params[l->param0 + 1].numel, -bb, bb, g);
    }
}

/* ---- options ---- */

static int unknown_key(const dt_layer *l, const char *key, const char *src, int line)
{
    char keys[256] = "name, input";
    for (const dt_layer_opt *o = l->ops->opts; o && o->key; o++) {
        strncat(keys, ", ", sizeof keys - strlen(keys) - 1);
        strncat(keys, o->key, sizeof keys - strlen(keys) - 1);
    }
    return dt_err("%s:%d: [%s] unknown key '%s': expected %s", src, line, l->ops->kind, key, keys);
}

int dt_layer_option(dt_layer *l, const char *key, const char *val, const char *src, int line)
{
    const dt_layer_opt *o = l->ops->opts;
    while (o && o->key && strcmp(o->key, key) != 0)
        o++;
    if (!o || !o->key)
        return unknown_key(l, key, src, line);
    char *e, *at = (char *)l->priv + o->off;
    if (o->type == DT_OPT_FLOAT) {
        double v = strtod(val, &e);
        if (e == val || *e || !(v >= o->min && v <= o->max))
            return dt_err("%s:%d: [%s] %s = '%s': expected %s", src, line, l->ops->kind, key, val,
                          o->expect);
        *(float *)(void *)at = (float)v;
    } else {
        long v = strtol(val, &e, 10);
        const int is_not = o->type == DT_OPT_NOT;
        const long lo = is_not ? 0 : (long)o->min, hi = is_not ? 1 : (long)o->max;
        if (e == val || *e || v < lo || v > hi) {
            if (is_not)
                return dt_err("%s:%d: [%s] %s = '%s': expected 0 or 1", src, line, l->ops->kind,
                              key, val);
            return dt_err("%s:%d: [%s] %s = '%s': expected an integer in [%ld, %ld]", src, line,
                          l->ops->kind, key, val, lo, hi);
        }
        *(int *)(void *)at = is_not ? !v : (int)v;
    }
    if (o->set_off)
        *(int *)(void *)((char *)l->priv + o->set_off) = 1;
    return DT_OK;
}

/* ---- parameters and buffers ---- */

/* Appends a tensor description to *list (grown by doubling). */
static dt_param *add_tensor(dt_param **list, int *n, int *cap, int ndim, const int *shape,
                            size_t off)
{
    DT_ASSERT(ndim >= 1 && ndim <= 4);
    *list = dt_xgrow(*list, *n, cap, sizeof **list);
    dt_param *p = &(*list)[(*n)++];
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->numel *= (size_t)shape[i];
    }
    p->off = off;
    return p;
}

void dt_net_add_param(dt_net *net, dt_layer *l, const char *suffix, int ndim, const int *shape,
                      int flags)
{
    if (l->nparam == 0)
        l->param0 = net->nparams;
    DT_ASSERT(l->param0 + l->nparam == net->nparams); /* a layer's tensors are contiguous */
    dt_param *p =
        add_tensor(&net->params, &net->nparams, &net->cap_params, ndim, shape, net->numel);
    snprintf(p->name, sizeof p->name, "%.47s.%.15s", l->name, suffix);
    p->is_bias = (flags & DT_PARAM_BIAS) != 0;
    p->no_decay = (flags & (DT_PARAM_BIAS | DT_PARAM_NO_DECAY)) != 0;
    p->bf16_packed = (flags & DT_PARAM_BF16_PACKED) != 0;
    net->numel += p->numel;
    l->nparam++;
}

void dt_net_add_buffer(dt_net *net, dt_layer *l, const char *suffix, int ndim, const int *shape)
{
    if (l->nbuf == 0)
        l->buf0 = net->nbufs;
    DT_ASSERT(l->buf0 + l->nbuf == net->nbufs);
    dt_param *p =
        add_tensor(&net->bufs, &net->nbufs, &net->cap_bufs, ndim, shape, net->state_numel);
    snprintf(p->name, sizeof p->name, "%.43s.%.19s", l->name, suffix);
    net->state_numel += p->numel;
    l->nbuf++;
}

int dt_net_check_sizes(const dt_net *net, const dt_layer *l, size_t add_params, size_t c, size_t h,
                       size_t w)
{
    if (c < 1 || h < 1 || w < 1)
        return dt_err("%s:%d: [%s] output %zux%zux%zu: expected every dimension >= 1", l->src,
                      l->line, l->ops->kind, c, h, w);
    size_t v;
    if (dt_mul_overflow(c, h, &v) || dt_mul_overflow(v, w, &v) ||
        dt_mul_overflow(v, (size_t)net->max_batch, &v) || v >= DT_NET_MAX_ARENA)
        return dt_err("%s:%d: [%s] output %zux%zux%zu at batch %d is too large: expected fewer "
                      "than %zu values per layer (2^31; smaller layers or train.batch_size)",
                      l->src, l->line, l->ops->kind, c, h, w, net->max_batch, DT_NET_MAX_ARENA);
    if (net->numel > DT_NET_MAX_PARAMS || add_params > DT_NET_MAX_PARAMS - net->numel)
        return dt_err("%s:%d: [%s] brings the parameter count to %s%zu: expected at most %zu "
                      "(2^28)",
                      l->src, l->line, l->ops->kind,
                      add_params > SIZE_MAX - net->numel ? "more than " : "",
                      add_params > SIZE_MAX - net->numel ? SIZE_MAX : net->numel + add_params,
                      DT_NET_MAX_PARAMS);
    return DT_OK;
}

/* ---- accessors ---- */

float *dt_layer_buffer(dt_net *net, const dt_layer *l, int i)
{
    DT_ASSERT(i >= 0 && i < l->nbuf);
    return net->state + net->bufs[l->buf0 + i].off;
}

int dt_param_reads_master(const dt_net *net, const dt_param *p)
{
    return net->lowp == DT_BF16 && p->bf16_packed;
}

float *dt_layer_param(dt_net *net, const dt_layer *l, int i)
{
    DT_ASSERT(i >= 0 && i < l->nparam);
    const dt_param *p = &net->params[l->param0 + i];
    if (net->lp_master && dt_param_reads_master(net, p))
        return net->lp_master + p->off; /* no rounded copy: its kernels round it */
    return net->param + p->off;
}

float *dt_layer_grad(dt_net *net, const dt_layer *l, int i)
{
    DT_ASSERT(i >= 0 && i < l->nparam);
    return net->grad + net->params[l->param0 + i].off;
}

const float *dt_layer_in(const dt_net *net, const dt_layer *l)
{
    return l->input < 0 ? net->x : net->layers[l->input].out;
}

float *dt_layer_din(const dt_net *net, const dt_layer *l)
{
    return l->input < 0 ? NULL : net->layers[l->input].dout;
}

const float *dt_layer_in2(const dt_net *net, const dt_layer *l)
{
    DT_ASSERT(l->input2 >= -1);
    return l->input2 < 0 ? net->x : net->layers[l->input2].out;
}

float *dt_layer_din2(const dt_net *net, const dt_layer *l)
{
    DT_ASSERT(l->input2 >= -1);
    return l->input2 < 0 ? NULL : net->layers[l->input2].dout;
}

void dt_layer_allreduce_sum(const dt_net *net, double *x, int n)
{
    if (net->ctx && net->ctx->allreduce_sum)
        net->ctx->allreduce_sum(net->ctx->comm_ctx, x, n);
}

int dt_layer_lanes(const dt_net *net, const dt_layer *l)
{
    return net->lanes && l->lanes_ok ? net->lanes : 0;
}

int dt_layer_in_lanes(const dt_net *net, const dt_layer *l)
{
    return l->input >= 0 ? dt_layer_lanes(net, &net->layers[l->input]) : 0;
}

int dt_layer_lanes_keep(const dt_layer *l, const dt_net *net, int N)
{
    (void)l, (void)net, (void)N;
    return DT_LANES_KEEP;
}

int dt_layer_bf16_rounds_out(const dt_layer *l, const dt_net *net)
{
    (void)l;
    return net->act != NULL;
}

int dt_layer_bf16_rounds_dout(const dt_layer *l, const dt_net *net, int N)
{
    (void)l, (void)N;
    return net->lowp == DT_BF16;
}

int dt_layer_reader_rounds(const dt_net *net, int i, int N)
{
    while (i > 0 && net->layers[i].fused)
        i--;
    const dt_layer *r = &net->layers[i];
    return r->ops->rounds_dout && r->ops->rounds_dout(r, net, N);
}
