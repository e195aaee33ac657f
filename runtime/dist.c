/*
 * dist.c - see dist.h.
 */
#include "dist.h"

#include <float.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "dist_shm.h"
#include "timeline.h"

/* ---- the watchdog ----
 * Open MPI has no progress thread, and a rank inside a blocking collective cannot be asked
 * anything. So the per-step collectives are nonblocking, and their waits poll, yielding the CPU
 * between tests up to 0.5 s (sched_yield returns at once when nothing else wants the core, so an
 * idle machine sees no more latency than a tight spin; on a busy one the rank waited for gets the
 * core: mlp at 2 ranks on a loaded 2-core machine ran 1.6-2.8x faster than with the 10 ms tight
 * spin this replaced), then sleeping with a back-off to 1 ms. A wait past its
 * limit sends this rank's (step, phase) to every rank on a duplicated communicator; every rank
 * waiting longer than 0.5 s polls for such a message and answers with its own; ranks that never
 * answer are the stalled ones (stopped, hung, computing forever, or blocked in a collective the
 * others are not in). Reductions whose summation order depends on the algorithm stay blocking,
 * behind a watched barrier (dt_dist_arrive); the little time spent inside them is covered by a
 * backstop thread that aborts naming the phase when no watched wait can. */
enum { WD_TAG = 7, WD_RING = 64, WD_FIELDS = 4 };
static const char *const phase_names[] = {
    "start-up",         "control",      "allreduce of gradients",
    "error agreement",  "end of epoch", "checkpoint",
    "batch statistics", "metrics log",  "broadcast"};
static const double wd_listen_s = 0.5, wd_grace_s = 2.0;

static struct {
    double timeout; /* dist.timeout; 0: off */
    MPI_Comm comm;  /* the watchdog's own messages */
    int on, rank, world;
    int64_t step, prev_step; /* the step this rank works on; the last one timed */
    double step_t0;
    double times[WD_RING]; /* the latest step times (s) */
    int ntimes;
    int64_t seen_step; /* the last wait every rank had entered: step, phase */
    int seen_phase;
    int64_t mine[WD_FIELDS]; /* what this rank sends: step, phase, seen step, seen phase */
    int64_t *status;         /* (world, WD_FIELDS) what each rank answered */
    char *have;              /* have[r]: rank r answered */
    MPI_Request *sreq;
    /* backstop thread: inside a blocking collective since (0: not inside one) */
    _Atomic double block_since;
    _Atomic int block_phase;
    _Atomic int64_t block_step;
    _Atomic double block_limit;
    pthread_t thread;
    _Atomic int thread_stop;
    int thread_on;
    _Atomic int aborting; /* the watchdog printed its line and is ending the job */
} wd;

static void pause_for(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* max(dist.timeout, 20 x the median of the last 64 step times (once 5 are known)) */
static double wd_limit(void)
{
    int n = wd.ntimes < WD_RING ? wd.ntimes : WD_RING;
    if (n < 5)
        return wd.timeout;
    double t[WD_RING];
    memcpy(t, wd.times, (size_t)n * sizeof *t);
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    double med = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    return 20.0 * med > wd.timeout ? 20.0 * med : wd.timeout;
}

/* "step 15 (control)"; a rank not yet at its first step is "start-up" */
static void where(char *buf, size_t size, int64_t step, int64_t phase)
{
    const char *p = phase >= 0 && phase < (int64_t)(sizeof phase_names / sizeof *phase_names)
                        ? phase_names[phase]
                        : "?";
    if (step < 0)
        snprintf(buf, size, "start-up (%s)", p);
    else
        snprintf(buf, size, "step %lld (%s)", (long long)step, p);
}

static void wd_receive(void)
{
    for (;;) {
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, WD_TAG, wd.comm, &flag, &st);
        if (!flag)
            return;
        int64_t v[WD_FIELDS];
        MPI_Recv(v, WD_FIELDS, MPI_INT64_T, st.MPI_SOURCE, WD_TAG, wd.comm, MPI_STATUS_IGNORE);
        memcpy(wd.status + (size_t)st.MPI_SOURCE * WD_FIELDS, v, sizeof v);
        wd.have[st.MPI_SOURCE] = 1;
    }
}

/* The lowest answering rank prints one line and aborts the job. */
static void wd_report(double waited)
{
    const int64_t *me = wd.mine;
    char at[96], seen[96], line[2048];
    where(at, sizeof at, me[0], me[1]);
    where(seen, sizeof seen, me[2], me[3]);
    size_t len = 0;
    int missing = 0;
    for (int r = 0; r < wd.world; r++)
        missing += !wd.have[r];
    if (missing) {
        len += (size_t)snprintf(line + len, sizeof line - len, "rank%s", missing > 1 ? "s" : "");
        int k = 0;
        for (int r = 0; r < wd.world && len < sizeof line - 64; r++)
            if (!wd.have[r])
                len += (size_t)snprintf(line + len, sizeof line - len, "%s %d", k++ ? "," : "", r);
        len += (size_t)snprintf(line + len, sizeof line - len,
                                " %s not reached %s after %.0f s; last seen at %s",
                                missing > 1 ? "have" : "has", at, waited,
                                me[2] < 0 && me[3] == DT_PHASE_START ? "start-up" : seen);
    } else {
        len += (size_t)snprintf(line + len, sizeof line - len,
                                "no progress for %.0f s: every rank waits, in different "
                                "collectives (a deadlock): rank %d at %s",
                                waited, wd.rank, at);
    }
    /* answering ranks that wait somewhere else than this one */
    for (int r = 0; r < wd.world && len < sizeof line - 128; r++) {
        const int64_t *s = wd.status + (size_t)r * WD_FIELDS;
        if (r == wd.rank || !wd.have[r] || (s[0] == me[0] && s[1] == me[1]))
            continue;
        char other[96];
        where(other, sizeof other, s[0], s[1]);
        len += (size_t)snprintf(line + len, sizeof line - len, "%s rank %d waits at %s",
                                missing ? ";" : ",", r, other);
    }
    atomic_store(&wd.aborting, 1);
    fprintf(stderr, "dtrain: error: %s; aborting\n", line);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

/* Past the limit (or told by another rank): tell everyone where this rank is, collect the
 * answers for a grace period, and let the lowest answering rank report. Never returns. */
static void wd_alarm(int phase, double waited)
{
    wd.mine[0] = wd.step;
    wd.mine[1] = phase;
    wd.mine[2] = wd.seen_step;
    wd.mine[3] = wd.seen_phase;
    memcpy(wd.status + (size_t)wd.rank * WD_FIELDS, wd.mine, sizeof wd.mine);
    wd.have[wd.rank] = 1;
    for (int r = 0; r < wd.world; r++)
        if (r != wd.rank)
            MPI_Isend(wd.mine, WD_FIELDS, MPI_INT64_T, r, WD_TAG, wd.comm, &wd.sreq[r]);
    const double t0 = dt_now();
    for (;;) {
        wd_receive();
        int lowest = 0;
        while (!wd.have[lowest])
            lowest++;
        double el = dt_now() - t0;
        /* a rank above the lowest reports only when the lowest did not end the job */
        if (el > wd_grace_s * (lowest == wd.rank ? 1.0 : 3.0 + 0.5 * wd.rank))
            wd_report(waited + (lowest == wd.rank ? 0.0 : el));
        pause_for(1e-3);
    }
}

/* A pause (tens of ns) between tests of a flag before yielding: a flag in shared memory set by
 * a rank running on another core arrives within the spin, without a system call */
static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* done(ctx) tested `spins` times with a pause between, then as watched_wait's comment says */
static void wait_until(int (*done)(void *ctx), void *ctx, int phase, int spins)
{
    for (int i = 0; i < spins; i++) {
        if (done(ctx))
            return;
        cpu_relax();
    }
    double t0 = dt_now(), last = t0, pause = 0.0, limit = -1.0;
    for (;;) {
        if (done(ctx))
            break;
        double now = dt_now();
        if (now - last > 1.0) /* this process was stopped itself: its sleep is not a wait */
            t0 += now - last;
        last = now;
        double waited = now - t0;
        if (waited < wd_listen_s) { /* as MPI's own wait does when oversubscribed */
            sched_yield();
            continue;
        }
        pause = pause == 0.0 ? 2e-5 : (pause < 1e-3 ? pause * 2.0 : 1e-3);
        pause_for(pause);
        if (!wd.on)
            continue;
        wd_receive();
        for (int r = 0; r < wd.world; r++)
            if (wd.have[r])
                wd_alarm(phase, waited); /* another rank gave up: answer it */
        if (waited > wd.timeout) {
            if (limit < 0.0)
                limit = wd_limit();
            if (waited > limit)
                wd_alarm(phase, waited);
        }
    }
    if (wd.on) {
        wd.seen_step = wd.step;
        wd.seen_phase = phase;
    }
}

void dt_dist_wait_until(int (*done)(void *ctx), void *ctx, int phase)
{
    wait_until(done, ctx, phase, 256);
}

typedef struct {
    int n;
    MPI_Request *req;
} testall_ctx;

static int testall(void *ctx)
{
    testall_ctx *c = ctx;
    int done = 0;
    MPI_Testall(c->n, c->req, &done, MPI_STATUSES_IGNORE);
    return done;
}

/* Waits for n requests; with the watchdog on, a wait past the limit ends the job (above). */
static void watched_wait(int n, MPI_Request *req, int phase)
{
    if (!wd.on) {
        MPI_Waitall(n, req, MPI_STATUSES_IGNORE);
        return;
    }
    testall_ctx c = {n, req};
    wait_until(testall, &c, phase, 0);
}

/* The backstop: a rank stopped inside a blocking reduction that every rank had entered leaves
 * the others inside MPI, where no watched wait runs and nothing can be asked. This thread ends
 * the job then, naming the step and phase (not the rank, which it cannot know). It fires 0.5 s
 * after the limit, before the ranks waiting in watched waits report (2 s grace), which would
 * name the blocked ranks as missing; the lowest rank first, so one line. */
static void *wd_thread(void *arg)
{
    (void)arg;
    double last = dt_now(), woke = 0.0;
    while (!atomic_load(&wd.thread_stop)) {
        pause_for(0.1);
        double now = dt_now();
        if (now - last > 1.0) /* this process was stopped itself (SIGSTOP, then SIGCONT): */
            woke = now;       /* the time it slept is no one else's fault */
        last = now;
        double since = atomic_load(&wd.block_since);
        if (since == 0.0)
            continue;
        double waited = now - (since > woke ? since : woke);
        if (waited > atomic_load(&wd.block_limit) + 0.5 + 0.25 * wd.rank) {
            atomic_store(&wd.aborting, 1);
            char at[96];
            where(at, sizeof at, atomic_load(&wd.block_step), atomic_load(&wd.block_phase));
            if (wd.world == 2) /* then the stalled rank is the other one */
                fprintf(stderr,
                        "dtrain: error: rank %d has not completed %s after %.0f s; last seen at "
                        "%s; aborting\n",
                        1 - wd.rank, at, waited, at);
            else
                fprintf(stderr,
                        "dtrain: error: rank %d: no progress for %.0f s inside the blocking "
                        "reduction of %s, which every rank had entered: a rank stalled inside "
                        "it; aborting\n",
                        wd.rank, waited, at);
            fflush(stderr);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
    }
    return NULL;
}

static void block_begin(int phase)
{
    if (!wd.thread_on)
        return;
    atomic_store(&wd.block_phase, phase);
    atomic_store(&wd.block_step, wd.step);
    atomic_store(&wd.block_since, dt_now());
}

static void block_end(void)
{
    if (wd.thread_on)
        atomic_store(&wd.block_since, 0.0);
}

void dt_dist_block_begin(dt_phase phase) { block_begin((int)phase); }

void dt_dist_block_end(void) { block_end(); }

void dt_dist_watchdog_start(double timeout_s, MPI_Comm comm)
{
    dt_dist_watchdog_stop();
    MPI_Comm_rank(comm, &wd.rank);
    MPI_Comm_size(comm, &wd.world);
    if (!(timeout_s > 0.0) || wd.world < 2)
        return;
    MPI_Comm_dup(comm, &wd.comm);
    wd.timeout = timeout_s;
    wd.step = wd.prev_step = wd.seen_step = -1;
    wd.seen_phase = DT_PHASE_START;
    wd.ntimes = 0;
    wd.status = dt_xcalloc((size_t)wd.world * WD_FIELDS, sizeof *wd.status);
    wd.have = dt_xcalloc((size_t)wd.world, sizeof *wd.have);
    wd.sreq = dt_xcalloc((size_t)wd.world, sizeof *wd.sreq);
    atomic_store(&wd.block_since, 0.0);
    atomic_store(&wd.block_limit, timeout_s);
    atomic_store(&wd.thread_stop, 0);
    wd.thread_on = pthread_create(&wd.thread, NULL, wd_thread, NULL) == 0;
    wd.on = 1;
}

void dt_dist_watchdog_stop(void)
{
    if (!wd.on)
        return;
    if (wd.thread_on) {
        atomic_store(&wd.thread_stop, 1);
        pthread_join(wd.thread, NULL);
        wd.thread_on = 0;
    }
    MPI_Comm_free(&wd.comm);
    free(wd.status);
    free(wd.have);
    free(wd.sreq);
    wd.status = NULL;
    wd.have = NULL;
    wd.sreq = NULL;
    wd.on = 0;
}

void dt_dist_watchdog_step(int64_t step)
{
    if (!wd.on)
        return;
    double now = dt_now();
    if (wd.prev_step >= 0 && step == wd.prev_step + 1) {
        wd.times[wd.ntimes % WD_RING] = now - wd.step_t0;
        wd.ntimes++;
        if (wd.ntimes % 16 == 0 && wd.thread_on)
            atomic_store(&wd.block_limit, wd_limit());
    }
    wd.prev_step = wd.step = step;
    wd.step_t0 = now;
}

void dt_dist_arrive(dt_phase phase, MPI_Comm comm)
{
    if (!wd.on)
        return;
    MPI_Request req;
    MPI_Ibarrier(comm, &req);
    watched_wait(1, &req, (int)phase);
}

static int thread_provided = MPI_THREAD_SINGLE;
static char thread_note[160];

/* dt_dist_sum's gather buffer: sized at start-up for 1024 values a rank, grown (rarely: a
 * SyncBatchNorm over more than 512 channels) on first use */
static double *sum_buf;
static size_t sum_cap;

/* Open MPI's nonblocking allreduce (coll libnbc) picks, below 4 ranks or in place (dtrain's
 * buckets always are), a binomial tree: at 2 ranks rank 1 sends its whole bucket to rank 0,
 * which adds it and sends the sum back, after a copy, all the adding on rank 0. The ring (1)
 * sends each rank half the bucket, both add their half, and exchange the sums: half the bytes
 * per step and no copy. Measured on the 2-core Zen 5 VM (shared with other jobs: an
 * MPI_Iallreduce in place, tested until done, medians of 300): 1.6 MB 290-420 us (ring) vs
 * 1200-15800 us (binomial), 0.3 MB 37-62 vs 70-117 us; the blocking MPI_Allreduce was 270-430
 * and 36-78 us. At 2 ranks every algorithm gives the same bits (a + b == b + a), so dtrain asks
 * for the ring there, through the MPI tool interface (Open MPI's variable; with another MPI, or
 * when the user set it, e.g. mpirun --mca coll_libnbc_iallreduce_algorithm N, nothing changes).
 * At 3 ranks and more the algorithm decides the rounding, and Open MPI's choice stays. Returns 1
 * when set. */
static int tune_iallreduce(int world)
{
    static const char name[] = "coll_libnbc_iallreduce_algorithm";
    int provided = 0, idx = -1, count = 0, set = 0;
    if (world != 2 || getenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm"))
        return 0;
    if (MPI_T_init_thread(MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return 0;
    MPI_T_cvar_handle h;
    if (MPI_T_cvar_get_index(name, &idx) == MPI_SUCCESS &&
        MPI_T_cvar_handle_alloc(idx, NULL, &h, &count) == MPI_SUCCESS) {
        int v = 1; /* ring */
        set = count == 1 && MPI_T_cvar_write(h, &v) == MPI_SUCCESS;
        MPI_T_cvar_handle_free(&h);
    }
    MPI_T_finalize();
    return set;
}

int dt_dist_tuned_iallreduce = 0;

int dt_dist_launcher_rank(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v)
            return atoi(v);
    }
    return -1;
}

/* Started without an MPI launcher (no mpirun, no srun with PMI/PMIx), Open MPI's MPI_Init makes
 * the process a singleton and forks a daemon (orted) for it, which inherits stdout: a pipe from
 * `dtrain ... | grep` then ends when the daemon ends, and once (test_cli) a daemon outlived
 * dtrain and the pipe never ended. A singleton that spawns no processes needs no daemon: Open
 * MPI's ess_singleton_isolated (a user's own setting wins).
 *
 * An isolated singleton is always named [[0,1],0] (Open MPI 4.1's pmix/isolated), so every one
 * on a host shares the session directory TMP/ompi.HOST.UID/jf.0/1/0, and the first to finish
 * removes it under the others: 4 loops of short runs at once (half of them singletons) saw 2 of
 * about 1,600 singleton starts fail in MPI_Init ("A call to mkdir was unable to create the
 * desired directory: /tmp/ompi.vm.0/jf.0/1", "... /tmp/ompi.vm.0/jf.0: File exists").
 * So an isolated singleton gets a session tree of its own, TMP/ompi.HOST.UID.dtrain-PID (Open
 * MPI removes it at MPI_Finalize, as it does its own), unless the user chose one
 * (orte_top_session_dir). TMP: orte_tmpdir_base, else TMPDIR, else /tmp, as Open MPI's. */
static void singleton_isolated(void)
{
    if (dt_dist_launcher_rank() >= 0)
        return;
    setenv("OMPI_MCA_ess_singleton_isolated", "1", 0);
    const char *iso = getenv("OMPI_MCA_ess_singleton_isolated");
    if (!iso || strcmp(iso, "1") != 0 || getenv("OMPI_MCA_orte_top_session_dir"))
        return;
    const char *tmp = getenv("OMPI_MCA_orte_tmpdir_base");
    if (!tmp || !*tmp)
        tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    char host[256] = "localhost", dir[PATH_MAX];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    int n = snprintf(dir, sizeof dir, "%s/ompi.%s.%u.dtrain-%ld", tmp, host, (unsigned)getuid(),
                     (long)getpid());
    if (n > 0 && (size_t)n < sizeof dir)
        setenv("OMPI_MCA_orte_top_session_dir", dir, 0);
}

int dt_dist_init(int *argc, char ***argv)
{
    int world = 1;
    singleton_isolated();
    /* FUNNELED: the progress hook tests the buckets from the main thread while pool workers
     * compute; no other thread calls MPI */
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &thread_provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &dt_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (thread_provided < MPI_THREAD_FUNNELED)
        snprintf(thread_note, sizeof thread_note,
                 "MPI provided thread level %d (SINGLE), less than FUNNELED: gradient buckets "
                 "progress between layers only (no progress hook inside the kernels)",
                 thread_provided);
    dt_dist_tuned_iallreduce = tune_iallreduce(world);
    sum_cap = (size_t)world * 1024;
    sum_buf = dt_xmalloc(sum_cap, sizeof *sum_buf);
    return world;
}

void dt_dist_finalize(void)
{
    free(sum_buf);
    sum_buf = NULL;
    sum_cap = 0;
    MPI_Finalize();
}

const char *dt_dist_thread_note(void) { return thread_note[0] ? thread_note : NULL; }

int dt_dist_funneled(void) { return thread_provided >= MPI_THREAD_FUNNELED; }

void dt_dist_sum(double *x, int n, dt_phase phase, MPI_Comm comm)
{
    int world;
    MPI_Comm_size(comm, &world);
    if (world == 1 || n <= 0)
        return;
    const size_t need = (size_t)world * (size_t)n;
    if (need > sum_cap) {
        free(sum_buf);
        sum_cap = need;
        sum_buf = dt_xmalloc(sum_cap, sizeof *sum_buf);
    }
    MPI_Request req;
    MPI_Iallgather(x, n, MPI_DOUBLE, sum_buf, n, MPI_DOUBLE, comm, &req);
    watched_wait(1, &req, (int)phase);
    for (int i = 0; i < n; i++) {
        double s = sum_buf[i];
        for (int r = 1; r < world; r++)
            s += sum_buf[(size_t)r * (size_t)n + (size_t)i];
        x[i] = s;
    }
}

void dt_dist_max(double *x, int n, dt_phase phase, MPI_Comm comm)
{
    MPI_Request req;
    MPI_Iallreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_MAX, comm, &req);
    watched_wait(1, &req, (int)phase);
}

void dt_dist_bcast_bytes(void *p, size_t bytes, dt_phase phase, MPI_Comm comm)
{
    const size_t chunk = (size_t)1 << 30;
    for (size_t off = 0; off < bytes; off += chunk) {
        size_t len = bytes - off < chunk ? bytes - off : chunk;
        MPI_Request req;
        MPI_Ibcast((char *)p + off, (int)len, MPI_BYTE, 0, comm, &req);
        watched_wait(1, &req, (int)phase);
    }
}

void dt_dist_gather_bytes(const void *in, void *out, size_t bytes, dt_phase phase, MPI_Comm comm)
{
    DT_ASSERT(bytes <= (size_t)INT32_MAX);
    MPI_Request req;
    MPI_Igather(in, (int)bytes, MPI_BYTE, out, (int)bytes, MPI_BYTE, 0, comm, &req);
    watched_wait(1, &req, (int)phase);
}

int dt_dist_agree(int rc, MPI_Comm comm)
{
    int rank, world;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &world);
    /* a failure an inner agreement already printed counts as `world`, after every new one */
    int mine = rc == 0 ? INT_MAX : dt_err_reported() ? world : rank, first = INT_MAX;
    MPI_Request req;
    MPI_Iallreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm, &req);
    watched_wait(1, &req, DT_PHASE_AGREE);
    if (first == INT_MAX)
        return DT_OK;
    /* while the watchdog ends the job, its line is the one message (mpirun's SIGTERM can reach
     * this rank's main thread first and end in a second, misleading failure) */
    if (rank == first && !atomic_load(&wd.aborting)) {
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
    snprintf(s->path, sizeof s->path, s->world > 1 ? "mpi" : "none (1 rank)");
    if (s->world > 1) {
        /* every bucket but the last holds >= cap floats, each piece of one <= 2^30: the
         * requests of a step, allocated here (a training step does not allocate); without
         * buckets, the shm path's one */
        s->maxreq = cap > 0 ? (int)(n / cap + 2 + (n >> 30) + 1) : 1;
        s->req = dt_xmalloc((size_t)s->maxreq, sizeof *s->req);
        s->t_start = dt_xmalloc((size_t)s->maxreq, sizeof *s->t_start);
        s->t_done = dt_xmalloc((size_t)s->maxreq, sizeof *s->t_done);
        s->len = dt_xmalloc((size_t)s->maxreq, sizeof *s->len);
        s->off = dt_xmalloc((size_t)s->maxreq, sizeof *s->off);
        s->fin = dt_xmalloc((size_t)s->maxreq, sizeof *s->fin);
        s->idx = dt_xmalloc((size_t)s->maxreq, sizeof *s->idx);
    }
}

/* the step's buckets while they are open (the progress hook's target), or NULL */
static dt_grad_sync *open_sync;
static double poll_next;

void dt_grad_sync_free(dt_grad_sync *s)
{
    DT_ASSERT(s->nreq == 0);
    if (open_sync == s)
        open_sync = NULL;
    if (s->shm) { /* the gradient back in the caller's buffer (dt_grad_sync_path) */
        memcpy(s->g_own, s->g, s->n * sizeof *s->g);
        s->g = s->g_own;
    }
    dt_shm_close(s->shm);
    s->shm = NULL;
    free(s->req);
    free(s->t_start);
    free(s->t_done);
    free(s->len);
    free(s->off);
    free(s->fin);
    free(s->idx);
    s->req = NULL;
    s->t_start = s->t_done = NULL;
    s->len = s->off = NULL;
    s->fin = NULL;
    s->idx = NULL;
}

void dt_grad_sync_begin(dt_grad_sync *s)
{
    DT_ASSERT(s->nreq == 0);
    s->started = s->n;
    s->ndone = 0;
    s->exposed_s = 0.0;
    s->gen++;
    if (s->shm)
        dt_shm_begin(s->shm, s->gen);
    open_sync = s->req ? s : NULL;
}

/* MPI_Iallreduce of g[lo, hi), in pieces whose counts fit an int */
static void start_slice(dt_grad_sync *s, size_t lo, size_t hi)
{
    if (s->shm) {
        const int k = dt_shm_start(s->shm, lo, hi);
        DT_ASSERT(k == s->nreq);
        s->t_start[k] = dt_now();
        s->t_done[k] = 0.0;
        s->len[k] = hi - lo;
        s->off[k] = lo;
        s->fin[k] = 0;
        s->nreq++;
        return;
    }
    const size_t chunk = (size_t)1 << 30;
    for (size_t off = lo; off < hi; off += chunk) {
        const size_t len = hi - off < chunk ? hi - off : chunk;
        DT_ASSERT(s->nreq < s->maxreq);
        s->t_start[s->nreq] = dt_now();
        s->t_done[s->nreq] = 0.0;
        s->len[s->nreq] = len;
        s->off[s->nreq] = off;
        s->fin[s->nreq] = 0;
        MPI_Iallreduce(MPI_IN_PLACE, s->g + off, (int)len, MPI_FLOAT, MPI_SUM, s->comm,
                       &s->req[s->nreq++]);
    }
}

/* Open MPI progresses nonblocking collectives only inside MPI calls: one MPI_Testsome over
 * the step's requests, noting when each completes */
static void progress(dt_grad_sync *s)
{
    if (s->ndone == s->nreq)
        return;
    if (s->shm) {
        const int done = dt_shm_progress(s->shm);
        if (done > s->ndone) {
            const double now = dt_now();
            for (int i = s->ndone; i < done; i++)
                s->t_done[i] = now;
            s->ndone = done;
        }
        return;
    }
    int out = 0;
    MPI_Testsome(s->nreq, s->req, &out, s->idx, MPI_STATUSES_IGNORE);
    if (out == MPI_UNDEFINED || out <= 0)
        return;
    const double now = dt_now();
    for (int i = 0; i < out; i++)
        s->t_done[s->idx[i]] = now;
    s->ndone += out;
}

void dt_grad_sync_poll(void)
{
    dt_grad_sync *s = open_sync;
    if (!s || s->nreq == s->ndone)
        return;
    /* rate limit: a clock read (vDSO, tens of ns) when nothing is due */
    const double now = dt_now();
    if (now < poll_next)
        return;
    poll_next = now + 20e-6;
    progress(s);
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
    progress(s);
}

void dt_grad_sync_done_at(const float *from)
{
    dt_grad_sync *s = open_sync;
    if (!s || from < s->g || from >= s->g + s->n)
        return;
    dt_grad_sync_ready(s, (size_t)(from - s->g));
}

/* The timeline's record of the step's buckets: from start to completion (a bucket still open
 * when finish began waiting completes at the end of the wait, at the latest) */
static void record_buckets(const dt_grad_sync *s, double end)
{
    for (int i = 0; i < s->nreq; i++)
        dt_tl_span("allreduce", NULL, DT_TL_BUCKET + (i < 63 ? i : 63), s->t_start[i],
                   s->t_done[i] > 0.0 ? s->t_done[i] : end, (int64_t)s->len[i]);
    dt_tl_span("allreduce wait", NULL, DT_TL_MAIN, s->wait0, end, -1);
}

/* g[lo, hi) is averaged: handed to on_done, if any (timed on the timeline) */
static void hand_over(dt_grad_sync *s, size_t lo, size_t hi)
{
    if (!s->on_done)
        return;
    const double t0 = dt_tl_on ? dt_now() : 0.0;
    s->on_done(s->on_done_ctx, lo, hi);
    if (dt_tl_on)
        dt_tl_span("update", NULL, DT_TL_MAIN, t0, dt_now(), (int64_t)(hi - lo));
}

/* g[lo, hi) is the sum over ranks: the mean, handed over */
static void range_done(dt_grad_sync *s, size_t lo, size_t hi)
{
    const float inv = 1.0f / (float)s->world;
    for (size_t i = lo; i < hi; i++)
        s->g[i] *= inv;
    hand_over(s, lo, hi);
}

/* Waits until one more request completes (all of them, under the watchdog, once none has for
 * 50 ms: a slow network or a stalled rank), adding the time to the exposed communication.
 * Between tests it yields the core, as watched_wait does (the watchdog's comment says why). */
static void wait_some(dt_grad_sync *s)
{
    const int before = s->ndone;
    const double t0 = dt_now();
    for (;;) {
        progress(s);
        if (s->ndone > before)
            break;
        if (dt_now() - t0 > 0.05) {
            watched_wait(s->nreq, s->req, DT_PHASE_GRADIENTS);
            const double now = dt_now();
            for (int i = 0; i < s->nreq; i++)
                if (s->t_done[i] == 0.0)
                    s->t_done[i] = now;
            s->ndone = s->nreq;
            break;
        }
        sched_yield(); /* as watched_wait: on a busy machine the rank waited for gets the core */
    }
    s->exposed_s += dt_now() - t0;
}

/* Every request done and averaged, each as soon as it completes (without on_done: one wait for
 * them all, then one pass). */
static void drain(dt_grad_sync *s)
{
    if (!s->on_done && s->ndone < s->nreq) {
        const double t0 = dt_now();
        watched_wait(s->nreq, s->req, DT_PHASE_GRADIENTS);
        s->exposed_s = dt_now() - t0;
        s->ndone = s->nreq;
    }
    for (;;) {
        int open = 0;
        for (int i = 0; i < s->nreq; i++) {
            if (s->fin[i])
                continue;
            if (s->t_done[i] == 0.0 && s->ndone < s->nreq) {
                open++;
                continue;
            }
            range_done(s, s->off[i], s->off[i] + s->len[i]);
            s->fin[i] = 1;
        }
        if (!open)
            return;
        wait_some(s);
    }
}

/* The shm path's finish: the rest as the last bucket, then each bucket handed over as soon as
 * it is collected; the exposed communication is the time finish spends outside on_done (the
 * waits and this rank's share of the summing) */
static void shm_finish(dt_grad_sync *s)
{
    double in_update = 0.0;
    if (s->started > 0)
        start_slice(s, 0, s->started);
    s->started = 0;
    for (int next = 0;;) {
        progress(s);
        for (; next < s->ndone; next++) {
            const double t0 = dt_now();
            hand_over(s, s->off[next], s->off[next] + s->len[next]);
            s->fin[next] = 1;
            in_update += dt_now() - t0;
        }
        if (s->ndone == s->nreq)
            break;
        dt_dist_wait_until(dt_shm_more, s->shm, DT_PHASE_GRADIENTS);
    }
    dt_shm_end(s->shm);
    const double end = dt_now();
    s->exposed_s = end - s->wait0 - in_update;
    if (dt_tl_on)
        record_buckets(s, end);
    s->nreq = 0;
    s->ndone = 0;
    s->started = s->n;
}

int dt_grad_sync_path(dt_grad_sync *s, int mode)
{
    if (s->world == 1 || mode == DT_ALLREDUCE_MPI)
        return DT_OK;
    /* auto: only where the bits are the MPI path's (at 3+ ranks MPI's algorithm decides the
     * order of the sum, and tests compare runs across nodes with runs on one) */
    if (mode == DT_ALLREDUCE_AUTO && s->world != 2)
        return DT_OK;
    char why[160];
    s->shm = dt_shm_open(s->comm, s->g, s->n, s->maxreq, why, sizeof why);
    if (!s->shm) {
        if (mode == DT_ALLREDUCE_SHM)
            return dt_err("train.allreduce = shm: %s; use mpi or auto", why);
        snprintf(s->path, sizeof s->path, "mpi (shm: %.80s)", why);
        return DT_OK;
    }
    /* the gradient lives in the window from now on (the caller points its buffer there) */
    s->g_own = s->g;
    s->g = dt_shm_grad(s->shm);
    snprintf(s->path, sizeof s->path, "shm (%d ranks on one node)", s->world);
    return DT_OK;
}

void dt_grad_sync_finish(dt_grad_sync *s)
{
    s->wait0 = dt_now();
    s->exposed_s = 0.0;
    open_sync = NULL;
    if (s->world == 1) {
        hand_over(s, 0, s->n);
        return;
    }
    if (s->shm) {
        shm_finish(s);
        return;
    }
    if (s->nreq == 0) {
        /* nothing started: one bucket, the classic blocking allreduce (its algorithm decides
         * the summation order at 3+ ranks, and for one bucket it is faster than
         * MPI_Iallreduce's: docs/internals.md has the measurements), kept, behind a watched
         * barrier */
        dt_dist_arrive(DT_PHASE_GRADIENTS, s->comm);
        block_begin(DT_PHASE_GRADIENTS);
        dt_dist_average(s->g, s->n, s->comm);
        block_end();
        const double end = dt_now();
        s->exposed_s = end - s->wait0;
        if (dt_tl_on) {
            dt_tl_span("allreduce", NULL, DT_TL_BUCKET, s->wait0, end, (int64_t)s->n);
            dt_tl_span("allreduce wait", NULL, DT_TL_MAIN, s->wait0, end, -1);
        }
        hand_over(s, 0, s->n);
        return;
    }
    if (s->started > 0)
        start_slice(s, 0, s->started);
    progress(s);
    drain(s);
    const double end = dt_now();
    if (dt_tl_on)
        record_buckets(s, end);
    s->nreq = 0;
    s->ndone = 0;
    s->started = s->n;
}

void dt_dist_bcast(float *p, size_t n, MPI_Comm comm)
{
    const size_t chunk = (size_t)1 << 30;
    for (size_t off = 0; off < n; off += chunk) {
        size_t len = n - off < chunk ? n - off : chunk;
        MPI_Request req;
        MPI_Ibcast(p + off, (int)len, MPI_FLOAT, 0, comm, &req);
        watched_wait(1, &req, DT_PHASE_BCAST);
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
    MPI_Request req;
    MPI_Iallreduce(MPI_IN_PLACE, v, 4, MPI_DOUBLE, MPI_MAX, comm, &req);
    watched_wait(1, &req, DT_PHASE_CONTROL);
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
    MPI_Request req;
    MPI_Iallreduce(v, r, 2, MPI_UNSIGNED_LONG_LONG, MPI_MAX, comm, &req);
    watched_wait(1, &req, DT_PHASE_EPOCH);
    return r[0] == fp && r[1] == ~fp;
}
