/*
 * ckpt_dir.c - see ckpt_dir.h.
 */
#include "ckpt_dir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "ckpt_hdr.h"
#include "common.h"

#define PATH_MAX_LEN 4096
#define CK_PREFIX "ckpt-step"
#define CK_SUFFIX ".h5"

/* Parses "ckpt-step<1..18 digits>.h5" followed by `rest` (matched literally up to its end, then
 * digits if rest ends in ".tmp."). Returns the number of characters matched, 0 if no match. */
static size_t parse_digits(const char *s, int64_t *v)
{
    size_t k = 0;
    int64_t x = 0;
    while (s[k] >= '0' && s[k] <= '9' && k < 18)
        x = 10 * x + (s[k++] - '0');
    if (s[k] >= '0' && s[k] <= '9')
        return 0;
    *v = x;
    return k;
}

/* 1 if name is exactly "ckpt-step<digits>.h5". */
static int parse_ckpt_name(const char *name, int64_t *step)
{
    if (strncmp(name, CK_PREFIX, strlen(CK_PREFIX)) != 0)
        return 0;
    const char *p = name + strlen(CK_PREFIX);
    size_t k = parse_digits(p, step);
    return k > 0 && strcmp(p + k, CK_SUFFIX) == 0;
}

/* 1 if name is ".ckpt-step<digits>.h5.tmp.<pid>". */
static int parse_tmp_name(const char *name, int64_t *step, int64_t *pid)
{
    static const char tail[] = CK_SUFFIX ".tmp.";
    if (name[0] != '.' || strncmp(name + 1, CK_PREFIX, strlen(CK_PREFIX)) != 0)
        return 0;
    const char *p = name + 1 + strlen(CK_PREFIX);
    size_t k = parse_digits(p, step);
    if (k == 0 || strncmp(p + k, tail, strlen(tail)) != 0)
        return 0;
    p += k + strlen(tail);
    k = parse_digits(p, pid);
    return k > 0 && p[k] == '\0';
}

int dt_ck_step_path(char *out, size_t n, const char *dir, int64_t step)
{
    DT_ASSERT(out && dir && step >= 0);
    int k = snprintf(out, n, "%s%s" CK_PREFIX "%08lld" CK_SUFFIX, dir,
                     dir[0] && dir[strlen(dir) - 1] != '/' ? "/" : "", (long long)step);
    if (k < 0 || (size_t)k >= n)
        return dt_err("%s: checkpoint path longer than %zu bytes", dir, n);
    return DT_OK;
}

static int entry_cmp(const void *a, const void *b)
{
    const dt_ck_entry *x = a, *y = b;
    if (x->step != y->step)
        return x->step < y->step ? -1 : 1;
    return strcmp(x->name, y->name);
}

int dt_ck_scan_dir(const char *dir, dt_ck_entry **out)
{
    DT_ASSERT(dir && out);
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        return dt_err("%s: cannot list checkpoint directory: %s", dir, strerror(errno));
    }
    dt_ck_entry *e = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    for (;;) {
        errno = 0;
        if (!(de = readdir(d)))
            break;
        int64_t step;
        if (!parse_ckpt_name(de->d_name, &step) || strlen(de->d_name) >= sizeof e->name)
            continue;
        e = dt_xgrow(e, n, &cap, sizeof *e);
        e[n].step = step;
        snprintf(e[n].name, sizeof e[n].name, "%s", de->d_name);
        n++;
    }
    int err = errno;
    closedir(d);
    if (err) {
        free(e);
        return dt_err("%s: cannot list checkpoint directory: %s", dir, strerror(err));
    }
    if (n)
        qsort(e, (size_t)n, sizeof *e, entry_cmp);
    *out = e;
    return n;
}

static int join_path(char *out, size_t n, const char *dir, const char *name)
{
    int k = snprintf(out, n, "%s%s%s", dir, dir[0] && dir[strlen(dir) - 1] != '/' ? "/" : "", name);
    if (k < 0 || (size_t)k >= n)
        return dt_err("%s: path of %s too long", dir, name);
    return DT_OK;
}

int dt_ck_find_latest(const char *dir, char *out_path, size_t n, int64_t *step, char *report,
                      size_t m)
{
    return dt_ck_find_latest_if(dir, out_path, n, step, report, m, NULL, NULL);
}

int dt_ck_find_latest_if(const char *dir, char *out_path, size_t n, int64_t *step, char *report,
                         size_t m, int (*accept)(struct dt_ck_reader *r, void *ctx), void *ctx)
{
    DT_ASSERT(dir && out_path && n > 0);
    out_path[0] = '\0';
    size_t rlen = 0;
    int cut = 0;
    if (report && m)
        report[0] = '\0';
    dt_ck_entry *e = NULL;
    int cnt = dt_ck_scan_dir(dir, &e);
    if (cnt < 0)
        return DT_ERR;
    int found = 0;
    for (int i = cnt - 1; i >= 0 && !found; i--) {
        char path[PATH_MAX_LEN];
        if (join_path(path, sizeof path, dir, e[i].name)) {
            free(e);
            return DT_ERR;
        }
        dt_ck_reader *r = NULL;
        int ok = dt_ck_open(&r, path) == DT_OK && (!accept || accept(r, ctx) == DT_OK);
        dt_ck_close(r);
        if (ok) {
            if (strlen(path) >= n) {
                free(e);
                return dt_err("%s: path longer than the %zu bytes given", path, n);
            }
            snprintf(out_path, n, "%s", path);
            if (step)
                *step = e[i].step;
            found = 1;
        } else if (report && m && !cut) {
            /* keep room for "...\n" in case a later line does not fit */
            const char *msg = dt_err_msg();
            if (rlen + strlen("skipped \n") + strlen(msg) + 4 < m) {
                dt_ck_appendf(report, m, &rlen, "skipped %s\n", msg);
            } else {
                dt_ck_appendf(report, m, &rlen, "...\n");
                cut = 1;
            }
        }
    }
    free(e);
    return found;
}

/* Checks only the dtrain header (written last, so the file was completed) and the file size;
 * no data is read. 0 or DT_ERR. */
static int cheap_check(const char *path)
{
    dt_ck_hdr h;
    int rc = dt_ck_hdr_check(path, 0, &h);
    free(h.rg);
    return rc;
}

/* Removes the temporary files of other processes (".ckpt-stepN.h5.tmp.PID") whose step is not
 * above newest. Returns how many, or DT_ERR. */
static int remove_leftovers(const char *dir, int64_t newest)
{
    char path[PATH_MAX_LEN];
    int deleted = 0, rc = DT_ERR;
    DIR *d = opendir(dir);
    if (!d)
        return dt_err("%s: cannot list checkpoint directory: %s", dir, strerror(errno));
    struct dirent *de;
    int err = 0;
    for (;;) {
        errno = 0;
        if (!(de = readdir(d))) {
            err = errno;
            break;
        }
        int64_t step, pid;
        if (!parse_tmp_name(de->d_name, &step, &pid) || pid == (int64_t)getpid() || step > newest)
            continue;
        if (join_path(path, sizeof path, dir, de->d_name))
            goto out;
        if (unlink(path) != 0 && errno != ENOENT) {
            dt_err("%s: cannot delete leftover temporary file: %s", path, strerror(errno));
            goto out;
        }
        deleted++;
    }
    if (err) {
        dt_err("%s: cannot list checkpoint directory: %s", dir, strerror(err));
        goto out;
    }
    rc = deleted;
out:
    closedir(d);
    return rc;
}

int dt_ck_prune(const char *dir, int keep)
{
    DT_ASSERT(dir);
    if (keep < 1)
        return dt_err("%s: keeping %d checkpoints: must keep at least 1", dir, keep);
    dt_ck_entry *e = NULL;
    int cnt = dt_ck_scan_dir(dir, &e);
    if (cnt < 0)
        return DT_ERR;
    char path[PATH_MAX_LEN];
    int rc = DT_ERR, deleted = 0, newest_good = -1;
    for (int i = cnt - 1; i >= 0 && newest_good < 0; i--) {
        if (join_path(path, sizeof path, dir, e[i].name))
            goto out;
        if (cheap_check(path) == DT_OK)
            newest_good = i;
    }
    for (int i = 0; i < cnt - keep; i++) {
        if (i == newest_good)
            continue;
        if (join_path(path, sizeof path, dir, e[i].name))
            goto out;
        if (unlink(path) != 0 && errno != ENOENT) {
            dt_err("%s: cannot delete old checkpoint: %s", path, strerror(errno));
            goto out;
        }
        deleted++;
    }
    /* leftovers of crashed commits that a newer checkpoint has superseded */
    if (cnt > 0) {
        int k = remove_leftovers(dir, e[cnt - 1].step);
        if (k < 0)
            goto out;
        deleted += k;
    }
    rc = deleted;
out:
    free(e);
    return rc;
}
