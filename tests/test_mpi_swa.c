/*
 * test_mpi_swa.c - the parts of SWA that need ranks (run under mpirun at 1, 2 and 3 ranks; also
 * fine as a singleton):
 *   - the BatchNorm refresh (torch.optim.swa_utils.update_bn, as swa_evaluate in train.c runs it):
 *     dt_net_bn_refresh: training-mode forwards over every rank's shard in batches of t->batch,
 *     with the trainer's step context (its MPI reduction). The running_mean / running_var must
 *     be the mean and the unbiased variance of the BN layer's input over the WHOLE training set,
 *     computed here independently in double (fc1 forwarded by hand); the pass itself must leave the
 *     running statistics and num_batches_tracked alone; W ranks must equal 1 rank (each rank also
 *     refreshes a copy on MPI_COMM_SELF).
 *   - dt_trainer_run with swa.mode = swa (interval step) and ema: the run's parameters equal those
 *     of a hand-written copy of its loop (dt_trainer_step with dt_swa_lr / dt_sched_lr) bitwise;
 *     the average equals the mean (the EMA) of that copy's snapshots after the steps torchcontrib
 *     would average; swa_n in the final line is torchcontrib's count; swa_test_acc is the test
 *     accuracy of the averaged weights after a BN refresh; afterwards the net holds its own
 *     weights and (rank 0's) BN buffers again, the same on every rank (evaluation uses rank 0's
 *     buffers, as DDP's broadcast_buffers does and as a checkpoint stores them).
 * The model (input 1x8x8, flatten, linear 16, batchnorm, relu, linear 10) is written to a
 * temporary folder; the data are synthetic (dt_dataset_from_memory), N divisible by the rank
 * counts so no shard is padded.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common.h"
#include "config.h"
#include "data.h"
#include "dist.h"
#include "net.h"
#include "rng.h"
#include "swa.h"
#include "train.h"

enum { N_TRAIN = 120, N_TEST = 48, BATCH = 8, HID = 16, IN = 64, MAX_SNAP = 64 };

static const char model_text[] = "# test_mpi_swa: linear + BatchNorm1d over features\n"
                                 "[net]\ninput = 1x8x8\nclasses = 10\n\n"
                                 "[flatten]\n\n"
                                 "[linear]\nname = fc1\nout = 16\n\n"
                                 "[batchnorm]\nname = bn\n\n"
                                 "[relu]\n\n"
                                 "[linear]\nname = fc2\nout = 10\n";

static char model_path[128], model_dir[64];

static void write_model(void)
{
    snprintf(model_dir, sizeof model_dir, "/tmp/dtrain-swa-mpi.XXXXXX");
    DT_ASSERT(mkdtemp(model_dir) != NULL);
    snprintf(model_path, sizeof model_path, "%s/bnnet.cfg", model_dir);
    FILE *f = fopen(model_path, "w");
    DT_ASSERT(f);
    fputs(model_text, f);
    DT_ASSERT(fclose(f) == 0);
}

static uint8_t train_img[N_TRAIN * IN], train_lbl[N_TRAIN], test_img[N_TEST * IN], test_lbl[N_TEST];

static void make_data(dt_dataset *train, dt_dataset *test)
{
    dt_mt19937 g;
    dt_mt_seed(&g, 11);
    /* pixels with a per-feature bias, so the BN statistics differ per channel */
    for (int i = 0; i < N_TRAIN; i++)
        for (int k = 0; k < IN; k++)
            train_img[i * IN + k] = (uint8_t)((dt_mt_next(&g) % 160) + (uint32_t)k);
    for (int i = 0; i < N_TRAIN; i++)
        train_lbl[i] = (uint8_t)(dt_mt_next(&g) % 10);
    for (int i = 0; i < N_TEST; i++)
        for (int k = 0; k < IN; k++)
            test_img[i * IN + k] = (uint8_t)((dt_mt_next(&g) % 160) + (uint32_t)k);
    for (int i = 0; i < N_TEST; i++)
        test_lbl[i] = (uint8_t)(dt_mt_next(&g) % 10);
    float mean = 0.5f, std = 0.25f;
    dt_dataset_from_memory(train, "synthetic", N_TRAIN, 1, 8, 8, 10, train_img, train_lbl, &mean,
                           &std);
    dt_dataset_from_memory(test, "synthetic-test", N_TEST, 1, 8, 8, 10, test_img, test_lbl, &mean,
                           &std);
}

static void make_config(dt_config *cfg, const char *const *sets, int nsets)
{
    dt_config_defaults(cfg);
    const char *base[] = {
        "train.batch_size", "8",    "train.eval_batch_size", "8", "train.progress", "never",
        "optim.lr",         "0.05", "train.epochs",          "3"};
    for (int i = 0; i < 10; i += 2)
        DT_ASSERT(dt_config_set(cfg, base[i], base[i + 1], "test") == 0);
    for (int i = 0; i < nsets; i += 2)
        DT_ASSERT(dt_config_set(cfg, sets[i], sets[i + 1], "test") == 0);
    DT_ASSERT(dt_config_resolve(cfg) == 0);
}

static dt_layer *find_layer(dt_net *net, const char *kind)
{
    for (int i = 0; i < net->nlayers; i++)
        if (strcmp(net->layers[i].ops->kind, kind) == 0)
            return &net->layers[i];
    return NULL;
}

/* swa_evaluate's refresh pass (dt_net_bn_refresh), on the trainer's own sharding; with rm set,
 * the last feed call (every forward done, the running statistics not yet set) records whether
 * the pass left the running statistics and the batch count alone */
typedef struct {
    dt_trainer *t;
    const int64_t *shard;
    const float *rm, *rv, *nbt;
    float nbt0;
    int untouched;
} refresh_feed;

static int feed_shard(void *ud, int64_t b, const float **x)
{
    refresh_feed *f = ud;
    dt_trainer *t = f->t;
    const int64_t lo = b * t->batch, len = t->sampler.shard_len;
    if (lo >= len) {
        if (f->rm) {
            f->untouched = *f->nbt == f->nbt0;
            for (int c = 0; c < HID; c++)
                f->untouched &= f->rm[c] == 100.0f + (float)c && f->rv[c] == 0.001f;
        }
        return 0;
    }
    int n = (int)(len - lo < t->batch ? len - lo : t->batch);
    dt_dataset_gather(t->train, f->shard + lo, n, t->x, t->y);
    *x = t->x;
    return n;
}

static int refresh(dt_trainer *t, refresh_feed *f)
{
    f->t = t;
    f->shard = dt_sampler_epoch(&t->sampler, t->epoch);
    return dt_net_bn_refresh(t->net, feed_shard, f, &t->step_ctx);
}

/* ---- 1. the BatchNorm refresh ---- */

static void test_refresh(const dt_dataset *train, const dt_dataset *test, int rank, int world)
{
    dt_config cfg;
    make_config(&cfg, NULL, 0);
    dt_net *net = NULL, *self = NULL;
    DT_ASSERT(dt_net_build(&net, model_path, BATCH) == 0);
    DT_ASSERT(dt_net_build(&self, model_path, BATCH) == 0);
    dt_trainer t, ts;
    DT_ASSERT(dt_trainer_init(&t, &cfg, net, train, test, MPI_COMM_WORLD, NULL) == 0);
    DT_ASSERT(dt_trainer_init(&ts, &cfg, self, train, test, MPI_COMM_SELF, NULL) == 0);
    CHECK(t.sampler.num_samples * world == N_TRAIN); /* no padding: each sample exactly once */
    /* a few training steps first, so the weights are not the initialization's */
    dt_net_init(net, 4);
    const int64_t *shard = dt_sampler_epoch(&t.sampler, 0);
    for (int s = 0; s < 3; s++) {
        dt_ctrl ctrl = {.lr = 0.05, .momentum = 0.9};
        int correct;
        dt_trainer_step(&t, shard + s * BATCH, BATCH, &ctrl, &correct);
    }
    memcpy(self->param, net->param, net->numel * sizeof *net->param);
    dt_layer *bn = find_layer(net, "batchnorm"), *fc1 = find_layer(net, "linear");
    dt_layer *bn_s = find_layer(self, "batchnorm");
    DT_ASSERT(bn && fc1 && bn_s && bn->in_c == HID);
    float *rm = dt_layer_buffer(net, bn, 0), *rv = dt_layer_buffer(net, bn, 1);
    float *nbt = dt_layer_buffer(net, bn, 2);
    /* garbage in the running statistics: the refresh must replace them */
    for (int c = 0; c < HID; c++) {
        rm[c] = 100.0f + (float)c;
        rv[c] = 0.001f;
    }
    float nbt0 = *nbt;
    CHECK(nbt0 == 3.0f); /* the three training steps counted, torch-style */
    memcpy(self->state, net->state, net->state_numel * sizeof *net->state);

    t.epoch = 1; /* another epoch's permutation than the steps above used */
    ts.epoch = 1;
    refresh_feed check = {.rm = rm, .rv = rv, .nbt = nbt, .nbt0 = nbt0, .untouched = -1};
    CHECK(refresh(&t, &check) == 1);
    /* the pass itself: running statistics and the batch count untouched */
    CHECK(check.untouched == 1);
    refresh_feed plain = {0};
    CHECK(refresh(&ts, &plain) == 1);

    /* the reference: fc1's output over the whole training set, in double */
    const float *W = dt_layer_param(net, fc1, 0), *b = dt_layer_param(net, fc1, 1);
    double *a = dt_xmalloc((size_t)N_TRAIN * HID, sizeof *a);
    float x[IN];
    int y;
    for (int64_t i = 0; i < N_TRAIN; i++) {
        dt_dataset_gather(train, &i, 1, x, &y);
        for (int j = 0; j < HID; j++) {
            double s = b[j];
            for (int k = 0; k < IN; k++)
                s += (double)W[j * IN + k] * x[k];
            a[i * HID + j] = s;
        }
    }
    float want_m[HID], want_v[HID];
    double spread_m = 0.0;
    for (int j = 0; j < HID; j++) {
        double m = 0.0, v = 0.0;
        for (int i = 0; i < N_TRAIN; i++)
            m += a[i * HID + j];
        m /= N_TRAIN;
        for (int i = 0; i < N_TRAIN; i++)
            v += (a[i * HID + j] - m) * (a[i * HID + j] - m);
        v /= N_TRAIN - 1; /* unbiased, as torch's running_var */
        want_m[j] = (float)m;
        want_v[j] = (float)v;
        spread_m += fabs(m);
    }
    free(a);
    if (!CHECK_TENSOR_CLOSE(rm, want_m, HID, 1e-5, 1e-6) && rank == 0)
        fprintf(stderr, "  running_mean after refresh at %d ranks\n", world);
    if (!CHECK_TENSOR_CLOSE(rv, want_v, HID, 1e-5, 1e-7) && rank == 0)
        fprintf(stderr, "  running_var after refresh at %d ranks\n", world);
    CHECK(spread_m > 1e-2); /* the statistics are not trivially zero / one */
    int nontrivial = 1;
    for (int c = 0; c < HID; c++)
        nontrivial &= fabs(rv[c] - 1.0f) > 1e-3f;
    CHECK(nontrivial);
    /* W ranks == 1 rank */
    const float *rm_s = dt_layer_buffer(self, bn_s, 0), *rv_s = dt_layer_buffer(self, bn_s, 1);
    CHECK_TENSOR_CLOSE(rm, rm_s, HID, 1e-6, 1e-7);
    CHECK_TENSOR_CLOSE(rv, rv_s, HID, 1e-6, 1e-7);
    /* every rank holds the same statistics */
    CHECK(dt_dist_same(dt_dist_fingerprint(net->state, net->state_numel), MPI_COMM_WORLD));
    /* a refresh of an unchanged net gives the same statistics again */
    float keep[2 * HID];
    memcpy(keep, rm, HID * sizeof *rm);
    memcpy(keep + HID, rv, HID * sizeof *rv);
    CHECK(refresh(&t, &plain) == 1);
    CHECK(memcmp(keep, rm, HID * sizeof *rm) == 0 && memcmp(keep + HID, rv, HID * sizeof *rv) == 0);
    dt_trainer_free(&t);
    dt_trainer_free(&ts);
    dt_net_free(net);
    dt_net_free(self);
}

/* ---- 2. dt_trainer_run with SWA / EMA against a hand-written copy of its loop ---- */

typedef struct {
    float *snap[MAX_SNAP]; /* parameters after each due step */
    int64_t at[MAX_SNAP];  /* the step numbers */
    int n;
} snapshots;

/* dt_trainer_run's loop without evaluation, checkpoints or logs; snapshots at the due steps */
static void manual_run(dt_trainer *t, snapshots *s)
{
    dt_net *net = t->net;
    const dt_config *cfg = t->cfg;
    s->n = 0;
    for (int64_t e = 0; e < cfg->epochs; e++) {
        t->epoch = e;
        const int64_t *shard = dt_sampler_epoch(&t->sampler, e);
        int64_t len = t->sampler.shard_len;
        for (int64_t lo = 0; lo < len; lo += t->batch) {
            int n = (int)(len - lo < t->batch ? len - lo : t->batch);
            int64_t clock = dt_sched_clock(&t->sched, t->step, e);
            dt_ctrl ctrl = {0};
            ctrl.lr = dt_swa_lr(&t->swa, t->step, dt_sched_lr(&t->sched, clock));
            ctrl.momentum = dt_sched_momentum(&t->sched, clock);
            int correct;
            dt_trainer_step(t, shard + lo, n, &ctrl, &correct);
            t->step++;
            if (dt_swa_due(&t->swa, t->step)) {
                DT_ASSERT(s->n < MAX_SNAP);
                s->snap[s->n] = dt_xmalloc(net->numel, sizeof(float));
                memcpy(s->snap[s->n], net->param, net->numel * sizeof(float));
                s->at[s->n++] = t->step;
            }
        }
    }
}

/* torchcontrib's count over `total` steps: c in 1..total with c > start and c % freq == 0 */
static int64_t torchcontrib_count(int64_t start, int64_t freq, int64_t total)
{
    int64_t n = 0;
    for (int64_t c = 1; c <= total; c++)
        n += c > start && c % freq == 0;
    return n;
}

static void run_case(const char *label, const char *const *sets, int nsets, int ema,
                     const dt_dataset *train, const dt_dataset *test, int rank, int world)
{
    dt_config cfg;
    make_config(&cfg, sets, nsets);
    dt_net *net = NULL, *ref = NULL;
    DT_ASSERT(dt_net_build(&net, model_path, BATCH) == 0);
    DT_ASSERT(dt_net_build(&ref, model_path, BATCH) == 0);
    dt_net_init(net, 0);
    dt_net_init(ref, 0);
    char *buf = NULL;
    size_t buflen = 0;
    FILE *out = rank == 0 ? open_memstream(&buf, &buflen) : NULL;
    dt_trainer t, tr;
    DT_ASSERT(dt_trainer_init(&t, &cfg, net, train, test, MPI_COMM_WORLD, out) == 0);
    DT_ASSERT(dt_trainer_init(&tr, &cfg, ref, train, test, MPI_COMM_WORLD, NULL) == 0);
    CHECK(dt_trainer_run(&t) == 0);
    snapshots s;
    manual_run(&tr, &s);
    CHECK(t.step == tr.step);
    /* the run's own weights and BN buffers are back after swa_evaluate, equal to the copy's */
    int same = memcmp(net->param, ref->param, net->numel * sizeof *net->param) == 0;
    CHECK(same);
    if (!same)
        fprintf(stderr, "  %s: params differ from the hand-written loop at %d ranks\n", label,
                world);
    /* rank 0's BN buffers (what checkpoints store) are restored after swa_evaluate; every rank
     * evaluated with, and so holds, rank 0's buffers (DDP's broadcast_buffers) */
    if (rank == 0)
        CHECK(memcmp(net->state, ref->state, net->state_numel * sizeof *net->state) == 0);
    CHECK(dt_dist_same(dt_dist_fingerprint(net->state, net->state_numel), MPI_COMM_WORLD));
    int64_t want_n = torchcontrib_count(cfg.swa_start, cfg.swa_freq, t.step);
    CHECK(t.swa.n == want_n);
    CHECK(s.n == want_n);
    CHECK(want_n >= 3);
    /* the average (rank 0's buffer) against the snapshots, in double */
    if (rank == 0) {
        CHECK(t.swa.avg != NULL);
        float *want = dt_xmalloc(net->numel, sizeof *want);
        for (size_t i = 0; i < net->numel; i++) {
            double acc = 0.0;
            for (int k = 0; k < s.n; k++)
                acc = ema ? (k == 0 ? s.snap[k][i]
                                    : cfg.swa_decay * acc + (1.0 - cfg.swa_decay) * s.snap[k][i])
                          : acc + s.snap[k][i];
            want[i] = (float)(ema ? acc : acc / s.n);
        }
        if (!CHECK_TENSOR_CLOSE(t.swa.avg, want, net->numel, 1e-5, 1e-6))
            fprintf(stderr, "  %s: the average vs the snapshots at %d ranks\n", label, world);
        free(want);
    } else {
        CHECK(t.swa.avg == NULL);
    }
    /* swa_test_acc: the averaged weights, BN refreshed, on the test set (via the copy) */
    float *avg = dt_xmalloc(net->numel, sizeof *avg);
    if (rank == 0)
        memcpy(avg, t.swa.avg, net->numel * sizeof *avg);
    dt_dist_bcast(avg, net->numel, MPI_COMM_WORLD);
    memcpy(ref->param, avg, net->numel * sizeof *avg);
    refresh_feed plain = {0};
    CHECK(refresh(&tr, &plain) == 1);
    dt_eval ev = dt_trainer_evaluate(&tr, test);
    free(avg);
    if (rank == 0) {
        fclose(out);
        const char *fin = strstr(buf, "final: ");
        double acc = NAN;
        long long n = -1;
        const char *pa = fin ? strstr(fin, " swa_test_acc=") : NULL;
        const char *pn = fin ? strstr(fin, " swa_n=") : NULL;
        CHECK(pa && sscanf(pa, " swa_test_acc=%lf", &acc) == 1);
        CHECK(pn && sscanf(pn, " swa_n=%lld", &n) == 1);
        CHECK(n == want_n);
        CHECK_CLOSE(acc, 100.0 * ev.acc, 0.0, 0.0051);
        if (!fin || !pa || !pn)
            fprintf(stderr, "  %s: output was:\n%s\n", label, buf);
        free(buf);
    }
    for (int k = 0; k < s.n; k++)
        free(s.snap[k]);
    dt_trainer_free(&t);
    dt_trainer_free(&tr);
    dt_net_free(net);
    dt_net_free(ref);
}

int main(int argc, char **argv)
{
    int world = dt_dist_init(&argc, &argv), rank = dt_rank;
    write_model();
    dt_dataset train, test;
    make_data(&train, &test);
    test_refresh(&train, &test, rank, world);
    const char *swa_step[] = {"swa.mode", "swa", "swa.interval", "step", "swa.start",  "5",
                              "swa.freq", "3",   "swa.lr",       "0.02", "sched.kind", "cosine"};
    const char *swa_anneal[] = {
        "swa.mode", "swa",  "swa.interval", "step", "swa.start",           "4",     "swa.freq", "2",
        "swa.lr",   "0.01", "swa.anneal",   "5",    "swa.anneal_strategy", "linear"};
    const char *ema[] = {"swa.mode", "ema",           "swa.interval", "step",       "swa.start",
                         "2",        "swa.ema_decay", "0.8",          "sched.kind", "constant"};
    run_case("swa step", swa_step, 12, 0, &train, &test, rank, world);
    run_case("swa anneal", swa_anneal, 14, 0, &train, &test, rank, world);
    run_case("ema", ema, 10, 1, &train, &test, rank, world);
    dt_dataset_free(&train);
    dt_dataset_free(&test);
    remove(model_path);
    rmdir(model_dir);
    char name[64];
    snprintf(name, sizeof name, "test_mpi_swa (%d rank%s)", world, world > 1 ? "s" : "");
    int status = check_finish_mpi(name, MPI_COMM_WORLD);
    dt_dist_finalize();
    return status;
}
