/*
 * data_idx.c - see data_idx.h. The IDX format (http://yann.lecun.com/exdb/mnist/ "FILE FORMATS"):
 * a big-endian magic (0x00000803: ubyte, 3 dimensions; 0x00000801: ubyte, 1 dimension), the
 * dimensions as big-endian uint32, then the data row-major. Both files are read into memory of
 * the dataset's (dt_dataset_pages: huge pages where the kernel allows them); the dataset points
 * into it (the core's dt_dataset_free releases it).
 */
#include "data_idx.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "data.h"

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Reads a whole file into memory of the dataset's (slot: ds->map[slot], huge pages where the
 * kernel allows them, data.h's dt_dataset_pages: the sampler reads images in random order).
 * *data, *size: its bytes. Returns 0 or DT_ERR naming the file. */
static int load_file(dt_dataset *ds, int slot, const char *path, const uint8_t **data, size_t *size)
{
    int fd = dt_open_regular(path, "an IDX file");
    if (fd < 0)
        return DT_ERR;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return dt_err("%s: cannot stat: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode) || st.st_size == 0) {
        close(fd);
        return dt_err("%s: expected a non-empty regular file", path);
    }
    const size_t len = (size_t)st.st_size;
    uint8_t *buf = dt_dataset_pages(ds, slot, len);
    if (!buf) {
        close(fd);
        return dt_err("%s: cannot allocate %zu bytes to read it into", path, len);
    }
    for (size_t got = 0; got < len;) {
        const ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            const int e = errno;
            close(fd);
            return r < 0 ? dt_err("%s: read failed: %s", path, strerror(e))
                         : dt_err("%s: truncated: the file ended while reading (it shrank while "
                                  "being read?)",
                                  path);
        }
        got += (size_t)r;
    }
    close(fd);
    *data = buf;
    *size = len;
    return DT_OK;
}

int dt_idx_load(dt_dataset *ds, const char *images_path, const char *labels_path, int classes)
{
    memset(ds, 0, sizeof *ds);
    const uint8_t *img = NULL, *lbl = NULL;
    size_t img_len = 0, lbl_len = 0;
    if (load_file(ds, 0, images_path, &img, &img_len) != 0)
        goto fail;
    if (load_file(ds, 1, labels_path, &lbl, &lbl_len) != 0)
        goto fail;
    if (img_len < 16 || be32(img) != 0x00000803u) {
        dt_err("%s: not an IDX image file: expected magic 0x00000803 (ubyte, 3 dimensions)%s",
               images_path, img_len < 16 ? " and a 16-byte header" : "");
        goto fail;
    }
    if (lbl_len < 8 || be32(lbl) != 0x00000801u) {
        dt_err("%s: not an IDX label file: expected magic 0x00000801 (ubyte, 1 dimension)%s",
               labels_path, lbl_len < 8 ? " and an 8-byte header" : "");
        goto fail;
    }
    uint64_t n = be32(img + 4), h = be32(img + 8), w = be32(img + 12), nl = be32(lbl + 4);
    if (n == 0 || h == 0 || w == 0 || h > 4096 || w > 4096) {
        dt_err("%s: implausible dimensions %llu x %llu x %llu", images_path, (unsigned long long)n,
               (unsigned long long)h, (unsigned long long)w);
        goto fail;
    }
    if (img_len != 16 + n * h * w) {
        dt_err("%s: size %zu bytes, expected %llu (16-byte header + %llu images of %llux%llu)%s",
               images_path, img_len, (unsigned long long)(16 + n * h * w), (unsigned long long)n,
               (unsigned long long)h, (unsigned long long)w,
               img_len < 16 + n * h * w ? ": truncated" : "");
        goto fail;
    }
    if (lbl_len != 8 + nl) {
        dt_err("%s: size %zu bytes, expected %llu (8-byte header + %llu labels)%s", labels_path,
               lbl_len, (unsigned long long)(8 + nl), (unsigned long long)nl,
               lbl_len < 8 + nl ? ": truncated" : "");
        goto fail;
    }
    if (nl != n) {
        dt_err("%s has %llu labels but %s has %llu images: expected the same count", labels_path,
               (unsigned long long)nl, images_path, (unsigned long long)n);
        goto fail;
    }
    for (uint64_t i = 0; i < n; i++) {
        if (lbl[8 + i] >= classes) {
            dt_err("%s: label %u of sample %llu is out of range: expected 0..%d", labels_path,
                   lbl[8 + i], (unsigned long long)i, classes - 1);
            goto fail;
        }
    }
    ds->n = (int64_t)n;
    ds->c = 1;
    ds->h = (int)h;
    ds->w = (int)w;
    ds->classes = classes;
    ds->images = img + 16;
    ds->labels = lbl + 8;
    float mean = 0.5f, std = 0.5f;
    dt_dataset_set_norm(ds, &mean, &std);
    return DT_OK;
fail:
    dt_dataset_free(ds);
    return DT_ERR;
}
