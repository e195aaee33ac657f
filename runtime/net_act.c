/*
 * net_act.c - bf16 activation storage: bf16 copies in the arena, float32 slots shared by
 * activations whose live intervals do not overlap. See net_act.h.
 */
#include "net_act.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kernels/bf16.h"
#include "kernels/isa.h"
#include "kernels/tpool.h"
#include "lowp.h"

struct dt_net_act {
    uint16_t *h;      /* bf16 copies, layer after layer (max_batch x out_size each) */
    float *slots;     /* the float32 slots */
    size_t nh, nslot; /* their sizes (values) */
    size_t *h_off;    /* per layer: offset of its copy in h */
    int *copy;        /* per layer: 1 when a backward reads its output (it has a bf16 copy) */
    int *fcopy;       /* per layer: 1 when a forward reads it from the copy (kept in evaluation) */
    int *slot;        /* per layer: its slot, -1: not stored */
    size_t *slot_off; /* per slot: offset in slots */
    int *holder;      /* per slot: the layer whose values it holds now, -1: none */
    float **out32;    /* per layer: l->out in the float32 arena (restored by _free) */
};

/* the most stored activations one layer (with its fused group) touches: 3 per layer */
enum { TOUCH_MAX = 12 };

int dt_net_act_owner(const dt_net *net, int i)
{
    while (i >= 0 && net->layers[i].ops->alias)
        i = net->layers[i].input;
    return i;
}

int dt_net_keeps_output(const dt_net *net, int i)
{
    return i >= 0 && !net->layers[i].ops->alias &&
           !(i + 1 < net->nlayers && net->layers[i + 1].fused);
}

/* The stored activations the forward or backward of layer i (not fused) reads or writes, with
 * those of its fused group (whose work its kernels do): into a[], returns how many. */
static int touched(const dt_net *net, int i, int *a)
{
    int m = 0;
    for (int k = i; k < net->nlayers && (k == i || net->layers[k].fused); k++) {
        const dt_layer *l = &net->layers[k];
        const int c[3] = {dt_net_act_owner(net, k), dt_net_act_owner(net, l->input),
                          l->input2 >= 0 ? dt_net_act_owner(net, l->input2) : -1};
        for (int t = 0; t < 3; t++) {
            if (!dt_net_keeps_output(net, c[t]))
                continue;
            int dup = 0;
            for (int u = 0; u < m; u++)
                dup |= a[u] == c[t];
            if (!dup) {
                DT_ASSERT(m < TOUCH_MAX);
                a[m++] = c[t];
            }
        }
    }
    return m;
}

int dt_first_fit(int n, const size_t *size, const int *lo, const int *hi, int *slot,
                 size_t *slot_size)
{
    int *order = dt_xmalloc((size_t)n + 1, sizeof *order);
    int m = 0, nslots = 0;
    for (int i = 0; i < n; i++) {
        slot[i] = -1;
        if (size[i] > 0)
            order[m++] = i;
    }
    for (int a = 1; a < m; a++) { /* insertion sort by size, largest first: tens of layers */
        const int v = order[a];
        int b = a;
        for (; b > 0 && size[order[b - 1]] < size[v]; b--)
            order[b] = order[b - 1];
        order[b] = v;
    }
    for (int a = 0; a < m; a++) {
        const int i = order[a];
        int s = 0;
        for (; s < nslots; s++) {
            int clash = 0;
            for (int b = 0; b < a && !clash; b++)
                clash = slot[order[b]] == s && lo[order[b]] <= hi[i] && lo[i] <= hi[order[b]];
            if (!clash)
                break;
        }
        if (s == nslots)
            slot_size[nslots++] = size[i];
        slot[i] = s;
    }
    free(order);
    return nslots;
}

static int backward_reads(const dt_net *net, int i, int *a);

/* 1: layer j's forward (not fused) reads activation k from its bf16 copy, not from its slot
 * (dt_layer_ops.fwd_copy, where k has a copy); its backward then does not read k either
 * (fwd_copy's promise), so j needs no slot of k's */
static int reads_copy(const dt_net *net, const int *copy, int j, int k)
{
    const dt_layer *l = &net->layers[j];
    return k >= 0 && copy[k] && l->ops->fwd_copy && l->ops->fwd_copy(l, net, k);
}

/* each stored activation's interval [lo, hi] of (non-fused) layer indices touching it in its
 * float32 slot */
static void intervals(const dt_net *net, const int *copy, int *lo, int *hi)
{
    for (int i = 0; i < net->nlayers; i++)
        lo[i] = net->nlayers, hi[i] = -1;
    for (int j = 0; j < net->nlayers; j++) {
        if (net->layers[j].fused)
            continue;
        int a[TOUCH_MAX];
        const int m = touched(net, j, a);
        for (int t = 0; t < m; t++) {
            if (reads_copy(net, copy, j, a[t]))
                continue;
            lo[a[t]] = j < lo[a[t]] ? j : lo[a[t]];
            hi[a[t]] = j > hi[a[t]] ? j : hi[a[t]];
        }
    }
}

/* 1 when no backward reads both k and m from their float32 slots (one of them may share the
 * other's slot then: a backward that needs one widens it there, the holder says which) */
static int apart_in_backward(const dt_net *net, int k, int m)
{
    for (int j = 0; j < net->nlayers; j++) {
        const dt_layer *l = &net->layers[j];
        if (l->fused)
            continue;
        int a[TOUCH_MAX], hk = 0, hm = 0;
        const int c = backward_reads(net, j, a);
        for (int t = 0; t < c; t++) {
            /* read from its copy (bwd_skips: fixed for the net where it says so, as
             * BatchNorm's and the bf16 convolutions' are) */
            const int skip = l->ops->bwd_skips && l->ops->bwd_skips(l, net, net->max_batch, a[t]);
            hk |= a[t] == k && !skip;
            hm |= a[t] == m && !skip;
        }
        if (hk && hm)
            return 0;
    }
    return 1;
}

/* Outputs written over their inputs (dt_layer_ops.fwd_in_place): a group whose head's input k
 * is last touched in its slot by the head, and whose output m (as large) is first touched there,
 * gets k's slot: same[m] = k, k's interval grown to m's, m's size 0 for the fit. */
static void in_place(const dt_net *net, size_t *size, int *lo, int *hi, int *same)
{
    for (int i = 0; i < net->nlayers; i++)
        same[i] = -1;
    for (int i = 0; i < net->nlayers; i++) {
        const dt_layer *l = &net->layers[i];
        if (l->fused || !l->ops->fwd_in_place || !l->ops->fwd_in_place(l, net))
            continue;
        int m = i;
        while (m + 1 < net->nlayers && net->layers[m + 1].fused)
            m++;
        int k = dt_net_act_owner(net, l->input);
        if (k < 0 || size[k] == 0 || size[m] != size[k] || hi[k] != i || lo[m] != i ||
            !apart_in_backward(net, k, m))
            continue;
        hi[k] = hi[m]; /* k is no member itself: a member's size is 0 */
        same[m] = k;
        size[m] = 0;
    }
}

struct dt_net_act *dt_net_act_new(dt_net *net)
{
    const int n = net->nlayers;
    struct dt_net_act *A = dt_xcalloc(1, sizeof *A);
    int *lo = dt_xmalloc((size_t)n + 1, sizeof *lo), *hi = dt_xmalloc((size_t)n + 1, sizeof *hi);
    size_t *size = dt_xcalloc((size_t)n + 1, sizeof *size);
    size_t *slot_size = dt_xcalloc((size_t)n + 1, sizeof *slot_size);
    A->h_off = dt_xcalloc((size_t)n + 1, sizeof *A->h_off);
    A->slot = dt_xmalloc((size_t)n + 1, sizeof *A->slot);
    A->slot_off = dt_xcalloc((size_t)n + 1, sizeof *A->slot_off);
    A->holder = dt_xmalloc((size_t)n + 1, sizeof *A->holder);
    A->out32 = dt_xmalloc((size_t)n + 1, sizeof *A->out32);
    A->copy = dt_xcalloc((size_t)n + 1, sizeof *A->copy);
    A->fcopy = dt_xcalloc((size_t)n + 1, sizeof *A->fcopy);
    /* a bf16 copy only of what a backward reads: the others (a residual block's last BatchNorm
     * and its sum) live in their slots for the forward only */
    for (int j = 0; j < n; j++) {
        int a[TOUCH_MAX];
        const int m = net->layers[j].fused ? 0 : backward_reads(net, j, a);
        for (int t = 0; t < m; t++)
            A->copy[a[t]] = 1;
    }
    /* a forward that reads a copy (a bf16 convolution's input, a fused residual add's other
     * input): kept in every forward */
    for (int j = 0; j < n; j++) {
        int a[TOUCH_MAX];
        const int m = net->layers[j].fused ? 0 : touched(net, j, a);
        for (int t = 0; t < m; t++)
            A->fcopy[a[t]] |= reads_copy(net, A->copy, j, a[t]);
    }
    intervals(net, A->copy, lo, hi);
    for (int i = 0; i < n; i++) {
        A->out32[i] = net->layers[i].out;
        if (dt_net_keeps_output(net, i) && hi[i] >= lo[i]) {
            size[i] = (size_t)net->max_batch * net->layers[i].out_size;
            if (A->copy[i]) {
                A->h_off[i] = A->nh;
                A->nh += size[i];
            }
        } else {
            A->copy[i] = 0;
        }
    }
    /* written now (zeroed), so that the first step does not pay their page faults */
    A->h = dt_xcalloc(A->nh ? A->nh : 1, sizeof *A->h);
    /* the kinds' bwd_skips answer from the copies (dt_net_act_copy): this plan's, meanwhile */
    DT_ASSERT(!net->act);
    net->act = A;
    int *same = dt_xmalloc((size_t)n + 1, sizeof *same);
    in_place(net, size, lo, hi, same);
    net->act = NULL; /* the caller's to set */
    const int nslots = dt_first_fit(n, size, lo, hi, A->slot, slot_size);
    for (int i = 0; i < n; i++)
        if (same[i] >= 0)
            A->slot[i] = A->slot[same[i]];
    free(same);
    for (int s = 0; s < nslots; s++) {
        A->slot_off[s] = A->nslot;
        A->nslot += slot_size[s];
        A->holder[s] = -1;
    }
    A->slots = dt_xcalloc(A->nslot ? A->nslot : 1, sizeof *A->slots);
    for (int i = 0; i < n; i++) {
        dt_layer *l = &net->layers[i];
        if (A->slot[i] >= 0)
            l->out = A->slots + A->slot_off[A->slot[i]];
        else if (!l->ops->alias)
            l->out = NULL; /* inside a fused group: never written nor read */
    }
    free(lo), free(hi), free(size), free(slot_size);
    return A;
}

void dt_net_act_free(dt_net *net)
{
    struct dt_net_act *A = net->act;
    if (!A)
        return;
    for (int i = 0; i < net->nlayers; i++)
        if (!net->layers[i].ops->alias)
            net->layers[i].out = A->out32[i];
    free(A->h), free(A->slots), free(A->h_off), free(A->copy), free(A->fcopy), free(A->slot);
    free(A->slot_off);
    free(A->holder), free(A->out32), free(A);
    net->act = NULL;
}

typedef struct {
    float *x;
    uint16_t *h;
} conv_job;

/* the bf16 family's loops (kernels/bf16.h) over the pool: elementwise, any split gives the same
 * bits */
static void store_range(void *arg, long lo, long hi)
{
    const conv_job *j = arg;
    dt_kern_get()->bf16->act_store(j->x + lo, j->h + lo, (size_t)(hi - lo));
}

static void pack_range(void *arg, long lo, long hi)
{
    const conv_job *j = arg;
    dt_kern_get()->bf16->act_pack(j->x + lo, j->h + lo, (size_t)(hi - lo));
}

static void load_range(void *arg, long lo, long hi)
{
    const conv_job *j = arg;
    dt_kern_get()->bf16->act_load(j->x + lo, j->h + lo, (size_t)(hi - lo));
}

void dt_net_act_made(dt_net *net, int i, int N, int train)
{
    struct dt_net_act *A = net->act;
    const dt_layer *head = &net->layers[i];
    const int rounded = head->ops->rounds_out && head->ops->rounds_out(head, net);
    for (int k = i; k < net->nlayers && (k == i || net->layers[k].fused); k++) {
        if (A->slot[k] < 0)
            continue;
        const long n = (long)N * (long)net->layers[k].out_size;
        conv_job j = {net->layers[k].out, A->h + A->h_off[k]};
        if ((train || A->fcopy[k]) && A->copy[k])
            dt_tpool_for(n, 1L << 14, 16, rounded ? pack_range : store_range, &j);
        else if (!rounded)
            dt_round_bf16(j.x, (size_t)n);
        A->holder[A->slot[k]] = k;
    }
}

/* What the backward of layer i (not fused) reads: what its kind says (dt_layer_ops.bwd_reads;
 * heading a fused group, only a kind that says DT_BWD_FUSED_OUT), else all it touches. */
static int backward_reads(const dt_net *net, int i, int *a)
{
    const dt_layer *l = &net->layers[i];
    const int r = l->ops->bwd_reads;
    int last = i; /* its fused group's last layer */
    while (last + 1 < net->nlayers && net->layers[last + 1].fused)
        last++;
    if (!r || (last > i && !(r & DT_BWD_FUSED_OUT)))
        return touched(net, i, a);
    const int c[4] = {r & DT_BWD_OUT ? dt_net_act_owner(net, i) : -1,
                      r & DT_BWD_IN ? dt_net_act_owner(net, l->input) : -1,
                      r & DT_BWD_IN2 && l->input2 >= 0 ? dt_net_act_owner(net, l->input2) : -1,
                      last > i ? dt_net_act_owner(net, last) : -1};
    int m = 0;
    for (int t = 0; t < 4; t++)
        if (dt_net_keeps_output(net, c[t]) && !(m > 0 && a[m - 1] == c[t]))
            a[m++] = c[t];
    return m;
}

void dt_net_act_fetch(dt_net *net, int i, int N)
{
    struct dt_net_act *A = net->act;
    int a[TOUCH_MAX];
    const int m = backward_reads(net, i, a);
    const dt_layer *l = &net->layers[i];
    for (int t = 0; t < m; t++) {
        const int k = a[t], s = A->slot[k];
        if (A->holder[s] == k || (l->ops->bwd_skips && l->ops->bwd_skips(l, net, N, k)))
            continue;
        conv_job j = {net->layers[k].out, A->h + A->h_off[k]};
        dt_tpool_for((long)N * (long)net->layers[k].out_size, 1L << 14, 16, load_range, &j);
        A->holder[s] = k;
    }
}

void dt_net_act_check(const dt_net *net, int i)
{
    const struct dt_net_act *A = net->act;
    int a[TOUCH_MAX];
    const int m = touched(net, i, a);
    for (int t = 0; t < m; t++) {
        const int k = a[t];
        /* an input made earlier in this forward is still in its slot (or read from its copy) */
        DT_ASSERT(k >= i || reads_copy(net, A->copy, i, k) || A->holder[A->slot[k]] == k);
    }
}

uint16_t *dt_net_act_copy(const dt_net *net, int i)
{
    const struct dt_net_act *A = net->act;
    const int k = dt_net_act_owner(net, i);
    if (!A || k < 0 || !A->copy[k])
        return NULL;
    return A->h + A->h_off[k];
}

size_t dt_net_act_slot_floats(const dt_net *net) { return net->act ? net->act->nslot : 0; }

size_t dt_net_act_bf16_values(const dt_net *net) { return net->act ? net->act->nh : 0; }
