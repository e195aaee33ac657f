/*
 * kernels.h - the math of each layer as plain functions over raw float arrays (llm.c style), each
 * fast kernel with a naive reference beside it that tests use as the oracle.
 *
 * Conventions: row-major; N batch, IN/OUT features; weight (OUT, IN) like torch.nn.Linear;
 * out/inp activations, dout/dinp their gradients, dweight/dbias parameter gradients.
 * Backward kernels OVERWRITE dweight/dbias (one backward per step, so no zero_grad is needed) and
 * either overwrite (accum = 0) or add into (accum = 1) dinp; accum lets a tensor that feeds several
 * layers sum their contributions.
 */
#ifndef DT_KERNELS_H
#define DT_KERNELS_H

#include <stdint.h>

/* out (N, OUT) = inp (N, IN) @ weight^T (IN, OUT) + bias (OUT); bias may be NULL. */
void dt_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                       int IN, int OUT);
void dt_linear_forward_ref(float *out, const float *inp, const float *weight, const float *bias,
                           int N, int IN, int OUT);

/* dweight (OUT, IN) = dout^T @ inp; dbias (OUT) = sum_n dout; dinp (N, IN) (+)= dout @ weight.
 * dbias and dinp may be NULL (no bias; input needs no gradient). */
void dt_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int N, int IN, int OUT, int accum);
void dt_linear_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, int N, int IN, int OUT,
                            int accum);

/* out = max(inp, 0) elementwise over n values (in place allowed). */
void dt_relu_forward(float *out, const float *inp, long n);
/* dinp (+)= dout * (out > 0); uses the forward OUTPUT, so it works after an in-place forward.
 * rnd 1: dout read rounded to bfloat16 (kernels/elem.h). */
void dt_relu_backward(float *dinp, const float *dout, const float *out, long n, int accum, int rnd);
/* the same with out read from its bf16 copy (net_act.h): the bits dt_relu_backward gives on the
 * copy's values */
void dt_relu_backward_h(float *dinp, const float *dout, const uint16_t *out, long n, int accum,
                        int rnd);

/* Softmax cross-entropy, mean over the batch, computed stably with log-sum-exp.
 * logits (N, K), labels (N) in [0, K). Writes probs (N, K) (needed by backward) and returns the
 * mean loss. With soft targets (N, K) (rows summing to 1) instead of labels, pass labels = NULL.
 * Also returns the number of rows whose argmax equals the label in *correct (when labels given
 * and correct != NULL). */
double dt_xent_forward(float *probs, const float *logits, const int *labels, const float *targets,
                       int N, int K, int *correct);
/* dlogits (N, K) = (probs - target) / scale, target one-hot of labels or the soft targets.
 * scale is the batch size the loss is averaged over (N for a plain mean). */
void dt_xent_backward(float *dlogits, const float *probs, const int *labels, const float *targets,
                      int N, int K, float scale);

#endif
