/* libFuzzer's entry point for the bnn target (targets.h); built with clang by `make fuzz`. */
#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_bnn(data, size); }
