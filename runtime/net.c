/* The network: one Layer per LayerSpec, their buffers sized per batch, forward and backward chained through them.
 *
 * Initialisation order (fixed, so one seed always gives the same network): a single init stream, rng_seed(seed),
 * is handed to every layer's create in network order. conv2d and dense draw their weight in memory order
 * ([out, in, kh, kw] / [out, in]), then their bias; batchnorm draws nothing; a residual layer builds its body,
 * in order, from the same stream at its own place in the sequence. Dropout masks come from a second stream,
 * net->rng, seeded with seed ^ NET_STREAM_SALT, so adding a dropout layer changes no initial weight.
 *
 * Residual design: a residual layer's state is a heap-allocated Net of its body (net_init / net_release). The
 * body's layers borrow the top network's net->rng, so one stream (one checkpointed state) drives every mask.
 * Forward: y = body(x) + x; backward: net_backward through the body into dx, then dx += dy. net_params,
 * net_zero_grad and the profile descend into any layer's sub-network (LayerOps.body) without knowing its kind, so
 * the optimizer and the checkpoint walk one flat list in network order.
 *
 * Backward chaining: layer i's backward reads layers[i].dy and writes its input gradient straight into
 * layers[i-1].dy (or the caller's dx for layer 0), so no gradient is copied between layers.
 *
 * Inference (net_infer, LayerPost in layer.h): an eval forward after which no backward comes, so a conv2d or
 * dense applies the batchnorm and the activation that follow it to each image's output itself, and the net skips
 * those two layers (net_forward in eval mode runs them, since a backward needs their outputs). A residual layer
 * runs its body through net_infer too (Layer.inferring). Results are the same bit for bit.
 *
 * Data-parallel runs (comm.h): net_set_comm hands the ranks' Comm to every layer, and a rank whose share of a
 * batch is empty still runs forward and backward over zero images, because its batchnorm layers take part in
 * the ranks' sums; after_backward lets the trainer start summing a layer's gradients as soon as they are final.
 *
 * Profiling (net->prof not NULL): each layer call is timed with CLOCK_MONOTONIC around the same call; a net that
 * is not profiled takes one untaken branch per layer and reads no clock. */
#include "net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "threads.h"

#define NET_STREAM_SALT 0x5DEECE66DA3B9F1Dull

static int shape_eq(Shape a, Shape b)
{
    if (a.rank != b.rank || a.c != b.c)
        return 0;
    return a.rank == 1 || (a.h == b.h && a.w == b.w);
}

/* "layer 'conv1' (line 4)" for error messages. */
static const char *where(const LayerSpec *s, char *buf, size_t len)
{
    if (s->loc.line > 0)
        snprintf(buf, len, "layer '%s' (line %d)", s->name, s->loc.line);
    else
        snprintf(buf, len, "layer '%s'", s->name);
    return buf;
}

int net_check_specs(const LayerSpec *s, int n, Shape in, Shape *out, char *err, size_t errlen)
{
    char w[SPEC_NAME_MAX + 32], a[64], b[64], msg[256];
    for (int i = 0; i < n; i++) {
        Shape o;
        long long np, nb;
        where(&s[i], w, sizeof w);
        if ((unsigned)s[i].kind >= LK_COUNT) {
            snprintf(err, errlen, "%s: unknown layer kind %d", w, (int)s[i].kind);
            return -1;
        }
        if (!shape_eq(s[i].in, in)) {
            snprintf(err, errlen, "%s expects input %s, but receives %s", w, shape_str(s[i].in, a, sizeof a),
                     shape_str(in, b, sizeof b));
            return -1;
        }
        if (layer_out_shape(&s[i], in, &o, &np, &nb, msg, sizeof msg)) {
            /* a body's own error already names its layer */
            snprintf(err, errlen, "%s: %s", w, msg);
            return -1;
        }
        if (!shape_eq(s[i].out, o)) {
            snprintf(err, errlen, "%s records output %s, but its shape rule gives %s", w,
                     shape_str(s[i].out, a, sizeof a), shape_str(o, b, sizeof b));
            return -1;
        }
        in = o;
    }
    *out = in;
    return 0;
}

/* Whether layer l, or a layer of its body, holds a trainable parameter. */
static int trains(Layer *l)
{
    Param p[LAYER_MAX_PARAMS];
    if (l->ops->body) {
        Net *b = l->ops->body(l);
        return b->trained < b->n;
    }
    int m = l->ops->params ? l->ops->params(l, p) : 0;
    for (int j = 0; j < m; j++)
        if (p[j].trainable)
            return 1;
    return 0;
}

/* The layer that reads copies of the input (LayerOps.reads_input_whole), or NULL. */
static Layer *copies_reader(const Net *net)
{
    for (int i = 0; i < net->trained; i++)
        if (!net->layers[i].ops->views_input)
            return NULL;
    return net->trained < net->n && net->layers[net->trained].ops->reads_input_whole ? &net->layers[net->trained]
                                                                                     : NULL;
}

int net_wants_input_copies(const Net *net) { return copies_reader(net) != NULL; }

void net_set_input_copies(Net *net, float *const *copies, int n)
{
    Layer *l = copies_reader(net);
    if (l)
        l->in_copies = n > 1 ? copies : NULL, l->in_ncopies = n > 1 && copies ? n : 0;
}

int net_init(Net *net, const LayerSpec *specs, int n, Shape in, Rng *init, Rng *stream, char *err, size_t errlen)
{
    char w[SPEC_NAME_MAX + 32], msg[256];
    net->layers = NULL;
    net->n = 0;
    net->in = net->out = in;
    net->batch = 0;
    net->trained = 0;
    net->prof = NULL;
    if (n < 0 || (n > 0 && !specs)) {
        snprintf(err, errlen, "a network needs a layer list (got %d layers)", n);
        return -1;
    }
    if (net_check_specs(specs, n, in, &net->out, err, errlen))
        return -1;
    if (n > 0 && !(net->layers = calloc((size_t)n, sizeof *net->layers))) {
        snprintf(err, errlen, "out of memory for %d layers", n);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        Layer *l = &net->layers[i];
        l->ops = layer_ops[specs[i].kind];
        l->spec = &specs[i];
        l->rng = stream;
        net->n = i + 1; /* net_release destroys it even when create fails half-way */
        if (!l->ops->create || l->ops->create(l, init, msg, sizeof msg)) {
            snprintf(err, errlen, "%s: %s", where(&specs[i], w, sizeof w),
                     l->ops->create ? msg : "this layer kind has no implementation");
            return -1;
        }
    }
    while (net->trained < n && !trains(&net->layers[net->trained]))
        net->trained++;
    if (net->trained < n)
        net->layers[net->trained].first_trained = 1;
    return 0;
}

int net_create(const LayerSpec *specs, int n, Shape in, uint64_t seed, Net **out, char *err, size_t errlen)
{
    Rng init;
    Net *net = calloc(1, sizeof *net);
    *out = NULL;
    if (!net) {
        snprintf(err, errlen, "out of memory for the network");
        return -1;
    }
    rng_seed(&init, seed);
    rng_seed(&net->rng, seed ^ NET_STREAM_SALT);
    if (net_init(net, specs, n, in, &init, &net->rng, err, errlen)) {
        net_free(net);
        return -1;
    }
    *out = net;
    return 0;
}

int net_resize(Net *net, int batch, char *err, size_t errlen)
{
    char w[SPEC_NAME_MAX + 32], msg[256];
    if (batch < 1) {
        snprintf(err, errlen, "batch size must be at least 1, got %d", batch);
        return -1;
    }
    if (batch == net->batch)
        return 0;
    net->batch = 0; /* until every layer has its buffers */
    for (int i = 0; i < net->n; i++) {
        Layer *l = &net->layers[i];
        if (l->ops->resize(l, batch, msg, sizeof msg)) {
            snprintf(err, errlen, "%s: %s", where(l->spec, w, sizeof w), msg);
            return -1;
        }
    }
    net->batch = batch;
    return 0;
}

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* Layer i's forward, timed into net->prof[i]. */
static void timed_forward(Net *net, int i, const Tensor *x, int train)
{
    Layer *l = &net->layers[i];
    LayerTime *t = &net->prof[i];
    double t0 = now_seconds();
    l->ops->forward(l, x, train);
    if (train)
        t->fwd += now_seconds() - t0, t->nfwd++;
    else
        t->eval += now_seconds() - t0, t->neval++;
}

/* Eval mode: a layer that takes a LayerPost absorbs the normalisation (batchnorm) and then the activation right
 * after it, either of which may be missing. Fills layer i's post and returns the next layer to run. */
static int absorb(Net *net, int i)
{
    Layer *l = &net->layers[i];
    int j = i + 1;
    l->post = (LayerPost){0};
    if (!l->ops->takes_post)
        return j;
    if (j < net->n && net->layers[j].ops->eval_norm)
        net->layers[j].ops->eval_norm(&net->layers[j], &l->post), j++;
    if (j < net->n && net->layers[j].ops->eval_act)
        l->post.act = net->layers[j].ops->eval_act, j++;
    return j;
}

/* x holds min_n to net->batch images of the network's input shape (net->batch is 0 before any resize). */
static int fits(const Net *net, const Tensor *x, int min_n)
{
    Shape in = net->in;
    int h_in = in.rank == 1 ? 1 : in.h, w_in = in.rank == 1 ? 1 : in.w;
    return net->batch >= 1 && x->n >= min_n && x->n <= net->batch && x->c == in.c && x->h == h_in && x->w == w_in;
}

/* Training: whether layer i writes its activated output straight into layer i + 1's y (LayerOps.takes_train_post),
 * which then does not run; sets layer i's post and fused flag either way. */
static int fuse_train(Net *net, int i)
{
    Layer *l = &net->layers[i], *next = i + 1 < net->n ? &net->layers[i + 1] : NULL;
    l->fused = l->ops->takes_train_post && next && next->ops->grad_from_output && next->ops->eval_act;
    if (l->fused)
        l->post = (LayerPost){.act = next->ops->eval_act, .into = &next->y};
    return l->fused;
}

/* Backward: whether layer i is an activation whose forward layer i - 1 did (fuse_train) and whose backward it can
 * do too (the activation has act_grad); if so, hands it to layer i - 1 through its post. */
static int fuse_grad(Net *net, int i)
{
    Layer *l = &net->layers[i], *prev = i > 0 ? &net->layers[i - 1] : NULL;
    if (!prev || !prev->fused || !l->ops->act_grad)
        return 0;
    prev->post = (LayerPost){.grad = l->ops->act_grad, .into = &l->y, .act_dy = &l->dy};
    return 1;
}

const Tensor *net_forward(Net *net, const Tensor *x, int train)
{
    const Tensor *h = x;
    if (!fits(net, x, 0))
        return NULL;
    for (int i = 0; i < net->n; i++) {
        Layer *l = &net->layers[i];
        int fused = train ? fuse_train(net, i) : (l->fused = 0);
        if (net->prof)
            timed_forward(net, i, h, train);
        else
            l->ops->forward(l, h, train);
        l->post = (LayerPost){0};
        if (fused) { /* the activation's forward, done: only its counts to set */
            Layer *a = &net->layers[++i];
            a->y.n = a->dy.n = h->n;
            a->fused = 0;
        }
        h = &net->layers[i].y;
    }
    return h;
}

const Tensor *net_infer(Net *net, const Tensor *x)
{
    const Tensor *h = x;
    if (!fits(net, x, 1))
        return NULL;
    for (int i = 0, next; i < net->n; i = next) {
        Layer *l = &net->layers[i];
        next = absorb(net, i); /* absorbed layers write no output: l->y stands for theirs */
        l->inferring = 1;
        if (net->prof)
            timed_forward(net, i, h, 0);
        else
            l->ops->forward(l, h, 0);
        l->post = (LayerPost){0};
        l->inferring = 0;
        h = &l->y;
    }
    return h;
}

void net_backward(Net *net, const Tensor *x, const Tensor *dout, Tensor *dx)
{
    Layer *last;
    float *own;
    if (net->n == 0) {
        if (dx)
            memcpy(dx->data, dout->data, tensor_size(x) * sizeof(float));
        return;
    }
    /* The last layer reads its output gradient from dout in place rather than from a copy. */
    last = &net->layers[net->n - 1];
    own = last->dy.data;
    last->dy.data = dout->data;
    for (int i = net->n - 1; i >= 0; i--) {
        Layer *l = &net->layers[i];
        double t0 = net->prof ? now_seconds() : 0.0;
        if (fuse_grad(net, i)) /* the layer before computes this activation's backward as it reads its own dy */
            ;
        else if (dx || i >= net->trained) {
            Tensor *into = i == 0 ? dx : dx || i > net->trained ? &net->layers[i - 1].dy : NULL;
            l->ops->backward(l, i ? &net->layers[i - 1].y : x, into);
        }
        l->post = (LayerPost){0};
        if (net->prof)
            net->prof[i].bwd += now_seconds() - t0, net->prof[i].nbwd++;
        if (net->after_backward)
            net->after_backward(net->after_backward_ctx, i);
    }
    last->dy.data = own;
}

/* Appends the parameters of net (residual bodies flattened) to out from index k, or only counts when out is NULL. */
static int collect(Net *net, NetParam *out, int k)
{
    for (int i = 0; i < net->n; i++) {
        Layer *l = &net->layers[i];
        Param p[LAYER_MAX_PARAMS];
        int m;
        if (l->ops->body) {
            k = collect(l->ops->body(l), out, k);
            continue;
        }
        m = l->ops->params ? l->ops->params(l, p) : 0;
        for (int j = 0; j < m; j++, k++)
            if (out)
                out[k] = (NetParam){l->spec, p[j]};
    }
    return k;
}

int net_params(Net *net, NetParam **out)
{
    int n = collect(net, NULL, 0);
    *out = malloc((size_t)(n > 0 ? n : 1) * sizeof **out);
    if (!*out)
        return -1;
    return collect(net, *out, 0);
}

/* The calling thread's share of every gradient (rt_share, as the optimizer splits them), cleared. */
static void zero_grad(Net *net)
{
    for (int i = 0; i < net->n; i++) {
        Layer *l = &net->layers[i];
        Param p[LAYER_MAX_PARAMS];
        int m;
        if (l->ops->body) {
            zero_grad(l->ops->body(l));
            continue;
        }
        m = l->ops->params ? l->ops->params(l, p) : 0;
        for (int j = 0; j < m; j++) {
            size_t lo, hi;
            rt_share(p[j].grad ? p[j].size : 0, 16, &lo, &hi);
            if (hi > lo)
                memset(p[j].grad + lo, 0, (hi - lo) * sizeof(float));
        }
    }
}

static void zero_grad_task(void *ctx, int t, int T)
{
    (void)t, (void)T;
    zero_grad(ctx);
}

/* Every thread clears the part of each gradient it will update in the optimizer, which is about the part its
 * weight gradients add into. Cleared by one thread, half of those lines had first to come over from that thread's
 * core: mlp_bn at 2 threads, zero_grad 0.024 -> 0.011 ms a step and dense_1's backward 0.179 -> 0.147. */
void net_zero_grad(Net *net) { rt_run(rt_threads(), zero_grad_task, net); }

int net_clone(Net *net, Net **out, char *err, size_t errlen)
{
    NetParam *a = NULL, *b = NULL;
    int n = -1, m = -1;
    if (net_create(net->n ? net->layers[0].spec : NULL, net->n, net->in, 0, out, err, errlen))
        return -1;
    if ((n = net_params(net, &a)) >= 0 && (m = net_params(*out, &b)) == n)
        for (int i = 0; i < n; i++)
            memcpy(b[i].p.value, a[i].p.value, a[i].p.size * sizeof(float));
    free(a), free(b);
    if (n < 0 || m != n) {
        snprintf(err, errlen, "out of memory copying the network");
        net_free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

void net_set_comm(Net *net, Comm *comm)
{
    for (int i = 0; i < net->n; i++) {
        Layer *l = &net->layers[i];
        l->comm = comm;
        if (l->ops->body)
            net_set_comm(l->ops->body(l), comm);
    }
}

void net_sync(Net *net)
{
    for (int i = 0; i < net->n; i++) {
        Layer *l = &net->layers[i];
        if (l->ops->body)
            net_sync(l->ops->body(l));
        else if (l->ops->sync)
            l->ops->sync(l);
    }
}

int net_profile_start(Net *net)
{
    if (!net->prof && net->n > 0 && !(net->prof = calloc((size_t)net->n, sizeof *net->prof)))
        return -1;
    if (net->prof)
        memset(net->prof, 0, (size_t)net->n * sizeof *net->prof);
    for (int i = 0; i < net->n; i++)
        if (net->layers[i].ops->body && net_profile_start(net->layers[i].ops->body(&net->layers[i])) < 0) {
            free(net->prof);
            net->prof = NULL;
            return -1;
        }
    return 0;
}

/* Appends the rows of net at depth d to out from index k, or only counts when out is NULL. */
static int profile_rows(const Net *net, int d, NetProfileRow *out, int k)
{
    for (int i = 0; i < net->n; i++) {
        const Layer *l = &net->layers[i];
        if (out)
            out[k] = (NetProfileRow){l->spec, d, net->prof ? net->prof[i] : (LayerTime){0}};
        k++;
        if (l->ops->body)
            k = profile_rows(l->ops->body((Layer *)l), d + 1, out, k);
    }
    return k;
}

int net_profile_rows(const Net *net, NetProfileRow **out)
{
    int n = profile_rows(net, 0, NULL, 0);
    *out = NULL;
    if (!net->prof && net->n > 0)
        return -1;
    if (!(*out = malloc((size_t)(n > 0 ? n : 1) * sizeof **out)))
        return -1;
    return profile_rows(net, 0, *out, 0);
}

void net_release(Net *net)
{
    for (int i = 0; i < net->n; i++)
        if (net->layers[i].ops->destroy)
            net->layers[i].ops->destroy(&net->layers[i]);
    free(net->layers);
    free(net->prof);
    net->layers = NULL;
    net->prof = NULL;
    net->n = 0;
    net->batch = 0;
}

void net_free(Net *net)
{
    if (!net)
        return;
    net_release(net);
    free(net);
}
