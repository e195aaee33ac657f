/*
 * optim.h - optimizers over the flat parameter buffer: SGD, Adagrad, Adadelta, RMSprop, Adam and
 * AdamW with PyTorch 1.13's update rules, arithmetic order and defaults (torch/optim/<name>.py, the
 * single-tensor path), plus torch.nn.utils.clip_grad_norm_.
 *
 * State lives in flat float buffers of the parameters' layout (one loop per step, one dataset per
 * buffer in a checkpoint), listed by name in dt_optim.state[] with torch's state keys.
 *
 * Weight decay applies only to the segments flagged for it (Bag of Tricks, He et al. 2019:
 * biases and BatchNorm parameters are excluded); a segment with decay 0 behaves as a torch param
 * group with weight_decay = 0.
 *
 * The per-step `momentum` argument of dt_optim_step (sent by rank 0 in dt_ctrl) is the value a
 * schedule that cycles momentum would write into the param group: `momentum` for SGD and
 * RMSprop, beta1 for Adam and AdamW (as OneCycleLR does for optimizers with betas); Adagrad and
 * Adadelta ignore it. Without such a schedule pass dt_optim_momentum(o).
 */
#ifndef DT_OPTIM_H
#define DT_OPTIM_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    DT_OPTIM_SGD,
    DT_OPTIM_ADAGRAD,
    DT_OPTIM_ADADELTA,
    DT_OPTIM_RMSPROP,
    DT_OPTIM_ADAM,
    DT_OPTIM_ADAMW
} dt_optim_kind;

/* The names dt_optim_kind_parse accepts, in enum order (for a config table's ENUM choices). */
#define DT_OPTIM_KIND_CHOICES "sgd|adagrad|adadelta|rmsprop|adam|adamw"

/* Every hyperparameter of every optimizer; each kind reads only its own. Field names are the
 * config keys' ("optim.<field>"), which is how error messages name them. */
typedef struct dt_optim_params {
    dt_optim_kind kind;
    double lr;           /* not used by the step (lr comes per step): the kind's PyTorch default,
                          * for a caller that wants it (sgd: torch requires it; 0.1 here) */
    double weight_decay; /* L2 added to the gradient; AdamW: decoupled, p *= 1 - lr * wd */
    double momentum;     /* sgd, rmsprop */
    double dampening;    /* sgd */
    int nesterov;        /* sgd: needs momentum > 0 and dampening = 0 */
    double lr_decay;     /* adagrad: clr = lr / (1 + (step - 1) * lr_decay) */
    double initial_accumulator_value; /* adagrad: the sum buffer starts at this value */
    double eps;                       /* adagrad, adadelta, rmsprop, adam, adamw */
    double rho;                       /* adadelta */
    double alpha;                     /* rmsprop smoothing constant */
    int centered;                     /* rmsprop */
    double beta1, beta2;              /* adam, adamw */
    int amsgrad;                      /* adam, adamw */
} dt_optim_params;

/* Fills p with PyTorch 1.13's defaults for `kind`:
 *   sgd       lr 0.1*, momentum 0, dampening 0, weight_decay 0, nesterov false
 *   adagrad   lr 1e-2, lr_decay 0, weight_decay 0, initial_accumulator_value 0, eps 1e-10
 *   adadelta  lr 1.0, rho 0.9, eps 1e-6, weight_decay 0
 *   rmsprop   lr 1e-2, alpha 0.99, eps 1e-8, weight_decay 0, momentum 0, centered false
 *   adam      lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0, amsgrad false
 *   adamw     as adam but weight_decay 1e-2
 * (* torch.optim.SGD has no default lr.) Fields another kind uses get that kind's default. */
void dt_optim_params_defaults(dt_optim_params *p, dt_optim_kind kind);

/* "sgd" -> DT_OPTIM_SGD, ... Returns 0, or DT_ERR "optim.name = 'x': expected one of ...". */
int dt_optim_kind_parse(const char *name, dt_optim_kind *kind);
/* "sgd", ...; "?" for a value outside the enum. */
const char *dt_optim_kind_name(dt_optim_kind kind);
/* DT_OPTIM_KIND_CHOICES. */
const char *dt_optim_kinds(void);

/* PyTorch's constructor checks for p->kind (and nesterov's requirements), with the config key in
 * the message ("optim.beta1 = 1: expected a number in [0, 1)"). Returns 0 or DT_ERR. */
int dt_optim_params_check(const dt_optim_params *p);

/* A run of the flat buffer: [off, off + len), decayed (1) or not (0). */
typedef struct dt_optim_segment {
    size_t off, len;
    int decay;
} dt_optim_segment;

/* One state buffer a checkpoint must save and restore: numel floats, torch's state key. */
typedef struct dt_optim_state {
    const char *name; /* "momentum_buffer", "sum", "square_avg", "acc_delta", "grad_avg",
                       * "exp_avg", "exp_avg_sq", "max_exp_avg_sq" */
    float *data;      /* (numel), owned by the optimizer, the parameters' layout */
    size_t numel;     /* = dt_optim.numel */
} dt_optim_state;

#define DT_OPTIM_MAX_STATE 3

typedef struct dt_optim {
    dt_optim_params p;
    size_t numel;
    int nseg;
    dt_optim_segment *seg; /* (nseg) cover [0, numel) in order; adjacent equal flags merged */
    int nstate;
    dt_optim_state state[DT_OPTIM_MAX_STATE]; /* the kind's buffers, all allocated at init */
    /* Scalar state, also to be checkpointed: */
    int64_t step;           /* steps taken (torch's state["step"]; bias correction, lr_decay) */
    int64_t momentum_ready; /* sgd: 1 once momentum_buffer holds a value (torch: not None); the
                              * first step with momentum != 0 copies the gradient into it */
    int64_t first_momentum; /* between step_begin and step_end: this step is that first one */
} dt_optim;

/* Sets up optimizer p->kind for numel parameters: checks p (dt_optim_params_check), copies the
 * segments (nseg of them, covering [0, numel) in order without gaps or overlap: a broken cover is
 * a bug and asserts; segs == NULL: one segment, all decayed) and allocates the state buffers
 * (zero; Adagrad's "sum" = initial_accumulator_value). Returns 0, or DT_ERR with o left empty
 * (dt_optim_free is still safe). */
int dt_optim_init(dt_optim *o, const dt_optim_params *p, size_t numel, const dt_optim_segment *segs,
                  int nseg);

/* SGD with the given settings over one all-decayed segment (the original API; asserts on values
 * dt_optim_params_check rejects). */
void dt_optim_init_sgd(dt_optim *o, size_t numel, double momentum, double dampening,
                       double weight_decay, int nesterov);

/* Releases the state buffers and segments. NULL or an already freed optimizer: no-op. */
void dt_optim_free(dt_optim *o);

/* The momentum the optimizer was configured with, i.e. what dt_optim_step's momentum argument is
 * when no schedule cycles it: sgd/rmsprop momentum, adam/adamw beta1, 0 for adagrad/adadelta. */
double dt_optim_momentum(const dt_optim *o);

/* Whether the kind reads dt_optim_step's momentum argument (sgd, rmsprop, adam, adamw): a
 * schedule that cycles momentum needs one of these (torch raises otherwise). */
int dt_optim_kind_has_momentum(dt_optim_kind kind);

/* One update of param (numel) from the averaged grad (numel, not modified) with this step's lr
 * and momentum (see the file header for what momentum means per kind). */
void dt_optim_step(dt_optim *o, float *param, const float *grad, double lr, double momentum);

/* The same update in parts, for an update that starts on the gradients of one allreduce bucket
 * while the others are still in flight: dt_optim_step_begin (counts the step), then
 * dt_optim_step_range over ranges [lo, hi) that cover [0, numel) exactly once, in any order, then
 * dt_optim_step_end. Every update is elementwise, so the parts give bitwise what dt_optim_step
 * gives. */
void dt_optim_step_begin(dt_optim *o, double momentum);
void dt_optim_step_range(dt_optim *o, float *param, const float *grad, size_t lo, size_t hi,
                         double lr, double momentum);
void dt_optim_step_end(dt_optim *o);

/* torch.nn.utils.clip_grad_norm_(params, max_norm) (norm_type 2, error_if_nonfinite False) over
 * the whole flat gradient: total_norm = ||grad||_2, clip_coef = max_norm / (total_norm + 1e-6),
 * grad *= min(clip_coef, 1). Returns total_norm (inf/nan when grad holds one; the gradients are
 * then scaled by nan/0 as torch does, so a caller wanting to skip the step checks the return).
 * max_norm must be > 0 (asserted). */
double dt_optim_clip_grad_norm(float *grad, size_t n, double max_norm);

/* Registers the optimizer's resumable state in st (state.h): every state buffer as
 * optim/<torch state key> (numel float32, finite), optim/step and optim/momentum_ready. */
struct dt_state;
void dt_optim_register_state(dt_optim *o, struct dt_state *st);

#endif
