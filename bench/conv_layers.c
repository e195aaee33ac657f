/*
 * conv_layers.c - per-layer timing of dtrain's conv kernels (runtime/kernels/conv.c) at the benchmark's
 * batch, 1 BLAS thread: for every distinct conv shape of lenet5, cnn (1x28x28), resnet20 and
 * resnet9 (3x32x32), the kernels the plan takes (lanes or gemm), the time and GFLOP/s of dt_conv2d_forward and dt_conv2d_backward (weight + bias
 * gradient, and the input gradient unless the layer reads the data), and
 * the sum per model (ms of conv work per training step). A profiling aid next to bench/run.sh's
 * BENCH_PROFILE=1.
 *
 *   conv_layers [N [PATH [ISA]]]   (default N = 128, PATH auto; gemm: im2col + sgemm only; lanes:
 *                                  the batch-lane kernels of runtime/kernels/isa/lanes.c for every
 *                                  shape; bf16: the bf16 kernels of kernels/conv_bf16.h, vdpbf16ps
 *                                  or its emulation, where they take the shape (train.precision =
 *                                  bf16); ISA: generic, avx2, avx2w16, avx512 or avx512bf16, by
 *                                  default the kernel table in use, see kernels/isa.h)
 *
 * Built by bench/run.sh (BENCH_PROFILE=1) against build/libdtrain.a with the Makefile's flags:
 *   $(CC) $(CFLAGS) -o bench/out/conv_layers bench/conv_layers.c build/libdtrain.a $(LDLIBS)
 * Each measurement: one warm-up call, then the median of 5 timed calls (thread CPU time).
 * CONV_LAYERS_ONLY=TEXT (environment): only the shapes whose name contains TEXT, or of the model
 * named TEXT (a profiling aid: `perf record` of one layer), without the models' totals.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"
#include "common.h"
#include "conv_bench.h"
#include "kernels/isa.h"

static void print_head(const char *path, const char *isa, int N)
{
    printf(
        "conv kernels (%s, ISA %s) at N = %d, 1 BLAS thread; ms per call (median of %d), GFLOP/s = "
        "2 MACs per multiply-add (backward: weight + input gradient, 4 MACs; first layer: 2)\n",
        path, isa, N, REPS);
    printf("%-9s %-26s %5s %5s %8s %7s %8s %7s %9s\n", "model", "layer", "path", "count", "fwd ms",
           "GF/s", "bwd ms", "GF/s", "x count");
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    openblas_set_num_threads(1);
    int N = argc > 1 ? atoi(argv[1]) : 128;
    if (N < 1) {
        fprintf(stderr, "conv_layers: N must be positive\n");
        return 1;
    }
    const char *path = argc > 2 ? argv[2] : "auto";
    dt_conv_opts o = {DT_CONV_AUTO, dt_kern_get()};
    const int bf16 = !strcmp(path, "bf16");
    if (!strcmp(path, "gemm"))
        o.path = DT_CONV_GEMM;
    else if (!strcmp(path, "lanes"))
        o.path = DT_CONV_LANES;
    else if (strcmp(path, "auto") && !bf16) {
        fprintf(stderr, "conv_layers: PATH must be auto, gemm, lanes or bf16\n");
        return 1;
    }
    if (argc > 3) {
        dt_isa isa;
        if (dt_isa_parse(argv[3], &isa, NULL) != 0 || !(o.kern = dt_kern_table(isa))) {
            fprintf(stderr, "conv_layers: ISA %s: unknown, or this CPU lacks it\n", argv[3]);
            return 1;
        }
        if (bf16 && dt_kern_select(isa) != 0) /* the bf16 entry points run the table in use */
            return 1;
    }
    print_head(path, o.kern->name, N);
    const char *model = NULL;
    double model_ms = 0.0;
    const size_t nshapes = sizeof shapes / sizeof shapes[0];
    const char *only = getenv("CONV_LAYERS_ONLY");
    for (size_t i = 0; i < nshapes; i++) {
        const conv_shape *s = &shapes[i];
        if (only && !strstr(s->name, only) && strcmp(s->model, only))
            continue;
        if (!model || s->model != model) {
            model = s->model;
            model_ms = 0.0;
        }
        int OH = dt_conv_out_size(s->H, s->K, s->stride, s->pad);
        int OW = dt_conv_out_size(s->W, s->K, s->stride, s->pad);
        const size_t nw = (size_t)s->OC * s->C * s->K * s->K;
        const int b16 =
            bf16 && dt_bf16conv_ok(N, s->C, s->H, s->W, s->OC, s->K, s->K, s->stride, s->pad);
        double t[2];
        time_shape(t, &o, b16, s, N);
        double macs = (double)N * OH * OW * (double)nw;
        double f = t[0], bk = t[1];
        double tot = (f + bk) * s->count;
        model_ms += tot;
        /* every shape here has a 2x2 output at least: the fused kernels' test is the plan's */
        const int lanes = dt_conv2d_relu_pool2_ok_with(&o, N, s->C, s->H, s->W, s->OC, s->K, s->K,
                                                       s->stride, s->pad);
        printf("%-9s %-26s %5s %5d %8.2f %7.1f %8.2f %7.1f %9.2f\n", s->model, s->name,
               b16     ? "bf16"
               : lanes ? "lanes"
                       : "gemm",
               s->count, 1e3 * f, 2 * macs / f / 1e9, 1e3 * bk,
               (s->first ? 2 : 4) * macs / bk / 1e9, 1e3 * tot);
        if (!only && (i + 1 == nshapes || shapes[i + 1].model != model))
            printf("%-9s %-26s %5s %5s %8s %7s %8s %7s %9.2f  ms per step, all conv layers\n",
                   model, "total", "", "", "", "", "", "", 1e3 * model_ms);
    }
    MPI_Finalize();
    return 0;
}
