/*
 * threads.h - how many threads a rank runs (the `threads` key, issue 13) and the start of its
 * thread pool (kernels/tpool.h).
 *
 * threads = auto (the default): the CPUs of the rank's affinity mask (sched_getaffinity: what
 * mpirun --bind-to / --map-by ...:PE=T or Slurm --cpus-per-task gave it), divided among the ranks
 * on the same node that have the same mask (MPI_COMM_TYPE_SHARED), at least 1: unbound ranks
 * (mpirun --bind-to none) split the node's cores instead of each taking all of them - the
 * oversubscription torchrun's OMP_NUM_THREADS=1 default avoids. An integer overrides.
 */
#ifndef DT_THREADS_H
#define DT_THREADS_H

#include <mpi.h>

/* Resolves `threads` (0 = auto) for the calling rank, collective over comm: returns the number to
 * use (>= 1). When more threads than CPUs run on a node (all its ranks together), rank 0 of comm
 * prints one warning line to stderr. */
int dt_threads_resolve(int threads, MPI_Comm comm);

/* dt_threads_resolve, then the pool (dt_tpool_init) and OpenBLAS (openblas_set_num_threads) get
 * that number; returns it. */
int dt_threads_start(int threads, MPI_Comm comm);

#endif
