/* Evaluation of a network on a data set in eval mode (eval.h): whole networks per thread on chunks of items,
 * optionally split across the ranks of a data-parallel run; the trainer, the trace and `bnni eval` share it. */
#include "eval.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loss.h"
#include "threads.h"

int eval_alloc_batch(const Net *net, int batch, Tensor *x, Tensor *dlogits, int **labels)
{
    *labels = malloc((size_t)batch * sizeof **labels);
    if (!*labels || tensor_alloc(x, batch, net->in.c, net->in.h, net->in.w) < 0 ||
        (dlogits && tensor_alloc(dlogits, batch, net->out.c, net->out.h, net->out.w) < 0))
        return -1;
    return 0;
}

/* Evaluation: each thread runs the whole network (net_infer) over its own chunks of EVAL_CHUNK images, on a
 * replica of the network (net_clone) for every thread but the first, so an evaluation is one parallel region
 * instead of one per layer and batch, and a chunk's activations stay in its thread's cache. The chunks are the
 * same whatever the thread count and their sums are added in chunk order, so loss and accuracy do not depend on
 * the count. */

/* One thread's network and input buffers; net is the caller's for slot 0 (not owned), a clone for the others. */
typedef struct EvalSlot {
    Net *net;
    Tensor x;
    int *labels;
} EvalSlot;

static void free_slots(EvalSlot *slot, int T)
{
    for (int t = 0; slot && t < T; t++) {
        if (t > 0)
            net_free(slot[t].net);
        tensor_free(&slot[t].x);
        free(slot[t].labels);
    }
    free(slot);
}

/* Fills slot t for chunks of `chunk` images: slot 0 uses net itself (resized only when its buffers are smaller),
 * the others a clone. Returns 0, or -1 with err (the slot then holds what free_slots releases). */
static int init_slot(EvalSlot *slot, int t, Net *net, int chunk, char *err, size_t errlen)
{
    if (t == 0)
        slot->net = net;
    else if (net_clone(net, &slot->net, err, errlen) < 0)
        return -1;
    if ((t > 0 || net->batch < chunk) && net_resize(slot->net, chunk, err, errlen) < 0)
        return -1;
    if (eval_alloc_batch(slot->net, chunk, &slot->x, NULL, &slot->labels) < 0) {
        snprintf(err, errlen, "out of memory for an evaluation chunk of %d images", chunk);
        return -1;
    }
    return 0;
}

/* Adds a chunk's predictions (each row's first maximum) against its labels into conf[label * K + predicted]. */
static void count_confusion(const Tensor *logits, const int *labels, int n, long long *conf)
{
    int K = logits->c * logits->h * logits->w;
    for (int i = 0; i < n; i++) {
        const float *z = logits->data + (size_t)i * K;
        int best = 0;
        for (int k = 1; k < K; k++)
            best = z[k] > z[best] ? k : best;
        conf[(size_t)labels[i] * K + best]++;
    }
}

/* One evaluation's arguments and results, for the threads' tasks. */
typedef struct EvalCall {
    Net *net; /* the caller's: slot 0's, and what the others clone */
    const Dataset *d;
    const int *rows;
    int count, chunk, nchunks, c1, K;
    const Normalizer *nz;
    EvalSlot *slot;
    double *sum;
    long long *conf;
    atomic_int next, failed; /* the first thread to fail (failed was 0) writes err */
    char *err;
    size_t errlen;
} EvalCall;

/* Every thread sizes its own network's buffers, the others building a replica, all at once: each costs
 * milliseconds of page faults (LeNet-BN's first, 5 ms: an eighth of a 10,000-image evaluation, when it came
 * first). Chunks go to whichever thread is free, so a thread that starts late, is descheduled, or could not
 * build its replica (out of memory) holds nothing up; each chunk's sums have their own slot, so the result does
 * not depend on who took which. Only the first thread's failure fails the evaluation: it may be the only one. */
static void eval_task(void *ctx, int t, int T)
{
    EvalCall *e = ctx;
    EvalSlot *s = &e->slot[t];
    char terr[256];
    (void)T;
    if (init_slot(s, t, e->net, e->chunk, terr, sizeof terr) < 0) {
        if (t == 0 && !atomic_fetch_add(&e->failed, 1))
            snprintf(e->err, e->errlen, "%s", terr);
        return;
    }
    for (int c; (c = atomic_fetch_add(&e->next, 1)) < e->c1;) {
        int start = c * e->chunk, n = e->count - start < e->chunk ? e->count - start : e->chunk, right;
        if (dataset_fill(e->d, e->rows, NULL, start, n, e->nz, NULL, &s->x, NULL, 0, s->labels, terr,
                         sizeof terr) < 0) {
            if (!atomic_fetch_add(&e->failed, 1))
                snprintf(e->err, e->errlen, "%s", terr);
            continue;
        }
        const Tensor *logits = net_infer(s->net, &s->x);
        e->sum[c] = (double)loss_cross_entropy(logits, s->labels, NULL, &right) * n;
        e->sum[e->nchunks + c] = right;
        if (e->conf)
            count_confusion(logits, s->labels, n, e->conf + (size_t)t * e->K * e->K);
    }
}

/* Evaluates chunks [c0, c1) of `chunk` items at positions of rows (NULL: items): sum[c] gets chunk c's loss times
 * its items, sum[nchunks + c] its correctly classified items (a double, so that ranks can add them up with the
 * losses); conf (T x K x K, when not NULL) each thread's confusion counts. Returns 0 or -1 with err. */
static int eval_chunks(Net *net, const Dataset *d, const int *rows, int count, const Normalizer *nz, int chunk,
                       int c0, int c1, double *sum, long long *conf, int T, char *err, size_t errlen)
{
    EvalCall e = {.net = net, .d = d, .rows = rows, .count = count, .chunk = chunk,
                  .nchunks = (count + chunk - 1) / chunk, .c1 = c1, .K = net->out.c * net->out.h * net->out.w,
                  .nz = nz, .sum = sum, .conf = conf, .next = c0, .err = err, .errlen = errlen};
    if (!(e.slot = calloc((size_t)T, sizeof *e.slot))) {
        snprintf(err, errlen, "out of memory for the evaluation of %d images", count);
        return -1;
    }
    rt_run(T, eval_task, &e);
    free_slots(e.slot, T);
    return atomic_load(&e.failed) ? -1 : 0;
}

/* Alone (dist NULL or one rank) or split across the ranks: each evaluates a contiguous share of the chunks, and
 * the per-chunk sums (zero where another rank's chunks are) are added up over the ranks and then in chunk order,
 * as a single process adds them. Shared, it is collective and counts no confusion. */
int eval_rows(Net *net, const Dataset *d, const int *rows, int count, const Normalizer *nz, int batch, Dist *dist,
             double *loss, double *acc, long long *confusion, char *err, size_t errlen)
{
    int chunk = batch < EVAL_CHUNK ? batch : EVAL_CHUNK, nchunks = (count + chunk - 1) / chunk;
    int shared = dist && dist_size(dist) > 1, c0 = 0, c1 = nchunks, rc = -1;
    if (shared)
        rt_split(nchunks, dist_rank(dist), dist_size(dist), &c0, &c1);
    int T = rt_threads() < c1 - c0 ? rt_threads() : c1 - c0 > 0 ? c1 - c0 : 1;
    int K = net->out.c * net->out.h * net->out.w;
    double *sum = calloc(2 * (size_t)(nchunks > 0 ? nchunks : 1), sizeof *sum), total = 0.0;
    long long right = 0, *conf = confusion && !shared ? calloc((size_t)T * K * K, sizeof *conf) : NULL;
    if (!sum || (confusion && !shared && !conf))
        snprintf(err, errlen, "out of memory for the evaluation of %d images", count);
    else
        rc = c1 > c0 ? eval_chunks(net, d, rows, count, nz, chunk, c0, c1, sum, conf, T, err, errlen) : 0;
    if (shared && dist_agree(dist, rc < 0, err, errlen) != 0)
        rc = -1;
    if (rc == 0 && shared)
        dist_sum(dist, sum, 2 * (size_t)nchunks, "summing the evaluation");
    for (int c = 0; rc == 0 && c < nchunks; c++)
        total += sum[c], right += (long long)sum[nchunks + c];
    for (int t = 0; rc == 0 && conf && t < T; t++)
        for (size_t k = 0; k < (size_t)K * K; k++)
            confusion[k] += conf[(size_t)t * K * K + k];
    *loss = count ? total / count : 0.0;
    *acc = count ? (double)right / count : 0.0;
    free(sum), free(conf);
    return rc;
}

int eval_dataset(Net *net, const Dataset *d, const Normalizer *nz, int batch, double *loss, double *acc, char *err,
                 size_t errlen)
{
    return eval_rows(net, d, NULL, d->count, nz, batch, NULL, loss, acc, NULL, err, errlen);
}
