/* The list of layer kinds. Adding a layer kind is its own file under runtime/layers/, which defines
 * `const LayerOps NAME_ops` (layer.h), and one line here: X(ENUM_SUFFIX, NAME). The order is LayerKind's. */
#ifndef BNNI_LAYERS_REGISTRY_H
#define BNNI_LAYERS_REGISTRY_H

#define LAYER_KINDS(X)       \
    X(CONV2D, conv2d)        \
    X(DENSE, dense)          \
    X(BATCHNORM, batchnorm)  \
    X(SIGMOID, sigmoid)      \
    X(RELU, relu)            \
    X(TANH, tanh)            \
    X(AVGPOOL, avgpool)      \
    X(MAXPOOL, maxpool)      \
    X(FLATTEN, flatten)      \
    X(DROPOUT, dropout)      \
    X(RESIDUAL, residual)

#endif
