/*
 * conv_n8.c - "batch-lane" convolution for small layers: 8 images side by side in the 8 float
 * lanes of an AVX2 register, so every multiply-add of the convolution is one lane-wise FMA of a
 * broadcast weight with 8 images' values of one input pixel - no im2col matrix, no skinny GEMM,
 * and no padding or row-length constraint on the vector width.
 *
 * Why: in lenet5 (1 -> 6 and 6 -> 16 channels, 5x5, 28x28 and 14x14) and the first layers of cnn
 * and resnet20, im2col + sgemm spends more time copying rows of 10 to 28 floats and packing
 * skinny matrices (M = OC = 6..32) than multiplying. Batch lanes make every layer shape a dense
 * register-tiled loop of FMAs (the layout of Intel's oneDNN "nChw8c" and of the Winograd-free
 * "direct convolution" papers, e.g. Zhang et al., "High performance zero-memory overhead direct
 * convolutions", ICML 2018, but blocked over images instead of channels: channel counts of 1, 3
 * and 6 do not fill a vector, a batch of 128 does).
 *
 * Per block of 8 images (the last block of a batch may be partial: its missing lanes are zero):
 *   x8  [C][Hp][Wp][8]  the input, zero-padded (Hp = H + 2 pad, Wp = W + 2 pad), transposed from
 *                       NCHW with 8x8 register transposes;
 *   forward:  o8[oc][p][8] = bias + sum over taps t = (c, kh, kw) of w[oc][t] * x8[pix(p) + off(t)],
 *             pix(p) = (oh*stride*Wp + ow*stride)*8 and off(t) = ((c*Hp + kh)*Wp + kw)*8; a tile of
 *             fc channels x fp pixels (12 accumulators) stays in registers over all the taps; o8 is
 *             transposed back to NCHW.
 *   dweight:  dw[oc][t] = sum over the block's pixels of d8[oc][p] . x8[pix(p) + off(t)], a tile of
 *             wc channels x wt taps in registers over the pixels, added in double per block and
 *             summed over the 8 lanes at the end (the order of a batched GEMM's reduction, with a
 *             double between blocks).
 *   dinp:     the GEMM form of the transposed convolution: a tile of xt taps x xp pixels of
 *             col[t][p] = sum over oc of w[oc][t] * d8[oc][p] in registers, then added to
 *             dx8[pix(p) + off(t)] (the col2im "scatter" done from registers); dx8's interior is
 *             transposed back. Exactly the forward's FLOPs for any padding (the gather form, a
 *             forward conv of the fully padded dout, doubles them for a "valid" 5x5 conv).
 * dbias sums d8's lanes per channel. Everything of a block (x8, o8/d8, dx8: 20 to 200 KB for the
 * layers this path takes) stays in L2 between the transposes and the kernels.
 *
 * Only compiled into an AVX2+FMA function body (GCC target attribute, dispatched at run time by
 * conv.c through dt_conv_n8_cpu): builds for any x86-64, and a CPU without AVX2 takes conv.c's
 * im2col path. On other architectures dt_conv_n8_cpu is 0 and the entry points only assert.
 */
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "conv_n8.h"

static int round_up(int x, int m) { return (x + m - 1) / m * m; }

/* tile shapes: 12 accumulators (4x3, 3x4 or 2x6) that divide the channel count where possible */
static int tile_channels(int n)
{
    if (n % 4 == 0)
        return 4;
    if (n % 3 == 0)
        return 3;
    if (n % 2 == 0 || n < 4)
        return 2;
    return 4;
}

void dt_conv_n8_plan(dt_n8_plan *q, int C, int H, int W, int OC, int KH, int KW, int stride,
                     int pad)
{
    DT_ASSERT(C >= 1 && H >= 1 && W >= 1 && OC >= 1 && KH >= 1 && KW >= 1 && stride >= 1 &&
              pad >= 0);
    q->C = C, q->H = H, q->W = W, q->OC = OC, q->KH = KH, q->KW = KW;
    q->stride = stride, q->pad = pad;
    q->OH = (H + 2 * pad - KH) / stride + 1;
    q->OW = (W + 2 * pad - KW) / stride + 1;
    DT_ASSERT(H + 2 * pad >= KH && W + 2 * pad >= KW);
    q->Hp = H + 2 * pad, q->Wp = W + 2 * pad;
    /* offsets into x8 are int: the planes of one block must be addressable */
    DT_ASSERT((long)C * q->Hp * q->Wp * 8 <= INT32_MAX);
    q->K = C * KH * KW;
    q->P = q->OH * q->OW;
    q->fc = tile_channels(OC), q->fp = 12 / q->fc;
    q->wc = q->fc, q->wt = 12 / q->wc;
    q->xt = 4, q->xp = 3;
    q->OCf = round_up(OC, q->fc), q->OCw = round_up(OC, q->wc);
    q->Kw = round_up(q->K, q->wt), q->Kx = round_up(q->K, q->xt);
    const size_t kmax = (size_t)(q->Kw > q->Kx ? q->Kw : q->Kx);
    const size_t plane = (size_t)C * q->Hp * q->Wp * 8;
    const size_t ocm = (size_t)(q->OCf > q->OCw ? q->OCf : q->OCw);
    size_t at = 0;
    q->off = at, at += kmax;                 /* int32 tap offsets */
    q->wr = at, at += (size_t)q->OCf * q->K; /* forward weights [oc tile][t][fc] */
    q->wx = at, at += (size_t)q->Kx * OC;    /* dinp weights [t tile][oc][xt] */
    q->bias = at, at += (size_t)q->OCf;
    at = (at + 7) / 8 * 8;
    q->x8 = at, at += plane;
    q->o8 = at, at += ocm * q->P * 8; /* o8 or d8 */
    q->dx8 = at, at += plane;
    q->PH = q->OH / 2, q->PW = q->OW / 2, q->PP = q->PH * q->PW;
    q->p8 = at, at += (size_t)OC * q->PP * 8;
    at = (at + 7) / 8 * 8;
    q->acc = at, at += 2 * ((size_t)q->OCw * q->Kw * 8 + (size_t)OC * 8); /* doubles */
    q->total = at + 8; /* room to align the doubles */
}

#if defined(__x86_64__) && defined(__GNUC__)
#include "simd_avx2.h"

int dt_conv_n8_cpu(void) { return dt_cpu_avx2_fma(); }

#define N8_T DT_AVX2_TARGET
#define N8_INL DT_AVX2_INLINE

/* Images -> lanes: l8[c*lcs + r*lrs + k*8 + l] = src[l*simg + c*scs + r*srs + k] for c < C,
 * r < R, k < cols, lanes l < nv (lanes nv..7 get 0). */
N8_T static void to_lanes(float *restrict l8, size_t lcs, size_t lrs, const float *restrict src,
                          size_t simg, size_t scs, size_t srs, int C, int R, int cols, int nv)
{
    for (int c = 0; c < C; c++)
        for (int r = 0; r < R; r++) {
            float *d = l8 + c * lcs + r * lrs;
            const float *s = src + c * scs + r * srs;
            int k = 0;
            if (nv == 8)
                for (; k + 8 <= cols; k += 8) {
                    __m256 v[8];
                    for (int l = 0; l < 8; l++)
                        v[l] = _mm256_loadu_ps(s + l * simg + k);
                    dt_tr8x8(v);
                    for (int j = 0; j < 8; j++)
                        _mm256_storeu_ps(d + (size_t)(k + j) * 8, v[j]);
                }
            for (; k < cols; k++)
                for (int l = 0; l < 8; l++)
                    d[(size_t)k * 8 + l] = l < nv ? s[l * simg + k] : 0.0f;
        }
}

/* Lanes -> images, the inverse: dst[l*simg + c*scs + r*srs + k] (+)= l8[c*lcs + r*lrs + k*8 + l]
 * for lanes l < nv. */
N8_T static void from_lanes(float *restrict dst, size_t simg, size_t scs, size_t srs,
                            const float *restrict l8, size_t lcs, size_t lrs, int C, int R,
                            int cols, int nv, int accum)
{
    for (int c = 0; c < C; c++)
        for (int r = 0; r < R; r++) {
            const float *s = l8 + c * lcs + r * lrs;
            float *d = dst + c * scs + r * srs;
            int k = 0;
            if (nv == 8)
                for (; k + 8 <= cols; k += 8) {
                    __m256 v[8];
                    for (int j = 0; j < 8; j++)
                        v[j] = _mm256_loadu_ps(s + (size_t)(k + j) * 8);
                    dt_tr8x8(v);
                    for (int l = 0; l < 8; l++) {
                        float *o = d + l * simg + k;
                        _mm256_storeu_ps(o, accum ? _mm256_add_ps(_mm256_loadu_ps(o), v[l]) : v[l]);
                    }
                }
            for (; k < cols; k++)
                for (int l = 0; l < nv; l++) {
                    const float v = s[(size_t)k * 8 + l];
                    d[l * simg + k] = accum ? d[l * simg + k] + v : v;
                }
        }
}

/* ---- forward: CB channels x PB pixels ----
 * o8[i*ostr + (p0 + j)*8] = bias[i] + sum_t wr[t*CB + i] * x8[xp[j] + off[t]] */
N8_INL void fwd_tile(float *o8, size_t ostr, const float *x8, const int *xp, const int32_t *off,
                     int T, const float *wr, const float *bias, const int CB, const int PB)
{
    __m256 acc[4][6];
    const float *p[6];
    for (int i = 0; i < CB; i++) {
        const __m256 b = _mm256_broadcast_ss(bias + i);
        for (int j = 0; j < PB; j++)
            acc[i][j] = b;
    }
    for (int j = 0; j < PB; j++)
        p[j] = x8 + xp[j];
    if (CB >= PB) {
        for (int t = 0; t < T; t++) {
            const int o = off[t];
            const float *w = wr + (size_t)t * CB;
            __m256 x[6];
            for (int j = 0; j < PB; j++)
                x[j] = _mm256_loadu_ps(p[j] + o);
            for (int i = 0; i < CB; i++) {
                const __m256 wv = _mm256_broadcast_ss(w + i);
                for (int j = 0; j < PB; j++)
                    acc[i][j] = _mm256_fmadd_ps(wv, x[j], acc[i][j]);
            }
        }
    } else {
        for (int t = 0; t < T; t++) {
            const int o = off[t];
            const float *w = wr + (size_t)t * CB;
            __m256 wv[4];
            for (int i = 0; i < CB; i++)
                wv[i] = _mm256_broadcast_ss(w + i);
            for (int j = 0; j < PB; j++) {
                const __m256 x = _mm256_loadu_ps(p[j] + o);
                for (int i = 0; i < CB; i++)
                    acc[i][j] = _mm256_fmadd_ps(wv[i], x, acc[i][j]);
            }
        }
    }
    for (int i = 0; i < CB; i++)
        for (int j = 0; j < PB; j++)
            _mm256_storeu_ps(o8 + i * ostr + (size_t)j * 8, acc[i][j]);
}

/* pixel bases xp[0..n) of the n pixels from flat index p0 */
static void pixel_bases(int *xp, int p0, int n, const dt_n8_plan *q)
{
    int oh = p0 / q->OW, ow = p0 % q->OW;
    for (int j = 0; j < n; j++) {
        xp[j] = (oh * q->stride * q->Wp + ow * q->stride) * 8;
        if (++ow == q->OW)
            ow = 0, oh++;
    }
}

#define FWD_CASES(CB)                                                                              \
    switch (n) {                                                                                   \
    case 1: fwd_tile(o, ostr, x8, xp, off, T, w, b, CB, 1); break;                                 \
    case 2: fwd_tile(o, ostr, x8, xp, off, T, w, b, CB, 2); break;                                 \
    case 3: fwd_tile(o, ostr, x8, xp, off, T, w, b, CB, 3); break;                                 \
    case 4: fwd_tile(o, ostr, x8, xp, off, T, w, b, CB, 4); break;                                 \
    case 5: fwd_tile(o, ostr, x8, xp, off, T, w, b, CB, 5); break;                                 \
    default: fwd_tile(o, ostr, x8, xp, off, T, w, b, CB, 6); break;                                \
    }

/* o8 (OCf channels of P pixels) = the block's forward, pixel tiles outermost (the taps of a few
 * pixels stay in L1 while every channel tile reads them) */
N8_T static void fwd_block(float *o8, const float *x8, const int32_t *off, const float *wr,
                           const float *bias, const dt_n8_plan *q)
{
    const size_t ostr = (size_t)q->P * 8;
    const int T = q->K;
    int xp[6];
    for (int p0 = 0; p0 < q->P; p0 += q->fp) {
        const int n = q->P - p0 < q->fp ? q->P - p0 : q->fp;
        pixel_bases(xp, p0, n, q);
        for (int c0 = 0; c0 < q->OCf; c0 += q->fc) {
            float *o = o8 + c0 * ostr + (size_t)p0 * 8;
            const float *w = wr + (size_t)c0 * T, *b = bias + c0;
            if (q->fc == 4) {
                FWD_CASES(4)
            } else if (q->fc == 3) {
                FWD_CASES(3)
            } else {
                FWD_CASES(2)
            }
        }
    }
}

/* ---- weight gradient: CB channels x TB taps over all pixels ----
 * acc[(i*Kw + j)*8 + l] += sum_p d8[i*dstr + p*8 + l] * x8[pix(p) + off[j] + l] (double) */
N8_INL void dw_tile(double *acc, size_t Kw, const float *d8, size_t dstr, const float *x8,
                    const int32_t *off, const dt_n8_plan *q, const int CB, const int TB)
{
    __m256 a[4][6];
    int o[6];
    for (int i = 0; i < CB; i++)
        for (int j = 0; j < TB; j++)
            a[i][j] = _mm256_setzero_ps();
    for (int j = 0; j < TB; j++)
        o[j] = off[j];
    const float *d = d8;
    const size_t xs = (size_t)q->stride * 8;
    for (int oh = 0; oh < q->OH; oh++) {
        const float *xr = x8 + (size_t)oh * q->stride * q->Wp * 8;
        for (int ow = 0; ow < q->OW; ow++, d += 8, xr += xs) {
            if (CB <= TB) {
                __m256 dv[4];
                for (int i = 0; i < CB; i++)
                    dv[i] = _mm256_loadu_ps(d + i * dstr);
                for (int j = 0; j < TB; j++) {
                    const __m256 x = _mm256_loadu_ps(xr + o[j]);
                    for (int i = 0; i < CB; i++)
                        a[i][j] = _mm256_fmadd_ps(dv[i], x, a[i][j]);
                }
            } else {
                __m256 x[6];
                for (int j = 0; j < TB; j++)
                    x[j] = _mm256_loadu_ps(xr + o[j]);
                for (int i = 0; i < CB; i++) {
                    const __m256 dv = _mm256_loadu_ps(d + i * dstr);
                    for (int j = 0; j < TB; j++)
                        a[i][j] = _mm256_fmadd_ps(dv, x[j], a[i][j]);
                }
            }
        }
    }
    for (int i = 0; i < CB; i++)
        for (int j = 0; j < TB; j++) {
            double *r = acc + ((size_t)i * Kw + j) * 8;
            const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(a[i][j]));
            const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(a[i][j], 1));
            _mm256_storeu_pd(r, _mm256_add_pd(_mm256_loadu_pd(r), lo));
            _mm256_storeu_pd(r + 4, _mm256_add_pd(_mm256_loadu_pd(r + 4), hi));
        }
}

N8_T static void dw_block(double *acc, const float *d8, const float *x8, const int32_t *off,
                          const dt_n8_plan *q)
{
    const size_t dstr = (size_t)q->P * 8, Kw = (size_t)q->Kw;
    for (int c0 = 0; c0 < q->OCw; c0 += q->wc)
        for (int t0 = 0; t0 < q->Kw; t0 += q->wt) {
            double *a = acc + ((size_t)c0 * Kw + t0) * 8;
            const float *d = d8 + c0 * dstr;
            if (q->wc == 4)
                dw_tile(a, Kw, d, dstr, x8, off + t0, q, 4, 3);
            else if (q->wc == 3)
                dw_tile(a, Kw, d, dstr, x8, off + t0, q, 3, 4);
            else
                dw_tile(a, Kw, d, dstr, x8, off + t0, q, 2, 6);
        }
}

/* ---- input gradient: TB taps x PB pixels, the sum over all output channels in registers ----
 * dx8[xp[k] + off[j]] += sum_oc w[oc*TB + j] * d8[oc*dstr + k*8] */
N8_INL void dx_tile(float *dx8, const int *xp, const int32_t *off, const float *d8, size_t dstr,
                    int OC, const float *w, const int TB, const int PB)
{
    __m256 a[4][3];
    for (int j = 0; j < TB; j++)
        for (int k = 0; k < PB; k++)
            a[j][k] = _mm256_setzero_ps();
    for (int oc = 0; oc < OC; oc++, d8 += dstr, w += TB) {
        __m256 dv[3];
        for (int k = 0; k < PB; k++)
            dv[k] = _mm256_loadu_ps(d8 + (size_t)k * 8);
        for (int j = 0; j < TB; j++) {
            const __m256 wv = _mm256_broadcast_ss(w + j);
            for (int k = 0; k < PB; k++)
                a[j][k] = _mm256_fmadd_ps(wv, dv[k], a[j][k]);
        }
    }
    /* in order: two (tap, pixel) pairs of a tile can hit the same input pixel */
    for (int j = 0; j < TB; j++)
        for (int k = 0; k < PB; k++) {
            float *r = dx8 + xp[k] + off[j];
            _mm256_storeu_ps(r, _mm256_add_ps(_mm256_loadu_ps(r), a[j][k]));
        }
}

N8_T static void dx_block(float *dx8, const float *d8, const int32_t *off, const float *wx,
                          const dt_n8_plan *q)
{
    const size_t dstr = (size_t)q->P * 8;
    int xp[3];
    for (int p0 = 0; p0 < q->P; p0 += 3) {
        const int n = q->P - p0 < 3 ? q->P - p0 : 3;
        pixel_bases(xp, p0, n, q);
        const float *d = d8 + (size_t)p0 * 8;
        for (int t0 = 0; t0 < q->Kx; t0 += 4) {
            const float *w = wx + (size_t)t0 * q->OC;
            if (n == 3)
                dx_tile(dx8, xp, off + t0, d, dstr, q->OC, w, 4, 3);
            else if (n == 2)
                dx_tile(dx8, xp, off + t0, d, dstr, q->OC, w, 4, 2);
            else
                dx_tile(dx8, xp, off + t0, d, dstr, q->OC, w, 4, 1);
        }
    }
}

/* ---- fused ReLU + MaxPool2d(2, 2) ----
 * Bitwise the separate kernels: ReLU is x > 0 ? x : 0 (max_ps(x, 0): NaN gives 0 like
 * dt_relu_forward), then the first maximum in row-major window order (strict >, as
 * dt_maxpool_forward; a ReLU output is never NaN). code: window position 0..3 of the maximum, or
 * 4 when it is not positive (ReLU's gradient there is 0). Rows/columns past 2 PH / 2 PW are
 * dropped (floor mode). */
N8_T static void relu_pool_block(float *p8, int32_t *code, const float *o8, const dt_n8_plan *q)
{
    const __m256 zero = _mm256_setzero_ps();
    const __m256 k1 = _mm256_castsi256_ps(_mm256_set1_epi32(1));
    const __m256 k2 = _mm256_castsi256_ps(_mm256_set1_epi32(2));
    const __m256 k3 = _mm256_castsi256_ps(_mm256_set1_epi32(3));
    const __m256 k4 = _mm256_castsi256_ps(_mm256_set1_epi32(4));
    const size_t row = (size_t)q->OW * 8;
    for (int oc = 0; oc < q->OC; oc++)
        for (int ph = 0; ph < q->PH; ph++) {
            const float *x = o8 + ((size_t)oc * q->P + (size_t)2 * ph * q->OW) * 8;
            float *y = p8 + ((size_t)oc * q->PP + (size_t)ph * q->PW) * 8;
            int32_t *c = code + ((size_t)oc * q->PP + (size_t)ph * q->PW) * 8;
            for (int pw = 0; pw < q->PW; pw++, x += 16, y += 8, c += 8) {
                __m256 m = _mm256_max_ps(_mm256_loadu_ps(x), zero), k = zero, v, gt;
#define POOL_STEP(ptr, kv)                                                                         \
    v = _mm256_max_ps(_mm256_loadu_ps(ptr), zero);                                                 \
    gt = _mm256_cmp_ps(v, m, _CMP_GT_OQ);                                                          \
    m = _mm256_blendv_ps(m, v, gt);                                                                \
    k = _mm256_blendv_ps(k, kv, gt);
                POOL_STEP(x + 8, k1)
                POOL_STEP(x + row, k2)
                POOL_STEP(x + row + 8, k3)
#undef POOL_STEP
                k = _mm256_blendv_ps(k4, k, _mm256_cmp_ps(m, zero, _CMP_GT_OQ));
                _mm256_storeu_ps(y, m);
                _mm256_storeu_si256((__m256i *)c, _mm256_castps_si256(k));
            }
        }
}

/* d8 (zeroed outside the windows by the caller) = the gradient at the conv's output of the
 * pooled gradient dp8: the unfused maxpool backward (0 + d at the maximum) then ReLU's mask */
N8_T static void unpool_block(float *d8, const float *dp8, const int32_t *code, const dt_n8_plan *q)
{
    const __m256 zero = _mm256_setzero_ps();
    const __m256i k0 = _mm256_set1_epi32(0), k1 = _mm256_set1_epi32(1);
    const __m256i k2 = _mm256_set1_epi32(2), k3 = _mm256_set1_epi32(3);
    const size_t row = (size_t)q->OW * 8;
    for (int oc = 0; oc < q->OC; oc++)
        for (int ph = 0; ph < q->PH; ph++) {
            float *x = d8 + ((size_t)oc * q->P + (size_t)2 * ph * q->OW) * 8;
            const float *y = dp8 + ((size_t)oc * q->PP + (size_t)ph * q->PW) * 8;
            const int32_t *c = code + ((size_t)oc * q->PP + (size_t)ph * q->PW) * 8;
            for (int pw = 0; pw < q->PW; pw++, x += 16, y += 8, c += 8) {
                const __m256 d = _mm256_add_ps(zero, _mm256_loadu_ps(y));
                const __m256i k = _mm256_loadu_si256((const __m256i *)c);
                _mm256_storeu_ps(x,
                                 _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(k, k0)), d));
                _mm256_storeu_ps(x + 8,
                                 _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(k, k1)), d));
                _mm256_storeu_ps(x + row,
                                 _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(k, k2)), d));
                _mm256_storeu_ps(x + row + 8,
                                 _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(k, k3)), d));
            }
        }
}

/* off[t] for t < K, then copies of off[K - 1] up to n */
static void tap_offsets(int32_t *off, int n, const dt_n8_plan *q)
{
    int t = 0;
    for (int c = 0; c < q->C; c++)
        for (int kh = 0; kh < q->KH; kh++)
            for (int kw = 0; kw < q->KW; kw++)
                off[t++] = ((c * q->Hp + kh) * q->Wp + kw) * 8;
    for (; t < n; t++)
        off[t] = off[q->K - 1];
}

/* The forward of every block; with code, ReLU + 2x2 max pool of each block before its transpose
 * (pout is then the pooled output). */
static void forward_impl(const dt_n8_plan *q, float *out, int32_t *code, const float *inp,
                         const float *weight, const float *bias, int N, float *ws)
{
    DT_ASSERT(N >= 1);
    int32_t *off = (int32_t *)(ws + q->off);
    float *wr = ws + q->wr, *bp = ws + q->bias, *x8 = ws + q->x8, *o8 = ws + q->o8;
    const int K = q->K, fc = q->fc;
    tap_offsets(off, K, q);
    /* wr[(c0 + i)*K + t*fc ... ]: tile c0 holds [t][fc] */
    for (int c0 = 0; c0 < q->OCf; c0 += fc)
        for (int t = 0; t < K; t++)
            for (int i = 0; i < fc; i++)
                wr[(size_t)c0 * K + (size_t)t * fc + i] =
                    c0 + i < q->OC ? weight[(size_t)(c0 + i) * K + t] : 0.0f;
    for (int c = 0; c < q->OCf; c++)
        bp[c] = bias && c < q->OC ? bias[c] : 0.0f;
    const size_t plane = (size_t)q->C * q->Hp * q->Wp * 8;
    const size_t HW = (size_t)q->H * q->W, P = (size_t)q->P, PP = (size_t)q->PP;
    memset(x8, 0, plane * sizeof *x8);
    for (int n0 = 0; n0 < N; n0 += 8) {
        const int nv = N - n0 < 8 ? N - n0 : 8;
        to_lanes(x8 + ((size_t)q->pad * q->Wp + q->pad) * 8, (size_t)q->Hp * q->Wp * 8,
                 (size_t)q->Wp * 8, inp + (size_t)n0 * q->C * HW, (size_t)q->C * HW, HW,
                 (size_t)q->W, q->C, q->H, q->W, nv);
        fwd_block(o8, x8, off, wr, bp, q);
        if (code) {
            float *p8 = ws + q->p8;
            relu_pool_block(p8, code + (size_t)n0 * q->OC * PP, o8, q);
            from_lanes(out + (size_t)n0 * q->OC * PP, (size_t)q->OC * PP, PP, 0, p8, PP * 8, 0,
                       q->OC, 1, q->PP, nv, 0);
        } else {
            from_lanes(out + (size_t)n0 * q->OC * P, (size_t)q->OC * P, P, 0, o8, P * 8, 0, q->OC,
                       1, q->P, nv, 0);
        }
    }
}

void dt_conv_n8_forward(const dt_n8_plan *q, float *out, const float *inp, const float *weight,
                        const float *bias, int N, float *ws)
{
    forward_impl(q, out, NULL, inp, weight, bias, N, ws);
}

void dt_conv_n8_relu_pool_forward(const dt_n8_plan *q, float *pout, int32_t *code, const float *inp,
                                  const float *weight, const float *bias, int N, float *ws)
{
    DT_ASSERT(q->PP >= 1);
    forward_impl(q, pout, code, inp, weight, bias, N, ws);
}

/* sum of the 8 double lanes, pairwise */
static double lanes8(const double *d)
{
    return ((d[0] + d[1]) + (d[2] + d[3])) + ((d[4] + d[5]) + (d[6] + d[7]));
}

N8_T static void bias_block(double *acc, const float *d8, int OC, int P)
{
    for (int c = 0; c < OC; c++) {
        const float *d = d8 + (size_t)c * P * 8;
        __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
        int p = 0;
        for (; p + 2 <= P; p += 2) {
            a = _mm256_add_ps(a, _mm256_loadu_ps(d + (size_t)p * 8));
            b = _mm256_add_ps(b, _mm256_loadu_ps(d + (size_t)p * 8 + 8));
        }
        if (p < P)
            a = _mm256_add_ps(a, _mm256_loadu_ps(d + (size_t)p * 8));
        a = _mm256_add_ps(a, b);
        double *r = acc + (size_t)c * 8;
        _mm256_storeu_pd(
            r, _mm256_add_pd(_mm256_loadu_pd(r), _mm256_cvtps_pd(_mm256_castps256_ps128(a))));
        _mm256_storeu_pd(r + 4, _mm256_add_pd(_mm256_loadu_pd(r + 4),
                                              _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1))));
    }
}

/* The backward of every block, from dout or (code != NULL) from the pooled gradient dpout */
static void backward_impl(const dt_n8_plan *q, float *dinp, float *dweight, float *dbias,
                          const float *dout, const int32_t *code, const float *inp,
                          const float *weight, int N, int accum, float *ws)
{
    DT_ASSERT(N >= 1 && dweight);
    int32_t *off = (int32_t *)(ws + q->off);
    float *wx = ws + q->wx, *x8 = ws + q->x8, *d8 = ws + q->o8, *dx8 = ws + q->dx8;
    double *acc = (double *)(((uintptr_t)(ws + q->acc) + 7) & ~(uintptr_t)7);
    double *bacc = acc + (size_t)q->OCw * q->Kw * 8;
    const int K = q->K, OC = q->OC;
    const int nt = q->Kw > q->Kx ? q->Kw : q->Kx;
    tap_offsets(off, nt, q);
    if (dinp) /* wx[t0*OC + oc*4 + j] = weight[oc][t0 + j] (0 past K) */
        for (int t0 = 0; t0 < q->Kx; t0 += 4)
            for (int oc = 0; oc < OC; oc++)
                for (int j = 0; j < 4; j++)
                    wx[(size_t)t0 * OC + (size_t)oc * 4 + j] =
                        t0 + j < K ? weight[(size_t)oc * K + t0 + j] : 0.0f;
    memset(acc, 0, ((size_t)q->OCw * q->Kw + (size_t)OC) * 8 * sizeof *acc);
    const size_t plane = (size_t)q->C * q->Hp * q->Wp * 8;
    const size_t HW = (size_t)q->H * q->W, P = (size_t)q->P;
    const size_t lcs = (size_t)q->Hp * q->Wp * 8, lrs = (size_t)q->Wp * 8;
    const size_t interior = ((size_t)q->pad * q->Wp + q->pad) * 8;
    memset(x8, 0, plane * sizeof *x8);
    /* d8's padded channels (OC..OCw) stay zero */
    memset(d8, 0, (size_t)q->OCw * P * 8 * sizeof *d8);
    for (int n0 = 0; n0 < N; n0 += 8) {
        const int nv = N - n0 < 8 ? N - n0 : 8;
        to_lanes(x8 + interior, lcs, lrs, inp + (size_t)n0 * q->C * HW, (size_t)q->C * HW, HW,
                 (size_t)q->W, q->C, q->H, q->W, nv);
        if (code) {
            const size_t PP = (size_t)q->PP;
            float *dp8 = ws + q->p8;
            to_lanes(dp8, PP * 8, 0, dout + (size_t)n0 * OC * PP, (size_t)OC * PP, PP, 0, OC, 1,
                     q->PP, nv);
            unpool_block(d8, dp8, code + (size_t)n0 * OC * PP, q);
        } else {
            to_lanes(d8, P * 8, 0, dout + (size_t)n0 * OC * P, (size_t)OC * P, P, 0, OC, 1, q->P,
                     nv);
        }
        dw_block(acc, d8, x8, off, q);
        if (dbias)
            bias_block(bacc, d8, OC, q->P);
        if (dinp) {
            memset(dx8, 0, plane * sizeof *dx8);
            dx_block(dx8, d8, off, wx, q);
            from_lanes(dinp + (size_t)n0 * q->C * HW, (size_t)q->C * HW, HW, (size_t)q->W,
                       dx8 + interior, lcs, lrs, q->C, q->H, q->W, nv, accum);
        }
    }
    for (int oc = 0; oc < OC; oc++)
        for (int t = 0; t < K; t++)
            dweight[(size_t)oc * K + t] = (float)lanes8(acc + ((size_t)oc * q->Kw + t) * 8);
    if (dbias)
        for (int oc = 0; oc < OC; oc++)
            dbias[oc] = (float)lanes8(bacc + (size_t)oc * 8);
}

void dt_conv_n8_backward(const dt_n8_plan *q, float *dinp, float *dweight, float *dbias,
                         const float *dout, const float *inp, const float *weight, int N, int accum,
                         float *ws)
{
    backward_impl(q, dinp, dweight, dbias, dout, NULL, inp, weight, N, accum, ws);
}

void dt_conv_n8_relu_pool_backward(const dt_n8_plan *q, float *dinp, float *dweight, float *dbias,
                                   const float *dpout, const int32_t *code, const float *inp,
                                   const float *weight, int N, int accum, float *ws)
{
    DT_ASSERT(q->PP >= 1 && code);
    backward_impl(q, dinp, dweight, dbias, dpout, code, inp, weight, N, accum, ws);
}

#else /* not x86-64 GCC: never dispatched */

int dt_conv_n8_cpu(void) { return 0; }

void dt_conv_n8_forward(const dt_n8_plan *q, float *out, const float *inp, const float *weight,
                        const float *bias, int N, float *ws)
{
    (void)q, (void)out, (void)inp, (void)weight, (void)bias, (void)N, (void)ws;
    DT_ASSERT(!"dt_conv_n8_forward without AVX2");
}

void dt_conv_n8_backward(const dt_n8_plan *q, float *dinp, float *dweight, float *dbias,
                         const float *dout, const float *inp, const float *weight, int N, int accum,
                         float *ws)
{
    (void)q, (void)dinp, (void)dweight, (void)dbias, (void)dout, (void)inp, (void)weight;
    (void)N, (void)accum, (void)ws;
    DT_ASSERT(!"dt_conv_n8_backward without AVX2");
}

void dt_conv_n8_relu_pool_forward(const dt_n8_plan *q, float *pout, int32_t *code, const float *inp,
                                  const float *weight, const float *bias, int N, float *ws)
{
    (void)q, (void)pout, (void)code, (void)inp, (void)weight, (void)bias, (void)N, (void)ws;
    DT_ASSERT(!"dt_conv_n8_relu_pool_forward without AVX2");
}

void dt_conv_n8_relu_pool_backward(const dt_n8_plan *q, float *dinp, float *dweight, float *dbias,
                                   const float *dpout, const int32_t *code, const float *inp,
                                   const float *weight, int N, int accum, float *ws)
{
    (void)q, (void)dinp, (void)dweight, (void)dbias, (void)dpout, (void)code, (void)inp;
    (void)weight, (void)N, (void)accum, (void)ws;
    DT_ASSERT(!"dt_conv_n8_relu_pool_backward without AVX2");
}
#endif
