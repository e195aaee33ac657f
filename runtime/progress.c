/*
 * progress.c - see progress.h. Every function prints nothing when p->out is NULL.
 */
#include "progress.h"

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Whether rank 0's output reaches a terminal. Under Open MPI a rank's stdout is always a pty that
 * mpirun relays, whatever mpirun's own stdout is (isatty(1) is 1 even with `| tail`), so there the
 * answer is whether the launcher's stdout, /proc/<parent>/fd/1, is a terminal. */
static int output_is_terminal(FILE *f)
{
    if (!isatty(fileno(f)))
        return 0;
    if (!getenv("OMPI_COMM_WORLD_SIZE"))
        return 1;
    char link[64], target[256];
    snprintf(link, sizeof link, "/proc/%ld/fd/1", (long)getppid());
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0)
        return 0;
    target[n] = '\0';
    return strncmp(target, "/dev/pts/", 9) == 0 || strncmp(target, "/dev/tty", 8) == 0;
}

void dt_progress_init(dt_progress *p, FILE *out, int mode, int epochs)
{
    p->out = out;
    p->epochs = epochs;
    p->bar = out && (mode == 2 || (mode == 1 && output_is_terminal(out)));
}

void dt_progress_clear(const dt_progress *p)
{
    if (p->out && p->bar)
        fprintf(p->out, "\r\033[K");
}

/* "[=====>    ]" of `width` cells for done of total into buf. */
static void bar_cells(char *buf, int width, int64_t done, int64_t total)
{
    int fill = total > 0 ? (int)(width * done / total) : 0;
    buf[0] = '[';
    for (int i = 0; i < width; i++)
        buf[1 + i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    buf[1 + width] = ']';
    buf[2 + width] = '\0';
}

/* Seconds as mm:ss, or h:mm:ss from an hour on ("--:--" when not finite). */
static void clock_text(char *buf, size_t n, double secs)
{
    if (!(secs >= 0 && secs < 1e8)) {
        snprintf(buf, n, "--:--");
        return;
    }
    long s = (long)(secs + 0.5);
    if (s >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, n, "%02ld:%02ld", s / 60, s % 60);
}

void dt_progress_bar(const dt_progress *p, int64_t epoch, int64_t b, int64_t nb, double loss,
                     double rate, double lr, double elapsed)
{
    if (!p->out || !p->bar)
        return;
    char bar[64], el[32], eta[32];
    bar_cells(bar, 10, b + 1, nb);
    clock_text(el, sizeof el, elapsed);
    clock_text(eta, sizeof eta, elapsed / (double)(b + 1) * (double)(nb - b - 1));
    /* under 80 columns for a 4-digit step count: a wrapped line is not redrawn by \r */
    fprintf(p->out, "\repoch %lld/%d %s %lld/%lld %s<%s loss %.4f lr %.3g %.0f samples/s\033[K",
            (long long)epoch + 1, p->epochs, bar, (long long)b + 1, (long long)nb, el, eta, loss,
            lr, rate);
    fflush(p->out);
}

/* The evaluation bar's stream (NULL: none), when it started and was last drawn. */
static struct {
    FILE *out;
    double t0, last;
} eval_bar;

void dt_progress_eval_begin(const dt_progress *p)
{
    eval_bar.out = p && p->out && p->bar ? p->out : NULL;
    eval_bar.t0 = dt_now();
    eval_bar.last = eval_bar.t0;
}

void dt_progress_eval_tick(int64_t done, int64_t total)
{
    if (!eval_bar.out)
        return;
    double now = dt_now();
    if (now - eval_bar.last < 0.2 && done < total)
        return;
    eval_bar.last = now;
    char bar[64], el[32], eta[32];
    if (done > total)
        done = total;
    bar_cells(bar, 10, done, total);
    clock_text(el, sizeof el, now - eval_bar.t0);
    clock_text(eta, sizeof eta,
               done > 0 ? (now - eval_bar.t0) / (double)done * (double)(total - done) : NAN);
    fprintf(eval_bar.out, "\reval %s %3d%% %s<%s\033[K", bar,
            total > 0 ? (int)(100 * done / total) : 100, el, eta);
    fflush(eval_bar.out);
}

void dt_progress_eval_end(void)
{
    if (eval_bar.out) {
        fprintf(eval_bar.out, "\r\033[K");
        fflush(eval_bar.out);
    }
    eval_bar.out = NULL;
}

void dt_progress_epoch(const dt_progress *p, const dt_epoch_rec *rec)
{
    if (!p->out)
        return;
    dt_progress_clear(p);
    fprintf(p->out,
            "epoch %lld/%d  train_loss %.4f  train_acc %.2f  train_top5 %.2f  test_loss %.4f  "
            "test_acc %.2f  test_top5 %.2f  lr %.6g  samples/s %.0f  time %.1fs",
            (long long)rec->epoch, p->epochs, rec->train_loss, rec->train_acc, rec->train_top5,
            rec->test_loss, rec->test_acc, rec->test_top5, rec->lr, rec->samples_per_s,
            rec->time_s);
    if (!isnan(rec->swa_test_acc))
        fprintf(p->out, "  swa_test_acc %.2f  swa_test_top5 %.2f", rec->swa_test_acc,
                rec->swa_test_top5);
    fprintf(p->out, "\n");
    fflush(p->out);
}

void dt_progress_checkpoint(const dt_progress *p, const char *path, const char *why, int64_t step,
                            double seconds)
{
    if (!p->out)
        return;
    dt_progress_clear(p);
    fprintf(p->out, "checkpoint %s (%s, step %lld, %.2fs)\n", path, why, (long long)step, seconds);
    fflush(p->out);
}

void dt_progress_resume_report(const dt_progress *p, const char *report)
{
    if (p->out && report[0])
        fprintf(p->out, "resume: %s", report);
}

void dt_progress_resume_none(const dt_progress *p, const char *dir)
{
    if (p->out)
        fprintf(p->out, "resume: no checkpoint in %s that verifies: starting from scratch\n", dir);
}

void dt_progress_note(const dt_progress *p, const char *fmt, ...)
{
    if (!p->out)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fputc('\n', p->out);
    fflush(p->out);
}

void dt_progress_resumed(const dt_progress *p, const char *path, int64_t step, int64_t epoch,
                         int64_t epoch_pos, int world, int batch, int world_changed)
{
    if (!p->out)
        return;
    fprintf(p->out,
            "resumed from %s: step %lld, epoch %lld, %lld samples of the epoch done; %d "
            "rank%s x batch %d (global %d)%s\n",
            path, (long long)step, (long long)epoch + 1, (long long)epoch_pos, world,
            world > 1 ? "s" : "", batch, batch * world,
            world_changed ? " (world size changed)" : "");
    fflush(p->out);
}

const char *dt_progress_stop_name(int sig)
{
    return sig == SIGTERM   ? "SIGTERM (pre-emption signal)"
           : sig == SIGUSR1 ? "SIGUSR1 (pre-emption signal)"
           : sig == -2      ? "train.stop_at_step (a simulated pre-emption signal)"
                            : "a pre-emption signal";
}

void dt_progress_stopped_unsaved(const dt_progress *p, int64_t step, int sig)
{
    if (!p->out)
        return;
    if (step == 0)
        fprintf(p->out, "stopped at step 0 by %s before training: nothing to save\n",
                dt_progress_stop_name(sig));
    else
        fprintf(p->out,
                "stopped at step %lld by %s: nothing new since the checkpoint of this step; "
                "rerun with --resume auto to continue\n",
                (long long)step, dt_progress_stop_name(sig));
    fflush(p->out);
}

void dt_progress_stopped_saved(const dt_progress *p, int64_t step, int sig, const char *ckpt_dir)
{
    if (!p->out)
        return;
    fprintf(p->out,
            "stopped at step %lld by %s: checkpoint written to %s; rerun with --resume auto to "
            "continue\n",
            (long long)step, dt_progress_stop_name(sig), ckpt_dir);
    fflush(p->out);
}

void dt_progress_final_line(const dt_progress *p, const dt_progress_final *f)
{
    if (!p->out)
        return;
    fprintf(p->out,
            "final: epochs=%d steps=%lld train_loss=%.4f test_loss=%.4f test_acc=%.2f "
            "test_top5=%.2f samples_per_s=%.0f wall_s=%.2f max_rss_mib=%.0f params_crc=%016llx",
            f->epochs, (long long)f->steps, f->train_loss, f->test_loss, 100.0 * f->test_acc,
            100.0 * f->test_top5, f->samples_per_s, f->wall_s, f->max_rss_mib,
            (unsigned long long)f->params_crc);
    if (f->comm)
        fprintf(p->out, " exposed_comm=%.1f%%", f->exposed_comm_pct);
    if (f->swa)
        fprintf(p->out, " swa_test_acc=%.2f swa_test_top5=%.2f swa_n=%lld", 100.0 * f->swa_test_acc,
                100.0 * f->swa_test_top5, (long long)f->swa_n);
    if (f->scaler)
        fprintf(p->out, " loss_scale=%g skipped_steps=%lld", f->loss_scale,
                (long long)f->skipped_steps);
    if (f->ckpt)
        fprintf(p->out, " ckpt_failures=%lld", (long long)f->ckpt_failures);
    fprintf(p->out, "\n");
    fflush(p->out);
}
