/* The runtime-wide thread count, the team of worker threads that runs the layers' tasks, and the adaptation of
 * the team's size to the load (see threads.h). */
#define _GNU_SOURCE /* sched_getaffinity, pthread_setaffinity_np, syscall */
#include "threads.h"

#include <limits.h>
#include <linux/futex.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void openblas_set_num_threads(int n); /* not in every cblas.h */
/* In OpenBLAS's pthread build only (weak: NULL elsewhere): stops its worker threads. */
int blas_thread_shutdown_(void) __attribute__((weak));

static int nthreads; /* 0: not set yet, every usable core */
static void baseline(void);
static int adaptive; /* the count was left to bnni: rt_adapt may change it */
static int max_threads; /* what rt_adapt may grow the team back to */

/* ---- the team ----
 * At the sizes of a training step a layer's share of work is a few microseconds (a 100-unit dense layer on a batch
 * of 60 is 1.2 MFLOP), and a step runs some thirty such tasks. Starting and ending an OpenMP region took 3 us on
 * this project's 2-core machine and a GOMP barrier 1.5 us; here a task costs about two cache lines crossing between
 * the cores (0.3 us): the caller bumps each worker's `go` word, and counts the workers' returns in `done`. */

#define RT_MAX_TEAM 256
#define RT_SPIN_SECONDS 200e-6 /* how long a waiting thread spins before it sleeps in the kernel */

/* A word threads wait on for a change, and how many of them sleep on it (in or about to enter futex_wait). */
typedef struct Signal {
    _Alignas(64) atomic_uint word;
    atomic_int sleepers;
} Signal;

typedef struct Worker {
    Signal go;     /* bumped by the caller for each task this worker takes part in */
    unsigned seen; /* go's value when the worker was started */
    pthread_t tid;
} Worker;

static Worker workers[RT_MAX_TEAM]; /* [0] unused: thread 0 of a team is its caller */
static struct {
    pthread_mutex_t lock; /* held by the thread whose task the team runs, and while workers are started or placed */
    int started;          /* workers 1..started are running */
    RtTask fn;
    void *ctx;
    int T;
    Signal done;                      /* workers that have returned from the current task */
    _Alignas(64) atomic_uint arrived; /* rt_barrier: threads at the current barrier */
    Signal phase;                     /* rt_barrier: barriers passed */
} team = {.lock = PTHREAD_MUTEX_INITIALIZER};

static _Thread_local int my_t, my_T = 1, in_task;
static double spin_seconds = -1.0; /* RT_SPIN_SECONDS, or 0 under OMP_WAIT_POLICY=passive: set by start_workers */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void pause_briefly(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static void futex(atomic_uint *word, int op, unsigned val)
{
    syscall(SYS_futex, word, op | FUTEX_PRIVATE_FLAG, val, NULL, NULL, 0);
}

/* Waits while s->word is `old` and returns its new value: spins for spin_seconds (a waiting thread is then woken
 * within a cache line's crossing), then sleeps in the kernel, so that a thread whose partner lost its core to
 * another process gives its own core back. */
static unsigned wait_while(Signal *s, unsigned old)
{
    unsigned v;
    double since = 0.0;
    for (unsigned spins = 1; (v = atomic_load_explicit(&s->word, memory_order_acquire)) == old; spins++) {
        if (spins % 256) {
            pause_briefly();
            continue;
        }
        if (since == 0.0) {
            since = now();
        } else if (now() - since >= spin_seconds) {
            /* seq_cst here and in signal_add(): either the signaller sees a sleeper or this thread sees the change */
            atomic_fetch_add(&s->sleepers, 1);
            if (atomic_load(&s->word) == old)
                futex(&s->word, FUTEX_WAIT, old);
            atomic_fetch_sub(&s->sleepers, 1);
        }
    }
    return v;
}

/* Adds `add` to s->word and wakes whoever sleeps on it. */
static void signal_add(Signal *s, unsigned add)
{
    atomic_fetch_add(&s->word, add);
    if (atomic_load(&s->sleepers))
        futex(&s->word, FUTEX_WAKE, INT_MAX);
}

static void *worker_main(void *arg)
{
    Worker *w = arg;
    int t = (int)(w - workers);
    for (unsigned seen = w->seen;;) {
        seen = wait_while(&w->go, seen);
        my_t = t, my_T = team.T, in_task = 1;
        team.fn(team.ctx, t, team.T);
        in_task = 0, my_T = 1;
        signal_add(&team.done, 1);
    }
    return NULL;
}

/* In the child of a fork (h5guard reads files in one) no worker exists: they are started again when needed. */
static void team_forked(void)
{
    team.started = 0;
    pthread_mutex_init(&team.lock, NULL);
}

/* The test suite runs two processes at once on two cores and sets OMP_WAIT_POLICY=passive for OpenMP's threads:
 * the team's threads then sleep as soon as they wait too, as OpenMP's would. */
static void team_once(void)
{
    const char *policy = getenv("OMP_WAIT_POLICY");
    spin_seconds = policy && strcasecmp(policy, "passive") == 0 ? 0.0 : RT_SPIN_SECONDS;
    pthread_atfork(NULL, NULL, team_forked);
}

/* With team.lock held: starts workers until n run (they take no signal: those go to the program's threads).
 * Returns how many run, fewer than n when the system would not start more. */
static int start_workers(int n)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_attr_t attr;
    sigset_t all, old;
    pthread_once(&once, team_once);
    if (n > RT_MAX_TEAM - 1)
        n = RT_MAX_TEAM - 1;
    if (team.started >= n || pthread_attr_init(&attr) != 0)
        return team.started;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    while (team.started < n) {
        Worker *w = &workers[team.started + 1];
        w->seen = atomic_load(&w->go.word);
        if (pthread_create(&w->tid, &attr, worker_main, w) != 0)
            break;
        team.started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return team.started;
}

static void alone(RtTask fn, void *ctx)
{
    int t = my_t, T = my_T, in = in_task;
    my_t = 0, my_T = 1, in_task = 1;
    fn(ctx, 0, 1);
    my_t = t, my_T = T, in_task = in;
}

void rt_run(int T, RtTask fn, void *ctx)
{
    if (T <= 1 || in_task || omp_in_parallel() || pthread_mutex_trylock(&team.lock) != 0) {
        alone(fn, ctx);
        return;
    }
    int n = start_workers(T - 1);
    T = n + 1 < T ? n + 1 : T;
    if (T == 1) {
        pthread_mutex_unlock(&team.lock);
        alone(fn, ctx);
        return;
    }
    team.fn = fn, team.ctx = ctx, team.T = T;
    unsigned done = atomic_load_explicit(&team.done.word, memory_order_relaxed), end = done + (unsigned)(T - 1);
    for (int t = 1; t < T; t++)
        signal_add(&workers[t].go, 1);
    my_t = 0, my_T = T, in_task = 1;
    fn(ctx, 0, T);
    in_task = 0, my_T = 1;
    while (done != end)
        done = wait_while(&team.done, done);
    pthread_mutex_unlock(&team.lock);
}

/* The last thread to arrive opens the barrier; what each thread wrote before it is then seen by all (the acq_rel
 * additions chain every thread's writes to the last one's release of `phase`). */
void rt_barrier(void)
{
    if (my_T <= 1)
        return;
    unsigned p = atomic_load_explicit(&team.phase.word, memory_order_acquire);
    if (atomic_fetch_add_explicit(&team.arrived, 1, memory_order_acq_rel) == (unsigned)my_T - 1) {
        atomic_store_explicit(&team.arrived, 0, memory_order_relaxed);
        signal_add(&team.phase, 1);
        return;
    }
    wait_while(&team.phase, p);
}

typedef struct ForCall {
    RtRange fn;
    void *ctx;
    int n;
} ForCall;

static void for_task(void *ctx, int t, int T)
{
    ForCall *c = ctx;
    int lo, hi;
    rt_split(c->n, t, T, &lo, &hi);
    c->fn(c->ctx, lo, hi);
}

void rt_for(int n, int T, RtRange fn, void *ctx)
{
    ForCall c = {fn, ctx, n};
    rt_run(T < n ? T : n, for_task, &c);
}

/* The CPUs this process may run on, read once, before place_team narrows the calling thread's own set to one CPU.
 * Returns 0, or -1 when the system does not say. */
static int process_cpus(cpu_set_t *out)
{
    static cpu_set_t set;
    static int state; /* 0 not read, 1 read, -1 unavailable */
    if (state == 0)
        state = sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0 ? 1 : -1;
    *out = set;
    return state > 0 ? 0 : -1;
}

/* The CPUs this process may run on (as nproc counts them: taskset and cpusets shrink it), else every online one. */
static int usable_cores(void)
{
    cpu_set_t allowed;
    long cores = process_cpus(&allowed) == 0 ? CPU_COUNT(&allowed) : sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 ? (int)(cores < 256 ? cores : 256) : 1;
}

/* When the team is as large as the set of CPUs this process may run on, thread t is pinned to the t-th of them;
 * otherwise (fewer threads, or a team pinned before) every thread may run on any of them again. Unpinned, the
 * two threads of a 30 ms `bnni eval` sometimes shared one CPU for a while: a third of the runs were 25-30 %
 * slower (15 runs: 238k-354k images/s; pinned 348k-357k). Training steps are long enough not to notice. */
static void place_team(int T)
{
    static int pinned;
    static int cpu[CPU_SETSIZE];
    cpu_set_t allowed;
    int n = 0;
    if (process_cpus(&allowed) != 0)
        return;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &allowed))
            cpu[n++] = c;
    if (T != n && !pinned)
        return;
    pinned = T == n;
    pthread_mutex_lock(&team.lock);
    start_workers(T - 1);
    for (int t = 0; t <= team.started; t++) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu[t % n], &one);
        pthread_setaffinity_np(t ? workers[t].tid : pthread_self(), sizeof(cpu_set_t),
                               pinned && t < T ? &one : &allowed);
    }
    pthread_mutex_unlock(&team.lock);
}

/* OpenBLAS runs single-threaded inside our threads. Its pthread build starts a worker per core when it is loaded,
 * and each spins on sched_yield for ~0.1 s after start-up, taking a core from ours: that made a 10,000-image
 * `bnni eval` 2.6x slower. With one BLAS thread they are never used again, so they are stopped here. */
void rt_set_threads(int n)
{
    nthreads = max_threads = n > 0 ? n : usable_cores();
    adaptive = n <= 0;
    if (adaptive)
        baseline();
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_)
        blas_thread_shutdown_();
    place_team(nthreads);
}

void rt_set_threads_unpinned(int n)
{
    nthreads = n > 0 ? n : usable_cores();
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_)
        blas_thread_shutdown_();
}

/* Inside a task (each thread running whole networks, as evaluation does) every layer runs on its own thread: a
 * nested rt_run runs alone anyway, and layers size their shares by this count. */
int rt_threads(void)
{
    if (in_task || omp_in_parallel())
        return 1;
    if (nthreads == 0)
        rt_set_threads(0);
    return nthreads;
}

int rt_usable_cores(void) { return usable_cores(); }

void rt_share(size_t n, size_t align, size_t *lo, size_t *hi)
{
    size_t blocks = (n + align - 1) / align, t = (size_t)my_t, T = (size_t)my_T;
    size_t q = blocks / T, r = blocks % T, b0 = t * q + (t < r ? t : r), b1 = b0 + q + (t < r);
    *lo = b0 * align < n ? b0 * align : n;
    *hi = b1 * align < n ? b1 * align : n;
}

/* ---- adapting to the load ---- */

/* Busy and total jiffies of the CPUs this process may run on (/proc/stat's per-CPU lines), and the process's own
 * CPU time in jiffies; returns 0, or -1 when /proc/stat cannot be read. */
static int sample(unsigned long long *busy, unsigned long long *total, double *self)
{
    cpu_set_t allowed;
    char line[512];
    FILE *f = fopen("/proc/stat", "r");
    struct rusage ru;
    if (!f || process_cpus(&allowed) != 0) {
        if (f)
            fclose(f);
        return -1;
    }
    *busy = *total = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long v[8] = {0};
        int cpu;
        if (strncmp(line, "cpu", 3) != 0 || sscanf(line + 3, "%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0],
                                                   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 5)
            continue;
        if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &allowed))
            continue;
        unsigned long long b = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]; /* user nice system irq softirq steal */
        *busy += b, *total += b + v[3] + v[4];                           /* ... idle iowait */
    }
    fclose(f);
    getrusage(RUSAGE_SELF, &ru);
    double hz = (double)sysconf(_SC_CLK_TCK);
    *self = hz * ((double)ru.ru_utime.tv_sec + 1e-6 * ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
                  1e-6 * ru.ru_stime.tv_usec);
    return 0;
}

int rt_team_for(double free, int max)
{
    int t = (int)(free + 0.5);
    return t < 1 ? 1 : t > max ? max : t;
}

/* The last sample; rt_set_threads takes the first, so that the first decision comes RT_ADAPT_FIRST seconds into a
 * run rather than a whole interval late. */
static double last;
static unsigned long long busy0, total0;
static double self0;
#define RT_ADAPT_FIRST 0.1

static void baseline(void)
{
    if (sample(&busy0, &total0, &self0) == 0)
        last = now();
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_of(const double *v, int n)
{
    double s[RT_TRIAL_STEPS];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

/* Whether a phase of the trial has timed enough steps. */
static int phase_done(const RtTrial *tr)
{
    double sum = 0.0;
    for (int i = 0; i < tr->n; i++)
        sum += tr->step[i];
    return tr->n >= RT_TRIAL_STEPS || (tr->n >= 3 && sum >= RT_TRIAL_SECONDS);
}

/* The narrow team of a trial. */
static int half_of(int wide) { return wide / 2 > 0 ? wide / 2 : 1; }

/* Ends the trial with the narrow team's verdict. */
static int trial_end(RtTrial *tr, double now, int narrow)
{
    double took = now - tr->start;
    tr->narrow = narrow;
    tr->phase = 0;
    tr->next = now + (RT_TRIAL_EVERY > RT_TRIAL_SPACING * took ? RT_TRIAL_EVERY : RT_TRIAL_SPACING * took);
    return narrow ? half_of(tr->wide) : tr->wide;
}

int rt_trial(RtTrial *tr, double now, double step, int wide)
{
    int half = half_of(wide);
    tr->calls++;
    if (wide != tr->wide) /* the free cores changed: what the last trial found no longer holds */
        *tr = (RtTrial){.calls = tr->calls, .wide = wide, .next = now};
    if (wide < 2 || tr->calls <= RT_TRIAL_WARMUP)
        return wide;
    if (tr->phase == 0 && now < tr->next)
        return tr->narrow ? half : wide;
    if (tr->phase == 0) {
        tr->phase = 1, tr->n = -1, tr->start = now;
        return wide;
    }
    if (tr->n >= 0)
        tr->step[tr->n] = step;
    tr->n++;
    if (tr->phase == 2 && tr->n == 3 && tr->step[0] > tr->wide_median && tr->step[1] > tr->wide_median &&
        tr->step[2] > tr->wide_median) /* clearly slower: no need to lose more steps to it */
        return trial_end(tr, now, 0);
    if (!phase_done(tr))
        return tr->phase == 1 ? wide : half;
    if (tr->phase == 1) {
        tr->wide_median = median_of(tr->step, tr->n);
        tr->phase = 2, tr->n = -1;
        return half;
    }
    return trial_end(tr, now, median_of(tr->step, tr->n) <= RT_TRIAL_MARGIN * tr->wide_median);
}

/* The team the free cores allow, decided at most every RT_ADAPT_SECONDS (max_threads until the first decision). */
static int free_team(void)
{
    unsigned long long busy, total;
    static int decisions, team_free;
    double self, t = now(), wait = decisions ? RT_ADAPT_SECONDS : RT_ADAPT_FIRST;
    if (!team_free)
        team_free = max_threads;
    if (t - last < wait || sample(&busy, &total, &self) != 0)
        return team_free;
    int first = last == 0.0;
    last = t;
    decisions += !first;
    unsigned long long db = busy - busy0, dt = total - total0;
    double ds = self - self0;
    busy0 = busy, total0 = total, self0 = self;
    cpu_set_t allowed;
    if (first || dt == 0 || process_cpus(&allowed) != 0)
        return team_free;
    /* Cores' worth of time the others took: what every allowed CPU was busy with, less this process's own. */
    double ncpu = CPU_COUNT(&allowed), per_cpu = (double)dt / ncpu, others = ((double)db - ds) / per_cpu;
    team_free = rt_team_for(ncpu - (others > 0 ? others : 0), max_threads);
    return team_free;
}

void rt_adapt(double step)
{
    static RtTrial trial;
    if (!adaptive || max_threads < 2)
        return;
    int T = rt_trial(&trial, now(), step, free_team());
    if (T != nthreads) {
        nthreads = T;
        place_team(T);
    }
}
