/*
 * swa.c - see swa.h.
 */
#include "swa.h"
#include "state.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define PI_ 3.14159265358979323846

void dt_swa_init(dt_swa *s, dt_swa_mode mode, int per_epoch, int64_t start, int64_t freq, double lr,
                 int64_t anneal, int anneal_cos, double decay, size_t numel, int keep_buffer)
{
    memset(s, 0, sizeof *s);
    s->mode = mode;
    s->per_epoch = per_epoch;
    s->start = start;
    s->freq = freq > 0 ? freq : 1;
    s->lr = lr;
    s->anneal = anneal;
    s->anneal_cos = anneal_cos;
    s->decay = decay;
    s->numel = numel;
    s->lr_at_start = NAN;
    if (mode != DT_SWA_OFF && keep_buffer)
        s->avg = dt_xcalloc(numel, sizeof *s->avg);
}

void dt_swa_free(dt_swa *s)
{
    if (!s)
        return;
    free(s->avg);
    s->avg = NULL;
}

double dt_swa_lr(dt_swa *s, int64_t c, double sched_lr)
{
    if (s->mode == DT_SWA_OFF || isnan(s->lr) || c < s->start)
        return sched_lr;
    if (isnan(s->lr_at_start))
        s->lr_at_start = sched_lr;
    if (s->anneal <= 0)
        return s->lr; /* torchcontrib: lr = swa_lr from step_counter >= swa_start */
    /* torch.optim.swa_utils.SWALR closed form: alpha = anneal(t), t = units into SWA / anneal */
    double t = (double)(c - s->start) / (double)s->anneal;
    if (t > 1.0)
        t = 1.0;
    double a = s->anneal_cos ? (1.0 - cos(PI_ * t)) / 2.0 : t;
    return s->lr * a + s->lr_at_start * (1.0 - a);
}

int dt_swa_due(const dt_swa *s, int64_t c)
{
    return s->mode != DT_SWA_OFF && c > s->start && c % s->freq == 0;
}

void dt_swa_update(dt_swa *s, const float *w)
{
    if (s->mode == DT_SWA_OFF)
        return;
    if (s->avg) {
        float *a = s->avg;
        if (s->mode == DT_SWA_EMA && s->n > 0) {
            float d = (float)s->decay, e = (float)(1.0 - s->decay);
            for (size_t i = 0; i < s->numel; i++)
                a[i] = d * a[i] + e * w[i];
        } else if (s->mode == DT_SWA_EMA) {
            memcpy(a, w, s->numel * sizeof *a);
        } else {
            /* torchcontrib update_swa_group: buf += (p - buf) * (1 / (n + 1)) */
            float v = (float)(1.0 / (double)(s->n + 1));
            for (size_t i = 0; i < s->numel; i++)
                a[i] += (w[i] - a[i]) * v;
        }
    }
    s->n++;
}

void dt_swa_register_state(dt_swa *s, struct dt_state *st)
{
    if (s->mode == DT_SWA_OFF)
        return;
    int64_t dims[1] = {(int64_t)s->numel};
    dt_state_add(st, "swa/average", DT_CK_F32, 1, dims, s->avg, DT_STATE_RANK0, DT_STATE_FINITE);
    dt_state_add(st, "swa/n", DT_CK_I64, 0, NULL, &s->n, DT_STATE_SHARED, DT_STATE_NONNEG);
    dt_state_add(st, "swa/lr_at_start", DT_CK_F64, 0, NULL, &s->lr_at_start, DT_STATE_SHARED, 0);
}
