/*
 * cmd_schedule.c - `dtrain schedule [train options] [--plot FILE.png] [--csv FILE] [--samples N]
 * [--world N]`: the lr and momentum of every optimizer step of the configured run, without
 * training.
 *
 * The values come from the trainer's own code path (train.c dt_trainer_init / dt_trainer_run):
 * the run length is train.epochs x steps per epoch (train.max_steps caps it), a step per epoch per
 * batch of a rank's DistributedSampler shard (sampler.h: ceil(N / W), or floor with drop_last);
 * dt_sched_init gets the same base lr, base momentum (dt_optim_momentum of the configured
 * optimizer) and run length; each step's lr is dt_swa_lr(dt_sched_lr(dt_sched_clock(...))) and its
 * momentum dt_sched_momentum, warmup included. ReduceLROnPlateau reacts to test metrics no dry run
 * has: its lr is shown as if no plateau occurs (the output says so).
 *
 * Output (rank 0): '#' comment lines, then one line per step "step epoch lr momentum" where step
 * counts optimizer steps from 1 and epoch from 0, the columns of the training metrics log
 * (metrics_step.csv), so the two can be overlaid. --csv writes the same rows with a header;
 * --plot draws lr (and momentum on a second axis when it varies) against the step with gnuplot.
 */
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
#include "optim.h"
#include "sched.h"
#include "swa.h"
#include "tools.h"

/* An integer option in [lo, hi]. */
static int parse_int(const char *name, const char *text, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || errno != 0 || v < lo || v > hi)
        return dt_err("%s = '%s': expected an integer in [%lld, %lld]", name, text, (long long)lo,
                      (long long)hi);
    *out = (int64_t)v;
    return DT_OK;
}

/* Number of training samples: the dataset's (its headers; data.limit_train applies). */
static int train_samples(const dt_config *cfg, int64_t *n)
{
    /* the count does not depend on the normalization: data.mean/data.std are not read */
    dt_config c = *cfg;
    snprintf(c.mean, sizeof c.mean, "auto");
    snprintf(c.std, sizeof c.std, "auto");
    dt_dataset ds;
    memset(&ds, 0, sizeof ds);
    if (dt_open_data(&c, &ds, NULL) != 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dt_err_msg());
        dt_dataset_free(&ds);
        return dt_err("%s (or give --samples N instead of opening the data)", msg);
    }
    *n = ds.n;
    dt_dataset_free(&ds);
    return DT_OK;
}

/* A rank's shard length: DistributedSampler's num_samples (sampler.h), as dt_sampler_init. */
static int64_t shard_len(int64_t n, int world, int drop_last)
{
    if (drop_last && n % world != 0)
        return (n - world + world - 1) / world;
    return (n + world - 1) / world;
}

/* One step of the schedule. */
typedef struct sched_row {
    int64_t step, epoch;
    double lr, momentum;
} sched_row;

/* Writes the plot data and script, runs gnuplot. */
static int plot_schedule(const char *png, const sched_row *rows, int64_t n, const dt_config *cfg,
                         int64_t spe)
{
    char data[4096], script[4096];
    int rc = DT_OK;
    FILE *f = dt_tool_temp_file(data, sizeof data, "sched");
    if (!f)
        return DT_ERR;
    double mlo = rows[0].momentum, mhi = rows[0].momentum;
    for (int64_t i = 0; i < n; i++) {
        fprintf(f, "%lld %lld %.17g %.17g\n", (long long)rows[i].step, (long long)rows[i].epoch,
                rows[i].lr, rows[i].momentum);
        mlo = fmin(mlo, rows[i].momentum);
        mhi = fmax(mhi, rows[i].momentum);
    }
    if (ferror(f) | fclose(f)) {
        unlink(data);
        return dt_err("%s: write failed", data);
    }
    FILE *g = dt_tool_temp_file(script, sizeof script, "sched-gp");
    if (!g) {
        unlink(data);
        return DT_ERR;
    }
    fprintf(g, "if (strstrt(' '.GPVAL_TERMINALS.' ', ' pngcairo ') > 0) {\n"
               "  set terminal pngcairo size 960,560\n"
               "} else {\n"
               "  set terminal png size 960,560\n"
               "}\nset output ");
    dt_tool_gp_quote(g, png);
    fprintf(g,
            "\nset title 'dtrain schedule: sched.kind = %s, optim %s, %d epoch%s x %lld steps' "
            "noenhanced\n",
            dt_sched_kind_name(cfg->sp.kind), dt_optim_kind_name(cfg->op.kind), cfg->epochs,
            cfg->epochs > 1 ? "s" : "", (long long)spe);
    fprintf(g,
            "set xlabel 'optimizer step'\nset ylabel 'learning rate'\nset grid\n"
            "set key outside top center horizontal\nset xrange [%lld:%lld]\n",
            (long long)rows[0].step - 1, (long long)rows[n - 1].step);
    /* epoch boundaries, when there are few enough to see */
    if (rows[n - 1].epoch > 0 && rows[n - 1].epoch <= 40)
        for (int64_t e = 1; e <= rows[n - 1].epoch; e++)
            fprintf(g,
                    "set arrow from %lld, graph 0 to %lld, graph 1 nohead dt 2 lw 1.5 lc rgb "
                    "'#999999'\n",
                    (long long)(e * spe), (long long)(e * spe));
    int mom = mhi - mlo > 1e-12;
    if (mom)
        fprintf(g, "set ytics nomirror\nset y2tics\nset y2label 'momentum'\n");
    fprintf(g, "plot ");
    dt_tool_gp_quote(g, data);
    fprintf(g, " using 1:3 with lines lw 2 lc rgb '#1f77b4' title 'lr'");
    if (mom)
        fprintf(g, ", '' using 1:4 axes x1y2 with lines lw 2 lc rgb '#d62728' title 'momentum'");
    fprintf(g, "\nunset output\n");
    if (ferror(g) | fclose(g))
        rc = dt_err("%s: write failed", script);
    if (rc == 0)
        rc = dt_tool_gnuplot(script, png);
    if (rc == DT_TOOL_NO_GNUPLOT) { /* --plot asked for the image: an error, with the way out */
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dt_err_msg());
        rc = dt_err("%s (install gnuplot, e.g. apt-get install gnuplot-nox, or set DT_GNUPLOT to "
                    "its path)",
                    msg);
    }
    unlink(script);
    unlink(data);
    return rc;
}

static int write_csv(const char *path, const sched_row *rows, int64_t n)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return dt_err("--csv %s: cannot create: %s", path, strerror(errno));
    fprintf(f, "step,epoch,lr,momentum\n");
    for (int64_t i = 0; i < n; i++)
        fprintf(f, "%lld,%lld,%.17g,%.17g\n", (long long)rows[i].step, (long long)rows[i].epoch,
                rows[i].lr, rows[i].momentum);
    if (ferror(f) | fclose(f))
        return dt_err("--csv %s: write failed", path);
    return DT_OK;
}

/* The command's options: O_PLOT .. O_WORLD index opts. */
enum { O_PLOT, O_CSV, O_SAMPLES, O_WORLD, O_N };

/* The configuration (train options), our options into opts, the sample count *n (--samples, or
 * the dataset's headers) and the world size *w (--world, or this run's). */
static int schedule_args(int argc, char **argv, int world, dt_tool_opt *opts, dt_config *cfg,
                         int64_t *n, int64_t *w)
{
    char **rest = dt_xmalloc((size_t)argc + 1, sizeof *rest);
    int nrest = 0, rc = dt_tool_split_args(argc, argv, 2, opts, O_N, rest, &nrest);
    if (rc == 0)
        rc = dt_parse_args(cfg, nrest, rest, 2);
    if (rc == 0)
        rc = dt_config_need_lr(cfg, "schedule");
    free(rest);
    *n = 0;
    *w = world;
    if (rc == 0 && opts[O_WORLD].val)
        rc = parse_int("--world", opts[O_WORLD].val, 1, 1000000, w);
    if (rc == 0 && opts[O_SAMPLES].val) {
        rc = parse_int("--samples", opts[O_SAMPLES].val, 1, (int64_t)1e12, n);
        if (cfg->limit_train > 0 && cfg->limit_train < *n)
            *n = cfg->limit_train;
    } else if (rc == 0) {
        rc = train_samples(cfg, n);
    }
    if (rc == 0 && opts[O_PLOT].val && !*opts[O_PLOT].val)
        rc = dt_err("--plot: expected an image file name (FILE.png)");
    return rc;
}

/* The run's length, as dt_trainer_init computes it: steps per epoch *spe and in all *total. */
static int run_length(const dt_config *cfg, int64_t n, int64_t w, int64_t *spe, int64_t *total)
{
    int64_t per_rank = shard_len(n, (int)w, cfg->drop_last);
    if (per_rank <= 0)
        return dt_err("%lld samples cannot fill %lld ranks with train.drop_last", (long long)n,
                      (long long)w);
    *spe = (per_rank + cfg->batch_size - 1) / cfg->batch_size;
    *total = (int64_t)cfg->epochs * *spe;
    if (cfg->max_steps > 0 && cfg->max_steps < *total)
        *total = cfg->max_steps;
    return DT_OK;
}

/* The optimizer (for its base momentum) and the schedule of the run, as dt_trainer_init sets
 * them up. */
static int schedule_init(const dt_config *cfg, int64_t total, dt_optim *opt, dt_sched *sched)
{
    int rc = dt_optim_init(opt, &cfg->op, 1, NULL, 0);
    if (rc == 0)
        rc = dt_sched_init(sched, &cfg->sp, cfg->op.lr, dt_optim_momentum(opt),
                           cfg->sp.per_epoch ? cfg->epochs : total);
    if (rc == 0 && dt_sched_cycles_momentum(sched) && !dt_optim_kind_has_momentum(cfg->op.kind))
        rc = dt_err("sched.cycle_momentum: optim.name = %s has no momentum to cycle (set "
                    "sched.cycle_momentum = false)",
                    dt_optim_kind_name(cfg->op.kind));
    return rc;
}

/* dt_trainer_run's loop, without the training: the lr and momentum of each of the total steps
 * (malloc'd). */
static sched_row *schedule_rows(const dt_config *cfg, dt_sched *sched, int64_t spe, int64_t total)
{
    dt_swa swa;
    dt_swa_init(&swa, (dt_swa_mode)cfg->swa_mode, cfg->swa_per_epoch, cfg->swa_start, cfg->swa_freq,
                cfg->swa_lr, cfg->swa_anneal, !cfg->swa_anneal_linear, cfg->swa_decay, 1, 0);
    sched_row *rows = dt_xmalloc((size_t)total, sizeof *rows);
    int64_t step = 0;
    for (int64_t epoch = 0; epoch < cfg->epochs && step < total; epoch++)
        for (int64_t b = 0; b < spe && step < total; b++) {
            int64_t clock = dt_sched_clock(sched, step, epoch);
            double lr = dt_sched_lr(sched, clock);
            sched_row *r = &rows[step];
            r->lr = dt_swa_lr(&swa, swa.per_epoch ? epoch : step, lr);
            r->momentum = dt_sched_momentum(sched, clock);
            r->epoch = epoch;
            r->step = ++step;
        }
    dt_swa_free(&swa);
    return rows;
}

/* Rank 0: the '#' header lines and one line per step. */
static int print_rows(const dt_config *cfg, const dt_optim *opt, const sched_row *rows,
                      int64_t total, int64_t spe, int64_t n, int64_t w)
{
    printf("# dtrain schedule: %lld steps = %d epoch%s x %lld steps/epoch (%lld samples, %lld "
           "rank%s x batch %d)%s\n",
           (long long)total, cfg->epochs, cfg->epochs > 1 ? "s" : "", (long long)spe, (long long)n,
           (long long)w, w > 1 ? "s" : "", cfg->batch_size,
           total < (int64_t)cfg->epochs * spe ? ", capped by train.max_steps" : "");
    printf("# sched.kind = %s on the %s clock, warmup %lld; optim %s lr %g momentum %g",
           dt_sched_kind_name(cfg->sp.kind), cfg->sp.per_epoch ? "epoch" : "step",
           (long long)cfg->sp.warmup_steps, dt_optim_kind_name(cfg->op.kind), cfg->op.lr,
           dt_optim_momentum(opt));
    if (cfg->swa_mode == DT_SWA_AVERAGE && !isnan(cfg->swa_lr))
        printf("; swa.lr %g from %s %lld", cfg->swa_lr, cfg->swa_per_epoch ? "epoch" : "step",
               (long long)cfg->swa_start);
    printf("\n");
    if (cfg->sp.kind == DT_SCHED_PLATEAU)
        printf("# sched.kind = plateau lowers the lr when the test metric stops improving: shown "
               "as if no plateau occurs (the lr only ever drops below this)\n");
    printf("# step epoch lr momentum   (step from 1, epoch from 0, as metrics_step.csv)\n");
    for (int64_t i = 0; i < total; i++)
        printf("%lld %lld %.10g %.10g\n", (long long)rows[i].step, (long long)rows[i].epoch,
               rows[i].lr, rows[i].momentum);
    if (fflush(stdout) != 0)
        return dt_err("stdout: write failed: %s", strerror(errno));
    return DT_OK;
}

/* The whole command on one rank (rank 0 prints, plots and writes). */
static int schedule(int argc, char **argv, int world)
{
    dt_tool_opt opts[] = {
        {"--plot", NULL}, {"--csv", NULL}, {"--samples", NULL}, {"--world", NULL}};
    sched_row *rows = NULL;
    dt_config cfg;
    dt_optim opt;
    dt_sched sched;
    memset(&opt, 0, sizeof opt);
    int64_t n, w, spe = 0, total = 0;
    int rc = schedule_args(argc, argv, world, opts, &cfg, &n, &w);
    if (rc == 0)
        rc = run_length(&cfg, n, w, &spe, &total);
    if (rc == 0)
        rc = schedule_init(&cfg, total, &opt, &sched);
    if (rc != 0 || dt_rank != 0)
        goto done;

    rows = schedule_rows(&cfg, &sched, spe, total);
    rc = print_rows(&cfg, &opt, rows, total, spe, n, w);
    if (rc != 0)
        goto done;
    if (opts[O_CSV].val && (rc = write_csv(opts[O_CSV].val, rows, total)) == 0)
        printf("# csv written to %s\n", opts[O_CSV].val);
    if (rc == 0 && opts[O_PLOT].val && total > 0) {
        rc = plot_schedule(opts[O_PLOT].val, rows, total, &cfg, spe);
        if (rc == 0)
            printf("# plot written to %s\n", opts[O_PLOT].val);
    }
    if (fflush(stdout) != 0 && rc == 0)
        rc = dt_err("stdout: write failed: %s", strerror(errno));
done:
    dt_optim_free(&opt);
    free(rows);
    return rc;
}

int dt_cmd_schedule(int argc, char **argv, int world)
{
    return dt_dist_agree(schedule(argc, argv, world), MPI_COMM_WORLD) == 0 ? 0 : 1;
}
