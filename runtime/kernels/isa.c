/*
 * isa.c - CPU features, the per-ISA tables of kernel entry points and the choice of one, see isa.h.
 *
 * Each family (gemm, lanes, elem, optim, bf16) adds one line per ISA to the tables below: a pointer
 * to its per-ISA table, defined by its source under runtime/kernels/isa/ (DT_KFN names).
 *
 * Test hook: DTRAIN_CPU_MASK=avx512f,avx512_bf16 (a comma-separated list of the feature names
 * below) makes this file treat those features as absent, so the choice of an ISA, its fallback
 * and the error for an ISA the CPU lacks can be tested on a CPU that has everything. It only
 * narrows what isa.c offers; it never claims a feature the CPU lacks.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kernels/bf16.h"
#include "kernels/bf16_conv.h"
#include "kernels/elem.h"
#include "kernels/gemm_k.h"
#include "kernels/isa.h"
#include "kernels/lanes.h"
#include "kernels/optim_k.h"

/* ---- CPU features (detected once) ---- */

typedef struct {
    int avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512dq, avx512bf16;
} cpu_features;

/* The feature names of DTRAIN_CPU_MASK and of the messages, with their fields. */
static const struct {
    const char *name;
    size_t off;
    dt_isa from; /* the lowest ISA that needs it */
} feature[] = {{"avx2", offsetof(cpu_features, avx2), DT_ISA_AVX2},
               {"fma", offsetof(cpu_features, fma), DT_ISA_AVX2},
               {"f16c", offsetof(cpu_features, f16c), DT_ISA_AVX2},
               {"avx512f", offsetof(cpu_features, avx512f), DT_ISA_AVX512},
               {"avx512bw", offsetof(cpu_features, avx512bw), DT_ISA_AVX512},
               {"avx512vl", offsetof(cpu_features, avx512vl), DT_ISA_AVX512},
               {"avx512dq", offsetof(cpu_features, avx512dq), DT_ISA_AVX512},
               {"avx512_bf16", offsetof(cpu_features, avx512bf16), DT_ISA_AVX512BF16}};
enum { NFEATURES = (int)(sizeof feature / sizeof feature[0]) };

static int *field(cpu_features *f, int i) { return (int *)((char *)f + feature[i].off); }

/* DTRAIN_CPU_MASK's first unknown name ("" if none) */
static char mask_bad[64];

/* Clears the features DTRAIN_CPU_MASK names; an unknown name is kept in mask_bad. */
static void apply_mask(cpu_features *f)
{
    const char *env = getenv("DTRAIN_CPU_MASK");
    if (!env)
        return;
    for (const char *p = env; *p;) {
        const size_t len = strcspn(p, ",");
        int hit = 0;
        for (int i = 0; i < NFEATURES; i++)
            if (len == strlen(feature[i].name) && strncmp(p, feature[i].name, len) == 0) {
                *field(f, i) = 0;
                hit = 1;
            }
        if (!hit && len > 0 && !mask_bad[0])
            snprintf(mask_bad, sizeof mask_bad, "%.*s", (int)(len < 60 ? len : 60), p);
        p += len + (p[len] == ',');
    }
}

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
        apply_mask(&f);
        done = 1;
    }
    return &f;
}

/* The features isa needs that this CPU lacks, as "avx512f avx512bw" (empty: it runs). */
static void missing(dt_isa isa, char *buf, size_t size)
{
    cpu_features f = *cpu();
    buf[0] = '\0';
#if !defined(__x86_64__)
    (void)f;
    if (isa != DT_ISA_GENERIC)
        snprintf(buf, size, "x86-64");
    return;
#else
    /* avx2w16 needs what avx2 needs */
    const dt_isa eff = isa == DT_ISA_AVX2W16 ? DT_ISA_AVX2 : isa;
    size_t at = 0;
    for (int i = 0; i < NFEATURES; i++)
        if (eff >= feature[i].from && !*field(&f, i) && at < size)
            at += (size_t)snprintf(buf + at, size - at, "%s%s", at ? " " : "", feature[i].name);
#endif
}

/* ---- the tables ---- */

#if defined(__x86_64__)
#define X86(...) __VA_ARGS__
#else
#define X86(...)
#endif

/* One ISA's table. fp32 families come from the build named `f32` (avx512bf16 runs avx512's fp32
 * code: the same source and flags), bf16 families from the ISA's own build. */
#define TABLE(own, f32, id, w, native)                                                             \
    {                                                                                              \
        .isa = id, .name = #own, .lanes = w, .bf16_native = native, .gemm = &dt_kgemm_##f32,       \
        .conv = &dt_klanes_##f32, .elem = &dt_kelem_##f32, .optim = &dt_koptim_##f32,              \
        .bf16 = &dt_kbf16_##own, .bf16conv = &dt_kbf16conv_##own                                   \
    }

static const dt_kern tables[DT_ISA_COUNT] = {
    [DT_ISA_GENERIC] = TABLE(generic, generic, DT_ISA_GENERIC, 4, 0),
    X86([DT_ISA_AVX2] = TABLE(avx2, avx2, DT_ISA_AVX2, 8, 0),
        [DT_ISA_AVX2W16] = TABLE(avx2w16, avx2w16, DT_ISA_AVX2W16, 16, 0),
        [DT_ISA_AVX512] = TABLE(avx512, avx512, DT_ISA_AVX512, 16, 0),
        [DT_ISA_AVX512BF16] = TABLE(avx512bf16, avx512, DT_ISA_AVX512BF16, 16, 1), )};

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

/* The one message for an ISA this CPU cannot run, naming the key that asked for it. */
static int lacks(const char *key, dt_isa isa)
{
    char lack[128];
    missing(isa, lack, sizeof lack);
    return dt_err("%s = %s: this CPU lacks %s (it runs generic up to %s)", key,
                  isa >= 0 && isa < DT_ISA_COUNT ? names[isa] : "?",
                  lack[0] ? lack : "it in this build", names[dt_isa_best()]);
}

int dt_kern_select(dt_isa isa)
{
    const dt_kern *t = dt_kern_table(isa);
    if (!t)
        return lacks("kernels.isa", isa);
    current = t;
    return DT_OK;
}

int dt_kern_resolve(int requested, dt_isa *isa)
{
    cpu();
    if (mask_bad[0])
        return dt_err("DTRAIN_CPU_MASK: unknown feature '%s': expected a comma-separated list of "
                      "avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512dq, avx512_bf16",
                      mask_bad);
    const char *key = "kernels.isa";
    *isa = dt_isa_best();
    if (requested >= 0 && requested < DT_ISA_COUNT) {
        *isa = (dt_isa)requested;
    } else {
        const char *env = getenv("DTRAIN_KERNELS_ISA");
        if (env && *env && dt_isa_parse(env, isa, NULL) != 0)
            return dt_err("DTRAIN_KERNELS_ISA = '%s': expected one of " DT_ISA_CHOICES, env);
        if (env && *env)
            key = "DTRAIN_KERNELS_ISA";
    }
    return dt_kern_table(*isa) ? DT_OK : lacks(key, *isa);
}

const char *dt_kern_describe(const dt_kern *k, char *buf, int size)
{
    snprintf(buf, (size_t)size, "%s (%d lanes, %s bf16)", k->name, k->lanes,
             k->bf16_native ? "native" : "emulated");
    return buf;
}

const dt_kern *dt_kern_get(void)
{
    if (!current) {
        dt_isa isa;
        if (dt_kern_resolve(-1, &isa) != 0 || dt_kern_select(isa) != 0) {
            fprintf(stderr, "dtrain: %s\n", dt_err_msg());
            exit(1);
        }
    }
    return current;
}
