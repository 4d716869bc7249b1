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

/* One call's copy, for the threads' shares (layer_for_images). */
typedef struct FlattenCall {
    float *to;
    const float *from;
} FlattenCall;

static void copy_range(void *ctx, size_t lo, size_t hi)
{
    FlattenCall *c = ctx;
    memcpy(c->to + lo, c->from + lo, (hi - lo) * sizeof(float));
}

static void flatten_layer_forward(Layer *l, const Tensor *x, int train)
{
    FlattenCall c = {l->y.data, x->data};
    (void)train;
    layer_set_count(l, x->n);
    layer_for_images(x->n, shape_size(l->spec->in), RT_MIN_PARALLEL, copy_range, &c);
}

static void flatten_layer_backward(Layer *l, const Tensor *x, Tensor *dx)
{
    FlattenCall c = {dx ? dx->data : NULL, l->dy.data};
    if (dx)
        layer_for_images(x->n, shape_size(l->spec->in), RT_MIN_PARALLEL, copy_range, &c);
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
