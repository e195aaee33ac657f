/*
 * lowp.h - low-precision training: float16 / bfloat16 rounding of float32 arrays, and PyTorch's
 * dynamic loss scaler (torch.cuda.amp.GradScaler).
 *
 * What `train.precision = fp16 | bf16` means (PyTorch autocast + GradScaler): the master weights,
 * the optimizer, the allreduce and the parameter gradients stay float32; every layer computes
 * from inputs and weights rounded to the 16-bit format (float32 accumulation, as tensor cores and
 * oneDNN's bf16 kernels do), and every activation and activation gradient between layers is
 * rounded to it (net.c, with the functions below; in bf16 each activation is rounded once, where
 * it is made, and stored as bf16: net_act.h). So the values a layer sees are exactly the
 * 16-bit values the format can hold: float16's 10-bit mantissa and its range (overflow above
 * 65504, gradual underflow below 2^-14), bfloat16's 7-bit mantissa with float32's range. fp16
 * needs loss scaling (the gradient of the loss multiplied by S before it enters the rounded
 * backward, the parameter gradients divided by S before the step); bf16 does not.
 *
 * bf16 is real bf16 arithmetic in the linear layers (layers/linear.c) and the convolutions that run
 * on batch lanes (layers/conv.c, kernels/conv_bf16.h): their products (forward, weight gradient,
 * input gradient) run on the bf16 GEMM (kernels/bf16.h) or the bf16 batch-lane kernels, which pack
 * the operands as bf16 pairs and multiplies them with VDPBF16PS: native on AVX512_BF16 CPUs,
 * emulated bit for bit elsewhere (isa/bf16_vec.h), so a bf16 run gives the same bits on every
 * ISA and machine. Its products are exact and its sums are fp32 in the instruction's order (per
 * pair the odd element's product first, each addition rounded to nearest even, denormal inputs
 * and tiny results flushed to zero), not the fp32 GEMM's: bf16 results differ from the emulation
 * before it (fp32 kernels on rounded values) in the last bits of the sums. The weight gradient
 * is the fp32 result of that product (torch rounds the bf16 weight copy's gradient to bf16; this
 * keeps the fp32 sum). The other layers (BatchNorm, pooling, im2col convolutions, ...) run their
 * fp32 kernels on the rounded values.
 *
 * fp16 stays an emulation: no CPU here has fp16 arithmetic (AVX512-FP16 may come later), so it
 * runs the fp32 kernels on the rounded values; it costs a rounding pass per tensor and speeds
 * nothing up.
 */
#ifndef DT_LOWP_H
#define DT_LOWP_H

#include <stddef.h>
#include <stdint.h>

enum { DT_FP32 = 0, DT_BF16 = 1, DT_FP16 = 2 };

/* x[0..n) <- x rounded to float16 (round to nearest even; beyond 65504 +-inf, gradual underflow)
 * or to bfloat16 (round to nearest even on the upper 16 bits), as float32 values: bitwise
 * tensor.half().float() / tensor.bfloat16().float(). NaN stays NaN. */
void dt_round_fp16(float *x, size_t n);
void dt_round_bf16(float *x, size_t n);
/* The one selected by format (DT_FP32: nothing). */
void dt_round_to(int format, float *x, size_t n);
/* Scalar references (the tests' second opinion, and the fallback without F16C). */
float dt_round_fp16_1(float f);
float dt_round_bf16_1(float f);

/* torch.cuda.amp.GradScaler (torch 1.13): init_scale 2^16, growth_factor 2, backoff_factor 0.5,
 * growth_interval (default 2000). dynamic = 0: a fixed scale (never changes). */
typedef struct dt_scaler {
    double scale;
    int64_t growth_tracker; /* successful steps since the last change */
    int64_t growth_interval;
    int dynamic;
    int64_t skipped; /* steps skipped for inf/NaN gradients */
} dt_scaler;
void dt_scaler_init(dt_scaler *s, double scale, int dynamic, int64_t growth_interval);
/* After the (averaged) gradients of a step: g[0..n) finite -> unscales them (g *= float(1/S)),
 * returns 1 (take the step); otherwise leaves them, returns 0 (skip the optimizer step). Then
 * updates the scale like GradScaler.update: inf/NaN -> S *= 0.5, tracker 0; else tracker + 1,
 * S *= 2 when it reaches growth_interval. */
int dt_scaler_unscale_update(dt_scaler *s, float *g, size_t n);

/* Registers the loss scaler's state in st (state.h) when scaling is on (scale > 0): amp/scale,
 * amp/growth_tracker, amp/skipped. */
struct dt_state;
void dt_scaler_register_state(dt_scaler *s, struct dt_state *st);

#endif
