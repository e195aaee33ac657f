/*
 * tool_mkdata.c - writes small, learnable datasets in real formats for the end-to-end tests:
 *
 *   tool_mkdata cifar DIR N_PER_BATCH N_TEST   CIFAR-10 binary batches in DIR/cifar10/
 *                                              (data_batch_1..5.bin, test_batch.bin)
 *   tool_mkdata hdf5 FILE N C H W nchw|nhwc u8|f32
 *                                              one HDF5 file with "images" and "labels"
 *
 * Class k's images are a bright square at a class-dependent place over uniform noise, so a model
 * can learn them in an epoch. Deterministic (MT19937, fixed seed per file).
 */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "rng.h"

static void make_image(uint8_t *img, int C, int H, int W, int k, dt_mt19937 *g)
{
    int s = H / 4, y0 = (k % 3) * (H - s) / 2, x0 = ((k / 3) % 4) * (W - s) / 3;
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int v = (int)(dt_mt_next(g) % 96);
                if (y >= y0 && y < y0 + s && x >= x0 && x < x0 + s)
                    v += 100 + 50 * ((k + c) % 3);
                img[(c * H + y) * W + x] = (uint8_t)(v > 255 ? 255 : v);
            }
}

static int write_cifar(const char *path, int n, uint32_t seed)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return 1;
    }
    dt_mt19937 g;
    dt_mt_seed(&g, seed);
    uint8_t rec[1 + 3072];
    for (int i = 0; i < n; i++) {
        int k = (int)(dt_mt_next(&g) % 10);
        rec[0] = (uint8_t)k;
        make_image(rec + 1, 3, 32, 32, k, &g);
        if (fwrite(rec, 1, sizeof rec, f) != sizeof rec) {
            perror(path);
            fclose(f);
            return 1;
        }
    }
    return fclose(f) != 0;
}

static int write_h5(const char *path, int n, int C, int H, int W, int nhwc, int f32)
{
    dt_mt19937 g;
    dt_mt_seed(&g, 1234);
    size_t per = (size_t)C * H * W;
    uint8_t *img = dt_xmalloc((size_t)n * per, 1), *tmp = dt_xmalloc(per, 1);
    int64_t *lbl = dt_xmalloc((size_t)n, sizeof *lbl);
    for (int i = 0; i < n; i++) {
        int k = (int)(dt_mt_next(&g) % 10);
        lbl[i] = k;
        make_image(tmp, C, H, W, k, &g);
        for (int c = 0; c < C; c++)
            for (int p = 0; p < H * W; p++)
                img[(size_t)i * per + (nhwc ? (size_t)p * C + c : (size_t)c * H * W + p)] =
                    tmp[(size_t)c * H * W + p];
    }
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0)
        return 1;
    hsize_t d4[4] = {(hsize_t)n, (hsize_t)(nhwc ? H : C), (hsize_t)(nhwc ? W : H),
                     (hsize_t)(nhwc ? C : W)};
    hid_t sp = H5Screate_simple(4, d4, NULL);
    hid_t ds;
    herr_t rc;
    if (f32) {
        float *fx = dt_xmalloc((size_t)n * per, sizeof *fx);
        for (size_t i = 0; i < (size_t)n * per; i++)
            fx[i] = (float)img[i] / 255.0f;
        ds = H5Dcreate2(file, "images", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        rc = H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, fx);
        free(fx);
    } else {
        ds = H5Dcreate2(file, "images", H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        rc = H5Dwrite(ds, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, img);
    }
    H5Dclose(ds);
    H5Sclose(sp);
    hsize_t d1 = (hsize_t)n;
    sp = H5Screate_simple(1, &d1, NULL);
    ds = H5Dcreate2(file, "labels", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    rc |= H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, lbl);
    H5Dclose(ds);
    H5Sclose(sp);
    rc |= H5Fclose(file);
    free(img);
    free(tmp);
    free(lbl);
    return rc < 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "cifar") == 0) {
        char path[4096];
        int n = atoi(argv[3]), nt = atoi(argv[4]), rc = 0;
        snprintf(path, sizeof path, "%s/cifar10", argv[2]);
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", path);
        if (system(cmd) != 0)
            return 1;
        for (int b = 1; b <= 5; b++) {
            snprintf(path, sizeof path, "%s/cifar10/data_batch_%d.bin", argv[2], b);
            rc |= write_cifar(path, n, (uint32_t)b);
        }
        snprintf(path, sizeof path, "%s/cifar10/test_batch.bin", argv[2]);
        rc |= write_cifar(path, nt, 99);
        return rc;
    }
    if (argc == 9 && strcmp(argv[1], "hdf5") == 0)
        return write_h5(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]),
                        strcmp(argv[7], "nhwc") == 0, strcmp(argv[8], "f32") == 0);
    fprintf(stderr, "usage: tool_mkdata cifar DIR N_PER_BATCH N_TEST\n"
                    "       tool_mkdata hdf5 FILE N C H W nchw|nhwc u8|f32\n");
    return 2;
}
