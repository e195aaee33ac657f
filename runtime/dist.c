/*
 * dist.c - see dist.h.
 */
#include "dist.h"

#include <float.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

int dt_dist_init(int *argc, char ***argv)
{
    int world = 1;
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &dt_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    return world;
}

void dt_dist_finalize(void) { MPI_Finalize(); }

int dt_dist_agree(int rc, MPI_Comm comm)
{
    int rank, world;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &world);
    /* a failure an inner agreement already printed counts as `world`, after every new one */
    int mine = rc == 0 ? INT_MAX : dt_err_reported() ? world : rank, first = INT_MAX;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
    if (first == INT_MAX)
        return DT_OK;
    if (rank == first) {
        const char *msg = dt_err_msg();
        if (!msg[0])
            msg = "failed (no message recorded)";
        if (world > 1)
            fprintf(stderr, "dtrain: error: rank %d: %s\n", rank, msg);
        else
            fprintf(stderr, "dtrain: error: %s\n", msg);
        fflush(stderr);
    }
    dt_err_mark_reported(); /* on every rank: the outer phases print nothing more */
    return DT_ERR;
}

void dt_dist_average(float *g, size_t n, MPI_Comm comm)
{
    int world;
    MPI_Comm_size(comm, &world);
    if (world == 1)
        return;
    /* MPI counts are int: reduce in chunks. */
    const size_t chunk = (size_t)1 << 30;
    for (size_t off = 0; off < n; off += chunk) {
        size_t len = n - off < chunk ? n - off : chunk;
        MPI_Allreduce(MPI_IN_PLACE, g + off, (int)len, MPI_FLOAT, MPI_SUM, comm);
    }
    float inv = 1.0f / (float)world;
    for (size_t i = 0; i < n; i++)
        g[i] *= inv;
}

void dt_grad_sync_init(dt_grad_sync *s, float *g, size_t n, size_t cap, MPI_Comm comm)
{
    memset(s, 0, sizeof *s);
    s->comm = comm;
    MPI_Comm_size(comm, &s->world);
    s->g = g;
    s->n = n;
    s->cap = cap;
    s->started = n;
    if (cap > 0 && s->world > 1) {
        /* every bucket but the last holds >= cap floats, each piece of one <= 2^30: the
         * requests of a step, allocated here (a training step does not allocate) */
        s->maxreq = (int)(n / cap + 2 + (n >> 30) + 1);
        s->req = dt_xmalloc((size_t)s->maxreq, sizeof *s->req);
    }
}

void dt_grad_sync_free(dt_grad_sync *s)
{
    DT_ASSERT(s->nreq == 0);
    free(s->req);
    s->req = NULL;
}

void dt_grad_sync_begin(dt_grad_sync *s)
{
    DT_ASSERT(s->nreq == 0);
    s->started = s->n;
}

/* MPI_Iallreduce of g[lo, hi), in pieces whose counts fit an int */
static void start_slice(dt_grad_sync *s, size_t lo, size_t hi)
{
    const size_t chunk = (size_t)1 << 30;
    for (size_t off = lo; off < hi; off += chunk) {
        const size_t len = hi - off < chunk ? hi - off : chunk;
        DT_ASSERT(s->nreq < s->maxreq);
        MPI_Iallreduce(MPI_IN_PLACE, s->g + off, (int)len, MPI_FLOAT, MPI_SUM, s->comm,
                       &s->req[s->nreq++]);
    }
}

void dt_grad_sync_ready(dt_grad_sync *s, size_t off)
{
    if (s->world == 1 || s->cap == 0)
        return;
    DT_ASSERT(off <= s->started);
    if (s->started - off >= s->cap) {
        start_slice(s, off, s->started);
        s->started = off;
    }
    if (s->nreq) { /* Open MPI progresses nonblocking collectives only inside MPI calls */
        int done;
        MPI_Testall(s->nreq, s->req, &done, MPI_STATUSES_IGNORE);
    }
}

void dt_grad_sync_finish(dt_grad_sync *s)
{
    if (s->world == 1)
        return;
    if (s->nreq == 0) { /* nothing started: one bucket, the classic blocking allreduce */
        dt_dist_average(s->g, s->n, s->comm);
        return;
    }
    if (s->started > 0)
        start_slice(s, 0, s->started);
    MPI_Waitall(s->nreq, s->req, MPI_STATUSES_IGNORE);
    s->nreq = 0;
    s->started = s->n;
    const float inv = 1.0f / (float)s->world;
    for (size_t i = 0; i < s->n; i++)
        s->g[i] *= inv;
}

void dt_dist_bcast(float *p, size_t n, MPI_Comm comm)
{
    const size_t chunk = (size_t)1 << 30;
    for (size_t off = 0; off < n; off += chunk) {
        size_t len = n - off < chunk ? n - off : chunk;
        MPI_Bcast(p + off, (int)len, MPI_FLOAT, 0, comm);
    }
}

static volatile sig_atomic_t pending_signal;

static void on_signal(int sig)
{
    if (!pending_signal)
        pending_signal = sig;
}

void dt_dist_catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

int dt_dist_signal(void) { return (int)pending_signal; }

void dt_dist_ctrl(dt_ctrl *c, MPI_Comm comm)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    /* max over ranks: rank 0's values win against -DBL_MAX, exactly */
    double v[4] = {-DBL_MAX, -DBL_MAX, -DBL_MAX, (double)pending_signal};
    if (rank == 0) {
        v[0] = c->lr;
        v[1] = c->momentum;
        v[2] = (double)c->flags;
    }
    MPI_Allreduce(MPI_IN_PLACE, v, 4, MPI_DOUBLE, MPI_MAX, comm);
    c->lr = v[0];
    c->momentum = v[1];
    c->flags = (int32_t)v[2];
    c->signal = (int32_t)v[3];
    if (c->signal)
        c->flags |= DT_CTRL_STOP;
}

uint64_t dt_dist_fingerprint(const float *p, size_t n)
{
    uint64_t h = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &p[i], sizeof b);
        uint64_t x = (uint64_t)b * 0x9e3779b97f4a7c15ull + i;
        x ^= x >> 29;
        h += x * 0xbf58476d1ce4e5b9ull;
    }
    return h;
}

int dt_dist_same(uint64_t fp, MPI_Comm comm)
{
    unsigned long long v[2] = {fp, ~fp}, r[2];
    MPI_Allreduce(v, r, 2, MPI_UNSIGNED_LONG_LONG, MPI_MAX, comm);
    return r[0] == fp && r[1] == ~fp;
}
