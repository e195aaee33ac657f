/*
 * cmd_sweep.c - `dtrain sweep [options] --grid KEY=VALUES ... [--seeds S,...]
 * [--ranks-per-trial G] --out DIR`: a grid of trainings inside one MPI job (docs/sweep.md).
 *
 * The world is split (MPI_Comm_split) into N/G groups of G consecutive ranks; each trial is one
 * full `dtrain train` run (dt_train_on, cmd_train.c) on its group's communicator, with the base
 * options plus --set KEY=VALUE per axis, seed, ckpt.dir, log.dir and ckpt.resume = auto, its
 * stdout and stderr in DIR/trials/NAME/out.txt.
 *
 * The queue: world rank 0 owns it, and also trains in group 0. The other groups' leaders ask
 * for work with a small message (carrying the result of their last trial) on a duplicate of
 * the world communicator and wait for the answer. Rank 0 answers with MPI_Iprobe between its
 * own trials and between the steps of its own training (dt_train_between_steps, train.h), so
 * group 0 never blocks on the queue and a request waits at most one of rank 0's steps (or its
 * epoch-end evaluation); once the queue is empty rank 0 answers with blocking receives until
 * every group has been told to stop. Long and short trials balance because a group asks only
 * when it is free. A one-sided counter (MPI_Fetch_and_op) would need no hook, but Open MPI's
 * passive-target progress over TCP depends on the target calling MPI, which rank 0 in a group of
 * one does not do during a step.
 *
 * Every phase that can fail for a user reason (options, the grid, every trial's configuration,
 * the folder) is agreed over the world before any training starts. A trial that fails later is
 * a row of the results (diverged: its loss went to inf/NaN; failed: any other error), not the
 * end of the sweep. A finished trial leaves a done marker; a rerun of the same command skips
 * those and resumes the others from their checkpoints.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "common.h"
#include "config.h"
#include "dist.h"
#include "sweep.h"
#include "threads.h"
#include "train.h"

enum { TAG_REQ = 71, TAG_WORK = 72 };
enum { ST_NONE, ST_OK, ST_DIVERGED, ST_FAILED, ST_STOPPED };
static const char *const status_names[] = {"none", "ok", "diverged", "failed", "stopped"};

/* What a group leader tells rank 0 about its last trial (sent as bytes). */
typedef struct report {
    int trial; /* -1: none yet */
    int status;
    char line[496]; /* the terminal line */
} report;

/* The sweep as this process runs it. */
typedef struct sweep_run {
    dt_sweep s;
    char **base; /* the base options (argv without the sweep's own) */
    int nbase;
    char base_text[8192];
    MPI_Comm ctl, group;
    int wrank, wsize, grank, ngroups;
    /* rank 0: the queue and the tally */
    int *queue, nqueue, next; /* the trials not done yet, in order; the next to hand out */
    int retired;              /* groups told there is no more work (group 0 excluded) */
    int stop;                 /* a trial stopped by a signal: hand out nothing more */
    int count[5];             /* finished trials by status (this run) */
    int done0;                /* trials already done when the run started */
    FILE *term;               /* rank 0: the sweep's own stdout (trials write to their out.txt) */
    int saved_out, saved_err;
    int threads; /* threads = auto, resolved once over the world (threads.h) */
} sweep_run;

static sweep_run S;

/* ---- options ---- */

/* Moves --grid (repeatable), --seeds, --ranks-per-trial and --out out of argv[2..) into S;
 * everything else is the base (every option of dt_parse_args takes one value). */
static int split_options(int argc, char **argv, const char **seeds, const char **groups)
{
    S.base = dt_xmalloc((size_t)argc, sizeof *S.base);
    size_t len = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *names[] = {"--grid", "--seeds", "--ranks-per-trial", "--out"};
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        int k = 0;
        while (k < 4 && !(strlen(names[k]) == n && strncmp(a, names[k], n) == 0))
            k++;
        if (k == 4) {
            /* a foreign option's value is copied with it unread (as dt_tool_split_args does) */
            int words = a[0] == '-' && !eq && i + 1 < argc ? 2 : 1;
            for (int w = 0; w < words; w++, i++) {
                S.base[S.nbase++] = argv[i];
                if (len < sizeof S.base_text)
                    len += (size_t)snprintf(S.base_text + len, sizeof S.base_text - len, "%s%s",
                                            len ? " " : "", argv[i]);
            }
            i--;
            continue;
        }
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!val)
            return dt_err("%s: expected a value", a);
        if (k == 0 && dt_sweep_add_axis(&S.s, val) != 0)
            return DT_ERR;
        if (k == 1)
            *seeds = val;
        if (k == 2)
            *groups = val;
        if (k == 3)
            snprintf(S.s.out, sizeof S.s.out, "%s", val);
    }
    if (len >= sizeof S.base_text)
        return dt_err("sweep: the base options are longer than %zu bytes", sizeof S.base_text);
    return DT_OK;
}

/* The options, the grid and the group size. Not collective. */
static int parse_options(int argc, char **argv)
{
    const char *seeds = NULL, *groups = NULL;
    if (split_options(argc, argv, &seeds, &groups) != 0)
        return DT_ERR;
    if (!S.s.out[0])
        return dt_err("sweep: expected --out DIR (the sweep's folder)");
    dt_config base;
    if (dt_parse_args_on(&base, NULL, NULL, S.nbase, S.base, 0) != 0)
        return DT_ERR;
    if (seeds) {
        if (dt_sweep_set_seeds(&S.s, seeds) != 0)
            return DT_ERR;
    } else {
        S.s.seeds[0] = (int)base.seed;
        S.s.nseeds = 1;
    }
    S.s.ranks_per_trial = 1;
    if (groups) {
        char *end;
        long g = strtol(groups, &end, 10);
        if (end == groups || *end || g < 1 || g > 1000000)
            return dt_err("--ranks-per-trial %s: expected a positive integer", groups);
        S.s.ranks_per_trial = (int)g;
    }
    if (S.wsize % S.s.ranks_per_trial != 0)
        return dt_err("--ranks-per-trial %d: the %d ranks do not split into groups of %d "
                      "(expected a divisor of the number of ranks)",
                      S.s.ranks_per_trial, S.wsize, S.s.ranks_per_trial);
    return dt_sweep_finish(&S.s);
}

/* Trial t's configuration: the base options, then --set for each axis, the seed, the folders
 * and ckpt.resume = auto (last, so they win). Returns 0 or DT_ERR (message names the trial). */
static int trial_config(int t, dt_config *cfg)
{
    enum { EXTRA = 2 * (DT_SWEEP_MAX_AXES + 4) };
    char buf[EXTRA / 2][4400], dir[4096], name[1024];
    char **argv = dt_xmalloc((size_t)(S.nbase + EXTRA), sizeof *argv);
    int idx[DT_SWEEP_MAX_AXES], seed, n = 0, k = 0;
    dt_sweep_trial(&S.s, t, idx, &seed);
    dt_sweep_trial_dir(&S.s, t, dir, sizeof dir);
    for (int i = 0; i < S.nbase; i++)
        argv[n++] = S.base[i];
    for (int a = 0; a < S.s.naxes; a++)
        snprintf(buf[k++], sizeof buf[0], "%s=%s", S.s.axes[a].key, S.s.axes[a].vals[idx[a]]);
    snprintf(buf[k++], sizeof buf[0], "seed=%d", seed);
    snprintf(buf[k++], sizeof buf[0], "ckpt.dir=%s/ckpt", dir);
    snprintf(buf[k++], sizeof buf[0], "log.dir=%s/log", dir);
    snprintf(buf[k++], sizeof buf[0], "ckpt.resume=auto");
    for (int i = 0; i < k; i++) {
        argv[n++] = "--set";
        argv[n++] = buf[i];
    }
    int rc = dt_parse_args_on(cfg, NULL, NULL, n, argv, 0);
    free(argv);
    if (rc != 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dt_err_msg());
        dt_sweep_trial_name(&S.s, t, name, sizeof name);
        return dt_err("sweep trial %s: %s", name, msg);
    }
    return DT_OK;
}

/* Every trial's configuration resolves (a bad combination is an error before anything runs). */
static int check_trials(void)
{
    for (int t = 0; t < S.s.ntrials; t++) {
        dt_config cfg;
        if (trial_config(t, &cfg) != 0)
            return DT_ERR;
    }
    return DT_OK;
}

/* ---- rank 0: the folder and the queue ---- */

/* OUT, its manifest, the trial folders, and the queue of trials without a done marker. */
static int prepare(void)
{
    char path[4400], line[4096], *keys[64], *vals[64];
    if (dt_mkdir_p(S.s.out) != 0 || dt_sweep_manifest(&S.s, S.base_text) != 0)
        return DT_ERR;
    S.queue = dt_xmalloc((size_t)S.s.ntrials, sizeof *S.queue);
    for (int t = 0; t < S.s.ntrials; t++) {
        dt_sweep_trial_dir(&S.s, t, path, sizeof path);
        if (dt_mkdir_p(path) != 0)
            return DT_ERR;
        size_t len = strlen(path);
        snprintf(path + len, sizeof path - len, "/done");
        int n = dt_sweep_read_done(path, line, sizeof line, keys, vals, 64);
        if (n < 0)
            return DT_ERR;
        if (n > 0)
            S.done0++;
        else
            S.queue[S.nqueue++] = t;
    }
    return DT_OK;
}

/* The next trial to run, -1 when there is none (or the sweep was stopped). */
static int queue_next(void)
{
    if (S.stop || dt_dist_signal() || S.next == S.nqueue)
        return -1;
    return S.queue[S.next++];
}

/* A finished trial's line on the sweep's stdout, and the tally. */
static void handle(const report *r)
{
    if (r->trial < 0)
        return;
    S.count[r->status]++;
    if (r->status == ST_STOPPED)
        S.stop = 1;
    int fin = S.done0 + S.count[ST_OK] + S.count[ST_DIVERGED] + S.count[ST_FAILED];
    if (r->status == ST_STOPPED)
        fprintf(S.term, "[stopped] %s\n", r->line);
    else
        fprintf(S.term, "[%d/%d] %s\n", fin, S.s.ntrials, r->line);
    fflush(S.term);
}

/* Answers the leaders' requests: those waiting (block = 0), or the next one (block = 1). */
static void serve(int block)
{
    for (;;) {
        int flag = 1;
        MPI_Status st;
        if (block)
            MPI_Probe(MPI_ANY_SOURCE, TAG_REQ, S.ctl, &st);
        else
            MPI_Iprobe(MPI_ANY_SOURCE, TAG_REQ, S.ctl, &flag, &st);
        if (!flag)
            return;
        report r;
        MPI_Recv(&r, (int)sizeof r, MPI_BYTE, st.MPI_SOURCE, TAG_REQ, S.ctl, MPI_STATUS_IGNORE);
        handle(&r);
        int t = queue_next();
        if (t < 0)
            S.retired++;
        MPI_Send(&t, 1, MPI_INT, st.MPI_SOURCE, TAG_WORK, S.ctl);
        if (block)
            return;
    }
}

static void serve_hook(void) { serve(0); }

/* ---- one trial ---- */

/* The attempt's part of out.txt (from offset start): its last final line and first error. */
static void scan_output(const char *path, long start, char *final, char *error, size_t size)
{
    final[0] = error[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f || fseek(f, start, SEEK_SET) != 0) {
        if (f)
            fclose(f);
        snprintf(error, size, "%.600s: cannot read: %s", path, strerror(errno));
        return;
    }
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "final: ", 7) == 0)
            snprintf(final, size, "%.1000s", line + 7);
        else if (!error[0] && strstr(line, "dtrain: error: "))
            snprintf(error, size, "%.1000s", strstr(line, "dtrain: error: ") + 15);
    }
    fclose(f);
}

/* Writes dir/done: status, trial_s and the final line's pairs (under a temporary name). */
static void write_done(const char *dir, int status, double secs, const char *final)
{
    char path[4400], tmp[4400];
    snprintf(path, sizeof path, "%s/done", dir);
    snprintf(tmp, sizeof tmp, "%s/done.tmp", dir);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return; /* not done, then: a rerun runs it again (resuming from its checkpoint) */
    fprintf(f, "status=%s trial_s=%.2f group=%d %s\n", status_names[status], secs,
            S.wrank / S.s.ranks_per_trial, final);
    if (fclose(f) == 0)
        rename(tmp, path);
}

/* The group leader: what the attempt (exit status rc, output from offset start) came to. */
static void classify(int t, int rc, long start, double secs, report *r)
{
    char dir[4096], out[4400], final[2048], error[1024], name[1024];
    dt_sweep_trial_dir(&S.s, t, dir, sizeof dir);
    dt_sweep_trial_name(&S.s, t, name, sizeof name);
    snprintf(out, sizeof out, "%s/out.txt", dir);
    scan_output(out, start, final, error, sizeof error);
    r->trial = t;
    if (rc == 0 && final[0]) {
        const char *tl = strstr(final, "train_loss=");
        r->status = tl && !isfinite(strtod(tl + 11, NULL)) ? ST_DIVERGED : ST_OK;
    } else if (rc == 0) {
        r->status = ST_STOPPED;
    } else {
        r->status = strstr(error, "diverged") ? ST_DIVERGED : ST_FAILED;
    }
    if (r->status == ST_OK || r->status == ST_DIVERGED)
        write_done(dir, r->status, secs, final[0] ? final : "train_loss=nan");
    const char *acc = strstr(final, "test_acc="), *loss = strstr(final, "test_loss=");
    if (r->status == ST_OK)
        snprintf(r->line, sizeof r->line, "%.200s: ok, test_acc %.*s test_loss %.*s, %.1f s", name,
                 acc ? (int)strcspn(acc + 9, " ") : 1, acc ? acc + 9 : "?",
                 loss ? (int)strcspn(loss + 10, " ") : 1, loss ? loss + 10 : "?", secs);
    else if (r->status == ST_STOPPED)
        snprintf(r->line, sizeof r->line,
                 "%.200s: stopped by a signal after %.1f s (checkpointed; "
                 "rerun the same command to resume)",
                 name, secs);
    else
        snprintf(r->line, sizeof r->line, "%.100s: %s: %.200s (%.150s)", name,
                 status_names[r->status], error[0] ? error : "no message", out);
}

/* Trial t on this rank's group, its output in its out.txt; the leader fills r. Collective over
 * the group. */
static void run_trial(int t, report *r)
{
    char dir[4096], out[4400], name[1024];
    dt_config cfg;
    DT_ASSERT(trial_config(t, &cfg) == 0); /* every trial was checked before the start */
    dt_sweep_trial_dir(&S.s, t, dir, sizeof dir);
    dt_sweep_trial_name(&S.s, t, name, sizeof name);
    snprintf(out, sizeof out, "%s/out.txt", dir);
    fflush(stdout);
    fflush(stderr);
    long start = 0;
    int fd = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
        start = (long)lseek(fd, 0, SEEK_END);
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    if (S.grank == 0)
        printf("# dtrain sweep: trial %d/%d %s on %d rank%s\n", t + 1, S.s.ntrials, name,
               S.s.ranks_per_trial, S.s.ranks_per_trial > 1 ? "s" : "");
    double t0 = dt_now();
    dt_err_clear();
    if (cfg.threads <= 0) /* auto: the share of the node's CPUs resolved over all groups */
        cfg.threads = S.threads;
    int rc = dt_train_on(&cfg, S.group);
    double secs = dt_now() - t0;
    fflush(stdout);
    fflush(stderr);
    dup2(S.saved_out, 1);
    dup2(S.saved_err, 2);
    if (S.grank == 0)
        classify(t, rc, start, secs, r);
    dt_err_clear(); /* a trial's failure is its row, not the sweep's */
}

/* ---- the loops ---- */

/* World rank 0: trials for group 0 from the queue, answering the others between them and
 * between its steps; then the answers "no more" to every other group. */
static void loop_rank0(void)
{
    dt_train_between_steps = serve_hook;
    for (;;) {
        /* group 0 takes the first trial before anyone asks; later requests are answered in
         * its steps (the hook) and here, between its trials */
        int t = queue_next();
        MPI_Bcast(&t, 1, MPI_INT, 0, S.group);
        if (t < 0)
            break;
        report r;
        run_trial(t, &r);
        handle(&r);
        serve(0);
    }
    dt_train_between_steps = NULL;
    while (S.retired < S.ngroups - 1)
        serve(1);
}

/* Every other rank: the leader asks rank 0 for work, the group runs it. */
static void loop_group(void)
{
    report r = {.trial = -1};
    for (;;) {
        int t = -1;
        if (S.grank == 0) {
            MPI_Send(&r, (int)sizeof r, MPI_BYTE, 0, TAG_REQ, S.ctl);
            MPI_Recv(&t, 1, MPI_INT, 0, TAG_WORK, S.ctl, MPI_STATUS_IGNORE);
        }
        MPI_Bcast(&t, 1, MPI_INT, 0, S.group);
        if (t < 0)
            break;
        run_trial(t, &r);
    }
}

/* ---- the command ---- */

/* Rank 0's line before the first trial. */
static void print_start(void)
{
    fprintf(S.term, "# dtrain sweep: %d trial%s (", S.s.ntrials, S.s.ntrials > 1 ? "s" : "");
    for (int a = 0; a < S.s.naxes; a++)
        fprintf(S.term, "%d %s x ", S.s.axes[a].n, S.s.axes[a].key);
    fprintf(S.term, "%d seed%s) on %d group%s of %d rank%s, %d done already; results in %s\n",
            S.s.nseeds, S.s.nseeds > 1 ? "s" : "", S.ngroups, S.ngroups > 1 ? "s" : "",
            S.s.ranks_per_trial, S.s.ranks_per_trial > 1 ? "s" : "", S.done0, S.s.out);
    fflush(S.term);
}

/* Rank 0's results and last line. Returns 0, or DT_ERR when a trial failed or the results
 * could not be written. */
static int finish(void)
{
    int rc = dt_sweep_report(&S.s, dt_commit, S.term);
    int left = S.s.ntrials - S.done0 - S.count[ST_OK] - S.count[ST_DIVERGED] - S.count[ST_FAILED];
    fprintf(S.term, "sweep: %d ok, %d diverged, %d failed this run (%d done before)",
            S.count[ST_OK], S.count[ST_DIVERGED], S.count[ST_FAILED], S.done0);
    if (left > 0)
        fprintf(S.term, "; %d not finished%s", left,
                S.stop || dt_dist_signal() ? " (stopped by a signal: rerun the same command to "
                                             "resume)"
                                           : " (rerun the same command to retry them)");
    fprintf(S.term, "\n");
    fflush(S.term);
    if (rc == 0 && S.count[ST_FAILED] > 0)
        rc = dt_err("sweep: %d trial%s failed (see their out.txt; rerun the same command to retry)",
                    S.count[ST_FAILED], S.count[ST_FAILED] > 1 ? "s" : "");
    return rc;
}

/* Parsing, the checks and the folder, agreed over the world. Returns 0 or DT_ERR. */
static int setup(int argc, char **argv)
{
    int rc = parse_options(argc, argv);
    if (rc == 0)
        rc = check_trials();
    if (dt_dist_agree(rc, MPI_COMM_WORLD) != 0)
        return DT_ERR;
    rc = S.wrank == 0 ? prepare() : DT_OK;
    if (dt_dist_agree(rc, MPI_COMM_WORLD) != 0)
        return DT_ERR;
    return DT_OK;
}

int dt_cmd_sweep(int argc, char **argv, int world)
{
    memset(&S, 0, sizeof S);
    S.wsize = world;
    MPI_Comm_rank(MPI_COMM_WORLD, &S.wrank);
    int rc = setup(argc, argv);
    if (rc == 0) {
        int g = S.s.ranks_per_trial;
        S.ngroups = world / g;
        S.threads = dt_threads_resolve(0, MPI_COMM_WORLD);
        MPI_Comm_dup(MPI_COMM_WORLD, &S.ctl);
        MPI_Comm_split(MPI_COMM_WORLD, S.wrank / g, S.wrank, &S.group);
        MPI_Comm_rank(S.group, &S.grank);
        fflush(stdout);
        S.saved_out = dup(1);
        S.saved_err = dup(2);
        if (S.wrank == 0) {
            S.term = fdopen(dup(1), "w");
            DT_ASSERT(S.term);
            print_start();
            loop_rank0();
            rc = finish();
            fclose(S.term);
        } else {
            loop_group();
        }
        close(S.saved_out);
        close(S.saved_err);
        MPI_Comm_free(&S.group);
        MPI_Comm_free(&S.ctl);
        rc = dt_dist_agree(rc, MPI_COMM_WORLD);
    }
    dt_sweep_free(&S.s);
    free(S.base);
    free(S.queue);
    return rc == 0 ? 0 : 1;
}
