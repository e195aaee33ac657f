/*
 * isa.h - the kernel layer's instruction sets and their tables of entry points (issue 12).
 *
 * CPU features are detected once (isa.c; the test hook DTRAIN_CPU_MASK hides some). One table
 * per instruction set lists every hot kernel of that ISA, grouped by family; each family's table
 * type is declared by the family's own header and filled by its per-ISA source under
 * runtime/kernels/isa/ (built once per ISA, isa/vec.h):
 *
 *   family   header            what
 *   gemm     kernels/gemm.h    fp32 packed GEMM of the linear layers (and im2col convolutions)
 *   lanes    kernels/lanes.h   batch-lane convolutions (W images per register), fused
 *                              conv + ReLU + 2x2 max pool
 *   elem     kernels/elem.h    elementwise, pooling, BatchNorm, rounding loops
 *   optim    kernels/optim_k.h the optimizers' update loops
 *   bf16     kernels/bf16.h    bf16 conversion, the vdpbf16ps dot (native or its bit-exact
 *                              emulation, isa/bf16_vec.h) and the bf16 GEMM of the linear layers
 *   bf16conv kernels/bf16_conv.h  bf16 batch-lane convolutions
 *
 * Exactly one table is in use per process (dt_kern_get), chosen once: kernels.isa = auto (the best
 * the CPU runs) unless the configuration or DTRAIN_KERNELS_ISA names one; the training command
 * agrees it across ranks (the lowest common ISA). Code outside runtime/kernels/ never names an ISA:
 * it calls the public kernels (dt_gemm, dt_conv2d_forward, ...), which go through the table.
 */
#ifndef DT_KERNELS_ISA_H
#define DT_KERNELS_ISA_H

/* In order of capability (the lowest common ISA of two ranks is the smaller). avx2w16 is the
 * 16-lane (AVX-512) instantiation compiled for AVX2: it runs wherever avx2 does, computes what
 * avx512 computes bitwise, and exists for tests (and for kernels.isa = avx2w16 runs that check
 * it). */
typedef enum {
    DT_ISA_GENERIC = 0,
    DT_ISA_AVX2 = 1,
    DT_ISA_AVX2W16 = 2,
    DT_ISA_AVX512 = 3,
    DT_ISA_AVX512BF16 = 4,
    DT_ISA_COUNT = 5
} dt_isa;

struct dt_kgemm;
struct dt_klanes;
struct dt_kelem;
struct dt_koptim;
struct dt_kbf16;
struct dt_kbf16conv;

typedef struct dt_kern {
    dt_isa isa;
    const char *name; /* "generic", "avx2", "avx2w16", "avx512", "avx512bf16" */
    int lanes;        /* float lanes of its vectors: 4, 8 or 16 */
    int bf16_native;  /* 1: vdpbf16ps in hardware; 0: its bit-exact emulation */
    const struct dt_kgemm *gemm;
    const struct dt_klanes *conv;
    const struct dt_kelem *elem;
    const struct dt_koptim *optim;
    const struct dt_kbf16 *bf16;
    const struct dt_kbf16conv *bf16conv;
} dt_kern;

/* The values of kernels.isa (config.c's CHOICE: "auto" first, then the dt_isa order). */
#define DT_ISA_CHOICES "auto|generic|avx2|avx2w16|avx512|avx512bf16"

/* The table in use. The first call without a dt_kern_select picks what dt_kern_resolve(-1) gives
 * (DTRAIN_KERNELS_ISA, or the best this CPU runs); an error there (a bad variable, an ISA the CPU
 * lacks) prints its message and exits 1: commands resolve and select before any kernel runs. */
const dt_kern *dt_kern_get(void);
/* The table of isa, or NULL when this CPU cannot run it (or this build lacks it: non-x86). */
const dt_kern *dt_kern_table(dt_isa isa);
/* Makes isa's table the one in use. Returns 0, or DT_ERR with one message naming the ISA and the
 * CPU features it lacks. */
int dt_kern_select(dt_isa isa);
/* The ISA a run asks for: `requested` (a dt_isa: kernels.isa named one), or for auto (-1) the
 * DTRAIN_KERNELS_ISA environment variable when set and not "auto", else dt_isa_best(). Returns
 * 0, or DT_ERR with one message: a bad DTRAIN_CPU_MASK or DTRAIN_KERNELS_ISA value, or an ISA
 * this CPU cannot run (naming the key that asked for it, the ISA and the missing features).
 * Selects nothing (dt_kern_select does). */
int dt_kern_resolve(int requested, dt_isa *isa);

/* "avx512bf16 (16 lanes, native bf16)": k's name, lanes and bf16 arithmetic, for run headers.
 * Returns buf. */
const char *dt_kern_describe(const dt_kern *k, char *buf, int size);

/* The best ISA this CPU runs (never avx2w16). */
dt_isa dt_isa_best(void);
const char *dt_isa_name(dt_isa isa);
/* "auto" (-> *isa = dt_isa_best(), *is_auto = 1) or an ISA's name. 0, or DT_ERR (no message). */
int dt_isa_parse(const char *s, dt_isa *isa, int *is_auto);

#endif
