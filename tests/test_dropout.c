/* dropout: in training each value is kept with probability 1-p and scaled by 1/(1-p), the backward applies the
 * same mask, masks come from the network stream (l->rng); eval and p = 0 are the identity; finite differences
 * with the mask held fixed (tests/gradcheck.h); probabilities outside [0, 1] are refused. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <math.h>
#include <string.h>

#include "runtime/layer.h"
#include "runtime/threads.h"
#include "tests/gradcheck.h"
#include "tests/specs.h"

typedef struct Drop {
    LayerSpec s;
    Layer l;
    Rng rng;
    Tensor x, dx;
} Drop;

static void drop_open(Drop *d, float p, Shape in, int batch)
{
    char err[256];
    d->s = test_spec(LK_DROPOUT, "drop", "p=0");
    d->s.arg[0].num = p; /* p = 1 is past the language's range, but the layer defines it (drops everything) */
    rng_seed(&d->rng, 77);
    cr_assert(gradcheck_setup(&d->l, &d->s, in, batch, &d->rng, 1, err, sizeof err) == 0, "%s", err);
    cr_assert(tensor_alloc(&d->x, batch, in.c, in.h, in.w) == 0 && tensor_alloc(&d->dx, batch, in.c, in.h, in.w) == 0);
    gradcheck_fill_distinct(&d->x, 2);
    gradcheck_fill_distinct(&d->l.dy, 3);
}

static void drop_close(Drop *d)
{
    tensor_free(&d->x), tensor_free(&d->dx);
    d->l.ops->destroy(&d->l);
}

/* 100000 values at p = 0.3: the kept fraction is 0.7 within 0.01 (over 6 standard deviations); every value is
 * either 0 or x / 0.7, and dx = dy where x was kept (scaled the same way), 0 where it was dropped. */
Test(dropout, train_keeps_one_minus_p_and_scales)
{
    Drop d;
    size_t n = 100000, kept = 0;
    float scale = 1.0f / 0.7f;
    drop_open(&d, 0.3f, (Shape){1, 1000, 1, 1}, 100);
    d.l.ops->forward(&d.l, &d.x, 1);
    d.l.ops->backward(&d.l, &d.x, &d.dx);
    for (size_t i = 0; i < n; i++) {
        float y = d.l.y.data[i], x = d.x.data[i], g = d.l.dy.data[i];
        if (y != 0.0f) {
            kept++;
            cr_expect_eq(y, x * scale, "kept y[%zu] = %g, want %g", i, (double)y, (double)(x * scale));
            cr_expect_eq(d.dx.data[i], g * scale, "dx[%zu] where kept", i);
        } else {
            cr_expect_eq(d.dx.data[i], 0.0f, "dx[%zu] where dropped", i);
        }
    }
    cr_expect(fabs((double)kept / n - 0.7) < 0.01, "kept fraction %g", (double)kept / n);
    drop_close(&d);
}

Test(dropout, eval_is_identity)
{
    Drop d;
    Rng before;
    drop_open(&d, 0.5f, (Shape){3, 2, 3, 4}, 5);
    before = d.rng;
    d.l.ops->forward(&d.l, &d.x, 0);
    cr_expect(memcmp(d.l.y.data, d.x.data, tensor_size(&d.x) * sizeof(float)) == 0, "eval output is x");
    d.l.ops->backward(&d.l, &d.x, &d.dx);
    cr_expect(memcmp(d.dx.data, d.l.dy.data, tensor_size(&d.x) * sizeof(float)) == 0, "eval gradient is dy");
    cr_expect(memcmp(&before, &d.rng, sizeof before) == 0, "eval draws nothing from the stream");
    drop_close(&d);
}

Test(dropout, p_zero_is_identity_and_p_one_drops_all)
{
    Drop d;
    drop_open(&d, 0.0f, (Shape){1, 50, 1, 1}, 4);
    d.l.ops->forward(&d.l, &d.x, 1);
    cr_expect(memcmp(d.l.y.data, d.x.data, tensor_size(&d.x) * sizeof(float)) == 0, "p = 0 keeps everything");
    drop_close(&d);
    drop_open(&d, 1.0f, (Shape){1, 50, 1, 1}, 4);
    d.l.ops->forward(&d.l, &d.x, 1);
    d.l.ops->backward(&d.l, &d.x, &d.dx);
    for (size_t i = 0; i < tensor_size(&d.x); i++) {
        cr_expect_eq(d.l.y.data[i], 0.0f, "p = 1: y[%zu] = %g", i, (double)d.l.y.data[i]);
        cr_expect_eq(d.dx.data[i], 0.0f, "p = 1: dx[%zu]", i);
    }
    drop_close(&d);
}

/* The mask is the documented float comparison of each draw, u = rng_uniform >= p (the layer compares integers:
 * the same values), at rates whose threshold p * 2^24 is and is not a whole number, and at the ends. */
Test(dropout, mask_is_the_float_comparison_of_each_draw)
{
    const float ps[] = {0.3f, 0.5f, 0.1f, 1e-7f, 0.99999994f, 0.25f};
    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
        Drop d;
        size_t n = 200000, wrong = 0;
        drop_open(&d, ps[k], (Shape){1, 2000, 1, 1}, 100);
        Rng r = d.rng;
        float scale = 1.0f / (1.0f - ps[k]);
        d.l.ops->forward(&d.l, &d.x, 1);
        for (size_t i = 0; i < n; i++) {
            float want = d.x.data[i] * (rng_uniform(&r) >= ps[k] ? scale : 0.0f);
            wrong += memcmp(&want, &d.l.y.data[i], sizeof want) != 0;
        }
        cr_expect_eq(wrong, 0, "p = %.9g: %zu of %zu values differ from the float comparison", (double)ps[k], wrong,
                     n);
        cr_expect(memcmp(&r, &d.rng, sizeof r) == 0, "p = %.9g: the stream is not one draw a value further",
                  (double)ps[k]);
        drop_close(&d);
    }
}

/* With the images split across 1, 2 or 3 threads (7 images: uneven shares), every value gets the draw it gets in
 * order on one stream, the stream ends one draw a value further, and the backward applies the same mask. */
Test(dropout, threads_draw_the_one_stream_in_order)
{
    for (int threads = 1; threads <= 3; threads++) {
        Drop d;
        size_t n, wrong = 0, wrong_dx = 0;
        rt_set_threads(threads);
        drop_open(&d, 0.3f, (Shape){1, 5000, 1, 1}, 7);
        n = tensor_size(&d.x);
        Rng r = d.rng;
        float scale = 1.0f / (1.0f - 0.3f);
        d.l.ops->forward(&d.l, &d.x, 1);
        d.l.ops->backward(&d.l, &d.x, &d.dx);
        for (size_t i = 0; i < n; i++) {
            float m = rng_uniform(&r) >= 0.3f ? scale : 0.0f, y = d.x.data[i] * m, dx = d.l.dy.data[i] * m;
            wrong += memcmp(&y, &d.l.y.data[i], sizeof y) != 0;
            wrong_dx += memcmp(&dx, &d.dx.data[i], sizeof dx) != 0;
        }
        cr_expect_eq(wrong, 0, "%d threads: %zu of %zu values differ from the draws in order", threads, wrong, n);
        cr_expect_eq(wrong_dx, 0, "%d threads: %zu of %zu gradients differ", threads, wrong_dx, n);
        cr_expect(memcmp(&r, &d.rng, sizeof r) == 0, "%d threads: the stream is not one draw a value further",
                  threads);
        drop_close(&d);
    }
    rt_set_threads(0);
}

/* The mask is a function of the stream state: rewinding gives the same mask, going on gives a new one. */
Test(dropout, masks_come_from_the_network_stream)
{
    Drop d;
    Rng start;
    size_t n;
    float first[400];
    int differ = 0;
    drop_open(&d, 0.5f, (Shape){1, 100, 1, 1}, 4);
    n = tensor_size(&d.x);
    start = d.rng;
    d.l.ops->forward(&d.l, &d.x, 1);
    memcpy(first, d.l.y.data, n * sizeof(float));
    cr_expect(memcmp(&start, &d.rng, sizeof start) != 0, "training draws from l->rng");
    d.l.ops->forward(&d.l, &d.x, 1);
    for (size_t i = 0; i < n; i++)
        differ += (first[i] == 0.0f) != (d.l.y.data[i] == 0.0f);
    cr_expect_gt(differ, 0, "a second step must draw a new mask");
    d.rng = start;
    d.l.ops->forward(&d.l, &d.x, 1);
    cr_expect(memcmp(first, d.l.y.data, n * sizeof(float)) == 0, "the same stream state gives the same mask");
    drop_close(&d);
}

Test(dropout, gradcheck_with_fixed_mask)
{
    char err[256];
    LayerSpec s = test_spec(LK_DROPOUT, "drop", "p=0.4");
    Layer l;
    Rng rng;
    GradCheckResult r;
    rng_seed(&rng, 5);
    cr_assert(gradcheck_setup(&l, &s, (Shape){3, 2, 4, 5}, 3, &rng, 1, err, sizeof err) == 0, "%s", err);
    cr_expect(gradcheck_layer(&l, 3, 1, 4, 0, &r) == 0, "train: %s", r.worst);
    cr_expect(gradcheck_layer(&l, 3, 0, 4, 0, &r) == 0, "eval: %s", r.worst);
    l.ops->destroy(&l);
}

Test(dropout, probability_outside_0_1_is_an_error)
{
    float bad[] = {-0.1f, 1.5f, NAN};
    for (int i = 0; i < 3; i++) {
        char err[256] = "";
        LayerSpec s = test_spec(LK_DROPOUT, "drop", "p=0.5");
        s.arg[0].num = bad[i]; /* past the schema's range check, to reach the layer's own */
        Layer l;
        cr_expect(gradcheck_setup(&l, &s, (Shape){1, 4, 1, 1}, 2, NULL, 1, err, sizeof err) != 0, "p = %g",
                  (double)bad[i]);
        cr_expect(strstr(err, "probability") != NULL, "message: %s", err);
        l.ops->destroy(&l);
    }
}
