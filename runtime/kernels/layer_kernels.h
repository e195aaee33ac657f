/*
 * layer_kernels.h - the math of the convolutional-network layers as plain functions over raw float
 * arrays (llm.c style), the companion of kernels.h: conv2d (conv.c), max/avg/global-average pooling
 * (pool.c), batch norm with a synchronized-statistics split (batchnorm.c), dropout and the residual
 * add (dropout.c). Each fast kernel that is not a plain loop has a naive _ref kernel beside it that
 * tests use as the oracle (tests/test_layers.c); PyTorch 1.13 reference values are checked by
 * tests/test_torch_layers.c.
 *
 * Conventions: NCHW, row-major, float32. N batch, C input channels, H W input size, OC output
 * channels, OH OW output size, KH KW kernel size; conv weight (OC, C, KH, KW) like torch.nn.Conv2d.
 * out/inp activations, dout/dinp their gradients, dweight/dbias parameter gradients.
 * Backward kernels OVERWRITE dweight/dbias (one backward per step, so no zero_grad is needed) and
 * either overwrite (accum = 0) or add into (accum = 1) dinp; dinp may be NULL when the input needs
 * no gradient (first layer). Kernels never allocate: scratch memory is a caller-provided workspace
 * `ws` whose size in floats a _ws_floats function gives. Shapes that make no sense (non-positive
 * sizes, an empty output) are bugs: DT_ASSERT aborts.
 */
#ifndef DT_LAYER_KERNELS_H
#define DT_LAYER_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* ---- sizes ---- */

/* Output size of a convolution or a (floor mode) pooling window along one dimension, as torch:
 * floor((in + 2 pad - k) / stride) + 1. Can be <= 0 for a window larger than the padded input;
 * the kernels assert that it is positive. */
int dt_conv_out_size(int in, int k, int stride, int pad);

/* ---- conv2d: torch.nn.Conv2d(C, OC, (KH, KW), stride, pad), groups 1, dilation 1 ----
 * The same stride and zero padding on both spatial dimensions; OH = dt_conv_out_size(H, KH, ...),
 * OW = dt_conv_out_size(W, KW, ...). inp (N, C, H, W), weight (OC, C, KH, KW), bias (OC),
 * out (N, OC, OH, OW). N * OH * OW and C * KH * KW must fit an int (BLAS dimensions). */

/* Which kernels a conv call uses. dt_conv2d_forward, _backward, _ws_floats and the fused
 * relu_pool2 calls take the kernel table in use (dt_kern_get, isa.h) and DT_CONV_AUTO; their _with
 * variants (tests, benchmarks) take them from o (o = NULL: the same as the plain call):
 *   path DT_CONV_AUTO  the ISA's batch-lane kernels (runtime/kernels/isa/lanes.c: 4, 8 or 16
 *                      images in the lanes of a vector) where the plan finds them faster (small
 *                      layers), else im2col + sgemm or the direct few-tap path;
 *        DT_CONV_GEMM  never the batch-lane kernels;
 *        DT_CONV_LANES the batch-lane kernels for every shape;
 *   kern  the ISA's kernel table (dt_kern_table(isa); NULL: dt_kern_get()).
 * The workspace size depends on both: size it with the same o. */
enum { DT_CONV_AUTO = 0, DT_CONV_GEMM = 1, DT_CONV_LANES = 2 };
struct dt_kern;
typedef struct {
    int path;
    const struct dt_kern *kern;
} dt_conv_opts;

/* Floats of workspace dt_conv2d_forward and dt_conv2d_backward need for this shape (the same
 * number for both; about 1 to 2 MB whatever N on the im2col path, as the kernels work through the
 * batch in chunks of images whose im2col matrix stays in cache; the batch-lane kernels add one
 * part per pool thread and the weight-gradient sums of each chunk of 16 images). Size it after
 * the thread pool is started (kernels/tpool.h): a call on more threads than it was sized for
 * overruns it. */
size_t dt_conv2d_ws_floats(int N, int C, int H, int W, int OC, int KH, int KW, int stride, int pad);
size_t dt_conv2d_ws_floats_with(const dt_conv_opts *o, int N, int C, int H, int W, int OC, int KH,
                                int KW, int stride, int pad);

/* out = conv(inp, weight) + bias; bias may be NULL. ws: dt_conv2d_ws_floats floats, contents
 * undefined on entry and exit. The batch-lane kernels, or im2col + sgemm with the images of a
 * chunk side by side (one sgemm over the whole batch when it fits the chunk; 1x1, stride 1, pad 0:
 * a layout permute instead of im2col). out must not alias inp or ws. */
void dt_conv2d_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                       int C, int H, int W, int OC, int KH, int KW, int stride, int pad, float *ws);
void dt_conv2d_forward_with(const dt_conv_opts *o, float *out, const float *inp,
                            const float *weight, const float *bias, int N, int C, int H, int W,
                            int OC, int KH, int KW, int stride, int pad, float *ws);
/* dweight (OC, C, KH, KW) = correlation of dout with inp; dbias (OC) = sum of dout over N, OH, OW;
 * dinp (N, C, H, W) (+)= transposed convolution of dout with weight. dbias and dinp may be NULL
 * (dweight may not). ws as for the forward (it need not hold anything from the forward: im2col is
 * recomputed). */
void dt_conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int N, int C, int H, int W, int OC,
                        int KH, int KW, int stride, int pad, int accum, float *ws);
void dt_conv2d_backward_with(const dt_conv_opts *o, float *dinp, float *dweight, float *dbias,
                             const float *dout, const float *inp, const float *weight, int N, int C,
                             int H, int W, int OC, int KH, int KW, int stride, int pad, int accum,
                             float *ws);
/* conv -> ReLU -> MaxPool2d(2, 2) in one pass over each block of images (the batch-lane
 * kernels, so the conv and ReLU outputs never leave the cache), with the results of the three
 * separate kernels bitwise: pout (N, OC, OH/2, OW/2) = dt_maxpool_forward(relu(conv)).
 * code (dt_conv2d_relu_pool2_code_size int32) records, per pooled value, where its gradient goes
 * (the window position of the maximum, or none when ReLU passes none); the backward takes the
 * pooled gradient dpout with it and gives what the three separate backwards give (dinp (+)=,
 * dweight and dbias =). _ok: 1 when this shape takes the batch-lane kernels with these options
 * (the fused kernels assert it) and the output is at least 2x2. Workspace: dt_conv2d_ws_floats
 * (with the same options). round_to (16-bit training: DT_BF16 or DT_FP16 of lowp.h; 0 none): the
 * conv's outputs are rounded to that format before the ReLU and the pool, as 16-bit training
 * rounds each separate layer's input, so that a tie after rounding picks the pixel the separate
 * layers pick (the pooled values are the same either way: rounding is monotonic). */
int dt_conv2d_relu_pool2_ok(int N, int C, int H, int W, int OC, int KH, int KW, int stride,
                            int pad);
int dt_conv2d_relu_pool2_ok_with(const dt_conv_opts *o, int N, int C, int H, int W, int OC, int KH,
                                 int KW, int stride, int pad);
size_t dt_conv2d_relu_pool2_code_size(int N, int OC, int OH, int OW);
void dt_conv2d_relu_pool2_forward(float *pout, int32_t *code, const float *inp, const float *weight,
                                  const float *bias, int N, int C, int H, int W, int OC, int KH,
                                  int KW, int stride, int pad, int round_to, float *ws);
void dt_conv2d_relu_pool2_forward_with(const dt_conv_opts *o, float *pout, int32_t *code,
                                       const float *inp, const float *weight, const float *bias,
                                       int N, int C, int H, int W, int OC, int KH, int KW,
                                       int stride, int pad, int round_to, float *ws);
void dt_conv2d_relu_pool2_backward(float *dinp, float *dweight, float *dbias, const float *dpout,
                                   const int32_t *code, const float *inp, const float *weight,
                                   int N, int C, int H, int W, int OC, int KH, int KW, int stride,
                                   int pad, int accum, float *ws);
void dt_conv2d_relu_pool2_backward_with(const dt_conv_opts *o, float *dinp, float *dweight,
                                        float *dbias, const float *dpout, const int32_t *code,
                                        const float *inp, const float *weight, int N, int C, int H,
                                        int W, int OC, int KH, int KW, int stride, int pad,
                                        int accum, float *ws);

/* Direct-convolution references (loops, double accumulation), same contracts, no workspace. */
void dt_conv2d_forward_ref(float *out, const float *inp, const float *weight, const float *bias,
                           int N, int C, int H, int W, int OC, int KH, int KW, int stride, int pad);
void dt_conv2d_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, int N, int C, int H, int W,
                            int OC, int KH, int KW, int stride, int pad, int accum);

/* ---- pooling over each (n, c) plane, K x K window; OH = dt_conv_out_size(H, K, stride, pad) */

/* torch.nn.MaxPool2d(K, stride, pad) (floor mode, dilation 1; torch's default stride is K, the
 * caller passes it explicitly). Padding never wins (it is -inf); ties go to the first element in
 * row-major window order and NaN propagates, as in torch. out (N, C, OH, OW); argmax (N, C, OH, OW)
 * receives the index h * W + w of the maximum within its (H, W) plane (torch's return_indices).
 * Asserts pad <= K / 2 (torch's rule, so no window is all padding). */
void dt_maxpool_forward(float *out, int32_t *argmax, const float *inp, int N, int C, int H, int W,
                        int K, int stride, int pad);
void dt_maxpool_forward_ref(float *out, int32_t *argmax, const float *inp, int N, int C, int H,
                            int W, int K, int stride, int pad);
/* dinp (N, C, H, W) (+)= dout (N, C, OH, OW) routed to the argmax positions (overlapping windows
 * add up). dinp must not be NULL. */
void dt_maxpool_backward(float *dinp, const float *dout, const int32_t *argmax, int N, int C, int H,
                         int W, int OH, int OW, int accum);

/* torch.nn.AvgPool2d(K, stride, pad) with count_include_pad=True, floor mode: every window is
 * divided by K * K (in floor mode no window reaches past the padding). Asserts pad <= K / 2. */
void dt_avgpool_forward(float *out, const float *inp, int N, int C, int H, int W, int K, int stride,
                        int pad);
void dt_avgpool_forward_ref(float *out, const float *inp, int N, int C, int H, int W, int K,
                            int stride, int pad);
/* dinp (N, C, H, W) (+)= dout / (K * K) spread over each window's in-bounds part. */
void dt_avgpool_backward(float *dinp, const float *dout, int N, int C, int H, int W, int K,
                         int stride, int pad, int accum);
void dt_avgpool_backward_ref(float *dinp, const float *dout, int N, int C, int H, int W, int K,
                             int stride, int pad, int accum);

/* Global average pool, torch.nn.AdaptiveAvgPool2d(1) + flatten: out (N, C) = mean over the HW
 * values of each plane of inp (N, C, HW). The backward spreads dout / HW: dinp (N, C, HW).
 * lanes L > 0: inp and dinp in the lane layout (blocks of L images as (C, HW, L); N a multiple
 * of L), out and dout (N, C) as always; the bits of lanes 0. */
void dt_gap_forward(float *out, const float *inp, int N, int C, int HW, int lanes);
void dt_gap_backward(float *dinp, const float *dout, int N, int C, int HW, int accum, int lanes);

/* ---- batch norm: torch.nn.BatchNorm1d over (N, C) (pass HW = 1) and BatchNorm2d over
 * (N, C, H, W) (HW = H * W), and SyncBatchNorm ----
 * Training is split so that a synchronized BN can sum per-channel statistics over ranks:
 *     dt_bn_stats -> [MPI_Allreduce(sum, sumsq; count)] -> dt_bn_forward_train
 *     dt_bn_backward_reduce -> [MPI_Allreduce into global sums] -> dt_bn_backward
 * With one rank (plain BatchNorm) the "global" sums are the local ones and count = N * HW.
 * count is M, the number of values per channel over all ranks; the kernels assert M > 1 in
 * training (torch: "Expected more than 1 value per channel when training").
 * weight/bias (C) may be NULL (affine=False: weight 1, bias 0). save_mean/save_invstd (C) are what
 * the forward leaves for the backward.
 * A ReLU fused after the BatchNorm (layers/batchnorm.c): the forwards' relu = 1 writes
 * max(out, 0) (dt_relu_forward's values) instead of out; the backwards' relu_out (the ReLU's
 * output, as inp) makes dout the ReLU's output gradient, and they use dt_relu_backward's gradient
 * (relu_out > 0 ? dout : 0) in its place without writing it: the same bits as the two layers.
 * relu 0, relu_out NULL: BatchNorm alone.
 * lanes 0: the tensors are (N, C, HW); lanes L > 0 (N a multiple of L): the lane layout of the
 * bf16 convolutions (net.h), blocks of L images as (C, HW, L), with the bits of (N, C, HW). */

/* sum[c] = sum of inp over n and HW, sumsq[c] = sum of inp^2, both (C), in double. N may be 0 (a
 * rank without samples contributes zeros). */
void dt_bn_stats(double *sum, double *sumsq, const float *inp, int N, int C, int HW, int lanes);
/* The work space of the kernels below for batches of up to N images of C channels (they split
 * BatchNorm2d by images over the pool, with per-image partial sums): called when a net is built,
 * so that no step allocates; a larger call grows it. */
void dt_bn_reserve(int N, int C);
/* Training forward with the batch statistics of sum/sumsq/count (local or allreduced):
 *   mean = sum / M, var = sumsq / M - mean^2 (biased, clamped at 0), invstd = 1 / sqrt(var + eps),
 *   out = (inp - mean) * invstd * weight + bias;
 *   save_mean = mean, save_invstd = invstd;
 *   running_mean = (1 - momentum) running_mean + momentum mean,
 *   running_var  = (1 - momentum) running_var  + momentum var * M / (M - 1)   (unbiased).
 * running_mean/running_var may be NULL (track_running_stats=False: nothing updated). In a
 * synchronized BN every rank passes the same sums and count, so all ranks' running stats agree. */
void dt_bn_forward_train(float *out, float *save_mean, float *save_invstd, float *running_mean,
                         float *running_var, const float *inp, const float *weight,
                         const float *bias, const double *sum, const double *sumsq, double count,
                         int N, int C, int HW, float eps, float momentum, int flags, int lanes,
                         const void *res);
/* Evaluation: out = (inp - running_mean) / sqrt(running_var + eps) * weight + bias. */
void dt_bn_forward_eval(float *out, const float *inp, const float *running_mean,
                        const float *running_var, const float *weight, const float *bias, int N,
                        int C, int HW, float eps, int flags, int lanes, const void *res);
/* The forwards' flags: DT_BN_RELU a fused ReLU on the output (max(out, 0)), DT_BN_ROUND the output
 * (after the ReLU) rounded to bfloat16 as dt_round_bf16 rounds (bf16 activations, net_act.h). */
/* DT_BN_ADD (with the forwards' res): BatchNorm, a residual add and a ReLU as one pass,
 * max(out + res, 0), out (and the sum, DT_BN_ROUND) rounded as the separate layers would
 * (layers/batchnorm.c's fusion; DT_BN_RELU then unused); DT_BN_RES16: res is the residual's
 * bf16 copy (uint16_t, net_act.h), widened as it is read */
enum { DT_BN_RELU = 1, DT_BN_ROUND = 2, DT_BN_ADD = 4, DT_BN_RES16 = 8 };
/* Local per-channel sums for the backward (C), in double: sum_dy = sum dout,
 * sum_dy_xhat = sum dout * xhat with xhat = (inp - save_mean) * save_invstd. rnd 1 (here and in
 * dt_bn_backward): dout read rounded to bfloat16 (kernels/elem.h). */
void dt_bn_backward_reduce(double *sum_dy, double *sum_dy_xhat, const float *dout, const float *inp,
                           const float *save_mean, const float *save_invstd, int N, int C, int HW,
                           const float *relu_out, int rnd, int lanes);
/* PyTorch SyncBatchNorm's backward (torch/nn/modules/_functions.py, batch_norm_backward_elemt):
 *   dweight = local sum_dy_xhat, dbias = local sum_dy (the data-parallel gradient averaging of
 *   the caller does the rest; either may be NULL),
 *   dinp (+)= weight * invstd * (dy - global_sum_dy / M - xhat * global_sum_dy_xhat / M).
 * With one rank (local == global) this is plain BatchNorm's backward. dinp may be NULL.
 * A backward through eval-mode BN (frozen statistics) is this call with save_mean = running_mean,
 * save_invstd = 1 / sqrt(running_var + eps) and global sums of zero.
 * din2 (not NULL; with relu_out): (=|+= accum2) dout masked by relu_out, dt_relu_backward's
 * values: the gradient of a fused residual add's second input (layers/batchnorm.c), written
 * image by image with the rest where the work is split by images. */
void dt_bn_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                    const float *save_mean, const float *save_invstd, const float *weight,
                    const double *local_sum_dy, const double *local_sum_dy_xhat,
                    const double *global_sum_dy, const double *global_sum_dy_xhat, double count,
                    int N, int C, int HW, int accum, const float *relu_out, int rnd, int lanes,
                    float *din2, int accum2);
/* dt_bn_backward_reduce and dt_bn_backward with inp and relu_out read from their bf16 copies
 * (bf16 activations, net_act.h; relu_out NULL: none): the bits the float calls give on the
 * copies' values, without those floats in memory */
void dt_bn_backward_reduce_h(double *sum_dy, double *sum_dy_xhat, const float *dout,
                             const uint16_t *inp, const float *save_mean, const float *save_invstd,
                             int N, int C, int HW, const uint16_t *relu_out, int rnd, int lanes);
void dt_bn_backward_h(float *dinp, float *dweight, float *dbias, const float *dout,
                      const uint16_t *inp, const float *save_mean, const float *save_invstd,
                      const float *weight, const double *local_sum_dy,
                      const double *local_sum_dy_xhat, const double *global_sum_dy,
                      const double *global_sum_dy_xhat, double count, int N, int C, int HW,
                      int accum, const uint16_t *relu_out, int rnd, int lanes, float *din2,
                      int accum2);

/* ---- dropout: torch.nn.Dropout(p), inverted (training mode; in eval it is the identity) ---- */

/* mask[i] = 1 (keep, probability 1 - p) or 0, out = inp * mask / (1 - p) (the scale rounded to
 * float once, as torch). The mask is a pure function of (seed, i): a counter-based generator
 * (SplitMix64 of seed and i / 2), so the same seed gives the same mask whatever n or the caller's
 * threading. p = 0 is the identity (all kept), p = 1 gives zeros. Asserts 0 <= p <= 1. out may
 * alias inp. The stream is not torch's (its masks differ; the distribution is the same). */
void dt_dropout_forward(float *out, uint8_t *mask, const float *inp, long n, float p,
                        uint64_t seed);
/* dinp (+)= dout * mask / (1 - p). */
void dt_dropout_backward(float *dinp, const float *dout, const uint8_t *mask, long n, float p,
                         int accum);

/* ---- residual add ---- */

/* out = a + b elementwise over n values (out may alias a or b); rnd 1: rounded to bfloat16 as
 * dt_round_bf16 rounds. */
void dt_add_forward(float *out, const float *a, const float *b, long n, int rnd);
/* dinp (+)= dout: the gradient of each addend of a residual add (call once per addend); rnd 1:
 * dout read rounded to bfloat16 (kernels/elem.h). */
void dt_add_backward(float *dinp, const float *dout, long n, int accum, int rnd);

#endif
