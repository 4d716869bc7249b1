/* Loading a run's data (bundle.h) through its kind: the memory decision, the validation split, the statistics. */
#include "bundle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kind.h"
#include "split.h"

/* Bytes the process holds now: /proc/self/statm's resident pages, or 0. */
static double resident_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f && fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    if (f)
        fclose(f);
    return (double)resident * (double)sysconf(_SC_PAGE_SIZE);
}

double data_budget(unsigned long long cap, double model_bytes)
{
    double c = (double)cap;
    if (c == 0) {
        long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
        c = pages > 0 && size > 0 ? (double)pages * (double)size : 0;
    }
    double left = c - model_bytes - resident_bytes();
    return c <= 0 ? 0 : left > 1 ? left : 1;
}

/* Bytes n items of ds take in memory. */
static double items_bytes(const DataSpec *ds, long long n)
{
    return (double)n * ds->shape.c * ds->shape.h * ds->shape.w * (ds->dtype == DT_U8 ? 1 : sizeof(float));
}

/* Whether the items asked for exceed the budget (items the headers did not count are not counted). */
static int must_stream(const DataSpec *ds, const DataPlan *p, long long limit)
{
    long long ntr = ds->ntrain < 0 ? 0 : limit > 0 && limit < ds->ntrain ? limit : ds->ntrain;
    long long nte = ds->ntest < 0 ? 0 : p->test_limit > 0 && p->test_limit < ds->ntest ? p->test_limit : ds->ntest;
    double need = items_bytes(ds, (p->train ? ntr : 0) + (p->test && ds->has_test ? nte : 0));
    return (p->stream || (p->budget > 0 && need > p->budget)) && data_kinds[ds->id]->can_stream;
}

static int split(const DataSpec *ds, const DataPlan *p, DataBundle *b, char *err, size_t errlen)
{
    long long nval = ds->validation > 0 ? split_count(ds->validation, b->train.count) : 0;
    if (nval >= b->train.count || (ds->validation > 0 && nval == 0)) {
        snprintf(err, errlen, "validation %g of %d training items holds out %s", ds->validation, b->train.count,
                 nval ? "all of them" : "none");
        return -1;
    }
    b->nval = (int)nval, b->ntrain = b->train.count - (int)nval;
    if (nval > 0 && split_items(b->train.count, b->nval, p->seed, &b->train_rows, &b->val_rows) < 0) {
        snprintf(err, errlen, "out of memory for the validation split");
        return -1;
    }
    return 0;
}

static int setup_norm(const DataSpec *ds, DataBundle *b, char *err, size_t errlen)
{
    double zero = 0.0, one = 1.0, *mean = &zero, *std = &one;
    int nch = 1, rc;
    if (ds->normalize == NORM_STANDARD &&
        dataset_stats(&b->train, b->train_rows, b->ntrain, &mean, &std, &nch, err, errlen) < 0)
        return -1;
    rc = norm_setup(&b->nz, ds->normalize, ds->dtype, ds->shape, nch, mean, std, err, errlen);
    if (mean != &zero)
        free(mean), free(std);
    return rc;
}

int data_bundle_load(const DataSpec *ds, const DataPlan *p, DataBundle *b, char *err, size_t errlen)
{
    const DataKindOps *ops = data_kinds[ds->id];
    long long limit = p->limit > 0 ? p->limit : ds->limit;
    memset(b, 0, sizeof *b);
    b->limit = limit;
    b->streamed = must_stream(ds, p, limit);
    int rc = 0;
    if (p->train)
        rc = ops->load(ds, DATA_TRAIN, limit, b->streamed, &b->train, err, errlen);
    if (rc == 0 && p->test && ds->has_test)
        rc = ops->load(ds, DATA_TEST, p->test_limit, b->streamed, &b->test, err, errlen);
    b->streamed = b->train.stream || b->test.stream; /* a request: a gzipped file, say, loads whole */
    if (rc == 0 && p->train)
        rc = split(ds, p, b, err, errlen);
    if (rc == 0 && p->train && p->stats)
        rc = setup_norm(ds, b, err, errlen);
    if (rc < 0)
        data_bundle_free(b);
    return rc;
}

void data_bundle_free(DataBundle *b)
{
    dataset_free(&b->train), dataset_free(&b->test);
    free(b->train_rows), free(b->val_rows);
    norm_free(&b->nz);
    memset(b, 0, sizeof *b);
}
