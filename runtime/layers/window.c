/* What avgpool and maxpool share beyond window.h's inline rules: their argument schema, the rules it cannot
 * state, and their shape rule. */
#include "window.h"

const ArgSpec pool_args[POOL_NARGS] = {
    [POOL_KERNEL] = ARG_INT("kernel", 1, 1, 1024, 0),
    [POOL_STRIDE] = {.key = "stride", .type = AT_INT, .lo = 1, .hi = 1024, .defdoc = "kernel"},
    [POOL_PADDING] = ARG_INT("padding", 0, 0, 1024, 0),
};

int pool_configure(LayerSpec *s, int *bad, char *err, size_t errlen)
{
    int k = spec_int(s, POOL_KERNEL), p = spec_int(s, POOL_PADDING);
    if (!(s->given & (1u << POOL_STRIDE)))
        s->arg[POOL_STRIDE].num = k;
    if (2 * p > k) {
        *bad = POOL_PADDING;
        snprintf(err, errlen, "padding %d is more than half the pooling window %d", p, k);
        return -1;
    }
    return 0;
}

int pool_out_shape(const char *layer, const LayerSpec *s, Shape in, Shape *out, long long *np, long long *nb,
                   char *err, size_t errlen)
{
    int oh, ow, k = spec_int(s, POOL_KERNEL), p = spec_int(s, POOL_PADDING);
    if (window_out(layer, "pooling window", in, k, spec_int(s, POOL_STRIDE), p, &oh, &ow, err, errlen) ||
        window_pad_half(layer, k, p, err, errlen))
        return -1;
    *out = (Shape){3, in.c, oh, ow};
    *np = *nb = 0;
    return 0;
}
