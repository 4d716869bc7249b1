/* Test support for the data kinds: data files with known content written by the tests themselves -- HDF5 through
 * /usr/bin/python3 and h5py/numpy, PNG and JPEG through libpng and libjpeg -- and DataSpecs built without the
 * language (each argument at its schema's default until set). */
#ifndef BNNI_TESTS_DATAGEN_H
#define BNNI_TESTS_DATAGEN_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/data/kind.h"

/* Runs a Python program (numpy as np, h5py and os imported; the working directory is dir); fails the test when it
 * fails. */
void datagen_python(const char *dir, const char *code);

/* Writes an 8-bit PNG of w x h pixels of c channels (1 gray, 3 RGB, 4 RGBA), px interleaved row by row. */
void datagen_png(const char *path, int w, int h, int c, const uint8_t *px);
/* Writes a baseline JPEG (c 1 or 3) at the given quality, without chroma subsampling. */
void datagen_jpeg(const char *path, int w, int h, int c, const uint8_t *px, int quality);

/* A DataSpec of kind `kind` with every argument at its default (free with data_spec_clear); data_arg_set sets one
 * (str for strings and shapes, else num) and marks it written. */
void datagen_spec(DataSpec *ds, int kind);
void datagen_set(DataSpec *ds, const char *key, const char *str, double num);

/* Probes and loads a split with the kind's functions (limit 0: all); fails the test on an error. */
void datagen_load(DataSpec *ds, DataSplit split, long long limit, int stream, Dataset *d);
/* Probes, then loads the training split; returns the error ("" when both succeed). */
const char *datagen_error(DataSpec *ds, int stream);

#endif
