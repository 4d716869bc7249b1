/* Per-layer micro-benchmark of the runtime: LeNet-BN (the reference workload) built by hand at batch 128 on a
 * 1x28x28 input (--batch for another size), timed layer by layer for a training step (forward + backward) and for an evaluation forward,
 * at each thread count asked for. Prints the median milliseconds per batch of every layer and images/s; with --team,
 * only what a task and a barrier of the runtime's team cost (models.sh reports it per model), a write to lines
 * another core holds, and whether the threads' CPUs are cores of their own or share one. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/layer.h"
#include "runtime/net.h"
#include "runtime/threads.h"

static int batch = 128; /* --batch */
#define NLAYERS 16
#define MAX_REPS 1000

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* conv2d(6,k5) bn sigmoid avgpool(2,2) conv2d(16,k5) bn sigmoid avgpool(2,2) flatten dense(120) bn sigmoid
 * dense(84) bn sigmoid dense(10), shapes filled through the shape rules. Returns 0 or -1 with err. */
static int lenet_bn(LayerSpec *s, Shape in, char *err, size_t errlen)
{
    static const struct {
        LayerKind kind;
        const char *name, *args;
    } l[NLAYERS] = {
        {LK_CONV2D, "conv1", "out=6 kernel=5"}, {LK_BATCHNORM, "bn1", ""}, {LK_SIGMOID, "sig1", ""},
        {LK_AVGPOOL, "pool1", "kernel=2"},     {LK_CONV2D, "conv2", "out=16 kernel=5"}, {LK_BATCHNORM, "bn2", ""},
        {LK_SIGMOID, "sig2", ""},              {LK_AVGPOOL, "pool2", "kernel=2"},      {LK_FLATTEN, "flat", ""},
        {LK_DENSE, "fc1", "out=120"},          {LK_BATCHNORM, "bn3", ""},              {LK_SIGMOID, "sig3", ""},
        {LK_DENSE, "fc2", "out=84"},           {LK_BATCHNORM, "bn4", ""},              {LK_SIGMOID, "sig4", ""},
        {LK_DENSE, "fc3", "out=10"}};
    for (int i = 0; i < NLAYERS; i++) {
        if (layer_spec_make(&s[i], l[i].kind, l[i].name, l[i].args, err, errlen) < 0)
            return -1;
        s[i].in = in;
        if (layer_out_shape(&s[i], in, &s[i].out, &s[i].nparams, &s[i].nbuffers, err, errlen))
            return -1;
        in = s[i].out;
    }
    return 0;
}

static void fill(float *p, size_t n, unsigned seed, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = lo + (hi - lo) * (float)(seed >> 8) / 16777216.0f;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Seconds of every layer call of one step: fwd[i], bwd[i] (train) or fwd[i] only (eval). The calls are those of
 * net_forward / net_backward, made one by one so that each can be timed. */
static void step(Net *net, const Tensor *x, Tensor *dout, int train, double *fwd, double *bwd)
{
    const Tensor *h = x;
    if (train)
        net_zero_grad(net);
    for (int i = 0; i < net->n; i++) {
        Layer *l = &net->layers[i];
        double t0 = now();
        l->ops->forward(l, h, train);
        fwd[i] = now() - t0;
        h = &l->y;
    }
    if (!train)
        return;
    memcpy(net->layers[net->n - 1].dy.data, dout->data, tensor_size(dout) * sizeof(float));
    for (int i = net->n - 1; i >= 0; i--) {
        Layer *l = &net->layers[i];
        double t0 = now();
        l->ops->backward(l, i ? &net->layers[i - 1].y : x, i ? &net->layers[i - 1].dy : NULL);
        bwd[i] = now() - t0;
    }
}

typedef struct Timing {
    double fwd[NLAYERS], bwd[NLAYERS], eval[NLAYERS]; /* medians, seconds per batch */
    double train_total, eval_total;                   /* medians of the whole step */
} Timing;

static double (*samples)[MAX_REPS]; /* [3 * NLAYERS + 2][reps] */

static void run(Net *net, const Tensor *x, Tensor *dout, int reps, Timing *t)
{
    double fwd[NLAYERS], bwd[NLAYERS];
    for (int r = 0; r < 5; r++) /* warm caches, pages and the thread pool */
        step(net, x, dout, 1, fwd, bwd), step(net, x, dout, 0, fwd, bwd);
    for (int r = 0; r < reps; r++) {
        double tt = 0.0, te = 0.0;
        step(net, x, dout, 1, fwd, bwd);
        for (int i = 0; i < NLAYERS; i++)
            samples[i][r] = fwd[i], samples[NLAYERS + i][r] = bwd[i], tt += fwd[i] + bwd[i];
        step(net, x, dout, 0, fwd, bwd);
        for (int i = 0; i < NLAYERS; i++)
            samples[2 * NLAYERS + i][r] = fwd[i], te += fwd[i];
        samples[3 * NLAYERS][r] = tt, samples[3 * NLAYERS + 1][r] = te;
    }
    for (int i = 0; i < NLAYERS; i++) {
        t->fwd[i] = median(samples[i], reps);
        t->bwd[i] = median(samples[NLAYERS + i], reps);
        t->eval[i] = median(samples[2 * NLAYERS + i], reps);
    }
    t->train_total = median(samples[3 * NLAYERS], reps);
    t->eval_total = median(samples[3 * NLAYERS + 1], reps);
}

static void print(const Net *net, const int *threads, const Timing *t, int nt)
{
    printf("%-7s", "layer");
    for (int j = 0; j < nt; j++)
        printf("  | %dt: fwd ms  bwd ms  eval ms", threads[j]);
    printf("\n");
    for (int i = 0; i < NLAYERS; i++) {
        printf("%-7s", net->layers[i].spec->name);
        for (int j = 0; j < nt; j++)
            printf("  |    %7.3f %7.3f  %7.3f", 1e3 * t[j].fwd[i], 1e3 * t[j].bwd[i], 1e3 * t[j].eval[i]);
        printf("\n");
    }
    for (int j = 0; j < nt; j++) {
        double tr = 0.0, ev = 0.0;
        for (int i = 0; i < NLAYERS; i++)
            tr += t[j].fwd[i] + t[j].bwd[i], ev += t[j].eval[i];
        printf("threads %d: train %.3f ms/batch = %.0f img/s; eval %.3f ms/batch = %.0f img/s\n", threads[j],
               1e3 * t[j].train_total, batch / t[j].train_total, 1e3 * t[j].eval_total, batch / t[j].eval_total);
        /* Robust to a few disturbed steps on a shared machine, where the whole-step median is not. */
        printf("threads %d, sum of layer medians: train %.0f img/s; eval %.0f img/s\n", threads[j], batch / tr,
               batch / ev);
    }
    if (nt == 2)
        printf("scaling %dt/%dt: train %.2fx, eval %.2fx\n", threads[1], threads[0],
               t[0].train_total / t[1].train_total, t[0].eval_total / t[1].eval_total);
}

static int usage(void)
{
    fprintf(stderr, "usage: layer_bench [--reps N] [--threads A[,B]] [--batch N] | --team\n"
                    "  --reps N         timed steps per thread count, median reported (default 200, max 1000)\n"
                    "  --batch N        images per batch (default 128, the reference workload's)\n"
                    "  --threads A,B    thread counts to time (default 1,2)\n"
                    "  --team           only the cost of a team task and of a barrier at every usable core, of\n"
                    "                   rewriting 100 KB another core has just read, and how much of a core's\n"
                    "                   arithmetic each thread gets when all run at once\n");
    return 2;
}

/* --team: what one sync between the cores costs on this machine now, the bound on a small model's scaling (a
 * step of mlp_sigmoid_bn is some thirty tasks and as many barriers). The same VM measured 0.19 us a task and 0.08 a
 * barrier, and ten minutes later 0.98 and 0.31: where the host places the virtual CPUs changes that. */
static void empty_task(void *ctx, int t, int T) { (void)ctx, (void)t, (void)T; }

static void barrier_task(void *ctx, int t, int T)
{
    (void)t, (void)T;
    for (int i = 0; i < *(const int *)ctx; i++)
        rt_barrier();
}

/* What the placement costs beyond the syncs: a training step is full of writes to lines the other core has just
 * read (an output the next layer splits otherwise, the weights both threads read and one updates), and each such
 * write must first take the line back from the other core's cache. Thread 1 reads HANDOFF_KB of a buffer, then
 * thread 0 rewrites it (timed); `own`: thread 0 rewrites it with no read in between. */
#define HANDOFF_KB 100
typedef struct Handoff {
    uint32_t *buf;
    size_t n;
    int read;        /* this task: thread 1 reads the buffer (else thread 0 writes it) */
    unsigned round;
    double seconds;  /* the last write's */
} Handoff;

static volatile uint32_t handoff_sink;

static void handoff_task(void *ctx, int t, int T)
{
    Handoff *h = ctx;
    (void)T;
    if (h->read && t == 1) {
        uint32_t acc = 0;
        for (size_t i = 0; i < h->n; i++)
            acc ^= h->buf[i];
        handoff_sink = acc;
    } else if (!h->read && t == 0) {
        double t0 = now();
        for (size_t i = 0; i < h->n; i++)
            h->buf[i] = (uint32_t)i + h->round;
        h->seconds = now() - t0;
    }
}

/* Microseconds thread 0 takes to rewrite HANDOFF_KB, the median of `reps`, after thread 1 read it (shared) or not. */
static double handoff_us(Handoff *h, int T, int shared, int reps)
{
    double *v = malloc((size_t)reps * sizeof *v), m;
    if (!v)
        return -1.0;
    for (int r = 0; r < reps; r++) {
        if (shared)
            h->read = 1, rt_run(T, handoff_task, h);
        h->read = 0, h->round = (unsigned)r;
        rt_run(T, handoff_task, h);
        v[r] = h->seconds * 1e6;
    }
    m = median(v, reps);
    free(v);
    return m;
}

/* What a second core adds to the first's arithmetic. The host may give this VM's two CPUs two physical cores, or
 * the two hyperthreads of one, which then share its multiply and add units: each thread of the team runs the same
 * chains of vector multiply-adds, alone (thread 0) and then all at once, and the ratio is the team's rate over T
 * times the lone thread's: about 1 on separate cores, near 0.55 on one core's hyperthreads (measured on this VM in
 * both placements), where no compute-bound step can scale. */
#define CRUNCH_ITERS 200000
typedef float Crunch __attribute__((vector_size(64)));
typedef struct CrunchCall {
    double *seconds; /* [T]: each thread's time in the last task */
    int all;         /* every thread computes (else thread 0 alone) */
} CrunchCall;

static volatile float crunch_sink;

static void crunch_task(void *ctx, int t, int T)
{
    CrunchCall *c = ctx;
    Crunch a[8], m, k;
    (void)T;
    if (!c->all && t > 0)
        return;
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 16; j++)
            a[i][j] = (float)(i + j);
    for (int j = 0; j < 16; j++)
        m[j] = 0.999999f, k[j] = 1e-7f;
    double t0 = now();
    for (int r = 0; r < CRUNCH_ITERS; r++)
        for (int i = 0; i < 8; i++)
            a[i] = a[i] * m + k; /* eight independent chains: the units' throughput, not one chain's latency */
    c->seconds[t] = now() - t0;
    float s = 0.0f;
    for (int i = 0; i < 8; i++)
        s += a[i][t % 16];
    crunch_sink = s;
}

/* The median over `reps` of (T threads' work / the slowest one's time) / (T x one thread's work / its time). */
static double compute_ratio(int T, int reps)
{
    double *sec = calloc((size_t)T, sizeof *sec), *v = malloc((size_t)reps * sizeof *v), m = -1.0;
    CrunchCall c = {sec, 0};
    if (sec && v) {
        for (int r = 0; r < reps; r++) {
            double alone, slowest = 0.0;
            c.all = 0, rt_run(T, crunch_task, &c), alone = sec[0];
            c.all = 1, rt_run(T, crunch_task, &c);
            for (int t = 0; t < T; t++)
                slowest = sec[t] > slowest ? sec[t] : slowest;
            v[r] = slowest > 0.0 ? alone / slowest : 0.0;
        }
        m = median(v, reps);
    }
    free(sec), free(v);
    return m;
}

static int team_probe(void)
{
    enum { BLOCKS = 7, TASKS = 20000, BARRIERS = 100, HANDOFFS = 501 };
    double task[BLOCKS], barrier[BLOCKS];
    int T = rt_usable_cores(), n = BARRIERS;
    Handoff h = {.n = HANDOFF_KB * 1024 / sizeof(uint32_t)};
    rt_set_threads(T);
    for (int b = 0; b < BLOCKS; b++) {
        double t0 = now();
        for (int i = 0; i < TASKS; i++)
            rt_run(T, empty_task, NULL);
        double t1 = now();
        for (int i = 0; i < TASKS / BARRIERS; i++)
            rt_run(T, barrier_task, &n);
        double t2 = now();
        task[b] = (t1 - t0) / TASKS * 1e6;
        barrier[b] = ((t2 - t1) / (TASKS / BARRIERS) * 1e6 - task[b]) / BARRIERS;
    }
    printf("team_threads %d\nteam_task_us %.3f\nteam_barrier_us %.3f\n", T, median(task, BLOCKS),
           median(barrier, BLOCKS));
    if (T >= 2 && (h.buf = calloc(h.n, sizeof *h.buf))) {
        printf("team_write_own_%dkb_us %.2f\n", HANDOFF_KB, handoff_us(&h, T, 0, HANDOFFS));
        printf("team_write_shared_%dkb_us %.2f\n", HANDOFF_KB, handoff_us(&h, T, 1, HANDOFFS));
        free(h.buf);
    }
    if (T >= 2)
        printf("team_compute_ratio %.2f\n", compute_ratio(T, 9));
    return 0;
}

int main(int argc, char **argv)
{
    char err[256];
    LayerSpec specs[NLAYERS];
    Shape in = {3, 1, 28, 28};
    int reps = 200, threads[2] = {1, 2}, nt = 2, rc = 1;
    Net *net = NULL;
    Tensor x = {0}, dout = {0};
    Timing t[2];
    if (argc == 2 && !strcmp(argv[1], "--team"))
        return team_probe();
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            nt = sscanf(argv[++i], "%d,%d", &threads[0], &threads[1]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = atoi(argv[++i]);
        else
            return usage();
    }
    if (reps < 1 || reps > MAX_REPS || batch < 1 || batch > 65536 || nt < 1 || threads[0] < 1 || (nt == 2 && threads[1] < 1))
        return usage();
    samples = malloc(sizeof *samples * (3 * NLAYERS + 2));
    if (!samples || lenet_bn(specs, in, err, sizeof err) || net_create(specs, NLAYERS, in, 1, &net, err, sizeof err) ||
        net_resize(net, batch, err, sizeof err))
        goto fail;
    if (tensor_alloc(&x, batch, 1, 28, 28) || tensor_alloc(&dout, batch, 10, 1, 1)) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    fill(x.data, tensor_size(&x), 1, 0.0f, 1.0f);
    fill(dout.data, tensor_size(&dout), 2, -1.0f / batch, 1.0f / batch);
    for (int j = 0; j < nt; j++) {
        rt_set_threads(threads[j]);
        run(net, &x, &dout, reps, &t[j]);
    }
    print(net, threads, t, nt);
    rc = 0;
fail:
    if (rc)
        fprintf(stderr, "layer_bench: %s\n", err);
    tensor_free(&x), tensor_free(&dout);
    net_free(net);
    free(samples);
    return rc;
}
