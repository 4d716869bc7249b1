/* batchnorm against PyTorch (tests/reference/batchnorm.h5: F.batch_norm in float32, moving statistics by the
 * seed's formula, cross-checked against nn.BatchNorm in make_fixtures.py) and against finite differences
 * (tests/gradcheck.h), on N x C input (bn2d: momentum 0.9, eps 1e-5) and NCHW input (bn4d: momentum 0.7, eps 1e-3). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/layer.h"
#include "runtime/threads.h"
#include "tests/fixture.h"
#include "tests/gradcheck.h"
#include "tests/specs.h"

/* Float32 tolerances against torch. The two sides reduce in different orders (bnni in double, torch in float
 * with its own blocking), so values O(1) agree to a few ulp: rtol 1e-5, plus atol 1e-6 for values near zero.
 * dx subtracts two channel sums from m*dy, so its rounding scales with |dy| (O(1)), not with |dx|: atol 1e-5.
 * dgamma, dbeta are sums of m products of O(1) values: rtol 1e-5, atol 1e-5. */
#define BN_RTOL 1e-5
#define BN_ATOL_Y 1e-6
#define BN_ATOL_DX 1e-5
#define BN_ATOL_DP 1e-5

enum { P_GAMMA, P_BETA, P_MEAN, P_VAR };

typedef struct Bn {
    hid_t f;
    const char *group;
    LayerSpec spec;
    Layer l;
    Param p[LAYER_MAX_PARAMS];
    Tensor x, dx;
} Bn;

static FxArray fixture(hid_t f, const char *group, const char *name)
{
    char path[96];
    FxArray a;
    snprintf(path, sizeof path, "%s/%s", group, name);
    cr_assert(fx_read(f, path, &a) == 0, "missing fixture %s", path);
    return a;
}

static void read_into(Bn *b, const char *name, float *dst, size_t n)
{
    FxArray a = fixture(b->f, b->group, name);
    cr_assert_eq(a.size, n, "%s/%s has %zu values, want %zu", b->group, name, a.size, n);
    memcpy(dst, a.data, n * sizeof(float));
    fx_free(&a);
}

static void expect_fixture(Bn *b, const char *name, const float *got, size_t n, double rtol, double atol)
{
    FxArray want = fixture(b->f, b->group, name);
    cr_assert_eq(want.size, n, "%s/%s has %zu values, bnni %zu", b->group, name, want.size, n);
    FX_EXPECT_CLOSE(got, want.data, n, rtol, atol, "%s/%s", b->group, name);
    fx_free(&want);
}

/* A fresh layer for fixture group `group` (momentum, eps and input shape from its attributes), sized for its x,
 * with x loaded and gamma, beta set to the fixture's non-trivial values. */
static void bn_open(Bn *b, const char *group)
{
    char err[256];
    int in[4];
    memset(b, 0, sizeof *b);
    b->group = group;
    b->f = fx_open("batchnorm.h5");
    cr_assert(b->f >= 0, "cannot open tests/reference/batchnorm.h5");
    cr_assert_eq(fx_attr_ints(b->f, group, "in", in, 4), 4);
    Shape shape = {in[0], in[1], in[2], in[3]};
    char args[128];
    snprintf(args, sizeof args, "momentum=%.17g eps=%.17g", fx_attr(b->f, group, "momentum", NAN),
             fx_attr(b->f, group, "eps", NAN));
    b->spec = test_spec(LK_BATCHNORM, group, args);
    FxArray x = fixture(b->f, group, "x");
    cr_assert(gradcheck_setup(&b->l, &b->spec, shape, x.dims[0], NULL, 1, err, sizeof err) == 0, "%s", err);
    cr_assert(tensor_alloc(&b->x, x.dims[0], in[1], in[2], in[3]) == 0);
    cr_assert(tensor_alloc(&b->dx, x.dims[0], in[1], in[2], in[3]) == 0);
    cr_assert_eq(tensor_size(&b->x), x.size);
    memcpy(b->x.data, x.data, x.size * sizeof(float));
    fx_free(&x);
    cr_assert_eq(b->l.ops->params(&b->l, b->p), 4);
    read_into(b, "gamma", b->p[P_GAMMA].value, b->p[P_GAMMA].size);
    read_into(b, "beta", b->p[P_BETA].value, b->p[P_BETA].size);
}

static void bn_close(Bn *b)
{
    b->l.ops->destroy(&b->l);
    tensor_free(&b->x), tensor_free(&b->dx);
    fx_close(b->f);
}

/* Forward in `mode` ("train" or "eval"), backward of the fixture's dy, everything compared with torch. */
static void check_mode(const char *group, int train)
{
    const char *mode = train ? "train" : "eval";
    char name[32];
    Bn b;
    bn_open(&b, group);
    size_t C = b.p[P_GAMMA].size;
    if (!train) {
        read_into(&b, "eval/moving_mean", b.p[P_MEAN].value, C);
        read_into(&b, "eval/moving_var", b.p[P_VAR].value, C);
    }
    b.l.ops->forward(&b.l, &b.x, train);
    snprintf(name, sizeof name, "%s/y", mode);
    expect_fixture(&b, name, b.l.y.data, tensor_size(&b.l.y), BN_RTOL, BN_ATOL_Y);
    read_into(&b, "dy", b.l.dy.data, tensor_size(&b.l.dy));
    memset(b.p[P_GAMMA].grad, 0, C * sizeof(float));
    memset(b.p[P_BETA].grad, 0, C * sizeof(float));
    b.l.ops->backward(&b.l, &b.x, &b.dx);
    snprintf(name, sizeof name, "%s/dx", mode);
    expect_fixture(&b, name, b.dx.data, tensor_size(&b.dx), BN_RTOL, BN_ATOL_DX);
    snprintf(name, sizeof name, "%s/dgamma", mode);
    expect_fixture(&b, name, b.p[P_GAMMA].grad, C, BN_RTOL, BN_ATOL_DP);
    snprintf(name, sizeof name, "%s/dbeta", mode);
    expect_fixture(&b, name, b.p[P_BETA].grad, C, BN_RTOL, BN_ATOL_DP);
    bn_close(&b);
}

Test(batchnorm, train_2d_matches_torch) { check_mode("bn2d", 1); }
Test(batchnorm, train_4d_matches_torch) { check_mode("bn4d", 1); }
Test(batchnorm, eval_2d_matches_torch) { check_mode("bn2d", 0); }
Test(batchnorm, eval_4d_matches_torch) { check_mode("bn4d", 0); }

/* Three training forwards on three batches from the initial moving statistics (0 and 1), with the spec's momentum:
 * moving = momentum*moving + (1-momentum)*batch, biased variance. Values are O(1) after three float updates. */
static void check_moving(const char *group)
{
    Bn b;
    bn_open(&b, group);
    size_t C = b.p[P_GAMMA].size, n = tensor_size(&b.x);
    FxArray xs = fixture(b.f, group, "steps/xs");
    cr_assert_eq(xs.size, 3 * n);
    for (int s = 0; s < 3; s++) {
        memcpy(b.x.data, xs.data + s * n, n * sizeof(float));
        b.l.ops->forward(&b.l, &b.x, 1);
    }
    expect_fixture(&b, "steps/moving_mean", b.p[P_MEAN].value, C, 1e-5, 1e-6);
    expect_fixture(&b, "steps/moving_var", b.p[P_VAR].value, C, 1e-5, 1e-6);
    fx_free(&xs);
    bn_close(&b);
}

Test(batchnorm, moving_statistics_2d_match_seed_formula) { check_moving("bn2d"); }
Test(batchnorm, moving_statistics_4d_match_seed_formula) { check_moving("bn4d"); }

/* Finite differences through the batch statistics (train) and through the fixed moving ones (eval), with the
 * fixture's gamma and beta so that both enter; gradcheck's default tolerance (see gradcheck.h). */
static void check_grad(const char *group, int train)
{
    GradCheckResult res;
    Bn b;
    bn_open(&b, group);
    if (!train) {
        read_into(&b, "eval/moving_mean", b.p[P_MEAN].value, b.p[P_MEAN].size);
        read_into(&b, "eval/moving_var", b.p[P_VAR].value, b.p[P_VAR].size);
    }
    int rc = gradcheck_layer(&b.l, b.l.batch, train, 7, 0, &res);
    cr_expect_eq(rc, 0, "%s %s: %s (input %.3g, params %.3g, accumulation %.3g)", group, train ? "train" : "eval",
                 res.worst, res.max_rel_err_input, res.max_rel_err_param, res.max_accum_err);
    cr_expect_gt(res.nchecked, 0);
    bn_close(&b);
}

Test(batchnorm, gradcheck_train_2d) { check_grad("bn2d", 1); }
Test(batchnorm, gradcheck_train_4d) { check_grad("bn4d", 1); }
Test(batchnorm, gradcheck_eval_2d) { check_grad("bn2d", 0); }
Test(batchnorm, gradcheck_eval_4d) { check_grad("bn4d", 0); }

Test(batchnorm, params_initial_values_and_names)
{
    Bn b;
    bn_open(&b, "bn4d");
    static const char *names[4] = {"gamma", "beta", "moving_mean", "moving_var"};
    char err[256];
    LayerSpec spec = b.spec;
    Layer fresh;
    Param p[LAYER_MAX_PARAMS];
    cr_assert(gradcheck_setup(&fresh, &spec, b.spec.in, 2, NULL, 3, err, sizeof err) == 0, "%s", err);
    cr_assert_eq(fresh.ops->params(&fresh, p), 4);
    for (int i = 0; i < 4; i++) {
        cr_expect_str_eq(p[i].name, names[i]);
        cr_expect_eq(p[i].rank, 1);
        cr_expect_eq(p[i].dims[0], 3);
        cr_expect_eq(p[i].size, 3u);
        cr_expect_eq(p[i].trainable, i < 2, "%s trainable", names[i]);
        cr_expect_eq(p[i].grad != NULL, i < 2, "%s has a gradient only when trainable", names[i]);
        for (int c = 0; c < 3; c++)
            cr_expect_eq(p[i].value[c], i == 0 || i == 3 ? 1.0f : 0.0f, "%s[%d] = %g", names[i], c, p[i].value[c]);
    }
    fresh.ops->destroy(&fresh);
    bn_close(&b);
}

/* A last, smaller batch in the buffers of a full one: the statistics must be those of the n rows given. With
 * gamma 1 and beta 0 every channel of the output has mean 0 and variance var/(var + eps) (biased). */
Test(batchnorm, smaller_batch_uses_its_own_statistics)
{
    char err[256];
    LayerSpec spec = test_spec(LK_BATCHNORM, "bn", "momentum=0.9 eps=1e-5");
    Shape in = {3, 2, 3, 3};
    Layer l;
    Tensor x;
    cr_assert(gradcheck_setup(&l, &spec, in, 8, NULL, 1, err, sizeof err) == 0, "%s", err);
    cr_assert(tensor_alloc(&x, 5, 2, 3, 3) == 0);
    for (size_t i = 0; i < tensor_size(&x); i++)
        x.data[i] = (float)(sin(0.37 * i) * 3.0 + (i % 18 < 9 ? 1.0 : -2.0));
    l.ops->forward(&l, &x, 1);
    cr_expect_eq(l.y.n, 5);
    for (int c = 0; c < 2; c++) {
        double sx = 0, sxx = 0, sy = 0, syy = 0;
        for (int n = 0; n < 5; n++)
            for (int i = 0; i < 9; i++) {
                size_t k = ((size_t)n * 2 + c) * 9 + i;
                sx += x.data[k], sxx += (double)x.data[k] * x.data[k];
                sy += l.y.data[k], syy += (double)l.y.data[k] * l.y.data[k];
            }
        double var = sxx / 45 - (sx / 45) * (sx / 45);
        cr_expect(fabs(sy / 45) < 1e-6, "channel %d output mean %g", c, sy / 45);
        cr_expect(fabs(syy / 45 - var / (var + 1e-5)) < 1e-5, "channel %d output variance %.8g want %.8g", c, syy / 45,
                  var / (var + 1e-5));
    }
    tensor_free(&x);
    l.ops->destroy(&l);
}

/* One training forward and backward of a fresh layer on `in` x batch at `threads`; returns y, dx, dgamma,
 * dbeta, moving_mean and moving_var concatenated (caller frees), *len their count. */
static float *train_step(Shape in, int batch, int threads, size_t *len)
{
    char err[256];
    LayerSpec spec = test_spec(LK_BATCHNORM, "bn", "momentum=0.9 eps=1e-5");
    Layer l;
    Param p[LAYER_MAX_PARAMS];
    Tensor x, dx;
    size_t n, C = (size_t)in.c, k = 0;
    float *all;
    rt_set_threads(threads);
    cr_assert(gradcheck_setup(&l, &spec, in, batch, NULL, 1, err, sizeof err) == 0, "%s", err);
    cr_assert(tensor_alloc(&x, batch, in.c, in.h, in.w) == 0 && tensor_alloc(&dx, batch, in.c, in.h, in.w) == 0);
    n = tensor_size(&x);
    gradcheck_fill_distinct(&x, 3);
    gradcheck_fill_distinct(&l.dy, 4);
    cr_assert_eq(l.ops->params(&l, p), 4);
    for (size_t c = 0; c < C; c++) /* non-trivial scale and shift, so that both reach every output */
        p[0].value[c] = 0.5f + 0.1f * (float)c, p[1].value[c] = 0.01f * (float)c;
    l.ops->forward(&l, &x, 1);
    l.ops->backward(&l, &x, &dx);
    cr_assert((all = malloc((2 * n + 4 * C) * sizeof *all)) != NULL);
    memcpy(all + k, l.y.data, n * sizeof *all), k += n;
    memcpy(all + k, dx.data, n * sizeof *all), k += n;
    for (int j = 0; j < 4; j++)
        memcpy(all + k, j < 2 ? p[j].grad : p[j].value, C * sizeof *all), k += C;
    *len = k;
    tensor_free(&x), tensor_free(&dx);
    l.ops->destroy(&l);
    rt_set_threads(0);
    return all;
}

/* Chunks of images are summed in a fixed order, whatever thread computes them: bit-identical results at 1, 2 and
 * 3 threads. Sizes above the threading threshold, with a partial last chunk (37, 300 rows) and a plane that is
 * not a whole number of lanes (14x14). */
static void check_threads(Shape in, int batch)
{
    size_t n1, n2, n3;
    float *a = train_step(in, batch, 1, &n1), *b = train_step(in, batch, 2, &n2), *c = train_step(in, batch, 3, &n3);
    cr_assert(n1 == n2 && n1 == n3);
    for (size_t i = 0; i < n1; i++) {
        cr_assert(memcmp(&a[i], &b[i], sizeof *a) == 0, "value %zu: %a at 1 thread, %a at 2", i, (double)a[i],
                  (double)b[i]);
        cr_assert(memcmp(&a[i], &c[i], sizeof *a) == 0, "value %zu: %a at 1 thread, %a at 3", i, (double)a[i],
                  (double)c[i]);
    }
    free(a), free(b), free(c);
}

Test(batchnorm, same_results_at_any_thread_count_4d) { check_threads((Shape){3, 5, 14, 14}, 37); }
Test(batchnorm, same_results_at_any_thread_count_2d) { check_threads((Shape){1, 130, 1, 1}, 300); }

/* A channel far from zero relative to its spread (mean ~1000, std ~0.01; the first value an outlier 50 std
 * away): the batch statistics must still match a long double two-pass reference. E[x^2] - E[x]^2 in float would
 * have no correct digit of the variance here. momentum 0 makes the moving statistics the batch ones. */
Test(batchnorm, statistics_of_a_large_mean_with_a_small_variance)
{
    char err[256];
    LayerSpec spec = test_spec(LK_BATCHNORM, "bn", "momentum=0 eps=1e-5");
    Shape in = {3, 2, 5, 7};
    Layer l;
    Param p[LAYER_MAX_PARAMS];
    Tensor x;
    int N = 20, HW = 35;
    cr_assert(gradcheck_setup(&l, &spec, in, N, NULL, 1, err, sizeof err) == 0, "%s", err);
    cr_assert(tensor_alloc(&x, N, 2, 5, 7) == 0);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < 2; c++)
            for (int i = 0; i < HW; i++)
                x.data[((size_t)n * 2 + c) * HW + i] = (float)(1000.0 * (c + 1) + 0.01 * sin(1.3 * (n * HW + i)));
    x.data[0] += 0.5f, x.data[HW] -= 0.5f; /* the first value of each channel */
    l.ops->forward(&l, &x, 1);
    cr_assert_eq(l.ops->params(&l, p), 4);
    for (int c = 0; c < 2; c++) {
        long double s = 0, ss = 0, mu;
        for (int n = 0; n < N; n++)
            for (int i = 0; i < HW; i++)
                s += x.data[((size_t)n * 2 + c) * HW + i];
        mu = s / (N * HW);
        for (int n = 0; n < N; n++)
            for (int i = 0; i < HW; i++) {
                long double d = x.data[((size_t)n * 2 + c) * HW + i] - mu;
                ss += d * d;
            }
        double var = (double)(ss / (N * HW));
        cr_expect(fabs(p[2].value[c] - (double)mu) <= 1e-6 * fabs((double)mu), "channel %d mean %.9g, want %.9Lg", c,
                  (double)p[2].value[c], mu);
        cr_expect(fabs(p[3].value[c] - var) <= 1e-5 * var, "channel %d variance %.9g, want %.9g", c,
                  (double)p[3].value[c], var);
    }
    tensor_free(&x);
    l.ops->destroy(&l);
}

/* ---- batchnorm(affine=false): PyTorch's BatchNorm(affine=False) (tests/reference/lab.h5), no gamma or beta ---- */

/* The layer of lab.h5's group `group` with affine=false, sized for its x; x in b->x. Its parameters are the two
 * moving statistics only. */
static void noaffine_open(Bn *b, const char *group)
{
    char err[256], args[160];
    int in[4];
    memset(b, 0, sizeof *b);
    b->group = group;
    b->f = fx_open("lab.h5");
    cr_assert(b->f >= 0, "cannot open tests/reference/lab.h5");
    cr_assert_eq(fx_attr_ints(b->f, group, "in", in, 4), 4);
    snprintf(args, sizeof args, "momentum=%.17g eps=%.17g affine=false", fx_attr(b->f, group, "momentum", NAN),
             fx_attr(b->f, group, "eps", NAN));
    b->spec = test_spec(LK_BATCHNORM, group, args);
    FxArray x = fixture(b->f, group, "x");
    cr_assert(gradcheck_setup(&b->l, &b->spec, (Shape){in[0], in[1], in[2], in[3]}, x.dims[0], NULL, 1, err,
                              sizeof err) == 0, "%s", err);
    cr_assert(tensor_alloc(&b->x, x.dims[0], in[1], in[2], in[3]) == 0);
    cr_assert(tensor_alloc(&b->dx, x.dims[0], in[1], in[2], in[3]) == 0);
    memcpy(b->x.data, x.data, x.size * sizeof(float));
    fx_free(&x);
    cr_assert_eq(b->l.ops->params(&b->l, b->p), 2, "affine=false lists only the moving statistics");
    cr_expect_str_eq(b->p[0].name, "moving_mean");
    cr_expect_str_eq(b->p[1].name, "moving_var");
    cr_expect(!b->p[0].trainable && !b->p[1].trainable && !b->p[0].grad && !b->p[1].grad);
    cr_expect_eq(b->spec.nparams, 0, "no trainable values");
    cr_expect_eq(b->spec.nbuffers, 2 * in[1]);
}

static void check_noaffine(const char *group, int train)
{
    const char *mode = train ? "train" : "eval";
    char name[32];
    Bn b;
    noaffine_open(&b, group);
    if (!train) {
        read_into(&b, "eval/moving_mean", b.p[0].value, b.p[0].size);
        read_into(&b, "eval/moving_var", b.p[1].value, b.p[1].size);
    }
    b.l.ops->forward(&b.l, &b.x, train);
    snprintf(name, sizeof name, "%s/y", mode);
    expect_fixture(&b, name, b.l.y.data, tensor_size(&b.l.y), BN_RTOL, BN_ATOL_Y);
    read_into(&b, "dy", b.l.dy.data, tensor_size(&b.l.dy));
    b.l.ops->backward(&b.l, &b.x, &b.dx);
    snprintf(name, sizeof name, "%s/dx", mode);
    expect_fixture(&b, name, b.dx.data, tensor_size(&b.dx), BN_RTOL, BN_ATOL_DX);
    bn_close(&b);
}

Test(batchnorm, noaffine_train_2d_matches_torch) { check_noaffine("bn_noaffine_2d", 1); }
Test(batchnorm, noaffine_train_4d_matches_torch) { check_noaffine("bn_noaffine_4d", 1); }
Test(batchnorm, noaffine_eval_2d_matches_torch) { check_noaffine("bn_noaffine_2d", 0); }
Test(batchnorm, noaffine_eval_4d_matches_torch) { check_noaffine("bn_noaffine_4d", 0); }

/* Finite differences through the batch statistics (train) or the moving ones (eval) without gamma and beta. */
static void check_noaffine_grad(const char *group, int train)
{
    GradCheckResult res;
    Bn b;
    noaffine_open(&b, group);
    int rc = gradcheck_layer(&b.l, b.l.batch, train, 9, 0, &res);
    cr_expect_eq(rc, 0, "%s %s: %s", group, train ? "train" : "eval", res.worst);
    cr_expect_gt(res.nchecked, 0);
    bn_close(&b);
}

Test(batchnorm, noaffine_gradcheck_train_2d) { check_noaffine_grad("bn_noaffine_2d", 1); }
Test(batchnorm, noaffine_gradcheck_train_4d) { check_noaffine_grad("bn_noaffine_4d", 1); }
Test(batchnorm, noaffine_gradcheck_eval_4d) { check_noaffine_grad("bn_noaffine_4d", 0); }
