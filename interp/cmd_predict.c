/* `bnni predict`: classifies images with a trained checkpoint, in eval mode. Every input file is read and
 * checked before anything is printed, so a bad file gives one error line and no partial CSV. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/data/idx.h"
#include "../runtime/threads.h"
#include "../runtime/train.h"
#include "cmd.h"
#include "load.h"

const char cmd_predict_usage[] =
    "usage: bnni predict CKPT.h5 FILE... [--model MODEL.bnn] [--threads N]\n"
    "\n"
    "Classifies every image of each FILE, an IDX image file (gzipped or not) or a 28x28 PGM image (P5 or P2,\n"
    "maxval <= 255; light objects on a dark background, as in the data set), and prints CSV on stdout:\n"
    "file,index,class,label,probability -- the predicted class, its name and its softmax probability.\n"
    "\n"
    "  --model MODEL.bnn  use this model instead of the source embedded in the checkpoint\n"
    "  --threads N        worker threads (default: every core it may run on)\n"
    "\n"
    "exit status: 0 ok, 1 bad input (checkpoint or image file), 2 usage error\n"
    "example: bnni predict lenet_bn.h5 /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz\n";

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "bnni predict: error: %s%s%s\nusage: bnni predict CKPT.h5 FILE... [options]   (bnni help predict)\n", msg,
            arg ? ": " : "", arg ? arg : "");
    return 2;
}

typedef struct PredictFlags {
    const char *model;
    int threads;
    int nfiles;
    char **files; /* files[0] is the checkpoint; points into argv */
} PredictFlags;

static int parse_flags(PredictFlags *f, int argc, char **argv)
{
    memset(f, 0, sizeof *f);
    if (!(f->files = calloc((size_t)argc + 1, sizeof *f->files)))
        return usage_error("out of memory", NULL);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--model") == 0 || strcmp(a, "--threads") == 0) {
            if (i + 1 == argc)
                return usage_error("this option needs a value", a);
            const char *v = argv[++i];
            char *end;
            errno = 0;
            long n = strtol(v, &end, 10);
            if (a[2] == 'm')
                f->model = v;
            else if (errno || *end || n < 1 || n > 1024)
                return usage_error("--threads needs a number from 1 to 1024", v);
            else
                f->threads = (int)n;
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown option", a);
        } else {
            f->files[f->nfiles++] = argv[i];
        }
    }
    if (f->nfiles < 2)
        return usage_error(f->nfiles ? "no image file given" : "no checkpoint given", NULL);
    return 0;
}

static const char *label_name(const ModelSpec *m, int k, char *buf, size_t len)
{
    if (m->data.class_names && k < m->data.classes)
        return m->data.class_names[k];
    snprintf(buf, len, "%d", k);
    return buf;
}

/* Prints one row per logits row: the arg max and its softmax probability (in double, by log-sum-exp). */
static void print_rows(const ModelSpec *m, const char *file, int first, const Tensor *logits)
{
    int K = logits->c * logits->h * logits->w;
    char buf[16];
    for (int i = 0; i < logits->n; i++) {
        const float *z = logits->data + (size_t)i * K;
        int best = 0;
        for (int k = 1; k < K; k++)
            best = z[k] > z[best] ? k : best;
        double s = 0.0;
        for (int k = 0; k < K; k++)
            s += exp((double)z[k] - z[best]);
        printf("%s,%d,%d,%s,%.6f\n", file, first + i, best, label_name(m, best, buf, sizeof buf), 1.0 / s);
    }
}

static int predict_file(const ModelSpec *m, Net *net, const Normalizer *nz, const char *file, const IdxFile *img,
                        char *err, size_t errlen)
{
    int batch = m->data.batch;
    Dataset d = {.pixels = img->data, .count = img->count, .shape = m->input}; /* images without labels */
    Tensor x;
    if (tensor_alloc(&x, batch, m->input.c, m->input.h, m->input.w) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = net_resize(net, batch, err, errlen); /* a last, smaller batch runs in the same buffers */
    for (int start = 0; rc == 0 && start < d.count; start += batch) {
        int n = d.count - start < batch ? d.count - start : batch;
        dataset_batch(&d, NULL, start, n, nz, &x, NULL);
        print_rows(m, file, start, net_infer(net, &x));
    }
    tensor_free(&x);
    return rc;
}

static int run(const PredictFlags *f, Ckpt *c, ModelSpec *m, Net *net, char *err, size_t errlen)
{
    int nimg = f->nfiles - 1, rc = 0;
    IdxFile *imgs = calloc((size_t)nimg, sizeof *imgs);
    Normalizer nz = {0};
    char why[1024];
    if (!imgs)
        return snprintf(err, errlen, "out of memory"), -1;
    if (m->input.rank != 3 || m->input.c != 1) {
        snprintf(err, errlen, "%s: the model's input is not one grayscale image channel", f->files[0]);
        rc = -1;
    }
    for (int i = 0; rc == 0 && i < nimg; i++)
        if (idx_read_any_images(f->files[i + 1], m->input.h, m->input.w, &imgs[i], why, sizeof why) < 0) {
            snprintf(err, errlen, "%s: %s", f->files[i + 1], why);
            rc = -1;
        }
    if (rc == 0)
        rc = train_checkpoint_normalizer(c, &m->data, &nz, err, errlen);
    if (rc == 0)
        printf("file,index,class,label,probability\n");
    for (int i = 0; rc == 0 && i < nimg; i++)
        rc = predict_file(m, net, &nz, f->files[i + 1], &imgs[i], err, errlen);
    for (int i = 0; i < nimg; i++)
        idx_free(&imgs[i]);
    free(imgs);
    norm_free(&nz);
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
