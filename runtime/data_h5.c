/*
 * data_h5.c - a generic image classification dataset in an HDF5 file: one image dataset and one
 * label dataset (default names "images" and "labels"), as h5py writes them from numpy arrays.
 *
 *   images: uint8 -> kept as uint8 (the LUT fast path of dt_dataset_gather);
 *           float32 or float64 -> kept as float32 (HDF5 converts on read);
 *           rank 4 (N, C, H, W) or (N, H, W, C) (converted to NCHW here), or rank 3 (N, H, W), C=1.
 *   labels: any integer type, (N) or (N, 1), read as int32 through HDF5's conversion (an
 *           out-of-range value saturates and then fails the label range check).
 *
 * Reads go through hyperslabs of at most READ_BYTES, so `limit` reads only the first samples and
 * the NHWC transpose needs one bounded buffer, not a second copy of the dataset.
 *
 * HDF5 prints its error stack to stderr by default; dt_h5_init (h5util.h) switches that off for
 * the process, so a failure reaches the user as ONE dtrain message naming the file and the
 * dataset. References: HDF5 C API (H5F, H5D, H5S, H5T), https://docs.hdfgroup.org/.
 */
#include "data_h5.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "data.h"
#include "h5util.h"

enum { READ_BYTES = 32 << 20 };

typedef struct h5obj {
    const char *path; /* the file, for messages */
    const char *name; /* the dataset name */
    hid_t dset, space, type;
    int rank;
    hsize_t dims[H5S_MAX_RANK];
} h5obj;

static void obj_close(h5obj *o)
{
    if (o->type >= 0)
        H5Tclose(o->type);
    if (o->space >= 0)
        H5Sclose(o->space);
    if (o->dset >= 0)
        H5Dclose(o->dset);
    o->type = o->space = o->dset = H5I_INVALID_HID;
}

/* "uint8", "int64", "float32", "string", ... for messages. */
static void type_name(hid_t t, char *buf, size_t n)
{
    H5T_class_t cl = H5Tget_class(t);
    size_t bits = H5Tget_size(t) * 8;
    switch (cl) {
    case H5T_INTEGER:
        snprintf(buf, n, "%s%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "uint" : "int", bits);
        break;
    case H5T_FLOAT: snprintf(buf, n, "float%zu", bits); break;
    case H5T_STRING: snprintf(buf, n, "string"); break;
    case H5T_COMPOUND: snprintf(buf, n, "compound"); break;
    case H5T_ENUM: snprintf(buf, n, "enum"); break;
    case H5T_ARRAY: snprintf(buf, n, "array"); break;
    case H5T_VLEN: snprintf(buf, n, "variable-length"); break;
    case H5T_BITFIELD: snprintf(buf, n, "bitfield"); break;
    case H5T_OPAQUE: snprintf(buf, n, "opaque"); break;
    case H5T_REFERENCE: snprintf(buf, n, "reference"); break;
    case H5T_TIME: snprintf(buf, n, "time"); break;
    default: snprintf(buf, n, "unknown type (class %d)", (int)cl); break;
    }
}

/* "50x3x32x32" */
static void shape_str(const hsize_t *dims, int rank, char *buf, size_t n)
{
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < rank && at < n; i++) {
        int k = snprintf(buf + at, n - at, "%s%llu", i ? "x" : "", (unsigned long long)dims[i]);
        if (k < 0)
            break;
        at += (size_t)k;
    }
    if (rank == 0)
        snprintf(buf, n, "scalar");
}

/* Opens dataset o->name of file and reads its rank, dims and type. `key` is the config key that
 * names it, for the hint. */
static int obj_open(h5obj *o, hid_t file, const char *key)
{
    htri_t ex = H5Lexists(file, o->name, H5P_DEFAULT);
    if (ex <= 0)
        return dt_err("%s: no dataset '%s' (set %s to the dataset's name)", o->path, o->name, key);
    o->dset = H5Dopen2(file, o->name, H5P_DEFAULT);
    if (o->dset < 0)
        return dt_err("%s: '%s' is not a dataset (a group?)", o->path, o->name);
    o->space = H5Dget_space(o->dset);
    if (o->space < 0)
        return dt_err("%s: dataset '%s': cannot read its dataspace", o->path, o->name);
    o->type = H5Dget_type(o->dset);
    if (o->type < 0)
        return dt_err("%s: dataset '%s': cannot read its type", o->path, o->name);
    H5S_class_t sc = H5Sget_simple_extent_type(o->space);
    if (sc == H5S_NO_CLASS)
        return dt_err("%s: dataset '%s': cannot read its dataspace", o->path, o->name);
    o->rank = sc == H5S_SIMPLE ? H5Sget_simple_extent_ndims(o->space) : 0;
    if (o->rank < 0 ||
        (o->rank > 0 && H5Sget_simple_extent_dims(o->space, o->dims, NULL) != o->rank))
        return dt_err("%s: dataset '%s': cannot read its shape", o->path, o->name);
    return DT_OK;
}

/* Reads rows [start, start + count) of o (all of every other dimension) as memtype into buf. */
static int read_rows(const h5obj *o, hid_t memtype, hsize_t start, hsize_t count, void *buf)
{
    hsize_t off[H5S_MAX_RANK] = {0}, cnt[H5S_MAX_RANK];
    for (int i = 0; i < o->rank; i++)
        cnt[i] = o->dims[i];
    off[0] = start;
    cnt[0] = count;
    int rc = DT_ERR;
    hid_t fspace = H5Dget_space(o->dset);
    hid_t mspace = H5Screate_simple(o->rank, cnt, NULL);
    if (fspace >= 0 && mspace >= 0 &&
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, off, NULL, cnt, NULL) >= 0 &&
        H5Dread(o->dset, memtype, mspace, fspace, H5P_DEFAULT, buf) >= 0)
        rc = DT_OK;
    if (mspace >= 0)
        H5Sclose(mspace);
    if (fspace >= 0)
        H5Sclose(fspace);
    if (rc != DT_OK)
        dt_err("%s: dataset '%s': reading samples %llu..%llu failed (damaged file?)", o->path,
               o->name, (unsigned long long)start, (unsigned long long)(start + count - 1));
    return rc;
}

/* (k, H, W, C) -> (k, C, H, W) */
static void nhwc_to_nchw_u8(const uint8_t *src, uint8_t *dst, size_t k, size_t c, size_t plane)
{
    for (size_t i = 0; i < k; i++, src += plane * c, dst += plane * c)
        for (size_t p = 0; p < plane; p++)
            for (size_t ch = 0; ch < c; ch++)
                dst[ch * plane + p] = src[p * c + ch];
}

static void nhwc_to_nchw_f32(const float *src, float *dst, size_t k, size_t c, size_t plane)
{
    for (size_t i = 0; i < k; i++, src += plane * c, dst += plane * c)
        for (size_t p = 0; p < plane; p++)
            for (size_t ch = 0; ch < c; ch++)
                dst[ch * plane + p] = src[p * c + ch];
}

/* Reads the first n samples of the image dataset into dst (n, C, H, W) of elements `esize`. */
static int read_images(const h5obj *o, int is_float, int nhwc, int64_t n, int c, size_t plane,
                       void *dst)
{
    hid_t memtype = is_float ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8;
    size_t esize = is_float ? sizeof(float) : 1;
    size_t per = (size_t)c * plane * esize; /* bytes per sample */
    size_t chunk = READ_BYTES / per > 0 ? READ_BYTES / per : 1;
    void *tmp = nhwc ? dt_xmalloc(chunk, per) : NULL;
    int rc = DT_OK;
    for (int64_t s = 0; s < n && rc == DT_OK;) {
        size_t k = (size_t)(n - s) < chunk ? (size_t)(n - s) : chunk;
        char *out = (char *)dst + (size_t)s * per;
        rc = read_rows(o, memtype, (hsize_t)s, k, nhwc ? tmp : out);
        if (rc == DT_OK && nhwc && is_float)
            nhwc_to_nchw_f32(tmp, (float *)out, k, (size_t)c, plane);
        else if (rc == DT_OK && nhwc)
            nhwc_to_nchw_u8(tmp, (uint8_t *)out, k, (size_t)c, plane);
        s += (int64_t)k;
    }
    free(tmp);
    if (rc == DT_OK && is_float) {
        const float *f = dst;
        size_t total = (size_t)n * (size_t)c * plane;
        for (size_t i = 0; i < total; i++) {
            if (!isfinite(f[i]))
                return dt_err("%s: dataset '%s': sample %zu holds %g: expected finite pixel values",
                              o->path, o->name, i / ((size_t)c * plane), (double)f[i]);
        }
    }
    return rc;
}

/* Population mean and std per channel over n samples (uint8 in [0,1] units). */
static int image_stats(dt_dataset *ds, const h5obj *o, float *mean, float *std)
{
    size_t plane = (size_t)ds->h * (size_t)ds->w, per = plane * (size_t)ds->c;
    double total = (double)ds->n * (double)plane;
    for (int c = 0; c < ds->c; c++) {
        double m = 0.0, v = 0.0;
        if (ds->images) {
            /* exact: a histogram, then the moments of 256 values */
            uint64_t hist[256] = {0};
            for (int64_t i = 0; i < ds->n; i++) {
                const uint8_t *p = ds->images + (size_t)i * per + (size_t)c * plane;
                for (size_t k = 0; k < plane; k++)
                    hist[p[k]]++;
            }
            for (int u = 0; u < 256; u++)
                m += (double)hist[u] * (u / 255.0);
            m /= total;
            for (int u = 0; u < 256; u++)
                v += (double)hist[u] * (u / 255.0 - m) * (u / 255.0 - m);
        } else {
            /* two passes: the variance of the deviations, not E[x^2] - E[x]^2 */
            for (int64_t i = 0; i < ds->n; i++) {
                const float *p = ds->fimages + (size_t)i * per + (size_t)c * plane;
                for (size_t k = 0; k < plane; k++)
                    m += p[k];
            }
            m /= total;
            for (int64_t i = 0; i < ds->n; i++) {
                const float *p = ds->fimages + (size_t)i * per + (size_t)c * plane;
                for (size_t k = 0; k < plane; k++)
                    v += (p[k] - m) * (p[k] - m);
            }
        }
        mean[c] = (float)m;
        std[c] = (float)sqrt(v / total);
        if (!(std[c] > 0.0f) || !isfinite(std[c]) || !isfinite(mean[c]))
            return dt_err("%s: dataset '%s': channel %d of the images has std %g (constant?): "
                          "cannot normalize by it; give data.mean and data.std",
                          o->path, o->name, c, (double)std[c]);
    }
    return DT_OK;
}

/* The image dataset's element type and sample shape, as validated by check_images. */
typedef struct h5images {
    int is_float; /* float32/float64 (read as float32); else uint8 */
    int nhwc;     /* rank 4 stored (N, H, W, C): transposed at read */
    hsize_t N, C, H, W;
} h5images;

/* Validates the opened image dataset: uint8 or float, rank 3 or 4, a plausible sample shape in
 * `layout`. */
static int check_images(const h5obj *im, const char *layout, h5images *s)
{
    char tn[64], sh[256];
    H5T_class_t icl = H5Tget_class(im->type);
    size_t isz = H5Tget_size(im->type);
    s->is_float = icl == H5T_FLOAT && (isz == 4 || isz == 8);
    int is_u8 = icl == H5T_INTEGER && isz == 1 && H5Tget_sign(im->type) == H5T_SGN_NONE;
    if (!s->is_float && !is_u8) {
        type_name(im->type, tn, sizeof tn);
        return dt_err("%s: dataset '%s' has type %s: expected uint8 or float32 (float64 is read as "
                      "float32) images",
                      im->path, im->name, tn);
    }
    shape_str(im->dims, im->rank, sh, sizeof sh);
    if (im->rank != 3 && im->rank != 4)
        return dt_err("%s: dataset '%s' has rank %d (shape %s): expected rank 4 (N, C, H, W or "
                      "N, H, W, C) or 3 (N, H, W)",
                      im->path, im->name, im->rank, sh);
    int nhwc = strcmp(layout, "nhwc") == 0;
    s->nhwc = nhwc && im->rank == 4;
    s->N = im->dims[0];
    s->C = 1;
    s->H = im->dims[1];
    s->W = im->dims[2];
    if (im->rank == 4) {
        s->C = nhwc ? im->dims[3] : im->dims[1];
        s->H = nhwc ? im->dims[1] : im->dims[2];
        s->W = nhwc ? im->dims[2] : im->dims[3];
    }
    if (s->N == 0)
        return dt_err("%s: dataset '%s' has shape %s: expected at least one sample", im->path,
                      im->name, sh);
    if (s->C < 1 || s->C > DT_MAX_CHANNELS)
        return dt_err("%s: dataset '%s' has shape %s, so %llu channels as %s: expected 1..%d "
                      "channels (is data.h5_layout right?)",
                      im->path, im->name, sh, (unsigned long long)s->C, layout, DT_MAX_CHANNELS);
    if (s->H < 1 || s->W < 1 || s->H > 65536 || s->W > 65536 || s->C * s->H * s->W > INT32_MAX)
        return dt_err("%s: dataset '%s' has shape %s: expected samples of at most 65536x65536 "
                      "pixels and 2^31 values",
                      im->path, im->name, sh);
    return DT_OK;
}

/* Validates the opened label dataset: integers, (N) or (N, 1), one per image. */
static int check_labels(const h5obj *lb, const h5obj *im, hsize_t N)
{
    char tn[64], sh[256];
    if (H5Tget_class(lb->type) != H5T_INTEGER) {
        type_name(lb->type, tn, sizeof tn);
        return dt_err("%s: dataset '%s' has type %s: expected integer labels", lb->path, lb->name,
                      tn);
    }
    if (lb->rank != 1 && !(lb->rank == 2 && lb->dims[1] == 1)) {
        shape_str(lb->dims, lb->rank, sh, sizeof sh);
        return dt_err("%s: dataset '%s' has shape %s: expected (N) or (N, 1) labels", lb->path,
                      lb->name, sh);
    }
    if (lb->dims[0] != N)
        return dt_err("%s: dataset '%s' has %llu labels but '%s' has %llu images: expected the "
                      "same count",
                      lb->path, lb->name, (unsigned long long)lb->dims[0], im->name,
                      (unsigned long long)N);
    return DT_OK;
}

/* A test split's samples must have the training set's shape and element type. */
static int check_like_train(const h5obj *im, const h5images *s, const dt_dataset *train)
{
    if (!train || ((hsize_t)train->c == s->C && (hsize_t)train->h == s->H &&
                   (hsize_t)train->w == s->W && (train->fimages != NULL) == s->is_float))
        return DT_OK;
    return dt_err("%s: dataset '%s' holds %llux%llux%llu %s samples but the training set %s has "
                  "%dx%dx%d %s ones: expected the same",
                  im->path, im->name, (unsigned long long)s->C, (unsigned long long)s->H,
                  (unsigned long long)s->W, s->is_float ? "float" : "uint8", train->name, train->c,
                  train->h, train->w, train->fimages ? "float" : "uint8");
}

/* Reads the first ds->n labels as int32 and checks their range; sets ds->classes (given, the
 * training set's, or max label + 1) and ds->labels32. */
static int read_labels(dt_dataset *ds, const h5obj *lb, const dt_dataset_opts *opt)
{
    int32_t *labels = dt_xmalloc((size_t)ds->n, sizeof *labels);
    ds->owned[1] = labels;
    if (read_rows(lb, H5T_NATIVE_INT32, 0, (hsize_t)ds->n, labels) != 0)
        return DT_ERR;
    const dt_dataset *train = opt->train;
    int classes = opt->classes > 0 ? opt->classes : train ? train->classes : 0;
    int32_t max = 0;
    for (int64_t i = 0; i < ds->n; i++) {
        int32_t l = labels[i];
        if (l >= 0 && (classes == 0 || l < classes)) {
            if (l > max)
                max = l;
            continue;
        }
        if (classes > 0)
            return dt_err("%s: dataset '%s': label %d of sample %lld is out of range: expected "
                          "0..%d (%s)",
                          lb->path, lb->name, (int)l, (long long)i, classes - 1,
                          opt->classes > 0 ? "data.classes" : "the training set's classes");
        return dt_err("%s: dataset '%s': label %d of sample %lld is negative: expected class "
                      "indices >= 0",
                      lb->path, lb->name, (int)l, (long long)i);
    }
    if (classes == 0) {
        if (max == INT32_MAX)
            return dt_err("%s: dataset '%s': label %d is too large", lb->path, lb->name, (int)max);
        classes = max + 1;
    }
    ds->classes = classes;
    ds->labels32 = labels;
    return DT_OK;
}

/* Normalization: given, the training set's, or this (training) set's own statistics. */
static int set_norm(dt_dataset *ds, const h5obj *im, const dt_dataset_opts *opt)
{
    if (opt->norm_n > 0)
        return dt_dataset_apply_norm(ds, opt);
    if (opt->train) {
        dt_dataset_set_norm(ds, opt->train->mean, opt->train->std);
        return DT_OK;
    }
    float mean[DT_MAX_CHANNELS], std[DT_MAX_CHANNELS];
    if (image_stats(ds, im, mean, std) != 0)
        return DT_ERR;
    dt_dataset_set_norm(ds, mean, std);
    return DT_OK;
}

/* The body of dt_h5data_open on the opened file: open and validate both datasets, read the
 * images (converted to NCHW) and the labels, normalize. */
static int h5_load(dt_dataset *ds, const char *path, const dt_dataset_opts *opt, int64_t limit,
                   hid_t file)
{
    const char *iname = opt->h5_images && opt->h5_images[0] ? opt->h5_images : "images";
    const char *lname = opt->h5_labels && opt->h5_labels[0] ? opt->h5_labels : "labels";
    const char *layout = opt->h5_layout && opt->h5_layout[0] ? opt->h5_layout : "nchw";
    if (strcmp(layout, "nhwc") != 0 && strcmp(layout, "nchw") != 0)
        return dt_err("data.h5_layout = '%s': expected nchw or nhwc", layout);
    h5obj im = {path, iname, H5I_INVALID_HID, H5I_INVALID_HID, H5I_INVALID_HID, 0, {0}};
    h5obj lb = {path, lname, H5I_INVALID_HID, H5I_INVALID_HID, H5I_INVALID_HID, 0, {0}};
    h5images s = {0, 0, 0, 0, 0, 0};
    int rc = DT_ERR;
    if (obj_open(&im, file, "data.h5_images") != 0 || check_images(&im, layout, &s) != 0 ||
        obj_open(&lb, file, "data.h5_labels") != 0 || check_labels(&lb, &im, s.N) != 0 ||
        check_like_train(&im, &s, opt->train) != 0)
        goto done;

    ds->n = limit > 0 && (hsize_t)limit < s.N ? limit : (int64_t)s.N;
    ds->c = (int)s.C;
    ds->h = (int)s.H;
    ds->w = (int)s.W;
    size_t plane = (size_t)s.H * (size_t)s.W;
    void *pix = dt_xmalloc((size_t)ds->n * (size_t)s.C * plane, s.is_float ? sizeof(float) : 1);
    ds->owned[0] = pix;
    if (read_images(&im, s.is_float, s.nhwc, ds->n, (int)s.C, plane, pix) != 0)
        goto done;
    if (s.is_float)
        ds->fimages = pix;
    else
        ds->images = pix;
    if (read_labels(ds, &lb, opt) != 0)
        goto done;
    const char *slash = strrchr(path, '/');
    snprintf(ds->name, sizeof ds->name, "%s", slash ? slash + 1 : path);
    rc = set_norm(ds, &im, opt);
done:
    obj_close(&lb);
    obj_close(&im);
    return rc;
}

int dt_h5data_open(dt_dataset *ds, const char *path, const dt_dataset_opts *opt, int64_t limit)
{
    static const dt_dataset_opts defaults;
    if (!opt)
        opt = &defaults;
    memset(ds, 0, sizeof *ds);
    struct stat st;
    if (dt_check_regular_file(path, "an HDF5 file") != 0)
        return DT_ERR;
    if (stat(path, &st) != 0)
        return dt_err("%s: cannot open: %s (expected an HDF5 file)", path, strerror(errno));
    if (!S_ISREG(st.st_mode) || st.st_size == 0)
        return dt_err("%s: expected a non-empty regular file (an HDF5 file)", path);

    dt_h5_init(); /* HDF5 reports through dt_err, never on its own */
    int rc = DT_ERR;
    hid_t fapl = H5I_INVALID_HID, file = H5I_INVALID_HID;
#if H5_VERSION_GE(1, 12, 0)
    htri_t is = H5Fis_accessible(path, H5P_DEFAULT); /* H5Fis_hdf5 is deprecated from 1.12 */
#else
    htri_t is = H5Fis_hdf5(path);
#endif
    if (is == 0) {
        dt_err("%s: not an HDF5 file (no HDF5 signature)", path);
        goto done;
    }
    if (is < 0) {
        dt_err("%s: cannot read it as an HDF5 file", path);
        goto done;
    }
    fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) {
        dt_err("%s: HDF5: cannot create a file access property list", path);
        goto done;
    }
#if H5_VERSION_GE(1, 10, 7)
    /* shared read locks where the file system has them; no failure where it has none (Lustre,
     * some NFS mounts), since a dataset is only read here */
    if (H5Pset_file_locking(fapl, 1, 1) < 0) {
        dt_err("%s: HDF5: cannot set the file locking property", path);
        goto done;
    }
#endif
    file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (file < 0) {
        dt_err("%s: cannot open as an HDF5 file (damaged, or locked by a writer?)", path);
        goto done;
    }
    rc = h5_load(ds, path, opt, limit, file);
done:
    if (file >= 0 && H5Fclose(file) < 0 && rc == DT_OK)
        rc = dt_err("%s: HDF5: closing the file failed", path);
    if (fapl >= 0)
        H5Pclose(fapl);
    H5Eclear2(H5E_DEFAULT);
    if (rc != DT_OK)
        dt_dataset_free(ds);
    return rc;
}
