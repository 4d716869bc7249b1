/* The `csv` data kind: csv(train, test, label="label", header=true, dir="") -- numeric feature columns and a label
 * column of integers (0 .. K-1) or of class names (sorted into 0 .. K-1), read with libcsv (csvread.h). Items are
 * F features, float32; normalize defaults to "standard" (features rarely share a scale). The checker parses the
 * files to count the features and classes -- a CSV has no header that says them -- but keeps only the labels. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classes.h"
#include "csvread.h"
#include "kind.h"

enum { A_TRAIN, A_TEST, A_LABEL, A_HEADER, A_DIR, A_COMMON };

static const ArgSpec args[] = {
    ARG_STR("train", NULL, NULL), ARG_STR("test", "", NULL), ARG_STR("label", "label", NULL), ARG_BOOL("header", 1),
    ARG_STR("dir", "", NULL),     DATA_COMMON_ARGS("standard"),
};

static const char *file_of(const DataSpec *ds, int k, char *buf, size_t len)
{
    return data_join(data_where(ds), ds->arg[k].str, buf, len);
}

static int read_file(const DataSpec *ds, int k, int keep, long long limit, CsvSet *s, char *path, size_t plen,
                     char *err, size_t errlen)
{
    file_of(ds, k, path, plen);
    return csv_read_set(path, ds->arg[A_HEADER].num != 0, ds->arg[A_LABEL].str, keep, limit, s, err, errlen);
}

/* A label written as a whole number (blanks trimmed by libcsv): 1 and *v, else 0. */
static int integer_label(const char *s, long long *v)
{
    char *end;
    if (!*s || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
        return 0;
    *v = strtoll(s, &end, 10);
    return !*end;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Labels as numbers when every one is a whole number (K = the largest + 1), else as names sorted. */
static int classes_from(DataSpec *ds, CsvSet *sets, int nsets, const char **paths, char *err, size_t errlen)
{
    long long top = -1, v;
    int numeric = 1, total = 0;
    for (int k = 0; k < nsets; k++)
        for (int i = 0; i < sets[k].nrows; i++) {
            if (!integer_label(sets[k].labels[i], &v))
                numeric = 0;
            else if (v < 0)
                return snprintf(err, errlen, "%s:%d:%d: label %lld is negative (labels are 0 .. K-1, or names)",
                                paths[k], sets[k].lines[i], sets[k].label_col + 1, v), -1;
            else if (v >= DATA_MAX_CLASSES)
                return snprintf(err, errlen, "%s:%d:%d: label %lld: bnni takes at most %d classes", paths[k],
                                sets[k].lines[i], sets[k].label_col + 1, v, DATA_MAX_CLASSES), -1;
            else
                top = v > top ? v : top;
            total++;
        }
    if (numeric) {
        ds->classes = (int)top + 1;
        return data_number_names(ds) < 0 ? (snprintf(err, errlen, "out of memory"), -1) : 0;
    }
    char **all = malloc((size_t)total * sizeof *all);
    if (!all)
        return snprintf(err, errlen, "out of memory"), -1;
    int n = 0, K = 0;
    for (int k = 0; k < nsets; k++)
        for (int i = 0; i < sets[k].nrows; i++)
            all[n++] = sets[k].labels[i];
    qsort(all, (size_t)n, sizeof *all, by_name);
    for (int i = 0; i < n; i++)
        if (i == 0 || strcmp(all[i], all[K - 1]) != 0)
            all[K++] = all[i];
    int rc = K > DATA_MAX_CLASSES || !(ds->class_names = calloc((size_t)K, sizeof *ds->class_names)) ? -1 : 0;
    for (int i = 0; rc == 0 && i < K; i++)
        if (!(ds->class_names[i] = strdup(all[i])))
            rc = -1;
    ds->classes = K;
    free(all);
    if (rc < 0)
        snprintf(err, errlen, K > DATA_MAX_CLASSES ? "%s: more than %d class names" : "%s: out of memory", paths[0],
                 DATA_MAX_CLASSES);
    return rc;
}

/* The test file must have the training file's columns. */
static int same_columns(const CsvSet *a, const CsvSet *b, const char *path, const char *other, char *err,
                        size_t errlen)
{
    if (a->ncols != b->ncols || a->label_col != b->label_col) {
        snprintf(err, errlen, "%s: rows of %d fields with the label in column %d, but %s has %d and column %d", path,
                 b->ncols, b->label_col + 1, other, a->ncols, a->label_col + 1);
        return -1;
    }
    for (int c = 0; a->header && c < a->ncols; c++)
        if (strcmp(a->header[c], b->header[c]) != 0) {
            snprintf(err, errlen, "%s:1:%d: column '%.40s' is '%.40s' in %s (the files must have the same columns)",
                     path, c + 1, b->header[c], a->header[c], other);
            return -1;
        }
    return 0;
}

static int probe(DataSpec *ds, char *err, size_t errlen)
{
    CsvSet s[2];
    char train[4096], test[4096];
    const char *paths[2] = {train, test};
    int nsets = ds->arg[A_TEST].str[0] ? 2 : 1;
    memset(s, 0, sizeof s);
    int rc = read_file(ds, A_TRAIN, 0, 0, &s[0], train, sizeof train, err, errlen);
    if (rc == 0 && nsets == 2 && (rc = read_file(ds, A_TEST, 0, 0, &s[1], test, sizeof test, err, errlen)) == 0)
        rc = same_columns(&s[0], &s[1], test, train, err, errlen);
    if (rc == 0)
        rc = classes_from(ds, s, nsets, paths, err, errlen);
    if (rc == 0) {
        ds->shape = (Shape){1, s[0].ncols - 1, 1, 1}, ds->dtype = DT_F32;
        ds->ntrain = s[0].nrows, ds->has_test = nsets == 2, ds->ntest = nsets == 2 ? s[1].nrows : 0;
    }
    csv_set_free(&s[0]), csv_set_free(&s[1]);
    return rc;
}

/* Whether the class names are "0", "1", ... K-1: the labels are numbers. */
static int numeric_classes(const DataSpec *ds)
{
    char num[16];
    for (int k = 0; k < ds->classes; k++) {
        snprintf(num, sizeof num, "%d", k);
        if (!ds->class_names || strcmp(ds->class_names[k], num) != 0)
            return 0;
    }
    return 1;
}

/* Each row's label cell as a class index. */
static int map_labels(const DataSpec *ds, const CsvSet *s, const char *path, int32_t *out, char *err, size_t errlen)
{
    int numeric = numeric_classes(ds);
    for (int i = 0; i < s->nrows; i++) {
        long long v;
        const char *l = s->labels[i];
        char **hit = numeric || !ds->class_names ? NULL
                                                 : bsearch(&l, ds->class_names, (size_t)ds->classes, sizeof *hit,
                                                           by_name);
        if (numeric && integer_label(l, &v) && v >= 0 && v < ds->classes)
            out[i] = (int32_t)v;
        else if (hit)
            out[i] = (int32_t)(hit - ds->class_names);
        else
            return snprintf(err, errlen, "%s:%d:%d: label '%.40s' is not one of the %d classes (%s)", path,
                            s->lines[i], s->label_col + 1, l, ds->classes,
                            numeric ? "0 .. K-1" : "the names the training data has"), -1;
    }
    return 0;
}

static int load(const DataSpec *ds, DataSplit split, long long limit, int stream, Dataset *d, char *err,
                size_t errlen)
{
    (void)stream;
    CsvSet s;
    char path[4096];
    memset(d, 0, sizeof *d);
    if (read_file(ds, split == DATA_TRAIN ? A_TRAIN : A_TEST, 1, limit, &s, path, sizeof path, err, errlen) < 0)
        return -1;
    int rc = 0;
    if (s.ncols - 1 != ds->shape.c)
        rc = -1, snprintf(err, errlen, "%s: rows hold %d features, the model's input is %d", path, s.ncols - 1,
                          ds->shape.c);
    if (rc == 0 && !(d->labels = malloc((size_t)s.nrows * sizeof *d->labels)))
        rc = -1, snprintf(err, errlen, "%s: out of memory", path);
    if (rc == 0)
        rc = map_labels(ds, &s, path, d->labels, err, errlen);
    if (rc == 0) {
        d->dtype = DT_F32, d->values = s.features, s.features = NULL;
        d->count = s.nrows, d->shape = ds->shape, d->classes = ds->classes;
    }
    csv_set_free(&s);
    if (rc < 0)
        dataset_free(d);
    return rc;
}

const DataKindOps csv_data = {
    .name = "csv",
    .args = args,
    .nargs = A_COMMON + DATA_NCOMMON,
    .where = A_DIR,
    .probe = probe,
    .load = load,
};
