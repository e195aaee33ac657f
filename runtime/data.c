/*
 * data.c - see data.h. The dataset core: normalization, the plain gather and the release of what
 * a reader left in the struct (mmap'd regions, heap blocks). The readers are data_idx.c,
 * data_cifar.c and data_h5.c, the registry that opens a dataset by name data_open.c,
 * augmentation augment.c.
 */
#include "data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common.h"
#include "kernels/elem.h"
#include "kernels/isa.h"
#include "kernels/tpool.h"

void dt_dataset_set_norm(dt_dataset *ds, const float *mean, const float *std)
{
    for (int c = 0; c < ds->c && c < DT_MAX_CHANNELS; c++) {
        ds->mean[c] = mean[c];
        ds->std[c] = std[c];
        for (int u = 0; u < 256; u++)
            ds->lut[c][u] = ((float)u / 255.0f - mean[c]) / std[c];
    }
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

int dt_dataset_apply_norm(dt_dataset *ds, const dt_dataset_opts *opt)
{
    if (!opt || opt->norm_n == 0)
        return DT_OK;
    if (opt->norm_n != 1 && opt->norm_n != ds->c)
        return dt_err("data.mean/data.std: %d values but dataset %s has %d channel%s: expected 1 "
                      "or %d",
                      opt->norm_n, ds->name, ds->c, ds->c > 1 ? "s" : "", ds->c);
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

typedef struct {
    const dt_dataset *ds;
    const int64_t *idx;
    float *x;
    int *y;
    int n;
} gather_job;

/* samples [i0, i1) of dt_dataset_gather */
static void gather_range(void *arg, long i0, long i1)
{
    const gather_job *j = arg;
    const dt_dataset *ds = j->ds;
    const int64_t *idx = j->idx;
    float *x = j->x;
    int *y = j->y;
    const int n = (int)i1;
    size_t plane = (size_t)ds->h * (size_t)ds->w;
    size_t per = plane * (size_t)ds->c;
    for (int i = (int)i0; i < n; i++) {
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
            /* lut[c]'s values, computed (a vector loop instead of a scalar table lookup per
             * value: a tenth of the mlp's step went to this loop) */
            for (int c = 0; c < ds->c; c++)
                dt_kern_get()->elem->norm_u8(dst + c * plane, src + c * plane, plane, ds->mean[c],
                                             ds->std[c]);
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

/* The samples are split over the rank's thread pool (kernels/tpool.h): each is converted alone. */
void dt_dataset_gather(const dt_dataset *ds, const int64_t *idx, int n, float *x, int *y)
{
    gather_job j = {ds, idx, x, y, n};
    const long grain = 16384 / ((long)ds->c * ds->h * ds->w + 1) + 1; /* samples per part */
    dt_tpool_for(n, grain, 1, gather_range, &j);
}

void dt_dataset_free(dt_dataset *ds)
{
    if (!ds)
        return;
    release(ds);
}
