/*
 * cmd_train.c - `dtrain train [options]`: data-parallel training of the configured model on the
 * configured dataset, on every rank of MPI_COMM_WORLD. dt_train_on runs one such training on any
 * communicator: `dtrain train` gives it the world, `dtrain sweep` (cmd_sweep.c) each trial's group.
 *
 * Every fallible phase (arguments, data, model) ends in dt_dist_agree, so a bad input makes every
 * rank exit 1 with one message. dt_train_prologue (header.h) runs the LR range test when asked
 * (--lr auto), prints the run header and writes log.dir/config.ini; rank 0 then initializes the
 * weights and broadcasts them; the trainer (train.h) does
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
#include "header.h"
#include "kernels_agree.h"
#include "kernels/isa.h"
#include "net.h"
#include "threads.h"
#include "train.h"

int dt_train_on(const dt_config *config, MPI_Comm comm)
{
    dt_config cfg = *config;
    dt_dataset train, test;
    dt_net *net = NULL;
    int rank;
    MPI_Comm_rank(comm, &rank);
    if (dt_kernels_agree(&cfg, comm) != 0)
        return 1;
    dt_threads_start(cfg.threads, cfg.bind, comm);
    if (cfg.eval_batch_size == 0)
        cfg.eval_batch_size = cfg.batch_size;

    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    int rc = dt_open_data(&cfg, &train, &test);
    if (rc == 0) {
        int max_batch = cfg.batch_size > cfg.eval_batch_size ? cfg.batch_size : cfg.eval_batch_size;
        rc = dt_net_build_for(&net, cfg.model, max_batch, train.c, train.h, train.w);
    }
    if (dt_dist_agree(rc, comm) != 0) {
        dt_net_free(net);
        dt_dataset_free(&train);
        dt_dataset_free(&test);
        return 1;
    }
    /* the range test (--lr auto), the header, log.dir/config.ini (header.h) */
    if (dt_train_prologue(&cfg, net, &train, &test, comm) != 0) {
        dt_net_free(net);
        dt_dataset_free(&train);
        dt_dataset_free(&test);
        return 1;
    }
    if (rank == 0)
        dt_net_init(net, (uint64_t)cfg.seed);
    /* rank 0 initializes, everyone starts from its weights */
    dt_dist_bcast(net->param, net->numel, comm);
    dt_dist_bcast(net->state, net->state_numel, comm); /* BatchNorm running stats */

    dt_trainer t;
    rc = dt_trainer_init(&t, &cfg, net, &train, &test, comm, stdout);
    if (rc == 0)
        rc = dt_trainer_run(&t);
    dt_trainer_free(&t);
    dt_net_free(net);
    dt_dataset_free(&train);
    dt_dataset_free(&test);
    return rc == 0 ? 0 : 1;
}

int dt_cmd_train(int argc, char **argv, int world)
{
    (void)world;
    dt_config cfg;
    int rc = dt_parse_args(&cfg, argc, argv, 2);
    if (dt_dist_agree(rc, MPI_COMM_WORLD) != 0)
        return 1;
    return dt_train_on(&cfg, MPI_COMM_WORLD);
}
