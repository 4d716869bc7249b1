/* Checkpoints: a write/read round trip of every field (with SGD and with Adam), the file as other HDF5 readers see
 * it (raw HDF5 API and h5ls), every rejected file (not HDF5, truncated, foreign format, other format_version), the
 * atomic write keeping the old file on a write error, and the fit check listing every missing, extra and
 * mis-shaped tensor. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <hdf5.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
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
    c->bnni_version = strdup("0.9.7"); /* not this build's: the writer must keep what it is given */
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
    c->tensors = calloc(9, sizeof *c->tensors); /* room for one more (the Adam round trip) */
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

/* Every field of two Ckpts, values by their bytes: what a write and a read must keep. */
static void expect_same_fields(const Ckpt *a, const Ckpt *b)
{
    cr_expect_eq(b->format_version, a->format_version);
    cr_expect_str_eq(b->model_source, a->model_source);
    cr_expect_str_eq(b->model_name, a->model_name);
    cr_expect_str_eq(b->bnni_version, a->bnni_version);
    cr_expect_str_eq(b->created, a->created);
    cr_expect_eq(b->epoch, a->epoch);
    cr_expect_eq(b->seed, a->seed);
    cr_expect_str_eq(b->normalize, a->normalize);
    cr_expect(memcmp(&b->data_mean, &a->data_mean, sizeof(double)) == 0, "data_mean %.17g", b->data_mean);
    cr_expect(memcmp(&b->data_std, &a->data_std, sizeof(double)) == 0, "data_std %.17g", b->data_std);
    cr_assert_eq(b->nlayers, a->nlayers);
    for (int i = 0; i < a->nlayers; i++) {
        cr_expect_str_eq(b->layers[i].name, a->layers[i].name);
        cr_expect_str_eq(b->layers[i].type, a->layers[i].type);
        cr_assert_eq(b->layers[i].nargs, a->layers[i].nargs, "%s", a->layers[i].name);
        for (int k = 0; k < a->layers[i].nargs; k++) {
            const CkptArg *x = &a->layers[i].args[k], *y = &b->layers[i].args[k];
            cr_expect(!strcmp(y->key, x->key) && y->type == x->type, "%s: argument %s", a->layers[i].name, x->key);
            cr_expect(memcmp(&y->num, &x->num, sizeof x->num) == 0, "%s %s: %.17g written, %.17g read",
                      a->layers[i].name, x->key, x->num, y->num);
            cr_expect_str_eq(y->str, x->str, "%s %s", a->layers[i].name, x->key);
        }
    }
    cr_assert_eq(b->ntensors, a->ntensors);
    for (int i = 0; i < a->ntensors; i++) {
        cr_expect_str_eq(b->tensors[i].path, a->tensors[i].path, "network order is kept");
        cr_expect_eq(b->tensors[i].rank, a->tensors[i].rank);
        cr_expect_eq(b->tensors[i].size, a->tensors[i].size);
        cr_expect_arr_eq(b->tensors[i].dims, a->tensors[i].dims, sizeof(int) * (size_t)a->tensors[i].rank);
        cr_expect_arr_eq(b->tensors[i].data, a->tensors[i].data, a->tensors[i].size * sizeof(float));
    }
    cr_expect_eq(b->has_optimizer, a->has_optimizer);
    cr_expect_eq(b->opt.kind, a->opt.kind);
    cr_expect_eq(b->opt.nesterov, a->opt.nesterov);
    double oa[6] = {a->opt.lr, a->opt.momentum, a->opt.weight_decay, a->opt.beta1, a->opt.beta2, a->opt.eps};
    double ob[6] = {b->opt.lr, b->opt.momentum, b->opt.weight_decay, b->opt.beta1, b->opt.beta2, b->opt.eps};
    const char *on[6] = {"lr", "momentum", "weight_decay", "beta1", "beta2", "eps"};
    for (int k = 0; k < 6; k++)
        cr_expect(memcmp(&oa[k], &ob[k], sizeof(double)) == 0, "optimizer %s %.17g, written %.17g", on[k], ob[k],
                  oa[k]);
    cr_expect_eq(b->opt_steps, a->opt_steps);
    cr_expect_eq(b->has_train_state, a->has_train_state);
    const TrainState *x = &a->ts, *y = &b->ts;
    cr_expect(y->epoch == x->epoch && y->position == x->position && y->norder == x->norder && y->batch == x->batch);
    cr_expect(y->loss_sum == x->loss_sum && y->correct == x->correct && y->seconds == x->seconds && y->lr == x->lr);
    cr_expect_arr_eq(y->order, x->order, (size_t)x->norder * sizeof *x->order);
    cr_expect_arr_eq(y->shuffle_rng.s, x->shuffle_rng.s, sizeof x->shuffle_rng.s);
    cr_expect_arr_eq(y->net_rng.s, x->net_rng.s, sizeof x->net_rng.s);
    cr_assert_eq(b->metrics.n, a->metrics.n);
    size_t m = (size_t)a->metrics.n * sizeof(double);
    cr_expect_arr_eq(b->metrics.train_loss, a->metrics.train_loss, m);
    cr_expect_arr_eq(b->metrics.train_acc, a->metrics.train_acc, m);
    cr_expect_arr_eq(b->metrics.test_loss, a->metrics.test_loss, m);
    cr_expect_arr_eq(b->metrics.test_acc, a->metrics.test_acc, m);
    cr_expect_arr_eq(b->metrics.seconds, a->metrics.seconds, m);
    cr_expect_arr_eq(b->metrics.images_per_second, a->metrics.images_per_second, m);
}

Test(ckpt, round_trip_keeps_every_field)
{
    Ckpt a, b;
    char err[512];
    make_ckpt(&a);
    const char *p = path_of("rt.h5");
    cr_assert_eq(ckpt_write(p, &a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ckpt_read(p, &b, err, sizeof err), 0, "%s", err);
    expect_same_fields(&a, &b);
    ckpt_free(&a);
    ckpt_free(&b);
}

/* The same with Adam: its betas and eps, and its two state tensors per parameter. */
Test(ckpt, round_trip_keeps_every_adam_field)
{
    static float m1[18], v1[18];
    Ckpt a, b;
    char err[512];
    make_ckpt(&a);
    for (int i = 0; i < 18; i++)
        m1[i] = 0.01f * (float)i - 0.05f, v1[i] = 1e-4f * (float)(i + 1);
    free(a.tensors[6].path);
    a.ntensors = 6;
    add(&a, "optimizer/conv1/weight/exp_avg", m1, 4, 2, 1, 3, 3);
    add(&a, "optimizer/conv1/weight/exp_avg_sq", v1, 4, 2, 1, 3, 3);
    a.opt = (OptSpec){.kind = OPT_ADAM, .lr = 0.003, .weight_decay = 0.02, .beta1 = 0.85, .beta2 = 0.995,
                      .eps = 3e-7};
    const char *p = path_of("adam.h5");
    cr_assert_eq(ckpt_write(p, &a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ckpt_read(p, &b, err, sizeof err), 0, "%s", err);
    expect_same_fields(&a, &b);
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
    /* Strings are fixed-length (issue #17: no global heap), NUL-terminated, UTF-8. */
    a = H5Aopen(f, "format", H5P_DEFAULT);
    hid_t t = H5Aget_type(a);
    cr_expect_eq(H5Tis_variable_str(t), 0);
    cr_expect_eq(H5Tget_size(t), strlen("bnni-checkpoint") + 1);
    cr_expect_eq(H5Tget_cset(t), H5T_CSET_UTF8);
    char s[32] = "";
    H5Aread(a, t, s);
    cr_expect_str_eq(s, "bnni-checkpoint");
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

/* ---- issue #17: what lets libhdf5 verify a file bnni wrote */

static herr_t check_attr(hid_t loc, const char *name, const H5A_info_t *info, void *where)
{
    (void)info;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT), t = H5Aget_type(a);
    if (H5Tget_class(t) == H5T_STRING)
        cr_expect_eq(H5Tis_variable_str(t), 0, "attribute %s of %s is a variable-length string", name,
                     (const char *)where);
    H5Tclose(t), H5Aclose(a);
    return 0;
}

static herr_t check_object(hid_t f, const char *name, const H5O_info_t *info, void *count)
{
    hid_t o = H5Oopen(f, name, H5P_DEFAULT);
    H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, NULL, check_attr, (void *)name);
    if (info->type == H5O_TYPE_DATASET) {
        hid_t sp = H5Dget_space(o), dcpl = H5Dget_create_plist(o);
        if (H5Sget_simple_extent_npoints(sp) > 0) {
            unsigned flags, cd[4];
            size_t ncd = 4;
            cr_expect_eq(H5Pget_layout(dcpl), H5D_CHUNKED, "%s is not chunked", name);
            cr_expect(H5Pget_nfilters(dcpl) == 1 &&
                          H5Pget_filter2(dcpl, 0, &flags, &ncd, cd, 0, NULL, NULL) == H5Z_FILTER_FLETCHER32,
                      "%s has no Fletcher32 checksum", name);
            ++*(int *)count;
        }
        H5Pclose(dcpl), H5Sclose(sp);
    }
    H5Oclose(o);
    return 0;
}

Test(ckpt, written_files_carry_checksums)
{
    const char *p = path_of("sum.h5");
    write_ok(p);
    unsigned char *b = (unsigned char *)support_slurp(p, NULL);
    cr_expect_eq(b[8], 3, "superblock version 3 (the 1.10 format, checksummed)");
    free(b);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0);
    int datasets = 0;
    H5Ovisit2(f, H5_INDEX_NAME, H5_ITER_INC, check_object, &datasets, H5O_INFO_BASIC);
    H5Fclose(f);
    cr_expect_eq(datasets, 7 + 3 + 7, "7 tensors, 3 train_state arrays, 7 metrics columns");
}

/* Flips the byte at `at` of path. */
static void flip_byte(const char *path, long at)
{
    FILE *f = fopen(path, "r+b");
    cr_assert(f && fseek(f, at, SEEK_SET) == 0);
    int c = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
}

/* A changed weight used to load as a wrong number; Fletcher32 now refuses it. */
Test(ckpt, a_changed_weight_is_refused)
{
    const char *p = path_of("w.h5");
    write_ok(p);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/layers/conv1/weight", H5P_DEFAULT);
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    hid_t sp = H5Dget_space(d); /* libhdf5 1.10 mishandles H5S_ALL here (its H5Dpublic.h says so) */
    cr_assert_eq(H5Dget_chunk_info(d, sp, 0, NULL, NULL, &addr, &size), 0);
    H5Sclose(sp), H5Dclose(d), H5Fclose(f);
    cr_assert_eq(size, 18 * 4 + 4, "18 floats and their checksum");
    flip_byte(p, (long)addr + 40);
    expect_read_error(p, "cannot read tensor layers/conv1/weight");
}

/* The model text is in the root's object header now, under its checksum (it was in the unchecked global heap). */
Test(ckpt, a_changed_model_source_is_refused)
{
    const char *p = path_of("src.h5");
    write_ok(p);
    size_t len;
    char *b = support_slurp(p, &len);
    long off = -1;
    for (size_t i = 0; off < 0 && i + 11 <= len; i++)
        if (memcmp(b + i, "second line", 11) == 0)
            off = (long)i;
    cr_assert_geq(off, 0, "the model source is stored as it is");
    free(b);
    flip_byte(p, off);
    expect_read_error(p, "not a readable HDF5 file");
}

/* ---- issue #17: files that crash or hang libhdf5 1.10, and a file written before the change */

#define CORRUPT_DIR "tests/ckpt_corrupt"

/* The repro files of issue #17 (tests/ckpt_corrupt/README.md): libhdf5 dies or loops in them; ckpt_read says so
 * in one line, in well under the 2 s the trial read may take on so small a file plus the start-up. */
Test(ckpt, files_that_crash_or_hang_libhdf5_are_corrupt, .timeout = 30)
{
    const char *names[] = {"segv-global-heap.h5", "segv-block-read.h5", "hang-1.h5", "hang-2.h5"};
    for (int i = 0; i < 4; i++) {
        char p[256];
        snprintf(p, sizeof p, CORRUPT_DIR "/%s", names[i]);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        expect_read_error(p, "corrupt checkpoint (the HDF5 library could not read it)");
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double took = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        cr_expect_lt(took, 4.0, "%s took %.1f s", names[i], took);
    }
}

/* base.h5 was written by bnni before issue #17 (variable-length strings, the earliest file format): it still
 * loads, with what its model (tests/ckpt_corrupt/model.bnn) says. */
Test(ckpt, a_checkpoint_from_before_checksums_loads)
{
    Ckpt c;
    char err[512];
    cr_assert_eq(ckpt_read(CORRUPT_DIR "/base.h5", &c, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(c.model_name, "r");
    cr_expect(strstr(c.model_source, "dense(64)"));
    cr_expect_eq(c.epoch, 1);
    cr_expect(c.has_train_state && c.ts.norder == 2000 && c.ts.batch == 128);
    const CkptTensor *w = ckpt_find(&c, "layers/conv2d_1/weight"), *d = ckpt_find(&c, "layers/dense_1/weight");
    cr_assert(w && d);
    cr_expect(w->rank == 4 && w->dims[0] == 6 && w->dims[1] == 1 && w->dims[2] == 5 && w->dims[3] == 5);
    cr_expect(d->rank == 2 && d->dims[0] == 64 && d->dims[1] == 6 * 12 * 12, "after conv 5x5 and avgpool 2");
    ckpt_free(&c);
}

/* Names and strings quoted from a damaged file cannot break the one-line message (ondisk.py found a link name
 * with a newline in it). */
Test(ckpt, control_characters_stay_out_of_messages)
{
    const char *p = path_of("nl.h5");
    write_ok(p);
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0);
    cr_assert(H5Lmove(f, "/layers/conv1/bias", f, "/layers/conv1/bi\nas", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    H5Fclose(f);
    expect_read_error(p, "an object name in /layers/conv1 holds control characters (corrupt file?)");
    patch_attr(path_of("fmt.h5"), "format", 0, "keras\nweights\t");
    expect_read_error(path_of("fmt.h5"), "its format attribute is 'keras?weights?'");
}

/* Writes the hand-made checkpoint with its train state's order and position replaced. */
static void write_train_state(const char *path, const int *ord, int position)
{
    Ckpt c;
    char err[512];
    make_ckpt(&c);
    c.ts.order = (int *)ord, c.ts.position = position;
    cr_assert_eq(ckpt_write(path, &c, err, sizeof err), 0, "%s", err);
    ckpt_free(&c);
}

/* A resume indexes the training set with the order and starts at the position: any value out of range is refused,
 * the first one beyond it included. */
Test(ckpt, rejects_a_train_state_out_of_range)
{
    static const int past_end[5] = {3, 1, 5, 0, 2}, negative[5] = {3, 1, -1, 0, 2}, last_ok[5] = {4, 1, 3, 0, 2};
    write_train_state(path_of("end.h5"), past_end, 2);
    expect_read_error(path_of("end.h5"), "/train_state/order holds an index out of range");
    write_train_state(path_of("neg.h5"), negative, 2);
    expect_read_error(path_of("neg.h5"), "/train_state/order holds an index out of range");
    write_train_state(path_of("pos.h5"), order, 6);
    expect_read_error(path_of("pos.h5"), "/train_state holds implausible values");
    /* The largest index and a position at the end of the epoch are in range. */
    Ckpt c;
    char err[512];
    write_train_state(path_of("ok.h5"), last_ok, 5);
    cr_assert_eq(ckpt_read(path_of("ok.h5"), &c, err, sizeof err), 0, "%s", err);
    cr_expect(c.ts.order[0] == 4 && c.ts.position == 5);
    ckpt_free(&c);
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
