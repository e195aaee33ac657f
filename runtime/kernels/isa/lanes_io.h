/*
 * lanes_io.h - the batch-lane kernels' layout changes, shared by the fp32 (isa/lanes.c) and bf16
 * (isa/bf16_lanes.c) families: W x W register transposes (tr_block: AVX-512 16x16, AVX2 8x8 and
 * its 16-lane composition, SSE 4x4, a plain loop elsewhere) and the NCHW <-> lanes copies built on
 * them (to_lanes, from_lanes), the fused ReLU + 2x2 max pool over lanes (lanes_relu_pool,
 * lanes_unpool), the pairwise sums of 8 double vectors at once (pairwise8) with which both
 * families reduce a weight gradient's lanes in registers, and the tiles' channel count
 * (tile_channels, round_up). Included by per-ISA sources only
 * (isa/vec.h: DT_W lanes).
 */
#ifndef DT_KERNELS_ISA_LANES_IO_H
#define DT_KERNELS_ISA_LANES_IO_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels/isa/vec.h"

#if defined(__AVX2__) && (DT_W == 8 || (DT_W == 16 && !defined(__AVX512F__)))
#include "kernels/simd_avx2.h"
#elif DT_W == 4 && defined(__SSE__)
#include <xmmintrin.h>
#endif

/* ---- pairwise sums of 8 vectors of 8 doubles ---- */

#if DT_W >= 8
typedef float vf8 __attribute__((vector_size(8 * sizeof(float))));
typedef double vd8 __attribute__((vector_size(8 * sizeof(double))));

/* (*r)[k] = ((v[k][0] + v[k][1]) + (v[k][2] + v[k][3])) + ((v[k][4] + v[k][5]) + (v[k][6] +
 * v[k][7])) for k < 8: the pairwise sums of 8 vectors at once, transposing as it adds (14
 * shuffles and 7 adds for 8 sums; through pointers: a 64-byte vector is no argument or return
 * value of the 8-lane builds' ABI) */
DT_KINL void pairwise8(vd8 *r, const vd8 v[8])
{
    vd8 u[4], w[2];
    for (int j = 0; j < 4; j++) /* (a01, b01, a23, b23, a45, b45, a67, b67) */
        u[j] = __builtin_shufflevector(v[2 * j], v[2 * j + 1], 0, 8, 2, 10, 4, 12, 6, 14) +
               __builtin_shufflevector(v[2 * j], v[2 * j + 1], 1, 9, 3, 11, 5, 13, 7, 15);
    for (int j = 0; j < 2; j++) /* (a0123, b0123, c0123, d0123, a4567, ..., d4567) */
        w[j] = __builtin_shufflevector(u[2 * j], u[2 * j + 1], 0, 1, 8, 9, 4, 5, 12, 13) +
               __builtin_shufflevector(u[2 * j], u[2 * j + 1], 2, 3, 10, 11, 6, 7, 14, 15);
    *r = __builtin_shufflevector(w[0], w[1], 0, 1, 2, 3, 8, 9, 10, 11) +
         __builtin_shufflevector(w[0], w[1], 4, 5, 6, 7, 12, 13, 14, 15);
}
#endif

/* ---- chunks of a batch (the parallel loops of both families: DT_LANES_CHUNK, DT_BC_CHUNK) ---- */

/* images [n0, n1) of chunk c of N images in chunks of `chunk` */
static inline void chunk_images(int N, int chunk, int c, int *n0, int *n1)
{
    *n0 = c * chunk;
    *n1 = N - *n0 < chunk ? N : *n0 + chunk;
}

/* p rounded up to a double's alignment (the workspaces' double slots and sums) */
static inline double *align_d(float *p) { return (double *)(((uintptr_t)p + 7) & ~(uintptr_t)7); }

#if DT_W == 16
/* lanes 0-7 and 8-15 of x in double (the weight gradients' lanes, reduced in registers) */
DT_KINL void lane_halves(vd8 *lo, vd8 *hi, vf x)
{
    *lo = __builtin_convertvector((vf8)__builtin_shufflevector(x, x, 0, 1, 2, 3, 4, 5, 6, 7), vd8);
    *hi = __builtin_convertvector((vf8)__builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15),
                                  vd8);
}
#endif

/* ---- the chunks' weight-gradient sums, in chunk order ----
 * res[i] = ((0.0 + res[i]) + res[cs + i]) + ... + res[(nch - 1) cs + i] for i < n, in place in the
 * first chunk's row: each element the additions of `double s = 0.0; for c: s += res[c cs + i]`,
 * in order, over rows read as streams (a loop per element strode across the rows) */
static inline void fold_chunks(double *restrict res, size_t cs, size_t n, int nch)
{
    for (size_t i = 0; i < n; i++)
        res[i] = 0.0 + res[i];
    for (int c = 1; c < nch; c++) {
        const double *restrict r = res + (size_t)c * cs;
        for (size_t i = 0; i < n; i++)
            res[i] += r[i];
    }
}

/* ---- W x W transposes: element j of row i goes to element i of row j ---- */

#if DT_W == 16 && defined(__AVX512F__)
DT_KINL void tr16(__m512 r[16])
{
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* u[4g + m], 128-bit lane k: column 4k + m of rows 4g .. 4g + 3 */
    for (int g = 0; g < 4; g++) {
        u[4 * g] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
        u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
        u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
    /* row 4k + m = lane k of u[m], u[4 + m], u[8 + m], u[12 + m] */
    for (int m = 0; m < 4; m++) {
        const __m512 v0 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x88);
        const __m512 v1 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xDD);
        const __m512 w0 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x88);
        const __m512 w1 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xDD);
        r[m] = _mm512_shuffle_f32x4(v0, w0, 0x88);
        r[8 + m] = _mm512_shuffle_f32x4(v0, w0, 0xDD);
        r[4 + m] = _mm512_shuffle_f32x4(v1, w1, 0x88);
        r[12 + m] = _mm512_shuffle_f32x4(v1, w1, 0xDD);
    }
}
#endif

DT_KINL void tr_block(vf r[DT_W])
{
#if DT_W == 16 && defined(__AVX512F__)
    __m512 m[16];
    memcpy(m, r, sizeof m);
    tr16(m);
    memcpy(r, m, sizeof m);
#elif DT_W == 16 && defined(__AVX2__)
    /* [[A, B], [C, D]] (8x8 blocks) -> [[A', C'], [B', D']] */
    __m256 a[8], b[8], c[8], d[8];
    for (int i = 0; i < 8; i++) {
        memcpy(&a[i], (const float *)&r[i], 32), memcpy(&b[i], (const float *)&r[i] + 8, 32);
        memcpy(&c[i], (const float *)&r[8 + i], 32);
        memcpy(&d[i], (const float *)&r[8 + i] + 8, 32);
    }
    dt_tr8x8(a), dt_tr8x8(b), dt_tr8x8(c), dt_tr8x8(d);
    for (int j = 0; j < 8; j++) {
        memcpy((float *)&r[j], &a[j], 32), memcpy((float *)&r[j] + 8, &c[j], 32);
        memcpy((float *)&r[8 + j], &b[j], 32), memcpy((float *)&r[8 + j] + 8, &d[j], 32);
    }
#elif DT_W == 8 && defined(__AVX2__)
    __m256 m[8];
    memcpy(m, r, sizeof m);
    dt_tr8x8(m);
    memcpy(r, m, sizeof m);
#elif DT_W == 4 && defined(__SSE__)
    __m128 m[4];
    memcpy(m, r, sizeof m);
    _MM_TRANSPOSE4_PS(m[0], m[1], m[2], m[3]);
    memcpy(r, m, sizeof m);
#else
    for (int i = 0; i < DT_W; i++)
        for (int j = i + 1; j < DT_W; j++) {
            const float t = r[i][j];
            r[i][j] = r[j][i], r[j][i] = t;
        }
#endif
}

/* the lanes address of each of W consecutive elements (c, r, k) of an image (C x R x cols,
 * contiguous), from element (*c, *r, *k) on; advances (c, r, k) past them */
DT_KINL void flat_addrs(size_t *a, int *c, int *r, int *k, size_t lcs, size_t lrs, int R, int cols)
{
    for (int j = 0; j < DT_W; j++) {
        a[j] = (size_t)*c * lcs + (size_t)*r * lrs + (size_t)*k * DT_W;
        if (++*k == cols) {
            *k = 0;
            if (++*r == R)
                *r = 0, ++*c;
        }
    }
}

/* src's value i: floats (h 0), or a bf16 copy's widened (h 1: to_lanes_h) */
DT_KINL vf src_v(const void *src, size_t i, int h)
{
    return h ? vf_load_h((const uint16_t *)src + i) : vf_load((const float *)src + i);
}
DT_KINL float src_1(const void *src, size_t i, int h)
{
    return h ? f_of_h(((const uint16_t *)src)[i]) : ((const float *)src)[i];
}

/* to_lanes of a full block whose images are contiguous (srs = cols, scs = R cols) and rows not a
 * multiple of W long (cnn's 14 x 14 and 7 x 7 planes): W x W transposes over W consecutive
 * elements of the flattened image, whatever rows they span, the last few element by element */
DT_KINL void to_lanes_flat(float *restrict l, size_t lcs, size_t lrs, const void *restrict src,
                           int h, size_t simg, int C, int R, int cols)
{
    const size_t E = (size_t)C * R * cols;
    int c = 0, r = 0, k = 0;
    size_t e = 0, a[DT_W];
    for (; e + DT_W <= E; e += DT_W) {
        vf v[DT_W];
        for (int i = 0; i < DT_W; i++)
            v[i] = src_v(src, i * simg + e, h);
        tr_block(v);
        flat_addrs(a, &c, &r, &k, lcs, lrs, R, cols);
        for (int j = 0; j < DT_W; j++)
            vf_store(l + a[j], v[j]);
    }
    for (; e < E; e++) {
        float *d = l + (size_t)c * lcs + (size_t)r * lrs + (size_t)k * DT_W;
        for (int i = 0; i < DT_W; i++)
            d[i] = src_1(src, i * simg + e, h);
        if (++k == cols) {
            k = 0;
            if (++r == R)
                r = 0, ++c;
        }
    }
}

/* from_lanes of a full block into contiguous images, as to_lanes_flat */
static inline void from_lanes_flat(float *restrict dst, size_t simg, const float *restrict l,
                                   size_t lcs, size_t lrs, int C, int R, int cols, int accum)
{
    const size_t E = (size_t)C * R * cols;
    int c = 0, r = 0, k = 0;
    size_t e = 0, a[DT_W];
    for (; e + DT_W <= E; e += DT_W) {
        vf v[DT_W];
        flat_addrs(a, &c, &r, &k, lcs, lrs, R, cols);
        for (int j = 0; j < DT_W; j++)
            v[j] = vf_load(l + a[j]);
        tr_block(v);
        for (int i = 0; i < DT_W; i++) {
            float *o = dst + i * simg + e;
            vf_store(o, accum ? vf_load(o) + v[i] : v[i]);
        }
    }
    for (; e < E; e++) {
        const float *s = l + (size_t)c * lcs + (size_t)r * lrs + (size_t)k * DT_W;
        for (int i = 0; i < DT_W; i++)
            dst[i * simg + e] = accum ? dst[i * simg + e] + s[i] : s[i];
        if (++k == cols) {
            k = 0;
            if (++r == R)
                r = 0, ++c;
        }
    }
}

/* Images -> lanes: l[c*lcs + r*lrs + k*W + i] = src[i*simg + c*scs + r*srs + k] for c < C,
 * r < R, k < cols, lanes i < nv (lanes nv..W-1 get 0): squares of W columns of a full block
 * through W x W register transposes, the rest (a row's last columns, a partial block) element by
 * element. src as src_v reads it (to_lanes: floats; to_lanes_h: a bf16 copy, net_act.h). */
DT_KINL void to_lanes_any(float *restrict l, size_t lcs, size_t lrs, const void *restrict src,
                          int h, size_t simg, size_t scs, size_t srs, int C, int R, int cols,
                          int nv)
{
    if (nv == DT_W && cols % DT_W != 0 && (R == 1 || srs == (size_t)cols) &&
        scs == (size_t)R * cols) {
        to_lanes_flat(l, lcs, lrs, src, h, simg, C, R, cols);
        return;
    }
    for (int c = 0; c < C; c++)
        for (int r = 0; r < R; r++) {
            float *d = l + c * lcs + r * lrs;
            const size_t s = c * scs + r * srs;
            int k = 0;
            if (nv == DT_W)
                for (; k + DT_W <= cols; k += DT_W) {
                    vf v[DT_W];
                    for (int i = 0; i < DT_W; i++)
                        v[i] = src_v(src, s + i * simg + k, h);
                    tr_block(v);
                    for (int j = 0; j < DT_W; j++)
                        vf_store(d + (size_t)(k + j) * DT_W, v[j]);
                }
            for (; k < cols; k++)
                for (int i = 0; i < DT_W; i++)
                    d[(size_t)k * DT_W + i] = i < nv ? src_1(src, s + i * simg + k, h) : 0.0f;
        }
}

static inline void to_lanes(float *restrict l, size_t lcs, size_t lrs, const float *restrict src,
                            size_t simg, size_t scs, size_t srs, int C, int R, int cols, int nv)
{
    to_lanes_any(l, lcs, lrs, src, 0, simg, scs, srs, C, R, cols, nv);
}

static inline void to_lanes_h(float *restrict l, size_t lcs, size_t lrs,
                              const uint16_t *restrict src, size_t simg, size_t scs, size_t srs,
                              int C, int R, int cols, int nv)
{
    to_lanes_any(l, lcs, lrs, src, 1, simg, scs, srs, C, R, cols, nv);
}

/* Lanes -> images, the inverse: dst[i*simg + c*scs + r*srs + k] (+)= l[c*lcs + r*lrs + k*W + i]
 * for lanes i < nv. */
static inline void from_lanes(float *restrict dst, size_t simg, size_t scs, size_t srs,
                              const float *restrict l, size_t lcs, size_t lrs, int C, int R,
                              int cols, int nv, int accum)
{
    if (nv == DT_W && cols % DT_W != 0 && (R == 1 || srs == (size_t)cols) &&
        scs == (size_t)R * cols) {
        from_lanes_flat(dst, simg, l, lcs, lrs, C, R, cols, accum);
        return;
    }
    for (int c = 0; c < C; c++)
        for (int r = 0; r < R; r++) {
            const float *s = l + c * lcs + r * lrs;
            float *d = dst + c * scs + r * srs;
            int k = 0;
            if (nv == DT_W)
                for (; k + DT_W <= cols; k += DT_W) {
                    vf v[DT_W];
                    for (int j = 0; j < DT_W; j++)
                        v[j] = vf_load(s + (size_t)(k + j) * DT_W);
                    tr_block(v);
                    for (int i = 0; i < DT_W; i++) {
                        float *o = d + i * simg + k;
                        vf_store(o, accum ? vf_load(o) + v[i] : v[i]);
                    }
                }
            for (; k < cols; k++)
                for (int i = 0; i < nv; i++) {
                    const float v = s[(size_t)k * DT_W + i];
                    d[i * simg + k] = accum ? d[i * simg + k] + v : v;
                }
        }
}

/* The lane layout (layer.h's dt_net.lanes): the kernels' padded planes l[c*lcs + r*lrs + k*W + i]
 * added (accum) or copied into a block of W images already in lanes, [C][R][cols][W]: the values
 * from_lanes moves, as from_lanes adds them, without the transposes. */
static inline void planes_to_block(float *restrict dst, const float *restrict l, size_t lcs,
                                   size_t lrs, int C, int R, int cols, int accum)
{
    const size_t row = (size_t)cols * DT_W;
    for (int c = 0; c < C; c++)
        for (int r = 0; r < R; r++) {
            const float *s = l + c * lcs + r * lrs;
            float *d = dst + ((size_t)c * R + r) * row;
            for (size_t k = 0; k < row; k += DT_W) {
                const vf v = vf_load(s + k);
                vf_store(d + k, accum ? vf_load(d + k) + v : v);
            }
        }
}

/* ---- fused ReLU + MaxPool2d(2, 2) ---- */

/* Pool codes: int32 per value in the fp32 family, one byte per value in the bf16 family
 * (bytes: the codes are 0..4; a quarter of the memory traffic between the forward that writes
 * them and the backward that reads them, long after). Element e of the code array. */
DT_KINL vi code_load(const void *code, size_t e, int bytes)
{
    vi k;
    if (!bytes) {
        memcpy(&k, (const int32_t *)code + e, sizeof k);
        return k;
    }
    const uint8_t *p = (const uint8_t *)code + e;
#if DT_W == 16 && defined(__AVX512F__)
    k = (vi)_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
#else
    k = (vi){0};
    for (int l = 0; l < DT_W; l++)
        k[l] = p[l];
#endif
    return k;
}

DT_KINL void code_store(void *code, size_t e, vi k, int bytes)
{
    if (!bytes) {
        memcpy((int32_t *)code + e, &k, sizeof k);
        return;
    }
    uint8_t *p = (uint8_t *)code + e;
#if DT_W == 16 && defined(__AVX512F__)
    _mm_storeu_si128((__m128i *)p, _mm512_cvtepi32_epi8((__m512i)k));
#else
    for (int l = 0; l < DT_W; l++)
        p[l] = (uint8_t)k[l];
#endif
}

#if DT_W == 16 && defined(__AVX512F__)
/* ReLU(x) (vmaxps(x, 0) is x > 0 ? x : 0, NaN -> 0), then with bf16 rounded to bf16 (nearest
 * even on the upper 16 bits). ReLU first and rounding second give the bits of rounding first
 * (vu_round_bf16, NaN kept) and ReLU second: rounding is monotonic and keeps 0's sign, and a NaN
 * becomes 0 either way; after the ReLU no NaN is left, so the rounding needs no NaN case. */
DT_KINL __m512 relu_round(const float *p, int bf16)
{
    const __m512 v = _mm512_max_ps(_mm512_loadu_ps(p), _mm512_setzero_ps());
    if (!bf16)
        return v;
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb);
    return _mm512_castsi512_ps(_mm512_and_si512(r, _mm512_set1_epi32((int)0xffff0000u)));
}

/* one window of lanes_relu_pool in mask registers (the generic loop's compares and selects go
 * through vectors of all ones): the same comparisons in the same order, the same bits
 * (test_lanes and test_kern_bf16conv compare it with the other ISAs) */
DT_KINL void relu_pool_window(float *y, void *code, size_t c, const float *x, size_t row, int bf16)
{
    __m512 m = relu_round(x, bf16);
    const __m512 v1 = relu_round(x + DT_W, bf16), v2 = relu_round(x + row, bf16),
                 v3 = relu_round(x + row + DT_W, bf16);
    __m512i k = _mm512_setzero_si512();
    __mmask16 g = _mm512_cmp_ps_mask(v1, m, _CMP_GT_OQ);
    m = _mm512_mask_mov_ps(m, g, v1);
    k = _mm512_mask_mov_epi32(k, g, _mm512_set1_epi32(1));
    g = _mm512_cmp_ps_mask(v2, m, _CMP_GT_OQ);
    m = _mm512_mask_mov_ps(m, g, v2);
    k = _mm512_mask_mov_epi32(k, g, _mm512_set1_epi32(2));
    g = _mm512_cmp_ps_mask(v3, m, _CMP_GT_OQ);
    m = _mm512_mask_mov_ps(m, g, v3);
    k = _mm512_mask_mov_epi32(k, g, _mm512_set1_epi32(3));
    k = _mm512_mask_mov_epi32(_mm512_set1_epi32(4),
                              _mm512_cmp_ps_mask(m, _mm512_setzero_ps(), _CMP_GT_OQ), k);
    _mm512_storeu_ps(y, m);
    code_store(code, c, (vi)k, bf16);
}
#endif

/* Fused ReLU + MaxPool2d(2, 2), bitwise the separate kernels: ReLU is x > 0 ? x : 0 (vf_max(x,
 * 0): NaN gives 0 like dt_relu_forward), then the first maximum in row-major window order (strict
 * >, as dt_maxpool_forward; a ReLU output is never NaN). code: window position 0..3 of the
 * maximum, or 4 when it is not positive (ReLU's gradient there is 0). Rows/columns past 2 PH /
 * 2 PW are dropped (floor mode). Per block of W images in lanes: ol (OC, OH, OW, W) (planes of
 * P = OH * OW), OH >= 2 PH, pl and code (OC, PH, PW, W). Shared by the fp32 and bf16 lane
 * families. bf16 (the bf16 family): each value of ol rounded to bf16 as it is read
 * (vu_round_bf16), as the separate layers of a bf16 net read the conv's output: ties after
 * rounding pick the same pixel; and the codes are bytes (code_store). */
static inline void lanes_relu_pool(float *pl, void *code, const float *ol, int OC, size_t P, int OW,
                                   int PH, int PW, int bf16)
{
    const size_t row = (size_t)OW * DT_W, PP = (size_t)PH * PW;
    for (int oc = 0; oc < OC; oc++)
        for (int ph = 0; ph < PH; ph++) {
            const float *x = ol + ((size_t)oc * P + (size_t)2 * ph * OW) * DT_W;
            float *y = pl + ((size_t)oc * PP + (size_t)ph * PW) * DT_W;
            size_t c = ((size_t)oc * PP + (size_t)ph * PW) * DT_W;
            for (int pw = 0; pw < PW; pw++, x += 2 * DT_W, y += DT_W, c += DT_W) {
#if DT_W == 16 && defined(__AVX512F__)
                relu_pool_window(y, code, c, x, row, bf16);
#else
                const vf zero = vf_zero();
#define POOL_LOAD(ptr) (bf16 ? (vf)vu_round_bf16((vu)vf_load(ptr)) : vf_load(ptr))
                vf m = vf_max(POOL_LOAD(x), zero), v;
                vi k = {0}, gt;
#define POOL_STEP(ptr, kv)                                                                         \
    v = vf_max(POOL_LOAD(ptr), zero);                                                              \
    gt = v > m;                                                                                    \
    m = (vf)((gt & (vi)v) | (~gt & (vi)m));                                                        \
    k = (gt & (kv)) | (~gt & k);
                POOL_STEP(x + DT_W, 1)
                POOL_STEP(x + row, 2)
                POOL_STEP(x + row + DT_W, 3)
#undef POOL_STEP
#undef POOL_LOAD
                const vi pos = m > zero;
                k = (pos & k) | (~pos & ((vi){0} + 4));
                vf_store(y, m);
                code_store(code, c, k, bf16);
#endif
            }
        }
}

/* dl (zeroed outside the windows by the caller) = the gradient at the conv's output of the
 * pooled gradient dpl: the unfused maxpool backward (0 + d at the maximum) then ReLU's mask.
 * bytes: codes of one byte (the bf16 family's, code_load) */
static inline void lanes_unpool(float *dl, const float *dpl, const void *code, int OC, size_t P,
                                int OW, int PH, int PW, int bytes)
{
    const vf zero = vf_zero();
    const size_t row = (size_t)OW * DT_W, PP = (size_t)PH * PW;
    for (int oc = 0; oc < OC; oc++)
        for (int ph = 0; ph < PH; ph++) {
            float *x = dl + ((size_t)oc * P + (size_t)2 * ph * OW) * DT_W;
            const float *y = dpl + ((size_t)oc * PP + (size_t)ph * PW) * DT_W;
            size_t c = ((size_t)oc * PP + (size_t)ph * PW) * DT_W;
            for (int pw = 0; pw < PW; pw++, x += 2 * DT_W, y += DT_W, c += DT_W) {
                const vi d = (vi)(zero + vf_load(y));
                const vi k = code_load(code, c, bytes);
                vf_store(x, (vf)((k == 0) & d));
                vf_store(x + DT_W, (vf)((k == 1) & d));
                vf_store(x + row, (vf)((k == 2) & d));
                vf_store(x + row + DT_W, (vf)((k == 3) & d));
            }
        }
}

/* ---- tiles ---- */

static inline int round_up(int x, int m) { return (x + m - 1) / m * m; }

/* channels of a register tile (4, 3 or 2): one that divides the channel count where possible */
static inline int tile_channels(int n)
{
    if (n % 4 == 0)
        return 4;
    if (n % 3 == 0)
        return 3;
    if (n % 2 == 0 || n < 4)
        return 2;
    return 4;
}

#endif
