/* maxpool: the maximum over kernel x kernel windows with stride, per channel; padding never wins (it counts as
 * -inf, as in PyTorch), and the gradient goes to the first maximum of each window. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../layer.h"
#include "../threads.h"
#include "common.h"
#include "window.h"

static int maxpool_out_shape(const LayerSpec *s, Shape in, Shape *out, long long *np, long long *nb, char *err,
                             size_t errlen)
{
    return pool_out_shape("maxpool", s, in, out, np, nb, err, errlen);
}

typedef struct MaxpoolState {
    int *arg;     /* (batch, C, OH, OW): the offset ih*W + iw in its channel plane of each window's maximum */
    int *lo, *hi; /* per kernel column kj, the output columns that read real input (window_range) */
} MaxpoolState;

static int maxpool_create(Layer *l, Rng *init, char *err, size_t errlen)
{
    (void)init;
    MaxpoolState *st = l->state = calloc(1, sizeof *st);
    if (!st || !(st->lo = pool_ranges(l->spec, &st->hi))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int maxpool_resize(Layer *l, int batch, char *err, size_t errlen)
{
    MaxpoolState *st = l->state;
    size_t n;
    if (l->batch == batch && l->y.data)
        return 0;
    free(st->arg);
    st->arg = NULL;
    if (layer_alloc_io(l, batch, err, errlen))
        return -1;
    n = tensor_size(&l->y);
    if (!(st->arg = malloc(n * sizeof *st->arg + 1))) {
        snprintf(err, errlen, "out of memory for the maxpool indices (%zu values)", n);
        layer_free_io(l);
        return -1;
    }
    return 0;
}

/* Candidate c at index ic replaces the window's running maximum (*m, *i) when it is larger or NaN. Selected with
 * bit masks: a ?: on floats became a compare-and-branch, mispredicted half the time on real data. */
static inline void keep_max(float c, int ic, float *m, int *i)
{
    uint32_t take = 0u - (uint32_t)((c > *m) | (c != c)), cb, mb;
    memcpy(&cb, &c, sizeof cb), memcpy(&mb, m, sizeof mb);
    mb = (cb & take) | (mb & ~take);
    memcpy(m, &mb, sizeof mb);
    *i = (int)(((uint32_t)ic & take) | ((uint32_t)*i & ~take));
}

/* Scans each window row by row and keeps the first strict maximum, like PyTorch's CPU kernel (so ties go to
 * the first, and a NaN wins so that it propagates); padding is never a candidate. The loops run over a whole
 * output row at once, each output still seeing its window in row-major order.
 * x is (NC, H, W); y, arg are (NC, OH, OW) */
static void maxpool_forward(float *restrict y, int *restrict arg, const float *restrict x, const int *lo,
                            const int *hi, int NC, int H, int W, int OH, int OW, int K, int S, int P)
{
    for (int nc = 0; nc < NC; nc++, x += (size_t)H * W)
        for (int oh = 0; oh < OH; oh++, y += OW, arg += OW) {
            int h0 = oh * S - P < 0 ? 0 : oh * S - P;
            for (int ow = 0; ow < OW; ow++) {
                y[ow] = -INFINITY;
                arg[ow] = h0 * W + (ow * S - P < 0 ? 0 : ow * S - P); /* PyTorch's index when all are -inf */
            }
            for (int ki = 0; ki < K; ki++) {
                int ih = oh * S - P + ki;
                const float *xr = x + (size_t)ih * W;
                if (ih < 0 || ih >= H)
                    continue;
                for (int kj = 0; kj < K; kj++)
                    for (int ow = lo[kj]; ow < hi[kj]; ow++) {
                        keep_max(xr[ow * S - P + kj], ih * W + ow * S - P + kj, &y[ow], &arg[ow]);
                    }
            }
        }
}

/* maxpool_forward for the 2x2, stride 2, unpadded window (the usual one) without the general loops' per-row
 * bookkeeping: the four candidates in the same order with the same rule, from the first (which an all -inf
 * window keeps, as the general loop's starting index is that one). */
static void maxpool2_forward(float *restrict y, int *restrict arg, const float *restrict x, int NC, int H, int W,
                             int OH, int OW)
{
    for (int nc = 0; nc < NC; nc++, x += (size_t)H * W)
        for (int oh = 0; oh < OH; oh++, y += OW, arg += OW) {
            const float *a = x + (size_t)2 * oh * W, *b = a + W;
            int i0 = 2 * oh * W;
            for (int ow = 0; ow < OW; ow++) {
                float m = a[2 * ow];
                int i = i0 + 2 * ow;
                keep_max(a[2 * ow + 1], i0 + 2 * ow + 1, &m, &i);
                keep_max(b[2 * ow], i0 + W + 2 * ow, &m, &i);
                keep_max(b[2 * ow + 1], i0 + W + 2 * ow + 1, &m, &i);
                y[ow] = m, arg[ow] = i;
            }
        }
}

#if defined(__AVX512F__)
/* (m, i) = candidate (c, ic) where it is larger or NaN, else (m, i); lane by lane. */
static inline void keep_max16(__m512 c, __m512i ic, __m512 *m, __m512i *i)
{
    __mmask16 k = _mm512_cmp_ps_mask(c, *m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(c, c, _CMP_UNORD_Q);
    *m = _mm512_mask_mov_ps(*m, k, c);
    *i = _mm512_mask_mov_epi32(*i, k, ic);
}

/* maxpool2_forward with one output row per vector when OW <= 16 (a scalar window is a chain of dependent
 * selects: 15 cycles an output, 0.7 ms of cnn_relu's first maxpool). Each row's pair is reduced first, then the
 * two pairs: the first strict maximum of a0 a1 b0 b1 (a NaN replacing) is the first of (a0 a1) unless that of
 * (b0 b1) is strictly larger or NaN, so the same values and indices as the scalar order. */
static void maxpool2_forward_rows16(float *restrict y, int *restrict arg, const float *restrict x, int NC, int H,
                                    int W, int OH, int OW)
{
    WindowRow16 w = window_row16(OW);
    const __m512i one = _mm512_set1_epi32(1);
    for (int nc = 0; nc < NC; nc++, x += (size_t)H * W)
        for (int oh = 0; oh < OH; oh++, y += OW, arg += OW) {
            __m512 ma, ao, mb, bo;
            window_row16_split(&w, x + (size_t)2 * oh * W, &ma, &ao);
            window_row16_split(&w, x + (size_t)(2 * oh + 1) * W, &mb, &bo);
            __m512i ia = _mm512_add_epi32(_mm512_set1_epi32(2 * oh * W), w.even); /* input index of column 2j */
            __m512i ib = _mm512_add_epi32(ia, _mm512_set1_epi32(W));
            keep_max16(ao, _mm512_add_epi32(ia, one), &ma, &ia);
            keep_max16(bo, _mm512_add_epi32(ib, one), &mb, &ib);
            keep_max16(mb, ib, &ma, &ia);
            _mm512_mask_storeu_ps(y, w.out, ma);
            _mm512_mask_storeu_epi32(arg, w.out, ia);
        }
}
#endif

/* The 2x2 forward: one output row per vector where it fits. */
static void maxpool2_forward_any(float *restrict y, int *restrict arg, const float *restrict x, int NC, int H, int W,
                                 int OH, int OW)
{
#if defined(__AVX512F__)
    if (OW <= 16) {
        maxpool2_forward_rows16(y, arg, x, NC, H, W, OH, OW);
        return;
    }
#endif
    maxpool2_forward(y, arg, x, NC, H, W, OH, OW);
}

/* dx is (NC, H, W), overwritten; dy, arg are (NC, OH, OW) */
static void maxpool_backward(float *dx, const float *dy, const int *arg, int NC, int H, int W, int OHW)
{
    memset(dx, 0, (size_t)NC * H * W * sizeof(float));
    for (int nc = 0; nc < NC; nc++, dx += (size_t)H * W)
        for (int i = 0; i < OHW; i++, dy++, arg++)
            dx[*arg] += *dy;
}

/* Both directions split the N*C planes across the runtime's threads (pool_for); these are a thread's planes
 * [lo, hi). */
static void planes(void *ctx, int lo, int hi)
{
    const PoolCall *c = ctx;
    const LayerSpec *s = c->l->spec;
    const MaxpoolState *st = c->l->state;
    int H = s->in.h, W = s->in.w, OH = s->out.h, OW = s->out.w;
    int *arg = st->arg + lo * c->ohw;
    if (c->backward)
        maxpool_backward(c->out + lo * c->hw, c->in + lo * c->ohw, arg, hi - lo, H, W, (int)c->ohw);
    else if (window_is_2x2(s))
        maxpool2_forward_any(c->out + lo * c->ohw, arg, c->in + lo * c->hw, hi - lo, H, W, OH, OW);
    else
        maxpool_forward(c->out + lo * c->ohw, arg, c->in + lo * c->hw, st->lo, st->hi, hi - lo, H, W, OH, OW, c->K,
                        c->S, c->P);
}

static void maxpool_layer_forward(Layer *l, const Tensor *x, int train)
{
    (void)train;
    layer_set_count(l, x->n);
    pool_for(l, x->n, x->data, l->y.data, 0, planes);
}

static void maxpool_layer_backward(Layer *l, const Tensor *x, Tensor *dx)
{
    if (dx)
        pool_for(l, x->n, l->dy.data, dx->data, 1, planes);
}

static void maxpool_destroy(Layer *l)
{
    MaxpoolState *st = l->state;
    if (st)
        free(st->arg), free(st->lo);
    free(st);
    l->state = NULL;
    layer_free_io(l);
}

const LayerOps maxpool_ops = {
    .type = "maxpool",
    .args = pool_args,
    .nargs = POOL_NARGS,
    .configure = pool_configure,
    .out_shape = maxpool_out_shape,
    .create = maxpool_create,
    .resize = maxpool_resize,
    .forward = maxpool_layer_forward,
    .backward = maxpool_layer_backward,
    .destroy = maxpool_destroy,
};
