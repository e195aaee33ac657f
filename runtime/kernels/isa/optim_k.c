/*
 * isa/optim_k.c - the `optim` kernel family (kernels/optim_k.h): the optimizers' update loops,
 * compiled once per instruction set by the Makefile.
 *
 * The loops are written per element, not over vf: each is an expression of fmaf, sqrtf and
 * correctly rounded float operations that the compiler vectorizes with the ISA's registers
 * (fmaf -> vfmadd with -mfma; sqrtf -> vsqrtps with -fno-math-errno). fmaf is one rounding by
 * definition, so the lane count and the instruction set change no bit: every ISA, generic
 * included (libm's fmaf), computes torch's trajectories (optim.c). Each loop is instantiated per
 * combination of its flags (static inline with constant arguments), so none branches inside.
 * The formulas and their torch sources are in optim.c, next to the constants.
 */
#include "kernels/isa/vec.h"

#include <math.h>

#include "kernels/optim_k.h"
#include "kernels/tpool.h"

/* Our float expressions must round every operation, as torch's unfused kernels do (gcc: -std=c11
 * implies -ffp-contract=off; gcc rejects this pragma). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

DT_KINL void sgd_loop(const dt_kopt_sgd k, float *restrict p, const float *restrict grad,
                      float *restrict b, size_t n, const int l2, const int mode)
{
    for (size_t i = 0; i < n; i++) {
        float g = grad[i];
        if (l2)
            g = fmaf(p[i], k.wd, g);
        if (mode != 0) {
            float bi = (mode == 1 || mode == 4) ? g : fmaf(g, k.damp1, b[i] * k.mu);
            b[i] = bi;
            g = (mode == 3 || mode == 4) ? fmaf(bi, k.mu, g) : bi;
        }
        p[i] = fmaf(g, k.nlr, p[i]);
    }
}

static void sgd(const dt_kopt_sgd *kp, float *restrict p, const float *restrict grad,
                float *restrict b, size_t n, int l2, int mode)
{
    const dt_kopt_sgd k = *kp;
    switch ((l2 != 0) * 5 + mode) {
    case 0: sgd_loop(k, p, grad, b, n, 0, 0); break;
    case 1: sgd_loop(k, p, grad, b, n, 0, 1); break;
    case 2: sgd_loop(k, p, grad, b, n, 0, 2); break;
    case 3: sgd_loop(k, p, grad, b, n, 0, 3); break;
    case 4: sgd_loop(k, p, grad, b, n, 0, 4); break;
    case 5: sgd_loop(k, p, grad, b, n, 1, 0); break;
    case 6: sgd_loop(k, p, grad, b, n, 1, 1); break;
    case 7: sgd_loop(k, p, grad, b, n, 1, 2); break;
    case 8: sgd_loop(k, p, grad, b, n, 1, 3); break;
    default: sgd_loop(k, p, grad, b, n, 1, 4); break;
    }
}

DT_KINL void adagrad_loop(const dt_kopt_adagrad k, float *restrict p, const float *restrict grad,
                          float *restrict sum, size_t n, const int l2)
{
    for (size_t i = 0; i < n; i++) {
        float g = grad[i];
        if (l2)
            g = fmaf(p[i], k.wd, g);
        float s = fmaf(1.0f * g, g, sum[i]);
        sum[i] = s;
        float std = sqrtf(s) + k.eps;
        p[i] = p[i] + k.nclr * g / std;
    }
}

static void adagrad(const dt_kopt_adagrad *k, float *restrict p, const float *restrict grad,
                    float *restrict sum, size_t n, int l2)
{
    if (l2)
        adagrad_loop(*k, p, grad, sum, n, 1);
    else
        adagrad_loop(*k, p, grad, sum, n, 0);
}

DT_KINL void adadelta_loop(const dt_kopt_adadelta k, float *restrict p, const float *restrict grad,
                           float *restrict sq, float *restrict acc, size_t n, const int l2)
{
    for (size_t i = 0; i < n; i++) {
        float g = grad[i];
        if (l2)
            g = fmaf(p[i], k.wd, g);
        float s = fmaf(k.rho1 * g, g, sq[i] * k.rho);
        sq[i] = s;
        float std = sqrtf(s + k.eps);
        float delta = sqrtf(acc[i] + k.eps) / std * g;
        acc[i] = fmaf(k.rho1 * delta, delta, acc[i] * k.rho);
        p[i] = fmaf(delta, k.nlr, p[i]);
    }
}

static void adadelta(const dt_kopt_adadelta *k, float *restrict p, const float *restrict grad,
                     float *restrict sq, float *restrict acc, size_t n, int l2)
{
    if (l2)
        adadelta_loop(*k, p, grad, sq, acc, n, 1);
    else
        adadelta_loop(*k, p, grad, sq, acc, n, 0);
}

DT_KINL void rmsprop_loop(const dt_kopt_rmsprop k, float *restrict p, const float *restrict grad,
                          float *restrict sq, float *restrict buf, float *restrict gavg, size_t n,
                          const int l2, const int centered, const int momentum)
{
    for (size_t i = 0; i < n; i++) {
        float g = grad[i];
        if (l2)
            g = fmaf(p[i], k.wd, g);
        float s = fmaf(k.al1 * g, g, sq[i] * k.al);
        sq[i] = s;
        float avg;
        if (centered) {
            float ga = fmaf(g, k.al1, gavg[i] * k.al);
            gavg[i] = ga;
            avg = sqrtf(fmaf(-1.0f * ga, ga, s));
        } else {
            avg = sqrtf(s);
        }
        avg = avg + k.eps;
        if (momentum) {
            float bi = buf[i] * k.mu + 1.0f * g / avg;
            buf[i] = bi;
            p[i] = fmaf(bi, k.nlr, p[i]);
        } else {
            p[i] = p[i] + k.nlr * g / avg;
        }
    }
}

static void rmsprop(const dt_kopt_rmsprop *kp, float *restrict p, const float *restrict grad,
                    float *restrict sq, float *restrict buf, float *restrict gavg, size_t n, int l2,
                    int centered, int momentum)
{
    const dt_kopt_rmsprop k = *kp;
    switch ((l2 != 0) << 2 | (centered != 0) << 1 | (momentum != 0)) {
    case 0: rmsprop_loop(k, p, grad, sq, buf, gavg, n, 0, 0, 0); break;
    case 1: rmsprop_loop(k, p, grad, sq, buf, gavg, n, 0, 0, 1); break;
    case 2: rmsprop_loop(k, p, grad, sq, buf, gavg, n, 0, 1, 0); break;
    case 3: rmsprop_loop(k, p, grad, sq, buf, gavg, n, 0, 1, 1); break;
    case 4: rmsprop_loop(k, p, grad, sq, buf, gavg, n, 1, 0, 0); break;
    case 5: rmsprop_loop(k, p, grad, sq, buf, gavg, n, 1, 0, 1); break;
    case 6: rmsprop_loop(k, p, grad, sq, buf, gavg, n, 1, 1, 0); break;
    default: rmsprop_loop(k, p, grad, sq, buf, gavg, n, 1, 1, 1); break;
    }
}

DT_KINL void adam_loop(const dt_kopt_adam k, float *restrict p, const float *restrict grad,
                       float *restrict m, float *restrict v, float *restrict vmax, size_t n,
                       const int mode, const int amsgrad)
{
    for (size_t i = 0; i < n; i++) {
        float g = grad[i], pi = p[i];
        if (mode == 2)
            pi = pi * k.decay;
        else if (mode == 1)
            g = fmaf(pi, k.wd, g);
        float mi = fmaf(g, k.b1c, m[i] * k.b1);
        float vt = fmaf(k.b2c * g, g, v[i] * k.b2);
        m[i] = mi;
        v[i] = vt;
        if (amsgrad) {
            float a = vmax[i]; /* torch.maximum propagates NaN */
            vt = (a < vt || vt != vt) ? vt : a;
            vmax[i] = vt;
        }
        float denom = sqrtf(vt) / k.bc2_sqrt + k.eps;
        p[i] = pi + k.nstep * mi / denom;
    }
}

static void adam(const dt_kopt_adam *kp, float *restrict p, const float *restrict grad,
                 float *restrict m, float *restrict v, float *restrict vmax, size_t n, int mode,
                 int amsgrad)
{
    const dt_kopt_adam k = *kp;
    switch (mode << 1 | (amsgrad != 0)) {
    case 0: adam_loop(k, p, grad, m, v, vmax, n, 0, 0); break;
    case 1: adam_loop(k, p, grad, m, v, vmax, n, 0, 1); break;
    case 2: adam_loop(k, p, grad, m, v, vmax, n, 1, 0); break;
    case 3: adam_loop(k, p, grad, m, v, vmax, n, 1, 1); break;
    case 4: adam_loop(k, p, grad, m, v, vmax, n, 2, 0); break;
    default: adam_loop(k, p, grad, m, v, vmax, n, 2, 1); break;
    }
}

/* The table's entries split the segment over the thread pool (kernels/tpool.h): every parameter
 * is updated alone, so the parts change no bits. */
#define GRAIN 8192 /* a few microseconds of work per part (lenet5: 61,706 parameters, 7 parts) */

typedef struct {
    int kind;
    const void *k;
    float *p, *a, *b, *c;
    const float *g;
    int x, y, z;
} opt_job;

#define PART(q) ((q) ? (q) + lo : NULL)
static void opt_part(void *arg, long lo, long hi)
{
    const opt_job *j = arg;
    const size_t n = (size_t)(hi - lo);
    float *p = j->p + lo;
    const float *g = j->g + lo;
    switch (j->kind) {
    case 0: sgd(j->k, p, g, PART(j->a), n, j->x, j->y); break;
    case 1: adagrad(j->k, p, g, PART(j->a), n, j->x); break;
    case 2: adadelta(j->k, p, g, PART(j->a), PART(j->b), n, j->x); break;
    case 3: rmsprop(j->k, p, g, PART(j->a), PART(j->b), PART(j->c), n, j->x, j->y, j->z); break;
    default: adam(j->k, p, g, PART(j->a), PART(j->b), PART(j->c), n, j->x, j->y); break;
    }
}
#undef PART

static void par_sgd(const dt_kopt_sgd *k, float *restrict p, const float *restrict grad,
                    float *restrict b, size_t n, int l2, int mode)
{
    opt_job j = {.kind = 0, .k = k, .p = p, .g = grad, .a = b, .x = l2, .y = mode};
    dt_tpool_for((long)n, GRAIN, 64, opt_part, &j);
}

static void par_adagrad(const dt_kopt_adagrad *k, float *restrict p, const float *restrict grad,
                        float *restrict sum, size_t n, int l2)
{
    opt_job j = {.kind = 1, .k = k, .p = p, .g = grad, .a = sum, .x = l2};
    dt_tpool_for((long)n, GRAIN, 64, opt_part, &j);
}

static void par_adadelta(const dt_kopt_adadelta *k, float *restrict p, const float *restrict grad,
                         float *restrict sq, float *restrict acc, size_t n, int l2)
{
    opt_job j = {.kind = 2, .k = k, .p = p, .g = grad, .a = sq, .b = acc, .x = l2};
    dt_tpool_for((long)n, GRAIN, 64, opt_part, &j);
}

static void par_rmsprop(const dt_kopt_rmsprop *k, float *restrict p, const float *restrict grad,
                        float *restrict sq, float *restrict buf, float *restrict gavg, size_t n,
                        int l2, int centered, int momentum)
{
    opt_job j = {.kind = 3,
                 .k = k,
                 .p = p,
                 .g = grad,
                 .a = sq,
                 .b = buf,
                 .c = gavg,
                 .x = l2,
                 .y = centered,
                 .z = momentum};
    dt_tpool_for((long)n, GRAIN, 64, opt_part, &j);
}

static void par_adam(const dt_kopt_adam *k, float *restrict p, const float *restrict grad,
                     float *restrict m, float *restrict v, float *restrict vmax, size_t n, int mode,
                     int amsgrad)
{
    opt_job j = {
        .kind = 4, .k = k, .p = p, .g = grad, .a = m, .b = v, .c = vmax, .x = mode, .y = amsgrad};
    dt_tpool_for((long)n, GRAIN, 64, opt_part, &j);
}

/* sumsq's block: four vd4 (vec.h: one vector operation per step on every ISA), the order of
 * optim_k.h; with AVX-512 the same 16 lanes in two zmm (half the conversions, which bound the
 * loop), each lane the same chain of additions, so the same bits */
#if defined(__AVX512F__)
static double sumsq_block(const float *x, size_t n)
{
    __m512d a = _mm512_setzero_pd(), b = _mm512_setzero_pd();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512d v0 = _mm512_cvtps_pd(_mm256_loadu_ps(x + i));
        const __m512d v1 = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8));
        a = _mm512_add_pd(a, _mm512_mul_pd(v0, v0));
        b = _mm512_add_pd(b, _mm512_mul_pd(v1, v1));
    }
    double l[16];
    _mm512_storeu_pd(l, a);
    _mm512_storeu_pd(l + 8, b);
    for (; i < n; i++)
        l[0] += (double)x[i] * (double)x[i];
    double g[4];
    for (int q = 0; q < 4; q++)
        g[q] = (l[4 * q] + l[4 * q + 1]) + (l[4 * q + 2] + l[4 * q + 3]);
    return ((g[0] + g[1]) + g[2]) + g[3];
}
#else
static double sumsq_block(const float *x, size_t n)
{
    vd4 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const vd4 v0 = ld4d(x + i), v1 = ld4d(x + i + 4), v2 = ld4d(x + i + 8),
                  v3 = ld4d(x + i + 12);
        a0 += v0 * v0;
        a1 += v1 * v1;
        a2 += v2 * v2;
        a3 += v3 * v3;
    }
    for (; i < n; i++)
        a0[0] += (double)x[i] * (double)x[i];
    return ((vd4_fold(a0) + vd4_fold(a1)) + vd4_fold(a2)) + vd4_fold(a3);
}
#endif

typedef struct {
    const float *x;
    size_t n;
    double *part;
} sumsq_job;

static void sumsq_part(void *arg, long lo, long hi)
{
    const sumsq_job *j = arg;
    for (long b = lo; b < hi; b++) {
        const size_t off = (size_t)b * DT_KOPT_SUMSQ_BLOCK;
        const size_t len = j->n - off < DT_KOPT_SUMSQ_BLOCK ? j->n - off : DT_KOPT_SUMSQ_BLOCK;
        j->part[b] = sumsq_block(j->x + off, len);
    }
}

static double par_sumsq(const float *x, size_t n)
{
    enum { ROUND = 64 }; /* blocks per pass over the pool: their sums on the stack */
    double part[ROUND], s = 0.0;
    const size_t nb = (n + DT_KOPT_SUMSQ_BLOCK - 1) / DT_KOPT_SUMSQ_BLOCK;
    for (size_t b0 = 0; b0 < nb; b0 += ROUND) {
        const long m = (long)(nb - b0 < ROUND ? nb - b0 : ROUND);
        const size_t off = b0 * DT_KOPT_SUMSQ_BLOCK;
        sumsq_job j = {x + off, n - off, part};
        dt_tpool_for(m, 1, 1, sumsq_part, &j);
        for (long b = 0; b < m; b++)
            s += part[b];
    }
    return s;
}

const struct dt_koptim DT_KFN(dt_koptim) = {.sgd = par_sgd,
                                            .adagrad = par_adagrad,
                                            .adadelta = par_adadelta,
                                            .rmsprop = par_rmsprop,
                                            .adam = par_adam,
                                            .sumsq = par_sumsq};
