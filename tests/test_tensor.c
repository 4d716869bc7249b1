/* Tensor storage (runtime/tensor.c): 64-byte aligned, zeroed, whole cache lines, and a clean NULL for sizes no
 * allocation can hold (the round-up to whole lines must not wrap). */
#include <criterion/criterion.h>
#include <stdint.h>

#include "runtime/layers/common.h"
#include "runtime/tensor.h"

Test(tensor, zalloc_is_aligned_zeroed_whole_lines)
{
    size_t sizes[] = {0, 1, 15, 16, 17, 1000, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        float *p = tensor_zalloc(sizes[i]);
        cr_assert(p, "no block for %zu floats", sizes[i]);
        cr_expect_eq((uintptr_t)p % 64, 0, "%zu floats: not 64-byte aligned", sizes[i]);
        size_t lines = (sizes[i] + 15) / 16 * 16; /* readable up to the end of the last 64-byte line */
        for (size_t j = 0; j < lines; j++)
            cr_assert_eq(p[j], 0.0f, "%zu floats: [%zu] is not zero", sizes[i], j);
        for (size_t j = 0; j < lines; j++)
            p[j] = 1.0f; /* the whole lines are ours to write (ASan checks) */
        tensor_zfree(p);
    }
    tensor_zfree(NULL);
}

Test(tensor, zalloc_refuses_sizes_that_would_wrap)
{
    cr_expect_null(tensor_zalloc(SIZE_MAX));
    cr_expect_null(tensor_zalloc(SIZE_MAX / sizeof(float)));
    cr_expect_null(tensor_zalloc(SIZE_MAX / sizeof(float) - 3));
}

Test(tensor, alloc_sets_the_shape_and_zeroes)
{
    Tensor t;
    cr_assert_eq(tensor_alloc(&t, 3, 2, 5, 7), 0);
    cr_expect(t.n == 3 && t.c == 2 && t.h == 5 && t.w == 7);
    cr_expect_eq(tensor_size(&t), 210);
    for (size_t i = 0; i < tensor_size(&t); i++)
        cr_assert_eq(t.data[i], 0.0f);
    tensor_free(&t);
    cr_expect_null(t.data);
}

/* Layer buffers go through the same allocation: a size from a corrupt or absurd model is an error message. */
Test(tensor, layer_alloc_floats_refuses_sizes_that_would_wrap)
{
    char err[128] = "";
    cr_expect_null(layer_alloc_floats(SIZE_MAX, "the test buffer", err, sizeof err));
    cr_expect_str_eq(err, "out of memory for the test buffer (18446744073709551615 values)");
    float *p = layer_alloc_floats(5, "five", err, sizeof err);
    cr_assert(p);
    tensor_zfree(p);
}
