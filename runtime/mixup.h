/*
 * mixup.h - mixup (Zhang et al. 2018; the lecture's section 6) and label smoothing (Szegedy et
 * al. 2016, PyTorch's CrossEntropyLoss(label_smoothing=eps) convention), as soft targets for
 * dt_xent_forward/backward.
 *
 * Random streams are counter-based: every draw of a step comes from a generator seeded by
 * (seed, rank, step), so runs are reproducible and a resumed run draws the same numbers.
 */
#ifndef DT_MIXUP_H
#define DT_MIXUP_H

#include <stdint.h>

/* splitmix64-seeded xoshiro256** generator. */
typedef struct dt_rng {
    uint64_t s[4];
} dt_rng;

/* Seeds from any number of words (mixed with splitmix64). */
void dt_rng_seed(dt_rng *r, uint64_t a, uint64_t b, uint64_t c);
uint64_t dt_rng_next(dt_rng *r);
/* Uniform double in (0, 1) (never 0 or 1: safe under log). */
double dt_rng_uniform(dt_rng *r);
/* Standard normal (Box-Muller). */
double dt_rng_normal(dt_rng *r);
/* Gamma(shape, 1) by Marsaglia & Tsang (2000), exact for any shape > 0 (shape < 1 by the
 * boost Gamma(shape + 1) * U^(1/shape)). */
double dt_rng_gamma(dt_rng *r, double shape);
/* Beta(a, b) = X / (X + Y), X ~ Gamma(a), Y ~ Gamma(b). */
double dt_rng_beta(dt_rng *r, double a, double b);

/* Soft targets t (N, K) for labels y (N) with label smoothing eps: 1 - eps + eps/K at the label,
 * eps/K elsewhere (eps = 0: one-hot). */
void dt_targets_smooth(float *t, const int *y, int N, int K, float eps);

/* Mixup of a batch: x (N, D) <- lam * x + (1 - lam) * x[perm]; t (N, K) soft targets likewise
 * (mixing smoothed one-hots of y and y[perm]). perm (N) is a permutation (pairs within the
 * batch, equivalent to the lecture's two shuffled loaders); xtmp (N, D) scratch. */
void dt_mixup_apply(float *x, float *t, const int *y, const int *perm, int N, long D, int K,
                    float lam, float eps, float *xtmp);

/* The step's lambda ~ Beta(alpha, alpha) and a uniform random permutation of N, from the
 * (seed, rank, step) stream. */
double dt_mixup_draw(uint64_t seed, int rank, int64_t step, double alpha, int *perm, int N);

#endif
