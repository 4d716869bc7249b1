/* The names of a data set's classes, for predictions a person reads (bnni predict's CSV, the C library, the
 * metadata of exports and the network description in checkpoints). */
#ifndef BNNI_DATA_CLASSES_H
#define BNNI_DATA_CLASSES_H

#include <stddef.h>

/* The name of class k of data set `kind` ("fashion_mnist": "T-shirt/top", ...), or its number as text when the
 * data set has no names (mnist: "0" to "9"). Returns buf or a static string. */
const char *data_class_name(const char *kind, int k, char *buf, size_t len);

#endif
