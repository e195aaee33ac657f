/*
 * test_lowp.c - low-precision training (runtime/lowp.c, the lowp paths of net.c):
 *   - float16 / bfloat16 rounding bitwise equal to PyTorch's tensor.half().float() and
 *     .bfloat16().float() on 4000 values (tests/fixtures/torch_lowp_ref.txt: ties, overflow to
 *     infinity, subnormals, random bit patterns), through the vector kernels (F16C where the CPU
 *     has it) and the scalar references; NaN stays NaN;
 *   - the loss scaler against GradScaler's rules: unscaling by float(1/S), skipped steps on
 *     inf/NaN with the scale halved, doubling after growth_interval clean steps, a fixed scale;
 *   - a net in fp16 / bf16: its forward and backward equal the kernels run on inputs, weights
 *     and inter-layer gradients rounded by hand (fp16: the float32 kernels; bf16: the linear
 *     layers' bf16 GEMM, kernels/bf16.h), and the float32 master weights are left as they were.
 * usage: test_lowp [tests/fixtures/torch_lowp_ref.txt]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"
#include "fdcheck.h"
#include "kernels/bf16.h"
#include "kernels/gemm.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "lowp.h"
#include "net.h"

static float from_bits(unsigned u)
{
    float f;
    uint32_t v = u;
    memcpy(&f, &v, sizeof f);
    return f;
}

static uint32_t to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static void test_fixture(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "FAIL test_lowp: cannot open %s\n", path);
        CHECK(0);
        return;
    }
    enum { MAXV = 5000 };
    static float x[MAXV], h[MAXV], b[MAXV], v16[MAXV], vb[MAXV];
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, f) && n < MAXV) {
        unsigned a, c, d;
        if (line[0] == '#' || sscanf(line, "%x %x %x", &a, &c, &d) != 3)
            continue;
        x[n] = from_bits(a), h[n] = from_bits(c), b[n] = from_bits(d);
        n++;
    }
    fclose(f);
    CHECK(n == 4000);
    int bad16 = 0, badb = 0, bad16s = 0, badbs = 0;
    memcpy(v16, x, (size_t)n * sizeof *x);
    memcpy(vb, x, (size_t)n * sizeof *x);
    dt_round_fp16(v16, (size_t)n);
    dt_round_bf16(vb, (size_t)n);
    for (int i = 0; i < n; i++) {
        if (to_bits(v16[i]) != to_bits(h[i]) && bad16++ < 3)
            fprintf(stderr, "  fp16(%a) = %a, torch %a\n", x[i], v16[i], h[i]);
        if (to_bits(vb[i]) != to_bits(b[i]) && badb++ < 3)
            fprintf(stderr, "  bf16(%a) = %a, torch %a\n", x[i], vb[i], b[i]);
        bad16s += to_bits(dt_round_fp16_1(x[i])) != to_bits(h[i]);
        badbs += to_bits(dt_round_bf16_1(x[i])) != to_bits(b[i]);
    }
    CHECK(bad16 == 0);
    CHECK(badb == 0);
    CHECK(bad16s == 0);
    CHECK(badbs == 0);
    /* a length that leaves a tail after the 8-wide loop */
    memcpy(v16, x + 100, 13 * sizeof *x);
    dt_round_fp16(v16, 13);
    CHECK(memcmp(v16, h + 100, 13 * sizeof *x) == 0);
    /* NaN stays NaN; rounding is idempotent */
    float nan3[3] = {NAN, -NAN, from_bits(0x7f800001u)};
    dt_round_fp16(nan3, 3);
    CHECK(isnan(nan3[0]) && isnan(nan3[1]) && isnan(nan3[2]));
    float nanb[3] = {NAN, -NAN, from_bits(0x7fc00001u)};
    dt_round_bf16(nanb, 3);
    CHECK(isnan(nanb[0]) && isnan(nanb[1]) && isnan(nanb[2]));
    CHECK(isnan(dt_round_fp16_1(NAN)) && isnan(dt_round_bf16_1(NAN)));
    memcpy(v16, h, (size_t)n * sizeof *h);
    dt_round_fp16(v16, (size_t)n);
    CHECK(memcmp(v16, h, (size_t)n * sizeof *h) == 0);
    /* spot values */
    CHECK(dt_round_fp16_1(65519.0f) == 65504.0f && isinf(dt_round_fp16_1(65520.0f)));
    CHECK(dt_round_fp16_1(0x1p-25f) == 0.0f && dt_round_fp16_1(0x1.8p-25f) == 0x1p-24f);
    CHECK(dt_round_bf16_1(1.0f + 0x1p-8f) == 1.0f &&
          dt_round_bf16_1(1.0f + 0x3p-8f) == 1.0f + 0x1p-6f);
}

static void test_scaler(void)
{
    dt_scaler s;
    dt_scaler_init(&s, 65536.0, 1, 3);
    float g[4] = {65536.0f, -32768.0f, 3.0f, 0.0f};
    CHECK(dt_scaler_unscale_update(&s, g, 4) == 1);
    CHECK(g[0] == 1.0f && g[1] == -0.5f && g[2] == 3.0f * (float)(1.0 / 65536.0) && g[3] == 0.0f);
    CHECK(s.scale == 65536.0 && s.growth_tracker == 1);
    float inf[2] = {1.0f, INFINITY};
    CHECK(dt_scaler_unscale_update(&s, inf, 2) == 0); /* skip: scale halves, tracker resets */
    CHECK(inf[0] == 1.0f && s.scale == 32768.0 && s.growth_tracker == 0 && s.skipped == 1);
    float nan1[1] = {NAN};
    CHECK(dt_scaler_unscale_update(&s, nan1, 1) == 0 && s.scale == 16384.0 && s.skipped == 2);
    for (int i = 0; i < 3; i++) { /* growth_interval clean steps: the scale doubles */
        float one[1] = {1.0f};
        CHECK(dt_scaler_unscale_update(&s, one, 1) == 1);
    }
    CHECK(s.scale == 32768.0 && s.growth_tracker == 0);
    /* fixed scale: never changes, still skips */
    dt_scaler_init(&s, 128.0, 0, 2000);
    float a[2] = {256.0f, INFINITY};
    CHECK(dt_scaler_unscale_update(&s, a, 1) == 1 && a[0] == 2.0f);
    CHECK(dt_scaler_unscale_update(&s, a, 2) == 0 && s.scale == 128.0 && s.skipped == 1);
}

/* The linear layer's products in format: bf16 runs the bf16 GEMM of the kernel table in use
 * (layers/linear.c; it rounds while packing, which is exact on these rounded values, and
 * accumulates in vdpbf16ps's order, so the fp32 kernels' bits are not the expectation), fp16 the
 * fp32 kernels. The bf16 GEMM itself is checked against references in test_kern_bf16. */
static void lin_forward(int format, float *out, const float *inp, const float *w, const float *b,
                        int N, int IN, int OUT)
{
    if (format == DT_BF16)
        dt_bf16_gemm(0, 1, N, OUT, IN, inp, IN, w, IN, b, 0, out, OUT);
    else
        dt_linear_forward(out, inp, w, b, N, IN, OUT);
}

static void lin_backward(int format, float *dinp, float *dw, float *db, const float *dout,
                         const float *inp, const float *w, int N, int IN, int OUT)
{
    if (format != DT_BF16) {
        dt_linear_backward(dinp, dw, db, dout, inp, w, N, IN, OUT, 0);
        return;
    }
    dt_bf16_gemm(1, 0, OUT, IN, N, dout, OUT, inp, IN, NULL, 0, dw, IN);
    for (int o = 0; o < OUT; o++) {
        db[o] = 0.0f;
        for (int n = 0; n < N; n++)
            db[o] += dout[(size_t)n * OUT + o];
    }
    if (dinp)
        dt_bf16_gemm(0, 0, N, IN, OUT, dout, OUT, w, IN, NULL, 0, dinp, IN);
}

/* a tiny mlp in fp16 / bf16 against the same kernels on hand-rounded values */
static const char *tiny =
    "tests/fixtures/dp_mlp.cfg"; /* 1x8x8 -> flatten -> linear 24 -> relu -> linear 10 */

static void test_net(int format)
{
    enum { N = 5, IN = 64, H = 24, OUT = 10 };
    dt_net *net = NULL;
    DT_ASSERT(dt_net_build(&net, tiny, N) == 0);
    dt_net_init(net, 3);
    dt_net_set_precision(net, format);
    float *master = dt_xmalloc(net->numel, sizeof *master);
    memcpy(master, net->param, net->numel * sizeof *master);
    float x[N * IN], x0[N * IN], dl[N * OUT];
    fill(x0, N * IN, -3, 3);
    fill(dl, N * OUT, -1e-3f, 1e-3f);
    memcpy(x, x0, sizeof x);
    const float *logits = dt_net_forward(net, x, N, 1, NULL);
    float out[N * OUT];
    memcpy(out, logits, sizeof out);
    memcpy(dt_net_dlogits(net), dl, sizeof dl);
    dt_net_backward(net, N, NULL);
    CHECK(memcmp(master, net->param, net->numel * sizeof *master) == 0); /* master untouched */

    /* by hand: params fc1.weight, fc1.bias, fc2.weight, fc2.bias in layout order */
    float w[IN * H + H + H * OUT + OUT];
    DT_ASSERT(net->numel == sizeof w / sizeof w[0]);
    memcpy(w, master, sizeof w);
    dt_round_to(format, w, net->numel);
    float *w1 = w, *b1 = w + IN * H, *w2 = b1 + H, *b2 = w2 + H * OUT;
    float xi[N * IN], h1[N * H], r1[N * H], o[N * OUT];
    memcpy(xi, x0, sizeof xi);
    dt_round_to(format, xi, N * IN);
    lin_forward(format, h1, xi, w1, b1, N, IN, H);
    dt_round_to(format, h1, N * H);
    dt_relu_forward(r1, h1, N * H);
    dt_round_to(format, r1, N * H);
    lin_forward(format, o, r1, w2, b2, N, H, OUT);
    dt_round_to(format, o, N * OUT);
    CHECK(memcmp(o, out, sizeof o) == 0);
    float d[N * OUT], dr1[N * H], dh1[N * H], gw[sizeof w / sizeof w[0]];
    memcpy(d, dl, sizeof d);
    dt_round_to(format, d, N * OUT);
    lin_backward(format, dr1, gw + IN * H + H, gw + IN * H + H + H * OUT, d, r1, w2, N, H, OUT);
    dt_round_to(format, dr1, N * H);
    dt_relu_backward(dh1, dr1, r1, N * H, 0, 0);
    dt_round_to(format, dh1, N * H);
    lin_backward(format, NULL, gw, gw + IN * H, dh1, xi, w1, N, IN, H);
    if (!CHECK_TENSOR_CLOSE(net->grad, gw, net->numel, 0.0, 0.0))
        fprintf(stderr, "  %s net gradients\n", format == DT_FP16 ? "fp16" : "bf16");
    /* and they differ from float32's: the rounding is real */
    dt_net_set_precision(net, DT_FP32);
    memcpy(x, x0, sizeof x);
    const float *l32 = dt_net_forward(net, x, N, 1, NULL);
    CHECK(memcmp(l32, out, sizeof out) != 0);
    free(master);
    dt_net_free(net);
}

int main(int argc, char **argv)
{
    dt_mt_seed(&rng, 77);
    test_fixture(argc > 1 ? argv[1] : "tests/fixtures/torch_lowp_ref.txt");
    test_scaler();
    test_net(DT_FP16);
    test_net(DT_BF16);
    return check_finish("test_lowp");
}
