/* The internal-covariate-shift trace (runtime/trace.c, bnni train --trace): percentiles against a sort, the
 * recorded percentiles and accuracy against a direct double-precision forward of the checkpoint's weights over
 * the test images, a traced run trains exactly like an untraced one, /trace continues exactly on resume (at an
 * epoch boundary and mid-epoch, with or without --trace), and bad requests and damaged /trace groups. */
#include <criterion/criterion.h>
#include <hdf5.h>
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
#include "runtime/data/dataset.h"
#include "runtime/trace.h"
#include "tests/support.h"

#define DATA "/usr/share/datasets/fashion-mnist"

static int by_value(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* numpy.quantile's default on a sorted copy. */
static double sorted_quantile(const float *v, size_t n, double q)
{
    float *s = malloc(n * sizeof *s);
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, by_value);
    double pos = q * (double)(n - 1), t = pos - floor(pos);
    size_t k = (size_t)pos;
    double r = k + 1 < n ? s[k] + (s[k + 1] - s[k]) * t : s[k];
    free(s);
    return r;
}

/* The selection against a sort: sizes 1 to 700, values with many ties, every percentile and both ends. */
Test(trace, quantile_matches_a_sort)
{
    static const double qs[] = {0.0, 0.15, 0.5, 0.85, 1.0, 0.999};
    unsigned seed = 7;
    for (size_t n = 1; n <= 700; n += n < 20 ? 1 : 37) {
        float *v = malloc(n * sizeof *v), *w = malloc(n * sizeof *w);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            v[i] = (float)((int)(seed >> 16) % 23 - 11) * 0.25f; /* ties everywhere */
        }
        for (size_t k = 0; k < sizeof qs / sizeof *qs; k++) {
            memcpy(w, v, n * sizeof *w);
            double want = sorted_quantile(v, n, qs[k]), got = trace_quantile(w, n, qs[k]);
            cr_expect(fabs(got - want) <= 1e-12, "n %zu q %g: %.17g, sort %.17g", n, qs[k], got, want);
        }
        free(v), free(w);
    }
    float bad[3] = {1, NAN, 2};
    cr_expect(isnan(trace_quantile(bad, 3, 0.5)));
    cr_expect(isnan(trace_quantile(bad, 0, 0.5)));
}

/* ---- through the binary ---- */

static char dir[64];
static void make_dir(void) { support_make_tmpdir(dir, sizeof dir, "trace"); }
static void remove_dir(void) { support_remove_tree(dir); }
TestSuite(trace_run, .init = make_dir, .fini = remove_dir, .timeout = 400);

#define run(...) support_run(dir, __VA_ARGS__)

static char model[128];

/* An MLP with batchnorm: 8 steps an epoch on 512 images at batch 64. */
static void write_mlp(void)
{
    snprintf(model, sizeof model, "%s", support_path(dir, "m.bnn"));
    support_write_text(model, "data fashion_mnist(batch=64)\noptimizer sgd(lr=0.5)\nepochs 1\n"
                              "network {\n    flatten\n    dense(16)\n    batchnorm\n    sigmoid\n    dense(10)\n}\n");
}

static void train_ok(const char *fmt, const char *extra, const char *out)
{
    int st = run("train %s --limit 512 --test-limit 300 --threads 1 --quiet %s --out %s", model, extra, out);
    char *e = support_run_err(dir);
    cr_assert_eq(st, 0, "%s: %s", fmt, e);
    free(e);
}

static Ckpt read_ckpt(const char *path)
{
    Ckpt c;
    char err[512];
    cr_assert_eq(ckpt_read(path, &c, err, sizeof err), 0, "%s: %s", path, err);
    return c;
}

static const float *tensor(const Ckpt *c, const char *path)
{
    const CkptTensor *t = ckpt_find(c, path);
    cr_assert_not_null(t, "no tensor %s", path);
    return t->data;
}

/* The last record (step 8, after the last step: the checkpoint's weights) against the network computed here in
 * double from the checkpoint's tensors: dense_1's output on the first 100 test images, batchnorm_1's with the
 * moving statistics, and the accuracy over the first 300. Percentiles to 1e-5 of the output's spread (float
 * against double); the accuracy to one image (a float near-tie may flip one argmax). */
Test(trace_run, records_match_a_direct_forward)
{
    write_mlp();
    train_ok("traced", "--trace dense_1,batchnorm_1 --trace-every 4 --trace-probe 100 --trace-test 300",
             support_path(dir, "t.h5"));
    Ckpt c = read_ckpt(support_path(dir, "t.h5"));
    const TraceLog *tl = c.trace;
    cr_assert_not_null(tl, "no /trace");
    cr_assert_eq(tl->n, 3, "records at steps 0, 4, 8: %d", tl->n);
    cr_expect(tl->step[0] == 0 && tl->step[1] == 4 && tl->step[2] == 8);
    cr_expect(tl->every == 4 && tl->probe == 100 && tl->subset == 300 && tl->nlayers == 2);
    cr_expect_str_eq(tl->names[0], "dense_1");
    cr_expect_str_eq(tl->names[1], "batchnorm_1");
    Dataset d;
    char err[512];
    cr_assert_eq(dataset_load(DATA, 0, 300, (Shape){3, 1, 28, 28}, 10, &d, err, sizeof err), 0, "%s", err);
    const float *w1 = tensor(&c, "layers/dense_1/weight"), *b1 = tensor(&c, "layers/dense_1/bias");
    const float *g = tensor(&c, "layers/batchnorm_1/gamma"), *be = tensor(&c, "layers/batchnorm_1/beta");
    const float *mm = tensor(&c, "layers/batchnorm_1/moving_mean"), *mv = tensor(&c, "layers/batchnorm_1/moving_var");
    const float *w2 = tensor(&c, "layers/dense_2/weight"), *b2 = tensor(&c, "layers/dense_2/bias");
    float *h = malloc(100 * 16 * sizeof *h), *n = malloc(100 * 16 * sizeof *n);
    int right = 0;
    for (int i = 0; i < 300; i++) {
        double hn[16], best = -INFINITY;
        int arg = 0;
        for (int u = 0; u < 16; u++) {
            double s = b1[u];
            for (int p = 0; p < 784; p++)
                s += (double)w1[u * 784 + p] * (d.pixels[(size_t)i * 784 + p] / 255.0);
            hn[u] = g[u] * (s - mm[u]) / sqrt((double)mv[u] + 1e-5) + be[u];
            if (i < 100)
                h[i * 16 + u] = (float)s, n[i * 16 + u] = (float)hn[u];
        }
        for (int o = 0; o < 10; o++) {
            double z = b2[o];
            for (int u = 0; u < 16; u++)
                z += w2[o * 16 + u] / (1.0 + exp(-hn[u]));
            if (z > best)
                best = z, arg = o;
        }
        right += arg == d.labels[i];
    }
    const double *last = tl->pct + 2 * 2 * TRACE_NPCT;
    for (int q = 0; q < TRACE_NPCT; q++) {
        double wh = sorted_quantile(h, 1600, trace_percentiles[q]), wn = sorted_quantile(n, 1600, trace_percentiles[q]);
        cr_expect(fabs(last[q] - wh) < 1e-5 * (1 + fabs(wh)), "dense_1 p%g: %.9g, direct %.9g",
                  trace_percentiles[q] * 100, last[q], wh);
        cr_expect(fabs(last[TRACE_NPCT + q] - wn) < 1e-5 * (1 + fabs(wn)), "batchnorm_1 p%g: %.9g, direct %.9g",
                  trace_percentiles[q] * 100, last[TRACE_NPCT + q], wn);
    }
    cr_expect(fabs(tl->test_acc[2] * 300 - right) <= 1.0, "accuracy %g, direct %d/300", tl->test_acc[2], right);
    cr_expect(tl->pct[0] < tl->pct[1] && tl->pct[1] < tl->pct[2], "15th < 50th < 85th at step 0");
    free(h), free(n);
    dataset_free(&d);
    ckpt_free(&c);
    cr_assert_eq(run("inspect %s", support_path(dir, "t.h5")), 0);
    char *out = support_run_out(dir);
    cr_expect(strstr(out, "\ntrace (3 records, every 4 steps to step 8; probe 100 test images, accuracy on 300):\n"),
              "%s", out);
    free(out);
}

static void expect_same_tensors(const char *a, const char *b)
{
    Ckpt x = read_ckpt(a), y = read_ckpt(b);
    cr_assert_eq(x.ntensors, y.ntensors);
    for (int i = 0; i < x.ntensors; i++) {
        cr_expect_str_eq(x.tensors[i].path, y.tensors[i].path);
        cr_expect(memcmp(x.tensors[i].data, y.tensors[i].data, x.tensors[i].size * sizeof(float)) == 0,
                  "%s differs between %s and %s", x.tensors[i].path, a, b);
    }
    for (int i = 0; i < x.metrics.n; i++)
        cr_expect(x.metrics.test_acc[i] == y.metrics.test_acc[i] && x.metrics.train_loss[i] == y.metrics.train_loss[i]);
    ckpt_free(&x), ckpt_free(&y);
}

static void expect_same_trace(const char *a, const char *b)
{
    Ckpt x = read_ckpt(a), y = read_ckpt(b);
    cr_assert(x.trace && y.trace, "both have a trace");
    const TraceLog *p = x.trace, *q = y.trace;
    cr_assert_eq(p->n, q->n, "%s has %d records, %s %d", a, p->n, b, q->n);
    cr_assert_eq(p->nlayers, q->nlayers);
    for (int i = 0; i < p->n; i++) {
        cr_expect(p->step[i] == q->step[i] && p->test_acc[i] == q->test_acc[i], "record %d", i);
        cr_expect(memcmp(p->pct + i * p->nlayers * TRACE_NPCT, q->pct + i * q->nlayers * TRACE_NPCT,
                         (size_t)p->nlayers * TRACE_NPCT * sizeof(double)) == 0, "record %d's percentiles", i);
    }
    ckpt_free(&x), ckpt_free(&y);
}

/* Tracing reads the network between steps and changes nothing: the same weights, statistics and metrics. */
Test(trace_run, tracing_changes_no_result)
{
    write_mlp();
    train_ok("plain", "--epochs 2", support_path(dir, "p.h5"));
    train_ok("traced", "--epochs 2 --trace dense_1,sigmoid_1 --trace-every 3", support_path(dir, "t.h5"));
    expect_same_tensors(support_path(dir, "p.h5"), support_path(dir, "t.h5"));
}

/* 3 epochs straight against 1 + resume to 3, with and without repeating --trace: the same /trace bit for bit; a
 * resume asking for another trace is refused and leaves the checkpoint as it was. */
Test(trace_run, resume_continues_the_trace_exactly)
{
    write_mlp();
    const char *tr = "--trace batchnorm_1 --trace-every 4"; /* epoch 1 ends on a record: step 8 */
    char all[128], part[128], again[128];
    snprintf(all, sizeof all, "%s", support_path(dir, "all.h5"));
    snprintf(part, sizeof part, "%s", support_path(dir, "part.h5"));
    snprintf(again, sizeof again, "%s", support_path(dir, "again.h5"));
    char extra[256];
    snprintf(extra, sizeof extra, "--epochs 3 %s", tr);
    train_ok("straight", extra, all);
    snprintf(extra, sizeof extra, "--epochs 1 %s", tr);
    train_ok("part", extra, part);
    support_copy_file(part, again, -1);
    snprintf(extra, sizeof extra, "--epochs 3 --resume %s", part);
    train_ok("resumed without --trace", extra, part);
    expect_same_trace(all, part);
    int st = run("train %s --limit 512 --test-limit 300 --threads 1 --quiet --epochs 3 --resume %s --trace dense_1",
                 model, again);
    support_expect_one_line_error(dir, st, "the checkpoint's trace records batchnorm_1 every 4 steps",
                                  "this run asks for dense_1");
    snprintf(extra, sizeof extra, "--epochs 3 --resume %s %s", again, tr);
    train_ok("resumed with --trace", extra, again);
    expect_same_trace(all, again);
}

/* SIGTERM in the middle of epoch 2, then --resume: the trace ends as the uninterrupted run's does. */
/* A traced run of 2 epochs stopped by SIGTERM `part` of epoch 1's time after epoch 1's save. Returns 1 when it
 * exited 143 with a checkpoint of epoch 2's middle, else 0 (logged): on a busy machine the signal can land before
 * epoch 2's first step or after its last. */
static int sigterm_mid_epoch_2(const char *ck, const char *err_path, double part)
{
    const char *args[] = {"train", model, "--epochs", "2", "--limit", "30000", "--test-limit", "300", "--threads", "1",
                          "--trace", "dense_1", "--trace-every", "7", "--out", ck, NULL};
    int fd;
    unlink(ck);
    pid_t pid = support_spawn(args, &(SupportSpawn){.err_path = err_path}, &fd);
    char buf[4096];
    size_t n = 0;
    ssize_t r;
    double secs = -1;
    while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0) {
        buf[n += (size_t)r] = '\0';
        const char *p = strstr(buf, " s ");
        if (p && strchr(p, '\n')) {
            while (p > buf && p[-1] != '|')
                p--;
            secs = atof(p + 1) * part;
            break;
        }
    }
    cr_assert(secs >= 0, "no epoch line: %s", buf);
    /* the line comes before epoch 1's save: the stop must land after it, in epoch 2 */
    for (int waited = 0; access(ck, F_OK) != 0 && waited < 60000; waited += 2)
        nanosleep(&(struct timespec){0, 2000000}, NULL);
    struct timespec pause = {(time_t)secs, (long)((secs - (time_t)secs) * 1e9)};
    nanosleep(&pause, NULL);
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    close(fd);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 143) {
        cr_log_info("the SIGTERM at %.2f of epoch 1's time missed epoch 2 (status %d)", part, st);
        return 0;
    }
    Ckpt c = read_ckpt(ck);
    int hit = c.ts.epoch == 1 && c.ts.position > 0;
    if (!hit)
        cr_log_info("the SIGTERM at %.2f of epoch 1's time stopped at epoch %d position %d", part, c.ts.epoch,
                    c.ts.position);
    ckpt_free(&c);
    return hit;
}

Test(trace_run, sigterm_mid_epoch_then_resume)
{
    write_mlp();
    char ck[128], err_path[128];
    snprintf(ck, sizeof ck, "%s", support_path(dir, "s.h5"));
    snprintf(err_path, sizeof err_path, "%s", support_path(dir, "spawn-err.txt"));
    /* Half of epoch 1's time lands in epoch 2's middle, unless the machine's speed changed between them. */
    static const double parts[] = {0.5, 0.8, 0.3, 0.65};
    int hit = 0;
    for (size_t k = 0; !hit && k < sizeof parts / sizeof parts[0]; k++)
        hit = sigterm_mid_epoch_2(ck, err_path, parts[k]);
    cr_assert(hit, "no SIGTERM stopped the run mid-epoch with status 143 (the log says where they landed)");
    cr_assert_eq(run("train %s --epochs 2 --limit 30000 --test-limit 300 --threads 1 --quiet --resume %s", model, ck),
                 0);
    cr_assert_eq(run("train %s --epochs 2 --limit 30000 --test-limit 300 --threads 1 --quiet --trace dense_1 "
                     "--trace-every 7 --out %s", model, support_path(dir, "u.h5")), 0);
    expect_same_trace(support_path(dir, "u.h5"), ck);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* A layer the model does not have, and the usage forms: one line, nothing written. */
Test(trace_run, bad_requests_write_nothing)
{
    write_mlp();
    const char *o = support_path(dir, "o.h5");
    int st = run("train %s --limit 512 --trace dense_3 --out %s --metrics %s", model, o, support_path(dir, "o.csv"));
    support_expect_one_line_error(dir, st, "--trace: the model has no layer named 'dense_3'",
                                  "did you mean 'dense_1'");
    cr_expect(!exists(support_path(dir, "o.h5")) && !exists(support_path(dir, "o.csv")));
    st = run("train %s --limit 512 --trace dense_1,,sigmoid_1 --out %s", model, support_path(dir, "o.h5"));
    support_expect_one_line_error(dir, st, "--trace needs layer names separated by commas", NULL);
    st = run("train %s --limit 512 --trace dense_1,dense_1 --out %s", model, support_path(dir, "o.h5"));
    support_expect_one_line_error(dir, st, "twice", NULL);
    cr_expect_eq(run("train %s --trace-every 5 --out %s", model, support_path(dir, "o.h5")), 2);
    cr_expect_eq(run("train %s --trace dense_1 --trace-every 0 --out %s", model, support_path(dir, "o.h5")), 2);
    cr_expect(!exists(support_path(dir, "o.h5")));
}

/* A copy of src with HDF5 object `path` deleted, or (len >= 0) a dataset of that length put in its place. */
static void damage(const char *src, const char *dst, const char *path, int len)
{
    support_copy_file(src, dst, -1);
    hid_t f = H5Fopen(dst, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0);
    cr_assert(H5Ldelete(f, path, H5P_DEFAULT) >= 0, "cannot delete %s", path);
    if (len >= 0) {
        hsize_t n = (hsize_t)len;
        double zeros[64] = {0};
        hid_t sp = H5Screate_simple(1, &n, NULL);
        hid_t d = H5Dcreate2(f, path, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros);
        H5Dclose(d), H5Sclose(sp);
    }
    H5Fclose(f);
}

Test(trace_run, damaged_trace_is_refused)
{
    write_mlp();
    train_ok("traced", "--trace dense_1 --trace-every 4", support_path(dir, "t.h5"));
    static const struct {
        const char *path;
        int len;
        const char *want;
    } cases[] = {
        {"/trace/test_acc", -1, "/trace: dataset test_acc is missing"},
        {"/trace/test_acc", 2, "/trace: dataset test_acc is missing, unreadable or not [steps]"},
        {"/trace/layers/dense_1", 3, "not [steps, 3]"},
        {"/trace/step", -1, "dataset step is missing"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char bad[128], err[512];
        Ckpt c;
        snprintf(bad, sizeof bad, "%s", support_path(dir, "bad.h5"));
        damage(support_path(dir, "t.h5"), bad, cases[i].path, cases[i].len);
        cr_expect_eq(ckpt_read(bad, &c, err, sizeof err), -1, "%s", cases[i].path);
        cr_expect(strstr(err, cases[i].want) != NULL, "%s: %s", cases[i].path, err);
        int st = run("eval %s", bad);
        support_expect_one_line_error(dir, st, cases[i].want, NULL);
    }
}
