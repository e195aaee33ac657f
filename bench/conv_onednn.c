/*
 * conv_onednn.c - dtrain's conv kernels against oneDNN's (Debian's libdnnl, the library PyTorch's
 * CPU convolutions come from) on every conv shape of the built-in models, 1 thread, batch N: which
 * one wins, per layer and per model, in fp32 and in bf16 (the brief's rule: a hand-written kernel
 * only where it beats the well-kept library for that shape on that CPU).
 *
 *   conv_onednn [N]       (default 128; built and run by bench/run.sh when libdnnl-dev is there)
 *
 * Per shape, ms per call (forward + backward: input gradient, unless the layer reads the data, and
 * weight + bias gradient), thread CPU time, median of 5 calls after one warm-up:
 * - dtrain: what training runs (fp32: the plan's path, lanes or gemm; bf16: the bf16 kernels where
 *   they take the shape), NCHW float32 in and out, as dtrain's arena holds activations;
 * - oneDNN in dtrain's layout: the same NCHW float32 tensors, reordered into the layouts oneDNN's
 *   primitives ask for and back (inputs, weights, outputs, gradients; the weights in bf16 for the
 *   bf16 primitives), reorders counted: what a drop-in oneDNN call would cost dtrain today;
 * - oneDNN blocked: its primitives alone on tensors already in its blocked layouts (nChw16c and
 *   the like; "any" memory formats), no reorder but the weights' (from the optimizer's float32
 *   copy, every step) and where two of its own primitives disagree on a format: what it would cost
 *   if dtrain kept its activations in oneDNN's layout between layers.
 * bf16 primitives: bf16 source, weights and output gradient, float32 output, input gradient and
 * weight gradient (dtrain's bf16 kernels take and give the same). A primitive oneDNN has only as
 * its reference implementation (no kernel for this CPU: bf16 on CPUs without AVX-512) is "n/a".
 *
 * Built against build/libdtrain.a with the Makefile's CFLAGS and LDLIBS plus -ldnnl -lgomp.
 * oneDNN is built with OpenMP here; omp_set_num_threads(1) keeps it on the calling thread.
 */
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "common.h"
#include "conv_bench.h"
#include "kernels/isa.h"

void omp_set_num_threads(int n); /* libgomp; no omp.h needed */

static dnnl_engine_t eng;
static dnnl_stream_t strm;

static void check(dnnl_status_t s, const char *what)
{
    if (s != dnnl_success) {
        fprintf(stderr, "conv_onednn: %s failed (dnnl status %d)\n", what, (int)s);
        exit(1);
    }
}

/* float32 in [-0.5, 0.5), or its bf16 (truncated: only speed is measured) */
static void fill_mem(dnnl_memory_t m, unsigned *seed)
{
    const dnnl_memory_desc_t *md;
    void *h;
    check(dnnl_memory_get_memory_desc(m, &md), "dnnl_memory_get_memory_desc");
    check(dnnl_memory_get_data_handle(m, &h), "dnnl_memory_get_data_handle");
    const size_t bytes = dnnl_memory_desc_get_size(md);
    if (md->data_type == dnnl_bf16) {
        uint16_t *u = h;
        for (size_t i = 0; i < bytes / 2; i++) {
            float f;
            fill(&f, 1, seed);
            uint32_t b;
            memcpy(&b, &f, sizeof b);
            u[i] = (uint16_t)(b >> 16);
        }
    } else {
        fill(h, bytes / sizeof(float), seed);
    }
}

static dnnl_memory_t mem(const dnnl_memory_desc_t *md, unsigned *seed)
{
    dnnl_memory_t m;
    check(dnnl_memory_create(&m, md, eng, DNNL_MEMORY_ALLOCATE), "dnnl_memory_create");
    fill_mem(m, seed);
    return m;
}

static dnnl_memory_t plain(int nd, const dnnl_dims_t d, dnnl_format_tag_t tag, unsigned *seed)
{
    dnnl_memory_desc_t md;
    check(dnnl_memory_desc_init_by_tag(&md, nd, d, dnnl_f32, tag), "dnnl_memory_desc_init_by_tag");
    return mem(&md, seed);
}

/* one primitive call with its arguments */
typedef struct {
    dnnl_primitive_t p;
    dnnl_exec_arg_t a[5];
    int n;
} call;

enum { MAXC = 16 };

/* a sequence of calls: a forward or a backward */
typedef struct {
    call c[MAXC];
    int n;
} seq;

static void add_call(seq *s, dnnl_primitive_t p, int n, const dnnl_exec_arg_t *a)
{
    call *c = &s->c[s->n++];
    c->p = p;
    c->n = n;
    memcpy(c->a, a, (size_t)n * sizeof *a);
}

/* a reorder of src into dst's layout (and type), unless both descriptors are the same */
static void add_reorder(seq *s, dnnl_memory_t src, dnnl_memory_t dst)
{
    const dnnl_memory_desc_t *a, *b;
    check(dnnl_memory_get_memory_desc(src, &a), "dnnl_memory_get_memory_desc");
    check(dnnl_memory_get_memory_desc(dst, &b), "dnnl_memory_get_memory_desc");
    if (dnnl_memory_desc_equal(a, b))
        return;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t p;
    check(dnnl_reorder_primitive_desc_create(&pd, a, eng, b, eng, NULL), "reorder");
    check(dnnl_primitive_create(&p, pd), "dnnl_primitive_create (reorder)");
    dnnl_primitive_desc_destroy(pd);
    const dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}};
    add_call(s, p, 2, args);
}

static void run_seq(const seq *s)
{
    for (int i = 0; i < s->n; i++)
        check(dnnl_primitive_execute(s->c[i].p, strm, s->c[i].n, s->c[i].a), "execute");
    check(dnnl_stream_wait(strm), "dnnl_stream_wait");
}

static void free_seq(seq *s)
{
    for (int i = 0; i < s->n; i++)
        dnnl_primitive_destroy(s->c[i].p);
    s->n = 0;
}

/* what one precision's oneDNN primitives cost: t[0] forward, t[1] backward, blocked (layout 0)
 * and in dtrain's NCHW float32 layout (layout 1); ok = 0 where oneDNN has no kernel */
typedef struct {
    double t[2][2];
    int ok;
    char impl[64];
} dnnl_result;

/* fwd / bwd of both layouts: warm-up, then REPS timed calls of each sequence */
static void time_seqs(dnnl_result *r, seq q[2][2])
{
    for (int lay = 0; lay < 2; lay++)
        for (int d = 0; d < 2; d++) {
            double v[REPS];
            run_seq(&q[lay][d]);
            for (int k = 0; k < REPS; k++) {
                double t0 = now();
                run_seq(&q[lay][d]);
                v[k] = now() - t0;
            }
            r->t[lay][d] = median(v);
        }
}

static int is_ref(dnnl_primitive_desc_t pd)
{
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    return !impl || !strncmp(impl, "ref", 3);
}

static const dnnl_memory_desc_t *qmd(dnnl_primitive_desc_t pd, dnnl_query_t what)
{
    return dnnl_primitive_desc_query_md(pd, what, 0);
}

static void any(dnnl_memory_desc_t *md, int nd, const dnnl_dims_t d, dnnl_data_type_t t)
{
    check(dnnl_memory_desc_init_by_tag(md, nd, d, t, dnnl_format_tag_any), "memory desc (any)");
}

/* one shape's oneDNN primitives and tensors (theirs, and dtrain's NCHW float32 ones) */
typedef struct {
    dnnl_primitive_desc_t fpd, bdpd, bwpd; /* bdpd NULL: the layer reads the data */
    dnnl_memory_desc_t bia, dbia;
    dnnl_memory_t m[17]; /* the enum below */
} shape_prims;

enum { SRC, WEI, BIA, DST, WSRC, WDDST, DWEI, DBIA, DSRC, BWEI, BDDST, X, W, Y, DY, DX, DW };

/* the three primitive descriptors of s; 0 when oneDNN has only reference code for one of them */
static int make_pds(shape_prims *sp, const conv_shape *s, int N, int b16, char *impl, size_t n)
{
    const int OH = dt_conv_out_size(s->H, s->K, s->stride, s->pad);
    const int OW = dt_conv_out_size(s->W, s->K, s->stride, s->pad);
    const dnnl_dims_t sd = {N, s->C, s->H, s->W}, wd = {s->OC, s->C, s->K, s->K}, bd = {s->OC},
                      dd = {N, s->OC, OH, OW}, st = {s->stride, s->stride}, pd = {s->pad, s->pad};
    const dnnl_data_type_t lo = b16 ? dnnl_bf16 : dnnl_f32; /* the products' operands */
    dnnl_memory_desc_t src, wei, dst, dsrc, dwei, ddst;
    any(&src, 4, sd, lo);
    any(&wei, 4, wd, lo);
    any(&dst, 4, dd, dnnl_f32);
    check(dnnl_memory_desc_init_by_tag(&sp->bia, 1, bd, dnnl_f32, dnnl_x), "bias desc");
    sp->dbia = sp->bia;
    dnnl_convolution_desc_t cd, bdd, bwd;
    check(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct,
                                             &src, &wei, s->bias ? &sp->bia : NULL, &dst, st, pd,
                                             pd),
          "forward desc");
    sp->fpd = sp->bdpd = sp->bwpd = NULL;
    if (dnnl_primitive_desc_create(&sp->fpd, &cd, NULL, eng, NULL) != dnnl_success) {
        sp->fpd = NULL;
        return 0;
    }
    const char *name = NULL;
    dnnl_primitive_desc_query(sp->fpd, dnnl_query_impl_info_str, 0, &name);
    snprintf(impl, n, "%s", name ? name : "?");
    if (!s->first) {
        any(&dsrc, 4, sd, dnnl_f32);
        any(&ddst, 4, dd, lo);
        check(dnnl_convolution_backward_data_desc_init(&bdd, dnnl_convolution_direct, &dsrc, &wei,
                                                       &ddst, st, pd, pd),
              "backward data desc");
        check(dnnl_primitive_desc_create(&sp->bdpd, &bdd, NULL, eng, sp->fpd), "backward data pd");
    }
    any(&dwei, 4, wd, dnnl_f32);
    any(&ddst, 4, dd, lo);
    check(dnnl_convolution_backward_weights_desc_init(&bwd, dnnl_convolution_direct, &src, &dwei,
                                                      s->bias ? &sp->dbia : NULL, &ddst, st, pd,
                                                      pd),
          "backward weights desc");
    check(dnnl_primitive_desc_create(&sp->bwpd, &bwd, NULL, eng, sp->fpd), "backward weights pd");
    return !is_ref(sp->fpd) && !(sp->bdpd && is_ref(sp->bdpd)) && !is_ref(sp->bwpd);
}

static void make_mems(shape_prims *sp, const conv_shape *s, int N)
{
    const int OH = dt_conv_out_size(s->H, s->K, s->stride, s->pad);
    const int OW = dt_conv_out_size(s->W, s->K, s->stride, s->pad);
    const dnnl_dims_t sd = {N, s->C, s->H, s->W}, wd = {s->OC, s->C, s->K, s->K},
                      dd = {N, s->OC, OH, OW};
    unsigned seed = 11u;
    dnnl_memory_t *m = sp->m;
    memset(m, 0, sizeof sp->m);
    m[SRC] = mem(qmd(sp->fpd, dnnl_query_src_md), &seed);
    m[WEI] = mem(qmd(sp->fpd, dnnl_query_weights_md), &seed);
    m[BIA] = mem(&sp->bia, &seed);
    m[DST] = mem(qmd(sp->fpd, dnnl_query_dst_md), &seed);
    m[WSRC] = mem(qmd(sp->bwpd, dnnl_query_src_md), &seed);
    m[WDDST] = mem(qmd(sp->bwpd, dnnl_query_diff_dst_md), &seed);
    m[DWEI] = mem(qmd(sp->bwpd, dnnl_query_diff_weights_md), &seed);
    m[DBIA] = mem(&sp->dbia, &seed);
    if (sp->bdpd) {
        m[DSRC] = mem(qmd(sp->bdpd, dnnl_query_diff_src_md), &seed);
        m[BWEI] = mem(qmd(sp->bdpd, dnnl_query_weights_md), &seed);
        m[BDDST] = mem(qmd(sp->bdpd, dnnl_query_diff_dst_md), &seed);
    }
    m[X] = plain(4, sd, dnnl_nchw, &seed);
    m[W] = plain(4, wd, dnnl_oihw, &seed);
    m[Y] = plain(4, dd, dnnl_nchw, &seed);
    m[DY] = plain(4, dd, dnnl_nchw, &seed);
    m[DX] = plain(4, sd, dnnl_nchw, &seed);
    m[DW] = plain(4, wd, dnnl_oihw, &seed);
}

/* the forward and backward call sequences of both layouts (q[layout][direction]) */
static void make_seqs(seq q[2][2], const shape_prims *sp, const conv_shape *s, dnnl_primitive_t pf,
                      dnnl_primitive_t pbd, dnnl_primitive_t pbw)
{
    const dnnl_memory_t *m = sp->m;
    const dnnl_exec_arg_t fa[4] = {{DNNL_ARG_SRC, m[SRC]},
                                   {DNNL_ARG_WEIGHTS, m[WEI]},
                                   {DNNL_ARG_DST, m[DST]},
                                   {DNNL_ARG_BIAS, m[BIA]}};
    const dnnl_exec_arg_t da[3] = {
        {DNNL_ARG_DIFF_SRC, m[DSRC]}, {DNNL_ARG_WEIGHTS, m[BWEI]}, {DNNL_ARG_DIFF_DST, m[BDDST]}};
    const dnnl_exec_arg_t wa[4] = {{DNNL_ARG_SRC, m[WSRC]},
                                   {DNNL_ARG_DIFF_WEIGHTS, m[DWEI]},
                                   {DNNL_ARG_DIFF_DST, m[WDDST]},
                                   {DNNL_ARG_DIFF_BIAS, m[DBIA]}};
    memset(q, 0, 4 * sizeof q[0][0]);
    for (int lay = 0; lay < 2; lay++) {
        seq *f = &q[lay][0], *b = &q[lay][1];
        /* the weights every step from the optimizer's float32 copy, in both layouts */
        if (lay)
            add_reorder(f, m[X], m[SRC]);
        add_reorder(f, m[W], m[WEI]);
        add_call(f, pf, s->bias ? 4 : 3, fa);
        if (lay)
            add_reorder(f, m[DST], m[Y]);
        /* backward: the output gradient into the primitives' layouts (from NCHW, or from the
         * data primitive's layout into the weights primitive's when they differ) */
        if (pbd) {
            if (lay)
                add_reorder(b, m[DY], m[BDDST]);
            add_reorder(b, m[W], m[BWEI]);
            add_call(b, pbd, 3, da);
            if (lay)
                add_reorder(b, m[DSRC], m[DX]);
            add_reorder(b, lay ? m[DY] : m[BDDST], m[WDDST]);
        } else if (lay) {
            add_reorder(b, m[DY], m[WDDST]);
        }
        add_reorder(b, lay ? m[X] : m[SRC], m[WSRC]);
        add_call(b, pbw, s->bias ? 4 : 3, wa);
        if (lay)
            add_reorder(b, m[DWEI], m[DW]);
    }
}

static void onednn_shape(dnnl_result *r, const conv_shape *s, int N, int b16)
{
    shape_prims sp;
    r->ok = make_pds(&sp, s, N, b16, r->impl, sizeof r->impl);
    if (r->ok) {
        make_mems(&sp, s, N);
        dnnl_primitive_t pf, pbd = NULL, pbw;
        check(dnnl_primitive_create(&pf, sp.fpd), "dnnl_primitive_create");
        check(dnnl_primitive_create(&pbw, sp.bwpd), "dnnl_primitive_create");
        if (sp.bdpd)
            check(dnnl_primitive_create(&pbd, sp.bdpd), "dnnl_primitive_create");
        seq q[2][2];
        make_seqs(q, &sp, s, pf, pbd, pbw);
        time_seqs(r, q);
        /* the sequences own their reorders; the convolutions are shared, destroyed once */
        for (int lay = 0; lay < 2; lay++)
            for (int d = 0; d < 2; d++) {
                seq *sq = &q[lay][d];
                int k = 0;
                for (int i = 0; i < sq->n; i++)
                    if (sq->c[i].p != pf && sq->c[i].p != pbd && sq->c[i].p != pbw)
                        sq->c[k++] = sq->c[i];
                sq->n = k;
                free_seq(sq);
            }
        dnnl_primitive_destroy(pf);
        dnnl_primitive_destroy(pbw);
        if (pbd)
            dnnl_primitive_destroy(pbd);
        for (int i = 0; i < 17; i++)
            if (sp.m[i])
                dnnl_memory_destroy(sp.m[i]);
    }
    dnnl_primitive_desc_t pds[3] = {sp.fpd, sp.bdpd, sp.bwpd};
    for (int i = 0; i < 3; i++)
        if (pds[i])
            dnnl_primitive_desc_destroy(pds[i]);
}

/* dtrain's forward and backward of shape s: t[0], t[1] (medians); 0 where its bf16 kernels do not
 * take the shape */
static int dtrain_shape(double *t, const conv_shape *s, int N, int b16)
{
    dt_conv_opts o = {DT_CONV_AUTO, dt_kern_get()};
    if (b16 && !dt_bf16conv_ok(N, s->C, s->H, s->W, s->OC, s->K, s->K, s->stride, s->pad))
        return 0;
    time_shape(t, &o, b16, s, N);
    return 1;
}

static void cell(char *buf, size_t n, int ok, const double *t)
{
    if (ok)
        snprintf(buf, n, "%6.2f+%-6.2f", 1e3 * t[0], 1e3 * t[1]);
    else
        snprintf(buf, n, "%13s", "n/a");
}

static const char *winner(int okd, const double *d, int oko, const double *o)
{
    if (!okd)
        return oko ? "oneDNN" : "-";
    if (!oko)
        return "dtrain";
    const double a = d[0] + d[1], b = o[0] + o[1];
    return a <= b ? "dtrain" : "oneDNN";
}

int main(int argc, char **argv)
{
    openblas_set_num_threads(1);
    omp_set_num_threads(1);
    const int N = argc > 1 ? atoi(argv[1]) : 128;
    if (N < 1) {
        fprintf(stderr, "conv_onednn: N must be positive\n");
        return 1;
    }
    check(dnnl_engine_create(&eng, dnnl_cpu, 0), "dnnl_engine_create");
    check(dnnl_stream_create(&strm, eng, dnnl_stream_default_flags), "dnnl_stream_create");
    const dnnl_version_t *v = dnnl_version();
    printf("conv kernels: dtrain (ISA %s) against oneDNN %d.%d.%d, N = %d, 1 thread; ms per call "
           "(thread CPU time, median of %d), forward+backward\n",
           dt_kern_get()->name, v->major, v->minor, v->patch, N, REPS);
    printf("| model | layer | count | fp32 dtrain | fp32 oneDNN (NCHW) | fp32 oneDNN (blocked) | "
           "bf16 dtrain | bf16 oneDNN (NCHW) | bf16 oneDNN (blocked) | faster in NCHW fp32, "
           "bf16 | oneDNN kernels fp32, bf16 |\n");
    printf("|---|---|--:|--:|--:|--:|--:|--:|--:|---|---|\n");
    const size_t nshapes = sizeof shapes / sizeof shapes[0];
    /* per model: sums x count of [precision][dtrain, oneDNN NCHW, oneDNN blocked] */
    double tot[2][3] = {{0}};
    int tok[2][3] = {{1, 1, 1}, {1, 1, 1}};
    for (size_t i = 0; i < nshapes; i++) {
        const conv_shape *s = &shapes[i];
        double d[2][2];
        int okd[2];
        dnnl_result r[2];
        char c[2][3][32];
        for (int p = 0; p < 2; p++) {
            okd[p] = dtrain_shape(d[p], s, N, p);
            onednn_shape(&r[p], s, N, p);
            cell(c[p][0], sizeof c[p][0], okd[p], d[p]);
            cell(c[p][1], sizeof c[p][1], r[p].ok, r[p].t[1]);
            cell(c[p][2], sizeof c[p][2], r[p].ok, r[p].t[0]);
            const double *sums[3] = {d[p], r[p].t[1], r[p].t[0]};
            const int oks[3] = {okd[p], r[p].ok, r[p].ok};
            for (int k = 0; k < 3; k++) {
                tot[p][k] += s->count * (sums[k][0] + sums[k][1]) * oks[k];
                tok[p][k] &= oks[k];
            }
        }
        printf("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s, %s | %s, %s |\n", s->model,
               s->name, s->count, c[0][0], c[0][1], c[0][2], c[1][0], c[1][1], c[1][2],
               winner(okd[0], d[0], r[0].ok, r[0].t[1]), winner(okd[1], d[1], r[1].ok, r[1].t[1]),
               r[0].ok ? r[0].impl : "-", r[1].ok ? r[1].impl : "-");
        if (i + 1 == nshapes || strcmp(shapes[i + 1].model, s->model)) {
            char t[2][3][24];
            for (int p = 0; p < 2; p++)
                for (int k = 0; k < 3; k++)
                    if (tok[p][k])
                        snprintf(t[p][k], sizeof t[p][k], "**%.1f**", 1e3 * tot[p][k]);
                    else
                        snprintf(t[p][k], sizeof t[p][k], "n/a");
            printf("| %s | all conv layers, ms per step | | %s | %s | %s | %s | %s | %s | | |\n",
                   s->model, t[0][0], t[0][1], t[0][2], t[1][0], t[1][1], t[1][2]);
            memset(tot, 0, sizeof tot);
            for (int p = 0; p < 2; p++)
                for (int k = 0; k < 3; k++)
                    tok[p][k] = 1;
        }
    }
    dnnl_stream_destroy(strm);
    dnnl_engine_destroy(eng);
    return 0;
}
