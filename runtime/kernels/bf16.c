/*
 * bf16.c - scalar references of the bf16 family (bf16.h): written without the vector code's
 * tricks, so the tests compare two derivations of VDPBF16PS / VCVTNEPS2BF16 with the instruction.
 */
#include "bf16.h"

#include <math.h>
#include <string.h>

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float dt_bf16_float(uint16_t h) { return from_bits((uint32_t)h << 16); }

uint16_t dt_bf16_round(float f)
{
    const uint32_t u = bits(f);
    if (isnan(f))
        return (uint16_t)((u >> 16) | 0x40u);
    if (fpclassify(f) == FP_SUBNORMAL || f == 0.0f)
        return (uint16_t)((u >> 16) & 0x8000u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* denormals as signed zeros (the instruction's DAZ) */
static float daz(float x) { return fpclassify(x) == FP_SUBNORMAL ? copysignf(0.0f, x) : x; }

/* fma(a, b, c), one rounding to nearest even, then flushed to a signed zero when tiny after
 * rounding with an unbounded exponent: |a b + c| below 2^-126 (1 - 2^-25), the midpoint under
 * 2^-126 (which rounds up to 2^-126). a b is exact in double; a tiny sum has terms so small that
 * the double sum a b + c stays on the same side of that midpoint. */
static float step(float a, float b, float c)
{
    const float r = fmaf(a, b, c);
    const double s = (double)a * b + c;
    if (isfinite(r) && fabs(s) < 0x1p-126 - 0x1p-151)
        return copysignf(0.0f, r);
    return r;
}

float dt_bf16_dot_1(float acc, uint32_t a, uint32_t b)
{
    const float a1 = daz(dt_bf16_float((uint16_t)(a >> 16))),
                b1 = daz(dt_bf16_float((uint16_t)(b >> 16)));
    const float a0 = daz(dt_bf16_float((uint16_t)a)), b0 = daz(dt_bf16_float((uint16_t)b));
    const float r = step(a0, b0, step(a1, b1, daz(acc)));
    if (!isnan(r))
        return r;
    /* the first NaN input in the order a.lo, b.lo, a.hi, b.hi, acc, quieted; else 0xffc00000 */
    const float in[5] = {a0, b0, a1, b1, acc};
    for (int i = 0; i < 5; i++)
        if (isnan(in[i]))
            return from_bits(bits(in[i]) | 0x00400000u);
    return from_bits(0xffc00000u);
}
