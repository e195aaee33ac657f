/*
 * conv_dnnl.c - convolutions through oneDNN (conv_dnnl.h): primitives per chunk size, the
 * reorders between dtrain's NCHW float32 tensors and oneDNN's layouts, the chunks over the pool.
 *
 * Per chunk size n (DT_DNNL_CHUNK, and the batch's tail) one `set`: the forward, backward-data and
 * backward-weights primitives (oneDNN picks their layouts: "any"), the reorders in and out of
 * them, and the weights in the forward's and the backward-data's layouts (reordered once per call,
 * before the chunks, into one buffer every layer shares). Per set and pool thread one `tstate`: that thread's memory objects for the
 * oneDNN-layout buffers and its scratchpads (user mode: distinct primitives running at once on
 * different threads must not share oneDNN's global scratchpad), all pointed into the thread's
 * arena (shared by every layer), and its stream. The NCHW side of a reorder is a memory object of
 * the thread whose data handle is pointed at the chunk each call.
 */
#include "conv_dnnl.h"

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "isa.h"
#include "tpool.h"

void omp_set_num_threads(int n); /* libgomp (oneDNN's threading here); no omp.h needed */

static int backend = DT_CONV_BACKEND_AUTO;

/* A oneDNN call that fails here is a bug or an exhausted machine, not bad input: it is named and
 * every rank stops (dt_assert_fail's MPI_Abort), as for any failed assertion. */
static void ck(dnnl_status_t s, const char *what)
{
    if (s != dnnl_success) {
        fprintf(stderr, "dtrain: oneDNN %s: %s\n", what, dnnl_status2str(s));
        dt_assert_fail("the oneDNN call succeeded", __FILE__, __LINE__, what);
    }
}

void dt_dnnl_conv_set(int b)
{
    backend = b;
    static int capped;
    if (capped)
        return;
    capped = 1;
    /* oneDNN's kernels no wider than the table in use (the ranks' agreed ISA) */
    const dt_isa isa = dt_kern_get()->isa;
    dnnl_cpu_isa_t cap = isa == DT_ISA_AVX512BF16 ? dnnl_cpu_isa_avx512_core_bf16
                         : isa == DT_ISA_AVX512   ? dnnl_cpu_isa_avx512_core
                         : isa == DT_ISA_GENERIC  ? dnnl_cpu_isa_sse41
                                                  : dnnl_cpu_isa_avx2;
    dnnl_set_max_cpu_isa(cap); /* fails only once a primitive exists: then it is too late anyway */
}

int dt_dnnl_conv_backend(void) { return backend; }

const char *dt_dnnl_conv_backend_name(void)
{
    static const char *const names[] = {"auto", "dtrain", "onednn"};
    return names[backend];
}

int dt_dnnl_conv_wanted(int C, int KH, int KW, int bf16, int own_ok)
{
    if (backend == DT_CONV_BACKEND_ONEDNN)
        return 1;
    if (backend == DT_CONV_BACKEND_DTRAIN)
        return 0;
    const dt_kern *k = dt_kern_get();
    if (k->isa != DT_ISA_AVX512 && k->isa != DT_ISA_AVX512BF16)
        return 0; /* measured only there (bench/convs.sh) */
    if (bf16 && !k->bf16_native)
        return 0;
    return (long)C * KH * KW >= 1152 || (bf16 && !own_ok);
}

/* ---- primitives ---- */

typedef struct {
    dnnl_primitive_t p;
    dnnl_memory_desc_t scratch; /* its user-mode scratchpad */
} kprim;

/* The reorders and primitives of one set, by role; `md` the descriptors of the buffers. */
enum { R_X_SRC, R_DST_Y, R_DY_BD, R_DY_BW, R_X_WSRC, R_DSRC_DX, R_DW_PLAIN, R_W_FWD, R_W_BD, NR };
enum { P_FWD, P_BD, P_BW, NP };
enum { M_SRC, M_DST, M_BDDY, M_BWDY, M_WSRC, M_DSRC, M_DW, NM }; /* per thread, oneDNN layouts */

typedef struct {
    dnnl_stream_t strm;
    dnnl_memory_t m[NM];                 /* over the thread's arena */
    dnnl_memory_t x, y, dy, dx, dwp, db; /* NCHW / plain views, handles set per call */
    dnnl_memory_t scratch[NP + NR];      /* per primitive, over one part of the arena */
} tstate;

typedef struct {
    int n; /* images */
    kprim pr[NP];
    kprim ro[NR];
    dnnl_memory_desc_t md[NM], wfwd_md, wbd_md;
    size_t off[NM], off_scratch, off_tmp, need; /* bytes into a thread's arena */
    int dy_shared;                              /* M_BDDY and M_BWDY: one layout, one buffer */
    dnnl_memory_t wfwd, wbd, bias, wplain;      /* shared: weights per call, bias handle per call */
    tstate *ts[DT_TPOOL_MAX];
} set;

enum { MAXSETS = 4 };

struct dt_dnnl_conv {
    int C, H, W, OC, KH, KW, stride, pad, OH, OW, bias, bf16;
    dnnl_engine_t eng;
    dnnl_primitive_attr_t attr;
    set *sets[MAXSETS];
};

/* What every oneDNN conv shares, since layers run one at a time: each pool thread's arena (its
 * oneDNN-layout buffers, scratchpads and the accumulated input gradient's chunk: the largest any
 * layer needs, not their sum) and the chunks' partial weight (+ bias) gradients. Grown on the
 * first step that needs more; kept for the process (one net trains at a time). */
static struct {
    char *p;
    size_t size;
} arena[DT_TPOOL_MAX];
static float *part;
static size_t npart;

static char *arena_get(int thread, size_t need)
{
    if (arena[thread].size < need) {
        free(arena[thread].p);
        arena[thread].p = dt_xmalloc(need, 1);
        arena[thread].size = need;
    }
    return arena[thread].p;
}

static void desc(dnnl_memory_desc_t *md, int nd, const dnnl_dims_t d, dnnl_data_type_t t,
                 dnnl_format_tag_t tag)
{
    ck(dnnl_memory_desc_init_by_tag(md, nd, d, t, tag), "memory descriptor");
}

static int is_ref(dnnl_primitive_desc_t pd)
{
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    return !impl || !strncmp(impl, "ref", 3);
}

static void make_prim(kprim *k, dnnl_primitive_desc_t pd)
{
    ck(dnnl_primitive_create(&k->p, pd), "primitive");
    k->scratch = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
}

static void make_reorder(kprim *k, const dt_dnnl_conv *c, const dnnl_memory_desc_t *from,
                         const dnnl_memory_desc_t *to)
{
    dnnl_primitive_desc_t pd;
    ck(dnnl_reorder_primitive_desc_create(&pd, from, c->eng, to, c->eng, c->attr), "reorder");
    make_prim(k, pd);
    dnnl_primitive_desc_destroy(pd);
}

static const dnnl_memory_desc_t *qmd(dnnl_primitive_desc_t pd, dnnl_query_t q)
{
    return dnnl_primitive_desc_query_md(pd, q, 0);
}

static kprim *kp(set *s, int i) { return i < NP ? &s->pr[i] : &s->ro[i - NP]; }

/* A thread's arena: the forward's two buffers and the backward's over the same bytes, since a
 * layer's forward and backward never run at once; then the scratchpad, shared by every primitive
 * of the set; then a chunk's float32 input gradient (a backward that adds to it). Sets s->off[]
 * of the buffers (s->md, s->dy_shared) and returns where they end. */
static size_t buffer_offsets(set *s)
{
    size_t at = 0, end = 0;
    for (int i = 0; i < NM; i++) {
        if (i == M_BDDY)
            at = 0; /* the backward's buffers start over */
        if (i == M_BWDY && s->dy_shared) {
            s->off[i] = s->off[M_BDDY];
            continue;
        }
        s->off[i] = at;
        at += (dnnl_memory_desc_get_size(&s->md[i]) + 63) / 64 * 64;
        end = at > end ? at : end;
    }
    return end;
}

/* the set of n images, or NULL (no kernel but oneDNN's reference code) */
static set *set_new(dt_dnnl_conv *c, int n)
{
    /* One OpenMP thread before anything is created: oneDNN's kernels fix their thread count
     * (omp_get_max_threads() of the creating thread) when the primitive is made, and a later
     * omp_set_num_threads does not change it. The first layer's primitives were made on a thread
     * still at OpenMP's default (every core, or OMP_NUM_THREADS): that layer then ran on all of
     * them whatever `threads` said (resnet9's res1a: 2x faster at 1 rank, 5x slower at 2 ranks
     * on 2 cores), and its weight gradient's bits depended on OMP_NUM_THREADS. */
    omp_set_num_threads(1);
    const dnnl_dims_t sd = {n, c->C, c->H, c->W}, wd = {c->OC, c->C, c->KH, c->KW};
    const dnnl_dims_t dd = {n, c->OC, c->OH, c->OW}, bd = {c->OC};
    const dnnl_dims_t st = {c->stride, c->stride}, pd = {c->pad, c->pad};
    const dnnl_data_type_t lo = c->bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t src, wei, dst, bia, dsrc, dwei, ddst;
    desc(&src, 4, sd, lo, dnnl_format_tag_any);
    desc(&wei, 4, wd, lo, dnnl_format_tag_any);
    desc(&dst, 4, dd, dnnl_f32, dnnl_format_tag_any);
    desc(&bia, 1, bd, dnnl_f32, dnnl_x);
    dnnl_convolution_desc_t cd, bdd, bwd;
    ck(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct, &src,
                                          &wei, c->bias ? &bia : NULL, &dst, st, pd, pd),
       "convolution forward descriptor");
    desc(&dsrc, 4, sd, dnnl_f32, dnnl_format_tag_any);
    desc(&ddst, 4, dd, lo, dnnl_format_tag_any);
    ck(dnnl_convolution_backward_data_desc_init(&bdd, dnnl_convolution_direct, &dsrc, &wei, &ddst,
                                                st, pd, pd),
       "convolution backward data descriptor");
    desc(&dwei, 4, wd, dnnl_f32, dnnl_format_tag_any);
    ck(dnnl_convolution_backward_weights_desc_init(&bwd, dnnl_convolution_direct, &src, &dwei,
                                                   c->bias ? &bia : NULL, &ddst, st, pd, pd),
       "convolution backward weights descriptor");
    dnnl_primitive_desc_t fpd = NULL, bdpd = NULL, bwpd = NULL;
    set *s = NULL;
    if (dnnl_primitive_desc_create(&fpd, &cd, c->attr, c->eng, NULL) != dnnl_success ||
        is_ref(fpd) ||
        dnnl_primitive_desc_create(&bdpd, &bdd, c->attr, c->eng, fpd) != dnnl_success ||
        is_ref(bdpd) ||
        dnnl_primitive_desc_create(&bwpd, &bwd, c->attr, c->eng, fpd) != dnnl_success ||
        is_ref(bwpd))
        goto out;
    s = dt_xcalloc(1, sizeof *s);
    s->n = n;
    make_prim(&s->pr[P_FWD], fpd);
    make_prim(&s->pr[P_BD], bdpd);
    make_prim(&s->pr[P_BW], bwpd);
    s->md[M_SRC] = *qmd(fpd, dnnl_query_src_md);
    s->md[M_DST] = *qmd(fpd, dnnl_query_dst_md);
    s->md[M_BDDY] = *qmd(bdpd, dnnl_query_diff_dst_md);
    s->md[M_BWDY] = *qmd(bwpd, dnnl_query_diff_dst_md);
    s->md[M_WSRC] = *qmd(bwpd, dnnl_query_src_md);
    s->md[M_DSRC] = *qmd(bdpd, dnnl_query_diff_src_md);
    s->md[M_DW] = *qmd(bwpd, dnnl_query_diff_weights_md);
    /* the two backward primitives usually take the output gradient in one layout: one buffer and
     * one reorder then */
    s->dy_shared = dnnl_memory_desc_equal(&s->md[M_BDDY], &s->md[M_BWDY]);
    const size_t end = buffer_offsets(s);
    s->wfwd_md = *qmd(fpd, dnnl_query_weights_md);
    s->wbd_md = *qmd(bdpd, dnnl_query_weights_md);
    dnnl_memory_desc_t xs, ys, ws;
    desc(&xs, 4, sd, dnnl_f32, dnnl_nchw);
    desc(&ys, 4, dd, dnnl_f32, dnnl_nchw);
    desc(&ws, 4, wd, dnnl_f32, dnnl_oihw);
    make_reorder(&s->ro[R_X_SRC], c, &xs, &s->md[M_SRC]);
    make_reorder(&s->ro[R_DST_Y], c, &s->md[M_DST], &ys);
    make_reorder(&s->ro[R_DY_BD], c, &ys, &s->md[M_BDDY]);
    make_reorder(&s->ro[R_DY_BW], c, &ys, &s->md[M_BWDY]);
    make_reorder(&s->ro[R_X_WSRC], c, &xs, &s->md[M_WSRC]);
    make_reorder(&s->ro[R_DSRC_DX], c, &s->md[M_DSRC], &xs);
    make_reorder(&s->ro[R_DW_PLAIN], c, &s->md[M_DW], &ws);
    make_reorder(&s->ro[R_W_FWD], c, &ws, &s->wfwd_md);
    make_reorder(&s->ro[R_W_BD], c, &ws, &s->wbd_md);
    size_t most = 64;
    for (int i = 0; i < NP + NR; i++) {
        const size_t b = dnnl_memory_desc_get_size(&kp(s, i)->scratch);
        most = b > most ? b : most;
    }
    s->off_scratch = end;
    s->off_tmp = end + (most + 63) / 64 * 64;
    s->need = s->off_tmp + (size_t)n * c->C * c->H * c->W * sizeof(float);
    ck(dnnl_memory_create(&s->wfwd, &s->wfwd_md, c->eng, DNNL_MEMORY_NONE), "memory");
    ck(dnnl_memory_create(&s->wbd, &s->wbd_md, c->eng, DNNL_MEMORY_NONE), "memory");
    ck(dnnl_memory_create(&s->wplain, &ws, c->eng, DNNL_MEMORY_NONE), "memory");
    ck(dnnl_memory_create(&s->bias, &bia, c->eng, DNNL_MEMORY_NONE), "memory");
out:
    if (fpd)
        dnnl_primitive_desc_destroy(fpd);
    if (bdpd)
        dnnl_primitive_desc_destroy(bdpd);
    if (bwpd)
        dnnl_primitive_desc_destroy(bwpd);
    return s;
}

static void tstate_free(tstate *t)
{
    if (!t)
        return;
    for (int i = 0; i < NM; i++)
        dnnl_memory_destroy(t->m[i]);
    dnnl_memory_t v[] = {t->x, t->y, t->dy, t->dx, t->dwp, t->db};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        dnnl_memory_destroy(v[i]);
    for (int i = 0; i < NP + NR; i++)
        dnnl_memory_destroy(t->scratch[i]);
    dnnl_stream_destroy(t->strm);
    free(t);
}

static void set_free(set *s)
{
    if (!s)
        return;
    for (int i = 0; i < DT_TPOOL_MAX; i++)
        tstate_free(s->ts[i]);
    for (int i = 0; i < NP; i++)
        dnnl_primitive_destroy(s->pr[i].p);
    for (int i = 0; i < NR; i++)
        dnnl_primitive_destroy(s->ro[i].p);
    dnnl_memory_destroy(s->wfwd);
    dnnl_memory_destroy(s->wbd);
    dnnl_memory_destroy(s->wplain);
    dnnl_memory_destroy(s->bias);
    free(s);
}

/* thread `thread`'s state for set s, made on its first use (the first step) */
static tstate *tstate_get(const dt_dnnl_conv *c, set *s, int thread)
{
    tstate *t = s->ts[thread];
    if (t)
        return t;
    t = dt_xcalloc(1, sizeof *t);
    ck(dnnl_stream_create(&t->strm, c->eng, dnnl_stream_default_flags), "stream");
    for (int i = 0; i < NM; i++)
        ck(dnnl_memory_create(&t->m[i], &s->md[i], c->eng, DNNL_MEMORY_NONE), "memory");
    const dnnl_dims_t sd = {s->n, c->C, c->H, c->W}, dd = {s->n, c->OC, c->OH, c->OW};
    const dnnl_dims_t wd = {c->OC, c->C, c->KH, c->KW}, bd = {c->OC};
    dnnl_memory_desc_t xs, ys, ws, bs;
    desc(&xs, 4, sd, dnnl_f32, dnnl_nchw);
    desc(&ys, 4, dd, dnnl_f32, dnnl_nchw);
    desc(&ws, 4, wd, dnnl_f32, dnnl_oihw);
    desc(&bs, 1, bd, dnnl_f32, dnnl_x);
    ck(dnnl_memory_create(&t->x, &xs, c->eng, DNNL_MEMORY_NONE), "memory");
    ck(dnnl_memory_create(&t->dx, &xs, c->eng, DNNL_MEMORY_NONE), "memory");
    ck(dnnl_memory_create(&t->y, &ys, c->eng, DNNL_MEMORY_NONE), "memory");
    ck(dnnl_memory_create(&t->dy, &ys, c->eng, DNNL_MEMORY_NONE), "memory");
    ck(dnnl_memory_create(&t->dwp, &ws, c->eng, DNNL_MEMORY_NONE), "memory");
    ck(dnnl_memory_create(&t->db, &bs, c->eng, DNNL_MEMORY_NONE), "memory");
    for (int i = 0; i < NP + NR; i++)
        ck(dnnl_memory_create(&t->scratch[i], &kp(s, i)->scratch, c->eng, DNNL_MEMORY_NONE),
           "memory");
    s->ts[thread] = t;
    return t;
}

/* thread `thread`'s state for set s with its buffers pointed into the thread's arena; *tmp: the
 * arena's room for a chunk's float32 input gradient. Every oneDNN call of a thread comes after
 * this (OpenMP held to that thread here). */
static tstate *tstate_at(const dt_dnnl_conv *c, set *s, int thread, float **tmp)
{
    omp_set_num_threads(1); /* this thread's oneDNN calls stay on it */
    tstate *t = tstate_get(c, s, thread);
    char *base = arena_get(thread, s->need);
    for (int i = 0; i < NM; i++)
        ck(dnnl_memory_set_data_handle(t->m[i], base + s->off[i]), "memory handle");
    for (int i = 0; i < NP + NR; i++)
        ck(dnnl_memory_set_data_handle(t->scratch[i], base + s->off_scratch), "memory handle");
    if (tmp)
        *tmp = (float *)(void *)(base + s->off_tmp);
    return t;
}

/* runs primitive i of s on thread state t with the given arguments (+ its scratchpad) */
static void run(set *s, tstate *t, int i, int n, const dnnl_exec_arg_t *a)
{
    dnnl_exec_arg_t args[8];
    memcpy(args, a, (size_t)n * sizeof *a);
    args[n].arg = DNNL_ARG_SCRATCHPAD;
    args[n].memory = t->scratch[i];
    ck(dnnl_primitive_execute(kp(s, i)->p, t->strm, n + 1, args), "execute");
}

static void reorder(set *s, tstate *t, int r, dnnl_memory_t from, dnnl_memory_t to)
{
    const dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    run(s, t, NP + r, 2, a);
}

static void handle(dnnl_memory_t m, const void *p)
{
    ck(dnnl_memory_set_data_handle(m, (void *)p), "memory handle");
}

dt_dnnl_conv *dt_dnnl_conv_new(int C, int H, int W, int OC, int KH, int KW, int stride, int pad,
                               int bias, int bf16)
{
    dt_dnnl_conv *c = dt_xcalloc(1, sizeof *c);
    *c = (dt_dnnl_conv){.C = C,
                        .H = H,
                        .W = W,
                        .OC = OC,
                        .KH = KH,
                        .KW = KW,
                        .stride = stride,
                        .pad = pad,
                        .bias = bias,
                        .bf16 = bf16};
    c->OH = (H + 2 * pad - KH) / stride + 1;
    c->OW = (W + 2 * pad - KW) / stride + 1;
    ck(dnnl_engine_create(&c->eng, dnnl_cpu, 0), "engine");
    ck(dnnl_primitive_attr_create(&c->attr), "attributes");
    ck(dnnl_primitive_attr_set_scratchpad_mode(c->attr, dnnl_scratchpad_mode_user), "scratchpad");
    /* a full chunk's set now: whether oneDNN has a kernel for this shape at all */
    c->sets[0] = set_new(c, DT_DNNL_CHUNK);
    if (!c->sets[0]) {
        dt_dnnl_conv_free(c);
        return NULL;
    }
    return c;
}

void dt_dnnl_conv_free(dt_dnnl_conv *c)
{
    if (!c)
        return;
    for (int i = 0; i < MAXSETS; i++)
        set_free(c->sets[i]);
    dnnl_primitive_attr_destroy(c->attr);
    dnnl_engine_destroy(c->eng);
    free(c);
}

/* the set of n images: made on first use (a batch's tail); the oldest tail set gives way */
static set *set_for(dt_dnnl_conv *c, int n)
{
    for (int i = 0; i < MAXSETS; i++)
        if (c->sets[i] && c->sets[i]->n == n)
            return c->sets[i];
    int slot = 1;
    for (int i = 1; i < MAXSETS; i++)
        if (!c->sets[i]) {
            slot = i;
            break;
        }
    if (c->sets[slot]) { /* full: drop slot 1, shift the rest down */
        set_free(c->sets[1]);
        memmove(&c->sets[1], &c->sets[2], (MAXSETS - 2) * sizeof c->sets[0]);
        slot = MAXSETS - 1;
    }
    c->sets[slot] = set_new(c, n);
    DT_ASSERT(c->sets[slot]); /* the full chunk's set was made: the tail's kernel exists too */
    return c->sets[slot];
}

typedef struct {
    dt_dnnl_conv *c;
    set *full, *tail;
    int N;
    float *out, *dinp, *dweight, *dbias;
    const float *inp, *weight, *bias, *dout;
    int accum;
} job;

static set *chunk_set(const job *j, int i, int *n0, int *n)
{
    *n0 = i * DT_DNNL_CHUNK;
    *n = j->N - *n0 < DT_DNNL_CHUNK ? j->N - *n0 : DT_DNNL_CHUNK;
    return *n == DT_DNNL_CHUNK ? j->full : j->tail;
}

static void fwd_chunk(void *arg, int i, int thread)
{
    const job *j = arg;
    const dt_dnnl_conv *c = j->c;
    int n0, n;
    set *s = chunk_set(j, i, &n0, &n);
    tstate *t = tstate_at(c, s, thread, NULL);
    handle(t->x, j->inp + (size_t)n0 * c->C * c->H * c->W);
    reorder(s, t, R_X_SRC, t->x, t->m[M_SRC]);
    const dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, t->m[M_SRC]},
                                  {DNNL_ARG_WEIGHTS, s->wfwd},
                                  {DNNL_ARG_DST, t->m[M_DST]},
                                  {DNNL_ARG_BIAS, s->bias}};
    run(s, t, P_FWD, c->bias ? 4 : 3, a);
    handle(t->y, j->out + (size_t)n0 * c->OC * c->OH * c->OW);
    reorder(s, t, R_DST_Y, t->m[M_DST], t->y);
    ck(dnnl_stream_wait(t->strm), "stream wait");
}

/* The weights (float32 OIHW) in the forward's (fwd) or the backward-data's layout of the call's
 * sets (full, tail; either may be NULL), one after the other in one buffer that every layer
 * shares: a call reorders them first, and layers run one at a time. (One buffer per set and
 * layout was 52 MB of resnet9's 6.6 M weights, and twice that with a tail set.) */
static void weights_in(dt_dnnl_conv *c, set *full, set *tail, const float *weight, int fwd)
{
    static char *wbuf;
    static size_t wsize_have;
    set *ss[2] = {full, tail};
    size_t need = 0, off[2];
    for (int k = 0; k < 2; k++) {
        off[k] = need;
        if (ss[k])
            need +=
                (dnnl_memory_desc_get_size(fwd ? &ss[k]->wfwd_md : &ss[k]->wbd_md) + 63) / 64 * 64;
    }
    if (need > wsize_have) {
        free(wbuf);
        wbuf = dt_xmalloc(need, 1);
        wsize_have = need;
    }
    for (int k = 0; k < 2; k++) {
        set *s = ss[k];
        if (!s)
            continue;
        tstate *t = tstate_at(c, s, 0, NULL);
        handle(fwd ? s->wfwd : s->wbd, wbuf + off[k]);
        handle(s->wplain, weight);
        reorder(s, t, fwd ? R_W_FWD : R_W_BD, s->wplain, fwd ? s->wfwd : s->wbd);
        ck(dnnl_stream_wait(t->strm), "stream wait");
    }
}

static void sets_for(dt_dnnl_conv *c, int N, set **full, set **tail)
{
    *full = N >= DT_DNNL_CHUNK ? c->sets[0] : NULL;
    *tail = N % DT_DNNL_CHUNK ? set_for(c, N % DT_DNNL_CHUNK) : NULL;
}

void dt_dnnl_conv_forward(dt_dnnl_conv *c, float *out, const float *inp, const float *weight,
                          const float *bias, int N)
{
    job j = {.c = c, .N = N, .out = out, .inp = inp, .weight = weight, .bias = bias};
    sets_for(c, N, &j.full, &j.tail);
    weights_in(c, j.full, j.tail, weight, 1);
    if (bias) /* before the chunks: one memory object per set, read by every thread */
        for (int k = 0; k < 2; k++)
            if (k ? j.tail : j.full)
                handle((k ? j.tail : j.full)->bias, bias);
    dt_tpool_run((N + DT_DNNL_CHUNK - 1) / DT_DNNL_CHUNK, fwd_chunk, &j);
}

static size_t wsize(const dt_dnnl_conv *c) { return (size_t)c->OC * c->C * c->KH * c->KW; }

static void bwd_chunk(void *arg, int i, int thread)
{
    const job *j = arg;
    const dt_dnnl_conv *c = j->c;
    int n0, n;
    set *s = chunk_set(j, i, &n0, &n);
    float *tmp;
    tstate *t = tstate_at(c, s, thread, &tmp);
    const size_t xo = (size_t)n0 * c->C * c->H * c->W, yo = (size_t)n0 * c->OC * c->OH * c->OW;
    handle(t->dy, j->dout + yo);
    if (j->dinp) {
        reorder(s, t, R_DY_BD, t->dy, t->m[M_BDDY]);
        const dnnl_exec_arg_t a[3] = {{DNNL_ARG_DIFF_SRC, t->m[M_DSRC]},
                                      {DNNL_ARG_WEIGHTS, s->wbd},
                                      {DNNL_ARG_DIFF_DST, t->m[M_BDDY]}};
        run(s, t, P_BD, 3, a);
        const size_t nx = (size_t)n * c->C * c->H * c->W;
        handle(t->dx, j->accum ? tmp : j->dinp + xo);
        reorder(s, t, R_DSRC_DX, t->m[M_DSRC], t->dx);
        ck(dnnl_stream_wait(t->strm), "stream wait");
        if (j->accum)
            for (size_t k = 0; k < nx; k++)
                j->dinp[xo + k] += tmp[k];
    }
    if (!(j->dinp && s->dy_shared)) /* else the data primitive's copy is this one */
        reorder(s, t, R_DY_BW, t->dy, t->m[M_BWDY]);
    handle(t->x, j->inp + xo);
    reorder(s, t, R_X_WSRC, t->x, t->m[M_WSRC]);
    /* this chunk's partials: the weight gradient (plain), then the bias gradient */
    float *pw = part + (size_t)i * (wsize(c) + (size_t)c->OC);
    handle(t->db, pw + wsize(c));
    const dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, t->m[M_WSRC]},
                                  {DNNL_ARG_DIFF_WEIGHTS, t->m[M_DW]},
                                  {DNNL_ARG_DIFF_DST, t->m[M_BWDY]},
                                  {DNNL_ARG_DIFF_BIAS, t->db}};
    run(s, t, P_BW, c->bias ? 4 : 3, a);
    handle(t->dwp, pw);
    reorder(s, t, R_DW_PLAIN, t->m[M_DW], t->dwp);
    ck(dnnl_stream_wait(t->strm), "stream wait");
}

typedef struct {
    const dt_dnnl_conv *c;
    float *dweight, *dbias;
    int nc;
} sum_job;

enum { SUM_PART = 4096 };

/* dweight, dbias = the chunks' partials summed in chunk order, a range of SUM_PART values */
static void sum_chunk(void *arg, int r, int thread)
{
    (void)thread;
    const sum_job *j = arg;
    const size_t stride = wsize(j->c) + (size_t)j->c->OC;
    const size_t lo = (size_t)r * SUM_PART, hi = lo + SUM_PART < stride ? lo + SUM_PART : stride;
    const float *p = part;
    for (size_t k = lo; k < hi; k++) {
        float acc = p[k];
        for (int i = 1; i < j->nc; i++)
            acc += p[(size_t)i * stride + k];
        if (k < wsize(j->c))
            j->dweight[k] = acc;
        else if (j->dbias)
            j->dbias[k - wsize(j->c)] = acc;
    }
}

void dt_dnnl_conv_backward(dt_dnnl_conv *c, float *dinp, float *dweight, float *dbias,
                           const float *dout, const float *inp, const float *weight, int N,
                           int accum)
{
    const int nc = (N + DT_DNNL_CHUNK - 1) / DT_DNNL_CHUNK;
    const size_t stride = wsize(c) + (size_t)c->OC, need = (size_t)nc * stride;
    if (need > npart) { /* the first step (or a larger layer or batch) */
        free(part);
        part = dt_xmalloc(need, sizeof(float));
        npart = need;
    }
    job j = {.c = c, .N = N, .dinp = dinp, .dout = dout, .inp = inp, .accum = accum};
    sets_for(c, N, &j.full, &j.tail);
    if (dinp) {
        weights_in(c, j.full, j.tail, weight, 0);
    }
    dt_tpool_run(nc, bwd_chunk, &j);
    sum_job sj = {c, dweight, c->bias ? dbias : NULL, nc};
    dt_tpool_run((int)((stride + SUM_PART - 1) / SUM_PART), sum_chunk, &sj);
}

const char *dt_dnnl_describe(char *buf, int size)
{
    const dnnl_version_t *v = dnnl_version();
    snprintf(buf, (size_t)size, "oneDNN %d.%d.%d", v->major, v->minor, v->patch);
    return buf;
}
