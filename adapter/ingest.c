/*
 * ingest: the remote-write handler. See ingest.h.
 *
 * DESIGN: the handler is a straight line, socket to store: check the method
 * and the token, decode the whole body into a per-request arena (the decoder
 * copies nothing it does not need and validates every series), then hand each
 * valid series to store_write(), which copies what the store keeps. The
 * arena is released in one sweep before the answer is queued. Errors are enum
 * api_rw_err values until the very end, where api_rw_http_status() turns
 * them into a status and a message; the store's refusals become API_RW_ELIMIT
 * with the limit named in the text.
 */

#include "ingest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <urcu.h>

#include "arena.h"
#include "log.h"
#include "query.h"
#include "rules.h"
#include "remote_write.h"
#include "selfmetrics.h"
#include "valve.h"

#define TOKEN_MAX 4096

/*
 * Back-pressure on deletes (stale markers): call_rcu has none, so after each
 * request a writer waits for pending reclaims when more than this many
 * series (about 40 MB at ~400 bytes each) are unlinked and not yet freed.
 */
#define INGEST_MAX_PENDING 100000

struct ingest {
    struct store *store;
    struct api_rw_limits limits; /* now_ms is set per request */
    size_t max_body_bytes;
    char *token; /* NULL when no token file was given */
    size_t token_len;
    struct rules_set **rules; /* RCU-published rule set (serve), or NULL: keep everything */
};

#define REQ_HELP "Remote-write requests answered, by status code."
SM_COUNTER(c_204, "metrics_adapter_remote_write_requests_total", "code=\"204\"", REQ_HELP)
SM_COUNTER(c_400, "metrics_adapter_remote_write_requests_total", "code=\"400\"", REQ_HELP)
SM_COUNTER(c_401, "metrics_adapter_remote_write_requests_total", "code=\"401\"", REQ_HELP)
SM_COUNTER(c_405, "metrics_adapter_remote_write_requests_total", "code=\"405\"", REQ_HELP)
SM_COUNTER(c_415, "metrics_adapter_remote_write_requests_total", "code=\"415\"", REQ_HELP)
SM_COUNTER(c_5xx, "metrics_adapter_remote_write_requests_total", "code=\"5xx\"", REQ_HELP)
SM_COUNTER(c_bytes, "metrics_adapter_remote_write_received_bytes_total", NULL,
           "Compressed remote-write body bytes received.")
#define SERIES_HELP "Series received by remote write, by what became of them."
SM_COUNTER(c_stored, "metrics_adapter_remote_write_series_total", "result=\"stored\"", SERIES_HELP)
SM_COUNTER(c_invalid, "metrics_adapter_remote_write_series_total", "result=\"invalid\"", SERIES_HELP)
SM_COUNTER(c_refused, "metrics_adapter_remote_write_series_total", "result=\"refused\"", SERIES_HELP)
SM_COUNTER(c_throttled, "metrics_adapter_remote_write_throttled_total", NULL,
           "Remote-write requests that waited for pending reclaims (too many deleted series not yet freed).")
SM_COUNTER(c_unused, "metrics_adapter_remote_write_series_total", "result=\"dropped_no_rule\"", SERIES_HELP)

static void count_code(int status)
{
    switch (status) {
    case 204:
        sm_inc(&c_204);
        break;
    case 400:
        sm_inc(&c_400);
        break;
    case 401:
        sm_inc(&c_401);
        break;
    case 405:
        sm_inc(&c_405);
        break;
    case 415:
        sm_inc(&c_415);
        break;
    default:
        if (status >= 500)
            sm_inc(&c_5xx);
        break;
    }
}

int ingest_token_equal(const char *given, size_t given_len, const char *want, size_t want_len)
{
    /* Every byte of the expected token is visited whatever the input; no early exit. */
    volatile unsigned char diff = given_len != want_len;
    for (size_t i = 0; i < want_len; i++) {
        unsigned char g = i < given_len ? (unsigned char)given[i] : 0;
        diff |= g ^ (unsigned char)want[i];
    }
    return diff == 0 && want_len > 0;
}

int ingest_address_is_loopback(const char *address)
{
    const char *colon = strrchr(address, ':');
    size_t hl = colon ? (size_t)(colon - address) : strlen(address);
    if (hl >= 2 && address[0] == '[' && address[hl - 1] == ']') {
        address++;
        hl -= 2;
    }
    if (hl == 3 && !memcmp(address, "::1", 3))
        return 1;
    if (hl == 9 && !strncasecmp(address, "localhost", 9))
        return 1;
    return hl >= 4 && !memcmp(address, "127.", 4);
}

/* Whether the request carries "Authorization: Bearer <token>" with our token. */
static int authorized(const struct ingest *ing, const struct http_request *req)
{
    /* authenticated: a TLS client certificate the ingest CA verified (auth_ingest_guard). */
    if (req->listener_is_loopback || req->authenticated)
        return 1;
    if (!ing->token)
        return 0; /* fail closed: ingest_new refuses this configuration anyway */
    const char *h = http_header(req, "Authorization");
    if (!h || strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return 0;
    h += 6;
    while (*h == ' ' || *h == '\t')
        h++;
    size_t len = strlen(h);
    while (len && (h[len - 1] == ' ' || h[len - 1] == '\t'))
        len--;
    return ingest_token_equal(h, len, ing->token, ing->token_len);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What the store made of a decoded request. */
struct outcome {
    struct store_tally tally;
    size_t stored, refused_series, unused;
    int refusal; /* first enum store_refusal met, 0 if none */
};

/*
 * The store's admission hook (store_set_admit): whether a configured rule set
 * can use a NEW series (DESIGN 5: with a config, series no rule can use are
 * dropped at ingest and counted; without one, everything is kept). The store
 * asks once per series it is about to create, inside its read-side section,
 * so series already held cost nothing here. The labels are copied
 * NUL-terminated for rules.h only when a config is loaded.
 */
static int admit_by_rules(void *ctx, const struct api_rw_label *labels, size_t n, int type)
{
    struct ingest *ing = ctx;
    /* Pairs with rcu_assign_pointer()/rcu_xchg_pointer() in serve.c; the store holds rcu_read_lock(). */
    const struct rules_set *set = rcu_dereference(*ing->rules);
    if (!set || !rules_is_config(set))
        return 1;
    struct rules_label lab[64];
    char text[8192];
    size_t used = 0;
    if (n > 64)
        return 1; /* beyond the scratch space: keep it rather than guess */
    for (size_t i = 0; i < n; i++) {
        const struct api_rw_label *l = &labels[i];
        if (used + l->name_len + l->value_len + 2 > sizeof(text))
            return 1;
        lab[i].name = memcpy(text + used, l->name, l->name_len);
        text[used + l->name_len] = '\0';
        used += l->name_len + 1;
        lab[i].value = memcpy(text + used, l->value, l->value_len);
        text[used + l->value_len] = '\0';
        used += l->value_len + 1;
    }
    return rules_series_wanted(set, lab, n, query_rules_type(type));
}

/*
 * The store keeps samples for the longest window a rule reads (a
 * prometheus-adapter config's rate(...[5m]) needs 5 m of them, not just
 * --rate-window). Checked on every request, so a reloaded rule set takes
 * effect with the next one: a few rules, a few loads, no write when unchanged.
 */
static void sync_rate_window(struct ingest *ing)
{
    int64_t w = 0;
    if (!ing->rules)
        return;
    rcu_read_lock();
    /* Pairs with rcu_assign_pointer()/rcu_xchg_pointer() in serve.c. */
    const struct rules_set *set = rcu_dereference(*ing->rules);
    size_t n = set ? rules_count(set) : 0;
    for (size_t i = 0; i < n; i++) {
        const struct rules_rule *r = rules_get(set, i);
        if (r->window_ms > w)
            w = r->window_ms;
    }
    rcu_read_unlock();
    store_set_rate_window(ing->store, w);
}

static void apply(struct ingest *ing, const struct api_rw_request *rq, struct outcome *o)
{
    sync_rate_window(ing);
    /* Types first: the admission hook of a series created below may need its metric's. */
    for (size_t i = 0; i < rq->n_metadata; i++)
        store_set_metric_type(ing->store, rq->metadata[i].family, rq->metadata[i].family_len,
                              (int)rq->metadata[i].type);
    for (size_t i = 0; i < rq->n_series; i++) {
        const struct api_rw_series *s = &rq->series[i];
        if (s->reason != API_RW_SERIES_OK) {
            o->tally.invalid += s->n_samples;
            continue;
        }
        if (s->n_samples == 0)
            continue;
        int r = store_write(ing->store, s->labels, s->n_labels, s->samples, s->n_samples, &o->tally);
        if (r == STORE_REFUSED_NO_RULE) {
            o->unused++; /* dropped by design: not an error */
        } else if (r > 0) {
            o->refused_series++;
            if (!o->refusal)
                o->refusal = r;
        } else if (r == 0) {
            o->stored++;
        }
    }
}

static const char *refusal_flag(int r)
{
    switch (r) {
    case STORE_REFUSED_MAX_SERIES:
        return "--max-series";
    case STORE_REFUSED_MAX_PER_METRIC:
        return "--max-series-per-metric";
    case STORE_REFUSED_MEMORY:
        return "--memory-limit (soft level)";
    default:
        return "a series limit";
    }
}

/* The 400 text when some series were skipped: the first invalid one and/or the limit. */
static void partial_message(const struct api_rw_request *rq, const struct outcome *o, struct buf *body)
{
    const char *msg;
    if (rq->n_invalid) {
        const struct api_rw_series *s = &rq->series[rq->first_invalid];
        api_rw_http_status(API_RW_EINVALID_SERIES, rq, &msg);
        buf_printf(body, "invalid series skipped (%zu of %zu): first: %s", rq->n_invalid, rq->n_series, msg);
        if (s->name)
            buf_printf(body, " (metric %.*s)", (int)(s->name_len > 200 ? 200 : s->name_len), s->name);
        buf_putc(body, '\n');
    }
    if (o->refused_series) {
        api_rw_http_status(API_RW_ELIMIT, rq, &msg);
        buf_printf(body, "%s: %zu new series refused by %s\n", msg, o->refused_series,
                   refusal_flag(o->refusal));
    }
}

static void set_v2_headers(struct http_response *resp, size_t samples)
{
    char v[32];
    snprintf(v, sizeof v, "%zu", samples);
    http_resp_header(resp, "X-Prometheus-Remote-Write-Samples-Written", v);
    /* Histograms and exemplars are not stored: none written. */
    http_resp_header(resp, "X-Prometheus-Remote-Write-Histograms-Written", "0");
    http_resp_header(resp, "X-Prometheus-Remote-Write-Exemplars-Written", "0");
}

static void handle_write(void *ctx, const struct http_request *req, struct http_response *resp)
{
    struct ingest *ing = ctx;
    const char *msg;
    int err = API_RW_OK;
    const char *ctype = http_header(req, "Content-Type");
    int v2 = api_rw_content_version(ctype) == 2;
    size_t written = 0;

    if (strcmp(req->method, "POST") != 0) {
        err = API_RW_EMETHOD;
        http_resp_header(resp, "Allow", "POST");
        goto answer;
    }
    if (!authorized(ing, req)) {
        err = API_RW_EUNAUTHORIZED;
        http_resp_header(resp, "WWW-Authenticate", "Bearer");
        goto answer;
    }
    /* The memory valve's hard level refuses the body before decoding it
     * (DESIGN 5); Prometheus keeps it in its WAL and retries. */
    if (valve_refuses_writes()) {
        valve_note_refused();
        resp->status = 503;
        http_resp_header(resp, "Retry-After", VALVE_RETRY_AFTER);
        buf_puts(&resp->body, "memory limit reached (--memory-limit, hard level): try again later\n");
        goto headers;
    }
    sm_add(&c_bytes, req->body_len);

    struct arena a;
    struct api_rw_request rq;
    struct api_rw_limits lim = ing->limits;
    lim.now_ms = wall_ms();
    arena_init(&a, 0);
    err = api_rw_decode(req->body, req->body_len, ctype, &lim, &a, &rq);
    if (err == API_RW_OK || err == API_RW_EINVALID_SERIES) {
        struct outcome o = {0};
        apply(ing, &rq, &o);
        sm_add(&c_stored, o.stored);
        sm_add(&c_invalid, rq.n_invalid);
        sm_add(&c_refused, o.refused_series);
        sm_add(&c_unused, o.unused);
        written = rq.counts.samples_valid > o.tally.refused ? rq.counts.samples_valid - o.tally.refused : 0;
        store_tally_flush(ing->store, &o.tally);
        /* Outside any read-side section, as ml_throttle() requires. */
        if (ml_throttle(INGEST_MAX_PENDING))
            sm_inc(&c_throttled);
        if (rq.n_invalid || o.refused_series) {
            err = rq.n_invalid ? API_RW_EINVALID_SERIES : API_RW_ELIMIT;
            resp->status = api_rw_http_status(err, &rq, &msg);
            partial_message(&rq, &o, &resp->body);
            arena_free(&a);
            goto headers;
        }
        err = API_RW_OK;
    }
    arena_free(&a);

answer:
    resp->status = api_rw_http_status(err, NULL, &msg);
    if (resp->status != 204)
        buf_printf(&resp->body, "%s\n", msg);
headers:
    if (v2)
        set_v2_headers(resp, written);
    count_code(resp->status);
}

static int read_token(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char *buf = malloc(TOKEN_MAX + 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, TOKEN_MAX - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = -errno;
            close(fd);
            free(buf);
            return e;
        }
        if (r == 0 || (n += (size_t)r) == TOKEN_MAX)
            break;
    }
    close(fd);
    /* A trailing newline (echo > file) is not part of the token. */
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    buf[n] = 0;
    if (n == 0) {
        free(buf);
        return -EINVAL;
    }
    *out = buf;
    *len = n;
    return 0;
}

int ingest_new(const struct ma_config *cfg, struct store *st, struct ingest **out)
{
    int have_token = (cfg->ingest_token_file && cfg->ingest_token_file[0]) ||
                     (cfg->ingest_client_ca_file && cfg->ingest_client_ca_file[0]);
    /* An address that is not host:port at all is the listener's error to report, not ours. */
    if (!have_token && strchr(cfg->listen_address, ':') && !ingest_address_is_loopback(cfg->listen_address)) {
        log_error("remote write needs a bearer token on a non-loopback listener",
                  "flag=--ingest-token-file listen_address=%s", cfg->listen_address);
        return -EINVAL;
    }
    struct ingest *ing = calloc(1, sizeof *ing);
    if (!ing)
        return -ENOMEM;
    if (cfg->ingest_token_file && cfg->ingest_token_file[0]) {
        int rc = read_token(cfg->ingest_token_file, &ing->token, &ing->token_len);
        if (rc) {
            log_error("cannot read the ingest token", "flag=--ingest-token-file path=%s error=%s",
                      cfg->ingest_token_file, rc == -EINVAL ? "empty file" : strerror(-rc));
            free(ing);
            return rc;
        }
    }
    ing->store = st;
    ing->max_body_bytes = cfg->max_body_bytes;
    ing->limits = (struct api_rw_limits){
        .max_decoded_bytes = cfg->max_decoded_bytes,
        .max_labels = cfg->max_labels_per_series,
        .max_label_name_len = cfg->max_label_name_length,
        .max_label_value_len = cfg->max_label_value_length,
        .max_series_per_request = cfg->max_series_per_request,
        .max_future_ms = (int64_t)cfg->max_future_ms,
        .drop_labels = (const char *const *)cfg->drop_labels,
        .n_drop_labels = cfg->ndrop_labels,
    };
    *out = ing;
    return 0;
}

void ingest_set_rules(struct ingest *ing, struct rules_set **rules)
{
    ing->rules = rules;
    store_set_admit(ing->store, rules ? admit_by_rules : NULL, ing);
    sync_rate_window(ing);
}

/*
 * The memory valve's hard level, checked as soon as the headers are read, so
 * that a refused body is never buffered (http discards it). Requests that
 * would be refused anyway (method, credentials) are left to the handler,
 * which answers them as usual; the handler checks the valve again for
 * bodies that were already on their way when it engaged.
 */
static int early_valve(void *ctx, struct http_request *req, struct http_response *resp)
{
    struct ingest *ing = ctx;
    if (!valve_refuses_writes() || strcmp(req->method, "POST") != 0 || !authorized(ing, req))
        return 0;
    valve_note_refused();
    resp->status = 503;
    http_resp_header(resp, "Retry-After", VALVE_RETRY_AFTER);
    buf_puts(&resp->body, "memory limit reached (--memory-limit, hard level): try again later\n");
    count_code(503);
    return 1;
}

int ingest_add_routes(struct ingest *ing, struct http_server *srv)
{
    int rc = http_route(srv, "/api/v1/write", HTTP_ROUTE_EXACT, ing->max_body_bytes, handle_write, ing);
    if (rc == 0)
        rc = http_route_set_early(srv, "/api/v1/write", early_valve, ing);
    return rc;
}

void ingest_free(struct ingest *ing)
{
    if (!ing)
        return;
    if (ing->token) {
        /* Do not leave the secret in freed memory. */
        explicit_bzero(ing->token, ing->token_len);
        free(ing->token);
    }
    free(ing);
}
