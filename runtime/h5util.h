/*
 * h5util.h - HDF5 helpers shared by the checkpoint container (ckpt.c, ckpt_write.c), the metrics
 * log (metrics.c) and the HDF5 dataset reader (data_h5.c): one-time set-up, error messages that a
 * user can read, closing any handle, scalar attributes.
 *
 * HDF5's automatic error printing is replaced once for the whole process (dt_h5_init): its raw
 * error stack is never printed; a failing call's caller records one message built from
 * dt_h5_error() instead. Every HDF5 API call clears the error stack when it starts, so the
 * replacement handler keeps the last failure's messages for dt_h5_error() to use after clean-up
 * calls. HDF5's clean-up at exit is off (H5dont_atexit): HDF5 1.10 crashes there on a file whose
 * H5Fclose failed to flush (a full disk), and dtrain closes every file it opens itself.
 */
#ifndef DT_H5UTIL_H
#define DT_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

/* Switches off HDF5's automatic error printing (the handler only records the failure) and its
 * clean-up at exit, for the process (idempotent; every module that touches HDF5 calls it first,
 * launch/main.c once at start, before anything else initializes HDF5). */
void dt_h5_init(void);

/* What went wrong, from HDF5's current error stack (or, when a clean-up call cleared it, from the
 * last failure recorded), then forgets it: the strerror text when a driver recorded an errno
 * ("No space left on device"), else the innermost message ("unknown HDF5 error" if there is
 * none). Static buffer, overwritten by the next call. */
const char *dt_h5_error(void);

/* The errno recorded on HDF5's current error stack ("errno = 28" in a driver's message; the last
 * failure's when the stack is empty), or 0. Forgets nothing. */
int dt_h5_errno(void);

/* Closes an HDF5 handle of any kind (file, group, dataset, dataspace, datatype, attribute,
 * property list) if *id >= 0 and sets *id = -1. Returns 0, or -1 when closing failed (the
 * message on HDF5's error stack). */
int dt_h5_close(hid_t *id);

/* Number of objects of any kind still open in file (H5Fget_obj_count, the file itself
 * included), or -1. For checks that nothing leaked. */
long dt_h5_open_objects(hid_t file);

/* Writes a scalar variable-length UTF-8 string attribute `name` on loc. 0, or -1 (HDF5 error on
 * the stack; every handle closed). */
int dt_h5_write_str_attr(hid_t loc, const char *name, const char *value);
/* Writes a scalar numeric attribute of file type ftype from *v of memory type mtype. 0 or -1. */
int dt_h5_write_num_attr(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *v);

/* Reads scalar attribute a as a string: strings as they are, integers in decimal, floats %.17g,
 * "(N values)" for a non-scalar, "(unsupported type)" otherwise. 0 with *out (malloc'd), or -1
 * (HDF5 error on the stack, *out = NULL). */
int dt_h5_attr_to_string(hid_t a, char **out);
/* Attribute `name` of loc as a string: 1 with *out (malloc'd), 0 when missing, -1 on error. */
int dt_h5_get_attr_string(hid_t loc, const char *name, char **out);

/* A file built in memory by HDF5's core driver, without backing store: HDF5 never touches the
 * disk, so it can fail only for lack of memory, and the caller writes the image with plain
 * write(2) (whose errno says exactly what went wrong). The driver allocates the image through
 * callbacks that keep it at H5Fclose: after the close, mem holds the finished file (malloc'd, the
 * caller frees it), byte for byte what the sec2 driver would have written. */
typedef struct dt_h5_image {
    unsigned char *mem; /* after H5Fclose: the image, malloc'd; NULL before */
    size_t cap;         /* bytes allocated (a multiple of the driver's increment) */
} dt_h5_image;

/* Sets fapl to build files in memory into *im (which must outlive the file). 0 or -1. */
int dt_h5_image_fapl(hid_t fapl, dt_h5_image *im);

/* The size of the finished image of a file with a user block of ublock bytes, from its version 2
 * superblock (file format of HDF5 1.8, H5F_LIBVER_V18): the end-of-file address, which counts
 * the user block. 0 when there is no such superblock at ublock. */
uint64_t dt_h5_image_size(const dt_h5_image *im, uint64_t ublock);

#endif
