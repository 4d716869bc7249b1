/* Streamed items (stream.h): a set whose items stay in their files and are read per batch, from one of two
 * sources. Records: items at fixed offsets in one or more files (an HDF5 `x` stored contiguous and unfiltered, an
 * uncompressed IDX file, CIFAR-10's batch files), read with pread -- thread-safe, and from the page cache about as
 * fast as memory, without the file's pages counting toward the process's memory. libhdf5: any other HDF5 layout,
 * one row at a time under a lock (Debian's libhdf5 is not thread-safe). */
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5stream.h"

struct DataStream {
    char *path, *what; /* for messages: "PATH: cannot read item I of WHAT" */
    /* Records (nfiles > 0): item i is in file k with first[k] <= i < first[k+1], at offset[k] + (i - first[k]) *
     * stride. */
    int nfiles;
    int *fd;
    char **paths;      /* [nfiles]: file k's path, for messages (NULL: path) */
    long long *offset, *first;
    size_t stride;
    hid_t f, x; /* libhdf5 (nfiles 0) */
    int rank;
    hsize_t dims[4];
    hid_t mtype;
    int nhwc;           /* channels last on disk: turned per item */
    Shape shape;
    size_t item, esize; /* values per item, bytes per value */
    int count;
    long long nread;    /* items read so far (atomic: stream_read runs on several threads) */
};

long long stream_items_read(const DataStream *s) { return __atomic_load_n(&s->nread, __ATOMIC_RELAXED); }

void stream_close(DataStream *s)
{
    if (!s)
        return;
    for (int k = 0; k < s->nfiles; k++)
        if (s->fd[k] >= 0)
            close(s->fd[k]);
    if (s->x >= 0)
        H5Dclose(s->x);
    if (s->f >= 0)
        H5Fclose(s->f);
    for (int k = 0; s->paths && k < s->nfiles; k++)
        free(s->paths[k]);
    free(s->fd), free(s->offset), free(s->first), free(s->paths);
    free(s->path), free(s->what);
    free(s);
}

static DataStream *stream_new(const char *path, const char *what, const Dataset *d, int nfiles, long long n)
{
    DataStream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->f = s->x = -1, s->nfiles = nfiles;
    s->path = strdup(path), s->what = strdup(what);
    s->fd = malloc((size_t)(nfiles ? nfiles : 1) * sizeof *s->fd);
    s->offset = malloc((size_t)(nfiles ? nfiles : 1) * sizeof *s->offset);
    s->first = malloc((size_t)(nfiles + 1) * sizeof *s->first);
    if (!s->path || !s->what || !s->fd || !s->offset || !s->first) {
        s->nfiles = 0, stream_close(s);
        return NULL;
    }
    for (int k = 0; k < nfiles; k++)
        s->fd[k] = -1;
    s->shape = d->shape, s->count = (int)n;
    s->item = (size_t)d->shape.c * d->shape.h * d->shape.w;
    s->esize = d->dtype == DT_U8 ? 1 : sizeof(float);
    s->stride = s->item * s->esize;
    return s;
}

static int pread_full(int fd, void *buf, size_t bytes, off_t at)
{
    size_t got = 0;
    while (got < bytes) {
        ssize_t r = pread(fd, (char *)buf + got, bytes - got, at + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* The file of records that holds item i. */
static int file_of(const DataStream *s, int i)
{
    int k = 0;
    while (k + 1 < s->nfiles && i >= s->first[k + 1])
        k++;
    return k;
}

/* Item i as stored (channels last when nhwc) into buf. */
static int read_item(DataStream *s, int i, void *buf)
{
    size_t bytes = s->item * s->esize;
    if (s->nfiles > 0) {
        int k = file_of(s, i);
        long long at = s->offset[k] + (long long)(i - s->first[k]) * (long long)s->stride;
        return pread_full(s->fd[k], buf, bytes, (off_t)at);
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
        return snprintf(err, errlen, "%s: out of memory reading %s", s->path, s->what), -1;
    for (int b = 0; b < n; b++) {
        char *to = (char *)dst + (size_t)b * bytes;
        if (items[b] < 0 || items[b] >= s->count || read_item(s, items[b], turn ? row : to) < 0) {
            int ok = items[b] >= 0 && items[b] < s->count && s->paths;
            snprintf(err, errlen, "%s: cannot read item %d of %s (did the file change?)",
                     ok ? s->paths[file_of(s, items[b])] : s->path, items[b], s->what);
            free(row);
            return -1;
        }
        if (turn)
            h5data_to_chw(row, to, s->shape, s->esize);
    }
    free(row);
    __atomic_fetch_add(&s->nread, (long long)n, __ATOMIC_RELAXED);
    return 0;
}

int stream_open_records(const char *const *paths, const long long *offsets, const long long *counts, int nfiles,
                        size_t stride, int nhwc, Dataset *out, char *err, size_t errlen)
{
    long long n = 0;
    for (int k = 0; k < nfiles; k++)
        n += counts[k];
    DataStream *s = stream_new(paths[0], "the images", out, nfiles, n);
    if (!s)
        return snprintf(err, errlen, "%s: out of memory", paths[0]), -1;
    s->stride = stride, s->nhwc = nhwc;
    s->first[0] = 0;
    int ok = (s->paths = calloc((size_t)(nfiles > 0 ? nfiles : 1), sizeof *s->paths)) != NULL;
    for (int k = 0; ok && k < nfiles; k++)
        ok = (s->paths[k] = strdup(paths[k])) != NULL;
    if (!ok) {
        stream_close(s);
        return snprintf(err, errlen, "%s: out of memory", paths[0]), -1;
    }
    for (int k = 0; k < nfiles; k++) {
        s->offset[k] = offsets[k], s->first[k + 1] = s->first[k] + counts[k];
        if ((s->fd[k] = open(paths[k], O_RDONLY | O_CLOEXEC)) < 0) {
            snprintf(err, errlen, "%s: cannot open: %s", paths[k], strerror(errno));
            stream_close(s);
            return -1;
        }
    }
    out->stream = s;
    return 0;
}

/* One pass over the items, as the in-memory reader checks them: every float finite. */
static int check_floats(DataStream *s, const char *group, char *err, size_t errlen)
{
    enum { CHUNK = 256 };
    int ids[CHUNK];
    float *buf = malloc(CHUNK * s->item * sizeof *buf);
    if (!buf)
        return snprintf(err, errlen, "%s: out of memory reading %s", s->path, s->what), -1;
    int rc = 0;
    for (int i0 = 0; rc == 0 && i0 < s->count; i0 += CHUNK) {
        int m = s->count - i0 < CHUNK ? s->count - i0 : CHUNK;
        for (int k = 0; k < m; k++)
            ids[k] = i0 + k;
        rc = stream_read(s, ids, m, buf, err, errlen);
        if (rc == 0)
            rc = h5data_check_finite(buf, (size_t)m * s->item, i0, s->item, s->path, group, err, errlen);
    }
    free(buf);
    return rc;
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

int h5stream_open(const char *path, const char *group, hid_t f, hid_t x, int rank, const hsize_t *dims, hid_t mtype,
                  int nhwc, long long n, Dataset *out, char *err, size_t errlen)
{
    char what[512];
    snprintf(what, sizeof what, "%s/x", group);
    long long off = raw_offset(x, mtype);
    int fd = off >= 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    DataStream *s = stream_new(path, what, out, fd >= 0, n);
    if (!s) {
        if (fd >= 0)
            close(fd);
        H5Dclose(x), H5Fclose(f);
        return snprintf(err, errlen, "%s: out of memory", path), -1;
    }
    s->nhwc = nhwc && rank == 4;
    if (fd >= 0) { /* pread needs libhdf5 no more */
        s->fd[0] = fd, s->offset[0] = off, s->first[0] = 0, s->first[1] = n;
        H5Dclose(x), H5Fclose(f);
    } else {
        s->f = f, s->x = x, s->rank = rank, s->mtype = mtype;
        for (int k = 0; k < 4; k++)
            s->dims[k] = k < rank ? dims[k] : 1;
    }
    out->stream = s;
    return out->dtype == DT_F32 ? check_floats(s, group, err, errlen) : 0;
}
