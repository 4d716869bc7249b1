/* residual: y = body(x) + x, the body being a sub-network. The checker infers the body's shapes
 * (it must end with the shape it started with); this layer runs the sub-network and adds the skip.
 * Its state is the body's Net (net.c relies on that to list the body's parameters). */
#include <stdio.h>
#include <stdlib.h>

#include "../layer.h"
#include "../net.h"
#include "common.h"

static int residual_out_shape(const LayerSpec *s, Shape in, Shape *out, long long *np, long long *nb, char *err,
                              size_t errlen)
{
    /* The body's own layers carry their counts; the addition has none. */
    (void)s, (void)err, (void)errlen;
    *out = in;
    *np = *nb = 0;
    return 0;
}

/* The body is built from the same init stream at this point of the network, and shares its dropout stream. */
static int residual_create(Layer *l, Rng *init, char *err, size_t errlen)
{
    Net *body = calloc(1, sizeof *body);
    if (!(l->state = body)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return net_init(body, l->spec->body, l->spec->nbody, l->spec->in, init, l->rng, err, errlen);
}

static int residual_resize(Layer *l, int batch, char *err, size_t errlen)
{
    if (layer_resize_io(l, batch, err, errlen))
        return -1;
    return net_resize(l->state, batch, err, errlen);
}

/* y, a, b are (n): y = a + b */
static void add(float *y, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

static void residual_layer_forward(Layer *l, const Tensor *x, int train)
{
    const Tensor *b = net_forward(l->state, x, train);
    layer_set_count(l, x->n);
    add(l->y.data, b->data, x->data, tensor_size(x));
}

/* The skip passes dy through unchanged, so dx = body's dx + dy; the body's backward runs even when dx is NULL,
 * for its parameter gradients. */
static void residual_layer_backward(Layer *l, const Tensor *x, Tensor *dx)
{
    net_backward(l->state, x, &l->dy, dx);
    if (dx)
        add(dx->data, dx->data, l->dy.data, tensor_size(x));
}

static void residual_destroy(Layer *l)
{
    if (l->state)
        net_release(l->state);
    free(l->state);
    l->state = NULL;
    layer_free_io(l);
}

const LayerOps residual_ops = {
    .type = "residual",
    .out_shape = residual_out_shape,
    .create = residual_create,
    .resize = residual_resize,
    .forward = residual_layer_forward,
    .backward = residual_layer_backward,
    .destroy = residual_destroy,
};
