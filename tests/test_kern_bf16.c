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
#include "kernels/isa.h"
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

int main(void)
{
    test_dot();
    test_pack();
    return check_finish("test_kern_bf16");
}
