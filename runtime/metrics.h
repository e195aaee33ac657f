/*
 * metrics.h - the metrics log of a run: per-step and per-epoch records (rows of doubles, columns
 * named by the caller) appended to an HDF5 file and to two CSV files in the run directory:
 *
 *   DIR/metrics.h5           /step/<col>   1-D float64, extendible, chunked, one per step column
 *                            /epoch/<col>  the same for epoch columns
 *                            root attributes format = "dtrain-metrics", format_version = 1
 *   DIR/metrics_step.csv     header "col1,col2,...", then one line per step record
 *   DIR/metrics_epoch.csv    the same for epoch records
 *
 * Rows are buffered in memory (dt_metrics_step is a copy, no I/O) and written by dt_metrics_flush:
 * at every epoch record, whenever `flush_every` step records are pending, and at close. A flush
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
 * resume_steps == 0 && resume_epochs == 0: a fresh log; existing files are replaced.
 * Otherwise: metrics.h5 must exist with exactly these columns (any order) and at least
 * resume_steps step rows and resume_epochs epoch rows; it is truncated to exactly that many and
 * the CSVs are rewritten from it. Returns 0 and *out, or DT_ERR ("DIR/metrics.h5: step/loss has
 * 90 rows, fewer than the 100 to keep on resume", "...: step columns differ: file has (...),
 * run has (...)"). */
int dt_metrics_open(dt_metrics **out, const char *dir, const char *const *step_cols, int nstep,
                    const char *const *epoch_cols, int nepoch, int64_t resume_steps,
                    int64_t resume_epochs, int flush_every);

/* Appends a step record: vals[0 .. nstep). Flushes when flush_every records are pending.
 * Returns 0 or DT_ERR (only from that flush). */
int dt_metrics_step(dt_metrics *m, const double *vals);

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

/* Top-k accuracy counts of a batch: the number of samples i in [0, N) whose label labels[i] is
 * among the k largest of logits[i * K .. i * K + K) (N x K, row-major). Ties are broken toward
 * the lower class index, as torch.argmax does for top-1 (torch.topk leaves the choice among
 * equal values to its selection algorithm); NaN ranks above every number, as in torch.topk.
 * k >= K counts every sample (top-5 of a 3-class problem is 100 %). k >= 1. */
int dt_metrics_topk_hits(const float *logits, const int *labels, int N, int K, int k);

#endif
