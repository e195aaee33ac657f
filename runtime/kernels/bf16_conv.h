/*
 * bf16_conv.h - bf16 batch-lane convolutions (issue 12: native bf16 training): conv2d, its
 * backward and the fused conv -> ReLU -> 2x2 max pool, with bf16 inputs, weights and output
 * gradients and fp32 accumulation (PyTorch CPU autocast semantics), computed with vdpbf16ps on
 * AVX512_BF16 CPUs and with its bit-exact emulation everywhere else (isa/bf16_vec.h).
 *
 * The layout is conv_n8.c's (W images in the W float lanes of a register, zero-padded input
 * planes, register tiles, the GEMM form of the input gradient), with a pair of bf16 in each
 * 32-bit lane so that one vdpbf16ps does two multiply-adds per image:
 *   forward   pairs of input channels (c, c+1) of one pixel, or, where that wastes more (C = 1,
 *             a first layer), pairs of taps (kw, kw+1) of one channel;
 *   dinp      pairs of output channels (oc, oc+1) of one output pixel (stride 1 with "same"
 *             padding: the forward's kernel on dout and the flipped, transposed weight);
 *   dweight   pairs of output pixels (ow, ow+1) of one row (and their input pixels).
 * dbias is an fp32 sum of the gradient as given. Every value a product reads is rounded to bf16
 * (nearest even) where it is packed, so the kernels take fp32 arrays: net.c's emulation has
 * rounded them already (the rounding is then exact), the tests need not.
 *
 * Bitwise: the per-image order of every sum is the same whatever the lanes (pixel and channel
 * tiles only change which sums run together; the input gradient's scatter tile and all reductions
 * over images are fixed), so every ISA, generic included, gives the same bits, and the native
 * instruction the same bits as the emulation.
 *
 * This header is the kernel family's table (its per-ISA instances: isa/bf16_lanes.c); code outside
 * runtime/kernels/ calls the dt_bf16conv_* entry points of conv_bf16.h, which go through the table
 * in use (isa.h).
 */
#ifndef DT_KERNELS_BF16_CONV_H
#define DT_KERNELS_BF16_CONV_H

#include <stddef.h>
#include <stdint.h>

/* Everything the kernels derive from a shape (per block of L images). Offsets and sizes of the
 * workspace in 4-byte words (floats or bf16 pairs). */
typedef struct {
    int C, H, W, OC, KH, KW, stride, pad, OH, OW;
    int L;               /* images per block: the ISA's lanes */
    int Hp, Wp;          /* padded input plane */
    int P, K;            /* output pixels OH*OW; taps C*KH*KW */
    int tap_pairs;       /* forward pairs: 1 taps (kw, kw+1), 0 input channels (c, c+1) */
    int T2;              /* forward pair taps */
    int OC2, OW2;        /* output channel pairs, pixel pairs per output row */
    int fc, fp, OCf;     /* forward tile fc channels x fp pixels; OC rounded up to fc */
    int wc, wt, OCw, Kw; /* weight-gradient tile wc channels x wt taps; OC, K rounded up */
    int xt, xp, Kx;      /* input-gradient tile xt taps x xp pixels; K rounded up to xt */
    int PH, PW, PP;      /* fused 2x2 max pool */
    size_t off, offk;    /* int32 tap offsets: forward pair taps; dweight's and dinp's taps */
    size_t wr, wx, bias; /* packed weights: forward, dinp; bias */
    size_t x8, xb, o8, db, dx8, p8, acc, total;
    int transposed; /* dinp as a forward conv of dout (stride 1, same padding): workspace t_* */
    int round_dout; /* backward: dout rounded to bf16 (dt_round_bf16) as it is read; plan: 0 */
    size_t t_w, t_wr, t_off, t_bias, t_xb, t_o8;
} dt_bc_plan;

/* The per-ISA table (isa/bf16_lanes.c). The kernels' contracts are those of the dt_bf16conv_*
 * functions below, with a plan made by this table's plan and plan->total floats of ws. */
struct dt_kbf16conv {
    void (*plan)(dt_bc_plan *q, int C, int H, int W, int OC, int KH, int KW, int stride, int pad);
    void (*forward)(const dt_bc_plan *q, float *out, int32_t *code, const float *inp,
                    const float *weight, const float *bias, int N, float *ws);
    void (*backward)(const dt_bc_plan *q, float *dinp, float *dweight, float *dbias,
                     const float *dout, const int32_t *code, const float *inp, const float *weight,
                     int N, int accum, float *ws);
};
extern const struct dt_kbf16conv dt_kbf16conv_generic, dt_kbf16conv_avx2, dt_kbf16conv_avx2w16,
    dt_kbf16conv_avx512, dt_kbf16conv_avx512bf16;

#endif
