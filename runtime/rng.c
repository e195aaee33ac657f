/*
 * rng.c - see rng.h. Reference: Matsumoto & Nishimura (1998), mt19937ar.c; PyTorch
 * aten/src/ATen/core/MT19937RNGEngine.h (same constants, same seeding).
 */
#include "rng.h"

#include "common.h"

#define MT_M 397
#define MATRIX_A 0x9908b0dfu
#define UPPER 0x80000000u
#define LOWER 0x7fffffffu

void dt_mt_seed(dt_mt19937 *g, uint64_t seed)
{
    g->state[0] = (uint32_t)(seed & 0xffffffffu);
    for (int j = 1; j < DT_MT_N; j++)
        g->state[j] = 1812433253u * (g->state[j - 1] ^ (g->state[j - 1] >> 30)) + (uint32_t)j;
    g->next = DT_MT_N;
}

static void twist(dt_mt19937 *g)
{
    uint32_t *s = g->state;
    for (int i = 0; i < DT_MT_N; i++) {
        uint32_t y = (s[i] & UPPER) | (s[(i + 1) % DT_MT_N] & LOWER);
        s[i] = s[(i + MT_M) % DT_MT_N] ^ (y >> 1) ^ ((y & 1u) ? MATRIX_A : 0u);
    }
    g->next = 0;
}

uint32_t dt_mt_next(dt_mt19937 *g)
{
    if (g->next >= DT_MT_N)
        twist(g);
    uint32_t y = g->state[g->next++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

float dt_mt_uniform(dt_mt19937 *g)
{
    return (float)(dt_mt_next(g) & ((1u << 24) - 1)) * (1.0f / 16777216.0f);
}

void dt_randperm(int64_t *perm, int64_t n, dt_mt19937 *g)
{
    DT_ASSERT(n >= 0 && n < (int64_t)(UINT32_MAX / 20));
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    for (int64_t i = 0; i < n - 1; i++) {
        int64_t z = (int64_t)(dt_mt_next(g) % (uint32_t)(n - i));
        int64_t t = perm[i];
        perm[i] = perm[i + z];
        perm[i + z] = t;
    }
}
