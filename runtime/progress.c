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

void dt_progress_bar(const dt_progress *p, int64_t epoch, int64_t b, int64_t nb, double loss,
                     double rate)
{
    if (!p->out)
        return;
    const int width = 30;
    int fill = (int)(width * (b + 1) / nb);
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    bar[width] = '\0';
    fprintf(p->out, "\r  epoch %lld/%d [%s] %3d%%  loss %.4f  %.0f samples/s ",
            (long long)epoch + 1, p->epochs, bar, (int)(100 * (b + 1) / nb), loss, rate);
    fflush(p->out);
}

void dt_progress_epoch(const dt_progress *p, const dt_epoch_rec *rec)
{
    if (!p->out)
        return;
    dt_progress_clear(p);
    fprintf(p->out,
            "epoch %lld/%d  train_loss %.4f  train_acc %.2f  test_loss %.4f  test_acc %.2f  "
            "test_top5 %.2f  lr %.6g  samples/s %.0f  time %.1fs",
            (long long)rec->epoch, p->epochs, rec->train_loss, rec->train_acc, rec->test_loss,
            rec->test_acc, rec->test_top5, rec->lr, rec->samples_per_s, rec->time_s);
    if (!isnan(rec->swa_test_acc))
        fprintf(p->out, "  swa_test_acc %.2f", rec->swa_test_acc);
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
        fprintf(p->out, " swa_test_acc=%.2f swa_n=%lld", 100.0 * f->swa_test_acc,
                (long long)f->swa_n);
    if (f->scaler)
        fprintf(p->out, " loss_scale=%g skipped_steps=%lld", f->loss_scale,
                (long long)f->skipped_steps);
    if (f->ckpt)
        fprintf(p->out, " ckpt_failures=%lld", (long long)f->ckpt_failures);
    fprintf(p->out, "\n");
    fflush(p->out);
}
