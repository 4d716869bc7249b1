/* dropout: inverted dropout (kept values scaled by 1/(1-p) in training); identity in eval mode. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../layer.h"
#include "../threads.h"
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
 * (inverted dropout), so eval needs no rescaling. p = 1 drops everything, as PyTorch does. The draw u = k * 2^-24
 * (rng_uniform, k its 24 bits) is >= p exactly when k >= ceil(p * 2^24), a power-of-two scaling and so exact in
 * float: the integer comparison keeps the same values as the float one, without a conversion a value. mask is
 * (n): 0 or the scale, and y = x * mask as it is drawn. */
static void dropout_draw(float *restrict mask, float *restrict y, const float *restrict x, size_t n, float p, Rng *r)
{
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    uint64_t keep = (uint64_t)ceilf(p * 16777216.0f);
    uint32_t bits;
    memcpy(&bits, &scale, sizeof bits);
    Rng s = *r; /* a local copy stays in registers: the stores below cannot alias it */
    for (size_t i = 0; i < n; i++) {
        /* the scale's bits or 0.0f's, selected without a branch (a quarter of them would mispredict) */
        uint32_t m = bits & (0u - (uint32_t)(rng_next(&s) >> 40 >= keep));
        memcpy(&mask[i], &m, sizeof m);
        y[i] = x[i] * mask[i];
    }
    *r = s;
}

/* out = in * mask (LayerMap2), or a copy of in where the last forward applied no mask (mask NULL). */
static void apply_values(float *out, const float *in, const float *mask, size_t n)
{
    if (!mask) {
        memcpy(out, in, n * sizeof(float));
        return;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = in[i] * mask[i];
}

static void apply(const Layer *l, float *out, const float *in, const float *mask, int n)
{
    layer_map_images(n, shape_size(l->spec->in), RT_MIN_PARALLEL, apply_values, out, in, mask);
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
        apply(l, l->y.data, x->data, NULL, x->n);
        return;
    }
    skip_draws(l, x->n, 1);
    dropout_draw(st->mask, l->y.data, x->data, n, st->p, l->rng);
    skip_draws(l, x->n, 0);
}

static void dropout_layer_backward(Layer *l, const Tensor *x, Tensor *dx)
{
    DropoutState *st = l->state;
    if (dx) /* dx = dy * mask: the same product */
        apply(l, dx->data, l->dy.data, st->masked ? st->mask : NULL, x->n);
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
