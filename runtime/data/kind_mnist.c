/* The presets of the idx kind: fashion_mnist(path) and mnist(path), the four standard IDX files of a directory
 * (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each NAME.gz
 * or NAME). Their shape, classes and names are known, so checking a model reads no file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kind.h"

enum { A_PATH, A_COMMON };

static const ArgSpec fashion_args[] = {ARG_STR("path", "/usr/share/datasets/fashion-mnist", NULL),
                                       DATA_COMMON_ARGS("unit")};
static const ArgSpec mnist_args[] = {ARG_STR("path", "/usr/share/datasets/mnist", NULL), DATA_COMMON_ARGS("unit")};

static const char *const fashion_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

static int probe_names(DataSpec *ds, const char *const *names, char *err, size_t errlen)
{
    ds->shape = (Shape){3, 1, 28, 28};
    ds->classes = 10;
    ds->dtype = DT_U8;
    ds->ntrain = ds->ntest = -1; /* not read: the files need not be there to check a model */
    ds->has_test = 1;
    int rc = names ? 0 : data_number_names(ds);
    if (names && (ds->class_names = calloc(10, sizeof *ds->class_names)))
        for (int k = 0; k < 10; k++)
            if (!(ds->class_names[k] = strdup(names[k])))
                rc = -1;
    if (rc < 0 || !ds->class_names)
        return snprintf(err, errlen, "out of memory"), -1;
    return 0;
}

static int probe_fashion(DataSpec *ds, char *err, size_t errlen) { return probe_names(ds, fashion_names, err, errlen); }

static int probe_mnist(DataSpec *ds, char *err, size_t errlen) { return probe_names(ds, NULL, err, errlen); }

static int load(const DataSpec *ds, DataSplit split, long long limit, int stream, Dataset *d, char *err,
                size_t errlen)
{
    return dataset_open(ds->arg[A_PATH].str, split == DATA_TRAIN, limit, stream, ds->shape, ds->classes, d, err,
                        errlen);
}

const DataKindOps fashion_mnist_data = {
    .name = "fashion_mnist",
    .args = fashion_args,
    .nargs = A_COMMON + DATA_NCOMMON,
    .where = A_PATH,
    .probe = probe_fashion,
    .load = load,
    .can_stream = 1,
};

const DataKindOps mnist_data = {
    .name = "mnist",
    .args = mnist_args,
    .nargs = A_COMMON + DATA_NCOMMON,
    .where = A_PATH,
    .probe = probe_mnist,
    .load = load,
    .can_stream = 1,
};
