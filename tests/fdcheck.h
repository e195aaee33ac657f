/*
 * fdcheck.h - gradients against finite differences: a seeded random source (rng, randu, fill),
 * falloc, max_abs, central differences through a float function with a double loss, and
 * check_grad (analytic vs finite differences, plus the not-all-zero guard).
 *
 * Each tests/test_*.c is linked alone, so this is a header of static functions: include it in
 * one test after check.h, and seed rng (dt_mt_seed) in main.
 */
#ifndef DT_FDCHECK_H
#define DT_FDCHECK_H

#include <math.h>
#include <stdio.h>

#include "check.h"
#include "common.h"
#include "rng.h"

static dt_mt19937 rng;

static inline float randu(float lo, float hi) { return lo + (hi - lo) * dt_mt_uniform(&rng); }

static inline void fill(float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = randu(lo, hi);
}

static inline float *falloc(size_t n) { return dt_xcalloc(n ? n : 1, sizeof(float)); }

static inline double max_abs(const float *x, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

/* ---- central differences through a float function with a double loss ---- */

typedef double (*loss_fn)(void *ctx);

/* d loss / d *v by central differences; the step actually taken is what float allows. */
static inline double central_diff(loss_fn f, void *ctx, float *v, float h)
{
    const float v0 = *v;
    *v = v0 + h;
    const double vp = *v, lp = f(ctx);
    *v = v0 - h;
    const double vm = *v, lm = f(ctx);
    *v = v0;
    return (lp - lm) / (vp - vm);
}

/* fd[i] = d loss / d x[i] for all i < n */
static inline void central_diff_all(float *fd, loss_fn f, void *ctx, float *x, size_t n, float h)
{
    for (size_t i = 0; i < n; i++)
        fd[i] = (float)central_diff(f, ctx, &x[i], h);
}

/* analytic vs finite differences, plus the not-all-zero guard */
static inline void check_grad(const float *analytic, const float *fd, size_t n, double rtol,
                              double atol, const char *what)
{
    if (!check_tensor_close_at(analytic, fd, (long)n, rtol, atol, what, __FILE__, __LINE__))
        fprintf(stderr, "  %s: analytic gradient vs finite differences\n", what);
    if (max_abs(analytic, n) > 1e-4) {
        check_passed++;
    } else {
        check_failed++;
        fprintf(stderr, "FAIL %s: the analytic gradient is (almost) all zero\n", what);
    }
}

#endif
