/* conv2d: 2-D convolution over NCHW input with stride, zero padding and an optional bias.
 * Each image is unfolded (conv_kernels.h) so that every kernel tap is one contiguous row over the output
 * positions, and the products run on register-blocked kernels, one image at a time. The batch is split across
 * the runtime's threads (threads.h): forward by images; backward by fixed chunks of CONV_CHUNK images, each
 * chunk summing its own weight-gradient partial, the partials then added in chunk order, so the gradients are
 * the same bit for bit whatever the thread count. An image is unfolded where it is used -- forward into its
 * thread's slot, backward again with its chunk -- rather than kept from forward to backward: the unfolded batch
 * is K*K times the input (58 MB for resnet_small's first convolutions), and writing it to memory and reading it
 * back cost more than unfolding twice from the cache.
 * Weight [O, C, K, K] then bias [O] live in one block (PyTorch's order); their gradients in another. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../layer.h"
#include "../threads.h"
#include "common.h"
#include "conv_kernels.h"
#include "window.h"

/* conv2d(out, kernel, stride=1, padding=0, bias=true, init="default"): the arguments in positional order. */
enum { OUT, KERNEL, STRIDE, PADDING, BIAS, INIT };
static const ArgSpec conv2d_args[] = {
    ARG_INT("out", 1, 1, 65536, 0), ARG_INT("kernel", 1, 1, 1024, 0), ARG_INT("stride", 0, 1, 1024, 1),
    ARG_INT("padding", 0, 0, 1024, 0), ARG_BOOL("bias", 1), ARG_STR("init", "default", NULL),
};

/* init's forms take a number ("normal(0.01)"), which a list of choices cannot say. */
static int conv2d_configure(LayerSpec *s, int *bad, char *err, size_t errlen)
{
    return layer_init_configure(s, INIT, bad, err, errlen);
}

static int conv2d_out_shape(const LayerSpec *s, Shape in, Shape *out, long long *np, long long *nb, char *err,
                            size_t errlen)
{
    int oh, ow, units = spec_int(s, OUT), k = spec_int(s, KERNEL);
    if (window_out("conv2d", "kernel", in, k, spec_int(s, STRIDE), spec_int(s, PADDING), &oh, &ow, err, errlen))
        return -1;
    *out = (Shape){3, units, oh, ow};
    *np = (long long)units * in.c * k * k + (spec_int(s, BIAS) ? units : 0);
    *nb = 0;
    return 0;
}

/* Images per weight-gradient chunk: enough work per chunk to keep the kernels' accumulators busy, and 8 chunks
 * at batch 128 so that 1, 2, 4 or 8 threads get equal shares. */
#define CONV_CHUNK 16

typedef struct ConvState {
    float *w, *b;   /* (O, C, K, K), (O) or NULL; b follows w in one allocation */
    float *dw, *db; /* the same layout */
    ConvGeom g;
    int *off;       /* (CKK): where each tap's row starts in an unfolded image */
    float *u;       /* (slots, CONV_CHUNK, usize) + CONVK_SLACK: each thread's unfolded images (forward: one) */
    float *du;      /* (chunks, usize): each chunk's scratch for one image's unfolded input gradient */
    float *part;    /* (chunks, O*CKK + O): each chunk's weight and bias gradient */
    float *wscr;    /* (chunks, convk_wgrad_scratch): each chunk's scratch for the weight gradient */
    int chunks;
    int slots;      /* threads u has room for: a larger team is cut to this size (results do not depend on it) */
} ConvState;

/* init="default" is PyTorch's nn.Conv2d: W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = C*K*K (kaiming_uniform_
 * with a = sqrt(5)), then b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), each drawn in memory order from init; the other
 * schemes are layer_init_params's (fan_out = O*K*K). */
static int conv2d_create(Layer *l, Rng *init, char *err, size_t errlen)
{
    const LayerSpec *s = l->spec;
    ConvState *st;
    LayerInit how;
    size_t nw, nb;
    if (layer_init_parse(s->arg[INIT].str, &how, err, errlen) < 0) /* configure lets no such spec through */
        return -1;
    if (spec_int(s, OUT) < 1) {
        snprintf(err, errlen, "conv2d needs out >= 1, got %d", spec_int(s, OUT));
        return -1;
    }
    if (!(st = l->state = calloc(1, sizeof *st))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    st->g = (ConvGeom){.C = s->in.c, .H = s->in.h, .W = s->in.w, .O = spec_int(s, OUT), .K = spec_int(s, KERNEL),
                       .S = spec_int(s, STRIDE), .P = spec_int(s, PADDING), .OH = s->out.h, .OW = s->out.w};
    convk_geom(&st->g);
    nw = (size_t)st->g.O * st->g.CKK, nb = spec_int(s, BIAS) ? (size_t)st->g.O : 0;
    if (!(st->w = layer_alloc_floats(nw + nb, "the conv2d weights", err, errlen)) ||
        !(st->dw = layer_alloc_floats(nw + nb, "the conv2d gradients", err, errlen)))
        return -1;
    if (!(st->off = malloc((size_t)st->g.CKK * sizeof *st->off))) {
        snprintf(err, errlen, "out of memory for the conv2d tap offsets");
        return -1;
    }
    convk_offsets(&st->g, st->off);
    st->b = nb ? st->w + nw : NULL;
    st->db = nb ? st->dw + nw : NULL;
    layer_init_params(&how, st->w, nw, st->b, nb, st->g.CKK, st->g.O * st->g.K * st->g.K, init);
    return 0;
}

static void free_scratch(ConvState *st)
{
    tensor_zfree(st->u), tensor_zfree(st->du), tensor_zfree(st->part), tensor_zfree(st->wscr);
    st->u = st->du = st->part = st->wscr = NULL;
}

static int conv2d_resize(Layer *l, int batch, char *err, size_t errlen)
{
    ConvState *st = l->state;
    const ConvGeom *g = &st->g;
    if (l->batch == batch && l->y.data)
        return 0;
    free_scratch(st);
    if (layer_alloc_io(l, batch, err, errlen))
        return -1;
    st->chunks = (batch + CONV_CHUNK - 1) / CONV_CHUNK;
    st->slots = rt_threads() > rt_usable_cores() ? rt_threads() : rt_usable_cores();
    st->slots = st->slots < st->chunks ? st->slots : st->chunks; /* a thread beyond the chunks has no work */
    size_t images = (size_t)st->slots * CONV_CHUNK;
    if (!(st->u = layer_alloc_floats(g->usize * images + CONVK_SLACK, "the conv2d unfolded input", err, errlen)) ||
        !(st->du = layer_alloc_floats(g->usize * st->chunks, "the conv2d unfolded gradient", err, errlen)) ||
        !(st->part = layer_alloc_floats(((size_t)g->O * g->CKK + g->O) * st->chunks, "the conv2d gradient partials",
                                        err, errlen)) ||
        !(st->wscr = layer_alloc_floats(convk_wgrad_scratch(g) * st->chunks, "the conv2d gradient scratch", err,
                                        errlen))) {
        free_scratch(st);
        layer_free_io(l);
        return -1;
    }
    return 0;
}

/* The team for a layer call: the runtime's, cut to the threads u has room for. */
static int team(const ConvState *st)
{
    int T = rt_threads();
    return T < st->slots ? T : st->slots;
}

/* x is (N, C, H, W), y is (N, O, OH, OW); each thread unfolds and convolves its share of the images, one at a time
 * in its slot of u. With training fusion (layer.h) an image's output goes to the activation's y instead and is
 * activated there, while it is in L1. */
static void forward_task(void *ctx, int t, int T)
{
    const LayerCall *c = ctx;
    Layer *l = c->l;
    ConvState *st = l->state;
    const ConvGeom *g = &st->g;
    size_t chw = (size_t)g->C * g->H * g->W, ohw = (size_t)g->O * g->NP;
    float *u = st->u + (size_t)t * CONV_CHUNK * g->usize, *y = layer_out(l);
    int lo, hi;
    rt_split(c->x->n, t, T, &lo, &hi);
    for (int n = lo; n < hi; n++) {
        convk_unfold(g, u, c->x->data + n * chw);
        convk_forward(g, y + n * ohw, u, st->off, st->w, st->b);
        if (!c->train) /* the batchnorm and activation after it, while this image's output is in L1 */
            layer_post_apply(&l->post, y + n * ohw, 1, g->O, g->NP);
        else if (l->post.act)
            l->post.act(y + n * ohw, ohw);
    }
}

static void conv2d_layer_forward(Layer *l, const Tensor *x, int train)
{
    LayerCall c = {l, x, NULL, train};
    layer_set_count(l, x->n);
    rt_run(team(l->state), forward_task, &c);
}

/* One chunk of G images from n0, unfolded from x into u: its weight and bias gradient into part (overwritten), and
 * dx when not NULL. */
static void backward_chunk(ConvState *st, int c, float *u, float *dx, const float *x, const float *dy, int n0, int G)
{
    const ConvGeom *g = &st->g;
    size_t chw = (size_t)g->C * g->H * g->W, ohw = (size_t)g->O * g->NP, nw = (size_t)g->O * g->CKK;
    float *part = st->part + c * (nw + g->O), *du = st->du + c * g->usize;
    memset(part, 0, (nw + g->O) * sizeof(float));
    for (int i = 0; i < G; i++)
        convk_unfold(g, u + i * g->usize, x + (n0 + i) * chw);
    convk_weight_grad(g, part, st->db ? part + nw : NULL, dy + n0 * ohw, u, g->usize, st->off, G,
                      st->wscr + c * convk_wgrad_scratch(g));
    if (!dx)
        return;
    for (int n = n0; n < n0 + G; n++) {
        memset(du, 0, g->usize * sizeof(float));
        convk_input_grad(g, du, dy + n * ohw, st->off, st->w);
        convk_fold(g, dx + n * chw, du);
    }
}

/* dy is (N, O, OH, OW). Each thread takes its chunks; then, once all are done, its share of the gradient's
 * values, into which it adds the chunks' partials in chunk order (dw then db, contiguous in part). */
static void backward_task(void *ctx, int t, int T)
{
    const LayerCall *c = ctx;
    Layer *l = c->l;
    ConvState *st = l->state;
    const ConvGeom *g = &st->g;
    size_t nw = (size_t)g->O * g->CKK, np = nw + g->O, lo, hi;
    int N = c->x->n, chunks = (N + CONV_CHUNK - 1) / CONV_CHUNK, c0, c1;
    float *u = st->u + (size_t)t * CONV_CHUNK * g->usize;
    rt_split(chunks, t, T, &c0, &c1);
    for (int k = c0; k < c1; k++) {
        int n0 = k * CONV_CHUNK, G = N - n0 < CONV_CHUNK ? N - n0 : CONV_CHUNK;
        layer_fused_grad(l, n0, n0 + G); /* the activation after it, fused: its backward gives this chunk's dy */
        backward_chunk(st, k, u, c->dx ? c->dx->data : NULL, c->x->data, l->dy.data, n0, G);
    }
    rt_barrier();
    rt_share(st->db ? np : nw, 16, &lo, &hi);
    for (int k = 0; k < chunks; k++) {
        const float *part = st->part + k * np;
        for (size_t i = lo; i < hi && i < nw; i++)
            st->dw[i] += part[i];
        for (size_t i = lo > nw ? lo : nw; i < hi; i++)
            st->db[i - nw] += part[i];
    }
}

static void conv2d_layer_backward(Layer *l, const Tensor *x, Tensor *dx)
{
    LayerCall c = {l, x, dx, 1};
    rt_run(team(l->state), backward_task, &c);
}

static int conv2d_params(Layer *l, Param *out)
{
    ConvState *st = l->state;
    const ConvGeom *g = &st->g;
    out[0] = (Param){"weight", st->w, st->dw, 4, {g->O, g->C, g->K, g->K}, (size_t)g->O * g->CKK, 1};
    if (!st->b)
        return 1;
    out[1] = (Param){"bias", st->b, st->db, 1, {g->O}, (size_t)g->O, 1};
    return 2;
}

/* A batchnorm after it, folded (layer.h): the folded layer always has a bias. */
static int conv2d_fold_affine(Layer *l, const double *scale, const double *shift, LayerSpec *folded, Param *out)
{
    Param p[LAYER_MAX_PARAMS];
    int np = conv2d_params(l, p);
    *folded = *l->spec;
    folded->arg[BIAS].num = 1;
    folded->given |= 1u << BIAS;
    return layer_fold_rows(&p[0], np > 1 ? p[1].value : NULL, scale, shift, out);
}

static void conv2d_destroy(Layer *l)
{
    ConvState *st = l->state;
    if (st) {
        free_scratch(st);
        tensor_zfree(st->w), tensor_zfree(st->dw), free(st->off);
    }
    free(st);
    l->state = NULL;
    layer_free_io(l);
}

const LayerOps conv2d_ops = {
    .type = "conv2d",
    .args = conv2d_args,
    .nargs = sizeof conv2d_args / sizeof conv2d_args[0],
    .configure = conv2d_configure,
    .out_shape = conv2d_out_shape,
    .create = conv2d_create,
    .resize = conv2d_resize,
    .forward = conv2d_layer_forward,
    .backward = conv2d_layer_backward,
    .params = conv2d_params,
    .destroy = conv2d_destroy,
    .takes_post = 1,
    .takes_train_post = 1,
    .fold_affine = conv2d_fold_affine,
};
