/*
 * lr_suggest.c - see lr_suggest.h. Each function follows its fastai.callback.schedule namesake
 * line by line (Python's negative indices written out).
 */
#include "lr_suggest.h"

#include <math.h>
#include <stdlib.h>

#include "common.h"

/* def valley(lrs, losses, num_it):
 *     lds = [1]*n
 *     for i in range(1,n):
 *         for j in range(0,i):
 *             if (losses[i] < losses[j]) and (lds[i] < lds[j] + 1): lds[i] = lds[j] + 1
 *             if lds[max_end] < lds[i]: max_end = i; max_start = max_end - lds[max_end]
 *     sections = (max_end - max_start) / 3
 *     idx = max_start + int(sections) + int(sections/2) */
int dt_lr_valley(const double *loss, int n)
{
    if (n < 1)
        return -1;
    int *lds = dt_xmalloc((size_t)n, sizeof *lds);
    int max_start = 0, max_end = 0;
    for (int i = 0; i < n; i++)
        lds[i] = 1;
    for (int i = 1; i < n; i++)
        for (int j = 0; j < i; j++) {
            if (loss[i] < loss[j] && lds[i] < lds[j] + 1)
                lds[i] = lds[j] + 1;
            if (lds[max_end] < lds[i]) {
                max_end = i;
                max_start = max_end - lds[max_end];
            }
        }
    free(lds);
    double sections = (double)(max_end - max_start) / 3.0;
    int idx = max_start + (int)sections + (int)(sections / 2.0);
    /* max_start is -1 for a run from the first step: Python then indexes from the end */
    return idx < 0 ? idx + n : idx;
}

/* def steep(lrs, losses, num_it):
 *     grads = (losses[1:]-losses[:-1]) / (lrs[1:].log()-lrs[:-1].log())
 *     lr_steep = lrs[grads.argmin()] */
int dt_lr_steep(const double *lr, const double *loss, int n)
{
    int arg = -1;
    double min = INFINITY;
    for (int i = 0; i + 1 < n; i++) {
        double g = (loss[i + 1] - loss[i]) / (log(lr[i + 1]) - log(lr[i]));
        if (g < min) {
            min = g;
            arg = i;
        }
    }
    return arg;
}

/* numpy.gradient(y)[i] with unit spacing: central inside, one-sided at the ends. */
static double np_gradient(const double *y, int n, int i)
{
    if (i == 0)
        return y[1] - y[0];
    if (i == n - 1)
        return y[n - 1] - y[n - 2];
    return (y[i + 1] - y[i - 1]) / 2.0;
}

/* def slide(lrs, losses, num_it, lr_diff=15, thresh=.005, adjust_value=1.):
 *     loss_grad = np.gradient(losses)
 *     r_idx = -1; l_idx = r_idx - lr_diff; local_min_lr = lrs[l_idx]
 *     while (l_idx >= -len(losses)) and (abs(loss_grad[r_idx] - loss_grad[l_idx]) > thresh):
 *         local_min_lr = lrs[l_idx]; r_idx -= 1; l_idx -= 1 */
int dt_lr_slide(const double *loss, int n, int lr_diff, double thresh)
{
    if (n <= lr_diff || n < 2)
        return -1;
    int r = n - 1, l = r - lr_diff, at = l;
    while (l >= 0 && fabs(np_gradient(loss, n, r) - np_gradient(loss, n, l)) > thresh) {
        at = l;
        r--;
        l--;
    }
    return at;
}

/* def minimum(lrs, losses, num_it): lr_min = lrs[losses.argmin()]; return lr_min/10 */
int dt_lr_minimum(const double *loss, int n)
{
    int arg = n > 0 ? 0 : -1;
    for (int i = 1; i < n; i++)
        if (loss[i] < loss[arg])
            arg = i;
    return arg;
}

const char *dt_lr_suggest_name(int k)
{
    static const char *const names[] = {"valley", "steep", "slide", "minimum"};
    return k >= 0 && k < DT_LR_NSUGG ? names[k] : "?";
}

/* Learner.lr_find: lrs, losses = recorder.lrs[num_it//10:-5], recorder.losses[num_it//10:-5],
 * cut at the first NaN; then each suggestion function. */
int dt_lr_suggest(const double *lr, const double *loss, int n, int steps, double *lr_out,
                  int *idx_out)
{
    int lo = steps / 10, hi = n - 5;
    for (int i = lo; i < hi; i++)
        if (!isfinite(loss[i])) { /* torch.isnan; an inf loss ends the usable record too */
            hi = i;
            break;
        }
    for (int k = 0; k < DT_LR_NSUGG; k++) {
        lr_out[k] = NAN;
        idx_out[k] = -1;
    }
    if (hi - lo < 2)
        return 0;
    const double *x = lr + lo, *y = loss + lo;
    const int m = hi - lo;
    int idx[DT_LR_NSUGG] = {dt_lr_valley(y, m), dt_lr_steep(x, y, m), dt_lr_slide(y, m, 15, 0.005),
                            dt_lr_minimum(y, m)};
    int count = 0;
    for (int k = 0; k < DT_LR_NSUGG; k++) {
        if (idx[k] < 0)
            continue;
        idx_out[k] = lo + idx[k];
        lr_out[k] = k == DT_LR_MINIMUM ? x[idx[k]] / 10.0 : x[idx[k]];
        count++;
    }
    return count;
}
