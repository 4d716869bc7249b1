/* flatten: N x C x H x W -> N x (C*H*W); the memory layout is already right, so data is copied as is. */
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

/* out = a (LayerMap2), over images split across the threads as the layers around it split them. */
static void copy_values(float *out, const float *a, const float *b, size_t n)
{
    (void)b;
    memcpy(out, a, n * sizeof(float));
}

static void flatten_layer_forward(Layer *l, const Tensor *x, int train)
{
    (void)train;
    layer_set_count(l, x->n);
    layer_map_images(x->n, shape_size(l->spec->in), RT_MIN_PARALLEL, copy_values, l->y.data, x->data, NULL);
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
    .resize = layer_resize_io,
    .forward = flatten_layer_forward,
    .backward = flatten_layer_backward,
    .destroy = layer_free_io,
};
