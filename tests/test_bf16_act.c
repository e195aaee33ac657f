/*
 * test_bf16_act.c - bf16 activation storage (runtime/net_act.h): a bf16 net whose activations
 * are stored as bf16 in shared float32 slots computes bitwise what the same net with one float32
 * buffer per activation (dt_net_opts.no_bf16_store) computes, for every built-in model, with
 * and without fusion, on the ISAs with the bf16 family (all of them for the small models; the
 * best this CPU runs and the 16-lane AVX2 build for the others, resnet20 on the best only, to
 * keep the test short): logits, every parameter gradient, over
 * two training steps (a forward at another batch size between them: an evaluation), threads 1
 * and 2. And it keeps less: the slots plus the bf16 copies under 60 % of the float32 outputs for
 * resnet20 (its peak RSS goal, issue 12: bf16 <= 0.7 x fp32), the slots 12 MiB at batch 128
 * (the convolutions' forward reads its input from the copy, BatchNorm's output takes its input's
 * slot: dt_layer_ops.fwd_copy and fwd_in_place). And the lane layout between the
 * bf16 convolutions (dt_net.lanes) gives the bits of (N, C, H, W) (test_layout).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"
#include "kernels/isa.h"
#include "kernels/tpool.h"
#include "lowp.h"
#include "net.h"
#include "net_act.h"

static uint64_t rs = 0x2545f4914f6cdd1dull;
static float rnd_unit(void)
{
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (float)((double)(rs >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* forward (train), backward, an SGD step on both nets' parameters, then an eval forward at
 * N - 3 samples; twice. Returns the failures. */
static int compare(dt_net *a, dt_net *b, int N, const char *what)
{
    const size_t nin = (size_t)a->in_c * a->in_h * a->in_w;
    float *x = dt_xmalloc((size_t)N * nin, sizeof *x), *xb = dt_xmalloc((size_t)N * nin, sizeof *x);
    int bad = 0;
    for (int step = 0; step < 2; step++) {
        for (size_t i = 0; i < (size_t)N * nin; i++)
            x[i] = rnd_unit() * 2.0f;
        memcpy(xb, x, (size_t)N * nin * sizeof *x);
        const float *la = dt_net_forward(a, x, N, 1, NULL), *lb = dt_net_forward(b, xb, N, 1, NULL);
        bad += memcmp(la, lb, (size_t)N * a->classes * sizeof *la) != 0;
        float *da = dt_net_dlogits(a), *db = dt_net_dlogits(b);
        for (int i = 0; i < N * a->classes; i++)
            da[i] = db[i] = rnd_unit() * 0.1f;
        dt_net_backward(a, N, NULL);
        dt_net_backward(b, N, NULL);
        bad += memcmp(a->grad, b->grad, a->numel * sizeof *a->grad) != 0;
        for (size_t i = 0; i < a->numel; i++) {
            a->param[i] -= 0.05f * a->grad[i];
            b->param[i] -= 0.05f * b->grad[i];
        }
        memcpy(xb, x, (size_t)(N - 3) * nin * sizeof *x);
        la = dt_net_forward(a, x, N - 3, 0, NULL);
        lb = dt_net_forward(b, xb, N - 3, 0, NULL);
        bad += memcmp(la, lb, (size_t)(N - 3) * a->classes * sizeof *la) != 0;
    }
    if (bad)
        fprintf(stderr, "  %s: %d mismatches\n", what, bad);
    free(x), free(xb);
    return bad;
}

/* every ISA this CPU runs (all_isas 1), the best one and the 16-lane AVX2 build (0), or the best
 * one only (-1: resnet20, whose emulated convolutions take minutes) */
/* no_fusion: 0 both nets fused, 1 neither, 2 the bf16-stored one fused, the other not */
static void test_model(const char *model, int c, int h, int w, int N, int no_fusion, int all_isas)
{
    const dt_isa best = dt_isa_best();
    for (int isa = 0; isa < DT_ISA_COUNT; isa++) {
        if (!dt_kern_table((dt_isa)isa) || !dt_kern_table((dt_isa)isa)->bf16 ||
            (all_isas < 1 && isa != (int)best && (all_isas < 0 || isa != (int)DT_ISA_AVX2W16)))
            continue;
        dt_kern_select((dt_isa)isa);
        for (int threads = 1; threads <= 2; threads++) {
            dt_tpool_init(threads);
            dt_net *a = NULL, *b = NULL;
            DT_ASSERT(dt_net_build_opts(&a, model, N, c, h, w,
                                        &(dt_net_opts){.no_fusion = no_fusion == 1}) == 0);
            DT_ASSERT(dt_net_build_opts(
                          &b, model, N, c, h, w,
                          &(dt_net_opts){.no_fusion = no_fusion >= 1, .no_bf16_store = 1}) == 0);
            dt_net_init(a, 5);
            dt_net_init(b, 5);
            dt_net_set_precision(a, DT_BF16);
            dt_net_set_precision(b, DT_BF16);
            CHECK(dt_net_act_bf16_values(a) > 0 && dt_net_act_bf16_values(b) == 0);
            char what[160];
            snprintf(what, sizeof what, "%s%s %s threads %d", model,
                     no_fusion == 2   ? " (fused vs separate layers)"
                     : no_fusion == 1 ? " (no fusion)"
                                      : "",
                     dt_isa_name((dt_isa)isa), threads);
            CHECK(compare(a, b, N, what) == 0);
            /* back to float32 and to bf16: the arena pointers come back, the storage again */
            dt_net_set_precision(a, DT_FP32);
            CHECK(dt_net_act_bf16_values(a) == 0);
            dt_net_set_precision(b, DT_FP32);
            dt_net_set_precision(a, DT_BF16);
            dt_net_set_precision(b, DT_BF16);
            CHECK(compare(a, b, N, what) == 0);
            dt_net_free(a);
            dt_net_free(b);
        }
    }
    dt_tpool_init(1);
}

/* The lane layout (layer.h's dt_net.lanes): a bf16 net that keeps activations in blocks of the
 * table's lanes between its convolutions computes bitwise what the same net in (N, C, H, W)
 * computes (dt_net_opts.no_lanes), on every ISA with the bf16 family (2 threads on the best), training
 * steps at N = 2 blocks (the layout on), evaluations at N - 3 (off: a partial block) and at N. And it is
 * on: after a training forward, `lanes` is the table's and most layers' outputs are in it. */
static void test_layout(const char *model, int c, int h, int w, int blocks, int min_layers)
{
    for (int isa = 0; isa < DT_ISA_COUNT; isa++) {
        const dt_kern *k = dt_kern_table((dt_isa)isa);
        if (!k || !k->bf16conv)
            continue;
        dt_kern_select((dt_isa)isa);
        const int N = blocks * k->lanes;
        /* 2 threads on the best ISA only: the emulated ones take long enough */
        for (int threads = 1; threads <= (isa == (int)dt_isa_best() ? 2 : 1); threads++) {
            dt_tpool_init(threads);
            dt_net *a = NULL, *b = NULL;
            DT_ASSERT(dt_net_build_opts(&a, model, N, c, h, w, &(dt_net_opts){0}) == 0);
            DT_ASSERT(dt_net_build_opts(&b, model, N, c, h, w, &(dt_net_opts){.no_lanes = 1}) == 0);
            dt_net_init(a, 7);
            dt_net_init(b, 7);
            dt_net_set_precision(a, DT_BF16);
            dt_net_set_precision(b, DT_BF16);
            char what[160];
            snprintf(what, sizeof what, "%s lanes against (N, C, H, W) %s threads %d", model,
                     dt_isa_name((dt_isa)isa), threads);
            CHECK(compare(a, b, N, what) == 0);
            /* the layout of a training forward at N */
            const size_t nin = (size_t)c * h * w;
            float *x = dt_xcalloc((size_t)N * nin, sizeof *x);
            /* an evaluation at N: the layout on, BatchNorm on its running statistics */
            for (size_t i = 0; i < (size_t)N * nin; i++)
                x[i] = rnd_unit();
            const float *ea = dt_net_forward(a, x, N, 0, NULL),
                        *eb = dt_net_forward(b, x, N, 0, NULL);
            CHECK(memcmp(ea, eb, (size_t)N * a->classes * sizeof *ea) == 0);
            CHECK(a->lanes == k->lanes);
            dt_net_forward(a, x, N, 1, NULL);
            dt_net_forward(b, x, N, 1, NULL);
            int on = 0;
            for (int i = 0; i < a->nlayers; i++)
                on += a->layers[i].lanes_ok;
            CHECK(a->lanes == k->lanes && b->lanes == 0);
            if (on < min_layers)
                fprintf(stderr, "  %s: %d layers in lanes, expected at least %d\n", what, on,
                        min_layers);
            CHECK(on >= min_layers);
            free(x);
            dt_net_free(a);
            dt_net_free(b);
        }
    }
    dt_tpool_init(1);
}

/* A model for the lane layout's other paths (resnet20 has no conv bias and tiles that fit):
 * biased convolutions (the bias sums read the rounded gradient), 5 and 1 output channels (tiles
 * wider than the channels: the output through the workspace; the transposed input gradient's
 * too), a 1-channel input (tap pairs), a stride-2 convolution (the GEMM form of the input
 * gradient), a 1x1 one, and inputs read twice (gradients accumulated). */
static const char lanes_model[] = "[net]\ninput = 3x8x8\nclasses = 10\n"
                                  "[conv]\nname = c1\nout = 6\npad = 1\n"
                                  "[batchnorm]\nname = b1\n[relu]\nname = r1\n"
                                  "[conv]\nname = c2\nout = 5\npad = 1\n"
                                  "[conv]\nname = c3\nout = 4\npad = 1\n"
                                  "[batchnorm]\nname = b3\n"
                                  "[conv]\nname = c4\nout = 1\npad = 1\n"
                                  "[relu]\nname = r4\n"
                                  "[conv]\nname = c5\nout = 4\npad = 1\n"
                                  "[add]\nname = a5\nfrom = b3\n[relu]\nname = r5\n"
                                  "[conv]\nname = c6\nout = 4\nstride = 2\npad = 1\n"
                                  "[conv]\nname = c7\nout = 4\nkernel = 1\n"
                                  "[add]\nname = a7\nfrom = c6\n"
                                  "[gap]\n[flatten]\n[linear]\nname = fc\nout = 10\n";

/* A model for the float32 slots' sharing (net_act.c): a BatchNorm whose input is read again
 * after it (an add: its output may not take that slot), one whose input is not (it may), with
 * and without a fused ReLU, convolutions reading their inputs from the copies, one of them an
 * input the add reads too. */
static const char slots_model[] = "[net]\ninput = 3x8x8\nclasses = 10\n"
                                  "[conv]\nname = c1\nout = 6\npad = 1\n"
                                  "[batchnorm]\nname = b1\n[relu]\nname = r1\n"
                                  "[conv]\nname = c2\nout = 6\npad = 1\n"
                                  "[add]\nname = a2\nfrom = c1\n"
                                  "[batchnorm]\nname = b2\n"
                                  "[conv]\nname = c3\nout = 4\npad = 1\nstride = 2\n"
                                  "[batchnorm]\nname = b3\n[relu]\nname = r3\n"
                                  "[gap]\n[flatten]\n[linear]\nname = fc\nout = 10\n";

/* resnet20 at batch 128: slots + bf16 copies (2 bytes) against one float32 buffer per output */
static void test_memory(void)
{
    dt_net *net = NULL;
    DT_ASSERT(dt_net_build_for(&net, "resnet20", 128, 3, 32, 32) == 0);
    size_t outs = 0;
    for (int i = 0; i < net->nlayers; i++)
        if (!net->layers[i].ops->alias)
            outs += (size_t)128 * net->layers[i].out_size;
    dt_net_set_precision(net, DT_BF16);
    const double slots = (double)dt_net_act_slot_floats(net),
                 half = (double)dt_net_act_bf16_values(net) / 2.0;
    printf("test_bf16_act: resnet20 at batch 128: float32 outputs %.1f MiB; bf16 copies %.1f MiB "
           "+ float32 slots %.1f MiB\n",
           outs * 4.0 / 1048576.0, half * 4.0 / 1048576.0, slots * 4.0 / 1048576.0);
    CHECK(slots + half < 0.6 * (double)outs);
    /* the float32 slots: one stage-1 output (2 Mi floats: the convolutions read their inputs
     * from the copies, BatchNorm writes over its input) and one stage-2 output (the
     * downsampling block's shortcut, alive beside its second BatchNorm's output) */
    CHECK(slots <= 3.0 * 1048576.0);
    dt_net_free(net);
}

int main(void)
{
    test_model("mlp", 1, 28, 28, 11, 0, 1);
    test_model("lenet5", 1, 28, 28, 19, 0, 1);
    test_model("lenet5", 1, 28, 28, 19, 1, 0);
    test_model("cnn", 1, 28, 28, 19, 0, 0);
    /* the fused conv + ReLU + pool and BatchNorm + ReLU against the separate layers, bitwise
     * (ties of the pool's maximum after bf16 rounding broken alike) */
    test_model("lenet5", 1, 28, 28, 19, 2, 0);
    test_model("cnn", 1, 28, 28, 19, 2, 0);
    test_model("resnet20", 3, 32, 32, 5, 2, -1);
    test_model("resnet20", 3, 32, 32, 5, 0, -1);
    /* resnet20 (on 16 x 16 images: planes of 16, 8 and 4 pixels a side): every layer but the
     * pooling, the flatten and the linear one in lanes */
    test_layout("resnet20", 3, 16, 16, 2, 70);
    char dir[] = "/tmp/test_bf16_act.XXXXXX", path[64];
    DT_ASSERT(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/lanes.cfg", dir);
    FILE *f = fopen(path, "w");
    DT_ASSERT(f && fputs(lanes_model, f) >= 0 && fclose(f) == 0);
    test_layout(path, 3, 8, 8, 2, 14); /* all but gap, flatten and fc */
    remove(path);
    f = fopen(path, "w");
    DT_ASSERT(f && fputs(slots_model, f) >= 0 && fclose(f) == 0);
    test_model(path, 3, 8, 8, 19, 0, 1);
    test_model(path, 3, 8, 8, 32, 2, 1); /* in lanes */
    remove(path);
    remove(dir);
    test_memory();
    return check_finish("test_bf16_act");
}
