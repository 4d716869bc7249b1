/* The HDF5 side of streaming (stream.c) and what h5data.c shares with it. Internal to runtime/data/. */
#ifndef BNNI_DATA_H5STREAM_H
#define BNNI_DATA_H5STREAM_H

#include <hdf5.h>
#include <stddef.h>

#include "dataset.h"

/* Opens path read-only with HDF5's errors silenced; -1 with "FILE: not an HDF5 file" (etc.) in err. */
hid_t h5data_open_file(const char *path, char *err, size_t errlen);
/* One item from channels last (H x W x C) to channels first, values of esize bytes. */
void h5data_to_chw(const void *src, void *dst, Shape s, size_t esize);
/* -1 with err naming the item and value when one of n floats (items of `item` values, the first being item
 * first_item) is NaN or infinite; else 0. */
int h5data_check_finite(const float *v, size_t n, long long first_item, size_t item, const char *path,
                        const char *group, char *err, size_t errlen);
/* "1x28x28" or "784 features". Returns buf. */
const char *h5data_shape_str(Shape s, char *buf, size_t len);

/* Turns the open file f and dataset x (of rank, dims, read as mtype) into out->stream for out's first n items
 * (out's dtype, shape and labels are set). Takes f and x whatever happens. Float items are checked here, in one
 * pass. Returns 0, or -1 with err. */
int h5stream_open(const char *path, const char *group, hid_t f, hid_t x, int rank, const hsize_t *dims, hid_t mtype,
                  int nhwc, long long n, Dataset *out, char *err, size_t errlen);

#endif
