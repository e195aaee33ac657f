/*
 * common.h - assertions, checked allocation, error reporting and timing shared by all of dtrain.
 *
 * Two kinds of failure (STYLE.md "Errors"):
 *   - bugs: DT_ASSERT, always compiled in, prints rank/file/line and aborts the whole MPI job;
 *   - user/environment errors: a function records ONE message with dt_err() and returns a negative
 *     code. The caller agrees on the outcome over all ranks (dt_dist_agree) and the lowest failing
 *     rank prints the message, so a job prints one clear line and every rank exits non-zero.
 */
#ifndef DT_COMMON_H
#define DT_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define DT_VERSION "0.1.0"

/* `git describe --always --dirty` of the build (build/version.c), "unknown" outside git. */
extern const char *const dt_commit;

/* Return codes: 0 ok, negative on error. */
enum { DT_OK = 0, DT_ERR = -1 };

/* Rank of this process in MPI_COMM_WORLD, -1 before MPI is up. Set by dt_dist_init. */
extern int dt_rank;

#if defined(__GNUC__)
#define DT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define DT_NORETURN __attribute__((noreturn))
#else
#define DT_PRINTF(a, b)
#define DT_NORETURN
#endif

/* Prints "rank R: file:line: func: assertion failed: expr" and aborts every rank (MPI_Abort). */
DT_NORETURN void dt_assert_fail(const char *expr, const char *file, int line, const char *func);
#define DT_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            dt_assert_fail(#cond, __FILE__, __LINE__, __func__);                                   \
    } while (0)

/* Checked allocation: on overflow or out-of-memory aborts naming size and call site. Memory from
 * dt_xmalloc is 64-byte aligned (AVX-512 friendly) and released with free(). */
void *dt_xmalloc_at(size_t n, size_t size, const char *file, int line);
void *dt_xcalloc_at(size_t n, size_t size, const char *file, int line);
#define dt_xmalloc(n, size) dt_xmalloc_at((n), (size), __FILE__, __LINE__)
#define dt_xcalloc(n, size) dt_xcalloc_at((n), (size), __FILE__, __LINE__)
char *dt_xstrdup(const char *s);
/* Growth of an array p of elem-sized entries holding n: returns p when n < *cap, else a copy in
 * a new array of twice the capacity (16 at first, *cap updated, the new entries zeroed) with p
 * freed. Call before appending entry n. */
void *dt_xgrow(void *p, int n, int *cap, size_t elem);

/* Records the error message of this rank (overwrites an earlier one) and returns DT_ERR, so a
 * function can say `return dt_err("%s: bad magic", path);`. */
DT_PRINTF(1, 2) int dt_err(const char *fmt, ...);
/* The message recorded last on this rank ("" if none). */
const char *dt_err_msg(void);
/* Clears the recorded message. */
void dt_err_clear(void);
/* Whether the failure behind the recorded message has been reported already: dt_dist_agree
 * prints a failure once and then marks it reported on every rank, so the outer phases that pass
 * the same failure on (returning DT_ERR without a new message) print nothing more. dt_err()
 * and dt_err_clear() reset the mark. */
int dt_err_reported(void);
void dt_err_mark_reported(void);

/* Creates dir and any missing parents (mode 0777 before umask, as `mkdir -p`); an existing
 * folder is fine. Returns 0, or DT_ERR with a message naming the path (too long, or the first
 * component that cannot be created, with strerror). */
int dt_mkdir_p(const char *dir);

/* Opens path read-only WITHOUT blocking on a FIFO or device (O_NONBLOCK, then fstat) and
 * refuses anything but a regular file: a FIFO, a directory, a device or a socket is an error
 * "PATH: is a FIFO: expected a regular file (WHAT)". `what` names the expected content ("an IDX
 * image file"); NULL leaves the parenthesis out. Returns the descriptor (blocking mode restored,
 * close-on-exec), or DT_ERR with a message naming the path (cannot open: strerror, or the kind). */
int dt_open_regular(const char *path, const char *what);

/* dt_open_regular, then close: for files a library opens by name (HDF5). Returns 0 or DT_ERR. */
int dt_check_regular_file(const char *path, const char *what);

/* *r = a * b; returns 1 when it overflowed size_t (then *r is unspecified). */
static inline int dt_mul_overflow(size_t a, size_t b, size_t *r)
{
    return __builtin_mul_overflow(a, b, r);
}

/* Monotonic wall clock in seconds. */
double dt_now(void);

/* Peak resident set size of this process in MiB. */
double dt_peak_rss_mib(void);

#endif
