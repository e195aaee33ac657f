/*
 * config.c - the configuration table and its parsers; see config.h.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "ini.h"
#include "kernels/conv_dnnl.h"
#include "kernels/isa.h"
#include "optim.h"
#include "sched.h"

#define OFF(f) offsetof(dt_config, f)
#define WIDTH(f) (int)sizeof(((dt_config *)0)->f)
#define INT(k, f, d, lo, hi, h)                                                                    \
    {                                                                                              \
        k, DT_CFG_INT, OFF(f), WIDTH(f), d, lo, hi, 0, 0, NULL, h                                  \
    }
#define FLT(k, f, d, lo, hi, lopen, hopen, h)                                                      \
    {                                                                                              \
        k, DT_CFG_FLOAT, OFF(f), 0, d, lo, hi, lopen, hopen, NULL, h                               \
    }
#define BOOL(k, f, d, h)                                                                           \
    {                                                                                              \
        k, DT_CFG_BOOL, OFF(f), 0, d, 0, 1, 0, 0, NULL, h                                          \
    }
#define STR(k, f, d, h)                                                                            \
    {                                                                                              \
        k, DT_CFG_STRING, OFF(f), 0, d, 0, 0, 0, 0, NULL, h                                        \
    }
#define ENUM(k, f, d, ch, h)                                                                       \
    {                                                                                              \
        k, DT_CFG_ENUM, OFF(f), 0, d, 0, 0, 0, 0, ch, h                                            \
    }
#define CHOICE(k, f, d, ch, h)                                                                     \
    {                                                                                              \
        k, DT_CFG_CHOICE, OFF(f), WIDTH(f), d, 0, 0, 0, 0, ch, h                                   \
    }

/* Grouped by section, sections in the order the resolved config prints them. */
const dt_cfg_key dt_cfg_keys[] = {
    STR("model", model, "mlp", "model: a built-in name or a path to a model description (.cfg)"),
    INT("seed", seed, "0", 0, 9.2e18,
        "random seed: initialization, sampler order (seed + epoch), augmentation, dropout"),
    INT("threads", threads, "auto", 1, 1024,
        "threads per rank (the kernels' thread pool): auto = the CPUs of the rank's affinity mask "
        "shared among the node's ranks with that mask, or a number"),
    CHOICE("bind", bind, "auto", "auto|cores|none",
           "cores: each of the rank's 2+ threads on a CPU of its own when its affinity mask holds "
           "exactly threads x (the node's ranks with that mask) CPUs; auto: the same when a "
           "launcher gave the rank fewer CPUs than the node has, else placed there without binding "
           "(moved to those CPUs, the OS free to move them); none: the OS places them"),

    ENUM("data.name", data_name, "mnist", "mnist|fashion-mnist|cifar10|hdf5", "dataset"),
    STR("data.dir", data_dir, "data", "folder holding <dataset>/ (as made by `make data`)"),
    INT("data.limit_train", limit_train, "0", 0, 1e12,
        "use only the first N training samples (0: all)"),
    INT("data.limit_test", limit_test, "0", 0, 1e12, "use only the first N test samples (0: all)"),
    STR("data.h5_train", h5_train, "none", "data.name = hdf5: the training file"),
    STR("data.h5_test", h5_test, "none", "data.name = hdf5: the test file"),
    STR("data.h5_images", h5_images, "images",
        "data.name = hdf5: image dataset (uint8 or float32)"),
    STR("data.h5_labels", h5_labels, "labels", "data.name = hdf5: label dataset (integers)"),
    ENUM("data.h5_layout", h5_layout, "nchw", "nchw|nhwc",
         "data.name = hdf5: layout of rank-4 images"),
    INT("data.classes", classes, "0", 0, 100000,
        "number of classes (0: the format's, or max label + 1)"),
    STR("data.mean", mean, "auto",
        "per-channel mean, 1 or C comma-separated values in [0,1] pixel units (auto: the "
        "dataset's)"),
    STR("data.std", std, "auto", "per-channel std, like data.mean"),
    INT("data.crop_pad", crop_pad, "0", 0, 64,
        "augmentation: random crop after zero padding by this many pixels (0: off; CIFAR recipe: "
        "4)"),
    BOOL("data.flip", flip, "false", "augmentation: random horizontal flip"),

    INT("train.epochs", epochs, "3", 1, 1e6, "epochs"),
    INT("train.batch_size", batch_size, "64", 1, 65536,
        "batch size PER RANK (global = this x ranks)"),
    INT("train.eval_batch_size", eval_batch_size, "0", 0, 65536,
        "evaluation batch size per rank (0: train.batch_size)"),
    INT("train.max_steps", max_steps, "0", 0, 1e15,
        "stop after this many optimizer steps (0: no limit)"),
    INT("train.stop_at_step", stop_at_step, "0", 0, 1e15,
        "act as if a pre-emption signal arrived at this step: checkpoint, exit 0 (for testing "
        "resume)"),
    BOOL("train.drop_last", drop_last, "false",
         "DistributedSampler drop_last: drop the tail instead of padding"),
    BOOL("train.shuffle", shuffle, "true", "shuffle each epoch (permutation from seed + epoch)"),
    CHOICE("train.progress", progress, "auto", "never|auto|always",
           "live progress bar: auto = when stdout is a terminal"),
    FLT("train.label_smoothing", label_smoothing, "0", 0, 1, 0, 1,
        "label smoothing epsilon (PyTorch: target 1-eps+eps/K, others eps/K)"),
    FLT("train.mixup_alpha", mixup_alpha, "0", 0, 1e3, 0, 0,
        "mixup: lambda ~ Beta(alpha, alpha) per step (0: off)"),
    BOOL("train.sync_bn", sync_bn, "false", "BatchNorm statistics over all ranks (SyncBatchNorm)"),
    CHOICE("train.precision", precision, "fp32", "fp32|bf16|fp16",
           "fp16/bf16: PyTorch autocast emulated: 16-bit weights, activations and their gradients, "
           "float32 master weights, gradients and optimizer"),
    STR("train.loss_scale", loss_scale, "auto",
        "loss scaling: auto (fp16: dynamic from 65536 like GradScaler; else off), dynamic, off, or "
        "a fixed number > 0 (steps with inf/NaN gradients are skipped)"),
    INT("train.loss_scale_interval", loss_scale_interval, "2000", 1, 1e9,
        "dynamic loss scale: double it after this many steps without inf/NaN gradients (GradScaler "
        "growth_interval)"),
    FLT("train.bucket_mb", bucket_mb, "25", 0, 1e6, 0, 0,
        "gradient allreduce in buckets of this many MB, each started while backward goes on "
        "(PyTorch DDP bucket_cap_mb; 0: one allreduce after backward)"),
    CHOICE("train.allreduce", allreduce, "auto", "auto|mpi|shm",
           "gradient allreduce: shm (summed through MPI-3 shared memory, every rank on one node), "
           "mpi (MPI_Iallreduce), auto (shm at 2 ranks on one node, where it gives MPI's bits)"),
    BOOL("train.grad_panels", grad_panels, "false",
         "with buckets: a linear layer's weight gradient in row panels of a bucket, each reduced "
         "as soon as computed (docs/internals.md; the same bits)"),

    CHOICE("swa.mode", swa_mode, "off", "off|swa|ema",
           "weight averaging: SWA (running mean) or EMA"),
    CHOICE("swa.interval", swa_per_epoch, "epoch", "step|epoch",
           "swa.start and swa.freq count optimizer steps or epochs"),
    INT("swa.start", swa_start, "0", 0, 1e15,
        "average after this many steps/epochs (torchcontrib swa_start)"),
    INT("swa.freq", swa_freq, "1", 1, 1e15, "average every this many steps/epochs (swa_freq)"),
    FLT("swa.lr", swa_lr, "auto", 0, 1e6, 0, 0, "lr from swa.start on (auto: keep the schedule)"),
    INT("swa.anneal", swa_anneal, "0", 0, 1e15,
        "anneal to swa.lr over this many units (SWALR anneal_epochs; 0: switch)"),
    CHOICE("swa.anneal_strategy", swa_anneal_linear, "cos", "cos|linear", "SWALR annealing shape"),
    FLT("swa.ema_decay", swa_decay, "0.999", 0, 1, 0, 1,
        "ema: w_ema = decay * w_ema + (1 - decay) * w"),
    BOOL("swa.eval_every_epoch", swa_eval_epoch, "false",
         "evaluate the averaged weights (with BN refresh) every epoch, not only at the end"),

    CHOICE("optim.name", op.kind, "sgd", DT_OPTIM_KIND_CHOICES, "optimizer"),
    FLT("optim.lr", op.lr, "default", 0, 1e6, 0, 0,
        "learning rate, the schedule's base (default: sgd 0.05, adagrad/rmsprop 0.01, adadelta 1, "
        "adam/adamw 0.001; auto: run the LR range test first and take its valley suggestion)"),
    FLT("optim.momentum", op.momentum, "auto", 0, 1, 0, 1,
        "sgd / rmsprop momentum (auto: sgd 0.9, rmsprop 0)"),
    FLT("optim.dampening", op.dampening, "0", 0, 1, 0, 0, "sgd dampening"),
    BOOL("optim.nesterov", op.nesterov, "false",
         "sgd Nesterov momentum (needs momentum > 0, dampening = 0)"),
    FLT("optim.weight_decay", op.weight_decay, "auto", 0, 1e6, 0, 0,
        "weight decay: L2 added to the gradient; adamw: decoupled (auto: 0, adamw 0.01)"),
    BOOL("optim.no_decay_bias_bn", no_decay_bias_bn, "false",
         "no weight decay on biases and BatchNorm parameters (Bag of Tricks)"),
    FLT("optim.clip_grad_norm", clip_grad_norm, "0", 0, 1e6, 0, 0,
        "clip the global gradient 2-norm to this (0: off; clip_grad_norm_)"),
    FLT("optim.eps", op.eps, "auto", 0, 1, 0, 0,
        "term added to denominators (auto: adagrad 1e-10, adadelta 1e-6, others 1e-8)"),
    FLT("optim.lr_decay", op.lr_decay, "0", 0, 1e6, 0, 0, "adagrad lr decay"),
    FLT("optim.initial_accumulator_value", op.initial_accumulator_value, "0", 0, 1e6, 0, 0,
        "adagrad initial sum"),
    FLT("optim.rho", op.rho, "0.9", 0, 1, 0, 0, "adadelta running-average coefficient"),
    FLT("optim.alpha", op.alpha, "0.99", 0, 1, 0, 0, "rmsprop smoothing constant"),
    BOOL("optim.centered", op.centered, "false",
         "rmsprop centered (normalize by the gradient's variance)"),
    FLT("optim.beta1", op.beta1, "0.9", 0, 1, 0, 1, "adam/adamw first-moment coefficient"),
    FLT("optim.beta2", op.beta2, "0.999", 0, 1, 0, 1, "adam/adamw second-moment coefficient"),
    BOOL("optim.amsgrad", op.amsgrad, "false", "adam/adamw AMSGrad"),

    CHOICE("sched.kind", sp.kind, "cosine", DT_SCHED_KIND_CHOICES, "learning-rate schedule"),
    CHOICE("sched.interval", sp.per_epoch, "step", DT_SCHED_INTERVAL_CHOICES,
           "the schedule's clock: optimizer steps or epochs"),
    INT("sched.warmup_steps", sp.warmup_steps, "0", 0, 1e15,
        "linear warmup before the schedule, in clock units (0: none)"),
    FLT("sched.warmup_start_factor", sp.warmup_start_factor, "0.333333333333333", 0, 1, 0, 0,
        "warmup starts at this fraction of the lr"),
    INT("sched.step_size", sp.step_size, "0", 0, 1e15, "step: decay every this many clock units"),
    FLT("sched.gamma", sp.gamma, "0.1", 0, 1e6, 1, 0, "step, multistep, exponential: decay factor"),
    STR("sched.milestones", milestones, "none",
        "multistep: comma-separated clock units, e.g. 30,80"),
    FLT("sched.max_lr", sp.max_lr, "0", 0, 1e6, 0, 0,
        "cyclic, onecycle: the peak lr, required (onecycle: auto = the LR range test's valley)"),
    INT("sched.step_size_up", sp.step_size_up, "2000", 1, 1e15, "cyclic: rising half-cycle"),
    INT("sched.step_size_down", sp.step_size_down, "0", 0, 1e15,
        "cyclic: falling half-cycle (0: = step_size_up)"),
    CHOICE("sched.cyclic_mode", sp.cyclic_mode, "triangular", DT_SCHED_CYCLIC_MODE_CHOICES,
           "cyclic amplitude policy"),
    FLT("sched.cyclic_gamma", sp.cyclic_gamma, "1", 0, 1e6, 1, 0,
        "cyclic exp_range: amplitude x gamma^t"),
    BOOL("sched.cycle_momentum", sp.cycle_momentum, "true",
         "cyclic, onecycle: cycle momentum (adam: beta1) inversely to the lr"),
    FLT("sched.base_momentum", sp.base_momentum, "auto", 0, 1, 0, 0,
        "cyclic/onecycle lowest momentum (auto: cyclic 0.8, onecycle 0.85)"),
    FLT("sched.max_momentum", sp.max_momentum, "auto", 0, 1, 0, 0,
        "cyclic/onecycle highest momentum (auto: cyclic 0.9, onecycle 0.95)"),
    INT("sched.t_max", sp.t_max, "0", 0, 1e15, "cosine: half period (0: the run)"),
    FLT("sched.eta_min", sp.eta_min, "0", 0, 1e6, 0, 0, "cosine, cosine_restarts: lowest lr"),
    INT("sched.t_0", sp.t_0, "0", 0, 1e15, "cosine_restarts: first cycle length"),
    INT("sched.t_mult", sp.t_mult, "1", 1, 1e6,
        "cosine_restarts: cycle length growth factor (CosineAnnealingWarmRestarts T_mult)"),
    INT("sched.total_steps", sp.total_steps, "0", 0, 1e15, "onecycle: cycle length (0: the run)"),
    FLT("sched.pct_start", sp.pct_start, "0.3", 0, 1, 1, 1,
        "onecycle: fraction of the cycle spent rising"),
    CHOICE("sched.anneal_strategy", sp.anneal_strategy, "cos", DT_SCHED_ANNEAL_CHOICES,
           "onecycle annealing"),
    BOOL("sched.three_phase", sp.three_phase, "false", "onecycle: three phases (fast.ai)"),
    FLT("sched.div_factor", sp.div_factor, "25", 0, 1e12, 1, 0,
        "onecycle: initial lr = max_lr / div_factor"),
    FLT("sched.final_div_factor", sp.final_div_factor, "10000", 0, 1e12, 1, 0,
        "onecycle: final lr = initial / final_div_factor"),
    INT("sched.total_iters", sp.total_iters, "0", 0, 1e15,
        "polynomial: decay length (0: the run; PyTorch's PolynomialLR default is 5)"),
    FLT("sched.power", sp.power, "1", 0, 1e6, 0, 0, "polynomial exponent"),
    CHOICE("sched.plateau_metric", plateau_metric, "test_loss", "test_loss|test_acc|train_loss",
           "plateau: the epoch metric it watches"),
    CHOICE("sched.plateau_mode", sp.plateau_mode, "min", DT_SCHED_PLATEAU_MODE_CHOICES,
           "plateau: min (a loss) or max (an accuracy)"),
    FLT("sched.factor", sp.factor, "0.1", 0, 1, 0, 1, "plateau: lr x factor on a plateau"),
    INT("sched.patience", sp.patience, "10", 0, 1e9,
        "plateau: epochs without improvement before reducing"),
    FLT("sched.threshold", sp.threshold, "0.0001", 0, 1e6, 0, 0, "plateau: improvement threshold"),
    CHOICE("sched.threshold_mode", sp.threshold_mode, "rel", DT_SCHED_THRESHOLD_MODE_CHOICES,
           "plateau: relative or absolute threshold"),
    INT("sched.cooldown", sp.cooldown, "0", 0, 1e9, "plateau: epochs to wait after a reduction"),
    FLT("sched.min_lr", sp.min_lr, "0", 0, 1e6, 0, 0, "plateau: lowest lr"),
    FLT("sched.plateau_eps", sp.plateau_eps, "1e-08", 0, 1, 0, 0,
        "plateau: smaller reductions are skipped"),

    STR("ckpt.dir", ckpt_dir, "none", "checkpoint folder (none: no checkpoints)"),
    INT("ckpt.every_steps", ckpt_every_steps, "0", 0, 1e15,
        "checkpoint every N optimizer steps (0: off)"),
    BOOL("ckpt.every_epoch", ckpt_every_epoch, "true",
         "checkpoint at the end of every epoch (when ckpt.dir is set)"),
    INT("ckpt.keep", ckpt_keep, "3", 1, 1000000, "keep the last K checkpoints"),
    CHOICE("ckpt.on_error", ckpt_on_error, "continue", "continue|stop",
           "a checkpoint that cannot be written (full disk, quota, I/O error): warn and train on, "
           "retrying at the next one, or stop with exit 1"),
    STR("ckpt.resume", resume, "none",
        "none, auto (the newest checkpoint in ckpt.dir that verifies) or a checkpoint file"),

    STR("log.dir", log_dir, "none",
        "metrics folder: metrics.h5 + metrics_step.csv + metrics_epoch.csv (none: off)"),
    INT("log.every_steps", log_every_steps, "1", 1, 1e9, "log every N steps"),
    FLT("log.flush_s", log_flush_s, "5", 0, 1e6, 1, 0,
        "step rows reach the files at least every this many seconds (also at every epoch end "
        "and checkpoint; a flush reopens metrics.h5, tens of ms on a parallel file system)"),
    STR("log.timeline", log_timeline, "none",
        "Chrome trace of every rank's steps (chrome://tracing, Perfetto; docs/timeline.md)"),
    INT("log.timeline_steps", log_timeline_steps, "20", 0, 1e9, "timeline: the first N steps"),
    INT("log.timeline_every", log_timeline_every, "0", 0, 1e9,
        "timeline: and every K-th step after them (0: none)"),
    CHOICE("log.header", log_header, "short", "short|full",
           "run header: a few lines (the full configuration goes to log.dir/config.ini), or "
           "full: the whole configuration and the model's layers"),

    FLT("dist.timeout", dist_timeout, "600", 0, 1e9, 0, 0,
        "watchdog: a rank that waits this many seconds for the others (at least 20x the median "
        "time of the last 64 steps) names the missing ranks and aborts the job with exit 1 (0: "
        "off)"),

    CHOICE("kernels.isa", kernels_isa, "auto", DT_ISA_CHOICES,
           "kernel instruction set: auto (DTRAIN_KERNELS_ISA if set, else the best this CPU runs), "
           "generic, avx2, avx512, avx512bf16; avx2w16 = the 16-lane kernels lowered to AVX2 (for "
           "tests). Ranks agree on the lowest common one"),
    CHOICE("kernels.conv", kernels_conv, "auto", DT_CONV_BACKEND_CHOICES,
           "convolution kernels: auto (DTRAIN_KERNELS_CONV if set, else oneDNN for the layers "
           "where it beats dtrain's kernels on this ISA: on AVX-512, 128+ input channels of a 3x3, "
           "and in bf16 the shapes dtrain's bf16 kernels do not take), "
           "dtrain (its own kernels everywhere) or onednn (oneDNN everywhere but fused conv + "
           "ReLU + pool)"),
};
const int dt_cfg_nkeys = (int)(sizeof dt_cfg_keys / sizeof dt_cfg_keys[0]);

int dt_config_find(const char *key)
{
    for (int i = 0; i < dt_cfg_nkeys; i++)
        if (strcmp(dt_cfg_keys[i].key, key) == 0)
            return i;
    return -1;
}

/* The DT_LR_AUTO_* bit of the keys whose value `auto` asks for the LR range test, else 0. */
static int lr_auto_bit(const dt_cfg_key *k)
{
    return strcmp(k->key, "optim.lr") == 0       ? DT_LR_AUTO_OPTIM
           : strcmp(k->key, "sched.max_lr") == 0 ? DT_LR_AUTO_MAX
                                                 : 0;
}

/* Whether `value` is the placeholder default of a FLOAT resolved later ("auto", "default"). */
static int is_placeholder(const dt_cfg_key *k, const char *value)
{
    return (strcmp(k->def, "auto") == 0 || strcmp(k->def, "default") == 0) &&
           strcmp(value, k->def) == 0;
}

/* Index of `val` among "a|b|c", or -1. */
static int choice_index(const char *choices, const char *val)
{
    int i = 0;
    const char *p = choices;
    size_t vl = strlen(val);
    while (*p) {
        size_t n = strcspn(p, "|");
        if (n == vl && strncmp(p, val, n) == 0)
            return i;
        p += n;
        if (*p == '|')
            p++;
        i++;
    }
    return -1;
}

static void describe_bounds(const dt_cfg_key *k, char *buf, size_t n)
{
    if (k->type == DT_CFG_INT)
        snprintf(buf, n, "an integer in [%.0f, %.0f]", k->min, k->max);
    else
        snprintf(buf, n, "a number in %c%g, %g%c", k->min_open ? '(' : '[', k->min, k->max,
                 k->max_open ? ')' : ']');
}

void dt_config_describe(const dt_cfg_key *k, char *buf, size_t n)
{
    if (k->type == DT_CFG_INT || k->type == DT_CFG_FLOAT) {
        char b[128];
        describe_bounds(k, b, sizeof b);
        const char *pre = lr_auto_bit(k) && strcmp(k->def, "default") == 0 ? "default, auto or "
                          : lr_auto_bit(k)                                 ? "auto or "
                          : is_placeholder(k, k->def)                      ? "auto or "
                                                                           : "";
        snprintf(buf, n, "%s%s", pre, b);
    } else if (k->type == DT_CFG_ENUM || k->type == DT_CFG_CHOICE) {
        snprintf(buf, n, "one of %s", k->choices);
    } else if (k->type == DT_CFG_BOOL) {
        snprintf(buf, n, "true|false");
    } else {
        snprintf(buf, n, "text");
    }
}

/* dt_config_set once the key is known. */
static int set_value(dt_config *c, const dt_cfg_key *k, const char *value, const char *where)
{
    const char *key = k->key;
    char *field = (char *)c + k->off;
    char want[128];
    switch (k->type) {
    case DT_CFG_INT: {
        if (strcmp(value, "auto") == 0 && strcmp(k->def, "auto") == 0) {
            *(int *)field = 0; /* resolved by the command (threads.h) */
            return DT_OK;
        }
        char *e;
        errno = 0;
        long long v = strtoll(value, &e, 10);
        describe_bounds(k, want, sizeof want);
        if (e == value || *e || errno || (double)v < k->min || (double)v > k->max)
            return dt_err("%s: %s = '%s': expected %s%s", where, key, value,
                          strcmp(k->def, "auto") == 0 ? "auto or " : "", want);
        if (k->width == 8)
            *(int64_t *)field = v;
        else
            *(int *)field = (int)v;
        return DT_OK;
    }
    case DT_CFG_FLOAT: {
        c->lr_auto &= ~lr_auto_bit(k);
        if (is_placeholder(k, value) || (strcmp(value, "auto") == 0 && lr_auto_bit(k))) {
            *(double *)field = NAN;
            if (!is_placeholder(k, value))
                c->lr_auto |= lr_auto_bit(k);
            return DT_OK;
        }
        char *e;
        errno = 0;
        double v = strtod(value, &e);
        dt_config_describe(k, want, sizeof want);
        if (e == value || *e || errno || !isfinite(v) || v < k->min || v > k->max ||
            (k->min_open && v == k->min) || (k->max_open && v == k->max))
            return dt_err("%s: %s = '%s': expected %s", where, key, value, want);
        *(double *)field = v;
        return DT_OK;
    }
    case DT_CFG_BOOL: {
        int v;
        if (!strcmp(value, "true") || !strcmp(value, "1") || !strcmp(value, "yes"))
            v = 1;
        else if (!strcmp(value, "false") || !strcmp(value, "0") || !strcmp(value, "no"))
            v = 0;
        else
            return dt_err("%s: %s = '%s': expected true or false", where, key, value);
        *(int *)field = v;
        return DT_OK;
    }
    case DT_CFG_STRING:
        if (strlen(value) >= DT_STR_MAX || !*value)
            return dt_err("%s: %s = '%s': expected a non-empty string shorter than %d bytes", where,
                          key, value, DT_STR_MAX);
        snprintf(field, DT_STR_MAX, "%s", value);
        return DT_OK;
    case DT_CFG_ENUM:
    case DT_CFG_CHOICE: {
        int i = choice_index(k->choices, value);
        if (i < 0)
            return dt_err("%s: %s = '%s': expected one of %s", where, key, value, k->choices);
        if (k->type == DT_CFG_CHOICE) {
            DT_ASSERT(k->width == (int)sizeof(int));
            *(int *)field = i;
        } else {
            snprintf(field, DT_STR_MAX, "%s", value);
        }
        return DT_OK;
    }
    }
    return DT_ERR;
}

/* dt_config_set; how: DT_GIVEN_CLI or DT_GIVEN_FILE (0: a default, not given) */
static int config_set(dt_config *c, const char *key, const char *value, const char *where, int how)
{
    int i = dt_config_find(key);
    if (i < 0)
        return dt_err("%s: unknown key '%s' (dtrain train --help lists the keys)", where, key);
    if (set_value(c, &dt_cfg_keys[i], value, where) != 0) /* i < DT_CFG_MAX_KEYS: defaults */
        return DT_ERR;
    if (how)
        c->given[i] = (unsigned char)how;
    return DT_OK;
}

int dt_config_set(dt_config *c, const char *key, const char *value, const char *where)
{
    return config_set(c, key, value, where, strcmp(where, "default") != 0 ? DT_GIVEN_CLI : 0);
}

void dt_config_forget_given(dt_config *c) { memset(c->given, 0, sizeof c->given); }

void dt_config_defaults(dt_config *c)
{
    memset(c, 0, sizeof *c);
    DT_ASSERT(dt_cfg_nkeys <= DT_CFG_MAX_KEYS);
    for (int i = 0; i < dt_cfg_nkeys; i++) {
        int rc = dt_config_set(c, dt_cfg_keys[i].key, dt_cfg_keys[i].def, "default");
        DT_ASSERT(rc == 0);
    }
}

static int load_cb(void *ud, const char *section, const char *key, const char *value,
                   const char *source, int line)
{
    if (!key)
        return DT_OK;
    char full[256], where[512];
    if (section[0])
        snprintf(full, sizeof full, "%s.%s", section, key);
    else
        snprintf(full, sizeof full, "%s", key);
    snprintf(where, sizeof where, "%s:%d", source, line);
    return config_set(ud, full, value, where, DT_GIVEN_FILE);
}

int dt_config_load(dt_config *c, const char *path) { return dt_ini_parse_file(path, load_cb, c); }

int dt_config_load_text(dt_config *c, const char *text, const char *source)
{
    return dt_ini_parse(text, source, load_cb, c);
}

/* optim.lr = auto / sched.max_lr = auto: which one the range test sets. With onecycle, whose
 * initial lr is max_lr / div_factor (optim.lr is not read), --lr auto means max_lr. */
static int resolve_lr_auto(dt_config *c)
{
    if (c->lr_auto == (DT_LR_AUTO_OPTIM | DT_LR_AUTO_MAX))
        return dt_err("optim.lr = auto and sched.max_lr = auto: set one of them (onecycle: "
                      "sched.max_lr)");
    if ((c->lr_auto & DT_LR_AUTO_OPTIM) && c->sp.kind == DT_SCHED_ONECYCLE) {
        c->lr_auto = DT_LR_AUTO_MAX;
        c->given[dt_config_find("optim.lr")] = 0;
        c->given[dt_config_find("sched.max_lr")] = 1;
        c->sp.max_lr = NAN;
        c->op.lr = NAN; /* resolved to the optimizer's default below; onecycle ignores it */
    }
    if ((c->lr_auto & DT_LR_AUTO_MAX) && c->sp.kind != DT_SCHED_ONECYCLE)
        return dt_err(
            "sched.max_lr = auto: the LR range test sets onecycle's peak lr; sched.kind = "
            "%s needs a number (or use --lr auto)",
            dt_sched_kind_name(c->sp.kind));
    return DT_OK;
}

int dt_config_need_lr(const dt_config *c, const char *cmd)
{
    if (c->lr_auto & DT_LR_AUTO_OPTIM)
        return dt_err("optim.lr = auto: only dtrain train runs the LR range test; dtrain %s needs "
                      "a number (dtrain lr-find prints suggestions)",
                      cmd);
    if (c->lr_auto & DT_LR_AUTO_MAX)
        return dt_err("sched.max_lr = auto: only dtrain train runs the LR range test; dtrain %s "
                      "needs a number (dtrain lr-find prints suggestions)",
                      cmd);
    return DT_OK;
}

int dt_config_resolve(dt_config *c)
{
    if (resolve_lr_auto(c) != 0)
        return DT_ERR;
    if (c->eval_batch_size == 0) /* 0: train.batch_size, as the printed configuration shows */
        c->eval_batch_size = c->batch_size;
    dt_optim_params d;
    dt_optim_params_defaults(&d, c->op.kind);
    if (c->op.kind == DT_OPTIM_SGD) { /* dtrain's SGD defaults; torch has no lr and momentum 0 */
        d.lr = 0.05;
        d.momentum = 0.9;
    }
    if (isnan(c->op.lr))
        c->op.lr = d.lr;
    if (isnan(c->op.momentum))
        c->op.momentum = d.momentum;
    if (isnan(c->op.weight_decay))
        c->op.weight_decay = d.weight_decay;
    if (isnan(c->op.eps))
        c->op.eps = d.eps;
    dt_optim_params chk = c->op;
    if (c->lr_auto & DT_LR_AUTO_OPTIM) /* stays auto until the range test */
        c->op.lr = NAN;
    if (dt_optim_params_check(&chk) != 0)
        return DT_ERR;
    dt_sched_params sd;
    dt_sched_params_defaults(&sd, c->sp.kind);
    if (isnan(c->sp.base_momentum))
        c->sp.base_momentum = sd.base_momentum;
    if (isnan(c->sp.max_momentum))
        c->sp.max_momentum = sd.max_momentum;
    if (dt_sched_parse_milestones(c->milestones, &c->sp) != 0)
        return DT_ERR;
    if (c->swa_mode == 2 && !isnan(c->swa_lr))
        return dt_err("swa.lr is for swa.mode = swa; an EMA leaves the schedule alone");
    if (dt_config_loss_scale(c, NULL, NULL) != 0)
        return DT_ERR;
    return DT_OK;
}

int dt_config_loss_scale(const dt_config *c, double *scale, int *dynamic)
{
    double s = 0.0;
    int dyn = 0;
    if (strcmp(c->loss_scale, "off") == 0) {
        s = 0.0;
    } else if (strcmp(c->loss_scale, "auto") == 0) {
        dyn = c->precision == 2; /* fp16 */
        s = dyn ? 65536.0 : 0.0;
    } else if (strcmp(c->loss_scale, "dynamic") == 0) {
        dyn = 1;
        s = 65536.0;
    } else {
        char *e;
        s = strtod(c->loss_scale, &e);
        if (e == c->loss_scale || *e || !(s > 0.0 && s <= 1e30))
            return dt_err("train.loss_scale = '%s': expected auto, dynamic, off or a number in "
                          "(0, 1e30]",
                          c->loss_scale);
    }
    if (scale)
        *scale = s;
    if (dynamic)
        *dynamic = dyn;
    return DT_OK;
}

/* ---- keys that the chosen optimizer, schedule or SWA mode does not read ---- */

/* Key `key` is read only when the CHOICE key `by` has one of the values in `users` ("a|b").
 * One line per key; a key without a line is always read. */
static const struct {
    const char *key, *by, *users;
} key_users[] = {
    {"optim.momentum", "optim.name", "sgd|rmsprop"},
    {"optim.dampening", "optim.name", "sgd"},
    {"optim.nesterov", "optim.name", "sgd"},
    {"optim.eps", "optim.name", "adagrad|adadelta|rmsprop|adam|adamw"},
    {"optim.lr_decay", "optim.name", "adagrad"},
    {"optim.initial_accumulator_value", "optim.name", "adagrad"},
    {"optim.rho", "optim.name", "adadelta"},
    {"optim.alpha", "optim.name", "rmsprop"},
    {"optim.centered", "optim.name", "rmsprop"},
    {"optim.beta1", "optim.name", "adam|adamw"},
    {"optim.beta2", "optim.name", "adam|adamw"},
    {"optim.amsgrad", "optim.name", "adam|adamw"},
    {"optim.lr", "sched.kind",
     "constant|step|multistep|exponential|cyclic|cosine|cosine_restarts|polynomial|plateau"},
    {"sched.step_size", "sched.kind", "step"},
    {"sched.gamma", "sched.kind", "step|multistep|exponential"},
    {"sched.milestones", "sched.kind", "multistep"},
    {"sched.max_lr", "sched.kind", "cyclic|onecycle"},
    {"sched.step_size_up", "sched.kind", "cyclic"},
    {"sched.step_size_down", "sched.kind", "cyclic"},
    {"sched.cyclic_mode", "sched.kind", "cyclic"},
    {"sched.cyclic_gamma", "sched.kind", "cyclic"},
    {"sched.cycle_momentum", "sched.kind", "cyclic|onecycle"},
    {"sched.base_momentum", "sched.kind", "cyclic|onecycle"},
    {"sched.max_momentum", "sched.kind", "cyclic|onecycle"},
    {"sched.t_max", "sched.kind", "cosine"},
    {"sched.eta_min", "sched.kind", "cosine|cosine_restarts"},
    {"sched.t_0", "sched.kind", "cosine_restarts"},
    {"sched.t_mult", "sched.kind", "cosine_restarts"},
    {"sched.total_steps", "sched.kind", "onecycle"},
    {"sched.pct_start", "sched.kind", "onecycle"},
    {"sched.anneal_strategy", "sched.kind", "onecycle"},
    {"sched.three_phase", "sched.kind", "onecycle"},
    {"sched.div_factor", "sched.kind", "onecycle"},
    {"sched.final_div_factor", "sched.kind", "onecycle"},
    {"sched.total_iters", "sched.kind", "polynomial"},
    {"sched.power", "sched.kind", "polynomial"},
    {"sched.plateau_metric", "sched.kind", "plateau"},
    {"sched.plateau_mode", "sched.kind", "plateau"},
    {"sched.factor", "sched.kind", "plateau"},
    {"sched.patience", "sched.kind", "plateau"},
    {"sched.threshold", "sched.kind", "plateau"},
    {"sched.threshold_mode", "sched.kind", "plateau"},
    {"sched.cooldown", "sched.kind", "plateau"},
    {"sched.min_lr", "sched.kind", "plateau"},
    {"sched.plateau_eps", "sched.kind", "plateau"},
    {"swa.interval", "swa.mode", "swa|ema"},
    {"swa.start", "swa.mode", "swa|ema"},
    {"swa.freq", "swa.mode", "swa|ema"},
    {"swa.lr", "swa.mode", "swa"},
    {"swa.anneal", "swa.mode", "swa"},
    {"swa.anneal_strategy", "swa.mode", "swa"},
    {"swa.ema_decay", "swa.mode", "ema"},
    {"swa.eval_every_epoch", "swa.mode", "swa|ema"},
};

static void value_text(const dt_config *c, const dt_cfg_key *k, char *buf, size_t n);

/* The defaults with c's optimizer, schedule and SWA mode, resolved as c was (`auto` is the
 * chosen kind's default: the value a printed configuration shows) */
static dt_config *resolved_defaults(const dt_config *c)
{
    dt_config *d = dt_xmalloc(1, sizeof *d);
    dt_config_defaults(d);
    static const char *const choices[] = {"optim.name", "sched.kind", "swa.mode"};
    for (size_t i = 0; i < sizeof choices / sizeof choices[0]; i++) {
        char v[DT_STR_MAX + 8];
        value_text(c, &dt_cfg_keys[dt_config_find(choices[i])], v, sizeof v);
        DT_ASSERT(dt_config_set(d, choices[i], v, "default") == DT_OK);
    }
    if (dt_config_resolve(d) != DT_OK) /* never seen: then `auto` stays, and more is news */
        dt_err_clear();
    return d;
}

int dt_config_warn_ignored(const dt_config *c, FILE *f)
{
    int count = 0;
    dt_config *def_cfg = NULL;
    for (size_t u = 0; u < sizeof key_users / sizeof key_users[0]; u++) {
        int i = dt_config_find(key_users[u].key), j = dt_config_find(key_users[u].by);
        DT_ASSERT(i >= 0 && j >= 0);
        if (!c->given[i])
            continue;
        char by[DT_STR_MAX + 8], val[DT_STR_MAX + 8];
        value_text(c, &dt_cfg_keys[j], by, sizeof by);
        if (choice_index(key_users[u].users, by) >= 0)
            continue;
        value_text(c, &dt_cfg_keys[i], val, sizeof val);
        /* a config file that lists every key (--print-config's, log.dir/config.ini) sets the
         * keys the choice does not read to their defaults: no news; one the user typed on the
         * command line, or changed in the file, is */
        if (c->given[i] == DT_GIVEN_FILE) {
            if (!def_cfg)
                def_cfg = resolved_defaults(c);
            char def[DT_STR_MAX + 8];
            value_text(def_cfg, &dt_cfg_keys[i], def, sizeof def);
            if (strcmp(val, def) == 0)
                continue;
        }
        /* a short list of readers says who would; a long one is every choice but a few */
        const char *users = key_users[u].users;
        int many = strchr(users, '|') && strchr(strchr(users, '|') + 1, '|') &&
                   strchr(strchr(strchr(users, '|') + 1, '|') + 1, '|');
        fprintf(f, "dtrain: warning: %s = %s is ignored: %s = %s does not read it%s%s%s\n",
                key_users[u].key, val, key_users[u].by, by, many ? "" : " (only ",
                many ? "" : users, many ? "" : ")");
        count++;
    }
    free(def_cfg);
    return count;
}

/* Whether the choice key `by` in c selects a user of key_users[u]. */
static int key_read(const dt_config *c, size_t u)
{
    char by[DT_STR_MAX + 8];
    value_text(c, &dt_cfg_keys[dt_config_find(key_users[u].by)], by, sizeof by);
    return choice_index(key_users[u].users, by) >= 0;
}

void dt_config_summary(const dt_config *c, const char *prefix, char *buf, size_t n)
{
    size_t len = 0, pl = strlen(prefix);
    buf[0] = '\0';
    dt_config *def_cfg = dt_xmalloc(1, sizeof *def_cfg);
    dt_config_defaults(def_cfg);
    for (int i = 0; i < dt_cfg_nkeys && len + 1 < n; i++) {
        const dt_cfg_key *k = &dt_cfg_keys[i];
        if (strncmp(k->key, prefix, pl) != 0 || k->type == DT_CFG_STRING)
            continue;
        int listed = 0, read = 1;
        for (size_t u = 0; u < sizeof key_users / sizeof key_users[0]; u++)
            if (strcmp(key_users[u].key, k->key) == 0) {
                listed = 1;
                read = key_read(c, u);
            }
        char val[DT_STR_MAX + 8], def[DT_STR_MAX + 8];
        value_text(c, k, val, sizeof val);
        value_text(def_cfg, k, def, sizeof def);
        int selector = 0;
        for (size_t u = 0; u < sizeof key_users / sizeof key_users[0]; u++)
            selector |= strcmp(key_users[u].by, k->key) == 0;
        /* the keys of the chosen kind, and the shared ones the run changed */
        if (selector || !read || (!listed && strcmp(val, def) == 0))
            continue;
        int w = snprintf(buf + len, n - len, "%s%s %s", len ? ", " : "", k->key + pl, val);
        len = w < 0 ? n : len + (size_t)w;
    }
    free(def_cfg);
}

/* Shortest %g text that reads back to the same double. */
static void fmt_double(char *buf, size_t n, double v)
{
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

static void value_text(const dt_config *c, const dt_cfg_key *k, char *buf, size_t n)
{
    const char *field = (const char *)c + k->off;
    switch (k->type) {
    case DT_CFG_INT:
        if (k->width != 8 && *(const int *)field == 0 && strcmp(k->def, "auto") == 0)
            snprintf(buf, n, "auto");
        else if (k->width == 8)
            snprintf(buf, n, "%lld", (long long)*(const int64_t *)field);
        else
            snprintf(buf, n, "%d", *(const int *)field);
        break;
    case DT_CFG_FLOAT:
        if (isnan(*(const double *)field))
            snprintf(buf, n, "%s", c->lr_auto & lr_auto_bit(k) ? "auto" : k->def);
        else
            fmt_double(buf, n, *(const double *)field);
        break;
    case DT_CFG_BOOL: snprintf(buf, n, "%s", *(const int *)field ? "true" : "false"); break;
    case DT_CFG_STRING: snprintf(buf, n, "%s", field); break;
    case DT_CFG_ENUM: snprintf(buf, n, "%s", field); break;
    case DT_CFG_CHOICE: {
        int idx = *(const int *)field, i = 0;
        const char *p = k->choices;
        while (i < idx && *p) {
            p += strcspn(p, "|");
            if (*p == '|')
                p++;
            i++;
        }
        snprintf(buf, n, "%.*s", (int)strcspn(p, "|"), p);
        break;
    }
    }
}

void dt_config_print(const dt_config *c, FILE *f)
{
    char section[64] = "";
    for (int i = 0; i < dt_cfg_nkeys; i++) {
        const dt_cfg_key *k = &dt_cfg_keys[i];
        const char *dot = strchr(k->key, '.');
        char sec[64] = "";
        if (dot)
            snprintf(sec, sizeof sec, "%.*s", (int)(dot - k->key), k->key);
        if (strcmp(sec, section) != 0) {
            fprintf(f, "\n[%s]\n", sec);
            snprintf(section, sizeof section, "%s", sec);
        }
        char val[DT_STR_MAX + 8];
        value_text(c, k, val, sizeof val);
        int quote = val[0] == '\0' || isspace((unsigned char)val[0]) || strchr(val, '#');
        fprintf(f, "%s = %s%s%s\n", dot ? dot + 1 : k->key, quote ? "\"" : "", val,
                quote ? "\"" : "");
    }
}

char *dt_config_text(const dt_config *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    DT_ASSERT(f);
    dt_config_print(c, f);
    DT_ASSERT(fclose(f) == 0);
    return buf;
}

void dt_config_help(FILE *f)
{
    fprintf(
        f, "Configuration keys (config file [section] key = value, or --set section.key=value):\n");
    for (int i = 0; i < dt_cfg_nkeys; i++) {
        const dt_cfg_key *k = &dt_cfg_keys[i];
        char range[160];
        dt_config_describe(k, range, sizeof range);
        fprintf(f, "  %-22s %s\n  %-22s   default %s; %s\n", k->key, k->help, "", k->def, range);
    }
}
