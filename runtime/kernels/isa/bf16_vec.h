/*
 * bf16_vec.h - bf16 pairs over DT_W lanes and the vdpbf16ps dot product, native or emulated
 * bit for bit (issue 12: bf16 training gives the same bits on every machine).
 *
 * Included by the files runtime/kernels/isa/bf16_*.c (compiled per ISA, see vec.h; avx512bf16
 * defines DT_BF16_NATIVE = 1). A vbf lane holds two bfloat16 values: element 2i in its low 16
 * bits, element 2i + 1 in its high 16 bits, the layout of __m512bh.
 *
 * vbf_dot(acc, a, b) is VDPBF16PS (Intel SDM vol. 2, "VDPBF16PS"), per lane:
 *     acc = fma(a.hi, b.hi, acc);  acc = fma(a.lo, b.lo, acc)
 * the odd element's product first, each step ONE rounding to nearest even (MXCSR neither read
 * nor written), its inputs with denormals as signed zeros (DAZ: the bf16 inputs and acc), its
 * result flushed to a signed zero when tiny (FTZ). Measured on an AMD EPYC (Zen 5) against the
 * instruction, and what the emulation below does:
 *   - tininess is decided AFTER rounding with an unbounded exponent (x86's rule): an exact
 *     result in [2^-126 (1 - 2^-25), 2^-126) rounds up to 2^-126 and is kept, one below is
 *     flushed (a plain "|fma(...)| < FLT_MIN" test gets that window wrong);
 *   - a NaN result carries the first NaN input in the order a.lo, b.lo, a.hi, b.hi, acc (the
 *     second step's multiplicands before its accumulator), quieted (bit 22 set); an invalid
 *     operation (inf * 0, inf - inf) without NaN inputs gives 0xffc00000.
 * vbf_pack(even, odd) is VCVTNE2PS2BF16 followed by an interleave: round to nearest even on the
 * upper 16 bits, denormals to signed zero, NaN truncated with its quiet bit set (bit 6 of the bf16).
 * Scalar references of both (kernels/bf16.h: dt_bf16_dot_1, dt_bf16_round) are the tests'
 * second opinion; tests/test_kern_bf16.c compares all three with the instruction.
 *
 * Interface: vbf_load / vbf_store / vbf_set1 (broadcast one pair), vbf_even / vbf_odd (a lane's
 * elements as fp32), vbf_dot, vbf_dot_nd (operands known to hold no bf16 denormal, e.g. packed
 * by vbf_pack: the emulation skips DAZ), vbf_pack (two vectors of even and odd elements),
 * vbf_pack_seq (2W consecutive floats of a row into W pairs), vi_any (a mask has a set lane).
 * The emulation uses the CPU's fp32 FMA under the default MXCSR (round to nearest, no FTZ/DAZ).
 */
#ifndef DT_KERNELS_ISA_BF16_VEC_H
#define DT_KERNELS_ISA_BF16_VEC_H

#include <math.h>

#include "vec.h"

#if DT_BF16_NATIVE && !(DT_W == 16 && defined(__AVX512BF16__))
#error "DT_BF16_NATIVE needs the 16-lane build with -mavx512bf16"
#endif

/* DT_W lanes of bf16 pairs (element 2i low, 2i + 1 high) */
typedef uint32_t vbf __attribute__((vector_size(DT_W * sizeof(uint32_t))));

DT_KINL vbf vbf_load(const uint32_t *p)
{
    vbf v;
    memcpy(&v, p, sizeof v);
    return v;
}
DT_KINL void vbf_store(uint32_t *p, vbf v) { memcpy(p, &v, sizeof v); }
/* every lane the pair p */
DT_KINL vbf vbf_set1(uint32_t p) { return (vbf){0} + p; }

/* lane-wise m ? a : b for a mask m of all-ones / all-zeros lanes (C has no vector ?:) */
DT_KINL vu vu_sel(vi m, vu a, vu b) { return ((vu)m & a) | (~(vu)m & b); }

/* the bf16 elements as fp32: even (low) and odd (high) elements of each lane */
DT_KINL vf vbf_even(vbf v) { return (vf)(v << 16); }
DT_KINL vf vbf_odd(vbf v) { return (vf)(v & 0xffff0000u); }

/* ---- the emulation (every ISA; the native build uses it only in tests' eyes) ---- */

/* a * b + c with one rounding on every ISA (generic: the C library's fmaf per lane) */
DT_KINL vf bf16_fma1(vf a, vf b, vf c)
{
#if defined(__FMA__) || defined(__AVX512F__)
    return vf_fma(a, b, c);
#else
    vf r = vf_zero();
    for (int l = 0; l < DT_W; l++)
        r[l] = fmaf(a[l], b[l], c[l]);
    return r;
#endif
}

/* denormals (and zeros) to signed zero */
DT_KINL vf bf16_daz(vf x)
{
    const vu u = (vu)x;
    const vi den = (vi)((u & 0x7f800000u) == 0);
    return (vf)vu_sel(den, u & 0x80000000u, u);
}

DT_KINL vi bf16_isnan(vf x) { return (vi)(((vu)x & 0x7fffffffu) > 0x7f800000u); }

/* 1 when any lane of the mask m is set */
DT_KINL int vi_any(vi m)
{
#if DT_W == 16 && defined(__AVX512F__)
    return _mm512_test_epi32_mask((__m512i)m, (__m512i)m) != 0;
#elif DT_W == 16 && defined(__AVX2__)
    union {
        vi v;
        __m256i h[2];
    } x = {m};
    const __m256i o = _mm256_or_si256(x.h[0], x.h[1]);
    return !_mm256_testz_si256(o, o);
#elif DT_W == 8 && defined(__AVX2__)
    return !_mm256_testz_si256((__m256i)m, (__m256i)m);
#else
    int32_t any = 0;
    for (int l = 0; l < DT_W; l++)
        any |= m[l];
    return any != 0;
#endif
}

/* One step of vdpbf16ps: fma(a, b, c) rounded to nearest even, flushed to a signed zero when
 * tiny after rounding with an unbounded exponent (a, b, c: no denormals). Only a result of at
 * most 2^-126 can be tiny (it is then known); those lanes need the unbounded rounding: a tiny
 * result needs small terms (|a b| and |c| below 2^-123; a, b >= 2^-126), so scaling a and c by
 * 2^24 is exact there, and the scaled fma rounds as an unbounded exponent would. */
DT_KINL vf bf16_step(vf a, vf b, vf c)
{
    const vf r = bf16_fma1(a, b, c);
    const vu ar = (vu)r & 0x7fffffffu;
    const vi small = (vi)(ar - 1u < 0x00800000u); /* 0 < |r| <= 2^-126 (zeros stay) */
    if (__builtin_expect(!vi_any(small), 1))
        return r;
    const vf r2 = bf16_fma1(a * 0x1p24f, b, c * 0x1p24f);
    const vi tiny = small & (vi)(((vu)r2 & 0x7fffffffu) < 0x0c800000u); /* 2^-102 */
    return (vf)vu_sel(tiny, (vu)r & 0x80000000u, (vu)r);
}

/* v's bf16 denormals (both halves) as signed zeros */
DT_KINL vbf bf16_daz_pairs(vbf v)
{
    const vu lo = (vu)((v & 0x7f80u) == 0) & 0x7fffu;
    const vu hi = (vu)((v & 0x7f800000u) == 0) & 0x7fff0000u;
    return v & ~(lo | hi);
}

/* vbf_dot's emulation; a and b hold no bf16 denormals */
DT_KINL vf vbf_dot_emu_nd(vf acc, vbf a, vbf b)
{
    const vf a1 = vbf_odd(a), b1 = vbf_odd(b), a0 = vbf_even(a), b0 = vbf_even(b);
    const vf r = bf16_step(a0, b0, bf16_step(a1, b1, bf16_daz(acc)));
    const vi nan = bf16_isnan(r);
    if (__builtin_expect(!vi_any(nan), 1))
        return r;
    /* the first NaN input in the instruction's order, quieted; else the default NaN */
    vu q = (vu){0} + 0xffc00000u;
    q = vu_sel(bf16_isnan(acc), (vu)acc, q);
    q = vu_sel(bf16_isnan(b1), (vu)b1, q);
    q = vu_sel(bf16_isnan(a1), (vu)a1, q);
    q = vu_sel(bf16_isnan(b0), (vu)b0, q);
    q = vu_sel(bf16_isnan(a0), (vu)a0, q);
    return (vf)vu_sel(nan, q | 0x00400000u, (vu)r);
}

DT_KINL vf vbf_dot_emu(vf acc, vbf a, vbf b)
{
    return vbf_dot_emu_nd(acc, bf16_daz_pairs(a), bf16_daz_pairs(b));
}

/* fp32 -> bf16 bits (in the low 16 bits of each lane), VCVTNEPS2BF16's rounding */
DT_KINL vu vbf_round_emu(vf x)
{
    const vu u = (vu)x;
    const vu rne = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16; /* a carry into inf is right */
    vu r = vu_sel(bf16_isnan(x), (u >> 16) | 0x0040u, rne);
    return vu_sel((vi)((u & 0x7f800000u) == 0), (u >> 16) & 0x8000u, r);
}

DT_KINL vbf vbf_pack_emu(vf even, vf odd)
{
    return (vbf)(vbf_round_emu(even) | (vbf_round_emu(odd) << 16));
}

/* ---- the interface: native where the instruction exists, else the emulation ---- */

/* per lane: acc + a.hi * b.hi + a.lo * b.lo, exactly as VDPBF16PS computes it */
DT_KINL vf vbf_dot(vf acc, vbf a, vbf b)
{
#if DT_BF16_NATIVE
    return (vf)_mm512_dpbf16_ps((__m512)acc, (__m512bh)a, (__m512bh)b);
#else
    return vbf_dot_emu(acc, a, b);
#endif
}

/* vbf_dot for a and b without bf16 denormals (vbf_pack's and vbf_pack_seq's results never hold
 * one: a denormal fp32 packs to zero, a normal one to a normal bf16): the emulation skips DAZ */
DT_KINL vf vbf_dot_nd(vf acc, vbf a, vbf b)
{
#if DT_BF16_NATIVE
    return (vf)_mm512_dpbf16_ps((__m512)acc, (__m512bh)a, (__m512bh)b);
#else
    return vbf_dot_emu_nd(acc, a, b);
#endif
}

/* lane i = (bf16(even[i]), bf16(odd[i])), VCVTNE2PS2BF16's rounding */
DT_KINL vbf vbf_pack(vf even, vf odd)
{
#if DT_BF16_NATIVE
    /* cvtne2ps puts its second operand's 16 words first: (even 0..15, odd 0..15); interleave */
    const __m512i c = (__m512i)_mm512_cvtne2ps_pbh((__m512)odd, (__m512)even);
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24,
                                         8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return (vbf)_mm512_permutexvar_epi16(idx, c);
#else
    return vbf_pack_emu(even, odd);
#endif
}

/* lane i = (bf16(x[2i]), bf16(x[2i + 1])) of the 2W consecutive floats x = (lo, hi): the pairs of
 * a row whose k is contiguous (VCVTNE2PS2BF16's rounding) */
DT_KINL vbf vbf_pack_seq(vf lo, vf hi)
{
#if DT_BF16_NATIVE
    return (vbf)_mm512_cvtne2ps_pbh((__m512)hi, (__m512)lo);
#else
    const vu rl = vbf_round_emu(lo), rh = vbf_round_emu(hi);
    vbf v = {0};
    for (int l = 0; l < DT_W / 2; l++) {
        v[l] = rl[2 * l] | rl[2 * l + 1] << 16;
        v[l + DT_W / 2] = rh[2 * l] | rh[2 * l + 1] << 16;
    }
    return v;
#endif
}

#endif
