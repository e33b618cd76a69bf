#ifndef ADAPTER_INGEST_H
#define ADAPTER_INGEST_H

/*
 * ingest: POST /api/v1/write, the Prometheus remote-write receiver.
 *
 * One request: method (405 with Allow: POST otherwise), authentication on a
 * non-loopback listener (Authorization: Bearer <token from
 * --ingest-token-file>, compared in constant time; 401 otherwise), the body
 * cap (the route's: http answers 413), api_rw_decode() with the limits from
 * the flags and the adapter's clock, then every valid series into the store
 * and the metadata's metric types. Answers: 204 with an empty body; 400 with
 * a short text naming the first invalid series' problem and/or the limit
 * that refused new series, while everything valid is stored; the decoder's
 * statuses (415, 400) through api_rw_http_status(), the one place errors
 * become statuses. v2 answers always carry X-Prometheus-Remote-Write-
 * Samples-Written, -Histograms-Written and -Exemplars-Written.
 *
 * Counters (selfmetrics): metrics_adapter_remote_write_requests_total{code},
 * metrics_adapter_remote_write_received_bytes_total,
 * metrics_adapter_remote_write_series_total{result="stored|invalid|refused|
 * dropped_no_rule"}, metrics_adapter_remote_write_throttled_total (requests
 * that waited for pending reclaims, see ml_throttle()).
 *
 * Thread safety: the handler runs on any HTTP pool thread (registered RCU
 * readers); ingest_new/ingest_add_routes/ingest_free are called from main.
 */

#include "flags.h"
#include "http.h"
#include "store.h"

struct ingest;

/*
 * ingest_new - read the token file and prepare the decoder limits.
 * @cfg: the flags; read now, the drop-label list is borrowed for the
 *       ingest's lifetime.
 * @st: the store the handler writes to; outlives the ingest.
 *
 * Returns 0; -EINVAL when --listen-address is not a loopback address and no
 * --ingest-token-file was given (remote write would be open to anyone), or
 * when the token file is empty; a negative errno when it cannot be read.
 * Each failure is logged with the flag's name. *out is written only on success.
 */
int ingest_new(const struct ma_config *cfg, struct store *st, struct ingest **out);

/*
 * ingest_set_rules - the RCU-published rule-set pointer (serve_rules_ptr()):
 * when the set it points to came from --config, series no rule can use are
 * dropped and counted (metrics_adapter_remote_write_series_total{result=
 * "dropped_no_rule"}); the answer is still 204. Before http_start().
 */
struct rules_set;
void ingest_set_rules(struct ingest *ing, struct rules_set **rules);

/* Add POST /api/v1/write (body cap --max-body-bytes) to @srv. Before http_start(). */
int ingest_add_routes(struct ingest *ing, struct http_server *srv);

/* After the listeners are stopped. */
void ingest_free(struct ingest *ing);

/*
 * ingest_token_equal - constant-time comparison of a presented token with
 * the expected one: the time depends only on the expected token's length.
 * Exposed for tests.
 */
int ingest_token_equal(const char *given, size_t given_len, const char *want, size_t want_len);

/* Whether "host:port" / "[v6]:port" names a loopback host (127.0.0.0/8, ::1, localhost). */
int ingest_address_is_loopback(const char *address);

#endif /* ADAPTER_INGEST_H */
