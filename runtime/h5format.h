/* How bnni stores HDF5 files so that libhdf5 can verify them when they are read back (issue #17): the 1.10 file
 * format, whose superblock, object headers, heaps and chunk indexes carry checksums; strings stored in the
 * attribute itself (fixed length) rather than in the unchecked global heap; datasets chunked with Fletcher32. */
#ifndef BNNI_H5FORMAT_H
#define BNNI_H5FORMAT_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

/* The most bytes one dataset chunk holds: each chunk is checksummed and read whole, through a buffer of its size. */
#define H5FORMAT_CHUNK_BYTES (1u << 20)

/* Sets fapl's format bounds to exactly the 1.10 format (not H5F_LIBVER_LATEST, which a later libhdf5 would
 * raise beyond what Debian 12's 1.10 can read). Returns 0 or -1. */
int h5format_set_bounds(hid_t fapl);

/* The chunk shape of a dataset of `rank` dims with elements of `elem_size` bytes: the whole array when it fits
 * in H5FORMAT_CHUNK_BYTES, else leading dimensions cut down until it does. Every dims[i] must be >= 1. */
void h5format_chunk_dims(int rank, const hsize_t *dims, size_t elem_size, hsize_t *chunk);

/* The creation property list for such a dataset: chunked (h5format_chunk_dims) with the Fletcher32 checksum.
 * A dataset with no elements has nothing to checksum and cannot be chunked: H5P_DEFAULT then. Returns the list
 * (caller closes it unless it is H5P_DEFAULT) or -1. */
hid_t h5format_dcpl(int rank, const hsize_t *dims, size_t elem_size);

/* Makes an image from H5Fget_file_image openable: libhdf5 before 1.14.7 (HDFGroup/hdf5 issue 1915) clears the
 * superblock's "open for writing" flags in the copy it returns but keeps the checksum computed with them set,
 * so no library would open a 1.10-format image. Recomputes that checksum over the image's first len bytes.
 * Returns 0, or -1 when they do not start with an HDF5 superblock. */
int h5format_seal_image(void *img, size_t len);

/* Jenkins' lookup3 hash (hashlittle), the checksum of HDF5's metadata (with initval 0). */
uint32_t h5format_lookup3(const void *data, size_t len, uint32_t initval);

/* A fixed-length UTF-8 string type just long enough for s (and its NUL; "" for NULL). Caller closes it.
 * Returns the type or -1. */
hid_t h5format_str_type(const char *s);

#endif
