/*
 * layers/registry.c - the list of layer kinds and the graph passes (registry.h).
 */
#include "registry.h"

#include <stdlib.h>
#include <string.h>

#include "add.h"
#include "batchnorm.h"
#include "common.h"
#include "conv.h"
#include "dropout.h"
#include "flatten.h"
#include "linear.h"
#include "pool.h"
#include "relu.h"
#include "scale.h"

static const dt_layer_ops *const kinds[] = {
    &dt_linear_ops,  &dt_relu_ops,    &dt_flatten_ops, &dt_conv_ops,
    &dt_maxpool_ops, &dt_avgpool_ops, &dt_gap_ops,     &dt_batchnorm_ops,
    &dt_dropout_ops, &dt_add_ops,     &dt_scale_ops,
};
enum { NKINDS = sizeof kinds / sizeof kinds[0] };

const dt_layer_ops *dt_layer_kind(const char *kind)
{
    for (int i = 0; i < NKINDS; i++)
        if (strcmp(kinds[i]->kind, kind) == 0)
            return kinds[i];
    return NULL;
}

const char *dt_layer_kinds(void)
{
    static char buf[256];
    if (!buf[0])
        for (int i = 0; i < NKINDS; i++) {
            if (i)
                strncat(buf, ", ", sizeof buf - strlen(buf) - 1);
            strncat(buf, kinds[i]->kind, sizeof buf - strlen(buf) - 1);
        }
    return buf;
}

/* ---- fusion passes ---- */

/* uses[i + 1]: how many layers read layer i's output (uses[0]: the net's input); a tensor inside
 * a fused group must have exactly one reader. Freed by the caller. */
static int *consumers(const dt_net *net)
{
    int *uses = dt_xcalloc((size_t)net->nlayers + 1, sizeof *uses);
    for (int i = 0; i < net->nlayers; i++) {
        const dt_layer *l = &net->layers[i];
        uses[l->input + 1]++;
        if (l->input2 >= -1)
            uses[l->input2 + 1]++;
    }
    return uses;
}

/* [conv] -> [relu] -> [maxpool] size 2 as one kernel */

static void fuse_conv_relu_pool(dt_net *net)
{
    int *uses = consumers(net);
    for (int i = 0; i + 2 < net->nlayers; i++) {
        dt_layer *cv = &net->layers[i], *r = &net->layers[i + 1], *mp = &net->layers[i + 2];
        if (cv->ops != &dt_conv_ops || r->ops != &dt_relu_ops || mp->ops != &dt_maxpool_ops ||
            r->input != i || mp->input != i + 1 || uses[i + 1] != 1 || uses[i + 2] != 1)
            continue;
        int k, stride, pad;
        dt_pool_window(mp, &k, &stride, &pad);
        if (k != 2 || stride != 2 || pad != 0 || !dt_conv_fuse_relu_pool2(net, cv, i + 2))
            continue;
        r->fused = mp->fused = 1;
    }
    free(uses);
}

/* [batchnorm] -> [add] -> [relu] as one (a residual block's end): one of the add's inputs the
 * BatchNorm, read by it alone (a downsampling block's shortcut BatchNorm is its second), its
 * output by the ReLU alone */

static void fuse_bn_add_relu(dt_net *net)
{
    int *uses = consumers(net);
    for (int i = 0; i + 2 < net->nlayers; i++) {
        dt_layer *bn = &net->layers[i], *ad = &net->layers[i + 1], *r = &net->layers[i + 2];
        if (bn->ops != &dt_batchnorm_ops || ad->ops != &dt_add_ops || r->ops != &dt_relu_ops ||
            bn->fused || ad->fused || r->fused || (ad->input == i) == (ad->input2 == i) ||
            r->input != i + 1 || uses[i + 1] != 1 || uses[i + 2] != 1 ||
            !dt_bn_fuse_add_relu(bn, i + 1, i + 2))
            continue;
        ad->fused = r->fused = 1;
    }
    free(uses);
}

/* [batchnorm] -> [relu] as one pass over memory (resnets) */

static void fuse_bn_relu(dt_net *net)
{
    int *uses = consumers(net);
    for (int i = 0; i + 1 < net->nlayers; i++) {
        dt_layer *bn = &net->layers[i], *r = &net->layers[i + 1];
        if (bn->ops != &dt_batchnorm_ops || r->ops != &dt_relu_ops || r->fused || r->input != i ||
            uses[i + 1] != 1 || !dt_bn_fuse_relu(bn, i + 1))
            continue;
        r->fused = 1;
    }
    free(uses);
}

void dt_layers_passes(dt_net *net)
{
    if (!net->opts.no_fusion) {
        fuse_conv_relu_pool(net);
        fuse_bn_add_relu(net);
        fuse_bn_relu(net);
    }
}
