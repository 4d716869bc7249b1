/* The trainer's side of a data-parallel run (shard.h). The gradients of every trainable parameter are packed
 * into one float buffer, laid out from the last layer to the first (the order the backward pass finishes them)
 * and cut at layer boundaries into buckets; a bucket is summed over the ranks (MPI_Iallreduce) as soon as the
 * backward pass has left its layers, while the layers before it still run. The layout and the cuts depend only
 * on the model, so every rank sends the same sums in the same order, and a run at the same number of ranks is
 * the same bit for bit. */
#include "shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/stream.h"
#include "threads.h"

/* One bucket: the parameters of top-level layers [lo, hi) (descending order of completion: hi first), at
 * [off, off + len) of the fused buffer. */
typedef struct Bucket {
    int lo, hi;
    size_t off, len;
    int sent;
} Bucket;

struct Shard {
    Dist *d;
    Comm *comm;
    Net *net;
    NetParam *ps;   /* borrowed: the trainer's list */
    int np;
    int *first;     /* [net->n + 1]: top-level layer i holds ps[first[i] .. first[i + 1]) */
    float *fused;   /* every trainable gradient, layer net->n - 1 first; owned */
    size_t nfused;
    size_t *at;     /* [np]: where ps[k]'s gradient sits in fused (trainable ones only) */
    Bucket bucket[SHARD_MAX_BUCKETS];
    int nbuckets, next; /* next: the first bucket not yet sent this step */
    double scalars[SHARD_NSCALARS];
};

/* How many entries of a parameter list top-level layer l contributes (its body's, for a residual). */
static int layer_param_count(Layer *l)
{
    Param p[LAYER_MAX_PARAMS];
    NetParam *sub;
    if (l->ops->body) {
        int n = net_params(l->ops->body(l), &sub);
        free(sub);
        return n;
    }
    return l->ops->params ? l->ops->params(l, p) : 0;
}

/* Bytes of trainable gradients of top-level layer i. */
static size_t layer_bytes(const Shard *s, int i)
{
    size_t b = 0;
    for (int k = s->first[i]; k < s->first[i + 1]; k++)
        if (s->ps[k].p.grad)
            b += s->ps[k].p.size * sizeof(float);
    return b;
}

/* Places the gradients in the fused buffer from the last layer to the first and cuts the buckets: each closes at
 * a layer boundary once it holds `target` bytes, the last one at layer 0; layers without gradients below the
 * last cut need no bucket. */
static void lay_out(Shard *s, size_t target)
{
    size_t off = 0, start = 0;
    int hi = s->net->n;
    for (int i = s->net->n - 1; i >= 0; i--) {
        for (int k = s->first[i]; k < s->first[i + 1]; k++)
            if (s->ps[k].p.grad)
                s->at[k] = off, off += s->ps[k].p.size;
        if ((off - start) * sizeof(float) >= target || i == 0) {
            if (off > start)
                s->bucket[s->nbuckets++] = (Bucket){.lo = i, .hi = hi, .off = start, .len = off - start};
            start = off, hi = i;
        }
    }
}

/* Net.after_backward: top-level layer i is done; when it was the first layer of the next bucket, that bucket's
 * gradients are packed and start travelling. Otherwise pending sums get a chance to advance. */
static void after_layer(void *ctx, int i)
{
    Shard *s = ctx;
    if (s->next < s->nbuckets && s->bucket[s->next].lo == i) {
        Bucket *b = &s->bucket[s->next++];
        for (int l = b->lo; l < b->hi; l++)
            for (int k = s->first[l]; k < s->first[l + 1]; k++)
                if (s->ps[k].p.grad)
                    memcpy(s->fused + s->at[k], s->ps[k].p.grad, s->ps[k].p.size * sizeof(float));
        dist_start_sum(s->d, s->fused + b->off, b->len, 0);
        b->sent = 1;
    } else {
        dist_progress(s->d);
    }
}

int shard_create(Dist *d, Net *net, NetParam *ps, int np, Shard **out, char *err, size_t errlen)
{
    Shard *s = calloc(1, sizeof *s);
    *out = NULL;
    if (!s || !(s->first = calloc((size_t)net->n + 1, sizeof *s->first)) ||
        !(s->at = calloc((size_t)(np > 0 ? np : 1), sizeof *s->at)))
        goto oom;
    s->d = d, s->comm = dist_comm(d), s->net = net, s->ps = ps, s->np = np;
    for (int i = 0; i < net->n; i++)
        s->first[i + 1] = s->first[i] + layer_param_count(&net->layers[i]);
    if (s->first[net->n] != np) {
        snprintf(err, errlen, "the parameter list does not match the network (%d entries, the layers hold %d)", np,
                 s->first[net->n]);
        shard_free(s);
        return -1;
    }
    size_t total = 0;
    for (int i = 0; i < net->n; i++)
        total += layer_bytes(s, i);
    /* Every bucket but the last holds at least target > total / SHARD_MAX_BUCKETS bytes: at most that many. */
    size_t target = total / (SHARD_MAX_BUCKETS - 1) > SHARD_MIN_BUCKET ? total / (SHARD_MAX_BUCKETS - 1)
                                                                       : SHARD_MIN_BUCKET;
    s->nfused = total / sizeof(float);
    if (!(s->fused = malloc((s->nfused ? s->nfused : 1) * sizeof *s->fused)))
        goto oom;
    if (net->n > 0)
        lay_out(s, target);
    net_set_comm(net, s->comm);
    net->after_backward = after_layer, net->after_backward_ctx = s;
    *out = s;
    return 0;
oom:
    snprintf(err, errlen, "out of memory for the fused gradient buffer");
    shard_free(s);
    return -1;
}

void shard_free(Shard *s)
{
    if (!s)
        return;
    if (s->net && s->net->after_backward_ctx == s) {
        s->net->after_backward = NULL, s->net->after_backward_ctx = NULL;
        net_set_comm(s->net, NULL);
    }
    free(s->first), free(s->at), free(s->fused);
    free(s);
}

void shard_slice(Shard *s, int n, int *first, int *count)
{
    int hi;
    rt_split(n, s->comm->rank, s->comm->size, first, &hi);
    *count = hi - *first;
    s->comm->first = *first, s->comm->total = n;
}

void shard_begin(Shard *s, const double scalars[SHARD_NSCALARS])
{
    memcpy(s->scalars, scalars, sizeof s->scalars);
    s->next = 0;
    for (int b = 0; b < s->nbuckets; b++)
        s->bucket[b].sent = 0;
    dist_start_sum(s->d, s->scalars, SHARD_NSCALARS, 1);
}

void shard_end(Shard *s, double sums[SHARD_NSCALARS])
{
    for (int i = s->net->n - 1; s->next < s->nbuckets && i >= 0; i--) /* a backward that stopped early */
        after_layer(s, i);
    dist_wait_all(s->d, "summing the gradients");
    for (int k = 0; k < s->np; k++)
        if (s->ps[k].p.grad)
            memcpy(s->ps[k].p.grad, s->fused + s->at[k], s->ps[k].p.size * sizeof(float));
    memcpy(sums, s->scalars, sizeof s->scalars);
}

size_t shard_bytes(const Shard *s) { return s->nfused * sizeof(float); }
int shard_buckets(const Shard *s) { return s->nbuckets; }

/* ---------------------------------------------------------------- agreement */

int shard_check_same(Dist *d, uint64_t h, const char *what, char *err, size_t errlen)
{
    int differs = dist_root_u64(d, h) != h;
    if (differs)
        snprintf(err, errlen, "it has another %s than rank 0", what);
    return dist_agree(d, differs, err, errlen) ? -1 : 0;
}

uint64_t shard_hash_model(const ModelSpec *m, long long test_limit)
{
    long long v[6] = {m->epochs, (long long)m->seed, m->data.batch, m->data.limit, test_limit, m->data.shuffle};
    uint64_t h = dist_hash(DIST_HASH_SEED, m->source ? m->source : "", m->source ? m->source_len : 0);
    return dist_hash(h, v, sizeof v);
}

/* A streamed set's items stay in their files, and each rank reads only its shares: the hash covers SAMPLE items
 * spread evenly over the set. A failed read hashes its message: ranks that fail alike agree here, and the first
 * step's read then stops them all with that message. */
enum { SAMPLE = 64 };
static uint64_t hash_sample(uint64_t h, const Dataset *d)
{
    int ids[SAMPLE], n = d->count < SAMPLE ? d->count : SAMPLE;
    size_t bytes = dataset_item_size(d) * (d->dtype == DT_U8 ? 1 : sizeof(float));
    char err[256] = "out of memory";
    for (int k = 0; k < n; k++)
        ids[k] = (int)((long long)k * d->count / n);
    void *buf = n ? malloc((size_t)n * bytes) : NULL;
    int ok = buf && stream_read(d->stream, ids, n, buf, err, sizeof err) == 0;
    h = ok ? dist_hash(h, buf, (size_t)n * bytes) : dist_hash(h, err, strlen(err));
    free(buf);
    return h;
}

static uint64_t hash_set(uint64_t h, const Dataset *d)
{
    int v[6] = {d->count, d->shape.c, d->shape.h, d->shape.w, d->classes, (int)d->dtype};
    size_t px = (size_t)d->count * d->shape.c * d->shape.h * d->shape.w;
    h = dist_hash(h, v, sizeof v);
    h = dist_hash(h, d->pixels, d->pixels ? px : 0);
    h = dist_hash(h, d->values, d->values ? px * sizeof *d->values : 0);
    if (d->stream && d->count > 0)
        h = hash_sample(h, d);
    return dist_hash(h, d->labels, d->labels ? (size_t)d->count * sizeof *d->labels : 0);
}

uint64_t shard_hash_data(const Dataset *train, const Dataset *test)
{
    return hash_set(hash_set(DIST_HASH_SEED, train), test);
}

uint64_t shard_hash_state(const NetParam *ps, int np, Optim *opt, const TrainState *ts)
{
    uint64_t h = DIST_HASH_SEED;
    long long steps = opt ? optim_step_count(opt) : 0;
    for (int k = 0; k < np; k++) {
        Param st[2];
        h = dist_hash(h, ps[k].p.value, ps[k].p.size * sizeof(float));
        for (int j = 0, n = opt ? optim_state(opt, k, st) : 0; j < n; j++)
            h = dist_hash(h, st[j].value, st[j].size * sizeof(float));
    }
    h = dist_hash(h, &steps, sizeof steps);
    if (!ts)
        return h;
    int v[4] = {ts->epoch, ts->position, ts->norder, ts->batch};
    double w[2] = {ts->loss_sum, ts->lr};
    h = dist_hash(h, v, sizeof v);
    h = dist_hash(h, w, sizeof w);
    h = dist_hash(h, &ts->correct, sizeof ts->correct);
    h = dist_hash(h, ts->shuffle_rng.s, sizeof ts->shuffle_rng.s);
    h = dist_hash(h, ts->net_rng.s, sizeof ts->net_rng.s);
    /* The order means something only mid-epoch; before the first epoch it is not even drawn yet. */
    return dist_hash(h, ts->order, ts->order && ts->position > 0 ? (size_t)ts->norder * sizeof *ts->order : 0);
}
