/*
 * sampler.c - see sampler.h.
 */
#include "sampler.h"

#include <stdlib.h>

#include "common.h"
#include "rng.h"

int dt_sampler_init(dt_sampler *s, int64_t n, int world, int rank, uint64_t seed, int shuffle,
                    int drop_last)
{
    DT_ASSERT(world >= 1 && rank >= 0 && rank < world);
    s->n = n;
    s->world = world;
    s->rank = rank;
    s->seed = seed;
    s->shuffle = shuffle;
    s->drop_last = drop_last;
    s->perm = NULL;
    s->shard = NULL;
    s->epoch = -1;
    s->start = 0;
    s->shard_len = 0;
    if (n <= 0)
        return dt_err("sampler: the dataset is empty");
    if (drop_last && n % world != 0)
        s->num_samples = (n - world + world - 1) / world; /* ceil((n - W) / W) */
    else
        s->num_samples = (n + world - 1) / world;
    if (s->num_samples <= 0)
        return dt_err("sampler: %lld samples cannot fill %d ranks with drop_last", (long long)n,
                      world);
    s->total_size = s->num_samples * world;
    s->perm = dt_xcalloc((size_t)n, sizeof *s->perm); /* zeroed: no page faults in epoch 1 */
    s->shard = dt_xcalloc((size_t)s->num_samples, sizeof *s->shard);
    return DT_OK;
}

void dt_sampler_free(dt_sampler *s)
{
    if (!s)
        return;
    free(s->perm);
    free(s->shard);
    s->perm = s->shard = NULL;
}

const int64_t *dt_sampler_epoch(dt_sampler *s, int64_t epoch)
{
    return dt_sampler_epoch_from(s, epoch, 0);
}

const int64_t *dt_sampler_epoch_from(dt_sampler *s, int64_t epoch, int64_t start)
{
    DT_ASSERT(start >= 0 && start <= s->total_size + s->world);
    if (s->epoch == epoch && s->start == start)
        return s->shard;
    if (s->epoch != epoch && s->shuffle) {
        dt_mt19937 g;
        dt_mt_seed(&g, s->seed + (uint64_t)epoch);
        dt_randperm(s->perm, s->n, &g);
    } else if (s->epoch != epoch) {
        for (int64_t i = 0; i < s->n; i++)
            s->perm[i] = i;
    }
    /* Entries left for this world size: the padded (or truncated) end of the epoch's order. */
    int64_t len = s->num_samples;
    if (start > 0) {
        int64_t rest = s->n - start;
        if (rest <= 0)
            len = 0;
        else
            len = s->drop_last ? rest / s->world : (rest + s->world - 1) / s->world;
        if (len > s->num_samples)
            len = s->num_samples;
    }
    /* Position j of the padded/truncated list is perm[j % n]: padding repeats the head. */
    for (int64_t k = 0; k < len; k++) {
        int64_t j = start + s->rank + k * s->world;
        s->shard[k] = s->perm[j % s->n];
    }
    s->epoch = epoch;
    s->start = start;
    s->shard_len = len;
    return s->shard;
}

int64_t dt_sampler_num_batches(const dt_sampler *s, int batch)
{
    DT_ASSERT(batch > 0);
    int64_t len = s->epoch >= 0 ? s->shard_len : s->num_samples;
    return (len + batch - 1) / batch;
}
