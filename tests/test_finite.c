/* net_check_finite: the first NaN or Inf among a network's parameters and buffers, named as layer/param[index]. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/net.h"
#include "tests/specs.h"

/* dense(4) -> batchnorm -> dense(3) on 5 features: weights, biases, gamma/beta and moving statistics. */
typedef struct Small {
    LayerSpec specs[3];
    Net *net;
    NetParam *params;
    int n;
} Small;

static void small_open(Small *s)
{
    char err[256];
    Shape in = {1, 5, 1, 1};
    static const char *names[3] = {"fc1", "bn1", "fc2"};
    static const LayerKind kinds[3] = {LK_DENSE, LK_BATCHNORM, LK_DENSE};
    static const int units[3] = {4, 0, 3};
    for (int i = 0; i < 3; i++) {
        LayerSpec *l = &s->specs[i];
        *l = test_layer(kinds[i], names[i], units[i], 0, 0, 0);
        l->in = in;
        cr_assert(layer_out_shape(l, in, &l->out, &l->nparams, &l->nbuffers, err, sizeof err) == 0, "%s", err);
        in = l->out;
    }
    cr_assert(net_create(s->specs, 3, s->specs[0].in, 9, &s->net, err, sizeof err) == 0, "%s", err);
    s->n = net_params(s->net, &s->params);
    cr_assert_eq(s->n, 2 + 4 + 2);
}

static void small_close(Small *s)
{
    free(s->params);
    net_free(s->net);
}

static float *value_of(Small *s, const char *layer, const char *param)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->params[i].layer->name, layer) && !strcmp(s->params[i].p.name, param))
            return s->params[i].p.value;
    cr_assert_fail("no %s/%s", layer, param);
    return NULL;
}

Test(finite, clean_network_passes)
{
    Small s;
    char err[128] = "untouched";
    small_open(&s);
    cr_expect_eq(net_check_finite(s.net, err, sizeof err), 0);
    cr_expect_str_eq(err, "untouched");
    small_close(&s);
}

Test(finite, names_the_first_bad_value_in_network_order)
{
    Small s;
    char err[128];
    small_open(&s);
    value_of(&s, "fc2", "weight")[0] = INFINITY;
    value_of(&s, "bn1", "moving_var")[2] = NAN;
    cr_expect_eq(net_check_finite(s.net, err, sizeof err), -1);
    cr_expect_str_eq(err, "non-finite value in bn1/moving_var[2]");
    value_of(&s, "bn1", "moving_var")[2] = 1.0f;
    cr_expect_eq(net_check_finite(s.net, err, sizeof err), -1);
    cr_expect_str_eq(err, "non-finite value in fc2/weight[0]");
    value_of(&s, "fc1", "bias")[3] = -INFINITY;
    cr_expect_eq(net_check_finite(s.net, err, sizeof err), -1);
    cr_expect_str_eq(err, "non-finite value in fc1/bias[3]");
    small_close(&s);
}
