/*
 * net.h - a network: an ordered list of layers built from a model description (models/NAME.cfg,
 * see ini.h), owning ONE flat parameter buffer and ONE flat gradient buffer of the same layout,
 * and an activation arena sized at build time for `max_batch` samples (no malloc in a step).
 *
 * Parameter layout: tensors in layer order, each contiguous, with PyTorch's shape convention
 * (linear weight (OUT, IN)) and state_dict name ("fc1.weight"). Backward finishes layers from the
 * last to the first, so the gradients it finishes always form a contiguous tail of the flat buffer:
 * a bucketed allreduce can start on [off, numel) as soon as the layer at `off` is done.
 *
 * Activations are (N, C, H, W) per layer, float32, row-major.
 *
 * The net knows no trainer and no MPI: what a forward or backward needs of the run around it
 * (dropout keys, SyncBatchNorm's reduction, the gradient-ready hook) comes in a dt_step_ctx
 * (layer.h). The layer kinds and the graph passes are the registry's (layers/registry.h); the
 * layer API they are written against is layer.h.
 */
#ifndef DT_NET_H
#define DT_NET_H

#include <stddef.h>
#include <stdint.h>

#include "layer.h" /* struct dt_net, dt_layer, dt_param, dt_step_ctx and the layer API */

/* Builds a net from a model spec: a built-in name ("mlp") or a path to a .cfg file (anything with
 * a '/' or ending in ".cfg"). The input shape and class count of the description must equal
 * (in_c, in_h, in_w, classes) when those are > 0. Parameters are zero until dt_net_init.
 * Returns 0 and *out, or DT_ERR naming the file, line and key. */
int dt_net_build(dt_net **out, const char *spec, int max_batch);
/* The same, built for inputs of shape (c, h, w) instead of the description's `input` (every layer
 * derives its shape from its input, so one description serves 1x28x28 and 3x32x32 data). */
int dt_net_build_for(dt_net **out, const char *spec, int max_batch, int c, int h, int w);
/* The same with build options (layer.h dt_net_opts; NULL: the defaults, as dt_net_build_for):
 * whether the graph passes fuse layers, whether activation gradients whose lifetimes in backward
 * do not overlap share memory. Both defaults are on; tests build the plain net to compare. */
int dt_net_build_opts(dt_net **out, const char *spec, int max_batch, int c, int h, int w,
                      const dt_net_opts *opts);
void dt_net_free(dt_net *net);

/* Names of the built-in models, comma separated. */
const char *dt_net_builtin_names(void);
/* Text of a built-in model description, or NULL. */
const char *dt_net_builtin_text(const char *name);

/* PyTorch-default initialization, bitwise equal to torch.manual_seed(seed) followed by building
 * the equivalent torch.nn modules in layer order (uniform_ consumes MT19937 words the same way). */
void dt_net_init(dt_net *net, uint64_t seed);

/* Low-precision emulation (lowp.h): DT_FP32, DT_BF16 or DT_FP16 for the forwards and backwards
 * that follow. */
void dt_net_set_precision(dt_net *net, int format);

/* Forward over N <= max_batch samples; returns the logits (N, classes). In low precision
 * (dt_net_set_precision) x is rounded to the format in place. ctx: the step around it (dropout
 * keys, SyncBatchNorm, a BN refresh pass); NULL: one process, seed 0, step 0. */
float *dt_net_forward(dt_net *net, const float *x, int N, int train, const dt_step_ctx *ctx);
/* Where the loss writes d(loss)/d(logits) (N, classes) before dt_net_backward. */
float *dt_net_dlogits(dt_net *net);
/* Backward: fills net->grad completely (overwrites; no zero_grad needed). ctx: the forward's
 * (SyncBatchNorm), plus ctx->grad_ready, called after each layer with parameters (NULL: none). */
void dt_net_backward(dt_net *net, int N, const dt_step_ctx *ctx);

/* Whether the net has layers with a statistics refresh (BatchNorm). */
int dt_net_has_refresh(const dt_net *net);
/* Calls every layer's refresh hook with `phase` (see dt_layer_ops.refresh). */
void dt_net_refresh(dt_net *net, int phase);
/* Where a BatchNorm refresh pass gets its data: fills *x with batch b (b = 0, 1, ...) and returns
 * its sample count (<= max_batch), or 0 after the last batch. */
typedef int (*dt_net_feed_fn)(void *ud, int64_t b, const float **x);
/* torch.optim.swa_utils.update_bn: when the net has layers with a refresh (BatchNorm), resets
 * their accumulators, runs training-mode forwards over every batch feed gives (with
 * ctx->bn_refresh set: batch statistics summed over the processes by ctx->allreduce_sum, the
 * running statistics untouched), then sets the running statistics to the mean and unbiased
 * variance over the whole pass. ctx: the processes' reduction (NULL: one process). Returns 1
 * when it refreshed, 0 when the net has nothing to refresh (feed is not called). */
int dt_net_bn_refresh(dt_net *net, dt_net_feed_fn feed, void *ud, const dt_step_ctx *ctx);

/* Prints a one-line-per-layer summary (rank 0 uses it at start). */
void dt_net_print(const dt_net *net, void *file);

#endif
