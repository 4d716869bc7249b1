/* What a layer may ask of the other ranks of a data-parallel run: each rank holds a share of every batch, and a
 * layer that needs figures of the whole batch (batchnorm's synchronized statistics) sums its per-rank partial
 * sums across the ranks here. Processes, MPI and failures are the trainer's business (dist.h); a layer only sees
 * this struct, which net_set_comm hands to every layer. A layer with no Comm, or one of size 1, trains alone. */
#ifndef BNNI_COMM_H
#define BNNI_COMM_H

#include <stddef.h>

typedef struct Comm Comm;

struct Comm {
    int rank, size;
    /* Collective: every rank calls it with the same n, in the same order. buf[0..n) becomes on every rank the
     * element-wise sum over the ranks, the same bits everywhere and in every run with the same ranks. Does not
     * return on a failure of the job (the ranks are stopped with a message). Called from the thread that owns
     * the Comm only (in a parallel region, its master thread). */
    void (*sum)(Comm *c, double *buf, size_t n);
    void *impl;     /* the implementation's own state */
    /* The current training step's batch, set by the trainer before each forward: this rank holds images
     * [first, first + its x->n) of a batch of `total` images (a layer that draws per image, dropout, skips the
     * others' draws so that every rank's stream stays the same). */
    int first, total;
    double seconds; /* wall time spent inside sum, accumulated (--profile) */
    long long calls;
};

/* Whether l trains with other ranks: c is set and has more than one rank. */
static inline int comm_shared(const Comm *c) { return c && c->size > 1; }

#endif
