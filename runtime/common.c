/*
 * common.c - see common.h.
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int dt_rank = -1;

static char err_buf[1024];
static int err_reported; /* dt_err_reported */

void dt_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    fprintf(stderr, "dtrain: rank %d: %s:%d: %s: assertion failed: %s\n", dt_rank, file, line, func,
            expr);
    fflush(stderr);
    int up = 0, down = 0;
    MPI_Initialized(&up);
    MPI_Finalized(&down);
    if (up && !down)
        MPI_Abort(MPI_COMM_WORLD, 134);
    abort();
}

static void die_alloc(size_t n, size_t size, const char *file, int line)
{
    fprintf(stderr, "dtrain: rank %d: %s:%d: cannot allocate %zu x %zu bytes\n", dt_rank, file,
            line, n, size);
    fflush(stderr);
    int up = 0, down = 0;
    MPI_Initialized(&up);
    MPI_Finalized(&down);
    if (up && !down)
        MPI_Abort(MPI_COMM_WORLD, 134);
    abort();
}

void *dt_xmalloc_at(size_t n, size_t size, const char *file, int line)
{
    if (size != 0 && n > SIZE_MAX / size)
        die_alloc(n, size, file, line);
    size_t bytes = n * size;
    if (bytes == 0)
        bytes = 64;
    bytes = (bytes + 63) & ~(size_t)63;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes) != 0)
        die_alloc(n, size, file, line);
    return p;
}

void *dt_xcalloc_at(size_t n, size_t size, const char *file, int line)
{
    void *p = dt_xmalloc_at(n, size, file, line);
    memset(p, 0, n * size);
    return p;
}

void *dt_xgrow(void *p, int n, int *cap, size_t elem)
{
    DT_ASSERT(n >= 0 && n <= *cap);
    if (n < *cap)
        return p;
    int ncap = *cap ? 2 * *cap : 16;
    void *q = dt_xcalloc((size_t)ncap, elem);
    if (n)
        memcpy(q, p, (size_t)n * elem);
    free(p);
    *cap = ncap;
    return q;
}

char *dt_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = dt_xmalloc(n, 1);
    memcpy(p, s, n);
    return p;
}

int dt_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    err_reported = 0;
    return DT_ERR;
}

const char *dt_err_msg(void) { return err_buf; }

void dt_err_clear(void)
{
    err_buf[0] = '\0';
    err_reported = 0;
}

int dt_err_reported(void) { return err_reported; }

void dt_err_mark_reported(void) { err_reported = 1; }

int dt_mkdir_p(const char *dir)
{
    char buf[4096];
    int n = snprintf(buf, sizeof buf, "%s", dir);
    if (n < 0 || (size_t)n >= sizeof buf)
        return dt_err("%s: path too long", dir);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return dt_err("%s: cannot create: %s", buf, strerror(errno));
            *p = '/';
        }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return dt_err("%s: cannot create: %s", buf, strerror(errno));
    return DT_OK;
}

static const char *file_kind(mode_t m)
{
    return S_ISFIFO(m)   ? "a FIFO"
           : S_ISDIR(m)  ? "a directory"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISSOCK(m) ? "a socket"
                         : "not a regular file";
}

int dt_open_regular(const char *path, const char *what)
{
    /* O_NONBLOCK: open(2) of a FIFO without a writer would wait forever */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return dt_err("%s: cannot open: %s%s%s%s", path, strerror(errno), what ? " (expected " : "",
                      what ? what : "", what ? ")" : "");
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return dt_err("%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return dt_err("%s: is %s: expected a regular file%s%s%s", path, file_kind(st.st_mode),
                      what ? " (" : "", what ? what : "", what ? ")" : "");
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        int e = errno;
        close(fd);
        return dt_err("%s: cannot set blocking mode: %s", path, strerror(e));
    }
    return fd;
}

int dt_check_regular_file(const char *path, const char *what)
{
    int fd = dt_open_regular(path, what);
    if (fd < 0)
        return DT_ERR;
    close(fd);
    return DT_OK;
}

double dt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double dt_peak_rss_mib(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0.0;
    return (double)ru.ru_maxrss / 1024.0; /* Linux: KiB */
}
