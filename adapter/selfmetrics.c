/*
 * selfmetrics: /metrics, /healthz, /livez.
 *
 * DESIGN: hot-path numbers are static struct sm_counter objects that their
 * modules bump with relaxed atomic adds; the exposition only needs each value
 * to be some recent value, never a consistent snapshot across counters, so
 * no ordering is required. The counters form a singly linked list built by
 * constructors before main() (and by sm_counter_register() later, under the
 * registry mutex). Everything else is pulled at scrape time by collectors.
 *
 * A scrape holds the registry mutex while it runs the collectors, which is
 * what makes selfmetrics_unregister() a barrier: once it returns, the
 * collector's context may be freed. Scrapes are rare (seconds apart), so
 * serialising them costs nothing.
 */
#include "selfmetrics.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <maplib/maplib.h>

#include "expo.h"
#include "http.h"

#ifndef MA_VERSION
#define MA_VERSION "0.0.0-dev"
#endif

struct collector {
    selfmetrics_collect_fn fn;
    void *ctx;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sm_counter *counters;     /* list head; guarded by reg_mu */
static struct sm_histogram *histograms; /* list head; guarded by reg_mu */
static struct collector *collectors;
static size_t ncollectors, capcollectors;
static double start_time_s;

void sm_counter_register(struct sm_counter *c)
{
    pthread_mutex_lock(&reg_mu);
    c->_next = counters;
    counters = c;
    pthread_mutex_unlock(&reg_mu);
}

void sm_histogram_register(struct sm_histogram *h)
{
    pthread_mutex_lock(&reg_mu);
    h->_next = histograms;
    histograms = h;
    pthread_mutex_unlock(&reg_mu);
}

void sm_observe(struct sm_histogram *h, double v)
{
    unsigned i = 0;
    while (i < h->nbounds && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    /* The sum is a double: add by CAS on its bits. Observations are rare
     * enough (per request at most) that the loop almost never repeats. */
    uint64_t old = atomic_load_explicit(&h->sum_bits, memory_order_relaxed), nw;
    do {
        double d;
        memcpy(&d, &old, sizeof(d));
        d += v;
        memcpy(&nw, &d, sizeof(nw));
    } while (!atomic_compare_exchange_weak_explicit(&h->sum_bits, &old, nw, memory_order_relaxed,
                                                    memory_order_relaxed));
}

int selfmetrics_register(selfmetrics_collect_fn collect, void *ctx)
{
    int rc = 0;
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < ncollectors; i++) {
        if (collectors[i].fn == collect && collectors[i].ctx == ctx) {
            rc = -EEXIST;
            goto out;
        }
    }
    if (ncollectors == capcollectors) {
        size_t ncap = capcollectors ? capcollectors * 2 : 8;
        struct collector *n = realloc(collectors, ncap * sizeof(*n));
        if (!n) {
            rc = -ENOMEM;
            goto out;
        }
        collectors = n;
        capcollectors = ncap;
    }
    collectors[ncollectors].fn = collect;
    collectors[ncollectors].ctx = ctx;
    ncollectors++;
out:
    pthread_mutex_unlock(&reg_mu);
    return rc;
}

void selfmetrics_unregister(selfmetrics_collect_fn collect, void *ctx)
{
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < ncollectors; i++) {
        if (collectors[i].fn == collect && collectors[i].ctx == ctx) {
            memmove(&collectors[i], &collectors[i + 1], (ncollectors - i - 1) * sizeof(*collectors));
            ncollectors--;
            break;
        }
    }
    pthread_mutex_unlock(&reg_mu);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Boot time from /proc/stat ("btime N"), 0 if unknown. */
static double boot_time_s(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return 0;
    char line[256];
    double bt = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long v;
        if (sscanf(line, "btime %llu", &v) == 1) {
            bt = (double)v;
            break;
        }
    }
    fclose(f);
    return bt;
}

struct proc_stat {
    double cpu_s;
    double start_s; /* since boot */
    uint64_t vsize;
    uint64_t rss;
};

/* Fields 14, 15 (utime, stime), 22 (starttime), 23 (vsize), 24 (rss pages) of /proc/self/stat. */
static int read_proc_stat(struct proc_stat *ps)
{
    char data[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return -errno;
    size_t n = fread(data, 1, sizeof(data) - 1, f);
    fclose(f);
    data[n] = '\0';
    /* The command name may contain spaces and parentheses: start after the last ')'. */
    char *p = strrchr(data, ')');
    if (!p)
        return -EINVAL;
    unsigned long long utime, stime, starttime, vsize;
    long long rss;
    /* After ')': state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14)... */
    int got = sscanf(
        p + 1,
        " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu %llu %lld",
        &utime, &stime, &starttime, &vsize, &rss);
    if (got != 5)
        return -EINVAL;
    double hz = (double)sysconf(_SC_CLK_TCK);
    ps->cpu_s = (double)(utime + stime) / hz;
    ps->start_s = (double)starttime / hz;
    ps->vsize = vsize;
    ps->rss = (uint64_t)(rss < 0 ? 0 : rss) * (uint64_t)sysconf(_SC_PAGESIZE);
    return 0;
}

static uint64_t count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    uint64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n ? n - 1 : 0; /* the directory's own fd */
}

void selfmetrics_init(void)
{
    struct proc_stat ps;
    double bt = boot_time_s();
    if (bt > 0 && read_proc_stat(&ps) == 0)
        start_time_s = bt + ps.start_s;
    else
        start_time_s = now_s();
}

void selfmetrics_shutdown(void)
{
    pthread_mutex_lock(&reg_mu);
    free(collectors);
    collectors = NULL;
    ncollectors = capcollectors = 0;
    pthread_mutex_unlock(&reg_mu);
}

static void render_process(struct buf *out)
{
    struct proc_stat ps;
    if (read_proc_stat(&ps) == 0) {
        expo_header(out, "process_cpu_seconds_total", "counter",
                    "Total user and system CPU time spent in seconds.");
        expo_sample(out, "process_cpu_seconds_total", NULL, ps.cpu_s);
        expo_header(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        expo_sample_u64(out, "process_resident_memory_bytes", NULL, ps.rss);
        expo_header(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
        expo_sample_u64(out, "process_virtual_memory_bytes", NULL, ps.vsize);
    }
    expo_header(out, "process_start_time_seconds", "gauge",
                "Start time of the process since unix epoch in seconds.");
    expo_sample(out, "process_start_time_seconds", NULL, start_time_s);
    expo_header(out, "process_open_fds", "gauge", "Number of open file descriptors.");
    expo_sample_u64(out, "process_open_fds", NULL, count_open_fds());
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        expo_header(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        expo_sample_u64(out, "process_max_fds", NULL, (uint64_t)rl.rlim_cur);
    }
    const char *bi[] = {"version", MA_VERSION, NULL};
    expo_header(out, "metrics_adapter_build_info", "gauge",
                "A metric with a constant 1 labelled by the build version.");
    expo_sample_u64(out, "metrics_adapter_build_info", bi, 1);
}

/* maplib's counters per kind of table (map name), copied out under maplib's lock, rendered after. */
#define MAX_KINDS 16
struct kinds {
    unsigned n;
    char name[MAX_KINDS][48];
    struct ml_stats st[MAX_KINDS];
};

static void kind_cb(void *ctx, const char *name, const struct ml_stats *st)
{
    struct kinds *k = ctx;
    if (k->n == MAX_KINDS)
        return;
    snprintf(k->name[k->n], sizeof(k->name[0]), "%s", name[0] ? name : "unnamed");
    k->st[k->n++] = *st;
}

static void render_map_kinds(struct buf *out)
{
    struct kinds k = {0};
    ml_stats_by_name(kind_cb, &k);
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } rows[] = {
        {"metrics_adapter_map_table_live_entries", "gauge", "Entries linked, by kind of maplib table.",
         offsetof(struct ml_stats, live)},
        {"metrics_adapter_map_table_pending_entries", "gauge",
         "Entries unlinked and waiting for an RCU grace period, by kind of maplib table.",
         offsetof(struct ml_stats, pending)},
        {"metrics_adapter_map_table_reclaimed_entries_total", "counter",
         "Entries freed after their grace period, by kind of maplib table.",
         offsetof(struct ml_stats, reclaimed)},
        {"metrics_adapter_map_table_inserts_total", "counter", "Inserts, by kind of maplib table.",
         offsetof(struct ml_stats, inserts)},
        {"metrics_adapter_map_table_deletes_total", "counter", "Unlinks, by kind of maplib table.",
         offsetof(struct ml_stats, deletes)},
        {"metrics_adapter_map_table_buckets", "gauge", "Buckets of the live tables, by kind of maplib table.",
         offsetof(struct ml_stats, buckets)},
        {"metrics_adapter_map_table_resizes_total", "counter", "Resizes, by kind of maplib table.",
         offsetof(struct ml_stats, resizes)},
    };
    if (!k.n)
        return;
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        expo_header(out, rows[r].name, rows[r].type, rows[r].help);
        for (unsigned i = 0; i < k.n; i++) {
            const char *lv[] = {"table", k.name[i], NULL};
            expo_sample_u64(out, rows[r].name, lv, *(const uint64_t *)((const char *)&k.st[i] + rows[r].off));
        }
    }
}

static void render_maplib(struct buf *out)
{
    struct ml_stats st;
    ml_stats_total(&st);
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } rows[] = {
        {"metrics_adapter_map_live_entries", "gauge", "Entries linked in maplib's tables.",
         offsetof(struct ml_stats, live)},
        {"metrics_adapter_map_pending_entries", "gauge",
         "Entries unlinked from maplib's tables and waiting for an RCU grace period.",
         offsetof(struct ml_stats, pending)},
        {"metrics_adapter_map_reclaimed_entries_total", "counter", "Entries freed after their grace period.",
         offsetof(struct ml_stats, reclaimed)},
        {"metrics_adapter_map_inserts_total", "counter", "Successful inserts into maplib's tables.",
         offsetof(struct ml_stats, inserts)},
        {"metrics_adapter_map_deletes_total", "counter", "Successful unlinks from maplib's tables.",
         offsetof(struct ml_stats, deletes)},
        {"metrics_adapter_map_buckets", "gauge", "Buckets in maplib's tables, as last resized.",
         offsetof(struct ml_stats, buckets)},
        {"metrics_adapter_map_resizes_total", "counter", "Resizes of maplib's tables.",
         offsetof(struct ml_stats, resizes)},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        expo_header(out, rows[i].name, rows[i].type, rows[i].help);
        expo_sample_u64(out, rows[i].name, NULL, *(const uint64_t *)((const char *)&st + rows[i].off));
    }
    render_map_kinds(out);
}

/*
 * Static counters, grouped by name: one header per family, in order of first
 * appearance. n is small (dozens), so the quadratic walk is fine.
 */
static void render_counters(struct buf *out)
{
    for (struct sm_counter *c = counters; c; c = c->_next) {
        int seen = 0;
        for (struct sm_counter *p = counters; p != c; p = p->_next) {
            if (strcmp(p->name, c->name) == 0) {
                seen = 1;
                break;
            }
        }
        if (seen)
            continue;
        expo_header(out, c->name, c->type, c->help);
        for (struct sm_counter *m = c; m; m = m->_next)
            if (strcmp(m->name, c->name) == 0)
                expo_sample_raw(out, m->name, m->labels, sm_get(m));
    }
}

/* One histogram's series: cumulative buckets, sum, count. */
static void render_histogram(struct buf *out, struct sm_histogram *h)
{
    char bucket[128], sum[128], count[128];
    snprintf(bucket, sizeof(bucket), "%s_bucket", h->name);
    snprintf(sum, sizeof(sum), "%s_sum", h->name);
    snprintf(count, sizeof(count), "%s_count", h->name);
    const char *pre = h->labels && *h->labels ? h->labels : NULL;
    uint64_t cum = 0;
    for (unsigned i = 0; i <= h->nbounds; i++) {
        cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        buf_puts(out, bucket);
        buf_putc(out, '{');
        if (pre) {
            buf_puts(out, pre);
            buf_putc(out, ',');
        }
        buf_puts(out, "le=\"");
        if (i == h->nbounds)
            buf_puts(out, "+Inf");
        else
            expo_double(out, h->bounds[i]);
        buf_printf(out, "\"} %llu\n", (unsigned long long)cum);
    }
    uint64_t bits = atomic_load_explicit(&h->sum_bits, memory_order_relaxed);
    double d;
    memcpy(&d, &bits, sizeof(d));
    buf_puts(out, sum);
    if (pre)
        buf_printf(out, "{%s}", pre);
    buf_putc(out, ' ');
    expo_double(out, d);
    buf_putc(out, '\n');
    expo_sample_raw(out, count, pre, cum);
}

/* Static histograms, grouped by name like the counters. */
static void render_histograms(struct buf *out)
{
    for (struct sm_histogram *h = histograms; h; h = h->_next) {
        int seen = 0;
        for (struct sm_histogram *p = histograms; p != h; p = p->_next) {
            if (strcmp(p->name, h->name) == 0) {
                seen = 1;
                break;
            }
        }
        if (seen)
            continue;
        expo_header(out, h->name, "histogram", h->help);
        for (struct sm_histogram *m = h; m; m = m->_next)
            if (strcmp(m->name, h->name) == 0)
                render_histogram(out, m);
    }
}

void selfmetrics_render(struct buf *out)
{
    render_process(out);
    render_maplib(out);
    pthread_mutex_lock(&reg_mu);
    render_counters(out);
    render_histograms(out);
    for (size_t i = 0; i < ncollectors; i++)
        collectors[i].fn(collectors[i].ctx, out);
    pthread_mutex_unlock(&reg_mu);
}

static int method_get(const struct http_request *req, struct http_response *resp)
{
    if (strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0)
        return 1;
    resp->status = 405;
    http_resp_header(resp, "Allow", "GET, HEAD");
    buf_puts(&resp->body, "method not allowed\n");
    return 0;
}

#define SCRAPES_HELP "Scrapes of /metrics, by the format negotiated from the Accept header."
SM_COUNTER(sm_c_scrape_text, "metrics_adapter_metrics_scrapes_total", "format=\"text\"", SCRAPES_HELP)
SM_COUNTER(sm_c_scrape_om, "metrics_adapter_metrics_scrapes_total", "format=\"openmetrics\"", SCRAPES_HELP)
SM_COUNTER(sm_c_scrape_gzip, "metrics_adapter_metrics_scrapes_gzip_total", NULL,
           "Scrapes of /metrics answered gzip-compressed.")

/*
 * The exposition is rendered into memory first and queued by http after the
 * handler returns: no collector's read-side section is ever open while the
 * socket is written (DESIGN 4a).
 */
static void handle_metrics(void *ctx, const struct http_request *req, struct http_response *resp)
{
    (void)ctx;
    if (!method_get(req, resp))
        return;
    enum expo_format fmt = expo_negotiate(http_header(req, "Accept"));
    /* Counted before rendering, so that a scrape sees itself. */
    sm_inc(fmt == EXPO_OPENMETRICS ? &sm_c_scrape_om : &sm_c_scrape_text);
    struct buf text = BUF_INIT;
    selfmetrics_render(&text);
    struct buf *body = &text, om = BUF_INIT;
    if (fmt == EXPO_OPENMETRICS) {
        expo_to_openmetrics(text.data ? text.data : "", text.len, &om);
        body = &om;
        resp->content_type = EXPO_OM_CONTENT_TYPE;
    } else {
        resp->content_type = EXPO_CONTENT_TYPE;
    }
    if (expo_accepts_gzip(http_header(req, "Accept-Encoding")) &&
        expo_gzip(body->data ? body->data : "", body->len, &resp->body) == 0) {
        sm_inc(&sm_c_scrape_gzip);
        http_resp_header(resp, "Content-Encoding", "gzip");
    } else {
        buf_append(&resp->body, body->data ? body->data : "", body->len);
    }
    http_resp_header(resp, "Vary", "Accept, Accept-Encoding");
    buf_free(&text);
    buf_free(&om);
}

static void handle_health(void *ctx, const struct http_request *req, struct http_response *resp)
{
    if (!method_get(req, resp))
        return;
    buf_puts(&resp->body, "ok");
}

int selfmetrics_add_routes(struct http_server *srv)
{
    int rc;
    if ((rc = http_route(srv, "/metrics", HTTP_ROUTE_EXACT, 0, handle_metrics, NULL)))
        return rc;
    if ((rc = http_route(srv, "/healthz", HTTP_ROUTE_EXACT, 0, handle_health, NULL)))
        return rc;
    return http_route(srv, "/livez", HTTP_ROUTE_EXACT, 0, handle_health, NULL);
}
