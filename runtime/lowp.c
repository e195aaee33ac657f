/*
 * lowp.c - float16 / bfloat16 rounding and the dynamic loss scaler, see lowp.h.
 */
#include "lowp.h"
#include "state.h"

#include <math.h>
#include <string.h>

#include "common.h"
#include "kernels/elem.h"
#include "kernels/isa.h"
#include "kernels/tpool.h"

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

float dt_round_fp16_1(float f) { return dt_kelem_round_fp16_1(f); }

/* The loops are the `elem` family's (kernels/elem.h), chosen per instruction set: fp16 through
 * F16C's conversion where the ISA has it, the scalar definition on generic; the same bits. They
 * split over the thread pool (each value is rounded alone: the parts change no bits), so a
 * low-precision backward's rounding of the gradients between layers (net.c) does not run on the
 * caller alone: in resnet20's bf16 step at 2 threads it was most of the serial time. */
#define ROUND_GRAIN 4096 /* about a microsecond of work: a fork/join costs about as much */

typedef struct {
    float *x;
    int fp16;
} round_job;

static void round_part(void *arg, long lo, long hi)
{
    const round_job *j = arg;
    const dt_kern *k = dt_kern_get();
    (j->fp16 ? k->elem->round_fp16 : k->elem->round_bf16)(j->x + lo, (size_t)(hi - lo));
}

void dt_round_bf16(float *x, size_t n)
{
    round_job j = {x, 0};
    dt_tpool_for((long)n, ROUND_GRAIN, 64, round_part, &j);
}

void dt_round_fp16(float *x, size_t n)
{
    round_job j = {x, 1};
    dt_tpool_for((long)n, ROUND_GRAIN, 64, round_part, &j);
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
