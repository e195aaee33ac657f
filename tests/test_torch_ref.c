/*
 * test_torch_ref.c - the built-in "mlp" against PyTorch 1.13 (tests/fixtures/torch_mlp_ref.txt,
 * made by tests/fixtures/gen_torch_mlp.py):
 *   - dt_net_init(net, seed) is BITWISE torch.manual_seed(seed) + building the module (seeds 0
 *     and 1234: names, shapes, first/last 8 bit patterns, a checksum of every bit pattern, sums);
 *   - on a fixed batch, the logits and the parameter gradients of CrossEntropyLoss (mean);
 *   - 10-step torch.optim.SGD trajectories (momentum + dampening + weight decay; Nesterov;
 *     momentum 0): every step's loss and the final parameters, to 1e-5 relative.
 *
 * usage: test_torch_ref [tests/fixtures/torch_mlp_ref.txt]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"
#include "kernels/kernels.h"
#include "net.h"
#include "optim.h"

#define CK_MOD ((UINT64_C(1) << 61) - 1)
enum { N = 8, D = 784, K = 10, MAX_STEPS = 64, MAX_SAMPLES = 64 };

static dt_net *net;
static float x[N * D];
static int labels[N];
static float probs[N * K];
static int uniform_fma = -1;
static int init_mismatch;             /* tensors whose init differs from torch's bits */
static double traj_losses[MAX_STEPS]; /* losses of the trajectory being checked */
static int traj_steps;
static char traj_name[64];

/* sum_p (bits_p + 1) * (p + 1) mod 2^61 - 1, as gen_torch_mlp.py computes it. */
static uint64_t bits_checksum(const float *v, size_t n)
{
    uint64_t s = 0;
    for (size_t p = 0; p < n; p++) {
        uint32_t b;
        memcpy(&b, &v[p], sizeof b);
        s = (s + (((uint64_t)b + 1) * ((uint64_t)p + 1)) % CK_MOD) % CK_MOD;
    }
    return s;
}

static uint32_t bits_of(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

static int next_token(FILE *f, char buf[64])
{
    for (;;) {
        if (fscanf(f, "%63s", buf) != 1)
            return 0;
        if (buf[0] != '#')
            return 1;
        int c;
        while ((c = fgetc(f)) != EOF && c != '\n')
            ;
    }
}

static const dt_param *find_param(const char *name)
{
    for (int i = 0; i < net->nparams; i++)
        if (strcmp(net->params[i].name, name) == 0)
            return &net->params[i];
    return NULL;
}

static void make_batch(void)
{
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < D; j++)
            x[i * D + j] = (float)sin((double)i * 0.37 + (double)j * 0.11);
        labels[i] = i % 10;
    }
}

/* forward + CrossEntropyLoss (mean) + backward on the batch; returns the loss, grads in net */
static double forward_backward(void)
{
    float *logits = dt_net_forward(net, x, N, 1, NULL);
    double loss = dt_xent_forward(probs, logits, labels, NULL, N, K, NULL);
    dt_xent_backward(dt_net_dlogits(net), probs, labels, NULL, N, K, (float)N);
    dt_net_backward(net, N, NULL);
    return loss;
}

/* param NAME NDIM D0 [D1] NUMEL CHECKSUM SUM 8 hex 8 hex */
static int read_param(FILE *f, uint64_t seed)
{
    char name[64];
    int ndim, shape[4] = {0};
    unsigned long long numel, ck;
    double sum;
    unsigned int want[16];
    if (!next_token(f, name) || strcmp(name, "param") != 0 || !next_token(f, name) ||
        fscanf(f, "%d", &ndim) != 1 || ndim < 1 || ndim > 4)
        return 0;
    for (int d = 0; d < ndim; d++)
        if (fscanf(f, "%d", &shape[d]) != 1)
            return 0;
    if (fscanf(f, "%llu %llu %lf", &numel, &ck, &sum) != 3)
        return 0;
    for (int i = 0; i < 16; i++)
        if (fscanf(f, "%x", &want[i]) != 1)
            return 0;
    const dt_param *p = find_param(name);
    CHECK(p != NULL);
    if (!p) {
        fprintf(stderr, "  init: no parameter '%s' in the net\n", name);
        return 1;
    }
    int shape_ok = p->ndim == ndim && p->numel == numel && numel >= 8;
    for (int d = 0; d < ndim && shape_ok; d++)
        shape_ok = p->shape[d] == shape[d];
    CHECK(shape_ok);
    if (!shape_ok)
        return 1;
    const float *v = net->param + p->off;
    int diff = 0, maxulp = 0;
    for (int i = 0; i < 16; i++) {
        uint32_t b = bits_of(v[i < 8 ? i : (int)numel - 16 + i]);
        if (b != want[i]) {
            diff++;
            int u = abs((int)(int32_t)b - (int)(int32_t)want[i]);
            maxulp = u > maxulp ? u : maxulp;
        }
    }
    int bit_ok = diff == 0 && bits_checksum(v, numel) == ck;
    CHECK(bit_ok);
    if (!bit_ok) {
        init_mismatch++;
        fprintf(stderr,
                "  init seed %llu: %s is not bitwise torch's: %d of its 16 stored values differ "
                "(by up to %d ulp)\n",
                (unsigned long long)seed, name, diff, maxulp);
    }
    double s = 0.0;
    for (size_t i = 0; i < numel; i++)
        s += v[i];
    CHECK_CLOSE(s, sum, 1e-6, 1e-6);
    return 1;
}

/* KIND NAME NUMEL SUM SUMSQ NS (idx value)*: compares buf (net->param or net->grad). The sampled
 * values must be within rtol * |ref| + atol + atol_rms * rms(tensor). */
static int read_tensor(FILE *f, const float *buf, const char *what, double rtol, double atol,
                       double atol_rms)
{
    char name[64];
    unsigned long long numel;
    double sum, sumsq;
    int ns;
    if (!next_token(f, name) || fscanf(f, "%llu %lf %lf %d", &numel, &sum, &sumsq, &ns) != 4 ||
        ns < 0 || ns > MAX_SAMPLES)
        return 0;
    long idx[MAX_SAMPLES];
    float want[MAX_SAMPLES], got[MAX_SAMPLES];
    for (int i = 0; i < ns; i++)
        if (fscanf(f, "%ld %f", &idx[i], &want[i]) != 2 || idx[i] < 0 ||
            (unsigned long long)idx[i] >= numel)
            return 0;
    const dt_param *p = find_param(name);
    CHECK(p != NULL && p->numel == numel);
    if (!p || p->numel != numel)
        return 1;
    const float *v = buf + p->off;
    double s = 0.0, ss = 0.0;
    for (size_t i = 0; i < numel; i++) {
        s += v[i];
        ss += (double)v[i] * v[i];
    }
    for (int i = 0; i < ns; i++)
        got[i] = v[idx[i]];
    double rms = sqrt(sumsq / (double)numel);
    atol += atol_rms * rms;
    char label[160];
    snprintf(label, sizeof label, "%s %s (%s)", what, name, traj_name);
    if (!check_tensor_close_at(got, want, ns, rtol, atol, label, __FILE__, __LINE__))
        fprintf(stderr, "  %s: sampled values differ from torch\n", label);
    /* the sum and sum of squares over ALL values; the sum's scale is sqrt(n) * ||v||_2 >= sum|v|
     * (it cancels), and rtol / 4 of it leaves ~10x margin over the deviations seen */
    double l1 = sqrt((double)numel * sumsq);
    CHECK_CLOSE(s, sum, 0.0, rtol / 4 * l1 + 1e-12);
    CHECK_CLOSE(ss, sumsq, 4 * rtol, 1e-12);
    return 1;
}

static void run_trajectory(double lr, double mom, double damp, double wd, int nest, int steps)
{
    dt_net_init(net, 0);
    dt_optim o;
    dt_optim_init_sgd(&o, net->numel, mom, damp, wd, nest);
    for (int t = 0; t < steps; t++) {
        traj_losses[t] = forward_backward();
        dt_optim_step(&o, net->param, net->grad, lr, mom);
    }
    dt_optim_free(&o);
    traj_steps = steps;
}

static int check_fixture(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "FAIL test_torch_ref: cannot open %s\n", path);
        check_failed++;
        return 0;
    }
    char tok[64];
    int ok = 1, inits = 0, trajs = 0, grads = 0, finals = 0, have_logits = 0;
    while (ok && next_token(f, tok)) {
        if (strcmp(tok, "uniform_fma") == 0) {
            ok = fscanf(f, "%d", &uniform_fma) == 1;
        } else if (strcmp(tok, "init") == 0) {
            unsigned long long seed;
            int np;
            ok = fscanf(f, "%llu %d", &seed, &np) == 2;
            if (!ok)
                break;
            CHECK(np == net->nparams);
            dt_net_init(net, seed);
            for (int i = 0; i < np && ok; i++)
                ok = read_param(f, seed);
            inits++;
        } else if (strcmp(tok, "input") == 0) {
            int n, d;
            unsigned long long ck;
            ok = fscanf(f, "%d %d %llu", &n, &d, &ck) == 3;
            CHECK(n == N && d == D);
            CHECK(bits_checksum(x, (size_t)N * D) == ck); /* same sin, same float bits */
        } else if (strcmp(tok, "logits") == 0) {
            int n, k;
            float want[N * K];
            ok = fscanf(f, "%d %d", &n, &k) == 2 && n == N && k == K;
            for (int i = 0; i < N * K && ok; i++)
                ok = fscanf(f, "%f", &want[i]) == 1;
            if (!ok)
                break;
            dt_net_init(net, 0);
            float *logits = dt_net_forward(net, x, N, 1, NULL);
            CHECK_TENSOR_CLOSE(logits, want, N * K, 1e-5, 1e-6);
            forward_backward(); /* the gradients the "grad" records describe */
            snprintf(traj_name, sizeof traj_name, "first step");
            have_logits = 1;
        } else if (strcmp(tok, "grad") == 0) {
            /* gradients: float32 sums in another order; 1e-5 relative, plus 1e-5 of the
             * tensor's rms for values that are themselves cancellations */
            ok = have_logits && read_tensor(f, net->grad, "gradient", 1e-5, 0.0, 1e-5);
            grads++;
        } else if (strcmp(tok, "traj") == 0) {
            double lr, mom, damp, wd;
            int nest, steps;
            ok = fscanf(f, "%63s %lf %lf %lf %lf %d %d", traj_name, &lr, &mom, &damp, &wd, &nest,
                        &steps) == 7 &&
                 steps > 0 && steps <= MAX_STEPS;
            if (ok)
                run_trajectory(lr, mom, damp, wd, nest, steps);
            trajs++;
        } else if (strcmp(tok, "losses") == 0) {
            int steps;
            ok = fscanf(f, "%d", &steps) == 1 && steps == traj_steps;
            for (int t = 0; t < steps && ok; t++) {
                double want;
                ok = fscanf(f, "%lf", &want) == 1;
                if (ok)
                    CHECK_CLOSE(traj_losses[t], want, 1e-5, 1e-6);
            }
        } else if (strcmp(tok, "final") == 0) {
            ok = trajs > 0 && read_tensor(f, net->param, "parameters", 1e-5, 1e-6, 0.0);
            finals++;
        } else {
            ok = 0;
        }
    }
    fclose(f);
    if (!ok)
        fprintf(stderr, "FAIL test_torch_ref: %s: malformed near '%s'\n", path, tok);
    CHECK(ok);
    /* the whole fixture was read */
    CHECK(inits == 2 && have_logits && grads == 6 && trajs == 3 && finals == 18);
    return ok;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "tests/fixtures/torch_mlp_ref.txt";
    DT_ASSERT(dt_net_build(&net, "mlp", 64) == 0);
    CHECK(net->numel == 535818);
    make_batch();
    check_fixture(path);
    if (init_mismatch)
        fprintf(stderr,
                "  %d initialized tensors are not bitwise torch's. PyTorch's CPU uniform_ "
                "(AVX2/AVX-512 kernels) computes %s; dt_uniform_fill (runtime/layer.c) must do "
                "the same.\n",
                init_mismatch,
                uniform_fma == 1 ? "from + u * (to - from) with ONE rounding, "
                                   "fmaf(u, to - from, from)"
                                 : "u * (to - from) + from with two roundings");
    dt_net_free(net);
    return check_finish("test_torch_ref");
}
