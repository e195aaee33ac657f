/*
 * act_post.c - bf16 activation storage as a kernel's epilogue (act_post.h).
 */
#include "act_post.h"

#include <stddef.h>

#include "common.h"

static struct {
    float *x;              /* the armed output, NULL: none */
    uint16_t *h;           /* its bf16 copy */
    long n;                /* its length (values) */
    dt_act_store_fn store; /* dt_kbf16.act_store or act_stream */
    long stored;           /* values stored by dt_act_post since the arm (atomic) */
} post;

void dt_act_post_arm(float *x, uint16_t *h, long n, dt_act_store_fn store)
{
    DT_ASSERT(x && h && n >= 0 && store);
    post.h = h, post.n = n, post.store = store;
    __atomic_store_n(&post.stored, 0, __ATOMIC_RELAXED);
    post.x = x; /* published to the workers by the pool's start of the next loop */
}

long dt_act_post_disarm(void)
{
    const long s = __atomic_load_n(&post.stored, __ATOMIC_RELAXED);
    DT_ASSERT(s <= post.n); /* a value stored twice would hide one never stored */
    post.x = NULL;
    return s;
}

void dt_act_post(float *p, long n)
{
    const float *x = post.x;
    if (!x || n <= 0)
        return;
    const uintptr_t a = (uintptr_t)x, b = (uintptr_t)p;
    if (b < a || (b - a) / sizeof(float) + (uintptr_t)n > (uintptr_t)post.n)
        return;
    const size_t i = (b - a) / sizeof(float);
    post.store(p, post.h + i, (size_t)n);
    __atomic_fetch_add(&post.stored, n, __ATOMIC_RELAXED);
}

static struct {
    float *d; /* the armed gradient (atomic: the worker that rounds its last range disarms) */
    long n;   /* its length (values) */
    dt_act_round_fn round; /* the elem family's round_bf16 or round_fp16 */
    long done;             /* values rounded since the arm (atomic) */
} pre;

void dt_act_pre_arm(float *d, long n, dt_act_round_fn round)
{
    DT_ASSERT(d && n >= 0 && round);
    pre.n = n, pre.round = round;
    __atomic_store_n(&pre.done, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&pre.d, n > 0 ? d : NULL, __ATOMIC_RELAXED);
}

long dt_act_pre_disarm(void)
{
    const long s = __atomic_load_n(&pre.done, __ATOMIC_RELAXED);
    DT_ASSERT(s == 0 || s == pre.n);
    __atomic_store_n(&pre.d, NULL, __ATOMIC_RELAXED);
    return s;
}

void dt_act_pre(const float *p, long n)
{
    float *d = __atomic_load_n(&pre.d, __ATOMIC_RELAXED);
    if (!d || n <= 0)
        return;
    const uintptr_t a = (uintptr_t)d, b = (uintptr_t)p;
    if (b < a || (b - a) / sizeof(float) + (uintptr_t)n > (uintptr_t)pre.n)
        return;
    float *x = d + (b - a) / sizeof(float); /* the armed gradient is writable */
    pre.round(x, (size_t)n);
    /* every range rounded: the layer's later passes over its dout read it as it is */
    if (__atomic_add_fetch(&pre.done, n, __ATOMIC_RELAXED) == pre.n)
        __atomic_store_n(&pre.d, NULL, __ATOMIC_RELAXED);
}
