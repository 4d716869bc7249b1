/* batchnorm: batch normalization (Ioffe & Szegedy, 2015), per feature on N x C input and per channel
 * over (N, H, W) on NCHW input. moving = momentum*moving + (1-momentum)*batch, with the BIASED batch
 * variance in the moving average too (PyTorch uses the unbiased one there; see docs/runtime.md).
 * In a data-parallel run (comm.h) the statistics are those of the whole batch across the ranks (sync=true), or
 * each rank's own (sync=false). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../layer.h"
#include "../threads.h"
#include "common.h"

/* How the work is shared (threads.h), so that results are the same bit for bit at any thread count: the batch
 * is cut into fixed chunks of BN_CHUNK images; each chunk's partial sums per channel go to its own slot of
 * `part`, and the chunks' partials are added in chunk order (whoever computed them). The elementwise passes
 * then split the images as conv2d, the pooling layers and the activations do, so each thread mostly reads what
 * it wrote itself in the layer before (on another core those values would have to cross between caches). */
#define BN_CHUNK 16
/* Sums run in BN_LANES double lanes along each NCHW plane (the compiler vectorises neither one serial double
 * chain nor, reliably, a lane array, hence GCC/Clang vector types); N x C input sums one double per feature. */
#define BN_LANES 16

/* Layer-private state. The [C] vectors live in one block (vec). No normalised input is kept: backward
 * recomputes xhat = (x - mean) * rstd from its x (the forward's input) with the saved mean and rstd, in the
 * forward's float operations, which costs less than writing and reading back a tensor of xhat. */
typedef struct BnLayer {
    int C, HW, L;                  /* L: lanes per channel in part (BN_LANES on NCHW input, 1 on N x C) */
    float *vec;                    /* 12*C floats, owned; the pointers below point into it */
    float *gamma, *beta;           /* trainable scale and shift */
    float *dgamma, *dbeta;         /* their gradients (accumulated) */
    float *moving_mean, *moving_var;
    float *mean, *rstd;            /* statistics the last forward normalised with (batch or moving) */
    float *ca, *cb, *cd;           /* per-channel dx coefficients of the last backward */
    float *shift;                  /* per channel: the value the sums are taken around (see finish_stats) */
    double *part;                  /* (chunks, 2, C, L), owned, sized by resize: each chunk's two sums per channel */
    float momentum, eps;           /* the arguments, in the single precision the statistics are kept in */
    int affine;                    /* gamma and beta are parameters (else fixed at 1 and 0, and not listed) */
    int sync;                      /* the argument: across ranks, normalise with the whole batch's statistics */
    int train;                     /* mode of the last forward: selects the backward formula */
    int shared;                    /* the last training forward summed over the ranks (sync, l->comm shared) */
    double count;                  /* values per channel that forward's statistics were taken over */
    double *sums;                  /* 2*C + 1, owned: the per-channel sums (and the count) the ranks add up */
} BnLayer;

/* batchnorm(momentum=0.9, eps=1e-5, affine=true, sync=true). affine=false (PyTorch's BatchNorm(affine=False)) has
 * no gamma and beta: y = xhat. The layer then keeps gamma = 1 and beta = 0 for its formulas and the eval fusion, but
 * lists neither as a parameter, so nothing trains or saves them. sync: across ranks, normalise with the whole
 * batch's statistics (docs/distributed.md). */
enum { MOMENTUM, EPS, AFFINE, SYNC };
static const ArgSpec batchnorm_args[] = {ARG_NUM("momentum", 0, 0, 0, 1, 0, 0.9), ARG_NUM("eps", 0, 0, 1, 1, 0, 1e-5),
                                         ARG_BOOL("affine", 1), ARG_BOOL("sync", 1)};

/* eps is added in single precision: a value that rounds to 0 there would divide by a zero variance. */
static int batchnorm_configure(LayerSpec *s, int *bad, char *err, size_t errlen)
{
    if ((float)spec_num(s, EPS) > 0.0f)
        return 0;
    *bad = EPS;
    snprintf(err, errlen, "eps %g is too small for single precision", spec_num(s, EPS));
    return -1;
}

static int batchnorm_out_shape(const LayerSpec *s, Shape in, Shape *out, long long *np, long long *nb, char *err,
                               size_t errlen)
{
    (void)err, (void)errlen;
    *out = in;
    *np = spec_int(s, AFFINE) ? 2LL * in.c : 0; /* gamma, beta */
    *nb = 2LL * in.c; /* moving_mean, moving_var */
    return 0;
}

/* ---- per-channel bookkeeping, shared by both layouts ---- */

/* Every channel normalises with mean and rstd = 1/sqrt(var + eps) (computed in double from the float variance): in
 * training the batch's, from the sums of x - shift (tot0) and of its squares (tot1) over m values (var = E[d^2] -
 * E[d]^2, clamped at 0 against rounding, NaN passing through), also folded into the moving statistics; in eval
 * (tot0 NULL) the moving ones. One loop over the channels with no call in it, so that it vectorises: a dense
 * layer's 100 channels, one division and square root at a time, were a third of its batchnorm's forward. */
static void set_stats(BnLayer *b, const double *restrict tot0, const double *restrict tot1, double m)
{
    float *restrict mean = b->mean, *restrict rstd = b->rstd, *restrict mm = b->moving_mean;
    float *restrict mv = b->moving_var;
    const float *restrict shift = b->shift;
    float mom = b->momentum, eps = b->eps;
    if (!tot0) {
        for (int c = 0; c < b->C; c++)
            mean[c] = mm[c], rstd[c] = (float)(1.0 / sqrt((double)mv[c] + (double)eps));
        return;
    }
    for (int c = 0; c < b->C; c++) {
        double d = tot0[c] / m, v = tot1[c] / m - d * d;
        float mf = (float)(shift[c] + d), vf = (float)(v < 0.0 ? 0.0 : v);
        mean[c] = mf;
        mm[c] = mom * mm[c] + (1.0f - mom) * mf;
        mv[c] = mom * mv[c] + (1.0f - mom) * vf;
        rstd[c] = (float)(1.0 / sqrt((double)vf + (double)eps));
    }
}

/* With m values per channel and the sums sdy = Σ dy, sdyx = Σ dy*xhat: dx = a*dy + bx*xhat + d, the
 * per-channel coefficients folded in double. Training differentiates through the batch statistics:
 * dx = gamma*rstd/m * (m*dy - sdy - xhat*sdyx); eval treats them as constants: dx = gamma*rstd*dy. (dgamma += sdyx
 * and dbeta += sdy are the caller's: across ranks, each rank adds its own share's sums.) Every channel in one
 * loop, as set_stats. */
static void grad_coefs(BnLayer *b, const double *restrict sdy, const double *restrict sdyx, double m)
{
    float *restrict a = b->ca, *restrict bx = b->cb, *restrict d = b->cd;
    const float *restrict gamma = b->gamma, *restrict rstd = b->rstd;
    for (int c = 0; c < b->C; c++) {
        double k = (double)gamma[c] * rstd[c];
        a[c] = (float)k;
        bx[c] = b->train ? (float)(-k * sdyx[c] / m) : 0.0f;
        d[c] = b->train ? (float)(-k * sdy[c] / m) : 0.0f;
    }
}

/* ---- per-chunk kernels over images [n0, n1) of (N, C, HW) tensors ---- */

/* The BN_LANES lanes as BN_NV vectors of the build's native width (AVX-512: 2 of 8 doubles; otherwise 4 of 4:
 * GCC split AVX2's halves of 8-double vectors through the stack, at 4 times the time). Lane j's sum is the same
 * sequence of additions whatever the width. */
#if defined(__AVX512F__)
#define BN_VD 8
#else
#define BN_VD 4
#endif
#define BN_NV (BN_LANES / BN_VD)
typedef double BnVec __attribute__((vector_size(BN_VD * sizeof(double))));
typedef float BnVecF __attribute__((vector_size(BN_VD * sizeof(float))));

/* The BN_LANES floats at x as vectors; vectors travel through pointers only, since passing them by value is ABI
 * dependent (GCC warns when the build has no AVX). */
static inline void loadf(BnVecF *v, const float *x)
{
    for (int q = 0; q < BN_NV; q++)
        memcpy(&v[q], x + q * BN_VD, sizeof v[q]);
}

static inline void loadd(BnVec *v, const float *x)
{
    BnVecF f[BN_NV];
    loadf(f, x);
    for (int q = 0; q < BN_NV; q++)
        v[q] = __builtin_convertvector(f[q], BnVec);
}

/* acc[0..BN_LANES) += the lanes of s, in lane order. */
static inline void lanes_add(double *acc, const BnVec *s)
{
    for (int q = 0; q < BN_NV; q++)
        for (int j = 0; j < BN_VD; j++)
            acc[q * BN_VD + j] += s[q][j];
}

/* acc[j] += lane j (values i = j mod BN_LANES) of a plane's n values of x - k, accsq[j] of their squares. */
static inline void plane_sums(double *acc, double *accsq, const float *x, int n, double k)
{
    BnVec s[BN_NV] = {{0}}, sq[BN_NV] = {{0}};
    int i = 0;
    for (; i + BN_LANES <= n; i += BN_LANES) {
        BnVec d[BN_NV];
        loadd(d, x + i);
        for (int q = 0; q < BN_NV; q++) {
            d[q] -= k;
            s[q] += d[q], sq[q] += d[q] * d[q];
        }
    }
    for (int j = 0; i < n; i++, j++) {
        double d = x[i] - k;
        s[j / BN_VD][j % BN_VD] += d, sq[j / BN_VD][j % BN_VD] += d * d;
    }
    lanes_add(acc, s);
    lanes_add(accsq, sq);
}

/* acc[j] += lane j of a plane's dy, accx[j] of its dy * xhat, xhat = (x - mu) * r as forward computed it. */
static inline void plane_grad_sums(double *acc, double *accx, const float *dy, const float *x, int n, float mu,
                                   float r)
{
    BnVec s[BN_NV] = {{0}}, t[BN_NV] = {{0}};
    int i = 0;
    for (; i + BN_LANES <= n; i += BN_LANES) {
        BnVec d[BN_NV];
        BnVecF xf[BN_NV];
        loadd(d, dy + i);
        loadf(xf, x + i);
        for (int q = 0; q < BN_NV; q++) {
            BnVec h = __builtin_convertvector((xf[q] - mu) * r, BnVec);
            s[q] += d[q], t[q] += d[q] * h;
        }
    }
    for (int j = 0; i < n; i++, j++) {
        double d = dy[i], h = (x[i] - mu) * r;
        s[j / BN_VD][j % BN_VD] += d, t[j / BN_VD][j % BN_VD] += d * h;
    }
    lanes_add(acc, s);
    lanes_add(accx, t);
}

/* Partial sums of one chunk: s (C, L) gets Σ(x - k) and q (C, L) Σ(x - k)^2 per channel, with k = shift[c]
 * (see finish_stats). */
static void chunk_stats(double *restrict s, double *restrict q, const float *x, int n0, int n1, int C, int HW,
                        int L, const float *shift)
{
    for (int i = 0; i < C * L; i++)
        s[i] = q[i] = 0.0;
    if (HW == 1) {
        for (int n = n0; n < n1; n++)
            for (int c = 0; c < C; c++) {
                double d = x[(size_t)n * C + c] - shift[c];
                s[c] += d, q[c] += d * d;
            }
        return;
    }
    for (int n = n0; n < n1; n++)
        for (int c = 0; c < C; c++)
            plane_sums(s + c * L, q + c * L, x + ((size_t)n * C + c) * HW, HW, shift[c]);
}

/* Partial sums of one chunk: s (C, L) gets Σ dy and t (C, L) Σ dy*xhat per channel. */
static void chunk_grad_sums(double *restrict s, double *restrict t, const float *dy, const float *x, int n0, int n1,
                            int C, int HW, int L, const float *mean, const float *rstd)
{
    for (int i = 0; i < C * L; i++)
        s[i] = t[i] = 0.0;
    if (HW == 1) {
        for (int n = n0; n < n1; n++)
            for (int c = 0; c < C; c++) {
                size_t k = (size_t)n * C + c;
                s[c] += dy[k], t[c] += (double)dy[k] * ((x[k] - mean[c]) * rstd[c]);
            }
        return;
    }
    for (int n = n0; n < n1; n++)
        for (int c = 0; c < C; c++) {
            size_t off = ((size_t)n * C + c) * HW;
            plane_grad_sums(s + c * L, t + c * L, dy + off, x + off, HW, mean[c], rstd[c]);
        }
}

/* y = gamma*((x - mean)*rstd) + beta for images [n0, n1): the normalisation a LayerPost applies when this layer is
 * fused into the one before it, through the same loop. */
static void normalise(const BnLayer *b, float *y, const float *x, int n0, int n1)
{
    LayerPost p = {.mean = b->mean, .rstd = b->rstd, .gamma = b->gamma, .beta = b->beta};
    size_t off = (size_t)n0 * b->C * b->HW;
    layer_post_normalise(&p, y + off, x + off, n1 - n0, b->C, b->HW);
}

/* dx = a*dy + bx*xhat + d per channel, images [n0, n1) of dx, dy, x. */
static void input_grad(float *dx, const float *dy, const float *x, int n0, int n1, int C, int HW, const float *mean,
                       const float *rstd, const float *a, const float *bx, const float *d)
{
    if (HW == 1) {
        for (int n = n0; n < n1; n++)
            for (int c = 0; c < C; c++) {
                size_t k = (size_t)n * C + c;
                dx[k] = a[c] * dy[k] + bx[c] * ((x[k] - mean[c]) * rstd[c]) + d[c];
            }
        return;
    }
    for (int n = n0; n < n1; n++)
        for (int c = 0; c < C; c++) {
            size_t off = ((size_t)n * C + c) * HW;
            float mu = mean[c], r = rstd[c], ac = a[c], bc = bx[c], dc = d[c];
            for (int i = 0; i < HW; i++)
                dx[off + i] = ac * dy[off + i] + bc * ((x[off + i] - mu) * r) + dc;
        }
}

/* tot[c] = channel c's total in sum `which` (0 or 1) of part: the L lanes of each chunk, chunks in order, every
 * channel at once (N x C input: one lane, a chunk's value its lane sum). */
static void chunk_totals(const BnLayer *b, int chunks, int which, double *restrict tot)
{
    int C = b->C, L = b->L;
    for (int c = 0; c < C; c++)
        tot[c] = 0.0;
    for (int k = 0; k < chunks; k++) {
        const double *restrict p = b->part + ((size_t)k * 2 + which) * C * L;
        if (L == 1) {
            for (int c = 0; c < C; c++)
                tot[c] += p[c];
            continue;
        }
        for (int c = 0; c < C; c++) {
            double sum = 0.0;
            for (int j = 0; j < L; j++)
                sum += p[(size_t)c * L + j];
            tot[c] += sum;
        }
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
    b->L = b->HW > 1 ? BN_LANES : 1;
    b->momentum = (float)spec_num(l->spec, MOMENTUM), b->eps = (float)spec_num(l->spec, EPS);
    b->affine = spec_int(l->spec, AFFINE);
    size_t C = (size_t)b->C;
    b->sync = spec_int(l->spec, SYNC);
    if (!(b->vec = layer_alloc_floats(12 * C, "the batchnorm parameters and statistics", err, errlen)))
        return -1;
    if (!(b->sums = calloc(2 * C + 1, sizeof *b->sums))) {
        snprintf(err, errlen, "out of memory for a batchnorm layer");
        return -1;
    }
    b->gamma = b->vec, b->beta = b->vec + C, b->dgamma = b->vec + 2 * C, b->dbeta = b->vec + 3 * C;
    b->moving_mean = b->vec + 4 * C, b->moving_var = b->vec + 5 * C;
    b->mean = b->vec + 6 * C, b->rstd = b->vec + 7 * C;
    b->ca = b->vec + 8 * C, b->cb = b->vec + 9 * C, b->cd = b->vec + 10 * C;
    b->shift = b->vec + 11 * C;
    for (size_t c = 0; c < C; c++)
        b->gamma[c] = 1.0f, b->moving_var[c] = 1.0f;
    return 0;
}

static int batchnorm_resize(Layer *l, int batch, char *err, size_t errlen)
{
    BnLayer *b = l->state;
    size_t chunks = ((size_t)batch + BN_CHUNK - 1) / BN_CHUNK, n = chunks * 2 * b->C * b->L;
    if (l->batch == batch && l->y.data)
        return 0;
    free(b->part);
    b->part = NULL;
    if (layer_alloc_io(l, batch, err, errlen))
        return -1;
    if (!(b->part = malloc(n * sizeof *b->part))) {
        snprintf(err, errlen, "out of memory for the batchnorm partial sums (%zu values)", n);
        layer_free_io(l);
        return -1;
    }
    return 0;
}

/* Threads for a batch of N: one below RT_MIN_PARALLEL values, where a team costs more than it saves. */
static int team(const BnLayer *b, int N)
{
    return (size_t)N * b->C * b->HW >= RT_MIN_PARALLEL ? rt_threads() : 1;
}

/* Whether the statistics of a training forward are summed over the ranks (comm.h). */
static int summed(const Layer *l, const BnLayer *b) { return b->sync && comm_shared(l->comm); }

/* The value k channel c's sums are taken around: alone, its first value x[0, c, 0]; across ranks, one all of
 * them share without asking each other (also a rank with no images): the moving mean, which every rank holds
 * the same. */
static void set_shift(Layer *l, const float *x, int N)
{
    BnLayer *b = l->state;
    for (int c = 0; c < b->C; c++)
        b->shift[c] = summed(l, b) ? b->moving_mean[c] : N > 0 ? x[(size_t)c * b->HW] : 0.0f;
}

/* Every channel's statistics from the chunks' partial sums (training) or the moving ones (eval). With k the
 * channel's shift, d = x - k is exact in double and near the mean, so var = E[d^2] - E[d]^2 loses nothing a
 * float result would show (unlike E[x^2] - E[x]^2 in float); clamped at 0 against rounding, NaN passing
 * through. Across ranks the sums (and the count) are added up first, so every rank gets the whole batch's
 * statistics; the moving mean as k is near the batch mean once training has warmed it up, and the sums run
 * in double, so a shift still far from the mean (the first steps) costs digits only when the mean is many
 * orders of magnitude above the spread. */
static void finish_stats(Layer *l, int N, int train)
{
    BnLayer *b = l->state;
    int chunks = (N + BN_CHUNK - 1) / BN_CHUNK, C = b->C;
    double m = (double)N * b->HW;
    b->shared = train && summed(l, b);
    if (train) {
        chunk_totals(b, chunks, 0, b->sums), chunk_totals(b, chunks, 1, b->sums + C);
        b->sums[2 * C] = m;
        if (b->shared)
            l->comm->sum(l->comm, b->sums, 2 * (size_t)C + 1), m = b->sums[2 * C];
    }
    b->count = m;
    if (train && m == 0.0) /* a rank with no images and statistics of its own (sync=false): nothing to fold in */
        return;
    set_stats(b, train ? b->sums : NULL, b->sums + C, m);
}

/* Chunk k's partial sums of x for the statistics. */
static void stats_chunk(BnLayer *b, const float *x, int N, int k)
{
    size_t P = (size_t)2 * b->C * b->L;
    int n0 = k * BN_CHUNK, n1 = n0 + BN_CHUNK < N ? n0 + BN_CHUNK : N;
    chunk_stats(b->part + k * P, b->part + k * P + P / 2, x, n0, n1, b->C, b->HW, b->L, b->shift);
}

/* Images [n0, n1) of the output: normalised, and with training fusion (layer.h) activated in place as well, an
 * image at a time while it is in cache (rows of N x C input all at once: a row is too short to be worth a call). */
static void output(const Layer *l, const float *x, int n0, int n1)
{
    const BnLayer *b = l->state;
    const LayerPost *p = &l->post;
    float *y = layer_out(l);
    size_t per = (size_t)b->C * b->HW;
    int step = b->HW == 1 ? n1 - n0 : 1;
    for (int n = n0; n < n1; n += step) {
        int m = n + step < n1 ? n + step : n1;
        normalise(b, y, x, n, m);
        if (p->act)
            p->act(y + (size_t)n * per, (size_t)(m - n) * per);
    }
}

/* Chunks' partial sums, then (thread 0, the caller, which alone may talk to the other ranks) the statistics, then
 * every thread its images. */
static void forward_task(void *ctx, int t, int T)
{
    const LayerCall *c = ctx;
    int N = c->x->n, chunks = (N + BN_CHUNK - 1) / BN_CHUNK, lo, hi;
    rt_split(chunks, t, T, &lo, &hi);
    for (int k = lo; c->train && k < hi; k++)
        stats_chunk(c->l->state, c->x->data, N, k);
    rt_barrier();
    if (t == 0)
        finish_stats(c->l, N, c->train);
    rt_barrier();
    rt_split(N, t, T, &lo, &hi);
    output(c->l, c->x->data, lo, hi);
}

/* Training normalises with the batch statistics and updates the moving ones; eval normalises with the moving
 * statistics. A rank whose share of the batch is empty (N = 0) only takes part in the ranks' sum. */
static void batchnorm_forward(Layer *l, const Tensor *x, int train)
{
    BnLayer *b = l->state;
    LayerCall c = {l, x, NULL, train};
    b->train = train;
    layer_set_count(l, x->n); /* a last, smaller batch runs in the buffers of the full one */
    if (train)
        set_shift(l, x->data, x->n);
    rt_run(team(b, x->n), forward_task, &c);
}

/* Chunk k's partial sums of dy and dy*xhat. */
static void grad_sums_chunk(Layer *l, const float *x, int N, int k)
{
    BnLayer *b = l->state;
    size_t P = (size_t)2 * b->C * b->L;
    int n0 = k * BN_CHUNK, n1 = n0 + BN_CHUNK < N ? n0 + BN_CHUNK : N;
    layer_fused_grad(l, n0, n1); /* the activation after it, fused: its backward gives this chunk's dy */
    chunk_grad_sums(b->part + k * P, b->part + k * P + P / 2, l->dy.data, x, n0, n1, b->C, b->HW, b->L, b->mean,
                    b->rstd);
}

/* Every channel's parameter gradients and dx coefficients from the chunks' partial sums. After a forward whose
 * statistics were summed over the ranks, the gradient sums are too (dx depends on the whole batch through its
 * statistics), while dgamma and dbeta take only this rank's share: the trainer adds up every gradient. */
static void finish_grads(Layer *l, int N)
{
    BnLayer *b = l->state;
    int chunks = (N + BN_CHUNK - 1) / BN_CHUNK, C = b->C;
    double *restrict sdy = b->sums, *restrict sdyx = b->sums + C;
    float *restrict dgamma = b->dgamma, *restrict dbeta = b->dbeta;
    chunk_totals(b, chunks, 0, sdy), chunk_totals(b, chunks, 1, sdyx);
    for (int c = 0; c < C; c++)
        dgamma[c] += (float)sdyx[c], dbeta[c] += (float)sdy[c];
    if (b->train && b->shared)
        l->comm->sum(l->comm, b->sums, 2 * (size_t)C);
    grad_coefs(b, sdy, sdyx, b->train && b->shared ? b->count : (double)N * b->HW);
}

/* Chunks' partial sums, then (thread 0) the parameter gradients and dx coefficients, then every thread dx of its
 * images. */
static void backward_task(void *ctx, int t, int T)
{
    const LayerCall *c = ctx;
    BnLayer *b = c->l->state;
    int N = c->x->n, chunks = (N + BN_CHUNK - 1) / BN_CHUNK, lo, hi;
    rt_split(chunks, t, T, &lo, &hi);
    for (int k = lo; k < hi; k++)
        grad_sums_chunk(c->l, c->x->data, N, k);
    rt_barrier();
    if (t == 0)
        finish_grads(c->l, N);
    rt_barrier();
    rt_split(N, t, T, &lo, &hi);
    if (c->dx)
        input_grad(c->dx->data, c->l->dy.data, c->x->data, lo, hi, b->C, b->HW, b->mean, b->rstd, b->ca, b->cb,
                   b->cd);
}

/* x is the forward's input: xhat is recomputed from it (backward_task). */
static void batchnorm_backward(Layer *l, const Tensor *x, Tensor *dx)
{
    LayerCall c = {l, x, dx, 1};
    rt_run(team(l->state, x->n), backward_task, &c);
}

/* Eval-mode fusion: the moving statistics as the layer before applies them (LayerPost). */
static void batchnorm_eval_norm(Layer *l, LayerPost *post)
{
    BnLayer *b = l->state;
    b->train = 0;
    finish_stats(l, 0, 0);
    post->mean = b->mean, post->rstd = b->rstd, post->gamma = b->gamma, post->beta = b->beta;
}

/* For exports (layer.h): y = gamma*(x - mean)/sqrt(var + eps) + beta as scale*x + shift, in double from the moving
 * statistics, not from the float rstd the eval forward uses. */
static void batchnorm_eval_affine(Layer *l, double *scale, double *shift)
{
    BnLayer *b = l->state;
    double eps = spec_num(l->spec, EPS);
    for (int c = 0; c < b->C; c++) {
        scale[c] = (double)b->gamma[c] / sqrt((double)b->moving_var[c] + eps);
        shift[c] = (double)b->beta[c] - (double)b->moving_mean[c] * scale[c];
    }
}

static Param vec_param(const char *name, float *value, float *grad, int C)
{
    return (Param){.name = name, .value = value, .grad = grad, .rank = 1, .dims = {C}, .size = (size_t)C,
                   .trainable = grad != NULL};
}

static int batchnorm_params(Layer *l, Param *out)
{
    BnLayer *b = l->state;
    int n = 0;
    if (b->affine) {
        out[n++] = vec_param("gamma", b->gamma, b->dgamma, b->C);
        out[n++] = vec_param("beta", b->beta, b->dbeta, b->C);
    }
    out[n++] = vec_param("moving_mean", b->moving_mean, NULL, b->C);
    out[n++] = vec_param("moving_var", b->moving_var, NULL, b->C);
    return n;
}

/* With sync=false each rank folds its own statistics into its moving ones: they are averaged over the ranks
 * (the moving average is linear in the batch statistics, so averaging now equals averaging every step). With
 * sync=true every rank already holds the same. */
static void batchnorm_sync(Layer *l)
{
    BnLayer *b = l->state;
    int C = b->C;
    double *v = b->sums, n;
    if (b->sync || !comm_shared(l->comm))
        return;
    for (int c = 0; c < C; c++)
        v[c] = b->moving_mean[c], v[C + c] = b->moving_var[c];
    l->comm->sum(l->comm, v, 2 * (size_t)C);
    n = l->comm->size;
    for (int c = 0; c < C; c++)
        b->moving_mean[c] = (float)(v[c] / n), b->moving_var[c] = (float)(v[C + c] / n);
}

static void batchnorm_destroy(Layer *l)
{
    BnLayer *b = l->state;
    layer_free_io(l);
    if (b) {
        tensor_zfree(b->vec);
        free(b->sums);
        free(b->part);
        free(b);
    }
    l->state = NULL;
}

const LayerOps batchnorm_ops = {
    .type = "batchnorm",
    .args = batchnorm_args,
    .nargs = sizeof batchnorm_args / sizeof batchnorm_args[0],
    .configure = batchnorm_configure,
    .out_shape = batchnorm_out_shape,
    .create = batchnorm_create,
    .resize = batchnorm_resize,
    .forward = batchnorm_forward,
    .backward = batchnorm_backward,
    .params = batchnorm_params,
    .destroy = batchnorm_destroy,
    .eval_norm = batchnorm_eval_norm,
    .takes_train_post = 1,
    .eval_affine = batchnorm_eval_affine,
    .sync = batchnorm_sync,
};
