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

#include "data/bundle.h"
#include "data/stream.h"
#include "eval.h"
#include "loss.h"
#include "optim.h"
#include "profile.h"
#include "shard.h"
#include "threads.h"

/* Per-thread copies of the batch (net_wants_input_copies) up to this many threads: each thread converts the whole
 * batch, which takes what one thread's conversion takes (mlp_bn: 6 % of a 1-thread step, 10 % of a 2-thread one),
 * while each thread's share of the first layer shrinks with the team. */
#define TRAIN_MAX_COPIES 8
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

/* ---------------------------------------------------------------- the run */

typedef struct Run {
    ModelSpec *m;
    const TrainOptions *o;
    DataBundle data;     /* training, validation and test items and their normaliser */
    int best_epoch;      /* keep="best": the epoch of the best validation accuracy so far (0: none yet) */
    double best_acc;
    Net *net;
    NetParam *ps;
    int np;
    Optim *opt;
    TrainState ts;       /* ts.order owned */
    CkptMetrics metrics; /* owned */
    Tensor x, dlogits;
    float **copies;      /* ncopies copies of x's values for the net's first layer, copies[0] = x.data; others owned */
    int ncopies;         /* 0: none */
    int *labels;
    FILE *csv;
    long long steps;     /* steps taken by this process */
    double last_draw;    /* progress bar throttle */
    double last_step;    /* seconds the last training step took (rt_adapt's trials), 0 before the first */
    TrainProfile prof;   /* --profile: the phases outside the layers (the net times its layers) */
    Trace *trace;        /* --trace, or a resumed checkpoint's trace; NULL otherwise */
    TraceLog *saved_trace; /* the resumed checkpoint's /trace, owned; NULL when none */
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
    for (int t = 1; t < r->ncopies; t++)
        tensor_zfree(r->copies[t]);
    free(r->copies);
    tensor_free(&r->x), tensor_free(&r->dlogits);
    free(r->labels);
    optim_free(r->opt);
    free(r->ps);
    net_free(r->net);
    free(r->ts.order);
    metrics_free(&r->metrics);
    data_bundle_free(&r->data);
    prof_free(&r->prof);
    trace_free(r->trace);
    trace_log_free(r->saved_trace);
}

/* A shared run streams what it can, so that each rank reads only the items of its shares, and leaves the
 * statistics of `standard` to shared_data. */
static int setup_data(Run *r, char *err, size_t errlen)
{
    int later = r->d && r->m->data.normalize == NORM_STANDARD;
    DataPlan p = {.train = 1, .test = 1, .test_limit = r->o->test_limit, .seed = r->m->seed, .stats = !later,
                  .budget = data_budget(r->o->mem_cap, spec_train_bytes(r->m)), .stream = r->d != NULL};
    return data_bundle_load(&r->m->data, &p, &r->data, err, errlen);
}

/* Shared runs, collective, reached by every rank whatever its status st: whether every rank loaded its data,
 * then the statistics of `standard` normalisation, which rank 0 alone computes (reading every training item once)
 * and hands to the others through a sum to which they add zeros -- the same bits as one process's. */
static int shared_data(Run *r, int st, char *err, size_t errlen)
{
    if (dist_agree(r->d, st < 0, err, errlen) != 0)
        return -1;
    if (r->m->data.normalize != NORM_STANDARD)
        return 0;
    DataBundle *b = &r->data;
    double *mean = NULL, *std = NULL, *buf = NULL;
    int nch = 0;
    st = is_root(r) ? dataset_stats(&b->train, b->train_rows, b->ntrain, &mean, &std, &nch, err, errlen) : 0;
    if (dist_agree(r->d, st < 0, err, errlen) != 0)
        return -1;
    nch = (int)dist_root_u64(r->d, (uint64_t)nch);
    buf = calloc(2 * (size_t)nch, sizeof *buf);
    if (dist_agree(r->d, !buf, err, errlen) != 0) {
        if (!buf)
            snprintf(err, errlen, "out of memory for the data's statistics");
        free(mean), free(std), free(buf);
        return -1;
    }
    for (int k = 0; is_root(r) && k < nch; k++)
        buf[k] = mean[k], buf[nch + k] = std[k];
    dist_sum(r->d, buf, 2 * (size_t)nch, "sharing the data's statistics");
    st = norm_setup(&b->nz, NORM_STANDARD, r->m->data.dtype, r->m->data.shape, nch, buf, buf + nch, err, errlen);
    free(mean), free(std), free(buf);
    return dist_agree(r->d, st < 0, err, errlen) != 0 ? -1 : 0;
}

/* The batch's copies for a team of rt_threads() (net_wants_input_copies), or none. */
static int alloc_copies(Run *r, char *err, size_t errlen)
{
    int T = rt_threads();
    if (T < 2 || T > TRAIN_MAX_COPIES || !net_wants_input_copies(r->net))
        return 0;
    if (!(r->copies = calloc((size_t)T, sizeof *r->copies)))
        goto oom;
    r->copies[0] = r->x.data;
    for (r->ncopies = 1; r->ncopies < T; r->ncopies++)
        if (!(r->copies[r->ncopies] = tensor_zalloc((size_t)local_batch(r) * r->x.c * r->x.h * r->x.w)))
            goto oom;
    return 0;
oom:
    snprintf(err, errlen, "out of memory for copies of a batch of %d images", local_batch(r));
    return -1;
}

/* The copies this step fills and the net's first layer reads: one per thread of the current team, 0 without. */
static int step_copies(const Run *r)
{
    int T = rt_threads();
    return r->ncopies > 1 && T > 1 ? (T < r->ncopies ? T : r->ncopies) : 0;
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
    ts->norder = r->data.ntrain;
    ts->batch = m->data.batch;
    ts->order = malloc((size_t)ts->norder * sizeof *ts->order);
    if (!ts->order || eval_alloc_batch(r->net, local_batch(r), &r->x, &r->dlogits, &r->labels) < 0) {
        snprintf(err, errlen, "out of memory for batches of %d images", local_batch(r));
        return -1;
    }
    if (net_resize(r->net, local_batch(r), err, errlen) < 0 || alloc_copies(r, err, errlen) < 0)
        return -1;
    if (r->d && shard_create(r->d, r->net, r->ps, r->np, &r->shard, err, errlen) < 0)
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
    if (c->has_data && c->validation != r->data.nval) {
        snprintf(why, len, "was trained with %lld items held out for validation, this run holds out %d (use the "
                 "same validation and --limit)", c->validation, r->data.nval);
        return -1;
    }
    if (c->ts.norder != r->data.ntrain) {
        snprintf(why, len, "was trained on %d images per epoch, this run has %d (use the same --limit)",
                 c->ts.norder, r->data.ntrain);
        return -1;
    }
    if (c->ts.batch != r->m->data.batch) {
        snprintf(why, len, "was trained with batch %d, the model now says %d", c->ts.batch, r->m->data.batch);
        return -1;
    }
    return 0;
}

/* --resume, first half, before the data (whose validation split its seed chooses): the checkpoint, read here or
 * the caller's when it read it already (given, taken), with every tensor finite. */
static int read_resume(const char *path, Ckpt *given, Ckpt *c, char *err, size_t errlen)
{
    char why[8192];
    int rc = given ? 0 : ckpt_read(path, c, why, sizeof why);
    if (given)
        *c = *given, memset(given, 0, sizeof *given);
    if (rc == 0 && (rc = ckpt_check_finite(c, NULL, why, sizeof why)) < 0)
        ckpt_free(c);
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", path, why);
    return rc;
}

/* The best validation accuracy in a resumed run's history, for keep="best". */
static void best_so_far(Run *r)
{
    const CkptMetrics *m = &r->metrics;
    for (int i = 0; m->has_val && i < m->n; i++)
        if (r->best_epoch == 0 || m->val_acc[i] > r->best_acc)
            r->best_epoch = i + 1, r->best_acc = m->val_acc[i];
}

/* --resume, second half: the checkpoint's order, sums, RNG streams and history replace the fresh ones. Takes c. */
static int apply_resume(Run *r, const char *path, Ckpt *c, char *err, size_t errlen)
{
    char why[8192];
    int rc = check_resume(r, c, why, sizeof why);
    if (rc == 0)
        rc = ckpt_apply_params(c, r->ps, r->np, why, sizeof why);
    if (rc == 0)
        rc = ckpt_apply_optim(c, &r->m->opt, r->opt, r->ps, r->np, why, sizeof why);
    if (rc == 0) {
        free(r->ts.order);
        r->ts = c->ts, c->ts.order = NULL;
        r->metrics = c->metrics;
        memset(&c->metrics, 0, sizeof c->metrics);
        r->net->rng = r->ts.net_rng;
        best_so_far(r);
        r->saved_trace = (TraceLog *)c->trace, c->trace = NULL; /* continued by start_trace */
        if (!r->o->quiet)
            fprintf(r->o->log, "resuming %s at epoch %d, image %d of %d\n", path, r->ts.epoch + 1, r->ts.position,
                    r->ts.norder);
    }
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", path, why);
    ckpt_free(c);
    return rc;
}

/* Saves the run to path. */
static int save_to(Run *r, const char *path, char *err, size_t errlen)
{
    Ckpt c;
    char why[1024];
    const Normalizer *nz = &r->data.nz; /* ts.net_rng is set by save_as */
    int rc = ckpt_build(&c, r->m, r->ps, r->np, r->opt, &r->ts, &r->metrics, nz->mean, nz->std, r->ts.epoch, why,
                        sizeof why);
    if (rc == 0 && r->trace)
        c.trace = trace_log(r->trace);
    if (rc == 0 && (rc = ckpt_add_data(&c, &r->m->data, r->data.limit, r->data.nval, nz->nch,
                                       nz->nch == 1 ? &nz->mean : nz->means, nz->nch == 1 ? &nz->std : nz->stds,
                                       why, sizeof why)) < 0)
        ckpt_free(&c);
    if (rc == 0) {
        rc = ckpt_write(path, &c, why, sizeof why);
        ckpt_free(&c);
    }
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", path, why);
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

/* Alone: writes the checkpoint at path. Shared: every rank first checks that it holds the state rank 0 is about
 * to write (replicas that drifted apart would otherwise go unnoticed), rank 0 writes, and every rank learns how
 * that went and whether any was asked to stop meanwhile. Collective in a shared run. */
static int save_as(Run *r, const char *path, char *err, size_t errlen)
{
    r->ts.net_rng = r->net->rng;
    if (!r->shard)
        return save_to(r, path, err, errlen);
    if (shard_check_same(r->d, shard_hash_state(r->ps, r->np, r->opt, &r->ts),
                         "state after the same steps (parameters, moving statistics or optimizer): the ranks have "
                         "drifted apart, as ranks whose CPUs or builds compute other bits do",
                         err, errlen) < 0)
        return -1;
    int rc = is_root(r) ? save_to(r, path, err, errlen) : 0;
    if (dist_agree(r->d, rc < 0, err, errlen) != 0)
        return -1;
    agree_stop(r);
    return 0;
}

static int save(Run *r, char *err, size_t errlen)
{
    int rc = save_as(r, r->o->out, err, errlen);
    if (rc == 0 && r->o->saved_epoch)
        *r->o->saved_epoch = r->ts.epoch;
    return rc;
}

/* `every=N`: the checkpoint of epoch N beside the main one, "run.h5" -> "run.epochN.h5". Returns buf. */
static const char *epoch_path(const char *out, int epoch, char *buf, size_t len)
{
    const char *dot = strrchr(out, '.');
    int stem = dot && !strchr(dot, '/') ? (int)(dot - out) : (int)strlen(out);
    snprintf(buf, len, "%.*s.epoch%d%s", stem, out, epoch, dot && !strchr(dot, '/') ? dot : ".h5");
    return buf;
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

/* A loss or accuracy for the CSV: empty when there is none (NaN: no test set). */
static const char *csv_value(double v, char *buf, size_t len)
{
    if (isnan(v))
        buf[0] = '\0';
    else
        train_format_value(v, 6, buf, len);
    return buf;
}

/* One row: v = train_loss, train_acc, test_loss, test_acc, seconds, images/s; val = val_loss, val_acc or NULL. */
static void csv_row(FILE *f, int epoch, const double v[6], const double *val)
{
    char s[6][32];
    for (int k = 0; k < 4; k++)
        csv_value(v[k], s[k], sizeof s[k]);
    fprintf(f, "%d,%s,%s,", epoch, s[0], s[1]);
    if (val)
        fprintf(f, "%s,%s,", csv_value(val[0], s[4], sizeof s[4]), csv_value(val[1], s[5], sizeof s[5]));
    fprintf(f, "%s,%s,%.3f,%.1f\n", s[2], s[3], v[4], v[5]);
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
    int val = r->data.nval > 0;
    fprintf(r->csv, "epoch,train_loss,train_acc,%stest_loss,test_acc,seconds,images_per_second\n",
            val ? "val_loss,val_acc," : "");
    const CkptMetrics *m = &r->metrics;
    for (int i = 0; i < m->n; i++) {
        double v[6] = {m->train_loss[i], m->train_acc[i], m->test_loss[i], m->test_acc[i], m->seconds[i],
                       m->images_per_second[i]};
        double vl[2] = {m->has_val ? m->val_loss[i] : NAN, m->has_val ? m->val_acc[i] : NAN};
        csv_row(r->csv, i + 1, v, val ? vl : NULL);
    }
    fflush(r->csv);
    return 0;
}

/* ---------------------------------------------------------------- steps and epochs */

/* The signal number that asked the run to stop, or 0. */
static int stop_requested(const Run *r) { return r->shard ? r->stop : local_stop(r); }

/* "SIGINT", "SIGTERM", else "signal N" (buf). */
static const char *signal_name(int sig, char *buf, size_t len)
{
    if (sig == SIGINT || sig == SIGTERM)
        return sig == SIGINT ? "SIGINT" : "SIGTERM";
    snprintf(buf, len, "signal %d", sig);
    return buf;
}

/* After a non-finite loss: names the first layer whose output holds a NaN or Inf. A layer fused with the
 * activation after it (layer.h) left its output in the activation's y: its NaN and Inf show there (an activation
 * makes none of finite values), so it is named before the activation. */
static const char *first_bad_output(const Net *net)
{
    for (int i = 0; i < net->n; i++) {
        const Tensor *y = &net->layers[i + net->layers[i].fused].y;
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

/* Whether every buffer (moving statistics: the optimizer checks the parameters it updates) is finite;
 * net_check_finite, which names the first bad value, runs only when a check fails. */
static int buffers_finite(const NetParam *ps, int n)
{
    int bad = 0;
    for (int i = 0; i < n; i++)
        if (!ps[i].p.grad)
            bad |= tensor_nonfinite(ps[i].p.value, ps[i].p.size);
    return !bad;
}

/* A non-finite loss (of the whole batch) stops the run, naming the first layer whose output is not finite. */
static int loss_diverged(Run *r, int epoch, double loss, char *err, size_t errlen)
{
    char why[512];
    const char *where = first_bad_output(r->net);
    snprintf(why, sizeof why, "the loss is %s%s%s", isnan(loss) ? "nan" : "inf",
             where ? ", first non-finite output in layer " : "", where ? where : "");
    return diverged(r, epoch, why, err, errlen);
}

/* The end of every step, alone or shared, once the gradients are the batch's: the optimizer's update, the
 * non-finite check of every parameter, and the epoch's running sums (loss_sum: the batch's summed loss). */
static int update(Run *r, int epoch, double loss_sum, long long correct, int n, char *err, size_t errlen)
{
    TrainState *ts = &r->ts;
    char why[512];
    double t = lap_start(r);
    int finite = optim_step(r->opt, ts->lr);
    lap(r, PROF_OPTIM, &t);
    if (!(finite && buffers_finite(r->ps, r->np)) && net_check_finite(r->net, why, sizeof why) < 0)
        return diverged(r, epoch, why, err, errlen);
    lap(r, PROF_CHECK, &t);
    ts->loss_sum += loss_sum;
    ts->correct += correct;
    ts->position += n;
    r->steps++;
    return TRAIN_OK;
}

/* The training items at positions [start, start + n) of this epoch's order into r->x (and the copies the step's
 * team reads, handed to the net: net_set_input_copies), augmented as the model says. dataset_fill's result. */
static int fill_batch(Run *r, int start, int n, int epoch, char *err, size_t errlen)
{
    const DataSpec *ds = &r->m->data;
    Augment aug = {ds->flip, ds->crop, r->m->seed, epoch};
    int nc = step_copies(r);
    int rc = dataset_fill(&r->data.train, r->data.train_rows, r->ts.order, start, n, &r->data.nz,
                          ds->flip || ds->crop ? &aug : NULL, &r->x, r->copies, nc, r->labels, err, errlen);
    if (rc == 0)
        net_set_input_copies(r->net, r->copies, nc);
    return rc;
}

static int train_step(Run *r, int epoch, char *err, size_t errlen)
{
    TrainState *ts = &r->ts;
    int n = ts->norder - ts->position < ts->batch ? ts->norder - ts->position : ts->batch, correct;
    double t = lap_start(r);
    if (fill_batch(r, ts->position, n, epoch, err, errlen) < 0) {
        clear_progress(r);
        return TRAIN_FAILED;
    }
    lap(r, PROF_DATA, &t);
    const Tensor *logits = net_forward(r->net, &r->x, 1);
    r->dlogits.n = n;
    t = lap_start(r);
    float loss = loss_cross_entropy(logits, r->labels, &r->dlogits, &correct);
    lap(r, PROF_LOSS, &t);
    if (!isfinite(loss))
        return loss_diverged(r, epoch, loss, err, errlen);
    net_zero_grad(r->net);
    lap(r, PROF_ZERO, &t);
    net_backward(r->net, &r->x, &r->dlogits, NULL);
    net_set_input_copies(r->net, NULL, 0);
    /* The next batch's items, on their way during the update. Issued before the forward, they were evicted by the
     * step's traffic before the next fill, which took LeNet-BN as long as with no prefetch at all (73 us). */
    int next = ts->norder - ts->position - n < ts->batch ? ts->norder - ts->position - n : ts->batch;
    t = lap_start(r);
    dataset_prefetch(&r->data.train, r->data.train_rows, ts->order, ts->position + n, next, step_copies(r));
    lap(r, PROF_DATA, &t);
    return update(r, epoch, (double)loss * n, correct, n, err, errlen);
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
    shard_slice(r->shard, n, &first, &count);
    int bad = fill_batch(r, ts->position + first, count, epoch, err, errlen) < 0;
    /* Only a streamed set can fail to read (in memory, a fill cannot fail): then every rank learns of any rank's
     * failure, and all stop together, at the cost of one small sum per step that an in-memory run does not pay. */
    if (r->data.train.stream ? dist_agree(r->d, bad, err, errlen) != 0 : bad) {
        clear_progress(r);
        return TRAIN_FAILED;
    }
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
    net_set_input_copies(r->net, NULL, 0);
    t = lap_start(r);
    shard_end(r->shard, sum);
    lap(r, PROF_COMM, &t);
    r->stop = sum[SHARD_STOP] > 0 ? (sum[SHARD_SIGINT] > 0 ? SIGINT : SIGTERM) : 0;
    if (!isfinite(sum[SHARD_LOSS]))
        return loss_diverged(r, epoch, sum[SHARD_LOSS], err, errlen);
    return update(r, epoch, sum[SHARD_LOSS], (long long)sum[SHARD_CORRECT], n, err, errlen);
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
    if (r->m->keep == KEEP_BEST) { /* the file holds the best epoch: a mid-epoch state must not replace it */
        if (r->best_epoch)
            snprintf(err, errlen, "interrupted by %s at epoch %d, after %d of %d images; %s holds epoch %d, the best "
                     "so far, unchanged (continue from it with --resume %s)", name, epoch + 1, r->ts.position,
                     r->ts.norder, r->o->out, r->best_epoch, r->o->out);
        else
            snprintf(err, errlen, "interrupted by %s at epoch %d, after %d of %d images; nothing saved (keep=\"best\" "
                     "saves complete epochs only)", name, epoch + 1, r->ts.position, r->ts.norder);
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
        rt_adapt(r->last_step); /* between steps: the team the free cores allow, or half of it if faster */
        double t0 = now_seconds();
        int rc = r->shard ? shared_step(r, epoch, err, errlen) : train_step(r, epoch, err, errlen);
        double dt = now_seconds() - t0;
        r->last_step = dt;
        ts->seconds += dt;
        r->prof.step += dt, r->prof.steps++;
        if (rc != TRAIN_OK)
            return rc;
        if (r->trace && trace_step(r->trace, optim_step_count(r->opt), err, errlen) < 0)
            return TRAIN_FAILED;
        draw_progress(r, epoch);
    }
    clear_progress(r);
    return TRAIN_OK;
}

/* The validation and test evaluations after an epoch: loss and accuracy of each, NaN for a set the run lacks. */
static int evaluate_epoch(Run *r, double val[2], double test[2], char *err, size_t errlen)
{
    const DataBundle *b = &r->data;
    int batch = r->ts.batch;
    Dist *d = r->shard ? r->d : NULL; /* shared: each rank evaluates its share of the chunks */
    val[0] = val[1] = test[0] = test[1] = NAN;
    if (r->shard) /* moving statistics each rank kept on its own (batchnorm(sync=false)) are averaged first */
        net_sync(r->net);
    if (b->nval > 0 && eval_rows(r->net, &b->train, b->val_rows, b->nval, &b->nz, batch, d, &val[0], &val[1],
                                     NULL, err, errlen) < 0)
        return -1;
    if (b->test.count > 0 && eval_rows(r->net, &b->test, NULL, b->test.count, &b->nz, batch, d, &test[0],
                                           &test[1], NULL, err, errlen) < 0)
        return -1;
    r->prof.eval_images += b->nval + b->test.count;
    r->prof.eval_batches += (b->nval + batch - 1) / batch + (b->test.count + batch - 1) / batch;
    return 0;
}

/* "epoch 3/10  train loss 0.3158 acc 0.8831 | val loss ... | test loss 0.3531 acc 0.8725 | 1.9 s 31,500 img/s". */
static void epoch_line(Run *r, int epoch, const double v[6], const double val[2], int best)
{
    char num[32], s[6][32];
    for (int k = 0; k < 4; k++)
        train_format_value(v[k], 4, s[k], sizeof s[k]);
    fprintf(r->o->log, "epoch %d/%d  train loss %s acc %s", epoch + 1, r->m->epochs, s[0], s[1]);
    if (r->data.nval > 0)
        fprintf(r->o->log, " | val loss %s acc %s", train_format_value(val[0], 4, s[4], sizeof s[4]),
                train_format_value(val[1], 4, s[5], sizeof s[5]));
    if (r->data.test.count > 0)
        fprintf(r->o->log, " | test loss %s acc %s", s[2], s[3]);
    fprintf(r->o->log, " | %.1f s %s img/s%s\n", v[4], train_group_digits(v[5], num, sizeof num),
            best ? "  (best so far)" : "");
    fflush(r->o->log);
}

/* keep="best": whether this epoch's validation accuracy is the best so far (the first epoch's always is). */
static int is_best(Run *r, int epoch, double val_acc)
{
    if (r->m->keep != KEEP_BEST || !(r->best_epoch == 0 || val_acc > r->best_acc))
        return 0;
    r->best_epoch = epoch + 1, r->best_acc = val_acc;
    return 1;
}

/* The checkpoints of a finished epoch: the main file (every epoch, or with keep="best" the best one), and with
 * every=N the epoch's own file. */
static int save_epoch(Run *r, int epoch, int best, char *err, size_t errlen)
{
    char path[4200];
    if ((r->m->keep == KEEP_LAST || best) && save(r, err, errlen) < 0)
        return -1;
    if (r->m->every > 0 && (epoch + 1) % r->m->every == 0 &&
        save_as(r, epoch_path(r->o->out, epoch + 1, path, sizeof path), err, errlen) < 0)
        return -1;
    return 0;
}

static int finish_epoch(Run *r, int epoch, char *err, size_t errlen)
{
    TrainState *ts = &r->ts;
    double val[2], test[2], t0 = now_seconds();
    if (evaluate_epoch(r, val, test, err, errlen) < 0)
        return TRAIN_FAILED;
    double eval_s = now_seconds() - t0;
    r->prof.eval += eval_s;
    double v[6] = {ts->loss_sum / ts->norder, (double)ts->correct / ts->norder, test[0], test[1], ts->seconds,
                   ts->seconds > 0 ? ts->norder / ts->seconds : 0.0};
    if (metrics_append(&r->metrics, v, r->data.nval > 0 ? val : NULL) < 0) {
        snprintf(err, errlen, "out of memory");
        return TRAIN_FAILED;
    }
    int best = is_best(r, epoch, val[1]);
    if (!r->o->quiet)
        epoch_line(r, epoch, v, val, best);
    if (r->csv)
        csv_row(r->csv, epoch + 1, v, r->data.nval > 0 ? val : NULL);
    ts->epoch = epoch + 1, ts->position = 0;
    t0 = now_seconds();
    if (save_epoch(r, epoch, best, err, errlen) < 0)
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

/* Every file the run may write must be writable, and hold a bnni checkpoint if it exists: the main one and, with
 * every=N, each epoch's. */
static int check_outputs(const Run *r, char *err, size_t errlen)
{
    char why[1024], path[4200];
    if (ckpt_check_writable(r->o->out, why, sizeof why) < 0)
        return snprintf(err, errlen, "%s: %s", r->o->out, why), -1;
    for (int e = r->m->every; r->m->every > 0 && e <= r->m->epochs; e += r->m->every)
        if (ckpt_check_writable(epoch_path(r->o->out, e, path, sizeof path), why, sizeof why) < 0)
            return snprintf(err, errlen, "%s: %s", path, why), -1;
    return 0;
}

/* Everything before the first step, but the metrics file: the outputs checked (by the rank that writes them),
 * the --resume checkpoint read first (its seed chooses the validation items), the data, the network, --init and
 * --resume applied, the trace started. Returns 0, or -1 with err. */
static int setup(Run *r, char *err, size_t errlen)
{
    const TrainOptions *o = r->o;
    Ckpt resume;
    int rc = is_root(r) && check_outputs(r, err, errlen) < 0 ? -1 : 0, have_resume = 0;
    if (rc == 0 && o->resume) {
        rc = read_resume(o->resume, o->resumed, &resume, err, errlen);
        if (rc == 0)
            r->m->seed = resume.seed, have_resume = 1;
    }
    if (rc == 0)
        rc = setup_data(r, err, errlen);
    if (r->d) /* every rank gets here, whatever failed before */
        rc = shared_data(r, rc, err, errlen);
    if (rc == 0)
        rc = setup_net(r, err, errlen) < 0 || (o->init && apply_init(r, o->init, err, errlen) < 0) ? -1 : 0;
    if (have_resume && rc < 0)
        ckpt_free(&resume);
    else if (have_resume)
        rc = apply_resume(r, o->resume, &resume, err, errlen); /* takes resume */
    if (rc < 0)
        return -1;
    if (r->ts.epoch >= r->m->epochs) {
        snprintf(err, errlen, "%s: already trained for %d epoch%s; ask for more with --epochs", o->resume,
                 r->ts.epoch, r->ts.epoch == 1 ? "" : "s");
        return -1;
    }
    if (!o->trace && !r->saved_trace)
        return 0;
    if (r->data.test.count == 0) {
        snprintf(err, errlen, "--trace records on test items, and the data has no test set");
        return -1;
    }
    if (trace_start(o->trace, r->saved_trace, r->net, &r->data.test, &r->data.nz, &r->trace, err, errlen) < 0 ||
        trace_step(r->trace, optim_step_count(r->opt), err, errlen) < 0) /* the record before the first step */
        return -1;
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
        shard_check_same(r->d, shard_hash_data(&r->data.train, &r->data.test),
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

static long long items_read(const Dataset *d) { return d->stream ? stream_items_read(d->stream) : 0; }

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
    long long read0[2] = {items_read(&r.data.train), items_read(&r.data.test)}; /* after the setup's reads */
    rc = run_epochs(&r, err, errlen);
    if (r.data.streamed) {
        r.prof.streamed = 1, r.prof.ntrain = r.data.train.count, r.prof.ntest = r.data.test.count;
        r.prof.read_train = items_read(&r.data.train) - read0[0];
        r.prof.read_test = items_read(&r.data.test) - read0[1];
    }
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
    if (o->resumed) /* not taken: the run stopped before reading it (else it is zeroed, and this frees nothing) */
        ckpt_free(o->resumed);
    run_free(&r);
    return (TrainStatus)rc;
}

/* ---------------------------------------------------------------- a checkpoint's normaliser */

int train_checkpoint_normalizer(const Ckpt *c, const DataSpec *ds, Normalizer *nz, char *err, size_t errlen)
{
    DataNorm kind = strcmp(c->normalize, "standard") == 0 ? NORM_STANDARD
                    : strcmp(c->normalize, "none") == 0   ? NORM_NONE
                                                          : NORM_UNIT;
    if (!c->has_data || c->nnorm <= 1)
        return norm_setup(nz, kind, c->has_data ? c->dtype : DT_U8, ds->shape, 1, &c->data_mean, &c->data_std, err,
                          errlen);
    return norm_setup(nz, kind, c->dtype, ds->shape, c->nnorm, c->data_means, c->data_stds, err, errlen);
}
