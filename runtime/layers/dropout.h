/*
 * layers/dropout.h - the [dropout] layer kind: torch.nn.Dropout(p), inverted; masks keyed by
 * (seed, rank, step, layer) of the step context (dt_rng_key).
 */
#ifndef DT_LAYERS_DROPOUT_H
#define DT_LAYERS_DROPOUT_H

#include "layer.h"

extern const dt_layer_ops dt_dropout_ops;

#endif
