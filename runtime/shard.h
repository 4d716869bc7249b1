/* The trainer's side of a data-parallel run (dist.h, docs/distributed.md): each rank's share of every batch, the
 * gradients summed over the ranks in one fused buffer while the backward pass still runs, and the checks that
 * every rank trains the same model on the same data from the same state. train.c uses it only when it trains
 * with other ranks; alone, nothing here runs. */
#ifndef BNNI_SHARD_H
#define BNNI_SHARD_H

#include "ckpt.h"
#include "data/dataset.h"
#include "dist.h"
#include "net.h"
#include "optim.h"

/* The fused gradient buffer is cut into at most this many buckets, each summed as soon as the backward pass has
 * finished its layers, and each at least SHARD_MIN_BUCKET bytes, so that a small model sends few messages. */
#define SHARD_MAX_BUCKETS 16
#define SHARD_MIN_BUCKET (64 * 1024)

typedef struct Shard Shard;

/* What a step's exchange adds up besides the gradients (shard_begin, shard_end). */
typedef enum ShardScalar {
    SHARD_LOSS,    /* sum over the rank's images of their loss */
    SHARD_CORRECT, /* the rank's correctly classified images */
    SHARD_STOP,    /* 1 when the rank was asked to stop (a signal) */
    SHARD_SIGINT,  /* 1 when that signal was SIGINT */
    SHARD_NSCALARS
} ShardScalar;

/* For net and its parameter list ps (net_params; both borrowed, and must outlive the shard): hands d's Comm to
 * every layer (net_set_comm) and hooks net's backward (Net.after_backward). Returns 0 and *out (free with
 * shard_free, which unhooks), or -1 with err (out of memory). */
int shard_create(Dist *d, Net *net, NetParam *ps, int np, Shard **out, char *err, size_t errlen);
void shard_free(Shard *s);

/* This rank's images [*first, *first + *count) of a batch of n: contiguous shares whose sizes differ by at most
 * one, rank 0 first (*count may be 0 when n is smaller than the number of ranks). Tells the layers (Comm). */
void shard_slice(Shard *s, int n, int *first, int *count);

/* A step's exchange. shard_begin (after the forward and the loss, before net_backward) starts summing this
 * rank's scalars (indexed by ShardScalar); the gradients then travel bucket by bucket as net_backward finishes
 * their layers. shard_end waits for all of it: every gradient then holds the sum over the ranks, and sums[] the
 * scalars summed. Both collective. */
void shard_begin(Shard *s, const double scalars[SHARD_NSCALARS]);
void shard_end(Shard *s, double sums[SHARD_NSCALARS]);

/* Bytes of gradients a step sums, and how many buckets carry them. */
size_t shard_bytes(const Shard *s);
int shard_buckets(const Shard *s);

/* Collective: whether every rank computed the same hash h of `what`. Returns 0, or -1 on every rank with, on
 * rank 0, "rank K has another WHAT than rank 0" (the lowest such K) in err. */
int shard_check_same(Dist *d, uint64_t h, const char *what, char *err, size_t errlen);

/* What the ranks must agree on. The model: its source text and every setting that changes the training (epochs,
 * seed, batch, limit, test_limit), not paths. The data: every label of both sets, and every image of a set in
 * memory or 64 spread over a streamed one (hash_sample). The state: every
 * parameter and buffer, the optimizer's state and step count, and the train state (position, order, both RNG
 * streams, sums), not timings. */
uint64_t shard_hash_model(const ModelSpec *m, long long test_limit);
uint64_t shard_hash_data(const Dataset *train, const Dataset *test);
uint64_t shard_hash_state(const NetParam *ps, int np, Optim *opt, const TrainState *ts);

#endif
