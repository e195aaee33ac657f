/*
 * sweep_grid.c - see sweep.h: the grid of a sweep, its trials' names and folders, the manifest
 * that makes a rerun resume, and the done markers.
 */
#include "sweep.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"

/* "A:B:Nlog" or "A:B:Nlin" into n values; 0 when text is not of that form (a plain list). */
static int helper_values(const char *key, const char *text, char **vals, int *n, int *log)
{
    double a, b;
    int cnt, used = 0;
    char kind[8] = "";
    if (sscanf(text, "%lf:%lf:%d%7[a-z]%n", &a, &b, &cnt, kind, &used) != 4 || text[used])
        return 0;
    if (strcmp(kind, "log") != 0 && strcmp(kind, "lin") != 0)
        return dt_err("--grid %s=%s: expected A:B:Nlog or A:B:Nlin, not '%s'", key, text, kind);
    if (cnt < 2 || cnt > DT_SWEEP_MAX_VALUES)
        return dt_err("--grid %s=%s: expected 2 to %d values, not %d", key, text,
                      DT_SWEEP_MAX_VALUES, cnt);
    *log = kind[1] == 'o';
    if (*log && !(a > 0 && b > 0))
        return dt_err("--grid %s=%s: a log-spaced axis needs A > 0 and B > 0", key, text);
    for (int i = 0; i < cnt; i++) {
        double f = (double)i / (cnt - 1);
        double v = *log ? a * pow(b / a, f) : a + (b - a) * f;
        if (i == cnt - 1)
            v = b; /* exactly the end the user asked for */
        char buf[64];
        snprintf(buf, sizeof buf, "%.6g", v);
        vals[i] = dt_xstrdup(buf);
    }
    *n = cnt;
    return 1;
}

/* "V1,V2,..." into n values. */
static int list_values(const char *key, const char *text, char **vals, int *n)
{
    const char *p = text;
    *n = 0;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len == 0)
            return dt_err("--grid %s=%s: an empty value (expected V1,V2,...)", key, text);
        if (*n == DT_SWEEP_MAX_VALUES)
            return dt_err("--grid %s: more than %d values", key, DT_SWEEP_MAX_VALUES);
        char *v = dt_xmalloc(len + 1, 1);
        memcpy(v, p, len);
        v[len] = '\0';
        for (int i = 0; i < *n; i++)
            if (strcmp(vals[i], v) == 0) {
                free(v);
                return dt_err("--grid %s=%s: value '%s' twice", key, text, vals[i]);
            }
        vals[(*n)++] = v;
        if (!c)
            return DT_OK;
        p = c + 1;
    }
}

int dt_sweep_add_axis(dt_sweep *s, const char *spec)
{
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || !eq[1])
        return dt_err("--grid %s: expected KEY=V1,V2,... or KEY=A:B:Nlog or KEY=A:B:Nlin", spec);
    if (s->naxes == DT_SWEEP_MAX_AXES)
        return dt_err("--grid %s: more than %d axes", spec, DT_SWEEP_MAX_AXES);
    dt_sweep_axis *ax = &s->axes[s->naxes];
    memset(ax, 0, sizeof *ax);
    if ((size_t)(eq - spec) >= sizeof ax->key)
        return dt_err("--grid %.40s...: key too long", spec);
    memcpy(ax->key, spec, (size_t)(eq - spec));
    for (int i = 0; i < s->naxes; i++)
        if (strcmp(s->axes[i].key, ax->key) == 0)
            return dt_err("--grid %s: axis %s given twice", spec, ax->key);
    if (strcmp(ax->key, "seed") == 0)
        return dt_err("--grid %s: the seeds are not an axis: use --seeds 0,1,2", spec);
    if (strcmp(ax->key, "ckpt.dir") == 0 || strcmp(ax->key, "log.dir") == 0 ||
        strcmp(ax->key, "ckpt.resume") == 0)
        return dt_err("--grid %s: the sweep sets %s for each trial (DIR/trials/NAME)", spec,
                      ax->key);
    s->naxes++; /* from here on dt_sweep_free frees its values */
    int rc = helper_values(ax->key, eq + 1, ax->vals, &ax->n, &ax->log);
    if (rc == 0)
        rc = list_values(ax->key, eq + 1, ax->vals, &ax->n);
    if (rc < 0)
        return DT_ERR;
    /* every value must be one the key takes (unknown key, malformed, out of bounds) */
    for (int i = 0; i < ax->n; i++) {
        dt_config tmp;
        dt_config_defaults(&tmp);
        if (dt_config_set(&tmp, ax->key, ax->vals[i], "--grid") != 0)
            return DT_ERR;
    }
    return DT_OK;
}

int dt_sweep_set_seeds(dt_sweep *s, const char *text)
{
    const char *p = text;
    s->nseeds = 0;
    for (;;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > 2147483647L || (*end && *end != ','))
            return dt_err("--seeds %s: expected non-negative integers separated by commas", text);
        if (s->nseeds == DT_SWEEP_MAX_SEEDS)
            return dt_err("--seeds %s: more than %d seeds", text, DT_SWEEP_MAX_SEEDS);
        for (int i = 0; i < s->nseeds; i++)
            if (s->seeds[i] == (int)v)
                return dt_err("--seeds %s: seed %ld twice", text, v);
        s->seeds[s->nseeds++] = (int)v;
        if (!*end)
            return DT_OK;
        p = end + 1;
    }
}

/* The axis named by its full key in trial names (cut to fit). A copy by hand: GCC 12's
 * -Wformat-truncation under -fsanitize sees a null destination in the snprintf of this loop. */
static void full_key_name(dt_sweep_axis *ax)
{
    size_t n = strlen(ax->key);
    if (n >= sizeof ax->short_key)
        n = sizeof ax->short_key - 1;
    memcpy(ax->short_key, ax->key, n);
    ax->short_key[n] = '\0';
}

int dt_sweep_finish(dt_sweep *s)
{
    if (s->naxes == 0)
        return dt_err("sweep: expected at least one --grid KEY=VALUES");
    double cells = 1;
    for (int a = 0; a < s->naxes; a++) {
        dt_sweep_axis *ax = &s->axes[a];
        const char *dot = strrchr(ax->key, '.');
        snprintf(ax->short_key, sizeof ax->short_key, "%s", dot ? dot + 1 : ax->key);
        cells *= ax->n;
    }
    /* two axes with one short name (optim.lr, swa.lr): full keys in the names */
    for (int a = 0; a < s->naxes; a++)
        for (int b = a + 1; b < s->naxes; b++)
            if (strcmp(s->axes[a].short_key, s->axes[b].short_key) == 0) {
                full_key_name(&s->axes[a]);
                full_key_name(&s->axes[b]);
            }
    if (cells * s->nseeds > 100000)
        return dt_err("sweep: %.0f trials (cells x seeds): expected at most 100000",
                      cells * s->nseeds);
    s->ncells = (int)cells;
    s->ntrials = s->ncells * s->nseeds;
    return DT_OK;
}

void dt_sweep_free(dt_sweep *s)
{
    for (int a = 0; a < s->naxes; a++)
        for (int i = 0; i < s->axes[a].n; i++) {
            free(s->axes[a].vals[i]);
            s->axes[a].vals[i] = NULL;
        }
    s->naxes = 0;
}

void dt_sweep_trial(const dt_sweep *s, int t, int *idx, int *seed)
{
    int cell = t / s->nseeds;
    *seed = s->seeds[t % s->nseeds];
    for (int a = s->naxes - 1; a >= 0; a--) {
        idx[a] = cell % s->axes[a].n;
        cell /= s->axes[a].n;
    }
}

void dt_sweep_trial_name(const dt_sweep *s, int t, char *name, size_t size)
{
    int idx[DT_SWEEP_MAX_AXES], seed;
    dt_sweep_trial(s, t, idx, &seed);
    size_t len = 0;
    name[0] = '\0';
    for (int a = 0; a < s->naxes && len + 1 < size; a++) {
        len += (size_t)snprintf(name + len, size - len, "%s%s", a ? "_" : "", s->axes[a].short_key);
        /* a value is a file name component: anything but [A-Za-z0-9.+-] becomes '~' */
        for (const char *v = s->axes[a].vals[idx[a]]; *v && len + 1 < size; v++)
            name[len++] = isalnum((unsigned char)*v) || strchr(".+-", *v) ? *v : '~';
        name[len < size ? len : size - 1] = '\0';
    }
    if (len < size)
        snprintf(name + len, size - len, "-seed%d", seed);
}

void dt_sweep_trial_dir(const dt_sweep *s, int t, char *dir, size_t size)
{
    char name[1024];
    dt_sweep_trial_name(s, t, name, sizeof name);
    snprintf(dir, size, "%s/trials/%s", s->out, name);
}

/* The manifest's text: one line per fact. */
static void manifest_text(const dt_sweep *s, const char *base, char *buf, size_t size)
{
    size_t len = (size_t)snprintf(buf, size,
                                  "# dtrain sweep: rerun the same command to resume\n"
                                  "ranks_per_trial = %d\nseeds =",
                                  s->ranks_per_trial);
    for (int i = 0; i < s->nseeds && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%d", i ? "," : " ", s->seeds[i]);
    for (int a = 0; a < s->naxes && len < size; a++) {
        len += (size_t)snprintf(buf + len, size - len, "\ngrid %s =", s->axes[a].key);
        for (int i = 0; i < s->axes[a].n && len < size; i++)
            len +=
                (size_t)snprintf(buf + len, size - len, "%s%s", i ? "," : " ", s->axes[a].vals[i]);
    }
    if (len < size)
        snprintf(buf + len, size - len, "\nbase =%s%s\n", base[0] ? " " : "", base);
}

/* The first line of a that is not a line of b (into out), 1 if there is one. */
static int first_missing(const char *a, const char *b, char *out, size_t size)
{
    while (*a) {
        const char *nl = strchr(a, '\n');
        size_t len = nl ? (size_t)(nl - a) : strlen(a);
        int found = 0;
        for (const char *p = b; *p && !found;) {
            const char *q = strchr(p, '\n');
            size_t l2 = q ? (size_t)(q - p) : strlen(p);
            found = l2 == len && strncmp(p, a, len) == 0;
            p = q ? q + 1 : p + l2;
        }
        if (!found) {
            snprintf(out, size, "%.*s", (int)len, a);
            return 1;
        }
        a = nl ? nl + 1 : a + len;
    }
    return 0;
}

int dt_sweep_manifest(const dt_sweep *s, const char *base)
{
    static char want[65536], have[65536];
    char path[4200];
    manifest_text(s, base, want, sizeof want);
    snprintf(path, sizeof path, "%s/sweep.txt", s->out);
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno != ENOENT)
            return dt_err("%s: cannot read: %s", path, strerror(errno));
        char tmp[4300];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        f = fopen(tmp, "w");
        if (!f)
            return dt_err("%s: cannot write: %s", tmp, strerror(errno));
        int bad = fputs(want, f) < 0;
        bad |= fclose(f) != 0;
        if (bad || rename(tmp, path) != 0)
            return dt_err("%s: cannot write: %s", path, strerror(errno));
        return DT_OK;
    }
    size_t n = fread(have, 1, sizeof have - 1, f);
    fclose(f);
    have[n] = '\0';
    char old_line[4096], new_line[4096];
    if (!first_missing(have, want, old_line, sizeof old_line) &&
        !first_missing(want, have, new_line, sizeof new_line))
        return DT_OK;
    if (!first_missing(have, want, old_line, sizeof old_line))
        snprintf(old_line, sizeof old_line, "(nothing)");
    if (!first_missing(want, have, new_line, sizeof new_line))
        snprintf(new_line, sizeof new_line, "(nothing)");
    return dt_err("%s: this folder holds another sweep: it has '%s' where this command has "
                  "'%s' (rerun the same command to resume it, or use another --out)",
                  path, old_line, new_line);
}

int dt_sweep_read_done(const char *path, char *line, size_t size, char **keys, char **vals, int max)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        return dt_err("%s: cannot read: %s", path, strerror(errno));
    }
    char *got = fgets(line, (int)size, f);
    fclose(f);
    if (!got)
        return 0;
    int n = 0;
    for (char *tok = strtok(line, " \n"); tok && n < max; tok = strtok(NULL, " \n")) {
        char *eq = strchr(tok, '=');
        if (!eq)
            continue;
        *eq = '\0';
        keys[n] = tok;
        vals[n++] = eq + 1;
    }
    return n;
}

const char *dt_sweep_get(char **keys, char **vals, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (strcmp(keys[i], key) == 0)
            return vals[i];
    return NULL;
}
