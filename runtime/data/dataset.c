/* Data sets in memory (or streamed, stream.c) -> normalised float batches; the Fashion-MNIST/MNIST directory
 * loader (the four standard IDX file names, NAME.gz or NAME); the statistics of `standard` normalisation. */
#include "dataset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../threads.h"
#include "augment.h"
#include "idx.h"
#include "kind_idx.h"
#include "stream.h"

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

int dataset_load(const char *dir, int train, long long limit, Shape shape, int classes, Dataset *out, char *err,
                 size_t errlen)
{
    return dataset_open(dir, train, limit, 0, shape, classes, out, err, errlen);
}

int dataset_open(const char *dir, int train, long long limit, int stream, Shape shape, int classes, Dataset *out,
                 char *err, size_t errlen)
{
    char ipath[4096], lpath[4096];
    dir = dir ? dir : DATASET_DEFAULT_DIR;
    find_file(dir, train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte", ipath, sizeof ipath);
    find_file(dir, train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte", lpath, sizeof lpath);
    return idx_load_pair(ipath, lpath, limit, stream, shape, classes, out, err, errlen);
}

void dataset_free(Dataset *d)
{
    free(d->pixels);
    free(d->values);
    free(d->labels);
    if (d->stream)
        stream_close(d->stream);
    memset(d, 0, sizeof *d);
}

/* ---------------------------------------------------------------- statistics */

/* Mean and standard deviation of v/255 from a histogram of bytes: exact and order-independent. */
static void hist_stats(const unsigned long long *hist, double *mean, double *std)
{
    double s = 0.0, ss = 0.0, n = 0.0;
    for (int v = 0; v < 256; v++)
        s += (double)hist[v] * (v / 255.0), n += (double)hist[v];
    double m = n ? s / n : 0.0;
    for (int v = 0; v < 256; v++)
        ss += (double)hist[v] * (v / 255.0 - m) * (v / 255.0 - m);
    *mean = m;
    *std = n ? sqrt(ss / n) : 0.0;
}

/* Bytes of one item's stored values: a byte each (DT_U8) or a float each. */
static size_t item_bytes(const Dataset *d) { return dataset_item_size(d) * (d->dtype == DT_U8 ? 1 : sizeof(float)); }

/* Channels with their own statistics for items of shape s: C of an image, every feature of a vector. */
static int stat_channels(Shape s) { return s.rank == 3 ? s.c : s.c * s.h * s.w; }

#define STATS_CHUNK 1024 /* items read at a time from a stream */

/* Items [i0, i0+n) of the subset, as a pointer to their values: into d, or read into buf (streams). */
static const void *stats_items(const Dataset *d, const int *rows, int i0, int n, void *buf, char *err, size_t errlen)
{
    size_t size = dataset_item_size(d);
    if (!d->stream && !rows)
        return d->dtype == DT_U8 ? (const void *)(d->pixels + (size_t)i0 * size)
                                 : (const void *)(d->values + (size_t)i0 * size);
    int ids[STATS_CHUNK];
    for (int k = 0; k < n; k++)
        ids[k] = rows ? rows[i0 + k] : i0 + k;
    if (d->stream)
        return stream_read(d->stream, ids, n, buf, err, errlen) < 0 ? NULL : buf;
    for (int k = 0; k < n; k++) {
        size_t bytes = item_bytes(d);
        const char *src = d->dtype == DT_U8 ? (const char *)(d->pixels + (size_t)ids[k] * size)
                                            : (const char *)(d->values + (size_t)ids[k] * size);
        memcpy((char *)buf + k * bytes, src, bytes);
    }
    return buf;
}

/* One pass over the subset in item order; pass 0 sums values (or counts bytes), pass 1 squared deviations. */
static int stats_pass(const Dataset *d, const int *rows, int n, int pass, int nch, unsigned long long *hist,
                      double *acc, const double *mean, char *err, size_t errlen)
{
    size_t size = dataset_item_size(d), plane = size / (size_t)nch;
    size_t bytes = item_bytes(d);
    void *buf = malloc(bytes * STATS_CHUNK);
    if (!buf)
        return snprintf(err, errlen, "out of memory for the normalisation statistics"), -1;
    int rc = 0;
    for (int i0 = 0; rc == 0 && i0 < n; i0 += STATS_CHUNK) {
        int m = n - i0 < STATS_CHUNK ? n - i0 : STATS_CHUNK;
        const void *v = stats_items(d, rows, i0, m, buf, err, errlen);
        if (!v) {
            rc = -1;
            break;
        }
        for (int k = 0; k < m; k++)
            for (size_t j = 0; j < size; j++) {
                size_t c = j / plane;
                if (d->dtype == DT_U8)
                    hist[c * 256 + ((const uint8_t *)v)[(size_t)k * size + j]]++;
                else if (pass == 0)
                    acc[c] += ((const float *)v)[(size_t)k * size + j];
                else {
                    double dv = ((const float *)v)[(size_t)k * size + j] - mean[c];
                    acc[c] += dv * dv;
                }
            }
    }
    free(buf);
    return rc;
}

int dataset_stats(const Dataset *d, const int *rows, int n, double **mean, double **std, int *nch, char *err,
                  size_t errlen)
{
    int C = stat_channels(d->shape);
    size_t per = dataset_item_size(d) / (size_t)C * (size_t)n; /* values per channel */
    unsigned long long *hist = d->dtype == DT_U8 ? calloc((size_t)C * 256, sizeof *hist) : NULL;
    double *acc = calloc((size_t)C, sizeof *acc);
    *mean = calloc((size_t)C, sizeof **mean), *std = calloc((size_t)C, sizeof **std), *nch = C;
    int rc = (d->dtype == DT_U8 && !hist) || !acc || !*mean || !*std ? -1 : 0;
    if (rc < 0)
        snprintf(err, errlen, "out of memory for the normalisation statistics");
    if (rc == 0)
        rc = stats_pass(d, rows, n, 0, C, hist, acc, NULL, err, errlen);
    for (int c = 0; rc == 0 && c < C; c++)
        if (d->dtype == DT_U8)
            hist_stats(hist + (size_t)c * 256, &(*mean)[c], &(*std)[c]);
        else
            (*mean)[c] = per ? acc[c] / (double)per : 0.0, acc[c] = 0.0;
    if (rc == 0 && d->dtype == DT_F32 && (rc = stats_pass(d, rows, n, 1, C, NULL, acc, *mean, err, errlen)) == 0)
        for (int c = 0; c < C; c++)
            (*std)[c] = per ? sqrt(acc[c] / (double)per) : 0.0;
    free(hist), free(acc);
    if (rc < 0) {
        free(*mean), free(*std);
        *mean = *std = NULL;
    }
    return rc;
}

/* ---------------------------------------------------------------- normalisation */

/* The value a byte stands for before the statistics: byte/255 (unit, standard) or the byte (none). */
static double byte_value(DataNorm kind, int v) { return kind == NORM_NONE ? (double)v : v / 255.0; }

static void fill_lut(float *lut, DataNorm kind, double mean, double std)
{
    for (int v = 0; v < 256; v++)
        lut[v] = (float)((byte_value(kind, v) - mean) / std);
}

/* Sets nz->div when dividing each byte by it gives channel 0's table exactly: for unit (255) and none (1), since
 * float division is correctly rounded and byte/255.0 in double then rounded to float agrees with it on all 256
 * bytes (checked here all the same, so a table it missed by one bit would just stay a table). */
static void find_divisor(Normalizer *nz)
{
    float d = nz->kind == NORM_NONE ? 1.0f : 255.0f;
    nz->div = 0.0f;
    if (nz->dtype != DT_U8 || nz->nch != 1 || nz->mean != 0.0 || nz->std != 1.0)
        return;
    for (int v = 0; v < 256; v++)
        if ((float)v / d != nz->lut[v])
            return;
    nz->div = d;
}

void norm_init(Normalizer *nz, double mean, double std)
{
    memset(nz, 0, sizeof *nz);
    nz->kind = mean == 0.0 && std == 1.0 ? NORM_UNIT : NORM_STANDARD;
    nz->dtype = DT_U8;
    nz->nch = 1;
    nz->mean = mean;
    nz->std = std > 0.0 ? std : 1.0;
    nz->fmean = (float)nz->mean, nz->fstd = (float)nz->std;
    fill_lut(nz->lut, NORM_UNIT, mean, nz->std);
    find_divisor(nz);
}

int norm_setup(Normalizer *nz, DataNorm kind, DataType dt, Shape shape, int nch, const double *mean,
               const double *std, char *err, size_t errlen)
{
    size_t size = (size_t)shape.c * shape.h * shape.w;
    memset(nz, 0, sizeof *nz);
    nz->kind = kind, nz->dtype = dt, nz->nch = nch;
    if (nch != 1 && nch != stat_channels(shape)) {
        snprintf(err, errlen, "%d normalisation statistics do not fit items of %zu values", nch, size);
        return -1;
    }
    nz->plane = nch == 1 ? 0 : size / (size_t)nch;
    nz->mean = mean[0], nz->std = std[0] > 0.0 ? std[0] : 1.0;
    nz->fmean = (float)nz->mean, nz->fstd = (float)nz->std;
    fill_lut(nz->lut, kind, nz->mean, nz->std);
    find_divisor(nz);
    if (nch == 1)
        return 0;
    nz->means = malloc((size_t)nch * sizeof *nz->means), nz->stds = malloc((size_t)nch * sizeof *nz->stds);
    nz->fmeans = malloc((size_t)nch * sizeof *nz->fmeans), nz->fstds = malloc((size_t)nch * sizeof *nz->fstds);
    nz->luts = dt == DT_U8 ? malloc((size_t)nch * 256 * sizeof *nz->luts) : NULL;
    if (!nz->means || !nz->stds || !nz->fmeans || !nz->fstds || (dt == DT_U8 && !nz->luts)) {
        norm_free(nz);
        snprintf(err, errlen, "out of memory for the normalisation of %d channels", nch);
        return -1;
    }
    for (int c = 0; c < nch; c++) {
        nz->means[c] = mean[c], nz->stds[c] = std[c] > 0.0 ? std[c] : 1.0;
        nz->fmeans[c] = (float)nz->means[c], nz->fstds[c] = (float)nz->stds[c];
        if (nz->luts)
            fill_lut(nz->luts + (size_t)c * 256, kind, nz->means[c], nz->stds[c]);
    }
    return 0;
}

void norm_free(Normalizer *nz)
{
    free(nz->means), free(nz->stds), free(nz->luts), free(nz->fmeans), free(nz->fstds);
    nz->means = nz->stds = NULL, nz->luts = NULL, nz->fmeans = nz->fstds = NULL;
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

/* ---------------------------------------------------------------- batches */

/* Images ahead of the one being converted whose bytes are prefetched: a shuffled batch reads images from all
 * over the set, where the hardware prefetcher cannot guess the next one (measured with `bnni train --profile`:
 * 0.19 ms per shuffled batch of 128 without, 0.09 ms with; a sequential batch takes 0.03 ms). */
#define BATCH_PREFETCH 4

/* One item's values into dst: through the tables (bytes) or the float statistics, channel by channel. */
static void convert_item(const Normalizer *nz, DataType dt, const void *src, size_t size, float *dst)
{
    size_t plane = nz->nch == 1 ? size : nz->plane;
    for (int c = 0; c < nz->nch; c++) {
        size_t o = (size_t)c * plane;
        if (dt == DT_U8 && nz->div != 0.0f) {
            const uint8_t *s = (const uint8_t *)src;
            for (size_t k = 0; k < size; k++)
                dst[k] = (float)s[k] / nz->div;
        } else if (dt == DT_U8) {
            const float *lut = nz->nch == 1 ? nz->lut : nz->luts + (size_t)c * 256;
            const uint8_t *s = (const uint8_t *)src + o;
            for (size_t k = 0; k < plane; k++)
                dst[o + k] = lut[s[k]];
        } else {
            float m = nz->nch == 1 ? nz->fmean : nz->fmeans[c], sd = nz->nch == 1 ? nz->fstd : nz->fstds[c];
            const float *s = (const float *)src + o;
            for (size_t k = 0; k < plane; k++)
                dst[o + k] = (s[k] - m) / sd;
        }
    }
}

void *dataset_alloc_items(size_t bytes)
{
    void *p = malloc(bytes);
    if (p)
        tensor_hint_huge_pages(p, bytes);
    return p;
}

/* The items of a batch: slot b holds position order[start + b] (order NULL: start + b), which is item rows[p] of d
 * (rows NULL: item p); its values are in d, or in slot b of a staging buffer (streams). */
typedef struct Source {
    const Dataset *d;
    const int *order, *rows;
    int start;
    const void *base; /* d's values, or the staging buffer */
    int staged;
} Source;

/* The in-memory items of d from position `start` of order (rows as dataset_fill takes them). */
static Source source_of(const Dataset *d, const int *rows, const int *order, int start)
{
    return (Source){d, order, rows, start, d->dtype == DT_U8 ? (const void *)d->pixels : (const void *)d->values, 0};
}

static int slot_item(const Source *s, int b)
{
    int p = s->order ? s->order[s->start + b] : s->start + b;
    return s->rows ? s->rows[p] : p;
}

static const void *slot_values(const Source *s, int b)
{
    size_t size = dataset_item_size(s->d), at = (size_t)(s->staged ? b : slot_item(s, b)) * size;
    return s->d->dtype == DT_U8 ? (const void *)((const uint8_t *)s->base + at)
                                : (const void *)((const float *)s->base + at);
}

/* Slots [lo, hi) of the batch. */
static void convert_slots(const Source *s, int lo, int hi, const Normalizer *nz, const Augment *aug, Tensor *x,
                          int *labels)
{
    size_t size = dataset_item_size(s->d), bytes = item_bytes(s->d);
    for (int b = lo; b < hi; b++) {
        if (b + BATCH_PREFETCH < hi) {
            const char *next = slot_values(s, b + BATCH_PREFETCH);
            for (size_t k = 0; k < bytes; k += 64)
                __builtin_prefetch(next + k);
        }
        float *dst = x->data + (size_t)b * size;
        if (aug && s->d->shape.rank == 3)
            augment_item(aug, slot_item(s, b), s->d->shape, nz, s->d->dtype, slot_values(s, b), dst);
        else
            convert_item(nz, s->d->dtype, slot_values(s, b), size, dst);
        if (labels)
            labels[b] = s->d->labels[slot_item(s, b)];
    }
}

typedef struct ConvertCall {
    const Source *s;
    const Normalizer *nz;
    const Augment *aug;
    Tensor *x;
    int *labels;
    float *const *copies; /* ncopies > 1: copies_task's, copies[0] being x->data */
    int ncopies;
} ConvertCall;

static void convert_range(void *ctx, int lo, int hi)
{
    const ConvertCall *c = ctx;
    convert_slots(c->s, lo, hi, c->nz, c->aug, c->x, c->labels);
}

/* Every copy, whole: thread t converts the batch into copies t, t + T, ... (all of them when it runs alone). */
static void copies_task(void *ctx, int t, int T)
{
    const ConvertCall *c = ctx;
    for (int k = t; k < c->ncopies; k += T) {
        Tensor y = *c->x;
        y.data = c->copies[k];
        convert_slots(c->s, 0, c->x->n, c->nz, c->aug, &y, k == 0 ? c->labels : NULL);
    }
}

/* The threads that convert a batch of n items of d, and so prefetch it (dataset_prefetch): with ncopies > 1 copies,
 * one per copy; else the runtime's from RT_MIN_PARALLEL values on, one below. */
static int fill_team(const Dataset *d, int n, int ncopies)
{
    if (ncopies > 1)
        return ncopies;
    return (size_t)n * dataset_item_size(d) >= RT_MIN_PARALLEL ? rt_threads() : 1;
}

/* Split by images across the runtime's threads as the first layer splits them (threads.h), so that each thread
 * converts the images it will read first, or with copies, each its own copy whole; every image is converted
 * alone, so the result is the same for any thread count. */
static void convert_batch(const Source *s, int n, const Normalizer *nz, const Augment *aug, Tensor *x,
                          float *const *copies, int ncopies, int *labels)
{
    ConvertCall c = {s, nz, aug, x, labels, copies, ncopies};
    int nc = copies ? ncopies : 0, T = fill_team(s->d, n, nc);
    x->n = n;
    if (nc > 1)
        rt_run(T, copies_task, &c);
    else
        rt_for(n, T, convert_range, &c);
}

/* Reads the batch's items from d's stream into a staging buffer (caller frees). NULL with err on failure. */
static void *stage(const Source *s, int n, char *err, size_t errlen)
{
    size_t bytes = item_bytes(s->d);
    int *ids = malloc((size_t)(n > 0 ? n : 1) * sizeof *ids);
    void *buf = malloc(bytes * (size_t)(n > 0 ? n : 1));
    int ok = ids && buf;
    if (!ok)
        snprintf(err, errlen, "out of memory for a batch of %d items", n);
    for (int b = 0; ok && b < n; b++)
        ids[b] = slot_item(s, b);
    if (ok && stream_read(s->d->stream, ids, n, buf, err, errlen) < 0)
        ok = 0;
    free(ids);
    if (!ok) {
        free(buf);
        return NULL;
    }
    return buf;
}

int dataset_fill(const Dataset *d, const int *rows, const int *order, int start, int n, const Normalizer *nz,
                 const Augment *aug, Tensor *x, float *const *copies, int ncopies, int *labels, char *err,
                 size_t errlen)
{
    Source s = source_of(d, rows, order, start);
    void *staged = NULL;
    if (d->stream) {
        if (!(staged = stage(&s, n, err, errlen)))
            return -1;
        s.base = staged, s.staged = 1;
    }
    convert_batch(&s, n, nz, aug, x, copies, ncopies, labels);
    free(staged);
    return 0;
}

typedef struct PrefetchCall {
    const Source *s;
    int n, whole; /* whole: every thread reads every item (copies) */
} PrefetchCall;

/* Thread t of fill_team's asks for the items it will convert (convert_batch): all of them, or its share. */
static void prefetch_task(void *ctx, int t, int T)
{
    const PrefetchCall *c = ctx;
    const Dataset *d = c->s->d;
    size_t bytes = item_bytes(d);
    int lo = 0, hi = c->n;
    if (!c->whole)
        rt_split(c->n, t, T, &lo, &hi);
    for (int b = lo; b < hi; b++) {
        const char *p = slot_values(c->s, b);
        for (size_t k = 0; k < bytes; k += 64)
            __builtin_prefetch(p + k, 0, 2); /* into L2 and L3, where this thread's conversion reads them */
    }
}

void dataset_prefetch(const Dataset *d, const int *rows, const int *order, int start, int n, int ncopies)
{
    if (d->stream || n <= 0) /* the epoch's last batch: no team to wake */
        return;
    Source s = source_of(d, rows, order, start);
    PrefetchCall c = {&s, n, ncopies > 1};
    rt_run(fill_team(d, n, ncopies), prefetch_task, &c);
}

void dataset_batch(const Dataset *d, const int *order, int start, int n, const Normalizer *nz, Tensor *x,
                   int *labels)
{
    Source s = source_of(d, NULL, order, start);
    convert_batch(&s, n, nz, NULL, x, NULL, 0, labels);
}
