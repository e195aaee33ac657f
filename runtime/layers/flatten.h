/*
 * layers/flatten.h - the [flatten] layer kind: torch.nn.Flatten, a view (no memory, no work).
 */
#ifndef DT_LAYERS_FLATTEN_H
#define DT_LAYERS_FLATTEN_H

#include "layer.h"

extern const dt_layer_ops dt_flatten_ops;

#endif
