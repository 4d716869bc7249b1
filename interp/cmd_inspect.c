/* `bnni inspect`: what a checkpoint holds, read straight from the file (no model check needed): the root
 * attributes, the model source, the metrics history, the optimizer and train state, and every tensor with
 * its shape and summary statistics; batchnorm moving statistics are also listed channel by channel. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../runtime/ckpt.h"
#include "../runtime/layer.h"
#include "../runtime/train.h"
#include "cmd.h"

const char cmd_inspect_usage[] =
    "usage: bnni inspect CKPT.h5\n"
    "\n"
    "Shows what a checkpoint holds: the model (name and source), the epoch, the input normalisation, the\n"
    "metrics history, the optimizer and the resume state, and every tensor with its shape and min, max,\n"
    "mean and std; batchnorm moving statistics are listed per channel for each layer.\n"
    "\n"
    "exit status: 0 ok, 1 the file is not a readable bnni checkpoint, 2 usage error\n"
    "example: bnni inspect lenet_bn.h5\n";

#define CHANNELS_SHOWN 32

/* The data the run trained on and its normalisation (per channel when there are several). */
static void print_data(const Ckpt *c)
{
    char shape[64];
    int bytes = !c->has_data || c->dtype == DT_U8;
    const char *v = bytes && strcmp(c->normalize, "none") != 0 ? "pixel/255" : "value";
    if (c->nnorm > 1)
        printf("  normalize       %s (input = (%s - mean_c) / std_c, %d channels; channel 0: %.6g, %.6g)\n",
               c->normalize, v, c->nnorm, c->data_mean, c->data_std);
    else
        printf("  normalize       %s (input = (%s - %.6g) / %.6g)\n", c->normalize, v, c->data_mean, c->data_std);
    if (!c->has_data)
        return;
    if (c->input_shape.rank == 3)
        printf("  data            %s, %s %s items", c->data_kind, shape_str(c->input_shape, shape, sizeof shape),
               c->dtype == DT_U8 ? "uint8" : "float32");
    else
        printf("  data            %s, items of %d %s features", c->data_kind, c->input_shape.c,
               c->dtype == DT_U8 ? "uint8" : "float32");
    printf(", %d classes, limit %lld, validation %lld\n", c->classes, c->data_limit, c->validation);
    if (c->class_names) {
        printf("  class names    ");
        for (int k = 0; k < c->classes && k < 32; k++)
            printf(" %d:%s", k, c->class_names[k]);
        printf("%s\n", c->classes > 32 ? " ..." : "");
    }
}

static void print_header(const char *path, const Ckpt *c)
{
    printf("checkpoint %s\n", path);
    printf("  format          %s version %d, written by bnni %s at %s\n", CKPT_FORMAT, c->format_version,
           c->bnni_version, c->created);
    printf("  model           %s\n", c->model_name);
    printf("  epoch           %d\n", c->epoch);
    printf("  seed            %llu\n", (unsigned long long)c->seed);
    print_data(c);
    if (c->has_optimizer) {
        const OptSpec *o = &c->opt;
        if (o->kind == OPT_ADAM)
            printf("  optimizer       adam lr %g beta1 %g beta2 %g eps %g weight_decay %g, %lld steps\n", o->lr,
                   o->beta1, o->beta2, o->eps, o->weight_decay, c->opt_steps);
        else
            printf("  optimizer       sgd lr %g momentum %g nesterov %d weight_decay %g, %lld steps\n", o->lr,
                   o->momentum, o->nesterov, o->weight_decay, c->opt_steps);
    }
    if (c->has_train_state) {
        const TrainState *t = &c->ts;
        printf("  train state     %s: epoch %d, %d of %d images, batch %d, lr %g\n",
               t->position ? "stopped mid-epoch" : "at an epoch boundary", t->epoch + (t->position > 0),
               t->position, t->norder, t->batch, t->lr);
    }
}

static void print_source(const Ckpt *c)
{
    printf("\nmodel source:\n");
    const char *s = c->model_source;
    while (*s) {
        const char *nl = strchr(s, '\n');
        int len = nl ? (int)(nl - s) : (int)strlen(s);
        printf("  | %.*s\n", len, s);
        s += len + (nl != NULL);
    }
}

static void print_metrics(const CkptMetrics *m)
{
    printf("\nmetrics (%d epoch%s):\n", m->n, m->n == 1 ? "" : "s");
    if (m->n == 0)
        return;
    printf("  %5s %10s %9s", "epoch", "train_loss", "train_acc");
    if (m->has_val)
        printf(" %9s %8s", "val_loss", "val_acc");
    printf(" %9s %8s %8s %10s\n", "test_loss", "test_acc", "seconds", "img/s");
    for (int i = 0; i < m->n; i++) {
        char v[6][32];
        printf("  %5d %10s %9s", i + 1, train_format_value(m->train_loss[i], 4, v[0], 32),
               train_format_value(m->train_acc[i], 4, v[1], 32));
        if (m->has_val)
            printf(" %9s %8s", train_format_value(m->val_loss[i], 4, v[4], 32),
                   train_format_value(m->val_acc[i], 4, v[5], 32));
        printf(" %9s %8s %8.1f %10.0f\n", train_format_value(m->test_loss[i], 4, v[2], 32),
               train_format_value(m->test_acc[i], 4, v[3], 32), m->seconds[i], m->images_per_second[i]);
    }
}

/* Column widths of the tensor rows: the longest name and shape among every tensor listed (layers and optimizer). */
typedef struct Widths {
    int name, dims;
} Widths;

static Widths measure(const Ckpt *c)
{
    Widths w = {18, 16};
    char dims[96];
    for (int i = 0; i < c->ntensors; i++) {
        const CkptTensor *t = &c->tensors[i];
        /* as the rows show them: "layers/NAME/x" as "x", "optimizer/REST" as "REST" */
        const char *slash = strncmp(t->path, "layers/", 7) == 0 ? strrchr(t->path, '/') : strchr(t->path, '/');
        const char *shown = slash ? slash + 1 : t->path;
        int n = (int)strlen(shown), d = (int)strlen(ckpt_dims_str(t->rank, t->dims, dims, sizeof dims));
        w.name = n > w.name ? n : w.name, w.dims = d > w.dims ? d : w.dims;
    }
    return w;
}

/* min, max, mean and std over the finite values; NaN and Inf are counted instead, with the first one's index. */
static void print_stats(const CkptTensor *t, const char *name, Widths w)
{
    double lo = INFINITY, hi = -INFINITY, sum = 0.0, ss = 0.0;
    size_t n = 0, bad = 0, first = 0;
    for (size_t i = 0; i < t->size; i++) {
        double v = t->data[i];
        if (!isfinite(v)) {
            first = bad++ ? first : i;
            continue;
        }
        lo = v < lo ? v : lo, hi = v > hi ? v : hi, sum += v, n++;
    }
    double mean = n ? sum / (double)n : 0.0;
    for (size_t i = 0; i < t->size; i++)
        if (isfinite(t->data[i]))
            ss += (t->data[i] - mean) * (t->data[i] - mean);
    char dims[96];
    double std = n ? sqrt(ss / (double)n) : 0.0;
    printf("    %-*s %-*s", w.name, name, w.dims, ckpt_dims_str(t->rank, t->dims, dims, sizeof dims));
    if (n)
        printf(" min %11.4g  max %11.4g  mean %11.4g  std %11.4g", lo, hi, mean, std);
    if (bad)
        printf("%s non-finite %zu of %zu (NaN or Inf; the first at index %zu)", n ? " " : "", bad, t->size, first);
    printf("\n");
}

static void print_channels(const CkptTensor *t, const char *name)
{
    int n = t->size < CHANNELS_SHOWN ? (int)t->size : CHANNELS_SHOWN;
    printf("      %s per channel:", name);
    for (int i = 0; i < n; i++)
        printf("%s %.4g", i % 8 == 0 && i ? "\n       " : "", t->data[i]);
    if ((size_t)n < t->size)
        printf(" ... (%zu more)", t->size - (size_t)n);
    printf("\n");
}

/* "conv1 (conv2d, out 6, kernel 5, stride 1, padding 0, bias true)": the arguments as its group holds them. */
static void print_layer_line(const CkptLayer *l)
{
    printf("  %s (%s", l->name, l->type);
    for (int k = 0; k < l->nargs; k++) {
        const CkptArg *a = &l->args[k];
        if (a->type == AT_STR)
            printf(", %s \"%s\"", a->key, a->str);
        else if (a->type == AT_BOOL)
            printf(", %s %s", a->key, a->num ? "true" : "false");
        else
            printf(", %s %g", a->key, a->num);
    }
    printf(")\n");
}

static void print_layers(const Ckpt *c, Widths w)
{
    long long total = 0;
    printf("\nlayers:\n");
    for (int i = 0; i < c->nlayers; i++) {
        const CkptLayer *l = &c->layers[i];
        char prefix[300];
        int plen = snprintf(prefix, sizeof prefix, "layers/%s/", l->name);
        print_layer_line(l);
        for (int j = 0; j < c->ntensors; j++) {
            const CkptTensor *t = &c->tensors[j];
            if (strncmp(t->path, prefix, (size_t)plen) != 0 || strchr(t->path + plen, '/'))
                continue;
            print_stats(t, t->path + plen, w);
            total += (long long)t->size;
            if (strncmp(t->path + plen, "moving_", 7) == 0) /* running statistics: one value per channel */
                print_channels(t, t->path + plen);
        }
    }
    printf("  total: %lld values in %d layers\n", total, c->nlayers);
}

static void print_optimizer_state(const Ckpt *c, Widths w)
{
    int shown = 0;
    for (int j = 0; j < c->ntensors; j++) {
        const CkptTensor *t = &c->tensors[j];
        if (strncmp(t->path, "optimizer/", 10) != 0)
            continue;
        if (!shown++)
            printf("\noptimizer state:\n");
        print_stats(t, t->path + 10, w);
    }
}

/* /trace (bnni train --trace): what it records, and its first and last record. */
static void print_trace(const TraceLog *t)
{
    if (!t || t->n == 0)
        return;
    printf("\ntrace (%d records, every %d steps to step %lld; probe %d test images, accuracy on %d):\n", t->n,
           t->every, t->step[t->n - 1], t->probe, t->subset);
    printf("  %-24s %22s %22s\n", "", "first", "last");
    printf("  %-24s %22.4f %22.4f\n", "test accuracy (subset)", t->test_acc[0], t->test_acc[t->n - 1]);
    for (int i = 0; i < t->nlayers; i++) {
        const double *a = t->pct + (size_t)i * TRACE_NPCT, *b = t->pct + ((size_t)(t->n - 1) * t->nlayers + i) * TRACE_NPCT;
        char first[64], last[64];
        snprintf(first, sizeof first, "%.3g %.3g %.3g", a[0], a[1], a[2]);
        snprintf(last, sizeof last, "%.3g %.3g %.3g", b[0], b[1], b[2]);
        printf("  %-24.24s %22s %22s   (15th, 50th, 85th percentile)\n", t->names[i], first, last);
    }
}

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "bnni inspect: error: %s%s%s\nusage: bnni inspect CKPT.h5   (bnni help inspect)\n", msg,
            arg ? ": " : "", arg ? arg : "");
    return 2;
}

int cmd_inspect(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (argv[i][0] == '-' && argv[i][1])
            return usage_error("unknown option", argv[i]);
    if (argc != 1)
        return usage_error(argc ? "only one checkpoint, please; extra argument" : "no checkpoint given",
                           argc ? argv[1] : NULL);
    Ckpt c;
    char err[4096];
    if (ckpt_read(argv[0], &c, err, sizeof err) < 0) {
        fprintf(stderr, "bnni: error: %s: %s\n", argv[0], err);
        return 1;
    }
    print_header(argv[0], &c);
    print_source(&c);
    print_metrics(&c.metrics);
    print_trace(c.trace);
    Widths w = measure(&c);
    print_layers(&c, w);
    print_optimizer_state(&c, w);
    ckpt_free(&c);
    return 0;
}
