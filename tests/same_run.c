/* Two checkpoints of the same training compared field by field (same_run.h). Doubles and floats are compared
 * by their bytes: -0.0 against 0.0 or two different NaNs count as different, as they would change a resumed run. */
#include "tests/same_run.h"

#include <criterion/criterion.h>
#include <string.h>

#define SAME_BYTES(a_, b_, n_) (memcmp((a_), (b_), (n_)) == 0)

static void expect_same_tensors(const Ckpt *a, const Ckpt *b, const char *what)
{
    cr_assert_eq(a->ntensors, b->ntensors, "%s: %d tensors against %d", what, a->ntensors, b->ntensors);
    for (int i = 0; i < a->ntensors; i++) {
        const CkptTensor *x = &a->tensors[i], *y = &b->tensors[i];
        cr_assert_str_eq(x->path, y->path, "%s: tensor %d", what, i);
        cr_expect(x->rank == y->rank && SAME_BYTES(x->dims, y->dims, sizeof x->dims) && x->size == y->size,
                  "%s: %s has another shape", what, x->path);
        if (x->size != y->size)
            continue;
        size_t k = 0;
        while (k < x->size && SAME_BYTES(&x->data[k], &y->data[k], sizeof(float)))
            k++;
        cr_expect(k == x->size, "%s: %s differs first at [%zu]: %.9g against %.9g", what, x->path, k,
                  k < x->size ? (double)x->data[k] : 0.0, k < x->size ? (double)y->data[k] : 0.0);
    }
}

static void expect_same_optimizer(const Ckpt *a, const Ckpt *b, const char *what)
{
    cr_expect_eq(a->has_optimizer, b->has_optimizer, "%s: optimizer group", what);
    const OptSpec *x = &a->opt, *y = &b->opt;
    cr_expect(x->kind == y->kind && x->nesterov == y->nesterov, "%s: optimizer kind or nesterov", what);
    double hx[6] = {x->lr, x->momentum, x->weight_decay, x->beta1, x->beta2, x->eps};
    double hy[6] = {y->lr, y->momentum, y->weight_decay, y->beta1, y->beta2, y->eps};
    cr_expect(SAME_BYTES(hx, hy, sizeof hx), "%s: optimizer hyper-parameters", what);
    cr_expect_eq(a->opt_steps, b->opt_steps, "%s: optimizer steps %lld against %lld", what, a->opt_steps,
                 b->opt_steps);
}

static void expect_same_train_state(const Ckpt *a, const Ckpt *b, const char *what)
{
    cr_assert_eq(a->has_train_state, b->has_train_state, "%s: train_state group", what);
    const TrainState *x = &a->ts, *y = &b->ts;
    cr_expect(x->epoch == y->epoch && x->position == y->position, "%s: train state at epoch %d position %d against "
              "epoch %d position %d", what, x->epoch, x->position, y->epoch, y->position);
    cr_assert(x->norder == y->norder && x->batch == y->batch, "%s: %d images in batches of %d against %d in %d",
              what, x->norder, x->batch, y->norder, y->batch);
    cr_expect(x->norder == 0 || SAME_BYTES(x->order, y->order, (size_t)x->norder * sizeof *x->order),
              "%s: the epoch's order", what);
    cr_expect(SAME_BYTES(x->shuffle_rng.s, y->shuffle_rng.s, sizeof x->shuffle_rng.s), "%s: the shuffle stream",
              what);
    cr_expect(SAME_BYTES(x->net_rng.s, y->net_rng.s, sizeof x->net_rng.s), "%s: the dropout stream (net_rng)",
              what);
    cr_expect(SAME_BYTES(&x->loss_sum, &y->loss_sum, sizeof x->loss_sum) && x->correct == y->correct,
              "%s: the epoch's running loss %.17g and correct count %lld against %.17g and %lld", what, x->loss_sum,
              x->correct, y->loss_sum, y->correct);
    cr_expect(SAME_BYTES(&x->lr, &y->lr, sizeof x->lr), "%s: the epoch's lr %.17g against %.17g", what, x->lr,
              y->lr);
}

static void expect_same_column(const double *x, const double *y, int n, const char *what, const char *name)
{
    for (int i = 0; i < n; i++)
        cr_expect(SAME_BYTES(&x[i], &y[i], sizeof x[i]), "%s: metrics %s of epoch %d: %.17g against %.17g", what,
                  name, i + 1, x[i], y[i]);
}

static void expect_same_metrics(const Ckpt *a, const Ckpt *b, const char *what)
{
    const CkptMetrics *x = &a->metrics, *y = &b->metrics;
    cr_assert_eq(x->n, y->n, "%s: %d epochs of metrics against %d", what, x->n, y->n);
    expect_same_column(x->train_loss, y->train_loss, x->n, what, "train_loss");
    expect_same_column(x->train_acc, y->train_acc, x->n, what, "train_acc");
    expect_same_column(x->test_loss, y->test_loss, x->n, what, "test_loss");
    expect_same_column(x->test_acc, y->test_acc, x->n, what, "test_acc");
}

static int same_str(const char *x, const char *y) { return (!x && !y) || (x && y && strcmp(x, y) == 0); }

void same_run_expect_ckpt(const Ckpt *a, const Ckpt *b, const char *what)
{
    cr_expect(same_str(a->model_source, b->model_source) && same_str(a->model_name, b->model_name),
              "%s: the model", what);
    cr_expect_eq(a->epoch, b->epoch, "%s: epoch %d against %d", what, a->epoch, b->epoch);
    cr_expect_eq(a->seed, b->seed, "%s: seed", what);
    cr_expect(strcmp(a->normalize, b->normalize) == 0 && SAME_BYTES(&a->data_mean, &b->data_mean, sizeof(double)) &&
                  SAME_BYTES(&a->data_std, &b->data_std, sizeof(double)),
              "%s: the input normalisation", what);
    cr_assert_eq(a->nlayers, b->nlayers, "%s: %d layer groups against %d", what, a->nlayers, b->nlayers);
    for (int i = 0; i < a->nlayers; i++) {
        const CkptLayer *x = &a->layers[i], *y = &b->layers[i];
        cr_expect(ckpt_layer_same(x, y), "%s: layer group %d (%s)", what, i, x->name);
    }
    expect_same_tensors(a, b, what);
    expect_same_optimizer(a, b, what);
    expect_same_train_state(a, b, what);
    expect_same_metrics(a, b, what);
}

void same_run_expect(const char *a_path, const char *b_path, const char *what)
{
    Ckpt a, b;
    char err[1024];
    cr_assert_eq(ckpt_read(a_path, &a, err, sizeof err), 0, "%s: %s: %s", what, a_path, err);
    cr_assert_eq(ckpt_read(b_path, &b, err, sizeof err), 0, "%s: %s: %s", what, b_path, err);
    same_run_expect_ckpt(&a, &b, what);
    ckpt_free(&a);
    ckpt_free(&b);
}
