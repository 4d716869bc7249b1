/* init= of conv2d and dense (runtime/layers/common.c, layer_init_params) against PyTorch's initialisers
 * (tests/reference/lab.h5, group init/: the quantiles, standard deviation and largest magnitude of torch's draw of
 * the same weight shape), the zero biases of the non-default schemes, finite differences through layers built with
 * them, and the forms the argument refuses. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/layer.h"
#include "runtime/layers/common.h"
#include "tests/fixture.h"
#include "tests/gradcheck.h"
#include "tests/specs.h"

static int by_value(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of sorted v[0..n), numpy's default (linear between the order statistics). */
static double quantile(const float *v, size_t n, double q)
{
    double pos = q * (double)(n - 1);
    size_t i = (size_t)pos;
    double t = pos - (double)i;
    return i + 1 < n ? v[i] * (1 - t) + v[i + 1] * t : v[i];
}

static float fixture_scalar(hid_t f, const char *group, const char *name)
{
    char path[96];
    FxArray a;
    snprintf(path, sizeof path, "%s/%s", group, name);
    cr_assert(fx_read(f, path, &a) == 0 && a.size == 1, "missing fixture %s", path);
    float v = a.data[0];
    fx_free(&a);
    return v;
}

/* bnni's layer `kind` with init `init`, of the fixture's weight shape, drawn from seed 11; its weight's quantiles,
 * standard deviation and largest magnitude against torch's. Two independent samples of ~20,000 values: a quantile's
 * standard error is about 0.02 std in each, so 0.06 std is some 2-3 errors of the difference, while a wrong fan
 * or gain moves the quantiles by 20 % or more. The standard deviation is held to 3 %, the largest magnitude of a
 * uniform draw to 1 % (it approaches the bound from below). */
static void check_case(const char *kind, const char *tag)
{
    char group[64], init[32], args[96], err[256];
    int shape[4];
    hid_t f = fx_open("lab.h5");
    cr_assert(f >= 0, "cannot open tests/reference/lab.h5");
    snprintf(group, sizeof group, "init/%s_%s", kind, tag);
    cr_assert(fx_attr_str(f, group, "init", init, sizeof init) == 0, "no group %s", group);
    int rank = fx_attr_ints(f, group, "shape", shape, 4);
    int conv = strcmp(kind, "conv2d") == 0;
    if (conv)
        snprintf(args, sizeof args, "out=%d kernel=%d init=%s", shape[0], shape[2], init);
    else
        snprintf(args, sizeof args, "out=%d init=%s", shape[0], init);
    LayerSpec s = test_spec(conv ? LK_CONV2D : LK_DENSE, "w", args);
    Shape in = conv ? (Shape){3, shape[1], shape[2] + 1, shape[3] + 1} : (Shape){1, shape[1], 1, 1};
    Layer l;
    Param p[LAYER_MAX_PARAMS];
    cr_assert(gradcheck_setup(&l, &s, in, 1, NULL, 11, err, sizeof err) == 0, "%s", err);
    cr_assert_eq(l.ops->params(&l, p), 2);
    size_t n = p[0].size;
    cr_assert_eq(n, (size_t)shape[0] * shape[1] * (rank == 4 ? shape[2] * shape[3] : 1));
    float *v = malloc(n * sizeof *v);
    cr_assert(v);
    memcpy(v, p[0].value, n * sizeof *v);
    qsort(v, n, sizeof *v, by_value);
    double sum = 0, sq = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i], sq += (double)v[i] * v[i];
    double std = sqrt(sq / n - (sum / n) * (sum / n)), tstd = fixture_scalar(f, group, "std");
    double maxabs = fmax(fabs(v[0]), fabs(v[n - 1])), tmax = fixture_scalar(f, group, "maxabs");
    cr_expect(fabs(std / tstd - 1) < 0.03, "%s: std %g, torch %g", group, std, tstd);
    FxArray q;
    char path[96];
    snprintf(path, sizeof path, "%s/quantiles", group);
    cr_assert(fx_read(f, path, &q) == 0 && q.size == 19, "missing fixture %s", path);
    for (int k = 0; k < 19; k++) {
        double want = q.data[k], got = quantile(v, n, 0.05 * (k + 1));
        cr_expect(fabs(got - want) < 0.06 * tstd, "%s: quantile %.2f is %g, torch %g", group, 0.05 * (k + 1), got,
                  want);
    }
    int uniform = strcmp(tag, "normal") != 0 && strcmp(tag, "kaiming") != 0;
    if (uniform)
        cr_expect(maxabs <= tmax * 1.01 && maxabs >= tmax * 0.99, "%s: max |w| %g, torch %g", group, maxabs, tmax);
    if (strcmp(tag, "default") == 0) { /* torch's bias rule: the weight's bound */
        double bound = fixture_scalar(f, group, "bias_bound"), bmax = 0;
        for (size_t i = 0; i < p[1].size; i++)
            bmax = fmax(bmax, fabs(p[1].value[i]));
        cr_expect(bmax <= bound && bmax > 0.8 * bound, "%s: max |b| %g, torch's bound %g", group, bmax, bound);
    } else {
        for (size_t i = 0; i < p[1].size; i++)
            cr_expect_eq(p[1].value[i], 0.0f, "%s: bias[%zu] = %g, want 0", group, i, (double)p[1].value[i]);
    }
    fx_free(&q);
    free(v);
    l.ops->destroy(&l);
    fx_close(f);
}

Test(init, conv2d_default_matches_torch) { check_case("conv2d", "default"); }
Test(init, conv2d_xavier_matches_torch) { check_case("conv2d", "xavier"); }
Test(init, conv2d_kaiming_matches_torch) { check_case("conv2d", "kaiming"); }
Test(init, conv2d_normal_matches_torch) { check_case("conv2d", "normal"); }
Test(init, conv2d_uniform_matches_torch) { check_case("conv2d", "uniform"); }
Test(init, dense_default_matches_torch) { check_case("dense", "default"); }
Test(init, dense_xavier_matches_torch) { check_case("dense", "xavier"); }
Test(init, dense_kaiming_matches_torch) { check_case("dense", "kaiming"); }
Test(init, dense_normal_matches_torch) { check_case("dense", "normal"); }
Test(init, dense_uniform_matches_torch) { check_case("dense", "uniform"); }

/* init="default" draws exactly what bnni drew before the argument existed: U(-1/sqrt(fan_in), ..) weight then bias,
 * from the same stream. */
Test(init, default_is_the_draw_of_a_spec_without_init)
{
    char err[256];
    LayerSpec a = test_spec(LK_DENSE, "a", "out=7"), b = test_spec(LK_DENSE, "b", "out=7 init=default");
    Layer la, lb;
    Param pa[2], pb[2];
    cr_assert(gradcheck_setup(&la, &a, (Shape){1, 9, 1, 1}, 1, NULL, 4, err, sizeof err) == 0, "%s", err);
    cr_assert(gradcheck_setup(&lb, &b, (Shape){1, 9, 1, 1}, 1, NULL, 4, err, sizeof err) == 0, "%s", err);
    la.ops->params(&la, pa), lb.ops->params(&lb, pb);
    cr_expect(memcmp(pa[0].value, pb[0].value, 63 * sizeof(float)) == 0);
    cr_expect(memcmp(pa[1].value, pb[1].value, 7 * sizeof(float)) == 0);
    Rng r;
    rng_seed(&r, 4);
    float bound = 1.0f / sqrtf(9.0f);
    for (int i = 0; i < 63; i++)
        cr_expect_eq(pa[0].value[i], (2.0f * rng_uniform(&r) - 1.0f) * bound, "weight %d", i);
    la.ops->destroy(&la), lb.ops->destroy(&lb);
}

/* normal(0) is a legal experiment (every weight zero); the draw is the same on every call with one seed. */
Test(init, normal_zero_and_determinism)
{
    LayerInit z, n;
    char err[256];
    float w[64], w2[64], b[4] = {1, 1, 1, 1};
    cr_assert(layer_init_parse("normal(0)", &z, err, sizeof err) == 0, "%s", err);
    cr_assert(layer_init_parse("normal(1.5e-1)", &n, err, sizeof err) == 0, "%s", err);
    cr_expect(n.kind == INIT_NORMAL && n.scale == 0.15);
    Rng r;
    rng_seed(&r, 1);
    layer_init_params(&z, w, 64, b, 4, 8, 8, &r);
    for (int i = 0; i < 64; i++)
        cr_expect_eq(w[i], 0.0f);
    for (int i = 0; i < 4; i++)
        cr_expect_eq(b[i], 0.0f);
    rng_seed(&r, 2);
    layer_init_params(&n, w, 64, NULL, 0, 8, 8, &r);
    rng_seed(&r, 2);
    layer_init_params(&n, w2, 64, NULL, 0, 8, 8, &r);
    cr_expect(memcmp(w, w2, sizeof w) == 0);
}

/* Every form that is not one of the five is refused by the schema's rule, naming the forms. */
Test(init, bad_forms_are_refused)
{
    static const char *bad[] = {"foo", "Default", "normal", "normal()", "normal(-1)", "normal(0.1",
                                "normal(0.1)x", "uniform(abc)", "uniform(inf)", "normal(nan)", "xavier(1)", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        LayerSpec s;
        char args[64], err[256] = "";
        snprintf(args, sizeof args, "out=3 init=%s", bad[i]);
        cr_expect(layer_spec_make(&s, LK_DENSE, "d", args, err, sizeof err) != 0, "init=\"%s\" accepted", bad[i]);
        cr_expect(strstr(err, "argument 'init' of dense must be \"default\", \"xavier\", \"kaiming\"") != NULL,
                  "init=\"%s\": %s", bad[i], err);
    }
}

/* The gradients do not depend on how the weights were drawn, but the layers are built through another path:
 * finite differences through conv2d and dense made with each scheme. */
Test(init, gradcheck_layers_built_with_each_scheme)
{
    static const char *inits[] = {"xavier", "kaiming", "normal(0.3)", "uniform(0.5)"};
    for (size_t i = 0; i < 4; i++) {
        char args[96], err[256];
        GradCheckResult r;
        Layer l;
        snprintf(args, sizeof args, "out=3 kernel=3 padding=1 init=%s", inits[i]);
        LayerSpec c = test_spec(LK_CONV2D, "c", args);
        cr_assert(gradcheck_setup(&l, &c, (Shape){3, 2, 5, 5}, 2, NULL, 5, err, sizeof err) == 0, "%s", err);
        cr_expect(gradcheck_layer(&l, 2, 1, 5, 0, &r) == 0, "conv2d init=%s: %s", inits[i], r.worst);
        l.ops->destroy(&l);
        snprintf(args, sizeof args, "out=4 init=%s", inits[i]);
        LayerSpec d = test_spec(LK_DENSE, "d", args);
        cr_assert(gradcheck_setup(&l, &d, (Shape){1, 6, 1, 1}, 3, NULL, 6, err, sizeof err) == 0, "%s", err);
        cr_expect(gradcheck_layer(&l, 3, 1, 6, 0, &r) == 0, "dense init=%s: %s", inits[i], r.worst);
        l.ops->destroy(&l);
    }
}
