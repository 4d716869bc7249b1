/* The training loop: epochs of mini-batches in a Fisher-Yates order, a test evaluation after each, the epoch
 * line, the metrics CSV and an atomic checkpoint. Everything a step depends on (weights, optimizer, both RNG
 * streams, the epoch's order and position, the running sums) is in the checkpoint, so a resumed run -- even
 * one stopped mid-epoch (TrainOptions.stop, which `bnni train` sets on SIGINT/SIGTERM) -- computes exactly what
 * an uninterrupted one would. With other ranks (TrainOptions.dist) each rank steps through the same epochs on its
 * share of every batch (shared_step, shard.h); nothing else of the loop changes but who writes and prints. */
#include "train.h"

#include <errno.h>
#include <omp.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "loss.h"
#include "optim.h"
#include "profile.h"
#include "shard.h"
#include "threads.h"

#define SHUFFLE_STREAM 0x53485546464c45ull /* "SHUFFLE": keeps the shuffle stream apart from the init stream */

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

const char *train_format_value(double v, int digits, char *buf, size_t len)
{
    snprintf(buf, len, fabs(v) < 1e6 ? "%.*f" : "%.*g", digits, v);
    return buf;
}

const char *train_group_digits(double n, char *buf, size_t len)
{
    char raw[32];
    int k = snprintf(raw, sizeof raw, "%.0f", n < 0 ? 0 : n > 1e18 ? 1e18 : n), o = 0;
    for (int i = 0; i < k && (size_t)o + 2 < len; i++) {
        if (i > 0 && (k - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = '\0';
    return buf;
}

/* ---------------------------------------------------------------- evaluation */

static int alloc_batch(const Net *net, int batch, Tensor *x, Tensor *dlogits, int **labels)
{
    *labels = malloc((size_t)batch * sizeof **labels);
    if (!*labels || tensor_alloc(x, batch, net->in.c, net->in.h, net->in.w) < 0 ||
        (dlogits && tensor_alloc(dlogits, batch, net->out.c, net->out.h, net->out.w) < 0))
        return -1;
    return 0;
}

/* Evaluation: each thread runs the whole network (net_infer) over its own chunks of TRAIN_EVAL_CHUNK images, on a
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
    if (alloc_batch(slot->net, chunk, &slot->x, NULL, &slot->labels) < 0) {
        snprintf(err, errlen, "out of memory for an evaluation chunk of %d images", chunk);
        return -1;
    }
    return 0;
}

/* The next chunk to evaluate, for whichever thread asks. */
static int next_chunk(int *counter)
{
    int c;
#pragma omp atomic capture
    c = (*counter)++;
    return c;
}

/* Evaluates chunks [c0, c1) of `chunk` images: sum[c] gets chunk c's loss times its images, sum[nchunks + c] its
 * correctly classified images (a double, so that ranks can add them up with the losses). Returns 0 or -1 with
 * err. */
static int eval_chunks(Net *net, const Dataset *d, const Normalizer *nz, int chunk, int c0, int c1, double *sum,
                       char *err, size_t errlen)
{
    int n = c1 - c0, T = rt_threads() < n ? rt_threads() : n > 0 ? n : 1, rc = -1, counter = c0;
    int nchunks = (d->count + chunk - 1) / chunk;
    EvalSlot *slot = calloc((size_t)T, sizeof *slot);
    if (n <= 0) {
        free(slot);
        return 0;
    }
    if (!slot) {
        snprintf(err, errlen, "out of memory for the evaluation of %d images", d->count);
        return -1;
    }
    if (init_slot(&slot[0], 0, net, chunk, err, errlen) < 0)
        goto done;
    /* Each other thread builds its replica itself while the first one is already evaluating (a replica's buffers
     * cost ~2 ms of page faults: a tenth of a 10,000-image evaluation if built first). Chunks go to whichever
     * thread is free, so a thread that starts late, is descheduled, or could not build its replica (out of memory)
     * holds nothing up; each chunk's sums have their own slot, so the result does not depend on who took which. */
#pragma omp parallel num_threads(T)
    {
        int t = omp_get_thread_num();
        EvalSlot *s = &slot[t];
        char terr[256];
        if (t == 0 || init_slot(s, t, net, chunk, terr, sizeof terr) == 0)
            for (int c; (c = next_chunk(&counter)) < c1;) {
                int start = c * chunk, k = d->count - start < chunk ? d->count - start : chunk, right;
                dataset_batch(d, NULL, start, k, nz, &s->x, s->labels);
                sum[c] = (double)loss_cross_entropy(net_infer(s->net, &s->x), s->labels, NULL, &right) * k;
                sum[nchunks + c] = right;
            }
    }
    rc = 0;
done:
    free_slots(slot, T);
    return rc;
}

/* Alone (dist NULL or one rank) or split across the ranks: each evaluates a contiguous share of the chunks, and
 * the per-chunk sums (zero where another rank's chunks are) are added up over the ranks and then in chunk
 * order, as a single process adds them. */
static int evaluate(Net *net, const Dataset *d, const Normalizer *nz, int batch, Dist *dist, double *loss,
                    double *acc, char *err, size_t errlen)
{
    int chunk = batch < TRAIN_EVAL_CHUNK ? batch : TRAIN_EVAL_CHUNK, nchunks = (d->count + chunk - 1) / chunk;
    int shared = dist && dist_size(dist) > 1, c0 = 0, c1 = nchunks, rc = -1;
    double *sum = calloc(2 * (size_t)(nchunks > 0 ? nchunks : 1), sizeof *sum), total = 0.0;
    long long right = 0;
    if (shared)
        rt_split(nchunks, dist_rank(dist), dist_size(dist), &c0, &c1);
    if (!sum)
        snprintf(err, errlen, "out of memory for the evaluation of %d images", d->count);
    else
        rc = eval_chunks(net, d, nz, chunk, c0, c1, sum, err, errlen);
    if (shared && dist_agree(dist, rc < 0, err, errlen) != 0)
        rc = -1;
    if (rc == 0 && shared)
        dist_sum(dist, sum, 2 * (size_t)nchunks, "summing the evaluation");
    for (int c = 0; rc == 0 && c < nchunks; c++)
        total += sum[c], right += (long long)sum[nchunks + c];
    *loss = d->count ? total / d->count : 0.0;
    *acc = d->count ? (double)right / d->count : 0.0;
    free(sum);
    return rc;
}

int train_evaluate(Net *net, const Dataset *d, const Normalizer *nz, int batch, double *loss, double *acc,
                   char *err, size_t errlen)
{
    return evaluate(net, d, nz, batch, NULL, loss, acc, err, errlen);
}

int train_evaluate_shared(Net *net, const Dataset *d, const Normalizer *nz, int batch, Dist *dist, double *loss,
                          double *acc, char *err, size_t errlen)
{
    return evaluate(net, d, nz, batch, dist, loss, acc, err, errlen);
}

/* ---------------------------------------------------------------- the run */

typedef struct Run {
    ModelSpec *m;
    const TrainOptions *o;
    Dataset train, test;
    Normalizer nz;
    Net *net;
    NetParam *ps;
    int np;
    Optim *opt;
    TrainState ts;       /* ts.order owned */
    CkptMetrics metrics; /* owned */
    Tensor x, dlogits;
    int *labels;
    FILE *csv;
    long long steps;     /* steps taken by this process */
    double last_draw;    /* progress bar throttle */
    TrainProfile prof;   /* --profile: the phases outside the layers (the net times its layers) */
    Dist *d;             /* o->dist, borrowed */
    Shard *shard;        /* owned; only with other ranks: then the run is shared */
    int stop;            /* shared runs: the signal the ranks agreed to stop for, or 0 */
} Run;

/* Whether this rank writes the checkpoint and the metrics: rank 0, or the only one. */
static int is_root(const Run *r) { return !r->d || dist_rank(r->d) == 0; }

/* Images of a batch this rank holds at most: all of them alone, else the largest share (shard_slice). */
static int local_batch(const Run *r)
{
    int n = r->d ? dist_size(r->d) : 1;
    return (r->m->data.batch + n - 1) / n;
}

static void run_free(Run *r)
{
    shard_free(r->shard);
    if (r->csv)
        fclose(r->csv);
    tensor_free(&r->x), tensor_free(&r->dlogits);
    free(r->labels);
    optim_free(r->opt);
    free(r->ps);
    net_free(r->net);
    free(r->ts.order);
    metrics_free(&r->metrics);
    dataset_free(&r->train), dataset_free(&r->test);
    prof_free(&r->prof);
}

static int setup_data(Run *r, char *err, size_t errlen)
{
    const DataSpec *d = &r->m->data;
    if (dataset_load(d->path, 1, d->limit, d->shape, d->classes, &r->train, err, errlen) < 0 ||
        dataset_load(d->path, 0, r->o->test_limit, d->shape, d->classes, &r->test, err, errlen) < 0)
        return -1;
    double mean = 0.0, std = 1.0;
    if (d->normalize == NORM_STANDARD)
        dataset_pixel_stats(&r->train, &mean, &std);
    norm_init(&r->nz, mean, std);
    return 0;
}

static int setup_net(Run *r, char *err, size_t errlen)
{
    ModelSpec *m = r->m;
    if (net_create(m->layers, m->nlayers, m->input, m->seed, &r->net, err, errlen) < 0)
        return -1;
    if ((r->np = net_params(r->net, &r->ps)) < 0) {
        snprintf(err, errlen, "out of memory listing the parameters");
        return -1;
    }
    if (optim_create(&m->opt, r->ps, r->np, &r->opt, err, errlen) < 0)
        return -1;
    TrainState *ts = &r->ts;
    ts->norder = r->train.count;
    ts->batch = m->data.batch;
    ts->order = malloc((size_t)ts->norder * sizeof *ts->order);
    if (!ts->order || alloc_batch(r->net, local_batch(r), &r->x, &r->dlogits, &r->labels) < 0) {
        snprintf(err, errlen, "out of memory for batches of %d images", local_batch(r));
        return -1;
    }
    if (net_resize(r->net, local_batch(r), err, errlen) < 0)
        return -1;
    if (r->d && dist_size(r->d) > 1 && shard_create(r->d, r->net, r->ps, r->np, &r->shard, err, errlen) < 0)
        return -1;
    if (r->o->profile && net_profile_start(r->net) < 0) {
        snprintf(err, errlen, "out of memory for the profile");
        return -1;
    }
    rng_seed(&ts->shuffle_rng, m->seed ^ SHUFFLE_STREAM);
    return 0;
}

/* --init: weights and moving statistics only. */
static int apply_init(Run *r, const char *path, char *err, size_t errlen)
{
    Ckpt c;
    char why[8192];
    int rc = ckpt_read(path, &c, why, sizeof why);
    if (rc == 0) {
        rc = ckpt_check_finite(&c, "layers/", why, sizeof why);
        if (rc == 0)
            rc = ckpt_apply_params(&c, r->ps, r->np, why, sizeof why);
        ckpt_free(&c);
    }
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", path, why);
    return rc;
}

static int check_resume(const Run *r, const Ckpt *c, char *why, size_t len)
{
    if (!c->has_train_state) {
        snprintf(why, len, "holds no /train_state to resume from");
        return -1;
    }
    if (c->ts.norder != r->train.count) {
        snprintf(why, len, "was trained on %d images per epoch, this run has %d (use the same --limit)",
                 c->ts.norder, r->train.count);
        return -1;
    }
    if (c->ts.batch != r->m->data.batch) {
        snprintf(why, len, "was trained with batch %d, the model now says %d", c->ts.batch, r->m->data.batch);
        return -1;
    }
    return 0;
}

/* --resume: everything. The checkpoint's order, sums, RNG streams and history replace the fresh ones. */
static int apply_resume(Run *r, const char *path, char *err, size_t errlen)
{
    Ckpt c;
    char why[8192];
    int rc = ckpt_read(path, &c, why, sizeof why);
    if (rc == 0)
        rc = ckpt_check_finite(&c, NULL, why, sizeof why);
    if (rc == 0)
        rc = check_resume(r, &c, why, sizeof why);
    if (rc == 0)
        rc = ckpt_apply_params(&c, r->ps, r->np, why, sizeof why);
    if (rc == 0)
        rc = ckpt_apply_optim(&c, &r->m->opt, r->opt, r->ps, r->np, why, sizeof why);
    if (rc == 0) {
        free(r->ts.order);
        r->ts = c.ts, c.ts.order = NULL;
        r->metrics = c.metrics;
        memset(&c.metrics, 0, sizeof c.metrics);
        r->net->rng = r->ts.net_rng;
        r->m->seed = c.seed;
        if (!r->o->quiet)
            fprintf(r->o->log, "resuming %s at epoch %d, image %d of %d\n", path, r->ts.epoch + 1, r->ts.position,
                    r->ts.norder);
    }
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", path, why);
    ckpt_free(&c);
    return rc;
}

static int write_checkpoint(Run *r, char *err, size_t errlen)
{
    Ckpt c;
    char why[1024];
    int rc = ckpt_build(&c, r->m, r->ps, r->np, r->opt, &r->ts, &r->metrics, r->nz.mean, r->nz.std, r->ts.epoch,
                        why, sizeof why);
    if (rc == 0) {
        rc = ckpt_write(r->o->out, &c, why, sizeof why);
        ckpt_free(&c);
    }
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", r->o->out, why);
    return rc;
}

/* The signal that asked this process to stop, or 0. */
static int local_stop(const Run *r) { return r->o->stop ? (int)*r->o->stop : 0; }

/* Shared runs: every rank learns whether any was asked to stop (SIGINT before SIGTERM). Collective. */
static void agree_stop(Run *r)
{
    double v[2] = {local_stop(r) != 0, local_stop(r) == SIGINT};
    dist_sum(r->d, v, 2, "agreeing whether to stop");
    r->stop = v[0] > 0 ? (v[1] > 0 ? SIGINT : SIGTERM) : 0;
}

/* Alone: writes the checkpoint. Shared: every rank first checks that it holds the state rank 0 is about to write
 * (replicas that drifted apart would otherwise go unnoticed), rank 0 writes, and every rank learns how that went
 * and whether any was asked to stop meanwhile. */
static int save(Run *r, char *err, size_t errlen)
{
    r->ts.net_rng = r->net->rng;
    if (!r->shard)
        return write_checkpoint(r, err, errlen);
    if (shard_check_same(r->d, shard_hash_state(r->ps, r->np, r->opt, &r->ts),
                         "state after the same steps (parameters, moving statistics or optimizer): the ranks have "
                         "drifted apart, as ranks whose CPUs or builds compute other bits do",
                         err, errlen) < 0)
        return -1;
    int rc = is_root(r) ? write_checkpoint(r, err, errlen) : 0;
    if (dist_agree(r->d, rc < 0, err, errlen) != 0)
        return -1;
    agree_stop(r);
    return 0;
}

/* ---------------------------------------------------------------- output */

static void draw_progress(Run *r, int epoch)
{
    double t = now_seconds();
    if (!r->o->progress || r->o->quiet || t - r->last_draw < 0.1)
        return;
    r->last_draw = t;
    const TrainState *ts = &r->ts;
    int batches = (ts->norder + ts->batch - 1) / ts->batch, done = (ts->position + ts->batch - 1) / ts->batch;
    double secs = ts->seconds, ips = secs > 0 ? ts->position / secs : 0.0;
    double eta = ips > 0 ? (ts->norder - ts->position) / ips : 0.0;
    char bar[31], num[32], loss[32];
    int fill = batches ? (int)(30.0 * done / batches) : 0;
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
    bar[30] = '\0';
    fprintf(stderr, "\r\033[Kepoch %d/%d [%s] %d/%d  %s img/s  loss %s  ETA %.0f s", epoch + 1, r->m->epochs,
            bar, done, batches, train_group_digits(ips, num, sizeof num),
            train_format_value(ts->position ? ts->loss_sum / ts->position : 0.0, 4, loss, sizeof loss), eta);
    fflush(stderr);
}

static void clear_progress(const Run *r)
{
    if (r->o->progress && !r->o->quiet) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
}

static void csv_row(FILE *f, int epoch, const double v[6])
{
    char s[4][32];
    for (int k = 0; k < 4; k++)
        train_format_value(v[k], 6, s[k], sizeof s[k]);
    fprintf(f, "%d,%s,%s,%s,%s,%.3f,%.1f\n", epoch, s[0], s[1], s[2], s[3], v[4], v[5]);
    fflush(f);
}

/* Opens the CSV only once every input was accepted, and replays a resumed run's earlier epochs into it. */
static int open_csv(Run *r, char *err, size_t errlen)
{
    if (!r->o->metrics)
        return 0;
    if (!(r->csv = fopen(r->o->metrics, "w"))) {
        snprintf(err, errlen, "%s: cannot write: %s", r->o->metrics, strerror(errno));
        return -1;
    }
    fprintf(r->csv, "epoch,train_loss,train_acc,test_loss,test_acc,seconds,images_per_second\n");
    const CkptMetrics *m = &r->metrics;
    for (int i = 0; i < m->n; i++) {
        double v[6] = {m->train_loss[i], m->train_acc[i], m->test_loss[i], m->test_acc[i], m->seconds[i],
                       m->images_per_second[i]};
        csv_row(r->csv, i + 1, v);
    }
    fflush(r->csv);
    return 0;
}

/* ---------------------------------------------------------------- steps and epochs */

/* The signal number that asked the run to stop, or 0; in a shared run the one the ranks last agreed on, so that
 * they all stop after the same step. */
static int stop_requested(const Run *r) { return r->shard ? r->stop : local_stop(r); }

/* "SIGINT", "SIGTERM", else "signal N" (buf). */
static const char *signal_name(int sig, char *buf, size_t len)
{
    if (sig == SIGINT || sig == SIGTERM)
        return sig == SIGINT ? "SIGINT" : "SIGTERM";
    snprintf(buf, len, "signal %d", sig);
    return buf;
}

/* After a non-finite loss: names the first layer whose output holds a NaN or Inf. */
static const char *first_bad_output(const Net *net)
{
    for (int i = 0; i < net->n; i++) {
        const Tensor *y = &net->layers[i].y;
        size_t n = y->data ? tensor_size(y) : 0;
        for (size_t j = 0; j < n; j++)
            if (!isfinite(y->data[j]))
                return net->layers[i].spec->name;
    }
    return NULL;
}

static int diverged(Run *r, int epoch, const char *what, char *err, size_t errlen)
{
    clear_progress(r);
    int step = (r->ts.position + r->ts.batch - 1) / r->ts.batch + 1;
    int kept = access(r->o->out, F_OK) == 0;
    snprintf(err, errlen, "training diverged at epoch %d, step %d: %s; %s%s%s", epoch + 1, step, what,
             kept ? "the last good checkpoint " : "no checkpoint written", kept ? r->o->out : "",
             kept ? " is unchanged" : "");
    return TRAIN_DIVERGED;
}

/* With --profile: the clock now (0.0 without: no clock is read). */
static double lap_start(const Run *r) { return r->o->profile ? prof_now() : 0.0; }

/* With --profile: adds the seconds since *t to phase k and restarts *t. */
static void lap(Run *r, ProfPhase k, double *t)
{
    if (!r->o->profile)
        return;
    double now = prof_now();
    r->prof.phase[k] += now - *t;
    *t = now;
}

/* Whether every parameter and buffer is finite: one pass over the list with no early exit and no allocation,
 * which the compiler vectorises (an exponent of all ones is Inf or NaN). net_check_finite, which names the first
 * bad value, runs only when this fails. */
static int all_finite(const NetParam *ps, int n)
{
    uint32_t bad = 0;
    for (int i = 0; i < n; i++) {
        const float *v = ps[i].p.value;
        for (size_t j = 0; j < ps[i].p.size; j++) {
            uint32_t bits;
            memcpy(&bits, &v[j], sizeof bits);
            bad |= (bits & 0x7f800000u) == 0x7f800000u;
        }
    }
    return !bad;
}

static int train_step(Run *r, int epoch, char *err, size_t errlen)
{
    TrainState *ts = &r->ts;
    int n = ts->norder - ts->position < ts->batch ? ts->norder - ts->position : ts->batch, correct;
    char why[512];
    double t = lap_start(r);
    dataset_batch(&r->train, ts->order, ts->position, n, &r->nz, &r->x, r->labels);
    lap(r, PROF_DATA, &t);
    const Tensor *logits = net_forward(r->net, &r->x, 1);
    r->dlogits.n = n;
    t = lap_start(r);
    float loss = loss_cross_entropy(logits, r->labels, &r->dlogits, &correct);
    lap(r, PROF_LOSS, &t);
    if (!isfinite(loss)) {
        const char *where = first_bad_output(r->net);
        snprintf(why, sizeof why, "the loss is %s%s%s", isnan(loss) ? "nan" : "inf",
                 where ? ", first non-finite output in layer " : "", where ? where : "");
        return diverged(r, epoch, why, err, errlen);
    }
    net_zero_grad(r->net);
    lap(r, PROF_ZERO, &t);
    net_backward(r->net, &r->x, &r->dlogits, NULL);
    t = lap_start(r);
    optim_step(r->opt, ts->lr);
    lap(r, PROF_OPTIM, &t);
    if (!all_finite(r->ps, r->np) && net_check_finite(r->net, why, sizeof why) < 0)
        return diverged(r, epoch, why, err, errlen);
    lap(r, PROF_CHECK, &t);
    ts->loss_sum += (double)loss * n;
    ts->correct += correct;
    ts->position += n;
    r->steps++;
    return TRAIN_OK;
}

/* A step of a shared run: this rank's share of the batch forward and backward, its loss taken over the whole
 * batch's size so that the ranks' gradients add up to the batch's; then the gradients, the losses, the counts and
 * the stop requests summed over the ranks (shard.h) before anyone looks at them, so that every rank decides the
 * same (a non-finite loss on any rank is the batch's loss). A rank whose share is empty still runs the layers. */
static int shared_step(Run *r, int epoch, char *err, size_t errlen)
{
    TrainState *ts = &r->ts;
    int n = ts->norder - ts->position < ts->batch ? ts->norder - ts->position : ts->batch, first, count, correct;
    double sum[SHARD_NSCALARS], t = lap_start(r);
    char why[512];
    shard_slice(r->shard, n, &first, &count);
    dataset_batch(&r->train, ts->order, ts->position + first, count, &r->nz, &r->x, r->labels);
    lap(r, PROF_DATA, &t);
    const Tensor *logits = net_forward(r->net, &r->x, 1);
    r->dlogits.n = count;
    t = lap_start(r);
    double loss = loss_cross_entropy_share(logits, r->labels, n, &r->dlogits, &correct);
    lap(r, PROF_LOSS, &t);
    net_zero_grad(r->net);
    lap(r, PROF_ZERO, &t);
    shard_begin(r->shard, (double[SHARD_NSCALARS]){[SHARD_LOSS] = loss, [SHARD_CORRECT] = correct,
                                                   [SHARD_STOP] = local_stop(r) != 0,
                                                   [SHARD_SIGINT] = local_stop(r) == SIGINT});
    net_backward(r->net, &r->x, &r->dlogits, NULL);
    t = lap_start(r);
    shard_end(r->shard, sum);
    lap(r, PROF_COMM, &t);
    r->stop = sum[SHARD_STOP] > 0 ? (sum[SHARD_SIGINT] > 0 ? SIGINT : SIGTERM) : 0;
    if (!isfinite(sum[SHARD_LOSS])) {
        const char *where = first_bad_output(r->net);
        snprintf(why, sizeof why, "the loss is %s%s%s", isnan(sum[SHARD_LOSS]) ? "nan" : "inf",
                 where ? ", first non-finite output in layer " : "", where ? where : "");
        return diverged(r, epoch, why, err, errlen);
    }
    optim_step(r->opt, ts->lr);
    lap(r, PROF_OPTIM, &t);
    if (!all_finite(r->ps, r->np) && net_check_finite(r->net, why, sizeof why) < 0)
        return diverged(r, epoch, why, err, errlen);
    lap(r, PROF_CHECK, &t);
    ts->loss_sum += sum[SHARD_LOSS];
    ts->correct += (long long)sum[SHARD_CORRECT];
    ts->position += n;
    r->steps++;
    return TRAIN_OK;
}

static int interrupted(Run *r, int epoch, char *err, size_t errlen)
{
    char buf[32];
    const char *name = signal_name(stop_requested(r), buf, sizeof buf);
    if (r->o->stopped_by)
        *r->o->stopped_by = stop_requested(r);
    clear_progress(r);
    if (r->steps == 0) {
        snprintf(err, errlen, "interrupted by %s before any step; nothing saved", name);
        return TRAIN_STOPPED;
    }
    if (r->shard)
        net_sync(r->net);
    if (save(r, err, errlen) < 0)
        return TRAIN_FAILED;
    snprintf(err, errlen, "interrupted by %s at epoch %d, after %d of %d images; saved %s (continue with --resume %s)",
             name, epoch + 1, r->ts.position, r->ts.norder, r->o->out, r->o->out);
    return TRAIN_STOPPED;
}

/* A new epoch's learning rate, order and sums; done just before its first step, so that a run stopped at an
 * epoch boundary saves the state of the boundary (the shuffle stream not yet drawn from). */
static void start_epoch(Run *r, int epoch)
{
    TrainState *ts = &r->ts;
    const ModelSpec *m = r->m;
    ts->lr = sched_lr(&m->sched, m->opt.lr, epoch, m->epochs);
    if (m->data.shuffle)
        dataset_permutation(ts->order, ts->norder, &ts->shuffle_rng);
    else
        for (int i = 0; i < ts->norder; i++)
            ts->order[i] = i;
    ts->loss_sum = 0.0, ts->correct = 0, ts->seconds = 0.0;
}

/* The training phase of one epoch, from ts.position (non-zero when resumed mid-epoch). */
static int train_epoch(Run *r, int epoch, char *err, size_t errlen)
{
    TrainState *ts = &r->ts;
    int fresh = ts->position == 0;
    while (ts->position < ts->norder) {
        if (stop_requested(r))
            return interrupted(r, epoch, err, errlen);
        if (fresh)
            start_epoch(r, epoch), fresh = 0;
        double t0 = now_seconds();
        int rc = r->shard ? shared_step(r, epoch, err, errlen) : train_step(r, epoch, err, errlen);
        double dt = now_seconds() - t0;
        ts->seconds += dt;
        r->prof.step += dt, r->prof.steps++;
        if (rc != TRAIN_OK)
            return rc;
        draw_progress(r, epoch);
    }
    clear_progress(r);
    return TRAIN_OK;
}

static int finish_epoch(Run *r, int epoch, char *err, size_t errlen)
{
    TrainState *ts = &r->ts;
    double test_loss, test_acc, t0 = now_seconds();
    if (r->shard) /* moving statistics each rank kept on its own (batchnorm(sync=false)) are averaged first */
        net_sync(r->net);
    if (evaluate(r->net, &r->test, &r->nz, ts->batch, r->shard ? r->d : NULL, &test_loss, &test_acc, err, errlen) < 0)
        return TRAIN_FAILED;
    double eval_s = now_seconds() - t0;
    r->prof.eval += eval_s, r->prof.eval_images += r->test.count;
    r->prof.eval_batches += (r->test.count + ts->batch - 1) / ts->batch;
    double v[6] = {ts->loss_sum / ts->norder, (double)ts->correct / ts->norder, test_loss, test_acc, ts->seconds,
                   ts->seconds > 0 ? ts->norder / ts->seconds : 0.0};
    if (metrics_append(&r->metrics, v) < 0) {
        snprintf(err, errlen, "out of memory");
        return TRAIN_FAILED;
    }
    if (!r->o->quiet) {
        char num[32], s[4][32];
        for (int k = 0; k < 4; k++)
            train_format_value(v[k], 4, s[k], sizeof s[k]);
        fprintf(r->o->log, "epoch %d/%d  train loss %s acc %s | test loss %s acc %s | %.1f s %s img/s\n", epoch + 1,
                r->m->epochs, s[0], s[1], s[2], s[3], v[4], train_group_digits(v[5], num, sizeof num));
        fflush(r->o->log);
    }
    if (r->csv)
        csv_row(r->csv, epoch + 1, v);
    ts->epoch = epoch + 1, ts->position = 0;
    t0 = now_seconds();
    if (save(r, err, errlen) < 0)
        return TRAIN_FAILED;
    if (r->o->profile && prof_add_epoch(&r->prof, epoch + 1, v[4], eval_s, now_seconds() - t0) < 0) {
        snprintf(err, errlen, "out of memory for the profile");
        return TRAIN_FAILED;
    }
    return TRAIN_OK;
}

static int run_epochs(Run *r, char *err, size_t errlen)
{
    for (int e = r->ts.epoch; e < r->m->epochs; e++) {
        int rc = train_epoch(r, e, err, errlen);
        if (rc == TRAIN_OK)
            rc = finish_epoch(r, e, err, errlen);
        if (rc != TRAIN_OK)
            return rc;
        if (stop_requested(r)) { /* arrived during the evaluation or the save: the epoch is complete and saved */
            char buf[32];
            const char *name = signal_name(stop_requested(r), buf, sizeof buf), *out = r->o->out;
            if (r->o->stopped_by)
                *r->o->stopped_by = stop_requested(r);
            if (e + 1 < r->m->epochs)
                snprintf(err, errlen, "interrupted by %s after epoch %d; saved %s (continue with --resume %s)", name,
                         e + 1, out, out);
            else
                snprintf(err, errlen, "interrupted by %s after the last epoch; saved %s", name, out);
            return TRAIN_STOPPED;
        }
    }
    return TRAIN_OK;
}

/* Everything before the first step, but the metrics file. Returns 0, or -1 with err. */
static int setup(Run *r, char *err, size_t errlen)
{
    const TrainOptions *o = r->o;
    char why[1024];
    if (is_root(r) && ckpt_check_writable(o->out, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s: %s", o->out, why);
        return -1;
    }
    if (setup_data(r, err, errlen) < 0 || setup_net(r, err, errlen) < 0)
        return -1;
    if ((o->init && apply_init(r, o->init, err, errlen) < 0) ||
        (o->resume && apply_resume(r, o->resume, err, errlen) < 0))
        return -1;
    if (r->ts.epoch >= r->m->epochs) {
        snprintf(err, errlen, "%s: already trained for %d epoch%s; ask for more with --epochs", o->resume,
                 r->ts.epoch, r->ts.epoch == 1 ? "" : "s");
        return -1;
    }
    return 0;
}

/* Shared runs, before anything is set up: the ranks train the same model, which they can split. */
static int shared_model(Run *r, char *err, size_t errlen)
{
    int ranks = dist_size(r->d), batch = r->m->data.batch;
    if (shard_check_same(r->d, shard_hash_model(r->m, r->o->test_limit),
                         "model (the .bnn text, or a flag that changes the training)", err, errlen) < 0)
        return -1;
    if (batch < ranks) { /* the same on every rank: they hold the same model */
        snprintf(err, errlen, "a batch of %d image%s cannot be split across %d ranks: each rank needs at least one "
                              "image of every batch (raise the model's batch, or start fewer ranks)",
                 batch, batch == 1 ? "" : "s", ranks);
        return -1;
    }
    return 0;
}

/* Shared runs, after the setup: whether every rank managed it (else rank 0 says why) and holds the same data
 * and starting state; and whether one was already asked to stop. */
static int shared_setup(Run *r, int st, char *err, size_t errlen)
{
    if (dist_agree(r->d, st < 0, err, errlen) != 0 ||
        shard_check_same(r->d, shard_hash_data(&r->train, &r->test),
                         "data set (the images, the labels or their number)", err, errlen) < 0)
        return -1;
    r->ts.net_rng = r->net->rng;
    if (shard_check_same(r->d, shard_hash_state(r->ps, r->np, r->opt, &r->ts),
                         r->o->resume || r->o->init ? "starting point (the checkpoint of --resume or --init)"
                                                    : "initial state",
                         err, errlen) < 0)
        return -1;
    agree_stop(r);
    return 0;
}

TrainStatus train_run(ModelSpec *m, const TrainOptions *o, char *err, size_t errlen)
{
    Run r = {.m = m, .o = o, .d = o->dist && dist_size(o->dist) > 1 ? o->dist : NULL};
    int rc = TRAIN_FAILED, st;
    if (r.d && shared_model(&r, err, errlen) < 0)
        goto done;
    st = setup(&r, err, errlen);
    if (r.d)
        st = shared_setup(&r, st, err, errlen);
    if (st < 0)
        goto done;
    st = is_root(&r) ? open_csv(&r, err, errlen) : 0; /* only once every input was accepted */
    if (r.d && dist_agree(r.d, st < 0, err, errlen) != 0)
        st = -1;
    if (st < 0)
        goto done;
    rc = run_epochs(&r, err, errlen);
    if (r.shard) {
        Comm *c = dist_comm(r.d);
        r.prof.ranks = dist_size(r.d), r.prof.library = dist_library(r.d);
        r.prof.layer_comm = c->seconds, r.prof.layer_comm_calls = c->calls;
        r.prof.grad_bytes = shard_bytes(r.shard), r.prof.buckets = shard_buckets(r.shard);
    }
    if (o->profile && r.steps > 0 && is_root(&r)) /* also after an interrupt or a divergence */
        prof_print(o->profile_out ? o->profile_out : stderr, &r.prof, r.net, m->data.batch,
                   (r.ts.norder + m->data.batch - 1) / m->data.batch);
done:
    run_free(&r);
    return (TrainStatus)rc;
}

/* ---------------------------------------------------------------- a checkpoint's normaliser */

void train_checkpoint_normalizer(const Ckpt *c, Normalizer *nz) { norm_init(nz, c->data_mean, c->data_std); }
