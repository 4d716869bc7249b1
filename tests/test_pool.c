/* avgpool and maxpool: finite-difference gradients (tests/gradcheck.h) over kernel, stride and padding,
 * values against direct definitions written here (avgpool counts padding as zeros in its divisor like PyTorch's
 * count_include_pad=True; maxpool never picks padding), maxpool's ties going to the first maximum, overlapping
 * windows, and the padding rule. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/layer.h"
#include "tests/gradcheck.h"
#include "tests/specs.h"

typedef struct Pool {
    int C, H, W, K, S, P;
} Pool;

static LayerSpec pool_spec(LayerKind kind, Pool p)
{
    char args[96];
    snprintf(args, sizeof args, "kernel=%d stride=%d padding=%d", p.K, p.S, p.P);
    return test_spec(kind, "pool", args);
}

static void check_grad(LayerKind kind, Pool p, int batch, uint64_t seed)
{
    char err[256];
    LayerSpec s = pool_spec(kind, p);
    Layer l;
    GradCheckResult r;
    cr_assert(gradcheck_setup(&l, &s, (Shape){3, p.C, p.H, p.W}, batch, NULL, seed, err, sizeof err) == 0, "%s", err);
    cr_expect(gradcheck_layer(&l, batch, 1, seed, 0, &r) == 0, "%s C%d %dx%d K%d S%d P%d: %s", l.ops->type, p.C, p.H,
              p.W, p.K, p.S, p.P, r.worst);
    cr_expect_eq(r.nkinks, 0, "distinct inputs, yet %d kinks", r.nkinks);
    l.ops->destroy(&l);
}

static const Pool configs[] = {
    {2, 6, 6, 2, 2, 0},  /* LeNet's */
    {3, 7, 5, 3, 2, 1},  /* odd sizes, padding */
    {2, 5, 6, 3, 1, 1},  /* overlapping windows */
    {1, 8, 7, 2, 3, 0},  /* stride over kernel: rows no window reads */
    {2, 4, 4, 4, 1, 2},  /* padding half the window */
    {5, 5, 5, 5, 5, 0},  /* global: one window over the whole plane (its own loops, 8 planes at a time) */
};

Test(pool, gradcheck_avgpool)
{
    for (size_t i = 0; i < sizeof configs / sizeof *configs; i++)
        check_grad(LK_AVGPOOL, configs[i], 2, 10 + i);
}

Test(pool, gradcheck_maxpool)
{
    for (size_t i = 0; i < sizeof configs / sizeof *configs; i++)
        check_grad(LK_MAXPOOL, configs[i], 2, 20 + i);
}

/* The direct definitions: avg = (sum of the window's real values) / K^2; max over the real values only. */
static void direct(LayerKind kind, Pool p, int N, int OH, int OW, const float *x, double *y)
{
    for (int nc = 0; nc < N * p.C; nc++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                double acc = kind == LK_AVGPOOL ? 0.0 : -INFINITY;
                for (int ki = 0; ki < p.K; ki++)
                    for (int kj = 0; kj < p.K; kj++) {
                        int ih = oh * p.S - p.P + ki, iw = ow * p.S - p.P + kj;
                        if (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W)
                            continue;
                        double v = x[((size_t)nc * p.H + ih) * p.W + iw];
                        acc = kind == LK_AVGPOOL ? acc + v : fmax(acc, v);
                    }
                y[((size_t)nc * OH + oh) * OW + ow] = kind == LK_AVGPOOL ? acc / (p.K * p.K) : acc;
            }
}

static void compare_direct(LayerKind kind, Pool p, int N, float shift)
{
    char err[256];
    LayerSpec s = pool_spec(kind, p);
    Layer l;
    Tensor x;
    cr_assert(gradcheck_setup(&l, &s, (Shape){3, p.C, p.H, p.W}, N, NULL, 1, err, sizeof err) == 0, "%s", err);
    size_t ny = (size_t)N * p.C * s.out.h * s.out.w;
    double *y = malloc(ny * sizeof *y);
    cr_assert(y && tensor_alloc(&x, N, p.C, p.H, p.W) == 0);
    gradcheck_fill_distinct(&x, 5);
    for (size_t i = 0; i < tensor_size(&x); i++)
        x.data[i] += shift;
    direct(kind, p, N, s.out.h, s.out.w, x.data, y);
    l.ops->forward(&l, &x, 0);
    for (size_t i = 0; i < ny; i++)
        cr_expect(fabs(l.y.data[i] - y[i]) <= 1e-6 * (1 + fabs(y[i])), "%s y[%zu] = %.8g, direct %.8g", l.ops->type, i,
                  (double)l.y.data[i], y[i]);
    free(y);
    tensor_free(&x);
    l.ops->destroy(&l);
}

Test(pool, avgpool_direct)
{
    for (size_t i = 0; i < sizeof configs / sizeof *configs; i++)
        compare_direct(LK_AVGPOOL, configs[i], 2, 0.0f);
}

/* All inputs negative: a padded window must still give the largest real value, never the padding's 0. */
Test(pool, maxpool_direct_padding_is_never_picked)
{
    for (size_t i = 0; i < sizeof configs / sizeof *configs; i++)
        compare_direct(LK_MAXPOOL, configs[i], 2, -10.0f);
}

/* A 3x3 window with padding 1 at the corner of a 2x2 input covers 4 real values: PyTorch divides by 9. */
Test(pool, avgpool_counts_padding_in_divisor)
{
    char err[256];
    LayerSpec s = pool_spec(LK_AVGPOOL, (Pool){1, 2, 2, 3, 2, 1});
    Layer l;
    Tensor x;
    cr_assert(gradcheck_setup(&l, &s, (Shape){3, 1, 2, 2}, 1, NULL, 1, err, sizeof err) == 0, "%s", err);
    cr_assert(s.out.h == 1 && s.out.w == 1);
    cr_assert(tensor_alloc(&x, 1, 1, 2, 2) == 0);
    for (int i = 0; i < 4; i++)
        x.data[i] = 9.0f;
    l.ops->forward(&l, &x, 1);
    cr_expect_eq(l.y.data[0], 4.0f, "(4 * 9) / 9 = 4, got %g", (double)l.y.data[0]);
    tensor_free(&x);
    l.ops->destroy(&l);
}

/* Runs maxpool on one 1 x H x W image with dy = 1 everywhere; returns dx (caller frees the tensors). */
static void maxpool_grad(Pool p, const float *v, Tensor *x, Tensor *dx, Layer *l, LayerSpec *s)
{
    char err[256];
    *s = pool_spec(LK_MAXPOOL, p);
    cr_assert(gradcheck_setup(l, s, (Shape){3, 1, p.H, p.W}, 1, NULL, 1, err, sizeof err) == 0, "%s", err);
    cr_assert(tensor_alloc(x, 1, 1, p.H, p.W) == 0 && tensor_alloc(dx, 1, 1, p.H, p.W) == 0);
    memcpy(x->data, v, sizeof(float) * p.H * p.W);
    l->ops->forward(l, x, 1);
    for (size_t i = 0; i < tensor_size(&l->y); i++)
        l->dy.data[i] = 1.0f;
    l->ops->backward(l, x, dx);
}

/* Ties: the gradient goes to the first maximum in row-major window order, as in PyTorch. */
Test(pool, maxpool_ties_go_to_the_first)
{
    float v[16] = {1, 1, 0, 5,   /* window 0: all four equal 1 -> (0,0) */
                   1, 1, 5, 0,   /* window 1: 5 at (0,3) and (1,2) -> (0,3) comes first */
                   0, 2, 3, 3,   /* window 2: 2 at (2,1) and (3,0) -> (2,1) */
                   2, 0, 3, 3};  /* window 3: all 3 -> (2,2) */
    float want[16] = {1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0};
    Tensor x, dx;
    Layer l;
    LayerSpec s;
    maxpool_grad((Pool){1, 4, 4, 2, 2, 0}, v, &x, &dx, &l, &s);
    cr_expect(l.y.data[0] == 1 && l.y.data[1] == 5 && l.y.data[2] == 2 && l.y.data[3] == 3);
    for (int i = 0; i < 16; i++)
        cr_expect_eq(dx.data[i], want[i], "dx[%d] = %g, want %g", i, (double)dx.data[i], (double)want[i]);
    tensor_free(&x), tensor_free(&dx);
    l.ops->destroy(&l);
}

/* Overlapping 2x2 windows with stride 1 over a 3x3 input whose centre is the maximum: all four windows send
 * their gradient to the centre, which accumulates 4. */
Test(pool, maxpool_overlapping_windows_accumulate)
{
    float v[9] = {1, 2, 3, 4, 9, 5, 6, 7, 8};
    Tensor x, dx;
    Layer l;
    LayerSpec s;
    maxpool_grad((Pool){1, 3, 3, 2, 1, 0}, v, &x, &dx, &l, &s);
    for (int i = 0; i < 9; i++)
        cr_expect_eq(dx.data[i], i == 4 ? 4.0f : 0.0f, "dx[%d] = %g", i, (double)dx.data[i]);
    tensor_free(&x), tensor_free(&dx);
    l.ops->destroy(&l);
}

Test(pool, padding_over_half_the_window_is_an_error)
{
    LayerKind kinds[] = {LK_AVGPOOL, LK_MAXPOOL};
    for (int k = 0; k < 2; k++) {
        /* The schema and the kind's configure rule refuse these first; the shape rule still guards specs built
         * some other way, so they are written into the arguments directly here. */
        LayerSpec s = pool_spec(kinds[k], (Pool){1, 6, 6, 2, 2, 0});
        Shape out;
        long long np, nb;
        char err[256] = "";
        s.arg[layer_arg_index(kinds[k], "padding")].num = 2;
        cr_expect(layer_out_shape(&s, (Shape){3, 1, 6, 6}, &out, &np, &nb, err, sizeof err) != 0);
        cr_expect(strstr(err, "more than half") != NULL, "message: %s", err);
        cr_expect(layer_spec_make(&s, kinds[k], "p", "kernel=2 padding=2", err, sizeof err) != 0);
        cr_expect(strstr(err, "more than half") != NULL, "configure: %s", err);
        s = pool_spec(kinds[k], (Pool){1, 6, 6, 2, 2, 0});
        s.arg[layer_arg_index(kinds[k], "kernel")].num = 0;
        cr_expect(layer_out_shape(&s, (Shape){3, 1, 6, 6}, &out, &np, &nb, err, sizeof err) != 0, "kernel 0");
        s = pool_spec(kinds[k], (Pool){1, 6, 6, 2, 2, 0});
        cr_expect(layer_out_shape(&s, (Shape){1, 36, 1, 1}, &out, &np, &nb, err, sizeof err) != 0, "flat input");
    }
}

Test(pool, lenet_shapes)
{
    LayerSpec s = pool_spec(LK_AVGPOOL, (Pool){6, 28, 28, 2, 2, 0});
    Shape out;
    long long np, nb;
    char err[128];
    cr_assert(layer_out_shape(&s, (Shape){3, 6, 28, 28}, &out, &np, &nb, err, sizeof err) == 0, "%s", err);
    cr_expect(out.c == 6 && out.h == 14 && out.w == 14 && np == 0);
    s.kind = LK_MAXPOOL;
    cr_assert(layer_out_shape(&s, (Shape){3, 16, 10, 10}, &out, &np, &nb, err, sizeof err) == 0, "%s", err);
    cr_expect(out.c == 16 && out.h == 5 && out.w == 5);
}

/* The 2x2, stride-2 window (LeNet's) has its own forward, with a vector path for rows of up to 16 outputs. Every
 * output must be PyTorch's float sum in its order, (((a0 + a1) + b0) + b1) / 4, bit for bit, for widths on both
 * sides of the vector path (odd widths leave a last column no window reads) and odd heights. */
Test(pool, avgpool_2x2_matches_the_float_sum_bit_for_bit)
{
    char err[256];
    for (int W = 2; W <= 36; W++)
        for (int H = 2; H <= 5; H++) {
            Pool p = {3, H, W, 2, 2, 0};
            LayerSpec s = pool_spec(LK_AVGPOOL, p);
            Layer l;
            Tensor x;
            cr_assert(gradcheck_setup(&l, &s, (Shape){3, 3, H, W}, 2, NULL, 1, err, sizeof err) == 0, "%s", err);
            cr_assert(tensor_alloc(&x, 2, 3, H, W) == 0);
            gradcheck_fill_distinct(&x, (uint64_t)(W * 8 + H));
            l.ops->forward(&l, &x, 0);
            int OH = H / 2, OW = W / 2;
            for (int nc = 0; nc < 6; nc++)
                for (int oh = 0; oh < OH; oh++)
                    for (int ow = 0; ow < OW; ow++) {
                        const float *a = x.data + ((size_t)nc * H + 2 * oh) * W + 2 * ow, *b = a + W;
                        float want = (((a[0] + a[1]) + b[0]) + b[1]) / 4.0f;
                        float got = l.y.data[((size_t)nc * OH + oh) * OW + ow];
                        cr_assert(memcmp(&got, &want, sizeof got) == 0, "%dx%d: y[%d][%d][%d] = %a, want %a", H, W,
                                  nc, oh, ow, (double)got, (double)want);
                    }
            tensor_free(&x);
            l.ops->destroy(&l);
        }
}

/* Global pooling (one unpadded window over the whole plane) has its own loops, eight planes at a time: every output
 * must be the float sum of its plane from 0 in row order, divided by K^2, bit for bit (avgpool_forward's order), for
 * plane counts on both sides of a multiple of eight; and its gradient dy / K^2 everywhere. */
Test(pool, avgpool_global_matches_the_row_order_float_sum_bit_for_bit)
{
    char err[256];
    static const int sizes[] = {1, 6, 14};
    for (int k = 0; k < 3; k++)
        for (int C = 1; C <= 9; C += 4) {
            int K = sizes[k];
            Pool p = {C, K, K, K, K, 0};
            LayerSpec s = pool_spec(LK_AVGPOOL, p);
            Layer l;
            Tensor x, dx;
            cr_assert(gradcheck_setup(&l, &s, (Shape){3, C, K, K}, 3, NULL, 1, err, sizeof err) == 0, "%s", err);
            cr_assert(tensor_alloc(&x, 3, C, K, K) == 0 && tensor_alloc(&dx, 3, C, K, K) == 0);
            gradcheck_fill_distinct(&x, (uint64_t)(K * 16 + C));
            l.ops->forward(&l, &x, 0);
            for (int nc = 0; nc < 3 * C; nc++) {
                float sum = 0.0f;
                for (int i = 0; i < K * K; i++)
                    sum += x.data[(size_t)nc * K * K + i];
                float want = sum / (float)(K * K), got = l.y.data[nc];
                cr_assert(memcmp(&got, &want, sizeof got) == 0, "K %d, C %d: y[%d] = %a, want %a", K, C, nc,
                          (double)got, (double)want);
                l.dy.data[nc] = (float)(nc + 1) * 0.37f;
            }
            l.ops->backward(&l, &x, &dx);
            for (size_t i = 0; i < tensor_size(&dx); i++) {
                float want = l.dy.data[i / ((size_t)K * K)] / (float)(K * K);
                cr_assert(memcmp(&dx.data[i], &want, sizeof want) == 0, "K %d, C %d: dx[%zu] = %a, want %a", K, C, i,
                          (double)dx.data[i], (double)want);
            }
            tensor_free(&x), tensor_free(&dx);
            l.ops->destroy(&l);
        }
}

/* The 2x2, stride-2 maxpool has its own forward too, with a vector path that reduces each row's pair first. On
 * values from {-inf, -1, 0, 1, 2, NaN} (ties, NaNs, all -inf windows everywhere), every output and the input its
 * gradient goes to must be those of the plain scan written here: windows in row-major order, a value replacing
 * the running maximum when larger or NaN, starting from the window's first input. Widths on both sides of the
 * vector path (rows of up to 16 outputs), odd widths and heights. */
Test(pool, maxpool_2x2_matches_the_sequential_scan)
{
    char err[256];
    const float vals[6] = {-INFINITY, -1.0f, 0.0f, 1.0f, 2.0f, NAN};
    uint32_t r = 12345;
    for (int W = 2; W <= 36; W++)
        for (int H = 2; H <= 5; H++) {
            Pool p = {3, H, W, 2, 2, 0};
            LayerSpec s = pool_spec(LK_MAXPOOL, p);
            Layer l;
            Tensor x, dx;
            int OH = H / 2, OW = W / 2;
            cr_assert(gradcheck_setup(&l, &s, (Shape){3, 3, H, W}, 2, NULL, 1, err, sizeof err) == 0, "%s", err);
            cr_assert(tensor_alloc(&x, 2, 3, H, W) == 0 && tensor_alloc(&dx, 2, 3, H, W) == 0);
            for (size_t i = 0; i < tensor_size(&x); i++)
                r = r * 1103515245u + 12345u, x.data[i] = vals[(r >> 16) % 6];
            l.ops->forward(&l, &x, 1);
            for (size_t i = 0; i < tensor_size(&l.y); i++)
                l.dy.data[i] = (float)(i + 1); /* distinct, so dx says which input each output chose */
            l.ops->backward(&l, &x, &dx);
            for (int nc = 0; nc < 6; nc++)
                for (int oh = 0; oh < OH; oh++)
                    for (int ow = 0; ow < OW; ow++) {
                        const float *plane = x.data + (size_t)nc * H * W;
                        int at = 2 * oh * W + 2 * ow, cand[4] = {at, at + 1, at + W, at + W + 1};
                        float m = plane[at];
                        for (int j = 1; j < 4; j++)
                            if (plane[cand[j]] > m || isnan(plane[cand[j]]))
                                m = plane[cand[j]], at = cand[j];
                        size_t o = ((size_t)nc * OH + oh) * OW + ow;
                        float got = l.y.data[o];
                        cr_assert(memcmp(&got, &m, sizeof got) == 0 || (isnan(got) && isnan(m)),
                                  "%dx%d: y[%d][%d][%d] = %g, want %g", H, W, nc, oh, ow, (double)got, (double)m);
                        cr_assert_eq(dx.data[(size_t)nc * H * W + at], (float)(o + 1),
                                     "%dx%d: output [%d][%d][%d] chose another input than (%d, %d)", H, W, nc, oh,
                                     ow, at / W, at % W);
                    }
            tensor_free(&x), tensor_free(&dx);
            l.ops->destroy(&l);
        }
}
