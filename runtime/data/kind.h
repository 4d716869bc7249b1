/* The data-kind interface: every kind of the `data` statement (fashion_mnist, idx, hdf5, csv, images, cifar10, ...)
 * is one file under runtime/data/ that fills one DataKindOps -- its argument schema, how it reads its headers for
 * the checker, how it loads -- and one line of DATA_KINDS in data/registry.h. The front end and the trainer only
 * call through the table, as they do for layers (layer.h). */
#ifndef BNNI_DATA_KIND_H
#define BNNI_DATA_KIND_H

#include <stddef.h>

#include "../spec.h"
#include "dataset.h"
#include "registry.h"

/* DK_FASHION_MNIST, ...: one per line of DATA_KINDS, in that order. */
#define DATA_KIND_ENUM(NAME, name) DK_##NAME,
typedef enum DataKind { DATA_KINDS(DATA_KIND_ENUM) DK_COUNT } DataKind;
#undef DATA_KIND_ENUM

typedef enum DataSplit { DATA_TRAIN, DATA_TEST } DataSplit;

typedef struct DataKindOps {
    const char *name; /* the name the language calls it by */
    /* Its arguments in positional order: the kind's own, then DATA_COMMON_ARGS. DataSpec.arg holds their values. */
    const ArgSpec *args;
    int nargs;
    /* The argument that says where the data is (a directory or a file): what `--data` replaces, and what a
     * checkpoint records as data_path (absolute) for `bnni eval`. */
    int where;
    /* Reads only headers and metadata -- never the items -- and fills ds's shape, classes, class_names, dtype,
     * ntrain, ntest and has_test. Returns 0, or -1 with "FILE: reason" in err. */
    int (*probe)(DataSpec *ds, char *err, size_t errlen);
    /* Loads the first `limit` items (0: all) of a split into d, checked against ds (shape, classes), in memory --
     * or, when `stream` is set and the kind can (can_stream), opened for reading batch by batch. Returns 0, or -1
     * with "FILE: reason" in err (d then holds nothing). */
    int (*load)(const DataSpec *ds, DataSplit split, long long limit, int stream, Dataset *d, char *err,
                size_t errlen);
    int can_stream;
} DataKindOps;

/* The table of every kind, indexed by DataKind. */
extern const DataKindOps *const data_kinds[DK_COUNT];

/* The kind called name, or -1. */
int data_kind_find(const char *name);

/* The arguments every kind takes, after its own (docs/language.md): batch, shuffle, limit, normalize, validation,
 * augment(flip, crop). `norm` is the default of normalize. */
extern const char *const data_norm_choices[];
extern const ArgSpec data_augment_args[2];
#define DATA_NCOMMON 6
#define DATA_COMMON_ARGS(norm)                                                                               \
    ARG_INT("batch", 0, 1, 1 << 20, 128), ARG_BOOL("shuffle", 1), ARG_INT("limit", 0, 0, ARG_NOMAX, 0),      \
        ARG_STR("normalize", norm, data_norm_choices), ARG_NUM("validation", 0, 0, 0, ARG_NOMAX, 0, 0),      \
        ARG_CALL("augment", data_augment_args, 2)

/* Index of argument `key` in the schema of ds's kind, or -1. */
int data_arg_index(const DataSpec *ds, const char *key);
/* The string value of argument `key` ("" when it has none). */
const char *data_str(const DataSpec *ds, const char *key);

/* Where ds's data is: its `where` argument (a directory or file). */
const char *data_where(const DataSpec *ds);

/* Reads ds's headers through its kind (ops->probe). */
int data_probe(DataSpec *ds, char *err, size_t errlen);

/* Joins a directory and a file name: name itself when it is absolute or dir is empty. Returns buf. */
const char *data_join(const char *dir, const char *name, char *buf, size_t len);

/* Class names "0", "1", ... K-1 into ds (owned). Returns 0 or -1 when out of memory. */
int data_number_names(DataSpec *ds);

#endif
