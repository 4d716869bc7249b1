/* Overrides (interp/override.c): each --set, and each `set` statement, must give the model that the same change
 * written into the file gives (the edited file is the reference: it is checked by the language alone), whatever
 * the override reaches (settings written by key, by position or not at all, a layer by name inside a block called
 * twice, every layer of a kind, layers switched off); the later of two settings of a key wins, a layer's own name
 * wins over its kind; the recorded source rebuilds the model exactly; and every bad override is one line naming
 * its --set, or a diagnostic at its place in the file. Through the binary: exit statuses and nothing written. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "interp/frontend.h"
#include "interp/override.h"
#include "runtime/ckpt.h"
#include "runtime/data/kind.h"
#include "runtime/layer.h"
#include "tests/support.h"

typedef struct Loaded {
    ModelSpec *m;
    int rc;
    char *msgs;
    size_t msglen;
} Loaded;

/* Checks src with the overrides sets[0..n) (KEY=VALUE, as --set takes them). */
static void load_set(Loaded *l, const char *src, const char *const *sets, int n)
{
    Override ov[16];
    char err[256];
    cr_assert(n <= 16);
    for (int i = 0; i < n; i++)
        cr_assert_eq(override_parse(sets[i], &ov[i], err, sizeof err), OVERRIDE_OK, "%s: %s", sets[i], err);
    memset(l, 0, sizeof *l);
    FILE *f = open_memstream(&l->msgs, &l->msglen);
    cr_assert_not_null(f);
    CheckOptions o = {.diag = f, .overrides = ov, .noverrides = n};
    l->rc = bnn_load_source("t.bnn", src, strlen(src), &o, &l->m);
    fclose(f);
    for (int i = 0; i < n; i++)
        override_clear(&ov[i]);
}

static void done(Loaded *l)
{
    spec_free(l->m);
    free(l->msgs);
}

static void expect_layers_equal(const LayerSpec *a, int na, const LayerSpec *b, int nb, const char *what)
{
    cr_assert_eq(na, nb, "%s: %d layers, the edited file has %d", what, na, nb);
    for (int i = 0; i < na; i++) {
        const LayerSpec *x = &a[i], *y = &b[i];
        cr_expect_eq(x->kind, y->kind, "%s: layer %d kind", what, i);
        cr_expect_str_eq(x->name, y->name, "%s: layer %d name", what, i);
        for (int k = 0; k < layer_ops[x->kind]->nargs; k++) {
            cr_expect_eq(x->arg[k].num, y->arg[k].num, "%s: %s argument %s: %g, edited file %g", what, x->name,
                         layer_ops[x->kind]->args[k].key, x->arg[k].num, y->arg[k].num);
            cr_expect_str_eq(x->arg[k].str, y->arg[k].str, "%s: %s argument %s", what, x->name,
                             layer_ops[x->kind]->args[k].key);
        }
        cr_expect(x->out.c == y->out.c && x->out.h == y->out.h && x->out.w == y->out.w, "%s: %s shape", what,
                  x->name);
        cr_expect(x->nparams == y->nparams && x->nbuffers == y->nbuffers, "%s: %s counts", what, x->name);
        expect_layers_equal(x->body, x->nbody, y->body, y->nbody, what);
    }
}

/* Everything a run reads from the ModelSpec, but the source text. */
static void expect_specs_equal(const ModelSpec *a, const ModelSpec *b, const char *what)
{
    cr_expect_str_eq(a->data.kind, b->data.kind, "%s: data", what);
    cr_expect_str_eq(data_where(&a->data), data_where(&b->data), "%s: where the data is", what);
    cr_expect(a->data.batch == b->data.batch && a->data.shuffle == b->data.shuffle &&
              a->data.limit == b->data.limit && a->data.normalize == b->data.normalize, "%s: data arguments", what);
    const OptSpec *p = &a->opt, *q = &b->opt;
    cr_expect(p->kind == q->kind && p->lr == q->lr && p->momentum == q->momentum && p->weight_decay == q->weight_decay &&
              p->nesterov == q->nesterov && p->beta1 == q->beta1 && p->beta2 == q->beta2 && p->eps == q->eps,
              "%s: optimizer (lr %g vs %g)", what, p->lr, q->lr);
    cr_expect(a->sched.kind == b->sched.kind && a->sched.every == b->sched.every &&
              a->sched.factor == b->sched.factor && a->sched.min_lr == b->sched.min_lr, "%s: schedule", what);
    cr_expect_eq(a->epochs, b->epochs, "%s: epochs %d vs %d", what, a->epochs, b->epochs);
    cr_expect_eq(a->seed, b->seed, "%s: seed", what);
    cr_expect_str_eq(a->checkpoint, b->checkpoint, "%s: checkpoint", what);
    cr_expect(a->nparams == b->nparams && a->nbuffers == b->nbuffers, "%s: totals", what);
    expect_layers_equal(a->layers, a->nlayers, b->layers, b->nlayers, what);
}

/* A model with a block called twice, a repeat, a labelled layer, dropout and batchnorm, positional arguments. */
#define BASE                                                                                                     \
    "data fashion_mnist(%s)\noptimizer sgd(%s)\n%s"                                                                \
    "block cb(c) {\n    conv2d(c, kernel=3, padding=1, bias=false)\n    bn: batchnorm\n    relu\n}\n"              \
    "network {\n    cb(4)\n    cb(4)\n    maxpool(2)\n    flatten\n    repeat 2 { dense(%s); batchnorm; %s }\n"        \
    "    head: dense(10)\n}\n"

/* The base model with its variable parts filled in (static buffer, one per slot). */
static const char *model(int slot, const char *data, const char *opt, const char *top, const char *units,
                         const char *act)
{
    static char buf[4][1024];
    snprintf(buf[slot], sizeof buf[slot], BASE, data, opt, top, units, act);
    return buf[slot];
}

/* src with sets must equal the edited text `want`, and its recorded source must rebuild the same model. */
static void expect_as_edited(const char *src, const char *const *sets, int n, const char *want)
{
    Loaded a, b, c;
    load_set(&a, src, sets, n);
    cr_assert_eq(a.rc, 0, "%s: %s", sets[0], a.msgs);
    load_set(&b, want, NULL, 0);
    cr_assert_eq(b.rc, 0, "the edited file: %s", b.msgs);
    expect_specs_equal(a.m, b.m, sets[0]);
    load_set(&c, a.m->source, NULL, 0);
    cr_assert_eq(c.rc, 0, "%s: the recorded source does not check:\n%s\n%s", sets[0], a.m->source, c.msgs);
    expect_specs_equal(c.m, a.m, "the recorded source");
    done(&a), done(&b), done(&c);
}

#define SETS(...) ((const char *const[]){__VA_ARGS__}), (int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *))

Test(override, settings_written_by_key_by_position_or_not_at_all)
{
    const char *base = model(0, "batch=32", "0.1", "", "20", "sigmoid");
    expect_as_edited(base, SETS("optimizer.lr=0.3"), model(1, "batch=32", "0.3", "", "20", "sigmoid"));
    expect_as_edited(base, SETS("optimizer.momentum=0.9", "optimizer.nesterov=true"),
                     model(1, "batch=32", "0.1, momentum=0.9, nesterov=true", "", "20", "sigmoid"));
    expect_as_edited(base, SETS("data.batch=64", "data.normalize=standard", "data.limit=100"),
                     model(1, "batch=64, normalize=\"standard\", limit=100", "0.1", "", "20", "sigmoid"));
    expect_as_edited(base, SETS("epochs=3", "seed=4", "checkpoint=x.h5"),
                     model(1, "batch=32", "0.1", "epochs 3\nseed 4\ncheckpoint \"x.h5\"\n", "20", "sigmoid"));
    expect_as_edited(model(2, "batch=32", "0.1", "epochs 7\nschedule step(2, 0.5)\n", "20", "sigmoid"),
                     SETS("epochs=2", "schedule.factor=0.25"),
                     model(1, "batch=32", "0.1", "epochs 2\nschedule step(2, 0.25)\n", "20", "sigmoid"));
}

Test(override, layers_by_name_by_kind_and_switched_off)
{
    const char *base = model(0, "", "0.1", "", "20", "dropout(0.3)");
    /* by name: the second call's labelled batchnorm only; an automatic name in a repeat */
    Loaded a;
    load_set(&a, base, SETS("cb_2.bn.momentum=0.5", "dense_2.out=12"));
    cr_assert_eq(a.rc, 0, "%s", a.msgs);
    cr_expect_eq(layer_arg(&a.m->layers[1], "momentum"), 0.9, "%s", a.m->layers[1].name);
    cr_expect_str_eq(a.m->layers[4].name, "cb_2.bn");
    cr_expect_eq(layer_arg(&a.m->layers[4], "momentum"), 0.5);
    cr_expect_str_eq(a.m->layers[11].name, "dense_2");
    cr_expect_eq(a.m->layers[11].out.c, 12, "dense_2 is the second repeat's dense");
    done(&a);
    /* by kind: every batchnorm, those of both block calls and of both repeats */
    const char *bn_all = "data fashion_mnist()\noptimizer sgd(0.1)\n"
                         "block cb(c) {\n    conv2d(c, kernel=3, padding=1, bias=false)\n    bn: batchnorm(momentum=0.5)\n"
                         "    relu\n}\nnetwork {\n    cb(4)\n    cb(4)\n    maxpool(2)\n    flatten\n"
                         "    repeat 2 { dense(20); batchnorm(momentum=0.5); dropout(0.3) }\n    head: dense(10)\n}\n";
    expect_as_edited(base, SETS("batchnorm.momentum=0.5"), bn_all);
    /* off: as if no batchnorm (or dropout) were written; the other layers keep their names */
    const char *no_bn = "data fashion_mnist()\noptimizer sgd(0.1)\n"
                        "block cb(c) {\n    conv2d(c, kernel=3, padding=1, bias=false)\n    relu\n}\n"
                        "network {\n    cb(4)\n    cb(4)\n    maxpool(2)\n    flatten\n"
                        "    repeat 2 { dense(20); dropout(0.3) }\n    head: dense(10)\n}\n";
    expect_as_edited(base, SETS("batchnorm=off"), no_bn);
    expect_as_edited(base, SETS("batchnorm=off", "dropout=on"), no_bn);
    const char *neither = "data fashion_mnist()\noptimizer sgd(0.1)\n"
                          "block cb(c) {\n    conv2d(c, kernel=3, padding=1, bias=false)\n    relu\n}\n"
                          "network {\n    cb(4)\n    cb(4)\n    maxpool(2)\n    flatten\n"
                          "    repeat 2 { dense(20) }\n    head: dense(10)\n}\n";
    expect_as_edited(base, SETS("batchnorm=off", "dropout=off"), neither);
    /* new arguments through overrides, strings without quotes */
    expect_as_edited(base, SETS("head.init=normal(0.01)", "batchnorm.affine=false"),
                     "data fashion_mnist()\noptimizer sgd(0.1)\n"
                     "block cb(c) {\n    conv2d(c, kernel=3, padding=1, bias=false)\n"
                     "    bn: batchnorm(affine=false)\n    relu\n}\nnetwork {\n    cb(4)\n    cb(4)\n    maxpool(2)\n"
                     "    flatten\n    repeat 2 { dense(20); batchnorm(affine=false); dropout(0.3) }\n"
                     "    head: dense(10, init=\"normal(0.01)\")\n}\n");
}

/* The later setting of a key wins (the command line's over the file's `set`), and a layer's name over its kind
 * whatever their order. */
Test(override, later_wins_and_name_wins_over_kind)
{
    char src[2048];
    snprintf(src, sizeof src, "%sset optimizer.lr = 0.2\nset batchnorm.momentum = 0.3\nset optimizer.lr = 0.25\n",
             model(0, "", "0.1", "", "20", "sigmoid"));
    Loaded a;
    load_set(&a, src, NULL, 0);
    cr_assert_eq(a.rc, 0, "%s", a.msgs);
    cr_expect_eq(a.m->opt.lr, 0.25);
    cr_expect_eq(layer_arg(&a.m->layers[1], "momentum"), 0.3);
    done(&a);
    load_set(&a, src, SETS("cb_1.bn.momentum=0.7", "optimizer.lr=0.5", "batchnorm.momentum=0.6"));
    cr_assert_eq(a.rc, 0, "%s", a.msgs);
    cr_expect_eq(a.m->opt.lr, 0.5);
    cr_expect_eq(layer_arg(&a.m->layers[1], "momentum"), 0.7, "the name wins");
    cr_expect_eq(layer_arg(&a.m->layers[4], "momentum"), 0.6, "the command line's kind setting wins the file's");
    done(&a);
}

/* The recorded text: the file, a comment, then one `set` per --set, strings quoted and escaped so that they read
 * back as the same value. */
Test(override, recorded_source_reads_back)
{
    const char *base = model(0, "", "0.1", "", "20", "sigmoid");
    Loaded a, b;
    load_set(&a, base, SETS("data.path=/usr/share/datasets/fashion-mnist", "checkpoint=\"we\\\"ird \\\\ x.h5\"",
                            "optimizer.lr=1e-1", "dense.init=uniform(0.5)", "seed=0", "optimizer.nesterov=false",
                            "optimizer.momentum=0.5e-1", "batchnorm=off"));
    cr_assert_eq(a.rc, 0, "%s", a.msgs);
    cr_expect_str_eq(a.m->checkpoint, "we\"ird \\ x.h5");
    const char *tail = strstr(a.m->source, "# overrides from the command line");
    cr_assert_not_null(tail, "%s", a.m->source);
    cr_expect_str_eq(tail, "# overrides from the command line (bnni --set)\n"
                           "set data.path = \"/usr/share/datasets/fashion-mnist\"\n"
                           "set checkpoint = \"we\\\"ird \\\\ x.h5\"\n"
                           "set optimizer.lr = 1e-1\nset dense.init = \"uniform(0.5)\"\nset seed = 0\n"
                           "set optimizer.nesterov = false\nset optimizer.momentum = 0.5e-1\nset batchnorm = \"off\"\n");
    cr_expect_eq(strncmp(a.m->source, base, strlen(base)), 0, "the file's own text comes first, unchanged");
    load_set(&b, a.m->source, NULL, 0);
    cr_assert_eq(b.rc, 0, "%s", b.msgs);
    expect_specs_equal(b.m, a.m, "read back");
    done(&a), done(&b);
}

/* One error each (the file's own warnings aside): the message names the --set, and no spec is made. */
static void expect_error(const char *src, const char *set, const char *msg)
{
    Loaded a;
    char want[1024];
    load_set(&a, src, &set, 1);
    cr_expect_eq(a.rc, 1, "--set %s was accepted", set);
    cr_expect_null(a.m);
    snprintf(want, sizeof want, "t.bnn: error: --set %s: %s\n", set, msg);
    const char *e = strstr(a.msgs, "error:");
    cr_assert_not_null(e, "--set %s: %s", set, a.msgs);
    cr_expect(strstr(e + 1, "error:") == NULL, "--set %s: more than one error: %s", set, a.msgs);
    while (e > a.msgs && e[-1] != '\n')
        e--;
    cr_expect_str_eq(e, want, "--set %s: %s", set, e);
    done(&a);
}

Test(override, bad_overrides_are_one_line_naming_the_set)
{
    const char *base = model(0, "", "0.1", "", "20", "sigmoid");
    expect_error(base, "optimzer.lr=1", "unknown setting 'optimzer.lr' (did you mean 'optimizer.lr'?)");
    expect_error(base, "optimizer.lrr=1", "unknown argument 'lrr' for sgd (did you mean 'lr'?)");
    expect_error(base, "batchnrom.momentum=0.5", "unknown setting 'batchnrom.momentum' (did you mean "
                                                 "'batchnorm.momentum'?)");
    expect_error(base, "cb_3.bn.momentum=0.5", "unknown setting 'cb_3.bn.momentum' (did you mean "
                                               "'cb_1.bn.momentum'?)");
    expect_error(base, "zzz.y=1", "unknown setting 'zzz.y': 'zzz' is not data, optimizer, schedule, a layer kind or "
                                  "the name of a layer");
    expect_error(base, "head.momentum=0.5", "unknown argument 'momentum' for dense; it takes dense(out, bias=true, "
                                            "init=\"default\")");
    expect_error(base, "dense.kernel=3", "unknown argument 'kernel' for dense; it takes dense(out, bias=true, "
                                         "init=\"default\")");
    expect_error(base, "optimizer.lr=abc", "argument 'lr' of sgd must be a number, got string \"abc\"");
    expect_error(base, "optimizer.lr=0", "argument 'lr' of sgd must be greater than 0, got 0");
    expect_error(base, "data.batch=0.5", "argument 'batch' of fashion_mnist must be an integer, got number 0.5");
    expect_error(base, "data.normalize=std", "argument 'normalize' of fashion_mnist must be \"unit\", "
                                             "\"standard\" or \"none\", got \"std\"");
    expect_error(base, "dense.bias=1", "argument 'bias' of dense must be true or false, got integer 1");
    expect_error(base, "batchnorm=maybe", "batchnorm must be on or off, got string \"maybe\"");
    expect_error(base, "residual=off", "unknown setting 'residual'");
    expect_error(base, "epochs=0", "epochs must be between 1 and 1000000, got 0");
    expect_error(base, "epochs.x=1", "unknown setting 'epochs.x': epochs takes a value, such as epochs=10");
    expect_error(base, "optimizer=adam", "unknown setting 'optimizer': name an argument of optimizer, such as "
                                         "optimizer.lr");
    expect_error(base, "batchnorm.eps=1e-50", "eps 1e-50 is too small for single precision");
    expect_error(base, "dropout.p=0.5", "the model has no dropout layer whose 'p' to set");
    expect_error(base, "schedule.min_lr=0", "the model has no 'schedule' statement whose 'min_lr' to set");
    expect_error(base, "dense.init=normal(-1)", "argument 'init' of dense must be \"default\", \"xavier\", "
                                                "\"kaiming\", \"normal(STD)\" or \"uniform(BOUND)\" (STD, BOUND >= 0), "
                                                "got \"normal(-1)\"");
}

/* A layer named after its kind was switched off: the message says why the name is gone. */
Test(override, name_of_a_layer_switched_off)
{
    Loaded a;
    load_set(&a, model(0, "", "0.1", "", "20", "relu"), SETS("batchnorm=off", "cb_1.bn.momentum=0.5"));
    cr_expect_eq(a.rc, 1);
    cr_expect(strstr(a.msgs, "t.bnn: error: --set cb_1.bn.momentum=0.5: unknown setting 'cb_1.bn.momentum'") &&
              strstr(a.msgs, "; batchnorm=off left its layers out (set them by kind: batchnorm.momentum)\n"), "%s",
              a.msgs);
    done(&a);
}

/* --set's own form: KEY=VALUE with a dotted KEY is usage; a value the language refuses is bad input. */
Test(override, malformed_arguments)
{
    static const char *usage[] = {"noeq", "=3", "a..b=1", ".a=1", "a.=1", "1a=2", "a-b=1", "x="};
    Override o;
    char err[256];
    for (size_t i = 0; i < sizeof usage / sizeof *usage; i++)
        cr_expect_eq(override_parse(usage[i], &o, err, sizeof err), OVERRIDE_USAGE, "%s", usage[i]);
    cr_expect_eq(override_parse("x=99999999999999999999", &o, err, sizeof err), OVERRIDE_BAD_VALUE);
    cr_expect_str_eq(err, "integer 99999999999999999999 is too large (the largest is 9223372036854775807)");
    cr_expect_eq(override_parse("x=1e999", &o, err, sizeof err), OVERRIDE_BAD_VALUE);
    cr_expect_eq(override_parse("x=\"a\\qb\"", &o, err, sizeof err), OVERRIDE_BAD_VALUE);
    cr_assert_eq(override_parse("a.b_2.c=-1.5e-3", &o, err, sizeof err), OVERRIDE_OK);
    cr_expect(o.val.kind == AV_FLOAT && o.val.f == -1.5e-3 && strcmp(o.key, "a.b_2.c") == 0);
    cr_expect_str_eq(o.origin, "--set a.b_2.c=-1.5e-3");
    override_clear(&o);
    char **v;
    cr_assert_eq(override_split_list("dense.init=normal(0.1),\"a,b\",x", &v, err, sizeof err), 3);
    cr_expect_str_eq(v[0], "dense.init=normal(0.1)");
    cr_expect_str_eq(v[1], "dense.init=\"a,b\"");
    cr_expect_str_eq(v[2], "dense.init=x");
    for (int i = 0; i < 3; i++)
        free(v[i]);
    free(v);
    cr_expect_eq(override_split_list("optimizer.lr=", &v, err, sizeof err), -1);
    cr_expect_str_eq(err, "--set optimizer.lr=: the list of values is empty");
    cr_expect_eq(override_split_list("optimizer.lr=0.1,,0.3", &v, err, sizeof err), -1);
    cr_expect_eq(override_split_list("optimizer.lr=0.1,", &v, err, sizeof err), -1);
}

/* A `set` statement in a file is checked like the rest of it: errors point at its key or value. */
Test(override, set_statements_in_a_file)
{
    char src[2048];
    Loaded a;
    snprintf(src, sizeof src, "%sset optimizer.lr = -1\nset nosuch.x = 1\n", model(0, "", "0.1", "", "20", "relu"));
    load_set(&a, src, NULL, 0);
    cr_expect_eq(a.rc, 1);
    cr_expect(strstr(a.msgs, "t.bnn:16:20: error: argument 'lr' of sgd must be greater than 0, got -1\nset optimizer.lr = -1\n"
                             "                   ^\n") != NULL, "%s", a.msgs);
    cr_expect(strstr(a.msgs, "t.bnn:17:5: error: unknown setting 'nosuch.x': 'nosuch' is not data") != NULL, "%s",
              a.msgs);
    done(&a);
}

/* ---- through the binary ---- */

static char dir[64];
static void make_dir(void) { support_make_tmpdir(dir, sizeof dir, "override"); }
static void remove_dir(void) { support_remove_tree(dir); }

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Whether two checkpoints hold the same tensors, metrics and model text (their `created` times may differ). */
static int same_run(const char *a, const char *b)
{
    Ckpt x, y;
    char err[512];
    int same = ckpt_read(a, &x, err, sizeof err) == 0;
    same = same && ckpt_read(b, &y, err, sizeof err) == 0;
    if (!same)
        return 0;
    same = x.ntensors == y.ntensors && x.metrics.n == y.metrics.n && !strcmp(x.model_source, y.model_source);
    for (int i = 0; same && i < x.ntensors; i++)
        same = x.tensors[i].size == y.tensors[i].size &&
               !memcmp(x.tensors[i].data, y.tensors[i].data, x.tensors[i].size * sizeof(float));
    for (int i = 0; same && i < x.metrics.n; i++)
        same = x.metrics.test_acc[i] == y.metrics.test_acc[i] && x.metrics.train_loss[i] == y.metrics.train_loss[i];
    ckpt_free(&x), ckpt_free(&y);
    return same;
}

/* Bad overrides on train: one line, status 1 (2 for usage), no checkpoint and no metrics file. */
Test(override_cli, bad_sets_write_nothing, .init = make_dir, .fini = remove_dir, .timeout = 120)
{
    char m[128];
    snprintf(m, sizeof m, "%s", support_path(dir, "m.bnn")); /* support_path's buffers rotate */
    support_write_text(m, "data fashion_mnist(batch=64)\noptimizer sgd(lr=0.1)\nepochs 1\n"
                          "network {\n    conv2d(4, kernel=5)\n    batchnorm\n    relu\n    flatten\n    dense(10)\n}\n");
    static const struct {
        const char *set, *n1, *n2;
        int status;
    } cases[] = {
        {"optimizer.lrr=1", "--set optimizer.lrr=1", "did you mean 'lr'", 1},
        {"conv2d.kernal=3", "--set conv2d.kernal=3", "did you mean 'kernel'", 1},
        {"data.batch=abc", "--set data.batch=abc", "must be an integer, got string \"abc\"", 1},
        {"batchnorm_2.momentum=0.5", "--set batchnorm_2.momentum=0.5", "did you mean 'batchnorm_1.momentum'", 1},
        {"x=1e999", "--set x=1e999", "out of range", 1},
        {"noequals", "--set needs KEY=VALUE", NULL, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int st = support_run(dir, "train %s --limit 256 --test-limit 100 --out %s --metrics %s --set '%s'", m,
                             support_path(dir, "o.h5"), support_path(dir, "o.csv"), cases[i].set);
        char *err = support_run_err(dir);
        cr_expect_eq(st, cases[i].status, "--set %s: status %d: %s", cases[i].set, st, err);
        cr_expect(strstr(err, cases[i].n1) && (!cases[i].n2 || strstr(err, cases[i].n2)), "--set %s: %s",
                  cases[i].set, err);
        char *nl = strchr(err, '\n');
        cr_expect(cases[i].status == 2 || (nl && nl[1] == '\0'), "one line: %s", err);
        free(err);
        cr_expect(!exists(support_path(dir, "o.h5")) && !exists(support_path(dir, "o.csv")), "nothing written");
    }
    cr_expect_eq(support_run(dir, "check %s --quiet --set batchnorm=maybe", m), 1);
}

/* A run with overrides that change the network: eval and --resume rebuild it from the recorded source (without
 * the overrides the checkpoint's tensors would not fit the file's network). */
Test(override_cli, checkpoint_rebuilds_the_network_as_run, .init = make_dir, .fini = remove_dir, .timeout = 300)
{
    char m[128], ck[128];
    snprintf(m, sizeof m, "%s", support_path(dir, "m.bnn"));
    snprintf(ck, sizeof ck, "%s", support_path(dir, "r.h5"));
    support_write_text(m, "data fashion_mnist(batch=64)\noptimizer sgd(lr=0.1)\nepochs 1\n"
                          "network {\n    conv2d(4, kernel=5)\n    batchnorm\n    relu\n    flatten\n    dense(10)\n}\n");
    const char *sets = "--set batchnorm=off --set conv2d_1.kernel=3 --set conv2d.init=kaiming --set optimizer.lr=0.05";
    int st = support_run(dir, "train %s --limit 256 --test-limit 100 --out %s --quiet %s", m, ck, sets);
    char *err = support_run_err(dir);
    cr_assert_eq(st, 0, "%s", err);
    free(err);
    cr_expect_eq(support_run(dir, "eval %s --limit 100", ck), 0, "eval rebuilds the network from model_source");
    err = support_run_err(dir);
    cr_expect(err[0] == '\0', "%s", err);
    free(err);
    st = support_run(dir, "eval %s --model %s", ck, m);
    cr_expect_eq(st, 1, "the file alone is another network");
    char ck2[128];
    snprintf(ck2, sizeof ck2, "%s", support_path(dir, "r2.h5"));
    support_copy_file(ck, ck2, -1);
    st = support_run(dir, "train %s --limit 256 --test-limit 100 --resume %s --epochs 2 --quiet %s", m, ck, sets);
    err = support_run_err(dir);
    cr_expect_eq(st, 0, "resume with the same overrides: %s", err);
    free(err);
    /* without the model file: the checkpoint's model text, its overrides included, is the model */
    st = support_run(dir, "train --resume %s --limit 256 --test-limit 100 --epochs 2 --quiet", ck2);
    err = support_run_err(dir);
    cr_expect_eq(st, 0, "resume from the checkpoint alone: %s", err);
    free(err);
    cr_expect(same_run(ck, ck2), "the two resumed runs differ");
}
