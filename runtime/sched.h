/*
 * sched.h - learning-rate (and momentum) schedules as closed forms of torch.optim.lr_scheduler
 * (PyTorch 1.13), evaluated by rank 0 for every step and broadcast in dt_ctrl.
 *
 * The schedule's clock t counts optimizer steps or epochs (params.per_epoch), from 0: t is the
 * torch scheduler's last_epoch after t calls of scheduler.step(), so dt_sched_lr(s, t) is the lr
 * torch's optimizer uses for its (t+1)-th step (or epoch). With the epoch clock the lr is constant
 * within an epoch (dt_sched_clock picks t).
 *
 * An optional linear warmup precedes any schedule, as
 *   SequentialLR([LinearLR(start_factor=warmup_start_factor, end_factor=1,
 *                          total_iters=warmup_steps), MAIN], milestones=[warmup_steps]):
 * for t < warmup_steps, lr = lr0 * (start_factor + (1 - start_factor) * t / warmup_steps), where
 * lr0 is base_lr (onecycle: its initial lr max_lr / div_factor, as torch's composition gives);
 * afterwards MAIN runs on the clock t - warmup_steps. Plateau after a warmup: the warmup lr until
 * warmup_steps, then plateau's current lr (metrics observed during the warmup count).
 *
 * Momentum: schedules that cycle it (cyclic, onecycle with cycle_momentum) give the value torch
 * writes into the param group (`momentum`, or beta1 for Adam/AdamW; see optim.h); every other
 * schedule gives the base momentum passed to dt_sched_init.
 *
 * ReduceLROnPlateau is driven by a metric, not the clock: rank 0 calls dt_sched_observe once per
 * epoch, after the epoch (as scheduler.step(val_loss)); dt_sched_lr returns the current lr.
 */
#ifndef DT_SCHED_H
#define DT_SCHED_H

#include <stdint.h>

typedef enum {
    DT_SCHED_CONSTANT,
    DT_SCHED_STEP,
    DT_SCHED_MULTISTEP,
    DT_SCHED_EXPONENTIAL,
    DT_SCHED_CYCLIC,
    DT_SCHED_COSINE,
    DT_SCHED_COSINE_RESTARTS,
    DT_SCHED_ONECYCLE,
    DT_SCHED_POLYNOMIAL,
    DT_SCHED_PLATEAU
} dt_sched_kind;

/* Choices of the enum-valued keys, in enum order (for a config table). */
#define DT_SCHED_KIND_CHOICES                                                                      \
    "constant|step|multistep|exponential|cyclic|cosine|cosine_restarts|onecycle|polynomial|"       \
    "plateau"
#define DT_SCHED_INTERVAL_CHOICES "step|epoch"
#define DT_SCHED_CYCLIC_MODE_CHOICES "triangular|triangular2|exp_range"
#define DT_SCHED_ANNEAL_CHOICES "cos|linear"
#define DT_SCHED_PLATEAU_MODE_CHOICES "min|max"
#define DT_SCHED_THRESHOLD_MODE_CHOICES "rel|abs"

typedef enum { DT_SCHED_TRIANGULAR, DT_SCHED_TRIANGULAR2, DT_SCHED_EXP_RANGE } dt_sched_cyclic_mode;
typedef enum { DT_SCHED_ANNEAL_COS, DT_SCHED_ANNEAL_LINEAR } dt_sched_anneal;
typedef enum { DT_SCHED_MODE_MIN, DT_SCHED_MODE_MAX } dt_sched_plateau_mode;
typedef enum { DT_SCHED_THRESHOLD_REL, DT_SCHED_THRESHOLD_ABS } dt_sched_threshold_mode;

#define DT_SCHED_MAX_MILESTONES 64

/* Every hyperparameter of every schedule; each kind reads its own. Field names are the config
 * keys' ("sched.<field>"), which is how error messages name them. "the run" below is the
 * total_units given to dt_sched_init, less the warmup. */
typedef struct dt_sched_params {
    dt_sched_kind kind;
    int per_epoch;              /* clock: 0 optimizer steps, 1 epochs */
    int64_t warmup_steps;       /* linear warmup length in clock units (0: none) */
    double warmup_start_factor; /* LinearLR start_factor, in [0, 1]; 1/3 */
    /* step, multistep, exponential */
    int64_t step_size; /* step: required (0 until set: an error) */
    double gamma;      /* step, multistep: 0.1; exponential: torch has no default */
    int nmilestones;   /* multistep: milestones[0 .. n), strictly increasing, >= 0 */
    int64_t milestones[DT_SCHED_MAX_MILESTONES];
    /* cyclic (its base_lr is dt_sched_init's base_lr) and onecycle */
    double max_lr;                      /* required (0 until set: an error) */
    int64_t step_size_up;               /* cyclic: 2000 */
    int64_t step_size_down;             /* cyclic: 0 = step_size_up (torch's None) */
    dt_sched_cyclic_mode cyclic_mode;   /* triangular; scale_mode follows it, as in torch without
                                        * a scale_fn: cycle for triangular and triangular2,
                                        * iterations for exp_range */
    double cyclic_gamma;                /* exp_range: scale = cyclic_gamma ** t; 1.0 */
    int cycle_momentum;                 /* cyclic, onecycle: true */
    double base_momentum, max_momentum; /* cyclic 0.8 / 0.9, onecycle 0.85 / 0.95 */
    /* cosine, cosine_restarts */
    int64_t t_max;  /* cosine: 0 = the run */
    double eta_min; /* 0 */
    int64_t t_0;    /* cosine_restarts: required (0 until set: an error) */
    int64_t t_mult; /* cosine_restarts: 1 */
    /* onecycle */
    int64_t total_steps;             /* 0 = the run */
    double pct_start;                /* 0.3 */
    dt_sched_anneal anneal_strategy; /* cos */
    int three_phase;                 /* false */
    double div_factor;               /* 25: initial_lr = max_lr / div_factor */
    double final_div_factor;         /* 1e4: min_lr = initial_lr / final_div_factor */
    /* polynomial */
    int64_t total_iters; /* 5; 0 = the run */
    double power;        /* 1.0 */
    /* plateau */
    dt_sched_plateau_mode plateau_mode;     /* min */
    double factor;                          /* 0.1, in [0, 1) */
    int64_t patience;                       /* 10 */
    double threshold;                       /* 1e-4 */
    dt_sched_threshold_mode threshold_mode; /* rel */
    int64_t cooldown;                       /* 0 */
    double min_lr;                          /* 0 */
    double plateau_eps;                     /* 1e-8: a reduction smaller than this is skipped */
} dt_sched_params;

/* The mutable part, all a checkpoint needs besides the params (the closed forms need nothing):
 * ReduceLROnPlateau's state_dict fields. */
typedef struct dt_sched_state {
    double lr;   /* plateau: the current lr (base_lr until the first reduction) */
    double best; /* plateau: best metric so far (+inf for min, -inf for max) */
    int64_t num_bad_epochs;
    int64_t cooldown_counter;
    int64_t last_epoch; /* observations so far */
} dt_sched_state;

typedef struct dt_sched {
    dt_sched_params p; /* resolved: t_max, total_steps, total_iters, step_size_down set */
    double base_lr, base_momentum;
    int64_t total_units; /* the run's length on the clock, warmup included */
    dt_sched_state st;
} dt_sched;

/* Fills p with PyTorch 1.13's defaults for `kind` (see the fields), the step clock, no warmup. */
void dt_sched_params_defaults(dt_sched_params *p, dt_sched_kind kind);

/* Checks p against base_lr (optimizer lr; cyclic's lower bound; ignored by onecycle, whose
 * initial lr is max_lr / div_factor, as torch), base_momentum (the optimizer's momentum or beta1,
 * returned by dt_sched_momentum when the schedule does not cycle it) and total_units (the run's
 * length in steps, or epochs with per_epoch, warmup included: t_max = 0 etc. resolve to it), and
 * sets up s. Returns 0, or DT_ERR naming the key: "sched.t_mult = 0: expected an integer >= 1". */
int dt_sched_init(dt_sched *s, const dt_sched_params *p, double base_lr, double base_momentum,
                  int64_t total_units);

/* The clock value for global optimizer step `step` in epoch `epoch` (both 0-based). */
int64_t dt_sched_clock(const dt_sched *s, int64_t step, int64_t epoch);

/* The lr for clock value t >= 0 (closed form; plateau: the current lr). Past the end of a
 * onecycle schedule the last lr (torch raises there). */
double dt_sched_lr(const dt_sched *s, int64_t t);

/* The momentum (beta1 for Adam/AdamW) for clock value t. */
double dt_sched_momentum(const dt_sched *s, int64_t t);

/* Whether the schedule cycles momentum (then the optimizer must have one: dt_optim_kind_has_
 * momentum; torch raises otherwise). */
int dt_sched_cycles_momentum(const dt_sched *s);

/* ReduceLROnPlateau.step(metric): records one epoch's metric and may reduce the lr. Other kinds:
 * no-op. A NaN metric counts as not better (as in torch). */
void dt_sched_observe(dt_sched *s, double metric);

/* Name <-> enum helpers. Each returns 0, or DT_ERR naming the key:
 * "sched.kind = 'cosin': expected one of constant|step|...". */
int dt_sched_parse_kind(const char *name, dt_sched_kind *out);
int dt_sched_parse_interval(const char *name, int *per_epoch);
int dt_sched_parse_cyclic_mode(const char *name, dt_sched_cyclic_mode *out);
int dt_sched_parse_anneal(const char *name, dt_sched_anneal *out);
int dt_sched_parse_plateau_mode(const char *name, dt_sched_plateau_mode *out);
int dt_sched_parse_threshold_mode(const char *name, dt_sched_threshold_mode *out);
/* "30,80,120" (spaces allowed; "" or "none": no milestones) -> p->milestones, p->nmilestones.
 * Strictly increasing integers >= 0, at most DT_SCHED_MAX_MILESTONES. */
int dt_sched_parse_milestones(const char *text, dt_sched_params *p);
/* DT_SCHED_KIND_CHOICES. */
const char *dt_sched_kinds(void);
/* "cosine", ...; "?" outside the enum. */
const char *dt_sched_kind_name(dt_sched_kind kind);

/* Registers the schedule's resumable state (s->st: the plateau's lr, best, counters) in st
 * (state.h) as sched/<field>. */
struct dt_state;
void dt_sched_register_state(dt_sched *s, struct dt_state *st);

#endif
