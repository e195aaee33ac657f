/*
 * cmd_plot.c - `dtrain plot RUN_DIR [RUN_DIR...] [--out FILE.png] [--svg] [--x step|epoch]
 * [--metrics loss,acc,...] [--data DIR]`: training curves from runs' metrics logs (metrics.h:
 * metrics_step.csv, metrics_epoch.csv and run.ini of each log.dir), as small multiples drawn by
 * gnuplot (tools.h), one panel per metric; `dtrain plot --confusion FILE.csv` draws the
 * confusion matrix that `dtrain eval --per-class` wrote (plot_confusion.c).
 *
 * Each run has one colour in every panel; within a panel, line styles tell train (solid) from
 * test (dashed) and other series (dotted). Step rows are drawn at their step, epoch rows at the
 * step that ended the epoch (--x step), or at fractional epochs step / steps_per_epoch and whole
 * epochs (--x epoch). Legends name each run by the configuration keys that differ between the
 * runs (plot_runs.h). More than GROUP runs would tangle: the runs are then split into groups of
 * GROUP, one column of panels per group.
 *
 * The values handed to gnuplot are the CSVs' numbers (read with strtod, written with %.17g, so
 * they read back to the same doubles): `--data DIR` keeps those files and the gnuplot script in
 * DIR (run<i>_step.dat, run<i>_epoch.dat: columns x_step x_epoch, then the CSV's columns).
 * Runs on rank 0; the status is agreed over the ranks.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "dist.h"
#include "plot_confusion.h"
#include "plot_runs.h"
#include "tools.h"

enum { GROUP = 6, MAX_RUNS = 64, PATH_LEN = 4200 };

static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c",
                                     "#ff7f0e", "#9467bd", "#8c564b"};

/* One line of a panel: a column of the step (epoch == 0) or epoch table; dt: gnuplot dash type */
typedef struct series {
    int epoch;
    const char *col, *what;
    int dt;
} series;

typedef struct metric {
    const char *name, *title, *ylabel;
    series s[3];
    const char *key; /* where the legend goes (where curves rarely are) */
} metric;

static const metric metrics[] = {
    {"loss",
     "loss",
     "cross-entropy loss (nats)",
     {{0, "loss", "train", 1}, {1, "test_loss", "test", 2}},
     "top right"},
    {"acc",
     "top-1 accuracy",
     "accuracy (%)",
     {{1, "train_acc", "train", 1}, {1, "test_acc", "test", 2}, {1, "swa_test_acc", "SWA test", 3}},
     "bottom right"},
    {"top5",
     "top-5 accuracy",
     "accuracy (%)",
     {{1, "train_top5", "train", 1},
      {1, "test_top5", "test", 2},
      {1, "swa_test_top5", "SWA test", 3}},
     "bottom right"},
    {"lr", "learning rate", "learning rate", {{0, "lr", "", 1}}, "top right"},
    {"momentum", "momentum", "momentum (Adam: beta1)", {{0, "momentum", "", 1}}, "bottom right"},
    {"grad_norm",
     "gradient norm",
     "L2 norm of the averaged gradient",
     {{0, "grad_norm", "", 1}},
     "top right"},
    {"samples_per_s",
     "throughput",
     "samples/s (all ranks)",
     {{0, "samples_per_s", "", 1}},
     "top left"},
    {"time", "epoch time", "seconds per epoch (training)", {{1, "time_s", "", 1}}, "top right"},
};
enum { N_METRICS = sizeof metrics / sizeof metrics[0] };
static const char *const default_metrics = "loss,acc,top5,lr,grad_norm,samples_per_s";

typedef struct plot_opts {
    const char *out, *x, *mlist, *data_dir, *confusion;
    int svg;
    const char *runs[MAX_RUNS];
    int nruns;
} plot_opts;

static int parse_opts(int argc, char **argv, plot_opts *o)
{
    memset(o, 0, sizeof *o);
    o->x = "step";
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char **val = strcmp(a, "--out") == 0         ? &o->out
                           : strcmp(a, "--x") == 0         ? &o->x
                           : strcmp(a, "--metrics") == 0   ? &o->mlist
                           : strcmp(a, "--data") == 0      ? &o->data_dir
                           : strcmp(a, "--confusion") == 0 ? &o->confusion
                                                           : NULL;
        if (val) {
            if (i + 1 >= argc)
                return dt_err("plot: %s expects a value", a);
            *val = argv[++i];
        } else if (strcmp(a, "--svg") == 0) {
            o->svg = 1;
        } else if (a[0] == '-') {
            return dt_err("plot: unknown option '%s' (expected --out, --svg, --x, --metrics, "
                          "--data or --confusion)",
                          a);
        } else if (o->nruns == MAX_RUNS) {
            return dt_err("plot: more than %d run folders", MAX_RUNS);
        } else {
            o->runs[o->nruns++] = a;
        }
    }
    if (strcmp(o->x, "step") != 0 && strcmp(o->x, "epoch") != 0)
        return dt_err("plot: --x = '%s': expected step or epoch", o->x);
    if (!o->confusion && o->nruns == 0)
        return dt_err("plot: expected one or more run folders (a run's log.dir): dtrain plot "
                      "RUN_DIR [RUN_DIR...] [--out FILE.png]");
    if (o->out && (strlen(o->out) < 5 || strcmp(o->out + strlen(o->out) - 4, ".png") != 0))
        return dt_err("plot: --out = '%s': expected a file name ending in .png", o->out);
    return DT_OK;
}

/* The metrics named by list (comma-separated) into sel (indices into metrics[]). */
static int parse_metrics(const char *list, int *sel, int *nsel)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    *nsel = 0;
    char *save = NULL;
    for (char *m = strtok_r(buf, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
        int k = 0;
        while (k < N_METRICS && strcmp(metrics[k].name, m) != 0)
            k++;
        if (k == N_METRICS)
            return dt_err("plot: --metrics: unknown metric '%s' (expected a comma-separated list "
                          "of loss, acc, top5, lr, momentum, grad_norm, samples_per_s, time)",
                          m);
        if (*nsel < N_METRICS)
            sel[(*nsel)++] = k;
    }
    if (*nsel == 0)
        return dt_err("plot: --metrics is empty");
    return DT_OK;
}

/* The table a series reads in run r; a step series reads the epoch table when there are no
 * step rows (lr). NULL: no such column or no finite value. *col receives the column. */
static const dt_plot_table *series_table(const dt_plot_run *r, const series *s, int *col)
{
    const dt_plot_table *t = s->epoch ? &r->epoch : &r->step;
    if (!s->epoch && t->nrow == 0)
        t = &r->epoch;
    *col = dt_plot_col(t, s->col);
    if (*col < 0)
        return NULL;
    for (long i = 0; i < t->nrow; i++)
        if (isfinite(t->v[(size_t)i * t->ncol + *col]))
            return t;
    return NULL;
}

static int metric_has_data(const dt_plot_run *runs, int n, const metric *m)
{
    int col;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 3 && m->s[k].col; k++)
            if (series_table(&runs[i], &m->s[k], &col))
                return 1;
    return 0;
}

static void write_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, " %.17g", v);
    else
        fputs(" NaN", f);
}

/* One table as a gnuplot data file: x_step x_epoch, then the CSV's columns. */
static int write_table(const char *path, const dt_plot_run *r, const dt_plot_table *t, int epoch)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return dt_err("%s: cannot create: %s", path, strerror(errno));
    fprintf(f, "# %s: x_step x_epoch", r->dir);
    for (int j = 0; j < t->ncol; j++)
        fprintf(f, " %s", t->cols[j]);
    fputc('\n', f);
    const int cs = dt_plot_col(t, "step"), ce = dt_plot_col(t, "epoch");
    for (long i = 0; i < t->nrow; i++) {
        const double *row = t->v + (size_t)i * t->ncol;
        double step = cs >= 0 ? row[cs] : NAN;
        double xe = epoch ? (ce >= 0 ? row[ce] : NAN) : (r->spe > 0 ? step / r->spe : NAN);
        fprintf(f, "%.17g", step);
        write_num(f, xe);
        for (int j = 0; j < t->ncol; j++)
            write_num(f, row[j]);
        fputc('\n', f);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad)
        return dt_err("%s: write failed: %s", path, strerror(errno));
    return DT_OK;
}

static int write_data(const char *dir, const dt_plot_run *runs, int n)
{
    char path[PATH_LEN];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/run%d_step.dat", dir, i);
        if (write_table(path, &runs[i], &runs[i].step, 0))
            return DT_ERR;
        snprintf(path, sizeof path, "%s/run%d_epoch.dat", dir, i);
        if (write_table(path, &runs[i], &runs[i].epoch, 1))
            return DT_ERR;
    }
    return DT_OK;
}

/* One panel: metric m for runs [lo, hi). */
static void write_panel(FILE *g, const char *dir, const dt_plot_run *runs, int lo, int hi,
                        const metric *m, int xepoch, int ngroups)
{
    fprintf(g, "set title ");
    char title[300];
    if (ngroups > 1)
        snprintf(title, sizeof title, "%s (runs %d-%d)", m->title, lo + 1, hi);
    else
        snprintf(title, sizeof title, "%s", m->title);
    dt_tool_gp_quote(g, title);
    /* accuracies: a margin, so that points at the extremes are not cut by the frame */
    fprintf(g, " noenhanced\nset ylabel '%s' noenhanced\nset key %s\nset offsets %s\nplot ",
            m->ylabel, m->key,
            strstr(m->ylabel, "(%)") ? "0, 0, graph 0.05, graph 0.05" : "0, 0, 0, 0");
    int first = 1;
    for (int i = lo; i < hi; i++) {
        for (int k = 0; k < 3 && m->s[k].col; k++) {
            const series *s = &m->s[k];
            int col;
            const dt_plot_table *t = series_table(&runs[i], s, &col);
            if (!t)
                continue;
            char path[PATH_LEN], key[400];
            snprintf(path, sizeof path, "%s/run%d_%s.dat", dir, i,
                     t == &runs[i].epoch ? "epoch" : "step");
            snprintf(key, sizeof key, "%s%s%s", runs[i].label, s->what[0] ? ", " : "", s->what);
            fprintf(g, "%s", first ? "" : ", \\\n     ");
            dt_tool_gp_quote(g, path);
            int points = t == &runs[i].epoch && t->nrow <= 60;
            fprintf(g, " using %d:%d with %s lw 1.8 dt %d lc rgb '%s'%s title ", xepoch ? 2 : 1,
                    col + 3, points ? "linespoints" : "lines", s->dt,
                    colors[(i - lo) % (int)(sizeof colors / sizeof *colors)],
                    points ? " pt 7 ps 0.6" : "");
            dt_tool_gp_quote(g, key);
            fprintf(g, " noenhanced");
            first = 0;
        }
    }
    if (first) /* nothing in this group: an empty panel that says so */
        fprintf(g, "NaN title 'no data in these runs'");
    fputc('\n', g);
}

/* The gnuplot script drawing every panel to out with terminal term (png or svg). */
static int write_script(const char *path, const char *dir, const dt_plot_run *runs, int n,
                        const int *sel, int nsel, const plot_opts *o, const char *out,
                        const char *common, int svg)
{
    FILE *g = fopen(path, "w");
    if (!g)
        return dt_err("%s: cannot create: %s", path, strerror(errno));
    const int ngroups = (n + GROUP - 1) / GROUP, xepoch = strcmp(o->x, "epoch") == 0;
    const int cols = ngroups > 1 ? ngroups : (nsel > 1 ? 2 : 1);
    const int rows = ngroups > 1 ? nsel : (nsel + cols - 1) / cols;
    const int w = 640 * cols, h = 420 * rows + 40;
    if (svg)
        fprintf(g, "set terminal svg size %d,%d dynamic\n", w, h);
    else
        fprintf(g,
                "if (strstrt(' '.GPVAL_TERMINALS.' ', ' pngcairo ') > 0) {\n"
                "  set terminal pngcairo size %d,%d\n} else {\n  set terminal png size %d,%d\n}\n",
                w, h, w, h);
    fprintf(g, "set output ");
    dt_tool_gp_quote(g, out);
    char title[700];
    snprintf(title, sizeof title, "dtrain: %d run%s%s%s (solid: train, dashed: test)", n,
             n > 1 ? "s" : "", common[0] ? "; " : "", common);
    fprintf(g, "\nset multiplot layout %d,%d %s title ", rows, cols,
            ngroups > 1 ? "columnsfirst" : "rowsfirst");
    dt_tool_gp_quote(g, title);
    /* one x range for every panel, so that they line up */
    double xmax = 0.0;
    for (int i = 0; i < n; i++) {
        const dt_plot_table *t[2] = {&runs[i].step, &runs[i].epoch};
        for (int k = 0; k < 2; k++) {
            int c = dt_plot_col(t[k], "step");
            if (c >= 0 && t[k]->nrow > 0) {
                double s = t[k]->v[(size_t)(t[k]->nrow - 1) * t[k]->ncol + c];
                double x = xepoch ? (runs[i].spe > 0 ? s / runs[i].spe : 0.0) : s;
                xmax = x > xmax ? x : xmax;
            }
        }
    }
    fprintf(g,
            " noenhanced\nset grid\nset key font ',9' box opaque\nset xlabel '%s'\nset datafile "
            "missing 'NaN'\n",
            xepoch ? "epoch" : "optimizer step");
    if (xmax > 0)
        fprintf(g, "set xrange [0:%.17g]\n", xmax);
    for (int gi = 0; gi < ngroups; gi++)
        for (int k = 0; k < nsel; k++) {
            int lo = gi * GROUP, hi = lo + GROUP < n ? lo + GROUP : n;
            write_panel(g, dir, runs, lo, hi, &metrics[sel[k]], xepoch, ngroups);
        }
    fprintf(g, "unset multiplot\nunset output\n");
    int bad = ferror(g);
    if (fclose(g) != 0 || bad)
        return dt_err("%s: write failed", path);
    return DT_OK;
}

/* The metrics to draw: --metrics (each must have data in some run), or the default list less
 * those no run has. */
static int select_metrics(const plot_opts *o, const dt_plot_run *runs, int n, int *sel, int *nsel)
{
    int all[N_METRICS], nall;
    if (parse_metrics(o->mlist ? o->mlist : default_metrics, all, &nall) != 0)
        return DT_ERR;
    *nsel = 0;
    for (int k = 0; k < nall; k++) {
        const metric *m = &metrics[all[k]];
        if (metric_has_data(runs, n, m))
            sel[(*nsel)++] = all[k];
        else if (o->mlist) {
            char cols[256] = "";
            for (int j = 0; j < 3 && m->s[j].col; j++)
                snprintf(cols + strlen(cols), sizeof cols - strlen(cols), "%s%s", j ? " or " : "",
                         m->s[j].col);
            return dt_err("plot: --metrics %s: no run has a %s column with values (%s%s)", m->name,
                          cols, runs[0].dir, n > 1 ? ", ..." : "");
        }
    }
    if (*nsel == 0)
        return dt_err("plot: %s: nothing to draw (no metric has values)", runs[0].dir);
    return DT_OK;
}

/* Runs gnuplot on script; a missing gnuplot is an error with the way out. */
static int gnuplot(const char *script, const char *out)
{
    int rc = dt_tool_gnuplot(script, out);
    if (rc == DT_TOOL_NO_GNUPLOT) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dt_err_msg());
        rc = dt_err("%s (install gnuplot, e.g. apt-get install gnuplot-nox, or set DT_GNUPLOT to "
                    "its path)",
                    msg);
    }
    return rc;
}

/* The default image: RUN/curves.png for one run, curves.png here for several. */
static void default_out(const plot_opts *o, char *out, size_t size)
{
    if (o->out)
        snprintf(out, size, "%s", o->out);
    else if (o->nruns == 1)
        snprintf(out, size, "%s/curves.png", o->runs[0]);
    else
        snprintf(out, size, "curves.png");
}

/* Data files and scripts in dir, then gnuplot for the PNG (and the SVG). */
static int draw(const char *dir, dt_plot_run *runs, int n, const int *sel, int nsel,
                const plot_opts *o, const char *common)
{
    char out[PATH_LEN], script[PATH_LEN], svg[PATH_LEN + 8];
    default_out(o, out, sizeof out);
    snprintf(script, sizeof script, "%s/curves.gp", dir);
    int rc = write_data(dir, runs, n);
    if (rc == 0)
        rc = write_script(script, dir, runs, n, sel, nsel, o, out, common, 0);
    if (rc == 0)
        rc = gnuplot(script, out);
    if (rc == 0 && o->svg) {
        snprintf(svg, sizeof svg, "%.*s.svg", (int)strlen(out) - 4, out);
        snprintf(script, sizeof script, "%s/curves_svg.gp", dir);
        rc = write_script(script, dir, runs, n, sel, nsel, o, svg, common, 1);
        if (rc == 0)
            rc = gnuplot(script, svg);
    }
    if (rc == 0) {
        printf("plot: %s%s%s: %d run%s, x = %s, panels:", out, o->svg ? " and " : "",
               o->svg ? svg : "", n, n > 1 ? "s" : "", o->x);
        for (int k = 0; k < nsel; k++)
            printf(" %s", metrics[sel[k]].name);
        printf("\n");
        for (int i = 0; i < n; i++)
            printf("  run %d: %s = %s\n", i + 1, runs[i].dir, runs[i].label);
    }
    return rc;
}

/* Removes what draw() left in the temporary folder dir, and dir. */
static void remove_temp(const char *dir, int n)
{
    char path[PATH_LEN + 64];
    const char *names[] = {"curves.gp", "curves_svg.gp"};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        unlink(path);
    }
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/run%d_step.dat", dir, i);
        unlink(path);
        snprintf(path, sizeof path, "%s/run%d_epoch.dat", dir, i);
        unlink(path);
    }
    rmdir(dir);
}

/* The folder for gnuplot's input: --data DIR (created), or a temporary one (*temp set). */
static int data_dir(const plot_opts *o, char *dir, size_t size, int *temp)
{
    *temp = !o->data_dir;
    if (o->data_dir) {
        snprintf(dir, size, "%s", o->data_dir);
        return dt_mkdir_p(dir);
    }
    const char *t = getenv("TMPDIR");
    snprintf(dir, size, "%s/dtrain-plot.XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(dir))
        return dt_err("%s: cannot create a temporary folder: %s", dir, strerror(errno));
    return DT_OK;
}

static int plot_runs(const plot_opts *o)
{
    dt_plot_run *runs = dt_xcalloc((size_t)o->nruns, sizeof *runs);
    int rc = DT_OK, n = 0, sel[N_METRICS], nsel = 0, temp = 0;
    for (; n < o->nruns && rc == 0; n++) {
        rc = dt_plot_run_read(&runs[n], o->runs[n]);
        if (rc == 0 && strcmp(o->x, "epoch") == 0 && !(runs[n].spe > 0))
            rc = dt_err("plot: --x epoch: %s has no epoch row yet, so its steps per epoch are "
                        "unknown (use --x step)",
                        o->runs[n]);
    }
    char *common = NULL;
    char dir[PATH_LEN - 200]; /* room for the file names inside it */
    if (rc == 0) {
        dt_plot_labels(runs, n, &common);
        rc = select_metrics(o, runs, n, sel, &nsel);
    }
    if (rc == 0 && (rc = data_dir(o, dir, sizeof dir, &temp)) == 0) {
        rc = draw(dir, runs, n, sel, nsel, o, common);
        if (temp)
            remove_temp(dir, n);
    }
    free(common);
    for (int i = 0; i < n; i++)
        dt_plot_run_free(&runs[i]);
    free(runs);
    return rc;
}

int dt_cmd_plot(int argc, char **argv, int world)
{
    (void)world;
    int rc = DT_OK;
    if (dt_rank == 0) {
        plot_opts o;
        rc = parse_opts(argc, argv, &o);
        if (rc == 0)
            rc = o.confusion ? dt_plot_confusion(o.confusion, o.out, o.svg) : plot_runs(&o);
        fflush(stdout);
    }
    return dt_dist_agree(rc, MPI_COMM_WORLD) == 0 ? 0 : 1;
}
