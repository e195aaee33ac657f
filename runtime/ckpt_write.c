/*
 * ckpt_write.c - the checkpoint writer and its commit protocol (ckpt.h: dt_ck_begin, dt_ck_add,
 * dt_ck_attr, dt_ck_commit): items and attributes collected in memory, the file built as an
 * HDF5 core-driver image, sealed with the dtrain header (ckpt_hdr.c), written, synced, verified
 * through the reader (ckpt.c) and renamed into place. Split from ckpt.c, which stays below it:
 * the writer calls the reader, never the other way round.
 *
 * Conventions as in ckpt.c: every HDF5 call's return value is checked and HDF5 handles are
 * closed on every path; HDF5 never touches the disk (see ckpt.c's header for why).
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
#include "ckpt_fmt.h"
#include "ckpt_hdr.h"
#include "common.h"
#include "h5util.h"
#include "xxh64.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ckpt_write.c hashes in-memory bytes as the file's little-endian bytes: little-endian only"
#endif

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
    void *owned; /* the copy made by dt_ck_add_copy, or NULL */
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
    DT_ASSERT(dt_ck_dtype_ok(dtype));
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
        DT_ASSERT(strcmp(w->items[i].name, name) != 0);      /* added twice */
        DT_ASSERT(!is_group_prefix(w->items[i].name, name)); /* both a dataset and a group */
        DT_ASSERT(!is_group_prefix(name, w->items[i].name));
    }
    w->items = dt_xgrow(w->items, w->nitems, &w->cap_items, sizeof *w->items);
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

void dt_ck_add(dt_ck_writer *w, const char *name, dt_ck_dtype dtype, int ndim, const int64_t *dims,
               const void *data)
{
    add_item(w, name, dtype, ndim, dims, data);
}

void dt_ck_add_copy(dt_ck_writer *w, const char *name, dt_ck_dtype dtype, int ndim,
                    const int64_t *dims, const void *data)
{
    witem *it = add_item(w, name, dtype, ndim, dims, data);
    size_t bytes = (size_t)it->numel * dt_ck_dtype_size(dtype);
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
    w->attrs = dt_xgrow(w->attrs, w->nattrs, &w->cap_attrs, sizeof *w->attrs);
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
    if ((d = H5Dcreate2(file, it->name, dt_ck_file_type(it->dtype), s, H5P_DEFAULT, dcpl,
                        H5P_DEFAULT)) < 0)
        goto fail;
    if (it->numel > 0) {
        if (H5Dwrite(d, dt_ck_mem_type(it->dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, it->data) < 0)
            goto fail;
        haddr_t off = H5Dget_offset(d);
        hsize_t len = H5Dget_storage_size(d);
        if (off == HADDR_UNDEF || len != (hsize_t)it->numel * dt_ck_dtype_size(it->dtype)) {
            dt_ck_say(why, n, "HDF5 did not store it contiguously");
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
    dt_ck_say(why, n, "%s", dt_h5_error());
out:
    if ((dt_h5_close(&d) || dt_h5_close(&s)) && rc == 0) {
        dt_ck_say(why, n, "%s", dt_h5_error());
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
        H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 || dt_h5_image_fapl(fapl, im) < 0)
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
            dt_ck_say(why, n, "attribute '%s': %s", w->attrs[i].name, dt_h5_error());
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
    dt_ck_say(why, n, "%s: %s", what, dt_h5_error());
out:
    if (dt_h5_close(&root) && rc == 0) {
        dt_ck_say(why, n, "closing the root group: %s", dt_h5_error());
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
        dt_ck_say(c->why, sizeof c->why, "setting up HDF5 property lists: %s", dt_h5_error());
        goto out;
    }
    if ((file = H5Fcreate(c->tmp, H5F_ACC_EXCL, pl[0], pl[1])) < 0) {
        dt_ck_say(c->why, sizeof c->why, "creating %s in memory: %s", c->tmp, dt_h5_error());
        goto out;
    }
    for (int i = 0; i < w->nitems; i++)
        if (write_item(file, &w->items[i], pl[2], pl[3], c->why, sizeof c->why)) {
            char m[400];
            dt_ck_say(m, sizeof m, "%s", c->why);
            dt_ck_say(c->why, sizeof c->why, "writing %s to %s: %s", w->items[i].name, c->tmp, m);
            goto out;
        }
    if (write_root_attrs(file, w, c->why, sizeof c->why)) {
        char m[400];
        dt_ck_say(m, sizeof m, "%s", c->why);
        dt_ck_say(c->why, sizeof c->why, "writing %s: %s", c->tmp, m);
        goto out;
    }
    long left = dt_h5_open_objects(file);
    if (left != 1) { /* only the file itself */
        dt_ck_say(c->why, sizeof c->why, "writing %s: %ld HDF5 objects left open", c->tmp,
                  left - 1);
        goto out;
    }
    rc = 0;
out:
    if (dt_h5_close(&file) && rc == 0) {
        dt_ck_say(c->why, sizeof c->why, "closing %s in memory: %s", c->tmp, dt_h5_error());
        rc = -1;
    }
    for (int i = 0; i < 4; i++)
        dt_h5_close(&pl[i]);
    H5Eclear2(H5E_DEFAULT);
    if (rc == 0 && !(c->size = dt_h5_image_size(&im, c->ublock))) {
        dt_ck_say(c->why, sizeof c->why,
                  "writing %s: HDF5 gave an image without a version 2 "
                  "superblock",
                  c->tmp);
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
        dt_ck_say(c->why, sizeof c->why, "hashing %s: %s", c->tmp, m);
        goto out;
    }
    for (int i = 0; i < nr; i++)
        if (rg[i].xxh64 != w->items[rg[i].item].xxh64) {
            dt_ck_say(c->why, sizeof c->why,
                      "hashing %s: the bytes of %s in the file differ from the array in memory",
                      c->tmp, rg[i].name);
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
        dt_ck_say(c->why, sizeof c->why, "creating %s: %s", c->tmp, strerror(errno));
        return -1;
    }
    c->tmp_exists = 1;
    const char *what = "writing";
    if (write_all(fd, c->img + c->ublock, (size_t)half, c->ublock, &done))
        goto fail;
    if (fault_hit(&c->f, "mid_write")) {
        dt_ck_say(c->why, sizeof c->why,
                  "writing %s: fault injected at mid_write (DTRAIN_CKPT_FAULT)", c->tmp);
        close(fd);
        return -1;
    }
    if (write_all(fd, c->img + c->ublock + half, (size_t)(body - half), c->ublock + half, &done) ||
        write_all(fd, c->img, (size_t)c->ublock, 0, &done))
        goto fail;
    if (fault_hit(&c->f, "after_write")) {
        dt_ck_say(c->why, sizeof c->why, "fault injected at after_write (DTRAIN_CKPT_FAULT)");
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
    dt_ck_say(c->why, sizeof c->why, "%s %s: %s (%llu of %llu bytes written)", what, c->tmp,
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
        dt_ck_say(why, n, "verifying the written file: %s", dt_err_msg());
        return -1;
    }
    int rc = -1;
    if (dt_ck_count(r) != w->nitems) {
        dt_ck_say(why, n, "verifying %s: %d items, wrote %d", tmp, dt_ck_count(r), w->nitems);
        goto out;
    }
    for (int i = 0; i < w->nitems; i++) {
        const witem *a = &w->items[i];
        const dt_ck_item *b = dt_ck_item_at(r, i);
        int same = strcmp(a->name, b->name) == 0 && a->dtype == b->dtype && a->ndim == b->ndim &&
                   a->xxh64 == b->xxh64;
        for (int k = 0; same && k < a->ndim; k++)
            same = a->dims[k] == b->dims[k];
        if (!same) {
            dt_ck_say(why, n, "verifying %s: item %d is %s, differs from the %s written", tmp, i,
                      b->name, a->name);
            goto out;
        }
    }
    for (int i = 0; i < w->nattrs; i++) {
        const char *v = dt_ck_get_attr(r, w->attrs[i].name);
        if (!v || strcmp(v, w->attrs[i].value) != 0) {
            dt_ck_say(why, n, "verifying %s: attribute '%s' differs from the value written", tmp,
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
        dt_ck_say(c->why, sizeof c->why, "the path names a directory, not a file");
        return -1;
    }
    if (dlen + 1 >= sizeof c->dir ||
        (size_t)snprintf(c->tmp, sizeof c->tmp, "%.*s%s.%s.tmp.%ld", (int)dlen, final,
                         slash ? "/" : "", base, (long)getpid()) >= sizeof c->tmp) {
        dt_ck_say(c->why, sizeof c->why, "path too long");
        return -1;
    }
    if (slash)
        snprintf(c->dir, sizeof c->dir, "%.*s", dlen ? (int)dlen : 1, dlen ? final : "/");
    else
        snprintf(c->dir, sizeof c->dir, ".");
    if (stat(c->dir, &st) != 0) {
        c->err = errno;
        dt_ck_say(c->why, sizeof c->why, "directory %s: %s", c->dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        dt_ck_say(c->why, sizeof c->why, "%s is not a directory", c->dir);
        return -1;
    }
    if (access(c->dir, W_OK) != 0) {
        c->err = errno;
        dt_ck_say(c->why, sizeof c->why, "directory %s is not writable: %s", c->dir,
                  strerror(errno));
        return -1;
    }
    /* a stale temporary file of an earlier process with our pid goes first */
    if (unlink(c->tmp) != 0 && errno != ENOENT) {
        c->err = errno;
        dt_ck_say(c->why, sizeof c->why, "removing stale %s: %s", c->tmp, strerror(errno));
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
        it->xxh64 = dt_xxh64(it->data, (size_t)it->numel * dt_ck_dtype_size(it->dtype), 0);
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
        dt_ck_say(c->why, sizeof c->why, "fault injected at before_rename (DTRAIN_CKPT_FAULT)");
        return -1;
    }
    if (rename(c->tmp, w->path) != 0) {
        c->err = errno;
        dt_ck_say(c->why, sizeof c->why, "rename %s -> %s: %s", c->tmp, w->path, strerror(errno));
        return -1;
    }
    c->tmp_exists = 0;
    c->saved = 1;
    if (fault_hit(&c->f, "after_rename")) {
        dt_ck_say(c->why, sizeof c->why, "fault injected at after_rename (DTRAIN_CKPT_FAULT)");
        return -1;
    }
    if (fsync_path(c->dir, 1)) {
        c->err = errno;
        dt_ck_say(c->why, sizeof c->why,
                  "fsync of directory %s: %s (the rename may not survive a "
                  "power loss)",
                  c->dir, strerror(errno));
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
        dt_ck_say(c->why, sizeof c->why,
                  "DTRAIN_CKPT_FAULT='%s' is not POINT[:exit|:fail] with POINT one of mid_write, "
                  "after_write, before_rename, after_rename",
                  getenv("DTRAIN_CKPT_FAULT"));
        rc = DT_ERR;
    } else if (run_protocol(c)) {
        rc = DT_ERR;
    }
    if (rc != DT_OK) {
        if (c->tmp_exists && unlink(c->tmp) != 0 && errno != ENOENT) {
            size_t len = strlen(c->why);
            dt_ck_appendf(c->why, sizeof c->why, &len, "; removing %s failed too: %s", c->tmp,
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
