/*
 * conv_n8.h - the "batch-lane" convolution of conv.c's small layers (internal to conv.c and its
 * tests): 8 images side by side in the 8 float lanes of an AVX2 register, see conv_n8.c.
 */
#ifndef DT_CONV_N8_H
#define DT_CONV_N8_H

#include <stddef.h>

/* Everything the kernels derive from a shape (per block of 8 images). */
typedef struct {
    int C, H, W, OC, KH, KW, stride, pad, OH, OW;
    int Hp, Wp;           /* padded input plane */
    int K;                /* taps C*KH*KW */
    int P;                /* output pixels OH*OW */
    int fc, fp;           /* forward tile: fc output channels x fp pixels */
    int wc, wt;           /* weight-gradient tile: wc output channels x wt taps */
    int xt, xp;           /* input-gradient tile: xt taps x xp pixels */
    int OCf, OCw, Kw, Kx; /* OC rounded up to fc and to wc, K rounded up to wt and to xt */
    int PH, PW, PP;       /* fused 2x2 max pool: OH/2 x OW/2 */
    size_t off, wr, wx, bias, x8, o8, dx8, p8, acc, total; /* workspace offsets, size (floats) */
} dt_n8_plan;

/* 1 when the CPU runs the kernels (x86-64 with AVX2 and FMA), else 0. */
int dt_conv_n8_cpu(void);
/* Fills q for torch.nn.Conv2d(C, OC, (KH, KW), stride, pad) (output size >= 1 asserted). */
void dt_conv_n8_plan(dt_n8_plan *q, int C, int H, int W, int OC, int KH, int KW, int stride,
                     int pad);
/* The contracts of dt_conv2d_forward / dt_conv2d_backward, with q->total floats of ws.
 * Only call them when dt_conv_n8_cpu() is 1. */
void dt_conv_n8_forward(const dt_n8_plan *q, float *out, const float *inp, const float *weight,
                        const float *bias, int N, float *ws);
void dt_conv_n8_backward(const dt_n8_plan *q, float *dinp, float *dweight, float *dbias,
                         const float *dout, const float *inp, const float *weight, int N, int accum,
                         float *ws);

/* conv -> ReLU -> MaxPool2d(2, 2) (see dt_conv2d_relu_pool2_forward): pout (N, OC, PH, PW), code
 * (ceil(N / 8) * 8 * OC * PP int32, lanes layout) the window position of each maximum (0..3,
 * row-major) or 4 where the maximum is not positive (ReLU passes no gradient). */
void dt_conv_n8_relu_pool_forward(const dt_n8_plan *q, float *pout, int32_t *code, const float *inp,
                                  const float *weight, const float *bias, int N, float *ws);
void dt_conv_n8_relu_pool_backward(const dt_n8_plan *q, float *dinp, float *dweight, float *dbias,
                                   const float *dpout, const int32_t *code, const float *inp,
                                   const float *weight, int N, int accum, float *ws);

#endif
