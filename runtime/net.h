/*
 * net.h - a network: an ordered list of layers built from a model description (models/NAME.cfg,
 * see ini.h), owning ONE flat parameter buffer and ONE flat gradient buffer of the same layout,
 * and an activation arena sized at build time for `max_batch` samples (no malloc in a step).
 *
 * Parameter layout: tensors in layer order, each contiguous, with PyTorch's shape convention
 * (linear weight (OUT, IN)) and state_dict name ("fc1.weight"). Backward finishes layers from the
 * last to the first, so the gradients it finishes always form a contiguous tail of the flat buffer:
 * a bucketed allreduce can start on [off, numel) as soon as the layer at `off` is done.
 *
 * Activations are (N, C, H, W) per layer, float32, row-major.
 */
#ifndef DT_NET_H
#define DT_NET_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "rng.h"

typedef struct dt_net dt_net;
typedef struct dt_layer dt_layer;

#define DT_NAME_MAX 64

/* Size limits of a model, checked with overflow-checked arithmetic while the net is built and
 * before anything of that size is allocated (an absurd `out = 16777216` is an error naming the
 * file and line, not an allocation failure). Parameters: at most 2^28 (1 GiB per fp32 buffer:
 * weights, gradients, each optimizer moment). One layer's output for the whole batch, and one
 * layer's workspace: fewer than 2^31 floats (the kernels index with int). The activation arena
 * (every layer's output and gradient at the batch size the net is built for): fewer than 2^33
 * floats (32 GiB; resnet9 at batch 512 needs 0.8 * 2^30). */
#define DT_NET_MAX_PARAMS ((size_t)1 << 28)
#define DT_NET_MAX_ARENA ((size_t)1 << 31)
#define DT_NET_MAX_ARENA_TOTAL ((size_t)1 << 33)

typedef struct dt_param {
    char name[DT_NAME_MAX]; /* PyTorch state_dict key, e.g. "fc1.weight" */
    int ndim;
    int shape[4];
    size_t numel;
    size_t off;             /* offset into net->param / net->grad (or net->state for buffers) */
    int is_bias;            /* a bias */
    int no_decay;           /* excluded from weight decay by optim.no_decay_bias_bn (biases, BN) */
} dt_param;

/* One layer kind. Every callback gets the layer and the net it belongs to. */
typedef struct dt_layer_ops {
    const char *kind;   /* section name in a model file: "linear", "relu", ... */
    size_t priv_size;   /* bytes of the kind's own struct, zeroed, at l->priv */
    const char *keys;   /* the option keys it takes, for error messages ("out, bias") */
    /* One `key = value` from the layer's section. Returns 0 or DT_ERR naming source:line. */
    int (*option)(dt_layer *l, const char *key, const char *val, const char *src, int line);
    /* Computes the output shape from l->c/h/w (preset to the input's) and declares parameters
     * with dt_net_add_param. Returns 0 or DT_ERR. */
    int (*setup)(dt_layer *l, dt_net *net);
    /* PyTorch's default initialization from generator g (may be NULL: no parameters). */
    void (*init)(dt_layer *l, dt_net *net, dt_mt19937 *g);
    void (*forward)(dt_layer *l, dt_net *net, int N, int train);
    void (*backward)(dt_layer *l, dt_net *net, int N);
    /* Releases what setup allocated in priv (NULL: nothing). */
    void (*free)(dt_layer *l);
    /* BatchNorm statistics refresh (SWA): phase 0 resets the accumulators before a pass over the
     * training data with net->bn_refresh set, phase 1 turns them into the running statistics. */
    void (*refresh)(dt_layer *l, dt_net *net, int phase);
    /* 1 when out/dout are the input's own buffers (flatten): no arena space. */
    int alias;
    /* 1 when the layer takes a second input (`from = NAME|-K`): residual add. */
    int two_inputs;
} dt_layer_ops;

struct dt_layer {
    const dt_layer_ops *ops;
    char name[DT_NAME_MAX];
    int index;
    int input;          /* producing layer, -1 = the net's input */
    int input2;         /* second input (residual add), -2 = none */
    int in_c, in_h, in_w;
    int c, h, w;        /* output shape per sample */
    size_t out_size;    /* c * h * w */
    float *out;         /* (max_batch, out_size) */
    float *dout;        /* (max_batch, out_size) */
    int accum;          /* backward adds into the input's dout instead of overwriting it */
    int accum2;         /* the same for input2 */
    int fused;          /* 1: an earlier layer's fused kernel does this layer's work (skipped) */
    size_t ws_floats;   /* scratch the layer needs per forward/backward (set by setup) */
    int param0, nparam; /* its tensors: net->params[param0 .. param0 + nparam) */
    int buf0, nbuf;     /* its non-trainable buffers: net->bufs[buf0 .. buf0 + nbuf) */
    void *priv;
    const char *src;    /* model source and line of its section, for messages */
    int line;
    char input_ref[DT_NAME_MAX], from_ref[DT_NAME_MAX]; /* as written, resolved at build */
};

struct dt_net {
    char model[DT_NAME_MAX]; /* model name ("mlp" or the file's stem) */
    char source[256];        /* where the description came from */
    int in_c, in_h, in_w, classes;
    int desc_c, desc_h, desc_w; /* the input shape the description names ([net] input) */
    int max_batch;
    int nlayers;
    dt_layer *layers;
    int nparams, cap_params;
    dt_param *params;
    size_t numel;            /* total parameter count */
    float *param;            /* (numel) */
    float *grad;             /* (numel) */
    int nbufs, cap_bufs;
    dt_param *bufs;          /* non-trainable buffers (BatchNorm running stats), PyTorch names */
    size_t state_numel;
    float *state;            /* (state_numel) flat buffer of all buffers */
    float *arena;
    size_t arena_floats;
    float *ws;               /* (ws_floats) scratch shared by all layers, e.g. im2col columns */
    size_t ws_floats;
    const float *x;          /* input of the current forward, (N, in_c, in_h, in_w) */
    /* set by the trainer, read by layers that need them */
    MPI_Comm comm;           /* synchronized BatchNorm reduces over it (MPI_COMM_SELF: none) */
    int sync_bn;             /* 1: BatchNorm statistics over all ranks of comm */
    int bn_refresh;          /* 1: training-mode forwards accumulate BN statistics (no update) */
    uint64_t seed;           /* dropout masks: seeded by (seed, rank, step, layer) */
    /* called by dt_net_backward after each layer with parameters, with the offset of that
     * layer's first parameter: grad[off, numel) is final (NULL: not called) */
    void (*grad_ready)(void *ctx, size_t off);
    void *grad_ready_ctx;
    /* low precision (lowp.h; DT_FP32: off): forward and backward round every layer's inputs and
     * the gradients flowing between layers to this format, and run on a rounded copy of the
     * weights (lp_param); param stays the float32 master */
    int lowp;
    float *lp_param;
    int rank;
    int64_t step;
};

/* Builds a net from a model spec: a built-in name ("mlp") or a path to a .cfg file (anything with
 * a '/' or ending in ".cfg"). The input shape and class count of the description must equal
 * (in_c, in_h, in_w, classes) when those are > 0. Parameters are zero until dt_net_init.
 * Returns 0 and *out, or DT_ERR naming the file, line and key. */
int dt_net_build(dt_net **out, const char *spec, int max_batch);
/* The same, built for inputs of shape (c, h, w) instead of the description's `input` (every layer
 * derives its shape from its input, so one description serves 1x28x28 and 3x32x32 data). */
int dt_net_build_for(dt_net **out, const char *spec, int max_batch, int c, int h, int w);
void dt_net_free(dt_net *net);
/* For a layer's setup, before it allocates or plans anything: checks that an output of
 * (c, h, w) at net->max_batch samples stays below DT_NET_MAX_ARENA values and that add_params
 * more parameters keep the net within DT_NET_MAX_PARAMS (overflow-checked). Returns 0, or
 * DT_ERR naming the layer's file and line, the size and the limit. */
int dt_net_check_sizes(const dt_net *net, const dt_layer *l, size_t add_params, size_t c, size_t h,
                       size_t w);
/* Whether nets built afterwards share memory between activation gradients whose lifetimes in
 * backward do not overlap (default 1; tests compare with 0). Returns the previous setting. */
int dt_net_set_grad_sharing(int on);

/* Names of the built-in models, comma separated. */
const char *dt_net_builtin_names(void);
/* Text of a built-in model description, or NULL. */
const char *dt_net_builtin_text(const char *name);

/* PyTorch-default initialization, bitwise equal to torch.manual_seed(seed) followed by building
 * the equivalent torch.nn modules in layer order (uniform_ consumes MT19937 words the same way). */
void dt_net_init(dt_net *net, uint64_t seed);

/* Declares a parameter tensor of layer l during setup (name "<layer>.<suffix>"). flags:
 * DT_PARAM_BIAS (a bias; implies no decay), DT_PARAM_NO_DECAY (BatchNorm affine parameters). */
enum { DT_PARAM_BIAS = 1, DT_PARAM_NO_DECAY = 2 };
void dt_net_add_param(dt_net *net, dt_layer *l, const char *suffix, int ndim, const int *shape,
                      int flags);
/* Declares a non-trainable buffer (BatchNorm running_mean...) of layer l during setup. */
void dt_net_add_buffer(dt_net *net, dt_layer *l, const char *suffix, int ndim, const int *shape);
float *dt_layer_buffer(dt_net *net, const dt_layer *l, int i);

/* Views of layer l's i-th tensor and its gradient. */
float *dt_layer_param(dt_net *net, const dt_layer *l, int i);
float *dt_layer_grad(dt_net *net, const dt_layer *l, int i);
/* The layer's input activations, and where its input gradient goes (NULL: the net's input). */
const float *dt_layer_in(const dt_net *net, const dt_layer *l);
float *dt_layer_din(const dt_net *net, const dt_layer *l);
/* The same for the second input (residual add). */
const float *dt_layer_in2(const dt_net *net, const dt_layer *l);
float *dt_layer_din2(const dt_net *net, const dt_layer *l);

/* Low-precision emulation (lowp.h): DT_FP32, DT_BF16 or DT_FP16 for the forwards and backwards
 * that follow. */
void dt_net_set_precision(dt_net *net, int format);

/* Forward over N <= max_batch samples; returns the logits (N, classes). In low precision
 * (dt_net_set_precision) x is rounded to the format in place. */
float *dt_net_forward(dt_net *net, const float *x, int N, int train);
/* Where the loss writes d(loss)/d(logits) (N, classes) before dt_net_backward. */
float *dt_net_dlogits(dt_net *net);
/* Backward: fills net->grad completely (overwrites; no zero_grad needed). */
void dt_net_backward(dt_net *net, int N);

/* Whether the net has layers with a statistics refresh (BatchNorm). */
int dt_net_has_refresh(const dt_net *net);
/* Calls every layer's refresh hook with `phase` (see dt_layer_ops.refresh). */
void dt_net_refresh(dt_net *net, int phase);

/* Prints a one-line-per-layer summary (rank 0 uses it at start). */
void dt_net_print(const dt_net *net, void *file);

#endif
