/* The processes of a data-parallel run (docs/distributed.md): the ranks of an MPI job, each training the same
 * model on its share of every batch. One of two files implements this header, chosen at build time:
 * dist_mpi.c (`make MPI=1`, the only code of bnni that calls MPI) or dist_serial.c (a plain build: always one
 * rank, no MPI anywhere). Layers see the ranks only through the Comm of comm.h; the trainer uses shard.h on top
 * of this. Functions marked collective must be called by every rank, in the same order. */
#ifndef BNNI_DIST_H
#define BNNI_DIST_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"

typedef struct Dist Dist;

/* Joins the job this process was started in when a launcher (mpirun, srun, ...) says in the environment that
 * it started one (BNNI_MPI=0 in the environment: never); else the run is this process alone and nothing is
 * initialised. Then checks, collectively, that every rank runs the same bnni binary. Returns 0, or -1 with err
 * (every rank fails alike; print err on rank 0 only). *out is set either way, unless out of memory; the caller
 * ends it with dist_close. */
int dist_open(Dist **out, char *err, size_t errlen);
/* Leaves the job (MPI_Finalize) and frees d; NULL is fine. */
void dist_close(Dist *d);

int dist_rank(const Dist *d);
int dist_size(const Dist *d);
/* The ranks running on this machine (this one included). */
int dist_local_size(const Dist *d);
/* The Comm the layers sum through (comm.h); owned by d. */
Comm *dist_comm(Dist *d);
/* The MPI library ("Open MPI v4.1.4, ...") or "none" for messages and `--profile`. */
const char *dist_library(const Dist *d);

/* Collective: the largest of every rank's status (0: ok). When it is not 0, err on rank 0 says why: rank 0's own
 * message when rank 0 failed, else that of the lowest failing rank as "rank K: MESSAGE". Other ranks' err is
 * left as they had it. */
int dist_agree(Dist *d, int status, char *err, size_t errlen);
/* Collective: rank 0's v, on every rank. */
uint64_t dist_root_u64(Dist *d, uint64_t v);
/* Collective: buf[0..n) summed over the ranks, the same bits on every rank. `what` names the step for the
 * message when the other ranks stop answering (see dist_set_timeout). */
void dist_sum(Dist *d, double *buf, size_t n, const char *what);

/* Nonblocking sums, so that the gradients travel while the backward pass still runs: dist_start_sum starts
 * summing buf[0..n) over the ranks (floats, or doubles when `doubles`; buf must stay untouched until
 * dist_wait_all), dist_progress lets pending sums advance (call it between pieces of work), dist_wait_all
 * waits for all of them. Collective in the order of the starts. */
void dist_start_sum(Dist *d, void *buf, size_t n, int doubles);
void dist_progress(Dist *d);
void dist_wait_all(Dist *d, const char *what);

/* Seconds a rank waits for the others before it stops the job with "no answer from the other ranks" (a rank
 * died or hangs where the launcher does not notice): 0 waits forever. Default DIST_TIMEOUT, or the environment's
 * BNNI_DIST_TIMEOUT. */
#define DIST_TIMEOUT 300.0
void dist_set_timeout(Dist *d, double seconds);

/* Seconds this rank has spent waiting in dist_sum and dist_wait_all (not in the layers' Comm). */
double dist_wait_seconds(const Dist *d);

/* How many ranks a launcher started, from the environment it gives each of them (Open MPI's mpirun, MPICH's
 * hydra, srun --mpi=pmi2, MVAPICH), with this one's rank in *rank; 0 when none says so. */
static inline int dist_env_size(int *rank)
{
    static const char *const size_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"};
    static const char *const rank_vars[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK"};
    for (size_t i = 0; i < sizeof size_vars / sizeof *size_vars; i++) {
        const char *n = getenv(size_vars[i]), *r = getenv(rank_vars[i]);
        if (n && atoi(n) > 0) {
            *rank = r ? atoi(r) : 0;
            return atoi(n);
        }
    }
    *rank = 0;
    return 0;
}

/* 64-bit hash of n bytes, chained from h (start with DIST_HASH_SEED): for checking that the ranks agree on
 * their binary, model, data and state, not for security. A word at a time: the training set takes ~10 ms. */
#define DIST_HASH_SEED 0x9E3779B97F4A7C15ull
static inline uint64_t dist_hash(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = (h ^ w) * 0x9E3779B97F4A7C15ull;
        h ^= h >> 32;
    }
    for (; i < n; i++)
        h = (h ^ b[i]) * 0x100000001B3ull;
    h ^= n;
    h ^= h >> 29;
    return h * 0xBF58476D1CE4E5B9ull;
}

#endif
