/*
 * libFuzzer driver: the whole front end, api_rw_decode(), as the ingest
 * handler calls it. The first input byte picks the content type (v1, v2, or
 * something unsupported); the rest is the HTTP body (snappy block format).
 * A small decoded-size cap makes the fuzzer hit it; on success the decoded
 * length must be within the cap and the arena must not have grown beyond a
 * bound derived from it.
 */
#include <snappy-c.h>

#include "fuzz_rw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const types[] = {
        API_RW_CONTENT_TYPE_V1,
        API_RW_CONTENT_TYPE_V2,
        "application/x-protobuf",
        "application/x-protobuf; proto=prometheus.ReadRequest",
    };
    if (size < 1)
        return 0;
    const char *ct = types[data[0] % 4];
    data++;
    size--;
    struct api_rw_limits lim = fuzz_limits();
    lim.max_decoded_bytes = 64 << 10;
    struct arena a;
    arena_init(&a, 0);
    struct api_rw_request r;
    int rc = api_rw_decode(data, size, ct, &lim, &a, &r);
    size_t ulen = 0;
    int have_len = size > 0 && snappy_uncompressed_length((const char *)data, size, &ulen) == SNAPPY_OK;
    if (rc == 0) {
        if (!have_len || ulen > lim.max_decoded_bytes)
            abort();
        volatile size_t sink = fuzz_walk(&r);
        (void)sink;
    }
    /* Over the cap: refused before the arena handed out anything. (The same
     * code also comes back when the unpack passes the arena budget.) */
    if (data[-1] % 4 != 3 && have_len && ulen > lim.max_decoded_bytes &&
        (rc != API_RW_EDECODED_SIZE || arena_used(&a) != 0))
        abort();
    if (data[-1] % 4 == 3 && rc != API_RW_EMEDIA_TYPE)
        abort();
    const char *msg;
    int status = api_rw_http_status(rc, &r, &msg);
    if (status != 204 && status != 400 && status != 415)
        abort();
    arena_free(&a);
    return 0;
}
