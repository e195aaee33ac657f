/*
 * layers/scale.h - the [scale] layer kind: out = factor * input (resnet9's logit scale).
 */
#ifndef DT_LAYERS_SCALE_H
#define DT_LAYERS_SCALE_H

#include "layer.h"

extern const dt_layer_ops dt_scale_ops;

#endif
