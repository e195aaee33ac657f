/*
 * plot_runs.h - reading the logs that `dtrain plot` draws: a run's metrics CSVs (metrics.h's
 * metrics_step.csv and metrics_epoch.csv) and its run.ini (the resolved configuration the run
 * recorded), and the legend label of each run made from the configuration keys whose values
 * differ between the runs.
 *
 * Not collective (rank 0 reads); errors follow common.h: one message recorded with dt_err(),
 * naming the file, and a negative return.
 */
#ifndef DT_PLOT_RUNS_H
#define DT_PLOT_RUNS_H

#include <stddef.h>

/* One CSV of a run: ncol named columns, nrow rows, values row-major (nrow x ncol). */
typedef struct dt_plot_table {
    int ncol;
    char **cols;
    long nrow;
    double *v; /* (nrow, ncol) */
} dt_plot_table;

/* The configuration's "section.key = value" pairs (keys before any section: "key"). */
typedef struct dt_plot_kv {
    char *key, *val;
} dt_plot_kv;

typedef struct dt_plot_run {
    const char *dir;
    dt_plot_table step, epoch; /* ncol == 0: the file is absent */
    dt_plot_kv *cfg;           /* from DIR/run.ini, ncfg == 0 when absent */
    int ncfg;
    char label[256]; /* the legend: differing keys, or the folder's name */
    double spe;      /* steps per epoch (from the first epoch row), 0: unknown */
} dt_plot_run;

/* Reads DIR's metrics_step.csv, metrics_epoch.csv and run.ini into r (r->dir = dir, kept).
 * Returns 0, or DT_ERR: "DIR: no such directory", "DIR: no metrics_step.csv or
 * metrics_epoch.csv (...)", "FILE:LINE: N values, the header names M". */
int dt_plot_run_read(dt_plot_run *r, const char *dir);

/* Column col of t, or -1. */
int dt_plot_col(const dt_plot_table *t, const char *col);

/* Each run's label: "key=value ..." for the configuration keys whose values differ between the
 * runs (log.dir, ckpt.dir and resume aside; at most a few, the rest summarized), or the folder's
 * last component where nothing differs or a run has no run.ini. *common receives (malloc'd)
 * "key=value" of a few shared keys worth a title: model, data.name, optim.name, sched.kind. */
void dt_plot_labels(dt_plot_run *runs, int n, char **common);

/* Frees what dt_plot_run_read allocated. */
void dt_plot_run_free(dt_plot_run *r);

#endif
