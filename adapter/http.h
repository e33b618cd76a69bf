#ifndef ADAPTER_HTTP_H
#define ADAPTER_HTTP_H

/*
 * http: the adapter's HTTP listeners over libmicrohttpd.
 *
 * Each listener is its own MHD daemon with its own thread pool, so an
 * ingest burst cannot starve the HPA's reads. Handlers run on MHD's pool
 * threads, which http registers as RCU readers lazily (ml_thread_online()).
 * A handler sees the whole request body at once: http accumulates it up to the
 * route's cap and answers 413 itself (on the first callback when
 * Content-Length already says so).
 *
 * Handlers run outside any RCU read-side critical section and must leave it
 * that way: http queues the response after the handler returns, and a read
 * section must never be held across a socket write (DESIGN 4a).
 *
 * Each listener exports metrics_adapter_http_requests_total{listener,code}
 * through selfmetrics.
 *
 * Not thread-safe except where stated: routes are added before http_start().
 */

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct http_server;
struct MHD_Connection;

struct http_listener_config {
    const char *name;    /* "ingest", "secure": label in logs and metrics */
    const char *address; /* "host:port", "[v6]:port"; port 0 picks a free port */
    unsigned threads;    /* pool size; 0 = number of CPUs */
    unsigned max_connections;
    unsigned timeout_s;      /* idle connection timeout */
    size_t default_body_cap; /* cap for routes that do not set one */
};

struct http_request {
    const char *method;
    const char *path;    /* percent-decoded by libmicrohttpd, no query string */
    const uint8_t *body; /* NULL when empty */
    size_t body_len;
    int listener_is_loopback;     /* the address bound is a loopback address */
    int authenticated;            /* the listener's guard verified the client (see http_set_guard) */
    struct MHD_Connection *_conn; /* private */
};

/* A header value or NULL. Case-insensitive name. Safe in handlers only. */
const char *http_header(const struct http_request *req, const char *name);
/* A query argument (decoded) or NULL. Safe in handlers only. */
const char *http_query(const struct http_request *req, const char *key);

/* Call @fn for every request header, in order, repeated ones included; stops
 * when @fn returns non-zero. Safe in handlers and guards only. */
typedef int (*http_header_fn)(void *ctx, const char *name, const char *value);
void http_header_each(const struct http_request *req, http_header_fn fn, void *ctx);

/* The connection's gnutls_session_t, or NULL on a plain listener. */
void *http_tls_session(const struct http_request *req);

#define HTTP_MAX_EXTRA_HEADERS 8

struct http_response {
    int status;               /* default 200 */
    const char *content_type; /* static string; default "text/plain; charset=utf-8" */
    struct buf body;          /* empty by default; http frees it */
    unsigned nheaders;
    struct {
        char *name, *value; /* owned by the response */
    } headers[HTTP_MAX_EXTRA_HEADERS];
};

/* Add a response header (copied). Silently ignored beyond the limit. */
void http_resp_header(struct http_response *resp, const char *name, const char *value);

typedef void (*http_handler_fn)(void *ctx, const struct http_request *req, struct http_response *resp);

enum {
    HTTP_ROUTE_EXACT = 0,  /* path must equal the pattern */
    HTTP_ROUTE_PREFIX = 1, /* path starts with the pattern */
};

/*
 * http_route - add a route to a listener. Routes are tried in the order
 * added; the first match wins; no match is a 404 with a plain-text body.
 * @body_cap: largest body accepted (0 = the listener's default).
 */
int http_route(struct http_server *srv, const char *pattern, int flags, size_t body_cap, http_handler_fn fn,
               void *ctx);

/*
 * http_set_guard - a check run on every request of @srv before its handler,
 * once the headers are read (before any body is accepted). The guard returns
 * 0 to let the request through (it may set req->authenticated, which the
 * handler then sees), or non-zero after filling @resp (a 401 or 403), which
 * is sent instead. The guard runs on pool threads, outside RCU read sections,
 * and may block briefly (an authorization call with a timeout). Before
 * http_start().
 */
typedef int (*http_guard_fn)(void *ctx, struct http_request *req, struct http_response *resp);
void http_set_guard(struct http_server *srv, http_guard_fn fn, void *ctx);

/*
 * http_route_set_early - a check run for requests of the route added with
 * @pattern, once the headers are read and after the listener's guard, before
 * any body is read (req->body is NULL). It returns 0 to let the request
 * through, or non-zero after filling @resp, which is sent at once; the body
 * is then discarded by libmicrohttpd and the connection closed. For refusals
 * that must not cost a body's memory (the memory valve's 503). Same context
 * rules as a guard. Before http_start(). Returns 0 or -ENOENT (no such route).
 */
int http_route_set_early(struct http_server *srv, const char *pattern, http_guard_fn fn, void *ctx);

/*
 * http_set_tls - serve HTTPS with the credentials of @creds, taken per
 * handshake (tls_server_acquire()), so a reload applies to the next
 * handshake and never drops a connection; the reference is given back on the
 * connection's first request or when it closes.
 * @client_ca_pem: CA certificates named in the client-certificate request;
 * NULL asks for none. libmicrohttpd does not verify what the client sends:
 * guards do, with tls_verify_peer(). Copied. Before http_start().
 * Returns 0, or -ENOSPC when more TLS listeners exist than callback slots (4).
 */
struct tls_server;
int http_set_tls(struct http_server *srv, struct tls_server *creds, const char *client_ca_pem);

/*
 * http_server_new - a listener, not yet bound. @cfg is copied.
 * Returns 0, -EINVAL when cfg->address is not "host:port" / "[v6]:port" with a
 * numeric port below 65536 (or the host does not resolve), or -ENOMEM.
 */
int http_server_new(const struct http_listener_config *cfg, struct http_server **out);
/* Bind and start the pool. Returns 0 or a negative errno (address in use...). */
int http_start(struct http_server *srv);
/* The bound port (useful with port 0). */
unsigned http_port(const struct http_server *srv);
/* The bound address as "127.0.0.1:8080" or "[::1]:8080" (valid after http_start()). */
const char *http_bound_address(const struct http_server *srv);
/* Whether the bound address is loopback (127.0.0.0/8, ::1); valid after http_start(). */
int http_is_loopback(const struct http_server *srv);
/* The listener's name, as configured. */
const char *http_name(const struct http_server *srv);
/*
 * http_quiesce - graceful shutdown, first step: close the listening socket so
 * that no new connection is accepted; connections already open carry on.
 * Returns 0 (also for NULL or a listener never started) or -EIO.
 */
int http_quiesce(struct http_server *srv);
/* Requests whose headers were read and whose answer is not yet complete (0 for NULL). */
unsigned http_in_flight(const struct http_server *srv);
/* Stop accepting, finish in-flight requests, join the pool, free. */
void http_server_free(struct http_server *srv);

#endif /* ADAPTER_HTTP_H */
