/* Checker tests: the models in models/ (names, shapes, parameter and buffer counts against PyTorch: the
 * counts below are sum(p.numel() for p in model.parameters()) and the running_mean/running_var sizes of the
 * same networks built with torch.nn, via /usr/bin/python3), settings and defaults, block/repeat/residual
 * expansion and naming, shape errors, suggestions, warnings, limits and the summary table. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "interp/frontend.h"
#include "runtime/data/kind.h"
#include "runtime/layer.h"

typedef struct Loaded {
    ModelSpec *m;
    int rc;
    char *msgs;
    size_t msglen;
} Loaded;

static void load_opts(Loaded *l, const char *src, CheckOptions o)
{
    memset(l, 0, sizeof *l);
    FILE *f = open_memstream(&l->msgs, &l->msglen);
    cr_assert_not_null(f);
    o.diag = f;
    l->rc = bnn_load_source("t.bnn", src, strlen(src), &o, &l->m);
    fclose(f);
}

static void load(Loaded *l, const char *src)
{
    load_opts(l, src, (CheckOptions){0});
}

static void load_file(Loaded *l, const char *path)
{
    memset(l, 0, sizeof *l);
    FILE *f = open_memstream(&l->msgs, &l->msglen);
    CheckOptions o = {.diag = f};
    l->rc = bnn_load_file(path, &o, &l->m);
    fclose(f);
}

static void done(Loaded *l)
{
    spec_free(l->m);
    free(l->msgs);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static void expect_ok(const Loaded *l)
{
    cr_assert_eq(l->rc, 0, "%s", l->msgs);
    cr_assert_not_null(l->m);
}

/* The first line of the diagnostics must be exactly this. */
static void expect_first(const char *src, const char *line)
{
    Loaded l;
    load(&l, src);
    cr_assert_eq(l.rc, 1, "no error for:\n%s", src);
    cr_assert_null(l.m);
    char *nl = strchr(l.msgs, '\n');
    cr_assert_not_null(nl);
    *nl = '\0';
    cr_assert_str_eq(l.msgs, line);
    done(&l);
}

static void expect_shape(Shape s, int rank, int c, int h, int w)
{
    cr_assert_eq(s.rank, rank);
    cr_assert_eq(s.c, c);
    if (rank == 3) {
        cr_assert_eq(s.h, h);
        cr_assert_eq(s.w, w);
    }
}

#define HEAD "data fashion_mnist\noptimizer sgd(lr=0.1)\n"

/* ---- the models ---- */

Test(check, lenet_bn_seed_model)
{
    Loaded l;
    load_file(&l, "models/lenet_bn.bnn");
    expect_ok(&l);
    const ModelSpec *m = l.m;
    cr_assert_str_eq(m->name, "lenet_bn");
    cr_assert_str_eq(m->checkpoint, "lenet_bn.h5");
    cr_assert_str_eq(m->data.kind, "fashion_mnist");
    cr_assert_str_eq(data_where(&m->data), "/usr/share/datasets/fashion-mnist");
    cr_assert_eq(m->data.batch, 128);
    cr_assert_eq(m->data.shuffle, 1);
    cr_assert_eq(m->data.normalize, NORM_UNIT);
    cr_assert_eq(m->data.classes, 10);
    expect_shape(m->input, 3, 1, 28, 28);
    cr_assert_eq(m->opt.kind, OPT_SGD);
    cr_assert_float_eq(m->opt.lr, 1.0, 0);
    cr_assert_eq(m->sched.kind, SCHED_CONSTANT);
    cr_assert_eq(m->epochs, 10);
    cr_assert_eq(m->seed, 1);
    cr_assert_eq(m->nlayers, 16);
    cr_assert_eq(m->nlayers_total, 16);
    static const char *const names[] = {"conv2d_1", "batchnorm_1", "sigmoid_1", "avgpool_1", "conv2d_2",
                                        "batchnorm_2", "sigmoid_2", "avgpool_2", "flatten_1", "dense_1",
                                        "batchnorm_3", "sigmoid_3", "dense_2", "batchnorm_4", "sigmoid_4", "dense_3"};
    static const long long params[] = {156, 12, 0, 0, 2416, 32, 0, 0, 0, 30840, 240, 0, 10164, 168, 0, 850};
    for (int i = 0; i < 16; i++) {
        cr_assert_str_eq(m->layers[i].name, names[i]);
        cr_assert_eq(m->layers[i].nparams, params[i], "%s", names[i]);
    }
    expect_shape(m->layers[0].out, 3, 6, 24, 24);
    expect_shape(m->layers[3].out, 3, 6, 12, 12);
    expect_shape(m->layers[7].out, 3, 16, 4, 4);
    expect_shape(m->layers[8].out, 1, 256, 1, 1);
    expect_shape(m->layers[15].out, 1, 10, 1, 1);
    cr_assert_eq(layer_arg(&m->layers[0], "kernel"), 5);
    cr_assert_eq(layer_arg(&m->layers[0], "bias"), 1);
    cr_assert_eq(layer_arg(&m->layers[3], "stride"), 2);
    cr_assert_float_eq(layer_arg(&m->layers[1], "momentum"), 0.9, 0) /* as written: kept in double */;
    cr_assert_float_eq(layer_arg(&m->layers[1], "eps"), 1e-5, 0);
    cr_assert_eq(m->layers[10].loc.line, 20);
    cr_assert_eq(m->layers[10].loc.col, 5);
    cr_assert_eq(m->nparams, 44878); /* PyTorch's count for this network */
    cr_assert_eq(m->nbuffers, 452);
    /* the checkpoint embeds the source exactly */
    FILE *f = fopen("models/lenet_bn.bnn", "rb");
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    cr_assert_eq(m->source_len, n);
    cr_assert(memcmp(m->source, buf, n) == 0);
    cr_assert_eq(m->source[n], '\0');
    /* the seed has a bias before each batchnorm: four warnings, no error */
    cr_assert_eq(count(l.msgs, "warning: the bias of this"), 4, "%s", l.msgs);
    cr_assert_eq(count(l.msgs, "error"), 0);
    done(&l);
}

Test(check, lenet_without_batchnorm)
{
    Loaded l;
    load_file(&l, "models/lenet.bnn");
    expect_ok(&l);
    cr_assert_eq(l.m->nlayers, 12);
    cr_assert_eq(l.m->nparams, 44426);
    cr_assert_eq(l.m->nbuffers, 0);
    cr_assert_float_eq(l.m->opt.lr, 1.0, 0);
    cr_assert_eq(l.msglen, 0, "%s", l.msgs);
    done(&l);
}

Test(check, mlp_bn)
{
    Loaded l;
    load_file(&l, "models/mlp_bn.bnn");
    expect_ok(&l);
    cr_assert_eq(l.m->nparams, 235530);
    cr_assert_eq(l.m->nbuffers, 768);
    cr_assert_eq(layer_arg(&l.m->layers[1], "bias"), 0);
    cr_assert_eq(l.m->sched.kind, SCHED_STEP);
    cr_assert_eq(l.m->sched.every, 4);
    cr_assert_float_eq(l.m->sched.factor, 0.5, 0);
    expect_shape(l.m->layers[2].out, 1, 256, 1, 1);
    cr_assert_eq(l.msglen, 0, "%s", l.msgs);
    done(&l);
}

Test(check, cnn_relu)
{
    Loaded l;
    load_file(&l, "models/cnn_relu.bnn");
    expect_ok(&l);
    const ModelSpec *m = l.m;
    cr_assert_eq(m->nparams, 421642);
    cr_assert_eq(m->nbuffers, 0);
    cr_assert_eq(m->opt.kind, OPT_ADAM);
    cr_assert_float_eq(m->opt.lr, 0.001, 0);
    cr_assert_float_eq(m->opt.beta2, 0.999, 0);
    cr_assert_eq(m->layers[2].kind, LK_MAXPOOL);
    cr_assert_eq(layer_arg(&m->layers[2], "stride"), 2); /* stride defaults to the window */
    expect_shape(m->layers[5].out, 3, 64, 7, 7);
    cr_assert_str_eq(m->layers[7].name, "dropout_1");
    cr_assert_float_eq(layer_arg(&m->layers[7], "p"), 0.25f, 0);
    cr_assert_str_eq(m->layers[10].name, "dropout_2");
    cr_assert_eq(l.msglen, 0, "%s", l.msgs);
    done(&l);
}

Test(check, resnet_small)
{
    Loaded l;
    load_file(&l, "models/resnet_small.bnn");
    expect_ok(&l);
    const ModelSpec *m = l.m;
    cr_assert_eq(m->nparams, 51642);
    cr_assert_eq(m->nbuffers, 480);
    cr_assert_eq(m->nlayers, 18);
    cr_assert_eq(m->nlayers_total, 38);
    const LayerSpec *r = &m->layers[3];
    cr_assert_eq(r->kind, LK_RESIDUAL);
    cr_assert_str_eq(r->name, "res_unit_1.unit");
    cr_assert_eq(r->nbody, 5);
    cr_assert_str_eq(r->body[0].name, "conv2d_2");
    cr_assert_eq(layer_arg(&r->body[0], "bias"), 0);
    cr_assert_eq(layer_arg(&r->body[0], "padding"), 1);
    expect_shape(r->out, 3, 16, 28, 28);
    cr_assert_str_eq(m->layers[5].name, "res_unit_2.unit");
    cr_assert_str_eq(m->layers[11].name, "res_unit_3.unit");
    cr_assert_str_eq(m->layers[13].name, "res_unit_4.unit");
    expect_shape(m->layers[13].body[4].out, 3, 32, 14, 14);
    expect_shape(m->layers[15].out, 3, 32, 1, 1);
    cr_assert_eq(m->sched.kind, SCHED_COSINE);
    cr_assert_float_eq(m->sched.min_lr, 0.001, 0);
    cr_assert_float_eq(m->opt.momentum, 0.9, 0);
    cr_assert_float_eq(m->opt.weight_decay, 5e-4, 0);
    cr_assert_eq(l.msglen, 0, "%s", l.msgs);
    done(&l);
}

/* ---- settings ---- */

Test(check, defaults)
{
    Loaded l;
    memset(&l, 0, sizeof l);
    FILE *f = open_memstream(&l.msgs, &l.msglen);
    CheckOptions o = {.diag = f};
    const char *src = HEAD "network { flatten; dense(10) }";
    l.rc = bnn_load_source("some/dir/my.model.bnn", src, strlen(src), &o, &l.m);
    fclose(f);
    expect_ok(&l);
    cr_assert_str_eq(l.m->name, "my.model");
    cr_assert_str_eq(l.m->checkpoint, "my.model.h5");
    cr_assert_str_eq(l.m->file, "some/dir/my.model.bnn");
    cr_assert_eq(l.m->epochs, 10);
    cr_assert_eq(l.m->seed, 1);
    cr_assert_eq(l.m->sched.kind, SCHED_CONSTANT);
    cr_assert_eq(l.m->data.batch, 128);
    cr_assert_float_eq(l.m->opt.momentum, 0, 0);
    done(&l);
}

Test(check, every_setting)
{
    Loaded l;
    load(&l, "model m1; epochs 3; seed 42; checkpoint \"out/m.h5\"\n"
             "data mnist(path=\"/d\", batch=32, shuffle=false, limit=1000, normalize=\"standard\")\n"
             "optimizer sgd(0.05, 0.9, 1e-4, true)\n"
             "schedule step(every=2, factor=0.1)\n"
             "loss cross_entropy()\n"
             "network { flatten; dense(10) }\n");
    expect_ok(&l);
    const ModelSpec *m = l.m;
    cr_assert_str_eq(m->name, "m1");
    cr_assert_eq(m->epochs, 3);
    cr_assert_eq(m->seed, 42);
    cr_assert_str_eq(m->checkpoint, "out/m.h5");
    cr_assert_str_eq(m->data.kind, "mnist");
    cr_assert_str_eq(data_where(&m->data), "/d");
    cr_assert_eq(m->data.batch, 32);
    cr_assert_eq(m->data.shuffle, 0);
    cr_assert_eq(m->data.limit, 1000);
    cr_assert_eq(m->data.normalize, NORM_STANDARD);
    cr_assert_float_eq(m->opt.lr, 0.05, 0);
    cr_assert_float_eq(m->opt.momentum, 0.9, 0);
    cr_assert_float_eq(m->opt.weight_decay, 1e-4, 0);
    cr_assert_eq(m->opt.nesterov, 1);
    cr_assert_eq(m->sched.every, 2);
    done(&l);
    load(&l, HEAD "optimizer adam\nnetwork { flatten; dense(10) }");
    cr_assert_eq(l.rc, 1);
    done(&l);
    load(&l, "data mnist\noptimizer adam\nschedule cosine\nnetwork { flatten; dense(10) }");
    expect_ok(&l);
    cr_assert_str_eq(data_where(&l.m->data), "/usr/share/datasets/mnist");
    cr_assert_float_eq(l.m->opt.lr, 0.001, 0);
    cr_assert_float_eq(l.m->opt.eps, 1e-8, 0);
    done(&l);
}

Test(check, batch_override)
{
    Loaded l;
    load_opts(&l, HEAD "network { flatten; dense(10) }", (CheckOptions){.batch_override = 7});
    expect_ok(&l);
    cr_assert_eq(l.m->data.batch, 7);
    done(&l);
    load_opts(&l, HEAD "network { flatten; dense(10, bias=false); batchnorm; relu; dense(10) }",
              (CheckOptions){.batch_override = 1});
    cr_assert_eq(l.rc, 1);
    cr_assert(strstr(l.msgs, "t.bnn: error: batch size 1 (from the command line) with batchnorm"), "%s", l.msgs);
    done(&l);
}

/* The checks run statement kind by statement kind (data, optimizer, ..., network), but the errors come out in the
 * order of their lines, and a missing statement after the errors inside the file. */
Test(check, errors_in_source_order)
{
    Loaded l;
    load(&l, "network { conv2d(6); flatten; dense(10) }\n"
             "optimizer sgd(lr=-1)\n"
             "# no epochs, no checkpoint\n"
             "data fashion_mnist(bach=64)\n"
             "schedule step(every=0, factor=0.5)\n");
    cr_assert_eq(l.rc, 1);
    const char *want[] = {"t.bnn:1:11: error: conv2d needs its 'kernel'", "t.bnn:2:18: error: argument 'lr'",
                          "t.bnn:4:20: error: unknown argument 'bach'", "t.bnn:5:21: error: argument 'every'"};
    const char *at = l.msgs;
    for (int i = 0; i < 4; i++) {
        const char *p = strstr(at, want[i]);
        cr_assert(p, "'%s' missing or out of order in:\n%s", want[i], l.msgs);
        at = p + 1;
    }
    done(&l);
    load(&l, "data fashion_mnist(batch=0)\nnetwork { flatten; dense(10) }\n");
    const char *bad = strstr(l.msgs, "t.bnn:1:"), *missing = strstr(l.msgs, "t.bnn:2:31: error: missing 'optimizer'");
    cr_assert(bad && missing && bad < missing, "%s", l.msgs);
    done(&l);
}

Test(check, top_level_errors)
{
    expect_first(HEAD "epochs 3\nepochs 4\nnetwork { flatten; dense(10) }",
                 "t.bnn:4:1: error: duplicate 'epochs' statement (the first is at line 3)");
    /* A missing statement is reported at the end of the file, just after its last character. */
    expect_first("optimizer sgd(lr=1)\nnetwork { flatten; dense(10) }",
                 "t.bnn:2:31: error: missing 'data' statement, such as: data fashion_mnist(batch=128)");
    expect_first(HEAD, "t.bnn:2:22: error: missing 'network { ... }' statement");
    expect_first("data fashion_mnist\noptimizer sgd\nnetwork { flatten; dense(10) }",
                 "t.bnn:2:11: error: sgd needs its 'lr' argument: sgd(lr, momentum=0, weight_decay=0, nesterov=false)");
    expect_first("data fashion_mnst\n", "t.bnn:1:6: error: unknown dataset 'fashion_mnst' (did you mean 'fashion_mnist'?)");
    expect_first("data fashion_mnist(bach=64)\n",
                 "t.bnn:1:20: error: unknown argument 'bach' for fashion_mnist (did you mean 'batch'?)");
    expect_first("data fashion_mnist(normalize=\"std\")\n",
                 "t.bnn:1:30: error: argument 'normalize' of fashion_mnist must be \"unit\", \"standard\" or \"none\", got \"std\"");
    expect_first("data fashion_mnist(normalize=unit)\n", "t.bnn:1:30: error: argument 'normalize' of fashion_mnist must "
                 "be a string, got name 'unit' (strings are written in double quotes)");
    expect_first(HEAD "seed 1.5\n", "t.bnn:3:6: error: seed must be an integer, got number 1.5");
    expect_first(HEAD "epochs 0\n", "t.bnn:3:8: error: epochs must be between 1 and 1000000, got 0");
    expect_first("data fashion_mnist\noptimizer sgd(lr=0.1, momentum=1)\n",
                 "t.bnn:2:32: error: argument 'momentum' of sgd must be in [0, 1), got 1");
    expect_first("data fashion_mnist\noptimizer sgd(lr=0.1, nesterov=true)\n",
                 "t.bnn:2:32: error: nesterov needs a momentum greater than 0");
    expect_first(HEAD "schedule cosine(min_lr=1)\n", "t.bnn:3:24: error: min_lr 1 is above the optimizer's lr 0.1");
    expect_first(HEAD "loss mse\n", "t.bnn:3:6: error: unknown loss 'mse' (expected cross_entropy)");
    expect_first(HEAD "checkpoint \"lenet.bnn\"\n",
                 "t.bnn:3:12: error: the checkpoint path must end in .h5 (the file is HDF5), got \"lenet.bnn\"");
    expect_first(HEAD "model \"x\"\n", "t.bnn:3:7: error: the model name must be a name such as lenet_bn, got string \"x\"");
}

/* ---- layers and arguments ---- */

Test(check, layer_arguments)
{
    expect_first(HEAD "network { conv3d(6, kernel=5); flatten; dense(10) }",
                 "t.bnn:3:11: error: unknown layer 'conv3d' (did you mean 'conv2d'?)");
    expect_first(HEAD "network { conv2d(6, kernal=5); flatten; dense(10) }",
                 "t.bnn:3:21: error: unknown argument 'kernal' for conv2d (did you mean 'kernel'?)");
    expect_first(HEAD "network { conv2d(6); flatten; dense(10) }",
                 "t.bnn:3:11: error: conv2d needs its 'kernel' argument: conv2d(out, kernel, stride=1, padding=0, "
                 "bias=true, init=\"default\")");
    expect_first(HEAD "network { conv2d(6, 5, 1, 0, true, \"xavier\", 3); flatten; dense(10) }",
                 "t.bnn:3:46: error: conv2d takes at most 6 arguments, got 7: conv2d(out, kernel, stride=1, "
                 "padding=0, bias=true, init=\"default\")");
    expect_first(HEAD "network { conv2d(6, 5, kernel=3); flatten; dense(10) }",
                 "t.bnn:3:24: error: argument 'kernel' of conv2d is given twice");
    expect_first(HEAD "network { conv2d(6, kernel=2.5); flatten; dense(10) }",
                 "t.bnn:3:28: error: argument 'kernel' of conv2d must be an integer, got number 2.5");
    expect_first(HEAD "network { batchnorm(momentum=1.5); flatten; dense(10) }",
                 "t.bnn:3:30: error: argument 'momentum' of batchnorm must be in [0, 1], got 1.5");
    expect_first(HEAD "network { batchnorm(eps=0); flatten; dense(10) }",
                 "t.bnn:3:25: error: argument 'eps' of batchnorm must be in (0, 1], got 0");
    expect_first(HEAD "network { dropout; flatten; dense(10) }",
                 "t.bnn:3:11: error: dropout needs its 'p' argument: dropout(p)");
    expect_first(HEAD "network { relu(1); flatten; dense(10) }", "t.bnn:3:16: error: relu takes no arguments");
    expect_first(HEAD "network { maxpool(3, padding=2); flatten; dense(10) }",
                 "t.bnn:3:30: error: padding 2 is more than half the pooling window 3");
}

Test(check, pooling_stride_defaults_to_window)
{
    Loaded l;
    load(&l, HEAD "network { avgpool(3); maxpool(2, stride=1, padding=1); flatten; dense(10) }");
    expect_ok(&l);
    cr_assert_eq(layer_arg(&l.m->layers[0], "stride"), 3);
    expect_shape(l.m->layers[0].out, 3, 1, 9, 9);
    expect_shape(l.m->layers[1].out, 3, 1, 10, 10);
    done(&l);
}

/* ---- shapes ---- */

Test(check, shape_errors)
{
    expect_first(HEAD "network { conv2d(6, kernel=5); dense(10) }",
                 "t.bnn:3:32: error: dense needs a flat input, but its input is 6x24x24; add 'flatten' before it");
    expect_first(HEAD "network { conv2d(6, kernel=29); flatten; dense(10) }",
                 "t.bnn:3:11: error: kernel 29 is larger than its input 1x28x28 (padding 0)");
    expect_first(HEAD "network { maxpool(7); maxpool(7); flatten; dense(10) }",
                 "t.bnn:3:23: error: pooling window 7 is larger than its input 1x4x4 (padding 0)");
    expect_first(HEAD "network { flatten; conv2d(2, kernel=1); dense(10) }",
                 "t.bnn:3:20: error: conv2d needs a CxHxW input, but its input is 784 features");
    expect_first(HEAD "network { flatten; dense(12) }",
                 "t.bnn:3:20: error: dense_1 has 12 outputs but the data has 10 classes");
    expect_first(HEAD "network { conv2d(10, kernel=28) }",
                 "t.bnn:3:11: error: the network's output is 10x1x1, but it must be 10 class scores: end with flatten "
                 "and dense(10)");
    expect_first(HEAD "network { input 3x32x32; flatten; dense(10) }",
                 "t.bnn:3:17: error: input 3x32x32 does not match the fashion_mnist images, which are 1x28x28");
    expect_first(HEAD "network { flatten; input 1x28x28; dense(10) }",
                 "t.bnn:3:26: error: input 1x28x28 does not match the shape here, 784");
    expect_first(HEAD "network { input 28x28; flatten; dense(10) }",
                 "t.bnn:3:17: error: input 28x28 has 2 dimensions; write CxHxW, such as 1x28x28");
    expect_first(HEAD "network {\n  conv2d(4, kernel=3)\n  residual { conv2d(8, kernel=3, padding=1) }\n"
                 "  flatten; dense(10)\n}",
                 "t.bnn:5:3: error: the residual's body changes the shape from 4x26x26 to 8x26x26, so its input cannot "
                 "be added to its output");
}

Test(check, input_statement_that_matches)
{
    Loaded l;
    load(&l, HEAD "network { input 1x28x28; flatten; input 784; dense(10) }");
    expect_ok(&l);
    cr_assert_eq(l.m->nlayers, 2);
    done(&l);
}

Test(check, one_shape_error_does_not_cascade)
{
    Loaded l;
    load(&l, HEAD "network { conv2d(6, kernel=40); conv2d(6, kernel=40); dense(10); dense(3) }");
    cr_assert_eq(l.rc, 1);
    cr_assert_eq(count(l.msgs, "error:"), 1, "%s", l.msgs);
    done(&l);
}

/* ---- blocks, repeat, residual, naming ---- */

Test(check, block_expansion_positional_keyword_and_default)
{
    Loaded l;
    load(&l, HEAD "block conv_bn(c, k=3) { conv2d(c, kernel=k, bias=false); batchnorm; relu }\n"
                  "network {\n  conv_bn(4)\n  conv_bn(c=8, k=5)\n  conv_bn(2, 1)\n  flatten\n  dense(10)\n}\n");
    expect_ok(&l);
    const ModelSpec *m = l.m;
    cr_assert_eq(m->nlayers, 11);
    cr_assert_eq(layer_arg(&m->layers[0], "out"), 4);
    cr_assert_eq(layer_arg(&m->layers[0], "kernel"), 3);
    cr_assert_eq(layer_arg(&m->layers[3], "out"), 8);
    cr_assert_eq(layer_arg(&m->layers[3], "kernel"), 5);
    cr_assert_eq(layer_arg(&m->layers[6], "kernel"), 1);
    expect_shape(m->layers[8].out, 3, 2, 22, 22);
    static const char *const names[] = {"conv2d_1", "batchnorm_1", "relu_1", "conv2d_2", "batchnorm_2", "relu_2",
                                        "conv2d_3", "batchnorm_3", "relu_3", "flatten_1", "dense_1"};
    for (int i = 0; i < 11; i++)
        cr_assert_str_eq(m->layers[i].name, names[i]);
    cr_assert_eq(m->layers[0].loc.line, 3); /* the layer call inside the block */
    cr_assert_eq(m->layers[0].loc.col, 25);
    cr_assert_eq(l.msglen, 0, "%s", l.msgs);
    done(&l);
}

Test(check, labels_inside_blocks_get_the_call_prefix)
{
    Loaded l;
    load(&l, HEAD "block b(c) { x: conv2d(c, kernel=1); relu }\n"
                  "block outer { b(1); inner: b(1) }\n"
                  "network {\n  b(1)\n  b(1)\n  s: b(1)\n  outer\n  flatten\n  dense(10)\n}\n");
    expect_ok(&l);
    static const char *const names[] = {"b_1.x", "relu_1", "b_2.x", "relu_2", "s.x", "relu_3",
                                        "outer_1.b_4.x", "relu_4", "outer_1.inner.x", "relu_5", "flatten_1", "dense_1"};
    cr_assert_eq(l.m->nlayers, 12);
    for (int i = 0; i < 12; i++)
        cr_assert_str_eq(l.m->layers[i].name, names[i]);
    done(&l);
}

Test(check, repeat_expansion_and_naming)
{
    Loaded l;
    load(&l, HEAD "network {\n  repeat 2 { repeat 2 { a: relu } }\n  repeat 3 { tanh }\n  flatten\n"
                  "  repeat 2 { d: dense(10) }\n}\n");
    expect_ok(&l);
    static const char *const names[] = {"a_1_1", "a_1_2", "a_2_1", "a_2_2", "tanh_1", "tanh_2", "tanh_3",
                                        "flatten_1", "d_1", "d_2"};
    cr_assert_eq(l.m->nlayers, 10);
    for (int i = 0; i < 10; i++)
        cr_assert_str_eq(l.m->layers[i].name, names[i]);
    done(&l);
}

Test(check, repeat_count_from_a_block_parameter)
{
    Loaded l;
    load(&l, HEAD "block stack(n, c) { repeat n { conv2d(c, kernel=3, padding=1) } }\n"
                  "network { stack(4, 2); flatten; dense(10) }\n");
    expect_ok(&l);
    cr_assert_eq(l.m->nlayers, 6);
    cr_assert_str_eq(l.m->layers[3].name, "conv2d_4");
    cr_assert_eq(l.m->layers[3].nparams, 2 * 2 * 9 + 2);
    done(&l);
}

Test(check, residual_names_and_counts_in_network_order)
{
    Loaded l;
    load(&l, HEAD "network {\n  conv2d(4, kernel=3, padding=1)\n"
                  "  residual { conv2d(4, kernel=3, padding=1); relu; residual { relu } }\n"
                  "  skip: residual { tanh }\n  flatten\n  dense(10)\n}\n");
    expect_ok(&l);
    const ModelSpec *m = l.m;
    cr_assert_eq(m->nlayers, 5);
    cr_assert_eq(m->nlayers_total, 10);
    cr_assert_str_eq(m->layers[1].name, "residual_1");
    cr_assert_eq(m->layers[1].nbody, 3);
    cr_assert_str_eq(m->layers[1].body[0].name, "conv2d_2");
    cr_assert_str_eq(m->layers[1].body[2].name, "residual_2");
    cr_assert_str_eq(m->layers[1].body[2].body[0].name, "relu_2");
    cr_assert_str_eq(m->layers[2].name, "skip");
    cr_assert_eq(m->layers[1].nparams, 0);
    cr_assert_eq(m->nparams, (4 * 9 + 4) + (4 * 4 * 9 + 4) + (3136 * 10 + 10));
    expect_shape(m->layers[1].out, 3, 4, 28, 28);
    done(&l);
}

Test(check, naming_example_of_the_docs)
{
    Loaded l;
    load(&l, HEAD "block unit(c) {\n    body: residual { conv2d(c, kernel=3, padding=1); relu }\n    relu\n}\n"
                  "network {\n    conv2d(4, kernel=3, padding=1)\n    repeat 2 { unit(4) }\n    s: unit(4)\n"
                  "    repeat 2 { d: relu }\n    flatten\n    dense(10)\n}\n");
    expect_ok(&l);
    static const char *const top[] = {"conv2d_1", "unit_1.body", "relu_2", "unit_2.body", "relu_4", "s.body",
                                      "relu_6", "d_1", "d_2", "flatten_1", "dense_1"};
    static const char *const body[][2] = {{"conv2d_2", "relu_1"}, {"conv2d_3", "relu_3"}, {"conv2d_4", "relu_5"}};
    cr_assert_eq(l.m->nlayers, 11);
    cr_assert_eq(l.m->nlayers_total, 17);
    for (int i = 0; i < 11; i++)
        cr_assert_str_eq(l.m->layers[i].name, top[i]);
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < 2; i++)
            cr_assert_str_eq(l.m->layers[1 + 2 * r].body[i].name, body[r][i]);
    done(&l);
}

Test(check, naming_errors)
{
    expect_first(HEAD "network { bn: relu; bn: tanh; flatten; dense(10) }",
                 "t.bnn:3:21: error: duplicate layer name 'bn' (first used at line 3)");
    expect_first(HEAD "network { relu_2: relu; relu; flatten; dense(10) }",
                 "t.bnn:3:11: error: label 'relu_2' is also the automatic name of the relu layer at line 3; choose "
                 "another label");
    expect_first(HEAD "network { repeat 2 { x: relu }; x_1: tanh; flatten; dense(10) }",
                 "t.bnn:3:33: error: duplicate layer name 'x_1' (first used at line 3)");
    expect_first(HEAD "network { x: repeat 2 { relu }; flatten; dense(10) }",
                 "t.bnn:3:11: error: a label names a layer, a residual or a block call, not 'repeat'");
}

Test(check, block_errors)
{
    expect_first(HEAD "block a(c) { b(c) }\nblock b(c) { conv2d(c, kernel=1); a(c) }\nnetwork { a(2); flatten; dense(10) }",
                 "t.bnn:4:35: error: block 'a' calls itself: a -> b -> a");
    expect_first(HEAD "block a { a }\nnetwork { a; flatten; dense(10) }",
                 "t.bnn:3:11: error: block 'a' calls itself: a -> a");
    expect_first(HEAD "block b(c, k=3) { conv2d(c, kernel=k) }\nnetwork { b(k=1); flatten; dense(10) }",
                 "t.bnn:4:11: error: block 'b' needs a value for its parameter 'c'");
    expect_first(HEAD "block b(c, k=3) { conv2d(c, kernel=k) }\nnetwork { b(1, kk=1); flatten; dense(10) }",
                 "t.bnn:4:16: error: block 'b' has no parameter 'kk' (did you mean 'k'?)");
    expect_first(HEAD "block b(c) { conv2d(c, kernel=1) }\nnetwork { b(1, 2); flatten; dense(10) }",
                 "t.bnn:4:16: error: block 'b' takes 1 argument, got 2");
    expect_first(HEAD "block b(c) { conv2d(cc, kernel=1) }\nnetwork { b(1); flatten; dense(10) }",
                 "t.bnn:3:21: error: 'cc' is not a parameter of block 'b' (did you mean 'c'?)");
    expect_first(HEAD "block b(c) { conv2d(c, kernel=1) }\nnetwork { b(0); flatten; dense(10) }",
                 "t.bnn:4:13: error: argument 'out' of conv2d must be between 1 and 65536, got 0 (through parameter "
                 "'c' of block 'b')");
    expect_first(HEAD "block relu { tanh }\nnetwork { flatten; dense(10) }",
                 "t.bnn:3:7: error: block 'relu' has the name of a layer; choose another name");
    expect_first(HEAD "block b { relu }\nblock b { tanh }\nnetwork { b; flatten; dense(10) }",
                 "t.bnn:4:7: error: block 'b' is defined twice (first at line 3)");
    expect_first(HEAD "block b(c=1, k) { relu }\nnetwork { flatten; dense(10) }",
                 "t.bnn:3:14: error: parameter 'k' of block 'b' has no default but follows one that has");
    expect_first(HEAD "block b(c) { input c }\nnetwork { b(1x28x28); flatten; dense(10) }",
                 "t.bnn:4:11: error: block 'b' expands to no layers");
}

Test(check, an_error_in_a_block_is_reported_once)
{
    Loaded l;
    load(&l, HEAD "block b { conv2d(0, kernel=1) }\nnetwork { b; b; repeat 50 { b }; flatten; dense(10) }");
    cr_assert_eq(l.rc, 1);
    cr_assert_eq(count(l.msgs, "error:"), 1, "%s", l.msgs);
    done(&l);
}

Test(check, expansion_work_is_bounded)
{
    /* 2^26 calls of a block whose every expansion fails: no layer is ever added, the work limit stops it */
    char src[4096] = HEAD;
    for (int i = 0; i < 26; i++)
        snprintf(src + strlen(src), sizeof src - strlen(src), "block x%d { x%d; x%d }\n", i, i + 1, i + 1);
    strcat(src, "block x26 { conv2d(0, kernel=1) }\nnetwork { x0; flatten; dense(10) }\n");
    Loaded l;
    load(&l, src);
    cr_assert_eq(l.rc, 1);
    cr_assert(strstr(l.msgs, "error: the network is too large to expand (more than 800000 steps)"), "%s", l.msgs);
    cr_assert_eq(count(l.msgs, "error:"), 2, "%s", l.msgs);
    done(&l);
}

Test(check, errors_inside_blocks_note_the_call)
{
    Loaded l;
    load(&l, HEAD "block head(n) {\n  dense(n)\n}\nnetwork {\n  conv2d(2, kernel=3)\n  head(10)\n}\n");
    cr_assert_eq(l.rc, 1);
    cr_assert_str_eq(l.msgs, "t.bnn:4:3: error: dense needs a flat input, but its input is 2x26x26; add 'flatten' before it\n"
                             "  dense(n)\n"
                             "  ^\n"
                             "t.bnn:8:3: note: in block 'head' called here\n"
                             "  head(10)\n"
                             "  ^\n");
    done(&l);
}

/* ---- warnings ---- */

Test(check, warnings)
{
    Loaded l;
    load(&l, "data fashion_mnist(batch=4)\noptimizer sgd(lr=0.1)\nblock unused { relu }\n"
             "network {\n  flatten\n  dense(10)\n  batchnorm\n}\n");
    expect_ok(&l);
    cr_assert_eq(count(l.msgs, "warning:"), 4, "%s", l.msgs);
    cr_assert(strstr(l.msgs, "t.bnn:6:3: warning: the bias of this dense is redundant"), "%s", l.msgs);
    cr_assert(strstr(l.msgs, "t.bnn:7:3: warning: the network ends with batchnorm"), "%s", l.msgs);
    cr_assert(strstr(l.msgs, "t.bnn:1:26: warning: batch size 4 is small for batchnorm"), "%s", l.msgs);
    cr_assert(strstr(l.msgs, "t.bnn:3:7: warning: block 'unused' is never used"), "%s", l.msgs);
    done(&l);
    /* no batchnorm, no batch warning */
    load(&l, "data fashion_mnist(batch=1)\noptimizer sgd(lr=0.1)\nnetwork { flatten; dense(10) }\n");
    expect_ok(&l);
    cr_assert_eq(l.msglen, 0, "%s", l.msgs);
    done(&l);
}

Test(check, batch_of_one_with_batchnorm_is_an_error)
{
    expect_first("data fashion_mnist(batch=1)\noptimizer sgd(lr=0.1)\n"
                 "network { flatten; dense(8, bias=false); batchnorm; relu; dense(10) }\n",
                 "t.bnn:1:26: error: batch size 1 with batchnorm: the batch variance is zero, so batchnorm cannot "
                 "normalize (use a batch of at least 8)");
}

/* ---- limits ---- */

Test(check, layer_limit_however_it_is_reached)
{
    expect_first(HEAD "network {\n  repeat 1000 { repeat 1000 { relu } }\n  flatten\n  dense(10)\n}\n",
                 "t.bnn:4:3: error: the network expands to more than 100000 layers (the limit)");
    /* doubling through blocks: 2^20 layers */
    char src[2048] = HEAD;
    for (char c = 'a'; c < 'u'; c++)
        snprintf(src + strlen(src), sizeof src - strlen(src), "block %c { %c; %c }\n", c, c + 1, c + 1);
    strcat(src, "block u { relu }\nnetwork { a; flatten; dense(10) }\n");
    expect_first(src, "t.bnn:24:11: error: the network expands to more than 100000 layers (the limit)");
    Loaded l;
    load_opts(&l, HEAD "network { repeat 10 { relu }; flatten; dense(10) }", (CheckOptions){.max_layers = 11});
    cr_assert_eq(l.rc, 1);
    cr_assert(strstr(l.msgs, "more than 11 layers"), "%s", l.msgs);
    done(&l);
    load_opts(&l, HEAD "network { repeat 9 { relu }; flatten; dense(10) }", (CheckOptions){.max_layers = 11});
    expect_ok(&l);
    done(&l);
}

Test(check, repeat_count_is_bounded)
{
    expect_first(HEAD "network { repeat 100001 { relu }; flatten; dense(10) }",
                 "t.bnn:3:18: error: the repeat count must be between 1 and 100000, got 100001");
    expect_first(HEAD "network { repeat 0 { relu }; flatten; dense(10) }",
                 "t.bnn:3:18: error: the repeat count must be between 1 and 100000, got 0");
}

Test(check, expansion_depth_is_bounded)
{
    char src[8192] = HEAD;
    for (int i = 0; i < 70; i++)
        snprintf(src + strlen(src), sizeof src - strlen(src), "block b%d { b%d }\n", i, i + 1);
    strcat(src, "block b70 { relu }\nnetwork { b0; flatten; dense(10) }\n");
    Loaded l;
    load(&l, src);
    cr_assert_eq(l.rc, 1);
    cr_assert(strstr(l.msgs, "error: nested too deeply (more than 64 levels of repeat, residual and block calls)"),
              "%s", l.msgs);
    done(&l);
}

Test(check, memory_cap)
{
    Loaded l;
    load_opts(&l, HEAD "network { flatten; dense(10) }", (CheckOptions){.mem_cap_bytes = 1000});
    cr_assert_eq(l.rc, 1);
    /* 7850 params * 16 + (784 + 784 + 10) activations * 128 * 12 bytes */
    cr_assert(strstr(l.msgs, "t.bnn:3:1: error: training this model needs about 2.4 MiB of memory (7850 parameters, 1578 "
                             "activation values per image at batch 128), more than 1000 bytes (the memory cap)"),
              "%s", l.msgs);
    done(&l);
    load_opts(&l, HEAD "network { flatten; dense(10) }", (CheckOptions){.mem_cap_bytes = 3u << 20});
    expect_ok(&l);
    done(&l);
}

/* ---- I/O and buffers ---- */

Test(check, unreadable_file)
{
    Loaded l;
    load_file(&l, "tests/no/such/file.bnn");
    cr_assert_eq(l.rc, 1);
    cr_assert_null(l.m);
    cr_assert_str_eq(l.msgs, "tests/no/such/file.bnn: error: cannot read: No such file or directory\n");
    done(&l);
}

Test(check, source_need_not_be_nul_terminated)
{
    const char text[] = HEAD "network { flatten; dense(10) }XXXX";
    size_t len = sizeof text - 1 - 4;
    char *buf = malloc(len);
    memcpy(buf, text, len);
    Loaded l;
    memset(&l, 0, sizeof l);
    FILE *f = open_memstream(&l.msgs, &l.msglen);
    CheckOptions o = {.diag = f};
    l.rc = bnn_load_source("t.bnn", buf, len, &o, &l.m);
    fclose(f);
    free(buf);
    expect_ok(&l);
    cr_assert_eq(l.m->source_len, len);
    cr_assert_eq(strlen(l.m->source), len);
    done(&l);
}

Test(check, summary_table)
{
    Loaded l;
    load_file(&l, "models/lenet_bn.bnn");
    expect_ok(&l);
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    bnn_print_summary(l.m, f);
    fclose(f);
    cr_assert(strstr(out, "44,878 trainable parameters, 452 buffer values, 16 layers"), "%s", out);
    cr_assert(strstr(out, " 1  conv2d_1     conv2d     6x24x24           156          0\n"), "%s", out);
    cr_assert(strstr(out, "10  dense_1      dense      120            30,840          0\n"), "%s", out);
    free(out);
    done(&l);
    load_file(&l, "models/resnet_small.bnn");
    expect_ok(&l);
    f = open_memstream(&out, &n);
    bnn_print_summary(l.m, f);
    fclose(f);
    cr_assert(strstr(out, " 4  res_unit_1.unit  residual   16x28x28\n 5    conv2d_2 "), "%s", out);
    free(out);
    done(&l);
}

/* The experiments' models. Counts from torch.nn (via /usr/bin/python3): Figure 1's MLP, nn.Linear(784, 100),
 * BatchNorm1d(100), ... Linear(100, 10): 100,310 parameters and 600 running values; the half-width ReLU CNN with
 * BatchNorm2d/1d: 207,274 and 352. Without batch norm (--set batchnorm=off) their own layers are all that is left. */
Test(check, experiment_models)
{
    Loaded l;
    load_file(&l, "models/mlp_sigmoid_bn.bnn");
    expect_ok(&l);
    cr_assert_eq(l.m->nparams, 100310);
    cr_assert_eq(l.m->nbuffers, 600);
    cr_assert_eq(l.m->data.batch, 60);
    cr_assert_str_eq(l.m->layers[10].name, "dense_4");
    done(&l);
    load_file(&l, "models/cnn_relu_bn.bnn");
    expect_ok(&l);
    cr_assert_eq(l.m->nparams, 207274);
    cr_assert_eq(l.m->nbuffers, 352);
    expect_shape(l.m->layers[7].out, 3, 32, 7, 7);
    cr_assert_str_eq(l.m->layers[13].name, "dropout_2");
    done(&l);
}
