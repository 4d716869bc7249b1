/* Recording the internal-covariate-shift trace (trace.h). A record runs the probe batch through the network in
 * eval mode, chunk by chunk (net_forward: every layer's output is written, none fused away), copies each traced
 * layer's output aside and takes its percentiles; then it evaluates the accuracy subset like the per-epoch test
 * evaluation (eval_dataset, eval.h). Eval mode draws no random number and updates no statistic, and every buffer it
 * overwrites is rewritten by the next training forward, so a traced run trains exactly like an untraced one. */
#include "trace.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layer.h"
#include "eval.h"

const double trace_percentiles[TRACE_NPCT] = {0.15, 0.50, 0.85};

struct Trace {
    TraceLog log;                       /* owned arrays */
    Net *net;
    const Dataset *test;
    const Normalizer *nz;
    const Layer *layer[TRACE_MAX_LAYERS]; /* the traced layers, in the net or a residual body */
    float *vals[TRACE_MAX_LAYERS];      /* each one's output over the whole probe */
    size_t per_image[TRACE_MAX_LAYERS]; /* values per image */
    Tensor x;                           /* one chunk of the probe */
};

/* ---------------------------------------------------------------- logs */

int trace_log_append(TraceLog *log, long long step, double acc, const double *pct)
{
    if (log->n == log->cap) {
        int cap = log->cap ? 2 * log->cap : 64;
        long long *s = realloc(log->step, (size_t)cap * sizeof *s);
        if (s)
            log->step = s;
        double *a = s ? realloc(log->test_acc, (size_t)cap * sizeof *a) : NULL;
        if (a)
            log->test_acc = a;
        double *p = a ? realloc(log->pct, (size_t)cap * (log->nlayers ? log->nlayers : 1) * TRACE_NPCT * sizeof *p)
                      : NULL;
        if (!p)
            return -1;
        log->pct = p, log->cap = cap;
    }
    size_t w = (size_t)log->nlayers * TRACE_NPCT;
    log->step[log->n] = step, log->test_acc[log->n] = acc;
    if (w)
        memcpy(log->pct + (size_t)log->n * w, pct, w * sizeof *pct);
    log->n++;
    return 0;
}

static void log_clear(TraceLog *log)
{
    free(log->step), free(log->test_acc), free(log->pct);
    log->step = NULL, log->test_acc = NULL, log->pct = NULL;
    log->n = log->cap = 0;
}

void trace_log_free(TraceLog *log)
{
    if (log)
        log_clear(log);
    free(log);
}

/* ---------------------------------------------------------------- percentiles */

#define SWAP(a, b) do { float t_ = (a); (a) = (b); (b) = t_; } while (0)

/* Rearranges v[0..n) so that v[k] holds the value of rank k, nothing larger before it and nothing smaller after
 * (the selection of Numerical Recipes, 0-based; n >= 1). */
static void select_rank(float *v, size_t n, size_t k)
{
    size_t l = 0, ir = n - 1;
    for (;;) {
        if (ir <= l + 1) {
            if (ir == l + 1 && v[ir] < v[l])
                SWAP(v[l], v[ir]);
            return;
        }
        size_t mid = (l + ir) / 2, i = l + 1, j = ir;
        SWAP(v[mid], v[l + 1]);
        if (v[l] > v[ir])
            SWAP(v[l], v[ir]);
        if (v[l + 1] > v[ir])
            SWAP(v[l + 1], v[ir]);
        if (v[l] > v[l + 1])
            SWAP(v[l], v[l + 1]);
        float a = v[l + 1]; /* the median of three, with sentinels at both ends */
        for (;;) {
            do
                i++;
            while (v[i] < a);
            do
                j--;
            while (v[j] > a);
            if (j < i)
                break;
            SWAP(v[i], v[j]);
        }
        v[l + 1] = v[j];
        v[j] = a;
        if (j >= k)
            ir = j - 1;
        if (j <= k)
            l = i;
    }
}

double trace_quantile(float *v, size_t n, double q)
{
    if (n == 0)
        return NAN;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return NAN;
    double pos = q * (double)(n - 1);
    size_t k = (size_t)pos;
    double t = pos - (double)k;
    select_rank(v, n, k);
    double lo = v[k];
    if (t == 0.0 || k + 1 >= n)
        return lo;
    float hi = v[k + 1]; /* the next rank: the smallest of what lies above k */
    for (size_t i = k + 2; i < n; i++)
        hi = v[i] < hi ? v[i] : hi;
    return lo + (hi - lo) * t;
}

/* ---------------------------------------------------------------- a run's trace */

/* The layer called name in net or, depth first, in a residual body; NULL when none. */
static const Layer *find_layer(Net *net, const char *name)
{
    for (int i = 0; i < net->n; i++) {
        Layer *l = &net->layers[i];
        if (strcmp(l->spec->name, name) == 0)
            return l;
        Net *body = l->ops->body ? l->ops->body(l) : NULL;
        const Layer *in = body ? find_layer(body, name) : NULL;
        if (in)
            return in;
    }
    return NULL;
}

/* Whether the request a and the saved trace b record the same things. */
static int same_request(const TraceLog *a, const TraceLog *b)
{
    if (a->every != b->every || a->probe != b->probe || a->subset != b->subset || a->nlayers != b->nlayers)
        return 0;
    for (int i = 0; i < a->nlayers; i++)
        if (strcmp(a->names[i], b->names[i]) != 0)
            return 0;
    return 1;
}

/* "dense_3, batchnorm_3 every 50 steps (probe 256, subset 2000)" for messages. */
static const char *describe(const TraceLog *l, char *buf, size_t len)
{
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < l->nlayers && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%s", i ? "," : "", l->names[i]);
    if (k < len)
        snprintf(buf + k, len - k, " every %d steps (probe %d images, accuracy on %d)", l->every, l->probe,
                 l->subset);
    return buf;
}

/* The configuration of t from req (or saved), and the saved records; checks that they agree. */
static int configure(Trace *t, const TraceLog *req, const TraceLog *saved, char *err, size_t errlen)
{
    char a[1024], b[1024];
    if (saved && req && !same_request(req, saved)) {
        snprintf(err, errlen, "the checkpoint's trace records %s; this run asks for %s (resume with the same "
                 "--trace, --trace-every, --trace-probe and --trace-test, or none)",
                 describe(saved, a, sizeof a), describe(req, b, sizeof b));
        return -1;
    }
    const TraceLog *cfg = saved ? saved : req;
    t->log.every = cfg->every, t->log.probe = cfg->probe, t->log.subset = cfg->subset;
    t->log.nlayers = cfg->nlayers;
    memcpy(t->log.names, cfg->names, sizeof t->log.names);
    if (t->log.every < 1 || t->log.probe < 1 || t->log.subset < 1 || t->log.nlayers < 1 ||
        t->log.nlayers > TRACE_MAX_LAYERS) {
        snprintf(err, errlen, "a trace needs 1 to %d layers, every >= 1 step and at least one probe and test image",
                 TRACE_MAX_LAYERS);
        return -1;
    }
    for (int i = 0; saved && i < saved->n; i++)
        if (trace_log_append(&t->log, saved->step[i], saved->test_acc[i],
                             saved->pct + (size_t)i * saved->nlayers * TRACE_NPCT) < 0) {
            snprintf(err, errlen, "out of memory for the trace");
            return -1;
        }
    return 0;
}

int trace_start(const TraceLog *req, const TraceLog *saved, Net *net, const Dataset *test, const Normalizer *nz,
                Trace **out, char *err, size_t errlen)
{
    Trace *t = calloc(1, sizeof *t);
    *out = NULL;
    if (!t) {
        snprintf(err, errlen, "out of memory for the trace");
        return -1;
    }
    t->net = net, t->test = test, t->nz = nz;
    /* A test set smaller than asked for (--test-limit) is traced whole: the log says what was used. */
    TraceLog clipped;
    if (req) {
        clipped = *req;
        clipped.probe = req->probe < test->count ? req->probe : test->count;
        clipped.subset = req->subset < test->count ? req->subset : test->count;
    }
    if (configure(t, req ? &clipped : NULL, saved, err, errlen) < 0)
        goto fail;
    if (t->log.probe > test->count || t->log.subset > test->count) {
        snprintf(err, errlen, "the trace uses %d probe and %d test images, but the test set has %d", t->log.probe,
                 t->log.subset, test->count);
        goto fail;
    }
    for (int i = 0; i < t->log.nlayers; i++) {
        if (!(t->layer[i] = find_layer(net, t->log.names[i]))) {
            snprintf(err, errlen, "--trace: the network has no layer named '%s'", t->log.names[i]);
            goto fail;
        }
        const Shape *o = &t->layer[i]->spec->out;
        t->per_image[i] = (size_t)o->c * o->h * o->w;
        if (!(t->vals[i] = malloc(t->per_image[i] * (size_t)t->log.probe * sizeof(float)))) {
            snprintf(err, errlen, "out of memory for the trace of %s", t->log.names[i]);
            goto fail;
        }
    }
    if (tensor_alloc(&t->x, net->batch, net->in.c, net->in.h, net->in.w) < 0) {
        snprintf(err, errlen, "out of memory for the trace's probe");
        goto fail;
    }
    *out = t;
    return 0;
fail:
    trace_free(t);
    return -1;
}

/* Runs the probe through the network in eval mode, a chunk of at most net->batch images at a time, and fills
 * pct with each traced layer's percentiles. */
static void probe_percentiles(Trace *t, double *pct)
{
    for (int start = 0; start < t->log.probe; start += t->net->batch) {
        int n = t->log.probe - start < t->net->batch ? t->log.probe - start : t->net->batch;
        dataset_batch(t->test, NULL, start, n, t->nz, &t->x, NULL);
        net_forward(t->net, &t->x, 0);
        for (int i = 0; i < t->log.nlayers; i++)
            memcpy(t->vals[i] + (size_t)start * t->per_image[i], t->layer[i]->y.data,
                   (size_t)n * t->per_image[i] * sizeof(float));
    }
    for (int i = 0; i < t->log.nlayers; i++)
        for (int q = 0; q < TRACE_NPCT; q++) /* each selection only reorders; the values stay the same multiset */
            pct[i * TRACE_NPCT + q] = trace_quantile(t->vals[i], t->per_image[i] * (size_t)t->log.probe,
                                                     trace_percentiles[q]);
}

int trace_step(Trace *t, long long step, char *err, size_t errlen)
{
    if (step % t->log.every != 0 || (t->log.n > 0 && t->log.step[t->log.n - 1] >= step))
        return 0;
    double pct[TRACE_MAX_LAYERS * TRACE_NPCT], loss, acc;
    Dataset subset = *t->test; /* a view of the first images: nothing of it is owned */
    subset.count = t->log.subset;
    probe_percentiles(t, pct);
    if (eval_dataset(t->net, &subset, t->nz, t->net->batch, &loss, &acc, err, errlen) < 0)
        return -1;
    if (trace_log_append(&t->log, step, acc, pct) < 0) {
        snprintf(err, errlen, "out of memory for the trace");
        return -1;
    }
    return 0;
}

const TraceLog *trace_log(const Trace *t) { return &t->log; }

void trace_free(Trace *t)
{
    if (!t)
        return;
    log_clear(&t->log);
    for (int i = 0; i < TRACE_MAX_LAYERS; i++)
        free(t->vals[i]);
    tensor_free(&t->x);
    free(t);
}
