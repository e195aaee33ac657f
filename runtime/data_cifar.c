/*
 * data_cifar.c - CIFAR-10 binary batches (https://www.cs.toronto.edu/~kriz/cifar.html, "Binary
 * version"): each file is 10000 records of <1 x label><3072 x pixel>, the pixels the red, green
 * and blue 32x32 planes in row-major order, i.e. one record is already a (3, 32, 32) NCHW image.
 *
 * The records interleave labels and pixels, so they are copied (de-interleaved) into two heap
 * blocks rather than mmap'd: images (N, 3, 32, 32) uint8 and labels (N) uint8. Files are read in
 * chunks with read(2) into a fixed buffer; nothing is allocated per record.
 */
#include "data_cifar.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "data.h"

enum {
    CIFAR_PIXELS = 3 * 32 * 32,      /* 3072 */
    CIFAR_RECORD = 1 + CIFAR_PIXELS, /* 3073 */
    CIFAR_PER_FILE = 10000,          /* records in an official batch file */
    CIFAR_CHUNK = 256                /* records per read(2) */
};

/* Checks one file's size; returns its record count or DT_ERR. */
static int64_t cifar_records(const char *path)
{
    struct stat st;
    if (dt_check_regular_file(path, "a CIFAR-10 binary batch file") != 0)
        return DT_ERR;
    if (stat(path, &st) != 0)
        return dt_err("%s: cannot open: %s (expected a CIFAR-10 binary batch file)", path,
                      strerror(errno));
    if (!S_ISREG(st.st_mode) || st.st_size == 0)
        return dt_err("%s: expected a non-empty regular file (a CIFAR-10 binary batch file)", path);
    const long long full = (long long)CIFAR_RECORD * CIFAR_PER_FILE;
    long long size = (long long)st.st_size;
    if (size % CIFAR_RECORD != 0)
        return dt_err("%s: size %lld bytes is not a whole number of %d-byte records (1 label byte "
                      "+ 3x32x32 pixel bytes): truncated or not a CIFAR-10 binary file; an "
                      "official batch file is %lld bytes",
                      path, size, CIFAR_RECORD, full);
    if (size > full)
        return dt_err("%s: size %lld bytes holds %lld records: expected at most %d (%lld bytes), "
                      "as a CIFAR-10 binary batch file",
                      path, size, size / CIFAR_RECORD, CIFAR_PER_FILE, full);
    return size / CIFAR_RECORD;
}

/* Reads exactly len bytes at the current offset. Returns 0 or DT_ERR. */
static int read_full(int fd, const char *path, uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return dt_err("%s: read failed: %s", path, strerror(errno));
        if (r == 0)
            return dt_err(
                "%s: truncated: the file ended while reading (it shrank while being read?)", path);
        got += (size_t)r;
    }
    return DT_OK;
}

/* Copies the first `want` records of path into images/labels starting at record `at`. */
static int cifar_read(const char *path, int64_t want, uint8_t *images, uint8_t *labels, int64_t at,
                      uint8_t *buf)
{
    int fd = dt_open_regular(path, "a CIFAR-10 binary batch file");
    if (fd < 0)
        return DT_ERR;
    int rc = DT_OK;
    for (int64_t r = 0; r < want && rc == DT_OK;) {
        int64_t k = want - r < CIFAR_CHUNK ? want - r : CIFAR_CHUNK;
        rc = read_full(fd, path, buf, (size_t)k * CIFAR_RECORD);
        for (int64_t j = 0; j < k && rc == DT_OK; j++, r++) {
            const uint8_t *rec = buf + (size_t)j * CIFAR_RECORD;
            if (rec[0] > 9) {
                rc = dt_err("%s: label %u of record %lld is out of range: expected 0..9", path,
                            rec[0], (long long)r);
                break;
            }
            labels[at + r] = rec[0];
            memcpy(images + (size_t)(at + r) * CIFAR_PIXELS, rec + 1, CIFAR_PIXELS);
        }
    }
    close(fd);
    return rc;
}

int dt_cifar10_load(dt_dataset *ds, const char *const *paths, int npaths, int64_t limit)
{
    static const float mean[3] = {0.4914f, 0.4822f, 0.4465f};
    static const float std[3] = {0.2470f, 0.2435f, 0.2616f};
    DT_ASSERT(npaths >= 1);
    memset(ds, 0, sizeof *ds);
    int64_t *count = dt_xmalloc((size_t)npaths, sizeof *count);
    int64_t total = 0;
    for (int f = 0; f < npaths; f++) {
        count[f] = cifar_records(paths[f]);
        if (count[f] < 0) {
            free(count);
            return DT_ERR;
        }
        total += count[f];
    }
    if (limit > 0 && limit < total)
        total = limit;
    uint8_t *images = dt_xmalloc((size_t)total, CIFAR_PIXELS);
    uint8_t *labels = dt_xmalloc((size_t)total, 1);
    uint8_t *buf = dt_xmalloc(CIFAR_CHUNK, CIFAR_RECORD);
    ds->owned[0] = images;
    ds->owned[1] = labels;
    int rc = DT_OK;
    int64_t at = 0;
    for (int f = 0; f < npaths && at < total && rc == DT_OK; f++) {
        int64_t want = total - at < count[f] ? total - at : count[f];
        rc = cifar_read(paths[f], want, images, labels, at, buf);
        at += want;
    }
    free(buf);
    free(count);
    if (rc != DT_OK) {
        dt_dataset_free(ds);
        return DT_ERR;
    }
    snprintf(ds->name, sizeof ds->name, "cifar10");
    ds->n = total;
    ds->c = 3;
    ds->h = 32;
    ds->w = 32;
    ds->classes = 10;
    ds->images = images;
    ds->labels = labels;
    dt_dataset_set_norm(ds, mean, std);
    return DT_OK;
}
