/*
 * main.c - the dtrain program: `dtrain train [options]`, `dtrain --help`, `dtrain --version`.
 *
 * Run as `mpirun -np N ./dtrain train ...` (or srun, or plain ./dtrain for one rank). Rank and
 * world size come from MPI only. Every fallible phase ends in dt_dist_agree, so a bad input makes
 * every rank exit 1 with one message, and no rank waits in a collective.
 */
#include "blas.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "ckpt.h"
#include "commands.h"
#include "config.h"
#include "data.h"
#include "data_open.h"
#include "dist.h"
#include "h5util.h"
#include "net.h"
#include "train.h"

static void usage(FILE *f)
{
    fprintf(f,
            "dtrain %s - data-parallel neural network training on MPI\n"
            "\n"
            "usage: mpirun -np N ./dtrain train [options]\n"
            "       mpirun -np N ./dtrain eval CHECKPOINT.h5 [--split test|train] [options]\n"
            "                     test (or training) loss and accuracy of a checkpoint's weights;\n"
            "                     its run's configuration, overridden by the options\n"
            "       ./dtrain inspect CHECKPOINT.h5     verify a checkpoint, print what it holds\n"
            "       ./dtrain schedule [options] [--plot FILE.png] [--csv FILE] [--samples N] [--world N]\n"
            "                     the lr and momentum of every step of the configured run, no training\n"
            "       mpirun -np N ./dtrain lr-find [options] [--min-lr 1e-7] [--max-lr 10] [--steps 100]\n"
            "                     [--smooth 0.98] [--diverge 4] [--out DIR]\n"
            "                     LR range test: exponential lr sweep, writes DIR/lr_find.csv + .png\n"
            "       ./dtrain --help | --version\n"
            "\n"
            "train options (applied after -c files, in command-line order):\n"
            "  -c, --config FILE     INI config file (repeatable; `[section]` + `key = value`)\n"
            "  --set KEY=VALUE       set any key below, e.g. --set optim.nesterov=true\n"
            "  --model NAME|FILE     model           (model)\n"
            "  --data NAME           dataset         (data.name)\n"
            "  --data-dir DIR        dataset folder  (data.dir)\n"
            "  --epochs N            epochs          (train.epochs)\n"
            "  --batch-size N        batch per rank  (train.batch_size)\n"
            "  --lr X                learning rate   (optim.lr)\n"
            "  --momentum X          SGD momentum    (optim.momentum)\n"
            "  --weight-decay X      weight decay    (optim.weight_decay)\n"
            "  --seed N              random seed     (seed)\n"
            "  --threads N           BLAS threads per rank (threads)\n"
            "  --optim NAME          optimizer       (optim.name)\n"
            "  --sched NAME          lr schedule     (sched.kind)\n"
            "  --ckpt-dir DIR        checkpoints     (ckpt.dir)\n"
            "  --resume auto|FILE    resume from the newest good checkpoint in ckpt.dir, or FILE\n"
            "\n",
            DT_VERSION);
    dt_config_help(f);
}

static const struct {
    const char *opt, *key;
} long_opts[] = {
    {"--model", "model"},           {"--data", "data.name"},
    {"--data-dir", "data.dir"},     {"--epochs", "train.epochs"},
    {"--batch-size", "train.batch_size"}, {"--lr", "optim.lr"},
    {"--momentum", "optim.momentum"}, {"--weight-decay", "optim.weight_decay"},
    {"--seed", "seed"},             {"--threads", "threads"},
    {"--resume", "ckpt.resume"},    {"--ckpt-dir", "ckpt.dir"},
    {"--optim", "optim.name"},      {"--sched", "sched.kind"},
};

/* Resolves argv[first..argc) into cfg: config files first, then options in order. */
int dt_parse_args(dt_config *cfg, int argc, char **argv, int first)
{
    return dt_parse_args_on(cfg, NULL, NULL, argc, argv, first);
}

int dt_parse_args_on(dt_config *cfg, const char *base, const char *base_source, int argc,
                     char **argv, int first)
{
    dt_config_defaults(cfg);
    if (base && dt_config_load_text(cfg, base, base_source) != 0)
        return DT_ERR;
    for (int i = first; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc)
                return dt_err("%s: expected a config file path", argv[i]);
            if (dt_config_load(cfg, argv[++i]) != 0)
                return DT_ERR;
        }
    }
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            i++;
            continue;
        }
        if (strcmp(a, "--set") == 0) {
            if (i + 1 >= argc)
                return dt_err("--set: expected KEY=VALUE");
            char kv[1024];
            snprintf(kv, sizeof kv, "%s", argv[++i]);
            char *eq = strchr(kv, '=');
            if (!eq)
                return dt_err("--set %s: expected KEY=VALUE", kv);
            *eq = '\0';
            if (dt_config_set(cfg, kv, eq + 1, "--set") != 0)
                return DT_ERR;
            continue;
        }
        /* --opt VALUE or --opt=VALUE */
        char name[64];
        const char *val = NULL;
        const char *eq = strchr(a, '=');
        snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
        size_t k, n = sizeof long_opts / sizeof long_opts[0];
        for (k = 0; k < n; k++)
            if (strcmp(name, long_opts[k].opt) == 0)
                break;
        if (k == n)
            return dt_err("unknown option '%s' (see dtrain --help)", a);
        if (eq) {
            val = eq + 1;
        } else {
            if (i + 1 >= argc)
                return dt_err("%s: expected a value", a);
            val = argv[++i];
        }
        if (dt_config_set(cfg, long_opts[k].key, val, name) != 0)
            return DT_ERR;
    }
    return dt_config_resolve(cfg);
}

static int cmd_train(int argc, char **argv, int world)
{
    dt_config cfg;
    dt_dataset train, test;
    dt_net *net = NULL;
    int rc = dt_parse_args(&cfg, argc, argv, 2);
    if (dt_dist_agree(rc, MPI_COMM_WORLD) != 0)
        return 1;
    openblas_set_num_threads(cfg.threads);
    if (cfg.eval_batch_size == 0)
        cfg.eval_batch_size = cfg.batch_size;

    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    rc = dt_open_data(&cfg, &train, &test);
    if (rc == 0) {
        int max_batch = cfg.batch_size > cfg.eval_batch_size ? cfg.batch_size : cfg.eval_batch_size;
        rc = dt_net_build_for(&net, cfg.model, max_batch, train.c, train.h, train.w);
    }
    if (dt_dist_agree(rc, MPI_COMM_WORLD) != 0) {
        dt_dataset_free(&train);
        dt_dataset_free(&test);
        return 1;
    }
    if (dt_rank == 0) {
        printf("# dtrain %s: %d rank%s x %d BLAS thread%s, global batch %d\n", DT_VERSION, world,
               world > 1 ? "s" : "", cfg.threads, cfg.threads > 1 ? "s" : "",
               cfg.batch_size * world);
        printf("# resolved configuration (usable with -c):\n");
        dt_config_print(&cfg, stdout);
        printf("# end of configuration\n");
        dt_net_print(net, stdout);
        printf("data %s: %lld train, %lld test samples of %dx%dx%d, %d classes%s\n", train.name,
               (long long)train.n, (long long)test.n, train.c, train.h, train.w, train.classes,
               cfg.crop_pad || cfg.flip ? ", augmented" : "");
        fflush(stdout);
        dt_net_init(net, (uint64_t)cfg.seed);
    }
    /* rank 0 initializes, everyone starts from its weights */
    dt_dist_bcast(net->param, net->numel, MPI_COMM_WORLD);
    dt_dist_bcast(net->state, net->state_numel, MPI_COMM_WORLD); /* BatchNorm running stats */

    dt_trainer t;
    rc = dt_trainer_init(&t, &cfg, net, &train, &test, MPI_COMM_WORLD, stdout);
    if (rc == 0)
        rc = dt_trainer_run(&t);
    dt_trainer_free(&t);
    dt_net_free(net);
    dt_dataset_free(&train);
    dt_dataset_free(&test);
    return rc == 0 ? 0 : 1;
}

/* dtrain inspect FILE: verifies a checkpoint and prints what it holds. */
static int cmd_inspect(int argc, char **argv)
{
    if (argc != 3) {
        dt_err("inspect: expected one checkpoint file (dtrain inspect FILE)");
        return dt_dist_agree(DT_ERR, MPI_COMM_WORLD) == 0 ? 0 : 1;
    }
    dt_ck_reader *r = NULL;
    int rc = dt_ck_open(&r, argv[2]);
    if (dt_dist_agree(rc, MPI_COMM_WORLD) != 0)
        return 1;
    if (dt_rank == 0) {
        printf("%s: verified (every dataset's checksum matches)\n", argv[2]);
        const char *keys[] = {"model", "data", "optim", "step", "epochs_done", "world_size",
                              "global_batch", "seed", "dtrain_version", "dtrain_commit",
                              "mpi_version", "openblas_version", "hdf5_version"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            const char *v = dt_ck_get_attr(r, keys[i]);
            if (v)
                printf("  %-16s %s\n", keys[i], v);
        }
        size_t params = 0;
        int n = dt_ck_count(r);
        printf("items (%d):\n", n);
        for (int i = 0; i < n; i++) {
            const dt_ck_item *it = dt_ck_item_at(r, i);
            char shape[96];
            dt_ck_format_shape(shape, sizeof shape, it->ndim, it->dims);
            printf("  %-40s %-8s %s\n", it->name, dt_ck_dtype_name(it->dtype), shape);
            if (strncmp(it->name, "model/", 6) == 0 && it->dtype == DT_CK_F32)
                params += (size_t)it->numel;
        }
        printf("model tensors: %zu values\n", params);
        const dt_ck_item *h = dt_ck_find(r, "metrics/epochs");
        if (h && h->ndim == 2 && h->dims[0] > 0) {
            double *rows = dt_xmalloc((size_t)h->numel, sizeof *rows);
            if (dt_ck_read(r, "metrics/epochs", DT_CK_F64, 2, h->dims, rows) == 0) {
                const double *last = rows + (h->dims[0] - 1) * h->dims[1];
                printf("last epoch: epoch %.0f step %.0f train_loss %.4f train_acc %.2f "
                       "test_loss %.4f test_acc %.2f lr %.6g\n",
                       last[0], last[1], last[2], last[3], last[4], last[5], last[6]);
            }
            free(rows);
        }
        const char *config = dt_ck_get_attr(r, "config");
        if (config)
            printf("# configuration of the run:\n%s", config);
    }
    dt_ck_close(r);
    return 0;
}

int main(int argc, char **argv)
{
    /* A pre-emption signal may come at any moment, during MPI_Init or data loading too: the
     * handlers that record it come first, so it stops training at its first step, with a line. */
    if (argc > 1 && strcmp(argv[1], "train") == 0)
        dt_dist_catch_signals();
    int world = dt_dist_init(&argc, &argv);
    dt_h5_init(); /* HDF5 never prints its error stack: every failure is one dtrain message */
    int status;
    const char *cmd = argc > 1 ? argv[1] : "";
    int want_help = 0;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            want_help = 1;
    if (want_help || strcmp(cmd, "help") == 0) {
        if (dt_rank == 0)
            usage(stdout);
        status = 0;
    } else if (strcmp(cmd, "--version") == 0) {
        if (dt_rank == 0)
            printf("dtrain %s\n", DT_VERSION);
        status = 0;
    } else if (strcmp(cmd, "train") == 0) {
        status = cmd_train(argc, argv, world);
    } else if (strcmp(cmd, "inspect") == 0) {
        status = cmd_inspect(argc, argv);
    } else if (strcmp(cmd, "schedule") == 0) {
        status = dt_cmd_schedule(argc, argv, world);
    } else if (strcmp(cmd, "lr-find") == 0) {
        status = dt_cmd_lrfind(argc, argv, world);
    } else if (strcmp(cmd, "eval") == 0) {
        status = dt_cmd_eval(argc, argv, world);

    } else {
        if (dt_rank == 0) {
            if (argc > 1)
                fprintf(stderr, "dtrain: error: unknown command '%s': expected train, eval, schedule, lr-find or inspect (see dtrain --help)\n", cmd);
            else
                usage(stderr);
        }
        status = 2;
    }
    dt_dist_finalize();
    return status;
}
