/*
 * data_cifar.h - the CIFAR-10 binary reader (https://www.cs.toronto.edu/~kriz/cifar.html, "Binary
 * version"): batch files of 3073-byte records, copied de-interleaved to the heap.
 */
#ifndef DT_DATA_CIFAR_H
#define DT_DATA_CIFAR_H

#include <stdint.h>

#include "data.h"

/* Reads CIFAR-10 binary batch files (each a whole number of 3073-byte records, at most 10000:
 * the official files are exactly 30730000 bytes) in order, concatenated, stopping after `limit`
 * records when limit > 0 (all files are still checked to exist with a valid size). Labels must
 * be 0..9. Images become (N, 3, 32, 32) uint8 on the heap; normalization is CIFAR-10's
 * (mean 0.4914 0.4822 0.4465, std 0.2470 0.2435 0.2616). Returns 0 or DT_ERR naming the file; ds
 * is then empty. */
int dt_cifar10_load(dt_dataset *ds, const char *const *paths, int npaths, int64_t limit);

#endif
