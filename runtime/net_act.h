/*
 * net_act.h - bf16 activation storage (issue 12): in bf16 training every activation is a bf16
 * value (net.c rounds each one where it is made), so the arena keeps it as 16 bits, and float32
 * memory holds only the activations that the layers running now read or write.
 *
 * The plan (dt_net_act_new, when dt_net_set_precision selects bf16): each stored activation (a
 * layer's output, aliases followed to the layer that owns the memory; not the outputs that stay
 * inside a fused group) gets
 *   - a bf16 copy in one uint16 buffer (max_batch x out_size values), when a backward reads it
 *     (dt_layer_ops.bwd_reads: not a residual block's last BatchNorm output nor its sum), and
 *   - a float32 slot, shared with the activations whose intervals do not overlap its own. Its
 *     interval is the range of (forward and backward) layer indices that read or write it: from
 *     the layer that makes it (a fused group's head, for the group's output) to its last
 *     consumer. A forward runs these indices upwards, a backward downwards, so in a forward an
 *     activation is made in its slot and stays there until its last consumer has run, and in a
 *     backward its last consumer is the first to need it again.
 * The layers see float32 as before: l->out points into the activation's slot. After a layer's
 * forward, dt_net_act_made rounds what it made to bf16 in place (BatchNorm, ReLU and the residual
 * add write it rounded themselves: dt_layer_ops.rounds_out) and keeps the bf16 copy (only in a
 * training forward; an evaluation keeps none). In a backward, the bf16 convolutions, BatchNorm
 * and ReLU read the copies themselves (dt_net_act_copy, widened in registers; their kinds'
 * dt_layer_ops.bwd_skips); for the other readers, dt_net_act_fetch widens the bf16 copy of each
 * activation the layer reads back into its slot when another activation has used the slot since.
 * Widening a rounded value is exact, so the layers read the very bits they read with one float32
 * buffer per activation: training is bitwise the same (a NaN comes back as a quiet NaN with a
 * shorter payload).
 *
 * Memory: a resnet's activations take half their float32 size plus a few slots (a block's input
 * lives across the block; everything else for a layer or two). The float32 arena net.c sizes at
 * build time is not touched in bf16, so its pages are never made resident.
 */
#ifndef DT_NET_ACT_H
#define DT_NET_ACT_H

#include <stddef.h>
#include <stdint.h>

#include "layer.h"

/* Plans and allocates the bf16 storage of net's activations and points every stored
 * activation's l->out at its slot (the float32 pointers are kept for dt_net_act_free). */
struct dt_net_act *dt_net_act_new(dt_net *net);
/* Points the layers back at the float32 arena and frees the storage. NULL: a no-op. */
void dt_net_act_free(dt_net *net);
/* After the forward of layer i (not fused): rounds the activations it made (its output, or its
 * fused group's) for N samples to bf16 in place, unless its kernels did (dt_layer_ops.
 * rounds_out), and, in a training forward (train 1), stores the bf16 copies of those a backward
 * reads. */
void dt_net_act_made(dt_net *net, int i, int N, int train);
/* Before the backward of layer i (not fused): brings every activation its backward reads (what
 * its kind's bwd_reads says, else all it touches) back into its slot (from the bf16 copy) when
 * the slot holds another one, but those its kind's bwd_skips says it reads from the copy itself
 * (dt_net_act_copy) or not at all. */
void dt_net_act_fetch(dt_net *net, int i, int N);
/* The bf16 copy of the activation layer i's output is (aliases followed; the same pointer for
 * every layer that shows it), as a backward may read it in place of the float32 slot; NULL when
 * it has none (float32 or fp16 training, i < 0: the net's input, not read by a backward). Its
 * values are those of the last training forward. */
uint16_t *dt_net_act_copy(const dt_net *net, int i);
/* Before the forward of layer i (not fused): asserts that the activations it reads are in their
 * slots (the plan's invariant; a broken one would feed a layer another layer's values). */
void dt_net_act_check(const dt_net *net, int i);
/* 1: layer i (>= 0) has an output of its own: not an alias (flatten) and not inside a fused group
 * (whose kernels write the group's last output only). net.c gives only those arena memory, and
 * in bf16 only those are stored activations. */
int dt_net_keeps_output(const dt_net *net, int i);
/* The layer that owns the memory of layer i's output (aliases followed); -1: the net's input.
 * The activations dt_layer_ops.fwd_copy and bwd_skips are asked about are such owners. */
int dt_net_act_owner(const dt_net *net, int i);
/* Interval packing of buffers into shared slots, for the bf16 activations here and net.c's
 * gradient slots: largest first (ties: lower index first), each of the n buffers into the first
 * slot whose holders' intervals [lo, hi] miss its own. size[i] 0: no slot (slot[i] = -1).
 * Returns the slot count; slot_size[s] (n entries available) is the first, largest, size put
 * into slot s. */
int dt_first_fit(int n, const size_t *size, const int *lo, const int *hi, int *slot,
                 size_t *slot_size);
/* Floats of the float32 slots, and bf16 values stored (for messages and tests). */
size_t dt_net_act_slot_floats(const dt_net *net);
size_t dt_net_act_bf16_values(const dt_net *net);

#endif
