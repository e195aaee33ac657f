/*
 * gemm_k.h - the gemm family's per-ISA table (isa.h): what runtime/kernels/isa/gemm.c defines once
 * per ISA and runtime/kernels/isa.c lists. Apart from gemm.h so that isa.c, which fills the tables,
 * and gemm.c, which picks one through dt_kern_get, do not include each other.
 */
#ifndef DT_GEMM_K_H
#define DT_GEMM_K_H

#include <stddef.h>

/* One ISA's GEMM (the gemm family of isa.h), defined by isa/gemm.c per ISA. */
struct dt_kgemm {
    int mr, nr;     /* the register tile: MR rows (broadcasts) x NR columns (NR / W vectors) */
    int mc, kc, nc; /* cache blocks: op(A) MC x KC packed, op(B) KC x NC packed */
    int blas;       /* 1: dt_gemm calls cblas_sgemm on this ISA (the library measured faster) */
    size_t pack_a;  /* floats of the packing buffers run needs (blocks + transpose spill) */
    size_t pack_b;
    /* the hand-written product, gemm.h's dt_gemm_fn contract, packing into pa and pb */
    void (*run)(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                int ldb, const float *bias, int accum, float *C, int ldc, float *pa, float *pb);
};
extern const struct dt_kgemm dt_kgemm_generic, dt_kgemm_avx2, dt_kgemm_avx2w16, dt_kgemm_avx512;

#endif
