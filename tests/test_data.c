/*
 * test_data.c - the dataset readers and the augmented gather.
 *
 *   CIFAR-10 binary: small batch files in the exact record format (1 label byte + R, G, B planes
 *     of 32x32) in a temp dir, read back through dt_dataset_open("cifar10") from both folder
 *     names: shapes, labels, exact pixels across file boundaries, limit, normalization;
 *   HDF5: uint8 NCHW, uint8 NHWC (must gather to the same values as NCHW), float32 and float64,
 *     rank 3, a multi-chunk NHWC read, computed normalization statistics, test split following
 *     the training set;
 *   every bad input (missing / truncated / oversized / empty file, bad label, missing folder; for
 *     HDF5 missing file, not HDF5, missing dataset, wrong rank, wrong type, label range, count
 *     mismatch, bad layout, too many channels, constant channel, NaN) returns DT_ERR with a message
 *     naming the file (and dataset), prints nothing else (HDF5's own stack is silenced), and leaves
 *     the dataset empty;
 *   augmentation against a literal torchvision-order reference (zero pad, crop, flip, normalize),
 *     determinism in (seed, epoch, index) whatever the batch order, different crops per epoch, a
 *     uniform draw, and the plain gather when everything is off.
 *
 * Files go to a mkdtemp directory under $TMPDIR or /tmp, removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "augment.h"
#include "check.h"
#include "common.h"
#include "data.h"
#include "data_open.h"

static char tmp[256];

/* ---------------------------------------------------------------- helpers */

static uint8_t pix(int64_t i, int c, int y, int x)
{
    return (uint8_t)((i * 37 + c * 101 + y * 13 + x * 7 + i * y * 3 + 11) & 255);
}

static float fpix(int64_t i, int c, int y, int x)
{
    return (float)pix(i, c, y, x) * 0.0173f - 1.25f + 0.001f * (float)i;
}

static int label_of(int64_t i, int classes) { return (int)((i * 7 + 3) % classes); }

/* path = tmp/rel (rel may hold directories, created) */
static const char *tpath(char *buf, size_t n, const char *rel)
{
    int k = snprintf(buf, n, "%s/%s", tmp, rel);
    if (k < 0 || (size_t)k >= n) {
        fprintf(stderr, "test_data: path too long\n");
        exit(2);
    }
    for (char *p = buf + strlen(tmp) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
                fprintf(stderr, "test_data: mkdir %s: %s\n", buf, strerror(errno));
                exit(2);
            }
            *p = '/';
        }
    }
    return buf;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        fprintf(stderr, "test_data: cannot write %s: %s\n", path, strerror(errno));
        exit(2);
    }
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0)
        fprintf(stderr, "test_data: cannot remove %s: %s\n", path, strerror(errno));
    return 0;
}

/* Whether the last error message holds every one of the given strings (NULL: none); prints it
 * when not, and always with TEST_DATA_VERBOSE=1 set (to stdout: stderr may be redirected). */
static int err_has(const char *a, const char *b, const char *c)
{
    const char *m = dt_err_msg();
    const char *verbose = getenv("TEST_DATA_VERBOSE");
    if (verbose && strcmp(verbose, "1") == 0)
        printf("  message: %s\n", m);
    const char *want[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        if (want[i] && !strstr(m, want[i])) {
            fprintf(stderr, "  message '%s' lacks '%s'\n", m, want[i]);
            return 0;
        }
    }
    return 1;
}

/* stderr to a file around calls that must print nothing themselves */
static int saved_stderr = -1;
static char quiet_path[300];

static void quiet_begin(void)
{
    fflush(stderr);
    tpath(quiet_path, sizeof quiet_path, "stderr.txt");
    int fd = open(quiet_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    saved_stderr = dup(2);
    if (fd < 0 || saved_stderr < 0 || dup2(fd, 2) < 0) {
        fprintf(stderr, "test_data: cannot redirect stderr\n");
        exit(2);
    }
    close(fd);
}

/* returns the bytes written to stderr since quiet_begin */
static long quiet_end(void)
{
    fflush(stderr);
    if (dup2(saved_stderr, 2) < 0)
        exit(2);
    close(saved_stderr);
    struct stat st;
    return stat(quiet_path, &st) == 0 ? (long)st.st_size : -1;
}

/* ---------------------------------------------------------------- CIFAR-10 */

enum { REC = 3073 };

/* A batch file of n records, record r being sample first + r; label_at >= 0 puts bad_label
 * there. */
static void write_cifar(const char *path, int n, int64_t first, int label_at, int bad_label)
{
    uint8_t *buf = malloc((size_t)n * REC + 1);
    for (int r = 0; r < n; r++) {
        uint8_t *rec = buf + (size_t)r * REC;
        rec[0] = (uint8_t)label_of(first + r, 10);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++)
                    rec[1 + c * 1024 + y * 32 + x] = pix(first + r, c, y, x);
    }
    if (label_at >= 0)
        buf[(size_t)label_at * REC] = (uint8_t)bad_label;
    write_file(path, buf, (size_t)n * REC);
    free(buf);
}

static const int cifar_counts[6] = {50, 50, 10, 20, 30, 30}; /* batches 1..5, test */
static const char *cifar_files[6] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                     "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};

/* tmp/root/folder/ with all six files; returns the root path (static buffer) */
static const char *make_cifar(const char *root, const char *folder)
{
    static char rootp[300];
    char rel[300], p[400];
    int64_t first = 0;
    for (int f = 0; f < 6; f++) {
        snprintf(rel, sizeof rel, "%s/%s/%s", root, folder, cifar_files[f]);
        write_cifar(tpath(p, sizeof p, rel), cifar_counts[f], f == 5 ? 1000 : first, -1, 0);
        first += cifar_counts[f];
    }
    snprintf(rel, sizeof rel, "%s/x", root);
    tpath(rootp, sizeof rootp, rel);
    rootp[strlen(rootp) - 2] = '\0';
    return rootp;
}

/* Every sample of ds equals pix(first + i) with label label_of(first + i), normalized. */
static void check_cifar_samples(const dt_dataset *ds, int64_t first)
{
    static const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, std[3] = {0.2470f, 0.2435f, 0.2616f};
    size_t per = 3 * 32 * 32;
    float *x = malloc((size_t)ds->n * per * sizeof *x), *want = malloc(per * sizeof *want);
    int64_t *idx = calloc((size_t)ds->n, sizeof *idx);
    int *y = malloc((size_t)ds->n * sizeof *y);
    for (int64_t i = 0; i < ds->n; i++)
        idx[i] = ds->n - 1 - i; /* reversed: gather follows idx */
    dt_dataset_gather(ds, idx, (int)ds->n, x, y);
    int bad_labels = 0;
    for (int64_t i = 0; i < ds->n; i++) {
        int64_t s = idx[i];
        bad_labels += y[i] != label_of(first + s, 10);
        for (int c = 0; c < 3; c++)
            for (int yy = 0; yy < 32; yy++)
                for (int xx = 0; xx < 32; xx++)
                    want[c * 1024 + yy * 32 + xx] =
                        ((float)pix(first + s, c, yy, xx) / 255.0f - mean[c]) / std[c];
        if (!CHECK_TENSOR_CLOSE(x + (size_t)i * per, want, per, 0, 0))
            break;
    }
    CHECK(bad_labels == 0);
    free(x);
    free(want);
    free(idx);
    free(y);
}

/* Reading: shapes, normalization, exact pixels across file boundaries, limit, both folders. */
static void test_cifar_read(const char *root)
{
    dt_dataset ds;

    CHECK(dt_dataset_open(&ds, "cifar10", root, "train", 0) == 0);
    CHECK(ds.n == 160 && ds.c == 3 && ds.h == 32 && ds.w == 32 && ds.classes == 10);
    CHECK(strcmp(ds.name, "cifar10") == 0);
    CHECK_CLOSE(ds.mean[0], 0.4914, 0, 1e-7);
    CHECK_CLOSE(ds.mean[2], 0.4465, 0, 1e-7);
    CHECK_CLOSE(ds.std[1], 0.2435, 0, 1e-7);
    CHECK_CLOSE(ds.std[2], 0.2616, 0, 1e-7);
    if (ds.n == 160)
        check_cifar_samples(&ds, 0);
    dt_dataset_free(&ds);
    CHECK(ds.n == 0 && ds.images == NULL);
    dt_dataset_free(&ds); /* twice: no-op */

    /* limit: stops in the second file */
    CHECK(dt_dataset_open(&ds, "cifar10", root, "train", 55) == 0);
    CHECK(ds.n == 55);
    if (ds.n == 55)
        check_cifar_samples(&ds, 0);
    dt_dataset_free(&ds);

    CHECK(dt_dataset_open(&ds, "cifar10", root, "test", 0) == 0);
    CHECK(ds.n == 30 && ds.c == 3);
    if (ds.n == 30)
        check_cifar_samples(&ds, 1000);
    dt_dataset_free(&ds);

    /* the official tarball's folder name */
    const char *root2 = make_cifar("c2", "cifar-10-batches-bin");
    CHECK(dt_dataset_open(&ds, "cifar10", root2, "test", 0) == 0);
    CHECK(ds.n == 30);
    dt_dataset_free(&ds);
}

/* Options: normalization given, classes, the test split following the training set. */
static void test_cifar_opts(const char *root)
{
    dt_dataset ds;
    dt_dataset train;
    dt_dataset_opts o = {0};
    o.norm_n = 1;
    o.mean[0] = 0.5f;
    o.std[0] = 0.25f;
    CHECK(dt_dataset_open_ex(&train, "cifar10", root, "train", 10, &o) == 0);
    CHECK(train.mean[2] == 0.5f && train.std[1] == 0.25f);
    CHECK(train.lut[1][255] == 2.0f && train.lut[0][0] == -2.0f);
    dt_dataset_opts t = {0};
    t.train = &train;
    CHECK(dt_dataset_open_ex(&ds, "cifar10", root, "test", 0, &t) == 0);
    CHECK(ds.mean[1] == 0.5f && ds.std[2] == 0.25f && ds.lut[2][255] == 2.0f);
    dt_dataset_free(&ds);
    dt_dataset_free(&train);
    o.norm_n = 2;
    CHECK(dt_dataset_open_ex(&ds, "cifar10", root, "train", 0, &o) == DT_ERR);
    CHECK(err_has("data.mean", "2 values", "3 channels"));
    CHECK(ds.n == 0 && ds.images == NULL && ds.owned[0] == NULL);
    o.norm_n = 3;
    o.mean[1] = o.mean[2] = 0.5f;
    o.std[1] = 0.25f;
    o.std[2] = 0.0f;
    CHECK(dt_dataset_open_ex(&ds, "cifar10", root, "train", 0, &o) == DT_ERR);
    CHECK(err_has("data.std", "channel 2", "> 0"));
    dt_dataset_opts k = {0};
    k.classes = 7;
    CHECK(dt_dataset_open_ex(&ds, "cifar10", root, "train", 0, &k) == DT_ERR);
    CHECK(err_has("data.classes = 7", "10 classes", NULL));
}

/* Bad inputs: each one message naming the file, nothing else printed, the dataset left empty. */
static void test_cifar_bad(void)
{
    dt_dataset ds;
    const char *root;
    char p[400];
    /* truncated: not a whole number of records */
    root = make_cifar("trunc", "cifar10");
    tpath(p, sizeof p, "trunc/cifar10/data_batch_2.bin");
    CHECK(truncate(p, 50 * REC - 100) == 0);
    quiet_begin();
    int rc = dt_dataset_open(&ds, "cifar10", root, "train", 0);
    long noise = quiet_end();
    CHECK(rc == DT_ERR && noise == 0);
    CHECK(err_has(p, "not a whole number of 3073-byte records", "truncated"));
    CHECK(ds.n == 0 && ds.images == NULL);
    /* the other split is fine */
    CHECK(dt_dataset_open(&ds, "cifar10", root, "test", 0) == 0);
    dt_dataset_free(&ds);
    /* more than 10000 records (sparse: labels 0 are valid, only the size is wrong) */
    root = make_cifar("big", "cifar10");
    tpath(p, sizeof p, "big/cifar10/test_batch.bin");
    CHECK(truncate(p, (off_t)REC * 10001) == 0);
    CHECK(dt_dataset_open(&ds, "cifar10", root, "test", 0) == DT_ERR);
    CHECK(err_has(p, "10001 records", "at most 10000 (30730000 bytes)"));
    /* exactly 10000 records is the official size: accepted */
    CHECK(truncate(p, (off_t)REC * 10000) == 0);
    CHECK(dt_dataset_open(&ds, "cifar10", root, "test", 0) == 0);
    CHECK(ds.n == 10000);
    dt_dataset_free(&ds);
    /* missing file */
    root = make_cifar("miss", "cifar10");
    tpath(p, sizeof p, "miss/cifar10/data_batch_4.bin");
    CHECK(unlink(p) == 0);
    CHECK(dt_dataset_open(&ds, "cifar10", root, "train", 0) == DT_ERR);
    CHECK(err_has(p, "cannot open", "No such file"));
    /* ... even with a limit that would not read it */
    CHECK(dt_dataset_open(&ds, "cifar10", root, "train", 5) == DT_ERR);
    CHECK(err_has(p, "cannot open", NULL));
    /* empty file */
    root = make_cifar("empty", "cifar10");
    tpath(p, sizeof p, "empty/cifar10/test_batch.bin");
    write_file(p, "", 0);
    CHECK(dt_dataset_open(&ds, "cifar10", root, "test", 0) == DT_ERR);
    CHECK(err_has(p, "non-empty regular file", NULL));
    /* label > 9 in record 7 of batch 3 */
    root = make_cifar("label", "cifar10");
    tpath(p, sizeof p, "label/cifar10/data_batch_3.bin");
    write_cifar(p, 10, 100, 7, 10);
    CHECK(dt_dataset_open(&ds, "cifar10", root, "train", 0) == DT_ERR);
    CHECK(err_has(p, "label 10 of record 7 is out of range: expected 0..9", NULL));
    CHECK(ds.n == 0 && ds.images == NULL && ds.owned[0] == NULL && ds.owned[1] == NULL);
    /* neither folder */
    tpath(p, sizeof p, "nofolder/x");
    p[strlen(p) - 2] = '\0';
    CHECK(dt_dataset_open(&ds, "cifar10", p, "train", 0) == DT_ERR);
    CHECK(err_has(p, "/cifar10: no such directory", "cifar-10-batches-bin"));
    /* unknown dataset name */
    CHECK(dt_dataset_open(&ds, "cifar100", root, "train", 0) == DT_ERR);
    CHECK(err_has("unknown dataset 'cifar100'", "cifar10", "hdf5"));
}

static void test_cifar(void)
{
    const char *root = make_cifar("c1", "cifar10");
    test_cifar_read(root);
    test_cifar_opts(root);
    test_cifar_bad();
}

/* ---------------------------------------------------------------- HDF5 */

typedef struct h5spec {
    const char *name;
    hid_t ftype, mtype; /* file and memory types */
    int rank;
    hsize_t dims[4];
    const void *data;
} h5spec;

static int h5_put(hid_t file, const h5spec *s)
{
    int rc = -1;
    hid_t sp = H5Screate_simple(s->rank, s->dims, NULL);
    hid_t d = sp >= 0
                  ? H5Dcreate2(file, s->name, s->ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)
                  : -1;
    if (d >= 0 && H5Dwrite(d, s->mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->data) >= 0)
        rc = 0;
    if (d >= 0 && H5Dclose(d) < 0)
        rc = -1;
    if (sp >= 0 && H5Sclose(sp) < 0)
        rc = -1;
    return rc;
}

/* Writes tmp/rel with the given datasets (a or b may be NULL); returns the path (static). */
static const char *write_h5(const char *rel, const h5spec *a, const h5spec *b)
{
    static char p[400];
    tpath(p, sizeof p, rel);
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    int rc = f >= 0 ? 0 : -1;
    if (rc == 0 && a)
        rc = h5_put(f, a);
    if (rc == 0 && b)
        rc = h5_put(f, b);
    if (f >= 0 && H5Fclose(f) < 0)
        rc = -1;
    if (rc != 0) {
        fprintf(stderr, "test_data: cannot write %s\n", p);
        exit(2);
    }
    return p;
}

enum { HN = 7, HC = 3, HH = 5, HW = 6, HCLASSES = 5 };

static uint8_t u8_nchw[HN][HC][HH][HW], u8_nhwc[HN][HH][HW][HC], u8_nhw[HN][HH][HW];
static float f32_nchw[HN][HC][HH][HW];
static double f64_nhwc[HN][HH][HW][HC];
static int64_t lbl64[HN];

static void fill_h5_arrays(void)
{
    for (int i = 0; i < HN; i++) {
        lbl64[i] = label_of(i, HCLASSES);
        for (int c = 0; c < HC; c++)
            for (int y = 0; y < HH; y++)
                for (int x = 0; x < HW; x++) {
                    u8_nchw[i][c][y][x] = u8_nhwc[i][y][x][c] = pix(i, c, y, x);
                    f32_nchw[i][c][y][x] = fpix(i, c, y, x);
                    f64_nhwc[i][y][x][c] = (double)fpix(i, c, y, x);
                }
        for (int y = 0; y < HH; y++)
            for (int x = 0; x < HW; x++)
                u8_nhw[i][y][x] = pix(i, 0, y, x);
    }
}

/* Gathers all of ds, compares with value(i, c, y, x) normalized by ds's mean/std. */
static void check_h5_samples(const dt_dataset *ds, int is_float, const char *what)
{
    size_t per = (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
    float *x = malloc((size_t)ds->n * per * sizeof *x), *want = malloc(per * sizeof *want);
    int64_t *idx = calloc((size_t)ds->n, sizeof *idx);
    int *y = malloc((size_t)ds->n * sizeof *y), bad = 0;
    for (int64_t i = 0; i < ds->n; i++)
        idx[i] = (i * 3 + 2) % ds->n; /* a permutation for n not a multiple of 3 */
    dt_dataset_gather(ds, idx, (int)ds->n, x, y);
    for (int64_t i = 0; i < ds->n; i++) {
        int64_t s = idx[i];
        bad += y[i] != label_of(s, HCLASSES);
        for (int c = 0; c < ds->c; c++)
            for (int yy = 0; yy < ds->h; yy++)
                for (int xx = 0; xx < ds->w; xx++) {
                    float v = is_float
                                  ? (fpix(s, c, yy, xx) - ds->mean[c]) / ds->std[c]
                                  : ((float)pix(s, c, yy, xx) / 255.0f - ds->mean[c]) / ds->std[c];
                    want[((size_t)c * ds->h + yy) * ds->w + xx] = v;
                }
        if (!check_tensor_close_at(x + (size_t)i * per, want, (long)per, 0, 0, what, __FILE__,
                                   __LINE__))
            break;
    }
    CHECK(bad == 0);
    free(x);
    free(want);
    free(idx);
    free(y);
}

/* mean/std over all pixels of channel c of the first n samples, as numpy would (ddof 0) */
static void ref_stats(int n, int c, int is_float, double *mean, double *std)
{
    double m = 0, v = 0, cnt = (double)n * HH * HW;
    for (int i = 0; i < n; i++)
        for (int y = 0; y < HH; y++)
            for (int x = 0; x < HW; x++)
                m += is_float ? (double)fpix(i, c, y, x) : pix(i, c, y, x) / 255.0;
    m /= cnt;
    for (int i = 0; i < n; i++)
        for (int y = 0; y < HH; y++)
            for (int x = 0; x < HW; x++) {
                double d = (is_float ? (double)fpix(i, c, y, x) : pix(i, c, y, x) / 255.0) - m;
                v += d * d;
            }
    *mean = m;
    *std = sqrt(v / cnt);
}

/* uint8 NCHW and NHWC (the same samples, bitwise), statistics computed, a test split
 * following the training set. */
static void test_h5_uint8(void)
{
    dt_dataset ds, ds2;
    const h5spec L = {"labels", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, {HN}, lbl64};

    /* uint8 NCHW, int64 labels, classes inferred, statistics computed */
    h5spec I = {"images", H5T_STD_U8LE, H5T_NATIVE_UINT8, 4, {HN, HC, HH, HW}, u8_nchw};
    const char *p = write_h5("u8_nchw.h5", &I, &L);
    char p_nchw[400];
    snprintf(p_nchw, sizeof p_nchw, "%s", p);
    CHECK(dt_dataset_open(&ds, "hdf5", p_nchw, "train", 0) == 0);
    CHECK(ds.n == HN && ds.c == HC && ds.h == HH && ds.w == HW);
    CHECK(ds.classes == HCLASSES); /* labels 3,0,2,4,1,3,0: max 4 */
    CHECK(ds.images != NULL && ds.fimages == NULL && ds.labels32 != NULL);
    CHECK(strcmp(ds.name, "u8_nchw.h5") == 0);
    for (int c = 0; c < HC; c++) {
        double m, s;
        ref_stats(HN, c, 0, &m, &s);
        CHECK_CLOSE(ds.mean[c], m, 1e-6, 0);
        CHECK_CLOSE(ds.std[c], s, 1e-6, 0);
    }
    check_h5_samples(&ds, 0, "uint8 nchw");

    /* uint8 NHWC: converted to the same NCHW samples, bitwise */
    I.dims[1] = HH;
    I.dims[2] = HW;
    I.dims[3] = HC;
    I.data = u8_nhwc;
    p = write_h5("u8_nhwc.h5", &I, &L);
    dt_dataset_opts o = {0};
    o.h5_layout = "nhwc";
    CHECK(dt_dataset_open_ex(&ds2, "hdf5", p, "train", 0, &o) == 0);
    CHECK(ds2.n == HN && ds2.c == HC && ds2.h == HH && ds2.w == HW);
    CHECK(ds2.images && memcmp(ds2.images, ds.images, sizeof u8_nchw) == 0);
    CHECK(memcmp(ds2.mean, ds.mean, sizeof ds.mean) == 0);
    check_h5_samples(&ds2, 0, "uint8 nhwc");
    dt_dataset_free(&ds2);
    /* the same file read as nchw has 6 "channels": an error pointing at the layout */
    CHECK(dt_dataset_open(&ds2, "hdf5", p, "train", 0) == DT_ERR);
    CHECK(err_has(p, "'images' has shape 7x5x6x3, so 5 channels as nchw", "data.h5_layout"));

    /* test split following the training set: classes and normalization from it; limit */
    o.train = &ds;
    CHECK(dt_dataset_open_ex(&ds2, "hdf5", p, "test", 4, &o) == 0);
    CHECK(ds2.n == 4 && ds2.classes == HCLASSES);
    CHECK(memcmp(ds2.mean, ds.mean, sizeof ds.mean) == 0);
    CHECK(memcmp(ds2.lut, ds.lut, sizeof ds.lut) == 0);
    CHECK(ds2.images && memcmp(ds2.images, ds.images, 4 * sizeof u8_nchw[0]) == 0);
    dt_dataset_free(&ds2);
    dt_dataset_free(&ds);
}

/* float32 with normalization and classes given or statistics computed; float64 NHWC. */
static void test_h5_float(void)
{
    dt_dataset ds2;
    const char *p;
    const h5spec L = {"labels", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, {HN}, lbl64};
    dt_dataset_opts o = {0};
    o.h5_layout = "nhwc";

    /* float32 NCHW, normalization given (one value for every channel), classes given */
    h5spec F = {"x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, {HN, HC, HH, HW}, f32_nchw};
    h5spec L2 = L;
    L2.name = "y";
    L2.ftype = H5T_STD_U8LE; /* any integer type */
    uint8_t lbl_u8[HN];
    for (int i = 0; i < HN; i++)
        lbl_u8[i] = (uint8_t)lbl64[i];
    L2.mtype = H5T_NATIVE_UINT8;
    L2.data = lbl_u8;
    p = write_h5("f32.h5", &F, &L2);
    dt_dataset_opts of = {0};
    of.h5_images = "x";
    of.h5_labels = "y";
    of.classes = 9;
    of.norm_n = 1;
    of.mean[0] = 0.25f;
    of.std[0] = 1.5f;
    CHECK(dt_dataset_open_ex(&ds2, "hdf5", p, "train", 0, &of) == 0);
    CHECK(ds2.fimages != NULL && ds2.images == NULL && ds2.classes == 9);
    CHECK(ds2.mean[2] == 0.25f && ds2.std[1] == 1.5f);
    CHECK(ds2.fimages && memcmp(ds2.fimages, f32_nchw, sizeof f32_nchw) == 0);
    check_h5_samples(&ds2, 1, "float32 nchw");
    dt_dataset_free(&ds2);
    /* float32 with statistics computed */
    of.norm_n = 0;
    CHECK(dt_dataset_open_ex(&ds2, "hdf5", p, "train", 0, &of) == 0);
    for (int c = 0; c < HC; c++) {
        double m, s;
        ref_stats(HN, c, 1, &m, &s);
        CHECK_CLOSE(ds2.mean[c], m, 1e-5, 1e-6);
        CHECK_CLOSE(ds2.std[c], s, 1e-5, 0);
    }
    check_h5_samples(&ds2, 1, "float32 nchw, computed stats");
    dt_dataset_free(&ds2);

    /* float64 NHWC storage: read as float32, transposed; (N, 1) labels */
    h5spec D = {"images", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 4, {HN, HH, HW, HC}, f64_nhwc};
    h5spec LC = L;
    LC.rank = 2;
    LC.dims[1] = 1;
    p = write_h5("f64_nhwc.h5", &D, &LC);
    o.train = NULL;
    CHECK(dt_dataset_open_ex(&ds2, "hdf5", p, "train", 0, &o) == 0);
    CHECK(ds2.fimages && memcmp(ds2.fimages, f32_nchw, sizeof f32_nchw) == 0);
    dt_dataset_free(&ds2);
}

/* rank 3 (N, H, W), and a test split of another shape than its training set. */
static void test_h5_rank3(void)
{
    dt_dataset ds, ds2;
    const h5spec L = {"labels", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, {HN}, lbl64};
    char p_nchw[400];
    tpath(p_nchw, sizeof p_nchw, "u8_nchw.h5"); /* written by test_h5_uint8 */
    const char *p;

    /* rank 3 (N, H, W): one channel */
    h5spec R = {"images", H5T_STD_U8LE, H5T_NATIVE_UINT8, 3, {HN, HH, HW}, u8_nhw};
    p = write_h5("rank3.h5", &R, &L);
    CHECK(dt_dataset_open(&ds2, "hdf5", p, "train", 0) == 0);
    CHECK(ds2.c == 1 && ds2.h == HH && ds2.w == HW && ds2.n == HN);
    double m, s;
    ref_stats(HN, 0, 0, &m, &s);
    CHECK_CLOSE(ds2.mean[0], m, 1e-6, 0);
    check_h5_samples(&ds2, 0, "rank 3");
    /* a test split of another shape than the training set */
    CHECK(dt_dataset_open_ex(&ds, "hdf5", p_nchw, "test", 0, &(dt_dataset_opts){.train = &ds2}) ==
          DT_ERR);
    CHECK(err_has(p_nchw, "3x5x6 uint8 samples but the training set rank3.h5 has 1x5x6", NULL));
    dt_dataset_free(&ds2);
    dt_dataset_free(&ds);
}

/* a read in several chunks of the NHWC transpose */
static void test_h5_chunks(void)
{
    dt_dataset ds;
    const char *p;
    dt_dataset_opts o = {0};
    o.h5_layout = "nhwc";

    /* 32 MiB each, NHWC float: 200 x 128 x 128 x 3 float32 = 39 MB */
    enum { BN = 200, BH = 128, BW = 128, BC = 3 };
    float *big = malloc((size_t)BN * BH * BW * BC * sizeof *big);
    int64_t blbl[BN];
    for (int i = 0; i < BN; i++) {
        blbl[i] = i % 3;
        for (int y = 0; y < BH; y++)
            for (int x = 0; x < BW; x++)
                for (int c = 0; c < BC; c++)
                    big[(((size_t)i * BH + y) * BW + x) * BC + c] =
                        (float)(i * 1000 + c * 100) + (float)(y * BW + x) * 1e-3f;
    }
    h5spec B = {"images", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, {BN, BH, BW, BC}, big};
    h5spec BL = {"labels", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, {BN}, blbl};
    p = write_h5("big.h5", &B, &BL);
    free(big);
    o.train = NULL;
    CHECK(dt_dataset_open_ex(&ds, "hdf5", p, "train", 0, &o) == 0);
    CHECK(ds.n == BN && ds.c == BC && ds.h == BH && ds.w == BW && ds.classes == 3);
    long bad = 0;
    for (int i = 0; i < ds.n && ds.fimages; i++)
        for (int c = 0; c < BC; c++)
            for (int y = 0; y < BH; y++)
                for (int x = 0; x < BW; x++)
                    bad += ds.fimages[(((size_t)i * BC + c) * BH + y) * BW + x] !=
                           (float)(i * 1000 + c * 100) + (float)(y * BW + x) * 1e-3f;
    CHECK(bad == 0);
    dt_dataset_free(&ds);
    char bp[400];
    tpath(bp, sizeof bp, "big.h5");
    CHECK(unlink(bp) == 0);
}

static void test_h5_good(void)
{
    fill_h5_arrays();
    test_h5_uint8();
    test_h5_float();
    test_h5_rank3();
    test_h5_chunks();
}

/* Files: missing, none given, not HDF5, a directory. */
static void test_h5_bad_files(void)
{
    dt_dataset ds;
    char p[400];

    /* missing file */
    tpath(p, sizeof p, "nope.h5");
    CHECK(dt_dataset_open(&ds, "hdf5", p, "train", 0) == DT_ERR);
    CHECK(err_has(p, "cannot open", "No such file"));
    /* no file given */
    CHECK(dt_dataset_open(&ds, "hdf5", "", "test", 0) == DT_ERR);
    CHECK(err_has("data.h5_test: no HDF5 file given", NULL, NULL));
    /* not an HDF5 file */
    tpath(p, sizeof p, "text.h5");
    write_file(p, "hello, world\n", 13);
    CHECK(dt_dataset_open(&ds, "hdf5", p, "train", 0) == DT_ERR);
    CHECK(err_has(p, "not an HDF5 file", NULL));
    /* a directory */
    tpath(p, sizeof p, "adir/x");
    p[strlen(p) - 2] = '\0';
    CHECK(dt_dataset_open(&ds, "hdf5", p, "train", 0) == DT_ERR);
    CHECK(err_has(p, "regular file", NULL));
}

/* The datasets: missing, wrong rank or type, labels of the wrong type or shape. */
static void test_h5_bad_datasets(void)
{
    dt_dataset ds;
    const h5spec I = {"images", H5T_STD_U8LE, H5T_NATIVE_UINT8, 4, {HN, HC, HH, HW}, u8_nchw};
    const h5spec L = {"labels", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, {HN}, lbl64};
    const char *f;
    dt_dataset_opts o = {0};

    /* missing image dataset, missing label dataset */
    f = write_h5("nolabels.h5", &I, NULL);
    o.h5_images = "pixels";
    CHECK(dt_dataset_open_ex(&ds, "hdf5", f, "train", 0, &o) == DT_ERR);
    CHECK(err_has(f, "no dataset 'pixels'", "data.h5_images"));
    CHECK(dt_dataset_open(&ds, "hdf5", f, "train", 0) == DT_ERR);
    CHECK(err_has(f, "no dataset 'labels'", "data.h5_labels"));
    o.h5_images = "grp/images";
    CHECK(dt_dataset_open_ex(&ds, "hdf5", f, "train", 0, &o) == DT_ERR);
    CHECK(err_has(f, "no dataset 'grp/images'", NULL));
    /* wrong rank */
    h5spec I2 = I;
    I2.rank = 2;
    I2.dims[1] = HC * HH * HW;
    f = write_h5("rank2.h5", &I2, &L);
    CHECK(dt_dataset_open(&ds, "hdf5", f, "train", 0) == DT_ERR);
    CHECK(err_has(f, "dataset 'images' has rank 2 (shape 7x90)", "expected rank 4"));
    /* wrong dtype: int16 images */
    int16_t i16[HN * HC * HH * HW] = {0};
    I2 = I;
    I2.ftype = H5T_STD_I16LE;
    I2.mtype = H5T_NATIVE_INT16;
    I2.data = i16;
    f = write_h5("int16.h5", &I2, &L);
    CHECK(dt_dataset_open(&ds, "hdf5", f, "train", 0) == DT_ERR);
    CHECK(err_has(f, "dataset 'images' has type int16", "expected uint8 or float32"));
    /* float labels */
    float fl[HN] = {0};
    h5spec L2 = {"labels", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, {HN}, fl};
    f = write_h5("flabels.h5", &I, &L2);
    CHECK(dt_dataset_open(&ds, "hdf5", f, "train", 0) == DT_ERR);
    CHECK(err_has(f, "dataset 'labels' has type float32", "expected integer labels"));
    /* labels of rank 2 (N, 2) */
    int64_t l2[HN * 2] = {0};
    L2 = L;
    L2.rank = 2;
    L2.dims[1] = 2;
    L2.data = l2;
    f = write_h5("labels2d.h5", &I, &L2);
    CHECK(dt_dataset_open(&ds, "hdf5", f, "train", 0) == DT_ERR);
    CHECK(err_has(f, "dataset 'labels' has shape 7x2", "expected (N) or (N, 1)"));
}

/* Labels: out of range (classes given, or the training set's), negative, a count mismatch. */
static void test_h5_bad_labels(void)
{
    dt_dataset ds;
    const h5spec I = {"images", H5T_STD_U8LE, H5T_NATIVE_UINT8, 4, {HN, HC, HH, HW}, u8_nchw};
    const h5spec L = {"labels", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, {HN}, lbl64};
    const char *f;
    h5spec L2;
    dt_dataset_opts o = {0};

    /* label out of range: classes given, and from the training set */
    char goodp[400];
    snprintf(goodp, sizeof goodp, "%s", write_h5("good.h5", &I, &L));
    f = goodp;
    o.classes = 4;
    CHECK(dt_dataset_open_ex(&ds, "hdf5", f, "train", 0, &o) == DT_ERR);
    CHECK(err_has(f, "dataset 'labels': label 4 of sample 3 is out of range: expected 0..3",
                  "data.classes"));
    CHECK(ds.n == 0 && ds.images == NULL && ds.owned[0] == NULL && ds.owned[1] == NULL);
    dt_dataset train;
    int64_t l3[HN];
    for (int i = 0; i < HN; i++)
        l3[i] = i % 3;
    L2 = L;
    L2.data = l3;
    const char *tf = write_h5("train3.h5", &I, &L2);
    char trainp[400];
    snprintf(trainp, sizeof trainp, "%s", tf);
    CHECK(dt_dataset_open(&train, "hdf5", trainp, "train", 0) == 0);
    CHECK(train.classes == 3);
    o = (dt_dataset_opts){0};
    o.train = &train;
    CHECK(dt_dataset_open_ex(&ds, "hdf5", f, "test", 0, &o) == DT_ERR);
    CHECK(err_has(f, "label 3 of sample 0 is out of range: expected 0..2",
                  "the training set's classes"));
    dt_dataset_free(&train);
    /* negative label */
    int64_t ln[HN] = {0, 1, 2, -1, 0, 0, 0};
    L2 = L;
    L2.data = ln;
    f = write_h5("neg.h5", &I, &L2);
    CHECK(dt_dataset_open(&ds, "hdf5", f, "train", 0) == DT_ERR);
    CHECK(err_has(f, "label -1 of sample 3 is negative", NULL));
    /* count mismatch */
    L2 = L;
    L2.dims[0] = HN - 2;
    f = write_h5("count.h5", &I, &L2);
    CHECK(dt_dataset_open(&ds, "hdf5", f, "train", 0) == DT_ERR);
    CHECK(err_has(f, "'labels' has 5 labels but 'images' has 7 images", "same count"));
}

/* Images: a bad layout name, too many channels, a constant channel, NaN; a damaged file. */
static void test_h5_bad_images(void)
{
    dt_dataset ds;
    const h5spec I = {"images", H5T_STD_U8LE, H5T_NATIVE_UINT8, 4, {HN, HC, HH, HW}, u8_nchw};
    const h5spec L = {"labels", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, {HN}, lbl64};
    const char *f;
    h5spec I2;
    dt_dataset_opts o;

    /* bad layout name */
    f = write_h5("good.h5", &I, &L);
    o = (dt_dataset_opts){0};
    o.h5_layout = "chwn";
    CHECK(dt_dataset_open_ex(&ds, "hdf5", f, "train", 0, &o) == DT_ERR);
    CHECK(err_has("data.h5_layout = 'chwn'", "nchw or nhwc", NULL));
    /* too many channels */
    static uint8_t five[HN][5][HH][HW];
    I2 = I;
    I2.dims[1] = 5;
    I2.data = five;
    f = write_h5("five.h5", &I2, &L);
    CHECK(dt_dataset_open(&ds, "hdf5", f, "train", 0) == DT_ERR);
    CHECK(err_has(f, "5 channels as nchw: expected 1..4", NULL));
    /* constant channel: no statistics to normalize by, unless given */
    I2 = I;
    I2.data = five; /* all zero, 3 channels */
    I2.dims[1] = HC;
    f = write_h5("const.h5", &I2, &L);
    CHECK(dt_dataset_open(&ds, "hdf5", f, "train", 0) == DT_ERR);
    CHECK(err_has(f, "channel 0 of the images has std 0", "data.std"));
    o = (dt_dataset_opts){0};
    o.norm_n = 1;
    o.mean[0] = 0.5f;
    o.std[0] = 0.5f;
    CHECK(dt_dataset_open_ex(&ds, "hdf5", f, "train", 0, &o) == 0);
    dt_dataset_free(&ds);
    /* NaN in float images */
    static float fnan[HN][HC][HH][HW];
    fnan[4][1][2][3] = NAN;
    h5spec F = {"images", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, {HN, HC, HH, HW}, fnan};
    f = write_h5("nan.h5", &F, &L);
    CHECK(dt_dataset_open(&ds, "hdf5", f, "train", 0) == DT_ERR);
    CHECK(err_has(f, "sample 4 holds nan", "finite"));
    /* a damaged HDF5 file: the signature is there, the rest is cut off */
    f = write_h5("cut.h5", &I, &L);
    struct stat st;
    CHECK(stat(f, &st) == 0 && truncate(f, st.st_size / 3) == 0);
    CHECK(dt_dataset_open(&ds, "hdf5", f, "train", 0) == DT_ERR);
    CHECK(err_has(f, NULL, NULL));
    CHECK(ds.n == 0 && ds.images == NULL && ds.owned[0] == NULL);
}

static void test_h5_bad(void)
{
    quiet_begin();
    test_h5_bad_files();
    test_h5_bad_datasets();
    test_h5_bad_labels();
    test_h5_bad_images();
    long noise = quiet_end();
    CHECK(noise == 0); /* HDF5 printed nothing of its own */
    if (noise != 0) {
        FILE *q = fopen(quiet_path, "r");
        char line[512];
        for (int k = 0; q && k < 20 && fgets(line, sizeof line, q); k++)
            fprintf(stderr, "  stderr: %s", line);
        if (q)
            fclose(q);
    }
    /* HDF5's printing is restored afterwards: not tested (it would print) */
}

/* ---------------------------------------------------------------- augmentation */

enum { AN = 40, AC = 3, AH = 8, AW = 10 };

/* torchvision order, literally: pad with zeros, crop at (i, j), flip, then normalize */
static void ref_augment(const dt_dataset *ds, int64_t s, int pad, int dy, int dx, int flip,
                        float *out)
{
    int PH = ds->h + 2 * pad, PW = ds->w + 2 * pad;
    float *padded = calloc((size_t)PH * PW, sizeof *padded);
    size_t plane = (size_t)ds->h * ds->w;
    for (int c = 0; c < ds->c; c++) {
        memset(padded, 0, (size_t)PH * PW * sizeof *padded);
        for (int y = 0; y < ds->h; y++)
            for (int x = 0; x < ds->w; x++) {
                size_t k = (size_t)s * ds->c * plane + c * plane + (size_t)y * ds->w + x;
                padded[(size_t)(y + pad) * PW + x + pad] =
                    ds->images ? (float)ds->images[k] / 255.0f : ds->fimages[k];
            }
        int i0 = dy + pad, j0 = dx + pad;
        for (int y = 0; y < ds->h; y++)
            for (int x = 0; x < ds->w; x++) {
                int xs = flip ? ds->w - 1 - x : x;
                float v = padded[(size_t)(y + i0) * PW + xs + j0];
                out[c * plane + (size_t)y * ds->w + x] = (v - ds->mean[c]) / ds->std[c];
            }
    }
    free(padded);
}

static void check_aug_against_ref(const dt_dataset *ds, const dt_augment *aug, int64_t epoch,
                                  const char *what)
{
    size_t per = (size_t)ds->c * ds->h * ds->w;
    int n = (int)ds->n;
    float *x = malloc((size_t)n * per * sizeof *x), *want = malloc(per * sizeof *want);
    int64_t *idx = calloc((size_t)n, sizeof *idx);
    int *y = malloc((size_t)n * sizeof *y), flips = 0, shifted = 0, bad = 0;
    for (int i = 0; i < n; i++)
        idx[i] = (i * 3 + 1) % n; /* a permutation for n not a multiple of 3 */
    dt_dataset_gather_aug(ds, idx, n, x, y, aug, epoch);
    for (int i = 0; i < n; i++) {
        int dy, dx, flip;
        dt_augment_draw(aug, epoch, idx[i], &dy, &dx, &flip);
        flips += flip;
        shifted += dy != 0 || dx != 0;
        bad += y[i] != dt_dataset_label(ds, idx[i]);
        ref_augment(ds, idx[i], aug->crop_pad, dy, dx, flip, want);
        if (!check_tensor_close_at(x + (size_t)i * per, want, (long)per, 0, 0, what, __FILE__,
                                   __LINE__))
            break;
    }
    CHECK(bad == 0);
    if (aug->flip)
        CHECK(flips > 0 && flips < n);
    if (aug->crop_pad)
        CHECK(shifted > 0);
    free(x);
    free(want);
    free(idx);
    free(y);
}

/* The draws: another epoch, another seed, differ on average; offsets uniform; epochs and
 * indexes not interchangeable. */
static void test_augment_draws(void)
{
    dt_augment both = {4, 1, 42};
    int same_epoch = 0, same_seed = 0, total = 2000;
    dt_augment other = both;
    other.seed = 43;
    long hist_dy[9] = {0}, hist_dx[9] = {0}, nflip = 0;
    for (int k = 0; k < total; k++) {
        int d0[3], d1[3], d2[3];
        dt_augment_draw(&both, 7, k, &d0[0], &d0[1], &d0[2]);
        dt_augment_draw(&both, 8, k, &d1[0], &d1[1], &d1[2]);
        dt_augment_draw(&other, 7, k, &d2[0], &d2[1], &d2[2]);
        same_epoch += memcmp(d0, d1, sizeof d0) == 0;
        same_seed += memcmp(d0, d2, sizeof d0) == 0;
        if (d0[0] >= -4 && d0[0] <= 4 && d0[1] >= -4 && d0[1] <= 4) {
            hist_dy[d0[0] + 4]++;
            hist_dx[d0[1] + 4]++;
        }
        nflip += d0[2];
    }
    /* 162 equally likely draws: about 12 of 2000 coincide by chance */
    CHECK(same_epoch < 60 && same_seed < 60);
    long lo = total, hi = 0, tot = 0;
    for (int v = 0; v < 9; v++) {
        lo = hist_dy[v] < lo ? hist_dy[v] : lo;
        lo = hist_dx[v] < lo ? hist_dx[v] : lo;
        hi = hist_dy[v] > hi ? hist_dy[v] : hi;
        hi = hist_dx[v] > hi ? hist_dx[v] : hi;
        tot += hist_dy[v];
    }
    CHECK(tot == total);         /* every offset within [-4, 4] */
    CHECK(lo > 150 && hi < 300); /* about 222 each */
    CHECK(nflip > 900 && nflip < 1100);
    /* epochs and indexes are not interchangeable */
    int d3[3], d4[3];
    dt_augment_draw(&both, 1, 2, &d3[0], &d3[1], &d3[2]);
    dt_augment_draw(&both, 2, 1, &d4[0], &d4[1], &d4[2]);
    int swapped_same = memcmp(d3, d4, sizeof d3) == 0;
    dt_augment_draw(&both, 3, 5, &d3[0], &d3[1], &d3[2]);
    dt_augment_draw(&both, 5, 3, &d4[0], &d4[1], &d4[2]);
    swapped_same += memcmp(d3, d4, sizeof d3) == 0;
    CHECK(swapped_same < 2);
}

/* float images: the same geometry, zero padding normalized as (0 - mean) / std */
static void test_augment_float(void)
{
    dt_augment off = {0, 0, 42}, both = {4, 1, 42}, wide = {12, 1, 5};
    dt_dataset fds;
    char p[400];
    CHECK(dt_dataset_open_ex(&fds, "hdf5", tpath(p, sizeof p, "f32.h5"), "train", 0,
                             &(dt_dataset_opts){.h5_images = "x",
                                                .h5_labels = "y",
                                                .norm_n = 3,
                                                .mean = {0.3f, 0.5f, 0.7f},
                                                .std = {0.2f, 0.25f, 0.3f}}) == 0);
    if (fds.fimages) {
        check_aug_against_ref(&fds, &both, 0, "float crop+flip");
        check_aug_against_ref(&fds, &wide, 3, "float padding 12");
        float *fa = malloc((size_t)fds.n * HC * HH * HW * sizeof *fa);
        float *fb = malloc((size_t)fds.n * HC * HH * HW * sizeof *fb);
        int fy[HN], fyb[HN];
        int64_t fidx[HN];
        for (int i = 0; i < HN; i++)
            fidx[i] = i;
        dt_dataset_gather(&fds, fidx, HN, fa, fy);
        dt_dataset_gather_aug(&fds, fidx, HN, fb, fyb, &off, 0);
        CHECK(memcmp(fa, fb, (size_t)HN * HC * HH * HW * sizeof *fa) == 0);
        free(fa);
        free(fb);
    }
    dt_dataset_free(&fds);
}

static void test_augment(void)
{
    static uint8_t img[AN * AC * AH * AW], lbl[AN];
    for (int i = 0; i < AN; i++) {
        lbl[i] = (uint8_t)label_of(i, 10);
        for (int c = 0; c < AC; c++)
            for (int y = 0; y < AH; y++)
                for (int x = 0; x < AW; x++)
                    img[((i * AC + c) * AH + y) * AW + x] = pix(i, c, y, x);
    }
    const float mean[3] = {0.3f, 0.5f, 0.7f}, std[3] = {0.2f, 0.25f, 0.3f};
    dt_dataset ds;
    dt_dataset_from_memory(&ds, "aug", AN, AC, AH, AW, 10, img, lbl, mean, std);
    size_t per = (size_t)AC * AH * AW;
    float *a = malloc(AN * per * sizeof *a), *b = malloc(AN * per * sizeof *b);
    int ya[AN], yb[AN];
    int64_t idx[AN];
    for (int i = 0; i < AN; i++)
        idx[i] = AN - 1 - i;

    /* all off, and NULL: the plain gather, bitwise */
    dt_augment off = {0, 0, 42};
    dt_dataset_gather(&ds, idx, AN, a, ya);
    dt_dataset_gather_aug(&ds, idx, AN, b, yb, &off, 3);
    CHECK(memcmp(a, b, AN * per * sizeof *a) == 0 && memcmp(ya, yb, sizeof ya) == 0);
    memset(b, 0, AN * per * sizeof *b);
    dt_dataset_gather_aug(&ds, idx, AN, b, yb, NULL, 3);
    CHECK(memcmp(a, b, AN * per * sizeof *a) == 0);

    /* against the reference: crop + flip, crop only, flip only, padding wider than the image */
    dt_augment both = {4, 1, 42}, crop = {4, 0, 7}, flip = {0, 1, 9}, wide = {12, 1, 5};
    check_aug_against_ref(&ds, &both, 0, "crop+flip");
    check_aug_against_ref(&ds, &both, 5, "crop+flip, epoch 5");
    check_aug_against_ref(&ds, &crop, 1, "crop");
    check_aug_against_ref(&ds, &flip, 2, "flip");
    check_aug_against_ref(&ds, &wide, 0, "padding 12 > W");

    /* flip only mirrors each row, exactly */
    dt_dataset_gather_aug(&ds, idx, AN, b, yb, &flip, 2);
    int mirror_bad = 0, flipped = 0;
    for (int i = 0; i < AN; i++) {
        int dy, dx, f;
        dt_augment_draw(&flip, 2, idx[i], &dy, &dx, &f);
        flipped += f;
        mirror_bad += dy != 0 || dx != 0;
        for (size_t r = 0; r < (size_t)AC * AH; r++)
            for (int x = 0; x < AW; x++)
                mirror_bad += b[i * per + r * AW + x] != a[i * per + r * AW + (f ? AW - 1 - x : x)];
    }
    CHECK(mirror_bad == 0 && flipped > 0 && flipped < AN);

    /* a crop's zero border is the normalized zero, the shifted interior is the image */
    dt_dataset_gather_aug(&ds, idx, AN, b, yb, &crop, 1);
    int border_bad = 0;
    for (int i = 0; i < AN; i++) {
        int dy, dx, f;
        dt_augment_draw(&crop, 1, idx[i], &dy, &dx, &f);
        for (int c = 0; c < AC; c++)
            for (int y = 0; y < AH; y++)
                for (int x = 0; x < AW; x++) {
                    int sy = y + dy, sx = x + dx;
                    float got = b[i * per + ((size_t)c * AH + y) * AW + x];
                    float want = sy < 0 || sy >= AH || sx < 0 || sx >= AW
                                     ? ds.lut[c][0]
                                     : a[i * per + ((size_t)c * AH + sy) * AW + sx];
                    border_bad += got != want;
                }
    }
    CHECK(border_bad == 0);
    CHECK_CLOSE(ds.lut[0][0], -0.3 / 0.2, 1e-6, 0);

    /* determinism: same (seed, epoch, idx) -> same sample, whatever the batch and its order */
    dt_dataset_gather_aug(&ds, idx, AN, a, ya, &both, 7);
    int64_t one[1];
    float *single = malloc(per * sizeof *single);
    int ys, det_bad = 0;
    for (int i = 0; i < AN; i += 3) {
        one[0] = idx[i];
        dt_dataset_gather_aug(&ds, one, 1, single, &ys, &both, 7);
        det_bad += memcmp(single, a + i * per, per * sizeof *single) != 0 || ys != ya[i];
    }
    CHECK(det_bad == 0);
    dt_dataset_gather_aug(&ds, idx, AN, b, yb, &both, 7);
    CHECK(memcmp(a, b, AN * per * sizeof *a) == 0);
    free(single);
    free(a);
    free(b);
    dt_dataset_free(&ds);
    test_augment_draws();
    test_augment_float();
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/dtrain-data.XXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "test_data: mkdtemp %s: %s\n", tmp, strerror(errno));
        return 2;
    }
    test_cifar();
    test_h5_good();
    test_h5_bad();
    test_augment();
    if (nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "test_data: cannot remove %s\n", tmp);
    return check_finish("test_data");
}
