/*
 * debug: GET /debug/maps. See debug.h.
 *
 * DESIGN: the statistics are gathered into plain arrays first (inside
 * ml_maps_each(), one rcu_read_lock() per table for the chain walk), and
 * the JSON is written afterwards, so no read-side section is held while
 * anything is formatted, and none across the socket write (http queues the
 * body after the handler returns).
 */
#include "debug.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <maplib/maplib.h>

#include "http.h"

#define NBINS         8 /* chain lengths 1..7, then 8+ */
#define MAX_KINDS     16
#define LIMIT_DEFAULT 100
#define LIMIT_MAX     10000

struct table_stats {
    char name[48];
    struct ml_stats st;
    uint64_t nonempty, max_chain;
    uint64_t chains[NBINS];
};

struct kind_stats {
    struct table_stats sum; /* st.live etc. summed */
    uint64_t maps;
};

struct walk {
    struct table_stats *tables;
    size_t ntables, limit;
    uint64_t total;
    struct kind_stats kinds[MAX_KINDS];
    unsigned nkinds;
};

static void add_into(struct table_stats *dst, const struct table_stats *src)
{
    dst->st.live += src->st.live;
    dst->st.pending += src->st.pending;
    dst->st.buckets += src->st.buckets;
    dst->st.resizes += src->st.resizes;
    dst->nonempty += src->nonempty;
    if (src->max_chain > dst->max_chain)
        dst->max_chain = src->max_chain;
    for (int i = 0; i < NBINS; i++)
        dst->chains[i] += src->chains[i];
}

static int visit(void *ctx, struct ml_map *map)
{
    struct walk *w = ctx;
    struct table_stats t;
    memset(&t, 0, sizeof(t));
    const char *name = ml_map_name(map);
    snprintf(t.name, sizeof(t.name), "%s", name && name[0] ? name : "unnamed");
    ml_map_stats(map, &t.st);
    /* The walk reads linked nodes: a read-side section per table, kept to this one walk. */
    rcu_read_lock();
    t.nonempty = ml_map_chain_hist(map, t.chains, NBINS);
    rcu_read_unlock();
    for (int i = NBINS - 1; i >= 0; i--) {
        if (t.chains[i]) {
            t.max_chain = (uint64_t)i + 1; /* the last bin is a lower bound */
            break;
        }
    }
    w->total++;
    unsigned k;
    for (k = 0; k < w->nkinds; k++)
        if (strcmp(w->kinds[k].sum.name, t.name) == 0)
            break;
    if (k == w->nkinds && w->nkinds < MAX_KINDS) {
        memset(&w->kinds[k], 0, sizeof(w->kinds[k]));
        memcpy(w->kinds[k].sum.name, t.name, sizeof(t.name));
        w->nkinds++;
    }
    if (k < w->nkinds) {
        add_into(&w->kinds[k].sum, &t);
        w->kinds[k].maps++;
    }
    if (w->ntables < w->limit)
        w->tables[w->ntables++] = t;
    return 0;
}

/* A JSON string of a map name (maplib names are identifiers; escape anyway). */
static void json_str(struct buf *b, const char *s)
{
    buf_putc(b, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            buf_printf(b, "\\%c", c);
        else if (c < 0x20)
            buf_printf(b, "\\u%04x", c);
        else
            buf_putc(b, (char)c);
    }
    buf_putc(b, '"');
}

static void json_table(struct buf *b, const struct table_stats *t, const uint64_t *maps)
{
    buf_puts(b, "{\"table\":");
    json_str(b, t->name);
    if (maps)
        buf_printf(b, ",\"maps\":%llu", (unsigned long long)*maps);
    buf_printf(b,
               ",\"live\":%llu,\"pending\":%llu,\"buckets\":%llu,\"resizes\":%llu,\"nonempty_buckets\":%llu,"
               "\"max_chain\":%llu,\"chains\":{",
               (unsigned long long)t->st.live, (unsigned long long)t->st.pending,
               (unsigned long long)t->st.buckets, (unsigned long long)t->st.resizes,
               (unsigned long long)t->nonempty, (unsigned long long)t->max_chain);
    for (int i = 0; i < NBINS; i++)
        buf_printf(b, "%s\"%d%s\":%llu", i ? "," : "", i + 1, i == NBINS - 1 ? "+" : "",
                   (unsigned long long)t->chains[i]);
    buf_puts(b, "}}");
}

static void handle_maps(void *ctx, const struct http_request *req, struct http_response *resp)
{
    (void)ctx;
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        resp->status = 405;
        http_resp_header(resp, "Allow", "GET, HEAD");
        buf_puts(&resp->body, "method not allowed\n");
        return;
    }
    size_t limit = LIMIT_DEFAULT;
    const char *l = http_query(req, "limit");
    if (l) {
        char *end;
        unsigned long long v = strtoull(l, &end, 10);
        if (!*l || *end || v > LIMIT_MAX) {
            resp->status = 400;
            buf_printf(&resp->body, "limit must be an integer from 0 to %d\n", LIMIT_MAX);
            return;
        }
        limit = (size_t)v;
    }
    struct walk w;
    memset(&w, 0, sizeof(w));
    w.limit = limit;
    w.tables = calloc(limit ? limit : 1, sizeof(*w.tables));
    if (!w.tables) {
        resp->status = 503;
        buf_puts(&resp->body, "out of memory\n");
        return;
    }
    ml_maps_each(visit, &w);

    struct buf *b = &resp->body;
    resp->content_type = "application/json";
    buf_puts(b, "{\"kinds\":[");
    for (unsigned k = 0; k < w.nkinds; k++) {
        if (k)
            buf_putc(b, ',');
        json_table(b, &w.kinds[k].sum, &w.kinds[k].maps);
    }
    buf_puts(b, "],\"tables\":[");
    for (size_t i = 0; i < w.ntables; i++) {
        if (i)
            buf_putc(b, ',');
        json_table(b, &w.tables[i], NULL);
    }
    buf_printf(b, "],\"maps_total\":%llu,\"tables_listed\":%zu,\"truncated\":%s}\n",
               (unsigned long long)w.total, w.ntables, w.total > w.ntables ? "true" : "false");
    free(w.tables);
}

int debug_add_routes(struct http_server *srv)
{
    return http_route(srv, "/debug/maps", HTTP_ROUTE_EXACT, 0, handle_maps, NULL);
}
