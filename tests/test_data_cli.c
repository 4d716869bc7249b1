/* The data kinds end to end, through the built binary ($BNNI, default ./bnni) on small data sets written here:
 * what `bnni check` says from the headers alone (the class count, the input shape), validation metrics, exact
 * resume with a validation split and augmentation, keep="best" and every=N, a streamed run equal to an in-memory
 * one and within its memory cap, class names through eval and predict, and bad data: one line, exit 1, no
 * checkpoint. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/ckpt.h"
#include "runtime/data/split.h"
#include "tests/datagen.h"
#include "tests/support.h"

static char dir[64];

static void make_dir(void) { support_make_tmpdir(dir, sizeof dir, "datacli"); }
static void remove_dir(void) { support_remove_tree(dir); }

TestSuite(data_cli, .init = make_dir, .fini = remove_dir, .timeout = 300);

#define run(...) support_run(dir, __VA_ARGS__)
static const char *in_dir(const char *name) { return support_path(dir, name); }

/* The binary's absolute path, for commands run in dir (cd dir && ...). */
static const char *bnni(void)
{
    static char path[256];
    char *p = realpath(support_bnni(), NULL);
    cr_assert(p && strlen(p) < sizeof path, "cannot find %s", support_bnni());
    snprintf(path, sizeof path, "%s", p);
    free(p);
    return path;
}

/* d.h5: 1x8x8 bytes of 4 classes, each class a bright band of rows over noise; 240 training and 60 test items.
 * The class names are in the file. */
static void write_bands(void)
{
    datagen_python(dir, "rng = np.random.default_rng(5)\n"
                        "def make(n):\n"
                        "    y = rng.integers(0, 4, n)\n"
                        "    x = rng.integers(0, 60, (n, 1, 8, 8)).astype(np.uint8)\n"
                        "    for i in range(n): x[i, 0, 2 * y[i]:2 * y[i] + 2] += 150\n"
                        "    return x, y\n"
                        "with h5py.File('d.h5', 'w') as f:\n"
                        "    f['train/x'], f['train/y'] = make(240)\n"
                        "    f['test/x'], f['test/y'] = make(60)\n"
                        "    f.attrs['classes'] = np.array(['top', 'upper', 'lower', 'bottom'], dtype=h5py.string_dtype())\n");
}

/* A model on d.h5; `data` holds the data statement's extra arguments, `rest` more statements, `net` the layers. */
static void write_model(const char *name, const char *data, const char *rest, const char *net)
{
    char text[2048];
    snprintf(text, sizeof text, "data hdf5(\"%s\", batch=16%s)\noptimizer sgd(lr=0.05, momentum=0.9)\nepochs 3\n%s"
             "network {\n%s}\n", in_dir("d.h5"), data, rest, net);
    support_write_text(in_dir(name), text);
}

#define NET "    conv2d(4, kernel=3, padding=1)\n    relu\n    flatten\n    dense(4)\n"

/* The last run failed with status 1 and exactly one line on stderr holding needle. */
static void expect_one_line(int st, const char *needle)
{
    char *e = support_run_err(dir), *nl = strchr(e, '\n');
    cr_expect_eq(st, 1, "status %d: %s", st, e);
    cr_expect(nl && nl[1] == '\0', "not one line: %s", e);
    cr_expect(strstr(e, needle), "'%s' lacks '%s'", e, needle);
    free(e);
}

Test(data_cli, check_takes_shape_and_classes_from_the_headers)
{
    write_bands();
    write_model("k.bnn", "", "", "    flatten\n    dense(10)\n");
    int st = run("check %s", in_dir("k.bnn"));
    char *e = support_run_err(dir);
    cr_expect(st == 1 && strstr(e, "k.bnn:6:5: error: dense_1 has 10 outputs but the data has 4 classes"), "%s", e);
    free(e);
    write_model("i.bnn", "", "", "    input 3x8x8\n    flatten\n    dense(4)\n");
    st = run("check %s", in_dir("i.bnn"));
    e = support_run_err(dir);
    cr_expect(st == 1 && strstr(e, "input 3x8x8 does not match the hdf5 images, which are 1x8x8"), "%s", e);
    free(e);
    write_model("ok.bnn", "", "", "    input 1x8x8\n" NET);
    cr_expect_eq(run("check %s", in_dir("ok.bnn")), 0);
    char *out = support_run_out(dir);
    cr_expect(strstr(out, "data hdf5: 1x8x8 images, 4 classes, batch 16"), "%s", out);
    free(out);
    /* Only headers: a NaN among the items (float data) is found by training, not by checking. */
    datagen_python(dir, "x = np.ones((20, 3), np.float32); x[7, 1] = np.nan\n"
                        "with h5py.File('nan.h5', 'w') as f: f['train/x'] = x; f['train/y'] = np.arange(20) % 2\n");
    support_write_text(in_dir("nan.bnn"), "data hdf5(\"nan.h5\")\noptimizer sgd(lr=0.1)\nnetwork { dense(2) }\n");
    cr_expect_eq(support_run(dir, "check %s --quiet", in_dir("nan.bnn")), 1, "relative to the current directory");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s && %s check nan.bnn --quiet", dir, bnni());
    cr_expect_eq(system(cmd), 0, "check reads no items");
    snprintf(cmd, sizeof cmd, "cd %s && %s train nan.bnn --out nan_ck.h5 2>err.txt", dir, bnni());
    cr_expect_eq(WEXITSTATUS(system(cmd)), 1);
    e = support_slurp(in_dir("err.txt"), NULL);
    cr_expect(strstr(e, "bnni: error: nan.h5: train/x: item 7 holds NaN at value 1") && !strchr(e, '\n')[1], "%s", e);
    cr_expect(access(in_dir("nan_ck.h5"), F_OK) != 0, "no checkpoint from bad data");
    free(e);
}

/* Metrics of every epoch of a checkpoint, bit for bit, and its tensors. */
static void expect_same_run(const char *a_path, const char *b_path)
{
    Ckpt a, b;
    char err[1024];
    cr_assert_eq(ckpt_read(a_path, &a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ckpt_read(b_path, &b, err, sizeof err), 0, "%s", err);
    cr_assert_eq(a.ntensors, b.ntensors);
    for (int i = 0; i < a.ntensors; i++)
        cr_expect_eq(memcmp(a.tensors[i].data, b.tensors[i].data, a.tensors[i].size * sizeof(float)), 0, "%s differs",
                     a.tensors[i].path);
    cr_assert_eq(a.metrics.n, b.metrics.n);
    cr_assert(a.metrics.has_val && b.metrics.has_val);
    size_t m = (size_t)a.metrics.n * sizeof(double);
    cr_expect_arr_eq(a.metrics.train_loss, b.metrics.train_loss, m);
    cr_expect_arr_eq(a.metrics.val_loss, b.metrics.val_loss, m);
    cr_expect_arr_eq(a.metrics.val_acc, b.metrics.val_acc, m);
    cr_expect_arr_eq(a.metrics.test_acc, b.metrics.test_acc, m);
    ckpt_free(&a), ckpt_free(&b);
}

Test(data_cli, validation_split_and_augmentation_resume_exactly)
{
    write_bands();
    write_model("v.bnn", ", validation=0.25, augment(flip=true, crop=2)", "", NET);
    const char *o = "--threads 1 --quiet";
    cr_assert_eq(run("train %s %s --out %s --metrics %s", in_dir("v.bnn"), o, in_dir("a.h5"), in_dir("a.csv")), 0);
    char *csv = support_slurp(in_dir("a.csv"), NULL);
    const char *head = "epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,seconds,images_per_second\n";
    cr_expect(strncmp(csv, head, strlen(head)) == 0, "%s", csv);
    free(csv);
    Ckpt c;
    char err[512];
    cr_assert_eq(ckpt_read(in_dir("a.h5"), &c, err, sizeof err), 0, "%s", err);
    cr_expect(c.validation == 60 && c.ts.norder == 180, "a quarter of 240 held out");
    cr_expect(c.classes == 4 && strcmp(c.class_names[3], "bottom") == 0);
    double val_acc = c.metrics.val_acc[2];
    ckpt_free(&c);
    /* the same run again, and 2 epochs then a resume to 3 (with another --seed: the checkpoint's wins) */
    cr_assert_eq(run("train %s %s --out %s", in_dir("v.bnn"), o, in_dir("b.h5")), 0);
    expect_same_run(in_dir("a.h5"), in_dir("b.h5"));
    cr_assert_eq(run("train %s %s --epochs 2 --out %s", in_dir("v.bnn"), o, in_dir("r.h5")), 0);
    cr_assert_eq(run("train %s %s --resume %s --seed 99", in_dir("v.bnn"), o, in_dir("r.h5")), 0);
    expect_same_run(in_dir("a.h5"), in_dir("r.h5"));
    /* eval --split validation evaluates the same held-out items */
    cr_assert_eq(run("eval %s --split validation", in_dir("a.h5")), 0);
    char *out = support_run_out(dir), want[64];
    snprintf(want, sizeof want, "accuracy %.4f (60 images)", val_acc);
    cr_expect(strstr(out, "validation loss") && strstr(out, want), "%s lacks %s", out, want);
    free(out);
    /* the epoch line shows the validation figures */
    cr_assert_eq(run("train %s --epochs 1 --threads 1 --out %s", in_dir("v.bnn"), in_dir("l.h5")), 0);
    out = support_run_out(dir);
    cr_expect(strstr(out, "| val loss ") && strstr(out, "| test loss "), "%s", out);
    free(out);
}

/* Training with validation items held out is training on the other items alone: the same weights as a run on a file
 * holding only those, in their order (the held-out items named by split_items, tested in test_data_common.c). */
Test(data_cli, held_out_items_are_not_trained_on)
{
    write_bands();
    int *tr, *va;
    cr_assert_eq(split_items(240, 60, 1, &tr, &va), 0);
    FILE *f = fopen(in_dir("rows.txt"), "w");
    for (int i = 0; i < 180; i++)
        fprintf(f, "%d\n", tr[i]);
    fclose(f);
    free(tr), free(va);
    datagen_python(dir, "rows = np.loadtxt('rows.txt', dtype=int)\n"
                        "with h5py.File('d.h5') as f, h5py.File('kept.h5', 'w') as g:\n"
                        "    g['train/x'] = f['train/x'][...][rows]; g['train/y'] = f['train/y'][...][rows]\n"
                        "    g['test/x'] = f['test/x'][...]; g['test/y'] = f['test/y'][...]\n"
                        "    g.attrs['classes'] = f.attrs['classes']\n");
    write_model("v.bnn", ", validation=60", "", NET);
    cr_assert_eq(run("train %s --epochs 2 --threads 1 --quiet --out %s", in_dir("v.bnn"), in_dir("v.h5")), 0);
    char text[1024];
    snprintf(text, sizeof text, "data hdf5(\"%s\", batch=16)\noptimizer sgd(lr=0.05, momentum=0.9)\nnetwork {\n%s}\n",
             in_dir("kept.h5"), NET);
    support_write_text(in_dir("k.bnn"), text);
    cr_assert_eq(run("train %s --epochs 2 --threads 1 --quiet --out %s", in_dir("k.bnn"), in_dir("k.h5")), 0);
    Ckpt a, b;
    char err[512];
    cr_assert_eq(ckpt_read(in_dir("v.h5"), &a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ckpt_read(in_dir("k.h5"), &b, err, sizeof err), 0, "%s", err);
    for (int i = 0; i < a.ntensors; i++)
        if (strncmp(a.tensors[i].path, "layers/", 7) == 0)
            cr_expect_eq(memcmp(a.tensors[i].data, ckpt_find(&b, a.tensors[i].path)->data,
                                a.tensors[i].size * sizeof(float)), 0, "%s differs", a.tensors[i].path);
    cr_expect(a.metrics.train_loss[1] == b.metrics.train_loss[1] && a.metrics.test_acc[1] == b.metrics.test_acc[1]);
    ckpt_free(&a), ckpt_free(&b);
}

Test(data_cli, keep_best_and_every)
{
    write_bands();
    write_model("b.bnn", ", validation=60", "checkpoint \"run.h5\", keep=\"best\", every=2\nepochs 4\n", NET);
    /* epochs appears twice: keep the file's own statement out */
    char *t = support_slurp(in_dir("b.bnn"), NULL), *e3 = strstr(t, "epochs 3\n");
    memmove(e3, e3 + 9, strlen(e3 + 9) + 1);
    support_write_text(in_dir("b.bnn"), t);
    free(t);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s && %s train b.bnn --threads 1 >out.txt 2>err.txt", dir, bnni());
    cr_assert_eq(system(cmd), 0);
    Ckpt best, e2, e4;
    char err[512];
    cr_assert_eq(ckpt_read(in_dir("run.epoch2.h5"), &e2, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ckpt_read(in_dir("run.epoch4.h5"), &e4, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ckpt_read(in_dir("run.h5"), &best, err, sizeof err), 0, "%s", err);
    cr_expect(e2.epoch == 2 && e4.epoch == 4 && access(in_dir("run.epoch1.h5"), F_OK) != 0);
    int top = 0;
    for (int i = 1; i < 4; i++)
        top = e4.metrics.val_acc[i] > e4.metrics.val_acc[top] ? i : top;
    cr_expect_eq(best.epoch, top + 1, "run.h5 holds the first epoch of the best validation accuracy");
    char *out = support_slurp(in_dir("out.txt"), NULL), want[64];
    snprintf(want, sizeof want, "saved run.h5 (epoch %d, the best validation accuracy)", top + 1);
    cr_expect(strstr(out, want), "%s", out);
    free(out);
    ckpt_free(&best), ckpt_free(&e2), ckpt_free(&e4);
    /* keep="best" needs a validation set */
    write_model("nb.bnn", "", "checkpoint \"x.h5\", keep=\"best\"\n", NET);
    int st = run("check %s", in_dir("nb.bnn"));
    char *e = support_run_err(dir);
    cr_expect(st == 1 && strstr(e, "nb.bnn:4:25: error: keep=\"best\" chooses the epoch by its validation accuracy"),
              "%s", e);
    free(e);
}

/* bnni train as a child, its peak resident memory in KiB into *rss. */
static int train_measured(const char *const args[], long *rss)
{
    SupportSpawn how = {.out_path = in_dir("out.txt"), .err_path = in_dir("err.txt")};
    int fd, status;
    pid_t pid = support_spawn(args, &how, &fd);
    struct rusage ru;
    cr_assert_eq(wait4(pid, &status, 0, &ru), pid);
    *rss = ru.ru_maxrss;
    return support_status(status);
}

Test(data_cli, a_streamed_run_equals_the_in_memory_run_within_the_cap)
{
    /* 10,000 items of 1000 float32 features: 40 MB, and a memory cap of 32 MiB */
    datagen_python(dir, "rng = np.random.default_rng(9)\n"
                        "y = rng.integers(0, 5, 10000)\n"
                        "x = rng.normal(size=(10000, 1000)).astype(np.float32)\n"
                        "x[:, :5] += np.eye(5, dtype=np.float32)[y] * 2\n"
                        "with h5py.File('big.h5', 'w') as f:\n"
                        "    f['train/x'] = x; f['train/y'] = y; f['test/x'] = x[:500]; f['test/y'] = y[:500]\n");
    support_write_text(in_dir("s.bnn"), "data hdf5(\"big.h5\", batch=100, normalize=\"standard\", validation=0.1)\n"
                                        "optimizer sgd(lr=0.05)\nepochs 1\nnetwork { dense(5) }\n");
    const char *mem[] = {"train", in_dir("s.bnn"), "--data", in_dir("big.h5"), "--out", in_dir("mem.h5"), "--quiet",
                         NULL};
    const char *str[] = {"train", in_dir("s.bnn"), "--data", in_dir("big.h5"), "--out", in_dir("str.h5"), "--quiet",
                         "--mem-cap", "32M", NULL};
    long rss_mem, rss_str;
    cr_assert_eq(train_measured(mem, &rss_mem), 0);
    cr_assert_eq(train_measured(str, &rss_str), 0);
    Ckpt a, b;
    char err[512];
    cr_assert_eq(ckpt_read(in_dir("mem.h5"), &a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ckpt_read(in_dir("str.h5"), &b, err, sizeof err), 0, "%s", err);
    for (int i = 0; i < a.ntensors; i++)
        cr_expect_eq(memcmp(a.tensors[i].data, b.tensors[i].data, a.tensors[i].size * sizeof(float)), 0, "%s",
                     a.tensors[i].path);
    cr_expect(a.metrics.train_loss[0] == b.metrics.train_loss[0] && a.metrics.val_acc[0] == b.metrics.val_acc[0] &&
              a.metrics.test_loss[0] == b.metrics.test_loss[0]);
    cr_expect(a.nnorm == 1000 && memcmp(a.data_means, b.data_means, 1000 * sizeof(double)) == 0,
              "the same per-feature statistics");
    ckpt_free(&a), ckpt_free(&b);
#if !defined(__SANITIZE_ADDRESS__)
    /* AddressSanitizer's shadow memory and quarantine would count toward the peak */
    cr_expect(rss_str < 32 * 1024, "the streamed run peaked at %ld KiB, over the 32 MiB cap", rss_str);
    cr_expect(rss_mem > 40 * 1024, "the in-memory run held the 40 MB (peak %ld KiB)", rss_mem);
#endif
}

/* A tiny images data set: dir/img/train/<class>/ and dir/img/test/<class>/, gray shapes of 6x6 (PGM). */
static void write_images(void)
{
    datagen_python(dir, "rng = np.random.default_rng(2)\n"
                        "for split, n in (('train', 12), ('test', 3)):\n"
                        "    for k, cls in enumerate(['dark', 'light, bright', 'mid']):\n"
                        "        os.makedirs('img/%s/%s' % (split, cls), exist_ok=True)\n"
                        "        for i in range(n):\n"
                        "            a = (rng.integers(0, 30, (6, 6)) + k * 100).astype(np.uint8)\n"
                        "            open('img/%s/%s/%02d.pgm' % (split, cls, i), 'wb').write(b'P5 6 6 255\\n' + a.tobytes())\n");
}

Test(data_cli, class_names_reach_eval_and_predict)
{
    write_images();
    char text[512];
    snprintf(text, sizeof text, "data images(\"%s/img\", batch=6, channels=1)\noptimizer adam(lr=0.05)\nepochs 4\n"
             "network {\n    flatten\n    dense(3)\n}\n", dir);
    support_write_text(in_dir("im.bnn"), text);
    cr_assert_eq(run("train %s --threads 1 --quiet --out %s", in_dir("im.bnn"), in_dir("im.h5")), 0);
    cr_assert_eq(run("eval %s --confusion", in_dir("im.h5")), 0);
    char *out = support_run_out(dir);
    cr_expect(strstr(out, "   1 light, bright") && strstr(out, "confusion matrix") && strstr(out, "(9 images)"), "%s",
              out);
    free(out);
    /* predict needs no data set: the checkpoint has the shape and the names */
    char moved[128];
    snprintf(moved, sizeof moved, "%s/moved", dir);
    cr_assert_eq(rename(in_dir("img"), moved), 0);
    int st = run("predict %s %s/test/dark/00.pgm %s/test/mid --top 2", in_dir("im.h5"), moved, moved);
    out = support_run_out(dir);
    cr_assert_eq(st, 0, "%s", out);
    cr_expect(strncmp(out, "file,class,name,probability\n", 28) == 0);
    char row[256];
    snprintf(row, sizeof row, "%s/test/dark/00.pgm,0,dark,", moved);
    cr_expect(strstr(out, row), "%s lacks %s", out, row);
    snprintf(row, sizeof row, "%s/test/mid/02.pgm,2,mid,", moved);
    cr_expect(strstr(out, row), "%s lacks %s", out, row);
    int rows = 0;
    for (char *p = out; (p = strchr(p, '\n')); p++)
        rows++;
    cr_expect_eq(rows, 1 + 4 * 2, "a header, then two rows for each of 4 images");
    free(out);
    /* a name with a comma is quoted; stdin */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s predict %s - < '%s/test/light, bright/01.pgm' > %s", bnni(), in_dir("im.h5"),
             moved, in_dir("stdin.txt"));
    cr_assert_eq(system(cmd), 0);
    out = support_slurp(in_dir("stdin.txt"), NULL);
    cr_expect(strstr(out, "\n-,1,\"light, bright\","), "%s", out);
    free(out);
    st = run("predict %s %s", in_dir("im.h5"), in_dir("im.bnn"));
    expect_one_line(st, "im.bnn: not an image bnni reads (PNG, JPEG, PGM or PPM)");
}

Test(data_cli, bad_data_is_one_line_and_leaves_no_checkpoint)
{
    write_images();
    char text[512];
    snprintf(text, sizeof text, "data images(\"%s/img\", batch=6, channels=1)\noptimizer sgd(lr=0.1)\nepochs 1\n"
             "network { flatten; dense(3) }\n", dir);
    support_write_text(in_dir("im.bnn"), text);
    /* an image that is not the size of the others, found when the data loads */
    datagen_python(dir, "open('img/train/mid/05.pgm', 'wb').write(b'P5 7 6 255\\n' + bytes(42))\n");
    int st = run("train %s --out %s", in_dir("im.bnn"), in_dir("x.h5"));
    expect_one_line(st, "img/train/mid/05.pgm: image is 7x6 (width x height), the others are 6x6");
    cr_expect(access(in_dir("x.h5"), F_OK) != 0);
    /* a truncated one */
    datagen_python(dir, "open('img/train/mid/05.pgm', 'wb').write(b'P5 6 6 255\\n' + bytes(20))\n");
    st = run("train %s --out %s", in_dir("im.bnn"), in_dir("x.h5"));
    expect_one_line(st, "img/train/mid/05.pgm: the raster must hold exactly 36 bytes");
    /* a CSV cell, found by the checker: the model's file, then the data file's line and column */
    support_write_text(in_dir("t.csv"), "a,b,label\n1,2,0\n3,four,1\n");
    support_write_text(in_dir("c.bnn"), "data csv(\"t.csv\")\noptimizer sgd(lr=0.1)\nnetwork { dense(2) }\n");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s && %s train c.bnn --out c.h5 2>err.txt", dir, bnni());
    cr_expect_eq(WEXITSTATUS(system(cmd)), 1);
    char *e = support_slurp(in_dir("err.txt"), NULL);
    cr_expect(strcmp(e, "c.bnn: error: t.csv:3:2: 'four' is not a number\n") == 0, "%s", e);
    free(e);
    cr_expect(access(in_dir("c.h5"), F_OK) != 0);
    /* a CIFAR-10 batch of the wrong length, with an older checkpoint at --out left as it was */
    datagen_python(dir, "os.makedirs('cf', exist_ok=True)\n"
                        "for k in range(1, 6): open('cf/data_batch_%d.bin' % k, 'wb').write(bytes(3073 * 2))\n"
                        "open('cf/test_batch.bin', 'wb').write(bytes(3073))\n");
    snprintf(text, sizeof text, "data cifar10(\"%s/cf\", batch=2)\noptimizer sgd(lr=0.1)\nepochs 1\n"
             "network { flatten; dense(10) }\n", dir);
    support_write_text(in_dir("cf.bnn"), text);
    cr_assert_eq(run("train %s --out %s --quiet", in_dir("cf.bnn"), in_dir("cf.h5")), 0);
    datagen_python(dir, "open('cf/data_batch_2.bin', 'wb').write(bytes(3073 * 2 - 1))\n");
    char *before = support_slurp(in_dir("cf.h5"), NULL);
    st = run("train %s --out %s", in_dir("cf.bnn"), in_dir("cf.h5"));
    expect_one_line(st, "cf/data_batch_2.bin: 6145 bytes is not a whole number of 3073-byte records");
    char *after = support_slurp(in_dir("cf.h5"), NULL);
    cr_expect(strcmp(before, after) == 0 || memcmp(before, after, 512) == 0, "the old checkpoint is unchanged");
    cr_expect(support_same_bytes(in_dir("cf.h5"), in_dir("cf.h5")));
    free(before), free(after);
}
