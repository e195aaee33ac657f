/*
 * augment.h - training-time augmentation fused into the batch gather: random crop with zero
 * padding and random horizontal flip, then per-channel normalization, as
 *   torchvision.transforms.Compose([RandomCrop((H, W), padding=p), RandomHorizontalFlip(0.5),
 *                                   ToTensor(), Normalize(mean, std)])
 * The padding is zero in the ORIGINAL pixel space (before Normalize), so a border pixel becomes
 * (0 - mean[c]) / std[c], as in torchvision.
 *
 * Randomness is counter-based: the crop offsets and the flip of a sample are a hash (splitmix64,
 * Steele et al. 2014) of (seed, epoch, sample index in the dataset). So the augmented sample is the
 * same on any rank, at any world size, in any batch position, and after a resume; no generator
 * state needs to be saved. The streams differ from PyTorch's (torch draws from its global
 * generator), so augmented runs match PyTorch in distribution, not bitwise.
 */
#ifndef DT_AUGMENT_H
#define DT_AUGMENT_H

#include <stdint.h>

#include "data.h"

typedef struct dt_augment {
    int crop_pad;  /* zero padding on every side before the random HxW crop; 0 = no crop */
    int flip;      /* 1: mirror horizontally with probability 0.5 */
    uint64_t seed; /* e.g. the run's seed */
} dt_augment;

/* The draw for one sample: out(c, y, x) = in(c, y + dy, x' + dx) with x' = W-1-x when *flip,
 * else x, and zero where that lies outside the image. dy, dx in [-crop_pad, crop_pad], uniform
 * (torchvision's crop corner i = dy + crop_pad in [0, 2 * crop_pad]); *flip is 0 or 1 with
 * probability 1/2 (always 0 when aug->flip is 0). */
void dt_augment_draw(const dt_augment *aug, int64_t epoch, int64_t index, int *dy, int *dx,
                     int *flip);

/* As dt_dataset_gather, each sample augmented by its dt_augment_draw(aug, epoch, idx[i]). aug
 * NULL, or crop_pad 0 and flip 0, is the plain gather (bitwise). crop_pad must be in [0, 4096]
 * (asserted). No allocation. */
void dt_dataset_gather_aug(const dt_dataset *ds, const int64_t *idx, int n, float *x, int *y,
                           const dt_augment *aug, int64_t epoch);

#endif
