/*
 * act_post.h - bf16 activation storage as the epilogue of the kernel that writes the activation
 * (net_act.c, issue 12).
 *
 * bf16 training rounds every stored activation to bf16 in place and keeps a bf16 copy of it
 * (dt_kbf16.act_store). Run as a pass of its own after a layer's forward, that store reads the
 * whole output back from L3 or memory and writes it again. As an epilogue it runs on each range
 * a kernel has just written, while the range is still in that core's caches: net_act.c arms it
 * with the output of the layer about to run (dt_act_post_arm), the kernels that write that
 * output call dt_act_post on every range they have finished writing, and dt_act_post_disarm
 * returns how many values were stored so. When that is not all of them (a kernel without the
 * epilogue wrote the output), net_act.c stores the whole output in a pass as before: act_store
 * is idempotent (a rounded value rounds to itself), so a range stored twice keeps its bits.
 *
 * Contract for a kernel: call dt_act_post(p, n) only on a range of final values (nothing in this
 * forward writes or reads them afterwards), and on each value at most once. Ranges outside the
 * armed output, or straddling its ends, are ignored. One output is armed at a time, by the
 * thread that runs the forward; the pool's workers call dt_act_post concurrently on disjoint
 * ranges.
 *
 * The same for the gradient a layer receives in a 16-bit backward (net.c rounds it to bf16 or
 * fp16 before the layer reads it): net.c arms dt_act_pre with the layer's dout when its kind
 * says so (dt_layer_ops.dout_pre), the first kernel that reads it calls dt_act_pre on each range
 * just before reading it, and the range is rounded in place there (the same bits as the pass).
 * Once every value was rounded the prologue disarms itself, so the layer's later passes over
 * its dout (BatchNorm's second, the residual add's second input) read it as it is.
 */
#ifndef DT_KERNELS_ACT_POST_H
#define DT_KERNELS_ACT_POST_H

#include <stddef.h>
#include <stdint.h>

/* the kernels the caller chose (this file sees no kernel table): dt_kbf16.act_store or
 * act_stream, and the elem family's round_bf16 or round_fp16 */
typedef void (*dt_act_store_fn)(float *x, uint16_t *h, size_t n);
typedef void (*dt_act_round_fn)(float *x, size_t n);

void dt_act_post_arm(float *x, uint16_t *h, long n, dt_act_store_fn store);
/* the values stored by the epilogue since the arm; nothing is armed afterwards */
long dt_act_post_disarm(void);
/* p[0 .. n): final values of the armed output, rounded and copied now (else nothing) */
void dt_act_post(float *p, long n);

/* d[0 .. n) rounded (by round) by the first kernel that reads it */
void dt_act_pre_arm(float *d, long n, dt_act_round_fn round);
/* the values rounded since the arm: 0 (nothing read them) or n; nothing is armed afterwards */
long dt_act_pre_disarm(void);
/* p[0 .. n): about to be read for the first time: rounded in place if they lie in the armed
 * gradient (else nothing) */
void dt_act_pre(const float *p, long n);

#endif
