/* Exact resume and thread-count determinism end to end, through the built binary ($BNNI, default ./bnni) on the
 * real Fashion-MNIST with small --limit and --test-limit. For every model in models/ (and variants written here
 * where a model lacks a case: a schedule whose rate changes in the middle of a resumed epoch), a run stopped and
 * resumed ends bit for bit where the same run straight through ends: every tensor, the optimizer's state, the
 * train state with both RNG streams (shuffle and dropout), every metric but the timings (tests/same_run.h). And a
 * network of every layer kind trained on 1, 2 and 3 threads ends the same on each. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/ckpt.h"
#include "tests/same_run.h"
#include "tests/support.h"

static char dir[64];

static void make_dir(void) { support_make_tmpdir(dir, sizeof dir, "resume"); }

static void remove_dir(void) { support_remove_tree(dir); }

/* A run takes seconds (a minute for resnet_small under the sanitizers); the timeout only catches a hang. */
TestSuite(resume, .init = make_dir, .fini = remove_dir, .timeout = 900);

static const char *in_dir(const char *name) { return support_path(dir, name); }

/* ---------------------------------------------------------------- running bnni */

/* Splits `bnni train ...` arguments (formatted like printf, separated by single spaces; no argument holds one)
 * into argv, a NULL-terminated array of at most 63 arguments in buf. */
static void split_args(char *buf, const char **argv)
{
    int n = 0;
    for (char *p = strtok(buf, " "); p && n < 63; p = strtok(NULL, " "))
        argv[n++] = p;
    cr_assert(n < 63, "too many arguments");
    argv[n] = NULL;
}

/* `bnni ARGS`, failing the test unless it exits 0. */
static void run_ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void run_ok(const char *fmt, ...)
{
    char args[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    int st = support_run(dir, "%s", args);
    char *e = support_run_err(dir);
    cr_assert_eq(st, 0, "bnni %s: status %d: %s", args, st, e);
    free(e);
}

/* Reads the child's stdout until the line of epoch k ("epoch 3/10  train loss 0.3158 acc 0.8831 | test loss 0.3531
 * acc 0.8725 | 1.9 s 31,500 img/s"); returns that epoch's training seconds, or -1 when the child ended first. */
static double wait_epoch_line(int fd, int k)
{
    char buf[8192];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0) {
        n += (size_t)r;
        buf[n] = '\0';
        for (char *line = buf; line && strchr(line, '\n'); line = strchr(line, '\n') + 1) {
            int e, total;
            double secs;
            if (sscanf(line, "epoch %d/%d train loss %*f acc %*f | test loss %*f acc %*f | %lf s", &e, &total,
                       &secs) == 3 &&
                e == k)
                return secs;
        }
    }
    return -1;
}

static void sleep_for(double s)
{
    struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&t, &t) < 0 && errno == EINTR)
        ;
}

/* ---------------------------------------------------------------- exact resume */

typedef enum Stop {
    STOP_AFTER_EPOCH, /* a run of `at` epochs, then --resume to the total: for schedules that ignore the total */
    STOP_SIGTERM,     /* SIGTERM right after epoch `at`'s line: wherever it lands (evaluation, save, next step) */
    STOP_MID_EPOCH,   /* SIGTERM part-way through epoch at + 1 (timed from epoch at's length); must land mid-epoch */
} Stop;

typedef struct ResumeCase {
    const char *model; /* a file under models/, or NULL for `text` */
    const char *text;  /* a model written into the test's directory */
    int epochs;        /* the total */
    Stop stop;
    int at;            /* the epoch the stop follows */
    int limit, test_limit; /* --limit and --test-limit of the sanitizer build (x SCALE in the others) */
    int seed;          /* > 0: --seed of the first runs only (the resume must take it from the checkpoint) */
    int batch;         /* > 0: the models/ file with its data batch changed to this (a smaller run) */
} ResumeCase;

/* The sanitizer build (ASan, -O1, the kernels' plain C) trains 20 to 100 times slower: its runs take the images
 * given; the optimised build takes SCALE times as many, so that its epochs last long enough to stop in. */
#if defined(__SANITIZE_ADDRESS__)
#define SCALE 1
#else
#define SCALE 8
#endif

/* "--limit L --test-limit T --threads 1[ --seed S]" into buf; with_seed 0 leaves the seed out. */
static const char *opts(const ResumeCase *c, int with_seed, char *buf, size_t len)
{
    int n = snprintf(buf, len, "--limit %d --test-limit %d --threads 1", c->limit * SCALE, c->test_limit * SCALE);
    if (with_seed && c->seed > 0)
        snprintf(buf + n, len - (size_t)n, " --seed %d", c->seed);
    return buf;
}

/* Runs the case's first run under SIGTERM, `fraction` of an epoch's training time after epoch at's line (0: at
 * once); returns the wait status. */
static int sigterm_run(const char *model, const ResumeCase *c, double fraction)
{
    char buf[2048], o[128];
    const char *argv[64];
    int fd, st;
    snprintf(buf, sizeof buf, "train %s %s --epochs %d --out %s", model, opts(c, 1, o, sizeof o), c->epochs,
             in_dir("r.h5"));
    split_args(buf, argv);
    pid_t pid = support_spawn(argv, &(SupportSpawn){.err_path = in_dir("spawn-err.txt")}, &fd);
    double secs = wait_epoch_line(fd, c->at);
    if (secs < 0)
        kill(pid, SIGKILL);
    cr_assert(secs >= 0, "no line for epoch %d from the child", c->at);
    sleep_for(secs * fraction); /* the next epoch trains about as long as this one did */
    kill(pid, SIGTERM);
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    close(fd);
    char *e = support_slurp(in_dir("spawn-err.txt"), NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 143, "status %d after SIGTERM: %s", st, e);
    cr_expect(strstr(e, "interrupted by SIGTERM"), "%s", e);
    free(e);
    return st;
}

/* Stops the first run as c->stop says, into dir/r.h5. A SIGTERM meant for the middle of an epoch that lands before
 * its first step or after its last (even after the run's last epoch) is sent again in a new run, later or earlier:
 * the machine may be busy. */
static void first_run_stopped(const char *model, const ResumeCase *c)
{
    char o[128], err[512];
    if (c->stop == STOP_AFTER_EPOCH) {
        run_ok("train %s %s --epochs %d --quiet --out %s", model, opts(c, 1, o, sizeof o), c->at, in_dir("r.h5"));
        return;
    }
    double fraction = c->stop == STOP_MID_EPOCH ? 0.5 : 0.0;
    for (int attempt = 0;; attempt++) {
        sigterm_run(model, c, fraction);
        Ckpt ck;
        cr_assert_eq(ckpt_read(in_dir("r.h5"), &ck, err, sizeof err), 0, "%s", err);
        int epoch = ck.ts.epoch, position = ck.ts.position, norder = ck.ts.norder;
        ckpt_free(&ck);
        cr_assert(epoch >= c->at && (epoch < c->epochs || c->stop == STOP_MID_EPOCH), "stopped at epoch %d of %d",
                  epoch, c->epochs);
        if (c->stop != STOP_MID_EPOCH || (epoch == c->at && position > 0))
            return;
        cr_assert(attempt < 4, "SIGTERM did not land in the middle of epoch %d in 5 attempts: epoch %d, position %d "
                  "of %d", c->at + 1, epoch, position, norder);
        fraction = epoch > c->at ? fraction / 2 : (fraction + 1) / 2;
        fprintf(stderr, "resume: SIGTERM landed at epoch %d, position %d of %d; again at %.3g of an epoch\n", epoch,
                position, norder, fraction);
    }
}

/* The case's run straight through into dir/u.h5 and stopped-then-resumed into dir/r.h5: the same run. */
static void expect_exact_resume(const ResumeCase *c)
{
    char model[512], o[128], what[600];
    if (c->model && !c->batch) {
        snprintf(model, sizeof model, "models/%s.bnn", c->model);
    } else if (c->model) { /* the file with "batch=N" in its data line changed */
        snprintf(model, sizeof model, "models/%s.bnn", c->model);
        char *text = support_slurp(model, NULL), *at = strstr(text, "(batch="), *end = at ? strchr(at, ')') : NULL;
        cr_assert(end, "%s has no data(batch=...)", model);
        char changed[8192];
        snprintf(changed, sizeof changed, "%.*s(batch=%d%s", (int)(at - text), text, c->batch, end);
        snprintf(model, sizeof model, "%s", in_dir("m.bnn"));
        support_write_text(model, changed);
        free(text);
    } else {
        snprintf(model, sizeof model, "%s", in_dir("m.bnn"));
        support_write_text(model, c->text);
    }
    run_ok("train %s %s --epochs %d --quiet --out %s", model, opts(c, 1, o, sizeof o), c->epochs, in_dir("u.h5"));
    first_run_stopped(model, c);
    run_ok("train %s %s --resume %s --epochs %d --quiet --out %s", model, opts(c, 0, o, sizeof o), in_dir("r.h5"),
           c->epochs, in_dir("r.h5"));
    snprintf(what, sizeof what, "%s resumed after epoch %d (stop %d)", c->model ? c->model : "the model", c->at,
             (int)c->stop);
    same_run_expect(in_dir("u.h5"), in_dir("r.h5"), what);
}

/* The models with a case below; a new file under models/ fails every_model_has_a_resume_test until it has one. */
static const char *const covered[] = {"lenet",        "lenet_bn",    "mlp_bn",        "cnn_relu",
                                      "resnet_small", "cnn_relu_bn", "mlp_sigmoid_bn"};

Test(resume, every_model_has_a_resume_test)
{
    DIR *d = opendir("models");
    struct dirent *e;
    int n = 0;
    cr_assert(d, "cannot list models/ (run the tests from the repository root)");
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name), k = 0;
        if (len < 5 || strcmp(e->d_name + len - 4, ".bnn") != 0)
            continue;
        while (k < sizeof covered / sizeof *covered &&
               !(strlen(covered[k]) == len - 4 && strncmp(covered[k], e->d_name, len - 4) == 0))
            k++;
        cr_expect(k < sizeof covered / sizeof *covered, "models/%s has no exact-resume test in tests/test_resume.c",
                  e->d_name);
        n++;
    }
    closedir(d);
    cr_expect_eq(n, (int)(sizeof covered / sizeof *covered), "models/ holds %d models", n);
}

/* Sigmoid, average pooling, plain SGD; a seed given only to the first runs (the resume reads it from the file). */
Test(resume, lenet) { expect_exact_resume(&(ResumeCase){"lenet", NULL, 2, STOP_AFTER_EPOCH, 1, 150, 60, 3, 0}); }

/* Batch norm's moving statistics. */
Test(resume, lenet_bn) { expect_exact_resume(&(ResumeCase){"lenet_bn", NULL, 2, STOP_AFTER_EPOCH, 1, 150, 60, 0, 0}); }

/* step(every=4, factor=0.5): epochs 1-4 at lr 0.5, 5-6 at 0.25; the resumed run crosses the change. */
Test(resume, mlp_bn_step_schedule)
{
    expect_exact_resume(&(ResumeCase){"mlp_bn", NULL, 6, STOP_AFTER_EPOCH, 3, 150, 60, 0, 0});
}

/* Dropout (the network's RNG stream), max pooling, Adam's moments; stopped in the middle of epoch 2, so that the
 * resume continues the epoch's order and dropout stream from the checkpoint. */
Test(resume, cnn_relu_dropout_adam_mid_epoch)
{
    expect_exact_resume(&(ResumeCase){"cnn_relu", NULL, 2, STOP_MID_EPOCH, 1, 192, 64, 0, 0});
}

/* The same model stopped at an epoch boundary: the next epoch's dropout masks come from the checkpoint's stream. */
Test(resume, cnn_relu_dropout_adam_after_epoch)
{
    expect_exact_resume(&(ResumeCase){"cnn_relu", NULL, 2, STOP_AFTER_EPOCH, 1, 100, 64, 0, 0});
}

/* Batch norm between convolutions and ReLU, dropout and Adam (the experiments' CNN), stopped mid-epoch. */
Test(resume, cnn_relu_bn_mid_epoch)
{
    expect_exact_resume(&(ResumeCase){"cnn_relu_bn", NULL, 2, STOP_MID_EPOCH, 1, 192, 64, 0, 0});
}

/* The sigmoid MLP of Figure 1: three batch norms after dense layers, plain SGD. */
Test(resume, mlp_sigmoid_bn) { expect_exact_resume(&(ResumeCase){"mlp_sigmoid_bn", NULL, 2, STOP_AFTER_EPOCH, 1, 150, 60, 0, 0}); }

/* Residual blocks, SGD with momentum and weight decay, cosine(min_lr) over the run: the total matters, so the first
 * run is the whole run stopped by SIGTERM after epoch 1 (wherever it lands). Batch 32 instead of 128, so that a few
 * images make several steps, the last one partial. */
Test(resume, resnet_small_cosine_residual)
{
    expect_exact_resume(&(ResumeCase){"resnet_small", NULL, 2, STOP_SIGTERM, 1, 80, 32, 0, 32});
}

/* A small CNN with dropout and a step schedule that halves the rate every epoch, stopped in the middle of epoch 2:
 * the resumed half-epoch must run at epoch 2's rate (the checkpoint's lr), and epoch 3 at its own. */
Test(resume, scheduled_dropout_cnn_mid_epoch)
{
    static const char text[] = "model cnn_sched\n"
                               "data fashion_mnist(batch=32)\n"
                               "optimizer sgd(lr=0.05, momentum=0.9)\n"
                               "schedule step(every=1, factor=0.5)\n"
                               "network {\n"
                               "    conv2d(8, kernel=3, padding=1)\n    relu\n    maxpool(2)\n"
                               "    flatten\n    dropout(0.3)\n    dense(32)\n    relu\n    dropout(0.5)\n"
                               "    dense(10)\n"
                               "}\n";
    expect_exact_resume(&(ResumeCase){NULL, text, 3, STOP_MID_EPOCH, 1, 1000, 64, 0, 0});
}

/* ---------------------------------------------------------------- thread counts */

/* Every layer kind, batch 50 (split 25/25 and 17/17/16 across threads), evaluation in chunks of 32 images. */
static const char every_layer[] = "model every_layer\n"
                                  "data fashion_mnist(batch=50)\n"
                                  "optimizer adam(lr=0.002)\n"
                                  "schedule cosine(min_lr=0.0001)\n"
                                  "network {\n"
                                  "    conv2d(8, kernel=3, padding=1)\n    batchnorm\n    relu\n"
                                  "    maxpool(2)\n"
                                  "    skip: residual {\n"
                                  "        conv2d(8, kernel=3, padding=1, bias=false)\n        batchnorm\n"
                                  "        tanh\n"
                                  "    }\n"
                                  "    avgpool(2)\n"
                                  "    conv2d(12, kernel=3)\n    sigmoid\n"
                                  "    flatten\n    dropout(0.3)\n"
                                  "    dense(32)\n    batchnorm\n    relu\n"
                                  "    dense(10)\n"
                                  "}\n";

/* "Identical across thread counts" (README): two epochs of training of the model `text` on `limit` images and
 * their evaluations on 1, 2 and 3 threads give the same checkpoint. */
static void same_on_1_2_and_3_threads(const char *text, int limit)
{
    const char *m = in_dir("m.bnn");
    support_write_text(m, text);
    for (int t = 1; t <= 3; t++) {
        char out[16];
        snprintf(out, sizeof out, "t%d.h5", t);
        run_ok("train %s --epochs 2 --limit %d --test-limit %d --threads %d --quiet --out %s", m, limit * SCALE,
               100 * SCALE, t, in_dir(out));
    }
    same_run_expect(in_dir("t1.h5"), in_dir("t2.h5"), "1 against 2 threads");
    same_run_expect(in_dir("t1.h5"), in_dir("t3.h5"), "1 against 3 threads");
}

Test(resume, same_run_on_1_2_and_3_threads) { same_on_1_2_and_3_threads(every_layer, 100); }

/* A network whose first trained layer is a dense after a flatten reads, on 2 and 3 threads, a copy of each batch
 * per thread (net_set_input_copies; dense splits it by output units): batch 50 in blocks of 32 and 18, a short
 * last batch, crops and flips converted into every copy. */
static const char mlp_first[] = "model mlp_first\n"
                                "data fashion_mnist(batch=50, augment(flip=true, crop=2))\n"
                                "optimizer sgd(lr=0.1, momentum=0.9)\n"
                                "network {\n"
                                "    flatten\n"
                                "    dense(40)\n    batchnorm\n    sigmoid\n"
                                "    dense(10)\n"
                                "}\n";

Test(resume, dense_first_same_on_1_2_and_3_threads) { same_on_1_2_and_3_threads(mlp_first, 170); }

/* The same for a shipped model with dropout: cnn_relu on 1 and 2 threads. */
Test(resume, cnn_relu_same_on_1_and_2_threads)
{
    for (int t = 1; t <= 2; t++) {
        char out[16];
        snprintf(out, sizeof out, "t%d.h5", t);
        run_ok("train models/cnn_relu.bnn --epochs 1 --limit %d --test-limit %d --threads %d --quiet --out %s",
               96 * SCALE, 64 * SCALE, t, in_dir(out));
    }
    same_run_expect(in_dir("t1.h5"), in_dir("t2.h5"), "cnn_relu on 1 against 2 threads");
}
