/*
 * ckpt_fmt.h - the checkpoint format's vocabulary, below the container (ckpt.h includes this
 * file): item dtypes, name and rank limits, and the small helpers that the reader (ckpt.c), the
 * writer (ckpt_write.c) and the header module (ckpt_hdr.c) share. Callers use ckpt.h.
 */
#ifndef DT_CKPT_FMT_H
#define DT_CKPT_FMT_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define DT_CK_NAME_MAX 160 /* item names: at most 159 bytes */
#define DT_CK_MAX_DIM 4

typedef enum { DT_CK_F32, DT_CK_F64, DT_CK_I64, DT_CK_U8 } dt_ck_dtype;

/* "float32", "float64", "int64", "uint8". */
const char *dt_ck_dtype_name(dt_ck_dtype dtype);
/* Bytes per element: 4, 8, 8, 1. */
size_t dt_ck_dtype_size(dt_ck_dtype dtype);

/* Writes a shape as "(512, 784)", "(10)" or "()" into buf (always NUL-terminated). */
void dt_ck_format_shape(char *buf, size_t n, int ndim, const int64_t *dims);

/* ---- internal to ckpt.c and ckpt_write.c ---- */

#define FORMAT_NAME "dtrain-checkpoint"
#define FORMAT_VERSION 1
#define CKSUM_ATTR "xxh64" /* each dataset's checksum attribute */
#define PATH_MAX_LEN 4096

/* Appends printf output at buf + *len (n bytes in all), advancing *len; truncates quietly. */
DT_PRINTF(4, 5) void dt_ck_appendf(char *buf, size_t n, size_t *len, const char *fmt, ...);
/* snprintf for messages built from paths: truncation is acceptable there. */
DT_PRINTF(3, 4) void dt_ck_say(char *buf, size_t n, const char *fmt, ...);
/* 1 when t is one of the dt_ck_dtype values. */
int dt_ck_dtype_ok(dt_ck_dtype t);
/* The HDF5 file (little-endian) and memory (native) types of t. */
hid_t dt_ck_file_type(dt_ck_dtype t);
hid_t dt_ck_mem_type(dt_ck_dtype t);

#endif
