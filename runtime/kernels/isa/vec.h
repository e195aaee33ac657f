/*
 * vec.h - the vector type of the per-ISA kernel families (the files of runtime/kernels/isa/, issue 12).
 *
 * Each file of runtime/kernels/isa/ is compiled once per instruction set by the Makefile, with
 * DT_W (float lanes) and DT_KSUF (the ISA's suffix, e.g. _avx512) defined on the command line:
 *
 *   ISA          flags                                   DT_W   vf is
 *   generic      (the baseline: SSE2 on x86-64, NEON)    4      4 floats (no FMA: mul, add)
 *   avx2         -mavx2 -mfma -mf16c                     8      __m256
 *   avx2w16      -mavx2 -mfma -mf16c                     16     16 floats, lowered to 2 x __m256
 *   avx512       + -mavx512f/bw/vl/dq                    16     __m512
 *   avx512bf16   + -mavx512bf16 (bf16_*.c files only)    16     __m512, DT_BF16_NATIVE = 1
 *
 * A kernel is written once over vf (GCC/Clang vector extensions: +, -, *, comparisons and
 * subscripts work lane-wise on any width) and the helpers below; DT_KFN(name) gives its
 * ISA-suffixed symbol (name_avx2, ...), which runtime/kernels/isa.c puts in that ISA's table.
 *
 * Rounding: vf_fma is ONE rounding (a fused multiply-add) on every ISA but generic, which has no
 * FMA instruction and computes a * b + c with two roundings. Plain vector expressions never
 * contract (-std=c11 implies -ffp-contract=off), so the order written is the order computed, and
 * the avx2w16 and avx512 instantiations of a kernel are bitwise equal (same lanes, same order);
 * a kernel whose per-lane order does not depend on W is bitwise equal on avx2 too.
 */
#ifndef DT_KERNELS_ISA_VEC_H
#define DT_KERNELS_ISA_VEC_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifndef DT_W
#error                                                                                             \
    "the files of runtime/kernels/isa/ are compiled by the Makefile's per-ISA rule (DT_W, DT_KSUF)"
#endif

#define DT_KCAT_(a, b) a##b
#define DT_KCAT(a, b) DT_KCAT_(a, b)
#define DT_KFN(name) DT_KCAT(name, DT_KSUF)

#ifndef DT_BF16_NATIVE
#define DT_BF16_NATIVE 0
#endif

#if defined(__x86_64__) && (DT_W == 8 || DT_W == 16)
#include <immintrin.h>
#endif

#define DT_KINL static inline __attribute__((always_inline))

typedef float vf __attribute__((vector_size(DT_W * sizeof(float))));
/* the same with 4-byte alignment: unaligned loads and stores through memcpy */
typedef int32_t vi __attribute__((vector_size(DT_W * sizeof(int32_t))));
typedef uint32_t vu __attribute__((vector_size(DT_W * sizeof(uint32_t))));

/* vf at 4-byte alignment, allowed to alias floats: unaligned loads and stores in the float domain
 * (through memcpy GCC emits integer-domain moves, vmovdqu, whose results feed FMAs a cycle late
 * on some cores) */
typedef float vf_u __attribute__((vector_size(DT_W * sizeof(float)), aligned(4), may_alias));

/* 4 doubles: the fixed-order double sums (BatchNorm's, the gradient norm's) keep their lanes in
 * one of these on every ISA, so each step is one vector operation and the same bits everywhere.
 * ld4d: 4 floats from p (unaligned) widened; vd4_fold: (l0 + l1) + (l2 + l3). Macros: a 32-byte
 * vector passed or returned by value changes the ABI without AVX (-Wpsabi). */
typedef double vd4 __attribute__((vector_size(4 * sizeof(double))));
typedef float vf4u __attribute__((vector_size(4 * sizeof(float)), aligned(4), may_alias));
#if defined(__x86_64__) && (DT_W == 8 || DT_W == 16)
/* one vcvtps2pd from memory: GCC 12 lowers the generic conversion below to two 128-bit halves,
 * a 64-bit load and an insert (the gradient norm's sum ran at 2.4 floats a cycle on the Zen 5) */
#define ld4d(p) ((vd4)_mm256_cvtps_pd(_mm_loadu_ps(p)))
#else
#define ld4d(p) __builtin_convertvector(*(const vf4u *)(p), vd4)
#endif
#define vd4_fold(a) (((a)[0] + (a)[1]) + ((a)[2] + (a)[3]))

DT_KINL vf vf_load(const float *p) { return *(const vf_u *)p; }
DT_KINL void vf_store(float *p, vf v) { *(vf_u *)p = v; }
/* every lane x (bitwise: -0.0 stays -0.0; the form each width compiles to one broadcast) */
DT_KINL vf vf_set1(float x)
{
#if DT_W == 4
    return (vf){x, x, x, x};
#elif DT_W == 8
    return (vf){x, x, x, x, x, x, x, x};
#elif DT_W == 16 && defined(__AVX512F__)
    return (vf){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x};
#else /* 16 lanes in two halves: a loop, as an initializer is built in memory */
    vf v = {0};
    for (int i = 0; i < DT_W; i++)
        v[i] = x;
    return v;
#endif
}
/* float bits u rounded to bf16 (nearest even on the upper 16 bits; a carry into the exponent is
 * right, up to infinity), a NaN kept: dt_round_bf16's bits. The NaN mask is all ones where |x|'s
 * bits exceed infinity's, from the sign bit of their difference (both below 2^31), shifted down
 * and negated: shifts, not a compare, so that 16 lanes on AVX2 stay two ymm halves. */
DT_KINL vu vu_round_bf16(vu u)
{
    const vu r = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    const vu nan = 0u - ((0x7f800000u - (u & 0x7fffffffu)) >> 31);
    return (nan & u) | (~nan & r);
}

/* DT_W bf16 values from p (unaligned) widened to float, exactly (their bits the upper halves):
 * what act_load writes (isa/bf16_gemm.c), without the float copy in memory. x86 widens with
 * vpmovzxwd and shifts. */
typedef uint16_t vh_u __attribute__((vector_size(DT_W * sizeof(uint16_t)), aligned(2), may_alias));
DT_KINL vf vf_load_h(const uint16_t *p)
{
    return (vf)(__builtin_convertvector(*(const vh_u *)p, vu) << 16);
}
/* one bf16 value widened, as vf_load_h */
DT_KINL float f_of_h(uint16_t h)
{
    const uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

DT_KINL vf vf_zero(void) { return (vf){0}; }
/* Lane-wise comparisons as masks (all ones where true, 0 elsewhere). Plain `a > b` on 16 lanes
 * without AVX-512 is scalarized by GCC (no 16-lane mask type): there each half compares in one
 * ymm instruction. vf_gt is ordered (a NaN gives false), as the scalar `a > b`. */
DT_KINL vi vf_gt(vf a, vf b)
{
#if DT_W == 16 && defined(__AVX__) && !defined(__AVX512F__)
    union {
        vf v;
        __m256 h[2];
    } x = {a}, y = {b};
    union {
        __m256 h[2];
        vi v;
    } r = {{_mm256_cmp_ps(x.h[0], y.h[0], _CMP_GT_OQ), _mm256_cmp_ps(x.h[1], y.h[1], _CMP_GT_OQ)}};
    return r.v;
#else
    return a > b;
#endif
}
/* lane-wise a > b ? a : b (a NaN in a gives b, as the scalar expression) */
DT_KINL vf vf_max(vf a, vf b)
{
    const vi m = vf_gt(a, b);
    return (vf)((m & (vi)a) | (~m & (vi)b));
}

/* DT_W bytes from p (unaligned), each as a float (exact: 0..255). GCC 12 compiles
 * __builtin_convertvector of a byte vector to one scalar conversion per byte (the data gather's
 * norm_u8 spent 45 % of its time there): x86 widens with vpmovzxbd, then vcvtdq2ps. */
DT_KINL vf vf_load_u8(const uint8_t *p)
{
#if DT_W == 16 && defined(__AVX512F__)
    return (vf)_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p)));
#elif DT_W == 16 && defined(__AVX2__)
    union {
        __m256 h[2];
        vf v;
    } r = {{_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p))),
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + 8))))}};
    return r.v;
#elif DT_W == 8 && defined(__AVX2__)
    return (vf)_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)));
#else
    vf v;
    for (int i = 0; i < DT_W; i++)
        v[i] = (float)p[i];
    return v;
#endif
}

/* a * b + c, one rounding (generic: two) */
DT_KINL vf vf_fma(vf a, vf b, vf c)
{
#if DT_W == 16 && defined(__AVX512F__)
    return (vf)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif DT_W == 16 && defined(__FMA__)
    union {
        vf v;
        __m256 h[2];
    } x = {a}, y = {b}, z = {c}, r;
    r.h[0] = _mm256_fmadd_ps(x.h[0], y.h[0], z.h[0]);
    r.h[1] = _mm256_fmadd_ps(x.h[1], y.h[1], z.h[1]);
    return r.v;
#elif DT_W == 8 && defined(__FMA__)
    return (vf)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
    return a * b + c;
#endif
}

/* the horizontal sum of v's lanes in index order (0 + 1 + 2 + ...), in double */
DT_KINL double vf_hsum_d(vf v)
{
    double s = 0.0;
    for (int l = 0; l < DT_W; l++)
        s += (double)v[l];
    return s;
}

#endif
