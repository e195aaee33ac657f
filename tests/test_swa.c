/*
 * test_swa.c - stochastic weight averaging (runtime/swa.h; the lecture's Algorithm 1 with
 * torchcontrib's SWA(swa_start, swa_freq, swa_lr) counting) and the EMA alternative, without MPI:
 *   - the average equals the arithmetic mean of the snapshots it saw (random snapshots, several
 *     counts), and a rank without the buffer still counts;
 *   - counting: updates happen exactly after the step numbers c with c > start and
 *     c % freq == 0, compared with torchcontrib's SWA.step written out below, for several
 *     (start, freq), including the lecture's (10, 5);
 *   - swa lr: torchcontrib's _reset_lr_to_swa (step_counter >= swa_start -> swa_lr) for
 *     anneal = 0, and torch.optim.swa_utils.SWALR's recursive get_lr for cos and linear
 *     annealing; swa.lr = auto (NaN) keeps the schedule;
 *   - EMA: w_ema <- decay * w_ema + (1 - decay) * w, the first snapshot as the start;
 *   - interval = epoch: the lr of epoch e's steps is decided by the e finished epochs, the
 *     updates happen at the ends of epochs c = e + 1 with the same rule (train.c's loop).
 *
 * The lr unit convention checked here is the one dt_trainer_run uses: dt_swa_lr gets the number
 * of steps (epochs) finished before the step, which is torchcontrib's step_counter when
 * _reset_lr_to_swa runs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"
#include "rng.h"
#include "swa.h"

#define PI_ 3.14159265358979323846

static dt_mt19937 rng;

static float randu(float lo, float hi) { return lo + (hi - lo) * dt_mt_uniform(&rng); }

/* ---- the references, written out from the PyTorch sources ---- */

/* torchcontrib/optim/swa.py, SWA.step in auto mode:
 *     self._reset_lr_to_swa()          # lr = swa_lr if step_counter >= swa_start
 *     self.optimizer.step()
 *     group["step_counter"] += 1; steps = group["step_counter"]
 *     if steps > self.swa_start and steps % self.swa_freq == 0: self.update_swa_group(group)
 * Writes the step numbers after which the average is updated; returns how many. */
static int torchcontrib_updates(int64_t start, int64_t freq, int64_t total, int64_t *out)
{
    int n = 0;
    int64_t step_counter = 0;
    for (int64_t i = 0; i < total; i++) {
        step_counter += 1;
        int64_t steps = step_counter;
        if (steps > start && steps % freq == 0)
            out[n++] = steps;
    }
    return n;
}

/* torchcontrib _reset_lr_to_swa: the lr of the step taken after step_counter steps */
static double torchcontrib_lr(int64_t step_counter, int64_t start, double swa_lr, double sched)
{
    return step_counter >= start ? swa_lr : sched;
}

static double anneal_fn(int cos_, double t) { return cos_ ? (1.0 - cos(PI_ * t)) / 2.0 : t; }

static double clamp01(double t) { return t < 0.0 ? 0.0 : (t > 1.0 ? 1.0 : t); }

/* torch/optim/swa_utils.py, SWALR.get_lr, applied as the scheduler applies it: once by the
 * constructor (_step_count 1, step 0) and once per scheduler.step(); group lr starts at lr0.
 *     step = self._step_count - 1
 *     if self.anneal_epochs == 0: step = max(1, step)
 *     prev_t = max(0, min(1, (step - 1) / max(1, self.anneal_epochs)))
 *     prev_alpha = self.anneal_func(prev_t)
 *     prev_lrs = [_get_initial_lr(group['lr'], group['swa_lr'], prev_alpha) ...]
 *     t = max(0, min(1, step / max(1, self.anneal_epochs)))
 *     alpha = self.anneal_func(t)
 *     return [group['swa_lr'] * alpha + lr * (1 - alpha) for lr in prev_lrs]
 * with _get_initial_lr(lr, swa_lr, alpha) = swa_lr if alpha == 1 else
 * (lr - alpha * swa_lr) / (1 - alpha). Returns the lr after u scheduler steps. */
static double swalr_lr(int cos_, double swa_lr, double lr0, int64_t anneal, int64_t u)
{
    double lr = lr0;
    for (int64_t sc = 1; sc <= u + 1; sc++) {
        int64_t step = sc - 1;
        if (anneal == 0)
            step = step > 1 ? step : 1;
        double a = (double)(anneal > 1 ? anneal : 1);
        double prev_alpha = anneal_fn(cos_, clamp01((double)(step - 1) / a));
        double initial =
            prev_alpha == 1.0 ? swa_lr : (lr - prev_alpha * swa_lr) / (1.0 - prev_alpha);
        double alpha = anneal_fn(cos_, clamp01((double)step / a));
        lr = swa_lr * alpha + initial * (1.0 - alpha);
    }
    return lr;
}

/* a schedule that moves every step, so "kept the schedule" and "switched" differ */
static double sched_lr(int64_t k) { return 0.1 * (1.0 + cos(PI_ * (double)k / 97.0)) / 2.0 + 1e-3; }

/* ---- tests ---- */

static void test_average(void)
{
    const size_t numel = 777;
    const int counts[] = {1, 2, 3, 5, 17, 100};
    float *w = dt_xmalloc(numel, sizeof *w), *want = dt_xmalloc(numel, sizeof *want);
    double *sum = dt_xmalloc(numel, sizeof *sum);
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        dt_swa s, bare;
        dt_swa_init(&s, DT_SWA_AVERAGE, 0, 0, 1, NAN, 0, 1, 0.999, numel, 1);
        dt_swa_init(&bare, DT_SWA_AVERAGE, 0, 0, 1, NAN, 0, 1, 0.999, numel, 0);
        CHECK(s.avg != NULL && bare.avg == NULL && s.n == 0);
        memset(sum, 0, numel * sizeof *sum);
        for (int k = 0; k < counts[c]; k++) {
            /* snapshots drift like a trajectory: a common offset plus noise */
            float drift = 0.05f * (float)k;
            for (size_t i = 0; i < numel; i++) {
                w[i] = drift + randu(-1.0f, 1.0f);
                sum[i] += w[i];
            }
            dt_swa_update(&s, w);
            dt_swa_update(&bare, w);
        }
        for (size_t i = 0; i < numel; i++)
            want[i] = (float)(sum[i] / counts[c]);
        if (!CHECK_TENSOR_CLOSE(s.avg, want, numel, 1e-5, 2e-6))
            fprintf(stderr, "  average of %d snapshots\n", counts[c]);
        CHECK(s.n == counts[c]);
        CHECK(bare.n == counts[c]); /* ranks without the buffer count alike */
        if (counts[c] == 1)         /* one snapshot: the average is that snapshot, exactly */
            CHECK(memcmp(s.avg, w, numel * sizeof *w) == 0);
        dt_swa_free(&s);
        dt_swa_free(&bare);
    }
    dt_swa_free(NULL);
    /* mode off: nothing is allocated or counted */
    dt_swa off;
    dt_swa_init(&off, DT_SWA_OFF, 0, 0, 1, 0.05, 0, 1, 0.999, numel, 1);
    CHECK(off.avg == NULL);
    dt_swa_update(&off, w);
    CHECK(off.n == 0);
    CHECK(!dt_swa_due(&off, 5));
    CHECK(dt_swa_lr(&off, 50, 0.3) == 0.3);
    dt_swa_free(&off);
    free(w);
    free(want);
    free(sum);
}

static void test_counting(void)
{
    const int64_t cases[][2] = {{0, 1}, {10, 5},  {3, 4}, {7, 1}, {5, 3},
                                {0, 7}, {12, 12}, {1, 2}, {60, 5}};
    const int64_t total = 60;
    int64_t ref[64], got[64];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t start = cases[c][0], freq = cases[c][1];
        int nref = torchcontrib_updates(start, freq, total, ref);
        dt_swa s;
        dt_swa_init(&s, DT_SWA_AVERAGE, 0, start, freq, 0.05, 0, 1, 0.999, 4, 1);
        float w[4] = {1, 2, 3, 4};
        int ngot = 0;
        for (int64_t step = 1; step <= total; step++) /* train.c: t->step++, then due(t->step) */
            if (dt_swa_due(&s, step)) {
                got[ngot++] = step;
                dt_swa_update(&s, w);
            }
        int same = ngot == nref && memcmp(got, ref, (size_t)nref * sizeof *ref) == 0;
        if (!same) {
            fprintf(stderr, "  start %lld freq %lld: dtrain updates after", (long long)start,
                    (long long)freq);
            for (int i = 0; i < ngot; i++)
                fprintf(stderr, " %lld", (long long)got[i]);
            fprintf(stderr, "; torchcontrib after");
            for (int i = 0; i < nref; i++)
                fprintf(stderr, " %lld", (long long)ref[i]);
            fprintf(stderr, "\n");
        }
        CHECK(same);
        CHECK(s.n == nref);
        dt_swa_free(&s);
    }
    /* the lecture's example, spelled out: swa_start=10, swa_freq=5 over 30 steps -> 15, 20, 25, 30 */
    int n = torchcontrib_updates(10, 5, 30, ref);
    CHECK(n == 4 && ref[0] == 15 && ref[1] == 20 && ref[2] == 25 && ref[3] == 30);
    /* freq 0 is treated as 1 (every step after start) */
    dt_swa s;
    dt_swa_init(&s, DT_SWA_AVERAGE, 0, 2, 0, NAN, 0, 1, 0.999, 1, 0);
    CHECK(!dt_swa_due(&s, 2) && dt_swa_due(&s, 3) && dt_swa_due(&s, 4));
    dt_swa_free(&s);
}

static void test_lr(void)
{
    const double swa_lr = 0.02;
    const int64_t total = 120;
    /* anneal 0: torchcontrib switches at once */
    const int64_t starts[] = {0, 1, 10, 33};
    for (size_t c = 0; c < sizeof starts / sizeof starts[0]; c++) {
        dt_swa s;
        dt_swa_init(&s, DT_SWA_AVERAGE, 0, starts[c], 5, swa_lr, 0, 1, 0.999, 1, 1);
        int ok = 1;
        for (int64_t k = 0; k < total; k++) { /* k = steps taken before this one */
            double got = dt_swa_lr(&s, k, sched_lr(k));
            ok &= got == torchcontrib_lr(k, starts[c], swa_lr, sched_lr(k));
        }
        if (!ok)
            fprintf(stderr, "  swa lr, start %lld, anneal 0\n", (long long)starts[c]);
        CHECK(ok);
        dt_swa_free(&s);
    }
    /* swa.lr = auto (NaN): the schedule's lr throughout */
    dt_swa keep;
    dt_swa_init(&keep, DT_SWA_AVERAGE, 0, 4, 1, NAN, 0, 1, 0.999, 1, 1);
    int same = 1;
    for (int64_t k = 0; k < total; k++)
        same &= dt_swa_lr(&keep, k, sched_lr(k)) == sched_lr(k);
    CHECK(same);
    dt_swa_free(&keep);
    /* anneal > 0: SWALR from the schedule's lr at the switch to swa_lr over `anneal` units */
    const int64_t anneals[] = {1, 2, 5, 17};
    for (int cos_ = 0; cos_ <= 1; cos_++)
        for (size_t a = 0; a < sizeof anneals / sizeof anneals[0]; a++) {
            const int64_t start = 11;
            dt_swa s;
            dt_swa_init(&s, DT_SWA_AVERAGE, 0, start, 3, swa_lr, anneals[a], cos_, 0.999, 1, 1);
            double lr0 = sched_lr(start), worst = 0.0;
            int before = 1, reached = 1;
            for (int64_t k = 0; k < total; k++) {
                double got = dt_swa_lr(&s, k, sched_lr(k));
                if (k < start) {
                    before &= got == sched_lr(k);
                    continue;
                }
                double want = swalr_lr(cos_, swa_lr, lr0, anneals[a], k - start);
                double err = fabs(got - want) / fabs(want);
                worst = err > worst ? err : worst;
                if (k >= start + anneals[a])
                    reached &= fabs(got - swa_lr) <= 1e-15;
            }
            CHECK(before);
            CHECK(reached);
            CHECK(s.lr_at_start == lr0);
            if (!(worst <= 1e-12)) {
                check_failed++;
                fprintf(stderr, "FAIL swa lr %s anneal %lld: relative error %g vs SWALR\n",
                        cos_ ? "cos" : "linear", (long long)anneals[a], worst);
            } else {
                check_passed++;
            }
            dt_swa_free(&s);
        }
    /* spot values: cos over 4 units from 0.1 to 0.02, half way: the mean */
    dt_swa h;
    dt_swa_init(&h, DT_SWA_AVERAGE, 0, 0, 1, 0.02, 4, 1, 0.999, 1, 1);
    CHECK_CLOSE(dt_swa_lr(&h, 0, 0.1), 0.1, 1e-15, 0.0);
    CHECK_CLOSE(dt_swa_lr(&h, 2, 0.5), 0.06, 1e-14, 0.0); /* the schedule no longer matters */
    CHECK_CLOSE(dt_swa_lr(&h, 4, 0.5), 0.02, 1e-14, 0.0);
    dt_swa_free(&h);
    dt_swa_init(&h, DT_SWA_AVERAGE, 0, 0, 1, 0.02, 4, 0, 0.999, 1, 1);
    CHECK_CLOSE(dt_swa_lr(&h, 0, 0.1), 0.1, 1e-15, 0.0);
    CHECK_CLOSE(dt_swa_lr(&h, 1, 0.1), 0.08, 1e-14, 0.0);
    CHECK_CLOSE(dt_swa_lr(&h, 3, 0.1), 0.04, 1e-14, 0.0);
    dt_swa_free(&h);
}

static void test_ema(void)
{
    const size_t numel = 301;
    const double decays[] = {0.5, 0.9, 0.999};
    float *w = dt_xmalloc(numel, sizeof *w), *want = dt_xmalloc(numel, sizeof *want);
    double *ref = dt_xmalloc(numel, sizeof *ref);
    for (size_t d = 0; d < sizeof decays / sizeof decays[0]; d++) {
        dt_swa s;
        dt_swa_init(&s, DT_SWA_EMA, 0, 0, 1, NAN, 0, 1, decays[d], numel, 1);
        for (int k = 0; k < 40; k++) {
            for (size_t i = 0; i < numel; i++)
                w[i] = 0.1f * (float)k + randu(-1.0f, 1.0f);
            dt_swa_update(&s, w);
            for (size_t i = 0; i < numel; i++)
                ref[i] = k == 0 ? w[i] : decays[d] * ref[i] + (1.0 - decays[d]) * w[i];
            if (k == 0)
                CHECK(memcmp(s.avg, w, numel * sizeof *w) == 0); /* the first snapshot */
        }
        for (size_t i = 0; i < numel; i++)
            want[i] = (float)ref[i];
        if (!CHECK_TENSOR_CLOSE(s.avg, want, numel, 1e-5, 1e-5))
            fprintf(stderr, "  ema decay %g\n", decays[d]);
        CHECK(s.n == 40);
        dt_swa_free(&s);
    }
    free(w);
    free(want);
    free(ref);
}

/* interval = epoch, as dt_trainer_run drives it: every step of epoch e (0-based) gets
 * dt_swa_lr(e, ...); after the epoch, dt_swa_due(e + 1) decides the update. */
static void test_per_epoch(void)
{
    const int64_t start = 3, freq = 2, epochs = 12, steps_per_epoch = 5;
    const double swa_lr = 0.01;
    dt_swa s;
    dt_swa_init(&s, DT_SWA_AVERAGE, 1, start, freq, swa_lr, 0, 1, 0.999, 2, 1);
    CHECK(s.per_epoch == 1);
    int64_t ref[16], got[16];
    int nref = torchcontrib_updates(start, freq, epochs, ref); /* one "step" per epoch */
    int ngot = 0, lr_ok = 1;
    float w[2] = {0, 0};
    for (int64_t e = 0; e < epochs; e++) {
        for (int64_t b = 0; b < steps_per_epoch; b++) {
            int64_t step = e * steps_per_epoch + b;
            double got_lr = dt_swa_lr(&s, e, sched_lr(step));
            lr_ok &= got_lr == (e >= start ? swa_lr : sched_lr(step));
        }
        w[0] = (float)e;
        w[1] = (float)(2 * e);
        if (dt_swa_due(&s, e + 1)) {
            got[ngot++] = e + 1;
            dt_swa_update(&s, w);
        }
    }
    CHECK(lr_ok);
    CHECK(ngot == nref && memcmp(got, ref, (size_t)nref * sizeof *ref) == 0);
    /* start 3, freq 2, 12 epochs: after epochs 4, 6, 8, 10, 12 */
    CHECK(nref == 5 && ref[0] == 4 && ref[4] == 12);
    /* the average of the weights at the ends of epochs 4, 6, ..., 12 (w = e with e = c - 1) */
    CHECK_CLOSE(s.avg[0], (3.0 + 5 + 7 + 9 + 11) / 5.0, 1e-6, 0.0);
    CHECK_CLOSE(s.avg[1], 2.0 * (3.0 + 5 + 7 + 9 + 11) / 5.0, 1e-6, 0.0);
    CHECK(s.n == 5);
    dt_swa_free(&s);
}

int main(void)
{
    dt_mt_seed(&rng, 17);
    test_average();
    test_counting();
    test_lr();
    test_ema();
    test_per_epoch();
    return check_finish("test_swa");
}
