/* HDF5 data files (h5data.h). Every size in a header is only a claim: counts and dimensions are bounded before
 * anything is allocated, and a dataset must store the bytes it declares (or, compressed, a plausible share of them)
 * before it is read, so a small damaged file cannot make bnni allocate gigabytes of fill values. */
#include "h5data.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "classes.h"
#include "h5stream.h"

#define MAX_ITEMS (1ll << 30)         /* items of one group: far above real data, far below int overflow */
#define MAX_DIM 65536                 /* any dimension of an item */
#define MAX_ITEM_VALUES (1ll << 28)   /* values of one item */
#define READ_CHUNK_BYTES (16ll << 20) /* x is read this many bytes at a time (NHWC and float64 go through a buffer) */

/* ---------------------------------------------------------------- files, groups, attributes */

hid_t h5data_open_file(const char *path, char *err, size_t errlen)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* failures come back as one line, not HDF5's stack dump */
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char sig[8] = {0};
    int has_sig = fread(sig, 1, 8, fp) == 8 && memcmp(sig, "\211HDF\r\n\032\n", 8) == 0;
    fclose(fp);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG); /* closes whatever an error path left open */
#if H5_VERSION_GE(1, 10, 7)
    H5Pset_file_locking(fapl, 0, 1); /* read only; flock fails on some NFS mounts */
#endif
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (f < 0)
        snprintf(err, errlen, "%s: %s", path, has_sig ? "not a readable HDF5 file (truncated or corrupt)"
                                                      : "not an HDF5 file");
    return f;
}

/* Opens group `name` of f; -1 with err when missing (missing: *absent set, err untouched) or not a group. */
static hid_t open_group(hid_t f, const char *path, const char *name, int *absent, char *err, size_t errlen)
{
    *absent = 0;
    if (!name[0] || strchr(name, '/') || H5Lexists(f, name, H5P_DEFAULT) <= 0) {
        *absent = 1;
        return -1;
    }
    H5O_info_t info;
    if (H5Oget_info_by_name(f, name, &info, H5P_DEFAULT) < 0 || info.type != H5O_TYPE_GROUP) {
        snprintf(err, errlen, "%s: '%s' is not a group (it must hold the datasets x and y)", path, name);
        return -1;
    }
    hid_t g = H5Gopen2(f, name, H5P_DEFAULT);
    if (g < 0)
        snprintf(err, errlen, "%s: cannot open group '%s' (corrupt file?)", path, name);
    return g;
}

/* Opens dataset `name` of group g; -1 with err when missing or not a dataset. */
static hid_t open_dataset(hid_t g, const char *path, const char *group, const char *name, char *err, size_t errlen)
{
    H5O_info_t info;
    if (H5Lexists(g, name, H5P_DEFAULT) <= 0) {
        snprintf(err, errlen, "%s: group '%s' has no dataset '%s'", path, group, name);
        return -1;
    }
    if (H5Oget_info_by_name(g, name, &info, H5P_DEFAULT) < 0 || info.type != H5O_TYPE_DATASET) {
        snprintf(err, errlen, "%s: %s/%s is not a dataset", path, group, name);
        return -1;
    }
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0)
        snprintf(err, errlen, "%s: cannot open %s/%s (corrupt file?)", path, group, name);
    return d;
}

/* Whether d stores what reading `bytes` of it needs: all of them unfiltered; compressed, at least 1/4096 (more
 * than gzip's best ratio) -- else HDF5 would make them up from fill values. A damaged file can claim storage it does
 * not have, so the bytes must also fit in the file (4096 times, compressed). */
static int stores(hid_t d, long long bytes, const char *path)
{
    hid_t dcpl = H5Dget_create_plist(d);
    int nfilters = dcpl < 0 ? 0 : H5Pget_nfilters(dcpl);
    struct stat st;
    if (dcpl >= 0)
        H5Pclose(dcpl);
    long long stored = (long long)H5Dget_storage_size(d), limit = stat(path, &st) == 0 ? (long long)st.st_size : 0;
    if (nfilters > 0)
        return stored > 0 && stored >= bytes / 4096 && bytes / 4096 <= limit;
    return stored >= bytes && bytes <= limit;
}

/* ---------------------------------------------------------------- x and y headers */

typedef struct XInfo {
    long long n;
    Shape shape;      /* channels first */
    DataType dtype;
    hid_t mtype;      /* the memory type HDF5 converts to: native uint8 or float */
    int rank;         /* x's rank: 2 (features), 3 (one channel) or 4 */
    hsize_t dims[4];
} XInfo;

/* The type of x: uint8, or a float of 4 or 8 bytes; anything else is refused by name. */
static int x_type(hid_t d, const char *path, const char *group, XInfo *xi, char *err, size_t errlen)
{
    hid_t t = H5Dget_type(d);
    H5T_class_t cls = t < 0 ? H5T_NO_CLASS : H5Tget_class(t);
    size_t size = t < 0 ? 0 : H5Tget_size(t);
    int u8 = cls == H5T_INTEGER && size == 1 && H5Tget_sign(t) == H5T_SGN_NONE;
    int fl = cls == H5T_FLOAT && (size == 4 || size == 8);
    if (t >= 0)
        H5Tclose(t);
    if (!u8 && !fl) {
        static const char *const names[] = {"integer", "float", "time", "string", "bitfield", "opaque", "compound",
                                            "reference", "enum", "variable-length", "array"};
        char what[64];
        if (cls == H5T_INTEGER && size == 1)
            snprintf(what, sizeof what, "signed bytes");
        else if (cls == H5T_INTEGER)
            snprintf(what, sizeof what, "%zu-byte integers", size);
        else
            snprintf(what, sizeof what, "%s", cls >= 0 && cls <= H5T_ARRAY ? names[cls] : "of an unknown type");
        snprintf(err, errlen, "%s: %s/x holds %s; bnni reads uint8, float32 or float64 items", path, group, what);
        return -1;
    }
    xi->dtype = u8 ? DT_U8 : DT_F32;
    xi->mtype = u8 ? H5T_NATIVE_UCHAR : H5T_NATIVE_FLOAT;
    return 0;
}

/* The item shape from x's dimensions: [N, C, H, W] (nhwc: [N, H, W, C]), [N, H, W] or [N, F]. */
static int x_shape(const char *path, const char *group, int nhwc, XInfo *xi, char *err, size_t errlen)
{
    const hsize_t *d = xi->dims;
    long long values = 1;
    for (int i = 1; i < xi->rank; i++) {
        if (d[i] < 1 || d[i] > MAX_DIM || (values *= (long long)d[i]) > MAX_ITEM_VALUES) {
            snprintf(err, errlen, "%s: %s/x has an implausible item dimension %llu", path, group,
                     (unsigned long long)d[i]);
            return -1;
        }
    }
    if (d[0] < 1 || d[0] > MAX_ITEMS) {
        snprintf(err, errlen, "%s: %s/x holds %s items", path, group, d[0] < 1 ? "no" : "implausibly many");
        return -1;
    }
    xi->n = (long long)d[0];
    if (xi->rank == 2)
        xi->shape = (Shape){1, (int)d[1], 1, 1};
    else if (xi->rank == 3)
        xi->shape = (Shape){3, 1, (int)d[1], (int)d[2]};
    else
        xi->shape = nhwc ? (Shape){3, (int)d[3], (int)d[1], (int)d[2]} : (Shape){3, (int)d[1], (int)d[2], (int)d[3]};
    return 0;
}

static int x_info(hid_t d, const char *path, const char *group, int nhwc, XInfo *xi, char *err, size_t errlen)
{
    hid_t sp = H5Dget_space(d);
    int rank = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
    if (rank >= 2 && rank <= 4)
        H5Sget_simple_extent_dims(sp, xi->dims, NULL);
    if (sp >= 0)
        H5Sclose(sp);
    if (rank < 2 || rank > 4) {
        snprintf(err, errlen, "%s: %s/x has %d dimensions; it must be [N, C, H, W], [N, H, W, C] (layout=\"nhwc\"), "
                 "[N, H, W] or [N, F]", path, group, rank);
        return -1;
    }
    xi->rank = rank;
    return x_type(d, path, group, xi, err, errlen) < 0 ? -1 : x_shape(path, group, nhwc, xi, err, errlen);
}

/* y must be [n] integers. */
static int y_check(hid_t d, const char *path, const char *group, long long n, char *err, size_t errlen)
{
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
    int rank = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp), rc = 0;
    hsize_t dims[1] = {0};
    if (rank == 1)
        H5Sget_simple_extent_dims(sp, dims, NULL);
    if (t < 0 || H5Tget_class(t) != H5T_INTEGER)
        rc = -1, snprintf(err, errlen, "%s: %s/y does not hold integers (labels are 0 .. K-1)", path, group);
    else if (rank != 1)
        rc = -1, snprintf(err, errlen, "%s: %s/y has %d dimensions; it must be [N]", path, group, rank);
    else if ((long long)dims[0] != n)
        rc = -1, snprintf(err, errlen, "%s: %s/x holds %lld items but %s/y holds %llu labels", path, group, n, group,
                          (unsigned long long)dims[0]);
    if (t >= 0)
        H5Tclose(t);
    if (sp >= 0)
        H5Sclose(sp);
    return rc;
}

/* ---------------------------------------------------------------- labels */

#define LABEL_CHUNK 65536

/* Reads y's first n labels, each checked to lie in [0, classes) (classes 0: only >= 0); into out when not NULL.
 * *maxlabel gets the largest. */
static int read_labels(hid_t d, const char *path, const char *group, long long n, int classes, int32_t *out,
                       long long *maxlabel, char *err, size_t errlen)
{
    hid_t t = H5Dget_type(d);
    long long esize = t < 0 ? 8 : (long long)H5Tget_size(t);
    if (t >= 0)
        H5Tclose(t);
    if (!stores(d, n * esize, path)) {
        snprintf(err, errlen, "%s: %s/y declares %lld labels but the file holds no data for them", path, group, n);
        return -1;
    }
    long long *buf = malloc(LABEL_CHUNK * sizeof *buf);
    hid_t fsp = H5Dget_space(d);
    int rc = buf && fsp >= 0 ? 0 : -1;
    if (rc < 0)
        snprintf(err, errlen, "%s: out of memory reading %s/y", path, group);
    *maxlabel = -1;
    for (long long i0 = 0; rc == 0 && i0 < n; i0 += LABEL_CHUNK) {
        hsize_t start = (hsize_t)i0, count = (hsize_t)(n - i0 < LABEL_CHUNK ? n - i0 : LABEL_CHUNK);
        hid_t msp = H5Screate_simple(1, &count, NULL);
        if (msp < 0 || H5Sselect_hyperslab(fsp, H5S_SELECT_SET, &start, NULL, &count, NULL) < 0 ||
            H5Dread(d, H5T_NATIVE_LLONG, msp, fsp, H5P_DEFAULT, buf) < 0)
            rc = -1, snprintf(err, errlen, "%s: cannot read %s/y (corrupt file?)", path, group);
        if (msp >= 0)
            H5Sclose(msp);
        for (hsize_t k = 0; rc == 0 && k < count; k++) {
            long long v = buf[k], item = i0 + (long long)k;
            if (v < 0)
                rc = -1, snprintf(err, errlen, "%s: %s/y: label %lld of item %lld is negative (labels are 0 .. K-1)",
                                  path, group, v, item);
            else if (classes > 0 && v >= classes)
                rc = -1, snprintf(err, errlen, "%s: %s/y: label %lld of item %lld is outside [0, %d)", path, group, v,
                                  item, classes);
            if (rc == 0 && out)
                out[item] = (int32_t)v;
            if (v > *maxlabel)
                *maxlabel = v;
        }
    }
    if (rc == 0 && *maxlabel >= DATA_MAX_CLASSES)
        rc = -1, snprintf(err, errlen, "%s: %s/y holds the label %lld; bnni takes at most %d classes", path, group,
                          *maxlabel, DATA_MAX_CLASSES);
    if (fsp >= 0)
        H5Sclose(fsp);
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------- the class names */

/* The root attribute `classes`: a 1-D array of strings (variable-length or fixed), the class names in label
 * order. Absent: m->classes stays 0. */
static int read_class_names(hid_t f, const char *path, H5Meta *m, char *err, size_t errlen)
{
    if (H5Aexists(f, "classes") <= 0)
        return 0;
    hid_t a = H5Aopen(f, "classes", H5P_DEFAULT), t = a < 0 ? -1 : H5Aget_type(a), sp = a < 0 ? -1 : H5Aget_space(a);
    long long n = sp < 0 || H5Sget_simple_extent_ndims(sp) != 1 ? -1 : (long long)H5Sget_simple_extent_npoints(sp);
    int vlen = t >= 0 && H5Tis_variable_str(t) > 0, rc = -1;
    size_t size = t < 0 ? 0 : H5Tget_size(t);
    if (t < 0 || H5Tget_class(t) != H5T_STRING || n < 1 || n > DATA_MAX_CLASSES ||
        (!vlen && (size < 1 || size > 4096))) {
        snprintf(err, errlen, "%s: the attribute 'classes' must be a list of 1 to %d class names (strings)", path,
                 DATA_MAX_CLASSES);
        goto done;
    }
    hid_t mt = H5Tcopy(H5T_C_S1);
    char **v = calloc((size_t)n, sizeof *v), *fixed = vlen ? NULL : calloc((size_t)n, size + 1);
    m->names = calloc((size_t)n, sizeof *m->names);
    H5Tset_size(mt, vlen ? H5T_VARIABLE : size + 1);
    H5Tset_cset(mt, H5Tget_cset(t));
    if (v && m->names && (vlen || fixed) && H5Aread(a, mt, vlen ? (void *)v : (void *)fixed) >= 0) {
        m->classes = (int)n, rc = 0;
        for (long long k = 0; k < n; k++)
            if (!(m->names[k] = strdup(vlen ? (v[k] ? v[k] : "") : fixed + (size_t)k * (size + 1))))
                rc = -1;
        if (rc < 0)
            snprintf(err, errlen, "%s: out of memory reading the class names", path);
    } else {
        snprintf(err, errlen, "%s: cannot read the attribute 'classes' (corrupt file?)", path);
    }
    for (long long k = 0; vlen && v && k < n; k++)
        H5free_memory(v[k]);
    free(v), free(fixed);
    H5Tclose(mt);
done:
    if (t >= 0)
        H5Tclose(t);
    if (sp >= 0)
        H5Sclose(sp);
    if (a >= 0)
        H5Aclose(a);
    return rc;
}

void h5data_meta_free(H5Meta *m)
{
    for (int k = 0; m->names && k < m->classes; k++)
        free(m->names[k]);
    free(m->names);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- probing */

/* One group's headers; its labels too when count_labels. An absent group leaves s->present 0. */
static int probe_group(hid_t f, const char *path, const char *group, int nhwc, int count_labels, H5Split *s,
                       char *err, size_t errlen)
{
    int absent;
    hid_t g = open_group(f, path, group, &absent, err, errlen), x = -1, y = -1;
    XInfo xi;
    int rc = -1;
    if (g < 0)
        return absent ? 0 : -1;
    if ((x = open_dataset(g, path, group, "x", err, errlen)) < 0 || x_info(x, path, group, nhwc, &xi, err, errlen) < 0 ||
        (y = open_dataset(g, path, group, "y", err, errlen)) < 0 || y_check(y, path, group, xi.n, err, errlen) < 0)
        goto done;
    s->present = 1, s->count = xi.n, s->shape = xi.shape, s->dtype = xi.dtype, s->maxlabel = -1;
    rc = count_labels ? read_labels(y, path, group, xi.n, 0, NULL, &s->maxlabel, err, errlen) : 0;
done:
    if (x >= 0)
        H5Dclose(x);
    if (y >= 0)
        H5Dclose(y);
    H5Gclose(g);
    return rc;
}

int h5data_probe(const char *path, const char *train, const char *test, int nhwc, H5Meta *meta, char *err,
                 size_t errlen)
{
    memset(meta, 0, sizeof *meta);
    hid_t f = h5data_open_file(path, err, errlen);
    if (f < 0)
        return -1;
    int rc = read_class_names(f, path, meta, err, errlen);
    if (rc == 0)
        rc = probe_group(f, path, train, nhwc, meta->classes == 0, &meta->train, err, errlen);
    if (rc == 0 && !meta->train.present)
        rc = -1, snprintf(err, errlen, "%s: no group '%s' (the training set: x and y)", path, train);
    if (rc == 0 && test && test[0])
        rc = probe_group(f, path, test, nhwc, meta->classes == 0, &meta->test, err, errlen);
    H5Fclose(f);
    if (rc < 0)
        h5data_meta_free(meta);
    return rc;
}

/* ---------------------------------------------------------------- items */

/* Rows [r0, r0 + n) of x as stored (n x item values of xi's memory type) into buf. */
static int read_rows(hid_t x, const XInfo *xi, long long r0, long long n, void *buf)
{
    hsize_t start[4] = {(hsize_t)r0, 0, 0, 0}, count[4] = {(hsize_t)n, xi->dims[1], xi->dims[2], xi->dims[3]};
    hid_t fsp = H5Dget_space(x), msp = H5Screate_simple(xi->rank, count, NULL);
    int rc = fsp >= 0 && msp >= 0 && H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
                     H5Dread(x, xi->mtype, msp, fsp, H5P_DEFAULT, buf) >= 0
                 ? 0
                 : -1;
    if (msp >= 0)
        H5Sclose(msp);
    if (fsp >= 0)
        H5Sclose(fsp);
    return rc;
}

void h5data_to_chw(const void *src, void *dst, Shape s, size_t esize)
{
    size_t plane = (size_t)s.h * s.w;
    for (size_t p = 0; p < plane; p++)
        for (int c = 0; c < s.c; c++)
            memcpy((char *)dst + ((size_t)c * plane + p) * esize, (const char *)src + (p * s.c + c) * esize, esize);
}

int h5data_check_finite(const float *v, size_t n, long long first_item, size_t item, const char *path,
                        const char *group, char *err, size_t errlen)
{
    for (size_t k = 0; k < n; k++)
        if (!isfinite(v[k])) {
            snprintf(err, errlen, "%s: %s/x: item %lld holds %s at value %zu (features must be finite numbers)", path,
                     group, first_item + (long long)(k / item), isnan(v[k]) ? "NaN" : "an infinity", k % item);
            return -1;
        }
    return 0;
}

/* x's first n items into dst, a chunk of rows at a time, channels first, floats checked. */
static int read_items(hid_t x, const XInfo *xi, int nhwc, long long n, void *dst, const char *path, const char *group,
                      char *err, size_t errlen)
{
    size_t item = (size_t)xi->shape.c * xi->shape.h * xi->shape.w, esize = xi->dtype == DT_U8 ? 1 : sizeof(float);
    int turn = nhwc && xi->rank == 4 && xi->shape.c > 1;
    long long rows = READ_CHUNK_BYTES / (long long)(item * esize) > 0 ? READ_CHUNK_BYTES / (long long)(item * esize) : 1;
    void *buf = turn ? malloc((size_t)(rows < n ? rows : n) * item * esize) : NULL;
    int rc = turn && !buf ? -1 : 0;
    if (rc < 0)
        snprintf(err, errlen, "%s: out of memory reading %s/x", path, group);
    for (long long r0 = 0; rc == 0 && r0 < n; r0 += rows) {
        long long m = n - r0 < rows ? n - r0 : rows;
        char *to = (char *)dst + (size_t)r0 * item * esize;
        if (read_rows(x, xi, r0, m, turn ? buf : to) < 0) {
            snprintf(err, errlen, "%s: cannot read %s/x (corrupt file?)", path, group);
            rc = -1;
            break;
        }
        for (long long k = 0; turn && k < m; k++)
            h5data_to_chw((char *)buf + (size_t)k * item * esize, to + (size_t)k * item * esize, xi->shape, esize);
        if (xi->dtype == DT_F32)
            rc = h5data_check_finite((const float *)to, (size_t)m * item, r0, item, path, group, err, errlen);
    }
    free(buf);
    return rc;
}

/* Opens group's x and y and checks them against what the probe said. */
static int open_split(hid_t f, const char *path, const char *group, int nhwc, Shape shape, DataType dtype, hid_t *g,
                      hid_t *x, hid_t *y, XInfo *xi, char *err, size_t errlen)
{
    int absent;
    char a[64], b[64];
    *x = *y = -1;
    if ((*g = open_group(f, path, group, &absent, err, errlen)) < 0) {
        if (absent)
            snprintf(err, errlen, "%s: no group '%s'", path, group);
        return -1;
    }
    if ((*x = open_dataset(*g, path, group, "x", err, errlen)) < 0 || x_info(*x, path, group, nhwc, xi, err, errlen) < 0 ||
        (*y = open_dataset(*g, path, group, "y", err, errlen)) < 0 || y_check(*y, path, group, xi->n, err, errlen) < 0)
        return -1;
    if (xi->shape.rank != shape.rank || xi->shape.c != shape.c || xi->shape.h != shape.h || xi->shape.w != shape.w ||
        xi->dtype != dtype) {
        snprintf(err, errlen, "%s: %s/x items are %s %s, the model's input is %s %s", path, group,
                 h5data_shape_str(xi->shape, a, sizeof a), xi->dtype == DT_U8 ? "uint8" : "float",
                 h5data_shape_str(shape, b, sizeof b), dtype == DT_U8 ? "uint8" : "float");
        return -1;
    }
    return 0;
}

const char *h5data_shape_str(Shape s, char *buf, size_t len)
{
    if (s.rank == 3)
        snprintf(buf, len, "%dx%dx%d", s.c, s.h, s.w);
    else
        snprintf(buf, len, "%d features", s.c);
    return buf;
}

static void close_all(hid_t f, hid_t g, hid_t x, hid_t y)
{
    if (x >= 0)
        H5Dclose(x);
    if (y >= 0)
        H5Dclose(y);
    if (g >= 0)
        H5Gclose(g);
    if (f >= 0)
        H5Fclose(f);
}

/* The labels of the first n items into out->labels. */
static int load_labels(hid_t y, long long n, int classes, Dataset *out, const char *path, const char *group,
                       char *err, size_t errlen)
{
    long long maxlabel;
    if (!(out->labels = malloc((size_t)n * sizeof *out->labels)))
        return snprintf(err, errlen, "%s: out of memory for %lld labels", path, n), -1;
    return read_labels(y, path, group, n, classes, out->labels, &maxlabel, err, errlen);
}

int h5data_read(const char *path, const char *group, int nhwc, long long limit, Shape shape, DataType dtype,
                int classes, Dataset *out, char *err, size_t errlen)
{
    hid_t f, g = -1, x = -1, y = -1;
    XInfo xi;
    memset(out, 0, sizeof *out);
    if ((f = h5data_open_file(path, err, errlen)) < 0)
        return -1;
    int rc = open_split(f, path, group, nhwc, shape, dtype, &g, &x, &y, &xi, err, errlen);
    long long n = limit > 0 && limit < xi.n ? limit : xi.n;
    size_t item = (size_t)shape.c * shape.h * shape.w, esize = dtype == DT_U8 ? 1 : sizeof(float);
    if (rc == 0 && !stores(x, n * (long long)(item * H5Tget_size(xi.mtype)), path))
        rc = -1, snprintf(err, errlen, "%s: %s/x declares %lld items but the file holds no data for them", path,
                          group, xi.n);
    if (rc == 0) {
        out->dtype = dtype, out->shape = shape, out->classes = classes, out->count = (int)n;
        void *v = dataset_alloc_items((size_t)n * item * esize);
        *(dtype == DT_U8 ? (void **)&out->pixels : (void **)&out->values) = v;
        if (!v)
            rc = -1, snprintf(err, errlen, "%s: out of memory for %lld items of %s/x", path, n, group);
        else
            rc = read_items(x, &xi, nhwc, n, v, path, group, err, errlen);
    }
    if (rc == 0)
        rc = load_labels(y, n, classes, out, path, group, err, errlen);
    close_all(f, g, x, y);
    if (rc < 0)
        dataset_free(out);
    return rc;
}

int h5data_open_stream(const char *path, const char *group, int nhwc, long long limit, Shape shape, DataType dtype,
                       int classes, Dataset *out, char *err, size_t errlen)
{
    hid_t f, g = -1, x = -1, y = -1;
    XInfo xi;
    memset(out, 0, sizeof *out);
    if ((f = h5data_open_file(path, err, errlen)) < 0)
        return -1;
    int rc = open_split(f, path, group, nhwc, shape, dtype, &g, &x, &y, &xi, err, errlen);
    long long n = limit > 0 && limit < xi.n ? limit : xi.n;
    size_t item = (size_t)shape.c * shape.h * shape.w;
    if (rc == 0 && !stores(x, n * (long long)(item * H5Tget_size(xi.mtype)), path))
        rc = -1, snprintf(err, errlen, "%s: %s/x declares %lld items but the file holds no data for them", path,
                          group, xi.n);
    if (rc == 0)
        out->dtype = dtype, out->shape = shape, out->classes = classes, out->count = (int)n,
        rc = load_labels(y, n, classes, out, path, group, err, errlen);
    if (rc == 0) { /* the stream keeps f and x open when it reads through libhdf5 */
        H5Dclose(y), H5Gclose(g), y = g = -1;
        rc = h5stream_open(path, group, f, x, xi.rank, xi.dims, xi.mtype, nhwc, n, out, err, errlen);
        f = x = -1; /* the stream's now, closed by it */
    }
    close_all(f, g, x, y);
    if (rc < 0)
        dataset_free(out);
    return rc;
}

int h5data_read_items(const char *path, const char *name, int nhwc, Shape shape, DataType dtype, Dataset *out,
                      char *err, size_t errlen)
{
    hid_t f, x = -1;
    XInfo xi;
    char a[64], b[64];
    memset(out, 0, sizeof *out);
    if ((f = h5data_open_file(path, err, errlen)) < 0)
        return -1;
    int rc = (x = open_dataset(f, path, "", name, err, errlen)) < 0 ? -1 : x_info(x, path, "", nhwc, &xi, err, errlen);
    size_t item = (size_t)shape.c * shape.h * shape.w, esize = dtype == DT_U8 ? 1 : sizeof(float);
    if (rc == 0 && (xi.shape.rank != shape.rank || xi.shape.c != shape.c || xi.shape.h != shape.h ||
                    xi.shape.w != shape.w || xi.dtype != dtype))
        rc = -1, snprintf(err, errlen, "%s: /%s items are %s %s, the model's input is %s %s", path, name,
                          h5data_shape_str(xi.shape, a, sizeof a), xi.dtype == DT_U8 ? "uint8" : "float",
                          h5data_shape_str(shape, b, sizeof b), dtype == DT_U8 ? "uint8" : "float");
    if (rc == 0 && !stores(x, xi.n * (long long)(item * H5Tget_size(xi.mtype)), path))
        rc = -1, snprintf(err, errlen, "%s: /%s declares %lld items but the file holds no data for them", path, name,
                          xi.n);
    if (rc == 0) {
        void *v = malloc((size_t)xi.n * item * esize);
        *(dtype == DT_U8 ? (void **)&out->pixels : (void **)&out->values) = v;
        out->dtype = dtype, out->shape = shape, out->count = (int)xi.n;
        rc = v ? read_items(x, &xi, nhwc, xi.n, v, path, name, err, errlen)
               : (snprintf(err, errlen, "%s: out of memory for %lld items", path, xi.n), -1);
    }
    close_all(f, -1, x, -1);
    if (rc < 0)
        dataset_free(out);
    return rc;
}
