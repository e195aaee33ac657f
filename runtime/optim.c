/*
 * optim.c - see optim.h.
 *
 * Matching PyTorch's float32 arithmetic. The updates below follow torch 1.13's single-tensor
 * code op by op, with the rounding of each ATen CPU kernel (AVX2 build, as Debian's and the PyPI
 * wheels run on x86-64 with AVX2):
 *   - Python-side scalars are doubles (lr / bias_correction1, 1 - beta1, ...), rounded to float
 *     once when handed to a kernel: we compute them in double and cast, in the same order;
 *   - `a.add(b, alpha=s)` is vec::fmadd(b, s, a), ONE rounding: fmaf(b, s, a) here;
 *   - `a.addcmul(b, c, value=s)` is written a + s * b * c, which gcc contracts (GNU C++ default
 *     -ffp-contract=fast, kernels built with -mfma) into fma(s * b, c, a): fmaf(s * b, c, a) here
 *     (measured: plain a + (s * b) * c differs from torch in ~10% of the elements);
 *   - `a.addcdiv(b, c, value=s)` is a + (s * b) / c, nothing to contract: a plain float expression
 *     here (ISO C mode: gcc does not contract ours, -ffp-contract=off);
 *   - mul_, div_, sqrt are single correctly rounded operations in both.
 * tests/test_optim.c finds 19 ten-step trajectories bitwise equal to torch's. Where torch runs
 * its scalar (pre-AVX2) kernels, unfused, ours differ from its by an ulp now and then.
 */
#include "optim.h"
#include "state.h"

/* Our float expressions must round every operation, as torch's unfused kernels do: clang fuses
 * a * b + c by default, gcc does not in ISO C mode (-std=c11: -ffp-contract=off; with -std=gnu11
 * and FMA enabled it would, and tests/test_optim.c would notice). gcc rejects this pragma. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kernels/isa.h"
#include "kernels/optim_k.h"

/* The update loops are the `optim` kernel family (kernels/optim_k.h): compiled once per
 * instruction set, chosen with the other families (isa.h). fma is exactly specified, so every
 * ISA gives the same bits: replicas on mixed nodes stay identical. */

static const char *const kind_names[] = {"sgd", "adagrad", "adadelta", "rmsprop", "adam", "adamw"};
enum { NKINDS = (int)(sizeof kind_names / sizeof kind_names[0]) };

const char *dt_optim_kinds(void) { return DT_OPTIM_KIND_CHOICES; }

const char *dt_optim_kind_name(dt_optim_kind kind)
{
    return (int)kind >= 0 && (int)kind < NKINDS ? kind_names[kind] : "?";
}

int dt_optim_kind_parse(const char *name, dt_optim_kind *kind)
{
    for (int i = 0; i < NKINDS; i++)
        if (strcmp(name, kind_names[i]) == 0) {
            *kind = (dt_optim_kind)i;
            return DT_OK;
        }
    return dt_err("optim.name = '%s': expected one of %s", name, DT_OPTIM_KIND_CHOICES);
}

void dt_optim_params_defaults(dt_optim_params *p, dt_optim_kind kind)
{
    memset(p, 0, sizeof *p);
    p->kind = kind;
    /* fields of the other kinds: their own defaults */
    p->lr_decay = 0.0;
    p->initial_accumulator_value = 0.0;
    p->rho = 0.9;
    p->alpha = 0.99;
    p->beta1 = 0.9;
    p->beta2 = 0.999;
    p->eps = 1e-8;
    switch (kind) {
    case DT_OPTIM_SGD: p->lr = 0.1; break;
    case DT_OPTIM_ADAGRAD:
        p->lr = 1e-2;
        p->eps = 1e-10;
        break;
    case DT_OPTIM_ADADELTA:
        p->lr = 1.0;
        p->eps = 1e-6;
        break;
    case DT_OPTIM_RMSPROP: p->lr = 1e-2; break;
    case DT_OPTIM_ADAM: p->lr = 1e-3; break;
    case DT_OPTIM_ADAMW:
        p->lr = 1e-3;
        p->weight_decay = 1e-2;
        break;
    }
}

/* "optim.KEY = V: expected ..." unless lo <= v (and v < hi or v <= hi; hi = INFINITY: none). */
static int check_range(const char *key, double v, double lo, double hi, int hi_open)
{
    if (isfinite(v) && v >= lo && v <= hi && !(hi_open && v == hi))
        return DT_OK;
    if (isinf(hi) && isinf(lo))
        return dt_err("optim.%s = %g: expected a finite number", key, v);
    if (isinf(hi))
        return dt_err("optim.%s = %g: expected a number >= %g (as torch.optim)", key, v, lo);
    return dt_err("optim.%s = %g: expected a number in [%g, %g%c (as torch.optim)", key, v, lo, hi,
                  hi_open ? ')' : ']');
}

int dt_optim_params_check(const dt_optim_params *p)
{
    const double big = INFINITY;
    int rc = DT_OK;
    if ((int)p->kind < 0 || (int)p->kind >= NKINDS)
        return dt_err("optim.name: unknown optimizer %d: expected one of %s", (int)p->kind,
                      DT_OPTIM_KIND_CHOICES);
    if (check_range("weight_decay", p->weight_decay, 0, big, 0))
        return DT_ERR;
    switch (p->kind) {
    case DT_OPTIM_SGD:
        if (check_range("momentum", p->momentum, 0, big, 0) ||
            check_range("dampening", p->dampening, -big, big, 0))
            return DT_ERR;
        if (p->nesterov && (p->momentum <= 0.0 || p->dampening != 0.0))
            return dt_err("optim.nesterov = true requires optim.momentum > 0 and "
                          "optim.dampening = 0 (as torch.optim.SGD); got momentum %g, dampening %g",
                          p->momentum, p->dampening);
        break;
    case DT_OPTIM_ADAGRAD:
        rc = check_range("lr_decay", p->lr_decay, 0, big, 0);
        if (!rc)
            rc = check_range("initial_accumulator_value", p->initial_accumulator_value, 0, big, 0);
        if (!rc)
            rc = check_range("eps", p->eps, 0, big, 0);
        break;
    case DT_OPTIM_ADADELTA:
        rc = check_range("rho", p->rho, 0, 1, 0);
        if (!rc)
            rc = check_range("eps", p->eps, 0, big, 0);
        break;
    case DT_OPTIM_RMSPROP:
        rc = check_range("alpha", p->alpha, 0, big, 0);
        if (!rc)
            rc = check_range("eps", p->eps, 0, big, 0);
        if (!rc)
            rc = check_range("momentum", p->momentum, 0, big, 0);
        break;
    case DT_OPTIM_ADAM:
    case DT_OPTIM_ADAMW:
        rc = check_range("beta1", p->beta1, 0, 1, 1);
        if (!rc)
            rc = check_range("beta2", p->beta2, 0, 1, 1);
        if (!rc)
            rc = check_range("eps", p->eps, 0, big, 0);
        break;
    }
    return rc;
}

int dt_optim_kind_has_momentum(dt_optim_kind kind)
{
    return kind == DT_OPTIM_SGD || kind == DT_OPTIM_RMSPROP || kind == DT_OPTIM_ADAM ||
           kind == DT_OPTIM_ADAMW;
}

double dt_optim_momentum(const dt_optim *o)
{
    switch (o->p.kind) {
    case DT_OPTIM_SGD:
    case DT_OPTIM_RMSPROP: return o->p.momentum;
    case DT_OPTIM_ADAM:
    case DT_OPTIM_ADAMW: return o->p.beta1;
    case DT_OPTIM_ADAGRAD:
    case DT_OPTIM_ADADELTA: break;
    }
    return 0.0;
}

static float *add_state(dt_optim *o, const char *name)
{
    DT_ASSERT(o->nstate < DT_OPTIM_MAX_STATE);
    float *d = dt_xcalloc(o->numel, sizeof *d);
    o->state[o->nstate].name = name;
    o->state[o->nstate].data = d;
    o->state[o->nstate].numel = o->numel;
    o->nstate++;
    return d;
}

int dt_optim_init(dt_optim *o, const dt_optim_params *p, size_t numel, const dt_optim_segment *segs,
                  int nseg)
{
    memset(o, 0, sizeof *o);
    if (dt_optim_params_check(p) != 0)
        return DT_ERR;
    o->p = *p;
    o->numel = numel;
    /* segments: validate the cover, merge neighbours with the same flag */
    o->seg = dt_xmalloc((size_t)(segs && nseg > 0 ? nseg : 1), sizeof *o->seg);
    if (!segs || nseg <= 0) {
        o->seg[0] = (dt_optim_segment){0, numel, 1};
        o->nseg = 1;
    } else {
        size_t end = 0;
        for (int i = 0; i < nseg; i++) {
            DT_ASSERT(segs[i].off == end);
            DT_ASSERT(segs[i].decay == 0 || segs[i].decay == 1);
            end = segs[i].off + segs[i].len;
            DT_ASSERT(end >= segs[i].off);
            if (segs[i].len == 0)
                continue;
            if (o->nseg > 0 && o->seg[o->nseg - 1].decay == segs[i].decay)
                o->seg[o->nseg - 1].len += segs[i].len;
            else
                o->seg[o->nseg++] = segs[i];
        }
        DT_ASSERT(end == numel);
    }
    switch (p->kind) {
    case DT_OPTIM_SGD: add_state(o, "momentum_buffer"); break;
    case DT_OPTIM_ADAGRAD: {
        float *sum = add_state(o, "sum");
        /* torch.full_like(p, initial_accumulator_value): the value rounded to float */
        const float init = (float)p->initial_accumulator_value;
        for (size_t i = 0; i < numel; i++)
            sum[i] = init;
        break;
    }
    case DT_OPTIM_ADADELTA:
        add_state(o, "square_avg");
        add_state(o, "acc_delta");
        break;
    case DT_OPTIM_RMSPROP:
        add_state(o, "square_avg");
        /* torch allocates these only for momentum > 0 / centered; ours always has the buffer a
         * momentum schedule may need */
        add_state(o, "momentum_buffer");
        if (p->centered)
            add_state(o, "grad_avg");
        break;
    case DT_OPTIM_ADAM:
    case DT_OPTIM_ADAMW:
        add_state(o, "exp_avg");
        add_state(o, "exp_avg_sq");
        if (p->amsgrad)
            add_state(o, "max_exp_avg_sq");
        break;
    }
    return DT_OK;
}

void dt_optim_init_sgd(dt_optim *o, size_t numel, double momentum, double dampening,
                       double weight_decay, int nesterov)
{
    dt_optim_params p;
    dt_optim_params_defaults(&p, DT_OPTIM_SGD);
    p.momentum = momentum;
    p.dampening = dampening;
    p.weight_decay = weight_decay;
    p.nesterov = nesterov;
    int rc = dt_optim_init(o, &p, numel, NULL, 0);
    DT_ASSERT(rc == 0);
}

void dt_optim_free(dt_optim *o)
{
    if (!o)
        return;
    for (int i = 0; i < o->nstate; i++) {
        free(o->state[i].data);
        o->state[i].data = NULL;
    }
    o->nstate = 0;
    free(o->seg);
    o->seg = NULL;
    o->nseg = 0;
}

/* The i-th state buffer, offset to the segment at `off`. */
static float *st(dt_optim *o, int i, size_t off) { return o->state[i].data + off; }

/* torch.optim.SGD, torch 1.13 torch/optim/sgd.py _single_tensor_sgd:
 *   if weight_decay != 0: d_p = d_p.add(param, alpha=weight_decay)
 *   if momentum != 0:
 *       if buf is None: buf = torch.clone(d_p).detach()
 *       else:           buf.mul_(momentum).add_(d_p, alpha=1 - dampening)
 *       if nesterov: d_p = d_p.add(buf, alpha=momentum)
 *       else:        d_p = buf
 *   param.add_(d_p, alpha=-lr) */
static void sgd_seg(dt_optim *o, float *restrict p, const float *restrict grad, float *restrict b,
                    size_t n, double wd, double lr, double momentum, int first)
{
    const dt_kopt_sgd k = {(float)wd, (float)momentum, (float)(1.0 - o->p.dampening), (float)-lr};
    /* 0 no momentum, 1 first momentum step (buffer = d_p), 2 momentum, 3 Nesterov, 4 first
     * Nesterov step */
    const int mode = momentum == 0.0 ? 0 : o->p.nesterov ? (first ? 4 : 3) : (first ? 1 : 2);
    dt_kern_get()->optim->sgd(&k, p, grad, b, n, wd != 0.0, mode);
}

/* torch.optim.Adagrad, torch 1.13 torch/optim/adagrad.py _single_tensor_adagrad (dense):
 *   step_t += 1; step = step_t.item()
 *   if weight_decay != 0: grad = grad.add(param, alpha=weight_decay)
 *   clr = lr / (1 + (step - 1) * lr_decay)
 *   state_sum.addcmul_(grad, grad, value=1)
 *   std = state_sum.sqrt().add_(eps)
 *   param.addcdiv_(grad, std, value=-clr) */
static void adagrad_seg(dt_optim *o, float *restrict p, const float *restrict grad,
                        float *restrict sum, size_t n, double wd, double lr)
{
    const double clr = lr / (1.0 + (double)(o->step - 1) * o->p.lr_decay);
    const dt_kopt_adagrad k = {(float)wd, (float)o->p.eps, (float)-clr};
    dt_kern_get()->optim->adagrad(&k, p, grad, sum, n, wd != 0.0);
}

/* torch.optim.Adadelta, torch 1.13 torch/optim/adadelta.py _single_tensor_adadelta:
 *   if weight_decay != 0: grad = grad.add(param, alpha=weight_decay)
 *   square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
 *   std = square_avg.add(eps).sqrt_()
 *   delta = acc_delta.add(eps).sqrt_().div_(std).mul_(grad)
 *   acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)
 *   param.add_(delta, alpha=-lr) */
static void adadelta_seg(dt_optim *o, float *restrict p, const float *restrict grad,
                         float *restrict sq, float *restrict acc, size_t n, double wd, double lr)
{
    const dt_kopt_adadelta k = {(float)wd, (float)o->p.eps, (float)o->p.rho,
                                (float)(1.0 - o->p.rho), (float)-lr};
    dt_kern_get()->optim->adadelta(&k, p, grad, sq, acc, n, wd != 0.0);
}

/* torch.optim.RMSprop, torch 1.13 torch/optim/rmsprop.py _single_tensor_rmsprop:
 *   if weight_decay != 0: grad = grad.add(param, alpha=weight_decay)
 *   square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
 *   if centered:
 *       grad_avg.mul_(alpha).add_(grad, alpha=1 - alpha)
 *       avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
 *   else: avg = square_avg.sqrt()
 *   avg = avg.add_(eps)
 *   if momentum > 0:
 *       buf.mul_(momentum).addcdiv_(grad, avg)
 *       param.add_(buf, alpha=-lr)
 *   else: param.addcdiv_(grad, avg, value=-lr) */
static void rmsprop_seg(dt_optim *o, float *restrict p, const float *restrict grad,
                        float *restrict sq, float *restrict buf, float *restrict gavg, size_t n,
                        double wd, double lr, double momentum)
{
    const dt_kopt_rmsprop k = {(float)wd,         (float)o->p.eps,
                               (float)o->p.alpha, (float)(1.0 - o->p.alpha),
                               (float)momentum,   (float)-lr};
    dt_kern_get()->optim->rmsprop(&k, p, grad, sq, buf, gavg, n, wd != 0.0, o->p.centered != 0,
                                  momentum > 0.0);
}

/* torch.optim.Adam / AdamW, torch 1.13 torch/optim/adam.py _single_tensor_adam and adamw.py
 * _single_tensor_adamw (capturable=False):
 *   step_t += 1
 *   Adam:  if weight_decay != 0: grad = grad.add(param, alpha=weight_decay)     (L2)
 *   AdamW: param.mul_(1 - lr * weight_decay)                                    (decoupled)
 *   exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)                 m = b1 m + (1 - b1) g
 *   exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)    v = b2 v + (1 - b2) g^2
 *   bias_correction1 = 1 - beta1 ** step
 *   bias_correction2 = 1 - beta2 ** step
 *   step_size = lr / bias_correction1
 *   bias_correction2_sqrt = math.sqrt(bias_correction2)
 *   if amsgrad: torch.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq); v = max_exp_avg_sq
 *   denom = (v.sqrt() / bias_correction2_sqrt).add_(eps)
 *   param.addcdiv_(exp_avg, denom, value=-step_size)
 * which is the lecture's (Kingma & Ba 2014) p -= lr * m_hat / (sqrt(v_hat) + eps) with
 * m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t), eps added after the bias-corrected sqrt. */
static void adam_seg(dt_optim *o, float *restrict p, const float *restrict grad, float *restrict m,
                     float *restrict v, float *restrict vmax, size_t n, double wd, double lr,
                     double beta1)
{
    const double beta2 = o->p.beta2, t = (double)o->step;
    const double bias_correction1 = 1.0 - pow(beta1, t);
    const double bias_correction2 = 1.0 - pow(beta2, t);
    const double step_size = lr / bias_correction1;
    const dt_kopt_adam k = {(float)wd,
                            (float)beta1,
                            (float)(1.0 - beta1),
                            (float)beta2,
                            (float)(1.0 - beta2),
                            (float)o->p.eps,
                            (float)(1.0 - lr * wd),
                            (float)-step_size,
                            (float)sqrt(bias_correction2)};
    /* 0 no decay, 1 L2 (Adam), 2 decoupled (AdamW) */
    const int mode = o->p.kind == DT_OPTIM_ADAMW ? 2 : wd != 0.0 ? 1 : 0;
    dt_kern_get()->optim->adam(&k, p, grad, m, v, vmax, n, mode, o->p.amsgrad != 0);
}

void dt_optim_step_begin(dt_optim *o, double momentum)
{
    o->step++;
    o->first_momentum = o->p.kind == DT_OPTIM_SGD && momentum != 0.0 && !o->momentum_ready;
}

/* the update of one segment's part [off, off + n) */
static void step_part(dt_optim *o, const dt_optim_segment *sg, size_t off, size_t n, float *param,
                      const float *grad, double lr, double momentum)
{
    const double wd = sg->decay ? o->p.weight_decay : 0.0;
    float *p = param + off;
    const float *g = grad + off;
    switch (o->p.kind) {
    case DT_OPTIM_SGD:
        sgd_seg(o, p, g, st(o, 0, off), n, wd, lr, momentum, (int)o->first_momentum);
        break;
    case DT_OPTIM_ADAGRAD: adagrad_seg(o, p, g, st(o, 0, off), n, wd, lr); break;
    case DT_OPTIM_ADADELTA: adadelta_seg(o, p, g, st(o, 0, off), st(o, 1, off), n, wd, lr); break;
    case DT_OPTIM_RMSPROP:
        rmsprop_seg(o, p, g, st(o, 0, off), st(o, 1, off), o->p.centered ? st(o, 2, off) : NULL, n,
                    wd, lr, momentum);
        break;
    case DT_OPTIM_ADAM:
    case DT_OPTIM_ADAMW:
        adam_seg(o, p, g, st(o, 0, off), st(o, 1, off), o->p.amsgrad ? st(o, 2, off) : NULL, n, wd,
                 lr, momentum);
        break;
    }
}

void dt_optim_step_range(dt_optim *o, float *param, const float *grad, size_t lo, size_t hi,
                         double lr, double momentum)
{
    DT_ASSERT(lo <= hi && hi <= o->numel);
    for (int s = 0; s < o->nseg && lo < hi; s++) {
        const size_t a = o->seg[s].off, b = a + o->seg[s].len;
        const size_t from = lo > a ? lo : a, to = hi < b ? hi : b;
        if (from < to)
            step_part(o, &o->seg[s], from, to - from, param, grad, lr, momentum);
    }
}

void dt_optim_step_end(dt_optim *o)
{
    if (o->first_momentum)
        o->momentum_ready = 1;
    o->first_momentum = 0;
}

void dt_optim_step(dt_optim *o, float *param, const float *grad, double lr, double momentum)
{
    dt_optim_step_begin(o, momentum);
    dt_optim_step_range(o, param, grad, 0, o->numel, lr, momentum);
    dt_optim_step_end(o);
}

/* torch 1.13 torch/nn/utils/clip_grad.py clip_grad_norm_ (norm_type 2):
 *   total_norm = torch.norm(torch.stack([torch.norm(g, 2) for g in grads]), 2)
 *   clip_coef = max_norm / (total_norm + 1e-6)     (Tensor.__rtruediv__: reciprocal() * max_norm)
 *   clip_coef_clamped = torch.clamp(clip_coef, max=1.0)
 *   for g in grads: g.mul_(clip_coef_clamped)
 * total_norm is a float32 tensor in torch: the coefficient is computed in float from the norm
 * rounded to float, as there. The norm itself is summed in double over the flat buffer, in the
 * fixed order of the optim family's sumsq (torch sums per tensor then over tensors; the two agree
 * to float rounding). */
double dt_optim_clip_grad_norm(float *grad, size_t n, double max_norm)
{
    DT_ASSERT(max_norm > 0.0);
    const double total = sqrt(dt_kern_get()->optim->sumsq(grad, n));
    const float tn = (float)total;
    float coef = 1.0f / (tn + 1e-6f) * (float)max_norm;
    coef = coef > 1.0f ? 1.0f : coef; /* clamp(max=1): NaN stays NaN */
    if (coef != 1.0f)
        for (size_t i = 0; i < n; i++)
            grad[i] = grad[i] * coef;
    return total;
}

void dt_optim_register_state(dt_optim *o, struct dt_state *st)
{
    for (int i = 0; i < o->nstate; i++) {
        char name[DT_CK_NAME_MAX];
        int64_t dims[1] = {(int64_t)o->state[i].numel};
        snprintf(name, sizeof name, "optim/%s", o->state[i].name);
        dt_state_add(st, name, DT_CK_F32, 1, dims, o->state[i].data, DT_STATE_SHARED,
                     DT_STATE_FINITE);
    }
    dt_state_add(st, "optim/step", DT_CK_I64, 0, NULL, &o->step, DT_STATE_SHARED, DT_STATE_NONNEG);
    dt_state_add(st, "optim/momentum_ready", DT_CK_I64, 0, NULL, &o->momentum_ready,
                 DT_STATE_SHARED, DT_STATE_NONNEG);
}
