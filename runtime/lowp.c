/*
 * lowp.c - float16 / bfloat16 rounding and the dynamic loss scaler, see lowp.h.
 */
#include "lowp.h"
#include "state.h"

#include <math.h>
#include <string.h>

#include "common.h"

float dt_round_bf16_1(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return f; /* NaN */
    /* round to nearest even on the upper 16 bits; a carry into the exponent is correct (up to
     * infinity beyond bfloat16's largest value) */
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&f, &u, sizeof f);
    return f;
}

float dt_round_fp16_1(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    const uint32_t sign = u & 0x80000000u, a = u & 0x7fffffffu;
    if (a >= 0x7f800000u)
        return f; /* inf, NaN */
    uint32_t r;
    if (a >= 0x477ff000u) { /* >= 65520, halfway past 65504: rounds to infinity */
        r = 0x7f800000u;
    } else if (a >= 0x38800000u) { /* normal float16 (>= 2^-14): 10 mantissa bits, nearest even */
        r = (a + 0xfffu + ((a >> 13) & 1u)) & ~0x1fffu;
    } else if (a > 0x33000000u) { /* subnormal float16: multiples of 2^-24, nearest even */
        float m;
        memcpy(&m, &a, sizeof m);
        m = nearbyintf(m * 16777216.0f) / 16777216.0f; /* both exact: powers of 2, < 1024 */
        memcpy(&r, &m, sizeof r);
    } else { /* <= 2^-25: the tie at 2^-25 goes to the even 0 */
        r = 0;
    }
    r |= sign;
    memcpy(&f, &r, sizeof f);
    return f;
}

DT_SIMD void dt_round_bf16(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        /* NaN: keep (the select keeps the loop branch-free, so it vectorizes) */
        const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
        u = (u & 0x7fffffffu) > 0x7f800000u ? u : rounded;
        memcpy(&x[i], &u, sizeof u);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* F16C's conversion (VCVTPS2PH with round-to-nearest-even, then back): IEEE's, like torch's */
__attribute__((target("avx,f16c"))) static void round_fp16_f16c(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++)
        x[i] = dt_round_fp16_1(x[i]);
}

static int have_f16c(void)
{
    static int have = -1;
    if (have < 0) {
        __builtin_cpu_init();
        have = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
    }
    return have;
}
#endif

void dt_round_fp16(float *x, size_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (have_f16c()) {
        round_fp16_f16c(x, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        x[i] = dt_round_fp16_1(x[i]);
}

void dt_round_to(int format, float *x, size_t n)
{
    if (format == DT_FP16)
        dt_round_fp16(x, n);
    else if (format == DT_BF16)
        dt_round_bf16(x, n);
}

void dt_scaler_init(dt_scaler *s, double scale, int dynamic, int64_t growth_interval)
{
    DT_ASSERT(scale > 0 && growth_interval >= 1);
    memset(s, 0, sizeof *s);
    s->scale = scale;
    s->dynamic = dynamic;
    s->growth_interval = growth_interval;
}

int dt_scaler_unscale_update(dt_scaler *s, float *g, size_t n)
{
    int finite = 1;
    for (size_t i = 0; i < n; i++)
        finite &= isfinite(g[i]) != 0;
    if (finite && s->scale != 1.0) {
        /* GradScaler.unscale_: inv_scale = scale.double().reciprocal().float() */
        const float inv = (float)(1.0 / s->scale);
        for (size_t i = 0; i < n; i++)
            g[i] *= inv;
    }
    if (!finite)
        s->skipped++;
    if (s->dynamic) {
        if (!finite) {
            s->scale *= 0.5;
            s->growth_tracker = 0;
        } else if (++s->growth_tracker == s->growth_interval) {
            s->scale *= 2.0;
            s->growth_tracker = 0;
        }
    }
    return finite;
}

void dt_scaler_register_state(dt_scaler *s, struct dt_state *st)
{
    if (!(s->scale > 0.0))
        return;
    dt_state_add(st, "amp/scale", DT_CK_F64, 0, NULL, &s->scale, DT_STATE_SHARED,
                 DT_STATE_FINITE | DT_STATE_POSITIVE);
    dt_state_add(st, "amp/growth_tracker", DT_CK_I64, 0, NULL, &s->growth_tracker, DT_STATE_SHARED,
                 DT_STATE_NONNEG);
    dt_state_add(st, "amp/skipped", DT_CK_I64, 0, NULL, &s->skipped, DT_STATE_SHARED,
                 DT_STATE_NONNEG);
}
