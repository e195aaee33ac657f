/*
 * test_pool.c - the rank's thread pool (runtime/kernels/tpool.c) and the kernels split over it
 * (issue 13): results must be bitwise the same whatever the thread count.
 *
 *   - dt_tpool_run calls every chunk exactly once, on thread indices below the pool size, for
 *     several pool sizes (1 .. 4 and 8: more threads than this machine's cores) and loop lengths;
 *     a loop inside a chunk runs serially; dt_tpool_for covers [0, n) exactly, in aligned parts;
 *   - loops of more chunks than a thread's range holds (65535) run each chunk once; a thread
 *     whose own range is held up gets its chunks taken by another (work stealing);
 *   - dt_tpool_place (bind = auto on the whole machine's mask) moves the threads and leaves each
 *     with the whole mask (not bound), also after a worker slept; a new pool is not placed;
 *   - the progress hook (kernels/poll.h) runs only on the thread that installed it, and does run
 *     while a parallel loop is in flight;
 *   - batch-lane convolutions (plain and fused with ReLU + 2x2 max pool, forward and backward) at
 *     threads 1, 2 and 3 give the same bits on every ISA this CPU runs, and avx2, avx2w16 and
 *     avx512 give the same bits as each other at 2 threads (chunks of 16 images, whatever W);
 *     batches of 37 (a partial chunk and partial blocks) and 128; the im2col + GEMM path and
 *     the plan's own choice on resnet9-like wide layers the same way;
 *   - dt_gemm's panels (threads 1 vs 2 and 3, rows or columns) on the linear layers' shapes and
 *     odd ones;
 *   - BatchNorm's statistics, forward and backward (split over the pool by images, or channels
 *     for small planes), bitwise the per-channel loops of the ISA's kernels as well; max and
 *     global average pooling (planes split over the pool).
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas.h"
#include "check.h"
#include "common.h"
#include "kernels/elem.h"
#include "kernels/gemm.h"
#include "kernels/gemm_k.h"
#include "kernels/isa.h"
#include "kernels/layer_kernels.h"
#include "kernels/poll.h"
#include "kernels/tpool.h"

/* ---- the pool itself ---- */

#define MAXN 1000
static _Atomic int hits[MAXN];
static _Atomic int bad_thread;

static void count_chunk(void *arg, int c, int thread)
{
    (void)arg;
    if (thread < 0 || thread >= dt_tpool_threads())
        atomic_fetch_add(&bad_thread, 1);
    atomic_fetch_add(&hits[c], 1);
    volatile double x = 0; /* a little work, so that several threads take chunks */
    for (int i = 0; i < 2000; i++)
        x += i;
}

static _Atomic int inner_hits;
static void inner_chunk(void *arg, int c, int thread)
{
    (void)arg, (void)c, (void)thread;
    atomic_fetch_add(&inner_hits, 1);
}
static void nested_chunk(void *arg, int c, int thread)
{
    (void)arg, (void)c, (void)thread;
    dt_tpool_run(5, inner_chunk, NULL);
}

static void range_part(void *arg, long lo, long hi)
{
    (void)arg;
    if (lo % 64 != 0)
        atomic_fetch_add(&bad_thread, 1);
    for (long i = lo; i < hi; i++)
        atomic_fetch_add(&hits[i], 1);
}

/* More chunks than a range holds (65535): dt_tpool_run splits the loop, each chunk once. */
#define BIGN 70001
static _Atomic unsigned char big_hits[BIGN];
static void big_chunk(void *arg, int c, int thread)
{
    (void)arg, (void)thread;
    atomic_fetch_add(&big_hits[c], 1);
}

/* Work stealing: chunk 0 (the caller's own range starts there) waits until the rest of the
 * caller's range is done, which only another thread can do by taking chunks from its end. */
#define STEAL_N 8
static _Atomic int steal_done[STEAL_N], steal_thread[STEAL_N], steal_timeout;
static void steal_chunk(void *arg, int c, int thread)
{
    (void)arg;
    atomic_store(&steal_thread[c], thread);
    if (c == 0) {
        const double t0 = dt_now();
        int rest = 0;
        while (!rest && !(dt_now() - t0 > 10.0)) {
            rest = 1;
            for (int k = 1; k < STEAL_N / 2; k++)
                rest &= atomic_load(&steal_done[k]);
        }
        if (!rest)
            atomic_store(&steal_timeout, 1);
    }
    atomic_store(&steal_done[c], 1);
}

static void test_pool_ranges(void)
{
    for (int T = 1; T <= 3; T++) {
        dt_tpool_init(T);
        memset(big_hits, 0, sizeof big_hits);
        dt_tpool_run(BIGN, big_chunk, NULL);
        int once = 1;
        for (int c = 0; c < BIGN; c++)
            once &= atomic_load(&big_hits[c]) == 1;
        CHECK(once);
    }
    dt_tpool_init(2);
    for (int rep = 0; rep < 5; rep++) {
        for (int c = 0; c < STEAL_N; c++)
            atomic_store(&steal_done[c], 0);
        atomic_store(&steal_timeout, 0);
        dt_tpool_run(STEAL_N, steal_chunk, NULL);
        int all = 1, stolen = 0;
        for (int c = 0; c < STEAL_N; c++)
            all &= atomic_load(&steal_done[c]);
        for (int c = 1; c < STEAL_N / 2; c++)
            stolen += atomic_load(&steal_thread[c]) == 1;
        CHECK(all && !atomic_load(&steal_timeout));
        /* 1 .. 3 are the caller's (thread 0), but ran on the worker: either the caller held
         * chunk 0 until the worker took them from its range's end, or (the caller late) the
         * worker took 3, 2, 1 and then 0 itself */
        CHECK(stolen == STEAL_N / 2 - 1);
    }
    dt_tpool_free();
}

static pthread_t main_thread;
static _Atomic int polls, polls_elsewhere;
static void poll_hook(void)
{
    atomic_fetch_add(&polls, 1);
    if (!pthread_equal(pthread_self(), main_thread))
        atomic_fetch_add(&polls_elsewhere, 1);
}

static void test_pool(void)
{
    static const int sizes[] = {1, 2, 3, 4, 8};
    static const int lens[] = {0, 1, 2, 7, 64, MAXN};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        dt_tpool_init(sizes[s]);
        CHECK(dt_tpool_threads() == sizes[s]);
        for (size_t l = 0; l < sizeof lens / sizeof *lens; l++)
            for (int rep = 0; rep < 20; rep++) {
                memset(hits, 0, sizeof hits);
                atomic_store(&bad_thread, 0);
                dt_tpool_run(lens[l], count_chunk, NULL);
                int once = 1;
                for (int c = 0; c < MAXN; c++)
                    once &= atomic_load(&hits[c]) == (c < lens[l]);
                CHECK(once && atomic_load(&bad_thread) == 0);
            }
        atomic_store(&inner_hits, 0);
        dt_tpool_run(7, nested_chunk, NULL);
        CHECK(atomic_load(&inner_hits) == 35);
        for (long n = 0; n <= MAXN; n += 111) {
            memset(hits, 0, sizeof hits);
            atomic_store(&bad_thread, 0);
            dt_tpool_for(n, 10, 64, range_part, NULL);
            int once = 1;
            for (int c = 0; c < MAXN; c++)
                once &= atomic_load(&hits[c]) == (c < n);
            CHECK(once && atomic_load(&bad_thread) == 0);
        }
    }
    /* the hook: on the installing thread only, and turning during a loop */
    dt_tpool_init(3);
    main_thread = pthread_self();
    dt_poll_set(poll_hook);
    dt_tpool_run(64, count_chunk, NULL);
    dt_poll_set(NULL);
    printf("test_pool: progress hook called %d times during a 64-chunk loop on 3 threads\n",
           atomic_load(&polls));
    CHECK(atomic_load(&polls) >= 1 && atomic_load(&polls_elsewhere) == 0);
    dt_tpool_free();
    CHECK(dt_tpool_threads() == 1);
}

/* ---- placement (dt_tpool_place, bind = auto on the whole machine's mask) ---- */

/* each chunk: its thread's affinity mask is the whole one (placed, not bound); the CPU it ran on */
static cpu_set_t place_mask;
static _Atomic int place_bad, place_cpu_of[2];
static void place_chunk(void *arg, int c, int thread)
{
    (void)arg, (void)c;
    cpu_set_t m;
    CPU_ZERO(&m);
    if (sched_getaffinity(0, sizeof m, &m) != 0 || !CPU_EQUAL(&m, &place_mask))
        atomic_fetch_add(&place_bad, 1);
    if (thread < 2)
        atomic_store(&place_cpu_of[thread], sched_getcpu());
    for (volatile int i = 0; i < 200000; i++) /* long enough for both threads to take chunks */
        ;
}

static void test_place(void)
{
    CPU_ZERO(&place_mask);
    if (sched_getaffinity(0, sizeof place_mask, &place_mask) != 0 || CPU_COUNT(&place_mask) < 2) {
        printf("test_place: skipped (fewer than 2 CPUs in this process's mask)\n");
        return;
    }
    int cpu[2], n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
        if (CPU_ISSET(c, &place_mask))
            cpu[n++] = c;
    dt_tpool_init(2);
    CHECK(dt_tpool_placed(NULL) == 0);
    dt_tpool_place(cpu, &place_mask);
    int got[2] = {-1, -1};
    CHECK(dt_tpool_placed(got) == 2 && got[0] == cpu[0] && got[1] == cpu[1]);
    /* the worker moves itself as soon as it runs; then every thread has the whole mask again */
    for (int i = 0; i < 2000 && dt_tpool_placing() > 0; i++)
        usleep(1000);
    CHECK(dt_tpool_placing() == 0);
    cpu_set_t m;
    CPU_ZERO(&m);
    CHECK(sched_getaffinity(0, sizeof m, &m) == 0 && CPU_EQUAL(&m, &place_mask));
    for (int round = 0; round < 2; round++) {
        atomic_store(&place_bad, 0);
        atomic_store(&place_cpu_of[0], -1), atomic_store(&place_cpu_of[1], -1);
        dt_tpool_run(16, place_chunk, NULL);
        CHECK(atomic_load(&place_bad) == 0);
        printf("test_place: round %d: caller on CPU %d, worker on CPU %d (placed on %d and %d, "
               "not bound)\n",
               round, atomic_load(&place_cpu_of[0]), atomic_load(&place_cpu_of[1]), cpu[0], cpu[1]);
        usleep(200000); /* round 1: the worker has slept in FUTEX_WAIT and places itself again */
    }
    dt_tpool_init(2); /* a new pool is not placed */
    CHECK(dt_tpool_placed(NULL) == 0);
    dt_tpool_free();
}

/* ---- kernels: bits at threads 1, 2, 3 ---- */

static uint64_t seed_ = 12345;
static float frand(void)
{
    seed_ = seed_ * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((seed_ >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}
static float *rand_buf(size_t n)
{
    float *p = dt_xmalloc(n, sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = frand();
    return p;
}

typedef struct {
    int N, C, H, W, OC, K, stride, pad, fused, path;
} conv_shape;

/* results of one conv configuration: out, dinp, dweight, dbias concatenated */
static float *conv_run(const dt_kern *k, int threads, const conv_shape *s, const float *inp,
                       const float *w, const float *b, const float *dout, size_t *len)
{
    dt_tpool_init(threads);
    dt_conv_opts o = {s->path, k};
    const int OH = (s->H + 2 * s->pad - s->K) / s->stride + 1, OW = OH;
    const int PH = s->fused ? OH / 2 : OH, PW = s->fused ? OW / 2 : OW;
    const size_t no = (size_t)s->N * s->OC * PH * PW, ni = (size_t)s->N * s->C * s->H * s->W;
    const size_t nw = (size_t)s->OC * s->C * s->K * s->K;
    *len = no + ni + nw + (size_t)s->OC;
    float *r = dt_xcalloc(*len, sizeof *r);
    float *ws = dt_xmalloc(
        dt_conv2d_ws_floats_with(&o, s->N, s->C, s->H, s->W, s->OC, s->K, s->K, s->stride, s->pad),
        sizeof *ws);
    float *out = r, *dinp = r + no, *dw = dinp + ni, *db = dw + nw;
    if (s->fused) {
        int32_t *code = dt_xmalloc(dt_conv2d_relu_pool2_code_size(s->N, s->OC, OH, OW), 4);
        dt_conv2d_relu_pool2_forward_with(&o, out, code, inp, w, b, s->N, s->C, s->H, s->W, s->OC,
                                          s->K, s->K, s->stride, s->pad, 0, ws);
        dt_conv2d_relu_pool2_backward_with(&o, dinp, dw, db, dout, code, inp, w, s->N, s->C, s->H,
                                           s->W, s->OC, s->K, s->K, s->stride, s->pad, 0, ws);
        free(code);
    } else {
        dt_conv2d_forward_with(&o, out, inp, w, b, s->N, s->C, s->H, s->W, s->OC, s->K, s->K,
                               s->stride, s->pad, ws);
        dt_conv2d_backward_with(&o, dinp, dw, db, dout, inp, w, s->N, s->C, s->H, s->W, s->OC, s->K,
                                s->K, s->stride, s->pad, 0, ws);
    }
    free(ws);
    return r;
}

static void test_conv(void)
{
    static const conv_shape shapes[] = {
        {37, 6, 14, 14, 16, 5, 1, 0, 0, DT_CONV_LANES},   /* lenet5 conv2, a partial chunk */
        {128, 1, 28, 28, 6, 5, 1, 2, 1, DT_CONV_LANES},   /* lenet5 conv1 + relu + pool */
        {37, 16, 8, 8, 16, 3, 1, 1, 0, DT_CONV_LANES},    /* resnet20 */
        {128, 16, 16, 16, 32, 3, 2, 1, 0, DT_CONV_LANES}, /* resnet20 stride 2 */
        {20, 3, 9, 9, 5, 3, 1, 1, 1, DT_CONV_LANES},      /* odd channels, a fused partial chunk */
        {20, 64, 16, 16, 128, 3, 1, 1, 0, DT_CONV_GEMM},  /* resnet9-like, im2col + GEMM */
        {20, 256, 4, 4, 256, 3, 1, 1, 0, DT_CONV_GEMM},
        {20, 3, 32, 32, 64, 3, 1, 1, 0, DT_CONV_GEMM},
        {20, 64, 16, 16, 128, 3, 1, 1, 0, DT_CONV_AUTO}, /* resnet9-like, the plan's choice */
        {20, 128, 8, 8, 128, 3, 1, 1, 1, DT_CONV_LANES},
        {20, 512, 4, 4, 512, 3, 1, 1, 0, DT_CONV_AUTO},
    };
    const dt_isa isas[] = {DT_ISA_GENERIC, DT_ISA_AVX2, DT_ISA_AVX2W16, DT_ISA_AVX512};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        const conv_shape *s = &shapes[i];
        const int OH = (s->H + 2 * s->pad - s->K) / s->stride + 1;
        const int PH = s->fused ? OH / 2 : OH;
        float *inp = rand_buf((size_t)s->N * s->C * s->H * s->W);
        float *w = rand_buf((size_t)s->OC * s->C * s->K * s->K), *b = rand_buf((size_t)s->OC);
        float *dout = rand_buf((size_t)s->N * s->OC * PH * PH);
        float *at2[4] = {NULL};
        size_t len = 0;
        for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
            const dt_kern *kt = dt_kern_table(isas[k]);
            if (!kt)
                continue;
            float *r1 = conv_run(kt, 1, s, inp, w, b, dout, &len);
            for (int t = 2; t <= 3; t++) {
                float *rt = conv_run(kt, t, s, inp, w, b, dout, &len);
                const int same = memcmp(r1, rt, len * sizeof *r1) == 0;
                if (!same)
                    printf("  conv shape %zu %s: threads %d differs from 1\n", i, kt->name, t);
                CHECK(same);
                if (t == 2)
                    at2[k] = rt;
                else
                    free(rt);
            }
            free(r1);
        }
        /* avx2, avx2w16, avx512: one result at 2 threads (on one path: AUTO may choose
         * differently per ISA) */
        for (int k = 2; k < 4; k++)
            if (at2[1] && at2[k] && s->path != DT_CONV_AUTO) {
                const int same = memcmp(at2[1], at2[k], len * sizeof *at2[1]) == 0;
                if (!same)
                    printf("  conv shape %zu: %s differs from avx2 at 2 threads\n", i,
                           dt_isa_name(isas[k]));
                CHECK(same);
            }
        for (int k = 0; k < 4; k++)
            free(at2[k]);
        free(inp), free(w), free(b), free(dout);
    }
}

static void test_gemm_panels(void)
{
    /* the mlp's and lenet5's shapes among them (120 x 400 x 128: lenet5 fc1's weight gradient,
     * which the avx512 kernel splits by rows at 2 threads and by columns at 3) */
    static const int sh[][3] = {{128, 1024, 784}, {1024, 784, 128}, {128, 784, 1024},
                                {300, 50, 700},   {10, 2000, 33},   {97, 131, 650},
                                {120, 400, 128},  {128, 84, 120},   {84, 120, 128}};
    for (size_t i = 0; i < sizeof sh / sizeof *sh; i++) {
        const int M = sh[i][0], N = sh[i][1], K = sh[i][2];
        float *A = rand_buf((size_t)M * K), *B = rand_buf((size_t)K * N), *bias = rand_buf(N);
        float *c1 = rand_buf((size_t)M * N);
        float *c0 = dt_xmalloc((size_t)M * N, sizeof *c0),
              *c3 = dt_xmalloc((size_t)M * N, sizeof *c3);
        for (int isa = 0; isa < DT_ISA_COUNT; isa++) {
            const dt_kern *kt = dt_kern_table((dt_isa)isa);
            if (!kt || !kt->gemm)
                continue;
            for (int v = 0; v < 4; v++) { /* (ta, tb) with bias / accumulate */
                const int ta = v & 1, tb = v >> 1;
                memcpy(c0, c1, (size_t)M * N * sizeof *c0); /* C before the product */
                dt_tpool_init(1);
                dt_gemm_kern(kt->gemm, ta, tb, M, N, K, A, ta ? M : K, B, tb ? K : N,
                             v & 1 ? bias : NULL, v == 3, c1, N);
                for (int T = 2; T <= 3; T++) {
                    dt_tpool_init(T);
                    memcpy(c3, c0, (size_t)M * N * sizeof *c3);
                    dt_gemm_kern(kt->gemm, ta, tb, M, N, K, A, ta ? M : K, B, tb ? K : N,
                                 v & 1 ? bias : NULL, v == 3, c3, N);
                    CHECK(memcmp(c1, c3, (size_t)M * N * sizeof *c1) == 0);
                }
            }
        }
        free(A), free(B), free(bias), free(c0), free(c1), free(c3);
    }
}

static void test_bn(void)
{
    enum { N = 64, C = 16, HW = 256 };
    const size_t n = (size_t)N * C * HW;
    float *x = rand_buf(n), *dy = rand_buf(n), *w = rand_buf(C), *b = rand_buf(C);
    float *res[2];
    for (int r = 0; r < 2; r++) {
        dt_tpool_init(r == 0 ? 1 : 3);
        float *o = dt_xcalloc(2 * n + 4 * (size_t)C, sizeof *o);
        double s[4 * C];
        float rm[C], rv[C];
        for (int c = 0; c < C; c++)
            rm[c] = 0.0f, rv[c] = 1.0f;
        dt_bn_stats(s, s + C, x, N, C, HW, 0);
        dt_bn_forward_train(o, o + 2 * n, o + 2 * n + C, rm, rv, x, w, b, s, s + C, (double)N * HW,
                            N, C, HW, 1e-5f, 0.1f, 0, 0, 0);
        dt_bn_backward_reduce(s + 2 * C, s + 3 * C, dy, x, o + 2 * n, o + 2 * n + C, N, C, HW, NULL,
                              0, 0);
        dt_bn_backward(o + n, o + 2 * n + 2 * C, o + 2 * n + 3 * C, dy, x, o + 2 * n, o + 2 * n + C,
                       w, s + 2 * C, s + 3 * C, s + 2 * C, s + 3 * C, (double)N * HW, N, C, HW, 0,
                       NULL, 0, 0, 0, 0);
        memcpy(o + 2 * n, rm, sizeof rm); /* running stats in place of save_mean (also checked) */
        res[r] = o;
    }
    CHECK(memcmp(res[0], res[1], (2 * n + 4 * (size_t)C) * sizeof *res[0]) == 0);
    free(res[0]), free(res[1]), free(x), free(dy), free(w), free(b);
}

/* BatchNorm2d splits by images (batchnorm.c, bn_images): the same bits as the per-channel loops
 * it replaced, the ISA's elem kernels over all N images of a channel in order (statistics folded
 * per channel over the images, the constants, the affine and backward passes). An odd batch, and
 * planes of -0.0 (a plane sum of -0.0, which the fold must not tell from +0.0). */
static void test_bn_images(void)
{
    enum { N = 37, C = 12, HW = 100 };
    const size_t n = (size_t)N * C * HW;
    const struct dt_kelem *k = dt_kern_get()->elem;
    float *x = rand_buf(n), *dy = rand_buf(n), *w = rand_buf(C), *b = rand_buf(C);
    for (int i = 0; i < HW; i++) /* image 0 channel 3 and image 5 channel 0: -0.0 */
        x[3 * HW + i] = -0.0f, x[(5 * C) * HW + i] = -0.0f, dy[(5 * C) * HW + i] = -0.0f;
    for (int T = 1; T <= 3; T++) {
        dt_tpool_init(T);
        double s[4 * C], r[4 * C];
        dt_bn_stats(s, s + C, x, N, C, HW, 0);
        k->bn_sums(r, r + C, x, N, C, HW, 0, C);
        CHECK(memcmp(s, r, 2 * C * sizeof *s) == 0);
        float mean[C], invstd[C], rm[C], rv[C];
        float *o = dt_xcalloc(2 * n, sizeof *o), *e = dt_xcalloc(2 * n, sizeof *e);
        for (int c = 0; c < C; c++)
            rm[c] = 0.0f, rv[c] = 1.0f;
        const double cnt = (double)N * HW;
        dt_bn_forward_train(o, mean, invstd, rm, rv, x, w, b, s, s + C, cnt, N, C, HW, 1e-5f, 0.1f,
                            0, 0, 0);
        for (int c = 0; c < C; c++) {
            const double mu = s[c] / cnt;
            double var = s[C + c] / cnt - mu * mu;
            var = var > 0.0 ? var : 0.0;
            const double is = 1.0 / sqrt(var + 1e-5f);
            CHECK(mean[c] == (float)mu && invstd[c] == (float)is);
            k->bn_affine(e, x, N, C, HW, c, (float)mu, (float)is * w[c], b[c], 0, NULL);
        }
        CHECK(memcmp(o, e, n * sizeof *o) == 0);
        dt_bn_backward_reduce(s + 2 * C, s + 3 * C, dy, x, mean, invstd, N, C, HW, NULL, 0, 0);
        k->bn_dots(r + 2 * C, r + 3 * C, dy, x, NULL, N, C, HW, 0, C, 0);
        for (int c = 0; c < C; c++)
            r[3 * C + c] = (r[3 * C + c] - (double)mean[c] * r[2 * C + c]) * invstd[c];
        CHECK(memcmp(s + 2 * C, r + 2 * C, 2 * C * sizeof *s) == 0);
        dt_bn_backward(o + n, NULL, NULL, dy, x, mean, invstd, w, s + 2 * C, s + 3 * C, s + 2 * C,
                       s + 3 * C, cnt, N, C, HW, 0, NULL, 0, 0, 0, 0);
        for (int c = 0; c < C; c++)
            k->bn_backward(e + n, dy, x, NULL, N, C, HW, c, (float)((double)invstd[c] * w[c]),
                           (float)(s[2 * C + c] / cnt), mean[c],
                           (float)((double)invstd[c] * s[3 * C + c] / cnt), 0, 0);
        CHECK(memcmp(o + n, e + n, n * sizeof *o) == 0);
        free(o), free(e);
    }
    dt_tpool_free();
    free(x), free(dy), free(w), free(b);
}

/* max pooling (2x2 and 3x3 stride 2 pad 1) and global average pooling, forward and backward */
static void test_pooling(void)
{
    enum { N = 24, C = 32, H = 16, W = 16 };
    const size_t n = (size_t)N * C * H * W, planes = (size_t)N * C;
    float *x = rand_buf(n), *dy = rand_buf(n);
    for (int k = 0; k < 3; k++) {
        const int K = k == 1 ? 3 : 2, st = 2, pad = k == 1 ? 1 : 0;
        const int OH = (H + 2 * pad - K) / st + 1, OW = (W + 2 * pad - K) / st + 1;
        float *r[2];
        for (int t = 0; t < 2; t++) {
            dt_tpool_init(t == 0 ? 1 : 3);
            float *o = dt_xcalloc(2 * n, sizeof *o);
            if (k < 2) {
                int32_t *am = dt_xmalloc(planes * OH * OW, sizeof *am);
                dt_maxpool_forward(o, am, x, N, C, H, W, K, st, pad);
                dt_maxpool_backward(o + n, dy, am, N, C, H, W, OH, OW, 0);
                free(am);
            } else {
                dt_gap_forward(o, x, N, C, H * W, 0);
                dt_gap_backward(o + n, dy, N, C, H * W, 1, 0);
            }
            r[t] = o;
        }
        CHECK(memcmp(r[0], r[1], 2 * n * sizeof *r[0]) == 0);
        free(r[0]), free(r[1]);
    }
    free(x), free(dy);
}

/* DT_POOL_STATS=1 at 1 thread splits loops as 2 threads would (so its statistics see the
 * split): the parts change, the bits must not; without it the pool splits nothing at 1 thread. */
static void stats_range(void *arg, long lo, long hi)
{
    float *x = arg;
    for (long i = lo; i < hi; i++)
        x[i] = x[i] * 0.5f + 1.0f;
}

static void test_stats(void)
{
    enum { M = 97, N = 131, K = 650, NX = 100000 };
    float *A = rand_buf((size_t)M * K), *B = rand_buf((size_t)K * N), *bias = rand_buf(N);
    float *x0 = rand_buf(NX), *c[2], *x[2];
    int parts[2];
    const dt_kern *kt = dt_kern_get();
    for (int on = 0; on < 2; on++) {
        if (on)
            setenv("DT_POOL_STATS", "1", 1);
        dt_tpool_init(1);
        parts[on] = dt_tpool_parts();
        c[on] = dt_xcalloc((size_t)M * N, sizeof *c[on]);
        x[on] = dt_xmalloc(NX, sizeof *x[on]);
        memcpy(x[on], x0, NX * sizeof *x0);
        if (kt->gemm)
            dt_gemm_kern(kt->gemm, 0, 1, M, N, K, A, K, B, K, bias, 0, c[on], N);
        dt_tpool_for(NX, 1000, 64, stats_range, x[on]);
        unsetenv("DT_POOL_STATS");
    }
    CHECK(parts[0] == 1 && parts[1] == 2);
    CHECK(memcmp(c[0], c[1], (size_t)M * N * sizeof *c[0]) == 0);
    CHECK(memcmp(x[0], x[1], NX * sizeof *x[0]) == 0);
    dt_tpool_init(1);
    CHECK(dt_tpool_parts() == 1);
    free(A), free(B), free(bias), free(c[0]), free(c[1]), free(x[0]), free(x[1]), free(x0);
}

int main(void)
{
    openblas_set_num_threads(1); /* as dt_threads_start sets it */
    test_pool();
    test_pool_ranges();
    test_place();
    test_conv();
    test_gemm_panels();
    test_bn();
    test_bn_images();
    test_pooling();
    test_stats();
    dt_tpool_free();
    return check_finish("test_pool");
}
