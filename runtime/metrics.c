/*
 * metrics.c - the metrics log: see metrics.h for the file layout, buffering and resume contract.
 *
 * Buffers are column-major (buf[j * cap + i] is column j of pending row i), so a flush writes each
 * column's pending rows with one H5Dwrite from a contiguous slice.
 */
#include "metrics.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "h5util.h"
#include "common.h"

#define COL_MAX 64
#define FORMAT_NAME "dtrain-metrics"
#define EPOCH_CAP 16       /* epoch records pending at most (each one flushes) */
#define RESUME_BLOCK 65536 /* rows per block when rewriting the CSVs on resume */
#define PATH_LEN 4096

enum { STEP, EPOCH };
static const char *const group_names[2] = {"step", "epoch"};
static const char *const csv_names[2] = {"metrics_step.csv", "metrics_epoch.csv"};
static const hsize_t chunk_rows[2] = {1024, 64};

typedef struct mset {
    int ncol;
    char (*cols)[COL_MAX];
    double *buf; /* (ncol, cap) column-major pending rows */
    int cap, len;
    int64_t rows; /* rows already in the files */
    char csv_path[PATH_LEN];
    FILE *csv;
} mset;

struct dt_metrics {
    char h5path[PATH_LEN];
    mset s[2];
    int flush_every;
    double flush_s, last_flush; /* dt_metrics_set_flush_s; dt_now() of the last flush (or open) */
    int failed;                 /* a flush failed: the files may hold part of the pending rows */
};

/* Fewest of 15, 16, 17 significant digits that read back to v (%g drops trailing zeros, so
 * 0.1 is "0.1"). */
static void fmt_double(char *buf, size_t n, double v)
{
    for (int p = 15; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

static int col_valid(const char *c)
{
    size_t n = strlen(c);
    return n > 0 && n < COL_MAX && !strpbrk(c, "/,\" \t\r\n") && strcmp(c, ".") != 0 &&
           strcmp(c, "..") != 0;
}

/* Writer file access: no HDF5 file locking, so a reader holding the file open (h5py in a
 * notebook) does not make the next flush fail. */
static hid_t writer_fapl(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0)
        return -1;
#if H5_VERSION_GE(1, 10, 7)
    if (H5Pset_file_locking(fapl, 0, 1) < 0) {
        H5Pclose(fapl);
        return -1;
    }
#endif
    return fapl;
}

static void close_id(hid_t *id, herr_t (*fn)(hid_t), int *ok)
{
    if (*id >= 0 && fn(*id) < 0)
        *ok = 0;
    *id = -1;
}

static void write_header(FILE *f, const mset *s)
{
    for (int j = 0; j < s->ncol; j++)
        fprintf(f, "%s%s", j ? "," : "", s->cols[j]);
    fputc('\n', f);
}

/* Writes rows [0, n) of a column-major block with leading dimension ld as CSV lines. */
static void write_rows(FILE *f, const double *blk, int ncol, size_t ld, size_t n)
{
    char num[40];
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < ncol; j++) {
            fmt_double(num, sizeof num, blk[(size_t)j * ld + i]);
            if (j)
                fputc(',', f);
            fputs(num, f);
        }
        fputc('\n', f);
    }
}

static int write_format_attrs(hid_t file)
{
    hid_t t = -1, s = -1, a = -1, root = -1;
    int ok = 1;
    const char *v = FORMAT_NAME;
    const long long version = 1;
    if ((root = H5Gopen2(file, "/", H5P_DEFAULT)) < 0 || (s = H5Screate(H5S_SCALAR)) < 0 ||
        (t = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 ||
        H5Tset_cset(t, H5T_CSET_UTF8) < 0 ||
        (a = H5Acreate2(root, "format", t, s, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(a, t, &v) < 0 || H5Aclose(a) < 0 ||
        (a = H5Acreate2(root, "format_version", H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(a, H5T_NATIVE_LLONG, &version) < 0)
        ok = 0;
    close_id(&a, H5Aclose, &ok);
    close_id(&t, H5Tclose, &ok);
    close_id(&s, H5Sclose, &ok);
    close_id(&root, H5Gclose, &ok);
    return ok ? 0 : -1;
}

/* A fresh log: metrics.h5 with empty extendible columns, CSVs with only their header. */
static int create_fresh(dt_metrics *m)
{
    hid_t fapl = -1, file = -1, grp = -1, space = -1, dcpl = -1, d = -1;
    int ok = 1;
    const hsize_t zero = 0, unlimited = H5S_UNLIMITED;
    if ((fapl = writer_fapl()) < 0 ||
        (file = H5Fcreate(m->h5path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)) < 0 ||
        write_format_attrs(file) || (space = H5Screate_simple(1, &zero, &unlimited)) < 0)
        ok = 0;
    for (int g = 0; g < 2 && ok; g++) {
        if ((grp = H5Gcreate2(file, group_names[g], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
            (dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 || H5Pset_chunk(dcpl, 1, &chunk_rows[g]) < 0)
            ok = 0;
        for (int j = 0; j < m->s[g].ncol && ok; j++) {
            if ((d = H5Dcreate2(grp, m->s[g].cols[j], H5T_IEEE_F64LE, space, H5P_DEFAULT, dcpl,
                                H5P_DEFAULT)) < 0)
                ok = 0;
            close_id(&d, H5Dclose, &ok);
        }
        close_id(&dcpl, H5Pclose, &ok);
        close_id(&grp, H5Gclose, &ok);
    }
    if (ok && H5Fflush(file, H5F_SCOPE_GLOBAL) < 0)
        ok = 0;
    close_id(&space, H5Sclose, &ok);
    close_id(&file, H5Fclose, &ok);
    close_id(&fapl, H5Pclose, &ok);
    if (!ok)
        return dt_err("%s: cannot create metrics file: %s", m->h5path, dt_h5_error());
    for (int g = 0; g < 2; g++) {
        mset *s = &m->s[g];
        if (!(s->csv = fopen(s->csv_path, "w")))
            return dt_err("%s: cannot create: %s", s->csv_path, strerror(errno));
        write_header(s->csv, s);
        if (fflush(s->csv) != 0 || ferror(s->csv))
            return dt_err("%s: write failed: %s", s->csv_path, strerror(errno));
    }
    return DT_OK;
}

/* Comma-separated names of the links in group grp. */
static void list_names(hid_t grp, hsize_t n, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (hsize_t i = 0; i < n; i++) {
        char name[COL_MAX + 8];
        ssize_t k = H5Lget_name_by_idx(grp, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                                       H5P_DEFAULT);
        if (k < 0)
            break;
        int r = snprintf(buf + len, size - len, "%s%s", i ? ", " : "", name);
        if (r < 0 || (size_t)r >= size - len)
            break;
        len += (size_t)r;
    }
    H5Eclear2(H5E_DEFAULT);
}

static void list_cols(const mset *s, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int j = 0; j < s->ncol; j++) {
        int r = snprintf(buf + len, size - len, "%s%s", j ? ", " : "", s->cols[j]);
        if (r < 0 || (size_t)r >= size - len)
            break;
        len += (size_t)r;
    }
}

/* The links of group grp (group g, nlinks of them) are exactly the run's columns. 0 or DT_ERR. */
static int check_columns(const dt_metrics *m, hid_t grp, int g, hsize_t nlinks)
{
    const mset *s = &m->s[g];
    int same = nlinks == (hsize_t)s->ncol;
    for (int j = 0; j < s->ncol && same; j++) {
        htri_t e = H5Lexists(grp, s->cols[j], H5P_DEFAULT);
        if (e < 0)
            return dt_err("%s: cannot read /%s: %s", m->h5path, group_names[g], dt_h5_error());
        same = e > 0;
    }
    if (same)
        return DT_OK;
    char have[512], want[512];
    list_names(grp, nlinks, have, sizeof have);
    list_cols(s, want, sizeof want);
    return dt_err("%s: %s columns differ: file has (%s), run has (%s)", m->h5path, group_names[g],
                  have, want);
}

/* Opens group g's column datasets into d (the caller closes them) and truncates each to keep
 * rows. 0 or DT_ERR; *ok cleared when a dataspace does not close. */
static int truncate_columns(const dt_metrics *m, hid_t grp, int g, hid_t *d, int64_t keep, int *ok)
{
    const mset *s = &m->s[g];
    const char *gname = group_names[g];
    for (int j = 0; j < s->ncol; j++) {
        hid_t fs = -1;
        hsize_t n = 0, k = (hsize_t)keep;
        if ((d[j] = H5Dopen2(grp, s->cols[j], H5P_DEFAULT)) < 0 || (fs = H5Dget_space(d[j])) < 0 ||
            H5Sget_simple_extent_ndims(fs) != 1 || H5Sget_simple_extent_dims(fs, &n, NULL) < 0) {
            dt_err("%s: cannot read %s/%s: %s", m->h5path, gname, s->cols[j], dt_h5_error());
            close_id(&fs, H5Sclose, ok);
            return DT_ERR;
        }
        close_id(&fs, H5Sclose, ok);
        if (n < k)
            return dt_err("%s: %s/%s has %llu rows, fewer than the %lld to keep on resume",
                          m->h5path, gname, s->cols[j], (unsigned long long)n, (long long)keep);
        if (H5Dset_extent(d[j], &k) < 0)
            return dt_err("%s: cannot truncate %s/%s: %s", m->h5path, gname, s->cols[j],
                          dt_h5_error());
    }
    return DT_OK;
}

/* Writes the first keep rows of group g's columns d to f as CSV, RESUME_BLOCK rows at a time.
 * 0 or DT_ERR; *ok cleared when a dataspace does not close. */
static int copy_rows(const dt_metrics *m, int g, const hid_t *d, int64_t keep, FILE *f, int *ok)
{
    const mset *s = &m->s[g];
    size_t bn = keep < RESUME_BLOCK ? (size_t)keep : RESUME_BLOCK;
    double *blk = dt_xmalloc((size_t)s->ncol * (bn ? bn : 1), sizeof *blk);
    int rc = DT_OK;
    for (int64_t r0 = 0; r0 < keep && rc == DT_OK; r0 += (int64_t)bn) {
        int64_t left = keep - r0;
        hsize_t start = (hsize_t)r0, cnt = (hsize_t)(left < (int64_t)bn ? left : (int64_t)bn);
        for (int j = 0; j < s->ncol && rc == DT_OK; j++) {
            hid_t fs = -1, ms = -1;
            if ((fs = H5Dget_space(d[j])) < 0 ||
                H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &cnt, NULL) < 0 ||
                (ms = H5Screate_simple(1, &cnt, NULL)) < 0 ||
                H5Dread(d[j], H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, blk + (size_t)j * bn) < 0)
                rc = dt_err("%s: cannot read %s/%s: %s", m->h5path, group_names[g], s->cols[j],
                            dt_h5_error());
            close_id(&ms, H5Sclose, ok);
            close_id(&fs, H5Sclose, ok);
        }
        if (rc == DT_OK)
            write_rows(f, blk, s->ncol, bn, (size_t)cnt);
    }
    free(blk);
    return rc;
}

/* Rebuilds group g's CSV from the first keep rows of its columns d: a temporary file renamed
 * over the old one (atomic), then reopened for appending. 0 or DT_ERR (the old CSV intact
 * unless only the reopen failed). */
static int rewrite_csv(dt_metrics *m, int g, const hid_t *d, int64_t keep, int *ok)
{
    mset *s = &m->s[g];
    char tmp[PATH_LEN + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", s->csv_path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return dt_err("%s: cannot create: %s", tmp, strerror(errno));
    write_header(f, s);
    int rc = copy_rows(m, g, d, keep, f, ok);
    if (rc == DT_OK && (fflush(f) != 0 || ferror(f)))
        rc = dt_err("%s: write failed: %s", tmp, strerror(errno));
    int cr = fclose(f);
    if (rc == DT_OK && cr != 0)
        rc = dt_err("%s: write failed: %s", tmp, strerror(errno));
    if (rc == DT_OK && rename(tmp, s->csv_path) != 0)
        rc = dt_err("%s: cannot replace with %s: %s", s->csv_path, tmp, strerror(errno));
    if (rc != DT_OK) {
        remove(tmp);
        return rc;
    }
    if (!(s->csv = fopen(s->csv_path, "a")))
        return dt_err("%s: cannot open: %s", s->csv_path, strerror(errno));
    return DT_OK;
}

/* Truncates group g of an open file to `keep` rows and rewrites its CSV from them. */
static int resume_set(dt_metrics *m, hid_t file, int g, int64_t keep)
{
    mset *s = &m->s[g];
    const char *gname = group_names[g];
    hid_t *d = dt_xmalloc((size_t)s->ncol, sizeof *d);
    for (int j = 0; j < s->ncol; j++)
        d[j] = -1;
    int rc = DT_ERR, ok = 1;
    H5G_info_t gi;
    hid_t grp = H5Gopen2(file, gname, H5P_DEFAULT);
    if (grp < 0 || H5Gget_info(grp, &gi) < 0) {
        dt_err("%s: no group /%s: %s", m->h5path, gname, dt_h5_error());
    } else if (check_columns(m, grp, g, gi.nlinks) == 0 &&
               truncate_columns(m, grp, g, d, keep, &ok) == 0 &&
               rewrite_csv(m, g, d, keep, &ok) == 0) {
        s->rows = keep;
        rc = DT_OK;
    }
    for (int j = 0; j < s->ncol; j++)
        close_id(&d[j], H5Dclose, &ok);
    close_id(&grp, H5Gclose, &ok);
    if (rc == DT_OK && !ok)
        rc = dt_err("%s: cannot close /%s: %s", m->h5path, gname, dt_h5_error());
    H5Eclear2(H5E_DEFAULT);
    free(d);
    return rc;
}

static int resume(dt_metrics *m, int64_t rs, int64_t re)
{
    struct stat st;
    if (stat(m->h5path, &st) != 0)
        return dt_err("%s: cannot resume the metrics log: %s", m->h5path, strerror(errno));
    hid_t fapl = writer_fapl(), file = -1;
    int ok = 1, rc = DT_ERR;
    if (fapl < 0 || (file = H5Fopen(m->h5path, H5F_ACC_RDWR, fapl)) < 0) {
        dt_err("%s: cannot open metrics file: %s", m->h5path, dt_h5_error());
        goto out;
    }
    if (resume_set(m, file, STEP, rs) || resume_set(m, file, EPOCH, re))
        goto out;
    if (H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) {
        dt_err("%s: flush failed: %s", m->h5path, dt_h5_error());
        goto out;
    }
    rc = DT_OK;
out:
    close_id(&file, H5Fclose, &ok);
    close_id(&fapl, H5Pclose, &ok);
    if (rc == DT_OK && !ok)
        rc = dt_err("%s: cannot close metrics file: %s", m->h5path, dt_h5_error());
    H5Eclear2(H5E_DEFAULT);
    return rc;
}

/* now as "2026-12-02T10:11:20Z" */
static void utc_now(char *buf, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, n, "unknown");
}

/* Root attributes of metrics.h5 (replacing those of an earlier start). */
static int write_prov_attrs(hid_t root, const dt_metrics_prov *p, const char *started)
{
    const char *snames[] = {"config", "kernels_isa", "commit", "dtrain_version", "started"};
    const char *svals[] = {p->config, p->isa, p->commit, p->version, started};
    const char *inames[] = {"seed", "world_size", "threads"};
    const long long ivals[] = {p->seed, p->world_size, p->threads};
    for (int i = 0; i < 5; i++)
        if ((H5Aexists(root, snames[i]) > 0 && H5Adelete(root, snames[i]) < 0) ||
            dt_h5_write_str_attr(root, snames[i], svals[i] ? svals[i] : "") != 0)
            return DT_ERR;
    for (int i = 0; i < 3; i++)
        if ((H5Aexists(root, inames[i]) > 0 && H5Adelete(root, inames[i]) < 0) ||
            dt_h5_write_num_attr(root, inames[i], H5T_STD_I64LE, H5T_NATIVE_LLONG, &ivals[i]) != 0)
            return DT_ERR;
    return DT_OK;
}

/* DIR/run.ini: the provenance as comments, then the configuration; written to a temporary file
 * renamed over the old one. */
static int write_run_ini(const dt_metrics *m, const dt_metrics_prov *p, const char *started)
{
    char path[PATH_LEN + 16], tmp[PATH_LEN + 24];
    snprintf(path, sizeof path, "%.*s/run.ini", (int)(strlen(m->h5path) - strlen("/metrics.h5")),
             m->h5path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return dt_err("%s: cannot create: %s", tmp, strerror(errno));
    fprintf(f,
            "# run.ini - the run that wrote metrics.h5, metrics_step.csv and metrics_epoch.csv\n"
            "# here (dtrain train -c run.ini runs it again)\n"
            "# started: %s\n# commit: %s\n# dtrain_version: %s\n# world_size: %d\n"
            "# threads: %d\n# kernels_isa: %s\n# seed: %lld\n",
            started, p->commit, p->version, p->world_size, p->threads, p->isa, p->seed);
    fputs(p->config ? p->config : "", f);
    int bad = fflush(f) != 0 || ferror(f);
    if (fclose(f) != 0 || bad) {
        remove(tmp);
        return dt_err("%s: write failed: %s", tmp, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        remove(tmp);
        return dt_err("%s: cannot replace with %s: %s", path, tmp, strerror(errno));
    }
    return DT_OK;
}

int dt_metrics_provenance(dt_metrics *m, const dt_metrics_prov *p)
{
    DT_ASSERT(m && p);
    char started[32];
    utc_now(started, sizeof started);
    hid_t fapl = writer_fapl(), file = -1, root = -1;
    int ok = 1, rc = DT_OK;
    if (fapl < 0 || (file = H5Fopen(m->h5path, H5F_ACC_RDWR, fapl)) < 0 ||
        (root = H5Gopen2(file, "/", H5P_DEFAULT)) < 0 || write_prov_attrs(root, p, started) ||
        H5Fflush(file, H5F_SCOPE_GLOBAL) < 0)
        rc = dt_err("%s: cannot write the run's attributes: %s", m->h5path, dt_h5_error());
    close_id(&root, H5Gclose, &ok);
    close_id(&file, H5Fclose, &ok);
    close_id(&fapl, H5Pclose, &ok);
    H5Eclear2(H5E_DEFAULT);
    if (rc == DT_OK && !ok)
        rc = dt_err("%s: close failed: %s", m->h5path, dt_h5_error());
    return rc == DT_OK ? write_run_ini(m, p, started) : rc;
}

/* The root string attribute name of the HDF5 file path (malloc'd), or NULL. */
static char *file_attr(const char *path, const char *name)
{
    char *v = NULL;
    hid_t fapl = writer_fapl(), file = -1;
    if (fapl >= 0 && (file = H5Fopen(path, H5F_ACC_RDONLY, fapl)) >= 0 &&
        dt_h5_get_attr_string(file, name, &v) != 1) {
        free(v);
        v = NULL;
    }
    if (file >= 0)
        H5Fclose(file);
    if (fapl >= 0)
        H5Pclose(fapl);
    H5Eclear2(H5E_DEFAULT);
    return v;
}

int dt_metrics_check_fresh(const char *dir, const char *config, int restart)
{
    char path[PATH_LEN + 16];
    snprintf(path, sizeof path, "%s/metrics.h5", dir);
    struct stat st;
    if (stat(path, &st) != 0)
        return DT_OK;
    dt_h5_init();
    char *old = file_attr(path, "config");
    /* no recorded configuration: a run killed between creating its log and recording itself
     * (or a log from before provenance); a --resume auto restart takes it over */
    int same = !old || (config && strcmp(old, config) == 0);
    free(old);
    if (restart && same)
        return DT_OK;
    char *commit = file_attr(path, "commit"), *started = file_attr(path, "started");
    dt_err("log.dir %s already holds the metrics of another run (%s, started %s, commit %s): a "
           "run appends to a log only when it resumes it (--resume); choose another log.dir, or "
           "move %s away",
           dir, path, started ? started : "unknown", commit ? commit : "unknown", path);
    free(commit);
    free(started);
    return DT_ERR;
}

static void free_metrics(dt_metrics *m)
{
    for (int g = 0; g < 2; g++) {
        if (m->s[g].csv)
            fclose(m->s[g].csv);
        free(m->s[g].cols);
        free(m->s[g].buf);
    }
    free(m);
}

static int setup_set(dt_metrics *m, int g, const char *dir, const char *const *cols, int n, int cap)
{
    mset *s = &m->s[g];
    if (n < 1 || !cols)
        return dt_err("%s: metrics log needs at least one %s column", dir, group_names[g]);
    s->ncol = n;
    s->cols = dt_xcalloc((size_t)n, sizeof *s->cols);
    for (int j = 0; j < n; j++) {
        if (!cols[j] || !col_valid(cols[j]))
            return dt_err("%s: bad %s column name '%s' (1..%d characters, none of / , \" or "
                          "whitespace)",
                          dir, group_names[g], cols[j] ? cols[j] : "(null)", COL_MAX - 1);
        for (int k = 0; k < j; k++)
            if (strcmp(cols[k], cols[j]) == 0)
                return dt_err("%s: %s column '%s' given twice", dir, group_names[g], cols[j]);
        snprintf(s->cols[j], COL_MAX, "%s", cols[j]);
    }
    s->cap = cap;
    s->buf = dt_xmalloc((size_t)n * (size_t)cap, sizeof *s->buf);
    int k = snprintf(s->csv_path, sizeof s->csv_path, "%s/%s", dir, csv_names[g]);
    if (k < 0 || (size_t)k >= sizeof s->csv_path)
        return dt_err("%s: path too long", dir);
    return DT_OK;
}

int dt_metrics_open(dt_metrics **out, const char *dir, const char *const *step_cols, int nstep,
                    const char *const *epoch_cols, int nepoch, int64_t resume_steps,
                    int64_t resume_epochs, int flush_every)
{
    DT_ASSERT(out && dir);
    *out = NULL;
    dt_h5_init();
    struct stat st;
    if (stat(dir, &st) != 0)
        return dt_err("%s: cannot open metrics directory: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return dt_err("%s: not a directory", dir);
    if (flush_every < 1)
        return dt_err("%s: metrics flush interval %d, must be >= 1", dir, flush_every);
    if (resume_steps < 0 || resume_epochs < 0)
        return dt_err("%s: cannot resume the metrics log at %lld steps, %lld epochs", dir,
                      (long long)resume_steps, (long long)resume_epochs);
    dt_metrics *m = dt_xcalloc(1, sizeof *m);
    m->flush_every = flush_every;
    m->last_flush = dt_now();
    int k = snprintf(m->h5path, sizeof m->h5path, "%s/metrics.h5", dir);
    if (k < 0 || (size_t)k >= sizeof m->h5path) {
        free_metrics(m);
        return dt_err("%s: path too long", dir);
    }
    if (setup_set(m, STEP, dir, step_cols, nstep, flush_every) ||
        setup_set(m, EPOCH, dir, epoch_cols, nepoch, EPOCH_CAP)) {
        free_metrics(m);
        return DT_ERR;
    }
    int rc = resume_steps == 0 && resume_epochs == 0 ? create_fresh(m)
                                                     : resume(m, resume_steps, resume_epochs);
    if (rc) {
        free_metrics(m);
        return DT_ERR;
    }
    *out = m;
    return DT_OK;
}

/* Extends every column of group g by the pending rows and writes them. */
static int flush_h5_set(dt_metrics *m, hid_t file, int g)
{
    mset *s = &m->s[g];
    hid_t d = -1, fs = -1, ms = -1;
    int ok = 1, rc = DT_ERR;
    char name[COL_MAX + 8];
    const hsize_t start = (hsize_t)s->rows, cnt = (hsize_t)s->len,
                  total = (hsize_t)s->rows + (hsize_t)s->len;
    for (int j = 0; j < s->ncol; j++) {
        hsize_t n = 0;
        snprintf(name, sizeof name, "%s/%s", group_names[g], s->cols[j]);
        if ((d = H5Dopen2(file, name, H5P_DEFAULT)) < 0 || (fs = H5Dget_space(d)) < 0 ||
            H5Sget_simple_extent_dims(fs, &n, NULL) < 0)
            goto h5fail;
        if (n != start) {
            dt_err("%s: %s has %llu rows, expected %lld (changed by another program?)", m->h5path,
                   name, (unsigned long long)n, (long long)s->rows);
            goto out;
        }
        close_id(&fs, H5Sclose, &ok);
        if (H5Dset_extent(d, &total) < 0 || (fs = H5Dget_space(d)) < 0 ||
            H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &cnt, NULL) < 0 ||
            (ms = H5Screate_simple(1, &cnt, NULL)) < 0 ||
            H5Dwrite(d, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT,
                     s->buf + (size_t)j * (size_t)s->cap) < 0)
            goto h5fail;
        close_id(&ms, H5Sclose, &ok);
        close_id(&fs, H5Sclose, &ok);
        close_id(&d, H5Dclose, &ok);
        if (!ok)
            goto h5fail;
    }
    rc = DT_OK;
    goto out;
h5fail:
    dt_err("%s: cannot append to %s: %s", m->h5path, name, dt_h5_error());
out:
    close_id(&ms, H5Sclose, &ok);
    close_id(&fs, H5Sclose, &ok);
    close_id(&d, H5Dclose, &ok);
    return rc;
}

int dt_metrics_flush(dt_metrics *m)
{
    DT_ASSERT(m);
    if (m->failed)
        return dt_err("%s: metrics log unusable after an earlier write error", m->h5path);
    m->last_flush = dt_now();
    if (m->s[STEP].len == 0 && m->s[EPOCH].len == 0)
        return DT_OK;
    hid_t fapl = writer_fapl(), file = -1;
    int ok = 1, rc = DT_ERR;
    if (fapl < 0 || (file = H5Fopen(m->h5path, H5F_ACC_RDWR, fapl)) < 0) {
        dt_err("%s: cannot open metrics file: %s", m->h5path, dt_h5_error());
        goto out;
    }
    for (int g = 0; g < 2; g++)
        if (m->s[g].len && flush_h5_set(m, file, g))
            goto out;
    if (H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) {
        dt_err("%s: flush failed: %s", m->h5path, dt_h5_error());
        goto out;
    }
    close_id(&file, H5Fclose, &ok);
    if (!ok) {
        dt_err("%s: close failed: %s", m->h5path, dt_h5_error());
        goto out;
    }
    for (int g = 0; g < 2; g++) {
        mset *s = &m->s[g];
        if (!s->len)
            continue;
        write_rows(s->csv, s->buf, s->ncol, (size_t)s->cap, (size_t)s->len);
        if (fflush(s->csv) != 0 || ferror(s->csv)) {
            dt_err("%s: write failed: %s", s->csv_path, strerror(errno));
            goto out;
        }
        s->rows += s->len;
        s->len = 0;
    }
    rc = DT_OK;
out:
    close_id(&file, H5Fclose, &ok);
    close_id(&fapl, H5Pclose, &ok);
    H5Eclear2(H5E_DEFAULT);
    if (rc != DT_OK)
        m->failed = 1;
    return rc;
}

static void append_row(mset *s, const double *vals)
{
    for (int j = 0; j < s->ncol; j++)
        s->buf[(size_t)j * (size_t)s->cap + (size_t)s->len] = vals[j];
    s->len++;
}

int dt_metrics_step(dt_metrics *m, const double *vals)
{
    DT_ASSERT(m && vals);
    mset *s = &m->s[STEP];
    if (s->len == s->cap && dt_metrics_flush(m))
        return DT_ERR;
    append_row(s, vals);
    if (s->len >= m->flush_every || (m->flush_s > 0.0 && dt_now() - m->last_flush >= m->flush_s))
        return dt_metrics_flush(m);
    return DT_OK;
}

void dt_metrics_set_flush_s(dt_metrics *m, double seconds)
{
    DT_ASSERT(m && seconds >= 0.0);
    m->flush_s = seconds;
}

int dt_metrics_epoch(dt_metrics *m, const double *vals)
{
    DT_ASSERT(m && vals);
    mset *s = &m->s[EPOCH];
    if (s->len == s->cap && dt_metrics_flush(m))
        return DT_ERR;
    append_row(s, vals);
    return dt_metrics_flush(m);
}

int64_t dt_metrics_step_rows(const dt_metrics *m) { return m->s[STEP].rows + m->s[STEP].len; }

int64_t dt_metrics_epoch_rows(const dt_metrics *m) { return m->s[EPOCH].rows + m->s[EPOCH].len; }

int dt_metrics_close(dt_metrics *m)
{
    if (!m)
        return DT_OK;
    int rc = dt_metrics_flush(m);
    for (int g = 0; g < 2; g++) {
        mset *s = &m->s[g];
        if (s->csv && fclose(s->csv) != 0 && rc == DT_OK)
            rc = dt_err("%s: close failed: %s", s->csv_path, strerror(errno));
        s->csv = NULL;
    }
    free_metrics(m);
    return rc;
}

/* a ranks above b: larger, NaN above any number */
static int ranks_above(float a, float b)
{
    if (isnan(a))
        return !isnan(b);
    return !isnan(b) && a > b;
}

int dt_metrics_topk_hits(const float *logits, const int *labels, int N, int K, int k)
{
    DT_ASSERT(logits && labels && N >= 0 && K >= 1 && k >= 1);
    if (k >= K)
        return N;
    int hits = 0;
    for (int i = 0; i < N; i++) {
        const float *z = logits + (size_t)i * K;
        const int y = labels[i];
        DT_ASSERT(y >= 0 && y < K);
        const float zy = z[y];
        /* the label's 0-based place: classes above it, and equal ones of lower index */
        int above = 0;
        for (int c = 0; c < K && above < k; c++)
            above += ranks_above(z[c], zy) || (c < y && (z[c] == zy || (isnan(z[c]) && isnan(zy))));
        hits += above < k;
    }
    return hits;
}
