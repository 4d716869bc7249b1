/* Data-parallel training end to end: the MPI build ($BNNI_MPI_BIN, `make run-dist-tests` sets it; without it these
 * tests are skipped) under `mpirun --oversubscribe` with 2 and 3 ranks on this machine, against the plain build
 * ($BNNI) training the same global batch in one process as the reference: the same parameters and metrics to
 * float reduction-order tolerance, the same bits at the same number of ranks, a stop by SIGTERM and a resume at
 * another number of ranks, a killed and a hung rank (each with a deadline: no hang), sync=false, the profile, and
 * every bad input: one message from rank 0, a non-zero exit, no checkpoint. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/ckpt.h"
#include "runtime/data/dataset.h"
#include "tests/support.h"

static char dir[64], model[128];

static void make_dir(void)
{
    support_make_tmpdir(dir, sizeof dir, "dist");
    snprintf(model, sizeof model, "%s/m.bnn", dir);
}

static void remove_dir(void) { support_remove_tree(dir); }

/* The suite (its timeout) is test_dist.c's; each of these tests has its own temporary directory. */
#define MPI_TEST(name) Test(dist, name, .init = make_dir, .fini = remove_dir)

static const char *in_dir(const char *name) { return support_path(dir, name); }

/* The MPI build, or the test is skipped. */
static const char *mpi_bin(void)
{
    const char *b = getenv("BNNI_MPI_BIN");
    if (!b || !*b)
        cr_skip_test("BNNI_MPI_BIN is not set (make run-dist-tests sets it)");
    return b;
}

#define MPIRUN "mpirun --allow-run-as-root --oversubscribe"

/* `mpirun -np RANKS bnni-mpi ARGS` (ARGS formatted like printf), stdout in dir/out.txt, stderr in dir/err.txt;
 * returns mpirun's exit status. */
static int mpirun(int ranks, const char *fmt, ...)
{
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "OMP_WAIT_POLICY=passive " MPIRUN " -np %d %s %s >%s/out.txt 2>%s/err.txt", ranks,
             mpi_bin(), args, dir, dir);
    int st = system(cmd);
    cr_assert(st != -1);
    return support_status(st);
}

/* The same for a command line after mpirun's options (MPMD launches: "-np 1 A : -np 1 B"). */
static int mpirun_raw(const char *fmt, ...)
{
    char args[4096], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "OMP_WAIT_POLICY=passive " MPIRUN " %s >%s/out.txt 2>%s/err.txt", args, dir, dir);
    int st = system(cmd);
    cr_assert(st != -1);
    return support_status(st);
}

/* One process of the plain build (the reference), as support_run. */
#define run(...) support_run(dir, __VA_ARGS__)

static char *out_text(void) { return support_run_out(dir); }
static char *err_text(void) { return support_run_err(dir); }

/* The tests' LeNet-BN (models/lenet_bn.bnn's network) with SGD at lr 0.1 and momentum 0.9 (the seed's lr 1.0 makes
 * two runs whose sums differ in the last bit drift 1e-4 apart within two epochs: docs/distributed.md). */
static void write_model_on(const char *path, const char *data, const char *batchnorm_args)
{
    char text[4096], net[2048];
    const char *p = SUPPORT_LENET_BN_NETWORK;
    size_t n = 0;
    for (const char *q; (q = strstr(p, "batchnorm\n")); p = q + 10) /* batchnorm -> batchnorm(ARGS) */
        n += (size_t)snprintf(net + n, sizeof net - n, "%.*sbatchnorm%s\n", (int)(q - p), p, batchnorm_args);
    snprintf(net + n, sizeof net - n, "%s", p);
    snprintf(text, sizeof text,
             "model lenet_bn\ndata %s\noptimizer sgd(lr=0.1, momentum=0.9)\n"
             "loss cross_entropy\nepochs 2\n%s",
             data, net);
    support_write_text(path, text);
}

static void write_model(const char *path, const char *batchnorm_args)
{
    write_model_on(path, "fashion_mnist(batch=128)", batchnorm_args);
}

/* ---------------------------------------------------------------- comparing runs */

/* Every layer tensor (parameters and moving statistics) of b within tol of a's, relative to the largest magnitude
 * in a's tensor (values near zero carry only the rounding of sums taken in another order), and the last test
 * accuracies within acc_tol. */
static void expect_close_runs(const char *a_path, const char *b_path, double tol, double acc_tol)
{
    Ckpt a, b;
    char err[1024];
    double worst = 0.0;
    const char *where = "";
    cr_assert_eq(ckpt_read(a_path, &a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ckpt_read(b_path, &b, err, sizeof err), 0, "%s", err);
    cr_assert_eq(a.ntensors, b.ntensors);
    for (int i = 0; i < a.ntensors; i++) {
        const CkptTensor *x = &a.tensors[i], *y = &b.tensors[i];
        double big = 0.0, diff = 0.0;
        cr_assert_str_eq(x->path, y->path);
        if (strncmp(x->path, "layers/", 7) != 0)
            continue;
        for (size_t j = 0; j < x->size; j++)
            big = fmax(big, fabs(x->data[j])), diff = fmax(diff, fabs((double)x->data[j] - y->data[j]));
        if (diff > tol * big)
            cr_expect(0, "%s: differs by %.3g, %.3g of its largest value %.3g", x->path, diff, diff / big, big);
        if (big > 0 && diff / big > worst)
            worst = diff / big, where = x->path;
    }
    cr_log_info("%s against %s: largest relative difference %.3g (%s)", b_path, a_path, worst, where);
    cr_assert_eq(a.metrics.n, b.metrics.n);
    int last = a.metrics.n - 1;
    cr_expect(fabs(a.metrics.test_acc[last] - b.metrics.test_acc[last]) <= acc_tol, "test accuracy %.4f against %.4f",
              b.metrics.test_acc[last], a.metrics.test_acc[last]);
    cr_expect_eq(a.epoch, b.epoch);
    cr_expect_eq(a.opt_steps, b.opt_steps);
    ckpt_free(&a);
    ckpt_free(&b);
}

/* Bit for bit: every tensor, the optimizer's steps, the train state and the loss and accuracy history. */
static void expect_same_bits(const char *a_path, const char *b_path)
{
    Ckpt a, b;
    char err[1024];
    cr_assert_eq(ckpt_read(a_path, &a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ckpt_read(b_path, &b, err, sizeof err), 0, "%s", err);
    cr_assert_eq(a.ntensors, b.ntensors);
    for (int i = 0; i < a.ntensors; i++)
        cr_expect_eq(memcmp(a.tensors[i].data, b.tensors[i].data, a.tensors[i].size * sizeof(float)), 0, "%s differs",
                     a.tensors[i].path);
    cr_expect_eq(a.opt_steps, b.opt_steps);
    cr_expect_arr_eq(a.ts.shuffle_rng.s, b.ts.shuffle_rng.s, sizeof a.ts.shuffle_rng.s);
    cr_assert_eq(a.metrics.n, b.metrics.n);
    size_t m = (size_t)a.metrics.n * sizeof(double);
    cr_expect_arr_eq(a.metrics.train_loss, b.metrics.train_loss, m);
    cr_expect_arr_eq(a.metrics.test_loss, b.metrics.test_loss, m);
    cr_expect_arr_eq(a.metrics.test_acc, b.metrics.test_acc, m);
    ckpt_free(&a);
    ckpt_free(&b);
}

static int count_lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* ---------------------------------------------------------------- the same training as one process */

/* The criterion: 2 epochs on 6,000 images, the whole test set; 2 and 3 ranks against one process with
 * the same global batch. Measured here: 6e-6 (2 ranks) and 4e-6 (3 ranks) of each tensor's largest value, the
 * same test accuracy to the last digit. */
MPI_TEST(mpi_two_and_three_ranks_train_as_one_process)
{
    const char *o = "--limit 6000 --threads 1";
    write_model(model, "");
    cr_assert_eq(run("train %s %s --quiet --out %s", model, o, in_dir("one.h5")), 0);
    int st = mpirun(2, "train %s %s --out %s --metrics %s", model, o, in_dir("two.h5"), in_dir("two.csv"));
    char *out = out_text(), *e = err_text();
    cr_assert_eq(st, 0, "%s%s", out, e);
    /* Rank 0 alone prints: two epoch lines and the saved line, no progress bar (not a terminal). */
    cr_expect(strncmp(out, "epoch 1/2 ", 10) == 0 && count_lines_with(out, "\nepoch ") == 1, "stdout: %s", out);
    cr_expect_eq(count_lines_with(out, "saved "), 1, "stdout: %s", out);
    cr_expect_eq(e[0], '\0', "stderr: %s", e);
    free(out), free(e);
    expect_close_runs(in_dir("one.h5"), in_dir("two.h5"), 1e-4, 0.002);
    cr_assert_eq(mpirun(3, "train %s %s --quiet --out %s", model, o, in_dir("three.h5")), 0);
    expect_close_runs(in_dir("one.h5"), in_dir("three.h5"), 1e-4, 0.002);
    char *csv = support_slurp(in_dir("two.csv"), NULL);
    cr_expect_eq(count_lines_with(csv, "\n"), 3, "a header and two epochs: %s", csv);
    free(csv);
}

/* The same ranks give the same bits, at any thread count; 3,073 images leave a last batch of one image, so two of
 * the three ranks hold nothing of it and still take part in every sum; still the one process's training. */
MPI_TEST(mpi_same_ranks_same_bits)
{
    const char *o = "--epochs 1 --limit 3073 --test-limit 2000 --quiet";
    write_model(model, "");
    cr_assert_eq(mpirun(3, "train %s %s --threads 1 --out %s", model, o, in_dir("a.h5")), 0);
    cr_assert_eq(mpirun(3, "train %s %s --threads 2 --out %s", model, o, in_dir("b.h5")), 0);
    expect_same_bits(in_dir("a.h5"), in_dir("b.h5"));
    cr_assert_eq(run("train %s %s --threads 1 --out %s", model, o, in_dir("one.h5")), 0);
    expect_close_runs(in_dir("one.h5"), in_dir("a.h5"), 1e-4, 0.002);
}

/* ---------------------------------------------------------------- processes: starting, stopping, killing */

/* Starts `sh -c "exec mpirun ..."` (mpirun itself gets the pid) with the given environment assignments, stdout in
 * dir/out.txt, stderr in dir/err.txt. */
static pid_t start_mpirun(const char *env, int ranks, const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "exec env OMP_WAIT_POLICY=passive %s " MPIRUN " -np %d %s %s >%s/out.txt 2>%s/err.txt",
             env, ranks, mpi_bin(), args, dir, dir);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* Waits until dir/out.txt holds `needle`, at most `seconds`. */
static int wait_for_output(const char *needle, double seconds)
{
    for (double t0 = now(); now() - t0 < seconds; usleep(20000)) {
        char *o = support_try_slurp(in_dir("out.txt"), NULL);
        int found = o && strstr(o, needle);
        free(o);
        if (found)
            return 1;
    }
    return 0;
}

/* Whether /proc/PID/environ holds the entry `want` (/proc files report no size: read to the end). */
static int has_env(int pid, const char *want)
{
    char path[64], buf[1 << 16];
    size_t n = 0, k;
    snprintf(path, sizeof path, "/proc/%d/environ", pid);
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    while (n < sizeof buf - 1 && (k = fread(buf + n, 1, sizeof buf - 1 - n, f)) > 0)
        n += k;
    fclose(f);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
        if (strcmp(buf + i, want) == 0)
            return 1;
    return 0;
}

/* The pid of rank `rank`, a child of mpirun with OMPI_COMM_WORLD_RANK=rank in its environment, or -1. */
static pid_t rank_pid(pid_t mpirun_pid, int rank)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t found = -1;
    char want[64];
    snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
    while (d && found < 0 && (e = readdir(d))) {
        char path[300], stat[512];
        int pid = atoi(e->d_name), ppid = 0;
        if (pid <= 0)
            continue;
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(stat, 1, sizeof stat - 1, f);
        fclose(f);
        stat[n] = '\0';
        char *rp = strrchr(stat, ')');
        if (!rp || sscanf(rp + 2, "%*c %d", &ppid) != 1 || ppid != mpirun_pid)
            continue;
        if (has_env(pid, want))
            found = pid;
    }
    if (d)
        closedir(d);
    return found;
}

/* Waits at most `seconds` for the child to exit; returns its status as the shell reports it, or -1 (then it and
 * the ranks in pids are killed, so that nothing outlives the test). */
static int wait_exit(pid_t pid, double seconds, const pid_t *ranks, int n)
{
    int st;
    for (double t0 = now(); now() - t0 < seconds; usleep(20000))
        if (waitpid(pid, &st, WNOHANG) == pid)
            return support_status(st);
    kill(pid, SIGKILL);
    for (int i = 0; i < n; i++)
        if (ranks[i] > 0)
            kill(ranks[i], SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

/* Whether every rank process in pids is gone within `seconds` (mpirun may return while they are being reaped). */
static int ranks_gone(const pid_t *pids, int n, double seconds)
{
    for (double t0 = now(); now() - t0 < seconds; usleep(20000)) {
        int alive = 0;
        for (int i = 0; i < n; i++)
            alive += pids[i] > 0 && kill(pids[i], 0) == 0;
        if (!alive)
            return 1;
    }
    for (int i = 0; i < n; i++)
        if (pids[i] > 0)
            kill(pids[i], SIGKILL);
    return 0;
}

/* A run under mpirun with `n` ranks (env: environment assignments, args: bnni's), started and waited for until
 * its first epoch line, and its ranks' pids. */
typedef struct Job {
    pid_t pid, ranks[3];
    int n;
} Job;

static Job start_job(const char *env, int n, const char *args)
{
    Job j = {.pid = start_mpirun(env, n, args), .n = n};
    cr_assert(n <= 3);
    cr_assert(wait_for_output("epoch 1/", 120), "no first epoch within 120 s");
    for (int r = 0; r < n; r++)
        j.ranks[r] = rank_pid(j.pid, r);
    for (int r = 0; r < n; r++)
        cr_assert(j.ranks[r] > 0, "rank %d not found", r);
    return j;
}

/* After `what` happened to the job: mpirun exits within 60 s and its ranks are gone 30 s later (else they are
 * killed and the test fails: nothing outlives it). Returns mpirun's status. */
static int end_job(Job *j, const char *what)
{
    int st = wait_exit(j->pid, 60, j->ranks, j->n);
    cr_assert(st != -1, "mpirun did not exit within 60 s of %s", what);
    cr_expect(ranks_gone(j->ranks, j->n, 30), "ranks still running 30 s after mpirun exited");
    return st;
}

/* Rank 0 said exactly once that the run stopped for the signal `name`, and saved a checkpoint of the run's train
 * state at `ckpt`; its epoch in *epoch. */
static void expect_stopped(const char *name, const char *ckpt, int *epoch)
{
    char *e = err_text(), line[64];
    snprintf(line, sizeof line, "bnni: interrupted by %s", name);
    cr_expect(strstr(e, line) && count_lines_with(e, "bnni: ") == 1, "stderr: %s", e);
    free(e);
    Ckpt c;
    char err[1024];
    cr_assert_eq(ckpt_read(in_dir(ckpt), &c, err, sizeof err), 0, "%s", err);
    cr_expect(c.has_train_state && (c.epoch >= 1 || c.ts.position > 0), "epoch %d, position %d", c.epoch,
              c.ts.position);
    *epoch = c.epoch;
    ckpt_free(&c);
}

/* SIGTERM to every rank mid-run (what mpirun forwards, below): every rank finishes the same step, rank 0 saves a
 * resumable checkpoint and says so, and all exit. Resumed with 3 ranks instead of 2, the run ends as one process
 * training without a stop does. The signal goes to the ranks themselves: Open MPI's mpirun passes it on only
 * about two seconds later, by when so short a run may have ended. */
MPI_TEST(mpi_stop_and_resume_with_another_number_of_ranks)
{
    char args[1024];
    write_model(model, "");
    snprintf(args, sizeof args, "train %s --epochs 4 --limit 6000 --threads 1 --out %s", model, in_dir("s.h5"));
    Job j = start_job("", 2, args);
    kill(j.ranks[0], SIGTERM), kill(j.ranks[1], SIGTERM);
    int epoch;
    cr_expect_neq(end_job(&j, "SIGTERM"), 0);
    expect_stopped("SIGTERM", "s.h5", &epoch);
    cr_expect(epoch >= 1, "epoch %d", epoch);
    cr_assert_eq(mpirun(3, "train %s --epochs 4 --limit 6000 --threads 1 --resume %s --quiet", model, in_dir("s.h5")),
                 0);
    cr_assert_eq(run("train %s --epochs 4 --limit 6000 --threads 1 --quiet --out %s", model, in_dir("one.h5")), 0);
    expect_close_runs(in_dir("one.h5"), in_dir("s.h5"), 1e-4, 0.002);
}

/* SIGTERM to mpirun itself (it passes SIGTERM to every rank, also for a SIGINT, a second or two later): the ranks
 * stop together, rank 0 saves a resumable checkpoint and says so once, and all exit. A long run, so that the
 * forwarded signal lands before its end on any machine. */
MPI_TEST(mpi_sigterm_to_mpirun_stops_every_rank)
{
    char args[1024];
    write_model(model, "");
    snprintf(args, sizeof args, "train %s --epochs 200 --limit 6000 --threads 1 --out %s", model, in_dir("m.h5"));
    Job j = start_job("", 2, args);
    kill(j.pid, SIGTERM);
    int epoch;
    cr_expect_neq(end_job(&j, "SIGTERM"), 0);
    expect_stopped("SIGTERM", "m.h5", &epoch);
    cr_expect(epoch >= 1 && epoch < 200, "epoch %d", epoch);
}

/* SIGINT to one rank alone (a scheduler, a user at one node): the ranks agree at the next step to stop there,
 * rank 0 saves and reports the SIGINT, and every rank exits 130 (mpirun then reports a non-zero status). */
MPI_TEST(mpi_a_signal_to_one_rank_stops_all)
{
    char args[1024];
    write_model(model, "");
    snprintf(args, sizeof args, "train %s --epochs 200 --limit 3000 --test-limit 1000 --threads 1 --out %s", model,
             in_dir("i.h5"));
    Job j = start_job("", 3, args);
    usleep(200000);
    kill(j.ranks[2], SIGINT);
    int st = end_job(&j, "SIGINT to rank 2"), epoch;
    cr_expect_eq(st, 130, "mpirun passes on the ranks' status: %d", st);
    expect_stopped("SIGINT", "i.h5", &epoch);
}

/* A rank killed mid-training: mpirun notices, stops the others and says which rank died; nothing hangs, and the
 * checkpoint on disk is the last whole one. */
MPI_TEST(mpi_killed_rank_stops_the_others)
{
    char args[1024];
    write_model(model, "");
    snprintf(args, sizeof args, "train %s --epochs 200 --limit 3000 --test-limit 1000 --threads 1 --out %s", model,
             in_dir("k.h5"));
    Job j = start_job("", 3, args);
    kill(j.ranks[1], SIGKILL);
    cr_expect_neq(end_job(&j, "a rank's death"), 0);
    char *e = err_text();
    cr_expect(strstr(e, "rank 1") && strstr(e, "signal 9"), "stderr names neither the rank nor its death: %s", e);
    free(e);
    Ckpt c;
    char err[1024];
    cr_expect_eq(ckpt_read(in_dir("k.h5"), &c, err, sizeof err), 0, "%s", err);
    ckpt_free(&c);
}

/* A rank that hangs (stopped), which no launcher notices: the others stop after BNNI_DIST_TIMEOUT seconds with a
 * message saying so, and mpirun then ends the job. */
MPI_TEST(mpi_hung_rank_times_out)
{
    char args[1024];
    write_model(model, "");
    snprintf(args, sizeof args, "train %s --epochs 200 --limit 3000 --test-limit 1000 --threads 1 --out %s", model,
             in_dir("h.h5"));
    Job j = start_job("BNNI_DIST_TIMEOUT=2", 2, args);
    double t0 = now();
    kill(j.ranks[1], SIGSTOP);
    cr_expect_neq(end_job(&j, "a rank's hang"), 0);
    cr_log_info("exited %.1f s after the hang", now() - t0);
    char *e = err_text();
    cr_expect(strstr(e, "bnni: error: rank 0: no answer from the other ranks for 2 s"), "stderr: %s", e);
    free(e);
}

/* ---------------------------------------------------------------- batchnorm(sync=false), the profile */

/* Per-rank statistics: the run trains to other moving statistics than the synchronized run's, the same on every
 * rank (else the state check at the save fails the run), to about the same test accuracy (half batches of 64 are
 * large enough: measured 0.2620 against 0.2650 after these 23 steps, whose moving statistics still lag), and
 * resumes at another number of ranks. */
MPI_TEST(mpi_unsynchronized_batchnorm)
{
    const char *o = "--limit 3000 --test-limit 2000 --threads 1 --quiet";
    write_model(model, "(sync=false)");
    write_model(in_dir("sync.bnn"), "");
    cr_assert_eq(mpirun(2, "train %s %s --epochs 1 --out %s", model, o, in_dir("local.h5")), 0);
    cr_assert_eq(mpirun(2, "train %s %s --epochs 1 --out %s", in_dir("sync.bnn"), o, in_dir("sync.h5")), 0);
    Ckpt a, b;
    char err[1024];
    cr_assert_eq(ckpt_read(in_dir("local.h5"), &a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ckpt_read(in_dir("sync.h5"), &b, err, sizeof err), 0, "%s", err);
    const CkptTensor *ma = ckpt_find(&a, "layers/batchnorm_1/moving_var");
    const CkptTensor *mb = ckpt_find(&b, "layers/batchnorm_1/moving_var");
    cr_assert(ma && mb);
    double diff = 0.0;
    for (size_t j = 0; j < ma->size; j++)
        diff = fmax(diff, fabs((double)ma->data[j] - mb->data[j]) / mb->data[j]);
    cr_expect(diff > 1e-3, "sync=false changed the moving variance by %.3g only", diff);
    cr_expect(fabs(a.metrics.test_acc[0] - b.metrics.test_acc[0]) < 0.05 && a.metrics.test_acc[0] > 0.2,
              "test accuracy %.4f, synchronized %.4f", a.metrics.test_acc[0], b.metrics.test_acc[0]);
    ckpt_free(&a), ckpt_free(&b);
    cr_assert_eq(mpirun(3, "train %s %s --epochs 2 --resume %s", model, o, in_dir("local.h5")), 0);
}

MPI_TEST(mpi_profile_shows_communication)
{
    write_model(model, "");
    int st = mpirun(2, "train %s --epochs 1 --limit 1000 --test-limit 500 --threads 1 --quiet --profile", model);
    char *e = err_text();
    cr_assert_eq(st, 0, "%s", e);
    cr_expect(strstr(e, "gradient sums") && strstr(e, "communication (rank 0 of 2") &&
                  strstr(e, "sums per step inside the layers"),
              "stderr: %s", e);
    cr_expect_eq(count_lines_with(e, "profile: "), 1, "one profile, rank 0's: %s", e);
    free(e);
}

static void put_be32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24), b[1] = (uint8_t)(v >> 16), b[2] = (uint8_t)(v >> 8), b[3] = (uint8_t)v;
}

/* Fashion-MNIST's first n training and m test items as uncompressed IDX files in dir/plain/, which can be read
 * at offsets: the ranks stream them. */
static void write_plain_fashion_mnist(int n, int m)
{
    char sub[128], err[512];
    snprintf(sub, sizeof sub, "%s/plain", dir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    for (int train = 0; train < 2; train++) {
        Dataset d;
        cr_assert_eq(dataset_load(NULL, train, train ? n : m, (Shape){3, 1, 28, 28}, 10, &d, err, sizeof err), 0,
                     "%s", err);
        uint8_t *img = malloc(16 + (size_t)d.count * 784), *lab = malloc(8 + (size_t)d.count);
        put_be32(img, 0x803), put_be32(img + 4, (uint32_t)d.count), put_be32(img + 8, 28), put_be32(img + 12, 28);
        put_be32(lab, 0x801), put_be32(lab + 4, (uint32_t)d.count);
        memcpy(img + 16, d.pixels, (size_t)d.count * 784);
        for (int i = 0; i < d.count; i++)
            lab[8 + i] = (uint8_t)d.labels[i];
        support_write_bytes(support_path(sub, train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte"), img,
                            16 + (size_t)d.count * 784, 0);
        support_write_bytes(support_path(sub, train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte"), lab,
                            8 + (size_t)d.count, 0);
        free(img), free(lab);
        dataset_free(&d);
    }
}

/* Uncompressed files are read per batch, each rank only the items of its shares (the profile counts rank 0's
 * reads: half of every epoch's training items, and 16 of the test set's 32 chunks of 32 images); rank 0 computes
 * the `standard` statistics and hands them over. Still the one process's training, which holds the same files in
 * memory. */
MPI_TEST(mpi_each_rank_reads_only_its_shares)
{
    char data[256];
    write_plain_fashion_mnist(6000, 1000);
    snprintf(data, sizeof data, "fashion_mnist(path=\"%s/plain\", batch=128, normalize=\"standard\")", dir);
    write_model_on(model, data, "");
    const char *o = "--threads 1 --quiet";
    cr_assert_eq(run("train %s %s --out %s", model, o, in_dir("one.h5")), 0);
    int st = mpirun(2, "train %s %s --profile --out %s", model, o, in_dir("two.h5"));
    char *e = err_text();
    cr_assert_eq(st, 0, "%s", e);
    cr_expect(strstr(e, "data: read from the files per batch; rank 0 read 6000 training items, 0.50 of the 6000 in "
                        "each of 2 epochs, and 1024 test items, 0.51 of the 1000 in each of 2 evaluations"),
              "stderr: %s", e);
    free(e);
    expect_close_runs(in_dir("one.h5"), in_dir("two.h5"), 1e-4, 0.002);
}

/* ---------------------------------------------------------------- bad input */

/* mpirun failed; stderr holds exactly one line of bnni's, "bnni: error: ..." with n1 and n2 (mpirun adds its own
 * lines after it); no checkpoint and no temporary file was left in dir. */
static void expect_refused(int st, const char *n1, const char *n2)
{
    char *e = err_text();
    cr_expect_neq(st, 0);
    cr_expect_eq(count_lines_with(e, "bnni: "), 1, "not one message of bnni's: %s", e);
    cr_expect(strstr(e, "bnni: error: ") && (e == strstr(e, "bnni: error: ") || strstr(e, "\nbnni: error: ")),
              "no line starts with 'bnni: error: ': %s", e);
    cr_expect(strstr(e, n1) && (!n2 || strstr(e, n2)), "'%s' lacks '%s' or '%s'", e, n1, n2 ? n2 : "");
    free(e);
    DIR *d = opendir(dir);
    struct dirent *ent;
    while (d && (ent = readdir(d)))
        cr_expect(!strstr(ent->d_name, ".h5"), "a checkpoint or temporary file was left: %s", ent->d_name);
    if (d)
        closedir(d);
}

MPI_TEST(mpi_more_ranks_than_images_in_a_batch)
{
    support_write_text(model, "model tiny\ndata fashion_mnist(batch=2)\noptimizer sgd(lr=0.1)\nloss cross_entropy\n"
                              "network {\n    flatten\n    dense(10)\n}\n");
    expect_refused(mpirun(3, "train %s --limit 100 --out %s", model, in_dir("x.h5")),
                   "a batch of 2 images cannot be split across 3 ranks", NULL);
}

MPI_TEST(mpi_another_binary_on_one_rank)
{
    const char *b = mpi_bin();
    char copy[128];
    snprintf(copy, sizeof copy, "%s/bnni-other", dir);
    support_copy_file(b, copy, -1);
    FILE *f = fopen(copy, "ab");
    cr_assert(f && fputc(0, f) == 0 && fclose(f) == 0); /* one more byte: still runs, is another file */
    cr_assert_eq(chmod(copy, 0755), 0);
    write_model(model, "");
    expect_refused(mpirun_raw("-np 1 %s train %s --out %s : -np 1 %s train %s --out %s", b, model, in_dir("x.h5"), copy,
                              model, in_dir("x.h5")),
                   "rank 1: it runs another bnni than rank 0", "bnni-other");
    remove(copy);
}

MPI_TEST(mpi_another_model_on_one_rank)
{
    const char *b = mpi_bin();
    write_model(model, "");
    write_model(in_dir("other.bnn"), "(momentum=0.8)");
    expect_refused(mpirun_raw("-np 1 %s train %s --limit 500 --out %s : -np 1 %s train %s --limit 500 --out %s", b,
                              model, in_dir("x.h5"), b, in_dir("other.bnn"), in_dir("x.h5")),
                   "rank 1: it has another model", NULL);
    /* the same file, but a flag that changes the training */
    expect_refused(mpirun_raw("-np 1 %s train %s --limit 500 --out %s : -np 1 %s train %s --limit 600 --out %s", b,
                              model, in_dir("x.h5"), b, model, in_dir("x.h5")),
                   "rank 1: it has another model", NULL);
}

MPI_TEST(mpi_one_rank_cannot_read_its_model_or_data)
{
    const char *b = mpi_bin();
    write_model(model, "");
    support_write_text(in_dir("bad.bnn"), "model bad\nnetwork { dense(3) }\n");
    expect_refused(mpirun_raw("-np 2 %s train %s --limit 500 --out %s : -np 1 %s train %s --limit 500 --out %s", b,
                              model, in_dir("x.h5"), b, in_dir("bad.bnn"), in_dir("x.h5")),
                   "rank 2: ", "missing 'data' statement");
    expect_refused(mpirun_raw("-np 1 %s train %s --limit 500 --out %s : -np 1 %s train %s --limit 500 --out %s "
                              "--data %s/nowhere",
                              b, model, in_dir("x.h5"), b, model, in_dir("x.h5"), dir),
                   "rank 1: ", "nowhere/train-images-idx3-ubyte");
}

MPI_TEST(mpi_resume_from_a_checkpoint_only_one_rank_can_read)
{
    const char *b = mpi_bin();
    write_model(model, "");
    cr_assert_eq(mpirun(2, "train %s --epochs 1 --limit 500 --test-limit 500 --quiet --out %s", model, in_dir("a.h5")),
                 0);
    support_copy_file(in_dir("a.h5"), in_dir("b.h5"), -1);
    /* rank 1 resumes from another run's checkpoint: another starting point */
    cr_assert_eq(run("train %s --epochs 1 --limit 500 --test-limit 500 --quiet --seed 9 --out %s", model,
                     in_dir("c.h5")),
                 0);
    int st = mpirun_raw("-np 1 %s train %s --limit 500 --test-limit 500 --resume %s --out %s : -np 1 %s train %s "
                        "--limit 500 --test-limit 500 --resume %s --out %s",
                        b, model, in_dir("b.h5"), in_dir("b.h5"), b, model, in_dir("c.h5"), in_dir("b.h5"));
    char *e = err_text();
    cr_expect_neq(st, 0);
    cr_expect(strstr(e, "rank 1: it has another starting point"), "stderr: %s", e);
    cr_expect(support_same_bytes(in_dir("a.h5"), in_dir("b.h5")), "the checkpoint was replaced");
    free(e);
}

/* The plain build started by mpirun would train N times over, into one file: every copy refuses, one says why. */
MPI_TEST(mpi_plain_build_refuses_several_copies)
{
    mpi_bin();
    write_model(model, "");
    expect_refused(mpirun_raw("-np 2 %s train %s --limit 500 --out %s", support_bnni(), model, in_dir("x.h5")),
                   "built without MPI", "make MPI=1");
}

/* BNNI_MPI=0 (run as a single process) under a launcher that started several copies would train N times over into
 * one file: refused, once; any other value does not switch MPI off. */
MPI_TEST(mpi_bnni_mpi_0_under_a_launcher_is_refused)
{
    write_model(model, "");
    expect_refused(mpirun_raw("-x BNNI_MPI=0 -np 2 %s train %s --limit 500 --out %s", mpi_bin(), model,
                              in_dir("x.h5")),
                   "BNNI_MPI=0 under a launcher that started 2 copies", "unset BNNI_MPI");
    cr_assert_eq(mpirun_raw("-x BNNI_MPI=yes -np 2 %s train %s --epochs 1 --limit 500 --test-limit 100 --profile "
                            "--quiet --out %s", mpi_bin(), model, in_dir("y.h5")),
                 0);
    char *e = err_text();
    cr_expect(strstr(e, "communication (rank 0 of 2"), "the ranks did not train together: %s", e);
    free(e);
}
