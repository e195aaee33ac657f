/*
 * trainer.h - the trainer's state, struct dt_trainer (train.h is its API; train.c runs the loop,
 * train_ckpt.c saves and resumes it). A header of its own so that the two halves of the trainer
 * share the struct without including each other.
 */
#ifndef DT_TRAINER_H
#define DT_TRAINER_H

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
    double epoch_sums[4];  /* loss * n, correct, n, top-5 correct of the epoch (rank-local) */
    double step_hits;      /* the last step's correct count (mixup: lam-weighted) */
    double step_hits5;     /* the same for top-5 */
    double step_time[3];   /* the last step (s): compute, exposed communication, whole step */
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
    char ckpt_isa[32];  /* rank 0: the kernels_isa of the checkpoint resumed from ("" if none) */
    char ckpt_conv[96]; /* rank 0: its kernels_conv ("" if none: before oneDNN's convolutions) */
    dt_state state;     /* the resumable-state table (state.h), registered at init */
    struct {            /* items whose checkpoint form differs from the trainer's fields */
        int64_t world, batch; /* train/world_size, train/batch_size */
        int64_t nhist;        /* rows of metrics/epochs */
        int64_t step_rows, epoch_rows;
        int64_t stream[3]; /* this rank's (seed, rank, step) */
        double sums[4];    /* train/epoch_sums: over all ranks */
        double times[2];   /* train/time: seconds, samples */
        int64_t *nbt;      /* (BN buffers named num_batches_tracked) as int64 */
    } io;
} dt_trainer;

#endif
