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
#include "kernels/kernels.h"
#include "mixup.h"
#include "xxh64.h"

static const char *const step_cols[] = {"step",     "epoch",     "loss",         "lr",
                                        "momentum", "grad_norm", "samples_per_s"};
static const char *const epoch_cols[DT_EPOCH_COLS] = {
    "epoch",    "step", "train_loss",    "train_acc", "test_loss",
    "test_acc", "lr",   "samples_per_s", "time_s",    "swa_test_acc"};

/* the net's reduction (SyncBatchNorm, BN refresh): a sum over the trainer's communicator */
static void allreduce_sum(void *comm, double *x, int n)
{
    MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, *(MPI_Comm *)comm);
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

/* The step's buffers, sized for the net's largest batch. */
static void alloc_buffers(dt_trainer *t)
{
    const dt_net *net = t->net;
    size_t in_size = (size_t)net->in_c * (size_t)net->in_h * (size_t)net->in_w;
    size_t K = (size_t)net->classes;
    t->x = dt_xmalloc((size_t)net->max_batch * in_size, sizeof *t->x);
    t->y = dt_xmalloc((size_t)net->max_batch, sizeof *t->y);
    t->probs = dt_xmalloc((size_t)net->max_batch * K, sizeof *t->probs);
    t->targets = dt_xmalloc((size_t)net->max_batch * K, sizeof *t->targets);
    t->perm = dt_xmalloc((size_t)net->max_batch, sizeof *t->perm);
    if (t->cfg->mixup_alpha > 0.0)
        t->xtmp = dt_xmalloc((size_t)net->max_batch * in_size, sizeof *t->xtmp);
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

/* Rank 0's metrics log, continuing the rows a resumed checkpoint had logged. Collective. */
static int open_metrics(dt_trainer *t)
{
    const dt_config *cfg = t->cfg;
    int rc = DT_OK;
    if (t->rank == 0 && dt_train_has_dir(cfg->log_dir)) {
        rc = dt_mkdir_p(cfg->log_dir);
        if (rc == 0)
            rc = dt_metrics_open(&t->metrics, cfg->log_dir, step_cols, 7, epoch_cols, DT_EPOCH_COLS,
                                 t->log_rows[0], t->log_rows[1], 50);
    }
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
    if (make_dir(t, cfg->ckpt_dir) != 0)
        return DT_ERR;
    dt_train_register_state(t);
    int resumed = 0;
    if (dt_train_resume(t, &resumed) != 0 || init_sched(t, resumed) != 0)
        return DT_ERR;
    return open_metrics(t);
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
    dt_grad_sync_free(&t->sync);
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

double dt_trainer_step(dt_trainer *t, const int64_t *idx, int n, const dt_ctrl *ctrl, int *correct)
{
    dt_net *net = t->net;
    const dt_config *cfg = t->cfg;
    int K = net->classes;
    long D = (long)net->in_c * net->in_h * net->in_w;
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
    const float *logits = dt_net_forward(net, t->x, n, 1, &t->step_ctx);
    double loss = dt_xent_forward(t->probs, logits, targets ? NULL : t->y, targets, n, K, correct);
    t->step_hits = *correct;
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
    /* gradients averaged in buckets, each started as soon as backward has finished it */
    dt_grad_sync_begin(&t->sync);
    t->step_ctx.grad_ready = grad_ready;
    t->step_ctx.grad_ready_ctx = &t->sync;
    dt_net_backward(net, n, &t->step_ctx);
    t->step_ctx.grad_ready = NULL;
    dt_grad_sync_finish(&t->sync);
    /* the averaged gradients are equal on every rank, so every rank takes the same decision */
    if (t->scaler.scale > 0.0 && !dt_scaler_unscale_update(&t->scaler, net->grad, net->numel))
        return loss; /* inf/NaN gradients: no optimizer step (GradScaler.step), scale backed off */
    if (cfg->clip_grad_norm > 0.0)
        dt_optim_clip_grad_norm(net->grad, net->numel, cfg->clip_grad_norm);
    dt_optim_step(&t->opt, net->param, net->grad, ctrl->lr, ctrl->momentum);
    return loss;
}

dt_eval dt_net_evaluate(dt_net *net, const dt_dataset *ds, int batch, float *x, int *y,
                        float *probs, MPI_Comm comm)
{
    int rank, world;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &world);
    /* DDP (broadcast_buffers=True): every rank evaluates with rank 0's BatchNorm buffers, the
     * ones a checkpoint stores */
    dt_dist_arrive(DT_PHASE_EPOCH, comm);
    dt_dist_bcast(net->state, net->state_numel, comm);
    int64_t *idx = dt_xmalloc((size_t)batch, sizeof *idx);
    double sums[3] = {0, 0, 0}; /* loss * n, correct, n */
    /* rank r takes r, r + W, ...: every sample exactly once over all ranks, no padding */
    int64_t i = rank;
    while (i < ds->n) {
        int n = 0;
        for (; n < batch && i < ds->n; n++, i += world)
            idx[n] = i;
        dt_dataset_gather(ds, idx, n, x, y);
        const float *logits = dt_net_forward(net, x, n, 0, NULL);
        int correct = 0;
        double loss = dt_xent_forward(probs, logits, y, NULL, n, net->classes, &correct);
        sums[0] += loss * n;
        sums[1] += correct;
        sums[2] += n;
        dt_progress_eval_tick(i, ds->n);
    }
    free(idx);
    dt_dist_arrive(DT_PHASE_EPOCH, comm);
    MPI_Allreduce(MPI_IN_PLACE, sums, 3, MPI_DOUBLE, MPI_SUM, comm);
    dt_eval e = {sums[0] / sums[2], sums[1] / sums[2], (int64_t)sums[2]};
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
static double swa_evaluate(dt_trainer *t, int save)
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
    return ev.acc;
}

/* ---- the loop ---- */

/* What the steps of one dt_trainer_run share. */
typedef struct run_ctx {
    double t_start;         /* the run's start (wall_s of the final line) */
    int stopped;            /* the signal that stopped the run (-2: train.stop_at_step), or 0 */
    double swa_acc;         /* the last SWA evaluation's accuracy in [0, 1], NaN: none */
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
} run_ctx;

static double sqnorm(const float *g, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)g[i] * g[i];
    return s;
}

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
    if (t->rank == 0)
        decide(t, &r->ctrl, epoch);
    dt_dist_watchdog_step(t->step);
    dt_dist_ctrl(&r->ctrl, t->comm);
    if (r->ctrl.flags & DT_CTRL_STOP) {
        r->stopped = r->ctrl.signal ? r->ctrl.signal : -2;
        return 1;
    }
    if (r->ctrl.flags & DT_CTRL_CHECKPOINT) {
        double c0 = dt_now();
        t->pending_time = c0 - r->e0 - r->ck_time; /* this epoch's training time so far */
        if (dt_trainer_checkpoint(t, "every ckpt.every_steps") != 0)
            return DT_ERR;
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
    /* the loss differs per rank; the averaged gradient (its norm) does not */
    double v[2] = {loss, sqnorm(t->net->grad, t->net->numel)};
    MPI_Allreduce(MPI_IN_PLACE, v, 1, MPI_DOUBLE, MPI_SUM, t->comm);
    if (!t->metrics)
        return DT_OK;
    double el = dt_now() - r->e0;
    double row[7] = {(double)t->step,
                     (double)epoch,
                     v[0] / t->world,
                     r->ctrl.lr,
                     r->ctrl.momentum,
                     sqrt(v[1]),
                     el > 0 ? (t->epoch_sums[2] - r->seen0) * t->world / el : 0.0};
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
    t->epoch_sums[0] += loss * n;
    t->epoch_sums[1] += t->step_hits;
    t->epoch_sums[2] += n;
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
    double sums[4] = {t->epoch_sums[0], t->epoch_sums[1], t->epoch_sums[2],
                      t->epoch_sums[2] - r->seen0};
    dt_dist_arrive(DT_PHASE_EPOCH, t->comm);
    MPI_Allreduce(MPI_IN_PLACE, sums, 4, MPI_DOUBLE, MPI_SUM, t->comm);
    t->train_samples += sums[2];
    r->last_train_loss = sums[0] / sums[2];
    r->ev = dt_trainer_evaluate(t, t->test);
    if (t->swa.per_epoch && dt_swa_due(&t->swa, epoch + 1))
        dt_swa_update(&t->swa, t->net->param);
    r->swa_acc = NAN;
    if (t->swa.mode != DT_SWA_OFF && cfg->swa_eval_epoch && t->swa.n > 0)
        r->swa_acc = swa_evaluate(t, 0);
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
                          r->ctrl.lr,
                          sums[3] / (secs > 0 ? secs : 1),
                          secs,
                          100.0 * r->swa_acc};
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
        double row[DT_EPOCH_COLS];
        memcpy(row, &rec, sizeof row);
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
    if (cfg->ckpt_every_epoch && dt_trainer_checkpoint(t, "end of epoch") != 0)
        return DT_ERR;
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
        r->swa_acc = swa_evaluate(t, 1);
    double rss = dt_peak_rss_mib();
    MPI_Allreduce(MPI_IN_PLACE, &rss, 1, MPI_DOUBLE, MPI_MAX, t->comm);
    if (!t->out)
        return DT_OK;
    dt_progress_final f = {
        .epochs = t->nhist,
        .steps = t->step,
        .train_loss = r->last_train_loss,
        .test_loss = r->ev.loss,
        .test_acc = r->ev.acc,
        .samples_per_s = t->train_time > 0 ? t->train_samples / t->train_time : 0.0,
        .wall_s = dt_now() - r->t_start,
        .max_rss_mib = rss,
        .params_crc = params_crc(t->net),
        .swa = t->swa.mode != DT_SWA_OFF,
        .swa_test_acc = r->swa_acc,
        .swa_n = t->swa.n,
        .scaler = t->scaler.scale > 0.0,
        .loss_scale = t->scaler.scale,
        .skipped_steps = t->scaler.skipped,
        .ckpt = dt_train_has_dir(t->cfg->ckpt_dir),
        .ckpt_failures = t->ckpt_failures,
    };
    dt_progress_final_line(&t->prog, &f);
    return DT_OK;
}

int dt_trainer_run(dt_trainer *t)
{
    run_ctx r = {.t_start = dt_now(), .swa_acc = NAN, .ev = {NAN, NAN, 0}};
    r.last_train_loss = t->nhist ? t->hist[t->nhist - 1].train_loss : NAN;
    if (t->nhist) { /* a resumed run's last epoch, for the final line */
        r.ev.loss = t->hist[t->nhist - 1].test_loss;
        r.ev.acc = t->hist[t->nhist - 1].test_acc / 100.0;
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
    if (r.stopped)
        return finish_stopped(t, &r);
    return finish(t, &r);
}
