/*
 * commands.h - dtrain's subcommands besides train (main.c dispatches on argv[1]).
 * Each returns the process exit status and is collective over MPI_COMM_WORLD.
 */
#ifndef DT_COMMANDS_H
#define DT_COMMANDS_H

#include "config.h"

/* Resolves `dtrain <cmd> [options]` arguments argv[first..argc) into cfg (defaults, -c files,
 * --set, long options), as `dtrain train` does. Returns 0 or DT_ERR (message recorded). */
int dt_parse_args(dt_config *cfg, int argc, char **argv, int first);

/* dtrain schedule [options] [--plot FILE.png]: the lr/momentum of every step, no training. */
int dt_cmd_schedule(int argc, char **argv, int world);
/* dtrain lr-find [options]: the LR range test, data-parallel on all ranks. */
int dt_cmd_lrfind(int argc, char **argv, int world);

#endif
