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

/* Of net's conv layers, how many there are (*convs) and how many kernels.conv puts on oneDNN in
 * precision bf16 (1) or not (0) at its largest batch (kernels/conv_dnnl.h: dt_dnnl_conv_wanted;
 * fused conv + ReLU + pool groups stay on dtrain's kernels). For run headers. */
int dt_conv_count_onednn(const dt_net *net, int bf16, int *convs);

#endif
