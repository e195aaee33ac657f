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

#define OFF(f) offsetof(dt_config, f)
#define INT(k, f, d, lo, hi, h) {k, DT_CFG_INT, OFF(f), (int)sizeof(((dt_config *)0)->f), d, lo, hi, 0, 0, NULL, h}
#define FLT(k, f, d, lo, hi, lopen, hopen, h) {k, DT_CFG_FLOAT, OFF(f), 0, d, lo, hi, lopen, hopen, NULL, h}
#define BOOL(k, f, d, h) {k, DT_CFG_BOOL, OFF(f), 0, d, 0, 1, 0, 0, NULL, h}
#define STR(k, f, d, h) {k, DT_CFG_STRING, OFF(f), 0, d, 0, 0, 0, 0, NULL, h}
#define ENUM(k, f, d, ch, h) {k, DT_CFG_ENUM, OFF(f), 0, d, 0, 0, 0, 0, ch, h}

/* Grouped by section, sections in the order the resolved config prints them. */
const dt_cfg_key dt_cfg_keys[] = {
    STR("model", model, "mlp", "model: a built-in name or a path to a model description (.cfg)"),
    INT("seed", seed, "0", 0, 9.2e18, "random seed: initialization, sampler order (seed + epoch)"),
    INT("threads", threads, "1", 1, 1024, "OpenBLAS threads per rank"),

    ENUM("data.name", data_name, "mnist", "mnist|fashion-mnist|cifar10|hdf5", "dataset"),
    STR("data.dir", data_dir, "data", "folder holding <dataset>/ (as made by `make data`)"),
    INT("data.limit_train", limit_train, "0", 0, 1e12, "use only the first N training samples (0: all)"),
    INT("data.limit_test", limit_test, "0", 0, 1e12, "use only the first N test samples (0: all)"),
    STR("data.h5_train", h5_train, "none", "data.name = hdf5: the training file"),
    STR("data.h5_test", h5_test, "none", "data.name = hdf5: the test file"),
    STR("data.h5_images", h5_images, "images", "data.name = hdf5: image dataset (uint8 or float32)"),
    STR("data.h5_labels", h5_labels, "labels", "data.name = hdf5: label dataset (integers)"),
    ENUM("data.h5_layout", h5_layout, "nchw", "nchw|nhwc", "data.name = hdf5: layout of rank-4 images"),
    INT("data.classes", classes, "0", 0, 100000, "number of classes (0: the format's, or max label + 1)"),
    STR("data.mean", mean, "auto", "per-channel mean, 1 or C comma-separated values in [0,1] pixel units (auto: the dataset's)"),
    STR("data.std", std, "auto", "per-channel std, like data.mean"),
    INT("data.crop_pad", crop_pad, "0", 0, 64, "augmentation: random crop after zero padding by this many pixels (0: off; CIFAR recipe: 4)"),
    BOOL("data.flip", flip, "false", "augmentation: random horizontal flip"),

    INT("train.epochs", epochs, "3", 1, 1e6, "epochs"),
    INT("train.batch_size", batch_size, "64", 1, 65536, "batch size PER RANK (global = this x ranks)"),
    INT("train.eval_batch_size", eval_batch_size, "0", 0, 65536, "evaluation batch size per rank (0: train.batch_size)"),
    INT("train.max_steps", max_steps, "0", 0, 1e15, "stop after this many optimizer steps (0: no limit)"),
    BOOL("train.drop_last", drop_last, "false", "DistributedSampler drop_last: drop the tail instead of padding"),
    BOOL("train.shuffle", shuffle, "true", "shuffle each epoch (permutation from seed + epoch)"),
    {"train.progress", DT_CFG_ENUM, OFF(progress), 0, "auto", 0, 0, 0, 0, "never|auto|always",
     "live progress bar: auto = when stdout is a terminal"},

    ENUM("optim.name", optim, "sgd", "sgd", "optimizer"),
    FLT("optim.lr", lr, "0.1", 0, 1e6, 0, 0, "learning rate (base lr of the schedule)"),
    FLT("optim.momentum", momentum, "0.9", 0, 1, 0, 1, "SGD momentum"),
    FLT("optim.dampening", dampening, "0", 0, 1, 0, 0, "SGD dampening"),
    BOOL("optim.nesterov", nesterov, "false", "Nesterov momentum (needs momentum > 0, dampening = 0)"),
    FLT("optim.weight_decay", weight_decay, "0", 0, 1e6, 0, 0, "L2 weight decay (added to the gradient, as torch.optim.SGD)"),

    ENUM("sched.kind", sched, "cosine", "constant|cosine", "learning-rate schedule"),
    FLT("sched.eta_min", eta_min, "0", 0, 1e6, 0, 0, "cosine: final learning rate"),
    INT("sched.t_max", t_max, "0", 0, 1e15, "cosine: period in steps (or epochs); 0 = the whole run"),
    ENUM("sched.interval", sched_interval, "step", "step|epoch", "advance the schedule every step or every epoch"),
};
const int dt_cfg_nkeys = (int)(sizeof dt_cfg_keys / sizeof dt_cfg_keys[0]);

static const dt_cfg_key *find_key(const char *key)
{
    for (int i = 0; i < dt_cfg_nkeys; i++)
        if (strcmp(dt_cfg_keys[i].key, key) == 0)
            return &dt_cfg_keys[i];
    return NULL;
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

int dt_config_set(dt_config *c, const char *key, const char *value, const char *where)
{
    const dt_cfg_key *k = find_key(key);
    if (!k)
        return dt_err("%s: unknown key '%s' (dtrain train --help lists the keys)", where, key);
    char *field = (char *)c + k->off;
    char want[128];
    switch (k->type) {
    case DT_CFG_INT: {
        char *e;
        errno = 0;
        long long v = strtoll(value, &e, 10);
        describe_bounds(k, want, sizeof want);
        if (e == value || *e || errno || (double)v < k->min || (double)v > k->max)
            return dt_err("%s: %s = '%s': expected %s", where, key, value, want);
        if (k->width == 8)
            *(int64_t *)field = v;
        else
            *(int *)field = (int)v;
        return DT_OK;
    }
    case DT_CFG_FLOAT: {
        char *e;
        errno = 0;
        double v = strtod(value, &e);
        describe_bounds(k, want, sizeof want);
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
    case DT_CFG_ENUM: {
        int i = choice_index(k->choices, value);
        if (i < 0)
            return dt_err("%s: %s = '%s': expected one of %s", where, key, value, k->choices);
        if (k->off == OFF(progress))
            c->progress = i;
        else
            snprintf(field, DT_STR_MAX, "%s", value);
        return DT_OK;
    }
    }
    return DT_ERR;
}

void dt_config_defaults(dt_config *c)
{
    memset(c, 0, sizeof *c);
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
    return dt_config_set(ud, full, value, where);
}

int dt_config_load(dt_config *c, const char *path)
{
    return dt_ini_parse_file(path, load_cb, c);
}

int dt_config_check(const dt_config *c)
{
    if (c->nesterov && (c->momentum <= 0.0 || c->dampening != 0.0))
        return dt_err("optim.nesterov = true requires optim.momentum > 0 and optim.dampening = 0 "
                      "(as torch.optim.SGD); got momentum %g, dampening %g",
                      c->momentum, c->dampening);
    if (c->eta_min > c->lr && strcmp(c->sched, "cosine") == 0)
        return dt_err("sched.eta_min = %g is above optim.lr = %g: expected eta_min <= lr",
                      c->eta_min, c->lr);
    return DT_OK;
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
        if (k->width == 8)
            snprintf(buf, n, "%lld", (long long)*(const int64_t *)field);
        else
            snprintf(buf, n, "%d", *(const int *)field);
        break;
    case DT_CFG_FLOAT:
        fmt_double(buf, n, *(const double *)field);
        break;
    case DT_CFG_BOOL:
        snprintf(buf, n, "%s", *(const int *)field ? "true" : "false");
        break;
    case DT_CFG_STRING:
        snprintf(buf, n, "%s", field);
        break;
    case DT_CFG_ENUM:
        if (k->off == OFF(progress)) {
            const char *names[] = {"never", "auto", "always"};
            snprintf(buf, n, "%s", names[c->progress]);
        } else {
            snprintf(buf, n, "%s", field);
        }
        break;
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

void dt_config_help(FILE *f)
{
    fprintf(f, "Configuration keys (config file [section] key = value, or --set section.key=value):\n");
    for (int i = 0; i < dt_cfg_nkeys; i++) {
        const dt_cfg_key *k = &dt_cfg_keys[i];
        char range[160] = "";
        if (k->type == DT_CFG_INT || k->type == DT_CFG_FLOAT)
            describe_bounds(k, range, sizeof range);
        else if (k->type == DT_CFG_ENUM)
            snprintf(range, sizeof range, "one of %s", k->choices);
        else if (k->type == DT_CFG_BOOL)
            snprintf(range, sizeof range, "true|false");
        else
            snprintf(range, sizeof range, "text");
        fprintf(f, "  %-22s %s\n  %-22s   default %s; %s\n", k->key, k->help, "", k->def, range);
    }
}
