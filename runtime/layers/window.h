/* The sliding-window shape rule shared by conv2d, avgpool and maxpool (PyTorch's floor rule). */
#ifndef BNNI_WINDOW_H
#define BNNI_WINDOW_H

#include <stdio.h>
#include <stdlib.h>

#include "../layer.h"

/* Output size of a window over a 3-D input: floor((h + 2p - k) / s) + 1 per spatial dimension.
 * Returns 0, or -1 with a reason naming `what` ("kernel", "pooling window") when it does not fit. */
static inline int window_out(const char *layer, const char *what, Shape in, int k, int s, int p, int *oh, int *ow,
                             char *err, size_t errlen)
{
    char buf[64];
    if (k < 1 || s < 1 || p < 0) {
        snprintf(err, errlen, "%s needs %s >= 1, stride >= 1 and padding >= 0 (got %d, %d, %d)", layer, what, k, s, p);
        return -1;
    }
    if (in.rank != 3) {
        snprintf(err, errlen, "%s needs a CxHxW input, but its input is %s features", layer, shape_str(in, buf, sizeof buf));
        return -1;
    }
    if (in.h + 2 * p < k || in.w + 2 * p < k) {
        snprintf(err, errlen, "%s %d is larger than its input %s (padding %d)", what, k, shape_str(in, buf, sizeof buf), p);
        return -1;
    }
    *oh = (in.h + 2 * p - k) / s + 1;
    *ow = (in.w + 2 * p - k) / s + 1;
    return 0;
}

/* The output columns ow in [*lo, *hi) whose input column ow*S - P + kj lies inside [0, W): the part of an output
 * row that kernel column kj reads from real input rather than padding. */
static inline void window_range(int kj, int S, int P, int W, int OW, int *lo, int *hi)
{
    int a = P - kj > 0 ? (P - kj + S - 1) / S : 0;
    int b = W - 1 + P - kj >= 0 ? (W - 1 + P - kj) / S + 1 : 0;
    *lo = a < OW ? a : OW;
    *hi = b < OW ? b : OW;
    if (*hi < *lo)
        *hi = *lo;
}

/* window_range for every kernel column of a pooling spec: returns lo[0..K) with hi = lo + K in the same
 * allocation (caller frees lo), or NULL when out of memory. */
static inline int *pool_ranges(const LayerSpec *s, int **hi)
{
    int K = s->kernel, *lo = malloc(2 * (size_t)K * sizeof *lo);
    if (!lo)
        return NULL;
    *hi = lo + K;
    for (int kj = 0; kj < K; kj++)
        window_range(kj, s->stride, s->padding, s->in.w, s->out.w, &lo[kj], &(*hi)[kj]);
    return lo;
}

/* PyTorch's pooling rule: padding at most half the window, so that every window covers some input. */
static inline int window_pad_half(const char *layer, int k, int p, char *err, size_t errlen)
{
    if (2 * p > k) {
        snprintf(err, errlen, "%s padding %d is more than half its pooling window %d", layer, p, k);
        return -1;
    }
    return 0;
}

#endif
