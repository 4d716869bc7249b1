/* dist.h for a build without MPI (the default `make`): one rank, every collective the identity, no MPI
 * dependency. Started by a launcher as several copies, it refuses to run: each copy would train the whole
 * model alone and overwrite the same checkpoint. */
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct Dist {
    Comm comm;
};

static void alone_sum(Comm *c, double *buf, size_t n) { (void)c, (void)buf, (void)n; }

int dist_open(Dist **out, char *err, size_t errlen)
{
    int rank, n = dist_env_size(&rank);
    Dist *d = calloc(1, sizeof *d);
    *out = d;
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    d->comm = (Comm){.rank = 0, .size = 1, .sum = alone_sum, .impl = d};
    const char *force = getenv("BNNI_MPI");
    if (force && strcmp(force, "0") == 0 && n <= 1) /* the exact "0" only, and never for several copies */
        return 0;
    if (n > 1) {
        d->comm.rank = rank; /* so that only the first copy prints the message */
        snprintf(err, errlen, "this bnni was built without MPI, and a launcher started %d copies of it, which would "
                              "each train alone and overwrite one checkpoint; build the MPI binary with `make MPI=1` "
                              "and start ./bnni-mpi instead",
                 n);
        return -1;
    }
    return 0;
}

void dist_close(Dist *d) { free(d); }

int dist_rank(const Dist *d) { return d->comm.rank; }
int dist_size(const Dist *d) { return d->comm.size; }
int dist_local_size(const Dist *d) { return d->comm.size; }
Comm *dist_comm(Dist *d) { return &d->comm; }
const char *dist_library(const Dist *d) { return (void)d, "none (built without MPI)"; }

int dist_agree(Dist *d, int status, char *err, size_t errlen) { return (void)d, (void)err, (void)errlen, status; }

uint64_t dist_root_u64(Dist *d, uint64_t v) { return (void)d, v; }

void dist_sum(Dist *d, double *buf, size_t n, const char *what) { (void)d, (void)buf, (void)n, (void)what; }

void dist_start_sum(Dist *d, void *buf, size_t n, int doubles) { (void)d, (void)buf, (void)n, (void)doubles; }
void dist_progress(Dist *d) { (void)d; }
void dist_wait_all(Dist *d, const char *what) { (void)d, (void)what; }

void dist_set_timeout(Dist *d, double seconds) { (void)d, (void)seconds; }
double dist_wait_seconds(const Dist *d) { return (void)d, 0.0; }
