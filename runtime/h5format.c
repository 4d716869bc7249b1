/* The HDF5 storage choices of bnni's writers (h5format.h): format bounds, chunking with Fletcher32, and
 * fixed-length strings. Readers need none of this: libhdf5 verifies each checksum on its own as it reads. */
#include "h5format.h"

#include <string.h>

int h5format_set_bounds(hid_t fapl)
{
    return H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110) < 0 ? -1 : 0;
}

void h5format_chunk_dims(int rank, const hsize_t *dims, size_t elem_size, hsize_t *chunk)
{
    unsigned long long bytes = elem_size;
    for (int i = 0; i < rank; i++) {
        chunk[i] = dims[i];
        bytes *= dims[i];
    }
    /* Shrinking the leading dimensions first keeps each chunk a run of whole rows, contiguous in memory. */
    for (int i = 0; i < rank && bytes > H5FORMAT_CHUNK_BYTES; i++) {
        unsigned long long rest = bytes / chunk[i]; /* bytes of one step along dimension i */
        chunk[i] = rest >= H5FORMAT_CHUNK_BYTES ? 1 : H5FORMAT_CHUNK_BYTES / rest;
        bytes = rest * chunk[i];
    }
}

hid_t h5format_dcpl(int rank, const hsize_t *dims, size_t elem_size)
{
    hsize_t chunk[H5S_MAX_RANK];
    for (int i = 0; i < rank; i++)
        if (dims[i] == 0)
            return H5P_DEFAULT;
    if (rank < 1 || rank > H5S_MAX_RANK)
        return H5P_DEFAULT; /* a scalar: no chunks either */
    h5format_chunk_dims(rank, dims, elem_size, chunk);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl < 0 || H5Pset_chunk(dcpl, rank, chunk) < 0 || H5Pset_fletcher32(dcpl) < 0) {
        if (dcpl >= 0)
            H5Pclose(dcpl);
        return -1;
    }
    return dcpl;
}

hid_t h5format_str_type(const char *s)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0)
        return -1;
    if (H5Tset_size(t, strlen(s ? s : "") + 1) < 0 || H5Tset_strpad(t, H5T_STR_NULLTERM) < 0 ||
        H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

/* ---------------------------------------------------------------- the superblock checksum */

#define ROT(x, k) (((x) << (k)) | ((x) >> (32 - (k))))

uint32_t h5format_lookup3(const void *data, size_t len, uint32_t initval)
{
    const uint8_t *k = data;
    uint32_t a, b, c;
    a = b = c = 0xdeadbeefu + (uint32_t)len + initval;
    for (; len > 12; len -= 12, k += 12) {
        a += k[0] | (uint32_t)k[1] << 8 | (uint32_t)k[2] << 16 | (uint32_t)k[3] << 24;
        b += k[4] | (uint32_t)k[5] << 8 | (uint32_t)k[6] << 16 | (uint32_t)k[7] << 24;
        c += k[8] | (uint32_t)k[9] << 8 | (uint32_t)k[10] << 16 | (uint32_t)k[11] << 24;
        a -= c, a ^= ROT(c, 4), c += b;
        b -= a, b ^= ROT(a, 6), a += c;
        c -= b, c ^= ROT(b, 8), b += a;
        a -= c, a ^= ROT(c, 16), c += b;
        b -= a, b ^= ROT(a, 19), a += c;
        c -= b, c ^= ROT(b, 4), b += a;
    }
    if (len == 0)
        return c;
    uint32_t w[3] = {0, 0, 0}; /* the last 1..12 bytes, little-endian, zero-padded */
    for (size_t i = 0; i < len; i++)
        w[i / 4] |= (uint32_t)k[i] << (8 * (i % 4));
    a += w[0], b += w[1], c += w[2];
    c ^= b, c -= ROT(b, 14);
    a ^= c, a -= ROT(c, 11);
    b ^= a, b -= ROT(a, 25);
    c ^= b, c -= ROT(b, 16);
    a ^= c, a -= ROT(c, 4);
    b ^= a, b -= ROT(a, 14);
    c ^= b, c -= ROT(b, 24);
    return c;
}

int h5format_seal_image(void *img, size_t len)
{
    uint8_t *p = img;
    if (len < 12 || memcmp(p, "\211HDF\r\n\032\n", 8) != 0)
        return -1;
    if (p[8] < 2)
        return 0; /* superblocks 0 and 1 carry no checksum (and no such flags) */
    /* Version 2 and 3: signature, version, sizes of offsets and lengths, flags, four addresses, checksum. */
    size_t body = 12 + 4 * (size_t)p[9];
    if (len < body + 4)
        return -1;
    uint32_t sum = h5format_lookup3(p, body, 0);
    for (int i = 0; i < 4; i++)
        p[body + (size_t)i] = (uint8_t)(sum >> (8 * i));
    return 0;
}
