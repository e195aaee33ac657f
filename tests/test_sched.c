/*
 * test_sched.c - dt_sched against PyTorch 1.13 (tests/fixtures/torch_sched_ref.txt, made by
 * tests/fixtures/gen_torch_sched.py):
 *   - lr sequences (and momentum / Adam beta1 where cycled) of StepLR, MultiStepLR, ExponentialLR,
 *     CosineAnnealingLR (T_max shorter than the run: it rises again), CosineAnnealingWarmRestarts
 *     (T_mult 1, 2, 3), CyclicLR (triangular, asymmetric, triangular2, exp_range, with and
 *     without momentum cycling), OneCycleLR (cos, linear, three_phase, Adam's beta1), PolynomialLR,
 *     SequentialLR(LinearLR warmup, X), and ReduceLROnPlateau (min/rel, max/abs, defaults with a
 *     NaN metric, min_lr and eps) including its state after every step();
 *   - dt_sched_params_defaults against the constructors' defaults (inspect.signature).
 * Tolerances: dtrain implements torch's closed forms, so against `closed` (torch's
 * _get_closed_form_lr, recorded where the scheduler has one) the lr must agree to 1e-12 relative.
 * Against the lr torch actually used (recursive get_lr for Step/MultiStep/Exponential/Cosine/
 * Polynomial/LinearLR) to 1e-6 relative, with an absolute slack of 1e-12 * base_lr for values
 * that cross zero (CosineAnnealingLR's recursion reaches eta_min = 0 only approximately); the
 * worst deviations are printed.
 * Without a reference: the epoch clock (constant lr within an epoch), plateau state save/restore,
 * onecycle past its end, the lecture's cyclic formula, the transitional 8/3-argument API, and
 * error messages naming the config key.
 *
 * usage: test_sched [tests/fixtures/torch_sched_ref.txt]
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"
#include "fixture.h"
#include "lr_suggest.h"
#include "sched.h"

enum { MAXT = 256 };

static const double RTOL_TORCH = 1e-6, RTOL_CLOSED = 1e-12;

/* ---- reading the fixture (fixture.h: next_line, next_tok, next_kv, read_doubles_or_none) ---- */

/* Expects a line "<key> ..." and reads its doubles; -1 when they are "-". */
static int read_row(FILE *f, const char *key, double *v)
{
    char *t = next_line(f);
    if (!t || strcmp(t, key) != 0) {
        fprintf(stderr, "FAIL test_sched: expected a '%s' line, got '%s'\n", key, t ? t : "EOF");
        check_failed++;
        return -2;
    }
    return read_doubles_or_none(v, MAXT, 1);
}

/* One case: the params plus dt_sched_init's other arguments (fixture keys base_lr,
 * opt_momentum, total). */
typedef struct {
    dt_sched_params p;
    double base_lr, base_momentum;
    int64_t total;
} sched_case;

typedef enum { F_D, F_I64, F_INT, F_ENUM } ftype;
typedef struct {
    const char *name;
    size_t off;
    ftype type;
} field;
#define FD(f)                                                                                      \
    {                                                                                              \
#f, offsetof(dt_sched_params, f), F_D                                                      \
    }
#define FL(f)                                                                                      \
    {                                                                                              \
#f, offsetof(dt_sched_params, f), F_I64                                                    \
    }
#define FN(f)                                                                                      \
    {                                                                                              \
#f, offsetof(dt_sched_params, f), F_INT                                                    \
    }
#define FE(f)                                                                                      \
    {                                                                                              \
#f, offsetof(dt_sched_params, f), F_ENUM                                                   \
    }
static const field fields[] = {
    FN(per_epoch),
    FL(warmup_steps),
    FD(warmup_start_factor),
    FL(step_size),
    FD(gamma),
    FD(max_lr),
    FL(step_size_up),
    FL(step_size_down),
    FE(cyclic_mode),
    FD(cyclic_gamma),
    FN(cycle_momentum),
    FD(base_momentum),
    FD(max_momentum),
    FL(t_max),
    FD(eta_min),
    FL(t_0),
    FL(t_mult),
    FL(total_steps),
    FD(pct_start),
    FE(anneal_strategy),
    FN(three_phase),
    FD(div_factor),
    FD(final_div_factor),
    FL(total_iters),
    FD(power),
    FE(plateau_mode),
    FD(factor),
    FL(patience),
    FD(threshold),
    FE(threshold_mode),
    FL(cooldown),
    FD(min_lr),
    FD(plateau_eps),
};

static const field *find_field(const char *name)
{
    return find_named(fields, sizeof fields / sizeof fields[0], sizeof fields[0], name);
}

/* Enum fields through the public parse helpers (so they are tested too). */
static int parse_enum(const char *name, const char *val, int *out)
{
    int rc = DT_ERR;
    if (strcmp(name, "cyclic_mode") == 0) {
        dt_sched_cyclic_mode m;
        rc = dt_sched_parse_cyclic_mode(val, &m);
        *out = (int)m;
    } else if (strcmp(name, "anneal_strategy") == 0) {
        dt_sched_anneal a;
        rc = dt_sched_parse_anneal(val, &a);
        *out = (int)a;
    } else if (strcmp(name, "plateau_mode") == 0) {
        dt_sched_plateau_mode m;
        rc = dt_sched_parse_plateau_mode(val, &m);
        *out = (int)m;
    } else if (strcmp(name, "threshold_mode") == 0) {
        dt_sched_threshold_mode m;
        rc = dt_sched_parse_threshold_mode(val, &m);
        *out = (int)m;
    }
    return rc;
}

static int set_field(dt_sched_params *p, const field *fd, const char *val)
{
    char *base = (char *)p + fd->off;
    switch (fd->type) {
    case F_D: *(double *)base = strtod(val, NULL); return 0;
    case F_I64: *(int64_t *)base = strtoll(val, NULL, 10); return 0;
    case F_INT: *(int *)base = atoi(val); return 0;
    case F_ENUM: {
        int e = 0;
        if (parse_enum(fd->name, val, &e) != 0)
            return -1;
        /* every dt_sched enum is an int-sized enum */
        memcpy(base, &e, sizeof e);
        return 0;
    }
    }
    return -1;
}

static double get_field(const dt_sched_params *p, const field *fd)
{
    const char *base = (const char *)p + fd->off;
    int e;
    switch (fd->type) {
    case F_D: return *(const double *)base;
    case F_I64: return (double)*(const int64_t *)base;
    case F_INT: return (double)*(const int *)base;
    case F_ENUM: memcpy(&e, base, sizeof e); return (double)e;
    }
    return NAN;
}

/* "kind=K k=v ..." (the rest of the line) -> c. Returns 0 on success. */
static int parse_case(sched_case *c)
{
    char *kv[64];
    int n = 0;
    char *t;
    while ((t = next_tok()) && n < 64)
        kv[n++] = t;
    dt_sched_kind kind;
    if (n == 0 || strncmp(kv[0], "kind=", 5) != 0 || dt_sched_parse_kind(kv[0] + 5, &kind) != 0)
        return -1;
    dt_sched_params_defaults(&c->p, kind);
    if (kind == DT_SCHED_POLYNOMIAL)
        c->p.total_iters = 5; /* the fixtures use torch's defaults; dtrain's is 0, the run */
    c->base_lr = 0.1;
    c->base_momentum = 0.9;
    c->total = 0;
    for (int i = 1; i < n; i++) {
        char *eq = strchr(kv[i], '=');
        if (!eq)
            return -1;
        *eq = '\0';
        const char *k = kv[i], *v = eq + 1;
        if (strcmp(k, "base_lr") == 0)
            c->base_lr = strtod(v, NULL);
        else if (strcmp(k, "opt_momentum") == 0)
            c->base_momentum = strtod(v, NULL);
        else if (strcmp(k, "total") == 0)
            c->total = strtoll(v, NULL, 10);
        else if (strcmp(k, "milestones") == 0) {
            if (dt_sched_parse_milestones(v, &c->p) != 0)
                return -1;
        } else {
            const field *fd = find_field(k);
            if (!fd || set_field(&c->p, fd, v) != 0) {
                fprintf(stderr, "test_sched: bad key '%s=%s' in fixture\n", k, v);
                return -1;
            }
        }
    }
    return 0;
}

/* ---- the fixture checks ---- */

static int ncases, ndefaults;
static double worst_torch, worst_closed, worst_mom;

static void track(double *worst, double got, double want, double scale)
{
    double d = fabs(got - want) / (fabs(want) > scale ? fabs(want) : scale);
    if (d > *worst)
        *worst = d;
}

static void check_defaults(void)
{
    char *kname = next_tok();
    dt_sched_kind kind = DT_SCHED_CONSTANT;
    if (strcmp(kname, "warmup") != 0 && dt_sched_parse_kind(kname, &kind) != 0) {
        CHECK(!"defaults line names a known schedule");
        return;
    }
    dt_sched_params p, want;
    dt_sched_params_defaults(&p, kind);
    want = p;
    char *t, *v;
    while (next_kv(&t, &v)) {
        const field *fd = find_field(t);
        if (!fd || set_field(&want, fd, v) != 0) {
            fprintf(stderr, "FAIL defaults %s: no field %s\n", kname, t);
            check_failed++;
            continue;
        }
        /* dtrain's one deliberate difference: total_iters 0 = the run (check_polynomial_default) */
        if (kind == DT_SCHED_POLYNOMIAL && strcmp(t, "total_iters") == 0)
            continue;
        check_default(kname, t, get_field(&p, fd), get_field(&want, fd));
    }
    ndefaults++;
}

static void check_plateau(FILE *f, const char *name, const sched_case *c, int T)
{
    double metric[MAXT], lr[MAXT], best[MAXT], bad[MAXT], cool[MAXT];
    int ok = read_row(f, "metric", metric) == T && read_row(f, "lr", lr) == T &&
             read_row(f, "best", best) == T && read_row(f, "bad", bad) == T &&
             read_row(f, "cool", cool) == T;
    CHECK(ok);
    if (!ok)
        return;
    dt_sched s;
    CHECK(dt_sched_init(&s, &c->p, c->base_lr, c->base_momentum, c->total) == 0);
    int fails = 0;
    for (int e = 0; e < T; e++) {
        double got = dt_sched_lr(&s, e);
        track(&worst_closed, got, lr[e], 1e-300);
        if (fabs(got - lr[e]) > RTOL_CLOSED * fabs(lr[e]))
            fails++,
                fprintf(stderr, "FAIL %s epoch %d: lr %.17g, torch %.17g\n", name, e, got, lr[e]);
        CHECK(dt_sched_momentum(&s, e) == c->base_momentum);
        dt_sched_observe(&s, metric[e]);
        int same_best = s.st.best == best[e] || (isnan(s.st.best) && isnan(best[e]));
        if (!same_best || (double)s.st.num_bad_epochs != bad[e] ||
            (double)s.st.cooldown_counter != cool[e])
            fails++, fprintf(stderr,
                             "FAIL %s after epoch %d: best %g bad %lld cool %lld, torch "
                             "%g %g %g\n",
                             name, e, s.st.best, (long long)s.st.num_bad_epochs,
                             (long long)s.st.cooldown_counter, best[e], bad[e], cool[e]);
    }
    CHECK(fails == 0);
    CHECK(s.st.last_epoch == T);
}

static void check_case(FILE *f)
{
    char name[128];
    snprintf(name, sizeof name, "%s", next_tok());
    int T = atoi(next_tok());
    sched_case c;
    if (T < 1 || T > MAXT || parse_case(&c) != 0) {
        fprintf(stderr, "FAIL case %s: malformed header\n", name);
        check_failed++;
        return;
    }
    if (c.p.kind == DT_SCHED_PLATEAU) {
        check_plateau(f, name, &c, T);
    } else {
        double lr[MAXT], closed[MAXT], mom[MAXT];
        int nl = read_row(f, "lr", lr), nc = read_row(f, "closed", closed);
        int nm = read_row(f, "mom", mom);
        CHECK(nl == T && (nc == T || nc == -1) && (nm == T || nm == -1));
        dt_sched s;
        int rc = dt_sched_init(&s, &c.p, c.base_lr, c.base_momentum, c.total);
        CHECK(rc == 0);
        if (rc != 0) {
            fprintf(stderr, "  case %s: %s\n", name, dt_err_msg());
        } else if (nl == T) {
            int fails = 0;
            const double slack = 1e-12 * c.base_lr;
            for (int t = 0; t < T; t++) {
                double got = dt_sched_lr(&s, t);
                track(&worst_torch, got, lr[t], 1e-3 * c.base_lr);
                if (!(fabs(got - lr[t]) <= RTOL_TORCH * fabs(lr[t]) + slack))
                    fails++, fprintf(stderr, "FAIL %s t=%d: lr %.17g, torch %.17g\n", name, t, got,
                                     lr[t]);
                if (nc == T) {
                    track(&worst_closed, got, closed[t], 1e-300);
                    if (!(fabs(got - closed[t]) <= RTOL_CLOSED * fabs(closed[t])))
                        fails++, fprintf(stderr,
                                         "FAIL %s t=%d: lr %.17g, torch's closed form "
                                         "%.17g\n",
                                         name, t, got, closed[t]);
                }
                double m = dt_sched_momentum(&s, t), wm = nm == T ? mom[t] : c.base_momentum;
                track(&worst_mom, m, wm, 1e-300);
                if (!(fabs(m - wm) <= RTOL_CLOSED * fabs(wm)))
                    fails++, fprintf(stderr, "FAIL %s t=%d: momentum %.17g, torch %.17g\n", name, t,
                                     m, wm);
            }
            CHECK(fails == 0);
            CHECK(dt_sched_cycles_momentum(&s) == (nm == T));
            /* the epoch clock: 7 steps per epoch, the lr of the epoch throughout */
            if (c.p.per_epoch) {
                int same = 1;
                for (int64_t step = 0; step < 7 * (int64_t)T; step++)
                    same &= dt_sched_lr(&s, dt_sched_clock(&s, step, step / 7)) == lr[step / 7] ||
                            fabs(dt_sched_lr(&s, dt_sched_clock(&s, step, step / 7)) -
                                 lr[step / 7]) <= RTOL_TORCH * lr[step / 7];
                CHECK(same);
                CHECK(dt_sched_clock(&s, 123, 4) == 4);
            } else {
                CHECK(dt_sched_clock(&s, 123, 4) == 123);
            }
        }
    }
    char *t;
    while ((t = next_line(f)) && strcmp(t, "end") != 0)
        ;
    ncases++;
}

static void check_fixture(const char *path)
{
    FILE *f = fixture_open(path, "test_sched");
    if (!f)
        return;
    char *t;
    while ((t = next_line(f))) {
        if (strcmp(t, "defaults") == 0) {
            check_defaults();
        } else if (strcmp(t, "case") == 0) {
            check_case(f);
        } else {
            fprintf(stderr, "FAIL test_sched: unexpected line '%s' in %s\n", t, path);
            check_failed++;
        }
    }
    fclose(f);
    CHECK(ndefaults == 9);
    CHECK(ncases >= 33);
    printf("torch reference: %d schedules; worst relative difference: %.3g vs torch's lr, "
           "%.3g vs its closed forms, %.3g in momentum\n",
           ncases, worst_torch, worst_closed, worst_mom);
}

/* ---- checks that need no reference ---- */

/* The lecture's cyclic formula (up == down == step_size):
 * cycle = floor(1 + t / (2 step_size)), x = |t / step_size - 2 cycle + 1|,
 * lr = base + (max - base) * max(0, 1 - x). */
static void check_lecture_cyclic(void)
{
    dt_sched_params p;
    dt_sched_params_defaults(&p, DT_SCHED_CYCLIC);
    p.max_lr = 0.6;
    p.step_size_up = 7;
    dt_sched s;
    CHECK(dt_sched_init(&s, &p, 0.05, 0.9, 1000) == 0);
    double worst = 0;
    for (int t = 0; t < 100; t++) {
        double cycle = floor(1.0 + t / (2.0 * 7));
        double x = fabs(t / 7.0 - 2 * cycle + 1);
        double want = 0.05 + (0.6 - 0.05) * fmax(0.0, 1 - x);
        worst = fmax(worst, fabs(dt_sched_lr(&s, t) - want));
    }
    CHECK(worst < 1e-15);
}

/* SGDR's T_cur bookkeeping (the lecture: T_cur = epochs since the last restart) by simulation. */
static void check_restarts_simulated(void)
{
    for (int64_t mult = 1; mult <= 4; mult++) {
        dt_sched_params p;
        dt_sched_params_defaults(&p, DT_SCHED_COSINE_RESTARTS);
        p.t_0 = 3;
        p.t_mult = mult;
        p.eta_min = 0.001;
        dt_sched s;
        CHECK(dt_sched_init(&s, &p, 0.2, 0.0, 0) == 0);
        int64_t t_cur = 0, t_i = 3;
        double worst = 0;
        for (int64_t t = 0; t < 500; t++) {
            double want =
                0.001 +
                (0.2 - 0.001) * (1 + cos(3.14159265358979323846 * (double)t_cur / (double)t_i)) / 2;
            worst = fmax(worst, fabs(dt_sched_lr(&s, t) - want));
            if (++t_cur >= t_i) {
                t_cur -= t_i;
                t_i *= mult;
            }
        }
        CHECK(worst < 1e-15);
    }
}

static void check_plateau_restore(void)
{
    dt_sched_params p;
    dt_sched_params_defaults(&p, DT_SCHED_PLATEAU);
    p.patience = 1;
    p.cooldown = 1;
    p.factor = 0.5;
    dt_sched a, b;
    CHECK(dt_sched_init(&a, &p, 0.1, 0.9, 10) == 0);
    CHECK(dt_sched_init(&b, &p, 0.1, 0.9, 10) == 0);
    const double m[12] = {3, 2, 2, 2, 2, 1.5, 1.5, 1.5, 1.5, 1.5, 1, 1};
    int same = 1;
    for (int e = 0; e < 12; e++) {
        if (e == 7) {
            dt_sched_state saved = b.st; /* a checkpoint holds params + this */
            CHECK(dt_sched_init(&b, &p, 0.1, 0.9, 10) == 0);
            b.st = saved;
        }
        same &= dt_sched_lr(&a, e) == dt_sched_lr(&b, e);
        dt_sched_observe(&a, m[e]);
        dt_sched_observe(&b, m[e]);
    }
    CHECK(same);
    CHECK(a.st.lr < 0.1); /* it did reduce */
    /* observe is a no-op for other kinds */
    dt_sched c;
    dt_sched_params q;
    dt_sched_params_defaults(&q, DT_SCHED_CONSTANT);
    CHECK(dt_sched_init(&c, &q, 0.1, 0.9, 10) == 0);
    dt_sched_observe(&c, 5.0);
    dt_sched_observe(&c, 6.0);
    CHECK(dt_sched_lr(&c, 3) == 0.1 && c.st.last_epoch == 0);
}

static void check_onecycle_end(void)
{
    dt_sched_params p;
    dt_sched_params_defaults(&p, DT_SCHED_ONECYCLE);
    p.max_lr = 0.1;
    dt_sched s;
    CHECK(dt_sched_init(&s, &p, 0.1, 0.9, 50) == 0);
    CHECK(dt_sched_lr(&s, 60) == dt_sched_lr(&s, 49));
    CHECK(dt_sched_momentum(&s, 60) == dt_sched_momentum(&s, 49));
    CHECK_CLOSE(dt_sched_lr(&s, 49), 0.1 / 25 / 1e4, 1e-12, 0.0);
    CHECK_CLOSE(dt_sched_lr(&s, 0), 0.1 / 25, 1e-12, 0.0);
    CHECK(dt_sched_momentum(&s, 0) == 0.95);
}

static void expect_error(int rc, const char *needle)
{
    CHECK(rc != 0);
    const char *msg = dt_err_msg();
    if (rc == 0 || !strstr(msg, needle)) {
        check_failed++;
        fprintf(stderr, "FAIL error message '%s' does not contain '%s'\n", msg, needle);
    } else {
        check_passed++;
    }
    dt_err_clear();
}

/* dt_sched_init on kind with one field changed by `set` */
static int init_with(dt_sched_kind kind, void (*set)(dt_sched_params *), double base_lr,
                     int64_t total)
{
    dt_sched_params p;
    dt_sched_params_defaults(&p, kind);
    p.step_size = 3;
    p.t_0 = 5;
    p.max_lr = 1.0;
    p.nmilestones = 1;
    p.milestones[0] = 4;
    if (set)
        set(&p);
    dt_sched s;
    return dt_sched_init(&s, &p, base_lr, 0.9, total);
}

static void set_t_mult0(dt_sched_params *p) { p->t_mult = 0; }
static void set_t_0_0(dt_sched_params *p) { p->t_0 = 0; }
static void set_step0(dt_sched_params *p) { p->step_size = 0; }
static void set_max_lr_low(dt_sched_params *p) { p->max_lr = 0.01; }
static void set_max_lr0(dt_sched_params *p) { p->max_lr = 0; }
static void set_max_lr_nan(dt_sched_params *p) { p->max_lr = NAN; }
static void set_pct0(dt_sched_params *p) { p->pct_start = 0; }
static void set_pct1(dt_sched_params *p) { p->pct_start = 1; }
static void set_pct_tiny(dt_sched_params *p) { p->pct_start = 0.01; }
static void set_three_phase_wide(dt_sched_params *p) { p->three_phase = 1, p->pct_start = 0.6; }
static void set_factor1(dt_sched_params *p) { p->factor = 1.0; }
static void set_patience_neg(dt_sched_params *p) { p->patience = -1; }
static void set_cooldown_neg(dt_sched_params *p) { p->cooldown = -2; }
static void set_threshold_neg(dt_sched_params *p) { p->threshold = -1e-4; }
static void set_warm_sf(dt_sched_params *p) { p->warmup_start_factor = 1.5; }
static void set_warm_neg(dt_sched_params *p) { p->warmup_steps = -1; }
static void set_gamma0(dt_sched_params *p) { p->gamma = 0; }
static void set_gamma_nan(dt_sched_params *p) { p->gamma = NAN; }
static void set_mom_order(dt_sched_params *p) { p->base_momentum = 0.95, p->max_momentum = 0.9; }
static void set_mom_big(dt_sched_params *p) { p->max_momentum = 1.5; }
static void set_no_milestones(dt_sched_params *p) { p->nmilestones = 0; }
static void set_bad_milestones(dt_sched_params *p) { p->nmilestones = 2, p->milestones[1] = 4; }
static void set_kind99(dt_sched_params *p) { p->kind = (dt_sched_kind)99; }
static void set_cyc_gamma0(dt_sched_params *p) { p->cyclic_gamma = 0; }
static void set_cyc_mode9(dt_sched_params *p) { p->cyclic_mode = (dt_sched_cyclic_mode)9; }
static void set_up0(dt_sched_params *p) { p->step_size_up = 0; }
static void set_down_neg(dt_sched_params *p) { p->step_size_down = -1; }
static void set_power_neg(dt_sched_params *p) { p->power = -1; }
static void set_eta_neg(dt_sched_params *p) { p->eta_min = -1; }
static void set_div0(dt_sched_params *p) { p->div_factor = 0; }
static void set_fdiv_neg(dt_sched_params *p) { p->final_div_factor = -1; }
static void set_t_max_neg(dt_sched_params *p) { p->t_max = -3; }
static void set_min_lr_neg(dt_sched_params *p) { p->min_lr = -1; }
static void set_interval2(dt_sched_params *p) { p->per_epoch = 2; }
static void set_warm_all(dt_sched_params *p) { p->warmup_steps = 10; }

static void check_errors(void)
{
    dt_sched_kind k;
    int pe;
    dt_sched_cyclic_mode cm;
    dt_sched_anneal an;
    dt_sched_plateau_mode pm;
    dt_sched_threshold_mode tm;
    expect_error(dt_sched_parse_kind("cosin", &k), "sched.kind = 'cosin': expected one of");
    expect_error(dt_sched_parse_interval("hour", &pe), "sched.interval = 'hour'");
    expect_error(dt_sched_parse_cyclic_mode("square", &cm), "sched.cyclic_mode = 'square'");
    expect_error(dt_sched_parse_anneal("exp", &an), "sched.anneal_strategy = 'exp'");
    expect_error(dt_sched_parse_plateau_mode("avg", &pm), "sched.plateau_mode = 'avg'");
    expect_error(dt_sched_parse_threshold_mode("pct", &tm), "sched.threshold_mode = 'pct'");
    CHECK(dt_sched_parse_interval("epoch", &pe) == 0 && pe == 1);
    CHECK(dt_sched_parse_cyclic_mode("exp_range", &cm) == 0 && cm == DT_SCHED_EXP_RANGE);
    CHECK(dt_sched_parse_anneal("linear", &an) == 0 && an == DT_SCHED_ANNEAL_LINEAR);
    CHECK(dt_sched_parse_plateau_mode("max", &pm) == 0 && pm == DT_SCHED_MODE_MAX);
    CHECK(dt_sched_parse_threshold_mode("abs", &tm) == 0 && tm == DT_SCHED_THRESHOLD_ABS);
    for (int i = 0; i <= DT_SCHED_PLATEAU; i++) {
        const char *n = dt_sched_kind_name((dt_sched_kind)i);
        CHECK(dt_sched_parse_kind(n, &k) == 0 && (int)k == i);
        CHECK(strstr(dt_sched_kinds(), n) != NULL);
    }
    CHECK(strcmp(dt_sched_kind_name((dt_sched_kind)77), "?") == 0);

    dt_sched_params p;
    dt_sched_params_defaults(&p, DT_SCHED_MULTISTEP);
    CHECK(dt_sched_parse_milestones(" 2, 5 ,9", &p) == 0 && p.nmilestones == 3 &&
          p.milestones[2] == 9);
    CHECK(dt_sched_parse_milestones("", &p) == 0 && p.nmilestones == 0);
    CHECK(dt_sched_parse_milestones("none", &p) == 0 && p.nmilestones == 0);
    expect_error(dt_sched_parse_milestones("5,3", &p), "sched.milestones = '5,3'");
    expect_error(dt_sched_parse_milestones("a,b", &p), "sched.milestones");
    expect_error(dt_sched_parse_milestones("3,,4", &p), "sched.milestones");
    expect_error(dt_sched_parse_milestones("3;4", &p), "sched.milestones");
    expect_error(dt_sched_parse_milestones("-1", &p), "sched.milestones");

    expect_error(init_with(DT_SCHED_CONSTANT, NULL, -0.1, 10), "sched constant: optim.lr = -0.1");
    expect_error(init_with(DT_SCHED_CONSTANT, NULL, NAN, 10), "sched constant: optim.lr");
    expect_error(init_with(DT_SCHED_CONSTANT, set_kind99, 0.1, 10), "sched.kind");
    expect_error(init_with(DT_SCHED_CONSTANT, set_interval2, 0.1, 10), "sched constant: interval");
    expect_error(init_with(DT_SCHED_COSINE_RESTARTS, set_t_mult0, 0.1, 10),
                 "sched cosine_restarts: t_mult = 0: expected an integer >= 1");
    expect_error(init_with(DT_SCHED_COSINE_RESTARTS, set_t_0_0, 0.1, 10),
                 "sched cosine_restarts: t_0 = 0");
    expect_error(init_with(DT_SCHED_COSINE_RESTARTS, set_eta_neg, 0.1, 10),
                 "sched cosine_restarts: eta_min");
    expect_error(init_with(DT_SCHED_STEP, set_step0, 0.1, 10), "sched step: step_size = 0");
    expect_error(init_with(DT_SCHED_STEP, set_gamma0, 0.1, 10), "sched step: gamma = 0");
    expect_error(init_with(DT_SCHED_EXPONENTIAL, set_gamma_nan, 0.1, 10),
                 "sched exponential: gamma");
    expect_error(init_with(DT_SCHED_MULTISTEP, set_no_milestones, 0.1, 10),
                 "sched multistep: milestones");
    expect_error(init_with(DT_SCHED_MULTISTEP, set_bad_milestones, 0.1, 10),
                 "sched multistep: milestones");
    expect_error(init_with(DT_SCHED_CYCLIC, set_max_lr_low, 0.1, 10),
                 "sched cyclic: max_lr = 0.01: expected >= optim.lr = 0.1");
    expect_error(init_with(DT_SCHED_CYCLIC, set_mom_order, 0.1, 10), "sched cyclic: max_momentum");
    expect_error(init_with(DT_SCHED_CYCLIC, set_mom_big, 0.1, 10),
                 "sched cyclic: max_momentum = 1.5");
    expect_error(init_with(DT_SCHED_CYCLIC, set_cyc_gamma0, 0.1, 10), "sched cyclic: cyclic_gamma");
    expect_error(init_with(DT_SCHED_CYCLIC, set_cyc_mode9, 0.1, 10), "sched cyclic: cyclic_mode");
    expect_error(init_with(DT_SCHED_CYCLIC, set_up0, 0.1, 10), "sched cyclic: step_size_up = 0");
    expect_error(init_with(DT_SCHED_CYCLIC, set_down_neg, 0.1, 10), "sched cyclic: step_size_down");
    expect_error(init_with(DT_SCHED_ONECYCLE, set_pct0, 0.1, 100), "sched onecycle: pct_start = 0");
    expect_error(init_with(DT_SCHED_ONECYCLE, set_pct1, 0.1, 100), "sched onecycle: pct_start = 1");
    expect_error(init_with(DT_SCHED_ONECYCLE, set_pct_tiny, 0.1, 50),
                 "sched onecycle: pct_start = 0.01");
    expect_error(init_with(DT_SCHED_ONECYCLE, set_three_phase_wide, 0.1, 100),
                 "sched onecycle: pct_start = 0.6");
    expect_error(init_with(DT_SCHED_ONECYCLE, set_div0, 0.1, 100), "sched onecycle: div_factor");
    expect_error(init_with(DT_SCHED_ONECYCLE, set_fdiv_neg, 0.1, 100),
                 "sched onecycle: final_div_factor");
    expect_error(init_with(DT_SCHED_ONECYCLE, set_mom_order, 0.1, 100),
                 "sched onecycle: max_momentum");
    expect_error(init_with(DT_SCHED_PLATEAU, set_factor1, 0.1, 10), "sched plateau: factor = 1");
    expect_error(init_with(DT_SCHED_PLATEAU, set_patience_neg, 0.1, 10),
                 "sched plateau: patience = -1");
    expect_error(init_with(DT_SCHED_PLATEAU, set_cooldown_neg, 0.1, 10),
                 "sched plateau: cooldown = -2");
    expect_error(init_with(DT_SCHED_PLATEAU, set_threshold_neg, 0.1, 10),
                 "sched plateau: threshold");
    expect_error(init_with(DT_SCHED_PLATEAU, set_min_lr_neg, 0.1, 10), "sched plateau: min_lr");
    expect_error(init_with(DT_SCHED_POLYNOMIAL, set_power_neg, 0.1, 10), "sched polynomial: power");
    expect_error(init_with(DT_SCHED_COSINE, set_t_max_neg, 0.1, 10), "sched cosine: t_max = -3");
    expect_error(init_with(DT_SCHED_COSINE, NULL, 0.1, 0), "sched cosine: t_max");
    expect_error(init_with(DT_SCHED_COSINE, set_warm_all, 0.1, 10), "sched cosine: t_max");
    expect_error(init_with(DT_SCHED_CONSTANT, set_warm_sf, 0.1, 10),
                 "sched constant: warmup_start_factor = 1.5");
    expect_error(init_with(DT_SCHED_CONSTANT, set_warm_neg, 0.1, 10),
                 "sched constant: warmup_steps = -1");
    /* every kind's defaults (with its required values) pass */
    for (int i = 0; i <= DT_SCHED_PLATEAU; i++)
        CHECK(init_with((dt_sched_kind)i, NULL, 0.1, 100) == 0);
}

/* Required keys left unset name the schedule and the key. */
static void check_required(void)
{
    expect_error(init_with(DT_SCHED_ONECYCLE, set_max_lr0, 0.1, 100),
                 "sched onecycle: max_lr is required: set sched.max_lr");
    expect_error(init_with(DT_SCHED_CYCLIC, set_max_lr0, 0.1, 100),
                 "sched cyclic: max_lr is required");
    /* a NaN max_lr (sched.max_lr = auto not replaced by the range test) names the schedule */
    expect_error(init_with(DT_SCHED_ONECYCLE, set_max_lr_nan, 0.1, 100), "sched onecycle: max_lr");
}

/* PolynomialLR with dtrain's default total_iters = 0: the decay spans the whole run (PyTorch's
 * default 5 would end learning after 5 steps), after any warmup. */
static void check_polynomial_default(void)
{
    dt_sched_params p;
    dt_sched_params_defaults(&p, DT_SCHED_POLYNOMIAL);
    CHECK(p.total_iters == 0);
    dt_sched s;
    CHECK(dt_sched_init(&s, &p, 0.1, 0.9, 100) == 0);
    CHECK(s.p.total_iters == 100);
    CHECK_CLOSE(dt_sched_lr(&s, 50), 0.05, 1e-15, 0.0);
    CHECK(dt_sched_lr(&s, 99) > 0.0);
    p.warmup_steps = 20;
    CHECK(dt_sched_init(&s, &p, 0.1, 0.9, 100) == 0);
    CHECK(s.p.total_iters == 80);
}

/* fast.ai's suggestion functions (lr_suggest.h) against their Python definitions
 * (fastai.callback.schedule valley/steep/slide/minimum and Learner.lr_find's window), run in
 * Python on the same synthetic curve: the indices below are what Python printed. The curve: the
 * lr sweep of lr-find's defaults (100 steps, 1e-7 .. 10); loss flat at 2.3 below lr 1e-4, a
 * parabolic descent to 1.8 at lr 0.1, then a steep rise, plus a 0.004 * sin(1.7 i) wiggle. */
static void check_lr_suggest(void)
{
    enum { N = 100 };
    double lr[N], loss[N];
    for (int i = 0; i < N; i++) {
        lr[i] = 1e-7 * pow(1e8, i / 99.0);
        double x = log10(lr[i]);
        double base = x < -4   ? 2.3
                      : x < -1 ? 2.3 - 0.5 * (x + 4) * (x + 4) / 3
                               : 1.8 + 3 * (x + 1) * (x + 1);
        loss[i] = base + 0.004 * sin(1.7 * i);
    }
    double sugg[DT_LR_NSUGG];
    int at[DT_LR_NSUGG];
    CHECK(dt_lr_suggest(lr, loss, N, N, sugg, at) == 4);
    CHECK(at[DT_LR_VALLEY] == 51 && sugg[DT_LR_VALLEY] == lr[51]);
    CHECK(at[DT_LR_STEEP] == 72 && sugg[DT_LR_STEEP] == lr[72]);
    CHECK(at[DT_LR_SLIDE] == 26 && sugg[DT_LR_SLIDE] == lr[26]);
    CHECK(at[DT_LR_MINIMUM] == 74 && sugg[DT_LR_MINIMUM] == lr[74] / 10);
    /* the window [N // 10, n - 5): a record cut at 60 steps (a divergence) */
    CHECK(dt_lr_suggest(lr, loss, 60, N, sugg, at) == 4);
    CHECK(at[DT_LR_MINIMUM] == 54 && at[DT_LR_STEEP] >= 10 && at[DT_LR_STEEP] < 54);
    /* a NaN ends the usable record; too short a window: no suggestion */
    loss[40] = NAN;
    CHECK(dt_lr_suggest(lr, loss, N, N, sugg, at) == 4 && at[DT_LR_MINIMUM] < 40);
    CHECK(dt_lr_suggest(lr, loss, 16, N, sugg, at) == 0 && at[DT_LR_VALLEY] == -1 &&
          isnan(sugg[DT_LR_VALLEY]));
    /* edge cases as Python gives them: a decreasing run from the first step has max_start = -1
     * (valley([2, 1]) is index -1 + 0 + 0 = the last); slide needs more than lr_diff points */
    const double down[5] = {5, 4, 3, 2, 1}, two[2] = {2, 1}, up[3] = {1, 2, 3};
    CHECK(dt_lr_valley(down, 5) == 0 && dt_lr_valley(two, 2) == 1 && dt_lr_valley(up, 3) == 0);
    double sq[20];
    for (int i = 0; i < 20; i++)
        sq[i] = 0.1 * i * i;
    CHECK(dt_lr_slide(sq, 20, 15, 0.005) == 0 && dt_lr_slide(sq, 15, 15, 0.005) == -1);
    CHECK(dt_lr_steep(lr, up, 1) == -1 && dt_lr_minimum(up, 3) == 0);
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "tests/fixtures/torch_sched_ref.txt";
    check_fixture(path);
    check_lecture_cyclic();
    check_restarts_simulated();
    check_plateau_restore();
    check_onecycle_end();
    check_errors();
    check_required();
    check_polynomial_default();
    check_lr_suggest();
    return check_finish("test_sched");
}
