/*
 * mixup.c - see mixup.h.
 */
#include "mixup.h"

#include <math.h>
#include <string.h>

#include "common.h"
#include "rng.h"

#define PI_ 3.14159265358979323846

void dt_rng_seed(dt_rng *r, uint64_t a, uint64_t b, uint64_t c)
{
    /* two mixing steps, then the first four words of the key's SplitMix64 stream (rng.h) */
    const uint64_t key = dt_rng_mix(dt_rng_mix(a, b), c);
    for (int i = 0; i < 4; i++)
        r->s[i] = dt_rng_word(key, (uint64_t)i);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** (Blackman & Vigna 2018). */
uint64_t dt_rng_next(dt_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double dt_rng_uniform(dt_rng *r) { return ((double)(dt_rng_next(r) >> 11) + 0.5) * 0x1.0p-53; }

double dt_rng_normal(dt_rng *r)
{
    double u1 = dt_rng_uniform(r), u2 = dt_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * PI_ * u2);
}

double dt_rng_gamma(dt_rng *r, double shape)
{
    DT_ASSERT(shape > 0.0);
    if (shape < 1.0) {
        double u = dt_rng_uniform(r);
        return dt_rng_gamma(r, shape + 1.0) * pow(u, 1.0 / shape);
    }
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = dt_rng_normal(r);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        double u = dt_rng_uniform(r);
        if (u < 1.0 - 0.0331 * x * x * x * x)
            return d * v;
        if (log(u) < 0.5 * x * x + d * (1.0 - v + log(v)))
            return d * v;
    }
}

double dt_rng_beta(dt_rng *r, double a, double b)
{
    double x = dt_rng_gamma(r, a), y = dt_rng_gamma(r, b);
    return x / (x + y);
}

void dt_targets_smooth(float *t, const int *y, int N, int K, float eps)
{
    float off = eps / (float)K, on = 1.0f - eps + off;
    for (int n = 0; n < N; n++) {
        for (int k = 0; k < K; k++)
            t[(size_t)n * K + k] = off;
        t[(size_t)n * K + y[n]] = on;
    }
}

void dt_mixup_apply(float *x, float *t, const int *y, const int *perm, int N, long D, int K,
                    float lam, float eps, float *xtmp)
{
    memcpy(xtmp, x, (size_t)N * (size_t)D * sizeof *x);
    float mu = 1.0f - lam, off = eps / (float)K, on = 1.0f - eps + off;
    for (int n = 0; n < N; n++) {
        float *xi = x + (size_t)n * D;
        const float *xj = xtmp + (size_t)perm[n] * D;
        for (long d = 0; d < D; d++)
            xi[d] = lam * xi[d] + mu * xj[d];
        float *ti = t + (size_t)n * K;
        for (int k = 0; k < K; k++)
            ti[k] = off;
        ti[y[n]] += lam * (on - off);
        ti[y[perm[n]]] += mu * (on - off);
    }
}

double dt_mixup_draw(uint64_t seed, int rank, int64_t step, double alpha, int *perm, int N)
{
    dt_rng r;
    dt_rng_seed(&r, seed ^ 0x6d69787570ull /* "mixup" */, (uint64_t)rank, (uint64_t)step);
    double lam = dt_rng_beta(&r, alpha, alpha);
    for (int i = 0; i < N; i++)
        perm[i] = i;
    for (int i = N - 1; i > 0; i--) {
        int j = (int)(dt_rng_next(&r) % (uint64_t)(i + 1));
        int tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    return lam;
}
