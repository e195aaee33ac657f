/*
 * lanes_conv.c - the loops of conv.c's im2col and direct paths, compiled once per ISA (isa/vec.h)
 * so that conv.c runs them with the vectors of the ISA in use (they were GCC target_clones,
 * chosen by the CPU whatever the kernel layer's choice). See conv.c for what each computes and
 * why; struct dt_kconvh (kernels/lanes.h) is their table.
 *
 * Their results are bitwise the same on every ISA: copies, single additions, and the direct
 * path's sums in 8-float vectors (direct_v8, whatever DT_W) in a fixed order, without FMA (plain
 * vector expressions never contract), so on the generic ISA too.
 */
#include <stdint.h>
#include <string.h>

#include "kernels/fsum.h"
#include "kernels/isa/vec.h"
#include "kernels/lanes.h"

/* d[0..n) = s[0..n), a vectorized loop kept from becoming a memcpy call (GCC's loop distribution;
 * glibc's inhibit_loop_to_libcall does the same). Two reasons: im2col copies rows of 8 to 32
 * floats, where the call overhead dominates; and glibc's memcpy (the "erms" rep-movsb path)
 * copies 4 KB blocks 3 to 7 times slower when destination and source are not equally aligned
 * (measured on Zen 3, glibc 2.36) - the usual case in im2col, whose blocks start at a shift of
 * the input plane. */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_LIBCALL __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define NO_LIBCALL
#endif
NO_LIBCALL static void copy_floats(float *restrict d, const float *restrict s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] = s[i];
}

/* rows x cols floats from src (rows ds floats apart) to dst (rows dd apart): one call for a whole
 * plane, the row loop inlined (the rows are short: 28 floats in lenet5) */
NO_LIBCALL static void copy_rows(float *restrict dst, size_t dd, const float *restrict src,
                                 size_t ds, int rows, int cols)
{
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < cols; i++)
            dst[r * dd + i] = src[r * ds + i];
}

/* dst[n][c][off + j] (+)= src[c][n*len + j] (+ bias[c]) (the inverse of conv.c's gather_planes) */
static void scatter_planes(float *restrict dst, const float *restrict src, int nb, int C, size_t S,
                           size_t off, size_t len, const float *bias, int accum)
{
    const size_t P = (size_t)nb * len;
    for (int n = 0; n < nb; n++)
        for (int c = 0; c < C; c++) {
            float *restrict d = dst + ((size_t)n * C + c) * S + off;
            const float *restrict s = src + c * P + n * len;
            if (accum) {
                for (size_t j = 0; j < len; j++)
                    d[j] += s[j];
            } else if (bias) {
                const float b = bias[c];
                for (size_t j = 0; j < len; j++)
                    d[j] = s[j] + b;
            } else {
                copy_floats(d, s, len);
            }
        }
}

static double row_sum(const float *x, size_t n) { return dt_fsum(x, n); }

/* 8 floats; loaded and stored with memcpy (unaligned). The generic ISA splits them in halves. */
typedef float direct_v8 __attribute__((vector_size(32)));
#define V8_LOAD(v, p) memcpy(&(v), (p), sizeof(direct_v8))
#define V8_STORE(p, v) memcpy((p), &(v), sizeof(direct_v8))

/* acc[j] = b + sum over the T taps of w[t] * pin[off[t] + j] for j in [0, L), L a multiple of
 * DT_CONV_DIRECT_LANES (32): a block of 32 outputs stays in 4 registers over all the taps */
static void direct_taps(float *restrict acc, const float *restrict pin, const size_t *restrict off,
                        const float *restrict w, int T, float b, size_t L)
{
    const direct_v8 bv = {b, b, b, b, b, b, b, b};
    for (size_t j0 = 0; j0 < L; j0 += DT_CONV_DIRECT_LANES) {
        direct_v8 a0 = bv, a1 = bv, a2 = bv, a3 = bv, x0, x1, x2, x3;
        for (int t = 0; t < T; t++) {
            const float *x = pin + off[t] + j0;
            const float wt = w[t];
            const direct_v8 wv = {wt, wt, wt, wt, wt, wt, wt, wt};
            V8_LOAD(x0, x);
            V8_LOAD(x1, x + 8);
            V8_LOAD(x2, x + 16);
            V8_LOAD(x3, x + 24);
            a0 += wv * x0;
            a1 += wv * x1;
            a2 += wv * x2;
            a3 += wv * x3;
        }
        V8_STORE(acc + j0, a0);
        V8_STORE(acc + j0 + 8, a1);
        V8_STORE(acc + j0 + 16, a2);
        V8_STORE(acc + j0 + 24, a3);
    }
}

/* direct_taps for two output channels at once (weights w0, w1, biases b0, b1, outputs acc0,
 * acc1): the input blocks are loaded once for both, and 8 independent sums hide the latency of
 * the additions */
static void direct_taps2(float *restrict acc0, float *restrict acc1, const float *restrict pin,
                         const size_t *restrict off, const float *restrict w0,
                         const float *restrict w1, int T, float b0, float b1, size_t L)
{
    const direct_v8 bv0 = {b0, b0, b0, b0, b0, b0, b0, b0};
    const direct_v8 bv1 = {b1, b1, b1, b1, b1, b1, b1, b1};
    for (size_t j0 = 0; j0 < L; j0 += DT_CONV_DIRECT_LANES) {
        direct_v8 a0 = bv0, a1 = bv0, a2 = bv0, a3 = bv0, x0, x1, x2, x3;
        direct_v8 c0 = bv1, c1 = bv1, c2 = bv1, c3 = bv1;
        for (int t = 0; t < T; t++) {
            const float *x = pin + off[t] + j0;
            const float u = w0[t], v = w1[t];
            const direct_v8 uv = {u, u, u, u, u, u, u, u}, vv = {v, v, v, v, v, v, v, v};
            V8_LOAD(x0, x);
            V8_LOAD(x1, x + 8);
            V8_LOAD(x2, x + 16);
            V8_LOAD(x3, x + 24);
            a0 += uv * x0;
            a1 += uv * x1;
            a2 += uv * x2;
            a3 += uv * x3;
            c0 += vv * x0;
            c1 += vv * x1;
            c2 += vv * x2;
            c3 += vv * x3;
        }
        V8_STORE(acc0 + j0, a0);
        V8_STORE(acc0 + j0 + 8, a1);
        V8_STORE(acc0 + j0 + 16, a2);
        V8_STORE(acc0 + j0 + 24, a3);
        V8_STORE(acc1 + j0, c0);
        V8_STORE(acc1 + j0 + 8, c1);
        V8_STORE(acc1 + j0 + 16, c2);
        V8_STORE(acc1 + j0 + 24, c3);
    }
}

/* out[t][0..8) += 8 lanes of the sums over [0, L) of d[i] * x_t[i] for the 3 taps t, x_t = pin +
 * off[t], L a multiple of DT_CONV_DIRECT_LANES (32): d is loaded once for the 3 taps, each tap
 * sums in 2 registers of 8 float lanes (over one image), added to double lanes */
static void direct_dot3(const float *restrict d, const float *restrict pin,
                        const size_t *restrict off, size_t L, double *restrict out)
{
    const float *restrict p0 = pin + off[0], *restrict p1 = pin + off[1],
                          *restrict p2 = pin + off[2];
    direct_v8 a0 = {0}, b0 = {0}, a1 = {0}, b1 = {0}, a2 = {0}, b2 = {0};
    direct_v8 d0, d1, d2, d3, x, y;
    for (size_t i = 0; i < L; i += DT_CONV_DIRECT_LANES) {
        V8_LOAD(d0, d + i);
        V8_LOAD(d1, d + i + 8);
        V8_LOAD(d2, d + i + 16);
        V8_LOAD(d3, d + i + 24);
#define DOT_TAP(a, b, p)                                                                           \
    V8_LOAD(x, p + i);                                                                             \
    V8_LOAD(y, p + i + 8);                                                                         \
    a += d0 * x;                                                                                   \
    b += d1 * y;                                                                                   \
    V8_LOAD(x, p + i + 16);                                                                        \
    V8_LOAD(y, p + i + 24);                                                                        \
    a += d2 * x;                                                                                   \
    b += d3 * y;
        DOT_TAP(a0, b0, p0)
        DOT_TAP(a1, b1, p1)
        DOT_TAP(a2, b2, p2)
#undef DOT_TAP
    }
    a0 += b0;
    a1 += b1;
    a2 += b2;
    for (int j = 0; j < 8; j++) {
        out[j] += a0[j];
        out[8 + j] += a1[j];
        out[16 + j] += a2[j];
    }
}

/* out[0..8) += 8 lanes of the sum of d[0..L), L a multiple of DT_CONV_DIRECT_LANES (32) */
static void direct_sum(const float *restrict d, size_t L, double *restrict out)
{
    direct_v8 a = {0}, b = {0}, x, y;
    for (size_t i = 0; i < L; i += DT_CONV_DIRECT_LANES) {
        V8_LOAD(x, d + i);
        V8_LOAD(y, d + i + 8);
        a += x;
        b += y;
        V8_LOAD(x, d + i + 16);
        V8_LOAD(y, d + i + 24);
        a += x;
        b += y;
    }
    a += b;
    for (int j = 0; j < 8; j++)
        out[j] += a[j];
}

/* named through a macro: see LANES_TABLE in isa/lanes.c */
#define CONVH_TABLE DT_KFN(dt_kconvh)
const struct dt_kconvh CONVH_TABLE = {
    .copy_floats = copy_floats,
    .copy_rows = copy_rows,
    .scatter_planes = scatter_planes,
    .row_sum = row_sum,
    .direct_taps = direct_taps,
    .direct_taps2 = direct_taps2,
    .direct_dot3 = direct_dot3,
    .direct_sum = direct_sum,
};
