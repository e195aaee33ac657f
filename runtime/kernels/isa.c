/*
 * isa.c - CPU features, the per-ISA tables of kernel entry points and the choice of one, see isa.h.
 *
 * Each family (gemm, lanes, elem, optim, bf16) adds one line per ISA to the tables below: a pointer
 * to its per-ISA table, defined by its source under runtime/kernels/isa/ (DT_KFN names).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kernels/bf16.h"
#include "kernels/bf16_conv.h"
#include "kernels/isa.h"

/* ---- CPU features (detected once) ---- */

typedef struct {
    int avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512dq, avx512bf16;
} cpu_features;

static const cpu_features *cpu(void)
{
    static cpu_features f;
    static int done;
    if (!done) {
#if defined(__x86_64__) && defined(__GNUC__)
        __builtin_cpu_init();
        f.avx2 = __builtin_cpu_supports("avx2");
        f.fma = __builtin_cpu_supports("fma");
        f.f16c = __builtin_cpu_supports("f16c");
        f.avx512f = __builtin_cpu_supports("avx512f");
        f.avx512bw = __builtin_cpu_supports("avx512bw");
        f.avx512vl = __builtin_cpu_supports("avx512vl");
        f.avx512dq = __builtin_cpu_supports("avx512dq");
        f.avx512bf16 = __builtin_cpu_supports("avx512bf16");
#endif
        done = 1;
    }
    return &f;
}

/* The features isa needs that this CPU lacks, as "avx512f avx512bw" (empty: it runs). */
static void missing(dt_isa isa, char *buf, size_t size)
{
    const cpu_features *f = cpu();
    buf[0] = '\0';
#if !defined(__x86_64__)
    if (isa != DT_ISA_GENERIC)
        snprintf(buf, size, "x86-64");
    return;
#endif
    struct {
        const char *name;
        int have;
        dt_isa from;
    } need[] = {{"avx2", f->avx2, DT_ISA_AVX2},
                {"fma", f->fma, DT_ISA_AVX2},
                {"f16c", f->f16c, DT_ISA_AVX2},
                {"avx512f", f->avx512f, DT_ISA_AVX512},
                {"avx512bw", f->avx512bw, DT_ISA_AVX512},
                {"avx512vl", f->avx512vl, DT_ISA_AVX512},
                {"avx512dq", f->avx512dq, DT_ISA_AVX512},
                {"avx512_bf16", f->avx512bf16, DT_ISA_AVX512BF16}};
    size_t at = 0;
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        /* avx2w16 needs what avx2 needs */
        const dt_isa eff = isa == DT_ISA_AVX2W16 ? DT_ISA_AVX2 : isa;
        if (eff >= need[i].from && !need[i].have && at < size)
            at += (size_t)snprintf(buf + at, size - at, "%s%s", at ? " " : "", need[i].name);
    }
}

/* ---- the tables ---- */

#if defined(__x86_64__)
#define X86(...) __VA_ARGS__
#else
#define X86(...)
#endif

static const dt_kern tables[DT_ISA_COUNT] = {
    [DT_ISA_GENERIC] = {.isa = DT_ISA_GENERIC,
                        .name = "generic",
                        .lanes = 4,
                        .bf16 = &dt_kbf16_generic,
                        .bf16conv = &dt_kbf16conv_generic},
    X86([DT_ISA_AVX2] = {.isa = DT_ISA_AVX2,
                         .name = "avx2",
                         .lanes = 8,
                         .bf16 = &dt_kbf16_avx2,
                         .bf16conv = &dt_kbf16conv_avx2},
        [DT_ISA_AVX2W16] = {.isa = DT_ISA_AVX2W16,
                            .name = "avx2w16",
                            .lanes = 16,
                            .bf16 = &dt_kbf16_avx2w16,
                            .bf16conv = &dt_kbf16conv_avx2w16},
        [DT_ISA_AVX512] = {.isa = DT_ISA_AVX512,
                           .name = "avx512",
                           .lanes = 16,
                           .bf16 = &dt_kbf16_avx512,
                           .bf16conv = &dt_kbf16conv_avx512},
        [DT_ISA_AVX512BF16] = {.isa = DT_ISA_AVX512BF16,
                               .name = "avx512bf16",
                               .lanes = 16,
                               .bf16_native = 1,
                               .bf16 = &dt_kbf16_avx512bf16,
                               .bf16conv = &dt_kbf16conv_avx512bf16}, )};

static const char *const names[DT_ISA_COUNT] = {"generic", "avx2", "avx2w16", "avx512",
                                                "avx512bf16"};

const char *dt_isa_name(dt_isa isa)
{
    DT_ASSERT(isa >= 0 && isa < DT_ISA_COUNT);
    return names[isa];
}

int dt_isa_parse(const char *s, dt_isa *isa, int *is_auto)
{
    if (is_auto)
        *is_auto = 0;
    if (strcmp(s, "auto") == 0) {
        *isa = dt_isa_best();
        if (is_auto)
            *is_auto = 1;
        return DT_OK;
    }
    for (int i = 0; i < DT_ISA_COUNT; i++)
        if (strcmp(s, names[i]) == 0) {
            *isa = (dt_isa)i;
            return DT_OK;
        }
    return DT_ERR;
}

const dt_kern *dt_kern_table(dt_isa isa)
{
    if (isa < 0 || isa >= DT_ISA_COUNT || !tables[isa].name)
        return NULL;
    char lack[128];
    missing(isa, lack, sizeof lack);
    return lack[0] ? NULL : &tables[isa];
}

dt_isa dt_isa_best(void)
{
    const dt_isa order[] = {DT_ISA_AVX512BF16, DT_ISA_AVX512, DT_ISA_AVX2};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (dt_kern_table(order[i]))
            return order[i];
    return DT_ISA_GENERIC;
}

static const dt_kern *current;

int dt_kern_select(dt_isa isa)
{
    const dt_kern *t = dt_kern_table(isa);
    if (!t) {
        char lack[128];
        missing(isa, lack, sizeof lack);
        return dt_err("kernels.isa = %s: this CPU lacks %s (it runs up to %s)",
                      isa >= 0 && isa < DT_ISA_COUNT ? names[isa] : "?",
                      lack[0] ? lack : "it in this build", names[dt_isa_best()]);
    }
    current = t;
    return DT_OK;
}

const dt_kern *dt_kern_get(void)
{
    if (!current) {
        const char *env = getenv("DTRAIN_KERNELS_ISA");
        dt_isa isa = dt_isa_best();
        if (env && *env && dt_isa_parse(env, &isa, NULL) != 0) {
            dt_err("DTRAIN_KERNELS_ISA = %s: expected auto, generic, avx2, avx2w16, avx512 or "
                   "avx512bf16",
                   env);
            exit(1);
        }
        if (dt_kern_select(isa) != 0)
            exit(1);
    }
    return current;
}
