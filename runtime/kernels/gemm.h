/*
 * gemm.h - C (M, N) (+)= op(A) (M, K) @ op(B) (K, N) (+ a bias row) for the linear layers:
 * row-major, float32, op(X) = X^T when the flag is set (lda/ldb are the row strides of A and B as
 * stored). The packed kernel is written once over W float lanes (isa/gemm.c) and built per ISA
 * (isa.h); dt_gemm runs the table in use, or cblas_sgemm where that ISA's kernel is the slower.
 * Not reentrant: one pair of packing buffers per pool thread; dt_gemm splits a large product
 * over the pool (kernels/tpool.h) in panels of C, never the K reduction.
 */
#ifndef DT_GEMM_H
#define DT_GEMM_H

/* The signature of every GEMM here. bias (N) or NULL: added to every row; accum: add to C instead
 * of overwriting it. M, N, K >= 1. C must not alias A or B. */
typedef void dt_gemm_fn(int ta, int tb, int M, int N, int K, const float *A, int lda,
                        const float *B, int ldb, const float *bias, int accum, float *C, int ldc);

struct dt_kgemm; /* gemm_k.h */

/* Through the table in use (dt_kern_get()->gemm): its kernel, or cblas_sgemm where its blas flag
 * says so (or where no table is wired). */
dt_gemm_fn dt_gemm;
/* The bf16 GEMM of the table in use (kernels/bf16.h: op(A), op(B) rounded to bf16, vdpbf16ps),
 * split over the pool as dt_gemm_kern splits. */
dt_gemm_fn dt_bf16_gemm;
/* The same contract through cblas_sgemm (the tests' second opinion). */
dt_gemm_fn dt_gemm_blas;
/* The hand-written kernel of g, whatever g->blas says (tests, bench/sgemm_rate.c, the bf16 GEMM
 * of bf16.h), on the pool threads' packing buffers. */
void dt_gemm_kern(const struct dt_kgemm *g, int ta, int tb, int M, int N, int K, const float *A,
                  int lda, const float *B, int ldb, const float *bias, int accum, float *C,
                  int ldc);
/* Allocates the packing buffers now, sized for the largest blocks of every ISA this CPU runs,
 * fp32 and bf16 (dt_net_build and dt_net_set_precision call it: no allocation in a step). */
void dt_gemm_prepare(void);

#endif
