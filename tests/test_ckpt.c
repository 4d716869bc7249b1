/* Checkpoints: a write/read round trip of every field, the file as other HDF5 readers see it (raw HDF5 API and
 * h5ls), every rejected file (not HDF5, truncated, foreign format, other format_version), the atomic write
 * keeping the old file on a write error, and the fit check listing every missing, extra and mis-shaped tensor. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <hdf5.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/ckpt.h"
#include "tests/support.h"

static char dir[64];

static void make_dir(void) { support_make_tmpdir(dir, sizeof dir, "ckpt"); }

static int count_files(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d)
        closedir(d);
    return n;
}

static void remove_dir(void) { support_remove_tree(dir); }

TestSuite(ckpt, .init = make_dir, .fini = remove_dir);

static const char *path_of(const char *name) { return support_path(dir, name); }

/* A small hand-made checkpoint: conv1 (weight 2x1x3x3, bias 2), bn1 (four [2] tensors), one momentum buffer,
 * a train state stopped mid-epoch and two epochs of metrics. Data arrays are static (borrowed). */
static float w1[18], b1[2], gm[2], be[2], mm[2], mv[2], mom[18];
static int order[5] = {3, 1, 4, 0, 2};
static double col[6][2] = {{0.9, 0.5}, {0.7, 0.8}, {0.6, 0.45}, {0.75, 0.83}, {1.5, 1.25}, {40000, 48000}};

static void add(Ckpt *c, const char *path, float *data, int rank, int d0, int d1, int d2, int d3)
{
    CkptTensor *t = &c->tensors[c->ntensors++];
    t->path = strdup(path);
    t->rank = rank;
    t->dims[0] = d0, t->dims[1] = d1, t->dims[2] = d2, t->dims[3] = d3;
    t->size = 1;
    for (int i = 0; i < rank; i++)
        t->size *= (size_t)t->dims[i];
    t->data = data;
}

static void make_ckpt(Ckpt *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < 18; i++)
        w1[i] = 0.125f * (float)i - 1.0f, mom[i] = (float)i / 7.0f;
    b1[0] = 0.5f, b1[1] = -0.25f, gm[0] = 1.5f, gm[1] = 0.75f, be[0] = 0.1f, be[1] = -0.2f;
    mm[0] = 0.3f, mm[1] = 0.4f, mv[0] = 2.0f, mv[1] = 3.0f;
    c->borrowed = 1;
    c->format_version = 1;
    c->model_source = strdup("model tiny\n# with a second line\n");
    c->model_name = strdup("tiny");
    c->bnni_version = strdup("0.1.0");
    c->created = strdup("2024-01-02T03:04:05Z");
    c->epoch = 2;
    c->seed = 18446744073709551557ull; /* above 2^63: must survive as unsigned */
    strcpy(c->normalize, "standard");
    c->data_mean = 0.2860405969887955, c->data_std = 0.35302424451492237;
    c->layers = calloc(2, sizeof *c->layers);
    c->layers[0] = (CkptLayer){.name = strdup("conv1"), .type = strdup("conv2d"), .nargs = 2};
    c->layers[0].args[0] = (CkptArg){.key = "out", .type = AT_INT, .num = 2};
    c->layers[0].args[1] = (CkptArg){.key = "bias", .type = AT_BOOL, .num = 1};
    c->layers[1] = (CkptLayer){.name = strdup("bn1"), .type = strdup("batchnorm"), .nargs = 2};
    c->layers[1].args[0] = (CkptArg){.key = "momentum", .type = AT_NUM, .num = 0.9};
    c->layers[1].args[1] = (CkptArg){.key = "eps", .type = AT_NUM, .num = 1e-5};
    c->nlayers = 2;
    c->tensors = calloc(9, sizeof *c->tensors);
    add(c, "layers/conv1/weight", w1, 4, 2, 1, 3, 3);
    add(c, "layers/conv1/bias", b1, 1, 2, 0, 0, 0);
    add(c, "layers/bn1/gamma", gm, 1, 2, 0, 0, 0);
    add(c, "layers/bn1/beta", be, 1, 2, 0, 0, 0);
    add(c, "layers/bn1/moving_mean", mm, 1, 2, 0, 0, 0);
    add(c, "layers/bn1/moving_var", mv, 1, 2, 0, 0, 0);
    add(c, "optimizer/conv1/weight/momentum_buffer", mom, 4, 2, 1, 3, 3);
    c->has_optimizer = 1;
    c->opt = (OptSpec){.kind = OPT_SGD, .lr = 0.5, .momentum = 0.9, .weight_decay = 1e-4, .nesterov = 1};
    c->opt_steps = 123;
    c->has_train_state = 1;
    c->ts = (TrainState){.epoch = 2, .position = 2, .order = order, .norder = 5, .batch = 2, .loss_sum = 1.25,
                         .correct = 1, .seconds = 0.5, .lr = 0.25};
    rng_seed(&c->ts.shuffle_rng, 11);
    rng_seed(&c->ts.net_rng, 12);
    c->metrics = (CkptMetrics){2, 2, col[0], col[1], col[2], col[3], col[4], col[5], 0, NULL, NULL};
}

static void write_ok(const char *path)
{
    Ckpt c;
    char err[512];
    make_ckpt(&c);
    cr_assert_eq(ckpt_write(path, &c, err, sizeof err), 0, "%s", err);
    ckpt_free(&c);
}

Test(ckpt, round_trip_keeps_every_field)
{
    Ckpt a, b;
    char err[512];
    make_ckpt(&a);
    const char *p = path_of("rt.h5");
    cr_assert_eq(ckpt_write(p, &a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ckpt_read(p, &b, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(b.model_source, a.model_source);
    cr_expect_str_eq(b.model_name, "tiny");
    cr_expect_str_eq(b.created, a.created);
    cr_expect_eq(b.epoch, 2);
    cr_expect_eq(b.seed, a.seed);
    cr_expect_str_eq(b.normalize, "standard");
    cr_expect_eq(b.data_std, a.data_std);
    cr_assert_eq(b.nlayers, 2);
    cr_expect_str_eq(b.layers[1].name, "bn1");
    cr_expect_str_eq(b.layers[1].type, "batchnorm");
    cr_assert_eq(b.layers[1].nargs, 2);
    cr_expect_str_eq(b.layers[1].args[0].key, "momentum");
    cr_expect(b.layers[1].args[0].num == 0.9 && b.layers[1].args[1].num == 1e-5, "as written, in double");
    cr_assert_eq(b.layers[0].nargs, 2);
    cr_expect(!strcmp(b.layers[0].args[0].key, "out") && b.layers[0].args[0].num == 2);
    cr_expect(!strcmp(b.layers[0].args[1].key, "bias") && b.layers[0].args[1].num == 1);
    cr_assert_eq(b.ntensors, a.ntensors);
    for (int i = 0; i < a.ntensors; i++) {
        cr_expect_str_eq(b.tensors[i].path, a.tensors[i].path, "network order is kept");
        cr_expect_eq(b.tensors[i].rank, a.tensors[i].rank);
        cr_expect_arr_eq(b.tensors[i].dims, a.tensors[i].dims, sizeof(int) * (size_t)a.tensors[i].rank);
        cr_expect_arr_eq(b.tensors[i].data, a.tensors[i].data, a.tensors[i].size * sizeof(float));
    }
    cr_expect(b.has_optimizer && b.opt.kind == OPT_SGD && b.opt.momentum == 0.9 && b.opt.nesterov == 1);
    cr_expect(b.opt.weight_decay == 1e-4 && b.opt.lr == 0.5 && b.opt_steps == 123);
    cr_expect(b.has_train_state && b.ts.epoch == 2 && b.ts.position == 2 && b.ts.norder == 5 && b.ts.batch == 2);
    cr_expect(b.ts.loss_sum == 1.25 && b.ts.correct == 1 && b.ts.seconds == 0.5 && b.ts.lr == 0.25);
    cr_expect_arr_eq(b.ts.order, order, sizeof order);
    cr_expect_arr_eq(b.ts.shuffle_rng.s, a.ts.shuffle_rng.s, sizeof a.ts.shuffle_rng.s);
    cr_expect_arr_eq(b.ts.net_rng.s, a.ts.net_rng.s, sizeof a.ts.net_rng.s);
    cr_assert_eq(b.metrics.n, 2);
    cr_expect(b.metrics.test_acc[1] == 0.83 && b.metrics.images_per_second[0] == 40000);
    ckpt_free(&a);
    ckpt_free(&b);
}

/* What another HDF5 reader sees, through the raw C API (not ckpt.c's reader). */
Test(ckpt, raw_hdf5_view)
{
    const char *p = path_of("raw.h5");
    write_ok(p);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0);
    hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
    long long v = 0;
    H5Aread(a, H5T_NATIVE_LLONG, &v);
    H5Aclose(a);
    cr_expect_eq(v, 1);
    a = H5Aopen(f, "format", H5P_DEFAULT);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    char *s = NULL;
    H5Aread(a, t, &s);
    cr_expect_str_eq(s, "bnni-checkpoint");
    H5free_memory(s);
    H5Tclose(t);
    H5Aclose(a);
    hid_t d = H5Dopen2(f, "/layers/conv1/weight", H5P_DEFAULT);
    hid_t sp = H5Dget_space(d), ty = H5Dget_type(d);
    hsize_t dims[4];
    cr_expect_eq(H5Sget_simple_extent_dims(sp, dims, NULL), 4);
    cr_expect(dims[0] == 2 && dims[1] == 1 && dims[2] == 3 && dims[3] == 3);
    cr_expect(H5Tequal(ty, H5T_IEEE_F32LE) > 0, "float32 little-endian on disk");
    float got[18];
    H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, got);
    cr_expect(got[0] == -1.0f && got[17] == 1.125f);
    H5Tclose(ty), H5Sclose(sp), H5Dclose(d);
    d = H5Dopen2(f, "/metrics/test_acc", H5P_DEFAULT);
    double acc[2];
    H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, acc);
    cr_expect(acc[0] == 0.75 && acc[1] == 0.83);
    H5Dclose(d);
    H5Fclose(f);
}

/* 1 when h5ls output has a line "NAME<spaces>WHAT". */
static int listed(const char *out, const char *name, const char *what)
{
    for (const char *p = strstr(out, name); p; p = strstr(p + 1, name)) {
        const char *q = p + strlen(name);
        if (*q != ' ' || (p > out && p[-1] != '\n'))
            continue;
        while (*q == ' ')
            q++;
        if (strncmp(q, what, strlen(what)) == 0)
            return 1;
    }
    return 0;
}

Test(ckpt, h5ls_lists_the_tensors)
{
    const char *p = path_of("ls.h5");
    write_ok(p);
    char cmd[600], out[8192] = "";
    snprintf(cmd, sizeof cmd, "h5ls -r %s 2>&1", p);
    FILE *f = popen(cmd, "r");
    cr_assert(f);
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    cr_assert_eq(pclose(f), 0, "h5ls failed: %s", out);
    cr_expect(listed(out, "/layers/conv1/weight", "Dataset {2, 1, 3, 3}"), "%s", out);
    cr_expect(listed(out, "/layers/bn1/moving_var", "Dataset {2}"), "%s", out);
    cr_expect(listed(out, "/optimizer/conv1/weight/momentum_buffer", "Dataset {2, 1, 3, 3}"), "%s", out);
    cr_expect(listed(out, "/train_state/order", "Dataset {5}"), "%s", out);
    cr_expect(listed(out, "/metrics/test_acc", "Dataset {2}"), "%s", out);
}

static void expect_read_error(const char *path, const char *needle)
{
    Ckpt c;
    char err[512] = "";
    cr_assert_eq(ckpt_read(path, &c, err, sizeof err), -1, "%s accepted", path);
    cr_expect(strstr(err, needle), "'%s' lacks '%s'", err, needle);
    cr_expect(!strchr(err, '\n'), "one line: '%s'", err);
}

Test(ckpt, rejects_bad_files)
{
    expect_read_error(path_of("missing.h5"), "cannot open: No such file");
    support_write_text(path_of("text.h5"), "this is not HDF5\n");
    expect_read_error(path_of("text.h5"), "not an HDF5 file");
    support_write_text(path_of("empty.h5"), "");
    expect_read_error(path_of("empty.h5"), "not an HDF5 file");
    char p[512], cut[512];
    snprintf(p, sizeof p, "%s", path_of("good.h5"));
    snprintf(cut, sizeof cut, "%s", path_of("cut.h5"));
    write_ok(p);
    FILE *g = fopen(p, "rb");
    fseek(g, 0, SEEK_END);
    long size = ftell(g);
    fclose(g);
    long cuts[3] = {size / 2, size - 1, 600};
    for (int i = 0; i < 3; i++) {
        support_copy_file(p, cut, cuts[i]);
        expect_read_error(cut, "truncated or corrupt");
    }
}

/* Rewrites one root attribute of a copy of a good checkpoint. */
static void patch_attr(const char *path, const char *name, long long v, const char *s)
{
    write_ok(path);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0);
    H5Adelete(f, name);
    hid_t sp = H5Screate(H5S_SCALAR), t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    hid_t a = H5Acreate2(f, name, s ? t : H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (s)
        H5Awrite(a, t, &s);
    else
        H5Awrite(a, H5T_NATIVE_LLONG, &v);
    H5Aclose(a), H5Tclose(t), H5Sclose(sp);
    H5Fclose(f);
}

Test(ckpt, rejects_other_formats_and_versions)
{
    patch_attr(path_of("v2.h5"), "format_version", 2, NULL);
    expect_read_error(path_of("v2.h5"), "format_version 2 is not supported");
    patch_attr(path_of("fmt.h5"), "format", 0, "keras-weights");
    expect_read_error(path_of("fmt.h5"), "not a bnni checkpoint (its format attribute is 'keras-weights')");
    patch_attr(path_of("ep.h5"), "epoch", 0, "three");
    expect_read_error(path_of("ep.h5"), "attribute 'epoch' of the file is not a single number");
    /* An HDF5 file that is not a checkpoint at all. */
    hid_t f = H5Fcreate(path_of("other.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    expect_read_error(path_of("other.h5"), "not a bnni checkpoint (no 'format' attribute)");
}

/* A write error (here the file-size limit, as a full disk would) keeps the previous checkpoint and no temp file. */
Test(ckpt, failed_write_keeps_the_old_file)
{
    const char *p = path_of("keep.h5");
    write_ok(p);
    Ckpt before;
    char err[512];
    cr_assert_eq(ckpt_read(p, &before, err, sizeof err), 0, "%s", err);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = {2048, 2048};
        signal(SIGXFSZ, SIG_IGN);
        setrlimit(RLIMIT_FSIZE, &rl);
        Ckpt c;
        make_ckpt(&c);
        c.epoch = 99;
        int rc = ckpt_write(p, &c, err, sizeof err);
        _exit(rc == -1 && strstr(err, "previous file is unchanged") && strstr(err, "File too large") ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the failed write was not reported as such");
    Ckpt after;
    cr_assert_eq(ckpt_read(p, &after, err, sizeof err), 0, "%s", err);
    cr_expect_eq(after.epoch, before.epoch);
    cr_expect_eq(count_files(), 1, "the temporary file was left behind");
    ckpt_free(&before);
    ckpt_free(&after);
    Ckpt c;
    make_ckpt(&c);
    cr_expect_eq(ckpt_write("/nonexistent-dir/x.h5", &c, err, sizeof err), -1);
    cr_expect(strstr(err, "cannot create a temporary file in /nonexistent-dir"), "%s", err);
    ckpt_free(&c);
}

static int exists(const char *name) { return access(path_of(name), F_OK) == 0; }

static void touch(const char *name) { support_write_text(path_of(name), "half a checkpoint"); }

/* A save removes the temporary files that killed writers left for the same path (their pid is gone, or is this
 * process's own, as in a container where every run gets the same pid) and nothing else: not a live process's
 * file, not another checkpoint's, not a file of another pattern. */
Test(ckpt, a_save_removes_stale_temporary_files)
{
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    waitpid(dead, NULL, 0);
    char stale[64], mine[64], live[64], other[64];
    snprintf(stale, sizeof stale, ".x.h5.%d.Ab12Cd", (int)dead);
    snprintf(mine, sizeof mine, ".x.h5.%d.zzzzzz", (int)getpid());
    snprintf(live, sizeof live, ".x.h5.%d.Ab12Cd", (int)getppid());
    snprintf(other, sizeof other, ".y.h5.%d.Ab12Cd", (int)dead);
    const char *keep[] = {live, other, ".x.h5.notes", ".x.h5.12.toolong7", "x.h5.1.Ab12Cd"};
    touch(stale), touch(mine);
    for (size_t i = 0; i < sizeof keep / sizeof *keep; i++)
        touch(keep[i]);
    write_ok(path_of("x.h5"));
    cr_expect(!exists(stale), "%s was left", stale);
    cr_expect(!exists(mine), "%s was left", mine);
    for (size_t i = 0; i < sizeof keep / sizeof *keep; i++)
        cr_expect(exists(keep[i]), "%s was removed", keep[i]);
    cr_expect_eq(count_files(), 6, "x.h5 and the five others");
    /* ckpt_check_writable cleans up too, and leaves nothing of its own. */
    touch(stale);
    char err[256];
    cr_expect_eq(ckpt_check_writable(path_of("x.h5"), err, sizeof err), 0, "%s", err);
    cr_expect(!exists(stale));
    cr_expect_eq(count_files(), 6);
    cr_expect_eq(ckpt_check_writable(dir, err, sizeof err), -1);
    cr_expect(strstr(err, "is a directory"), "%s", err);
    cr_expect_eq(ckpt_check_writable("/nonexistent-dir/x.h5", err, sizeof err), -1);
    cr_expect(strstr(err, "cannot create a temporary file in /nonexistent-dir: No such file"), "%s", err);
}

/* Model side of the fit check: NetParams made by hand (no network needed). */
typedef struct Model {
    LayerSpec conv, fc;
    float cw[2 * 1 * 5 * 5], cb[2], fw[10 * 4], fb[10];
    NetParam ps[4];
} Model;

static void param(NetParam *np, const LayerSpec *l, const char *name, float *v, int rank, const int *dims)
{
    np->layer = l;
    np->p = (Param){.name = name, .value = v, .rank = rank, .trainable = 1};
    np->p.size = 1;
    for (int i = 0; i < rank; i++)
        np->p.dims[i] = dims[i], np->p.size *= (size_t)dims[i];
}

static void make_model(Model *m)
{
    memset(m, 0, sizeof *m);
    strcpy(m->conv.name, "conv1");
    strcpy(m->fc.name, "fc3");
    param(&m->ps[0], &m->conv, "weight", m->cw, 4, (int[]){2, 1, 5, 5});
    param(&m->ps[1], &m->conv, "bias", m->cb, 1, (int[]){2});
    param(&m->ps[2], &m->fc, "weight", m->fw, 2, (int[]){10, 4});
    param(&m->ps[3], &m->fc, "bias", m->fb, 1, (int[]){10});
}

Test(ckpt, fit_check_lists_every_mismatch)
{
    Ckpt c;
    Model m;
    char err[4096];
    make_ckpt(&c);
    make_model(&m);
    m.cb[0] = 42.0f;
    cr_assert_eq(ckpt_apply_params(&c, m.ps, 4, err, sizeof err), -1);
    const char *want[] = {
        "7 tensors do not fit the model: ",
        "layers/conv1/weight is [2, 1, 3, 3] in the checkpoint, [2, 1, 5, 5] in the model",
        "missing layers/fc3/weight [10, 4]",
        "missing layers/fc3/bias [10]",
        "extra layers/bn1/gamma [2]",
        "extra layers/bn1/moving_var [2]",
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        cr_expect(strstr(err, want[i]), "'%s' lacks '%s'", err, want[i]);
    cr_expect(!strchr(err, '\n'));
    cr_expect(!strstr(err, "optimizer/"), "optimizer tensors are not layer tensors: %s", err);
    cr_expect_eq(m.cb[0], 42.0f, "nothing is copied when anything does not fit");
    ckpt_free(&c);
}

Test(ckpt, fitting_tensors_are_copied)
{
    Ckpt c;
    float cw[18] = {0}, cb[2] = {0}, gg[2], bb[2], mean[2], var[2];
    LayerSpec conv = {.name = "conv1"}, bn = {.name = "bn1"};
    NetParam ps[6];
    char err[1024];
    make_ckpt(&c);
    param(&ps[0], &conv, "weight", cw, 4, (int[]){2, 1, 3, 3});
    param(&ps[1], &conv, "bias", cb, 1, (int[]){2});
    param(&ps[2], &bn, "gamma", gg, 1, (int[]){2});
    param(&ps[3], &bn, "beta", bb, 1, (int[]){2});
    param(&ps[4], &bn, "moving_mean", mean, 1, (int[]){2});
    param(&ps[5], &bn, "moving_var", var, 1, (int[]){2});
    cr_assert_eq(ckpt_apply_params(&c, ps, 6, err, sizeof err), 0, "%s", err);
    cr_expect(cw[17] == 1.125f && cb[1] == -0.25f && var[1] == 3.0f && mean[0] == 0.3f);
    ckpt_free(&c);
}

Test(ckpt, optimizer_state_is_restored_and_kinds_must_match)
{
    Ckpt c;
    float cw[18] = {0}, cb[2] = {0}, gw[18] = {0}, gb[2] = {0};
    LayerSpec conv = {.name = "conv1"};
    NetParam ps[2];
    char err[1024];
    make_ckpt(&c);
    param(&ps[0], &conv, "weight", cw, 4, (int[]){2, 1, 3, 3});
    param(&ps[1], &conv, "bias", cb, 1, (int[]){2});
    ps[0].p.grad = gw, ps[1].p.grad = gb;
    OptSpec sgd = {.kind = OPT_SGD, .lr = 0.5, .momentum = 0.9};
    Optim *o;
    cr_assert_eq(optim_create(&sgd, ps, 2, &o, err, sizeof err), 0, "%s", err);
    /* The checkpoint has conv1/weight's momentum buffer but not conv1/bias's: listed, nothing restored. */
    cr_expect_eq(ckpt_apply_optim(&c, &sgd, o, ps, 2, err, sizeof err), -1);
    cr_expect(strstr(err, "1 tensor does not fit the model: missing optimizer/conv1/bias/momentum_buffer [2]"), "%s",
              err);
    cr_expect_eq(optim_step_count(o), 0);
    static float bias_buf[2] = {0.5f, -0.5f};
    add(&c, "optimizer/conv1/bias/momentum_buffer", bias_buf, 1, 2, 0, 0, 0);
    cr_assert_eq(ckpt_apply_optim(&c, &sgd, o, ps, 2, err, sizeof err), 0, "%s", err);
    cr_expect_eq(optim_step_count(o), 123);
    Param st[2];
    cr_assert_eq(optim_state(o, 0, st), 1);
    cr_expect_arr_eq(st[0].value, mom, sizeof mom);
    optim_free(o);
    OptSpec adam = {.kind = OPT_ADAM, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    cr_assert_eq(optim_create(&adam, ps, 2, &o, err, sizeof err), 0, "%s", err);
    cr_expect_eq(ckpt_apply_optim(&c, &adam, o, ps, 2, err, sizeof err), -1);
    cr_expect(strstr(err, "the checkpoint's optimizer is sgd, the model's is adam"), "%s", err);
    optim_free(o);
    ckpt_free(&c);
}
