/* A labelled image set kept as bytes (a quarter of the memory of floats: the 60,000 training images take
 * 47 MB) and turned into a normalised float batch on demand, in the order of a Fisher-Yates permutation. */
#ifndef BNNI_DATASET_H
#define BNNI_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "../spec.h"
#include "../rng.h"
#include "../tensor.h"

#define DATASET_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"

typedef struct Dataset {
    uint8_t *pixels; /* count x (c*h*w) bytes; owned */
    uint8_t *labels; /* count values in [0, classes); owned */
    int count;
    Shape shape;     /* one image: c x h x w */
    int classes;
} Dataset;

/* Input normalisation: x = (pixel/255 - mean) / std, through a 256-entry table so every batch converts the
 * same byte to the same float. normalize unit: mean 0, std 1; standard: the training set's statistics. */
typedef struct Normalizer {
    double mean, std;
    float lut[256];
} Normalizer;

/* Loads the training (train = 1) or test images and labels of `dir` (NULL: DATASET_DEFAULT_DIR), each file
 * `NAME.gz` or else `NAME`, keeping the first `limit` (0: all). Checks both files (idx_read), that they hold
 * as many images as labels, the image size against `shape` and every label against `classes`.
 * Returns 0, or -1 with "FILE: reason" in err. Free with dataset_free. */
int dataset_load(const char *dir, int train, long long limit, Shape shape, int classes, Dataset *out, char *err,
                 size_t errlen);
void dataset_free(Dataset *d);

/* Mean and (population) standard deviation of pixel/255 over every pixel of d; exact, order-independent. */
void dataset_pixel_stats(const Dataset *d, double *mean, double *std);
void norm_init(Normalizer *nz, double mean, double std);

/* Fills order[0..n) with a uniformly random permutation of 0..n-1 (identity, then Fisher-Yates from r). */
void dataset_permutation(int *order, int n, Rng *r);

/* Converts images order[start .. start+n) (order NULL: start .. start+n) into x (capacity >= n images; x->n is
 * set to n) and, when labels is not NULL, their labels. */
void dataset_batch(const Dataset *d, const int *order, int start, int n, const Normalizer *nz, Tensor *x,
                   int *labels);

#endif
