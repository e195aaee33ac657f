/*
 * metrics.h - the metrics log of a run: per-step and per-epoch records (rows of doubles, columns
 * named by the caller) appended to an HDF5 file and to two CSV files in the run directory:
 *
 *   DIR/metrics.h5           /step/<col>   1-D float64, extendible, chunked, one per step column
 *                            /epoch/<col>  the same for epoch columns
 *                            root attributes format = "dtrain-metrics", format_version = 1,
 *                            and the run's provenance (dt_metrics_provenance)
 *   DIR/metrics_step.csv     header "col1,col2,...", then one line per step record
 *   DIR/metrics_epoch.csv    the same for epoch records
 *   DIR/run.ini              the provenance of the CSVs: "# key: value" lines, then the resolved
 *                            configuration
 *
 * Rows are buffered in memory (dt_metrics_step is a copy, no I/O) and written by dt_metrics_flush:
 * at every epoch record, whenever `flush_every` step records are pending or a set time has passed
 * since the last flush (dt_metrics_set_flush_s), and at close. A flush
 * opens metrics.h5, extends and writes every column, H5Fflush + H5Fclose, then appends to the
 * CSVs and fflushes them. Between flushes the HDF5 file is closed, so h5py (or pandas on the
 * CSVs) can read it while the run goes on; the writer opens it without HDF5 file locking so a
 * reader that keeps it open does not stop the run. A killed run loses only its unflushed rows (a
 * kill during the milliseconds of a flush can leave metrics.h5 damaged; the CSVs then still hold
 * every row up to the previous flush).
 *
 * CSV numbers are printed with the fewest digits (up to 17) that read back to the same double, so
 * the CSV and the HDF5 file hold the same values.
 *
 * Resume: dt_metrics_open with resume_steps/resume_epochs > 0 keeps that many rows of the
 * existing file (truncating the HDF5 datasets) and rewrites the CSVs from them, so a resumed run
 * has no duplicated or missing rows. Flush before taking a checkpoint and store
 * dt_metrics_step_rows/dt_metrics_epoch_rows in it: the file then holds at least those rows.
 *
 * Errors (user/environment): DT_ERR with one message naming the file (dt_err).
 */
#ifndef DT_METRICS_H
#define DT_METRICS_H

#include <stdint.h>

typedef struct dt_metrics dt_metrics;

/* Opens the metrics log in directory dir (which must exist). Column names: non-empty, at most 63
 * bytes, no '/', ',', '"' or whitespace, unique within their set; nstep, nepoch >= 1; the arrays
 * are copied. flush_every (>= 1) step records trigger a flush.
 * resume_steps == 0 && resume_epochs == 0: a fresh log; existing files are replaced (a run calls
 * dt_metrics_check_fresh first, so that it never replaces another run's log).
 * Otherwise: metrics.h5 must exist with exactly these columns (any order) and at least
 * resume_steps step rows and resume_epochs epoch rows; it is truncated to exactly that many and
 * the CSVs are rewritten from it. Returns 0 and *out, or DT_ERR ("DIR/metrics.h5: step/loss has
 * 90 rows, fewer than the 100 to keep on resume", "...: step columns differ: file has (...),
 * run has (...)"). */
int dt_metrics_open(dt_metrics **out, const char *dir, const char *const *step_cols, int nstep,
                    const char *const *epoch_cols, int nepoch, int64_t resume_steps,
                    int64_t resume_epochs, int flush_every);

/* Appends a step record: vals[0 .. nstep). Flushes when flush_every records are pending, or when
 * seconds (dt_metrics_set_flush_s) have passed since the last flush.
 * Returns 0 or DT_ERR (only from that flush). */
int dt_metrics_step(dt_metrics *m, const double *vals);

/* Step records also flush once `seconds` (> 0) have passed since the last flush (or the open), so
 * rows reach the files within about that time however fast steps go, with flush_every the most
 * rows ever pending; 0 (the default): by count only. A flush (an HDF5 open, write and close)
 * takes about a millisecond: at every 50 steps it was 3 % of a 2-rank mlp step. */
void dt_metrics_set_flush_s(dt_metrics *m, double seconds);

/* Appends an epoch record: vals[0 .. nepoch), then flushes everything. Returns 0 or DT_ERR. */
int dt_metrics_epoch(dt_metrics *m, const double *vals);

/* Writes all pending records to metrics.h5 and the CSVs. Returns 0 or DT_ERR. After an error the
 * pending rows are kept, but the files may hold part of them: end the run. */
int dt_metrics_flush(dt_metrics *m);

/* Rows recorded so far (flushed or pending), counting the rows kept on resume. */
int64_t dt_metrics_step_rows(const dt_metrics *m);
int64_t dt_metrics_epoch_rows(const dt_metrics *m);

/* Flushes, closes the CSVs and frees m (whatever the outcome). Returns 0 or DT_ERR from the
 * flush/close. NULL is a no-op. */
int dt_metrics_close(dt_metrics *m);

/* What a metrics log records about the run that wrote it. */
typedef struct dt_metrics_prov {
    const char *config;  /* the resolved configuration (dt_config_print's text, a config file) */
    long long seed;      /* the run's seed */
    int world_size;      /* ranks */
    int threads;         /* threads per rank (the pool's, resolved) */
    const char *isa;     /* the kernels' ISA (dt_kern_get()->name) */
    const char *commit;  /* dtrain's commit (dt_commit) */
    const char *version; /* dtrain's version (DT_VERSION) */
} dt_metrics_prov;

/* Records p in the log of m (at open, after a resume too: the values of the latest start):
 * metrics.h5 root attributes config, seed, world_size, threads, kernels_isa, commit,
 * dtrain_version and started (UTC, ISO 8601), and the sidecar DIR/run.ini for the CSVs: the
 * same values as "# key: value" comment lines, then the configuration (so `dtrain train -c
 * DIR/run.ini` reruns the run). Returns 0 or DT_ERR naming the file. */
int dt_metrics_provenance(dt_metrics *m, const dt_metrics_prov *p);

/* Before a fresh (not resumed) run opens its log in dir: 0 when dir holds no metrics.h5, or
 * when restart is set and the file's "config" attribute equals config (the same run started
 * again before it wrote its first checkpoint, as `--resume auto` does); otherwise DT_ERR, "log.dir
 * DIR already holds the metrics of another run (...): a run appends to a log only when it resumes
 * it; choose another log.dir, or move DIR/metrics.h5 away". A run never replaces another's log. */
int dt_metrics_check_fresh(const char *dir, const char *config, int restart);

/* Top-k accuracy counts of a batch: the number of samples i in [0, N) whose label labels[i] is
 * among the k largest of logits[i * K .. i * K + K) (N x K, row-major). Ties are broken toward
 * the lower class index, as torch.argmax does for top-1 (torch.topk leaves the choice among
 * equal values to its selection algorithm); NaN ranks above every number, as in torch.topk.
 * k >= K counts every sample (top-5 of a 3-class problem is 100 %). k >= 1. */
int dt_metrics_topk_hits(const float *logits, const int *labels, int N, int K, int k);

#endif
