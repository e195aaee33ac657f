/*
 * timeline.c - see timeline.h.
 *
 * Trace Event Format: https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU
 * ("X" complete events with ts/dur in microseconds, "M" metadata events naming processes and
 * threads).
 */
#include "timeline.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

enum { MARKS_MAX = 256, PINGS = 16 };

typedef struct {
    const char *name, *detail;
    int tid;
    int64_t step; /* -1: outside the steps (evaluation, checkpoint) */
    double t0, t1;
    int64_t arg;
} tl_event;

int dt_tl_on = 0;

static struct {
    int open, rank;
    FILE *f; /* rank 0 */
    char path[4096];
    int64_t steps, every, step;
    int64_t first; /* the first step this process trains (a resumed run's is not 0); -1: none */
    double offset; /* add to this rank's dt_now() to get rank 0's */
    double base;   /* rank 0's clock when the timeline opened */
    tl_event *ev;
    size_t n, cap, dropped;
    int marks;
    uint64_t buckets; /* bit k: row DT_TL_BUCKET + k used */
} tl;

/* This rank's clock offset to rank 0: 0 on rank 0's host (one CLOCK_MONOTONIC for all its
 * processes: a measurement could only add its error), else PINGS round trips, the one of least
 * latency kept. */
static double clock_offset(MPI_Comm comm, int rank, int world)
{
    char host[MPI_MAX_PROCESSOR_NAME], host0[MPI_MAX_PROCESSOR_NAME];
    int len = 0;
    memset(host, 0, sizeof host);
    MPI_Get_processor_name(host, &len);
    memcpy(host0, host, sizeof host);
    MPI_Bcast(host0, (int)sizeof host0, MPI_CHAR, 0, comm);
    const int remote = strcmp(host, host0) != 0;
    double offset = 0.0;
    for (int r = 1; r < world; r++) {
        int other = remote; /* rank r tells rank 0 whether to measure */
        if (rank == r)
            MPI_Send(&other, 1, MPI_INT, 0, 70, comm);
        else if (rank == 0)
            MPI_Recv(&other, 1, MPI_INT, r, 70, comm, MPI_STATUS_IGNORE);
        if ((rank != 0 && rank != r) || !other)
            continue;
        double best = 1e30;
        for (int k = 0; k < PINGS; k++) {
            double t = 0.0;
            if (rank == 0) {
                MPI_Recv(&t, 1, MPI_DOUBLE, r, 71, comm, MPI_STATUS_IGNORE);
                t = dt_now();
                MPI_Send(&t, 1, MPI_DOUBLE, r, 72, comm);
            } else {
                const double a = dt_now();
                MPI_Send(&t, 1, MPI_DOUBLE, 0, 71, comm);
                MPI_Recv(&t, 1, MPI_DOUBLE, 0, 72, comm, MPI_STATUS_IGNORE);
                const double b = dt_now();
                if (b - a < best) {
                    best = b - a;
                    offset = t - 0.5 * (a + b);
                }
            }
        }
    }
    return offset;
}

int dt_tl_open(const char *path, int64_t steps, int64_t every, int64_t total_steps, int per_step,
               MPI_Comm comm)
{
    int world;
    memset(&tl, 0, sizeof tl);
    MPI_Comm_rank(comm, &tl.rank);
    MPI_Comm_size(comm, &world);
    tl.steps = steps;
    tl.every = every;
    tl.step = -1;
    tl.first = -1;
    snprintf(tl.path, sizeof tl.path, "%s", path);
    tl.offset = clock_offset(comm, tl.rank, world);
    tl.base = dt_now();
    MPI_Bcast(&tl.base, 1, MPI_DOUBLE, 0, comm);
    int64_t rec = total_steps < steps ? total_steps : steps;
    if (every > 0 && total_steps > steps)
        rec += (total_steps - steps) / every + 1;
    if (rec > 100000)
        rec = 100000; /* a hard bound: ~100k steps of spans */
    tl.cap = (size_t)rec * (size_t)per_step + MARKS_MAX;
    tl.ev = dt_xmalloc(tl.cap, sizeof *tl.ev);
    tl.open = 1;
    if (tl.rank == 0) {
        tl.f = fopen(path, "w");
        if (!tl.f)
            return dt_err("log.timeline: cannot write %s: %s", path, strerror(errno));
    }
    return DT_OK;
}

void dt_tl_step(int64_t step)
{
    if (!tl.open)
        return;
    tl.step = step;
    if (tl.first < 0)
        tl.first = step;
    const int64_t k = step - tl.first; /* the window counts from where this process started */
    dt_tl_on = k < tl.steps || (tl.every > 0 && (k - tl.steps) % tl.every == 0);
}

static void add(const char *name, const char *detail, int tid, int64_t step, double t0, double t1,
                int64_t arg)
{
    if (tl.n == tl.cap) {
        tl.dropped++;
        return;
    }
    tl.ev[tl.n++] = (tl_event){name, detail, tid, step, t0, t1, arg};
    if (tid >= DT_TL_BUCKET && tid < DT_TL_BUCKET + 64)
        tl.buckets |= 1ull << (tid - DT_TL_BUCKET);
}

void dt_tl_span(const char *name, const char *detail, int tid, double t0, double t1, int64_t arg)
{
    if (dt_tl_on && tl.open)
        add(name, detail, tid, tl.step, t0, t1, arg);
}

void dt_tl_mark(const char *name, double t0, double t1)
{
    if (!tl.open || tl.marks >= MARKS_MAX)
        return;
    tl.marks++;
    add(name, NULL, DT_TL_MAIN, -1, t0, t1, -1);
}

/* Appends to a growing string. */
typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) DT_PRINTF(2, 3);

static void put(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        DT_ASSERT(k >= 0);
        if ((size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        const size_t cap = 2 * b->cap + (size_t)k + 1;
        char *s = dt_xmalloc(cap, 1);
        memcpy(s, b->s, b->n);
        free(b->s);
        b->s = s;
        b->cap = cap;
    }
}

/* This rank's events as JSON objects, each followed by ",\n". */
static void format_events(sbuf *b)
{
    const int pid = tl.rank;
    if (tl.dropped) /* the buffer was full: said in the trace itself */
        put(b, "{\"name\":\"dropped_events\",\"ph\":\"M\",\"pid\":%d,\"args\":{\"n\":%zu}},\n", pid,
            tl.dropped);
    put(b, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"args\":{\"name\":\"rank %d\"}},\n",
        pid, pid);
    put(b,
        "{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":%d,\"args\":{\"sort_index\":%d}},\n",
        pid, pid);
    put(b,
        "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"args\":{\"name\":\"main "
        "thread\"}},\n",
        pid, DT_TL_MAIN);
    for (int k = 0; k < 64; k++)
        if (tl.buckets >> k & 1)
            put(b,
                "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"args\":{\"name\":"
                "\"allreduce bucket %d\"}},\n",
                pid, DT_TL_BUCKET + k, k);
    for (size_t i = 0; i < tl.n; i++) {
        const tl_event *e = &tl.ev[i];
        const double ts = (e->t0 + tl.offset - tl.base) * 1e6, dur = (e->t1 - e->t0) * 1e6;
        if (e->tid >= DT_TL_BUCKET)
            put(b, "{\"name\":\"bucket %d\",\"cat\":\"%s\"", e->tid - DT_TL_BUCKET, e->name);
        else if (e->detail)
            put(b, "{\"name\":\"%s\",\"cat\":\"%s\"", e->detail, e->name);
        else
            put(b, "{\"name\":\"%s\",\"cat\":\"%s\"", e->name, e->name);
        put(b, ",\"ph\":\"X\",\"pid\":%d,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f,\"args\":{", pid,
            e->tid, ts, dur > 0.0 ? dur : 0.0);
        if (e->step >= 0)
            put(b, "\"step\":%lld", (long long)e->step);
        if (e->arg >= 0)
            put(b, "%s\"floats\":%lld", e->step >= 0 ? "," : "", (long long)e->arg);
        put(b, "}},\n");
    }
}

/* Rank 0: the file from every rank's text (texts[r] of lens[r] bytes back to back). */
static int write_file(const char *all, size_t total, int world)
{
    fprintf(tl.f,
            "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"producer\":\"dtrain\","
            "\"ranks\":%d,\"clock\":\"us since rank 0 opened the timeline\"},\n"
            "\"traceEvents\":[\n",
            world);
    fwrite(all, 1, total, tl.f);
    fprintf(tl.f, "{\"name\":\"dtrain_timeline_end\",\"ph\":\"M\",\"pid\":0,\"args\":{}}\n]}\n");
    int bad = ferror(tl.f);
    if (fclose(tl.f) != 0 || bad) {
        tl.f = NULL;
        return dt_err("log.timeline: cannot write %s: %s", tl.path, strerror(errno));
    }
    tl.f = NULL;
    return DT_OK;
}

int dt_tl_close(MPI_Comm comm)
{
    if (!tl.open)
        return DT_OK;
    int world;
    MPI_Comm_size(comm, &world);
    sbuf b = {dt_xmalloc(1 << 16, 1), 0, 1 << 16};
    format_events(&b);
    DT_ASSERT(b.n < (size_t)1 << 30);
    int len = (int)b.n, *lens = NULL, *displs = NULL;
    char *all = NULL;
    size_t total = 0;
    if (tl.rank == 0) {
        lens = dt_xmalloc((size_t)world, sizeof *lens);
        displs = dt_xmalloc((size_t)world, sizeof *displs);
    }
    MPI_Gather(&len, 1, MPI_INT, lens, 1, MPI_INT, 0, comm);
    if (tl.rank == 0) {
        for (int r = 0; r < world; r++) {
            DT_ASSERT(total + (size_t)lens[r] < (size_t)1 << 31);
            displs[r] = (int)total;
            total += (size_t)lens[r];
        }
        all = dt_xmalloc(total + 1, 1);
    }
    MPI_Gatherv(b.s, len, MPI_CHAR, all, lens, displs, MPI_CHAR, 0, comm);
    int rc = tl.rank == 0 ? write_file(all, total, world) : DT_OK;
    free(all);
    free(lens);
    free(displs);
    free(b.s);
    free(tl.ev);
    tl.ev = NULL;
    tl.open = 0;
    dt_tl_on = 0;
    return rc;
}
