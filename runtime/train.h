/*
 * train.h - the data-parallel training loop (ARCHITECTURE.md "One training step"):
 *
 *   rank 0 decides lr/momentum/flags -> broadcast (dt_ctrl)
 *   every rank: gather its shard's batch -> forward -> softmax cross-entropy -> backward
 *   -> MPI_Allreduce average of the flat gradient -> optimizer step
 *
 * Every rank applies the same averaged gradient, so replicas stay bitwise identical; a fingerprint
 * check at each epoch end proves it.
 */
#ifndef DT_TRAIN_H
#define DT_TRAIN_H

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "augment.h"
#include "dataset.h"
#include "dist.h"
#include "net.h"
#include "optim.h"
#include "sampler.h"
#include "sched.h"

typedef struct dt_trainer {
    MPI_Comm comm;
    int rank, world;
    const dt_config *cfg;
    dt_net *net;          /* not owned */
    dt_optim opt;
    dt_sched sched;
    dt_sampler sampler;
    const dt_dataset *train, *test; /* not owned */
    float *x;             /* (max_batch, C, H, W) gathered batch */
    int *y;               /* (max_batch) labels */
    float *probs;         /* (max_batch, classes) softmax output */
    int64_t steps_per_epoch, total_steps;
    int64_t step;         /* optimizer steps taken */
    int64_t epoch;        /* the epoch being trained (augmentation draws depend on it) */
    dt_augment aug;       /* training-set augmentation (off: crop_pad = flip = 0) */
    FILE *out;            /* rank 0's progress stream (NULL on other ranks) */
    int bar;              /* draw a live progress bar */
} dt_trainer;

/* Metrics of one evaluation pass, reduced over ranks. */
typedef struct dt_eval {
    double loss, acc; /* mean loss, accuracy in [0, 1] */
    int64_t n;        /* samples counted (each test sample exactly once) */
} dt_eval;

/* Sets up the optimizer, schedule and sampler for net and the datasets. Collective: returns 0,
 * or DT_ERR on every rank (message printed once). */
int dt_trainer_init(dt_trainer *t, const dt_config *cfg, dt_net *net, const dt_dataset *train,
                    const dt_dataset *test, MPI_Comm comm, FILE *out);
void dt_trainer_free(dt_trainer *t);

/* One optimizer step on the n samples idx[0..n) of this rank (n equal on every rank), with the
 * lr/momentum of ctrl. Returns this rank's mean loss over its samples; *correct counts its hits. */
double dt_trainer_step(dt_trainer *t, const int64_t *idx, int n, const dt_ctrl *ctrl,
                       int *correct);

/* Evaluates on `ds`, sharded without padding (rank r takes r, r+W, ...). Collective. */
dt_eval dt_trainer_evaluate(dt_trainer *t, const dt_dataset *ds);

/* The whole run: epochs (or until train.max_steps), progress, final summary line. Collective.
 * Returns 0 or DT_ERR (diverged loss, replicas out of sync). */
int dt_trainer_run(dt_trainer *t);

#endif
