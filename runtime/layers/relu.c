/* relu: elementwise activation; the shape passes through unchanged. */
#include "../layer.h"
#include "../threads.h"
#include "common.h"

static int relu_out_shape(const LayerSpec *s, Shape in, Shape *out, long long *np, long long *nb, char *err,
                            size_t errlen)
{
    (void)s, (void)err, (void)errlen;
    *out = in;
    *np = *nb = 0;
    return 0;
}

/* Written so that NaN passes through (a diverged run must stay visible). x, y are (n) */
static void relu_forward(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

/* The gradient at 0 is 0, as in PyTorch. Taken from the output y: y > 0 exactly where x > 0 (NaN passes through
 * and compares false either way), so that the forward may be fused into the layer before (layer.h). dx, y, dy
 * are (n) */
static void relu_backward(float *dx, const float *y, const float *dy, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

static void relu_layer_forward(Layer *l, const Tensor *x, int train)
{
    (void)train;
    layer_act_forward(l, x, relu_forward, RT_MIN_PARALLEL);
}

static void relu_layer_backward(Layer *l, const Tensor *x, Tensor *dx) { layer_act_backward(l, x, dx, relu_backward); }

/* Eval-mode fusion (LayerPost): the same function, in place on the output of the layer before. */
static void relu_inplace(float *y, size_t n) { relu_forward(y, y, n); }

const LayerOps relu_ops = {
    .type = "relu",
    .out_shape = relu_out_shape,
    .create = layer_create_none,
    .resize = layer_resize_io,
    .forward = relu_layer_forward,
    .backward = relu_layer_backward,
    .destroy = layer_free_io,
    .eval_act = relu_inplace,
    .grad_from_output = 1,
    .act_grad = relu_backward,
};
