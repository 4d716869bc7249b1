/* What the IDX data kinds share (kind_idx.c): idx(...) and its presets fashion_mnist and mnist (kind_mnist.c). */
#ifndef BNNI_DATA_KIND_IDX_H
#define BNNI_DATA_KIND_IDX_H

#include "dataset.h"

/* Loads an IDX image file and its label file, keeping the first `limit` items (0: all): as many labels as
 * images, images of `shape` (C x H x W; a 4-dimensional file's channels last are turned to C x H x W), every
 * label below `classes`. With `stream`, an uncompressed image file stays on disk, its items read per batch
 * (stream.h); a gzipped one, which cannot be read at offsets, is loaded whole. Returns 0, or -1 with
 * "FILE: reason" in err. Free with dataset_free. */
int idx_load_pair(const char *ipath, const char *lpath, long long limit, int stream, Shape shape, int classes,
                  Dataset *out, char *err, size_t errlen);

/* path, or path.gz when path is missing and that exists, into buf. Returns buf. */
const char *idx_find(const char *path, char *buf, size_t len);

#endif
