/* dense: finite-difference gradients (tests/gradcheck.h) in several shapes, the forward against a direct
 * double-precision x W^T + b, PyTorch's default initialisation bounds, the parameter list, and bad specs. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/layer.h"
#include "runtime/layers/dense_kernels.h"
#include "tests/gradcheck.h"
#include "tests/specs.h"

static LayerSpec dense_spec(int units, int bias)
{
    char args[64];
    snprintf(args, sizeof args, "out=%d bias=%s", units, bias ? "true" : "false");
    return test_spec(LK_DENSE, "fc", args);
}

static void check_grad(int in, int units, int bias, int batch, uint64_t seed)
{
    char err[256];
    LayerSpec s = dense_spec(units, bias);
    Layer l;
    GradCheckResult r;
    cr_assert(gradcheck_setup(&l, &s, (Shape){1, in, 1, 1}, batch, NULL, seed, err, sizeof err) == 0, "%s", err);
    cr_expect(gradcheck_layer(&l, batch, 1, seed, 0, &r) == 0, "dense %d->%d bias %d batch %d: %s", in, units, bias,
              batch, r.worst);
    cr_expect_eq(r.nkinks, 0, "a linear layer has no kinks, yet %d were reported", r.nkinks);
    cr_expect_gt(r.nchecked, in * batch, "too few values checked: %d", r.nchecked);
    l.ops->destroy(&l);
}

Test(dense, gradcheck_bias) { check_grad(7, 5, 1, 3, 1); }
Test(dense, gradcheck_no_bias) { check_grad(7, 5, 0, 3, 2); }
Test(dense, gradcheck_one_unit_one_input) { check_grad(1, 1, 1, 1, 3); }
Test(dense, gradcheck_odd_sizes) { check_grad(33, 17, 1, 5, 4); }
Test(dense, gradcheck_wide) { check_grad(130, 3, 1, 2, 5); }
/* Over 32 rows and 32 units: the backward kernels' blocks and tails, rows of the batch and of the weight. */
Test(dense, gradcheck_several_blocks) { check_grad(20, 40, 1, 35, 6); }

/* y[n][o] = sum_i x[n][i] w[o][i] + b[o], in double, against the float forward; then the first rows alone. With
 * the vector kernels (DENSEK_AVAILABLE) those must give the same bits: a row's result may not depend on the batch
 * around it (blocks of 32 rows, a tail). sgemm's blocking depends on the row count: there, to rounding. */
static void check_forward(int in, int out, int N, int bias, uint64_t seed)
{
    char err[256];
    LayerSpec s = dense_spec(out, bias);
    Layer l;
    Param p[LAYER_MAX_PARAMS];
    Tensor x;
    int half = (N + 1) / 2;
    cr_assert(gradcheck_setup(&l, &s, (Shape){1, in, 1, 1}, N, NULL, seed, err, sizeof err) == 0, "%s", err);
    cr_assert_eq(l.ops->params(&l, p), bias ? 2 : 1);
    cr_assert(tensor_alloc(&x, N, in, 1, 1) == 0);
    gradcheck_fill_distinct(&x, seed + 1);
    l.ops->forward(&l, &x, 1);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < out; o++) {
            double want = bias ? p[1].value[o] : 0.0, mag = fabs(want);
            for (int i = 0; i < in; i++) {
                double t = (double)x.data[(size_t)n * in + i] * p[0].value[(size_t)o * in + i];
                want += t, mag += fabs(t);
            }
            float got = l.y.data[(size_t)n * out + o];
            cr_expect(fabs(got - want) <= 1e-6 * (1 + mag), "%d->%d batch %d: y[%d][%d] = %.9g, want %.9g", in, out,
                      N, n, o, (double)got, want);
        }
    float *full = malloc((size_t)half * out * sizeof *full);
    cr_assert(full);
    memcpy(full, l.y.data, (size_t)half * out * sizeof *full);
    x.n = half;
    l.ops->forward(&l, &x, 0);
    cr_expect_eq(l.y.n, half);
    if (DENSEK_AVAILABLE)
        cr_expect(memcmp(full, l.y.data, (size_t)half * out * sizeof *full) == 0,
                  "%d->%d: the first %d rows of a batch of %d differ from the same rows alone", in, out, half, N);
    for (int i = 0; !DENSEK_AVAILABLE && i < half * out; i++)
        cr_expect(fabsf(full[i] - l.y.data[i]) <= 1e-5f * (1 + fabsf(full[i])), "partial batch y[%d] %g, full %g", i,
                  (double)l.y.data[i], (double)full[i]);
    free(full);
    tensor_free(&x);
    l.ops->destroy(&l);
}

Test(dense, forward_matches_direct_sum) { check_forward(19, 11, 6, 1, 7); }
Test(dense, forward_matches_direct_sum_lenet_sizes) { check_forward(400, 120, 77, 1, 9); }
Test(dense, forward_matches_direct_sum_no_bias_odd) { check_forward(37, 85, 33, 0, 10); }

/* PyTorch's nn.Linear default: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)). Over 20000 weights the bound is
 * reached to within 1% and the variance is bound^2/3 to within 5%; the bias gets the same bound. */
Test(dense, init_matches_pytorch_default)
{
    char err[256];
    enum { IN = 100, OUT = 200 };
    LayerSpec s = dense_spec(OUT, 1);
    Layer l;
    Param p[LAYER_MAX_PARAMS];
    double bound = 1.0 / sqrt(IN), sum = 0, sq = 0, maxabs = 0;
    cr_assert(gradcheck_setup(&l, &s, (Shape){1, IN, 1, 1}, 1, NULL, 11, err, sizeof err) == 0, "%s", err);
    cr_assert_eq(l.ops->params(&l, p), 2);
    for (size_t i = 0; i < p[0].size; i++) {
        double v = p[0].value[i];
        sum += v, sq += v * v, maxabs = fmax(maxabs, fabs(v));
    }
    cr_expect(maxabs <= bound && maxabs > 0.99 * bound, "max |w| %g, bound %g", maxabs, bound);
    cr_expect(fabs(sum / p[0].size) < 0.01 * bound, "mean %g", sum / p[0].size);
    cr_expect(fabs(sq / p[0].size / (bound * bound / 3) - 1) < 0.05, "variance %g, want %g", sq / p[0].size,
              bound * bound / 3);
    for (size_t i = 0; i < p[1].size; i++)
        cr_expect(fabs(p[1].value[i]) <= bound, "bias %zu = %g outside +-%g", i, (double)p[1].value[i], bound);
    for (size_t i = 0; i < p[0].size; i++)
        cr_expect_eq(p[0].grad[i], 0.0f, "gradients start at zero");
    l.ops->destroy(&l);
}

/* Same seed, same weights; the bias is drawn after the weight, so the weights do not depend on it. */
Test(dense, init_is_deterministic_weight_then_bias)
{
    char err[256];
    LayerSpec s1 = dense_spec(4, 1), s2 = dense_spec(4, 0), s3 = dense_spec(4, 1);
    Layer a, b, c;
    Param pa[4], pb[4], pc[4];
    cr_assert(gradcheck_setup(&a, &s1, (Shape){1, 6, 1, 1}, 1, NULL, 5, err, sizeof err) == 0, "%s", err);
    cr_assert(gradcheck_setup(&b, &s2, (Shape){1, 6, 1, 1}, 1, NULL, 5, err, sizeof err) == 0, "%s", err);
    cr_assert(gradcheck_setup(&c, &s3, (Shape){1, 6, 1, 1}, 1, NULL, 6, err, sizeof err) == 0, "%s", err);
    a.ops->params(&a, pa), b.ops->params(&b, pb), c.ops->params(&c, pc);
    cr_expect(memcmp(pa[0].value, pb[0].value, 24 * sizeof(float)) == 0, "weights must not depend on the bias");
    cr_expect(memcmp(pa[0].value, pc[0].value, 24 * sizeof(float)) != 0, "another seed, other weights");
    a.ops->destroy(&a), b.ops->destroy(&b), c.ops->destroy(&c);
}

Test(dense, params_are_named_and_shaped_like_pytorch)
{
    char err[256];
    LayerSpec s = dense_spec(3, 1), s0 = dense_spec(3, 0);
    Layer l, l0;
    Param p[LAYER_MAX_PARAMS];
    cr_assert(gradcheck_setup(&l, &s, (Shape){1, 5, 1, 1}, 2, NULL, 1, err, sizeof err) == 0, "%s", err);
    cr_assert_eq(l.ops->params(&l, p), 2);
    cr_expect_str_eq(p[0].name, "weight");
    cr_expect(p[0].rank == 2 && p[0].dims[0] == 3 && p[0].dims[1] == 5 && p[0].size == 15 && p[0].trainable);
    cr_expect_str_eq(p[1].name, "bias");
    cr_expect(p[1].rank == 1 && p[1].dims[0] == 3 && p[1].size == 3 && p[1].grad && p[1].trainable);
    cr_expect_eq((long long)(p[0].size + p[1].size), s.nparams, "the shape rule counts the same parameters");
    cr_assert(gradcheck_setup(&l0, &s0, (Shape){1, 5, 1, 1}, 2, NULL, 1, err, sizeof err) == 0, "%s", err);
    cr_expect_eq(l0.ops->params(&l0, p), 1, "no bias, one parameter");
    l.ops->destroy(&l), l0.ops->destroy(&l0);
}

Test(dense, bad_specs_are_errors)
{
    char err[256] = "";
    LayerSpec s = dense_spec(1, 1);
    Layer l;
    s.arg[layer_arg_index(LK_DENSE, "out")].num = 0; /* past the schema's range, to reach the layer's guard */
    cr_expect(gradcheck_setup(&l, &s, (Shape){1, 5, 1, 1}, 2, NULL, 1, err, sizeof err) != 0);
    cr_expect(strstr(err, "out >= 1") != NULL, "message: %s", err);
    l.ops->destroy(&l);
    s = dense_spec(4, 1);
    cr_expect(gradcheck_setup(&l, &s, (Shape){3, 2, 5, 5}, 2, NULL, 1, err, sizeof err) != 0, "3-D input");
    cr_expect(strstr(err, "flatten") != NULL, "message: %s", err);
    s = dense_spec(4, 1);
    cr_assert(gradcheck_setup(&l, &s, (Shape){1, 5, 1, 1}, 2, NULL, 1, err, sizeof err) == 0, "%s", err);
    cr_expect(l.ops->resize(&l, 0, err, sizeof err) != 0, "batch 0 must be refused");
    cr_expect(strstr(err, "batch") != NULL, "message: %s", err);
    l.ops->destroy(&l);
}
