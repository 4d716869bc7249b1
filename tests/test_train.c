/* End to end, through the built binary ($BNNI, default ./bnni) on the real Fashion-MNIST with a small --limit:
 * training progress and the epoch line, save -> load -> eval, predict, inspect, determinism, exact resume
 * (after an epoch and after SIGTERM mid-epoch), divergence, a full disk, and every bad input: one line on
 * stderr, exit status 1, and an existing checkpoint left untouched. Checkpoints are compared through ckpt_read. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "runtime/ckpt.h"
#include "tests/same_run.h"
#include "tests/support.h"

#define DATA "/usr/share/datasets/fashion-mnist"

/* The seed's LeNet-BN (models/lenet_bn.bnn), written here so the tests depend on no file but the data set.
 * OPTIMIZER is replaced by each test's optimizer line. */
static const char lenet[] = "model lenet_bn\n"
                            "data fashion_mnist(batch=128)\n"
                            "OPTIMIZER\n"
                            "loss cross_entropy\n"
                            "epochs 10\n" SUPPORT_LENET_BN_NETWORK;

/* The seed's optimizer, and two whose checkpoints carry optimizer state (momentum buffers, Adam moments) and
 * whose test accuracy on a few thousand images is steadier than lr = 1.0's. */
#define SEED_SGD "optimizer sgd(lr=1.0)"
#define MOMENTUM "optimizer sgd(lr=0.1, momentum=0.9)"
#define ADAM "optimizer adam(lr=0.01)"

static char dir[64], model[128]; /* the temporary directory and dir/m.bnn */

static void make_dir(void)
{
    support_make_tmpdir(dir, sizeof dir, "train");
    snprintf(model, sizeof model, "%s/m.bnn", dir);
}

static void remove_dir(void) { support_remove_tree(dir); }

/* Each test takes seconds; the timeout only catches a hang, generously so that an ASan build passes too. */
TestSuite(train, .init = make_dir, .fini = remove_dir, .timeout = 400);

static const char *in_dir(const char *name) { return support_path(dir, name); }

/* `bnni ARGS` (formatted like printf) with stdout in dir/out.txt and stderr in dir/err.txt (support_run). */
#define run(...) support_run(dir, __VA_ARGS__)

/* Caller frees. */
static char *out_text(void) { return support_run_out(dir); }
/* Caller frees. */
static char *err_text(void) { return support_run_err(dir); }

/* The run failed with exit status 1 and exactly one stderr line "bnni: error: ..." containing each needle. */
static void expect_one_line_error(int status, const char *n1, const char *n2)
{
    support_expect_one_line_error(dir, status, n1, n2);
}

typedef struct Epoch {
    int epoch, epochs;
    double train_loss, train_acc, test_loss, test_acc, seconds;
} Epoch;

/* Parses the seed's epoch lines: "epoch 3/10  train loss 0.3158 acc 0.8831 | test loss 0.3531 acc 0.8725 | 1.9 s
 * 31,500 img/s". Returns how many. */
static int parse_epochs(const char *out, Epoch *e, int max)
{
    int n = 0;
    for (const char *p = out; p && *p && n < max; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        char ips[32];
        if (sscanf(p, "epoch %d/%d  train loss %lf acc %lf | test loss %lf acc %lf | %lf s %31s img/s", &e[n].epoch,
                   &e[n].epochs, &e[n].train_loss, &e[n].train_acc, &e[n].test_loss, &e[n].test_acc,
                   &e[n].seconds, ips) == 8)
            n++;
    }
    return n;
}

static void write_model(const char *name, const char *text) { support_write_text(in_dir(name), text); }

/* LeNet-BN with the given optimizer line, into text. */
static void lenet_text(char *text, size_t len, const char *optimizer)
{
    const char *at = strstr(lenet, "OPTIMIZER");
    snprintf(text, len, "%.*s%s%s", (int)(at - lenet), lenet, optimizer, at + 9);
}

static void write_lenet(const char *path, const char *optimizer)
{
    char text[2048];
    lenet_text(text, sizeof text, optimizer);
    support_write_text(path, text);
}

/* Two checkpoints hold the same run: every tensor, optimizer and train state (both RNG streams included) and every
 * metric but the timings, bit for bit (tests/same_run.h). */
static void expect_same_run(const char *a_path, const char *b_path) { same_run_expect(a_path, b_path, b_path); }

/* A quick good checkpoint (1 epoch on 500 images) at dir/name. */
static void small_checkpoint(const char *name)
{
    write_lenet(model, MOMENTUM);
    int st = run("train %s --epochs 1 --limit 500 --test-limit 500 --threads 1 --quiet --out %s", model,
                 in_dir(name));
    char *e = err_text();
    cr_assert_eq(st, 0, "training failed: %s", e);
    free(e);
}

/* ---------------------------------------------------------------- training, eval, predict, inspect */

Test(train, learns_and_eval_predict_agree)
{
    write_lenet(model, ADAM);
    int st = run("train %s --epochs 3 --limit 3000 --threads 1 --out %s --metrics %s", model, in_dir("a.h5"),
                 in_dir("a.csv"));
    char *out = out_text(), *e = err_text();
    cr_assert_eq(st, 0, "stderr: %s", e);
    cr_expect_eq(e[0], '\0', "stderr is not a terminal, so no progress bar: %s", e);
    Epoch ep[4];
    cr_assert_eq(parse_epochs(out, ep, 4), 3, "stdout: %s", out);
    for (int i = 0; i < 3; i++)
        cr_expect(ep[i].epoch == i + 1 && ep[i].epochs == 3);
    /* Progress: the loss falls and the test accuracy is far above chance (0.1) after 9,000 images. */
    cr_expect(ep[2].train_loss < ep[0].train_loss, "train loss %g -> %g", ep[0].train_loss, ep[2].train_loss);
    cr_expect(ep[2].test_acc > 0.6, "test accuracy %g", ep[2].test_acc);
    /* The CSV has the same figures, one row per epoch. */
    char *csv = support_slurp(in_dir("a.csv"), NULL), *row = strchr(csv, '\n');
    cr_expect(strncmp(csv, "epoch,train_loss,train_acc,test_loss,test_acc,seconds,images_per_second\n", 72) == 0);
    for (int i = 0; i < 3 && row; i++, row = strchr(row + 1, '\n')) {
        int k;
        double v[6];
        cr_assert_eq(sscanf(row + 1, "%d,%lf,%lf,%lf,%lf,%lf,%lf", &k, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]), 7);
        cr_expect(k == i + 1 && fabs(v[0] - ep[i].train_loss) < 6e-5 && fabs(v[3] - ep[i].test_acc) < 6e-5);
        cr_expect(fabs(v[5] * v[4] / 3000 - 1) < 0.01, "images_per_second is the training phase's");
    }
    /* save -> load -> eval: the same loss and accuracy as the last epoch line. */
    st = run("eval %s --threads 1", in_dir("a.h5"));
    char *ev = out_text(), want[128];
    cr_assert_eq(st, 0, "%s", ev);
    snprintf(want, sizeof want, "test loss %.4f accuracy %.4f (10000 images)\n", ep[2].test_loss, ep[2].test_acc);
    size_t lw = strlen(want), le = strlen(ev);
    cr_expect(le >= lw && strcmp(ev + le - lw, want) == 0, "eval printed '%s', training '%s'", ev, want);
    /* predict on the whole test file agrees with eval's accuracy. */
    st = run("predict %s %s/t10k-images-idx3-ubyte.gz --threads 1", in_dir("a.h5"), DATA);
    cr_assert_eq(st, 0);
    char *pred = out_text(), *line = strchr(pred, '\n');
    gzFile lf = gzopen(DATA "/t10k-labels-idx1-ubyte.gz", "rb");
    unsigned char labels[8 + 10000];
    cr_assert(lf && gzread(lf, labels, sizeof labels) == (int)sizeof labels);
    gzclose(lf);
    int rows = 0, correct = 0;
    for (; line && line[1]; line = strchr(line + 1, '\n')) {
        int idx, cls;
        double p;
        char name[64];
        cr_assert_eq(sscanf(line + 1, "%*[^:]:%d,%d,%63[^,],%lf", &idx, &cls, name, &p), 4, "row: %.80s", line + 1);
        cr_assert(idx == rows && p > 0.1 && p <= 1.0);
        correct += cls == labels[8 + idx];
        rows++;
    }
    cr_expect_eq(rows, 10000);
    cr_expect(fabs(correct / 10000.0 - ep[2].test_acc) < 1e-9, "predict %d correct, eval %g", correct, ep[2].test_acc);
    /* inspect shows the model, the epoch, the history and the tensors. */
    cr_assert_eq(run("inspect %s", in_dir("a.h5")), 0);
    char *ins = out_text();
    const char *needles[] = {"model           lenet_bn", "epoch           3", "  | optimizer adam(lr=0.01)",
                             "[6, 1, 5, 5]", "moving_var per channel:", "momentum 0.9", "metrics (3 epochs)"};
    for (size_t i = 0; i < sizeof needles / sizeof *needles; i++)
        cr_expect(strstr(ins, needles[i]), "inspect lacks '%s':\n%s", needles[i], ins);
    free(out), free(e), free(csv), free(ev), free(pred), free(ins);
}

/* A PGM file of test image 0 is classified as predict classifies it in the IDX file. */
Test(train, predict_reads_pgm)
{
    small_checkpoint("s.h5");
    gzFile f = gzopen(DATA "/t10k-images-idx3-ubyte.gz", "rb");
    unsigned char img[16 + 784];
    cr_assert(f && gzread(f, img, sizeof img) == (int)sizeof img);
    gzclose(f);
    FILE *p = fopen(in_dir("x.pgm"), "wb");
    fprintf(p, "P5\n28 28\n255\n");
    fwrite(img + 16, 1, 784, p);
    fclose(p);
    cr_assert_eq(run("predict %s %s %s/t10k-images-idx3-ubyte.gz --threads 1", in_dir("s.h5"), in_dir("x.pgm"), DATA),
                 0);
    char *out = out_text();
    char *l1 = strchr(out, '\n'), *l2 = l1 ? strchr(l1 + 1, '\n') : NULL, *l3 = l2 ? strchr(l2 + 1, '\n') : NULL;
    cr_assert(l3, "%s", out);
    *l2 = *l3 = '\0';
    cr_expect(strncmp(out, "file,class,name,probability", 27) == 0, "%s", out);
    /* Rows "FILE,CLASS,NAME,P" and "FILE:0,CLASS,NAME,P": all but the file name agree. */
    cr_expect_str_eq(strchr(l1 + 1, ','), strchr(l2 + 1, ','));
    cr_expect(strncmp(l1 + 1, in_dir("x.pgm"), strlen(in_dir("x.pgm"))) == 0);
    free(out);
    cr_expect_eq(run("predict %s %s", in_dir("s.h5"), in_dir("s.h5")), 1, "a checkpoint is not an image");
    free(err_text());
}

/* ---------------------------------------------------------------- determinism and exact resume */

Test(train, deterministic_and_resume_is_exact)
{
    write_lenet(model, MOMENTUM);
    const char *m = model, *o = "--limit 2000 --test-limit 1000 --threads 1";
    cr_assert_eq(run("train %s --epochs 3 %s --quiet --out %s", m, o, in_dir("a.h5")), 0);
    cr_assert_eq(run("train %s --epochs 3 %s --quiet --out %s", m, o, in_dir("c.h5")), 0);
    expect_same_run(in_dir("a.h5"), in_dir("c.h5"));
    cr_assert_eq(run("train %s --epochs 2 %s --quiet --out %s", m, o, in_dir("b.h5")), 0);
    cr_assert_eq(run("train %s --resume %s --epochs 3 %s --out %s", m, in_dir("b.h5"), o, in_dir("b.h5")), 0);
    char *out = out_text();
    Epoch ep[4];
    cr_expect_eq(parse_epochs(out, ep, 4), 1, "--epochs is the total: one more epoch: %s", out);
    cr_expect_eq(ep[0].epoch, 3);
    free(out);
    expect_same_run(in_dir("a.h5"), in_dir("b.h5"));
}

Test(train, deterministic_with_two_threads)
{
    write_lenet(model, SEED_SGD);
    const char *m = model, *two = "--epochs 1 --limit 1000 --test-limit 1000 --threads 2 --quiet";
    cr_assert_eq(run("train %s %s --seed 5 --out %s", m, two, in_dir("a.h5")), 0);
    cr_assert_eq(run("train %s %s --seed 5 --out %s", m, two, in_dir("b.h5")), 0);
    expect_same_run(in_dir("a.h5"), in_dir("b.h5"));
    cr_assert_eq(run("train %s %s --seed 6 --out %s", m, two, in_dir("c.h5")), 0);
    Ckpt a, c;
    char err[256];
    cr_assert_eq(ckpt_read(in_dir("a.h5"), &a, err, sizeof err), 0);
    cr_assert_eq(ckpt_read(in_dir("c.h5"), &c, err, sizeof err), 0);
    cr_expect_neq(memcmp(a.tensors[0].data, c.tensors[0].data, a.tensors[0].size * sizeof(float)), 0,
                  "--seed changes the initialisation");
    ckpt_free(&a);
    ckpt_free(&c);
}

/* Starts `bnni train PATH --epochs 2 --limit LIMIT` with stdout on a pipe and stderr in dir/spawn-err.txt;
 * returns its pid and the read end. */
static pid_t spawn_train(const char *path, const char *out, int limit, int *fd)
{
    char lim[32];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *args[] = {"train", path, "--epochs", "2", "--limit", lim, "--test-limit", "1000", "--threads", "1",
                          "--out", out, NULL};
    return support_spawn(args, &(SupportSpawn){.err_path = in_dir("spawn-err.txt")}, fd);
}

/* Reads the child's stdout until epoch 1's line; returns that epoch's training seconds, or -1. */
static double wait_first_epoch(int fd)
{
    char buf[4096];
    size_t n = 0;
    ssize_t r;
    Epoch ep[1];
    while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0) {
        n += (size_t)r;
        buf[n] = '\0';
        if (strchr(buf, '\n') && parse_epochs(buf, ep, 1) == 1)
            return ep[0].seconds;
    }
    return -1;
}

/* Sends sig to the training child, reaps it and returns its stderr (caller frees), failing the test unless it
 * exited with `status`. */
static char *stop_child(pid_t pid, int fd, int sig, int status)
{
    int st;
    kill(pid, sig);
    waitpid(pid, &st, 0);
    close(fd);
    char *e = support_slurp(in_dir("spawn-err.txt"), NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == status, "status %d, stderr: %s", st, e);
    return e;
}

/* Resumes the interrupted checkpoint ckpt to 2 epochs of `limit` images and checks that it ends exactly where an
 * uninterrupted run of model does. */
static void expect_resume_matches(const char *model_path, const char *ckpt, int limit)
{
    char o[128];
    snprintf(o, sizeof o, "--epochs 2 --limit %d --test-limit 1000 --threads 1 --quiet", limit);
    cr_assert_eq(run("train %s --resume %s %s --out %s", model_path, ckpt, o, ckpt), 0);
    cr_assert_eq(run("train %s %s --out %s", model_path, o, in_dir("u.h5")), 0);
    expect_same_run(in_dir("u.h5"), ckpt);
}

/* A SIGTERM sent `part` of epoch 1's training time into epoch 2. Returns 1 when the child stopped with 143 and a
 * checkpoint of epoch 2's middle; 0 when the signal missed that middle (the child had finished, or was between
 * steps of the evaluation): on a busy machine epoch 2 can run much faster than epoch 1 did. */
static int sigterm_mid_epoch(const char *m, int limit, double part)
{
    int fd, st;
    pid_t pid = spawn_train(m, in_dir("s.h5"), limit, &fd);
    double secs = wait_first_epoch(fd) * part;
    cr_assert(secs >= 0, "no epoch line from the child");
    struct timespec pause = {(time_t)secs, (long)((secs - (time_t)secs) * 1e9)};
    nanosleep(&pause, NULL);
    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
    close(fd);
    char *e = support_slurp(in_dir("spawn-err.txt"), NULL);
    Ckpt c;
    char err[256];
    int hit = WIFEXITED(st) && WEXITSTATUS(st) == 143 && strstr(e, "interrupted by SIGTERM at epoch 2") &&
              ckpt_read(in_dir("s.h5"), &c, err, sizeof err) == 0;
    if (hit) {
        hit = c.ts.epoch == 1 && c.ts.position > 0 && c.ts.position < limit;
        ckpt_free(&c);
    }
    if (!hit)
        cr_log_info("the SIGTERM at %.2f of epoch 1's time missed epoch 2's middle (status %d): %s", part, st, e);
    free(e);
    return hit;
}

Test(train, sigterm_mid_epoch_saves_and_resumes_exactly)
{
    const int limit = 10000;
    write_lenet(model, ADAM);
    /* Epoch 2 trains about as long as epoch 1 did: half of that lands in its middle, whatever the machine's speed
     * -- unless the machine was busier during epoch 1; then a sooner signal. */
    int hit = 0;
    for (double part = 0.5; !hit && part > 0.05; part /= 2)
        hit = sigterm_mid_epoch(model, limit, part);
    cr_assert(hit, "no SIGTERM landed in the middle of epoch 2 (the log says where they landed)");
    expect_resume_matches(model, in_dir("s.h5"), limit);
}

/* SIGINT right after epoch 1's line: exit 130 and a checkpoint that holds epoch 1 (and, if the signal came after
 * a step of epoch 2, its position) -- resumable either way, and exactly. */
Test(train, sigint_exits_130_with_a_resumable_checkpoint)
{
    write_lenet(model, MOMENTUM);
    int fd;
    pid_t pid = spawn_train(model, in_dir("i.h5"), 2000, &fd);
    cr_assert(wait_first_epoch(fd) >= 0, "no epoch line from the child");
    char *e = stop_child(pid, fd, SIGINT, 130);
    cr_expect(strstr(e, "bnni: interrupted by SIGINT") && strstr(e, "--resume"), "%s", e);
    free(e);
    Ckpt c;
    char err[256];
    cr_assert_eq(ckpt_read(in_dir("i.h5"), &c, err, sizeof err), 0, "%s", err);
    cr_expect_eq(c.ts.epoch, 1);
    cr_expect_eq(c.metrics.n, 1);
    ckpt_free(&c);
    /* --resume from it ends exactly where an uninterrupted run does. */
    expect_resume_matches(model, in_dir("i.h5"), 2000);
}

/* ---------------------------------------------------------------- failures */

Test(train, divergence_stops_with_status_3_and_keeps_the_checkpoint)
{
    small_checkpoint("keep.h5");
    support_copy_file(in_dir("keep.h5"), in_dir("orig.h5"), -1);
    write_model("d.bnn", "model boom\ndata fashion_mnist(batch=64)\noptimizer sgd(lr=1.0e30)\n"
                         "network {\n  input 1x28x28\n  flatten\n  dense(32)\n  relu\n  dense(10)\n}\n");
    int st = run("train %s --epochs 1 --limit 2000 --threads 1 --out %s", in_dir("d.bnn"), in_dir("keep.h5"));
    char *e = err_text();
    cr_expect_eq(st, 3, "status %d: %s", st, e);
    cr_expect(strstr(e, "bnni: error: training diverged at epoch 1, step "), "%s", e);
    cr_expect(strstr(e, "non-finite") && strstr(e, "dense"), "names the layer: %s", e);
    cr_expect(support_same_bytes(in_dir("keep.h5"), in_dir("orig.h5")), "the last good checkpoint was replaced");
    free(e);
}

/* A step whose update overflows the weights while its loss was finite (weight decay of 1e30 at lr 1e30) stops
 * at that step, naming the first bad value, not one step later at a loss of NaN. At 2 threads, where each thread
 * checks the values it updated. */
Test(train, update_to_a_non_finite_weight_stops_at_that_step)
{
    write_model("w.bnn", "model boom\ndata fashion_mnist(batch=64)\noptimizer sgd(lr=1.0e30, weight_decay=1.0e30)\n"
                         "network {\n  input 1x28x28\n  flatten\n  dense(32)\n  relu\n  dense(10)\n}\n");
    int st = run("train %s --epochs 1 --limit 2000 --threads 2 --out %s", in_dir("w.bnn"), in_dir("w.h5"));
    char *e = err_text();
    cr_expect_eq(st, 3, "status %d: %s", st, e);
    cr_expect(strstr(e, "training diverged at epoch 1, step 1: non-finite value in dense_1/weight[0]"), "%s", e);
    free(e);
}

/* The same run diverging after a good epoch: its epoch-1 checkpoint stays as it was, byte for byte. The resume
 * takes the weights and momentum of a sane run and a model file whose lr is 1e30 (the checkpoint's own lr is
 * not used on resume: the model file's is). */
Test(train, divergence_mid_run_leaves_the_last_good_checkpoint)
{
    write_lenet(model, MOMENTUM);
    const char *o = "--limit 1000 --test-limit 500 --threads 1";
    cr_assert_eq(run("train %s --epochs 1 %s --quiet --out %s", model, o, in_dir("g.h5")), 0);
    support_copy_file(in_dir("g.h5"), in_dir("orig.h5"), -1);
    write_lenet(in_dir("boom.bnn"), "optimizer sgd(lr=1e30, momentum=0.9)");
    int st = run("train %s --resume %s --epochs 3 %s --out %s", in_dir("boom.bnn"), in_dir("g.h5"), o, in_dir("g.h5"));
    char *e = err_text(), *out = out_text(), want[512];
    cr_expect_eq(st, 3, "status %d: %s", st, e);
    int step = 0;
    cr_expect(sscanf(e, "bnni: error: training diverged at epoch 2, step %d: ", &step) == 1 && step >= 1 && step <= 8,
              "epoch 2 of a run of 8 steps per epoch: %s", e);
    cr_expect(strstr(e, "non-finite") && (strstr(e, "batchnorm_") || strstr(e, "conv2d_") || strstr(e, "dense_")),
              "names the first bad layer: %s", e);
    snprintf(want, sizeof want, "; the last good checkpoint %s is unchanged\n", in_dir("g.h5"));
    cr_expect(strlen(e) > strlen(want) && strcmp(e + strlen(e) - strlen(want), want) == 0 && strchr(e, '\n')[1] == 0,
              "one line ending '%s': %s", want, e);
    cr_expect_eq(parse_epochs(out, (Epoch[1]){0}, 1), 0, "no epoch line for the diverged epoch: %s", out);
    cr_expect(support_same_bytes(in_dir("g.h5"), in_dir("orig.h5")), "the last good checkpoint was replaced");
    free(e), free(out);
}

/* In the child: a file-size limit smaller than a LeNet checkpoint, so that the save's write fails. SIGXFSZ
 * keeps its default action (death), as under `ulimit -f`: bnni ignores it itself, to report the failed write. */
static void small_file_limit(const void *unused)
{
    (void)unused;
    struct rlimit rl = {16384, 16384};
    signal(SIGXFSZ, SIG_DFL);
    setrlimit(RLIMIT_FSIZE, &rl);
}

Test(train, full_disk_keeps_the_checkpoint_and_removes_the_temp_file)
{
    small_checkpoint("keep.h5");
    support_copy_file(in_dir("keep.h5"), in_dir("orig.h5"), -1);
    write_lenet(model, MOMENTUM);
    const char *args[] = {"train", model, "--epochs", "1", "--limit", "500", "--threads", "1",
                          "--out", in_dir("keep.h5"), NULL};
    SupportSpawn how = {.out_path = "/dev/null", .err_path = in_dir("full-err.txt"), .prepare = small_file_limit};
    int st = support_reap(support_spawn(args, &how, NULL));
    char *e = support_slurp(in_dir("full-err.txt"), NULL);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %d: %s", st, e);
    cr_expect(strstr(e, "cannot save the checkpoint") && strstr(e, "File too large"), "%s", e);
    cr_expect(support_same_bytes(in_dir("keep.h5"), in_dir("orig.h5")));
    DIR *d = opendir(dir);
    struct dirent *ent;
    while ((ent = readdir(d)))
        cr_expect(strncmp(ent->d_name, ".keep.h5.", 9) != 0, "temporary file %s left behind", ent->d_name);
    closedir(d);
    free(e);
}

/* A data directory of symlinks to the real files, with `bad` (written as given) in place of one of them. */
static const char *data_with(const char *name, const void *bad, size_t len, int gz)
{
    const char *d = in_dir("data");
    mkdir(d, 0755);
    const char *files[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                            "t10k-labels-idx1-ubyte.gz"};
    char from[600], to[600];
    for (int i = 0; i < 4; i++) {
        snprintf(to, sizeof to, "%s/%s", d, files[i]);
        unlink(to);
        snprintf(from, sizeof from, "%s/%s", DATA, files[i]);
        if (strcmp(files[i], name) != 0)
            cr_assert_eq(symlink(from, to), 0);
    }
    snprintf(to, sizeof to, "%s/%s", d, name);
    support_write_bytes(to, bad, len, gz);
    return d;
}

/* Trains on a bad data directory over an existing checkpoint: one-line error, status 1, checkpoint untouched. */
static void expect_bad_data(const char *data, const char *n1, const char *n2)
{
    int st = run("train %s --epochs 1 --limit 500 --threads 1 --data %s --out %s", model, data,
                 in_dir("keep.h5"));
    expect_one_line_error(st, n1, n2);
    cr_expect(support_same_bytes(in_dir("keep.h5"), in_dir("orig.h5")), "a failed run replaced the checkpoint");
}

static void be32(unsigned char *b, unsigned v)
{
    b[0] = (unsigned char)(v >> 24), b[1] = (unsigned char)(v >> 16), b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

Test(train, bad_data_files)
{
    small_checkpoint("keep.h5");
    support_copy_file(in_dir("keep.h5"), in_dir("orig.h5"), -1);
    expect_bad_data("/nonexistent-bnni-data", "/nonexistent-bnni-data/train-images-idx3-ubyte.gz: cannot open",
                    "No such file");
    static unsigned char labels[8 + 10000];
    gzFile f = gzopen(DATA "/t10k-labels-idx1-ubyte.gz", "rb");
    cr_assert(f && gzread(f, labels, sizeof labels) == (int)sizeof labels);
    gzclose(f);
    /* truncated, gzipped and not */
    expect_bad_data(data_with("t10k-labels-idx1-ubyte.gz", labels, 5008, 1),
                    "t10k-labels-idx1-ubyte.gz: truncated: expected 10008 bytes, found 5008", NULL);
    expect_bad_data(data_with("t10k-labels-idx1-ubyte.gz", labels, 9000, 0),
                    "t10k-labels-idx1-ubyte.gz: truncated: expected 10008 bytes, found 9000", NULL);
    /* a gzip file cut in the middle of its compressed stream */
    size_t zlen;
    char *z = support_slurp(DATA "/t10k-labels-idx1-ubyte.gz", &zlen);
    expect_bad_data(data_with("t10k-labels-idx1-ubyte.gz", z, zlen / 2, 0), "t10k-labels-idx1-ubyte.gz: truncated",
                    "the gzip stream ends early");
    free(z);
    /* wrong magic */
    be32(labels, 0x803);
    expect_bad_data(data_with("t10k-labels-idx1-ubyte.gz", labels, sizeof labels, 1),
                    "t10k-labels-idx1-ubyte.gz: is an IDX image file", NULL);
    be32(labels, 0x0801abcd);
    expect_bad_data(data_with("t10k-labels-idx1-ubyte.gz", labels, sizeof labels, 0), "bad magic number 0x0801abcd",
                    NULL);
    /* sizes: a header promising more than the file holds, and fewer labels than images */
    be32(labels, 0x801), be32(labels + 4, 10001);
    expect_bad_data(data_with("t10k-labels-idx1-ubyte.gz", labels, sizeof labels, 1),
                    "truncated: expected 10009 bytes, found 10008", NULL);
    be32(labels + 4, 9999);
    expect_bad_data(data_with("t10k-labels-idx1-ubyte.gz", labels, sizeof labels - 1, 1),
                    "t10k-labels-idx1-ubyte.gz: holds 9999 labels, but", "holds 10000 images");
    unsigned char img[16] = {0};
    be32(img, 0x803), be32(img + 4, 60000), be32(img + 8, 32), be32(img + 12, 32);
    expect_bad_data(data_with("train-images-idx3-ubyte.gz", img, sizeof img, 1),
                    "train-images-idx3-ubyte.gz: truncated: expected 61440016 bytes, found 16", NULL);
}

/* Writes a copy of src with root attribute format_version = v. */
static void with_version(const char *src, const char *dst, long long v)
{
    support_copy_file(src, dst, -1);
    hid_t f = H5Fopen(dst, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0);
    hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_LLONG, &v);
    H5Aclose(a);
    H5Fclose(f);
}

Test(train, bad_checkpoints)
{
    small_checkpoint("good.h5");
    support_copy_file(in_dir("good.h5"), in_dir("keep.h5"), -1);
    support_write_text(in_dir("text.h5"), "not a checkpoint\n");
    expect_one_line_error(run("eval %s", in_dir("text.h5")), "text.h5: not an HDF5 file", NULL);
    size_t n;
    free(support_slurp(in_dir("good.h5"), &n));
    support_copy_file(in_dir("good.h5"), in_dir("cut.h5"), (long)n / 2);
    expect_one_line_error(run("eval %s", in_dir("cut.h5")), "cut.h5: not a readable HDF5 file (truncated", NULL);
    with_version(in_dir("good.h5"), in_dir("v2.h5"), 2);
    expect_one_line_error(run("inspect %s", in_dir("v2.h5")), "v2.h5: checkpoint format_version 2 is not supported",
                          NULL);
    expect_one_line_error(run("eval %s", in_dir("missing.h5")), "missing.h5: cannot open: No such file", NULL);
    /* A model the tensors do not fit: a 3x3 first conv, 12 channels in the second (so its batchnorm and the first
     * dense layer change too) and one more dense layer (dense_4) at the end. */
    char other[2048];
    lenet_text(other, sizeof other, MOMENTUM);
    memcpy(strstr(other, "conv2d(6, kernel=5)"), "conv2d(6, kernel=3)", 19);
    memcpy(strstr(other, "conv2d(16, kernel=5)"), "conv2d(12, kernel=5)", 20);
    char *end = strstr(other, "    dense(10)\n}");
    snprintf(end, sizeof other - (size_t)(end - other), "    dense(10)\n    sigmoid\n    dense(10)\n}\n");
    write_model("other.bnn", other);
    int st = run("eval %s --model %s", in_dir("good.h5"), in_dir("other.bnn"));
    expect_one_line_error(st, "10 tensors do not fit the model",
                          "is [6, 1, 5, 5] in the checkpoint, [6, 1, 3, 3] in the model");
    char *e = err_text();
    cr_expect(strstr(e, "is [120, 256] in the checkpoint, [120, 192] in the model"), "every mis-shaped tensor: %s", e);
    cr_expect(strstr(e, "is [16] in the checkpoint, [12] in the model"), "%s", e);
    cr_expect(strstr(e, "is [16, 6, 5, 5] in the checkpoint, [12, 6, 5, 5] in the model"), "%s", e);
    cr_expect(strstr(e, "missing layers/dense_4/weight [10, 10]") && strstr(e, "missing layers/dense_4/bias [10]"),
              "missing tensors: %s", e);
    free(e);
    /* Failed resumes and inits leave the checkpoint they would have written alone. */
    const char *m = model;
    expect_one_line_error(run("train %s --resume %s --out %s", m, in_dir("text.h5"), in_dir("keep.h5")),
                          "text.h5: not an HDF5 file", NULL);
    expect_one_line_error(run("train %s --init %s --limit 500 --out %s", in_dir("other.bnn"), in_dir("good.h5"),
                              in_dir("keep.h5")),
                          "good.h5: ", "tensors do not fit the model");
    expect_one_line_error(run("train %s --resume %s --limit 600 --epochs 2 --out %s", m, in_dir("good.h5"),
                              in_dir("keep.h5")),
                          "was trained on 500 images per epoch, this run has 600", NULL);
    expect_one_line_error(run("train %s --resume %s --limit 500 --epochs 2 --out %s", m, in_dir("v2.h5"),
                              in_dir("keep.h5")),
                          "format_version 2", NULL);
    cr_expect(support_same_bytes(in_dir("keep.h5"), in_dir("good.h5")), "a failed run replaced the checkpoint");
}

/* Every command's help ends with a newline, and its usage errors are two lines: "bnni CMD: error: ..." naming
 * the offending argument, then "usage: bnni CMD ...   (bnni help CMD)" (docs/errors.md). */
Test(train, help_texts_and_usage_errors_have_one_form)
{
    const char *cmds[] = {"check", "train", "eval", "inspect", "predict"};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        char want[128], *o, *e;
        cr_expect_eq(run("help %s", cmds[i]), 0);
        o = out_text();
        snprintf(want, sizeof want, "usage: bnni %s ", cmds[i]);
        cr_expect(strncmp(o, want, strlen(want)) == 0 && o[strlen(o) - 1] == '\n' && strstr(o, "\nexit status: "),
                  "bnni help %s:\n%s", cmds[i], o);
        free(o);
        cr_expect_eq(run("%s --help", cmds[i]), 0);
        free(out_text());
        cr_expect_eq(run("%s x --bogus", cmds[i]), 2);
        e = err_text();
        snprintf(want, sizeof want, "bnni %s: error: unknown option: --bogus\nusage: bnni %s ", cmds[i], cmds[i]);
        char *second = strchr(e, '\n');
        cr_expect(strncmp(e, want, strlen(want)) == 0 && second && strchr(second + 1, '\n') &&
                      strchr(second + 1, '\n')[1] == '\0',
                  "bnni %s --bogus:\n%s", cmds[i], e);
        snprintf(want, sizeof want, "   (bnni help %s)\n", cmds[i]);
        cr_expect(strstr(e, want), "bnni %s --bogus:\n%s", cmds[i], e);
        free(e);
    }
    cr_expect_eq(run(""), 2);
    char *e = err_text();
    cr_expect_str_eq(e, "bnni: error: no command given\nusage: bnni COMMAND [ARGS...]   (bnni --help lists the commands)\n");
    free(e);
    cr_expect_eq(run("frobnicate"), 2);
    e = err_text();
    cr_expect_str_eq(e, "bnni: error: unknown command 'frobnicate' (see 'bnni --help')\n");
    free(e);
}

Test(train, usage_errors)
{
    write_lenet(model, SEED_SGD);
    cr_expect_eq(run("train"), 2);
    cr_expect_eq(run("train %s --epochs 0", model), 2);
    cr_expect_eq(run("train %s --bogus", model), 2);
    cr_expect_eq(run("train %s --resume a.h5 --init b.h5", model), 2);
    cr_expect_eq(run("eval"), 2);
    cr_expect_eq(run("inspect"), 2);
    cr_expect_eq(run("predict %s", model), 2);
    char *e = err_text();
    cr_expect(strstr(e, "usage: bnni predict"), "%s", e);
    free(e);
}
