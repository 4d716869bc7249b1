/* sigmoid, relu, tanh: finite-difference gradients (tests/gradcheck.h) on CxHxW and flat inputs in both modes,
 * values against double-precision formulas, sigmoid's stability at large |x|, relu's gradient at 0, and NaN
 * passing through (so a diverged run stays visible). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/layer.h"
#include "tests/gradcheck.h"

static void check_grad(LayerKind kind, Shape in, int batch, int train, uint64_t seed)
{
    char err[256];
    LayerSpec s = {.kind = kind, .name = "act"};
    Layer l;
    GradCheckResult r;
    cr_assert(gradcheck_setup(&l, &s, in, batch, NULL, seed, err, sizeof err) == 0, "%s", err);
    cr_expect(gradcheck_layer(&l, batch, train, seed, 0, &r) == 0, "%s: %s", l.ops->type, r.worst);
    cr_expect_eq(r.nkinks, 0, "%s: inputs stay a step away from kinks, yet %d kinks", l.ops->type, r.nkinks);
    l.ops->destroy(&l);
}

Test(activations, gradcheck_sigmoid)
{
    check_grad(LK_SIGMOID, (Shape){3, 2, 5, 3}, 3, 1, 1);
    check_grad(LK_SIGMOID, (Shape){1, 7, 1, 1}, 2, 0, 2);
}

Test(activations, gradcheck_tanh)
{
    check_grad(LK_TANH, (Shape){3, 3, 4, 4}, 2, 1, 3);
    check_grad(LK_TANH, (Shape){1, 9, 1, 1}, 3, 0, 4);
}

Test(activations, gradcheck_relu)
{
    check_grad(LK_RELU, (Shape){3, 2, 6, 5}, 2, 1, 5);
    check_grad(LK_RELU, (Shape){1, 11, 1, 1}, 4, 0, 6);
}

/* Runs one forward over the given values (1 x n) and returns the layer (caller destroys). */
static Layer run(LayerKind kind, LayerSpec *s, const float *v, int n, Tensor *x)
{
    char err[256];
    Layer l;
    *s = (LayerSpec){.kind = kind, .name = "act"};
    cr_assert(gradcheck_setup(&l, s, (Shape){1, n, 1, 1}, 1, NULL, 1, err, sizeof err) == 0, "%s", err);
    cr_assert(tensor_alloc(x, 1, n, 1, 1) == 0);
    memcpy(x->data, v, (size_t)n * sizeof(float));
    l.ops->forward(&l, x, 1);
    return l;
}

/* Against 1/(1+exp(-x)) in double, including where the naive float formula would overflow or cancel. */
Test(activations, sigmoid_values_and_stability)
{
    float v[] = {-1000, -100, -30, -5, -0.5f, 0, 0.5f, 5, 30, 100, 1000, -88.5f, 88.5f};
    int n = sizeof v / sizeof *v;
    LayerSpec s;
    Tensor x, dx;
    Layer l = run(LK_SIGMOID, &s, v, n, &x);
    cr_assert(tensor_alloc(&dx, 1, n, 1, 1) == 0);
    for (int i = 0; i < n; i++) {
        double want = 1.0 / (1.0 + exp(-(double)v[i]));
        float y = l.y.data[i];
        cr_expect(isfinite(y) && y >= 0 && y <= 1, "sigmoid(%g) = %g", (double)v[i], (double)y);
        /* Relative for tiny outputs too (exp(-30) must not come out as 0); denormals get an absolute 1e-44. */
        cr_expect(fabs(y - want) <= 1e-6 * want + 1e-44, "sigmoid(%g) = %.9g, want %.9g", (double)v[i], (double)y,
                  want);
        l.dy.data[i] = 1.0f;
    }
    l.ops->backward(&l, &x, &dx);
    for (int i = 0; i < n; i++) {
        double sg = 1.0 / (1.0 + exp(-(double)v[i])), want = sg * (1 - sg);
        cr_expect(isfinite(dx.data[i]) && fabs(dx.data[i] - want) <= 1e-6, "sigmoid'(%g) = %g, want %g",
                  (double)v[i], (double)dx.data[i], want);
    }
    tensor_free(&x), tensor_free(&dx);
    l.ops->destroy(&l);
}

Test(activations, tanh_values)
{
    float v[] = {-50, -3, -0.7f, -1e-4f, 0, 1e-4f, 0.7f, 3, 50};
    int n = sizeof v / sizeof *v;
    LayerSpec s;
    Tensor x, dx;
    Layer l = run(LK_TANH, &s, v, n, &x);
    cr_assert(tensor_alloc(&dx, 1, n, 1, 1) == 0);
    for (int i = 0; i < n; i++) {
        double want = tanh((double)v[i]);
        cr_expect(fabs(l.y.data[i] - want) <= 1e-6 * fabs(want) + 1e-12, "tanh(%g) = %.9g, want %.9g", (double)v[i],
                  (double)l.y.data[i], want);
        l.dy.data[i] = 2.0f;
    }
    l.ops->backward(&l, &x, &dx);
    for (int i = 0; i < n; i++) {
        double t = tanh((double)v[i]), want = 2 * (1 - t * t);
        cr_expect(fabs(dx.data[i] - want) <= 1e-6, "2 tanh'(%g) = %g, want %g", (double)v[i], (double)dx.data[i], want);
    }
    tensor_free(&x), tensor_free(&dx);
    l.ops->destroy(&l);
}

/* relu(x) = max(x, 0); the gradient at exactly 0 is 0 (PyTorch's choice), 1 above. */
Test(activations, relu_values_and_gradient_at_zero)
{
    float v[] = {-2, -1e-30f, 0, 1e-30f, 3};
    float want_y[] = {0, 0, 0, 1e-30f, 3}, want_dx[] = {0, 0, 0, 5, 5};
    int n = sizeof v / sizeof *v;
    LayerSpec s;
    Tensor x, dx;
    Layer l = run(LK_RELU, &s, v, n, &x);
    cr_assert(tensor_alloc(&dx, 1, n, 1, 1) == 0);
    for (int i = 0; i < n; i++) {
        cr_expect_eq(l.y.data[i], want_y[i], "relu(%g) = %g", (double)v[i], (double)l.y.data[i]);
        l.dy.data[i] = 5.0f;
    }
    l.ops->backward(&l, &x, &dx);
    for (int i = 0; i < n; i++)
        cr_expect_eq(dx.data[i], want_dx[i], "relu'(%g) * 5 = %g", (double)v[i], (double)dx.data[i]);
    tensor_free(&x), tensor_free(&dx);
    l.ops->destroy(&l);
}

Test(activations, nan_passes_through)
{
    LayerKind kinds[] = {LK_SIGMOID, LK_TANH, LK_RELU};
    float v[] = {1, NAN, -1};
    for (int k = 0; k < 3; k++) {
        LayerSpec s;
        Tensor x;
        Layer l = run(kinds[k], &s, v, 3, &x);
        cr_expect(isnan(l.y.data[1]), "%s(NaN) = %g", l.ops->type, (double)l.y.data[1]);
        cr_expect(!isnan(l.y.data[0]) && !isnan(l.y.data[2]), "%s: NaN leaked to its neighbours", l.ops->type);
        tensor_free(&x);
        l.ops->destroy(&l);
    }
}

/* The vector path (whole groups of 16 in AVX-512 builds, of 8 in AVX2 builds) against the one-value path (the
 * values after the last whole vector): every 4099th float bit pattern, about a million inputs across the whole
 * range with NaNs, infinities and denormals, goes through the layer once in one call and once in calls of 7 values
 * (fewer than a vector: all of them on the one-value path). The
 * two must agree bit for bit (NaN with NaN), so the fused and unfused, vector and scalar evaluations of a
 * network never differ; the values themselves are checked against double precision above. */
Test(activations, sigmoid_vector_and_scalar_paths_agree)
{
    enum { N = 1047789 }; /* 2^32 / 4099, rounded up */
    float *v = malloc(N * sizeof *v), *whole = malloc(N * sizeof *whole);
    cr_assert(v && whole);
    for (size_t i = 0; i < N; i++) {
        uint32_t u = (uint32_t)(i * 4099u);
        memcpy(&v[i], &u, sizeof u);
    }
    LayerSpec s;
    Tensor x;
    Layer l = run(LK_SIGMOID, &s, v, N, &x);
    memcpy(whole, l.y.data, N * sizeof *whole);
    tensor_free(&x);
    l.ops->destroy(&l);
    for (size_t i0 = 0; i0 < N; i0 += 7) {
        int n = N - i0 < 7 ? (int)(N - i0) : 7;
        l = run(LK_SIGMOID, &s, v + i0, n, &x);
        for (int j = 0; j < n; j++) {
            float a = whole[i0 + j], b = l.y.data[j];
            cr_assert(memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b)), "sigmoid(%a): %a in a vector, %a alone",
                      (double)v[i0 + j], (double)a, (double)b);
        }
        tensor_free(&x);
        l.ops->destroy(&l);
    }
    free(v), free(whole);
}
