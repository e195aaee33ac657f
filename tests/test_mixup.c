/*
 * test_mixup.c - mixup (the lecture's section 6; Zhang et al. 2018) and label smoothing (PyTorch's
 * CrossEntropyLoss(label_smoothing=eps)), runtime/mixup.h with the soft-target cross entropy of
 * kernels.h:
 *   - the samplers: Beta(a, b) mean a/(a+b) and variance ab/((a+b)^2(a+b+1)) over 200k draws for
 *     alpha 0.1 .. 5 and asymmetric pairs, every draw in [0, 1]; Beta(1, 1) uniform by deciles;
 *     Gamma(k) mean and variance k for shapes below and above 1 (the two code paths); tolerances
 *     are 5 standard errors from the exact fourth moments (seeds are fixed, so no flakiness);
 *   - the streams: the same (seed, rank, step) gives the same draws, changing any one of them
 *     gives different ones; dt_mixup_draw's perm is a permutation (and not the identity);
 *   - dt_mixup_apply: lam = 1 leaves x bitwise unchanged and gives the smoothed one-hot, so the
 *     soft-target loss and gradient equal the hard-label ones (plain training); lam = 0.3 gives
 *     the convex combinations of inputs and smoothed targets, and the mixup loss equals
 *     lam * CE(y) + (1 - lam) * CE(y[perm]) (the reference implementation's form);
 *   - label smoothing: targets 1 - eps + eps/K at the label, eps/K elsewhere, and the loss equals
 *     PyTorch's (1 - eps) * nll + eps/K * sum_k -log p_k, computed here in double;
 *   - finite differences of the soft-target cross entropy w.r.t. the logits, and through a small
 *     net (a model file written to a temporary folder) w.r.t. its parameters, with a guard
 *     against an all-zero gradient.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common.h"
#include "kernels/kernels.h"
#include "mixup.h"
#include "net.h"
#include "rng.h"

enum { DRAWS = 200000 };

static dt_mt19937 rng;

static float randu(float lo, float hi) { return lo + (hi - lo) * dt_mt_uniform(&rng); }

static double max_abs(const float *x, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

/* ---- samplers ---- */

/* E[X^k] of Beta(a, b): prod_{r < k} (a + r) / (a + b + r) */
static double beta_raw_moment(double a, double b, int k)
{
    double m = 1.0;
    for (int r = 0; r < k; r++)
        m *= (a + r) / (a + b + r);
    return m;
}

/* mean/variance of n draws against the exact values; tolerance 5 standard errors */
static void check_moments(const char *what, double mean, double var, double mu, double v,
                          double mu4, long n)
{
    double se_mean = sqrt(v / (double)n), se_var = sqrt((mu4 - v * v) / (double)n);
    if (!(fabs(mean - mu) <= 5.0 * se_mean)) {
        check_failed++;
        fprintf(stderr, "FAIL %s: mean %.6f, expected %.6f (5 SE = %.2g)\n", what, mean, mu,
                5.0 * se_mean);
    } else {
        check_passed++;
    }
    if (!(fabs(var - v) <= 5.0 * se_var)) {
        check_failed++;
        fprintf(stderr, "FAIL %s: variance %.6f, expected %.6f (5 SE = %.2g)\n", what, var, v,
                5.0 * se_var);
    } else {
        check_passed++;
    }
}

static void test_beta(double a, double b, uint64_t seed)
{
    dt_rng r;
    dt_rng_seed(&r, seed, 0, 0);
    double s = 0.0, ss = 0.0;
    long outside = 0;
    for (long i = 0; i < DRAWS; i++) {
        double x = dt_rng_beta(&r, a, b);
        if (!(x >= 0.0 && x <= 1.0))
            outside++;
        s += x;
        ss += x * x;
    }
    double mean = s / DRAWS, var = (ss - s * mean) / (DRAWS - 1);
    double m1 = beta_raw_moment(a, b, 1), m2 = beta_raw_moment(a, b, 2);
    double m3 = beta_raw_moment(a, b, 3), m4 = beta_raw_moment(a, b, 4);
    double v = a * b / ((a + b) * (a + b) * (a + b + 1.0));
    double mu4 = m4 - 4.0 * m1 * m3 + 6.0 * m1 * m1 * m2 - 3.0 * m1 * m1 * m1 * m1;
    char what[64];
    snprintf(what, sizeof what, "Beta(%g, %g)", a, b);
    CHECK(outside == 0);
    CHECK_CLOSE(v, m2 - m1 * m1, 1e-12, 1e-15); /* the variance formula itself */
    check_moments(what, mean, var, a / (a + b), v, mu4, DRAWS);
}

static void test_gamma(double k, uint64_t seed)
{
    dt_rng r;
    dt_rng_seed(&r, seed, 1, 2);
    double s = 0.0, ss = 0.0;
    long bad = 0;
    for (long i = 0; i < DRAWS; i++) {
        double x = dt_rng_gamma(&r, k);
        if (!(x >= 0.0 && isfinite(x)))
            bad++;
        s += x;
        ss += x * x;
    }
    double mean = s / DRAWS, var = (ss - s * mean) / (DRAWS - 1);
    char what[64];
    snprintf(what, sizeof what, "Gamma(%g)", k);
    CHECK(bad == 0);
    /* Gamma(k, 1): mean k, variance k, central fourth moment 3k(k + 2) */
    check_moments(what, mean, var, k, k, 3.0 * k * (k + 2.0), DRAWS);
}

/* Beta(1, 1) is uniform: each decile holds 10% of the draws (5 binomial standard errors) */
static void test_beta_uniform(void)
{
    dt_rng r;
    dt_rng_seed(&r, 99, 0, 0);
    long bins[10] = {0};
    for (long i = 0; i < DRAWS; i++) {
        double x = dt_rng_beta(&r, 1.0, 1.0);
        int b = (int)(x * 10.0);
        bins[b > 9 ? 9 : b]++;
    }
    double se = sqrt(DRAWS * 0.1 * 0.9);
    int ok = 1;
    for (int b = 0; b < 10; b++)
        if (fabs((double)bins[b] - DRAWS * 0.1) > 5.0 * se) {
            ok = 0;
            fprintf(stderr, "  Beta(1,1) decile %d holds %ld of %d\n", b, bins[b], DRAWS);
        }
    CHECK(ok);
}

static void test_uniform_range(void)
{
    dt_rng r;
    dt_rng_seed(&r, 5, 6, 7);
    long bad = 0;
    for (long i = 0; i < DRAWS; i++) {
        double u = dt_rng_uniform(&r);
        bad += !(u > 0.0 && u < 1.0);
    }
    CHECK(bad == 0);
}

/* ---- streams ---- */

static int same_stream(uint64_t a0, uint64_t b0, uint64_t c0, uint64_t a1, uint64_t b1, uint64_t c1)
{
    dt_rng r0, r1;
    dt_rng_seed(&r0, a0, b0, c0);
    dt_rng_seed(&r1, a1, b1, c1);
    int same = 1;
    for (int i = 0; i < 1000; i++)
        same &= dt_rng_next(&r0) == dt_rng_next(&r1);
    return same;
}

static int is_perm(const int *p, int n)
{
    char *seen = dt_xcalloc((size_t)n + 1, 1);
    int ok = 1;
    for (int i = 0; i < n; i++) {
        if (p[i] < 0 || p[i] >= n || seen[p[i]])
            ok = 0;
        else
            seen[p[i]] = 1;
    }
    free(seen);
    return ok;
}

static void test_streams(void)
{
    CHECK(same_stream(1, 2, 3, 1, 2, 3));
    CHECK(!same_stream(1, 2, 3, 4, 2, 3));
    CHECK(!same_stream(1, 2, 3, 1, 5, 3));
    CHECK(!same_stream(1, 2, 3, 1, 2, 6));
    CHECK(!same_stream(0, 0, 0, 0, 0, 1));
    CHECK(!same_stream(0, 0, 1, 0, 1, 0)); /* rank and step are not interchangeable */

    enum { N = 64 };
    int p0[N], p1[N];
    double l0 = dt_mixup_draw(42, 1, 17, 0.4, p0, N);
    double l1 = dt_mixup_draw(42, 1, 17, 0.4, p1, N);
    CHECK(l0 == l1 && memcmp(p0, p1, sizeof p0) == 0);
    CHECK(l0 >= 0.0 && l0 <= 1.0);
    /* change each of seed, rank, step: lambda and the pairing change */
    const uint64_t seeds[3] = {43, 42, 42};
    const int ranks[3] = {1, 0, 1};
    const int64_t steps[3] = {17, 17, 18};
    for (int v = 0; v < 3; v++) {
        double l = dt_mixup_draw(seeds[v], ranks[v], steps[v], 0.4, p1, N);
        CHECK(l != l0);
        CHECK(memcmp(p0, p1, sizeof p0) != 0);
    }
    /* perm is a permutation, for several N, and not the identity for large N */
    const int ns[] = {1, 2, 3, 7, 64, 1000};
    int *p = dt_xmalloc(1000, sizeof *p);
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        int all_ok = 1, moved = 0;
        for (int64_t step = 0; step < 20; step++) {
            double l = dt_mixup_draw(7, 0, step, 0.2, p, ns[k]);
            all_ok &= is_perm(p, ns[k]) && l >= 0.0 && l <= 1.0;
            for (int i = 0; i < ns[k]; i++)
                moved += p[i] != i;
        }
        CHECK(all_ok);
        if (ns[k] >= 3)
            CHECK(moved > 0);
    }
    free(p);
    /* the pairing is uniform: over many steps, each of the 3! permutations of 3 is as likely
     * (a Fisher-Yates that skips a swap still permutes, but misses some orders) */
    long seen[6] = {0};
    const long trials = 60000;
    for (long st = 0; st < trials; st++) {
        int q[3];
        dt_mixup_draw(8, 2, st, 1.0, q, 3);
        seen[q[0] * 2 + (q[1] > q[2])]++; /* q[0] and the order of the other two: a bijection */
    }
    int uniform = 1;
    double se = sqrt(trials * (1.0 / 6.0) * (5.0 / 6.0));
    for (int k = 0; k < 6; k++)
        uniform &= fabs((double)seen[k] - trials / 6.0) <= 5.0 * se;
    if (!uniform)
        fprintf(stderr, "  permutations of 3: %ld %ld %ld %ld %ld %ld of %ld\n", seen[0], seen[1],
                seen[2], seen[3], seen[4], seen[5], trials);
    CHECK(uniform);
    /* lambda over many steps is Beta(alpha, alpha): mean 1/2, variance 1/(4(2 alpha + 1)) */
    int one;
    double s = 0.0, ss = 0.0;
    const long steps_n = 50000;
    const double alpha = 0.2;
    for (long st = 0; st < steps_n; st++) {
        double l = dt_mixup_draw(3, 0, st, alpha, &one, 1);
        s += l;
        ss += l * l;
    }
    double mean = s / steps_n, var = (ss - s * mean) / (steps_n - 1);
    double m1 = beta_raw_moment(alpha, alpha, 1), m2 = beta_raw_moment(alpha, alpha, 2);
    double m3 = beta_raw_moment(alpha, alpha, 3), m4 = beta_raw_moment(alpha, alpha, 4);
    double mu4 = m4 - 4.0 * m1 * m3 + 6.0 * m1 * m1 * m2 - 3.0 * m1 * m1 * m1 * m1;
    check_moments("dt_mixup_draw lambda", mean, var, 0.5, 1.0 / (4.0 * (2.0 * alpha + 1.0)), mu4,
                  steps_n);
}

/* ---- mixup and label smoothing ---- */

/* PyTorch's CrossEntropyLoss(label_smoothing=eps), mean reduction, in double:
 * loss_n = (1 - eps) * (-log p_{y_n}) + eps / K * sum_k (-log p_k) */
static double torch_ls_loss(const float *z, const int *y, int N, int K, double eps)
{
    double total = 0.0;
    for (int n = 0; n < N; n++) {
        const float *zn = z + (size_t)n * K;
        double m = zn[0], s = 0.0, sum_nlp = 0.0;
        for (int k = 1; k < K; k++)
            m = zn[k] > m ? zn[k] : m;
        for (int k = 0; k < K; k++)
            s += exp((double)zn[k] - m);
        double lse = m + log(s);
        for (int k = 0; k < K; k++)
            sum_nlp += lse - zn[k];
        total += (1.0 - eps) * (lse - zn[y[n]]) + eps / K * sum_nlp;
    }
    return total / N;
}

/* Label smoothing (ts: y's targets smoothed by eps, (N, K)): PyTorch's convention for the targets
 * and its formula for the loss over logits z, for several eps. ts and a scratch are reused. */
static void check_smoothing(float *ts, const int *y, const float *z, int N, int K, float eps)
{
    float *probs = dt_xmalloc((size_t)N * K, sizeof *probs);
    int conv = 1;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            double want = k == y[n] ? 1.0 - eps + eps / K : eps / K;
            conv &= fabs(ts[n * K + k] - want) <= 1e-7;
        }
    CHECK(conv);
    dt_targets_smooth(ts, y, N, K, 0.0f);
    int plain = 1;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            plain &= ts[n * K + k] == (k == y[n] ? 1.0f : 0.0f);
    CHECK(plain);
    const float epss[] = {0.0f, 0.05f, 0.1f, 0.3f};
    for (size_t e = 0; e < sizeof epss / sizeof epss[0]; e++) {
        dt_targets_smooth(ts, y, N, K, epss[e]);
        double got = dt_xent_forward(probs, z, NULL, ts, N, K, NULL);
        CHECK_CLOSE(got, torch_ls_loss(z, y, N, K, (double)epss[e]), 1e-6, 1e-7);
    }
    free(probs);
}

static void test_mixup_apply(void)
{
    enum { N = 16, K = 10 };
    const long D = 3 * 5 * 5;
    float *x = dt_xmalloc((size_t)N * D, sizeof *x), *x0 = dt_xmalloc((size_t)N * D, sizeof *x);
    float *xtmp = dt_xmalloc((size_t)N * D, sizeof *x);
    float t[N * K], ts[N * K], z[N * K], probs[N * K], probs2[N * K], d1[N * K], d2[N * K];
    int y[N], perm[N];
    for (long i = 0; i < N * D; i++)
        x0[i] = randu(-2.0f, 2.0f);
    for (int n = 0; n < N; n++)
        y[n] = (int)(dt_mt_next(&rng) % K);
    for (int i = 0; i < N * K; i++)
        z[i] = randu(-3.0f, 3.0f);
    dt_mixup_draw(11, 0, 0, 1.0, perm, N);
    CHECK(is_perm(perm, N));

    /* lam = 1, eps = 0: x unchanged (bitwise), targets one-hot: plain training */
    memcpy(x, x0, (size_t)N * D * sizeof *x);
    dt_mixup_apply(x, t, y, perm, N, D, K, 1.0f, 0.0f, xtmp);
    CHECK(memcmp(x, x0, (size_t)N * D * sizeof *x) == 0);
    int onehot = 1;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            onehot &= t[n * K + k] == (k == y[n] ? 1.0f : 0.0f);
    CHECK(onehot);
    int c1 = -1, c2 = -1;
    double hard = dt_xent_forward(probs, z, y, NULL, N, K, &c1);
    double soft = dt_xent_forward(probs2, z, NULL, t, N, K, &c2);
    CHECK_CLOSE(soft, hard, 1e-12, 0.0);
    CHECK(memcmp(probs, probs2, sizeof probs) == 0);
    dt_xent_backward(d1, probs, y, NULL, N, K, (float)N);
    dt_xent_backward(d2, probs2, NULL, t, N, K, (float)N);
    CHECK_TENSOR_CLOSE(d2, d1, N * K, 0.0, 1e-7);
    CHECK(max_abs(d1, N * K) > 1e-3);

    /* lam = 1, eps = 0.1: x unchanged, targets = the smoothed one-hot of y */
    const float eps = 0.1f;
    memcpy(x, x0, (size_t)N * D * sizeof *x);
    dt_mixup_apply(x, t, y, perm, N, D, K, 1.0f, eps, xtmp);
    CHECK(memcmp(x, x0, (size_t)N * D * sizeof *x) == 0);
    dt_targets_smooth(ts, y, N, K, eps);
    CHECK_TENSOR_CLOSE(t, ts, N * K, 0.0, 1e-7);

    check_smoothing(ts, y, z, N, K, eps);

    /* lam = 0.3: convex combinations; the loss splits as lam * CE(y) + (1 - lam) * CE(y[perm]) */
    const float lam = 0.3f;
    for (int pass = 0; pass < 2; pass++) {
        float e2 = pass ? eps : 0.0f;
        memcpy(x, x0, (size_t)N * D * sizeof *x);
        dt_mixup_apply(x, t, y, perm, N, D, K, lam, e2, xtmp);
        float *xr = xtmp; /* reuse as the reference */
        for (int n = 0; n < N; n++)
            for (long d = 0; d < D; d++)
                xr[n * D + d] = (float)(0.3 * x0[n * D + d] + 0.7 * x0[perm[n] * D + d]);
        CHECK_TENSOR_CLOSE(x, xr, N * D, 1e-6, 1e-6);
        int rows_ok = 1, tgt_ok = 1;
        for (int n = 0; n < N; n++) {
            double rs = 0.0;
            for (int k = 0; k < K; k++) {
                double ti = k == y[n] ? 1.0 - e2 + e2 / K : e2 / K;
                double tj = k == y[perm[n]] ? 1.0 - e2 + e2 / K : e2 / K;
                double want = 0.3 * ti + 0.7 * tj;
                tgt_ok &= fabs(t[n * K + k] - want) <= 1e-6;
                rs += t[n * K + k];
            }
            rows_ok &= fabs(rs - 1.0) <= 1e-6;
        }
        CHECK(tgt_ok);
        CHECK(rows_ok);
        int yp[N];
        for (int n = 0; n < N; n++)
            yp[n] = y[perm[n]];
        double mixed = dt_xent_forward(probs, z, NULL, t, N, K, NULL);
        double split = 0.3 * torch_ls_loss(z, y, N, K, e2) + 0.7 * torch_ls_loss(z, yp, N, K, e2);
        CHECK_CLOSE(mixed, split, 1e-6, 1e-7);
    }
    free(x);
    free(x0);
    free(xtmp);
}

/* ---- finite differences ---- */

typedef struct {
    const float *logits; /* (N, K) */
    const float *targets;
    int N, K;
    float *probs;
    dt_net *net;
    const float *x;
} fd_ctx;

static double xent_loss(fd_ctx *c)
{
    return dt_xent_forward(c->probs, c->logits, NULL, c->targets, c->N, c->K, NULL);
}

static double net_loss(fd_ctx *c)
{
    const float *logits = dt_net_forward(c->net, c->x, c->N, 1, NULL);
    return dt_xent_forward(c->probs, logits, NULL, c->targets, c->N, c->K, NULL);
}

/* d loss / d *v by central differences; the step actually taken is what float allows */
static double central_diff(double (*f)(fd_ctx *), fd_ctx *c, float *v, float h)
{
    const float v0 = *v;
    *v = v0 + h;
    const double vp = *v, lp = f(c);
    *v = v0 - h;
    const double vm = *v, lm = f(c);
    *v = v0;
    return (lp - lm) / (vp - vm);
}

static void test_fd_xent(void)
{
    enum { N = 6, K = 7 };
    float z[N * K], t[N * K], probs[N * K], g[N * K], fd[N * K];
    int y[N], perm[N];
    for (int i = 0; i < N * K; i++)
        z[i] = randu(-2.0f, 2.0f);
    for (int n = 0; n < N; n++)
        y[n] = (int)(dt_mt_next(&rng) % K);
    double lam = dt_mixup_draw(5, 0, 3, 0.4, perm, N);
    /* the mixup targets for this lam (x is irrelevant here: D = 1) */
    float xs[N], xt[N];
    for (int n = 0; n < N; n++)
        xs[n] = 0.0f;
    dt_mixup_apply(xs, t, y, perm, N, 1, K, (float)lam, 0.1f, xt);
    fd_ctx c = {z, t, N, K, probs, NULL, NULL};
    dt_xent_forward(probs, z, NULL, t, N, K, NULL);
    dt_xent_backward(g, probs, NULL, t, N, K, (float)N);
    for (int i = 0; i < N * K; i++)
        fd[i] = (float)central_diff(xent_loss, &c, &z[i], 1e-2f);
    if (!CHECK_TENSOR_CLOSE(g, fd, N * K, 1e-3, 2e-5))
        fprintf(stderr, "  soft-target cross entropy: analytic vs finite differences\n");
    CHECK(max_abs(g, N * K) > 1e-3);
    /* the gradient rows sum to zero (softmax minus a distribution) */
    int zero_rows = 1;
    for (int n = 0; n < N; n++) {
        double s = 0.0;
        for (int k = 0; k < K; k++)
            s += g[n * K + k];
        zero_rows &= fabs(s) < 1e-6;
    }
    CHECK(zero_rows);
}

static const char tiny_model[] = "# test_mixup: a tiny MLP for the finite-difference check\n"
                                 "[net]\ninput = 1x8x8\nclasses = 10\n\n"
                                 "[flatten]\n\n"
                                 "[linear]\nname = fc1\nout = 12\n\n"
                                 "[relu]\n\n"
                                 "[linear]\nname = fc2\nout = 10\n";

static void test_fd_net(void)
{
    enum { N = 8, K = 10 };
    const long D = 64;
    char dir[] = "/tmp/dtrain-mixup.XXXXXX", path[64];
    if (!mkdtemp(dir)) {
        check_failed++;
        perror("mkdtemp");
        return;
    }
    snprintf(path, sizeof path, "%s/tiny.cfg", dir);
    FILE *f = fopen(path, "w");
    DT_ASSERT(f);
    fputs(tiny_model, f);
    DT_ASSERT(fclose(f) == 0);
    dt_net *net = NULL;
    int rc = dt_net_build(&net, path, N);
    remove(path);
    rmdir(dir);
    CHECK(rc == 0);
    if (rc != 0)
        return;
    dt_net_init(net, 3);
    float x[N * 64], xtmp[N * 64], t[N * K], probs[N * K];
    int y[N], perm[N];
    for (long i = 0; i < N * D; i++)
        x[i] = randu(-1.5f, 1.5f);
    for (int n = 0; n < N; n++)
        y[n] = (int)(dt_mt_next(&rng) % K);
    dt_mixup_draw(9, 0, 1, 0.4, perm, N);
    dt_mixup_apply(x, t, y, perm, N, D, K, 0.3f, 0.1f, xtmp);
    fd_ctx c = {NULL, t, N, K, probs, net, x};
    const float *logits = dt_net_forward(net, x, N, 1, NULL);
    dt_xent_forward(probs, logits, NULL, t, N, K, NULL);
    dt_xent_backward(dt_net_dlogits(net), probs, NULL, t, N, K, (float)N);
    dt_net_backward(net, N, NULL);
    float *g = dt_xmalloc(net->numel, sizeof *g);
    memcpy(g, net->grad, net->numel * sizeof *g);
    /* 30 random coordinates of every tensor (fc1.weight, fc1.bias, fc2.weight, fc2.bias) */
    enum { PER = 30 };
    int skipped = 0;
    CHECK(net->nparams == 4);
    for (int p = 0; p < net->nparams && p < 4; p++) {
        const dt_param *pp = &net->params[p];
        float an[PER] = {0}, fd[PER] = {0};
        int m = 0;
        for (int k = 0; k < PER; k++) {
            size_t i = pp->off + dt_mt_next(&rng) % pp->numel;
            /* a ReLU kink within the step makes two step sizes disagree: such a coordinate
             * says nothing about the gradient, skip it (counted below) */
            double f1 = central_diff(net_loss, &c, &net->param[i], 1e-3f);
            double f2 = central_diff(net_loss, &c, &net->param[i], 5e-4f);
            if (fabs(f1 - f2) > 1e-4 + 1e-2 * fabs(f2)) {
                skipped++;
                continue;
            }
            an[m] = g[i];
            fd[m] = (float)f1;
            m++;
        }
        if (!check_tensor_close_at(an, fd, m, 1e-2, 2e-4, pp->name, __FILE__, __LINE__))
            fprintf(stderr, "  mixup loss through a net: %s analytic vs finite differences\n",
                    pp->name);
        if (max_abs(an, (size_t)m) > 1e-3) { /* no all-zero gradient passes */
            check_passed++;
        } else {
            check_failed++;
            fprintf(stderr, "FAIL %s: the analytic gradient is (almost) all zero\n", pp->name);
        }
    }
    if (skipped <= 8) {
        check_passed++;
    } else {
        check_failed++;
        fprintf(stderr, "FAIL: %d of %d finite differences were inconsistent\n", skipped, 4 * PER);
    }
    CHECK(max_abs(g, net->numel) > 1e-3);
    free(g);
    dt_net_free(net);
}

int main(void)
{
    dt_mt_seed(&rng, 2024);
    const double sym[] = {0.1, 0.2, 0.4, 1.0, 2.0, 5.0};
    for (size_t i = 0; i < sizeof sym / sizeof sym[0]; i++)
        test_beta(sym[i], sym[i], 100 + i);
    test_beta(0.5, 2.0, 200);
    test_beta(3.0, 0.7, 201);
    test_beta(2.0, 5.0, 202);
    test_beta_uniform();
    const double shapes[] = {0.1, 0.3, 0.7, 1.0, 2.5, 9.0};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        test_gamma(shapes[i], 300 + i);
    test_uniform_range();
    test_streams();
    test_mixup_apply();
    test_fd_xent();
    test_fd_net();
    return check_finish("test_mixup");
}
