/*
 * data.c - see data.h. IDX reading, the name dispatch, normalization and the plain gather;
 * CIFAR-10 is in data_cifar.c, HDF5 in data_h5.c, augmentation in augment.c.
 */
#include "data.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

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

void dt_dataset_set_norm(dt_dataset *ds, const float *mean, const float *std)
{
    for (int c = 0; c < ds->c && c < DT_MAX_CHANNELS; c++) {
        ds->mean[c] = mean[c];
        ds->std[c] = std[c];
        for (int u = 0; u < 256; u++)
            ds->lut[c][u] = ((float)u / 255.0f - mean[c]) / std[c];
    }
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Maps a whole file read-only. Returns 0 or DT_ERR. */
static int map_file(const char *path, void **map, size_t *len)
{
    int fd = dt_open_regular(path, "an IDX file");
    if (fd < 0)
        return DT_ERR;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return dt_err("%s: cannot stat: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode) || st.st_size == 0) {
        close(fd);
        return dt_err("%s: expected a non-empty regular file", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return dt_err("%s: cannot mmap: %s", path, strerror(errno));
    *map = p;
    *len = (size_t)st.st_size;
    return DT_OK;
}

static void release(dt_dataset *ds)
{
    for (int i = 0; i < 2; i++) {
        if (ds->map[i])
            munmap(ds->map[i], ds->map_len[i]);
        ds->map[i] = NULL;
        ds->map_len[i] = 0;
    }
    for (int i = 0; i < 4; i++) {
        free(ds->owned[i]);
        ds->owned[i] = NULL;
    }
    ds->images = NULL;
    ds->fimages = NULL;
    ds->labels = NULL;
    ds->labels32 = NULL;
    ds->n = 0;
}

int dt_idx_load(dt_dataset *ds, const char *images_path, const char *labels_path, int classes)
{
    memset(ds, 0, sizeof *ds);
    if (map_file(images_path, &ds->map[0], &ds->map_len[0]) != 0)
        goto fail;
    if (map_file(labels_path, &ds->map[1], &ds->map_len[1]) != 0)
        goto fail;
    const uint8_t *img = ds->map[0], *lbl = ds->map[1];
    if (ds->map_len[0] < 16 || be32(img) != 0x00000803u) {
        dt_err("%s: not an IDX image file: expected magic 0x00000803 (ubyte, 3 dimensions)%s",
               images_path, ds->map_len[0] < 16 ? " and a 16-byte header" : "");
        goto fail;
    }
    if (ds->map_len[1] < 8 || be32(lbl) != 0x00000801u) {
        dt_err("%s: not an IDX label file: expected magic 0x00000801 (ubyte, 1 dimension)%s",
               labels_path, ds->map_len[1] < 8 ? " and an 8-byte header" : "");
        goto fail;
    }
    uint64_t n = be32(img + 4), h = be32(img + 8), w = be32(img + 12), nl = be32(lbl + 4);
    if (n == 0 || h == 0 || w == 0 || h > 4096 || w > 4096) {
        dt_err("%s: implausible dimensions %llu x %llu x %llu", images_path, (unsigned long long)n,
               (unsigned long long)h, (unsigned long long)w);
        goto fail;
    }
    if (ds->map_len[0] != 16 + n * h * w) {
        dt_err("%s: size %zu bytes, expected %llu (16-byte header + %llu images of %llux%llu)%s",
               images_path, ds->map_len[0], (unsigned long long)(16 + n * h * w),
               (unsigned long long)n, (unsigned long long)h, (unsigned long long)w,
               ds->map_len[0] < 16 + n * h * w ? ": truncated" : "");
        goto fail;
    }
    if (ds->map_len[1] != 8 + nl) {
        dt_err("%s: size %zu bytes, expected %llu (8-byte header + %llu labels)%s", labels_path,
               ds->map_len[1], (unsigned long long)(8 + nl), (unsigned long long)nl,
               ds->map_len[1] < 8 + nl ? ": truncated" : "");
        goto fail;
    }
    if (nl != n) {
        dt_err("%s has %llu labels but %s has %llu images: expected the same count", labels_path,
               (unsigned long long)nl, images_path, (unsigned long long)n);
        goto fail;
    }
    for (uint64_t i = 0; i < n; i++) {
        if (lbl[8 + i] >= classes) {
            dt_err("%s: label %u of sample %llu is out of range: expected 0..%d", labels_path,
                   lbl[8 + i], (unsigned long long)i, classes - 1);
            goto fail;
        }
    }
    ds->n = (int64_t)n;
    ds->c = 1;
    ds->h = (int)h;
    ds->w = (int)w;
    ds->classes = classes;
    ds->images = img + 16;
    ds->labels = lbl + 8;
    /* Every epoch reads all of it: start paging it in now. */
    madvise(ds->map[0], ds->map_len[0], MADV_WILLNEED);
    float mean = 0.5f, std = 0.5f;
    dt_dataset_set_norm(ds, &mean, &std);
    return DT_OK;
fail:
    release(ds);
    return DT_ERR;
}

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

int dt_dataset_apply_norm(dt_dataset *ds, const dt_dataset_opts *opt)
{
    if (!opt || opt->norm_n == 0)
        return DT_OK;
    if (opt->norm_n != 1 && opt->norm_n != ds->c)
        return dt_err("data.mean/data.std: %d values but dataset %s has %d channel%s: expected 1 "
                      "or %d", opt->norm_n, ds->name, ds->c, ds->c > 1 ? "s" : "", ds->c);
    float mean[DT_MAX_CHANNELS], std[DT_MAX_CHANNELS];
    for (int c = 0; c < ds->c; c++) {
        int k = opt->norm_n == 1 ? 0 : c;
        mean[c] = opt->mean[k];
        std[c] = opt->std[k];
        if (!isfinite(mean[c]))
            return dt_err("data.mean: value %g for channel %d: expected a finite number",
                          (double)mean[c], c);
        if (!isfinite(std[c]) || !(std[c] > 0.0f))
            return dt_err("data.std: value %g for channel %d: expected a finite number > 0",
                          (double)std[c], c);
    }
    dt_dataset_set_norm(ds, mean, std);
    return DT_OK;
}

/* The built-in IDX datasets and CIFAR-10: classes are fixed; normalization is the published one
 * unless opt gives one. */
static int open_builtin(dt_dataset *ds, const char *name, const char *dir, int train,
                        int64_t limit, const dt_dataset_opts *opt)
{
    char ip[4096], lp[4096];
    int found = 0;
    size_t nb = sizeof builtin / sizeof builtin[0];
    for (size_t i = 0; i < nb && !found; i++) {
        if (strcmp(name, builtin[i].name) != 0)
            continue;
        found = 1;
        if (path_fmt(ip, sizeof ip, "%s/%s/%s", dir, builtin[i].dir,
                     train ? builtin[i].train_img : builtin[i].test_img) != 0 ||
            path_fmt(lp, sizeof lp, "%s/%s/%s", dir, builtin[i].dir,
                     train ? builtin[i].train_lbl : builtin[i].test_lbl) != 0 ||
            dt_idx_load(ds, ip, lp, 10) != 0)
            return DT_ERR;
        dt_dataset_set_norm(ds, &builtin[i].mean, &builtin[i].std);
    }
    if (!found && strcmp(name, "cifar10") == 0) {
        char folder[4096];
        if (path_fmt(folder, sizeof folder, "%s/cifar10", dir) != 0)
            return DT_ERR;
        if (!is_dir(folder)) {
            /* the folder name inside the official tarball cifar-10-binary.tar.gz */
            if (path_fmt(lp, sizeof lp, "%s/cifar-10-batches-bin", dir) != 0)
                return DT_ERR;
            if (!is_dir(lp))
                return dt_err("%s: no such directory (nor %s): expected the CIFAR-10 binary "
                              "batches data_batch_1.bin .. data_batch_5.bin, test_batch.bin there",
                              folder, lp);
            memcpy(folder, lp, sizeof folder);
        }
        static const char *const files[] = {"data_batch_1.bin", "data_batch_2.bin",
                                            "data_batch_3.bin", "data_batch_4.bin",
                                            "data_batch_5.bin", "test_batch.bin"};
        char paths[5][4096];
        const char *pp[5];
        int np = train ? 5 : 1;
        for (int k = 0; k < np; k++) {
            if (path_fmt(paths[k], sizeof paths[k], "%s/%s", folder, files[train ? k : 5]) != 0)
                return DT_ERR;
            pp[k] = paths[k];
        }
        if (dt_cifar10_load(ds, pp, np, limit) != 0)
            return DT_ERR;
        found = 1;
    }
    if (!found)
        return dt_err("data.name: unknown dataset '%s': expected mnist, fashion-mnist, cifar10 or "
                      "hdf5", name);
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
            return dt_err("%s: test samples are %dx%dx%d but the training set %s has %dx%dx%d",
                          dir, ds->c, ds->h, ds->w, t->name, t->c, t->h, t->w);
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
        release(ds);
        return DT_ERR;
    }
    return DT_OK;
}

int dt_dataset_open(dt_dataset *ds, const char *name, const char *dir, const char *split,
                    int64_t limit)
{
    return dt_dataset_open_ex(ds, name, dir, split, limit, NULL);
}

void dt_dataset_from_memory(dt_dataset *ds, const char *name, int64_t n, int c, int h, int w,
                            int classes, const uint8_t *images, const uint8_t *labels,
                            const float *mean, const float *std)
{
    DT_ASSERT(c >= 1 && c <= DT_MAX_CHANNELS && n > 0);
    memset(ds, 0, sizeof *ds);
    snprintf(ds->name, sizeof ds->name, "%s", name);
    size_t sz = (size_t)n * (size_t)(c * h * w);
    ds->owned[0] = dt_xmalloc(sz, 1);
    ds->owned[1] = dt_xmalloc((size_t)n, 1);
    memcpy(ds->owned[0], images, sz);
    memcpy(ds->owned[1], labels, (size_t)n);
    ds->images = ds->owned[0];
    ds->labels = ds->owned[1];
    ds->n = n;
    ds->c = c;
    ds->h = h;
    ds->w = w;
    ds->classes = classes;
    dt_dataset_set_norm(ds, mean, std);
}

void dt_dataset_limit(dt_dataset *ds, int64_t limit)
{
    if (limit > 0 && limit < ds->n)
        ds->n = limit;
}

void dt_dataset_gather(const dt_dataset *ds, const int64_t *idx, int n, float *x, int *y)
{
    size_t plane = (size_t)ds->h * (size_t)ds->w;
    size_t per = plane * (size_t)ds->c;
    for (int i = 0; i < n; i++) {
        DT_ASSERT(idx[i] >= 0 && idx[i] < ds->n);
        float *dst = x + (size_t)i * per;
        if (ds->images) {
            const uint8_t *src = ds->images + (size_t)idx[i] * per;
            /* the samples are scattered over the whole set: fetch the next one's lines while
             * this one is converted (hardware prefetchers cannot guess the jump) */
            if (i + 1 < n && idx[i + 1] >= 0 && idx[i + 1] < ds->n) {
                const uint8_t *next = ds->images + (size_t)idx[i + 1] * per;
                for (size_t b = 0; b < per; b += 64)
                    __builtin_prefetch(next + b);
            }
            for (int c = 0; c < ds->c; c++) {
                const float *lut = ds->lut[c];
                for (size_t k = 0; k < plane; k++)
                    dst[c * plane + k] = lut[src[c * plane + k]];
            }
        } else {
            /* torchvision Normalize: (x - mean) / std, a division as PyTorch does it */
            const float *src = ds->fimages + (size_t)idx[i] * per;
            for (int c = 0; c < ds->c; c++) {
                float m = ds->mean[c], s = ds->std[c];
                for (size_t k = 0; k < plane; k++)
                    dst[c * plane + k] = (src[c * plane + k] - m) / s;
            }
        }
        y[i] = dt_dataset_label(ds, idx[i]);
    }
}

void dt_dataset_free(dt_dataset *ds)
{
    if (!ds)
        return;
    release(ds);
}
