/*
 * test_kern_bf16conv.c - the bf16 batch-lane convolutions (kernels/bf16_conv.h, isa/bf16_lanes.c)
 * on every ISA this CPU runs:
 *   - forward, dinp (accum 0 and 1), dweight and dbias against a double-precision reference over
 *     the bf16-rounded inputs, weights and output gradients (dbias: of the gradient as given). Tolerance: the worst-case bound of
 *     fp32 summation (Higham, "Accuracy and Stability of Numerical Algorithms", 2002, eq. 3.5):
 *     |got - ref| <= n 2^-24 sum |terms| + 2^-100 (n: the terms of the sum; the products of two
 *     bf16 are exact in fp32, so the only error is the additions');
 *   - the fused conv -> ReLU -> 2x2 max pool: bitwise the unfused kernel, its output rounded to
 *     bf16 (as a bf16 net's separate layers read it), followed by the fp32 dt_relu_* /
 *     dt_maxpool_* kernels (forward, and backward from the pooled gradient);
 *   - every ISA bitwise equal to the first (generic), so native vdpbf16ps (avx512bf16) equals its
 *     emulation (avx512, avx2w16, avx2, generic), and avx2w16 equals avx512; and the widest ISA
 *     and avx2 on a pool of 2 and 3 threads bitwise equal to them (the batch split in chunks).
 * Shapes: every conv of lenet5, cnn and resnet20 (models/NAME.cfg) and odd ones (C = 1, 3, odd C and
 * OC, 1x1, stride 2, padding), batches of 1, 7, 17 and 20 (not multiples of the lanes), and values
 * scaled to 2^-63 so that products and sums meet vdpbf16ps's flushing of denormals (the bound's
 * 2^-100 covers a flushed sum; the bitwise comparison with the instruction is the real test).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"
#include "kernels/bf16_conv.h"
#include "kernels/conv_bf16.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "kernels/layer_kernels.h"
#include "kernels/tpool.h"
#include "lowp.h"

typedef struct {
    int N, C, H, W, OC, K, stride, pad;
    const char *what;
    int tiny; /* inputs, weights and gradients scaled by 2^-63: products near 2^-126 (FTZ, DAZ) */
    /* conv outputs that are exactly their channel's bias (zero weights) for every channel but
     * the last: NaN, +-inf, the largest float (bf16: +inf), denormals (one rounds up to 2^-126),
     * -0: the fused ReLU + pool against the separate layers and across ISAs (no reference) */
    int special;
} shape;

static uint64_t rng = 0x9e3779b97f4a7c15u;
static float urand(void) /* uniform in [-1, 1) */
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((double)(rng >> 11) * 0x1p-52 - 1.0);
}
static float *fill(size_t n, int round)
{
    float *x = dt_xmalloc(n ? n : 1, sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = round ? dt_round_bf16_1(urand()) : urand();
    return x;
}

/* ---- the double-precision reference, with the sums of |terms| ---- */

typedef struct {
    int N, C, H, W, OC, KH, KW, stride, pad, OH, OW;
} dims;

static void ref_forward(double *out, double *mag, const float *x, const float *w, const float *b,
                        const dims *d)
{
    for (int n = 0; n < d->N; n++)
        for (int oc = 0; oc < d->OC; oc++)
            for (int oh = 0; oh < d->OH; oh++)
                for (int ow = 0; ow < d->OW; ow++) {
                    double s = b ? b[oc] : 0.0, m = fabs(s);
                    for (int c = 0; c < d->C; c++)
                        for (int kh = 0; kh < d->KH; kh++)
                            for (int kw = 0; kw < d->KW; kw++) {
                                const int ih = oh * d->stride - d->pad + kh;
                                const int iw = ow * d->stride - d->pad + kw;
                                if (ih < 0 || ih >= d->H || iw < 0 || iw >= d->W)
                                    continue;
                                const double t =
                                    (double)x[(((size_t)n * d->C + c) * d->H + ih) * d->W + iw] *
                                    w[(((size_t)oc * d->C + c) * d->KH + kh) * d->KW + kw];
                                s += t, m += fabs(t);
                            }
                    const size_t i = (((size_t)n * d->OC + oc) * d->OH + oh) * d->OW + ow;
                    out[i] = s, mag[i] = m;
                }
}

/* dx, dw, db: the exact sums of the backward and their |terms| sums (db of dyb: dbias sums the
 * gradient as given) */
static void ref_backward(double *dx, double *dxm, double *dw, double *dwm, double *db, double *dbm,
                         const float *dy, const float *dyb, const float *x, const float *w,
                         const dims *d)
{
    const size_t nw = (size_t)d->OC * d->C * d->KH * d->KW;
    memset(dw, 0, nw * sizeof *dw), memset(dwm, 0, nw * sizeof *dwm);
    memset(db, 0, (size_t)d->OC * sizeof *db), memset(dbm, 0, (size_t)d->OC * sizeof *dbm);
    for (int n = 0; n < d->N; n++)
        for (int oc = 0; oc < d->OC; oc++)
            for (int oh = 0; oh < d->OH; oh++)
                for (int ow = 0; ow < d->OW; ow++) {
                    const double g = dy[(((size_t)n * d->OC + oc) * d->OH + oh) * d->OW + ow];
                    const double gb = dyb[(((size_t)n * d->OC + oc) * d->OH + oh) * d->OW + ow];
                    db[oc] += gb, dbm[oc] += fabs(gb);
                    for (int c = 0; c < d->C; c++)
                        for (int kh = 0; kh < d->KH; kh++)
                            for (int kw = 0; kw < d->KW; kw++) {
                                const int ih = oh * d->stride - d->pad + kh;
                                const int iw = ow * d->stride - d->pad + kw;
                                if (ih < 0 || ih >= d->H || iw < 0 || iw >= d->W)
                                    continue;
                                const size_t xi = (((size_t)n * d->C + c) * d->H + ih) * d->W + iw;
                                const size_t wi =
                                    (((size_t)oc * d->C + c) * d->KH + kh) * d->KW + kw;
                                dw[wi] += g * x[xi], dwm[wi] += fabs(g * x[xi]);
                                dx[xi] += g * w[wi], dxm[xi] += fabs(g * w[wi]);
                            }
                }
}

/* one check: |got - ref| <= n 2^-24 mag + 2^-100 everywhere; prints the worst element */
static void check_bound(const float *got, const double *ref, const double *mag, size_t len,
                        double n, const char *what, const char *isa)
{
    size_t worst = 0;
    double excess = -1.0;
    for (size_t i = 0; i < len; i++) {
        const double lim = n * 0x1p-24 * mag[i] + 0x1p-100, e = fabs((double)got[i] - ref[i]);
        if (!(e <= lim) && (excess < 0 || e - lim > excess))
            worst = i, excess = e - lim;
    }
    CHECK(excess < 0);
    if (excess >= 0)
        fprintf(stderr, "  %s %s: element %zu is %.9g, expected %.9g (bound %.3g)\n", isa, what,
                worst, (double)got[worst], ref[worst], n * 0x1p-24 * mag[worst] + 0x1p-100);
}

/* the results of one ISA, compared bitwise across ISAs */
typedef struct {
    float *out, *dx, *dx1, *dw, *db, *pout, *pdx, *pdw, *pdb;
} results;

static void results_free(results *r)
{
    free(r->out), free(r->dx), free(r->dx1), free(r->dw), free(r->db);
    free(r->pout), free(r->pdx), free(r->pdw), free(r->pdb);
}

typedef struct {
    dims d;
    float *x, *w, *b, *dy, *dx0, *dp; /* inputs (dx0: dinp before an accumulating backward) */
} inputs;

/* the fused kernels on isa k, and their check against the unfused one (r->out rounded to bf16,
 * as the separate layers of a bf16 net read it; same ISA) */
/* The backward reading its input from a bf16 copy (inp16, net_act.h) is bitwise the backward on
 * the float values that copy widens to (what dt_net_act_fetch gave it before): plain, and with
 * code the fused pool's. */
static void check_copy_input(const struct dt_kbf16conv *k, const dt_bc_plan *q, const inputs *in,
                             const float *dy, const int32_t *code, float *ws, const char *isa)
{
    const dims *d = &in->d;
    const size_t ni = (size_t)d->N * d->C * d->H * d->W;
    const size_t nw = (size_t)d->OC * d->C * d->KH * d->KW;
    uint16_t *xh = dt_xmalloc(ni, sizeof *xh);
    float *xw = dt_xmalloc(ni, sizeof *xw), *r[2][3];
    for (size_t i = 0; i < ni; i++) {
        const float v = dt_round_bf16_1(in->x[i]);
        uint32_t u;
        memcpy(&u, &v, 4);
        xh[i] = (uint16_t)(u >> 16);
        u &= 0xffff0000u;
        memcpy(&xw[i], &u, 4);
    }
    if (!code) { /* the forward from the copy: the floats it rounds, the same bits */
        const size_t no = (size_t)d->N * d->OC * d->OH * d->OW;
        float *o[2] = {dt_xmalloc(no, 4), dt_xmalloc(no, 4)};
        k->forward(q, o[0], NULL, in->x, NULL, in->w, in->b, d->N, ws);
        k->forward(q, o[1], NULL, NULL, xh, in->w, in->b, d->N, ws);
        CHECK(memcmp(o[0], o[1], no * 4) == 0);
        if (memcmp(o[0], o[1], no * 4) != 0)
            fprintf(stderr, "  %s: forward from the bf16 copy differs from the floats\n", isa);
        free(o[0]), free(o[1]);
    }
    for (int h = 0; h < 2; h++) {
        r[h][0] = dt_xmalloc(ni, 4), r[h][1] = dt_xmalloc(nw, 4);
        r[h][2] = dt_xmalloc((size_t)d->OC, 4);
        memcpy(r[h][0], in->dx0, ni * 4);
        k->backward(q, r[h][0], r[h][1], r[h][2], dy, code, h ? NULL : xw, h ? xh : NULL, in->w,
                    d->N, 1, ws);
    }
    const int same = memcmp(r[0][0], r[1][0], ni * 4) == 0 &&
                     memcmp(r[0][1], r[1][1], nw * 4) == 0 &&
                     memcmp(r[0][2], r[1][2], (size_t)d->OC * 4) == 0;
    CHECK(same);
    if (!same)
        fprintf(stderr, "  %s: backward%s from the bf16 copy differs from the widened floats\n",
                isa, code ? " (fused)" : "");
    for (int h = 0; h < 2; h++)
        free(r[h][0]), free(r[h][1]), free(r[h][2]);
    free(xh), free(xw);
}

static void run_fused(const struct dt_kbf16conv *k, const dt_bc_plan *q, const inputs *in,
                      results *r, float *ws, const char *isa)
{
    const dims *d = &in->d;
    const size_t no = (size_t)d->N * d->OC * d->OH * d->OW, ni = (size_t)d->N * d->C * d->H * d->W;
    const size_t np = (size_t)d->N * d->OC * (d->OH / 2) * (d->OW / 2);
    const size_t nw = (size_t)d->OC * d->C * d->KH * d->KW;
    int32_t *code = dt_xmalloc(dt_bf16conv_code_size(d->N, d->OC, d->OH, d->OW), sizeof *code);
    int32_t *am = dt_xmalloc(np, sizeof *am);
    float *relu = dt_xmalloc(no, sizeof *relu), *pool = dt_xmalloc(np, sizeof *pool);
    float *dy = dt_xmalloc(no, sizeof *dy), *dy2 = dt_xmalloc(no, sizeof *dy2);
    float *dx = dt_xmalloc(ni, sizeof *dx), *dw = dt_xmalloc(nw, sizeof *dw);
    float *db = dt_xmalloc((size_t)d->OC, sizeof *db);
    r->pout = dt_xmalloc(np, sizeof *r->pout), r->pdx = dt_xmalloc(ni, sizeof *r->pdx);
    r->pdw = dt_xmalloc(nw, sizeof *r->pdw), r->pdb = dt_xmalloc((size_t)d->OC, sizeof *r->pdb);
    k->forward(q, r->pout, code, in->x, NULL, in->w, in->b, d->N, ws);
    memcpy(relu, r->out, no * sizeof *relu); /* the separate layers see the conv's output in bf16 */
    dt_round_bf16(relu, no);
    dt_relu_forward(relu, relu, (long)no);
    dt_maxpool_forward(pool, am, relu, d->N, d->OC, d->OH, d->OW, 2, 2, 0);
    CHECK(memcmp(pool, r->pout, np * sizeof *pool) == 0);
    memcpy(r->pdx, in->dx0, ni * sizeof *dx);
    k->backward(q, r->pdx, r->pdw, r->pdb, in->dp, code, in->x, NULL, in->w, d->N, 1, ws);
    check_copy_input(k, q, in, in->dp, code, ws, isa);
    dt_maxpool_backward(dy, in->dp, am, d->N, d->OC, d->OH, d->OW, d->OH / 2, d->OW / 2, 0);
    dt_relu_backward(dy2, dy, relu, (long)no, 0, 0);
    memcpy(dx, in->dx0, ni * sizeof *dx);
    k->backward(q, dx, dw, db, dy2, NULL, in->x, NULL, in->w, d->N, 1, ws);
    const int same = memcmp(dx, r->pdx, ni * sizeof *dx) == 0 &&
                     memcmp(dw, r->pdw, nw * sizeof *dw) == 0 &&
                     memcmp(db, r->pdb, (size_t)d->OC * sizeof *db) == 0;
    CHECK(same);
    if (!same)
        fprintf(stderr, "  %s: fused backward differs from the unfused one\n", isa);
    free(code), free(am), free(relu), free(pool), free(dy), free(dy2), free(dx), free(dw), free(db);
}

/* NCHW -> the lane layout (layer.h's dt_net.lanes): image b*L + l's value e at (b*E + e)*L + l,
 * and back (back 1) */
static void lanes_of(float *dst, const float *src, int N, size_t E, int L, int back)
{
    for (int n = 0; n < N; n++)
        for (size_t e = 0; e < E; e++) {
            const size_t a = (size_t)n * E + e, b = ((size_t)(n / L) * E + e) * L + (size_t)(n % L);
            if (back)
                dst[a] = src[b];
            else
                dst[b] = src[a];
        }
}

/* The lane-layout io (conv_bf16.h): on the first N - N % L images (at least one block), input,
 * output and their gradients as blocks of L images give bitwise the NCHW results transposed:
 * forward, backward (dinp plain and accumulated, dweight, dbias) */
static void check_lanes(const struct dt_kbf16conv *k, const inputs *in, float *ws, const char *isa)
{
    const dims *d = &in->d;
    dt_bc_plan q;
    k->plan(&q, d->C, d->H, d->W, d->OC, d->KH, d->KW, d->stride, d->pad);
    const int L = q.L, N = d->N / L * L;
    if (N < L)
        return;
    const size_t Ei = (size_t)d->C * d->H * d->W, Eo = (size_t)d->OC * d->OH * d->OW;
    const size_t ni = (size_t)N * Ei, no = (size_t)N * Eo,
                 nw = (size_t)d->OC * d->C * d->KH * d->KW;
    float *out = dt_xmalloc(no, 4), *lo = dt_xmalloc(no, 4),
          *back = dt_xmalloc(ni > no ? ni : no, 4);
    float *xl = dt_xmalloc(ni, 4), *dyl = dt_xmalloc(no, 4), *dx = dt_xmalloc(ni, 4);
    float *dxl = dt_xmalloc(ni, 4), *dw = dt_xmalloc(nw, 4), *dwl = dt_xmalloc(nw, 4);
    float *db = dt_xmalloc((size_t)d->OC, 4), *dbl = dt_xmalloc((size_t)d->OC, 4);
    int bad = 0;
    lanes_of(xl, in->x, N, Ei, L, 0);
    lanes_of(dyl, in->dy, N, Eo, L, 0);
    k->forward(&q, out, NULL, in->x, NULL, in->w, in->b, N, ws);
    dt_bc_plan ql = q;
    ql.in_lanes = ql.out_lanes = 1;
    k->forward(&ql, lo, NULL, xl, NULL, in->w, in->b, N, ws);
    lanes_of(back, lo, N, Eo, L, 1);
    bad += memcmp(back, out, no * 4) != 0;
    /* the block's input from its bf16 copy (bf16 activations: the same pairs) */
    uint16_t *xl16 = dt_xmalloc(ni, sizeof *xl16);
    for (size_t i = 0; i < ni; i++) {
        const float v = dt_round_bf16_1(xl[i]);
        uint32_t u;
        memcpy(&u, &v, 4);
        xl16[i] = (uint16_t)(u >> 16);
    }
    k->forward(&ql, back, NULL, NULL, xl16, in->w, in->b, N, ws);
    bad += memcmp(back, lo, no * 4) != 0;
    free(xl16);
    for (int accum = 0; accum < 2; accum++) {
        memcpy(dx, in->dx0, ni * 4);
        lanes_of(dxl, in->dx0, N, Ei, L, 0);
        k->backward(&q, dx, dw, db, in->dy, NULL, in->x, NULL, in->w, N, accum, ws);
        k->backward(&ql, dxl, dwl, dbl, dyl, NULL, xl, NULL, in->w, N, accum, ws);
        lanes_of(back, dxl, N, Ei, L, 1);
        bad += memcmp(back, dx, ni * 4) != 0 || memcmp(dw, dwl, nw * 4) != 0 ||
               memcmp(db, dbl, (size_t)d->OC * 4) != 0;
    }
    CHECK(bad == 0);
    if (bad)
        fprintf(stderr, "  %s: the lane layout differs from NCHW (%d)\n", isa, bad);
    free(out), free(lo), free(back), free(xl), free(dyl), free(dx), free(dxl), free(dw), free(dwl);
    free(db), free(dbl);
}

/* every kernel on isa k; r gets its results */
static void run_isa(const struct dt_kbf16conv *k, const inputs *in, results *r, int pool,
                    const char *isa)
{
    const dims *d = &in->d;
    dt_bc_plan q;
    k->plan(&q, d->C, d->H, d->W, d->OC, d->KH, d->KW, d->stride, d->pad);
    const size_t nws = dt_bc_ws_floats(&q, d->N, dt_tpool_threads());
    float *ws = dt_xmalloc(nws, sizeof *ws);
    for (size_t i = 0; i < nws; i++) /* garbage: the kernels must not read it */
        ws[i] = NAN;
    const size_t no = (size_t)d->N * d->OC * d->OH * d->OW, ni = (size_t)d->N * d->C * d->H * d->W;
    const size_t nw = (size_t)d->OC * d->C * d->KH * d->KW;
    r->out = dt_xmalloc(no, sizeof *r->out), r->dx = dt_xmalloc(ni, sizeof *r->dx);
    r->dx1 = dt_xmalloc(ni, sizeof *r->dx1), r->dw = dt_xmalloc(nw, sizeof *r->dw);
    r->db = dt_xmalloc((size_t)d->OC, sizeof *r->db);
    k->forward(&q, r->out, NULL, in->x, NULL, in->w, in->b, d->N, ws);
    k->backward(&q, r->dx, r->dw, r->db, in->dy, NULL, in->x, NULL, in->w, d->N, 0, ws);
    check_copy_input(k, &q, in, in->dy, NULL, ws, isa);
    float *dw = dt_xmalloc(nw, sizeof *dw), *db = dt_xmalloc((size_t)d->OC, sizeof *db);
    memcpy(r->dx1, in->dx0, ni * sizeof *r->dx1);
    k->backward(&q, r->dx1, dw, db, in->dy, NULL, in->x, NULL, in->w, d->N, 1, ws);
    CHECK(memcmp(dw, r->dw, nw * sizeof *dw) == 0 &&
          memcmp(db, r->db, (size_t)d->OC * sizeof *db) == 0);
    k->backward(&q, NULL, dw, NULL, in->dy, NULL, in->x, NULL, in->w, d->N, 0,
                ws); /* a first layer */
    CHECK(memcmp(dw, r->dw, nw * sizeof *dw) == 0);
    if (pool && d->OH >= 2 && d->OW >= 2)
        run_fused(k, &q, in, r, ws, isa);
    check_lanes(k, in, ws, isa);
    free(dw), free(db), free(ws);
}

/* bitwise equality of two ISAs' results */
static void check_same(const results *a, const results *b, const dims *d, const char *isa)
{
    const size_t no = (size_t)d->N * d->OC * d->OH * d->OW, ni = (size_t)d->N * d->C * d->H * d->W;
    const size_t nw = (size_t)d->OC * d->C * d->KH * d->KW;
    const size_t np = (size_t)d->N * d->OC * (d->OH / 2) * (d->OW / 2);
    int same = memcmp(a->out, b->out, no * 4) == 0 && memcmp(a->dx, b->dx, ni * 4) == 0 &&
               memcmp(a->dx1, b->dx1, ni * 4) == 0 && memcmp(a->dw, b->dw, nw * 4) == 0 &&
               memcmp(a->db, b->db, (size_t)d->OC * 4) == 0;
    if (a->pout && b->pout)
        same = same && memcmp(a->pout, b->pout, np * 4) == 0 &&
               memcmp(a->pdx, b->pdx, ni * 4) == 0 && memcmp(a->pdw, b->pdw, nw * 4) == 0 &&
               memcmp(a->pdb, b->pdb, (size_t)d->OC * 4) == 0;
    CHECK(same);
    if (!same)
        fprintf(stderr, "  %s differs bitwise from generic\n", isa);
}

typedef struct {
    double *out, *outm, *dx, *dxm, *dx1, *dx1m, *dw, *dwm, *db, *dbm;
} reference;

static void check_isa(const results *r, const reference *f, const dims *d, const char *isa)
{
    const size_t no = (size_t)d->N * d->OC * d->OH * d->OW, ni = (size_t)d->N * d->C * d->H * d->W;
    const size_t nw = (size_t)d->OC * d->C * d->KH * d->KW;
    const int KK = d->KH * d->KW, P = d->OH * d->OW;
    check_bound(r->out, f->out, f->outm, no, d->C * KK + 2, "forward", isa);
    check_bound(r->dx, f->dx, f->dxm, ni, d->OC * KK + 2, "dinp", isa);
    check_bound(r->dx1, f->dx1, f->dx1m, ni, d->OC * KK + 3, "dinp accum", isa);
    check_bound(r->dw, f->dw, f->dwm, nw, P + 2, "dweight", isa);
    check_bound(r->db, f->db, f->dbm, (size_t)d->OC, P + 2, "dbias", isa);
}

static void test_shape(const shape *s, int pool)
{
    inputs in;
    dims *d = &in.d;
    *d = (dims){s->N, s->C, s->H, s->W, s->OC, s->K, s->K, s->stride, s->pad, 0, 0};
    d->OH = dt_conv_out_size(s->H, s->K, s->stride, s->pad);
    d->OW = dt_conv_out_size(s->W, s->K, s->stride, s->pad);
    const size_t no = (size_t)d->N * d->OC * d->OH * d->OW, ni = (size_t)d->N * d->C * d->H * d->W;
    const size_t nw = (size_t)d->OC * d->C * d->KH * d->KW,
                 np = (size_t)d->N * d->OC * (d->OH / 2) * (d->OW / 2);
    /* x, w, dy unrounded (the kernels round them), the reference gets them rounded */
    in.x = fill(ni, 0), in.w = fill(nw, 0), in.b = fill((size_t)d->OC, 0);
    in.dy = fill(no, 0), in.dx0 = fill(ni, 0), in.dp = fill(np, 1);
    if (s->tiny) {
        for (size_t i = 0; i < ni; i++)
            in.x[i] = ldexpf(in.x[i], -63);
        for (size_t i = 0; i < nw; i++)
            in.w[i] = ldexpf(in.w[i], -63);
        for (size_t i = 0; i < no; i++)
            in.dy[i] = ldexpf(in.dy[i], -63);
        for (size_t i = 0; i < np; i++)
            in.dp[i] = ldexpf(in.dp[i], -63);
    }
    if (s->special) {
        static const uint32_t bits[] = {0x7fc00000u, 0x7f800000u, 0xff800000u, 0x7f7fffffu,
                                        0x007fffffu, 0x00400001u, 0x80000000u, 0x807fffffu};
        const size_t per = nw / (size_t)d->OC;
        for (int oc = 0; oc + 1 < d->OC; oc++) {
            memcpy(&in.b[oc], &bits[oc % 8], 4);
            memset(in.w + (size_t)oc * per, 0, per * sizeof *in.w);
        }
    }
    float *xr = dt_xmalloc(ni, 4), *wr = dt_xmalloc(nw, 4), *dyr = dt_xmalloc(no, 4);
    for (size_t i = 0; i < ni; i++)
        xr[i] = dt_round_bf16_1(in.x[i]);
    for (size_t i = 0; i < nw; i++)
        wr[i] = dt_round_bf16_1(in.w[i]);
    for (size_t i = 0; i < no; i++)
        dyr[i] = dt_round_bf16_1(in.dy[i]);
    reference f = {0};
    double **all[] = {&f.out,  &f.outm, &f.dx,  &f.dxm, &f.dx1,
                      &f.dx1m, &f.dw,   &f.dwm, &f.db,  &f.dbm};
    const size_t len[] = {no, no, ni, ni, ni, ni, nw, nw, (size_t)d->OC, (size_t)d->OC};
    for (int i = 0; i < 10; i++)
        *all[i] = dt_xcalloc(len[i] ? len[i] : 1, sizeof(double));
    ref_forward(f.out, f.outm, xr, wr, in.b, d);
    ref_backward(f.dx, f.dxm, f.dw, f.dwm, f.db, f.dbm, dyr, in.dy, xr, wr, d);
    for (size_t i = 0; i < ni; i++)
        f.dx1[i] = f.dx[i] + in.dx0[i], f.dx1m[i] = f.dxm[i] + fabs(in.dx0[i]);
    results first = {0};
    int have_first = 0, last = -1;
    for (int isa = 0; isa < DT_ISA_COUNT; isa++) {
        const dt_kern *t = dt_kern_table((dt_isa)isa);
        if (!t || !t->bf16conv)
            continue;
        results r = {0};
        run_isa(t->bf16conv, &in, &r, pool, t->name);
        if (!s->special)
            check_isa(&r, &f, d, t->name);
        if (have_first) {
            check_same(&first, &r, d, t->name);
            results_free(&r);
        } else {
            first = r, have_first = 1;
        }
        last = isa;
    }
    CHECK(have_first);
    /* the batch split over 2 and 3 pool threads (chunks of DT_BC_CHUNK images, their sums added
     * in chunk order): the same bits, on the widest ISA (and on avx2, whose blocks of 8 fill a
     * chunk's slots in two) */
    for (int T = 2; T <= 3 && last >= 0; T++) {
        dt_tpool_init(T);
        const int isas[2] = {last, DT_ISA_AVX2};
        for (int k = 0; k < 2; k++) {
            const dt_kern *t = dt_kern_table((dt_isa)isas[k]);
            if (!t || !t->bf16conv || (k == 1 && isas[1] == last))
                continue;
            char what[64];
            snprintf(what, sizeof what, "%s, %d threads", t->name, T);
            results r = {0};
            run_isa(t->bf16conv, &in, &r, pool, what);
            check_same(&first, &r, d, what);
            results_free(&r);
        }
        dt_tpool_init(1);
    }
    results_free(&first);
    for (int i = 0; i < 10; i++)
        free(*all[i]);
    free(in.x), free(in.w), free(in.b), free(in.dy), free(in.dx0), free(in.dp);
    free(xr), free(wr), free(dyr);
}

int main(void)
{
    /* the convs of the built-in models (fused: followed by relu + maxpool 2 there) */
    static const shape models[] = {
        {17, 1, 28, 28, 6, 5, 1, 2, "lenet5 conv1", 0, 0},
        {17, 6, 14, 14, 16, 5, 1, 0, "lenet5 conv2", 0, 0},
        {17, 1, 28, 28, 32, 3, 1, 1, "cnn conv1", 0, 0},
        {17, 32, 14, 14, 64, 3, 1, 1, "cnn conv2", 0, 0},
        {17, 3, 32, 32, 16, 3, 1, 1, "resnet20 conv1", 0, 0},
        {17, 16, 32, 32, 16, 3, 1, 1, "resnet20 1", 0, 0},
        {17, 16, 32, 32, 32, 3, 2, 1, "resnet20 2.0", 0, 0},
        {17, 16, 32, 32, 32, 1, 2, 0, "resnet20 2.sc", 0, 0},
        {17, 32, 16, 16, 32, 3, 1, 1, "resnet20 2", 0, 0},
        {17, 32, 16, 16, 64, 3, 2, 1, "resnet20 3.0", 0, 0},
        {17, 32, 16, 16, 64, 1, 2, 0, "resnet20 3.sc", 0, 0},
        {17, 64, 8, 8, 64, 3, 1, 1, "resnet20 3", 0, 0},
    };
    static const shape odd[] = {
        {1, 1, 5, 6, 1, 3, 1, 0, "C1 OC1", 0, 0},
        {7, 3, 9, 7, 5, 3, 1, 1, "C3 OC5", 0, 0},
        {17, 5, 11, 9, 7, 3, 2, 1, "C5 s2", 0, 0},
        {7, 7, 10, 10, 9, 5, 2, 2, "C7 5x5 s2", 0, 0},
        {17, 2, 6, 6, 3, 1, 1, 0, "1x1", 0, 0},
        {1, 4, 8, 8, 6, 2, 2, 0, "2x2 s2 OC6", 0, 0},
        {17, 1, 12, 12, 10, 4, 1, 3, "4x4 pad 3", 0, 0},
        {7, 9, 7, 7, 11, 3, 1, 1, "C9 OC11", 0, 0},
        {20, 6, 13, 15, 4, 5, 1, 2, "N20", 0, 0},
        {17, 4, 9, 9, 6, 3, 1, 1, "tiny", 1, 0},
        {7, 5, 8, 8, 3, 3, 2, 0, "tiny s2", 1, 0},
        /* OC 1, "same": the transposed input gradient packs tap pairs of dout, the left border's
         * pair (0, first pixel) included (pad 1 and 2) */
        {7, 3, 9, 7, 1, 3, 1, 1, "OC1 same 3x3", 0, 0},
        {17, 2, 8, 11, 1, 5, 1, 2, "OC1 same 5x5", 0, 0},
        {19, 1, 10, 10, 9, 3, 1, 1, "specials C1", 0, 1},
        {17, 3, 8, 8, 9, 3, 1, 1, "specials C3", 0, 1},
    };
    for (int isa = 0; isa < DT_ISA_COUNT; isa++)
        if (!dt_kern_table((dt_isa)isa))
            printf("test_kern_bf16conv: this CPU does not run %s: skipped\n",
                   dt_isa_name((dt_isa)isa));
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
        test_shape(&models[i], 1);
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++)
        test_shape(&odd[i], 1);
    return check_finish("test_kern_bf16conv");
}
