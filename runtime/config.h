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

#define DT_STR_MAX 256

typedef struct dt_config {
    char model[DT_STR_MAX];
    int64_t seed;
    int threads;
    /* data */
    char data_name[DT_STR_MAX];
    char data_dir[DT_STR_MAX];
    int64_t limit_train, limit_test;
    char h5_train[DT_STR_MAX], h5_test[DT_STR_MAX];   /* data.name = hdf5: the split files */
    char h5_images[DT_STR_MAX], h5_labels[DT_STR_MAX], h5_layout[DT_STR_MAX];
    int classes;                                      /* 0: the format's / inferred */
    char mean[DT_STR_MAX], std[DT_STR_MAX];           /* "auto" or 1 or C comma-separated values */
    int crop_pad;                                     /* random crop padding (0: off) */
    int flip;                                         /* random horizontal flip */
    /* train */
    int epochs;
    int batch_size;       /* per rank */
    int eval_batch_size;  /* per rank */
    int64_t max_steps;    /* 0: no limit */
    int drop_last;
    int shuffle;
    int progress;         /* 0 never, 1 when stdout is a terminal, 2 always */
    /* optim */
    char optim[DT_STR_MAX];
    double lr, momentum, dampening, weight_decay;
    int nesterov;
    /* sched */
    char sched[DT_STR_MAX];
    double eta_min;
    int64_t t_max;
    char sched_interval[DT_STR_MAX];
} dt_config;

typedef enum { DT_CFG_INT, DT_CFG_FLOAT, DT_CFG_BOOL, DT_CFG_STRING, DT_CFG_ENUM } dt_cfg_type;

typedef struct dt_cfg_key {
    const char *key;      /* "optim.lr" */
    dt_cfg_type type;
    size_t off;           /* offsetof(dt_config, field) */
    int width;            /* bytes of an INT field (4 or 8) */
    const char *def;      /* default, as text */
    double min, max;      /* inclusive bounds of INT and FLOAT */
    int min_open;         /* 1: the lower bound itself is excluded */
    int max_open;         /* 1: the upper bound itself is excluded */
    const char *choices;  /* ENUM: "a|b|c" */
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

/* Cross-key checks (e.g. nesterov needs momentum > 0 and dampening = 0). Returns 0 or DT_ERR. */
int dt_config_check(const dt_config *c);

/* Writes the whole configuration as a config file (loadable with -c). */
void dt_config_print(const dt_config *c, FILE *f);

/* Writes the key reference for --help. */
void dt_config_help(FILE *f);

#endif
