/*
 * test_grad_panels.c - the linear layer's weight gradient in row panels (kernels/linear.c with
 * the gradient hook of kernels/poll.h, what a distributed step with train.bucket_mb > 0 runs):
 *   - dW, db and dinp are bitwise those of the whole-matrix backward (no hook), on every ISA
 *     this CPU runs (the generic ISA's OpenBLAS GEMM is not split: its bits depend on the rows), at 1 and 3 threads, for shapes whose rows do and do not divide into panels
 *     (the mlp's fc1 784 -> 512 at batch 64, and odd ones), panel sizes from one row to more
 *     than the matrix;
 *   - the announcements: the first covers the bias (and the rows after the first panel), each
 *     next one starts lower, the last at dW's first row, and no announced float changes later;
 *   - the optimizer in parts (dt_optim_step_begin / _range / _end over shuffled ranges, as the
 *     trainer runs it bucket by bucket) is bitwise dt_optim_step, for every optimizer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"
#include "kernels/gemm_k.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "kernels/poll.h"
#include "kernels/tpool.h"
#include "optim.h"

static uint64_t rng = 0x243F6A8885A308D3u;
static float rndf(void)
{
    rng = rng * 6364136223846793005u + 1442695040888963407u;
    return (float)((int32_t)(rng >> 32)) / 2147483648.0f;
}

/* the flat gradient of the test: dW (OUT, IN), then db (OUT), then a tail of later layers */
static float *flat, *flat_copy;
static size_t flat_n;
static const float *marks[4096];
static int nmarks;
static size_t copied; /* flat_copy holds flat[copied, flat_n) as it was announced */

static void on_done(const float *from)
{
    if (nmarks < 4096)
        marks[nmarks] = from;
    nmarks++;
    /* what is announced must be final: a copy of the newly announced floats as they are now,
     * compared with the end result */
    const size_t off = (size_t)(from - flat);
    if (off < copied) {
        memcpy(flat_copy + off, flat + off, (copied - off) * sizeof *flat);
        copied = off;
    }
}

static void check_shape(int N, int IN, int OUT, size_t panel)
{
    const size_t nw = (size_t)OUT * IN, tail = 37;
    flat_n = nw + (size_t)OUT + tail;
    float *ref = dt_xcalloc(flat_n, sizeof *ref);
    flat = dt_xcalloc(flat_n, sizeof *flat);
    flat_copy = dt_xcalloc(flat_n, sizeof *flat_copy);
    float *inp = dt_xmalloc((size_t)N * IN, sizeof *inp);
    float *dout = dt_xmalloc((size_t)N * OUT, sizeof *dout);
    float *w = dt_xmalloc(nw, sizeof *w);
    float *dinp_ref = dt_xmalloc((size_t)N * IN, sizeof *dinp_ref);
    float *dinp = dt_xmalloc((size_t)N * IN, sizeof *dinp);
    for (size_t i = 0; i < (size_t)N * IN; i++)
        inp[i] = rndf();
    for (size_t i = 0; i < (size_t)N * OUT; i++)
        dout[i] = rndf();
    for (size_t i = 0; i < nw; i++)
        w[i] = rndf();
    dt_linear_backward(dinp_ref, ref, ref + nw, dout, inp, w, N, IN, OUT, 0);
    nmarks = 0;
    copied = flat_n;
    dt_grad_done_set(on_done, panel);
    dt_linear_backward(dinp, flat, flat + nw, dout, inp, w, N, IN, OUT, 0);
    dt_grad_done_set(NULL, 0);
    if (memcmp(ref, flat, (nw + (size_t)OUT) * sizeof *ref) != 0)
        fprintf(stderr, "  %s, %d threads: N %d IN %d OUT %d panel %zu: dW or db differ\n",
                dt_kern_get()->name, dt_tpool_threads(), N, IN, OUT, panel);
    CHECK(memcmp(ref, flat, (nw + (size_t)OUT) * sizeof *ref) == 0);
    CHECK(memcmp(dinp_ref, dinp, (size_t)N * IN * sizeof *dinp) == 0);
    CHECK(memcmp(flat_copy, flat, flat_n * sizeof *flat) == 0);
    int order = nmarks > 0 && nmarks <= 4096 && marks[nmarks - 1] == flat;
    for (int i = 1; i < nmarks && i < 4096; i++)
        order = order && marks[i] < marks[i - 1];
    CHECK(order);
    /* rows per panel: whole multiples of 16, about `panel` floats (OpenBLAS's GEMM, on the
     * generic ISA: one announcement, for the whole layer) */
    const size_t rows = ((panel + (size_t)IN - 1) / (size_t)IN + 15) / 16 * 16;
    const int blas = dt_kern_get()->gemm->blas;
    CHECK(nmarks == (blas ? 1 : (int)(((size_t)OUT + rows - 1) / rows)));
    free(ref);
    free(flat);
    free(flat_copy);
    free(inp);
    free(dout);
    free(w);
    free(dinp_ref);
    free(dinp);
}

static void test_panels(void)
{
    static const int shapes[][3] = {{64, 784, 512}, {7, 33, 50}, {1, 5, 17}, {16, 256, 10}};
    static const size_t panels[] = {1, 100, 65536, 1u << 30};
    for (int isa = 0; isa < DT_ISA_COUNT; isa++) {
        if (!dt_kern_table((dt_isa)isa)) {
            printf("  skip: ISA %d (this CPU does not run it)\n", isa);
            continue;
        }
        dt_kern_select((dt_isa)isa);
        for (int t = 1; t <= 3; t += 2) {
            dt_tpool_init(t);
            for (int s = 0; s < 4; s++)
                for (int p = 0; p < 4; p++)
                    check_shape(shapes[s][0], shapes[s][1], shapes[s][2], panels[p]);
        }
    }
    dt_tpool_free();
}

/* dt_optim_step in parts == dt_optim_step, bitwise, over a few steps (momentum's first step
 * included) with a decayed and an undecayed segment */
static void test_optim_parts(void)
{
    enum { N = 1003, STEPS = 3 };
    const dt_optim_segment segs[2] = {{0, 600, 1}, {600, N - 600, 0}};
    const size_t cuts[] = {0, 17, 300, 599, 600, 601, 1000, N};
    const int ncut = (int)(sizeof cuts / sizeof cuts[0]);
    for (int kind = DT_OPTIM_SGD; kind <= DT_OPTIM_ADAMW; kind++) {
        dt_optim_params p;
        dt_optim_params_defaults(&p, (dt_optim_kind)kind);
        p.lr = 0.01;
        p.weight_decay = 0.01;
        if (kind == DT_OPTIM_SGD || kind == DT_OPTIM_RMSPROP)
            p.momentum = 0.9;
        dt_optim a, b;
        CHECK(dt_optim_init(&a, &p, N, segs, 2) == 0);
        CHECK(dt_optim_init(&b, &p, N, segs, 2) == 0);
        float *x = dt_xmalloc(N, sizeof *x), *y = dt_xmalloc(N, sizeof *y);
        float *g = dt_xmalloc(N, sizeof *g);
        for (int i = 0; i < N; i++)
            x[i] = y[i] = rndf();
        for (int s = 0; s < STEPS; s++) {
            for (int i = 0; i < N; i++)
                g[i] = rndf();
            const double mom = dt_optim_momentum(&a);
            dt_optim_step(&a, x, g, 0.01, mom);
            dt_optim_step_begin(&b, mom);
            for (int c = ncut - 2; c >= 0; c--) /* last range first, as buckets complete */
                dt_optim_step_range(&b, y, g, cuts[c], cuts[c + 1], 0.01, mom);
            dt_optim_step_end(&b);
        }
        CHECK(memcmp(x, y, N * sizeof *x) == 0);
        CHECK(a.step == b.step && a.momentum_ready == b.momentum_ready);
        for (int i = 0; i < a.nstate; i++)
            CHECK(memcmp(a.state[i].data, b.state[i].data, N * sizeof(float)) == 0);
        dt_optim_free(&a);
        dt_optim_free(&b);
        free(x);
        free(y);
        free(g);
    }
}

int main(void)
{
    test_panels();
    test_optim_parts();
    return check_finish("test_grad_panels");
}
