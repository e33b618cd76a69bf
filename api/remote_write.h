#ifndef API_REMOTE_WRITE_H
#define API_REMOTE_WRITE_H

/*
 * remote_write: decoding and validation of Prometheus remote-write bodies
 * (v1 prometheus.WriteRequest and v2 io.prometheus.write.v2.Request, snappy
 * block format), independent of the series store.
 *
 * api_rw_decode() turns a body into one neutral representation allocated in
 * a per-request arena: every series with its labels (sorted, HA replica
 * labels removed) and samples, a validity verdict per series, the metadata
 * the sender told (metric family name and type), and the counts v2 answers
 * with. Invalid series are flagged, not fatal: the caller stores the valid
 * ones and answers 400 naming the first invalid one. Whole-request problems
 * (bad content type, bad snappy, bad protobuf, too big, too many series,
 * nothing in a non-empty body) are a negative return code.
 *
 * Every error code of the ingest path, including the ones the store and the
 * HTTP handler produce (limits, memory valve, auth), is an enum api_rw_err
 * value, and api_rw_http_status() is the single place that maps them to an
 * HTTP status and a short message.
 *
 * Thread-safety: every function is safe to call from any thread on distinct
 * arenas and requests; nothing here has global mutable state.
 */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "arena.h"
#include "buf.h"

/* Errors: 0 is success, everything else is negative. */
enum api_rw_err {
    API_RW_OK = 0,
    /* decode: whole-request errors */
    API_RW_EMEDIA_TYPE = -1,      /* Content-Type not v1 or v2 remote write: 415 */
    API_RW_EEMPTY = -2,           /* empty body: 400 */
    API_RW_EDECODED_SIZE = -3,    /* snappy uncompressed length over max_decoded_bytes: 400 */
    API_RW_ESNAPPY = -4,          /* not valid snappy block format: 400 */
    API_RW_EPROTOBUF = -5,        /* protobuf unpack failed: 400 */
    API_RW_ENOTHING = -6,         /* non-empty v1 body decoded to no series and no metadata: 400 */
    API_RW_ETOO_MANY_SERIES = -7, /* more than max_series_per_request series: 400 */
    API_RW_ESYMBOLS = -8,         /* v2 symbol table invalid (symbols[0] must be ""): 400 */
    /* decode succeeded, some series invalid (req->n_invalid > 0): 400 */
    API_RW_EINVALID_SERIES = -9,
    /* produced by the ingest handler and the store, mapped here too */
    API_RW_EMETHOD = -20,         /* not POST: 405 */
    API_RW_EBODY_TOO_LARGE = -21, /* compressed body over its cap: 413 */
    API_RW_EUNAUTHORIZED = -22,   /* missing or wrong bearer token: 401 */
    API_RW_ELIMIT = -23,      /* new series refused by --max-series / per-metric limit / soft valve: 400 */
    API_RW_EOVERLOADED = -24, /* memory valve hard level: 503 with Retry-After */
    API_RW_EINTERNAL = -25,   /* real internal failure: 500 */
};

/* Why a series is invalid. API_RW_SERIES_OK (0) means valid. */
enum api_rw_series_reason {
    API_RW_SERIES_OK = 0,
    API_RW_SERIES_MISSING_NAME,    /* no __name__ label */
    API_RW_SERIES_UNSORTED,        /* label names not in ascending byte order */
    API_RW_SERIES_DUPLICATE_NAME,  /* one label name twice */
    API_RW_SERIES_EMPTY_NAME,      /* a label with an empty name */
    API_RW_SERIES_EMPTY_VALUE,     /* a label with an empty value */
    API_RW_SERIES_INVALID_NAME,    /* label name not [a-zA-Z_][a-zA-Z0-9_]* */
    API_RW_SERIES_TOO_MANY_LABELS, /* more than max_labels (after dropping) */
    API_RW_SERIES_NAME_TOO_LONG,   /* a label name longer than max_label_name_len */
    API_RW_SERIES_VALUE_TOO_LONG,  /* a label value longer than max_label_value_len */
    API_RW_SERIES_FUTURE,          /* a sample more than max_future_ms ahead of now_ms */
    API_RW_SERIES_BAD_SYMBOL_REF,  /* v2: a label reference outside the symbol table, or an odd count */
    API_RW_SERIES_REASON_COUNT
};

/* Metric types, numbered as in both protos (v1 MetricMetadata.MetricType, v2 Metadata.MetricType). */
enum api_rw_metric_type {
    API_RW_TYPE_UNKNOWN = 0,
    API_RW_TYPE_COUNTER = 1,
    API_RW_TYPE_GAUGE = 2,
    API_RW_TYPE_HISTOGRAM = 3,
    API_RW_TYPE_GAUGEHISTOGRAM = 4,
    API_RW_TYPE_SUMMARY = 5,
    API_RW_TYPE_INFO = 6,
    API_RW_TYPE_STATESET = 7,
};

struct api_rw_limits {
    size_t max_decoded_bytes;       /* snappy uncompressed length cap (0 = 32 MiB) */
    size_t max_labels;              /* per series, after dropping (0 = no limit) */
    size_t max_label_name_len;      /* bytes (0 = no limit) */
    size_t max_label_value_len;     /* bytes (0 = no limit) */
    size_t max_series_per_request;  /* whole request 400 above it (0 = no limit) */
    int64_t max_future_ms;          /* samples later than now_ms + this are invalid (< 0 = no check) */
    int64_t now_ms;                 /* the adapter's clock, Unix ms, taken by the caller */
    const char *const *drop_labels; /* label names removed before validation (HA replica labels) */
    size_t n_drop_labels;
};

#define API_RW_DEFAULT_MAX_DECODED_BYTES ((size_t)32 << 20)

/*
 * Strings point into the arena (or, for the encoder, wherever the caller put
 * them). Decoded strings are NUL-terminated as well as counted.
 */
struct api_rw_label {
    const char *name;
    const char *value;
    uint32_t name_len;
    uint32_t value_len;
};

struct api_rw_sample {
    double value;
    int64_t timestamp_ms;
};

struct api_rw_series {
    const struct api_rw_label *labels; /* sorted by name when valid; drop_labels removed */
    size_t n_labels;
    const struct api_rw_sample *samples; /* in the order sent */
    size_t n_samples;
    size_t n_histograms;              /* sent (not decoded into samples; not stored) */
    size_t n_exemplars;               /* sent (not stored) */
    enum api_rw_metric_type type;     /* v2 per-series metadata; v1: UNKNOWN (see metadata[]) */
    enum api_rw_series_reason reason; /* API_RW_SERIES_OK when valid */
    const char *reason_msg;           /* static text for the reason, "" when valid */
    const char *name;                 /* the __name__ value, NULL when missing */
    uint32_t name_len;
};

struct api_rw_metadata {
    const char *family; /* metric family name, NUL-terminated */
    uint32_t family_len;
    enum api_rw_metric_type type;
    const char *help; /* may be "" (v1 help=4 / v2 help_ref) */
    const char *unit; /* may be "" */
};

struct api_rw_counts {
    size_t samples;       /* samples sent, all series */
    size_t histograms;    /* histograms sent */
    size_t exemplars;     /* exemplars sent */
    size_t samples_valid; /* samples of valid series: X-Prometheus-Remote-Write-Samples-Written */
};

struct api_rw_request {
    int version;                  /* 1 or 2 */
    struct api_rw_series *series; /* n_series entries in the arena */
    size_t n_series;
    struct api_rw_metadata *metadata; /* v1 field 3; v2: one entry per series whose metadata has a type */
    size_t n_metadata;
    size_t n_invalid;     /* series with reason != OK */
    size_t first_invalid; /* index of the first invalid series (valid only when n_invalid > 0) */
    struct api_rw_counts counts;
};

/*
 * Content-type negotiation: 1 (v1), 2 (v2) or API_RW_EMEDIA_TYPE (also for
 * NULL). Case and spaces around ';' and '=' are ignored, quotes around the
 * proto value are accepted, other parameters (charset) are ignored.
 */
int api_rw_content_version(const char *content_type);

/*
 * api_rw_decode - decode and validate one remote-write body.
 * @body, @len: the HTTP body as received (snappy block format).
 * @content_type: the Content-Type header value (NULL: 415).
 * @lim: caps, clock and drop list; NULL uses the defaults (32 MiB, no other cap, no future check).
 * @a: the request's arena: the decoded body, the protobuf message and @out's arrays live there
 *     until arena_reset()/arena_free(). The decoder budgets protobuf-c's
 *     allocations in it (24 bytes per decoded byte + 1 MiB: real bodies need
 *     ~6) and leaves the arena without a budget (arena_set_limit(a, 0)).
 * @out: written only on success (return 0).
 *
 * Returns 0 (some series may still be invalid: out->n_invalid), or a
 * negative enum api_rw_err: API_RW_EMEDIA_TYPE, API_RW_EEMPTY,
 * API_RW_EDECODED_SIZE (checked before any allocation; also when the
 * unpacked message would pass the arena budget), API_RW_ESNAPPY,
 * API_RW_EPROTOBUF, API_RW_ENOTHING, API_RW_ETOO_MANY_SERIES, API_RW_ESYMBOLS.
 */
int api_rw_decode(const void *body, size_t len, const char *content_type, const struct api_rw_limits *lim,
                  struct arena *a, struct api_rw_request *out);

/*
 * api_rw_decode_pb - the same without snappy and content type: @pb is the
 * uncompressed protobuf of @version (1 or 2). Used by api_rw_decode and the
 * fuzz targets. The caller has already bounded len.
 */
int api_rw_decode_pb(const void *pb, size_t len, int version, const struct api_rw_limits *lim,
                     struct arena *a, struct api_rw_request *out);

/*
 * api_rw_decode_pb_reference - the same through protobuf-c only, without the
 * hand-written v1 fast path; the fuzz target compares both. Same contract.
 */
int api_rw_decode_pb_reference(const void *pb, size_t len, int version, const struct api_rw_limits *lim,
                               struct arena *a, struct api_rw_request *out);

/*
 * api_rw_http_status - the single translation of ingest errors to HTTP.
 * @err: 0 or an enum api_rw_err value.
 * @req: for API_RW_EINVALID_SERIES, the decoded request (names the first
 *       invalid series' reason); may be NULL.
 * @msg: set to a short static message (never NULL; "" for success).
 * Returns the status: 204 for 0, 400, 401, 405, 413, 415, 500 or 503.
 */
int api_rw_http_status(int err, const struct api_rw_request *req, const char **msg);

/* Static text for a series reason ("missing __name__", ...). */
const char *api_rw_reason_str(enum api_rw_series_reason r);

/* "counter", "gauge", ... (lower case, as the exposition format writes them); "unknown" otherwise. */
const char *api_rw_type_str(enum api_rw_metric_type t);

/* Prometheus's stale marker: exactly these bits. Every other NaN is a value. */
#define API_STALE_NAN_BITS 0x7ff0000000000002ULL

static inline int api_is_stale_nan(double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return bits == API_STALE_NAN_BITS;
}

static inline double api_stale_nan(void)
{
    uint64_t bits = API_STALE_NAN_BITS;
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/*
 * Encoders for tests, fuzz seeds and the load generator: build a request
 * from the neutral representation exactly as given (no validation, no
 * sorting: invalid payloads can be built on purpose). Series' n_histograms
 * and n_exemplars emit that many placeholder histograms/exemplars.
 * v1 puts req->metadata in field 3; v2 builds the symbol table and puts
 * series->type (and the matching metadata help/unit, if any) in each series'
 * metadata. The body is appended to @out.
 * Returns 0, or API_RW_EINTERNAL if snappy fails.
 */
int api_rw_encode_v1(const struct api_rw_request *req, struct buf *out);
int api_rw_encode_v2(const struct api_rw_request *req, struct buf *out);

/* The same without snappy: the raw protobuf (fuzz seeds). */
#define API_RW_ENC_RAW 1u
int api_rw_encode(const struct api_rw_request *req, int version, unsigned flags, struct buf *out);

/* Content types the encoders' bodies go with. */
#define API_RW_CONTENT_TYPE_V1 "application/x-protobuf;proto=prometheus.WriteRequest"
#define API_RW_CONTENT_TYPE_V2 "application/x-protobuf;proto=io.prometheus.write.v2.Request"

#endif /* API_REMOTE_WRITE_H */
