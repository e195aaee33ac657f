/*
 * check.h - the test harness: CHECK, CHECK_CLOSE, CHECK_TENSOR_CLOSE, and check_finish() printing
 * "N passed, N failed" and returning the exit status.
 *
 * MPI tests call check_finish_mpi(comm): failures are summed over ranks, so every rank exits
 * non-zero when any rank failed, and only rank 0 prints the summary.
 */
#ifndef DT_CHECK_H
#define DT_CHECK_H

#include <math.h>
#include <mpi.h>
#include <stdio.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) {                                                                                \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                        \
        }                                                                                          \
    } while (0)

/* |a - b| <= atol + rtol * |b| */
#define CHECK_CLOSE(a, b, rtol, atol)                                                              \
    do {                                                                                           \
        double a_ = (double)(a), b_ = (double)(b);                                                 \
        if (fabs(a_ - b_) <= (atol) + (rtol)*fabs(b_)) {                                           \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "FAIL %s:%d: %s = %.9g, expected %s = %.9g\n", __FILE__, __LINE__, #a, \
                    a_, #b, b_);                                                                   \
        }                                                                                          \
    } while (0)

/* One check over n elements; reports the worst element. */
static inline int check_tensor_close_at(const float *a, const float *b, long n, double rtol,
                                        double atol, const char *what, const char *file, int line)
{
    long worst = -1;
    double worst_excess = 0.0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double lim = atol + rtol * fabs((double)b[i]);
        if (!(d <= lim) && (worst < 0 || d - lim > worst_excess)) {
            worst = i;
            worst_excess = d - lim;
        }
    }
    if (worst < 0) {
        check_passed++;
        return 1;
    }
    check_failed++;
    fprintf(stderr, "FAIL %s:%d: %s: element %ld is %.9g, expected %.9g (rtol %g, atol %g)\n", file,
            line, what, worst, (double)a[worst], (double)b[worst], rtol, atol);
    return 0;
}
#define CHECK_TENSOR_CLOSE(a, b, n, rtol, atol)                                                    \
    check_tensor_close_at((a), (b), (long)(n), (rtol), (atol), #a " vs " #b, __FILE__, __LINE__)

static inline int check_finish(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, check_passed, check_failed);
    return check_failed ? 1 : 0;
}

static inline int check_finish_mpi(const char *name, MPI_Comm comm)
{
    int counts[2] = {check_passed, check_failed}, rank;
    MPI_Comm_rank(comm, &rank);
    MPI_Allreduce(MPI_IN_PLACE, counts, 2, MPI_INT, MPI_SUM, comm);
    if (rank == 0)
        printf("%s: %d passed, %d failed\n", name, counts[0], counts[1]);
    return counts[1] ? 1 : 0;
}

#endif
