/*
 * gemm.h - C (M, N) (+)= op(A) (M, K) @ op(B) (K, N) (+ a bias row) for the linear layers:
 * row-major, float32, op(X) = X^T when the flag is set (lda/ldb are the row strides of A and B as
 * stored). A packed AVX2 + FMA kernel (gemm.c) where the CPU has them, else cblas_sgemm.
 * Not thread-safe: one packing buffer per process (a rank runs one step at a time).
 */
#ifndef DT_GEMM_H
#define DT_GEMM_H

/* bias (N) or NULL: added to every row; accum: add to C instead of overwriting it.
 * M, N, K >= 1. C must not alias A or B. */
void dt_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
             const float *bias, int accum, float *C, int ldc);
/* The same through cblas_sgemm (the fallback, and the tests' second opinion). */
void dt_gemm_blas(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                  int ldb, const float *bias, int accum, float *C, int ldc);
/* Allocates dt_gemm's packing buffers now (dt_net_build calls it: no allocation in a step). */
void dt_gemm_prepare(void);
/* 1 when dt_gemm runs the AVX2 kernel. dt_gemm_set_fast(0) makes it call cblas_sgemm (tests,
 * benchmarks); returns the previous setting. */
int dt_gemm_fast(void);
int dt_gemm_set_fast(int on);

#endif
