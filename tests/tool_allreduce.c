/*
 * tool_allreduce.c - what one gradient average costs: dt_grad_sync with the whole gradient as one
 * bucket (what finish does after backward when nothing was started during it), through MPI
 * (MPI_Allreduce behind the watched barrier, times 1/W) and through shared memory (copy in, sum
 * this rank's half, copy the other half out), interleaved rep by rep (mpi, shm, mpi, ...) so a
 * slow phase of a shared machine weighs on both. Every rep starts after an MPI_Barrier (not
 * timed), so both ranks enter together: the figures are the exchange itself, not waiting for
 * a late rank. Rank 0 prints, per path, the median and the 10th percentile over reps (us).
 *
 * usage: mpirun -np 2 tool_allreduce [FLOATS [REPS]]   (default 535818, the mlp's gradient; 300)
 */
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "dist.h"

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *t, int n, double p)
{
    qsort(t, (size_t)n, sizeof *t, cmp);
    return t[(int)(p * (n - 1))];
}

int main(int argc, char **argv)
{
    const int world = dt_dist_init(&argc, &argv);
    const size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 535818;
    const int reps = argc > 2 ? atoi(argv[2]) : 300;
    if (n == 0 || reps <= 0) {
        if (dt_rank == 0)
            fprintf(stderr, "usage: tool_allreduce [FLOATS > 0 [REPS > 0]]\n");
        dt_dist_finalize();
        return 1;
    }
    float *g = dt_xmalloc(n, sizeof *g);
    for (size_t i = 0; i < n; i++)
        g[i] = (float)(i % 97) * 0.25f;
    dt_grad_sync s[2];
    const int mode[2] = {DT_ALLREDUCE_MPI, DT_ALLREDUCE_SHM};
    for (int p = 0; p < 2; p++) {
        dt_grad_sync_init(&s[p], g, n, 0, MPI_COMM_WORLD);
        if (dt_grad_sync_path(&s[p], mode[p]) != DT_OK) {
            fprintf(stderr, "tool_allreduce: %s\n", dt_err_msg());
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
    }
    double *t = dt_xmalloc((size_t)reps * 2, sizeof *t);
    for (int r = 0; r < reps; r++)
        for (int p = 0; p < 2; p++) {
            MPI_Barrier(MPI_COMM_WORLD);
            const double t0 = dt_now();
            dt_grad_sync_begin(&s[p]);
            dt_grad_sync_finish(&s[p]);
            t[p * reps + r] = (dt_now() - t0) * 1e6;
        }
    if (dt_rank == 0)
        for (int p = 0; p < 2; p++) {
            double *v = t + (size_t)p * reps;
            const double med = pct(v, reps, 0.5), p10 = pct(v, reps, 0.1);
            printf("%d ranks, %zu floats (%.2f MB), %s: median %.0f us, p10 %.0f us (%d reps)\n",
                   world, n, (double)n * 4e-6, s[p].path, med, p10, reps);
        }
    for (int p = 0; p < 2; p++)
        dt_grad_sync_free(&s[p]);
    free(t);
    free(g);
    dt_dist_finalize();
    return 0;
}
