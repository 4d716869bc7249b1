/* The command line as a new user meets it, through the built binary ($BNNI): where checkpoints go and which files
 * bnni refuses to replace, resuming into the resumed file, checkpoints holding NaN or Inf, files that are not model
 * text, help and misspelt commands, numbers that stay readable, --limit 0, the data directory a checkpoint
 * remembers, and inspect's columns. Small runs: a tiny network, a few hundred images. */
#include <criterion/criterion.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/ckpt.h"
#include "runtime/train.h"
#include "tests/support.h"

#define DATA "/usr/share/datasets/fashion-mnist"

static char dir[64];

static void make_dir(void) { support_make_tmpdir(dir, sizeof dir, "cli"); }
static void remove_dir(void) { support_remove_tree(dir); }

TestSuite(cli, .init = make_dir, .fini = remove_dir, .timeout = 300);

static const char *in_dir(const char *name) { return support_path(dir, name); }

#define run(...) support_run(dir, __VA_ARGS__)

/* A model whose training takes a moment even under the sanitizers: LeNet-BN's first block, then a classifier.
 * `extra` goes into the data call's arguments (", limit=500"); the default checkpoint is dir/default.h5. */
static const char *write_model(const char *extra)
{
    char text[1024];
    snprintf(text, sizeof text,
             "model cli\ndata fashion_mnist(batch=64%s)\noptimizer sgd(lr=0.1)\nepochs 1\ncheckpoint \"%s\"\n"
             "network {\n    conv2d(4, kernel=5, bias=false)\n    batchnorm\n    sigmoid\n    avgpool(2)\n"
             "    flatten\n    dense(10)\n}\n",
             extra, in_dir("default.h5"));
    static char path[128]; /* in_dir's buffers rotate */
    snprintf(path, sizeof path, "%s", in_dir("m.bnn"));
    support_write_text(path, text);
    return path;
}

/* Trains m for `epochs` on 256 images (test on 200) into out; fails the test unless it succeeds. */
static void train_into(const char *m, const char *out, int epochs)
{
    int st = run("train %s --limit 256 --test-limit 200 --epochs %d --out %s --quiet", m, epochs, out);
    char *e = support_run_err(dir);
    cr_assert_eq(st, 0, "train: status %d: %s", st, e);
    free(e);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* 1. --out must name a .h5 file, and a file that is not a bnni checkpoint is never replaced. */
Test(cli, out_names_a_checkpoint_and_replaces_only_checkpoints)
{
    const char *m = write_model("");
    char *before = support_slurp(m, NULL);
    int st = run("train %s --limit 256 --out %s", m, m);
    support_expect_one_line_error(dir, st, "--out", "must end in .h5");
    char *after = support_slurp(m, NULL);
    cr_expect_str_eq(after, before, "the model file must be untouched");
    free(after);
    st = run("train %s --limit 256 --out %s", m, in_dir("notes.txt"));
    support_expect_one_line_error(dir, st, "notes.txt", "must end in .h5");
    cr_expect(!exists(in_dir("notes.txt")));
    support_write_text(in_dir("mine.h5"), "my own notes, not a checkpoint\n");
    st = run("train %s --limit 256 --out %s", m, in_dir("mine.h5"));
    support_expect_one_line_error(dir, st, "mine.h5", "not a readable bnni checkpoint");
    char *mine = support_slurp(in_dir("mine.h5"), NULL);
    cr_expect_str_eq(mine, "my own notes, not a checkpoint\n");
    free(mine), free(before);
    train_into(m, in_dir("ok.h5"), 1); /* a checkpoint, though, is replaced */
    train_into(m, in_dir("ok.h5"), 1);
}

/* 2. --resume without --out goes on in the resumed file, and says where it resumes. */
Test(cli, resume_writes_back_to_the_resumed_file)
{
    const char *m = write_model("");
    train_into(m, in_dir("int.h5"), 1);
    int st = run("train %s --limit 256 --test-limit 200 --epochs 2 --resume %s", m, in_dir("int.h5"));
    char *out = support_run_out(dir), *e = support_run_err(dir), want[256];
    cr_assert_eq(st, 0, "status %d: %s", st, e);
    snprintf(want, sizeof want, "resuming %s at epoch 2, image 0 of 256\n", in_dir("int.h5"));
    cr_expect(strncmp(out, want, strlen(want)) == 0, "first line: %s", out);
    cr_expect(!exists(in_dir("default.h5")), "the model's own checkpoint path must not be written");
    Ckpt c;
    char err[512];
    cr_assert_eq(ckpt_read(in_dir("int.h5"), &c, err, sizeof err), 0, "%s", err);
    cr_expect_eq(c.epoch, 2, "int.h5 holds the resumed run's second epoch");
    ckpt_free(&c);
    free(out), free(e);
}

/* Writes n NaN/Inf values into dataset `name` of the checkpoint, from index `first`. */
static void poison(const char *path, const char *name, size_t first, int n)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0, "cannot open %s", path);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT), sp = H5Dget_space(d);
    cr_assert(d >= 0 && sp >= 0);
    hssize_t size = H5Sget_simple_extent_npoints(sp);
    float *v = malloc((size_t)size * sizeof *v);
    cr_assert(v && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    for (int i = 0; i < n; i++)
        v[first + (size_t)i * 2] = i % 2 ? INFINITY : NAN;
    cr_assert(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    free(v);
    H5Sclose(sp), H5Dclose(d), H5Fclose(f);
}

/* 3. A checkpoint holding NaN or Inf: eval, predict, --resume and --init refuse it, naming the tensor, the count
 * and the first index; inspect shows the count instead of a mean of nan. */
Test(cli, non_finite_checkpoints_are_refused)
{
    const char *m = write_model("");
    train_into(m, in_dir("bad.h5"), 1);
    poison(in_dir("bad.h5"), "/layers/dense_1/weight", 7, 3);
    char bad[128];
    snprintf(bad, sizeof bad, "%s", in_dir("bad.h5"));
    const char *need = "tensor layers/dense_1/weight holds 3 non-finite values (NaN or Inf), the first at index 7";
    int st = run("eval %s --limit 100", bad);
    support_expect_one_line_error(dir, st, bad, need);
    st = run("predict %s %s/t10k-images-idx3-ubyte.gz", bad, DATA);
    support_expect_one_line_error(dir, st, bad, need);
    st = run("train %s --limit 256 --epochs 2 --resume %s", m, bad);
    support_expect_one_line_error(dir, st, bad, need);
    st = run("train %s --limit 256 --init %s --out %s", m, bad, in_dir("x.h5"));
    support_expect_one_line_error(dir, st, bad, need);
    cr_expect(!exists(in_dir("x.h5")));
    st = run("inspect %s", bad);
    char *out = support_run_out(dir);
    cr_expect_eq(st, 0);
    cr_expect(strstr(out, "non-finite 3 of 5760 (NaN or Inf; the first at index 7)"), "%s", out);
    cr_expect(!strstr(out, "nan"), "no statistic may print as nan:\n%s", out);
    free(out);
}

/* 4. A file that is not model text gets one line, not quoted binary. */
Test(cli, binary_files_given_as_models)
{
    const char *m = write_model("");
    train_into(m, in_dir("ck.h5"), 1);
    int st = run("train %s", in_dir("ck.h5"));
    char *e = support_run_err(dir), want[512];
    snprintf(want, sizeof want,
             "%s: error: this is an HDF5 file, not a model file (to continue training: bnni train MODEL.bnn "
             "--resume %s)\n",
             in_dir("ck.h5"), in_dir("ck.h5"));
    cr_expect_eq(st, 1);
    cr_expect_str_eq(e, want);
    free(e);
    st = run("check %s", support_bnni());
    e = support_run_err(dir);
    cr_expect_eq(st, 1);
    cr_expect(strstr(e, ": error: not a text file") && strchr(e, '\n') == e + strlen(e) - 1, "%s", e);
    free(e);
}

/* 5. help help, and a misspelt command gets a suggestion. */
Test(cli, help_and_suggestions)
{
    int st = run("help help");
    char *out = support_run_out(dir), *e;
    cr_expect_eq(st, 0);
    cr_expect(strncmp(out, "usage: bnni help [COMMAND]", 26) == 0, "%s", out);
    free(out);
    st = run("trian m.bnn");
    e = support_run_err(dir);
    cr_expect_eq(st, 2);
    cr_expect_str_eq(e, "bnni: error: unknown command 'trian' (did you mean 'train'?)\n");
    free(e);
    st = run("help evl");
    e = support_run_err(dir);
    cr_expect_eq(st, 2);
    cr_expect(strstr(e, "did you mean 'eval'?"), "%s", e);
    free(e);
}

/* 6. A huge loss prints in a few significant digits, a normal one with four decimals. */
Test(cli, numbers_stay_readable)
{
    char buf[64];
    cr_expect_str_eq(train_format_value(1.0321e32, 4, buf, sizeof buf), "1.032e+32");
    cr_expect_str_eq(train_format_value(-2.5e7, 4, buf, sizeof buf), "-2.5e+07");
    cr_expect_str_eq(train_format_value(0.31582, 4, buf, sizeof buf), "0.3158");
    cr_expect_str_eq(train_format_value(999999.0, 4, buf, sizeof buf), "999999.0000");
    cr_expect_str_eq(train_format_value(0.25, 6, buf, sizeof buf), "0.250000");
}

/* 7. --limit 0 means every image, as limit=0 does in a model file, and overrides the file's limit. */
Test(cli, limit_zero_means_all_on_the_command_line_too)
{
    support_write_text(in_dir("tiny.bnn"), "data fashion_mnist(batch=500, limit=300)\noptimizer sgd(lr=0.1)\n"
                                           "epochs 1\nnetwork { flatten; dense(10) }\n");
    int st = run("train %s --limit 0 --test-limit 0 --out %s --quiet", in_dir("tiny.bnn"), in_dir("t.h5"));
    char *e = support_run_err(dir);
    cr_assert_eq(st, 0, "status %d: %s", st, e);
    free(e);
    Ckpt c;
    char err[512];
    cr_assert_eq(ckpt_read(in_dir("t.h5"), &c, err, sizeof err), 0, "%s", err);
    cr_expect_eq(c.ts.norder, 60000, "trained on %d images", c.ts.norder);
    ckpt_free(&c);
    st = run("eval %s --limit 0", in_dir("t.h5"));
    char *out = support_run_out(dir);
    cr_expect_eq(st, 0);
    cr_expect(strstr(out, "(10000 images)"), "%s", out);
    free(out);
}

/* 8. The checkpoint remembers the data directory the run used, and eval and predict's labels use it. */
Test(cli, eval_uses_the_data_directory_of_the_run)
{
    char link[128], text[512];
    snprintf(link, sizeof link, "%s/data", dir);
    cr_assert_eq(symlink(DATA, link), 0);
    snprintf(text, sizeof text, "data fashion_mnist(batch=64, path=\"/nonexistent/fashion\")\n"
                                "optimizer sgd(lr=0.1)\nepochs 1\nnetwork { flatten; dense(10) }\n");
    support_write_text(in_dir("away.bnn"), text);
    int st = run("train %s --data %s --limit 256 --test-limit 100 --out %s --quiet", in_dir("away.bnn"), link,
                 in_dir("a.h5"));
    char *e = support_run_err(dir);
    cr_assert_eq(st, 0, "status %d: %s", st, e);
    free(e);
    Ckpt c;
    char err[512], *real = realpath(link, NULL);
    cr_assert_eq(ckpt_read(in_dir("a.h5"), &c, err, sizeof err), 0, "%s", err);
    cr_expect(c.data_path && real && strcmp(c.data_path, real) == 0, "data_path %s, want %s", c.data_path, real);
    ckpt_free(&c);
    free(real);
    st = run("eval %s --limit 50", in_dir("a.h5"));
    e = support_run_err(dir);
    cr_expect_eq(st, 0, "eval without --data: %s", e);
    free(e);
    st = run("eval %s --limit 50 --data /nonexistent/elsewhere", in_dir("a.h5"));
    e = support_run_err(dir);
    cr_expect(st == 1 && strstr(e, "/nonexistent/elsewhere"), "--data still wins: %s", e);
    free(e);
}

/* 10. batchnorm's momentum and eps are stored in double, as written (h5py once read 0.8999999761581421). */
Test(cli, batchnorm_arguments_are_stored_as_written)
{
    const char *m = write_model("");
    train_into(m, in_dir("bn.h5"), 1);
    hid_t f = H5Fopen(in_dir("bn.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0);
    hid_t g = H5Gopen2(f, "/layers/batchnorm_1", H5P_DEFAULT);
    double mom = 0, eps = 0;
    hid_t a = H5Aopen(g, "momentum", H5P_DEFAULT), t = H5Aget_type(a);
    cr_expect_eq(H5Tget_size(t), 8, "momentum is stored in 64 bits");
    H5Aread(a, H5T_NATIVE_DOUBLE, &mom);
    H5Tclose(t), H5Aclose(a);
    a = H5Aopen(g, "eps", H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_DOUBLE, &eps);
    H5Aclose(a), H5Gclose(g), H5Fclose(f);
    cr_expect(mom == 0.9, "momentum %.17g", mom);
    cr_expect(eps == 1e-5, "eps %.17g", eps);
}

/* 12. inspect's tensor rows keep their columns whatever the length of a name (Adam's exp_avg_sq paths). */
Test(cli, inspect_columns_line_up)
{
    const char *m = write_model("");
    char text[1024];
    char *s = support_slurp(m, NULL);
    char *opt = strstr(s, "optimizer sgd(lr=0.1)");
    cr_assert(opt);
    snprintf(text, sizeof text, "%.*soptimizer adam(lr=0.01)%s", (int)(opt - s), s, opt + strlen("optimizer sgd(lr=0.1)"));
    support_write_text(m, text);
    free(s);
    train_into(m, in_dir("adam.h5"), 1);
    int st = run("inspect %s", in_dir("adam.h5"));
    char *out = support_run_out(dir);
    cr_assert_eq(st, 0);
    int col = -1, rows = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "    ", 4) != 0 || line[4] == ' ' || !strstr(line, " min "))
            continue;
        int c = (int)(strchr(line, '[') - line), m2 = (int)(strstr(line, " min ") - line);
        if (col < 0)
            col = c * 1000 + m2;
        cr_expect_eq(c * 1000 + m2, col, "misaligned row: %s", line);
        rows++;
    }
    cr_expect_geq(rows, 10, "tensor rows found: %d", rows);
    free(out);
}
