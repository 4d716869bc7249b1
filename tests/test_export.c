/* bnni export against independent references: every model in models/, trained for one short epoch, exported to
 * ONNX and run in onnxruntime-node (tests/ort/run.js; `make deps` installs it): the logits must match those of
 * `bnni eval`'s code path to 1e-4 relative and the test accuracy must be identical; onnx.checker (python3-onnx)
 * must accept the file. The folded checkpoint must evaluate to the same accuracy, and, where torch is importable by
 * /usr/bin/python3, examples/load_in_pytorch.py must print what `bnni eval` prints. Then every bad input: one line,
 * exit status 1 (2 for usage), and no output file. */
#include <criterion/criterion.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "interp/load.h"
#include "runtime/data/dataset.h"
#include "runtime/export/export.h"
#include "runtime/train.h"
#include "tests/support.h"

#define DATA "/usr/share/datasets/fashion-mnist"
#define EVAL_IMAGES 500 /* test images compared (bnni eval --limit) */

static char dir[64];

static void make_dir(void) { support_make_tmpdir(dir, sizeof dir, "export"); }
static void remove_dir(void) { support_remove_tree(dir); }

TestSuite(export, .init = make_dir, .fini = remove_dir, .timeout = 600);

static const char *in_dir(const char *name) { return support_path(dir, name); }
#define run(...) support_run(dir, __VA_ARGS__)

/* Runs a shell command with its output in dir/sh.txt; returns the exit status. */
static int shell(const char *fmt, ...)
{
    char cmd[4096], args[3800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "(%s) >%s/sh.txt 2>&1", args, dir);
    return support_status(system(cmd));
}

static char *shell_out(void) { return support_slurp(in_dir("sh.txt"), NULL); }

/* The last line "test loss L accuracy A (N images)" of what a run printed. */
static void parse_result(const char *out, double *loss, double *acc)
{
    const char *p = strstr(out, "test loss ");
    cr_assert(p, "no result line in: %s", out);
    cr_assert_eq(sscanf(p, "test loss %lf accuracy %lf", loss, acc), 2, "%s", p);
}

/* What `bnni eval CKPT --limit EVAL_IMAGES` computes, through its own functions: load_checkpoint, the test set's
 * first images, net_infer in chunks of EVAL_CHUNK. */
typedef struct Ref {
    float *logits; /* n x K */
    float *x;      /* n images as pixel / 255.0, what an exported model takes */
    int labels[EVAL_IMAGES];
    int n, K, correct;
} Ref;

static int argmax(const float *z, int K)
{
    int best = 0;
    for (int k = 1; k < K; k++)
        best = z[k] > z[best] ? k : best;
    return best;
}

static void bnni_logits(const char *ckpt, Ref *r)
{
    Ckpt c;
    ModelSpec *m;
    Net *net;
    Dataset d = {0};
    Normalizer nz;
    Tensor t;
    char err[4096];
    cr_assert_eq(load_checkpoint(ckpt, NULL, NULL, &c, &m, &net, err, sizeof err), 0, "%s", err);
    cr_assert_eq(dataset_load(DATA, 0, EVAL_IMAGES, m->data.shape, m->data.classes, &d, err, sizeof err), 0, "%s",
                 err);
    cr_assert_eq(train_checkpoint_normalizer(&c, &m->data, &nz, err, sizeof err), 0, "%s", err);
    int K = m->data.classes, per = m->input.c * m->input.h * m->input.w;
    r->n = d.count, r->K = K, r->correct = 0;
    r->logits = malloc((size_t)d.count * K * sizeof *r->logits), r->x = malloc((size_t)d.count * per * sizeof *r->x);
    cr_assert(r->logits && r->x && tensor_alloc(&t, EVAL_CHUNK, m->input.c, m->input.h, m->input.w) == 0);
    cr_assert_eq(net_resize(net, EVAL_CHUNK, err, sizeof err), 0);
    for (int s = 0; s < d.count; s += EVAL_CHUNK) {
        int n = d.count - s < EVAL_CHUNK ? d.count - s : EVAL_CHUNK;
        dataset_batch(&d, NULL, s, n, &nz, &t, r->labels + s);
        const Tensor *y = net_infer(net, &t);
        memcpy(r->logits + (size_t)s * K, y->data, (size_t)n * K * sizeof *r->logits);
    }
    for (int i = 0; i < d.count; i++)
        r->correct += argmax(r->logits + (size_t)i * K, K) == r->labels[i];
    for (size_t i = 0; i < (size_t)d.count * per; i++)
        r->x[i] = (float)(d.pixels[i] / 255.0);
    tensor_free(&t);
    norm_free(&nz);
    dataset_free(&d);
    net_free(net);
    spec_free(m);
    ckpt_free(&c);
}

static void ref_free(Ref *r) { free(r->logits), free(r->x); }

/* Runs onnx in onnxruntime on the reference's images: every logit within 1e-4 of bnni's, relative to the largest
 * magnitude among its image's logits (a logit near zero has no relative error of its own), every image given the
 * same class, and so the same number of correct classes. */
static void expect_ort_matches(const char *onnx, const Ref *r)
{
    support_write_bytes(in_dir("in.f32"), r->x, (size_t)r->n * 784 * sizeof *r->x, 0);
    int st = shell("node tests/ort/run.js %s %s %d 1 28 28 %s", onnx, in_dir("in.f32"), r->n, in_dir("ort.f32"));
    char *o = shell_out();
    cr_assert_eq(st, 0, "onnxruntime failed (`make deps` installs onnxruntime-node): %s", o);
    free(o);
    size_t len;
    float *got = (float *)support_slurp(in_dir("ort.f32"), &len);
    cr_assert_eq(len, (size_t)r->n * r->K * sizeof(float));
    double worst = 0.0;
    int same = 0, correct = 0, K = r->K;
    for (int i = 0; i < r->n; i++) {
        const float *a = got + (size_t)i * K, *b = r->logits + (size_t)i * K;
        double top = 0.0;
        for (int k = 0; k < K; k++)
            top = fmax(top, fabs(b[k]));
        for (int k = 0; k < K; k++)
            worst = fmax(worst, fabs((double)a[k] - b[k]) / fmax(top, 1e-30));
        same += argmax(a, K) == argmax(b, K);
        correct += argmax(a, K) == r->labels[i];
    }
    cr_expect(worst <= 1e-4, "%s: onnxruntime's logits differ from bnni's by %.3g relative", onnx, worst);
    cr_expect_eq(same, r->n, "%s: %d of %d images get another class in onnxruntime", onnx, r->n - same, r->n);
    cr_expect_eq(correct, r->correct, "%s: onnxruntime %d correct, bnni %d", onnx, correct, r->correct);
    cr_log_info("%s: logits within %.2g relative, %d of %d correct in both\n", onnx, worst, correct, r->n);
    free(got);
}

static void expect_onnx_checker_accepts(const char *onnx)
{
    int st = shell("/usr/bin/python3 -c 'import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), "
                   "full_check=True)' %s", onnx);
    char *o = shell_out();
    cr_expect_eq(st, 0, "onnx.checker refuses %s: %s", onnx, o);
    free(o);
}

static int torch_available(void)
{
    return shell("/usr/bin/python3 -c 'import torch, h5py' 2>/dev/null") == 0;
}

/* Trains models/NAME.bnn for one short epoch and checks every export of it (and, when torch is there, PyTorch's
 * copy of the checkpoint) against `bnni eval`. */
static void check_model(const char *name, int keep_bn_too)
{
    char model[256], ck[256], onnx[256], keep[256], folded[256];
    double loss, acc, l2, a2;
    snprintf(model, sizeof model, strchr(name, '/') ? "%s" : "models/%s.bnn", name);
    snprintf(ck, sizeof ck, "%s", in_dir("ck.h5"));
    snprintf(onnx, sizeof onnx, "%s", in_dir("m.onnx"));
    snprintf(keep, sizeof keep, "%s", in_dir("keep.onnx"));
    snprintf(folded, sizeof folded, "%s", in_dir("folded.h5"));
    cr_assert_eq(run("train %s --epochs 1 --limit 600 --test-limit 100 --threads 1 --quiet --out %s", model, ck), 0);
    cr_assert_eq(run("eval %s --limit %d --threads 1", ck, EVAL_IMAGES), 0);
    char *out = support_run_out(dir);
    parse_result(out, &loss, &acc);
    free(out);
    Ref r;
    bnni_logits(ck, &r);
    cr_assert_eq(r.correct, (int)lround(acc * r.n), "bnni eval's accuracy %.4f is not its code's %d/%d", acc,
                 r.correct, r.n);

    cr_assert_eq(run("export %s -o %s", ck, onnx), 0);
    expect_onnx_checker_accepts(onnx);
    expect_ort_matches(onnx, &r);
    if (keep_bn_too) {
        cr_assert_eq(run("export %s -o %s --keep-bn", ck, keep), 0);
        expect_onnx_checker_accepts(keep);
        expect_ort_matches(keep, &r);
    }

    cr_assert_eq(run("export %s -o %s", ck, folded), 0);
    cr_assert_eq(run("eval %s --limit %d --threads 1", folded, EVAL_IMAGES), 0);
    out = support_run_out(dir);
    parse_result(out, &l2, &a2);
    free(out);
    cr_expect_eq(a2, acc, "the folded checkpoint's accuracy %.4f, the original's %.4f", a2, acc);
    cr_expect(fabs(l2 - loss) <= 1e-3, "the folded checkpoint's loss %.4f, the original's %.4f", l2, loss);

    if (!torch_available()) { /* a note, not cr_log_warn: Criterion exits 1 after any warning, and PyTorch is a
                               * reference the suite uses where it is installed, not a dependency (README) */
        cr_log_info("torch is not importable by /usr/bin/python3: load_in_pytorch.py not checked\n");
    } else {
        cr_assert_eq(shell("/usr/bin/python3 examples/load_in_pytorch.py %s --limit %d", ck, EVAL_IMAGES), 0);
        out = shell_out();
        parse_result(out, &l2, &a2);
        free(out);
        cr_expect_eq(a2, acc, "PyTorch's accuracy %.4f, bnni eval's %.4f", a2, acc);
        cr_expect(fabs(l2 - loss) <= 1e-3, "PyTorch's loss %.4f, bnni eval's %.4f", l2, loss);
    }
    ref_free(&r);
}

/* Under ASan the larger models run the kernels' plain C for minutes; the sanitizer build checks the export code on
 * the seed model and the small model below, and the normal and AVX2 builds check every model. */
static void not_under_asan(void)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("a numeric check of a larger model: the normal and AVX2 builds run it");
#endif
}

Test(export, lenet_bn) { check_model("lenet_bn", 1); }
Test(export, lenet) { not_under_asan(); check_model("lenet", 0); }
Test(export, mlp_bn) { not_under_asan(); check_model("mlp_bn", 0); }
Test(export, cnn_relu) { not_under_asan(); check_model("cnn_relu", 0); }
Test(export, resnet_small) { not_under_asan(); check_model("resnet_small", 0); }
Test(export, cnn_relu_bn) { not_under_asan(); check_model("cnn_relu_bn", 0); }
Test(export, mlp_sigmoid_bn) { not_under_asan(); check_model("mlp_sigmoid_bn", 0); }

/* Batch norms that cannot be folded stay BatchNormalization nodes: at the input, after an activation, and first in
 * a residual body; the one after the dense layer is folded. */
Test(export, batchnorm_that_cannot_be_folded)
{
    support_write_text(in_dir("bn.bnn"), "model bn\n"
                                         "data fashion_mnist(batch=64)\n"
                                         "optimizer sgd(lr=0.1)\n"
                                         "network {\n"
                                         "    batchnorm\n"
                                         "    conv2d(4, kernel=3)\n"
                                         "    relu\n"
                                         "    batchnorm(eps=0.001)\n"
                                         "    residual { batchnorm; relu }\n"
                                         "    avgpool(2, padding=1)\n"
                                         "    flatten\n"
                                         "    dense(32)\n"
                                         "    batchnorm\n"
                                         "    tanh\n"
                                         "    dense(10)\n"
                                         "}\n");
    check_model(in_dir("bn.bnn"), 0);
    cr_assert_eq(shell("/usr/bin/python3 -c 'import onnx, sys; m = onnx.load(sys.argv[1]); "
                       "print(\" \".join(n.op_type for n in m.graph.node))' %s", in_dir("m.onnx")),
                 0);
    char *o = shell_out();
    cr_expect_str_eq(o, "Sub Div BatchNormalization Conv Relu BatchNormalization BatchNormalization Relu Add "
                        "AveragePool Flatten Gemm Tanh Gemm\n");
    free(o);
}

/* batchnorm(affine=false) has no gamma and beta: unfolded (at the input, after an activation) its node gets a unit
 * scale and a zero shift, folded (after conv2d and dense) only its statistics count; onnxruntime and PyTorch
 * (BatchNorm(affine=False)) agree with bnni eval. With normalize="standard", so that the export's input
 * normalisation has a mean and a std of its own. */
Test(export, batchnorm_without_affine)
{
    support_write_text(in_dir("na.bnn"), "model na\n"
                                         "data fashion_mnist(batch=64, normalize=\"standard\")\n"
                                         "optimizer sgd(lr=0.1)\n"
                                         "network {\n"
                                         "    batchnorm(affine=false)\n"
                                         "    conv2d(4, kernel=3)\n"
                                         "    batchnorm(affine=false)\n"
                                         "    relu\n"
                                         "    batchnorm(affine=false)\n"
                                         "    flatten\n"
                                         "    dense(16)\n"
                                         "    batchnorm(affine=false)\n"
                                         "    sigmoid\n"
                                         "    dense(10)\n"
                                         "}\n");
    check_model(in_dir("na.bnn"), 1);
}

/* Every model in models/ is one of the tests above: a new model file needs its own line. */
Test(export, every_model_is_checked)
{
    static const char *checked[] = {"cnn_relu.bnn", "lenet.bnn",    "lenet_bn.bnn",   "mlp_bn.bnn",
                                    "resnet_small.bnn", "cnn_relu_bn.bnn", "mlp_sigmoid_bn.bnn"};
    cr_assert_eq(shell("ls models/*.bnn | wc -l"), 0);
    char *o = shell_out();
    cr_expect_eq(atoi(o), (int)(sizeof checked / sizeof *checked), "models/ holds %s files", o);
    free(o);
    for (size_t i = 0; i < sizeof checked / sizeof *checked; i++)
        cr_expect_eq(access(support_path("models", checked[i]), R_OK), 0, "models/%s", checked[i]);
}

/* A small good checkpoint at dir/ck.h5. */
static void small_checkpoint(void)
{
    cr_assert_eq(run("train models/lenet_bn.bnn --epochs 1 --limit 300 --test-limit 100 --threads 1 --quiet --out %s",
                     in_dir("ck.h5")),
                 0);
}

static void expect_no_file(const char *path) { cr_expect_neq(access(path, F_OK), 0, "%s was written", path); }

Test(export, corrupt_checkpoint)
{
    small_checkpoint();
    support_copy_file(in_dir("ck.h5"), in_dir("cut.h5"), 5000);
    int st = run("export %s -o %s", in_dir("cut.h5"), in_dir("m.onnx"));
    support_expect_one_line_error(dir, st, "cut.h5: not a readable HDF5 file", NULL);
    expect_no_file(in_dir("m.onnx"));
    st = run("export %s -o %s", in_dir("missing.h5"), in_dir("m.h5"));
    support_expect_one_line_error(dir, st, "missing.h5: cannot open", NULL);
    expect_no_file(in_dir("m.h5"));
}

/* A NaN in a tensor of the checkpoint (written with HDF5 itself) is named, and nothing is written. */
Test(export, non_finite_checkpoint)
{
    small_checkpoint();
    hid_t f = H5Fopen(in_dir("ck.h5"), H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = f < 0 ? -1 : H5Dopen2(f, "layers/batchnorm_2/moving_var", H5P_DEFAULT);
    float v[16];
    cr_assert(d >= 0 && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    v[3] = NAN;
    cr_assert(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Dclose(d), H5Fclose(f);
    const char *outs[] = {"m.onnx", "m.h5"};
    for (int i = 0; i < 2; i++) {
        int st = run("export %s -o %s", in_dir("ck.h5"), in_dir(outs[i]));
        /* Refused on loading, as eval and predict refuse it (interp/load.c), before anything is folded. */
        support_expect_one_line_error(dir, st, "ck.h5: tensor layers/batchnorm_2/moving_var holds 1 non-finite",
                                      "the first at index 3");
        expect_no_file(in_dir(outs[i]));
    }
}

/* A directory that does not exist, and a directory in place of the file; no temporary file is left. */
Test(export, unwritable_output)
{
    small_checkpoint();
    int st = run("export %s -o /nonexistent/m.onnx", in_dir("ck.h5"));
    support_expect_one_line_error(dir, st, "/nonexistent/m.onnx: cannot create a temporary file", NULL);
    cr_assert_eq(mkdir(in_dir("d.onnx"), 0755), 0);
    st = run("export %s -o %s", in_dir("ck.h5"), in_dir("d.onnx"));
    support_expect_one_line_error(dir, st, "d.onnx: is a directory", NULL);
    st = run("export %s -o /nonexistent/m.h5", in_dir("ck.h5"));
    support_expect_one_line_error(dir, st, "/nonexistent/m.h5: cannot create a temporary file", NULL);
    cr_assert_eq(shell("ls -A %s | grep -c '^\\.' || true", dir), 0);
    char *o = shell_out();
    cr_expect_eq(atoi(o), 0, "temporary files left: %s", o);
    free(o);
}

Test(export, usage_errors)
{
    small_checkpoint();
    const char *bad[] = {"%s", "%s -o m.txt", "%s -o", "%s -o x.onnx --fold", "-o x.onnx"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char args[512];
        snprintf(args, sizeof args, bad[i], in_dir("ck.h5"));
        cr_expect_eq(run("export %s", args), 2, "bnni export %s", args);
        char *e = support_run_err(dir);
        cr_expect(strncmp(e, "bnni export: error: ", 20) == 0, "%s", e);
        free(e);
    }
    cr_expect_eq(run("export %s -o %s", in_dir("ck.h5"), in_dir("ck.h5")), 2, "the output may not be the input");
}

/* A kind the ONNX exporter has no operator for is refused with its name, and nothing is written. bnni has no
 * such kind today, so the plan is made by hand with a kind number past the last. */
Test(export, kind_onnx_cannot_express)
{
    extern const Exporter onnx_exporter;
    FoldStep step = {0};
    step.spec.kind = LK_COUNT;
    snprintf(step.spec.name, sizeof step.spec.name, "mystery_1");
    FoldPlan plan = {.steps = &step, .n = 1};
    ModelSpec m = {.name = "m", .input = {3, 1, 28, 28}};
    m.data.classes = 10;
    Ckpt c = {.data_std = 1.0, .model_source = "", .model_name = "m"};
    ExportJob job = {.path = in_dir("k.onnx"), .source = "c.h5", .ckpt = &c, .model = &m, .plan = &plan};
    char err[512];
    cr_assert_eq(export_for_path("x.onnx"), &onnx_exporter);
    cr_expect_eq(onnx_exporter.write(&job, err, sizeof err), -1);
    cr_expect(strstr(err, "layer mystery_1: '?' is a layer kind ONNX cannot express"), "%s", err);
    expect_no_file(in_dir("k.onnx"));
}
