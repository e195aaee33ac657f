/*
 * conv_bench.h - what bench/conv_layers.c and bench/conv_onednn.c share: the conv shapes of the
 * built-in models (lenet5, cnn, resnet20) and resnet9, thread CPU time, the inputs' fill, and one
 * forward + backward of dtrain's kernels (the fp32 plan's path, or the bf16 kernels) timed. Bench
 * programs only (static functions; each program includes it once).
 */
#ifndef DT_BENCH_CONV_BENCH_H
#define DT_BENCH_CONV_BENCH_H

#include <stdlib.h>
#include <time.h>

#include "common.h"
#include "kernels/conv_bf16.h"
#include "kernels/layer_kernels.h"

typedef struct {
    const char *model, *name;
    int C, H, W, OC, K, stride, pad, bias, first, count; /* count: layers of this shape */
} conv_shape;

static const conv_shape shapes[] = {
    {"lenet5", "conv1 1->6 5x5 p2 28x28", 1, 28, 28, 6, 5, 1, 2, 1, 1, 1},
    {"lenet5", "conv2 6->16 5x5 14x14", 6, 14, 14, 16, 5, 1, 0, 1, 0, 1},
    {"cnn", "conv1 1->32 3x3 28x28", 1, 28, 28, 32, 3, 1, 1, 1, 1, 1},
    {"cnn", "conv2 32->64 3x3 14x14", 32, 14, 14, 64, 3, 1, 1, 1, 0, 1},
    {"resnet20", "conv1 3->16 3x3 32x32", 3, 32, 32, 16, 3, 1, 1, 0, 1, 1},
    {"resnet20", "16->16 3x3 32x32 (x6)", 16, 32, 32, 16, 3, 1, 1, 0, 0, 6},
    {"resnet20", "16->32 3x3 s2 32x32", 16, 32, 32, 32, 3, 2, 1, 0, 0, 1},
    {"resnet20", "16->32 1x1 s2 shortcut", 16, 32, 32, 32, 1, 2, 0, 0, 0, 1},
    {"resnet20", "32->32 3x3 16x16 (x5)", 32, 16, 16, 32, 3, 1, 1, 0, 0, 5},
    {"resnet20", "32->64 3x3 s2 16x16", 32, 16, 16, 64, 3, 2, 1, 0, 0, 1},
    {"resnet20", "32->64 1x1 s2 shortcut", 32, 16, 16, 64, 1, 2, 0, 0, 0, 1},
    {"resnet20", "64->64 3x3 8x8 (x5)", 64, 8, 8, 64, 3, 1, 1, 0, 0, 5},
    {"resnet9", "prep 3->64 3x3 32x32", 3, 32, 32, 64, 3, 1, 1, 0, 1, 1},
    {"resnet9", "64->128 3x3 32x32", 64, 32, 32, 128, 3, 1, 1, 0, 0, 1},
    {"resnet9", "128->128 3x3 16x16 (x2)", 128, 16, 16, 128, 3, 1, 1, 0, 0, 2},
    {"resnet9", "128->256 3x3 16x16", 128, 16, 16, 256, 3, 1, 1, 0, 0, 1},
    {"resnet9", "256->512 3x3 8x8", 256, 8, 8, 512, 3, 1, 1, 0, 0, 1},
    {"resnet9", "512->512 3x3 4x4 (x2)", 512, 4, 4, 512, 3, 1, 1, 0, 0, 2},
};

/* CPU time of this thread (1 BLAS thread: all the work is on it), so that other load on a shared
 * machine does not count (it still shares the caches and the core's other hyperthread) */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void fill(float *p, size_t n, unsigned *s)
{
    for (size_t i = 0; i < n; i++) {
        *s = *s * 1664525u + 1013904223u;
        p[i] = (float)(*s >> 8) / 16777216.0f - 0.5f;
    }
}

/* t[0], t[1]: thread CPU seconds of one forward and one backward of shape s (the bf16 kernels
 * when b16, else o's path) */
static void time_calls(double *t, const dt_conv_opts *o, int b16, const conv_shape *s, int N,
                       float *out, const float *inp, const float *w, const float *b, float *dinp,
                       float *dw, float *db, const float *dout, float *ws)
{
    const float *bias = s->bias ? b : NULL;
    float *dbias = s->bias ? db : NULL, *dx = s->first ? NULL : dinp;
    double t0 = now(), t1;
    if (b16) {
        dt_bf16conv_forward(out, inp, NULL, w, bias, N, s->C, s->H, s->W, s->OC, s->K, s->K,
                            s->stride, s->pad, ws, 0);
        t1 = now();
        dt_bf16conv_backward(dx, dw, dbias, dout, inp, NULL, w, N, s->C, s->H, s->W, s->OC, s->K,
                             s->K, s->stride, s->pad, 0, 0, ws, 0);
    } else {
        dt_conv2d_forward_with(o, out, inp, w, bias, N, s->C, s->H, s->W, s->OC, s->K, s->K,
                               s->stride, s->pad, ws);
        t1 = now();
        dt_conv2d_backward_with(o, dx, dw, dbias, dout, inp, w, N, s->C, s->H, s->W, s->OC, s->K,
                                s->K, s->stride, s->pad, 0, ws);
    }
    t[0] = t1 - t0;
    t[1] = now() - t1;
}

enum { REPS = 5 };

static double median(double *v)
{
    qsort(v, REPS, sizeof v[0], cmp_double);
    return v[REPS / 2];
}

/* t[0], t[1]: the medians of REPS timed forward and backward calls (after one warm-up) of shape s
 * at batch N, on the bf16 kernels when b16, else on o's path; random inputs */
static void time_shape(double *t, const dt_conv_opts *o, int b16, const conv_shape *s, int N)
{
    const int OH = dt_conv_out_size(s->H, s->K, s->stride, s->pad);
    const int OW = dt_conv_out_size(s->W, s->K, s->stride, s->pad);
    const size_t nin = (size_t)N * s->C * s->H * s->W, nout = (size_t)N * s->OC * OH * OW;
    const size_t nw = (size_t)s->OC * s->C * s->K * s->K;
    const size_t nws =
        b16 ? dt_bf16conv_ws_floats(N, s->C, s->H, s->W, s->OC, s->K, s->K, s->stride, s->pad)
            : dt_conv2d_ws_floats_with(o, N, s->C, s->H, s->W, s->OC, s->K, s->K, s->stride,
                                       s->pad);
    float *inp = dt_xmalloc(nin, sizeof(float)), *out = dt_xmalloc(nout, sizeof(float));
    float *dinp = dt_xmalloc(nin, sizeof(float)), *dout = dt_xmalloc(nout, sizeof(float));
    float *w = dt_xmalloc(nw, sizeof(float)), *dw = dt_xmalloc(nw, sizeof(float));
    float *b = dt_xmalloc((size_t)s->OC, sizeof(float)), *db = dt_xmalloc((size_t)s->OC, 4);
    float *ws = dt_xmalloc(nws, sizeof(float));
    unsigned seed = 7u;
    fill(inp, nin, &seed);
    fill(dout, nout, &seed);
    fill(w, nw, &seed);
    fill(b, (size_t)s->OC, &seed);
    double tf[REPS], tb[REPS];
    for (int r = -1; r < REPS; r++) {
        double tt[2];
        time_calls(tt, o, b16, s, N, out, inp, w, b, dinp, dw, db, dout, ws);
        if (r >= 0) {
            tf[r] = tt[0];
            tb[r] = tt[1];
        }
    }
    t[0] = median(tf);
    t[1] = median(tb);
    free(inp), free(out), free(dinp), free(dout), free(w), free(dw), free(b), free(db), free(ws);
}

#endif
