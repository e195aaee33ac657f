/*
 * plot_runs.c - see plot_runs.h: the CSVs and run.ini of a run folder, the legend labels.
 */
#include "plot_runs.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"

enum { LINE_MAX_LEN = 1 << 16, MAX_COLS = 64, LABEL_KEYS = 4 };

/* keys that name where a run writes, not what it computes: never a legend */
static const char *const ignored_keys[] = {"log.dir", "ckpt.dir", "resume", "train.progress"};
/* shared keys worth the title */
static const char *const title_keys[] = {"model", "data.name", "optim.name", "sched.kind"};

static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        s[--n] = '\0';
}

/* Splits the header line into t->cols. */
static int read_header(dt_plot_table *t, char *line, const char *path)
{
    t->cols = dt_xcalloc(MAX_COLS, sizeof *t->cols);
    char *save = NULL;
    for (char *c = strtok_r(line, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
        if (t->ncol == MAX_COLS)
            return dt_err("%s:1: more than %d columns", path, MAX_COLS);
        t->cols[t->ncol++] = dt_xstrdup(c);
    }
    if (t->ncol == 0)
        return dt_err("%s:1: empty header (expected column names)", path);
    return DT_OK;
}

/* One data line into row r of t. */
static int read_row(dt_plot_table *t, char *line, const char *path, long lineno, int *cap)
{
    if (t->nrow >= INT_MAX)
        return dt_err("%s:%ld: more than %d rows", path, lineno, INT_MAX);
    t->v = dt_xgrow(t->v, (int)t->nrow, cap, (size_t)t->ncol * sizeof *t->v);
    double *row = t->v + (size_t)t->nrow * (size_t)t->ncol;
    int k = 0;
    char *p = line;
    for (;;) {
        char *end;
        errno = 0;
        double x = strtod(p, &end);
        if (end == p || (*end != ',' && *end != '\0'))
            return dt_err("%s:%ld: value %d is not a number (expected %d numbers)", path, lineno,
                          k + 1, t->ncol);
        if (k < t->ncol)
            row[k] = x;
        k++;
        if (*end == '\0')
            break;
        p = end + 1;
    }
    if (k != t->ncol)
        return dt_err("%s:%ld: %d values, the header names %d", path, lineno, k, t->ncol);
    t->nrow++;
    return DT_OK;
}

/* Reads the CSV path into t; a missing file leaves t empty (ncol 0). */
static int read_csv(dt_plot_table *t, const char *path)
{
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? DT_OK : dt_err("%s: cannot open: %s", path, strerror(errno));
    char *line = dt_xmalloc(LINE_MAX_LEN, 1);
    long lineno = 0;
    int cap = 0;
    int rc = DT_OK;
    while (rc == DT_OK && fgets(line, LINE_MAX_LEN, f)) {
        lineno++;
        chomp(line);
        if (line[0] == '#' || line[0] == '\0')
            continue;
        rc = t->cols ? read_row(t, line, path, lineno, &cap) : read_header(t, line, path);
    }
    if (rc == DT_OK && ferror(f))
        rc = dt_err("%s: read failed: %s", path, strerror(errno));
    if (rc == DT_OK && !t->cols)
        rc = dt_err("%s: empty file (expected a header line of column names)", path);
    free(line);
    fclose(f);
    return rc;
}

/* DIR/run.ini's keys ("[section]" prefixes them); a missing file: none. */
static void read_config(dt_plot_run *r, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[4096], section[128] = "";
    int cap = 0;
    while (fgets(line, sizeof line, f)) {
        chomp(line);
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        chomp(line);
        if (line[0] == '[') {
            char *e = strchr(line, ']');
            if (e)
                snprintf(section, sizeof section, "%.*s", (int)(e - line - 1), line + 1);
            continue;
        }
        char *eq = strstr(line, " = ");
        if (!eq)
            continue;
        *eq = '\0';
        r->cfg = dt_xgrow(r->cfg, r->ncfg, &cap, sizeof *r->cfg);
        char key[300];
        snprintf(key, sizeof key, "%s%s%s", section, section[0] ? "." : "", line);
        r->cfg[r->ncfg].key = dt_xstrdup(key);
        r->cfg[r->ncfg].val = dt_xstrdup(eq + 3);
        r->ncfg++;
    }
    fclose(f);
}

int dt_plot_col(const dt_plot_table *t, const char *col)
{
    for (int j = 0; j < t->ncol; j++)
        if (strcmp(t->cols[j], col) == 0)
            return j;
    return -1;
}

int dt_plot_run_read(dt_plot_run *r, const char *dir)
{
    memset(r, 0, sizeof *r);
    r->dir = dir;
    struct stat st;
    if (stat(dir, &st) != 0)
        return dt_err("%s: %s (expected a run's log.dir)", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return dt_err("%s: not a directory (expected a run's log.dir)", dir);
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics_step.csv", dir);
    if (read_csv(&r->step, path) != 0)
        return DT_ERR;
    snprintf(path, sizeof path, "%s/metrics_epoch.csv", dir);
    if (read_csv(&r->epoch, path) != 0)
        return DT_ERR;
    if (r->step.ncol == 0 && r->epoch.ncol == 0)
        return dt_err("%s: no metrics_step.csv or metrics_epoch.csv (a run writes them into the "
                      "folder given by --set log.dir=DIR)",
                      dir);
    if (r->step.nrow == 0 && r->epoch.nrow == 0)
        return dt_err("%s: the metrics files hold no rows yet", dir);
    int ce = dt_plot_col(&r->epoch, "epoch"), cs = dt_plot_col(&r->epoch, "step");
    if (ce >= 0 && cs >= 0 && r->epoch.nrow > 0 && r->epoch.v[ce] > 0)
        r->spe = r->epoch.v[cs] / r->epoch.v[ce];
    snprintf(path, sizeof path, "%s/run.ini", dir);
    read_config(r, path);
    return DT_OK;
}

/* The value of key in run r, or NULL. */
static const char *cfg_get(const dt_plot_run *r, const char *key)
{
    for (int i = 0; i < r->ncfg; i++)
        if (strcmp(r->cfg[i].key, key) == 0)
            return r->cfg[i].val;
    return NULL;
}

static int ignored(const char *key)
{
    for (size_t i = 0; i < sizeof ignored_keys / sizeof *ignored_keys; i++)
        if (strcmp(key, ignored_keys[i]) == 0)
            return 1;
    return 0;
}

/* Whether key has different values (or is missing somewhere) over the runs. */
static int differs(const dt_plot_run *runs, int n, const char *key)
{
    const char *v0 = cfg_get(&runs[0], key);
    for (int i = 1; i < n; i++) {
        const char *v = cfg_get(&runs[i], key);
        if (!v0 || !v || strcmp(v, v0) != 0)
            return 1;
    }
    return 0;
}

DT_PRINTF(3, 4) static void append(char *buf, size_t size, const char *fmt, ...)
{
    size_t len = strlen(buf);
    va_list ap;
    va_start(ap, fmt);
    if (len < size)
        vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
}

void dt_plot_labels(dt_plot_run *runs, int n, char **common)
{
    int all_cfg = 1;
    for (int i = 0; i < n; i++) {
        const char *slash = strrchr(runs[i].dir, '/');
        const char *base = slash && slash[1] ? slash + 1 : runs[i].dir;
        snprintf(runs[i].label, sizeof runs[i].label, "%s", base);
        all_cfg &= runs[i].ncfg > 0;
    }
    char *title = dt_xcalloc(512, 1);
    *common = title;
    if (!all_cfg)
        return;
    for (size_t k = 0; k < sizeof title_keys / sizeof *title_keys; k++)
        if (!differs(runs, n, title_keys[k]) && cfg_get(&runs[0], title_keys[k]))
            append(title, 512, "%s%s = %s", title[0] ? ", " : "", title_keys[k],
                   cfg_get(&runs[0], title_keys[k]));
    if (n < 2)
        return;
    int nkeys = 0;
    char lab[256] = "";
    for (int i = 0; i < n; i++) {
        lab[0] = '\0';
        nkeys = 0;
        for (int k = 0; k < runs[0].ncfg; k++) {
            const char *key = runs[0].cfg[k].key;
            if (ignored(key) || !differs(runs, n, key))
                continue;
            if (nkeys++ < LABEL_KEYS) {
                const char *v = cfg_get(&runs[i], key);
                append(lab, sizeof lab, "%s%s=%s", lab[0] ? " " : "", key, v ? v : "-");
            }
        }
        if (nkeys > LABEL_KEYS)
            append(lab, sizeof lab, " ...");
        if (lab[0])
            snprintf(runs[i].label, sizeof runs[i].label, "%s", lab);
    }
}

static void table_free(dt_plot_table *t)
{
    for (int j = 0; j < t->ncol; j++)
        free(t->cols[j]);
    free(t->cols);
    free(t->v);
    memset(t, 0, sizeof *t);
}

void dt_plot_run_free(dt_plot_run *r)
{
    if (!r)
        return;
    table_free(&r->step);
    table_free(&r->epoch);
    for (int i = 0; i < r->ncfg; i++) {
        free(r->cfg[i].key);
        free(r->cfg[i].val);
    }
    free(r->cfg);
    r->cfg = NULL;
    r->ncfg = 0;
}
