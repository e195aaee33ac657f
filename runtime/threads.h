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
#include <stddef.h>

/* Resolves `threads` (0 = auto) for the calling rank, collective over comm: returns the number to
 * use (>= 1). When more threads than CPUs run on a node (all its ranks together), rank 0 of comm
 * prints one warning line to stderr. */
int dt_threads_resolve(int threads, MPI_Comm comm);

/* `bind` (config key), the pool's threads on CPUs of their own:
 *   DT_BIND_CORES: when the rank's affinity mask holds exactly t x (the node's ranks with that
 *     same mask) CPUs, the k-th such rank (node rank order) takes the mask's CPUs k t .. k t + t - 1
 *     and its thread i (the caller the first) the i-th of them: OpenMP's OMP_PROC_BIND=close over
 *     what the launcher gave the rank. One thread per rank is never bound (placing ranks is the
 *     launcher's: mpirun --bind-to, Slurm --cpu-bind), nor are threads that do not fill the mask.
 *   DT_BIND_AUTO (the default): DT_BIND_CORES when the mask holds fewer CPUs than the node has
 *     online (a launcher gave the rank its CPUs: mpirun --map-by slot:PE=T, Slurm
 *     --cpus-per-task=T), else none: a rank whose mask is the whole machine may share it with
 *     other jobs, and threads bound there could not move away from them.
 *   DT_BIND_NONE: the OS places the threads.
 * Why: a new worker starts on its creator's CPU and the OS places it from there; on the 2-CPU
 * test VM the first ~100 ms of some unbound 2-thread runs were slow and bound runs were not
 * (lenet5, 1 rank x 2 threads: a third of the first 40 steps 2-6x slower, 101-109 ms for those
 * 40 steps against 35 ms bound, 3 runs of 3 at one time; a few minutes later none of 8 unbound
 * runs did it). */
enum { DT_BIND_AUTO = 0, DT_BIND_CORES = 1, DT_BIND_NONE = 2 };

/* dt_threads_resolve, then the pool (dt_tpool_init), bound as `bind` says, and OpenBLAS
 * (openblas_set_num_threads) gets 1; returns the thread count. Collective over comm (a failed
 * binding: one warning from rank 0, the threads run unbound). */
int dt_threads_start(int threads, int bind, MPI_Comm comm);
/* The CPUs the pool's threads are bound to, as "0,1" into buf (len bytes, cut short if it does
 * not fit); returns how many threads are bound (0: none, buf ""). */
int dt_threads_bound(char *buf, size_t len);

#endif
