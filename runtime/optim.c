/*
 * optim.c - see optim.h.
 */
#include "optim.h"

#include <stdlib.h>

#include "common.h"

void dt_optim_init_sgd(dt_optim *o, size_t numel, double momentum, double dampening,
                       double weight_decay, int nesterov)
{
    o->kind = DT_OPTIM_SGD;
    o->momentum = momentum;
    o->dampening = dampening;
    o->weight_decay = weight_decay;
    o->nesterov = nesterov;
    o->numel = numel;
    o->buf = dt_xcalloc(numel, sizeof *o->buf);
    o->steps = 0;
}

void dt_optim_free(dt_optim *o)
{
    if (!o)
        return;
    free(o->buf);
    o->buf = NULL;
}

/* torch.optim.SGD (torch 1.13, torch/optim/sgd.py _single_tensor_sgd):
 *   g = grad + weight_decay * p
 *   if momentum != 0:
 *       b = g                                      (first step: buffer is a clone of g)
 *       b = momentum * b + (1 - dampening) * g     (later steps)
 *       g = g + momentum * b   if nesterov   else   g = b
 *   p = p - lr * g
 * Scalars are cast to float before the elementwise ops, as PyTorch does for float32 tensors. */
DT_SIMD static void sgd_step(dt_optim *o, float *restrict p, const float *restrict grad, double lr,
                     double momentum)
{
    const float wd = (float)o->weight_decay, mu = (float)momentum;
    const float damp = (float)(1.0 - o->dampening), nlr = (float)-lr;
    float *restrict b = o->buf;
    const size_t n = o->numel;
    /* One branch-free loop per case, so each vectorizes. */
    if (momentum == 0.0) {
        for (size_t i = 0; i < n; i++)
            p[i] = p[i] + nlr * (grad[i] + wd * p[i]);
    } else if (o->steps == 0) {
        for (size_t i = 0; i < n; i++) {
            float g = grad[i] + wd * p[i];
            b[i] = g;
            p[i] = p[i] + nlr * (o->nesterov ? g + mu * g : g);
        }
    } else if (o->nesterov) {
        for (size_t i = 0; i < n; i++) {
            float g = grad[i] + wd * p[i];
            float bi = b[i] * mu + damp * g;
            b[i] = bi;
            p[i] = p[i] + nlr * (g + mu * bi);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            float g = grad[i] + wd * p[i];
            float bi = b[i] * mu + damp * g;
            b[i] = bi;
            p[i] = p[i] + nlr * bi;
        }
    }
}

void dt_optim_step(dt_optim *o, float *param, const float *grad, double lr, double momentum)
{
    switch (o->kind) {
    case DT_OPTIM_SGD:
        sgd_step(o, param, grad, lr, momentum);
        break;
    }
    o->steps++;
}
