/* conv2d: finite-difference gradients (tests/gradcheck.h) over strides, paddings, kernel sizes, with and without
 * bias; forward and backward against a direct double-precision convolution written here, including a batch big
 * enough to be split into several sgemm groups; PyTorch's default initialisation; parameters; bad specs. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/layer.h"
#include "tests/gradcheck.h"
#include "tests/specs.h"

typedef struct Conv {
    int C, H, W, O, K, S, P, bias;
} Conv;

static LayerSpec conv_spec(Conv c)
{
    char args[128];
    snprintf(args, sizeof args, "out=%d kernel=%d stride=%d padding=%d bias=%s", c.O, c.K, c.S, c.P,
             c.bias ? "true" : "false");
    return test_spec(LK_CONV2D, "conv", args);
}

static void check_grad(Conv c, int batch, uint64_t seed)
{
    char err[256];
    LayerSpec s = conv_spec(c);
    Layer l;
    GradCheckResult r;
    cr_assert(gradcheck_setup(&l, &s, (Shape){3, c.C, c.H, c.W}, batch, NULL, seed, err, sizeof err) == 0, "%s", err);
    cr_expect(gradcheck_layer(&l, batch, 1, seed, 0, &r) == 0, "conv C%d %dx%d O%d K%d S%d P%d bias %d: %s", c.C, c.H,
              c.W, c.O, c.K, c.S, c.P, c.bias, r.worst);
    cr_expect_eq(r.nkinks, 0, "a convolution has no kinks, yet %d were reported", r.nkinks);
    l.ops->destroy(&l);
}

Test(conv2d, gradcheck_3x3_valid) { check_grad((Conv){1, 5, 5, 2, 3, 1, 0, 1}, 2, 1); }
Test(conv2d, gradcheck_stride2_pad1_odd) { check_grad((Conv){3, 9, 8, 4, 3, 2, 1, 1}, 3, 2); }
Test(conv2d, gradcheck_5x5_same_no_bias) { check_grad((Conv){2, 7, 7, 3, 5, 1, 2, 0}, 2, 3); }
Test(conv2d, gradcheck_1x1) { check_grad((Conv){2, 6, 5, 1, 1, 1, 0, 1}, 2, 4); }
/* Stride larger than the kernel: some inputs are read by no window, and their gradient must be written as 0. */
Test(conv2d, gradcheck_stride_over_kernel) { check_grad((Conv){2, 11, 10, 3, 2, 3, 1, 1}, 2, 5); }
Test(conv2d, gradcheck_kernel_covers_input) { check_grad((Conv){2, 4, 4, 3, 4, 1, 0, 1}, 3, 6); }
Test(conv2d, gradcheck_padding_wider_than_half) { check_grad((Conv){1, 3, 4, 2, 3, 2, 2, 1}, 2, 7); }

/* The direct definitions in double: y = b + sum w * x over each window (zero padding); dw, db, dx from dy. */
static double xat(const float *x, Conv c, int n, int ch, int ih, int iw)
{
    if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W)
        return 0.0;
    return x[((size_t)(n * c.C + ch) * c.H + ih) * c.W + iw];
}

static void direct(Conv c, int N, int OH, int OW, const float *x, const float *w, const float *b, const float *dy,
                   double *y, double *dx, double *dw, double *db)
{
    size_t nw = (size_t)c.O * c.C * c.K * c.K;
    memset(dx, 0, (size_t)N * c.C * c.H * c.W * sizeof *dx);
    memset(dw, 0, nw * sizeof *dw);
    memset(db, 0, (size_t)c.O * sizeof *db);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < c.O; o++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    size_t yi = ((size_t)(n * c.O + o) * OH + oh) * OW + ow;
                    double acc = b ? b[o] : 0.0, g = dy[yi];
                    db[o] += g;
                    for (int ch = 0; ch < c.C; ch++)
                        for (int ki = 0; ki < c.K; ki++)
                            for (int kj = 0; kj < c.K; kj++) {
                                int ih = oh * c.S - c.P + ki, iw = ow * c.S - c.P + kj;
                                size_t wi = ((size_t)(o * c.C + ch) * c.K + ki) * c.K + kj;
                                double xv = xat(x, c, n, ch, ih, iw);
                                acc += w[wi] * xv;
                                dw[wi] += g * xv;
                                if (ih >= 0 && ih < c.H && iw >= 0 && iw < c.W)
                                    dx[((size_t)(n * c.C + ch) * c.H + ih) * c.W + iw] += g * w[wi];
                            }
                    y[yi] = acc;
                }
}

static void expect_close(const char *what, const float *got, const double *want, size_t n, double tol)
{
    double scale = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(want[i]));
    for (size_t i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= tol * (1 + scale))) {
            cr_expect_fail("%s[%zu] = %.8g, direct %.8g", what, i, (double)got[i], want[i]);
            return;
        }
}

/* Float sums of up to C*K*K (forward, dx) or N*OH*OW (dw) terms of O(1): 1e-5 relative to the largest value.
 * train: the forward's mode (a convolution computes the same in both; the backward must follow either). */
static void compare_direct_mode(Conv c, int N, uint64_t seed, int train)
{
    char err[256];
    LayerSpec s = conv_spec(c);
    Layer l;
    Param p[LAYER_MAX_PARAMS];
    Tensor x, dx;
    cr_assert(gradcheck_setup(&l, &s, (Shape){3, c.C, c.H, c.W}, N, NULL, seed, err, sizeof err) == 0, "%s", err);
    int OH = s.out.h, OW = s.out.w, np = l.ops->params(&l, p);
    size_t ny = (size_t)N * c.O * OH * OW, nx = (size_t)N * c.C * c.H * c.W;
    double *y = malloc(ny * sizeof *y), *ddx = malloc(nx * sizeof *ddx), *dw = malloc(p[0].size * sizeof *dw),
           *db = malloc((size_t)c.O * sizeof *db);
    cr_assert(y && ddx && dw && db);
    cr_assert(tensor_alloc(&x, N, c.C, c.H, c.W) == 0 && tensor_alloc(&dx, N, c.C, c.H, c.W) == 0);
    cr_assert_eq(np, c.bias ? 2 : 1);
    gradcheck_fill_distinct(&x, seed + 1);
    gradcheck_fill_distinct(&l.dy, seed + 2);
    direct(c, N, OH, OW, x.data, p[0].value, c.bias ? p[1].value : NULL, l.dy.data, y, ddx, dw, db);
    l.ops->forward(&l, &x, train);
    expect_close("y", l.y.data, y, ny, 1e-5);
    l.ops->backward(&l, &x, &dx);
    expect_close("dx", dx.data, ddx, nx, 1e-5);
    expect_close("dweight", p[0].grad, dw, p[0].size, 1e-5);
    if (c.bias)
        expect_close("dbias", p[1].grad, db, (size_t)c.O, 1e-5);
    free(y), free(ddx), free(dw), free(db);
    tensor_free(&x), tensor_free(&dx);
    l.ops->destroy(&l);
}

static void compare_direct(Conv c, int N, uint64_t seed) { compare_direct_mode(c, N, seed, 1); }

Test(conv2d, direct_lenet_conv1) { compare_direct((Conv){1, 28, 28, 6, 5, 1, 2, 1}, 4, 10); }
Test(conv2d, direct_lenet_conv2) { compare_direct((Conv){6, 14, 14, 16, 5, 1, 0, 1}, 3, 11); }
Test(conv2d, direct_strided_padded_no_bias) { compare_direct((Conv){3, 10, 9, 5, 3, 2, 1, 0}, 3, 12); }
/* 120 images: eight weight-gradient chunks, the last one partial. */
Test(conv2d, direct_several_groups) { compare_direct((Conv){8, 32, 32, 2, 3, 1, 1, 1}, 120, 13); }

/* PyTorch's nn.Conv2d default: weight and bias ~ U(-1/sqrt(C*K*K), 1/sqrt(C*K*K)). */
Test(conv2d, init_matches_pytorch_default)
{
    char err[256];
    Conv c = {16, 8, 8, 64, 3, 1, 1, 1};
    LayerSpec s = conv_spec(c);
    Layer l;
    Param p[LAYER_MAX_PARAMS];
    double bound = 1.0 / sqrt(16 * 9), sum = 0, sq = 0, maxabs = 0;
    cr_assert(gradcheck_setup(&l, &s, (Shape){3, c.C, c.H, c.W}, 1, NULL, 3, err, sizeof err) == 0, "%s", err);
    cr_assert_eq(l.ops->params(&l, p), 2);
    for (size_t i = 0; i < p[0].size; i++) {
        double v = p[0].value[i];
        sum += v, sq += v * v, maxabs = fmax(maxabs, fabs(v));
    }
    cr_expect(maxabs <= bound && maxabs > 0.99 * bound, "max |w| %g, bound %g", maxabs, bound);
    cr_expect(fabs(sum / p[0].size) < 0.02 * bound, "mean %g", sum / p[0].size);
    cr_expect(fabs(sq / p[0].size / (bound * bound / 3) - 1) < 0.05, "variance %g, want %g", sq / p[0].size,
              bound * bound / 3);
    for (size_t i = 0; i < p[1].size; i++)
        cr_expect(fabs(p[1].value[i]) <= bound, "bias %zu = %g outside +-%g", i, (double)p[1].value[i], bound);
    l.ops->destroy(&l);
}

Test(conv2d, params_are_named_and_shaped_like_pytorch)
{
    char err[256];
    Conv c = {3, 6, 6, 5, 3, 1, 0, 1};
    LayerSpec s = conv_spec(c);
    Layer l;
    Param p[LAYER_MAX_PARAMS];
    cr_assert(gradcheck_setup(&l, &s, (Shape){3, 3, 6, 6}, 2, NULL, 1, err, sizeof err) == 0, "%s", err);
    cr_assert_eq(l.ops->params(&l, p), 2);
    cr_expect_str_eq(p[0].name, "weight");
    cr_expect(p[0].rank == 4 && p[0].dims[0] == 5 && p[0].dims[1] == 3 && p[0].dims[2] == 3 && p[0].dims[3] == 3);
    cr_expect(p[0].size == 135 && p[0].grad && p[0].trainable);
    cr_expect_str_eq(p[1].name, "bias");
    cr_expect(p[1].rank == 1 && p[1].dims[0] == 5 && p[1].size == 5 && p[1].grad && p[1].trainable);
    cr_expect_eq((long long)(p[0].size + p[1].size), s.nparams);
    cr_expect(s.out.c == 5 && s.out.h == 4 && s.out.w == 4);
    l.ops->destroy(&l);
}

Test(conv2d, bad_specs_are_errors)
{
    char err[256] = "";
    Layer l;
    LayerSpec s = conv_spec((Conv){1, 5, 5, 2, 7, 1, 0, 1});
    cr_expect(gradcheck_setup(&l, &s, (Shape){3, 1, 5, 5}, 2, NULL, 1, err, sizeof err) != 0, "kernel 7 on 5x5");
    cr_expect(strstr(err, "larger than its input") != NULL, "message: %s", err);
    /* Past the schema's ranges (layer_spec_make refuses these), to reach the layer's own guards. */
    s = conv_spec((Conv){1, 5, 5, 2, 3, 1, 0, 1});
    s.arg[layer_arg_index(LK_CONV2D, "stride")].num = 0;
    cr_expect(gradcheck_setup(&l, &s, (Shape){3, 1, 5, 5}, 2, NULL, 1, err, sizeof err) != 0, "stride 0");
    cr_expect(strstr(err, "stride") != NULL, "message: %s", err);
    s = conv_spec((Conv){1, 5, 5, 2, 3, 1, 0, 1});
    s.arg[layer_arg_index(LK_CONV2D, "out")].num = 0;
    cr_expect(gradcheck_setup(&l, &s, (Shape){3, 1, 5, 5}, 2, NULL, 1, err, sizeof err) != 0, "0 outputs");
    cr_expect(strstr(err, "out >= 1") != NULL, "message: %s", err);
    l.ops->destroy(&l);
    s = conv_spec((Conv){1, 5, 5, 2, 3, 1, 0, 1});
    cr_expect(gradcheck_setup(&l, &s, (Shape){1, 25, 1, 1}, 2, NULL, 1, err, sizeof err) != 0, "flat input");
    cr_expect(strstr(err, "CxHxW") != NULL, "message: %s", err);
    s = conv_spec((Conv){1, 5, 5, 2, 3, 1, 0, 1});
    cr_assert(gradcheck_setup(&l, &s, (Shape){3, 1, 5, 5}, 2, NULL, 1, err, sizeof err) == 0, "%s", err);
    cr_expect(l.ops->resize(&l, 0, err, sizeof err) != 0, "batch 0 must be refused");
    cr_expect(strstr(err, "batch") != NULL, "message: %s", err);
    l.ops->destroy(&l);
}
/* 37 images: two full weight-gradient chunks and a partial one; 196, 25 and 9 positions (vector tails), 6, 9 and
 * 7 filters (filter-block tails), 25, 54 and 81 taps (tap-block tails). */
Test(conv2d, direct_partial_chunk_padded) { compare_direct((Conv){1, 14, 14, 6, 5, 1, 2, 1}, 37, 21); }
Test(conv2d, direct_partial_chunk_valid) { compare_direct((Conv){6, 7, 7, 9, 3, 1, 0, 1}, 37, 22); }
Test(conv2d, direct_partial_chunk_strided) { compare_direct((Conv){9, 5, 5, 7, 3, 2, 1, 1}, 37, 23); }
/* 12 or more filters: the weight gradient runs with the filters in the vector lanes. 12 filters (lanes masked),
 * 20 (two vectors), 33 (a pair of vectors then one); 63 and 30 positions (an odd tail of one position); 54, 27
 * and 18 taps (tap-block tails of 6 and 3); padding, stride 2, no bias; 37 images: a partial chunk. */
Test(conv2d, direct_filters_in_lanes_odd_positions) { compare_direct((Conv){6, 9, 7, 12, 3, 1, 1, 1}, 37, 24); }
Test(conv2d, direct_filters_in_lanes_two_vectors) { compare_direct((Conv){3, 9, 7, 20, 3, 1, 1, 0}, 5, 25); }
Test(conv2d, direct_filters_in_lanes_strided) { compare_direct((Conv){2, 11, 10, 33, 3, 2, 1, 1}, 19, 26); }
Test(conv2d, gradcheck_filters_in_lanes) { check_grad((Conv){2, 6, 5, 13, 3, 1, 1, 1}, 2, 8); }
/* An eval forward keeps one unfolded image per thread, not every image: a backward after it unfolds them again. */
Test(conv2d, direct_backward_after_eval_forward) { compare_direct_mode((Conv){3, 9, 7, 20, 3, 1, 1, 1}, 37, 27, 0); }
