/*
 * lanes.h - the "lanes" kernel family (isa.h): batch-lane convolutions with W images side by side
 * in the W float lanes of a vector (W = 4 generic, 8 avx2, 16 avx2w16 and avx512), the fused
 * conv + ReLU + 2x2 max pool, and the per-ISA loops of conv.c's im2col and direct paths.
 * Internal to conv.c and its tests: code outside runtime/kernels/ calls layer_kernels.h.
 *
 * The kernels are runtime/kernels/isa/lanes.c (one object per ISA, see its header for the
 * layout, the tiles and the order of the arithmetic) and isa/lanes_conv.c (the helpers).
 */
#ifndef DT_KERNELS_LANES_H
#define DT_KERNELS_LANES_H

#include <stddef.h>
#include <stdint.h>

/* Everything the kernels derive from a shape (per block of `lanes` images). */
typedef struct {
    int lanes; /* W: images per block */
    int C, H, W, OC, KH, KW, stride, pad, OH, OW;
    int Hp, Wp;           /* padded input plane */
    int K;                /* taps C*KH*KW */
    int P;                /* output pixels OH*OW */
    int fc, fp;           /* forward tile: fc output channels x fp pixels */
    int wc, wt;           /* weight-gradient tile: wc output channels x wt taps */
    int xt, xp;           /* input-gradient tile: xt taps x xp pixels */
    int OCf, OCw, Kw, Kx; /* OC rounded up to fc and to wc, K rounded up to wt and to xt */
    int PH, PW, PP;       /* fused 2x2 max pool: OH/2 x OW/2 */
    int round_to;         /* fused forward: 0, or the format (lowp.h: DT_BF16, DT_FP16) the conv's
                           * outputs are rounded to before the ReLU and the pool (set per call) */
    size_t off, wr, wx, bias, xl, ol, dxl, pl, acc, total; /* workspace offsets, size (floats) */
    size_t thr;   /* floats of each further pool thread's part (xl .. acc) */
    size_t chunk; /* floats of each chunk's weight and bias gradient sums (doubles) */
} dt_lanes_plan;

/* Images per chunk of the kernels' parallel loops (kernels/tpool.h): the batch is split into
 * chunks of this many images whatever the thread count and the lanes W (16 is a multiple of every
 * W), each chunk sums its weight and bias gradients on its own, and the chunks' sums are added in
 * chunk order - so the bits depend neither on `threads` nor on the ISA's W. */
#define DT_LANES_CHUNK 16

static inline int dt_lanes_chunks(int N) { return (N + DT_LANES_CHUNK - 1) / DT_LANES_CHUNK; }

/* Workspace floats forward and backward need for N images on `threads` pool threads: q->total
 * (one thread's, what the AUTO choice of conv.c compares), further threads' parts, the chunks'
 * sums. */
static inline size_t dt_lanes_ws_floats(const dt_lanes_plan *q, int N, int threads)
{
    return q->xl + (size_t)threads * q->thr + (size_t)dt_lanes_chunks(N) * q->chunk + 2;
}

/* conv.c's im2col and direct-path loops (see conv.c for what each computes), per ISA. Their
 * results are bitwise the same on every ISA (copies, or 8-lane float sums in a fixed order). */
struct dt_kconvh {
    void (*copy_floats)(float *restrict d, const float *restrict s, size_t n);
    void (*copy_rows)(float *restrict dst, size_t dd, const float *restrict src, size_t ds,
                      int rows, int cols);
    void (*scatter_planes)(float *restrict dst, const float *restrict src, int nb, int C, size_t S,
                           size_t off, size_t len, const float *bias, int accum);
    double (*row_sum)(const float *x, size_t n);
    void (*direct_taps)(float *restrict acc, const float *restrict pin, const size_t *restrict off,
                        const float *restrict w, int T, float b, size_t L);
    void (*direct_taps2)(float *restrict acc0, float *restrict acc1, const float *restrict pin,
                         const size_t *restrict off, const float *restrict w0,
                         const float *restrict w1, int T, float b0, float b1, size_t L);
    void (*direct_dot3)(const float *restrict d, const float *restrict pin,
                        const size_t *restrict off, size_t L, double *restrict out);
    void (*direct_sum)(const float *restrict d, size_t L, double *restrict out);
};

/* Float lanes of the direct path's loops (a multiple of its 8-float vectors). */
#define DT_CONV_DIRECT_LANES 32

struct dt_klanes {
    int lanes; /* W */
    /* Fills q for torch.nn.Conv2d(C, OC, (KH, KW), stride, pad) (output size >= 1 asserted). */
    void (*plan)(dt_lanes_plan *q, int C, int H, int W, int OC, int KH, int KW, int stride,
                 int pad);
    /* dt_conv2d_forward's contract with q->total floats of ws; with code != NULL conv -> ReLU
     * -> MaxPool2d(2, 2) (dt_conv2d_relu_pool2_forward): out is then the pooled output and code
     * (ceil(N / lanes) * lanes * OC * PP int32, lanes layout) the window position of each
     * maximum (0..3, row-major) or 4 where it is not positive; with q->round_to the maxima are
     * those of the conv's outputs rounded to that format (what the separate layers compare). */
    void (*forward)(const dt_lanes_plan *q, float *out, int32_t *code, const float *inp,
                    const float *weight, const float *bias, int N, float *ws);
    /* dt_conv2d_backward's contract; with code != NULL dout is the pooled gradient and code
     * what the fused forward wrote. */
    void (*backward)(const dt_lanes_plan *q, float *dinp, float *dweight, float *dbias,
                     const float *dout, const int32_t *code, const float *inp, const float *weight,
                     int N, int accum, float *ws);
    const struct dt_kconvh *help;
};

/* the per-ISA tables (isa/lanes.c; each points at its ISA's dt_kconvh, isa/lanes_conv.c) */
extern const struct dt_klanes dt_klanes_generic, dt_klanes_avx2, dt_klanes_avx2w16,
    dt_klanes_avx512;

#endif
