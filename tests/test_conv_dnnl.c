/*
 * test_conv_dnnl.c - the convolutions through oneDNN (kernels/conv_dnnl.h) against the naive
 * reference kernels (dt_conv2d_forward_ref / _backward_ref), in float32 and, where this CPU has
 * native bf16 (oneDNN's bf16 kernels; elsewhere it has only reference code there), in bf16 on
 * operands rounded to bf16 first (so the products are exact and only the order of the float32
 * sums differs: a stated tolerance). Shapes with a batch tail (37 = 32 + 5), a batch under one
 * chunk, stride 2, 1x1, with and without bias, the input gradient accumulated and not. Every
 * result bitwise the same at 1, 2 and 3 pool threads (the chunks and the partial gradients'
 * order do not depend on the thread count). And kernels.conv's choice (dt_dnnl_conv_wanted).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"
#include "kernels/conv_dnnl.h"
#include "kernels/isa.h"
#include "kernels/layer_kernels.h"
#include "kernels/tpool.h"
#include "lowp.h"
#include "rng.h"

static dt_mt19937 rng;

typedef struct {
    int N, C, H, W, OC, K, stride, pad, bias;
} shape;

static void fill(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(dt_mt_uniform(&rng) - 0.5);
}

/* the outputs of one oneDNN forward + backward */
typedef struct {
    float *out, *dinp, *dw, *db;
} result;

static void run(result *r, dt_dnnl_conv *c, const shape *s, const float *inp, const float *w,
                const float *b, const float *dout, const float *dinp0, int accum, size_t nin,
                size_t nout, size_t nw)
{
    r->out = dt_xmalloc(nout, sizeof(float));
    r->dinp = dt_xmalloc(nin, sizeof(float));
    r->dw = dt_xmalloc(nw, sizeof(float));
    r->db = dt_xmalloc((size_t)s->OC, sizeof(float));
    memcpy(r->dinp, dinp0, nin * sizeof(float));
    dt_dnnl_conv_forward(c, r->out, inp, w, s->bias ? b : NULL, s->N);
    dt_dnnl_conv_backward(c, r->dinp, r->dw, s->bias ? r->db : NULL, dout, inp, w, s->N, accum);
}

static void result_free(result *r) { free(r->out), free(r->dinp), free(r->dw), free(r->db); }

static int same(const float *a, const float *b, size_t n) { return !memcmp(a, b, n * 4); }

static void test_shape(const shape *s, int bf16, int accum)
{
    const int OH = dt_conv_out_size(s->H, s->K, s->stride, s->pad);
    const int OW = dt_conv_out_size(s->W, s->K, s->stride, s->pad);
    const size_t nin = (size_t)s->N * s->C * s->H * s->W, nout = (size_t)s->N * s->OC * OH * OW;
    const size_t nw = (size_t)s->OC * s->C * s->K * s->K;
    float *inp = dt_xmalloc(nin, 4), *w = dt_xmalloc(nw, 4), *b = dt_xmalloc((size_t)s->OC, 4);
    float *dout = dt_xmalloc(nout, 4), *dinp0 = dt_xmalloc(nin, 4);
    fill(inp, nin), fill(w, nw), fill(b, (size_t)s->OC), fill(dout, nout), fill(dinp0, nin);
    if (bf16) { /* the reference then sees exactly what the bf16 products see */
        dt_round_bf16(inp, nin);
        dt_round_bf16(w, nw);
        dt_round_bf16(dout, nout);
    }
    dt_dnnl_conv *c =
        dt_dnnl_conv_new(s->C, s->H, s->W, s->OC, s->K, s->K, s->stride, s->pad, s->bias, bf16);
    CHECK(c != NULL);
    if (!c)
        goto out;
    /* the reference */
    float *rout = dt_xmalloc(nout, 4), *rdinp = dt_xmalloc(nin, 4), *rdw = dt_xmalloc(nw, 4);
    float *rdb = dt_xmalloc((size_t)s->OC, 4);
    memcpy(rdinp, dinp0, nin * 4);
    dt_conv2d_forward_ref(rout, inp, w, s->bias ? b : NULL, s->N, s->C, s->H, s->W, s->OC, s->K,
                          s->K, s->stride, s->pad);
    dt_conv2d_backward_ref(rdinp, rdw, s->bias ? rdb : NULL, dout, inp, w, s->N, s->C, s->H, s->W,
                           s->OC, s->K, s->K, s->stride, s->pad, accum);
    result r[3];
    for (int t = 1; t <= 3; t++) {
        dt_tpool_init(t);
        run(&r[t - 1], c, s, inp, w, b, dout, dinp0, accum, nin, nout, nw);
    }
    dt_tpool_init(1);
    /* sums of up to C K K (or OC K K, N OH OW) products of values under 0.5 */
    const double tol = 2e-6 * (double)(s->C * s->K * s->K + s->N * OH * OW);
    CHECK_TENSOR_CLOSE(r[0].out, rout, (long)nout, 1e-5, tol);
    CHECK_TENSOR_CLOSE(r[0].dinp, rdinp, (long)nin, 1e-5, tol);
    CHECK_TENSOR_CLOSE(r[0].dw, rdw, (long)nw, 1e-5, tol);
    if (s->bias)
        CHECK_TENSOR_CLOSE(r[0].db, rdb, s->OC, 1e-5, tol);
    for (int t = 1; t < 3; t++) {
        CHECK(same(r[t].out, r[0].out, nout));
        CHECK(same(r[t].dinp, r[0].dinp, nin));
        CHECK(same(r[t].dw, r[0].dw, nw));
        if (s->bias)
            CHECK(same(r[t].db, r[0].db, (size_t)s->OC));
    }
    /* a second call on the same state (its chunk sets and buffers reused): the same bits */
    result again;
    run(&again, c, s, inp, w, b, dout, dinp0, accum, nin, nout, nw);
    CHECK(same(again.out, r[0].out, nout) && same(again.dw, r[0].dw, nw));
    result_free(&again);
    for (int t = 0; t < 3; t++)
        result_free(&r[t]);
    free(rout), free(rdinp), free(rdw), free(rdb);
    dt_dnnl_conv_free(c);
out:
    free(inp), free(w), free(b), free(dout), free(dinp0);
}

int main(void)
{
    dt_mt_seed(&rng, 20261203);
    const dt_kern *k = dt_kern_get();
    char d[96];
    printf("test_conv_dnnl: %s, kernel table %s\n", dt_dnnl_describe(d, sizeof d), k->name);
    static const shape shapes[] = {
        {37, 64, 8, 8, 32, 3, 1, 1, 1},  /* a full chunk and a tail of 5 */
        {5, 16, 9, 9, 24, 3, 2, 1, 0},   /* under one chunk, stride 2 */
        {33, 8, 6, 6, 8, 1, 1, 0, 1},    /* 1x1 */
        {40, 3, 12, 10, 16, 5, 1, 2, 1}, /* 3 input channels, 5x5, a 12x10 plane */
    };
    const int bf16_ok = k->bf16_native; /* oneDNN has bf16 kernels where the CPU has the ops */
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int bf16 = 0; bf16 <= bf16_ok; bf16++)
            for (int accum = 0; accum < 2; accum++)
                test_shape(&shapes[i], bf16, accum);
    if (!bf16_ok)
        printf("test_conv_dnnl: bf16 skipped (no native bf16 on this CPU: oneDNN has only its "
               "reference code there)\n");

    /* kernels.conv */
    dt_dnnl_conv_set(DT_CONV_BACKEND_DTRAIN);
    CHECK(!dt_dnnl_conv_wanted(256, 3, 3, 0, 1) && !dt_dnnl_conv_wanted(64, 3, 3, 1, 0) &&
          dt_dnnl_conv_backend() == DT_CONV_BACKEND_DTRAIN);
    dt_dnnl_conv_set(DT_CONV_BACKEND_ONEDNN);
    CHECK(dt_dnnl_conv_wanted(3, 1, 1, 0, 1) && dt_dnnl_conv_wanted(3, 1, 1, 1, 1));
    dt_dnnl_conv_set(DT_CONV_BACKEND_AUTO);
    const int avx512 = k->isa == DT_ISA_AVX512 || k->isa == DT_ISA_AVX512BF16;
    CHECK(dt_dnnl_conv_wanted(128, 3, 3, 0, 1) == avx512);
    CHECK(dt_dnnl_conv_wanted(128, 3, 3, 1, 1) == (avx512 && k->bf16_native));
    /* bf16 where dtrain's bf16 kernels do not take the shape */
    CHECK(dt_dnnl_conv_wanted(64, 3, 3, 1, 0) == (avx512 && k->bf16_native));
    /* resnet20's widest layers and all below stay on dtrain's kernels */
    CHECK(!dt_dnnl_conv_wanted(64, 3, 3, 0, 1) && !dt_dnnl_conv_wanted(64, 3, 3, 1, 1));
    CHECK(!dt_dnnl_conv_wanted(512, 1, 1, 0, 1));
    return check_finish("test_conv_dnnl");
}
