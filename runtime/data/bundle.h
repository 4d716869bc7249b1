/* Everything a run trains and evaluates on, from a DataSpec: the training items (after limit) split into training
 * and validation positions, the test items, and the normaliser of the training items -- kept in memory, or read
 * from the files per batch (stream.h) when the set does not fit the memory budget or the plan asks for it. */
#ifndef BNNI_DATA_BUNDLE_H
#define BNNI_DATA_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"

typedef struct DataBundle {
    Dataset train, test;        /* test.count is 0 when not loaded or the data has no test set */
    int *train_rows, *val_rows; /* positions -> items of train; NULL when nothing is held out (every item trains) */
    int ntrain, nval;           /* training and validation positions */
    long long limit;            /* the training items considered (the limit applied; 0: all) */
    Normalizer nz;              /* when DataPlan.stats: over the training positions */
    int streamed;               /* train or test is read from its files per batch */
} DataBundle;

typedef struct DataPlan {
    int train, test;       /* which sets to load */
    long long limit;       /* training items (0: all); the DataSpec's limit unless set (> 0) */
    long long test_limit;  /* test items (0: all) */
    uint64_t seed;         /* chooses the validation items */
    int stats;             /* set up b->nz from the training positions (else the caller brings its own) */
    double budget;         /* bytes the items may take in memory; more, and a kind that can streams (0: no cap) */
    int stream;            /* stream what can be read at offsets, whatever the budget: a data-parallel run, whose
                            * ranks each read only the items of their shares */
} DataPlan;

/* The bytes a run's items may take in memory: the cap (0: the machine's physical memory) less what the model needs
 * and what the process already holds (its code, libraries, heap: /proc/self/statm). At least 1. */
double data_budget(unsigned long long cap, double model_bytes);

/* Loads what p asks for. Returns 0, or -1 with "FILE: reason" (or a reason) in err; b then holds nothing. */
int data_bundle_load(const DataSpec *ds, const DataPlan *p, DataBundle *b, char *err, size_t errlen);
void data_bundle_free(DataBundle *b);

#endif
