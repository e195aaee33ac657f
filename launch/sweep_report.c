/*
 * sweep_report.c - see sweep.h: a sweep's results.csv, results.md and heatmap, drawn from the
 * trials' done markers (so a resumed sweep reports the trials of every run). The heatmap is
 * drawn as cluster-examples/gather-sweep.sh draws its own (boxes coloured by test accuracy, each
 * labelled; the same palette), through tools.c's gnuplot runner, with what a sweep with seeds
 * adds: mean and std per cell, log axes, the best cell and the ridge.
 */
#include "sweep.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "tools.h"

enum { MAXKV = 64 };

/* One trial's done marker. */
typedef struct row {
    char text[4096];
    char *keys[MAXKV], *vals[MAXKV];
    int n; /* 0: not finished */
} row;

static const char *get(const row *r, const char *key)
{
    const char *v = dt_sweep_get((char **)r->keys, (char **)r->vals, r->n, key);
    return v ? v : "";
}

/* The metric columns: the trainer's, and any top-5 key a trainer reports. */
static int metric_cols(const row *rows, int nrows, const char **cols)
{
    static const char *const fixed[] = {"train_loss", "test_loss", "test_acc"};
    int n = 0;
    for (int i = 0; i < 3; i++)
        cols[n++] = fixed[i];
    for (int t = 0; t < nrows; t++)
        for (int k = 0; k < rows[t].n && n < 8; k++) {
            int seen = 0;
            for (int c = 0; c < n; c++)
                seen |= strcmp(cols[c], rows[t].keys[k]) == 0;
            if (!seen && strstr(rows[t].keys[k], "top5"))
                cols[n++] = rows[t].keys[k];
        }
    return n;
}

static void write_cell_table(const dt_sweep *s, const row *rows, const char **cols, int nc,
                             FILE *fm);

/* results.csv and results.md. */
static int write_tables(const dt_sweep *s, const row *rows, const char *commit)
{
    char csv[4200], md[4200];
    snprintf(csv, sizeof csv, "%s/results.csv", s->out);
    snprintf(md, sizeof md, "%s/results.md", s->out);
    FILE *fc = fopen(csv, "w"), *fm = fopen(md, "w");
    if (!fc || !fm) {
        if (fc)
            fclose(fc);
        if (fm)
            fclose(fm);
        return dt_err("%s: cannot write the results: %s", s->out, "open failed");
    }
    const char *cols[8];
    int nc = metric_cols(rows, s->ntrials, cols);
    fprintf(fm, "# sweep %s\n\ncommit %s; %d trials; the sweep (sweep.txt):\n\n```\n", s->out,
            commit, s->ntrials);
    char line[4096], path[4200];
    snprintf(path, sizeof path, "%s/sweep.txt", s->out);
    FILE *man = fopen(path, "r");
    while (man && fgets(line, sizeof line, man))
        if (line[0] != '#')
            fputs(line, fm);
    if (man)
        fclose(man);
    fprintf(fm, "```\n\n| trial |");
    fprintf(fc, "trial");
    for (int a = 0; a < s->naxes; a++) {
        fprintf(fc, ",%s", s->axes[a].key);
        fprintf(fm, " %s |", s->axes[a].key);
    }
    fprintf(fc, ",seed,status");
    fprintf(fm, " seed | status |");
    for (int c = 0; c < nc; c++) {
        fprintf(fc, ",%s", cols[c]);
        fprintf(fm, " %s |", cols[c]);
    }
    fprintf(fc, ",epochs,steps,params_crc,wall_s,group,commit,dir\n");
    fprintf(fm, " wall_s |\n|---|");
    for (int c = 0; c < s->naxes + 2 + nc + 1; c++)
        fprintf(fm, "---|");
    fprintf(fm, "\n");
    for (int t = 0; t < s->ntrials; t++) {
        int idx[DT_SWEEP_MAX_AXES], seed;
        char name[1024];
        dt_sweep_trial(s, t, idx, &seed);
        dt_sweep_trial_name(s, t, name, sizeof name);
        const row *r = &rows[t];
        const char *st = r->n ? get(r, "status") : "pending";
        fprintf(fc, "%d", t);
        fprintf(fm, "| %d |", t);
        for (int a = 0; a < s->naxes; a++) {
            fprintf(fc, ",%s", s->axes[a].vals[idx[a]]);
            fprintf(fm, " %s |", s->axes[a].vals[idx[a]]);
        }
        fprintf(fc, ",%d,%s", seed, st);
        fprintf(fm, " %d | %s |", seed, st);
        for (int c = 0; c < nc; c++) {
            fprintf(fc, ",%s", get(r, cols[c]));
            fprintf(fm, " %s |", get(r, cols[c]));
        }
        fprintf(fc, ",%s,%s,%s,%s,%s,%s,trials/%s\n", get(r, "epochs"), get(r, "steps"),
                get(r, "params_crc"), get(r, "trial_s"), get(r, "group"), commit, name);
        fprintf(fm, " %s |\n", get(r, "trial_s"));
    }
    if (s->nseeds > 1)
        write_cell_table(s, rows, cols, nc, fm);
    int bad = ferror(fc) | ferror(fm);
    bad |= fclose(fc) != 0;
    bad |= fclose(fm) != 0;
    return bad ? dt_err("%s: cannot write the results", s->out) : DT_OK;
}

/* Whether an axis is drawn on a log scale: from the log helper, or positive numbers spaced by
 * a constant ratio (within 5%) or spanning a factor of 10 or more, and not evenly spaced. */
static int axis_is_log(const dt_sweep_axis *ax)
{
    if (ax->log)
        return 1;
    if (ax->n < 3)
        return 0;
    double v[DT_SWEEP_MAX_VALUES];
    for (int i = 0; i < ax->n; i++) {
        char *end;
        v[i] = strtod(ax->vals[i], &end);
        if (*end || !(v[i] > 0) || (i && !(v[i] > v[i - 1])))
            return 0;
    }
    double d0 = v[1] - v[0], r0 = v[1] / v[0];
    int even = 1, geo = 1;
    for (int i = 2; i < ax->n; i++) {
        even &= fabs((v[i] - v[i - 1]) - d0) <= 0.01 * d0;
        geo &= fabs(v[i] / v[i - 1] - r0) <= 0.05 * r0;
    }
    return !even && (geo || v[ax->n - 1] / v[0] >= 10);
}

/* The cell coordinates of an axis: log10 of the value on a log axis, else the index. */
static void axis_coords(const dt_sweep_axis *ax, int log, double *c)
{
    for (int i = 0; i < ax->n; i++)
        c[i] = log ? log10(strtod(ax->vals[i], NULL)) : i;
}

/* Edges of cell i: half way to its neighbours (the ends mirror the inner half). */
static void edges(const double *c, int n, int i, double *lo, double *hi)
{
    double dl = i > 0 ? (c[i] - c[i - 1]) / 2 : (n > 1 ? (c[1] - c[0]) / 2 : 0.5);
    double dh = i < n - 1 ? (c[i + 1] - c[i]) / 2 : dl;
    *lo = c[i] - dl;
    *hi = c[i] + dh;
}

/* One cell's statistic of one metric over its seeds. */
typedef struct cell {
    double mean, std;
    int ok, diverged;
} cell;

static void cell_stats_of(const dt_sweep *s, const row *rows, int c, const char *key, cell *out)
{
    double sum = 0, sq = 0;
    memset(out, 0, sizeof *out);
    for (int k = 0; k < s->nseeds; k++) {
        const row *r = &rows[c * s->nseeds + k];
        if (!r->n)
            continue;
        if (strcmp(get(r, "status"), "ok") != 0) {
            out->diverged++;
            continue;
        }
        double v = strtod(get(r, key), NULL);
        sum += v;
        sq += v * v;
        out->ok++;
    }
    out->mean = out->ok ? sum / out->ok : NAN;
    /* the sample std (n - 1, as pandas' and numpy's ddof=1) */
    out->std = out->ok > 1 ? sqrt(fmax(0.0, (sq - sum * sum / out->ok) / (out->ok - 1))) : NAN;
}

static void cell_stats(const dt_sweep *s, const row *rows, int c, cell *out)
{
    cell_stats_of(s, rows, c, "test_acc", out);
}

/* results.md's second table: one row per cell, mean +- std over its seeds of each metric. */
static void write_cell_table(const dt_sweep *s, const row *rows, const char **cols, int nc,
                             FILE *fm)
{
    fprintf(fm, "\n## Cells: mean ± std over seeds (std with n - 1)\n\n|");
    for (int a = 0; a < s->naxes; a++)
        fprintf(fm, " %s |", s->axes[a].key);
    fprintf(fm, " seeds ok | diverged |");
    for (int c = 0; c < nc; c++)
        fprintf(fm, " %s |", cols[c]);
    fprintf(fm, "\n|");
    for (int c = 0; c < s->naxes + 2 + nc; c++)
        fprintf(fm, "---|");
    fprintf(fm, "\n");
    for (int cl = 0; cl < s->ncells; cl++) {
        int idx[DT_SWEEP_MAX_AXES], seed;
        dt_sweep_trial(s, cl * s->nseeds, idx, &seed);
        fprintf(fm, "|");
        for (int a = 0; a < s->naxes; a++)
            fprintf(fm, " %s |", s->axes[a].vals[idx[a]]);
        cell st;
        cell_stats_of(s, rows, cl, cols[0], &st);
        fprintf(fm, " %d | %d |", st.ok, st.diverged);
        for (int c = 0; c < nc; c++) {
            cell_stats_of(s, rows, cl, cols[c], &st);
            if (st.ok == 0)
                fprintf(fm, " - |");
            else if (st.ok == 1)
                fprintf(fm, " %.4g |", st.mean);
            else
                fprintf(fm, " %.4g ± %.2g |", st.mean, st.std);
        }
        fprintf(fm, "\n");
    }
}

/* The ridge: the best x of each row (coordinates into rx, ry), and its least-squares slope
 * d x / d y (NAN with fewer than two rows). Returns the number of rows with a result. */
static int ridge(const dt_sweep *s, const cell *cells, const double *cx, const double *cy,
                 double *rx, double *ry, double *slope)
{
    const int nx = s->axes[0].n, ny = s->axes[1].n;
    int n = 0;
    for (int j = 0; j < ny; j++) {
        int best = -1;
        for (int i = 0; i < nx; i++)
            if (!isnan(cells[i * ny + j].mean) &&
                (best < 0 || cells[i * ny + j].mean > cells[best * ny + j].mean))
                best = i;
        if (best >= 0) {
            rx[n] = cx[best];
            ry[n++] = cy[j];
        }
    }
    double my = 0, mx = 0, sxy = 0, syy = 0;
    for (int k = 0; k < n; k++) {
        my += ry[k] / n;
        mx += rx[k] / n;
    }
    for (int k = 0; k < n; k++) {
        sxy += (ry[k] - my) * (rx[k] - mx);
        syy += (ry[k] - my) * (ry[k] - my);
    }
    *slope = n > 1 && syy > 0 ? sxy / syy : NAN;
    return n;
}

/* heatmap.dat (tab-separated: x y xlo xhi ylo yhi mean diverged label) and heatmap.ridge. Returns
 * the best cell's index (-1: no cell has a result) or DT_ERR - 1 on a write error. */
static int write_heat_data(const dt_sweep *s, const cell *cells, const double *cx, const double *cy,
                           const char *path)
{
    const int nx = s->axes[0].n, ny = s->axes[1].n;
    FILE *f = fopen(path, "w");
    if (!f)
        return DT_ERR - 1;
    int best = -1;
    fprintf(f, "# x\ty\txlo\txhi\tylo\tyhi\tmean_test_acc\tall_diverged\tlabel\n");
    for (int i = 0; i < nx; i++)
        for (int j = 0; j < ny; j++) {
            const cell *c = &cells[i * ny + j];
            double xl, xh, yl, yh;
            char label[64];
            edges(cx, nx, i, &xl, &xh);
            edges(cy, ny, j, &yl, &yh);
            if (c->ok == 0)
                snprintf(label, sizeof label, "%s", c->diverged ? "diverged" : "no result");
            else if (c->ok > 1)
                snprintf(label, sizeof label, "%.2f ± %.2f", c->mean, c->std);
            else
                snprintf(label, sizeof label, "%.2f", c->mean);
            if (c->ok && c->diverged) {
                size_t len = strlen(label);
                snprintf(label + len, sizeof label - len, " (%d div.)", c->diverged);
            }
            if (c->ok && (best < 0 || c->mean > cells[best].mean))
                best = i * ny + j;
            fprintf(f, "%.9g\t%.9g\t%.9g\t%.9g\t%.9g\t%.9g\t%.6g\t%d\t%s\n", cx[i], cy[j], xl, xh,
                    yl, yh, c->ok ? c->mean : NAN, c->ok == 0 && c->diverged > 0, label);
        }
    int bad = ferror(f);
    bad |= fclose(f) != 0;
    return bad ? DT_ERR - 1 : best;
}

/* The tics of one axis ("set xtics (...)"), its range and label. */
static void gp_axis(FILE *f, const char *xy, const dt_sweep_axis *ax, const double *c, int log)
{
    double lo, hi, tmp;
    edges(c, ax->n, 0, &lo, &tmp);
    edges(c, ax->n, ax->n - 1, &tmp, &hi);
    fprintf(f, "set %stics (", xy);
    for (int i = 0; i < ax->n; i++) {
        fprintf(f, "%s", i ? ", " : "");
        dt_tool_gp_quote(f, ax->vals[i]);
        fprintf(f, " %.9g", c[i]);
    }
    fprintf(f, ")\nset %srange [%.9g:%.9g]\nset %slabel ", xy, lo, hi, xy);
    char label[200];
    snprintf(label, sizeof label, "%s%s", ax->key, log ? " (log scale)" : "");
    dt_tool_gp_quote(f, label);
    fprintf(f, " noenhanced\n");
}

/* heatmap.gp: boxes coloured by mean test accuracy (grey: every seed diverged), each labelled,
 * the best cell framed, the ridge as a line. */
static int write_heat_script(const dt_sweep *s, const char *gp, const char *dat,
                             const char *ridge_path, const char *png, int nridge, double slope,
                             int logx, int logy, const double *box)
{
    FILE *f = fopen(gp, "w");
    if (!f)
        return DT_ERR;
    const double *cx = box + 4, *cy = box + 4 + s->axes[0].n;
    fprintf(f, "# gnuplot %s: the sweep's mean test accuracy by %s and %s\n", gp, s->axes[0].key,
            s->axes[1].key);
    fprintf(f, "set terminal pngcairo size 960,640 font ',10'\nset output ");
    dt_tool_gp_quote(f, png);
    char title[512];
    int len = snprintf(title, sizeof title,
                       "test accuracy (%%): mean%s over %d seed%s per cell; "
                       "best cell framed",
                       s->nseeds > 1 ? " ± std" : "", s->nseeds, s->nseeds > 1 ? "s" : "");
    if (nridge > 1 && logx && logy)
        snprintf(title + len, sizeof title - (size_t)len,
                 "\\nridge (best %.100s of each %.100s): slope %.2f in log-log", s->axes[0].key,
                 s->axes[1].key, slope);
    fprintf(f, "\nset title \"%s\" noenhanced\n", title);
    gp_axis(f, "x", &s->axes[0], cx, logx);
    gp_axis(f, "y", &s->axes[1], cy, logy);
    fprintf(f, "set datafile separator '\\t'\nset datafile missing 'nan'\n"
               "set palette defined (0 '#6baed6', 0.5 '#ffffcc', 1 '#fd8d3c')\n"
               "set cblabel 'mean test accuracy (%%)'\nunset key\n");
    if (box[0] == box[0]) /* the best cell */
        fprintf(f,
                "set object 1 rect from %.9g,%.9g to %.9g,%.9g front fs empty border "
                "lc rgb 'black' lw 4\n",
                box[0], box[2], box[1], box[3]);
    fprintf(f, "plot ");
    dt_tool_gp_quote(f, dat);
    fprintf(f, " using 1:2:3:4:5:6:7 with boxxyerror fs solid noborder lc palette, \\\n"
               "     '' using 1:($8 == 1 ? $2 : 1/0):3:4:5:6 with boxxyerror fs solid noborder "
               "lc rgb '#bbbbbb', \\\n"
               "     '' using 1:2:9 with labels noenhanced offset 0,0.8 tc rgb 'black'");
    if (nridge > 0) {
        fprintf(f, ", \\\n     ");
        dt_tool_gp_quote(f, ridge_path);
        fprintf(f, " using 1:2 with linespoints lw 2 pt 7 ps 0.8 lc rgb '#444444'");
    }
    fprintf(f, "\n");
    int bad = ferror(f);
    bad |= fclose(f) != 0;
    return bad ? dt_err("%s: cannot write", gp) : DT_OK;
}

/* The heatmap of the first two axes: data, script, png. */
static int heatmap(const dt_sweep *s, const row *rows, FILE *msg)
{
    const int nx = s->axes[0].n, ny = s->axes[1].n;
    char dat[4200], gp[4200], png[4200], rp[4200];
    snprintf(dat, sizeof dat, "%s/heatmap.dat", s->out);
    snprintf(gp, sizeof gp, "%s/heatmap.gp", s->out);
    snprintf(png, sizeof png, "%s/heatmap.png", s->out);
    snprintf(rp, sizeof rp, "%s/heatmap.ridge", s->out);
    cell *cells = dt_xmalloc((size_t)nx * ny, sizeof *cells);
    double *box = dt_xmalloc((size_t)(4 + nx + ny + 2 * ny), sizeof *box);
    double *cx = box + 4, *cy = cx + nx, *rx = cy + ny, *ry = rx + ny, slope;
    int logx = axis_is_log(&s->axes[0]), logy = axis_is_log(&s->axes[1]), rc = DT_OK;
    axis_coords(&s->axes[0], logx, cx);
    axis_coords(&s->axes[1], logy, cy);
    for (int c = 0; c < nx * ny; c++)
        cell_stats(s, rows, c, &cells[c]);
    int best = write_heat_data(s, cells, cx, cy, dat);
    if (best == -1) {
        fprintf(msg, "sweep: no heatmap yet: no trial has finished ok\n");
        goto done;
    }
    int nr = ridge(s, cells, cx, cy, rx, ry, &slope);
    FILE *f = fopen(rp, "w");
    for (int k = 0; f && k < nr; k++)
        fprintf(f, "%.9g\t%.9g\n", rx[k], ry[k]);
    int bad = !f || fclose(f) != 0;
    if (best < -1 || bad) {
        rc = dt_err("%s: cannot write the heatmap's data", s->out);
        goto done;
    }
    box[0] = NAN;
    if (best >= 0) {
        edges(cx, nx, best / ny, &box[0], &box[1]);
        edges(cy, ny, best % ny, &box[2], &box[3]);
    }
    rc = write_heat_script(s, gp, dat, rp, png, nr, slope, logx, logy, box);
    if (rc == 0 && dt_tool_gnuplot(gp, png) != 0) {
        /* the results are the tables; a plot that cannot be drawn is a note */
        fprintf(msg, "sweep: note: no heatmap.png: %s (the data: %s)\n", dt_err_msg(), dat);
    } else if (rc == 0) {
        fprintf(msg, "sweep: heatmap %s", png);
        if (nr > 1 && logx && logy)
            fprintf(msg, " (ridge slope %.2f in log-log)", slope);
        fprintf(msg, "\n");
    }
done:
    free(cells);
    free(box);
    return rc;
}

/* One axis: mean test accuracy against the axis, std over seeds as error bars (plot.dat,
 * plot.gp, plot.png); a cell where every seed diverged is labelled at the bottom. */
static int line_plot(const dt_sweep *s, const row *rows, FILE *msg)
{
    const dt_sweep_axis *ax = &s->axes[0];
    char dat[4200], gp[4200], png[4200];
    snprintf(dat, sizeof dat, "%s/plot.dat", s->out);
    snprintf(gp, sizeof gp, "%s/plot.gp", s->out);
    snprintf(png, sizeof png, "%s/plot.png", s->out);
    int any = 0;
    for (int i = 0; i < ax->n && !any; i++) {
        cell st;
        cell_stats(s, rows, i, &st);
        any = st.ok > 0;
    }
    if (!any) {
        fprintf(msg, "sweep: no plot yet: no trial has finished ok\n");
        return DT_OK;
    }
    double c[DT_SWEEP_MAX_VALUES];
    int log = axis_is_log(ax);
    axis_coords(ax, log, c);
    FILE *fd = fopen(dat, "w"), *fg = fopen(gp, "w");
    if (!fd || !fg) {
        if (fd)
            fclose(fd);
        if (fg)
            fclose(fg);
        return dt_err("%s: cannot write the plot", s->out);
    }
    fprintf(fd, "# x\tmean_test_acc\tstd\tseeds_ok\tdiverged\n");
    fprintf(fg, "# gnuplot %s: the sweep's mean test accuracy by %s\n", gp, ax->key);
    fprintf(fg, "set terminal pngcairo size 800,520 font ',10'\nset output ");
    dt_tool_gp_quote(fg, png);
    fprintf(fg, "\nset title \"test accuracy (%%): mean%s over %d seed%s\" noenhanced\n",
            s->nseeds > 1 ? " and std" : "", s->nseeds, s->nseeds > 1 ? "s" : "");
    for (int i = 0; i < ax->n; i++) {
        cell st;
        cell_stats(s, rows, i, &st);
        fprintf(fd, "%.9g\t%.6g\t%.6g\t%d\t%d\n", c[i], st.mean, isnan(st.std) ? 0.0 : st.std,
                st.ok, st.diverged);
        if (st.ok == 0 && st.diverged > 0)
            fprintf(fg, "set label 'diverged' at %.9g, graph 0.05 center tc rgb '#c0392b'\n", c[i]);
    }
    gp_axis(fg, "x", ax, c, log);
    fprintf(fg, "set ylabel 'test accuracy (%%)'\nset grid\nunset key\nset datafile separator "
                "'\\t'\nset datafile missing 'nan'\nplot ");
    dt_tool_gp_quote(fg, dat);
    fprintf(fg, " using 1:2:3 with yerrorlines lw 2 pt 7 lc rgb '#e6550d'\n");
    int bad = ferror(fd) | ferror(fg);
    bad |= fclose(fd) != 0;
    bad |= fclose(fg) != 0;
    if (bad)
        return dt_err("%s: cannot write the plot", s->out);
    if (dt_tool_gnuplot(gp, png) != 0)
        fprintf(msg, "sweep: note: no plot.png: %s (the data: %s)\n", dt_err_msg(), dat);
    else
        fprintf(msg, "sweep: plot %s\n", png);
    return DT_OK;
}

int dt_sweep_report(const dt_sweep *s, const char *commit, FILE *f)
{
    row *rows = dt_xcalloc((size_t)s->ntrials, sizeof *rows);
    int rc = DT_OK;
    for (int t = 0; t < s->ntrials && rc == 0; t++) {
        char path[4200];
        dt_sweep_trial_dir(s, t, path, sizeof path);
        size_t len = strlen(path);
        snprintf(path + len, sizeof path - len, "/done");
        rows[t].n = dt_sweep_read_done(path, rows[t].text, sizeof rows[t].text, rows[t].keys,
                                       rows[t].vals, MAXKV);
        if (rows[t].n < 0)
            rc = DT_ERR;
    }
    if (rc == 0)
        rc = write_tables(s, rows, commit);
    if (rc == 0)
        fprintf(f, "sweep: results %s/results.csv and %s/results.md\n", s->out, s->out);
    if (rc == 0 && s->naxes == 2)
        rc = heatmap(s, rows, f);
    if (rc == 0 && s->naxes == 1)
        rc = line_plot(s, rows, f);
    fflush(f);
    free(rows);
    return rc;
}
