/*
 * cmd_eval.c - `dtrain eval CHECKPOINT [--split test|train] [train options]`: the loss and
 * accuracy of a checkpoint's weights, data-parallel on any number of ranks.
 *
 * The configuration starts from the checkpoint's own (its "config" attribute: model, data set,
 * data.dir, limits, normalization, eval batch), so `dtrain eval ckpt.h5` measures what the run
 * measured; options given after the file override it as for `dtrain train` (e.g. --data-dir
 * where the data lives now, --set data.limit_test=0 for the whole test set). A file without a
 * "config" attribute (swa-final.h5) gives its "model" and "data" and the defaults otherwise.
 * Rank 0 verifies and reads the file (dt_ck_open, dt_read_model: every tensor's name and shape
 * must match the model built from the configuration), every rank receives the weights and
 * BatchNorm buffers, and each evaluates its share (rank r takes samples r, r + W, ...: each
 * exactly once) in eval mode. Last line, rank 0:
 *   eval: checkpoint=PATH split=test samples=N loss=L acc=A
 * with loss and acc (%) printed like the training run's test_loss / test_acc.
 */
#include "blas.h"

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

/* Our option (--split, into *split), then the train options on top of the checkpoint's
 * configuration text. Not collective. */
static int eval_args(int argc, char **argv, const char *path, const char *text, dt_config *cfg,
                     const char **split)
{
    dt_tool_opt opts[] = {{"--split", NULL}};
    char **rest = dt_xmalloc((size_t)argc, sizeof *rest);
    int nrest = 0;
    char source[4200];
    snprintf(source, sizeof source, "%s (its config attribute)", path);
    int rc = dt_tool_split_args(argc, argv, 3, opts, 1, rest, &nrest);
    if (rc == 0)
        rc = dt_parse_args_on(cfg, text, source, nrest, rest, 3);
    free(rest);
    *split = opts[0].val ? opts[0].val : "test";
    if (rc == 0 && strcmp(*split, "test") != 0 && strcmp(*split, "train") != 0)
        rc = dt_err("--split = '%s': expected test or train", *split);
    return rc;
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

/* Every rank its share of ds; rank 0 prints the result. */
static void evaluate(dt_net *net, const dt_dataset *ds, int batch, const char *path,
                     const char *split)
{
    const size_t D = (size_t)ds->c * ds->h * ds->w;
    float *x = dt_xmalloc((size_t)batch * D, sizeof *x);
    float *probs = dt_xmalloc((size_t)batch * net->classes, sizeof *probs);
    int *y = dt_xmalloc((size_t)batch, sizeof *y);
    dt_eval ev = dt_net_evaluate(net, ds, batch, x, y, probs, MPI_COMM_WORLD);
    if (dt_rank == 0) {
        printf("model %s (%s), %zu parameters; data %s %s: %lld samples of %dx%dx%d\n", net->model,
               net->source, net->numel, ds->name, split, (long long)ds->n, ds->c, ds->h, ds->w);
        printf("eval: checkpoint=%s split=%s samples=%lld loss=%.4f acc=%.2f\n", path, split,
               (long long)ev.n, ev.loss, 100.0 * ev.acc);
        fflush(stdout);
    }
    free(x);
    free(probs);
    free(y);
}

int dt_cmd_eval(int argc, char **argv, int world)
{
    (void)world;
    if (argc < 3 || argv[2][0] == '-') {
        dt_err("eval: expected a checkpoint file first (dtrain eval FILE [--split test|train] "
               "[options])");
        return dt_dist_agree(DT_ERR, MPI_COMM_WORLD) == 0 ? 0 : 1;
    }
    const char *path = argv[2];

    /* rank 0 verifies the file and takes its configuration; options on top, on every rank */
    dt_ck_reader *r = NULL;
    char *base = NULL;
    int rc = dt_rank == 0 ? checkpoint_config(path, &r, &base) : 0;
    if (dt_dist_agree(rc, MPI_COMM_WORLD) != 0) {
        free(base);
        dt_ck_close(r);
        return 1;
    }
    char *text = bcast_text(base, MPI_COMM_WORLD);
    free(base);
    dt_config cfg;
    const char *split;
    rc = eval_args(argc, argv, path, text, &cfg, &split);
    free(text);
    if (dt_dist_agree(rc, MPI_COMM_WORLD) != 0 || dt_kernels_agree(&cfg, MPI_COMM_WORLD) != 0) {
        dt_ck_close(r);
        return 1;
    }
    dt_threads_start(cfg.threads, MPI_COMM_WORLD);
    const int batch = cfg.eval_batch_size > 0 ? cfg.eval_batch_size : cfg.batch_size;

    /* data (the training split too: "auto" normalization is its statistics), net, weights */
    dt_dataset train, test;
    dt_net *net = NULL;
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    rc = dt_open_data(&cfg, &train, &test);
    if (rc == 0)
        rc = dt_net_build_for(&net, cfg.model, batch, train.c, train.h, train.w);
    if (rc == 0)
        dt_net_set_precision(net, cfg.precision); /* evaluate as the run did */
    if (dt_dist_agree(rc, MPI_COMM_WORLD) == 0)
        rc = dt_dist_agree(dt_rank == 0 ? read_weights(r, path, net) : 0, MPI_COMM_WORLD);
    else
        rc = DT_ERR;
    dt_ck_close(r);
    if (rc == 0) {
        dt_dist_bcast(net->param, net->numel, MPI_COMM_WORLD);
        evaluate(net, strcmp(split, "train") == 0 ? &train : &test, batch, path, split);
    }
    dt_net_free(net);
    dt_dataset_free(&train);
    dt_dataset_free(&test);
    return rc == 0 ? 0 : 1;
}
