/*
 * swa.h - Stochastic Weight Averaging (Izmailov et al. 2018; the lecture's Algorithm 1) with
 * torchcontrib's SWA(swa_start, swa_freq, swa_lr) counting, SWALR-style annealing to swa_lr,
 * and an exponential moving average of the weights as the alternative.
 *
 * Counting (torchcontrib/optim/swa.py, auto mode): after optimizer step number c (1-based),
 * the average is updated when c > swa_start and c % swa_freq == 0; from c >= swa_start on, the
 * step's lr is swa_lr. With interval = epoch, c counts finished epochs and the update happens at
 * epoch ends. The average is w_swa <- w_swa + (w - w_swa) / (n + 1), n <- n + 1 (= the running
 * mean of every snapshot); EMA: w_ema <- decay * w_ema + (1 - decay) * w (the first snapshot
 * initializes it). Rank 0 keeps the buffer; every rank computes the same lr.
 */
#ifndef DT_SWA_H
#define DT_SWA_H

#include <stddef.h>
#include <stdint.h>

typedef enum { DT_SWA_OFF, DT_SWA_AVERAGE, DT_SWA_EMA } dt_swa_mode;

typedef struct dt_swa {
    dt_swa_mode mode;
    int per_epoch;       /* counts epochs instead of optimizer steps */
    int64_t start, freq; /* swa_start, swa_freq */
    double lr;           /* swa_lr; NaN: keep the schedule's lr */
    int64_t anneal;      /* units to anneal from the schedule's lr to swa_lr (0: switch at once) */
    int anneal_cos;      /* 1 cos, 0 linear (SWALR's anneal_strategy) */
    double decay;        /* EMA decay */
    float *avg;          /* (numel) on rank 0 only, NULL elsewhere */
    size_t numel;
    int64_t n;          /* snapshots averaged */
    double lr_at_start; /* the schedule's lr when SWA took over (for annealing) */
} dt_swa;

/* Allocates the average on rank 0 (keep_buffer != 0). */
void dt_swa_init(dt_swa *s, dt_swa_mode mode, int per_epoch, int64_t start, int64_t freq, double lr,
                 int64_t anneal, int anneal_cos, double decay, size_t numel, int keep_buffer);
void dt_swa_free(dt_swa *s);

/* The lr of the next step, given the schedule's lr for it. c = steps (or epochs) finished before
 * it, torchcontrib's step_counter: swa_lr from c >= start. Records lr_at_start on the first SWA
 * step. */
double dt_swa_lr(dt_swa *s, int64_t c, double sched_lr);

/* Whether the count c (steps, or finished epochs) triggers an average update. */
int dt_swa_due(const dt_swa *s, int64_t c);

/* Folds the weights w (numel) into the average (rank 0 with a buffer; no-op elsewhere). */
void dt_swa_update(dt_swa *s, const float *w);

/* Registers the SWA state in st (state.h) when s->mode is on: swa/average (rank 0's, not
 * broadcast), swa/n and swa/lr_at_start. */
struct dt_state;
void dt_swa_register_state(dt_swa *s, struct dt_state *st);

#endif
