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
 * workspace), and over the HW values of each (n, c) plane innermost.
 */
#include <math.h>
#include <stddef.h>

#include "common.h"
#include "layer_kernels.h"

static void bn_shape(int N, int C, int HW) { DT_ASSERT(N >= 0 && C >= 1 && HW >= 1); }

/* s += sum x, ss += sum x^2 over n values, 4 double lanes (vectorizable without reassociation) */
static inline void sum_sumsq(const float *x, size_t n, double *s, double *ss)
{
    double a[4] = {0}, b[4] = {0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; j++) {
            double v = x[i + j];
            a[j] += v;
            b[j] += v * v;
        }
    for (; i < n; i++) {
        double v = x[i];
        a[0] += v;
        b[0] += v * v;
    }
    *s += (a[0] + a[1]) + (a[2] + a[3]);
    *ss += (b[0] + b[1]) + (b[2] + b[3]);
}

/* s += sum dy, sxy += sum dy * x over n values */
static inline void sum_dot(const float *dy, const float *x, size_t n, double *s, double *sxy)
{
    double a[4] = {0}, b[4] = {0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; j++) {
            double g = dy[i + j];
            a[j] += g;
            b[j] += g * x[i + j];
        }
    for (; i < n; i++) {
        double g = dy[i];
        a[0] += g;
        b[0] += g * x[i];
    }
    *s += (a[0] + a[1]) + (a[2] + a[3]);
    *sxy += (b[0] + b[1]) + (b[2] + b[3]);
}

/* y = (x - mean) * a + b over one plane */
static inline void affine_plane(float *y, const float *x, size_t n, float mean, float a, float b)
{
    for (size_t i = 0; i < n; i++)
        y[i] = (x[i] - mean) * a + b;
}

DT_SIMD void dt_bn_stats(double *sum, double *sumsq, const float *inp, int N, int C, int HW)
{
    bn_shape(N, C, HW);
    for (int c = 0; c < C; c++) {
        double s = 0.0, ss = 0.0;
        for (int n = 0; n < N; n++)
            sum_sumsq(inp + ((size_t)n * C + c) * HW, (size_t)HW, &s, &ss);
        sum[c] = s;
        sumsq[c] = ss;
    }
}

DT_SIMD void dt_bn_forward_train(float *out, float *save_mean, float *save_invstd,
                                 float *running_mean, float *running_var, const float *inp,
                                 const float *weight, const float *bias, const double *sum,
                                 const double *sumsq, double count, int N, int C, int HW, float eps,
                                 float momentum)
{
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
        for (int n = 0; n < N; n++) {
            size_t off = ((size_t)n * C + c) * HW;
            affine_plane(out + off, inp + off, (size_t)HW, (float)mean, a, b);
        }
    }
}

DT_SIMD void dt_bn_forward_eval(float *out, const float *inp, const float *running_mean,
                                const float *running_var, const float *weight, const float *bias,
                                int N, int C, int HW, float eps)
{
    bn_shape(N, C, HW);
    for (int c = 0; c < C; c++) {
        const float invstd = (float)(1.0 / sqrt((double)running_var[c] + eps));
        const float a = invstd * (weight ? weight[c] : 1.0f);
        const float b = bias ? bias[c] : 0.0f;
        for (int n = 0; n < N; n++) {
            size_t off = ((size_t)n * C + c) * HW;
            affine_plane(out + off, inp + off, (size_t)HW, running_mean[c], a, b);
        }
    }
}

DT_SIMD void dt_bn_backward_reduce(double *sum_dy, double *sum_dy_xhat, const float *dout,
                                   const float *inp, const float *save_mean,
                                   const float *save_invstd, int N, int C, int HW)
{
    bn_shape(N, C, HW);
    for (int c = 0; c < C; c++) {
        double s = 0.0, sxy = 0.0;
        for (int n = 0; n < N; n++) {
            size_t off = ((size_t)n * C + c) * HW;
            sum_dot(dout + off, inp + off, (size_t)HW, &s, &sxy);
        }
        /* sum dy * (x - mean) * invstd = (sum dy * x - mean * sum dy) * invstd */
        sum_dy[c] = s;
        sum_dy_xhat[c] = (sxy - (double)save_mean[c] * s) * save_invstd[c];
    }
}

DT_SIMD void dt_bn_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *save_mean, const float *save_invstd,
                            const float *weight, const double *local_sum_dy,
                            const double *local_sum_dy_xhat, const double *global_sum_dy,
                            const double *global_sum_dy_xhat, double count, int N, int C, int HW,
                            int accum)
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
        const float mean = save_mean[c];
        for (int n = 0; n < N; n++) {
            size_t off = ((size_t)n * C + c) * HW;
            const float *dy = dout + off, *x = inp + off;
            float *dx = dinp + off;
            if (accum)
                for (int i = 0; i < HW; i++)
                    dx[i] += k * (dy[i] - mean_dy - (x[i] - mean) * slope);
            else
                for (int i = 0; i < HW; i++)
                    dx[i] = k * (dy[i] - mean_dy - (x[i] - mean) * slope);
        }
    }
}
