/* tanh: elementwise activation; the shape passes through unchanged. */
#include <math.h>

#include "../layer.h"
#include "../threads.h"
#include "common.h"

static int tanh_out_shape(const LayerSpec *s, Shape in, Shape *out, long long *np, long long *nb, char *err,
                            size_t errlen)
{
    (void)s, (void)err, (void)errlen;
    *out = in;
    *np = *nb = 0;
    return 0;
}

/* x, y are (n) */
static void tanh_forward(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = tanhf(x[i]);
}

/* dtanh/dx = 1 - y^2, from the saved output. dx, y, dy are (n) */
static void tanh_backward(float *dx, const float *y, const float *dy, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

/* Split across the threads as sigmoid is: tanhf is as costly. */
static void tanh_layer_forward(Layer *l, const Tensor *x, int train)
{
    (void)train;
    layer_act_forward(l, x, tanh_forward, RT_MIN_PARALLEL / 8);
}

static void tanh_layer_backward(Layer *l, const Tensor *x, Tensor *dx) { layer_act_backward(l, x, dx, tanh_backward); }

/* Eval-mode fusion (LayerPost): the same function, in place on the output of the layer before. */
static void tanh_inplace(float *y, size_t n) { tanh_forward(y, y, n); }

const LayerOps tanh_ops = {
    .type = "tanh",
    .out_shape = tanh_out_shape,
    .create = layer_create_none,
    .resize = layer_resize_io,
    .forward = tanh_layer_forward,
    .backward = tanh_layer_backward,
    .destroy = layer_free_io,
    .eval_act = tanh_inplace,
    .grad_from_output = 1,
    .act_grad = tanh_backward,
};
