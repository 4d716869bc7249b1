/* avgpool: pooling over kernel x kernel windows with stride and zero padding, per channel. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../layer.h"
#include "common.h"
#include "window.h"

static int avgpool_out_shape(const LayerSpec *s, Shape in, Shape *out, long long *np, long long *nb, char *err,
                             size_t errlen)
{
    int oh, ow;
    if (window_out("avgpool", "pooling window", in, s->kernel, s->stride, s->padding, &oh, &ow, err, errlen))
        return -1;
    if (window_pad_half("avgpool", s->kernel, s->padding, err, errlen))
        return -1;
    *out = (Shape){3, in.c, oh, ow};
    *np = *nb = 0;
    return 0;
}

/* Per kernel column kj, the output columns [lo[kj], hi[kj]) that read real input (window_range), computed once. */
typedef struct AvgpoolState {
    int *lo, *hi;
} AvgpoolState;

static int avgpool_create(Layer *l, Rng *init, char *err, size_t errlen)
{
    (void)init;
    AvgpoolState *st = l->state = calloc(1, sizeof *st);
    if (!st || !(st->lo = pool_ranges(l->spec, &st->hi))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static void avgpool_destroy(Layer *l)
{
    AvgpoolState *st = l->state;
    if (st)
        free(st->lo);
    free(st);
    l->state = NULL;
    layer_free_io(l);
}

/* count_include_pad=True (PyTorch's default): every window is divided by kernel*kernel, padding counted as zeros.
 * With padding <= kernel/2 and the floor rule, a window never reaches past the padded border, so that is
 * also PyTorch's divisor. Each output sums its window's real values row by row, in PyTorch's order; the loops run
 * over a whole output row at once so that they vectorise. x is (NC, H, W), y is (NC, OH, OW) */
static void avgpool_forward(float *y, const float *x, const int *lo, const int *hi, int NC, int H, int W, int OH,
                            int OW, int K, int S, int P)
{
    float div = (float)(K * K);
    for (int nc = 0; nc < NC; nc++, x += (size_t)H * W)
        for (int oh = 0; oh < OH; oh++, y += OW) {
            for (int ow = 0; ow < OW; ow++)
                y[ow] = 0.0f;
            for (int ki = 0; ki < K; ki++) {
                int ih = oh * S - P + ki;
                const float *xr = x + (size_t)ih * W;
                if (ih < 0 || ih >= H)
                    continue;
                for (int kj = 0; kj < K; kj++)
                    for (int ow = lo[kj]; ow < hi[kj]; ow++)
                        y[ow] += xr[ow * S - P + kj];
            }
            for (int ow = 0; ow < OW; ow++)
                y[ow] /= div;
        }
}

/* Each input value receives dy / (kernel*kernel) from every window that covers it.
 * dx is (NC, H, W), overwritten; dy is (NC, OH, OW) */
static void avgpool_backward(float *dx, const float *dy, const int *lo, const int *hi, int NC, int H, int W, int OH,
                             int OW, int K, int S, int P)
{
    float div = (float)(K * K);
    memset(dx, 0, (size_t)NC * H * W * sizeof(float));
    for (int nc = 0; nc < NC; nc++, dx += (size_t)H * W)
        for (int oh = 0; oh < OH; oh++, dy += OW)
            for (int ki = 0; ki < K; ki++) {
                int ih = oh * S - P + ki;
                float *dxr = dx + (size_t)ih * W;
                if (ih < 0 || ih >= H)
                    continue;
                for (int kj = 0; kj < K; kj++)
                    for (int ow = lo[kj]; ow < hi[kj]; ow++)
                        dxr[ow * S - P + kj] += dy[ow] / div;
            }
}

static void avgpool_layer_forward(Layer *l, const Tensor *x, int train)
{
    const LayerSpec *s = l->spec;
    AvgpoolState *st = l->state;
    (void)train;
    layer_set_count(l, x->n);
    avgpool_forward(l->y.data, x->data, st->lo, st->hi, x->n * s->in.c, s->in.h, s->in.w, s->out.h, s->out.w,
                    s->kernel, s->stride, s->padding);
}

static void avgpool_layer_backward(Layer *l, const Tensor *x, Tensor *dx)
{
    const LayerSpec *s = l->spec;
    AvgpoolState *st = l->state;
    if (dx)
        avgpool_backward(dx->data, l->dy.data, st->lo, st->hi, x->n * s->in.c, s->in.h, s->in.w, s->out.h, s->out.w,
                         s->kernel, s->stride, s->padding);
}

const LayerOps avgpool_ops = {
    .type = "avgpool",
    .out_shape = avgpool_out_shape,
    .create = avgpool_create,
    .resize = layer_resize_io,
    .forward = avgpool_layer_forward,
    .backward = avgpool_layer_backward,
    .destroy = avgpool_destroy,
};
