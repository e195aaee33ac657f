/*
 * tools.h - helpers shared by the subcommands that are tools around training (cmd_schedule.c,
 * cmd_lrfind.c): their own options split from dt_parse_args', temporary files, gnuplot.
 *
 * Errors follow common.h: a function records one message with dt_err() and returns a negative
 * code; nothing here is collective (the caller agrees over the ranks).
 */
#ifndef DT_TOOLS_H
#define DT_TOOLS_H

#include <stddef.h>
#include <stdio.h>

/* One option of a subcommand (not dt_parse_args'): "--name VALUE" or "--name=VALUE". */
typedef struct dt_tool_opt {
    const char *name;
    const char *val; /* NULL: not given */
} dt_tool_opt;

/* dt_tool_gnuplot's result when the gnuplot program is not installed (a DT_ERR-like failure that
 * a caller may downgrade to a warning). */
enum { DT_TOOL_NO_GNUPLOT = -2 };

/* Moves a subcommand's options out of argv[first..argc) into opts[0..nopts) (last occurrence wins)
 * and copies everything else, argv[0..first) included, to rest (*nrest entries; rest must hold
 * argc entries). Every option of dt_parse_args takes one value, so a word after a foreign option
 * is copied with it unread. Returns 0 or DT_ERR (an option of ours without a value). */
int dt_tool_split_args(int argc, char **argv, int first, dt_tool_opt *opts, int nopts, char **rest,
                       int *nrest);

/* Writes s to f as a gnuplot single-quoted string (a quote inside is doubled). Write errors
 * show in ferror(f). */
void dt_tool_gp_quote(FILE *f, const char *s);

/* Creates an empty temporary file "dtrain-WHAT.XXXXXX" in $TMPDIR (or /tmp) and opens it for
 * writing; path (size bytes) receives its name. The caller closes the stream and unlinks path.
 * Returns the stream, or NULL with a message recorded (nothing left behind). */
FILE *dt_tool_temp_file(char *path, size_t size, const char *what);

/* Runs `gnuplot SCRIPT` ($DT_GNUPLOT names another program) and checks that it exited 0 and wrote
 * a non-empty png. Returns 0; DT_TOOL_NO_GNUPLOT with "PROG: gnuplot not found" recorded when the
 * program cannot be found (spawn ENOENT, or a shell's exit status 127); or DT_ERR with a message
 * (cannot start, failed or killed, no image written). */
int dt_tool_gnuplot(const char *script, const char *png);

#endif
