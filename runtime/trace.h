/* The internal-covariate-shift trace of `bnni train --trace` (Ioffe & Szegedy 2015, Figure 1): every `every`
 * optimizer steps, the 15th, 50th and 85th percentiles of some layers' outputs on a fixed probe batch (the first
 * `probe` test images) and the accuracy on a fixed subset (the first `subset` test images), both in eval mode.
 * A checkpoint keeps the records under /trace (docs/checkpoint.md), and a resumed run continues them exactly.
 * Recording changes nothing the training computes. */
#ifndef BNNI_TRACE_H
#define BNNI_TRACE_H

#include <stddef.h>

#include "data/dataset.h"
#include "net.h"
#include "spec.h"

#define TRACE_MAX_LAYERS 8
#define TRACE_DEFAULT_EVERY 50
#define TRACE_DEFAULT_PROBE 256
#define TRACE_DEFAULT_SUBSET 2000

/* The records (and, with n = 0, the request): what /trace holds. */
typedef struct TraceLog {
    int every;              /* steps between records; a record is taken at every multiple of it, step 0 included */
    int probe, subset;      /* images of the probe batch and of the accuracy subset (after the test set's limit) */
    int nlayers;
    char names[TRACE_MAX_LAYERS][SPEC_NAME_MAX];
    int n, cap;             /* records */
    long long *step;        /* [n] optimizer steps taken when recorded */
    double *test_acc;       /* [n] eval-mode accuracy on the subset */
    double *pct;            /* [n][nlayers][3] the 15th, 50th and 85th percentiles of each layer's output on the
                             * probe, numpy's linear interpolation; NaN when the output holds NaN or Inf */
} TraceLog;

/* The percentiles recorded, in order. */
#define TRACE_NPCT 3
extern const double trace_percentiles[TRACE_NPCT];

/* A trace attached to a training run. */
typedef struct Trace Trace;

/* Starts tracing net's layers named in req (every, probe, subset, names; its records ignored) on the test set
 * (borrowed, as are net and nz: they must outlive the trace). With `saved` (a resumed checkpoint's /trace, or
 * NULL) the trace continues those records: req may be NULL then, and else must ask for the same layers, every,
 * probe and subset. Returns 0 and *out (trace_free), or -1 with err (a name no layer has, a mismatch). */
int trace_start(const TraceLog *req, const TraceLog *saved, Net *net, const Dataset *test, const Normalizer *nz,
                Trace **out, char *err, size_t errlen);
/* After `step` optimizer steps (0: before the first): records when step is a multiple of every not yet
 * recorded. The network's buffers are overwritten (run it between steps). Returns 0, or -1 with err (memory). */
int trace_step(Trace *t, long long step, char *err, size_t errlen);
/* The records so far, for the checkpoint (owned by t). */
const TraceLog *trace_log(const Trace *t);
void trace_free(Trace *t);

/* Appends one record (step, acc, pct[nlayers*3]) to log. Returns 0 or -1 when out of memory. */
int trace_log_append(TraceLog *log, long long step, double acc, const double *pct);
/* Frees the arrays of a log and the log itself (from trace_read_h5); NULL is fine. */
void trace_log_free(TraceLog *log);

/* The q-quantile (0 <= q <= 1) of v[0..n), numpy's default linear interpolation between order statistics; v is
 * reordered. NaN when n is 0 or a value is not finite. */
double trace_quantile(float *v, size_t n, double q);

#endif
