/* A labelled data set in memory -- bytes for images (a quarter of the memory of floats: Fashion-MNIST's 60,000
 * training images take 47 MB), float32 for features -- or, for a large HDF5 file, read from the file batch by batch
 * (stream.h). Batches are normalised floats in the order of a Fisher-Yates permutation, optionally through a subset
 * of the items (a validation split: `rows`) and with random flips and crops (augment.c). */
#ifndef BNNI_DATASET_H
#define BNNI_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "../rng.h"
#include "../spec.h"
#include "../tensor.h"

#define DATASET_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"

typedef struct DataStream DataStream;

typedef struct Dataset {
    DataType dtype;
    uint8_t *pixels;    /* DT_U8: count items of shape (C x H x W, or F) bytes each; owned */
    float *values;      /* DT_F32: count items of floats; owned */
    int32_t *labels;    /* count values in [0, classes); owned */
    int count;
    Shape shape;        /* one item: c x h x w, or c features */
    int classes;
    DataStream *stream; /* not NULL: the items stay in their file and are read per batch (stream.c); owned */
} Dataset;

/* Memory for `bytes` of a data set's items, freed with free(); NULL when out of memory. The items are read at
 * random, batch by batch, so the whole 2 MB pages inside are asked for as huge pages (tensor_hint_huge_pages). */
void *dataset_alloc_items(size_t bytes);

/* Values per item. */
static inline size_t dataset_item_size(const Dataset *d) { return (size_t)d->shape.c * d->shape.h * d->shape.w; }

/* Input normalisation (DataNorm): v = byte / 255 for bytes under unit and standard, else the stored value; the
 * network sees (v - mean_c) / std_c, with c the value's channel (or feature, or 0 when one pair serves every
 * value). Bytes convert through a 256-entry table per channel, so every batch converts a byte to the same float. */
typedef struct Normalizer {
    DataNorm kind;
    DataType dtype;
    int nch;              /* channels with their own statistics; 1: the same for every value */
    size_t plane;         /* consecutive values of an item that share a channel; 0: all of them (nch 1) */
    double mean, std;     /* channel 0's statistics (the only ones when nch is 1) */
    float lut[256];       /* DT_U8: channel 0's table */
    float div;            /* not 0: channel 0's table is (float)byte / div for every byte (checked), which a
                           * vector loop computes faster than it looks the table up (unit: 255, none: 1) */
    float fmean, fstd;    /* DT_F32: channel 0's statistics in float */
    double *means, *stds; /* nch > 1: [nch] each; owned */
    float *luts;          /* DT_U8, nch > 1: [nch][256]; owned */
    float *fmeans, *fstds; /* DT_F32, nch > 1: [nch] each; owned */
} Normalizer;

/* Random horizontal flips and random crops after zero padding, drawn per item and epoch from the run's seed
 * (augment.c): a stateless draw, so a resumed run and any thread count see the same crops. */
typedef struct Augment {
    int flip, crop;
    uint64_t seed;
    int epoch;
} Augment;

/* Loads the training (train = 1) or test images and labels of `dir` (NULL: DATASET_DEFAULT_DIR), each file
 * `NAME.gz` or else `NAME` (the four standard MNIST/Fashion-MNIST names), keeping the first `limit` (0: all).
 * Checks both files (idx_read), that they hold as many images as labels, the image size against `shape` and every
 * label against `classes`. Returns 0, or -1 with "FILE: reason" in err. Free with dataset_free. */
int dataset_load(const char *dir, int train, long long limit, Shape shape, int classes, Dataset *out, char *err,
                 size_t errlen);
/* The same, with `stream`: uncompressed image files stay on disk, read per batch (kind_idx.h). */
int dataset_open(const char *dir, int train, long long limit, int stream, Shape shape, int classes, Dataset *out,
                 char *err, size_t errlen);
void dataset_free(Dataset *d);

/* The statistics of `standard` normalisation over the items rows[0..n) of d (rows NULL: items 0..n-1), per channel
 * (C x H x W items: nch = C) or per feature (nch = F): of byte/255 for bytes (exact, from histograms), of the values
 * for floats (double sums in item order). mean and std get nch values each (caller frees). Streamed sets are read
 * through. Returns 0, or -1 with err. */
int dataset_stats(const Dataset *d, const int *rows, int n, double **mean, double **std, int *nch, char *err,
                  size_t errlen);

/* One pair of statistics for every value of byte data: the seed's normaliser (unit: mean 0, std 1). */
void norm_init(Normalizer *nz, double mean, double std);
/* A normaliser of `kind` for items of `shape` and type dt: nch 1 (mean[0], std[0] serve every value), or one
 * pair per channel (rank 3: nch = C) or per feature (rank 1: nch = F). A std of 0 counts as 1 (a constant channel
 * is only shifted). Returns 0, or -1 with err (out of memory, nch that fits neither). Free with norm_free. */
int norm_setup(Normalizer *nz, DataNorm kind, DataType dt, Shape shape, int nch, const double *mean,
               const double *std, char *err, size_t errlen);
void norm_free(Normalizer *nz);

/* Fills order[0..n) with a uniformly random permutation of 0..n-1 (identity, then Fisher-Yates from r). */
void dataset_permutation(int *order, int n, Rng *r);

/* Converts the items at positions order[start .. start+n) (order NULL: start .. start+n) into x (capacity >= n
 * items; x->n is set to n) and, when labels is not NULL, their labels. A position p means item rows[p] of d (rows
 * NULL: item p). aug, when not NULL, flips and crops image items. With ncopies > 1, copies[1 .. ncopies) (each of
 * x's capacity; copies[0] is x->data) get the same values, each converted whole by thread t of a team of ncopies
 * (net_set_input_copies): the values a thread reads then never cross from another core. Returns 0, or -1 with err
 * when a streamed item cannot be read. */
int dataset_fill(const Dataset *d, const int *rows, const int *order, int start, int n, const Normalizer *nz,
                 const Augment *aug, Tensor *x, float *const *copies, int ncopies, int *labels, char *err,
                 size_t errlen);

/* Asks the caches for the values of the items at positions order[start .. start+n) of an in-memory set, the batch
 * after the one just converted: they arrive while the network computes, and its conversion then reads the cache
 * (memory latency left the critical path). The threads that will convert them ask, as dataset_fill splits that work
 * (ncopies > 1: that many threads, each for every item; else each for its share), so that the values reach the cache
 * of the core that reads them: asked for by one thread, the other thread's conversion read them from that one's
 * cache (`--profile` at 2 threads, means of 471 steps, 3 runs each: lenet's data phase 40 -> 30 us a step,
 * lenet_bn's 46 -> 34, mlp_bn's 43 -> 39). No effect on streamed sets; no effect on any result. */
void dataset_prefetch(const Dataset *d, const int *rows, const int *order, int start, int n, int ncopies);

/* dataset_fill of an in-memory set without rows or augmentation, which cannot fail. */
void dataset_batch(const Dataset *d, const int *order, int start, int n, const Normalizer *nz, Tensor *x,
                   int *labels);

#endif
