/*
 * conv_bf16.c - the entry points of the bf16 batch-lane convolutions (conv_bf16.h): they plan the
 * shape with the table in use (isa.h) and call its kernels (bf16_conv.h, isa/bf16_lanes.c).
 */
#include "conv_bf16.h"

#include "bf16_conv.h"
#include "common.h"
#include "isa.h"
#include "tpool.h"

/* The most workspace one thread of the bf16 kernels takes (floats: 16 MiB): every layer of
 * lenet5, cnn and resnet20 fits; resnet9's wide layers, whose 16-image blocks no longer fit a
 * cache, stay on the fp32 kernels (im2col + sgemm on the bf16-rounded values). */
#ifndef DT_BF16CONV_MAX_FLOATS
#define DT_BF16CONV_MAX_FLOATS (4L * 1024 * 1024)
#endif

/* the table in use, with q planned by it; NULL when it has no bf16 kernels or they do not take
 * the shape */
static const struct dt_kbf16conv *plan(dt_bc_plan *q, int C, int H, int W, int OC, int KH, int KW,
                                       int stride, int pad)
{
    const struct dt_kbf16conv *t = dt_kern_get()->bf16conv;
    if (!t || C < 1 || H < 1 || W < 1 || OC < 1 || KH < 1 || KW < 1 || stride < 1 || pad < 0 ||
        H + 2 * pad < KH || W + 2 * pad < KW)
        return NULL;
    if ((long)C * (H + 2 * pad) * (W + 2 * pad) * 16 > (long)DT_BF16CONV_MAX_FLOATS)
        return NULL; /* before planning: the plan's int offsets hold */
    t->plan(q, C, H, W, OC, KH, KW, stride, pad);
    return q->total <= (size_t)DT_BF16CONV_MAX_FLOATS ? t : NULL;
}

int dt_bf16conv_ok(int N, int C, int H, int W, int OC, int KH, int KW, int stride, int pad)
{
    dt_bc_plan q;
    (void)N;
    return plan(&q, C, H, W, OC, KH, KW, stride, pad) != NULL;
}

size_t dt_bf16conv_ws_floats(int N, int C, int H, int W, int OC, int KH, int KW, int stride,
                             int pad)
{
    if (!plan(&(dt_bc_plan){0}, C, H, W, OC, KH, KW, stride, pad))
        return 0;
    /* the most any ISA this CPU runs needs, for the pool's threads: the table in use may change
     * after a net is sized */
    size_t most = 0;
    for (int i = 0; i < DT_ISA_COUNT; i++) {
        const dt_kern *t = dt_kern_table((dt_isa)i);
        if (!t || !t->bf16conv)
            continue;
        dt_bc_plan q;
        t->bf16conv->plan(&q, C, H, W, OC, KH, KW, stride, pad);
        const size_t n = dt_bc_ws_floats(&q, N, dt_tpool_threads());
        most = n > most ? n : most;
    }
    return most;
}

size_t dt_bf16conv_code_size(int N, int OC, int OH, int OW)
{
    /* one byte per pooled value (isa/lanes_io.h's code_store), in int32 entries */
    const size_t bytes = (size_t)(N + 15) / 16 * 16 * OC * (size_t)(OH / 2) * (size_t)(OW / 2);
    return (bytes + 3) / 4;
}

void dt_bf16conv_forward(float *out, const float *inp, const uint16_t *inp16, const float *weight,
                         const float *bias, int N, int C, int H, int W, int OC, int KH, int KW,
                         int stride, int pad, float *ws, int io)
{
    dt_bc_plan q;
    const struct dt_kbf16conv *t = plan(&q, C, H, W, OC, KH, KW, stride, pad);
    DT_ASSERT(t);
    q.in_lanes = (io & DT_BC_IN_LANES) != 0, q.out_lanes = (io & DT_BC_OUT_LANES) != 0;
    t->forward(&q, out, NULL, inp, inp16, weight, bias, N, ws);
}

void dt_bf16conv_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const uint16_t *inp16, const float *weight, int N,
                          int C, int H, int W, int OC, int KH, int KW, int stride, int pad,
                          int accum, int round_dout, float *ws, int io)
{
    dt_bc_plan q;
    const struct dt_kbf16conv *t = plan(&q, C, H, W, OC, KH, KW, stride, pad);
    DT_ASSERT(t);
    q.round_dout = round_dout;
    q.in_lanes = (io & DT_BC_IN_LANES) != 0, q.out_lanes = (io & DT_BC_OUT_LANES) != 0;
    t->backward(&q, dinp, dweight, dbias, dout, NULL, inp, inp16, weight, N, accum, ws);
}

void dt_bf16conv_relu_pool2_forward(float *pout, int32_t *code, const float *inp,
                                    const float *weight, const float *bias, int N, int C, int H,
                                    int W, int OC, int KH, int KW, int stride, int pad, float *ws)
{
    dt_bc_plan q;
    const struct dt_kbf16conv *t = plan(&q, C, H, W, OC, KH, KW, stride, pad);
    DT_ASSERT(t && q.PP >= 1 && code);
    t->forward(&q, pout, code, inp, NULL, weight, bias, N, ws);
}

void dt_bf16conv_relu_pool2_backward(float *dinp, float *dweight, float *dbias, const float *dpout,
                                     const int32_t *code, const float *inp, const uint16_t *inp16,
                                     const float *weight, int N, int C, int H, int W, int OC,
                                     int KH, int KW, int stride, int pad, int accum, int round_dout,
                                     float *ws)
{
    dt_bc_plan q;
    const struct dt_kbf16conv *t = plan(&q, C, H, W, OC, KH, KW, stride, pad);
    DT_ASSERT(t && q.PP >= 1 && code);
    q.round_dout = round_dout;
    t->backward(&q, dinp, dweight, dbias, dpout, code, inp, inp16, weight, N, accum, ws);
}
