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
 *   --help    usage, the options (args.c) and every configuration key; also `help`
 *   CMD --help  (or -h anywhere after CMD, or `help CMD`) that command's usage and examples
 *   train --print-config  the resolved configuration (a config file), nothing trained
 *   --version the version
 *
 * Run as `mpirun -np N ./dtrain train ...` (or srun, or plain ./dtrain for one rank). Rank and
 * world size come from MPI only. Every fallible phase ends in dt_dist_agree, so a bad input makes
 * every rank exit 1 with one message, and no rank waits in a collective.
 */
#include <stdio.h>
#include <stdlib.h>
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
    {"train", dt_cmd_train, "mpirun -np N ./dtrain train [options] [--print-config]\n"},
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
     "                     LR range test: fast.ai's four suggestions, DIR/lr_find.csv + .png\n"},
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

/* Each command's own help (`dtrain CMD --help`), after its usage line: what it does, its own
 * options and examples. A command without a line here shows its usage line. `opts`: 1 when it
 * takes the training options (printed after, with every configuration key). */
static const struct {
    const char *name;
    int opts;
    const char *text;
} command_help[] = {
    {"train", 1,
     "Data-parallel training: every rank holds a replica and a DistributedSampler shard;\n"
     "gradients are averaged each step. Rank 0 prints a short header, a live bar on a terminal\n"
     "(one line per epoch otherwise) and last a `final: ... params_crc=...` summary line.\n"
     "  --print-config        print the resolved configuration (a config file for -c) and exit\n"
     "  --lr auto             run the LR range test first (as dtrain lr-find), train with its\n"
     "                        valley suggestion from freshly initialized weights\n"
     "\nexamples:\n"
     "  ./dtrain train --epochs 1                          one rank, the mlp on MNIST\n"
     "  mpirun -np 4 ./dtrain train --model lenet5 --optim adamw --lr 3e-3\n"
     "  mpirun -np 2 ./dtrain train -c run.ini --set sched.kind=onecycle --set sched.max_lr=auto\n"
     "  ./dtrain train --model resnet20 --data cifar10 --print-config > run.ini\n"
     "  mpirun -np 2 ./dtrain train --ckpt-dir ck --set log.dir=runs/a --resume auto\n"},
    {"eval", 1,
     "The test (or training) loss and accuracy of a checkpoint's weights, data-parallel.\n"
     "The checkpoint's configuration is the base; options override it (e.g. --data-dir).\n"
     "  --split test|train    which split (default test)\n"
     "\nexamples:\n"
     "  ./dtrain eval ck/ckpt-step00001407.h5\n"
     "  mpirun -np 2 ./dtrain eval ck/ckpt-step00001407.h5 --split train --data-dir /data\n"},
    {"inspect", 0,
     "Verifies every dataset's checksum and prints what the checkpoint holds: step, epoch,\n"
     "configuration, state items, ISA. Exit 1 when it does not verify.\n"
     "\nexample:\n"
     "  ./dtrain inspect ck/ckpt-step00001407.h5\n"},
    {"schedule", 1,
     "The lr and momentum of every optimizer step of the configured run, without training.\n"
     "  --plot FILE.png       draw lr (and momentum) against the step (gnuplot)\n"
     "  --csv FILE            the rows as CSV (step,epoch,lr,momentum)\n"
     "  --samples N           training samples (default: read the dataset's size)\n"
     "  --world N             ranks the run will have (default 1)\n"
     "\nexamples:\n"
     "  ./dtrain schedule --sched onecycle --set sched.max_lr=0.4 --epochs 5 --plot oc.png\n"
     "  ./dtrain schedule -c run.ini --world 8 --csv sched.csv\n"},
    {"lr-find", 1,
     "The LR range test (Smith 2017; fast.ai lr_find): from the initial weights, --steps steps\n"
     "with lr growing exponentially from --min-lr to --max-lr; stops when the smoothed loss\n"
     "exceeds --diverge x its minimum. Prints fast.ai's four suggestions (valley, the default;\n"
     "steep; slide; minimum/10) and writes DIR/lr_find.csv and DIR/lr_find.png.\n"
     "  --min-lr X (1e-7)  --max-lr X (10)  --steps N (100)  --smooth B (0.98)\n"
     "  --diverge X (4)    --out DIR (log.dir, else .)\n"
     "\nexamples:\n"
     "  mpirun -np 2 ./dtrain lr-find --model lenet5 --out lrf\n"
     "  ./dtrain lr-find --optim adamw --steps 200 --max-lr 1\n"
     "  mpirun -np 2 ./dtrain train --lr auto      (the same test, then training)\n"},
};
enum { N_COMMAND_HELP = sizeof command_help / sizeof command_help[0] };

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
    fprintf(f, "\n`dtrain COMMAND --help` (or -h, or `dtrain help COMMAND`): one command's usage, "
               "options and examples.\n\n");
    dt_args_help(f);
}

/* `dtrain CMD --help`: CMD's usage line, its help text, then (when it takes them) the training
 * options and every configuration key. */
static void command_usage(FILE *f, const struct command *c)
{
    fprintf(f, "usage: %s\n", c->usage); /* usage ends with its newline: one blank line */
    for (int k = 0; k < N_COMMAND_HELP; k++) {
        if (strcmp(command_help[k].name, c->name) != 0)
            continue;
        fprintf(f, "%s\n", command_help[k].text);
        if (command_help[k].opts)
            dt_args_help(f);
    }
}

/* The command whose help argv asks for: `help CMD`, or `CMD ... --help`; NULL: the whole help. */
static const struct command *help_target(int argc, char **argv)
{
    const char *name = argc > 2 && strcmp(argv[1], "help") == 0 ? argv[2] : argv[1];
    for (int k = 0; k < N_COMMANDS; k++)
        if (commands[k].usage && commands[k].name[0] != '-' && strcmp(name, commands[k].name) == 0)
            return &commands[k];
    return NULL;
}

static int cmd_help(int argc, char **argv, int world)
{
    (void)world;
    const struct command *c = argc > 1 ? help_target(argc, argv) : NULL;
    if (dt_rank == 0) {
        if (c)
            command_usage(stdout, c);
        else
            usage(stdout);
    }
    return 0;
}

/* `dtrain train ... --print-config`: the configuration the options resolve to, as a
 * config file (dt_config_print; -c FILE reads it back to the same run), and nothing run. */
static int cmd_print_config(int argc, char **argv, int world)
{
    (void)world;
    char **rest = dt_xmalloc((size_t)argc, sizeof *rest);
    int n = 0;
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--print-config") != 0)
            rest[n++] = argv[i];
    dt_config cfg;
    int rc = dt_parse_args(&cfg, n, rest, 2);
    free(rest);
    if (dt_dist_agree(rc, MPI_COMM_WORLD) != 0)
        return 1;
    if (dt_rank == 0) {
        dt_config_print(&cfg, stdout);
        fflush(stdout);
    }
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

static const struct command print_config_command = {"--print-config", cmd_print_config, NULL};

/* The command argv asks for: --help when --help or -h is anywhere, --print-config after train,
 * NULL when none matches. */
static const struct command *find_command(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "";
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--print-config") == 0 && strcmp(name, "train") == 0)
            return &print_config_command;
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
    /* --help and --version print text and need no MPI: they run before MPI_Init (rank 0 of a
     * launch prints). Started alone, MPI_Init spawns Open MPI's singleton daemon (orted), which
     * inherits stdout: `dtrain --help | awk ...` then waited for the daemon's end as well, and
     * once waited forever on a daemon that outlived dtrain (test_cli, 2026-12-04). */
    const struct command *early = find_command(argc, argv);
    if (early && (early->fn == cmd_help || early->fn == cmd_version)) {
        const int r = dt_dist_launcher_rank();
        dt_rank = r < 0 ? 0 : r;
        const int status = early->fn(argc, argv, 1);
        fflush(stdout);
        return status;
    }
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
