/*
 * layers/linear.h - the [linear] layer kind: torch.nn.Linear(in, out, bias).
 */
#ifndef DT_LAYERS_LINEAR_H
#define DT_LAYERS_LINEAR_H

#include "layer.h"

extern const dt_layer_ops dt_linear_ops;

#endif
