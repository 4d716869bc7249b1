/* The `hdf5` data kind: hdf5(path, train="train", test="test", layout="nchw") -- groups holding x and y
 * (h5data.h), an optional root attribute `classes` naming the classes. The only kind that streams: a training set
 * larger than the memory budget is read from the file batch by batch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5data.h"
#include "h5stream.h"
#include "kind.h"

enum { A_PATH, A_TRAIN, A_TEST, A_LAYOUT, A_COMMON };

static const char *const layouts[] = {"nchw", "nhwc", NULL};

static const ArgSpec args[] = {
    ARG_STR("path", NULL, NULL), ARG_STR("train", "train", NULL), ARG_STR("test", "test", NULL),
    ARG_STR("layout", "nchw", layouts), DATA_COMMON_ARGS("unit"),
};

static int nhwc(const DataSpec *ds) { return strcmp(ds->arg[A_LAYOUT].str, "nhwc") == 0; }

/* The test group: when it was not named (the default "test") it may be absent: the data has no test set. */
static const char *test_group(const DataSpec *ds) { return ds->arg[A_TEST].str; }

static int same_items(const H5Split *a, const H5Split *b)
{
    return a->shape.rank == b->shape.rank && a->shape.c == b->shape.c && a->shape.h == b->shape.h &&
           a->shape.w == b->shape.w && a->dtype == b->dtype;
}

/* The class count and names: the attribute `classes`, else the largest label + 1 (names "0", "1", ...). */
static int classes_of(DataSpec *ds, H5Meta *m, const char *path, char *err, size_t errlen)
{
    long long top = m->train.maxlabel > m->test.maxlabel ? m->train.maxlabel : m->test.maxlabel;
    if (m->classes > 0) {
        ds->classes = m->classes, ds->class_names = m->names;
        m->names = NULL, m->classes = 0;
        return 0;
    }
    ds->classes = (int)top + 1;
    if (data_number_names(ds) < 0)
        return snprintf(err, errlen, "%s: out of memory", path), -1;
    return 0;
}

/* ---- every libhdf5 read of a data file goes through guarded(): one call of one function of one context, the
 * shape of the HDF5 guard (issue 17's h5guard_run, which tries a read in a child under a time limit first, so that
 * a libhdf5 crash or hang on a damaged file is one error line). Until it is merged here, guarded() just reads. */

typedef struct Read {
    const DataSpec *ds;
    const char *group; /* load: the split's group */
    long long limit;
    int stream;
    H5Meta *meta;      /* probe's result */
    Dataset *d;        /* load's result */
} Read;

static int probe_fn(void *ctx, char *err, size_t errlen)
{
    Read *r = ctx;
    return h5data_probe(r->ds->arg[A_PATH].str, r->ds->arg[A_TRAIN].str, test_group(r->ds), nhwc(r->ds), r->meta,
                        err, errlen);
}

static int load_fn(void *ctx, char *err, size_t errlen)
{
    Read *r = ctx;
    const DataSpec *ds = r->ds;
    return (r->stream ? h5data_open_stream : h5data_read)(ds->arg[A_PATH].str, r->group, nhwc(ds), r->limit,
                                                          ds->shape, ds->dtype, ds->classes, r->d, err, errlen);
}

/* With the guard: `if (h5guard_run(fn, r, &lim, err, errlen) != H5GUARD_OK) return -1;` (limits from the file's
 * size), then the read below in this process. A trial in a child frees nothing of its own: probe_fn's and
 * load_fn's results are the child's copy and die with it. */
static int guarded(int (*fn)(void *, char *, size_t), Read *r, char *err, size_t errlen)
{
    return fn(r, err, errlen);
}

static int probe(DataSpec *ds, char *err, size_t errlen)
{
    const char *path = ds->arg[A_PATH].str, *test = test_group(ds);
    char a[64], b[64];
    H5Meta m;
    Read r = {.ds = ds, .meta = &m};
    if (guarded(probe_fn, &r, err, errlen) < 0)
        return -1;
    int rc = 0;
    if (test[0] && !m.test.present && (ds->given >> A_TEST & 1))
        rc = -1, snprintf(err, errlen, "%s: no group '%s' (the test set named by test=)", path, test);
    else if (m.test.present && !same_items(&m.train, &m.test))
        rc = -1, snprintf(err, errlen, "%s: %s/x items are %s %s, but %s/x items are %s %s", path, test,
                          h5data_shape_str(m.test.shape, a, sizeof a), m.test.dtype == DT_U8 ? "uint8" : "float",
                          ds->arg[A_TRAIN].str, h5data_shape_str(m.train.shape, b, sizeof b),
                          m.train.dtype == DT_U8 ? "uint8" : "float");
    if (rc == 0) {
        ds->shape = m.train.shape, ds->dtype = m.train.dtype;
        ds->ntrain = m.train.count, ds->has_test = m.test.present, ds->ntest = m.test.present ? m.test.count : 0;
        rc = classes_of(ds, &m, path, err, errlen);
    }
    h5data_meta_free(&m);
    return rc;
}

static int load(const DataSpec *ds, DataSplit split, long long limit, int stream, Dataset *d, char *err,
                size_t errlen)
{
    Read r = {.ds = ds, .group = split == DATA_TRAIN ? ds->arg[A_TRAIN].str : test_group(ds), .limit = limit,
              .stream = stream, .d = d};
    return guarded(load_fn, &r, err, errlen);
}

const DataKindOps hdf5_data = {
    .name = "hdf5",
    .args = args,
    .nargs = A_COMMON + DATA_NCOMMON,
    .where = A_PATH,
    .probe = probe,
    .load = load,
    .can_stream = 1,
};
