/*
 * layers/batchnorm.h - the [batchnorm] layer kind: torch.nn.BatchNorm1d/2d, or SyncBatchNorm
 * through the step context's reduction (layer.h), with the SWA statistics refresh.
 */
#ifndef DT_LAYERS_BATCHNORM_H
#define DT_LAYERS_BATCHNORM_H

#include "layer.h"

extern const dt_layer_ops dt_batchnorm_ops;

#endif
