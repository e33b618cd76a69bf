/*
 * Shared body of the remote-write protobuf fuzz drivers: decode the input as
 * an uncompressed v1 or v2 message with tight limits, walk every pointer the
 * decoder produced, and check that re-encoding the neutral representation and
 * decoding it again gives the same verdicts (same series count, same invalid
 * count, same written-samples count). For v1 the hand-written fast path and
 * protobuf-c (api_rw_decode_pb_reference) must also agree on every field.
 */
#ifndef FUZZ_RW_H
#define FUZZ_RW_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "buf.h"
#include "remote_write.h"

static const char *const fuzz_drop[] = {"prometheus_replica", "__replica__"};

static inline struct api_rw_limits fuzz_limits(void)
{
    struct api_rw_limits lim = {
        .max_decoded_bytes = 1 << 20,
        .max_labels = 16,
        .max_label_name_len = 64,
        .max_label_value_len = 256,
        .max_series_per_request = 1000,
        .max_future_ms = 300000,
        .now_ms = 1700000000000LL,
        .drop_labels = fuzz_drop,
        .n_drop_labels = 2,
    };
    return lim;
}

/* Touch every byte the decoder points at, so ASan sees a bad pointer at once. */
static inline size_t fuzz_walk(const struct api_rw_request *r)
{
    size_t sum = 0;
    for (size_t i = 0; i < r->n_series; i++) {
        const struct api_rw_series *s = &r->series[i];
        for (size_t j = 0; j < s->n_labels; j++) {
            sum += strlen(s->labels[j].name) + s->labels[j].name_len;
            sum += strlen(s->labels[j].value) + s->labels[j].value_len;
        }
        for (size_t j = 0; j < s->n_samples; j++)
            sum += (size_t)s->samples[j].timestamp_ms + (size_t)api_is_stale_nan(s->samples[j].value);
        sum += strlen(s->reason_msg) + strlen(api_rw_reason_str(s->reason));
        if (s->name)
            sum += strlen(s->name);
    }
    for (size_t i = 0; i < r->n_metadata; i++)
        sum += strlen(r->metadata[i].family) + strlen(r->metadata[i].help) + strlen(r->metadata[i].unit) +
               strlen(api_rw_type_str(r->metadata[i].type));
    return sum;
}

/* The fast v1 path must agree with protobuf-c (the reference) on everything it returns. */
static inline void fuzz_same(const struct api_rw_request *x, const struct api_rw_request *y)
{
    int same = x->version == y->version && x->n_series == y->n_series && x->n_metadata == y->n_metadata &&
               x->n_invalid == y->n_invalid && (x->n_invalid == 0 || x->first_invalid == y->first_invalid) &&
               memcmp(&x->counts, &y->counts, sizeof x->counts) == 0;
    for (size_t i = 0; same && i < x->n_series; i++) {
        const struct api_rw_series *a = &x->series[i], *b = &y->series[i];
        same = a->n_labels == b->n_labels && a->n_samples == b->n_samples && a->reason == b->reason &&
               a->type == b->type && a->n_histograms == b->n_histograms && a->n_exemplars == b->n_exemplars &&
               a->name_len == b->name_len && (!a->name) == (!b->name) &&
               (!a->name || memcmp(a->name, b->name, a->name_len) == 0);
        for (size_t j = 0; same && j < a->n_labels; j++)
            same = a->labels[j].name_len == b->labels[j].name_len &&
                   a->labels[j].value_len == b->labels[j].value_len &&
                   strcmp(a->labels[j].name, b->labels[j].name) == 0 &&
                   strcmp(a->labels[j].value, b->labels[j].value) == 0;
        for (size_t j = 0; same && j < a->n_samples; j++)
            same = memcmp(&a->samples[j], &b->samples[j], sizeof a->samples[j]) == 0;
    }
    for (size_t i = 0; same && i < x->n_metadata; i++) {
        const struct api_rw_metadata *a = &x->metadata[i], *b = &y->metadata[i];
        same = a->type == b->type && a->family_len == b->family_len && strcmp(a->family, b->family) == 0 &&
               strcmp(a->help, b->help) == 0 && strcmp(a->unit, b->unit) == 0;
    }
    if (!same) {
        fprintf(stderr, "fast v1 decoder and protobuf-c disagree\n");
        abort();
    }
}

static inline void fuzz_rw_one(const uint8_t *data, size_t size, int version)
{
    struct api_rw_limits lim = fuzz_limits();
    struct arena a;
    arena_init(&a, 0);
    struct api_rw_request r;
    int rc = api_rw_decode_pb(data, size, version, &lim, &a, &r);
    struct arena aref;
    arena_init(&aref, 0);
    struct api_rw_request ref;
    int rc_ref = api_rw_decode_pb_reference(data, size, version, &lim, &aref, &ref);
    if (rc != rc_ref) {
        fprintf(stderr, "decoders disagree: %d vs reference %d\n", rc, rc_ref);
        abort();
    }
    if (rc == 0)
        fuzz_same(&r, &ref);
    arena_free(&aref);
    const char *msg;
    int status = api_rw_http_status(rc ? rc : (r.n_invalid ? API_RW_EINVALID_SERIES : 0), &r, &msg);
    if (status != 204 && status != 400) {
        fprintf(stderr, "decode_pb gave %d -> %d\n", rc, status);
        abort();
    }
    if (rc == 0) {
        volatile size_t sink = fuzz_walk(&r);
        (void)sink;
        if (r.counts.samples_valid > r.counts.samples || r.n_invalid > r.n_series)
            abort();
        struct buf b = BUF_INIT;
        if (api_rw_encode(&r, version, API_RW_ENC_RAW, &b) != 0)
            abort();
        struct arena a2;
        arena_init(&a2, 0);
        struct api_rw_request r2;
        int rc2 = api_rw_decode_pb(b.data, b.len, version, &lim, &a2, &r2);
        if (rc2 != 0 || r2.n_series != r.n_series || r2.n_invalid != r.n_invalid ||
            r2.counts.samples_valid != r.counts.samples_valid) {
            fprintf(stderr,
                    "re-decode differs: rc %d, series %zu/%zu, invalid %zu/%zu, valid samples %zu/%zu\n", rc2,
                    r.n_series, rc2 ? 0 : r2.n_series, r.n_invalid, rc2 ? 0 : r2.n_invalid,
                    r.counts.samples_valid, rc2 ? 0 : r2.counts.samples_valid);
            abort();
        }
        arena_free(&a2);
        buf_free(&b);
    }
    arena_free(&a);
}

#endif /* FUZZ_RW_H */
