/*
 * dataset.h - image classification datasets held as uint8 (N, C, H, W) plus uint8 labels, and the
 * per-batch gather that turns them into normalized float32 inputs.
 *
 * Images stay uint8 (a quarter of float32's memory, and file-backed mmap pages that every rank on a
 * node shares through the page cache); each batch is normalized on the fly as
 * x = (u / 255 - mean[c]) / std[c], through a 256-entry table per channel.
 *
 * Formats: IDX (MNIST, Fashion-MNIST; http://yann.lecun.com/exdb/mnist/ "FILE FORMATS"). Every
 * reader validates magic, dimensions, file size and label range, and reports the file and what was
 * expected through dt_err().
 */
#ifndef DT_DATASET_H
#define DT_DATASET_H

#include <stddef.h>
#include <stdint.h>

#define DT_MAX_CHANNELS 4

typedef struct dt_dataset {
    char name[64];
    int64_t n;                     /* samples */
    int c, h, w;                   /* per-sample shape */
    int classes;
    const uint8_t *images;         /* (n, c, h, w) */
    const uint8_t *labels;         /* (n) */
    float mean[DT_MAX_CHANNELS];   /* normalization, per channel, in [0,1] pixel units */
    float std[DT_MAX_CHANNELS];
    float lut[DT_MAX_CHANNELS][256]; /* lut[c][u] = (u/255 - mean[c]) / std[c] */
    /* ownership: mmap'd regions or heap copies, released by dt_dataset_free */
    void *map[2];
    size_t map_len[2];
    uint8_t *owned[2];
} dt_dataset;

/* Opens a built-in dataset by name ("mnist", "fashion-mnist") from dir/<name>/, split "train" or
 * "test", keeping only the first `limit` samples when limit > 0. Returns 0 or DT_ERR. */
int dt_dataset_open(dt_dataset *ds, const char *name, const char *dir, const char *split,
                    int64_t limit);

/* Reads an IDX image file (magic 0x00000803, N x H x W ubyte) and its label file (0x00000801,
 * N ubyte) by mmap. Labels must lie in [0, classes). Returns 0 or DT_ERR naming the file. */
int dt_idx_load(dt_dataset *ds, const char *images_path, const char *labels_path, int classes);

/* Wraps caller-made arrays (copied) as a dataset; used by tests and synthetic data. */
void dt_dataset_from_memory(dt_dataset *ds, const char *name, int64_t n, int c, int h, int w,
                            int classes, const uint8_t *images, const uint8_t *labels,
                            const float *mean, const float *std);

/* Sets per-channel mean/std and rebuilds the normalization table. */
void dt_dataset_set_norm(dt_dataset *ds, const float *mean, const float *std);

/* Keeps only the first `limit` samples (no-op when limit <= 0 or >= n). */
void dt_dataset_limit(dt_dataset *ds, int64_t limit);

/* Gathers samples idx[0..n) into x (n, c, h, w) normalized float32 and y (n) int labels. */
void dt_dataset_gather(const dt_dataset *ds, const int64_t *idx, int n, float *x, int *y);

void dt_dataset_free(dt_dataset *ds);

#endif
