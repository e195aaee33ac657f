/*
 * commands.h - dtrain's subcommands besides train (main.c dispatches on argv[1]).
 * Each returns the process exit status and is collective over MPI_COMM_WORLD.
 */
#ifndef DT_COMMANDS_H
#define DT_COMMANDS_H

#include "config.h"
#include "data.h"

/* Resolves `dtrain <cmd> [options]` arguments argv[first..argc) into cfg (defaults, -c files,
 * --set, long options), as `dtrain train` does. Returns 0 or DT_ERR (message recorded). */
int dt_parse_args(dt_config *cfg, int argc, char **argv, int first);
/* The same on top of a base configuration (config-file text, applied right after the defaults;
 * base_source names it in messages). */
int dt_parse_args_on(dt_config *cfg, const char *base, const char *base_source, int argc,
                     char **argv, int first);

/* dtrain schedule [options] [--plot FILE.png]: the lr/momentum of every step, no training. */
int dt_cmd_schedule(int argc, char **argv, int world);
/* dtrain lr-find [options]: the LR range test, data-parallel on all ranks. */
int dt_cmd_lrfind(int argc, char **argv, int world);
/* dtrain eval CHECKPOINT [--split test|train] [options]: a checkpoint's test (or training) loss
 * and accuracy, data-parallel on all ranks. */
int dt_cmd_eval(int argc, char **argv, int world);

#endif
