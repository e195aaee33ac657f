/*
 * train.c - see train.h.
 */
#include "train.h"

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

static int has_dir(const char *s) { return strcmp(s, "none") != 0; }

static const char *const step_cols[] = {"step",     "epoch",     "loss",         "lr",
                                        "momentum", "grad_norm", "samples_per_s"};
static const char *const epoch_cols[DT_EPOCH_COLS] = {
    "epoch",    "step", "train_loss",    "train_acc", "test_loss",
    "test_acc", "lr",   "samples_per_s", "time_s",    "swa_test_acc"};

static int resume(dt_trainer *t, int *resumed);
/* the net's reduction (SyncBatchNorm, BN refresh): a sum over the trainer's communicator */
static void allreduce_sum(void *comm, double *x, int n)
{
    MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, *(MPI_Comm *)comm);
}
static void register_state(dt_trainer *t);

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

/* The optimizer, with weight decay per tensor (Bag of Tricks: none on biases and BN
 * parameters). Collective. */
static int init_optim(dt_trainer *t)
{
    const dt_config *cfg = t->cfg;
    const dt_net *net = t->net;
    dt_optim_segment *segs = dt_xmalloc((size_t)net->nparams + 1, sizeof *segs);
    for (int i = 0; i < net->nparams; i++)
        segs[i] = (dt_optim_segment){net->params[i].off, net->params[i].numel,
                                     !(cfg->no_decay_bias_bn && net->params[i].no_decay)};
    int rc = dt_optim_init(&t->opt, &cfg->op, net->numel, segs, net->nparams);
    free(segs);
    return dt_dist_agree(rc, t->comm);
}

/* The step's buffers, sized for the net's largest batch, and rank 0's epoch history. */
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
    t->hist = dt_xcalloc((size_t)t->cfg->epochs, sizeof *t->hist);
}

/* Augmentation, SWA, progress output, precision and loss scaling, gradient buckets, signal
 * handlers and the watchdog. Cannot fail. */
static void init_modules(dt_trainer *t)
{
    const dt_config *cfg = t->cfg;
    dt_net *net = t->net;
    t->aug.crop_pad = cfg->crop_pad;
    t->aug.flip = cfg->flip;
    t->aug.seed = (uint64_t)cfg->seed;
    dt_swa_init(&t->swa, (dt_swa_mode)cfg->swa_mode, cfg->swa_per_epoch, cfg->swa_start,
                cfg->swa_freq, cfg->swa_lr, cfg->swa_anneal, !cfg->swa_anneal_linear,
                cfg->swa_decay, net->numel, t->rank == 0);
    dt_progress_init(&t->prog, t->out, cfg->progress, cfg->epochs);
    /* low precision and loss scaling (lowp.h) */
    dt_net_set_precision(net, cfg->precision);
    double scale;
    int dynamic;
    DT_ASSERT(dt_config_loss_scale(cfg, &scale, &dynamic) == 0); /* checked by resolve */
    if (scale > 0.0)
        dt_scaler_init(&t->scaler, scale, dynamic, cfg->loss_scale_interval);
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
    if (t->rank == 0 && has_dir(dir))
        rc = dt_mkdir_p(dir);
    return dt_dist_agree(rc, t->comm);
}

/* Rank 0's metrics log, continuing the rows a resumed checkpoint had logged. Collective. */
static int open_metrics(dt_trainer *t)
{
    const dt_config *cfg = t->cfg;
    int rc = DT_OK;
    if (t->rank == 0 && has_dir(cfg->log_dir)) {
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
    if (check_inputs(t) != 0 || init_optim(t) != 0)
        return DT_ERR;
    alloc_buffers(t);
    init_modules(t);
    if (make_dir(t, cfg->ckpt_dir) != 0)
        return DT_ERR;
    register_state(t);
    int resumed = 0;
    if (resume(t, &resumed) != 0 || init_sched(t, resumed) != 0)
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
    }
    free(idx);
    dt_dist_arrive(DT_PHASE_EPOCH, comm);
    MPI_Allreduce(MPI_IN_PLACE, sums, 3, MPI_DOUBLE, MPI_SUM, comm);
    dt_eval e = {sums[0] / sums[2], sums[1] / sums[2], (int64_t)sums[2]};
    return e;
}

dt_eval dt_trainer_evaluate(dt_trainer *t, const dt_dataset *ds)
{
    return dt_net_evaluate(t->net, ds, t->cfg->eval_batch_size, t->x, t->y, t->probs, t->comm);
}

/* ---- checkpoints ---- */

/* The resolved configuration as text (for the checkpoint's "config" attribute). */
static char *config_text(const dt_config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    DT_ASSERT(f);
    dt_config_print(cfg, f);
    fclose(f);
    return buf;
}

static void add_i64(dt_ck_writer *w, const char *name, int64_t v)
{
    dt_ck_add_copy(w, name, DT_CK_I64, 0, NULL, &v);
}

/* The checkpoint item of a tensor: model/<PyTorch state_dict key>, its shape; returns 1 for a
 * BatchNorm num_batches_tracked (stored as torch does: a 0-dim int64 tensor). */
static int model_item(const dt_param *p, char *name, size_t size, int64_t dims[4])
{
    snprintf(name, size, "model/%s", p->name);
    for (int d = 0; d < p->ndim; d++)
        dims[d] = p->shape[d];
    const size_t nl = strlen(p->name);
    return nl > 19 && strcmp(p->name + nl - 19, "num_batches_tracked") == 0;
}

/* Adds the model's parameters (from `param`, the net's or an average) and buffers, under
 * model/<PyTorch state_dict key> with PyTorch's shapes. */
static void add_model(dt_ck_writer *w, const dt_net *net, const float *param)
{
    char name[160];
    int64_t dims[4];
    for (int i = 0; i < net->nparams; i++) {
        const dt_param *p = &net->params[i];
        model_item(p, name, sizeof name, dims);
        dt_ck_add(w, name, DT_CK_F32, p->ndim, dims, param + p->off);
    }
    for (int i = 0; i < net->nbufs; i++) {
        const dt_param *p = &net->bufs[i];
        if (model_item(p, name, sizeof name, dims)) {
            int64_t v = (int64_t)net->state[p->off];
            dt_ck_add_copy(w, name, DT_CK_I64, 0, NULL, &v);
        } else {
            dt_ck_add(w, name, DT_CK_F32, p->ndim, dims, net->state + p->off);
        }
    }
}

/* rank 0: where the newest checkpoint on disk is, for the message of a failed one */
static void describe_newest(const dt_config *cfg, char *buf, size_t n)
{
    dt_ck_entry *e = NULL;
    int cnt = dt_ck_scan_dir(cfg->ckpt_dir, &e);
    if (cnt > 0)
        snprintf(buf, n, "the newest checkpoint is still %s/%s", cfg->ckpt_dir, e[cnt - 1].name);
    else
        snprintf(buf, n, "there is no earlier checkpoint in %s", cfg->ckpt_dir);
    free(e);
}

/* A checkpoint that rank 0 could not write (dt_ck_commit removed its temporary file; the older
 * checkpoints are intact). ckpt.on_error = continue: one warning, counted in ckpt_failures, and
 * training goes on (the next interval tries again). ckpt.on_error = stop, or the checkpoint of a
 * pre-emption (the run ends now, without it): one error naming what was lost, DT_ERR on every
 * rank. Either way one line, from rank 0, saying which file, why and what happens next. */
static int checkpoint_failed(dt_trainer *t, int preempt)
{
    const dt_config *cfg = t->cfg;
    char msg[1024], newest[4200];
    t->ckpt_failures++;
    if (t->rank == 0) {
        snprintf(msg, sizeof msg, "%s", dt_err_msg());
        describe_newest(cfg, newest, sizeof newest);
    }
    if (preempt) {
        if (t->rank == 0)
            dt_err("%s; stopped at step %lld by a pre-emption signal: nothing was saved (%s)", msg,
                   (long long)t->step, newest);
        return dt_dist_agree(t->rank == 0 ? DT_ERR : DT_OK, t->comm);
    }
    if (cfg->ckpt_on_error == 1) {
        if (t->rank == 0)
            dt_err("%s; stopping at step %lld (ckpt.on_error = stop); %s", msg, (long long)t->step,
                   newest);
        return dt_dist_agree(t->rank == 0 ? DT_ERR : DT_OK, t->comm);
    }
    if (t->rank == 0) {
        dt_progress_clear(&t->prog);
        const char *next = t->step >= t->total_steps
                               ? "it was the run's last checkpoint"
                               : "training goes on and the next checkpoint tries again";
        fprintf(stderr, "dtrain: warning: %s; %s (ckpt.on_error = continue); %s\n", msg, next,
                newest);
        fflush(stderr);
    }
    return DT_OK;
}

/* The trainer's table of resumable state (state.h), in the order of the checkpoint's items:
 * model, optimizer, schedule, position, RNG streams, loss scaler, SWA, metrics. Items whose form
 * in the file differs from the trainer's (an int, a sum over ranks, a float counter) live in t->io,
 * filled by io_pack before a save and applied by io_unpack after a resume. */
static void register_state(dt_trainer *t)
{
    dt_state *st = &t->state;
    dt_net *net = t->net;
    const int64_t two[1] = {2}, three[1] = {3}, hdims[2] = {t->cfg->epochs, DT_EPOCH_COLS};
    dt_state_init(st);
    char name[DT_CK_NAME_MAX];
    int64_t dims[4];
    for (int i = 0; i < net->nparams; i++) {
        const dt_param *p = &net->params[i];
        model_item(p, name, sizeof name, dims);
        dt_state_add(st, name, DT_CK_F32, p->ndim, dims, net->param + p->off, DT_STATE_SHARED,
                     DT_STATE_FINITE);
    }
    t->io.nbt = dt_xcalloc((size_t)net->nbufs + 1, sizeof *t->io.nbt);
    for (int i = 0, k = 0; i < net->nbufs; i++) {
        const dt_param *p = &net->bufs[i];
        if (model_item(p, name, sizeof name, dims))
            dt_state_add(st, name, DT_CK_I64, 0, NULL, &t->io.nbt[k++], DT_STATE_SHARED,
                         DT_STATE_NONNEG);
        else
            dt_state_add(st, name, DT_CK_F32, p->ndim, dims, net->state + p->off, DT_STATE_SHARED,
                         DT_STATE_FINITE);
    }
    dt_optim_register_state(&t->opt, st);
    dt_sched_register_state(&t->sched, st);
    dt_state_add(st, "train/step", DT_CK_I64, 0, NULL, &t->step, DT_STATE_SHARED, DT_STATE_NONNEG);
    dt_state_add(st, "train/epoch", DT_CK_I64, 0, NULL, &t->epoch, DT_STATE_SHARED,
                 DT_STATE_NONNEG);
    dt_state_add(st, "train/epoch_pos", DT_CK_I64, 0, NULL, &t->epoch_pos, DT_STATE_SHARED,
                 DT_STATE_NONNEG);
    dt_state_add(st, "train/world_size", DT_CK_I64, 0, NULL, &t->io.world, DT_STATE_SHARED,
                 DT_STATE_POSITIVE);
    dt_state_add(st, "train/batch_size", DT_CK_I64, 0, NULL, &t->io.batch, DT_STATE_SHARED,
                 DT_STATE_POSITIVE);
    /* the epoch's partial sums over all ranks, kept by rank 0 on resume */
    dt_state_add(st, "train/epoch_sums", DT_CK_F64, 1, three, t->io.sums, DT_STATE_RANK0, 0);
    /* training seconds, training samples */
    dt_state_add(st, "train/time", DT_CK_F64, 1, two, t->io.times, DT_STATE_SHARED,
                 DT_STATE_FINITE | DT_STATE_NONNEG);
    /* every rank's (seed, rank, step) stream counters; derived on resume, so only checked */
    dt_state_add(st, "rng/streams", DT_CK_I64, 1, three, t->io.stream, DT_STATE_PER_RANK, 0);
    dt_scaler_register_state(&t->scaler, st);
    dt_swa_register_state(&t->swa, st);
    dt_state_add(st, "metrics/step_rows", DT_CK_I64, 0, NULL, &t->io.step_rows, DT_STATE_SHARED,
                 DT_STATE_NONNEG);
    dt_state_add(st, "metrics/epoch_rows", DT_CK_I64, 0, NULL, &t->io.epoch_rows, DT_STATE_SHARED,
                 DT_STATE_NONNEG);
    dt_state_add_rows(st, "metrics/epochs", DT_CK_F64, 2, hdims, t->hist, &t->io.nhist,
                      DT_STATE_RANK0, 0);
}

/* Before a save (every rank; collective): t -> t->io. */
static void io_pack(dt_trainer *t)
{
    dt_net *net = t->net;
    MPI_Allreduce(t->epoch_sums, t->io.sums, 3, MPI_DOUBLE, MPI_SUM, t->comm);
    t->io.stream[0] = t->cfg->seed;
    t->io.stream[1] = t->rank;
    t->io.stream[2] = t->step;
    t->io.world = t->world;
    t->io.batch = t->batch;
    t->io.times[0] = t->train_time + t->pending_time;
    t->io.times[1] = t->train_samples;
    t->io.step_rows = t->metrics ? dt_metrics_step_rows(t->metrics) : 0;
    t->io.epoch_rows = t->metrics ? dt_metrics_epoch_rows(t->metrics) : 0;
    t->io.nhist = t->nhist;
    char name[DT_CK_NAME_MAX];
    int64_t dims[4];
    for (int i = 0, k = 0; i < net->nbufs; i++)
        if (model_item(&net->bufs[i], name, sizeof name, dims))
            t->io.nbt[k++] = (int64_t)net->state[net->bufs[i].off];
    dt_state_gather(&t->state, t->comm);
}

/* After a resume's broadcast (every rank): t->io -> t. */
static void io_unpack(dt_trainer *t)
{
    dt_net *net = t->net;
    char name[DT_CK_NAME_MAX];
    int64_t dims[4];
    for (int i = 0, k = 0; i < net->nbufs; i++)
        if (model_item(&net->bufs[i], name, sizeof name, dims))
            net->state[net->bufs[i].off] = (float)t->io.nbt[k++];
    /* the partial epoch's global sums live on rank 0 */
    for (int k = 0; k < 3; k++)
        t->epoch_sums[k] = t->rank == 0 ? t->io.sums[k] : 0.0;
    t->train_time = t->io.times[0];
    t->train_samples = t->io.times[1];
    t->log_rows[0] = t->io.step_rows;
    t->log_rows[1] = t->io.epoch_rows;
    t->nhist = (int)t->io.nhist;
    t->batch = (int)(t->io.batch * t->io.world / t->world);
}

/* rank 0: writes the checkpoint of this step (the table, the attributes), prunes old ones. */
static int write_checkpoint(dt_trainer *t, const char *why)
{
    const dt_config *cfg = t->cfg;
    dt_net *net = t->net;
    char path[4096];
    if (dt_ck_step_path(path, sizeof path, cfg->ckpt_dir, t->step) != 0)
        return DT_ERR;
    if (t->metrics && dt_metrics_flush(t->metrics) != 0)
        return DT_ERR;
    dt_ck_writer *w = dt_ck_begin(path);
    dt_state_write(&t->state, w);
    char *text = config_text(cfg);
    dt_ck_attr(w, "config", text);
    free(text);
    dt_ck_attr_versions(w);
    dt_ck_attr(w, "model", net->model);
    dt_ck_attr(w, "data", cfg->data_name);
    dt_ck_attr(w, "optim", dt_optim_kind_name(cfg->op.kind));
    dt_ck_attrf(w, "world_size", "%d", t->world);
    dt_ck_attrf(w, "global_batch", "%d", t->batch * t->world);
    dt_ck_attrf(w, "seed", "%lld", (long long)cfg->seed);
    dt_ck_attrf(w, "step", "%lld", (long long)t->step);
    dt_ck_attrf(w, "epochs_done", "%lld", (long long)t->epoch);
    double t0 = dt_now();
    int rc = dt_ck_commit(w);
    t->last_ckpt = t->step;
    if (rc != 0 || dt_ck_prune(cfg->ckpt_dir, cfg->ckpt_keep) < 0)
        return DT_ERR;
    dt_progress_checkpoint(&t->prog, path, why, t->step, dt_now() - t0);
    return DT_OK;
}

int dt_trainer_checkpoint(dt_trainer *t, const char *why)
{
    if (!has_dir(t->cfg->ckpt_dir))
        return DT_OK;
    dt_dist_arrive(DT_PHASE_CHECKPOINT, t->comm);
    io_pack(t); /* collective: the epoch's partial sums and every rank's stream counters */
    int rc = t->rank == 0 ? write_checkpoint(t, why) : DT_OK;
    /* only rank 0 writes: its outcome is everyone's */
    int64_t shared[2] = {t->last_ckpt, rc != 0};
    MPI_Bcast(shared, 2, MPI_INT64_T, 0, t->comm);
    t->last_ckpt = shared[0];
    if (!shared[1])
        return DT_OK;
    return checkpoint_failed(t, strcmp(why, "signal") == 0);
}

int dt_read_model(dt_ck_reader *r, dt_net *net)
{
    char name[160];
    int64_t dims[4];
    for (int i = 0; i < net->nparams; i++) {
        const dt_param *p = &net->params[i];
        model_item(p, name, sizeof name, dims);
        if (dt_ck_read(r, name, DT_CK_F32, p->ndim, dims, net->param + p->off) != 0)
            return DT_ERR;
    }
    for (int i = 0; i < net->nbufs; i++) {
        const dt_param *p = &net->bufs[i];
        if (model_item(p, name, sizeof name, dims)) {
            int64_t v;
            if (dt_ck_read(r, name, DT_CK_I64, 0, NULL, &v) != 0)
                return DT_ERR;
            net->state[p->off] = (float)v;
        } else if (dt_ck_read(r, name, DT_CK_F32, p->ndim, dims, net->state + p->off) != 0) {
            return DT_ERR;
        }
    }
    return DT_OK;
}

static int64_t staged_i64(const dt_trainer *t, const char *name)
{
    const int64_t *v = dt_state_staged(&t->state, name, NULL);
    DT_ASSERT(v);
    return *v;
}

/* The checkpoint's state, staged, is consistent in itself: position, counters and the stored
 * configuration agree. 0 or DT_ERR naming the file and the item. */
static int check_consistent(const dt_trainer *t, dt_ck_reader *r)
{
    const char *path = dt_ck_path(r);
    const int64_t step = staged_i64(t, "train/step"), epoch = staged_i64(t, "train/epoch");
    const int64_t pos = staged_i64(t, "train/epoch_pos"), world = staged_i64(t, "train/world_size");
    const int64_t batch = staged_i64(t, "train/batch_size");
    int64_t nrows = 0;
    dt_state_staged(&t->state, "metrics/epochs", &nrows);
    nrows /= DT_EPOCH_COLS;
    if (batch > INT32_MAX / world)
        return dt_err("%s: train/batch_size = %lld x train/world_size = %lld: expected a global "
                      "batch below 2^31",
                      path, (long long)batch, (long long)world);
    if (step == 0 && (epoch != 0 || pos != 0))
        return dt_err("%s: train/step = 0 with train/epoch = %lld and train/epoch_pos = %lld: "
                      "expected epoch 0, position 0 before the first step",
                      path, (long long)epoch, (long long)pos);
    if (step < epoch)
        return dt_err("%s: train/step = %lld < train/epoch = %lld: expected at least one step "
                      "per finished epoch",
                      path, (long long)step, (long long)epoch);
    if (nrows > epoch)
        return dt_err("%s: metrics/epochs has %lld records but train/epoch = %lld: expected at "
                      "most one per finished epoch",
                      path, (long long)nrows, (long long)epoch);
    int64_t n = 0;
    const int64_t *streams = dt_state_staged(&t->state, "rng/streams", &n);
    if (n != world * 3)
        return dt_err("%s: rng/streams has %lld rows: expected train/world_size = %lld", path,
                      (long long)(n / 3), (long long)world);
    for (int64_t q = 0; q < world; q++)
        if (streams[3 * q + 1] != q || streams[3 * q + 2] != step)
            return dt_err("%s: rng/streams row %lld = (%lld, %lld, %lld): expected (seed, %lld, "
                          "train/step = %lld)",
                          path, (long long)q, (long long)streams[3 * q],
                          (long long)streams[3 * q + 1], (long long)streams[3 * q + 2],
                          (long long)q, (long long)step);
    /* the stored configuration must parse (a later `dtrain inspect` or resume reads it) */
    const char *text = dt_ck_get_attr(r, "config");
    if (!text)
        return dt_err("%s: no 'config' attribute: expected the run's configuration", path);
    dt_config c;
    dt_config_defaults(&c);
    char source[4200];
    snprintf(source, sizeof source, "%s: attribute 'config'", path);
    if (dt_config_load_text(&c, text, source) != 0)
        return DT_ERR;
    return DT_OK;
}

/* The checkpoint belongs to this kind of run (model, data, optimizer, the optional state this
 * configuration needs). 0 or DT_ERR. */
static int check_same_run(const dt_trainer *t, dt_ck_reader *r)
{
    const dt_config *cfg = t->cfg;
    const char *path = dt_ck_path(r);
    const char *model = dt_ck_get_attr(r, "model"), *data = dt_ck_get_attr(r, "data");
    const char *optim = dt_ck_get_attr(r, "optim");
    if (!model || strcmp(model, t->net->model) != 0)
        return dt_err("%s: checkpoint of model '%s', this run trains '%s'", path,
                      model ? model : "?", t->net->model);
    if (!data || strcmp(data, cfg->data_name) != 0)
        return dt_err("%s: checkpoint trained on data.name = %s, this run uses %s", path,
                      data ? data : "?", cfg->data_name);
    if (!optim || strcmp(optim, dt_optim_kind_name(cfg->op.kind)) != 0)
        return dt_err("%s: checkpoint has optim.name = %s, this run uses %s: optimizer state "
                      "does not carry over",
                      path, optim ? optim : "?", dt_optim_kind_name(cfg->op.kind));
    if (t->scaler.scale > 0.0 && !dt_ck_has(r, "amp/scale"))
        return dt_err("%s: no loss-scaler state in the checkpoint, but train.loss_scale is on",
                      path);
    if (t->swa.mode != DT_SWA_OFF && !dt_ck_has(r, "swa/average"))
        return dt_err("%s: no SWA state in the checkpoint, but swa.mode is on", path);
    const dt_ck_item *h = dt_ck_find(r, "metrics/epochs");
    if (h && h->ndim == 2 && h->dims[0] > cfg->epochs)
        return dt_err("%s: metrics/epochs holds %lld epoch records, beyond train.epochs = %d of "
                      "this run",
                      path, (long long)h->dims[0], cfg->epochs);
    return DT_OK;
}

/* The staged checkpoint fits this run: its global batch splits over this world size, its
 * position lies inside this run's data and epochs. 0 or DT_ERR. */
static int check_fits(const dt_trainer *t, const char *path)
{
    const dt_config *cfg = t->cfg;
    const int64_t step = staged_i64(t, "train/step"), epoch = staged_i64(t, "train/epoch");
    const int64_t pos = staged_i64(t, "train/epoch_pos"), world = staged_i64(t, "train/world_size");
    const int64_t global = staged_i64(t, "train/batch_size") * world;
    if (global % t->world != 0)
        return dt_err("%s: its global batch %lld (%lld ranks x %lld) cannot be split over %d "
                      "ranks: resume on a world size that divides it",
                      path, (long long)global, (long long)world, (long long)(global / world),
                      t->world);
    if (global / t->world > t->net->max_batch)
        return dt_err("%s: a global batch of %lld on %d ranks needs %lld per rank, above "
                      "train.batch_size = %d: raise it to at least that",
                      path, (long long)global, t->world, (long long)(global / t->world),
                      t->net->max_batch);
    if (epoch > cfg->epochs)
        return dt_err("%s: train/epoch = %lld: beyond train.epochs = %d of this run", path,
                      (long long)epoch, cfg->epochs);
    /* a position of the writing run is below its padded epoch, n_old + world_old - 1 */
    const dt_sampler *s = &t->sampler;
    if (pos >= s->n + world || pos > s->total_size + t->world)
        return dt_err("%s: train/epoch_pos = %lld: beyond this run's epoch of %lld samples "
                      "(was the checkpoint written with another data.limit_train or data set?)",
                      path, (long long)pos, (long long)s->n);
    const int64_t per_rank = global / t->world;
    const int64_t spe = (s->num_samples + per_rank - 1) / per_rank;
    /* each finished epoch took spe steps (one less or more after a world-size change) */
    if (spe > 1 && step < epoch * (spe - 1))
        return dt_err("%s: train/step = %lld after %lld finished epochs: expected at least %lld "
                      "(epochs of %lld steps in this run)",
                      path, (long long)step, (long long)epoch, (long long)(epoch * (spe - 1)),
                      (long long)spe);
    if (epoch < cfg->epochs && step >= (int64_t)cfg->epochs * spe)
        return dt_err("%s: train/step = %lld in epoch %lld: beyond this run's %lld steps (%d "
                      "epochs x %lld): was it written with another data.limit_train or data set?",
                      path, (long long)step, (long long)epoch + 1, (long long)cfg->epochs * spe,
                      cfg->epochs, (long long)spe);
    if (step > (epoch + 1) * (spe + 1))
        return dt_err("%s: train/step = %lld in epoch %lld: expected at most %lld (epochs of %lld "
                      "steps in this run)",
                      path, (long long)step, (long long)epoch + 1,
                      (long long)((epoch + 1) * (spe + 1)), (long long)spe);
    return DT_OK;
}

/* Where a resume reads: the explicit path's file or every candidate of --resume auto. */
typedef struct {
    dt_trainer *t;
    int mismatch; /* the newest valid checkpoint is not of this run: stop, no older one */
} load_ctx;

/* rank 0: reads the verified checkpoint r into the state table's staging and validates it.
 * Returns 0 (staged; ctx->mismatch set when it is not of this run, message recorded) or
 * DT_ERR (the file is unusable: --resume auto tries an older one). */
static int try_load(dt_ck_reader *r, void *vctx)
{
    load_ctx *ctx = vctx;
    dt_trainer *t = ctx->t;
    if (check_same_run(t, r) != 0) {
        ctx->mismatch = 1;
        return DT_OK;
    }
    if (dt_state_read(&t->state, r) != 0 || check_consistent(t, r) != 0)
        return DT_ERR;
    return DT_OK;
}

/* rank 0: finds (--resume auto) or opens the checkpoint to resume from, reads it into the
 * state table's staging and validates it against this run; *found: 1 when there is one (path),
 * 0 when --resume auto found none. Returns 0 or DT_ERR (message recorded). */
static int load_on_rank0(dt_trainer *t, char *path, size_t size, int *found)
{
    const dt_config *cfg = t->cfg;
    load_ctx ctx = {t, 0};
    int rc = DT_OK;
    *found = 0;
    if (strcmp(cfg->resume, "auto") == 0) {
        if (!has_dir(cfg->ckpt_dir))
            return dt_err("ckpt.resume = auto needs ckpt.dir (the folder to look in)");
        char report[4096];
        int64_t st;
        int r = dt_ck_find_latest_if(cfg->ckpt_dir, path, size, &st, report, sizeof report,
                                     try_load, &ctx);
        if (r < 0)
            rc = DT_ERR;
        dt_progress_resume_report(&t->prog, report);
        *found = r == 1;
        if (r == 0)
            dt_progress_resume_none(&t->prog, cfg->ckpt_dir);
    } else {
        dt_ck_reader *r = NULL;
        snprintf(path, size, "%s", cfg->resume);
        *found = 1;
        rc = dt_ck_open(&r, path);
        if (rc == 0)
            rc = try_load(r, &ctx);
        dt_ck_close(r);
    }
    if (rc == 0 && *found && ctx.mismatch)
        rc = DT_ERR; /* message recorded by check_same_run */
    if (rc == 0 && *found)
        rc = check_fits(t, path);
    if (rc == 0 && *found)
        dt_state_commit(&t->state);
    return rc;
}

/* With ckpt.resume set: rank 0 loads the checkpoint, every rank receives its state. Collective:
 * 0 (*resumed: 1 when a checkpoint was loaded) or DT_ERR on every rank. */
static int resume(dt_trainer *t, int *resumed)
{
    *resumed = 0;
    if (strcmp(t->cfg->resume, "none") == 0)
        return DT_OK;
    char path[4096] = "";
    int rc = DT_OK, found = 0;
    if (t->rank == 0)
        rc = load_on_rank0(t, path, sizeof path, &found);
    if (dt_dist_agree(rc, t->comm) != 0)
        return DT_ERR;
    MPI_Bcast(&found, 1, MPI_INT, 0, t->comm);
    if (!found)
        return DT_OK;
    MPI_Bcast(path, (int)sizeof path, MPI_CHAR, 0, t->comm);
    dt_state_bcast(&t->state, t->comm);
    io_unpack(t);
    t->last_ckpt = t->step;
    snprintf(t->resumed_from, sizeof t->resumed_from, "%s", path);
    dt_progress_resumed(&t->prog, path, t->step, t->epoch, t->epoch_pos, t->world, t->batch,
                        t->io.world != t->world);
    *resumed = 1;
    return DT_OK;
}

/* ---- SWA evaluation ---- */

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
    if (save && t->rank == 0 && (has_dir(t->cfg->ckpt_dir) || has_dir(t->cfg->log_dir))) {
        char path[4096];
        snprintf(path, sizeof path, "%s/swa-final.h5",
                 has_dir(t->cfg->ckpt_dir) ? t->cfg->ckpt_dir : t->cfg->log_dir);
        dt_ck_writer *w = dt_ck_begin(path);
        add_model(w, net, net->param);
        add_i64(w, "swa/n", t->swa.n);
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
    if (!has_dir(cfg->log_dir) || t->step % cfg->log_every_steps != 0)
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
                        (t->epoch_sums[2] - r->seen0) * t->world / el);
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
    if (!has_dir(cfg->ckpt_dir)) {
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
        .ckpt = has_dir(t->cfg->ckpt_dir),
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
