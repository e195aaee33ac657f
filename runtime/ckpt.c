/*
 * ckpt.c - the checkpoint container: see ckpt.h for the file layout, the commit protocol and
 * every function's contract.
 *
 * Conventions: every HDF5 call's return value is checked; HDF5 handles are closed on every path
 * (the writer's file access list uses H5F_CLOSE_SEMI, so H5Fclose fails loudly if an object was
 * left open instead of silently keeping the file open and unflushed). Checksums are XXH64 over the
 * raw bytes of the array in C order; the host must be little-endian, like the file's types.
 *
 * References: XXH64 as specified in https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md
 * (test vectors in tests/test_ckpt.c); HDF5 1.10 C API reference manual.
 */
#include "ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blas.h"
#include "common.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ckpt.c hashes in-memory bytes as the file's little-endian bytes: little-endian hosts only"
#endif

#define FORMAT_NAME "dtrain-checkpoint"
#define FORMAT_VERSION 1
#define CKSUM_ATTR "xxh64"
#define SLAB_BYTES ((size_t)8 << 20) /* verification reads files in pieces of this size */
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

/* ---- XXH64 ---- */

static const uint64_t P1 = 0x9E3779B185EBCA87ULL, P2 = 0xC2B2AE3D27D4EB4FULL,
                      P3 = 0x165667B19E3779F9ULL, P4 = 0x85EBCA77C2B2AE63ULL,
                      P5 = 0x27D4EB2F165667C5ULL;

static inline uint64_t rotl64(uint64_t x, unsigned r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t rd64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t rd32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t xx_round(uint64_t acc, uint64_t in)
{
    acc += in * P2;
    acc = rotl64(acc, 31);
    return acc * P1;
}

static inline uint64_t xx_merge(uint64_t acc, uint64_t val)
{
    acc ^= xx_round(0, val);
    return acc * P1 + P4;
}

void dt_ck_xxh64_init(dt_ck_xxh64_state *s, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->seed = seed;
    s->v[0] = seed + P1 + P2;
    s->v[1] = seed + P2;
    s->v[2] = seed;
    s->v[3] = seed - P1;
}

void dt_ck_xxh64_update(dt_ck_xxh64_state *s, const void *data, size_t len)
{
    if (len == 0)
        return;
    const unsigned char *p = data;
    s->total += len;
    if (s->memsize + len < 32) {
        memcpy(s->mem + s->memsize, p, len);
        s->memsize += (unsigned)len;
        return;
    }
    uint64_t v0 = s->v[0], v1 = s->v[1], v2 = s->v[2], v3 = s->v[3];
    if (s->memsize) {
        size_t fill = 32 - s->memsize;
        memcpy(s->mem + s->memsize, p, fill);
        v0 = xx_round(v0, rd64(s->mem));
        v1 = xx_round(v1, rd64(s->mem + 8));
        v2 = xx_round(v2, rd64(s->mem + 16));
        v3 = xx_round(v3, rd64(s->mem + 24));
        p += fill;
        len -= fill;
        s->memsize = 0;
    }
    while (len >= 32) {
        v0 = xx_round(v0, rd64(p));
        v1 = xx_round(v1, rd64(p + 8));
        v2 = xx_round(v2, rd64(p + 16));
        v3 = xx_round(v3, rd64(p + 24));
        p += 32;
        len -= 32;
    }
    s->v[0] = v0, s->v[1] = v1, s->v[2] = v2, s->v[3] = v3;
    if (len) {
        memcpy(s->mem, p, len);
        s->memsize = (unsigned)len;
    }
}

uint64_t dt_ck_xxh64_digest(const dt_ck_xxh64_state *s)
{
    uint64_t h;
    if (s->total >= 32) {
        h = rotl64(s->v[0], 1) + rotl64(s->v[1], 7) + rotl64(s->v[2], 12) + rotl64(s->v[3], 18);
        for (int i = 0; i < 4; i++)
            h = xx_merge(h, s->v[i]);
    } else {
        h = s->seed + P5;
    }
    h += s->total;
    const unsigned char *p = s->mem;
    size_t len = s->memsize;
    while (len >= 8) {
        h ^= xx_round(0, rd64(p));
        h = rotl64(h, 27) * P1 + P4;
        p += 8;
        len -= 8;
    }
    if (len >= 4) {
        h ^= (uint64_t)rd32(p) * P1;
        h = rotl64(h, 23) * P2 + P3;
        p += 4;
        len -= 4;
    }
    while (len) {
        h ^= (uint64_t)*p * P5;
        h = rotl64(h, 11) * P1;
        p++;
        len--;
    }
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

uint64_t dt_ck_xxh64(const void *data, size_t len, uint64_t seed)
{
    dt_ck_xxh64_state s;
    dt_ck_xxh64_init(&s, seed);
    dt_ck_xxh64_update(&s, data, len);
    return dt_ck_xxh64_digest(&s);
}

/* ---- versions ---- */

static void trim_line(char *s)
{
    s[strcspn(s, "\r\n")] = '\0';
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
}

const char *dt_ck_hdf5_version(void)
{
    static char buf[48];
    if (!buf[0]) {
        unsigned maj = 0, min = 0, rel = 0;
        if (H5get_libversion(&maj, &min, &rel) < 0)
            snprintf(buf, sizeof buf, "unknown");
        else
            snprintf(buf, sizeof buf, "%u.%u.%u", maj, min, rel);
    }
    return buf;
}

const char *dt_ck_mpi_version(void)
{
    static char buf[MPI_MAX_LIBRARY_VERSION_STRING + 1];
    if (!buf[0]) {
        int len = 0;
        if (MPI_Get_library_version(buf, &len) != MPI_SUCCESS)
            snprintf(buf, sizeof buf, "unknown");
        trim_line(buf);
        if (!buf[0])
            snprintf(buf, sizeof buf, "unknown");
    }
    return buf;
}

const char *dt_ck_openblas_version(void)
{
    static char buf[256];
    if (!buf[0]) {
        const char *c = openblas_get_config();
        snprintf(buf, sizeof buf, "%s", c ? c : "unknown");
        trim_line(buf);
        if (!buf[0])
            snprintf(buf, sizeof buf, "unknown");
    }
    return buf;
}

/* ---- HDF5 error handling ---- */

void dt_ck_h5_init(void)
{
    static int done;
    if (!done) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        done = 1;
    }
}

static herr_t h5_walk_cb(unsigned n, const H5E_error2_t *e, void *ud)
{
    (void)n;
    char *buf = ud;
    if (e->desc && e->desc[0])
        snprintf(buf, 400, "%s", e->desc); /* walking downward: the last one is the innermost */
    return 0;
}

const char *dt_ck_h5_error(void)
{
    static char buf[400];
    buf[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, h5_walk_cb, buf);
    H5Eclear2(H5E_DEFAULT);
    if (!buf[0])
        snprintf(buf, sizeof buf, "unknown HDF5 error");
    return buf;
}

/* Closes an HDF5 handle of any kind if it is open; returns -1 if closing failed. */
static int h5_close(hid_t *id)
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

/* ---- attributes ---- */

static int write_str_attr(hid_t loc, const char *name, const char *value)
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
    if (h5_close(&a) || h5_close(&s) || h5_close(&t))
        rc = -1;
    return rc;
}

static int write_num_attr(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *v)
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
    if (h5_close(&a) || h5_close(&s))
        rc = -1;
    return rc;
}

/* Reads a scalar attribute as a string: strings as they are, integers in decimal, floats %.17g.
 * Returns 0 with *out (malloc'd), or -1 (HDF5 error on the stack). */
static int attr_to_string(hid_t a, char **out)
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
    if (h5_close(&mt) || h5_close(&s) || h5_close(&t))
        rc = -1;
    if (rc) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

/* Attribute `name` of loc as a string: 1 with *out (malloc'd), 0 when missing, -1 on error. */
static int get_attr_string(hid_t loc, const char *name, char **out)
{
    *out = NULL;
    htri_t e = H5Aexists(loc, name);
    if (e <= 0)
        return e < 0 ? -1 : 0;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0)
        return -1;
    int rc = attr_to_string(a, out);
    if (h5_close(&a))
        rc = -1;
    if (rc) {
        free(*out);
        *out = NULL;
        return -1;
    }
    return 1;
}

/* Checks the root attributes that make a file a complete dtrain checkpoint. 0 or DT_ERR. */
static int check_header(hid_t file, const char *path)
{
    hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
    char *v = NULL;
    int rc = DT_ERR, k;
    if (root < 0) {
        dt_err("%s: cannot open root group: %s", path, dt_ck_h5_error());
        goto out;
    }
    if ((k = get_attr_string(root, "format", &v)) < 0) {
        dt_err("%s: cannot read attribute 'format': %s", path, dt_ck_h5_error());
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
    if ((k = get_attr_string(root, "format_version", &v)) < 0) {
        dt_err("%s: cannot read attribute 'format_version': %s", path, dt_ck_h5_error());
        goto out;
    }
    if (k == 0 || strcmp(v, "1") != 0) {
        dt_err("%s: unsupported checkpoint format_version %s (this dtrain reads %d)", path,
               k ? v : "(missing)", FORMAT_VERSION);
        goto out;
    }
    free(v);
    v = NULL;
    if ((k = get_attr_string(root, "complete", &v)) < 0) {
        dt_err("%s: cannot read attribute 'complete': %s", path, dt_ck_h5_error());
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
    if (h5_close(&root) && rc == DT_OK)
        rc = dt_err("%s: cannot close root group: %s", path, dt_ck_h5_error());
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
    dt_ck_attr(w, "hdf5_version", dt_ck_hdf5_version());
    dt_ck_attr(w, "mpi_version", dt_ck_mpi_version());
    dt_ck_attr(w, "openblas_version", dt_ck_openblas_version());
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

/* ---- the dtrain header: byte-level integrity, checked before HDF5 parses anything ----
 *
 * HDF5 trusts its metadata: a flipped byte in it can make the library misbehave (HDF5 1.10.8 loops
 * forever reading a damaged global heap, where variable-length strings live). So the file's first
 * U bytes (HDF5's "user block", which HDF5 skips) hold a header written after H5Fclose, and every
 * byte after it is covered by a checksum: each dataset's raw data (found with H5Dget_offset) by
 * its own, everything else (HDF5 metadata) by one more. dt_ck_open verifies all of them with plain
 * pread before it calls H5Fopen, so HDF5 only ever reads bytes identical to the ones verified at
 * commit. Little-endian fields:
 *   0  "DTRAINCK"     8  u32 header version (1)   12  u32 U (power of 2, >= 512)
 *   16 u64 file size  24 u64 XXH64 of the U header bytes with this field zeroed
 *   (bytes 0..31 keep this meaning in every version, so any version's checksum can be checked)
 *   32 u64 XXH64 of the metadata bytes (all of [U, size) outside the datasets' data, in order)
 *   40 u32 number of entries   44 u32 0
 *   48 entries, by increasing offset: u64 offset, u64 length, u64 XXH64, u16 name length, name
 */

#define HDR_MAGIC "DTRAINCK"
#define HDR_VERSION 1
#define HDR_FIXED 48
#define HDR_ENTRY 26
#define HDR_MAX ((uint64_t)64 << 20)

typedef struct range {
    uint64_t off, len, xxh64;
    char name[DT_CK_NAME_MAX];
    int item; /* writer: index of its item */
} range;

static void put16(unsigned char *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint16_t get16(const unsigned char *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
static uint32_t get32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t get64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static int range_cmp(const void *a, const void *b)
{
    const range *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Hashes bytes [a, b) of fd into s. 0, or -1 with errno (0 when the file ended early). */
static int hash_span(int fd, uint64_t a, uint64_t b, dt_ck_xxh64_state *s, unsigned char *buf)
{
    while (a < b) {
        size_t k = b - a < SLAB_BYTES ? (size_t)(b - a) : SLAB_BYTES;
        ssize_t r = pread(fd, buf, k, (off_t)a);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = 0;
            return -1;
        }
        dt_ck_xxh64_update(s, buf, (size_t)r);
        a += (uint64_t)r;
    }
    return 0;
}

/* Hashes [start, end) of fd: range i (sorted, disjoint, inside) into got[i], the rest into *meta.
 * 0, or -1 with errno. */
static int hash_file(int fd, uint64_t start, uint64_t end, const range *rg, int nr, uint64_t *got,
                     uint64_t *meta)
{
    unsigned char *buf = dt_xmalloc(SLAB_BYTES, 1);
    dt_ck_xxh64_state ms, st;
    uint64_t pos = start;
    int rc = -1;
    dt_ck_xxh64_init(&ms, 0);
    for (int i = 0; i < nr; i++) {
        if (hash_span(fd, pos, rg[i].off, &ms, buf))
            goto out;
        dt_ck_xxh64_init(&st, 0);
        if (hash_span(fd, rg[i].off, rg[i].off + rg[i].len, &st, buf))
            goto out;
        got[i] = dt_ck_xxh64_digest(&st);
        pos = rg[i].off + rg[i].len;
    }
    if (hash_span(fd, pos, end, &ms, buf))
        goto out;
    *meta = dt_ck_xxh64_digest(&ms);
    rc = 0;
out:
    free(buf);
    return rc;
}

/* XXH64 of a header block, its own checksum field counted as zero. */
static uint64_t header_hash(const unsigned char *hb, uint64_t u)
{
    static const unsigned char zero[8];
    dt_ck_xxh64_state s;
    dt_ck_xxh64_init(&s, 0);
    dt_ck_xxh64_update(&s, hb, 24);
    dt_ck_xxh64_update(&s, zero, 8);
    dt_ck_xxh64_update(&s, hb + 32, (size_t)u - 32);
    return dt_ck_xxh64_digest(&s);
}

/* 1 if the file fd (size bytes) carries the HDF5 signature at offset 0, 512, 1024, 2048, ...
 * (where HDF5 looks), 0 if not, -1 if it cannot be read (errno). */
static int has_hdf5_signature(int fd, long long size)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    for (long long off = 0; off + 8 <= size; off = off ? 2 * off : 512) {
        unsigned char buf[8];
        ssize_t r = pread(fd, buf, 8, (off_t)off);
        if (r < 0)
            return -1;
        if (r == 8 && memcmp(buf, sig, 8) == 0)
            return 1;
    }
    return 0;
}

/* What check_file learned: the header block size, the file size and the datasets' ranges. */
typedef struct hdr {
    uint64_t ublock, size;
    int nr;
    range *rg; /* malloc'd */
} hdr;

/* Checks the dtrain header of path and, when `full`, the checksum of every byte after it.
 * Returns 0 with *h filled (free h->rg), or DT_ERR with the message (see ckpt.h). */
static int check_file(const char *path, int full, hdr *h)
{
    struct stat st;
    unsigned char fixed[HDR_FIXED], *hb = NULL;
    uint64_t *got = NULL;
    int fd = -1, rc = DT_ERR;
    memset(h, 0, sizeof *h);
    if (stat(path, &st) != 0)
        return dt_err("%s: cannot open checkpoint: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return dt_err("%s: not a regular file", path);
    long long size = (long long)st.st_size;
    if ((fd = open(path, O_RDONLY)) < 0)
        return dt_err("%s: cannot open checkpoint: %s", path, strerror(errno));
    ssize_t r = pread(fd, fixed, HDR_FIXED, 0);
    if (r < 0) {
        dt_err("%s: cannot read: %s", path, strerror(errno));
        goto out;
    }
    if (r < 8 || memcmp(fixed, HDR_MAGIC, 8) != 0) {
        static const unsigned char zero[8];
        int sig = has_hdf5_signature(fd, size);
        if (sig < 0)
            dt_err("%s: cannot read: %s", path, strerror(errno));
        else if (r == HDR_FIXED && size >= 512 && memcmp(fixed, zero, 8) == 0)
            dt_err("%s: incomplete checkpoint (no dtrain header: its writer did not finish)",
                   path);
        else if (sig)
            dt_err("%s: not a dtrain checkpoint (an HDF5 file without a dtrain header)", path);
        else
            dt_err("%s: not an HDF5 file", path);
        goto out;
    }
    if (r < HDR_FIXED) {
        dt_err("%s: truncated file (%lld bytes)", path, size);
        goto out;
    }
    uint32_t version = get32(fixed + 8);
    uint64_t u = get32(fixed + 12), written = get64(fixed + 16);
    if (u < 512 || u > HDR_MAX || (u & (u - 1))) {
        dt_err("%s: corrupted checkpoint header (block size %llu)", path, (unsigned long long)u);
        goto out;
    }
    if ((uint64_t)size < u) {
        dt_err("%s: truncated file (%lld bytes, shorter than its header)", path, size);
        goto out;
    }
    hb = dt_xmalloc((size_t)u, 1);
    if (pread(fd, hb, (size_t)u, 0) != (ssize_t)u) {
        dt_err("%s: cannot read its header: %s", path, strerror(errno));
        goto out;
    }
    if (header_hash(hb, u) != get64(hb + 24)) {
        dt_err("%s: corrupted checkpoint header (checksum mismatch)", path);
        goto out;
    }
    if (version != HDR_VERSION) {
        dt_err("%s: unsupported checkpoint header version %u (this dtrain reads %d)", path,
               (unsigned)version, HDR_VERSION);
        goto out;
    }
    if ((uint64_t)size < written) {
        dt_err("%s: truncated file (%lld of %llu bytes)", path, size,
               (unsigned long long)written);
        goto out;
    }
    if ((uint64_t)size > written) {
        dt_err("%s: file is %lld bytes, %llu were written", path, size,
               (unsigned long long)written);
        goto out;
    }
    uint32_t nr = get32(hb + 40);
    if (nr > (u - HDR_FIXED) / HDR_ENTRY) {
        dt_err("%s: corrupted checkpoint header (%u entries)", path, (unsigned)nr);
        goto out;
    }
    h->ublock = u;
    h->size = written;
    h->rg = dt_xcalloc(nr ? nr : 1, sizeof *h->rg);
    uint64_t pos = HDR_FIXED, end = u;
    for (uint32_t i = 0; i < nr; i++) {
        range *g = &h->rg[i];
        size_t nl = pos + HDR_ENTRY <= u ? get16(hb + pos + 24) : 0;
        if (pos + HDR_ENTRY + nl > u || nl == 0 || nl >= DT_CK_NAME_MAX) {
            dt_err("%s: corrupted checkpoint header (entry %u)", path, (unsigned)i);
            goto out;
        }
        g->off = get64(hb + pos);
        g->len = get64(hb + pos + 8);
        g->xxh64 = get64(hb + pos + 16);
        memcpy(g->name, hb + pos + HDR_ENTRY, nl);
        g->name[nl] = '\0';
        pos += HDR_ENTRY + nl;
        if (g->off < end || g->len > written || g->off > written - g->len) {
            dt_err("%s: corrupted checkpoint header (entry %u: %s)", path, (unsigned)i, g->name);
            goto out;
        }
        end = g->off + g->len;
        h->nr++;
    }
    if (full) {
        uint64_t meta;
        got = dt_xmalloc(nr ? nr : 1, sizeof *got);
        if (hash_file(fd, u, written, h->rg, h->nr, got, &meta)) {
            if (errno == 0)
                dt_err("%s: truncated file (shrank while being read)", path);
            else
                dt_err("%s: cannot read: %s", path, strerror(errno));
            goto out;
        }
        for (int i = 0; i < h->nr; i++)
            if (got[i] != h->rg[i].xxh64) {
                dt_err("%s: checksum mismatch in %s (stored xxh64 0x%016llx, computed "
                       "0x%016llx)", path, h->rg[i].name, (unsigned long long)h->rg[i].xxh64,
                       (unsigned long long)got[i]);
                goto out;
            }
        if (meta != get64(hb + 32)) {
            dt_err("%s: corrupted HDF5 metadata (checksum mismatch outside the datasets' data)",
                   path);
            goto out;
        }
    }
    rc = DT_OK;
out:
    if (fd >= 0)
        close(fd);
    free(hb);
    free(got);
    if (rc) {
        free(h->rg);
        h->rg = NULL;
    }
    return rc;
}

/* ---- commit ---- */

/* Header block size for w's items: the smallest power of 2 >= 512 that holds the entries. */
static uint64_t header_size(const dt_ck_writer *w)
{
    uint64_t need = HDR_FIXED, u = 512;
    for (int i = 0; i < w->nitems; i++)
        if (w->items[i].numel > 0)
            need += HDR_ENTRY + strlen(w->items[i].name);
    while (u < need)
        u *= 2;
    return u;
}

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

/* Writes one item and records where its raw data went. 0 or -1 (HDF5 error stack). */
static int write_item(hid_t file, witem *it, hid_t gcpl, hid_t dcpl)
{
    hid_t s = -1, d = -1;
    int rc = -1;
    hsize_t hd[DT_CK_MAX_DIM];
    for (int i = 0; i < it->ndim; i++)
        hd[i] = (hsize_t)it->dims[i];
    if (ensure_groups(file, it->name, gcpl))
        goto out;
    s = it->ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(it->ndim, hd, NULL);
    if (s < 0)
        goto out;
    if ((d = H5Dcreate2(file, it->name, file_type(it->dtype), s, H5P_DEFAULT, dcpl,
                        H5P_DEFAULT)) < 0)
        goto out;
    if (it->numel > 0) {
        if (H5Dwrite(d, mem_type(it->dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, it->data) < 0)
            goto out;
        haddr_t off = H5Dget_offset(d);
        hsize_t len = H5Dget_storage_size(d);
        if (off == HADDR_UNDEF || len != (hsize_t)it->numel * dtype_sizes[it->dtype])
            goto out;
        it->off = (uint64_t)off;
        it->len = (uint64_t)len;
    }
    if (write_num_attr(d, CKSUM_ATTR, H5T_STD_U64LE, H5T_NATIVE_UINT64, &it->xxh64))
        goto out;
    rc = 0;
out:
    if (h5_close(&d) || h5_close(&s))
        rc = -1;
    return rc;
}

/* Writes all of w into tmp with HDF5 and closes it. 0, or -1 with `why` filled in. */
static int write_file(dt_ck_writer *w, const char *tmp, uint64_t ublock, const fault *f,
                      char *why, size_t n)
{
    hid_t fcpl = -1, fapl = -1, gcpl = -1, dcpl = -1, file = -1, root = -1;
    const unsigned order = H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED;
    int rc = -1;
    const char *step = "setting up property lists for";
    if ((fcpl = H5Pcreate(H5P_FILE_CREATE)) < 0 || H5Pset_userblock(fcpl, (hsize_t)ublock) < 0 ||
        H5Pset_link_creation_order(fcpl, order) < 0 ||
        H5Pset_attr_creation_order(fcpl, order) < 0 || H5Pset_obj_track_times(fcpl, 0) < 0)
        goto fail;
    if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) < 0 ||
        H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) < 0 ||
        H5Pset_fclose_degree(fapl, H5F_CLOSE_SEMI) < 0)
        goto fail;
    if ((gcpl = H5Pcreate(H5P_GROUP_CREATE)) < 0 ||
        H5Pset_link_creation_order(gcpl, order) < 0 || H5Pset_obj_track_times(gcpl, 0) < 0)
        goto fail;
    if ((dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 ||
        H5Pset_layout(dcpl, H5D_CONTIGUOUS) < 0 || H5Pset_obj_track_times(dcpl, 0) < 0)
        goto fail;
    step = "creating";
    if ((file = H5Fcreate(tmp, H5F_ACC_EXCL, fcpl, fapl)) < 0)
        goto fail;
    for (int i = 0; i < w->nitems; i++) {
        if (i == w->nitems / 2 && fault_hit(f, "mid_write")) {
            say(why, n, "writing %s: fault injected at mid_write (DTRAIN_CKPT_FAULT)", tmp);
            goto out;
        }
        if (write_item(file, &w->items[i], gcpl, dcpl)) {
            say(why, n, "writing %s to %s: %s", w->items[i].name, tmp, dt_ck_h5_error());
            goto out;
        }
    }
    step = "writing attributes to";
    if ((root = H5Gopen2(file, "/", H5P_DEFAULT)) < 0)
        goto fail;
    for (int i = 0; i < w->nattrs; i++)
        if (write_str_attr(root, w->attrs[i].name, w->attrs[i].value)) {
            say(why, n, "writing attribute '%s' to %s: %s", w->attrs[i].name, tmp,
                dt_ck_h5_error());
            goto out;
        }
    const int64_t version = FORMAT_VERSION, one = 1;
    if (write_str_attr(root, "format", FORMAT_NAME) ||
        write_num_attr(root, "format_version", H5T_STD_I64LE, H5T_NATIVE_INT64, &version))
        goto fail;
    step = "flushing";
    if (H5Fflush(file, H5F_SCOPE_GLOBAL) < 0)
        goto fail;
    /* the last attribute: a file that has it was written to the end */
    step = "marking complete";
    if (write_num_attr(root, "complete", H5T_STD_I64LE, H5T_NATIVE_INT64, &one))
        goto fail;
    if (h5_close(&root))
        goto fail;
    step = "flushing";
    if (H5Fflush(file, H5F_SCOPE_GLOBAL) < 0)
        goto fail;
    step = "closing";
    if (h5_close(&file))
        goto fail;
    rc = 0;
    goto out;
fail:
    say(why, n, "%s %s: %s", step, tmp, dt_ck_h5_error());
out:
    h5_close(&root);
    h5_close(&file);
    h5_close(&dcpl);
    h5_close(&gcpl);
    h5_close(&fapl);
    h5_close(&fcpl);
    H5Eclear2(H5E_DEFAULT);
    return rc;
}

/* Hashes the closed file and writes the dtrain header into its user block. Each dataset's bytes
 * in the file must hash like the array in memory. 0, or -1 with `why`. */
static int write_header(const dt_ck_writer *w, const char *tmp, uint64_t u, char *why, size_t n)
{
    range *rg = dt_xcalloc((size_t)w->nitems + 1, sizeof *rg);
    uint64_t *got = dt_xcalloc((size_t)w->nitems + 1, sizeof *got), meta = 0;
    unsigned char *hb = dt_xcalloc((size_t)u, 1);
    int nr = 0, rc = -1, fd = open(tmp, O_RDWR);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        say(why, n, "reopening %s: %s", tmp, strerror(errno));
        goto out;
    }
    for (int i = 0; i < w->nitems; i++)
        if (w->items[i].numel > 0) {
            rg[nr].off = w->items[i].off;
            rg[nr].len = w->items[i].len;
            rg[nr].item = i;
            snprintf(rg[nr].name, sizeof rg[nr].name, "%s", w->items[i].name);
            nr++;
        }
    qsort(rg, (size_t)nr, sizeof *rg, range_cmp);
    uint64_t size = (uint64_t)st.st_size, end = u;
    for (int i = 0; i < nr; i++) {
        if (rg[i].off < end || rg[i].off + rg[i].len > size) {
            say(why, n, "hashing %s: the data of %s lies outside the file or overlaps", tmp,
                rg[i].name);
            goto out;
        }
        end = rg[i].off + rg[i].len;
    }
    if (hash_file(fd, u, size, rg, nr, got, &meta)) {
        say(why, n, "hashing %s: %s", tmp, errno ? strerror(errno) : "file shorter than written");
        goto out;
    }
    for (int i = 0; i < nr; i++)
        if (got[i] != w->items[rg[i].item].xxh64) {
            say(why, n, "hashing %s: the bytes of %s in the file differ from the array in memory",
                tmp, rg[i].name);
            goto out;
        }
    memcpy(hb, HDR_MAGIC, 8);
    put32(hb + 8, HDR_VERSION);
    put32(hb + 12, (uint32_t)u);
    put64(hb + 16, size);
    put64(hb + 32, meta);
    put32(hb + 40, (uint32_t)nr);
    size_t pos = HDR_FIXED;
    for (int i = 0; i < nr; i++) {
        size_t nl = strlen(rg[i].name);
        DT_ASSERT(pos + HDR_ENTRY + nl <= u);
        put64(hb + pos, rg[i].off);
        put64(hb + pos + 8, rg[i].len);
        put64(hb + pos + 16, got[i]);
        put16(hb + pos + 24, (uint16_t)nl);
        memcpy(hb + pos + HDR_ENTRY, rg[i].name, nl);
        pos += HDR_ENTRY + nl;
    }
    put64(hb + 24, header_hash(hb, u));
    if (pwrite(fd, hb, (size_t)u, 0) != (ssize_t)u) {
        say(why, n, "writing the header of %s: %s", tmp, errno ? strerror(errno) : "short write");
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0 && close(fd) != 0 && rc == 0) {
        say(why, n, "closing %s: %s", tmp, strerror(errno));
        rc = -1;
    }
    free(hb);
    free(got);
    free(rg);
    return rc;
}

/* Reopens the written file (dt_ck_open: every byte verified) and checks it holds exactly what w
 * meant to write. */
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

int dt_ck_commit(dt_ck_writer *w)
{
    DT_ASSERT(w);
    dt_ck_h5_init();
    const char *final = w->path;
    char why[768] = "";
    char dir[PATH_MAX_LEN], tmp[PATH_MAX_LEN];
    int rc = DT_ERR, tmp_exists = 0, saved = 0;
    fault f;

    if (fault_parse(&f)) {
        say(why, sizeof why, "DTRAIN_CKPT_FAULT='%s' is not POINT[:exit|:fail] with POINT "
            "one of mid_write, after_write, before_rename, after_rename",
            getenv("DTRAIN_CKPT_FAULT"));
        goto out;
    }
    /* DIR/NAME -> DIR, DIR/.NAME.tmp.PID */
    const char *slash = strrchr(final, '/');
    const char *base = slash ? slash + 1 : final;
    size_t dlen = slash ? (size_t)(slash - final) : 0;
    if (!base[0]) {
        say(why, sizeof why, "the path names a directory, not a file");
        goto out;
    }
    if (dlen + 1 >= sizeof dir ||
        (size_t)snprintf(tmp, sizeof tmp, "%.*s%s.%s.tmp.%ld", (int)dlen, final,
                         slash ? "/" : "", base, (long)getpid()) >= sizeof tmp) {
        say(why, sizeof why, "path too long");
        goto out;
    }
    if (slash)
        snprintf(dir, sizeof dir, "%.*s", dlen ? (int)dlen : 1, dlen ? final : "/");
    else
        snprintf(dir, sizeof dir, ".");
    struct stat st;
    if (stat(dir, &st) != 0) {
        say(why, sizeof why, "directory %s: %s", dir, strerror(errno));
        goto out;
    }
    if (!S_ISDIR(st.st_mode)) {
        say(why, sizeof why, "%s is not a directory", dir);
        goto out;
    }
    if (access(dir, W_OK) != 0) {
        say(why, sizeof why, "directory %s is not writable: %s", dir, strerror(errno));
        goto out;
    }

    for (int i = 0; i < w->nitems; i++) {
        witem *it = &w->items[i];
        it->xxh64 = dt_ck_xxh64(it->data, (size_t)it->numel * dtype_sizes[it->dtype], 0);
    }
    uint64_t ublock = header_size(w);

    /* 1. the temporary file (a stale one of an earlier process with our pid goes first) */
    if (unlink(tmp) != 0 && errno != ENOENT) {
        say(why, sizeof why, "removing stale %s: %s", tmp, strerror(errno));
        goto out;
    }
    tmp_exists = 1;
    if (write_file(w, tmp, ublock, &f, why, sizeof why) ||
        write_header(w, tmp, ublock, why, sizeof why))
        goto out;
    if (fault_hit(&f, "after_write")) {
        say(why, sizeof why, "fault injected at after_write (DTRAIN_CKPT_FAULT)");
        goto out;
    }
    /* 2. its bytes on disk */
    if (fsync_path(tmp, 0)) {
        say(why, sizeof why, "fsync %s: %s", tmp, strerror(errno));
        goto out;
    }
    /* 3. read back: every byte, then every item and attribute through HDF5 */
    if (verify_written(w, tmp, why, sizeof why))
        goto out;
    if (fault_hit(&f, "before_rename")) {
        say(why, sizeof why, "fault injected at before_rename (DTRAIN_CKPT_FAULT)");
        goto out;
    }
    /* 4. atomically in place */
    if (rename(tmp, final) != 0) {
        say(why, sizeof why, "rename %s -> %s: %s", tmp, final, strerror(errno));
        goto out;
    }
    tmp_exists = 0;
    saved = 1;
    if (fault_hit(&f, "after_rename")) {
        say(why, sizeof why, "fault injected at after_rename (DTRAIN_CKPT_FAULT)");
        goto out;
    }
    /* 5. the rename itself durable */
    if (fsync_path(dir, 1)) {
        say(why, sizeof why, "fsync of directory %s: %s (the rename may not survive a "
            "power loss)", dir, strerror(errno));
        goto out;
    }
    rc = DT_OK;
out:
    if (rc != DT_OK) {
        if (tmp_exists && unlink(tmp) != 0 && errno != ENOENT) {
            size_t len = strlen(why);
            appendf(why, sizeof why, &len, "; removing %s failed too: %s", tmp, strerror(errno));
        }
        if (saved)
            dt_err("%s: checkpoint saved, but %s", final, why);
        else
            dt_err("%s: cannot save checkpoint: %s", final, why);
    }
    dt_ck_discard(w);
    return rc;
}

/* ---- reader ---- */

typedef struct rattr {
    char *name, *value;
} rattr;

struct dt_ck_reader {
    char *path;
    hid_t file;
    hdr h;
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
    if (a < 0 || attr_to_string(a, &v) || h5_close(&a)) {
        h5_close(&a);
        free(v);
        dt_err("%s: cannot read attribute '%s': %s", r->path, name, dt_ck_h5_error());
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
        dt_err("%s: cannot open root group: %s", r->path, dt_ck_h5_error());
        goto out;
    }
    H5_index_t idx = (flags & H5P_CRT_ORDER_INDEXED) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
    if (H5Aiterate2(root, idx, H5_ITER_INC, NULL, attr_cb, r) < 0)
        goto out; /* attr_cb recorded the message */
    rc = DT_OK;
out:
    h5_close(&ocpl);
    h5_close(&root);
    H5Eclear2(H5E_DEFAULT);
    return rc;
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
    H5T_class_t cls = H5Tget_class(t);
    size_t size = H5Tget_size(t);
    H5T_sign_t sign = cls == H5T_INTEGER ? H5Tget_sign(t) : H5T_SGN_ERROR;
    if (cls == H5T_FLOAT && size == 4)
        it.dtype = DT_CK_F32;
    else if (cls == H5T_FLOAT && size == 8)
        it.dtype = DT_CK_F64;
    else if (cls == H5T_INTEGER && size == 8 && sign == H5T_SGN_2)
        it.dtype = DT_CK_I64;
    else if (cls == H5T_INTEGER && size == 1 && sign == H5T_SGN_NONE)
        it.dtype = DT_CK_U8;
    else {
        dt_err("%s: %s has an unsupported type (HDF5 class %d, %zu bytes)", r->path, name,
               (int)cls, size);
        goto out;
    }
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
    /* the header entry of its data (verified byte by byte) must say the same */
    uint64_t bytes = (uint64_t)it.numel * size, want = dt_ck_xxh64(NULL, 0, 0);
    int found = bytes == 0;
    for (int i = 0; i < r->h.nr && !found; i++)
        if (strcmp(r->h.rg[i].name, name) == 0) {
            found = r->h.rg[i].len == bytes;
            want = r->h.rg[i].xxh64;
        }
    if (!found || want != it.xxh64) {
        dt_err("%s: %s disagrees with the checkpoint header (%s)", r->path, name,
               found ? "checksum" : "size or place of its data");
        goto out;
    }
    r->items = grow(r->items, r->nitems, &r->cap_items, sizeof *r->items);
    r->items[r->nitems++] = it;
    rc = DT_OK;
    goto out;
h5fail:
    dt_err("%s: cannot read %s: %s", r->path, name, dt_ck_h5_error());
out:
    h5_close(&a);
    h5_close(&s);
    h5_close(&t);
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
        h5_close(&gcpl);
        return dt_err("%s: cannot list group /%s: %s", r->path, prefix, dt_ck_h5_error());
    }
    h5_close(&gcpl);
    H5_index_t idx = (flags & H5P_CRT_ORDER_INDEXED) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        char name[DT_CK_NAME_MAX], full[DT_CK_NAME_MAX];
        ssize_t len = H5Lget_name_by_idx(g, ".", idx, H5_ITER_INC, i, name, sizeof name,
                                         H5P_DEFAULT);
        if (len < 0)
            return dt_err("%s: cannot list group /%s: %s", r->path, prefix, dt_ck_h5_error());
        int fl = snprintf(full, sizeof full, "%s%s%s", prefix, prefix[0] ? "/" : "", name);
        if ((size_t)len >= sizeof name || fl < 0 || (size_t)fl >= sizeof full)
            return dt_err("%s: a name in group /%s is longer than %d bytes", r->path, prefix,
                          DT_CK_NAME_MAX - 1);
        hid_t o = H5Oopen(g, name, H5P_DEFAULT);
        if (o < 0)
            return dt_err("%s: cannot open %s: %s", r->path, full, dt_ck_h5_error());
        H5I_type_t t = H5Iget_type(o);
        int rc = DT_OK;
        if (t == H5I_GROUP)
            rc = scan_group(r, o, full, depth + 1);
        else if (t == H5I_DATASET)
            rc = scan_dataset(r, o, full);
        if (H5Oclose(o) < 0 && rc == DT_OK)
            rc = dt_err("%s: cannot close %s: %s", r->path, full, dt_ck_h5_error());
        if (rc)
            return rc;
    }
    return DT_OK;
}

int dt_ck_open(dt_ck_reader **out, const char *path)
{
    DT_ASSERT(out && path);
    *out = NULL;
    dt_ck_h5_init();
    dt_ck_reader *r = dt_xcalloc(1, sizeof *r);
    r->path = dt_xstrdup(path);
    r->file = -1;
    hid_t root = -1;
    /* every byte first: HDF5 must never parse a damaged file */
    if (check_file(path, 1, &r->h))
        goto fail;
    if ((r->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
        dt_err("%s: cannot open HDF5 file: %s", path, dt_ck_h5_error());
        goto fail;
    }
    if (check_header(r->file, path) || load_attrs(r))
        goto fail;
    if ((root = H5Gopen2(r->file, "/", H5P_DEFAULT)) < 0) {
        dt_err("%s: cannot open root group: %s", path, dt_ck_h5_error());
        goto fail;
    }
    if (scan_group(r, root, "", 0))
        goto fail;
    h5_close(&root);
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
    h5_close(&root);
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
        int rc = dt_err("%s: cannot read %s: %s", r->path, name, dt_ck_h5_error());
        h5_close(&d);
        return rc;
    }
    if (h5_close(&d))
        return dt_err("%s: cannot close %s: %s", r->path, name, dt_ck_h5_error());
    uint64_t h = dt_ck_xxh64(out, bytes, 0);
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

/* ---- directory helpers ---- */

#define CK_PREFIX "ckpt-step"
#define CK_SUFFIX ".h5"

/* Parses "ckpt-step<1..18 digits>.h5" followed by `rest` (matched literally up to its end, then
 * digits if rest ends in ".tmp."). Returns the number of characters matched, 0 if no match. */
static size_t parse_digits(const char *s, int64_t *v)
{
    size_t k = 0;
    int64_t x = 0;
    while (s[k] >= '0' && s[k] <= '9' && k < 18)
        x = 10 * x + (s[k++] - '0');
    if (s[k] >= '0' && s[k] <= '9')
        return 0;
    *v = x;
    return k;
}

/* 1 if name is exactly "ckpt-step<digits>.h5". */
static int parse_ckpt_name(const char *name, int64_t *step)
{
    if (strncmp(name, CK_PREFIX, strlen(CK_PREFIX)) != 0)
        return 0;
    const char *p = name + strlen(CK_PREFIX);
    size_t k = parse_digits(p, step);
    return k > 0 && strcmp(p + k, CK_SUFFIX) == 0;
}

/* 1 if name is ".ckpt-step<digits>.h5.tmp.<pid>". */
static int parse_tmp_name(const char *name, int64_t *step, int64_t *pid)
{
    static const char tail[] = CK_SUFFIX ".tmp.";
    if (name[0] != '.' || strncmp(name + 1, CK_PREFIX, strlen(CK_PREFIX)) != 0)
        return 0;
    const char *p = name + 1 + strlen(CK_PREFIX);
    size_t k = parse_digits(p, step);
    if (k == 0 || strncmp(p + k, tail, strlen(tail)) != 0)
        return 0;
    p += k + strlen(tail);
    k = parse_digits(p, pid);
    return k > 0 && p[k] == '\0';
}

int dt_ck_step_path(char *out, size_t n, const char *dir, int64_t step)
{
    DT_ASSERT(out && dir && step >= 0);
    int k = snprintf(out, n, "%s%s" CK_PREFIX "%08lld" CK_SUFFIX, dir,
                     dir[0] && dir[strlen(dir) - 1] != '/' ? "/" : "", (long long)step);
    if (k < 0 || (size_t)k >= n)
        return dt_err("%s: checkpoint path longer than %zu bytes", dir, n);
    return DT_OK;
}

static int entry_cmp(const void *a, const void *b)
{
    const dt_ck_entry *x = a, *y = b;
    if (x->step != y->step)
        return x->step < y->step ? -1 : 1;
    return strcmp(x->name, y->name);
}

int dt_ck_scan_dir(const char *dir, dt_ck_entry **out)
{
    DT_ASSERT(dir && out);
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        return dt_err("%s: cannot list checkpoint directory: %s", dir, strerror(errno));
    }
    dt_ck_entry *e = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    for (;;) {
        errno = 0;
        if (!(de = readdir(d)))
            break;
        int64_t step;
        if (!parse_ckpt_name(de->d_name, &step) || strlen(de->d_name) >= sizeof e->name)
            continue;
        e = grow(e, n, &cap, sizeof *e);
        e[n].step = step;
        snprintf(e[n].name, sizeof e[n].name, "%s", de->d_name);
        n++;
    }
    int err = errno;
    closedir(d);
    if (err) {
        free(e);
        return dt_err("%s: cannot list checkpoint directory: %s", dir, strerror(err));
    }
    if (n)
        qsort(e, (size_t)n, sizeof *e, entry_cmp);
    *out = e;
    return n;
}

static int join_path(char *out, size_t n, const char *dir, const char *name)
{
    int k = snprintf(out, n, "%s%s%s", dir, dir[0] && dir[strlen(dir) - 1] != '/' ? "/" : "",
                     name);
    if (k < 0 || (size_t)k >= n)
        return dt_err("%s: path of %s too long", dir, name);
    return DT_OK;
}

int dt_ck_find_latest(const char *dir, char *out_path, size_t n, int64_t *step, char *report,
                      size_t m)
{
    return dt_ck_find_latest_if(dir, out_path, n, step, report, m, NULL, NULL);
}

int dt_ck_find_latest_if(const char *dir, char *out_path, size_t n, int64_t *step, char *report,
                         size_t m, int (*accept)(dt_ck_reader *r, void *ctx), void *ctx)
{
    DT_ASSERT(dir && out_path && n > 0);
    out_path[0] = '\0';
    size_t rlen = 0;
    int cut = 0;
    if (report && m)
        report[0] = '\0';
    dt_ck_entry *e = NULL;
    int cnt = dt_ck_scan_dir(dir, &e);
    if (cnt < 0)
        return DT_ERR;
    int found = 0;
    for (int i = cnt - 1; i >= 0 && !found; i--) {
        char path[PATH_MAX_LEN];
        if (join_path(path, sizeof path, dir, e[i].name)) {
            free(e);
            return DT_ERR;
        }
        dt_ck_reader *r = NULL;
        int ok = dt_ck_open(&r, path) == DT_OK && (!accept || accept(r, ctx) == DT_OK);
        dt_ck_close(r);
        if (ok) {
            if (strlen(path) >= n) {
                free(e);
                return dt_err("%s: path longer than the %zu bytes given", path, n);
            }
            snprintf(out_path, n, "%s", path);
            if (step)
                *step = e[i].step;
            found = 1;
        } else if (report && m && !cut) {
            /* keep room for "...\n" in case a later line does not fit */
            const char *msg = dt_err_msg();
            if (rlen + strlen("skipped \n") + strlen(msg) + 4 < m) {
                appendf(report, m, &rlen, "skipped %s\n", msg);
            } else {
                appendf(report, m, &rlen, "...\n");
                cut = 1;
            }
        }
    }
    free(e);
    return found;
}

/* Checks only the dtrain header (written last, so the file was completed) and the file size;
 * no data is read. 0 or DT_ERR. */
static int cheap_check(const char *path)
{
    hdr h;
    int rc = check_file(path, 0, &h);
    free(h.rg);
    return rc;
}

int dt_ck_prune(const char *dir, int keep)
{
    DT_ASSERT(dir);
    if (keep < 1)
        return dt_err("%s: keeping %d checkpoints: must keep at least 1", dir, keep);
    dt_ck_h5_init();
    dt_ck_entry *e = NULL;
    int cnt = dt_ck_scan_dir(dir, &e);
    if (cnt < 0)
        return DT_ERR;
    char path[PATH_MAX_LEN];
    int rc = DT_ERR, deleted = 0, newest_good = -1;
    for (int i = cnt - 1; i >= 0 && newest_good < 0; i--) {
        if (join_path(path, sizeof path, dir, e[i].name))
            goto out;
        if (cheap_check(path) == DT_OK)
            newest_good = i;
    }
    for (int i = 0; i < cnt - keep; i++) {
        if (i == newest_good)
            continue;
        if (join_path(path, sizeof path, dir, e[i].name))
            goto out;
        if (unlink(path) != 0 && errno != ENOENT) {
            dt_err("%s: cannot delete old checkpoint: %s", path, strerror(errno));
            goto out;
        }
        deleted++;
    }
    /* leftovers of crashed commits that a newer checkpoint has superseded */
    if (cnt > 0) {
        DIR *d = opendir(dir);
        if (!d) {
            dt_err("%s: cannot list checkpoint directory: %s", dir, strerror(errno));
            goto out;
        }
        struct dirent *de;
        int err = 0;
        for (;;) {
            errno = 0;
            if (!(de = readdir(d))) {
                err = errno;
                break;
            }
            int64_t step, pid;
            if (!parse_tmp_name(de->d_name, &step, &pid) || pid == (int64_t)getpid() ||
                step > e[cnt - 1].step)
                continue;
            if (join_path(path, sizeof path, dir, de->d_name)) {
                closedir(d);
                goto out;
            }
            if (unlink(path) != 0 && errno != ENOENT) {
                dt_err("%s: cannot delete leftover temporary file: %s", path, strerror(errno));
                closedir(d);
                goto out;
            }
            deleted++;
        }
        closedir(d);
        if (err) {
            dt_err("%s: cannot list checkpoint directory: %s", dir, strerror(err));
            goto out;
        }
    }
    rc = deleted;
out:
    free(e);
    return rc;
}
