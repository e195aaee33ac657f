/*
 * elem.h - the `elem` kernel family (issue 12): the elementwise, pooling, BatchNorm, dropout,
 * residual-add and 16-bit rounding loops, one table per instruction set (isa.h).
 *
 * The public kernels (dt_relu_forward, dt_gap_*, dt_bn_*, dt_dropout_*, dt_add_*, dt_round_bf16,
 * dt_round_fp16) check their arguments and keep the per-channel arithmetic in double where they
 * have it; the loops over the data go through dt_kern_get()->elem. runtime/kernels/isa/elem.c
 * defines the tables, compiled once per ISA (isa/vec.h).
 *
 * Every entry computes the same bits on every ISA: the elementwise loops round each operation
 * once (no contraction, no reassociation: the lane count changes nothing), and the reductions
 * keep a fixed order that does not depend on the vector width (BatchNorm's double sums in 4
 * double lanes, global average pooling's 8 float lanes over blocks of 256, kernels/fsum.h).
 * fp16 rounding is F16C's VCVTPS2PH where the ISA has it and a bit-exact scalar emulation on
 * generic (dt_round_fp16_1): the same bits again.
 *
 * Shapes: BatchNorm tensors are (N, C, HW); a per-channel entry handles channel c of all N
 * planes. Lengths are element counts; pointers need no alignment.
 *
 * `rnd` (the backward entries): 1 reads the incoming gradient (dout, dy) rounded to bfloat16 as
 * round_bf16 rounds it, in registers, 0 reads it as it is. With bf16 training the gradient each
 * layer receives is 16-bit (lowp.h); a layer whose kernels round it as they read it spares the
 * net a pass over it (dt_layer_ops.rounds_dout): the same bits as rounding it first.
 */
#ifndef DT_KERNELS_ELEM_H
#define DT_KERNELS_ELEM_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct dt_kelem {
    /* out = inp > 0 ? inp : 0 (NaN -> 0) */
    void (*relu_forward)(float *out, const float *inp, long n);
    /* dinp (=|+=) out > 0 ? dout : 0 */
    void (*relu_backward)(float *dinp, const float *dout, const float *out, long n, int accum,
                          int rnd);
    /* the same with out read from its bf16 copy (net_act.h): the bits relu_backward gives on
     * out's float32 values (the copy widened) */
    void (*relu_backward_h)(float *dinp, const float *dout, const uint16_t *out, long n, int accum,
                            int rnd);
    /* dst[i] = ((float)src[i] / 255.0f - mean) / std, each operation rounded to float: torchvision's
     * ToTensor and Normalize, the values of dt_dataset_set_norm's table (data.h) */
    void (*norm_u8)(float *dst, const uint8_t *src, size_t n, float mean, float std);
    /* out = a + b, rounded to bfloat16 (round_bf16's rounding) when rnd */
    void (*add_forward)(float *out, const float *a, const float *b, long n, int rnd);
    /* dinp (=|+=) dout */
    void (*add_backward)(float *dinp, const float *dout, long n, int accum, int rnd);
    /* out (=|+=) inp * ((float)mask * scale): dropout's inverted scaling */
    void (*mask_apply)(float *out, const uint8_t *mask, const float *inp, long n, float scale,
                       int accum);
    /* out[p] = (float)(sum of plane p / HW), p < planes (the sum: dt_fsum's order) */
    void (*gap_forward)(float *out, const float *inp, size_t planes, int HW);
    /* dinp[p][i] (=|+=) dout[p] / (float)HW */
    void (*gap_backward)(float *dinp, const float *dout, size_t planes, int HW, int accum);
    /* per channel c in [c0, c1): sum[c] = sum x, sumsq[c] = sum x^2 (double, 4 double lanes per
     * plane, the planes in image order: one channel's sums are one thread's, whatever splits the
     * channels) */
    void (*bn_sums)(double *sum, double *sumsq, const float *inp, int N, int C, int HW, int c0,
                    int c1);
    /* BatchNorm with a fused ReLU (layers/batchnorm.c) gives ro, the ReLU's output (same
     * layout as x): dy is then the ReLU's output gradient and the kernels use relu_backward's
     * (ro > 0 ? dy : +0) in its place, relu 1 applies relu_forward to y; NULL, 0: plain. */
    /* per channel c in [c0, c1): sum[c] = sum dy, sxy[c] = sum dy * x (double, as bn_sums) */
    void (*bn_dots)(double *sum, double *sxy, const float *dy, const float *x, const float *ro,
                    int N, int C, int HW, int c0, int c1, int rnd);
    /* bn_dots with x and ro read from their bf16 copies (as relu_backward_h): its bits */
    void (*bn_dots_h)(double *sum, double *sxy, const float *dy, const uint16_t *x,
                      const uint16_t *ro, int N, int C, int HW, int c0, int c1, int rnd);
    /* channel c: y = (x - mean) * a + b (then max(y, 0) when flags has DT_BN_RELU, then rounded
     * to bfloat16 as round_bf16 rounds when it has DT_BN_ROUND; layer_kernels.h). DT_BN_ADD:
     * y = max(s, 0) with s = (x - mean) * a + b rounded (DT_BN_ROUND), plus res (same layout as
     * y; DT_BN_RES16: its bf16 copy, uint16_t), rounded again: add_forward's and
     * relu_forward's expressions after it (res NULL without) */
    void (*bn_affine)(float *y, const float *x, int N, int C, int HW, int c, float mean, float a,
                      float b, int flags, const void *res);
    /* channel c: dx (=|+=) k * (dy - mean_dy - (x - mean) * slope) */
    void (*bn_backward)(float *dx, const float *dy, const float *x, const float *ro, int N, int C,
                        int HW, int c, float k, float mean_dy, float mean, float slope, int accum,
                        int rnd);
    /* bn_backward with x and ro read from their bf16 copies: its bits */
    void (*bn_backward_h)(float *dx, const float *dy, const uint16_t *x, const uint16_t *ro, int N,
                          int C, int HW, int c, float k, float mean_dy, float mean, float slope,
                          int accum, int rnd);
    /* The lane layout (net.h): one block of DT_W images, [C][HW][lanes]; the image sums of each
     * bitwise those of the NCHW entries on its planes (bn_images's one-image calls: 0.0 + the
     * plane's fold). gap_forward / gap_backward of the block (out, dout: its images' [C] rows) */
    void (*gap_forward_l)(float *out, const float *inp, int C, int HW);
    void (*gap_backward_l)(float *dinp, const float *dout, int C, int HW, int accum);
    /* sum[l*C + c], sumsq[l*C + c]: bn_sums of image l's plane c, c < C */
    void (*bn_sums_l)(double *sum, double *sumsq, const float *inp, int C, int HW);
    /* sum[l*C + c], sxy[l*C + c]: bn_dots (and with x, ro bf16 copies bn_dots_h) of image l */
    void (*bn_dots_l)(double *sum, double *sxy, const float *dy, const float *x, const float *ro,
                      int C, int HW, int rnd);
    void (*bn_dots_lh)(double *sum, double *sxy, const float *dy, const uint16_t *x,
                       const uint16_t *ro, int C, int HW, int rnd);
    /* x <- x rounded to bfloat16 / float16 (lowp.h) */
    void (*round_bf16)(float *x, size_t n);
    void (*round_fp16)(float *x, size_t n);
};

extern const struct dt_kelem dt_kelem_generic;
#if defined(__x86_64__)
extern const struct dt_kelem dt_kelem_avx2, dt_kelem_avx2w16, dt_kelem_avx512;
#endif

/* f rounded to float16 (nearest even; beyond 65504 +-inf; gradual underflow) and back, as
 * float32: the scalar definition lowp.c's dt_round_fp16_1 exports and the generic table's loop
 * (CPUs without F16C) uses. inf and NaN pass through. */
static inline float dt_kelem_round_fp16_1(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    const uint32_t sign = u & 0x80000000u, a = u & 0x7fffffffu;
    if (a >= 0x7f800000u)
        return f; /* inf, NaN */
    uint32_t r;
    if (a >= 0x477ff000u) { /* >= 65520, halfway past 65504: rounds to infinity */
        r = 0x7f800000u;
    } else if (a >= 0x38800000u) { /* normal float16 (>= 2^-14): 10 mantissa bits, nearest even */
        r = (a + 0xfffu + ((a >> 13) & 1u)) & ~0x1fffu;
    } else if (a > 0x33000000u) { /* subnormal float16: multiples of 2^-24, nearest even */
        float m;
        memcpy(&m, &a, sizeof m);
        m = nearbyintf(m * 16777216.0f) / 16777216.0f; /* both exact: powers of 2, < 1024 */
        memcpy(&r, &m, sizeof r);
    } else { /* <= 2^-25: the tie at 2^-25 goes to the even 0 */
        r = 0;
    }
    r |= sign;
    memcpy(&f, &r, sizeof f);
    return f;
}

#endif
