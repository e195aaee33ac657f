/*
 * data_open.c - see data_open.h. The registry: dataset names to readers (data_idx, data_cifar,
 * data_h5), each split's files, the built-ins' published normalization, the test split following
 * the training set, and the data.* configuration keys.
 */
#include "data_open.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "config.h"
#include "data.h"
#include "data_cifar.h"
#include "data_h5.h"
#include "data_idx.h"

/* Per-channel statistics of the training sets (torchvision tutorials' values). */
static const struct {
    const char *name, *dir, *train_img, *train_lbl, *test_img, *test_lbl;
    float mean, std;
} builtin[] = {
    {"mnist", "mnist", "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
     "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 0.1307f, 0.3081f},
    {"fashion-mnist", "fashion-mnist", "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
     "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 0.2860f, 0.3530f},
};

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* snprintf that reports truncation as an error naming what was being built. */
DT_PRINTF(3, 4) static int path_fmt(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size)
        return dt_err("data.dir: path '%.64s...' longer than %zu bytes", buf, size - 1);
    return DT_OK;
}

/* The IDX built-in builtin[b]: its split's two files, then its published normalization. */
static int open_idx(dt_dataset *ds, size_t b, const char *dir, int train)
{
    char ip[4096], lp[4096];
    if (path_fmt(ip, sizeof ip, "%s/%s/%s", dir, builtin[b].dir,
                 train ? builtin[b].train_img : builtin[b].test_img) != 0 ||
        path_fmt(lp, sizeof lp, "%s/%s/%s", dir, builtin[b].dir,
                 train ? builtin[b].train_lbl : builtin[b].test_lbl) != 0 ||
        dt_idx_load(ds, ip, lp, 10) != 0)
        return DT_ERR;
    dt_dataset_set_norm(ds, &builtin[b].mean, &builtin[b].std);
    return DT_OK;
}

/* CIFAR-10's folder: dir/cifar10, or else dir/cifar-10-batches-bin (the folder name inside the
 * official tarball cifar-10-binary.tar.gz). */
static int cifar_folder(char *folder, size_t size, const char *dir)
{
    char alt[4096];
    if (path_fmt(folder, size, "%s/cifar10", dir) != 0)
        return DT_ERR;
    if (is_dir(folder))
        return DT_OK;
    if (path_fmt(alt, sizeof alt, "%s/cifar-10-batches-bin", dir) != 0)
        return DT_ERR;
    if (!is_dir(alt))
        return dt_err("%s: no such directory (nor %s): expected the CIFAR-10 binary "
                      "batches data_batch_1.bin .. data_batch_5.bin, test_batch.bin there",
                      folder, alt);
    return path_fmt(folder, size, "%s", alt);
}

/* CIFAR-10: the five training batches or the test batch of its folder. */
static int open_cifar(dt_dataset *ds, const char *dir, int train, int64_t limit)
{
    static const char *const files[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                        "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};
    char folder[4096], paths[5][4096];
    const char *pp[5];
    int np = train ? 5 : 1;
    if (cifar_folder(folder, sizeof folder, dir) != 0)
        return DT_ERR;
    for (int k = 0; k < np; k++) {
        if (path_fmt(paths[k], sizeof paths[k], "%s/%s", folder, files[train ? k : 5]) != 0)
            return DT_ERR;
        pp[k] = paths[k];
    }
    return dt_cifar10_load(ds, pp, np, limit);
}

/* The built-in IDX datasets and CIFAR-10: classes are fixed; normalization is the published one
 * unless opt gives one. */
static int open_builtin(dt_dataset *ds, const char *name, const char *dir, int train, int64_t limit,
                        const dt_dataset_opts *opt)
{
    int rc = DT_ERR, found = 0;
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0] && !found; i++) {
        if (strcmp(name, builtin[i].name) == 0) {
            found = 1;
            rc = open_idx(ds, i, dir, train);
        }
    }
    if (!found && strcmp(name, "cifar10") == 0) {
        found = 1;
        rc = open_cifar(ds, dir, train, limit);
    }
    if (!found)
        return dt_err("data.name: unknown dataset '%s': expected mnist, fashion-mnist, cifar10 or "
                      "hdf5",
                      name);
    if (rc != 0)
        return DT_ERR;
    snprintf(ds->name, sizeof ds->name, "%s", name);
    dt_dataset_limit(ds, limit);
    if (opt->classes > 0 && opt->classes != ds->classes)
        return dt_err("data.classes = %d: dataset %s has %d classes", opt->classes, name,
                      ds->classes);
    if (opt->norm_n > 0)
        return dt_dataset_apply_norm(ds, opt);
    if (opt->train) {
        const dt_dataset *t = opt->train;
        if (t->c != ds->c || t->h != ds->h || t->w != ds->w)
            return dt_err("%s: test samples are %dx%dx%d but the training set %s has %dx%dx%d", dir,
                          ds->c, ds->h, ds->w, t->name, t->c, t->h, t->w);
        dt_dataset_set_norm(ds, t->mean, t->std);
    }
    return DT_OK;
}

int dt_dataset_open_ex(dt_dataset *ds, const char *name, const char *path, const char *split,
                       int64_t limit, const dt_dataset_opts *opt)
{
    static const dt_dataset_opts defaults;
    if (!opt)
        opt = &defaults;
    memset(ds, 0, sizeof *ds);
    int train = strcmp(split, "train") == 0;
    DT_ASSERT(train || strcmp(split, "test") == 0);
    if (strcmp(name, "hdf5") == 0 && (!path || !path[0]))
        return dt_err("data.h5_%s: no HDF5 file given for the %s split (data.name = hdf5)", split,
                      split);
    int rc = strcmp(name, "hdf5") == 0 ? dt_h5data_open(ds, path, opt, limit)
                                       : open_builtin(ds, name, path, train, limit, opt);
    if (rc != 0) {
        dt_dataset_free(ds);
        return DT_ERR;
    }
    return DT_OK;
}

int dt_dataset_open(dt_dataset *ds, const char *name, const char *dir, const char *split,
                    int64_t limit)
{
    return dt_dataset_open_ex(ds, name, dir, split, limit, NULL);
}

/* Parses "auto" (n = 0) or 1..DT_MAX_CHANNELS comma-separated positive numbers. */
static int parse_norm(const char *key, const char *text, float *out, int *n)
{
    *n = 0;
    if (strcmp(text, "auto") == 0)
        return DT_OK;
    const char *p = text;
    while (*n < DT_MAX_CHANNELS) {
        char *e;
        double v = strtod(p, &e);
        if (e == p || !(v > -1e3 && v < 1e3))
            break;
        out[(*n)++] = (float)v;
        if (*e == '\0')
            return DT_OK;
        if (*e != ',')
            break;
        p = e + 1;
    }
    return dt_err("%s = '%s': expected auto, or 1 to %d comma-separated numbers", key, text,
                  DT_MAX_CHANNELS);
}

/* The dataset options of the configuration (normalization parsed). 0 or DT_ERR. */
static int data_opts(const dt_config *cfg, dt_dataset_opts *out)
{
    dt_dataset_opts o;
    memset(&o, 0, sizeof o);
    o.h5_images = cfg->h5_images;
    o.h5_labels = cfg->h5_labels;
    o.h5_layout = cfg->h5_layout;
    o.classes = cfg->classes;
    int nm, ns;
    if (parse_norm("data.mean", cfg->mean, o.mean, &nm) != 0 ||
        parse_norm("data.std", cfg->std, o.std, &ns) != 0)
        return DT_ERR;
    if (nm != ns)
        return dt_err("data.mean has %d values but data.std has %d: expected the same count", nm,
                      ns);
    for (int i = 0; i < ns; i++)
        if (!(o.std[i] > 0.0f))
            return dt_err("data.std = '%s': expected positive values", cfg->std);
    o.norm_n = nm;
    *out = o;
    return DT_OK;
}

int dt_open_data(const dt_config *cfg, dt_dataset *train, dt_dataset *test)
{
    dt_dataset_opts o;
    if (data_opts(cfg, &o) != 0)
        return DT_ERR;
    int h5 = strcmp(cfg->data_name, "hdf5") == 0;
    if (h5 && !test && strcmp(cfg->h5_train, "none") == 0)
        return dt_err("data.name = hdf5 needs data.h5_train (an HDF5 file)");
    if (h5 && test && (strcmp(cfg->h5_train, "none") == 0 || strcmp(cfg->h5_test, "none") == 0))
        return dt_err("data.name = hdf5 needs data.h5_train and data.h5_test (HDF5 files)");
    if (dt_dataset_open_ex(train, cfg->data_name, h5 ? cfg->h5_train : cfg->data_dir, "train",
                           cfg->limit_train, &o) != 0)
        return DT_ERR;
    if (!test)
        return DT_OK;
    o.train = train;
    return dt_dataset_open_ex(test, cfg->data_name, h5 ? cfg->h5_test : cfg->data_dir, "test",
                              cfg->limit_test, &o);
}

int dt_open_data_split(const dt_config *cfg, const char *split, dt_dataset *ds)
{
    dt_dataset_opts o;
    if (data_opts(cfg, &o) != 0)
        return DT_ERR;
    const int h5 = strcmp(cfg->data_name, "hdf5") == 0, test = strcmp(split, "test") == 0;
    DT_ASSERT(test || strcmp(split, "train") == 0);
    const char *file = test ? cfg->h5_test : cfg->h5_train;
    if (h5 && strcmp(file, "none") == 0)
        return dt_err("data.name = hdf5 needs data.h5_%s (an HDF5 file)", split);
    if (!test || !h5 || o.norm_n > 0)
        return dt_dataset_open_ex(ds, cfg->data_name, h5 ? file : cfg->data_dir, split,
                                  test ? cfg->limit_test : cfg->limit_train, &o);
    /* hdf5 with data.mean = auto: the test set is normalized by the training set's statistics */
    dt_dataset train;
    memset(&train, 0, sizeof train);
    int rc = dt_open_data(cfg, &train, ds);
    dt_dataset_free(&train);
    return rc;
}
