/*
 * lrauto.h - `--lr auto` / `sched.max_lr = auto`: dtrain train runs the LR range test of
 * `dtrain lr-find` (cmd_lrfind.c, its defaults: 100 steps from 1e-7 to 10, smoothing 0.98, stop
 * at 4 x the best smoothed loss) on its own ranks before training, and takes fast.ai's default
 * suggestion, valley (lr_suggest.h).
 */
#ifndef DT_LRAUTO_H
#define DT_LRAUTO_H

#include <mpi.h>

#include "config.h"
#include "data.h"
#include "net.h"

/* The range test on net (its weights initialized from cfg->seed first, as lr-find does) and the
 * training split, on every rank of comm; then cfg->op.lr (optim.lr = auto) or cfg->sp.max_lr
 * (sched.max_lr = auto) is the valley suggestion on every rank and cfg->lr_auto is 0. Rank 0
 * prints the four suggestions and which one it took, and with log.dir writes
 * log.dir/lr_find.csv and .png. The net's weights and BatchNorm buffers are left trained: the
 * caller initializes them again. Collective: 0, or DT_ERR on every rank (no suggestion: the
 * message says to give a number). */
int dt_lr_auto(dt_config *cfg, dt_net *net, const dt_dataset *train, MPI_Comm comm);

#endif
