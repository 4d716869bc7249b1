/* The runtime against PyTorch on networks written as .bnn text, and whole `bnni train` runs against PyTorch's
 * training loop. Both fixtures come from tests/reference/make_fixtures.py:
 * - nets.h5: a residual network (two residual blocks, conv and dense; batchnorm, relu, tanh, sigmoid, max and
 *   average pooling) for five steps of SGD with momentum and weight decay, without Nesterov; a dense network with
 *   two dropout layers in training mode for three SGD steps; a ReLU/maxpool/dropout CNN for six Adam steps. Each
 *   network is built here from the model text the fixture holds (the front end, then net_create) and starts from
 *   the fixture's parameters; the dropout stream is seeded as the fixture says, and the fixture's masks are drawn
 *   from the same xoshiro256** stream reimplemented in Python, so torch applies bnni's masks.
 * - training.h5: `bnni train --init` on the first 96 training images in order (shuffle=false), four epochs of a
 *   step schedule with SGD and of a cosine schedule with Adam; the final parameters, moving statistics, optimizer
 *   state, learning rate and every epoch's metrics against PyTorch's loop with StepLR / CosineAnnealingLR. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interp/frontend.h"
#include "runtime/ckpt.h"
#include "runtime/loss.h"
#include "runtime/net.h"
#include "runtime/optim.h"
#include "tests/fixture.h"
#include "tests/support.h"

static char dir[64];

static void make_dir(void) { support_make_tmpdir(dir, sizeof dir, "refnets"); }

static void remove_dir(void) { support_remove_tree(dir); }

TestSuite(reference_nets, .timeout = 300);
TestSuite(reference_train, .init = make_dir, .fini = remove_dir, .timeout = 300);

static FxArray must_read(hid_t f, const char *path)
{
    FxArray a;
    cr_assert(fx_read(f, path, &a) == 0, "missing fixture %s", path);
    return a;
}

/* BNNI_REF_VERBOSE=1 prints every comparison's largest absolute and relative error (for setting tolerances). */
static void expect_close(hid_t f, const char *path, const float *got, size_t n, double rtol, double atol)
{
    FxArray want = must_read(f, path);
    cr_assert_eq(want.size, n, "%s: torch has %zu values, bnni %zu", path, want.size, n);
    if (getenv("BNNI_REF_VERBOSE")) {
        double ea = 0, er = 0;
        for (size_t i = 0; i < n; i++) {
            double e = fabs((double)got[i] - want.data[i]);
            ea = fmax(ea, e), er = fmax(er, e / fmax(fabs((double)want.data[i]), 1e-30));
        }
        fprintf(stderr, "%-48s max abs err %.3g, max rel err %.3g\n", path, ea, er);
    }
    FX_EXPECT_CLOSE(got, want.data, n, rtol, atol, "%s", path);
    fx_free(&want);
}

/* Checks a model text as `bnni check` would; fails the test with its diagnostics when it has errors. */
static ModelSpec *load_model(const char *name, const char *src)
{
    char *diag_text = NULL;
    size_t len = 0;
    FILE *diag = open_memstream(&diag_text, &len);
    cr_assert(diag);
    CheckOptions co = {.diag = diag};
    ModelSpec *m = NULL;
    int rc = bnn_load_source(name, src, strlen(src), &co, &m);
    fclose(diag);
    cr_assert_eq(rc, 0, "%s does not check:\n%s", name, diag_text);
    free(diag_text);
    return m;
}

/* The fixture's model text of group g (a fixed-length string attribute). */
static void model_source(hid_t f, const char *g, char *buf, size_t len)
{
    cr_assert(fx_attr_str(f, g, "model_source", buf, len) == 0, "%s has no model_source", g);
}

/* Copies <group>/<layer>/<param> into every parameter and buffer of the list; each must be in the fixture. */
static void load_values(hid_t f, const char *group, NetParam *ps, int np)
{
    char path[256];
    for (int i = 0; i < np; i++) {
        snprintf(path, sizeof path, "%s/%s/%s", group, ps[i].layer->name, ps[i].p.name);
        FxArray a = must_read(f, path);
        cr_assert_eq(a.size, ps[i].p.size, "%s: torch has %zu values, bnni %zu", path, a.size, ps[i].p.size);
        memcpy(ps[i].p.value, a.data, a.size * sizeof(float));
        fx_free(&a);
    }
}

/* ---------------------------------------------------------------- networks, step by step */

typedef struct RefNet {
    hid_t f;
    ModelSpec *m;
    Net *net;
    NetParam *ps;
    int np;
    Tensor x, dx, dlogits;
    int *labels;
} RefNet;

/* Group g's network from its model text, with the fixture's initial parameters and dropout seed, sized for the
 * fixture's batch, and that batch. */
static void refnet_open(RefNet *r, const char *g)
{
    char err[512], src[4096];
    memset(r, 0, sizeof *r);
    r->f = fx_open("nets.h5");
    cr_assert(r->f >= 0, "cannot open tests/reference/nets.h5");
    model_source(r->f, g, src, sizeof src);
    r->m = load_model(g, src);
    cr_assert(net_create(r->m->layers, r->m->nlayers, r->m->input, r->m->seed, &r->net, err, sizeof err) == 0, "%s",
              err);
    r->np = net_params(r->net, &r->ps);
    cr_assert(r->np > 0);
    char init[64];
    snprintf(init, sizeof init, "%s/init", g);
    load_values(r->f, init, r->ps, r->np);
    double seed = fx_attr(r->f, g, "dropout_seed", -1);
    cr_assert(seed >= 0, "%s has no dropout_seed", g);
    rng_seed(&r->net->rng, (uint64_t)seed);

    FxArray img = must_read(r->f, "images_u8");
    size_t nl;
    int batch = img.dims[0];
    cr_assert_eq(batch, r->m->data.batch, "the fixture's batch is the model's");
    cr_assert(net_resize(r->net, batch, err, sizeof err) == 0, "%s", err);
    cr_assert(fx_read_ints(r->f, "labels", &r->labels, &nl) == 0 && nl == (size_t)batch);
    cr_assert(tensor_alloc(&r->x, batch, 1, 28, 28) == 0 && img.size == tensor_size(&r->x));
    for (size_t i = 0; i < img.size; i++)
        r->x.data[i] = img.data[i] / 255.0f; /* as the fixture: float(byte) / 255 in float32 */
    fx_free(&img);
    cr_assert(tensor_alloc(&r->dx, batch, 1, 28, 28) == 0);
    cr_assert(tensor_alloc(&r->dlogits, batch, 10, 1, 1) == 0);
}

static void refnet_close(RefNet *r)
{
    free(r->ps);
    net_free(r->net);
    spec_free(r->m);
    tensor_free(&r->x), tensor_free(&r->dx), tensor_free(&r->dlogits);
    free(r->labels);
    fx_close(r->f);
}

/* One training forward and backward from zeroed gradients; returns the loss. */
static float train_pass(RefNet *r, const Tensor **out)
{
    net_zero_grad(r->net);
    *out = net_forward(r->net, &r->x, 1);
    cr_assert(*out, "net_forward refused the batch");
    float loss = loss_cross_entropy(*out, r->labels, &r->dlogits, NULL);
    net_backward(r->net, &r->x, &r->dlogits, &r->dx);
    return loss;
}

/* Tolerances, from measured errors with a margin of 4 or more (BNNI_REF_VERBOSE=1 prints them): logits of O(1)
 * differ by up to 3e-7 (sums in another order than torch's); parameter gradients by up to 5e-7 (residual's first
 * convolution, behind two batchnorms), relative 1e-4 on the large ones; input gradients (~1e-6 to 1e-4 per
 * pixel) by up to 2e-9; after the steps, parameters, moving statistics and optimizer state by up to 4e-7. */
typedef struct NetTol {
    double rtol_y, atol_y; /* the first step's logits */
    double rtol_g, atol_g; /* the first step's parameter gradients */
    double atol_dx;        /* the first step's input gradient (rtol_g) */
    double rtol_p, atol_p; /* losses, parameters and optimizer state after the steps */
} NetTol;

/* Group g: the first training step's logits, loss, input and parameter gradients; the loss of every step; the
 * parameters and moving statistics after the last; the optimizer's state tensors. */
static void check_net(const char *g, NetTol t)
{
    char err[256], path[256];
    RefNet r;
    refnet_open(&r, g);
    Optim *o;
    cr_assert(optim_create(&r.m->opt, r.ps, r.np, &o, err, sizeof err) == 0, "%s", err);
    int steps = (int)fx_attr(r.f, g, "steps", 0);
    snprintf(path, sizeof path, "%s/losses", g);
    FxArray losses = must_read(r.f, path);
    cr_assert(steps > 0 && losses.size == (size_t)steps);
    for (int s = 0; s < steps; s++) {
        const Tensor *out;
        float loss = train_pass(&r, &out);
        if (s == 0) {
            snprintf(path, sizeof path, "%s/step1/out", g);
            expect_close(r.f, path, out->data, tensor_size(out), t.rtol_y, t.atol_y);
            snprintf(path, sizeof path, "%s/step1/dx", g);
            expect_close(r.f, path, r.dx.data, tensor_size(&r.dx), t.rtol_g, t.atol_dx);
            for (int i = 0; i < r.np; i++)
                if (r.ps[i].p.trainable) {
                    snprintf(path, sizeof path, "%s/step1/grad/%s/%s", g, r.ps[i].layer->name, r.ps[i].p.name);
                    expect_close(r.f, path, r.ps[i].p.grad, r.ps[i].p.size, t.rtol_g, t.atol_g);
                }
        }
        cr_expect(fabs(loss - losses.data[s]) <= t.rtol_p * fabs(losses.data[s]), "%s step %d: loss %.9g, torch %.9g",
                  g, s + 1, loss, losses.data[s]);
        optim_step(o, r.m->opt.lr);
    }
    for (int i = 0; i < r.np; i++) {
        snprintf(path, sizeof path, "%s/final/%s/%s", g, r.ps[i].layer->name, r.ps[i].p.name);
        expect_close(r.f, path, r.ps[i].p.value, r.ps[i].p.size, t.rtol_p, t.atol_p);
        Param st[2];
        int ns = optim_state(o, i, st);
        for (int j = 0; j < ns; j++) {
            snprintf(path, sizeof path, "%s/state/%s/%s/%s", g, r.ps[i].layer->name, r.ps[i].p.name, st[j].name);
            expect_close(r.f, path, st[j].value, st[j].size, t.rtol_p, t.atol_p);
        }
        cr_expect(ns == (r.m->opt.kind == OPT_ADAM ? 2 : r.m->opt.momentum != 0.0) || !r.ps[i].p.trainable,
                  "%s: %d state tensors", path, ns);
    }
    fx_free(&losses);
    optim_free(o);
    refnet_close(&r);
}

/* Two residual blocks (conv: relu/batchnorm/tanh inside; dense: sigmoid inside), max and average pooling, SGD with
 * momentum 0.9 and weight decay 0.01 without Nesterov, five steps. */
Test(reference_nets, residual_sgd_momentum_weight_decay)
{
    check_net("residual", (NetTol){1e-5, 2e-6, 1e-4, 2e-6, 1e-8, 1e-4, 1e-5});
}

/* Dropout in training mode (p 0.3 after tanh, 0.5 after relu), the masks drawn from the seeded network stream on
 * both sides, three steps of plain SGD: a mask drawn in another order, kept where it should drop, scaled by p
 * instead of 1/(1-p), or not redrawn each step shows here. */
Test(reference_nets, dropout_training_masks)
{
    check_net("dropout", (NetTol){1e-5, 2e-6, 1e-4, 2e-6, 1e-8, 1e-4, 1e-5});
}

/* A ReLU CNN with max pooling and two dropout layers, six Adam steps. */
Test(reference_nets, relu_maxpool_dropout_cnn_adam)
{
    check_net("cnn_adam", (NetTol){1e-5, 2e-6, 1e-4, 2e-6, 1e-8, 1e-4, 1e-5});
}

/* ---------------------------------------------------------------- whole training runs */

/* Group g of training.h5: builds an --init checkpoint from its initial parameters, runs `bnni train --init`, and
 * compares the checkpoint it ends with: parameters, moving statistics and optimizer state; the optimizer's step
 * count; the last epoch's learning rate; every epoch's train and test loss and accuracy. */
static void check_training(const char *g)
{
    char err[512], src[4096], path[256];
    hid_t f = fx_open("training.h5");
    cr_assert(f >= 0, "cannot open tests/reference/training.h5");
    model_source(f, g, src, sizeof src);
    int epochs = (int)fx_attr(f, g, "epochs", 0), limit = (int)fx_attr(f, g, "limit", 0);
    int test_limit = (int)fx_attr(f, g, "test_limit", 0);
    const char *model = support_path(dir, "m.bnn"), *init = support_path(dir, "init.h5");
    support_write_text(model, src);

    /* The initial checkpoint: the model's network holding the fixture's values. */
    ModelSpec *m = load_model(model, src);
    Net *net;
    NetParam *ps;
    cr_assert(net_create(m->layers, m->nlayers, m->input, m->seed, &net, err, sizeof err) == 0, "%s", err);
    int np = net_params(net, &ps);
    snprintf(path, sizeof path, "%s/init", g);
    load_values(f, path, ps, np);
    Ckpt c;
    cr_assert(ckpt_build(&c, m, ps, np, NULL, NULL, NULL, 0.0, 1.0, 0, err, sizeof err) == 0, "%s", err);
    cr_assert(ckpt_write(init, &c, err, sizeof err) == 0, "%s", err);
    ckpt_free(&c);
    free(ps);
    net_free(net);
    int batch = m->data.batch;
    spec_free(m);

    int st = support_run(dir, "train %s --init %s --epochs %d --limit %d --test-limit %d --threads 1 --quiet --out %s",
                         model, init, epochs, limit, test_limit, support_path(dir, "out.h5"));
    char *e = support_run_err(dir);
    cr_assert_eq(st, 0, "bnni train: status %d: %s", st, e);
    free(e);
    cr_assert_eq(ckpt_read(support_path(dir, "out.h5"), &c, err, sizeof err), 0, "%s", err);

    int compared = 0;
    for (int i = 0; i < c.ntensors; i++) {
        const CkptTensor *t = &c.tensors[i];
        int layer = strncmp(t->path, "layers/", 7) == 0;
        snprintf(path, sizeof path, "%s/%s/%s", g, layer ? "final" : "state", t->path + (layer ? 7 : 10));
        cr_assert(layer || strncmp(t->path, "optimizer/", 10) == 0, "%s", t->path);
        expect_close(f, path, t->data, t->size, 1e-4, 1e-5); /* measured: up to 7.6e-6 (moving_var), 1.8e-6 else */
        compared++;
    }
    cr_expect_gt(compared, 8, "%d tensors", compared);
    int per_epoch = (limit + batch - 1) / batch;
    cr_expect_eq(c.opt_steps, (long long)epochs * per_epoch, "%lld optimizer steps", c.opt_steps);
    char lr_name[16];
    snprintf(lr_name, sizeof lr_name, "lr_%d", epochs);
    double lr = fx_attr(f, g, lr_name, NAN);
    cr_expect(fabs(c.ts.lr - lr) <= 1e-12 * lr, "the last epoch's lr %.17g, torch's %.17g", c.ts.lr, lr);

    cr_assert_eq(c.metrics.n, epochs);
    const char *names[4] = {"train_loss", "train_acc", "test_loss", "test_acc"};
    const double *cols[4] = {c.metrics.train_loss, c.metrics.train_acc, c.metrics.test_loss, c.metrics.test_acc};
    for (int k = 0; k < 4; k++) {
        snprintf(path, sizeof path, "%s/metrics/%s", g, names[k]);
        FxArray want = must_read(f, path);
        cr_assert_eq(want.size, (size_t)epochs);
        /* losses: float32 sums in another order; accuracies: a count out of `limit` or `test_limit` images, where a
         * logit within rounding of another's could flip one prediction */
        double count = k == 1 ? limit : k == 3 ? test_limit : 0;
        for (int ep = 0; ep < epochs; ep++) {
            double got = cols[k][ep], w = want.data[ep];
            int ok = count ? fabs(got - w) * count <= 1.001 : fabs(got - w) <= 1e-5 * fabs(w) + 1e-6;
            cr_expect(ok, "%s: epoch %d: %s %.9g, torch %.9g", g, ep + 1, names[k], got, w);
        }
        fx_free(&want);
    }
    ckpt_free(&c);
    fx_close(f);
}

/* step(every=1, factor=0.5) with SGD, momentum 0.9 and weight decay: the rate halves every epoch. A trainer that
 * ignores the schedule (the optimizer's lr every epoch) ends elsewhere. */
Test(reference_train, step_schedule_sgd_four_epochs) { check_training("step_sgd"); }

/* cosine(min_lr=0.001) with Adam over four epochs (torch's CosineAnnealingLR, T_max = epochs). */
Test(reference_train, cosine_schedule_adam_four_epochs) { check_training("cosine_adam"); }
