/* flatten: N x C x H x W -> N x (C*H*W). The memory layout is already right, so the output is the input itself:
 * y points at x's values (nothing is copied forward; an MLP's first layer spent 3 % of its step copying the batch),
 * and only the gradient is copied back, when the layer before needs one. */
#include <stdio.h>
#include <string.h>

#include "../layer.h"
#include "../threads.h"
#include "common.h"

static int flatten_out_shape(const LayerSpec *s, Shape in, Shape *out, long long *np, long long *nb, char *err,
                             size_t errlen)
{
    (void)s, (void)err, (void)errlen;
    *out = (Shape){1, in.c * in.h * in.w, 1, 1};
    *np = *nb = 0;
    return 0;
}

/* dy is owned (batch x out); y owns nothing: its data is the last forward's input (NULL before one). */
static int flatten_resize(Layer *l, int batch, char *err, size_t errlen)
{
    const Shape *out = &l->spec->out;
    char buf[64];
    if (l->batch == batch && l->dy.data)
        return 0;
    if (batch < 1) {
        snprintf(err, errlen, "batch size must be at least 1, got %d", batch);
        return -1;
    }
    tensor_free(&l->dy);
    l->batch = 0;
    l->y = (Tensor){NULL, batch, out->c, out->h, out->w};
    if (tensor_alloc(&l->dy, batch, out->c, out->h, out->w)) {
        snprintf(err, errlen, "out of memory for the %s gradients of a batch of %d", shape_str(*out, buf, sizeof buf),
                 batch);
        return -1;
    }
    l->batch = batch;
    return 0;
}

static void flatten_destroy(Layer *l)
{
    tensor_free(&l->dy);
    l->y.data = NULL;
    l->batch = 0;
}

static void flatten_layer_forward(Layer *l, const Tensor *x, int train)
{
    (void)train;
    layer_set_count(l, x->n);
    l->y.data = x->data;
}

/* out = a (LayerMap2), over images split across the threads as the layers around it split them. */
static void copy_values(float *out, const float *a, const float *b, size_t n)
{
    (void)b;
    memcpy(out, a, n * sizeof(float));
}

static void flatten_layer_backward(Layer *l, const Tensor *x, Tensor *dx)
{
    if (dx)
        layer_map_images(x->n, shape_size(l->spec->in), RT_MIN_PARALLEL, copy_values, dx->data, l->dy.data, NULL);
}

const LayerOps flatten_ops = {
    .type = "flatten",
    .out_shape = flatten_out_shape,
    .create = layer_create_none,
    .resize = flatten_resize,
    .forward = flatten_layer_forward,
    .backward = flatten_layer_backward,
    .destroy = flatten_destroy,
    .views_input = 1,
};
