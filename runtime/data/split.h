/* The validation split (`validation=0.1` or `validation=5000`): items held out of the training set, chosen by the
 * run's seed -- the same items whenever the same seed, limit and data meet, so a resumed run, `bnni eval --split
 * validation` and the training run agree. */
#ifndef BNNI_DATA_SPLIT_H
#define BNNI_DATA_SPLIT_H

#include <stddef.h>
#include <stdint.h>

/* Items held out of n training items: a count as it is, a fraction of n rounded to the nearest item. */
long long split_count(double validation, long long n);

/* Splits items 0..n-1: a uniformly random choice of nval of them (Fisher-Yates from a stream seeded by seed),
 * each list in ascending order. *train gets n - nval items, *val nval (both allocated; caller frees). Returns 0, or
 * -1 when out of memory. */
int split_items(int n, int nval, uint64_t seed, int **train, int **val);

#endif
