/* Data-parallel training. In every build, without MPI: the layers' side of it (comm.h) with ranks simulated by
 * threads of this process that sum through a shared table (World), against the same layers run on the whole
 * batch in one piece: synchronized batchnorm, batchnorm(sync=false), dropout's stream, a whole network with a
 * residual body; the loss shares; the fused gradient buffer's layout (shard.h). End to end, when BNNI_MPI_BIN
 * names the MPI build (`make run-dist-tests` sets it): tests/test_dist_mpi.c, in this suite. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/dist.h"
#include "runtime/layer.h"
#include "runtime/loss.h"
#include "runtime/net.h"
#include "runtime/shard.h"
#include "runtime/threads.h"
#include "tests/gradcheck.h"
#include "tests/specs.h"

#define MAX_RANKS 4

/* ---------------------------------------------------------------- ranks as threads */

/* The ranks' shared table: each rank's Comm.sum leaves its buffer here, waits for the others, and adds every
 * rank's buffer in rank order, as a fixed-order all-reduce does. */
typedef struct World {
    int n;
    pthread_barrier_t bar;
    double *slot[MAX_RANKS];
    Comm comm[MAX_RANKS];
} World;

static void world_sum(Comm *c, double *buf, size_t n)
{
    World *w = c->impl;
    double *total = calloc(n ? n : 1, sizeof *total);
    cr_assert(total);
    w->slot[c->rank] = buf;
    pthread_barrier_wait(&w->bar);
    for (int r = 0; r < w->n; r++)
        for (size_t i = 0; i < n; i++)
            total[i] += w->slot[r][i];
    pthread_barrier_wait(&w->bar); /* everyone has read every slot */
    memcpy(buf, total, n * sizeof *buf);
    free(total);
    c->calls++;
}

static void world_init(World *w, int n)
{
    memset(w, 0, sizeof *w);
    w->n = n;
    pthread_barrier_init(&w->bar, NULL, (unsigned)n);
    for (int r = 0; r < n; r++)
        w->comm[r] = (Comm){.rank = r, .size = n, .sum = world_sum, .impl = w};
}

typedef struct RankJob {
    int rank;
    void (*fn)(int rank, void *ctx);
    void *ctx;
} RankJob;

static void *rank_main(void *arg)
{
    RankJob *j = arg;
    j->fn(j->rank, j->ctx);
    return NULL;
}

/* Runs fn(rank, ctx) on n threads at once, one per rank. */
static void run_ranks(int n, void (*fn)(int rank, void *ctx), void *ctx)
{
    pthread_t t[MAX_RANKS];
    RankJob j[MAX_RANKS];
    for (int r = 0; r < n; r++) {
        j[r] = (RankJob){r, fn, ctx};
        cr_assert_eq(pthread_create(&t[r], NULL, rank_main, &j[r]), 0);
    }
    for (int r = 0; r < n; r++)
        pthread_join(t[r], NULL);
}

/* Rank r's images [*lo, *hi) of a batch of n, as shard_slice cuts it. */
static void share(int n, int r, int ranks, int *lo, int *hi) { rt_split(n, r, ranks, lo, hi); }

/* |a - b| <= rtol * max(|a|, |b|) + atol for every element. */
static void expect_close(const float *a, const float *b, size_t n, double rtol, double atol, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        double m = fmax(fabs(a[i]), fabs(b[i]));
        if (!(fabs((double)a[i] - b[i]) <= rtol * m + atol)) {
            cr_expect(0, "%s[%zu]: %.9g against %.9g", what, i, a[i], b[i]);
            return;
        }
    }
}

/* ---------------------------------------------------------------- batchnorm across ranks */

/* One batchnorm case: the whole batch in one layer (the reference) and its shares in one layer per rank. */
typedef struct BnCase {
    LayerSpec spec;
    Shape shape;
    int batch, ranks;
    size_t per;           /* values per image */
    Layer whole;
    Layer part[MAX_RANKS];
    Tensor x, dx, dy;     /* the whole batch */
    World w;
    int train;
} BnCase;

enum { P_GAMMA, P_BETA, P_MEAN, P_VAR };

static void bn_case_open(BnCase *k, const char *args, Shape shape, int batch, int ranks)
{
    char err[256];
    memset(k, 0, sizeof *k);
    k->spec = test_spec(LK_BATCHNORM, "bn", args);
    k->shape = shape, k->batch = batch, k->ranks = ranks;
    k->per = (size_t)shape.c * shape.h * shape.w;
    int h = shape.rank == 1 ? 1 : shape.h, w = shape.rank == 1 ? 1 : shape.w;
    cr_assert(gradcheck_setup(&k->whole, &k->spec, shape, batch, NULL, 1, err, sizeof err) == 0, "%s", err);
    world_init(&k->w, ranks);
    for (int r = 0; r < ranks; r++) {
        cr_assert(gradcheck_setup(&k->part[r], &k->spec, shape, batch, NULL, 1, err, sizeof err) == 0, "%s", err);
        k->part[r].comm = &k->w.comm[r];
    }
    cr_assert(tensor_alloc(&k->x, batch, shape.c, h, w) == 0 && tensor_alloc(&k->dx, batch, shape.c, h, w) == 0 &&
              tensor_alloc(&k->dy, batch, shape.c, h, w) == 0);
    /* gamma and beta away from 1 and 0, the same in every copy */
    Param p[LAYER_MAX_PARAMS];
    for (int r = -1; r < ranks; r++) {
        Layer *l = r < 0 ? &k->whole : &k->part[r];
        l->ops->params(l, p);
        for (int c = 0; c < shape.c; c++)
            p[P_GAMMA].value[c] = 0.5f + 0.25f * c, p[P_BETA].value[c] = 0.1f * c - 0.3f;
    }
}

static void bn_case_close(BnCase *k)
{
    k->whole.ops->destroy(&k->whole);
    for (int r = 0; r < k->ranks; r++)
        k->part[r].ops->destroy(&k->part[r]);
    tensor_free(&k->x), tensor_free(&k->dx), tensor_free(&k->dy);
    pthread_barrier_destroy(&k->w.bar);
}

/* New input (around `offset`, spread ~1) and output gradient for step s. */
static void bn_case_fill(BnCase *k, int s, double offset)
{
    size_t n = (size_t)k->batch * k->per;
    for (size_t i = 0; i < n; i++) {
        k->x.data[i] = (float)(offset + sin(0.37 * (double)i + s) + 0.01 * (double)(i % 7));
        k->dy.data[i] = (float)cos(0.11 * (double)i * (s + 1));
    }
}

/* Rank r's forward and backward on its share (views into the whole tensors; dx into its own rows of k->dx). */
static void bn_rank_step(int r, void *ctx)
{
    BnCase *k = ctx;
    Layer *l = &k->part[r];
    int lo, hi;
    share(k->batch, r, k->ranks, &lo, &hi);
    Tensor x = k->x, dx = k->dx;
    x.n = dx.n = hi - lo;
    x.data += (size_t)lo * k->per, dx.data += (size_t)lo * k->per;
    l->ops->forward(l, &x, k->train);
    memcpy(l->dy.data, k->dy.data + (size_t)lo * k->per, (size_t)(hi - lo) * k->per * sizeof(float));
    l->ops->backward(l, &x, &dx);
}

/* Synchronized: every rank's share of y and dx is the whole batch's, the ranks' dgamma and dbeta add up to the
 * whole batch's, and every rank's moving statistics are the whole batch's; three steps, so that the sums are
 * taken around a moving mean that is no longer 0, on data whose mean is `offset`. */
static void check_sync(const char *args, Shape shape, int batch, int ranks, double offset)
{
    BnCase k;
    Tensor y;
    bn_case_open(&k, args, shape, batch, ranks);
    size_t n = (size_t)batch * k.per, C = (size_t)shape.c;
    cr_assert(tensor_alloc(&y, batch, shape.c, shape.rank == 1 ? 1 : shape.h, shape.rank == 1 ? 1 : shape.w) == 0);
    float *dx_whole = malloc(n * sizeof *dx_whole);
    for (int s = 0; s < 3; s++) {
        Param pw[LAYER_MAX_PARAMS], pr[LAYER_MAX_PARAMS];
        float dgamma[64] = {0}, dbeta[64] = {0};
        bn_case_fill(&k, s, offset);
        k.train = 1;
        k.whole.ops->params(&k.whole, pw);
        memset(pw[P_GAMMA].grad, 0, C * sizeof(float)), memset(pw[P_BETA].grad, 0, C * sizeof(float));
        k.whole.ops->forward(&k.whole, &k.x, 1);
        memcpy(y.data, k.whole.y.data, n * sizeof(float));
        memcpy(k.whole.dy.data, k.dy.data, n * sizeof(float));
        k.whole.ops->backward(&k.whole, &k.x, &k.dx);
        memcpy(dx_whole, k.dx.data, n * sizeof(float));
        memset(k.dx.data, 0, n * sizeof(float));
        for (int r = 0; r < ranks; r++) {
            k.part[r].ops->params(&k.part[r], pr);
            memset(pr[P_GAMMA].grad, 0, C * sizeof(float)), memset(pr[P_BETA].grad, 0, C * sizeof(float));
        }
        run_ranks(ranks, bn_rank_step, &k);
        for (int r = 0; r < ranks; r++) {
            int lo, hi;
            share(batch, r, ranks, &lo, &hi);
            k.part[r].ops->params(&k.part[r], pr);
            /* The statistics agree to double rounding; a mean or rstd one float ulp apart moves y and dx by an
             * ulp of their scale (|y| ~ 2, |dx| ~ 3). */
            expect_close(k.part[r].y.data, y.data + (size_t)lo * k.per, (size_t)(hi - lo) * k.per, 1e-5, 1e-5, "y");
            expect_close(pr[P_MEAN].value, pw[P_MEAN].value, C, 1e-6, 1e-6 * (1 + offset), "moving_mean");
            expect_close(pr[P_VAR].value, pw[P_VAR].value, C, 1e-5, 1e-7, "moving_var");
            for (size_t c = 0; c < C; c++)
                dgamma[c] += pr[P_GAMMA].grad[c], dbeta[c] += pr[P_BETA].grad[c];
        }
        expect_close(k.dx.data, dx_whole, n, 1e-5, 1e-5, "dx");
        expect_close(dgamma, pw[P_GAMMA].grad, C, 1e-5, 1e-5, "dgamma");
        expect_close(dbeta, pw[P_BETA].grad, C, 1e-5, 1e-5, "dbeta");
    }
    for (int r = 0; r < ranks; r++) /* 3 steps: statistics sums and gradient sums in each */
        cr_expect_eq(k.w.comm[r].calls, 6, "rank %d summed %lld times", r, k.w.comm[r].calls);
    free(dx_whole);
    tensor_free(&y);
    bn_case_close(&k);
}

/* Also tests/test_dist_mpi.c's suite: each of those runs mpirun a few times for seconds, and the timeout only
 * catches a hang of the test itself. */
TestSuite(dist, .timeout = 400);

Test(dist, sync_batchnorm_nchw_is_the_whole_batch) { check_sync("", (Shape){3, 3, 5, 5}, 10, 3, 0.0); }
Test(dist, sync_batchnorm_features_is_the_whole_batch) { check_sync("", (Shape){1, 7, 1, 1}, 9, 2, 0.0); }
Test(dist, sync_batchnorm_far_from_zero) { check_sync("", (Shape){3, 2, 4, 4}, 8, 3, 1000.0); }
/* 2 images over 3 ranks: rank 2's share is empty, and it still takes part in every sum. */
Test(dist, sync_batchnorm_with_an_empty_share) { check_sync("", (Shape){3, 2, 3, 3}, 2, 3, 0.5); }

/* Rank r's LayerOps.sync (collective). */
static void bn_rank_sync(int r, void *ctx)
{
    BnCase *k = ctx;
    k->part[r].ops->sync(&k->part[r]);
}

/* sync=false: each rank normalises its share alone, exactly as a layer that only ever sees that share (the same
 * bits, dgamma and dbeta too); after LayerOps.sync every rank holds the mean of the ranks' moving statistics. A
 * rank with an empty share keeps its moving statistics as they were (nothing to fold in). */
static void check_local(Shape shape, int batch, int ranks)
{
    BnCase k;
    char err[256];
    bn_case_open(&k, "sync=false", shape, batch, ranks);
    size_t C = (size_t)shape.c;
    double mean[64] = {0}, var[64] = {0};
    bn_case_fill(&k, 0, 0.25);
    k.train = 1;
    run_ranks(ranks, bn_rank_step, &k);
    for (int r = 0; r < ranks; r++) {
        int lo, hi;
        Layer alone;
        Param pa[LAYER_MAX_PARAMS], pr[LAYER_MAX_PARAMS];
        share(batch, r, ranks, &lo, &hi);
        cr_assert(gradcheck_setup(&alone, &k.spec, shape, batch, NULL, 1, err, sizeof err) == 0, "%s", err);
        alone.ops->params(&alone, pa);
        k.part[r].ops->params(&k.part[r], pr);
        memcpy(pa[P_GAMMA].value, pr[P_GAMMA].value, C * sizeof(float));
        memcpy(pa[P_BETA].value, pr[P_BETA].value, C * sizeof(float));
        Tensor x = k.x, dx = k.dx;
        x.n = dx.n = hi - lo, x.data += (size_t)lo * k.per;
        dx.data = calloc((size_t)batch * k.per, sizeof(float));
        alone.ops->forward(&alone, &x, 1);
        memcpy(alone.dy.data, k.dy.data + (size_t)lo * k.per, (size_t)x.n * k.per * sizeof(float));
        alone.ops->backward(&alone, &x, &dx);
        cr_expect_arr_eq(k.part[r].y.data, alone.y.data, (size_t)x.n * k.per * sizeof(float), "rank %d's y", r);
        cr_expect_arr_eq(k.dx.data + (size_t)lo * k.per, dx.data, (size_t)x.n * k.per * sizeof(float), "rank %d's dx",
                         r);
        cr_expect_arr_eq(pr[P_GAMMA].grad, pa[P_GAMMA].grad, C * sizeof(float), "rank %d's dgamma", r);
        for (size_t c = 0; c < C; c++)
            mean[c] += pa[P_MEAN].value[c], var[c] += pa[P_VAR].value[c];
        free(dx.data);
        alone.ops->destroy(&alone);
    }
    for (int r = 0; r < ranks; r++)
        cr_expect_eq(k.w.comm[r].calls, 0, "sync=false summed in a training step");
    run_ranks(ranks, bn_rank_sync, &k);
    for (int r = 0; r < ranks; r++) {
        Param pr[LAYER_MAX_PARAMS];
        float m[64], v[64];
        k.part[r].ops->params(&k.part[r], pr);
        for (size_t c = 0; c < C; c++)
            m[c] = (float)(mean[c] / ranks), v[c] = (float)(var[c] / ranks);
        cr_expect_arr_eq(pr[P_MEAN].value, m, C * sizeof(float), "rank %d's moving mean", r);
        cr_expect_arr_eq(pr[P_VAR].value, v, C * sizeof(float), "rank %d's moving variance", r);
    }
    bn_case_close(&k);
}

Test(dist, local_batchnorm_nchw) { check_local((Shape){3, 3, 4, 4}, 10, 3); }
Test(dist, local_batchnorm_features_with_an_empty_share) { check_local((Shape){1, 5, 1, 1}, 2, 3); }

/* ---------------------------------------------------------------- dropout's stream */

typedef struct DropCase {
    LayerSpec spec;
    Layer part[MAX_RANKS];
    Rng rng[MAX_RANKS];
    Tensor x;
    int batch, ranks;
    size_t per;
    World w;
} DropCase;

static void drop_rank(int r, void *ctx)
{
    DropCase *k = ctx;
    int lo, hi;
    share(k->batch, r, k->ranks, &lo, &hi);
    Tensor x = k->x;
    x.n = hi - lo, x.data += (size_t)lo * k->per;
    k->w.comm[r].first = lo, k->w.comm[r].total = k->batch; /* what shard_slice tells the layers */
    k->part[r].ops->forward(&k->part[r], &x, 1);
}

/* Each rank's share of the batch gets the mask one process draws for those images, and every rank's stream ends
 * where the one process's does (two steps: the second starts from there). */
Test(dist, dropout_masks_follow_the_single_stream)
{
    DropCase k = {.batch = 7, .ranks = 3, .per = 20};
    Layer whole;
    Rng one;
    char err[256];
    k.spec = test_spec(LK_DROPOUT, "drop", "p=0.5");
    Shape in = {1, 20, 1, 1};
    rng_seed(&one, 42);
    cr_assert(gradcheck_setup(&whole, &k.spec, in, k.batch, &one, 1, err, sizeof err) == 0, "%s", err);
    world_init(&k.w, k.ranks);
    for (int r = 0; r < k.ranks; r++) {
        rng_seed(&k.rng[r], 42);
        cr_assert(gradcheck_setup(&k.part[r], &k.spec, in, k.batch, &k.rng[r], 1, err, sizeof err) == 0, "%s", err);
        k.part[r].comm = &k.w.comm[r];
    }
    cr_assert(tensor_alloc(&k.x, k.batch, 20, 1, 1) == 0);
    for (size_t i = 0; i < (size_t)k.batch * k.per; i++)
        k.x.data[i] = 1.0f + (float)i;
    for (int step = 0; step < 2; step++) {
        whole.ops->forward(&whole, &k.x, 1);
        run_ranks(k.ranks, drop_rank, &k);
        for (int r = 0; r < k.ranks; r++) {
            int lo, hi;
            share(k.batch, r, k.ranks, &lo, &hi);
            cr_expect_arr_eq(k.part[r].y.data, whole.y.data + (size_t)lo * k.per,
                             (size_t)(hi - lo) * k.per * sizeof(float), "step %d, rank %d's output", step, r);
            cr_expect_arr_eq(k.rng[r].s, one.s, sizeof one.s, "step %d, rank %d's stream", step, r);
        }
    }
    whole.ops->destroy(&whole);
    for (int r = 0; r < k.ranks; r++)
        k.part[r].ops->destroy(&k.part[r]);
    tensor_free(&k.x);
    pthread_barrier_destroy(&k.w.bar);
}

/* ---------------------------------------------------------------- a whole network */

#define NET_MAX_BATCH 11
#define NET_RANKS 3
#define NET_LAYERS 12

/* conv -> batchnorm -> relu -> residual { conv -> batchnorm } -> sigmoid -> maxpool -> avgpool -> tanh -> flatten ->
 * dense -> batchnorm -> dense: batchnorm layers at the top level and inside a residual body, and every other
 * kind but dropout (its own test above), so that a rank with no images runs each of them over zero images. The
 * maxpool (3x3, stride 1: 6x6 -> 4x4) takes the general loops, the avgpool (2x2: 4x4 -> 2x2) the 2x2 path. */
static void net_specs(LayerSpec *s, LayerSpec *body)
{
    body[0] = test_spec(LK_CONV2D, "r_conv", "out=4 kernel=3 padding=1");
    body[1] = test_spec(LK_BATCHNORM, "r_bn", "");
    s[0] = test_spec(LK_CONV2D, "conv", "out=4 kernel=3 padding=1");
    s[1] = test_spec(LK_BATCHNORM, "bn1", "");
    s[2] = test_spec(LK_RELU, "relu1", "");
    s[3] = test_spec(LK_RESIDUAL, "res", "");
    s[3].body = body, s[3].nbody = 2;
    s[4] = test_spec(LK_SIGMOID, "sig", "");
    s[5] = test_spec(LK_MAXPOOL, "max", "kernel=3 stride=1");
    s[6] = test_spec(LK_AVGPOOL, "avg", "kernel=2");
    s[7] = test_spec(LK_TANH, "tanh", "");
    s[8] = test_spec(LK_FLATTEN, "flat", "");
    s[9] = test_spec(LK_DENSE, "fc1", "out=8");
    s[10] = test_spec(LK_BATCHNORM, "bn2", "");
    s[11] = test_spec(LK_DENSE, "fc2", "out=5");
}

/* The gradients pass back through batchnorms, which subtract channel sums taken in another order on each side,
 * so their errors scale with the tensor's largest gradient, not with each value: up to 3.4e-6 of it measured
 * (r_bn/beta and fc1/weight at 9 images with the sanitizer build's plain C kernels; 1.3e-6 with AVX-512). */
#define NET_GRAD_TOL 2e-5

static double max_abs(const float *a, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i]));
    return m;
}

/* conv, r_conv and fc1 feed a batchnorm, whose mean subtraction cancels their bias: its true gradient is exactly
 * zero, so both sides return rounding noise there, which no relative tolerance holds (fc1/bias[6]: -4.8e-7
 * against 8.9e-7 at 9 images; differences up to 5.3e-6 with the plain C kernels, where the largest gradient of
 * the network is 1.3). Held to 2e-5 absolute, as tests/test_reference.c holds LeNet-BN's to 1e-5. */
#define NET_ATOL_PRE_BN 2e-5

static int feeds_batchnorm(const NetParam *p)
{
    return strcmp(p->p.name, "bias") == 0 && strcmp(p->layer->name, "fc2") != 0;
}

typedef struct NetCase {
    int batch;
    Net *part[NET_RANKS];
    Tensor x[NET_RANKS], dl[NET_RANKS];
    int labels[NET_MAX_BATCH];
    Tensor xall;
    double loss[NET_RANKS];
    World w;
} NetCase;

static void net_rank(int r, void *ctx)
{
    NetCase *k = ctx;
    int lo, hi;
    share(k->batch, r, NET_RANKS, &lo, &hi);
    k->x[r].n = hi - lo;
    memcpy(k->x[r].data, k->xall.data + (size_t)lo * 36, (size_t)(hi - lo) * 36 * sizeof(float));
    net_zero_grad(k->part[r]);
    const Tensor *out = net_forward(k->part[r], &k->x[r], 1);
    cr_assert(out, "rank %d's forward refused %d images", r, hi - lo);
    k->dl[r].n = hi - lo;
    k->loss[r] = loss_cross_entropy_share(out, k->labels + lo, k->batch, &k->dl[r], NULL);
    net_backward(k->part[r], &k->x[r], &k->dl[r], NULL);
}

/* The ranks' gradients (each on its share, the loss divided by the whole batch) add up to the one-process
 * gradient of the whole batch, and the batchnorm statistics, inside the residual body too, are the whole batch's:
 * net_set_comm reaches every layer. */
static void check_network(int batch)
{
    LayerSpec s[NET_LAYERS], body[2], s2[NET_LAYERS], body2[2];
    Shape in = {3, 1, 6, 6}, out;
    char err[256];
    NetCase k;
    Net *whole;
    NetParam *pw, *pr[NET_RANKS];
    Tensor dl;
    memset(&k, 0, sizeof k);
    k.batch = batch;
    net_specs(s, body);
    cr_assert(gradcheck_shapes(s, NET_LAYERS, in, &out, err, sizeof err) == 0, "%s", err);
    cr_assert(net_create(s, NET_LAYERS, in, 7, &whole, err, sizeof err) == 0, "%s", err);
    cr_assert(net_resize(whole, batch, err, sizeof err) == 0, "%s", err);
    world_init(&k.w, NET_RANKS);
    net_specs(s2, body2);
    cr_assert(gradcheck_shapes(s2, NET_LAYERS, in, &out, err, sizeof err) == 0, "%s", err);
    for (int r = 0; r < NET_RANKS; r++) {
        cr_assert(net_create(s2, NET_LAYERS, in, 7, &k.part[r], err, sizeof err) == 0, "%s", err);
        cr_assert(net_resize(k.part[r], 4, err, sizeof err) == 0, "%s", err);
        net_set_comm(k.part[r], &k.w.comm[r]);
        cr_assert(tensor_alloc(&k.x[r], 4, 1, 6, 6) == 0 && tensor_alloc(&k.dl[r], 4, 5, 1, 1) == 0);
    }
    cr_assert(tensor_alloc(&k.xall, batch, 1, 6, 6) == 0 && tensor_alloc(&dl, batch, 5, 1, 1) == 0);
    gradcheck_fill_distinct(&k.xall, 3);
    for (int i = 0; i < batch; i++)
        k.labels[i] = (i * 3) % 5;
    net_zero_grad(whole);
    float whole_loss = loss_cross_entropy(net_forward(whole, &k.xall, 1), k.labels, &dl, NULL);
    net_backward(whole, &k.xall, &dl, NULL);
    run_ranks(NET_RANKS, net_rank, &k);
    cr_expect(fabs((k.loss[0] + k.loss[1] + k.loss[2]) / batch - whole_loss) <= 1e-6 * fabs(whole_loss),
              "loss %.9g against %.9g", (k.loss[0] + k.loss[1] + k.loss[2]) / batch, whole_loss);
    int n = net_params(whole, &pw);
    for (int r = 0; r < NET_RANKS; r++)
        cr_assert_eq(net_params(k.part[r], &pr[r]), n);
    for (int i = 0; i < n; i++) {
        const Param *p = &pw[i].p;
        float *sum = calloc(p->size, sizeof *sum);
        for (int r = 0; r < NET_RANKS; r++)
            for (size_t j = 0; p->grad && j < p->size; j++)
                sum[j] += pr[r][i].p.grad[j];
        char what[SPEC_NAME_MAX + 32];
        snprintf(what, sizeof what, "%s/%s", pw[i].layer->name, p->name);
        if (p->grad)
            expect_close(sum, p->grad, p->size, 1e-4,
                         feeds_batchnorm(&pw[i]) ? NET_ATOL_PRE_BN : NET_GRAD_TOL * max_abs(p->grad, p->size), what);
        else
            for (int r = 0; r < NET_RANKS; r++)
                expect_close(pr[r][i].p.value, p->value, p->size, 1e-5, 1e-6, what);
        free(sum);
    }
    free(pw);
    for (int r = 0; r < NET_RANKS; r++) {
        free(pr[r]);
        net_free(k.part[r]);
        tensor_free(&k.x[r]), tensor_free(&k.dl[r]);
    }
    net_free(whole);
    tensor_free(&k.xall), tensor_free(&dl);
    pthread_barrier_destroy(&k.w.bar);
}

/* 11 images over 3 ranks: 4, 4 and 3. */
Test(dist, network_gradients_add_up_to_the_whole_batch) { check_network(11); }
/* 9 images over 3 ranks: equal shares of 3. */
Test(dist, network_with_equal_shares) { check_network(9); }
/* 2 images over 3 ranks: 1, 1 and 0, so rank 2 runs every layer kind forward and backward over no images (and
 * still joins every batchnorm's sums, or the others would wait for it). */
Test(dist, network_with_an_empty_share) { check_network(2); }

/* The shares' loss gradients are the whole batch's, row for row and bit for bit; their losses add up to it. */
Test(dist, loss_shares_are_rows_of_the_whole)
{
    Tensor z, dz, zs, dzs;
    int labels[6] = {0, 3, 1, 2, 2, 0}, correct = 0, c;
    cr_assert(tensor_alloc(&z, 6, 4, 1, 1) == 0 && tensor_alloc(&dz, 6, 4, 1, 1) == 0);
    for (int i = 0; i < 24; i++)
        z.data[i] = (float)sin(i * 1.7) * 3.0f;
    int whole_correct;
    float whole = loss_cross_entropy(&z, labels, &dz, &whole_correct);
    double sum = 0.0;
    for (int lo = 0; lo < 6; lo += 3) {
        zs = z, dzs = dz;
        zs.n = 3, zs.data += lo * 4;
        cr_assert(tensor_alloc(&dzs, 3, 4, 1, 1) == 0);
        sum += loss_cross_entropy_share(&zs, labels + lo, 6, &dzs, &c);
        correct += c;
        cr_expect_arr_eq(dzs.data, dz.data + lo * 4, 12 * sizeof(float), "rows %d..%d", lo, lo + 2);
        tensor_free(&dzs);
    }
    zs.n = 0;
    cr_expect_eq(loss_cross_entropy_share(&zs, labels, 6, &dzs, &c), 0.0, "an empty share's loss");
    cr_expect_eq(c, 0);
    cr_expect(fabs(sum / 6 - whole) <= 1e-6 * fabs(whole), "%.9g against %.9g", sum / 6, whole);
    cr_expect_eq(correct, whole_correct);
    tensor_free(&z), tensor_free(&dz);
}

/* ---------------------------------------------------------------- the fused gradient buffer */

/* The gradients go through the fused buffer and come back unchanged (one rank sums nothing), every trainable
 * value placed once: with a size-1 Dist, a backward with the shard hooked in gives the plain backward's bits.
 * The buckets tile the buffer, at most SHARD_MAX_BUCKETS of them, every one sent. */
Test(dist, fused_buffer_round_trips_every_gradient)
{
    LayerSpec s[NET_LAYERS], body[2];
    Shape in = {3, 1, 6, 6}, out;
    char err[256];
    Net *net;
    NetParam *ps;
    Dist *d;
    Shard *sh;
    Tensor x, dl;
    int labels[5] = {0, 1, 2, 3, 4};
    net_specs(s, body);
    cr_assert(gradcheck_shapes(s, NET_LAYERS, in, &out, err, sizeof err) == 0, "%s", err);
    cr_assert(net_create(s, NET_LAYERS, in, 3, &net, err, sizeof err) == 0, "%s", err);
    cr_assert(net_resize(net, 5, err, sizeof err) == 0, "%s", err);
    cr_assert(tensor_alloc(&x, 5, 1, 6, 6) == 0 && tensor_alloc(&dl, 5, 5, 1, 1) == 0);
    gradcheck_fill_distinct(&x, 9);
    int n = net_params(net, &ps);
    cr_assert(n > 0);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += ps[i].p.grad ? ps[i].p.size : 0;
    /* the plain backward */
    net_zero_grad(net);
    loss_cross_entropy(net_forward(net, &x, 1), labels, &dl, NULL);
    net_backward(net, &x, &dl, NULL);
    float **want = calloc((size_t)n, sizeof *want);
    for (int i = 0; i < n; i++)
        if (ps[i].p.grad) {
            want[i] = malloc(ps[i].p.size * sizeof(float));
            memcpy(want[i], ps[i].p.grad, ps[i].p.size * sizeof(float));
        }
    /* through the shard */
    cr_assert(dist_open(&d, err, sizeof err) == 0, "%s", err);
    cr_assert(shard_create(d, net, ps, n, &sh, err, sizeof err) == 0, "%s", err);
    cr_expect_eq(shard_bytes(sh), total * sizeof(float));
    cr_expect(shard_buckets(sh) >= 1 && shard_buckets(sh) <= SHARD_MAX_BUCKETS);
    net_zero_grad(net);
    loss_cross_entropy(net_forward(net, &x, 1), labels, &dl, NULL);
    double sc[SHARD_NSCALARS] = {1.5, 2, 0, 0}, sums[SHARD_NSCALARS];
    shard_begin(sh, sc);
    net_backward(net, &x, &dl, NULL);
    for (int i = 0; i < n; i++) /* what the backward left is overwritten by what comes back from the buffer */
        if (ps[i].p.grad)
            memset(ps[i].p.grad, 0xff, ps[i].p.size * sizeof(float));
    shard_end(sh, sums);
    cr_expect_arr_eq(sums, sc, sizeof sc);
    for (int i = 0; i < n; i++)
        if (ps[i].p.grad)
            cr_expect_arr_eq(ps[i].p.grad, want[i], ps[i].p.size * sizeof(float), "%s/%s", ps[i].layer->name,
                             ps[i].p.name);
    shard_free(sh);
    cr_expect(!net->after_backward, "shard_free leaves the backward hooked");
    dist_close(d);
    for (int i = 0; i < n; i++)
        free(want[i]);
    free(want), free(ps);
    net_free(net);
    tensor_free(&x), tensor_free(&dl);
}
