/* The training loop of `bnni train` (epochs of shuffled mini-batches, the per-epoch test evaluation, metrics,
 * checkpoints after every epoch, exact resume, divergence, and stopping on request) and the evaluation loop
 * that `bnni eval` shares with it. Signals and exit statuses are the command's business (interp/cmd_train.c). */
#ifndef BNNI_TRAIN_H
#define BNNI_TRAIN_H

#include <signal.h>
#include <stdio.h>

#include "ckpt.h"
#include "data/dataset.h"
#include "dist.h"
#include "eval.h"
#include "net.h"
#include "spec.h"
#include "trace.h"

/* How train_run ended. */
typedef enum TrainStatus {
    TRAIN_OK,       /* every epoch trained and saved */
    TRAIN_FAILED,   /* bad input or a failed save */
    TRAIN_DIVERGED, /* a non-finite loss or parameter; the last good checkpoint is kept */
    TRAIN_STOPPED,  /* *stop was set: the current step finished and a resumable checkpoint was saved */
} TrainStatus;

typedef struct TrainOptions {
    const char *out;     /* checkpoint written after every epoch (and on an interrupt) */
    const char *resume;  /* continue exactly from this checkpoint, or NULL */
    Ckpt *resumed;       /* resume's checkpoint when the caller has read it already (ckpt_read), else NULL: train_run
                          * takes it (frees it, whatever happens) and reads resume no more */
    const char *init;    /* start from this checkpoint's weights and moving statistics, or NULL */
    const char *metrics; /* per-epoch CSV, or NULL */
    long long test_limit; /* evaluate on the first test_limit test images (0: all of them) */
    int quiet;           /* no epoch lines, no progress bar */
    int progress;        /* draw the live progress bar on stderr (the caller checks isatty) */
    FILE *log;           /* the epoch lines (stdout) */
    int profile;         /* time every layer and phase; print the tables (runtime/profile.h) after training */
    unsigned long long mem_cap; /* bytes the run may use (--mem-cap; 0: physical memory): a training set that does
                                 * not fit beside the model is streamed from its files (data/stream.h) */
    FILE *profile_out;   /* where the profile goes (NULL: stderr) */
    /* --trace: the layers, interval and images to trace (runtime/trace.h; its records unused), or NULL. A resumed
     * checkpoint's trace is continued either way (a request must then match it). */
    const TraceLog *trace;
    /* Set asynchronously (by a signal handler) to a signal number to stop the run; read between steps. NULL:
     * never stopped. */
    const volatile sig_atomic_t *stop;
    int *saved_epoch;    /* when not NULL: set to the epoch the checkpoint at `out` holds (keep="best": the best) */
    /* The ranks of a data-parallel run (dist.h, docs/distributed.md), or NULL: this process alone. With more
     * than one rank, each trains on its share of every batch; rank 0 alone writes the checkpoint and the metrics
     * and should be the only one not quiet; every rank returns the same status, err on rank 0 saying why. */
    Dist *dist;
    /* When the run ends TRAIN_STOPPED, receives the signal it stopped for: in a shared run the one the ranks
     * agreed on, which may have reached another rank only. May be NULL. */
    int *stopped_by;
} TrainOptions;

/* Trains m (data, optimizer, epochs, seed, limit as m says; the caller applies its flags to m first).
 * Unless TRAIN_OK, err holds one line (for a stop, where the checkpoint went). A checkpoint on disk is only ever
 * replaced by a complete, good one: never on bad input, divergence or a failed save. Checks first that o->out's
 * directory takes a checkpoint (ckpt_check_writable), so a missing or read-only one fails before any training. */
TrainStatus train_run(ModelSpec *m, const TrainOptions *o, char *err, size_t errlen);

/* The normaliser a checkpoint was trained with (its normalize, data_dtype, data_mean and data_std), for items of
 * ds's shape. Returns 0, or -1 with err; free with norm_free. */
int train_checkpoint_normalizer(const Ckpt *c, const DataSpec *ds, Normalizer *nz, char *err, size_t errlen);

/* Formats a loss or an accuracy with `digits` decimals ("0.3158"), or, beyond 1e6 in magnitude (a loss on its
 * way to diverging), with `digits` significant digits ("1.032e+32") instead of a 33-digit number. Returns buf. */
const char *train_format_value(double v, int digits, char *buf, size_t len);

/* Formats n with thousands separators ("31,500"). Returns buf. */
const char *train_group_digits(double n, char *buf, size_t len);

#endif
