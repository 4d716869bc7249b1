/* sigmoid: elementwise activation; the shape passes through unchanged. */
#include <math.h>

#include "../layer.h"
#include "../threads.h"
#include "act.h"
#include "common.h"

static int sigmoid_out_shape(const LayerSpec *s, Shape in, Shape *out, long long *np, long long *nb, char *err,
                            size_t errlen)
{
    (void)s, (void)err, (void)errlen;
    *out = in;
    *np = *nb = 0;
    return 0;
}

/* Stable for large |v|: exp is only ever taken of -|v|, so it never overflows. NaN stays NaN. */
static inline float sigmoidf(float v)
{
    float e = act_expf(-fabsf(v));
    return (v >= 0 ? 1.0f : e) / (1.0f + e);
}

/* x, y are (n) */
static void sigmoid_forward(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = sigmoidf(x[i]);
}

/* dsigmoid/dx = y (1 - y), from the saved output, in PyTorch's order of operations. dx, y, dy are (n) */
static void sigmoid_backward(float *dx, const float *y, const float *dy, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dx[i] = dy[i] * (1.0f - y[i]) * y[i];
}

/* Both directions split the elements across the runtime's threads (elementwise: the same result for any count). */
static void sigmoid_layer_forward(Layer *l, const Tensor *x, int train)
{
    size_t n = tensor_size(x);
    (void)train;
    layer_set_count(l, x->n);
#pragma omp parallel num_threads(rt_threads()) if (n >= RT_MIN_PARALLEL / 8)
    {
        size_t lo, hi;
        rt_share(n, 16, &lo, &hi);
        sigmoid_forward(l->y.data + lo, x->data + lo, hi - lo);
    }
}

static void sigmoid_layer_backward(Layer *l, const Tensor *x, Tensor *dx)
{
    size_t n = tensor_size(x);
    if (!dx)
        return;
#pragma omp parallel num_threads(rt_threads()) if (n >= RT_MIN_PARALLEL)
    {
        size_t lo, hi;
        rt_share(n, 16, &lo, &hi);
        sigmoid_backward(dx->data + lo, l->y.data + lo, l->dy.data + lo, hi - lo);
    }
}

/* Eval-mode fusion (LayerPost): the same function, in place on the output of the layer before. */
static void sigmoid_inplace(float *y, size_t n) { sigmoid_forward(y, y, n); }

const LayerOps sigmoid_ops = {
    .type = "sigmoid",
    .out_shape = sigmoid_out_shape,
    .create = layer_create_none,
    .resize = layer_resize_io,
    .forward = sigmoid_layer_forward,
    .backward = sigmoid_layer_backward,
    .destroy = layer_free_io,
    .eval_act = sigmoid_inplace,
};
