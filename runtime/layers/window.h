/* The sliding-window shape rule shared by conv2d, avgpool and maxpool (PyTorch's floor rule), and what the two
 * pooling layers share: their arguments and their shape rule. */
#ifndef BNNI_WINDOW_H
#define BNNI_WINDOW_H

#include <stdio.h>
#include <stdlib.h>

#include "../layer.h"
#include "../threads.h"

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

/* avgpool(kernel, stride=kernel, padding=0) and maxpool(...): the arguments' positions in LayerSpec.arg;
 * pool_args (common.c) is their schema and pool_configure their rules beyond it. */
enum { POOL_KERNEL, POOL_STRIDE, POOL_PADDING, POOL_NARGS };
extern const ArgSpec pool_args[POOL_NARGS];
/* stride defaults to the kernel; padding at most half the window. */
int pool_configure(LayerSpec *s, int *bad, char *err, size_t errlen);
/* The shape rule of the pooling layer `layer`: per channel, a window over each plane. */
int pool_out_shape(const char *layer, const LayerSpec *s, Shape in, Shape *out, long long *np, long long *nb,
                   char *err, size_t errlen);

/* One call of a pooling layer, for the threads' shares of the N*C planes (pool_for), and its geometry. */
typedef struct PoolCall {
    Layer *l;
    const float *in;
    float *out;
    int backward;
    int K, S, P;
    size_t hw, ohw; /* an input and an output plane's values */
} PoolCall;

/* fn over the N*C planes of a pooling layer's input split across the runtime's threads (each plane is
 * independent); on one thread below RT_MIN_PARALLEL input values. in and out are the direction's own (backward:
 * dy and dx). */
static inline void pool_for(Layer *l, int n, const float *in, float *out, int backward, RtRange fn)
{
    const LayerSpec *s = l->spec;
    int NC = n * s->in.c;
    PoolCall c = {l, in, out, backward, spec_int(s, POOL_KERNEL), spec_int(s, POOL_STRIDE), spec_int(s, POOL_PADDING),
                  (size_t)s->in.h * s->in.w, (size_t)s->out.h * s->out.w};
    rt_for(NC, (size_t)NC * c.hw >= RT_MIN_PARALLEL ? rt_threads() : 1, fn, &c);
}

/* window_range for every kernel column of a pooling spec: returns lo[0..K) with hi = lo + K in the same
 * allocation (caller frees lo), or NULL when out of memory. */
static inline int *pool_ranges(const LayerSpec *s, int **hi)
{
    int K = spec_int(s, POOL_KERNEL), *lo = malloc(2 * (size_t)K * sizeof *lo);
    if (!lo)
        return NULL;
    *hi = lo + K;
    for (int kj = 0; kj < K; kj++)
        window_range(kj, spec_int(s, POOL_STRIDE), spec_int(s, POOL_PADDING), s->in.w, s->out.w, &lo[kj],
                     &(*hi)[kj]);
    return lo;
}

/* The 2x2, stride 2, unpadded pooling window (LeNet's), which avgpool and maxpool run through loops of their own. */
static inline int window_is_2x2(const LayerSpec *s)
{
    return spec_int(s, POOL_KERNEL) == 2 && spec_int(s, POOL_STRIDE) == 2 && spec_int(s, POOL_PADDING) == 0;
}

#if defined(__AVX512F__)
#include <immintrin.h>

/* For the 2x2 pools' paths with one output row per vector (OW <= 16): the masks of a row's 2*OW inputs (lo: the
 * first 16, hi: the rest) and of its OW outputs, and the permutes that split a row into even and odd columns. */
typedef struct WindowRow16 {
    __mmask16 lo, hi, out;
    __m512i even, odd;
} WindowRow16;

static inline WindowRow16 window_row16(int OW)
{
    int n = 2 * OW; /* inputs read per row */
    WindowRow16 w;
    w.lo = (__mmask16)(n >= 16 ? 0xFFFF : (1u << n) - 1);
    w.hi = (__mmask16)(n > 16 ? (1u << (n - 16)) - 1 : 0);
    w.out = (__mmask16)((1u << OW) - 1);
    w.even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    w.odd = _mm512_add_epi32(w.even, _mm512_set1_epi32(1));
    return w;
}

/* Row r's 2*OW inputs as *even and *odd: lane j holds columns 2j and 2j+1, the two of output j's window. */
static inline void window_row16_split(const WindowRow16 *w, const float *r, __m512 *even, __m512 *odd)
{
    __m512 r0 = _mm512_maskz_loadu_ps(w->lo, r), r1 = _mm512_maskz_loadu_ps(w->hi, r + 16);
    *even = _mm512_permutex2var_ps(r0, w->even, r1);
    *odd = _mm512_permutex2var_ps(r0, w->odd, r1);
}
#endif

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
