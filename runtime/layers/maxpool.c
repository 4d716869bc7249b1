/* maxpool: the maximum over kernel x kernel windows with stride, per channel; padding never wins (it counts as
 * -inf, as in PyTorch), and the gradient goes to the first maximum of each window. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../layer.h"
#include "common.h"
#include "window.h"

static int maxpool_out_shape(const LayerSpec *s, Shape in, Shape *out, long long *np, long long *nb, char *err,
                             size_t errlen)
{
    int oh, ow;
    if (window_out("maxpool", "pooling window", in, s->kernel, s->stride, s->padding, &oh, &ow, err, errlen))
        return -1;
    if (window_pad_half("maxpool", s->kernel, s->padding, err, errlen))
        return -1;
    *out = (Shape){3, in.c, oh, ow};
    *np = *nb = 0;
    return 0;
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

/* Scans each window row by row and keeps the first strict maximum, like PyTorch's CPU kernel (so ties go to
 * the first, and a NaN wins so that it propagates); padding is never a candidate. The loops run over a whole
 * output row at once, each output still seeing its window in row-major order.
 * x is (NC, H, W); y, arg are (NC, OH, OW) */
static void maxpool_forward(float *y, int *arg, const float *x, const int *lo, const int *hi, int NC, int H, int W,
                            int OH, int OW, int K, int S, int P)
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
                        float v = xr[ow * S - P + kj];
                        if (v > y[ow] || v != v)
                            y[ow] = v, arg[ow] = ih * W + ow * S - P + kj;
                    }
            }
        }
}

/* dx is (NC, H, W), overwritten; dy, arg are (NC, OH, OW) */
static void maxpool_backward(float *dx, const float *dy, const int *arg, int NC, int H, int W, int OHW)
{
    memset(dx, 0, (size_t)NC * H * W * sizeof(float));
    for (int nc = 0; nc < NC; nc++, dx += (size_t)H * W)
        for (int i = 0; i < OHW; i++, dy++, arg++)
            dx[*arg] += *dy;
}

static void maxpool_layer_forward(Layer *l, const Tensor *x, int train)
{
    const LayerSpec *s = l->spec;
    MaxpoolState *st = l->state;
    (void)train;
    layer_set_count(l, x->n);
    maxpool_forward(l->y.data, st->arg, x->data, st->lo, st->hi, x->n * s->in.c, s->in.h, s->in.w, s->out.h, s->out.w,
                    s->kernel, s->stride, s->padding);
}

static void maxpool_layer_backward(Layer *l, const Tensor *x, Tensor *dx)
{
    const LayerSpec *s = l->spec;
    MaxpoolState *st = l->state;
    if (dx)
        maxpool_backward(dx->data, l->dy.data, st->arg, x->n * s->in.c, s->in.h, s->in.w, s->out.h * s->out.w);
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
    .out_shape = maxpool_out_shape,
    .create = maxpool_create,
    .resize = maxpool_resize,
    .forward = maxpool_layer_forward,
    .backward = maxpool_layer_backward,
    .destroy = maxpool_destroy,
};
