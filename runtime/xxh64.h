/*
 * xxh64.h - XXH64, the 64-bit variant of Yann Collet's xxHash: a fast non-cryptographic hash,
 * bitwise equal to the reference XXH64(data, len, seed). Checkpoints checksum every array with it
 * and the trainer's params_crc is one.
 *
 * Reference: https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md (test vectors in
 * tests/test_ckpt.c). Reads input bytes as little-endian words (little-endian hosts only).
 */
#ifndef DT_XXH64_H
#define DT_XXH64_H

#include <stddef.h>
#include <stdint.h>

/* XXH64 of len bytes. data may be NULL when len is 0. */
uint64_t dt_xxh64(const void *data, size_t len, uint64_t seed);

/* The same, streamed: init, update over consecutive pieces, digest == dt_xxh64 of the whole. */
typedef struct dt_xxh64_state {
    uint64_t v[4], total;
    unsigned char mem[32];
    unsigned memsize;
    uint64_t seed;
} dt_xxh64_state;
void dt_xxh64_init(dt_xxh64_state *s, uint64_t seed);
void dt_xxh64_update(dt_xxh64_state *s, const void *data, size_t len);
/* Does not change s: more updates may follow. */
uint64_t dt_xxh64_digest(const dt_xxh64_state *s);

#endif
