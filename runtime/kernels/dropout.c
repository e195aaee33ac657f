/*
 * dropout.c - the elementwise layers with no parameters besides ReLU (relu.c): inverted dropout
 * (torch.nn.Dropout) and the residual add, see layer_kernels.h.
 *
 * Dropout masks come from a counter-based generator: word j of the stream is SplitMix64's output
 * function applied to seed + (j + 1) * 0x9E3779B97F4A7C15 (Steele, Lea & Flood, "Fast splittable
 * pseudorandom number generators", OOPSLA 2014), i.e. the j-th output of a SplitMix64 seeded with
 * `seed` (dt_rng_word, rng.h). Word j decides elements 2j (low 32 bits) and 2j + 1 (high 32 bits): element i is kept
 * when its 32-bit value u satisfies u >= p * 2^32, so P(keep) = 1 - p to within 2^-32. Being a
 * pure function of (seed, i), a mask can be regenerated or computed in parallel without state.
 * The scale 1 / (1 - p) is rounded to float once, as torch's _dropout_impl (noise.div_(1 - p)).
 * Applying the mask (inp * (mask * scale), multiplied rather than selected like torch, so NaN
 * and inf inputs stay NaN when dropped) and the add are the `elem` family's loops (kernels/elem.h).
 */
#include <stdint.h>

#include "common.h"
#include "kernels/elem.h"
#include "kernels/isa.h"
#include "kernels/tpool.h"
#include "layer_kernels.h"
#include "rng.h"

/* the scale of kept values; 0 when everything is dropped (p = 1) */
static float keep_scale(float p)
{
    DT_ASSERT(p >= 0.0f && p <= 1.0f);
    return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
}

/* Loops over the pool (kernels/tpool.h) in parts of at least this many values; every value is
 * computed alone (the mask is a function of its index), so the parts change no bits. */
#define GRAIN 16384

typedef struct {
    float *out;
    uint8_t *mask;
    const float *a, *b;
    float scale;
    int accum, rnd;
    uint64_t seed, threshold;
} elem_job;

/* mask[lo, hi) (lo even: a word decides two values) and out = inp * mask * scale there */
static void dropout_part(void *arg, long lo, long hi)
{
    const elem_job *j = arg;
    uint8_t *mask = j->mask;
    long i = lo;
    for (; i + 2 <= hi; i += 2) {
        uint64_t r = dt_rng_word(j->seed, (uint64_t)i / 2);
        mask[i] = (r & 0xffffffffu) >= j->threshold;
        mask[i + 1] = (r >> 32) >= j->threshold;
    }
    if (i < hi)
        mask[i] = (dt_rng_word(j->seed, (uint64_t)i / 2) & 0xffffffffu) >= j->threshold;
    dt_kern_get()->elem->mask_apply(j->out + lo, mask + lo, j->a + lo, hi - lo, j->scale, 0);
}

static void mask_part(void *arg, long lo, long hi)
{
    const elem_job *j = arg;
    dt_kern_get()->elem->mask_apply(j->out + lo, j->mask + lo, j->a + lo, hi - lo, j->scale,
                                    j->accum);
}

static void add_part(void *arg, long lo, long hi)
{
    const elem_job *j = arg;
    dt_kern_get()->elem->add_forward(j->out + lo, j->a + lo, j->b + lo, hi - lo, j->rnd);
}

static void add_back_part(void *arg, long lo, long hi)
{
    const elem_job *j = arg;
    dt_kern_get()->elem->add_backward(j->out + lo, j->a + lo, hi - lo, j->accum, j->rnd);
}

void dt_dropout_forward(float *out, uint8_t *mask, const float *inp, long n, float p, uint64_t seed)
{
    DT_ASSERT(n >= 0);
    /* threshold in [0, 2^32]: u (32 bits) < threshold drops */
    elem_job j = {.out = out,
                  .mask = mask,
                  .a = inp,
                  .scale = keep_scale(p),
                  .seed = seed,
                  .threshold = (uint64_t)((double)p * 4294967296.0)};
    dt_tpool_for(n, GRAIN, 64, dropout_part, &j);
}

void dt_dropout_backward(float *dinp, const float *dout, const uint8_t *mask, long n, float p,
                         int accum)
{
    DT_ASSERT(n >= 0);
    elem_job j = {
        .out = dinp, .mask = (uint8_t *)mask, .a = dout, .scale = keep_scale(p), .accum = accum};
    dt_tpool_for(n, GRAIN, 64, mask_part, &j);
}

void dt_add_forward(float *out, const float *a, const float *b, long n, int rnd)
{
    DT_ASSERT(n >= 0);
    elem_job j = {.out = out, .a = a, .b = b, .rnd = rnd};
    dt_tpool_for(n, GRAIN, 64, add_part, &j);
}

void dt_add_backward(float *dinp, const float *dout, long n, int accum, int rnd)
{
    DT_ASSERT(n >= 0);
    elem_job j = {.out = dinp, .a = dout, .accum = accum, .rnd = rnd};
    dt_tpool_for(n, GRAIN, 64, add_back_part, &j);
}
