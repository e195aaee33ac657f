/*
 * sched.c - see sched.h.
 */
#include "sched.h"

#include <math.h>
#include <string.h>

#include "common.h"

#define DT_PI 3.14159265358979323846

int dt_sched_init(dt_sched *s, const char *kind, const char *interval, double base_lr,
                  double eta_min, int64_t t_max, int64_t total_steps, int64_t total_epochs)
{
    memset(s, 0, sizeof *s);
    if (strcmp(kind, "constant") == 0)
        s->kind = DT_SCHED_CONSTANT;
    else if (strcmp(kind, "cosine") == 0)
        s->kind = DT_SCHED_COSINE;
    else
        return dt_err("sched.kind: unknown schedule '%s': expected constant or cosine", kind);
    if (strcmp(interval, "step") == 0)
        s->per_epoch = 0;
    else if (strcmp(interval, "epoch") == 0)
        s->per_epoch = 1;
    else
        return dt_err("sched.interval: '%s': expected step or epoch", interval);
    s->base_lr = base_lr;
    s->eta_min = eta_min;
    s->t_max = t_max > 0 ? t_max : (s->per_epoch ? total_epochs : total_steps);
    if (s->t_max < 1)
        s->t_max = 1;
    return DT_OK;
}

double dt_sched_lr(const dt_sched *s, int64_t step, int64_t epoch)
{
    double t = (double)(s->per_epoch ? epoch : step);
    switch (s->kind) {
    case DT_SCHED_CONSTANT:
        return s->base_lr;
    case DT_SCHED_COSINE:
        /* CosineAnnealingLR closed form (SGDR, Loshchilov & Hutter 2017, eq. 5; the lecture's
         * cosine annealing): eta_min + (base - eta_min) * (1 + cos(pi * t / T_max)) / 2 */
        return s->eta_min + (s->base_lr - s->eta_min) * (1.0 + cos(DT_PI * t / (double)s->t_max)) / 2.0;
    }
    return s->base_lr;
}
