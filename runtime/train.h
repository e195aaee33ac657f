/*
 * train.h - the data-parallel training loop (ARCHITECTURE.md "One training step"):
 *
 *   rank 0 decides lr/momentum/flags; any rank may raise a pre-emption signal: one control
 *   message per step (dt_dist_ctrl: an MPI_Iallreduce under the watchdog)
 *   every rank: gather its shard's batch (augment, mixup) -> forward -> cross-entropy (soft
 *   targets for label smoothing / mixup) -> backward -> gradient buckets averaged with
 *   MPI_Iallreduce as backward finishes them -> loss scaler -> optional global-norm clipping ->
 *   optimizer step
 *   rank 0: SWA average, checkpoints at their interval, the metrics log; all ranks take part in
 *   the reductions behind them
 *
 * dt_trainer_run reads as its steps: run_epoch (control message, step, log row, bar per batch),
 * end_of_epoch (sums, evaluation, SWA, replica check, record, checkpoint), then finish or
 * finish_stopped. What is printed, and how, lives in progress.c.
 *
 * Every rank applies the same averaged gradient, so replicas stay bitwise identical; a fingerprint
 * check at each epoch end proves it. Everything a resume needs is registered once in t->state, the
 * dt_state table (state.h; ARCHITECTURE.md invariant 7): model tensors and BN buffers, optimizer
 * buffers and counters (optim.c), schedule state (sched.c), SWA average and count (swa.c), loss
 * scaler (lowp.c), and the trainer's own items (step, epoch, position in the epoch, partial epoch
 * sums, times, metrics history and row counts, RNG stream counters; random streams are
 * counter-based: seed, rank, step / epoch, sample). A checkpoint save, the load and the broadcast
 * after a resume are loops over that table. A resumed checkpoint is validated after its checksums:
 * every item present with its dtype and shape, values in range (sizes > 0, counters >= 0, finite
 * weights), items consistent with each other and with this run (data size, epochs, world size).
 */
#ifndef DT_TRAIN_H
#define DT_TRAIN_H

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>

#include "ckpt.h"
#include "data.h"
#include "net.h"
#include "train_ckpt.h"
#include "trainer.h"

/* Metrics of one evaluation pass, reduced over ranks. */
typedef struct dt_eval {
    double loss, acc; /* mean loss, accuracy in [0, 1] */
    double top5;      /* top-5 accuracy in [0, 1] (1 with fewer than 5 classes) */
    int64_t n;        /* samples counted (each test sample exactly once) */
} dt_eval;

/* Sets up, for net and the datasets: sampler, optimizer, step buffers, augmentation, SWA, progress
 * output, precision and loss scaler, gradient buckets, signal handlers and the watchdog, the
 * state table; with cfg->resume, loads the checkpoint (rank 0 reads, everyone receives); then the
 * schedule and rank 0's metrics log. Sets net's trainer fields (comm, sync_bn, seed, rank).
 * Collective: returns 0, or DT_ERR on every rank (message printed once). */
int dt_trainer_init(dt_trainer *t, const dt_config *cfg, dt_net *net, const dt_dataset *train,
                    const dt_dataset *test, MPI_Comm comm, FILE *out);
/* Frees what dt_trainer_init allocated, closes the metrics log, stops the watchdog. NULL: no-op. */
void dt_trainer_free(dt_trainer *t);

/* One optimizer step on the n samples idx[0..n) of this rank (n equal on every rank), with the
 * lr/momentum of ctrl. Returns this rank's mean loss over its samples; *correct counts the
 * predictions equal to the samples' labels (t->step_hits: under mixup, weighted by lambda). */
double dt_trainer_step(dt_trainer *t, const int64_t *idx, int n, const dt_ctrl *ctrl, int *correct);

/* Evaluates on `ds`, sharded without padding (rank r takes r, r+W, ...). Collective. */
dt_eval dt_trainer_evaluate(dt_trainer *t, const dt_dataset *ds);
/* The same for any net: batches of `batch` samples per rank through x (batch x C x H x W), y and
 * probs (batch x classes); rank 0's BatchNorm buffers are broadcast first. Collective. */
dt_eval dt_net_evaluate(dt_net *net, const dt_dataset *ds, int batch, float *x, int *y,
                        float *probs, MPI_Comm comm);
/* dt_net_evaluate, and with confusion != NULL the confusion matrix over all ranks into it
 * (classes x classes, row = true class, column = the top-1 prediction; zeroed first), on every
 * rank. Collective. */
dt_eval dt_net_evaluate_cm(dt_net *net, const dt_dataset *ds, int batch, float *x, int *y,
                           float *probs, MPI_Comm comm, int64_t *confusion);

/* Called before each step's control message on every rank where it is set (NULL: none), so
 * that a rank can answer messages between its steps: `dtrain sweep`'s rank 0 hands out trials
 * there (launch/cmd_sweep.c). It must not use the trainer's communicator. */
typedef void (*dt_train_hook)(void);
extern dt_train_hook dt_train_between_steps;

/* The whole run: epochs (or until train.max_steps, or a pre-emption signal), progress, final
 * summary line. Collective. Returns 0 (also after a signal-triggered checkpoint) or DT_ERR. */
int dt_trainer_run(dt_trainer *t);

#endif
