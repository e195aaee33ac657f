/*
 * layer.h - the layer API: what a layer kind (runtime/layers/) sees of the net it belongs to.
 *
 * A layer kind is an ops table (dt_layer_ops) over its own small struct (dt_layer.priv). Its
 * callbacks get the layer and the net: they declare parameters and buffers at setup
 * (dt_net_add_param / dt_net_add_buffer, after dt_net_check_sizes), and reach their tensors and
 * activations through the accessors below. The struct dt_net lives here, below net.c, so that
 * this API needs nothing of the net's driver (net.h: building, the arena plan, forward/backward).
 *
 * Parameter layout: tensors in layer order, each contiguous, with PyTorch's shape convention
 * (linear weight (OUT, IN)) and state_dict name ("fc1.weight"). Activations are (N, C, H, W) per
 * layer, float32, row-major.
 */
#ifndef DT_LAYER_H
#define DT_LAYER_H

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
    size_t off;      /* offset into net->param / net->grad (or net->state for buffers) */
    int is_bias;     /* a bias */
    int no_decay;    /* excluded from weight decay by optim.no_decay_bias_bn (biases, BN) */
    int bf16_packed; /* DT_PARAM_BF16_PACKED: bf16 kernels round it as they pack it */
} dt_param;

/* What a forward or backward needs to know of the run around it (the trainer fills it; NULL in
 * dt_net_forward / dt_net_backward: one process, no synchronization, seed 0, step 0). */
typedef struct dt_step_ctx {
    int sync_bn;    /* 1: BatchNorm statistics over all processes (through allreduce_sum) */
    int bn_refresh; /* 1: training-mode forwards accumulate BN statistics (no update) */
    uint64_t seed;  /* dropout masks: seeded by (seed, rank, step, layer) */
    int rank;
    int64_t step;
    /* sums x[0..n) over all processes in place (NULL: one process, nothing to do) */
    void (*allreduce_sum)(void *comm_ctx, double *x, int n);
    void *comm_ctx;
    /* called by dt_net_backward after each layer with parameters, with the offset of that
     * layer's first parameter: grad[off, numel) is final (NULL: not called) */
    void (*grad_ready)(void *ctx, size_t off);
    void *grad_ready_ctx;
} dt_step_ctx;

/* One layer kind. Every callback gets the layer and the net it belongs to. */
typedef struct dt_layer_ops {
    const char *kind; /* section name in a model file: "linear", "relu", ... */
    size_t priv_size; /* bytes of the kind's own struct, zeroed, at l->priv */
    /* The keys of its section besides name and input (dt_layer_option; NULL: none). */
    const struct dt_layer_opt *opts;
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
     * training data with the step context's bn_refresh set, phase 1 turns them into the running
     * statistics. */
    void (*refresh)(dt_layer *l, dt_net *net, int phase);
    /* 1 when out/dout are the input's own buffers (flatten): no arena space. */
    int alias;
    /* 1 when the layer takes a second input (`from = NAME|-K`): residual add. */
    int two_inputs;
    /* 1: its backward writes its first input's gradient as a copy of its own output's (the
     * residual add), so that gradient may live in the same memory, written in place (net.c) */
    int din_is_dout;
    /* The activations its backward reads (bf16 fetches only those, net_act.h): DT_BWD_* bits;
     * 0: not said, its output and its inputs. */
    int bwd_reads;
    /* Low precision: 1 when this step's backward rounds the gradient it reads (its dout, or its
     * fused group's last layer's) to bf16 itself, bitwise as net.c's pass before it would (which
     * net.c then skips); NULL or 0: it reads it rounded. */
    int (*rounds_dout)(const dt_layer *l, const dt_net *net, int N);
    /* bf16 activations (net->act, net_act.h): 1 when its forward writes its output (its fused
     * group's) already rounded to bf16, bitwise as dt_net_act_made would round it (which then
     * only stores the bf16 copy, where a backward reads it); NULL or 0: it does not. */
    int (*rounds_out)(const dt_layer *l, const dt_net *net);
    /* bf16 activations: 1 when this step's backward (its fused group's) reads stored activation
     * k (a layer index) from its bf16 copy (dt_net_act_copy, net_act.h) or not at all, so that
     * dt_net_act_fetch need not widen it into its float32 slot; NULL or 0: it reads the slot. */
    int (*bwd_skips)(const dt_layer *l, const dt_net *net, int N, int k);
    /* bf16 activations: 1 when this layer's forward (its fused group's) reads stored activation k
     * (a layer index) from its bf16 copy whenever k has one (dt_net_act_copy), not from its
     * float32 slot, and its backward does not read k: k's slot is then free after its other
     * readers, and its copy kept in evaluation forwards too. Fixed for the net (no N). NULL or
     * 0: the slot. */
    int (*fwd_copy)(const dt_layer *l, const dt_net *net, int k);
    /* bf16 activations: 1 when this layer's forward (its fused group's) may write the group's
     * output over its input (the same size; each value read before its place is written, by the
     * same thread): where the input's float32 slot is free after this layer, the output takes
     * it (net_act.c). Fixed for the net. NULL or 0: separate slots. */
    int (*fwd_in_place)(const dt_layer *l, const dt_net *net);
    /* The lane layout (dt_net.lanes): what this step of the layer can do with it, DT_LANES_* bits
     * (NULL or 0: its input and output are (N, C, H, W) only). */
    int (*lanes)(const dt_layer *l, const dt_net *net, int N);
} dt_layer_ops;
/* DT_LANES_READ: reads its input(s) in either layout (its output stays (N, C, H, W) unless
 * WRITE); DT_LANES_WRITE: writes its output in the lane layout when told (the bf16
 * convolutions); DT_LANES_KEEP: its output in its input's layout (BatchNorm, ReLU, the add: both
 * inputs then share it). */
enum { DT_LANES_READ = 1, DT_LANES_WRITE = 2, DT_LANES_KEEP = 4 };
/* DT_BWD_FUSED_OUT: heading a fused group, its backward reads the bits above of itself and the
 * group's output (a fused ReLU's mask), nothing else the group touches (without it: all). */
enum { DT_BWD_OUT = 1, DT_BWD_IN = 2, DT_BWD_IN2 = 4, DT_BWD_NONE = 8, DT_BWD_FUSED_OUT = 16 };

struct dt_layer {
    const dt_layer_ops *ops;
    char name[DT_NAME_MAX];
    int index;
    int input;  /* producing layer, -1 = the net's input */
    int input2; /* second input (residual add), -2 = none */
    int in_c, in_h, in_w;
    int c, h, w;        /* output shape per sample */
    size_t out_size;    /* c * h * w */
    float *out;         /* (max_batch, out_size) */
    float *dout;        /* (max_batch, out_size) */
    int accum;          /* backward adds into the input's dout instead of overwriting it */
    int accum2;         /* the same for input2 */
    int fused;          /* 1: an earlier layer's fused kernel does this layer's work (skipped) */
    int lanes_ok;       /* 1: in a step with dt_net.lanes, out and dout are in the lane layout */
    size_t ws_floats;   /* scratch the layer needs per forward/backward (set by setup) */
    int param0, nparam; /* its tensors: net->params[param0 .. param0 + nparam) */
    int buf0, nbuf;     /* its non-trainable buffers: net->bufs[buf0 .. buf0 + nbuf) */
    void *priv;
    const char *src; /* model source and line of its section, for messages */
    int line;
    char input_ref[DT_NAME_MAX], from_ref[DT_NAME_MAX]; /* as written, resolved at build */
};

/* The net as its layers see it; built and run by net.c (net.h). */
/* How a net is planned, fixed when it is built (dt_net_build_opts); all zero is the default. The
 * alternatives exist so that tests can compare a net against its plainer self. */
typedef struct dt_net_opts {
    int no_fusion;       /* 1: no graph passes (layers/registry.h: conv -> relu -> maxpool) */
    int no_grad_sharing; /* 1: every activation gradient gets memory of its own */
    int no_bf16_store;   /* 1: bf16 keeps float32 activations in the arena (no net_act.h) */
    int no_lanes;        /* 1: bf16 keeps every activation (N, C, H, W) (no lane layout) */
} dt_net_opts;

struct dt_net {
    char model[DT_NAME_MAX]; /* model name ("mlp" or the file's stem) */
    dt_net_opts opts;        /* what it was built with */
    char source[256];        /* where the description came from */
    int in_c, in_h, in_w, classes;
    int desc_c, desc_h, desc_w; /* the input shape the description names ([net] input) */
    int max_batch;
    int nlayers;
    dt_layer *layers;
    int nparams, cap_params;
    dt_param *params;
    size_t numel; /* total parameter count */
    float *param; /* (numel) */
    float *grad;  /* (numel) */
    int nbufs, cap_bufs;
    dt_param *bufs; /* non-trainable buffers (BatchNorm running stats), PyTorch names */
    size_t state_numel;
    float *state; /* (state_numel) flat buffer of all buffers */
    float *arena;
    size_t arena_floats;
    float *ws; /* (ws_floats) scratch shared by all layers, e.g. im2col columns */
    size_t ws_floats;
    const float *x; /* input of the current forward, (N, in_c, in_h, in_w) */
    /* the step context of the current forward/backward (never NULL there: dt_net_forward and
     * dt_net_backward put a default one in place of NULL) */
    const dt_step_ctx *ctx;
    /* low precision (lowp.h; DT_FP32: off): forward and backward round every layer's inputs and
     * the gradients flowing between layers to this format, and run on a rounded copy of the
     * weights (lp_param); param stays the float32 master */
    int lowp;
    float *lp_param;
    /* while a low-precision forward or backward runs: the float32 master (param points at
     * lp_param then); the DT_PARAM_BF16_PACKED weights of a bf16 run are read from it */
    float *lp_master;
    struct dt_net_act *act; /* bf16: activations stored as bf16 (net_act.h); else NULL */
    /* The lane layout of this step's forward and backward (net.c's plan_lanes): 0, or L (the
     * kernel table's lanes) when the bf16 convolutions run and N is a multiple of L. Then the
     * activations of the layers with lanes_ok (and their gradients) are blocks of L images, each
     * (C, H, W, L): image n0 + l's value (c, h, w) at block n0 / L's ((c * H + h) * W + w) * L + l,
     * the same floats as (N, C, H, W) in the same memory, transposed within each block. Between
     * the bf16 convolutions, whose kernels work on such blocks, activations then need no
     * transposes. Every kernel gives the bits of (N, C, H, W) on it. */
    int lanes;
};

/* For a layer's setup, before it allocates or plans anything: checks that an output of
 * (c, h, w) at net->max_batch samples stays below DT_NET_MAX_ARENA values and that add_params
 * more parameters keep the net within DT_NET_MAX_PARAMS (overflow-checked). Returns 0, or
 * DT_ERR naming the layer's file and line, the size and the limit. */
int dt_net_check_sizes(const dt_net *net, const dt_layer *l, size_t add_params, size_t c, size_t h,
                       size_t w);

/* Declares a parameter tensor of layer l during setup (name "<layer>.<suffix>"). flags:
 * DT_PARAM_BIAS (a bias; implies no decay), DT_PARAM_NO_DECAY (BatchNorm affine parameters),
 * DT_PARAM_BF16_PACKED (in bf16 every kernel that reads it rounds it as dt_round_bf16 does, as
 * the bf16 GEMM's packing does: the layer reads the float32 master, and the net makes no rounded
 * copy of it, one pass over the weights less per step). */
enum { DT_PARAM_BIAS = 1, DT_PARAM_NO_DECAY = 2, DT_PARAM_BF16_PACKED = 4 };
/* 1: in net's precision, p's kernels read its float32 master and round it themselves (a
 * DT_PARAM_BF16_PACKED parameter in bf16): no rounded copy is made of it */
int dt_param_reads_master(const dt_net *net, const dt_param *p);
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
/* dt_layer_ops.rounds_out and .rounds_dout of the kinds whose kernels round as they write and
 * read (BatchNorm, ReLU, the residual add): 1 with bf16 activations (net->act), 1 in bf16. */
int dt_layer_bf16_rounds_out(const dt_layer *l, const dt_net *net);
int dt_layer_bf16_rounds_dout(const dt_layer *l, const dt_net *net, int N);
/* 1: the backward that reads layer i's dout (its own, or its fused group's head's) rounds it to
 * 16 bits itself as it reads it (dt_layer_ops.rounds_dout), so that dout may hold it unrounded */
int dt_layer_reader_rounds(const dt_net *net, int i, int N);

/* The layout of layer l's output (and of its gradient) in this step: dt_net.lanes (L) when it is
 * in the lane layout, else 0; dt_layer_in_lanes the same of its input (0: the net's input). */
int dt_layer_lanes(const dt_net *net, const dt_layer *l);
int dt_layer_in_lanes(const dt_net *net, const dt_layer *l);
/* dt_layer_ops.lanes of the kinds that keep their input's layout (DT_LANES_KEEP) */
int dt_layer_lanes_keep(const dt_layer *l, const dt_net *net, int N);

/* Sums x[0..n) over all processes of the current step context (nothing without one). */
void dt_layer_allreduce_sum(const dt_net *net, double *x, int n);

/* Fills x[0..n) like torch.Tensor.uniform_(from, to) on CPU for float32 from generator g. */
void dt_uniform_fill(float *x, size_t n, double from, double to, dt_mt19937 *g);
/* torch.nn.Linear / Conv2d reset_parameters (torch 1.13): the layer's tensor 0 (weight)
 * kaiming_uniform_(a=sqrt(5)), i.e. U(-b, b) with b = sqrt(3) * sqrt(2 / (1 + a^2)) /
 * sqrt(fan_in); its tensor 1, if any (bias), U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
void dt_layer_kaiming_init(dt_layer *l, dt_net *net, dt_mt19937 *g, double fan_in);

/* One option of a layer kind's section: `key = value` parsed into the int or float at byte
 * offset `off` of the layer's priv struct; `set_off` (> 0) names an int set to 1 when the key is
 * given. DT_OPT_INT: an integer in [min, max]; DT_OPT_NOT: 0 or 1, stored negated (a zeroed priv
 * keeps PyTorch's default 1, e.g. bias); DT_OPT_FLOAT: a number in [min, max], messages say
 * `expect` ("a number in [0, 1)"). */
enum { DT_OPT_INT, DT_OPT_NOT, DT_OPT_FLOAT };
typedef struct dt_layer_opt {
    const char *key;
    int type;
    double min, max;
    size_t off, set_off;
    const char *expect;
} dt_layer_opt;
/* Parses one `key = value` of layer l's section by its kind's table (ops->opts, ended by a NULL
 * key). Returns 0, or DT_ERR naming source:line, the kind, the key, the value and what is
 * expected (an unknown key: the list of keys the kind takes). */
int dt_layer_option(dt_layer *l, const char *key, const char *val, const char *src, int line);

#endif
