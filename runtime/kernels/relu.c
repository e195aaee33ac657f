/*
 * relu.c - ReLU kernels (torch.nn.ReLU), see kernels.h.
 */
#include "common.h"
#include "kernels.h"

DT_SIMD void dt_relu_forward(float *out, const float *inp, long n)
{
    for (long i = 0; i < n; i++)
        out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

/* PyTorch's threshold_backward: the gradient at exactly 0 is 0. dout is loaded unconditionally
 * so the select vectorizes (a load guarded by the comparison cannot be if-converted). */
DT_SIMD void dt_relu_backward(float *dinp, const float *dout, const float *out, long n, int accum)
{
    if (accum) {
        for (long i = 0; i < n; i++) {
            float d = dout[i];
            dinp[i] += out[i] > 0.0f ? d : 0.0f;
        }
    } else {
        for (long i = 0; i < n; i++) {
            float d = dout[i];
            dinp[i] = out[i] > 0.0f ? d : 0.0f;
        }
    }
}
