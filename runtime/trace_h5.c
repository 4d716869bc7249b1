/* /trace in a checkpoint (trace_h5.h, docs/checkpoint.md): attributes every, probe_images, subset_images and
 * percentiles; datasets step [T] and test_acc [T]; layers/<name> [T, 3] per traced layer, in the order traced
 * (creation order). The reader checks every shape before it allocates, as ckpt.c's does. */
#include "trace_h5.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRACE_MAX_RECORDS 100000000LL /* 10^8 records: far more than any run takes, less than memory can hold */

static int put_attr_i64(hid_t loc, const char *name, long long v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = sp < 0 ? -1 : H5Acreate2(loc, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_LLONG, &v);
    if (a >= 0)
        H5Aclose(a);
    if (sp >= 0)
        H5Sclose(sp);
    return rc < 0 ? -1 : 0;
}

static int put_data(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
                    const void *data)
{
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = sp < 0 ? -1 : H5Dcreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = d < 0 ? -1 : dims[0] == 0 ? 0 : H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (d >= 0)
        H5Dclose(d);
    if (sp >= 0)
        H5Sclose(sp);
    return rc < 0 ? -1 : 0;
}

/* Layer i's column of the records: [n, 3]. Caller frees. */
static double *layer_column(const TraceLog *log, int i)
{
    double *v = malloc(((size_t)log->n * TRACE_NPCT + 1) * sizeof *v);
    for (int r = 0; v && r < log->n; r++)
        memcpy(v + (size_t)r * TRACE_NPCT, log->pct + ((size_t)r * log->nlayers + i) * TRACE_NPCT,
               TRACE_NPCT * sizeof *v);
    return v;
}

int trace_write_h5(hid_t f, const TraceLog *log, hid_t gcpl)
{
    hid_t g = H5Gcreate2(f, "trace", H5P_DEFAULT, gcpl, H5P_DEFAULT);
    hid_t lg = g < 0 ? -1 : H5Gcreate2(g, "layers", H5P_DEFAULT, gcpl, H5P_DEFAULT);
    hsize_t n = (hsize_t)log->n, three = TRACE_NPCT, dims[2] = {n, TRACE_NPCT};
    int rc = lg < 0 ? -1 : 0;
    if (rc == 0) {
        rc |= put_attr_i64(g, "every", log->every) | put_attr_i64(g, "probe_images", log->probe);
        rc |= put_attr_i64(g, "subset_images", log->subset);
        hid_t sp = H5Screate_simple(1, &three, NULL);
        hid_t a = sp < 0 ? -1 : H5Acreate2(g, "percentiles", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        rc |= a < 0 || H5Awrite(a, H5T_NATIVE_DOUBLE, trace_percentiles) < 0 ? -1 : 0;
        if (a >= 0)
            H5Aclose(a);
        if (sp >= 0)
            H5Sclose(sp);
        rc |= put_data(g, "step", H5T_STD_I64LE, H5T_NATIVE_LLONG, 1, &n, log->step);
        rc |= put_data(g, "test_acc", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &n, log->test_acc);
    }
    for (int i = 0; rc == 0 && i < log->nlayers; i++) {
        double *v = layer_column(log, i);
        rc = v ? put_data(lg, log->names[i], H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, dims, v) : -1;
        free(v);
    }
    if (lg >= 0)
        H5Gclose(lg);
    if (g >= 0)
        H5Gclose(g);
    return rc;
}

/* ---------------------------------------------------------------- reading */

static int get_i64(hid_t g, const char *name, long long *v, char *err, size_t errlen)
{
    hid_t a = H5Aexists(g, name) > 0 ? H5Aopen(g, name, H5P_DEFAULT) : -1;
    hid_t sp = a < 0 ? -1 : H5Aget_space(a), t = a < 0 ? -1 : H5Aget_type(a);
    int ok = sp >= 0 && t >= 0 && H5Sget_simple_extent_npoints(sp) == 1 && H5Tget_class(t) == H5T_INTEGER &&
             H5Aread(a, H5T_NATIVE_LLONG, v) >= 0;
    if (t >= 0)
        H5Tclose(t);
    if (sp >= 0)
        H5Sclose(sp);
    if (a >= 0)
        H5Aclose(a);
    if (!ok)
        snprintf(err, errlen, "/trace has no integer attribute '%s'", name);
    return ok ? 0 : -1;
}

/* Dataset `name` of g: exactly `rank` dimensions, the first `n` (n < 0: any, returned), the second (rank 2) 3,
 * stored in full, read as mtype into a new array (*out, caller frees). Returns the first dimension or -1. */
static long long get_data(hid_t g, const char *name, int rank, long long n, hid_t mtype, size_t size, void **out,
                          char *err, size_t errlen)
{
    hid_t d = H5Lexists(g, name, H5P_DEFAULT) > 0 ? H5Dopen2(g, name, H5P_DEFAULT) : -1;
    hid_t sp = d < 0 ? -1 : H5Dget_space(d);
    hsize_t dims[2] = {0, 0};
    int ok = sp >= 0 && H5Sget_simple_extent_ndims(sp) == rank && H5Sget_simple_extent_dims(sp, dims, NULL) == rank &&
             (long long)dims[0] <= TRACE_MAX_RECORDS && (n < 0 || (long long)dims[0] == n) &&
             (rank == 1 || dims[1] == TRACE_NPCT);
    size_t count = ok ? (size_t)dims[0] * (rank == 2 ? TRACE_NPCT : 1) : 0;
    /* a declared shape is only a claim: what is stored must hold it before memory is spent on it */
    ok = ok && (count == 0 || H5Dget_storage_size(d) >= count * size);
    *out = ok ? malloc(count * size + 1) : NULL;
    ok = *out && (count == 0 || H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) >= 0);
    if (sp >= 0)
        H5Sclose(sp);
    if (d >= 0)
        H5Dclose(d);
    if (!ok) {
        free(*out);
        *out = NULL;
        snprintf(err, errlen, "/trace: dataset %s is missing, unreadable or not [%s%s]", name,
                 n < 0 ? "T" : "steps", rank == 2 ? ", 3" : "");
        return -1;
    }
    return (long long)dims[0];
}

typedef struct Names {
    TraceLog *log;
    int over;
} Names;

static herr_t add_name(hid_t g, const char *name, const H5L_info_t *info, void *op)
{
    (void)g, (void)info;
    Names *n = op;
    if (n->log->nlayers == TRACE_MAX_LAYERS || strlen(name) >= SPEC_NAME_MAX) {
        n->over = 1;
        return 1;
    }
    snprintf(n->log->names[n->log->nlayers++], SPEC_NAME_MAX, "%s", name);
    return 0;
}

/* The traced layers' names (creation order, else name order) and their [n, 3] columns into log->pct. */
static int read_layers(hid_t g, TraceLog *log, char *err, size_t errlen)
{
    hid_t lg = H5Lexists(g, "layers", H5P_DEFAULT) > 0 ? H5Gopen2(g, "layers", H5P_DEFAULT) : -1;
    Names nm = {log, 0};
    hsize_t idx = 0;
    if (lg < 0 || (H5Literate(lg, H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, add_name, &nm) < 0 &&
                   (log->nlayers = 0, idx = 0, H5Literate(lg, H5_INDEX_NAME, H5_ITER_INC, &idx, add_name, &nm) < 0)) ||
        nm.over || log->nlayers == 0) {
        snprintf(err, errlen, "/trace/layers must hold 1 to %d datasets named by layer", TRACE_MAX_LAYERS);
        if (lg >= 0)
            H5Gclose(lg);
        return -1;
    }
    int rc = (log->pct = malloc(((size_t)log->n * log->nlayers * TRACE_NPCT + 1) * sizeof *log->pct)) ? 0 : -1;
    for (int i = 0; rc == 0 && i < log->nlayers; i++) {
        double *col = NULL;
        rc = get_data(lg, log->names[i], 2, log->n, H5T_NATIVE_DOUBLE, sizeof(double), (void **)&col, err, errlen) <
                     0 ? -1 : 0;
        for (int r = 0; rc == 0 && r < log->n; r++)
            memcpy(log->pct + ((size_t)r * log->nlayers + i) * TRACE_NPCT, col + (size_t)r * TRACE_NPCT,
                   TRACE_NPCT * sizeof *col);
        free(col);
    }
    H5Gclose(lg);
    return rc;
}

int trace_read_h5(hid_t f, TraceLog **out, char *err, size_t errlen)
{
    *out = NULL;
    if (H5Lexists(f, "trace", H5P_DEFAULT) <= 0)
        return 0;
    TraceLog *log = calloc(1, sizeof *log);
    hid_t g = H5Gopen2(f, "trace", H5P_DEFAULT);
    long long every = 0, probe = 0, subset = 0, n;
    int rc = log && g >= 0 ? 0 : -1;
    if (rc < 0)
        snprintf(err, errlen, "/trace is not a group");
    if (rc == 0)
        rc = get_i64(g, "every", &every, err, errlen) | get_i64(g, "probe_images", &probe, err, errlen) |
             get_i64(g, "subset_images", &subset, err, errlen);
    if (rc == 0 && (every < 1 || every > (1LL << 40) || probe < 1 || probe > (1 << 30) || subset < 1 ||
                    subset > (1 << 30))) {
        snprintf(err, errlen, "/trace holds implausible attributes (every %lld, probe %lld, subset %lld)", every, probe,
                 subset);
        rc = -1;
    }
    if (rc == 0 && (n = get_data(g, "step", 1, -1, H5T_NATIVE_LLONG, 8, (void **)&log->step, err, errlen)) < 0)
        rc = -1;
    if (rc == 0) {
        log->n = log->cap = (int)n;
        log->every = (int)every, log->probe = (int)probe, log->subset = (int)subset;
        if (get_data(g, "test_acc", 1, n, H5T_NATIVE_DOUBLE, 8, (void **)&log->test_acc, err, errlen) < 0 ||
            read_layers(g, log, err, errlen) < 0)
            rc = -1;
    }
    if (g >= 0)
        H5Gclose(g);
    if (rc < 0) {
        trace_log_free(log);
        return -1;
    }
    *out = log;
    return 0;
}
