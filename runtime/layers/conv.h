/*
 * layers/conv.h - the [conv] layer kind: torch.nn.Conv2d(C, out, kernel, stride, padding, bias).
 */
#ifndef DT_LAYERS_CONV_H
#define DT_LAYERS_CONV_H

#include "layer.h"

extern const dt_layer_ops dt_conv_ops;

/* Makes conv layer cv do the work of the [relu] after it and the [maxpool] size 2 at layer index
 * pool (the registry's fusion pass has checked the graph), when the fused kernel takes its shape.
 * Returns 1 when fused, 0 when not. */
int dt_conv_fuse_relu_pool2(dt_net *net, dt_layer *cv, int pool);

/* How many of net's conv layers kernels.conv puts on oneDNN in precision bf16 (1) or not (0) at
 * its largest batch (kernels/conv_dnnl.h: dt_dnnl_conv_wanted; fused conv + ReLU + pool groups
 * stay on dtrain's kernels), into buf: "7 of 8 convolutions on oneDNN 2.6.3" (the version only
 * when some run there: "0 of 2 convolutions on oneDNN"), or "no convolutions". Returns the number
 * of conv layers. For the run header and the checkpoints' kernels_conv, whose resume note compares
 * it: which layers run on oneDNN changes the bits. */
int dt_conv_where(const dt_net *net, int bf16, char *buf, size_t size);

#endif
