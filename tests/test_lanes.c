/*
 * test_lanes.c - the batch-lane convolutions of every instruction set (runtime/kernels/isa/lanes.c,
 * issue 12): for each kernel table this CPU runs - generic (4 lanes), avx2 (8), avx2w16 (the
 * 16-lane kernels lowered to AVX2: avx512's blocking, tails and bits on any AVX2 machine), avx512
 * and avx512bf16 (16) -
 *   - forward (with and without bias), backward (dinp with accum 0 and 1, dweight, dbias; dinp
 *     and dbias NULL) against the naive reference kernels (dt_conv2d_*_ref), over the conv
 *     shapes of the five built-in models (models/NAME.cfg; mlp has none) and odd shapes (1x1,
 *     stride 2, padding, C = 1 and 3, OC not a multiple of the tile, N not a multiple of the lanes:
 *     1, 7, 9, 17, 33); the workspace is filled with NaN (never read before written) and
 *     guarded at its end;
 *   - the fused conv + ReLU + 2x2 max pool against the same ISA's separate kernels, bitwise;
 *   - bitwise equality across ISAs whose arithmetic order is the same (isa/lanes.c's header):
 *     avx2 == avx2w16 == avx512 == avx512bf16, every output of every shape. generic rounds
 *     a * b + c twice (no FMA): it is held to the reference's tolerance only.
 * ISAs this CPU lacks are skipped, and the test says so.
 */
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"
#include "fdcheck.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "kernels/lanes.h"
#include "kernels/layer_kernels.h"
#include "lowp.h"

typedef struct {
    int N, C, H, W, OC, K, stride, pad;
} shape;

/* every output of one ISA on one shape */
typedef struct {
    float *out, *dx, *dxa, *dw, *db; /* dxa: dinp with accum = 1 */
} result;

static const dt_kern *tables[DT_ISA_COUNT];

enum { GUARD = 16 };

static float *ws_alloc(size_t n)
{
    float *ws = falloc(n + GUARD);
    for (size_t i = 0; i < n; i++)
        ws[i] = NAN;
    for (int i = 0; i < GUARD; i++)
        ws[n + i] = 777.0f + i;
    return ws;
}

static int ws_guard_ok(const float *ws, size_t n)
{
    for (int i = 0; i < GUARD; i++)
        if (ws[n + i] != 777.0f + i)
            return 0;
    return 1;
}

static int same_bits(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof *a) == 0;
}

/* the tolerance of a float sum of `terms` O(1) terms against the double reference */
static double atol_for(const shape *s, int OH, int OW)
{
    double terms = (double)s->N * OH * OW;
    terms = terms > (double)s->C * s->K * s->K ? terms : (double)s->C * s->K * s->K;
    terms = terms > (double)s->OC * s->K * s->K ? terms : (double)s->OC * s->K * s->K;
    return 1e-5 > 1e-6 * sqrt(terms) ? 1e-5 : 1e-6 * sqrt(terms);
}

/* one ISA's batch-lane kernels on s: r = its outputs; checks what needs no other ISA */
static void run_isa(const dt_kern *k, const shape *s, const float *x, const float *w,
                    const float *b, const float *dy, const float *pre, result *r, const char *what)
{
    const dt_conv_opts o = {DT_CONV_LANES, k};
    const int OH = dt_conv_out_size(s->H, s->K, s->stride, s->pad);
    const int OW = dt_conv_out_size(s->W, s->K, s->stride, s->pad);
    const size_t ni = (size_t)s->N * s->C * s->H * s->W, nw = (size_t)s->OC * s->C * s->K * s->K;
    const size_t no = (size_t)s->N * s->OC * OH * OW;
    const size_t wsn =
        dt_conv2d_ws_floats_with(&o, s->N, s->C, s->H, s->W, s->OC, s->K, s->K, s->stride, s->pad);
    float *ws = ws_alloc(wsn);
    r->out = falloc(no), r->dx = falloc(ni), r->dxa = falloc(ni), r->dw = falloc(nw);
    r->db = falloc(s->OC);
#define ARGS s->N, s->C, s->H, s->W, s->OC, s->K, s->K, s->stride, s->pad
    dt_conv2d_forward_with(&o, r->out, x, w, b, ARGS, ws);
    dt_conv2d_backward_with(&o, r->dx, r->dw, r->db, dy, x, w, ARGS, 0, ws);
    /* accum = 1 adds to dinp and still overwrites dweight and dbias */
    float *dw2 = falloc(nw), *db2 = falloc(s->OC), *out2 = falloc(no);
    memcpy(r->dxa, pre, ni * sizeof *pre);
    fill(dw2, nw, 5, 6), fill(db2, s->OC, 5, 6);
    dt_conv2d_backward_with(&o, r->dxa, dw2, db2, dy, x, w, ARGS, 1, ws);
    int ok = same_bits(dw2, r->dw, nw) && same_bits(db2, r->db, s->OC);
    /* no input gradient, no bias gradient: the same dweight */
    fill(dw2, nw, 5, 6);
    dt_conv2d_backward_with(&o, NULL, dw2, NULL, dy, x, w, ARGS, 0, ws);
    ok &= same_bits(dw2, r->dw, nw);
    /* without bias: the forward with a zero bias */
    float *zb = falloc(s->OC);
    dt_conv2d_forward_with(&o, out2, x, w, zb, ARGS, ws);
    float *out3 = falloc(no);
    dt_conv2d_forward_with(&o, out3, x, w, NULL, ARGS, ws);
    ok &= same_bits(out2, out3, no);
#undef ARGS
    CHECK(ok);
    CHECK(ws_guard_ok(ws, wsn));
    if (!ok)
        fprintf(stderr, "  %s %s: accum, NULL outputs or bias\n", what, k->name);
    free(ws), free(dw2), free(db2), free(out2), free(out3), free(zb);
}

static void result_free(result *r)
{
    free(r->out), free(r->dx), free(r->dxa), free(r->dw), free(r->db);
}

static void test_shape(const shape *s)
{
    char what[160];
    snprintf(what, sizeof what, "conv N%d C%d %dx%d OC%d K%d s%d p%d", s->N, s->C, s->H, s->W,
             s->OC, s->K, s->stride, s->pad);
    const int OH = dt_conv_out_size(s->H, s->K, s->stride, s->pad);
    const int OW = dt_conv_out_size(s->W, s->K, s->stride, s->pad);
    const size_t ni = (size_t)s->N * s->C * s->H * s->W, nw = (size_t)s->OC * s->C * s->K * s->K;
    const size_t no = (size_t)s->N * s->OC * OH * OW;
    float *x = falloc(ni), *w = falloc(nw), *b = falloc(s->OC), *dy = falloc(no);
    float *pre = falloc(ni);
    fill(x, ni, -1, 1), fill(w, nw, -1, 1), fill(b, s->OC, -1, 1), fill(dy, no, -1, 1);
    fill(pre, ni, -1, 1);
    float *out = falloc(no), *dx = falloc(ni), *dw = falloc(nw), *db = falloc(s->OC);
#define ARGS s->N, s->C, s->H, s->W, s->OC, s->K, s->K, s->stride, s->pad
    dt_conv2d_forward_ref(out, x, w, b, ARGS);
    dt_conv2d_backward_ref(dx, dw, db, dy, x, w, ARGS, 0);
#undef ARGS
    float *dxa = falloc(ni);
    for (size_t i = 0; i < ni; i++)
        dxa[i] = pre[i] + dx[i];
    const double atol = atol_for(s, OH, OW);
    result r[DT_ISA_COUNT];
    int first = -1; /* the first ISA of the bitwise group that ran */
    for (int i = 0; i < DT_ISA_COUNT; i++) {
        if (!tables[i])
            continue;
        run_isa(tables[i], s, x, w, b, dy, pre, &r[i], what);
        int ok = CHECK_TENSOR_CLOSE(r[i].out, out, no, 1e-5, atol);
        ok &= CHECK_TENSOR_CLOSE(r[i].dx, dx, ni, 1e-5, atol);
        ok &= CHECK_TENSOR_CLOSE(r[i].dxa, dxa, ni, 1e-5, atol);
        ok &= CHECK_TENSOR_CLOSE(r[i].dw, dw, nw, 1e-5, atol);
        ok &= CHECK_TENSOR_CLOSE(r[i].db, db, s->OC, 1e-5, atol);
        if (!ok)
            fprintf(stderr, "  %s %s: vs the reference\n", what, tables[i]->name);
        if (i == DT_ISA_GENERIC)
            continue;
        if (first < 0) {
            first = i;
            continue;
        }
        const result *a = &r[first], *c = &r[i];
        ok = same_bits(c->out, a->out, no) && same_bits(c->dx, a->dx, ni) &&
             same_bits(c->dxa, a->dxa, ni) && same_bits(c->dw, a->dw, nw) &&
             same_bits(c->db, a->db, s->OC);
        CHECK(ok);
        if (!ok)
            fprintf(stderr, "  %s: %s differs from %s\n", what, tables[i]->name,
                    tables[first]->name);
    }
    for (int i = 0; i < DT_ISA_COUNT; i++)
        if (tables[i])
            result_free(&r[i]);
    free(x), free(w), free(b), free(dy), free(pre), free(out), free(dx), free(dw), free(db);
    free(dxa);
}

/* " (bf16)", " (fp16)" or "" for a round_to format, in failure messages */
static const char *fmt_tag(int round_to)
{
    return round_to == DT_FP16 ? " (fp16)" : round_to == DT_BF16 ? " (bf16)" : "";
}

/* the fused conv + ReLU + pool of kernel table k vs its separate kernels, bitwise; pf/dwf: the
 * fused outputs for the cross-ISA check. round_to (DT_BF16, DT_FP16; 0 none): 16-bit training's
 * fused forward against the separate layers with the conv's output rounded to that format
 * (dt_round_to, as 16-bit training rounds the ReLU's input): a tie after rounding must send the
 * gradient where the separate pool does */
static void fused_isa(const dt_kern *k, const shape *s, const float *x, const float *w,
                      const float *b, const float *R, float *pf, float *dxf, float *dwf, float *dbf,
                      int round_to)
{
    const dt_conv_opts o = {DT_CONV_LANES, k};
    const int OH = dt_conv_out_size(s->H, s->K, s->stride, s->pad);
    const int OW = dt_conv_out_size(s->W, s->K, s->stride, s->pad);
    const size_t ni = (size_t)s->N * s->C * s->H * s->W, nw = (size_t)s->OC * s->C * s->K * s->K;
    const size_t no = (size_t)s->N * s->OC * OH * OW,
                 np = (size_t)s->N * s->OC * (OH / 2) * (OW / 2);
#define ARGS s->N, s->C, s->H, s->W, s->OC, s->K, s->K, s->stride, s->pad
    CHECK(dt_conv2d_relu_pool2_ok_with(&o, ARGS));
    const size_t wsn = dt_conv2d_ws_floats_with(&o, ARGS);
    float *ws = ws_alloc(wsn);
    float *co = falloc(no), *ro = falloc(no), *po = falloc(np), *dro = falloc(no);
    float *dco = falloc(no), *dx = falloc(ni), *dw = falloc(nw), *db = falloc(s->OC);
    int32_t *arg = dt_xmalloc(np, sizeof *arg);
    dt_conv2d_forward_with(&o, co, x, w, b, ARGS, ws);
    dt_round_to(round_to, co, no);
    dt_relu_forward(ro, co, (long)no);
    dt_maxpool_forward(po, arg, ro, s->N, s->OC, OH, OW, 2, 2, 0);
    dt_maxpool_backward(dro, R, arg, s->N, s->OC, OH, OW, OH / 2, OW / 2, 0);
    dt_relu_backward(dco, dro, ro, (long)no, 0, 0);
    dt_conv2d_backward_with(&o, dx, dw, db, dco, x, w, ARGS, 0, ws);
    int32_t *code = dt_xmalloc(dt_conv2d_relu_pool2_code_size(s->N, s->OC, OH, OW), sizeof *code);
    dt_conv2d_relu_pool2_forward_with(&o, pf, code, x, w, b, ARGS, round_to, ws);
    dt_conv2d_relu_pool2_backward_with(&o, dxf, dwf, dbf, R, code, x, w, ARGS, 0, ws);
#undef ARGS
    const int ok = same_bits(pf, po, np) && same_bits(dxf, dx, ni) && same_bits(dwf, dw, nw) &&
                   same_bits(dbf, db, s->OC);
    CHECK(ok);
    CHECK(ws_guard_ok(ws, wsn));
    if (!ok)
        fprintf(stderr,
                "  fused conv+relu+pool N%d C%d %dx%d OC%d K%d s%d p%d %s%s: not the separate "
                "kernels\n",
                s->N, s->C, s->H, s->W, s->OC, s->K, s->stride, s->pad, k->name, fmt_tag(round_to));
    free(ws), free(co), free(ro), free(po), free(dro), free(dco), free(dx), free(dw), free(db);
    free(arg), free(code);
}

/* fused_isa on every table this CPU runs, and the x86 tables bitwise against each other */
static void fused_isas(const shape *s, const float *x, const float *w, const float *b,
                       const float *R, size_t np, size_t ni, size_t nw, int round_to)
{
    float *pf[DT_ISA_COUNT], *dxf[DT_ISA_COUNT], *dwf[DT_ISA_COUNT], *dbf[DT_ISA_COUNT];
    int first = -1;
    for (int i = 0; i < DT_ISA_COUNT; i++) {
        if (!tables[i])
            continue;
        pf[i] = falloc(np), dxf[i] = falloc(ni), dwf[i] = falloc(nw), dbf[i] = falloc(s->OC);
        fused_isa(tables[i], s, x, w, b, R, pf[i], dxf[i], dwf[i], dbf[i], round_to);
        if (i == DT_ISA_GENERIC)
            continue;
        if (first < 0) {
            first = i;
            continue;
        }
        const int ok = same_bits(pf[i], pf[first], np) && same_bits(dxf[i], dxf[first], ni) &&
                       same_bits(dwf[i], dwf[first], nw) && same_bits(dbf[i], dbf[first], s->OC);
        CHECK(ok);
        if (!ok)
            fprintf(stderr, "  fused N%d C%d OC%d%s: %s differs from %s\n", s->N, s->C, s->OC,
                    fmt_tag(round_to), tables[i]->name, tables[first]->name);
    }
    for (int i = 0; i < DT_ISA_COUNT; i++)
        if (tables[i])
            free(pf[i]), free(dxf[i]), free(dwf[i]), free(dbf[i]);
}

/* special: conv outputs that are exactly their channel's bias (zero weights) for every channel
 * but the last: NaN, +-inf, the largest float, denormals, -0 (the ReLU + pool's NaN and zero
 * cases, on every ISA) */
static void test_fused(const shape *s, int special)
{
    const int OH = dt_conv_out_size(s->H, s->K, s->stride, s->pad);
    const int OW = dt_conv_out_size(s->W, s->K, s->stride, s->pad);
    const size_t ni = (size_t)s->N * s->C * s->H * s->W, nw = (size_t)s->OC * s->C * s->K * s->K;
    const size_t np = (size_t)s->N * s->OC * (OH / 2) * (OW / 2);
    float *x = falloc(ni), *w = falloc(nw), *b = falloc(s->OC), *R = falloc(np);
    fill(x, ni, -1, 1), fill(w, nw, -1, 1), fill(b, s->OC, -0.5, 0.5), fill(R, np, -1, 1);
    if (special) {
        static const uint32_t bits[] = {0x7fc00000u, 0x7f800000u, 0xff800000u, 0x7f7fffffu,
                                        0x007fffffu, 0x00400001u, 0x80000000u, 0x807fffffu};
        const size_t per = nw / (size_t)s->OC;
        for (int oc = 0; oc + 1 < s->OC; oc++) {
            memcpy(&b[oc], &bits[oc % 8], 4);
            memset(w + (size_t)oc * per, 0, per * sizeof *w);
        }
    }
    static const int formats[] = {0, DT_BF16, DT_FP16};
    for (int f = 0; f < 3; f++)
        fused_isas(s, x, w, b, R, np, ni, nw, formats[f]);
    free(x), free(w), free(b), free(R);
}

int main(void)
{
    dt_mt_seed(&rng, 20261202);
    for (int i = 0; i < DT_ISA_COUNT; i++) {
        tables[i] = dt_kern_table((dt_isa)i);
        printf("test_lanes: %-10s %s\n", dt_isa_name((dt_isa)i),
               tables[i] ? "tested" : "skipped (this CPU lacks it)");
        if (tables[i])
            CHECK(tables[i]->conv && tables[i]->conv->lanes == tables[i]->lanes);
    }
    /* N C H W OC K stride pad: the conv layers of the built-in models (models/NAME.cfg) */
    static const shape models[] = {
        {9, 1, 28, 28, 6, 5, 1, 2},     {17, 6, 14, 14, 16, 5, 1, 0},  /* lenet5 */
        {7, 1, 28, 28, 32, 3, 1, 1},    {17, 32, 14, 14, 64, 3, 1, 1}, /* cnn */
        {9, 3, 32, 32, 16, 3, 1, 1},    {7, 16, 32, 32, 16, 3, 1, 1},  /* resnet20 */
        {9, 16, 32, 32, 32, 3, 2, 1},   {17, 16, 32, 32, 32, 1, 2, 0},
        {7, 32, 16, 16, 32, 3, 1, 1},   {9, 32, 16, 16, 64, 3, 2, 1},
        {17, 32, 16, 16, 64, 1, 2, 0},  {33, 64, 8, 8, 64, 3, 1, 1},
        {2, 3, 32, 32, 64, 3, 1, 1},    {1, 64, 32, 32, 128, 3, 1, 1}, /* resnet9 */
        {1, 128, 16, 16, 128, 3, 1, 1}, {1, 128, 16, 16, 256, 3, 1, 1},
        {1, 256, 8, 8, 512, 3, 1, 1},   {1, 512, 4, 4, 512, 3, 1, 1},
    };
    /* odd shapes: 1x1, stride 2 and 3, padding > K/2, C = 1 and 3, OC not a multiple of any
     * tile, non-square images, N = 1, 7, 9, 17, 33 (not multiples of 4, 8 or 16) */
    static const shape odd[] = {
        {1, 1, 1, 1, 1, 1, 1, 0},   {7, 3, 7, 5, 5, 1, 1, 0},   {9, 3, 9, 10, 7, 3, 2, 1},
        {17, 1, 6, 7, 11, 3, 1, 2}, {33, 5, 5, 6, 13, 2, 1, 0}, {16, 3, 11, 13, 8, 3, 1, 1},
        {33, 2, 7, 9, 9, 3, 3, 2},  {4, 7, 5, 5, 1, 5, 1, 2},   {32, 4, 8, 7, 3, 1, 2, 0},
    };
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
        test_shape(&models[i]);
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++)
        test_shape(&odd[i]);
    /* fused: lenet5's and cnn's groups, odd outputs (a dropped row and column), strides */
    static const shape fused[] = {
        {9, 1, 28, 28, 6, 5, 1, 2},   {17, 6, 14, 14, 16, 5, 1, 0}, {33, 1, 28, 28, 32, 3, 1, 1},
        {7, 32, 14, 14, 64, 3, 1, 1}, {3, 2, 9, 8, 5, 3, 1, 0},     {17, 3, 11, 9, 4, 3, 2, 1},
    };
    for (size_t i = 0; i < sizeof fused / sizeof fused[0]; i++)
        test_fused(&fused[i], 0);
    static const shape specials[] = {{19, 1, 10, 10, 9, 3, 1, 1}, {17, 3, 8, 8, 9, 3, 1, 1}};
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++)
        test_fused(&specials[i], 1);
    return check_finish("test_lanes");
}
