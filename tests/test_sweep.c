/* bnni sweep, through the binary on a tiny model: each run equals `bnni train` with the same --set (another code
 * path: the reference), summary.csv equals the medians, minima and maxima computed here from the runs' own
 * metrics.csv, an interrupted sweep finishes as an uninterrupted one would (finished runs untouched), a divergent
 * run is recorded and the sweep goes on, and bad inputs write nothing. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/ckpt.h"
#include "tests/support.h"

static char dir[64], model[128];

static void make_dir(void)
{
    support_make_tmpdir(dir, sizeof dir, "sweep");
    snprintf(model, sizeof model, "%s/m.bnn", dir);
    support_write_text(model, "data fashion_mnist(batch=64)\noptimizer sgd(lr=0.1)\nepochs 2\n"
                              "network {\n    flatten\n    dense(16)\n    batchnorm\n    sigmoid\n    dense(10)\n}\n");
}
static void remove_dir(void) { support_remove_tree(dir); }
TestSuite(sweep, .init = make_dir, .fini = remove_dir, .timeout = 400);

#define run(...) support_run(dir, __VA_ARGS__)
#define SMALL "--limit 256 --test-limit 200 --threads 1"

static const char *in_dir(const char *name)
{
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Status 1 and exactly one line on stderr holding n1 (a model diagnostic names the file, others say "bnni:"). */
static void expect_one_line(int st, const char *n1)
{
    char *e = support_run_err(dir), *nl = strchr(e, '\n');
    cr_expect_eq(st, 1, "status %d: %s", st, e);
    cr_expect(nl && nl[1] == '\0', "not one line: %s", e);
    cr_expect(strstr(e, n1) != NULL, "no '%s' in: %s", n1, e);
    free(e);
}

static void expect_ok(int st)
{
    char *e = support_run_err(dir);
    cr_assert_eq(st, 0, "status %d: %s", st, e);
    free(e);
}

/* The layer tensors and metrics of two checkpoints are the same bit for bit. */
static void expect_same_run(const char *a, const char *b)
{
    Ckpt x, y;
    char err[512];
    cr_assert_eq(ckpt_read(a, &x, err, sizeof err), 0, "%s: %s", a, err);
    cr_assert_eq(ckpt_read(b, &y, err, sizeof err), 0, "%s: %s", b, err);
    cr_assert_eq(x.ntensors, y.ntensors);
    for (int i = 0; i < x.ntensors; i++)
        cr_expect(memcmp(x.tensors[i].data, y.tensors[i].data, x.tensors[i].size * sizeof(float)) == 0,
                  "%s differs between %s and %s", x.tensors[i].path, a, b);
    cr_assert_eq(x.metrics.n, y.metrics.n);
    for (int i = 0; i < x.metrics.n; i++)
        cr_expect(x.metrics.test_acc[i] == y.metrics.test_acc[i]);
    ckpt_free(&x), ckpt_free(&y);
}

/* The last field of each data line of a metrics CSV's column `col` (1-based), into v; returns the count. */
static int column(const char *csv, int col, double *v, int max)
{
    char *s = support_slurp(csv, NULL), *save, *line = strtok_r(s, "\n", &save);
    int n = 0;
    while ((line = strtok_r(NULL, "\n", &save)) && n < max) {
        char *f = line;
        for (int c = 1; c < col; c++)
            f = strchr(f, ',') + 1;
        v[n++] = atof(f);
    }
    free(s);
    return n;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* 2 x 2 configurations x 2 seeds: 8 folders; run lr=0.5, batchnorm=off, seed 2 is `bnni train` with those --set;
 * each summary row is the median (of two: their mean), min and max of the runs' last and best test accuracy. */
Test(sweep, runs_are_trainings_and_the_summary_is_their_spread)
{
    const char *sd = in_dir("s");
    expect_ok(run("sweep %s --set optimizer.lr=0.1,0.5 --set batchnorm=on,off --seeds 1-2 --out %s --target 0.5 %s",
                  model, sd, SMALL));
    static const char *lr[2] = {"0.1", "0.5"}, *bn[2] = {"on", "off"};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            for (int seed = 1; seed <= 2; seed++) {
                char name[256];
                snprintf(name, sizeof name, "s/optimizer.lr=%s_batchnorm=%s_seed=%d/run.h5", lr[i], bn[j], seed);
                cr_expect(exists(in_dir(name)), "no %s", name);
            }
    char *out = support_run_out(dir);
    cr_expect(strstr(out, "[8/8] optimizer.lr=0.5_batchnorm=off_seed=2: final test acc") != NULL, "%s", out);
    cr_expect(strstr(out, "final test acc: median [min, max]") != NULL, "%s", out);
    free(out);
    expect_ok(run("train %s %s --set optimizer.lr=0.5 --set batchnorm=off --set seed=2 --out %s --quiet", model,
                  SMALL, in_dir("ref.h5")));
    expect_same_run(in_dir("ref.h5"), in_dir("s/optimizer.lr=0.5_batchnorm=off_seed=2/run.h5"));
    char *csv = support_slurp(in_dir("s/summary.csv"), NULL), *save, *line = strtok_r(csv, "\n", &save);
    cr_expect_str_eq(line, "optimizer.lr,batchnorm,runs,diverged,final_median,final_min,final_max,best_median,"
                           "best_min,best_max,target,reached,epochs_to_target");
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            double fin[2], best[2], acc[8];
            int reached = 0;
            for (int seed = 1; seed <= 2; seed++) {
                char m[256];
                snprintf(m, sizeof m, "s/optimizer.lr=%s_batchnorm=%s_seed=%d/metrics.csv", lr[i], bn[j], seed);
                int n = column(in_dir(m), 5, acc, 8);
                cr_assert_eq(n, 2, "%s: %d epochs", m, n);
                fin[seed - 1] = acc[1], best[seed - 1] = fmax(acc[0], acc[1]);
                reached += acc[0] >= 0.5 || acc[1] >= 0.5;
            }
            qsort(fin, 2, sizeof *fin, by_value), qsort(best, 2, sizeof *best, by_value);
            char want[512];
            snprintf(want, sizeof want, "%s,%s,2,0,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,0.500000,%d,", lr[i], bn[j],
                     (fin[0] + fin[1]) / 2, fin[0], fin[1], (best[0] + best[1]) / 2, best[0], best[1], reached);
            line = strtok_r(NULL, "\n", &save);
            cr_assert_not_null(line);
            cr_expect(strncmp(line, want, strlen(want)) == 0, "row %s\nwant %s...", line, want);
        }
    free(csv);
    cr_expect(exists(in_dir("s/summary.png")) && exists(in_dir("s/sweep.txt")));
}

/* Sends SIGTERM to a sweep in the middle of its second run (as soon as that run has saved its first epoch, so in
 * its second: no guess of timing, which data loading on a fast or a busy machine upsets); it exits 143, and the
 * same command finishes the sweep: the finished run is not trained again (its checkpoint keeps its bytes), the
 * interrupted one resumes, and everything equals a sweep never interrupted. */
Test(sweep, interrupted_sweep_resumes_exactly)
{
    char err_path[512], sd[256];
    snprintf(err_path, sizeof err_path, "%s", in_dir("spawn-err.txt"));
    snprintf(sd, sizeof sd, "%s", in_dir("i"));
    const char *args[] = {"sweep", model, "--set", "optimizer.lr=0.1,0.2,0.3", "--out", sd, "--limit", "30000",
                          "--test-limit", "200", "--threads", "1", NULL};
    int fd;
    pid_t pid = support_spawn(args, &(SupportSpawn){.err_path = err_path}, &fd);
    char buf[4096];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0) {
        buf[n += (size_t)r] = '\0';
        if (strstr(buf, "[2/3] optimizer.lr=0.2: training"))
            break;
    }
    cr_assert(strstr(buf, "[2/3]") != NULL, "the second run never started: %s", buf);
    char second[1024];
    snprintf(second, sizeof second, "%s/optimizer.lr=0.2/run.h5", sd);
    for (int waited = 0; access(second, F_OK) != 0 && waited < 60000; waited += 2)
        nanosleep(&(struct timespec){0, 2000000}, NULL);
    cr_assert_eq(access(second, F_OK), 0, "the second run saved no epoch in a minute");
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    close(fd);
    char *e = support_slurp(err_path, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 143, "status %d: %s", st, e);
    cr_expect(strstr(e, "run the same bnni sweep again") != NULL, "%s", e);
    free(e);
    char first[1024];
    snprintf(first, sizeof first, "%s/optimizer.lr=0.1/run.h5", sd);
    support_copy_file(first, in_dir("first.h5"), -1);
    expect_ok(run("sweep %s --set optimizer.lr=0.1,0.2,0.3 --out %s --limit 30000 --test-limit 200 --threads 1", model,
                  sd));
    char *out = support_run_out(dir);
    cr_expect(strstr(out, "[2/3] optimizer.lr=0.2: resuming") && !strstr(out, "[1/3] optimizer.lr=0.1: training"),
              "%s", out);
    free(out);
    cr_expect(support_same_bytes(first, in_dir("first.h5")), "the finished run was trained again");
    expect_ok(run("sweep %s --set optimizer.lr=0.1,0.2,0.3 --out %s --limit 30000 --test-limit 200 --threads 1 --quiet",
                  model, in_dir("u")));
    for (int i = 1; i <= 3; i++) {
        char a[1024], b[1024];
        snprintf(a, sizeof a, "%s/optimizer.lr=0.%d/run.h5", sd, i);
        snprintf(b, sizeof b, "%s/u/optimizer.lr=0.%d/run.h5", dir, i);
        expect_same_run(b, a);
    }
    cr_expect(support_same_bytes(in_dir("i/summary.csv"), in_dir("u/summary.csv")));
}

/* An absurd learning rate diverges (batchnorm's moving variance overflows at step 2): recorded (a `diverged` file
 * with the message, the summary's count), and the sweep goes on and exits 0. */
Test(sweep, divergence_is_recorded_not_fatal)
{
    expect_ok(run("sweep %s --set optimizer.lr=1e30,0.1 --out %s %s", model, in_dir("d"), SMALL));
    cr_expect(exists(in_dir("d/optimizer.lr=1e30/diverged")));
    char *why = support_slurp(in_dir("d/optimizer.lr=1e30/diverged"), NULL);
    cr_expect(strstr(why, "training diverged at epoch 1") != NULL, "%s", why);
    free(why);
    char *csv = support_slurp(in_dir("d/summary.csv"), NULL);
    cr_expect(strstr(csv, "\n1e30,1,1,,,,,,,,0,\n") != NULL, "%s", csv);
    cr_expect(strstr(csv, "\n0.1,1,0,0.") != NULL, "%s", csv);
    free(csv);
    char *out = support_run_out(dir);
    cr_expect(strstr(out, "optimizer.lr=1e30: diverged") != NULL, "%s", out);
    free(out);
}

/* Bad inputs: one line, status 1 (2 for usage), and no folder; a folder of another sweep or model is refused and
 * left as it was. */
Test(sweep, bad_inputs_write_nothing)
{
    static const struct {
        const char *args, *n1;
        int status;
    } cases[] = {
        {"--set optimizer.lr=", "the list of values is empty", 1},
        {"--set optimizer.lr=0.1,,0.2", "a value in the list is empty", 1},
        {"--set optimizer.lrr=0.1,0.2", "--set optimizer.lrr=0.1: unknown argument 'lrr' for sgd", 1},
        {"--set optimizer.lr=0.1,abc", "--set optimizer.lr=abc: argument 'lr' of sgd must be a number", 1},
        {"--set batchnorm=on,sometimes", "--set batchnorm=sometimes: batchnorm must be on or off", 1},
        {"--set noequals", NULL, 2},
        {"--set optimizer.lr=0.1 --set optimizer.lr=0.2", NULL, 2},
        {"--set optimizer.lr=0.1 --seeds 3-1", NULL, 2},
        {"--set seed=1,2 --seeds 1-2", NULL, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int st = run("sweep %s %s --out %s %s", model, cases[i].args, in_dir("x"), SMALL);
        if (cases[i].status == 1)
            expect_one_line(st, cases[i].n1);
        else
            cr_expect_eq(st, 2, "%s: status %d", cases[i].args, st);
        cr_expect(!exists(in_dir("x")), "%s: the folder was created", cases[i].args);
    }
    cr_expect_eq(run("sweep %s --set optimizer.lr=0.1 %s", model, SMALL), 2, "no --out");
    expect_ok(run("sweep %s --set optimizer.lr=0.1,0.2 --out %s %s --quiet", model, in_dir("s"), SMALL));
    char *before = support_slurp(in_dir("s/sweep.txt"), NULL);
    int st = run("sweep %s --set optimizer.lr=0.1,0.3 --out %s %s", model, in_dir("s"), SMALL);
    support_expect_one_line_error(dir, st, "holds another sweep",
                                  "'set optimizer.lr=0.1,0.2' there, 'set optimizer.lr=0.1,0.3' here");
    support_write_text(in_dir("m2.bnn"), "data fashion_mnist(batch=64)\noptimizer sgd(lr=0.1)\nepochs 2\n"
                                         "network {\n    flatten\n    dense(17)\n    batchnorm\n    sigmoid\n"
                                         "    dense(10)\n}\n");
    st = run("sweep %s --set optimizer.lr=0.1,0.2 --out %s %s", in_dir("m2.bnn"), in_dir("s"), SMALL);
    support_expect_one_line_error(dir, st, "holds a sweep of another model", NULL);
    char *after = support_slurp(in_dir("s/sweep.txt"), NULL);
    cr_expect_str_eq(after, before);
    free(before), free(after);
    mkdir(in_dir("other"), 0777);
    support_write_text(in_dir("other/notes.txt"), "mine");
    st = run("sweep %s --set optimizer.lr=0.1,0.2 --out %s %s", model, in_dir("other"), SMALL);
    support_expect_one_line_error(dir, st, "a folder is there that holds no sweep", NULL);
}

/* bnni help sweep and plot, and their usage errors, have the form of every other command's (tests/test_train.c). */
Test(sweep, help_and_usage_errors_have_the_commands_form)
{
    static const char *const cmds[] = {"sweep", "plot"};
    for (int i = 0; i < 2; i++) {
        char want[128];
        cr_expect_eq(run("help %s", cmds[i]), 0);
        char *o = support_run_out(dir);
        snprintf(want, sizeof want, "usage: bnni %s ", cmds[i]);
        cr_expect(strncmp(o, want, strlen(want)) == 0 && strstr(o, "\nexit status: ") && strstr(o, "\nexample: "),
                  "%s", o);
        free(o);
        cr_expect_eq(run("%s x --bogus", cmds[i]), 2);
        char *e = support_run_err(dir), *second = strchr(e, '\n');
        snprintf(want, sizeof want, "bnni %s: error: unknown option: --bogus\nusage: bnni %s ", cmds[i], cmds[i]);
        cr_expect(strncmp(e, want, strlen(want)) == 0 && second && strchr(second + 1, '\n')[1] == '\0', "%s", e);
        snprintf(want, sizeof want, "   (bnni help %s)\n", cmds[i]);
        cr_expect(strstr(e, want) != NULL, "%s", e);
        free(e);
    }
}
