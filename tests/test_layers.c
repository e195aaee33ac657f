/*
 * test_layers.c - the convolutional-network layer kernels (layer_kernels.h) against finite
 * differences and against their naive _ref kernels:
 *   - conv2d: every gradient (dinp, dweight, dbias) against central differences of the loss
 *     L = sum(out * R) through dt_conv2d_forward_ref, on small odd shapes covering every path
 *     (general im2col/col2im, stride 2, 1x1 pointwise, 1x1 strided, "same"-padded convs with the
 *     transposed backward, non-square kernels, padding larger than K/2); fast vs _ref forward and
 *     backward to 1e-5, also on shapes large enough to be cut into chunks of images and bands of
 *     rows; accum = 1 adds what accum = 0 writes (to rounding: col2im adds term by term) and
 *     still overwrites dweight/dbias; dbias/dinp NULL; the workspace size is enough (guard floats
 *     after it stay untouched) and its contents on entry do not matter (it is filled with NaN);
 *     all of it twice: through im2col + sgemm (DT_CONV_GEMM) and through the batch-lane kernels
 *     of the kernel table in use (DT_CONV_LANES; partial blocks of images, channel and pixel
 *     tails, strides and padding; every ISA's: tests/test_lanes.c);
 *   - max/avg/global-average pooling: fd checks, fast vs _ref, argmax ties and NaN like torch;
 *   - batch norm: forward train/eval and running statistics against a double-precision formula,
 *     gradients against central differences in double of that formula, BatchNorm1d (HW = 1),
 *     affine=False, and the synchronized-BN identity: statistics of two uneven parts of a batch,
 *     summed, give the full-batch forward and backward;
 *   - dropout: keep rate, determinism, p = 0 and p = 1, backward, prefix stability;
 *   - the residual add.
 * Every analytic gradient is also checked to be non-trivial (max |g| > 1e-4).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"
#include "fdcheck.h"
#include "kernels/kernels.h"
#include "kernels/layer_kernels.h"
#include "layers/registry.h"
#include "lowp.h"
#include "net.h"
#include "rng.h"

static void fill_nan(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = NAN;
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* a + b elementwise into a new buffer */
static float *sum_of(const float *a, const float *b, size_t n)
{
    float *s = falloc(n);
    for (size_t i = 0; i < n; i++)
        s[i] = a[i] + b[i];
    return s;
}

/* ---- conv2d ---- */

/* the kernels under test: a path (DT_CONV_GEMM, DT_CONV_LANES) of the kernel table in use */
static dt_conv_opts copt;

typedef struct {
    int N, C, H, W, OC, KH, KW, stride, pad, OH, OW;
    float *inp, *w, *b, *R, *out;
} conv_ctx;

static double conv_loss(void *p)
{
    conv_ctx *c = p;
    dt_conv2d_forward_ref(c->out, c->inp, c->w, c->b, c->N, c->C, c->H, c->W, c->OC, c->KH, c->KW,
                          c->stride, c->pad);
    return dot(c->out, c->R, (size_t)c->N * c->OC * c->OH * c->OW);
}

enum { GUARD = 16 };

/* workspace of the exact size plus GUARD sentinel floats after it */
static float *ws_alloc(size_t n)
{
    float *ws = falloc(n + GUARD);
    fill_nan(ws, n); /* the kernels must not read what they did not write */
    for (int i = 0; i < GUARD; i++)
        ws[n + i] = 12345.0f + i;
    return ws;
}

static int ws_guard_ok(const float *ws, size_t n)
{
    for (int i = 0; i < GUARD; i++)
        if (ws[n + i] != 12345.0f + i)
            return 0;
    return 1;
}

/* fast vs _ref, accum, NULL outputs; with fd = 1 also every gradient against central differences */
static void test_conv(int N, int C, int H, int W, int OC, int KH, int KW, int stride, int pad,
                      int fd_checks)
{
    char what[160];
    conv_ctx c = {N, C, H, W, OC, KH, KW, stride, pad, 0, 0, NULL, NULL, NULL, NULL, NULL};
    c.OH = dt_conv_out_size(H, KH, stride, pad);
    c.OW = dt_conv_out_size(W, KW, stride, pad);
    const size_t ni = (size_t)N * C * H * W, nw = (size_t)OC * C * KH * KW;
    const size_t no = (size_t)N * OC * c.OH * c.OW;
    c.inp = falloc(ni), c.w = falloc(nw), c.b = falloc(OC), c.R = falloc(no), c.out = falloc(no);
    fill(c.inp, ni, -1, 1);
    fill(c.w, nw, -1, 1);
    fill(c.b, OC, -1, 1);
    fill(c.R, no, -1, 1);
    const size_t wsn = dt_conv2d_ws_floats_with(&copt, N, C, H, W, OC, KH, KW, stride, pad);
    float *ws = ws_alloc(wsn);
    float *out = falloc(no), *out_ref = falloc(no);
    float *dx = falloc(ni), *dw = falloc(nw), *db = falloc(OC);
    float *dx_ref = falloc(ni), *dw_ref = falloc(nw), *db_ref = falloc(OC);
    snprintf(what, sizeof what, "conv N%d C%d %dx%d OC%d K%dx%d s%d p%d", N, C, H, W, OC, KH, KW,
             stride, pad);
    /* float sums of thousands of O(1) terms that cancel to O(0.1): the absolute error of the
     * GEMM's float accumulation grows like sqrt(terms) */
    double terms = (double)N * c.OH * c.OW; /* dweight's reduction; out's and dinp's: */
    terms = terms > (double)C * KH * KW ? terms : (double)C * KH * KW;
    terms = terms > (double)OC * KH * KW ? terms : (double)OC * KH * KW;
    const double atol = 1e-5 > 1e-6 * sqrt(terms) ? 1e-5 : 1e-6 * sqrt(terms);

    /* forward: fast vs reference, with and without bias */
    fill_nan(out, no);
    dt_conv2d_forward_with(&copt, out, c.inp, c.w, c.b, N, C, H, W, OC, KH, KW, stride, pad, ws);
    dt_conv2d_forward_ref(out_ref, c.inp, c.w, c.b, N, C, H, W, OC, KH, KW, stride, pad);
    if (!CHECK_TENSOR_CLOSE(out, out_ref, no, 1e-5, atol))
        fprintf(stderr, "  %s: forward\n", what);
    fill_nan(ws, wsn);
    dt_conv2d_forward_with(&copt, out, c.inp, c.w, NULL, N, C, H, W, OC, KH, KW, stride, pad, ws);
    dt_conv2d_forward_ref(out_ref, c.inp, c.w, NULL, N, C, H, W, OC, KH, KW, stride, pad);
    if (!CHECK_TENSOR_CLOSE(out, out_ref, no, 1e-5, atol))
        fprintf(stderr, "  %s: forward without bias\n", what);

    /* backward: fast vs reference; garbage in the outputs must be overwritten */
    fill_nan(dx, ni), fill_nan(dw, nw), fill_nan(db, OC), fill_nan(ws, wsn);
    dt_conv2d_backward_with(&copt, dx, dw, db, c.R, c.inp, c.w, N, C, H, W, OC, KH, KW, stride, pad,
                            0, ws);
    dt_conv2d_backward_ref(dx_ref, dw_ref, db_ref, c.R, c.inp, c.w, N, C, H, W, OC, KH, KW, stride,
                           pad, 0);
    int ok = CHECK_TENSOR_CLOSE(dx, dx_ref, ni, 1e-5, atol);
    ok &= CHECK_TENSOR_CLOSE(dw, dw_ref, nw, 1e-5, atol);
    ok &= CHECK_TENSOR_CLOSE(db, db_ref, OC, 1e-5, atol);
    if (!ok)
        fprintf(stderr, "  %s: backward fast vs ref\n", what);
    CHECK(ws_guard_ok(ws, wsn));

    /* accum = 1 adds to dinp (both kernels); dweight and dbias are still overwritten */
    float *dx2 = falloc(ni), *dw2 = falloc(nw), *db2 = falloc(OC), *dx3 = falloc(ni);
    fill(dx2, ni, -1, 1);
    memcpy(dx3, dx2, ni * sizeof *dx3);
    float *want = sum_of(dx2, dx_ref, ni);
    fill(dw2, nw, 5, 6), fill(db2, OC, 5, 6), fill_nan(ws, wsn);
    dt_conv2d_backward_with(&copt, dx2, dw2, db2, c.R, c.inp, c.w, N, C, H, W, OC, KH, KW, stride,
                            pad, 1, ws);
    ok = CHECK_TENSOR_CLOSE(dx2, want, ni, 1e-5, atol);
    ok &= CHECK_TENSOR_CLOSE(dw2, dw, nw, 0.0, 0.0);
    ok &= CHECK_TENSOR_CLOSE(db2, db, OC, 0.0, 0.0);
    dt_conv2d_backward_ref(dx3, dw2, db2, c.R, c.inp, c.w, N, C, H, W, OC, KH, KW, stride, pad, 1);
    ok &= CHECK_TENSOR_CLOSE(dx3, want, ni, 1e-5, atol);
    if (!ok)
        fprintf(stderr, "  %s: accum = 1\n", what);

    /* no input gradient, no bias: dweight unchanged */
    fill(dw2, nw, 5, 6), fill_nan(ws, wsn);
    dt_conv2d_backward_with(&copt, NULL, dw2, NULL, c.R, c.inp, c.w, N, C, H, W, OC, KH, KW, stride,
                            pad, 0, ws);
    if (!CHECK_TENSOR_CLOSE(dw2, dw, nw, 0.0, 0.0))
        fprintf(stderr, "  %s: dinp = dbias = NULL\n", what);
    CHECK(ws_guard_ok(ws, wsn));

    if (fd_checks) {
        /* the loss is linear in each value: h only trades rounding, no truncation error */
        const float h = 1.0f / 64;
        const double fd_rtol = 1e-3, fd_atol = 2e-4;
        float *fd = falloc(ni > nw ? ni : nw);
        char name[200];
        central_diff_all(fd, conv_loss, &c, c.inp, ni, h);
        snprintf(name, sizeof name, "%s dinp", what);
        check_grad(dx, fd, ni, fd_rtol, fd_atol, name);
        central_diff_all(fd, conv_loss, &c, c.w, nw, h);
        snprintf(name, sizeof name, "%s dweight", what);
        check_grad(dw, fd, nw, fd_rtol, fd_atol, name);
        central_diff_all(fd, conv_loss, &c, c.b, (size_t)OC, h);
        snprintf(name, sizeof name, "%s dbias", what);
        check_grad(db, fd, (size_t)OC, fd_rtol, fd_atol, name);
        free(fd);
    }

    free(c.inp), free(c.w), free(c.b), free(c.R), free(c.out), free(ws), free(out), free(out_ref);
    free(dx), free(dw), free(db), free(dx_ref), free(dw_ref), free(db_ref);
    free(dx2), free(dw2), free(db2), free(dx3), free(want);
}

static void test_conv_all(void)
{
    /* N C H W OC KH KW stride pad, fd */
    test_conv(2, 3, 7, 5, 4, 3, 3, 2, 1, 1);  /* general path, stride 2 */
    test_conv(2, 3, 7, 5, 4, 1, 1, 1, 0, 1);  /* pointwise */
    test_conv(2, 3, 7, 5, 4, 5, 5, 1, 2, 1);  /* same padding, few channels: col2im */
    test_conv(2, 9, 6, 5, 4, 3, 3, 1, 1, 1);  /* same padding, C >= 8: transposed backward */
    test_conv(2, 8, 5, 7, 10, 5, 5, 1, 2, 1); /* transposed, OC > C */
    test_conv(2, 3, 7, 5, 4, 3, 3, 1, 0, 1);  /* valid conv */
    test_conv(1, 2, 5, 6, 3, 2, 3, 1, 0, 1);  /* non-square kernel */
    test_conv(2, 3, 6, 7, 2, 2, 3, 2, 1, 1);  /* non-square, strided, padded */
    test_conv(2, 4, 8, 7, 3, 1, 1, 2, 0, 1);  /* 1x1 stride 2 (resnet shortcut) */
    test_conv(2, 3, 7, 5, 4, 3, 3, 3, 2, 1);  /* stride 3, pad > K/2 */
    test_conv(3, 2, 4, 4, 2, 3, 3, 1, 1, 1);  /* 4x4 same */
    test_conv(1, 1, 1, 1, 1, 1, 1, 1, 0, 1);  /* scalar */
    test_conv(2, 2, 3, 3, 3, 5, 5, 1, 2, 1);  /* kernel larger than the image */
    /* chunked: several images per GEMM, one image per GEMM, bands of rows */
    test_conv(5, 32, 24, 24, 6, 3, 3, 1, 1, 0);  /* transposed, one image per chunk */
    test_conv(2, 64, 32, 32, 3, 3, 3, 1, 1, 0);  /* transposed, row bands */
    test_conv(2, 32, 64, 64, 3, 3, 3, 2, 1, 0);  /* general (col2im), row bands */
    test_conv(2, 300, 30, 31, 3, 1, 1, 1, 0, 0); /* pointwise, row bands */
    test_conv(37, 16, 12, 11, 5, 3, 3, 1, 1, 0); /* 13 images per chunk, transposed */
    test_conv(37, 16, 12, 11, 5, 3, 3, 1, 0, 0); /* 20 images per chunk, col2im */
    test_conv(37, 300, 6, 6, 3, 1, 1, 1, 0, 0);  /* 24 images per chunk, pointwise */
    test_conv(37, 3, 12, 11, 5, 3, 3, 1, 1, 0);  /* the whole batch in one GEMM */
    test_conv(3, 600, 5, 5, 7, 3, 3, 1, 1, 0);   /* K = 5400: at least DT_CONV_MIN_COLS columns */
    test_conv(9, 1, 28, 28, 6, 5, 5, 1, 2, 0);   /* lenet5 conv1 */
    test_conv(9, 6, 14, 14, 16, 5, 5, 1, 0, 0);  /* lenet5 conv2 */
    test_conv(16, 3, 11, 13, 8, 3, 3, 1, 1, 0);  /* two full blocks of 8 images */
    test_conv(17, 5, 9, 10, 7, 3, 4, 2, 1, 0);   /* odd channels, strided, partial block */
}

/* ---- conv -> ReLU -> MaxPool2d(2, 2) fused: bitwise the three separate kernels ---- */

static void test_conv_relu_pool(int N, int C, int H, int W, int OC, int K, int stride, int pad,
                                int bias, int zero_input)
{
    char what[160];
    snprintf(what, sizeof what, "conv+relu+pool N%d C%d %dx%d OC%d K%d s%d p%d%s%s", N, C, H, W, OC,
             K, stride, pad, bias ? "" : " no bias", zero_input ? " zero input (ties)" : "");
    const int fusable = dt_conv2d_relu_pool2_ok_with(&copt, N, C, H, W, OC, K, K, stride, pad);
    CHECK(fusable);
    if (!fusable) {
        fprintf(stderr, "  %s: not fusable\n", what);
        return;
    }
    const int OH = dt_conv_out_size(H, K, stride, pad), OW = dt_conv_out_size(W, K, stride, pad);
    const int PH = OH / 2, PW = OW / 2;
    const size_t ni = (size_t)N * C * H * W, nw = (size_t)OC * C * K * K;
    const size_t no = (size_t)N * OC * OH * OW, np = (size_t)N * OC * PH * PW;
    float *x = falloc(ni), *w = falloc(nw), *b = falloc(OC), *R = falloc(np);
    fill(x, ni, -1, 1), fill(w, nw, -1, 1), fill(b, OC, -0.5, 0.5), fill(R, np, -1, 1);
    if (zero_input)
        memset(x, 0, ni * sizeof *x); /* every output is its bias: 4-way ties, ReLU zeros */
    const float *bp = bias ? b : NULL;
    const size_t wsn = dt_conv2d_ws_floats_with(&copt, N, C, H, W, OC, K, K, stride, pad);
    float *ws = ws_alloc(wsn);
    /* separate */
    float *co = falloc(no), *ro = falloc(no), *po = falloc(np);
    int32_t *arg = dt_xmalloc(np, sizeof *arg);
    dt_conv2d_forward_with(&copt, co, x, w, bp, N, C, H, W, OC, K, K, stride, pad, ws);
    dt_relu_forward(ro, co, (long)no);
    dt_maxpool_forward(po, arg, ro, N, OC, OH, OW, 2, 2, 0);
    float *dro = falloc(no), *dco = falloc(no);
    float *dx = falloc(ni), *dw = falloc(nw), *db = falloc(OC);
    dt_maxpool_backward(dro, R, arg, N, OC, OH, OW, PH, PW, 0);
    dt_relu_backward(dco, dro, ro, (long)no, 0, 0);
    fill(dx, ni, -1, 1);
    float *dx0 = falloc(ni);
    memcpy(dx0, dx, ni * sizeof *dx);
    dt_conv2d_backward_with(&copt, dx, dw, bias ? db : NULL, dco, x, w, N, C, H, W, OC, K, K,
                            stride, pad, 1, ws);
    /* fused */
    float *pf = falloc(np), *dxf = falloc(ni), *dwf = falloc(nw), *dbf = falloc(OC);
    int32_t *code = dt_xmalloc(dt_conv2d_relu_pool2_code_size(N, OC, OH, OW), sizeof *code);
    fill_nan(pf, np), fill_nan(ws, wsn), fill_nan(dwf, nw), fill_nan(dbf, OC);
    memcpy(dxf, dx0, ni * sizeof *dx);
    dt_conv2d_relu_pool2_forward_with(&copt, pf, code, x, w, bp, N, C, H, W, OC, K, K, stride, pad,
                                      0, ws);
    int ok = CHECK_TENSOR_CLOSE(pf, po, np, 0.0, 0.0);
    fill_nan(ws, wsn);
    dt_conv2d_relu_pool2_backward_with(&copt, dxf, dwf, bias ? dbf : NULL, R, code, x, w, N, C, H,
                                       W, OC, K, K, stride, pad, 1, ws);
    ok &= CHECK_TENSOR_CLOSE(dxf, dx, ni, 0.0, 0.0);
    ok &= CHECK_TENSOR_CLOSE(dwf, dw, nw, 0.0, 0.0);
    if (bias)
        ok &= CHECK_TENSOR_CLOSE(dbf, db, OC, 0.0, 0.0);
    /* without an input gradient (a first layer), accum = 0 */
    fill_nan(dwf, nw), fill_nan(ws, wsn);
    dt_conv2d_relu_pool2_backward_with(&copt, NULL, dwf, NULL, R, code, x, w, N, C, H, W, OC, K, K,
                                       stride, pad, 0, ws);
    ok &= CHECK_TENSOR_CLOSE(dwf, dw, nw, 0.0, 0.0);
    CHECK(ws_guard_ok(ws, wsn));
    if (!ok)
        fprintf(stderr, "  %s\n", what);
    free(x), free(w), free(b), free(R), free(ws), free(co), free(ro), free(po), free(arg);
    free(dro), free(dco), free(dx), free(dw), free(db), free(dx0), free(pf), free(dxf), free(dwf);
    free(dbf), free(code);
}

static void test_conv_relu_pool_all(void)
{
    copt = (dt_conv_opts){DT_CONV_LANES, NULL};
    /* N C H W OC K stride pad bias zero_input */
    test_conv_relu_pool(9, 1, 28, 28, 6, 5, 1, 2, 1, 0);   /* lenet5 conv1, a partial block */
    test_conv_relu_pool(16, 6, 14, 14, 16, 5, 1, 0, 1, 0); /* lenet5 conv2 */
    test_conv_relu_pool(3, 2, 9, 8, 5, 3, 1, 0, 0, 0);     /* odd 7x6 output: a dropped row */
    test_conv_relu_pool(8, 3, 11, 9, 4, 3, 2, 1, 1, 0);    /* strided, odd output */
    test_conv_relu_pool(10, 2, 6, 6, 3, 3, 1, 1, 1, 1);    /* ties and ReLU zeros */
    copt = (dt_conv_opts){DT_CONV_GEMM, NULL};
    CHECK(!dt_conv2d_relu_pool2_ok_with(&copt, 8, 1, 28, 28, 6, 5, 5, 1, 2));
    copt = (dt_conv_opts){DT_CONV_AUTO, NULL};
}

/* Two builds of one net, the same init, input and loss gradient, `steps` forward + backward
 * passes each (two: what a step leaves behind must not leak into the next): logits and every
 * parameter gradient must be bitwise equal. */
static void check_same_training(dt_net *nets[2], int N, int steps, const char *what)
{
    const size_t nx = (size_t)N * nets[0]->in_c * nets[0]->in_h * nets[0]->in_w;
    const size_t nl = (size_t)N * nets[0]->classes;
    float *x = falloc(nx), *dl = falloc(nl), *logits[2];
    fill(x, nx, -1, 1), fill(dl, nl, -1, 1);
    for (int k = 0; k < 2; k++) {
        dt_net_init(nets[k], 5);
        for (int rep = 0; rep < steps; rep++) {
            logits[k] = dt_net_forward(nets[k], x, N, 1, NULL);
            memcpy(dt_net_dlogits(nets[k]), dl, nl * sizeof *dl);
            dt_net_backward(nets[k], N, NULL);
        }
    }
    int ok = CHECK_TENSOR_CLOSE(logits[1], logits[0], nl, 0.0, 0.0);
    ok &= CHECK_TENSOR_CLOSE(nets[1]->grad, nets[0]->grad, nets[0]->numel, 0.0, 0.0);
    if (!ok)
        fprintf(stderr, "  %s N%d: %s\n", nets[0]->model, N, what);
    free(x), free(dl);
    dt_net_free(nets[0]), dt_net_free(nets[1]);
}

/* a whole net with and without fusion, in fp32, bf16 and (fp16 1) fp16: the fused kernels round
 * where the separate layers' inputs would be rounded (the fused conv + ReLU + pool compares the
 * conv's outputs rounded to bf16 or fp16, as the separate pool does: a tie after rounding sends
 * the gradient to the same pixel; before the fp16 rounding was there, the cnn's fp16 gradients
 * differed here) */
static void test_fused_net(const char *spec, int N, int expect_fused, int fp16)
{
    static const int formats[] = {DT_FP32, DT_BF16, DT_FP16};
    static const char *const what[] = {"fused vs unfused (fp32)", "fused vs unfused (bf16)",
                                       "fused vs unfused (fp16)"};
    for (int f = 0; f < 2 + fp16; f++) {
        dt_net *nets[2];
        const dt_net_opts plain = {.no_fusion = 1};
        DT_ASSERT(dt_net_build_opts(&nets[0], spec, N, 0, 0, 0, &plain) == 0);
        DT_ASSERT(dt_net_build(&nets[1], spec, N) == 0);
        int fused = 0;
        for (int i = 0; i < nets[1]->nlayers; i++)
            fused += nets[1]->layers[i].fused;
        CHECK(fused == expect_fused);
        for (int i = 0; i < nets[0]->nlayers; i++)
            CHECK(!nets[0]->layers[i].fused);
        dt_net_set_precision(nets[0], formats[f]);
        dt_net_set_precision(nets[1], formats[f]);
        check_same_training(nets, N, 1, what[f]);
    }
}

/* a net with its activation gradients in shared slots vs one buffer each; fused or not (the
 * residual adds' in-place gradients exist where the adds are layers of their own) */
static void test_shared_grads(const char *spec, int N, int no_fusion)
{
    dt_net *nets[2];
    const dt_net_opts plain = {.no_grad_sharing = 1, .no_fusion = no_fusion};
    DT_ASSERT(dt_net_build_opts(&nets[0], spec, N, 0, 0, 0, &plain) == 0);
    DT_ASSERT(
        dt_net_build_opts(&nets[1], spec, N, 0, 0, 0, &(dt_net_opts){.no_fusion = no_fusion}) == 0);
    CHECK(nets[1]->arena_floats < nets[0]->arena_floats);
    /* a residual add writes its first input's gradient in place over its own (net.c): there
     * the two share memory, and only there; the plain net gives each its own */
    int in_place = 0;
    for (int j = 0; j < nets[1]->nlayers; j++) {
        const dt_layer *l = &nets[1]->layers[j], *p = &nets[0]->layers[j];
        if (l->ops->din_is_dout && l->input >= 0 && l->dout &&
            nets[1]->layers[l->input].dout == l->dout)
            in_place++;
        if (p->ops->din_is_dout && p->input >= 0)
            CHECK(nets[0]->layers[p->input].dout != p->dout);
    }
    if (strcmp(spec, "resnet20") == 0)
        CHECK(in_place == (no_fusion ? 9 : 0)); /* every basic block's add, unless fused */
    printf("  %s: activation arena %.1f -> %.1f MiB at batch %d\n", spec,
           4.0 * (double)nets[0]->arena_floats / 1048576.0,
           4.0 * (double)nets[1]->arena_floats / 1048576.0, N);
    check_same_training(nets, N, 2, "shared vs separate gradient buffers");
}

/* ---- max pooling ---- */

typedef struct {
    int N, C, H, W, K, stride, pad, OH, OW;
    float *inp, *R, *out;
    int32_t *arg;
} pool_ctx;

static double maxpool_loss(void *p)
{
    pool_ctx *c = p;
    dt_maxpool_forward_ref(c->out, c->arg, c->inp, c->N, c->C, c->H, c->W, c->K, c->stride, c->pad);
    return dot(c->out, c->R, (size_t)c->N * c->C * c->OH * c->OW);
}

static double avgpool_loss(void *p)
{
    pool_ctx *c = p;
    dt_avgpool_forward_ref(c->out, c->inp, c->N, c->C, c->H, c->W, c->K, c->stride, c->pad);
    return dot(c->out, c->R, (size_t)c->N * c->C * c->OH * c->OW);
}

/* distinct values 0.01 apart (a random permutation), so h = 1e-3 never changes an argmax */
static void fill_distinct(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = ((float)i - (float)n / 2) * 0.01f;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = dt_mt_next(&rng) % (i + 1);
        float t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
}

static void test_maxpool(int N, int C, int H, int W, int K, int stride, int pad)
{
    pool_ctx c = {N,
                  C,
                  H,
                  W,
                  K,
                  stride,
                  pad,
                  dt_conv_out_size(H, K, stride, pad),
                  dt_conv_out_size(W, K, stride, pad),
                  NULL,
                  NULL,
                  NULL,
                  NULL};
    const size_t ni = (size_t)N * C * H * W, no = (size_t)N * C * c.OH * c.OW;
    c.inp = falloc(ni), c.R = falloc(no), c.out = falloc(no);
    c.arg = dt_xmalloc(no, sizeof *c.arg);
    int32_t *arg = dt_xmalloc(no, sizeof *arg);
    float *out = falloc(no), *dx = falloc(ni), *fd = falloc(ni), *dx2 = falloc(ni);
    fill_distinct(c.inp, ni);
    fill(c.R, no, -1, 1);

    fill_nan(out, no);
    dt_maxpool_forward(out, arg, c.inp, N, C, H, W, K, stride, pad);
    dt_maxpool_forward_ref(c.out, c.arg, c.inp, N, C, H, W, K, stride, pad);
    CHECK_TENSOR_CLOSE(out, c.out, no, 0.0, 0.0);
    CHECK(memcmp(arg, c.arg, no * sizeof *arg) == 0);
    int arg_ok = 1; /* argmax points at the value */
    for (size_t p = 0; p < no; p++)
        arg_ok &= c.inp[(p / ((size_t)c.OH * c.OW)) * H * W + (size_t)arg[p]] == out[p];
    CHECK(arg_ok);

    fill_nan(dx, ni);
    dt_maxpool_backward(dx, c.R, arg, N, C, H, W, c.OH, c.OW, 0);
    central_diff_all(fd, maxpool_loss, &c, c.inp, ni, 1e-3f);
    check_grad(dx, fd, ni, 1e-3, 1e-4, "maxpool dinp");

    fill(dx2, ni, -1, 1);
    float *want = sum_of(dx2, dx, ni);
    dt_maxpool_backward(dx2, c.R, arg, N, C, H, W, c.OH, c.OW, 1);
    CHECK_TENSOR_CLOSE(dx2, want, ni, 1e-6, 1e-6); /* overlapping windows: another rounding */

    free(c.inp), free(c.R), free(c.out), free(c.arg), free(arg), free(out), free(dx), free(fd);
    free(dx2), free(want);
}

/* torch's rules: ties go to the first maximum in row-major window order, NaN wins, padding never */
static void test_maxpool_ties(void)
{
    enum { H = 4, W = 4 };
    float x[H * W], out[9], out_ref[9];
    int32_t arg[9], arg_ref[9];
    for (int i = 0; i < H * W; i++)
        x[i] = 1.0f;
    /* K 2 stride 2 pad 0 (special case) and K 2 stride 1 pad 1 (general) */
    dt_maxpool_forward(out, arg, x, 1, 1, H, W, 2, 2, 0);
    CHECK(arg[0] == 0 && arg[1] == 2 && arg[2] == 8 && arg[3] == 10);
    dt_maxpool_forward(out, arg, x, 1, 1, 2, 2, 2, 1, 1); /* 2x2 input, 3x3 output */
    dt_maxpool_forward_ref(out_ref, arg_ref, x, 1, 1, 2, 2, 2, 1, 1);
    CHECK(arg[0] == 0 && arg[1] == 0 && arg[2] == 1 && arg[4] == 0 && arg[8] == 3);
    CHECK(memcmp(arg, arg_ref, sizeof arg) == 0);
    /* all-negative input next to padding: the padding (-inf) never wins */
    for (int i = 0; i < H * W; i++)
        x[i] = -5.0f - (float)i;
    dt_maxpool_forward(out, arg, x, 1, 1, H, W, 3, 2, 1);
    CHECK(out[0] == -5.0f && arg[0] == 0);
    /* NaN propagates */
    for (int i = 0; i < H * W; i++)
        x[i] = (float)i;
    x[5] = NAN;
    dt_maxpool_forward(out, arg, x, 1, 1, H, W, 2, 2, 0);
    CHECK(isnan(out[0]) && arg[0] == 5 && out[3] == 15.0f);
    dt_maxpool_forward(out, arg, x, 1, 1, H, W, 3, 1, 0);
    dt_maxpool_forward_ref(out_ref, arg_ref, x, 1, 1, H, W, 3, 1, 0);
    CHECK(isnan(out[0]) && isnan(out[3]) && arg[0] == 5);
    CHECK(memcmp(arg, arg_ref, 4 * sizeof *arg) == 0);
}

/* ---- average pooling ---- */

static void test_avgpool(int N, int C, int H, int W, int K, int stride, int pad)
{
    pool_ctx c = {N,
                  C,
                  H,
                  W,
                  K,
                  stride,
                  pad,
                  dt_conv_out_size(H, K, stride, pad),
                  dt_conv_out_size(W, K, stride, pad),
                  NULL,
                  NULL,
                  NULL,
                  NULL};
    const size_t ni = (size_t)N * C * H * W, no = (size_t)N * C * c.OH * c.OW;
    c.inp = falloc(ni), c.R = falloc(no), c.out = falloc(no);
    float *out = falloc(no), *dx = falloc(ni), *dx_ref = falloc(ni), *fd = falloc(ni);
    float *dx2 = falloc(ni);
    fill(c.inp, ni, -1, 1);
    fill(c.R, no, -1, 1);

    fill_nan(out, no);
    dt_avgpool_forward(out, c.inp, N, C, H, W, K, stride, pad);
    dt_avgpool_forward_ref(c.out, c.inp, N, C, H, W, K, stride, pad);
    CHECK_TENSOR_CLOSE(out, c.out, no, 1e-6, 1e-6);

    fill_nan(dx, ni), fill_nan(dx_ref, ni);
    dt_avgpool_backward(dx, c.R, N, C, H, W, K, stride, pad, 0);
    dt_avgpool_backward_ref(dx_ref, c.R, N, C, H, W, K, stride, pad, 0);
    CHECK_TENSOR_CLOSE(dx, dx_ref, ni, 1e-6, 1e-6);
    central_diff_all(fd, avgpool_loss, &c, c.inp, ni, 1.0f / 64);
    check_grad(dx, fd, ni, 1e-3, 1e-4, "avgpool dinp");

    fill(dx2, ni, -1, 1);
    float *want = sum_of(dx2, dx, ni);
    float *dx3 = falloc(ni);
    memcpy(dx3, dx2, ni * sizeof *dx3);
    dt_avgpool_backward(dx2, c.R, N, C, H, W, K, stride, pad, 1);
    dt_avgpool_backward_ref(dx3, c.R, N, C, H, W, K, stride, pad, 1);
    CHECK_TENSOR_CLOSE(dx2, want, ni, 1e-6, 1e-6);
    CHECK_TENSOR_CLOSE(dx3, want, ni, 1e-6, 1e-6);

    free(c.inp), free(c.R), free(c.out), free(out), free(dx), free(dx_ref), free(fd), free(dx2);
    free(want), free(dx3);
}

/* ---- global average pooling ---- */

typedef struct {
    int N, C, HW;
    float *inp, *R, *out;
} gap_ctx;

static double gap_loss(void *p)
{
    gap_ctx *c = p;
    dt_gap_forward(c->out, c->inp, c->N, c->C, c->HW, 0);
    return dot(c->out, c->R, (size_t)c->N * c->C);
}

static void test_gap(int N, int C, int HW)
{
    gap_ctx c = {
        N, C, HW, falloc((size_t)N * C * HW), falloc((size_t)N * C), falloc((size_t)N * C)};
    const size_t ni = (size_t)N * C * HW, no = (size_t)N * C;
    float *dx = falloc(ni), *fd = falloc(ni), *dx2 = falloc(ni), *ref = falloc(no);
    fill(c.inp, ni, -1, 1);
    fill(c.R, no, -1, 1);
    dt_gap_forward(c.out, c.inp, N, C, HW, 0);
    for (size_t p = 0; p < no; p++) {
        double s = 0.0;
        for (int i = 0; i < HW; i++)
            s += c.inp[p * HW + i];
        ref[p] = (float)(s / HW);
    }
    CHECK_TENSOR_CLOSE(c.out, ref, no, 1e-6, 1e-7);
    fill_nan(dx, ni);
    dt_gap_backward(dx, c.R, N, C, HW, 0, 0);
    central_diff_all(fd, gap_loss, &c, c.inp, ni, 1.0f / 64);
    check_grad(dx, fd, ni, 1e-3, 1e-5, "gap dinp");
    fill(dx2, ni, -1, 1);
    float *want = sum_of(dx2, dx, ni);
    dt_gap_backward(dx2, c.R, N, C, HW, 1, 0);
    CHECK_TENSOR_CLOSE(dx2, want, ni, 0.0, 0.0);
    free(c.inp), free(c.R), free(c.out), free(dx), free(fd), free(dx2), free(ref), free(want);
}

/* ---- batch norm ---- */

/* The training forward in double, straight from the formula (torch.nn.BatchNorm2d docs):
 * y = (x - mean) / sqrt(var + eps) * w + b, mean and biased var over (N, HW) per channel.
 * w/b NULL: 1/0. Optionally returns mean and biased var (C). */
static void bn_train_double(double *y, const double *x, const double *w, const double *b, int N,
                            int C, int HW, double eps, double *mean_out, double *var_out)
{
    const double M = (double)N * HW;
    for (int c = 0; c < C; c++) {
        double mean = 0.0, var = 0.0;
        for (int n = 0; n < N; n++)
            for (int i = 0; i < HW; i++)
                mean += x[((size_t)n * C + c) * HW + i];
        mean /= M;
        for (int n = 0; n < N; n++)
            for (int i = 0; i < HW; i++) {
                double d = x[((size_t)n * C + c) * HW + i] - mean;
                var += d * d;
            }
        var /= M;
        for (int n = 0; n < N; n++)
            for (int i = 0; i < HW; i++) {
                size_t k = ((size_t)n * C + c) * HW + i;
                y[k] = (x[k] - mean) / sqrt(var + eps) * (w ? w[c] : 1.0) + (b ? b[c] : 0.0);
            }
        if (mean_out)
            mean_out[c] = mean;
        if (var_out)
            var_out[c] = var;
    }
}

typedef struct {
    int N, C, HW, affine;
    double *x, *w, *b, *y, *R;
} bn_ctx;

static double bn_loss(void *p)
{
    bn_ctx *c = p;
    const size_t n = (size_t)c->N * c->C * c->HW;
    bn_train_double(c->y, c->x, c->affine ? c->w : NULL, c->affine ? c->b : NULL, c->N, c->C, c->HW,
                    1e-5, NULL, NULL);
    double l = 0.0;
    for (size_t i = 0; i < n; i++)
        l += c->y[i] * c->R[i];
    return l;
}

/* d loss / d v[i] for all i, central differences in double (h = 1e-5: error ~1e-10) */
static void central_diff_double(float *fd, bn_ctx *c, double *v, size_t n)
{
    const double h = 1e-5;
    for (size_t i = 0; i < n; i++) {
        double v0 = v[i];
        v[i] = v0 + h;
        double lp = bn_loss(c);
        v[i] = v0 - h;
        double lm = bn_loss(c);
        v[i] = v0;
        fd[i] = (float)((lp - lm) / (2 * h));
    }
}

static double *to_double(const float *x, size_t n)
{
    double *d = dt_xmalloc(n, sizeof *d);
    for (size_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

/* Plain (one-rank) BatchNorm training forward + backward through the split kernels. */
static void bn_train_step(float *out, float *dx, float *dw, float *db, float *mean, float *invstd,
                          float *rm, float *rv, const float *x, const float *w, const float *b,
                          const float *dy, int N, int C, int HW, float eps, float momentum,
                          int accum)
{
    double *s = dt_xmalloc((size_t)C * 4, sizeof *s);
    dt_bn_stats(s, s + C, x, N, C, HW, 0);
    dt_bn_forward_train(out, mean, invstd, rm, rv, x, w, b, s, s + C, (double)N * HW, N, C, HW, eps,
                        momentum, 0, 0, 0);
    if (dy) {
        dt_bn_backward_reduce(s + 2 * C, s + 3 * C, dy, x, mean, invstd, N, C, HW, NULL, 0, 0);
        dt_bn_backward(dx, dw, db, dy, x, mean, invstd, w, s + 2 * C, s + 3 * C, s + 2 * C,
                       s + 3 * C, (double)N * HW, N, C, HW, accum, NULL, 0, 0, 0, 0);
    }
    free(s);
}

/* test_bn's eval mode: the forward with running statistics rm0, rv0, and the backward through
 * it (frozen statistics: dx = dy * invstd * w) */
static void test_bn_eval(const char *what, const float *x, const float *w, const float *b,
                         const float *dy, const float *rm0, const float *rv0, int N, int C, int HW,
                         int affine, float eps)
{
    const size_t n = (size_t)N * C * HW;
    const float *wa = affine ? w : NULL, *ba = affine ? b : NULL;
    float *junk = falloc(n), *want = falloc(n), *dx2 = falloc(n), *dw2 = falloc(C),
          *db2 = falloc(C);
    const double M = (double)N * HW;
    dt_bn_forward_eval(junk, x, rm0, rv0, wa, ba, N, C, HW, eps, 0, 0, 0);
    for (size_t i = 0; i < n; i++) {
        int k = (int)((i / HW) % C);
        want[i] =
            (float)(((double)x[i] - rm0[k]) / sqrt((double)rv0[k] + eps) * (affine ? w[k] : 1.0) +
                    (affine ? b[k] : 0.0));
    }
    int ok = CHECK_TENSOR_CLOSE(junk, want, n, 1e-5, 1e-5);
    double *zeros = dt_xcalloc(2 * (size_t)C, sizeof *zeros), *ls = dt_xmalloc(2 * C, sizeof *ls);
    float *eval_invstd = falloc(C);
    for (int k = 0; k < C; k++)
        eval_invstd[k] = (float)(1.0 / sqrt((double)rv0[k] + eps));
    dt_bn_backward_reduce(ls, ls + C, dy, x, rm0, eval_invstd, N, C, HW, NULL, 0, 0);
    dt_bn_backward(dx2, dw2, db2, dy, x, rm0, eval_invstd, wa, ls, ls + C, zeros, zeros + C, M, N,
                   C, HW, 0, NULL, 0, 0, 0, 0);
    for (size_t i = 0; i < n; i++) {
        int k = (int)((i / HW) % C);
        want[i] = dy[i] * eval_invstd[k] * (affine ? w[k] : 1.0f);
    }
    ok &= CHECK_TENSOR_CLOSE(dx2, want, n, 1e-5, 1e-6);
    if (!ok)
        fprintf(stderr, "  %s: eval\n", what);

    free(junk), free(want), free(dx2), free(dw2), free(db2), free(zeros), free(ls);
    free(eval_invstd);
}

static void test_bn(int N, int C, int HW, int affine, float offset)
{
    char what[96];
    snprintf(what, sizeof what, "bn N%d C%d HW%d affine %d", N, C, HW, affine);
    const size_t n = (size_t)N * C * HW;
    const float eps = 1e-5f, momentum = 0.1f;
    float *x = falloc(n), *w = falloc(C), *b = falloc(C), *dy = falloc(n), *out = falloc(n);
    float *dx = falloc(n), *dw = falloc(C), *db = falloc(C), *mean = falloc(C), *invstd = falloc(C);
    float *rm = falloc(C), *rv = falloc(C), *rm0 = falloc(C), *rv0 = falloc(C), *fd = falloc(n);
    fill(x, n, -1, 1);
    for (size_t i = 0; i < n; i++) /* per-channel offsets and scales, some large means */
        x[i] = x[i] * (1.0f + (float)((i / HW) % C)) + offset * (float)((i / HW) % C);
    fill(w, C, 0.5f, 1.5f), fill(b, C, -1, 1), fill(dy, n, -1, 1);
    fill(rm0, C, -1, 1), fill(rv0, C, 0.5f, 2);
    memcpy(rm, rm0, C * sizeof *rm), memcpy(rv, rv0, C * sizeof *rv);
    const float *wa = affine ? w : NULL, *ba = affine ? b : NULL;

    fill_nan(dx, n), fill_nan(dw, C), fill_nan(db, C);
    bn_train_step(out, dx, affine ? dw : NULL, affine ? db : NULL, mean, invstd, rm, rv, x, wa, ba,
                  dy, N, C, HW, eps, momentum, 0);

    /* forward, saved statistics and running statistics against the double formula */
    bn_ctx c = {N,
                C,
                HW,
                affine,
                to_double(x, n),
                to_double(w, C),
                to_double(b, C),
                dt_xmalloc(n, sizeof(double)),
                to_double(dy, n)};
    double *dmean = dt_xmalloc(C, sizeof *dmean), *dvar = dt_xmalloc(C, sizeof *dvar);
    bn_train_double(c.y, c.x, affine ? c.w : NULL, affine ? c.b : NULL, N, C, HW, eps, dmean, dvar);
    float *want = falloc(n), *want_c = falloc(C * 4);
    for (size_t i = 0; i < n; i++)
        want[i] = (float)c.y[i];
    const double M = (double)N * HW;
    for (int k = 0; k < C; k++) {
        want_c[k] = (float)dmean[k];
        want_c[C + k] = (float)(1.0 / sqrt(dvar[k] + eps));
        want_c[2 * C + k] = (float)((1 - momentum) * rm0[k] + momentum * dmean[k]);
        want_c[3 * C + k] = (float)((1 - momentum) * rv0[k] + momentum * dvar[k] * M / (M - 1));
    }
    int ok = CHECK_TENSOR_CLOSE(out, want, n, 1e-5, 1e-5);
    ok &= CHECK_TENSOR_CLOSE(mean, want_c, C, 1e-6, 1e-6);
    ok &= CHECK_TENSOR_CLOSE(invstd, want_c + C, C, 1e-5, 0);
    ok &= CHECK_TENSOR_CLOSE(rm, want_c + 2 * C, C, 1e-6, 1e-6);
    ok &= CHECK_TENSOR_CLOSE(rv, want_c + 3 * C, C, 1e-5, 1e-6);
    if (!ok)
        fprintf(stderr, "  %s: training forward\n", what);

    /* gradients against central differences of the double formula */
    char name[160];
    central_diff_double(fd, &c, c.x, n);
    snprintf(name, sizeof name, "%s dinp", what);
    check_grad(dx, fd, n, 1e-3, 1e-4, name);
    if (affine) {
        central_diff_double(fd, &c, c.w, C);
        snprintf(name, sizeof name, "%s dweight", what);
        check_grad(dw, fd, C, 1e-4, 1e-5, name);
        central_diff_double(fd, &c, c.b, C);
        snprintf(name, sizeof name, "%s dbias", what);
        check_grad(db, fd, C, 1e-4, 1e-5, name);
    }

    /* accum = 1 adds; dinp NULL leaves dweight/dbias as before */
    float *dx2 = falloc(n), *dw2 = falloc(C), *db2 = falloc(C), *junk = falloc(n);
    fill(dx2, n, -1, 1);
    float *sum = sum_of(dx2, dx, n);
    bn_train_step(junk, dx2, affine ? dw2 : NULL, affine ? db2 : NULL, mean, invstd, rm, rv, x, wa,
                  ba, dy, N, C, HW, eps, momentum, 1);
    CHECK_TENSOR_CLOSE(dx2, sum, n, 0.0, 0.0);
    if (affine) {
        fill_nan(dw2, C), fill_nan(db2, C);
        bn_train_step(junk, NULL, dw2, db2, mean, invstd, rm, rv, x, wa, ba, dy, N, C, HW, eps,
                      momentum, 0);
        CHECK_TENSOR_CLOSE(dw2, dw, C, 0.0, 0.0);
        CHECK_TENSOR_CLOSE(db2, db, C, 0.0, 0.0);
    }
    /* running statistics may be NULL (track_running_stats=False) */
    bn_train_step(junk, NULL, NULL, NULL, mean, invstd, NULL, NULL, x, wa, ba, NULL, N, C, HW, eps,
                  momentum, 0);
    CHECK_TENSOR_CLOSE(junk, out, n, 0.0, 0.0);

    test_bn_eval(what, x, w, b, dy, rm0, rv0, N, C, HW, affine, eps);

    free(x), free(w), free(b), free(dy), free(out), free(dx), free(dw), free(db), free(mean);
    free(invstd), free(rm), free(rv), free(rm0), free(rv0), free(fd), free(c.x), free(c.w);
    free(c.b), free(c.y), free(c.R), free(dmean), free(dvar), free(want), free(want_c);
    free(dx2), free(dw2), free(db2), free(junk), free(sum);
}

/* SyncBatchNorm without MPI: the batch cut into two uneven "ranks" whose statistics are summed
 * (what MPI_Allreduce does) gives the full-batch forward, running stats and backward; the
 * "ranks'" dweight/dbias add up to the full batch's. */
static void test_bn_sync(int N, int N1, int C, int HW)
{
    const int N2 = N - N1;
    const size_t n = (size_t)N * C * HW, n1 = (size_t)N1 * C * HW;
    const float eps = 1e-5f, momentum = 0.1f;
    float *x = falloc(n), *w = falloc(C), *b = falloc(C), *dy = falloc(n);
    fill(x, n, -2, 3), fill(w, C, 0.5f, 1.5f), fill(b, C, -1, 1), fill(dy, n, -1, 1);
    float *out = falloc(n), *dx = falloc(n), *dw = falloc(C), *db = falloc(C), *mean = falloc(C);
    float *invstd = falloc(C), *rm = falloc(C), *rv = falloc(C);
    fill(rm, C, -1, 1), fill(rv, C, 0.5f, 2);
    float *rm_p = falloc(2 * C), *rv_p = falloc(2 * C); /* each part's copy */
    for (int r = 0; r < 2; r++)
        memcpy(rm_p + r * C, rm, C * sizeof *rm), memcpy(rv_p + r * C, rv, C * sizeof *rv);

    /* the full batch on one rank */
    bn_train_step(out, dx, dw, db, mean, invstd, rm, rv, x, w, b, dy, N, C, HW, eps, momentum, 0);

    /* two parts: local sums, "allreduce", forward with the global statistics */
    const int cnt[2] = {N1, N2};
    const size_t off[2] = {0, n1};
    double *loc = dt_xmalloc(4 * (size_t)C * 2, sizeof *loc);
    double *glob = dt_xcalloc(4 * (size_t)C, sizeof *glob);
    float *out_p = falloc(n), *dx_p = falloc(n), *dw_p = falloc(2 * C), *db_p = falloc(2 * C);
    float *mean_p = falloc(2 * C), *invstd_p = falloc(2 * C);
    for (int r = 0; r < 2; r++) {
        dt_bn_stats(loc + r * 4 * C, loc + r * 4 * C + C, x + off[r], cnt[r], C, HW, 0);
        for (int k = 0; k < 2 * C; k++)
            glob[k] += loc[r * 4 * C + k];
    }
    const double M = (double)N * HW;
    for (int r = 0; r < 2; r++)
        dt_bn_forward_train(out_p + off[r], mean_p + r * C, invstd_p + r * C, rm_p + r * C,
                            rv_p + r * C, x + off[r], w, b, glob, glob + C, M, cnt[r], C, HW, eps,
                            momentum, 0, 0, 0);
    for (int r = 0; r < 2; r++) {
        dt_bn_backward_reduce(loc + r * 4 * C + 2 * C, loc + r * 4 * C + 3 * C, dy + off[r],
                              x + off[r], mean_p + r * C, invstd_p + r * C, cnt[r], C, HW, NULL, 0,
                              0);
        for (int k = 2 * C; k < 4 * C; k++)
            glob[k] += loc[r * 4 * C + k];
    }
    for (int r = 0; r < 2; r++)
        dt_bn_backward(dx_p + off[r], dw_p + r * C, db_p + r * C, dy + off[r], x + off[r],
                       mean_p + r * C, invstd_p + r * C, w, loc + r * 4 * C + 2 * C,
                       loc + r * 4 * C + 3 * C, glob + 2 * C, glob + 3 * C, M, cnt[r], C, HW, 0,
                       NULL, 0, 0, 0, 0);

    int ok = CHECK_TENSOR_CLOSE(out_p, out, n, 1e-6, 1e-6);
    ok &= CHECK_TENSOR_CLOSE(dx_p, dx, n, 1e-5, 1e-6);
    for (int r = 0; r < 2; r++) {
        ok &= CHECK_TENSOR_CLOSE(mean_p + r * C, mean, C, 1e-6, 1e-7);
        ok &= CHECK_TENSOR_CLOSE(invstd_p + r * C, invstd, C, 1e-6, 0);
        ok &= CHECK_TENSOR_CLOSE(rm_p + r * C, rm, C, 1e-6, 1e-7);
        ok &= CHECK_TENSOR_CLOSE(rv_p + r * C, rv, C, 1e-6, 1e-7);
    }
    float *dw_sum = sum_of(dw_p, dw_p + C, C), *db_sum = sum_of(db_p, db_p + C, C);
    ok &= CHECK_TENSOR_CLOSE(dw_sum, dw, C, 1e-5, 1e-6);
    ok &= CHECK_TENSOR_CLOSE(db_sum, db, C, 1e-5, 1e-6);
    if (!ok)
        fprintf(stderr, "  bn sync: N %d = %d + %d, C %d, HW %d\n", N, N1, N2, C, HW);
    /* a part with no samples contributes zero sums */
    double z[2] = {1, 1};
    dt_bn_stats(z, z + 1, x, 0, 1, HW, 0);
    CHECK(z[0] == 0.0 && z[1] == 0.0);

    free(x), free(w), free(b), free(dy), free(out), free(dx), free(dw), free(db), free(mean);
    free(invstd), free(rm), free(rv), free(rm_p), free(rv_p), free(loc), free(glob), free(out_p);
    free(dx_p), free(dw_p), free(db_p), free(mean_p), free(invstd_p), free(dw_sum), free(db_sum);
}

/* ---- dropout and add ---- */

typedef struct {
    long n;
    float p;
    uint64_t seed;
    float *inp, *out, *R;
    uint8_t *mask;
} drop_ctx;

static double drop_loss(void *p)
{
    drop_ctx *c = p;
    dt_dropout_forward(c->out, c->mask, c->inp, c->n, c->p, c->seed);
    return dot(c->out, c->R, (size_t)c->n);
}

static void test_dropout(void)
{
    enum { n = 100001 };
    const float p = 0.3f;
    float *x = falloc(n), *out = falloc(n), *out2 = falloc(n), *dx = falloc(n), *dy = falloc(n);
    uint8_t *mask = dt_xmalloc(n, 1), *mask2 = dt_xmalloc(n, 1);
    fill(x, n, -1, 1), fill(dy, n, -1, 1);

    dt_dropout_forward(out, mask, x, n, p, 42);
    long kept = 0;
    int mask_ok = 1, out_ok = 1;
    const float scale = 1.0f / (1.0f - p);
    for (long i = 0; i < n; i++) {
        kept += mask[i];
        mask_ok &= mask[i] <= 1;
        out_ok &= out[i] == (mask[i] ? x[i] * scale : 0.0f);
    }
    /* keep rate 1 - p within 5 sigma (sigma = sqrt(p (1 - p) / n) = 0.0014) */
    CHECK_CLOSE((double)kept / n, 1.0 - p, 0.0, 0.0075);
    CHECK(mask_ok);
    CHECK(out_ok);
    /* no correlation between the two halves of a word: P(both kept) = (1 - p)^2 */
    long both = 0;
    for (long i = 0; i + 1 < n; i += 2)
        both += mask[i] && mask[i + 1];
    CHECK_CLOSE((double)both / (n / 2), (1.0 - p) * (1.0 - p), 0.0, 0.01);

    /* same seed, same mask; another seed, another; a prefix is the same mask */
    dt_dropout_forward(out2, mask2, x, n, p, 42);
    CHECK(memcmp(mask, mask2, n) == 0);
    CHECK_TENSOR_CLOSE(out2, out, n, 0.0, 0.0);
    dt_dropout_forward(out2, mask2, x, n, p, 43);
    long differ = 0;
    for (long i = 0; i < n; i++)
        differ += mask[i] != mask2[i];
    CHECK_CLOSE((double)differ / n, 2.0 * p * (1.0 - p), 0.0, 0.01);
    dt_dropout_forward(out2, mask2, x, 1001, p, 42);
    CHECK(memcmp(mask, mask2, 1001) == 0);

    /* backward = dout * mask * scale; accum adds; fd */
    fill_nan(dx, n);
    dt_dropout_backward(dx, dy, mask, n, p, 0);
    int bwd_ok = 1;
    for (long i = 0; i < n; i++)
        bwd_ok &= dx[i] == (mask[i] ? dy[i] * scale : 0.0f);
    CHECK(bwd_ok);
    float *acc = falloc(n);
    fill(acc, n, -1, 1);
    float *want = sum_of(acc, dx, n);
    dt_dropout_backward(acc, dy, mask, n, p, 1);
    CHECK_TENSOR_CLOSE(acc, want, n, 0.0, 0.0);
    {
        enum { m = 301 };
        drop_ctx c = {m, 0.5f, 7, x, out2, dy, mask2};
        float *fd = falloc(m), *g = falloc(m);
        dt_dropout_forward(out2, mask2, x, m, 0.5f, 7);
        dt_dropout_backward(g, dy, mask2, m, 0.5f, 0);
        central_diff_all(fd, drop_loss, &c, x, m, 1.0f / 64);
        check_grad(g, fd, m, 1e-3, 1e-4, "dropout dinp");
        free(fd), free(g);
    }

    /* p = 0: identity, in place too; p = 1: zeros */
    dt_dropout_forward(out2, mask2, x, n, 0.0f, 5);
    long all = 0;
    for (long i = 0; i < n; i++)
        all += mask2[i];
    CHECK(all == n);
    CHECK(memcmp(out2, x, n * sizeof *x) == 0);
    memcpy(out2, x, n * sizeof *x);
    dt_dropout_forward(out2, mask2, out2, n, 0.0f, 5);
    CHECK(memcmp(out2, x, n * sizeof *x) == 0);
    dt_dropout_forward(out2, mask2, x, n, 1.0f, 5);
    CHECK(max_abs(out2, n) == 0.0);
    dt_dropout_backward(dx, dy, mask2, n, 1.0f, 0);
    CHECK(max_abs(dx, n) == 0.0);

    free(x), free(out), free(out2), free(dx), free(dy), free(mask), free(mask2), free(acc);
    free(want);
}

static void test_add(void)
{
    enum { n = 1003 };
    float *a = falloc(n), *b = falloc(n), *out = falloc(n), *d = falloc(n), *g = falloc(n);
    fill(a, n, -1, 1), fill(b, n, -1, 1), fill(g, n, -1, 1);
    dt_add_forward(out, a, b, n, 0);
    float *want = sum_of(a, b, n);
    CHECK_TENSOR_CLOSE(out, want, n, 0.0, 0.0);
    dt_add_forward(a, a, b, n, 0); /* in place */
    CHECK_TENSOR_CLOSE(a, want, n, 0.0, 0.0);
    dt_add_backward(d, g, n, 0, 0);
    CHECK_TENSOR_CLOSE(d, g, n, 0.0, 0.0);
    float *twice = sum_of(g, g, n);
    dt_add_backward(d, g, n, 1, 0);
    CHECK_TENSOR_CLOSE(d, twice, n, 0.0, 0.0);
    free(a), free(b), free(out), free(d), free(g), free(want), free(twice);
}

int main(void)
{
    dt_mt_seed(&rng, 20240611);

    CHECK(dt_conv_out_size(7, 3, 2, 1) == 4 && dt_conv_out_size(28, 5, 1, 2) == 28);
    CHECK(dt_conv_out_size(7, 2, 2, 0) == 3 && dt_conv_out_size(2, 5, 1, 1) == 0);
    /* every shape through each kernel family of the kernel table in use: im2col + sgemm (with
     * the direct few-tap path), and the batch-lane kernels (every ISA's: tests/test_lanes.c) */
    copt = (dt_conv_opts){DT_CONV_GEMM, NULL};
    test_conv_all();
    copt = (dt_conv_opts){DT_CONV_LANES, NULL};
    test_conv_all();
    test_conv_relu_pool_all();
    /* lenet5, cnn: each conv + relu + pool group fuses (2 layers skipped) where the kernel table
     * in use takes the batch-lane kernels for its conv (avx2, avx512: both; generic: the first);
     * resnet20 has none to fuse */
    const int l1 = dt_conv2d_relu_pool2_ok(13, 1, 28, 28, 6, 5, 5, 1, 2);
    const int l2 = dt_conv2d_relu_pool2_ok(13, 6, 14, 14, 16, 5, 5, 1, 0);
    const int c1 = dt_conv2d_relu_pool2_ok(8, 1, 28, 28, 32, 3, 3, 1, 1);
    const int c2 = dt_conv2d_relu_pool2_ok(8, 32, 14, 14, 64, 3, 3, 1, 1);
    CHECK(l1 && c1); /* every ISA */
    test_fused_net("lenet5", 13, 2 * (l1 + l2), 1);
    test_fused_net("cnn", 8, 2 * (c1 + c2), 1);
    /* [batchnorm] -> [relu]: the stem and each block's first (10); [batchnorm] -> [add] -> [relu]:
     * each block's end (9 x 2; in the two downsampling blocks the BatchNorm is the shortcut's, the
     * add's second input) */
    test_fused_net("resnet20", 3, 28, 1);
    /* residual adds (two writers per gradient), projections, BatchNorm, fused groups */
    test_shared_grads("resnet20", 4, 0);
    test_shared_grads("resnet20", 4, 1);
    test_shared_grads("lenet5", 9, 0);
    test_shared_grads("mlp", 5, 0);

    /* N C H W K stride pad */
    test_maxpool(2, 3, 7, 6, 3, 2, 1);
    test_maxpool(2, 3, 7, 5, 2, 2, 0); /* the 2x2 fast path, odd sizes (floor drops a row) */
    test_maxpool(1, 2, 6, 6, 3, 1, 1); /* overlapping windows */
    test_maxpool(2, 2, 5, 5, 2, 1, 1);
    test_maxpool(1, 3, 9, 8, 3, 3, 0);
    test_maxpool_ties();
    test_avgpool(2, 3, 7, 6, 3, 2, 1);
    test_avgpool(2, 3, 7, 5, 2, 2, 0);
    test_avgpool(1, 2, 6, 6, 3, 1, 1);
    test_avgpool(2, 2, 8, 8, 4, 4, 2);
    test_gap(2, 3, 35);
    test_gap(3, 5, 1);

    /* N C HW affine offset */
    test_bn(3, 4, 15, 1, 0.0f);  /* BatchNorm2d */
    test_bn(6, 5, 1, 1, 0.0f);   /* BatchNorm1d */
    test_bn(4, 3, 10, 0, 0.0f);  /* affine=False */
    test_bn(2, 3, 33, 1, 20.0f); /* means far from 0 */
    test_bn(3, 2, 1, 1, 0.0f);   /* three values per channel */
    test_bn_sync(5, 2, 4, 12);
    test_bn_sync(7, 3, 6, 1);
    test_bn_sync(4, 1, 3, 9);

    test_dropout();
    test_add();
    return check_finish("test_layers");
}
