/* `bnni eval`: loads a checkpoint (its embedded model, or --model) and evaluates it in eval mode on the test set, or
 * on the validation items the run held out (--split validation: the same items, from the checkpoint's seed and
 * limit), with the input normalisation it was trained with. The last line is the result; --confusion adds each
 * class's accuracy and the confusion matrix before it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../runtime/data/bundle.h"
#include "../runtime/threads.h"
#include "../runtime/train.h"
#include "cmd.h"
#include "load.h"

const char cmd_eval_usage[] =
    "usage: bnni eval CKPT.h5 [--model MODEL.bnn] [--data PATH] [--split test|validation] [--confusion]\n"
    "                 [--limit N] [--threads N]\n"
    "\n"
    "Evaluates a checkpoint in eval mode (batchnorm uses its moving statistics) and ends with the line\n"
    "`test loss L accuracy A (N images)` (or `validation loss ...`).\n"
    "\n"
    "  --model MODEL.bnn  use this model instead of the source embedded in the checkpoint\n"
    "  --data PATH        where the data is (the data statement's directory or file; default: where the\n"
    "                     checkpoint was trained)\n"
    "  --split SPLIT      test (default), or validation: the items the run held out (`validation=` in the\n"
    "                     data statement), chosen again from the checkpoint's seed and limit\n"
    "  --confusion        also print each class's accuracy and the confusion matrix, with the class names\n"
    "  --limit N          evaluate on the first N items of the split only (default and 0: all)\n"
    "  --threads N        worker threads (default: every core it may run on)\n"
    "\n"
    "exit status: 0 ok, 1 bad input (unreadable checkpoint, tensors that do not fit, bad data), 2 usage error\n"
    "example: bnni eval lenet_bn.h5 --confusion\n";

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "bnni eval: error: %s%s%s\nusage: bnni eval CKPT.h5 [options]   (bnni help eval)\n", msg,
            arg ? ": " : "", arg ? arg : "");
    return 2;
}

typedef struct EvalFlags {
    const char *ckpt, *model, *data;
    int threads, validation, confusion;
    long limit; /* 0: the whole split */
} EvalFlags;

/* --threads and --limit: a whole number in range. Returns 0, or 2 after the usage error. */
static int number_flag(EvalFlags *f, const char *a, const char *v)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10), hi = a[2] == 't' ? 1024 : 1000000000;
    long lo = a[2] == 't' ? 1 : 0; /* a limit of 0 means all, as in model files */
    if (errno || *end || end == v || n < lo || n > hi)
        return usage_error(a[2] == 't' ? "--threads needs a number from 1 to 1024"
                                       : "--limit needs a number of images (0: all)",
                           v);
    if (a[2] == 't')
        f->threads = (int)n;
    else
        f->limit = n;
    return 0;
}

static int value_flag(EvalFlags *f, const char *a, const char *v)
{
    if (strcmp(a, "--model") == 0)
        f->model = v;
    else if (strcmp(a, "--data") == 0)
        f->data = v;
    else if (strcmp(a, "--split") == 0) {
        if (strcmp(v, "test") != 0 && strcmp(v, "validation") != 0)
            return usage_error("--split is test or validation", v);
        f->validation = v[0] == 'v';
    } else
        return number_flag(f, a, v);
    return 0;
}

static int parse_flags(EvalFlags *f, int argc, char **argv)
{
    static const char *const valued[] = {"--model", "--data", "--threads", "--limit", "--split"};
    memset(f, 0, sizeof *f);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int known = 0, rc;
        for (size_t k = 0; k < sizeof valued / sizeof *valued; k++)
            known |= strcmp(a, valued[k]) == 0;
        if (known) {
            if (i + 1 == argc)
                return usage_error("this option needs a value", a);
            if ((rc = value_flag(f, a, argv[++i])) != 0)
                return rc;
        } else if (strcmp(a, "--confusion") == 0) {
            f->confusion = 1;
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown option", a);
        } else if (f->ckpt) {
            return usage_error("only one checkpoint, please; extra argument", a);
        } else {
            f->ckpt = a;
        }
    }
    return f->ckpt ? 0 : usage_error("no checkpoint given", NULL);
}

/* The split's items: the test set, or the held-out items of the training set (the run's seed and limit). */
static int load_split(const EvalFlags *f, const Ckpt *c, const ModelSpec *m, DataBundle *b, const Dataset **d,
                      const int **rows, int *count, char *err, size_t errlen)
{
    const DataSpec *ds = &m->data;
    DataPlan p = {.train = f->validation, .test = !f->validation, .test_limit = f->limit, .seed = c->seed,
                  .limit = c->has_data ? c->data_limit : 0};
    if (f->validation && ds->validation == 0)
        return snprintf(err, errlen, "%s: the model holds out no validation items (validation= in its data statement)",
                        f->ckpt), -1;
    if (!f->validation && !ds->has_test)
        return snprintf(err, errlen, "%s: the %s data has no test set (try --split validation)", f->ckpt, ds->kind),
               -1;
    if (data_bundle_load(ds, &p, b, err, errlen) < 0)
        return -1;
    if (f->validation && c->has_data && b->nval != c->validation) {
        snprintf(err, errlen, "%s: the run held out %lld validation items, the data now gives %d (is it the same "
                 "data?)", f->ckpt, c->validation, b->nval);
        return -1;
    }
    *d = f->validation ? &b->train : &b->test;
    *rows = f->validation ? b->val_rows : NULL;
    *count = f->validation ? b->nval : b->test.count;
    if (f->validation && f->limit > 0 && f->limit < *count)
        *count = (int)f->limit;
    return 0;
}

/* Each class's accuracy, then the confusion matrix (rows: true class, columns: predicted). */
static void print_confusion(const ModelSpec *m, const long long *conf)
{
    int K = m->data.classes;
    char *const *names = m->data.class_names;
    printf("class                 items  correct  accuracy\n");
    for (int k = 0; k < K; k++) {
        long long n = 0, right = conf[(size_t)k * K + k];
        for (int j = 0; j < K; j++)
            n += conf[(size_t)k * K + j];
        printf("%4d %-16.16s %6lld %8lld  ", k, names ? names[k] : "", n, right);
        if (n)
            printf("%8.4f\n", (double)right / n);
        else
            printf("%8s\n", "-");
    }
    printf("confusion matrix (row: true class, column: predicted class)\n%21s", "");
    for (int j = 0; j < K; j++)
        printf(" %6d", j);
    printf("\n");
    for (int k = 0; k < K; k++) {
        printf("%4d %-16.16s", k, names ? names[k] : "");
        for (int j = 0; j < K; j++)
            printf(" %6lld", conf[(size_t)k * K + j]);
        printf("\n");
    }
}

static int evaluate(const EvalFlags *f, Ckpt *c, ModelSpec *m, Net *net, char *err, size_t errlen)
{
    DataBundle b;
    Normalizer nz;
    const Dataset *d;
    const int *rows;
    int count, K = m->data.classes, rc = -1;
    double loss, acc;
    long long *conf = f->confusion ? calloc((size_t)K * K, sizeof *conf) : NULL;
    memset(&b, 0, sizeof b), memset(&nz, 0, sizeof nz);
    if ((f->confusion && !conf) || train_checkpoint_normalizer(c, &m->data, &nz, err, errlen) < 0 ||
        load_split(f, c, m, &b, &d, &rows, &count, err, errlen) < 0)
        goto done;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (eval_rows(net, d, rows, count, &nz, m->data.batch, NULL, &loss, &acc, conf, err, errlen) < 0)
        goto done;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* The evaluation alone, without start-up and data loading, so `make bench` can compare it with torch's. */
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    char l[32];
    printf("%s: model %s, epoch %d; evaluated in %.3f s, %.0f images/s\n", f->ckpt, c->model_name, c->epoch, secs,
           secs > 0 ? count / secs : 0.0);
    if (conf)
        print_confusion(m, conf);
    printf("%s loss %s accuracy %.4f (%d images)\n", f->validation ? "validation" : "test",
           train_format_value(loss, 4, l, sizeof l), acc, count);
    rc = 0;
done:
    free(conf);
    norm_free(&nz);
    data_bundle_free(&b);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    EvalFlags f;
    int rc = parse_flags(&f, argc, argv);
    if (rc != 0)
        return rc;
    rt_set_threads(f.threads);
    Ckpt c;
    ModelSpec *m;
    Net *net;
    char err[16384];
    if (load_checkpoint(f.ckpt, f.model, f.data, &c, &m, &net, err, sizeof err) < 0) {
        fprintf(stderr, "bnni: error: %s\n", err);
        return 1;
    }
    rc = evaluate(&f, &c, m, net, err, sizeof err) < 0;
    if (rc)
        fprintf(stderr, "bnni: error: %s\n", err);
    net_free(net);
    spec_free(m);
    ckpt_free(&c);
    return rc;
}
