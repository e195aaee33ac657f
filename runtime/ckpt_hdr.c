/*
 * ckpt_hdr.c - the dtrain header of a checkpoint file (see ckpt_hdr.h).
 *
 * HDF5 trusts its metadata: a flipped byte in it can make the library misbehave (HDF5 1.10.8 loops
 * forever reading a damaged global heap, where variable-length strings live). So the file's first
 * U bytes (HDF5's "user block", which HDF5 skips) hold a header written last, and every byte after
 * it is covered by a checksum: each dataset's raw data (found with H5Dget_offset) by its own,
 * everything else (HDF5 metadata) by one more. dt_ck_open verifies all of them with plain pread
 * before it calls H5Fopen, so HDF5 only ever reads bytes identical to the ones verified at commit.
 * Little-endian fields:
 *   0  "DTRAINCK"     8  u32 header version (1)   12  u32 U (power of 2, >= 512)
 *   16 u64 file size  24 u64 XXH64 of the U header bytes with this field zeroed
 *   (bytes 0..31 keep this meaning in every version, so any version's checksum can be checked)
 *   32 u64 XXH64 of the metadata bytes (all of [U, size) outside the datasets' data, in order)
 *   40 u32 number of entries   44 u32 0
 *   48 entries, by increasing offset: u64 offset, u64 length, u64 XXH64, u16 name length, name
 */
#include "ckpt_hdr.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "xxh64.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ckpt_hdr.c writes header fields in host order: little-endian hosts only"
#endif

#define HDR_MAGIC "DTRAINCK"
#define HDR_VERSION 1
#define HDR_FIXED 48
#define HDR_ENTRY 26
#define HDR_MAX ((uint64_t)64 << 20)
#define SLAB_BYTES ((size_t)8 << 20) /* verification reads files in pieces of this size */

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
    const dt_ck_range *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* XXH64 of a header block, its own checksum field counted as zero. */
static uint64_t header_hash(const unsigned char *hb, uint64_t u)
{
    static const unsigned char zero[8];
    dt_xxh64_state s;
    dt_xxh64_init(&s, 0);
    dt_xxh64_update(&s, hb, 24);
    dt_xxh64_update(&s, zero, 8);
    dt_xxh64_update(&s, hb + 32, (size_t)u - 32);
    return dt_xxh64_digest(&s);
}

uint64_t dt_ck_hdr_block_size(int entries, size_t name_bytes)
{
    uint64_t need = HDR_FIXED + (uint64_t)entries * HDR_ENTRY + name_bytes, u = 512;
    while (u < need)
        u *= 2;
    return u;
}

/* ---- writing ---- */

int dt_ck_hdr_seal(unsigned char *img, uint64_t size, uint64_t u, dt_ck_range *rg, int nr,
                   char *why, size_t n)
{
    qsort(rg, (size_t)nr, sizeof *rg, range_cmp);
    uint64_t end = u;
    dt_xxh64_state ms;
    dt_xxh64_init(&ms, 0);
    for (int i = 0; i < nr; i++) {
        if (rg[i].off < end || rg[i].len > size || rg[i].off > size - rg[i].len) {
            snprintf(why, n, "the data of %s lies outside the file or overlaps", rg[i].name);
            return -1;
        }
        dt_xxh64_update(&ms, img + end, (size_t)(rg[i].off - end));
        rg[i].xxh64 = dt_xxh64(img + rg[i].off, (size_t)rg[i].len, 0);
        end = rg[i].off + rg[i].len;
    }
    dt_xxh64_update(&ms, img + end, (size_t)(size - end));
    unsigned char *hb = img;
    memset(hb, 0, (size_t)u);
    memcpy(hb, HDR_MAGIC, 8);
    put32(hb + 8, HDR_VERSION);
    put32(hb + 12, (uint32_t)u);
    put64(hb + 16, size);
    put64(hb + 32, dt_xxh64_digest(&ms));
    put32(hb + 40, (uint32_t)nr);
    size_t pos = HDR_FIXED;
    for (int i = 0; i < nr; i++) {
        size_t nl = strlen(rg[i].name);
        DT_ASSERT(pos + HDR_ENTRY + nl <= u);
        put64(hb + pos, rg[i].off);
        put64(hb + pos + 8, rg[i].len);
        put64(hb + pos + 16, rg[i].xxh64);
        put16(hb + pos + 24, (uint16_t)nl);
        memcpy(hb + pos + HDR_ENTRY, rg[i].name, nl);
        pos += HDR_ENTRY + nl;
    }
    put64(hb + 24, header_hash(hb, u));
    return 0;
}

/* ---- checking ---- */

/* Hashes bytes [a, b) of fd into s. 0, or -1 with errno (0 when the file ended early). */
static int hash_span(int fd, uint64_t a, uint64_t b, dt_xxh64_state *s, unsigned char *buf)
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
        dt_xxh64_update(s, buf, (size_t)r);
        a += (uint64_t)r;
    }
    return 0;
}

/* Hashes [start, end) of fd: range i (sorted, disjoint, inside) into got[i], the rest into *meta.
 * 0, or -1 with errno. */
static int hash_file(int fd, uint64_t start, uint64_t end, const dt_ck_range *rg, int nr,
                     uint64_t *got, uint64_t *meta)
{
    unsigned char *buf = dt_xmalloc(SLAB_BYTES, 1);
    dt_xxh64_state ms, st;
    uint64_t pos = start;
    int rc = -1;
    dt_xxh64_init(&ms, 0);
    for (int i = 0; i < nr; i++) {
        if (hash_span(fd, pos, rg[i].off, &ms, buf))
            goto out;
        dt_xxh64_init(&st, 0);
        if (hash_span(fd, rg[i].off, rg[i].off + rg[i].len, &st, buf))
            goto out;
        got[i] = dt_xxh64_digest(&st);
        pos = rg[i].off + rg[i].len;
    }
    if (hash_span(fd, pos, end, &ms, buf))
        goto out;
    *meta = dt_xxh64_digest(&ms);
    rc = 0;
out:
    free(buf);
    return rc;
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

/* Opens path for reading after checking it is a regular file. 0 with *fd and *size, or DT_ERR. */
static int open_regular(const char *path, int *fd, long long *size)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return dt_err("%s: cannot open checkpoint: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return dt_err("%s: not a regular file", path);
    *size = (long long)st.st_size;
    if ((*fd = open(path, O_RDONLY)) < 0)
        return dt_err("%s: cannot open checkpoint: %s", path, strerror(errno));
    return DT_OK;
}

/* A file whose first r bytes (fixed) do not start with the magic: says what it is instead. */
static int explain_no_magic(const char *path, int fd, const unsigned char *fixed, ssize_t r,
                            long long size)
{
    static const unsigned char zero[8];
    int sig = has_hdf5_signature(fd, size);
    if (sig < 0)
        return dt_err("%s: cannot read: %s", path, strerror(errno));
    if (r == HDR_FIXED && size >= 512 && memcmp(fixed, zero, 8) == 0)
        return dt_err("%s: incomplete checkpoint (no dtrain header: its writer did not finish)",
                      path);
    if (sig)
        return dt_err("%s: not a dtrain checkpoint (an HDF5 file without a dtrain header)", path);
    return dt_err("%s: not an HDF5 file", path);
}

/* Reads the header block (*hb, malloc'd, *u bytes) after checking the fixed part, its own
 * checksum, its version and the file size it records (*written). 0 or DT_ERR. */
static int read_block(const char *path, int fd, long long size, unsigned char **hb, uint64_t *u,
                      uint64_t *written)
{
    unsigned char fixed[HDR_FIXED];
    ssize_t r = pread(fd, fixed, HDR_FIXED, 0);
    if (r < 0)
        return dt_err("%s: cannot read: %s", path, strerror(errno));
    if (r < 8 || memcmp(fixed, HDR_MAGIC, 8) != 0)
        return explain_no_magic(path, fd, fixed, r, size);
    if (r < HDR_FIXED)
        return dt_err("%s: truncated file (%lld bytes)", path, size);
    uint32_t version = get32(fixed + 8);
    *u = get32(fixed + 12);
    *written = get64(fixed + 16);
    if (*u < 512 || *u > HDR_MAX || (*u & (*u - 1)))
        return dt_err("%s: corrupted checkpoint header (block size %llu)", path,
                      (unsigned long long)*u);
    if ((uint64_t)size < *u)
        return dt_err("%s: truncated file (%lld bytes, shorter than its header)", path, size);
    *hb = dt_xmalloc((size_t)*u, 1);
    if (pread(fd, *hb, (size_t)*u, 0) != (ssize_t)*u)
        return dt_err("%s: cannot read its header: %s", path, strerror(errno));
    if (header_hash(*hb, *u) != get64(*hb + 24))
        return dt_err("%s: corrupted checkpoint header (checksum mismatch)", path);
    if (version != HDR_VERSION)
        return dt_err("%s: unsupported checkpoint header version %u (this dtrain reads %d)", path,
                      (unsigned)version, HDR_VERSION);
    if ((uint64_t)size < *written)
        return dt_err("%s: truncated file (%lld of %llu bytes)", path, size,
                      (unsigned long long)*written);
    if ((uint64_t)size > *written)
        return dt_err("%s: file is %lld bytes, %llu were written", path, size,
                      (unsigned long long)*written);
    return DT_OK;
}

/* Parses the entries of header block hb (u bytes, file of `written` bytes) into h. */
static int parse_entries(const char *path, const unsigned char *hb, uint64_t u, uint64_t written,
                         dt_ck_hdr *h)
{
    uint32_t nr = get32(hb + 40);
    if (nr > (u - HDR_FIXED) / HDR_ENTRY)
        return dt_err("%s: corrupted checkpoint header (%u entries)", path, (unsigned)nr);
    h->ublock = u;
    h->size = written;
    h->rg = dt_xcalloc(nr ? nr : 1, sizeof *h->rg);
    uint64_t pos = HDR_FIXED, end = u;
    for (uint32_t i = 0; i < nr; i++) {
        dt_ck_range *g = &h->rg[i];
        size_t nl = pos + HDR_ENTRY <= u ? get16(hb + pos + 24) : 0;
        if (pos + HDR_ENTRY + nl > u || nl == 0 || nl >= DT_CK_NAME_MAX)
            return dt_err("%s: corrupted checkpoint header (entry %u)", path, (unsigned)i);
        g->off = get64(hb + pos);
        g->len = get64(hb + pos + 8);
        g->xxh64 = get64(hb + pos + 16);
        memcpy(g->name, hb + pos + HDR_ENTRY, nl);
        g->name[nl] = '\0';
        pos += HDR_ENTRY + nl;
        if (g->off < end || g->len > written || g->off > written - g->len)
            return dt_err("%s: corrupted checkpoint header (entry %u: %s)", path, (unsigned)i,
                          g->name);
        end = g->off + g->len;
        h->nr++;
    }
    return DT_OK;
}

/* Hashes every byte after the header block and compares with the header's checksums. */
static int verify_bytes(const char *path, int fd, const unsigned char *hb, const dt_ck_hdr *h)
{
    uint64_t meta, *got = dt_xmalloc(h->nr ? (size_t)h->nr : 1, sizeof *got);
    int rc = DT_ERR;
    if (hash_file(fd, h->ublock, h->size, h->rg, h->nr, got, &meta)) {
        if (errno == 0)
            dt_err("%s: truncated file (shrank while being read)", path);
        else
            dt_err("%s: cannot read: %s", path, strerror(errno));
        goto out;
    }
    for (int i = 0; i < h->nr; i++)
        if (got[i] != h->rg[i].xxh64) {
            dt_err("%s: checksum mismatch in %s (stored xxh64 0x%016llx, computed 0x%016llx)", path,
                   h->rg[i].name, (unsigned long long)h->rg[i].xxh64, (unsigned long long)got[i]);
            goto out;
        }
    if (meta != get64(hb + 32)) {
        dt_err("%s: corrupted HDF5 metadata (checksum mismatch outside the datasets' data)", path);
        goto out;
    }
    rc = DT_OK;
out:
    free(got);
    return rc;
}

int dt_ck_hdr_check(const char *path, int full, dt_ck_hdr *h)
{
    unsigned char *hb = NULL;
    uint64_t u = 0, written = 0;
    long long size = 0;
    int fd = -1, rc = DT_ERR;
    memset(h, 0, sizeof *h);
    if (open_regular(path, &fd, &size))
        return DT_ERR;
    if (read_block(path, fd, size, &hb, &u, &written) == DT_OK &&
        parse_entries(path, hb, u, written, h) == DT_OK &&
        (!full || verify_bytes(path, fd, hb, h) == DT_OK))
        rc = DT_OK;
    close(fd);
    free(hb);
    if (rc) {
        free(h->rg);
        h->rg = NULL;
        h->nr = 0;
    }
    return rc;
}
