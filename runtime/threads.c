/* The runtime-wide thread count (see threads.h). OpenMP threads stay parked between the parallel regions of
 * one step (GOMP spins briefly before sleeping), so a region costs a few microseconds, not a thread start. */
#define _GNU_SOURCE /* sched_getaffinity, pthread_setaffinity_np */
#include "threads.h"

#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

void openblas_set_num_threads(int n); /* not in every cblas.h */
/* In OpenBLAS's pthread build only (weak: NULL elsewhere): stops its worker threads. */
int blas_thread_shutdown_(void) __attribute__((weak));

static int nthreads; /* 0: not set yet, every usable core */
static void baseline(void);
static int adaptive; /* the count was left to bnni: rt_adapt may change it */
static int max_threads; /* what rt_adapt may grow the team back to */

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
#pragma omp parallel num_threads(T)
    {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu[omp_get_thread_num() % n], &one);
        pthread_setaffinity_np(pthread_self(), sizeof(cpu_set_t), pinned ? &one : &allowed);
    }
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

/* Inside a parallel region (each thread running whole networks, as evaluation does) every layer runs on its
 * own thread: a nested region would get a team of one anyway, and layers size their shares by this count. */
int rt_threads(void)
{
    if (nthreads == 0)
        rt_set_threads(0);
    return omp_in_parallel() ? 1 : nthreads;
}

int rt_usable_cores(void) { return usable_cores(); }

void rt_share(size_t n, size_t align, size_t *lo, size_t *hi)
{
    size_t blocks = (n + align - 1) / align, t = (size_t)omp_get_thread_num(), T = (size_t)omp_get_num_threads();
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

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
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

void rt_adapt(void)
{
    unsigned long long busy, total;
    static int decisions;
    double self, t = now(), wait = decisions ? RT_ADAPT_SECONDS : RT_ADAPT_FIRST;
    if (!adaptive || max_threads < 2 || t - last < wait || sample(&busy, &total, &self) != 0)
        return;
    int first = last == 0.0;
    last = t;
    decisions += !first;
    unsigned long long db = busy - busy0, dt = total - total0;
    double ds = self - self0;
    busy0 = busy, total0 = total, self0 = self;
    cpu_set_t allowed;
    if (first || dt == 0 || process_cpus(&allowed) != 0)
        return;
    /* Cores' worth of time the others took: what every allowed CPU was busy with, less this process's own. */
    double ncpu = CPU_COUNT(&allowed), per_cpu = (double)dt / ncpu, others = ((double)db - ds) / per_cpu;
    int T = rt_team_for(ncpu - (others > 0 ? others : 0), max_threads);
    if (T != nthreads) {
        nthreads = T;
        place_team(T);
    }
}
