/* The C library (lib/bnni.h): its logits against onnxruntime's on the exported model (an independent runtime),
 * its probabilities, separate handles predicting at once from two threads (the same bits as one thread), the same
 * handle shared by two threads, and every error as a status and a message naming the file, never an exit. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/bnni.h"
#include "runtime/data/dataset.h"
#include "tests/support.h"

#define N 96 /* images predicted */

static char dir[64];
static float x[N * 784];

/* A checkpoint of the seed model (one epoch on 500 images) at dir/ck.h5, its export at dir/m.onnx, and the first
 * N test images as pixel / 255 in x. */
static void setup(void)
{
    support_make_tmpdir(dir, sizeof dir, "lib");
    cr_assert_eq(support_run(dir, "train models/lenet_bn.bnn --epochs 1 --limit 500 --test-limit 100 --threads 1 "
                                  "--quiet --out %s",
                             support_path(dir, "ck.h5")),
                 0);
    Dataset d = {0};
    char err[1024];
    Shape s = {3, 1, 28, 28};
    cr_assert_eq(dataset_load("/usr/share/datasets/fashion-mnist", 0, N, s, 10, &d, err, sizeof err), 0, "%s", err);
    for (int i = 0; i < N * 784; i++)
        x[i] = d.pixels[i] / 255.0f;
    dataset_free(&d);
}

static void teardown(void) { support_remove_tree(dir); }

TestSuite(lib, .init = setup, .fini = teardown, .timeout = 300);

static BnniModel *load(void)
{
    BnniModel *m = NULL;
    char err[512];
    cr_assert_eq(bnni_load(support_path(dir, "ck.h5"), &m, err, sizeof err), BNNI_OK, "%s", err);
    return m;
}

Test(lib, shape_classes_and_names)
{
    BnniModel *m = load();
    int c, h, w;
    cr_expect_eq(bnni_input_shape(m, &c, &h, &w), BNNI_OK);
    cr_expect(c == 1 && h == 28 && w == 28);
    cr_expect_eq(bnni_num_classes(m), 10);
    cr_expect_str_eq(bnni_class_name(m, 0), "T-shirt/top");
    cr_expect_str_eq(bnni_class_name(m, 9), "Ankle boot");
    cr_expect_null(bnni_class_name(m, 10));
    cr_expect_str_eq(bnni_model_name(m), "lenet_bn");
    cr_expect_str_eq(bnni_version(), "0.1.0");
    bnni_free(m);
}

/* onnxruntime on the exported model is the reference: the library's logits within 1e-4 of its, relative to each
 * image's largest logit, and the same class for every image. */
Test(lib, logits_match_onnxruntime)
{
    const char *onnx = support_path(dir, "m.onnx");
    cr_assert_eq(support_run(dir, "export %s -o %s", support_path(dir, "ck.h5"), onnx), 0);
    support_write_bytes(support_path(dir, "in.f32"), x, sizeof x, 0);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "node tests/ort/run.js %s %s %d 1 28 28 %s >%s 2>&1", onnx, support_path(dir, "in.f32"),
             N, support_path(dir, "ort.f32"), support_path(dir, "ort.txt"));
    cr_assert_eq(system(cmd), 0, "onnxruntime failed (`make deps` installs it)");
    size_t len;
    float *want = (float *)support_slurp(support_path(dir, "ort.f32"), &len), got[N * 10];
    cr_assert_eq(len, sizeof got);
    BnniModel *m = load();
    cr_assert_eq(bnni_predict(m, x, N, got, BNNI_LOGITS, NULL, 0), BNNI_OK);
    double worst = 0.0;
    for (int i = 0; i < N; i++) {
        double top = 0.0;
        int a = 0, b = 0;
        for (int k = 0; k < 10; k++)
            top = fmax(top, fabs(want[i * 10 + k]));
        for (int k = 0; k < 10; k++) {
            worst = fmax(worst, fabs((double)got[i * 10 + k] - want[i * 10 + k]) / top);
            a = got[i * 10 + k] > got[i * 10 + a] ? k : a;
            b = want[i * 10 + k] > want[i * 10 + b] ? k : b;
        }
        cr_expect_eq(a, b, "image %d: class %d, onnxruntime %d", i, a, b);
    }
    cr_expect(worst <= 1e-4, "logits differ from onnxruntime's by %.3g relative", worst);
    bnni_free(m);
    free(want);
}

Test(lib, probabilities_are_the_softmax_of_the_logits)
{
    BnniModel *m = load();
    float z[N * 10], p[N * 10];
    cr_assert_eq(bnni_predict(m, x, N, z, BNNI_LOGITS, NULL, 0), BNNI_OK);
    cr_assert_eq(bnni_predict(m, x, N, p, BNNI_PROBS, NULL, 0), BNNI_OK);
    for (int i = 0; i < N; i++) {
        double s = 0.0, e = 0.0;
        for (int k = 0; k < 10; k++)
            s += p[i * 10 + k], e += exp((double)z[i * 10 + k]);
        cr_expect(fabs(s - 1.0) < 1e-5, "row %d sums to %g", i, s);
        for (int k = 0; k < 10; k++)
            cr_expect(fabs(p[i * 10 + k] - exp((double)z[i * 10 + k]) / e) < 1e-6);
    }
    bnni_free(m);
}

typedef struct Job {
    BnniModel *m;
    float out[N * 10];
    int rc;
} Job;

static void *predict_many(void *arg)
{
    Job *j = arg;
    for (int r = 0; r < 20 && j->rc == BNNI_OK; r++)
        j->rc = bnni_predict(j->m, x, N, j->out, BNNI_LOGITS, NULL, 0);
    return NULL;
}

/* Two threads, each with its own handle, and then two threads on one handle: every result is what one thread
 * alone computes, bit for bit. */
Test(lib, threads)
{
    BnniModel *a = load(), *b = load();
    float alone[N * 10];
    cr_assert_eq(bnni_predict(a, x, N, alone, BNNI_LOGITS, NULL, 0), BNNI_OK);
    Job j[2] = {{.m = a}, {.m = b}};
    pthread_t t[2];
    for (int k = 0; k < 2; k++)
        pthread_create(&t[k], NULL, predict_many, &j[k]);
    for (int k = 0; k < 2; k++)
        pthread_join(t[k], NULL);
    for (int k = 0; k < 2; k++) {
        cr_expect_eq(j[k].rc, BNNI_OK);
        cr_expect_arr_eq(j[k].out, alone, sizeof alone, "separate handle %d", k);
    }
    j[0].m = j[1].m = a;
    for (int k = 0; k < 2; k++)
        pthread_create(&t[k], NULL, predict_many, &j[k]);
    for (int k = 0; k < 2; k++)
        pthread_join(t[k], NULL);
    for (int k = 0; k < 2; k++)
        cr_expect_arr_eq(j[k].out, alone, sizeof alone, "shared handle, thread %d", k);
    bnni_free(a);
    bnni_free(b);
}

Test(lib, errors_are_statuses_with_a_message)
{
    BnniModel *m = (BnniModel *)&m;
    char err[512];
    const char *missing = support_path(dir, "missing.h5");
    cr_expect_eq(bnni_load(missing, &m, err, sizeof err), BNNI_EFILE);
    cr_expect_null(m);
    cr_expect(strstr(err, "missing.h5: cannot open: No such file"), "%s", err);
    support_copy_file(support_path(dir, "ck.h5"), support_path(dir, "cut.h5"), 3000);
    cr_expect_eq(bnni_load(support_path(dir, "cut.h5"), &m, err, sizeof err), BNNI_EFILE);
    cr_expect(strstr(err, "cut.h5: not a readable HDF5 file"), "%s", err);
    support_write_text(support_path(dir, "text.h5"), "hello\n");
    cr_expect_eq(bnni_load(support_path(dir, "text.h5"), &m, err, sizeof err), BNNI_EFILE);
    cr_expect(strstr(err, "text.h5: not an HDF5 file"), "%s", err);
    cr_expect_eq(bnni_load(NULL, &m, err, sizeof err), BNNI_EINVAL);
    cr_expect_eq(bnni_load(missing, NULL, NULL, 0), BNNI_EINVAL);
    m = load();
    float out[10];
    cr_expect_eq(bnni_predict(m, x, -1, out, BNNI_LOGITS, err, sizeof err), BNNI_EINVAL);
    cr_expect_eq(bnni_predict(m, NULL, 1, out, BNNI_LOGITS, err, sizeof err), BNNI_EINVAL);
    cr_expect_eq(bnni_predict(m, x, 1, out, (BnniOutput)7, err, sizeof err), BNNI_EINVAL);
    cr_expect_eq(bnni_predict(NULL, x, 1, out, BNNI_LOGITS, NULL, 0), BNNI_EINVAL);
    cr_expect_eq(bnni_predict(m, x, 0, NULL, BNNI_LOGITS, NULL, 0), BNNI_OK);
    cr_expect_eq(bnni_input_shape(NULL, NULL, NULL, NULL), BNNI_EINVAL);
    cr_expect_eq(bnni_num_classes(NULL), 0);
    bnni_free(m);
    bnni_free(NULL);
}
