/* `bnni eval`: loads a checkpoint (its embedded model, or --model) and evaluates it on the whole test set in
 * eval mode, with the input normalisation it was trained with. The last line is the result. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../runtime/threads.h"
#include "../runtime/train.h"
#include "cmd.h"
#include "load.h"

const char cmd_eval_usage[] =
    "usage: bnni eval CKPT.h5 [--model MODEL.bnn] [--data DIR] [--limit N] [--threads N]\n"
    "\n"
    "Evaluates a checkpoint on the test set in eval mode (batchnorm uses its moving statistics) and ends\n"
    "with the line `test loss L accuracy A (N images)`.\n"
    "\n"
    "  --model MODEL.bnn  use this model instead of the source embedded in the checkpoint\n"
    "  --data DIR         directory of the IDX files (default: the one the checkpoint was trained on)\n"
    "  --limit N          evaluate on the first N test images only (default and 0: all)\n"
    "  --threads N        worker threads (default: every core it may run on)\n"
    "\n"
    "exit status: 0 ok, 1 bad input (unreadable checkpoint, tensors that do not fit, bad data), 2 usage error\n"
    "example: bnni eval lenet_bn.h5\n";

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "bnni eval: error: %s%s%s\nusage: bnni eval CKPT.h5 [options]   (bnni help eval)\n", msg,
            arg ? ": " : "", arg ? arg : "");
    return 2;
}

typedef struct EvalFlags {
    const char *ckpt, *model, *data;
    int threads;
    long limit; /* 0: the whole test set */
} EvalFlags;

static int parse_flags(EvalFlags *f, int argc, char **argv)
{
    memset(f, 0, sizeof *f);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--model") == 0 || strcmp(a, "--data") == 0 || strcmp(a, "--threads") == 0 ||
            strcmp(a, "--limit") == 0) {
            if (i + 1 == argc)
                return usage_error("this option needs a value", a);
            const char *v = argv[++i];
            if (strcmp(a, "--model") == 0)
                f->model = v;
            else if (strcmp(a, "--data") == 0)
                f->data = v;
            else {
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
            }
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
    Dataset test = {0};
    Normalizer nz;
    char err[16384];
    double loss, acc;
    if (load_checkpoint(f.ckpt, f.model, &c, &m, &net, err, sizeof err) < 0) {
        fprintf(stderr, "bnni: error: %s\n", err);
        return 1;
    }
    const DataSpec *d = &m->data;
    train_checkpoint_normalizer(&c, &nz);
    struct timespec t0, t1;
    rc = dataset_load(f.data ? f.data : d->path, 0, f.limit, d->shape, d->classes, &test, err, sizeof err) < 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = rc || train_evaluate(net, &test, &nz, d->batch, &loss, &acc, err, sizeof err) < 0;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* The evaluation alone, without start-up and data loading, so `make bench` can compare it with torch's. */
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    char l[32];
    if (rc)
        fprintf(stderr, "bnni: error: %s\n", err);
    else
        printf("%s: model %s, epoch %d; evaluated in %.3f s, %.0f images/s\ntest loss %s accuracy %.4f (%d images)\n",
               f.ckpt, c.model_name, c.epoch, secs, secs > 0 ? test.count / secs : 0.0,
               train_format_value(loss, 4, l, sizeof l), acc, test.count);
    dataset_free(&test);
    net_free(net);
    spec_free(m);
    ckpt_free(&c);
    return rc;
}
