/* Softmax cross-entropy with its gradient, by log-sum-exp so that large logits neither overflow nor
 * lose the small probabilities. Sums run in double; the result and the gradient are float32. */
#include "loss.h"

#include <math.h>
#include <stdio.h>

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

/* The sum over the rows of their loss; dlogits (softmax - onehot) / divisor. */
static double cross_entropy(const Tensor *logits, const int *labels, int divisor, Tensor *dlogits, int *ncorrect)
{
    int N = logits->n, K = logits->c * logits->h * logits->w, correct = 0;
    double total = 0.0;
    for (int i = 0; i < N; i++) {
        const float *z = logits->data + (size_t)i * K;
        int best;
        double lse = row_lse(z, K, &best);
        total += lse - z[labels[i]];
        correct += best == labels[i];
        if (dlogits) {
            float *dz = dlogits->data + (size_t)i * K;
            for (int k = 0; k < K; k++)
                dz[k] = (float)((exp((double)z[k] - lse) - (k == labels[i])) / divisor);
        }
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
