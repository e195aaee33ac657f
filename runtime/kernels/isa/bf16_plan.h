/*
 * bf16_plan.h - the plan of isa/bf16_lanes.c's convolutions (dt_bc_plan, kernels/bf16_conv.h):
 * the register tiles for DT_W lanes, the transposed plan of the stride-1 "same" input gradient,
 * and the workspace layout. Included by isa/bf16_lanes.c only (per ISA, as it is).
 */
#ifndef DT_KERNELS_ISA_BF16_PLAN_H
#define DT_KERNELS_ISA_BF16_PLAN_H

#include "kernels/bf16_conv.h"
#include "kernels/isa/lanes_io.h" /* round_up, tile_channels */
#include "kernels/isa/vec.h"

#if DT_W == 16
#define ACCS 24 /* accumulators of a forward / dweight tile */
#else
#define ACCS 12
#endif
#define XT 4     /* input-gradient tile: taps */
#define XP 6     /* and pixels (fixed: the order of dx8's additions) */
#define SLOTS 16 /* double accumulators per weight: image n goes to slot n % 16 */

static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }

/* the shapes of the plan (no workspace offsets: layout) */
static void plan_core(dt_bc_plan *q, int C, int H, int W, int OC, int KH, int KW, int stride,
                      int pad)
{
    DT_ASSERT(C >= 1 && H >= 1 && W >= 1 && OC >= 1 && KH >= 1 && KW >= 1 && stride >= 1 &&
              pad >= 0);
    DT_ASSERT(H + 2 * pad >= KH && W + 2 * pad >= KW);
    const int L = DT_W;
    q->C = C, q->H = H, q->W = W, q->OC = OC, q->KH = KH, q->KW = KW;
    q->stride = stride, q->pad = pad, q->L = L;
    q->OH = (H + 2 * pad - KH) / stride + 1, q->OW = (W + 2 * pad - KW) / stride + 1;
    q->Hp = H + 2 * pad, q->Wp = W + 2 * pad;
    DT_ASSERT((long)C * q->Hp * q->Wp * L <= INT32_MAX);
    q->P = q->OH * q->OW, q->K = C * KH * KW;
    /* pairs of channels waste C % 2 / (C + 1) of the dots, pairs of taps KW % 2 / (KW + 1) */
    const int C2 = (C + 1) / 2, KW2 = (KW + 1) / 2;
    q->tap_pairs = (C % 2) * (KW + 1) > (KW % 2) * (C + 1);
    q->T2 = q->tap_pairs ? C * KH * KW2 : C2 * KH * KW;
    q->OC2 = (OC + 1) / 2, q->OW2 = (q->OW + 1) / 2;
    q->fc = tile_channels(OC), q->fp = ACCS / q->fc, q->OCf = round_up(OC, q->fc);
    q->wc = q->fc, q->wt = ACCS / q->wc, q->OCw = round_up(OC, q->wc),
    q->Kw = round_up(q->K, q->wt);
    q->xt = XT, q->xp = XP, q->Kx = round_up(q->K, XT);
    q->PH = q->OH / 2, q->PW = q->OW / 2, q->PP = q->PH * q->PW;
    q->transposed = 0;
    q->round_dout = 0;
    q->in_lanes = q->out_lanes = 0;
}

/* The input gradient of a stride-1 "same" conv (OH = H, OW = W) as a forward conv of the padded
 * dout with the flipped, transposed weight wt[c][oc][kh][kw] = w[oc][c][KH-1-kh][KW-1-kw]: its
 * sums run over OC*KH*KW terms in registers, not over OC with a scatter per tap (the GEMM form),
 * and need no scatter. Everything else as the forward (the sub-plan qt). */
static void plan_transposed(dt_bc_plan *qt, const dt_bc_plan *q)
{
    plan_core(qt, q->OC, q->OH, q->OW, q->C, q->KH, q->KW, 1, q->pad);
}

/* The workspace: the part the threads share (written before the parallel loop), then each pool
 * thread's part (thread t's at the same offsets + t thr), then the chunks' sums. A thread's
 * double slots: the bias's (OC x SLOTS), and where W < 16 the weights' (a block fills W of a
 * weight's 16 slots; at W = 16 dw_tile sums each weight's lanes in registers). t: the transposed
 * input gradient's plan, or NULL. */
static void layout(dt_bc_plan *q, const dt_bc_plan *t)
{
    const int L = DT_W, OC = q->OC;
    const size_t plane = (size_t)q->C * q->Hp * q->Wp * L;
    size_t at = 0;
    q->off = at, at += (size_t)q->T2;
    q->offk = at, at += (size_t)(q->Kw > q->Kx ? q->Kw : q->Kx);
    q->wr = at, at += (size_t)q->OCf * q->T2;
    q->wx = at, at += (size_t)q->Kx * q->OC2;
    q->bias = at, at += (size_t)q->OCf;
    if (t) {
        q->t_w = at, at += (size_t)OC * q->K;
        q->t_wr = at, at += (size_t)t->OCf * t->T2;
        q->t_off = at, at += (size_t)t->T2;
        q->t_bias = at, at += (size_t)t->OCf;
    }
    at = (at + 15) / 16 * 16;
    q->x8 = at, at += plane;
    q->xb = at, at += plane;
    q->o8 = at, at += (size_t)(q->OCf > q->OCw ? q->OCf : q->OCw) * q->P * L;
    /* dweight's pixel pairs [OCw][OH][OW2], then dinp's channel pairs [OC2][P] */
    q->db = at, at += zmax((size_t)q->OCw * q->OH * q->OW2, (size_t)q->OC2 * q->P) * L;
    q->dx8 = at, at += plane;
    q->p8 = at, at += (size_t)OC * q->PP * L;
    if (t) {
        q->t_xb = at, at += (size_t)OC * t->Hp * t->Wp * L;
        q->t_o8 = at, at += (size_t)t->OCf * t->P * L;
    }
    const size_t slots = (size_t)OC * SLOTS + (DT_W < SLOTS ? (size_t)OC * q->K * SLOTS : 0);
    q->acc = at, at += 2 * slots + 2; /* doubles, and room to align them */
    q->thr = (at - q->x8 + 15) / 16 * 16;
    q->total = q->x8 + q->thr;
    q->chunk = 2 * ((size_t)OC * q->K + OC);
}

static void DT_KFN(bc_plan)(dt_bc_plan *q, int C, int H, int W, int OC, int KH, int KW, int stride,
                            int pad)
{
    plan_core(q, C, H, W, OC, KH, KW, stride, pad);
    if (!(stride == 1 && 2 * pad == KH - 1 && 2 * pad == KW - 1)) {
        layout(q, NULL);
        return;
    }
    dt_bc_plan t;
    plan_transposed(&t, q);
    q->transposed = 1;
    layout(q, &t);
}

#endif
