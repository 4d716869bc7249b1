/* The runtime-wide thread count (see threads.h). OpenMP threads stay parked between the parallel regions of
 * one step (GOMP spins briefly before sleeping), so a region costs a few microseconds, not a thread start. */
#define _GNU_SOURCE /* sched_getaffinity, pthread_setaffinity_np */
#include "threads.h"

#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

void openblas_set_num_threads(int n); /* not in every cblas.h */
/* In OpenBLAS's pthread build only (weak: NULL elsewhere): stops its worker threads. */
int blas_thread_shutdown_(void) __attribute__((weak));

static int nthreads; /* 0: not set yet, every usable core */

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
    nthreads = n > 0 ? n : usable_cores();
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_)
        blas_thread_shutdown_();
    place_team(nthreads);
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
