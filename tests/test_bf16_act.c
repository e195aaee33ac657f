/*
 * test_bf16_act.c - bf16 activation storage (runtime/net_act.h): a bf16 net whose activations
 * are stored as bf16 in shared float32 slots computes bitwise what the same net with one float32
 * buffer per activation (dt_net_opts.no_bf16_store) computes, for every built-in model, with
 * and without fusion, on the ISAs with the bf16 family (all of them for the small models; the
 * best this CPU runs and the 16-lane AVX2 build for the others, resnet20 on the best only, to
 * keep the test short): logits, every parameter gradient, over
 * two training steps (a forward at another batch size between them: an evaluation), threads 1
 * and 2. And it keeps less: the slots plus the bf16 copies under 60 % of the float32 outputs for
 * resnet20 (its peak RSS goal, issue 12: bf16 <= 0.7 x fp32).
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
    test_memory();
    return check_finish("test_bf16_act");
}
