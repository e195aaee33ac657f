/*
 * header.c - see header.h.
 */
#include "header.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "dist.h"
#include "kernels/conv_dnnl.h"
#include "kernels/isa.h"
#include "kernels/tpool.h"
#include "layers/conv.h"
#include "lowp.h"
#include "lrauto.h"
#include "optim.h"
#include "sched.h"
#include "threads.h"

static const char *const precision_names[] = {"fp32", "bf16", "fp16"};

void dt_print_run_header(const dt_config *cfg, const dt_net *net, const dt_dataset *train,
                         const dt_dataset *test, int world, FILE *f)
{
    const int threads = dt_tpool_threads();
    char cpus[256], bound[300] = "";
    int placed = 0;
    if (dt_threads_bound(cpus, sizeof cpus, &placed) > 0)
        snprintf(bound, sizeof bound,
                 placed ? " (rank 0's placed on CPUs %s, not bound)" : " (rank 0's on CPUs %s)",
                 cpus);
    fprintf(f, "# dtrain %s: %d rank%s x %d thread%s%s, global batch %d\n", DT_VERSION, world,
            world > 1 ? "s" : "", threads, threads > 1 ? "s" : "", bound, cfg->batch_size * world);
    char kern[96], conv[96];
    fprintf(f, "# kernels: %s", dt_kern_describe(dt_kern_get(), kern, (int)sizeof kern));
    if (dt_conv_where(net, cfg->precision == DT_BF16, conv, sizeof conv))
        fprintf(f, "; %s (kernels.conv = %s)", conv, dt_dnnl_conv_backend_name());
    fprintf(f, "\n");
    if (dt_dist_thread_note())
        fprintf(f, "# %s\n", dt_dist_thread_note());
    if (cfg->log_header == 1) {
        fprintf(f, "# resolved configuration (usable with -c):\n");
        dt_config_print(cfg, f);
        fprintf(f, "# end of configuration\n");
        dt_net_print(net, f);
    } else {
        fprintf(f, "model %s (%s): input %dx%dx%d, %d classes, %zu parameters\n", net->model,
                net->source, net->in_c, net->in_h, net->in_w, net->classes, net->numel);
    }
    fprintf(f, "data %s: %lld train, %lld test samples of %dx%dx%d, %d classes%s\n", train->name,
            (long long)train->n, (long long)test->n, train->c, train->h, train->w, train->classes,
            cfg->crop_pad || cfg->flip ? ", augmented" : "");
    char buf[1024];
    dt_config_summary(cfg, "optim.", buf, sizeof buf);
    fprintf(f, "optim %s: %s\n", dt_optim_kind_name(cfg->op.kind), buf);
    dt_config_summary(cfg, "sched.", buf, sizeof buf);
    fprintf(f, "sched %s%s%s\n", dt_sched_kind_name(cfg->sp.kind), buf[0] ? ": " : "", buf);
    int p = cfg->precision >= 0 && cfg->precision < 3 ? cfg->precision : 0;
    fprintf(f, "run: %d epoch%s, precision %s, logs %s, checkpoints %s\n", cfg->epochs,
            cfg->epochs > 1 ? "s" : "", precision_names[p], cfg->log_dir, cfg->ckpt_dir);
    if (cfg->log_header != 1)
        fprintf(f, "# the full configuration: --print-config%s\n",
                strcmp(cfg->log_dir, "none") != 0 ? ", log.dir/config.ini" : "");
}

/* Rank 0: log.dir/config.ini, the whole resolved configuration (written to a temporary name,
 * then renamed, so a reader never sees half of it). */
static int write_config_ini(const dt_config *cfg)
{
    if (strcmp(cfg->log_dir, "none") == 0)
        return DT_OK;
    if (dt_mkdir_p(cfg->log_dir) != 0)
        return DT_ERR;
    char path[DT_STR_MAX + 32], tmp[DT_STR_MAX + 40];
    snprintf(path, sizeof path, "%s/config.ini", cfg->log_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return dt_err("%s: cannot create: %s", tmp, strerror(errno));
    fprintf(f, "# dtrain %s: the resolved configuration of this run (dtrain train -c %s)\n",
            DT_VERSION, path);
    dt_config_print(cfg, f);
    if (ferror(f) | fclose(f))
        return dt_err("%s: write failed", tmp);
    if (rename(tmp, path) != 0)
        return dt_err("%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    return DT_OK;
}

int dt_train_prologue(dt_config *cfg, dt_net *net, const dt_dataset *train, const dt_dataset *test,
                      MPI_Comm comm)
{
    int rank, world;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &world);
    if (cfg->lr_auto && dt_lr_auto(cfg, net, train, comm) != 0)
        return DT_ERR;
    int rc = DT_OK;
    if (rank == 0) {
        dt_print_run_header(cfg, net, train, test, world, stdout);
        fflush(stdout);
        if (dt_config_warn_ignored(cfg, stderr) > 0)
            fflush(stderr);
        rc = write_config_ini(cfg);
    }
    return dt_dist_agree(rc, comm);
}
