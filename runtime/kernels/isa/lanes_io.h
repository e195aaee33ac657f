/*
 * lanes_io.h - the batch-lane kernels' layout changes, shared by the fp32 (isa/lanes.c) and bf16
 * (isa/bf16_lanes.c) families: W x W register transposes (tr_block: AVX-512 16x16, AVX2 8x8 and
 * its 16-lane composition, SSE 4x4, a plain loop elsewhere) and the NCHW <-> lanes copies built on
 * them (to_lanes, from_lanes). Included by per-ISA sources only (isa/vec.h: DT_W lanes).
 */
#ifndef DT_KERNELS_ISA_LANES_IO_H
#define DT_KERNELS_ISA_LANES_IO_H

#include <stddef.h>
#include <string.h>

#include "kernels/isa/vec.h"

#if defined(__AVX2__) && (DT_W == 8 || (DT_W == 16 && !defined(__AVX512F__)))
#include "kernels/simd_avx2.h"
#elif DT_W == 4 && defined(__SSE__)
#include <xmmintrin.h>
#endif

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

/* Images -> lanes: l[c*lcs + r*lrs + k*W + i] = src[i*simg + c*scs + r*srs + k] for c < C,
 * r < R, k < cols, lanes i < nv (lanes nv..W-1 get 0): squares of W columns of a full block
 * through W x W register transposes, the rest (a row's last columns, a partial block) element by
 * element. */
static inline void to_lanes(float *restrict l, size_t lcs, size_t lrs, const float *restrict src,
                            size_t simg, size_t scs, size_t srs, int C, int R, int cols, int nv)
{
    for (int c = 0; c < C; c++)
        for (int r = 0; r < R; r++) {
            float *d = l + c * lcs + r * lrs;
            const float *s = src + c * scs + r * srs;
            int k = 0;
            if (nv == DT_W)
                for (; k + DT_W <= cols; k += DT_W) {
                    vf v[DT_W];
                    for (int i = 0; i < DT_W; i++)
                        v[i] = vf_load(s + i * simg + k);
                    tr_block(v);
                    for (int j = 0; j < DT_W; j++)
                        vf_store(d + (size_t)(k + j) * DT_W, v[j]);
                }
            for (; k < cols; k++)
                for (int i = 0; i < DT_W; i++)
                    d[(size_t)k * DT_W + i] = i < nv ? s[i * simg + k] : 0.0f;
        }
}

/* Lanes -> images, the inverse: dst[i*simg + c*scs + r*srs + k] (+)= l[c*lcs + r*lrs + k*W + i]
 * for lanes i < nv. */
static inline void from_lanes(float *restrict dst, size_t simg, size_t scs, size_t srs,
                              const float *restrict l, size_t lcs, size_t lrs, int C, int R,
                              int cols, int nv, int accum)
{
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

#endif
