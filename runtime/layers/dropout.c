/* dropout: inverted dropout (kept values scaled by 1/(1-p) in training); identity in eval mode. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../layer.h"
#include "common.h"

/* dropout(p) */
enum { P };
static const ArgSpec dropout_args[] = {ARG_NUM("p", 1, 0, 0, 1, 1, 0)};

static int dropout_out_shape(const LayerSpec *s, Shape in, Shape *out, long long *np, long long *nb, char *err,
                             size_t errlen)
{
    (void)s, (void)err, (void)errlen;
    *out = in;
    *np = *nb = 0;
    return 0;
}

typedef struct DropoutState {
    float *mask; /* (batch * features): 0 or 1/(1-p), drawn by the last training forward */
    int masked;  /* 1 when the last forward applied the mask (training with p > 0), else it was the identity */
    float p;     /* the drop probability, in single precision as the draws compare it */
} DropoutState;

static int dropout_create(Layer *l, Rng *init, char *err, size_t errlen)
{
    (void)init;
    float p = (float)spec_num(l->spec, P);
    DropoutState *st;
    if (!(p >= 0.0f && p <= 1.0f)) {
        snprintf(err, errlen, "dropout probability must be in [0, 1], got %g", (double)p);
        return -1;
    }
    if (!(st = l->state = calloc(1, sizeof(DropoutState)))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    st->p = p;
    return 0;
}

static int dropout_resize(Layer *l, int batch, char *err, size_t errlen)
{
    DropoutState *st = l->state;
    if (l->batch == batch && l->y.data)
        return 0;
    tensor_zfree(st->mask);
    st->mask = NULL;
    if (layer_alloc_io(l, batch, err, errlen))
        return -1;
    if (!(st->mask = layer_alloc_floats(tensor_size(&l->y), "the dropout mask", err, errlen))) {
        layer_free_io(l);
        return -1;
    }
    return 0;
}

/* Each value is kept with probability 1-p, one draw of r per value in order; kept values are scaled by 1/(1-p)
 * (inverted dropout), so eval needs no rescaling. p = 1 drops everything, as PyTorch does. mask is (n) */
static void dropout_draw(float *mask, size_t n, float p, Rng *r)
{
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    for (size_t i = 0; i < n; i++)
        mask[i] = rng_uniform(r) >= p ? scale : 0.0f;
}

/* y, x, mask are (n) */
static void dropout_forward(float *y, const float *x, const float *mask, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * mask[i];
}

/* Across ranks (comm.h) each rank holds images [first, first + n) of the batch: it passes over the draws of the
 * images before its own (before = 1) or after them (0), so that every image gets the mask it would get in one
 * process and every rank's stream stays where a single process's would be. */
static void skip_draws(Layer *l, int n, int before)
{
    const Comm *c = l->comm;
    if (!comm_shared(c))
        return;
    size_t per = shape_size(l->spec->in), k = (size_t)(before ? c->first : c->total - c->first - n) * per;
    for (size_t i = 0; i < k; i++)
        rng_next(l->rng);
}

static void dropout_layer_forward(Layer *l, const Tensor *x, int train)
{
    DropoutState *st = l->state;
    size_t n = tensor_size(x);
    layer_set_count(l, x->n);
    st->masked = train && st->p > 0.0f;
    if (!st->masked) {
        memcpy(l->y.data, x->data, n * sizeof(float));
        return;
    }
    skip_draws(l, x->n, 1);
    dropout_draw(st->mask, n, st->p, l->rng);
    skip_draws(l, x->n, 0);
    dropout_forward(l->y.data, x->data, st->mask, n);
}

static void dropout_layer_backward(Layer *l, const Tensor *x, Tensor *dx)
{
    DropoutState *st = l->state;
    size_t n = tensor_size(x);
    if (!dx)
        return;
    if (st->masked)
        dropout_forward(dx->data, l->dy.data, st->mask, n); /* dx = dy * mask: the same product */
    else
        memcpy(dx->data, l->dy.data, n * sizeof(float));
}

static void dropout_destroy(Layer *l)
{
    DropoutState *st = l->state;
    if (st)
        tensor_zfree(st->mask);
    free(st);
    l->state = NULL;
    layer_free_io(l);
}

const LayerOps dropout_ops = {
    .type = "dropout",
    .args = dropout_args,
    .nargs = sizeof dropout_args / sizeof dropout_args[0],
    .out_shape = dropout_out_shape,
    .create = dropout_create,
    .resize = dropout_resize,
    .forward = dropout_layer_forward,
    .backward = dropout_layer_backward,
    .destroy = dropout_destroy,
};
