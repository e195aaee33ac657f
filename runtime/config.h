/*
 * config.h - dtrain's configuration: ONE table of keys (type, default, bounds, help) that drives
 * the INI config file (-c FILE), `--set key=value`, the long options, `--help`, and the resolved
 * configuration printed at start (itself a valid config file).
 *
 * Keys are "section.name" ("optim.lr"); in a config file, `[optim]` then `lr = 0.1`. Keys with no
 * section ("model", "seed") stand before any section header.
 */
#ifndef DT_CONFIG_H
#define DT_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "optim.h"
#include "sched.h"

#define DT_STR_MAX 256
#define DT_CFG_MAX_KEYS 256 /* room for the table (dt_config.given) */
/* dt_config.given[i]: how key i was set (0: it holds its default) */
enum { DT_GIVEN_CLI = 1, DT_GIVEN_FILE = 2 };

/* dt_config.lr_auto bits: the value `auto`, given explicitly, asks for the LR range test. */
#define DT_LR_AUTO_OPTIM 1 /* optim.lr = auto */
#define DT_LR_AUTO_MAX 2   /* sched.max_lr = auto */

typedef struct dt_config {
    char model[DT_STR_MAX];
    int64_t seed;
    int threads;
    int bind; /* threads.h DT_BIND_*: auto, cores, none (the CHOICE order) */
    /* data */
    char data_name[DT_STR_MAX];
    char data_dir[DT_STR_MAX];
    int64_t limit_train, limit_test;
    char h5_train[DT_STR_MAX], h5_test[DT_STR_MAX]; /* data.name = hdf5: the split files */
    char h5_images[DT_STR_MAX], h5_labels[DT_STR_MAX], h5_layout[DT_STR_MAX];
    int classes;                            /* 0: the format's / inferred */
    char mean[DT_STR_MAX], std[DT_STR_MAX]; /* "auto" or 1 or C comma-separated values */
    int crop_pad;                           /* random crop padding (0: off) */
    int flip;                               /* random horizontal flip */
    /* train */
    int epochs;
    int batch_size;       /* per rank */
    int eval_batch_size;  /* per rank */
    int64_t max_steps;    /* 0: no limit */
    int64_t stop_at_step; /* tests: act as if pre-empted at this step (0: off) */
    int drop_last;
    int shuffle;
    int progress; /* 0 never, 1 when stdout is a terminal, 2 always */
    double label_smoothing;
    double mixup_alpha; /* 0: off */
    int sync_bn;
    double bucket_mb; /* gradient allreduce buckets (MB; 0: one allreduce after backward) */
    int allreduce;    /* dist.h DT_ALLREDUCE_AUTO, _MPI, _SHM (the CHOICE order) */
    int grad_panels;  /* 1: linear weight gradients in bucket-sized panels (kernels/poll.h) */
    int precision;    /* lowp.h: DT_FP32, DT_BF16, DT_FP16 (the CHOICE order) */
    char loss_scale[DT_STR_MAX]; /* auto | dynamic | a number */
    int64_t loss_scale_interval;
    /* swa */
    int swa_mode; /* dt_swa_mode: off, swa, ema */
    int swa_per_epoch;
    int64_t swa_start, swa_freq, swa_anneal;
    double swa_lr; /* NaN (auto): keep the schedule */
    int swa_anneal_linear;
    double swa_decay;
    int swa_eval_epoch; /* evaluate the average every epoch (else at the end) */
    /* optim: every optimizer's hyperparameters (optim.h); NaN = "auto" until resolved */
    dt_optim_params op;
    int no_decay_bias_bn;
    double clip_grad_norm;
    /* sched: every schedule's hyperparameters (sched.h) */
    dt_sched_params sp;
    char milestones[DT_STR_MAX];
    int plateau_metric; /* 0 test_loss, 1 test_acc, 2 train_loss */
    /* ckpt */
    char ckpt_dir[DT_STR_MAX];
    int64_t ckpt_every_steps;
    int ckpt_every_epoch;
    int ckpt_keep;
    int ckpt_on_error;       /* 0: continue, 1: stop */
    char resume[DT_STR_MAX]; /* none | auto | PATH */
    /* log */
    char log_dir[DT_STR_MAX];
    int64_t log_every_steps;
    double log_flush_s;            /* metrics rows flushed at least this often (metrics.h) */
    char log_timeline[DT_STR_MAX]; /* Chrome trace file (timeline.h); "none": off */
    int64_t log_timeline_steps, log_timeline_every;
    int log_header;      /* 0 short, 1 full (the whole configuration and the layer table) */
    double dist_timeout; /* watchdog seconds (0: off); see dt_dist_watchdog */
    /* kernels */
    int kernels_isa;  /* 0: auto; else the dt_isa + 1 (kernels/isa.h DT_ISA_CHOICES order) */
    int kernels_conv; /* DT_CONV_BACKEND_* (kernels/conv_dnnl.h) */
    /* not keys: how the values came */
    int lr_auto;                          /* DT_LR_AUTO_* bits: run the range test first */
    unsigned char given[DT_CFG_MAX_KEYS]; /* key i was set: DT_GIVEN_CLI or _FILE; 0: not */
} dt_config;

/* STRING and ENUM fill a char[DT_STR_MAX]; CHOICE stores the index of the value among `choices`
 * in an int (enum) field. A FLOAT whose default is "auto" holds NaN until dt_config_resolve. */
typedef enum {
    DT_CFG_INT,
    DT_CFG_FLOAT,
    DT_CFG_BOOL,
    DT_CFG_STRING,
    DT_CFG_ENUM,
    DT_CFG_CHOICE
} dt_cfg_type;

typedef struct dt_cfg_key {
    const char *key; /* "optim.lr" */
    dt_cfg_type type;
    size_t off;          /* offsetof(dt_config, field) */
    int width;           /* bytes of an INT field (4 or 8) */
    const char *def;     /* default, as text */
    double min, max;     /* inclusive bounds of INT and FLOAT */
    int min_open;        /* 1: the lower bound itself is excluded */
    int max_open;        /* 1: the upper bound itself is excluded */
    const char *choices; /* ENUM: "a|b|c" */
    const char *help;
} dt_cfg_key;

/* The table and its length. */
extern const dt_cfg_key dt_cfg_keys[];
extern const int dt_cfg_nkeys;

/* Fills every key with its default. */
void dt_config_defaults(dt_config *c);

/* Sets one key from text, checking type and bounds. `where` prefixes the message ("--set",
 * "run.cfg:12"). Returns 0 or DT_ERR: "WHERE: unknown key 'x'" / "WHERE: optim.lr = 'abc':
 * expected a number in (0, 1e+06]". */
int dt_config_set(dt_config *c, const char *key, const char *value, const char *where);

/* Applies an INI config file. Returns 0 or DT_ERR naming file:line and key. */
int dt_config_load(dt_config *c, const char *path);
/* The same for config text held in memory (a checkpoint's "config"); source names it in messages. */
int dt_config_load_text(dt_config *c, const char *text, const char *source);

/* Fills "auto" values with PyTorch's default for the chosen optimizer / schedule (dtrain's own
 * for SGD: lr 0.05, momentum 0.9), parses sched.milestones, and runs the cross-key checks
 * (nesterov needs momentum > 0 and dampening = 0, ...). Returns 0 or DT_ERR naming the key. */
int dt_config_resolve(dt_config *c);

/* One line of the run header: "KEY VALUE, ..." (KEY without `prefix`) for the keys under prefix
 * ("optim.") that the chosen optimizer/schedule reads and that are its own or changed from their
 * defaults; the choice key itself is left out. Truncated to n bytes. */
void dt_config_summary(const dt_config *c, const char *prefix, char *buf, size_t n);

/* DT_ERR "optim.lr = auto: only dtrain train runs the LR range test; dtrain CMD needs a number"
 * when cfg asks for the range test (cfg->lr_auto), for the commands that do not run it. */
int dt_config_need_lr(const dt_config *c, const char *cmd);

/* train.loss_scale resolved: *scale the initial (or fixed) loss scale, 0 when off; *dynamic 1
 * for GradScaler's dynamic scaling (either may be NULL). Returns 0 or DT_ERR naming the key. */
int dt_config_loss_scale(const dt_config *c, double *scale, int *dynamic);

/* Writes the whole configuration as a config file (loadable with -c). */
void dt_config_print(const dt_config *c, FILE *f);
/* dt_config_print's text, malloc'd (the caller frees it). */
char *dt_config_text(const dt_config *c);

/* Writes the key reference for --help: every key with its default and its bounds, both taken
 * from the table (the bounds text is the one dt_config_set's errors use). */
void dt_config_help(FILE *f);

/* The bounds of key k in words ("an integer in [1, 65536]", "one of a|b", "true|false"). */
void dt_config_describe(const dt_cfg_key *k, char *buf, size_t n);

/* Index of key in the table, or -1. */
int dt_config_find(const char *key);

/* Forgets which keys were given (after applying a checkpoint's configuration as the base). */
void dt_config_forget_given(dt_config *c);

/* Writes one line "dtrain: warning: KEY = V is ignored: WHY" to f for each key the user set
 * explicitly that the chosen optimizer, schedule or SWA mode does not read: on the command
 * line, or in a config file to a value other than its default (a file that lists every key,
 * as --print-config writes, warns of nothing). Returns the count. */
int dt_config_warn_ignored(const dt_config *c, FILE *f);

#endif
