/* Buffers and initialisation shared by every layer kind (see common.h). */
#include "common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../threads.h"

static int alloc_like_out(Tensor *t, const Shape *s, int batch)
{
    return tensor_alloc(t, batch, s->c, s->h, s->w);
}

int layer_alloc_io(Layer *l, int batch, char *err, size_t errlen)
{
    char buf[64];
    const Shape *out = &l->spec->out;
    if (batch < 1) {
        snprintf(err, errlen, "batch size must be at least 1, got %d", batch);
        return -1;
    }
    layer_free_io(l);
    if (alloc_like_out(&l->y, out, batch) || alloc_like_out(&l->dy, out, batch)) {
        snprintf(err, errlen, "out of memory for the %s activations of a batch of %d", shape_str(*out, buf, sizeof buf),
                 batch);
        layer_free_io(l);
        return -1;
    }
    l->batch = batch;
    return 0;
}

void layer_free_io(Layer *l)
{
    tensor_free(&l->y);
    tensor_free(&l->dy);
    l->batch = 0;
}

int layer_resize_io(Layer *l, int batch, char *err, size_t errlen)
{
    return l->batch == batch && l->y.data ? 0 : layer_alloc_io(l, batch, err, errlen);
}

typedef struct ImagesCall {
    LayerRange fn;
    void *ctx;
    size_t per;
} ImagesCall;

static void images_range(void *ctx, int lo, int hi)
{
    ImagesCall *c = ctx;
    c->fn(c->ctx, (size_t)lo * c->per, (size_t)hi * c->per);
}

void layer_for_images(int n, size_t per, size_t min, LayerRange fn, void *ctx)
{
    size_t total = (size_t)n * per;
    if (total < min || rt_threads() < 2) {
        fn(ctx, 0, total);
        return;
    }
    ImagesCall c = {fn, ctx, per};
    rt_for(n, rt_threads(), images_range, &c);
}

void layer_fused_grad(Layer *l, int n0, int n1)
{
    const LayerPost *p = &l->post;
    size_t per = shape_size(l->spec->out), at = (size_t)n0 * per;
    if (p->grad && n1 > n0)
        p->grad(l->dy.data + at, p->into->data + at, p->act_dy->data + at, (size_t)(n1 - n0) * per);
}

/* One call's arrays and functions, for the threads' shares. */
typedef struct MapCall {
    LayerMap2 op;
    LayerActFn f;
    void (*act)(float *y, size_t n); /* layer_map_images_act: applied in place after op */
    float *out;
    const float *a, *b;
} MapCall;

static void map_range(void *ctx, size_t lo, size_t hi)
{
    MapCall *c = ctx;
    c->op(c->out + lo, c->a + lo, c->b ? c->b + lo : NULL, hi - lo);
    if (c->act)
        c->act(c->out + lo, hi - lo);
}

void layer_map_images_act(int n, size_t per, size_t min, LayerMap2 op, float *out, const float *a, const float *b,
                          void (*act)(float *y, size_t n))
{
    MapCall c = {.op = op, .act = act, .out = out, .a = a, .b = b};
    layer_for_images(n, per, min, map_range, &c);
}

void layer_map_images(int n, size_t per, size_t min, LayerMap2 op, float *out, const float *a, const float *b)
{
    layer_map_images_act(n, per, min, op, out, a, b, NULL);
}

static void act_range(void *ctx, size_t lo, size_t hi)
{
    MapCall *c = ctx;
    c->f(c->out + lo, c->a + lo, hi - lo);
}

void layer_act_forward(Layer *l, const Tensor *x, LayerActFn f, size_t min)
{
    MapCall c = {.f = f, .out = l->y.data, .a = x->data};
    layer_set_count(l, x->n);
    layer_for_images(x->n, shape_size(l->spec->in), min, act_range, &c);
}

void layer_act_backward(Layer *l, const Tensor *x, Tensor *dx, LayerActGrad g)
{
    if (dx)
        layer_map_images(x->n, shape_size(l->spec->in), RT_MIN_PARALLEL, g, dx->data, l->y.data, l->dy.data);
}

int layer_create_none(Layer *l, Rng *init, char *err, size_t errlen)
{
    (void)l, (void)init, (void)err, (void)errlen;
    return 0;
}

float *layer_alloc_floats(size_t n, const char *what, char *err, size_t errlen)
{
    float *p = tensor_zalloc(n);
    if (!p)
        snprintf(err, errlen, "out of memory for %s (%zu values)", what, n);
    return p;
}

void layer_init_uniform(float *w, size_t n, float bound, Rng *r)
{
    for (size_t i = 0; i < n; i++)
        w[i] = (2.0f * rng_uniform(r) - 1.0f) * bound;
}

/* ---- init= ---- */

static const char init_forms[] = "\"default\", \"xavier\", \"kaiming\", \"normal(STD)\" or \"uniform(BOUND)\"";

/* "normal(0.01)": the number between `name(` and the closing parenthesis, finite and >= 0. */
static int parse_scale(const char *text, const char *name, double *v)
{
    size_t n = strlen(name);
    char *end;
    if (strncmp(text, name, n) != 0 || text[n] != '(' || !text[n + 1] || text[n + 1] == ' ')
        return -1;
    *v = strtod(text + n + 1, &end);
    return end == text + n + 1 || strcmp(end, ")") != 0 || !isfinite(*v) || *v < 0 ? -1 : 0;
}

int layer_init_parse(const char *text, LayerInit *out, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        LayerInitKind kind;
    } plain[] = {{"default", INIT_DEFAULT}, {"xavier", INIT_XAVIER}, {"kaiming", INIT_KAIMING}};
    *out = (LayerInit){INIT_DEFAULT, 0.0};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        if (strcmp(text, plain[i].name) == 0) {
            out->kind = plain[i].kind;
            return 0;
        }
    if (parse_scale(text, "normal", &out->scale) == 0) {
        out->kind = INIT_NORMAL;
        return 0;
    }
    if (parse_scale(text, "uniform", &out->scale) == 0) {
        out->kind = INIT_UNIFORM;
        return 0;
    }
    snprintf(err, errlen, "must be %s (STD, BOUND >= 0), got \"%s\"", init_forms, text);
    return -1;
}

int layer_init_configure(const LayerSpec *s, int k, int *bad, char *err, size_t errlen)
{
    LayerInit init;
    char why[200];
    if (layer_init_parse(s->arg[k].str, &init, why, sizeof why) == 0)
        return 0;
    snprintf(err, errlen, "argument 'init' of %s %s", layer_ops[s->kind]->type, why);
    *bad = k;
    return -1;
}

/* N(0, std^2) by Box-Muller in double: u1 in (0, 1] from 53 random bits, so the logarithm is finite. */
static void init_normal(float *w, size_t n, double std, Rng *r)
{
    for (size_t i = 0; i < n; i++) {
        double u1 = 1.0 - (double)(rng_next(r) >> 11) * 0x1p-53, u2 = (double)(rng_next(r) >> 11) * 0x1p-53;
        w[i] = (float)(std * sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
    }
}

void layer_init_params(const LayerInit *init, float *w, size_t nw, float *b, size_t nb, int fan_in, int fan_out,
                       Rng *r)
{
    if (init->kind == INIT_DEFAULT) { /* torch's kaiming_uniform_(a=sqrt(5)) and its bias rule: one bound */
        float bound = 1.0f / sqrtf((float)fan_in);
        layer_init_uniform(w, nw, bound, r);
        if (b)
            layer_init_uniform(b, nb, bound, r);
        return;
    }
    switch (init->kind) {
    case INIT_XAVIER: layer_init_uniform(w, nw, (float)sqrt(6.0 / ((double)fan_in + fan_out)), r); break;
    case INIT_KAIMING: init_normal(w, nw, sqrt(2.0 / fan_in), r); break;
    case INIT_NORMAL: init_normal(w, nw, init->scale, r); break;
    default: layer_init_uniform(w, nw, (float)init->scale, r); break;
    }
    if (b) /* the schemes of a paper's experiment start from zero biases */
        memset(b, 0, nb * sizeof *b);
}

void layer_post_normalise(const LayerPost *post, float *y, const float *x, int n, int C, int HW)
{
    const float *mu = post->mean, *r = post->rstd, *g = post->gamma, *b = post->beta;
    if (HW == 1) { /* across features, so that it vectorises */
        for (int i = 0; i < n; i++)
            for (int c = 0; c < C; c++)
                y[(size_t)i * C + c] = layer_post_norm(x[(size_t)i * C + c], mu[c], r[c], g[c], b[c]);
        return;
    }
    for (int i = 0; i < n; i++)
        for (int c = 0; c < C; c++) {
            size_t off = ((size_t)i * C + c) * HW;
            float mc = mu[c], rc = r[c], gc = g[c], bc = b[c];
            for (int k = 0; k < HW; k++)
                y[off + k] = layer_post_norm(x[off + k], mc, rc, gc, bc);
        }
}

void layer_post_apply(const LayerPost *post, float *y, int n, int C, int HW)
{
    if (post->mean)
        layer_post_normalise(post, y, y, n, C, HW);
    if (post->act)
        post->act(y, (size_t)n * C * HW);
}

int layer_fold_rows(const Param *wp, const float *b, const double *scale, const double *shift, Param *out)
{
    int rows = wp->dims[0];
    size_t len = wp->size / (size_t)rows;
    float *w2 = malloc(wp->size * sizeof *w2), *b2 = malloc((size_t)rows * sizeof *b2);
    if (!w2 || !b2) {
        free(w2), free(b2);
        return -1;
    }
    for (int o = 0; o < rows; o++) {
        for (size_t k = 0; k < len; k++)
            w2[(size_t)o * len + k] = (float)((double)wp->value[(size_t)o * len + k] * scale[o]);
        b2[o] = (float)((b ? (double)b[o] : 0.0) * scale[o] + shift[o]);
    }
    out[0] = *wp;
    out[0].value = w2, out[0].grad = NULL;
    out[1] = (Param){.name = "bias", .value = b2, .rank = 1, .dims = {rows}, .size = (size_t)rows, .trainable = 1};
    return 2;
}
