/* conv2d: 2-D convolution over NCHW input with stride, zero padding and an optional bias, lowered onto sgemm:
 * a group of G images is unfolded (im2col) into col [C*K*K, G*OH*OW], so that one sgemm computes the whole
 * group, W [O, C*K*K] . col -> [O, G*OH*OW]. G is the whole batch unless col would pass CONV_COL_MAX floats.
 * Weight [O, C, K, K] then bias [O] live in one block (PyTorch's order); their gradients in another. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../layer.h"
#include "common.h"
#include "window.h"

static int conv2d_out_shape(const LayerSpec *s, Shape in, Shape *out, long long *np, long long *nb, char *err,
                            size_t errlen)
{
    int oh, ow;
    if (window_out("conv2d", "kernel", in, s->kernel, s->stride, s->padding, &oh, &ow, err, errlen))
        return -1;
    *out = (Shape){3, s->units, oh, ow};
    *np = (long long)s->units * in.c * s->kernel * s->kernel + (s->bias ? s->units : 0);
    *nb = 0;
    return 0;
}

/* Largest unfolded group, in floats (32 MB): the whole batch for LeNet-sized layers, bounded for big ones. */
#define CONV_COL_MAX ((size_t)8 << 20)

typedef struct ConvState {
    float *w, *b;   /* (O, C, K, K), (O) or NULL; b follows w in one allocation */
    float *dw, *db; /* the same layout */
    float *col;     /* (CKK, G*P): the unfolded input of one group */
    float *dcol;    /* (CKK, G*P): its gradient */
    float *z;       /* (O, G*P): the group's output (forward) or output gradient (backward), channel-major */
    int group;      /* G: images per sgemm */
    int col_valid;  /* col holds the whole batch of the last forward (a single group), so backward reuses it */
    int C, H, W, O, K, S, P, OH, OW;
} ConvState;

/* PyTorch's nn.Conv2d defaults: W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = C*K*K (kaiming_uniform_
 * with a = sqrt(5)), then b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), each drawn in memory order from init. */
static int conv2d_create(Layer *l, Rng *init, char *err, size_t errlen)
{
    const LayerSpec *s = l->spec;
    ConvState *st;
    size_t nw, nb;
    if (s->units < 1) {
        snprintf(err, errlen, "conv2d needs units >= 1, got %d", s->units);
        return -1;
    }
    if (!(st = l->state = calloc(1, sizeof *st))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *st = (ConvState){.C = s->in.c, .H = s->in.h, .W = s->in.w, .O = s->units, .K = s->kernel, .S = s->stride,
                      .P = s->padding, .OH = s->out.h, .OW = s->out.w};
    nw = (size_t)st->O * st->C * st->K * st->K, nb = s->bias ? (size_t)st->O : 0;
    if (!(st->w = layer_alloc_floats(nw + nb, "the conv2d weights", err, errlen)) ||
        !(st->dw = layer_alloc_floats(nw + nb, "the conv2d gradients", err, errlen)))
        return -1;
    st->b = nb ? st->w + nw : NULL;
    st->db = nb ? st->dw + nw : NULL;
    float bound = 1.0f / sqrtf((float)(st->C * st->K * st->K));
    layer_init_uniform(st->w, nw, bound, init);
    if (st->b)
        layer_init_uniform(st->b, nb, bound, init);
    return 0;
}

static void free_scratch(ConvState *st)
{
    free(st->col), free(st->dcol), free(st->z);
    st->col = st->dcol = st->z = NULL;
    st->col_valid = 0;
}

static int conv2d_resize(Layer *l, int batch, char *err, size_t errlen)
{
    ConvState *st = l->state;
    size_t ckk = (size_t)st->C * st->K * st->K, p = (size_t)st->OH * st->OW, per = ckk * p;
    if (l->batch == batch && l->y.data)
        return 0;
    free_scratch(st);
    if (layer_alloc_io(l, batch, err, errlen))
        return -1;
    st->group = per * batch <= CONV_COL_MAX ? batch : (int)(CONV_COL_MAX / per > 0 ? CONV_COL_MAX / per : 1);
    if (!(st->col = layer_alloc_floats(per * st->group, "the conv2d unfolded input", err, errlen)) ||
        !(st->dcol = layer_alloc_floats(per * st->group, "the conv2d unfolded gradient", err, errlen)) ||
        !(st->z = layer_alloc_floats((size_t)st->O * p * st->group, "the conv2d output block", err, errlen))) {
        free_scratch(st);
        layer_free_io(l);
        return -1;
    }
    return 0;
}

/* Unfolds one image. x is (C, H, W); col row r = (c*K + ki)*K + kj, at col + r*ld, gets over the OH*OW output
 * positions the input value under kernel tap (ki, kj), 0 in the padding. */
static void im2col(float *col, size_t ld, const float *x, int C, int H, int W, int K, int S, int P, int OH, int OW)
{
    for (int c = 0; c < C; c++)
        for (int ki = 0; ki < K; ki++)
            for (int kj = 0; kj < K; kj++) {
                float *row = col + ((size_t)(c * K + ki) * K + kj) * ld;
                int lo, hi;
                window_range(kj, S, P, W, OW, &lo, &hi);
                for (int oh = 0; oh < OH; oh++) {
                    int ih = oh * S - P + ki;
                    float *dst = row + (size_t)oh * OW;
                    const float *src;
                    if (ih < 0 || ih >= H) {
                        memset(dst, 0, (size_t)OW * sizeof(float));
                        continue;
                    }
                    src = x + ((size_t)c * H + ih) * W;
                    for (int ow = 0; ow < lo; ow++)
                        dst[ow] = 0.0f;
                    for (int ow = lo; ow < hi; ow++)
                        dst[ow] = src[ow * S - P + kj];
                    for (int ow = hi; ow < OW; ow++)
                        dst[ow] = 0.0f;
                }
            }
}

/* The adjoint of im2col: adds every unfolded gradient back onto the input position it was read from.
 * dx is (C, H, W), accumulated; dcol as col in im2col. */
static void col2im_add(float *dx, const float *dcol, size_t ld, int C, int H, int W, int K, int S, int P, int OH,
                       int OW)
{
    for (int c = 0; c < C; c++)
        for (int ki = 0; ki < K; ki++)
            for (int kj = 0; kj < K; kj++) {
                const float *row = dcol + ((size_t)(c * K + ki) * K + kj) * ld;
                int lo, hi;
                window_range(kj, S, P, W, OW, &lo, &hi);
                for (int oh = 0; oh < OH; oh++) {
                    int ih = oh * S - P + ki;
                    const float *g = row + (size_t)oh * OW;
                    float *dst;
                    if (ih < 0 || ih >= H)
                        continue;
                    dst = dx + ((size_t)c * H + ih) * W;
                    for (int ow = lo; ow < hi; ow++)
                        dst[ow * S - P + kj] += g[ow];
                }
            }
}

/* One group of G images. x is (G, C, H, W), y is (G, O, OH, OW):
 * col = im2col(x) (CKK, G*P); z (O, G*P) = w (O, CKK) . col; y[g][o][:] = z[o][g*P:(g+1)*P] + b[o] */
static void conv2d_forward_group(ConvState *st, float *y, const float *x, int G)
{
    int ckk = st->C * st->K * st->K, p = st->OH * st->OW, gp = G * p;
    for (int g = 0; g < G; g++)
        im2col(st->col + (size_t)g * p, (size_t)gp, x + (size_t)g * st->C * st->H * st->W, st->C, st->H, st->W,
               st->K, st->S, st->P, st->OH, st->OW);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, st->O, gp, ckk, 1.0f, st->w, ckk, st->col, gp, 0.0f,
                st->z, gp);
    for (int g = 0; g < G; g++)
        for (int o = 0; o < st->O; o++) {
            const float *src = st->z + (size_t)o * gp + (size_t)g * p;
            float *dst = y + ((size_t)g * st->O + o) * p, bias = st->b ? st->b[o] : 0.0f;
            for (int i = 0; i < p; i++)
                dst[i] = src[i] + bias;
        }
}

/* One group of G images; dy is (G, O, OH, OW), x is (G, C, H, W):
 * z (O, G*P) = dy channel-major, db (O) += its row sums; dw (O, CKK) += z . col^T;
 * dcol (CKK, G*P) = w^T . z; dx (G, C, H, W) = col2im(dcol) (when not NULL) */
static void conv2d_backward_group(ConvState *st, float *dx, const float *dy, const float *x, int G, int have_col)
{
    int ckk = st->C * st->K * st->K, p = st->OH * st->OW, gp = G * p;
    size_t chw = (size_t)st->C * st->H * st->W;
    for (int o = 0; o < st->O; o++) {
        double sum = 0.0;
        for (int g = 0; g < G; g++) {
            const float *src = dy + ((size_t)g * st->O + o) * p;
            float *dst = st->z + (size_t)o * gp + (size_t)g * p;
            for (int i = 0; i < p; i++)
                dst[i] = src[i], sum += src[i];
        }
        if (st->db)
            st->db[o] += (float)sum;
    }
    if (!have_col)
        for (int g = 0; g < G; g++)
            im2col(st->col + (size_t)g * p, (size_t)gp, x + g * chw, st->C, st->H, st->W, st->K, st->S, st->P,
                   st->OH, st->OW);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, st->O, ckk, gp, 1.0f, st->z, gp, st->col, gp, 1.0f, st->dw,
                ckk);
    if (!dx)
        return;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, gp, st->O, 1.0f, st->w, ckk, st->z, gp, 0.0f, st->dcol,
                gp);
    memset(dx, 0, G * chw * sizeof(float));
    for (int g = 0; g < G; g++)
        col2im_add(dx + g * chw, st->dcol + (size_t)g * p, (size_t)gp, st->C, st->H, st->W, st->K, st->S, st->P,
                   st->OH, st->OW);
}

static void conv2d_layer_forward(Layer *l, const Tensor *x, int train)
{
    ConvState *st = l->state;
    size_t chw = (size_t)st->C * st->H * st->W, ohw = (size_t)st->O * st->OH * st->OW;
    (void)train;
    layer_set_count(l, x->n);
    for (int n0 = 0; n0 < x->n; n0 += st->group) {
        int g = x->n - n0 < st->group ? x->n - n0 : st->group;
        conv2d_forward_group(st, l->y.data + n0 * ohw, x->data + n0 * chw, g);
    }
    st->col_valid = x->n <= st->group;
}

static void conv2d_layer_backward(Layer *l, const Tensor *x, Tensor *dx)
{
    ConvState *st = l->state;
    size_t chw = (size_t)st->C * st->H * st->W, ohw = (size_t)st->O * st->OH * st->OW;
    for (int n0 = 0; n0 < x->n; n0 += st->group) {
        int g = x->n - n0 < st->group ? x->n - n0 : st->group;
        conv2d_backward_group(st, dx ? dx->data + n0 * chw : NULL, l->dy.data + n0 * ohw, x->data + n0 * chw, g,
                              st->col_valid);
    }
}

static int conv2d_params(Layer *l, Param *out)
{
    ConvState *st = l->state;
    size_t nw = (size_t)st->O * st->C * st->K * st->K;
    out[0] = (Param){"weight", st->w, st->dw, 4, {st->O, st->C, st->K, st->K}, nw, 1};
    if (!st->b)
        return 1;
    out[1] = (Param){"bias", st->b, st->db, 1, {st->O}, (size_t)st->O, 1};
    return 2;
}

static void conv2d_destroy(Layer *l)
{
    ConvState *st = l->state;
    if (st) {
        free_scratch(st);
        free(st->w), free(st->dw);
    }
    free(st);
    l->state = NULL;
    layer_free_io(l);
}

const LayerOps conv2d_ops = {
    .type = "conv2d",
    .out_shape = conv2d_out_shape,
    .create = conv2d_create,
    .resize = conv2d_resize,
    .forward = conv2d_layer_forward,
    .backward = conv2d_layer_backward,
    .params = conv2d_params,
    .destroy = conv2d_destroy,
};
