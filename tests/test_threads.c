/* Threads (runtime/threads.h): the static shares cover every item once; a training step of a LeNet-BN-shaped
 * network gives the same outputs, input gradient and parameter gradients bit for bit at 1, 2 and 3 threads, and
 * again when repeated (the single-threaded step is checked against finite differences in test_net.c); an
 * evaluation (eval_dataset: whole networks per thread) gives the same loss and accuracy at any thread count,
 * those of one plain eval-mode forward over every image. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <criterion/criterion.h>
#include <time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sched.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/data/dataset.h"
#include "runtime/layer.h"
#include "runtime/loss.h"
#include "runtime/net.h"
#include "runtime/threads.h"
#include "runtime/train.h"
#include "tests/gradcheck.h"
#include "tests/specs.h"

Test(threads, split_covers_every_item_once)
{
    for (int n = 0; n < 40; n++)
        for (int T = 1; T <= 7; T++) {
            int next = 0;
            for (int t = 0; t < T; t++) {
                int lo, hi;
                rt_split(n, t, T, &lo, &hi);
                cr_assert_eq(lo, next, "n %d T %d t %d", n, T, t);
                cr_assert(hi >= lo && hi - lo <= n / T + 1, "n %d T %d t %d: [%d, %d)", n, T, t, lo, hi);
                next = hi;
            }
            cr_assert_eq(next, n);
        }
}

Test(threads, set_and_get)
{
    rt_set_threads(3);
    cr_expect_eq(rt_threads(), 3);
    rt_set_threads(0);
    cr_expect_geq(rt_threads(), 1, "0 means every core");
}

#define L test_layer

/* LeNet-BN's layer kinds on a 1x14x14 input; conv1 padded, conv2 with 9 filters and a stride-2 conv3 so that the
 * kernels' filter, tap and position tails all occur. */
#define NL 15
static Net *lenet(LayerSpec *specs)
{
    char err[256];
    Shape out;
    Net *net;
    LayerSpec s[NL] = {L(LK_CONV2D, "c1", 6, 5, 1, 2),  L(LK_BATCHNORM, "b1", 0, 0, 0, 0), L(LK_SIGMOID, "s1", 0, 0, 0, 0),
                       L(LK_AVGPOOL, "p1", 0, 2, 2, 0), L(LK_CONV2D, "c2", 9, 3, 1, 0),  L(LK_BATCHNORM, "b2", 0, 0, 0, 0),
                       L(LK_SIGMOID, "s2", 0, 0, 0, 0), L(LK_CONV2D, "c3", 7, 3, 2, 1),  L(LK_AVGPOOL, "p2", 0, 3, 1, 1),
                       L(LK_FLATTEN, "f", 0, 0, 0, 0),  L(LK_DENSE, "fc1", 120, 0, 0, 0), L(LK_BATCHNORM, "b3", 0, 0, 0, 0),
                       L(LK_SIGMOID, "s3", 0, 0, 0, 0), L(LK_DENSE, "fc2", 84, 0, 0, 0),  L(LK_DENSE, "fc3", 10, 0, 0, 0)};
    memcpy(specs, s, sizeof s);
    cr_assert(gradcheck_shapes(specs, NL, (Shape){3, 1, 14, 14}, &out, err, sizeof err) == 0, "%s", err);
    cr_assert(net_create(specs, NL, (Shape){3, 1, 14, 14}, 5, &net, err, sizeof err) == 0, "%s", err);
    return net;
}

/* One training step on a fresh network at `threads`; returns the output, dx and every gradient, concatenated
 * (caller frees). */
static float *step(int threads, int batch, size_t *len)
{
    char err[256];
    LayerSpec specs[NL];
    Net *net = lenet(specs);
    NetParam *p;
    Tensor x, dx, dout;
    size_t n = 0, k = 0;
    int np;
    float *all;
    rt_set_threads(threads);
    cr_assert(net_resize(net, batch, err, sizeof err) == 0, "%s", err);
    cr_assert(tensor_alloc(&x, batch, 1, 14, 14) == 0 && tensor_alloc(&dx, batch, 1, 14, 14) == 0 &&
              tensor_alloc(&dout, batch, 10, 1, 1) == 0);
    gradcheck_fill_distinct(&x, 1);
    gradcheck_fill_distinct(&dout, 2);
    np = net_params(net, &p);
    for (int j = 0; j < np; j++)
        n += p[j].p.grad ? p[j].p.size : 0;
    n += tensor_size(&dout) + tensor_size(&x);
    cr_assert((all = malloc(n * sizeof *all)) != NULL);
    net_zero_grad(net);
    const Tensor *y = net_forward(net, &x, 1);
    cr_assert(y != NULL);
    memcpy(all, y->data, tensor_size(&dout) * sizeof(float)), k += tensor_size(&dout);
    net_backward(net, &x, &dout, &dx);
    memcpy(all + k, dx.data, tensor_size(&x) * sizeof(float)), k += tensor_size(&x);
    for (int j = 0; j < np; j++)
        if (p[j].p.grad)
            memcpy(all + k, p[j].p.grad, p[j].p.size * sizeof(float)), k += p[j].p.size;
    *len = k;
    free(p);
    tensor_free(&x), tensor_free(&dx), tensor_free(&dout);
    net_free(net);
    rt_set_threads(0);
    return all;
}

/* 37 images: two full chunks of conv2d's weight gradient and a partial one. */
Test(threads, same_results_at_any_thread_count)
{
    size_t n1, n2, n3, n1b;
    float *a = step(1, 37, &n1), *b = step(2, 37, &n2), *c = step(3, 37, &n3), *d = step(1, 37, &n1b);
    cr_assert(n1 == n2 && n1 == n3 && n1 == n1b);
    cr_expect(memcmp(a, d, n1 * sizeof *a) == 0, "1 thread, run twice");
    for (size_t i = 0; i < n1; i++) {
        cr_assert(memcmp(&a[i], &b[i], sizeof *a) == 0, "value %zu: %a at 1 thread, %a at 2", i, (double)a[i],
                  (double)b[i]);
        cr_assert(memcmp(&a[i], &c[i], sizeof *a) == 0, "value %zu: %a at 1 thread, %a at 3", i, (double)a[i],
                  (double)c[i]);
    }
    free(a), free(b), free(c), free(d);
}

/* 77 images of 1x14x14 with labels in [0, 10): three evaluation chunks and a partial one. */
static void tiny_dataset(Dataset *d)
{
    *d = (Dataset){.count = 77, .shape = {3, 1, 14, 14}, .classes = 10};
    d->pixels = malloc(77 * 196);
    d->labels = malloc(77 * sizeof *d->labels);
    cr_assert(d->pixels && d->labels);
    for (int i = 0; i < 77 * 196; i++)
        d->pixels[i] = (uint8_t)((i * 37 + i / 196 * 11) % 256);
    for (int i = 0; i < 77; i++)
        d->labels[i] = i * 7 % 10;
}

Test(threads, evaluation_same_at_any_thread_count)
{
    char err[256];
    LayerSpec specs[NL];
    Net *net = lenet(specs);
    Dataset d;
    Normalizer nz;
    Tensor x;
    int labels[77], right;
    double loss[4], acc[4];
    tiny_dataset(&d);
    norm_init(&nz, 0.3, 0.4);
    /* training steps first, so that the moving statistics are not the initial 0 and 1 */
    cr_assert(net_resize(net, 77, err, sizeof err) == 0, "%s", err);
    cr_assert(tensor_alloc(&x, 77, 1, 14, 14) == 0);
    dataset_batch(&d, NULL, 0, 77, &nz, &x, labels);
    for (int k = 0; k < 3; k++)
        cr_assert(net_forward(net, &x, 1) != NULL);
    float ref_loss = loss_cross_entropy(net_forward(net, &x, 0), labels, NULL, &right);
    for (int t = 1; t <= 4; t++) {
        rt_set_threads(t);
        cr_assert(eval_dataset(net, &d, &nz, 128, &loss[t - 1], &acc[t - 1], err, sizeof err) == 0, "%s", err);
        cr_expect(loss[t - 1] == loss[0] && acc[t - 1] == acc[0], "%d threads: loss %.9g acc %.9g, 1 thread: %.9g %.9g",
                  t, loss[t - 1], acc[t - 1], loss[0], acc[0]);
    }
    rt_set_threads(0);
    cr_expect(acc[0] == right / 77.0, "accuracy %.6f, one plain forward gives %.6f", acc[0], right / 77.0);
    cr_expect(fabs(loss[0] - ref_loss) <= 1e-5 * fabs(ref_loss), "loss %.9g, one plain forward gives %.9g", loss[0],
              (double)ref_loss);
    tensor_free(&x);
    dataset_free(&d);
    net_free(net);
}

/* Concurrent sgemm calls: at LeNet's fc1 size (batch 128, 256 -> 120) dense splits its products across threads,
 * each calling OpenBLAS at once in builds without AVX2 (the sanitizer build of `make test`; with AVX2 or AVX-512
 * dense runs its own kernels, and this checks their determinism across thread counts instead). An OpenBLAS that is
 * not safe for that (Debian's serial build shares its buffers between calls) gives different numbers from run to
 * run; the pthread build the Makefile links must not. */
Test(threads, concurrent_sgemm_calls_are_deterministic)
{
    char err[256];
    LayerSpec s[1] = {L(LK_DENSE, "fc", 120, 0, 0, 0)};
    Shape out;
    Net *net;
    Tensor x, dout, dx;
    float *first = NULL;
    size_t ny = 128 * 120, ndx = 128 * 256;
    cr_assert(gradcheck_shapes(s, 1, (Shape){1, 256, 1, 1}, &out, err, sizeof err) == 0, "%s", err);
    cr_assert(net_create(s, 1, (Shape){1, 256, 1, 1}, 3, &net, err, sizeof err) == 0, "%s", err);
    cr_assert(net_resize(net, 128, err, sizeof err) == 0, "%s", err);
    cr_assert(tensor_alloc(&x, 128, 256, 1, 1) == 0 && tensor_alloc(&dout, 128, 120, 1, 1) == 0 &&
              tensor_alloc(&dx, 128, 256, 1, 1) == 0);
    gradcheck_fill_distinct(&x, 5);
    gradcheck_fill_distinct(&dout, 6);
    cr_assert((first = malloc((ny + ndx) * sizeof *first)) != NULL);
    for (int rep = 0; rep < 40; rep++) {
        rt_set_threads(rep == 0 ? 1 : 2);
        const Tensor *y = net_forward(net, &x, 1);
        net_backward(net, &x, &dout, &dx);
        if (rep == 0) {
            memcpy(first, y->data, ny * sizeof *first);
            memcpy(first + ny, dx.data, ndx * sizeof *first);
            continue;
        }
        cr_assert(memcmp(first, y->data, ny * sizeof *first) == 0, "run %d: the output differs from 1 thread's", rep);
        cr_assert(memcmp(first + ny, dx.data, ndx * sizeof *first) == 0, "run %d: dx differs from 1 thread's", rep);
    }
    rt_set_threads(0);
    free(first);
    tensor_free(&x), tensor_free(&dout), tensor_free(&dx);
    net_free(net);
}

/* CPU t of the process's allowed set, or -1. */
static int nth_cpu(const cpu_set_t *set, int t)
{
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, set) && t-- == 0)
            return c;
    return -1;
}

/* rt_run's task for the pinning test: thread t checks that it may run on the CPU `want` names for it alone
 * (want->one), or on every allowed CPU. */
typedef struct PinCheck {
    const cpu_set_t *allowed;
    int one;
    atomic_int bad, ran;
} PinCheck;

static void check_pin(void *ctx, int t, int T)
{
    PinCheck *c = ctx;
    cpu_set_t mine;
    (void)T;
    atomic_fetch_add(&c->ran, 1);
    if (sched_getaffinity(0, sizeof mine, &mine) != 0 ||
        (c->one ? CPU_COUNT(&mine) != 1 || !CPU_ISSET(nth_cpu(c->allowed, t), &mine) : !CPU_EQUAL(&mine, c->allowed)))
        atomic_store(&c->bad, 1);
}

/* The default team is every CPU the process may run on, each thread pinned to its own; a smaller team lets them go
 * (every thread may again run anywhere the process may). */
Test(threads, default_team_is_pinned_one_thread_per_allowed_cpu)
{
    cpu_set_t allowed;
    cr_assert(sched_getaffinity(0, sizeof allowed, &allowed) == 0);
    int n = CPU_COUNT(&allowed);
    rt_set_threads(0);
    cr_assert_eq(rt_threads(), n < 256 ? n : 256, "the default is the %d allowed CPUs", n);
    if (n > 256)
        return;
    PinCheck c = {&allowed, 1, 0, 0};
    rt_run(n, check_pin, &c);
    cr_expect_eq(atomic_load(&c.ran), n, "every thread of the team ran the task");
    cr_expect(!atomic_load(&c.bad), "every thread of the default team runs on its own allowed CPU");
    if (n > 1) {
        PinCheck d = {&allowed, 0, 0, 0};
        rt_set_threads(n - 1);
        rt_run(n - 1, check_pin, &d);
        cr_expect(!atomic_load(&d.bad), "a team of %d of %d CPUs is not pinned", n - 1, n);
    }
    rt_set_threads(0);
}

/* The team (rt_run, rt_barrier): each of T threads runs the task once with its own t; what one thread writes before
 * a barrier the others read after it; a task started from inside a task, or from a second program thread while
 * the team is busy, runs alone on its caller; after a fork the child starts a team of its own. */
typedef struct TeamCheck {
    int T, rounds;
    atomic_int calls[8], bad;
    int slot[8];
} TeamCheck;

static void nested(void *ctx, int t, int T)
{
    TeamCheck *c = ctx;
    if (t != 0 || T != 1 || rt_threads() != 1)
        atomic_store(&c->bad, 1);
}

static void team_task(void *ctx, int t, int T)
{
    TeamCheck *c = ctx;
    if ((c->T && T != c->T) || t < 0 || t >= T)
        atomic_store(&c->bad, 1);
    atomic_fetch_add(&c->calls[t], 1);
    for (int r = 0; r < c->rounds; r++) { /* each round, every thread reads its neighbour's value of the round */
        c->slot[t] = r * 8 + t;
        rt_barrier();
        if (c->slot[(t + 1) % T] != r * 8 + (t + 1) % T)
            atomic_store(&c->bad, 1);
        rt_barrier();
    }
    rt_run(T, nested, c);
}

/* Counts the threads that ran and remembers T, for the second caller. */
typedef struct Count {
    atomic_int n, T;
} Count;

static void count_task(void *ctx, int t, int T)
{
    Count *c = ctx;
    (void)t;
    atomic_fetch_add(&c->n, 1);
    atomic_store(&c->T, T);
}

/* Tasks of 3 threads while the main thread runs its own: alone when the team is busy, else the team. Returns
 * (void *)1 when a call did not run exactly T threads. */
static void *second_caller(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        Count c = {0, 0};
        rt_run(3, count_task, &c);
        if (atomic_load(&c.n) != atomic_load(&c.T))
            return (void *)1;
    }
    return NULL;
}

Test(threads, team_runs_each_thread_once_and_barriers_order_writes)
{
    for (int T = 1; T <= 4; T++)
        for (int rep = 0; rep < 200; rep++) {
            TeamCheck c = {.T = T, .rounds = 3};
            rt_run(T, team_task, &c);
            cr_assert(!atomic_load(&c.bad), "T %d rep %d: a thread saw a wrong t, T or neighbour's value", T, rep);
            for (int t = 0; t < T; t++)
                cr_assert_eq(atomic_load(&c.calls[t]), 1, "T %d rep %d: thread %d ran %d times", T, rep, t,
                             atomic_load(&c.calls[t]));
        }
}

Test(threads, a_second_caller_or_a_fork_runs_alone_or_with_its_own_team)
{
    pthread_t other;
    void *other_bad;
    cr_assert(pthread_create(&other, NULL, second_caller, NULL) == 0);
    for (int rep = 0; rep < 2000; rep++) {
        TeamCheck c = {.T = 0, .rounds = 1};
        rt_run(2, team_task, &c);
        int ran = atomic_load(&c.calls[0]) + atomic_load(&c.calls[1]);
        if (atomic_load(&c.bad) || atomic_load(&c.calls[0]) != 1 || ran < 1)
            cr_assert_fail("rep %d: the main thread's task went wrong beside a second caller", rep);
    }
    pthread_join(other, &other_bad);
    cr_expect(other_bad == NULL, "every task of the second caller ran on exactly its T threads");
    pid_t pid = fork();
    if (pid == 0) {
        TeamCheck c = {.T = 2, .rounds = 2};
        rt_run(2, team_task, &c);
        _exit(atomic_load(&c.bad) || atomic_load(&c.calls[1]) != 1 ? 1 : 0);
    }
    int st;
    cr_assert(pid > 0 && waitpid(pid, &st, 0) == pid);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a team of 2 in a forked child");
}

/* rt_adapt's rule: the idle cores, rounded to a whole one, at least 1 and at most what the user's machine allows.
 * One CPU-bound process on two cores leaves one; background noise (0.2 of a core) leaves both. */
Test(threads, team_follows_the_free_cores)
{
    cr_expect_eq(rt_team_for(1.0, 2), 1);
    cr_expect_eq(rt_team_for(1.8, 2), 2);
    cr_expect_eq(rt_team_for(1.3, 2), 1);
    cr_expect_eq(rt_team_for(0.0, 2), 1, "never fewer than one thread");
    cr_expect_eq(rt_team_for(-0.5, 4), 1);
    cr_expect_eq(rt_team_for(7.6, 4), 4, "never more than allowed");
    cr_expect_eq(rt_team_for(2.6, 4), 3);
}

/* rt_adapt's measured trials (rt_trial) on made-up step times: each step takes t_wide with the wide team and
 * t_narrow with the narrow one; the clock moves by each step. Returns the team after `steps` steps and counts the
 * steps run narrow. */
static int run_steps(RtTrial *tr, double *clock, int wide, double t_wide, double t_narrow, int steps, int *narrow)
{
    int T = wide;
    double step = 0.0;
    for (int i = 0; i < steps; i++) {
        T = rt_trial(tr, *clock, step, wide);
        step = T == wide ? t_wide : t_narrow;
        *clock += step;
        *narrow += T != wide;
    }
    return T;
}

Test(threads, trial_keeps_the_faster_team)
{
    RtTrial tr = {0};
    double clock = 100.0;
    int narrow = 0;
    /* one thread twice as fast: after the warm-up and the trial, one thread until the next trial */
    cr_expect_eq(run_steps(&tr, &clock, 2, 2e-4, 1e-4, 60, &narrow), 1);
    cr_expect_eq(run_steps(&tr, &clock, 2, 2e-4, 1e-4, 1000, &narrow), 1, "no new trial within RT_TRIAL_EVERY");
    /* the machine changes (two threads now faster): the next trial, RT_TRIAL_EVERY later, goes back to two */
    clock += RT_TRIAL_EVERY;
    narrow = 0;
    cr_expect_eq(run_steps(&tr, &clock, 2, 1e-4, 2e-4, 60, &narrow), 2);
    cr_expect_leq(narrow, 4, "a clearly slower narrow team is timed 3 steps (and one untimed): %d", narrow);
    /* a narrow team only a little faster (3 %) is not worth switching to */
    RtTrial close = {0};
    narrow = 0;
    cr_expect_eq(run_steps(&close, &clock, 2, 1e-4, 0.97e-4, 60, &narrow), 2);
    /* 4 free cores: the narrow team is 2 */
    RtTrial four = {0};
    cr_expect_eq(run_steps(&four, &clock, 4, 2e-4, 1e-4, 60, &narrow), 2);
}

Test(threads, trial_needs_two_cores_and_restarts_when_they_change)
{
    RtTrial tr = {0};
    double clock = 5.0;
    int narrow = 0;
    cr_expect_eq(run_steps(&tr, &clock, 1, 1e-4, 1e-5, 100, &narrow), 1);
    cr_expect_eq(narrow, 0, "one free core: nothing to try");
    cr_expect_eq(run_steps(&tr, &clock, 2, 2e-4, 1e-4, 60, &narrow), 1, "the cores came back: tried at once");
    cr_expect_eq(rt_trial(&tr, clock, 1e-4, 1), 1);
    cr_expect_eq(rt_trial(&tr, clock, 1e-4, 2), 2, "a change of the free cores starts a new trial, wide first");
}

/* Steps of 0.15 s (a ResNet): 3 timed steps a phase, and the next trial RT_TRIAL_SPACING times the trial's length
 * later, so that timing the slower team costs under 2 % of the run. */
Test(threads, trial_of_long_steps_is_short_and_rare)
{
    RtTrial tr = {0};
    double clock = 0.0;
    int narrow = 0;
    cr_expect_eq(run_steps(&tr, &clock, 2, 0.15, 0.3, 30, &narrow), 2);
    cr_expect_eq(narrow, 4, "3 timed narrow steps and the untimed one: %d", narrow);
    narrow = 0;
    cr_expect_eq(run_steps(&tr, &clock, 2, 0.15, 0.3, 600, &narrow), 2);
    cr_expect_leq(narrow, 8, "over 600 steps (90 s), at most two more trials: %d narrow steps", narrow);
}

/* An explicit count is kept whatever the load: rt_adapt only ever changes a count left to bnni. */
Test(threads, explicit_count_is_not_adapted)
{
    rt_set_threads(2);
    for (int i = 0; i < 3; i++) {
        struct timespec ts = {0, 120 * 1000 * 1000};
        nanosleep(&ts, NULL);
        rt_adapt(0.001);
        cr_expect_eq(rt_threads(), 2);
    }
}
