/*
 * optim_k.h - the `optim` kernel family (issue 12): the optimizers' update loops, one table per
 * instruction set (isa.h). optim.c computes the step's constants in double, rounds them to float
 * once (as torch does, see optim.c's header) and hands them here; runtime/kernels/isa/optim_k.c
 * holds the loops, compiled once per ISA.
 *
 * The loops use fmaf where torch's ATen kernels fuse (one rounding) and plain float expressions
 * elsewhere. fmaf is exactly specified, so every ISA computes the same bits: the FMA ISAs with
 * vfmadd over whole vectors, generic with libm's fmaf. A segment is n consecutive parameters;
 * the pointers need no alignment and must not overlap (restrict).
 */
#ifndef DT_KERNELS_OPTIM_K_H
#define DT_KERNELS_OPTIM_K_H

#include <stddef.h>

/* torch.optim.SGD: weight decay, momentum, 1 - dampening, -lr */
typedef struct {
    float wd, mu, damp1, nlr;
} dt_kopt_sgd;
/* torch.optim.Adagrad: weight decay, eps, -clr */
typedef struct {
    float wd, eps, nclr;
} dt_kopt_adagrad;
/* torch.optim.Adadelta: weight decay, eps, rho, 1 - rho, -lr */
typedef struct {
    float wd, eps, rho, rho1, nlr;
} dt_kopt_adadelta;
/* torch.optim.RMSprop: weight decay, eps, alpha, 1 - alpha, momentum, -lr */
typedef struct {
    float wd, eps, al, al1, mu, nlr;
} dt_kopt_rmsprop;
/* torch.optim.Adam / AdamW: weight decay, beta1, 1 - beta1, beta2, 1 - beta2, eps,
 * 1 - lr * weight decay (AdamW), -lr / bias_correction1, sqrt(bias_correction2) */
typedef struct {
    float wd, b1, b1c, b2, b2c, eps, decay, nstep, bc2_sqrt;
} dt_kopt_adam;

struct dt_koptim {
    /* l2: add wd * p to the gradient. mode: 0 no momentum, 1 first momentum step (buffer = d_p),
     * 2 momentum, 3 Nesterov, 4 first Nesterov step. b: the momentum buffer (mode 0: unused) */
    void (*sgd)(const dt_kopt_sgd *k, float *restrict p, const float *restrict grad,
                float *restrict b, size_t n, int l2, int mode);
    void (*adagrad)(const dt_kopt_adagrad *k, float *restrict p, const float *restrict grad,
                    float *restrict sum, size_t n, int l2);
    void (*adadelta)(const dt_kopt_adadelta *k, float *restrict p, const float *restrict grad,
                     float *restrict sq, float *restrict acc, size_t n, int l2);
    /* gavg: centered's gradient average (NULL unless centered); buf used when momentum */
    void (*rmsprop)(const dt_kopt_rmsprop *k, float *restrict p, const float *restrict grad,
                    float *restrict sq, float *restrict buf, float *restrict gavg, size_t n, int l2,
                    int centered, int momentum);
    /* mode: 0 no decay, 1 L2 (Adam), 2 decoupled (AdamW); vmax: amsgrad's (NULL unless amsgrad) */
    void (*adam)(const dt_kopt_adam *k, float *restrict p, const float *restrict grad,
                 float *restrict m, float *restrict v, float *restrict vmax, size_t n, int mode,
                 int amsgrad);
    /* the sum of x[i]^2 over n values, in double (clipping's gradient norm, the metrics log's
     * grad_norm): blocks of DT_KOPT_SUMSQ_BLOCK values, each summed in 16 double lanes (value
     * 16i + l in lane l, the block's tail in lane 0, the lanes folded as
     * ((0 + 1) + (2 + 3)) + ... of each group of four, the groups in order), the blocks' sums
     * added in block order: the same bits on every ISA and at every thread count (a block is
     * one thread's). */
    double (*sumsq)(const float *x, size_t n);
};
#define DT_KOPT_SUMSQ_BLOCK 32768

extern const struct dt_koptim dt_koptim_generic;
#if defined(__x86_64__)
extern const struct dt_koptim dt_koptim_avx2, dt_koptim_avx2w16, dt_koptim_avx512;
#endif

#endif
