/*
 * tool_ckedit.c - rewrites a dtrain checkpoint with one item changed or removed, and reseals it:
 * the copy is written through the checkpoint writer (ckpt.h), so its checksums are correct and
 * only its VALUES are wrong. The test suites use it to build checkpoints that pass the checksum
 * check but must fail semantic validation (tests/test_resume_bad.sh), without h5py.
 *
 * usage: tool_ckedit IN OUT set ITEM INDEX VALUE    element INDEX (flat, C order) of ITEM
 *        tool_ckedit IN OUT drop ITEM               OUT lacks ITEM
 *        tool_ckedit IN OUT attr NAME VALUE         root attribute NAME (added or replaced)
 * VALUE is read as the item's dtype ("nan" and "inf" for floats). IN and OUT may be equal.
 * Exit 0, or 1 with one message on stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "common.h"

static int usage(void)
{
    fprintf(stderr,
            "usage: tool_ckedit IN OUT set ITEM INDEX VALUE | drop ITEM | attr NAME VALUE\n");
    return 1;
}

static int set_value(const dt_ck_item *it, void *data, const char *index, const char *value)
{
    char *end;
    errno = 0;
    long long k = strtoll(index, &end, 10);
    if (*end || errno || k < 0 || k >= it->numel) {
        fprintf(stderr, "tool_ckedit: %s: index %s outside 0..%lld\n", it->name, index,
                (long long)it->numel - 1);
        return 1;
    }
    errno = 0;
    switch (it->dtype) {
    case DT_CK_F32: ((float *)data)[k] = strtof(value, &end); break;
    case DT_CK_F64: ((double *)data)[k] = strtod(value, &end); break;
    case DT_CK_I64: ((int64_t *)data)[k] = strtoll(value, &end, 10); break;
    case DT_CK_U8: ((unsigned char *)data)[k] = (unsigned char)strtoul(value, &end, 10); break;
    }
    if (*end || errno) {
        fprintf(stderr, "tool_ckedit: %s: '%s' is not a %s value\n", it->name, value,
                dt_ck_dtype_name(it->dtype));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 5)
        return usage();
    const char *in = argv[1], *out = argv[2], *op = argv[3], *target = argv[4];
    int set = strcmp(op, "set") == 0, drop = strcmp(op, "drop") == 0;
    int attr = strcmp(op, "attr") == 0;
    if ((set && argc != 7) || (drop && argc != 5) || (attr && argc != 6) || !(set || drop || attr))
        return usage();
    dt_ck_reader *r = NULL;
    if (dt_ck_open(&r, in) != 0) {
        fprintf(stderr, "tool_ckedit: %s\n", dt_err_msg());
        return 1;
    }
    if ((set || drop) && !dt_ck_has(r, target)) {
        fprintf(stderr, "tool_ckedit: %s: no item '%s'\n", in, target);
        dt_ck_close(r);
        return 1;
    }
    int n = dt_ck_count(r), rc = 0;
    void **bufs = dt_xcalloc((size_t)n + 1, sizeof *bufs);
    dt_ck_writer *w = dt_ck_begin(out);
    for (int i = 0; i < n && rc == 0; i++) {
        const dt_ck_item *it = dt_ck_item_at(r, i);
        if (drop && strcmp(it->name, target) == 0)
            continue;
        bufs[i] = dt_xmalloc((size_t)it->numel * dt_ck_dtype_size(it->dtype) + 1, 1);
        if (dt_ck_read(r, it->name, it->dtype, it->ndim, it->dims, bufs[i]) != 0) {
            fprintf(stderr, "tool_ckedit: %s\n", dt_err_msg());
            rc = 1;
        } else if (set && strcmp(it->name, target) == 0) {
            rc = set_value(it, bufs[i], argv[5], argv[6]);
        }
        if (rc == 0)
            dt_ck_add(w, it->name, it->dtype, it->ndim, it->dims, bufs[i]);
    }
    for (int i = 0; i < dt_ck_attr_count(r) && rc == 0; i++) {
        const char *name, *value = dt_ck_attr_at(r, i, &name);
        if (strcmp(name, "format") == 0 || strcmp(name, "format_version") == 0 ||
            strcmp(name, "complete") == 0 || (attr && strcmp(name, target) == 0))
            continue;
        dt_ck_attr(w, name, value);
    }
    if (attr)
        dt_ck_attr(w, target, argv[5]);
    if (rc == 0) {
        /* IN may be OUT: the commit renames over it, the open reader keeps the old inode */
        if (dt_ck_commit(w) != 0) {
            fprintf(stderr, "tool_ckedit: %s\n", dt_err_msg());
            rc = 1;
        }
    } else {
        dt_ck_discard(w);
    }
    dt_ck_close(r);
    for (int i = 0; i < n; i++)
        free(bufs[i]);
    free(bufs);
    return rc;
}
