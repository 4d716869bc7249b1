/* `bnni train --profile`: where a training run's time goes, like `caffe time`. The network times its own
 * layers (net_profile_start, net.h); the training loop times the phases of a step around them (TrainProfile) and
 * prof_print writes both as tables after training. */
#ifndef BNNI_PROFILE_H
#define BNNI_PROFILE_H

#include <stdio.h>
#include <time.h>

#include "net.h"

/* The phases of a training step outside the layers' forward and backward. */
typedef enum ProfPhase {
    PROF_DATA,   /* the batch's bytes to normalised floats, and its labels */
    PROF_LOSS,   /* softmax cross-entropy and its gradient */
    PROF_ZERO,   /* clearing the parameter gradients */
    PROF_OPTIM,  /* the optimizer's update */
    PROF_CHECK,  /* the non-finite check of every parameter */
    PROF_COMM,   /* data-parallel runs: waiting for the gradient sums after the backward pass */
    PROF_NPHASES
} ProfPhase;

typedef struct TrainProfile {
    double phase[PROF_NPHASES]; /* seconds, summed over the steps */
    double step;                /* seconds of whole steps */
    long long steps;
    double eval;                /* seconds of whole evaluation passes (every batch of the test set) */
    long long eval_batches, eval_images;
    int nepochs, cap;           /* epochs recorded, and room for */
    int *epoch;                 /* [cap] 1-based epoch numbers, owned */
    double *train, *test, *save; /* [cap] seconds per epoch: training steps, evaluation, checkpoint; owned */
    /* Data-parallel runs (ranks > 1; 0 or 1: alone, and none of this is printed): the seconds the layers spent
     * in their sums across the ranks (batchnorm's statistics, inside their rows) and how many sums; the bytes of
     * gradients each step sums and the buckets they travel in; the MPI library. */
    int ranks;
    double layer_comm;
    long long layer_comm_calls;
    size_t grad_bytes;
    int buckets;
    const char *library;
    /* Sets read from their files per batch (streamed; 0: in memory): the items this process read while it trained
     * and evaluated, of each set's count. */
    int streamed;
    long long read_train, read_test, ntrain, ntest;
} TrainProfile;

static inline double prof_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* Records one finished epoch (1-based number) and its seconds. Returns 0, or -1 when out of memory. */
int prof_add_epoch(TrainProfile *p, int epoch, double train, double test, double save);
void prof_free(TrainProfile *p);

/* Writes the profile to f: per layer (residual bodies indented under their layer), the milliseconds per batch
 * of its training forward, backward and eval forward, its milliseconds per epoch of `batches_per_epoch` steps
 * and its share of the mean step; then the step's phases outside the layers; then each epoch's totals. */
void prof_print(FILE *f, const TrainProfile *p, const Net *net, int batch, int batches_per_epoch);

#endif
