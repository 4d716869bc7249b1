/* flatten: N x C x H x W -> N x (C*H*W); the memory layout is already right, so data is copied as is. */
#include <string.h>

#include "../layer.h"
#include "common.h"

static int flatten_out_shape(const LayerSpec *s, Shape in, Shape *out, long long *np, long long *nb, char *err,
                             size_t errlen)
{
    (void)s, (void)err, (void)errlen;
    *out = (Shape){1, in.c * in.h * in.w, 1, 1};
    *np = *nb = 0;
    return 0;
}

static void flatten_layer_forward(Layer *l, const Tensor *x, int train)
{
    (void)train;
    layer_set_count(l, x->n);
    memcpy(l->y.data, x->data, tensor_size(x) * sizeof(float));
}

static void flatten_layer_backward(Layer *l, const Tensor *x, Tensor *dx)
{
    if (dx)
        memcpy(dx->data, l->dy.data, tensor_size(x) * sizeof(float));
}

const LayerOps flatten_ops = {
    .type = "flatten",
    .out_shape = flatten_out_shape,
    .create = layer_create_none,
    .resize = layer_resize_io,
    .forward = flatten_layer_forward,
    .backward = flatten_layer_backward,
    .destroy = layer_free_io,
};
