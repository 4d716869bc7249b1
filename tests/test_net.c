/* The network: finite differences through whole networks (a small CNN with every layer kind but batchnorm, and a
 * LeNet-BN in both modes; tests/gradcheck.h); the documented initialisation order redrawn here from the seed;
 * the parameter list; zeroing; partial batches; the dropout stream; and errors: mismatched shapes, batch 0 and
 * bad inputs are reported, never crash. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/layer.h"
#include "runtime/net.h"
#include "runtime/threads.h"
#include "tests/gradcheck.h"
#include "tests/specs.h"

#define L test_layer
#define CONV(name, units, k, s, p) L(LK_CONV2D, name, units, k, s, p)
#define DENSE(name, units) L(LK_DENSE, name, units, 0, 0, 0)
#define POOL(kind, name, k, s, p) L(kind, name, 0, k, s, p)
#define ACT(kind, name) L(kind, name, 0, 0, 0, 0)

/* Fills the shapes, creates and returns the net (caller frees). */
static Net *make(LayerSpec *specs, int n, Shape in, uint64_t seed)
{
    char err[256];
    Shape out;
    Net *net;
    cr_assert(gradcheck_shapes(specs, n, in, &out, err, sizeof err) == 0, "%s", err);
    cr_assert(net_create(specs, n, in, seed, &net, err, sizeof err) == 0, "%s", err);
    return net;
}

Test(net, gradcheck_small_cnn)
{
    LayerSpec specs[] = {CONV("c1", 4, 3, 1, 1),   ACT(LK_RELU, "r1"),         POOL(LK_MAXPOOL, "p1", 2, 2, 0),
                         CONV("c2", 3, 3, 1, 1),   ACT(LK_TANH, "t2"),         POOL(LK_AVGPOOL, "p2", 3, 2, 1),
                         ACT(LK_FLATTEN, "flat"),  DENSE("fc1", 8),            ACT(LK_SIGMOID, "s3"),
                         ACT(LK_DROPOUT, "drop"),  DENSE("fc2", 3)};
    Net *net = make(specs, 11, (Shape){3, 2, 8, 8}, 3);
    GradCheckResult r;
    cr_expect(gradcheck_net(net, 3, 1, 1, 0, &r) == 0, "train: %s", r.worst);
    cr_expect(gradcheck_net(net, 2, 0, 2, 0, &r) == 0, "eval: %s", r.worst);
    net_free(net);
}

/* Sets every batchnorm's moving variance to v. */
static void set_moving_var(Net *net, float v)
{
    NetParam *p;
    int np = net_params(net, &p);
    cr_assert(np >= 0);
    for (int j = 0; j < np; j++)
        for (size_t i = 0; strcmp(p[j].p.name, "moving_var") == 0 && i < p[j].p.size; i++)
            p[j].p.value[i] = v;
    free(p);
}

/* The reference workload's shape of network (smaller input): batchnorm after every conv/dense but the last. */
Test(net, gradcheck_lenet_bn)
{
    LayerSpec specs[] = {
        CONV("conv1", 6, 5, 1, 2), ACT(LK_BATCHNORM, "bn1"), ACT(LK_SIGMOID, "s1"), POOL(LK_AVGPOOL, "p1", 2, 2, 0),
        CONV("conv2", 8, 3, 1, 0), ACT(LK_BATCHNORM, "bn2"), ACT(LK_SIGMOID, "s2"), POOL(LK_AVGPOOL, "p2", 2, 2, 0),
        ACT(LK_FLATTEN, "flat"),   DENSE("fc1", 12),         ACT(LK_BATCHNORM, "bn3"), ACT(LK_SIGMOID, "s3"),
        DENSE("fc2", 10)};
    Net *net = make(specs, 13, (Shape){3, 1, 12, 12}, 1);
    GradCheckResult r;
    /* Eval first, with moving variances of 0.05: each batchnorm then scales by 4.5, so that every gradient, the
     * input's included, stands well above float32 noise (input: up to 1e-2 against noise of 4e-5; at the initial
     * variances of 1 it was 2e-4, and a zeroed input gradient passed). After the train check's hundreds of forwards
     * the variances settle near this small net's batch variances (~1e-3), and eval through rstd ~ 30 is too
     * ill-conditioned for float32 differences. batchnorm's own tests check eval with non-trivial statistics. */
    set_moving_var(net, 0.05f);
    cr_expect(gradcheck_net(net, 4, 0, 6, 0, &r) == 0, "eval: %s", r.worst);
    cr_expect(gradcheck_net(net, 4, 1, 5, 0, &r) == 0, "train: %s", r.worst);
    net_free(net);
}

/* The order net.c documents, redrawn here: one stream from the seed; conv weight, conv bias, then dense weight,
 * dense bias, each U(-1/sqrt(fan_in), 1/sqrt(fan_in)) in memory order; flatten and dropout draw nothing. */
Test(net, init_order_is_as_documented)
{
    LayerSpec specs[] = {CONV("c", 2, 3, 1, 0), ACT(LK_DROPOUT, "d"), ACT(LK_FLATTEN, "f"), DENSE("fc", 3)};
    Net *net = make(specs, 4, (Shape){3, 1, 4, 4}, 1234);
    NetParam *p;
    Rng r;
    size_t sizes[] = {18, 2, 24, 3};
    float bounds[] = {1.0f / sqrtf(9.0f), 1.0f / sqrtf(9.0f), 1.0f / sqrtf(8.0f), 1.0f / sqrtf(8.0f)};
    cr_assert_eq(net_params(net, &p), 4);
    rng_seed(&r, 1234);
    for (int j = 0; j < 4; j++) {
        cr_assert_eq(p[j].p.size, sizes[j]);
        for (size_t i = 0; i < sizes[j]; i++) {
            float want = (2.0f * rng_uniform(&r) - 1.0f) * bounds[j];
            cr_expect_eq(p[j].p.value[i], want, "%s.%s[%zu] = %g, want %g", p[j].layer->name, p[j].p.name, i,
                         (double)p[j].p.value[i], (double)want);
        }
    }
    free(p);
    net_free(net);
}

static int same_params(Net *a, Net *b)
{
    NetParam *pa, *pb;
    int n = net_params(a, &pa), same = n == net_params(b, &pb);
    for (int j = 0; same && j < n; j++)
        same = memcmp(pa[j].p.value, pb[j].p.value, pa[j].p.size * sizeof(float)) == 0;
    free(pa), free(pb);
    return same;
}

Test(net, same_seed_same_weights)
{
    LayerSpec specs[] = {CONV("c", 3, 3, 1, 1), ACT(LK_FLATTEN, "f"), DENSE("fc", 4)};
    Shape in = {3, 2, 5, 5};
    Net *a = make(specs, 3, in, 7), *b = make(specs, 3, in, 7), *c = make(specs, 3, in, 8);
    cr_expect(same_params(a, b), "seed 7 twice");
    cr_expect(!same_params(a, c), "seeds 7 and 8");
    net_free(a), net_free(b), net_free(c);
}

/* Every trainable value once, in network order, counted as the shape rules count them; buffers flagged. */
Test(net, params_list_matches_the_specs)
{
    LayerSpec specs[] = {CONV("conv1", 4, 3, 1, 0), ACT(LK_BATCHNORM, "bn1"), ACT(LK_RELU, "r"),
                         ACT(LK_FLATTEN, "f"), DENSE("fc", 5)};
    const char *layer[] = {"conv1", "conv1", "bn1", "bn1", "bn1", "bn1", "fc", "fc"};
    Net *net = make(specs, 5, (Shape){3, 2, 5, 5}, 1);
    NetParam *p;
    long long trainable = 0, buffers = 0, want_t = 0, want_b = 0;
    int n = net_params(net, &p);
    cr_assert_eq(n, 8);
    for (int j = 0; j < n; j++) {
        cr_expect_str_eq(p[j].layer->name, layer[j]);
        if (p[j].p.trainable) {
            cr_expect(p[j].p.grad != NULL, "%s.%s has no gradient", p[j].layer->name, p[j].p.name);
            trainable += (long long)p[j].p.size;
        } else {
            buffers += (long long)p[j].p.size;
        }
    }
    for (int i = 0; i < 5; i++)
        want_t += specs[i].nparams, want_b += specs[i].nbuffers;
    cr_expect_eq(trainable, want_t);
    cr_expect_eq(buffers, want_b);
    free(p);
    net_free(net);
}

/* After backward every gradient is non-zero somewhere; net_zero_grad clears all, residual bodies included. */
Test(net, zero_grad_clears_every_gradient)
{
    char err[256];
    LayerSpec body[] = {DENSE("inner", 6), ACT(LK_TANH, "t")};
    LayerSpec specs[] = {DENSE("fc1", 6), L(LK_RESIDUAL, "res", 0, 0, 0, 0), DENSE("fc2", 2)};
    Net *net;
    NetParam *p;
    Tensor x, dout;
    int n;
    specs[1].body = body, specs[1].nbody = 2;
    net = make(specs, 3, (Shape){1, 4, 1, 1}, 1);
    cr_assert(net_resize(net, 3, err, sizeof err) == 0, "%s", err);
    cr_assert(tensor_alloc(&x, 3, 4, 1, 1) == 0 && tensor_alloc(&dout, 3, 2, 1, 1) == 0);
    gradcheck_fill_distinct(&x, 1);
    gradcheck_fill_distinct(&dout, 2);
    cr_assert(net_forward(net, &x, 1) != NULL);
    net_backward(net, &x, &dout, NULL);
    n = net_params(net, &p);
    cr_assert_eq(n, 6);
    for (int j = 0; j < n; j++) {
        float m = 0;
        for (size_t i = 0; i < p[j].p.size; i++)
            m = fmaxf(m, fabsf(p[j].p.grad[i]));
        cr_expect_gt(m, 0.0f, "%s.%s got no gradient", p[j].layer->name, p[j].p.name);
    }
    net_zero_grad(net);
    for (int j = 0; j < n; j++)
        for (size_t i = 0; i < p[j].p.size; i++)
            cr_expect_eq(p[j].p.grad[i], 0.0f, "%s.%s[%zu] not cleared", p[j].layer->name, p[j].p.name, i);
    free(p);
    tensor_free(&x), tensor_free(&dout);
    net_free(net);
}

/* net_backward without dx gives the same parameter gradients as with it. */
Test(net, backward_without_dx)
{
    char err[256];
    LayerSpec specs[] = {CONV("c", 2, 3, 1, 1), ACT(LK_SIGMOID, "s"), ACT(LK_FLATTEN, "f"), DENSE("fc", 3)};
    Net *net = make(specs, 4, (Shape){3, 1, 5, 5}, 2);
    NetParam *p;
    Tensor x, dx, dout;
    float g[50];
    cr_assert(net_resize(net, 2, err, sizeof err) == 0, "%s", err);
    cr_assert(tensor_alloc(&x, 2, 1, 5, 5) == 0 && tensor_alloc(&dx, 2, 1, 5, 5) == 0 &&
              tensor_alloc(&dout, 2, 3, 1, 1) == 0);
    gradcheck_fill_distinct(&x, 3);
    gradcheck_fill_distinct(&dout, 4);
    cr_assert_eq(net_params(net, &p), 4);
    cr_assert_eq(p[0].p.size, 18);
    net_forward(net, &x, 1);
    net_backward(net, &x, &dout, &dx);
    memcpy(g, p[0].p.grad, 18 * sizeof(float));
    net_zero_grad(net);
    net_backward(net, &x, &dout, NULL);
    cr_expect(memcmp(g, p[0].p.grad, 18 * sizeof(float)) == 0, "first layer's weight gradient depends on dx");
    free(p);
    tensor_free(&x), tensor_free(&dx), tensor_free(&dout);
    net_free(net);
}

/* The layers before the first trainable one have no gradient anyone reads, so net_backward without dx skips them
 * (net.h): every parameter gradient is still the one a backward with dx gives, bit for bit, and none is zero; the
 * first trainable layer may sit in a residual body. */
static void expect_same_grads_without_dx(LayerSpec *specs, int n, Shape in, int np)
{
    char err[256];
    Net *net = make(specs, n, in, 5);
    NetParam *p;
    Tensor x, dx, dout;
    cr_assert(net_resize(net, 3, err, sizeof err) == 0, "%s", err);
    cr_assert(tensor_alloc(&x, 3, in.c, in.h, in.w) == 0 && tensor_alloc(&dx, 3, in.c, in.h, in.w) == 0 &&
              tensor_alloc(&dout, 3, 3, 1, 1) == 0);
    gradcheck_fill_distinct(&x, 6);
    gradcheck_fill_distinct(&dout, 7);
    cr_assert_eq(net_params(net, &p), np);
    float *g[8] = {0};
    net_forward(net, &x, 1);
    net_backward(net, &x, &dout, &dx);
    for (int j = 0; j < np; j++) {
        cr_assert((g[j] = malloc(p[j].p.size * sizeof(float))) != NULL);
        memcpy(g[j], p[j].p.grad, p[j].p.size * sizeof(float));
    }
    net_zero_grad(net);
    net_backward(net, &x, &dout, NULL);
    for (int j = 0; j < np; j++) {
        float m = 0.0f;
        for (size_t i = 0; i < p[j].p.size; i++)
            m = fmaxf(m, fabsf(p[j].p.grad[i]));
        cr_expect_gt(m, 0.0f, "%s.%s got no gradient without dx", p[j].layer->name, p[j].p.name);
        cr_expect(memcmp(g[j], p[j].p.grad, p[j].p.size * sizeof(float)) == 0, "%s.%s differs without dx",
                  p[j].layer->name, p[j].p.name);
        free(g[j]);
    }
    free(p);
    tensor_free(&x), tensor_free(&dx), tensor_free(&dout);
    net_free(net);
}

Test(net, backward_without_dx_skips_only_untrained_layers)
{
    LayerSpec specs[] = {ACT(LK_RELU, "r"), ACT(LK_FLATTEN, "f"), DENSE("fc1", 4), ACT(LK_SIGMOID, "s"),
                         DENSE("fc2", 3)};
    expect_same_grads_without_dx(specs, 5, (Shape){3, 2, 3, 3}, 4);
    LayerSpec body[] = {DENSE("inner", 5), ACT(LK_TANH, "t")};
    LayerSpec nested[] = {ACT(LK_SIGMOID, "s"), L(LK_RESIDUAL, "res", 0, 0, 0, 0), DENSE("out", 3)};
    nested[1].body = body, nested[1].nbody = 2;
    expect_same_grads_without_dx(nested, 3, (Shape){1, 5, 1, 1}, 4);
}

/* Buffers are kept across calls at one batch size; a smaller batch runs in them and matches the full one. */
Test(net, resize_and_partial_batch)
{
    char err[256];
    LayerSpec specs[] = {CONV("c", 3, 3, 1, 1), ACT(LK_RELU, "r"), POOL(LK_MAXPOOL, "p", 2, 2, 0),
                         ACT(LK_FLATTEN, "f"), DENSE("fc", 4)};
    Net *net = make(specs, 5, (Shape){3, 2, 6, 6}, 3);
    Tensor x;
    const Tensor *y;
    float full[8 * 4];
    float *before;
    cr_assert(net_resize(net, 8, err, sizeof err) == 0, "%s", err);
    before = net->layers[0].y.data;
    cr_assert(net_resize(net, 8, err, sizeof err) == 0, "%s", err);
    cr_expect(net->layers[0].y.data == before, "resizing to the same batch must keep the buffers");
    cr_assert(tensor_alloc(&x, 8, 2, 6, 6) == 0);
    gradcheck_fill_distinct(&x, 5);
    cr_assert((y = net_forward(net, &x, 0)) != NULL);
    cr_expect(y->n == 8 && y->c == 4);
    memcpy(full, y->data, sizeof full);
    x.n = 5;
    cr_assert((y = net_forward(net, &x, 0)) != NULL);
    cr_expect_eq(y->n, 5);
    for (int i = 0; i < 5 * 4; i++)
        cr_expect(fabsf(y->data[i] - full[i]) <= 1e-6f * (1 + fabsf(full[i])), "partial y[%d] %g, full %g", i,
                  (double)y->data[i], (double)full[i]);
    cr_assert(net_resize(net, 3, err, sizeof err) == 0, "%s", err);
    x.n = 3;
    cr_assert((y = net_forward(net, &x, 0)) != NULL);
    for (int i = 0; i < 3 * 4; i++)
        cr_expect(fabsf(y->data[i] - full[i]) <= 1e-6f * (1 + fabsf(full[i])), "after resize y[%d]", i);
    x.n = 8;
    tensor_free(&x);
    net_free(net);
}

/* Training forwards draw masks from net->rng; eval draws nothing; the same seed gives the same masks. */
Test(net, dropout_uses_the_network_stream)
{
    char err[256];
    LayerSpec specs[] = {DENSE("fc", 50), ACT(LK_DROPOUT, "d")};
    Net *a = make(specs, 2, (Shape){1, 10, 1, 1}, 9), *b = make(specs, 2, (Shape){1, 10, 1, 1}, 9);
    Tensor x;
    Rng start = a->rng;
    cr_assert(net_resize(a, 4, err, sizeof err) == 0 && net_resize(b, 4, err, sizeof err) == 0, "%s", err);
    cr_assert(tensor_alloc(&x, 4, 10, 1, 1) == 0);
    gradcheck_fill_distinct(&x, 1);
    net_forward(a, &x, 0);
    cr_expect(memcmp(&start, &a->rng, sizeof start) == 0, "eval must not draw");
    const Tensor *ya = net_forward(a, &x, 1), *yb = net_forward(b, &x, 1);
    cr_expect(memcmp(&start, &a->rng, sizeof start) != 0, "training draws from net->rng");
    cr_expect(memcmp(ya->data, yb->data, 200 * sizeof(float)) == 0, "same seed, same masks");
    tensor_free(&x);
    net_free(a), net_free(b);
}

static void expect_create_error(LayerSpec *specs, int n, Shape in, const char *a, const char *b)
{
    char err[256] = "";
    Net *net = (Net *)&err; /* must be reset to NULL */
    cr_expect(net_create(specs, n, in, 1, &net, err, sizeof err) != 0, "mismatch accepted");
    cr_expect(net == NULL);
    cr_expect(strstr(err, a) && strstr(err, b), "message: %s (want '%s' and '%s')", err, a, b);
}

Test(net, mismatched_shapes_are_errors)
{
    char err[256];
    Shape in = {3, 1, 8, 8}, out;
    LayerSpec specs[] = {CONV("conv1", 4, 3, 1, 0), ACT(LK_FLATTEN, "flat"), DENSE("fc", 3)};
    cr_assert(gradcheck_shapes(specs, 3, in, &out, err, sizeof err) == 0, "%s", err);
    specs[1].loc.line = 4;
    /* The network's input differs from what the first layer expects. */
    expect_create_error(specs, 3, (Shape){3, 1, 9, 9}, "'conv1'", "expects input 1x8x8, but receives 1x9x9");
    /* A layer recorded with another input than its predecessor's output. */
    specs[1].in = (Shape){3, 4, 5, 5};
    expect_create_error(specs, 3, in, "'flat' (line 4)", "expects input 4x5x5, but receives 4x6x6");
    specs[1].in = specs[0].out;
    /* A recorded output its shape rule does not give. */
    specs[2].out.c = 7;
    expect_create_error(specs, 3, in, "'fc'", "records output 7, but its shape rule gives 3");
    specs[2].out.c = 3;
    /* A shape rule that fails: dense on a CxHxW input. */
    LayerSpec bad[] = {DENSE("fc0", 3)};
    bad[0].in = in, bad[0].out = (Shape){1, 3, 1, 1};
    expect_create_error(bad, 1, in, "'fc0'", "flatten");
    /* And the intact list is accepted. */
    Net *net;
    cr_expect(net_create(specs, 3, in, 1, &net, err, sizeof err) == 0, "%s", err);
    net_free(net);
}

Test(net, bad_batch_and_inputs_are_errors)
{
    char err[256] = "";
    LayerSpec specs[] = {ACT(LK_FLATTEN, "flat"), DENSE("fc", 3)};
    Net *net = make(specs, 2, (Shape){3, 2, 3, 3}, 1);
    Tensor x;
    cr_expect(net_resize(net, 0, err, sizeof err) != 0, "batch 0");
    cr_expect(strstr(err, "batch size must be at least 1, got 0"), "message: %s", err);
    cr_expect(net_resize(net, -4, err, sizeof err) != 0, "batch -4");
    cr_expect_eq(net->batch, 0);
    cr_assert(tensor_alloc(&x, 4, 2, 3, 3) == 0);
    cr_expect(net_forward(net, &x, 1) == NULL, "forward before any resize");
    cr_assert(net_resize(net, 2, err, sizeof err) == 0, "%s", err);
    cr_expect(net_forward(net, &x, 1) == NULL, "4 images into buffers for 2");
    x.n = 2, x.c = 3, x.h = 2;
    cr_expect(net_forward(net, &x, 1) == NULL, "3x2x3 images into a 2x3x3 network");
    x.c = 2, x.h = 3;
    cr_expect(net_forward(net, &x, 1) != NULL);
    x.n = 4;
    tensor_free(&x);
    net_free(net);
    net_free(NULL);
}

/* No layers: the output is the input, and the gradient passes straight through. */
Test(net, empty_network_is_identity)
{
    char err[256];
    Net *net;
    Tensor x, dx;
    cr_assert(net_create(NULL, 0, (Shape){1, 3, 1, 1}, 1, &net, err, sizeof err) == 0, "%s", err);
    cr_assert(net_resize(net, 2, err, sizeof err) == 0, "%s", err);
    cr_assert(tensor_alloc(&x, 2, 3, 1, 1) == 0 && tensor_alloc(&dx, 2, 3, 1, 1) == 0);
    gradcheck_fill_distinct(&x, 1);
    cr_expect(net_forward(net, &x, 1) == &x);
    net_backward(net, &x, &x, &dx);
    cr_expect(memcmp(dx.data, x.data, 6 * sizeof(float)) == 0);
    tensor_free(&x), tensor_free(&dx);
    net_free(net);
}

/* Gives every batchnorm of net moving statistics, gamma and beta far from their initial 0/1/1/0, so that a
 * normalisation applied twice, skipped or taken from the wrong layer shows. */
static void set_statistics(Net *net)
{
    NetParam *p;
    int np = net_params(net, &p);
    for (int j = 0; j < np; j++)
        for (size_t i = 0; i < p[j].p.size; i++) {
            const char *nm = p[j].p.name;
            float v = 0.1f * (float)((i * 7 + (size_t)j) % 11);
            if (!strcmp(nm, "moving_var") || !strcmp(nm, "gamma"))
                p[j].p.value[i] = 0.5f + v;
            else if (!strcmp(nm, "moving_mean") || !strcmp(nm, "beta"))
                p[j].p.value[i] = v - 0.5f;
        }
    free(p);
}

/* net_infer's fusion (LayerPost): a conv2d or dense applies the batchnorm and activation after it. The reference
 * is the same network run one layer at a time in eval mode with nothing fused; the results must agree bit for bit, for
 * conv -> bn -> sigmoid, conv -> relu (no batchnorm), dense -> bn -> tanh, dense -> bn (no activation), a
 * batchnorm and an activation that follow a pooling layer (nothing to absorb them), and a residual body (fused
 * by net_infer, unfused by the residual's own eval forward). */
Test(net, eval_fusion_matches_the_unfused_layers)
{
    char err[256];
    LayerSpec body[] = {CONV("rc1", 5, 3, 1, 1), L(LK_BATCHNORM, "rb1", 0, 0, 0, 0), ACT(LK_RELU, "rr"),
                        CONV("rc2", 5, 3, 1, 1), L(LK_BATCHNORM, "rb2", 0, 0, 0, 0)};
    LayerSpec s[] = {CONV("c1", 4, 3, 1, 1),   L(LK_BATCHNORM, "b1", 0, 0, 0, 0), ACT(LK_SIGMOID, "s1"),
                     POOL(LK_AVGPOOL, "p1", 2, 2, 0), L(LK_BATCHNORM, "b2", 0, 0, 0, 0), ACT(LK_TANH, "t1"),
                     CONV("c2", 5, 3, 1, 0),   ACT(LK_RELU, "r1"),                 L(LK_RESIDUAL, "res", 0, 0, 0, 0),
                     ACT(LK_FLATTEN, "f"),     DENSE("d1", 12),                    L(LK_BATCHNORM, "b3", 0, 0, 0, 0),
                     ACT(LK_TANH, "t2"),       DENSE("d2", 7),                     L(LK_BATCHNORM, "b4", 0, 0, 0, 0)};
    s[8].body = body, s[8].nbody = 5;
    int n = (int)(sizeof s / sizeof s[0]), batch = 5;
    Net *net = make(s, n, (Shape){3, 2, 10, 10}, 11);
    Tensor x;
    cr_assert(net_resize(net, batch, err, sizeof err) == 0, "%s", err);
    cr_assert(tensor_alloc(&x, batch, 2, 10, 10) == 0);
    gradcheck_fill_distinct(&x, 3);
    set_statistics(net);
    const Tensor *y = net_infer(net, &x);
    cr_assert(y != NULL);
    size_t len = tensor_size(y);
    float *fused = malloc(len * sizeof *fused);
    cr_assert(fused != NULL);
    memcpy(fused, y->data, len * sizeof *fused);
    const Tensor *h = &x;
    for (int i = 0; i < n; i++) { /* unfused: every layer's own eval forward */
        Layer *l = &net->layers[i];
        cr_assert(l->post.mean == NULL && l->post.act == NULL, "layer %d keeps a post after net_infer", i);
        l->ops->forward(l, h, 0);
        h = &l->y;
    }
    cr_assert(tensor_size(h) == len);
    for (size_t i = 0; i < len; i++)
        cr_assert(memcmp(&fused[i], &h->data[i], sizeof(float)) == 0, "output %zu: fused %a, unfused %a", i,
                  (double)fused[i], (double)h->data[i]);
    /* The residual's own eval forward after net_infer ran its body unfused: the body's batchnorm wrote its output
     * (a trace reads it), which net_infer had left to the conv2d before it. */
    const Net *rb = net->layers[8].ops->body(&net->layers[8]);
    const Tensor *bn_out = &rb->layers[1].y;
    float m = 0.0f;
    for (size_t i = 0; i < tensor_size(bn_out); i++)
        m = fmaxf(m, fabsf(bn_out->data[i]));
    cr_expect_gt(m, 0.0f, "the body's batchnorm output was not written by an eval forward after net_infer");
    free(fused);
    tensor_free(&x);
    net_free(net);
}

/* Training fusion (layer.h): a batchnorm, conv2d, dense or residual writes the activation after it (relu, sigmoid,
 * tanh) straight into the activation's output, and in the backward computes its own dy from the activation's. The
 * reference is a copy of the network run one layer at a time in training mode with nothing fused (so its backward
 * is not fused either); outputs, every parameter gradient, the input gradient and the moving statistics must agree
 * bit for bit, at 1, 2 and 3 threads (images split across threads, for the fused activation too). */
static void expect_training_fusion_exact(int threads)
{
    char err[256];
    LayerSpec body[] = {CONV("rc", 3, 3, 1, 1), ACT(LK_TANH, "rt")};
    LayerSpec s[] = {CONV("c1", 4, 3, 1, 1),   L(LK_BATCHNORM, "b1", 0, 0, 0, 0), ACT(LK_RELU, "r1"),
                     POOL(LK_MAXPOOL, "p1", 2, 2, 0), CONV("c2", 5, 3, 1, 0), L(LK_BATCHNORM, "b2", 0, 0, 0, 0),
                     ACT(LK_SIGMOID, "s1"),    CONV("c3", 3, 3, 1, 1),            ACT(LK_TANH, "t0"),
                     L(LK_RESIDUAL, "res", 0, 0, 0, 0), ACT(LK_RELU, "r3"),
                     ACT(LK_FLATTEN, "f"),     DENSE("d1", 48),                   ACT(LK_SIGMOID, "s2"),
                     DENSE("d2", 12),          L(LK_BATCHNORM, "b3", 0, 0, 0, 0), ACT(LK_TANH, "t1"),
                     DENSE("d3", 7),           L(LK_BATCHNORM, "b4", 0, 0, 0, 0), ACT(LK_RELU, "r2")};
    s[9].body = body, s[9].nbody = 2;
    int n = (int)(sizeof s / sizeof s[0]), batch = 40;
    Net *a = make(s, n, (Shape){3, 2, 20, 20}, 12), *b; /* b1 splits 40 x 4 x 400 values across the threads */
    Tensor x, dout, dxa, dxb;
    rt_set_threads(threads);
    cr_assert(net_resize(a, batch, err, sizeof err) == 0, "%s", err);
    set_statistics(a);
    cr_assert(net_clone(a, &b, err, sizeof err) == 0, "%s", err);
    cr_assert(net_resize(b, batch, err, sizeof err) == 0, "%s", err);
    cr_assert(tensor_alloc(&x, batch, 2, 20, 20) == 0 && tensor_alloc(&dxa, batch, 2, 20, 20) == 0 &&
              tensor_alloc(&dxb, batch, 2, 20, 20) == 0 && tensor_alloc(&dout, batch, 7, 1, 1) == 0);
    gradcheck_fill_distinct(&x, 5);
    gradcheck_fill_distinct(&dout, 6);
    const Tensor *ya = net_forward(a, &x, 1), *h = &x;
    for (int i = 0; i < n; i++) { /* unfused: every layer's own training forward */
        b->layers[i].ops->forward(&b->layers[i], h, 1);
        h = &b->layers[i].y;
    }
    for (int i = 0; i + 1 < n; i++)
        cr_assert_eq(a->layers[i].fused, s[i + 1].kind == LK_RELU || s[i + 1].kind == LK_SIGMOID ||
                     s[i + 1].kind == LK_TANH, "%s: fused exactly when an activation follows", s[i].name);
    for (int i = 0; i < n; i++)
        if (!a->layers[i].fused) /* a fused layer's own y is left unwritten */
            cr_expect(memcmp(a->layers[i].y.data, b->layers[i].y.data, tensor_size(&b->layers[i].y) * 4) == 0,
                      "output of %s differs", s[i].name);
    cr_assert(ya == &a->layers[n - 1].y);
    net_zero_grad(a), net_zero_grad(b);
    net_backward(a, &x, &dout, &dxa);
    net_backward(b, &x, &dout, &dxb);
    cr_expect(memcmp(dxa.data, dxb.data, tensor_size(&x) * sizeof(float)) == 0, "input gradients differ");
    NetParam *pa, *pb;
    int np = net_params(a, &pa);
    cr_assert_eq(net_params(b, &pb), np);
    for (int j = 0; j < np; j++) {
        size_t bytes = pa[j].p.size * sizeof(float);
        cr_expect(memcmp(pa[j].p.value, pb[j].p.value, bytes) == 0, "%s.%s differs", pa[j].layer->name,
                  pa[j].p.name);
        cr_expect(!pa[j].p.grad || memcmp(pa[j].p.grad, pb[j].p.grad, bytes) == 0, "%s.%s's gradient differs",
                  pa[j].layer->name, pa[j].p.name);
    }
    free(pa), free(pb);
    tensor_free(&x), tensor_free(&dout), tensor_free(&dxa), tensor_free(&dxb);
    net_free(a), net_free(b);
    rt_set_threads(1);
}

Test(net, training_fusion_matches_the_unfused_layers)
{
    expect_training_fusion_exact(1);
    expect_training_fusion_exact(2);
    expect_training_fusion_exact(3); /* d1's 40 rows are two blocks (40 x 192 x 48 is threaded): the third has none */
}

/* net_clone: the same values in separate memory, and the same inference outputs. */
Test(net, clone_copies_values_not_buffers)
{
    char err[256];
    LayerSpec s[] = {CONV("c1", 3, 3, 1, 0), L(LK_BATCHNORM, "b1", 0, 0, 0, 0), ACT(LK_SIGMOID, "s1"),
                     ACT(LK_FLATTEN, "f"), DENSE("d1", 4)};
    Net *a = make(s, 5, (Shape){3, 1, 6, 6}, 2), *b;
    NetParam *pa, *pb;
    Tensor x;
    set_statistics(a);
    cr_assert(net_clone(a, &b, err, sizeof err) == 0, "%s", err);
    int na = net_params(a, &pa), nb = net_params(b, &pb);
    cr_assert(na == nb && na == 8, "%d and %d parameters", na, nb);
    for (int j = 0; j < na; j++) {
        cr_expect(pa[j].p.value != pb[j].p.value, "%s/%s shares memory", pa[j].layer->name, pa[j].p.name);
        cr_expect(memcmp(pa[j].p.value, pb[j].p.value, pa[j].p.size * sizeof(float)) == 0, "%s/%s differs",
                  pa[j].layer->name, pa[j].p.name);
    }
    cr_assert(net_resize(a, 3, err, sizeof err) == 0 && net_resize(b, 3, err, sizeof err) == 0, "%s", err);
    cr_assert(tensor_alloc(&x, 3, 1, 6, 6) == 0);
    gradcheck_fill_distinct(&x, 4);
    const Tensor *ya = net_infer(a, &x), *yb = net_infer(b, &x);
    cr_assert(ya && yb && ya->data != yb->data);
    cr_expect(memcmp(ya->data, yb->data, tensor_size(ya) * sizeof(float)) == 0);
    free(pa), free(pb);
    tensor_free(&x);
    net_free(a), net_free(b);
}
