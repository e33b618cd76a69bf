#ifndef API_EXPO_H
#define API_EXPO_H

/*
 * expo: writers for the Prometheus text exposition format 0.0.4, and its
 * OpenMetrics 1.0 form and gzip encoding for /metrics.
 *
 *     # HELP metrics_adapter_map_live_entries Entries linked in maplib's tables.
 *     # TYPE metrics_adapter_map_live_entries gauge
 *     metrics_adapter_map_live_entries 42
 *     http_requests_total{listener="ingest",code="204"} 1027
 *
 * Values are written the way Prometheus's own clients write them: the
 * shortest decimal that reads back as the same double, and +Inf, -Inf, NaN.
 * Label values are escaped (backslash, double quote, newline); HELP text
 * escapes backslash and newline. Names are not checked: callers pass
 * constant, valid metric and label names.
 *
 * Thread safety: the functions keep no state; a buf is the caller's.
 */

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define EXPO_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* "# HELP name help\n# TYPE name type\n". @type: "counter", "gauge", "untyped"... */
void expo_header(struct buf *b, const char *name, const char *type, const char *help);

/* A double the Prometheus way: shortest round-trip form, +Inf, -Inf, NaN. */
void expo_double(struct buf *b, double v);

/* A label value, escaped, without the surrounding quotes. */
void expo_label_value(struct buf *b, const char *v);

/*
 * expo_sample - one sample line.
 * @labels: NULL, or a NULL-terminated array of alternating names and values
 *          { "listener", "ingest", "code", "204", NULL }; values are escaped.
 */
void expo_sample(struct buf *b, const char *name, const char *const *labels, double v);
/* The same with an exact integer value (counters beyond 2^53 stay exact). */
void expo_sample_u64(struct buf *b, const char *name, const char *const *labels, uint64_t v);

/*
 * expo_sample_raw - one sample line with labels already formatted (the text
 * between the braces, e.g. `reason="duplicate"`, NULL or "" for none).
 * For static label sets written once in the source.
 */
void expo_sample_raw(struct buf *b, const char *name, const char *labels, uint64_t v);

/* OpenMetrics 1.0 (chosen by the Accept header, expo_negotiate()). */
#define EXPO_OM_CONTENT_TYPE "application/openmetrics-text; version=1.0.0; charset=utf-8"

enum expo_format {
    EXPO_TEXT = 0,        /* text/plain; version=0.0.4 */
    EXPO_OPENMETRICS = 1, /* application/openmetrics-text; version=1.0.0 */
};

/*
 * expo_negotiate - the format to answer with, from an Accept header (NULL:
 * text). OpenMetrics is chosen when application/openmetrics-text with
 * version=1.0.0 (or no version) has a q above 0 and at least the q of any
 * explicit text/plain entry; wildcards (* / *, text/ *) select text. What
 * Prometheus 2.42 sends
 *   application/openmetrics-text;version=1.0.0,application/openmetrics-text;
 *   version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,* / *;q=0.1
 * gives OpenMetrics.
 */
enum expo_format expo_negotiate(const char *accept);

/* Whether an Accept-Encoding header accepts gzip (q above 0). NULL: no. */
int expo_accepts_gzip(const char *accept_encoding);

/*
 * expo_to_openmetrics - rewrite a text 0.0.4 exposition (as the writers
 * above make it: HELP before TYPE, families not interleaved) as OpenMetrics
 * 1.0 into @out: counter families lose the _total suffix in HELP and TYPE
 * (samples keep it), HELP escapes double quotes too, and "# EOF" ends it.
 * A counter whose name does not end in _total is written as "unknown", which
 * OpenMetrics allows for any sample name.
 */
void expo_to_openmetrics(const char *text, size_t len, struct buf *out);

/*
 * expo_gzip - gzip (RFC 1952) @len bytes of @in into @out (zlib, default
 * level). Returns 0, or -ENOMEM / -EIO when zlib fails (out is then reset).
 */
int expo_gzip(const void *in, size_t len, struct buf *out);

#endif /* API_EXPO_H */
