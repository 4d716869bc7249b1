/* Streamed items (stream.h) of an HDF5 `x`: a contiguous, unfiltered dataset whose stored type is the one held in
 * memory is read with pread at its file offset -- thread-safe, and from the page cache about as fast as memory,
 * without the file's pages counting toward the process's memory; any other layout goes through libhdf5 one row at
 * a time, under a lock (Debian's libhdf5 is not thread-safe). */
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5stream.h"

struct DataStream {
    char *path, *group;
    int fd;            /* >= 0: rows are read with pread */
    long long offset;  /* x's first byte in the file */
    hid_t f, x;        /* the libhdf5 path (fd < 0) */
    int rank;
    hsize_t dims[4];
    hid_t mtype;
    int nhwc;          /* channels last on disk: turned per row */
    Shape shape;
    size_t item, esize; /* values per item, bytes per value */
    int count;
};

void stream_close(DataStream *s)
{
    if (!s)
        return;
    if (s->fd >= 0)
        close(s->fd);
    if (s->x >= 0)
        H5Dclose(s->x);
    if (s->f >= 0)
        H5Fclose(s->f);
    free(s->path), free(s->group);
    free(s);
}

/* Whether x's rows can be read with pread: contiguous, unfiltered, allocated, of exactly the memory type. */
static long long raw_offset(hid_t x, hid_t mtype)
{
    hid_t dcpl = H5Dget_create_plist(x), t = H5Dget_type(x);
    int ok = dcpl >= 0 && t >= 0 && H5Pget_layout(dcpl) == H5D_CONTIGUOUS && H5Pget_nfilters(dcpl) == 0 &&
             H5Tequal(t, mtype) > 0;
    haddr_t off = ok ? H5Dget_offset(x) : HADDR_UNDEF;
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (t >= 0)
        H5Tclose(t);
    return off == HADDR_UNDEF ? -1 : (long long)off;
}

/* Item i as stored (channels last when nhwc) into buf. */
static int read_item(DataStream *s, int i, void *buf)
{
    size_t bytes = s->item * s->esize;
    if (s->fd >= 0) {
        size_t got = 0;
        off_t at = (off_t)(s->offset + (long long)i * (long long)bytes);
        while (got < bytes) {
            ssize_t r = pread(s->fd, (char *)buf + got, bytes - got, at + (off_t)got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                return -1;
            got += (size_t)r;
        }
        return 0;
    }
    int rc = -1;
#pragma omp critical(bnni_hdf5)
    {
        hsize_t start[4] = {(hsize_t)i, 0, 0, 0}, count[4] = {1, s->dims[1], s->dims[2], s->dims[3]};
        hid_t fsp = H5Dget_space(s->x), msp = H5Screate_simple(s->rank, count, NULL);
        if (fsp >= 0 && msp >= 0 && H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
            H5Dread(s->x, s->mtype, msp, fsp, H5P_DEFAULT, buf) >= 0)
            rc = 0;
        if (msp >= 0)
            H5Sclose(msp);
        if (fsp >= 0)
            H5Sclose(fsp);
    }
    return rc;
}

int stream_read(DataStream *s, const int *items, int n, void *dst, char *err, size_t errlen)
{
    size_t bytes = s->item * s->esize;
    int turn = s->nhwc && s->shape.c > 1;
    void *row = turn ? malloc(bytes) : NULL;
    if (turn && !row)
        return snprintf(err, errlen, "%s: out of memory reading %s/x", s->path, s->group), -1;
    for (int b = 0; b < n; b++) {
        char *to = (char *)dst + (size_t)b * bytes;
        if (items[b] < 0 || items[b] >= s->count || read_item(s, items[b], turn ? row : to) < 0) {
            snprintf(err, errlen, "%s: cannot read item %d of %s/x (did the file change?)", s->path, items[b],
                     s->group);
            free(row);
            return -1;
        }
        if (turn)
            h5data_to_chw(row, to, s->shape, s->esize);
    }
    free(row);
    return 0;
}

/* One pass over the items, as the in-memory reader checks them: every float finite. */
static int check_floats(DataStream *s, char *err, size_t errlen)
{
    enum { CHUNK = 256 };
    int ids[CHUNK];
    float *buf = malloc(CHUNK * s->item * sizeof *buf);
    if (!buf)
        return snprintf(err, errlen, "%s: out of memory reading %s/x", s->path, s->group), -1;
    int rc = 0;
    for (int i0 = 0; rc == 0 && i0 < s->count; i0 += CHUNK) {
        int m = s->count - i0 < CHUNK ? s->count - i0 : CHUNK;
        for (int k = 0; k < m; k++)
            ids[k] = i0 + k;
        rc = stream_read(s, ids, m, buf, err, errlen);
        if (rc == 0)
            rc = h5data_check_finite(buf, (size_t)m * s->item, i0, s->item, s->path, s->group, err, errlen);
    }
    free(buf);
    return rc;
}

int h5stream_open(const char *path, const char *group, hid_t f, hid_t x, int rank, const hsize_t *dims, hid_t mtype,
                  int nhwc, long long n, Dataset *out, char *err, size_t errlen)
{
    DataStream *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path)) || !(s->group = strdup(group))) {
        if (s)
            free(s->path), free(s);
        H5Dclose(x), H5Fclose(f);
        return snprintf(err, errlen, "%s: out of memory", path), -1;
    }
    s->fd = -1, s->f = f, s->x = x, s->rank = rank, s->mtype = mtype, s->nhwc = nhwc && rank == 4;
    for (int k = 0; k < 4; k++)
        s->dims[k] = k < rank ? dims[k] : 1;
    s->shape = out->shape, s->count = (int)n;
    s->item = (size_t)out->shape.c * out->shape.h * out->shape.w;
    s->esize = out->dtype == DT_U8 ? 1 : sizeof(float);
    s->offset = raw_offset(x, mtype);
    if (s->offset >= 0 && (s->fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) { /* pread needs libhdf5 no more */
        H5Dclose(x), H5Fclose(f);
        s->x = s->f = -1;
    }
    out->stream = s;
    return out->dtype == DT_F32 ? check_floats(s, err, errlen) : 0;
}
