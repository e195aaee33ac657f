/*
 * test_state.c - the resumable-state table (runtime/state.h):
 *  - a table of every dtype and scope (shared, rank 0, per rank, a variable row count, an optional
 *    item) survives a save/load round trip bitwise; the value rules (finite, >= 0, >= 1) reject a
 *    value with one message naming the file and the item; an optional item may be absent;
 *  - the trainer's own table (SGD and Adam, BatchNorm buffers, SWA, the loss scaler): every
 *    registered item, filled with distinct values, survives a save/load round trip bitwise, and a
 *    checkpoint lacking any ONE of them fails to load with one message naming the checkpoint and
 *    that item (dt_state_commit is never reached, so nothing is half-loaded).
 * Single process (dt_dist_init without mpirun).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ckpt.h"
#include "ckpt_dir.h"
#include "common.h"
#include "config.h"
#include "data.h"
#include "dist.h"
#include "net.h"
#include "rng.h"
#include "state.h"
#include "train.h"

static char dir[256];

/* Writes the table to path, leaving out item `skip` (-1: none). 0 or DT_ERR. */
static int save(dt_state *s, const char *path, int skip)
{
    dt_state_gather(s, MPI_COMM_WORLD);
    dt_ck_writer *w = dt_ck_begin(path);
    if (skip < 0) {
        dt_state_write(s, w);
    } else {
        /* the same table without one item: a copy of the item list */
        dt_state t = *s;
        dt_state_item *items = dt_xmalloc((size_t)s->n, sizeof *items);
        int n = 0;
        for (int i = 0; i < s->n; i++)
            if (i != skip)
                items[n++] = s->items[i];
        t.items = items;
        t.n = n;
        dt_state_write(&t, w);
        free(items);
    }
    dt_ck_attr(w, "config", "");
    return dt_ck_commit(w);
}

static int load(dt_state *s, const char *path)
{
    dt_ck_reader *r = NULL;
    if (dt_ck_open(&r, path) != 0)
        return DT_ERR;
    int rc = dt_state_read(s, r);
    if (rc == 0)
        dt_state_commit(s);
    dt_ck_close(r);
    return rc;
}

static int accept(dt_ck_reader *r, void *ctx) { return dt_state_read(ctx, r); }

static int has(const char *msg, const char *a, const char *b)
{
    int ok = strstr(msg, a) && strstr(msg, b);
    if (!ok)
        fprintf(stderr, "  message: %s\n", msg);
    return ok;
}

/* A checkpoint with more rows (the table's, at path) than a table's capacity is refused. */
static void test_rows_capacity(double *hist, const char *path)
{
    dt_state big;
    dt_state_init(&big);
    const int64_t dh1[2] = {1, 2};
    int64_t one = 1;
    dt_state_add_rows(&big, "b/hist", DT_CK_F64, 2, dh1, hist, &one, DT_STATE_RANK0, 0);
    dt_ck_reader *r = NULL;
    CHECK(dt_ck_open(&r, path) == 0);
    CHECK(dt_state_read(&big, r) != 0);
    CHECK(has(dt_err_msg(), path, "b/hist has 2 rows: expected at most 1"));
    dt_ck_close(r);
    dt_state_free(&big);
}

/* --resume auto's search: the newest checkpoint that passes dt_state_read; the newer one refused
 * is in the report with the reason. s: test_table's table, whose item k is *k (left at 42). */
static void test_auto_search(dt_state *s, int64_t *k)
{
    char sub[400], p1[512], p2[512], found[512], report[1024];
    snprintf(sub, sizeof sub, "%s/auto", dir);
    DT_ASSERT(dt_mkdir_p(sub) == 0);
    DT_ASSERT(dt_ck_step_path(p1, sizeof p1, sub, 1) == 0);
    DT_ASSERT(dt_ck_step_path(p2, sizeof p2, sub, 2) == 0);
    *k = 7;
    CHECK(save(s, p1, -1) == 0);
    *k = -1;
    CHECK(save(s, p2, -1) == 0);
    *k = 0;
    int64_t step = -1;
    CHECK(dt_ck_find_latest_if(sub, found, sizeof found, &step, report, sizeof report, accept, s) ==
          1);
    CHECK(step == 1 && strcmp(found, p1) == 0);
    CHECK(has(report, p2, "k = -1: expected an integer >= 1"));
    dt_state_commit(s);
    CHECK(*k == 7);
    *k = 42;
}

/* Round trip of every item kind, the value rules, row capacity, --resume auto's search, missing
 * items. */
static void test_table(void)
{
    float w[6];
    double d[3];
    int64_t k = 0, rows = 2, mine[2] = {7, 8};
    double hist[4 * 2];
    dt_state s;
    dt_state_init(&s);
    const int64_t dw[2] = {2, 3}, dd[1] = {3}, dh[2] = {4, 2}, dm[1] = {2};
    dt_state_add(&s, "a/w", DT_CK_F32, 2, dw, w, DT_STATE_SHARED, DT_STATE_FINITE);
    dt_state_add(&s, "a/d", DT_CK_F64, 1, dd, d, DT_STATE_RANK0, 0);
    dt_state_add(&s, "k", DT_CK_I64, 0, NULL, &k, DT_STATE_SHARED, DT_STATE_POSITIVE);
    dt_state_add_rows(&s, "b/hist", DT_CK_F64, 2, dh, hist, &rows, DT_STATE_RANK0, 0);
    dt_state_add(&s, "b/mine", DT_CK_I64, 1, dm, mine, DT_STATE_PER_RANK, DT_STATE_NONNEG);
    for (int i = 0; i < 6; i++)
        w[i] = 0.25f * (float)i - 1.0f;
    for (int i = 0; i < 3; i++)
        d[i] = NAN; /* no FINITE rule on a/d */
    d[1] = 1e300;
    k = 42;
    for (int i = 0; i < 8; i++)
        hist[i] = i + 0.5;
    char path[512], bad[512];
    snprintf(path, sizeof path, "%s/table.h5", dir);
    CHECK(save(&s, path, -1) == 0);
    float w0[6];
    double d0[3], h0[8];
    memcpy(w0, w, sizeof w);
    memcpy(d0, d, sizeof d);
    memcpy(h0, hist, sizeof hist);
    memset(w, 0, sizeof w);
    memset(d, 0, sizeof d);
    memset(hist, 0, sizeof hist);
    k = 0;
    rows = 0;
    CHECK(load(&s, path) == 0);
    CHECK(memcmp(w, w0, sizeof w) == 0);
    CHECK(memcmp(d, d0, sizeof d) == 0);
    CHECK(k == 42);
    CHECK(rows == 2);
    CHECK(memcmp(hist, h0, 4 * sizeof *hist) == 0 && hist[4] == 0.0);
    int64_t n = 0;
    const int64_t *m = dt_state_staged(&s, "b/mine", &n);
    CHECK(n == 2 && m && m[0] == 7 && m[1] == 8);
    /* value rules */
    k = 0;
    snprintf(bad, sizeof bad, "%s/k0.h5", dir);
    CHECK(save(&s, bad, -1) == 0);
    k = 42;
    CHECK(load(&s, bad) != 0);
    CHECK(has(dt_err_msg(), bad, "k = 0: expected an integer >= 1"));
    CHECK(k == 42); /* a failed load commits nothing */
    w[4] = INFINITY;
    snprintf(bad, sizeof bad, "%s/inf.h5", dir);
    CHECK(save(&s, bad, -1) == 0);
    w[4] = 0.0f;
    CHECK(load(&s, bad) != 0);
    CHECK(has(dt_err_msg(), bad, "a/w[4] = inf: expected finite values"));
    CHECK(w[4] == 0.0f);
    test_rows_capacity(hist, path);
    test_auto_search(&s, &k);
    /* a missing required item; an optional one may be missing */
    snprintf(bad, sizeof bad, "%s/nok.h5", dir);
    CHECK(save(&s, bad, 2) == 0);
    CHECK(load(&s, bad) != 0);
    CHECK(has(dt_err_msg(), bad, "no item 'k'"));
    s.items[2].flags |= DT_STATE_OPTIONAL;
    k = 5;
    CHECK(load(&s, bad) == 0);
    CHECK(k == 5);
    dt_state_free(&s);
}

enum { N = 40 };

static void make_data(dt_dataset *ds)
{
    static uint8_t img[N * 8 * 8], lbl[N];
    dt_mt19937 g;
    dt_mt_seed(&g, 3);
    for (size_t i = 0; i < sizeof img; i++)
        img[i] = (uint8_t)(dt_mt_next(&g) & 0xff);
    for (int i = 0; i < N; i++)
        lbl[i] = (uint8_t)(dt_mt_next(&g) % 10);
    float mean = 0.5f, std = 0.25f;
    dt_dataset_from_memory(ds, "synthetic", N, 1, 8, 8, 10, img, lbl, &mean, &std);
}

static size_t item_bytes(const dt_state_item *it)
{
    size_t n = 1;
    for (int d = 0; d < it->ndim; d++)
        n *= (size_t)(d == 0 && it->rows ? *it->rows : it->dims[d]);
    return n * dt_ck_dtype_size(it->dtype);
}

/* Fills every registered item with values that differ between items and satisfy its rules. */
static void fill(dt_state *s, int salt)
{
    for (int i = 0; i < s->n; i++) {
        dt_state_item *it = &s->items[i];
        if (!it->ptr)
            continue;
        size_t bytes = item_bytes(it), cnt = bytes / dt_ck_dtype_size(it->dtype);
        for (size_t j = 0; j < cnt; j++) {
            double v = 1.0 + (double)i + 0.001 * (double)(j % 997) + salt;
            if (it->dtype == DT_CK_F32)
                ((float *)it->ptr)[j] = (float)v;
            else if (it->dtype == DT_CK_F64)
                ((double *)it->ptr)[j] = v;
            else if (it->dtype == DT_CK_I64)
                ((int64_t *)it->ptr)[j] = (int64_t)v;
        }
    }
}

static void test_trainer(const char *label, const char *const *sets, int nsets)
{
    dt_config cfg;
    dt_config_defaults(&cfg);
    for (int i = 0; i < nsets; i += 2)
        DT_ASSERT(dt_config_set(&cfg, sets[i], sets[i + 1], "test") == 0);
    cfg.batch_size = cfg.eval_batch_size = 4;
    DT_ASSERT(dt_config_resolve(&cfg) == 0);
    dt_dataset ds;
    make_data(&ds);
    dt_net *net = NULL;
    DT_ASSERT(dt_net_build(&net, "tests/fixtures/dp_bn.cfg", 4) == 0);
    dt_net_init(net, 0);
    dt_trainer t;
    DT_ASSERT(dt_trainer_init(&t, &cfg, net, &ds, &ds, MPI_COMM_WORLD, NULL) == 0);
    dt_state *s = &t.state;
    t.io.nhist = cfg.epochs;
    fill(s, 0);
    /* the table covers what a resume needs from each module */
    const char *want[] = {"model/fc1.weight",
                          "model/bn1.running_mean",
                          "model/bn1.num_batches_tracked",
                          "optim/step",
                          "sched/last_epoch",
                          "train/step",
                          "train/epoch_pos",
                          "train/epoch_sums",
                          "train/time",
                          "rng/streams",
                          "metrics/epochs",
                          "metrics/step_rows",
                          "swa/average",
                          "swa/n",
                          "amp/scale"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!dt_state_find(s, want[i]) && (t.scaler.scale > 0.0 || strncmp(want[i], "amp/", 4))) {
            fprintf(stderr, "  %s: no item %s\n", label, want[i]);
            CHECK(0);
        }
    /* snapshot of every item's bytes */
    size_t total = 0;
    for (int i = 0; i < s->n; i++)
        total += s->items[i].ptr ? item_bytes(&s->items[i]) : 0;
    unsigned char *snap = dt_xmalloc(total + 1, 1), *p = snap;
    for (int i = 0; i < s->n; i++)
        if (s->items[i].ptr) {
            memcpy(p, s->items[i].ptr, item_bytes(&s->items[i]));
            p += item_bytes(&s->items[i]);
        }
    char path[512];
    snprintf(path, sizeof path, "%s/trainer-%s.h5", dir, label);
    CHECK(save(s, path, -1) == 0);
    fill(s, 1000);
    t.io.nhist = 0;
    CHECK(load(s, path) == 0);
    CHECK(t.io.nhist == cfg.epochs);
    int same = 1;
    p = snap;
    for (int i = 0; i < s->n; i++) {
        if (!s->items[i].ptr)
            continue;
        /* per-rank items are derived on resume: staged and checked, not restored */
        const void *now = s->items[i].scope == DT_STATE_PER_RANK
                              ? dt_state_staged(s, s->items[i].name, NULL)
                              : s->items[i].ptr;
        if (!now || memcmp(p, now, item_bytes(&s->items[i])) != 0) {
            fprintf(stderr, "  %s: %s differs after the round trip\n", label, s->items[i].name);
            same = 0;
        }
        p += item_bytes(&s->items[i]);
    }
    CHECK(same);
    CHECK(s->n >= 20);
    /* a checkpoint lacking any one item: one message naming the file and that item */
    int loud = 1;
    for (int i = 0; i < s->n; i++) {
        char miss[600], want_msg[200];
        snprintf(miss, sizeof miss, "%s/lacks-%s-%d.h5", dir, label, i);
        if (save(s, miss, i) != 0) {
            loud = 0;
            continue;
        }
        snprintf(want_msg, sizeof want_msg, "no item '%s'", s->items[i].name);
        if (load(s, miss) == 0 || !has(dt_err_msg(), miss, want_msg))
            loud = 0;
        unlink(miss);
    }
    CHECK(loud);
    unlink(path);
    free(snap);
    dt_trainer_free(&t);
    dt_net_free(net);
    dt_dataset_free(&ds);
}

int main(int argc, char **argv)
{
    dt_dist_init(&argc, &argv);
    snprintf(dir, sizeof dir, "%s/dtrain-test_state.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    DT_ASSERT(mkdtemp(dir));
    test_table();
    const char *sgd[] = {"optim.momentum", "0.9", "swa.mode", "swa", "train.loss_scale", "1024"};
    const char *adam[] = {"optim.name", "adamw", "swa.mode", "ema", "train.epochs", "4"};
    test_trainer("sgd", sgd, 6);
    test_trainer("adam", adam, 6);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    int rc = check_finish_mpi("test_state", MPI_COMM_WORLD);
    dt_dist_finalize();
    return rc;
}
