/* The validation split (split.h): a seeded permutation, its first nval items held out; sorted so that the training
 * items keep the file's order (which a run without shuffling trains in). */
#include "split.h"

#include <math.h>
#include <stdlib.h>

#include "../rng.h"
#include "dataset.h"

#define VALIDATION_STREAM 0x56414c4944ull /* "VALID": keeps this draw apart from the init and shuffle streams */

long long split_count(double validation, long long n)
{
    if (validation >= 1.0)
        return (long long)validation;
    return (long long)floor(validation * (double)n + 0.5);
}

/* Marks, then lists in ascending order. */
int split_items(int n, int nval, uint64_t seed, int **train, int **val)
{
    int *perm = malloc((size_t)(n > 0 ? n : 1) * sizeof *perm);
    unsigned char *held = calloc((size_t)(n > 0 ? n : 1), 1);
    *train = malloc((size_t)(n - nval > 0 ? n - nval : 1) * sizeof **train);
    *val = malloc((size_t)(nval > 0 ? nval : 1) * sizeof **val);
    if (!perm || !held || !*train || !*val) {
        free(perm), free(held), free(*train), free(*val);
        *train = *val = NULL;
        return -1;
    }
    Rng r;
    rng_seed(&r, seed ^ VALIDATION_STREAM);
    dataset_permutation(perm, n, &r);
    for (int i = 0; i < nval; i++)
        held[perm[i]] = 1;
    for (int i = 0, t = 0, v = 0; i < n; i++)
        if (held[i])
            (*val)[v++] = i;
        else
            (*train)[t++] = i;
    free(perm), free(held);
    return 0;
}
