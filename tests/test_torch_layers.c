/*
 * test_torch_layers.c - the layer kernels (layer_kernels.h) against PyTorch 1.13
 * (tests/fixtures/torch_layers_ref.txt, made by tests/fixtures/gen_torch_layers.py): for every
 * case of the fixture the inputs are regenerated from the same formula, and the outputs and the
 * gradients of sum(out * R) are compared to 1e-5 relative / 1e-6 absolute (plus 1e-7 of the sum
 * of the absolute values of the terms for conv, whose sums cancel; see compare_mass):
 *   - conv2d (stride 2 pad 1; non-square kernel without bias; "same" 3x3 with 8 channels, the
 *     transposed backward; 1x1; lenet-like 5x5 on one channel; 1x1 stride 2 without bias): out,
 *     dinp, dweight, dbias, through the fast kernels and the _ref kernels;
 *   - max pooling (out, torch's indices, dinp), average pooling, adaptive average pooling (1);
 *   - BatchNorm2d/1d training (out, saved mean and invstd, updated running statistics, dinp,
 *     dweight, dbias; affine and not) and evaluation (out, and the backward with frozen
 *     statistics).
 *
 * usage: test_torch_layers [tests/fixtures/torch_layers_ref.txt]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"
#include "kernels/layer_kernels.h"

#define RTOL 1e-5
#define ATOL 1e-6

enum { MAX_TENSORS = 256, MAX_CASES = 64, MAX_PARAMS = 16 };

typedef struct {
    char name[96];
    long numel;
    float *v;
    int used;
} ref_tensor;

typedef struct {
    char name[64], kind[16];
    int nparams;
    double p[MAX_PARAMS];
} ref_case;

static ref_tensor tensors[MAX_TENSORS];
static int ntensors;
static ref_case cases[MAX_CASES];
static int ncases;

/* gen(n, a, b, scale, offset) of gen_torch_layers.py */
typedef struct {
    double a, b, scale, offset;
} gen_params;
static const gen_params G_X = {0.37, 0.11, 1.0, 0.0}, G_W = {0.23, 0.05, 0.3, 0.0},
                        G_B = {0.71, 0.30, 0.2, 0.0}, G_R = {0.13, 0.70, 1.0, 0.3},
                        G_BW = {0.53, 0.20, 0.4, 1.0}, G_RM = {0.31, 0.90, 0.5, 0.0},
                        G_RV = {0.29, 0.40, 0.5, 1.0};

static float *gen(size_t n, gen_params g)
{
    float *x = dt_xmalloc(n ? n : 1, sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(g.offset + g.scale * sin(g.a * (double)i + g.b));
    return x;
}

/* ---- reading the fixture ---- */

enum { TOK = 128 };

/* the next whitespace-separated token (at most TOK - 1 characters), skipping '#' comments */
static int next_token(FILE *f, char buf[TOK])
{
    for (;;) {
        if (fscanf(f, "%127s", buf) != 1)
            return 0;
        if (buf[0] != '#')
            return 1;
        int c;
        while ((c = fgetc(f)) != EOF && c != '\n')
            ;
    }
}

/* Reads every record; returns 0 (after printing why) on a malformed file. */
static int read_fixture(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "test_torch_layers: cannot open %s\n", path);
        return 0;
    }
    char tok[TOK], s1[TOK], s2[TOK];
    int ok = 1;
    while (ok && next_token(f, tok)) {
        if (strcmp(tok, "case") == 0) {
            ok = ncases < MAX_CASES;
            ref_case *c = &cases[ok ? ncases : 0];
            ok = ok && next_token(f, s1) && next_token(f, s2) && strlen(s1) < sizeof c->name &&
                 strlen(s2) < sizeof c->kind;
            if (ok)
                strcpy(c->name, s1), strcpy(c->kind, s2);
            int want = !ok                            ? 0
                       : strcmp(c->kind, "conv") == 0 ? 10
                       : strcmp(c->kind, "gap") == 0  ? 4
                       : strcmp(c->kind, "bn") == 0   ? 8
                                                      : 7; /* maxpool, avgpool */
            for (int i = 0; ok && i < want; i++)
                ok = fscanf(f, "%lf", &c->p[i]) == 1;
            c->nparams = want;
            ncases += ok;
        } else if (strcmp(tok, "tensor") == 0) {
            ok = ntensors < MAX_TENSORS;
            ref_tensor *t = &tensors[ok ? ntensors : 0];
            double sum, s = 0.0;
            ok = ok && next_token(f, s1) && strlen(s1) < sizeof t->name &&
                 fscanf(f, "%ld %lf", &t->numel, &sum) == 2 && t->numel >= 1 &&
                 t->numel <= (1L << 24);
            if (!ok)
                break;
            strcpy(t->name, s1);
            t->v = dt_xmalloc((size_t)t->numel, sizeof *t->v);
            for (long i = 0; ok && i < t->numel; i++) {
                ok = fscanf(f, "%f", &t->v[i]) == 1;
                s += ok ? t->v[i] : 0.0;
            }
            /* the sum of the %.9g values read back differs from torch's by rounding only */
            ok = ok && fabs(s - sum) <= 1e-6 * (1.0 + fabs(sum)) + 1e-7 * (double)t->numel;
            ntensors += ok;
        } else {
            ok = 0;
        }
        if (!ok)
            fprintf(stderr, "test_torch_layers: %s: malformed record near '%s'\n", path, tok);
    }
    fclose(f);
    if (ok && (ncases == 0 || ntensors == 0)) {
        fprintf(stderr, "test_torch_layers: %s: no cases\n", path);
        ok = 0;
    }
    return ok;
}

static const ref_tensor *find(const char *name)
{
    for (int i = 0; i < ntensors; i++)
        if (strcmp(tensors[i].name, name) == 0) {
            tensors[i].used = 1;
            return &tensors[i];
        }
    return NULL;
}

/* Compares v (n values) with tensor CASE.FIELD: present, same size, and
 *     |v - torch| <= RTOL |torch| + ATOL + MASS_TOL * mass[i]
 * mass (NULL: none) is, per element, the sum of the absolute values of the terms the element
 * sums (a conv output, a weight gradient...): float summation error is relative to that, not to
 * the result, so where terms cancel, torch's own float rounding exceeds 1e-6 absolute (the 200-
 * term weight gradient of conv_lenet1 is off by 1.3e-6 in torch from the exact sum). */
#define MASS_TOL 1e-7
static void compare_mass(const char *cname, const char *field, const float *v, long n,
                         const float *mass, const char *via)
{
    char name[128];
    snprintf(name, sizeof name, "%s.%s", cname, field);
    const ref_tensor *t = find(name);
    CHECK(t != NULL && t->numel == n);
    if (!t || t->numel != n) {
        fprintf(stderr, "  %s: missing from the fixture or of another size (%ld, expected %ld)\n",
                name, t ? t->numel : -1L, n);
        return;
    }
    long worst = -1;
    double worst_excess = 0.0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)v[i] - t->v[i]);
        double lim = RTOL * fabs((double)t->v[i]) + ATOL + (mass ? MASS_TOL * mass[i] : 0.0);
        if (!(d <= lim) && (worst < 0 || d - lim > worst_excess)) {
            worst = i;
            worst_excess = d - lim;
        }
    }
    CHECK(worst < 0);
    if (worst >= 0)
        fprintf(stderr, "  %s (%s) vs torch: element %ld is %.9g, expected %.9g (mass %g)\n", name,
                via, worst, (double)v[worst], (double)t->v[worst],
                mass ? (double)mass[worst] : 0.0);
}

static void compare(const char *cname, const char *field, const float *v, long n, const char *via)
{
    compare_mass(cname, field, v, n, NULL, via);
}

static float *abs_of(const float *x, size_t n)
{
    if (!x)
        return NULL;
    float *a = dt_xmalloc(n ? n : 1, sizeof *a);
    for (size_t i = 0; i < n; i++)
        a[i] = fabsf(x[i]);
    return a;
}

/* the regenerated input has the sum torch recorded (a check on gen() and the case's shape) */
static void check_input(const char *cname, const float *x, size_t n)
{
    char name[128];
    snprintf(name, sizeof name, "%s.input_sum", cname);
    const ref_tensor *t = find(name);
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    CHECK(t != NULL);
    if (t)
        CHECK_CLOSE(s, t->v[0], 1e-6, 1e-6);
}

/* ---- cases ---- */

static void run_conv(const ref_case *c)
{
    const int N = (int)c->p[0], C = (int)c->p[1], H = (int)c->p[2], W = (int)c->p[3];
    const int OC = (int)c->p[4], KH = (int)c->p[5], KW = (int)c->p[6], stride = (int)c->p[7];
    const int pad = (int)c->p[8], has_bias = (int)c->p[9];
    const int OH = dt_conv_out_size(H, KH, stride, pad), OW = dt_conv_out_size(W, KW, stride, pad);
    const size_t ni = (size_t)N * C * H * W, nw = (size_t)OC * C * KH * KW;
    const size_t no = (size_t)N * OC * OH * OW;
    float *x = gen(ni, G_X), *w = gen(nw, G_W), *b = has_bias ? gen(OC, G_B) : NULL;
    float *R = gen(no, G_R), *out = dt_xmalloc(no, sizeof *out);
    float *dx = dt_xmalloc(ni, sizeof *dx), *dw = dt_xmalloc(nw, sizeof *dw);
    float *db = dt_xmalloc(OC, sizeof *db);
    float *ws = dt_xmalloc(dt_conv2d_ws_floats(N, C, H, W, OC, KH, KW, stride, pad), sizeof *ws);
    check_input(c->name, x, ni);

    /* the masses: the same sums over the absolute values of the terms */
    float *ax = abs_of(x, ni), *aw = abs_of(w, nw), *ab = abs_of(b, OC), *aR = abs_of(R, no);
    float *m_out = dt_xmalloc(no, sizeof *m_out), *m_dx = dt_xmalloc(ni, sizeof *m_dx);
    float *m_dw = dt_xmalloc(nw, sizeof *m_dw), *m_db = dt_xmalloc(OC, sizeof *m_db);
    dt_conv2d_forward_ref(m_out, ax, aw, ab, N, C, H, W, OC, KH, KW, stride, pad);
    dt_conv2d_backward_ref(m_dx, m_dw, m_db, aR, ax, aw, N, C, H, W, OC, KH, KW, stride, pad, 0);

    for (int fast = 1; fast >= 0; fast--) {
        const char *via = fast ? "fast" : "ref";
        if (fast) {
            dt_conv2d_forward(out, x, w, b, N, C, H, W, OC, KH, KW, stride, pad, ws);
            dt_conv2d_backward(dx, dw, has_bias ? db : NULL, R, x, w, N, C, H, W, OC, KH, KW,
                               stride, pad, 0, ws);
        } else {
            dt_conv2d_forward_ref(out, x, w, b, N, C, H, W, OC, KH, KW, stride, pad);
            dt_conv2d_backward_ref(dx, dw, has_bias ? db : NULL, R, x, w, N, C, H, W, OC, KH, KW,
                                   stride, pad, 0);
        }
        compare_mass(c->name, "out", out, (long)no, m_out, via);
        compare_mass(c->name, "dinp", dx, (long)ni, m_dx, via);
        compare_mass(c->name, "dweight", dw, (long)nw, m_dw, via);
        if (has_bias)
            compare_mass(c->name, "dbias", db, OC, m_db, via);
    }
    free(ax), free(aw), free(ab), free(aR), free(m_out), free(m_dx), free(m_dw), free(m_db);
    free(x), free(w), free(b), free(R), free(out), free(dx), free(dw), free(db), free(ws);
}

static void run_pool(const ref_case *c, int is_max)
{
    const int N = (int)c->p[0], C = (int)c->p[1], H = (int)c->p[2], W = (int)c->p[3];
    const int K = (int)c->p[4], stride = (int)c->p[5], pad = (int)c->p[6];
    const int OH = dt_conv_out_size(H, K, stride, pad), OW = dt_conv_out_size(W, K, stride, pad);
    const size_t ni = (size_t)N * C * H * W, no = (size_t)N * C * OH * OW;
    float *x = gen(ni, G_X), *R = gen(no, G_R), *out = dt_xmalloc(no, sizeof *out);
    float *dx = dt_xmalloc(ni, sizeof *dx), *argf = dt_xmalloc(no, sizeof *argf);
    int32_t *arg = dt_xmalloc(no, sizeof *arg);
    check_input(c->name, x, ni);
    for (int fast = 1; fast >= 0; fast--) {
        const char *via = fast ? "fast" : "ref";
        if (is_max) {
            if (fast)
                dt_maxpool_forward(out, arg, x, N, C, H, W, K, stride, pad);
            else
                dt_maxpool_forward_ref(out, arg, x, N, C, H, W, K, stride, pad);
            for (size_t i = 0; i < no; i++)
                argf[i] = (float)arg[i];
            compare(c->name, "argmax", argf, (long)no, via);
            dt_maxpool_backward(dx, R, arg, N, C, H, W, OH, OW, 0);
        } else if (fast) {
            dt_avgpool_forward(out, x, N, C, H, W, K, stride, pad);
            dt_avgpool_backward(dx, R, N, C, H, W, K, stride, pad, 0);
        } else {
            dt_avgpool_forward_ref(out, x, N, C, H, W, K, stride, pad);
            dt_avgpool_backward_ref(dx, R, N, C, H, W, K, stride, pad, 0);
        }
        compare(c->name, "out", out, (long)no, via);
        compare(c->name, "dinp", dx, (long)ni, via);
    }
    free(x), free(R), free(out), free(dx), free(argf), free(arg);
}

static void run_gap(const ref_case *c)
{
    const int N = (int)c->p[0], C = (int)c->p[1], HW = (int)c->p[2] * (int)c->p[3];
    const size_t ni = (size_t)N * C * HW, no = (size_t)N * C;
    float *x = gen(ni, G_X), *R = gen(no, G_R), *out = dt_xmalloc(no, sizeof *out);
    float *dx = dt_xmalloc(ni, sizeof *dx);
    check_input(c->name, x, ni);
    dt_gap_forward(out, x, N, C, HW, 0);
    dt_gap_backward(dx, R, N, C, HW, 0, 0);
    compare(c->name, "out", out, (long)no, "fast");
    compare(c->name, "dinp", dx, (long)ni, "fast");
    free(x), free(R), free(out), free(dx);
}

static void run_bn(const ref_case *c)
{
    const int N = (int)c->p[0], C = (int)c->p[1], HW = (int)c->p[2], affine = (int)c->p[3];
    const float eps = (float)c->p[4], momentum = (float)c->p[5];
    const gen_params gx = {G_X.a, G_X.b, c->p[7], c->p[6]};
    const size_t n = (size_t)N * C * HW;
    const double M = (double)N * HW;
    char name[96];
    float *x = gen(n, gx), *R = gen(n, G_R), *w = gen(C, G_BW), *b = gen(C, G_B);
    float *rm = gen(C, G_RM), *rv = gen(C, G_RV), *out = dt_xmalloc(n, sizeof *out);
    float *dx = dt_xmalloc(n, sizeof *dx), *dw = dt_xmalloc(C, sizeof *dw);
    float *db = dt_xmalloc(C, sizeof *db), *mean = dt_xmalloc(C, sizeof *mean);
    float *invstd = dt_xmalloc(C, sizeof *invstd);
    double *s = dt_xcalloc(6 * (size_t)C, sizeof *s);
    const float *wa = affine ? w : NULL, *ba = affine ? b : NULL;
    check_input(c->name, x, n);

    /* training step */
    dt_bn_stats(s, s + C, x, N, C, HW, 0);
    dt_bn_forward_train(out, mean, invstd, rm, rv, x, wa, ba, s, s + C, M, N, C, HW, eps, momentum,
                        0, 0, 0);
    dt_bn_backward_reduce(s + 2 * C, s + 3 * C, R, x, mean, invstd, N, C, HW, NULL, 0, 0);
    dt_bn_backward(dx, affine ? dw : NULL, affine ? db : NULL, R, x, mean, invstd, wa, s + 2 * C,
                   s + 3 * C, s + 2 * C, s + 3 * C, M, N, C, HW, 0, NULL, 0, 0, 0, 0);
    snprintf(name, sizeof name, "%s.train", c->name);
    compare(name, "out", out, (long)n, "fast");
    compare(name, "save_mean", mean, C, "fast");
    compare(name, "save_invstd", invstd, C, "fast");
    compare(name, "running_mean", rm, C, "fast");
    compare(name, "running_var", rv, C, "fast");
    compare(name, "dinp", dx, (long)n, "fast");
    if (affine) {
        compare(name, "dweight", dw, C, "fast");
        compare(name, "dbias", db, C, "fast");
    }

    /* evaluation with the initial running statistics; its backward is dt_bn_backward with
     * frozen statistics (global sums 0) */
    free(rm), free(rv);
    rm = gen(C, G_RM), rv = gen(C, G_RV);
    dt_bn_forward_eval(out, x, rm, rv, wa, ba, N, C, HW, eps, 0, 0, 0);
    for (int k = 0; k < C; k++)
        invstd[k] = (float)(1.0 / sqrt((double)rv[k] + eps));
    dt_bn_backward_reduce(s + 2 * C, s + 3 * C, R, x, rm, invstd, N, C, HW, NULL, 0, 0);
    dt_bn_backward(dx, affine ? dw : NULL, affine ? db : NULL, R, x, rm, invstd, wa, s + 2 * C,
                   s + 3 * C, s + 4 * C, s + 5 * C, M, N, C, HW, 0, NULL, 0, 0, 0, 0);
    snprintf(name, sizeof name, "%s.eval", c->name);
    compare(name, "out", out, (long)n, "fast");
    compare(name, "dinp", dx, (long)n, "fast");
    if (affine) {
        compare(name, "dweight", dw, C, "fast");
        compare(name, "dbias", db, C, "fast");
    }
    free(x), free(R), free(w), free(b), free(rm), free(rv), free(out), free(dx), free(dw);
    free(db), free(mean), free(invstd), free(s);
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "tests/fixtures/torch_layers_ref.txt";
    int ok = read_fixture(path);
    CHECK(ok);
    if (!ok)
        return check_finish("test_torch_layers");
    int kinds[5] = {0};
    for (int i = 0; i < ncases; i++) {
        const ref_case *c = &cases[i];
        if (strcmp(c->kind, "conv") == 0) {
            run_conv(c), kinds[0]++;
        } else if (strcmp(c->kind, "maxpool") == 0) {
            run_pool(c, 1), kinds[1]++;
        } else if (strcmp(c->kind, "avgpool") == 0) {
            run_pool(c, 0), kinds[2]++;
        } else if (strcmp(c->kind, "gap") == 0) {
            run_gap(c), kinds[3]++;
        } else if (strcmp(c->kind, "bn") == 0) {
            run_bn(c), kinds[4]++;
        } else {
            CHECK(!"unknown case kind");
            fprintf(stderr, "  case %s: unknown kind '%s'\n", c->name, c->kind);
        }
    }
    /* every kind is covered and every tensor of the fixture was compared */
    CHECK(kinds[0] >= 2 && kinds[1] >= 1 && kinds[2] >= 1 && kinds[3] >= 1 && kinds[4] >= 2);
    for (int i = 0; i < ntensors; i++) {
        CHECK(tensors[i].used);
        if (!tensors[i].used)
            fprintf(stderr, "  %s: in the fixture but not compared\n", tensors[i].name);
        free(tensors[i].v);
    }
    printf("test_torch_layers: %d cases (%d conv, %d maxpool, %d avgpool, %d gap, %d bn)\n", ncases,
           kinds[0], kinds[1], kinds[2], kinds[3], kinds[4]);
    return check_finish("test_torch_layers");
}
