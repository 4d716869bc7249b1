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
    uint8_t *keep;   /* (batch * features): 1 where the last training forward kept the value, else 0 */
    int masked;      /* 1 when the last forward applied the mask (training with p > 0), else it was the identity */
    float p;         /* the drop probability, in single precision as the draws compare it */
    RngJump *jumps;  /* (njumps): thread t's jump to its first draw, kept from step to step (owned) */
    int njumps;
    RngJump skip[2]; /* the jumps over other ranks' draws, before and after this rank's (comm.h) */
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
    free(st->keep);
    st->keep = NULL;
    if (layer_alloc_io(l, batch, err, errlen))
        return -1;
    if (!(st->keep = malloc(tensor_size(&l->y)))) {
        snprintf(err, errlen, "out of memory for the dropout mask (%zu values)", tensor_size(&l->y));
        layer_free_io(l);
        return -1;
    }
    return 0;
}

/* The scale, 1/(1-p) (0 for p = 1: everything dropped, as PyTorch does). */
static float keep_scale(float p) { return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f; }

/* out = in * (keep ? scale : 0): the scale's bits or 0.0f's, selected without a branch (a quarter of them would
 * mispredict), so that the loop is vectorised. */
static void apply_kept(float *restrict out, const float *restrict in, const uint8_t *restrict keep, size_t n,
                       float scale)
{
    uint32_t bits;
    memcpy(&bits, &scale, sizeof bits);
    for (size_t i = 0; i < n; i++) {
        uint32_t m = bits & (0u - (uint32_t)keep[i]);
        float f;
        memcpy(&f, &m, sizeof f);
        out[i] = in[i] * f;
    }
}

/* Each value is kept with probability 1-p, one draw of r per value in order; kept values are scaled by 1/(1-p)
 * (inverted dropout), so eval needs no rescaling. The draw u = k * 2^-24 (rng_uniform, k its 24 bits) is >= p
 * exactly when k >= ceil(p * 2^24), a power-of-two scaling and so exact in float: the integer comparison keeps the
 * same values as the float one, without a conversion a value. The draws (one chain of dependent steps) fill a
 * chunk of keep, which then scales a chunk of x into y in vector registers: one loop doing both waited on both,
 * 2.6 ns a value at 2 threads against 1.2 for the draws alone. */
#define DRAW_CHUNK 2048
static void dropout_draw(uint8_t *restrict keep, float *restrict y, const float *restrict x, size_t n, float p,
                         Rng *r)
{
    uint64_t k = (uint64_t)ceilf(p * 16777216.0f);
    float scale = keep_scale(p);
    Rng s = *r; /* a local copy stays in registers: the stores below cannot alias it */
    for (size_t i0 = 0; i0 < n; i0 += DRAW_CHUNK) {
        size_t m = n - i0 < DRAW_CHUNK ? n - i0 : DRAW_CHUNK;
        for (size_t i = 0; i < m; i++)
            keep[i0 + i] = rng_next(&s) >> 40 >= k;
        apply_kept(y + i0, x + i0, keep + i0, m, scale);
    }
    *r = s;
}

/* out = in * the last forward's mask over values [lo, hi) (LayerRange), or a copy where it applied none. */
typedef struct Apply {
    float *out;
    const float *in;
    const DropoutState *st;
} Apply;

static void apply_range(void *ctx, size_t lo, size_t hi)
{
    const Apply *a = ctx;
    if (a->st->masked)
        apply_kept(a->out + lo, a->in + lo, a->st->keep + lo, hi - lo, keep_scale(a->st->p));
    else
        memcpy(a->out + lo, a->in + lo, (hi - lo) * sizeof(float));
}

static void apply(const Layer *l, float *out, const float *in, int n)
{
    Apply a = {out, in, l->state};
    layer_for_images(n, shape_size(l->spec->in), RT_MIN_PARALLEL, apply_range, &a);
}

/* Across ranks (comm.h) each rank holds images [first, first + n) of the batch: it jumps over the draws of the
 * images before its own (before = 1) or after them (0), so that every image gets the mask it would get in one
 * process and every rank's stream stays where a single process's would be. */
static void skip_draws(Layer *l, int n, int before)
{
    const Comm *c = l->comm;
    DropoutState *st = l->state;
    if (!comm_shared(c))
        return;
    size_t per = shape_size(l->spec->in), k = (size_t)(before ? c->first : c->total - c->first - n) * per;
    rng_jump_cached(l->rng, &st->skip[before], k);
}

/* One forward's draws, for the threads' tasks: the stream where they start, and where the last thread's end. */
typedef struct DrawCall {
    Layer *l;
    const Tensor *x;
    Rng start, end;
} DrawCall;

static void draw_task(void *ctx, int t, int T)
{
    DrawCall *c = ctx;
    DropoutState *st = c->l->state;
    size_t per = shape_size(c->l->spec->in);
    int lo, hi;
    Rng s = c->start;
    rt_split(c->x->n, t, T, &lo, &hi);
    rng_jump_cached(&s, &st->jumps[t], (size_t)lo * per);
    dropout_draw(st->keep + (size_t)lo * per, c->l->y.data + (size_t)lo * per, c->x->data + (size_t)lo * per,
                 (size_t)(hi - lo) * per, st->p, &s);
    if (t == T - 1)
        c->end = s;
}

/* The draws split by images across the threads as the layers around it split them: thread t jumps the stream to
 * its first image's first draw (rng.h), so every value gets the draw it gets in order on one thread, and the
 * stream ends where the last thread's share ends. Without memory for the jumps the draws run on one thread. */
static void draw_images(Layer *l, const Tensor *x)
{
    DropoutState *st = l->state;
    size_t per = shape_size(l->spec->in);
    int T = (size_t)x->n * per >= RT_MIN_PARALLEL ? rt_threads() : 1;
    if (T > st->njumps) {
        RngJump *j = realloc(st->jumps, (size_t)T * sizeof *j);
        if (j)
            memset(j + st->njumps, 0, (size_t)(T - st->njumps) * sizeof *j), st->jumps = j, st->njumps = T;
        T = st->njumps > 1 ? st->njumps : 1;
    }
    if (T == 1) {
        dropout_draw(st->keep, l->y.data, x->data, (size_t)x->n * per, st->p, l->rng);
        return;
    }
    DrawCall c = {l, x, *l->rng, *l->rng};
    rt_run(T, draw_task, &c);
    *l->rng = c.end;
}

static void dropout_layer_forward(Layer *l, const Tensor *x, int train)
{
    DropoutState *st = l->state;
    layer_set_count(l, x->n);
    st->masked = train && st->p > 0.0f;
    if (!st->masked) {
        apply(l, l->y.data, x->data, x->n);
        return;
    }
    skip_draws(l, x->n, 1);
    draw_images(l, x);
    skip_draws(l, x->n, 0);
}

static void dropout_layer_backward(Layer *l, const Tensor *x, Tensor *dx)
{
    if (dx) /* dx = dy * mask: the same product */
        apply(l, dx->data, l->dy.data, x->n);
}

static void dropout_destroy(Layer *l)
{
    DropoutState *st = l->state;
    if (st)
        free(st->keep), free(st->jumps);
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
