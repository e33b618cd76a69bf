#ifndef ADAPTER_SELFMETRICS_H
#define ADAPTER_SELFMETRICS_H

/*
 * selfmetrics: the adapter's own /metrics (Prometheus text format 0.0.4).
 *
 * Two ways to export a number:
 *
 *  1. Static counters for hot paths, declared at file scope in the module that
 *     owns them and registered automatically before main():
 *
 *         SM_COUNTER(ingest_dup, "metrics_adapter_ingest_samples_dropped_total",
 *                    "reason=\"duplicate\"", "Samples dropped at ingest, by reason.");
 *         ...
 *         sm_inc(&ingest_dup);          // relaxed atomic add, no lock
 *
 *     Counters that share a name (different label sets) are written under one
 *     HELP/TYPE header; give them the same help text.
 *
 *  2. Collectors, called at scrape time, for values read from a structure
 *     (store sizes, maplib totals):
 *
 *         selfmetrics_register(store_collect, store);   // before http_start()
 *         ...
 *         selfmetrics_unregister(store_collect, store); // before freeing store
 *
 *     A collector appends complete families with api/expo.h's helpers. It runs
 *     on an HTTP pool thread that is a registered RCU reader, outside any
 *     read-side critical section (it may take rcu_read_lock() itself; it must
 *     not hold it across anything slow).
 *
 * Built in: process_* (resident and virtual memory, CPU seconds, start time,
 * open and max fds), metrics_adapter_build_info, and maplib's totals from
 * ml_stats_total() as metrics_adapter_map_*.
 *
 * Thread safety: sm_inc/sm_add/sm_set are safe anywhere (relaxed atomics);
 * register/unregister and selfmetrics_render() are safe from any thread
 * (a mutex serialises them, so a collector never runs after it returns from
 * selfmetrics_unregister()).
 */

#include <stdatomic.h>
#include <stdint.h>

#include "buf.h"

struct http_server;

struct sm_counter {
    const char *name;   /* metric name */
    const char *labels; /* label text between braces, e.g. `reason="duplicate"`; NULL for none */
    const char *help;
    const char *type; /* "counter" or "gauge" */
    _Atomic uint64_t value;
    struct sm_counter *_next; /* private */
};

#define SM_COUNTER_INIT(name, labels, help)                                                                  \
    {                                                                                                        \
        (name), (labels), (help), "counter", 0, NULL                                                         \
    }
#define SM_GAUGE_INIT(name, labels, help)                                                                    \
    {                                                                                                        \
        (name), (labels), (help), "gauge", 0, NULL                                                           \
    }

/* Declare a counter (or gauge) at file scope and register it before main(). */
#define SM_COUNTER(var, name, labels, help) SM__DEFINE(var, SM_COUNTER_INIT(name, labels, help))
#define SM_GAUGE(var, name, labels, help)   SM__DEFINE(var, SM_GAUGE_INIT(name, labels, help))
#define SM__DEFINE(var, init)                                                                                \
    struct sm_counter var = init;                                                                            \
    static void __attribute__((constructor)) var##__sm_register(void)                                        \
    {                                                                                                        \
        sm_counter_register(&var);                                                                           \
    }

static inline void sm_add(struct sm_counter *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}
static inline void sm_inc(struct sm_counter *c)
{
    sm_add(c, 1);
}
/* For gauges. */
static inline void sm_set(struct sm_counter *c, uint64_t v)
{
    atomic_store_explicit(&c->value, v, memory_order_relaxed);
}
static inline void sm_sub(struct sm_counter *c, uint64_t n)
{
    atomic_fetch_sub_explicit(&c->value, n, memory_order_relaxed);
}
static inline uint64_t sm_get(struct sm_counter *c)
{
    return atomic_load_explicit(&c->value, memory_order_relaxed);
}

/*
 * Histograms: fixed upper bounds (ascending, +Inf implied), one relaxed
 * atomic per bucket and the sum kept as double bits updated by CAS, so an
 * observation takes no lock. A scrape reads each word once: count, sum and
 * buckets may be a few observations apart, which Prometheus tolerates (the
 * buckets are written cumulatively from the per-bucket counts, so they stay
 * monotonic).
 *
 *     static const double lat_bounds[] = {0.001, 0.01, 0.1, 1};
 *     SM_HISTOGRAM(h_lat, "metrics_adapter_x_seconds", NULL, "Help.", lat_bounds, 4)
 *     sm_observe(&h_lat, 0.003);
 */
#define SM_HIST_MAX_BOUNDS 16
struct sm_histogram {
    const char *name; /* family name, without _bucket/_sum/_count */
    const char *labels;
    const char *help;
    const double *bounds;
    unsigned nbounds;                                /* <= SM_HIST_MAX_BOUNDS */
    _Atomic uint64_t counts[SM_HIST_MAX_BOUNDS + 1]; /* per bucket, not cumulative; last is +Inf */
    _Atomic uint64_t sum_bits;                       /* a double's bits */
    struct sm_histogram *_next;                      /* private */
};
#define SM_HISTOGRAM(var, name, labels, help, bounds, nbounds)                                               \
    struct sm_histogram var = {(name), (labels), (help), (bounds), (nbounds), {0}, 0, NULL};                 \
    static void __attribute__((constructor)) var##__sm_register(void)                                        \
    {                                                                                                        \
        sm_histogram_register(&var);                                                                         \
    }
void sm_histogram_register(struct sm_histogram *h);
/* Record one observation: relaxed atomics, no lock. */
void sm_observe(struct sm_histogram *h, double v);

/* Add a counter that is not declared with SM_COUNTER (it must outlive the process's scrapes). */
void sm_counter_register(struct sm_counter *c);

typedef void (*selfmetrics_collect_fn)(void *ctx, struct buf *out);

/* Add a collector; returns 0 or -ENOMEM. The same (fn, ctx) may be added once. */
int selfmetrics_register(selfmetrics_collect_fn collect, void *ctx);
/* Remove it; when this returns the collector is not running and will not run again. */
void selfmetrics_unregister(selfmetrics_collect_fn collect, void *ctx);

/* Record the start time (call early in main). */
void selfmetrics_init(void);
/* Drop every collector (at exit). Static counters stay. */
void selfmetrics_shutdown(void);

/* Append the whole exposition to @out: built-ins, static counters, collectors. */
void selfmetrics_render(struct buf *out);

/*
 * selfmetrics_add_routes - serve GET /metrics, and GET /healthz and /livez
 * ("ok") on @srv. Other methods get 405. Returns 0 or a negative errno.
 */
int selfmetrics_add_routes(struct http_server *srv);

#endif /* ADAPTER_SELFMETRICS_H */
