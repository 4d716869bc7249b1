/* Softmax cross-entropy with its gradient, by log-sum-exp so that large logits neither overflow nor
 * lose the small probabilities. Sums run in double; the result and the gradient are float32. */
#include "loss.h"

#include <math.h>
#include <stdio.h>

#include "threads.h"

/* Row of K logits: returns logsumexp(z) and the index of the first maximum. */
static double row_lse(const float *z, int K, int *argmax)
{
    int best = 0;
    for (int k = 1; k < K; k++)
        if (z[k] > z[best])
            best = k;
    double zmax = z[best], s = 0.0;
    for (int k = 0; k < K; k++)
        s += exp((double)z[k] - zmax);
    *argmax = best;
    return zmax + log(s);
}

/* Rows per block: each block's loss is summed alone and the blocks' sums in block order, so the total is the same
 * whatever the thread count. A batch's rows are the last layer's blocks (dense splits its rows by 32 too), so each
 * thread reads the logits it wrote. */
#define LOSS_BLOCK 32
#define LOSS_ROUND 64 /* blocks per team task: their sums live on the caller's stack */

/* One round of blocks, for the threads' tasks. */
typedef struct LossCall {
    const Tensor *logits;
    const int *labels;
    int divisor, b0; /* b0: the round's first block */
    Tensor *dlogits;
    double sum[LOSS_ROUND];
    int correct[LOSS_ROUND];
} LossCall;

/* Blocks [lo, hi) of the round: each one's summed loss and correct rows; dlogits (softmax - onehot) / divisor. */
static void loss_blocks(void *ctx, int lo, int hi)
{
    LossCall *c = ctx;
    int N = c->logits->n, K = c->logits->c * c->logits->h * c->logits->w;
    for (int b = lo; b < hi; b++) {
        int i0 = (c->b0 + b) * LOSS_BLOCK, i1 = i0 + LOSS_BLOCK < N ? i0 + LOSS_BLOCK : N, correct = 0;
        double total = 0.0;
        for (int i = i0; i < i1; i++) {
            const float *z = c->logits->data + (size_t)i * K;
            int best, y = c->labels[i];
            double lse = row_lse(z, K, &best);
            total += lse - z[y];
            correct += best == y;
            if (c->dlogits) {
                float *dz = c->dlogits->data + (size_t)i * K;
                for (int k = 0; k < K; k++)
                    dz[k] = (float)((exp((double)z[k] - lse) - (k == y)) / c->divisor);
            }
        }
        c->sum[b] = total, c->correct[b] = correct;
    }
}

/* The sum over the rows of their loss, the blocks split across the runtime's threads (two exps a logit: LeNet-BN's
 * 1,280 took 16 us, the other thread waiting). */
static double cross_entropy(const Tensor *logits, const int *labels, int divisor, Tensor *dlogits, int *ncorrect)
{
    LossCall c = {.logits = logits, .labels = labels, .divisor = divisor, .dlogits = dlogits};
    int blocks = (logits->n + LOSS_BLOCK - 1) / LOSS_BLOCK, correct = 0;
    double total = 0.0;
    for (c.b0 = 0; c.b0 < blocks; c.b0 += LOSS_ROUND) {
        int nb = blocks - c.b0 < LOSS_ROUND ? blocks - c.b0 : LOSS_ROUND;
        rt_for(nb, rt_threads(), loss_blocks, &c);
        for (int b = 0; b < nb; b++)
            total += c.sum[b], correct += c.correct[b];
    }
    if (ncorrect)
        *ncorrect = correct;
    return total;
}

float loss_cross_entropy(const Tensor *logits, const int *labels, Tensor *dlogits, int *ncorrect)
{
    return (float)(cross_entropy(logits, labels, logits->n, dlogits, ncorrect) / logits->n);
}

double loss_cross_entropy_share(const Tensor *logits, const int *labels, int batch, Tensor *dlogits, int *ncorrect)
{
    return cross_entropy(logits, labels, batch, dlogits, ncorrect);
}

int loss_check_labels(const int *labels, size_t n, int classes, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= classes) {
            snprintf(err, errlen, "label %d at index %zu is outside [0, %d)", labels[i], i, classes);
            return -1;
        }
    return 0;
}
