/* The fuzz targets, one function per input format. libFuzzer calls them through main_<name>.c (clang, `make fuzz`);
 * tests/test_fuzz_corpus.c replays every corpus file through them in the normal suite (gcc). Each checks its
 * invariants on every input (below) and aborts when one breaks, which libFuzzer reports as a crash and the replay
 * as a failed test; a sanitizer report or a leak is a bug too. Each returns what became of the input (FUZZ_*), for
 * the replay to check the committed seeds; libFuzzer's entry points return 0 whatever it was. */
#ifndef BNNI_FUZZ_TARGETS_H
#define BNNI_FUZZ_TARGETS_H

#include <stddef.h>
#include <stdint.h>

/* What a target did with an input. */
enum { FUZZ_REFUSED = 0, FUZZ_ACCEPTED = 1, FUZZ_FITTED = 2 };

/* Arbitrary bytes as a .bnn file: lexer, parser, block expansion, shape inference, the summary. Accepted: the
 * model's source is the input, every layer takes its predecessor's output shape (a residual's body maps its
 * shape back to itself), the layers add up to the model's totals of layers, parameters and buffers, `bnni
 * check`'s summary rows add up to its totals line, and checking the model's source again prints the same summary
 * byte for byte. Refused: at least one "error: ", and the same diagnostics again. Returns ACCEPTED or REFUSED. */
int fuzz_bnn(const uint8_t *data, size_t size);

/* data[0] picks the mode (gzip-wrapped or raw, images or labels, item limit, the PGM-or-IDX entry point);
 * the rest is the file. Accepted: 1 <= count <= total, every kept byte readable; refused: a reason. Returns
 * ACCEPTED or REFUSED. */
int fuzz_idx(const uint8_t *data, size_t size);

/* data[0] even: the rest is a recipe of mutations applied to a valid checkpoint of a small model (bit 1: with the
 * data attributes of docs/checkpoint.md), written with the HDF5 API; odd: the rest is the file's raw bytes. A checkpoint that loads must hold what ckpt_read
 * promises (tensor sizes, train state and order in range) and survive ckpt_write and ckpt_read unchanged; it is
 * then fitted to the model in its model_source, as `bnni eval` and `train --resume` do. Returns REFUSED (by
 * ckpt_read, with a reason), ACCEPTED (read, but it does not fit its model) or FITTED (parameters and optimizer
 * state applied). */
int fuzz_ckpt(const uint8_t *data, size_t size);

/* The data readers through their kinds (runtime/data/kind.h): the probe the checker runs, then each split loaded
 * in memory and, for HDF5, streamed (which must read back the same items). Each returns ACCEPTED when the probe
 * and every split loaded, REFUSED (with a reason) otherwise. */
/* data[0]: bit 0 set, the rest is the file's raw bytes; clear, a recipe of mutations of a small valid data file
 * (train/ and test/ x and y, the classes attribute); bit 1: layout nhwc. */
int fuzz_h5data(const uint8_t *data, size_t size);
/* data[0]: bit 0 a header row, bit 1 the label column by number (bits 2-3 pick it); the rest is the CSV file. */
int fuzz_csv(const uint8_t *data, size_t size);
/* data[0] % 3: which file of a small valid CIFAR-10 directory the rest replaces (data_batch_3.bin, test_batch.bin,
 * batches.meta.txt). */
int fuzz_cifar(const uint8_t *data, size_t size);

#endif
