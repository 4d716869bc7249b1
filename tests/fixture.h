/* Reading the PyTorch fixtures under tests/reference/ (written by tests/reference/make_fixtures.py)
 * through the HDF5 C API, and comparing float arrays against them with stated tolerances. */
#ifndef BNNI_FIXTURE_H
#define BNNI_FIXTURE_H

#include <hdf5.h>
#include <stddef.h>

/* A dataset converted to float32; data is owned (fx_free). Rank-0 datasets have size 1. */
typedef struct FxArray {
    float *data;
    size_t size;
    int rank;
    int dims[8];
} FxArray;

/* Opens tests/reference/<name> read-only (tests run from the repository root); returns a negative id on failure. */
hid_t fx_open(const char *name);
void fx_close(hid_t f);
/* 1 when the group or dataset `path` exists. */
int fx_exists(hid_t f, const char *path);
/* Reads dataset `path` as float32 (HDF5 converts integer data); 0, or -1 when missing or out of memory. */
int fx_read(hid_t f, const char *path, FxArray *out);
/* Reads dataset `path` as int; *out is malloc'd, caller frees. 0 or -1. */
int fx_read_ints(hid_t f, const char *path, int **out, size_t *n);
void fx_free(FxArray *a);
/* Numeric attribute `attr` of object `obj` as double; dflt when absent. */
double fx_attr(hid_t f, const char *obj, const char *attr, double dflt);
/* Integer-array attribute into out[0..max); returns the count or -1. */
int fx_attr_ints(hid_t f, const char *obj, const char *attr, int *out, int max);
/* Fixed-length string attribute into buf (NUL-terminated); 0 or -1. */
int fx_attr_str(hid_t f, const char *obj, const char *attr, char *buf, size_t len);

/* The outcome of fx_compare: how many values failed |got - want| <= atol + rtol*|want| (NaN always fails),
 * and the worst one by (error - tolerance). */
typedef struct FxDiff {
    size_t bad, worst;
    double got, want, err;
} FxDiff;

FxDiff fx_compare(const float *got, const float *want, size_t n, double rtol, double atol);

/* Criterion expectation over a whole array, naming the tensor and its worst element on failure. */
#define FX_EXPECT_CLOSE(got_, want_, n_, rtol_, atol_, ...)                                                          \
    do {                                                                                                        \
        FxDiff fx_d_ = fx_compare((got_), (want_), (n_), (rtol_), (atol_));                                        \
        char fx_what_[256];                                                                                     \
        snprintf(fx_what_, sizeof fx_what_, __VA_ARGS__);                                                     \
        cr_expect(fx_d_.bad == 0, "%s: %zu of %zu values outside rtol %g atol %g; worst [%zu] got %.9g want %.9g", \
                  fx_what_, fx_d_.bad, (size_t)(n_), (double)(rtol_), (double)(atol_), fx_d_.worst, fx_d_.got,      \
                  fx_d_.want);                                                                                  \
    } while (0)

#endif
