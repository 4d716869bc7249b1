/* dist.h over MPI (`make MPI=1`): the only file of bnni that calls MPI. Every collective runs on
 * MPI_COMM_WORLD from the main thread (MPI_THREAD_FUNNELED). A watchdog thread stops the rank with a message when
 * it has waited for the others longer than the timeout (a rank that hangs, or died where no launcher noticed):
 * blocking collectives cannot time out themselves, and polling them instead would cost a small sum half again
 * its time (measured: 22 us blocking against 47-88 us as MPI_Iallreduce plus MPI_Test for 33 doubles). */
#include "dist.h"

#include <mpi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "version.h"

/* The longest message dist_agree passes from a failing rank to rank 0. */
#define DIST_MSG_MAX 4096
#define DIST_TAG_MSG 1601
/* Sums pending at once (dist_start_sum): the trainer's gradient buckets and its scalars (shard.c keeps below). */
#define DIST_MAX_PENDING 64

struct Dist {
    Comm comm;
    int mpi;        /* MPI_Init was called here (a launcher started this process) */
    int local;      /* ranks on this machine */
    MPI_Request req[DIST_MAX_PENDING]; /* pending dist_start_sum, nreq of them */
    int nreq;
    double timeout, waited;
    char lib[128];
    /* The watchdog: `since` is when the current wait began (CLOCK_MONOTONIC ns), 0 outside waits. */
    _Atomic long long since;
    _Atomic(const char *) what;
    pthread_t dog;
    int dog_on, closing;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* ---------------------------------------------------------------- waits and the watchdog */

static void enter(Dist *d, const char *what)
{
    atomic_store(&d->what, what);
    atomic_store(&d->since, now_ns());
}

/* Ends a wait begun by enter; returns its seconds. */
static double leave(Dist *d)
{
    long long t0 = atomic_exchange(&d->since, 0);
    return (double)(now_ns() - t0) * 1e-9;
}

/* Checks once a second whether the main thread has been waiting too long. It cannot call MPI (only the main
 * thread may), so it ends the process: the launcher then stops the other ranks, as for any rank that dies. */
static void *watchdog(void *arg)
{
    Dist *d = arg;
    pthread_mutex_lock(&d->mu);
    while (!d->closing) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_sec += 1;
        pthread_cond_timedwait(&d->cv, &d->mu, &t);
        long long since = atomic_load(&d->since);
        if (!d->closing && since && (double)(now_ns() - since) * 1e-9 > d->timeout) {
            fprintf(stderr, "bnni: error: rank %d: no answer from the other ranks for %.0f s while %s: one of them has "
                            "died or hangs; stopping (BNNI_DIST_TIMEOUT sets this wait)\n",
                    d->comm.rank, d->timeout, atomic_load(&d->what));
            fflush(stderr);
            _exit(1);
        }
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static void start_watchdog(Dist *d)
{
    if (d->dog_on || d->timeout <= 0 || d->comm.size < 2)
        return;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->dog_on = pthread_create(&d->dog, NULL, watchdog, d) == 0;
}

static void stop_watchdog(Dist *d)
{
    if (!d->dog_on)
        return;
    pthread_mutex_lock(&d->mu);
    d->closing = 1;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->dog, NULL);
    d->dog_on = 0;
}

void dist_set_timeout(Dist *d, double seconds)
{
    stop_watchdog(d);
    d->closing = 0;
    d->timeout = seconds;
    if (d->mpi)
        start_watchdog(d);
}

double dist_wait_seconds(const Dist *d) { return d->waited; }

/* ---------------------------------------------------------------- the layers' sums */

static void comm_sum(Comm *c, double *buf, size_t n)
{
    Dist *d = c->impl;
    if (c->size < 2)
        return;
    enter(d, "summing a layer's statistics (batchnorm)");
    MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    c->seconds += leave(d);
    c->calls++;
}

/* ---------------------------------------------------------------- opening: the same binary everywhere */

/* What each rank tells the others first: enough to say which binary differs. */
typedef struct Hello {
    uint64_t exe_hash, exe_size;
    char version[32];
    char exe[256];
} Hello;

/* Hashes the running executable (/proc/self/exe); zeros when it cannot be read. */
static void describe_binary(Hello *h)
{
    unsigned char buf[1 << 16];
    size_t n;
    ssize_t k = readlink("/proc/self/exe", h->exe, sizeof h->exe - 1);
    h->exe[k > 0 ? k : 0] = '\0';
    snprintf(h->version, sizeof h->version, "%s", BNNI_VERSION);
    FILE *f = fopen("/proc/self/exe", "rb");
    h->exe_hash = DIST_HASH_SEED;
    while (f && (n = fread(buf, 1, sizeof buf, f)) > 0)
        h->exe_hash = dist_hash(h->exe_hash, buf, n), h->exe_size += n;
    if (f)
        fclose(f);
}

/* Collective: every rank runs the same bytes as rank 0 (an MPMD launch, or nodes with different builds). Each
 * compares itself with rank 0's description; rank 0 reports the first that differs. */
static int same_binary(Dist *d, char *err, size_t errlen)
{
    Hello me = {0}, root;
    describe_binary(&me);
    root = me;
    enter(d, "comparing the ranks' binaries");
    MPI_Bcast(&root, (int)sizeof root, MPI_BYTE, 0, MPI_COMM_WORLD);
    leave(d);
    int differs = me.exe_hash != root.exe_hash || me.exe_size != root.exe_size;
    if (differs)
        snprintf(err, errlen, "it runs another bnni than rank 0: %s (%llu bytes, version %s) against %s (%llu bytes, "
                              "version %s); start the same build on every rank",
                 me.exe, (unsigned long long)me.exe_size, me.version, root.exe, (unsigned long long)root.exe_size,
                 root.version);
    return dist_agree(d, differs, err, errlen) ? -1 : 0;
}

static int env_timeout(double *t)
{
    const char *s = getenv("BNNI_DIST_TIMEOUT");
    char *end;
    if (!s)
        return 0;
    *t = strtod(s, &end);
    return *end || *t < 0 ? -1 : 0;
}

int dist_open(Dist **out, char *err, size_t errlen)
{
    int rank, provided, launched = dist_env_size(&rank) > 0 || getenv("PMIX_RANK");
    const char *force = getenv("BNNI_MPI");
    Dist *d = calloc(1, sizeof *d);
    MPI_Comm node;
    *out = d;
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    d->comm = (Comm){.rank = 0, .size = 1, .sum = comm_sum, .impl = d};
    d->local = 1;
    d->timeout = DIST_TIMEOUT;
    snprintf(d->lib, sizeof d->lib, "none (not started by an MPI launcher)");
    if (!launched)
        return 0;
    if (force && strcmp(force, "0") == 0) { /* the exact "0" only: another value must not silently disable MPI */
        int n = dist_env_size(&rank);
        if (n > 1) {
            d->comm.rank = rank; /* so that only the first copy prints the message */
            snprintf(err, errlen, "BNNI_MPI=0 under a launcher that started %d copies: each would train alone and "
                                  "overwrite one checkpoint; unset BNNI_MPI, or start one copy", n);
            return -1;
        }
        return 0;
    }
    MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    d->mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &d->comm.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->comm.size);
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &d->local);
    MPI_Comm_free(&node);
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len;
    MPI_Get_library_version(lib, &len);
    lib[strcspn(lib, ",\n")] = '\0';
    lib[sizeof d->lib - 1] = '\0';
    memcpy(d->lib, lib, strlen(lib) + 1);
    int bad_env = env_timeout(&d->timeout);
    start_watchdog(d);
    if (dist_agree(d, bad_env ? 2 : 0, err, errlen) != 0) {
        snprintf(err, errlen, "BNNI_DIST_TIMEOUT must be a number of seconds (0: wait forever), not '%s'",
                 getenv("BNNI_DIST_TIMEOUT"));
        return -1;
    }
    return same_binary(d, err, errlen);
}

void dist_close(Dist *d)
{
    if (!d)
        return;
    stop_watchdog(d);
    if (d->mpi)
        MPI_Finalize();
    free(d);
}

int dist_rank(const Dist *d) { return d->comm.rank; }
int dist_size(const Dist *d) { return d->comm.size; }
int dist_local_size(const Dist *d) { return d->local; }
Comm *dist_comm(Dist *d) { return &d->comm; }
const char *dist_library(const Dist *d) { return d->lib; }

/* ---------------------------------------------------------------- collectives */

/* Two small sums rather than a gather of every status: nothing to allocate, at any number of ranks. */
int dist_agree(Dist *d, int status, char *err, size_t errlen)
{
    int n = d->comm.size, worst, me = status ? d->comm.rank : n, first;
    if (!d->mpi || n < 2)
        return status;
    enter(d, "agreeing whether every rank succeeded");
    MPI_Allreduce(&status, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(&me, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (first > 0 && first < n) { /* rank 0 succeeded: it prints the message of the first rank that did not */
        char msg[DIST_MSG_MAX];
        if (d->comm.rank == first) {
            snprintf(msg, sizeof msg, "%s", err);
            MPI_Send(msg, (int)strlen(msg) + 1, MPI_CHAR, 0, DIST_TAG_MSG, MPI_COMM_WORLD);
        } else if (d->comm.rank == 0) {
            MPI_Recv(msg, (int)sizeof msg, MPI_CHAR, first, DIST_TAG_MSG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            msg[sizeof msg - 1] = '\0';
            snprintf(err, errlen, "rank %d: %s", first, msg);
        }
    }
    leave(d);
    return worst;
}

uint64_t dist_root_u64(Dist *d, uint64_t v)
{
    if (!d->mpi || d->comm.size < 2)
        return v;
    enter(d, "comparing the ranks' models, data or state");
    MPI_Bcast(&v, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    d->waited += leave(d);
    return v;
}

void dist_sum(Dist *d, double *buf, size_t n, const char *what)
{
    if (!d->mpi || d->comm.size < 2)
        return;
    enter(d, what);
    MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    d->waited += leave(d);
}

/* The caller keeps below DIST_MAX_PENDING pending sums (shard.c: at most SHARD_MAX_BUCKETS + 1). */
void dist_start_sum(Dist *d, void *buf, size_t n, int doubles)
{
    if (!d->mpi || d->comm.size < 2)
        return;
    if (d->nreq == DIST_MAX_PENDING) /* cannot happen with shard.c's limit: finish what is pending first */
        dist_wait_all(d, "summing the gradients");
    MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, doubles ? MPI_DOUBLE : MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                   &d->req[d->nreq++]);
}

void dist_progress(Dist *d)
{
    int done;
    if (d->nreq > 0)
        MPI_Testall(d->nreq, d->req, &done, MPI_STATUSES_IGNORE);
}

void dist_wait_all(Dist *d, const char *what)
{
    if (d->nreq == 0)
        return;
    enter(d, what);
    MPI_Waitall(d->nreq, d->req, MPI_STATUSES_IGNORE);
    d->waited += leave(d);
    d->nreq = 0;
}
