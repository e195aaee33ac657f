/*
 * relu.c - ReLU kernels (torch.nn.ReLU), see kernels.h. The loops are the `elem` family's
 * (kernels/elem.h), chosen per instruction set (isa.h).
 */
#include "common.h"
#include "kernels.h"
#include "kernels/elem.h"
#include "kernels/isa.h"

void dt_relu_forward(float *out, const float *inp, long n)
{
    DT_ASSERT(n >= 0);
    dt_kern_get()->elem->relu_forward(out, inp, n);
}

/* PyTorch's threshold_backward: the gradient at exactly 0 is 0. */
void dt_relu_backward(float *dinp, const float *dout, const float *out, long n, int accum)
{
    DT_ASSERT(n >= 0);
    dt_kern_get()->elem->relu_backward(dinp, dout, out, n, accum);
}
