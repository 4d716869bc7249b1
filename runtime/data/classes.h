/* The names of a data set's classes, for predictions a person reads (bnni predict's CSV, the C library, the
 * metadata of exports and the network description in checkpoints). */
#ifndef BNNI_DATA_CLASSES_H
#define BNNI_DATA_CLASSES_H

#include <stddef.h>

#include "../spec.h"

/* The most classes a data set may have: the widest dense layer (docs/language.md), so no model could output more.
 * A whole-number label past it is refused before millions of class names are made for it. */
#define DATA_MAX_CLASSES 65536

/* The name of class k of the data d describes (d->class_names: from the data, a checkpoint's record or the
 * kind's own, such as Fashion-MNIST's "T-shirt/top"), or its number as text when the data names none (mnist: "0"
 * to "9"). Returns buf or a string d owns. */
const char *data_class_name(const DataSpec *d, int k, char *buf, size_t len);

#endif
