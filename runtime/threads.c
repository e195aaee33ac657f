/* threads.c - the thread count of a rank and the start of its pool, see threads.h. */
#include "threads.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas.h"
#include "common.h"
#include "kernels/tpool.h"

int dt_threads_resolve(int threads, MPI_Comm comm)
{
    cpu_set_t mine;
    CPU_ZERO(&mine);
    if (sched_getaffinity(0, sizeof mine, &mine) != 0 || CPU_COUNT(&mine) < 1) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        CPU_ZERO(&mine);
        for (long i = 0; i < n && i < CPU_SETSIZE; i++)
            CPU_SET((int)i, &mine);
    }
    MPI_Comm node;
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    int nr, me;
    MPI_Comm_size(node, &nr);
    MPI_Comm_rank(node, &me);
    cpu_set_t *all = dt_xmalloc((size_t)nr, sizeof *all);
    MPI_Allgather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE, node);
    int same = 0;
    cpu_set_t cores;
    CPU_ZERO(&cores);
    for (int r = 0; r < nr; r++) {
        same += CPU_EQUAL(&all[r], &mine);
        CPU_OR(&cores, &cores, &all[r]);
    }
    free(all);
    int t = threads;
    if (t <= 0) {
        t = CPU_COUNT(&mine) / same;
        t = t < 1 ? 1 : t;
    }
    /* all ranks of the node together, against the CPUs they may run on (the union of masks) */
    int sum = 0, over[3], worst[3];
    MPI_Allreduce(&t, &sum, 1, MPI_INT, MPI_SUM, node);
    MPI_Comm_free(&node);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    over[0] = sum > CPU_COUNT(&cores) ? sum : 0;
    over[1] = over[0] ? CPU_COUNT(&cores) : 0;
    over[2] = over[0] && online > CPU_COUNT(&cores) ? (int)online : 0; /* bound to fewer */
    MPI_Allreduce(over, worst, 3, MPI_INT, MPI_MAX, comm);
    int rank;
    MPI_Comm_rank(comm, &rank);
    if (worst[0] && rank == 0) {
        fprintf(stderr,
                "dtrain: warning: threads: %d threads on a node with %d CPUs (its ranks "
                "together): oversubscribed, steps will be slow\n",
                worst[0], worst[1]);
        /* the usual cause: mpirun binds each rank to one core unless told otherwise */
        if (worst[2])
            fprintf(stderr,
                    "dtrain: the ranks may run on %d of the node's %d CPUs (their affinity "
                    "masks): mpirun binds a rank to one core by default; give each rank its "
                    "threads' cores with 'mpirun --map-by slot:PE=%d' (or '--bind-to none'), "
                    "under Slurm with --cpus-per-task=%d\n",
                    worst[1], worst[2], t, t);
    }
    return t;
}

int dt_threads_start(int threads, MPI_Comm comm)
{
    const int t = dt_threads_resolve(threads, comm);
    dt_tpool_init(t);
    openblas_set_num_threads(1); /* its sgemm runs in the pool's panels (kernels/gemm.c) */
    return t;
}
