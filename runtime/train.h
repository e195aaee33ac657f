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

#include "augment.h"
#include "ckpt.h"
#include "config.h"
#include "data.h"
#include "dist.h"
#include "lowp.h"
#include "metrics.h"
#include "net.h"
#include "optim.h"
#include "progress.h"
#include "sampler.h"
#include "sched.h"
#include "state.h"
#include "swa.h"

typedef struct dt_trainer {
    MPI_Comm comm;
    int rank, world;
    const dt_config *cfg;
    dt_net *net; /* not owned */
    dt_optim opt;
    dt_sched sched;
    dt_swa swa;
    dt_sampler sampler;
    dt_grad_sync sync;    /* bucketed gradient allreduce (train.bucket_mb) */
    dt_step_ctx step_ctx; /* what the net's forward/backward get (seed, rank, step, SyncBN) */
    dt_scaler scaler;     /* loss scaling (train.loss_scale; scale 0: off) */
    const dt_dataset *train, *test; /* not owned */
    int batch;      /* per-rank batch (a resume at another world size keeps the global one) */
    float *x;       /* (max_batch, C, H, W) gathered batch */
    int *y;         /* (max_batch) labels */
    float *probs;   /* (max_batch, classes) softmax output */
    float *targets; /* (max_batch, classes) soft targets (label smoothing / mixup) */
    float *xtmp;    /* (max_batch, C, H, W) mixup scratch */
    int *perm;      /* (max_batch) mixup pairing */
    int64_t steps_per_epoch, total_steps;
    /* the resumable position */
    int64_t step;          /* optimizer steps taken */
    int64_t epoch;         /* the epoch being trained */
    int64_t epoch_pos;     /* global sample positions of `epoch` already consumed */
    double epoch_sums[3];  /* loss * n, correct, n of the current epoch so far (rank-local) */
    double step_hits;      /* the last step's correct count (mixup: lam-weighted) */
    double train_time;     /* seconds of training so far (evaluation excluded) */
    double pending_time;   /* the current epoch's training seconds not yet in train_time */
    double train_samples;  /* training samples so far, all ranks */
    int64_t log_rows[2];   /* metrics rows (step, epoch) the resumed checkpoint had logged */
    int64_t last_ckpt;     /* step of the last checkpoint written or resumed from (-1: none) */
    int64_t ckpt_failures; /* checkpoints that could not be written (ckpt.on_error = continue) */
    dt_epoch_rec *hist;    /* (epochs) rank 0's history */
    int nhist;
    dt_augment aug;      /* training-set augmentation (off: crop_pad = flip = 0) */
    dt_metrics *metrics; /* rank 0's metrics log, or NULL */
    FILE *out;           /* rank 0's progress stream (NULL on other ranks) */
    dt_progress prog;    /* what is printed on out (progress.h) */
    char resumed_from[4096];
    dt_state state;           /* the resumable-state table (state.h), registered at init */
    struct {                  /* items whose checkpoint form differs from the trainer's fields */
        int64_t world, batch; /* train/world_size, train/batch_size */
        int64_t nhist;        /* rows of metrics/epochs */
        int64_t step_rows, epoch_rows;
        int64_t stream[3]; /* this rank's (seed, rank, step) */
        double sums[3];    /* train/epoch_sums: over all ranks */
        double times[2];   /* train/time: seconds, samples */
        int64_t *nbt;      /* (BN buffers named num_batches_tracked) as int64 */
    } io;
} dt_trainer;

/* Metrics of one evaluation pass, reduced over ranks. */
typedef struct dt_eval {
    double loss, acc; /* mean loss, accuracy in [0, 1] */
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
/* Reads a checkpoint's model tensors and buffers (items model/<state_dict key>, shapes checked)
 * into net->param and net->state. Not collective. Returns 0 or DT_ERR (message names the file
 * and the item). */
int dt_read_model(dt_ck_reader *r, dt_net *net);

/* Writes a checkpoint of the current state (rank 0 writes, all ranks call). Collective. */
int dt_trainer_checkpoint(dt_trainer *t, const char *why);

/* The whole run: epochs (or until train.max_steps, or a pre-emption signal), progress, final
 * summary line. Collective. Returns 0 (also after a signal-triggered checkpoint) or DT_ERR. */
int dt_trainer_run(dt_trainer *t);

#endif
