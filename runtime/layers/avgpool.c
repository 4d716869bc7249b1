/* avgpool: pooling over kernel x kernel windows with stride and zero padding, per channel. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../layer.h"
#include "../threads.h"
#include "common.h"
#include "window.h"

static int avgpool_out_shape(const LayerSpec *s, Shape in, Shape *out, long long *np, long long *nb, char *err,
                             size_t errlen)
{
    return pool_out_shape("avgpool", s, in, out, np, nb, err, errlen);
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

/* The 2x2, stride 2, unpadded window (LeNet's) without the general loops' per-row bookkeeping, which cost more
 * than the arithmetic on rows of 12 or 4 outputs: 7x faster at LeNet's pool1. The same sums in the same order as
 * avgpool_forward. x is (NC, H, W), y is (NC, OH, OW) */
static void avgpool2_forward(float *y, const float *x, int NC, int H, int W, int OH, int OW)
{
    for (int nc = 0; nc < NC; nc++, x += (size_t)H * W)
        for (int oh = 0; oh < OH; oh++, y += OW) {
            const float *a = x + (size_t)2 * oh * W, *b = a + W;
            for (int ow = 0; ow < OW; ow++)
                y[ow] = (((a[2 * ow] + a[2 * ow + 1]) + b[2 * ow]) + b[2 * ow + 1]) / 4.0f;
        }
}

#if defined(__AVX512F__)
/* avgpool2_forward with one output row per vector when OW <= 16 (LeNet's 12 and 4): the two input rows loaded as
 * two vectors each, split into even and odd columns by a permute, summed in the same order and divided by 4 as a
 * multiplication by 0.25 (exact either way), so the same bits; 3x fewer instructions than the scalar loop's
 * strided reads. */
static void avgpool2_forward_rows16(float *y, const float *x, int NC, int H, int W, int OH, int OW)
{
    WindowRow16 w = window_row16(OW);
    for (int nc = 0; nc < NC; nc++, x += (size_t)H * W)
        for (int oh = 0; oh < OH; oh++, y += OW) {
            __m512 ae, ao, be, bo;
            window_row16_split(&w, x + (size_t)2 * oh * W, &ae, &ao);
            window_row16_split(&w, x + (size_t)(2 * oh + 1) * W, &be, &bo);
            __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(ae, ao), be), bo);
            _mm512_mask_storeu_ps(y, w.out, _mm512_mul_ps(s, _mm512_set1_ps(0.25f)));
        }
}
#endif

/* The 2x2 forward: one output row per vector where it fits. */
static void avgpool2_forward_any(float *y, const float *x, int NC, int H, int W, int OH, int OW)
{
#if defined(__AVX512F__)
    if (OW <= 16) {
        avgpool2_forward_rows16(y, x, NC, H, W, OH, OW);
        return;
    }
#endif
    avgpool2_forward(y, x, NC, H, W, OH, OW);
}

/* avgpool_backward for the 2x2, stride 2, unpadded window: every input in at most one window. */
static void avgpool2_backward(float *dx, const float *dy, int NC, int H, int W, int OH, int OW)
{
    for (int nc = 0; nc < NC; nc++, dx += (size_t)H * W) {
        if (H != 2 * OH || W != 2 * OW) /* an odd last row or column is in no window */
            memset(dx, 0, (size_t)H * W * sizeof(float));
        for (int oh = 0; oh < OH; oh++, dy += OW) {
            float *a = dx + (size_t)2 * oh * W, *b = a + W;
            for (int ow = 0; ow < OW; ow++) {
                float g = dy[ow] / 4.0f;
                a[2 * ow] = a[2 * ow + 1] = b[2 * ow] = b[2 * ow + 1] = g;
            }
        }
    }
}

/* Global pooling (one unpadded window covering the whole plane, as resnet_small's avgpool(14)): the general loop
 * spent 2.8 ms of a 136 ms step on its per-value bookkeeping. Each plane is still summed value by value in row order
 * from 0, as avgpool_forward sums it (the same bits), but eight planes at a time, so that eight independent sums
 * fill the adder instead of one chain waiting on itself. x is (NC, HW), y is (NC). */
static void avgpool_global_forward(float *y, const float *x, int NC, int HW, float div)
{
    enum { B = 8 };
    int nc = 0;
    for (; nc + B <= NC; nc += B) {
        float s[B] = {0};
        const float *p = x + (size_t)nc * HW;
        for (int i = 0; i < HW; i++)
            for (int j = 0; j < B; j++)
                s[j] += p[(size_t)j * HW + i];
        for (int j = 0; j < B; j++)
            y[nc + j] = s[j] / div;
    }
    for (; nc < NC; nc++) {
        float s = 0.0f;
        for (int i = 0; i < HW; i++)
            s += x[(size_t)nc * HW + i];
        y[nc] = s / div;
    }
}

/* Its backward: every input in the one window, dx = dy / div (what avgpool_backward adds to a zeroed dx). */
static void avgpool_global_backward(float *dx, const float *dy, int NC, int HW, float div)
{
    for (int nc = 0; nc < NC; nc++, dx += HW) {
        float g = dy[nc] / div;
        for (int i = 0; i < HW; i++)
            dx[i] = g;
    }
}

/* Both directions split the N*C planes across the runtime's threads (pool_for); these are a thread's planes
 * [lo, hi). */
static void planes(void *ctx, int lo, int hi)
{
    const PoolCall *c = ctx;
    const LayerSpec *s = c->l->spec;
    const AvgpoolState *st = c->l->state;
    int H = s->in.h, W = s->in.w, OH = s->out.h, OW = s->out.w, two = window_is_2x2(s);
    int global = OH == 1 && OW == 1 && c->P == 0 && c->K == H && c->K == W;
    const float *in = c->in + lo * (c->backward ? c->ohw : c->hw);
    float *out = c->out + lo * (c->backward ? c->hw : c->ohw);
    if (global && c->backward)
        avgpool_global_backward(out, in, hi - lo, H * W, (float)(c->K * c->K));
    else if (global)
        avgpool_global_forward(out, in, hi - lo, H * W, (float)(c->K * c->K));
    else if (c->backward && two)
        avgpool2_backward(out, in, hi - lo, H, W, OH, OW);
    else if (c->backward)
        avgpool_backward(out, in, st->lo, st->hi, hi - lo, H, W, OH, OW, c->K, c->S, c->P);
    else if (two)
        avgpool2_forward_any(out, in, hi - lo, H, W, OH, OW);
    else
        avgpool_forward(out, in, st->lo, st->hi, hi - lo, H, W, OH, OW, c->K, c->S, c->P);
}

static void avgpool_layer_forward(Layer *l, const Tensor *x, int train)
{
    (void)train;
    layer_set_count(l, x->n);
    pool_for(l, x->n, x->data, l->y.data, 0, planes);
}

static void avgpool_layer_backward(Layer *l, const Tensor *x, Tensor *dx)
{
    if (dx)
        pool_for(l, x->n, l->dy.data, dx->data, 1, planes);
}

const LayerOps avgpool_ops = {
    .type = "avgpool",
    .args = pool_args,
    .nargs = POOL_NARGS,
    .configure = pool_configure,
    .out_shape = avgpool_out_shape,
    .create = avgpool_create,
    .resize = layer_resize_io,
    .forward = avgpool_layer_forward,
    .backward = avgpool_layer_backward,
    .destroy = avgpool_destroy,
};
