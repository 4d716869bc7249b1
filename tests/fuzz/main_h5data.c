/* libFuzzer's entry point for the h5data target (targets.h); built with clang by `make fuzz`. */
#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_h5data(data, size); }
