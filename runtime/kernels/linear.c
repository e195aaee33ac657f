/*
 * linear.c - fully connected layer kernels (torch.nn.Linear: y = x W^T + b), see kernels.h.
 * The fast path is three matrix products over the whole batch (gemm.h: the packed kernel of the
 * ISA in use, or OpenBLAS's sgemm on the generic ISA); the forward's bias starts the accumulators.
 * With the gradient hook installed (poll.h: a distributed step with train.grad_panels) the weight
 * gradient is computed in row panels, each announced so that its allreduce starts before the
 * layer ends (on the generic ISA, whose OpenBLAS GEMM cannot be split bitwise, whole, announced
 * before dinp is computed).
 */
#include <string.h>

#include "gemm.h"
#include "gemm_k.h"
#include "isa.h"
#include "kernels.h"
#include "poll.h"

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

/* dbias (OUT) = the sum of dout over the batch */
static void bias_grad(float *dbias, const float *dout, int N, int OUT)
{
    memset(dbias, 0, (size_t)OUT * sizeof *dbias);
    for (int n = 0; n < N; n++) {
        const float *row = dout + (size_t)n * OUT;
        for (int o = 0; o < OUT; o++)
            dbias[o] += row[o];
    }
}

/* With the gradient hook (poll.h): the bias gradient, then dW in row panels of about
 * dt_grad_panel() floats, last rows first, each announced as soon as it is computed, so that its
 * allreduce runs while the panels before it are computed (and then dinp). A panel's rows are a
 * GEMM of their own over the same K: dt_gemm never splits K, so every element gets the bits the
 * whole GEMM gives it. */
static void weight_grad_panels(float *dweight, float *dbias, const float *dout, const float *inp,
                               int N, int IN, int OUT, size_t panel)
{
    if (dbias)
        bias_grad(dbias, dout, N, OUT);
    int rows = (int)((panel + (size_t)IN - 1) / (size_t)IN);
    rows = (rows + 15) / 16 * 16; /* whole register tiles */
    for (int hi = OUT; hi > 0;) {
        const int lo = hi > rows ? hi - rows : 0;
        dt_gemm(1, 0, hi - lo, IN, N, dout + lo, OUT, inp, IN, NULL, 0, dweight + (size_t)lo * IN,
                IN);
        dt_grad_done(dweight + (size_t)lo * IN);
        hi = lo;
    }
}

void dt_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int N, int IN, int OUT, int accum)
{
    /* panels only with dtrain's own GEMM: OpenBLAS's sgemm (the generic ISA) gives other bits
     * on a block of rows than on the whole matrix (measured, tests/test_grad_panels.c) */
    const struct dt_kgemm *g = dt_kern_get()->gemm;
    const size_t panel = g && !g->blas ? dt_grad_panel() : 0;
    if (panel > 0) {
        weight_grad_panels(dweight, dbias, dout, inp, N, IN, OUT, panel);
    } else {
        /* dW (OUT, IN) = dout^T (OUT, N) @ inp (N, IN) */
        dt_gemm(1, 0, OUT, IN, N, dout, OUT, inp, IN, NULL, 0, dweight, IN);
        if (dbias)
            bias_grad(dbias, dout, N, OUT);
        dt_grad_done(dweight); /* the layer's gradients: their bucket can start before dinp */
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
