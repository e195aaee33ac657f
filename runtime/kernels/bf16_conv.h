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
 * over images are fixed: pairwise over each chunk of 16 images, then the chunks in order), so
 * every ISA, generic included, and every thread count gives the same bits, and the native
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
    /* shared by the pool threads, written once per call: */
    size_t off, offk;    /* int32 tap offsets: forward pair taps; dweight's and dinp's taps */
    size_t wr, wx, bias; /* packed weights: forward, dinp; bias */
    size_t t_w, t_wr, t_off, t_bias; /* transposed input gradient: weights, offsets, zero bias */
    /* each pool thread's own, at these offsets + thread * thr (after the shared part): */
    size_t x8, xb, o8, db, dx8, p8, t_xb, t_o8, acc;
    size_t thr;     /* floats of a thread's part */
    size_t chunk;   /* floats of a chunk's weight and bias gradient sums (OC K + OC doubles) */
    size_t total;   /* floats for one thread and no chunk sums (the shape's size test) */
    int transposed; /* dinp as a forward conv of dout (stride 1, same padding): workspace t_* */
    int round_dout; /* backward: dout rounded to bf16 (dt_round_bf16) as it is read; plan: 0 */
    /* the lane layout (layer.h's dt_net.lanes, L = DT_W, N a multiple of it): the input and its
     * gradient (in_lanes), the output and its gradient (out_lanes) as blocks [C][H][W][L]; plan:
     * 0. Not with the fused pool. */
    int in_lanes, out_lanes;
} dt_bc_plan;

/* Images per chunk of the kernels' parallel loops (kernels/tpool.h): the batch is split into
 * chunks of this many images whatever the thread count and the lanes W; each chunk's weight and
 * bias gradients are a pairwise sum over its 16 images (in double), and the chunks' sums are added
 * in chunk order - so the bits depend neither on `threads` nor on the ISA's W. */
#define DT_BC_CHUNK 16

/* Workspace floats forward and backward need for N images on `threads` pool threads: the shared
 * part, each thread's part, the chunks' sums and room to align them. */
static inline size_t dt_bc_ws_floats(const dt_bc_plan *q, int N, int threads)
{
    return q->x8 + (size_t)threads * q->thr +
           (size_t)(N + DT_BC_CHUNK - 1) / DT_BC_CHUNK * q->chunk + 2;
}

/* The per-ISA table (isa/bf16_lanes.c). The kernels' contracts are those of the dt_bf16conv_*
 * functions below, with a plan made by this table's plan and dt_bc_ws_floats(plan, N, the pool's
 * threads) floats of ws. They split the batch over the pool in chunks of DT_BC_CHUNK images. */
struct dt_kbf16conv {
    void (*plan)(dt_bc_plan *q, int C, int H, int W, int OC, int KH, int KW, int stride, int pad);
    /* inp16 not NULL (forward and backward): the input read from its bf16 copy (net_act.h)
     * instead of inp (NULL then): the same bits */
    void (*forward)(const dt_bc_plan *q, float *out, int32_t *code, const float *inp,
                    const uint16_t *inp16, const float *weight, const float *bias, int N,
                    float *ws);
    void (*backward)(const dt_bc_plan *q, float *dinp, float *dweight, float *dbias,
                     const float *dout, const int32_t *code, const float *inp,
                     const uint16_t *inp16, const float *weight, int N, int accum, float *ws);
};
extern const struct dt_kbf16conv dt_kbf16conv_generic, dt_kbf16conv_avx2, dt_kbf16conv_avx2w16,
    dt_kbf16conv_avx512, dt_kbf16conv_avx512bf16;

#endif
