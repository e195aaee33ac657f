/*
 * layers.h - the registry of layer kinds a model description can name.
 */
#ifndef DT_LAYERS_H
#define DT_LAYERS_H

#include "net.h"

/* The ops table of a kind by its section name, or NULL. */
const dt_layer_ops *dt_layer_kind(const char *kind);
/* All kind names, comma separated, for messages. */
const char *dt_layer_kinds(void);

/* Kinds defined in layers_cnn.c. */
extern const dt_layer_ops dt_conv_ops, dt_maxpool_ops, dt_avgpool_ops, dt_gap_ops,
    dt_batchnorm_ops, dt_dropout_ops, dt_add_ops, dt_scale_ops;

/* Fuses [conv] -> [relu] -> [maxpool] size 2 (each tensor used once, the conv on the batch-lane
 * kernels) into one kernel: the conv layer then does the three layers' forward and backward, and
 * the relu and maxpool layers are marked fused (skipped; their own buffers are not written).
 * Called by dt_net_build after the shapes are known. dt_layers_set_fusion(0) turns it off for
 * nets built afterwards (tests compare both); returns the previous setting. */
void dt_layers_fuse(dt_net *net);
int dt_layers_set_fusion(int on);

/* Fills x[0..n) like torch.Tensor.uniform_(from, to) on CPU for float32 from generator g. */
void dt_uniform_fill(float *x, size_t n, double from, double to, dt_mt19937 *g);

#endif
