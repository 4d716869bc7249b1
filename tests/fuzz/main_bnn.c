/* libFuzzer's entry point for the bnn target (targets.h); built with clang by `make fuzz`. */
#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libFuzzer reserves return values other than 0 and -1: what became of the input is the replay's business. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_bnn(data, size);
    return 0;
}
