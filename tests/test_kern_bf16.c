/*
 * test_kern_bf16.c - the bf16 family (kernels/bf16.h, isa/bf16_vec.h, isa/bf16_gemm.c).
 *
 * 1. VDPBF16PS: every ISA's vbf_dot (emulated on generic, avx2, avx2w16, avx512; native on
 *    avx512bf16) against the scalar reference dt_bf16_dot_1, bitwise over every lane, on random
 *    values and specials (denormal inputs and results, +-0, +-inf, NaN payloads, sums that round
 *    to ties, results next to the tininess threshold, large exponent differences, cancellation);
 *    where the CPU has the instruction, the reference and the emulations are checked against it.
 * 2. VCVTNE2PS2BF16: vbf_pack against dt_bf16_round, bitwise; dt_bf16_round against lowp.c's
 *    dt_round_bf16_1 (torch's tensor.bfloat16()) on normal values; where they differ is counted.
 * 2b. The activation store (act_store / act_load, net_act.h): rounding in place bitwise as
 *    dt_round_bf16_1, the bf16 copy and its exact widening, on every ISA, with tails.
 * 3. The bf16 GEMM: against a double product of the bf16-rounded operands (all transpositions,
 *    bias, accum, the built-in models' linear shapes, odd K/M/N, strides), and every ISA against
 *    the first one bitwise (the result does not depend on the ISA).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"
#include "kernels/bf16.h"
#include "kernels/gemm.h"
#include "kernels/isa.h"
#include "kernels/tpool.h"
#include "lowp.h"

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (uint32_t)(rs >> 16);
}
static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static float ffrom(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* a bf16 value: a special, any bits, or a moderate exponent (where sums round) */
static uint16_t rnd_bf16(void)
{
    static const uint16_t sp[] = {0x0000, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0xffc1, 0x7f81,
                                  0x0001, 0x807f, 0x0080, 0x8080, 0x3f80, 0xbf80, 0x7f7f,
                                  0xff7f, 0x0040, 0x1f80, 0x2000, 0x5f80, 0x3380};
    const uint32_t r = rnd();
    if (r % 4 == 0)
        return sp[(r >> 8) % (sizeof sp / sizeof sp[0])];
    if (r % 4 == 1)
        return (uint16_t)rnd();
    const uint32_t e = 107 + rnd() % 40;
    return (uint16_t)((rnd() & 0x8000u) | e << 7 | (rnd() & 0x7fu));
}

static float rnd_acc(void)
{
    static const uint32_t sp[] = {0,           0x80000000u, 0x00000001u, 0x807fffffu, 0x00800000u,
                                  0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7fa00001u, 0xffc12345u};
    const uint32_t r = rnd();
    if (r % 5 == 0)
        return ffrom(sp[(r >> 8) % (sizeof sp / sizeof sp[0])]);
    if (r % 5 == 1)
        return ffrom(rnd() ^ rnd() << 16);
    return ffrom((rnd() & 0x80000000u) | (107 + rnd() % 40) << 23 | (rnd() & 0x7fffffu));
}

/* one lane of operands: random, or built to hit a case */
static void rnd_lane(float *acc, uint32_t *a, uint32_t *b)
{
    *acc = rnd_acc();
    *a = rnd_bf16() | (uint32_t)rnd_bf16() << 16;
    *b = rnd_bf16() | (uint32_t)rnd_bf16() << 16;
    switch (rnd() % 8) {
    case 0: /* cancellation: acc = -(odd product) */
        *acc = -(dt_bf16_float((uint16_t)(*a >> 16)) * dt_bf16_float((uint16_t)(*b >> 16)));
        break;
    case 1: /* results near the tininess threshold 2^-126 */
        *a = (0x0100u | (rnd() & 0x807fu)) | (0x0100u | (rnd() & 0x807fu)) << 16;
        *b = (0x3e00u | (rnd() & 0x807fu)) | (0x3e00u | (rnd() & 0x807fu)) << 16;
        *acc = ffrom((rnd() & 0x80000000u) | (1 + rnd() % 3) << 23 | (rnd() & 0x7fffffu));
        break;
    case 2: { /* acc = 2^-126, odd product -2^-126 2^-k: exact results just under the threshold */
        const uint32_t k = 20 + rnd() % 11;
        *acc = ffrom(0x00800000u | (rnd() % 2));
        *a = (127 - k) << 23 | (rnd() & 0x7fu) << 16;
        *b = 0x80800000u;
        break;
    }
    case 3: /* ties: 1 + 2^-24 (r + 1) */
        *acc = ffrom(0x3f800000u | (rnd() & 3u));
        *a = 0x39800000u | (rnd() & 0xffffu);
        *b = 0x39800000u | (rnd() & 0x1u) << 16;
        break;
    default: break;
    }
}

static const char *isa_name(dt_isa i) { return dt_isa_name(i); }

enum { NL = 4096 };

/* every ISA's dot against the reference (and the instruction, where the CPU has it) */
static void test_dot(void)
{
    static float acc[NL], ref[NL], out[NL];
    static uint32_t a[NL], b[NL];
    long bad[DT_ISA_COUNT] = {0};
    for (int it = 0; it < 200; it++) {
        for (int i = 0; i < NL; i++) {
            rnd_lane(&acc[i], &a[i], &b[i]);
            ref[i] = dt_bf16_dot_1(acc[i], a[i], b[i]);
        }
        for (int isa = 0; isa < DT_ISA_COUNT; isa++) {
            const dt_kern *k = dt_kern_table((dt_isa)isa);
            if (!k)
                continue;
            memcpy(out, acc, sizeof out);
            k->bf16->dot(out, a, b, NL);
            for (int i = 0; i < NL; i++)
                if (fbits(out[i]) != fbits(ref[i]) && bad[isa]++ < 3)
                    fprintf(stderr, "  %s: dot(%08x, %08x, %08x) = %08x, reference %08x\n",
                            isa_name((dt_isa)isa), fbits(acc[i]), a[i], b[i], fbits(out[i]),
                            fbits(ref[i]));
        }
    }
    for (int isa = 0; isa < DT_ISA_COUNT; isa++) {
        if (!dt_kern_table((dt_isa)isa)) {
            printf("test_kern_bf16: %s: this CPU cannot run it, skipped%s\n", isa_name((dt_isa)isa),
                   isa == DT_ISA_AVX512BF16 ? " (the emulation is checked against the scalar "
                                              "reference only, not against vdpbf16ps)"
                                            : "");
            continue;
        }
        CHECK(bad[isa] == 0);
        printf("test_kern_bf16: %s dot: %ld of %d lanes differ from the reference%s\n",
               isa_name((dt_isa)isa), bad[isa], 200 * NL,
               isa == DT_ISA_AVX512BF16 ? " (native vdpbf16ps)" : " (emulated)");
    }
}

/* every ISA's pack against dt_bf16_round; dt_bf16_round against torch's rounding */
static void test_pack(void)
{
    static float ev[NL], od[NL];
    static uint32_t out[NL];
    long bad[DT_ISA_COUNT] = {0}, torch_normal = 0, torch_den = 0, torch_nan = 0, normals = 0;
    long denormal_out = 0;
    for (int it = 0; it < 100; it++) {
        for (int i = 0; i < NL; i++) {
            ev[i] = it % 2 ? rnd_acc() : ffrom(rnd() ^ rnd() << 16);
            od[i] = rnd_acc();
            if (i % 7 == 0) /* a tie: the low half exactly 0x8000 */
                ev[i] = ffrom((fbits(ev[i]) & 0xffff0000u) | 0x8000u);
        }
        for (int isa = 0; isa < DT_ISA_COUNT; isa++) {
            const dt_kern *k = dt_kern_table((dt_isa)isa);
            if (!k)
                continue;
            k->bf16->pack(out, ev, od, NL);
            for (int i = 0; i < NL; i++) {
                /* never a bf16 denormal (what vbf_dot_nd, the GEMM's dot, relies on) */
                for (int h = 0; h < 32; h += 16)
                    denormal_out += (out[i] >> h & 0x7f80u) == 0 && (out[i] >> h & 0x7fu) != 0;
                const uint32_t want = dt_bf16_round(ev[i]) | (uint32_t)dt_bf16_round(od[i]) << 16;
                if (out[i] != want && bad[isa]++ < 3)
                    fprintf(stderr, "  %s: pack(%08x, %08x) = %08x, reference %08x\n",
                            isa_name((dt_isa)isa), fbits(ev[i]), fbits(od[i]), out[i], want);
            }
        }
        for (int i = 0; i < NL; i++) {
            const float t = dt_round_bf16_1(ev[i]);
            const uint16_t h = dt_bf16_round(ev[i]);
            if (isnan(ev[i]))
                torch_nan += fbits(t) >> 16 != h;
            else if (fpclassify(ev[i]) == FP_SUBNORMAL)
                torch_den += fbits(t) >> 16 != h;
            else {
                normals++;
                torch_normal += fbits(t) != (uint32_t)h << 16;
            }
        }
    }
    for (int isa = 0; isa < DT_ISA_COUNT; isa++)
        if (dt_kern_table((dt_isa)isa))
            CHECK(bad[isa] == 0);
    CHECK(torch_normal == 0);
    CHECK(denormal_out == 0);
    printf("test_kern_bf16: dt_bf16_round vs torch's bfloat16(): %ld of %ld normal values differ; "
           "%ld denormals and %ld NaNs differ (flushed to zero / payload kept, by design)\n",
           torch_normal, normals, torch_den, torch_nan);
    /* the documented cases */
    CHECK(dt_bf16_round(ffrom(0x3f808000u)) == 0x3f80); /* tie to even, down */
    CHECK(dt_bf16_round(ffrom(0x3f818000u)) == 0x3f82); /* tie to even, up */
    CHECK(dt_bf16_round(ffrom(0x7f7fffffu)) == 0x7f80); /* to inf */
    CHECK(dt_bf16_round(ffrom(0x807fffffu)) == 0x8000); /* denormal to signed zero */
    CHECK(dt_bf16_round(ffrom(0xff812345u)) == 0xffc1); /* NaN: truncated, quieted */
}

/* act_store / act_load (bf16 activation storage): every ISA rounds in place bitwise as
 * dt_round_bf16_1 (torch's bfloat16(): denormals kept, NaN unchanged), stores the upper half (a
 * NaN as a NaN of the same sign), and loads back the rounded value exactly; act_pack of the
 * rounded values stores the same halves and leaves them alone; lengths with tails */
static void test_act(void)
{
    enum { NA = 1000 + 13 };
    static const uint32_t sp[] = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u,
                                  0x7f800001u, 0xff800001u, 0x7fc00000u, 0x7f812345u,
                                  0x00000001u, 0x807fffffu, 0x3f808000u, 0x3f818000u,
                                  0x7f7fffffu, 0x7f7f8000u, 0x00008000u, 0x3f80ffffu};
    static float x[NA], x0[NA], back[NA], xr[NA];
    static uint16_t h[NA], hp[NA];
    long bad[DT_ISA_COUNT] = {0};
    for (int it = 0; it < 20; it++) {
        for (int i = 0; i < NA; i++) {
            const uint32_t r = rnd();
            x0[i] = r % 5 == 0 ? ffrom(sp[(r >> 8) % (sizeof sp / sizeof sp[0])])
                               : ffrom(rnd() ^ rnd() << 16);
        }
        for (int isa = 0; isa < DT_ISA_COUNT; isa++) {
            const dt_kern *k = dt_kern_table((dt_isa)isa);
            if (!k)
                continue;
            const int n = NA - it; /* tails of every length */
            memcpy(x, x0, sizeof x);
            k->bf16->act_store(x, h, (size_t)n);
            k->bf16->act_load(back, h, (size_t)n);
            memcpy(xr, x, sizeof xr);
            k->bf16->act_pack(xr, hp, (size_t)n);
            if ((memcmp(hp, h, (size_t)n * sizeof *h) != 0 || memcmp(xr, x, sizeof x) != 0) &&
                bad[isa]++ < 3)
                fprintf(stderr, "  %s: act_pack differs from act_store (n = %d)\n",
                        isa_name((dt_isa)isa), n);
            for (int i = 0; i < n; i++) {
                const float want = dt_round_bf16_1(x0[i]);
                int ok = fbits(x[i]) == fbits(want);
                if (isnan(want))
                    ok &= isnan(back[i]) && (fbits(back[i]) >> 31) == (fbits(want) >> 31);
                else
                    ok &= h[i] == fbits(want) >> 16 && fbits(back[i]) == fbits(want);
                if (!ok && bad[isa]++ < 3)
                    fprintf(stderr, "  %s: act_store(%08x) = %08x / %04x, back %08x; want %08x\n",
                            isa_name((dt_isa)isa), fbits(x0[i]), fbits(x[i]), h[i], fbits(back[i]),
                            fbits(want));
            }
        }
    }
    for (int isa = 0; isa < DT_ISA_COUNT; isa++)
        if (dt_kern_table((dt_isa)isa))
            CHECK(bad[isa] == 0);
}

typedef void (*gemm_fn)(int, int, int, int, int, const float *, int, const float *, int,
                        const float *, int, float *, int);

static float rnd_unit(void) { return (float)((double)rnd() / 4294967296.0 * 2.0 - 1.0); }

/* the bf16 value of x (as the GEMM rounds it while packing) */
static double bf(float x) { return dt_bf16_float(dt_bf16_round(x)); }

/* gemm_case's product split into panels of C over 2 and 3 pool threads (dt_gemm_kern: products of
 * 2^18 multiply-adds and more): the bits of 1 thread (first), on the widest ISA. C: scratch. */
static int gemm_threads(int ta, int tb, int M, int N, int K, int min_isa, int max_isa,
                        const float *A, int lda, const float *B, int ldb, const float *bias,
                        int accum, const float *C0, float *C, const float *first, int ldc)
{
    const dt_kern *wide = NULL;
    int ok = 1;
    for (int isa = min_isa; isa <= max_isa; isa++)
        wide = dt_kern_table((dt_isa)isa) ? dt_kern_table((dt_isa)isa) : wide;
    for (int T = 2; T <= 3 && wide && (long)M * N * K >= 1L << 18; T++) {
        dt_tpool_init(T);
        memcpy(C, C0, (size_t)M * ldc * 4);
        dt_gemm_kern(wide->bf16->gemm, ta, tb, M, N, K, A, lda, B, ldb, bias, accum, C, ldc);
        dt_tpool_init(1);
        int same = 1;
        for (size_t i = 0; i < (size_t)M * ldc; i++)
            same &= fbits(C[i]) == fbits(first[i]);
        CHECK(same);
        if (!same) {
            fprintf(stderr, "  %s ta%d tb%d M%d N%d K%d, %d threads: NOT the bits of 1 thread\n",
                    wide->name, ta, tb, M, N, K, T);
            ok = 0;
        }
    }
    return ok;
}

/* One product on every ISA: against the double product of the bf16-rounded operands, and
 * bitwise against the first ISA's result. Returns 1 when all passed. */
static int gemm_case(int ta, int tb, int M, int N, int K, int pad, int use_bias, int accum,
                     int max_isa)
{
    const int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    const int lda = ac + pad, ldb = bc + pad, ldc = N + pad;
    float *A = dt_xmalloc((size_t)ar * lda, 4), *B = dt_xmalloc((size_t)br * ldb, 4);
    float *C0 = dt_xmalloc((size_t)M * ldc, 4), *C = dt_xmalloc((size_t)M * ldc, 4);
    float *first = dt_xmalloc((size_t)M * ldc, 4), *bias = dt_xmalloc((size_t)N, 4);
    for (size_t i = 0; i < (size_t)ar * lda; i++)
        A[i] = rnd_unit();
    for (size_t i = 0; i < (size_t)br * ldb; i++)
        B[i] = rnd_unit();
    for (size_t i = 0; i < (size_t)M * ldc; i++)
        C0[i] = rnd_unit();
    for (int j = 0; j < N; j++)
        bias[j] = rnd_unit();
    /* float sums of K exact products of O(1) terms, plus the start value */
    const double tol = 1e-6 * (4.0 + 2.0 * sqrt((double)K));
    double worst = 0.0;
    int ok = 1, have_first = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = accum ? (double)C0[(size_t)i * ldc + j] : 0.0;
            if (use_bias)
                s += bias[j];
            for (int k = 0; k < K; k++)
                s += bf(ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
                     bf(tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
            /* the reference kept in first's slot until the first ISA overwrites it */
            C[(size_t)i * ldc + j] = (float)s;
        }
    memcpy(first, C, (size_t)M * ldc * 4);
    float *want = first;
    float *ref = dt_xmalloc((size_t)M * ldc, 4);
    memcpy(ref, want, (size_t)M * ldc * 4);
    /* generic's fmaf is a library call per lane: its bits are checked on the odd shapes and
     * the models' smaller products (the vector ISAs on all) */
    const int min_isa = (double)M * N * K > 8e6 ? DT_ISA_AVX2 : DT_ISA_GENERIC;
    for (int isa = min_isa; isa <= max_isa; isa++) {
        const dt_kern *k = dt_kern_table((dt_isa)isa);
        if (!k)
            continue;
        memcpy(C, C0, (size_t)M * ldc * 4);
        if (!accum)
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++)
                    C[(size_t)i * ldc + j] = NAN;
        dt_gemm_kern(k->bf16->gemm, ta, tb, M, N, K, A, lda, B, ldb, use_bias ? bias : NULL, accum,
                     C, ldc);
        int same = 1, pad_ok = 1;
        for (int i = 0; i < M; i++) {
            for (int j = 0; j < N; j++) {
                const size_t at = (size_t)i * ldc + j;
                const double e = fabs((double)C[at] - ref[at]);
                worst = e > worst || e != e ? e : worst;
                if (have_first)
                    same &= fbits(C[at]) == fbits(first[at]);
            }
            for (int j = N; j < ldc; j++)
                pad_ok &= fbits(C[(size_t)i * ldc + j]) == fbits(C0[(size_t)i * ldc + j]);
        }
        if (!have_first) {
            memcpy(first, C, (size_t)M * ldc * 4);
            have_first = 1;
        }
        CHECK(same);
        CHECK(pad_ok);
        if (!same || !pad_ok || !(worst <= tol)) {
            fprintf(stderr,
                    "  %s ta%d tb%d M%d N%d K%d pad%d bias%d accum%d: max error %.3g (tol %.3g), "
                    "%s the first ISA's bits, C padding %s\n",
                    isa_name((dt_isa)isa), ta, tb, M, N, K, pad, use_bias, accum, worst, tol,
                    same ? "equal to" : "NOT equal to", pad_ok ? "kept" : "overwritten");
            ok = 0;
        }
    }
    ok &= gemm_threads(ta, tb, M, N, K, min_isa, max_isa, A, lda, B, ldb, use_bias ? bias : NULL,
                       accum, C0, C, first, ldc);
    CHECK(worst <= tol);
    free(A), free(B), free(C0), free(C), free(first), free(bias), free(ref);
    return ok && worst <= tol;
}

/* The linear layers hand the GEMM their float32 master weights (DT_PARAM_BF16_PACKED): on every
 * ISA and transposition, the GEMM of raw float32 operands gives the bits of the GEMM of their
 * dt_round_bf16 copies (the copy a rounded-weight pass would make), also for denormals just below
 * 2^-126 that round up to a normal bf16 (the instruction alone would flush them), other
 * denormals, values that round up to infinity, and values halfway between two bf16. The old
 * packing (the instruction's rounding alone) fails this. */
static void test_gemm_unrounded(void)
{
    static const uint32_t special[] = {
        0x007fffffu, 0x807fff80u, 0x007f8000u, 0x007f7fffu, 0x00000001u, 0x80400000u,
        0x7f7fffffu, 0xff7f8000u, 0x3f808000u, 0x3f818000u, 0xbf80ffffu, 0x00800000u,
    };
    const int M = 19, N = 37, K = 45;
    int ok = 1;
    for (int v = 0; v < 4; v++) {
        const int ta = v & 1, tb = v >> 1;
        const size_t na = (size_t)M * K, nb = (size_t)K * N, nc = (size_t)M * N;
        float *A = dt_xmalloc(na, 4), *B = dt_xmalloc(nb, 4), *Ar = dt_xmalloc(na, 4);
        float *Br = dt_xmalloc(nb, 4), *C = dt_xmalloc(nc, 4), *Cr = dt_xmalloc(nc, 4);
        /* op(A)'s rows below M - 1 tiny (the specials and denormals near 2^-126, which B's
         * 2^100 scale lifts into view), its last row of O(1) values and those that round up to
         * infinity (that row's results overflow on their own) */
        for (int r = 0; r < M; r++)
            for (int c = 0; c < K; c++) {
                float x = rnd_unit();
                if (r < M - 1) {
                    const uint32_t u = rnd() % 2 ? special[rnd() % 6] : rnd() % 0x00800000u;
                    memcpy(&x, &u, 4);
                } else if (rnd() % 4 == 0) {
                    const uint32_t u = special[6 + rnd() % 6];
                    memcpy(&x, &u, 4);
                }
                A[ta ? (size_t)c * M + r : (size_t)r * K + c] = x;
            }
        for (size_t i = 0; i < nb; i++)
            B[i] = rnd_unit() * 0x1p100f;
        memcpy(Ar, A, na * 4);
        memcpy(Br, B, nb * 4);
        dt_round_bf16(Ar, na);
        dt_round_bf16(Br, nb);
        for (int isa = 0; isa < DT_ISA_COUNT; isa++) {
            const dt_kern *k = dt_kern_table((dt_isa)isa);
            if (!k)
                continue;
            dt_gemm_kern(k->bf16->gemm, ta, tb, M, N, K, A, ta ? M : K, B, tb ? K : N, NULL, 0, C,
                         N);
            dt_gemm_kern(k->bf16->gemm, ta, tb, M, N, K, Ar, ta ? M : K, Br, tb ? K : N, NULL, 0,
                         Cr, N);
            int same = 1;
            for (size_t i = 0; i < nc; i++)
                same &= fbits(C[i]) == fbits(Cr[i]);
            CHECK(same);
            if (!same) {
                fprintf(stderr, "  %s ta%d tb%d: the GEMM of unrounded operands differs\n",
                        isa_name((dt_isa)isa), ta, tb);
                ok = 0;
            }
        }
        free(A), free(B), free(Ar), free(Br), free(C), free(Cr);
    }
    printf("test_kern_bf16: bf16 gemm of float32 operands = of their bf16 copies: %s\n",
           ok ? "ok" : "FAILED");
}

/* every transposition, bias and accum on odd shapes (tiles, blocks, K odd, strides) */
static void test_gemm_odd(void)
{
    static const int shapes[][3] = {
        {1, 1, 1},      {14, 32, 8},  {13, 31, 7},   {15, 33, 9},  {29, 65, 385},
        {128, 10, 257}, {170, 40, 3}, {5, 1030, 20}, {37, 100, 1}, {200, 70, 800},
    };
    int ok = 1;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int v = 0; v < 16; v++)
            ok &= gemm_case(v & 1, v >> 1 & 1, shapes[s][0], shapes[s][1], shapes[s][2],
                            (int)(s % 3) * 3, v >> 2 & 1, v >> 3 & 1, DT_ISA_COUNT - 1);
    printf("test_kern_bf16: bf16 gemm, odd shapes x 4 transpositions x bias x accum: %s\n",
           ok ? "ok" : "FAILED");
}

/* the three products of each linear layer of the built-in models (IN -> OUT, batch 128) */
static void test_gemm_models(void)
{
    static const int layers[][2] = {{784, 512}, {512, 256}, {256, 10}, {3136, 128}, {128, 10},
                                    {400, 120}, {120, 84},  {84, 10},  {64, 10},    {512, 10}};
    int ok = 1;
    for (size_t l = 0; l < sizeof layers / sizeof layers[0]; l++) {
        const int IN = layers[l][0], OUT = layers[l][1], N = l % 2 ? 128 : 64;
        ok &= gemm_case(0, 1, N, OUT, IN, 0, 1, 0, DT_ISA_COUNT - 1); /* out = inp W^T + b */
        ok &= gemm_case(1, 0, OUT, IN, N, 0, 0, 0, DT_ISA_COUNT - 1); /* dW = dout^T inp */
        ok &= gemm_case(0, 0, N, IN, OUT, 0, 0, (int)l % 2, DT_ISA_COUNT - 1); /* dinp */
    }
    printf("test_kern_bf16: bf16 gemm, the models' linear layers (3 products each): %s\n",
           ok ? "ok" : "FAILED");
}

int main(void)
{
    test_dot();
    test_pack();
    test_act();
    test_gemm_odd();
    test_gemm_unrounded();
    test_gemm_models();
    return check_finish("test_kern_bf16");
}
