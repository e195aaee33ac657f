/*
 * sampler.h - torch.utils.data.DistributedSampler with PyTorch's exact semantics (torch 1.13,
 * torch/utils/data/distributed.py):
 *
 *   num_samples = ceil((N - W) / W) if drop_last and N % W != 0 else ceil(N / W)
 *   total_size  = num_samples * W
 *   indices     = randperm(N, generator seeded with seed + epoch) if shuffle else 0..N-1
 *   not drop_last: pad by repeating the head of `indices` (cyclically when padding > N)
 *   drop_last:     truncate to total_size
 *   rank r takes indices[r : total_size : W]
 *
 * Ranks then cut their shard into batches of `batch` (the DataLoader's batch_size per rank);
 * the last batch may be short (DataLoader drop_last=False), and it is equally short on every rank.
 */
#ifndef DT_SAMPLER_H
#define DT_SAMPLER_H

#include <stdint.h>

typedef struct dt_sampler {
    int64_t n; /* dataset size */
    int world, rank;
    uint64_t seed;
    int shuffle, drop_last;
    int64_t num_samples; /* this rank's shard length */
    int64_t total_size;  /* num_samples * world */
    int64_t *perm;       /* (n) scratch: the epoch's permutation */
    int64_t *shard;      /* (num_samples) this rank's indices for the current epoch */
    int64_t epoch;       /* epoch the shard was built for, -1 none */
    int64_t start;       /* global position the shard starts at (0 unless resumed mid-epoch) */
    int64_t shard_len;   /* entries of shard in use: num_samples, or fewer when resumed */
} dt_sampler;

/* Sets up a sampler for a dataset of n samples. Returns 0, or DT_ERR (message recorded) when
 * the shard would be empty (n < world with drop_last, or n == 0). */
int dt_sampler_init(dt_sampler *s, int64_t n, int world, int rank, uint64_t seed, int shuffle,
                    int drop_last);
void dt_sampler_free(dt_sampler *s);

/* Builds this rank's shard for `epoch` (like set_epoch + iter). Returns s->shard. */
const int64_t *dt_sampler_epoch(dt_sampler *s, int64_t epoch);

/* Number of batches of size `batch` in the current shard (last one may be short). */
int64_t dt_sampler_num_batches(const dt_sampler *s, int batch);

/* Mid-epoch resume: the epoch's global order (the permutation padded by repeating its head, as
 * above) with its first `start` positions already consumed, the rest dealt to THIS world size:
 * rank r takes positions start + r, start + r + W, ... up to the epoch's padded end
 * (start + ceil((n - start) / W) * W; with drop_last, floor). With the world size of the
 * interrupted run (start a multiple of W) this is exactly the tail of the uninterrupted shard;
 * with another world size every unconsumed sample is still dealt exactly once (plus padding).
 * Returns s->shard; s->shard_len says how many entries. */
const int64_t *dt_sampler_epoch_from(dt_sampler *s, int64_t epoch, int64_t start);

#endif
