/*
 * test_sampler.c - dt_sampler and dt_randperm against PyTorch 1.13: the index lists of
 * torch.utils.data.distributed.DistributedSampler and torch.randperm recorded in
 * tests/fixtures/sampler_ref.txt (made by tests/fixtures/gen_sampler.py), plus properties that
 * hold whatever the reference: one epoch over all ranks covers the dataset (exactly once with
 * drop_last; at least once without it, the duplicates being the padding taken from the head of
 * the permutation), epochs differ, and an empty shard is an error.
 *
 * usage: test_sampler [tests/fixtures/sampler_ref.txt]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"
#include "rng.h"
#include "sampler.h"

#define CK_MOD ((UINT64_C(1) << 61) - 1)

/* sum_p (v_p + 1) * (p + 1) mod 2^61 - 1, as gen_sampler.py computes it. */
static uint64_t checksum(const int64_t *v, int64_t n)
{
    uint64_t s = 0;
    for (int64_t p = 0; p < n; p++) {
        uint64_t t = ((uint64_t)v[p] + 1) * ((uint64_t)p + 1); /* < 2^62 for n < 2^31 */
        s = (s + t % CK_MOD) % CK_MOD;
    }
    return s;
}

/* Reads the next token, skipping '#' comments. Returns 0 at end of file. */
static int next_token(FILE *f, char buf[64])
{
    for (;;) {
        if (fscanf(f, "%63s", buf) != 1)
            return 0;
        if (buf[0] != '#')
            return 1;
        int c;
        while ((c = fgetc(f)) != EOF && c != '\n')
            ;
    }
}

static int read_i64(FILE *f, int64_t *v)
{
    long long x;
    if (fscanf(f, "%lld", &x) != 1)
        return 0;
    *v = (int64_t)x;
    return 1;
}

static int read_u64(FILE *f, uint64_t *v)
{
    unsigned long long x;
    if (fscanf(f, "%llu", &x) != 1)
        return 0;
    *v = (uint64_t)x;
    return 1;
}

static int sampler_cases, perm_cases, ref_failures;

/* sampler N W RANK SEED SHUFFLE DROP_LAST EPOCH NUM_SAMPLES K CHECKSUM idx... */
static int check_sampler_line(FILE *f)
{
    int64_t n, w, r, shuffle, dl, epoch, ns, k;
    uint64_t seed, ck;
    if (!read_i64(f, &n) || !read_i64(f, &w) || !read_i64(f, &r) || !read_u64(f, &seed) ||
        !read_i64(f, &shuffle) || !read_i64(f, &dl) || !read_i64(f, &epoch) || !read_i64(f, &ns) ||
        !read_i64(f, &k) || !read_u64(f, &ck) || k < 0 || k > ns)
        return 0;
    int64_t *want = dt_xmalloc((size_t)(k ? k : 1), sizeof *want);
    for (int64_t i = 0; i < k; i++)
        if (!read_i64(f, &want[i])) {
            free(want);
            return 0;
        }
    dt_sampler s;
    int rc = dt_sampler_init(&s, n, (int)w, (int)r, seed, (int)shuffle, (int)dl);
    int ok = rc == 0 && s.num_samples == ns && s.total_size == ns * w;
    if (ok) {
        /* an earlier epoch first, so the shard for `epoch` is rebuilt, not left from init */
        dt_sampler_epoch(&s, epoch + 1);
        const int64_t *shard = dt_sampler_epoch(&s, epoch);
        ok = checksum(shard, ns) == ck && memcmp(shard, want, (size_t)k * sizeof *want) == 0;
    }
    CHECK(ok);
    if (!ok && ref_failures++ < 10)
        fprintf(stderr,
                "  sampler N=%lld W=%lld rank=%lld seed=%llu shuffle=%lld drop_last=%lld "
                "epoch=%lld: differs from torch (init rc %d, num_samples %lld, expected %lld)\n",
                (long long)n, (long long)w, (long long)r, (unsigned long long)seed,
                (long long)shuffle, (long long)dl, (long long)epoch, rc,
                rc == 0 ? (long long)s.num_samples : -1LL, (long long)ns);
    dt_sampler_free(&s);
    free(want);
    sampler_cases++;
    return 1;
}

/* perm N SEED CALL K CHECKSUM p... */
static int check_perm_line(FILE *f)
{
    int64_t n, call, k;
    uint64_t seed, ck;
    if (!read_i64(f, &n) || !read_u64(f, &seed) || !read_i64(f, &call) || !read_i64(f, &k) ||
        !read_u64(f, &ck) || n < 0 || k < 0 || k > n || call < 0)
        return 0;
    int64_t *want = dt_xmalloc((size_t)(k ? k : 1), sizeof *want);
    for (int64_t i = 0; i < k; i++)
        if (!read_i64(f, &want[i])) {
            free(want);
            return 0;
        }
    int64_t *p = dt_xmalloc((size_t)(n ? n : 1), sizeof *p);
    dt_mt19937 g;
    dt_mt_seed(&g, seed);
    for (int64_t c = 0; c <= call; c++)
        dt_randperm(p, n, &g);
    int ok = checksum(p, n) == ck && memcmp(p, want, (size_t)k * sizeof *want) == 0;
    CHECK(ok);
    if (!ok && ref_failures++ < 10)
        fprintf(stderr, "  randperm n=%lld seed=%llu call=%lld differs from torch\n", (long long)n,
                (unsigned long long)seed, (long long)call);
    free(p);
    free(want);
    perm_cases++;
    return 1;
}

static void check_fixture(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "FAIL test_sampler: cannot open %s\n", path);
        check_failed++;
        return;
    }
    char tok[64];
    int bad = 0;
    while (!bad && next_token(f, tok)) {
        if (strcmp(tok, "sampler") == 0)
            bad = !check_sampler_line(f);
        else if (strcmp(tok, "perm") == 0)
            bad = !check_perm_line(f);
        else
            bad = 1;
    }
    fclose(f);
    if (bad)
        fprintf(stderr, "FAIL test_sampler: %s: malformed near '%s'\n", path, tok);
    CHECK(!bad);
    /* the fixture was read to the end and holds what gen_sampler.py writes */
    CHECK(sampler_cases > 2000);
    CHECK(perm_cases > 40);
}

/* One epoch over all W ranks covers the dataset as DistributedSampler promises. */
static void check_coverage(int64_t n, int w, uint64_t seed, int shuffle, int dl, int64_t epoch)
{
    dt_sampler *s = dt_xcalloc((size_t)w, sizeof *s);
    int64_t *count = dt_xcalloc((size_t)n, sizeof *count);
    int64_t *extra = dt_xcalloc((size_t)n, sizeof *extra);
    int64_t *perm = dt_xmalloc((size_t)n, sizeof *perm);
    int ok = 1;
    int64_t total = 0;
    for (int r = 0; r < w; r++) {
        if (dt_sampler_init(&s[r], n, w, r, seed, shuffle, dl) != 0) {
            ok = 0;
            break;
        }
        const int64_t *shard = dt_sampler_epoch(&s[r], epoch);
        for (int64_t k = 0; k < s[r].num_samples; k++) {
            if (shard[k] < 0 || shard[k] >= n) {
                ok = 0;
                continue;
            }
            count[shard[k]]++;
        }
        total += s[r].num_samples;
        ok = ok && s[r].num_samples == s[0].num_samples; /* every rank the same length */
    }
    if (ok) {
        int64_t ts = s[0].total_size;
        ok = total == ts && ts == s[0].num_samples * w;
        if (shuffle) {
            dt_mt19937 g;
            dt_mt_seed(&g, seed + (uint64_t)epoch);
            dt_randperm(perm, n, &g);
        } else {
            for (int64_t i = 0; i < n; i++)
                perm[i] = i;
        }
        if (dl) {
            /* no duplicates: exactly total_size distinct indices, the head of the permutation */
            ok = ok && ts <= n && ts > n - w;
            for (int64_t j = 0; j < ts && ok; j++)
                ok = count[perm[j]] == 1;
            int64_t distinct = 0;
            for (int64_t i = 0; i < n; i++)
                distinct += count[i] > 0;
            ok = ok && distinct == ts;
        } else {
            /* every index at least once; the extra copies are the padding perm[j % n], j >= n */
            ok = ok && ts >= n && ts < n + w;
            for (int64_t j = n; j < ts; j++)
                extra[perm[j % n]]++;
            for (int64_t i = 0; i < n && ok; i++)
                ok = count[i] == 1 + extra[i];
        }
    }
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  coverage N=%lld W=%d seed=%llu shuffle=%d drop_last=%d epoch=%lld\n",
                (long long)n, w, (unsigned long long)seed, shuffle, dl, (long long)epoch);
    for (int r = 0; r < w; r++)
        dt_sampler_free(&s[r]);
    free(s);
    free(count);
    free(extra);
    free(perm);
}

static void check_epochs(void)
{
    dt_sampler s;
    DT_ASSERT(dt_sampler_init(&s, 1000, 3, 1, 42, 1, 0) == 0);
    int64_t ns = s.num_samples;
    int64_t *e0 = dt_xmalloc((size_t)ns, sizeof *e0), *e1 = dt_xmalloc((size_t)ns, sizeof *e1);
    memcpy(e0, dt_sampler_epoch(&s, 0), (size_t)ns * sizeof *e0);
    memcpy(e1, dt_sampler_epoch(&s, 1), (size_t)ns * sizeof *e1);
    CHECK(memcmp(e0, e1, (size_t)ns * sizeof *e0) != 0);                      /* epochs differ */
    CHECK(memcmp(dt_sampler_epoch(&s, 1), e1, (size_t)ns * sizeof *e1) == 0); /* same again */
    CHECK(memcmp(dt_sampler_epoch(&s, 0), e0, (size_t)ns * sizeof *e0) == 0); /* back to 0 */
    /* seed + epoch: seed 42 epoch 1 is seed 43 epoch 0 */
    dt_sampler t;
    DT_ASSERT(dt_sampler_init(&t, 1000, 3, 1, 43, 1, 0) == 0);
    CHECK(memcmp(dt_sampler_epoch(&t, 0), e1, (size_t)ns * sizeof *e1) == 0);
    dt_sampler_free(&t);
    /* only the low 32 bits of seed + epoch matter (torch's manual_seed) */
    DT_ASSERT(dt_sampler_init(&t, 1000, 3, 1, (UINT64_C(1) << 32) + 42, 1, 0) == 0);
    CHECK(memcmp(dt_sampler_epoch(&t, 1), e1, (size_t)ns * sizeof *e1) == 0);
    dt_sampler_free(&t);
    /* without shuffle every epoch is the same */
    DT_ASSERT(dt_sampler_init(&t, 10, 3, 2, 42, 0, 0) == 0);
    const int64_t want[4] = {2, 5, 8, 1};
    CHECK(memcmp(dt_sampler_epoch(&t, 0), want, sizeof want) == 0);
    CHECK(memcmp(dt_sampler_epoch(&t, 5), want, sizeof want) == 0);
    dt_sampler_free(&t);
    /* number of batches: ceil(num_samples / batch) */
    CHECK(dt_sampler_num_batches(&s, 1) == 334);
    CHECK(dt_sampler_num_batches(&s, 334) == 1);
    CHECK(dt_sampler_num_batches(&s, 100) == 4);
    CHECK(dt_sampler_num_batches(&s, 1000) == 1);
    dt_sampler_free(&s);
    free(e0);
    free(e1);
}

static void check_errors(void)
{
    dt_sampler s;
    CHECK(dt_sampler_init(&s, 0, 1, 0, 0, 1, 0) != 0); /* empty dataset */
    dt_sampler_free(&s);
    CHECK(dt_sampler_init(&s, 3, 4, 0, 0, 1, 1) != 0); /* N < W with drop_last */
    CHECK(strlen(dt_err_msg()) > 0);
    dt_sampler_free(&s);
    CHECK(dt_sampler_init(&s, 3, 4, 3, 0, 1, 0) == 0); /* without drop_last: padded */
    CHECK(s.num_samples == 1 && s.total_size == 4);
    dt_sampler_free(&s);
    CHECK(dt_sampler_init(&s, 4, 4, 3, 0, 1, 1) == 0); /* N == W with drop_last */
    CHECK(s.num_samples == 1);
    dt_sampler_free(&s);
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "tests/fixtures/sampler_ref.txt";
    check_fixture(path);
    printf("test_sampler: %d sampler lists and %d permutations compared with torch\n",
           sampler_cases, perm_cases);

    static const int64_t ns[] = {1, 2, 3, 5, 10, 17, 100, 1237, 60000};
    static const int ws[] = {1, 2, 3, 4, 7, 16};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (size_t j = 0; j < sizeof ws / sizeof ws[0]; j++)
            for (int dl = 0; dl <= 1; dl++) {
                if (dl && ns[i] < ws[j])
                    continue;
                check_coverage(ns[i], ws[j], 7, 1, dl, 2);
                if (ns[i] <= 100)
                    check_coverage(ns[i], ws[j], 7, 0, dl, 0);
            }
    check_coverage(60000, 5, UINT64_C(1) << 40, 1, 0, 9);
    check_epochs();
    check_errors();
    return check_finish("test_sampler");
}
