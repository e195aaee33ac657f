/*
 * progress.h - what a training run prints on rank 0's stream: the live progress bar, one line per
 * epoch, checkpoint and resume messages, the reason a run stopped early, and the final summary
 * line that tests and scripts grep ("final: ... params_crc=...").
 *
 * Progress knows nothing of MPI or of the trainer: the trainer passes it the numbers, already
 * reduced over ranks. A dt_progress whose stream is NULL (every rank but 0) prints nothing, so
 * callers need not test the rank. The formats are part of the interface: tests compare them.
 */
#ifndef DT_PROGRESS_H
#define DT_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

#include "common.h"

/* One epoch's record (rank 0's history; stored in checkpoints, one row of the epoch metrics). */
typedef struct dt_epoch_rec {
    double epoch, step, train_loss, train_acc, test_loss, test_acc, test_top5, lr, samples_per_s,
        time_s, swa_test_acc, train_top5, swa_test_top5;
} dt_epoch_rec;
#define DT_EPOCH_COLS 13

typedef struct dt_progress {
    FILE *out;  /* rank 0's stream, NULL: print nothing */
    int bar;    /* a live bar is drawn (cleared before any other line) */
    int epochs; /* train.epochs, for "epoch E/N" */
} dt_progress;

/* Sets p up for stream out (NULL on ranks other than 0). mode: 0 no bar, 1 a bar when the output
 * reaches a terminal, 2 always a bar. */
void dt_progress_init(dt_progress *p, FILE *out, int mode, int epochs);

/* Clears the bar's line, so that a message starts on a clean one. */
void dt_progress_clear(const dt_progress *p);

/* The live bar of 0-based epoch `epoch` after batch b (0-based) of nb, terminal only:
 *   "epoch 1/3 [====>     ] 212/469 00:05<00:06 loss 0.2447 lr 0.0375 29156 samples/s"
 * the step n/N within the epoch, elapsed<ETA (mm:ss, h:mm:ss past an hour; ETA from the epoch's
 * mean step time), the epoch's mean loss so far, this step's lr, samples/s over all ranks.
 * elapsed: the epoch's training seconds so far. */
void dt_progress_bar(const dt_progress *p, int64_t epoch, int64_t b, int64_t nb, double loss,
                     double rate, double lr, double elapsed);

/* The evaluation bar: `dt_progress_eval_begin(p)` makes p the stream of the process's evaluation
 * bar (NULL, or a p without a bar: none), dt_progress_eval_tick(done, total) draws it (at most
 * every 0.2 s; done/total: this rank's position in the split, rank 0's standing for all), and
 * dt_progress_eval_end() clears the line. Evaluation code (train.c dt_net_evaluate) ticks
 * without knowing who draws. */
void dt_progress_eval_begin(const dt_progress *p);
void dt_progress_eval_tick(int64_t done, int64_t total);
void dt_progress_eval_end(void);

/* The epoch line of rec (test_acc and swa_test_acc in percent; swa_test_acc NaN: not shown). */
void dt_progress_epoch(const dt_progress *p, const dt_epoch_rec *rec);

/* "checkpoint PATH (WHY, step S, T s)" after a checkpoint was written in `seconds`. */
void dt_progress_checkpoint(const dt_progress *p, const char *path, const char *why, int64_t step,
                            double seconds);

/* One line on the progress stream (nothing on ranks without one): a note the run should show,
 * printf-style, newline added. */
DT_PRINTF(2, 3) void dt_progress_note(const dt_progress *p, const char *fmt, ...);

/* "resume: REPORT" (report ends with its newline) from scanning a checkpoint directory. */
void dt_progress_resume_report(const dt_progress *p, const char *report);
/* --resume auto found no checkpoint that verifies in dir. */
void dt_progress_resume_none(const dt_progress *p, const char *dir);
/* The run resumed from path at (step, 0-based epoch, samples of the epoch done) on world ranks
 * of batch samples; world_changed: the checkpoint was written at another world size. */
void dt_progress_resumed(const dt_progress *p, const char *path, int64_t step, int64_t epoch,
                         int64_t epoch_pos, int world, int batch, int world_changed);

/* Why a run stopped early: sig is the signal number, or -2 for train.stop_at_step. */
const char *dt_progress_stop_name(int sig);
/* A stop that had nothing new to save: at step 0, or at the step of the last checkpoint. */
void dt_progress_stopped_unsaved(const dt_progress *p, int64_t step, int sig);
/* A stop whose checkpoint was written into ckpt_dir. */
void dt_progress_stopped_saved(const dt_progress *p, int64_t step, int sig, const char *ckpt_dir);

/* The numbers of the final summary line. */
typedef struct dt_progress_final {
    int epochs; /* epoch records */
    int64_t steps;
    double train_loss, test_loss;
    double test_acc, test_top5; /* in [0, 1] */
    double samples_per_s, wall_s, max_rss_mib;
    uint64_t params_crc; /* XXH64 of the parameters */
    int swa;             /* SWA on: swa_test_acc, swa_test_top5 (in [0, 1]) and swa_n are printed */
    double swa_test_acc, swa_test_top5;
    int64_t swa_n;
    int scaler; /* loss scaling on: loss_scale and skipped_steps are printed */
    double loss_scale;
    int64_t skipped_steps;
    int ckpt; /* checkpoints on: ckpt_failures is printed */
    int64_t ckpt_failures;
    int comm; /* more than one rank: exposed_comm (percent of the step time) is printed */
    double exposed_comm_pct;
} dt_progress_final;

/* "final: epochs=... params_crc=..." and the optional fields, one line. */
void dt_progress_final_line(const dt_progress *p, const dt_progress_final *f);

#endif
