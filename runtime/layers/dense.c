/* dense: fully connected layer y = x W^T + b over a flat N x in input, on sgemm.
 * W is [out, in] (PyTorch's order); parameters live in one block [W | b], their gradients in another.
 * The products are split across the runtime's threads (threads.h) in fixed blocks, each a single-threaded sgemm:
 * forward and dx by rows of the batch, dw and db by output units, so no gradient needs a reduction. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../layer.h"
#include "../threads.h"
#include "common.h"

static int dense_out_shape(const LayerSpec *s, Shape in, Shape *out, long long *np, long long *nb, char *err,
                           size_t errlen)
{
    char buf[64];
    if (in.rank != 1) {
        snprintf(err, errlen, "dense needs a flat input, but its input is %s; add 'flatten' before it",
                 shape_str(in, buf, sizeof buf));
        return -1;
    }
    *out = (Shape){1, s->units, 1, 1};
    *np = (long long)s->units * in.c + (s->bias ? s->units : 0);
    *nb = 0;
    return 0;
}

typedef struct DenseState {
    float *w, *b;   /* (out, in), (out) or NULL; b follows w in one allocation */
    float *dw, *db; /* the same layout */
    int in, out;
} DenseState;

/* PyTorch's nn.Linear defaults: W ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform_ with a = sqrt(5)), then
 * b ~ U(-1/sqrt(in), 1/sqrt(in)), each drawn in memory order from init. */
static int dense_create(Layer *l, Rng *init, char *err, size_t errlen)
{
    const LayerSpec *s = l->spec;
    DenseState *st;
    size_t nw, nb;
    if (s->units < 1) {
        snprintf(err, errlen, "dense needs units >= 1, got %d", s->units);
        return -1;
    }
    if (!(st = l->state = calloc(1, sizeof *st))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    st->in = (int)shape_size(s->in), st->out = s->units;
    nw = (size_t)st->out * st->in, nb = s->bias ? (size_t)st->out : 0;
    if (!(st->w = layer_alloc_floats(nw + nb, "the dense weights", err, errlen)) ||
        !(st->dw = layer_alloc_floats(nw + nb, "the dense gradients", err, errlen)))
        return -1;
    st->b = nb ? st->w + nw : NULL;
    st->db = nb ? st->dw + nw : NULL;
    float bound = 1.0f / sqrtf((float)st->in);
    layer_init_uniform(st->w, nw, bound, init);
    if (st->b)
        layer_init_uniform(st->b, nb, bound, init);
    return 0;
}

/* x is (N, C), w is (OC, C), b is (OC) or NULL; y is (N, OC) = x w^T + b */
static void dense_forward(float *y, const float *x, const float *w, const float *b, int N, int C, int OC)
{
    if (b)
        for (int n = 0; n < N; n++)
            memcpy(y + (size_t)n * OC, b, (size_t)OC * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, x, C, w, C, b ? 1.0f : 0.0f, y, OC);
}

/* OU output units of a layer with OC: dy is (N, OC) from its first unit, x is (N, C):
 * dw (OU, C) += dy^T x; db (OU) += column sums of dy (when not NULL). The input gradient dx (N, C) = dy w is one
 * sgemm in the caller. */
static void dense_weight_grad(float *dw, float *db, const float *dy, const float *x, int N, int C, int OU, int OC)
{
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OU, C, N, 1.0f, dy, OC, x, C, 1.0f, dw, C);
    if (db)
        for (int o = 0; o < OU; o++) {
            double sum = 0.0;
            for (int n = 0; n < N; n++)
                sum += dy[(size_t)n * OC + o];
            db[o] += (float)sum;
        }
}

/* Rows of the batch (forward, dx) and output units (dw, db) per sgemm call. The calls are the same whatever the
 * thread count, and threads take whole blocks, so results do not depend on the count either. */
#define DENSE_BLOCK 32

/* Threads for an N x C x OC product: one below 8 * RT_MIN_PARALLEL multiply-adds, where a parallel region costs
 * more than it saves. */
static int team(int N, int C, int OC)
{
    return (long long)N * C * OC >= 8 * RT_MIN_PARALLEL ? rt_threads() : 1;
}

/* This thread's blocks of n items: [*lo, *hi) in items, whole DENSE_BLOCKs (the last may be short). */
static void blocks(int n, int *lo, int *hi)
{
    int nb = (n + DENSE_BLOCK - 1) / DENSE_BLOCK;
    rt_split(nb, omp_get_thread_num(), omp_get_num_threads(), lo, hi);
    *lo *= DENSE_BLOCK, *hi *= DENSE_BLOCK;
    *hi = *hi < n ? *hi : n;
}

static void dense_layer_forward(Layer *l, const Tensor *x, int train)
{
    DenseState *st = l->state;
    int N = x->n, C = st->in, OC = st->out;
    layer_set_count(l, N);
#pragma omp parallel num_threads(team(N, C, OC))
    {
        int lo, hi;
        blocks(N, &lo, &hi);
        for (int n0 = lo; n0 < hi; n0 += DENSE_BLOCK) {
            int rows = hi - n0 < DENSE_BLOCK ? hi - n0 : DENSE_BLOCK;
            dense_forward(l->y.data + (size_t)n0 * OC, x->data + (size_t)n0 * C, st->w, st->b, rows, C, OC);
            if (!train)
                layer_post_apply(&l->post, l->y.data + (size_t)n0 * OC, rows, OC, 1);
        }
    }
}

/* Each thread takes whole blocks of output units of dw and db (dy's columns), and of batch rows of dx. */
static void dense_layer_backward(Layer *l, const Tensor *x, Tensor *dx)
{
    DenseState *st = l->state;
    int N = x->n, C = st->in, OC = st->out;
#pragma omp parallel num_threads(team(N, C, OC))
    {
        int lo, hi;
        blocks(OC, &lo, &hi);
        for (int o0 = lo; o0 < hi; o0 += DENSE_BLOCK) {
            int ou = hi - o0 < DENSE_BLOCK ? hi - o0 : DENSE_BLOCK;
            dense_weight_grad(st->dw + (size_t)o0 * C, st->db ? st->db + o0 : NULL, l->dy.data + o0, x->data, N, C,
                              ou, OC);
        }
        blocks(N, &lo, &hi);
        for (int n0 = lo; dx && n0 < hi; n0 += DENSE_BLOCK) {
            int rows = hi - n0 < DENSE_BLOCK ? hi - n0 : DENSE_BLOCK;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, C, OC, 1.0f, l->dy.data + (size_t)n0 * OC,
                        OC, st->w, C, 0.0f, dx->data + (size_t)n0 * C, C);
        }
    }
}

static int dense_params(Layer *l, Param *out)
{
    DenseState *st = l->state;
    out[0] = (Param){"weight", st->w, st->dw, 2, {st->out, st->in}, (size_t)st->out * st->in, 1};
    if (!st->b)
        return 1;
    out[1] = (Param){"bias", st->b, st->db, 1, {st->out}, (size_t)st->out, 1};
    return 2;
}

static void dense_destroy(Layer *l)
{
    DenseState *st = l->state;
    if (st)
        tensor_zfree(st->w), tensor_zfree(st->dw);
    free(st);
    l->state = NULL;
    layer_free_io(l);
}

const LayerOps dense_ops = {
    .type = "dense",
    .out_shape = dense_out_shape,
    .create = dense_create,
    .resize = layer_resize_io,
    .forward = dense_layer_forward,
    .backward = dense_layer_backward,
    .params = dense_params,
    .destroy = dense_destroy,
    .takes_post = 1,
};
