/* The fuzz targets, one function per input format. libFuzzer calls them through main_<name>.c (clang, `make fuzz`);
 * tests/test_fuzz_corpus.c replays every corpus file through them in the normal suite (gcc). Each returns 0 when
 * the input was handled, accepted or refused; anything else (a crash, a sanitizer report, a leak) is the bug. */
#ifndef BNNI_FUZZ_TARGETS_H
#define BNNI_FUZZ_TARGETS_H

#include <stddef.h>
#include <stdint.h>

/* Arbitrary bytes as a .bnn file: lexer, parser, block expansion, shape inference, the summary. */
int fuzz_bnn(const uint8_t *data, size_t size);

/* data[0] picks the mode (gzip-wrapped or raw, images or labels, item limit, the PGM-or-IDX entry point);
 * the rest is the file. */
int fuzz_idx(const uint8_t *data, size_t size);

/* data[0] even: the rest is a recipe of mutations applied to a valid checkpoint of a small model (bit 1: with the
 * data attributes of docs/checkpoint.md), written
 * with the HDF5 API; odd: the rest is the file's raw bytes. A checkpoint that loads is then fitted to the
 * model in its model_source, as `bnni eval` and `train --resume` do. */
int fuzz_ckpt(const uint8_t *data, size_t size);

/* The data readers through their kinds (runtime/data/kind.h): the probe the checker runs, then each split loaded
 * in memory and, for HDF5, streamed (which must read back the same items). */
/* data[0]: bit 0 set, the rest is the file's raw bytes; clear, a recipe of mutations of a small valid data file
 * (train/ and test/ x and y, the classes attribute); bit 1: layout nhwc. */
int fuzz_h5data(const uint8_t *data, size_t size);
/* data[0]: bit 0 a header row, bit 1 the label column by number (bits 2-3 pick it); the rest is the CSV file. */
int fuzz_csv(const uint8_t *data, size_t size);
/* data[0] % 3: which file of a small valid CIFAR-10 directory the rest replaces (data_batch_3.bin, test_batch.bin,
 * batches.meta.txt). */
int fuzz_cifar(const uint8_t *data, size_t size);

#endif
