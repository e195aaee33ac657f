/*
 * linear.c - fully connected layer kernels (torch.nn.Linear: y = x W^T + b), see kernels.h.
 * The fast path is three matrix products over the whole batch (gemm.h: the packed kernel of the
 * ISA in use, or OpenBLAS's sgemm on the generic ISA); the forward's bias starts the accumulators.
 */
#include <string.h>

#include "gemm.h"
#include "kernels.h"

void dt_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                       int IN, int OUT)
{
    dt_gemm(0, 1, N, OUT, IN, inp, IN, weight, IN, bias, 0, out, OUT);
}

void dt_linear_forward_ref(float *out, const float *inp, const float *weight, const float *bias,
                           int N, int IN, int OUT)
{
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OUT; o++) {
            double acc = bias ? bias[o] : 0.0;
            for (int i = 0; i < IN; i++)
                acc += (double)inp[(size_t)n * IN + i] * weight[(size_t)o * IN + i];
            out[(size_t)n * OUT + o] = (float)acc;
        }
}

void dt_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int N, int IN, int OUT, int accum)
{
    /* dW (OUT, IN) = dout^T (OUT, N) @ inp (N, IN) */
    dt_gemm(1, 0, OUT, IN, N, dout, OUT, inp, IN, NULL, 0, dweight, IN);
    if (dbias) {
        memset(dbias, 0, (size_t)OUT * sizeof *dbias);
        for (int n = 0; n < N; n++) {
            const float *row = dout + (size_t)n * OUT;
            for (int o = 0; o < OUT; o++)
                dbias[o] += row[o];
        }
    }
    /* dinp (N, IN) = dout (N, OUT) @ W (OUT, IN) */
    if (dinp)
        dt_gemm(0, 0, N, IN, OUT, dout, OUT, weight, IN, NULL, accum, dinp, IN);
}

void dt_linear_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, int N, int IN, int OUT,
                            int accum)
{
    for (int o = 0; o < OUT; o++) {
        for (int i = 0; i < IN; i++) {
            double acc = 0.0;
            for (int n = 0; n < N; n++)
                acc += (double)dout[(size_t)n * OUT + o] * inp[(size_t)n * IN + i];
            dweight[(size_t)o * IN + i] = (float)acc;
        }
        if (dbias) {
            double acc = 0.0;
            for (int n = 0; n < N; n++)
                acc += dout[(size_t)n * OUT + o];
            dbias[o] = (float)acc;
        }
    }
    if (!dinp)
        return;
    for (int n = 0; n < N; n++)
        for (int i = 0; i < IN; i++) {
            double acc = accum ? dinp[(size_t)n * IN + i] : 0.0;
            for (int o = 0; o < OUT; o++)
                acc += (double)dout[(size_t)n * OUT + o] * weight[(size_t)o * IN + i];
            dinp[(size_t)n * IN + i] = (float)acc;
        }
}
