/*
 * test_optim.c - dt_optim against PyTorch 1.13 (tests/fixtures/torch_optim_ref.txt, made by
 * tests/fixtures/gen_torch_optim.py):
 *   - 10-step trajectories of SGD, Adagrad, Adadelta, RMSprop, Adam and AdamW with non-default
 *     options, with weight decay off for some segments (torch: a param group with
 *     weight_decay = 0), the per-step momentum / beta1 override, and torch's defaults: every
 *     step's parameters to relative 1e-6 (they are in fact bitwise equal on an AVX2 machine);
 *   - dt_optim_params_defaults against the constructors' defaults (inspect.signature);
 *   - clip_grad_norm_: total norm and clipped gradients;
 * and, with no reference needed: a checkpoint round trip through the named state buffers (save
 * after 4 steps, restore into a fresh optimizer, 6 more steps == 10 uninterrupted steps, bitwise),
 * merged segments == one segment, the old dt_optim_init_sgd API, and the error messages.
 *
 * usage: test_optim [tests/fixtures/torch_optim_ref.txt]
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"
#include "fixture.h"
#include "optim.h"

enum { MAXN = 256, MAXSTEPS = 64, MAXSEG = 16 };

static const double RTOL = 1e-6;

/* ---- reading the fixture (fixture.h: next_line, next_tok, next_kv, read_doubles, ...) ---- */

/* dt_optim_params fields by name, as the fixture (and the config keys) name them. */
typedef struct {
    const char *name;
    size_t off;
    int is_int;
} field;
#define FD(f)                                                                                      \
    {                                                                                              \
#f, offsetof(dt_optim_params, f), 0                                                        \
    }
#define FI(f)                                                                                      \
    {                                                                                              \
#f, offsetof(dt_optim_params, f), 1                                                        \
    }
static const field fields[] = {
    FD(lr),
    FD(weight_decay),
    FD(momentum),
    FD(dampening),
    FI(nesterov),
    FD(lr_decay),
    FD(initial_accumulator_value),
    FD(eps),
    FD(rho),
    FD(alpha),
    FI(centered),
    FD(beta1),
    FD(beta2),
    FI(amsgrad),
};

static const field *find_field(const char *name)
{
    return find_named(fields, sizeof fields / sizeof fields[0], sizeof fields[0], name);
}

static double get_field(const dt_optim_params *p, const field *fd)
{
    const char *base = (const char *)p + fd->off;
    return fd->is_int ? (double)*(const int *)base : *(const double *)base;
}

static void set_field(dt_optim_params *p, const field *fd, double v)
{
    char *base = (char *)p + fd->off;
    if (fd->is_int)
        *(int *)base = (int)v;
    else
        *(double *)base = v;
}

/* "kind=adam k=v ..." (the rest of the line) -> p. Returns 0 on success. */
static int parse_params(dt_optim_params *p)
{
    char *kv[32];
    int n = 0;
    char *t;
    while ((t = next_tok()) && n < 32)
        kv[n++] = t;
    if (n == 0 || strncmp(kv[0], "kind=", 5) != 0)
        return -1;
    dt_optim_kind kind;
    if (dt_optim_kind_parse(kv[0] + 5, &kind) != 0)
        return -1;
    dt_optim_params_defaults(p, kind);
    for (int i = 1; i < n; i++) {
        char *eq = strchr(kv[i], '=');
        if (!eq)
            return -1;
        *eq = '\0';
        const field *fd = find_field(kv[i]);
        if (!fd) {
            fprintf(stderr, "test_optim: unknown key '%s' in fixture\n", kv[i]);
            return -1;
        }
        set_field(p, fd, strtod(eq + 1, NULL));
    }
    return 0;
}

/* "32:1,16:0,..." -> segments; returns their count or -1. */
static int parse_segments(const char *s, dt_optim_segment *seg, size_t *total)
{
    int n = 0;
    size_t off = 0;
    while (*s && n < MAXSEG) {
        char *e;
        long len = strtol(s, &e, 10);
        if (*e != ':')
            return -1;
        long dec = strtol(e + 1, &e, 10);
        seg[n++] = (dt_optim_segment){off, (size_t)len, (int)dec};
        off += (size_t)len;
        if (*e == ',')
            e++;
        s = e;
    }
    *total = off;
    return n;
}

/* g = float32(sin(3 p + t) + 0.1 p), as gen_torch_optim.py computes it. */
static void grads_of(const float *p, int n, int t, float *g)
{
    for (int i = 0; i < n; i++) {
        double x = (double)p[i];
        g[i] = (float)(sin(3.0 * x + (double)t) + 0.1 * x);
    }
}

/* ---- the fixture checks ---- */

static int n_params;
static float p0[MAXN];
static int ncases, nclips, ndefaults;
static double worst_rel; /* over all trajectories */
static long n_unequal;   /* parameters not bitwise equal to torch's */

static void check_defaults(void)
{
    char *kname = next_tok();
    dt_optim_kind kind;
    if (!kname || dt_optim_kind_parse(kname, &kind) != 0) {
        CHECK(!"defaults line names a known optimizer");
        return;
    }
    dt_optim_params p;
    dt_optim_params_defaults(&p, kind);
    char *t, *v;
    while (next_kv(&t, &v)) {
        const field *fd = find_field(t);
        if (!fd) {
            fprintf(stderr, "FAIL defaults %s: no field %s\n", kname, t);
            check_failed++;
            continue;
        }
        check_default(kname, t, get_field(&p, fd), strtod(v, NULL));
    }
    ndefaults++;
}

static void check_case(FILE *f)
{
    char name[128];
    snprintf(name, sizeof name, "%s", next_tok());
    int steps = atoi(next_tok());
    dt_optim_segment seg[MAXSEG];
    size_t total = 0;
    int nseg = parse_segments(next_tok(), seg, &total);
    dt_optim_params prm;
    if (steps < 1 || steps > MAXSTEPS || nseg < 1 || (int)total != n_params ||
        parse_params(&prm) != 0) {
        fprintf(stderr, "FAIL case %s: malformed header\n", name);
        check_failed++;
        return;
    }
    double lrs[MAXSTEPS], moms[MAXSTEPS];
    int have_moms = 0;
    char *t = next_line(f);
    CHECK(t && strcmp(t, "lrs") == 0 && read_doubles(lrs, MAXSTEPS) == steps);
    t = next_line(f);
    if (t && strcmp(t, "moms") == 0) {
        char *rest = next_tok();
        int n = 0;
        if (rest && strcmp(rest, "-") != 0) {
            moms[0] = strtod(rest, NULL);
            n = 1 + read_doubles(moms + 1, MAXSTEPS - 1);
        }
        have_moms = n == steps;
        CHECK(n == steps || n == 0);
    }
    dt_optim o;
    int rc = dt_optim_init(&o, &prm, (size_t)n_params, seg, nseg);
    CHECK(rc == 0);
    if (rc != 0) {
        fprintf(stderr, "  case %s: %s\n", name, dt_err_msg());
        return;
    }
    float p[MAXN], g[MAXN], want[MAXN];
    memcpy(p, p0, sizeof(float) * (size_t)n_params);
    int ok = 1;
    for (int s = 0; s < steps; s++) {
        grads_of(p, n_params, s, g);
        double mom = have_moms ? moms[s] : dt_optim_momentum(&o);
        dt_optim_step(&o, p, g, lrs[s], mom);
        t = next_line(f);
        if (!t || strcmp(t, "p") != 0 || atoi(next_tok()) != s + 1 ||
            read_floats(want, MAXN) != n_params) {
            fprintf(stderr, "FAIL case %s: step %d: malformed p line\n", name, s + 1);
            check_failed++;
            ok = 0;
            break;
        }
        for (int i = 0; i < n_params; i++) {
            double d = fabs((double)p[i] - (double)want[i]);
            double rel = d / (fabs((double)want[i]) > 1e-30 ? fabs((double)want[i]) : 1e-30);
            if (rel > worst_rel)
                worst_rel = rel;
            n_unequal += p[i] != want[i];
        }
        if (getenv("DT_TEST_VERBOSE")) {
            int ne = 0, first = -1;
            for (int i = 0; i < n_params; i++)
                if (p[i] != want[i]) {
                    ne++;
                    if (first < 0)
                        first = i;
                }
            if (ne)
                printf("  %s step %d: %d unequal, first at %d (%.9g vs %.9g)\n", name, s + 1, ne,
                       first, (double)p[first], (double)want[first]);
        }
        char what[160];
        snprintf(what, sizeof what, "%s step %d params", name, s + 1);
        if (!check_tensor_close_at(p, want, n_params, RTOL, 0.0, what, __FILE__, __LINE__))
            ok = 0;
    }
    CHECK(o.step == steps);
    dt_optim_free(&o);
    while ((t = next_line(f)) && strcmp(t, "end") != 0)
        ;
    if (!ok)
        fprintf(stderr, "  case %s differs from torch\n", name);
    ncases++;
}

static void check_clip(FILE *f)
{
    char name[128];
    snprintf(name, sizeof name, "%s", next_tok());
    double max_norm = strtod(next_tok(), NULL);
    float g[MAXN], want[MAXN];
    char *t = next_line(f);
    int n = (t && strcmp(t, "g") == 0) ? read_floats(g, MAXN) : 0;
    double norm = 0;
    t = next_line(f);
    if (t && strcmp(t, "norm") == 0)
        norm = strtod(next_tok(), NULL);
    t = next_line(f);
    int m = (t && strcmp(t, "out") == 0) ? read_floats(want, MAXN) : 0;
    CHECK(n > 0 && n == m);
    double got = dt_optim_clip_grad_norm(g, (size_t)n, max_norm);
    CHECK_CLOSE(got, norm, RTOL, 0.0);
    char what[160];
    snprintf(what, sizeof what, "clip %s gradients", name);
    check_tensor_close_at(g, want, n, RTOL, 0.0, what, __FILE__, __LINE__);
    nclips++;
}

static void check_fixture(const char *path)
{
    FILE *f = fixture_open(path, "test_optim");
    if (!f)
        return;
    char *t;
    while ((t = next_line(f))) {
        if (strcmp(t, "n") == 0) {
            n_params = atoi(next_tok());
            CHECK(n_params > 0 && n_params <= MAXN);
        } else if (strcmp(t, "p0") == 0) {
            CHECK(read_floats(p0, MAXN) == n_params);
        } else if (strcmp(t, "defaults") == 0) {
            check_defaults();
        } else if (strcmp(t, "case") == 0) {
            check_case(f);
        } else if (strcmp(t, "clip") == 0) {
            check_clip(f);
        } else {
            fprintf(stderr, "FAIL test_optim: unexpected line '%s' in %s\n", t, path);
            check_failed++;
        }
    }
    fclose(f);
    /* the whole fixture was read: 6 kinds, every case, every clip */
    CHECK(ndefaults == 6);
    CHECK(ncases >= 19);
    CHECK(nclips >= 4);
    printf("torch reference: %d trajectories, %d clip cases; worst relative difference %.3g, "
           "%ld of the parameter values not bitwise equal\n",
           ncases, nclips, worst_rel, n_unequal);
}

/* ---- checks that need no reference ---- */

/* Saving the named state after 4 steps and restoring it into a fresh optimizer continues the run
 * bitwise: the state list is complete. */
static void check_state_round_trip(const dt_optim_params *prm, const char *what)
{
    enum { N = 40, SPLIT = 4, STEPS = 10 };
    dt_optim_segment seg[2] = {{0, 25, 1}, {25, 15, 0}};
    float a[N], b[N], g[N];
    for (int i = 0; i < N; i++)
        a[i] = b[i] = 0.3f * sinf(0.7f * (float)i) - 0.05f;
    dt_optim oa, ob;
    CHECK(dt_optim_init(&oa, prm, N, seg, 2) == 0);
    CHECK(dt_optim_init(&ob, prm, N, seg, 2) == 0);
    float saved[DT_OPTIM_MAX_STATE][N];
    int64_t saved_step = 0, saved_ready = 0;
    for (int s = 0; s < STEPS; s++) {
        double lr = 0.01 * (1.0 + 0.1 * s), mom = 0.9 - 0.01 * s;
        if (prm->kind == DT_OPTIM_SGD && s == 0)
            mom = 0.0; /* the buffer starts later: momentum_ready is state too */
        grads_of(a, N, s, g);
        dt_optim_step(&oa, a, g, lr, mom);
        grads_of(b, N, s, g);
        dt_optim_step(&ob, b, g, lr, mom);
        if (s + 1 == SPLIT) {
            /* "checkpoint" ob, then replace it with a fresh optimizer restored from it */
            for (int k = 0; k < ob.nstate; k++)
                memcpy(saved[k], ob.state[k].data, sizeof(float) * N);
            saved_step = ob.step;
            saved_ready = ob.momentum_ready;
            int nstate = ob.nstate;
            dt_optim_free(&ob);
            CHECK(dt_optim_init(&ob, prm, N, seg, 2) == 0);
            CHECK(ob.nstate == nstate);
            for (int k = 0; k < ob.nstate; k++)
                memcpy(ob.state[k].data, saved[k], sizeof(float) * N);
            ob.step = saved_step;
            ob.momentum_ready = saved_ready;
        }
    }
    int same = memcmp(a, b, sizeof a) == 0;
    CHECK(same);
    if (!same)
        fprintf(stderr, "  state round trip differs for %s\n", what);
    dt_optim_free(&oa);
    dt_optim_free(&ob);
}

static int has_state(const dt_optim *o, const char *name)
{
    for (int i = 0; i < o->nstate; i++)
        if (strcmp(o->state[i].name, name) == 0 && o->state[i].data)
            return 1;
    return 0;
}

static void check_state_names(void)
{
    static const struct {
        dt_optim_kind kind;
        int opt;
        const char *names[3];
    } want[] = {
        {DT_OPTIM_SGD, 0, {"momentum_buffer"}},
        {DT_OPTIM_ADAGRAD, 0, {"sum"}},
        {DT_OPTIM_ADADELTA, 0, {"square_avg", "acc_delta"}},
        {DT_OPTIM_RMSPROP, 0, {"square_avg", "momentum_buffer"}},
        {DT_OPTIM_RMSPROP, 1, {"square_avg", "momentum_buffer", "grad_avg"}},
        {DT_OPTIM_ADAM, 0, {"exp_avg", "exp_avg_sq"}},
        {DT_OPTIM_ADAM, 1, {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}},
        {DT_OPTIM_ADAMW, 1, {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}},
    };
    for (size_t c = 0; c < sizeof want / sizeof want[0]; c++) {
        dt_optim_params p;
        dt_optim_params_defaults(&p, want[c].kind);
        p.centered = p.amsgrad = want[c].opt;
        dt_optim o;
        CHECK(dt_optim_init(&o, &p, 7, NULL, 0) == 0);
        int n = 0;
        for (int k = 0; k < 3 && want[c].names[k]; k++, n++)
            CHECK(has_state(&o, want[c].names[k]));
        for (int k = 0; k < o.nstate; k++)
            CHECK(o.state[k].numel == 7);
        CHECK(o.nstate == n);
        CHECK(o.step == 0);
        dt_optim_free(&o);
        dt_optim_free(&o); /* twice: a no-op */
    }
    dt_optim_free(NULL);
    /* Adagrad's sum starts at initial_accumulator_value */
    dt_optim_params p;
    dt_optim_params_defaults(&p, DT_OPTIM_ADAGRAD);
    p.initial_accumulator_value = 0.25;
    dt_optim o;
    CHECK(dt_optim_init(&o, &p, 5, NULL, 0) == 0);
    CHECK(o.state[0].data[0] == 0.25f && o.state[0].data[4] == 0.25f);
    dt_optim_free(&o);
}

/* Split segments with one flag behave as one segment (bitwise), and are merged. */
static void check_segments(void)
{
    enum { N = 33 };
    dt_optim_params p;
    dt_optim_params_defaults(&p, DT_OPTIM_ADAM);
    p.weight_decay = 0.1;
    dt_optim_segment split[4] = {{0, 5, 1}, {5, 0, 0}, {5, 20, 1}, {25, 8, 1}};
    dt_optim a, b;
    CHECK(dt_optim_init(&a, &p, N, NULL, 0) == 0);
    CHECK(dt_optim_init(&b, &p, N, split, 4) == 0);
    CHECK(b.nseg == 1 && b.seg[0].off == 0 && b.seg[0].len == N && b.seg[0].decay == 1);
    float x[N], y[N], g[N];
    for (int i = 0; i < N; i++)
        x[i] = y[i] = 0.01f * (float)(i - 16);
    for (int s = 0; s < 5; s++) {
        grads_of(x, N, s, g);
        dt_optim_step(&a, x, g, 1e-2, 0.9);
        grads_of(y, N, s, g);
        dt_optim_step(&b, y, g, 1e-2, 0.9);
    }
    CHECK(memcmp(x, y, sizeof x) == 0);
    dt_optim_free(&a);
    dt_optim_free(&b);

    /* a segment without decay moves exactly as with weight_decay = 0 */
    dt_optim_segment nodecay[2] = {{0, 13, 0}, {13, 20, 1}};
    dt_optim_params pz = p;
    pz.weight_decay = 0.0;
    CHECK(dt_optim_init(&a, &pz, N, NULL, 0) == 0);
    CHECK(dt_optim_init(&b, &p, N, nodecay, 2) == 0);
    CHECK(b.nseg == 2);
    for (int i = 0; i < N; i++)
        x[i] = y[i] = 0.01f * (float)(i - 16);
    for (int s = 0; s < 5; s++) {
        grads_of(x, N, s, g);
        dt_optim_step(&a, x, g, 1e-2, 0.9);
        grads_of(y, N, s, g);
        dt_optim_step(&b, y, g, 1e-2, 0.9);
    }
    CHECK(memcmp(x, y, 13 * sizeof(float)) == 0);
    CHECK(memcmp(x + 13, y + 13, 20 * sizeof(float)) != 0);
    dt_optim_free(&a);
    dt_optim_free(&b);
}

/* The original SGD entry point still gives torch.optim.SGD's numbers (same as dt_optim_init). */
static void check_init_sgd(void)
{
    enum { N = 20 };
    dt_optim a, b;
    dt_optim_init_sgd(&a, N, 0.9, 0.0, 1e-3, 1);
    dt_optim_params p;
    dt_optim_params_defaults(&p, DT_OPTIM_SGD);
    p.momentum = 0.9;
    p.weight_decay = 1e-3;
    p.nesterov = 1;
    CHECK(dt_optim_init(&b, &p, N, NULL, 0) == 0);
    CHECK(dt_optim_momentum(&a) == 0.9);
    float x[N], y[N], g[N];
    for (int i = 0; i < N; i++)
        x[i] = y[i] = 0.02f * (float)i;
    for (int s = 0; s < 4; s++) {
        grads_of(x, N, s, g);
        dt_optim_step(&a, x, g, 0.1, 0.9);
        grads_of(y, N, s, g);
        dt_optim_step(&b, y, g, 0.1, 0.9);
    }
    CHECK(memcmp(x, y, sizeof x) == 0);
    dt_optim_free(&a);
    dt_optim_free(&b);
}

/* The lecture's Adam (Kingma & Ba 2014), in double:
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   m_hat = m / (1 - b1^t);  v_hat = v / (1 - b2^t);  w = w - lr * m_hat / (sqrt(v_hat) + eps)
 * dt_optim's float32 Adam follows it to float rounding. */
static void check_lecture_adam(void)
{
    enum { N = 16, STEPS = 20 };
    const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    dt_optim_params p;
    dt_optim_params_defaults(&p, DT_OPTIM_ADAM);
    dt_optim o;
    CHECK(dt_optim_init(&o, &p, N, NULL, 0) == 0);
    float w[N], g[N], wd_f[N];
    double wd[N], m[N] = {0}, v[N] = {0};
    for (int i = 0; i < N; i++)
        w[i] = (float)(wd[i] = 0.1 * (i - 8));
    for (int t = 1; t <= STEPS; t++) {
        grads_of(w, N, t, g);
        dt_optim_step(&o, w, g, lr, b1);
        for (int i = 0; i < N; i++) {
            double gi = sin(3.0 * wd[i] + t) + 0.1 * wd[i];
            m[i] = b1 * m[i] + (1 - b1) * gi;
            v[i] = b2 * v[i] + (1 - b2) * gi * gi;
            double m_hat = m[i] / (1 - pow(b1, t)), v_hat = v[i] / (1 - pow(b2, t));
            wd[i] = wd[i] - lr * m_hat / (sqrt(v_hat) + eps);
        }
    }
    for (int i = 0; i < N; i++)
        wd_f[i] = (float)wd[i];
    CHECK_TENSOR_CLOSE(w, wd_f, N, 1e-4, 1e-6);
    dt_optim_free(&o);
}

static void check_clip_edges(void)
{
    float g[4] = {3.0f, 4.0f, 0.0f, 0.0f};
    CHECK_CLOSE(dt_optim_clip_grad_norm(g, 4, 10.0), 5.0, 1e-12, 0.0);
    CHECK(g[0] == 3.0f && g[1] == 4.0f); /* below max_norm: unchanged */
    CHECK_CLOSE(dt_optim_clip_grad_norm(g, 4, 1.0), 5.0, 1e-12, 0.0);
    CHECK_CLOSE(sqrt((double)g[0] * g[0] + (double)g[1] * g[1]), 1.0, 1e-6, 0.0);
    float z[3] = {0, 0, 0};
    CHECK(dt_optim_clip_grad_norm(z, 3, 1.0) == 0.0 && z[0] == 0.0f);
    float inf[2] = {INFINITY, 1.0f};
    CHECK(isinf(dt_optim_clip_grad_norm(inf, 2, 1.0)));
    CHECK(inf[1] == 0.0f); /* torch: coefficient max_norm / inf = 0 */
}

/* dt_err_msg() names the key */
static void expect_error(int rc, const char *key)
{
    CHECK(rc != 0);
    const char *msg = dt_err_msg();
    if (!strstr(msg, key)) {
        check_failed++;
        fprintf(stderr, "FAIL error message '%s' does not name '%s'\n", msg, key);
    } else {
        check_passed++;
    }
    dt_err_clear();
}

static void check_errors(void)
{
    dt_optim_kind k;
    CHECK(dt_optim_kind_parse("adamw", &k) == 0 && k == DT_OPTIM_ADAMW);
    for (int i = 0; i <= DT_OPTIM_ADAMW; i++) {
        CHECK(dt_optim_kind_parse(dt_optim_kind_name((dt_optim_kind)i), &k) == 0);
        CHECK((int)k == i);
    }
    expect_error(dt_optim_kind_parse("adamx", &k), "optim.name = 'adamx'");
    CHECK(strstr(dt_optim_kinds(), "rmsprop") != NULL);
    CHECK(strcmp(dt_optim_kind_name((dt_optim_kind)42), "?") == 0);

    dt_optim o;
    dt_optim_params p;
    dt_optim_params_defaults(&p, DT_OPTIM_SGD);
    p.nesterov = 1;
    expect_error(dt_optim_init(&o, &p, 4, NULL, 0), "optim.nesterov");
    dt_optim_free(&o);
    p.momentum = 0.9;
    p.dampening = 0.1;
    expect_error(dt_optim_params_check(&p), "optim.dampening");
    dt_optim_params_defaults(&p, DT_OPTIM_SGD);
    p.weight_decay = -1e-4;
    expect_error(dt_optim_params_check(&p), "optim.weight_decay = -0.0001");
    p.weight_decay = NAN;
    expect_error(dt_optim_params_check(&p), "optim.weight_decay");
    dt_optim_params_defaults(&p, DT_OPTIM_ADAM);
    p.beta1 = 1.0;
    expect_error(dt_optim_params_check(&p), "optim.beta1 = 1");
    p.beta1 = 0.9;
    p.beta2 = -0.5;
    expect_error(dt_optim_params_check(&p), "optim.beta2");
    dt_optim_params_defaults(&p, DT_OPTIM_ADAMW);
    p.eps = -1e-8;
    expect_error(dt_optim_params_check(&p), "optim.eps");
    dt_optim_params_defaults(&p, DT_OPTIM_ADADELTA);
    p.rho = 1.5;
    expect_error(dt_optim_params_check(&p), "optim.rho = 1.5");
    dt_optim_params_defaults(&p, DT_OPTIM_ADAGRAD);
    p.lr_decay = -1;
    expect_error(dt_optim_params_check(&p), "optim.lr_decay");
    p.lr_decay = 0;
    p.initial_accumulator_value = -1;
    expect_error(dt_optim_params_check(&p), "optim.initial_accumulator_value");
    dt_optim_params_defaults(&p, DT_OPTIM_RMSPROP);
    p.alpha = -0.1;
    expect_error(dt_optim_params_check(&p), "optim.alpha");
    p.alpha = 0.99;
    p.momentum = -0.9;
    expect_error(dt_optim_params_check(&p), "optim.momentum");
    p.kind = (dt_optim_kind)17;
    expect_error(dt_optim_params_check(&p), "optim.name");
    /* every default passes */
    for (int i = 0; i <= DT_OPTIM_ADAMW; i++) {
        dt_optim_params_defaults(&p, (dt_optim_kind)i);
        CHECK(dt_optim_params_check(&p) == 0);
        CHECK(dt_optim_kind_has_momentum((dt_optim_kind)i) ==
              (i != DT_OPTIM_ADAGRAD && i != DT_OPTIM_ADADELTA));
    }
    dt_optim_params_defaults(&p, DT_OPTIM_ADAM);
    p.beta1 = 0.85;
    CHECK(dt_optim_init(&o, &p, 3, NULL, 0) == 0);
    CHECK(dt_optim_momentum(&o) == 0.85);
    dt_optim_free(&o);
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "tests/fixtures/torch_optim_ref.txt";
    check_fixture(path);

    dt_optim_params p;
    dt_optim_params_defaults(&p, DT_OPTIM_SGD);
    p.momentum = 0.9;
    p.dampening = 0.2;
    p.weight_decay = 1e-2;
    check_state_round_trip(&p, "sgd");
    dt_optim_params_defaults(&p, DT_OPTIM_ADAGRAD);
    p.lr_decay = 0.05;
    p.weight_decay = 1e-2;
    p.initial_accumulator_value = 0.1;
    check_state_round_trip(&p, "adagrad");
    dt_optim_params_defaults(&p, DT_OPTIM_ADADELTA);
    p.weight_decay = 1e-2;
    check_state_round_trip(&p, "adadelta");
    dt_optim_params_defaults(&p, DT_OPTIM_RMSPROP);
    p.centered = 1;
    p.momentum = 0.9;
    p.weight_decay = 1e-2;
    check_state_round_trip(&p, "rmsprop");
    dt_optim_params_defaults(&p, DT_OPTIM_ADAM);
    p.amsgrad = 1;
    p.weight_decay = 1e-2;
    check_state_round_trip(&p, "adam");
    dt_optim_params_defaults(&p, DT_OPTIM_ADAMW);
    p.amsgrad = 1;
    check_state_round_trip(&p, "adamw");

    check_state_names();
    check_segments();
    check_init_sgd();
    check_lecture_adam();
    check_clip_edges();
    check_errors();
    return check_finish("test_optim");
}
