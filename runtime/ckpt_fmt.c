/*
 * ckpt_fmt.c - see ckpt_fmt.h: the checkpoint's dtypes and the small helpers the container's
 * reader (ckpt.c) and writer (ckpt_write.c) share.
 */
#include "ckpt_fmt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ---- */

void dt_ck_appendf(char *buf, size_t n, size_t *len, const char *fmt, ...)
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
void dt_ck_say(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

static const char *const dtype_names[] = {"float32", "float64", "int64", "uint8"};
static const size_t dtype_sizes[] = {4, 8, 8, 1};

int dt_ck_dtype_ok(dt_ck_dtype t) { return (int)t >= (int)DT_CK_F32 && (int)t <= (int)DT_CK_U8; }

const char *dt_ck_dtype_name(dt_ck_dtype dtype)
{
    return dt_ck_dtype_ok(dtype) ? dtype_names[dtype] : "invalid";
}

size_t dt_ck_dtype_size(dt_ck_dtype dtype)
{
    DT_ASSERT(dt_ck_dtype_ok(dtype));
    return dtype_sizes[dtype];
}

hid_t dt_ck_file_type(dt_ck_dtype t)
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

hid_t dt_ck_mem_type(dt_ck_dtype t)
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
    dt_ck_appendf(buf, n, &len, "(");
    for (int i = 0; i < ndim; i++)
        dt_ck_appendf(buf, n, &len, "%s%lld", i ? ", " : "", (long long)dims[i]);
    dt_ck_appendf(buf, n, &len, ")");
}
