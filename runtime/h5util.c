/*
 * h5util.c - see h5util.h.
 */
#include "h5util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

typedef struct walk {
    char desc[400]; /* the innermost message */
    int err;        /* an errno some driver recorded, 0 if none */
} walk;

static walk last_failure; /* captured by on_failure, consumed by dt_h5_error */
static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *ud);

/* HDF5's "automatic" error handler, called when an API function fails: instead of printing,
 * keep what went wrong. A clean-up call (an H5Dclose after a failed H5Dwrite) clears the error
 * stack when it starts, so without this the caller's message would say "unknown HDF5 error". */
static herr_t on_failure(hid_t estack, void *ud)
{
    (void)ud;
    walk w = {"", 0};
    H5Ewalk2(estack, H5E_WALK_DOWNWARD, walk_cb, &w);
    if (w.desc[0])
        last_failure = w;
    return 0;
}

void dt_h5_init(void)
{
    static int done;
    if (!done) {
        /* no H5close at exit: HDF5 1.10 crashes there (H5F__close_cb) on a file whose H5Fclose
         * failed to flush (a full disk under the metrics log); every file dtrain opens is closed
         * explicitly, so there is nothing left for it to do. Only effective before the library
         * initializes, hence first. */
        H5dont_atexit();
        H5Eset_auto2(H5E_DEFAULT, on_failure, NULL);
        done = 1;
    }
}

/* "errno = 28" inside a message of the sec2/core drivers ("file write failed: ..., errno = 28,
 * error message = 'No space left on device', ..."). */
static int desc_errno(const char *desc)
{
    const char *p = strstr(desc, "errno = ");
    if (!p)
        return 0;
    long v = strtol(p + 8, NULL, 10);
    return v > 0 && v < 4096 ? (int)v : 0;
}

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *ud)
{
    (void)n;
    walk *w = ud;
    if (e->desc && e->desc[0]) {
        snprintf(w->desc, sizeof w->desc, "%s", e->desc); /* downward: the last is innermost */
        if (!w->err)
            w->err = desc_errno(e->desc);
    }
    return 0;
}

int dt_h5_errno(void)
{
    walk w = {"", 0};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_cb, &w);
    return w.desc[0] ? w.err : last_failure.err;
}

const char *dt_h5_error(void)
{
    static char buf[400];
    walk w = {"", 0};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_cb, &w);
    H5Eclear2(H5E_DEFAULT);
    if (!w.desc[0]) /* cleared by a later call: the last failure the handler saw */
        w = last_failure;
    last_failure.desc[0] = '\0';
    last_failure.err = 0;
    if (w.err)
        snprintf(buf, sizeof buf, "%s", strerror(w.err));
    else
        snprintf(buf, sizeof buf, "%s", w.desc[0] ? w.desc : "unknown HDF5 error");
    return buf;
}

int dt_h5_close(hid_t *id)
{
    if (*id < 0)
        return 0;
    herr_t r = -1;
    switch (H5Iget_type(*id)) {
    case H5I_FILE: r = H5Fclose(*id); break;
    case H5I_GROUP: r = H5Gclose(*id); break;
    case H5I_DATASET: r = H5Dclose(*id); break;
    case H5I_DATASPACE: r = H5Sclose(*id); break;
    case H5I_DATATYPE: r = H5Tclose(*id); break;
    case H5I_ATTR: r = H5Aclose(*id); break;
    case H5I_GENPROP_LST: r = H5Pclose(*id); break;
    default: r = H5Oclose(*id); break;
    }
    *id = -1;
    return r < 0 ? -1 : 0;
}

long dt_h5_open_objects(hid_t file)
{
    ssize_t n = H5Fget_obj_count(file, H5F_OBJ_ALL);
    return n < 0 ? -1 : (long)n;
}

int dt_h5_write_str_attr(hid_t loc, const char *name, const char *value)
{
    hid_t t = -1, s = -1, a = -1;
    int rc = -1;
    if ((t = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 ||
        H5Tset_cset(t, H5T_CSET_UTF8) < 0)
        goto out;
    if ((s = H5Screate(H5S_SCALAR)) < 0)
        goto out;
    if ((a = H5Acreate2(loc, name, t, s, H5P_DEFAULT, H5P_DEFAULT)) < 0)
        goto out;
    if (H5Awrite(a, t, &value) < 0)
        goto out;
    rc = 0;
out:
    if (dt_h5_close(&a) || dt_h5_close(&s) || dt_h5_close(&t))
        rc = -1;
    return rc;
}

int dt_h5_write_num_attr(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *v)
{
    hid_t s = -1, a = -1;
    int rc = -1;
    if ((s = H5Screate(H5S_SCALAR)) < 0)
        goto out;
    if ((a = H5Acreate2(loc, name, ftype, s, H5P_DEFAULT, H5P_DEFAULT)) < 0)
        goto out;
    if (H5Awrite(a, mtype, v) < 0)
        goto out;
    rc = 0;
out:
    if (dt_h5_close(&a) || dt_h5_close(&s))
        rc = -1;
    return rc;
}

/* Reads a scalar attribute as a string: strings as they are, integers in decimal, floats %.17g.
 * Returns 0 with *out (malloc'd), or -1 (HDF5 error on the stack). */
int dt_h5_attr_to_string(hid_t a, char **out)
{
    hid_t t = -1, s = -1, mt = -1;
    int rc = -1;
    char tmp[64];
    *out = NULL;
    if ((t = H5Aget_type(a)) < 0 || (s = H5Aget_space(a)) < 0)
        goto out;
    hssize_t npoints = H5Sget_simple_extent_npoints(s);
    if (npoints < 0)
        goto out;
    H5T_class_t cls = H5Tget_class(t);
    if (npoints != 1) {
        snprintf(tmp, sizeof tmp, "(%lld values)", (long long)npoints);
        *out = dt_xstrdup(tmp);
    } else if (cls == H5T_STRING) {
        htri_t vl = H5Tis_variable_str(t);
        if (vl < 0)
            goto out;
        if (vl) {
            char *v = NULL;
            if ((mt = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(mt, H5T_VARIABLE) < 0 ||
                H5Tset_cset(mt, H5Tget_cset(t)) < 0 || H5Aread(a, mt, &v) < 0)
                goto out;
            *out = dt_xstrdup(v ? v : "");
            H5free_memory(v);
        } else {
            size_t size = H5Tget_size(t);
            if (size == 0)
                goto out;
            char *v = dt_xcalloc(size + 1, 1);
            if ((mt = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(mt, size) < 0 ||
                H5Aread(a, mt, v) < 0) {
                free(v);
                goto out;
            }
            *out = v;
        }
    } else if (cls == H5T_INTEGER) {
        if (H5Tget_sign(t) == H5T_SGN_NONE) {
            unsigned long long v = 0;
            if (H5Aread(a, H5T_NATIVE_ULLONG, &v) < 0)
                goto out;
            snprintf(tmp, sizeof tmp, "%llu", v);
        } else {
            long long v = 0;
            if (H5Aread(a, H5T_NATIVE_LLONG, &v) < 0)
                goto out;
            snprintf(tmp, sizeof tmp, "%lld", v);
        }
        *out = dt_xstrdup(tmp);
    } else if (cls == H5T_FLOAT) {
        double v = 0;
        if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0)
            goto out;
        snprintf(tmp, sizeof tmp, "%.17g", v);
        *out = dt_xstrdup(tmp);
    } else {
        *out = dt_xstrdup("(unsupported type)");
    }
    rc = 0;
out:
    if (dt_h5_close(&mt) || dt_h5_close(&s) || dt_h5_close(&t))
        rc = -1;
    if (rc) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

/* Attribute `name` of loc as a string: 1 with *out (malloc'd), 0 when missing, -1 on error. */
int dt_h5_get_attr_string(hid_t loc, const char *name, char **out)
{
    *out = NULL;
    htri_t e = H5Aexists(loc, name);
    if (e <= 0)
        return e < 0 ? -1 : 0;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0)
        return -1;
    int rc = dt_h5_attr_to_string(a, out);
    if (dt_h5_close(&a))
        rc = -1;
    if (rc) {
        free(*out);
        *out = NULL;
        return -1;
    }
    return 1;
}

/* ---- files built in memory ---- */

static void *img_malloc(size_t size, H5FD_file_image_op_t op, void *ud)
{
    (void)op;
    dt_h5_image *im = ud;
    im->cap = size;
    return malloc(size);
}

static void *img_memcpy(void *dest, const void *src, size_t size, H5FD_file_image_op_t op, void *ud)
{
    (void)op;
    (void)ud;
    return memcpy(dest, src, size);
}

static void *img_realloc(void *p, size_t size, H5FD_file_image_op_t op, void *ud)
{
    (void)op;
    dt_h5_image *im = ud;
    void *q = realloc(p, size);
    if (q)
        im->cap = size;
    return q;
}

static herr_t img_free(void *p, H5FD_file_image_op_t op, void *ud)
{
    dt_h5_image *im = ud;
    if (op == H5FD_FILE_IMAGE_OP_FILE_CLOSE && p) {
        im->mem = p; /* the finished file: keep it */
        return 0;
    }
    free(p);
    return 0;
}

static void *img_udata_copy(void *ud) { return ud; } /* shared, not owned, by property lists */
static herr_t img_udata_free(void *ud)
{
    (void)ud;
    return 0;
}

int dt_h5_image_fapl(hid_t fapl, dt_h5_image *im)
{
    H5FD_file_image_callbacks_t cb = {img_malloc,     img_memcpy,     img_realloc, img_free,
                                      img_udata_copy, img_udata_free, im};
    im->mem = NULL;
    im->cap = 0;
    if (H5Pset_fapl_core(fapl, (size_t)1 << 20, 0) < 0 ||
        H5Pset_file_image_callbacks(fapl, &cb) < 0)
        return -1;
    return 0;
}

uint64_t dt_h5_image_size(const dt_h5_image *im, uint64_t ublock)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    if (!im->mem || ublock + 48 > im->cap)
        return 0;
    const unsigned char *sb = im->mem + ublock;
    uint64_t eof;
    if (memcmp(sb, sig, 8) != 0 || sb[8] != 2 || sb[9] != 8 || sb[10] != 8)
        return 0;
    memcpy(&eof, sb + 28, 8);
    return eof > ublock && eof <= im->cap ? eof : 0;
}
