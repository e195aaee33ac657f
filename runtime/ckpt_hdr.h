/*
 * ckpt_hdr.h - the dtrain header of a checkpoint file: byte-level integrity, checked before HDF5
 * parses anything. Internal to the checkpoint modules (ckpt.c, ckpt_write.c, ckpt_dir.c); the
 * layout is described in ckpt_hdr.c and, for users, in ckpt.h.
 */
#ifndef DT_CKPT_HDR_H
#define DT_CKPT_HDR_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt_fmt.h" /* DT_CK_NAME_MAX */

/* One checksummed range of a file: a dataset's raw data. */
typedef struct dt_ck_range {
    uint64_t off, len, xxh64;
    char name[DT_CK_NAME_MAX];
    int item; /* writer: index of its item */
} dt_ck_range;

/* What a check learned: the header block size, the file size and the datasets' ranges. */
typedef struct dt_ck_hdr {
    uint64_t ublock, size;
    int nr;
    dt_ck_range *rg; /* malloc'd */
} dt_ck_hdr;

/* Size of the header block (HDF5's user block) for `entries` ranges whose names have
 * name_bytes bytes in all: the smallest power of 2 >= 512 that holds them. */
uint64_t dt_ck_hdr_block_size(int entries, size_t name_bytes);

/* Seals an in-memory file image img of `size` bytes whose first u bytes are the header block:
 * sorts rg (nr ranges) by offset, checks they lie in [u, size) without overlapping, hashes each
 * range into rg[i].xxh64 (the item's expected hash is the caller's to compare) and everything
 * else after the block into the metadata checksum, and writes the header into img[0, u).
 * Returns 0, or -1 with `why` naming the range outside the file or overlapping. */
int dt_ck_hdr_seal(unsigned char *img, uint64_t size, uint64_t u, dt_ck_range *rg, int nr,
                   char *why, size_t n);

/* Checks the dtrain header of path and, when `full`, the checksum of every byte after it.
 * Returns 0 with *h filled (free h->rg), or DT_ERR with one message (listed at dt_ck_open). */
int dt_ck_hdr_check(const char *path, int full, dt_ck_hdr *h);

#endif
