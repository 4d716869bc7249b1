/* xoshiro256** with splitmix64 seeding: small, fast, and its state is four words
 * that a checkpoint can store for an exact resume. */
#include "rng.h"

#include <pthread.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void rng_seed(Rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

/* rng_next and rng_uniform are inline, in rng.h. */

uint64_t rng_below(Rng *r, uint64_t n)
{
    /* Rejection keeps the result unbiased for any n. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = rng_next(r);
    while (x >= limit);
    return x % n;
}

/* ---- jumps ----
 * xoshiro256's state update is linear over GF(2): state' = M state for a fixed 256 x 256 bit matrix M whose
 * characteristic polynomial P has degree 256 (the generator's period is 2^256 - 1, so P is primitive). Hence
 * M^d = J(M) with J = x^d mod P, and the state after d draws is the sum of M^b state over J's set bits b. Vigna's
 * jump() is this for d = 2^128 with J written out; here P comes from the generator by Berlekamp-Massey. */

static uint64_t charpoly[4]; /* P's coefficients of x^0 .. x^255 (x^256's is 1) */
static pthread_once_t charpoly_once = PTHREAD_ONCE_INIT;

/* Berlekamp-Massey over GF(2) on 512 bits of one state bit: the shortest recurrence s[k] = sum c[i] s[k-i]
 * (i = 1..L) is P's, L = 256, since P is irreducible and so the minimal polynomial of any nonzero sequence. */
static void find_charpoly(void)
{
    enum { N = 512 };
    unsigned char s[N], c[N + 1] = {1}, b[N + 1] = {1}, t[N + 1];
    Rng r = {{1, 2, 3, 4}};
    int L = 0, m = 1;
    for (int k = 0; k < N; k++)
        s[k] = r.s[0] & 1, rng_next(&r);
    for (int n = 0; n < N; n++) {
        int d = s[n];
        for (int i = 1; i <= L; i++)
            d ^= c[i] & s[n - i];
        if (!d) {
            m++;
            continue;
        }
        memcpy(t, c, sizeof t);
        for (int i = 0; i + m <= N; i++)
            c[i + m] ^= b[i];
        if (2 * L <= n)
            L = n + 1 - L, memcpy(b, t, sizeof b), m = 1;
        else
            m++;
    }
    for (int k = 0; k < 256 && L == 256; k++) /* P = x^256 + sum c[i] x^(256 - i) */
        charpoly[k / 64] |= (uint64_t)c[256 - k] << (k % 64);
}

/* a = a * x mod P. */
static void times_x(uint64_t a[4])
{
    uint64_t top = a[3] >> 63;
    for (int w = 3; w > 0; w--)
        a[w] = a[w] << 1 | a[w - 1] >> 63;
    a[0] <<= 1;
    for (int w = 0; top && w < 4; w++)
        a[w] ^= charpoly[w];
}

/* r = a * b mod P (r may be a or b): the sum of a * x^i over b's set bits i. */
static void mulmod(uint64_t r[4], const uint64_t a[4], const uint64_t b[4])
{
    uint64_t acc[4] = {0}, p[4];
    memcpy(p, a, sizeof p);
    for (int i = 0; i < 256; i++) {
        if (b[i / 64] >> (i % 64) & 1)
            for (int w = 0; w < 4; w++)
                acc[w] ^= p[w];
        times_x(p);
    }
    memcpy(r, acc, sizeof acc);
}

void rng_jump_poly(RngJump *j, uint64_t d)
{
    uint64_t x[4] = {2, 0, 0, 0}, r[4] = {1, 0, 0, 0}; /* x, and x^0 */
    pthread_once(&charpoly_once, find_charpoly);
    for (uint64_t e = d; e; e >>= 1) { /* square and multiply over d's bits, lowest first */
        if (e & 1)
            mulmod(r, r, x);
        if (e > 1)
            mulmod(x, x, x);
    }
    j->d = d;
    memcpy(j->poly, r, sizeof r);
}

void rng_jump(Rng *r, const RngJump *j)
{
    uint64_t acc[4] = {0};
    for (int b = 0; b < 256; b++) {
        if (j->poly[b / 64] >> (b % 64) & 1)
            for (int w = 0; w < 4; w++)
                acc[w] ^= r->s[w];
        rng_next(r);
    }
    memcpy(r->s, acc, sizeof acc);
}

void rng_jump_cached(Rng *r, RngJump *cache, uint64_t d)
{
    if (d == 0)
        return;
    if (cache->d != d || !(cache->poly[0] | cache->poly[1] | cache->poly[2] | cache->poly[3]))
        rng_jump_poly(cache, d);
    rng_jump(r, cache);
}
