/*
 * data_h5.h - the HDF5 reader: a generic image classification dataset in an HDF5 file, one image
 * dataset and one label dataset, as h5py writes them from numpy arrays.
 */
#ifndef DT_DATA_H5_H
#define DT_DATA_H5_H

#include <stdint.h>

#include "data.h"

/* Reads an HDF5 file holding an image dataset and a label dataset (names from opt, default
 * "images" and "labels"):
 *   images: uint8 (read as is) or float32/float64 (read as float32), rank 4 in the layout
 *           opt->h5_layout ("nchw" or "nhwc", converted to NCHW at load) or rank 3 (N, H, W)
 *           with C = 1; C in 1..DT_MAX_CHANNELS; float values must be finite;
 *   labels: any integer type, shape (N) or (N, 1), read as int, in [0, classes) where classes is
 *           opt->classes, opt->train->classes, or max label + 1.
 * opt may be NULL (all defaults). Only the first `limit` samples are read when limit > 0.
 * Normalization as dt_dataset_opts says; computed statistics are population mean/std over every
 * pixel of a channel (in [0,1] units for uint8). HDF5 never prints its own error stack (h5util.h):
 * every failure (missing file, not an HDF5 file, missing dataset, wrong rank, wrong type, label
 * out of range, count mismatch, constant channel) is ONE DT_ERR message naming the file and
 * dataset; ds is then empty. */
int dt_h5data_open(dt_dataset *ds, const char *path, const dt_dataset_opts *opt, int64_t limit);

#endif
