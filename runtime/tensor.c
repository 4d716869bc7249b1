/* Tensor storage: aligned, zeroed allocations so that sgemm and vector loops get aligned rows.
 * The zeroing is calloc's: a large block fresh from the kernel is already zero and calloc does not clear it, so
 * its pages are only faulted in when written. An evaluation replica never writes its gradient buffers, nor the
 * outputs of the batchnorm and activation fused into a conv2d or dense, and so does not pay for them (~2 ms of
 * page faults of a 10,000-image `bnni eval`, when they were cleared by memset). */
#include "tensor.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#define TENSOR_ALIGN 64

float *tensor_zalloc(size_t count)
{
    if (count > (SIZE_MAX - 4 * TENSOR_ALIGN) / sizeof(float))
        return NULL;
    /* Whole cache lines, so that a vector loop may read up to the next 64-byte boundary; then room for the
     * alignment and, just below the aligned block, the pointer calloc returned. */
    size_t bytes = (count * sizeof(float) + TENSOR_ALIGN - 1) & ~(size_t)(TENSOR_ALIGN - 1);
    char *base = calloc(1, bytes + TENSOR_ALIGN + sizeof(void *));
    if (!base)
        return NULL;
    uintptr_t p = ((uintptr_t)base + sizeof(void *) + TENSOR_ALIGN - 1) & ~(uintptr_t)(TENSOR_ALIGN - 1);
    ((void **)p)[-1] = base;
    return (float *)p;
}

void tensor_zfree(float *p)
{
    if (p)
        free(((void **)p)[-1]);
}

int tensor_alloc(Tensor *t, int n, int c, int h, int w)
{
    size_t count = (size_t)n * c * h * w;
    t->n = n, t->c = c, t->h = h, t->w = w;
    t->data = tensor_zalloc(count);
    return t->data ? 0 : -1;
}

void tensor_free(Tensor *t)
{
    tensor_zfree(t->data);
    t->data = NULL;
}

int tensor_nonfinite(const float *v, size_t n)
{
    uint32_t bad = 0;
    for (size_t j = 0; j < n; j++) {
        uint32_t bits;
        memcpy(&bits, &v[j], sizeof bits);
        bad |= (bits & 0x7f800000u) == 0x7f800000u;
    }
    return (int)bad;
}

void tensor_hint_huge_pages(void *p, size_t bytes)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t lo = ((uintptr_t)p + huge - 1) & ~(huge - 1), hi = ((uintptr_t)p + bytes) & ~(huge - 1);
    if (hi > lo)
        madvise((void *)lo, hi - lo, MADV_HUGEPAGE); /* a hint: refused, the pages stay 4 KB */
#else
    (void)p, (void)bytes;
#endif
}
