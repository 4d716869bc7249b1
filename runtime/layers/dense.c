/* dense: fully connected layer y = x W^T + b over a flat N x in input.
 * W is [out, in] (PyTorch's order); parameters live in one block [W | b], their gradients in another.
 * The products are split across the runtime's threads (threads.h) in fixed blocks of rows or units: forward and
 * dx by rows of the batch, dw and db by output units, so no gradient needs a reduction. The forward is conv2d's
 * register-blocked kernel (a 1x1 convolution whose positions are the batch rows), the backward dense_kernels.c's;
 * both where the build has AVX-512 or AVX2 (simd.h), single-threaded sgemm calls elsewhere (the kernels' plain-C
 * forms run at a quarter of OpenBLAS's AVX2 speed). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../layer.h"
#include "../threads.h"
#include "common.h"
#include "conv_kernels.h"
#include "dense_kernels.h"

/* dense(out, bias=true, init="default") */
enum { OUT, BIAS, INIT };
static const ArgSpec dense_args[] = {ARG_INT("out", 1, 1, 65536, 0), ARG_BOOL("bias", 1),
                                     ARG_STR("init", "default", NULL)};

/* init's forms take a number ("normal(0.01)"), which a list of choices cannot say. */
static int dense_configure(LayerSpec *s, int *bad, char *err, size_t errlen)
{
    return layer_init_configure(s, INIT, bad, err, errlen);
}

static int dense_out_shape(const LayerSpec *s, Shape in, Shape *out, long long *np, long long *nb, char *err,
                           size_t errlen)
{
    char buf[64];
    if (in.rank != 1) {
        snprintf(err, errlen, "dense needs a flat input, but its input is %s; add 'flatten' before it",
                 shape_str(in, buf, sizeof buf));
        return -1;
    }
    *out = (Shape){1, spec_int(s, OUT), 1, 1};
    *np = (long long)spec_int(s, OUT) * in.c + (spec_int(s, BIAS) ? spec_int(s, OUT) : 0);
    *nb = 0;
    return 0;
}

/* Rows of the batch (forward, dx) and output units (dw, db) per product. The products are the same whatever the
 * thread count, and threads take whole blocks, so results do not depend on the count either. */
#define DENSE_BLOCK 32

/* The rows of block k of a batch of n (the last may be short). */
static inline int block_rows(int n, int k)
{
    return n - k * DENSE_BLOCK < DENSE_BLOCK ? n - k * DENSE_BLOCK : DENSE_BLOCK;
}

typedef struct DenseState {
    float *w, *b;   /* (out, in), (out) or NULL; b follows w in one allocation */
    float *dw, *db; /* the same layout */
    int in, out;
    ConvGeom g;     /* the forward as a 1x1 convolution over DENSE_BLOCK positions (rows) */
    int *off;       /* (in): input unit c's row in a transposed block, c * DENSE_BLOCK */
    float *xt, *yt; /* per block of rows: x^T (in, DENSE_BLOCK) and y^T (out, rows), or NULL before a resize */
    int nxt;        /* copies of the transposed blocks in xt: one per thread as the first trained layer, else 1 */
    size_t xt_size; /* floats in one copy */
} DenseState;

/* init="default" is PyTorch's nn.Linear: W ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform_ with a = sqrt(5)), then
 * b ~ U(-1/sqrt(in), 1/sqrt(in)), each drawn in memory order from init; the other schemes are layer_init_params's. */
static int dense_create(Layer *l, Rng *init, char *err, size_t errlen)
{
    const LayerSpec *s = l->spec;
    DenseState *st;
    LayerInit how;
    size_t nw, nb;
    if (layer_init_parse(s->arg[INIT].str, &how, err, errlen) < 0) /* configure lets no such spec through */
        return -1;
    if (spec_int(s, OUT) < 1) {
        snprintf(err, errlen, "dense needs out >= 1, got %d", spec_int(s, OUT));
        return -1;
    }
    if (!(st = l->state = calloc(1, sizeof *st))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    st->in = (int)shape_size(s->in), st->out = spec_int(s, OUT);
    nw = (size_t)st->out * st->in, nb = spec_int(s, BIAS) ? (size_t)st->out : 0;
    if (!(st->w = layer_alloc_floats(nw + nb, "the dense weights", err, errlen)) ||
        !(st->dw = layer_alloc_floats(nw + nb, "the dense gradients", err, errlen)))
        return -1;
    st->b = nb ? st->w + nw : NULL;
    st->db = nb ? st->dw + nw : NULL;
    st->g = (ConvGeom){.C = st->in, .H = 1, .W = DENSE_BLOCK, .O = st->out, .K = 1, .S = 1, .OH = 1, .OW = DENSE_BLOCK};
    convk_geom(&st->g);
    if (!(st->off = malloc((size_t)st->in * sizeof *st->off))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    convk_offsets(&st->g, st->off);
    layer_init_params(&how, st->w, nw, st->b, nb, st->in, st->out, init);
    return 0;
}

#if DENSEK_AVAILABLE
/* Block k of the batch is its `rows` <= DENSE_BLOCK rows from row k * DENSE_BLOCK of x (N, C): y (N, OC) = x w^T + b
 * on those rows is computed as y^T = w . x^T + b by convk_forward with the rows as positions. OpenBLAS ran these
 * products (32 to 128 rows by a few hundred) at 90-110 GFLOP/s, the conv kernel at 260 on this machine's AVX-512.
 * This is the first half: block k of x transposed into xt, a copy of st->xt (its DENSE_BLOCK row stride is what
 * st->off says). */
static void transpose_block(const DenseState *st, float *xt, const float *x, int k, int rows)
{
    int C = st->in;
    convk_transpose(xt + (size_t)k * C * DENSE_BLOCK, DENSE_BLOCK, x + (size_t)k * DENSE_BLOCK * C, C, rows, C);
}

/* The second half, for output units [u0, u1) of block k: their rows of y^T (OC, rows) from xt, post applied
 * (eval-mode fusion, one unit per row; its normalisation only with u0 = 0), then transposed into their columns of
 * y. convk_forward sums every value in the same order whatever units it is given. */
static void block_units(const DenseState *st, const LayerPost *post, float *y, const float *xt, int k, int rows,
                        int u0, int u1)
{
    int C = st->in, OC = st->out;
    float *yt = st->yt + (size_t)k * OC * DENSE_BLOCK + (size_t)u0 * rows;
    ConvGeom g = st->g;
    g.O = u1 - u0, g.OW = g.NP = rows;
    convk_forward(&g, yt, xt + (size_t)k * C * DENSE_BLOCK, st->off, st->w + (size_t)u0 * C,
                  st->b ? st->b + u0 : NULL);
    if (post)
        layer_post_apply(post, yt, 1, u1 - u0, rows);
    convk_transpose(y + (size_t)k * DENSE_BLOCK * OC + u0, OC, yt, rows, u1 - u0, rows);
}

/* Block k, every unit. */
static void dense_forward_block(const DenseState *st, const LayerPost *post, float *y, const float *x, int k,
                                int rows)
{
    transpose_block(st, st->xt, x, k, rows);
    block_units(st, post, y, st->xt, k, rows, 0, st->out);
}
#else
/* The same rows with sgemm: y = b, then y += x w^T. */
static void dense_forward_block(const DenseState *st, const LayerPost *post, float *y, const float *x, int k,
                                int rows)
{
    int C = st->in, OC = st->out;
    size_t n0 = (size_t)k * DENSE_BLOCK;
    float *yr = y + n0 * OC;
    if (st->b)
        for (int n = 0; n < rows; n++)
            memcpy(yr + (size_t)n * OC, st->b, (size_t)OC * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, OC, C, 1.0f, x + n0 * C, C, st->w, C,
                st->b ? 1.0f : 0.0f, yr, OC);
    if (post)
        layer_post_apply(post, yr, rows, OC, 1);
}
#endif

/* Units per block of bias_grad's sums (doubles on the stack). */
#define DENSE_DB_BLOCK 64

/* db (OU) += column sums of dy (N, OC) from its first unit, each in double, row after row. A block of units' sums
 * is advanced a row at a time, which vectorises across the units; a unit's sum at a time over the rows was one
 * chain of dependent additions (4 cycles each): 19 us of mlp_sigmoid_bn's 234 us step, 28 of LeNet-BN's. Each sum
 * gets the same additions in the same order either way. */
static void bias_grad(float *db, const float *dy, int N, int OU, int OC)
{
    for (int o0 = 0; o0 < OU; o0 += DENSE_DB_BLOCK) {
        int ob = OU - o0 < DENSE_DB_BLOCK ? OU - o0 : DENSE_DB_BLOCK;
        double sum[DENSE_DB_BLOCK] = {0};
        for (int n = 0; n < N; n++) {
            const float *r = dy + (size_t)n * OC + o0;
            for (int j = 0; j < ob; j++)
                sum[j] += r[j];
        }
        for (int j = 0; j < ob; j++)
            db[o0 + j] += (float)sum[j];
    }
}

/* OU output units of a layer with OC: dy is (N, OC) from its first unit, x is (N, C):
 * dw (OU, C) += dy^T x; db (OU) += column sums of dy (when not NULL). */
static void dense_weight_grad(float *dw, float *db, const float *dy, const float *x, int N, int C, int OU, int OC)
{
#if DENSEK_AVAILABLE
    densek_gemm(dw, C, dy, 1, OC, x, C, OU, C, N, 1);
#else
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OU, C, N, 1.0f, dy, OC, x, C, 1.0f, dw, C);
#endif
    if (db)
        bias_grad(db, dy, N, OU, OC);
}

/* rows of the input gradient: dx (rows, C) = dy (rows, OC) w (OC, C). */
static void dense_input_grad(float *dx, const float *dy, const float *w, int rows, int C, int OC)
{
#if DENSEK_AVAILABLE
    densek_gemm(dx, C, dy, OC, 1, w, C, rows, C, OC, 0);
#else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, C, OC, 1.0f, dy, OC, w, C, 0.0f, dx, C);
#endif
}

/* Threads for an N x C x OC product: one below 8 * RT_MIN_PARALLEL multiply-adds, where a parallel region costs
 * more than it saves. */
static int team(int N, int C, int OC)
{
    return (long long)N * C * OC >= 8 * RT_MIN_PARALLEL ? rt_threads() : 1;
}

/* Thread t of T's blocks of n items: [*lo, *hi) in items, whole DENSE_BLOCKs (the last may be short). */
static void blocks(int n, int t, int T, int *lo, int *hi)
{
    int nb = (n + DENSE_BLOCK - 1) / DENSE_BLOCK;
    rt_split(nb, t, T, lo, hi);
    *lo *= DENSE_BLOCK, *hi *= DENSE_BLOCK;
    *lo = *lo < n ? *lo : n, *hi = *hi < n ? *hi : n; /* a thread with no block gets [n, n) */
}

/* The values thread t reads as x: its copy of the net's input when the net gives copies of it for this step
 * (Layer.in_copies, each converted from the data by its own thread), else x's own. */
static const float *input_of(const Layer *l, const Tensor *x, int t)
{
    return t < l->in_ncopies && l->in_copies[0] == x->data ? l->in_copies[t] : x->data;
}

#if DENSEK_AVAILABLE
/* Thread t of T's output units [*lo, *hi) of OC, as even as they go: densek_gemm and convk_forward sum every value
 * in the same order whatever rows a call is given, and a short register block (a share of 50 rows ends in one of 2)
 * costs the same per row, both being bound by their multiply-adds. In multiples of the 6-row blocks, 100 units were
 * 54 and 46, and the optimizer, splitting the values evenly, had the first thread's last 4 rows cross cores. */
static void units(int OC, int t, int T, int *lo, int *hi) { rt_split(OC, t, T, lo, hi); }

/* The training forward of the first layer with parameters (Layer.first_trained), split by output units: each
 * thread then reads only its rows of w, which it alone updates in the optimizer and, with no dx to compute, its
 * backward reads alone too. Split by batch rows, both threads read all of w every step, and the optimizer's
 * writes must take back the lines the other core read: mlp_bn's dense_1 holds 200,704 of its 234,752 weights.
 * Each thread transposes every block of rows of x into its own copy of the blocks, then multiplies its units for
 * every block and writes its columns of y (or of the activation's y, activated: training fusion). Transposing
 * only its share into one shared copy, a thread read the other's half of it every step, and took those lines back
 * from the other core when writing them the next step: in the host's slow state (docs/runtime.md) that cost more
 * than transposing everything twice. x is the thread's copy of the net's input when the net gives copies
 * (input_of), else read whole by every thread. */
static void forward_by_units(const LayerCall *c, int t, int T)
{
    Layer *l = c->l;
    DenseState *st = l->state;
    LayerPost act = {.act = l->post.act};
    int N = c->x->n, nb = (N + DENSE_BLOCK - 1) / DENSE_BLOCK, u0, u1;
    const float *x = input_of(l, c->x, t);
    float *xt = st->xt + (size_t)t * st->xt_size;
    for (int k = 0; k < nb; k++)
        transpose_block(st, xt, x, k, block_rows(N, k));
    units(st->out, t, T, &u0, &u1);
    for (int k = 0; k < nb && u1 > u0; k++)
        block_units(st, l->post.act ? &act : NULL, layer_out(l), xt, k, block_rows(N, k), u0, u1);
}
#endif

/* Eval mode applies the layers it absorbed (l->post); training fusion (layer.h) writes the activation's y, and
 * activates it. */
static void forward_task(void *ctx, int t, int T)
{
    const LayerCall *c = ctx;
    Layer *l = c->l;
    DenseState *st = l->state;
    LayerPost act = {.act = l->post.act};
    int lo, hi;
#if DENSEK_AVAILABLE
    if (T > 1 && c->train && l->first_trained && T <= st->nxt) {
        forward_by_units(c, t, T);
        return;
    }
#endif
    blocks(c->x->n, t, T, &lo, &hi);
    for (int n0 = lo; n0 < hi; n0 += DENSE_BLOCK)
        dense_forward_block(st, !c->train ? &l->post : l->post.act ? &act : NULL, layer_out(l), c->x->data,
                            n0 / DENSE_BLOCK, block_rows(hi, n0 / DENSE_BLOCK));
}

static void dense_layer_forward(Layer *l, const Tensor *x, int train)
{
    DenseState *st = l->state;
    LayerCall c = {l, x, NULL, train};
    layer_set_count(l, x->n);
    rt_run(team(x->n, st->in, st->out), forward_task, &c);
}

/* Each thread takes its share of the output units of dw and db (dy's columns), then whole blocks of batch rows of
 * dx. densek_gemm sums every value in batch order whatever rows it is given, so its units are split evenly (units
 * above; DENSE_BLOCKs of 32 gave 100 units as 64 and 36); sgemm's products keep whole DENSE_BLOCKs. */
static void backward_task(void *ctx, int t, int T)
{
    const LayerCall *c = ctx;
    Layer *l = c->l;
    DenseState *st = l->state;
    int N = c->x->n, C = st->in, OC = st->out, lo, hi;
    if (l->post.grad) { /* the activation after it, fused (layer.h): its backward gives dy, whose every row dw reads */
        blocks(N, t, T, &lo, &hi);
        layer_fused_grad(l, lo, hi);
        rt_barrier();
    }
#if DENSEK_AVAILABLE
    units(OC, t, T, &lo, &hi);
    if (hi > lo)
        dense_weight_grad(st->dw + (size_t)lo * C, st->db ? st->db + lo : NULL, l->dy.data + lo,
                          input_of(l, c->x, t), N, C, hi - lo, OC);
#else
    blocks(OC, t, T, &lo, &hi);
    for (int o0 = lo; o0 < hi; o0 += DENSE_BLOCK) {
        int ou = hi - o0 < DENSE_BLOCK ? hi - o0 : DENSE_BLOCK;
        dense_weight_grad(st->dw + (size_t)o0 * C, st->db ? st->db + o0 : NULL, l->dy.data + o0,
                          input_of(l, c->x, t), N, C, ou, OC);
    }
#endif
    blocks(N, t, T, &lo, &hi);
    for (int n0 = lo; c->dx && n0 < hi; n0 += DENSE_BLOCK) {
        int rows = block_rows(hi, n0 / DENSE_BLOCK);
        dense_input_grad(c->dx->data + (size_t)n0 * C, l->dy.data + (size_t)n0 * OC, st->w, rows, C, OC);
    }
}

static void dense_layer_backward(Layer *l, const Tensor *x, Tensor *dx)
{
    DenseState *st = l->state;
    LayerCall c = {l, x, dx, 0};
    rt_run(team(x->n, st->in, st->out), backward_task, &c);
}

/* y, dy and the transposed blocks of the forward for `batch` rows: a copy for each of the rt_threads() threads of
 * the first trained layer (forward_by_units), one for any other. */
static int dense_resize(Layer *l, int batch, char *err, size_t errlen)
{
    DenseState *st = l->state;
    size_t nblocks = ((size_t)batch + DENSE_BLOCK - 1) / DENSE_BLOCK;
    if (l->batch == batch && l->y.data)
        return 0;
    st->nxt = l->first_trained ? rt_threads() : 1;
    st->xt_size = nblocks * st->in * DENSE_BLOCK;
    tensor_zfree(st->xt), tensor_zfree(st->yt);
    st->xt = st->yt = NULL;
    if (layer_alloc_io(l, batch, err, errlen))
        return -1;
    if (!DENSEK_AVAILABLE) /* the sgemm forward needs no transposed blocks */
        return 0;
    if (!(st->xt = layer_alloc_floats(st->xt_size * st->nxt + CONVK_SLACK, "the dense transposed input", err,
                                      errlen)) ||
        !(st->yt = layer_alloc_floats(nblocks * st->out * DENSE_BLOCK, "the dense transposed output", err, errlen))) {
        layer_free_io(l);
        return -1;
    }
    return 0;
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

/* A batchnorm after it, folded (layer.h): the folded layer always has a bias. */
static int dense_fold_affine(Layer *l, const double *scale, const double *shift, LayerSpec *folded, Param *out)
{
    Param p[LAYER_MAX_PARAMS];
    int np = dense_params(l, p);
    *folded = *l->spec;
    folded->arg[BIAS].num = 1;
    folded->given |= 1u << BIAS;
    return layer_fold_rows(&p[0], np > 1 ? p[1].value : NULL, scale, shift, out);
}

static void dense_destroy(Layer *l)
{
    DenseState *st = l->state;
    if (st)
        tensor_zfree(st->w), tensor_zfree(st->dw), tensor_zfree(st->xt), tensor_zfree(st->yt), free(st->off);
    free(st);
    l->state = NULL;
    layer_free_io(l);
}

const LayerOps dense_ops = {
    .type = "dense",
    .args = dense_args,
    .nargs = sizeof dense_args / sizeof dense_args[0],
    .configure = dense_configure,
    .out_shape = dense_out_shape,
    .create = dense_create,
    .resize = dense_resize,
    .forward = dense_layer_forward,
    .backward = dense_layer_backward,
    .params = dense_params,
    .destroy = dense_destroy,
    .takes_post = 1,
    .takes_train_post = 1,
    .fold_affine = dense_fold_affine,
    .reads_input_whole = 1,
};
