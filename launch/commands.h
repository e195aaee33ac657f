/*
 * commands.h - dtrain's subcommands, one file each (cmd_NAME.c); main.c dispatches on argv[1]
 * through its table. Each takes main's argc/argv (argv[1] is the command's name) and the world
 * size, returns the process exit status, and is collective over MPI_COMM_WORLD: every rank returns
 * the same status.
 */
#ifndef DT_COMMANDS_H
#define DT_COMMANDS_H

/* dtrain train [options]: data-parallel training. */
int dt_cmd_train(int argc, char **argv, int world);
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

#endif
