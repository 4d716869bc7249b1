/* The `cifar10` data kind: cifar10(path) -- the CIFAR-10 "binary version": data_batch_1.bin ... data_batch_5.bin
 * (training), test_batch.bin (test; optional), each a run of 3073-byte records (a label byte 0-9, then the 32x32
 * red, green and blue planes), and batches.meta.txt with the ten class names, one a line (without it, CIFAR-10's
 * own names). The checker only looks at the files' sizes and the names. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kind.h"
#include "stream.h"

enum { A_PATH, A_COMMON };

#define RECORD 3073
#define PIXELS 3072
#define NTRAIN_FILES 5

static const ArgSpec args[] = {ARG_STR("path", NULL, NULL), DATA_COMMON_ARGS("unit")};

static const char *const default_names[10] = {"airplane", "automobile", "bird",  "cat",  "deer",
                                              "dog",      "frog",       "horse", "ship", "truck"};

/* The k-th file of a split: data_batch_<k+1>.bin, or test_batch.bin. */
static const char *batch_path(const DataSpec *ds, DataSplit split, int k, char *buf, size_t len)
{
    char name[32];
    snprintf(name, sizeof name, split == DATA_TRAIN ? "data_batch_%d.bin" : "test_batch.bin", k + 1);
    return data_join(ds->arg[A_PATH].str, name, buf, len);
}

/* Records in a batch file, by its size: -1 with err when it is missing or not whole records. */
static long long records(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno)), -1;
    if (!S_ISREG(st.st_mode) || st.st_size == 0 || st.st_size % RECORD != 0)
        return snprintf(err, errlen, "%s: %lld bytes is not a whole number of %d-byte records (a label byte and "
                        "3x32x32 pixels)", path, (long long)st.st_size, RECORD), -1;
    return (long long)st.st_size / RECORD;
}

/* batches.meta.txt: exactly ten names, one a line (blank lines ignored); without the file, CIFAR-10's names. */
static int read_names(const DataSpec *ds, char **names, char *err, size_t errlen)
{
    char path[4096], line[256];
    int n = 0;
    FILE *f = fopen(data_join(ds->arg[A_PATH].str, "batches.meta.txt", path, sizeof path), "r");
    for (int k = 0; !f && k < 10; k++)
        if (!(names[k] = strdup(default_names[k])))
            return snprintf(err, errlen, "out of memory"), -1;
    while (f && fgets(line, sizeof line, f)) {
        char *nl = strpbrk(line, "\r\n");
        const char *bad = !nl && !feof(f) ? "a line is longer than 255 characters (or holds a NUL byte)" : NULL;
        if (nl)
            *nl = '\0';
        if (!bad && line[0] && n == 10)
            bad = "holds more than the 10 class names of CIFAR-10";
        if (bad) {
            snprintf(err, errlen, "%s: %s", path, bad);
            fclose(f);
            return -1;
        }
        if (line[0] && !(names[n++] = strdup(line))) {
            fclose(f);
            return snprintf(err, errlen, "out of memory"), -1;
        }
    }
    if (f)
        fclose(f);
    if (f && n != 10)
        return snprintf(err, errlen, "%s: holds %d class names, CIFAR-10 has 10 (one a line)", path, n), -1;
    return 0;
}

static int probe(DataSpec *ds, char *err, size_t errlen)
{
    char path[4096];
    long long n;
    ds->shape = (Shape){3, 3, 32, 32}, ds->dtype = DT_U8, ds->classes = 10, ds->ntrain = 0;
    for (int k = 0; k < NTRAIN_FILES; k++) {
        if ((n = records(batch_path(ds, DATA_TRAIN, k, path, sizeof path), err, errlen)) < 0)
            return -1;
        ds->ntrain += n;
    }
    struct stat st;
    ds->has_test = stat(batch_path(ds, DATA_TEST, 0, path, sizeof path), &st) == 0;
    if (ds->has_test && (ds->ntest = records(path, err, errlen)) < 0)
        return -1;
    if (!(ds->class_names = calloc(10, sizeof *ds->class_names)))
        return snprintf(err, errlen, "out of memory"), -1;
    return read_names(ds, ds->class_names, err, errlen);
}

/* Appends up to `want` records of one file to d (want < 0: all of them). */
static int read_batch(const char *path, long long want, Dataset *d, char *err, size_t errlen)
{
    long long n = records(path, err, errlen);
    if (n < 0)
        return -1;
    n = want >= 0 && want < n ? want : n;
    FILE *f = fopen(path, "rb");
    uint8_t rec[RECORD];
    if (!f)
        return snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno)), -1;
    int rc = 0;
    for (long long i = 0; rc == 0 && i < n; i++) {
        if (fread(rec, 1, RECORD, f) != RECORD)
            rc = -1, snprintf(err, errlen, "%s: truncated at record %lld (did the file change?)", path, i);
        else if (rec[0] >= 10)
            rc = -1, snprintf(err, errlen, "%s: record %lld has the label %d, outside [0, 10)", path, i, rec[0]);
        else {
            memcpy(d->pixels + (size_t)d->count * PIXELS, rec + 1, PIXELS);
            d->labels[d->count++] = rec[0];
        }
    }
    fclose(f);
    return rc;
}

/* The first n labels of a batch file, read with pread (a byte a record), for a streamed set. */
static int read_labels(const char *path, long long n, Dataset *d, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
    if (fd < 0)
        return snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno)), -1;
    for (long long i = 0; rc == 0 && i < n; i++) {
        uint8_t label;
        if (pread(fd, &label, 1, (off_t)(i * RECORD)) != 1)
            rc = -1, snprintf(err, errlen, "%s: truncated at record %lld (did the file change?)", path, i);
        else if (label >= 10)
            rc = -1, snprintf(err, errlen, "%s: record %lld has the label %d, outside [0, 10)", path, i, label);
        else
            d->labels[d->count++] = label;
    }
    close(fd);
    return rc;
}

/* The labels into d, the pixels left in the files (stream.h): a record's pixels start a byte in. */
static int open_stream(const DataSpec *ds, DataSplit split, int files, const long long *counts, Dataset *d,
                       char *err, size_t errlen)
{
    char paths[NTRAIN_FILES][4096];
    const char *p[NTRAIN_FILES];
    long long offsets[NTRAIN_FILES], n[NTRAIN_FILES];
    int used = 0, rc = 0;
    for (int k = 0; rc == 0 && k < files; k++) {
        n[k] = counts[k], offsets[k] = 1, p[k] = batch_path(ds, split, k, paths[k], sizeof paths[k]);
        used += n[k] > 0;
        if (n[k] > 0)
            rc = read_labels(p[k], n[k], d, err, errlen);
    }
    return rc < 0 ? -1 : stream_open_records(p, offsets, n, used, RECORD, 0, d, err, errlen);
}

static int load(const DataSpec *ds, DataSplit split, long long limit, int stream, Dataset *d, char *err,
                size_t errlen)
{
    char path[4096];
    long long total = 0, counts[NTRAIN_FILES];
    int files = split == DATA_TRAIN ? NTRAIN_FILES : 1;
    memset(d, 0, sizeof *d);
    for (int k = 0; k < files; k++) {
        if ((counts[k] = records(batch_path(ds, split, k, path, sizeof path), err, errlen)) < 0)
            return -1;
        total += counts[k];
    }
    total = limit > 0 && limit < total ? limit : total;
    for (long long k = 0, left = total; k < files; left -= counts[k], k++) /* the records the limit keeps */
        counts[k] = counts[k] < left ? counts[k] : left;
    d->pixels = stream ? NULL : dataset_alloc_items((size_t)total * PIXELS);
    d->labels = malloc((size_t)total * sizeof *d->labels);
    d->dtype = DT_U8, d->shape = ds->shape, d->classes = 10;
    int rc = (d->pixels || stream) && d->labels ? 0 : -1;
    if (rc < 0)
        snprintf(err, errlen, "%s: out of memory for %lld images", ds->arg[A_PATH].str, total);
    else if (stream)
        rc = open_stream(ds, split, files, counts, d, err, errlen);
    for (int k = 0; rc == 0 && !stream && k < files && d->count < total; k++)
        rc = read_batch(batch_path(ds, split, k, path, sizeof path), total - d->count, d, err, errlen);
    if (rc < 0)
        dataset_free(d);
    return rc;
}

const DataKindOps cifar10_data = {
    .name = "cifar10",
    .args = args,
    .nargs = A_COMMON + DATA_NCOMMON,
    .where = A_PATH,
    .probe = probe,
    .load = load,
    .can_stream = 1,
};
