/*
 * train.c - see train.h.
 */
#include "train.h"
#include "train_ckpt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "ckpt_dir.h"
#include "common.h"
#include "dist.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "kernels/optim_k.h"
#include "kernels/poll.h"
#include "kernels/tpool.h"
#include "mixup.h"
#include "timeline.h"
#include "xxh64.h"

/* compute_s, exposed_comm_s, exposed_comm_pct: where the step's time goes (docs/timeline.md) */
enum { COMM_COLS = 3, STEP_COLS = 10, EPOCH_ROW = DT_EPOCH_COLS + COMM_COLS };
static const char *const step_cols[STEP_COLS] = {
    "step",           "epoch",           "loss",          "lr",
    "momentum",       "grad_norm",       "samples_per_s", "compute_s",
    "exposed_comm_s", "exposed_comm_pct"};
static const char *const epoch_cols[EPOCH_ROW] = {
    "epoch",         "step",      "train_loss",     "train_acc",       "test_loss",    "test_acc",
    "test_top5",     "lr",        "samples_per_s",  "time_s",          "swa_test_acc", "train_top5",
    "swa_test_top5", "compute_s", "exposed_comm_s", "exposed_comm_pct"};

/* the net's reduction (SyncBatchNorm, BN refresh): a sum over the trainer's communicator, in
 * rank order (dt_dist_sum: watched, the same bits on every rank) */
static void allreduce_sum(void *comm, double *x, int n)
{
    dt_dist_sum(x, n, DT_PHASE_BATCHNORM, *(MPI_Comm *)comm);
}

/* The model fits the data and the batch; the sampler of this rank's shard. Collective. */
static int check_inputs(dt_trainer *t)
{
    const dt_config *cfg = t->cfg;
    const dt_net *net = t->net;
    const dt_dataset *train = t->train;
    int rc = DT_OK;
    if (net->in_c != train->c || net->in_h != train->h || net->in_w != train->w)
        rc = dt_err("model %s expects input %dx%dx%d but dataset %s has %dx%dx%d samples",
                    net->model, net->in_c, net->in_h, net->in_w, train->name, train->c, train->h,
                    train->w);
    else if (net->classes != train->classes)
        rc = dt_err("model %s has %d classes but dataset %s has %d", net->model, net->classes,
                    train->name, train->classes);
    else if (cfg->batch_size > net->max_batch || cfg->eval_batch_size > net->max_batch)
        rc = dt_err("internal: net built for batch %d < %d", net->max_batch, cfg->batch_size);
    else
        rc = dt_sampler_init(&t->sampler, train->n, t->world, t->rank, (uint64_t)cfg->seed,
                             cfg->shuffle, cfg->drop_last);
    return dt_dist_agree(rc, t->comm);
}

/* The modules that hold resumable state (optimizer, SWA, loss scaler, history). Collective. */
static int init_state_modules(dt_trainer *t)
{
    return dt_dist_agree(dt_train_init_state_modules(t), t->comm);
}

/* The step's buffers, sized for the net's largest batch; zeroed (written) now, so that the
 * first step does not pay their page faults (tens of microseconds each on the project's VM). */
static void alloc_buffers(dt_trainer *t)
{
    const dt_net *net = t->net;
    size_t in_size = (size_t)net->in_c * (size_t)net->in_h * (size_t)net->in_w;
    size_t K = (size_t)net->classes;
    t->x = dt_xcalloc((size_t)net->max_batch * in_size, sizeof *t->x);
    t->y = dt_xcalloc((size_t)net->max_batch, sizeof *t->y);
    t->probs = dt_xcalloc((size_t)net->max_batch * K, sizeof *t->probs);
    t->targets = dt_xcalloc((size_t)net->max_batch * K, sizeof *t->targets);
    t->perm = dt_xcalloc((size_t)net->max_batch, sizeof *t->perm);
    if (t->cfg->mixup_alpha > 0.0)
        t->xtmp = dt_xcalloc((size_t)net->max_batch * in_size, sizeof *t->xtmp);
}

/* Augmentation, progress output, precision, gradient buckets, signal handlers and the watchdog.
 * Cannot fail. */
static void init_modules(dt_trainer *t)
{
    const dt_config *cfg = t->cfg;
    dt_net *net = t->net;
    t->aug.crop_pad = cfg->crop_pad;
    t->aug.flip = cfg->flip;
    t->aug.seed = (uint64_t)cfg->seed;
    dt_progress_init(&t->prog, t->out, cfg->progress, cfg->epochs);
    /* low precision (lowp.h) */
    dt_net_set_precision(net, cfg->precision);
    /* buckets of train.bucket_mb MiB, as DDP's bucket_cap_mb */
    dt_grad_sync_init(&t->sync, net->grad, net->numel,
                      (size_t)(cfg->bucket_mb * 1024.0 * 1024.0 / sizeof(float)), t->comm);
    dt_dist_catch_signals();
    dt_dist_watchdog_start(cfg->dist_timeout, t->comm);
    /* kernels call dt_poll() between blocks of work: on this (the main) thread, the open
     * buckets are tested then, so they progress during backward (Open MPI has no progress
     * thread); only with MPI_THREAD_FUNNELED, as the other threads compute meanwhile */
    if (t->world > 1 && dt_dist_funneled())
        dt_poll_set(dt_grad_sync_poll);
    /* train.grad_panels: a layer's weight gradient in panels of a bucket, each started when
     * computed (poll.h) */
    if (t->world > 1 && t->sync.cap > 0 && cfg->grad_panels)
        dt_grad_done_set(dt_grad_sync_done_at, t->sync.cap);
}

/* The schedule: its length follows the (possibly resumed) per-rank batch; a resumed schedule
 * keeps its checkpointed state. Collective. */
static int init_sched(dt_trainer *t, int resumed)
{
    const dt_config *cfg = t->cfg;
    t->steps_per_epoch = (t->sampler.num_samples + t->batch - 1) / t->batch;
    t->total_steps = (int64_t)cfg->epochs * t->steps_per_epoch;
    if (cfg->max_steps > 0 && cfg->max_steps < t->total_steps)
        t->total_steps = cfg->max_steps;
    dt_sched_state keep = t->sched.st;
    int rc = dt_sched_init(&t->sched, &cfg->sp, cfg->op.lr, dt_optim_momentum(&t->opt),
                           cfg->sp.per_epoch ? cfg->epochs : t->total_steps);
    if (rc == 0 && dt_sched_cycles_momentum(&t->sched) && !dt_optim_kind_has_momentum(cfg->op.kind))
        rc = dt_err("sched.cycle_momentum: optim.name = %s has no momentum to cycle (set "
                    "sched.cycle_momentum = false)",
                    dt_optim_kind_name(cfg->op.kind));
    if (resumed)
        t->sched.st = keep;
    return dt_dist_agree(rc, t->comm);
}

/* Rank 0 creates directory dir (ckpt.dir; "none": nothing to do). Collective. */
static int make_dir(const dt_trainer *t, const char *dir)
{
    int rc = DT_OK;
    if (t->rank == 0 && dt_train_has_dir(dir))
        rc = dt_mkdir_p(dir);
    return dt_dist_agree(rc, t->comm);
}

/* the most step rows the metrics log holds between flushes (log.flush_s bounds them by time;
 * this by memory: 4096 rows of 10 doubles) */
enum { METRICS_ROWS = 4096 };

/* Rank 0's metrics log, continuing the rows a resumed checkpoint had logged; a fresh run never
 * replaces another run's log (dt_metrics_check_fresh). The run's provenance goes into it. */
static int open_metrics_rank0(dt_trainer *t, int resumed)
{
    const dt_config *cfg = t->cfg;
    char *text = dt_config_text(cfg);
    int rc = dt_mkdir_p(cfg->log_dir);
    if (rc == 0 && !resumed)
        rc = dt_metrics_check_fresh(cfg->log_dir, text, strcmp(cfg->resume, "auto") == 0);
    if (rc == 0)
        rc = dt_metrics_open(&t->metrics, cfg->log_dir, step_cols, STEP_COLS, epoch_cols, EPOCH_ROW,
                             resumed ? t->log_rows[0] : 0, resumed ? t->log_rows[1] : 0,
                             METRICS_ROWS);
    if (rc == 0) /* rows reach the files within log.flush_s, one flush per that time at most */
        dt_metrics_set_flush_s(t->metrics, cfg->log_flush_s);
    if (rc == 0) {
        dt_metrics_prov p = {text,
                             (long long)cfg->seed,
                             t->world,
                             dt_tpool_threads(),
                             dt_kern_get()->name,
                             dt_commit,
                             DT_VERSION};
        rc = dt_metrics_provenance(t->metrics, &p);
    }
    free(text);
    return rc;
}

/* Rank 0's metrics log (open_metrics_rank0). Collective. */
static int open_metrics(dt_trainer *t, int resumed)
{
    int rc = DT_OK;
    if (t->rank == 0 && dt_train_has_dir(t->cfg->log_dir))
        rc = open_metrics_rank0(t, resumed);
    return dt_dist_agree(rc, t->comm);
}

/* log.timeline: rank 0's trace file, opened now (a bad path fails before training). Collective. */
static int open_timeline(dt_trainer *t)
{
    const dt_config *cfg = t->cfg;
    if (!dt_train_has_dir(cfg->log_timeline))
        return DT_OK;
    /* a step's spans: its phases, one per layer's backward, two per bucket (its allreduce, its
     * update) */
    const int per_step = 16 + t->net->nlayers + 2 * (t->sync.maxreq > 0 ? t->sync.maxreq : 1);
    int rc = dt_tl_open(cfg->log_timeline, cfg->log_timeline_steps, cfg->log_timeline_every,
                        t->total_steps, per_step, t->comm);
    return dt_dist_agree(rc, t->comm);
}

int dt_trainer_init(dt_trainer *t, const dt_config *cfg, dt_net *net, const dt_dataset *train,
                    const dt_dataset *test, MPI_Comm comm, FILE *out)
{
    memset(t, 0, sizeof *t);
    t->comm = comm;
    MPI_Comm_rank(comm, &t->rank);
    MPI_Comm_size(comm, &t->world);
    t->cfg = cfg;
    t->net = net;
    t->train = train;
    t->test = test;
    t->out = t->rank == 0 ? out : NULL;
    t->batch = cfg->batch_size;
    t->last_ckpt = -1;
    t->step_ctx = (dt_step_ctx){.sync_bn = cfg->sync_bn,
                                .seed = (uint64_t)cfg->seed,
                                .rank = t->rank,
                                .allreduce_sum = allreduce_sum,
                                .comm_ctx = &t->comm};
    if (check_inputs(t) != 0 || init_state_modules(t) != 0)
        return DT_ERR;
    alloc_buffers(t);
    init_modules(t);
    /* train.allreduce: MPI or shared memory (dist.h dt_grad_sync_path), named in the header */
    if (dt_dist_agree(dt_grad_sync_path(&t->sync, cfg->allreduce), t->comm) != 0)
        return DT_ERR;
    t->net->grad = t->sync.g; /* shm: the window's (backward writes there; dist.h) */
    if (t->out && t->world > 1)
        fprintf(t->out, "# allreduce: %s\n", t->sync.path);
    if (make_dir(t, cfg->ckpt_dir) != 0)
        return DT_ERR;
    dt_train_register_state(t);
    int resumed = 0;
    if (dt_train_resume(t, &resumed) != 0 || init_sched(t, resumed) != 0)
        return DT_ERR;
    if (open_metrics(t, resumed) != 0)
        return DT_ERR;
    return open_timeline(t);
}

void dt_trainer_free(dt_trainer *t)
{
    if (!t)
        return;
    if (t->metrics)
        dt_metrics_close(t->metrics);
    t->metrics = NULL;
    dt_optim_free(&t->opt);
    dt_swa_free(&t->swa);
    dt_sampler_free(&t->sampler);
    dt_poll_set(NULL);
    dt_grad_done_set(NULL, 0);
    dt_grad_sync_free(&t->sync);
    if (t->sync.g)
        t->net->grad = t->sync.g; /* the net's own buffer again */
    dt_state_free(&t->state);
    free(t->io.nbt);
    t->io.nbt = NULL;
    dt_dist_watchdog_stop();
    free(t->x);
    free(t->y);
    free(t->probs);
    free(t->targets);
    free(t->xtmp);
    free(t->perm);
    free(t->hist);
    t->x = t->probs = t->targets = t->xtmp = NULL;
    t->y = t->perm = NULL;
    t->hist = NULL;
}

static void grad_ready(void *ctx, size_t off) { dt_grad_sync_ready(ctx, off); }

/* The step's times (dt_now at: start, data gathered, forward and loss done, backward done,
 * gradients averaged, update done): t->step_time, and the step's spans on the timeline. */
static void step_times(dt_trainer *t, const double *m)
{
    const double exposed = t->sync.exposed_s;
    t->step_time[0] = m[5] - m[1] - exposed; /* forward + backward + optimizer */
    t->step_time[1] = exposed;
    t->step_time[2] = m[5] - m[0];
    if (!dt_tl_on)
        return;
    dt_tl_span("data", NULL, DT_TL_MAIN, m[0], m[1], -1);
    dt_tl_span("forward", NULL, DT_TL_MAIN, m[1], m[2], -1);
    dt_tl_span("backward", NULL, DT_TL_MAIN, m[2], m[3], -1);
    dt_tl_span("optimizer", NULL, DT_TL_MAIN, m[4], m[5], -1);
}

/* The update of one averaged bucket g[lo, hi) (dt_grad_sync.on_done), while later buckets are
 * still in flight; the optimizer's step was begun (dt_optim_step_begin). */
typedef struct {
    dt_trainer *t;
    double lr, momentum;
} bucket_update;

static void update_bucket(void *ctx, size_t lo, size_t hi)
{
    const bucket_update *u = ctx;
    dt_net *net = u->t->net;
    dt_optim_step_range(&u->t->opt, net->param, net->grad, lo, hi, u->lr, u->momentum);
}

/* After the averaged gradients: loss scaler, clipping, the optimizer step. */
static void update(dt_trainer *t, const dt_ctrl *ctrl)
{
    dt_net *net = t->net;
    /* the averaged gradients are equal on every rank, so every rank takes the same decision */
    if (t->scaler.scale > 0.0 && !dt_scaler_unscale_update(&t->scaler, net->grad, net->numel))
        return; /* inf/NaN gradients: no optimizer step (GradScaler.step), scale backed off */
    if (t->cfg->clip_grad_norm > 0.0)
        dt_optim_clip_grad_norm(net->grad, net->numel, t->cfg->clip_grad_norm);
    dt_optim_step(&t->opt, net->param, net->grad, ctrl->lr, ctrl->momentum);
}

/* The step's top-5 hits against the labels, weighted under mixup like its top-1 (lam for the
 * sample's own label, 1 - lam for its partner's). */
static double train_top5_hits(const dt_trainer *t, const float *logits, int n, double lam)
{
    const int K = t->net->classes;
    if (t->cfg->mixup_alpha <= 0.0)
        return dt_metrics_topk_hits(logits, t->y, n, K, 5);
    double wh = 0.0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * K;
        wh += lam * dt_metrics_topk_hits(z, &t->y[i], 1, K, 5) +
              (1.0 - lam) * dt_metrics_topk_hits(z, &t->y[t->perm[i]], 1, K, 5);
    }
    return wh;
}

double dt_trainer_step(dt_trainer *t, const int64_t *idx, int n, const dt_ctrl *ctrl, int *correct)
{
    dt_net *net = t->net;
    const dt_config *cfg = t->cfg;
    int K = net->classes;
    long D = (long)net->in_c * net->in_h * net->in_w;
    double m[6];
    m[0] = dt_now();
    t->step_ctx.step = t->step;
    dt_dataset_gather_aug(t->train, idx, n, t->x, t->y, &t->aug, t->epoch);
    const float *targets = NULL;
    double lam = 1.0;
    if (cfg->mixup_alpha > 0.0) {
        lam = dt_mixup_draw((uint64_t)cfg->seed, t->rank, t->step, cfg->mixup_alpha, t->perm, n);
        dt_mixup_apply(t->x, t->targets, t->y, t->perm, n, D, K, (float)lam,
                       (float)cfg->label_smoothing, t->xtmp);
        targets = t->targets;
    } else if (cfg->label_smoothing > 0.0) {
        dt_targets_smooth(t->targets, t->y, n, K, (float)cfg->label_smoothing);
        targets = t->targets;
    }
    m[1] = dt_now();
    const float *logits = dt_net_forward(net, t->x, n, 1, &t->step_ctx);
    double loss = dt_xent_forward(t->probs, logits, targets ? NULL : t->y, targets, n, K, correct);
    t->step_hits = *correct;
    t->step_hits5 = train_top5_hits(t, logits, n, lam);
    if (targets) {
        /* accuracy against the labels; under mixup weighted like its loss (the reference
         * implementation's lam * [pred == y_i] + (1 - lam) * [pred == y_j]) */
        int hits = 0;
        double wh = 0.0;
        for (int i = 0; i < n; i++) {
            const float *p = t->probs + (size_t)i * K;
            int arg = 0;
            for (int k = 1; k < K; k++)
                if (p[k] > p[arg])
                    arg = k;
            hits += arg == t->y[i];
            wh += cfg->mixup_alpha > 0.0
                      ? lam * (arg == t->y[i]) + (1.0 - lam) * (arg == t->y[t->perm[i]])
                      : (double)(arg == t->y[i]);
        }
        *correct = hits;
        t->step_hits = wh;
    }
    /* Each rank's loss is its batch mean; ranks hold equal batch sizes (DistributedSampler pads),
     * so the mean of the rank means is the global batch mean, as with DDP. */
    dt_xent_backward(dt_net_dlogits(net), t->probs, targets ? NULL : t->y, targets, n, K, (float)n);
    if (t->scaler.scale > 0.0) { /* GradScaler.scale(loss): the loss times S, in float32 */
        float *dl = dt_net_dlogits(net);
        const float S = (float)t->scaler.scale;
        for (size_t i = 0; i < (size_t)n * K; i++)
            dl[i] *= S;
    }
    /* gradients averaged in buckets, each started as soon as backward has finished it (and
     * progressed by the poll hook while backward computes) */
    m[2] = dt_now();
    dt_grad_sync_begin(&t->sync);
    t->step_ctx.grad_ready = grad_ready;
    t->step_ctx.grad_ready_ctx = &t->sync;
    dt_net_backward(net, n, &t->step_ctx);
    t->step_ctx.grad_ready = NULL;
    m[3] = dt_now();
    /* the update bucket by bucket as each allreduce completes, unless it needs every gradient
     * first (the loss scaler's overflow test, clipping's norm): elementwise, so the same bits */
    const int per_bucket = !(t->scaler.scale > 0.0) && !(cfg->clip_grad_norm > 0.0);
    bucket_update bu = {t, ctrl->lr, ctrl->momentum};
    if (per_bucket) {
        dt_optim_step_begin(&t->opt, ctrl->momentum);
        t->sync.on_done = update_bucket;
        t->sync.on_done_ctx = &bu;
    }
    dt_grad_sync_finish(&t->sync);
    t->sync.on_done = NULL;
    m[4] = dt_now();
    if (per_bucket)
        dt_optim_step_end(&t->opt);
    else
        update(t, ctrl);
    m[5] = dt_now();
    step_times(t, m);
    return loss;
}

/* The confusion counts of a batch: row y[i], column the first largest logit (the top-1
 * prediction, dt_xent_forward's argmax). */
static void count_confusion(int64_t *cm, const float *logits, const int *y, int n, int K)
{
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * K;
        int arg = 0;
        for (int k = 1; k < K; k++)
            if (z[k] > z[arg])
                arg = k;
        cm[(size_t)y[i] * K + arg]++;
    }
}

dt_eval dt_net_evaluate(dt_net *net, const dt_dataset *ds, int batch, float *x, int *y,
                        float *probs, MPI_Comm comm)
{
    return dt_net_evaluate_cm(net, ds, batch, x, y, probs, comm, NULL);
}

dt_eval dt_net_evaluate_cm(dt_net *net, const dt_dataset *ds, int batch, float *x, int *y,
                           float *probs, MPI_Comm comm, int64_t *confusion)
{
    int rank, world;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &world);
    /* DDP (broadcast_buffers=True): every rank evaluates with rank 0's BatchNorm buffers, the
     * ones a checkpoint stores */
    dt_dist_arrive(DT_PHASE_EPOCH, comm);
    dt_dist_bcast(net->state, net->state_numel, comm);
    int64_t *idx = dt_xmalloc((size_t)batch, sizeof *idx);
    const int K = net->classes;
    double sums[4] = {0, 0, 0, 0}; /* loss * n, correct, n, top-5 correct */
    if (confusion)
        memset(confusion, 0, (size_t)K * K * sizeof *confusion);
    /* rank r takes r, r + W, ...: every sample exactly once over all ranks, no padding */
    int64_t i = rank;
    while (i < ds->n) {
        int n = 0;
        for (; n < batch && i < ds->n; n++, i += world)
            idx[n] = i;
        dt_dataset_gather(ds, idx, n, x, y);
        const float *logits = dt_net_forward(net, x, n, 0, NULL);
        int correct = 0;
        double loss = dt_xent_forward(probs, logits, y, NULL, n, K, &correct);
        sums[0] += loss * n;
        sums[1] += correct;
        sums[2] += n;
        sums[3] += dt_metrics_topk_hits(logits, y, n, K, 5);
        if (confusion)
            count_confusion(confusion, logits, y, n, K);
        dt_progress_eval_tick(i, ds->n);
    }
    free(idx);
    dt_dist_sum(sums, 4, DT_PHASE_EPOCH, comm);
    if (confusion) /* integer counts: exact in any order */
        MPI_Allreduce(MPI_IN_PLACE, confusion, K * K, MPI_INT64_T, MPI_SUM, comm);
    dt_eval e = {sums[0] / sums[2], sums[1] / sums[2], sums[3] / sums[2], (int64_t)sums[2]};
    return e;
}

dt_eval dt_trainer_evaluate(dt_trainer *t, const dt_dataset *ds)
{
    dt_progress_eval_begin(&t->prog);
    dt_eval e = dt_net_evaluate(t->net, ds, t->cfg->eval_batch_size, t->x, t->y, t->probs, t->comm);
    dt_progress_eval_end();
    return e;
}

/* A BatchNorm refresh pass's batches: this rank's shard of the epoch in batches of t->batch. */
typedef struct {
    dt_trainer *t;
    const int64_t *shard;
} refresh_feed;

static int feed_shard(void *ud, int64_t b, const float **x)
{
    refresh_feed *f = ud;
    dt_trainer *t = f->t;
    const int64_t lo = b * t->batch, len = t->sampler.shard_len;
    if (lo >= len)
        return 0;
    int n = (int)(len - lo < t->batch ? len - lo : t->batch);
    dt_dataset_gather(t->train, f->shard + lo, n, t->x, t->y);
    *x = t->x;
    return n;
}

/* Evaluates the averaged weights: rank 0's average goes to every rank, BatchNorm statistics are
 * recomputed over the training data, the test set is evaluated, and the net gets its own weights
 * back. With save, rank 0 writes the averaged model (refreshed BN buffers included). */
static dt_eval swa_evaluate(dt_trainer *t, int save)
{
    dt_net *net = t->net;
    float *keep = dt_xmalloc(net->numel, sizeof *keep);
    float *keep_state = dt_xmalloc(net->state_numel, sizeof *keep_state);
    memcpy(keep, net->param, net->numel * sizeof *keep);
    memcpy(keep_state, net->state, net->state_numel * sizeof *keep_state);
    if (t->rank == 0)
        memcpy(net->param, t->swa.avg, net->numel * sizeof *net->param);
    dt_dist_bcast(net->param, net->numel, t->comm);
    /* torch.optim.swa_utils.update_bn: one pass over this rank's shard, training mode */
    refresh_feed f = {t, dt_sampler_epoch(&t->sampler, t->epoch)};
    dt_net_bn_refresh(net, feed_shard, &f, &t->step_ctx);
    dt_eval ev = dt_trainer_evaluate(t, t->test);
    if (save && t->rank == 0 &&
        (dt_train_has_dir(t->cfg->ckpt_dir) || dt_train_has_dir(t->cfg->log_dir))) {
        char path[4096];
        snprintf(path, sizeof path, "%s/swa-final.h5",
                 dt_train_has_dir(t->cfg->ckpt_dir) ? t->cfg->ckpt_dir : t->cfg->log_dir);
        dt_ck_writer *w = dt_ck_begin(path);
        dt_train_add_model(w, net, net->param);
        dt_train_add_i64(w, "swa/n", t->swa.n);
        dt_ck_attr(w, "model", net->model);
        dt_ck_attr(w, "data", t->cfg->data_name);
        dt_ck_attr(w, "optim", dt_optim_kind_name(t->cfg->op.kind));
        dt_ck_attr_versions(w);
        dt_train_attr_cwd(w);
        if (dt_ck_commit(w) == 0 && t->out)
            fprintf(t->out, "swa: averaged weights (%lld snapshots) saved to %s\n",
                    (long long)t->swa.n, path);
        else if (t->out)
            fprintf(t->out, "swa: %s\n", dt_err_msg());
    }
    memcpy(net->param, keep, net->numel * sizeof *keep);
    memcpy(net->state, keep_state, net->state_numel * sizeof *keep_state);
    free(keep);
    free(keep_state);
    return ev;
}

/* ---- the loop ---- */

dt_train_hook dt_train_between_steps = NULL;

/* What the steps of one dt_trainer_run share. */
typedef struct run_ctx {
    double t_start;         /* the run's start (wall_s of the final line) */
    int stopped;            /* the signal that stopped the run (-2: train.stop_at_step), or 0 */
    dt_eval swa_ev;         /* the last SWA evaluation (acc, top5 in [0, 1]; NaN: none) */
    dt_eval ev;             /* the last evaluation */
    double last_train_loss; /* the last finished epoch's mean training loss */
    int64_t *batch_idx;     /* (batch) the step's sample indices */
    dt_ctrl ctrl;           /* this step's control message from rank 0 */
    /* the current epoch */
    double e0;         /* its start */
    double last_draw;  /* when the progress bar was last drawn */
    double seen0;      /* samples of the epoch before this process took it up (a resume) */
    double ck_time;    /* seconds spent in its checkpoints */
    double epoch_time; /* its training seconds (checkpoints excluded) */
    double step0;      /* when the current step began (its control message) */
    /* compute, exposed communication, whole steps (s) of this rank: the epoch's, the run's; the
     * epoch's over all ranks (their mean), for its row */
    double ep_comm[3], run_comm[3], ep_comm_all[3];
} run_ctx;

/* exposed communication in percent of the step time */
static double exposed_pct(const double *c) { return c[2] > 0.0 ? 100.0 * c[1] / c[2] : 0.0; }

/* A param fingerprint for the summary line: equal runs print equal values. */
static unsigned long long params_crc(const dt_net *net)
{
    return (unsigned long long)dt_xxh64(net->param, net->numel * sizeof *net->param, 0);
}

/* Rank 0's decision for this step: lr and momentum of the schedule (SWA's lr once it runs),
 * a checkpoint at its interval, a simulated pre-emption. */
static void decide(dt_trainer *t, dt_ctrl *ctrl, int64_t epoch)
{
    const dt_config *cfg = t->cfg;
    int64_t clock = dt_sched_clock(&t->sched, t->step, epoch);
    double lr = dt_sched_lr(&t->sched, clock);
    ctrl->lr = dt_swa_lr(&t->swa, t->swa.per_epoch ? epoch : t->step, lr);
    ctrl->momentum = dt_sched_momentum(&t->sched, clock);
    ctrl->flags = 0;
    /* not at step 0: nothing trained yet (the run's start is its own checkpoint) */
    if (cfg->ckpt_every_steps > 0 && t->step > 0 && t->step % cfg->ckpt_every_steps == 0 &&
        t->step != t->last_ckpt)
        ctrl->flags |= DT_CTRL_CHECKPOINT;
    if (cfg->stop_at_step > 0 && t->step == cfg->stop_at_step)
        ctrl->flags |= DT_CTRL_STOP; /* a simulated pre-emption, for tests */
}

/* The control message of the step (rank 0's decision, every rank's signals) and what it asks
 * for before the step. Collective. Returns 0 (train the step), 1 (stop: r->stopped set) or
 * DT_ERR (a checkpoint failed). */
static int control(dt_trainer *t, run_ctx *r, int64_t epoch)
{
    if (dt_train_between_steps)
        dt_train_between_steps();
    if (t->rank == 0)
        decide(t, &r->ctrl, epoch);
    dt_dist_watchdog_step(t->step);
    dt_tl_step(t->step);
    r->step0 = dt_now();
    dt_dist_ctrl(&r->ctrl, t->comm);
    dt_tl_span("control", NULL, DT_TL_MAIN, r->step0, dt_now(), -1);
    if (r->ctrl.flags & DT_CTRL_STOP) {
        r->stopped = r->ctrl.signal ? r->ctrl.signal : -2;
        return 1;
    }
    if (r->ctrl.flags & DT_CTRL_CHECKPOINT) {
        double c0 = dt_now();
        t->pending_time = c0 - r->e0 - r->ck_time; /* this epoch's training time so far */
        if (dt_trainer_checkpoint(t, "every ckpt.every_steps") != 0)
            return DT_ERR;
        dt_tl_mark("checkpoint", c0, dt_now());
        r->ck_time += dt_now() - c0;
    }
    return 0;
}

/* Every log.every_steps steps: the step's row of the metrics log (the loss averaged over ranks).
 * Collective. Returns 0, or DT_ERR on rank 0 when the log could not be written. */
static int log_step(dt_trainer *t, const run_ctx *r, double loss, int64_t epoch)
{
    const dt_config *cfg = t->cfg;
    if (!dt_train_has_dir(cfg->log_dir) || t->step % cfg->log_every_steps != 0)
        return DT_OK;
    /* the loss differs per rank; the averaged gradient does not, so each rank sums the squares
     * of its 1/world slice of it, and the one sum over ranks (in rank order) gives both */
    const size_t n = t->net->numel, lo = n * (size_t)t->rank / (size_t)t->world,
                 hi = n * (size_t)(t->rank + 1) / (size_t)t->world;
    double v[2] = {loss, dt_kern_get()->optim->sumsq(t->net->grad + lo, hi - lo)};
    dt_dist_sum(v, 2, DT_PHASE_LOG, t->comm);
    if (!t->metrics)
        return DT_OK;
    double el = dt_now() - r->e0;
    double row[STEP_COLS] = {(double)t->step,
                             (double)epoch,
                             v[0] / t->world,
                             r->ctrl.lr,
                             r->ctrl.momentum,
                             sqrt(v[1]),
                             el > 0 ? (t->epoch_sums[2] - r->seen0) * t->world / el : 0.0,
                             t->step_time[0],
                             t->step_time[1],
                             exposed_pct(t->step_time)};
    return dt_metrics_step(t->metrics, row) != 0 ? DT_ERR : DT_OK;
}

/* The live bar after batch b of nb, at most every 0.2 s and at the epoch's last batch. */
static void draw(const dt_trainer *t, run_ctx *r, int64_t b, int64_t nb)
{
    double now = dt_now();
    if (now - r->last_draw > 0.2 || b + 1 == nb) {
        double el = now - r->e0 > 1e-9 ? now - r->e0 : 1e-9;
        dt_progress_bar(&t->prog, t->epoch, b, nb, t->epoch_sums[0] / t->epoch_sums[2],
                        (t->epoch_sums[2] - r->seen0) * t->world / el, r->ctrl.lr, now - r->e0);
        r->last_draw = now;
    }
}

/* One step on the n samples of r->batch_idx: train, count, advance the position, SWA, log. */
static int train_step(dt_trainer *t, run_ctx *r, int n, int64_t epoch)
{
    int correct = 0;
    double loss = dt_trainer_step(t, r->batch_idx, n, &r->ctrl, &correct);
    dt_tl_span("step", NULL, DT_TL_MAIN, r->step0, dt_now(), -1);
    for (int k = 0; k < 3; k++) {
        r->ep_comm[k] += t->step_time[k];
        r->run_comm[k] += t->step_time[k];
    }
    t->epoch_sums[0] += loss * n;
    t->epoch_sums[1] += t->step_hits;
    t->epoch_sums[2] += n;
    t->epoch_sums[3] += t->step_hits5;
    t->step++;
    t->epoch_pos += (int64_t)n * t->world;
    if (!t->swa.per_epoch && dt_swa_due(&t->swa, t->step))
        dt_swa_update(&t->swa, t->net->param);
    return log_step(t, r, loss, epoch);
}

/* The rest of the current epoch (from t->epoch_pos), until its end, train.max_steps or a stop.
 * Collective. Returns 0 or DT_ERR on every rank (a rank-0-only failure agreed at the end). */
static int run_epoch(dt_trainer *t, run_ctx *r)
{
    const int64_t epoch = t->epoch;
    const int64_t *shard = dt_sampler_epoch_from(&t->sampler, epoch, t->epoch_pos);
    int64_t len = t->sampler.shard_len, nb = (len + t->batch - 1) / t->batch;
    r->e0 = dt_now();
    r->last_draw = 0.0;
    r->seen0 = t->epoch_sums[2];
    r->ck_time = 0.0;
    memset(r->ep_comm, 0, sizeof r->ep_comm);
    int rc = DT_OK;
    for (int64_t b = 0; b < nb && t->step < t->total_steps; b++) {
        int64_t lo = b * t->batch;
        int n = (int)(len - lo < t->batch ? len - lo : t->batch);
        memcpy(r->batch_idx, shard + lo, (size_t)n * sizeof *r->batch_idx);
        int c = control(t, r, epoch);
        if (c == DT_ERR)
            rc = DT_ERR;
        if (c != 0)
            break;
        if (train_step(t, r, n, epoch) != 0)
            rc = DT_ERR;
        if (t->prog.bar)
            draw(t, r, b, nb);
    }
    r->epoch_time = dt_now() - r->e0 - r->ck_time;
    t->train_time += r->epoch_time;
    t->pending_time = 0.0;
    /* a rank-0-only failure (metrics I/O) inside the loop ends the run on every rank here */
    return dt_dist_agree(rc, t->comm);
}

/* The finished epoch over all ranks: training sums, evaluation, SWA, the replica check and the
 * plateau schedule's observation; its record in *rec. Collective: 0 or DT_ERR on every rank. */
static int epoch_results(dt_trainer *t, run_ctx *r, dt_epoch_rec *rec)
{
    const dt_config *cfg = t->cfg;
    const int64_t epoch = t->epoch;
    /* sums[3]: samples trained in this process's part of the epoch (a resumed epoch's
     * earlier part is in epoch_sums but not in epoch_time) */
    double sums[8] = {
        t->epoch_sums[0], t->epoch_sums[1], t->epoch_sums[2], t->epoch_sums[2] - r->seen0,
        r->ep_comm[0],    r->ep_comm[1],    r->ep_comm[2],    t->epoch_sums[3]};
    dt_dist_sum(sums, 8, DT_PHASE_EPOCH, t->comm);
    for (int k = 0; k < 3; k++)
        r->ep_comm_all[k] = sums[4 + k] / t->world;
    t->train_samples += sums[2];
    r->last_train_loss = sums[0] / sums[2];
    const double v0 = dt_now();
    r->ev = dt_trainer_evaluate(t, t->test);
    dt_tl_mark("evaluation", v0, dt_now());
    if (t->swa.per_epoch && dt_swa_due(&t->swa, epoch + 1))
        dt_swa_update(&t->swa, t->net->param);
    r->swa_ev = (dt_eval){NAN, NAN, NAN, 0};
    if (t->swa.mode != DT_SWA_OFF && cfg->swa_eval_epoch && t->swa.n > 0)
        r->swa_ev = swa_evaluate(t, 0);
    if (!dt_dist_same(dt_dist_fingerprint(t->net->param, t->net->numel), t->comm))
        return dt_err("replicas diverged after epoch %lld: parameters differ between ranks",
                      (long long)epoch + 1);
    double metric = cfg->plateau_metric == 0   ? r->ev.loss
                    : cfg->plateau_metric == 1 ? 100.0 * r->ev.acc
                                               : r->last_train_loss;
    dt_sched_observe(&t->sched, metric);
    const double secs = r->epoch_time;
    *rec = (dt_epoch_rec){(double)epoch + 1,
                          (double)t->step,
                          r->last_train_loss,
                          100.0 * sums[1] / sums[2],
                          r->ev.loss,
                          100.0 * r->ev.acc,
                          100.0 * r->ev.top5,
                          r->ctrl.lr,
                          sums[3] / (secs > 0 ? secs : 1),
                          secs,
                          100.0 * r->swa_ev.acc,
                          100.0 * sums[7] / sums[2],
                          100.0 * r->swa_ev.top5};
    return DT_OK;
}

/* After an epoch's steps: its results, record, line and log row; then the next epoch and its
 * checkpoint. Collective: 0 or DT_ERR on every rank. */
static int end_of_epoch(dt_trainer *t, run_ctx *r)
{
    const dt_config *cfg = t->cfg;
    dt_epoch_rec rec;
    if (epoch_results(t, r, &rec) != 0)
        return DT_ERR;
    if (t->nhist < cfg->epochs)
        t->hist[t->nhist++] = rec;
    dt_progress_epoch(&t->prog, &rec);
    int rc = DT_OK;
    if (t->metrics) {
        double row[EPOCH_ROW];
        memcpy(row, &rec, DT_EPOCH_COLS * sizeof *row);
        row[DT_EPOCH_COLS] = r->ep_comm_all[0];
        row[DT_EPOCH_COLS + 1] = r->ep_comm_all[1];
        row[DT_EPOCH_COLS + 2] = exposed_pct(r->ep_comm_all);
        if (dt_metrics_epoch(t->metrics, row) != 0)
            rc = DT_ERR;
    }
    if (dt_dist_agree(rc, t->comm) != 0)
        return DT_ERR;
    if (!isfinite(r->last_train_loss))
        return dt_err("training diverged: train loss is %g in epoch %lld (try a lower optim.lr)",
                      r->last_train_loss, (long long)t->epoch + 1);
    t->epoch++;
    t->epoch_pos = 0;
    memset(t->epoch_sums, 0, sizeof t->epoch_sums);
    const double c0 = dt_now();
    if (cfg->ckpt_every_epoch && dt_trainer_checkpoint(t, "end of epoch") != 0)
        return DT_ERR;
    if (cfg->ckpt_every_epoch && dt_train_has_dir(cfg->ckpt_dir))
        dt_tl_mark("checkpoint", c0, dt_now());
    return DT_OK;
}

/* A run stopped by a (real or simulated) pre-emption signal: its checkpoint, unless there is
 * nothing new to save. Collective. */
static int finish_stopped(dt_trainer *t, const run_ctx *r)
{
    const dt_config *cfg = t->cfg;
    if (t->step == 0 || t->step == t->last_ckpt) {
        /* a signal before the first step (it may come during start-up: the handlers are
         * installed first thing in main) or right after a resume: nothing new to save */
        dt_progress_stopped_unsaved(&t->prog, t->step, r->stopped);
        return DT_OK;
    }
    if (!dt_train_has_dir(cfg->ckpt_dir)) {
        dt_err("stopped at step %lld by %s, but ckpt.dir is none: no checkpoint written "
               "(set ckpt.dir to make runs resumable)",
               (long long)t->step, dt_progress_stop_name(r->stopped));
        return dt_dist_agree(DT_ERR, t->comm);
    }
    if (dt_trainer_checkpoint(t, "signal") != 0)
        return DT_ERR;
    dt_progress_stopped_saved(&t->prog, t->step, r->stopped, cfg->ckpt_dir);
    return DT_OK;
}

/* A run that went to its end: the SWA model's evaluation, then the final line. Collective. */
static int finish(dt_trainer *t, run_ctx *r)
{
    if (t->swa.mode != DT_SWA_OFF && t->swa.n > 0)
        r->swa_ev = swa_evaluate(t, 1);
    double rss = dt_peak_rss_mib();
    dt_dist_max(&rss, 1, DT_PHASE_EPOCH, t->comm);
    double comm[3] = {r->run_comm[0], r->run_comm[1], r->run_comm[2]};
    dt_dist_sum(comm, 3, DT_PHASE_EPOCH, t->comm);
    if (!t->out)
        return DT_OK;
    dt_progress_final f = {
        .epochs = t->nhist,
        .steps = t->step,
        .train_loss = r->last_train_loss,
        .test_loss = r->ev.loss,
        .test_acc = r->ev.acc,
        .test_top5 = r->ev.top5,
        .samples_per_s = t->train_time > 0 ? t->train_samples / t->train_time : 0.0,
        .wall_s = dt_now() - r->t_start,
        .max_rss_mib = rss,
        .params_crc = params_crc(t->net),
        .swa = t->swa.mode != DT_SWA_OFF,
        .swa_test_acc = r->swa_ev.acc,
        .swa_test_top5 = r->swa_ev.top5,
        .swa_n = t->swa.n,
        .scaler = t->scaler.scale > 0.0,
        .loss_scale = t->scaler.scale,
        .skipped_steps = t->scaler.skipped,
        .ckpt = dt_train_has_dir(t->cfg->ckpt_dir),
        .ckpt_failures = t->ckpt_failures,
        .comm = t->world > 1,
        .exposed_comm_pct = exposed_pct(comm),
    };
    dt_progress_final_line(&t->prog, &f);
    return DT_OK;
}

int dt_trainer_run(dt_trainer *t)
{
    run_ctx r = {.t_start = dt_now(), .swa_ev = {NAN, NAN, NAN, 0}, .ev = {NAN, NAN, NAN, 0}};
    r.last_train_loss = t->nhist ? t->hist[t->nhist - 1].train_loss : NAN;
    if (t->nhist) { /* a resumed run's last epoch, for the final line */
        r.ev.loss = t->hist[t->nhist - 1].test_loss;
        r.ev.acc = t->hist[t->nhist - 1].test_acc / 100.0;
        r.ev.top5 = t->hist[t->nhist - 1].test_top5 / 100.0;
    }
    r.batch_idx = dt_xmalloc((size_t)t->batch, sizeof *r.batch_idx);
    int rc = DT_OK;
    while (t->epoch < t->cfg->epochs && t->step < t->total_steps && !r.stopped) {
        rc = run_epoch(t, &r);
        if (rc != 0 || r.stopped)
            break;
        rc = end_of_epoch(t, &r);
        if (rc != 0)
            break;
    }
    free(r.batch_idx);
    if (dt_dist_agree(rc, t->comm) != 0)
        return DT_ERR;
    rc = r.stopped ? finish_stopped(t, &r) : finish(t, &r);
    if (rc != 0)
        return DT_ERR;
    return dt_dist_agree(dt_tl_close(t->comm), t->comm);
}
