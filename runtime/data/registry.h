/* The list of data kinds (the calls of the `data` statement). Adding a kind is its own file under runtime/data/,
 * which defines `const DataKindOps NAME_data` (kind.h), and one line here: X(ENUM_SUFFIX, NAME). The order is
 * DataKind's, and the order `bnni check` lists them in. */
#ifndef BNNI_DATA_REGISTRY_H
#define BNNI_DATA_REGISTRY_H

#define DATA_KINDS(X)                \
    X(FASHION_MNIST, fashion_mnist)  \
    X(MNIST, mnist)                  \
    X(IDX, idx)                      \
    X(HDF5, hdf5)                    \
    X(CSV, csv)                      \
    X(IMAGES, images)                \
    X(CIFAR10, cifar10)

#endif
