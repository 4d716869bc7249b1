/* `bnni export`: writes a trained checkpoint in another form for deployment, chosen by the output's suffix
 * (runtime/export/export.h): an ONNX model, or an inference-only bnni checkpoint; batch norm is folded into the
 * layer before it unless --keep-bn. Every bad input is one line and exit status 1, and nothing is written then. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../runtime/export/export.h"
#include "cmd.h"
#include "load.h"
#include "unparse.h"

const char cmd_export_usage[] =
    "usage: bnni export CKPT.h5 -o OUTPUT [--keep-bn] [--model MODEL.bnn]\n"
    "\n"
    "Writes the checkpoint's network in eval mode for use outside bnni, in the form OUTPUT's suffix names:\n"
    "  .onnx        an ONNX model (opset 13): input `input` [N, C, H, W], pixel values scaled to [0, 1] (the\n"
    "               checkpoint's input normalisation is inside), output `logits` [N, classes]; the class names\n"
    "               and the model source are in its metadata_props\n"
    "  .h5, .hdf5   an inference-only bnni checkpoint (no optimizer or training state) for bnni eval and predict\n"
    "Each batchnorm that follows a conv2d or dense is folded into it (in double precision); any other stays a\n"
    "batch-norm node. The file is written whole or not at all.\n"
    "\n"
    "  -o, --output FILE  the file to write (required)\n"
    "  --keep-bn          keep every batchnorm as a node of its own instead of folding it\n"
    "  --model MODEL.bnn  use this model instead of the source embedded in the checkpoint\n"
    "\n"
    "exit status: 0 ok, 1 bad input (unreadable or non-finite checkpoint, unwritable output), 2 usage error\n"
    "example: bnni export lenet_bn.h5 -o lenet_bn.onnx\n";

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "bnni export: error: %s%s%s\nusage: bnni export CKPT.h5 -o OUTPUT [options]   (bnni help export)\n",
            msg, arg ? ": " : "", arg ? arg : "");
    return 2;
}

typedef struct ExportFlags {
    const char *ckpt, *out, *model;
    int keep_bn;
} ExportFlags;

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int parse_flags(ExportFlags *f, int argc, char **argv)
{
    memset(f, 0, sizeof *f);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0 || strcmp(a, "--model") == 0) {
            if (i + 1 == argc)
                return usage_error("this option needs a value", a);
            *(a[1] == 'o' || a[2] == 'o' ? &f->out : &f->model) = argv[++i];
        } else if (strcmp(a, "--keep-bn") == 0) {
            f->keep_bn = 1;
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown option", a);
        } else if (f->ckpt) {
            return usage_error("only one checkpoint, please; extra argument", a);
        } else {
            f->ckpt = a;
        }
    }
    if (!f->ckpt)
        return usage_error("no checkpoint given", NULL);
    if (!f->out)
        return usage_error("no output given (-o FILE.onnx or -o FILE.h5)", NULL);
    if (!export_for_path(f->out))
        return usage_error("the output must end in .onnx, .h5 or .hdf5", f->out);
    if (same_file(f->ckpt, f->out))
        return usage_error("the output would replace the checkpoint it is made from", f->out);
    return 0;
}

/* The plan's network as a checked model, for an exporter that writes a bnni checkpoint. */
static int folded_model(const ExportFlags *f, const ModelSpec *m, const FoldPlan *plan, ModelSpec **out, char *err,
                        size_t errlen)
{
    char name[4200], note[4200];
    LayerSpec *specs = fold_specs(plan->steps, plan->n);
    snprintf(note, sizeof note, "%s for inference, exported by bnni export from %s%s", m->name, f->ckpt,
             f->keep_bn ? "" : " with batch norm folded");
    char *text = specs ? unparse_model(m, specs, plan->n, note) : NULL;
    spec_layers_free(specs, plan->n);
    snprintf(name, sizeof name, "%s:model_source", f->out);
    int rc = text ? load_model(name, text, 0, 1, out) : -1;
    free(text);
    if (rc != 0)
        snprintf(err, errlen, "%s: cannot write the exported network as a model (see above)", f->out);
    return rc ? -1 : 0;
}

static int run_export(const ExportFlags *f, const Exporter *ex, Ckpt *c, ModelSpec *m, Net *net, char *err,
                  size_t errlen)
{
    FoldPlan plan;
    ModelSpec *fm = NULL;
    char why[4096];
    if (fold_plan(net, f->keep_bn, &plan, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s: %s; nothing exported", f->ckpt, why);
        fold_free(&plan);
        return -1;
    }
    int rc = ex->needs_model ? folded_model(f, m, &plan, &fm, err, errlen) : 0;
    ExportJob job = {.path = f->out, .source = f->ckpt, .ckpt = c, .model = m, .plan = &plan, .folded_model = fm};
    if (rc == 0 && ex->write(&job, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s: %s", f->out, why);
        rc = -1;
    }
    if (rc == 0 && f->keep_bn)
        printf("%s: %s, epoch %d, as %s; batch norm kept as it is\n", f->out, c->model_name, c->epoch, ex->what);
    else if (rc == 0)
        printf("%s: %s, epoch %d, as %s; %d batch norm%s folded\n", f->out, c->model_name, c->epoch, ex->what,
               plan.folded, plan.folded == 1 ? "" : "s");
    spec_free(fm);
    fold_free(&plan);
    return rc;
}

int cmd_export(int argc, char **argv)
{
    ExportFlags f;
    int rc = parse_flags(&f, argc, argv);
    if (rc != 0)
        return rc;
    const Exporter *ex = export_for_path(f.out);
    Ckpt c;
    ModelSpec *m;
    Net *net;
    char err[16384];
    if (load_checkpoint(f.ckpt, f.model, NULL, &c, &m, &net, err, sizeof err) < 0) {
        fprintf(stderr, "bnni: error: %s\n", err);
        return 1;
    }
    rc = run_export(&f, ex, &c, m, net, err, sizeof err) < 0;
    if (rc)
        fprintf(stderr, "bnni: error: %s\n", err);
    net_free(net);
    spec_free(m);
    ckpt_free(&c);
    return rc;
}
