/*
 * test_sampler_resume.c - mid-epoch resume of the DistributedSampler order (sampler.h,
 * dt_sampler_epoch_from): with the same world size the resumed shard is exactly the tail of the
 * uninterrupted one; with another world size (same global batch) every sample the interrupted
 * epoch had not consumed is dealt exactly once, none seen before is repeated (beyond the
 * padding that evens out the ranks).
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"
#include "sampler.h"

/* Counts how often each index is seen in positions [0, consumed) of world W's order plus the
 * resumed shards of world W2 from there; checks coverage. */
static void check_case(int64_t n, int w, int b, int64_t k, int w2, uint64_t seed, int drop_last)
{
    int *seen = dt_xcalloc((size_t)n, sizeof *seen);
    int64_t consumed = k * w * b;
    /* the interrupted run: k steps of world w */
    for (int r = 0; r < w; r++) {
        dt_sampler s;
        DT_ASSERT(dt_sampler_init(&s, n, w, r, seed, 1, drop_last) == 0);
        const int64_t *sh = dt_sampler_epoch(&s, 3);
        for (int64_t j = 0; j < k * b && j < s.shard_len; j++)
            seen[sh[j]]++;
        /* same world: resumed shard == tail of the uninterrupted shard */
        if (w2 == w) {
            int64_t full_len = s.shard_len;
            int64_t *tail = dt_xmalloc((size_t)full_len, sizeof *tail);
            memcpy(tail, sh, (size_t)full_len * sizeof *tail);
            const int64_t *rs = dt_sampler_epoch_from(&s, 3, consumed);
            CHECK(s.shard_len == (full_len > k * b ? full_len - k * b : 0));
            int same = 1;
            for (int64_t j = 0; j < s.shard_len; j++)
                same &= rs[j] == tail[k * b + j];
            CHECK(same);
            free(tail);
        }
        dt_sampler_free(&s);
    }
    /* the resumed run at world w2 */
    int64_t dealt = 0;
    for (int r = 0; r < w2; r++) {
        dt_sampler s;
        DT_ASSERT(dt_sampler_init(&s, n, w2, r, seed, 1, drop_last) == 0);
        const int64_t *sh = dt_sampler_epoch_from(&s, 3, consumed);
        for (int64_t j = 0; j < s.shard_len; j++)
            seen[sh[j]]++;
        dealt += s.shard_len;
        dt_sampler_free(&s);
    }
    int64_t never = 0, twice = 0;
    for (int64_t i = 0; i < n; i++) {
        never += seen[i] == 0;
        twice += seen[i] > 1;
    }
    if (drop_last) {
        CHECK(twice == 0); /* nothing repeats; the dropped tail is < w2 + w samples */
        CHECK(never < w + w2);
    } else {
        CHECK(never == 0);              /* every sample seen */
        CHECK(twice <= w2 - 1 + w - 1); /* only padding repeats */
    }
    CHECK(dealt >= (drop_last ? 0 : n - consumed));
    free(seen);
}

int main(void)
{
    /* (n, world, batch per rank, steps done, new world) with the global batch kept: w*b == w2*b2 */
    check_case(1000, 2, 32, 7, 2, 0, 0);
    check_case(1000, 2, 32, 7, 4, 0, 0);
    check_case(1000, 4, 16, 3, 2, 5, 0);
    check_case(1000, 3, 10, 5, 1, 1, 0);
    check_case(1001, 3, 10, 5, 5, 2, 0);
    check_case(997, 2, 8, 30, 3, 42, 0);
    check_case(997, 2, 8, 30, 2, 42, 0);
    check_case(997, 2, 8, 30, 3, 42, 1);
    check_case(100, 1, 7, 13, 4, 9, 0);
    check_case(100, 4, 5, 0, 3, 9, 0);
    return check_finish("test_sampler_resume");
}
