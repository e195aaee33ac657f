/*
 * augment.c - see augment.h.
 *
 * Per output row the source row is y + dy (all zero value if outside); within a row the output
 * splits into a zero prefix, a run read from the source row (forwards, or backwards when
 * flipped), and a zero suffix, so the inner loop carries no bounds test.
 */
#include "augment.h"

#include <string.h>

#include "common.h"
#include "kernels/tpool.h"
#include "rng.h"

void dt_augment_draw(const dt_augment *aug, int64_t epoch, int64_t index, int *dy, int *dx,
                     int *flip)
{
    /* a salt keeps this stream apart from other users of the same seed */
    const uint64_t h = dt_rng_key(aug->seed ^ UINT64_C(0x6175676d656e7421), /* "augment!" */
                                  (uint64_t)epoch, (uint64_t)index, 0);
    uint64_t range = (uint64_t)(2 * aug->crop_pad + 1);
    /* Lemire's multiply-shift: uniform up to a bias of range / 2^32 */
    *dy = (int)(((h & 0xffffffffu) * range) >> 32) - aug->crop_pad;
    *dx = (int)((((h >> 32) & 0x7fffffffu) * range) >> 31) - aug->crop_pad;
    *flip = aug->flip ? (int)(h >> 63) : 0;
}

/* One channel of one sample. T is the stored pixel type; value(v) its normalized float. */
#define AUG_PLANE(T, VALUE)                                                                        \
    do {                                                                                           \
        const T *in_ = (const T *)src;                                                             \
        for (int yy = 0; yy < H; yy++) {                                                           \
            float *o_ = out + (size_t)yy * W;                                                      \
            int sy = yy + dy;                                                                      \
            if (sy < 0 || sy >= H) {                                                               \
                for (int xx = 0; xx < W; xx++)                                                     \
                    o_[xx] = zero;                                                                 \
                continue;                                                                          \
            }                                                                                      \
            const T *row = in_ + (size_t)sy * W;                                                   \
            for (int xx = 0; xx < x0; xx++)                                                        \
                o_[xx] = zero;                                                                     \
            if (flip) {                                                                            \
                /* out x reads source W-1-x+dx */                                                  \
                const T *s_ = row + (W - 1 - x0 + dx);                                             \
                for (int xx = x0; xx < x1; xx++, s_--)                                             \
                    o_[xx] = VALUE(*s_);                                                           \
            } else {                                                                               \
                const T *s_ = row + (x0 + dx);                                                     \
                for (int xx = x0; xx < x1; xx++, s_++)                                             \
                    o_[xx] = VALUE(*s_);                                                           \
            }                                                                                      \
            for (int xx = x1; xx < W; xx++)                                                        \
                o_[xx] = zero;                                                                     \
        }                                                                                          \
    } while (0)

#define LUT_VALUE(u) lut[(u)]
#define NORM_VALUE(v) (((v)-m) / s)

typedef struct {
    const dt_dataset *ds;
    const int64_t *idx;
    float *x;
    int *y;
    const dt_augment *aug;
    int64_t epoch;
} aug_job;

/* samples [i0, i1) of dt_dataset_gather_aug */
static void gather_aug_range(void *arg, long i0, long i1)
{
    const aug_job *j = arg;
    const dt_dataset *ds = j->ds;
    const int64_t *idx = j->idx;
    float *x = j->x;
    int *y = j->y;
    const dt_augment *aug = j->aug;
    const int64_t epoch = j->epoch;
    const int H = ds->h, W = ds->w;
    size_t plane = (size_t)H * (size_t)W;
    size_t per = plane * (size_t)ds->c;
    for (int i = (int)i0; i < (int)i1; i++) {
        DT_ASSERT(idx[i] >= 0 && idx[i] < ds->n);
        int dy, dx, flip;
        dt_augment_draw(aug, epoch, idx[i], &dy, &dx, &flip);
        /* output columns [x0, x1) have their source column inside the image:
         * unflipped  sx = x + dx          in [0, W)  <=>  x in [-dx, W - dx)
         * flipped    sx = W - 1 - x + dx  in [0, W)  <=>  x in [dx, W + dx) */
        int x0 = flip ? dx : -dx, x1 = flip ? W + dx : W - dx;
        if (x0 < 0)
            x0 = 0;
        if (x1 > W)
            x1 = W;
        if (x1 < x0)
            x1 = x0;
        for (int c = 0; c < ds->c; c++) {
            float *out = x + (size_t)i * per + (size_t)c * plane;
            if (ds->images) {
                const float *lut = ds->lut[c];
                const float zero = lut[0];
                const uint8_t *src = ds->images + (size_t)idx[i] * per + (size_t)c * plane;
                AUG_PLANE(uint8_t, LUT_VALUE);
            } else {
                const float m = ds->mean[c], s = ds->std[c];
                const float zero = (0.0f - m) / s;
                const float *src = ds->fimages + (size_t)idx[i] * per + (size_t)c * plane;
                AUG_PLANE(float, NORM_VALUE);
            }
        }
        y[i] = dt_dataset_label(ds, idx[i]);
    }
}

/* The samples are split over the rank's thread pool (kernels/tpool.h): each sample's crop and
 * flip are a function of (seed, epoch, index), so the split changes no bits. */
void dt_dataset_gather_aug(const dt_dataset *ds, const int64_t *idx, int n, float *x, int *y,
                           const dt_augment *aug, int64_t epoch)
{
    if (!aug || (aug->crop_pad == 0 && !aug->flip)) {
        dt_dataset_gather(ds, idx, n, x, y);
        return;
    }
    DT_ASSERT(aug->crop_pad >= 0 && aug->crop_pad <= 4096);
    aug_job j = {ds, idx, x, y, aug, epoch};
    const long grain = 16384 / ((long)ds->c * ds->h * ds->w + 1) + 1; /* samples per part */
    dt_tpool_for(n, grain, 1, gather_aug_range, &j);
}
