/*
 * cmd_train.c - `dtrain train [options]`: data-parallel training of the configured model on the
 * configured dataset, on every rank of MPI_COMM_WORLD.
 *
 * Every fallible phase (arguments, data, model) ends in dt_dist_agree, so a bad input makes every
 * rank exit 1 with one message. Rank 0 prints the resolved configuration (a valid config file),
 * the model and the data, initializes the weights and broadcasts them; the trainer (train.h) does
 * the rest, down to the final line.
 */
#include "blas.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "common.h"
#include "config.h"
#include "data.h"
#include "data_open.h"
#include "dist.h"
#include "kernels_agree.h"
#include "kernels/isa.h"
#include "net.h"
#include "threads.h"
#include "train.h"

int dt_cmd_train(int argc, char **argv, int world)
{
    dt_config cfg;
    dt_dataset train, test;
    dt_net *net = NULL;
    int rc = dt_parse_args(&cfg, argc, argv, 2);
    if (dt_dist_agree(rc, MPI_COMM_WORLD) != 0 || dt_kernels_agree(&cfg, MPI_COMM_WORLD) != 0)
        return 1;
    const int threads = dt_threads_start(cfg.threads, MPI_COMM_WORLD);
    if (cfg.eval_batch_size == 0)
        cfg.eval_batch_size = cfg.batch_size;

    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    rc = dt_open_data(&cfg, &train, &test);
    if (rc == 0) {
        int max_batch = cfg.batch_size > cfg.eval_batch_size ? cfg.batch_size : cfg.eval_batch_size;
        rc = dt_net_build_for(&net, cfg.model, max_batch, train.c, train.h, train.w);
    }
    if (dt_dist_agree(rc, MPI_COMM_WORLD) != 0) {
        dt_dataset_free(&train);
        dt_dataset_free(&test);
        return 1;
    }
    if (dt_rank == 0) {
        printf("# dtrain %s: %d rank%s x %d thread%s, global batch %d\n", DT_VERSION, world,
               world > 1 ? "s" : "", threads, threads > 1 ? "s" : "", cfg.batch_size * world);
        char kern[96];
        printf("# kernels: %s\n", dt_kern_describe(dt_kern_get(), kern, (int)sizeof kern));
        printf("# resolved configuration (usable with -c):\n");
        dt_config_print(&cfg, stdout);
        printf("# end of configuration\n");
        dt_net_print(net, stdout);
        printf("data %s: %lld train, %lld test samples of %dx%dx%d, %d classes%s\n", train.name,
               (long long)train.n, (long long)test.n, train.c, train.h, train.w, train.classes,
               cfg.crop_pad || cfg.flip ? ", augmented" : "");
        fflush(stdout);
        dt_net_init(net, (uint64_t)cfg.seed);
    }
    /* rank 0 initializes, everyone starts from its weights */
    dt_dist_bcast(net->param, net->numel, MPI_COMM_WORLD);
    dt_dist_bcast(net->state, net->state_numel, MPI_COMM_WORLD); /* BatchNorm running stats */

    dt_trainer t;
    rc = dt_trainer_init(&t, &cfg, net, &train, &test, MPI_COMM_WORLD, stdout);
    if (rc == 0)
        rc = dt_trainer_run(&t);
    dt_trainer_free(&t);
    dt_net_free(net);
    dt_dataset_free(&train);
    dt_dataset_free(&test);
    return rc == 0 ? 0 : 1;
}
