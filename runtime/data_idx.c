/*
 * data_idx.c - see data_idx.h. The IDX format (http://yann.lecun.com/exdb/mnist/ "FILE FORMATS"):
 * a big-endian magic (0x00000803: ubyte, 3 dimensions; 0x00000801: ubyte, 1 dimension), the
 * dimensions as big-endian uint32, then the data row-major. Both files are mmap'd; the dataset
 * points into the maps (the core's dt_dataset_free unmaps them). A file of at most a quarter of
 * the machine's memory is mapped with MAP_POPULATE: its page tables are filled at load, once,
 * instead of by page faults inside the first epoch's steps (the mlp's batch gather at 128 took
 * 1.5 ms in step 1 and ~0.5 ms through step 30 against 50 us later: docs/performance.md).
 */
#include "data_idx.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "data.h"

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Whether a file of `bytes` is mapped with MAP_POPULATE: at most a quarter of physical memory
 * (a bigger dataset pages in as it is read, as before) */
static int populate(size_t bytes)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0)
        return 0;
    return bytes <= (size_t)pages * (size_t)page / 4;
}

/* Maps a whole file read-only. Returns 0 or DT_ERR. */
static int map_file(const char *path, void **map, size_t *len)
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
    int flags = MAP_PRIVATE;
#ifdef MAP_POPULATE
    if (populate((size_t)st.st_size))
        flags |= MAP_POPULATE;
#endif
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, flags, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return dt_err("%s: cannot mmap: %s", path, strerror(errno));
    *map = p;
    *len = (size_t)st.st_size;
    return DT_OK;
}

int dt_idx_load(dt_dataset *ds, const char *images_path, const char *labels_path, int classes)
{
    memset(ds, 0, sizeof *ds);
    if (map_file(images_path, &ds->map[0], &ds->map_len[0]) != 0)
        goto fail;
    if (map_file(labels_path, &ds->map[1], &ds->map_len[1]) != 0)
        goto fail;
    const uint8_t *img = ds->map[0], *lbl = ds->map[1];
    if (ds->map_len[0] < 16 || be32(img) != 0x00000803u) {
        dt_err("%s: not an IDX image file: expected magic 0x00000803 (ubyte, 3 dimensions)%s",
               images_path, ds->map_len[0] < 16 ? " and a 16-byte header" : "");
        goto fail;
    }
    if (ds->map_len[1] < 8 || be32(lbl) != 0x00000801u) {
        dt_err("%s: not an IDX label file: expected magic 0x00000801 (ubyte, 1 dimension)%s",
               labels_path, ds->map_len[1] < 8 ? " and an 8-byte header" : "");
        goto fail;
    }
    uint64_t n = be32(img + 4), h = be32(img + 8), w = be32(img + 12), nl = be32(lbl + 4);
    if (n == 0 || h == 0 || w == 0 || h > 4096 || w > 4096) {
        dt_err("%s: implausible dimensions %llu x %llu x %llu", images_path, (unsigned long long)n,
               (unsigned long long)h, (unsigned long long)w);
        goto fail;
    }
    if (ds->map_len[0] != 16 + n * h * w) {
        dt_err("%s: size %zu bytes, expected %llu (16-byte header + %llu images of %llux%llu)%s",
               images_path, ds->map_len[0], (unsigned long long)(16 + n * h * w),
               (unsigned long long)n, (unsigned long long)h, (unsigned long long)w,
               ds->map_len[0] < 16 + n * h * w ? ": truncated" : "");
        goto fail;
    }
    if (ds->map_len[1] != 8 + nl) {
        dt_err("%s: size %zu bytes, expected %llu (8-byte header + %llu labels)%s", labels_path,
               ds->map_len[1], (unsigned long long)(8 + nl), (unsigned long long)nl,
               ds->map_len[1] < 8 + nl ? ": truncated" : "");
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
    /* Every epoch reads all of it: start paging it in now. */
    madvise(ds->map[0], ds->map_len[0], MADV_WILLNEED);
    float mean = 0.5f, std = 0.5f;
    dt_dataset_set_norm(ds, &mean, &std);
    return DT_OK;
fail:
    dt_dataset_free(ds);
    return DT_ERR;
}
