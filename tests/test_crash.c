/* Crash safety of `bnni train` (docs/checkpoint.md, "Writing"): SIGKILL at seeded random moments, many of them
 * aimed at the checkpoint writes, and after every kill the checkpoint on disk is a complete one -- the last
 * the run saved or the one before it -- holding bit for bit what an uninterrupted run has at that epoch (every
 * tensor, the optimizer, the train state with both RNG streams, every metric but the timings: tests/same_run.h),
 * accepted by `bnni eval`; leftover temporary files never pile up. The next run resumes from it. The test aimed
 * at the saves fails unless a quarter of its kills at least landed in the middle of one.
 * BNNI_KILLS=N sets the kills per test (default 40, 10 under the sanitizers), BNNI_KILL_SEED the seed, and
 * BNNI_CRASH_TRACE=1 prints one line per kill. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/ckpt.h"
#include "tests/same_run.h"
#include "tests/support.h"

#define EPOCHS 4
#define MAX_TEMPS 1 /* a kill mid-write leaves one; the next save removes it before writing its own */
#define HANG_SECONDS 300 /* a bnni run that takes longer is hung (a whole run takes about a second, 5 with ASan) */

static const char model_text[] = "model crash\n"
                                 "data fashion_mnist(batch=128)\n"
                                 "optimizer sgd(lr=0.1, momentum=0.9)\n"
                                 "network {\n"
                                 "    conv2d(6, kernel=5, bias=false)\n    batchnorm\n    sigmoid\n"
                                 "    avgpool(2, stride=2)\n"
                                 "    conv2d(16, kernel=5, bias=false)\n    batchnorm\n    sigmoid\n"
                                 "    avgpool(2, stride=2)\n"
                                 "    flatten\n"
                                 "    dense(120, bias=false)\n    batchnorm\n    sigmoid\n"
                                 "    dense(10)\n"
                                 "}\n";

static char dir[64], model[128], run_dir[128], ckpt[160], err_path[128];

static void setup(void)
{
    support_make_tmpdir(dir, sizeof dir, "crash");
    snprintf(model, sizeof model, "%s/m.bnn", dir);
    snprintf(run_dir, sizeof run_dir, "%s/run", dir); /* holds only the checkpoint and its temporary files */
    snprintf(ckpt, sizeof ckpt, "%s/c.h5", run_dir);
    snprintf(err_path, sizeof err_path, "%s/err.txt", dir);
    cr_assert_eq(mkdir(run_dir, 0755), 0);
    support_write_text(model, model_text);
}

static void teardown(void) { support_remove_tree(dir); }

/* No Criterion timeout, so that BNNI_KILLS=1000 can run for minutes: every bnni run has its own (HANG_SECONDS). */
TestSuite(crash, .init = setup, .fini = teardown);

static int kills_wanted(void)
{
    const char *k = getenv("BNNI_KILLS");
    if (k && atoi(k) > 0)
        return atoi(k);
#if defined(__SANITIZE_ADDRESS__)
    return 10; /* every run is 3-5 times slower */
#else
    return 40;
#endif
}

/* xorshift64*: the kill moments, reproducible from the seed. */
static unsigned long long rng_state;

static double uniform(void)
{
    rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void sleep_for(double s)
{
    struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&t, &t) < 0 && errno == EINTR)
        ;
}

/* ---------------------------------------------------------------- running bnni */

typedef struct Child {
    pid_t pid;
    int fd;         /* its stdout */
    char out[8192]; /* what it printed so far */
    size_t n;
} Child;

/* Starts `bnni train` for `epochs` epochs into out (resuming from it when resume is set), stdout on a pipe,
 * stderr in err_path. */
static void spawn(Child *c, const char *out, int epochs, int resume)
{
    char n[16];
    const char *args[] = {"train", model, "--epochs", n, "--limit", "1024", "--test-limit", "256",
                          "--threads", "1", "--out", out, "--resume", out, NULL};
    if (!resume)
        args[12] = NULL;
    snprintf(n, sizeof n, "%d", epochs);
    memset(c, 0, sizeof *c);
    c->pid = support_spawn(args, &(SupportSpawn){.err_path = err_path}, &c->fd);
}

/* Reads what the child printed, waiting at most `wait` seconds for something; returns 0 at EOF. */
static int pump(Child *c, double wait)
{
    struct pollfd q = {c->fd, POLLIN, 0};
    int ms = wait > 0 ? (int)(wait * 1000) + 1 : 0;
    if (poll(&q, 1, ms) <= 0)
        return 1;
    ssize_t r = read(c->fd, c->out + c->n, sizeof c->out - 1 - c->n);
    if (r > 0)
        c->n += (size_t)r, c->out[c->n] = '\0';
    return r != 0;
}

/* The last epoch the child announced ("epoch K/4 ..."), or 0. */
static int last_epoch_line(const Child *c)
{
    int last = 0, k, total;
    for (const char *p = c->out; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (sscanf(p, "epoch %d/%d ", &k, &total) == 2)
            last = k;
    return last;
}

/* Collects the child's exit; returns its wait status. */
static int reap(Child *c)
{
    int st, open = 1;
    double deadline = now() + HANG_SECONDS;
    while (open && now() < deadline)
        open = pump(c, 1.0);
    if (open)
        kill(c->pid, SIGKILL);
    cr_assert(!open, "bnni train ran for more than %d seconds", HANG_SECONDS);
    close(c->fd);
    cr_assert_eq(waitpid(c->pid, &st, 0), c->pid);
    return st;
}

/* `bnni eval path`: its last line, checked to be a valid result, into line. */
static void eval_line(const char *path, char *line, size_t len)
{
    char cmd[1024], out[128];
    snprintf(out, sizeof out, "%s/eval.txt", dir);
    snprintf(cmd, sizeof cmd, "OMP_WAIT_POLICY=passive timeout -s KILL %d %s eval %s --limit 2000 --threads 1 >%s 2>&1",
             HANG_SECONDS, support_bnni(), path, out);
    int st = system(cmd);
    char *text = support_slurp(out, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "bnni eval %s failed (%d): %s", path, st, text);
    size_t n = strlen(text);
    while (n > 0 && text[n - 1] == '\n')
        text[--n] = '\0';
    const char *last = strrchr(text, '\n') ? strrchr(text, '\n') + 1 : text;
    double loss, acc;
    int images;
    cr_assert(sscanf(last, "test loss %lf accuracy %lf (%d images)", &loss, &acc, &images) == 3 && images == 2000 &&
                  acc >= 0 && acc <= 1 && loss > 0,
              "not a result line: %s", last);
    snprintf(line, len, "%s", last);
    free(text);
}

/* ---------------------------------------------------------------- the reference run */

/* For each epoch e, the checkpoint of an uninterrupted run of e epochs and what `bnni eval` says of it. */
typedef struct Reference {
    Ckpt at[EPOCHS + 1];
    char eval[EPOCHS + 1][128];
    double startup, per_epoch; /* seconds: a run's start (loading the data), and each epoch with its save */
} Reference;

static void make_reference(Reference *ref)
{
    char path[160], err[512];
    double took[EPOCHS + 1];
    for (int e = 1; e <= EPOCHS; e++) {
        snprintf(path, sizeof path, "%s/ref%d.h5", dir, e);
        double t0 = now();
        Child c;
        spawn(&c, path, e, 0);
        int st = reap(&c);
        took[e] = now() - t0;
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0 && last_epoch_line(&c) == e, "reference run: %d, %s", st,
                  c.out);
        cr_assert_eq(ckpt_read(path, &ref->at[e], err, sizeof err), 0, "%s", err);
        eval_line(path, ref->eval[e], sizeof ref->eval[e]);
    }
    ref->per_epoch = (took[EPOCHS] - took[1]) / (EPOCHS - 1);
    ref->per_epoch = ref->per_epoch > 0.01 ? ref->per_epoch : 0.01;
    ref->startup = took[1] > ref->per_epoch ? took[1] - ref->per_epoch : 0.01;
}

static void free_reference(Reference *ref)
{
    for (int e = 1; e <= EPOCHS; e++)
        ckpt_free(&ref->at[e]);
}

/* c holds bit for bit what the uninterrupted run held at its epoch: every tensor, the optimizer's state and step
 * count, the whole train state with both RNG streams, and every metric of every epoch (timings aside:
 * tests/same_run.h). */
static void expect_reference(const Ckpt *c, const Ckpt *r)
{
    char what[64];
    snprintf(what, sizeof what, "after a kill, epoch %d", c->epoch);
    cr_assert(c->has_train_state && c->ts.epoch == c->epoch && c->ts.position == 0, "%s: not an epoch boundary", what);
    cr_assert_eq(c->metrics.n, c->epoch);
    same_run_expect_ckpt(c, r, what);
}

/* ---------------------------------------------------------------- kills */

typedef enum Aim { AIM_ANYWHERE, AIM_AFTER_EPOCH_LINE, AIM_TEMP_FILE } Aim;

typedef struct Tally {
    int kills, mid_write, before_first_save, finished, evals; /* a kill that fails a check ends the test */
    char last_eval_bytes_path[160]; /* a copy of the last checkpoint `bnni eval` accepted */
} Tally;

/* The temporary files in run_dir; *of_pid counts those of pid. */
static int count_temps(pid_t pid, int *of_pid)
{
    DIR *d = opendir(run_dir);
    struct dirent *e;
    char mine[64];
    int n = 0;
    snprintf(mine, sizeof mine, ".c.h5.%d.", (int)pid);
    *of_pid = 0;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, "c.h5"))
            continue;
        cr_assert(strncmp(e->d_name, ".c.h5.", 6) == 0, "unexpected file %s in %s", e->d_name, run_dir);
        n++;
        *of_pid += strncmp(e->d_name, mine, strlen(mine)) == 0;
    }
    if (d)
        closedir(d);
    return n;
}

/* Waits for the moment `aim` asks for, or until the child ends; then SIGKILL. The aimed kills pick one of the
 * run's saves, `target`: the one after the line of epoch target, which is written before that save starts. */
static void kill_at(Child *c, Aim aim, double span, int target)
{
    double deadline = now() + (aim == AIM_ANYWHERE ? span * uniform() : span * 3);
    int alive = 1, mine = 0;
    while (alive && now() < deadline && (aim == AIM_ANYWHERE || last_epoch_line(c) < target))
        alive = pump(c, deadline - now());
    if (aim == AIM_AFTER_EPOCH_LINE && alive)
        sleep_for(0.003 * uniform()); /* composing, writing and syncing a save takes a few ms */
    while (aim == AIM_TEMP_FILE && alive && now() < deadline && (count_temps(c->pid, &mine), !mine)) {
        alive = pump(c, 0);
        sleep_for(0.0001);
    }
    kill(c->pid, SIGKILL);
}

/* Evaluates the checkpoint unless its bytes are those of the last one evaluated (eval is a function of them). */
static void expect_eval(const Reference *ref, int epoch, Tally *t)
{
    size_t a, b;
    char *now_bytes = support_try_slurp(ckpt, &a), *last = support_try_slurp(t->last_eval_bytes_path, &b), line[128];
    int same = last && a == b && memcmp(now_bytes, last, a) == 0;
    if (!same) {
        eval_line(ckpt, line, sizeof line);
        cr_assert_str_eq(line, ref->eval[epoch], "bnni eval of the epoch-%d checkpoint", epoch);
        FILE *f = fopen(t->last_eval_bytes_path, "wb");
        cr_assert(f && fwrite(now_bytes, 1, a, f) == a);
        fclose(f);
        t->evals++;
    }
    free(now_bytes), free(last);
}

/* One run from `start` (0: no checkpoint yet) killed at a moment chosen by aim. Returns the epoch on disk. */
static int kill_once(const Reference *ref, int start, Aim aim, Tally *t)
{
    Child c;
    spawn(&c, ckpt, EPOCHS, start > 0);
    int target = start + 1 + (int)(uniform() * (EPOCHS - start));
    kill_at(&c, aim, 1.2 * (ref->startup + ref->per_epoch * (EPOCHS - start)), target);
    int st = reap(&c), mine, announced = last_epoch_line(&c);
    char *err_text = support_try_slurp(err_path, NULL);
    int finished = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    cr_assert(finished || (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL), "bnni train ended with status %d: %s", st,
              err_text ? err_text : "");
    free(err_text);
    t->kills += !finished, t->finished += finished;
    int temps = count_temps(c.pid, &mine);
    t->mid_write += mine > 0;
    cr_assert(temps <= MAX_TEMPS, "%d temporary files in %s", temps, run_dir);
    Ckpt got;
    char err[1024];
    if (access(ckpt, F_OK) != 0) {
        cr_assert(start == 0 && announced <= 1 && !finished, "the checkpoint vanished (start %d, epoch line %d)",
                  start, announced);
        t->before_first_save++;
        return 0;
    }
    cr_assert_eq(ckpt_read(ckpt, &got, err, sizeof err), 0, "after a kill: %s", err);
    int e = got.epoch, expected = announced ? announced : start;
    cr_assert(e == expected || (announced && e == announced - 1 && e >= start),
              "epoch %d on disk; the run started at %d and announced epoch %d", e, start, announced);
    cr_assert(!finished || e == EPOCHS);
    expect_reference(&got, &ref->at[e]);
    ckpt_free(&got);
    expect_eval(ref, e, t);
    if (getenv("BNNI_CRASH_TRACE"))
        fprintf(stderr, "aim %d start %d target %d announced %d on disk %d mid-write %d finished %d\n", aim, start,
                target, announced, e, mine, finished);
    return e;
}

/* Kill after kill, each run resuming from what the last left; a round that reaches the end starts over. Goes on
 * until `want` kills, of which at least `mid_writes` landed while the run's temporary file existed (a kill in the
 * middle of a save); fails when 4 * want runs do not get there. */
static void kill_many(const char *name, const Aim *aims, int naims, int want, int mid_writes)
{
    const char *seed = getenv("BNNI_KILL_SEED");
    rng_state = seed && strtoull(seed, NULL, 10) ? strtoull(seed, NULL, 10) : 0x9E3779B97F4A7C15ull;
    Reference *ref = calloc(1, sizeof *ref);
    Tally t = {0};
    snprintf(t.last_eval_bytes_path, sizeof t.last_eval_bytes_path, "%s/evaluated.h5", dir);
    make_reference(ref);
    int epoch = 0, i = 0;
    double t0 = now();
    for (; (t.kills < want || t.mid_write < mid_writes) && i < 4 * want; i++) {
        Aim aim = aims[i % naims];
        epoch = kill_once(ref, epoch, aim, &t);
        /* An aimed kill from EPOCHS - 1 always hits the last save: once per round is enough. */
        if (epoch == EPOCHS || (epoch == EPOCHS - 1 && aim != AIM_ANYWHERE)) {
            cr_assert_eq(unlink(ckpt), 0);
            epoch = 0;
        }
    }
    cr_assert(t.kills >= want && t.mid_write >= mid_writes, "%d runs: %d kills, %d of them mid-write (want %d and %d)",
              i, t.kills, t.mid_write, want, mid_writes);
    /* An uninterrupted run to the end: its saves remove whatever a kill left. */
    Child c;
    spawn(&c, ckpt, EPOCHS, epoch > 0);
    int st = reap(&c), mine;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the last run: status %d", st);
    cr_expect_eq(count_temps(c.pid, &mine), 0, "a temporary file outlived the next save");
    fprintf(stderr, "crash/%s: %d kills, every one recovered (%d mid-write, %d before the first save), %d runs "
            "finished first, %d evals, %.1f s\n", name, t.kills, t.mid_write, t.before_first_save, t.finished,
            t.evals, now() - t0);
    free_reference(ref);
    free(ref);
}

Test(crash, sigkill_at_random_moments)
{
    static const Aim aims[] = {AIM_ANYWHERE};
    kill_many("random", aims, 1, kills_wanted(), 0);
}

/* Aimed at the saves: a quarter of the kills at least must land while the temporary file exists (about half do). */
Test(crash, sigkill_during_checkpoint_writes)
{
    static const Aim aims[] = {AIM_TEMP_FILE, AIM_AFTER_EPOCH_LINE};
    int want = kills_wanted();
    kill_many("writes", aims, 2, want, want / 4 > 0 ? want / 4 : 1);
}
