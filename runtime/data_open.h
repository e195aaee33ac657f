/*
 * data_open.h - the dataset registry, above the readers: opens a dataset by name (the IDX
 * built-ins mnist and fashion-mnist, cifar10, hdf5), and a run's training and test splits from
 * its configuration (the data.* keys, data.mean/data.std parsed here).
 */
#ifndef DT_DATA_OPEN_H
#define DT_DATA_OPEN_H

#include <stdint.h>

#include "config.h"
#include "data.h"

/* Opens a dataset, split "train" or "test", keeping only the first `limit` samples when limit > 0
 * (readers that can, read only those). `name`:
 *   "mnist", "fashion-mnist": IDX files in path/<name>/;
 *   "cifar10": the CIFAR-10 binary batches in path/cifar10/ or else path/cifar-10-batches-bin/
 *              (train: data_batch_1.bin .. data_batch_5.bin; test: test_batch.bin);
 *   "hdf5": path is the HDF5 file of that split (see dt_h5data_open, data_h5.h).
 * opt may be NULL (all defaults). On error returns DT_ERR with one message naming the file (and
 * HDF5 dataset, key) and what was expected; ds is then empty (dt_dataset_free is a no-op). */
int dt_dataset_open_ex(dt_dataset *ds, const char *name, const char *path, const char *split,
                       int64_t limit, const dt_dataset_opts *opt);

/* dt_dataset_open_ex with default options. */
int dt_dataset_open(dt_dataset *ds, const char *name, const char *dir, const char *split,
                    int64_t limit);

/* Opens the training split the configuration names (data.name, data.dir or data.h5_train,
 * data.limit_train, data.classes, the HDF5 keys and layout) normalized by data.mean/data.std, and,
 * when test is not NULL, the test split (data.h5_test, data.limit_test) normalized as the training
 * set. train and test must be zeroed or freed sets; on error the ones already opened stay open
 * (dt_dataset_free frees them, a zeroed set included). Returns 0 or DT_ERR (message recorded: a bad
 * data.mean/data.std, hdf5 without its files, or the dataset's own error). Not collective. */
int dt_open_data(const dt_config *cfg, dt_dataset *train, dt_dataset *test);

/* Opens one split ("train" or "test") of the configuration's data set, normalized as
 * dt_open_data normalizes it, reading only that split's files; the one exception is data.name =
 * hdf5 with data.mean = auto, whose test split is normalized by the training file's statistics
 * (the training file is read for them, then closed). ds must be zeroed or freed. Returns 0 or
 * DT_ERR (message recorded, naming the file). Not collective. */
int dt_open_data_split(const dt_config *cfg, const char *split, dt_dataset *ds);

#endif
