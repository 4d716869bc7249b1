/* sigmoid: elementwise activation; the shape passes through unchanged. */
#include <math.h>

#include "../layer.h"
#include "../threads.h"
#include "act.h"
#include "common.h"

static int sigmoid_out_shape(const LayerSpec *s, Shape in, Shape *out, long long *np, long long *nb, char *err,
                            size_t errlen)
{
    (void)s, (void)err, (void)errlen;
    *out = in;
    *np = *nb = 0;
    return 0;
}

/* Stable for large |v|: exp is only ever taken of -|v|, so it never overflows. NaN stays NaN. */
static inline float sigmoidf(float v)
{
    float e = act_expf(-fabsf(v));
    return (v >= 0 ? 1.0f : e) / (1.0f + e);
}

#include "simd.h"

#if SIMD_WIDTH
/* sigmoidf on SIMD_WIDTH lanes with the same float operations in the same order, so the same bits (checked over
 * all 2^32 inputs with AVX-512; tests/test_activations.c compares the paths in every build). GCC's vectorisation
 * of sigmoidf turned each ?: into masked moves and blends, 55 instructions a vector with AVX-512, and left it
 * scalar with AVX2 (10 cycles a value); this is 27 with AVX-512, and sigmoid 1.7x faster. act_expf's two-factor
 * 2^k is simd_scale2: one vscalefps with AVX-512 (both round p * 2^k once, denormal results included). */
static inline SimdF sigmoid_vec(SimdF v)
{
    const SimdF one = simd_set1(1.0f), magic = simd_set1(12582912.0f);
    SimdF a = simd_or(v, simd_set1(-0.0f));       /* -|v| */
    SimdF x = simd_max(a, simd_set1(-104.0f));    /* NaN gives -104, restored below */
    SimdF n = simd_sub(simd_add(simd_mul(x, simd_set1(1.44269504088896341f)), magic), magic);
    SimdF r = simd_sub(x, simd_mul(n, simd_set1(0.693359375f)));
    r = simd_sub(r, simd_mul(n, simd_set1(-2.12194440e-4f)));
    SimdF p = simd_set1(1.9875691500e-4f);
    p = simd_fma(p, r, simd_set1(1.3981999507e-3f));
    p = simd_fma(p, r, simd_set1(8.3334519073e-3f));
    p = simd_fma(p, r, simd_set1(4.1665795894e-2f));
    p = simd_fma(p, r, simd_set1(1.6666665459e-1f));
    p = simd_fma(p, r, simd_set1(5.0000001201e-1f));
    p = simd_add(simd_fma(p, simd_mul(r, r), r), one);
    SimdF e = simd_blend(simd_scale2(p, n), a, simd_isnan(a));
    SimdF num = simd_blend(e, one, simd_ge(v, simd_zero()));
    return simd_div(num, simd_add(one, e));
}
#endif

/* Whole vectors, then the last values one at a time. x, y are (n) */
static void sigmoid_forward(float *y, const float *x, size_t n)
{
    size_t i = 0;
#if SIMD_WIDTH
    for (; i + SIMD_WIDTH <= n; i += SIMD_WIDTH)
        simd_store(y + i, sigmoid_vec(simd_load(x + i)));
#endif
    for (; i < n; i++)
        y[i] = sigmoidf(x[i]);
}

/* dsigmoid/dx = y (1 - y), from the saved output, in PyTorch's order of operations. dx, y, dy are (n) */
static void sigmoid_backward(float *dx, const float *y, const float *dy, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dx[i] = dy[i] * (1.0f - y[i]) * y[i];
}

/* Elementwise, so the same result at any thread count; the forward, an exponential a value, is worth threads from
 * fewer values. */
static void sigmoid_layer_forward(Layer *l, const Tensor *x, int train)
{
    (void)train;
    layer_act_forward(l, x, sigmoid_forward, RT_MIN_PARALLEL / 8);
}

static void sigmoid_layer_backward(Layer *l, const Tensor *x, Tensor *dx)
{
    layer_act_backward(l, x, dx, sigmoid_backward);
}

/* Eval-mode fusion (LayerPost): the same function, in place on the output of the layer before. */
static void sigmoid_inplace(float *y, size_t n) { sigmoid_forward(y, y, n); }

const LayerOps sigmoid_ops = {
    .type = "sigmoid",
    .out_shape = sigmoid_out_shape,
    .create = layer_create_none,
    .resize = layer_resize_io,
    .forward = sigmoid_layer_forward,
    .backward = sigmoid_layer_backward,
    .destroy = layer_free_io,
    .eval_act = sigmoid_inplace,
    .grad_from_output = 1,
    .act_grad = sigmoid_backward,
};
