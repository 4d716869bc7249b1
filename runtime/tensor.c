/* Tensor storage: aligned, zeroed allocations so that sgemm and vector loops get aligned rows. */
#include "tensor.h"

#include <stdlib.h>
#include <string.h>

int tensor_alloc(Tensor *t, int n, int c, int h, int w)
{
    size_t count = (size_t)n * c * h * w;
    size_t bytes = (count * sizeof(float) + 63) & ~(size_t)63;
    t->n = n, t->c = c, t->h = h, t->w = w;
    t->data = NULL;
    if (bytes == 0)
        bytes = 64;
    t->data = aligned_alloc(64, bytes);
    if (!t->data)
        return -1;
    memset(t->data, 0, bytes);
    return 0;
}

void tensor_free(Tensor *t)
{
    free(t->data);
    t->data = NULL;
}
