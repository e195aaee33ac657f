/*
 * tool_fuzzgen.c - seeded mutations of dtrain's inputs for the fuzz suite (tests/fuzz.sh):
 *
 *   tool_fuzzgen text SEED IN OUT     a model or config file: lines deleted, duplicated, moved
 *                                     (a key above the first section), swapped; sections
 *                                     duplicated or renamed; values replaced by edge values (0,
 *                                     -1, 2^31, 2^64, 1e309, nan, ...); keys renamed; random
 *                                     bytes inserted; bit flips; truncation
 *   tool_fuzzgen bin SEED IN OUT      a binary file (IDX, CIFAR-10, HDF5, checkpoint): bit
 *                                     flips, truncation, byte insertion or deletion, big- and
 *                                     little-endian edge integers written over header fields
 *   tool_fuzzgen reseal SEED IN OUT [NAME=VALUE]
 *                                     a checkpoint rewritten through the checkpoint writer with
 *                                     one value of one item replaced by an impossible one
 *                                     (0, -1, 2^31, INT64_MIN/MAX, nan, inf, 1e38) or one
 *                                     attribute mutated like text: every checksum is valid, so
 *                                     only the loader's semantic validation can refuse it;
 *                                     NAME=VALUE: element 0 of item NAME set to VALUE instead
 *                                     (a chosen reproduction: train/world_size=0)
 *
 * The same (mode, SEED, IN) always gives the same OUT (splitmix64). Prints one line describing
 * the mutations (for the fuzz log). Exit 0, or 1 on an I/O error.
 */
#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "common.h"

static uint64_t rng_state;

static uint64_t next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [0, n), n > 0 */
static size_t below(size_t n) { return (size_t)(next() % n); }

/* realloc that exits on failure (a generator out of memory has nothing to clean up) */
static void *resize(void *p, size_t bytes)
{
    void *q = realloc(p, bytes);
    if (!q) {
        fprintf(stderr, "tool_fuzzgen: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return q;
}

static char desc[4096];
static size_t desc_len;

DT_PRINTF(1, 2) static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(desc + desc_len, sizeof desc - desc_len, fmt, ap);
    va_end(ap);
    if (r > 0)
        desc_len += (size_t)r < sizeof desc - desc_len ? (size_t)r : sizeof desc - desc_len - 1;
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = resize(buf, cap);
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    *len = n;
    return buf;
}

static int write_all(const char *path, const unsigned char *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

/* ---- text ---- */

static const char *const edge_values[] = {"0",
                                          "-1",
                                          "1",
                                          "2",
                                          "3",
                                          "2147483647",
                                          "2147483648",
                                          "-2147483648",
                                          "4294967296",
                                          "18446744073709551616",
                                          "9223372036854775807",
                                          "-9223372036854775808",
                                          "1e309",
                                          "-1e309",
                                          "1e-320",
                                          "nan",
                                          "-nan",
                                          "inf",
                                          "-inf",
                                          "65536",
                                          "65537",
                                          "1000000",
                                          "16777216",
                                          "1048576",
                                          "0x10",
                                          "\"\"",
                                          "data",
                                          "-100",
                                          "1x1x1",
                                          "65536x65536x65536",
                                          "0x28x28",
                                          "3x32x32",
                                          "1x28x28x1",
                                          "abc",
                                          "true",
                                          "false",
                                          "auto",
                                          "0.5",
                                          "-0.5",
                                          "1e30",
                                          "1,2,3",
                                          "none",
                                          "64",
                                          "  ",
                                          "=",
                                          "[net]",
                                          "-2",
                                          "-1000",
                                          "999999999999999999999999"};
static const char *const known_keys[] = {
    "out",    "kernel",      "stride",     "pad",    "size",        "p",      "from",
    "input",  "name",        "classes",    "eps",    "momentum",    "affine", "bias",
    "factor", "lr",          "batch_size", "epochs", "limit_train", "seed",   "threads",
    "kind",   "every_steps", "bogus",      "OUT",    "out ",        "x.y"};
static const char *const sections[] = {"net",     "linear",  "relu",   "flatten",   "conv",
                                       "maxpool", "avgpool", "gap",    "batchnorm", "dropout",
                                       "add",     "scale",   "train",  "optim",     "sched",
                                       "data",    "ckpt",    "conv9d", ""};

#define NE(a) (sizeof(a) / sizeof((a)[0]))

typedef struct {
    char **line;
    size_t n, cap;
} lines;

static void lines_insert(lines *L, size_t at, char *s)
{
    if (L->n == L->cap) {
        L->cap = L->cap ? 2 * L->cap : 64;
        L->line = resize(L->line, L->cap * sizeof *L->line);
    }
    memmove(L->line + at + 1, L->line + at, (L->n - at) * sizeof *L->line);
    L->line[at] = s;
    L->n++;
}

static void lines_remove(lines *L, size_t at)
{
    free(L->line[at]);
    memmove(L->line + at, L->line + at + 1, (L->n - at - 1) * sizeof *L->line);
    L->n--;
}

static char *joinf(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *s = malloc(n);
    if (!s)
        abort();
    memcpy(s, a, strlen(a));
    memcpy(s + strlen(a), b, strlen(b));
    memcpy(s + strlen(a) + strlen(b), c, strlen(c) + 1);
    return s;
}

static int mutate_text_lines(lines *L)
{
    if (L->n == 0) {
        lines_insert(L, 0, joinf("[", sections[below(NE(sections))], "]"));
        note(" insert-header");
        return 0;
    }
    size_t i = below(L->n), j = below(L->n + 1);
    switch (below(11)) {
    case 0:
        note(" delete:%zu", i + 1);
        lines_remove(L, i);
        break;
    case 1:
        note(" duplicate:%zu->%zu", i + 1, j + 1);
        lines_insert(L, j, joinf(L->line[i], "", ""));
        break;
    case 2: { /* move, often to the top: a key before the first section */
        char *s = L->line[i];
        memmove(L->line + i, L->line + i + 1, (L->n - i - 1) * sizeof *L->line);
        L->n--;
        j = below(3) == 0 ? 0 : below(L->n + 1);
        note(" move:%zu->%zu", i + 1, j + 1);
        lines_insert(L, j, s);
        break;
    }
    case 3: { /* swap */
        size_t k = below(L->n);
        char *t = L->line[i];
        L->line[i] = L->line[k];
        L->line[k] = t;
        note(" swap:%zu,%zu", i + 1, k + 1);
        break;
    }
    case 4:
    case 5: { /* a value replaced by an edge value (the most productive mutation) */
        for (int tries = 0; tries < 8 && !strchr(L->line[i], '='); tries++)
            i = below(L->n);
        char *eq = strchr(L->line[i], '=');
        const char *v = edge_values[below(NE(edge_values))];
        note(" value:%zu=%s", i + 1, v);
        if (eq) {
            *eq = '\0';
            char *s = joinf(L->line[i], "= ", v);
            free(L->line[i]);
            L->line[i] = s;
        } else {
            lines_insert(L, i, joinf(known_keys[below(NE(known_keys))], " = ", v));
        }
        break;
    }
    case 6: { /* a key renamed, or a known key with an edge value inserted */
        const char *k = known_keys[below(NE(known_keys))];
        const char *v = edge_values[below(NE(edge_values))];
        note(" insert:%zu:%s=%s", j + 1, k, v);
        lines_insert(L, j, joinf(k, " = ", v));
        break;
    }
    case 7: { /* a section duplicated (header and keys up to the next header) */
        size_t h = i;
        while (h > 0 && L->line[h][0] != '[')
            h--;
        size_t e = h + 1;
        while (e < L->n && L->line[e][0] != '[')
            e++;
        note(" dup-section:%zu-%zu", h + 1, e);
        for (size_t k = h; k < e; k++)
            lines_insert(L, e + (k - h), joinf(L->line[k], "", ""));
        break;
    }
    case 8: { /* a header renamed */
        for (int tries = 0; tries < 16 && L->line[i][0] != '['; tries++)
            i = below(L->n);
        const char *s = sections[below(NE(sections))];
        note(" rename:%zu=[%s]", i + 1, s);
        free(L->line[i]);
        L->line[i] = joinf("[", s, "]");
        break;
    }
    case 9: /* a line cut short */
        note(" cut:%zu", i + 1);
        L->line[i][below(strlen(L->line[i]) + 1)] = '\0';
        break;
    default: { /* a new section header with or without keys */
        const char *s = sections[below(NE(sections))];
        note(" new-section:%zu=[%s]", j + 1, s);
        lines_insert(L, j, joinf("[", s, "]"));
        break;
    }
    }
    return 0;
}

static int mode_text(const char *in, const char *out)
{
    size_t len;
    unsigned char *buf = read_all(in, &len);
    if (!buf)
        return 1;
    lines L = {0};
    size_t start = 0;
    for (size_t k = 0; k <= len; k++)
        if (k == len || buf[k] == '\n') {
            if (k > start || k < len) {
                char *s = malloc(k - start + 1);
                memcpy(s, buf + start, k - start);
                s[k - start] = '\0';
                lines_insert(&L, L.n, s);
            }
            start = k + 1;
        }
    free(buf);
    const int nmut = 1 + (int)below(3);
    for (int m = 0; m < nmut; m++)
        mutate_text_lines(&L);
    /* joined back, then sometimes byte-level damage */
    size_t total = 0;
    for (size_t k = 0; k < L.n; k++)
        total += strlen(L.line[k]) + 1;
    unsigned char *t = malloc(total + 64);
    size_t n = 0;
    for (size_t k = 0; k < L.n; k++) {
        size_t l = strlen(L.line[k]);
        memcpy(t + n, L.line[k], l);
        n += l;
        t[n++] = '\n';
        free(L.line[k]);
    }
    free(L.line);
    if (n > 0 && below(8) == 0) {
        size_t at = below(n);
        t[at] ^= (unsigned char)(1u << below(8));
        note(" bitflip:%zu", at);
    }
    if (n > 0 && below(10) == 0) {
        size_t at = below(n + 1), k = 1 + below(16);
        memmove(t + at + k, t + at, n - at);
        for (size_t q = 0; q < k; q++)
            t[at + q] = (unsigned char)(below(3) ? 32 + below(95) : below(256));
        n += k;
        note(" insert-bytes:%zu+%zu", at, k);
    }
    if (n > 0 && below(12) == 0) {
        n = below(n);
        note(" truncate:%zu", n);
    }
    int rc = write_all(out, t, n);
    free(t);
    return rc;
}

/* ---- binary ---- */

static const uint32_t edge32[] = {0,          1,          2,          3,          0xff,
                                  0x100,      0x801,      0x803,      0x7fffffff, 0x80000000,
                                  0xffffffff, 0xfffffffe, 0x10000,    1000000,    60000,
                                  10000,      28,         0x01000000, 0x00080000};

static int mode_bin(const char *in, const char *out)
{
    size_t len;
    unsigned char *buf = read_all(in, &len);
    if (!buf)
        return 1;
    buf = resize(buf, len + 4096);
    const int nmut = 1 + (int)below(4);
    for (int m = 0; m < nmut; m++) {
        /* half the damage lands in the first 64 bytes: headers */
        size_t span = len == 0 ? 1 : (below(2) && len > 64 ? 64 : len);
        size_t at = below(span);
        switch (below(7)) {
        case 0:
        case 1:
            if (len) {
                buf[at] ^= (unsigned char)(1u << below(8));
                note(" bitflip:%zu", at);
            }
            break;
        case 2:
            len = below(2) ? below(len + 1) : below(len < 64 ? len + 1 : 64);
            note(" truncate:%zu", len);
            break;
        case 3: {
            size_t k = 1 + below(16);
            if (len + k > len + 4096 - 1)
                break;
            at = below(len + 1);
            memmove(buf + at + k, buf + at, len - at);
            for (size_t q = 0; q < k; q++)
                buf[at + q] = (unsigned char)below(256);
            len += k;
            note(" insert:%zu+%zu", at, k);
            break;
        }
        case 4:
            if (len > 1) {
                size_t k = 1 + below(len - at < 16 ? len - at : 16);
                memmove(buf + at, buf + at + k, len - at - k);
                len -= k;
                note(" delete:%zu-%zu", at, k);
            }
            break;
        default: { /* an edge integer over a 4-byte field, big-endian (IDX) or little */
            at &= ~(size_t)3;
            if (at + 4 > len)
                break;
            uint32_t v = edge32[below(NE(edge32))];
            int be = (int)below(2);
            for (int q = 0; q < 4; q++)
                buf[at + q] = (unsigned char)(be ? v >> (24 - 8 * q) : v >> (8 * q));
            note(" int32%s:%zu=%u", be ? "be" : "le", at, v);
            break;
        }
        }
    }
    int rc = write_all(out, buf, len);
    free(buf);
    return rc;
}

/* ---- checkpoint, resealed ---- */

/* What mode_reseal changes: one item element or one attribute picked at random, or, with
 * NAME=VALUE, element 0 of item NAME. */
typedef struct reseal {
    int victim, vattr; /* the item / attribute picked (-1: none) */
    const char *set;   /* NAME=VALUE, or NULL */
    char set_name[DT_CK_NAME_MAX];
    double set_val;
} reseal;

/* Parses rs->set, or picks the victim: an attribute (a quarter of the time) or an item, mostly
 * small ones (counters, positions, shapes). 0, or 1 for a malformed NAME=VALUE. */
static int pick_victim(reseal *rs, dt_ck_reader *r)
{
    const int n = dt_ck_count(r), na = dt_ck_attr_count(r);
    rs->victim = rs->vattr = -1;
    if (rs->set) {
        const char *eq = strchr(rs->set, '=');
        if (!eq || (size_t)(eq - rs->set) >= sizeof rs->set_name) {
            fprintf(stderr, "tool_fuzzgen: '%s': expected NAME=VALUE\n", rs->set);
            return 1;
        }
        memcpy(rs->set_name, rs->set, (size_t)(eq - rs->set));
        rs->set_name[eq - rs->set] = '\0';
        rs->set_val = strtod(eq + 1, NULL);
    } else if (below(4) == 0 && na > 0) {
        rs->vattr = (int)below((size_t)na);
    } else {
        /* half the time one of the trainer's counters (train/...): world size, batch,
         * step, epoch, position, the values a resume divides and indexes by */
        const int counters = (int)below(2);
        for (int tries = 0; tries < 64; tries++) {
            rs->victim = (int)below((size_t)n);
            const dt_ck_item *it = dt_ck_item_at(r, rs->victim);
            if (counters && strncmp(it->name, "train/", 6) != 0)
                continue;
            if (it->numel <= 16 || below(4) == 0)
                break;
        }
    }
    return 0;
}

/* Element 0 of item it's data set to v in the item's dtype. */
static void set_element(const dt_ck_item *it, unsigned char *data, double v)
{
    note(" item:%s[0]=%g", it->name, v);
    if (it->dtype == DT_CK_I64) {
        int64_t x = (int64_t)v;
        memcpy(data, &x, 8);
    } else if (it->dtype == DT_CK_F64) {
        memcpy(data, &v, 8);
    } else if (it->dtype == DT_CK_F32) {
        float x = (float)v;
        memcpy(data, &x, 4);
    } else {
        data[0] = (unsigned char)v;
    }
}

/* A random element of item it's data replaced by an edge value of its dtype. */
static void poison_element(const dt_ck_item *it, unsigned char *data)
{
    size_t e = below((size_t)it->numel);
    note(" item:%s[%zu]", it->name, e);
    switch (it->dtype) {
    case DT_CK_I64: {
        static const int64_t v[] = {
            0,     -1,           1, 2, INT32_MAX, (int64_t)INT32_MAX + 1, INT64_MAX, INT64_MIN,
            -1000, 1000000000000};
        int64_t x = v[below(NE(v))];
        memcpy(data + e * 8, &x, 8);
        note("=%lld", (long long)x);
        break;
    }
    case DT_CK_F64: {
        static const double v[] = {0.0,       -1.0,  NAN,    INFINITY,
                                   -INFINITY, 1e308, -1e300, 2147483648.0};
        double x = v[below(NE(v))];
        memcpy(data + e * 8, &x, 8);
        note("=%g", x);
        break;
    }
    case DT_CK_F32: {
        static const float v[] = {0.0f, -1.0f, NAN, INFINITY, -INFINITY, 1e38f, -1e38f};
        float x = v[below(NE(v))];
        memcpy(data + e * 4, &x, 4);
        note("=%g", (double)x);
        break;
    }
    case DT_CK_U8:
        data[e] = (unsigned char)below(256);
        note("=%u", data[e]);
        break;
    }
}

/* Every item of r into w, the victim changed. 0, or 1 when an item cannot be read. */
static int copy_items(const reseal *rs, dt_ck_reader *r, dt_ck_writer *w)
{
    const int n = dt_ck_count(r);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const dt_ck_item *it = dt_ck_item_at(r, i);
        size_t bytes = (size_t)it->numel * dt_ck_dtype_size(it->dtype);
        unsigned char *data = malloc(bytes ? bytes : 1);
        if (dt_ck_read(r, it->name, it->dtype, it->ndim, it->dims, data) != 0) {
            fprintf(stderr, "tool_fuzzgen: %s\n", dt_err_msg());
            rc = 1;
        } else if (rs->set && strcmp(it->name, rs->set_name) == 0 && it->numel > 0) {
            set_element(it, data, rs->set_val);
        } else if (i == rs->victim && it->numel > 0) {
            poison_element(it, data);
        }
        if (rc == 0)
            dt_ck_add_copy(w, it->name, it->dtype, it->ndim, it->dims, data);
        free(data);
    }
    return rc;
}

/* Attribute `name` = val with an edge value written into buf (size bytes): the whole value, or
 * for a multi-line attribute (the config) one random line's value. */
static void poison_attr(const char *name, const char *val, char *buf, size_t size)
{
    snprintf(buf, size, "%s", val);
    const char *v = edge_values[below(NE(edge_values))];
    if (!strchr(buf, '\n')) {
        snprintf(buf, size, "%s", v);
        note(" attr:%s=%s", name, v);
        return;
    }
    size_t nl = 0;
    for (char *p = buf; *p; p++)
        nl += *p == '\n';
    size_t want = below(nl + 1);
    char *p = buf;
    for (size_t k = 0; k < want && strchr(p, '\n'); k++)
        p = strchr(p, '\n') + 1;
    char *e = strchr(p, '=');
    char *end = strchr(p, '\n');
    if (e && (!end || e < end)) {
        char tail[65536];
        snprintf(tail, sizeof tail, "%s", end ? end : "");
        snprintf(e, size - (size_t)(e - buf), "= %s%s", v, tail);
    }
    note(" attr:%s:line%zu=%s", name, want + 1, v);
}

/* Every caller attribute of r into w (the container adds format, format_version and complete
 * itself), the victim changed. */
static void copy_attrs(const reseal *rs, dt_ck_reader *r, dt_ck_writer *w)
{
    const int na = dt_ck_attr_count(r);
    for (int i = 0; i < na; i++) {
        const char *name;
        const char *val = dt_ck_attr_at(r, i, &name);
        if (!strcmp(name, "format") || !strcmp(name, "format_version") || !strcmp(name, "complete"))
            continue;
        if (i == rs->vattr) {
            static char buf[65536];
            poison_attr(name, val, buf, sizeof buf);
            dt_ck_attr(w, name, buf);
        } else {
            dt_ck_attr(w, name, val);
        }
    }
}

/* Rewrites checkpoint in as out with one value changed (see reseal) and valid checksums, so that
 * only the loader's semantic validation can refuse it. 0, or 1 with a message. */
static int mode_reseal(const char *in, const char *out, const char *set)
{
    dt_ck_reader *r;
    if (dt_ck_open(&r, in) != 0) {
        fprintf(stderr, "tool_fuzzgen: %s\n", dt_err_msg());
        return 1;
    }
    reseal rs = {.set = set};
    if (pick_victim(&rs, r) != 0) {
        dt_ck_close(r);
        return 1;
    }
    dt_ck_writer *w = dt_ck_begin(out);
    int rc = copy_items(&rs, r, w);
    if (rc == 0)
        copy_attrs(&rs, r, w);
    dt_ck_close(r);
    if (rc != 0) {
        dt_ck_discard(w);
        return rc;
    }
    if (dt_ck_commit(w) != 0) {
        fprintf(stderr, "tool_fuzzgen: %s\n", dt_err_msg());
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 5 && !(argc == 6 && strcmp(argv[1], "reseal") == 0)) {
        fprintf(stderr, "usage: tool_fuzzgen text|bin|reseal SEED IN OUT [NAME=VALUE]\n");
        return 2;
    }
    rng_state = strtoull(argv[2], NULL, 10) * 0x2545f4914f6cdd1dull + 1;
    int rc;
    note("%s %s:", argv[1], argv[2]);
    if (strcmp(argv[1], "text") == 0) {
        rc = mode_text(argv[3], argv[4]);
    } else if (strcmp(argv[1], "bin") == 0) {
        rc = mode_bin(argv[3], argv[4]);
    } else if (strcmp(argv[1], "reseal") == 0) {
        MPI_Init(&argc, &argv);
        rc = mode_reseal(argv[3], argv[4], argc == 6 ? argv[5] : NULL);
        MPI_Finalize();
    } else {
        fprintf(stderr, "tool_fuzzgen: unknown mode '%s': expected text, bin or reseal\n", argv[1]);
        return 2;
    }
    printf("%s\n", desc);
    return rc;
}
