/* HDF5 fixture reader for the tests: small wrappers that turn datasets and attributes into plain arrays,
 * plus the tolerance comparison every reference test uses. */
#include "fixture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hid_t fx_open(const char *name)
{
    char path[512];
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* a missing dataset is an answer, not a stack dump */
    snprintf(path, sizeof path, "tests/reference/%s", name);
    return H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
}

void fx_close(hid_t f)
{
    if (f >= 0)
        H5Fclose(f);
}

int fx_exists(hid_t f, const char *path)
{
    /* H5Lexists needs every intermediate group to exist, so walk the path one component at a time. */
    char buf[512];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (H5Lexists(f, buf, H5P_DEFAULT) <= 0)
                return 0;
            if (c == '\0')
                return 1;
            *p = c;
        }
    }
}

/* Opens dataset `path`, fills rank/dims/size; returns the dataset id or -1. */
static hid_t open_dataset(hid_t f, const char *path, int *rank, int *dims, size_t *size)
{
    if (!fx_exists(f, path))
        return -1;
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    if (d < 0)
        return -1;
    hid_t sp = H5Dget_space(d);
    hsize_t hd[8];
    int r = H5Sget_simple_extent_ndims(sp);
    if (r < 0 || r > 8 || H5Sget_simple_extent_dims(sp, hd, NULL) < 0) {
        H5Sclose(sp), H5Dclose(d);
        return -1;
    }
    *size = 1;
    for (int i = 0; i < r; i++)
        dims[i] = (int)hd[i], *size *= hd[i];
    *rank = r;
    H5Sclose(sp);
    return d;
}

int fx_read(hid_t f, const char *path, FxArray *out)
{
    memset(out, 0, sizeof *out);
    hid_t d = open_dataset(f, path, &out->rank, out->dims, &out->size);
    if (d < 0)
        return -1;
    out->data = malloc((out->size ? out->size : 1) * sizeof(float));
    if (!out->data || H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out->data) < 0) {
        H5Dclose(d);
        fx_free(out);
        return -1;
    }
    H5Dclose(d);
    return 0;
}

int fx_read_ints(hid_t f, const char *path, int **out, size_t *n)
{
    int rank, dims[8];
    hid_t d = open_dataset(f, path, &rank, dims, n);
    *out = NULL;
    if (d < 0)
        return -1;
    *out = malloc((*n ? *n : 1) * sizeof(int));
    if (!*out || H5Dread(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0) {
        H5Dclose(d);
        free(*out);
        *out = NULL;
        return -1;
    }
    H5Dclose(d);
    return 0;
}

void fx_free(FxArray *a)
{
    free(a->data);
    a->data = NULL;
}

double fx_attr(hid_t f, const char *obj, const char *attr, double dflt)
{
    double v = dflt;
    if (H5Aexists_by_name(f, obj, attr, H5P_DEFAULT) <= 0)
        return dflt;
    hid_t a = H5Aopen_by_name(f, obj, attr, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0)
        return dflt;
    if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0)
        v = dflt;
    H5Aclose(a);
    return v;
}

int fx_attr_ints(hid_t f, const char *obj, const char *attr, int *out, int max)
{
    if (H5Aexists_by_name(f, obj, attr, H5P_DEFAULT) <= 0)
        return -1;
    hid_t a = H5Aopen_by_name(f, obj, attr, H5P_DEFAULT, H5P_DEFAULT);
    hid_t sp = H5Aget_space(a);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    int ok = n >= 0 && n <= max && H5Aread(a, H5T_NATIVE_INT, out) >= 0;
    H5Sclose(sp), H5Aclose(a);
    return ok ? (int)n : -1;
}

int fx_attr_str(hid_t f, const char *obj, const char *attr, char *buf, size_t len)
{
    if (H5Aexists_by_name(f, obj, attr, H5P_DEFAULT) <= 0)
        return -1;
    hid_t a = H5Aopen_by_name(f, obj, attr, H5P_DEFAULT, H5P_DEFAULT);
    hid_t ft = H5Aget_type(a);
    size_t sz = H5Tget_size(ft);
    int ok = 0;
    if (H5Tget_class(ft) == H5T_STRING && !H5Tis_variable_str(ft) && sz < len) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, sz + 1);
        H5Tset_strpad(mt, H5T_STR_NULLTERM);
        ok = H5Aread(a, mt, buf) >= 0;
        H5Tclose(mt);
    }
    H5Tclose(ft), H5Aclose(a);
    return ok ? 0 : -1;
}

FxDiff fx_compare(const float *got, const float *want, size_t n, double rtol, double atol)
{
    FxDiff d = {0, 0, NAN, NAN, -INFINITY};
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]), tol = atol + rtol * fabs((double)want[i]);
        int ok = e <= tol; /* false for NaN */
        d.bad += !ok;
        double excess = isnan(e) ? INFINITY : e - tol;
        if (excess > d.err || i == 0)
            d.err = excess, d.worst = i, d.got = got[i], d.want = want[i];
    }
    return d;
}
