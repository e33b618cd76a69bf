/* libFuzzer driver: uncompressed prometheus.WriteRequest (v1) decode and validation. */
#include "fuzz_rw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_rw_one(data, size, 1);
    return 0;
}
