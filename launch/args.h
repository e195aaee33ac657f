/*
 * args.h - the command-line arguments every training-like subcommand takes (train, eval, schedule,
 * lr-find): -c/--config files, --set KEY=VALUE and the long options, resolved into a dt_config,
 * and their part of `dtrain --help`.
 *
 * Errors follow common.h: one message recorded with dt_err(), a negative return; nothing here is
 * collective (the caller agrees over the ranks).
 */
#ifndef DT_ARGS_H
#define DT_ARGS_H

#include <stdio.h>

#include "config.h"

/* Resolves `dtrain <cmd> [options]` arguments argv[first..argc) into cfg (defaults, -c files,
 * --set, long options), as `dtrain train` does. Returns 0 or DT_ERR (message recorded). */
int dt_parse_args(dt_config *cfg, int argc, char **argv, int first);

/* The same on top of a base configuration (config-file text, applied right after the defaults;
 * base_source names it in messages). */
int dt_parse_args_on(dt_config *cfg, const char *base, const char *base_source, int argc,
                     char **argv, int first);

/* Prints the options dt_parse_args takes (from its long-option table) and then every
 * configuration key (dt_config_help): the second half of `dtrain --help`. */
void dt_args_help(FILE *f);

#endif
