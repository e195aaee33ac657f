/*
 * cmd_lrfind.c - `dtrain lr-find [train options] [--min-lr 1e-7] [--max-lr 10] [--steps 100]
 * [--smooth 0.98] [--diverge 4] [--out DIR]`: the learning-rate range test (Smith, "Cyclical
 * Learning Rates for Training Neural Networks", WACV 2017, sec. 3.3; fast.ai's lr_find and
 * torch-lr-finder's LRFinder.range_test with step_mode "exp").
 *
 * From the initial weights (dt_net_init(seed) on rank 0, broadcast), `steps` optimizer steps of
 * real data-parallel training (dt_trainer_step: every rank its DistributedSampler shard, gradients
 * averaged) with the exponential sweep
 *     lr_i = min_lr * (max_lr / min_lr) ^ (i / (steps - 1)),   i = 0 .. steps-1
 * and the configured optimizer at its base momentum (no schedule, no warmup, no SWA). The loss of
 * step i is its forward pass's loss (before the update with lr_i, as fast.ai records it), the mean
 * over ranks. fast.ai's smoothing with bias correction:
 *     avg_i = beta * avg_{i-1} + (1 - beta) * loss_i,  avg_{-1} = 0;  smooth_i = avg_i / (1 - beta^(i+1))
 * The sweep stops after the first step with smooth_i > diverge * min_{j<=i} smooth_j (or a
 * non-finite loss): the loss diverged.
 *
 * Suggestions: fast.ai's four (lr_suggest.h: valley, its default; steep; slide; minimum / 10)
 * over the smoothed losses without the first steps / 10 and the last 5 steps, as Learner.lr_find.
 * Also reported: the lr of the lowest smoothed loss before divergence.
 *
 * Rank 0 writes DIR/lr_find.csv (step,lr,loss,smoothed_loss: one row per step taken, the diverging
 * one included) and DIR/lr_find.png (gnuplot, the four suggestions marked with a legend; skipped
 * with a warning when gnuplot is missing) and prints, last, "lr-find: suggested_lr=X valley=X
 * steep=X slide=X minimum=X min_loss_lr=Y steps=N diverged=yes|no" (suggested_lr: valley).
 *
 * The same test runs inside `dtrain train --lr auto` (dt_lr_auto, lrauto.h).
 */
#include "blas.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "common.h"
#include "config.h"
#include "data.h"
#include "data_open.h"
#include "dist.h"
#include "kernels_agree.h"
#include "kernels/isa.h"
#include "lr_suggest.h"
#include "lrauto.h"
#include "net.h"
#include "optim.h"
#include "sched.h"
#include "swa.h"
#include "tools.h"
#include "threads.h"
#include "train.h"

/* A number option (finite) into *out when given; keeps the default otherwise. */
static int parse_num(const dt_tool_opt *o, double *out)
{
    if (!o->val)
        return DT_OK;
    char *end;
    errno = 0;
    double v = strtod(o->val, &end);
    if (end == o->val || *end != '\0' || errno != 0 || !isfinite(v))
        return dt_err("%s = '%s': expected a number", o->name, o->val);
    *out = v;
    return DT_OK;
}

/* The sweep's settings. */
typedef struct lrf_opts {
    double min_lr, max_lr, smooth, diverge;
    int steps;
    int verbose; /* a line every 10 steps */
    char out[4096];
} lrf_opts;

/* The sweep's record (rank 0). */
typedef struct lrf_result {
    double *lr, *loss, *smooth; /* (steps) */
    int n;                      /* steps taken */
    int diverged;               /* 1: step n-1 diverged */
    double sugg[DT_LR_NSUGG];   /* fast.ai's suggestions (lr_suggest.h), NaN: none */
    int sugg_at[DT_LR_NSUGG];   /* the step each comes from, -1: none */
    int nsugg;                  /* how many exist */
    int best;                   /* index of the lowest smoothed loss before divergence */
} lrf_result;

static int parse_opts(dt_tool_opt *o, const dt_config *cfg, lrf_opts *s)
{
    s->min_lr = 1e-7;
    s->max_lr = 10.0;
    s->smooth = 0.98;
    s->diverge = 4.0;
    s->verbose = 1;
    double steps = 100;
    if (parse_num(&o[0], &s->min_lr) || parse_num(&o[1], &s->max_lr) || parse_num(&o[2], &steps) ||
        parse_num(&o[3], &s->smooth) || parse_num(&o[4], &s->diverge))
        return DT_ERR;
    if (!(s->min_lr > 0))
        return dt_err("--min-lr = %g: expected a number > 0", s->min_lr);
    if (!(s->max_lr > s->min_lr))
        return dt_err("--max-lr = %g: expected a number > --min-lr = %g", s->max_lr, s->min_lr);
    if (!(steps >= 10 && steps <= 1e7 && steps == floor(steps)))
        return dt_err("--steps = %s: expected an integer in [10, 10000000]", o[2].val);
    s->steps = (int)steps;
    if (!(s->smooth >= 0 && s->smooth < 1))
        return dt_err("--smooth = %g: expected a number in [0, 1) (0: no smoothing)", s->smooth);
    if (!(s->diverge > 1))
        return dt_err("--diverge = %g: expected a number > 1", s->diverge);
    const char *out = o[5].val ? o[5].val : strcmp(cfg->log_dir, "none") != 0 ? cfg->log_dir : ".";
    if (!*out)
        return dt_err("--out: expected a folder");
    int n = snprintf(s->out, sizeof s->out, "%s", out);
    if (n < 0 || (size_t)n >= sizeof s->out - 32)
        return dt_err("--out %s: path too long", out);
    return DT_OK;
}

/* Rank 0: lr_find.csv. */
static int write_csv(const char *path, const lrf_result *r)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return dt_err("%s: cannot create: %s", path, strerror(errno));
    fprintf(f, "step,lr,loss,smoothed_loss\n");
    for (int i = 0; i < r->n; i++)
        fprintf(f, "%d,%.17g,%.17g,%.17g\n", i + 1, r->lr[i], r->loss[i], r->smooth[i]);
    if (ferror(f) | fclose(f))
        return dt_err("%s: write failed", path);
    return DT_OK;
}

/* The marker style of each suggestion on the plot: point type and colour. */
static const struct {
    int pt;
    const char *color, *what;
} marks[DT_LR_NSUGG] = {
    {7, "#d62728", "middle of the longest descent; fast.ai default"},
    {5, "#ff7f0e", "steepest slope"},
    {13, "#9467bd", "slide rule"},
    {9, "#2ca02c", "lowest loss / 10"},
};

/* The smoothed loss at lr x on the record (the step whose lr is nearest below x). */
static double loss_at(const lrf_result *r, double x)
{
    int k = 0;
    while (k + 1 < r->n && r->lr[k + 1] <= x)
        k++;
    return r->smooth[k];
}

/* The plot's y range: the curves before divergence, the top from the smoothed loss only (a raw
 * loss spike would flatten everything else). */
static void y_range(const lrf_result *r, double *lo_out, double *hi_out)
{
    int end = r->diverged ? r->n - 1 : r->n;
    if (end < 1)
        end = r->n;
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < end; i++) {
        if (isfinite(r->smooth[i])) {
            lo = fmin(lo, r->smooth[i]);
            hi = fmax(hi, r->smooth[i]);
        }
        if (isfinite(r->loss[i]))
            lo = fmin(lo, r->loss[i]);
    }
    if (!(hi > lo)) {
        lo = isfinite(lo) ? lo - 1 : 0;
        hi = isfinite(hi) ? hi + 1 : 1;
    }
    double pad = 0.08 * (hi - lo);
    *lo_out = lo - pad;
    *hi_out = hi + pad;
}

/* Rank 0: lr_find.png from the CSV (smoothed and raw loss against lr, log x, each suggestion a
 * dashed line and a point with its legend entry). Returns 0, DT_TOOL_NO_GNUPLOT or DT_ERR
 * (dt_tool_gnuplot). */
static int plot(const char *csv, const char *png, const lrf_result *r, const dt_config *cfg,
                int world)
{
    char script[4096];
    FILE *g = dt_tool_temp_file(script, sizeof script, "lrfind-gp");
    if (!g)
        return DT_ERR;
    double lo, hi;
    y_range(r, &lo, &hi);
    fprintf(g, "if (strstrt(' '.GPVAL_TERMINALS.' ', ' pngcairo ') > 0) {\n"
               "  set terminal pngcairo size 960,600\n"
               "} else {\n"
               "  set terminal png size 960,600\n"
               "}\nset output ");
    dt_tool_gp_quote(g, png);
    fprintf(g,
            "\nset title 'dtrain lr-find: %s on %s, optim %s, %d rank%s x batch %d, %d steps%s' "
            "noenhanced\n",
            cfg->model, cfg->data_name, dt_optim_kind_name(cfg->op.kind), world,
            world > 1 ? "s" : "", cfg->batch_size, r->n, r->diverged ? " (diverged)" : "");
    fprintf(g,
            "set datafile separator ','\nset logscale x\nset format x '%%.0e'\n"
            "set xlabel 'learning rate'\nset ylabel 'training loss'\nset grid\n"
            "set key top left Left reverse opaque box\nset yrange [%.9g:%.9g]\nset xrange "
            "[%.9g:%.9g]\n",
            lo, hi, r->lr[0], r->lr[r->n - 1]);
    for (int k = 0; k < DT_LR_NSUGG; k++)
        if (r->sugg_at[k] >= 0)
            fprintf(g, "set arrow from %.9g, graph 0 to %.9g, graph 1 nohead dt 2 lc rgb '%s'\n",
                    r->sugg[k], r->sugg[k], marks[k].color);
    fprintf(g, "plot ");
    dt_tool_gp_quote(g, csv);
    fprintf(g, " skip 1 using 2:3 with lines lc rgb '#bbbbbb' title 'loss', '' skip 1 using 2:4 "
               "with lines lw 2 lc rgb '#1f77b4' title 'smoothed loss'");
    for (int k = 0; k < DT_LR_NSUGG; k++)
        if (r->sugg_at[k] >= 0)
            fprintf(g, ", '-' using 1:2 with points pt %d ps 1.8 lc rgb '%s' title '%s %.3g (%s)'",
                    marks[k].pt, marks[k].color, dt_lr_suggest_name(k), r->sugg[k], marks[k].what);
    fprintf(g, "\n");
    for (int k = 0; k < DT_LR_NSUGG; k++)
        if (r->sugg_at[k] >= 0)
            fprintf(g, "%.17g,%.17g\ne\n", r->sugg[k], loss_at(r, r->sugg[k]));
    fprintf(g, "unset output\n");
    int rc = DT_OK;
    if (ferror(g) | fclose(g))
        rc = dt_err("%s: write failed", script);
    if (rc == DT_OK)
        rc = dt_tool_gnuplot(script, png);
    unlink(script);
    return rc;
}

/* The sweep; every rank runs it, rank 0 keeps the record in r. Returns 0 or DT_ERR (a
 * pre-emption signal), not yet agreed. */
static int sweep(dt_trainer *t, const lrf_opts *s, lrf_result *r, int world)
{
    const int64_t *shard = NULL;
    int64_t epoch = 0, pos = 0;
    int64_t *idx = dt_xmalloc((size_t)t->batch, sizeof *idx);
    double avg = 0.0, best = INFINITY, momentum = dt_optim_momentum(&t->opt);
    const double ratio = s->max_lr / s->min_lr;
    int rc = DT_OK, stop = 0;
    for (int i = 0; i < s->steps; i++) {
        dt_ctrl ctrl = {0};
        /* rank 0 decides (its record) and every rank follows: no rank leaves the loop alone */
        ctrl.lr = s->min_lr * pow(ratio, (double)i / (double)(s->steps - 1));
        ctrl.momentum = momentum;
        ctrl.flags = stop ? DT_CTRL_STOP : 0;
        dt_dist_ctrl(&ctrl, t->comm);
        if (ctrl.flags & DT_CTRL_STOP) {
            if (ctrl.signal)
                rc = dt_err("lr-find: stopped at step %d by signal %d", i, (int)ctrl.signal);
            break;
        }
        /* the shard in batches, epoch after epoch (the sweep may outlast one epoch) */
        if (!shard || pos >= t->sampler.shard_len) {
            if (shard)
                epoch++;
            shard = dt_sampler_epoch(&t->sampler, epoch);
            pos = 0;
        }
        int n =
            (int)(t->sampler.shard_len - pos < t->batch ? t->sampler.shard_len - pos : t->batch);
        memcpy(idx, shard + pos, (size_t)n * sizeof *idx);
        pos += n;
        t->epoch = epoch;
        int correct = 0;
        double loss = dt_trainer_step(t, idx, n, &ctrl, &correct);
        t->step++;
        /* equal batch sizes on every rank (the sampler pads): the mean of the rank means is the
         * global batch mean */
        MPI_Allreduce(MPI_IN_PLACE, &loss, 1, MPI_DOUBLE, MPI_SUM, t->comm);
        loss /= world;
        if (t->rank != 0)
            continue;
        /* fast.ai: exponentially weighted average, bias-corrected */
        avg = s->smooth * avg + (1.0 - s->smooth) * loss;
        double sm = avg / (1.0 - pow(s->smooth, i + 1));
        r->lr[i] = ctrl.lr;
        r->loss[i] = loss;
        r->smooth[i] = sm;
        r->n = i + 1;
        if (sm < best)
            best = sm;
        if (!isfinite(sm) || sm > s->diverge * best) {
            r->diverged = 1;
            stop = 1;
        }
        if (t->out && s->verbose && ((i + 1) % 10 == 0 || i == 0 || stop)) {
            fprintf(t->out, "step %4d/%d  lr %-11.4g loss %-10.4f smoothed %.4f%s\n", i + 1,
                    s->steps, ctrl.lr, loss, sm, stop ? "  (diverged)" : "");
            fflush(t->out);
        }
    }
    free(idx);
    return rc;
}

/* Rank 0: fast.ai's suggestions and the lowest-loss lr from the record. */
static void suggest(lrf_result *r, const lrf_opts *s)
{
    int end = r->diverged ? r->n - 1 : r->n;
    r->best = 0;
    for (int i = 1; i < end; i++)
        if (r->smooth[i] < r->smooth[r->best])
            r->best = i;
    r->nsugg = dt_lr_suggest(r->lr, r->smooth, r->n, s->steps, r->sugg, r->sugg_at);
}

/* Rank 0: one line per suggestion on f, with `prefix`. */
static void print_suggestions(FILE *f, const char *prefix, const lrf_result *r)
{
    for (int k = 0; k < DT_LR_NSUGG; k++) {
        if (r->sugg_at[k] < 0)
            continue;
        fprintf(f, "%s%-8s %-10.4g (step %d, smoothed loss %.4f; %s)\n", prefix,
                dt_lr_suggest_name(k), r->sugg[k], r->sugg_at[k] + 1, r->smooth[r->sugg_at[k]],
                marks[k].what);
    }
}

/* The train options into cfg, ours into s; rank 0 creates the output folder. Not collective. */
static int lrfind_args(int argc, char **argv, dt_config *cfg, lrf_opts *s)
{
    dt_tool_opt opts[] = {{"--min-lr", NULL}, {"--max-lr", NULL},  {"--steps", NULL},
                          {"--smooth", NULL}, {"--diverge", NULL}, {"--out", NULL}};
    char **rest = dt_xmalloc((size_t)argc + 1, sizeof *rest);
    int nrest = 0;
    int rc =
        dt_tool_split_args(argc, argv, 2, opts, (int)(sizeof opts / sizeof opts[0]), rest, &nrest);
    if (rc == 0)
        rc = dt_parse_args(cfg, nrest, rest, 2);
    free(rest);
    if (rc == 0)
        rc = parse_opts(opts, cfg, s);
    if (rc == 0 && dt_rank == 0)
        rc = dt_mkdir_p(s->out);
    return rc;
}

/* The trainer's configuration: it runs only dt_trainer_step, so no schedule, SWA, checkpoints,
 * resume or metrics log (the sweep's lr comes per step; its record is lr_find.csv). */
static void trainer_config(dt_config *tc)
{
    tc->eval_batch_size = tc->batch_size;
    dt_sched_params_defaults(&tc->sp, DT_SCHED_CONSTANT);
    tc->swa_mode = DT_SWA_OFF;
    snprintf(tc->ckpt_dir, sizeof tc->ckpt_dir, "none");
    snprintf(tc->resume, sizeof tc->resume, "none");
    snprintf(tc->log_dir, sizeof tc->log_dir, "none");
    tc->ckpt_every_epoch = 0;
    tc->ckpt_every_steps = 0;
    tc->stop_at_step = 0;
    tc->max_steps = 0;
    tc->progress = 0;
    /* optim.lr = auto: not read (the sweep gives each step's lr); the optimizer's init checks it */
    if (isnan(tc->op.lr))
        tc->op.lr = 1e-3;
    tc->lr_auto = 0;
}

/* The training split and the net (collective: agreed); rank 0 prints the header. */
static int lrfind_setup(const dt_config *tc, const lrf_opts *s, int world, dt_dataset *train,
                        dt_net **net)
{
    memset(train, 0, sizeof *train);
    int rc = dt_open_data(tc, train, NULL);
    if (rc == 0)
        rc = dt_net_build_for(net, tc->model, tc->batch_size, train->c, train->h, train->w);
    if (dt_dist_agree(rc, MPI_COMM_WORLD) != 0)
        return DT_ERR;
    if (dt_rank == 0) {
        printf("# dtrain lr-find: model %s, data %s (%lld samples), %d rank%s x batch %d, optim "
               "%s\n# lr %g .. %g over %d steps (exponential), smoothing %g, stop when smoothed "
               "loss > %g x best\n",
               tc->model, train->name, (long long)train->n, world, world > 1 ? "s" : "",
               tc->batch_size, dt_optim_kind_name(tc->op.kind), s->min_lr, s->max_lr, s->steps,
               s->smooth, s->diverge);
        char kern[96];
        printf("# kernels: %s\n", dt_kern_describe(dt_kern_get(), kern, (int)sizeof kern));
        fflush(stdout);
    }
    return DT_OK;
}

/* Rank 0: lr_find.csv and .png into s->out (a missing gnuplot is a warning). */
static int write_files(const lrf_result *r, const lrf_opts *s, const dt_config *tc, int world,
                       const char *prefix)
{
    char csv[4160], png[4160];
    snprintf(csv, sizeof csv, "%s/lr_find.csv", s->out);
    snprintf(png, sizeof png, "%s/lr_find.png", s->out);
    if (write_csv(csv, r) != 0)
        return DT_ERR;
    printf("%swrote %s\n", prefix, csv);
    int g = plot(csv, png, r, tc, world);
    if (g == DT_OK)
        printf("%swrote %s\n", prefix, png);
    else if (g == DT_TOOL_NO_GNUPLOT)
        fprintf(stderr,
                "dtrain: warning: %s: %s, no plot drawn (install gnuplot, e.g. "
                "apt-get install gnuplot-nox)\n",
                png, dt_err_msg());
    else
        return DT_ERR;
    return DT_OK;
}

/* Rank 0, after the sweep: the suggestions, lr_find.csv and .png, the last line. */
static int report(lrf_result *r, const lrf_opts *s, const dt_config *tc, int world)
{
    if (r->diverged)
        printf("lr-find: the loss diverged at step %d (lr %.4g): smoothed loss %.4g > %g x "
               "best %.4g; sweep stopped\n",
               r->n, r->lr[r->n - 1], r->smooth[r->n - 1], s->diverge, r->smooth[r->best]);
    if (r->nsugg == 0)
        printf("lr-find: warning: too few steps between the first 10%% of the sweep and the "
               "last 5 before the end or divergence to suggest an lr (lower --min-lr or "
               "--max-lr, or raise --steps)\n");
    print_suggestions(stdout, "lr-find: ", r);
    if (write_files(r, s, tc, world, "lr-find: ") != 0)
        return DT_ERR;
    printf("lr-find: suggested_lr=%.4g", r->sugg[DT_LR_VALLEY]);
    for (int k = 0; k < DT_LR_NSUGG; k++)
        printf(" %s=%.4g", dt_lr_suggest_name(k), r->sugg[k]);
    printf(" min_loss_lr=%.4g steps=%d diverged=%s\n", r->lr[r->best], r->n,
           r->diverged ? "yes" : "no");
    if (fflush(stdout) != 0)
        return dt_err("stdout: write failed: %s", strerror(errno));
    return DT_OK;
}

static void result_free(lrf_result *r)
{
    free(r->lr);
    free(r->loss);
    free(r->smooth);
}

/* The range test proper on every rank of comm: net's weights from tc->seed (rank 0 initializes,
 * everyone receives), the sweep, rank 0's record and suggestions in r (allocated here; free with
 * result_free). out: rank 0's stream for the trainer, NULL elsewhere. Collective: 0 or DT_ERR on
 * every rank. */
static int range_test(const dt_config *tc, const lrf_opts *s, dt_net *net, const dt_dataset *train,
                      MPI_Comm comm, FILE *out, lrf_result *r)
{
    int rank, world;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &world);
    memset(r, 0, sizeof *r);
    if (rank == 0) {
        r->lr = dt_xmalloc((size_t)s->steps, sizeof *r->lr);
        r->loss = dt_xmalloc((size_t)s->steps, sizeof *r->loss);
        r->smooth = dt_xmalloc((size_t)s->steps, sizeof *r->smooth);
        dt_net_init(net, (uint64_t)tc->seed);
    }
    dt_dist_bcast(net->param, net->numel, comm);
    dt_dist_bcast(net->state, net->state_numel, comm); /* BatchNorm running stats */
    /* the test split is never evaluated: the training set stands in for it */
    dt_trainer t;
    int rc = dt_trainer_init(&t, tc, net, train, train, comm, out);
    if (rc == 0)
        rc = dt_dist_agree(sweep(&t, s, r, world), comm);
    dt_trainer_free(&t);
    if (rc == 0 && rank == 0)
        suggest(r, s);
    return rc;
}

/* The whole command; returns the exit status (every failure agreed over the ranks once). */
static int lrfind(int argc, char **argv, int world)
{
    dt_config cfg;
    lrf_opts s;
    if (dt_dist_agree(lrfind_args(argc, argv, &cfg, &s), MPI_COMM_WORLD) != 0 ||
        dt_kernels_agree(&cfg, MPI_COMM_WORLD) != 0)
        return 1;
    dt_threads_start(cfg.threads, cfg.bind, MPI_COMM_WORLD);
    dt_config tc = cfg;
    trainer_config(&tc);

    dt_dataset train;
    dt_net *net = NULL;
    lrf_result r;
    memset(&r, 0, sizeof r);
    int rc = lrfind_setup(&tc, &s, world, &train, &net);
    if (rc == 0)
        rc = range_test(&tc, &s, net, &train, MPI_COMM_WORLD, stdout, &r);
    dt_net_free(net);
    dt_dataset_free(&train);
    if (rc == 0 && dt_rank == 0)
        rc = report(&r, &s, &tc, world);
    else if (rc != 0) /* agreed: the message is out */
        rc = DT_ERR;
    result_free(&r);
    return dt_dist_agree(rc, MPI_COMM_WORLD) == 0 ? 0 : 1;
}

int dt_cmd_lrfind(int argc, char **argv, int world) { return lrfind(argc, argv, world); }

/* Rank 0: the chosen lr (valley), or DT_ERR when the record has none. */
static int choose(const lrf_result *r, const char *key, double *lr)
{
    if (r->sugg_at[DT_LR_VALLEY] < 0)
        return dt_err("%s = auto: the LR range test (%d steps) found no valley to suggest%s: give "
                      "%s a number (dtrain lr-find --steps 200 shows the curve)",
                      key, r->n, r->diverged ? " before the loss diverged" : "", key);
    *lr = r->sugg[DT_LR_VALLEY];
    return DT_OK;
}

int dt_lr_auto(dt_config *cfg, dt_net *net, const dt_dataset *train, MPI_Comm comm)
{
    int rank, world;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &world);
    const char *key = cfg->lr_auto & DT_LR_AUTO_MAX ? "sched.max_lr" : "optim.lr";
    lrf_opts s = {1e-7, 10.0, 0.98, 4.0, 100, 0, ""};
    snprintf(s.out, sizeof s.out, "%s", cfg->log_dir);
    dt_config tc = *cfg;
    trainer_config(&tc);
    if (rank == 0) {
        printf("lr auto: %s = auto: LR range test first (%d steps, lr %g .. %g, as dtrain "
               "lr-find), then training from freshly initialized weights\n",
               key, s.steps, s.min_lr, s.max_lr);
        fflush(stdout);
    }
    lrf_result r;
    int rc = range_test(&tc, &s, net, train, comm, NULL, &r);
    double lr = NAN;
    if (rc == 0 && rank == 0) {
        print_suggestions(stdout, "lr auto:   ", &r);
        rc = choose(&r, key, &lr);
        if (rc == 0 && strcmp(cfg->log_dir, "none") != 0 && dt_mkdir_p(s.out) == 0)
            rc = write_files(&r, &s, &tc, world, "lr auto: ");
        if (rc == 0)
            printf("lr auto: %s = %.4g (valley, fast.ai's default: the middle of the longest "
                   "descent of the smoothed loss; exactly %.17g)\n",
                   key, lr, lr);
        fflush(stdout);
    }
    result_free(&r);
    if (dt_dist_agree(rc, comm) != 0)
        return DT_ERR;
    MPI_Bcast(&lr, 1, MPI_DOUBLE, 0, comm);
    if (cfg->lr_auto & DT_LR_AUTO_MAX)
        cfg->sp.max_lr = lr;
    else
        cfg->op.lr = lr;
    cfg->lr_auto = 0;
    return DT_OK;
}
