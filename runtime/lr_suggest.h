/*
 * lr_suggest.h - fast.ai's four learning-rate suggestions from an LR range test's record
 * (fastai.callback.schedule, fastai 2.4+: valley, steep, slide, minimum; Learner.lr_find's
 * default is valley). Pure functions over arrays: lr[i] the step's lr, loss[i] its smoothed loss.
 *
 * Learner.lr_find applies them to the recorded smoothed losses without the first num_it // 10 and
 * the last 5 steps, cut before the first NaN: dt_lr_suggest does the same (steps = num_it, the
 * sweep's planned length; n the steps taken).
 */
#ifndef DT_LR_SUGGEST_H
#define DT_LR_SUGGEST_H

enum { DT_LR_VALLEY, DT_LR_STEEP, DT_LR_SLIDE, DT_LR_MINIMUM, DT_LR_NSUGG };

/* valley: the longest (not necessarily contiguous) strictly decreasing run of losses, found as
 * fast.ai does (O(n^2) longest decreasing subsequence, max_start = max_end - its length); the
 * index max_start + int(len / 3) + int(len / 3 / 2), len = max_end - max_start (a negative index
 * counts from the end, as Python's). -1 when n < 1. */
int dt_lr_valley(const double *loss, int n);

/* steep: the index i of the most negative (loss[i+1] - loss[i]) / (ln lr[i+1] - ln lr[i]) (the
 * first one on ties). -1 when n < 2. */
int dt_lr_steep(const double *lr, const double *loss, int n);

/* slide (fast.ai's defaults lr_diff 15, thresh 0.005): g = numpy.gradient(loss) (unit spacing);
 * from the right end r = n-1, l = r - lr_diff, step both left while l >= 0 and |g[r] - g[l]| >
 * thresh; the index l of the last step taken (l = n-1-lr_diff when none). -1 when n <= lr_diff. */
int dt_lr_slide(const double *loss, int n, int lr_diff, double thresh);

/* minimum: the index of the lowest loss (the first on ties); the suggestion is its lr / 10.
 * -1 when n < 1. */
int dt_lr_minimum(const double *loss, int n);

/* The four suggestions of a record of n steps of a sweep planned for `steps`: lr_out[k] the
 * suggested lr (NaN: none), idx_out[k] the step it comes from (minimum: the lowest loss's step;
 * -1: none), k in DT_LR_VALLEY .. DT_LR_MINIMUM. Returns how many exist (0 when the window
 * [steps / 10, n - 5) holds fewer than 2 finite losses). */
int dt_lr_suggest(const double *lr, const double *loss, int n, int steps, double *lr_out,
                  int *idx_out);

/* "valley", "steep", "slide", "minimum". */
const char *dt_lr_suggest_name(int k);

#endif
