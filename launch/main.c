/*
 * main.c - the dtrain program: a table of subcommands, one file each (commands.h):
 *   train     data-parallel training (cmd_train.c)
 *   eval      a checkpoint's test (or training) loss and accuracy (cmd_eval.c)
 *   inspect   verify a checkpoint, print what it holds (cmd_inspect.c)
 *   schedule  the lr and momentum of every step of the configured run, no training
 *             (cmd_schedule.c)
 *   lr-find   the LR range test (cmd_lrfind.c)
 *   plot      training curves of runs' metrics logs, a confusion matrix (cmd_plot.c)
 *   sweep     a grid of trainings in one job, N/G groups of G ranks (cmd_sweep.c)
 *   --help    usage, the options (args.c) and every configuration key; also `help`, and --help
 *             or -h anywhere on the command line
 *   --version the version
 *
 * Run as `mpirun -np N ./dtrain train ...` (or srun, or plain ./dtrain for one rank). Rank and
 * world size come from MPI only. Every fallible phase ends in dt_dist_agree, so a bad input makes
 * every rank exit 1 with one message, and no rank waits in a collective.
 */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "common.h"
#include "dist.h"
#include "h5util.h"

static int cmd_help(int argc, char **argv, int world);
static int cmd_version(int argc, char **argv, int world);

/* The subcommands, in --help order: the name argv[1] gives, the function, the usage text (after
 * "usage: " or its indent; continuation lines carry their own indent; NULL: shown with another). */
static const struct command {
    const char *name;
    int (*fn)(int argc, char **argv, int world);
    const char *usage;
} commands[] = {
    {"train", dt_cmd_train, "mpirun -np N ./dtrain train [options]\n"},
    {"eval", dt_cmd_eval,
     "mpirun -np N ./dtrain eval CHECKPOINT.h5 [--split test|train] [--per-class] [options]\n"
     "                     test (or training) loss, top-1 and top-5 accuracy of a checkpoint's\n"
     "                     weights (--per-class: and per class, the confusion matrix);\n"
     "                     its run's configuration, overridden by the options\n"},
    {"inspect", dt_cmd_inspect,
     "./dtrain inspect CHECKPOINT.h5     verify a checkpoint, print what it holds\n"},
    {"schedule", dt_cmd_schedule,
     "./dtrain schedule [options] [--plot FILE.png] [--csv FILE] [--samples N] [--world N]\n"
     "                     the lr and momentum of every step of the configured run, no training\n"},
    {"lr-find", dt_cmd_lrfind,
     "mpirun -np N ./dtrain lr-find [options] [--min-lr 1e-7] [--max-lr 10] [--steps 100]\n"
     "                     [--smooth 0.98] [--diverge 4] [--out DIR]\n"
     "                     LR range test: exponential lr sweep, writes DIR/lr_find.csv + .png\n"},
    {"plot", dt_cmd_plot,
     "./dtrain plot RUN_DIR [RUN_DIR...] [--out FILE.png] [--svg] [--x step|epoch]\n"
     "                     [--metrics loss,acc,top5,lr,momentum,grad_norm,samples_per_s,time]\n"
     "                     [--data DIR]   training curves of runs' log.dir (docs/metrics.md)\n"
     "       ./dtrain plot --confusion FILE.csv [--out FILE.png] [--svg]\n"
     "                     the heatmap of a confusion matrix written by eval --per-class\n"},
    {"sweep", dt_cmd_sweep,
     "mpirun -np N ./dtrain sweep [options] --grid KEY=V1,V2,... [--grid ...] --out DIR\n"
     "                     [--ranks-per-trial G] [--seeds 0,1,2]   a grid of trainings\n"},
    {"--help", cmd_help, "./dtrain --help | --version\n"},
    {"--version", cmd_version, NULL},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static void usage(FILE *f)
{
    fprintf(f, "dtrain %s - data-parallel neural network training on MPI\n\n", DT_VERSION);
    const char *prefix = "usage: ";
    for (int k = 0; k < N_COMMANDS; k++) {
        if (!commands[k].usage)
            continue;
        fprintf(f, "%s%s", prefix, commands[k].usage);
        prefix = "       ";
    }
    fprintf(f, "\n");
    dt_args_help(f);
}

static int cmd_help(int argc, char **argv, int world)
{
    (void)argc;
    (void)argv;
    (void)world;
    if (dt_rank == 0)
        usage(stdout);
    return 0;
}

static int cmd_version(int argc, char **argv, int world)
{
    (void)argc;
    (void)argv;
    (void)world;
    if (dt_rank == 0)
        printf("dtrain %s\n", DT_VERSION);
    return 0;
}

/* The command argv asks for: --help when --help or -h is anywhere, NULL when none matches. */
static const struct command *find_command(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "";
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            name = "--help";
    if (strcmp(name, "help") == 0)
        name = "--help";
    for (int k = 0; k < N_COMMANDS; k++)
        if (strcmp(name, commands[k].name) == 0)
            return &commands[k];
    return NULL;
}

int main(int argc, char **argv)
{
    /* A pre-emption signal may come at any moment, during MPI_Init or data loading too: the
     * handlers that record it come first, so it stops training at its first step, with a line. */
    if (argc > 1 && (strcmp(argv[1], "train") == 0 || strcmp(argv[1], "sweep") == 0))
        dt_dist_catch_signals();
    int world = dt_dist_init(&argc, &argv);
    dt_h5_init(); /* HDF5 never prints its error stack: every failure is one dtrain message */
    int status;
    const struct command *c = find_command(argc, argv);
    if (c) {
        status = c->fn(argc, argv, world);
    } else {
        if (dt_rank == 0) {
            if (argc > 1)
                fprintf(stderr,
                        "dtrain: error: unknown command '%s': expected train, eval, "
                        "schedule, lr-find or inspect (see dtrain --help)\n",
                        argv[1]);
            else
                usage(stderr);
        }
        status = 2;
    }
    dt_dist_finalize();
    return status;
}
