/*
 * isa/elem.c - the `elem` kernel family (kernels/elem.h), written once over vf (isa/vec.h) and
 * compiled once per instruction set by the Makefile.
 *
 * Each loop runs whole vectors of DT_W lanes, then the tail in scalar code that computes the
 * lane's expression exactly (same operations, same order): the lane count changes no result, so
 * every ISA gives the bits the scalar loops of dtrain before issue 12 gave. The reductions keep
 * their scalar order (BatchNorm's 4 double lanes, dt_fsum's 8 float lanes): the compiler
 * vectorizes them for the ISA without reassociating.
 */
#include "kernels/isa/vec.h"

#include "kernels/elem.h"
#include "kernels/fsum.h"
#include "kernels/layer_kernels.h"

/* lane-wise m ? a : +0.0f (m: all-ones or zero lanes) */
DT_KINL vf keep(vi m, vf a) { return (vf)(m & (vi)a); }

static void relu_forward(float *out, const float *inp, long n)
{
    long i = 0;
    for (; i + DT_W <= n; i += DT_W)
        vf_store(out + i, vf_max(vf_load(inp + i), vf_zero()));
    for (; i < n; i++)
        out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

/* x rounded to bfloat16 (nearest even on the upper 16 bits, a carry into the exponent is right,
 * up to infinity; NaN kept): round_bf16's rounding, one value */
DT_KINL float round1_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    const uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    u = (u & 0x7fffffffu) > 0x7f800000u ? u : r;
    memcpy(&x, &u, sizeof u);
    return x;
}

/* v rounded to bfloat16 when rnd (round_bf16's rounding) */
DT_KINL vf round_if(vf v, int rnd)
{
    if (rnd) {
        vu u;
        memcpy(&u, &v, sizeof u);
        u = vu_round_bf16(u);
        memcpy(&v, &u, sizeof v);
    }
    return v;
}

/* the incoming gradient as the backward entries read it (elem.h's rnd) */
DT_KINL vf load_g(const float *p, int rnd) { return round_if(vf_load(p), rnd); }
DT_KINL float load1_g(const float *p, int rnd) { return rnd ? round1_bf16(*p) : *p; }

/* A stored activation a backward reads (out, x, ro below): float32 values (h 0), or (h 1) the
 * same values as their bf16 copy (net_act.h), widened as they are read: the same floats. The
 * kernels below take it as p + h, each entry with h fixed (inlined: the loops specialized). */
DT_KINL vf ld_a(const void *p, size_t i, int h)
{
    return h ? vf_load_h((const uint16_t *)p + i) : vf_load((const float *)p + i);
}
DT_KINL float ld1_a(const void *p, size_t i, int h)
{
    return h ? f_of_h(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}
/* p + off values (NULL stays NULL) */
DT_KINL const void *at_a(const void *p, size_t off, int h)
{
    if (!p)
        return NULL;
    return h ? (const void *)((const uint16_t *)p + off) : (const void *)((const float *)p + off);
}

/* PyTorch's threshold_backward: the gradient at exactly 0 is 0 */
DT_KINL void relu_bwd(float *dinp, const float *dout, const void *out, int h, long n, int accum,
                      int rnd)
{
    long i = 0;
    if (accum) {
        for (; i + DT_W <= n; i += DT_W)
            vf_store(dinp + i, vf_load(dinp + i) + keep(vf_gt(ld_a(out, (size_t)i, h), vf_zero()),
                                                        load_g(dout + i, rnd)));
        for (; i < n; i++)
            dinp[i] += ld1_a(out, (size_t)i, h) > 0.0f ? load1_g(dout + i, rnd) : 0.0f;
    } else {
        for (; i + DT_W <= n; i += DT_W)
            vf_store(dinp + i,
                     keep(vf_gt(ld_a(out, (size_t)i, h), vf_zero()), load_g(dout + i, rnd)));
        for (; i < n; i++)
            dinp[i] = ld1_a(out, (size_t)i, h) > 0.0f ? load1_g(dout + i, rnd) : 0.0f;
    }
}

static void relu_backward(float *dinp, const float *dout, const float *out, long n, int accum,
                          int rnd)
{
    relu_bwd(dinp, dout, out, 0, n, accum, rnd);
}

static void relu_backward_h(float *dinp, const float *dout, const uint16_t *out, long n, int accum,
                            int rnd)
{
    relu_bwd(dinp, dout, out, 1, n, accum, rnd);
}

static void add_forward(float *out, const float *a, const float *b, long n, int rnd)
{
    long i = 0;
    for (; i + DT_W <= n; i += DT_W)
        vf_store(out + i, round_if(vf_load(a + i) + vf_load(b + i), rnd));
    for (; i < n; i++)
        out[i] = rnd ? round1_bf16(a[i] + b[i]) : a[i] + b[i];
}

static void add_backward(float *dinp, const float *dout, long n, int accum, int rnd)
{
    if (!accum && !rnd) {
        if (dinp != dout) /* the same memory: a gradient written in place (net.c) */
            memmove(dinp, dout, (size_t)n * sizeof *dinp);
        return;
    }
    long i = 0;
    if (accum) {
        for (; i + DT_W <= n; i += DT_W)
            vf_store(dinp + i, vf_load(dinp + i) + load_g(dout + i, rnd));
        for (; i < n; i++)
            dinp[i] += load1_g(dout + i, rnd);
    } else { /* rounded: dinp may be dout itself (in place), each value read before it is written */
        for (; i + DT_W <= n; i += DT_W)
            vf_store(dinp + i, load_g(dout + i, 1));
        for (; i < n; i++)
            dinp[i] = round1_bf16(dout[i]);
    }
}

static void norm_u8(float *dst, const uint8_t *src, size_t n, float mean, float std)
{
    const vf m = vf_set1(mean), s = vf_set1(std), k = vf_set1(255.0f);
    size_t i = 0;
    for (; i + DT_W <= n; i += DT_W) {
        const vf x = vf_load_u8(src + i);
        vf_store(dst + i, (x / k - m) / s);
    }
    for (; i < n; i++)
        dst[i] = ((float)src[i] / 255.0f - mean) / std;
}

/* multiply by 0 rather than select, like torch (NaN/inf inputs stay NaN when dropped) */
static void mask_apply(float *out, const uint8_t *mask, const float *inp, long n, float scale,
                       int accum)
{
    const vf s = vf_set1(scale);
    long i = 0;
    for (; i + DT_W <= n; i += DT_W) {
        const vf v = vf_load(inp + i) * (vf_load_u8(mask + i) * s);
        vf_store(out + i, accum ? vf_load(out + i) + v : v);
    }
    for (; i < n; i++) {
        const float v = inp[i] * ((float)mask[i] * scale);
        out[i] = accum ? out[i] + v : v;
    }
}

static void gap_forward(float *out, const float *inp, size_t planes, int HW)
{
    for (size_t p = 0; p < planes; p++)
        out[p] = (float)(dt_fsum(inp + p * (size_t)HW, (size_t)HW) / HW);
}

static void gap_backward(float *dinp, const float *dout, size_t planes, int HW, int accum)
{
    for (size_t p = 0; p < planes; p++) {
        const float g = dout[p] / (float)HW;
        const vf gv = vf_set1(g);
        float *dx = dinp + p * (size_t)HW;
        int i = 0;
        for (; i + DT_W <= HW; i += DT_W)
            vf_store(dx + i, accum ? vf_load(dx + i) + gv : gv);
        for (; i < HW; i++)
            dx[i] = accum ? dx[i] + g : g;
    }
}

/* The BatchNorm sums' 4 double lanes (the order of every ISA: lane j takes the elements 4i + j,
 * the tail lane 0, then (l0 + l1) + (l2 + l3)) as one vd4 (vec.h), so that each step is one
 * vector operation on every ISA (the scalar lanes this replaces compiled to scalar code): the
 * same operations on the same values in the same order, the same bits. */
DT_KINL void fold4(const vd4 *a, double *s) { *s += vd4_fold(*a); }

/* For each of G <= BN_GROUP planes x[g] of n values (G a constant at every call: the loops unroll):
 * s[g] += sum x, ss[g] += sum x^2, each plane in its own 4 double lanes. One plane keeps only its
 * two chains of additions in flight, which bounds the loop (resnet20's 16 x 32 x 32 planes: 7.9
 * values a ns on the Zen 5); bn_sums takes BN_GROUP channels' planes at once, each summed as it
 * is alone, so the same bits. */
#define BN_GROUP 4
DT_KINL void sum_sumsq(const float *const *x, int G, size_t n, double *s, double *ss)
{
    vd4 a[BN_GROUP], b[BN_GROUP];
    for (int g = 0; g < G; g++)
        a[g] = b[g] = (vd4){0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int g = 0; g < G; g++) {
            const vd4 v = ld4d(x[g] + i);
            a[g] += v;
            b[g] += v * v;
        }
    for (int g = 0; g < G; g++) {
        for (size_t j = i; j < n; j++) {
            double v = x[g][j];
            a[g][0] += v;
            b[g][0] += v * v;
        }
        fold4(&a[g], &s[g]);
        fold4(&b[g], &ss[g]);
    }
}

/* s += sum dy, sxy += sum dy * x over n values, as sum_sumsq sums one plane */
DT_KINL void sum_dot(const float *dy, const float *x, size_t n, double *s, double *sxy)
{
    vd4 a = {0}, b = {0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const vd4 g = ld4d(dy + i);
        a += g;
        b += g * ld4d(x + i);
    }
    for (; i < n; i++) {
        double g = dy[i];
        a[0] += g;
        b[0] += g * x[i];
    }
    fold4(&a, s);
    fold4(&b, sxy);
}

/* sum_dot of relu_backward's gradient, ro > 0 ? dy : +0 (ro the fused ReLU's output), fp32 values
 * only: the mask taken on the widened values (a float compares with 0 as its exact double does,
 * and +0.0f widens to +0.0), so the same bits as sum_dot_g's buffer at no pass through L1. One
 * plane: the chains of additions, not the loads, bound it (relu's buffer made it 1.8x sum_dot).
 * Not folded into sum_dot as an optional mask: GCC 12 stops with an internal compiler error
 * (convert_mode_scalar) on the generic ISA's 4-lane build of the masked select under a branch. */
DT_KINL void sum_dot_relu(const float *dy, const float *ro, const float *x, size_t n, double *s,
                          double *sxy)
{
    typedef long long vl4 __attribute__((vector_size(4 * sizeof(long long))));
    const vd4 zero = {0};
    vd4 a = zero, b = zero;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const vd4 g = (vd4)((ld4d(ro + i) > zero) & (vl4)ld4d(dy + i));
        a += g;
        b += g * ld4d(x + i);
    }
    for (; i < n; i++) {
        double g = ro[i] > 0.0f ? dy[i] : 0.0f;
        a[0] += g;
        b[0] += g * x[i];
    }
    fold4(&a, s);
    fold4(&b, sxy);
}

/* sum_dot of the gradient the backward reads (load_g's, then relu_backward's mask ro > 0 ? g : +0
 * with ro the fused ReLU's output, or no mask: ro NULL) without writing it to memory: the values
 * a chunk at a time into a buffer in L1 (those expressions), summed in sum_dot's order. ro and x
 * as ld_a reads them (h: their bf16 copies; x then widened a chunk at a time into L1 too). */
DT_KINL void sum_dot_g(const float *dy, const void *ro, const void *x, int h, size_t n, double *s,
                       double *sxy, int rnd)
{
    enum { CHUNK = 512 }; /* a multiple of 4 and of every W */
    float g[CHUNK] __attribute__((aligned(64)));
    float xs[CHUNK] __attribute__((aligned(64))); /* h: x's chunk */
    vd4 a = {0}, b = {0};
    const size_t n4 = n / 4 * 4;
    size_t i = 0;
    while (i < n4) {
        const size_t m = n4 - i < CHUNK ? n4 - i : CHUNK;
        size_t k = 0;
        if (ro) {
            for (; k + DT_W <= m; k += DT_W)
                vf_store(g + k,
                         keep(vf_gt(ld_a(ro, i + k, h), vf_zero()), load_g(dy + i + k, rnd)));
            for (; k < m; k++)
                g[k] = ld1_a(ro, i + k, h) > 0.0f ? load1_g(dy + i + k, rnd) : 0.0f;
        } else {
            for (; k + DT_W <= m; k += DT_W)
                vf_store(g + k, load_g(dy + i + k, rnd));
            for (; k < m; k++)
                g[k] = load1_g(dy + i + k, rnd);
        }
        const float *xc = (const float *)x + i;
        if (h) {
            for (k = 0; k + DT_W <= m; k += DT_W)
                vf_store(xs + k, ld_a(x, i + k, 1));
            for (; k < m; k++)
                xs[k] = ld1_a(x, i + k, 1);
            xc = xs;
        }
        for (k = 0; k < m; k += 4) {
            const vd4 v = ld4d(g + k);
            a += v;
            b += v * ld4d(xc + k);
        }
        i += m;
    }
    for (; i < n; i++) {
        double v = !ro || ld1_a(ro, i, h) > 0.0f ? load1_g(dy + i, rnd) : 0.0f;
        a[0] += v;
        b[0] += v * ld1_a(x, i, h);
    }
    fold4(&a, s);
    fold4(&b, sxy);
}

static void bn_sums(double *sum, double *sumsq, const float *inp, int N, int C, int HW, int c0,
                    int c1)
{
    int c = c0;
    for (; c + BN_GROUP <= c1; c += BN_GROUP) {
        double s[BN_GROUP] = {0}, ss[BN_GROUP] = {0};
        for (int n = 0; n < N; n++) {
            const float *x[BN_GROUP];
            for (int g = 0; g < BN_GROUP; g++)
                x[g] = inp + ((size_t)n * C + c + g) * HW;
            sum_sumsq(x, BN_GROUP, (size_t)HW, s, ss);
        }
        for (int g = 0; g < BN_GROUP; g++) {
            sum[c + g] = s[g];
            sumsq[c + g] = ss[g];
        }
    }
    for (; c < c1; c++) {
        double s = 0.0, ss = 0.0;
        for (int n = 0; n < N; n++) {
            const float *x = inp + ((size_t)n * C + c) * HW;
            sum_sumsq(&x, 1, (size_t)HW, &s, &ss);
        }
        sum[c] = s;
        sumsq[c] = ss;
    }
}

DT_KINL void bn_dots_a(double *sum, double *sxy, const float *dy, const void *x, const void *ro,
                       int h, int N, int C, int HW, int c0, int c1, int rnd)
{
    for (int c = c0; c < c1; c++) {
        double s = 0.0, sx = 0.0;
        for (int n = 0; n < N; n++) {
            const size_t off = ((size_t)n * C + c) * HW;
            if (ro && !rnd && !h)
                sum_dot_relu(dy + off, (const float *)ro + off, (const float *)x + off, (size_t)HW,
                             &s, &sx);
            else if (ro || rnd || h)
                sum_dot_g(dy + off, at_a(ro, off, h), at_a(x, off, h), h, (size_t)HW, &s, &sx, rnd);
            else
                sum_dot(dy + off, (const float *)x + off, (size_t)HW, &s, &sx);
        }
        sum[c] = s;
        sxy[c] = sx;
    }
}

static void bn_dots(double *sum, double *sxy, const float *dy, const float *x, const float *ro,
                    int N, int C, int HW, int c0, int c1, int rnd)
{
    bn_dots_a(sum, sxy, dy, x, ro, 0, N, C, HW, c0, c1, rnd);
}

static void bn_dots_h(double *sum, double *sxy, const float *dy, const uint16_t *x,
                      const uint16_t *ro, int N, int C, int HW, int c0, int c1, int rnd)
{
    bn_dots_a(sum, sxy, dy, x, ro, 1, N, C, HW, c0, c1, rnd);
}

static void bn_affine(float *y, const float *x, int N, int C, int HW, int c, float mean, float a,
                      float b, int flags, const void *res)
{
    const vf mv = vf_set1(mean), av = vf_set1(a), bv = vf_set1(b);
    const int rnd = (flags & DT_BN_ROUND) != 0;
    for (int n = 0; n < N; n++) {
        const size_t off = ((size_t)n * C + c) * HW;
        float *yo = y + off;
        const float *xo = x + off;
        int i = 0;
        if (flags & DT_BN_ADD) { /* then add_forward's, then relu_forward's expressions */
            const int h = (flags & DT_BN_RES16) != 0; /* res: its bf16 copy, widened (ld_a) */
            const void *r = at_a(res, off, h);
            for (; i + DT_W <= HW; i += DT_W) {
                const vf v = round_if((vf_load(xo + i) - mv) * av + bv, rnd);
                vf_store(yo + i, vf_max(round_if(v + ld_a(r, (size_t)i, h), rnd), vf_zero()));
            }
            for (; i < HW; i++) {
                float v = (xo[i] - mean) * a + b;
                v = rnd ? round1_bf16(v) : v;
                v = v + ld1_a(r, (size_t)i, h);
                v = rnd ? round1_bf16(v) : v;
                yo[i] = v > 0.0f ? v : 0.0f;
            }
            continue;
        }
        if (flags & DT_BN_RELU) { /* then relu_forward's expressions on the same values */
            for (; i + DT_W <= HW; i += DT_W)
                vf_store(yo + i,
                         round_if(vf_max((vf_load(xo + i) - mv) * av + bv, vf_zero()), rnd));
            for (; i < HW; i++) {
                const float v = (xo[i] - mean) * a + b;
                yo[i] = v > 0.0f ? (rnd ? round1_bf16(v) : v) : 0.0f;
            }
            continue;
        }
        for (; i + DT_W <= HW; i += DT_W)
            vf_store(yo + i, round_if((vf_load(xo + i) - mv) * av + bv, rnd));
        for (; i < HW; i++) {
            const float v = (xo[i] - mean) * a + b;
            yo[i] = rnd ? round1_bf16(v) : v;
        }
    }
}

DT_KINL void bn_backward_a(float *dx, const float *dy, const void *x, const void *ro, int h, int N,
                           int C, int HW, int c, float k, float mean_dy, float mean, float slope,
                           int accum, int rnd)
{
    const vf kv = vf_set1(k), mdy = vf_set1(mean_dy), mv = vf_set1(mean), sv = vf_set1(slope);
    for (int n = 0; n < N; n++) {
        const size_t off = ((size_t)n * C + c) * HW;
        float *dxo = dx + off;
        const float *dyo = dy + off;
        const void *xo = at_a(x, off, h), *roo = at_a(ro, off, h);
        int i = 0;
        for (; i + DT_W <= HW; i += DT_W) {
            vf g = load_g(dyo + i, rnd);
            if (roo) /* relu_backward's gradient, as it computes it */
                g = keep(vf_gt(ld_a(roo, (size_t)i, h), vf_zero()), g);
            const vf v = kv * (g - mdy - (ld_a(xo, (size_t)i, h) - mv) * sv);
            vf_store(dxo + i, accum ? vf_load(dxo + i) + v : v);
        }
        for (; i < HW; i++) {
            const float g = !roo || ld1_a(roo, (size_t)i, h) > 0.0f ? load1_g(dyo + i, rnd) : 0.0f;
            const float v = k * (g - mean_dy - (ld1_a(xo, (size_t)i, h) - mean) * slope);
            dxo[i] = accum ? dxo[i] + v : v;
        }
    }
}

static void bn_backward(float *dx, const float *dy, const float *x, const float *ro, int N, int C,
                        int HW, int c, float k, float mean_dy, float mean, float slope, int accum,
                        int rnd)
{
    bn_backward_a(dx, dy, x, ro, 0, N, C, HW, c, k, mean_dy, mean, slope, accum, rnd);
}

static void bn_backward_h(float *dx, const float *dy, const uint16_t *x, const uint16_t *ro, int N,
                          int C, int HW, int c, float k, float mean_dy, float mean, float slope,
                          int accum, int rnd)
{
    bn_backward_a(dx, dy, x, ro, 1, N, C, HW, c, k, mean_dy, mean, slope, accum, rnd);
}

/* ---- the lane layout (layer.h's dt_net.lanes: a block of DT_W images as [C][HW][DT_W]) ----
 * The per-image sums of one block, each image's in the order its NCHW entry above sums it: lane
 * l of vector accumulator j is image l's double lane j (pixels 4i + j, the tail pixels lane 0),
 * folded as vd4_fold folds, and 0.0 + the fold as bn_images's one-image calls give. So a block's
 * sums are bitwise those of its images' planes in NCHW. */
typedef double vdw __attribute__((vector_size(DT_W * sizeof(double))));

/* a macro: a vector of doubles returned by value changes the ABI without AVX (-Wpsabi) */
#define widen(v) __builtin_convertvector((v), vdw)

/* sum[l*C + c] = 0.0 + sum of image l's plane c, sumsq the same of x^2, c < C */
static void bn_sums_l(double *sum, double *sumsq, const float *inp, int C, int HW)
{
    const size_t n4 = (size_t)HW / 4 * 4;
    for (int c = 0; c < C; c++) {
        const float *x = inp + (size_t)c * HW * DT_W;
        vdw a[4] = {{0}}, b[4] = {{0}};
        size_t i = 0;
        for (; i < n4; i += 4)
            for (int k = 0; k < 4; k++) {
                const vdw v = widen(vf_load(x + (i + k) * DT_W));
                a[k] += v;
                b[k] += v * v;
            }
        for (; i < (size_t)HW; i++) {
            const vdw v = widen(vf_load(x + i * DT_W));
            a[0] += v;
            b[0] += v * v;
        }
        const vdw s = (a[0] + a[1]) + (a[2] + a[3]), ss = (b[0] + b[1]) + (b[2] + b[3]);
        for (int l = 0; l < DT_W; l++) {
            sum[(size_t)l * C + c] = 0.0 + s[l];
            sumsq[(size_t)l * C + c] = 0.0 + ss[l];
        }
    }
}

/* bn_dots_a on one block: sum[l*C + c] = 0.0 + sum dy, sxy[l*C + c] = 0.0 + sum dy * x of image
 * l's plane c, dy as sum_dot_g reads it (ro's mask, rnd), x and ro as ld_a reads them */
DT_KINL void bn_dots_la(double *sum, double *sxy, const float *dy, const void *x, const void *ro,
                        int h, int C, int HW, int rnd)
{
    const size_t n4 = (size_t)HW / 4 * 4;
    for (int c = 0; c < C; c++) {
        const size_t off = (size_t)c * HW * DT_W;
        vdw a[4] = {{0}}, b[4] = {{0}};
        /* pixel i's lane k = i % 4 (the tail's 0), k a constant in each step: the accumulators
         * stay in registers */
#define DOT_STEP(i, k)                                                                             \
    do {                                                                                           \
        const size_t e = off + (i)*DT_W;                                                           \
        vf g = load_g(dy + e, rnd);                                                                \
        if (ro)                                                                                    \
            g = keep(vf_gt(ld_a(ro, e, h), vf_zero()), g);                                         \
        const vdw gv = widen(g), xv = widen(ld_a(x, e, h));                                        \
        a[k] += gv;                                                                                \
        b[k] += gv * xv;                                                                           \
    } while (0)
        size_t i = 0;
        for (; i < n4; i += 4) {
            DOT_STEP(i, 0);
            DOT_STEP(i + 1, 1);
            DOT_STEP(i + 2, 2);
            DOT_STEP(i + 3, 3);
        }
        for (; i < (size_t)HW; i++)
            DOT_STEP(i, 0);
#undef DOT_STEP
        const vdw s = (a[0] + a[1]) + (a[2] + a[3]), sx = (b[0] + b[1]) + (b[2] + b[3]);
        for (int l = 0; l < DT_W; l++) {
            sum[(size_t)l * C + c] = 0.0 + s[l];
            sxy[(size_t)l * C + c] = 0.0 + sx[l];
        }
    }
}

static void bn_dots_l(double *sum, double *sxy, const float *dy, const float *x, const float *ro,
                      int C, int HW, int rnd)
{
    bn_dots_la(sum, sxy, dy, x, ro, 0, C, HW, rnd);
}

static void bn_dots_lh(double *sum, double *sxy, const float *dy, const uint16_t *x,
                       const uint16_t *ro, int C, int HW, int rnd)
{
    bn_dots_la(sum, sxy, dy, x, ro, 1, C, HW, rnd);
}

/* gap_forward of one block: out[l*C + c] = (float)(sum of image l's plane c / HW), the sum in
 * dt_fsum's order (8 float lanes over runs of 256, then the tail one by one) per image */
static void gap_forward_l(float *out, const float *inp, int C, int HW)
{
    const size_t n = (size_t)HW;
    for (int c = 0; c < C; c++) {
        const float *x = inp + (size_t)c * n * DT_W;
        vdw total = {0};
        size_t i = 0;
        while (i + 8 <= n) {
            vf acc[8];
            for (int j = 0; j < 8; j++)
                acc[j] = vf_zero();
            const size_t end = i + 256 <= n ? i + 256 : n - (n - i) % 8;
            for (; i < end; i += 8)
                for (int j = 0; j < 8; j++)
                    acc[j] += vf_load(x + (i + (size_t)j) * DT_W);
            for (int j = 0; j < 8; j++)
                total += widen(acc[j]);
        }
        for (; i < n; i++)
            total += widen(vf_load(x + i * DT_W));
        for (int l = 0; l < DT_W; l++)
            out[(size_t)l * C + c] = (float)(total[l] / HW);
    }
}

/* gap_backward of one block: image l's plane c (=|+=) dout[l*C + c] / (float)HW */
static void gap_backward_l(float *dinp, const float *dout, int C, int HW, int accum)
{
    for (int c = 0; c < C; c++) {
        float g[DT_W];
        for (int l = 0; l < DT_W; l++)
            g[l] = dout[(size_t)l * C + c] / (float)HW;
        const vf gv = vf_load(g);
        float *dx = dinp + (size_t)c * HW * DT_W;
        for (size_t i = 0; i < (size_t)HW * DT_W; i += DT_W)
            vf_store(dx + i, accum ? vf_load(dx + i) + gv : gv);
    }
}

/* round to nearest even on the upper 16 bits (a carry into the exponent is right, up to
 * infinity); NaN kept */
static void round_bf16(float *x, size_t n)
{
    size_t i = 0;
    for (; i + DT_W <= n; i += DT_W) {
        vu u;
        memcpy(&u, x + i, sizeof u);
        u = vu_round_bf16(u);
        memcpy(x + i, &u, sizeof u);
    }
    for (; i < n; i++)
        x[i] = round1_bf16(x[i]);
}

/* F16C's VCVTPS2PH (round to nearest even) and back: IEEE's conversion, bitwise
 * dt_kelem_round_fp16_1 */
static void round_fp16(float *x, size_t n)
{
    size_t i = 0;
#if DT_W == 16 && defined(__AVX512F__)
    for (; i + 16 <= n; i += 16) {
        const __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm512_storeu_ps(x + i, _mm512_cvtph_ps(h));
    }
#elif (DT_W == 8 || DT_W == 16) && defined(__F16C__)
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(h));
    }
#endif
    for (; i < n; i++)
        x[i] = dt_kelem_round_fp16_1(x[i]);
}

const struct dt_kelem DT_KFN(dt_kelem) = {
    .relu_forward = relu_forward,
    .relu_backward = relu_backward,
    .relu_backward_h = relu_backward_h,
    .norm_u8 = norm_u8,
    .add_forward = add_forward,
    .add_backward = add_backward,
    .mask_apply = mask_apply,
    .gap_forward = gap_forward,
    .gap_backward = gap_backward,
    .gap_forward_l = gap_forward_l,
    .gap_backward_l = gap_backward_l,
    .bn_sums_l = bn_sums_l,
    .bn_dots_l = bn_dots_l,
    .bn_dots_lh = bn_dots_lh,
    .bn_sums = bn_sums,
    .bn_dots = bn_dots,
    .bn_dots_h = bn_dots_h,
    .bn_affine = bn_affine,
    .bn_backward = bn_backward,
    .bn_backward_h = bn_backward_h,
    .round_bf16 = round_bf16,
    .round_fp16 = round_fp16,
};
