/*
 * ckpt.c - the checkpoint container: see ckpt.h for the file layout, the commit protocol and
 * every function's contract. This file holds the checks of a file's root attributes and the
 * reader; the writer and its commit protocol live in ckpt_write.c (which verifies through this
 * reader), the dtypes and the helpers both share in ckpt_fmt.c, the dtrain header in ckpt_hdr.c,
 * the directory helpers in ckpt_dir.c, HDF5 helpers in h5util.c.
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
#include "ckpt_fmt.h"
#include "ckpt_hdr.h"
#include "common.h"
#include "h5util.h"
#include "xxh64.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ckpt.c hashes in-memory bytes as the file's little-endian bytes: little-endian hosts only"
#endif

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
    r->attrs = dt_xgrow(r->attrs, r->nattrs, &r->cap_attrs, sizeof *r->attrs);
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
    if ((a = H5Aopen(d, CKSUM_ATTR, H5P_DEFAULT)) < 0 || H5Aread(a, H5T_NATIVE_ULLONG, &stored) < 0)
        goto h5fail;
    it.xxh64 = stored;
    if (agrees_with_header(r, &it, (uint64_t)it.numel * size))
        goto out;
    r->items = dt_xgrow(r->items, r->nitems, &r->cap_items, sizeof *r->items);
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
        ssize_t len =
            H5Lget_name_by_idx(g, ".", idx, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT);
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

int dt_ck_read(dt_ck_reader *r, const char *name, dt_ck_dtype dtype, int ndim, const int64_t *dims,
               void *out)
{
    DT_ASSERT(r && name && dt_ck_dtype_ok(dtype) && ndim >= 0 && ndim <= DT_CK_MAX_DIM);
    DT_ASSERT(ndim == 0 || dims);
    const dt_ck_item *it = dt_ck_find(r, name);
    if (!it)
        return dt_err("%s: no item '%s' in checkpoint", r->path, name);
    if (it->dtype != dtype)
        return dt_err("%s: %s has dtype %s, expected %s", r->path, name,
                      dt_ck_dtype_name(it->dtype), dt_ck_dtype_name(dtype));
    int same = it->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = it->dims[i] == dims[i];
    if (!same) {
        char have[128], want[128];
        dt_ck_format_shape(have, sizeof have, it->ndim, it->dims);
        dt_ck_format_shape(want, sizeof want, ndim, dims);
        return dt_err("%s: %s has shape %s, expected %s", r->path, name, have, want);
    }
    size_t bytes = (size_t)it->numel * dt_ck_dtype_size(dtype);
    if (bytes == 0)
        return DT_OK;
    DT_ASSERT(out);
    hid_t d = H5Dopen2(r->file, name, H5P_DEFAULT);
    if (d < 0 || H5Dread(d, dt_ck_mem_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
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
