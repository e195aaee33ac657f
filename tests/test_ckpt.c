/*
 * test_ckpt.c - the checkpoint container and the metrics log (runtime/ckpt.h, runtime/metrics.h):
 *
 *   - XXH64 against reference vectors (python-xxhash / the xxHash spec) and streamed == one-shot;
 *   - bitwise round trip of every dtype at ranks 0..4 (random bit patterns, NaN payloads
 *     included), zero-size items, dot-named items, attributes, listing order, byte-identical files;
 *   - each verification failure gives its own message: truncated file, a flipped byte in a
 *     dataset's raw data, in HDF5's metadata or in the dtrain header, a file whose writer did not
 *     finish, bytes appended, a foreign HDF5 file, a text file, a missing file, shape/dtype
 *     mismatch and a missing item on read;
 *   - a failed commit (missing or read-only directory, injected failures) leaves nothing under the
 *     final name and no temporary file; a crash (DTRAIN_CKPT_FAULT in a fork()ed child) leaves the
 *     final name absent or holding the previous complete checkpoint, and find_latest ignores the
 *     leftover temporary file;
 *   - find_latest skips a corrupted newer checkpoint, reporting it; prune keeps the last K;
 *   - metrics: buffered appends, flushes every N, truncate-on-resume; HDF5 rows and CSV lines
 *     agree; a SIGKILLed writer loses only its unflushed rows.
 *
 * usage: test_ckpt   (works in a fresh directory under $TMPDIR or /tmp, removed when all checks
 *                    pass; TEST_CKPT_VERBOSE=1 prints every expected error message)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <hdf5.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "ckpt.h"
#include "ckpt_dir.h"
#include "common.h"
#include "metrics.h"

static char root[512];

/* CHECK that rc is DT_ERR and the recorded message contains `want`. */
#define CHECK_ERR(rc, want) check_err((rc), (want), __FILE__, __LINE__)
static void check_err(int rc, const char *want, const char *file, int line)
{
    if (rc == DT_ERR && strstr(dt_err_msg(), want)) {
        if (getenv("TEST_CKPT_VERBOSE"))
            printf("  expected error: %s\n", dt_err_msg());
        check_passed++;
        return;
    }
    check_failed++;
    fprintf(stderr, "FAIL %s:%d: rc %d, message \"%s\", expected DT_ERR with \"%s\"\n", file, line,
            rc, dt_err_msg(), want);
}

static uint64_t rng_state = 0x243F6A8885A308D3ULL;

/* splitmix64 */
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void fill_random(void *p, size_t n)
{
    unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        c[i] = (unsigned char)rnd();
}

static void path_in(char *out, size_t n, const char *dir, const char *name)
{
    int k = snprintf(out, n, "%s/%s", dir, name);
    DT_ASSERT(k > 0 && (size_t)k < n);
}

static void make_dir(char *out, size_t n, const char *name)
{
    path_in(out, n, root, name);
    DT_ASSERT(mkdir(out, 0755) == 0);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* Number of entries in dir whose name starts with '.', other than "." and "..". */
static int count_hidden(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    DT_ASSERT(d);
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] == '.' && strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static int count_entries(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    DT_ASSERT(d);
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    DT_ASSERT(f);
    fputs(text, f);
    DT_ASSERT(fclose(f) == 0);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

/* ---- a small standard checkpoint: model/fc1.weight (256, 784) float32 and friends ---- */

#define FC1_OUT 256
#define FC1_IN 784
static float fc1_w[FC1_OUT * FC1_IN];

/* Commits a checkpoint at path whose train/step holds `tag` and whose fc1 weights depend on it. */
static int commit_small(const char *path, int64_t tag)
{
    static float bias[FC1_OUT];
    uint64_t save = rng_state;
    rng_state = (uint64_t)tag * 7919u + 1;
    for (int i = 0; i < FC1_OUT * FC1_IN; i++)
        fc1_w[i] = (float)(rnd() >> 40) / (float)(1 << 24) - 0.5f;
    for (int i = 0; i < FC1_OUT; i++)
        bias[i] = (float)i;
    rng_state = save;
    const int64_t wd[2] = {FC1_OUT, FC1_IN}, bd[1] = {FC1_OUT};
    dt_ck_writer *w = dt_ck_begin(path);
    dt_ck_add(w, "model/fc1.weight", DT_CK_F32, 2, wd, fc1_w);
    dt_ck_add(w, "model/fc1.bias", DT_CK_F32, 1, bd, bias);
    dt_ck_add_copy(w, "train/step", DT_CK_I64, 0, NULL, &tag);
    dt_ck_attr(w, "model", "mlp");
    return dt_ck_commit(w);
}

/* train/step of the checkpoint at path, -1 if it does not verify. */
static int64_t step_of(const char *path)
{
    dt_ck_reader *r;
    int64_t v = -1;
    if (dt_ck_open(&r, path))
        return -1;
    if (dt_ck_read(r, "train/step", DT_CK_I64, 0, NULL, &v))
        v = -1;
    dt_ck_close(r);
    return v;
}

/* Flips one byte inside the raw data of dataset `name` (at byte `at` of it). */
static void flip_byte(const char *path, const char *name, long long at)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    DT_ASSERT(f >= 0);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    DT_ASSERT(d >= 0);
    haddr_t off = H5Dget_offset(d);
    DT_ASSERT(off != HADDR_UNDEF);
    H5Dclose(d);
    H5Fclose(f);
    int fd = open(path, O_RDWR);
    DT_ASSERT(fd >= 0);
    unsigned char b;
    DT_ASSERT(pread(fd, &b, 1, (off_t)(off + (haddr_t)at)) == 1);
    b ^= 0x10;
    DT_ASSERT(pwrite(fd, &b, 1, (off_t)(off + (haddr_t)at)) == 1);
    close(fd);
}

/* ---- tests ---- */

static void test_xxh64(void)
{
    static const char spam[] = "Nobody inspects the spammish repetition";
    CHECK(dt_ck_xxh64(NULL, 0, 0) == 0xEF46DB3751D8E999ULL);
    CHECK(dt_ck_xxh64("a", 1, 0) == 0xD24EC4F1A98C6E5BULL);
    CHECK(dt_ck_xxh64("abc", 3, 0) == 0x44BC2CF5AD770999ULL);
    CHECK(dt_ck_xxh64(spam, strlen(spam), 0) == 0xFBCEA83C8A378BF1ULL);
    CHECK(dt_ck_xxh64("xxhash", 6, 20141025) == 0xB559B98D844E0635ULL);

    static unsigned char buf[4099];
    fill_random(buf, sizeof buf);
    int same = 1;
    for (int trial = 0; trial < 50; trial++) {
        size_t len = (size_t)(rnd() % sizeof buf);
        uint64_t seed = trial % 3 ? rnd() : 0;
        dt_ck_xxh64_state s;
        dt_ck_xxh64_init(&s, seed);
        for (size_t at = 0; at < len;) {
            size_t k = (size_t)(rnd() % 70);
            if (k > len - at)
                k = len - at;
            dt_ck_xxh64_update(&s, buf + at, k);
            at += k;
        }
        same &= dt_ck_xxh64_digest(&s) == dt_ck_xxh64(buf, len, seed);
    }
    CHECK(same);
}

static void test_helpers(void)
{
    char buf[128];
    const int64_t d[3] = {512, 784, 3};
    dt_ck_format_shape(buf, sizeof buf, 2, d);
    CHECK(strcmp(buf, "(512, 784)") == 0);
    dt_ck_format_shape(buf, sizeof buf, 1, d);
    CHECK(strcmp(buf, "(512)") == 0);
    dt_ck_format_shape(buf, sizeof buf, 0, NULL);
    CHECK(strcmp(buf, "()") == 0);
    CHECK(dt_ck_step_path(buf, sizeof buf, "runs/a", 1234) == DT_OK &&
          strcmp(buf, "runs/a/ckpt-step00001234.h5") == 0);
    CHECK(dt_ck_step_path(buf, sizeof buf, "runs/a/", 123456789012LL) == DT_OK &&
          strcmp(buf, "runs/a/ckpt-step123456789012.h5") == 0);
    CHECK_ERR(dt_ck_step_path(buf, 10, "runs/a", 1), "longer than");
    CHECK(strcmp(dt_ck_dtype_name(DT_CK_U8), "uint8") == 0 && dt_ck_dtype_size(DT_CK_I64) == 8);
    CHECK(strchr(dt_ck_hdf5_version(), '.') != NULL);
    CHECK(strlen(dt_ck_mpi_version()) > 0 && strchr(dt_ck_mpi_version(), '\n') == NULL);
    CHECK(strstr(dt_ck_openblas_version(), "OpenBLAS") != NULL);
}

#define NRT 24
typedef struct rt_item {
    char name[DT_CK_NAME_MAX];
    dt_ck_dtype dtype;
    int ndim;
    int64_t dims[4];
    size_t bytes;
    unsigned char *data;
} rt_item;

/* The round trip's items: every dtype at ranks 0-4, PyTorch state_dict names, a zero-size
 * one; random bytes of every bit pattern. Returns their number (NRT). */
static int make_items(rt_item *it)
{
    static const int64_t base_dims[4] = {3, 2, 5, 4};
    int n = 0;
    for (int t = 0; t <= DT_CK_U8; t++)
        for (int rank = 0; rank <= 4; rank++) {
            rt_item *x = &it[n++];
            snprintf(x->name, sizeof x->name, "t/%s/rank%d", dt_ck_dtype_name((dt_ck_dtype)t),
                     rank);
            x->dtype = (dt_ck_dtype)t;
            x->ndim = rank;
        }
    /* PyTorch state_dict names, zero-size and big-ish ones */
    static const struct {
        const char *name;
        dt_ck_dtype t;
        int ndim;
        int64_t dims[4];
    } extra[] = {
        {"model/conv1.weight", DT_CK_F32, 4, {8, 3, 3, 3}},
        {"model/bn1.running_mean", DT_CK_F32, 1, {8}},
        {"fc.bias", DT_CK_F64, 1, {10}},
        {"empty.rows", DT_CK_F32, 2, {0, 3}},
    };
    for (size_t e = 0; e < sizeof extra / sizeof *extra; e++) {
        rt_item *x = &it[n++];
        snprintf(x->name, sizeof x->name, "%s", extra[e].name);
        x->dtype = extra[e].t;
        x->ndim = extra[e].ndim;
        memcpy(x->dims, extra[e].dims, sizeof x->dims);
    }
    DT_ASSERT(n == NRT);
    for (int i = 0; i < n; i++) {
        rt_item *x = &it[i];
        size_t numel = 1;
        for (int k = 0; k < x->ndim; k++) {
            if (i < 20)
                x->dims[k] = base_dims[k];
            numel *= (size_t)x->dims[k];
        }
        x->bytes = numel * dt_ck_dtype_size(x->dtype);
        x->data = malloc(x->bytes ? x->bytes : 1);
        fill_random(x->data, x->bytes); /* every bit pattern: NaN payloads, denormals, -0 */
    }
    return n;
}

/* The reader r of the round trip's first file p1 gives back the n items of it, bit for bit and
 * in order, and every attribute written (config: the long one). Closes r. */
static void check_read_back(dt_ck_reader *r, const rt_item *it, int n, const char *config,
                            const char *p1)
{
    CHECK(dt_ck_count(r) == n);
    int order = dt_ck_count(r) == n, meta = 1, bits = 1;
    for (int i = 0; i < n && order; i++) {
        const dt_ck_item *x = dt_ck_item_at(r, i);
        order &= strcmp(x->name, it[i].name) == 0;
        meta &= x->dtype == it[i].dtype && x->ndim == it[i].ndim;
        for (int k = 0; k < 4; k++)
            meta &= x->dims[k] == (k < it[i].ndim ? it[i].dims[k] : 0);
        meta &= x->xxh64 == dt_ck_xxh64(it[i].data, it[i].bytes, 0);
        unsigned char *back = malloc(it[i].bytes ? it[i].bytes : 1);
        memset(back, 0xA5, it[i].bytes);
        int rr = dt_ck_read(r, it[i].name, it[i].dtype, it[i].ndim, it[i].dims, back);
        bits &= rr == DT_OK && memcmp(back, it[i].data, it[i].bytes) == 0;
        if (rr)
            fprintf(stderr, "  %s\n", dt_err_msg());
        free(back);
    }
    CHECK(order);
    CHECK(meta);
    CHECK(bits);
    CHECK(dt_ck_has(r, "model/conv1.weight") && dt_ck_has(r, "fc.bias"));
    CHECK(!dt_ck_has(r, "model") && !dt_ck_has(r, "conv1.weight") && !dt_ck_find(r, "nope"));
    const char *cv = dt_ck_get_attr(r, "config");
    CHECK(cv && strcmp(cv, config) == 0);
    CHECK(dt_ck_get_attr(r, "model") && strcmp(dt_ck_get_attr(r, "model"), "resnet20") == 0);
    CHECK(dt_ck_get_attr(r, "seed") &&
          strcmp(dt_ck_get_attr(r, "seed"), "18446744073709551615") == 0);
    CHECK(dt_ck_get_attr(r, "empty") && dt_ck_get_attr(r, "empty")[0] == '\0');
    CHECK(dt_ck_get_attr(r, "hdf5_version") &&
          strcmp(dt_ck_get_attr(r, "hdf5_version"), dt_ck_hdf5_version()) == 0);
    CHECK(dt_ck_get_attr(r, "dtrain_version") &&
          strcmp(dt_ck_get_attr(r, "dtrain_version"), DT_VERSION) == 0);
    CHECK(dt_ck_get_attr(r, "dtrain_commit") &&
          strcmp(dt_ck_get_attr(r, "dtrain_commit"), dt_commit) == 0);
    CHECK(dt_ck_get_attr(r, "format") &&
          strcmp(dt_ck_get_attr(r, "format"), "dtrain-checkpoint") == 0);
    CHECK(dt_ck_get_attr(r, "format_version") &&
          strcmp(dt_ck_get_attr(r, "format_version"), "1") == 0);
    CHECK(dt_ck_get_attr(r, "complete") && strcmp(dt_ck_get_attr(r, "complete"), "1") == 0);
    CHECK(dt_ck_get_attr(r, "missing") == NULL);
    /* attributes in the order written, "complete" last */
    const char *aname = NULL;
    CHECK(dt_ck_attr_count(r) == 13);
    dt_ck_attr_at(r, 0, &aname);
    CHECK(aname && strcmp(aname, "config") == 0);
    dt_ck_attr_at(r, dt_ck_attr_count(r) - 1, &aname);
    CHECK(aname && strcmp(aname, "complete") == 0);
    CHECK(strcmp(dt_ck_path(r), p1) == 0);
    dt_ck_close(r);
}

/* Same content, same bytes: no timestamps or other run-dependent data in the files p1, p2. */
static void check_same_bytes(const char *p1, const char *p2)
{
    long long s1 = file_size(p1), s2 = file_size(p2);
    CHECK(s1 > 0 && s1 == s2);
    if (s1 > 0 && s1 == s2) {
        unsigned char *b1 = malloc((size_t)s1), *b2 = malloc((size_t)s1);
        FILE *f1 = fopen(p1, "rb"), *f2 = fopen(p2, "rb");
        DT_ASSERT(f1 && f2);
        CHECK(fread(b1, 1, (size_t)s1, f1) == (size_t)s1 &&
              fread(b2, 1, (size_t)s1, f2) == (size_t)s1 && memcmp(b1, b2, (size_t)s1) == 0);
        fclose(f1);
        fclose(f2);
        free(b1);
        free(b2);
    }
}

/* dt_ck_add_copy copies at once; dt_ck_add references until the commit; discard writes
 * nothing. Files in dir. */
static void test_add_copy(const char *dir)
{
    dt_ck_reader *r = NULL;
    char p3[700];
    path_in(p3, sizeof p3, dir, "c.h5");
    int64_t v = 7, u = 9, got = 0;
    dt_ck_writer *w = dt_ck_begin(p3);
    dt_ck_add_copy(w, "copied", DT_CK_I64, 0, NULL, &v);
    dt_ck_add(w, "referenced", DT_CK_I64, 0, NULL, &u);
    v = 8;
    u = 10;
    CHECK(dt_ck_commit(w) == DT_OK);
    CHECK(dt_ck_open(&r, p3) == DT_OK);
    CHECK(dt_ck_read(r, "copied", DT_CK_I64, 0, NULL, &got) == DT_OK && got == 7);
    CHECK(dt_ck_read(r, "referenced", DT_CK_I64, 0, NULL, &got) == DT_OK && got == 10);
    dt_ck_close(r);
    dt_ck_discard(dt_ck_begin(p3)); /* discard writes nothing */
    dt_ck_discard(NULL);
}

static void test_round_trip(void)
{
    rt_item it[NRT];
    int n = make_items(it);
    /* a config text bigger than HDF5's 64 KiB compact attribute limit, with UTF-8 */
    static const char pat[] = "optim.lr = 0.1\n# \xc2\xb5s\n";
    size_t clen = (sizeof pat - 1) * 4800; /* whole copies of pat: valid UTF-8 */
    char *config = malloc(clen + 1);
    for (size_t i = 0; i < clen; i++)
        config[i] = pat[i % (sizeof pat - 1)];
    config[clen] = '\0';

    char dir[600], p1[700], p2[700];
    make_dir(dir, sizeof dir, "rt");
    path_in(p1, sizeof p1, dir, "a.h5");
    path_in(p2, sizeof p2, dir, "b.h5");
    for (int pass = 0; pass < 2; pass++) {
        dt_ck_writer *w = dt_ck_begin(pass ? p2 : p1);
        for (int i = 0; i < n; i++)
            dt_ck_add(w, it[i].name, it[i].dtype, it[i].ndim, it[i].dims,
                      it[i].bytes ? it[i].data : NULL);
        dt_ck_attr(w, "config", config);
        dt_ck_attr(w, "model", "resnet20");
        dt_ck_attrf(w, "world_size", "%d", 3);
        dt_ck_attrf(w, "seed", "%llu", 18446744073709551615ULL);
        dt_ck_attr(w, "empty", "");
        dt_ck_attr_versions(w);
        CHECK(dt_ck_commit(w) == DT_OK);
    }
    CHECK(count_hidden(dir) == 0);

    dt_ck_reader *r = NULL;
    int rc = dt_ck_open(&r, p1);
    CHECK(rc == DT_OK);
    if (rc) {
        fprintf(stderr, "  %s\n", dt_err_msg());
        goto out;
    }
    check_read_back(r, it, n, config, p1);

    check_same_bytes(p1, p2);
    test_add_copy(dir);
out:
    for (int i = 0; i < n; i++)
        free(it[i].data);
    free(config);
}

/* A good checkpoint read with wrong expectations: shape, rank, dtype, name. Files in dir. */
static void test_wrong_expectations(const char *dir)
{
    char p[700], want[1200];
    dt_ck_reader *r = NULL;
    path_in(p, sizeof p, dir, "good.h5");
    CHECK(commit_small(p, 5) == DT_OK);
    CHECK(dt_ck_open(&r, p) == DT_OK);
    if (r) {
        static float out[512 * 784];
        const int64_t want_dims[2] = {512, 784}, ok_dims[2] = {FC1_OUT, FC1_IN};
        int rc = dt_ck_read(r, "model/fc1.weight", DT_CK_F32, 2, want_dims, out);
        snprintf(want, sizeof want,
                 "%s: model/fc1.weight has shape (256, 784), expected (512, 784)", p);
        CHECK(rc == DT_ERR && strcmp(dt_err_msg(), want) == 0);
        rc = dt_ck_read(r, "model/fc1.weight", DT_CK_F32, 1, want_dims, out);
        CHECK_ERR(rc, "model/fc1.weight has shape (256, 784), expected (512)");
        rc = dt_ck_read(r, "model/fc1.weight", DT_CK_F64, 2, ok_dims, out);
        snprintf(want, sizeof want, "%s: model/fc1.weight has dtype float32, expected float64", p);
        CHECK(rc == DT_ERR && strcmp(dt_err_msg(), want) == 0);
        rc = dt_ck_read(r, "model/fc9.weight", DT_CK_F32, 2, ok_dims, out);
        snprintf(want, sizeof want, "%s: no item 'model/fc9.weight' in checkpoint", p);
        CHECK(rc == DT_ERR && strcmp(dt_err_msg(), want) == 0);
        CHECK(dt_ck_read(r, "model/fc1.weight", DT_CK_F32, 2, ok_dims, out) == DT_OK &&
              memcmp(out, fc1_w, sizeof fc1_w) == 0);
        dt_ck_close(r);
    }
}

/* Damage at the byte level, each with its own message; HDF5 never sees these files. In dir. */
static void test_byte_damage(const char *dir)
{
    char p[700], want[1200];
    dt_ck_reader *r = NULL;
    static const struct {
        const char *file, *want;
        long long at; /* byte flipped (-1: header zeroed, -2: a byte appended) */
    } dmg[] = {
        {"noheader.h5", "incomplete checkpoint (no dtrain header: its writer did not finish)", -1},
        {"header.h5", "corrupted checkpoint header (checksum mismatch)", 20},
        {"meta.h5", "corrupted HDF5 metadata (checksum mismatch outside the datasets' data)",
         512 + 8},                     /* HDF5's superblock, right after a 512-byte header */
        {"longer.h5", "file is ", -2}, /* "file is N + 1 bytes, N were written" */
    };
    for (size_t k = 0; k < sizeof dmg / sizeof *dmg; k++) {
        path_in(p, sizeof p, dir, dmg[k].file);
        CHECK(commit_small(p, 8) == DT_OK);
        int fd = open(p, O_RDWR);
        DT_ASSERT(fd >= 0);
        if (dmg[k].at == -1) {
            static const unsigned char zero[512];
            DT_ASSERT(pwrite(fd, zero, sizeof zero, 0) == (ssize_t)sizeof zero);
        } else if (dmg[k].at == -2) {
            DT_ASSERT(pwrite(fd, "x", 1, (off_t)file_size(p)) == 1);
        } else {
            unsigned char c;
            DT_ASSERT(pread(fd, &c, 1, (off_t)dmg[k].at) == 1);
            c ^= 0x01;
            DT_ASSERT(pwrite(fd, &c, 1, (off_t)dmg[k].at) == 1);
        }
        close(fd);
        snprintf(want, sizeof want, "%s: %s", p, dmg[k].want);
        CHECK_ERR(dt_ck_open(&r, p), want);
    }
}

static void test_verify_errors(void)
{
    char dir[600], p[700], want[1200];
    make_dir(dir, sizeof dir, "bad");
    dt_ck_reader *r = NULL;

    test_wrong_expectations(dir);

    /* truncated to half its size */
    path_in(p, sizeof p, dir, "trunc.h5");
    CHECK(commit_small(p, 6) == DT_OK);
    CHECK(truncate(p, file_size(p) / 2) == 0);
    snprintf(want, sizeof want, "%s: truncated file", p);
    CHECK_ERR(dt_ck_open(&r, p), want);
    CHECK(r == NULL);

    /* one flipped byte in the middle of a dataset's raw data */
    path_in(p, sizeof p, dir, "flip.h5");
    CHECK(commit_small(p, 7) == DT_OK);
    flip_byte(p, "model/fc1.weight", 4 * 1000 + 2);
    snprintf(want, sizeof want, "%s: checksum mismatch in model/fc1.weight (stored xxh64 0x", p);
    CHECK_ERR(dt_ck_open(&r, p), want);

    /* foreign HDF5: no format attribute */
    path_in(p, sizeof p, dir, "foreign.h5");
    {
        hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        hsize_t d = 4;
        hid_t s = H5Screate_simple(1, &d, NULL);
        hid_t ds = H5Dcreate2(f, "x", H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        float v[4] = {1, 2, 3, 4};
        CHECK(f >= 0 && ds >= 0 &&
              H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
        H5Dclose(ds);
        H5Sclose(s);
        H5Fclose(f);
    }
    snprintf(want, sizeof want,
             "%s: not a dtrain checkpoint (an HDF5 file without a dtrain "
             "header)",
             p);
    CHECK_ERR(dt_ck_open(&r, p), want);

    test_byte_damage(dir);

    /* not HDF5 at all: text, empty */
    path_in(p, sizeof p, dir, "text.h5");
    write_text(p, "optim.lr = 0.1\nthis is not HDF5, and it is longer than 8 bytes\n");
    snprintf(want, sizeof want, "%s: not an HDF5 file", p);
    CHECK_ERR(dt_ck_open(&r, p), want);
    path_in(p, sizeof p, dir, "empty.h5");
    write_text(p, "");
    snprintf(want, sizeof want, "%s: not an HDF5 file", p);
    CHECK_ERR(dt_ck_open(&r, p), want);

    /* missing file, a directory */
    path_in(p, sizeof p, dir, "missing.h5");
    snprintf(want, sizeof want, "%s: cannot open checkpoint: No such file or directory", p);
    CHECK_ERR(dt_ck_open(&r, p), want);
    snprintf(want, sizeof want, "%s: not a regular file", dir);
    CHECK_ERR(dt_ck_open(&r, dir), want);
    CHECK(r == NULL);
}

static void test_failed_commit(void)
{
    char dir[600], p[700], want[2048];
    make_dir(dir, sizeof dir, "fail");

    /* into a directory that does not exist */
    snprintf(p, sizeof p, "%s/nodir/ckpt-step00000001.h5", dir);
    snprintf(want, sizeof want, "%s: cannot save checkpoint: directory %s/nodir: No such file", p,
             dir);
    CHECK_ERR(commit_small(p, 1), want);
    CHECK(!exists(p) && count_entries(dir) == 0);

    /* read-only directory (root writes anyway: then only the missing-dir case above applies) */
    if (geteuid() != 0) {
        char ro[700];
        path_in(ro, sizeof ro, dir, "ro");
        DT_ASSERT(mkdir(ro, 0555) == 0);
        path_in(p, sizeof p, ro, "ckpt-step00000001.h5");
        CHECK_ERR(commit_small(p, 1), "is not writable");
        CHECK(count_entries(ro) == 0);
        chmod(ro, 0755);
    }

    /* injected failures at every point, over an existing good checkpoint */
    path_in(p, sizeof p, dir, "ckpt-step00000010.h5");
    CHECK(commit_small(p, 10) == DT_OK);
    static const char *const points[] = {"mid_write", "after_write", "before_rename",
                                         "after_rename"};
    for (int i = 0; i < 4; i++) {
        char spec[64];
        snprintf(spec, sizeof spec, "%s:fail", points[i]);
        setenv("DTRAIN_CKPT_FAULT", spec, 1);
        int rc = commit_small(p, 11 + i);
        unsetenv("DTRAIN_CKPT_FAULT");
        snprintf(want, sizeof want, "fault injected at %s", points[i]);
        CHECK_ERR(rc, want);
        /* before the rename: the old file untouched; after it: the new one, complete */
        CHECK(step_of(p) == (i < 3 ? 10 : 11 + i));
        CHECK(count_hidden(dir) == 0 && count_entries(dir) == 1);
    }
    setenv("DTRAIN_CKPT_FAULT", "before_lunch", 1);
    CHECK_ERR(commit_small(p, 20), "DTRAIN_CKPT_FAULT='before_lunch'");
    unsetenv("DTRAIN_CKPT_FAULT");
    CHECK(count_hidden(dir) == 0);
}

/* Runs commit_small(path, tag) in a child with DTRAIN_CKPT_FAULT=point; returns the child's exit
 * status (DT_CK_FAULT_EXIT when it stopped at the point) and its pid. */
static int crash_commit(const char *path, int64_t tag, const char *point, pid_t *pid)
{
    fflush(stdout);
    fflush(stderr);
    pid_t c = fork();
    DT_ASSERT(c >= 0);
    if (c == 0) {
        setenv("DTRAIN_CKPT_FAULT", point, 1);
        int rc = commit_small(path, tag);
        _exit(rc == DT_OK ? 0 : 1);
    }
    int st = 0;
    DT_ASSERT(waitpid(c, &st, 0) == c);
    *pid = c;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_crash(void)
{
    char dir[600], p[700], tmp[700], found[700], report[2048];
    int64_t step = -1;
    make_dir(dir, sizeof dir, "crash");
    path_in(p, sizeof p, dir, "ckpt-step00000100.h5");
    CHECK(commit_small(p, 100) == DT_OK);

    static const char *const points[] = {"mid_write", "after_write", "before_rename",
                                         "after_rename"};
    for (int i = 0; i < 4; i++) {
        pid_t pid;
        /* overwrite the same name with new content, crashing at points[i] */
        CHECK(crash_commit(p, 1000 + i, points[i], &pid) == DT_CK_FAULT_EXIT);
        snprintf(tmp, sizeof tmp, "%s/.ckpt-step00000100.h5.tmp.%ld", dir, (long)pid);
        if (i < 3) {
            CHECK(step_of(p) == 100); /* the previous complete checkpoint */
            CHECK(exists(tmp));       /* the crash left its temporary file */
            dt_ck_reader *r = NULL;
            int rc = dt_ck_open(&r, tmp);
            if (i == 0) /* stopped while writing: recognised as such */
                CHECK_ERR(rc, "incomplete checkpoint (no dtrain header");
            else /* written and closed, only never renamed */
                CHECK(rc == DT_OK);
            dt_ck_close(r);
        } else {
            CHECK(step_of(p) == 1000 + i); /* renamed: the new, complete one */
            CHECK(!exists(tmp));
        }
        CHECK(dt_ck_find_latest(dir, found, sizeof found, &step, report, sizeof report) == 1);
        CHECK(strcmp(found, p) == 0 && step == 100 && report[0] == '\0');
    }
    /* a crash while writing a NEW step: nothing appears under its name */
    char p2[700];
    path_in(p2, sizeof p2, dir, "ckpt-step00000200.h5");
    pid_t pid;
    CHECK(crash_commit(p2, 200, "before_rename", &pid) == DT_CK_FAULT_EXIT);
    CHECK(!exists(p2));
    CHECK(dt_ck_find_latest(dir, found, sizeof found, &step, report, sizeof report) == 1);
    CHECK(strcmp(found, p) == 0 && step == 100 && report[0] == '\0');
    CHECK(count_hidden(dir) == 4); /* mid_write, after_write, before_rename x 2 */
    /* once a newer checkpoint exists, prune removes the leftovers it supersedes */
    char p3[700];
    path_in(p3, sizeof p3, dir, "ckpt-step00000300.h5");
    CHECK(commit_small(p3, 300) == DT_OK);
    CHECK(dt_ck_prune(dir, 5) == 4);
    CHECK(count_hidden(dir) == 0 && count_entries(dir) == 2);
}

static void test_find_latest(void)
{
    char dir[600], p[700], found[700], report[2048], want[1400];
    int64_t step = -1;
    make_dir(dir, sizeof dir, "latest");

    CHECK(dt_ck_find_latest(dir, found, sizeof found, &step, report, sizeof report) == 0);
    CHECK(found[0] == '\0' && report[0] == '\0');
    path_in(p, sizeof p, dir, "nonexistent");
    CHECK(dt_ck_find_latest(p, found, sizeof found, &step, NULL, 0) == 0);

    for (int s = 100; s <= 300; s += 100) {
        CHECK(dt_ck_step_path(p, sizeof p, dir, s) == DT_OK);
        CHECK(commit_small(p, s) == DT_OK);
    }
    path_in(p, sizeof p, dir, "notes.txt");
    write_text(p, "not a checkpoint\n");
    path_in(p, sizeof p, dir, "ckpt-step12x.h5");
    write_text(p, "not a checkpoint name\n");
    path_in(p, sizeof p, dir, ".ckpt-step00000400.h5.tmp.99999");
    write_text(p, "garbage left by a crash\n");

    dt_ck_entry *e = NULL;
    CHECK(dt_ck_scan_dir(dir, &e) == 3);
    CHECK(e && e[0].step == 100 && e[2].step == 300 &&
          strcmp(e[1].name, "ckpt-step00000200.h5") == 0);
    free(e);

    CHECK(dt_ck_find_latest(dir, found, sizeof found, &step, report, sizeof report) == 1);
    CHECK(step == 300 && strstr(found, "ckpt-step00000300.h5") && report[0] == '\0');

    /* corrupt the newest: find_latest goes back to 200 and says why */
    char p300[700], p200[700], p100[700];
    path_in(p300, sizeof p300, dir, "ckpt-step00000300.h5");
    path_in(p200, sizeof p200, dir, "ckpt-step00000200.h5");
    path_in(p100, sizeof p100, dir, "ckpt-step00000100.h5");
    flip_byte(p300, "model/fc1.weight", 12345);
    CHECK(dt_ck_find_latest(dir, found, sizeof found, &step, report, sizeof report) == 1);
    CHECK(step == 200 && strcmp(found, p200) == 0);
    snprintf(want, sizeof want, "skipped %s: checksum mismatch in model/fc1.weight (", p300);
    CHECK(strncmp(report, want, strlen(want)) == 0 && strchr(report, '\n') &&
          strchr(report, '\n')[1] == '\0');
    CHECK(step_of(found) == 200);

    /* and a truncated one too: two lines, newest first */
    CHECK(truncate(p200, file_size(p200) / 2) == 0);
    CHECK(dt_ck_find_latest(dir, found, sizeof found, &step, report, sizeof report) == 1);
    CHECK(step == 100 && strcmp(found, p100) == 0);
    snprintf(want, sizeof want, "skipped %s: truncated file", p200);
    const char *second = strchr(report, '\n');
    CHECK(strncmp(report, "skipped ", 8) == 0 && second &&
          strncmp(second + 1, want, strlen(want)) == 0);

    /* a report buffer too small for a line: cut short with "..." */
    char small[24];
    CHECK(dt_ck_find_latest(dir, found, sizeof found, &step, small, sizeof small) == 1);
    CHECK(strcmp(small, "...\n") == 0);
    /* an out_path buffer too small: an error, not a cut path */
    CHECK_ERR(dt_ck_find_latest(dir, found, 8, &step, NULL, 0), "longer than");

    /* all damaged: 0, with every file reported */
    flip_byte(p100, "model/fc1.bias", 0);
    CHECK(dt_ck_find_latest(dir, found, sizeof found, &step, report, sizeof report) == 0);
    int lines = 0;
    for (const char *c = report; *c; c++)
        lines += *c == '\n';
    CHECK(found[0] == '\0' && lines == 3);
}

static void test_prune(void)
{
    char dir[600], p[700];
    make_dir(dir, sizeof dir, "prune");
    for (int s = 1; s <= 5; s++) {
        CHECK(dt_ck_step_path(p, sizeof p, dir, s * 100) == DT_OK);
        CHECK(commit_small(p, s * 100) == DT_OK);
    }
    CHECK_ERR(dt_ck_prune(dir, 0), "must keep at least 1");
    CHECK(dt_ck_prune(dir, 2) == 3);
    dt_ck_entry *e = NULL;
    CHECK(dt_ck_scan_dir(dir, &e) == 2);
    CHECK(e && e[0].step == 400 && e[1].step == 500);
    free(e);
    CHECK(dt_ck_prune(dir, 2) == 0);
    CHECK(dt_ck_prune(dir, 10) == 0);

    /* the newest good one survives even when newer files are damaged */
    path_in(p, sizeof p, dir, "ckpt-step00000600.h5");
    write_text(p, "damaged\n");
    path_in(p, sizeof p, dir, "ckpt-step00000700.h5");
    write_text(p, "damaged\n");
    path_in(p, sizeof p, dir, ".ckpt-step00000050.h5.tmp.12345");
    write_text(p, "leftover\n");
    path_in(p, sizeof p, dir, ".ckpt-step00009999.h5.tmp.12345");
    write_text(p, "leftover of a step beyond the newest\n");
    CHECK(dt_ck_prune(dir, 1) == 3); /* 400, 600, the step-50 leftover */
    CHECK(dt_ck_scan_dir(dir, &e) == 2);
    CHECK(e && e[0].step == 500 && e[1].step == 700);
    free(e);
    CHECK(count_hidden(dir) == 1);
    path_in(p, sizeof p, dir, "ckpt-step00000500.h5");
    CHECK(step_of(p) == 500);
}

/* ---- metrics ---- */

static const char *const step_cols[] = {"step", "loss", "lr"};
static const char *const epoch_cols[] = {"epoch", "train_loss", "test_acc"};

static void step_vals(double *v, int i, int gen)
{
    v[0] = i;
    v[1] = gen * 1000 + 1.0 / (i + 1.0);
    v[2] = 0.1 * i + gen;
}

static void epoch_vals(double *v, int e, int gen)
{
    v[0] = e;
    v[1] = gen * 1000 + 2.5 / (e + 1.0);
    v[2] = 0.9 + 0.01 * e;
}

/* Rows of dataset name in file (after reading them into out, n max). -1 on error. */
static long read_col(const char *file, const char *name, double *out, long n)
{
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return -1;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    hid_t s = d >= 0 ? H5Dget_space(d) : -1;
    hsize_t len = 0;
    long rows = -1;
    if (s >= 0 && H5Sget_simple_extent_dims(s, &len, NULL) == 1 && (long)len <= n &&
        (len == 0 || H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0))
        rows = (long)len;
    if (s >= 0)
        H5Sclose(s);
    if (d >= 0)
        H5Dclose(d);
    H5Fclose(f);
    return rows;
}

/* Checks metrics.h5 and the CSV of one set hold exactly the rows expect (ncol x n, row-major). */
static int check_set(const char *dir, const char *set, const char *const *cols,
                     const double *expect, long n)
{
    char h5[700], csv[700], name[128];
    int ok = 1;
    path_in(h5, sizeof h5, dir, "metrics.h5");
    snprintf(csv, sizeof csv, "%s/metrics_%s.csv", dir, set);
    static double col[4096];
    for (int j = 0; j < 3; j++) {
        snprintf(name, sizeof name, "%s/%s", set, cols[j]);
        long rows = read_col(h5, name, col, 4096);
        if (rows != n) {
            fprintf(stderr, "  %s: %ld rows, expected %ld\n", name, rows, n);
            ok = 0;
            continue;
        }
        for (long i = 0; i < n; i++)
            ok &= col[i] == expect[i * 3 + j];
    }
    FILE *f = fopen(csv, "r");
    if (!f)
        return 0;
    char line[512], header[256];
    snprintf(header, sizeof header, "%s,%s,%s\n", cols[0], cols[1], cols[2]);
    long lines = 0;
    while (fgets(line, sizeof line, f)) {
        if (lines == 0) {
            ok &= strcmp(line, header) == 0;
        } else if (lines <= n) {
            char *c = line, *e;
            for (int j = 0; j < 3; j++) {
                double v = strtod(c, &e);
                ok &= e != c && v == expect[(lines - 1) * 3 + j] && *e == (j < 2 ? ',' : '\n');
                c = e + 1;
            }
        }
        lines++;
    }
    fclose(f);
    if (lines != n + 1) {
        fprintf(stderr, "  %s: %ld lines, expected %ld\n", csv, lines, n + 1);
        ok = 0;
    }
    return ok;
}

/* A killed run (SIGKILL, no close): the flushed rows are in both files, the pending ones lost,
 * and the run resumes from the flushed rows. */
static void test_metrics_kill(void)
{
    static double se[64 * 3], ee[8 * 3];
    double v[3];
    dt_metrics *m = NULL;
    char kdir[600];
    make_dir(kdir, sizeof kdir, "metrics-kill");
    fflush(stdout);
    fflush(stderr);
    pid_t c = fork();
    DT_ASSERT(c >= 0);
    if (c == 0) {
        dt_metrics *km;
        if (dt_metrics_open(&km, kdir, step_cols, 3, epoch_cols, 3, 0, 0, 10))
            _exit(1);
        for (int i = 0; i < 15; i++) {
            step_vals(v, i, 0);
            if (dt_metrics_step(km, v))
                _exit(1);
        }
        kill(getpid(), SIGKILL);
        _exit(1);
    }
    int st = 0;
    DT_ASSERT(waitpid(c, &st, 0) == c);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    for (int i = 0; i < 10; i++)
        step_vals(&se[i * 3], i, 0);
    CHECK(check_set(kdir, "step", step_cols, se, 10));
    CHECK(check_set(kdir, "epoch", epoch_cols, ee, 0));
    CHECK(dt_metrics_open(&m, kdir, step_cols, 3, epoch_cols, 3, 10, 0, 10) == DT_OK);
    CHECK(dt_metrics_close(m) == DT_OK);
    CHECK(check_set(kdir, "step", step_cols, se, 10));
}

/* by time (dt_metrics_set_flush_s, the trainer's second): rows stay pending while the time has
 * not passed, however few; the first row after it flushes them all (se: room for 4 rows) */
static void test_metrics_by_time(const char *dir, double *se)
{
    double v[3];
    dt_metrics *m = NULL;
    CHECK(dt_metrics_open(&m, dir, step_cols, 3, epoch_cols, 3, 0, 0, 1000) == DT_OK);
    if (!m)
        return;
    dt_metrics_set_flush_s(m, 0.3);
    const double t0 = dt_now();
    for (int i = 0; i < 3; i++) {
        step_vals(v, i, 0);
        memcpy(&se[i * 3], v, sizeof v);
        CHECK(dt_metrics_step(m, v) == DT_OK);
    }
    if (dt_now() - t0 < 0.25) /* (a stalled machine may have flushed: no claim then) */
        CHECK(check_set(dir, "step", step_cols, se, 0));
    while (dt_now() - t0 < 0.35)
        ;
    step_vals(v, 3, 0);
    memcpy(&se[3 * 3], v, sizeof v);
    CHECK(dt_metrics_step(m, v) == DT_OK);
    CHECK(check_set(dir, "step", step_cols, se, 4));
    CHECK(dt_metrics_close(m) == DT_OK);
}

static void test_metrics(void)
{
    char dir[600];
    make_dir(dir, sizeof dir, "metrics");
    static double se[64 * 3], ee[8 * 3];
    double v[3];
    dt_metrics *m = NULL;

    CHECK(dt_metrics_open(&m, dir, step_cols, 3, epoch_cols, 3, 0, 0, 10) == DT_OK);
    if (!m)
        return;
    /* 25 steps, an epoch after steps 12 and 24; flush_every 10 */
    for (int i = 0; i < 25; i++) {
        step_vals(v, i, 0);
        memcpy(&se[i * 3], v, sizeof v);
        CHECK(dt_metrics_step(m, v) == DT_OK);
        if (i == 9) {
            /* 10 records: flushed, readable while the run goes on */
            CHECK(check_set(dir, "step", step_cols, se, 10));
        }
        if (i == 12 || i == 24) {
            int e = i == 12 ? 0 : 1;
            epoch_vals(v, e, 0);
            memcpy(&ee[e * 3], v, sizeof v);
            CHECK(dt_metrics_epoch(m, v) == DT_OK);
        }
        if (i == 15) {
            /* 13 flushed by the epoch record, 3 pending: a kill now loses only those */
            CHECK(check_set(dir, "step", step_cols, se, 13));
            CHECK(check_set(dir, "epoch", epoch_cols, ee, 1));
        }
    }
    CHECK(dt_metrics_step_rows(m) == 25 && dt_metrics_epoch_rows(m) == 2);
    step_vals(v, 25, 0);
    memcpy(&se[25 * 3], v, sizeof v);
    CHECK(dt_metrics_step(m, v) == DT_OK); /* 26th, pending until close */
    CHECK(dt_metrics_close(m) == DT_OK);
    CHECK(check_set(dir, "step", step_cols, se, 26));
    CHECK(check_set(dir, "epoch", epoch_cols, ee, 2));

    /* resume after step row 15 and epoch row 1: no duplicates, no gaps */
    CHECK(dt_metrics_open(&m, dir, step_cols, 3, epoch_cols, 3, 15, 1, 10) == DT_OK);
    if (!m)
        return;
    CHECK(dt_metrics_step_rows(m) == 15 && dt_metrics_epoch_rows(m) == 1);
    CHECK(check_set(dir, "step", step_cols, se, 15));
    CHECK(check_set(dir, "epoch", epoch_cols, ee, 1));
    for (int i = 15; i < 22; i++) {
        step_vals(v, i, 1);
        memcpy(&se[i * 3], v, sizeof v);
        CHECK(dt_metrics_step(m, v) == DT_OK);
    }
    epoch_vals(v, 1, 1);
    memcpy(&ee[3], v, sizeof v);
    CHECK(dt_metrics_epoch(m, v) == DT_OK);
    CHECK(dt_metrics_close(m) == DT_OK);
    CHECK(check_set(dir, "step", step_cols, se, 22));
    CHECK(check_set(dir, "epoch", epoch_cols, ee, 2));

    /* resume errors: more rows than the file has, different columns */
    CHECK_ERR(dt_metrics_open(&m, dir, step_cols, 3, epoch_cols, 3, 100, 1, 10),
              "metrics.h5: step/step has 22 rows, fewer than the 100 to keep on resume");
    CHECK(m == NULL);
    static const char *const other[] = {"step", "loss", "momentum"};
    CHECK_ERR(dt_metrics_open(&m, dir, other, 3, epoch_cols, 3, 10, 1, 10),
              "step columns differ: file has (loss, lr, step), run has (step, loss, momentum)");
    static const char *const badname[] = {"step", "lo ss", "lr"};
    CHECK_ERR(dt_metrics_open(&m, dir, badname, 3, epoch_cols, 3, 0, 0, 10), "bad step column");
    CHECK_ERR(dt_metrics_open(&m, dir, step_cols, 3, epoch_cols, 3, 0, 0, 0), "flush interval");
    char nodir[700];
    path_in(nodir, sizeof nodir, dir, "nodir");
    CHECK_ERR(dt_metrics_open(&m, nodir, step_cols, 3, epoch_cols, 3, 0, 0, 10), "No such file");
    /* the failed opens left the log as it was */
    CHECK(check_set(dir, "step", step_cols, se, 22));

    /* a fresh start replaces the old log */
    CHECK(dt_metrics_open(&m, dir, step_cols, 3, epoch_cols, 3, 0, 0, 10) == DT_OK);
    CHECK(dt_metrics_close(m) == DT_OK);
    CHECK(check_set(dir, "step", step_cols, se, 0));
    CHECK(check_set(dir, "epoch", epoch_cols, ee, 0));
    CHECK(dt_metrics_close(NULL) == DT_OK);

    test_metrics_by_time(dir, se);
    test_metrics_kill();
}

int main(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/dtrain-test-ckpt.XXXXXX", t && t[0] ? t : "/tmp");
    if (!mkdtemp(root)) {
        fprintf(stderr, "test_ckpt: cannot create a directory from %s: %s\n", root,
                strerror(errno));
        return 1;
    }
    unsetenv("DTRAIN_CKPT_FAULT");
    double t0 = dt_now();
    test_xxh64();
    test_helpers();
    test_round_trip();
    test_verify_errors();
    test_failed_commit();
    test_crash();
    test_find_latest();
    test_prune();
    test_metrics();
    if (check_failed == 0)
        nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    else
        fprintf(stderr, "test_ckpt: files kept in %s\n", root);
    printf("test_ckpt: %.2f s\n", dt_now() - t0);
    return check_finish("test_ckpt");
}
