/* `bnni train --profile`, through the built binary ($BNNI, default ./bnni) on a few hundred Fashion-MNIST images:
 * the layer table names every layer of the model (residual bodies, nested ones too, indented under their layer)
 * with its type and numbers that parse, the phase and epoch tables are there, profiling changes no result, and
 * without the flag nothing is printed. No timing is asserted: only that the figures are finite and not negative. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interp/frontend.h"
#include "runtime/ckpt.h"
#include "runtime/layer.h"
#include "tests/support.h"

/* Two residuals, one nested in the other, between a convolution and the classifier. */
static const char model_text[] = "model prof\n"
                                 "data fashion_mnist(batch=64)\n"
                                 "optimizer sgd(lr=0.1, momentum=0.9)\n"
                                 "loss cross_entropy\n"
                                 "epochs 2\n"
                                 "network {\n"
                                 "    conv2d(4, kernel=5, bias=false)\n    batchnorm\n    relu\n    maxpool(2)\n    flatten\n"
                                 "    dense(32)\n"
                                 "    outer: residual {\n"
                                 "        dense(32)\n        tanh\n"
                                 "        inner: residual {\n            dense(32)\n            sigmoid\n        }\n"
                                 "    }\n"
                                 "    dense(10)\n"
                                 "}\n";

static char dir[64], model[128];

static void make_dir(void)
{
    support_make_tmpdir(dir, sizeof dir, "profile");
    snprintf(model, sizeof model, "%s/m.bnn", dir);
    support_write_text(model, model_text);
}

static void remove_dir(void) { support_remove_tree(dir); }

TestSuite(profile, .init = make_dir, .fini = remove_dir, .timeout = 400);

/* `bnni ARGS` with stdout in dir/out.txt and stderr in dir/err.txt (support_run). */
#define run(...) support_run(dir, __VA_ARGS__)

/* The line of text that starts with `prefix` followed by a space, or NULL. */
static const char *line_starting(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, prefix, n) == 0 && p[n] == ' ')
            return p;
    return NULL;
}

static void expect_figure(double v, const char *what, const char *name)
{
    cr_expect(isfinite(v) && v >= 0.0, "%s of %s is %g", what, name, v);
}

/* Every layer of specs (depth d) has its row: indented 2*d, its name, its type and five figures. Returns the count. */
static int expect_layer_rows(const char *text, const LayerSpec *specs, int n, int d)
{
    int rows = 0;
    for (int i = 0; i < n; i++) {
        const LayerSpec *s = &specs[i];
        char prefix[SPEC_NAME_MAX + 64], type[64];
        double fwd, bwd, epoch, share, eval;
        snprintf(prefix, sizeof prefix, "%*s%s", 2 * d, "", s->name);
        const char *row = line_starting(text, prefix);
        cr_assert(row, "no row for layer '%s' at depth %d in:\n%s", s->name, d, text);
        cr_assert_eq(sscanf(row + strlen(prefix), " %63s %lf %lf %lf %lf%% %lf", type, &fwd, &bwd, &epoch, &share,
                            &eval),
                     6, "row of %s does not parse: %.120s", s->name, row);
        cr_expect_str_eq(type, layer_ops[s->kind]->type, "type of %s", s->name);
        expect_figure(fwd, "fwd", s->name), expect_figure(bwd, "bwd", s->name);
        expect_figure(epoch, "ms/epoch", s->name), expect_figure(share, "share", s->name);
        expect_figure(eval, "eval", s->name);
        rows++;
        if (s->kind == LK_RESIDUAL)
            rows += expect_layer_rows(text, s->body, s->nbody, d + 1);
    }
    return rows;
}

Test(profile, lists_every_layer_phase_and_epoch)
{
    ModelSpec *m = NULL;
    CheckOptions co = {.diag = stderr};
    cr_assert_eq(bnn_load_file(model, &co, &m), 0);
    int status = run("train %s --epochs 2 --limit 256 --test-limit 100 --threads 2 --quiet --profile --out %s/p.h5",
                     model, dir);
    char *err = support_run_err(dir), *out = support_run_out(dir);
    cr_assert_eq(status, 0, "status %d, stderr: %s", status, err);
    cr_expect_str_eq(out, "", "--quiet --profile prints the profile on stderr only");
    const char *table = strstr(err, "\nlayer ");
    cr_assert(table, "no layer table in:\n%s", err);
    cr_expect_eq(expect_layer_rows(table + 1, m->layers, m->nlayers, 0), 13);
    static const char *const phases[] = {"forward", "backward", "data", "loss", "zero_grad", "optimizer",
                                         "finite check", "other", "step"};
    for (size_t k = 0; k < sizeof phases / sizeof *phases; k++) {
        const char *row = line_starting(table, phases[k]);
        double ms, epoch, share;
        cr_assert(row, "no phase row '%s' in:\n%s", phases[k], err);
        cr_expect_eq(sscanf(row + strlen(phases[k]), " %lf %lf %lf%%", &ms, &epoch, &share), 3, "%.80s", row);
        if (strcmp(phases[k], "other")) /* what is left of the step: rounding may make it slightly negative */
            expect_figure(ms, "ms/step", phases[k]);
        if (!strcmp(phases[k], "step"))
            cr_expect_float_eq(share, 100.0, 1e-9);
    }
    for (int e = 1; e <= 2; e++) {
        char num[16];
        double tr, ev, sv;
        snprintf(num, sizeof num, "%d", e);
        const char *row = line_starting(strstr(table, "\nepoch ") ? strstr(table, "\nepoch ") + 1 : table, num);
        cr_assert(row, "no row for epoch %d in:\n%s", e, err);
        cr_expect_eq(sscanf(row, "%*d %lf %lf %lf", &tr, &ev, &sv), 3, "%.80s", row);
    }
    free(err), free(out);
    spec_free(m);
}

/* The same run with and without --profile: the same checkpoint tensors, bit for bit; no profile without it. */
Test(profile, changes_no_result)
{
    const char *flags = "--epochs 1 --limit 320 --test-limit 64 --threads 2 --quiet";
    cr_assert_eq(run("train %s %s --profile --out %s/a.h5", model, flags, dir), 0);
    cr_assert_eq(run("train %s %s --out %s/b.h5", model, flags, dir), 0);
    char *err = support_run_err(dir);
    cr_expect_str_eq(err, "", "without --profile, no profile");
    free(err);
    Ckpt a, b;
    char why[1024], pa[128], pb[128];
    snprintf(pa, sizeof pa, "%s/a.h5", dir), snprintf(pb, sizeof pb, "%s/b.h5", dir);
    cr_assert_eq(ckpt_read(pa, &a, why, sizeof why), 0, "%s", why);
    cr_assert_eq(ckpt_read(pb, &b, why, sizeof why), 0, "%s", why);
    cr_assert_eq(a.ntensors, b.ntensors);
    cr_expect(a.ntensors > 10);
    for (int i = 0; i < a.ntensors; i++)
        cr_expect_eq(memcmp(a.tensors[i].data, b.tensors[i].data, a.tensors[i].size * sizeof(float)), 0,
                     "%s differs", a.tensors[i].path);
    ckpt_free(&a), ckpt_free(&b);
}

Test(profile, is_in_the_help)
{
    cr_assert_eq(run("help train"), 0);
    char *out = support_run_out(dir);
    cr_expect(strstr(out, "--profile"), "bnni help train lacks --profile:\n%s", out);
    free(out);
}
