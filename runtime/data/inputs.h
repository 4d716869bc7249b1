/* What `bnni predict` classifies: images (PNG, JPEG, PGM, PPM; decoded and resized to the model's input as the
 * images data kind does), directories of them, HDF5 files with a dataset x, IDX image files, or one image on
 * standard input ("-") -- gathered into one unlabelled set, each item with the name it is printed under. */
#ifndef BNNI_DATA_INPUTS_H
#define BNNI_DATA_INPUTS_H

#include <stddef.h>

#include "dataset.h"

typedef struct InputSet {
    Dataset d;    /* the items, of the model's input shape and type; no labels */
    char **names; /* [d.count]: the file, or "FILE:INDEX" for an item of a file holding several; owned */
    int cap;
} InputSet;

/* Appends the items of one argument for a model whose input is `shape` of type dt (nhwc: an HDF5 x is stored
 * channels last). Returns 0, or -1 with "FILE: reason" in err. */
int inputs_add(InputSet *s, const char *arg, Shape shape, DataType dt, int nhwc, char *err, size_t errlen);
void inputs_free(InputSet *s);

#endif
