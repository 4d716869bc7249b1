/* Data sets on disk -> byte arrays -> normalised float batches. Files are found as NAME.gz, else NAME, in the
 * data directory (the four standard MNIST/Fashion-MNIST file names). */
#include "dataset.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../threads.h"
#include "idx.h"

/* Picks DIR/NAME.gz when it exists, else DIR/NAME when that does; else the .gz name (for the error). */
static void find_file(const char *dir, const char *name, char *path, size_t len)
{
    char plain[4096];
    if (snprintf(path, len, "%s/%s.gz", dir, name) >= (int)len || access(path, F_OK) == 0)
        return;
    int n = snprintf(plain, sizeof plain, "%s/%s", dir, name);
    if (n > 0 && (size_t)n < len && access(plain, F_OK) == 0)
        memcpy(path, plain, (size_t)n + 1);
}

static int load_pair(const char *dir, int train, long long limit, IdxFile *img, IdxFile *lab, char *ipath,
                     char *lpath, size_t plen, char *err, size_t errlen)
{
    char why[512];
    find_file(dir, train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte", ipath, plen);
    find_file(dir, train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte", lpath, plen);
    if (idx_read(ipath, IDX_IMAGES, limit, img, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s: %s", ipath, why);
        return -1;
    }
    if (idx_read(lpath, IDX_LABELS, limit, lab, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s: %s", lpath, why);
        idx_free(img);
        return -1;
    }
    return 0;
}

static int check_pair(const IdxFile *img, const IdxFile *lab, const char *ipath, const char *lpath, Shape shape,
                      int classes, char *err, size_t errlen)
{
    if (img->total != lab->total) {
        snprintf(err, errlen, "%s: holds %d labels, but %s holds %d images", lpath, lab->total, ipath, img->total);
        return -1;
    }
    if (shape.c != 1 || img->rows != shape.h || img->cols != shape.w) {
        snprintf(err, errlen, "%s: images are 1x%dx%d, the model's input is %dx%dx%d", ipath, img->rows, img->cols,
                 shape.c, shape.h, shape.w);
        return -1;
    }
    for (int i = 0; i < lab->count; i++)
        if (lab->data[i] >= classes) {
            snprintf(err, errlen, "%s: label %d of image %d is outside [0, %d)", lpath, lab->data[i], i, classes);
            return -1;
        }
    return 0;
}

int dataset_load(const char *dir, int train, long long limit, Shape shape, int classes, Dataset *out, char *err,
                 size_t errlen)
{
    char ipath[4096], lpath[4096];
    IdxFile img, lab;
    memset(out, 0, sizeof *out);
    if (load_pair(dir ? dir : DATASET_DEFAULT_DIR, train, limit, &img, &lab, ipath, lpath, sizeof ipath, err,
                  errlen) < 0)
        return -1;
    if (check_pair(&img, &lab, ipath, lpath, shape, classes, err, errlen) < 0) {
        idx_free(&img);
        idx_free(&lab);
        return -1;
    }
    out->pixels = img.data;
    out->labels = lab.data;
    out->count = img.count;
    out->shape = shape;
    out->classes = classes;
    return 0;
}

void dataset_free(Dataset *d)
{
    free(d->pixels);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

void dataset_pixel_stats(const Dataset *d, double *mean, double *std)
{
    size_t n = (size_t)d->count * d->shape.c * d->shape.h * d->shape.w;
    unsigned long long hist[256] = {0};
    for (size_t i = 0; i < n; i++)
        hist[d->pixels[i]]++;
    double s = 0.0, ss = 0.0;
    for (int v = 0; v < 256; v++)
        s += (double)hist[v] * (v / 255.0);
    double m = n ? s / (double)n : 0.0;
    for (int v = 0; v < 256; v++)
        ss += (double)hist[v] * (v / 255.0 - m) * (v / 255.0 - m);
    *mean = m;
    *std = n ? sqrt(ss / (double)n) : 0.0;
}

void norm_init(Normalizer *nz, double mean, double std)
{
    nz->mean = mean;
    nz->std = std > 0.0 ? std : 1.0;
    for (int v = 0; v < 256; v++)
        nz->lut[v] = (float)((v / 255.0 - mean) / nz->std);
}

void dataset_permutation(int *order, int n, Rng *r)
{
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(r, (uint64_t)i + 1);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* Images ahead of the one being converted whose bytes are prefetched: a shuffled batch reads images from all
 * over the set, where the hardware prefetcher cannot guess the next one (measured with `bnni train --profile`:
 * 0.19 ms per shuffled batch of 128 without, 0.09 ms with; a sequential batch takes 0.03 ms). */
#define BATCH_PREFETCH 4

/* Images [lo, hi) of the batch. */
static void batch_images(const Dataset *d, const int *order, int start, int lo, int hi, const Normalizer *nz,
                         Tensor *x, int *labels)
{
    size_t sz = (size_t)d->shape.c * d->shape.h * d->shape.w;
    for (int b = lo; b < hi; b++) {
        int idx = order ? order[start + b] : start + b;
        const uint8_t *src = d->pixels + (size_t)idx * sz;
        if (b + BATCH_PREFETCH < hi) {
            const uint8_t *next = d->pixels + (size_t)(order ? order[start + b + BATCH_PREFETCH]
                                                             : start + b + BATCH_PREFETCH) * sz;
            for (size_t k = 0; k < sz; k += 64)
                __builtin_prefetch(next + k);
        }
        float *dst = x->data + (size_t)b * sz;
        for (size_t k = 0; k < sz; k++)
            dst[k] = nz->lut[src[k]];
        if (labels)
            labels[b] = d->labels[idx];
    }
}

/* Split by images across the runtime's threads as the first layer splits them (threads.h), so that each thread
 * converts the images it will read first; every image is converted alone, so the result is the same for any
 * thread count. */
void dataset_batch(const Dataset *d, const int *order, int start, int n, const Normalizer *nz, Tensor *x,
                   int *labels)
{
    size_t total = (size_t)n * d->shape.c * d->shape.h * d->shape.w;
    x->n = n;
#pragma omp parallel num_threads(rt_threads()) if (total >= RT_MIN_PARALLEL)
    {
        int lo, hi;
        rt_split(n, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        batch_images(d, order, start, lo, hi, nz, x, labels);
    }
}
