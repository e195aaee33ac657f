/*
 * relu.c - ReLU kernels (torch.nn.ReLU), see kernels.h. The loops are the `elem` family's
 * (kernels/elem.h), chosen per instruction set (isa.h), split over the thread pool.
 */
#include "common.h"
#include "kernels.h"
#include "kernels/elem.h"
#include "kernels/isa.h"
#include "kernels/tpool.h"

/* Elementwise loops over the pool (kernels/tpool.h): parts of this many values at least. */
#define GRAIN 4096 /* about a microsecond of work: a fork/join costs about as much */

typedef struct {
    float *out;
    const float *a, *b;
    const uint16_t *bh; /* the backward's out as its bf16 copy, NULL: b */
    int accum, rnd;
} relu_job;

static void fwd_part(void *arg, long lo, long hi)
{
    const relu_job *j = arg;
    dt_kern_get()->elem->relu_forward(j->out + lo, j->a + lo, hi - lo);
}

static void bwd_part(void *arg, long lo, long hi)
{
    const relu_job *j = arg;
    if (j->bh)
        dt_kern_get()->elem->relu_backward_h(j->out + lo, j->a + lo, j->bh + lo, hi - lo, j->accum,
                                             j->rnd);
    else
        dt_kern_get()->elem->relu_backward(j->out + lo, j->a + lo, j->b + lo, hi - lo, j->accum,
                                           j->rnd);
}

void dt_relu_forward(float *out, const float *inp, long n)
{
    DT_ASSERT(n >= 0);
    relu_job j = {out, inp, NULL, NULL, 0, 0};
    dt_tpool_for(n, GRAIN, 64, fwd_part, &j);
}

/* PyTorch's threshold_backward: the gradient at exactly 0 is 0. */
void dt_relu_backward(float *dinp, const float *dout, const float *out, long n, int accum, int rnd)
{
    DT_ASSERT(n >= 0);
    relu_job j = {dinp, dout, out, NULL, accum, rnd};
    dt_tpool_for(n, GRAIN, 64, bwd_part, &j);
}

void dt_relu_backward_h(float *dinp, const float *dout, const uint16_t *out, long n, int accum,
                        int rnd)
{
    DT_ASSERT(n >= 0);
    relu_job j = {dinp, dout, NULL, out, accum, rnd};
    dt_tpool_for(n, GRAIN, 64, bwd_part, &j);
}
