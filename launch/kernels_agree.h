/*
 * kernels_agree.h - the commands' choice of the kernel instruction set (kernels.isa, issue 12),
 * agreed over the ranks: one table of kernels per process (kernels/isa.h), the same ISA on every
 * rank, since the kernel families of different ISAs may round differently and replicas must stay
 * bitwise equal.
 */
#ifndef DT_LAUNCH_KERNELS_AGREE_H
#define DT_LAUNCH_KERNELS_AGREE_H

#include <mpi.h>

#include "config.h"

/* Collective over comm, after the configuration is parsed and before any kernel runs (train,
 * eval, lr-find). Each rank resolves its ISA (dt_kern_resolve: kernels.isa, else
 * DTRAIN_KERNELS_ISA, else the best its CPU runs); an ISA a rank cannot run, or a bad environment
 * variable, is one message and DT_ERR on every rank (dt_dist_agree). Then every rank selects the
 * lowest of the ranks' ISAs (MPI_Allreduce MIN over the dt_isa order, which every rank runs);
 * when the ranks asked for different ones rank 0 prints one line saying which each end had and
 * what they use. Returns 0 or DT_ERR (reported) on every rank. */
int dt_kernels_agree(const dt_config *cfg, MPI_Comm comm);

#endif
