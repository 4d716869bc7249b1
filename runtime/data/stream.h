/* Items read from their file batch by batch, for a training set larger than the memory cap (an HDF5 `x`): rows
 * of a contiguous dataset are read with pread at their file offsets (from the page cache, as fast as memory), rows
 * of a chunked or compressed one through libhdf5. Values come out as the in-memory set would hold them (bytes or
 * float32, C x H x W), so a streamed run computes exactly what an in-memory one does. */
#ifndef BNNI_DATA_STREAM_H
#define BNNI_DATA_STREAM_H

#include <stddef.h>

#include "dataset.h"

/* Reads items[0..n) (item indices of the stream's set) into dst, n items of the set's type and shape one after
 * another. Safe to call from several threads at once. Returns 0, or -1 with "FILE: reason" in err. */
int stream_read(DataStream *s, const int *items, int n, void *dst, char *err, size_t errlen);
void stream_close(DataStream *s);

#endif
