/* The one PRNG of bnni: xoshiro256** seeded through splitmix64 (Blackman & Vigna).
 * Its whole state is four words, so checkpoints save it and a resumed run draws the same numbers. */
#ifndef BNNI_RNG_H
#define BNNI_RNG_H

#include <stdint.h>

typedef struct Rng {
    uint64_t s[4];
} Rng;

void rng_seed(Rng *r, uint64_t seed);

/* Inline: dropout draws one number per value, and a call per draw was most of its time. */
static inline uint64_t rng_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(Rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rng_rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 24 random bits. */
static inline float rng_uniform(Rng *r) { return (float)(rng_next(r) >> 40) * (1.0f / 16777216.0f); }
/* Uniform integer in [0, n), unbiased. */
uint64_t rng_below(Rng *r, uint64_t n);

/* A jump of the stream by d draws: rng_jump(r, j) leaves r where d calls of rng_next would, in 256 steps whatever
 * d, so that threads (or ranks) can each draw their own stretch of one stream. poly is x^d modulo the generator's
 * characteristic polynomial (all zero: not computed yet); computing it takes ~0.1 ms, so a caller that jumps by
 * the same d again keeps it. */
typedef struct RngJump {
    uint64_t d, poly[4];
} RngJump;

void rng_jump_poly(RngJump *j, uint64_t d);
void rng_jump(Rng *r, const RngJump *j);
/* rng_jump by d, through *cache: recomputed only when cache holds another distance. */
void rng_jump_cached(Rng *r, RngJump *cache, uint64_t d);

#endif
