/*
 * cmd_inspect.c - `dtrain inspect CHECKPOINT.h5`: verifies a checkpoint and prints what it holds.
 *
 * Two checks, the ones a resume makes: the checksums of every dataset (dt_ck_open), then the
 * state table. The configuration the checkpoint records ("config" attribute) is parsed, its model
 * built for the checkpoint's input shape (attribute "input"; older files: the data set's), and the
 * table of resumable state a run of that configuration registers (train_ckpt.h, state.h) is read
 * and validated: every item present with its dtype and shape, values in range, items consistent
 * with each other. The listing is one loop over that table: each item's name, type, shape, scope
 * and values (scalars in full, tensors as min/max/mean). Items of the file that the table does not
 * know are listed after it; a file without a configuration (swa-final.h5) is listed item by item.
 * Then the last epoch's metrics and the configuration.
 *
 * Rank 0 reads and prints; every rank exits 1 on a bad file (one message), also when the state
 * table's validation fails (after the listing: a resume would refuse it too).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "commands.h"
#include "common.h"
#include "config.h"
#include "dist.h"
#include "net.h"
#include "state.h"
#include "train_ckpt.h"

/* The checkpoint's attributes worth a line, in this order. */
static void print_attrs(dt_ck_reader *r)
{
    const char *keys[] = {
        "model",        "data",           "input",         "optim",       "step",
        "epochs_done",  "world_size",     "global_batch",  "seed",        "kernels_isa",
        "kernels_conv", "dtrain_version", "dtrain_commit", "mpi_version", "openblas_version",
        "hdf5_version"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = dt_ck_get_attr(r, keys[i]);
        if (v)
            printf("  %-16s %s\n", keys[i], v);
    }
}

/* "min .. max, mean" of n values (float, double or int64 per dtype), or the values when few. */
static void describe_values(char *buf, size_t size, dt_ck_dtype dtype, const void *v, int64_t n)
{
    if (n == 0) {
        snprintf(buf, size, "(empty)");
        return;
    }
    double lo = INFINITY, hi = -INFINITY, sum = 0.0;
    int64_t finite = 0;
    for (int64_t i = 0; i < n; i++) {
        const double x = dtype == DT_CK_F32   ? (double)((const float *)v)[i]
                         : dtype == DT_CK_F64 ? ((const double *)v)[i]
                                              : (double)((const int64_t *)v)[i];
        if (!isfinite(x))
            continue; /* NaN marks "not measured" in metrics rows */
        lo = x < lo ? x : lo;
        hi = x > hi ? x : hi;
        sum += x;
        finite++;
    }
    if (n <= 3) {
        size_t at = 0;
        for (int64_t i = 0; i < n && at < size; i++) {
            if (dtype == DT_CK_I64)
                at += (size_t)snprintf(buf + at, size - at, "%s%lld", i ? " " : "",
                                       (long long)((const int64_t *)v)[i]);
            else
                at += (size_t)snprintf(buf + at, size - at, "%s%.9g", i ? " " : "",
                                       dtype == DT_CK_F32 ? (double)((const float *)v)[i]
                                                          : ((const double *)v)[i]);
        }
        return;
    }
    if (finite == 0)
        snprintf(buf, size, "(no finite value)");
    else if (finite < n)
        snprintf(buf, size, "%.6g .. %.6g, mean %.6g (%lld not finite)", lo, hi,
                 sum / (double)finite, (long long)(n - finite));
    else
        snprintf(buf, size, "%.6g .. %.6g, mean %.6g", lo, hi, sum / (double)n);
}

static const char *scope_name(dt_state_scope s)
{
    return s == DT_STATE_SHARED ? "shared" : s == DT_STATE_RANK0 ? "rank 0" : "per rank";
}

/* The loop over the table: one line per item, its staged values where it was read. */
static void print_table(const dt_state *st, dt_ck_reader *r)
{
    printf("state table (%d items, as a run of this configuration registers them):\n", st->n);
    for (int i = 0; i < st->n; i++) {
        const dt_state_item *it = &st->items[i];
        const dt_ck_item *f = dt_ck_find(r, it->name);
        char shape[96], values[160] = "";
        if (f)
            dt_ck_format_shape(shape, sizeof shape, f->ndim, f->dims);
        else
            snprintf(shape, sizeof shape, "-");
        int64_t n = 0;
        const void *v = it->present ? dt_state_staged(st, it->name, &n) : NULL;
        if (v)
            describe_values(values, sizeof values, it->dtype, v, n);
        else
            snprintf(values, sizeof values, "%s", f ? "(not read)" : "MISSING");
        printf("  %-34s %-7s %-14s %-8s %s\n", it->name, dt_ck_dtype_name(it->dtype), shape,
               scope_name(it->scope), values);
    }
    int extra = 0;
    for (int i = 0; i < dt_ck_count(r); i++) {
        const dt_ck_item *f = dt_ck_item_at(r, i);
        if (!dt_state_find(st, f->name)) {
            if (!extra++)
                printf("items the table does not know (a resume ignores them):\n");
            printf("  %s\n", f->name);
        }
    }
}

/* A file without a configuration: its items as stored. */
static void print_items(dt_ck_reader *r)
{
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
}

static void print_last_epoch(dt_ck_reader *r)
{
    const dt_ck_item *h = dt_ck_find(r, "metrics/epochs");
    if (!h || h->ndim != 2 || h->dims[0] <= 0)
        return;
    double *rows = dt_xmalloc((size_t)h->numel, sizeof *rows);
    if (dt_ck_read(r, "metrics/epochs", DT_CK_F64, 2, h->dims, rows) == 0) {
        const double *last = rows + (h->dims[0] - 1) * h->dims[1];
        const int top5 = h->dims[1] >= 11; /* dt_epoch_rec: test_top5 follows test_acc */
        printf("last epoch: epoch %.0f step %.0f train_loss %.4f train_acc %.2f", last[0], last[1],
               last[2], last[3]);
        if (h->dims[1] >= 13) /* train_top5 since 13 columns */
            printf(" train_top5 %.2f", last[11]);
        printf(" test_loss %.4f test_acc %.2f", last[4], last[5]);
        if (top5)
            printf(" test_top5 %.2f", last[6]);
        printf(" lr %.6g\n", last[top5 ? 7 : 6]);
    }
    free(rows);
}

/* The input shape the checkpoint's model was built for: its "input" attribute, or for older
 * files the data set's (the IDX sets 1x28x28, CIFAR-10 3x32x32), else the model's own. */
static void input_shape(dt_ck_reader *r, const dt_config *cfg, int *c, int *h, int *w)
{
    const char *in = dt_ck_get_attr(r, "input");
    *c = *h = *w = 0;
    if (in && sscanf(in, "%dx%dx%d", c, h, w) == 3 && *c > 0 && *h > 0 && *w > 0)
        return;
    *c = *h = *w = 0;
    if (strcmp(cfg->data_name, "mnist") == 0 || strcmp(cfg->data_name, "fashion-mnist") == 0)
        *c = 1, *h = *w = 28;
    else if (strcmp(cfg->data_name, "cifar10") == 0)
        *c = 3, *h = *w = 32;
}

/* Rank 0: the state-table check of a checkpoint with a configuration. Prints the table; returns 0
 * or DT_ERR (message recorded). */
static int check_state(dt_ck_reader *r, const char *text)
{
    char source[4200];
    snprintf(source, sizeof source, "%s: attribute 'config'", dt_ck_path(r));
    dt_config cfg;
    dt_config_defaults(&cfg);
    if (dt_config_load_text(&cfg, text, source) != 0 || dt_config_resolve(&cfg) != 0)
        return DT_ERR;
    int c, h, w;
    input_shape(r, &cfg, &c, &h, &w);
    dt_net *net = NULL;
    int rc =
        c > 0 ? dt_net_build_for(&net, cfg.model, 1, c, h, w) : dt_net_build(&net, cfg.model, 1);
    if (rc != 0)
        return DT_ERR;
    dt_trainer t;
    rc = dt_trainer_check_file(&t, &cfg, net, r);
    print_table(&t.state, r);
    dt_trainer_check_free(&t);
    dt_net_free(net);
    if (rc == 0)
        printf("state: valid (every item present, in range and consistent, as a resume checks)\n");
    return rc;
}

int dt_cmd_inspect(int argc, char **argv, int world)
{
    (void)world;
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
        print_attrs(r);
        const char *config = dt_ck_get_attr(r, "config");
        if (config)
            rc = check_state(r, config);
        else
            print_items(r);
        if (rc == 0) {
            print_last_epoch(r);
            if (config)
                printf("# configuration of the run:\n%s", config);
        }
        fflush(stdout);
    }
    dt_ck_close(r);
    return dt_dist_agree(rc, MPI_COMM_WORLD) == 0 ? 0 : 1;
}
