/*
 * data.h - the dataset core: image classification datasets held as (N, C, H, W) pixels plus
 * labels, their normalization, and the per-batch gather that turns them into normalized float32
 * inputs.
 *
 * Pixels are uint8 where the format has them (MNIST, CIFAR-10, uint8 HDF5): a quarter of float32's
 * memory, and for IDX file-backed mmap pages that every rank on a node shares through the page
 * cache. Each batch is normalized on the fly as x = (u / 255 - mean[c]) / std[c] (torchvision
 * ToTensor then Normalize), through a 256-entry table per channel. Float HDF5 images are kept as
 * float32 (`fimages`) and normalized as x = (v - mean[c]) / std[c]: mean/std are then in the
 * units the file stores.
 *
 * Layering (each calls only downward):
 *   data_open.h   opens a dataset by name (mnist, fashion-mnist, cifar10, hdf5), and a run's
 *                 training and test splits from its configuration (data.* keys);
 *   data_idx.h    IDX (MNIST, Fashion-MNIST; http://yann.lecun.com/exdb/mnist/ "FILE FORMATS"),
 *                 mmap'd;
 *   data_cifar.h  CIFAR-10 binary (https://www.cs.toronto.edu/~kriz/cifar.html "Binary
 *                 version"): records of 1 label byte + 3072 pixel bytes (R, G, B planes of 32x32,
 *                 row-major), copied to the heap de-interleaved;
 *   data_h5.h     HDF5 with an image dataset (N,C,H,W), (N,H,W,C) or (N,H,W) and an integer label
 *                 dataset (N);
 *   data.h        this core: the struct, normalization, gather, free. It knows no reader.
 * Every reader validates shapes, types, file sizes and label range, and reports the file (and
 * HDF5 dataset) and what was expected through dt_err().
 *
 * Augmentation (random crop with zero padding, horizontal flip) is in augment.h.
 */
#ifndef DT_DATA_H
#define DT_DATA_H

#include <stddef.h>
#include <stdint.h>

#define DT_MAX_CHANNELS 4

typedef struct dt_dataset {
    char name[64];
    int64_t n;   /* samples */
    int c, h, w; /* per-sample shape */
    int classes;
    /* pixels: exactly one of images / fimages is set */
    const uint8_t *images; /* (n, c, h, w) uint8, normalized through lut */
    const float *fimages;  /* (n, c, h, w) float32 as stored, normalized by mean/std */
    /* labels: exactly one of labels / labels32 is set */
    const uint8_t *labels;           /* (n) */
    const int32_t *labels32;         /* (n), for formats whose labels may exceed 255 (HDF5) */
    float mean[DT_MAX_CHANNELS];     /* normalization, per channel, in [0,1] pixel units (uint8) */
    float std[DT_MAX_CHANNELS];      /* or in stored units (float images) */
    float lut[DT_MAX_CHANNELS][256]; /* lut[c][u] = (u/255 - mean[c]) / std[c] */
    /* ownership: mmap'd regions and heap blocks, released by dt_dataset_free */
    void *map[2];
    size_t map_len[2];
    void *owned[4];
} dt_dataset;

/* Options of dt_dataset_open_ex (data_open.h) and of the readers that take options (data_h5.h);
 * dt_dataset_apply_norm reads its normalization. Zero-initialize, then set what differs from the
 * default. */
typedef struct dt_dataset_opts {
    const char *h5_images; /* HDF5 image dataset name; NULL or "" = "images" */
    const char *h5_labels; /* HDF5 label dataset name; NULL or "" = "labels" */
    const char *h5_layout; /* rank-4 HDF5 images: "nchw" (NULL or "") or "nhwc" */
    int classes;           /* 0: the format's (10 for the built-ins) or, for HDF5, max label + 1;
                             * > 0: labels must lie in [0, classes) */
    int norm_n;            /* 0: default normalization (the built-in's published statistics;
                             * HDF5: mean/std of the loaded training images); 1: mean[0]/std[0]
                             * for every channel; C: one value per channel */
    float mean[DT_MAX_CHANNELS];
    float std[DT_MAX_CHANNELS];
    /* Opening a test split: the training set opened before. Its sample shape must match; its
     * classes (unless `classes` is set) and its normalization (unless norm_n > 0) are taken, as
     * the test set must be normalized with the training statistics. NULL for the training split. */
    const struct dt_dataset *train;
} dt_dataset_opts;

/* Wraps caller-made arrays (copied) as a dataset; used by tests and synthetic data. */
void dt_dataset_from_memory(dt_dataset *ds, const char *name, int64_t n, int c, int h, int w,
                            int classes, const uint8_t *images, const uint8_t *labels,
                            const float *mean, const float *std);

/* Sets per-channel mean/std (ds->c values each) and rebuilds the normalization table. */
void dt_dataset_set_norm(dt_dataset *ds, const float *mean, const float *std);

/* Applies opt's normalization (norm_n 1 or ds->c values) or, with norm_n == 0, keeps the
 * current one. Returns 0 or DT_ERR ("data.mean has 2 values but dataset X has 3 channels",
 * "data.std: value 0 for channel 1: expected a finite number > 0"). */
int dt_dataset_apply_norm(dt_dataset *ds, const dt_dataset_opts *opt);

/* Keeps only the first `limit` samples (no-op when limit <= 0 or >= n). */
void dt_dataset_limit(dt_dataset *ds, int64_t limit);

/* Label of sample i. */
static inline int dt_dataset_label(const dt_dataset *ds, int64_t i)
{
    return ds->labels32 ? (int)ds->labels32[i] : (int)ds->labels[i];
}

/* Gathers samples idx[0..n) into x (n, c, h, w) normalized float32 and y (n) int labels. */
void dt_dataset_gather(const dt_dataset *ds, const int64_t *idx, int n, float *x, int *y);

/* Releases what the dataset owns and empties it; NULL or an already freed/empty (zeroed) dataset
 * is a no-op. */
void dt_dataset_free(dt_dataset *ds);

#endif
