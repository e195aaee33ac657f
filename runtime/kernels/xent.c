/*
 * xent.c - softmax cross-entropy loss (torch.nn.CrossEntropyLoss, reduction='mean'), see kernels.h.
 *
 * loss_n = logsumexp(z_n) - sum_k t_nk z_nk, with logsumexp(z) = m + log(sum_k exp(z_k - m)),
 * m = max_k z_k, so exp never overflows. The gradient is (softmax(z) - t) / N.
 */
#include <math.h>
#include <stddef.h>

#include "kernels.h"

double dt_xent_forward(float *probs, const float *logits, const int *labels, const float *targets,
                       int N, int K, int *correct)
{
    double total = 0.0;
    int hits = 0;
    for (int n = 0; n < N; n++) {
        const float *z = logits + (size_t)n * K;
        float *p = probs + (size_t)n * K;
        float m = z[0];
        int arg = 0;
        for (int k = 1; k < K; k++)
            if (z[k] > m) {
                m = z[k];
                arg = k;
            }
        double sum = 0.0;
        for (int k = 0; k < K; k++) {
            p[k] = expf(z[k] - m);
            sum += p[k];
        }
        float inv = (float)(1.0 / sum);
        for (int k = 0; k < K; k++)
            p[k] *= inv;
        double lse = (double)m + log(sum);
        if (labels) {
            total += lse - z[labels[n]];
            hits += arg == labels[n];
        } else {
            const float *t = targets + (size_t)n * K;
            for (int k = 0; k < K; k++)
                total += t[k] * (lse - z[k]);
        }
    }
    if (correct)
        *correct = hits;
    return total / N;
}

void dt_xent_backward(float *dlogits, const float *probs, const int *labels, const float *targets,
                      int N, int K, float scale)
{
    float inv = 1.0f / scale;
    for (int n = 0; n < N; n++) {
        const float *p = probs + (size_t)n * K;
        float *d = dlogits + (size_t)n * K;
        if (labels) {
            for (int k = 0; k < K; k++)
                d[k] = p[k] * inv;
            d[labels[n]] -= inv;
        } else {
            const float *t = targets + (size_t)n * K;
            for (int k = 0; k < K; k++)
                d[k] = (p[k] - t[k]) * inv;
        }
    }
}
