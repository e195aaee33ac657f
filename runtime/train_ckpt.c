/*
 * train_ckpt.c - the trainer's checkpoints (train.h): its table of resumable state, the save, the
 * resume (find, validate against itself and against this run, commit, broadcast) and the reading
 * of a checkpoint's model. Everything here is a loop over t->state (state.h) plus the checks that
 * relate items to each other and to the run.
 */
#include "train_ckpt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "ckpt_dir.h"
#include "common.h"
#include "dist.h"
#include "kernels/conv_dnnl.h"
#include "kernels/isa.h"
#include "layers/conv.h"
#include "xxh64.h"

/* ---- checkpoints ---- */

void dt_train_add_i64(dt_ck_writer *w, const char *name, int64_t v)
{
    dt_ck_add_copy(w, name, DT_CK_I64, 0, NULL, &v);
}

void dt_train_attr_cwd(dt_ck_writer *w)
{
    char cwd[4096];
    dt_ck_attr(w, "cwd", getcwd(cwd, sizeof cwd) ? cwd : "");
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
void dt_train_add_model(dt_ck_writer *w, const dt_net *net, const float *param)
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
void dt_train_register_state(dt_trainer *t)
{
    dt_state *st = &t->state;
    dt_net *net = t->net;
    const int64_t two[1] = {2}, three[1] = {3}, four[1] = {4};
    const int64_t hdims[2] = {t->cfg->epochs, DT_EPOCH_COLS};
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
    dt_state_add(st, "train/epoch_sums", DT_CK_F64, 1, four, t->io.sums, DT_STATE_RANK0, 0);
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
    memcpy(t->io.sums, t->epoch_sums, sizeof t->io.sums);
    dt_dist_sum(t->io.sums, 4, DT_PHASE_CHECKPOINT, t->comm);
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
    for (int k = 0; k < 4; k++)
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
    char *text = dt_config_text(cfg);
    dt_ck_attr(w, "config", text);
    free(text);
    dt_ck_attr_versions(w);
    dt_train_attr_cwd(w);
    dt_ck_attr(w, "model", net->model);
    dt_ck_attr(w, "data", cfg->data_name);
    dt_ck_attrf(w, "input", "%dx%dx%d", net->in_c, net->in_h, net->in_w);
    dt_ck_attr(w, "optim", dt_optim_kind_name(cfg->op.kind));
    dt_ck_attrf(w, "world_size", "%d", t->world);
    dt_ck_attrf(w, "global_batch", "%d", t->batch * t->world);
    dt_ck_attrf(w, "seed", "%lld", (long long)cfg->seed);
    dt_ck_attrf(w, "step", "%lld", (long long)t->step);
    dt_ck_attrf(w, "epochs_done", "%lld", (long long)t->epoch);
    dt_ck_attr(w, "kernels_isa", dt_kern_get()->name);
    char conv[96];
    dt_conv_where(t->net, cfg->precision == DT_BF16, conv, sizeof conv);
    dt_ck_attrf(w, "kernels_conv", "%s: %s", dt_dnnl_conv_backend_name(), conv);
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
    if (!dt_train_has_dir(t->cfg->ckpt_dir))
        return DT_OK;
    dt_dist_arrive(DT_PHASE_CHECKPOINT, t->comm);
    io_pack(t); /* collective: the epoch's partial sums and every rank's stream counters */
    int rc = t->rank == 0 ? write_checkpoint(t, why) : DT_OK;
    /* only rank 0 writes: its outcome is everyone's */
    int64_t shared[2] = {t->last_ckpt, rc != 0};
    dt_dist_bcast_bytes(shared, sizeof shared, DT_PHASE_CHECKPOINT, t->comm);
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
    /* the kernels that wrote it (none before issue 12) */
    const char *isa = dt_ck_get_attr(r, "kernels_isa");
    snprintf(t->ckpt_isa, sizeof t->ckpt_isa, "%s", isa ? isa : "");
    const char *conv = dt_ck_get_attr(r, "kernels_conv");
    snprintf(t->ckpt_conv, sizeof t->ckpt_conv, "%s", conv ? conv : "");
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
        if (!dt_train_has_dir(cfg->ckpt_dir))
            return dt_err("ckpt.resume = auto needs ckpt.dir (the folder to look in)");
        char report[4096];
        int64_t st;
        int r = dt_ck_find_latest_if(cfg->ckpt_dir, path, size, &st, report, sizeof report,
                                     try_load, &ctx);
        if (r < 0)
            rc = DT_ERR;
        dt_progress_resume_report(&t->prog, report);
        *found = r == 1;
        /* checkpoints that all fail to load (another dtrain's format, damage): starting from
         * scratch would write over them, so the run stops and says so */
        if (r == 0 && report[0])
            return dt_err("ckpt.dir %s holds checkpoints but none can be resumed (see the skipped "
                          "lines): not starting from scratch over them; move them away or use "
                          "another ckpt.dir",
                          cfg->ckpt_dir);
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
int dt_train_resume(dt_trainer *t, int *resumed)
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
    if (t->rank == 0 && t->ckpt_isa[0] && strcmp(t->ckpt_isa, dt_kern_get()->name) != 0)
        dt_progress_note(&t->prog,
                         "note: the checkpoint was written with kernels %s, this run uses %s: "
                         "the continuation is not bitwise what an uninterrupted run on %s gives",
                         t->ckpt_isa, dt_kern_get()->name, t->ckpt_isa);
    /* which convolutions ran on oneDNN (kernels.conv) changes the bits as the ISA does; the
     * backend's name alone does not (auto and dtrain both keep lenet5's on dtrain's kernels) */
    char conv[96];
    const char *was = strstr(t->ckpt_conv, ": ");
    dt_conv_where(t->net, t->cfg->precision == DT_BF16, conv, sizeof conv);
    if (t->rank == 0 && was && strcmp(was + 2, conv) != 0)
        dt_progress_note(&t->prog,
                         "note: the checkpoint was written with %s (kernels.conv = "
                         "%.*s), this run has %s (kernels.conv = %s): the continuation is not "
                         "bitwise what an uninterrupted run gives",
                         was + 2, (int)(was - t->ckpt_conv), t->ckpt_conv, conv,
                         dt_dnnl_conv_backend_name());
    *resumed = 1;
    return DT_OK;
}

/* ---- SWA evaluation ---- */

int dt_train_init_state_modules(dt_trainer *t)
{
    const dt_config *cfg = t->cfg;
    dt_net *net = t->net;
    /* the optimizer, with weight decay per tensor (Bag of Tricks: none on biases and BN
     * parameters) */
    dt_optim_segment *segs = dt_xmalloc((size_t)net->nparams + 1, sizeof *segs);
    for (int i = 0; i < net->nparams; i++)
        segs[i] = (dt_optim_segment){net->params[i].off, net->params[i].numel,
                                     !(cfg->no_decay_bias_bn && net->params[i].no_decay)};
    int rc = dt_optim_init(&t->opt, &cfg->op, net->numel, segs, net->nparams);
    free(segs);
    if (rc != 0)
        return rc;
    dt_swa_init(&t->swa, (dt_swa_mode)cfg->swa_mode, cfg->swa_per_epoch, cfg->swa_start,
                cfg->swa_freq, cfg->swa_lr, cfg->swa_anneal, !cfg->swa_anneal_linear,
                cfg->swa_decay, net->numel, t->rank == 0);
    double scale;
    int dynamic;
    if (dt_config_loss_scale(cfg, &scale, &dynamic) != 0)
        return DT_ERR;
    if (scale > 0.0)
        dt_scaler_init(&t->scaler, scale, dynamic, cfg->loss_scale_interval);
    t->hist = dt_xcalloc((size_t)cfg->epochs, sizeof *t->hist);
    return DT_OK;
}

int dt_trainer_check_file(dt_trainer *t, const dt_config *cfg, dt_net *net, dt_ck_reader *r)
{
    memset(t, 0, sizeof *t);
    t->comm = MPI_COMM_SELF;
    t->world = 1;
    t->cfg = cfg;
    t->net = net;
    t->batch = cfg->batch_size;
    if (dt_train_init_state_modules(t) != 0)
        return DT_ERR;
    dt_train_register_state(t);
    if (check_same_run(t, r) != 0 || dt_state_read(&t->state, r) != 0 ||
        check_consistent(t, r) != 0)
        return DT_ERR;
    return DT_OK;
}

void dt_trainer_check_free(dt_trainer *t)
{
    dt_optim_free(&t->opt);
    dt_swa_free(&t->swa);
    dt_state_free(&t->state);
    free(t->io.nbt);
    free(t->hist);
    memset(t, 0, sizeof *t);
}
