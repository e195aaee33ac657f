/*
 * conv_bf16.h - the entry points of the bf16 batch-lane convolutions (the kernels: bf16_conv.h):
 * conv2d, its backward and the fused conv -> ReLU -> 2x2 max pool with bf16 products and fp32
 * sums, through the table in use (isa.h). Conventions and shapes: layer_kernels.h's conv2d.
 */
#ifndef DT_KERNELS_CONV_BF16_H
#define DT_KERNELS_CONV_BF16_H

#include <stddef.h>
#include <stdint.h>

/* 1 when the table in use has the bf16 kernels and they take this shape (their workspace stays
 * small: the layers of lenet5, cnn and resnet20); else 0 (the caller runs the fp32 kernels on
 * the bf16-rounded values). */
int dt_bf16conv_ok(int N, int C, int H, int W, int OC, int KH, int KW, int stride, int pad);
/* Floats of workspace the functions below need for this shape (0 when _ok is 0), on any ISA this
 * CPU runs (a net's workspace is sized before its ISA may change). */
size_t dt_bf16conv_ws_floats(int N, int C, int H, int W, int OC, int KH, int KW, int stride,
                             int pad);
/* int32 entries to allocate for the fused kernels' code array for a batch of N (any ISA's
 * lanes); the kernels keep one byte per pooled value in it (a quarter of the fp32 family's
 * codes: the backward reads them back long after the forward wrote them). */
size_t dt_bf16conv_code_size(int N, int OC, int OH, int OW);

/* dt_conv2d_forward (layer_kernels.h) in bf16: out = conv(bf16(inp), bf16(weight)) + bias, fp32
 * accumulation. Shapes and ws as there; asserts _ok. inp16 not NULL: the input read from its
 * bf16 copy (bf16 activations, net_act.h) in place of inp (then NULL), the same bits. */
void dt_bf16conv_forward(float *out, const float *inp, const uint16_t *inp16, const float *weight,
                         const float *bias, int N, int C, int H, int W, int OC, int KH, int KW,
                         int stride, int pad, float *ws, int io);
/* io (forward and backward): DT_BC_IN_LANES, the input and its gradient in the lane layout
 * (layer.h's dt_net.lanes, with the table's lanes; N a multiple of them), DT_BC_OUT_LANES the
 * output and its gradient; 0: (N, C, H, W). The same bits either way. */
enum { DT_BC_IN_LANES = 1, DT_BC_OUT_LANES = 2 };
/* dt_conv2d_backward in bf16: dinp (+)= transposed conv of bf16(dout) with bf16(weight), dweight
 * = correlation of bf16(dout) with bf16(inp), dbias = sum of dout, all accumulated in fp32
 * (dweight and dbias: fp32 per image, then in double, image n in slot n % 16, the slots summed
 * pairwise). dinp and dbias may be NULL. round_dout: dout is taken rounded to bf16 as
 * dt_round_bf16 rounds it (dbias the sum of the rounded values; dout itself is not written), so
 * that a caller need not round it first. inp16 not NULL: the input read from its bf16 copy
 * (bf16 activations, net_act.h) in place of inp (then NULL), the same bits. */
void dt_bf16conv_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const uint16_t *inp16, const float *weight, int N,
                          int C, int H, int W, int OC, int KH, int KW, int stride, int pad,
                          int accum, int round_dout, float *ws, int io);
/* dt_conv2d_relu_pool2_forward / _backward in bf16 (the conv as above, ReLU and the pool in
 * fp32, code as there but in this table's lanes layout: dt_bf16conv_code_size). OH, OW >= 2. */
void dt_bf16conv_relu_pool2_forward(float *pout, int32_t *code, const float *inp,
                                    const float *weight, const float *bias, int N, int C, int H,
                                    int W, int OC, int KH, int KW, int stride, int pad, float *ws);
void dt_bf16conv_relu_pool2_backward(float *dinp, float *dweight, float *dbias, const float *dpout,
                                     const int32_t *code, const float *inp, const uint16_t *inp16,
                                     const float *weight, int N, int C, int H, int W, int OC,
                                     int KH, int KW, int stride, int pad, int accum, int round_dout,
                                     float *ws);

#endif
