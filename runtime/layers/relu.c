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

/* The tensors of one call, for the threads' shares (layer_for_images); x is y in the backward. */
typedef struct ReluCall {
    float *out;
    const float *x, *dy;
} ReluCall;

static void forward_range(void *ctx, size_t lo, size_t hi)
{
    ReluCall *c = ctx;
    relu_forward(c->out + lo, c->x + lo, hi - lo);
}

static void backward_range(void *ctx, size_t lo, size_t hi)
{
    ReluCall *c = ctx;
    relu_backward(c->out + lo, c->x + lo, c->dy + lo, hi - lo);
}

static void relu_layer_forward(Layer *l, const Tensor *x, int train)
{
    ReluCall c = {.out = l->y.data, .x = x->data};
    (void)train;
    layer_set_count(l, x->n);
    layer_for_images(x->n, shape_size(l->spec->in), RT_MIN_PARALLEL, forward_range, &c);
}

static void relu_layer_backward(Layer *l, const Tensor *x, Tensor *dx)
{
    ReluCall c = {.out = dx ? dx->data : NULL, .x = l->y.data, .dy = l->dy.data};
    if (dx)
        layer_for_images(x->n, shape_size(l->spec->in), RT_MIN_PARALLEL, backward_range, &c);
}

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
};
