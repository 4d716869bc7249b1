/* The `idx` data kind: idx(train_images, train_labels, test_images, test_labels, dir) -- IDX files (LeCun's MNIST
 * format) of any image size, [N, H, W] or [N, H, W, C], gzipped or not. The checker reads the image headers and
 * the label files (a byte per item) to learn the shape and the class count. */
#include "kind_idx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../layer.h"
#include "idx.h"
#include "kind.h"
#include "stream.h"

enum { A_TRAIN_IMAGES, A_TRAIN_LABELS, A_TEST_IMAGES, A_TEST_LABELS, A_DIR, A_COMMON };

static const ArgSpec args[] = {
    ARG_STR("train_images", NULL, NULL), ARG_STR("train_labels", NULL, NULL), ARG_STR("test_images", "", NULL),
    ARG_STR("test_labels", "", NULL),    ARG_STR("dir", "", NULL),            DATA_COMMON_ARGS("unit"),
};

const char *idx_find(const char *path, char *buf, size_t len)
{
    char gz[4096];
    snprintf(buf, len, "%s", path);
    if (access(path, F_OK) != 0 && snprintf(gz, sizeof gz, "%s.gz", path) < (int)sizeof gz && access(gz, F_OK) == 0)
        snprintf(buf, len, "%s", gz);
    return buf;
}

/* Channels last (H x W x C per item) to C x H x W, in place through a scratch item. */
static int to_chw(uint8_t *data, int count, int h, int w, int c)
{
    size_t size = (size_t)h * w * c;
    uint8_t *tmp = malloc(size);
    if (!tmp)
        return -1;
    for (int i = 0; i < count; i++) {
        uint8_t *item = data + (size_t)i * size;
        for (size_t p = 0; p < (size_t)h * w; p++)
            for (int k = 0; k < c; k++)
                tmp[(size_t)k * h * w + p] = item[p * c + k];
        memcpy(item, tmp, size);
    }
    free(tmp);
    return 0;
}

static int check_pair(const IdxFile *img, const IdxFile *lab, const char *ipath, const char *lpath, Shape shape,
                      int classes, char *err, size_t errlen)
{
    if (img->total != lab->total) {
        snprintf(err, errlen, "%s: holds %d labels, but %s holds %d images", lpath, lab->total, ipath, img->total);
        return -1;
    }
    if (img->chans != shape.c || img->rows != shape.h || img->cols != shape.w) {
        snprintf(err, errlen, "%s: images are %dx%dx%d, the model's input is %dx%dx%d", ipath, img->chans, img->rows,
                 img->cols, shape.c, shape.h, shape.w);
        return -1;
    }
    for (int i = 0; i < lab->count; i++)
        if (lab->data[i] >= classes) {
            snprintf(err, errlen, "%s: label %d of image %d is outside [0, %d)", lpath, lab->data[i], i, classes);
            return -1;
        }
    return 0;
}

/* The pair with the images left in their file (idx_load_pair's stream). 1: done; 0: the image file cannot be read
 * at offsets (gzipped, or not its header's size); -1: err. */
static int stream_pair(const char *ipath, const char *lpath, long long limit, Shape shape, int classes, Dataset *out,
                       char *err, size_t errlen)
{
    char why[512];
    IdxFile img, lab;
    long long off = idx_raw_offset(ipath, IDX_IMAGES, &img);
    if (off < 0)
        return 0;
    if (idx_read(lpath, IDX_LABELS, limit, &lab, why, sizeof why) < 0)
        return snprintf(err, errlen, "%s: %s", lpath, why), -1;
    int rc = check_pair(&img, &lab, ipath, lpath, shape, classes, err, errlen);
    if (rc == 0 && !(out->labels = malloc((size_t)lab.count * sizeof *out->labels + 1)))
        rc = -1, snprintf(err, errlen, "%s: out of memory for %d labels", lpath, lab.count);
    for (int i = 0; rc == 0 && i < lab.count; i++)
        out->labels[i] = lab.data[i];
    out->count = lab.count, out->dtype = DT_U8, out->shape = shape, out->classes = classes;
    long long n = lab.count;
    idx_free(&lab);
    if (rc == 0)
        rc = stream_open_records(&ipath, &off, &n, 1, dataset_item_size(out), img.chans > 1, out, err, errlen);
    if (rc < 0)
        dataset_free(out);
    return rc < 0 ? -1 : 1;
}

int idx_load_pair(const char *ipath, const char *lpath, long long limit, int stream, Shape shape, int classes,
                  Dataset *out, char *err, size_t errlen)
{
    char why[512];
    IdxFile img, lab;
    memset(out, 0, sizeof *out);
    int streamed = stream ? stream_pair(ipath, lpath, limit, shape, classes, out, err, errlen) : 0;
    if (streamed != 0)
        return streamed < 0 ? -1 : 0;
    if (idx_read(ipath, IDX_IMAGES, limit, &img, why, sizeof why) < 0)
        return snprintf(err, errlen, "%s: %s", ipath, why), -1;
    if (idx_read(lpath, IDX_LABELS, limit, &lab, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s: %s", lpath, why);
        idx_free(&img);
        return -1;
    }
    int rc = check_pair(&img, &lab, ipath, lpath, shape, classes, err, errlen);
    if (rc == 0 && img.chans > 1 && to_chw(img.data, img.count, img.rows, img.cols, img.chans) < 0)
        rc = -1, snprintf(err, errlen, "%s: out of memory", ipath);
    if (rc == 0 && !(out->labels = malloc((size_t)lab.count * sizeof *out->labels + 1)))
        rc = -1, snprintf(err, errlen, "%s: out of memory for %d labels", lpath, lab.count);
    if (rc < 0) {
        idx_free(&img), idx_free(&lab);
        return -1;
    }
    for (int i = 0; i < lab.count; i++)
        out->labels[i] = lab.data[i];
    idx_free(&lab);
    out->pixels = img.data, out->count = img.count, out->dtype = DT_U8;
    out->shape = shape, out->classes = classes;
    return 0;
}

/* ---- the kind */

static const char *file_of(const DataSpec *ds, int k, char *buf, size_t len)
{
    char joined[4096];
    return idx_find(data_join(data_where(ds), ds->arg[k].str, joined, sizeof joined), buf, len);
}

/* The largest label + 1 of a label file (read whole: a byte per item), and the item count. */
static int label_range(const char *path, int *classes, long long *count, char *err, size_t errlen)
{
    IdxFile lab;
    char why[512];
    if (idx_read(path, IDX_LABELS, 0, &lab, why, sizeof why) < 0)
        return snprintf(err, errlen, "%s: %s", path, why), -1;
    for (int i = 0; i < lab.count; i++)
        if (lab.data[i] + 1 > *classes)
            *classes = lab.data[i] + 1;
    *count = lab.total;
    idx_free(&lab);
    return 0;
}

/* The shape in an image file's header, and its item count. */
static int image_header(const char *path, Shape *s, long long *count, char *err, size_t errlen)
{
    IdxFile h;
    char why[512];
    if (idx_read_header(path, IDX_IMAGES, &h, why, sizeof why) < 0)
        return snprintf(err, errlen, "%s: %s", path, why), -1;
    *s = (Shape){3, h.chans, h.rows, h.cols};
    *count = h.total;
    return 0;
}

/* One split's files: their shape and count must agree; the labels raise *classes. */
static int probe_split(const DataSpec *ds, int ki, int kl, Shape *s, long long *n, int *classes, char *err,
                       size_t errlen)
{
    char ipath[4096], lpath[4096];
    long long nl;
    file_of(ds, ki, ipath, sizeof ipath), file_of(ds, kl, lpath, sizeof lpath);
    if (image_header(ipath, s, n, err, errlen) < 0 || label_range(lpath, classes, &nl, err, errlen) < 0)
        return -1;
    if (nl != *n)
        return snprintf(err, errlen, "%s: holds %lld labels, but %s holds %lld images", lpath, nl, ipath, *n), -1;
    return 0;
}

static int probe(DataSpec *ds, char *err, size_t errlen)
{
    int classes = 0;
    Shape test;
    ds->has_test = ds->arg[A_TEST_IMAGES].str[0] != '\0';
    if (ds->has_test != (ds->arg[A_TEST_LABELS].str[0] != '\0'))
        return snprintf(err, errlen, "idx needs both test_images and test_labels, or neither"), -1;
    if (probe_split(ds, A_TRAIN_IMAGES, A_TRAIN_LABELS, &ds->shape, &ds->ntrain, &classes, err, errlen) < 0 ||
        (ds->has_test && probe_split(ds, A_TEST_IMAGES, A_TEST_LABELS, &test, &ds->ntest, &classes, err, errlen) < 0))
        return -1;
    if (ds->has_test && (test.c != ds->shape.c || test.h != ds->shape.h || test.w != ds->shape.w)) {
        char a[32], b[32], path[4096];
        snprintf(err, errlen, "%s: images are %s, the training images are %s", file_of(ds, A_TEST_IMAGES, path,
                 sizeof path), shape_str(test, a, sizeof a), shape_str(ds->shape, b, sizeof b));
        return -1;
    }
    ds->classes = classes;
    ds->dtype = DT_U8;
    ds->ntest = ds->has_test ? ds->ntest : 0;
    if (data_number_names(ds) < 0)
        return snprintf(err, errlen, "out of memory"), -1;
    return 0;
}

static int load(const DataSpec *ds, DataSplit split, long long limit, int stream, Dataset *d, char *err,
                size_t errlen)
{
    char ipath[4096], lpath[4096];
    int test = split == DATA_TEST;
    file_of(ds, test ? A_TEST_IMAGES : A_TRAIN_IMAGES, ipath, sizeof ipath);
    file_of(ds, test ? A_TEST_LABELS : A_TRAIN_LABELS, lpath, sizeof lpath);
    return idx_load_pair(ipath, lpath, limit, stream, ds->shape, ds->classes, d, err, errlen);
}

const DataKindOps idx_data = {
    .name = "idx",
    .args = args,
    .nargs = A_COMMON + DATA_NCOMMON,
    .where = A_DIR,
    .probe = probe,
    .load = load,
    .can_stream = 1,
};
