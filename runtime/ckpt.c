/*
 * ckpt.c - the checkpoint container: see ckpt.h for the file layout, the commit protocol and
 * every function's contract. The dtrain header lives in ckpt_hdr.c, the directory helpers in
 * ckpt_dir.c, HDF5 helpers in h5util.c.
 *
 * Conventions: every HDF5 call's return value is checked; HDF5 handles are closed on every path.
 * The writer builds the whole file in memory with HDF5's core driver (no backing store) and
 * writes it with plain write(2): HDF5 itself never touches the disk while writing, so a full
 * disk, a quota, an I/O error or a vanished directory is a POSIX error with its errno, and HDF5
 * never holds a file it could not flush (HDF5 1.10 crashes at library termination when
 * H5Fclose failed to flush: H5F__close_cb on a file it already freed). The image is byte for
 * byte the file the sec2 driver writes. Checksums are XXH64 over the raw bytes of the array in
 * C order; the host must be little-endian, like the file's types.
 *
 * References: HDF5 1.10 C API reference manual (H5Pset_fapl_core, H5Pset_file_image_callbacks,
 * the version 2 superblock in the HDF5 file format specification).
 */
#include "ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buildinfo.h"
#include "ckpt_hdr.h"
#include "common.h"
#include "h5util.h"
#include "xxh64.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ckpt.c hashes in-memory bytes as the file's little-endian bytes: little-endian hosts only"
#endif

#define FORMAT_NAME "dtrain-checkpoint"
#define FORMAT_VERSION 1
#define CKSUM_ATTR "xxh64"
#define PATH_MAX_LEN 4096

/* ---- small helpers ---- */

static void appendf(char *buf, size_t n, size_t *len, const char *fmt, ...) DT_PRINTF(4, 5);
static void appendf(char *buf, size_t n, size_t *len, const char *fmt, ...)
{
    if (n == 0 || *len + 1 >= n)
        return;
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(buf + *len, n - *len, fmt, ap);
    va_end(ap);
    if (r < 0)
        return;
    *len += (size_t)r;
    if (*len >= n)
        *len = n - 1;
}

/* snprintf for messages built from paths: truncation is acceptable there. */
static void say(char *buf, size_t n, const char *fmt, ...) DT_PRINTF(3, 4);
static void say(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

/* Grows an array of elem-sized entries holding n so it has room for one more. */
static void *grow(void *p, int n, int *cap, size_t elem)
{
    if (n < *cap)
        return p;
    int ncap = *cap ? 2 * *cap : 16;
    void *q = dt_xmalloc((size_t)ncap, elem);
    if (n)
        memcpy(q, p, (size_t)n * elem);
    free(p);
    *cap = ncap;
    return q;
}

static const char *const dtype_names[] = {"float32", "float64", "int64", "uint8"};
static const size_t dtype_sizes[] = {4, 8, 8, 1};

static int dtype_ok(dt_ck_dtype t) { return (int)t >= (int)DT_CK_F32 && (int)t <= (int)DT_CK_U8; }

const char *dt_ck_dtype_name(dt_ck_dtype dtype)
{
    return dtype_ok(dtype) ? dtype_names[dtype] : "invalid";
}

size_t dt_ck_dtype_size(dt_ck_dtype dtype)
{
    DT_ASSERT(dtype_ok(dtype));
    return dtype_sizes[dtype];
}

static hid_t file_type(dt_ck_dtype t)
{
    switch (t) {
    case DT_CK_F32: return H5T_IEEE_F32LE;
    case DT_CK_F64: return H5T_IEEE_F64LE;
    case DT_CK_I64: return H5T_STD_I64LE;
    case DT_CK_U8: return H5T_STD_U8LE;
    }
    DT_ASSERT(0);
    return -1;
}

static hid_t mem_type(dt_ck_dtype t)
{
    switch (t) {
    case DT_CK_F32: return H5T_NATIVE_FLOAT;
    case DT_CK_F64: return H5T_NATIVE_DOUBLE;
    case DT_CK_I64: return H5T_NATIVE_INT64;
    case DT_CK_U8: return H5T_NATIVE_UINT8;
    }
    DT_ASSERT(0);
    return -1;
}

void dt_ck_format_shape(char *buf, size_t n, int ndim, const int64_t *dims)
{
    size_t len = 0;
    if (n == 0)
        return;
    buf[0] = '\0';
    appendf(buf, n, &len, "(");
    for (int i = 0; i < ndim; i++)
        appendf(buf, n, &len, "%s%lld", i ? ", " : "", (long long)dims[i]);
    appendf(buf, n, &len, ")");
}

/* ---- root attributes ---- */

/* Checks the root attributes that make a file a complete dtrain checkpoint. 0 or DT_ERR. */
static int check_header(hid_t file, const char *path)
{
    hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
    char *v = NULL;
    int rc = DT_ERR, k;
    if (root < 0) {
        dt_err("%s: cannot open root group: %s", path, dt_h5_error());
        goto out;
    }
    if ((k = dt_h5_get_attr_string(root, "format", &v)) < 0) {
        dt_err("%s: cannot read attribute 'format': %s", path, dt_h5_error());
        goto out;
    }
    if (k == 0) {
        dt_err("%s: not a dtrain checkpoint (no 'format' attribute)", path);
        goto out;
    }
    if (strcmp(v, FORMAT_NAME) != 0) {
        dt_err("%s: not a dtrain checkpoint (format is '%s')", path, v);
        goto out;
    }
    free(v);
    v = NULL;
    if ((k = dt_h5_get_attr_string(root, "format_version", &v)) < 0) {
        dt_err("%s: cannot read attribute 'format_version': %s", path, dt_h5_error());
        goto out;
    }
    if (k == 0 || strcmp(v, "1") != 0) {
        dt_err("%s: unsupported checkpoint format_version %s (this dtrain reads %d)", path,
               k ? v : "(missing)", FORMAT_VERSION);
        goto out;
    }
    free(v);
    v = NULL;
    if ((k = dt_h5_get_attr_string(root, "complete", &v)) < 0) {
        dt_err("%s: cannot read attribute 'complete': %s", path, dt_h5_error());
        goto out;
    }
    if (k == 0) {
        dt_err("%s: incomplete checkpoint (no 'complete' attribute)", path);
        goto out;
    }
    if (strcmp(v, "1") != 0) {
        dt_err("%s: incomplete checkpoint ('complete' is %s)", path, v);
        goto out;
    }
    rc = DT_OK;
out:
    free(v);
    if (dt_h5_close(&root) && rc == DT_OK)
        rc = dt_err("%s: cannot close root group: %s", path, dt_h5_error());
    return rc;
}

/* ---- names ---- */

/* Non-empty, < DT_CK_NAME_MAX bytes, '/'-separated components that are non-empty and not "."
 * or "..". */
static int name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= DT_CK_NAME_MAX)
        return 0;
    const char *c = name;
    for (;;) {
        size_t k = strcspn(c, "/");
        if (k == 0 || (k == 1 && c[0] == '.') || (k == 2 && c[0] == '.' && c[1] == '.'))
            return 0;
        if (!c[k])
            return 1;
        c += k + 1;
    }
}

/* 1 when a is a group prefix of b ("model" of "model/fc1.weight"). */
static int is_group_prefix(const char *a, const char *b)
{
    size_t n = strlen(a);
    return strncmp(a, b, n) == 0 && b[n] == '/';
}

/* ---- writer ---- */

typedef struct witem {
    char name[DT_CK_NAME_MAX];
    dt_ck_dtype dtype;
    int ndim;
    int64_t dims[DT_CK_MAX_DIM];
    int64_t numel;
    const void *data;
    void *owned;     /* the copy made by dt_ck_add_copy, or NULL */
    uint64_t xxh64;
    uint64_t off, len; /* where HDF5 put its raw data (len 0: none) */
} witem;

typedef struct wattr {
    char *name, *value;
} wattr;

struct dt_ck_writer {
    char *path;
    witem *items;
    int nitems, cap_items;
    wattr *attrs;
    int nattrs, cap_attrs;
};

dt_ck_writer *dt_ck_begin(const char *final_path)
{
    DT_ASSERT(final_path && final_path[0]);
    dt_ck_writer *w = dt_xcalloc(1, sizeof *w);
    w->path = dt_xstrdup(final_path);
    return w;
}

static witem *add_item(dt_ck_writer *w, const char *name, dt_ck_dtype dtype, int ndim,
                       const int64_t *dims, const void *data)
{
    DT_ASSERT(w && name);
    DT_ASSERT(name_valid(name));
    DT_ASSERT(dtype_ok(dtype));
    DT_ASSERT(ndim >= 0 && ndim <= DT_CK_MAX_DIM);
    DT_ASSERT(ndim == 0 || dims);
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        DT_ASSERT(dims[i] >= 0);
        DT_ASSERT(dims[i] == 0 || numel <= INT64_MAX / 8 / dims[i]);
        numel *= dims[i];
    }
    DT_ASSERT(data || numel == 0);
    for (int i = 0; i < w->nitems; i++) {
        DT_ASSERT(strcmp(w->items[i].name, name) != 0);        /* added twice */
        DT_ASSERT(!is_group_prefix(w->items[i].name, name));  /* both a dataset and a group */
        DT_ASSERT(!is_group_prefix(name, w->items[i].name));
    }
    w->items = grow(w->items, w->nitems, &w->cap_items, sizeof *w->items);
    witem *it = &w->items[w->nitems++];
    memset(it, 0, sizeof *it);
    snprintf(it->name, sizeof it->name, "%s", name);
    it->dtype = dtype;
    it->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        it->dims[i] = dims[i];
    it->numel = numel;
    it->data = data;
    return it;
}

void dt_ck_add(dt_ck_writer *w, const char *name, dt_ck_dtype dtype, int ndim,
               const int64_t *dims, const void *data)
{
    add_item(w, name, dtype, ndim, dims, data);
}

void dt_ck_add_copy(dt_ck_writer *w, const char *name, dt_ck_dtype dtype, int ndim,
                    const int64_t *dims, const void *data)
{
    witem *it = add_item(w, name, dtype, ndim, dims, data);
    size_t bytes = (size_t)it->numel * dtype_sizes[dtype];
    it->owned = dt_xmalloc(bytes, 1);
    if (bytes)
        memcpy(it->owned, data, bytes);
    it->data = it->owned;
}

void dt_ck_attr(dt_ck_writer *w, const char *name, const char *value)
{
    DT_ASSERT(w && name && name[0] && value);
    DT_ASSERT(strcmp(name, "format") != 0 && strcmp(name, "format_version") != 0 &&
              strcmp(name, "complete") != 0);
    for (int i = 0; i < w->nattrs; i++)
        DT_ASSERT(strcmp(w->attrs[i].name, name) != 0); /* added twice */
    w->attrs = grow(w->attrs, w->nattrs, &w->cap_attrs, sizeof *w->attrs);
    w->attrs[w->nattrs].name = dt_xstrdup(name);
    w->attrs[w->nattrs].value = dt_xstrdup(value);
    w->nattrs++;
}

void dt_ck_attrf(dt_ck_writer *w, const char *name, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    DT_ASSERT(n >= 0);
    if ((size_t)n < sizeof small) {
        dt_ck_attr(w, name, small);
        return;
    }
    char *v = dt_xmalloc((size_t)n + 1, 1);
    va_start(ap, fmt);
    vsnprintf(v, (size_t)n + 1, fmt, ap);
    va_end(ap);
    dt_ck_attr(w, name, v);
    free(v);
}

void dt_ck_attr_versions(dt_ck_writer *w)
{
    dt_ck_attr(w, "dtrain_version", DT_VERSION);
    dt_ck_attr(w, "dtrain_commit", dt_commit);
    dt_ck_attr(w, "hdf5_version", dt_buildinfo_hdf5());
    dt_ck_attr(w, "mpi_version", dt_buildinfo_mpi());
    dt_ck_attr(w, "openblas_version", dt_buildinfo_openblas());
}

void dt_ck_discard(dt_ck_writer *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->nitems; i++)
        free(w->items[i].owned);
    for (int i = 0; i < w->nattrs; i++) {
        free(w->attrs[i].name);
        free(w->attrs[i].value);
    }
    free(w->items);
    free(w->attrs);
    free(w->path);
    free(w);
}

/* ---- fault injection (test hook, see ckpt.h) ---- */

enum { FAULT_NONE, FAULT_EXIT, FAULT_FAIL };
static const char *const fault_points[] = {"mid_write", "after_write", "before_rename",
                                           "after_rename"};

typedef struct fault {
    int point; /* index into fault_points, -1: none */
    int mode;
} fault;

/* Parses DTRAIN_CKPT_FAULT. Returns 0, or -1 for a value that names no point/mode. */
static int fault_parse(fault *f)
{
    f->point = -1;
    f->mode = FAULT_NONE;
    const char *s = getenv("DTRAIN_CKPT_FAULT");
    if (!s || !s[0])
        return 0;
    size_t k = strcspn(s, ":");
    for (int i = 0; i < (int)(sizeof fault_points / sizeof *fault_points); i++)
        if (strlen(fault_points[i]) == k && strncmp(s, fault_points[i], k) == 0)
            f->point = i;
    if (f->point < 0)
        return -1;
    if (!s[k] || strcmp(s + k, ":exit") == 0)
        f->mode = FAULT_EXIT;
    else if (strcmp(s + k, ":fail") == 0)
        f->mode = FAULT_FAIL;
    else
        return -1;
    return 0;
}

/* 1 when the commit must fail at point `name`; exits the process for ":exit". */
static int fault_hit(const fault *f, const char *name)
{
    if (f->point < 0 || strcmp(fault_points[f->point], name) != 0)
        return 0;
    if (f->mode == FAULT_EXIT)
        _exit(DT_CK_FAULT_EXIT);
    return 1;
}

/* ---- commit ---- */

/* The state of one commit, step by step (dt_ck_commit). */
typedef struct commit {
    dt_ck_writer *w;
    fault f;
    char dir[PATH_MAX_LEN], tmp[PATH_MAX_LEN]; /* DIR, DIR/.NAME.tmp.PID */
    uint64_t ublock, size;                     /* header block and file size */
    unsigned char *img;                        /* the file image (malloc'd) */
    int tmp_exists, saved;                     /* tmp may exist; renamed into place */
    int err;                                   /* the errno of the failure, 0 if none */
    char why[768];
} commit;

static int last_errno; /* dt_ck_commit_errno */

/* Creates the groups on the way to item `name`. */
static int ensure_groups(hid_t file, const char *name, hid_t gcpl)
{
    char prefix[DT_CK_NAME_MAX];
    for (const char *s = strchr(name, '/'); s; s = strchr(s + 1, '/')) {
        size_t k = (size_t)(s - name);
        memcpy(prefix, name, k);
        prefix[k] = '\0';
        htri_t e = H5Lexists(file, prefix, H5P_DEFAULT);
        if (e < 0)
            return -1;
        if (e == 0) {
            hid_t g = H5Gcreate2(file, prefix, H5P_DEFAULT, gcpl, H5P_DEFAULT);
            if (g < 0 || H5Gclose(g) < 0)
                return -1;
        }
    }
    return 0;
}

/* Writes one item and records where its raw data went. 0, or -1 with the HDF5 message in why
 * (taken before the clean-up calls, which clear HDF5's error stack). */
static int write_item(hid_t file, witem *it, hid_t gcpl, hid_t dcpl, char *why, size_t n)
{
    hid_t s = -1, d = -1;
    int rc = -1;
    hsize_t hd[DT_CK_MAX_DIM];
    for (int i = 0; i < it->ndim; i++)
        hd[i] = (hsize_t)it->dims[i];
    if (ensure_groups(file, it->name, gcpl))
        goto fail;
    s = it->ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(it->ndim, hd, NULL);
    if (s < 0)
        goto fail;
    if ((d = H5Dcreate2(file, it->name, file_type(it->dtype), s, H5P_DEFAULT, dcpl,
                        H5P_DEFAULT)) < 0)
        goto fail;
    if (it->numel > 0) {
        if (H5Dwrite(d, mem_type(it->dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, it->data) < 0)
            goto fail;
        haddr_t off = H5Dget_offset(d);
        hsize_t len = H5Dget_storage_size(d);
        if (off == HADDR_UNDEF || len != (hsize_t)it->numel * dtype_sizes[it->dtype]) {
            say(why, n, "HDF5 did not store it contiguously");
            goto out;
        }
        it->off = (uint64_t)off;
        it->len = (uint64_t)len;
    }
    if (dt_h5_write_num_attr(d, CKSUM_ATTR, H5T_STD_U64LE, H5T_NATIVE_UINT64, &it->xxh64))
        goto fail;
    rc = 0;
    goto out;
fail:
    say(why, n, "%s", dt_h5_error());
out:
    if ((dt_h5_close(&d) || dt_h5_close(&s)) && rc == 0) {
        say(why, n, "%s", dt_h5_error());
        rc = -1;
    }
    return rc;
}

/* Property lists of the writer: byte-identical files (creation order tracked, no timestamps),
 * file format of HDF5 1.8, the core driver without backing store, ublock bytes of user block. */
static int make_plists(hid_t pl[4], uint64_t ublock, dt_h5_image *im)
{
    const unsigned order = H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED;
    hid_t fcpl = pl[0] = H5Pcreate(H5P_FILE_CREATE), fapl = pl[1] = H5Pcreate(H5P_FILE_ACCESS);
    hid_t gcpl = pl[2] = H5Pcreate(H5P_GROUP_CREATE), dcpl = pl[3] = H5Pcreate(H5P_DATASET_CREATE);
    if (fcpl < 0 || H5Pset_userblock(fcpl, (hsize_t)ublock) < 0 ||
        H5Pset_link_creation_order(fcpl, order) < 0 ||
        H5Pset_attr_creation_order(fcpl, order) < 0 || H5Pset_obj_track_times(fcpl, 0) < 0)
        return -1;
    if (fapl < 0 || H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) < 0 ||
        H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
        dt_h5_image_fapl(fapl, im) < 0)
        return -1;
    if (gcpl < 0 || H5Pset_link_creation_order(gcpl, order) < 0 ||
        H5Pset_obj_track_times(gcpl, 0) < 0)
        return -1;
    if (dcpl < 0 || H5Pset_layout(dcpl, H5D_CONTIGUOUS) < 0 || H5Pset_obj_track_times(dcpl, 0) < 0)
        return -1;
    return 0;
}

/* Writes the root attributes: the caller's, then format, format_version and, last, complete. */
static int write_root_attrs(hid_t file, const dt_ck_writer *w, char *why, size_t n)
{
    hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
    const int64_t version = FORMAT_VERSION, one = 1;
    const char *what = "opening the root group";
    int rc = -1;
    if (root < 0)
        goto fail;
    for (int i = 0; i < w->nattrs; i++)
        if (dt_h5_write_str_attr(root, w->attrs[i].name, w->attrs[i].value)) {
            say(why, n, "attribute '%s': %s", w->attrs[i].name, dt_h5_error());
            goto out;
        }
    what = "attribute 'format'";
    if (dt_h5_write_str_attr(root, "format", FORMAT_NAME) ||
        dt_h5_write_num_attr(root, "format_version", H5T_STD_I64LE, H5T_NATIVE_INT64, &version) ||
        dt_h5_write_num_attr(root, "complete", H5T_STD_I64LE, H5T_NATIVE_INT64, &one))
        goto fail;
    rc = 0;
    goto out;
fail:
    say(why, n, "%s: %s", what, dt_h5_error());
out:
    if (dt_h5_close(&root) && rc == 0) {
        say(why, n, "closing the root group: %s", dt_h5_error());
        rc = -1;
    }
    return rc;
}

/* Step 1a: builds the whole file in memory: c->img, c->size bytes (ublock of them the still
 * empty header block). 0, or -1 with c->why. */
static int build_image(commit *c)
{
    dt_ck_writer *w = c->w;
    hid_t pl[4] = {-1, -1, -1, -1}, file = -1;
    dt_h5_image im = {NULL, 0};
    int rc = -1;
    if (make_plists(pl, c->ublock, &im)) {
        say(c->why, sizeof c->why, "setting up HDF5 property lists: %s", dt_h5_error());
        goto out;
    }
    if ((file = H5Fcreate(c->tmp, H5F_ACC_EXCL, pl[0], pl[1])) < 0) {
        say(c->why, sizeof c->why, "creating %s in memory: %s", c->tmp, dt_h5_error());
        goto out;
    }
    for (int i = 0; i < w->nitems; i++)
        if (write_item(file, &w->items[i], pl[2], pl[3], c->why, sizeof c->why)) {
            char m[400];
            say(m, sizeof m, "%s", c->why);
            say(c->why, sizeof c->why, "writing %s to %s: %s", w->items[i].name, c->tmp, m);
            goto out;
        }
    if (write_root_attrs(file, w, c->why, sizeof c->why)) {
        char m[400];
        say(m, sizeof m, "%s", c->why);
        say(c->why, sizeof c->why, "writing %s: %s", c->tmp, m);
        goto out;
    }
    long left = dt_h5_open_objects(file);
    if (left != 1) { /* only the file itself */
        say(c->why, sizeof c->why, "writing %s: %ld HDF5 objects left open", c->tmp, left - 1);
        goto out;
    }
    rc = 0;
out:
    if (dt_h5_close(&file) && rc == 0) {
        say(c->why, sizeof c->why, "closing %s in memory: %s", c->tmp, dt_h5_error());
        rc = -1;
    }
    for (int i = 0; i < 4; i++)
        dt_h5_close(&pl[i]);
    H5Eclear2(H5E_DEFAULT);
    if (rc == 0 && !(c->size = dt_h5_image_size(&im, c->ublock))) {
        say(c->why, sizeof c->why, "writing %s: HDF5 gave an image without a version 2 "
            "superblock", c->tmp);
        rc = -1;
    }
    c->img = im.mem;
    return rc;
}

/* Step 1b: the dtrain header, written into the image. Each dataset's bytes in the image must
 * hash like the array in memory. 0, or -1 with c->why. */
static int seal_image(commit *c)
{
    const dt_ck_writer *w = c->w;
    dt_ck_range *rg = dt_xcalloc((size_t)w->nitems + 1, sizeof *rg);
    int nr = 0, rc = -1;
    for (int i = 0; i < w->nitems; i++)
        if (w->items[i].numel > 0) {
            rg[nr].off = w->items[i].off;
            rg[nr].len = w->items[i].len;
            rg[nr].item = i;
            snprintf(rg[nr].name, sizeof rg[nr].name, "%s", w->items[i].name);
            nr++;
        }
    char m[400];
    if (dt_ck_hdr_seal(c->img, c->size, c->ublock, rg, nr, m, sizeof m)) {
        say(c->why, sizeof c->why, "hashing %s: %s", c->tmp, m);
        goto out;
    }
    for (int i = 0; i < nr; i++)
        if (rg[i].xxh64 != w->items[rg[i].item].xxh64) {
            say(c->why, sizeof c->why, "hashing %s: the bytes of %s in the file differ from the "
                "array in memory", c->tmp, rg[i].name);
            goto out;
        }
    rc = 0;
out:
    free(rg);
    return rc;
}

/* pwrite(2) of all n bytes at off, retried after EINTR and short writes. 0, or -1 with errno
 * (ENOSPC for a short write that made no progress). *done counts the bytes written. */
static int write_all(int fd, const unsigned char *p, size_t n, uint64_t off, uint64_t *done)
{
    while (n > 0) {
        ssize_t r = pwrite(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = ENOSPC;
            return -1;
        }
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
        *done += (uint64_t)r;
    }
    return 0;
}

/* Steps 1c and 2: writes the image to the temporary file, the data first and the header block
 * last (a file cut short has no header, so it is never taken for a checkpoint), then fsync(2)s
 * and closes it. 0, or -1 with c->why naming the file, the errno text and how far it got. */
static int write_tmp(commit *c)
{
    uint64_t done = 0, body = c->size - c->ublock, half = body / 2;
    int fd = open(c->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) {
        say(c->why, sizeof c->why, "creating %s: %s", c->tmp, strerror(errno));
        return -1;
    }
    c->tmp_exists = 1;
    const char *what = "writing";
    if (write_all(fd, c->img + c->ublock, (size_t)half, c->ublock, &done))
        goto fail;
    if (fault_hit(&c->f, "mid_write")) {
        say(c->why, sizeof c->why, "writing %s: fault injected at mid_write (DTRAIN_CKPT_FAULT)",
            c->tmp);
        close(fd);
        return -1;
    }
    if (write_all(fd, c->img + c->ublock + half, (size_t)(body - half), c->ublock + half, &done) ||
        write_all(fd, c->img, (size_t)c->ublock, 0, &done))
        goto fail;
    if (fault_hit(&c->f, "after_write")) {
        say(c->why, sizeof c->why, "fault injected at after_write (DTRAIN_CKPT_FAULT)");
        close(fd);
        return -1;
    }
    what = "fsync";
    if (fsync(fd) != 0)
        goto fail;
    what = "closing";
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    return 0;
fail:;
    int e = errno;
    if (fd >= 0)
        close(fd);
    say(c->why, sizeof c->why, "%s %s: %s (%llu of %llu bytes written)", what, c->tmp,
        strerror(e), (unsigned long long)done, (unsigned long long)c->size);
    c->err = e;
    return -1;
}

/* Step 3: reopens the written file (dt_ck_open: every byte verified) and checks it holds exactly
 * what w meant to write. */
static int verify_written(const dt_ck_writer *w, const char *tmp, char *why, size_t n)
{
    dt_ck_reader *r = NULL;
    if (dt_ck_open(&r, tmp)) {
        say(why, n, "verifying the written file: %s", dt_err_msg());
        return -1;
    }
    int rc = -1;
    if (dt_ck_count(r) != w->nitems) {
        say(why, n, "verifying %s: %d items, wrote %d", tmp, dt_ck_count(r), w->nitems);
        goto out;
    }
    for (int i = 0; i < w->nitems; i++) {
        const witem *a = &w->items[i];
        const dt_ck_item *b = dt_ck_item_at(r, i);
        int same = strcmp(a->name, b->name) == 0 && a->dtype == b->dtype &&
                   a->ndim == b->ndim && a->xxh64 == b->xxh64;
        for (int k = 0; same && k < a->ndim; k++)
            same = a->dims[k] == b->dims[k];
        if (!same) {
            say(why, n, "verifying %s: item %d is %s, differs from the %s written", tmp, i,
                b->name, a->name);
            goto out;
        }
    }
    for (int i = 0; i < w->nattrs; i++) {
        const char *v = dt_ck_get_attr(r, w->attrs[i].name);
        if (!v || strcmp(v, w->attrs[i].value) != 0) {
            say(why, n, "verifying %s: attribute '%s' differs from the value written", tmp,
                w->attrs[i].name);
            goto out;
        }
    }
    rc = 0;
out:
    dt_ck_close(r);
    return rc;
}

static int fsync_path(const char *path, int dir)
{
    int fd = open(path, O_RDONLY | (dir ? O_DIRECTORY : 0));
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    int e = errno;
    if (close(fd) != 0 && r == 0)
        return -1;
    errno = e;
    return r;
}

/* Step 0: DIR/NAME -> c->dir = DIR, c->tmp = DIR/.NAME.tmp.PID; DIR must be a writable
 * directory. 0, or -1 with c->why. */
static int prepare_paths(commit *c)
{
    const char *final = c->w->path;
    const char *slash = strrchr(final, '/');
    const char *base = slash ? slash + 1 : final;
    size_t dlen = slash ? (size_t)(slash - final) : 0;
    struct stat st;
    if (!base[0]) {
        say(c->why, sizeof c->why, "the path names a directory, not a file");
        return -1;
    }
    if (dlen + 1 >= sizeof c->dir ||
        (size_t)snprintf(c->tmp, sizeof c->tmp, "%.*s%s.%s.tmp.%ld", (int)dlen, final,
                         slash ? "/" : "", base, (long)getpid()) >= sizeof c->tmp) {
        say(c->why, sizeof c->why, "path too long");
        return -1;
    }
    if (slash)
        snprintf(c->dir, sizeof c->dir, "%.*s", dlen ? (int)dlen : 1, dlen ? final : "/");
    else
        snprintf(c->dir, sizeof c->dir, ".");
    if (stat(c->dir, &st) != 0) {
        c->err = errno;
        say(c->why, sizeof c->why, "directory %s: %s", c->dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        say(c->why, sizeof c->why, "%s is not a directory", c->dir);
        return -1;
    }
    if (access(c->dir, W_OK) != 0) {
        c->err = errno;
        say(c->why, sizeof c->why, "directory %s is not writable: %s", c->dir, strerror(errno));
        return -1;
    }
    /* a stale temporary file of an earlier process with our pid goes first */
    if (unlink(c->tmp) != 0 && errno != ENOENT) {
        c->err = errno;
        say(c->why, sizeof c->why, "removing stale %s: %s", c->tmp, strerror(errno));
        return -1;
    }
    return 0;
}

/* Steps 1-5 of the protocol (ckpt.h); c->saved once the rename happened. 0 or -1 with c->why. */
static int run_protocol(commit *c)
{
    dt_ck_writer *w = c->w;
    size_t names = 0;
    int entries = 0;
    for (int i = 0; i < w->nitems; i++) {
        witem *it = &w->items[i];
        it->xxh64 = dt_xxh64(it->data, (size_t)it->numel * dtype_sizes[it->dtype], 0);
        if (it->numel > 0) {
            entries++;
            names += strlen(it->name);
        }
    }
    c->ublock = dt_ck_hdr_block_size(entries, names);
    if (prepare_paths(c) || build_image(c) || seal_image(c) || write_tmp(c))
        return -1;
    free(c->img); /* written: the reader below reads the file itself */
    c->img = NULL;
    if (verify_written(w, c->tmp, c->why, sizeof c->why))
        return -1;
    if (fault_hit(&c->f, "before_rename")) {
        say(c->why, sizeof c->why, "fault injected at before_rename (DTRAIN_CKPT_FAULT)");
        return -1;
    }
    if (rename(c->tmp, w->path) != 0) {
        c->err = errno;
        say(c->why, sizeof c->why, "rename %s -> %s: %s", c->tmp, w->path, strerror(errno));
        return -1;
    }
    c->tmp_exists = 0;
    c->saved = 1;
    if (fault_hit(&c->f, "after_rename")) {
        say(c->why, sizeof c->why, "fault injected at after_rename (DTRAIN_CKPT_FAULT)");
        return -1;
    }
    if (fsync_path(c->dir, 1)) {
        c->err = errno;
        say(c->why, sizeof c->why, "fsync of directory %s: %s (the rename may not survive a "
            "power loss)", c->dir, strerror(errno));
        return -1;
    }
    return 0;
}

int dt_ck_commit(dt_ck_writer *w)
{
    DT_ASSERT(w);
    dt_h5_init();
    commit *c = dt_xcalloc(1, sizeof *c);
    c->w = w;
    int rc = DT_OK;
    if (fault_parse(&c->f)) {
        say(c->why, sizeof c->why, "DTRAIN_CKPT_FAULT='%s' is not POINT[:exit|:fail] with POINT "
            "one of mid_write, after_write, before_rename, after_rename",
            getenv("DTRAIN_CKPT_FAULT"));
        rc = DT_ERR;
    } else if (run_protocol(c)) {
        rc = DT_ERR;
    }
    if (rc != DT_OK) {
        if (c->tmp_exists && unlink(c->tmp) != 0 && errno != ENOENT) {
            size_t len = strlen(c->why);
            appendf(c->why, sizeof c->why, &len, "; removing %s failed too: %s", c->tmp,
                    strerror(errno));
        }
        if (c->saved)
            dt_err("%s: checkpoint saved, but %s", w->path, c->why);
        else
            dt_err("%s: cannot save checkpoint: %s", w->path, c->why);
    }
    last_errno = rc == DT_OK ? 0 : c->err;
    free(c->img);
    free(c);
    dt_ck_discard(w);
    return rc;
}

int dt_ck_commit_errno(void) { return last_errno; }
/* ---- reader ---- */

typedef struct rattr {
    char *name, *value;
} rattr;

struct dt_ck_reader {
    char *path;
    hid_t file;
    dt_ck_hdr h;
    dt_ck_item *items;
    int nitems, cap_items;
    rattr *attrs;
    int nattrs, cap_attrs;
};

static herr_t attr_cb(hid_t loc, const char *name, const H5A_info_t *info, void *ud)
{
    (void)info;
    dt_ck_reader *r = ud;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    char *v = NULL;
    if (a < 0 || dt_h5_attr_to_string(a, &v) || dt_h5_close(&a)) {
        dt_h5_close(&a);
        free(v);
        dt_err("%s: cannot read attribute '%s': %s", r->path, name, dt_h5_error());
        return -1;
    }
    r->attrs = grow(r->attrs, r->nattrs, &r->cap_attrs, sizeof *r->attrs);
    r->attrs[r->nattrs].name = dt_xstrdup(name);
    r->attrs[r->nattrs].value = v;
    r->nattrs++;
    return 0;
}

/* Loads the root attributes, in creation order. */
static int load_attrs(dt_ck_reader *r)
{
    hid_t root = H5Gopen2(r->file, "/", H5P_DEFAULT), ocpl = -1;
    unsigned flags = 0;
    int rc = DT_ERR;
    if (root < 0 || (ocpl = H5Gget_create_plist(root)) < 0 ||
        H5Pget_attr_creation_order(ocpl, &flags) < 0) {
        dt_err("%s: cannot open root group: %s", r->path, dt_h5_error());
        goto out;
    }
    H5_index_t idx = (flags & H5P_CRT_ORDER_INDEXED) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
    if (H5Aiterate2(root, idx, H5_ITER_INC, NULL, attr_cb, r) < 0)
        goto out; /* attr_cb recorded the message */
    rc = DT_OK;
out:
    dt_h5_close(&ocpl);
    dt_h5_close(&root);
    H5Eclear2(H5E_DEFAULT);
    return rc;
}

/* The dtype of HDF5 file type t (float32/64, int64, uint8 little-endian), or DT_ERR naming the
 * item. */
static int dtype_of(const dt_ck_reader *r, hid_t t, const char *name, dt_ck_dtype *out)
{
    H5T_class_t cls = H5Tget_class(t);
    size_t size = H5Tget_size(t);
    H5T_sign_t sign = cls == H5T_INTEGER ? H5Tget_sign(t) : H5T_SGN_ERROR;
    if (cls == H5T_FLOAT && size == 4)
        *out = DT_CK_F32;
    else if (cls == H5T_FLOAT && size == 8)
        *out = DT_CK_F64;
    else if (cls == H5T_INTEGER && size == 8 && sign == H5T_SGN_2)
        *out = DT_CK_I64;
    else if (cls == H5T_INTEGER && size == 1 && sign == H5T_SGN_NONE)
        *out = DT_CK_U8;
    else
        return dt_err("%s: %s has an unsupported type (HDF5 class %d, %zu bytes)", r->path, name,
                      (int)cls, size);
    return DT_OK;
}

/* The header entry of an item's data (verified byte by byte) must give its size and checksum. */
static int agrees_with_header(const dt_ck_reader *r, const dt_ck_item *it, uint64_t bytes)
{
    uint64_t want = dt_xxh64(NULL, 0, 0);
    int found = bytes == 0;
    for (int i = 0; i < r->h.nr && !found; i++)
        if (strcmp(r->h.rg[i].name, it->name) == 0) {
            found = r->h.rg[i].len == bytes;
            want = r->h.rg[i].xxh64;
        }
    if (!found || want != it->xxh64)
        return dt_err("%s: %s disagrees with the checkpoint header (%s)", r->path, it->name,
                      found ? "checksum" : "size or place of its data");
    return DT_OK;
}

/* Records dataset d (named name) as an item after checking its type and shape, and that its
 * checksum attribute agrees with the (verified) header entry of its data. */
static int scan_dataset(dt_ck_reader *r, hid_t d, const char *name)
{
    dt_ck_item it;
    hid_t t = -1, s = -1, a = -1;
    int rc = DT_ERR;
    memset(&it, 0, sizeof it);
    snprintf(it.name, sizeof it.name, "%s", name);
    if ((t = H5Dget_type(d)) < 0 || (s = H5Dget_space(d)) < 0)
        goto h5fail;
    size_t size = H5Tget_size(t);
    if (dtype_of(r, t, name, &it.dtype))
        goto out;
    H5S_class_t scls = H5Sget_simple_extent_type(s);
    int nd = H5Sget_simple_extent_ndims(s);
    if (scls == H5S_NO_CLASS || nd < 0)
        goto h5fail;
    if (scls == H5S_NULL || nd > DT_CK_MAX_DIM) {
        dt_err("%s: %s has an unsupported rank %d (0..%d)", r->path, name, nd, DT_CK_MAX_DIM);
        goto out;
    }
    hsize_t hd[DT_CK_MAX_DIM];
    if (nd > 0 && H5Sget_simple_extent_dims(s, hd, NULL) < 0)
        goto h5fail;
    it.ndim = nd;
    it.numel = 1;
    for (int i = 0; i < nd; i++) {
        it.dims[i] = (int64_t)hd[i];
        if (hd[i] > (hsize_t)INT64_MAX || (hd[i] && (uint64_t)it.numel > r->h.size / hd[i])) {
            dt_err("%s: %s claims more elements than the file holds", r->path, name);
            goto out;
        }
        it.numel *= (int64_t)hd[i];
    }
    htri_t e = H5Aexists(d, CKSUM_ATTR);
    if (e < 0)
        goto h5fail;
    if (e == 0) {
        dt_err("%s: %s has no " CKSUM_ATTR " checksum attribute", r->path, name);
        goto out;
    }
    unsigned long long stored = 0;
    if ((a = H5Aopen(d, CKSUM_ATTR, H5P_DEFAULT)) < 0 ||
        H5Aread(a, H5T_NATIVE_ULLONG, &stored) < 0)
        goto h5fail;
    it.xxh64 = stored;
    if (agrees_with_header(r, &it, (uint64_t)it.numel * size))
        goto out;
    r->items = grow(r->items, r->nitems, &r->cap_items, sizeof *r->items);
    r->items[r->nitems++] = it;
    rc = DT_OK;
    goto out;
h5fail:
    dt_err("%s: cannot read %s: %s", r->path, name, dt_h5_error());
out:
    dt_h5_close(&a);
    dt_h5_close(&s);
    dt_h5_close(&t);
    return rc;
}

/* Walks group g (path `prefix`, "" for the root) depth-first in creation order. */
static int scan_group(dt_ck_reader *r, hid_t g, const char *prefix, int depth)
{
    H5G_info_t gi;
    hid_t gcpl = -1;
    unsigned flags = 0;
    if (depth > 32)
        return dt_err("%s: groups nested too deeply at %s", r->path, prefix);
    if (H5Gget_info(g, &gi) < 0 || (gcpl = H5Gget_create_plist(g)) < 0 ||
        H5Pget_link_creation_order(gcpl, &flags) < 0) {
        dt_h5_close(&gcpl);
        return dt_err("%s: cannot list group /%s: %s", r->path, prefix, dt_h5_error());
    }
    dt_h5_close(&gcpl);
    H5_index_t idx = (flags & H5P_CRT_ORDER_INDEXED) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        char name[DT_CK_NAME_MAX], full[DT_CK_NAME_MAX];
        ssize_t len = H5Lget_name_by_idx(g, ".", idx, H5_ITER_INC, i, name, sizeof name,
                                         H5P_DEFAULT);
        if (len < 0)
            return dt_err("%s: cannot list group /%s: %s", r->path, prefix, dt_h5_error());
        int fl = snprintf(full, sizeof full, "%s%s%s", prefix, prefix[0] ? "/" : "", name);
        if ((size_t)len >= sizeof name || fl < 0 || (size_t)fl >= sizeof full)
            return dt_err("%s: a name in group /%s is longer than %d bytes", r->path, prefix,
                          DT_CK_NAME_MAX - 1);
        hid_t o = H5Oopen(g, name, H5P_DEFAULT);
        if (o < 0)
            return dt_err("%s: cannot open %s: %s", r->path, full, dt_h5_error());
        H5I_type_t t = H5Iget_type(o);
        int rc = DT_OK;
        if (t == H5I_GROUP)
            rc = scan_group(r, o, full, depth + 1);
        else if (t == H5I_DATASET)
            rc = scan_dataset(r, o, full);
        if (H5Oclose(o) < 0 && rc == DT_OK)
            rc = dt_err("%s: cannot close %s: %s", r->path, full, dt_h5_error());
        if (rc)
            return rc;
    }
    return DT_OK;
}

int dt_ck_open(dt_ck_reader **out, const char *path)
{
    DT_ASSERT(out && path);
    *out = NULL;
    dt_h5_init();
    dt_ck_reader *r = dt_xcalloc(1, sizeof *r);
    r->path = dt_xstrdup(path);
    r->file = -1;
    hid_t root = -1;
    /* every byte first: HDF5 must never parse a damaged file */
    if (dt_ck_hdr_check(path, 1, &r->h))
        goto fail;
    if ((r->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
        dt_err("%s: cannot open HDF5 file: %s", path, dt_h5_error());
        goto fail;
    }
    if (check_header(r->file, path) || load_attrs(r))
        goto fail;
    if ((root = H5Gopen2(r->file, "/", H5P_DEFAULT)) < 0) {
        dt_err("%s: cannot open root group: %s", path, dt_h5_error());
        goto fail;
    }
    if (scan_group(r, root, "", 0))
        goto fail;
    dt_h5_close(&root);
    int with_data = 0;
    for (int i = 0; i < r->nitems; i++)
        with_data += r->items[i].numel > 0;
    if (with_data != r->h.nr) {
        dt_err("%s: the checkpoint header lists %d datasets with data, the file holds %d", path,
               r->h.nr, with_data);
        goto fail;
    }
    *out = r;
    return DT_OK;
fail:
    dt_h5_close(&root);
    H5Eclear2(H5E_DEFAULT);
    dt_ck_close(r);
    return DT_ERR;
}

const dt_ck_item *dt_ck_find(const dt_ck_reader *r, const char *name)
{
    DT_ASSERT(r && name);
    for (int i = 0; i < r->nitems; i++)
        if (strcmp(r->items[i].name, name) == 0)
            return &r->items[i];
    return NULL;
}

int dt_ck_has(const dt_ck_reader *r, const char *name) { return dt_ck_find(r, name) != NULL; }

int dt_ck_count(const dt_ck_reader *r) { return r->nitems; }

const dt_ck_item *dt_ck_item_at(const dt_ck_reader *r, int i)
{
    DT_ASSERT(r && i >= 0 && i < r->nitems);
    return &r->items[i];
}

int dt_ck_read(dt_ck_reader *r, const char *name, dt_ck_dtype dtype, int ndim,
               const int64_t *dims, void *out)
{
    DT_ASSERT(r && name && dtype_ok(dtype) && ndim >= 0 && ndim <= DT_CK_MAX_DIM);
    DT_ASSERT(ndim == 0 || dims);
    const dt_ck_item *it = dt_ck_find(r, name);
    if (!it)
        return dt_err("%s: no item '%s' in checkpoint", r->path, name);
    if (it->dtype != dtype)
        return dt_err("%s: %s has dtype %s, expected %s", r->path, name,
                      dtype_names[it->dtype], dtype_names[dtype]);
    int same = it->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = it->dims[i] == dims[i];
    if (!same) {
        char have[128], want[128];
        dt_ck_format_shape(have, sizeof have, it->ndim, it->dims);
        dt_ck_format_shape(want, sizeof want, ndim, dims);
        return dt_err("%s: %s has shape %s, expected %s", r->path, name, have, want);
    }
    size_t bytes = (size_t)it->numel * dtype_sizes[dtype];
    if (bytes == 0)
        return DT_OK;
    DT_ASSERT(out);
    hid_t d = H5Dopen2(r->file, name, H5P_DEFAULT);
    if (d < 0 || H5Dread(d, mem_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
        int rc = dt_err("%s: cannot read %s: %s", r->path, name, dt_h5_error());
        dt_h5_close(&d);
        return rc;
    }
    if (dt_h5_close(&d))
        return dt_err("%s: cannot close %s: %s", r->path, name, dt_h5_error());
    uint64_t h = dt_xxh64(out, bytes, 0);
    if (h != it->xxh64)
        return dt_err("%s: checksum mismatch in %s (stored xxh64 0x%016llx, computed 0x%016llx)",
                      r->path, name, (unsigned long long)it->xxh64, (unsigned long long)h);
    return DT_OK;
}

const char *dt_ck_get_attr(const dt_ck_reader *r, const char *name)
{
    DT_ASSERT(r && name);
    for (int i = 0; i < r->nattrs; i++)
        if (strcmp(r->attrs[i].name, name) == 0)
            return r->attrs[i].value;
    return NULL;
}

int dt_ck_attr_count(const dt_ck_reader *r) { return r->nattrs; }

const char *dt_ck_attr_at(const dt_ck_reader *r, int i, const char **name)
{
    DT_ASSERT(r && i >= 0 && i < r->nattrs);
    if (name)
        *name = r->attrs[i].name;
    return r->attrs[i].value;
}

const char *dt_ck_path(const dt_ck_reader *r) { return r->path; }

void dt_ck_close(dt_ck_reader *r)
{
    if (!r)
        return;
    if (r->file >= 0 && H5Fclose(r->file) < 0)
        H5Eclear2(H5E_DEFAULT); /* read-only: nothing to lose */
    for (int i = 0; i < r->nattrs; i++) {
        free(r->attrs[i].name);
        free(r->attrs[i].value);
    }
    free(r->attrs);
    free(r->items);
    free(r->h.rg);
    free(r->path);
    free(r);
}
