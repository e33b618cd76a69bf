#ifndef API_EXPO_H
#define API_EXPO_H

/*
 * expo: writers for the Prometheus text exposition format 0.0.4.
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

#endif /* API_EXPO_H */
