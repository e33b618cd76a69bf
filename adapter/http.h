#ifndef ADAPTER_HTTP_H
#define ADAPTER_HTTP_H

/*
 * http: the adapter's HTTP listeners over libmicrohttpd.
 *
 * Each listener is its own MHD daemon with its own epoll thread pool, so an
 * ingest burst cannot starve the HPA's reads. Handlers run on MHD's pool
 * threads, which http registers as RCU readers lazily (ml_thread_online()).
 * A handler sees the whole request body at once: http accumulates it up to the
 * route's cap and answers 413 itself (on the first callback when
 * Content-Length already says so).
 *
 * Not thread-safe except where stated: routes are added before http_start().
 */

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct http_server;
struct MHD_Connection;

struct http_listener_config {
    const char *name;        /* "ingest", "secure": label in logs and metrics */
    const char *address;     /* "host:port", "[v6]:port"; port 0 picks a free port */
    unsigned threads;        /* pool size; 0 = number of CPUs */
    unsigned max_connections;
    unsigned timeout_s;      /* idle connection timeout */
    size_t default_body_cap; /* cap for routes that do not set one */
};

struct http_request {
    const char *method;
    const char *path;        /* percent-decoded by libmicrohttpd, no query string */
    const uint8_t *body;     /* NULL when empty */
    size_t body_len;
    int listener_is_loopback; /* the address bound is a loopback address */
    struct MHD_Connection *_conn; /* private */
};

/* A header value or NULL. Case-insensitive name. Safe in handlers only. */
const char *http_header(const struct http_request *req, const char *name);
/* A query argument (decoded) or NULL. Safe in handlers only. */
const char *http_query(const struct http_request *req, const char *key);

#define HTTP_MAX_EXTRA_HEADERS 8

struct http_response {
    int status;               /* default 200 */
    const char *content_type; /* static string; default "text/plain; charset=utf-8" */
    struct buf body;          /* empty by default; http frees it */
    unsigned nheaders;
    struct {
        char *name, *value;   /* owned by the response */
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
int http_route(struct http_server *srv, const char *pattern, int flags, size_t body_cap,
               http_handler_fn fn, void *ctx);

int http_server_new(const struct http_listener_config *cfg, struct http_server **out);
/* Bind and start the pool. Returns 0 or a negative errno (address in use...). */
int http_start(struct http_server *srv);
/* The bound port (useful with port 0). */
unsigned http_port(const struct http_server *srv);
/* Stop accepting, finish in-flight requests, join the pool, free. */
void http_server_free(struct http_server *srv);

#endif /* ADAPTER_HTTP_H */
