/*
 * layers/relu.h - the [relu] layer kind: torch.nn.ReLU.
 */
#ifndef DT_LAYERS_RELU_H
#define DT_LAYERS_RELU_H

#include "layer.h"

extern const dt_layer_ops dt_relu_ops;

#endif
