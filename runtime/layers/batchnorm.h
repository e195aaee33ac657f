/*
 * layers/batchnorm.h - the [batchnorm] layer kind: torch.nn.BatchNorm1d/2d, or SyncBatchNorm
 * through the step context's reduction (layer.h), with the SWA statistics refresh.
 */
#ifndef DT_LAYERS_BATCHNORM_H
#define DT_LAYERS_BATCHNORM_H

#include "layer.h"

extern const dt_layer_ops dt_batchnorm_ops;

/* Graph pass (registry.c): the [relu] layer at index relu, whose input is bn's output and its
 * only reader, is done by bn's kernels (forward: max(BatchNorm, 0) into the ReLU's output;
 * backward: from the ReLU's output gradient, masked by its output). 1: fused. */
int dt_bn_fuse_relu(dt_layer *bn, int relu);
/* [batchnorm] -> [add] (one of its inputs the BatchNorm) -> [relu] as one: the forward writes
 * max(BatchNorm + the add's other input, 0) into the ReLU's output (one pass where the rounding
 * allows: layers/batchnorm.c), the backward is BatchNorm's with the fused ReLU's mask, and writes
 * the add's other input's gradient too. 1: fused (a resnet's basic block's end). */
int dt_bn_fuse_add_relu(dt_layer *bn, int add, int relu);

#endif
