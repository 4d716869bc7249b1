/* The table of layer kinds, and the helpers every shape rule shares. */
#include <stdio.h>

#include "../layer.h"

extern const LayerOps conv2d_ops, dense_ops, batchnorm_ops, sigmoid_ops, relu_ops, tanh_ops, avgpool_ops,
    maxpool_ops, flatten_ops, dropout_ops, residual_ops;

const LayerOps *const layer_ops[LK_COUNT] = {
    [LK_CONV2D] = &conv2d_ops,   [LK_DENSE] = &dense_ops,     [LK_BATCHNORM] = &batchnorm_ops,
    [LK_SIGMOID] = &sigmoid_ops, [LK_RELU] = &relu_ops,       [LK_TANH] = &tanh_ops,
    [LK_AVGPOOL] = &avgpool_ops, [LK_MAXPOOL] = &maxpool_ops, [LK_FLATTEN] = &flatten_ops,
    [LK_DROPOUT] = &dropout_ops, [LK_RESIDUAL] = &residual_ops,
};

int layer_out_shape(const LayerSpec *s, Shape in, Shape *out, long long *nparams, long long *nbuffers,
                    char *err, size_t errlen)
{
    *nparams = *nbuffers = 0;
    return layer_ops[s->kind]->out_shape(s, in, out, nparams, nbuffers, err, errlen);
}

const char *shape_str(Shape s, char *buf, size_t len)
{
    if (s.rank == 3)
        snprintf(buf, len, "%dx%dx%d", s.c, s.h, s.w);
    else
        snprintf(buf, len, "%d", s.c);
    return buf;
}
