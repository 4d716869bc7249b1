/* `bnni predict`: classifies images (or the items of HDF5 and IDX files) with a trained checkpoint, in eval mode.
 * Every input is read and checked before anything is printed, so a bad file gives one error line and no partial
 * CSV. The checkpoint says what the model expects (input shape, class names): the training data need not be
 * there. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/data/inputs.h"
#include "../runtime/data/kind.h"
#include "../runtime/threads.h"
#include "../runtime/train.h"
#include "cmd.h"
#include "load.h"

const char cmd_predict_usage[] =
    "usage: bnni predict CKPT.h5 FILE... [--top K] [--model MODEL.bnn] [--threads N]\n"
    "\n"
    "Classifies every FILE and prints CSV on stdout: file,class,name,probability -- the predicted class,\n"
    "its name and its softmax probability (with --top K, the K most probable classes, one row each).\n"
    "A FILE is an image (PNG, JPEG, PGM or PPM: decoded, converted to the model's channels and resized\n"
    "to its input as the images data kind does), a directory (its image files, by name), an HDF5 file\n"
    "with a dataset x of items of the model's input shape, an IDX image file (gzipped or not), or - for\n"
    "one image on standard input. Items of a file holding several are named FILE:INDEX (from 0).\n"
    "\n"
    "  --top K            the K most probable classes of each item (default 1)\n"
    "  --model MODEL.bnn  use this model instead of the source embedded in the checkpoint\n"
    "  --threads N        worker threads (default: every core it may run on)\n"
    "\n"
    "exit status: 0 ok, 1 bad input (checkpoint or input file), 2 usage error\n"
    "example: bnni predict lenet_bn.h5 shoe.png photos/ --top 3\n";

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "bnni predict: error: %s%s%s\nusage: bnni predict CKPT.h5 FILE... [options]   (bnni help predict)\n",
            msg, arg ? ": " : "", arg ? arg : "");
    return 2;
}

typedef struct PredictFlags {
    const char *model;
    int threads, top;
    int nfiles;
    char **files; /* files[0] is the checkpoint; points into argv */
} PredictFlags;

static int number(const char *flag, const char *v, int hi, int *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || end == v || n < 1 || n > hi) {
        char msg[64];
        snprintf(msg, sizeof msg, "%s needs a number from 1 to %d", flag, hi);
        return usage_error(msg, v);
    }
    *out = (int)n;
    return 0;
}

static int parse_flags(PredictFlags *f, int argc, char **argv)
{
    memset(f, 0, sizeof *f);
    f->top = 1;
    if (!(f->files = calloc((size_t)argc + 1, sizeof *f->files)))
        return usage_error("out of memory", NULL);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int rc = 0;
        if (strcmp(a, "--model") == 0 || strcmp(a, "--threads") == 0 || strcmp(a, "--top") == 0) {
            if (i + 1 == argc)
                return usage_error("this option needs a value", a);
            const char *v = argv[++i];
            if (a[2] == 'm')
                f->model = v;
            else
                rc = a[2] == 't' && a[3] == 'h' ? number(a, v, 1024, &f->threads) : number(a, v, 1 << 20, &f->top);
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown option", a);
        } else {
            f->files[f->nfiles++] = argv[i];
        }
        if (rc)
            return rc;
    }
    if (f->nfiles < 2)
        return usage_error(f->nfiles ? "no image file given" : "no checkpoint given", NULL);
    return 0;
}

/* One CSV field: as it is, or quoted (quotes doubled) when it holds a comma, a quote or a line break. */
static void csv_field(const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (; *s; s++) {
        if (*s == '"')
            putchar('"');
        putchar(*s);
    }
    putchar('"');
}

/* The row's top classes by softmax probability (computed in double, by log-sum-exp), highest first. */
static void print_item(const ModelSpec *m, const char *name, const float *z, int K, int top)
{
    double s = 0.0;
    int best = 0;
    for (int k = 1; k < K; k++)
        best = z[k] > z[best] ? k : best;
    for (int k = 0; k < K; k++)
        s += exp((double)z[k] - z[best]);
    unsigned char *shown = calloc((size_t)K, 1);
    for (int t = 0; t < top && t < K && shown; t++) {
        int k = -1;
        for (int j = 0; j < K; j++) /* the first of the largest not yet shown */
            if (!shown[j] && (k < 0 || z[j] > z[k]))
                k = j;
        shown[k] = 1;
        char num[16];
        snprintf(num, sizeof num, "%d", k);
        csv_field(name);
        printf(",%d,", k);
        csv_field(m->data.class_names && k < m->data.classes ? m->data.class_names[k] : num);
        printf(",%.6f\n", exp((double)z[k] - z[best]) / s);
    }
    free(shown);
}

static int classify(const ModelSpec *m, Net *net, const Normalizer *nz, const InputSet *in, int top, char *err,
                    size_t errlen)
{
    int batch = m->data.batch < EVAL_CHUNK ? m->data.batch : EVAL_CHUNK;
    Tensor x;
    if (tensor_alloc(&x, batch, m->input.c, m->input.h, m->input.w) < 0)
        return snprintf(err, errlen, "out of memory"), -1;
    int rc = net_resize(net, batch, err, errlen); /* a last, smaller batch runs in the same buffers */
    printf("file,class,name,probability\n");
    for (int start = 0; rc == 0 && start < in->d.count; start += batch) {
        int n = in->d.count - start < batch ? in->d.count - start : batch;
        dataset_batch(&in->d, NULL, start, n, nz, &x, NULL);
        const Tensor *logits = net_infer(net, &x);
        int K = logits->c * logits->h * logits->w;
        for (int i = 0; i < n; i++)
            print_item(m, in->names[start + i], logits->data + (size_t)i * K, K, top);
    }
    tensor_free(&x);
    return rc;
}

static int run(const PredictFlags *f, Ckpt *c, ModelSpec *m, Net *net, char *err, size_t errlen)
{
    InputSet in;
    Normalizer nz;
    memset(&in, 0, sizeof in), memset(&nz, 0, sizeof nz);
    int nhwc = strcmp(m->data.kind, "hdf5") == 0 && strcmp(data_str(&m->data, "layout"), "nhwc") == 0, rc = 0;
    for (int i = 1; rc == 0 && i < f->nfiles; i++)
        rc = inputs_add(&in, f->files[i], m->input, m->data.dtype, nhwc, err, errlen);
    if (rc == 0)
        rc = train_checkpoint_normalizer(c, &m->data, &nz, err, errlen);
    if (rc == 0)
        rc = classify(m, net, &nz, &in, f->top, err, errlen);
    norm_free(&nz);
    inputs_free(&in);
    return rc;
}

int cmd_predict(int argc, char **argv)
{
    PredictFlags f;
    int rc = parse_flags(&f, argc, argv);
    if (rc != 0) {
        free(f.files);
        return rc;
    }
    rt_set_threads(f.threads);
    Ckpt c;
    ModelSpec *m;
    Net *net;
    char err[16384];
    if (load_checkpoint(f.files[0], f.model, NULL, &c, &m, &net, err, sizeof err) < 0) {
        fprintf(stderr, "bnni: error: %s\n", err);
        free(f.files);
        return 1;
    }
    rc = run(&f, &c, m, net, err, sizeof err) < 0;
    if (rc)
        fprintf(stderr, "bnni: error: %s\n", err);
    net_free(net);
    spec_free(m);
    ckpt_free(&c);
    free(f.files);
    return rc;
}
