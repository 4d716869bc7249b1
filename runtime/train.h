/* The training loop of `bnni train` (epochs of shuffled mini-batches, the per-epoch test evaluation, metrics,
 * checkpoints after every epoch, exact resume, divergence and interrupt handling) and the evaluation loop
 * that `bnni eval` shares with it. */
#ifndef BNNI_TRAIN_H
#define BNNI_TRAIN_H

#include <stdio.h>

#include "../interp/spec.h"
#include "ckpt.h"
#include "data/dataset.h"
#include "net.h"

/* Exit statuses of train_run, as the command returns them (interp/cmd.h). */
enum {
    TRAIN_OK = 0,
    TRAIN_BAD_INPUT = 1,
    TRAIN_DIVERGED = 3,
    TRAIN_SIGINT = 130,
    TRAIN_SIGTERM = 143,
};

typedef struct TrainOptions {
    const char *out;     /* checkpoint written after every epoch (and on an interrupt) */
    const char *resume;  /* continue exactly from this checkpoint, or NULL */
    const char *init;    /* start from this checkpoint's weights and moving statistics, or NULL */
    const char *metrics; /* per-epoch CSV, or NULL */
    long long test_limit; /* evaluate on the first test_limit test images (0: all of them) */
    int quiet;           /* no epoch lines, no progress bar */
    int progress;        /* draw the live progress bar on stderr (the caller checks isatty) */
    FILE *log;           /* the epoch lines (stdout) */
    int profile;         /* time every layer and phase; print the tables (runtime/profile.h) after training */
    FILE *profile_out;   /* where the profile goes (NULL: stderr) */
} TrainOptions;

/* Trains m (data, optimizer, epochs, seed, limit as m says; the caller applies its flags to m first).
 * Returns a TRAIN_* status; unless TRAIN_OK, err holds one line (for an interrupt, where the checkpoint went).
 * Installs SIGINT/SIGTERM handlers for its duration. A checkpoint on disk is only ever replaced by a complete,
 * good one: never on bad input, divergence or a failed save. Checks first that o->out's directory takes a
 * checkpoint (ckpt_check_writable), so a missing or read-only one fails before any training. */
int train_run(ModelSpec *m, const TrainOptions *o, char *err, size_t errlen);

/* Images per evaluation chunk: what one thread runs through the whole network at a time. */
#define TRAIN_EVAL_CHUNK 32

/* Evaluates net on every image of d in eval mode (moving statistics), in chunks of min(batch, TRAIN_EVAL_CHUNK)
 * images spread over the runtime's threads (threads.h), each thread on its own copy of net. The result is the
 * same at any thread count. Returns 0 with the mean loss and the accuracy, or -1 with err. */
int train_evaluate(Net *net, const Dataset *d, const Normalizer *nz, int batch, double *loss, double *acc,
                   char *err, size_t errlen);

/* Loads the model of `file` (or, when source is not NULL, that text, named `file` in messages) for train, eval
 * and predict. For training (inference 0) it refuses one whose training would need more than mem_cap bytes (0:
 * physical memory); for eval and predict (inference 1) that estimate is not made.
 * Diagnostics reach stderr only when the model has errors: its warnings are `bnni check`'s business.
 * Returns 0 and *out (caller frees with spec_free) or 1. */
int train_load_model(const char *file, const char *source, unsigned long long mem_cap, int inference,
                     ModelSpec **out);

/* For eval and predict: reads the checkpoint at ckpt_path, loads its model (from model_path when not
 * NULL, else the source embedded in the checkpoint; diagnostics to stderr), builds the network and loads the
 * checkpoint's tensors into it. On success the caller frees *c (ckpt_free), *m (spec_free) and *net (net_free).
 * Returns 0 or -1 with "FILE: reason" in err. */
int train_load_checkpoint(const char *ckpt_path, const char *model_path, Ckpt *c, ModelSpec **m, Net **net,
                          char *err, size_t errlen);

/* The normaliser a checkpoint was trained with (root attributes data_mean, data_std). */
void train_checkpoint_normalizer(const Ckpt *c, Normalizer *nz);

/* Formats n with thousands separators ("31,500"). Returns buf. */
const char *train_group_digits(double n, char *buf, size_t len);

#endif
