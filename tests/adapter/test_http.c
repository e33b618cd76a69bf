/*
 * Unit tests of adapter/http.c against a real listener on loopback: routing,
 * bodies and caps (413 on Content-Length and on a streamed body), headers and
 * query arguments, loopback detection from the bound address, address parsing,
 * bind errors, and the requests counter.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include <maplib/maplib.h>

#include "log.h"
#include "selfmetrics.h"
#include "check.h"

struct seen {
    char method[16];
    char path[128];
    size_t body_len;
    unsigned long body_sum;
    int loopback;
    char hdr[64];
    char query[64];
};
static struct seen last;
static atomic_int calls;

static void echo(void *ctx, const struct http_request *req, struct http_response *resp)
{
    snprintf(last.method, sizeof(last.method), "%s", req->method);
    snprintf(last.path, sizeof(last.path), "%s", req->path);
    last.body_len = req->body_len;
    last.body_sum = 0;
    for (size_t i = 0; i < req->body_len; i++)
        last.body_sum += req->body[i];
    last.loopback = req->listener_is_loopback;
    const char *h = http_header(req, "x-test");
    snprintf(last.hdr, sizeof(last.hdr), "%s", h ? h : "(none)");
    const char *q = http_query(req, "labelSelector");
    snprintf(last.query, sizeof(last.query), "%s", q ? q : "(none)");
    atomic_fetch_add(&calls, 1);
    resp->status = 201;
    resp->content_type = "application/json";
    http_resp_header(resp, "X-Reply", "yes");
    buf_printf(&resp->body, "{\"ctx\":\"%s\",\"len\":%zu}", (const char *)ctx, req->body_len);
}

static void empty(void *ctx, const struct http_request *req, struct http_response *resp)
{
    resp->status = 204;
}

/* One request on a fresh connection; returns the status (0 if none) and the whole answer in @out. */
static int roundtrip(unsigned port, const char *req, size_t reqlen, const char *body, size_t bodylen,
                     char *out, size_t outcap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    CHECK_EQ(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    CHECK_EQ(send(fd, req, reqlen, MSG_NOSIGNAL), reqlen);
    /* The body may be refused early: stop sending at the first error. */
    size_t off = 0;
    while (off < bodylen) {
        ssize_t n = send(fd, body + off, bodylen - off > 65536 ? 65536 : bodylen - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    size_t len = 0;
    for (;;) {
        ssize_t n = recv(fd, out + len, outcap - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == outcap - 1)
            break;
    }
    out[len] = '\0';
    close(fd);
    int status = 0;
    if (sscanf(out, "HTTP/1.1 %d", &status) != 1)
        status = 0;
    return status;
}

static int simple(unsigned port, const char *method, const char *target, const char *body, char *out,
                  size_t outcap)
{
    char req[1024];
    size_t bl = body ? strlen(body) : 0;
    int n = snprintf(
        req, sizeof(req),
        "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Test: hello\r\nContent-Length: %zu\r\n\r\n",
        method, target, bl);
    return roundtrip(port, req, (size_t)n, body, bl, out, outcap);
}

static char out[1 << 16];

static struct http_server *start(const char *addr, size_t cap)
{
    struct http_listener_config lc = {.name = "test",
                                      .address = addr,
                                      .threads = 2,
                                      .max_connections = 16,
                                      .timeout_s = 5,
                                      .default_body_cap = cap};
    struct http_server *srv;
    CHECK_EQ(http_server_new(&lc, &srv), 0);
    CHECK_EQ(http_route(srv, "/exact", HTTP_ROUTE_EXACT, 0, echo, "exact"), 0);
    CHECK_EQ(http_route(srv, "/small", HTTP_ROUTE_EXACT, 100, echo, "small"), 0);
    CHECK_EQ(http_route(srv, "/empty", HTTP_ROUTE_EXACT, 0, empty, NULL), 0);
    CHECK_EQ(http_route(srv, "/apis/", HTTP_ROUTE_PREFIX, 0, echo, "prefix"), 0);
    CHECK_EQ(selfmetrics_add_routes(srv), 0);
    CHECK_EQ(http_start(srv), 0);
    CHECK(http_port(srv) > 0);
    return srv;
}

static void test_routes(struct http_server *srv)
{
    unsigned port = http_port(srv);
    CHECK_EQ(simple(port, "GET", "/exact?labelSelector=app%3Dweb", NULL, out, sizeof(out)), 201);
    CHECK_HAS(out, "Content-Type: application/json\r\n");
    CHECK_HAS(out, "X-Reply: yes\r\n");
    CHECK_HAS(out, "{\"ctx\":\"exact\",\"len\":0}");
    CHECK_STR(last.method, "GET");
    CHECK_STR(last.path, "/exact");
    CHECK_STR(last.hdr, "hello");
    CHECK_STR(last.query, "app=web");
    CHECK_EQ(last.loopback, 1);

    /* The path is percent-decoded; prefix routes match below their pattern. */
    CHECK_EQ(simple(port, "GET", "/apis/x/%2A/m", NULL, out, sizeof(out)), 201);
    CHECK_STR(last.path, "/apis/x/*/m");
    CHECK_HAS(out, "\"ctx\":\"prefix\"");

    CHECK_EQ(simple(port, "GET", "/exact/more", NULL, out, sizeof(out)), 404);
    CHECK_EQ(simple(port, "GET", "/nothing", NULL, out, sizeof(out)), 404);
    CHECK_HAS(out, "not found");

    /* Methods are the handler's business: http passes them through. */
    CHECK_EQ(simple(port, "DELETE", "/exact", NULL, out, sizeof(out)), 201);
    CHECK_STR(last.method, "DELETE");

    CHECK_EQ(simple(port, "POST", "/empty", "abc", out, sizeof(out)), 204);
    CHECK(!strstr(out, "Content-Type"));

    CHECK_EQ(simple(port, "GET", "/healthz", NULL, out, sizeof(out)), 200);
    CHECK_HAS(out, "\r\n\r\nok");
    CHECK_EQ(simple(port, "GET", "/livez", NULL, out, sizeof(out)), 200);
    CHECK_EQ(simple(port, "POST", "/healthz", NULL, out, sizeof(out)), 405);
    CHECK_HAS(out, "Allow: GET, HEAD");
}

static void test_bodies(struct http_server *srv)
{
    unsigned port = http_port(srv);
    /* A body up to the cap reaches the handler whole, in however many chunks. */
    size_t n = 300000;
    char *body = malloc(n);
    unsigned long sum = 0;
    for (size_t i = 0; i < n; i++) {
        body[i] = (char)('a' + i % 26);
        sum += (unsigned char)body[i];
    }
    char req[256];
    int rl =
        snprintf(req, sizeof(req),
                 "POST /exact HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n", n);
    CHECK_EQ(roundtrip(port, req, (size_t)rl, body, n, out, sizeof(out)), 201);
    CHECK_EQ(last.body_len, n);
    CHECK_EQ(last.body_sum, sum);

    /* Exactly at the cap: accepted; one byte over: 413 without calling the handler. */
    int before = atomic_load(&calls);
    CHECK_EQ(simple(port, "POST", "/small",
                    "0123456789012345678901234567890123456789012345678901234567890123456789"
                    "012345678901234567890123456789",
                    out, sizeof(out)),
             201);
    CHECK_EQ(last.body_len, 100);
    CHECK_EQ(simple(port, "POST", "/small",
                    "0123456789012345678901234567890123456789012345678901234567890123456789"
                    "0123456789012345678901234567890",
                    out, sizeof(out)),
             413);
    CHECK_EQ(atomic_load(&calls), before + 1);

    /* Content-Length over the cap is refused before the body is sent. */
    rl = snprintf(req, sizeof(req), "POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n");
    CHECK_EQ(roundtrip(port, req, (size_t)rl, NULL, 0, out, sizeof(out)), 413);
    CHECK_HAS(out, "request body too large");

    /* A chunked body that passes the cap while streaming: 413 at the end. */
    rl = snprintf(
        req, sizeof(req),
        "POST /small HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n");
    const char *chunks = "3c\r\n012345678901234567890123456789012345678901234567890123456789\r\n"
                         "3c\r\n012345678901234567890123456789012345678901234567890123456789\r\n0\r\n\r\n";
    CHECK_EQ(roundtrip(port, req, (size_t)rl, chunks, strlen(chunks), out, sizeof(out)), 413);
    CHECK_EQ(atomic_load(&calls), before + 1);

    /* Far beyond the cap the connection is dropped without reading it all. */
    char *many = malloc(200000);
    size_t ml = 0;
    for (int i = 0; i < 2000; i++)
        ml += (size_t)sprintf(many + ml,
                              "3c\r\n012345678901234567890123456789012345678901234567890123456789\r\n");
    int st = roundtrip(port, req, (size_t)rl, many, ml, out, sizeof(out));
    CHECK(st == 0 || st == 413);
    free(many);
    CHECK_EQ(atomic_load(&calls), before + 1);

    /* A small chunked body is accepted. */
    const char *small = "5\r\nhello\r\n0\r\n\r\n";
    CHECK_EQ(roundtrip(port, req, (size_t)rl, small, strlen(small), out, sizeof(out)), 201);
    CHECK_EQ(last.body_len, 5);
    free(body);
}

static void test_metrics(struct http_server *srv)
{
    CHECK_EQ(simple(http_port(srv), "GET", "/metrics", NULL, out, sizeof(out)), 200);
    CHECK_HAS(out, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n");
    CHECK_HAS(out, "# TYPE metrics_adapter_http_requests_total counter\n");
    CHECK_HAS(out, "metrics_adapter_http_requests_total{listener=\"test\",handler=\"/small\",code=\"413\"} ");
    CHECK_HAS(out,
              "metrics_adapter_http_requests_total{listener=\"test\",handler=\"none\",code=\"404\"} 2\n");
    /* One latency histogram per handler that answered. */
    CHECK_HAS(out, "# TYPE metrics_adapter_http_request_duration_seconds histogram\n");
    CHECK_HAS(out, "metrics_adapter_http_request_duration_seconds_bucket{listener=\"test\",handler=\"none\","
                   "le=\"10\"} 2\n");
    CHECK_HAS(out,
              "metrics_adapter_http_request_duration_seconds_count{listener=\"test\",handler=\"none\"} 2\n");
    CHECK_HAS(out, "process_resident_memory_bytes ");
}

static void test_addresses(void)
{
    static const char *bad[] = {"",
                                "8080",
                                "127.0.0.1",
                                "127.0.0.1:",
                                "127.0.0.1:65536",
                                "127.0.0.1:http",
                                "::1:80",
                                "[::1]80",
                                "[127.0.0.1]:80",
                                "no.such.host.invalid:80",
                                "1.2.3.4:-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct http_listener_config lc = {.name = "bad", .address = bad[i]};
        struct http_server *srv = NULL;
        if (http_server_new(&lc, &srv) != -EINVAL) {
            fprintf(stderr, "address \"%s\" accepted\n", bad[i]);
            abort();
        }
    }

    /* 0.0.0.0 is not loopback even when the client comes through 127.0.0.1. */
    struct http_server *any = start("0.0.0.0:0", 1024);
    CHECK_EQ(http_is_loopback(any), 0);
    CHECK_EQ(simple(http_port(any), "GET", "/exact", NULL, out, sizeof(out)), 201);
    CHECK_EQ(last.loopback, 0);

    /* The port is taken: a real errno, not a crash. */
    char taken[64];
    snprintf(taken, sizeof(taken), "0.0.0.0:%u", http_port(any));
    struct http_listener_config lc = {.name = "dup", .address = taken, .threads = 1};
    struct http_server *dup;
    CHECK_EQ(http_server_new(&lc, &dup), 0);
    CHECK_EQ(http_start(dup), -EADDRINUSE);
    http_server_free(dup);
    http_server_free(any);

    struct http_server *lo = start("127.0.0.2:0", 1024);
    CHECK_EQ(http_is_loopback(lo), 1);
    CHECK(strncmp(http_bound_address(lo), "127.0.0.2:", 10) == 0);
    http_server_free(lo);

    /* IPv6 loopback, when the machine has it. */
    struct http_listener_config l6 = {.name = "v6", .address = "[::1]:0", .threads = 1};
    struct http_server *v6;
    CHECK_EQ(http_server_new(&l6, &v6), 0);
    if (http_start(v6) == 0) {
        CHECK_EQ(http_is_loopback(v6), 1);
        CHECK(strncmp(http_bound_address(v6), "[::1]:", 6) == 0);
    } else {
        printf("test_http: no IPv6 loopback here, skipped [::1]\n");
    }
    http_server_free(v6);
}

/*
 * Pool threads are registered RCU readers: a handler inside rcu_read_lock()
 * holds back synchronize_rcu() on the main thread. Were the thread not
 * registered, the grace period would ignore it and end at once.
 */
static atomic_int rcu_in_section, rcu_sync_started, rcu_sync_done, rcu_done_seen_inside;

static void rcu_handler(void *ctx, const struct http_request *req, struct http_response *resp)
{
    rcu_read_lock();
    atomic_store(&rcu_in_section, 1);
    double end = t_now() + 5;
    while (!atomic_load(&rcu_sync_started) && t_now() < end)
        usleep(1000);
    /* Give the grace period every chance to (wrongly) finish. */
    end = t_now() + 0.2;
    while (t_now() < end && !atomic_load(&rcu_sync_done))
        usleep(1000);
    atomic_store(&rcu_done_seen_inside, atomic_load(&rcu_sync_done));
    rcu_read_unlock();
    buf_puts(&resp->body, "done");
}

static void *rcu_client(void *arg)
{
    static char rout[4096];
    *(int *)arg = simple(*(unsigned *)((int *)arg + 1), "GET", "/rcu", NULL, rout, sizeof(rout));
    return NULL;
}

static void test_rcu_registration(void)
{
    struct http_listener_config lc = {.name = "rcu", .address = "127.0.0.1:0", .threads = 2};
    struct http_server *srv;
    CHECK_EQ(http_server_new(&lc, &srv), 0);
    CHECK_EQ(http_route(srv, "/rcu", HTTP_ROUTE_EXACT, 0, rcu_handler, NULL), 0);
    CHECK_EQ(http_route(srv, "/exact", HTTP_ROUTE_EXACT, 0, echo, "exact"), 0);
    CHECK_EQ(http_start(srv), 0);

    int arg[2] = {0, (int)http_port(srv)};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, rcu_client, arg), 0);
    double end = t_now() + 5;
    while (!atomic_load(&rcu_in_section) && t_now() < end)
        usleep(1000);
    CHECK(atomic_load(&rcu_in_section));
    atomic_store(&rcu_sync_started, 1);
    synchronize_rcu();
    atomic_store(&rcu_sync_done, 1);
    pthread_join(th, NULL);
    CHECK_EQ(arg[0], 200);
    CHECK_EQ(atomic_load(&rcu_done_seen_inside), 0);

    /* Registered pool threads that sit idle do not hold back grace periods. */
    for (int i = 0; i < 8; i++)
        CHECK_EQ(simple(http_port(srv), "GET", "/exact", NULL, out, sizeof(out)), 201);
    double t0 = t_now();
    for (int i = 0; i < 10; i++)
        synchronize_rcu();
    CHECK(t_now() - t0 < 2.0);
    http_server_free(srv);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    rcu_register_thread();
    selfmetrics_init();
    struct http_server *srv = start("127.0.0.1:0", 1 << 20);
    CHECK_EQ(http_is_loopback(srv), 1);
    test_routes(srv);
    test_bodies(srv);
    test_metrics(srv);
    http_server_free(srv);
    test_addresses();
    test_rcu_registration();
    selfmetrics_shutdown();
    ml_shutdown();
    rcu_unregister_thread();
    log_flush();
    printf("test_http: ok\n");
    return 0;
}
