/*
 * sweep.h - the parts of `dtrain sweep` (cmd_sweep.c runs it): the grid and its trials
 * (sweep_grid.c) and the results table and heatmap (sweep_report.c).
 *
 * A sweep is a grid of axes (a configuration key and its values, as text given to --set) times a
 * list of seeds. Trial t is cell t / nseeds (the first axis varies slowest) with seed
 * seeds[t % nseeds]; its folder is OUT/trials/NAME, NAME being the axis values and the seed
 * (`lr0.05_batch_size64-seed0`). A finished trial leaves OUT/trials/NAME/done: one line of
 * key=value pairs (status, trial_s and the trainer's final line).
 *
 * Errors follow common.h: one message recorded with dt_err(), a negative return; nothing here
 * is collective (cmd_sweep.c agrees over the ranks).
 */
#ifndef DT_SWEEP_H
#define DT_SWEEP_H

#include <stddef.h>
#include <stdio.h>

enum { DT_SWEEP_MAX_AXES = 8, DT_SWEEP_MAX_VALUES = 256, DT_SWEEP_MAX_SEEDS = 64 };

typedef struct dt_sweep_axis {
    char key[128];
    char *vals[DT_SWEEP_MAX_VALUES]; /* (n) the values, as --set gets them */
    int n;
    int log;            /* from the log helper A:B:Nlog (the heatmap's log axis) */
    char short_key[64]; /* the key in trial names: its last component, or the key */
} dt_sweep_axis;

typedef struct dt_sweep {
    dt_sweep_axis axes[DT_SWEEP_MAX_AXES];
    int naxes;
    int seeds[DT_SWEEP_MAX_SEEDS];
    int nseeds;
    int ncells, ntrials; /* product of the axes' sizes; cells x seeds */
    int ranks_per_trial;
    char out[4096];
} dt_sweep;

/* Adds the axis of one --grid KEY=VALUES: "V1,V2,...", "A:B:Nlog" (N values from A to B,
 * log-spaced) or "A:B:Nlin" (linearly spaced). The key and every value are checked against the
 * configuration table (dt_config_set, source "--grid"). Returns 0 or DT_ERR. */
int dt_sweep_add_axis(dt_sweep *s, const char *spec);
/* Parses --seeds "0,1,2" (non-negative integers, no repeats). Returns 0 or DT_ERR. */
int dt_sweep_set_seeds(dt_sweep *s, const char *text);
/* After the axes and seeds: the counts and the axes' short keys. Returns 0 or DT_ERR (too many
 * trials). */
int dt_sweep_finish(dt_sweep *s);
/* Frees the value strings. */
void dt_sweep_free(dt_sweep *s);

/* Trial t's value index on each axis (idx[0..naxes)) and its seed. */
void dt_sweep_trial(const dt_sweep *s, int t, int *idx, int *seed);
/* Trial t's folder name (NAME above) and its folder OUT/trials/NAME. */
void dt_sweep_trial_name(const dt_sweep *s, int t, char *name, size_t size);
void dt_sweep_trial_dir(const dt_sweep *s, int t, char *dir, size_t size);

/* OUT/sweep.txt: the grid, seeds, group size and base options (`base`, one line) of the sweep
 * in OUT. Written when absent; when present, it must say the same (a rerun of the same command
 * resumes), else an error names the first line that differs. Returns 0 or DT_ERR. */
int dt_sweep_manifest(const dt_sweep *s, const char *base);

/* Reads a done marker into keys/vals (at most max pairs, pointers into line, which holds the
 * text). Returns the number of pairs, 0 when there is none (not finished), DT_ERR on a read
 * error. */
int dt_sweep_read_done(const char *path, char *line, size_t size, char **keys, char **vals,
                       int max);
/* The value of key among the n pairs, or NULL. */
const char *dt_sweep_get(char **keys, char **vals, int n, const char *key);

/* Rank 0, at the end: OUT/results.csv and OUT/results.md from the trials' done markers (one row
 * per trial; unfinished trials too, status pending), and with two axes OUT/heatmap.png (and its
 * data and gnuplot script) of test accuracy: mean and std over seeds per cell, log axes where
 * the values are log-spaced, the best cell marked, the ridge (the best x of each row) and its
 * slope. `commit` is the build's. Prints what it wrote on f. Returns 0 or DT_ERR (a file could
 * not be written; a missing gnuplot is a note, not an error). */
int dt_sweep_report(const dt_sweep *s, const char *commit, FILE *f);

#endif
