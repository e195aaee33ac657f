/*
 * commands.h - dtrain's subcommands, one file each (cmd_NAME.c); main.c dispatches on argv[1]
 * through its table. Each takes main's argc/argv (argv[1] is the command's name) and the world
 * size, returns the process exit status, and is collective over MPI_COMM_WORLD: every rank returns
 * the same status.
 */
#ifndef DT_COMMANDS_H
#define DT_COMMANDS_H

#include <mpi.h>

#include "config.h"

/* dtrain train [options]: data-parallel training. */
int dt_cmd_train(int argc, char **argv, int world);
/* One training run of cfg (resolved) on the ranks of comm, collective over it: data, model, the
 * header on stdout (comm's rank 0), the trainer down to its final line. Returns 0, or 1 on every
 * rank of comm after one message (stderr). */
int dt_train_on(const dt_config *cfg, MPI_Comm comm);
/* dtrain eval CHECKPOINT [--split test|train] [options]: a checkpoint's test (or training) loss
 * and accuracy, data-parallel on all ranks. */
int dt_cmd_eval(int argc, char **argv, int world);
/* dtrain inspect CHECKPOINT: verifies a checkpoint and prints what it holds (rank 0). */
int dt_cmd_inspect(int argc, char **argv, int world);
/* dtrain schedule [options] [--plot FILE.png]: the lr/momentum of every step, no training. */
int dt_cmd_schedule(int argc, char **argv, int world);
/* dtrain lr-find [options]: the LR range test, data-parallel on all ranks. */
int dt_cmd_lrfind(int argc, char **argv, int world);
/* dtrain plot RUN_DIR... | --confusion FILE.csv: training curves / a confusion matrix (rank 0). */
int dt_cmd_plot(int argc, char **argv, int world);
/* dtrain sweep [options] --grid KEY=VALUES ... --out DIR: a grid of trainings (cmd_sweep.c). */
int dt_cmd_sweep(int argc, char **argv, int world);

#endif
