/* Reading HDF5 data files (the hdf5 data kind, kind_hdf5.c): groups holding `x` ([N, C, H, W], [N, H, W, C],
 * [N, H, W] or [N, F]; uint8, float32 or float64) and `y` ([N] integers), and an optional root attribute `classes`
 * (the class names). Each entry point takes a path and an error buffer and touches nothing else of the process, so
 * that it can run in a child process under a time limit, as checkpoints are read (the HDF5 guard): libhdf5 can
 * crash or hang on a damaged file. */
#ifndef BNNI_DATA_H5DATA_H
#define BNNI_DATA_H5DATA_H

#include <stddef.h>

#include "dataset.h"

/* What one group's x and y say. */
typedef struct H5Split {
    int present;       /* the group exists */
    long long count;   /* items (x's first dimension, which y's must equal) */
    Shape shape;       /* one item, C x H x W (channels first, whatever the layout) or F features */
    DataType dtype;    /* as it will be held: uint8, or float32 (float64 is converted) */
    long long maxlabel; /* the largest label (-1 when the labels were not read) */
} H5Split;

typedef struct H5Meta {
    H5Split train, test;
    int classes;       /* the length of the root attribute `classes`; 0 when the file has none */
    char **names;      /* [classes] names from it, owned */
} H5Meta;

/* Reads the headers of x and y in the groups `train` and `test` (test NULL or absent: none), the attribute
 * `classes`, and, when the file has no `classes`, y's labels, whose largest gives the class count. Returns 0, or
 * -1 with "FILE: reason" in err. Free with h5data_meta_free. */
int h5data_probe(const char *path, const char *train, const char *test, int nhwc, H5Meta *meta, char *err,
                 size_t errlen);
void h5data_meta_free(H5Meta *m);

/* Loads group's first `limit` items (0: all) into out, in memory: x as out's dtype, C x H x W per item, every float
 * finite; y as labels, each in [0, classes). shape and dtype must be what h5data_probe said. Returns 0, or -1 with
 * "FILE: reason" in err. */
int h5data_read(const char *path, const char *group, int nhwc, long long limit, Shape shape, DataType dtype,
                int classes, Dataset *out, char *err, size_t errlen);

/* The same, but x stays in the file and is read batch by batch (out->stream, stream.h); y is read and checked here,
 * and float items are checked for NaN and infinities in one pass over the file. */
int h5data_open_stream(const char *path, const char *group, int nhwc, long long limit, Shape shape, DataType dtype,
                       int classes, Dataset *out, char *err, size_t errlen);

/* For `bnni predict`: the items of the root dataset `name` (no labels), which must be of `shape` and dtype; out's
 * labels stay NULL. Returns 0, or -1 with "FILE: reason" in err. */
int h5data_read_items(const char *path, const char *name, int nhwc, Shape shape, DataType dtype, Dataset *out,
                      char *err, size_t errlen);

#endif
