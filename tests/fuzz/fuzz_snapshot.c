/*
 * libFuzzer driver: the snapshot loader's checks and decode (snapshot_parse).
 *
 * Each input is tried twice: as is (the header checks: magic, checksums,
 * version, lengths) and with its length field and both CRC-32s made right,
 * so that mutations reach the payload decoder behind them instead of dying
 * at the checksum. A decoded snapshot's series must be in bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void one(const uint8_t *data, size_t size)
{
    struct api_rw_limits lim = {
        .max_labels = 64,
        .max_label_name_len = 1024,
        .max_label_value_len = 4096,
        .max_future_ms = -1,
    };
    struct arena a;
    arena_init(&a, 0);
    struct api_rw_request rq;
    char why[200];
    int rc = snapshot_parse(data, size, 1700000000000, 300000, &lim, &a, &rq, why, sizeof why);
    if (rc == 0) {
        for (size_t i = 0; i < rq.n_series; i++) {
            const struct api_rw_series *s = &rq.series[i];
            if (s->reason != API_RW_SERIES_OK)
                continue;
            for (size_t j = 0; j < s->n_labels; j++)
                if (!s->labels[j].name_len || !s->labels[j].value_len)
                    abort();
        }
    } else if (!why[0]) {
        abort(); /* every refusal names its reason */
    }
    arena_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(data, size);
    if (size < SNAPSHOT_HEADER_LEN || size > (1u << 20))
        return 0;
    uint8_t *fixed = malloc(size);
    if (!fixed)
        return 0;
    memcpy(fixed, data, size);
    memcpy(fixed, "MAsnap\r\n", 8);
    put_le(fixed + 16, size - SNAPSHOT_HEADER_LEN, 8);
    put_le(fixed + 32, crc32(0L, fixed + SNAPSHOT_HEADER_LEN, (uInt)(size - SNAPSHOT_HEADER_LEN)), 4);
    put_le(fixed + 36, crc32(0L, fixed, 36), 4);
    one(fixed, size);
    free(fixed);
    return 0;
}
