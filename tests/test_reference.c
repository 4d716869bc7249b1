/* The runtime against PyTorch end to end: every layer kind on its own (tests/reference/layers.h5) and the seed's
 * LeNet-BN on one batch of 128 Fashion-MNIST images (tests/reference/lenet.h5): forward, loss, input and parameter
 * gradients, eval mode, moving statistics, and ten steps of SGD, SGD+nesterov+weight decay, Adam and Adam+weight
 * decay.
 * The fixtures come from tests/reference/make_fixtures.py; the network here is built by hand, not parsed. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/loss.h"
#include "runtime/net.h"
#include "runtime/optim.h"
#include "tests/fixture.h"
#include "tests/gradcheck.h"
#include "tests/specs.h"

/* ---- single layers ---- */

/* Tolerance per layer kind, against float32 torch. y: output, d: input and parameter gradients. */
typedef struct LayerTol {
    const char *kind;
    double rtol_y, atol_y, rtol_d, atol_d;
} LayerTol;

static const LayerTol layer_tols[] = {
    /* sums of up to 50 products (or N of them, for weight gradients) in sgemm's order vs torch's: O(1) values
     * agree to ~1e-6; atol covers results that cancel to near zero */
    {"conv2d", 1e-5, 1e-6, 1e-5, 1e-5},
    {"dense", 1e-5, 1e-6, 1e-5, 1e-5},
    /* one libm call per value on both sides: a couple of ulp */
    {"sigmoid", 2e-6, 1e-7, 2e-6, 1e-7},
    {"tanh", 2e-6, 1e-7, 2e-6, 1e-7},
    /* averages of k*k values: a few ulp */
    {"avgpool", 1e-6, 1e-7, 1e-6, 1e-7},
    /* selection and copies: exact */
    {"relu", 0, 0, 0, 0},
    {"maxpool", 0, 0, 0, 0},
    {"flatten", 0, 0, 0, 0},
    {"dropout", 0, 0, 0, 0},
};

static const LayerTol *tol_for(const char *kind)
{
    for (size_t i = 0; i < sizeof layer_tols / sizeof *layer_tols; i++)
        if (strcmp(layer_tols[i].kind, kind) == 0)
            return &layer_tols[i];
    cr_assert_fail("no tolerance for layer kind %s", kind);
    return NULL;
}

static LayerKind kind_of(const char *type)
{
    for (int k = 0; k < LK_COUNT; k++)
        if (layer_ops[k] && strcmp(layer_ops[k]->type, type) == 0)
            return (LayerKind)k;
    cr_assert_fail("unknown layer kind %s", type);
    return LK_COUNT;
}

static FxArray must_read(hid_t f, const char *path)
{
    FxArray a;
    cr_assert(fx_read(f, path, &a) == 0, "missing fixture %s", path);
    return a;
}

static void expect_close(hid_t f, const char *path, const float *got, size_t n, double rtol, double atol)
{
    FxArray want = must_read(f, path);
    cr_assert_eq(want.size, n, "%s: torch has %zu values, bnni %zu", path, want.size, n);
    FX_EXPECT_CLOSE(got, want.data, n, rtol, atol, "%s", path);
    fx_free(&want);
}

static void copy_fixture(hid_t f, const char *path, float *dst, size_t n)
{
    FxArray a = must_read(f, path);
    cr_assert_eq(a.size, n, "%s: torch has %zu values, bnni %zu", path, a.size, n);
    memcpy(dst, a.data, n * sizeof(float));
    fx_free(&a);
}

/* The LayerSpec of fixture group g from its attributes. */
static LayerSpec layer_spec(hid_t f, const char *g, Shape *in)
{
    char type[32];
    int d[4];
    cr_assert(fx_attr_str(f, g, "kind", type, sizeof type) == 0, "%s has no kind", g);
    cr_assert_eq(fx_attr_ints(f, g, "in", d, 4), 4);
    *in = (Shape){d[0], d[1], d[2], d[3]};
    LayerKind kind = kind_of(type);
    LayerSpec s = test_layer(kind, g, (int)fx_attr(f, g, "units", 0), (int)fx_attr(f, g, "kernel", 0),
                             (int)fx_attr(f, g, "stride", 0), (int)fx_attr(f, g, "padding", 0));
    int bias = layer_arg_index(kind, "bias"), p = layer_arg_index(kind, "p");
    if (bias >= 0)
        s.arg[bias].num = (int)fx_attr(f, g, "bias", 0);
    if (p >= 0)
        s.arg[p].num = (float)fx_attr(f, g, "p", 0);
    return s;
}

static void check_layer(const char *g)
{
    char err[256], path[128];
    hid_t f = fx_open("layers.h5");
    cr_assert(f >= 0, "cannot open tests/reference/layers.h5");
    Shape in;
    LayerSpec spec = layer_spec(f, g, &in);
    const LayerTol *tol = tol_for(layer_ops[spec.kind]->type);
    int train = spec.kind != LK_DROPOUT; /* dropout: eval mode only, where it is the identity */
    snprintf(path, sizeof path, "%s/x", g);
    FxArray x = must_read(f, path);
    Layer l;
    Rng stream;
    rng_seed(&stream, 1);
    cr_assert(gradcheck_setup(&l, &spec, in, x.dims[0], &stream, 1, err, sizeof err) == 0, "%s: %s", g, err);
    Tensor xt = {x.data, x.dims[0], in.c, in.rank == 3 ? in.h : 1, in.rank == 3 ? in.w : 1}, dx;
    cr_assert_eq(tensor_size(&xt), x.size);
    cr_assert(tensor_alloc(&dx, xt.n, xt.c, xt.h, xt.w) == 0);

    Param p[LAYER_MAX_PARAMS];
    int np = l.ops->params ? l.ops->params(&l, p) : 0;
    for (int j = 0; j < np; j++) {
        snprintf(path, sizeof path, "%s/param/%s", g, p[j].name);
        copy_fixture(f, path, p[j].value, p[j].size);
        memset(p[j].grad, 0, p[j].size * sizeof(float));
    }
    snprintf(path, sizeof path, "%s/param/bias", g);
    cr_expect_eq(fx_exists(f, path), np == 2, "%s: torch and bnni disagree on having a bias", g);

    l.ops->forward(&l, &xt, train);
    snprintf(path, sizeof path, "%s/y", g);
    expect_close(f, path, l.y.data, tensor_size(&l.y), tol->rtol_y, tol->atol_y);
    snprintf(path, sizeof path, "%s/dy", g);
    copy_fixture(f, path, l.dy.data, tensor_size(&l.dy));
    l.ops->backward(&l, &xt, &dx);
    snprintf(path, sizeof path, "%s/dx", g);
    expect_close(f, path, dx.data, tensor_size(&dx), tol->rtol_d, tol->atol_d);
    for (int j = 0; j < np; j++) {
        snprintf(path, sizeof path, "%s/grad/%s", g, p[j].name);
        expect_close(f, path, p[j].grad, p[j].size, tol->rtol_d, tol->atol_d);
    }
    l.ops->destroy(&l);
    tensor_free(&dx);
    fx_free(&x);
    fx_close(f);
}

Test(reference_layer, conv2d_k3_s1_p0_bias) { check_layer("conv2d_k3_s1_p0_bias"); }
Test(reference_layer, conv2d_k3_s2_p1_nobias) { check_layer("conv2d_k3_s2_p1_nobias"); }
Test(reference_layer, conv2d_k5_s1_p2_bias) { check_layer("conv2d_k5_s1_p2_bias"); }
Test(reference_layer, conv2d_k2_s3_p1_bias) { check_layer("conv2d_k2_s3_p1_bias"); }
Test(reference_layer, dense_bias) { check_layer("dense_bias"); }
Test(reference_layer, dense_nobias) { check_layer("dense_nobias"); }
Test(reference_layer, sigmoid_4d) { check_layer("sigmoid_4d"); }
Test(reference_layer, sigmoid_2d) { check_layer("sigmoid_2d"); }
Test(reference_layer, relu_4d) { check_layer("relu_4d"); }
Test(reference_layer, tanh_2d) { check_layer("tanh_2d"); }
Test(reference_layer, avgpool_k2_s2_p0) { check_layer("avgpool_k2_s2_p0"); }
Test(reference_layer, avgpool_k3_s2_p0) { check_layer("avgpool_k3_s2_p0"); }
/* torch's default count_include_pad=True: the padded zeros count in every window's average */
Test(reference_layer, avgpool_k3_s1_p1) { check_layer("avgpool_k3_s1_p1"); }
Test(reference_layer, maxpool_k2_s2_p0) { check_layer("maxpool_k2_s2_p0"); }
Test(reference_layer, maxpool_k3_s2_p0) { check_layer("maxpool_k3_s2_p0"); }
Test(reference_layer, maxpool_k3_s1_p1) { check_layer("maxpool_k3_s1_p1"); }
Test(reference_layer, flatten) { check_layer("flatten"); }
Test(reference_layer, dropout_eval) { check_layer("dropout_eval"); }

/* ---- the seed LeNet-BN ---- */

#define LENET_N 16
#define BATCH 128

typedef struct LeNet {
    hid_t f;
    LayerSpec specs[LENET_N];
    Net *net;
    NetParam *params;
    int nparams;
    Tensor x, dx, dlogits;
    int *labels;
} LeNet;

/* conv2d(6,k5) bn sigmoid avgpool(2,2) conv2d(16,k5) bn sigmoid avgpool(2,2) flatten dense(120) bn sigmoid
 * dense(84) bn sigmoid dense(10), input 1x28x28; shapes through layer_out_shape. */
static void lenet_specs(LayerSpec *s)
{
    static const struct {
        const char *name;
        LayerKind kind;
        int units, kernel, stride;
    } def[LENET_N] = {
        {"conv1", LK_CONV2D, 6, 5, 1},  {"bn1", LK_BATCHNORM, 0, 0, 0},  {"sig1", LK_SIGMOID, 0, 0, 0},
        {"pool1", LK_AVGPOOL, 0, 2, 2}, {"conv2", LK_CONV2D, 16, 5, 1},  {"bn2", LK_BATCHNORM, 0, 0, 0},
        {"sig2", LK_SIGMOID, 0, 0, 0},  {"pool2", LK_AVGPOOL, 0, 2, 2},  {"flat", LK_FLATTEN, 0, 0, 0},
        {"fc1", LK_DENSE, 120, 0, 0},   {"bn3", LK_BATCHNORM, 0, 0, 0},  {"sig3", LK_SIGMOID, 0, 0, 0},
        {"fc2", LK_DENSE, 84, 0, 0},    {"bn4", LK_BATCHNORM, 0, 0, 0},  {"sig4", LK_SIGMOID, 0, 0, 0},
        {"fc3", LK_DENSE, 10, 0, 0},
    };
    char err[256];
    Shape in = {3, 1, 28, 28};
    for (int i = 0; i < LENET_N; i++) {
        s[i] = test_layer(def[i].kind, def[i].name, def[i].units, def[i].kernel, def[i].stride, 0);
        s[i].in = in;
        cr_assert(layer_out_shape(&s[i], in, &s[i].out, &s[i].nparams, &s[i].nbuffers, err, sizeof err) == 0,
                  "%s: %s", s[i].name, err);
        in = s[i].out;
    }
    cr_assert(in.rank == 1 && in.c == 10);
}

/* Copies <group>/<layer>/<param> into every parameter (or only the trainable ones) of the network. */
static void load_params(LeNet *m, const char *group, int trainable_only)
{
    char path[160];
    for (int i = 0; i < m->nparams; i++) {
        Param *p = &m->params[i].p;
        if (trainable_only && !p->trainable)
            continue;
        snprintf(path, sizeof path, "%s/%s/%s", group, m->params[i].layer->name, p->name);
        copy_fixture(m->f, path, p->value, p->size);
    }
}

/* A network with the fixture's initial parameters and moving statistics, sized for the batch, and its data. */
static void lenet_open(LeNet *m)
{
    char err[256];
    memset(m, 0, sizeof *m);
    m->f = fx_open("lenet.h5");
    cr_assert(m->f >= 0, "cannot open tests/reference/lenet.h5");
    lenet_specs(m->specs);
    cr_assert(net_create(m->specs, LENET_N, (Shape){3, 1, 28, 28}, 42, &m->net, err, sizeof err) == 0, "%s", err);
    cr_assert(net_resize(m->net, BATCH, err, sizeof err) == 0, "%s", err);
    m->nparams = net_params(m->net, &m->params);
    /* 5 weight+bias pairs and 4 batchnorms of gamma, beta, moving_mean, moving_var */
    cr_assert_eq(m->nparams, 5 * 2 + 4 * 4);
    load_params(m, "init", 0);

    FxArray img = must_read(m->f, "images_u8");
    size_t nl;
    cr_assert(fx_read_ints(m->f, "labels", &m->labels, &nl) == 0 && nl == BATCH);
    cr_assert(tensor_alloc(&m->x, BATCH, 1, 28, 28) == 0 && img.size == tensor_size(&m->x));
    for (size_t i = 0; i < img.size; i++)
        m->x.data[i] = img.data[i] / 255.0f; /* as the fixture: float(byte) / 255 in float32 */
    fx_free(&img);
    cr_assert(tensor_alloc(&m->dx, BATCH, 1, 28, 28) == 0);
    cr_assert(tensor_alloc(&m->dlogits, BATCH, 10, 1, 1) == 0);
}

static void lenet_close(LeNet *m)
{
    free(m->params);
    net_free(m->net);
    tensor_free(&m->x), tensor_free(&m->dx), tensor_free(&m->dlogits);
    free(m->labels);
    fx_close(m->f);
}

/* One training forward and backward from zeroed gradients; returns the loss. */
static float train_pass(LeNet *m, const Tensor **out)
{
    net_zero_grad(m->net);
    *out = net_forward(m->net, &m->x, 1);
    cr_assert(*out, "net_forward refused the batch");
    float loss = loss_cross_entropy(*out, m->labels, &m->dlogits, NULL);
    net_backward(m->net, &m->x, &m->dlogits, &m->dx);
    return loss;
}

/* Tolerances for one training step, from measured errors with a margin of 4 or more. Forward: 16 layers of
 * float32 arithmetic in another order than torch's (im2col+sgemm vs mkldnn, double vs float batch statistics);
 * logits of O(1) differ by up to 5e-7: rtol 1e-5, atol 2e-6. Gradients pass back through four batchnorms, each
 * subtracting channel sums, so their errors scale with the largest gradient of the tensor (~0.06) rather than
 * with each value: up to 1.5e-7 absolute; rtol 1e-4, atol 1e-6. The input gradient is ~1e-4 per pixel (down
 * to 1e-6) with errors up to 4e-10: atol 2e-9. The biases of the layers that feed a batchnorm have an exactly-zero true
 * gradient (the mean subtraction cancels them), so both sides return rounding noise there, torch's up to
 * 8e-7: atol 1e-5 for them, still 1e-4 of the largest real gradient. */
#define NET_RTOL_Y 1e-5
#define NET_ATOL_Y 2e-6
#define NET_RTOL_G 1e-4
#define NET_ATOL_G 1e-6
#define NET_ATOL_DX 2e-9
#define NET_ATOL_PRE_BN 1e-5

/* conv1, conv2, fc1 and fc2 feed a batchnorm; their bias gradients are zero up to rounding. */
static int feeds_batchnorm(const NetParam *p)
{
    return strcmp(p->p.name, "bias") == 0 && strcmp(p->layer->name, "fc3") != 0;
}

Test(reference_lenet, train_step_forward_loss_and_gradients)
{
    LeNet m;
    char path[160];
    lenet_open(&m);
    const Tensor *out;
    float loss = train_pass(&m, &out);
    expect_close(m.f, "train/out", out->data, tensor_size(out), NET_RTOL_Y, NET_ATOL_Y);
    FxArray want = must_read(m.f, "train/loss");
    cr_expect(fabs(loss - want.data[0]) <= 1e-6 * fabs(want.data[0]), "loss %.9g, torch %.9g", loss, want.data[0]);
    fx_free(&want);
    expect_close(m.f, "train/dx", m.dx.data, tensor_size(&m.dx), NET_RTOL_G, NET_ATOL_DX);
    for (int i = 0; i < m.nparams; i++) {
        Param *p = &m.params[i].p;
        snprintf(path, sizeof path, "train/%s/%s/%s", p->trainable ? "grad" : "moving", m.params[i].layer->name,
                 p->name);
        if (p->trainable)
            expect_close(m.f, path, p->grad, p->size, NET_RTOL_G,
                         feeds_batchnorm(&m.params[i]) ? NET_ATOL_PRE_BN : NET_ATOL_G);
        else /* moving statistics after one step: (1-momentum) * batch statistics + momentum * init */
            expect_close(m.f, path, p->value, p->size, 1e-5, 1e-6);
    }
    lenet_close(&m);
}

Test(reference_lenet, eval_forward_with_moving_statistics)
{
    LeNet m;
    char path[160];
    lenet_open(&m);
    for (int i = 0; i < m.nparams; i++)
        if (!m.params[i].p.trainable) {
            snprintf(path, sizeof path, "eval/moving/%s/%s", m.params[i].layer->name, m.params[i].p.name);
            copy_fixture(m.f, path, m.params[i].p.value, m.params[i].p.size);
        }
    const Tensor *out = net_forward(m.net, &m.x, 0);
    cr_assert(out);
    expect_close(m.f, "eval/out", out->data, tensor_size(out), NET_RTOL_Y, NET_ATOL_Y);
    lenet_close(&m);
}

static OptSpec opt_spec(hid_t f, const char *g)
{
    char kind[16] = "";
    cr_assert(fx_attr_str(f, g, "kind", kind, sizeof kind) == 0);
    return (OptSpec){.kind = strcmp(kind, "adam") == 0 ? OPT_ADAM : OPT_SGD, .lr = fx_attr(f, g, "lr", NAN),
                     .momentum = fx_attr(f, g, "momentum", NAN), .weight_decay = fx_attr(f, g, "weight_decay", NAN),
                     .nesterov = (int)fx_attr(f, g, "nesterov", 0), .beta1 = fx_attr(f, g, "beta1", NAN),
                     .beta2 = fx_attr(f, g, "beta2", NAN), .eps = fx_attr(f, g, "eps", NAN)};
}

/* Ten training steps on the same batch from the same start; losses every step, moving statistics after three
 * (sgd only), parameters after ten. rtol/atol are arguments: see each test; atol_pre_bn_bias < 0 leaves the biases
 * that feed a batchnorm uncompared. */
static void check_trajectory(const char *g, double rtol, double atol, double atol_pre_bn_bias)
{
    char err[256], path[160];
    LeNet m;
    lenet_open(&m);
    OptSpec spec = opt_spec(m.f, g);
    Optim *o;
    cr_assert(optim_create(&spec, m.params, m.nparams, &o, err, sizeof err) == 0, "%s", err);
    snprintf(path, sizeof path, "%s/losses", g);
    FxArray losses = must_read(m.f, path);
    for (int s = 0; s < 10; s++) {
        const Tensor *out;
        float loss = train_pass(&m, &out);
        cr_expect(fabs(loss - losses.data[s]) <= rtol * fabs(losses.data[s]), "%s step %d: loss %.9g, torch %.9g", g,
                  s + 1, loss, losses.data[s]);
        optim_step(o, spec.lr);
        snprintf(path, sizeof path, "%s/moving_after_3", g);
        if (s == 2 && fx_exists(m.f, path))
            for (int i = 0; i < m.nparams; i++)
                if (!m.params[i].p.trainable) {
                    snprintf(path, sizeof path, "%s/moving_after_3/%s/%s", g, m.params[i].layer->name,
                             m.params[i].p.name);
                    expect_close(m.f, path, m.params[i].p.value, m.params[i].p.size, rtol, atol);
                }
    }
    for (int i = 0; i < m.nparams; i++) {
        Param *p = &m.params[i].p;
        const LayerSpec *ls = m.params[i].layer;
        if (!p->trainable || (feeds_batchnorm(&m.params[i]) && atol_pre_bn_bias < 0))
            continue;
        snprintf(path, sizeof path, "%s/params/%s/%s", g, ls->name, p->name);
        expect_close(m.f, path, p->value, p->size, rtol, feeds_batchnorm(&m.params[i]) ? atol_pre_bn_bias : atol);
    }
    fx_free(&losses);
    optim_free(o);
    lenet_close(&m);
}

/* SGD (lr 0.1, momentum 0.9): ten steps amplify the one-step differences mildly; parameters are O(0.1..1):
 * rtol 1e-4, atol 1e-5. The biases feeding a batchnorm only ever receive rounding noise (~1e-9), so they stay
 * within 10 * lr * 1e-8 of their start on both sides: the same atol covers them. */
Test(reference_lenet, sgd_momentum_ten_steps) { check_trajectory("sgd", 1e-4, 1e-5, 1e-5); }
Test(reference_lenet, sgd_nesterov_weight_decay_ten_steps) { check_trajectory("sgd_nesterov_wd", 1e-4, 1e-5, 1e-5); }

/* Adam (lr 1e-3) divides each gradient by its own running magnitude, so for the biases feeding a batchnorm, whose
 * true gradient is exactly zero, it turns either side's rounding noise into steps of up to ~lr in a random
 * direction: after ten steps the two sides are up to 8e-3 apart there, on values that move at most 1e-2, so a
 * comparison would check nothing; those four tensors are compared in adam_weight_decay_ten_steps instead. Every
 * other parameter has a real gradient: rtol 1e-4, atol 2e-5 (measured up to 7e-6 beyond rtol where Adam
 * normalises tiny gradients; the parameters move by ~1e-2 in ten steps). */
Test(reference_lenet, adam_ten_steps) { check_trajectory("adam", 1e-4, 2e-5, -1); }

/* Adam with weight decay 0.1: the biases feeding a batchnorm get a real gradient (0.1 * bias, far above the
 * rounding noise of their loss gradient), so both sides move them alike: every parameter, those four included,
 * within rtol 1e-4 and atol 2e-5 (measured: at most 1.1e-6 beyond rtol). */
Test(reference_lenet, adam_weight_decay_ten_steps) { check_trajectory("adam_wd", 1e-4, 2e-5, 2e-5); }
