/*
 * conv_dnnl.h - convolutions through oneDNN (Debian's libdnnl, the library PyTorch's CPU
 * convolutions run on), for the shapes where it beats dtrain's own kernels (bench/convs.sh:
 * the wide layers of resnet9; dtrain's kernels win every layer of lenet5, cnn and resnet20 but
 * resnet20's 64 -> 64, by a few percent there).
 *
 * The layer's tensors stay dtrain's: NCHW float32 in and out. Each call reorders them into the
 * layouts oneDNN's primitives ask for (nChw16c and the like; bf16 operands in bf16 training) and
 * back. Work is split into fixed chunks of DT_DNNL_CHUNK images over the thread pool, each chunk
 * one oneDNN call on one thread (OpenMP held to 1 thread there); the weight and bias gradients
 * are one float32 partial per chunk, summed in chunk order. So the result does not depend on the
 * thread count, bitwise; it depends on oneDNN's kernel, which oneDNN picks by CPU (capped at the
 * ISA the ranks agreed on, dt_dnnl_conv_set): the same bits for a given CPU and ISA, not across
 * CPUs.
 *
 * kernels.conv (config) = auto | dtrain | onednn picks the backend (dt_dnnl_conv_set); auto uses
 * oneDNN where dt_dnnl_conv_wanted says. Shapes and conventions: layer_kernels.h's conv2d.
 */
#ifndef DT_KERNELS_CONV_DNNL_H
#define DT_KERNELS_CONV_DNNL_H

#include <stddef.h>

#define DT_DNNL_CHUNK 32

typedef struct dt_dnnl_conv dt_dnnl_conv;

enum { DT_CONV_BACKEND_AUTO = 0, DT_CONV_BACKEND_DTRAIN = 1, DT_CONV_BACKEND_ONEDNN = 2 };
#define DT_CONV_BACKEND_CHOICES "auto|dtrain|onednn"

/* The backend asked for (config kernels.conv), and oneDNN's ISA capped at the kernel table in
 * use (dnnl_set_max_cpu_isa; before the first primitive). Once per process, after dt_kern_select. */
void dt_dnnl_conv_set(int backend);
/* The backend in use, and its name ("auto", "dtrain", "onednn"). */
int dt_dnnl_conv_backend(void);
const char *dt_dnnl_conv_backend_name(void);
/* 1: a conv of this shape runs on oneDNN (bf16: in bf16 training; own_ok: dtrain's kernels for
 * that precision take the shape, dt_bf16conv_ok in bf16): the backend is onednn, or auto and
 * oneDNN wins there on the table in use (bench/convs.sh): on the AVX-512 tables, C*KH*KW >= 1152
 * (128 input channels of a 3x3 and up: resnet9's wide layers; dtrain's kernels win or tie below,
 * and every layer of lenet5, cnn and resnet20 stays on them, their bits the same on every ISA),
 * and in bf16 (native vdpbf16ps only) also every shape dtrain's bf16 kernels do not take. */
int dt_dnnl_conv_wanted(int C, int KH, int KW, int bf16, int own_ok);

/* A conv's oneDNN state (primitives per chunk size, reorders, buffers), or NULL when oneDNN has
 * no kernel for it on this CPU but its reference code (then the caller runs dtrain's kernels). */
dt_dnnl_conv *dt_dnnl_conv_new(int C, int H, int W, int OC, int KH, int KW, int stride, int pad,
                               int bias, int bf16);
void dt_dnnl_conv_free(dt_dnnl_conv *c);
/* out (N, OC, OH, OW) = conv(inp, weight) + bias (bias NULL: none). bf16: inp and weight rounded to
 * bf16 (nearest even), products summed in float32. */
void dt_dnnl_conv_forward(dt_dnnl_conv *c, float *out, const float *inp, const float *weight,
                          const float *bias, int N);
/* dinp (+)= (accum) the input gradient (dinp NULL: none), dweight = the weight gradient, dbias
 * = the bias gradient (NULL: none); bf16: dout, inp and weight rounded to bf16. */
void dt_dnnl_conv_backward(dt_dnnl_conv *c, float *dinp, float *dweight, float *dbias,
                           const float *dout, const float *inp, const float *weight, int N,
                           int accum);
/* "oneDNN 2.6.3": the library's version, for run headers and checkpoints. Returns buf. */
const char *dt_dnnl_describe(char *buf, int size);

#endif
