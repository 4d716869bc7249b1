/* residual: y = body(x) + x, the body being a sub-network (LayerSpec.body) that must end with the shape it
 * starts with. Its state is the body's Net, which it hands to the net's walks through LayerOps.body. */
#include <stdio.h>
#include <stdlib.h>

#include "../layer.h"
#include "../threads.h"
#include "../net.h"
#include "common.h"

/* The body's own layers carry their counts; the addition has none. */
static int residual_out_shape(const LayerSpec *s, Shape in, Shape *out, long long *np, long long *nb, char *err,
                              size_t errlen)
{
    char a[64], b[64];
    Shape body_out;
    *out = in;
    *np = *nb = 0;
    if (s->nbody < 0 || (s->nbody > 0 && !s->body)) {
        snprintf(err, errlen, "its body has no layers array");
        return -1;
    }
    if (net_check_specs(s->body, s->nbody, in, &body_out, err, errlen))
        return -1;
    if (body_out.rank != in.rank || body_out.c != in.c || body_out.h != in.h || body_out.w != in.w) {
        snprintf(err, errlen, "its body ends with %s, but a residual body must end with its input shape %s",
                 shape_str(body_out, a, sizeof a), shape_str(in, b, sizeof b));
        return -1;
    }
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

/* y = a + b value by value (LayerMap2), over images split across the threads. */
static void add_values(float *y, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

/* y = a + b over n images, then act(y) a range at a time while it is in cache (act NULL: nothing). */
static void add(float *y, const float *a, const float *b, const Layer *l, int n, void (*act)(float *y, size_t n))
{
    layer_map_images_act(n, shape_size(l->spec->in), RT_MIN_PARALLEL, add_values, y, a, b, act);
}

/* Under net_infer (no backward follows) the body is fused as the top network is; its outputs are not kept. With
 * training fusion (layer.h: the relu after a ResNet unit) the addition writes the activation's output, activated a
 * range at a time while it is in cache: one pass over the unit's output instead of two. */
static void residual_layer_forward(Layer *l, const Tensor *x, int train)
{
    const Tensor *b = !train && l->inferring ? net_infer(l->state, x) : net_forward(l->state, x, train);
    layer_set_count(l, x->n);
    add(layer_out(l), b->data, x->data, l, x->n, l->post.act);
}

/* Images [lo, hi) / per of dy from the fused activation's (layer_fused_grad), per values an image. */
static void grad_range(void *ctx, size_t lo, size_t hi)
{
    Layer *l = ctx;
    size_t per = shape_size(l->spec->out);
    layer_fused_grad(l, (int)(lo / per), (int)(hi / per));
}

/* The skip passes dy through unchanged, so dx = body's dx + dy; the body's backward runs even when dx is NULL,
 * for its parameter gradients. With the activation after it fused, dy comes first from the activation's. */
static void residual_layer_backward(Layer *l, const Tensor *x, Tensor *dx)
{
    if (l->post.grad)
        layer_for_images(x->n, shape_size(l->spec->out), RT_MIN_PARALLEL, grad_range, l);
    net_backward(l->state, x, &l->dy, dx);
    if (dx)
        add(dx->data, dx->data, l->dy.data, l, x->n, NULL);
}

static Net *residual_body(Layer *l) { return l->state; }

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
    .body = residual_body,
    .takes_train_post = 1,
};
