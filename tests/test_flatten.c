/* flatten: the shape rule (CxHxW -> C*H*W features), a bit-exact copy both ways in NCHW order, and the
 * finite-difference check (tests/gradcheck.h). */
#include <criterion/criterion.h>
#include <string.h>

#include "runtime/layer.h"
#include "tests/gradcheck.h"

Test(flatten, shape_rule)
{
    LayerSpec s = {.kind = LK_FLATTEN, .name = "flat"};
    Shape out;
    long long np, nb;
    char err[128];
    cr_assert(layer_out_shape(&s, (Shape){3, 16, 5, 5}, &out, &np, &nb, err, sizeof err) == 0);
    cr_expect(out.rank == 1 && out.c == 400 && out.h == 1 && out.w == 1, "16x5x5 -> %d", out.c);
    cr_expect(np == 0 && nb == 0);
    cr_assert(layer_out_shape(&s, (Shape){1, 7, 1, 1}, &out, &np, &nb, err, sizeof err) == 0);
    cr_expect(out.rank == 1 && out.c == 7, "a flat input stays as it is");
}

/* y[n][(c*H + h)*W + w] = x[n][c][h][w], and dx the same mapping backwards, exactly. */
Test(flatten, copies_in_nchw_order)
{
    char err[256];
    enum { N = 2, C = 3, H = 4, W = 5 };
    LayerSpec s = {.kind = LK_FLATTEN, .name = "flat"};
    Layer l;
    Tensor x, dx;
    cr_assert(gradcheck_setup(&l, &s, (Shape){3, C, H, W}, N, NULL, 1, err, sizeof err) == 0, "%s", err);
    cr_assert(tensor_alloc(&x, N, C, H, W) == 0 && tensor_alloc(&dx, N, C, H, W) == 0);
    gradcheck_fill_distinct(&x, 3);
    l.ops->forward(&l, &x, 1);
    cr_expect(l.y.n == N && l.y.c == C * H * W && l.y.h == 1 && l.y.w == 1);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++)
                    cr_expect_eq(l.y.data[n * C * H * W + (c * H + h) * W + w], x.data[((n * C + c) * H + h) * W + w]);
    gradcheck_fill_distinct(&l.dy, 4);
    l.ops->backward(&l, &x, &dx);
    cr_expect(memcmp(dx.data, l.dy.data, sizeof(float) * N * C * H * W) == 0, "dx is dy reshaped");
    tensor_free(&x), tensor_free(&dx);
    l.ops->destroy(&l);
}

Test(flatten, gradcheck)
{
    char err[256];
    LayerSpec s = {.kind = LK_FLATTEN, .name = "flat"};
    Layer l;
    GradCheckResult r;
    cr_assert(gradcheck_setup(&l, &s, (Shape){3, 2, 3, 5}, 3, NULL, 1, err, sizeof err) == 0, "%s", err);
    cr_expect(gradcheck_layer(&l, 3, 1, 9, 0, &r) == 0, "%s", r.worst);
    l.ops->destroy(&l);
}
