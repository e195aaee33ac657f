/*
 * test_kern_elem.c - the `elem` and `optim` kernel families (kernels/elem.h, kernels/optim_k.h)
 * on every instruction set this CPU runs (and avx2w16, the 16-lane kernels lowered to AVX2, on
 * every x86-64 CPU with AVX2), against naive scalar references:
 *   - bitwise, for every entry: the elementwise loops and the optimizer updates compute each
 *     lane's expression in the reference's order (fmaf where the reference has fmaf); the
 *     reductions (BatchNorm's double sums, global average pooling) against references written in
 *     their documented fixed order (4 double lanes; dt_fsum's 8 float lanes over blocks of 256),
 *     and within 1e-12 (relative, in double) of a plain sequential sum; the optimizers' sumsq
 *     (the gradient norm's) likewise, over several blocks at 1, 2 and 3 threads;
 *   - bf16 rounding against dt_round_bf16_1, NaNs of every payload kept bitwise; fp16 rounding
 *     against dt_round_fp16_1, bitwise for every value but a NaN's payload (F16C quiets a
 *     signalling NaN and keeps 10 payload bits: its inputs hold only the canonical quiet NaN);
 *   - lengths 0, 1, 3, 7, 15, 16, 17, 31, 33, 64, 100, 1000 and 1003: vector bodies and tails;
 *   - avx2w16 == avx512 bitwise (same lanes, same order), and every ISA == every other;
 *   - the public kernels (dt_relu_forward, ...) call the selected table (dt_kern_select).
 * An ISA this CPU cannot run is skipped with a line saying so.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"
#include "kernels/elem.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "kernels/layer_kernels.h"
#include "kernels/optim_k.h"
#include "kernels/tpool.h"
#include "lowp.h"

static const long lens[] = {0, 1, 3, 7, 15, 16, 17, 31, 33, 64, 100, 1000, 1003};
enum { NLENS = (int)(sizeof lens / sizeof lens[0]), MAXLEN = 1003 };

static const dt_kern *tabs[DT_ISA_COUNT];

/* ---- inputs ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint32_t rnd32(void)
{
    rng_state = rng_state * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(rng_state >> 32);
}
/* uniform in [lo, hi) */
static float rndf(float lo, float hi)
{
    return lo + (hi - lo) * (float)(rnd32() >> 8) / 16777216.0f;
}

static float bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* values in [-2, 2) with zeros, -0, a NaN, infinities and a denormal sprinkled in */
static void fill(float *x, long n, int specials)
{
    for (long i = 0; i < n; i++)
        x[i] = rndf(-2.0f, 2.0f);
    if (!specials)
        return;
    const float sp[] = {0.0f, -0.0f, bits_f(0x7fc00000u), INFINITY, -INFINITY, 1e-40f, -1e-40f};
    for (long i = 0; i < n; i += 5)
        x[i] = sp[(i / 5) % 7];
}

/* every class of float: random bit patterns (NaNs, with any payload, made the canonical quiet NaN
 * unless keep_nan), and values near the float16 and bfloat16 rounding boundaries */
static void fill_bits(float *x, long n, int keep_nan)
{
    for (long i = 0; i < n; i++) {
        uint32_t u = rnd32();
        if (i % 3 == 1) /* near float16's range: exponents 2^-26 .. 2^17 */
            u = (u & 0x807fffffu) | ((uint32_t)(101 + rnd32() % 43) << 23);
        if (i % 7 == 2) /* exact ties of bf16 and fp16 rounding */
            u = (u & 0xffff0000u) | 0x8000u;
        if (i % 11 == 3) /* NaNs of every payload, signalling ones too */
            u |= 0x7f800001u;
        if (!keep_nan && (u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu))
            u = 0x7fc00000u;
        memcpy(&x[i], &u, sizeof u);
    }
}

static int same(const void *a, const void *b, size_t bytes) { return memcmp(a, b, bytes) == 0; }

/* CHECK that a and b hold the same bits, naming what and where on failure */
static void check_same(const void *a, const void *b, size_t bytes, const char *what,
                       const dt_kern *k, long n)
{
    const int ok = same(a, b, bytes);
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  ^ %s on %s, n = %ld: differs from the reference\n", what, k->name, n);
}

/* ---- elementwise, dropout mask, add ---- */

static void test_elementwise(const dt_kern *k, long n)
{
    static float a[MAXLEN], b[MAXLEN], o[MAXLEN], out[MAXLEN], ref[MAXLEN];
    static uint8_t mask[MAXLEN];
    fill(a, n, 1);
    fill(b, n, 0);
    fill(o, n, 1);
    for (long i = 0; i < n; i++)
        mask[i] = (uint8_t)(rnd32() & 1);
    for (long i = 0; i < n; i++)
        ref[i] = a[i] > 0.0f ? a[i] : 0.0f;
    k->elem->relu_forward(out, a, n);
    check_same(out, ref, (size_t)n * 4, "relu_forward", k, n);
    for (int accum = 0; accum < 2; accum++) {
        for (long i = 0; i < n; i++) {
            out[i] = ref[i] = b[i];
            ref[i] = accum ? ref[i] + (o[i] > 0.0f ? a[i] : 0.0f) : (o[i] > 0.0f ? a[i] : 0.0f);
        }
        k->elem->relu_backward(out, a, o, n, accum, 0);
        check_same(out, ref, (size_t)n * 4, "relu_backward", k, n);
        for (long i = 0; i < n; i++) {
            out[i] = b[i];
            ref[i] = accum ? b[i] + a[i] : a[i];
        }
        k->elem->add_backward(out, a, n, accum, 0);
        check_same(out, ref, (size_t)n * 4, "add_backward", k, n);
        const float scale = 1.0f / (1.0f - 0.3f);
        for (long i = 0; i < n; i++) {
            const float v = a[i] * ((float)mask[i] * scale);
            out[i] = b[i];
            ref[i] = accum ? b[i] + v : v;
        }
        k->elem->mask_apply(out, mask, a, n, scale, accum);
        check_same(out, ref, (size_t)n * 4, "mask_apply", k, n);
    }
    for (long i = 0; i < n; i++)
        ref[i] = a[i] + b[i];
    k->elem->add_forward(out, a, b, n, 0);
    check_same(out, ref, (size_t)n * 4, "add_forward", k, n);
}

/* ---- rounding ---- */

static void test_rounding(const dt_kern *k, long n)
{
    static float x[MAXLEN], out[MAXLEN], ref[MAXLEN];
    fill_bits(x, n, 1); /* bf16 rounding keeps every NaN as it is */
    memcpy(out, x, (size_t)n * 4);
    for (long i = 0; i < n; i++)
        ref[i] = dt_round_bf16_1(x[i]);
    k->elem->round_bf16(out, (size_t)n);
    check_same(out, ref, (size_t)n * 4, "round_bf16", k, n);
    fill_bits(x, n, 0);
    memcpy(out, x, (size_t)n * 4);
    for (long i = 0; i < n; i++)
        ref[i] = dt_round_fp16_1(x[i]);
    k->elem->round_fp16(out, (size_t)n);
    check_same(out, ref, (size_t)n * 4, "round_fp16", k, n);
}

/* ---- pooling and BatchNorm (N planes of C channels of HW values) ---- */

enum { BN_N = 3, BN_C = 6 }; /* 6: bn_sums' group of 4 channels and 2 more */

/* dt_fsum's order: 8 float lanes over blocks of 256, lanes added in double, then the tail */
static double fsum_ref(const float *x, size_t n)
{
    double total = 0.0;
    size_t i = 0;
    while (i + 8 <= n) {
        float acc[8] = {0};
        size_t end = i + 256 <= n ? i + 256 : n - (n - i) % 8;
        for (; i < end; i += 8)
            for (int j = 0; j < 8; j++)
                acc[j] += x[i + j];
        for (int j = 0; j < 8; j++)
            total += acc[j];
    }
    for (; i < n; i++)
        total += x[i];
    return total;
}

/* s += sum of a[i] * (b ? b[i] : a[i]) or of a[i] (sq = 0), in 4 double lanes */
static void lanes4_ref(const float *a, const float *b, size_t n, double *s, double *s2)
{
    double l[4] = {0}, l2[4] = {0};
    for (size_t i = 0; i < n; i++) {
        const size_t j = i < n - n % 4 ? i % 4 : 0;
        l[j] += (double)a[i];
        l2[j] += (double)a[i] * (double)(b ? b[i] : a[i]);
    }
    *s += (l[0] + l[1]) + (l[2] + l[3]);
    *s2 += (l2[0] + l2[1]) + (l2[2] + l2[3]);
}

static void test_gap(const dt_kern *k, int HW)
{
    const size_t planes = BN_N * BN_C, total = planes * (size_t)HW;
    float *x = dt_xmalloc(total, 4), *out = dt_xmalloc(total, 4), *ref = dt_xmalloc(total, 4);
    float g[BN_N * BN_C], o[BN_N * BN_C], oref[BN_N * BN_C];
    fill(x, (long)total, 0);
    fill(g, (long)planes, 0);
    k->elem->gap_forward(o, x, planes, HW);
    for (size_t p = 0; p < planes; p++) {
        oref[p] = (float)(fsum_ref(x + p * HW, (size_t)HW) / HW);
        double plain = 0.0;
        for (int i = 0; i < HW; i++)
            plain += x[p * HW + i];
        CHECK_CLOSE(o[p], plain / HW, 1e-6, 1e-6); /* float lanes: float sums' error */
    }
    check_same(o, oref, sizeof o, "gap_forward", k, HW);
    for (int accum = 0; accum < 2; accum++) {
        for (size_t i = 0; i < total; i++) {
            const float v = g[i / HW] / (float)HW;
            out[i] = x[i];
            ref[i] = accum ? x[i] + v : v;
        }
        k->elem->gap_backward(out, g, planes, HW, accum);
        check_same(out, ref, total * 4, "gap_backward", k, HW);
    }
    free(x), free(out), free(ref);
}

static void test_bn_sums(const dt_kern *k, const float *x, const float *dy, int HW)
{
    double s[BN_C], s2[BN_C], rs[BN_C], rs2[BN_C];
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0)
            k->elem->bn_sums(s, s2, x, BN_N, BN_C, HW, 0, BN_C);
        else
            k->elem->bn_dots(s, s2, dy, x, NULL, BN_N, BN_C, HW, 0, BN_C, 0);
        const float *a = pass == 0 ? x : dy, *b = pass == 0 ? NULL : x;
        for (int c = 0; c < BN_C; c++) {
            double plain = 0.0, plain2 = 0.0;
            rs[c] = rs2[c] = 0.0;
            for (int n = 0; n < BN_N; n++) {
                const size_t off = ((size_t)n * BN_C + c) * HW;
                lanes4_ref(a + off, b ? b + off : NULL, (size_t)HW, &rs[c], &rs2[c]);
                for (int i = 0; i < HW; i++) {
                    plain += a[off + i];
                    plain2 += (double)a[off + i] * (b ? b[off + i] : a[off + i]);
                }
            }
            CHECK_CLOSE(s[c], plain, 1e-12, 1e-12);
            CHECK_CLOSE(s2[c], plain2, 1e-12, 1e-12);
        }
        check_same(s, rs, sizeof s, pass == 0 ? "bn_sums" : "bn_dots", k, HW);
        check_same(s2, rs2, sizeof s2, pass == 0 ? "bn_sums (squares)" : "bn_dots (products)", k,
                   HW);
    }
}

static void test_bn(const dt_kern *k, int HW)
{
    const size_t total = (size_t)BN_N * BN_C * HW;
    float *x = dt_xmalloc(total, 4), *dy = dt_xmalloc(total, 4);
    float *out = dt_xmalloc(total, 4), *ref = dt_xmalloc(total, 4);
    fill(x, (long)total, 0);
    fill(dy, (long)total, 0);
    test_bn_sums(k, x, dy, HW);
    const float mean = 0.25f, a = 1.5f, b = -0.125f, kk = 0.75f, mdy = 0.0625f, slope = 0.3f;
    const int c = BN_C - 1;
    for (int accum = 0; accum < 3; accum++) {
        for (size_t i = 0; i < total; i++)
            out[i] = ref[i] = dy[i];
        for (int n = 0; n < BN_N; n++)
            for (int i = 0; i < HW; i++) {
                const size_t j = ((size_t)n * BN_C + c) * HW + i;
                if (accum == 2)
                    ref[j] = (x[j] - mean) * a + b;
                else {
                    const float v = kk * (dy[j] - mdy - (x[j] - mean) * slope);
                    ref[j] = accum ? ref[j] + v : v;
                }
            }
        if (accum == 2)
            k->elem->bn_affine(out, x, BN_N, BN_C, HW, c, mean, a, b, 0, NULL);
        else
            k->elem->bn_backward(out, dy, x, NULL, BN_N, BN_C, HW, c, kk, mdy, mean, slope, accum,
                                 0);
        check_same(out, ref, total * 4, accum == 2 ? "bn_affine" : "bn_backward", k, HW);
    }
    free(x), free(dy), free(out), free(ref);
}

/* a fused ReLU's output for the BatchNorm tests: values in [-2, 2) with zeros, -0 and NaN */
static void fill_ro(float *ro, size_t total)
{
    fill(ro, (long)total, 0);
    for (size_t i = 0; i < total; i += 7)
        ro[i] = i % 3 == 0 ? 0.0f : i % 3 == 1 ? -0.0f : NAN;
}

/* BatchNorm with a fused ReLU (kernels/elem.h): bitwise BatchNorm's kernels composed with the
 * same ISA's relu_forward / relu_backward, ReLU outputs with zeros, -0, negatives and NaN,
 * gradients with NaN, infinities, -0 and a denormal */
static void test_bn_relu(const dt_kern *k, int HW)
{
    const size_t total = (size_t)BN_N * BN_C * HW;
    float *x = dt_xmalloc(total, 4), *dy = dt_xmalloc(total, 4), *ro = dt_xmalloc(total, 4);
    float *gm = dt_xmalloc(total, 4), *out = dt_xmalloc(total, 4), *ref = dt_xmalloc(total, 4);
    fill(x, (long)total, 0);
    fill(dy, (long)total, 0);
    fill_ro(ro, total);
    /* gradients the mask must drop or keep as relu_backward does: NaN, infinities, -0, a denormal
     * (every 11th value: under kept and dropped positions of ro both) */
    static const float special[] = {NAN, INFINITY, -INFINITY, -0.0f, 1e-45f};
    for (size_t i = 5; i < total; i += 11)
        dy[i] = special[(i / 11) % 5];
    k->elem->relu_backward(gm, dy, ro, (long)total, 0, 0); /* the unfused layers' BatchNorm dout */
    double s[BN_C], s2[BN_C], rs[BN_C], rs2[BN_C];
    k->elem->bn_dots(s, s2, dy, x, ro, BN_N, BN_C, HW, 0, BN_C, 0);
    k->elem->bn_dots(rs, rs2, gm, x, NULL, BN_N, BN_C, HW, 0, BN_C, 0);
    check_same(s, rs, sizeof s, "bn_dots (relu)", k, HW);
    check_same(s2, rs2, sizeof s2, "bn_dots (relu, products)", k, HW);
    const float mean = 0.25f, a = 1.5f, b = -0.125f, kk = 0.75f, mdy = 0.0625f, slope = 0.3f;
    for (int c = 0; c < BN_C; c++) {
        for (int accum = 0; accum < 2; accum++) {
            memcpy(out, dy, total * 4);
            memcpy(ref, dy, total * 4);
            k->elem->bn_backward(out, dy, x, ro, BN_N, BN_C, HW, c, kk, mdy, mean, slope, accum, 0);
            k->elem->bn_backward(ref, gm, x, NULL, BN_N, BN_C, HW, c, kk, mdy, mean, slope, accum,
                                 0);
            check_same(out, ref, total * 4, "bn_backward (relu)", k, HW);
        }
        memcpy(out, dy, total * 4);
        memcpy(ref, dy, total * 4);
        k->elem->bn_affine(out, x, BN_N, BN_C, HW, c, mean, a, b, 1, NULL);
        k->elem->bn_affine(ref, x, BN_N, BN_C, HW, c, mean, a, b, 0, NULL);
        k->elem->relu_forward(ref, ref, (long)total);
        for (size_t i = 0; i < total; i++) /* the planes bn_affine does not write */
            if ((i / HW) % BN_C != (size_t)c)
                ref[i] = out[i] = dy[i];
        check_same(out, ref, total * 4, "bn_affine (relu)", k, HW);
    }
    free(x), free(dy), free(ro), free(gm), free(out), free(ref);
}

/* The backward entries' rnd (kernels/elem.h): reading the incoming gradient rounded to bf16 is
 * bitwise the same entry with rnd 0 on the gradient rounded first by the ISA's round_bf16 (what
 * net.c did before the layers rounded it themselves); gradients of every float class, ties of
 * bf16 rounding, NaNs and infinities; the fused ReLU's mask with zeros, -0 and NaN. */
static void test_rounded_reads(const dt_kern *k, int HW)
{
    const size_t total = (size_t)BN_N * BN_C * HW;
    float *x = dt_xmalloc(total, 4), *dy = dt_xmalloc(total, 4), *dyr = dt_xmalloc(total, 4);
    float *ro = dt_xmalloc(total, 4), *out = dt_xmalloc(total, 4), *ref = dt_xmalloc(total, 4);
    fill(x, (long)total, 0);
    fill_bits(dy, (long)total, 0);
    fill_ro(ro, total);
    memcpy(dyr, dy, total * 4);
    k->elem->round_bf16(dyr, total);
    const long n = (long)total;
    for (int accum = 0; accum < 2; accum++) {
        fill(out, n, 1);
        memcpy(ref, out, total * 4);
        k->elem->relu_backward(out, dy, ro, n, accum, 1);
        k->elem->relu_backward(ref, dyr, ro, n, accum, 0);
        check_same(out, ref, total * 4, "relu_backward (rnd)", k, HW);
        fill(out, n, 1);
        memcpy(ref, out, total * 4);
        k->elem->add_backward(out, dy, n, accum, 1);
        k->elem->add_backward(ref, dyr, n, accum, 0);
        check_same(out, ref, total * 4, "add_backward (rnd)", k, HW);
    }
    /* the forwards that round what they write (dt_layer_ops.rounds_out) */
    k->elem->add_forward(out, dy, x, n, 1);
    k->elem->add_forward(ref, dy, x, n, 0);
    k->elem->round_bf16(ref, total);
    check_same(out, ref, total * 4, "add_forward (rnd)", k, HW);
    for (int flags = DT_BN_ROUND; flags <= (DT_BN_ROUND | DT_BN_RELU); flags++) {
        fill(out, n, 0);
        memcpy(ref, out, total * 4);
        k->elem->bn_affine(out, dy, BN_N, BN_C, HW, 1, 0.25f, 1.5f, -0.125f, flags, NULL);
        k->elem->bn_affine(ref, dy, BN_N, BN_C, HW, 1, 0.25f, 1.5f, -0.125f, flags & DT_BN_RELU,
                           NULL);
        for (int m = 0; m < BN_N; m++)
            k->elem->round_bf16(ref + ((size_t)m * BN_C + 1) * HW, (size_t)HW);
        check_same(out, ref, total * 4, "bn_affine (rnd)", k, HW);
    }
    memcpy(out, dy, total * 4); /* in place, as a shared gradient buffer has it */
    k->elem->add_backward(out, out, n, 0, 1);
    check_same(out, dyr, total * 4, "add_backward (rnd, in place)", k, HW);
    /* BatchNorm: finite gradients (the sums of NaNs compare as bits anyway, but keep them useful) */
    for (size_t i = 0; i < total; i++)
        if (!isfinite(dy[i]))
            dy[i] = 0.5f;
    memcpy(dyr, dy, total * 4);
    k->elem->round_bf16(dyr, total);
    for (int relu = 0; relu < 2; relu++) {
        const float *r = relu ? ro : NULL;
        double s[BN_C], s2[BN_C], rs[BN_C], rs2[BN_C];
        k->elem->bn_dots(s, s2, dy, x, r, BN_N, BN_C, HW, 0, BN_C, 1);
        k->elem->bn_dots(rs, rs2, dyr, x, r, BN_N, BN_C, HW, 0, BN_C, 0);
        check_same(s, rs, sizeof s, "bn_dots (rnd)", k, HW);
        check_same(s2, rs2, sizeof s2, "bn_dots (rnd, products)", k, HW);
        for (int accum = 0; accum < 2; accum++)
            for (int c = 0; c < BN_C; c += BN_C - 1) {
                fill(out, n, 0);
                memcpy(ref, out, total * 4);
                k->elem->bn_backward(out, dy, x, r, BN_N, BN_C, HW, c, 0.75f, 0.0625f, 0.25f, 0.3f,
                                     accum, 1);
                k->elem->bn_backward(ref, dyr, x, r, BN_N, BN_C, HW, c, 0.75f, 0.0625f, 0.25f, 0.3f,
                                     accum, 0);
                check_same(out, ref, total * 4, "bn_backward (rnd)", k, HW);
            }
    }
    free(x), free(dy), free(dyr), free(ro), free(out), free(ref);
}

/* The entries that read stored activations from their bf16 copies (kernels/elem.h: _h; net_act.h)
 * are bitwise the float entries on the copies' values widened (what dt_net_act_fetch wrote into
 * the float32 slot): x and the ReLU output as bf16 values of every class the rounding makes
 * (zeros, -0, a NaN, infinities), with and without the fused ReLU, rnd 0 and 1, accum 0 and 1. */
static void test_copy_reads(const dt_kern *k, int HW)
{
    const size_t total = (size_t)BN_N * BN_C * HW;
    float *x = dt_xmalloc(total, 4), *dy = dt_xmalloc(total, 4), *ro = dt_xmalloc(total, 4);
    float *out = dt_xmalloc(total, 4), *ref = dt_xmalloc(total, 4);
    uint16_t *xh = dt_xmalloc(total, 2), *roh = dt_xmalloc(total, 2);
    fill(x, (long)total, 1);
    fill(dy, (long)total, 0);
    fill_ro(ro, total);
    for (size_t i = 0; i < total; i++) { /* the copies, and what widening them gives */
        const float xr = dt_round_bf16_1(x[i]), rr = dt_round_bf16_1(ro[i]);
        uint32_t u, v;
        memcpy(&u, &xr, 4), memcpy(&v, &rr, 4);
        xh[i] = (uint16_t)(u >> 16), roh[i] = (uint16_t)(v >> 16);
        u &= 0xffff0000u, v &= 0xffff0000u;
        memcpy(&x[i], &u, 4), memcpy(&ro[i], &v, 4);
    }
    const long n = (long)total;
    for (int rnd = 0; rnd < 2; rnd++) {
        for (int accum = 0; accum < 2; accum++) {
            fill(out, n, 1);
            memcpy(ref, out, total * 4);
            k->elem->relu_backward_h(out, dy, roh, n, accum, rnd);
            k->elem->relu_backward(ref, dy, ro, n, accum, rnd);
            check_same(out, ref, total * 4, "relu_backward_h", k, HW);
        }
        for (int relu = 0; relu < 2; relu++) {
            double s[BN_C], s2[BN_C], rs[BN_C], rs2[BN_C];
            k->elem->bn_dots_h(s, s2, dy, xh, relu ? roh : NULL, BN_N, BN_C, HW, 0, BN_C, rnd);
            k->elem->bn_dots(rs, rs2, dy, x, relu ? ro : NULL, BN_N, BN_C, HW, 0, BN_C, rnd);
            /* a sum of several NaNs and infinities is a NaN whose sign C does not fix (the
             * compiler may swap a commutative operation's operands): any NaN for a NaN */
            for (int c = 0; c < BN_C; c++) {
                if (isnan(s[c]) && isnan(rs[c]))
                    s[c] = rs[c];
                if (isnan(s2[c]) && isnan(rs2[c]))
                    s2[c] = rs2[c];
            }
            check_same(s, rs, sizeof s, "bn_dots_h", k, HW);
            check_same(s2, rs2, sizeof s2, "bn_dots_h (products)", k, HW);
            for (int accum = 0; accum < 2; accum++)
                for (int c = 0; c < BN_C; c += BN_C - 1) {
                    fill(out, n, 0);
                    memcpy(ref, out, total * 4);
                    k->elem->bn_backward_h(out, dy, xh, relu ? roh : NULL, BN_N, BN_C, HW, c, 0.75f,
                                           0.0625f, 0.25f, 0.3f, accum, rnd);
                    k->elem->bn_backward(ref, dy, x, relu ? ro : NULL, BN_N, BN_C, HW, c, 0.75f,
                                         0.0625f, 0.25f, 0.3f, accum, rnd);
                    check_same(out, ref, total * 4, "bn_backward_h", k, HW);
                }
        }
    }
    free(x), free(dy), free(ro), free(out), free(ref), free(xh), free(roh);
}

/* norm_u8 (the batch gather's normalization): bitwise the scalar expression of
 * dt_dataset_set_norm's table, every byte value, lengths with tails, MNIST's and CIFAR's
 * statistics, the identity and a zero std (infinities and NaN alike) */
/* BatchNorm + residual add + ReLU in one pass (bn_affine's DT_BN_ADD): bitwise bn_affine, then
 * add_forward, then relu_forward on the same ISA, rounded to bf16 or not, the residual as floats
 * or (DT_BN_RES16) as its bf16 copy; values with zeros, -0, NaN and infinities */
static void test_bn_add(const dt_kern *k, int HW)
{
    const size_t total = (size_t)BN_N * BN_C * HW;
    float *x = dt_xmalloc(total, 4), *r = dt_xmalloc(total, 4), *out = dt_xmalloc(total, 4);
    float *ref = dt_xmalloc(total, 4);
    uint16_t *rh = dt_xmalloc(total, 2);
    fill(x, (long)total, 1);
    fill(r, (long)total, 1);
    for (size_t i = 0; i < total; i++) { /* the residual's copy, and its widened values */
        const float rr = dt_round_bf16_1(r[i]);
        uint32_t u;
        memcpy(&u, &rr, 4);
        rh[i] = (uint16_t)(u >> 16);
        u &= 0xffff0000u;
        memcpy(&r[i], &u, 4);
    }
    for (int f = 0; f < 4; f++) {
        const int rnd = f & 1, h = f >> 1;
        for (int c = 0; c < BN_C; c++) {
            memcpy(out, x, total * 4);
            memcpy(ref, x, total * 4);
            k->elem->bn_affine(out, x, BN_N, BN_C, HW, c, 0.25f, 1.5f, -0.125f,
                               DT_BN_ADD | (rnd ? DT_BN_ROUND : 0) | (h ? DT_BN_RES16 : 0),
                               h ? (const void *)rh : (const void *)r);
            k->elem->bn_affine(ref, x, BN_N, BN_C, HW, c, 0.25f, 1.5f, -0.125f,
                               rnd ? DT_BN_ROUND : 0, NULL);
            for (int n = 0; n < BN_N; n++) { /* channel c's planes: add, then ReLU */
                float *p = ref + ((size_t)n * BN_C + c) * HW;
                const float *q = r + ((size_t)n * BN_C + c) * HW;
                k->elem->add_forward(p, p, q, HW, rnd);
                k->elem->relu_forward(p, p, HW);
            }
            for (size_t i = 0; i < total; i++) /* a NaN's payload and sign: any NaN */
                if (isnan(out[i]) && isnan(ref[i]))
                    out[i] = ref[i];
            check_same(out, ref, total * 4,
                       h ? "bn_affine (add, bf16 residual)" : "bn_affine (add)", k, HW);
        }
    }
    free(x), free(r), free(out), free(ref), free(rh);
}

/* The lane layout's entries (kernels/elem.h: one block of `lanes` images as [C][HW][lanes]) give
 * bitwise what the NCHW entries give on each image of the block: BatchNorm's per-image sums
 * (bn_sums_l; bn_dots_l and bn_dots_lh with the fused ReLU's mask and rnd), global average
 * pooling forward and backward. Values with zeros, -0, NaN and infinities (fill's specials). */
static void test_lane_entries(const dt_kern *k, int HW)
{
    const int L = k->lanes, C = BN_C;
    const size_t img = (size_t)C * HW, total = (size_t)L * img;
    float *x = dt_xmalloc(total, 4), *dy = dt_xmalloc(total, 4), *ro = dt_xmalloc(total, 4);
    float *xl = dt_xmalloc(total, 4), *dyl = dt_xmalloc(total, 4), *rol = dt_xmalloc(total, 4);
    uint16_t *xh = dt_xmalloc(total, 2), *roh = dt_xmalloc(total, 2);
    uint16_t *xhl = dt_xmalloc(total, 2), *rohl = dt_xmalloc(total, 2);
    float *o = dt_xmalloc(total, 4), *ol = dt_xmalloc(total, 4);
    double *s = dt_xmalloc((size_t)L * C, 8), *s2 = dt_xmalloc((size_t)L * C, 8);
    double rs[BN_C], rs2[BN_C];
    fill(x, (long)total, 1);
    fill(dy, (long)total, 0);
    fill_ro(ro, total);
    for (size_t i = 0; i < total; i++) { /* bf16 copies of x and ro */
        const float xr = dt_round_bf16_1(x[i]), rr = dt_round_bf16_1(ro[i]);
        uint32_t u, v;
        memcpy(&u, &xr, 4), memcpy(&v, &rr, 4);
        xh[i] = (uint16_t)(u >> 16), roh[i] = (uint16_t)(v >> 16);
    }
    /* image l's (c, i) at [c][i][l] */
    for (int l = 0; l < L; l++)
        for (size_t e = 0; e < img; e++) {
            const size_t a = (size_t)l * img + e, b = e * L + (size_t)l;
            xl[b] = x[a], dyl[b] = dy[a], rol[b] = ro[a], xhl[b] = xh[a], rohl[b] = roh[a];
        }
    for (int pass = 0; pass < 5; pass++) {
        const int rnd = pass == 4, relu = pass >= 2;
        static const char *const what[] = {"bn_sums_l", "bn_dots_l", "bn_dots_l (relu)",
                                           "bn_dots_lh (relu)", "bn_dots_lh (relu, rnd)"};
        if (pass == 0)
            k->elem->bn_sums_l(s, s2, xl, C, HW);
        else if (pass <= 2)
            k->elem->bn_dots_l(s, s2, dyl, xl, relu ? rol : NULL, C, HW, 0);
        else
            k->elem->bn_dots_lh(s, s2, dyl, xhl, rohl, C, HW, rnd);
        for (int l = 0; l < L; l++) {
            const size_t a = (size_t)l * img;
            if (pass == 0)
                k->elem->bn_sums(rs, rs2, x + a, 1, C, HW, 0, C);
            else if (pass <= 2)
                k->elem->bn_dots(rs, rs2, dy + a, x + a, relu ? ro + a : NULL, 1, C, HW, 0, C, 0);
            else
                k->elem->bn_dots_h(rs, rs2, dy + a, xh + a, roh + a, 1, C, HW, 0, C, rnd);
            /* a NaN's sign is not fixed (test_copy_reads): any NaN for a NaN */
            for (int c = 0; c < C; c++) {
                double *p = s + (size_t)l * C + c, *p2 = s2 + (size_t)l * C + c;
                if (isnan(*p) && isnan(rs[c]))
                    *p = rs[c];
                if (isnan(*p2) && isnan(rs2[c]))
                    *p2 = rs2[c];
            }
            check_same(s + (size_t)l * C, rs, sizeof rs, what[pass], k, HW);
            check_same(s2 + (size_t)l * C, rs2, sizeof rs2, what[pass], k, HW);
        }
    }
    /* gap: forward into (L, C) rows; backward (=|+=) into the block */
    k->elem->gap_forward_l(ol, xl, C, HW);
    k->elem->gap_forward(o, x, (size_t)L * C, HW);
    for (size_t i = 0; i < (size_t)L * C; i++) /* any NaN for a NaN */
        if (isnan(ol[i]) && isnan(o[i]))
            ol[i] = o[i];
    check_same(ol, o, (size_t)L * C * 4, "gap_forward_l", k, HW);
    for (int accum = 0; accum < 2; accum++) {
        memcpy(o, x, total * 4);
        memcpy(ol, xl, total * 4);
        k->elem->gap_backward(o, dy, (size_t)L * C, HW, accum);
        k->elem->gap_backward_l(ol, dy, C, HW, accum);
        int bad = 0;
        for (int l = 0; l < L; l++)
            for (size_t e = 0; e < img; e++)
                bad += !same(&ol[e * L + (size_t)l], &o[(size_t)l * img + e], 4);
        check_same(&bad, &(int){0}, sizeof bad, "gap_backward_l", k, HW);
    }
    free(x), free(dy), free(ro), free(xl), free(dyl), free(rol), free(xh), free(roh), free(xhl);
    free(rohl), free(o), free(ol), free(s), free(s2);
}

static void test_norm_u8(const dt_kern *k)
{
    static uint8_t src[256 * 3 + 13];
    static float out[256 * 3 + 13], ref[256 * 3 + 13];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)(i * 7 + i / 256);
    const float ms[][2] = {{0.1307f, 0.3081f}, {0.4914f, 0.2470f}, {0.0f, 1.0f}, {0.5f, 0.0f}};
    for (int t = 0; t < 4; t++)
        for (size_t n = sizeof src - 20; n <= sizeof src; n++) {
            for (size_t i = 0; i < n; i++)
                ref[i] = ((float)src[i] / 255.0f - ms[t][0]) / ms[t][1];
            k->elem->norm_u8(out, src, n, ms[t][0], ms[t][1]);
            check_same(out, ref, n * 4, "norm_u8", k, (long)n);
        }
}

/* ---- optimizers: references in the order of optim.c's torch formulas ---- */

typedef struct {
    float p[MAXLEN], g[MAXLEN], s0[MAXLEN], s1[MAXLEN], s2[MAXLEN];
} opt_bufs;

static void sgd_ref(const dt_kopt_sgd *k, opt_bufs *r, long n, int l2, int mode)
{
    for (long i = 0; i < n; i++) {
        float g = r->g[i];
        if (l2)
            g = fmaf(r->p[i], k->wd, g);
        if (mode != 0) {
            const float bi = (mode == 1 || mode == 4) ? g : fmaf(g, k->damp1, r->s0[i] * k->mu);
            r->s0[i] = bi;
            g = (mode == 3 || mode == 4) ? fmaf(bi, k->mu, g) : bi;
        }
        r->p[i] = fmaf(g, k->nlr, r->p[i]);
    }
}

static void adagrad_ref(const dt_kopt_adagrad *k, opt_bufs *r, long n, int l2)
{
    for (long i = 0; i < n; i++) {
        float g = l2 ? fmaf(r->p[i], k->wd, r->g[i]) : r->g[i];
        const float s = fmaf(g, g, r->s0[i]);
        r->s0[i] = s;
        r->p[i] = r->p[i] + k->nclr * g / (sqrtf(s) + k->eps);
    }
}

static void adadelta_ref(const dt_kopt_adadelta *k, opt_bufs *r, long n, int l2)
{
    for (long i = 0; i < n; i++) {
        float g = l2 ? fmaf(r->p[i], k->wd, r->g[i]) : r->g[i];
        const float s = fmaf(k->rho1 * g, g, r->s0[i] * k->rho);
        r->s0[i] = s;
        const float delta = sqrtf(r->s1[i] + k->eps) / sqrtf(s + k->eps) * g;
        r->s1[i] = fmaf(k->rho1 * delta, delta, r->s1[i] * k->rho);
        r->p[i] = fmaf(delta, k->nlr, r->p[i]);
    }
}

static void rmsprop_ref(const dt_kopt_rmsprop *k, opt_bufs *r, long n, int l2, int centered,
                        int momentum)
{
    for (long i = 0; i < n; i++) {
        float g = l2 ? fmaf(r->p[i], k->wd, r->g[i]) : r->g[i];
        const float s = fmaf(k->al1 * g, g, r->s0[i] * k->al);
        r->s0[i] = s;
        float avg = sqrtf(s);
        if (centered) {
            const float ga = fmaf(g, k->al1, r->s2[i] * k->al);
            r->s2[i] = ga;
            avg = sqrtf(fmaf(-ga, ga, s));
        }
        avg = avg + k->eps;
        if (momentum) {
            const float bi = r->s1[i] * k->mu + g / avg;
            r->s1[i] = bi;
            r->p[i] = fmaf(bi, k->nlr, r->p[i]);
        } else {
            r->p[i] = r->p[i] + k->nlr * g / avg;
        }
    }
}

static void adam_ref(const dt_kopt_adam *k, opt_bufs *r, long n, int mode, int amsgrad)
{
    for (long i = 0; i < n; i++) {
        float g = r->g[i], pi = r->p[i];
        if (mode == 2)
            pi = pi * k->decay;
        else if (mode == 1)
            g = fmaf(pi, k->wd, g);
        const float mi = fmaf(g, k->b1c, r->s0[i] * k->b1);
        float v = fmaf(k->b2c * g, g, r->s1[i] * k->b2);
        r->s0[i] = mi;
        r->s1[i] = v;
        if (amsgrad) {
            v = (r->s2[i] < v || v != v) ? v : r->s2[i];
            r->s2[i] = v;
        }
        r->p[i] = pi + k->nstep * mi / (sqrtf(v) / k->bc2_sqrt + k->eps);
    }
}

/* one optimizer configuration: kind 0 sgd (a = l2, b = mode), 1 adagrad (a = l2), 2 adadelta,
 * 3 rmsprop (a = l2, b = centered << 1 | momentum), 4 adam (a = mode, b = amsgrad) */
static void opt_step(const struct dt_koptim *o, opt_bufs *t, opt_bufs *r, long n, int kind, int a,
                     int b)
{
    static const dt_kopt_sgd ks = {1e-2f, 0.9f, 0.75f, -0.05f};
    static const dt_kopt_adagrad kg = {1e-2f, 1e-10f, -0.01f};
    static const dt_kopt_adadelta kd = {1e-2f, 1e-6f, 0.9f, 0.1f, -1.0f};
    static const dt_kopt_rmsprop kr = {1e-2f, 1e-8f, 0.99f, 0.01f, 0.5f, -0.01f};
    static const dt_kopt_adam ka = {1e-2f, 0.9f,    0.1f,     0.999f, 1e-3f,
                                    1e-8f, 0.9999f, -0.0011f, 0.0447f};
    const size_t un = (size_t)n;
    switch (kind) {
    case 0:
        o->sgd(&ks, t->p, t->g, t->s0, un, a, b);
        sgd_ref(&ks, r, n, a, b);
        break;
    case 1:
        o->adagrad(&kg, t->p, t->g, t->s0, un, a);
        adagrad_ref(&kg, r, n, a);
        break;
    case 2:
        o->adadelta(&kd, t->p, t->g, t->s0, t->s1, un, a);
        adadelta_ref(&kd, r, n, a);
        break;
    case 3:
        o->rmsprop(&kr, t->p, t->g, t->s0, t->s1, (b & 2) ? t->s2 : NULL, un, a, b >> 1, b & 1);
        rmsprop_ref(&kr, r, n, a, b >> 1, b & 1);
        break;
    default:
        o->adam(&ka, t->p, t->g, t->s0, t->s1, b ? t->s2 : NULL, un, a, b);
        adam_ref(&ka, r, n, a, b);
        break;
    }
}

static void test_optim_kernels(const dt_kern *k, long n)
{
    static opt_bufs t, r;
    /* (kind, a range, b range) */
    static const int cfgs[][3] = {{0, 2, 5}, {1, 2, 1}, {2, 2, 1}, {3, 2, 4}, {4, 3, 2}};
    static const char *const names[] = {"sgd", "adagrad", "adadelta", "rmsprop", "adam"};
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++)
        for (int a = 0; a < cfgs[c][1]; a++)
            for (int b = 0; b < cfgs[c][2]; b++) {
                fill(t.p, n, 0);
                fill(t.g, n, 0);
                /* states a run reaches: centered RMSprop's square_avg >= grad_avg^2 (else sqrt of
                 * a negative: a NaN, whose sign and payload the compilers' operand orders may
                 * differ in) */
                for (long i = 0; i < n; i++) {
                    t.s0[i] = rndf(0.01f, 1.0f);
                    t.s1[i] = rndf(0.0f, 1.0f);
                    t.s2[i] = rndf(0.0f, 0.1f);
                }
                r = t;
                for (int step = 0; step < 2; step++) /* a second step on the updated state */
                    opt_step(k->optim, &t, &r, n, cfgs[c][0], a, b);
                const int ok = same(&t, &r, sizeof t);
                CHECK(ok);
                if (!ok)
                    fprintf(stderr, "  ^ %s (%d, %d) on %s, n = %ld: differs from the reference\n",
                            names[c], a, b, k->name, n);
            }
}

/* sumsq in optim_k.h's order, written out: per block, value 16i + l in lane l (the tail in lane
 * 0), each group of 4 lanes folded (0 + 1) + (2 + 3), the groups added in order; the blocks too */
static double sumsq_ref(const float *x, size_t n)
{
    double total = 0.0;
    for (size_t b0 = 0; b0 < n; b0 += DT_KOPT_SUMSQ_BLOCK) {
        const size_t m = n - b0 < DT_KOPT_SUMSQ_BLOCK ? n - b0 : DT_KOPT_SUMSQ_BLOCK;
        double l[16] = {0};
        for (size_t i = 0; i < m; i++) {
            const size_t j = i < m - m % 16 ? i % 16 : 0;
            l[j] += (double)x[b0 + i] * (double)x[b0 + i];
        }
        double g[4];
        for (int q = 0; q < 4; q++)
            g[q] = (l[4 * q] + l[4 * q + 1]) + (l[4 * q + 2] + l[4 * q + 3]);
        total += ((g[0] + g[1]) + g[2]) + g[3];
    }
    return total;
}

/* sumsq bitwise against the reference: the short lengths, and several blocks with a tail at 1,
 * 2 and 3 threads (a block is one thread's: the same bits) */
static void test_sumsq(const dt_kern *k)
{
    enum { BIG = 3 * DT_KOPT_SUMSQ_BLOCK + 1037 };
    static float x[BIG];
    fill(x, BIG, 0);
    for (int l = 0; l < NLENS; l++) {
        const double got = k->optim->sumsq(x + 1, (size_t)lens[l]),
                     ref = sumsq_ref(x + 1, (size_t)lens[l]);
        CHECK(same(&got, &ref, sizeof got));
    }
    const double ref = sumsq_ref(x, BIG);
    for (int T = 1; T <= 3; T++) {
        dt_tpool_init(T);
        const double got = k->optim->sumsq(x, BIG);
        const int ok = same(&got, &ref, sizeof got);
        CHECK(ok);
        if (!ok)
            fprintf(stderr, "  ^ sumsq on %s, %d threads: %.17g, reference %.17g\n", k->name, T,
                    got, ref);
    }
    dt_tpool_init(1);
    /* the values fill gives lie in [-2, 2): the sum of squares is close to the naive one */
    double naive = 0.0;
    for (long i = 0; i < BIG; i++)
        naive += (double)x[i] * x[i];
    CHECK(fabs(ref - naive) <= 1e-12 * naive);
}

/* ---- across ISAs and through the public kernels ---- */

/* every table's relu/round/bn output on the same data: bitwise equal to the first table's */
static void test_across(void)
{
    static float x[MAXLEN], ref[MAXLEN], out[MAXLEN];
    fill_bits(x, MAXLEN, 0);
    const dt_kern *first = NULL;
    for (int i = 0; i < DT_ISA_COUNT; i++) {
        const dt_kern *k = tabs[i];
        if (!k)
            continue;
        memcpy(out, x, sizeof out);
        k->elem->round_fp16(out, MAXLEN);
        k->elem->bn_affine(out, out, 1, 1, MAXLEN, 0, 0.5f, 1.25f, -3.0f, 0, NULL);
        k->elem->relu_forward(out, out, MAXLEN);
        if (!first) {
            first = k;
            memcpy(ref, out, sizeof ref);
            continue;
        }
        const int ok = same(out, ref, sizeof out);
        CHECK(ok);
        if (!ok)
            fprintf(stderr, "  ^ %s differs from %s\n", k->name, first->name);
    }
}

/* dt_kern_select decides what the public kernels run: each table's result through them */
static void test_public(void)
{
    static float x[MAXLEN], out[MAXLEN], ref[MAXLEN];
    fill(x, MAXLEN, 1);
    for (int i = 0; i < DT_ISA_COUNT; i++) {
        if (!tabs[i])
            continue;
        CHECK(dt_kern_select((dt_isa)i) == 0);
        CHECK(dt_kern_get() == tabs[i]);
        dt_relu_forward(out, x, MAXLEN);
        tabs[i]->elem->relu_forward(ref, x, MAXLEN);
        CHECK(same(out, ref, sizeof out));
        memcpy(out, x, sizeof out);
        dt_round_bf16(out, MAXLEN);
        for (int j = 0; j < MAXLEN; j++)
            ref[j] = dt_round_bf16_1(x[j]);
        CHECK(same(out, ref, sizeof out));
    }
    /* every ISA parses and names itself; auto is the best */
    for (int i = 0; i < DT_ISA_COUNT; i++) {
        dt_isa p;
        CHECK(dt_isa_parse(dt_isa_name((dt_isa)i), &p, NULL) == 0 && p == (dt_isa)i);
    }
    dt_isa best;
    int is_auto = 0;
    CHECK(dt_isa_parse("auto", &best, &is_auto) == 0 && is_auto && best == dt_isa_best());
    CHECK(dt_isa_parse("avx3", &best, NULL) != 0);
}

int main(void)
{
    for (int i = 0; i < DT_ISA_COUNT; i++) {
        tabs[i] = dt_kern_table((dt_isa)i);
        if (!tabs[i]) {
            printf("skipped %s: this CPU (or build) cannot run it\n", dt_isa_name((dt_isa)i));
            continue;
        }
        const dt_kern *k = tabs[i];
        CHECK(k->isa == (dt_isa)i && k->elem && k->optim);
        if (!k->elem || !k->optim)
            continue;
        printf("testing %s (%d lanes)\n", k->name, k->lanes);
        test_norm_u8(k);
        test_sumsq(k);
        for (int l = 0; l < NLENS; l++) {
            test_elementwise(k, lens[l]);
            test_rounding(k, lens[l]);
            test_optim_kernels(k, lens[l]);
            if (lens[l] > 0) {
                test_gap(k, (int)lens[l]);
                test_bn(k, (int)lens[l]);
                test_bn_relu(k, (int)lens[l]);
                test_rounded_reads(k, (int)lens[l]);
                test_copy_reads(k, (int)lens[l]);
                test_lane_entries(k, (int)lens[l]);
                test_bn_add(k, (int)lens[l]);
            }
        }
    }
#if defined(__x86_64__)
    /* the 16-lane lowering runs wherever AVX2 does */
    CHECK(tabs[DT_ISA_AVX2W16] || !tabs[DT_ISA_AVX2]);
#endif
    if (tabs[DT_ISA_AVX2W16] && tabs[DT_ISA_AVX512])
        printf("avx2w16 vs avx512: compared bitwise (both run here)\n");
    test_across();
    test_public();
    return check_finish("test_kern_elem");
}
