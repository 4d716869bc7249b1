/* residual: y = body(x) + x. Finite differences through bodies of dense, conv, tanh, sigmoid, relu, dropout
 * (mask held fixed) and a nested residual (tests/gradcheck.h); the output against the same body built as a
 * network of its own from the same seed; an empty body (y = 2x); parameters flattened in order; and a body that
 * changes the shape is refused. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/layer.h"
#include "runtime/net.h"
#include "tests/gradcheck.h"
#include "tests/specs.h"

static LayerSpec dense(const char *name, int units)
{
    return test_layer(LK_DENSE, name, units, 0, 0, 0);
}

static LayerSpec conv(const char *name, int units, int k, int pad)
{
    return test_layer(LK_CONV2D, name, units, k, 1, pad);
}

static LayerSpec simple(const char *name, LayerKind kind)
{
    LayerSpec s = {.kind = kind};
    snprintf(s.name, sizeof s.name, "%s", name);
    return s;
}

static LayerSpec residual(const char *name, LayerSpec *body, int n)
{
    LayerSpec s = {.kind = LK_RESIDUAL, .body = body, .nbody = n};
    snprintf(s.name, sizeof s.name, "%s", name);
    return s;
}

static void check_grad(LayerSpec *s, Shape in, int batch, int train, uint64_t seed)
{
    char err[256];
    Layer l;
    Rng stream;
    GradCheckResult r;
    rng_seed(&stream, seed + 100);
    cr_assert(gradcheck_setup(&l, s, in, batch, &stream, seed, err, sizeof err) == 0, "%s", err);
    cr_expect(gradcheck_layer(&l, batch, train, seed, 0, &r) == 0, "%s: %s", s->name, r.worst);
    cr_expect_gt(r.nchecked, 0);
    l.ops->destroy(&l);
}

Test(residual, gradcheck_dense_tanh_body)
{
    LayerSpec body[] = {dense("fc1", 5), simple("t", LK_TANH), dense("fc2", 7)};
    LayerSpec s = residual("res", body, 3);
    check_grad(&s, (Shape){1, 7, 1, 1}, 3, 1, 1);
}

Test(residual, gradcheck_conv_sigmoid_body)
{
    LayerSpec body[] = {conv("c1", 4, 3, 1), simple("s", LK_SIGMOID), conv("c2", 2, 3, 1)};
    LayerSpec s = residual("res", body, 3);
    check_grad(&s, (Shape){3, 2, 5, 4}, 2, 1, 2);
}

/* relu inside: a parameter step can cross a kink; the checker recognises those by their one-sided slopes. */
Test(residual, gradcheck_relu_dropout_body_train_and_eval)
{
    LayerSpec body[] = {dense("fc1", 9), simple("r", LK_RELU), simple("d", LK_DROPOUT), dense("fc2", 6)};
    LayerSpec s;
    body[2].arg[layer_arg_index(LK_DROPOUT, "p")].num = 0.3;
    s = residual("res", body, 4);
    check_grad(&s, (Shape){1, 6, 1, 1}, 3, 1, 3);
    check_grad(&s, (Shape){1, 6, 1, 1}, 3, 0, 4);
}

Test(residual, gradcheck_nested)
{
    LayerSpec inner_body[] = {dense("fc_in", 4), simple("s", LK_SIGMOID), dense("fc_in2", 4)};
    LayerSpec body[] = {dense("fc1", 4), simple("t", LK_TANH), residual("inner", inner_body, 3)};
    LayerSpec s = residual("outer", body, 3);
    check_grad(&s, (Shape){1, 4, 1, 1}, 2, 1, 5);
}

/* The residual's body is built from the same init stream at the same position, so a network made of the body
 * alone (same seed) has the same weights, and y must be exactly that network's output plus x. */
Test(residual, output_is_body_plus_x)
{
    char err[256];
    LayerSpec body[] = {conv("c1", 3, 3, 1), simple("t", LK_TANH)}, s = residual("res", body, 2);
    Shape in = {3, 3, 4, 4}, out;
    Layer l;
    Net *net;
    Tensor x;
    const Tensor *yb;
    cr_assert(gradcheck_setup(&l, &s, in, 2, NULL, 42, err, sizeof err) == 0, "%s", err);
    cr_assert(gradcheck_shapes(body, 2, in, &out, err, sizeof err) == 0, "%s", err);
    cr_assert(net_create(body, 2, in, 42, &net, err, sizeof err) == 0, "%s", err);
    cr_assert(net_resize(net, 2, err, sizeof err) == 0, "%s", err);
    cr_assert(tensor_alloc(&x, 2, 3, 4, 4) == 0);
    gradcheck_fill_distinct(&x, 1);
    l.ops->forward(&l, &x, 1);
    cr_assert((yb = net_forward(net, &x, 1)) != NULL);
    for (size_t i = 0; i < tensor_size(&x); i++)
        cr_expect_eq(l.y.data[i], yb->data[i] + x.data[i], "y[%zu] = %g, body + x = %g", i, (double)l.y.data[i],
                     (double)(yb->data[i] + x.data[i]));
    tensor_free(&x);
    net_free(net);
    l.ops->destroy(&l);
}

Test(residual, empty_body_doubles)
{
    char err[256];
    LayerSpec s = residual("res", NULL, 0);
    Layer l;
    Tensor x, dx;
    cr_assert(gradcheck_setup(&l, &s, (Shape){1, 5, 1, 1}, 2, NULL, 1, err, sizeof err) == 0, "%s", err);
    cr_assert(tensor_alloc(&x, 2, 5, 1, 1) == 0 && tensor_alloc(&dx, 2, 5, 1, 1) == 0);
    gradcheck_fill_distinct(&x, 1);
    gradcheck_fill_distinct(&l.dy, 2);
    l.ops->forward(&l, &x, 1);
    l.ops->backward(&l, &x, &dx);
    for (int i = 0; i < 10; i++) {
        cr_expect_eq(l.y.data[i], 2 * x.data[i]);
        cr_expect_eq(dx.data[i], 2 * l.dy.data[i]);
    }
    tensor_free(&x), tensor_free(&dx);
    l.ops->destroy(&l);
}

/* net_params lists a residual's body in order, nested bodies included, each under its own layer name. */
Test(residual, params_are_flattened_in_order)
{
    char err[256];
    LayerSpec inner_body[] = {dense("c", 4)};
    LayerSpec body[] = {dense("b", 4), residual("inner", inner_body, 1)};
    LayerSpec specs[] = {dense("a", 4), residual("res", body, 2), dense("d", 2)};
    const char *want[] = {"a", "a", "b", "b", "c", "c", "d", "d"};
    Shape out;
    Net *net;
    NetParam *p;
    int n;
    cr_assert(gradcheck_shapes(specs, 3, (Shape){1, 3, 1, 1}, &out, err, sizeof err) == 0, "%s", err);
    cr_assert(net_create(specs, 3, (Shape){1, 3, 1, 1}, 1, &net, err, sizeof err) == 0, "%s", err);
    n = net_params(net, &p);
    cr_assert_eq(n, 8);
    for (int i = 0; i < n; i++) {
        cr_expect_str_eq(p[i].layer->name, want[i]);
        cr_expect_str_eq(p[i].p.name, i % 2 ? "bias" : "weight");
    }
    free(p);
    net_free(net);
}

Test(residual, body_that_changes_shape_is_refused)
{
    char err[256] = "";
    LayerSpec body[] = {dense("fc", 3)};
    LayerSpec specs[] = {residual("res", body, 1)};
    Net *net = NULL;
    specs[0].in = specs[0].out = (Shape){1, 5, 1, 1};
    specs[0].loc.line = 7;
    body[0].in = (Shape){1, 5, 1, 1}, body[0].out = (Shape){1, 3, 1, 1};
    cr_expect(net_create(specs, 1, (Shape){1, 5, 1, 1}, 1, &net, err, sizeof err) != 0);
    cr_expect(net == NULL);
    cr_expect(strstr(err, "'res' (line 7)") && strstr(err, "body ends with 3") && strstr(err, "input shape 5"),
              "message: %s", err);
}
