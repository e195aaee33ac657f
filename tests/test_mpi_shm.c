/*
 * test_mpi_shm.c - the shared-memory gradient allreduce (train.allreduce = shm, dist_shm.h)
 * against the MPI path, on random gradients of odd sizes cut into random buckets at random
 * places (the same cuts on every rank, as backward makes them), several steps on the same
 * window:
 *   - at 2 ranks the shm mean equals the MPI path's bit for bit (a + b == b + a, then * 1/2), and
 *     both equal (a0 + a1) * 1/2 computed here from every rank's gradient;
 *   - at 3 ranks (shm asked for explicitly; auto keeps MPI there) the shm mean is the sum in rank
 *     order times 1/3, on every rank the same bits;
 *   - on_done hands over ranges that cover [0, n) exactly once, each when it is final;
 *   - with shm the gradient lives in the window (s.g, where the caller's backward writes), the
 *     steps follow each other with no barrier and ranks delayed at random, and free copies the
 *     last mean back into the caller's buffer;
 *   - auto takes shm at 2 ranks on one node and mpi at 3; at 1 rank there is nothing to reduce.
 * Run under mpirun at 1, 2 and 3 ranks.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"
#include "dist.h"
#include "rng.h"

/* on_done's record: how often each float was handed over */
typedef struct {
    unsigned char *seen;
    const float *g;
    const float *want;
    size_t early_bad; /* floats handed over before they held the mean */
} handed;

static void on_done(void *ctx, size_t lo, size_t hi)
{
    handed *h = ctx;
    for (size_t i = lo; i < hi; i++) {
        h->seen[i]++;
        if (memcmp(&h->g[i], &h->want[i], sizeof(float)) != 0)
            h->early_bad++;
    }
}

/* a float of varied exponent and sign (so that the order of a sum shows in its rounding) */
static float draw(dt_mt19937 *m)
{
    const double u = (double)(dt_mt_next(m) >> 8) / 16777216.0;
    const int e = (int)(dt_mt_next(m) % 24) - 12;
    return (float)((u - 0.5) * ldexp(1.0, e));
}

/* the mean in rank order ((g0 + g1) + g2 ...) * 1/W, from every rank's gradient */
static void reference(const float *mine, float *want, size_t n, int world)
{
    float *all = dt_xmalloc(n * (size_t)world, sizeof *all);
    MPI_Allgather(mine, (int)n, MPI_FLOAT, all, (int)n, MPI_FLOAT, MPI_COMM_WORLD);
    const float inv = 1.0f / (float)world;
    for (size_t i = 0; i < n; i++) {
        float v = all[i];
        for (int r = 1; r < world; r++)
            v += all[(size_t)r * n + i];
        v *= inv;
        want[i] = v;
    }
    free(all);
}

/* up to 300 us of this rank's time, at random (a rank late to a step or a bucket) */
static void maybe_delay(dt_mt19937 *m)
{
    const uint32_t r = dt_mt_next(m);
    if (r % 3 == 0) {
        const double until = dt_now() + (double)(r % 300) * 1e-6;
        while (dt_now() < until) {
        }
    }
}

/* one step of s over s->g (a copy of orig, written as backward would: each cut's tail just
 * before it is published), with backward's cuts: ready at each of cuts[0..nc) */
static void step(dt_grad_sync *s, const float *orig, size_t n, const size_t *cuts, int nc,
                 dt_mt19937 *delay)
{
    maybe_delay(delay);
    dt_grad_sync_begin(s);
    size_t hi = n;
    for (int c = 0; c < nc; c++) {
        memcpy(s->g + cuts[c], orig + cuts[c], (hi - cuts[c]) * sizeof *orig);
        hi = cuts[c];
        dt_grad_sync_ready(s, cuts[c]);
        dt_grad_sync_poll();
        if (c % 8 == 0)
            maybe_delay(delay);
    }
    memcpy(s->g, orig, hi * sizeof *orig);
    dt_grad_sync_finish(s);
}

/* trial t: n floats, buckets of cap, 3 steps with new gradients */
static void trial(int t, int rank, int world)
{
    dt_mt19937 shape, vals, delay;
    dt_mt_seed(&shape, 100u + (uint32_t)t); /* the same on every rank */
    dt_mt_seed(&vals, 1000u * (uint32_t)t + (uint32_t)rank);
    dt_mt_seed(&delay, 7u * (uint32_t)t + 77u * (uint32_t)rank);
    const size_t n = 1 + 2 * (dt_mt_next(&shape) % 40000); /* odd */
    const size_t cap = t % 4 == 3 ? 0 : 1 + 2 * (dt_mt_next(&shape) % (n / 3 + 1));
    size_t cuts[64];
    int nc = 0;
    for (size_t off = n; off > 0 && nc < 63;) {
        size_t d = 1 + dt_mt_next(&shape) % (n / 8 + 1);
        off = d < off ? off - d : 0;
        cuts[nc++] = off;
    }
    float *orig = dt_xmalloc(n, sizeof *orig), *want = dt_xmalloc(n, sizeof *want);
    float *gm = dt_xmalloc(n, sizeof *gm), *gs = dt_xmalloc(n, sizeof *gs);
    unsigned char *seen = dt_xmalloc(n, sizeof *seen);
    dt_grad_sync sm, ss;
    dt_grad_sync_init(&sm, gm, n, cap, MPI_COMM_WORLD);
    dt_grad_sync_init(&ss, gs, n, cap, MPI_COMM_WORLD);
    CHECK(dt_grad_sync_path(&sm, DT_ALLREDUCE_MPI) == DT_OK);
    CHECK(dt_grad_sync_path(&ss, DT_ALLREDUCE_SHM) == DT_OK);
    CHECK(world == 1 || ss.shm != NULL);
    CHECK(sm.g == gm && (world == 1 ? ss.g == gs : ss.g != gs)); /* shm: the window's */
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < n; i++)
            orig[i] = draw(&vals);
        reference(orig, want, n, world);
        step(&sm, orig, n, cuts, nc, &delay);
        memset(seen, 0, n);
        handed h = {seen, ss.g, want, 0};
        ss.on_done = on_done;
        ss.on_done_ctx = &h;
        step(&ss, orig, n, cuts, nc, &delay);
        size_t once = 0, bad_s = 0, bad_m = 0;
        for (size_t i = 0; i < n; i++) {
            once += seen[i] == 1;
            bad_s += memcmp(&ss.g[i], &want[i], sizeof(float)) != 0;
            bad_m += memcmp(&gm[i], &ss.g[i], sizeof(float)) != 0;
        }
        CHECK(once == n && h.early_bad == 0);
        CHECK(bad_s == 0); /* shm: the rank-order mean, bit for bit */
        if (world <= 2)
            CHECK(bad_m == 0); /* and the MPI path's bits */
        if (bad_s || (world <= 2 && bad_m))
            fprintf(stderr,
                    "rank %d trial %d step %d: n %zu cap %zu: %zu floats differ from the "
                    "reference, %zu from MPI\n",
                    rank, t, k, n, cap, bad_s, bad_m);
    }
    dt_grad_sync_free(&sm);
    dt_grad_sync_free(&ss);
    CHECK(ss.g == gs && memcmp(gs, want, n * sizeof *gs) == 0); /* the last mean, copied back */
    free(orig);
    free(want);
    free(gm);
    free(gs);
    free(seen);
}

/* auto: shm exactly where it gives the MPI path's bits (2 ranks, one node) */
static void test_auto(int world)
{
    float g[7] = {0};
    dt_grad_sync s;
    dt_grad_sync_init(&s, g, 7, 3, MPI_COMM_WORLD);
    CHECK(dt_grad_sync_path(&s, DT_ALLREDUCE_AUTO) == DT_OK);
    CHECK((s.shm != NULL) == (world == 2));
    CHECK(strncmp(s.path, world == 1 ? "none" : world == 2 ? "shm" : "mpi", 3) == 0);
    dt_grad_sync_free(&s);
}

int main(int argc, char **argv)
{
    int world = dt_dist_init(&argc, &argv), rank = dt_rank;
    test_auto(world);
    for (int t = 0; t < 12; t++)
        trial(t, rank, world);
    char name[64];
    snprintf(name, sizeof name, "test_mpi_shm (%d rank%s)", world, world > 1 ? "s" : "");
    int status = check_finish_mpi(name, MPI_COMM_WORLD);
    dt_dist_finalize();
    return status;
}
