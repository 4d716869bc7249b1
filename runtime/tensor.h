/* Float32 tensors in NCHW layout. A dense activation is N x C with h = w = 1.
 * A tensor does not own its data unless made by tensor_alloc; the layer that
 * produces an activation owns it and reuses it for every step at one batch size. */
#ifndef BNNI_TENSOR_H
#define BNNI_TENSOR_H

#include <stddef.h>

typedef struct Tensor {
    float *data;
    int n, c, h, w;
} Tensor;

static inline size_t tensor_size(const Tensor *t) { return (size_t)t->n * t->c * t->h * t->w; }

/* Allocates n*c*h*w zeroed floats (64-byte aligned) into t; returns 0, or -1 when out of memory. Free with tensor_free. */
int tensor_alloc(Tensor *t, int n, int c, int h, int w);
void tensor_free(Tensor *t);
/* count zeroed floats (rounded up to whole 64-byte lines), 64-byte aligned, with the allocation's own page faults
 * deferred to first write (calloc). Returns NULL when out of memory or count is too large; the caller frees with
 * tensor_zfree (not free). */
float *tensor_zalloc(size_t count);
void tensor_zfree(float *p);
/* Asks the kernel to back the whole 2 MB pages inside [p, p + bytes) with transparent huge pages when they are
 * first written (Linux's madvise MADV_HUGEPAGE; elsewhere, or when refused, nothing happens). For large arrays read
 * at random, such as a data set's images: one TLB entry then covers 2 MB instead of 4 KB. */
void tensor_hint_huge_pages(void *p, size_t bytes);
/* Non-zero when one of v[0..n) is Inf or NaN (an exponent of all ones): one pass with no early exit, which the
 * compiler vectorises; for the step's divergence checks, which find nothing almost always. */
int tensor_nonfinite(const float *v, size_t n);

#endif
