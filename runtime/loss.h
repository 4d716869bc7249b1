/* The training loss: softmax cross-entropy averaged over the batch (torch.nn.CrossEntropyLoss, reduction "mean"),
 * and the label check that keeps a bad label file from indexing outside the logits. */
#ifndef BNNI_LOSS_H
#define BNNI_LOSS_H

#include <stddef.h>

#include "tensor.h"

/* logits is N x K (K = c*h*w classes); labels[N] must lie in [0, K) (see loss_check_labels).
 * Returns mean_i(logsumexp(logits_i) - logits_i[label_i]), computed stably in double. When dlogits is not NULL
 * (same shape as logits) it is overwritten with (softmax - onehot)/N; when ncorrect is not NULL it receives
 * how many rows have their largest logit (the first, on ties) at the label. */
float loss_cross_entropy(const Tensor *logits, const int *labels, Tensor *dlogits, int *ncorrect);
/* The same for the rows of one rank's share of a batch of `batch` rows (data-parallel training): returns the sum
 * over its rows of their loss, in double, and writes (softmax - onehot)/batch into dlogits, so that the ranks'
 * gradients add up to the whole batch's. logits may hold no rows. */
double loss_cross_entropy_share(const Tensor *logits, const int *labels, int batch, Tensor *dlogits, int *ncorrect);

/* Returns 0 when every labels[0..n) is in [0, classes), else -1 with "label L at index I is outside [0, K)". */
int loss_check_labels(const int *labels, size_t n, int classes, char *err, size_t errlen);

#endif
