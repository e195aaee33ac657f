/*
 * sched.h - learning-rate schedules as PyTorch closed forms (torch.optim.lr_scheduler,
 * _get_closed_form_lr), evaluated by rank 0 for every step.
 */
#ifndef DT_SCHED_H
#define DT_SCHED_H

#include <stdint.h>

typedef enum { DT_SCHED_CONSTANT, DT_SCHED_COSINE } dt_sched_kind;

typedef struct dt_sched {
    dt_sched_kind kind;
    double base_lr, eta_min;
    int64_t t_max;    /* cosine period, in schedule units */
    int per_epoch;    /* 1: the schedule's clock is the epoch, 0: the optimizer step */
} dt_sched;

/* kind: "constant" | "cosine"; interval: "step" | "epoch". t_max <= 0 means `total_units`
 * (the run's steps, or epochs when per epoch). Returns 0 or DT_ERR naming the key. */
int dt_sched_init(dt_sched *s, const char *kind, const char *interval, double base_lr,
                  double eta_min, int64_t t_max, int64_t total_steps, int64_t total_epochs);

/* lr for global step `step` (0-based) within epoch `epoch` (0-based). */
double dt_sched_lr(const dt_sched *s, int64_t step, int64_t epoch);

#endif
