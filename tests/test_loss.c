/* Softmax cross-entropy against PyTorch (tests/reference/loss.h5: F.cross_entropy in float32) and against
 * central finite differences of the loss itself; and the label range check. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/loss.h"
#include "runtime/threads.h"
#include "tests/fixture.h"

static void check_fixture(const char *group)
{
    char path[128];
    hid_t f = fx_open("loss.h5");
    cr_assert(f >= 0, "cannot open tests/reference/loss.h5");
    FxArray z, want_loss, want_dz;
    int *labels, *ncorrect_want;
    size_t nl, one;
    snprintf(path, sizeof path, "%s/logits", group);
    cr_assert(fx_read(f, path, &z) == 0 && z.rank == 2);
    snprintf(path, sizeof path, "%s/labels", group);
    cr_assert(fx_read_ints(f, path, &labels, &nl) == 0 && nl == (size_t)z.dims[0]);
    snprintf(path, sizeof path, "%s/loss", group);
    cr_assert(fx_read(f, path, &want_loss) == 0);
    snprintf(path, sizeof path, "%s/dlogits", group);
    cr_assert(fx_read(f, path, &want_dz) == 0);
    snprintf(path, sizeof path, "%s/ncorrect", group);
    cr_assert(fx_read_ints(f, path, &ncorrect_want, &one) == 0);

    Tensor logits = {z.data, z.dims[0], z.dims[1], 1, 1}, dz;
    cr_assert(tensor_alloc(&dz, z.dims[0], z.dims[1], 1, 1) == 0);
    int ncorrect = -1;
    float loss = loss_cross_entropy(&logits, labels, &dz, &ncorrect);
    /* Both sides sum a handful of terms; torch's float32 log_softmax rounds each to ~1 ulp of |z| (up to ~1e3 in
     * "large"), relative to a loss of the same order: 1e-6 relative is 8 ulp of the result. */
    cr_expect(fabs(loss - want_loss.data[0]) <= 1e-6 * fabs(want_loss.data[0]), "%s: loss %.9g, torch %.9g", group,
              loss, want_loss.data[0]);
    /* Gradients are probabilities/N: rtol 1e-5 and an absolute floor of 1e-7 for underflowed probabilities. */
    FX_EXPECT_CLOSE(dz.data, want_dz.data, want_dz.size, 1e-5, 1e-7, "%s dlogits", group);
    cr_expect_eq(ncorrect, ncorrect_want[0], "%s: %d correct, torch %d", group, ncorrect, ncorrect_want[0]);

    /* dlogits and ncorrect are optional, and leave the loss unchanged. */
    cr_expect_eq(loss_cross_entropy(&logits, labels, NULL, NULL), loss);
    tensor_free(&dz);
    free(labels), free(ncorrect_want);
    fx_free(&z), fx_free(&want_loss), fx_free(&want_dz);
    fx_close(f);
}

Test(loss, matches_torch_small_logits) { check_fixture("small"); }

/* |z| up to ~1000: exp(z) overflows even double, so a naive softmax gives inf/nan here. */
Test(loss, matches_torch_huge_logits) { check_fixture("large"); }

/* Central differences of the float32 loss, h = 1e-2: truncation error h^2/6 * |f'''| stays below ~2e-6 and rounding
 * of the loss (ulp(2.3)/2 / 2h) below ~6e-6, against gradients up to (1 - p)/N ~ 0.25: atol 5e-5 (2e-4 of the
 * largest gradient). A wrong formula (missing 1/N, no -onehot, wrong row) is off by 0.05 or more. */
Test(loss, gradient_matches_finite_differences)
{
    enum { N = 4, K = 7 };
    float z[N * K], g[N * K];
    int labels[N] = {0, 6, 3, 3};
    for (int i = 0; i < N * K; i++)
        z[i] = (float)sin(1.7 * i + 0.3) * 2.0f;
    Tensor logits = {z, N, K, 1, 1}, dz = {g, N, K, 1, 1};
    loss_cross_entropy(&logits, labels, &dz, NULL);
    const double h = 1e-2;
    for (int i = 0; i < N * K; i++) {
        float keep = z[i];
        z[i] = (float)(keep + h);
        double up = loss_cross_entropy(&logits, labels, NULL, NULL);
        z[i] = (float)(keep - h);
        double down = loss_cross_entropy(&logits, labels, NULL, NULL);
        z[i] = keep;
        double numeric = (up - down) / (2 * h);
        cr_expect(fabs(g[i] - numeric) <= 5e-5, "dlogits[%d]: analytic %.7g numeric %.7g", i, g[i], numeric);
    }
}

/* Independent check of the value: for equal logits every class has p = 1/K, loss = log K, gradient (1/K - 1)/N. */
Test(loss, uniform_logits_give_log_k)
{
    enum { N = 3, K = 10 };
    float z[N * K], g[N * K];
    int labels[N] = {0, 4, 9}, ncorrect;
    for (int i = 0; i < N * K; i++)
        z[i] = 123.0f;
    Tensor logits = {z, N, K, 1, 1}, dz = {g, N, K, 1, 1};
    float loss = loss_cross_entropy(&logits, labels, &dz, &ncorrect);
    cr_expect_float_eq(loss, (float)log(10.0), 1e-6);
    cr_expect_float_eq(g[4 + K], (float)((0.1 - 1.0) / N), 1e-7);
    cr_expect_float_eq(g[5 + K], (float)(0.1 / N), 1e-7);
    cr_expect_eq(ncorrect, 1, "ties go to the first maximum (class 0): only sample 0 counts, got %d", ncorrect);
}

/* A batch of more rows than one team task takes (64 blocks of 32), the last block short, at 1 to 3 threads: the
 * loss, gradient and count against a long double reference of the same formulas, and the same bits at every
 * thread count (rows split across threads, blocks summed in order). */
Test(loss, many_rows_at_any_thread_count)
{
    enum { N = 2100, K = 10 };
    static float z[N * K], g[3][N * K];
    static int labels[N];
    float loss[3];
    int ncorrect[3], want_correct = 0;
    long double want = 0.0L;
    for (int i = 0; i < N * K; i++)
        z[i] = (float)(sin(0.37 * i + 0.1) * 3.0);
    for (int i = 0; i < N; i++) {
        int best = 0;
        long double m = z[i * K], s = 0.0L;
        labels[i] = (i * 7) % K;
        for (int k = 1; k < K; k++)
            best = z[i * K + k] > z[i * K + best] ? k : best;
        for (int k = 0; k < K; k++)
            s += expl((long double)z[i * K + k] - m);
        want += m + logl(s) - z[i * K + labels[i]];
        want_correct += best == labels[i];
    }
    for (int t = 1; t <= 3; t++) {
        Tensor logits = {z, N, K, 1, 1}, dz = {g[t - 1], N, K, 1, 1};
        rt_set_threads(t);
        loss[t - 1] = loss_cross_entropy(&logits, labels, &dz, &ncorrect[t - 1]);
        cr_expect(fabsl(loss[t - 1] - want / N) <= 1e-6L * fabsl(want / N), "%d threads: loss %.9g, want %.9Lg", t,
                  loss[t - 1], want / N);
        cr_expect_eq(ncorrect[t - 1], want_correct, "%d threads: %d correct, want %d", t, ncorrect[t - 1],
                     want_correct);
    }
    for (int i = 0; i < N; i += 97) { /* a sample of rows, in every block */
        long double m = z[i * K], s = 0.0L;
        for (int k = 1; k < K; k++)
            m = z[i * K + k] > m ? z[i * K + k] : m;
        for (int k = 0; k < K; k++)
            s += expl((long double)z[i * K + k] - m);
        for (int k = 0; k < K; k++) {
            long double p = expl((long double)z[i * K + k] - m) / s, d = (p - (k == labels[i])) / N;
            cr_expect(fabsl(g[0][i * K + k] - d) <= 1e-6L * fabsl(d) + 1e-12L, "dlogits[%d][%d] %.9g, want %.9Lg", i,
                      k, g[0][i * K + k], d);
        }
    }
    for (int t = 2; t <= 3; t++) {
        cr_expect_eq(memcmp(&loss[t - 1], &loss[0], sizeof loss[0]), 0, "the loss at %d threads differs from 1", t);
        cr_expect_eq(memcmp(g[t - 1], g[0], sizeof g[0]), 0, "the gradient at %d threads differs from 1", t);
    }
}

Test(loss, nan_logit_gives_nan_loss)
{
    float z[4] = {1.0f, NAN, 0.5f, 2.0f};
    int labels[1] = {0};
    Tensor logits = {z, 1, 4, 1, 1};
    cr_expect(isnan(loss_cross_entropy(&logits, labels, NULL, NULL)), "a NaN logit must not vanish into a number");
}

Test(loss, label_range_check)
{
    char err[128] = "";
    int good[4] = {0, 9, 5, 1}, high[4] = {0, 3, 10, 1}, low[3] = {2, -1, 0};
    cr_expect_eq(loss_check_labels(good, 4, 10, err, sizeof err), 0);
    cr_expect_eq(loss_check_labels(high, 4, 10, err, sizeof err), -1);
    cr_expect_str_eq(err, "label 10 at index 2 is outside [0, 10)");
    cr_expect_eq(loss_check_labels(low, 3, 10, err, sizeof err), -1);
    cr_expect_str_eq(err, "label -1 at index 1 is outside [0, 10)");
    cr_expect_eq(loss_check_labels(good, 4, 9, err, sizeof err), -1, "9 is out of range for 9 classes");
}
