/* Two checkpoints of the same training compared field by field: what "exact resume" and "deterministic" promise
 * (tests only). Timings are the one exception: they measure the machine, not the run. */
#ifndef BNNI_SAME_RUN_H
#define BNNI_SAME_RUN_H

#include "runtime/ckpt.h"

/* Expects (Criterion expectations, naming `what` and the field) that a and b hold the same run, bit for bit:
 * - every tensor under /layers and /optimizer, by path, shape and value;
 * - the optimizer's kind, hyper-parameters and step count;
 * - the whole train state: epoch, position, images per epoch, batch, the epoch's order, both RNG streams (shuffle
 *   and dropout), the running loss sum and correct count of the epoch, its learning rate;
 * - the seed, the model's source and name, the input normalisation (kind, mean, std), the epoch, the layers'
 *   types and batchnorm momentum and eps;
 * - every metric of every epoch except the two timings: train_loss, train_acc, test_loss, test_acc.
 * Not compared: `created`, train_state seconds, metrics seconds and images_per_second (wall-clock time). */
void same_run_expect_ckpt(const Ckpt *a, const Ckpt *b, const char *what);
/* The same for the checkpoints at two paths; fails the test when either cannot be read. */
void same_run_expect(const char *a_path, const char *b_path, const char *what);

#endif
