/*
 * Unit tests of api/remote_write and api/arena on hand-built payloads: every
 * rejection path with its HTTP status, v1 and v2 round trips, drop-labels,
 * stale-marker bits, and the caps (the decoded-size cap before allocation).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <snappy-c.h>

#include "arena.h"
#include "buf.h"
#include "remote_write.h"
#include "remote_write_v1.pb-c.h"
#include "remote_write_v2.pb-c.h"

static int failures;

#define CHECK_INT(a, b)                                                                                      \
    do {                                                                                                     \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                                \
        if (va_ != vb_) {                                                                                    \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b, va_, vb_); \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

#define CHECK_STR(a, b)                                                                                      \
    do {                                                                                                     \
        const char *sa_ = (a), *sb_ = (b);                                                                   \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                                         \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a, #b,        \
                    sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");                                             \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

#define L(n, v)                                                                                              \
    {                                                                                                        \
        n, v, sizeof(n) - 1, sizeof(v) - 1                                                                   \
    }

static const int64_t NOW = 1700000000000LL;

static struct api_rw_limits limits(void)
{
    struct api_rw_limits lim = {
        .max_decoded_bytes = 1 << 20,
        .max_labels = 8,
        .max_label_name_len = 32,
        .max_label_value_len = 64,
        .max_series_per_request = 100,
        .max_future_ms = 5 * 60 * 1000,
        .now_ms = NOW,
    };
    return lim;
}

static int status_of(int err, const struct api_rw_request *req)
{
    const char *msg = NULL;
    int st = api_rw_http_status(err, req, &msg);
    if (!msg) {
        fprintf(stderr, "api_rw_http_status(%d) left msg NULL\n", err);
        failures++;
    }
    return st;
}

/* Encode one request (v1 or v2) and decode it back with the given limits. */
static int roundtrip(int version, const struct api_rw_request *in, const struct api_rw_limits *lim,
                     struct arena *a, struct api_rw_request *out)
{
    struct buf b = BUF_INIT;
    int rc = version == 2 ? api_rw_encode_v2(in, &b) : api_rw_encode_v1(in, &b);
    CHECK_INT(rc, 0);
    rc = api_rw_decode(b.data, b.len, version == 2 ? API_RW_CONTENT_TYPE_V2 : API_RW_CONTENT_TYPE_V1, lim, a,
                       out);
    buf_free(&b);
    return rc;
}

/* One series with the given labels and a single sample at NOW. */
static struct api_rw_request one_series(const struct api_rw_label *labels, size_t n, struct api_rw_series *s,
                                        struct api_rw_sample *smp)
{
    smp->value = 1.5;
    smp->timestamp_ms = NOW;
    memset(s, 0, sizeof *s);
    s->labels = labels;
    s->n_labels = n;
    s->samples = smp;
    s->n_samples = 1;
    struct api_rw_request r = {.series = s, .n_series = 1};
    return r;
}

static void test_content_types(void)
{
    CHECK_INT(api_rw_content_version("application/x-protobuf"), 1);
    CHECK_INT(api_rw_content_version("application/x-protobuf;proto=prometheus.WriteRequest"), 1);
    CHECK_INT(api_rw_content_version("Application/X-Protobuf ; proto = prometheus.WriteRequest"), 1);
    CHECK_INT(api_rw_content_version("application/x-protobuf;proto=io.prometheus.write.v2.Request"), 2);
    CHECK_INT(api_rw_content_version("application/x-protobuf; proto=\"io.prometheus.write.v2.Request\""), 2);
    CHECK_INT(
        api_rw_content_version("application/x-protobuf;charset=utf-8;proto=io.prometheus.write.v2.request"),
        2);
    CHECK_INT(api_rw_content_version("application/x-protobuf;"), 1);
    CHECK_INT(api_rw_content_version("application/x-protobuf;proto=prometheus.ReadRequest"),
              API_RW_EMEDIA_TYPE);
    CHECK_INT(api_rw_content_version("application/json"), API_RW_EMEDIA_TYPE);
    CHECK_INT(api_rw_content_version("application/x-protobufx"), API_RW_EMEDIA_TYPE);
    CHECK_INT(api_rw_content_version(""), API_RW_EMEDIA_TYPE);
    CHECK_INT(api_rw_content_version(NULL), API_RW_EMEDIA_TYPE);

    struct arena a;
    arena_init(&a, 0);
    struct api_rw_request out;
    int rc = api_rw_decode("x", 1, "text/plain", NULL, &a, &out);
    CHECK_INT(rc, API_RW_EMEDIA_TYPE);
    CHECK_INT(status_of(rc, NULL), 415);
    arena_free(&a);
}

static void test_roundtrip(int version)
{
    struct api_rw_label l0[] = {L("__name__", "http_requests_total"), L("job", "api"), L("pod", "api-0")};
    struct api_rw_label l1[] = {L("__name__", "queue_depth"), L("namespace", "prod")};
    struct api_rw_sample s0[] = {{1.0, NOW - 2000}, {2.5, NOW - 1000}};
    struct api_rw_sample s1[] = {{-3.25, NOW}};
    struct api_rw_series ser[2] = {
        {.labels = l0,
         .n_labels = 3,
         .samples = s0,
         .n_samples = 2,
         .n_exemplars = 1,
         .type = API_RW_TYPE_COUNTER},
        {.labels = l1,
         .n_labels = 2,
         .samples = s1,
         .n_samples = 1,
         .n_histograms = 2,
         .type = API_RW_TYPE_GAUGE},
    };
    struct api_rw_metadata md[] = {
        {"http_requests_total", 19, API_RW_TYPE_COUNTER, "Requests.", ""},
        {"queue_depth", 11, API_RW_TYPE_GAUGE, "", "items"},
    };
    struct api_rw_request in = {.series = ser, .n_series = 2, .metadata = md, .n_metadata = 2};
    struct api_rw_limits lim = limits();
    struct arena a;
    arena_init(&a, 4096);
    struct api_rw_request out;
    CHECK_INT(roundtrip(version, &in, &lim, &a, &out), 0);
    CHECK_INT(out.version, version);
    CHECK_INT(out.n_series, 2);
    CHECK_INT(out.n_invalid, 0);
    CHECK_INT(out.series[0].n_labels, 3);
    CHECK_STR(out.series[0].labels[2].name, "pod");
    CHECK_STR(out.series[0].labels[2].value, "api-0");
    CHECK_INT(out.series[0].labels[2].value_len, 5);
    CHECK_STR(out.series[0].name, "http_requests_total");
    CHECK_INT(out.series[0].name_len, 19);
    CHECK_INT(out.series[0].n_samples, 2);
    CHECK_INT(out.series[0].samples[1].timestamp_ms, NOW - 1000);
    CHECK_INT(out.series[0].samples[1].value == 2.5, 1);
    CHECK_INT(out.series[1].samples[0].value == -3.25, 1);
    CHECK_INT(out.series[0].reason, API_RW_SERIES_OK);
    CHECK_STR(out.series[0].reason_msg, "");
    CHECK_INT(out.counts.samples, 3);
    CHECK_INT(out.counts.samples_valid, 3);
    CHECK_INT(out.counts.exemplars, 1);
    CHECK_INT(out.counts.histograms, 2);
    CHECK_INT(out.series[1].n_histograms, 2);
    CHECK_INT(out.n_metadata, 2);
    CHECK_STR(out.metadata[0].family, "http_requests_total");
    CHECK_INT(out.metadata[0].type, API_RW_TYPE_COUNTER);
    CHECK_STR(out.metadata[0].help, "Requests.");
    CHECK_STR(out.metadata[1].family, "queue_depth");
    CHECK_INT(out.metadata[1].type, API_RW_TYPE_GAUGE);
    CHECK_STR(out.metadata[1].unit, "items");
    /* v2 carries the type on the series itself; v1 only in metadata[]. */
    CHECK_INT(out.series[0].type, version == 2 ? API_RW_TYPE_COUNTER : API_RW_TYPE_UNKNOWN);
    CHECK_INT(status_of(0, &out), 204);
    arena_free(&a);
}

static void test_empty_and_garbage(void)
{
    struct arena a;
    arena_init(&a, 0);
    struct api_rw_request out;
    struct api_rw_limits lim = limits();

    int rc = api_rw_decode("", 0, API_RW_CONTENT_TYPE_V1, &lim, &a, &out);
    CHECK_INT(rc, API_RW_EEMPTY);
    CHECK_INT(status_of(rc, NULL), 400);

    /* A length varint that never ends is not snappy. */
    const char bad[] = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff";
    rc = api_rw_decode(bad, sizeof bad - 1, API_RW_CONTENT_TYPE_V1, &lim, &a, &out);
    CHECK_INT(rc, API_RW_ESNAPPY);
    CHECK_INT(status_of(rc, NULL), 400);

    /* Length says 10, the stream carries 3 literal bytes: truncated. */
    const char trunc[] = "\x0a\x08"
                         "abc";
    rc = api_rw_decode(trunc, sizeof trunc - 1, API_RW_CONTENT_TYPE_V1, &lim, &a, &out);
    CHECK_INT(rc, API_RW_ESNAPPY);

    /* Valid snappy around bytes that are not a protobuf message (field 0, wire type 7). */
    const char junk[] = "\x07\x07\x07\x07\x07\x07\x07\x07";
    char comp[64];
    size_t clen = sizeof comp;
    CHECK_INT(snappy_compress(junk, 8, comp, &clen), SNAPPY_OK);
    rc = api_rw_decode(comp, clen, API_RW_CONTENT_TYPE_V1, &lim, &a, &out);
    CHECK_INT(rc, API_RW_EPROTOBUF);
    CHECK_INT(status_of(rc, NULL), 400);
    rc = api_rw_decode(comp, clen, API_RW_CONTENT_TYPE_V2, &lim, &a, &out);
    CHECK_INT(rc, API_RW_EPROTOBUF);

    /* Valid snappy of zero bytes: a non-empty body that holds nothing. */
    clen = sizeof comp;
    CHECK_INT(snappy_compress("", 0, comp, &clen), SNAPPY_OK);
    rc = api_rw_decode(comp, clen, API_RW_CONTENT_TYPE_V1, &lim, &a, &out);
    CHECK_INT(rc, API_RW_ENOTHING);
    CHECK_INT(status_of(rc, NULL), 400);
    arena_free(&a);
}

/* The claimed uncompressed length is checked before the arena hands out anything. */
static void test_decoded_cap(void)
{
    struct arena a;
    arena_init(&a, 0);
    struct api_rw_request out;
    struct api_rw_limits lim = limits();
    /* varint 1 GiB followed by a few literal bytes */
    const char huge[] = "\x80\x80\x80\x80\x04\x08"
                        "abc";
    int rc = api_rw_decode(huge, sizeof huge - 1, API_RW_CONTENT_TYPE_V1, &lim, &a, &out);
    CHECK_INT(rc, API_RW_EDECODED_SIZE);
    CHECK_INT(status_of(rc, NULL), 400);
    CHECK_INT(arena_used(&a), 0);

    /* A real body one byte over the cap, and exactly at it. */
    struct api_rw_label l[] = {L("__name__", "m"), L("job", "j")};
    struct api_rw_series s;
    struct api_rw_sample smp;
    struct api_rw_request in = one_series(l, 2, &s, &smp);
    struct buf raw = BUF_INIT, b = BUF_INIT;
    CHECK_INT(api_rw_encode(&in, 1, API_RW_ENC_RAW, &raw), 0);
    CHECK_INT(api_rw_encode_v1(&in, &b), 0);
    lim.max_decoded_bytes = raw.len - 1;
    CHECK_INT(api_rw_decode(b.data, b.len, API_RW_CONTENT_TYPE_V1, &lim, &a, &out), API_RW_EDECODED_SIZE);
    lim.max_decoded_bytes = raw.len;
    CHECK_INT(api_rw_decode(b.data, b.len, API_RW_CONTENT_TYPE_V1, &lim, &a, &out), 0);
    buf_free(&raw);
    buf_free(&b);
    arena_free(&a);
}

/* A v2 body with the v1 content type (and the other way round) decodes to nothing: 400. */
static void test_wrong_proto(void)
{
    struct api_rw_label l[] = {L("__name__", "m"), L("job", "j")};
    struct api_rw_series s;
    struct api_rw_sample smp;
    struct api_rw_request in = one_series(l, 2, &s, &smp);
    struct buf b1 = BUF_INIT, b2 = BUF_INIT;
    CHECK_INT(api_rw_encode_v1(&in, &b1), 0);
    CHECK_INT(api_rw_encode_v2(&in, &b2), 0);
    struct arena a;
    arena_init(&a, 0);
    struct api_rw_request out;
    int rc = api_rw_decode(b2.data, b2.len, "application/x-protobuf", NULL, &a, &out);
    CHECK_INT(rc, API_RW_ENOTHING);
    CHECK_INT(status_of(rc, NULL), 400);
    rc = api_rw_decode(b2.data, b2.len, API_RW_CONTENT_TYPE_V1, NULL, &a, &out);
    CHECK_INT(rc, API_RW_ENOTHING);
    rc = api_rw_decode(b1.data, b1.len, API_RW_CONTENT_TYPE_V2, NULL, &a, &out);
    CHECK_INT(rc, API_RW_ENOTHING);
    buf_free(&b1);
    buf_free(&b2);
    arena_free(&a);
}

static void test_metadata_only(void)
{
    struct api_rw_metadata md[] = {{"jobs_total", 10, API_RW_TYPE_COUNTER, "Jobs.", ""}};
    struct api_rw_request in = {.metadata = md, .n_metadata = 1};
    struct arena a;
    arena_init(&a, 0);
    struct api_rw_request out;
    struct api_rw_limits lim = limits();
    int rc = roundtrip(1, &in, &lim, &a, &out);
    CHECK_INT(rc, 0);
    CHECK_INT(status_of(rc, &out), 204);
    CHECK_INT(out.n_series, 0);
    CHECK_INT(out.n_metadata, 1);
    CHECK_STR(out.metadata[0].family, "jobs_total");
    CHECK_INT(out.metadata[0].type, API_RW_TYPE_COUNTER);
    CHECK_STR(api_rw_type_str(out.metadata[0].type), "counter");
    arena_free(&a);
}

/* One invalid series beside a valid one: the valid one still decodes, the answer is 400. */
static void expect_reason(int version, const struct api_rw_label *labels, size_t n, int64_t ts,
                          const struct api_rw_limits *lim, enum api_rw_series_reason want, int line)
{
    struct api_rw_label good[] = {L("__name__", "ok"), L("job", "j")};
    struct api_rw_sample sg = {1, NOW}, sb = {2, ts};
    struct api_rw_series ser[2] = {
        {.labels = good, .n_labels = 2, .samples = &sg, .n_samples = 1},
        {.labels = labels, .n_labels = n, .samples = &sb, .n_samples = 1},
    };
    struct api_rw_request in = {.series = ser, .n_series = 2};
    struct arena a;
    arena_init(&a, 0);
    struct api_rw_request out;
    int rc = roundtrip(version, &in, lim, &a, &out);
    if (rc != 0 || out.series[1].reason != want || out.series[0].reason != API_RW_SERIES_OK) {
        fprintf(stderr, "line %d (v%d): rc %d, reason %d (want %d), good series reason %d\n", line, version,
                rc, rc ? -1 : (int)out.series[1].reason, (int)want, rc ? -1 : (int)out.series[0].reason);
        failures++;
        arena_free(&a);
        return;
    }
    if (want != API_RW_SERIES_OK) {
        CHECK_INT(out.n_invalid, 1);
        CHECK_INT(out.first_invalid, 1);
        CHECK_INT(out.counts.samples, 2);
        CHECK_INT(out.counts.samples_valid, 1);
        const char *msg;
        CHECK_INT(api_rw_http_status(API_RW_EINVALID_SERIES, &out, &msg), 400);
        CHECK_STR(msg, api_rw_reason_str(want));
        CHECK_INT(strlen(msg) > 0, 1);
    } else {
        CHECK_INT(out.n_invalid, 0);
    }
    arena_free(&a);
}

static void test_series_reasons(int v)
{
    struct api_rw_limits lim = limits();
    struct api_rw_label nn[] = {L("job", "j")};
    expect_reason(v, nn, 1, NOW, &lim, API_RW_SERIES_MISSING_NAME, __LINE__);
    struct api_rw_label uns[] = {L("__name__", "m"), L("pod", "p"), L("job", "j")};
    expect_reason(v, uns, 3, NOW, &lim, API_RW_SERIES_UNSORTED, __LINE__);
    struct api_rw_label dup[] = {L("__name__", "m"), L("job", "a"), L("job", "b")};
    expect_reason(v, dup, 3, NOW, &lim, API_RW_SERIES_DUPLICATE_NAME, __LINE__);
    struct api_rw_label en[] = {L("", "x"), L("__name__", "m")};
    expect_reason(v, en, 2, NOW, &lim, API_RW_SERIES_EMPTY_NAME, __LINE__);
    struct api_rw_label ev[] = {L("__name__", "m"), L("job", "")};
    expect_reason(v, ev, 2, NOW, &lim, API_RW_SERIES_EMPTY_VALUE, __LINE__);
    struct api_rw_label in1[] = {L("1job", "j"), L("__name__", "m")};
    expect_reason(v, in1, 2, NOW, &lim, API_RW_SERIES_INVALID_NAME, __LINE__);
    struct api_rw_label in2[] = {L("__name__", "m"), L("job-name", "j")};
    expect_reason(v, in2, 2, NOW, &lim, API_RW_SERIES_INVALID_NAME, __LINE__);
    struct api_rw_label many[] = {L("__name__", "m"), L("a", "1"), L("b", "1"), L("c", "1"), L("d", "1"),
                                  L("e", "1"),        L("f", "1"), L("g", "1"), L("h", "1")};
    expect_reason(v, many, 9, NOW, &lim, API_RW_SERIES_TOO_MANY_LABELS, __LINE__);
    expect_reason(v, many, 8, NOW, &lim, API_RW_SERIES_OK, __LINE__); /* exactly max_labels */
    struct api_rw_label ln[] = {L("__name__", "m"), L("a234567890123456789012345678901234", "v")};
    expect_reason(v, ln, 2, NOW, &lim, API_RW_SERIES_NAME_TOO_LONG, __LINE__);
    struct api_rw_label lv[] = {
        L("__name__", "m"), L("a", "0123456789012345678901234567890123456789012345678901234567890123456789")};
    expect_reason(v, lv, 2, NOW, &lim, API_RW_SERIES_VALUE_TOO_LONG, __LINE__);
    struct api_rw_label ok[] = {L("__name__", "m"), L("job", "j")};
    expect_reason(v, ok, 2, NOW + lim.max_future_ms, &lim, API_RW_SERIES_OK, __LINE__);
    expect_reason(v, ok, 2, NOW + lim.max_future_ms + 1, &lim, API_RW_SERIES_FUTURE, __LINE__);
    struct api_rw_limits nofuture = lim;
    nofuture.max_future_ms = -1;
    expect_reason(v, ok, 2, INT64_MAX, &nofuture, API_RW_SERIES_OK, __LINE__);
}

/* Labels named in drop_labels go before the sortedness check; what remains keeps its order. */
static void test_drop_labels(int v)
{
    static const char *const drop[] = {"prometheus_replica", "__replica__"};
    struct api_rw_limits lim = limits();
    lim.drop_labels = drop;
    lim.n_drop_labels = 2;
    /* __replica__ after job would be unsorted; prometheus_replica sorts fine. */
    struct api_rw_label ra[] = {L("__name__", "m"), L("job", "j"), L("__replica__", "a"),
                                L("prometheus_replica", "r1")};
    struct api_rw_label rb[] = {L("__name__", "m"), L("job", "j"), L("prometheus_replica", "r2")};
    struct api_rw_sample sa = {1, NOW}, sb = {2, NOW + 1};
    struct api_rw_series ser[2] = {
        {.labels = ra, .n_labels = 4, .samples = &sa, .n_samples = 1},
        {.labels = rb, .n_labels = 3, .samples = &sb, .n_samples = 1},
    };
    struct api_rw_request in = {.series = ser, .n_series = 2};
    struct arena a;
    arena_init(&a, 0);
    struct api_rw_request out;
    CHECK_INT(roundtrip(v, &in, &lim, &a, &out), 0);
    CHECK_INT(out.n_invalid, 0);
    for (int i = 0; i < 2; i++) {
        CHECK_INT(out.series[i].n_labels, 2);
        CHECK_STR(out.series[i].labels[0].name, "__name__");
        CHECK_STR(out.series[i].labels[1].name, "job");
        CHECK_STR(out.series[i].labels[1].value, "j");
    }
    /* Without the drop list the first series is unsorted. */
    lim.n_drop_labels = 0;
    arena_reset(&a);
    CHECK_INT(roundtrip(v, &in, &lim, &a, &out), 0);
    CHECK_INT(out.series[0].reason, API_RW_SERIES_UNSORTED);
    CHECK_INT(out.series[1].reason, API_RW_SERIES_OK);
    CHECK_INT(out.series[1].n_labels, 3);
    arena_free(&a);
}

static void test_too_many_series(int v)
{
    struct api_rw_limits lim = limits();
    lim.max_series_per_request = 3;
    struct api_rw_label l[] = {L("__name__", "m"), L("job", "j")};
    struct api_rw_sample smp = {1, NOW};
    struct api_rw_series ser[4];
    for (int i = 0; i < 4; i++)
        ser[i] = (struct api_rw_series){.labels = l, .n_labels = 2, .samples = &smp, .n_samples = 1};
    struct api_rw_request in = {.series = ser, .n_series = 4};
    struct arena a;
    arena_init(&a, 0);
    struct api_rw_request out;
    int rc = roundtrip(v, &in, &lim, &a, &out);
    CHECK_INT(rc, API_RW_ETOO_MANY_SERIES);
    CHECK_INT(status_of(rc, NULL), 400);
    in.n_series = 3;
    CHECK_INT(roundtrip(v, &in, &lim, &a, &out), 0);
    CHECK_INT(out.n_series, 3);
    arena_free(&a);
}

static void test_stale_nan(int v)
{
    uint64_t other_bits = 0x7ff8000000000001ULL;
    double other;
    memcpy(&other, &other_bits, sizeof other);
    CHECK_INT(api_is_stale_nan(api_stale_nan()), 1);
    CHECK_INT(api_is_stale_nan(NAN), 0);
    CHECK_INT(api_is_stale_nan(other), 0);
    CHECK_INT(api_is_stale_nan(0.0), 0);
    CHECK_INT(api_is_stale_nan(INFINITY), 0);

    struct api_rw_label l[] = {L("__name__", "m"), L("job", "j")};
    struct api_rw_sample smp[] = {{api_stale_nan(), NOW}, {other, NOW + 1}, {NAN, NOW + 2}};
    struct api_rw_series s = {.labels = l, .n_labels = 2, .samples = smp, .n_samples = 3};
    struct api_rw_request in = {.series = &s, .n_series = 1};
    struct arena a;
    arena_init(&a, 0);
    struct api_rw_request out;
    CHECK_INT(roundtrip(v, &in, NULL, &a, &out), 0);
    CHECK_INT(out.series[0].n_samples, 3);
    CHECK_INT(api_is_stale_nan(out.series[0].samples[0].value), 1);
    CHECK_INT(api_is_stale_nan(out.series[0].samples[1].value), 0);
    CHECK_INT(isnan(out.series[0].samples[1].value), 1);
    uint64_t got;
    memcpy(&got, &out.series[0].samples[1].value, sizeof got);
    CHECK_INT(got == other_bits, 1);
    CHECK_INT(api_is_stale_nan(out.series[0].samples[2].value), 0);
    arena_free(&a);
}

/* Hand-built v2 messages: broken symbol tables and references. */
static int decode_v2_msg(Io__Prometheus__Write__V2__Request *rq, struct arena *a, struct api_rw_request *out)
{
    size_t n = io__prometheus__write__v2__request__get_packed_size(rq);
    uint8_t *raw = malloc(n + 1);
    io__prometheus__write__v2__request__pack(rq, raw);
    char comp[4096];
    size_t clen = sizeof comp;
    if (snappy_compress((char *)raw, n, comp, &clen) != SNAPPY_OK)
        abort();
    free(raw);
    struct api_rw_limits lim = limits();
    return api_rw_decode(comp, clen, API_RW_CONTENT_TYPE_V2, &lim, a, out);
}

static void test_v2_symbols(void)
{
    char *symbols[] = {"", "__name__", "m", "job", "j"};
    uint32_t good[] = {1, 2, 3, 4};
    uint32_t out_of_range[] = {1, 2, 3, 5};
    uint32_t odd[] = {1, 2, 3};
    Io__Prometheus__Write__V2__Sample smp = IO__PROMETHEUS__WRITE__V2__SAMPLE__INIT;
    smp.value = 1;
    smp.timestamp = NOW;
    Io__Prometheus__Write__V2__Sample *smps[] = {&smp};
    Io__Prometheus__Write__V2__TimeSeries ts[4];
    for (int i = 0; i < 4; i++) {
        io__prometheus__write__v2__time_series__init(&ts[i]);
        ts[i].n_samples = 1;
        ts[i].samples = smps;
        ts[i].n_labels_refs = 4;
        ts[i].labels_refs = good;
    }
    ts[1].labels_refs = out_of_range;
    ts[2].labels_refs = odd;
    ts[2].n_labels_refs = 3;
    /* metadata help_ref out of range */
    Io__Prometheus__Write__V2__Metadata md = IO__PROMETHEUS__WRITE__V2__METADATA__INIT;
    md.type = IO__PROMETHEUS__WRITE__V2__METADATA__METRIC_TYPE__METRIC_TYPE_GAUGE;
    md.help_ref = 99;
    ts[3].metadata = &md;
    Io__Prometheus__Write__V2__TimeSeries *tsp[] = {&ts[0], &ts[1], &ts[2], &ts[3]};
    Io__Prometheus__Write__V2__Request rq = IO__PROMETHEUS__WRITE__V2__REQUEST__INIT;
    rq.n_symbols = 5;
    rq.symbols = symbols;
    rq.n_timeseries = 4;
    rq.timeseries = tsp;

    struct arena a;
    arena_init(&a, 0);
    struct api_rw_request out;
    CHECK_INT(decode_v2_msg(&rq, &a, &out), 0);
    CHECK_INT(out.series[0].reason, API_RW_SERIES_OK);
    CHECK_INT(out.series[1].reason, API_RW_SERIES_BAD_SYMBOL_REF);
    CHECK_INT(out.series[2].reason, API_RW_SERIES_BAD_SYMBOL_REF);
    CHECK_INT(out.series[3].reason, API_RW_SERIES_BAD_SYMBOL_REF);
    CHECK_INT(out.n_invalid, 3);
    CHECK_INT(out.first_invalid, 1);
    CHECK_INT(out.counts.samples_valid, 1);
    CHECK_INT(out.counts.samples, 4);
    CHECK_INT(status_of(API_RW_EINVALID_SERIES, &out), 400);

    /* symbols[0] must be "" */
    char *bad0[] = {"__name__", "m", "job", "j"};
    uint32_t refs0[] = {0, 1, 2, 3};
    ts[0].labels_refs = refs0;
    rq.symbols = bad0;
    rq.n_symbols = 4;
    rq.n_timeseries = 1;
    int rc = decode_v2_msg(&rq, &a, &out);
    CHECK_INT(rc, API_RW_ESYMBOLS);
    CHECK_INT(status_of(rc, NULL), 400);
    /* series but no symbols at all */
    rq.n_symbols = 0;
    rc = decode_v2_msg(&rq, &a, &out);
    CHECK_INT(rc, API_RW_ESYMBOLS);
    arena_free(&a);
}

static void test_http_status_table(void)
{
    static const struct {
        int err, status;
    } t[] = {
        {API_RW_OK, 204},
        {API_RW_EMEDIA_TYPE, 415},
        {API_RW_EEMPTY, 400},
        {API_RW_EDECODED_SIZE, 400},
        {API_RW_ESNAPPY, 400},
        {API_RW_EPROTOBUF, 400},
        {API_RW_ENOTHING, 400},
        {API_RW_ETOO_MANY_SERIES, 400},
        {API_RW_ESYMBOLS, 400},
        {API_RW_EINVALID_SERIES, 400},
        {API_RW_EMETHOD, 405},
        {API_RW_EBODY_TOO_LARGE, 413},
        {API_RW_EUNAUTHORIZED, 401},
        {API_RW_ELIMIT, 400},
        {API_RW_EOVERLOADED, 503},
        {API_RW_EINTERNAL, 500},
        {-1000, 500},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const char *msg = NULL;
        int st = api_rw_http_status(t[i].err, NULL, &msg);
        if (st != t[i].status || !msg || (t[i].err != 0 && !*msg)) {
            fprintf(stderr, "http status of %d: %d \"%s\", want %d\n", t[i].err, st, msg ? msg : "(null)",
                    t[i].status);
            failures++;
        }
    }
    for (int r = 1; r < API_RW_SERIES_REASON_COUNT; r++)
        CHECK_INT(strlen(api_rw_reason_str(r)) > 0, 1);
}

static void test_arena(void)
{
    struct arena a;
    arena_init(&a, 256);
    for (int i = 0; i < 100; i++) {
        char *p = arena_alloc(&a, (size_t)i % 37);
        CHECK_INT((uintptr_t)p % 16, 0);
        memset(p, 0xab, (size_t)i % 37);
    }
    char *big = arena_alloc(&a, 100000); /* its own chunk */
    memset(big, 1, 100000);
    char *after = arena_alloc(&a, 8);
    CHECK_INT((uintptr_t)after % 16, 0);
    int *z = arena_calloc(&a, 10, sizeof(int));
    for (int i = 0; i < 10; i++)
        CHECK_INT(z[i], 0);
    CHECK_STR(arena_strndup(&a, "hello world", 5), "hello");
    CHECK_INT(arena_used(&a) >= 100000, 1);
    arena_reset(&a);
    CHECK_INT(arena_used(&a), 0);
    CHECK_INT(arena_alloc(&a, 0) != NULL, 1);
    /* protobuf-c through the arena allocator */
    void *p = a.pb.alloc(a.pb.allocator_data, 40);
    a.pb.free(a.pb.allocator_data, p);
    arena_free(&a);
}

/* The hand-written v1 path and protobuf-c agree, including where the fast path hands over. */
static void test_fast_vs_reference(void)
{
    struct api_rw_label l[] = {L("__name__", "m"), L("job", "j"), L("prometheus_replica", "a")};
    static struct api_rw_sample many[300];
    for (int i = 0; i < 300; i++)
        many[i] = (struct api_rw_sample){(double)i, NOW - 300 + i};
    static const char *const drop[] = {"prometheus_replica"};
    struct api_rw_limits lim = limits();
    lim.drop_labels = drop;
    lim.n_drop_labels = 1;
    /* 2 samples (fast), 300 samples (over the fast path's stack buffer), an exemplar (protobuf-c only) */
    size_t cases[][2] = {{2, 0}, {300, 0}, {2, 1}};
    for (size_t c = 0; c < 3; c++) {
        struct api_rw_series s = {.labels = l,
                                  .n_labels = 3,
                                  .samples = many,
                                  .n_samples = cases[c][0],
                                  .n_exemplars = cases[c][1]};
        struct api_rw_request in = {.series = &s, .n_series = 1};
        struct buf raw = BUF_INIT;
        CHECK_INT(api_rw_encode(&in, 1, API_RW_ENC_RAW, &raw), 0);
        struct arena a, b;
        arena_init(&a, 0);
        arena_init(&b, 0);
        struct api_rw_request x, y;
        CHECK_INT(api_rw_decode_pb(raw.data, raw.len, 1, &lim, &a, &x), 0);
        CHECK_INT(api_rw_decode_pb_reference(raw.data, raw.len, 1, &lim, &b, &y), 0);
        CHECK_INT(x.series[0].n_samples, cases[c][0]);
        CHECK_INT(y.series[0].n_samples, cases[c][0]);
        CHECK_INT(x.series[0].n_labels, 2);
        CHECK_INT(y.series[0].n_labels, 2);
        CHECK_INT(x.series[0].n_exemplars, cases[c][1]);
        CHECK_INT(x.series[0].samples[cases[c][0] - 1].timestamp_ms,
                  y.series[0].samples[cases[c][0] - 1].timestamp_ms);
        CHECK_INT(x.counts.samples_valid, y.counts.samples_valid);
        CHECK_STR(x.series[0].labels[1].value, y.series[0].labels[1].value);
        arena_free(&a);
        arena_free(&b);
        buf_free(&raw);
    }
}

/* Overlong tags and length prefixes (more than 5 bytes): protobuf-c refuses them, so both paths do.
 * The first case is what fuzz_rw_v1 found (also in its corpus: overlong-length-prefix). */
static void test_overlong_varints(void)
{
    static const uint8_t len9[] = {0x0a, 0x0c, 0x0a, 0x80, 0x80, 0x80, 0x80,
                                   0x80, 0x80, 0x80, 0x80, 0x00, 0x0a, 0x00}; /* label length 0 in 9 bytes */
    static const uint8_t len5[] = {0x0a, 0x08, 0x0a, 0x80, 0x80,
                                   0x80, 0x80, 0x00, 0x0a, 0x00};             /* 5 bytes: fine */
    static const uint8_t tag6[] = {0x8a, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00}; /* field 1 in 6 bytes */
    struct {
        const uint8_t *p;
        size_t n;
        int ok;
    } cases[] = {{len9, sizeof len9, 0}, {len5, sizeof len5, 1}, {tag6, sizeof tag6, 0}};
    struct api_rw_limits lim = limits();
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct arena a, b;
        arena_init(&a, 0);
        arena_init(&b, 0);
        struct api_rw_request x, y;
        int fast = api_rw_decode_pb(cases[c].p, cases[c].n, 1, &lim, &a, &x);
        int ref = api_rw_decode_pb_reference(cases[c].p, cases[c].n, 1, &lim, &b, &y);
        CHECK_INT(fast, ref);
        CHECK_INT(fast == 0, cases[c].ok);
        arena_free(&a);
        arena_free(&b);
    }
}

/* The series cap acts before per-series allocation: a body of 100,000 empty series costs nothing. */
static void test_series_cap_before_unpack(void)
{
    size_t n = 100000;
    uint8_t *raw = malloc(2 * n);
    for (size_t i = 0; i < n; i++) {
        raw[2 * i] = 0x0a; /* field 1 (timeseries), length-delimited */
        raw[2 * i + 1] = 0x00;
    }
    struct api_rw_limits lim = limits(); /* max 100 series */
    for (int ref = 0; ref < 2; ref++) {
        struct arena a;
        arena_init(&a, 0);
        struct api_rw_request out;
        int rc = ref ? api_rw_decode_pb_reference(raw, 2 * n, 1, &lim, &a, &out)
                     : api_rw_decode_pb(raw, 2 * n, 1, &lim, &a, &out);
        CHECK_INT(rc, API_RW_ETOO_MANY_SERIES);
        CHECK_INT(arena_used(&a), 0);
        arena_free(&a);
    }
    free(raw);
}

/* A crafted body of empty labels hits protobuf-c's arena budget: a 400, not gigabytes. */
static void test_unpack_budget(void)
{
    size_t nl = 600000, len = 2 * nl;
    /* one series (field 1) whose payload is nl empty labels (field 1, length 0) */
    uint8_t *raw = malloc(len + 8);
    size_t p = 0;
    raw[p++] = 0x0a;
    for (size_t v = len;; v >>= 7) { /* varint length */
        raw[p++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        if (v < 0x80)
            break;
    }
    for (size_t i = 0; i < nl; i++) {
        raw[p++] = 0x0a;
        raw[p++] = 0x00;
    }
    struct api_rw_limits lim = limits();
    struct arena a;
    arena_init(&a, 0);
    struct api_rw_request out;
    int rc = api_rw_decode_pb(raw, p, 1, &lim, &a, &out);
    CHECK_INT(rc, API_RW_EDECODED_SIZE);
    CHECK_INT(status_of(rc, NULL), 400);
    CHECK_INT(arena_used(&a) <= 24 * p + (1 << 20), 1);
    /* The budget is gone afterwards; a normal allocation works. */
    CHECK_INT(arena_try_alloc(&a, 64) != NULL, 1);
    arena_free(&a);

    /* A legitimate body through protobuf-c (an exemplar forces it) stays far below the budget. */
    struct api_rw_label l[] = {L("__name__", "m"), L("a", "b"), L("c", "d"), L("e", "f")};
    struct api_rw_sample smp = {1, NOW};
    struct api_rw_series s1 = {.labels = l, .n_labels = 4, .samples = &smp, .n_samples = 1, .n_exemplars = 1};
    struct api_rw_request in = {.series = &s1, .n_series = 1};
    struct buf b = BUF_INIT;
    CHECK_INT(api_rw_encode(&in, 1, API_RW_ENC_RAW, &b), 0);
    arena_init(&a, 0);
    CHECK_INT(api_rw_decode_pb(b.data, b.len, 1, &lim, &a, &out), 0);
    CHECK_INT(out.n_invalid, 0);
    arena_free(&a);
    buf_free(&b);
    free(raw);
}

int main(void)
{
    test_content_types();
    test_empty_and_garbage();
    test_decoded_cap();
    test_wrong_proto();
    test_metadata_only();
    test_v2_symbols();
    test_http_status_table();
    test_arena();
    test_fast_vs_reference();
    test_overlong_varints();
    test_series_cap_before_unpack();
    test_unpack_budget();
    for (int v = 1; v <= 2; v++) {
        test_roundtrip(v);
        test_series_reasons(v);
        test_drop_labels(v);
        test_too_many_series(v);
        test_stale_nan(v);
    }
    if (failures) {
        fprintf(stderr, "test_remote_write: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_remote_write: ok\n");
    return 0;
}
