/*
 * dist_shm.c - see dist_shm.h.
 *
 * The flags are C11 atomics in the window, written by their owner only (release) and read by
 * the others (acquire): on one node the window is ordinary shared memory, and the release/acquire
 * pairs order the floats written before a flag with the reads after it, as MPI_Win_sync would.
 */
#include "dist_shm.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "the flags in shared memory must be lock-free");

typedef _Atomic uint64_t flag_t;

struct dt_shm {
    MPI_Comm comm, node; /* the ranks; the same, all on this node, in comm's order */
    MPI_Win win;
    int me, world;
    size_t n;
    int maxb;
    /* per rank (world): its flags and floats in the window */
    flag_t **ready; /* (maxb) ready[k] = step: its gradient of bucket k is final */
    flag_t **done;  /* (maxb) done[k] = step: its share of bucket k is averaged everywhere */
    float **buf;    /* (n) its gradient (the trainer's: dt_shm_grad), then the mean */
    /* this step */
    uint64_t gen;
    int nb, nred, ncol; /* buckets published, summed (this rank's share), collected */
    size_t *off, *len;  /* (maxb) bucket k is g[off[k], off[k] + len[k]) */
};

/* a segment: the flags ready[maxb] and done[maxb], then the floats from a 64-byte boundary */
static size_t head_bytes(int maxb)
{
    return (2 * (size_t)maxb * sizeof(flag_t) + 63) & ~(size_t)63;
}

static int count_nodes(MPI_Comm comm, MPI_Comm node)
{
    int nrank, lead, nodes = 0;
    MPI_Comm_rank(node, &nrank);
    lead = nrank == 0;
    MPI_Allreduce(&lead, &nodes, 1, MPI_INT, MPI_SUM, comm);
    return nodes;
}

/* the window on every rank (1 when one failed) */
static int alloc_window(dt_shm *sh, size_t bytes)
{
    MPI_Info info;
    MPI_Info_create(&info);
    /* each segment on its own pages (first touched by its owner: its NUMA node) */
    MPI_Info_set(info, "alloc_shared_noncontig", "true");
    MPI_Comm_set_errhandler(sh->node, MPI_ERRORS_RETURN);
    void *base = NULL;
    int ok =
        MPI_Win_allocate_shared((MPI_Aint)bytes, 1, info, sh->node, &base, &sh->win) == MPI_SUCCESS;
    MPI_Info_free(&info);
    int all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, sh->comm);
    if (!all && ok)
        MPI_Win_free(&sh->win);
    return !all;
}

/* every rank's flags and floats, this rank's flags zero */
static void map_segments(dt_shm *sh, size_t head, size_t bytes)
{
    const int W = sh->world;
    sh->ready = dt_xmalloc((size_t)W, sizeof *sh->ready);
    sh->done = dt_xmalloc((size_t)W, sizeof *sh->done);
    sh->buf = dt_xmalloc((size_t)W, sizeof *sh->buf);
    for (int r = 0; r < W; r++) {
        MPI_Aint size;
        int disp;
        void *base = NULL;
        MPI_Win_shared_query(sh->win, r, &size, &disp, &base);
        DT_ASSERT(base && (size_t)size >= bytes);
        unsigned char *p = base;
        sh->ready[r] = (void *)p;
        sh->done[r] = sh->ready[r] + sh->maxb;
        sh->buf[r] = (void *)(p + head);
    }
    for (int k = 0; k < sh->maxb; k++) {
        atomic_init(&sh->ready[sh->me][k], 0);
        atomic_init(&sh->done[sh->me][k], 0);
    }
}

dt_shm *dt_shm_open(MPI_Comm comm, const float *g, size_t n, int maxb, char *why, size_t why_size)
{
    int rank, world;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &world);
    dt_shm *sh = dt_xcalloc(1, sizeof *sh);
    sh->comm = comm;
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &sh->node);
    MPI_Comm_size(sh->node, &sh->world);
    MPI_Comm_rank(sh->node, &sh->me);
    int one = sh->world == world, all = 0;
    MPI_Allreduce(&one, &all, 1, MPI_INT, MPI_MIN, comm);
    if (!all) {
        snprintf(why, why_size, "the %d ranks are on %d nodes (shm needs every rank on one)", world,
                 count_nodes(comm, sh->node));
        MPI_Comm_free(&sh->node);
        free(sh);
        return NULL;
    }
    DT_ASSERT(sh->me == rank); /* split by key = rank: the node's order is the comm's */
    sh->n = n;
    sh->maxb = maxb;
    const size_t head = head_bytes(maxb), bytes = head + n * sizeof(float);
    if (alloc_window(sh, bytes)) {
        snprintf(why, why_size, "MPI_Win_allocate_shared of %zu bytes a rank failed", bytes);
        MPI_Comm_free(&sh->node);
        free(sh);
        return NULL;
    }
    map_segments(sh, head, bytes);
    memcpy(sh->buf[sh->me], g, n * sizeof(float));
    sh->off = dt_xmalloc((size_t)maxb, sizeof *sh->off);
    sh->len = dt_xmalloc((size_t)maxb, sizeof *sh->len);
    MPI_Barrier(comm); /* every rank's flags are zero before any is read */
    return sh;
}

void dt_shm_close(dt_shm *sh)
{
    if (!sh)
        return;
    MPI_Win_free(&sh->win);
    MPI_Comm_free(&sh->node);
    free(sh->ready);
    free(sh->done);
    free(sh->buf);
    free(sh->off);
    free(sh->len);
    free(sh);
}

void dt_shm_begin(dt_shm *sh, uint64_t gen)
{
    DT_ASSERT(sh->nb == sh->ncol && gen > sh->gen);
    sh->gen = gen;
    sh->nb = sh->nred = sh->ncol = 0;
}

/* 1 when every rank's flag f[r][k] says step gen */
static int all_at(flag_t *const *f, int world, int k, uint64_t gen)
{
    for (int r = 0; r < world; r++)
        if (atomic_load_explicit(&f[r][k], memory_order_acquire) != gen)
            return 0;
    return 1;
}

float *dt_shm_grad(const dt_shm *sh) { return sh->buf[sh->me]; }

/* rank r's share of bucket k: [*a, *b) */
static void share(const dt_shm *sh, int k, int r, size_t *a, size_t *b)
{
    const size_t len = sh->len[k], W = (size_t)sh->world;
    *a = sh->off[k] + len * (size_t)r / W;
    *b = sh->off[k] + len * (size_t)(r + 1) / W;
}

int dt_shm_start(dt_shm *sh, size_t lo, size_t hi)
{
    const int k = sh->nb;
    DT_ASSERT(k < sh->maxb && lo <= hi && hi <= sh->n);
    sh->off[k] = lo;
    sh->len[k] = hi - lo;
    /* the gradient is in the window already: publishing it is the flag */
    atomic_store_explicit(&sh->ready[sh->me][k], sh->gen, memory_order_release);
    sh->nb++;
    return k;
}

/* this rank's share of bucket k: the sum over ranks in rank order, times 1/world (dist.c's
 * range_done: the sum rounded to float, then the product), into every rank's gradient */
static void reduce(dt_shm *sh, int k)
{
    size_t a, b;
    share(sh, k, sh->me, &a, &b);
    const float inv = 1.0f / (float)sh->world;
    float *const *g = sh->buf;
    if (sh->world == 2) {
        float *x = g[0], *y = g[1];
        for (size_t i = a; i < b; i++) {
            float v = x[i] + y[i];
            v *= inv;
            x[i] = v;
            y[i] = v;
        }
    } else {
        for (size_t i = a; i < b; i++) {
            float v = g[0][i];
            for (int r = 1; r < sh->world; r++)
                v += g[r][i];
            v *= inv;
            for (int r = 0; r < sh->world; r++)
                g[r][i] = v;
        }
    }
    atomic_store_explicit(&sh->done[sh->me][k], sh->gen, memory_order_release);
}

int dt_shm_progress(dt_shm *sh)
{
    while (sh->nred < sh->nb && all_at(sh->ready, sh->world, sh->nred, sh->gen))
        reduce(sh, sh->nred++);
    /* every share averaged: the bucket's mean is in this rank's gradient */
    while (sh->ncol < sh->nred && all_at(sh->done, sh->world, sh->ncol, sh->gen))
        sh->ncol++;
    return sh->ncol;
}

int dt_shm_more(void *ctx)
{
    const dt_shm *sh = ctx;
    return (sh->nred < sh->nb && all_at(sh->ready, sh->world, sh->nred, sh->gen)) ||
           (sh->ncol < sh->nred && all_at(sh->done, sh->world, sh->ncol, sh->gen));
}

void dt_shm_end(dt_shm *sh) { DT_ASSERT(sh->ncol == sh->nb); }
