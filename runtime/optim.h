/*
 * optim.h - optimizers over the flat parameter buffer; their state lives in flat buffers of the
 * same layout (one loop per step, one dataset per buffer in a checkpoint).
 */
#ifndef DT_OPTIM_H
#define DT_OPTIM_H

#include <stddef.h>
#include <stdint.h>

typedef enum { DT_OPTIM_SGD } dt_optim_kind;

typedef struct dt_optim {
    dt_optim_kind kind;
    double momentum, dampening, weight_decay;
    int nesterov;
    size_t numel;
    float *buf;    /* (numel) SGD momentum buffer */
    int64_t steps; /* steps taken (0: buffers not yet initialized, as PyTorch's "None" state) */
} dt_optim;

/* SGD with PyTorch's defaults unless given. Allocates state for numel parameters. */
void dt_optim_init_sgd(dt_optim *o, size_t numel, double momentum, double dampening,
                       double weight_decay, int nesterov);
void dt_optim_free(dt_optim *o);

/* One update of param (numel) from the averaged grad with this step's lr and momentum (rank 0
 * sends both every step so schedules that cycle momentum need no other path). */
void dt_optim_step(dt_optim *o, float *param, const float *grad, double lr, double momentum);

#endif
