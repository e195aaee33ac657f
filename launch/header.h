/*
 * header.h - what `dtrain train` does between building the net and training: the LR range test
 * when the configuration asks for it (optim.lr = auto, sched.max_lr = auto), then rank 0's run
 * header (a few lines: model, data, ranks x threads, global batch, optimizer, schedule,
 * precision, ISA, where logs and checkpoints go), the warnings about keys the run ignores, and
 * the full resolved configuration written to log.dir/config.ini.
 *
 * Lines that tests and scripts grep keep their format: "# dtrain VERSION: N ranks x T BLAS
 * threads, global batch B", "# kernels: ISA (...)", "model NAME (SOURCE): ... P parameters",
 * "data NAME: ...". log.header = full prints the whole configuration and the layer table too.
 */
#ifndef DT_HEADER_H
#define DT_HEADER_H

#include <mpi.h>

#include "config.h"
#include "data.h"
#include "net.h"

/* Runs the range test when cfg asks for it (collective over comm; cfg's lr or max_lr is set to
 * the suggestion on every rank, and the net's weights are left to the caller to initialize), then
 * prints the header on rank 0 (out: rank 0's stream) and writes log.dir/config.ini. Returns 0, or
 * DT_ERR on every rank (one message printed). */
int dt_train_prologue(dt_config *cfg, dt_net *net, const dt_dataset *train, const dt_dataset *test,
                      MPI_Comm comm);

/* Rank 0's header lines on f (not collective). */
void dt_print_run_header(const dt_config *cfg, const dt_net *net, const dt_dataset *train,
                         const dt_dataset *test, int world, FILE *f);

#endif
