/* Items read from their files batch by batch: for a set larger than the memory cap, and for every rank of a
 * data-parallel run, which reads only the items of its shares. Items at fixed offsets (a contiguous HDF5 `x`, an
 * uncompressed IDX file, CIFAR-10's records) are read with pread (from the page cache, as fast as memory), rows of
 * a chunked or compressed HDF5 `x` through libhdf5. Values come out as the in-memory set would hold them (bytes or
 * float32, C x H x W), so a streamed run computes exactly what an in-memory one does. */
#ifndef BNNI_DATA_STREAM_H
#define BNNI_DATA_STREAM_H

#include <stddef.h>

#include "dataset.h"

/* Reads items[0..n) (item indices of the stream's set) into dst, n items of the set's type and shape one after
 * another. Safe to call from several threads at once. Returns 0, or -1 with "FILE: reason" in err. */
int stream_read(DataStream *s, const int *items, int n, void *dst, char *err, size_t errlen);
void stream_close(DataStream *s);
/* How many items stream_read has read (a data-parallel run's profile shows each rank reads only its shares). */
long long stream_items_read(const DataStream *s);

/* Makes out (its dtype and shape set) a stream of records: counts[k] items in file paths[k] from byte offsets[k],
 * stride bytes apart, items numbered across the files in order; nhwc: stored channels last. The files' sizes are
 * the caller's to check. Returns 0, or -1 with "FILE: reason" in err (out->stream then NULL). */
int stream_open_records(const char *const *paths, const long long *offsets, const long long *counts, int nfiles,
                        size_t stride, int nhwc, Dataset *out, char *err, size_t errlen);

#endif
