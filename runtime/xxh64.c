/*
 * xxh64.c - XXH64 (see xxh64.h), written from the specification
 * https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md.
 */
#include "xxh64.h"

#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "xxh64.c reads input words in host order: little-endian hosts only"
#endif

static const uint64_t P1 = 0x9E3779B185EBCA87ULL, P2 = 0xC2B2AE3D27D4EB4FULL,
                      P3 = 0x165667B19E3779F9ULL, P4 = 0x85EBCA77C2B2AE63ULL,
                      P5 = 0x27D4EB2F165667C5ULL;

static inline uint64_t rotl64(uint64_t x, unsigned r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t rd64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t rd32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t xx_round(uint64_t acc, uint64_t in)
{
    acc += in * P2;
    acc = rotl64(acc, 31);
    return acc * P1;
}

static inline uint64_t xx_merge(uint64_t acc, uint64_t val)
{
    acc ^= xx_round(0, val);
    return acc * P1 + P4;
}

void dt_xxh64_init(dt_xxh64_state *s, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->seed = seed;
    s->v[0] = seed + P1 + P2;
    s->v[1] = seed + P2;
    s->v[2] = seed;
    s->v[3] = seed - P1;
}

void dt_xxh64_update(dt_xxh64_state *s, const void *data, size_t len)
{
    if (len == 0)
        return;
    const unsigned char *p = data;
    s->total += len;
    if (s->memsize + len < 32) {
        memcpy(s->mem + s->memsize, p, len);
        s->memsize += (unsigned)len;
        return;
    }
    uint64_t v0 = s->v[0], v1 = s->v[1], v2 = s->v[2], v3 = s->v[3];
    if (s->memsize) {
        size_t fill = 32 - s->memsize;
        memcpy(s->mem + s->memsize, p, fill);
        v0 = xx_round(v0, rd64(s->mem));
        v1 = xx_round(v1, rd64(s->mem + 8));
        v2 = xx_round(v2, rd64(s->mem + 16));
        v3 = xx_round(v3, rd64(s->mem + 24));
        p += fill;
        len -= fill;
        s->memsize = 0;
    }
    while (len >= 32) {
        v0 = xx_round(v0, rd64(p));
        v1 = xx_round(v1, rd64(p + 8));
        v2 = xx_round(v2, rd64(p + 16));
        v3 = xx_round(v3, rd64(p + 24));
        p += 32;
        len -= 32;
    }
    s->v[0] = v0, s->v[1] = v1, s->v[2] = v2, s->v[3] = v3;
    if (len) {
        memcpy(s->mem, p, len);
        s->memsize = (unsigned)len;
    }
}

uint64_t dt_xxh64_digest(const dt_xxh64_state *s)
{
    uint64_t h;
    if (s->total >= 32) {
        h = rotl64(s->v[0], 1) + rotl64(s->v[1], 7) + rotl64(s->v[2], 12) + rotl64(s->v[3], 18);
        for (int i = 0; i < 4; i++)
            h = xx_merge(h, s->v[i]);
    } else {
        h = s->seed + P5;
    }
    h += s->total;
    const unsigned char *p = s->mem;
    size_t len = s->memsize;
    while (len >= 8) {
        h ^= xx_round(0, rd64(p));
        h = rotl64(h, 27) * P1 + P4;
        p += 8;
        len -= 8;
    }
    if (len >= 4) {
        h ^= (uint64_t)rd32(p) * P1;
        h = rotl64(h, 23) * P2 + P3;
        p += 4;
        len -= 4;
    }
    while (len) {
        h ^= (uint64_t)*p * P5;
        h = rotl64(h, 11) * P1;
        p++;
        len--;
    }
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

uint64_t dt_xxh64(const void *data, size_t len, uint64_t seed)
{
    dt_xxh64_state s;
    dt_xxh64_init(&s, seed);
    dt_xxh64_update(&s, data, len);
    return dt_xxh64_digest(&s);
}
