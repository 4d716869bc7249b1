/* The runtime-wide thread count and the team that runs the layers: each batch is split across this many threads,
 * with single-threaded kernels (and a single-threaded OpenBLAS) inside. Work is partitioned statically and every
 * reduction runs in a fixed order, so one seed and one thread count always give bit-identical results. */
#ifndef BNNI_THREADS_H
#define BNNI_THREADS_H

#include <stddef.h>

/* Sets the thread count (n <= 0: every core the process may run on, adapted to the load by rt_adapt) and sets
 * OpenBLAS to 1 thread, since every parallel region of the runtime calls it from inside. Call before a training or
 * evaluation run, not during a step. */
void rt_set_threads(int n);

/* Between steps, when the thread count was left to bnni (rt_set_threads(0)); step is the seconds the last step took
 * (0: none yet). At most every RT_ADAPT_SECONDS, sizes the team to the cores other processes leave free (/proc/stat
 * against this process's own CPU time), so that a busy machine does not make two threads wait on a core they cannot
 * get; within that, keeps the team size that measured faster (rt_trial). Results do not depend on the count. */
void rt_adapt(double step);
#define RT_ADAPT_SECONDS 0.5

/* The team for `free` idle cores of which `max` may be used: free rounded to the nearest whole core, from 1 to max. */
int rt_team_for(double free, int max);

/* Measured trials of the team size, rt_adapt's second rule. Free cores are not the whole story: a small model's step
 * is dozens of tasks of microseconds, each reading what the other core wrote, and when the host makes that crossing
 * dear, two threads lose to one (this VM: mlp_sigmoid_bn 280k img/s on 1 thread and 195k on 2 while a sync between
 * the cores cost 1 us; 280k and 390k while it cost 0.2 us). So after RT_TRIAL_WARMUP steps, and then every
 * RT_TRIAL_EVERY seconds (at least RT_TRIAL_SPACING times as long as the last trial took), rt_trial times some steps
 * with the `wide` team the free cores allow and as many with half of it (the first step after each switch untimed):
 * RT_TRIAL_STEPS, or fewer once they add up to RT_TRIAL_SECONDS, at least 3. It keeps the narrow team when its median
 * step is at most RT_TRIAL_MARGIN of the wide one's; a narrow phase whose 3 first steps are all slower than the wide
 * median ends there. A change of `wide` starts a new trial. */
#define RT_TRIAL_WARMUP 8
#define RT_TRIAL_STEPS 15
#define RT_TRIAL_SECONDS 0.02
#define RT_TRIAL_EVERY 4.0
#define RT_TRIAL_SPACING 50.0
#define RT_TRIAL_MARGIN 0.95

typedef struct RtTrial {
    int calls;         /* steps seen */
    int wide;          /* the wide team of the current trial and choice */
    int phase;         /* 0 between trials, 1 timing the wide team, 2 the narrow one */
    int n;             /* steps timed in this phase (-1: the untimed first step after a switch) */
    int narrow;        /* the last trial found the narrow team faster */
    double start;      /* when this trial started */
    double next;       /* when the next one starts */
    double wide_median;
    double step[RT_TRIAL_STEPS];
} RtTrial;

/* Called between steps with the time now, the seconds the last step took (with the team rt_trial returned before)
 * and the wide team; returns the team for the next step: wide, or wide / 2 (at least 1). tr starts zeroed. */
int rt_trial(RtTrial *tr, double now, double step, int wide);
/* rt_set_threads without pinning any thread to a CPU, for the C library (lib/bnni.c): the threads there are
 * the host program's, whose placement is its own business. */
void rt_set_threads_unpinned(int n);
/* The current thread count (every usable core until rt_set_threads is called); 1 inside a task or an OpenMP parallel
 * region, where the layers run on the calling thread alone. */
int rt_threads(void);
/* The CPUs this process may run on (what rt_set_threads(0) uses). */
int rt_usable_cores(void);

/* A team's task: thread t of T runs it, t = 0 being the thread that called rt_run. */
typedef void (*RtTask)(void *ctx, int t, int T);

/* Runs fn(ctx, t, T) on T threads, t = 0 on the calling thread, and returns when every one has returned. The other
 * T - 1 are parked workers, woken in well under a microsecond while they spin (200 microseconds after their last
 * task) and by a futex after that, so a busy machine does not lose a core to them. With T <= 1, from
 * inside a task, or while another thread of the program is running a team: fn(ctx, 0, 1) on the caller alone,
 * which every task must allow (results never depend on T). */
void rt_run(int T, RtTask fn, void *ctx);

/* Inside a task: returns when every thread of its team has called it (the shares written before are then seen). */
void rt_barrier(void);

/* A range task: thread t of T gets its share [lo, hi) of n items (rt_split). */
typedef void (*RtRange)(void *ctx, int lo, int hi);
/* rt_run over rt_split's shares of n items: T threads (T <= 1: fn(ctx, 0, n) on the caller). */
void rt_for(int n, int T, RtRange fn, void *ctx);

/* The static share [*lo, *hi) of n items for thread t of T: contiguous, sizes differing by at most one. */
static inline void rt_split(int n, int t, int T, int *lo, int *hi)
{
    int q = n / T, r = n % T;
    *lo = t * q + (t < r ? t : r);
    *hi = *lo + q + (t < r);
}

/* Inside a task: the calling thread's share [*lo, *hi) of n items, cut at multiples of `align` items
 * (so that threads write whole cache lines). Every thread's share depends only on n, align and the team size. */
void rt_share(size_t n, size_t align, size_t *lo, size_t *hi);

/* Below this many float operations a layer runs on one thread: even a cheap team start costs a cache line
 * crossing between cores each way, and the data the layer reads would have to cross too. */
#define RT_MIN_PARALLEL 32768

#endif
