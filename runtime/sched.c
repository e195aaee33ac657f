/*
 * sched.c - see sched.h.
 *
 * Each formula is torch 1.13's (torch/optim/lr_scheduler.py), evaluated in double in the same
 * order as the Python expression it cites, so the values agree with torch's closed forms to the
 * last bit or two. Where torch's get_lr is recursive (lr_t from lr_{t-1}: StepLR, MultiStepLR,
 * ExponentialLR, CosineAnnealingLR, PolynomialLR, LinearLR) we use its _get_closed_form_lr; the two
 * agree to rounding (tests/test_sched.c checks both).
 */
#include "sched.h"
#include "state.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* pi in double; strict C11 has no M_PI. Python's math.pi is the same double. */
#define DT_PI 3.141592653589793238462643383279502884

/* ---- names ---- */

static const char *const kind_names[] = {"constant",   "step",   "multistep",       "exponential",
                                         "cyclic",     "cosine", "cosine_restarts", "onecycle",
                                         "polynomial", "plateau"};
static const char *const interval_names[] = {"step", "epoch"};
static const char *const cyclic_names[] = {"triangular", "triangular2", "exp_range"};
static const char *const anneal_names[] = {"cos", "linear"};
static const char *const pmode_names[] = {"min", "max"};
static const char *const tmode_names[] = {"rel", "abs"};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Index of name in names[0..n), or DT_ERR "KEY = 'name': expected one of CHOICES". */
static int lookup(const char *key, const char *choices, const char *const *names, int n,
                  const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return dt_err("%s = '%s': expected one of %s", key, name, choices);
}

const char *dt_sched_kinds(void) { return DT_SCHED_KIND_CHOICES; }

const char *dt_sched_kind_name(dt_sched_kind kind)
{
    return (int)kind >= 0 && (int)kind < COUNT(kind_names) ? kind_names[kind] : "?";
}

int dt_sched_parse_kind(const char *name, dt_sched_kind *out)
{
    int i = lookup("sched.kind", DT_SCHED_KIND_CHOICES, kind_names, COUNT(kind_names), name);
    if (i < 0)
        return DT_ERR;
    *out = (dt_sched_kind)i;
    return DT_OK;
}

int dt_sched_parse_interval(const char *name, int *per_epoch)
{
    int i = lookup("sched.interval", DT_SCHED_INTERVAL_CHOICES, interval_names,
                   COUNT(interval_names), name);
    if (i < 0)
        return DT_ERR;
    *per_epoch = i;
    return DT_OK;
}

int dt_sched_parse_cyclic_mode(const char *name, dt_sched_cyclic_mode *out)
{
    int i = lookup("sched.cyclic_mode", DT_SCHED_CYCLIC_MODE_CHOICES, cyclic_names,
                   COUNT(cyclic_names), name);
    if (i < 0)
        return DT_ERR;
    *out = (dt_sched_cyclic_mode)i;
    return DT_OK;
}

int dt_sched_parse_anneal(const char *name, dt_sched_anneal *out)
{
    int i = lookup("sched.anneal_strategy", DT_SCHED_ANNEAL_CHOICES, anneal_names,
                   COUNT(anneal_names), name);
    if (i < 0)
        return DT_ERR;
    *out = (dt_sched_anneal)i;
    return DT_OK;
}

int dt_sched_parse_plateau_mode(const char *name, dt_sched_plateau_mode *out)
{
    int i = lookup("sched.plateau_mode", DT_SCHED_PLATEAU_MODE_CHOICES, pmode_names,
                   COUNT(pmode_names), name);
    if (i < 0)
        return DT_ERR;
    *out = (dt_sched_plateau_mode)i;
    return DT_OK;
}

int dt_sched_parse_threshold_mode(const char *name, dt_sched_threshold_mode *out)
{
    int i = lookup("sched.threshold_mode", DT_SCHED_THRESHOLD_MODE_CHOICES, tmode_names,
                   COUNT(tmode_names), name);
    if (i < 0)
        return DT_ERR;
    *out = (dt_sched_threshold_mode)i;
    return DT_OK;
}

int dt_sched_parse_milestones(const char *text, dt_sched_params *p)
{
    int n = 0;
    const char *s = text;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '\0' || strcmp(s, "none") == 0) {
        p->nmilestones = 0;
        return DT_OK;
    }
    for (;;) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || errno || v < 0)
            return dt_err("sched.milestones = '%s': expected comma-separated integers >= 0", text);
        if (n > 0 && v <= p->milestones[n - 1])
            return dt_err("sched.milestones = '%s': expected strictly increasing values", text);
        if (n == DT_SCHED_MAX_MILESTONES)
            return dt_err("sched.milestones = '%s': more than %d milestones", text,
                          DT_SCHED_MAX_MILESTONES);
        p->milestones[n++] = (int64_t)v;
        s = end;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '\0')
            break;
        if (*s != ',')
            return dt_err("sched.milestones = '%s': expected comma-separated integers >= 0", text);
        s++;
    }
    p->nmilestones = n;
    return DT_OK;
}

/* ---- defaults and checks ---- */

void dt_sched_params_defaults(dt_sched_params *p, dt_sched_kind kind)
{
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->per_epoch = 0;
    p->warmup_steps = 0;
    p->warmup_start_factor = 1.0 / 3.0; /* LinearLR */
    p->step_size = 0;                   /* StepLR: required */
    p->gamma = 0.1;                     /* StepLR, MultiStepLR (ExponentialLR: required) */
    p->nmilestones = 0;
    p->max_lr = 0.0; /* CyclicLR, OneCycleLR: required */
    p->step_size_up = 2000;
    p->step_size_down = 0;
    p->cyclic_mode = DT_SCHED_TRIANGULAR;
    p->cyclic_gamma = 1.0;
    p->cycle_momentum = 1;
    p->base_momentum = kind == DT_SCHED_CYCLIC ? 0.8 : 0.85;
    p->max_momentum = kind == DT_SCHED_CYCLIC ? 0.9 : 0.95;
    p->t_max = 0;
    p->eta_min = 0.0;
    p->t_0 = 0; /* CosineAnnealingWarmRestarts: required */
    p->t_mult = 1;
    p->total_steps = 0;
    p->pct_start = 0.3;
    p->anneal_strategy = DT_SCHED_ANNEAL_COS;
    p->three_phase = 0;
    p->div_factor = 25.0;
    p->final_div_factor = 1e4;
    p->total_iters = 0; /* PolynomialLR's is 5: dtrain's 0 = the run, so no run ends early */
    p->power = 1.0;
    p->plateau_mode = DT_SCHED_MODE_MIN;
    p->factor = 0.1;
    p->patience = 10;
    p->threshold = 1e-4;
    p->threshold_mode = DT_SCHED_THRESHOLD_REL;
    p->cooldown = 0;
    p->min_lr = 0.0;
    p->plateau_eps = 1e-8;
}

/* "sched.KEY = V: expected a number >= LO" etc.; hi = INFINITY: no upper bound. */
static int want_num(const char *key, double v, double lo, int lo_open, double hi, int hi_open)
{
    if (isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi))
        return DT_OK;
    if (isinf(hi))
        return dt_err("sched.%s = %g: expected a number %s %g", key, v, lo_open ? ">" : ">=", lo);
    return dt_err("sched.%s = %g: expected a number in %c%g, %g%c", key, v, lo_open ? '(' : '[', lo,
                  hi, hi_open ? ')' : ']');
}

static int want_int(const char *key, int64_t v, int64_t lo, const char *why)
{
    if (v >= lo)
        return DT_OK;
    return dt_err("sched.%s = %lld: expected an integer >= %lld%s%s%s", key, (long long)v,
                  (long long)lo, why ? " (" : "", why ? why : "", why ? ")" : "");
}

/* A required key left at its 0 default: "sched.KEY is required (HOW)". */
static int want_given(const char *key, double v, const char *how)
{
    if (v != 0)
        return DT_OK;
    return dt_err("sched.%s is required: %s", key, how);
}

static int check_momenta(const dt_sched_params *p)
{
    if (!p->cycle_momentum)
        return DT_OK;
    if (want_num("base_momentum", p->base_momentum, 0, 0, 1, 0) ||
        want_num("max_momentum", p->max_momentum, 0, 0, 1, 0))
        return DT_ERR;
    if (p->max_momentum < p->base_momentum)
        return dt_err("sched.max_momentum = %g: expected >= sched.base_momentum = %g",
                      p->max_momentum, p->base_momentum);
    return DT_OK;
}

/* ---- dt_sched_init: the common checks, then one check per schedule kind ---- */

/* What a kind's check needs besides the parameters: optim.lr, the run's length after warmup
 * (for "0: the run" defaults) and its unit. */
typedef struct kind_ctx {
    double base_lr;
    int64_t run;
    const char *unit;
} kind_ctx;

/* Each checks the parameters of its kind in q (a copy of the caller's) and resolves their
 * defaults in place. 0 or DT_ERR (one message naming the key). */
static int check_step(dt_sched_params *q, const kind_ctx *c)
{
    (void)c;
    if (want_int("step_size", q->step_size, 1, "required by sched.kind = step") ||
        want_num("gamma", q->gamma, 0, 1, INFINITY, 0))
        return DT_ERR;
    return DT_OK;
}

static int check_multistep(dt_sched_params *q, const kind_ctx *c)
{
    (void)c;
    if (q->nmilestones < 1 || q->nmilestones > DT_SCHED_MAX_MILESTONES)
        return dt_err("sched.milestones: %d given: expected 1 to %d for sched.kind = "
                      "multistep",
                      q->nmilestones, DT_SCHED_MAX_MILESTONES);
    for (int i = 0; i < q->nmilestones; i++)
        if (q->milestones[i] < 0 || (i > 0 && q->milestones[i] <= q->milestones[i - 1]))
            return dt_err("sched.milestones: expected strictly increasing integers >= 0");
    if (want_num("gamma", q->gamma, 0, 1, INFINITY, 0))
        return DT_ERR;
    return DT_OK;
}

static int check_exponential(dt_sched_params *q, const kind_ctx *c)
{
    (void)c;
    if (want_num("gamma", q->gamma, 0, 1, INFINITY, 0))
        return DT_ERR;
    return DT_OK;
}

static int check_cyclic(dt_sched_params *q, const kind_ctx *c)
{
    if (want_given("max_lr", q->max_lr, "set sched.max_lr (dtrain lr-find suggests one)") ||
        want_num("max_lr", q->max_lr, 0, 0, INFINITY, 0))
        return DT_ERR;
    if (q->max_lr < c->base_lr)
        return dt_err("sched.max_lr = %g: expected >= optim.lr = %g (cyclic's base_lr)", q->max_lr,
                      c->base_lr);
    if (want_int("step_size_up", q->step_size_up, 1, NULL) ||
        want_int("step_size_down", q->step_size_down, 0, "0: as step_size_up"))
        return DT_ERR;
    if ((int)q->cyclic_mode < 0 || (int)q->cyclic_mode >= COUNT(cyclic_names))
        return dt_err("sched.cyclic_mode: unknown mode %d: expected one of %s", (int)q->cyclic_mode,
                      DT_SCHED_CYCLIC_MODE_CHOICES);
    if (want_num("cyclic_gamma", q->cyclic_gamma, 0, 1, INFINITY, 0) || check_momenta(q))
        return DT_ERR;
    if (q->step_size_down == 0)
        q->step_size_down = q->step_size_up;
    return DT_OK;
}

static int check_cosine(dt_sched_params *q, const kind_ctx *c)
{
    if (want_int("t_max", q->t_max, 0, "0: the run") ||
        want_num("eta_min", q->eta_min, 0, 0, INFINITY, 0))
        return DT_ERR;
    if (q->t_max == 0)
        q->t_max = c->run;
    if (q->t_max < 1)
        return dt_err("sched.t_max = 0 (the run) is %lld %s after warmup: expected >= 1",
                      (long long)c->run, c->unit);
    return DT_OK;
}

static int check_cosine_restarts(dt_sched_params *q, const kind_ctx *c)
{
    (void)c;
    if (want_int("t_0", q->t_0, 1, "required by sched.kind = cosine_restarts") ||
        want_int("t_mult", q->t_mult, 1, NULL) ||
        want_num("eta_min", q->eta_min, 0, 0, INFINITY, 0))
        return DT_ERR;
    return DT_OK;
}

static int check_onecycle(dt_sched_params *q, const kind_ctx *c)
{
    if (want_given("max_lr", q->max_lr,
                   "set sched.max_lr (sched.max_lr = auto runs the LR range test first)") ||
        want_num("max_lr", q->max_lr, 0, 1, INFINITY, 0) ||
        want_int("total_steps", q->total_steps, 0, "0: the run") ||
        want_num("pct_start", q->pct_start, 0, 1, 1, 1) ||
        want_num("div_factor", q->div_factor, 0, 1, INFINITY, 0) ||
        want_num("final_div_factor", q->final_div_factor, 0, 1, INFINITY, 0))
        return DT_ERR;
    if ((int)q->anneal_strategy < 0 || (int)q->anneal_strategy >= COUNT(anneal_names))
        return dt_err("sched.anneal_strategy: unknown %d: expected one of %s",
                      (int)q->anneal_strategy, DT_SCHED_ANNEAL_CHOICES);
    if (check_momenta(q))
        return DT_ERR;
    if (q->total_steps == 0)
        q->total_steps = c->run;
    /* torch divides by each phase's length (end_step - start_step): all must be > 0 */
    const double T = (double)q->total_steps, e1 = q->pct_start * T - 1;
    const double e2 = q->three_phase ? 2 * q->pct_start * T - 2 : T - 1;
    if (!(e1 > 0))
        return dt_err("sched.pct_start = %g: the rising phase pct_start * total_steps "
                      "(%lld %s) must exceed 1 step",
                      q->pct_start, (long long)q->total_steps, c->unit);
    if (!(e2 > e1) || (q->three_phase && !(T - 1 > e2)))
        return dt_err("sched.pct_start = %g: with sched.three_phase = %s and %lld total %s a "
                      "phase is empty (expected pct_start < %s)",
                      q->pct_start, q->three_phase ? "true" : "false", (long long)q->total_steps,
                      c->unit, q->three_phase ? "0.5" : "1");
    return DT_OK;
}

static int check_polynomial(dt_sched_params *q, const kind_ctx *c)
{
    if (want_int("total_iters", q->total_iters, 0, "0: the run") ||
        want_num("power", q->power, 0, 0, INFINITY, 0))
        return DT_ERR;
    if (q->total_iters == 0)
        q->total_iters = c->run;
    if (q->total_iters < 1)
        return dt_err("sched.total_iters = 0 (the run) is %lld %s after warmup: expected "
                      ">= 1",
                      (long long)c->run, c->unit);
    return DT_OK;
}

static int check_plateau(dt_sched_params *q, const kind_ctx *c)
{
    (void)c;
    if ((int)q->plateau_mode < 0 || (int)q->plateau_mode > 1)
        return dt_err("sched.plateau_mode: unknown %d: expected one of %s", (int)q->plateau_mode,
                      DT_SCHED_PLATEAU_MODE_CHOICES);
    if ((int)q->threshold_mode < 0 || (int)q->threshold_mode > 1)
        return dt_err("sched.threshold_mode: unknown %d: expected one of %s",
                      (int)q->threshold_mode, DT_SCHED_THRESHOLD_MODE_CHOICES);
    if (want_num("factor", q->factor, 0, 0, 1, 1) || want_int("patience", q->patience, 0, NULL) ||
        want_num("threshold", q->threshold, 0, 0, INFINITY, 0) ||
        want_int("cooldown", q->cooldown, 0, NULL) ||
        want_num("min_lr", q->min_lr, 0, 0, INFINITY, 0) ||
        want_num("plateau_eps", q->plateau_eps, 0, 0, INFINITY, 0))
        return DT_ERR;
    return DT_OK;
}

/* The check of each kind (NULL: nothing to check). */
static int (*const check_kind[])(dt_sched_params *, const kind_ctx *) = {
    [DT_SCHED_CONSTANT] = NULL,
    [DT_SCHED_STEP] = check_step,
    [DT_SCHED_MULTISTEP] = check_multistep,
    [DT_SCHED_EXPONENTIAL] = check_exponential,
    [DT_SCHED_CYCLIC] = check_cyclic,
    [DT_SCHED_COSINE] = check_cosine,
    [DT_SCHED_COSINE_RESTARTS] = check_cosine_restarts,
    [DT_SCHED_ONECYCLE] = check_onecycle,
    [DT_SCHED_POLYNOMIAL] = check_polynomial,
    [DT_SCHED_PLATEAU] = check_plateau,
};

/* The checks every kind shares: kind, base lr and momentum, interval, warmup, length. */
static int check_common(const dt_sched_params *p, double base_lr, double base_momentum,
                        int64_t total_units)
{
    if ((int)p->kind < 0 || (int)p->kind >= COUNT(kind_names) || (int)p->kind >= COUNT(check_kind))
        return dt_err("sched.kind: unknown schedule %d: expected one of %s", (int)p->kind,
                      DT_SCHED_KIND_CHOICES);
    if (!isfinite(base_lr) || base_lr < 0)
        return dt_err("optim.lr = %g: expected a number >= 0", base_lr);
    if (!isfinite(base_momentum) || base_momentum < 0)
        return dt_err("optimizer momentum (optim.momentum, or optim.beta1 for adam/adamw) = %g: "
                      "expected a number >= 0",
                      base_momentum);
    if (p->per_epoch != 0 && p->per_epoch != 1)
        return dt_err("sched.interval: %d: expected step or epoch", p->per_epoch);
    if (want_int("warmup_steps", p->warmup_steps, 0, NULL) ||
        want_num("warmup_start_factor", p->warmup_start_factor, 0, 0, 1, 0))
        return DT_ERR;
    if (total_units < 0)
        return dt_err("internal: sched total_units = %lld < 0", (long long)total_units);
    return DT_OK;
}

/* Rewrites the recorded message "sched.KEY ..." as "sched KIND: KEY ..." (any other one as
 * "sched KIND: ..."), so that every schedule error names the schedule. Returns DT_ERR. */
static int name_kind(dt_sched_kind kind)
{
    char msg[1024];
    const char *m = dt_err_msg();
    snprintf(msg, sizeof msg, "%s", strncmp(m, "sched.", 6) == 0 ? m + 6 : m);
    return dt_err("sched %s: %s", kind_names[kind], msg);
}

int dt_sched_init(dt_sched *s, const dt_sched_params *p, double base_lr, double base_momentum,
                  int64_t total_units)
{
    memset(s, 0, sizeof *s);
    if (check_common(p, base_lr, base_momentum, total_units) != 0)
        return (int)p->kind >= 0 && (int)p->kind < COUNT(kind_names) ? name_kind(p->kind) : DT_ERR;
    /* what "the run" means for the main schedule */
    const kind_ctx c = {base_lr, total_units - p->warmup_steps, p->per_epoch ? "epochs" : "steps"};
    dt_sched_params q = *p;
    if (check_kind[p->kind] && check_kind[p->kind](&q, &c) != 0)
        return name_kind(p->kind);
    s->p = q;
    s->base_lr = base_lr;
    s->base_momentum = base_momentum;
    s->total_units = total_units;
    s->st.lr = base_lr;
    s->st.best = p->plateau_mode == DT_SCHED_MODE_MIN ? INFINITY : -INFINITY;
    return DT_OK;
}

int64_t dt_sched_clock(const dt_sched *s, int64_t step, int64_t epoch)
{
    return s->p.per_epoch ? epoch : step;
}

int dt_sched_cycles_momentum(const dt_sched *s)
{
    return (s->p.kind == DT_SCHED_CYCLIC || s->p.kind == DT_SCHED_ONECYCLE) && s->p.cycle_momentum;
}

/* ---- the closed forms; u is the main schedule's clock (after warmup) ---- */

/* CyclicLR.get_lr (Smith 2017; the lecture's cyclic decay), torch 1.13:
 *   cycle = math.floor(1 + last_epoch / total_size)          total_size = up + down
 *   x = 1. + last_epoch / total_size - cycle
 *   scale_factor = x / step_ratio  if x <= step_ratio  else (x - 1) / (step_ratio - 1)
 *   lr = base_lr + (max_lr - base_lr) * scale_factor * scale_fn(cycle | last_epoch)
 *   momentum = max_momentum - (max_momentum - base_momentum) * scale_factor * scale_fn(...)
 * scale_fn: triangular 1., triangular2 1 / (2. ** (cycle - 1)), exp_range gamma ** last_epoch.
 * With up == down == step_size this is the lecture's
 *   cycle = floor(1 + t / (2 step_size)), x = |t / step_size - 2 cycle + 1|,
 *   lr = base + (max - base) * max(0, 1 - x) * scale.
 * Writes the lr's and the momentum's scale_factor * scale_fn product to *amp. */
static void cyclic_amp(const dt_sched *s, int64_t u, double *amp)
{
    const double up = (double)s->p.step_size_up, down = (double)s->p.step_size_down;
    const double total_size = up + down, step_ratio = up / total_size, t = (double)u;
    const double cycle = floor(1 + t / total_size);
    const double x = 1. + t / total_size - cycle;
    const double scale_factor = x <= step_ratio ? x / step_ratio : (x - 1) / (step_ratio - 1);
    double scale = 1.0;
    switch (s->p.cyclic_mode) {
    case DT_SCHED_TRIANGULAR: scale = 1.0; break;
    case DT_SCHED_TRIANGULAR2: scale = 1 / pow(2., cycle - 1); break;
    case DT_SCHED_EXP_RANGE: scale = pow(s->p.cyclic_gamma, t); break;
    }
    amp[0] = scale_factor;
    amp[1] = scale;
}

static double cyclic_lr(const dt_sched *s, int64_t u)
{
    double a[2];
    cyclic_amp(s, u, a);
    double base_height = (s->p.max_lr - s->base_lr) * a[0];
    return s->base_lr + base_height * a[1];
}

static double cyclic_momentum(const dt_sched *s, int64_t u)
{
    double a[2];
    cyclic_amp(s, u, a);
    double base_height = (s->p.max_momentum - s->p.base_momentum) * a[0];
    return s->p.max_momentum - base_height * a[1];
}

/* OneCycleLR (Smith & Topin 2017), torch 1.13 get_lr: phases (two, or three with three_phase)
 *   [0, pct_start*T - 1]:             initial_lr -> max_lr,    max_momentum -> base_momentum
 *   two-phase: (.., T - 1]:           max_lr -> min_lr,        base_momentum -> max_momentum
 *   three-phase: (.., 2 pct_start*T - 2]: max_lr -> initial_lr, base -> max momentum;
 *                (.., T - 1]:         initial_lr -> min_lr,    max_momentum
 * initial_lr = max_lr / div_factor, min_lr = initial_lr / final_div_factor,
 * pct = (step - start_step) / (end_step - start_step), and the anneal
 *   cos:    end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
 *   linear: (end - start) * pct + start
 * which = 0: lr, 1: momentum. */
static double anneal(const dt_sched *s, double start, double end, double pct)
{
    if (s->p.anneal_strategy == DT_SCHED_ANNEAL_COS) {
        double cos_out = cos(DT_PI * pct) + 1;
        return end + (start - end) / 2.0 * cos_out;
    }
    return (end - start) * pct + start;
}

static double onecycle(const dt_sched *s, int64_t u, int which)
{
    const double T = (double)s->p.total_steps;
    const double max_lr = s->p.max_lr, initial_lr = max_lr / s->p.div_factor;
    const double min_lr = initial_lr / s->p.final_div_factor;
    const double mmax = s->p.max_momentum, mbase = s->p.base_momentum;
    struct {
        double end, lr0, lr1, m0, m1;
    } ph[3];
    int n;
    ph[0].end = (double)(s->p.pct_start * T) - 1;
    ph[0].lr0 = initial_lr, ph[0].lr1 = max_lr, ph[0].m0 = mmax, ph[0].m1 = mbase;
    if (s->p.three_phase) {
        ph[1].end = (double)(2 * s->p.pct_start * T) - 2;
        ph[1].lr0 = max_lr, ph[1].lr1 = initial_lr, ph[1].m0 = mbase, ph[1].m1 = mmax;
        ph[2].end = T - 1;
        ph[2].lr0 = initial_lr, ph[2].lr1 = min_lr, ph[2].m0 = mmax, ph[2].m1 = mmax;
        n = 3;
    } else {
        ph[1].end = T - 1;
        ph[1].lr0 = max_lr, ph[1].lr1 = min_lr, ph[1].m0 = mbase, ph[1].m1 = mmax;
        n = 2;
    }
    if (u > s->p.total_steps - 1)
        u = s->p.total_steps - 1;
    const double step_num = (double)u;
    double start_step = 0;
    for (int i = 0; i < n; i++) {
        double end_step = ph[i].end;
        if (step_num <= end_step || i == n - 1) {
            double pct = (step_num - start_step) / (end_step - start_step);
            return which == 0 ? anneal(s, ph[i].lr0, ph[i].lr1, pct)
                              : anneal(s, ph[i].m0, ph[i].m1, pct);
        }
        start_step = end_step;
    }
    return 0.0; /* not reached */
}

/* CosineAnnealingWarmRestarts (SGDR, Loshchilov & Hutter 2017; the lecture's cosine annealing
 * with T_cur = units since the last restart, T = T_i the current cycle's length), torch 1.13:
 *   lr = eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * T_cur / T_i)) / 2
 * with T_i = T_0 * T_mult ** n for the n-th cycle (n from 0), which starts at
 * T_0 * (T_mult ** n - 1) / (T_mult - 1) (n * T_0 for T_mult = 1). T_cur and T_i are found with
 * integers, as torch's step() without an epoch argument keeps them. */
static double restarts_lr(const dt_sched *s, int64_t u)
{
    int64_t t_cur, t_i = s->p.t_0;
    if (s->p.t_mult == 1) {
        t_cur = u % t_i;
    } else {
        int64_t start = 0;
        while (u - start >= t_i) {
            start += t_i;
            DT_ASSERT(t_i <= INT64_MAX / s->p.t_mult);
            t_i *= s->p.t_mult;
        }
        t_cur = u - start;
    }
    const double eta_min = s->p.eta_min;
    return eta_min + (s->base_lr - eta_min) * (1 + cos(DT_PI * (double)t_cur / (double)t_i)) / 2;
}

/* Index of the first milestone > u (bisect_right). */
static int bisect_right(const int64_t *m, int n, int64_t u)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (u < m[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static double main_lr(const dt_sched *s, int64_t u)
{
    const dt_sched_params *p = &s->p;
    const double base = s->base_lr, t = (double)u;
    switch (p->kind) {
    case DT_SCHED_CONSTANT: return base;
    case DT_SCHED_STEP:
        /* StepLR._get_closed_form_lr: base_lr * gamma ** (last_epoch // step_size) */
        return base * pow(p->gamma, (double)(u / p->step_size));
    case DT_SCHED_MULTISTEP:
        /* MultiStepLR._get_closed_form_lr:
         *   base_lr * gamma ** bisect_right(milestones, last_epoch) */
        return base * pow(p->gamma, (double)bisect_right(p->milestones, p->nmilestones, u));
    case DT_SCHED_EXPONENTIAL:
        /* ExponentialLR._get_closed_form_lr: base_lr * gamma ** last_epoch */
        return base * pow(p->gamma, t);
    case DT_SCHED_CYCLIC: return cyclic_lr(s, u);
    case DT_SCHED_COSINE:
        /* CosineAnnealingLR._get_closed_form_lr (SGDR eq. 5; the lecture's cosine annealing with
         * T = T_max and no restart, so past T_max it rises again, as torch's):
         *   eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * last_epoch / T_max)) / 2 */
        return p->eta_min + (base - p->eta_min) * (1 + cos(DT_PI * t / (double)p->t_max)) / 2;
    case DT_SCHED_COSINE_RESTARTS: return restarts_lr(s, u);
    case DT_SCHED_ONECYCLE: return onecycle(s, u, 0);
    case DT_SCHED_POLYNOMIAL: {
        /* PolynomialLR._get_closed_form_lr:
         *   base_lr * (1.0 - min(total_iters, last_epoch) / total_iters) ** power */
        int64_t k = u < p->total_iters ? u : p->total_iters;
        return base * pow(1.0 - (double)k / (double)p->total_iters, p->power);
    }
    case DT_SCHED_PLATEAU: return s->st.lr;
    }
    return base;
}

double dt_sched_lr(const dt_sched *s, int64_t t)
{
    DT_ASSERT(t >= 0);
    const int64_t w = s->p.warmup_steps;
    if (t < w) {
        /* LinearLR._get_closed_form_lr with end_factor 1, total_iters = warmup_steps:
         *   base_lr * (start_factor + (end_factor - start_factor) * min(total_iters, last_epoch)
         *              / total_iters)
         * toward the main schedule's initial lr: base_lr, but max_lr / div_factor for onecycle
         * (in torch, OneCycleLR overwrites the group's initial_lr, which SequentialLR restores
         * and the recursive LinearLR then scales). */
        const double sf = s->p.warmup_start_factor;
        const double target =
            s->p.kind == DT_SCHED_ONECYCLE ? s->p.max_lr / s->p.div_factor : s->base_lr;
        return target * (sf + (1.0 - sf) * (double)t / (double)w);
    }
    return main_lr(s, t - w);
}

double dt_sched_momentum(const dt_sched *s, int64_t t)
{
    DT_ASSERT(t >= 0);
    if (!dt_sched_cycles_momentum(s))
        return s->base_momentum;
    /* during warmup: the main schedule's first value (what it set at construction in torch) */
    int64_t u = t < s->p.warmup_steps ? 0 : t - s->p.warmup_steps;
    return s->p.kind == DT_SCHED_CYCLIC ? cyclic_momentum(s, u) : onecycle(s, u, 1);
}

/* ReduceLROnPlateau.step(metrics), torch 1.13:
 *   if is_better(current, best): best = current; num_bad_epochs = 0
 *   else: num_bad_epochs += 1
 *   if cooldown_counter > 0: cooldown_counter -= 1; num_bad_epochs = 0
 *   if num_bad_epochs > patience:
 *       new_lr = max(old_lr * factor, min_lr); if old_lr - new_lr > eps: lr = new_lr
 *       cooldown_counter = cooldown; num_bad_epochs = 0
 * is_better: min/rel a < best * (1 - threshold); min/abs a < best - threshold;
 *            max/rel a > best * (threshold + 1); max/abs a > best + threshold. */
void dt_sched_observe(dt_sched *s, double metric)
{
    if (s->p.kind != DT_SCHED_PLATEAU)
        return;
    dt_sched_state *st = &s->st;
    const dt_sched_params *p = &s->p;
    const double best = st->best;
    int better;
    if (p->plateau_mode == DT_SCHED_MODE_MIN)
        better = p->threshold_mode == DT_SCHED_THRESHOLD_REL ? metric < best * (1. - p->threshold)
                                                             : metric < best - p->threshold;
    else
        better = p->threshold_mode == DT_SCHED_THRESHOLD_REL ? metric > best * (p->threshold + 1.)
                                                             : metric > best + p->threshold;
    st->last_epoch++;
    if (better) {
        st->best = metric;
        st->num_bad_epochs = 0;
    } else {
        st->num_bad_epochs++;
    }
    if (st->cooldown_counter > 0) {
        st->cooldown_counter--;
        st->num_bad_epochs = 0;
    }
    if (st->num_bad_epochs > p->patience) {
        double old_lr = st->lr, new_lr = old_lr * p->factor;
        if (new_lr < p->min_lr)
            new_lr = p->min_lr;
        if (old_lr - new_lr > p->plateau_eps)
            st->lr = new_lr;
        st->cooldown_counter = p->cooldown;
        st->num_bad_epochs = 0;
    }
}

void dt_sched_register_state(dt_sched *s, struct dt_state *st)
{
    dt_state_add(st, "sched/lr", DT_CK_F64, 0, NULL, &s->st.lr, DT_STATE_SHARED,
                 DT_STATE_FINITE | DT_STATE_NONNEG);
    dt_state_add(st, "sched/best", DT_CK_F64, 0, NULL, &s->st.best, DT_STATE_SHARED, 0);
    dt_state_add(st, "sched/num_bad_epochs", DT_CK_I64, 0, NULL, &s->st.num_bad_epochs,
                 DT_STATE_SHARED, DT_STATE_NONNEG);
    dt_state_add(st, "sched/cooldown_counter", DT_CK_I64, 0, NULL, &s->st.cooldown_counter,
                 DT_STATE_SHARED, DT_STATE_NONNEG);
    dt_state_add(st, "sched/last_epoch", DT_CK_I64, 0, NULL, &s->st.last_epoch, DT_STATE_SHARED,
                 DT_STATE_NONNEG);
}
