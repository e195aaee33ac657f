/*
 * test_grad.c - gradients against finite differences, and the fast kernels against the naive
 * _ref kernels (kernels.h):
 *   - dt_linear_backward (dweight, dbias, dinp; accum 0 and 1), dt_relu_backward and
 *     dt_xent_backward (hard labels and soft targets) against central differences of the
 *     forward kernels themselves (the loss accumulated in double);
 *   - the whole "mlp" net: dt_net_backward against central differences in double of an
 *     independent double-precision forward of the same layers, at sampled coordinates;
 *   - dt_linear_forward/backward against the _ref kernels on odd shapes.
 * Every analytic gradient is also checked to be non-trivial (max |g| > 1e-4), so a kernel that
 * writes zeros cannot pass.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"
#include "fdcheck.h"
#include "kernels/kernels.h"
#include "net.h"
#include "rng.h"

/* ---- linear ---- */

typedef struct {
    int N, IN, OUT;
    float *inp, *w, *b, *R, *out;
} lin_ctx;

/* loss = sum R * linear(inp), so d loss / d out = R */
static double lin_loss(void *p)
{
    lin_ctx *c = p;
    dt_linear_forward(c->out, c->inp, c->w, c->b, c->N, c->IN, c->OUT);
    double l = 0.0;
    for (int k = 0; k < c->N * c->OUT; k++)
        l += (double)c->R[k] * c->out[k];
    return l;
}

static void test_linear_fd(int N, int IN, int OUT)
{
    lin_ctx c = {N,
                 IN,
                 OUT,
                 falloc((size_t)N * IN),
                 falloc((size_t)OUT * IN),
                 falloc((size_t)OUT),
                 falloc((size_t)N * OUT),
                 falloc((size_t)N * OUT)};
    fill(c.inp, (size_t)N * IN, -1, 1);
    fill(c.w, (size_t)OUT * IN, -1, 1);
    fill(c.b, (size_t)OUT, -1, 1);
    fill(c.R, (size_t)N * OUT, -1, 1);
    float *dw = falloc((size_t)OUT * IN), *db = falloc((size_t)OUT), *dx = falloc((size_t)N * IN);
    float *fd = falloc((size_t)(N * IN > OUT * IN ? N * IN : OUT * IN));
    /* garbage in the outputs: backward must overwrite dweight, dbias and (accum 0) dinp */
    for (int i = 0; i < OUT * IN; i++)
        dw[i] = NAN;
    for (int i = 0; i < OUT; i++)
        db[i] = NAN;
    for (int i = 0; i < N * IN; i++)
        dx[i] = NAN;
    dt_linear_backward(dx, dw, db, c.R, c.inp, c.w, N, IN, OUT, 0);

    /* the loss is linear in each value: h only trades rounding, no truncation error */
    const float h = 1.0f / 64;
    const double rtol = 1e-3, atol = 1e-4;
    central_diff_all(fd, lin_loss, &c, c.w, (size_t)OUT * IN, h);
    check_grad(dw, fd, (size_t)OUT * IN, rtol, atol, "linear dweight");
    central_diff_all(fd, lin_loss, &c, c.b, (size_t)OUT, h);
    check_grad(db, fd, (size_t)OUT, rtol, atol, "linear dbias");
    central_diff_all(fd, lin_loss, &c, c.inp, (size_t)N * IN, h);
    check_grad(dx, fd, (size_t)N * IN, rtol, atol, "linear dinp");

    /* accum = 1 adds dout @ W to what dinp holds; dweight and dbias are still overwritten */
    float *dx2 = falloc((size_t)N * IN), *dw2 = falloc((size_t)OUT * IN), *db2 = falloc(OUT);
    float *sum = falloc((size_t)N * IN);
    fill(dx2, (size_t)N * IN, -1, 1);
    fill(dw2, (size_t)OUT * IN, 5, 6);
    fill(db2, (size_t)OUT, 5, 6);
    for (int i = 0; i < N * IN; i++)
        sum[i] = dx2[i] + dx[i];
    dt_linear_backward(dx2, dw2, db2, c.R, c.inp, c.w, N, IN, OUT, 1);
    CHECK_TENSOR_CLOSE(dx2, sum, N * IN, 1e-6, 1e-6);
    CHECK_TENSOR_CLOSE(dw2, dw, OUT * IN, 1e-6, 1e-6);
    CHECK_TENSOR_CLOSE(db2, db, OUT, 1e-6, 1e-6);

    /* no bias, no input gradient */
    float *out0 = falloc((size_t)N * OUT), *outb = falloc((size_t)N * OUT);
    float *zero = falloc(OUT);
    dt_linear_forward(out0, c.inp, c.w, NULL, N, IN, OUT);
    dt_linear_forward(outb, c.inp, c.w, zero, N, IN, OUT);
    CHECK_TENSOR_CLOSE(out0, outb, N * OUT, 0.0, 0.0);
    fill(dw2, (size_t)OUT * IN, 5, 6);
    dt_linear_backward(NULL, dw2, NULL, c.R, c.inp, c.w, N, IN, OUT, 0);
    CHECK_TENSOR_CLOSE(dw2, dw, OUT * IN, 0.0, 0.0);

    free(c.inp), free(c.w), free(c.b), free(c.R), free(c.out);
    free(dw), free(db), free(dx), free(fd), free(dx2), free(dw2), free(db2), free(sum);
    free(out0), free(outb), free(zero);
}

/* ---- relu ---- */

typedef struct {
    long n;
    float *inp, *out, *R;
} relu_ctx;

static double relu_loss(void *p)
{
    relu_ctx *c = p;
    dt_relu_forward(c->out, c->inp, c->n);
    double l = 0.0;
    for (long i = 0; i < c->n; i++)
        l += (double)c->R[i] * c->out[i];
    return l;
}

static void test_relu_fd(void)
{
    enum { n = 97 };
    relu_ctx c = {n, falloc(n), falloc(n), falloc(n)};
    /* |x| >= 0.1, far from the kink compared with h */
    for (int i = 0; i < n; i++)
        c.inp[i] = (i % 3 == 0 ? -1.0f : 1.0f) * randu(0.1f, 1.0f);
    fill(c.R, n, -1, 1);
    float *dx = falloc(n), *fd = falloc(n), *dx2 = falloc(n), *sum = falloc(n);
    dt_relu_forward(c.out, c.inp, n);
    for (int i = 0; i < n; i++)
        dx[i] = NAN;
    dt_relu_backward(dx, c.R, c.out, n, 0, 0);
    central_diff_all(fd, relu_loss, &c, c.inp, n, 1e-3f);
    check_grad(dx, fd, n, 1e-4, 1e-5, "relu dinp");
    int zeros = 0;
    for (int i = 0; i < n; i++)
        zeros += c.inp[i] < 0 && dx[i] == 0.0f;
    CHECK(zeros == (n + 2) / 3); /* every negative input passes no gradient */

    /* accum = 1 */
    fill(dx2, n, -1, 1);
    for (int i = 0; i < n; i++)
        sum[i] = dx2[i] + dx[i];
    dt_relu_backward(dx2, c.R, c.out, n, 1, 0);
    CHECK_TENSOR_CLOSE(dx2, sum, n, 0.0, 0.0);

    /* in place forward (out == inp), and the gradient at exactly 0 is 0 (threshold_backward) */
    float *ip = falloc(n);
    memcpy(ip, c.inp, n * sizeof *ip);
    dt_relu_forward(ip, ip, n);
    CHECK_TENSOR_CLOSE(ip, c.out, n, 0.0, 0.0);
    float z[3] = {0.0f, -0.0f, 1e-30f}, zo[3], zd[3], one[3] = {1, 1, 1};
    dt_relu_forward(zo, z, 3);
    dt_relu_backward(zd, one, zo, 3, 0, 0);
    CHECK(zo[0] == 0.0f && zo[1] == 0.0f && zo[2] == 1e-30f);
    CHECK(zd[0] == 0.0f && zd[1] == 0.0f && zd[2] == 1.0f);

    free(c.inp), free(c.out), free(c.R), free(dx), free(fd), free(dx2), free(sum), free(ip);
}

/* ---- softmax cross-entropy ---- */

typedef struct {
    int N, K;
    float *logits, *probs, *targets;
    int *labels;
} xent_ctx;

static double xent_loss(void *p)
{
    xent_ctx *c = p;
    return dt_xent_forward(c->probs, c->logits, c->labels, c->labels ? NULL : c->targets, c->N,
                           c->K, NULL);
}

/* mean over rows of logsumexp(z) - sum_k t_k z_k, all in double */
static double xent_oracle(const float *z, const int *labels, const float *t, int N, int K,
                          double *probs)
{
    double total = 0.0;
    for (int n = 0; n < N; n++) {
        const float *r = z + (size_t)n * K;
        double m = r[0], s = 0.0;
        for (int k = 1; k < K; k++)
            m = r[k] > m ? r[k] : m;
        for (int k = 0; k < K; k++)
            s += exp((double)r[k] - m);
        double lse = m + log(s);
        for (int k = 0; k < K; k++)
            probs[(size_t)n * K + k] = exp((double)r[k] - lse);
        if (labels)
            total += lse - r[labels[n]];
        else
            for (int k = 0; k < K; k++)
                total += (double)t[(size_t)n * K + k] * (lse - r[k]);
    }
    return total / N;
}

static void test_xent(int soft)
{
    enum { N = 5, K = 7 };
    xent_ctx c = {N, K, falloc(N * K), falloc(N * K), falloc(N * K), NULL};
    int labels[N] = {3, 0, 6, 3, 1};
    fill(c.logits, N * K, -2, 2);
    if (soft) {
        for (int n = 0; n < N; n++) {
            float s = 0.0f;
            for (int k = 0; k < K; k++)
                s += c.targets[n * K + k] = randu(0.0f, 1.0f);
            for (int k = 0; k < K; k++)
                c.targets[n * K + k] /= s;
        }
    } else {
        c.labels = labels;
    }
    const char *what = soft ? "xent dlogits (soft targets)" : "xent dlogits (labels)";
    double pref[N * K];
    double loss = xent_loss(&c);
    double want = xent_oracle(c.logits, c.labels, c.targets, N, K, pref);
    CHECK_CLOSE(loss, want, 1e-6, 1e-7);
    float pf[N * K];
    for (int i = 0; i < N * K; i++)
        pf[i] = (float)pref[i];
    CHECK_TENSOR_CLOSE(c.probs, pf, N * K, 1e-6, 1e-7);

    float *d = falloc(N * K), *fd = falloc(N * K), *d2 = falloc(N * K);
    dt_xent_backward(d, c.probs, c.labels, c.targets, N, K, (float)N);
    central_diff_all(fd, xent_loss, &c, c.logits, N * K, 1e-2f);
    check_grad(d, fd, N * K, 1e-3, 1e-4, what);
    /* each row of the gradient sums to 0 (softmax minus a distribution) */
    double rowsum = 0.0;
    for (int n = 0; n < N; n++) {
        double s = 0.0;
        for (int k = 0; k < K; k++)
            s += d[n * K + k];
        rowsum = fabs(s) > rowsum ? fabs(s) : rowsum;
    }
    CHECK(rowsum < 1e-6);
    /* scale is the count the mean is over: twice the count, half the gradient */
    xent_loss(&c); /* probs of the unperturbed logits again */
    dt_xent_backward(d2, c.probs, c.labels, c.targets, N, K, 2.0f * N);
    for (int i = 0; i < N * K; i++)
        d2[i] *= 2.0f;
    CHECK_TENSOR_CLOSE(d2, d, N * K, 1e-6, 0.0);

    free(c.logits), free(c.probs), free(c.targets), free(d), free(fd), free(d2);
}

static void test_xent_extremes(void)
{
    /* log-sum-exp keeps huge logits finite; correct counts argmax == label */
    enum { N = 3, K = 4 };
    float z[N * K] = {1000, -1000, 500, 0, -88, -90, -89.5f, -200, 3, 3.5f, 1, 0};
    int labels[N] = {0, 1, 1};
    float p[N * K];
    double pref[N * K];
    int correct = -1;
    double loss = dt_xent_forward(p, z, labels, NULL, N, K, &correct);
    double want = xent_oracle(z, labels, NULL, N, K, pref);
    CHECK(isfinite(loss));
    CHECK_CLOSE(loss, want, 1e-6, 1e-7);
    CHECK(correct == 2);
    int finite = 1;
    for (int i = 0; i < N * K; i++)
        finite = finite && isfinite(p[i]) && fabs(p[i] - pref[i]) < 1e-6;
    CHECK(finite);
    float d[N * K];
    dt_xent_backward(d, p, labels, NULL, N, K, (float)N);
    CHECK(fabs(d[0]) < 1e-6 && fabs(d[4 + 1] - (pref[4 + 1] - 1) / N) < 1e-6);
}

/* ---- fast kernels vs _ref ---- */

static void test_linear_vs_ref(int N, int IN, int OUT)
{
    size_t ni = (size_t)N * IN, wi = (size_t)OUT * IN, no = (size_t)N * OUT;
    float *x = falloc(ni), *w = falloc(wi), *b = falloc(OUT), *dout = falloc(no);
    float *o1 = falloc(no), *o2 = falloc(no);
    float *dw1 = falloc(wi), *dw2 = falloc(wi), *db1 = falloc(OUT), *db2 = falloc(OUT);
    float *dx1 = falloc(ni), *dx2 = falloc(ni);
    fill(x, ni, -1, 1);
    fill(w, wi, -1, 1);
    fill(b, OUT, -1, 1);
    fill(dout, no, -1, 1);
    /* float sums of K products of values in [-1, 1] vs double sums: rounding grows ~sqrt(K) */
    const double rtol = 1e-5;
    const double atol_in = 2e-6 * sqrt((double)IN), atol_n = 2e-6 * sqrt((double)N);
    const double atol_out = 2e-6 * sqrt((double)OUT);
    char what[96];
    snprintf(what, sizeof what, "linear N=%d IN=%d OUT=%d", N, IN, OUT);
    int ok = 1;

    dt_linear_forward(o1, x, w, b, N, IN, OUT);
    dt_linear_forward_ref(o2, x, w, b, N, IN, OUT);
    ok &= check_tensor_close_at(o1, o2, (long)no, rtol, atol_in, what, __FILE__, __LINE__);
    dt_linear_forward(o1, x, w, NULL, N, IN, OUT);
    dt_linear_forward_ref(o2, x, w, NULL, N, IN, OUT);
    ok &= check_tensor_close_at(o1, o2, (long)no, rtol, atol_in, what, __FILE__, __LINE__);

    for (int accum = 0; accum <= 1; accum++) {
        fill(dx1, ni, -1, 1);
        memcpy(dx2, dx1, ni * sizeof *dx1);
        fill(dw1, wi, 7, 8);
        fill(db1, OUT, 7, 8);
        dt_linear_backward(dx1, dw1, db1, dout, x, w, N, IN, OUT, accum);
        dt_linear_backward_ref(dx2, dw2, db2, dout, x, w, N, IN, OUT, accum);
        ok &= check_tensor_close_at(dw1, dw2, (long)wi, rtol, atol_n, what, __FILE__, __LINE__);
        ok &= check_tensor_close_at(db1, db2, OUT, rtol, atol_n, what, __FILE__, __LINE__);
        ok &= check_tensor_close_at(dx1, dx2, (long)ni, rtol, atol_out, what, __FILE__, __LINE__);
    }
    /* optional outputs absent */
    dt_linear_backward(NULL, dw1, NULL, dout, x, w, N, IN, OUT, 0);
    ok &= check_tensor_close_at(dw1, dw2, (long)wi, rtol, atol_n, what, __FILE__, __LINE__);
    if (!ok)
        fprintf(stderr, "  %s: fast kernel vs _ref\n", what);
    free(x), free(w), free(b), free(dout), free(o1), free(o2), free(dw1), free(dw2), free(db1);
    free(db2), free(dx1), free(dx2);
}

/* ---- the whole net ---- */

/* A double-precision forward of net's layers (linear, relu, flatten) from double parameters;
 * returns the mean cross-entropy. logits (N, classes) out when not NULL. */
typedef struct {
    dt_net *net;
    int N;
    const float *x;
    const int *labels;
    double *param; /* (numel) */
    double **act;  /* per layer (N, out_size), or an alias */
    double *xin;
} dnet;

static int dnet_kinds_ok(const dt_net *net)
{
    for (int i = 0; i < net->nlayers; i++) {
        const char *k = net->layers[i].ops->kind;
        if (strcmp(k, "linear") && strcmp(k, "relu") && strcmp(k, "flatten")) {
            fprintf(stderr, "FAIL test_grad: no double oracle for layer kind '%s'\n", k);
            return 0;
        }
        if (net->layers[i].input != i - 1)
            return 0; /* a chain */
    }
    return 1;
}

static double dnet_loss(dnet *d, double *logits)
{
    dt_net *net = d->net;
    const int N = d->N;
    const double *in = d->xin;
    size_t in_size = (size_t)net->in_c * net->in_h * net->in_w;
    for (int li = 0; li < net->nlayers; li++) {
        const dt_layer *l = &net->layers[li];
        const char *k = l->ops->kind;
        double *out = d->act[li];
        if (strcmp(k, "flatten") == 0) {
            d->act[li] = (double *)in; /* a view */
            out = d->act[li];
        } else if (strcmp(k, "relu") == 0) {
            for (size_t i = 0; i < (size_t)N * l->out_size; i++)
                out[i] = in[i] > 0 ? in[i] : 0.0;
        } else { /* linear */
            const dt_param *pw = &net->params[l->param0];
            const double *W = d->param + pw->off;
            const double *B = l->nparam > 1 ? d->param + net->params[l->param0 + 1].off : NULL;
            int IN = (int)in_size, OUT = (int)l->out_size;
            for (int n = 0; n < N; n++)
                for (int o = 0; o < OUT; o++) {
                    double acc = B ? B[o] : 0.0;
                    for (int i = 0; i < IN; i++)
                        acc += in[(size_t)n * IN + i] * W[(size_t)o * IN + i];
                    out[(size_t)n * OUT + o] = acc;
                }
        }
        in = out;
        in_size = l->out_size;
    }
    const int K = net->classes;
    double total = 0.0;
    for (int n = 0; n < N; n++) {
        const double *z = in + (size_t)n * K;
        double m = z[0], s = 0.0;
        for (int k = 1; k < K; k++)
            m = z[k] > m ? z[k] : m;
        for (int k = 0; k < K; k++)
            s += exp(z[k] - m);
        total += m + log(s) - z[d->labels[n]];
    }
    if (logits)
        memcpy(logits, in, (size_t)N * K * sizeof *logits);
    return total / N;
}

/* The gradient g of parameter tensor p against central differences of the double-precision
 * loss at 10 coordinates: its 4 largest |g| and 6 at random; guarded against an all-zero g. */
static void check_param_fd(dnet *dn, const dt_param *p, const float *g)
{
    enum { NS = 10 };
    size_t idx[NS];
    int ns = 0;
    for (int t = 0; t < 4; t++) {
        size_t best = 0;
        double bv = -1;
        for (size_t i = 0; i < p->numel; i++) {
            int taken = 0;
            for (int j = 0; j < ns; j++)
                taken |= idx[j] == i;
            if (!taken && fabs(g[i]) > bv) {
                bv = fabs(g[i]);
                best = i;
            }
        }
        idx[ns++] = best;
    }
    while (ns < NS)
        idx[ns++] = dt_mt_next(&rng) % p->numel;
    float an[NS], fd[NS];
    const double h = 1e-6; /* small: no ReLU kink within reach */
    for (int j = 0; j < NS; j++) {
        double *v = &dn->param[p->off + idx[j]];
        const double v0 = *v;
        *v = v0 + h;
        double lp = dnet_loss(dn, NULL);
        *v = v0 - h;
        double lm = dnet_loss(dn, NULL);
        *v = v0;
        fd[j] = (float)((lp - lm) / (2 * h));
        an[j] = g[idx[j]];
    }
    /* float forward/backward vs exact: observed ~1e-8 of the largest gradient */
    double gmax = max_abs(g, p->numel);
    char what[96];
    snprintf(what, sizeof what, "net gradient %s", p->name);
    if (!check_tensor_close_at(an, fd, NS, 1e-4, 1e-5 * gmax, what, __FILE__, __LINE__))
        fprintf(stderr, "  %s: dt_net_backward vs finite differences\n", what);
    if (gmax > 1e-4) {
        check_passed++;
    } else {
        check_failed++;
        fprintf(stderr, "FAIL %s: the analytic gradient is (almost) all zero\n", what);
    }
}

static void test_net(void)
{
    enum { N = 4 };
    dt_net *net = NULL;
    DT_ASSERT(dt_net_build(&net, "mlp", N) == 0);
    dt_net_init(net, 3);
    const int D = net->in_c * net->in_h * net->in_w, K = net->classes;
    float *x = falloc((size_t)N * D), *probs = falloc((size_t)N * K);
    int labels[N] = {7, 2, 2, 9};
    fill(x, (size_t)N * D, 0, 1);
    float *logits = dt_net_forward(net, x, N, 1, NULL);
    double loss = dt_xent_forward(probs, logits, labels, NULL, N, K, NULL);
    dt_xent_backward(dt_net_dlogits(net), probs, labels, NULL, N, K, (float)N);
    memset(net->grad, 0xff, net->numel * sizeof *net->grad); /* NaN: backward fills it all */
    dt_net_backward(net, N, NULL);

    int kinds_ok = dnet_kinds_ok(net);
    CHECK(kinds_ok);
    if (!kinds_ok) {
        free(x), free(probs);
        dt_net_free(net);
        return;
    }
    dnet d = {net,
              N,
              x,
              labels,
              dt_xmalloc(net->numel, sizeof(double)),
              dt_xcalloc((size_t)net->nlayers, sizeof(double *)),
              dt_xmalloc((size_t)N * D, sizeof(double))};
    for (int li = 0; li < net->nlayers; li++)
        d.act[li] = dt_xmalloc((size_t)N * net->layers[li].out_size, sizeof(double));
    double **owned = dt_xmalloc((size_t)net->nlayers, sizeof(double *));
    memcpy(owned, d.act, (size_t)net->nlayers * sizeof *owned);
    for (size_t i = 0; i < net->numel; i++)
        d.param[i] = net->param[i];
    for (int i = 0; i < N * D; i++)
        d.xin[i] = x[i];

    /* the float forward agrees with the double one */
    double *dlog = dt_xmalloc((size_t)N * K, sizeof *dlog);
    float *flog = falloc((size_t)N * K);
    double dloss = dnet_loss(&d, dlog);
    for (int i = 0; i < N * K; i++)
        flog[i] = (float)dlog[i];
    CHECK_TENSOR_CLOSE(logits, flog, N * K, 1e-4, 1e-6);
    CHECK_CLOSE(loss, dloss, 1e-5, 1e-7);

    /* every gradient value was written (no NaN left) */
    size_t nan = 0;
    for (size_t i = 0; i < net->numel; i++)
        nan += isnan(net->grad[i]);
    CHECK(nan == 0);

    /* sampled coordinates per tensor: the 4 largest |g| and 6 at random */
    for (int pi = 0; pi < net->nparams; pi++)
        check_param_fd(&d, &net->params[pi], net->grad + net->params[pi].off);
    for (int li = 0; li < net->nlayers; li++)
        free(owned[li]);
    free(owned), free(d.act), free(d.param), free(d.xin), free(dlog), free(flog);
    free(x), free(probs);
    dt_net_free(net);
}

int main(void)
{
    dt_mt_seed(&rng, 2024);
    test_linear_fd(3, 5, 4);
    test_linear_fd(1, 1, 1);
    test_linear_fd(6, 9, 7);
    test_relu_fd();
    test_xent(0);
    test_xent(1);
    test_xent_extremes();
    static const int shapes[][3] = {{7, 13, 5},   {1, 1, 1},     {1, 784, 10}, {3, 17, 65},
                                    {33, 100, 7}, {64, 31, 129}, {5, 256, 3},  {2, 3, 1000}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        test_linear_vs_ref(shapes[i][0], shapes[i][1], shapes[i][2]);
    test_net();
    return check_finish("test_grad");
}
