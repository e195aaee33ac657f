/*
 * train.c - see train.h.
 */
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <unistd.h>

#include "common.h"
#include "dist.h"
#include "kernels.h"

/* Whether rank 0's output reaches a terminal. Under Open MPI a rank's stdout is always a pty that
 * mpirun relays, whatever mpirun's own stdout is (measured: isatty(1) is 1 even with `| tail`), so
 * there the answer is whether the launcher's stdout, /proc/<parent>/fd/1, is a terminal. */
static int output_is_terminal(FILE *f)
{
    if (!isatty(fileno(f)))
        return 0;
    if (!getenv("OMPI_COMM_WORLD_SIZE"))
        return 1;
    char link[64], target[256];
    snprintf(link, sizeof link, "/proc/%ld/fd/1", (long)getppid());
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0)
        return 0;
    target[n] = '\0';
    return strncmp(target, "/dev/pts/", 9) == 0 || strncmp(target, "/dev/tty", 8) == 0;
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
    if (dt_dist_agree(rc, comm) != 0)
        return DT_ERR;
    t->steps_per_epoch = dt_sampler_num_batches(&t->sampler, cfg->batch_size);
    t->total_steps = (int64_t)cfg->epochs * t->steps_per_epoch;
    if (cfg->max_steps > 0 && cfg->max_steps < t->total_steps)
        t->total_steps = cfg->max_steps;
    rc = dt_sched_init(&t->sched, cfg->sched, cfg->sched_interval, cfg->lr, cfg->eta_min,
                       cfg->t_max, t->total_steps, cfg->epochs);
    if (dt_dist_agree(rc, comm) != 0)
        return DT_ERR;
    dt_optim_init_sgd(&t->opt, net->numel, cfg->momentum, cfg->dampening, cfg->weight_decay,
                      cfg->nesterov);
    size_t in_size = (size_t)net->in_c * (size_t)net->in_h * (size_t)net->in_w;
    t->x = dt_xmalloc((size_t)net->max_batch * in_size, sizeof *t->x);
    t->y = dt_xmalloc((size_t)net->max_batch, sizeof *t->y);
    t->probs = dt_xmalloc((size_t)net->max_batch * (size_t)net->classes, sizeof *t->probs);
    t->aug.crop_pad = cfg->crop_pad;
    t->aug.flip = cfg->flip;
    t->aug.seed = (uint64_t)cfg->seed;
    t->bar = t->out && (cfg->progress == 2 || (cfg->progress == 1 && output_is_terminal(t->out)));
    return DT_OK;
}

void dt_trainer_free(dt_trainer *t)
{
    if (!t)
        return;
    dt_optim_free(&t->opt);
    dt_sampler_free(&t->sampler);
    free(t->x);
    free(t->y);
    free(t->probs);
    t->x = t->probs = NULL;
    t->y = NULL;
}

double dt_trainer_step(dt_trainer *t, const int64_t *idx, int n, const dt_ctrl *ctrl, int *correct)
{
    dt_net *net = t->net;
    dt_dataset_gather_aug(t->train, idx, n, t->x, t->y, &t->aug, t->epoch);
    const float *logits = dt_net_forward(net, t->x, n, 1);
    double loss = dt_xent_forward(t->probs, logits, t->y, NULL, n, net->classes, correct);
    /* Each rank's loss is its batch mean; ranks hold equal batch sizes (DistributedSampler pads),
     * so the mean of the rank means is the global batch mean, as with DDP. */
    dt_xent_backward(dt_net_dlogits(net), t->probs, t->y, NULL, n, net->classes, (float)n);
    dt_net_backward(net, n);
    dt_dist_average(net->grad, net->numel, t->comm);
    dt_optim_step(&t->opt, net->param, net->grad, ctrl->lr, ctrl->momentum);
    return loss;
}

dt_eval dt_trainer_evaluate(dt_trainer *t, const dt_dataset *ds)
{
    dt_net *net = t->net;
    int B = t->cfg->eval_batch_size;
    int64_t *idx = dt_xmalloc((size_t)B, sizeof *idx);
    double sums[3] = {0, 0, 0}; /* loss * n, correct, n */
    /* rank r takes r, r + W, ...: every sample exactly once over all ranks, no padding */
    int64_t i = t->rank;
    while (i < ds->n) {
        int n = 0;
        for (; n < B && i < ds->n; n++, i += t->world)
            idx[n] = i;
        dt_dataset_gather(ds, idx, n, t->x, t->y);
        const float *logits = dt_net_forward(net, t->x, n, 0);
        int correct = 0;
        double loss = dt_xent_forward(t->probs, logits, t->y, NULL, n, net->classes, &correct);
        sums[0] += loss * n;
        sums[1] += correct;
        sums[2] += n;
    }
    free(idx);
    MPI_Allreduce(MPI_IN_PLACE, sums, 3, MPI_DOUBLE, MPI_SUM, t->comm);
    dt_eval e = {sums[0] / sums[2], sums[1] / sums[2], (int64_t)sums[2]};
    return e;
}

static void draw_bar(dt_trainer *t, int epoch, int64_t b, double loss, double rate)
{
    const int width = 30;
    int64_t total = t->steps_per_epoch;
    int fill = (int)(width * (b + 1) / total);
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    bar[width] = '\0';
    fprintf(t->out, "\r  epoch %d/%d [%s] %3d%%  loss %.4f  %.0f samples/s ", epoch + 1,
            t->cfg->epochs, bar, (int)(100 * (b + 1) / total), loss, rate);
    fflush(t->out);
}

int dt_trainer_run(dt_trainer *t)
{
    const dt_config *cfg = t->cfg;
    dt_net *net = t->net;
    double t_start = dt_now(), train_time = 0.0;
    int64_t train_samples = 0;
    int epochs_run = 0, rc = DT_OK;
    double last_train_loss = NAN;
    dt_eval ev = {NAN, NAN, 0};
    int64_t *batch_idx = dt_xmalloc((size_t)cfg->batch_size, sizeof *batch_idx);
    for (int epoch = 0; epoch < cfg->epochs && t->step < t->total_steps; epoch++) {
        const int64_t *shard = dt_sampler_epoch(&t->sampler, epoch);
        t->epoch = epoch;
        double sums[3] = {0, 0, 0}; /* loss * n, correct, n over this epoch on this rank */
        double e0 = dt_now(), last_draw = 0.0;
        dt_ctrl ctrl = {0};
        for (int64_t b = 0; b < t->steps_per_epoch && t->step < t->total_steps; b++) {
            int64_t lo = b * cfg->batch_size;
            int n = (int)(t->sampler.num_samples - lo < cfg->batch_size
                              ? t->sampler.num_samples - lo
                              : cfg->batch_size);
            memcpy(batch_idx, shard + lo, (size_t)n * sizeof *batch_idx);
            if (t->rank == 0) {
                ctrl.lr = dt_sched_lr(&t->sched, t->step, epoch);
                ctrl.momentum = cfg->momentum;
                ctrl.flags = 0;
            }
            dt_dist_ctrl(&ctrl, t->comm);
            int correct = 0;
            double loss = dt_trainer_step(t, batch_idx, n, &ctrl, &correct);
            sums[0] += loss * n;
            sums[1] += correct;
            sums[2] += n;
            t->step++;
            if (t->bar) {
                double now = dt_now();
                if (now - last_draw > 0.2 || b + 1 == t->steps_per_epoch) {
                    draw_bar(t, epoch, b, sums[0] / sums[2],
                             sums[2] * t->world / (now - e0 > 1e-9 ? now - e0 : 1e-9));
                    last_draw = now;
                }
            }
        }
        double epoch_time = dt_now() - e0;
        train_time += epoch_time;
        MPI_Allreduce(MPI_IN_PLACE, sums, 3, MPI_DOUBLE, MPI_SUM, t->comm);
        train_samples += (int64_t)sums[2];
        last_train_loss = sums[0] / sums[2];
        epochs_run++;
        ev = dt_trainer_evaluate(t, t->test);
        if (!dt_dist_same(dt_dist_fingerprint(net->param, net->numel), t->comm)) {
            rc = dt_err("replicas diverged after epoch %d: parameters differ between ranks",
                        epoch + 1);
            break;
        }
        if (t->out) {
            if (t->bar)
                fprintf(t->out, "\r\033[K");
            fprintf(t->out,
                    "epoch %d/%d  train_loss %.4f  train_acc %.2f  test_loss %.4f  test_acc %.2f  "
                    "lr %.6g  samples/s %.0f  time %.1fs\n",
                    epoch + 1, cfg->epochs, last_train_loss, 100.0 * sums[1] / sums[2], ev.loss,
                    100.0 * ev.acc, ctrl.lr, sums[2] / epoch_time, epoch_time);
            fflush(t->out);
        }
        if (!isfinite(last_train_loss)) {
            rc = dt_err("training diverged: train loss is %g in epoch %d (try a lower optim.lr)",
                        last_train_loss, epoch + 1);
            break;
        }
    }
    free(batch_idx);
    /* every rank took the same branch above (reduced values), so all agree */
    if (dt_dist_agree(rc, t->comm) != 0)
        return DT_ERR;
    double rss = dt_peak_rss_mib();
    MPI_Allreduce(MPI_IN_PLACE, &rss, 1, MPI_DOUBLE, MPI_MAX, t->comm);
    if (t->out) {
        fprintf(t->out,
                "final: epochs=%d steps=%lld train_loss=%.4f test_loss=%.4f test_acc=%.2f "
                "samples_per_s=%.0f wall_s=%.2f max_rss_mib=%.0f\n",
                epochs_run, (long long)t->step, last_train_loss, ev.loss, 100.0 * ev.acc,
                train_time > 0 ? (double)train_samples / train_time : 0.0, dt_now() - t_start,
                rss);
        fflush(t->out);
    }
    return DT_OK;
}
