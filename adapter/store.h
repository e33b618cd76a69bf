#ifndef ADAPTER_STORE_H
#define ADAPTER_STORE_H

/*
 * store: the in-memory series store, built on maplib.
 *
 * Three levels of maplib maps, so that a query for one metric in one
 * namespace never scans anything else:
 *
 *     metrics   (metric name)        -> struct store_metric   type, series count
 *       groups  (namespace value)    -> struct store_group    one per (metric, namespace)
 *         series (encoded labels)    -> struct store_series   recent samples
 *
 * A series with no `namespace` label lives in the group whose namespace is
 * "" (label values are never empty, so this cannot clash).
 *
 * Series keys are the series' labels minus __name__ and namespace (the group
 * holds those two), encoded as LEB128 length-prefixed name/value pairs in
 * label order; store_series_label_next() gives the full sorted set back.
 *
 * Samples: every sample whose timestamp is within --rate-window of the
 * newest one is kept (the newest always is), oldest first, in a small inline
 * ring that moves to an RCU-replaced heap block when the window holds more.
 * Writers update a series in place under a per-series lock word; readers
 * never take it: they copy the samples under a per-series seqlock and retry
 * when a writer ran meanwhile, so a snapshot is never torn.
 *
 * Thread model: every function must be called from a registered RCU thread
 * (rcu_register_thread() or ml_thread_online()). The write and reap
 * functions take the read-side lock themselves and must be called OUTSIDE
 * a read-side critical section; the read API below must be called INSIDE one
 * (rcu_read_lock() held), and the pointers it returns are valid until
 * rcu_read_unlock(). Everything is safe to call concurrently from any number
 * of threads unless stated otherwise.
 */

#include <stddef.h>
#include <stdint.h>

#include <maplib/maplib.h>

#include "buf.h"
#include "remote_write.h"

struct store;
struct store_metric;
struct store_group;
struct store_series;

struct store_config {
    uint64_t max_series;            /* live series, all metrics; 0 = no limit */
    uint64_t max_series_per_metric; /* live series of one metric name; 0 = no limit */
    int64_t rate_window_ms;         /* samples kept: newest - window .. newest; 0 = 2 m */
    int64_t series_ttl_ms;          /* reaper deletes series idle this long; 0 = 5 m */
    int64_t reap_interval_ms;       /* reaper period; 0 = 10 s */
    unsigned inline_samples;        /* samples held without a heap block; 0 = window/15 s + 2 */
    int start_reaper;               /* start the background reaper thread in store_new() */
};

/* Why a new series was refused (metrics_adapter_series_refused_total{reason}). */
enum store_refusal {
    STORE_REFUSED_NONE = 0,
    STORE_REFUSED_MAX_SERIES,     /* --max-series */
    STORE_REFUSED_MAX_PER_METRIC, /* --max-series-per-metric */
    STORE_REFUSED_MEMORY,         /* the memory valve's soft level (store_set_refuse_new) */
    STORE_REFUSED_NO_RULE,        /* the admission hook (store_set_admit) does not want it: not an error */
    STORE_REFUSED_COUNT
};

/* "max_series", "max_series_per_metric", "memory", "no_rule". */
const char *store_refusal_str(enum store_refusal r);

/*
 * Per-request tally: store_write() adds to it, store_tally_flush() adds it to
 * the store's counters once per request (no shared-counter traffic per
 * series). Zero-initialise it.
 */
struct store_tally {
    uint64_t accepted;     /* samples stored (stale markers that deleted a series included) */
    uint64_t out_of_order; /* not newer than the newest held: dropped, not an error */
    uint64_t refused;      /* samples of series refused by a limit */
    uint64_t unwanted;     /* samples of new series the admission hook turned away */
    uint64_t invalid;      /* samples of series the decoder flagged invalid (ingest counts these) */
    uint64_t stale_absent; /* stale markers for series not held: nothing to do */
    uint64_t refused_series[STORE_REFUSED_COUNT];
};

/*
 * store_new - create a store (and start its reaper if cfg->start_reaper).
 * Returns 0 or -ENOMEM/-EINVAL; *out is written only on success.
 * Call from a registered thread, outside a read-side critical section.
 */
int store_new(const struct store_config *cfg, struct store **out);

/*
 * store_free - stop the reaper, delete everything, wait for every reclaim
 * callback (rcu_barrier) and free the store. No other thread may use it.
 */
void store_free(struct store *st);

/*
 * store_write - apply one series' samples.
 * @labels, @nlabels: sorted by name, valid (the decoder checked), including
 *       __name__; drop-labels already removed. Only read during the call.
 * @samples, @nsamples: in the order sent.
 * @t: the request's tally, updated.
 *
 * Rules: a sample not newer than the newest held is dropped (t->out_of_order).
 * A stale marker (api_is_stale_nan) newer than the newest held deletes the
 * series at once (reclaimed after a grace period); later samples in the same
 * call, or later calls, create it again. A stale marker for a series not held
 * does nothing. Other NaNs are values. A new series beyond a limit is refused:
 * its samples are not stored (existing series always keep updating).
 *
 * Returns STORE_REFUSED_NONE (0), or the enum store_refusal that refused the
 * series, or -EINVAL when __name__ is missing.
 * Call outside a read-side critical section.
 */
int store_write(struct store *st, const struct api_rw_label *labels, size_t nlabels,
                const struct api_rw_sample *samples, size_t nsamples, struct store_tally *t);

/* Add a request's tally to the store's counters and zero it. */
void store_tally_flush(struct store *st, struct store_tally *t);

/*
 * store_set_metric_type - remember the type remote-write metadata gave for a
 * metric name (enum api_rw_metric_type): on the metric entry if there is one,
 * and in a table of at most STORE_MAX_TYPES names that a metric entry takes
 * its type from when it is created (a full table keeps what it holds). No
 * metric entry is created. The reaper drops a name metadata has not repeated
 * for the series TTL. UNKNOWN is ignored. Call outside a read-side critical
 * section.
 */
#define STORE_MAX_TYPES 8192
void store_set_metric_type(struct store *st, const char *name, size_t len, int type);

/*
 * store_admit_fn - decides whether a NEW series is kept (with a --config, series
 * no rule can use are dropped at ingest). Called by store_write() only when it
 * is about to create a series, never for updates of existing ones, inside a
 * read-side critical section; it must not block. @labels: sorted, __name__
 * included (not NUL-terminated); @type: the metric's enum api_rw_metric_type
 * from metadata, UNKNOWN when never told. Returns nonzero to keep the series.
 */
typedef int (*store_admit_fn)(void *ctx, const struct api_rw_label *labels, size_t nlabels, int type);

/*
 * store_set_admit - install (or, with NULL, remove) the admission hook. Call
 * before writers start (not synchronised with store_write()).
 */
void store_set_admit(struct store *st, store_admit_fn fn, void *ctx);

/*
 * store_set_refuse_new - the memory valve's soft level: while on, every new
 * series is refused with STORE_REFUSED_MEMORY. Safe from any thread.
 */
void store_set_refuse_new(struct store *st, int on);

/*
 * store_reap - delete series whose newest sample is older than now_ms - ttl,
 * then remove empty groups and metric entries that hold neither groups nor a
 * type. Returns the number of series deleted. Read-side sections are kept to
 * one group at a time. Serialised internally (one reap at a time).
 * Call outside a read-side critical section. The reaper thread calls it with
 * the wall clock; tests inject their own clock.
 */
uint64_t store_reap(struct store *st, int64_t now_ms);

/*
 * The effective --series-ttl and --rate-window (defaults applied). Serving code must not
 * serve a series whose newest sample is older than now - ttl: the reaper only runs every
 * --reap-interval, so such a series may still be linked for a moment.
 */
int64_t store_series_ttl_ms(const struct store *st);
int64_t store_rate_window_ms(const struct store *st);

/*
 * store_set_rate_window - keep samples for max(--rate-window, @ms): the
 * longest window a rule reads (a prometheus-adapter config with rate(...[5m])
 * needs 5 m of samples). Takes effect as series are next written (a longer
 * window fills up over that window, a shorter one trims on the next sample).
 * Cheap when unchanged; safe from any thread.
 */
void store_set_rate_window(struct store *st, int64_t ms);

/* Wake the reaper thread for an immediate pass (memory valve). Safe from any thread. */
void store_reap_now(struct store *st);

/* Number of completed reaper passes (tests wait on it). */
uint64_t store_reap_passes(struct store *st);

/*
 * store_compact - move every live series into packed memory now (region.h).
 * The reaper does it by itself after a mass delete: when the live series fall
 * to half their peak since the last compaction, and by at least 65,536.
 * Returns the number of series moved. Safe from any registered thread outside
 * a read-side critical section; concurrent writes and reads go on (a writer
 * waits for one series' lock at most for one copy).
 */
uint64_t store_compact(struct store *st);

/* ------------------------------------------------------------------------- */
/* Read API: every function below needs rcu_read_lock() held.                 */
/* ------------------------------------------------------------------------- */

/* Iteration state, for groups and series alike. Private fields. */
struct store_iter {
    struct ml_iter _it;
};

/* A metric entry by name, or NULL. */
struct store_metric *store_metric_lookup(struct store *st, const char *name, size_t len);
/* Every metric entry (known names: discovery). Entries may hold no series (type only). */
struct store_metric *store_metric_first(struct store *st, struct store_iter *it);
struct store_metric *store_metric_next(struct store *st, struct store_iter *it);
/* The metric's name (NUL-terminated) and length. */
const char *store_metric_name(const struct store_metric *m, size_t *len);
/* enum api_rw_metric_type from metadata; API_RW_TYPE_UNKNOWN if never told. */
int store_metric_type(const struct store_metric *m);
/* Live series of this metric, all namespaces (relaxed read). */
uint64_t store_metric_series(const struct store_metric *m);

/* The group (metric, namespace), or NULL. ns "" (len 0) is the group of series without a namespace. */
struct store_group *store_group_lookup(struct store *st, const char *metric, size_t mlen, const char *ns,
                                       size_t nslen);
/* Every group of a metric (namespaced wildcard, external reads). */
struct store_group *store_group_first(struct store_metric *m, struct store_iter *it);
struct store_group *store_group_next(struct store_metric *m, struct store_iter *it);
/* The group's namespace (NUL-terminated, "" when none) and its metric. */
const char *store_group_namespace(const struct store_group *g, size_t *len);
struct store_metric *store_group_metric(const struct store_group *g);
/* Live series in the group (relaxed read). */
uint64_t store_group_series(const struct store_group *g);

/* Every series of a group. */
struct store_series *store_series_first(struct store_group *g, struct store_iter *it);
struct store_series *store_series_next(struct store_group *g, struct store_iter *it);
struct store_group *store_series_group(const struct store_series *s);

/*
 * Labels of a series, in sorted order, __name__ and namespace included:
 *
 *     struct store_label_iter li;
 *     struct api_rw_label l;
 *     store_series_labels(s, &li);
 *     while (store_series_label_next(&li, &l)) ...
 *
 * Strings point into the series and its group and are NOT NUL-terminated.
 */
struct store_label_iter {
    const uint8_t *_p, *_end;
    const struct store_group *_g;
    unsigned _emitted; /* bit 0: __name__, bit 1: namespace */
};
void store_series_labels(const struct store_series *s, struct store_label_iter *li);
int store_series_label_next(struct store_label_iter *li, struct api_rw_label *out);
/* The value of label @name (NUL-terminated name): 1 and @value, @len set (pointing into the
 * series, not NUL-terminated), or 0 when the series has no such label. */
int store_series_label(const struct store_series *s, const char *name, const char **value, size_t *len);

/* Timestamp (Unix ms) of the newest sample (relaxed read; 0 for a series just created). */
int64_t store_series_newest(const struct store_series *s);

/*
 * store_series_snapshot - copy a consistent snapshot of the samples, oldest
 * first, newest last. Copies the newest min(held, max) samples into @out and
 * returns how many are held; if that is more than @max, call again with a
 * bigger buffer for the whole window. Never torn: a sample set that some
 * writer actually left in place. Lock-free on the read side (retries while a
 * writer runs).
 */
size_t store_series_snapshot(const struct store_series *s, struct api_rw_sample *out, size_t max);

/*
 * store_group_generation - for one group: out[0] changes whenever any group
 * is unlinked (so a new group at a reused address never matches an old
 * reading), out[1] whenever a series of @g is added or unlinked (bumped
 * before the unlink). While both still equal a reading taken in an earlier
 * read-side section, series pointers of @g collected in that section (after
 * the reading) are still live. out[1] is STORE_GEN_UNLINKING while an unlink
 * in @g is between its bump and its unlink: what a walk finds then may be
 * freed after the section ends, so it must not be kept (a reading with that
 * value never matches). Call with rcu_read_lock held (@g from this section).
 */
#define STORE_GEN_UNLINKING UINT64_MAX
void store_group_generation(struct store *st, const struct store_group *g, uint64_t out[2]);

/* Largest number of samples a series ever holds (the ring is capped there, oldest dropped). */
#define STORE_MAX_SAMPLES 4096

/* ------------------------------------------------------------------------- */
/* Counters                                                                   */
/* ------------------------------------------------------------------------- */

struct store_stats {
    uint64_t series_live, groups_live, metrics_live;
    uint64_t series_created, deleted_stale, deleted_ttl;
    uint64_t refused[STORE_REFUSED_COUNT];
    uint64_t samples_accepted, dropped_out_of_order, dropped_refused, dropped_invalid, dropped_unwanted,
        stale_absent;
    uint64_t heap_blocks; /* series whose window outgrew the inline ring */
    uint64_t reap_passes;
    uint64_t moved, compactions; /* store_compact(): series moved, passes */
    uint64_t types_live;         /* names in the metadata type table (<= STORE_MAX_TYPES) */
    uint64_t types_refused;      /* metadata for names not held, dropped because the table was full */
};
void store_get_stats(struct store *st, struct store_stats *out);

/*
 * store_collect - a selfmetrics collector (selfmetrics_register(store_collect, st)): appends the
 * store's counters and maplib's numbers for the series tables in text format. Safe from any
 * registered thread, outside a read-side critical section.
 */
void store_collect(void *st, struct buf *out);

#endif /* ADAPTER_STORE_H */
