/*
 * rng.h - MT19937 identical to PyTorch's CPU generator (aten/src/ATen/core/MT19937RNGEngine.h),
 * and torch.randperm's CPU algorithm on top of it.
 *
 * torch.Generator().manual_seed(s) seeds mt19937 with (s & 0xffffffff) by the standard
 * init_genrand recurrence; generator->random() is one 32-bit MT output. randperm(n) for
 * n < 2^32/20 (PyTorch's "small n" branch, aten/src/ATen/native/TensorFactories.cpp) is a forward
 * Fisher-Yates: for i in [0, n-1): z = random() % (n - i); swap(r[i], r[i + z]).
 */
#ifndef DT_RNG_H
#define DT_RNG_H

#include <stdint.h>

#define DT_MT_N 624

typedef struct dt_mt19937 {
    uint32_t state[DT_MT_N];
    int next; /* index of the next output word; DT_MT_N means "twist first" */
} dt_mt19937;

/* Seeds like torch.Generator.manual_seed(seed): only the low 32 bits are used. */
void dt_mt_seed(dt_mt19937 *g, uint64_t seed);
/* One 32-bit output. */
uint32_t dt_mt_next(dt_mt19937 *g);
/* Uniform float in [0, 1) with 24 random bits (PyTorch's uniform_ for float32). */
float dt_mt_uniform(dt_mt19937 *g);

/* Writes torch.randperm(n, generator=g) into perm[0..n). n must be < 2^32 / 20 (asserted). */
void dt_randperm(int64_t *perm, int64_t n, dt_mt19937 *g);

/* Counter-based keys and streams on SplitMix64 (Steele, Lea & Flood, "Fast splittable
 * pseudorandom number generators", OOPSLA 2014; the constants of Vigna's splitmix64.c), used by
 * dropout masks, augmentation draws and the mixup generator's seeding. */

/* Word j of the SplitMix64 stream seeded with `seed`: its output function applied to
 * seed + (j + 1) * 0x9E3779B97F4A7C15. A pure function of (seed, j). */
static inline uint64_t dt_rng_word(uint64_t seed, uint64_t j)
{
    uint64_t z = seed + (j + 1) * UINT64_C(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* One step of a key: h mixed (the first word of its stream), then x folded in. */
static inline uint64_t dt_rng_mix(uint64_t h, uint64_t x) { return dt_rng_word(h, 0) ^ x; }

/* The key of a stream from a seed and three coordinates (e.g. rank, step, layer): three mixing
 * steps, so nearby coordinates give unrelated keys. */
static inline uint64_t dt_rng_key(uint64_t seed, uint64_t a, uint64_t b, uint64_t c)
{
    return dt_rng_mix(dt_rng_mix(dt_rng_mix(seed, a), b), c);
}

#endif
