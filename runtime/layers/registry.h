/*
 * layers/registry.h - the registry of layer kinds a model description can name, and the graph
 * passes over a built net that know the kinds (the conv -> relu -> maxpool fusion). net.c asks
 * the registry for a kind by its section name and runs its passes; it names no kind itself.
 */
#ifndef DT_LAYERS_REGISTRY_H
#define DT_LAYERS_REGISTRY_H

#include "layer.h"

/* The ops table of a kind by its section name, or NULL. */
const dt_layer_ops *dt_layer_kind(const char *kind);
/* All kind names, comma separated, for messages. */
const char *dt_layer_kinds(void);

/* The graph passes, run by dt_net_build once the shapes, parameters and gradient accumulation
 * flags are known and before the activation arena is planned. Today one pass: fuses [conv] ->
 * [relu] -> [maxpool] size 2 (each tensor used once, the conv on the batch-lane kernels) into one
 * kernel: the conv layer then does the three layers' forward and backward, and the relu and
 * maxpool layers are marked fused (skipped; their own buffers are not written). A net built with
 * dt_net_opts.no_fusion (layer.h) gets no pass (tests compare both). */
void dt_layers_passes(dt_net *net);

#endif
