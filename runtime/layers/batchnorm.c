/* batchnorm: batch normalization (Ioffe & Szegedy, 2015), per feature on N x C input and per channel
 * over (N, H, W) on NCHW input. moving = momentum*moving + (1-momentum)*batch, with the BIASED batch
 * variance in the moving average too (PyTorch uses the unbiased one there; see docs/runtime.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../layer.h"
#include "common.h"

/* Layer-private state. The [C] vectors live in one block (vec), the per-batch xhat in its own tensor. */
typedef struct BnLayer {
    int C, HW;
    float *vec;                    /* 8*C floats, owned; the pointers below point into it */
    float *gamma, *beta;           /* trainable scale and shift */
    float *dgamma, *dbeta;         /* their gradients (accumulated) */
    float *moving_mean, *moving_var;
    float *mean, *rstd;            /* statistics the last forward normalised with (batch or moving) */
    Tensor xhat;                   /* (N,C,HW) normalised input saved for backward */
    int train;                     /* mode of the last forward: selects the backward formula */
} BnLayer;

static int batchnorm_out_shape(const LayerSpec *s, Shape in, Shape *out, long long *np, long long *nb, char *err,
                               size_t errlen)
{
    (void)s, (void)err, (void)errlen;
    *out = in;
    *np = 2LL * in.c; /* gamma, beta */
    *nb = 2LL * in.c; /* moving_mean, moving_var */
    return 0;
}

/* ---- kernels ---- */

/* x is (N,C,HW); mean, var are (C): per-channel batch mean and biased variance.
 * Two passes with double sums, so float32 results stay within an ulp or two of an exact reduction. */
static void bn_batch_stats(float *mean, float *var, const float *x, int N, int C, int HW)
{
    double m = (double)N * HW;
    for (int c = 0; c < C; c++) {
        double s = 0.0, ss = 0.0;
        for (int n = 0; n < N; n++) {
            const float *xp = x + ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++)
                s += xp[i];
        }
        double mu = s / m;
        for (int n = 0; n < N; n++) {
            const float *xp = x + ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) {
                double d = xp[i] - mu;
                ss += d * d;
            }
        }
        mean[c] = (float)mu;
        var[c] = (float)(ss / m);
    }
}

/* x, out, xhat are (N,C,HW); mean, rstd, gamma, beta are (C).
 * xhat = (x - mean) * rstd;  out = gamma * xhat + beta. */
static void bn_forward(float *out, float *xhat, const float *x, const float *mean, const float *rstd,
                       const float *gamma, const float *beta, int N, int C, int HW)
{
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            size_t off = ((size_t)n * C + c) * HW;
            float mu = mean[c], r = rstd[c], g = gamma[c], b = beta[c];
            for (int i = 0; i < HW; i++) {
                float h = (x[off + i] - mu) * r;
                xhat[off + i] = h;
                out[off + i] = g * h + b;
            }
        }
}

/* dout, xhat, dx are (N,C,HW); gamma, rstd, dgamma, dbeta are (C). With m = N*HW values per channel:
 * dgamma += sum(dout*xhat), dbeta += sum(dout), and dx (overwritten, when not NULL) is, in training,
 * the gradient through the batch statistics: dx = gamma*rstd/m * (m*dout - sum(dout) - xhat*sum(dout*xhat));
 * in eval the statistics are constants: dx = gamma*rstd*dout. */
static void bn_backward(float *dx, float *dgamma, float *dbeta, const float *dout, const float *xhat,
                        const float *gamma, const float *rstd, int N, int C, int HW, int train)
{
    double m = (double)N * HW;
    for (int c = 0; c < C; c++) {
        double sdy = 0.0, sdyx = 0.0;
        for (int n = 0; n < N; n++) {
            size_t off = ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) {
                sdy += dout[off + i];
                sdyx += (double)dout[off + i] * xhat[off + i];
            }
        }
        dgamma[c] += (float)sdyx;
        dbeta[c] += (float)sdy;
        if (!dx)
            continue;
        double k = (double)gamma[c] * rstd[c];
        /* dx = a*dout + b*xhat + d, with the per-channel coefficients folded in double */
        float a = (float)k, b = train ? (float)(-k * sdyx / m) : 0.0f, d = train ? (float)(-k * sdy / m) : 0.0f;
        for (int n = 0; n < N; n++) {
            size_t off = ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++)
                dx[off + i] = a * dout[off + i] + b * xhat[off + i] + d;
        }
    }
}

/* moving = momentum*moving + (1-momentum)*batch, for the mean and the biased variance, both (C). */
static void bn_update_moving(float *moving_mean, float *moving_var, const float *mean, const float *var,
                             float momentum, int C)
{
    for (int c = 0; c < C; c++) {
        moving_mean[c] = momentum * moving_mean[c] + (1.0f - momentum) * mean[c];
        moving_var[c] = momentum * moving_var[c] + (1.0f - momentum) * var[c];
    }
}

/* ---- the layer ---- */

static int batchnorm_create(Layer *l, Rng *init, char *err, size_t errlen)
{
    (void)init; /* deterministic init: gamma 1, beta 0, moving mean 0, moving var 1 */
    Shape in = l->spec->in;
    BnLayer *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "out of memory for a batchnorm layer");
        return -1;
    }
    l->state = b;
    b->C = in.c;
    b->HW = in.rank == 3 ? in.h * in.w : 1;
    size_t C = (size_t)b->C;
    if (!(b->vec = layer_alloc_floats(8 * C, "the batchnorm parameters and statistics", err, errlen)))
        return -1;
    b->gamma = b->vec, b->beta = b->vec + C, b->dgamma = b->vec + 2 * C, b->dbeta = b->vec + 3 * C;
    b->moving_mean = b->vec + 4 * C, b->moving_var = b->vec + 5 * C;
    b->mean = b->vec + 6 * C, b->rstd = b->vec + 7 * C;
    for (size_t c = 0; c < C; c++)
        b->gamma[c] = 1.0f, b->moving_var[c] = 1.0f;
    return 0;
}

static int batchnorm_resize(Layer *l, int batch, char *err, size_t errlen)
{
    BnLayer *b = l->state;
    const Shape *s = &l->spec->out;
    if (l->batch == batch)
        return 0;
    tensor_free(&b->xhat);
    if (layer_alloc_io(l, batch, err, errlen))
        return -1;
    if (tensor_alloc(&b->xhat, batch, s->c, s->h, s->w)) {
        snprintf(err, errlen, "out of memory for the normalised input of a batch of %d", batch);
        layer_free_io(l);
        return -1;
    }
    return 0;
}

/* Training normalises with the batch statistics (rstd = 1/sqrt(var + eps)) and updates the moving ones;
 * eval normalises with the moving statistics. rstd is computed in double from the float variance. */
static void batchnorm_forward(Layer *l, const Tensor *x, int train)
{
    BnLayer *b = l->state;
    int N = x->n;
    float *var = b->rstd; /* the batch variance passes through rstd's storage */
    if (train) {
        bn_batch_stats(b->mean, var, x->data, N, b->C, b->HW);
        bn_update_moving(b->moving_mean, b->moving_var, b->mean, var, l->spec->momentum, b->C);
    } else {
        for (int c = 0; c < b->C; c++)
            b->mean[c] = b->moving_mean[c], var[c] = b->moving_var[c];
    }
    for (int c = 0; c < b->C; c++)
        b->rstd[c] = (float)(1.0 / sqrt((double)var[c] + (double)l->spec->eps));
    b->train = train;
    layer_set_count(l, N); /* a last, smaller batch runs in the buffers of the full one */
    bn_forward(l->y.data, b->xhat.data, x->data, b->mean, b->rstd, b->gamma, b->beta, N, b->C, b->HW);
}

static void batchnorm_backward(Layer *l, const Tensor *x, Tensor *dx)
{
    BnLayer *b = l->state;
    bn_backward(dx ? dx->data : NULL, b->dgamma, b->dbeta, l->dy.data, b->xhat.data, b->gamma, b->rstd, x->n,
                b->C, b->HW, b->train);
}

static Param vec_param(const char *name, float *value, float *grad, int C)
{
    return (Param){.name = name, .value = value, .grad = grad, .rank = 1, .dims = {C}, .size = (size_t)C,
                   .trainable = grad != NULL};
}

static int batchnorm_params(Layer *l, Param *out)
{
    BnLayer *b = l->state;
    out[0] = vec_param("gamma", b->gamma, b->dgamma, b->C);
    out[1] = vec_param("beta", b->beta, b->dbeta, b->C);
    out[2] = vec_param("moving_mean", b->moving_mean, NULL, b->C);
    out[3] = vec_param("moving_var", b->moving_var, NULL, b->C);
    return 4;
}

static void batchnorm_destroy(Layer *l)
{
    BnLayer *b = l->state;
    layer_free_io(l);
    if (b) {
        tensor_free(&b->xhat);
        free(b->vec);
        free(b);
    }
    l->state = NULL;
}

const LayerOps batchnorm_ops = {
    .type = "batchnorm",
    .out_shape = batchnorm_out_shape,
    .create = batchnorm_create,
    .resize = batchnorm_resize,
    .forward = batchnorm_forward,
    .backward = batchnorm_backward,
    .params = batchnorm_params,
    .destroy = batchnorm_destroy,
};
