/* rng: jumps of the stream (rng_jump) land where as many rng_next calls do, for distances below and far above
 * the generator's 256 state bits, and compose; the cached form recomputes when the distance changes. The
 * reference is the plain sequence of draws. */
#include <criterion/criterion.h>
#include <string.h>

#include "runtime/rng.h"

static Rng drawn(uint64_t seed, uint64_t d)
{
    Rng r;
    rng_seed(&r, seed);
    for (uint64_t i = 0; i < d; i++)
        rng_next(&r);
    return r;
}

Test(rng, jump_lands_where_the_draws_do)
{
    const uint64_t ds[] = {0, 1, 2, 63, 64, 255, 256, 257, 511, 4096, 50176, 100003, 1000000};
    for (size_t k = 0; k < sizeof ds / sizeof ds[0]; k++) {
        Rng want = drawn(11 + k, ds[k]), got;
        RngJump j;
        rng_seed(&got, 11 + k);
        rng_jump_poly(&j, ds[k]);
        rng_jump(&got, &j);
        cr_expect(memcmp(&want, &got, sizeof want) == 0, "a jump by %llu is not %llu draws",
                  (unsigned long long)ds[k], (unsigned long long)ds[k]);
        cr_expect_eq(rng_next(&got), rng_next(&want), "the draw after a jump by %llu differs",
                     (unsigned long long)ds[k]);
    }
}

/* Far jumps cannot be checked draw by draw: 2^62 + 2^62 (two jumps) must be 2^63 (one), and 2^40 + 12345 jumped
 * in either order must agree. */
Test(rng, jumps_compose)
{
    Rng a, b, c, d;
    RngJump h, w, x, y;
    rng_seed(&a, 3);
    b = c = d = a;
    rng_jump_poly(&h, 1ull << 62), rng_jump_poly(&w, 1ull << 63);
    rng_jump(&a, &h), rng_jump(&a, &h), rng_jump(&b, &w);
    cr_expect(memcmp(&a, &b, sizeof a) == 0, "2^62 twice is not 2^63");
    rng_jump_poly(&x, 1ull << 40), rng_jump_poly(&y, 12345);
    rng_jump(&c, &x), rng_jump(&c, &y), rng_jump(&d, &y), rng_jump(&d, &x);
    cr_expect(memcmp(&c, &d, sizeof c) == 0, "jumps do not commute");
    cr_expect(memcmp(&a, &c, sizeof a) != 0 && memcmp(&c, &(Rng){{0}}, sizeof c) != 0, "a jump left no state");
}

Test(rng, the_cache_follows_the_distance)
{
    RngJump cache = {0};
    const uint64_t ds[] = {1000, 1000, 300, 0, 300};
    for (size_t k = 0; k < sizeof ds / sizeof ds[0]; k++) {
        Rng got, want = drawn(5, ds[k]);
        rng_seed(&got, 5);
        rng_jump_cached(&got, &cache, ds[k]);
        cr_expect(memcmp(&want, &got, sizeof want) == 0, "step %zu: a cached jump by %llu is not %llu draws", k,
                  (unsigned long long)ds[k], (unsigned long long)ds[k]);
    }
}
