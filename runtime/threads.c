/* threads.c - the thread count of a rank and the start of its pool, see threads.h. */
#include "threads.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas.h"
#include "common.h"
#include "kernels/tpool.h"

/* The CPUs the process may run on: its affinity mask when dtrain first looked (the caller's own
 * mask changes when dt_threads_start binds it), else all online CPUs. */
static cpu_set_t first_mask;
static int have_first;

static void process_mask(cpu_set_t *mine)
{
    if (have_first) {
        *mine = first_mask;
        return;
    }
    CPU_ZERO(mine);
    if (sched_getaffinity(0, sizeof *mine, mine) != 0 || CPU_COUNT(mine) < 1) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        CPU_ZERO(mine);
        for (long i = 0; i < n && i < CPU_SETSIZE; i++)
            CPU_SET((int)i, mine);
    }
    first_mask = *mine;
    have_first = 1;
}

/* dt_threads_resolve, and the rank's mask, how many of the node's ranks have that very mask and
 * how many of them come before this rank (node rank order) */
static int resolve(int threads, MPI_Comm comm, cpu_set_t *mine, int *same, int *before)
{
    process_mask(mine);
    MPI_Comm node;
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    int nr, me;
    MPI_Comm_size(node, &nr);
    MPI_Comm_rank(node, &me);
    cpu_set_t *all = dt_xmalloc((size_t)nr, sizeof *all);
    MPI_Allgather(mine, (int)sizeof *mine, MPI_BYTE, all, (int)sizeof *mine, MPI_BYTE, node);
    *same = 0, *before = 0;
    cpu_set_t cores;
    CPU_ZERO(&cores);
    for (int r = 0; r < nr; r++) {
        const int eq = CPU_EQUAL(&all[r], mine) != 0;
        *same += eq;
        *before += eq && r < me;
        CPU_OR(&cores, &cores, &all[r]);
    }
    free(all);
    int t = threads;
    if (t <= 0) {
        t = CPU_COUNT(mine) / *same;
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

int dt_threads_resolve(int threads, MPI_Comm comm)
{
    cpu_set_t mine;
    int same, before;
    return resolve(threads, comm, &mine, &same, &before);
}

int dt_threads_start(int threads, int bind, MPI_Comm comm)
{
    cpu_set_t mine;
    int same, before;
    const int t = resolve(threads, comm, &mine, &same, &before);
    /* a pool started before may have bound this thread: its threads get the whole mask back */
    if (dt_tpool_bound(NULL) > 0)
        sched_setaffinity(0, sizeof mine, &mine);
    dt_tpool_init(t);
    openblas_set_num_threads(1); /* its sgemm runs in the pool's panels (kernels/gemm.c) */
    /* bound (threads.h): thread i of the rank that comes k-th among the node's ranks with this
     * mask on the mask's CPU k t + i, when the mask holds exactly t CPUs per such rank; auto on
     * a mask of the whole machine: placed there (started on it, not bound), when it holds t CPUs
     * per such rank or more */
    int failed = 0;
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    const int whole = CPU_COUNT(&mine) >= online;
    const int cores = bind == DT_BIND_CORES || (bind == DT_BIND_AUTO && !whole);
    const int place = bind == DT_BIND_AUTO && whole;
    if ((cores || place) && t >= 2 &&
        (cores ? CPU_COUNT(&mine) == t * same : CPU_COUNT(&mine) >= t * same)) {
        int *cpu = dt_xmalloc((size_t)t, sizeof *cpu), n = 0, k = 0;
        for (int c = 0; c < CPU_SETSIZE && n < t; c++)
            if (CPU_ISSET(c, &mine) && k++ >= before * t)
                cpu[n++] = c;
        if (n == t && cores)
            failed = dt_tpool_bind(cpu, &mine) != 0 ? errno : 0;
        else if (n == t)
            dt_tpool_place(cpu, &mine); /* a pin that fails leaves that thread where it is */
        free(cpu);
    }
    int worst = 0, rank;
    MPI_Allreduce(&failed, &worst, 1, MPI_INT, MPI_MAX, comm);
    MPI_Comm_rank(comm, &rank);
    if (worst && rank == 0)
        fprintf(stderr,
                "dtrain: warning: bind: binding the threads to CPUs failed (%s); "
                "they run unbound\n",
                strerror(worst));
    return t;
}

int dt_threads_bound(char *buf, size_t len, int *placed)
{
    int cpu[DT_TPOOL_MAX];
    int n = dt_tpool_bound(cpu);
    *placed = n == 0 && (n = dt_tpool_placed(cpu)) > 0;
    size_t o = 0;
    if (len)
        buf[0] = 0;
    for (int i = 0; i < n && o + 1 < len; i++) {
        const int w = snprintf(buf + o, len - o, "%s%d", i ? "," : "", cpu[i]);
        if (w < 0 || (size_t)w >= len - o)
            break;
        o += (size_t)w;
    }
    return n;
}
