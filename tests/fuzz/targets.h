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

/* data[0] even: the rest is a recipe of mutations applied to a valid checkpoint of a small model, written
 * with the HDF5 API; odd: the rest is the file's raw bytes. A checkpoint that loads is then fitted to the
 * model in its model_source, as `bnni eval` and `train --resume` do. */
int fuzz_ckpt(const uint8_t *data, size_t size);

#endif
