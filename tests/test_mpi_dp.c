/*
 * test_mpi_dp.c - data-parallel equivalence (ARCHITECTURE.md invariant 1): K steps at W ranks x
 * batch b give the same parameters as 1 rank x batch W*b over the same samples, for SGD with
 * momentum, Nesterov, dampening and weight decay, across an epoch boundary (new permutation).
 *
 * Run under mpirun at 1, 2 and 3 ranks. Every rank also computes the 1-rank reference itself on
 * MPI_COMM_SELF, so the comparison needs no communication; replicas must be bitwise identical.
 * The same with the gradient averaged in tiny buckets (train.bucket_mb: one bucket per layer,
 * each MPI_Iallreduce started during backward), and dt_grad_sync itself: buckets start as soon
 * as the finished tail holds a bucket, and the result is the mean over ranks.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"
#include "config.h"
#include "data.h"
#include "dist.h"
#include "net.h"
#include "rng.h"
#include "train.h"

enum { N_SAMPLES = 120, PER_RANK = 4, EPOCHS = 3 };

static const char *model = "tests/fixtures/dp_mlp.cfg";
static const char *bn_model = "tests/fixtures/dp_bn.cfg";

static void make_data(dt_dataset *ds)
{
    static uint8_t img[N_SAMPLES * 8 * 8], lbl[N_SAMPLES];
    dt_mt19937 g;
    dt_mt_seed(&g, 7);
    for (size_t i = 0; i < sizeof img; i++)
        img[i] = (uint8_t)(dt_mt_next(&g) & 0xff);
    for (int i = 0; i < N_SAMPLES; i++)
        lbl[i] = (uint8_t)(dt_mt_next(&g) % 10);
    float mean = 0.5f, std = 0.25f;
    dt_dataset_from_memory(ds, "synthetic", N_SAMPLES, 1, 8, 8, 10, img, lbl, &mean, &std);
}

/* Trains EPOCHS epochs with `batch` per rank on comm; leaves the parameters in net. */
static int64_t train(dt_net *net, const dt_dataset *ds, const dt_config *base, int batch,
                     MPI_Comm comm)
{
    dt_config cfg = *base;
    cfg.batch_size = batch;
    cfg.eval_batch_size = batch;
    dt_net_init(net, 0);
    dt_trainer t;
    int rc = dt_trainer_init(&t, &cfg, net, ds, ds, comm, NULL);
    DT_ASSERT(rc == 0);
    int64_t steps = 0;
    for (int e = 0; e < EPOCHS; e++) {
        const int64_t *shard = dt_sampler_epoch(&t.sampler, e);
        t.epoch = e;
        for (int64_t b = 0; b < t.steps_per_epoch; b++) {
            int64_t c = dt_sched_clock(&t.sched, steps, e);
            dt_ctrl ctrl = {.lr = dt_sched_lr(&t.sched, c),
                            .momentum = dt_sched_momentum(&t.sched, c)};
            int correct;
            dt_trainer_step(&t, shard + b * batch, batch, &ctrl, &correct);
            steps++;
        }
    }
    dt_trainer_free(&t);
    return steps;
}

static void run_case(const char *label, const char *const *sets, int nsets, int rank, int world,
                     const dt_dataset *ds, const char *model_file)
{
    const char *saved = model;
    if (model_file)
        model = model_file;
    dt_config cfg;
    dt_config_defaults(&cfg);
    for (int i = 0; i < nsets; i += 2)
        DT_ASSERT(dt_config_set(&cfg, sets[i], sets[i + 1], "test") == 0);
    DT_ASSERT(dt_config_resolve(&cfg) == 0);
    dt_net *ref = NULL, *dp = NULL;
    DT_ASSERT(dt_net_build(&ref, model, PER_RANK * world) == 0);
    DT_ASSERT(dt_net_build(&dp, model, PER_RANK * world) == 0);
    int64_t s_ref = train(ref, ds, &cfg, PER_RANK * world, MPI_COMM_SELF);
    int64_t s_dp = train(dp, ds, &cfg, PER_RANK, MPI_COMM_WORLD);
    CHECK(s_ref == s_dp);
    CHECK(s_dp == (int64_t)EPOCHS * N_SAMPLES / (PER_RANK * world));
    if (!CHECK_TENSOR_CLOSE(dp->param, ref->param, dp->numel, 1e-5, 1e-7) && rank == 0)
        fprintf(stderr, "  case %s at %d ranks\n", label, world);
    /* the parameters moved: the comparison is not between two untouched inits */
    dt_net *init = NULL;
    DT_ASSERT(dt_net_build(&init, model, 1) == 0);
    dt_net_init(init, 0);
    double moved = 0.0;
    for (size_t i = 0; i < dp->numel; i++)
        moved += fabs((double)dp->param[i] - (double)init->param[i]);
    CHECK(moved > 1e-2);
    /* replicas stay bitwise identical */
    CHECK(dt_dist_same(dt_dist_fingerprint(dp->param, dp->numel), MPI_COMM_WORLD));
    /* BatchNorm buffers (running statistics) follow the same global batches */
    if (dp->state_numel)
        CHECK_TENSOR_CLOSE(dp->state, ref->state, dp->state_numel, 1e-5, 1e-6);
    dt_net_free(init);
    dt_net_free(ref);
    dt_net_free(dp);
    model = saved;
}

/* dt_grad_sync on a made-up gradient: rank r holds g[i] = r + i / 8 (exact in float) */
static void test_grad_sync(int rank, int world)
{
    enum { N = 1000 };
    float g[N];
    for (int i = 0; i < N; i++)
        g[i] = (float)rank + (float)i / 8.0f;
    dt_grad_sync s;
    dt_grad_sync_init(&s, g, N, 300, MPI_COMM_WORLD);
    for (int step = 0; step < 2; step++) { /* twice: the state resets between steps */
        dt_grad_sync_begin(&s);
        dt_grad_sync_ready(&s, 900); /* 100 floats: below a bucket */
        CHECK(s.started == N && s.nreq == 0);
        dt_grad_sync_ready(&s, 650); /* 350: one bucket starts (unless one rank) */
        CHECK(world == 1 ? s.nreq == 0 : (s.started == 650 && s.nreq == 1));
        dt_grad_sync_ready(&s, 600);
        dt_grad_sync_ready(&s, 200); /* 450 more: the second bucket */
        CHECK(world == 1 ? s.nreq == 0 : (s.started == 200 && s.nreq == 2));
        dt_grad_sync_finish(&s);
        CHECK(s.nreq == 0 && s.started == N);
        /* mean over ranks of r + i/8 = (W - 1) / 2 + i / 8: sums of small integers and
         * eighths are exact, so the bucketed mean is exact whatever the reduction order */
        int bad = 0;
        for (int i = 0; i < N; i++)
            bad += g[i] != (float)(world - 1) / 2.0f + (float)i / 8.0f;
        CHECK(bad == 0);
        for (int i = 0; i < N; i++)
            g[i] = (float)rank + (float)i / 8.0f;
    }
    dt_grad_sync_free(&s);
    /* cap 0: no buckets, one allreduce at the end */
    dt_grad_sync_init(&s, g, N, 0, MPI_COMM_WORLD);
    dt_grad_sync_begin(&s);
    dt_grad_sync_ready(&s, 0);
    CHECK(s.nreq == 0);
    dt_grad_sync_finish(&s);
    CHECK(g[8] == (float)(world - 1) / 2.0f + 1.0f);
    dt_grad_sync_free(&s);
}

int main(int argc, char **argv)
{
    int world = dt_dist_init(&argc, &argv), rank = dt_rank;
    if (argc > 1)
        model = argv[1];
    dt_dataset ds;
    make_data(&ds);
    const char *plain[] = {"optim.momentum", "0", "sched.kind", "constant", "optim.lr", "0.05"};
    const char *momentum[] = {"optim.momentum",     "0.9",  "optim.dampening", "0.1",
                              "optim.weight_decay", "1e-3", "optim.lr",        "0.02"};
    const char *nesterov[] = {"optim.momentum", "0.8",      "optim.nesterov", "true", "sched.kind",
                              "cosine",         "optim.lr", "0.03",           "seed", "5"};
    const char *syncbn[] = {"train.sync_bn", "true", "optim.lr", "0.05"};
    run_case("plain", plain, 6, rank, world, &ds, NULL);
    run_case("momentum", momentum, 8, rank, world, &ds, NULL);
    run_case("nesterov", nesterov, 10, rank, world, &ds, NULL);
    /* SyncBatchNorm: W ranks x b == 1 rank x W*b, running statistics included */
    run_case("sync_bn", syncbn, 4, rank, world, &ds, bn_model);
    /* gradients averaged in buckets of 104 bytes: one MPI_Iallreduce per layer, during backward */
    const char *buckets[] = {"train.bucket_mb", "0.0001", "optim.momentum", "0.9",
                             "optim.lr",        "0.02"};
    run_case("buckets", buckets, 6, rank, world, &ds, NULL);
    const char *bn_buckets[] = {"train.bucket_mb", "0.0001", "train.sync_bn", "true",
                                "optim.lr",        "0.05"};
    run_case("buckets + sync_bn", bn_buckets, 6, rank, world, &ds, bn_model);
    test_grad_sync(rank, world);
    dt_dataset_free(&ds);
    char name[64];
    snprintf(name, sizeof name, "test_mpi_dp (%d rank%s)", world, world > 1 ? "s" : "");
    int status = check_finish_mpi(name, MPI_COMM_WORLD);
    dt_dist_finalize();
    return status;
}
