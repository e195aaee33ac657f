/*
 * data_idx.h - the IDX reader (MNIST, Fashion-MNIST; http://yann.lecun.com/exdb/mnist/ "FILE
 * FORMATS"): image and label files mmap'd read-only, so every rank on a node shares the pages.
 */
#ifndef DT_DATA_IDX_H
#define DT_DATA_IDX_H

#include "data.h"

/* Reads an IDX image file (magic 0x00000803, N x H x W ubyte) and its label file (0x00000801,
 * N ubyte) by mmap. Labels must lie in [0, classes). Normalization is mean 0.5, std 0.5 until the
 * caller sets another (dt_dataset_set_norm). Returns 0 or DT_ERR naming the file; ds is then
 * empty. */
int dt_idx_load(dt_dataset *ds, const char *images_path, const char *labels_path, int classes);

#endif
