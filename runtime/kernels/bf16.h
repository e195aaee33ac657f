/*
 * bf16.h - the bf16 kernel family (issue 12): bf16 rounding, the vdpbf16ps dot product and the
 * bf16 GEMM of the linear layers, one table per ISA (isa.h's .bf16, from isa/bf16_gemm.c).
 *
 * bf16 arithmetic is VDPBF16PS's, native on AVX512_BF16 CPUs (avx512bf16) and emulated bit for
 * bit on every other ISA (isa/bf16_vec.h says how, and what was measured of the instruction), so
 * a bf16 run gives the same bits on every machine. A bf16 element pair is one uint32_t: element
 * 2i in the low 16 bits, 2i + 1 in the high 16 bits.
 */
#ifndef DT_KERNELS_BF16_H
#define DT_KERNELS_BF16_H

#include <stddef.h>
#include <stdint.h>

struct dt_kgemm;

struct dt_kbf16 {
    int lanes; /* W: the dot/pack arrays' length must be a multiple of it */
    /* acc[i] <- vdpbf16ps(acc[i], a[i], b[i]) for i < n (a multiple of lanes) */
    void (*dot)(float *acc, const uint32_t *a, const uint32_t *b, size_t n);
    /* out[i] <- (bf16(even[i]), bf16(odd[i])) for i < n (a multiple of lanes), VCVTNE2PS2BF16 */
    void (*pack)(uint32_t *out, const float *even, const float *odd, size_t n);
    /* The bf16 GEMM, as gemm_k.h's table (kernels/gemm.h's dt_gemm_kern runs it, split into
     * panels of C over the thread pool, with the pool's packing buffers): dt_gemm's contract, C
     * (M, N) (+)= op(A) @ op(B) (+ bias row), op(A) and op(B) rounded to bf16 while packing
     * (VCVTNE2PS2BF16's rounding), multiplied with vdpbf16ps over pairs of k (k, k + 1; an odd
     * K's last pair padded with zeros on both sides), in fp32. Each C element starts from bias
     * (accum: C + bias) and adds its pairs in k order, so the result depends neither on the ISA,
     * the blocking, the lane count nor the panels: every ISA and thread count gives the same
     * bits. */
    const struct dt_kgemm *gemm;
    /* bf16 activation storage (net_act.h): x[0..n) rounded to bf16 in place as dt_round_bf16
     * rounds (nearest even, denormals kept, a NaN unchanged) and the upper halves into h (a NaN
     * quieted, so that one with a payload only in the low half stays a NaN); load widens h back
     * into x (exact). Plain integer loops the compiler vectorizes at the ISA's width: the same
     * bits on every ISA. */
    void (*act_store)(float *x, uint16_t *h, size_t n);
    void (*act_load)(float *x, const uint16_t *h, size_t n);
    /* act_store of values already rounded (a layer that rounds its output, dt_layer_ops.
     * rounds_out): only the upper halves into h, x untouched; the same h as act_store. */
    void (*act_pack)(const float *x, uint16_t *h, size_t n);
};

#if defined(__x86_64__)
extern const struct dt_kbf16 dt_kbf16_generic, dt_kbf16_avx2, dt_kbf16_avx2w16, dt_kbf16_avx512,
    dt_kbf16_avx512bf16;
#else
extern const struct dt_kbf16 dt_kbf16_generic;
#endif

/* The scalar references (bf16.c; the tests' second opinion). dt_bf16_round: f rounded to bf16
 * as VCVTNEPS2BF16 does: nearest even, denormals to a signed zero, NaN truncated and quieted
 * (torch's tensor.bfloat16() keeps denormals and gives 0x7fc0 for every NaN). dt_bf16_dot_1: one
 * lane of VDPBF16PS (isa/bf16_vec.h), computed another way (fmaf, and the tininess test in
 * double). dt_bf16_float: the bf16 bits h as a float. */
uint16_t dt_bf16_round(float f);
float dt_bf16_dot_1(float acc, uint32_t a, uint32_t b);
float dt_bf16_float(uint16_t h);

#endif
