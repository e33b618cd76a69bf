/*
 * http: listeners over libmicrohttpd 0.9.75.
 *
 * DESIGN: one MHD daemon per listener, MHD_USE_INTERNAL_POLLING_THREAD |
 * MHD_USE_POLL with a thread pool; the connection limit is split by MHD
 * across the pool threads. Not MHD_USE_EPOLL: with epoll, 0.9.75's
 * MHD_quiesce_daemon() and a pool thread that is awake race to remove the
 * listening socket from the thread's epoll set, and the loser calls
 * MHD_PANIC (abort) on ENOENT or EBADF, so a SIGTERM while connections come
 * and go could end the process with SIGABRT instead of a drain. With poll the
 * pool threads only stop polling the socket. poll costs O(connections) per
 * wake-up, which the connection limits keep small.
 *
 * We create, bind and listen the socket ourselves and hand it to MHD
 * (MHD_OPTION_LISTEN_SOCKET): that gives start-up errors a real errno
 * (EADDRINUSE, EACCES) and tells us the bound address, from which the port
 * (port 0 picks a free one) and "loopback or not" are derived. The peer
 * address never decides anything.
 *
 * A request goes through MHD's access handler several times:
 *  1. first call (headers read): register the pool thread with RCU (lazily,
 *     ml_thread_online()), pick the route, and answer 404 or 413 right away
 *     when there is no route or Content-Length is over the route's cap. MHD
 *     then skips the body and closes the connection.
 *  2. body chunks: appended to a per-request buffer up to the cap. Past it the
 *     buffer is freed and the rest is read and discarded, and the answer is a
 *     413 (MHD cannot queue a response in the middle of a body); a client that
 *     keeps sending far beyond the cap is disconnected.
 *  3. last call: the handler runs with the whole body and fills a response,
 *     which is queued here, after the handler has returned, so no RCU read
 *     section is ever held while MHD writes to the socket.
 * MHD_OPTION_NOTIFY_COMPLETED frees the per-request state in every case
 * (completed, aborted, timed out).
 *
 * TLS listeners serve through MHD_OPTION_HTTPS_CERT_CALLBACK. GnuTLS's
 * callback carries no closure, so each TLS listener gets one of a few static
 * callback slots bound to its tls_server. The callback takes a reference on
 * the current credentials and records (session, credentials) in a small
 * table; the reference is dropped on the connection's first request (the
 * handshake is over by then) or when MHD reports the connection closed,
 * whichever comes first. A guard (http_set_guard) runs in step 1, after the
 * route is found, so an unauthenticated client never gets a body read.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>

#include <maplib/maplib.h>

#include "expo.h"
#include "log.h"
#include "selfmetrics.h"
#include "tls.h"
#include "xalloc.h"

/* A body this many times over its cap is not worth reading to the end. */
#define DISCARD_FACTOR 4

/*
 * Requests of one route (or of none: the listener's 404s), by status code,
 * and their latency from the first callback to the response being queued
 * (the handler's work and the body upload; not the socket write). Relaxed
 * atomics: each request adds to its own route's words, no lock.
 */
static const double lat_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
#define NLAT (sizeof(lat_bounds) / sizeof(lat_bounds[0]))
struct route_stats {
    _Atomic uint64_t by_code[500];  /* 100..599 */
    _Atomic uint64_t lat[NLAT + 1]; /* per bucket, not cumulative; last is +Inf */
    _Atomic uint64_t lat_sum_ns;
};

static struct route_stats *route_stats_new(void)
{
    struct route_stats *rs = calloc(1, sizeof(*rs));
    if (!rs) {
        fprintf(stderr, "fatal: out of memory\n");
        abort();
    }
    return rs;
}

static void route_stats_add(struct route_stats *rs, int status, double seconds)
{
    if (status >= 100 && status <= 599)
        atomic_fetch_add_explicit(&rs->by_code[status - 100], 1, memory_order_relaxed);
    unsigned i = 0;
    while (i < NLAT && seconds > lat_bounds[i])
        i++;
    atomic_fetch_add_explicit(&rs->lat[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&rs->lat_sum_ns, (uint64_t)(seconds > 0 ? seconds * 1e9 : 0),
                              memory_order_relaxed);
}

struct route {
    char *pattern;
    size_t plen;
    int flags;
    size_t body_cap;
    http_handler_fn fn;
    void *ctx;
    struct route_stats *stats; /* handler="<pattern>" in metrics */
    http_guard_fn early;       /* http_route_set_early(); NULL for none */
    void *early_ctx;
};

struct http_server {
    char *name;
    char *address;
    unsigned threads;
    unsigned max_connections;
    unsigned timeout_s;
    size_t default_body_cap;

    struct sockaddr_storage want; /* parsed from address */
    socklen_t wantlen;

    struct route *routes;
    size_t nroutes, caproutes;

    http_guard_fn guard;
    void *guard_ctx;
    struct tls_server *tls; /* NULL: plain HTTP */
    char *client_ca_pem;
    int tls_slot;

    struct MHD_Daemon *daemon;
    unsigned port;
    int loopback;
    struct http_server *next; /* on the servers list once started */
    char bound[INET6_ADDRSTRLEN + 16];

    /* Requests answered, by status code (100..599); relaxed counters. */
    _Atomic uint64_t by_code[500];
    struct route_stats *unrouted; /* requests no route matched: handler="none" */
    /* Requests begun (headers read) and not yet completed: graceful shutdown waits on it. */
    _Atomic int64_t in_flight;
};

struct req_state {
    const char *method, *url;  /* MHD's, valid until the request completes */
    double start;              /* monotonic seconds, for the access log */
    const struct route *route; /* NULL: no route */
    size_t cap;
    struct buf body;
    uint64_t discarded;
    int too_large;
    int responded;
    int authenticated; /* from the guard */
};

/*
 * "host:port", "[v6]:port", ":port" (all addresses). The port is required and
 * numeric; the host may be a name (resolved once, here).
 */
static int parse_address(const char *s, struct sockaddr_storage *ss, socklen_t *sslen)
{
    char host[256];
    const char *port;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - s - 1) >= sizeof(host))
            return -EINVAL;
        memcpy(host, s + 1, (size_t)(rb - s - 1));
        host[rb - s - 1] = '\0';
        port = rb + 2;
        if (!strchr(host, ':'))
            return -EINVAL; /* brackets are for IPv6 literals */
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof(host))
            return -EINVAL;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        if (strchr(host, ':'))
            return -EINVAL; /* an IPv6 literal needs brackets */
        port = colon + 1;
    }
    if (!*port || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port) || atoi(port) > 65535)
        return -EINVAL;

    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (getaddrinfo(host[0] ? host : NULL, port, &hints, &res) != 0 || !res)
        return -EINVAL;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int addr_is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return 1;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            return in6->sin6_addr.s6_addr[12] == 127;
    }
    return 0;
}

static void format_address(const struct sockaddr_storage *ss, char *out, size_t outlen, unsigned *port)
{
    char ip[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        *port = ntohs(in6->sin6_port);
        snprintf(out, outlen, "[%s]:%u", ip, *port);
    } else {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        *port = ntohs(in->sin_port);
        snprintf(out, outlen, "%s:%u", ip, *port);
    }
}

int http_server_new(const struct http_listener_config *cfg, struct http_server **out)
{
    struct http_server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return -ENOMEM;
    if (parse_address(cfg->address ? cfg->address : "", &srv->want, &srv->wantlen)) {
        free(srv);
        return -EINVAL;
    }
    srv->name = xstrdup(cfg->name ? cfg->name : "http");
    srv->address = xstrdup(cfg->address);
    srv->threads = cfg->threads;
    srv->max_connections = cfg->max_connections ? cfg->max_connections : 1024;
    srv->timeout_s = cfg->timeout_s;
    srv->default_body_cap = cfg->default_body_cap ? cfg->default_body_cap : 1 << 20;
    srv->unrouted = route_stats_new();
    *out = srv;
    return 0;
}

int http_route(struct http_server *srv, const char *pattern, int flags, size_t body_cap, http_handler_fn fn,
               void *ctx)
{
    if (srv->daemon)
        return -EBUSY;
    if (srv->nroutes == srv->caproutes) {
        size_t ncap = srv->caproutes ? srv->caproutes * 2 : 8;
        struct route *r = realloc(srv->routes, ncap * sizeof(*r));
        if (!r)
            return -ENOMEM;
        srv->routes = r;
        srv->caproutes = ncap;
    }
    struct route *r = &srv->routes[srv->nroutes++];
    r->pattern = xstrdup(pattern);
    r->plen = strlen(pattern);
    r->flags = flags;
    r->body_cap = body_cap ? body_cap : srv->default_body_cap;
    r->fn = fn;
    r->ctx = ctx;
    r->stats = route_stats_new();
    r->early = NULL;
    r->early_ctx = NULL;
    return 0;
}

int http_route_set_early(struct http_server *srv, const char *pattern, http_guard_fn fn, void *ctx)
{
    if (srv->daemon)
        return -EBUSY;
    for (size_t i = 0; i < srv->nroutes; i++) {
        if (strcmp(srv->routes[i].pattern, pattern) == 0) {
            srv->routes[i].early = fn;
            srv->routes[i].early_ctx = ctx;
            return 0;
        }
    }
    return -ENOENT;
}

static const struct route *find_route(const struct http_server *srv, const char *path)
{
    for (size_t i = 0; i < srv->nroutes; i++) {
        const struct route *r = &srv->routes[i];
        if (r->flags & HTTP_ROUTE_PREFIX) {
            if (strncmp(path, r->pattern, r->plen) == 0)
                return r;
        } else if (strcmp(path, r->pattern) == 0) {
            return r;
        }
    }
    return NULL;
}

const char *http_header(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->_conn, MHD_HEADER_KIND, name);
}

const char *http_query(const struct http_request *req, const char *key)
{
    return MHD_lookup_connection_value(req->_conn, MHD_GET_ARGUMENT_KIND, key);
}

struct each_ctx {
    http_header_fn fn;
    void *ctx;
};

static enum MHD_Result each_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct each_ctx *e = cls;
    (void)kind;
    return e->fn(e->ctx, key, value ? value : "") ? MHD_NO : MHD_YES;
}

void http_header_each(const struct http_request *req, http_header_fn fn, void *ctx)
{
    struct each_ctx e = {fn, ctx};
    MHD_get_connection_values(req->_conn, MHD_HEADER_KIND, each_header, &e);
}

static gnutls_session_t conn_session(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    return ci ? (gnutls_session_t)ci->tls_session : NULL;
}

void *http_tls_session(const struct http_request *req)
{
    return conn_session(req->_conn);
}

void http_set_guard(struct http_server *srv, http_guard_fn fn, void *ctx)
{
    srv->guard = fn;
    srv->guard_ctx = ctx;
}

/* ---- TLS: per-handshake credentials ------------------------------------- */

#define TLS_SLOTS  4
#define HS_BUCKETS 256

/* Credentials held by handshakes, keyed by session pointer. */
struct hs_entry {
    gnutls_session_t session;
    struct tls_creds *creds;
    struct hs_entry *next;
};
static pthread_mutex_t hs_mu = PTHREAD_MUTEX_INITIALIZER;
static struct hs_entry *hs_table[HS_BUCKETS];
static struct tls_server *tls_slots[TLS_SLOTS];

static size_t hs_bucket(gnutls_session_t s)
{
    uintptr_t v = (uintptr_t)s;
    return (size_t)((v >> 4) ^ (v >> 12)) % HS_BUCKETS;
}

/* Drop the credentials a handshake holds, if any. */
static void hs_release(gnutls_session_t s)
{
    if (!s)
        return;
    struct tls_creds *c = NULL;
    pthread_mutex_lock(&hs_mu);
    for (struct hs_entry **pp = &hs_table[hs_bucket(s)]; *pp; pp = &(*pp)->next) {
        if ((*pp)->session == s) {
            struct hs_entry *e = *pp;
            *pp = e->next;
            c = e->creds;
            free(e);
            break;
        }
    }
    pthread_mutex_unlock(&hs_mu);
    tls_creds_release(c);
}

static int cert_callback(unsigned slot, gnutls_session_t session, gnutls_pcert_st **pcert,
                         unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    struct tls_server *ts = tls_slots[slot];
    if (!ts)
        return -1;
    /* A renegotiation or a second callback on one session: drop the first reference. */
    hs_release(session);
    struct tls_creds *c = tls_server_acquire(ts);
    struct hs_entry *e = malloc(sizeof(*e));
    if (!e) {
        tls_creds_release(c);
        return -1;
    }
    e->session = session;
    e->creds = c;
    pthread_mutex_lock(&hs_mu);
    size_t b = hs_bucket(session);
    e->next = hs_table[b];
    hs_table[b] = e;
    pthread_mutex_unlock(&hs_mu);
    *pcert = c->pcert;
    *pcert_length = c->npcert;
    *pkey = c->key;
    return 0;
}

#define CERT_CB(n)                                                                                           \
    static int cert_cb##n(gnutls_session_t s, const gnutls_datum_t *req_ca_dn, int nreqs,                    \
                          const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length, gnutls_pcert_st **pc,  \
                          unsigned int *pcl, gnutls_privkey_t *pk)                                           \
    {                                                                                                        \
        (void)req_ca_dn;                                                                                     \
        (void)nreqs;                                                                                         \
        (void)pk_algos;                                                                                      \
        (void)pk_algos_length;                                                                               \
        return cert_callback(n, s, pc, pcl, pk);                                                             \
    }
CERT_CB(0)
CERT_CB(1)
CERT_CB(2)
CERT_CB(3)
static gnutls_certificate_retrieve_function2 *const cert_cbs[TLS_SLOTS] = {cert_cb0, cert_cb1, cert_cb2,
                                                                           cert_cb3};

int http_set_tls(struct http_server *srv, struct tls_server *creds, const char *client_ca_pem)
{
    if (srv->daemon)
        return -EBUSY;
    pthread_mutex_lock(&hs_mu);
    int slot = -1;
    for (int i = 0; i < TLS_SLOTS; i++) {
        if (!tls_slots[i]) {
            tls_slots[i] = creds;
            slot = i;
            break;
        }
    }
    pthread_mutex_unlock(&hs_mu);
    if (slot < 0)
        return -ENOSPC;
    srv->tls = creds;
    srv->tls_slot = slot;
    free(srv->client_ca_pem);
    srv->client_ca_pem = client_ca_pem ? xstrdup(client_ca_pem) : NULL;
    return 0;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    (void)socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_CLOSED)
        hs_release(conn_session(conn));
}

void http_resp_header(struct http_response *resp, const char *name, const char *value)
{
    if (resp->nheaders >= HTTP_MAX_EXTRA_HEADERS)
        return;
    resp->headers[resp->nheaders].name = xstrdup(name);
    resp->headers[resp->nheaders].value = xstrdup(value);
    resp->nheaders++;
}

static void response_release(struct http_response *resp)
{
    for (unsigned i = 0; i < resp->nheaders; i++) {
        free(resp->headers[i].name);
        free(resp->headers[i].value);
    }
    resp->nheaders = 0;
    buf_free(&resp->body);
}

static void count_status(struct http_server *srv, int status)
{
    if (status >= 100 && status <= 599)
        atomic_fetch_add_explicit(&srv->by_code[status - 100], 1, memory_order_relaxed);
}

/* Queue @resp on @conn and release it. The one place a status goes on the wire. */
static enum MHD_Result send_response(struct http_server *srv, struct MHD_Connection *conn,
                                     struct req_state *st, struct http_response *resp)
{
    size_t len;
    char *data = buf_steal(&resp->body, &len);
    struct MHD_Response *r;
    if (len) {
        r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    } else {
        free(data);
        data = NULL;
        r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    }
    if (!r) {
        free(data);
        response_release(resp);
        return MHD_NO;
    }
    int status = resp->status ? resp->status : 200;
    if (status != 204 && status != 304)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                resp->content_type ? resp->content_type : "text/plain; charset=utf-8");
    for (unsigned i = 0; i < resp->nheaders; i++)
        MHD_add_response_header(r, resp->headers[i].name, resp->headers[i].value);
    response_release(resp);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    if (ret == MHD_YES) {
        st->responded = 1;
        count_status(srv, status);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double us = ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9 - st->start) * 1e6;
        route_stats_add(st->route ? st->route->stats : srv->unrouted, status, us / 1e6);
        if (log_enabled(LOG_DEBUG)) {
            log_debug("request", "listener=%s method=%s path=%s status=%d bytes=%zu duration_us=%.0f",
                      srv->name, st->method, st->url, status, len, us);
        }
    }
    return ret;
}

static enum MHD_Result send_text(struct http_server *srv, struct MHD_Connection *conn, struct req_state *st,
                                 int status, const char *text)
{
    struct http_response resp = {.status = status};
    buf_puts(&resp.body, text);
    return send_response(srv, conn, st, &resp);
}

static enum MHD_Result on_first_call(struct http_server *srv, struct MHD_Connection *conn, const char *url,
                                     struct req_state *st)
{
    if (srv->tls)
        hs_release(conn_session(conn)); /* the handshake is over */
    st->route = find_route(srv, url);
    if (!st->route)
        return send_text(srv, conn, st, 404, "not found\n");
    if (srv->guard) {
        struct http_request req = {
            .method = st->method,
            .path = url,
            .listener_is_loopback = srv->loopback,
            ._conn = conn,
        };
        struct http_response resp = {.status = 200};
        if (srv->guard(srv->guard_ctx, &req, &resp))
            return send_response(srv, conn, st, &resp);
        response_release(&resp);
        st->authenticated = req.authenticated;
    }
    if (st->route->early) {
        struct http_request req = {
            .method = st->method,
            .path = url,
            .listener_is_loopback = srv->loopback,
            .authenticated = st->authenticated,
            ._conn = conn,
        };
        struct http_response resp = {.status = 200};
        if (st->route->early(st->route->early_ctx, &req, &resp))
            return send_response(srv, conn, st, &resp);
        response_release(&resp);
    }
    st->cap = st->route->body_cap;
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno == 0 && *end == '\0' && n > st->cap)
            return send_text(srv, conn, st, 413, "request body too large\n");
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct http_server *srv = cls;
    struct req_state *st = *con_cls;

    if (!st) {
        /* Pool threads are not ours: join RCU on first use; a pthread key
         * destructor unregisters them when MHD joins its pool. */
        ml_thread_online();
        st = calloc(1, sizeof(*st));
        if (!st)
            return MHD_NO;
        *con_cls = st;
        atomic_fetch_add_explicit(&srv->in_flight, 1, memory_order_relaxed);
        st->method = method;
        st->url = url;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        st->start = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
        return on_first_call(srv, conn, url, st);
    }
    if (st->responded) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (!st->too_large && st->body.len + n > st->cap) {
            st->too_large = 1;
            buf_free(&st->body);
        }
        if (st->too_large) {
            st->discarded += n;
            return st->discarded > (uint64_t)st->cap * DISCARD_FACTOR ? MHD_NO : MHD_YES;
        }
        buf_append(&st->body, upload_data, n);
        return MHD_YES;
    }
    if (st->too_large)
        return send_text(srv, conn, st, 413, "request body too large\n");

    struct http_request req = {
        .method = method,
        .path = url,
        .body = st->body.len ? (const uint8_t *)st->body.data : NULL,
        .body_len = st->body.len,
        .listener_is_loopback = srv->loopback,
        .authenticated = st->authenticated,
        ._conn = conn,
    };
    struct http_response resp = {.status = 200};
    st->route->fn(st->route->ctx, &req, &resp);
    /* A handler that returns inside a read-side section would hold every
     * grace period hostage to a socket write and let call_rcu memory grow
     * without bound (DESIGN 4a). That is a bug in the handler: stop loudly. */
    if (rcu_read_ongoing()) {
        log_error("handler returned inside an RCU read-side critical section", "listener=%s path=%s",
                  srv->name, url);
        abort();
    }
    return send_response(srv, conn, st, &resp);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *srv = cls;
    struct req_state *st = *con_cls;
    if (!st)
        return;
    buf_free(&st->body);
    free(st);
    *con_cls = NULL;
    atomic_fetch_sub_explicit(&srv->in_flight, 1, memory_order_relaxed);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    struct http_server *srv = cls;
    char text[512];
    vsnprintf(text, sizeof(text), fmt, ap);
    size_t n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        text[--n] = '\0';
    log_warn("libmicrohttpd", "listener=%s detail=%s", srv->name, text);
}

/*
 * Every started listener is on this list so that one collector writes the
 * requests family under a single HELP/TYPE header (the text format allows a
 * family only once per scrape). Lock order: selfmetrics' registry mutex (held
 * while collecting), then servers_mu.
 */
static pthread_mutex_t servers_mu = PTHREAD_MUTEX_INITIALIZER;
static struct http_server *servers;

/* One route's series of both families; @fam 0: the request counter, 1: the histogram. */
static void collect_route(struct buf *out, int fam, const char *listener, const char *handler,
                          struct route_stats *rs)
{
    static const char reqs[] = "metrics_adapter_http_requests_total";
    static const char dur[] = "metrics_adapter_http_request_duration_seconds";
    char code[8], le[32], name[64];
    if (fam == 0) {
        for (int i = 0; i < 500; i++) {
            uint64_t v = atomic_load_explicit(&rs->by_code[i], memory_order_relaxed);
            if (!v)
                continue;
            snprintf(code, sizeof(code), "%d", i + 100);
            const char *labels[] = {"listener", listener, "handler", handler, "code", code, NULL};
            expo_sample_u64(out, reqs, labels, v);
        }
        return;
    }
    uint64_t cum = 0;
    snprintf(name, sizeof(name), "%s_bucket", dur);
    for (unsigned i = 0; i <= NLAT; i++) {
        cum += atomic_load_explicit(&rs->lat[i], memory_order_relaxed);
        if (i == NLAT) {
            snprintf(le, sizeof(le), "+Inf");
        } else {
            struct buf lb = BUF_INIT;
            expo_double(&lb, lat_bounds[i]);
            snprintf(le, sizeof(le), "%s", lb.data);
            buf_free(&lb);
        }
        const char *labels[] = {"listener", listener, "handler", handler, "le", le, NULL};
        expo_sample_u64(out, name, labels, cum);
    }
    const char *labels[] = {"listener", listener, "handler", handler, NULL};
    snprintf(name, sizeof(name), "%s_sum", dur);
    expo_sample(out, name, labels, (double)atomic_load_explicit(&rs->lat_sum_ns, memory_order_relaxed) / 1e9);
    snprintf(name, sizeof(name), "%s_count", dur);
    expo_sample_u64(out, name, labels, cum);
}

/* Whether the handler has answered anything yet (idle routes are left out of the exposition). */
static int route_used(struct route_stats *rs)
{
    for (unsigned i = 0; i <= NLAT; i++)
        if (atomic_load_explicit(&rs->lat[i], memory_order_relaxed))
            return 1;
    return 0;
}

static void http_collect(void *ctx, struct buf *out)
{
    (void)ctx;
    pthread_mutex_lock(&servers_mu);
    for (int fam = 0; fam < 2; fam++) {
        if (fam == 0)
            expo_header(
                out, "metrics_adapter_http_requests_total", "counter",
                "HTTP requests answered, by listener, handler (route pattern; none: no route) and status "
                "code.");
        else
            expo_header(
                out, "metrics_adapter_http_request_duration_seconds", "histogram",
                "Time from a request's headers to its response being queued, by listener and handler.");
        for (struct http_server *srv = servers; srv; srv = srv->next) {
            for (size_t i = 0; i < srv->nroutes; i++)
                if (route_used(srv->routes[i].stats))
                    collect_route(out, fam, srv->name, srv->routes[i].pattern, srv->routes[i].stats);
            if (route_used(srv->unrouted))
                collect_route(out, fam, srv->name, "none", srv->unrouted);
        }
    }
    /* Graceful shutdown waits for this to reach 0 (http_quiesce, main.c). */
    expo_header(out, "metrics_adapter_http_requests_in_flight", "gauge",
                "Requests whose headers were read and whose answer is not yet complete, by listener.");
    for (struct http_server *srv = servers; srv; srv = srv->next) {
        const char *labels[] = {"listener", srv->name, NULL};
        expo_sample_u64(out, "metrics_adapter_http_requests_in_flight", labels, http_in_flight(srv));
    }
    pthread_mutex_unlock(&servers_mu);
}

int http_start(struct http_server *srv)
{
    int fd = socket(srv->want.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    int rc;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&srv->want, srv->wantlen) < 0 || listen(fd, 1024) < 0) {
        rc = -errno;
        goto fail_fd;
    }
    struct sockaddr_storage got;
    socklen_t gotlen = sizeof(got);
    if (getsockname(fd, (struct sockaddr *)&got, &gotlen) < 0) {
        rc = -errno;
        goto fail_fd;
    }
    format_address(&got, srv->bound, sizeof(srv->bound), &srv->port);
    srv->loopback = addr_is_loopback(&got);

    unsigned threads = srv->threads;
    if (!threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (unsigned)n : 1;
    }
    /* MHD splits the limit across pool threads; each must get at least one. */
    unsigned maxconn = srv->max_connections < threads ? threads : srv->max_connections;
    /* MHD_USE_ITC: MHD_quiesce_daemon() needs it with a thread pool (http_quiesce). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    if (got.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (srv->tls)
        flags |= MHD_USE_TLS;
    /* The logger goes first, or MHD reports option errors through its own.
     * A pool of one is no pool (MHD warns), so the pool option is left out
     * in that case. */
    struct MHD_OptionItem opts[12];
    unsigned no = 0;
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_logger, srv};
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, fd, NULL};
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, (intptr_t)maxconn, NULL};
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)srv->timeout_s, NULL};
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, srv};
    if (threads > 1)
        opts[no++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)threads, NULL};
    if (srv->tls) {
        /* Single-pointer options take ptr_value in an option array. */
        opts[no++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *)cert_cbs[srv->tls_slot]};
        opts[no++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, srv};
        if (srv->client_ca_pem)
            opts[no++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, srv->client_ca_pem};
    }
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    srv->daemon =
        MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!srv->daemon) {
        rc = -EIO;
        goto fail_fd;
    }
    /* From here MHD owns fd and closes it in MHD_stop_daemon(). */
    pthread_mutex_lock(&servers_mu);
    srv->next = servers;
    servers = srv;
    pthread_mutex_unlock(&servers_mu);
    selfmetrics_register(http_collect, NULL); /* -EEXIST after the first listener */
    return 0;

fail_fd:
    close(fd);
    return rc;
}

unsigned http_port(const struct http_server *srv)
{
    return srv->port;
}

const char *http_bound_address(const struct http_server *srv)
{
    return srv->bound;
}

int http_is_loopback(const struct http_server *srv)
{
    return srv->loopback;
}

const char *http_name(const struct http_server *srv)
{
    return srv->name;
}

int http_quiesce(struct http_server *srv)
{
    if (!srv || !srv->daemon)
        return 0;
    MHD_socket fd = MHD_quiesce_daemon(srv->daemon);
    if (fd == MHD_INVALID_SOCKET)
        return -EIO;
    /* MHD hands the listening socket back and no longer polls it. */
    close(fd);
    return 0;
}

unsigned http_in_flight(const struct http_server *srv)
{
    if (!srv)
        return 0;
    int64_t n = atomic_load_explicit(&srv->in_flight, memory_order_relaxed);
    return n > 0 ? (unsigned)n : 0;
}

void http_server_free(struct http_server *srv)
{
    if (!srv)
        return;
    if (srv->daemon) {
        pthread_mutex_lock(&servers_mu);
        struct http_server **pp = &servers;
        while (*pp && *pp != srv)
            pp = &(*pp)->next;
        if (*pp)
            *pp = srv->next;
        int last = servers == NULL;
        pthread_mutex_unlock(&servers_mu);
        if (last)
            selfmetrics_unregister(http_collect, NULL);
        MHD_stop_daemon(srv->daemon);
    }
    if (srv->tls) {
        pthread_mutex_lock(&hs_mu);
        tls_slots[srv->tls_slot] = NULL;
        pthread_mutex_unlock(&hs_mu);
    }
    free(srv->client_ca_pem);
    for (size_t i = 0; i < srv->nroutes; i++) {
        free(srv->routes[i].pattern);
        free(srv->routes[i].stats);
    }
    free(srv->unrouted);
    free(srv->routes);
    free(srv->name);
    free(srv->address);
    free(srv);
}
