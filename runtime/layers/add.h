/*
 * layers/add.h - the [add] layer kind: a residual connection, out = input + from.
 */
#ifndef DT_LAYERS_ADD_H
#define DT_LAYERS_ADD_H

#include "layer.h"

extern const dt_layer_ops dt_add_ops;

#endif
