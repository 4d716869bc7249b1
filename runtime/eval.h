/* Evaluating a network in eval mode (moving statistics, no dropout) on a data set: loss, accuracy and, for
 * `bnni eval --confusion`, the confusion matrix. Used by the trainer after every epoch, by the trace, and by the
 * commands; it knows no layer kind and never writes anything. */
#ifndef BNNI_EVAL_H
#define BNNI_EVAL_H

#include <stddef.h>

#include "data/dataset.h"
#include "dist.h"
#include "net.h"

/* Items per evaluation chunk: what one thread runs through the whole network at a time. */
#define EVAL_CHUNK 32

/* Evaluates net on the items at positions 0..count-1 of rows (rows NULL: items 0..count-1) of d, in chunks of
 * min(batch, EVAL_CHUNK) items spread over the runtime's threads (threads.h), each thread on its own copy of net;
 * the sums are added in chunk order, so the result is the same at any thread count. With dist (a run of several
 * ranks; NULL: alone) each rank evaluates a contiguous share of the chunks and the sums are added over the ranks:
 * the same result, bit for bit; collective, and no confusion counts. When confusion is not NULL, adds each item to
 * confusion[label * K + predicted] (K x K, K the network's outputs; the prediction is the first maximum).
 * Returns 0 with the mean loss and the accuracy, or -1 with err. */
int eval_rows(Net *net, const Dataset *d, const int *rows, int count, const Normalizer *nz, int batch, Dist *dist,
             double *loss, double *acc, long long *confusion, char *err, size_t errlen);
/* eval_rows over every item of d, alone. */
int eval_dataset(Net *net, const Dataset *d, const Normalizer *nz, int batch, double *loss, double *acc, char *err,
                 size_t errlen);

/* A batch's input tensor, its logits' gradient (when dlogits is not NULL) and its labels for net, batch items.
 * Returns 0 or -1 (out of memory). */
int eval_alloc_batch(const Net *net, int batch, Tensor *x, Tensor *dlogits, int **labels);

#endif
