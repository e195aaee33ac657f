/*
 * cmd_eval.c - `dtrain eval CHECKPOINT [--split test|train] [--per-class [--confusion FILE.csv]]
 * [train options]`: the loss, top-1 and top-5 accuracy of a checkpoint's weights,
 * data-parallel on any number of ranks.
 *
 * The configuration starts from the checkpoint's own (its "config" attribute: model, data set,
 * data.dir, limits, normalization, eval batch), so `dtrain eval ckpt.h5` measures what the run
 * measured; options given after the file override it as for `dtrain train` (e.g. --data-dir
 * where the data lives now, --set data.limit_test=0 for the whole test set). A file without a
 * "config" attribute (swa-final.h5) gives its "model" and "data" and the defaults otherwise.
 * Relative data paths of the checkpoint (data.dir, data.h5_train, data.h5_test) resolve against
 * the directory the run ran in (the checkpoint's "cwd" attribute), so eval works from any
 * directory; paths given as options resolve against the current one. Only the evaluated split's
 * files are read (data_open.h: dt_open_data_split). A missing file is an error naming the path
 * tried and suggesting --data-dir.
 *
 * Rank 0 verifies and reads the file (dt_ck_open, dt_read_model: every tensor's name and shape
 * must match the model built from the configuration), every rank receives the weights and
 * BatchNorm buffers, and each evaluates its share (rank r takes samples r, r + W, ...: each
 * exactly once) in eval mode. Last line, rank 0:
 *   eval: checkpoint=PATH split=test samples=N loss=L acc=A top5=T
 * loss with 9 significant digits (the logits are float32: further digits depend on the
 * summation order, i.e. the world size), acc and top5 in percent like the run's test_acc.
 * --per-class prints each class's samples, correct predictions and accuracy, and the confusion
 * matrix (rows: true class, columns: the top-1 prediction; MNIST, Fashion-MNIST and CIFAR-10
 * classes by name), and writes the matrix as CSV (plot_confusion.h) to --confusion FILE or
 * CHECKPOINT-confusion-SPLIT.csv beside the checkpoint, for `dtrain plot --confusion FILE`.
 */
#include "blas.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "args.h"
#include "commands.h"
#include "common.h"
#include "config.h"
#include "kernels_agree.h"
#include "data.h"
#include "data_open.h"
#include "dist.h"
#include "net.h"
#include "plot_confusion.h"
#include "tools.h"
#include "threads.h"
#include "train.h"

/* Rank 0's text to everyone (NULL on the others before the call; a malloc'd copy after). */
static char *bcast_text(const char *text, MPI_Comm comm)
{
    long len = text ? (long)strlen(text) : -1;
    MPI_Bcast(&len, 1, MPI_LONG, 0, comm);
    if (len < 0)
        return NULL;
    char *buf = dt_xmalloc((size_t)len + 1, 1);
    if (dt_rank == 0)
        memcpy(buf, text, (size_t)len + 1);
    MPI_Bcast(buf, (int)len + 1, MPI_CHAR, 0, comm);
    return buf;
}

/* Rank 0: verifies the checkpoint (kept open in *r) and takes its configuration: the "config"
 * attribute, or else a minimal one from "model" and "data" (swa-final.h5). *base is malloc'd. */
static int checkpoint_config(const char *path, dt_ck_reader **r, char **base)
{
    if (dt_ck_open(r, path) != 0)
        return DT_ERR;
    const char *config = dt_ck_get_attr(*r, "config");
    const char *model = dt_ck_get_attr(*r, "model"), *data = dt_ck_get_attr(*r, "data");
    if (config) {
        *base = dt_xstrdup(config);
    } else if (model && data) {
        size_t n = strlen(model) + strlen(data) + 32;
        *base = dt_xmalloc(n, 1);
        snprintf(*base, n, "model = %s\n[data]\nname = %s\n", model, data);
    } else {
        return dt_err("%s: no \"config\", \"model\" or \"data\" attribute: not a dtrain "
                      "checkpoint of a model",
                      path);
    }
    return DT_OK;
}

/* What eval does beyond the train options. */
typedef struct eval_opts {
    const char *split;     /* test | train */
    int per_class;         /* --per-class */
    const char *confusion; /* --confusion FILE, NULL: beside the checkpoint */
} eval_opts;

/* Our options (--split, --per-class, --confusion), then the train options on top of the
 * checkpoint's configuration text into cfg, and that text alone into base. Not collective. */
static int eval_args(int argc, char **argv, const char *path, const char *text, dt_config *cfg,
                     dt_config *base, eval_opts *e)
{
    dt_tool_opt opts[] = {{"--split", NULL}, {"--confusion", NULL}};
    char **args = dt_xmalloc((size_t)argc, sizeof *args),
         **rest = dt_xmalloc((size_t)argc, sizeof *rest);
    int nargs = 0, nrest = 0;
    memset(e, 0, sizeof *e);
    for (int i = 0; i < argc; i++) /* the one option without a value */
        if (i < 3 || strcmp(argv[i], "--per-class") != 0)
            args[nargs++] = argv[i];
        else
            e->per_class = 1;
    char source[4200];
    snprintf(source, sizeof source, "%s (its config attribute)", path);
    int rc = dt_tool_split_args(nargs, args, 3, opts, 2, rest, &nrest);
    if (rc == 0)
        rc = dt_parse_args_on(cfg, text, source, nrest, rest, 3);
    if (rc == 0)
        rc = dt_parse_args_on(base, text, source, 3, args, 3);
    free(rest);
    free(args);
    e->split = opts[0].val ? opts[0].val : "test";
    e->confusion = opts[1].val;
    if (rc == 0 && strcmp(e->split, "test") != 0 && strcmp(e->split, "train") != 0)
        rc = dt_err("--split = '%s': expected test or train", e->split);
    if (rc == 0 && e->confusion && !e->per_class)
        rc = dt_err("--confusion %s: only with --per-class", e->confusion);
    return rc;
}

/* Relative data paths that come from the checkpoint (still equal to its configuration's)
 * resolve against the run's directory cwd. Returns whether one was rewritten. */
static int resolve_paths(dt_config *cfg, const dt_config *base, const char *cwd)
{
    char *v[3] = {cfg->data_dir, cfg->h5_train, cfg->h5_test};
    const char *b[3] = {base->data_dir, base->h5_train, base->h5_test};
    int n = 0;
    for (int k = 0; k < 3 && cwd && cwd[0]; k++) {
        char abs[2 * DT_STR_MAX + 8];
        if (strcmp(v[k], b[k]) != 0 || v[k][0] == '/' || strcmp(v[k], "none") == 0)
            continue;
        int len = snprintf(abs, sizeof abs, "%s/%s", cwd, v[k]);
        if (len > 0 && len < DT_STR_MAX) {
            memcpy(v[k], abs, (size_t)len + 1);
            n++;
        }
    }
    return n > 0;
}

/* The split's data (only its files), with the hint a missing file needs. Not collective. */
static int open_split(const dt_config *cfg, const char *split, int resolved, dt_dataset *ds)
{
    if (dt_open_data_split(cfg, split, ds) == 0)
        return DT_OK;
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", dt_err_msg());
    int h5 = strcmp(cfg->data_name, "hdf5") == 0;
    return dt_err("%s (%s = %s%s; pass %s where the data is now)", msg,
                  h5 ? "data.h5_test/h5_train" : "data.dir",
                  h5 ? "from the checkpoint" : cfg->data_dir,
                  resolved ? ", the checkpoint's relative path resolved against the directory the "
                             "run ran in"
                           : "",
                  h5 ? "--set data.h5_test=FILE" : "--data-dir DIR");
}

/* Rank 0: the checkpoint's weights into net, whose model must be the checkpoint's. */
static int read_weights(dt_ck_reader *r, const char *path, dt_net *net)
{
    const char *model = dt_ck_get_attr(r, "model");
    if (model && strcmp(model, net->model) != 0)
        return dt_err("%s: checkpoint of model '%s', this evaluation builds '%s'", path, model,
                      net->model);
    return dt_read_model(r, net);
}

static const char *const digit_names[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
static const char *const fashion_names[10] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                              "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                              "Bag",         "Ankle boot"};
static const char *const cifar_names[10] = {"airplane", "automobile", "bird",  "cat",  "deer",
                                            "dog",      "frog",       "horse", "ship", "truck"};

/* The class names of a built-in data set of K classes, or NULL (numbers). */
static const char *const *class_names(const char *data, int K)
{
    if (K != 10)
        return NULL;
    return strcmp(data, "mnist") == 0           ? digit_names
           : strcmp(data, "fashion-mnist") == 0 ? fashion_names
           : strcmp(data, "cifar10") == 0       ? cifar_names
                                                : NULL;
}

/* Rank 0: per-class accuracy and the confusion matrix cm (K x K) on stdout. */
static void print_per_class(const int64_t *cm, int K, const char *const *names, const char *split)
{
    printf("per-class accuracy (%s split; rows of the confusion matrix below):\n", split);
    printf("  %-14s %8s %8s %8s\n", "class", "samples", "correct", "acc");
    for (int i = 0; i < K; i++) {
        int64_t row = 0;
        for (int j = 0; j < K; j++)
            row += cm[(size_t)i * K + j];
        char name[64];
        snprintf(name, sizeof name, "%d%s%s", i, names ? " " : "", names ? names[i] : "");
        printf("  %-14s %8lld %8lld %8.2f\n", name, (long long)row,
               (long long)cm[(size_t)i * K + i],
               row ? 100.0 * (double)cm[(size_t)i * K + i] / (double)row : 0.0);
    }
    printf("confusion matrix (row: true class, column: predicted class):\n      ");
    for (int j = 0; j < K; j++)
        printf(" %6d", j);
    printf("\n");
    for (int i = 0; i < K; i++) {
        printf("  %3d ", i);
        for (int j = 0; j < K; j++)
            printf(" %6lld", (long long)cm[(size_t)i * K + j]);
        printf("\n");
    }
}

/* Rank 0: the confusion matrix as CSV (plot_confusion.h) at e->confusion or beside path. */
static int write_confusion(const int64_t *cm, int K, const char *const *names, const char *path,
                           const eval_opts *e, int64_t n)
{
    char out[4200], comment[4400];
    size_t len = strlen(path);
    if (e->confusion)
        snprintf(out, sizeof out, "%s", e->confusion);
    else
        snprintf(out, sizeof out, "%.*s-confusion-%s.csv",
                 (int)(len > 3 && strcmp(path + len - 3, ".h5") == 0 ? len - 3 : len), path,
                 e->split);
    FILE *f = fopen(out, "w");
    if (!f)
        return dt_err("%s: cannot create: %s (choose another file with --confusion FILE)", out,
                      strerror(errno));
    snprintf(comment, sizeof comment, "dtrain eval --per-class: %s, split %s, %lld samples", path,
             e->split, (long long)n);
    dt_confusion_write(f, comment, K, names, cm);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad)
        return dt_err("%s: write failed: %s", out, strerror(errno));
    printf("confusion matrix written to %s (draw it: dtrain plot --confusion %s)\n", out, out);
    return DT_OK;
}

/* Every rank its share of ds; rank 0 prints the result (and with --per-class the classes and
 * the confusion matrix, written to a file). Collective: 0 or DT_ERR on every rank. */
static int evaluate(dt_net *net, const dt_dataset *ds, int batch, const char *path,
                    const eval_opts *e)
{
    const size_t D = (size_t)ds->c * ds->h * ds->w;
    const int K = net->classes;
    float *x = dt_xmalloc((size_t)batch * D, sizeof *x);
    float *probs = dt_xmalloc((size_t)batch * K, sizeof *probs);
    int *y = dt_xmalloc((size_t)batch, sizeof *y);
    int64_t *cm = e->per_class ? dt_xcalloc((size_t)K * K, sizeof *cm) : NULL;
    dt_eval ev = dt_net_evaluate_cm(net, ds, batch, x, y, probs, MPI_COMM_WORLD, cm);
    int rc = DT_OK;
    if (dt_rank == 0) {
        printf("model %s (%s), %zu parameters; data %s %s: %lld samples of %dx%dx%d\n", net->model,
               net->source, net->numel, ds->name, e->split, (long long)ds->n, ds->c, ds->h, ds->w);
        if (cm) {
            const char *const *names = class_names(ds->name, K);
            print_per_class(cm, K, names, e->split);
            rc = write_confusion(cm, K, names, path, e, ev.n);
        }
        /* loss with 9 significant digits: the logits are float32, whose values 9 digits
         * identify exactly; further digits change with the summation order (the world size) */
        printf("eval: checkpoint=%s split=%s samples=%lld loss=%.9g acc=%.2f top5=%.2f\n", path,
               e->split, (long long)ev.n, ev.loss, 100.0 * ev.acc, 100.0 * ev.top5);
        fflush(stdout);
    }
    free(x);
    free(probs);
    free(y);
    free(cm);
    return dt_dist_agree(rc, MPI_COMM_WORLD);
}

/* Rank 0 verifies the checkpoint and takes its configuration and run directory (*r, *base,
 * *cwd, malloc'd); every rank then gets the configuration with the options on top (cfg, e).
 * Collective: 0 or DT_ERR on every rank. */
static int eval_config(int argc, char **argv, const char *path, dt_ck_reader **r, dt_config *cfg,
                       eval_opts *e, int *resolved)
{
    char *base = NULL, *cwd0 = NULL;
    int rc = dt_rank == 0 ? checkpoint_config(path, r, &base) : 0;
    if (rc == 0 && dt_rank == 0)
        cwd0 = dt_xstrdup(dt_ck_get_attr(*r, "cwd") ? dt_ck_get_attr(*r, "cwd") : "");
    if (dt_dist_agree(rc, MPI_COMM_WORLD) != 0) {
        free(base);
        return DT_ERR;
    }
    char *text = bcast_text(base, MPI_COMM_WORLD), *cwd = bcast_text(cwd0, MPI_COMM_WORLD);
    free(base);
    free(cwd0);
    dt_config base_cfg;
    rc = eval_args(argc, argv, path, text, cfg, &base_cfg, e);
    if (rc == 0)
        *resolved = resolve_paths(cfg, &base_cfg, cwd);
    free(text);
    free(cwd);
    if (dt_dist_agree(rc, MPI_COMM_WORLD) != 0 || dt_kernels_agree(cfg, MPI_COMM_WORLD) != 0)
        return DT_ERR;
    return DT_OK;
}

int dt_cmd_eval(int argc, char **argv, int world)
{
    (void)world;
    if (argc < 3 || argv[2][0] == '-') {
        dt_err("eval: expected a checkpoint file first (dtrain eval FILE [--split test|train] "
               "[--per-class] [options])");
        return dt_dist_agree(DT_ERR, MPI_COMM_WORLD) == 0 ? 0 : 1;
    }
    const char *path = argv[2];
    dt_ck_reader *r = NULL;
    dt_config cfg;
    eval_opts e;
    int resolved = 0;
    if (eval_config(argc, argv, path, &r, &cfg, &e, &resolved) != 0) {
        dt_ck_close(r);
        return 1;
    }
    dt_threads_start(cfg.threads, cfg.bind, MPI_COMM_WORLD);
    const int batch = cfg.eval_batch_size > 0 ? cfg.eval_batch_size : cfg.batch_size;

    /* the split's data only, net, weights */
    dt_dataset ds;
    dt_net *net = NULL;
    memset(&ds, 0, sizeof ds);
    int rc = open_split(&cfg, e.split, resolved, &ds);
    if (rc == 0)
        rc = dt_net_build_for(&net, cfg.model, batch, ds.c, ds.h, ds.w);
    if (rc == 0)
        dt_net_set_precision(net, cfg.precision); /* evaluate as the run did */
    if (dt_dist_agree(rc, MPI_COMM_WORLD) == 0)
        rc = dt_dist_agree(dt_rank == 0 ? read_weights(r, path, net) : 0, MPI_COMM_WORLD);
    else
        rc = DT_ERR;
    dt_ck_close(r);
    if (rc == 0) {
        dt_dist_bcast(net->param, net->numel, MPI_COMM_WORLD);
        rc = evaluate(net, &ds, batch, path, &e);
    }
    dt_net_free(net);
    dt_dataset_free(&ds);
    return rc == 0 ? 0 : 1;
}
