/* libFuzzer driver: uncompressed io.prometheus.write.v2.Request decode and validation. */
#include "fuzz_rw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_rw_one(data, size, 2);
    return 0;
}
