/* The one PRNG of bnni: xoshiro256** seeded through splitmix64 (Blackman & Vigna).
 * Its whole state is four words, so checkpoints save it and a resumed run draws the same numbers. */
#ifndef BNNI_RNG_H
#define BNNI_RNG_H

#include <stdint.h>

typedef struct Rng {
    uint64_t s[4];
} Rng;

void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_next(Rng *r);
/* Uniform in [0, 1) with 24 random bits. */
float rng_uniform(Rng *r);
/* Uniform integer in [0, n), unbiased. */
uint64_t rng_below(Rng *r, uint64_t n);

#endif
