/*
 * layers/pool.h - the pooling layer kinds: [maxpool], [avgpool] (torch.nn.MaxPool2d /
 * AvgPool2d(size, stride = size, padding)) and [gap] (AdaptiveAvgPool2d(1)).
 */
#ifndef DT_LAYERS_POOL_H
#define DT_LAYERS_POOL_H

#include "layer.h"

extern const dt_layer_ops dt_maxpool_ops, dt_avgpool_ops, dt_gap_ops;

/* The window of a [maxpool] / [avgpool] layer after setup: size, stride, padding. */
void dt_pool_window(const dt_layer *l, int *k, int *stride, int *pad);

#endif
