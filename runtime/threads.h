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
 *     --cpus-per-task=T); on the whole machine's mask, which the rank may share with other jobs,
 *     the same CPUs (k t .. k t + t - 1, when the mask holds t CPUs per such rank or more) as a
 *     placement, not a binding (dt_tpool_place): each thread moves to its CPU and gets the whole
 *     mask back at once, and a worker moves back each time it wakes from sleep; the OS may still
 *     move them. The header says "placed on CPUs ..., not bound".
 *   DT_BIND_NONE: the OS places the threads.
 * Why: a worker woken from its futex sleep (the pool sleeps while a rank loads data, evaluates or
 * writes a checkpoint) may be put on its waker's CPU, and the scheduler takes a while to spread
 * the two again. On the 2-CPU test VM, lenet5 at 1 rank x 2 threads: with `none` 3 of 4 runs had
 * ~30 of their first 40 steps 2-5x slower (those 40 steps 103-116 ms against 37-40 ms bound or
 * placed), and 200-step runs ran 96-107 k samples/s against 116-139 k placed (5 interleaved
 * rounds); `cores` and `auto` (placed) did not do it. An earlier session saw the same in one
 * period and not a few minutes later. */
enum { DT_BIND_AUTO = 0, DT_BIND_CORES = 1, DT_BIND_NONE = 2 };

/* dt_threads_resolve, then the pool (dt_tpool_init), bound as `bind` says, and OpenBLAS
 * (openblas_set_num_threads) gets 1; returns the thread count. Collective over comm (a failed
 * binding: one warning from rank 0, the threads run unbound). */
int dt_threads_start(int threads, int bind, MPI_Comm comm);
/* The CPUs the pool's threads are bound to, or placed on (*placed = 1: bind = auto on the whole
 * machine's mask), as "0,1" into buf (len bytes, cut short if it does not fit); returns how many
 * threads are (0: none, buf ""). */
int dt_threads_bound(char *buf, size_t len, int *placed);

#endif
