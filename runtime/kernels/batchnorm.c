/*
 * batchnorm.c - batch normalization kernels (torch.nn.BatchNorm1d/2d and SyncBatchNorm), see
 * layer_kernels.h. Tensors are (N, C, HW): BatchNorm1d on (N, C) is HW = 1.
 *
 * Ioffe & Szegedy 2015, with PyTorch's conventions (torch.nn.BatchNorm2d docs):
 *   normalization by the biased batch variance, y = (x - mean) / sqrt(var + eps) * w + b;
 *   running_x = (1 - momentum) * running_x + momentum * x_batch, with the UNBIASED variance
 *   var * M / (M - 1) for running_var.
 * Statistics are sums in double (sum x, sum x^2; sum dy, sum dy * x): summable over ranks for a
 * synchronized BN, and accurate enough in double that var = E[x^2] - mean^2 loses nothing that
 * matters to float results. The backward is PyTorch SyncBatchNorm's
 * (torch/nn/modules/_functions.py: batch_norm_backward_reduce on local data, allreduce of
 * sum_dy and sum_dy_xmu, batch_norm_backward_elemt with the global mean_dy, mean_dy_xmu).
 *
 * Every kernel loops over channels outermost, so the per-channel constants are scalars (no
 * workspace), and over the HW values of each (n, c) plane innermost. The loops over the data are
 * the `elem` family's (kernels/elem.h: bn_sums, bn_dots, bn_affine, bn_backward), chosen per
 * instruction set; the per-channel arithmetic in double stays here.
 */
#include <math.h>
#include <stddef.h>

#include "common.h"
#include "kernels/elem.h"
#include "kernels/isa.h"
#include "layer_kernels.h"

static void bn_shape(int N, int C, int HW) { DT_ASSERT(N >= 0 && C >= 1 && HW >= 1); }

void dt_bn_stats(double *sum, double *sumsq, const float *inp, int N, int C, int HW)
{
    bn_shape(N, C, HW);
    dt_kern_get()->elem->bn_sums(sum, sumsq, inp, N, C, HW);
}

void dt_bn_forward_train(float *out, float *save_mean, float *save_invstd, float *running_mean,
                         float *running_var, const float *inp, const float *weight,
                         const float *bias, const double *sum, const double *sumsq, double count,
                         int N, int C, int HW, float eps, float momentum)
{
    const struct dt_kelem *k = dt_kern_get()->elem;
    bn_shape(N, C, HW);
    /* torch: "Expected more than 1 value per channel when training" */
    DT_ASSERT(count > 1.0);
    DT_ASSERT(eps >= 0.0f && momentum >= 0.0f && momentum <= 1.0f);
    for (int c = 0; c < C; c++) {
        double mean = sum[c] / count;
        double var = sumsq[c] / count - mean * mean;
        var = var > 0.0 ? var : 0.0;
        double invstd = 1.0 / sqrt(var + eps);
        save_mean[c] = (float)mean;
        save_invstd[c] = (float)invstd;
        /* torch batch_norm_cpu_update_stats_template: momentum * stat + (1 - momentum) * running */
        if (running_mean)
            running_mean[c] = (float)(momentum * mean + (1.0 - momentum) * running_mean[c]);
        if (running_var)
            running_var[c] = (float)(momentum * (var * count / (count - 1.0)) +
                                     (1.0 - momentum) * running_var[c]);
        const float a = (float)invstd * (weight ? weight[c] : 1.0f);
        const float b = bias ? bias[c] : 0.0f;
        k->bn_affine(out, inp, N, C, HW, c, (float)mean, a, b);
    }
}

void dt_bn_forward_eval(float *out, const float *inp, const float *running_mean,
                        const float *running_var, const float *weight, const float *bias, int N,
                        int C, int HW, float eps)
{
    bn_shape(N, C, HW);
    const struct dt_kelem *k = dt_kern_get()->elem;
    for (int c = 0; c < C; c++) {
        const float invstd = (float)(1.0 / sqrt((double)running_var[c] + eps));
        const float a = invstd * (weight ? weight[c] : 1.0f);
        const float b = bias ? bias[c] : 0.0f;
        k->bn_affine(out, inp, N, C, HW, c, running_mean[c], a, b);
    }
}

void dt_bn_backward_reduce(double *sum_dy, double *sum_dy_xhat, const float *dout, const float *inp,
                           const float *save_mean, const float *save_invstd, int N, int C, int HW)
{
    bn_shape(N, C, HW);
    /* sum_dy_xhat first holds sum dy * x */
    dt_kern_get()->elem->bn_dots(sum_dy, sum_dy_xhat, dout, inp, N, C, HW);
    for (int c = 0; c < C; c++) {
        /* sum dy * (x - mean) * invstd = (sum dy * x - mean * sum dy) * invstd */
        const double s = sum_dy[c], sxy = sum_dy_xhat[c];
        sum_dy_xhat[c] = (sxy - (double)save_mean[c] * s) * save_invstd[c];
    }
}

void dt_bn_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                    const float *save_mean, const float *save_invstd, const float *weight,
                    const double *local_sum_dy, const double *local_sum_dy_xhat,
                    const double *global_sum_dy, const double *global_sum_dy_xhat, double count,
                    int N, int C, int HW, int accum)
{
    bn_shape(N, C, HW);
    for (int c = 0; c < C; c++) {
        if (dweight)
            dweight[c] = (float)local_sum_dy_xhat[c];
        if (dbias)
            dbias[c] = (float)local_sum_dy[c];
    }
    if (!dinp)
        return;
    DT_ASSERT(count > 0.0);
    for (int c = 0; c < C; c++) {
        /* dx = w * invstd * (dy - mean_dy - (x - mean) * invstd * mean_dy_xhat) */
        const double invstd = save_invstd[c];
        const float k = (float)(invstd * (weight ? weight[c] : 1.0f));
        const float mean_dy = (float)(global_sum_dy[c] / count);
        const float slope = (float)(invstd * global_sum_dy_xhat[c] / count);
        dt_kern_get()->elem->bn_backward(dinp, dout, inp, N, C, HW, c, k, mean_dy, save_mean[c],
                                         slope, accum);
    }
}
