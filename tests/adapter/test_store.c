/*
 * Unit tests of the series store: sample rules, stale markers, TTL reaping
 * with an injected clock, empty group removal, limits, metric types and the
 * read API. Single-threaded; the concurrent cases are in test_store_stress.c.
 */

#include <math.h>
#include <unistd.h>

#include "region.h"
#include "test_store.h"

static struct store *new_store(uint64_t max_series, uint64_t per_metric, unsigned inl)
{
    struct store_config cfg = {
        .max_series = max_series,
        .max_series_per_metric = per_metric,
        .rate_window_ms = 120000,
        .series_ttl_ms = 300000,
        .inline_samples = inl,
    };
    struct store *st;
    CHECK_EQ(store_new(&cfg, &st), 0);
    return st;
}

static struct store_series *find(struct store *st, const char *metric, const char *ns, const char *pod)
{
    struct store_group *g = store_group_lookup(st, metric, strlen(metric), ns, strlen(ns));
    if (!g)
        return NULL;
    struct store_iter it;
    for (struct store_series *s = store_series_first(g, &it); s; s = store_series_next(g, &it)) {
        const char *v;
        size_t len;
        if (!pod || (store_series_label(s, "pod", &v, &len) && len == strlen(pod) && !memcmp(v, pod, len)))
            return s;
    }
    return NULL;
}

static size_t snap(struct store *st, const char *metric, const char *ns, const char *pod,
                   struct api_rw_sample *out, size_t max)
{
    rcu_read_lock();
    struct store_series *s = find(st, metric, ns, pod);
    size_t n = s ? store_series_snapshot(s, out, max) : 0;
    rcu_read_unlock();
    return n;
}

static void test_create_update_out_of_order(void)
{
    struct store *st = new_store(0, 0, 0);
    struct t_labels ls;
    struct store_stats ss;
    struct api_rw_sample out[16];

    T_LABELS(&ls, "__name__", "http_requests_total", "namespace", "ns1", "pod", "p1");
    CHECK_EQ(t_write1(st, &ls, 1000, 1.0), 0);
    CHECK_EQ(t_write1(st, &ls, 2000, 2.0), 0);
    CHECK_EQ(t_write1(st, &ls, 2000, 9.0), 0); /* duplicate: dropped */
    CHECK_EQ(t_write1(st, &ls, 1500, 9.0), 0); /* out of order: dropped */
    CHECK_EQ(t_write1(st, &ls, 3000, 3.0), 0);
    store_get_stats(st, &ss);
    CHECK_EQ(ss.series_live, 1);
    CHECK_EQ(ss.groups_live, 1);
    CHECK_EQ(ss.series_created, 1);
    CHECK_EQ(ss.samples_accepted, 3);
    CHECK_EQ(ss.dropped_out_of_order, 2);

    CHECK_EQ(snap(st, "http_requests_total", "ns1", "p1", out, 16), 3);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(out[i].timestamp_ms, 1000 * (i + 1));
        CHECK(out[i].value == (double)(i + 1));
    }
    /* A smaller buffer gets the newest samples, newest last, and the count held. */
    CHECK_EQ(snap(st, "http_requests_total", "ns1", "p1", out, 2), 3);
    CHECK_EQ(out[0].timestamp_ms, 2000);
    CHECK_EQ(out[1].timestamp_ms, 3000);

    /* Many samples in one call: one series write. */
    struct api_rw_sample many[3] = {{4.0, 4000}, {4.5, 3500}, {5.0, 5000}};
    struct store_tally t = {0};
    CHECK_EQ(store_write(st, ls.l, ls.n, many, 3, &t), 0);
    CHECK_EQ(t.accepted, 2);
    CHECK_EQ(t.out_of_order, 1);
    store_tally_flush(st, &t);
    CHECK_EQ(t.accepted, 0);
    CHECK_EQ(snap(st, "http_requests_total", "ns1", "p1", out, 16), 5);
    CHECK_EQ(out[4].timestamp_ms, 5000);

    /* Labels come back sorted, __name__ and namespace included. */
    rcu_read_lock();
    struct store_series *s = find(st, "http_requests_total", "ns1", "p1");
    CHECK(s);
    CHECK_EQ(store_series_newest(s), 5000);
    struct store_label_iter li;
    struct api_rw_label l;
    size_t i = 0;
    store_series_labels(s, &li);
    while (store_series_label_next(&li, &l)) {
        CHECK(i < ls.n);
        CHECK_MEM(l.name, l.name_len, ls.l[i].name);
        CHECK_MEM(l.value, l.value_len, ls.l[i].value);
        i++;
    }
    CHECK_EQ(i, ls.n);
    rcu_read_unlock();

    /* No __name__: -EINVAL. */
    T_LABELS(&ls, "job", "x");
    CHECK_EQ(t_write1(st, &ls, 1000, 1.0), -EINVAL);
    store_free(st);
}

static void test_labels_order_and_no_namespace(void)
{
    struct store *st = new_store(0, 0, 0);
    struct t_labels ls;
    /* Upper-case names sort before "__name__"; no namespace label: group "". */
    T_LABELS(&ls, "A", "1", "Zz", "2", "__name__", "up", "instance", "h:1", "job", "j", "zone", "z");
    CHECK_EQ(t_write1(st, &ls, 1000, 1.0), 0);
    rcu_read_lock();
    struct store_group *g = store_group_lookup(st, "up", 2, "", 0);
    CHECK(g);
    size_t nslen;
    const char *nsv = store_group_namespace(g, &nslen);
    CHECK_MEM(nsv, nslen, "");
    struct store_iter it;
    struct store_series *s = store_series_first(g, &it);
    CHECK(s);
    struct store_label_iter li;
    struct api_rw_label l;
    size_t i = 0;
    store_series_labels(s, &li);
    while (store_series_label_next(&li, &l)) {
        CHECK_MEM(l.name, l.name_len, ls.l[i].name);
        CHECK_MEM(l.value, l.value_len, ls.l[i].value);
        i++;
    }
    CHECK_EQ(i, ls.n);
    const char *v;
    size_t vl;
    CHECK(!store_series_label(s, "namespace", &v, &vl));
    CHECK(store_series_label(s, "__name__", &v, &vl));
    CHECK_MEM(v, vl, "up");
    CHECK(!store_series_next(g, &it));
    rcu_read_unlock();

    /* Only __name__ and namespace: an empty key, a different group. */
    T_LABELS(&ls, "__name__", "up", "namespace", "n");
    CHECK_EQ(t_write1(st, &ls, 1000, 1.0), 0);
    rcu_read_lock();
    CHECK(find(st, "up", "n", NULL));
    struct store_metric *m = store_metric_lookup(st, "up", 2);
    CHECK(m);
    CHECK_EQ(store_metric_series(m), 2);
    int ng = 0;
    for (struct store_group *gg = store_group_first(m, &it); gg; gg = store_group_next(m, &it))
        ng++;
    CHECK_EQ(ng, 2);
    rcu_read_unlock();
    store_free(st);
}

static void test_stale_markers_and_nan(void)
{
    struct store *st = new_store(0, 0, 0);
    struct t_labels ls;
    struct store_stats ss;
    struct api_rw_sample out[16];
    T_LABELS(&ls, "__name__", "m", "namespace", "ns", "pod", "a");

    CHECK_EQ(t_write1(st, &ls, 1000, NAN), 0); /* an ordinary NaN is a value */
    CHECK_EQ(snap(st, "m", "ns", "a", out, 16), 1);
    CHECK(isnan(out[0].value) && !api_is_stale_nan(out[0].value));

    CHECK_EQ(t_write1(st, &ls, 2000, 5.0), 0);
    /* A stale marker older than the newest sample is ignored (an HA partner's later sample won). */
    CHECK_EQ(t_write1(st, &ls, 1500, api_stale_nan()), 0);
    store_get_stats(st, &ss);
    CHECK_EQ(ss.series_live, 1);
    CHECK_EQ(ss.deleted_stale, 0);

    /* A newer stale marker deletes the series at once. */
    CHECK_EQ(t_write1(st, &ls, 3000, api_stale_nan()), 0);
    store_get_stats(st, &ss);
    CHECK_EQ(ss.series_live, 0);
    CHECK_EQ(ss.deleted_stale, 1);
    CHECK_EQ(snap(st, "m", "ns", "a", out, 16), 0);

    /* A stale marker for a series not held does nothing. */
    CHECK_EQ(t_write1(st, &ls, 4000, api_stale_nan()), 0);
    store_get_stats(st, &ss);
    CHECK_EQ(ss.stale_absent, 1);
    CHECK_EQ(ss.series_live, 0);

    /* A later sample creates it again, with only its own samples. */
    CHECK_EQ(t_write1(st, &ls, 5000, 7.0), 0);
    CHECK_EQ(snap(st, "m", "ns", "a", out, 16), 1);
    CHECK_EQ(out[0].timestamp_ms, 5000);
    store_get_stats(st, &ss);
    CHECK_EQ(ss.series_live, 1);
    CHECK_EQ(ss.series_created, 2);

    /* Sample, stale, sample in one call: deleted then recreated within the call. */
    struct api_rw_sample seq[3] = {{8.0, 6000}, {api_stale_nan(), 7000}, {9.0, 8000}};
    struct store_tally t = {0};
    CHECK_EQ(store_write(st, ls.l, ls.n, seq, 3, &t), 0);
    CHECK_EQ(t.accepted, 3);
    store_tally_flush(st, &t);
    CHECK_EQ(snap(st, "m", "ns", "a", out, 16), 1);
    CHECK_EQ(out[0].timestamp_ms, 8000);
    CHECK(out[0].value == 9.0);
    store_get_stats(st, &ss);
    CHECK_EQ(ss.deleted_stale, 2);
    CHECK_EQ(ss.series_created, 3);
    store_free(st);
}

static void test_window_and_heap_ring(void)
{
    /* 4 inline slots; a 2 m window at 10 s holds 13 samples: the ring must move to the heap. */
    struct store *st = new_store(0, 0, 4);
    struct t_labels ls;
    struct store_stats ss;
    struct api_rw_sample out[64];
    T_LABELS(&ls, "__name__", "c_total", "namespace", "ns", "pod", "a");

    for (int i = 0; i < 40; i++)
        CHECK_EQ(t_write1(st, &ls, 10000LL * i, (double)i), 0);
    /* Newest is 390 s: everything at or after 270 s is kept (13 samples), exactly. */
    size_t n = snap(st, "c_total", "ns", "a", out, 64);
    CHECK_EQ(n, 13);
    for (size_t i = 0; i < n; i++) {
        CHECK_EQ(out[i].timestamp_ms, 270000 + 10000 * (long long)i);
        CHECK(out[i].value == (double)(27 + i));
    }
    store_get_stats(st, &ss);
    CHECK_EQ(ss.heap_blocks, 1);

    /* A gap: only the newest sample is inside the window; the block is given back. */
    CHECK_EQ(t_write1(st, &ls, 1000000, 100.0), 0);
    CHECK_EQ(snap(st, "c_total", "ns", "a", out, 64), 1);
    CHECK_EQ(out[0].timestamp_ms, 1000000);
    store_get_stats(st, &ss);
    CHECK_EQ(ss.heap_blocks, 0);
    /* Inline again, wrapping around. */
    for (int i = 1; i <= 10; i++)
        CHECK_EQ(t_write1(st, &ls, 1000000 + 60000LL * i, 100.0 + i), 0);
    n = snap(st, "c_total", "ns", "a", out, 64);
    CHECK_EQ(n, 3); /* 1480 s, 1540 s, 1600 s */
    CHECK_EQ(out[0].timestamp_ms, 1480000);
    CHECK_EQ(out[2].timestamp_ms, 1600000);
    CHECK(out[2].value == 110.0);

    /* The hard cap: 1 ms apart, more than STORE_MAX_SAMPLES inside the window: the oldest go. */
    T_LABELS(&ls, "__name__", "c_total", "namespace", "ns", "pod", "fast");
    struct api_rw_sample *many = malloc(sizeof *many * (STORE_MAX_SAMPLES + 100));
    for (int i = 0; i < STORE_MAX_SAMPLES + 100; i++)
        many[i] = (struct api_rw_sample){(double)i, 1 + i};
    struct store_tally t = {0};
    CHECK_EQ(store_write(st, ls.l, ls.n, many, STORE_MAX_SAMPLES + 100, &t), 0);
    store_tally_flush(st, &t);
    struct api_rw_sample *big = malloc(sizeof *big * (STORE_MAX_SAMPLES + 100));
    CHECK_EQ(snap(st, "c_total", "ns", "fast", big, STORE_MAX_SAMPLES + 100), STORE_MAX_SAMPLES);
    CHECK_EQ(big[STORE_MAX_SAMPLES - 1].timestamp_ms, STORE_MAX_SAMPLES + 100);
    CHECK_EQ(big[0].timestamp_ms, 101);
    free(many);
    free(big);
    store_free(st);
}

/* test_compaction's series: metric m, namespace ns, pod @prefix + @i. */
static int put_pod(struct store *st, char prefix, int i, int64_t ts, double v)
{
    char pod[16];
    struct t_labels ls;
    snprintf(pod, sizeof pod, "%c%05d", prefix, i);
    T_LABELS(&ls, "__name__", "m", "namespace", "ns", "pod", pod);
    return t_write1(st, &ls, ts, v);
}

/* The one sample of that series, checked. */
static void check_pod(struct store *st, char prefix, int i, int64_t ts, double v)
{
    char pod[16];
    struct api_rw_sample out[4];
    snprintf(pod, sizeof pod, "%c%05d", prefix, i);
    CHECK_EQ(snap(st, "m", "ns", pod, out, 4), 1);
    CHECK(out[0].timestamp_ms == ts && out[0].value == v);
}

/* After a mass delete the reaper moves the survivors into packed memory; they read the same. */
static void test_compaction(void)
{
    enum { N = 70000, KEEP_EVERY = 1000 };
    struct store *st = new_store(0, 0, 4);
    struct t_labels ls;
    struct store_stats ss;
    struct api_rw_sample out[64], before[64];

    for (int i = 0; i < N; i++)
        CHECK_EQ(put_pod(st, 'p', i, 1000, (double)i), 0);
    /* One series whose ring lives in a heap block (4 inline slots, 13 samples). */
    T_LABELS(&ls, "__name__", "m", "namespace", "ns", "pod", "heap");
    for (int i = 0; i < 40; i++)
        CHECK_EQ(t_write1(st, &ls, 10000LL * i, (double)i), 0);
    size_t nheap = snap(st, "m", "ns", "heap", before, 64);
    CHECK_EQ(nheap, 13);
    store_reap(st, 2000); /* sees the peak; nothing expires */
    store_get_stats(st, &ss);
    CHECK_EQ(ss.compactions, 0);

    for (int i = 0; i < N; i++)
        if (i % KEEP_EVERY != 0)
            CHECK_EQ(put_pod(st, 'p', i, 2000, api_stale_nan()), 0);
    store_reap(st, 3000);
    store_get_stats(st, &ss);
    CHECK_EQ(ss.series_live, N / KEEP_EVERY + 1);
    CHECK_EQ(ss.compactions, 1);
    CHECK_EQ(ss.moved, N / KEEP_EVERY + 1);
    CHECK_OP(region_mapped_bytes(), >=, (size_t)1 << 20);
    CHECK_EQ(ss.heap_blocks, 1);

    /* The same samples, the ring in a heap block included. */
    CHECK_EQ(snap(st, "m", "ns", "heap", out, 64), nheap);
    CHECK_EQ(memcmp(out, before, nheap * sizeof *out), 0);
    for (int i = 0; i < N; i += KEEP_EVERY)
        check_pod(st, 'p', i, 1000, (double)i);
    /* Writes land in the moved series. */
    CHECK_EQ(put_pod(st, 'p', 5000, 4000, 1.5), 0);
    CHECK_EQ(snap(st, "m", "ns", "p05000", out, 64), 2);
    CHECK(out[1].timestamp_ms == 4000 && out[1].value == 1.5);
    store_get_stats(st, &ss);
    CHECK_EQ(ss.series_created, N + 1);

    /* A pass without a new drop does not compact again; an explicit one moves everything,
     * a group bigger than one read-side section's worth (1,024) included. */
    store_reap(st, 5000);
    store_get_stats(st, &ss);
    CHECK_EQ(ss.compactions, 1);
    for (int i = 0; i < 3000; i++)
        CHECK_EQ(put_pod(st, 'q', i, 5000, (double)i), 0);
    CHECK_EQ(store_compact(st), N / KEEP_EVERY + 1 + 3000);
    for (int i = 0; i < 3000; i += 7)
        check_pod(st, 'q', i, 5000, (double)i);
    CHECK_EQ(snap(st, "m", "ns", "heap", out, 64), nheap);
    CHECK_EQ(memcmp(out, before, nheap * sizeof *out), 0);
    store_free(st);
    /* Every moved series was freed: no region is left. */
    CHECK_EQ(region_mapped_bytes(), 0);
}

/* A rule window longer than --rate-window: the store keeps that much. */
static void test_longer_rule_window(void)
{
    struct store *st = new_store(0, 0, 0);
    struct t_labels ls;
    struct api_rw_sample out[64];
    T_LABELS(&ls, "__name__", "c_total", "pod", "a");
    store_set_rate_window(st, 300000);
    for (int i = 0; i < 40; i++)
        CHECK_EQ(t_write1(st, &ls, 15000LL * i, (double)i), 0);
    /* Newest 585 s: everything at or after 285 s, 21 samples (a 2 m window would keep 9). */
    CHECK_EQ(snap(st, "c_total", "", "a", out, 64), 21);
    CHECK_EQ(out[0].timestamp_ms, 285000);
    /* Back to 2 m: trimmed on the next sample. */
    store_set_rate_window(st, 0);
    CHECK_EQ(t_write1(st, &ls, 600000, 40.0), 0);
    CHECK_EQ(snap(st, "c_total", "", "a", out, 64), 9);
    CHECK_EQ(out[0].timestamp_ms, 480000);
    store_free(st);
}

static void test_ttl_reap_and_empty_groups(void)
{
    struct store *st = new_store(0, 0, 0);
    struct t_labels ls;
    struct store_stats ss;
    const int64_t T0 = 1700000000000LL;

    T_LABELS(&ls, "__name__", "old", "namespace", "a", "pod", "p");
    CHECK_EQ(t_write1(st, &ls, T0, 1.0), 0);
    T_LABELS(&ls, "__name__", "old", "namespace", "b", "pod", "p");
    CHECK_EQ(t_write1(st, &ls, T0 + 200000, 1.0), 0);
    T_LABELS(&ls, "__name__", "typed", "namespace", "a", "pod", "p");
    CHECK_EQ(t_write1(st, &ls, T0, 1.0), 0);
    store_set_metric_type(st, "typed", 5, API_RW_TYPE_COUNTER);
    store_get_stats(st, &ss);
    CHECK_EQ(ss.series_live, 3);
    CHECK_EQ(ss.groups_live, 3);
    CHECK_EQ(ss.metrics_live, 2);

    /* Nothing is older than the TTL yet. */
    CHECK_EQ(store_reap(st, T0 + 300000), 0);
    /* Now the two series written at T0 are; the one in "old"/"b" is not. */
    CHECK_EQ(store_reap(st, T0 + 300001), 2);
    store_get_stats(st, &ss);
    CHECK_EQ(ss.series_live, 1);
    CHECK_EQ(ss.deleted_ttl, 2);
    /* Their groups went with them, and "typed" with its last group: its type
     * stays in the type table, for the next series of that name. */
    CHECK_EQ(ss.groups_live, 1);
    CHECK_EQ(ss.metrics_live, 1);
    CHECK_EQ(ss.types_live, 1);
    rcu_read_lock();
    CHECK(!store_group_lookup(st, "old", 3, "a", 1));
    CHECK(store_group_lookup(st, "old", 3, "b", 1));
    CHECK(!store_metric_lookup(st, "typed", 5));
    rcu_read_unlock();

    /* The rest expires; "old" is forgotten entirely. */
    CHECK_EQ(store_reap(st, T0 + 600000), 1);
    store_get_stats(st, &ss);
    CHECK_EQ(ss.series_live, 0);
    CHECK_EQ(ss.groups_live, 0);
    CHECK_EQ(ss.metrics_live, 0);
    rcu_read_lock();
    CHECK(!store_metric_lookup(st, "old", 3));
    rcu_read_unlock();
    T_LABELS(&ls, "__name__", "typed", "namespace", "a", "pod", "p");
    CHECK_EQ(t_write1(st, &ls, T0 + 600000, 1.0), 0);
    rcu_read_lock();
    struct store_metric *m = store_metric_lookup(st, "typed", 5);
    CHECK(m);
    CHECK_EQ(store_metric_type(m), API_RW_TYPE_COUNTER);
    rcu_read_unlock();
    CHECK_EQ(store_reap(st, T0 + 900001), 1);

    /* A stale-emptied group is removed by the next pass, and can be created again after it. */
    T_LABELS(&ls, "__name__", "g", "namespace", "x", "pod", "p");
    CHECK_EQ(t_write1(st, &ls, T0 + 700000, 1.0), 0);
    CHECK_EQ(t_write1(st, &ls, T0 + 701000, api_stale_nan()), 0);
    store_get_stats(st, &ss);
    CHECK_EQ(ss.groups_live, 1);
    CHECK_EQ(store_reap(st, T0 + 702000), 0);
    store_get_stats(st, &ss);
    CHECK_EQ(ss.groups_live, 0);
    CHECK_EQ(t_write1(st, &ls, T0 + 703000, 2.0), 0);
    store_get_stats(st, &ss);
    CHECK_EQ(ss.groups_live, 1);
    CHECK_EQ(ss.series_live, 1);
    CHECK_EQ(store_reap_passes(st), 5);
    CHECK_EQ(store_series_ttl_ms(st), 300000);
    CHECK_EQ(store_rate_window_ms(st), 120000);
    store_set_rate_window(st, 60000); /* never below --rate-window */
    CHECK_EQ(store_rate_window_ms(st), 120000);
    store_set_rate_window(st, 300000);
    CHECK_EQ(store_rate_window_ms(st), 300000);
    store_free(st);
}

/* The reaper thread: store_reap_now() wakes it long before its (one hour) interval. */
static void test_reaper_thread(void)
{
    struct store_config cfg = {.reap_interval_ms = 3600000, .start_reaper = 1};
    struct store *st;
    struct t_labels ls;
    struct store_stats ss;
    CHECK_EQ(store_new(&cfg, &st), 0);
    T_LABELS(&ls, "__name__", "m", "pod", "p");
    CHECK_EQ(t_write1(st, &ls, 1000, 1.0), 0); /* 1970: far older than the TTL by the wall clock */
    store_reap_now(st);
    double deadline = t_now() + 10;
    while (store_reap_passes(st) == 0 && t_now() < deadline)
        usleep(1000);
    CHECK_EQ(store_reap_passes(st), 1);
    store_get_stats(st, &ss);
    CHECK_EQ(ss.deleted_ttl, 1);
    CHECK_EQ(ss.series_live, 0);
    store_free(st); /* stops and joins the thread */
}

static void test_limits(void)
{
    struct store *st = new_store(3, 2, 0);
    struct t_labels ls;
    struct store_stats ss;
    char pod[16];

    for (int i = 0; i < 2; i++) {
        snprintf(pod, sizeof pod, "p%d", i);
        T_LABELS(&ls, "__name__", "a", "namespace", "n", "pod", pod);
        CHECK_EQ(t_write1(st, &ls, 1000, 1.0), STORE_REFUSED_NONE);
    }
    /* Third series of metric "a" (another namespace counts too): per-metric limit. */
    T_LABELS(&ls, "__name__", "a", "namespace", "other", "pod", "p9");
    CHECK_EQ(t_write1(st, &ls, 1000, 1.0), STORE_REFUSED_MAX_PER_METRIC);
    T_LABELS(&ls, "__name__", "b", "namespace", "n", "pod", "p0");
    CHECK_EQ(t_write1(st, &ls, 1000, 1.0), STORE_REFUSED_NONE);
    /* Global limit. */
    T_LABELS(&ls, "__name__", "b", "namespace", "n", "pod", "p1");
    CHECK_EQ(t_write1(st, &ls, 1000, 1.0), STORE_REFUSED_MAX_SERIES);
    /* Existing series keep updating. */
    T_LABELS(&ls, "__name__", "a", "namespace", "n", "pod", "p1");
    CHECK_EQ(t_write1(st, &ls, 2000, 2.0), STORE_REFUSED_NONE);
    /* The memory valve's soft level refuses new series only. */
    store_set_refuse_new(st, 1);
    CHECK_EQ(t_write1(st, &ls, 3000, 3.0), STORE_REFUSED_NONE);
    T_LABELS(&ls, "__name__", "c", "namespace", "n", "pod", "p1");
    CHECK_EQ(t_write1(st, &ls, 1000, 1.0), STORE_REFUSED_MEMORY);
    store_set_refuse_new(st, 0);

    store_get_stats(st, &ss);
    CHECK_EQ(ss.series_live, 3);
    CHECK_EQ(ss.refused[STORE_REFUSED_MAX_PER_METRIC], 1);
    CHECK_EQ(ss.refused[STORE_REFUSED_MAX_SERIES], 1);
    CHECK_EQ(ss.refused[STORE_REFUSED_MEMORY], 1);
    CHECK_EQ(ss.dropped_refused, 3);
    CHECK_EQ(ss.samples_accepted, 5);
    /* Refusal left no empty group or metric behind that the reaper cannot remove. */
    store_reap(st, 0);
    store_get_stats(st, &ss);
    CHECK_EQ(ss.groups_live, 2);

    /* After a delete there is room again. */
    T_LABELS(&ls, "__name__", "b", "namespace", "n", "pod", "p0");
    CHECK_EQ(t_write1(st, &ls, 5000, api_stale_nan()), STORE_REFUSED_NONE);
    T_LABELS(&ls, "__name__", "b", "namespace", "n", "pod", "p1");
    CHECK_EQ(t_write1(st, &ls, 5000, 1.0), STORE_REFUSED_NONE);
    CHECK_EQ(strcmp(store_refusal_str(STORE_REFUSED_MAX_SERIES), "max_series"), 0);
    store_free(st);
}

/* Metadata for many families and no samples: no metric entries, a bounded type table, types applied later. */
static void test_metadata_bounded(void)
{
    struct store *st = new_store(0, 0, 0);
    struct store_stats ss;
    struct t_labels ls;
    char name[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(name, sizeof name, "fam_%d", i);
        store_set_metric_type(st, name, strlen(name), API_RW_TYPE_COUNTER);
    }
    store_get_stats(st, &ss);
    CHECK_EQ(ss.metrics_live, 0);
    CHECK_EQ(ss.groups_live, 0);
    CHECK_EQ(ss.types_live, STORE_MAX_TYPES);
    CHECK_EQ(ss.types_refused, 10000 - STORE_MAX_TYPES);
    /* A name the table holds: its first series' metric is typed. */
    T_LABELS(&ls, "__name__", "fam_5", "pod", "p");
    CHECK_EQ(t_write1(st, &ls, 1000, 1.0), 0);
    /* One beyond the cap: typed when metadata comes while its entry exists. */
    T_LABELS(&ls, "__name__", "fam_9999", "pod", "p");
    CHECK_EQ(t_write1(st, &ls, 1000, 1.0), 0);
    rcu_read_lock();
    CHECK_EQ(store_metric_type(store_metric_lookup(st, "fam_5", 5)), API_RW_TYPE_COUNTER);
    CHECK_EQ(store_metric_type(store_metric_lookup(st, "fam_9999", 8)), API_RW_TYPE_UNKNOWN);
    rcu_read_unlock();
    store_set_metric_type(st, "fam_9999", 8, API_RW_TYPE_COUNTER);
    rcu_read_lock();
    CHECK_EQ(store_metric_type(store_metric_lookup(st, "fam_9999", 8)), API_RW_TYPE_COUNTER);
    rcu_read_unlock();
    /* Refreshed names stay; the others go once not refreshed for the TTL, typed metrics with them. */
    CHECK_EQ(store_reap(st, 2000), 0);
    store_set_metric_type(st, "fam_7", 5, API_RW_TYPE_GAUGE);
    CHECK_EQ(store_reap(st, 2000 + 300001), 2);
    store_get_stats(st, &ss);
    CHECK_EQ(ss.types_live, 1);
    CHECK_EQ(ss.metrics_live, 0);
    CHECK_EQ(ss.groups_live, 0);
    store_free(st);
}

static void test_metric_types_and_discovery(void)
{
    struct store *st = new_store(0, 0, 0);
    struct t_labels ls;
    store_set_metric_type(st, "x_total", 7, API_RW_TYPE_COUNTER);
    store_set_metric_type(st, "x_total", 7, API_RW_TYPE_COUNTER); /* repeat: no change */
    store_set_metric_type(st, "y", 1, API_RW_TYPE_GAUGE);
    store_set_metric_type(st, "z", 1, API_RW_TYPE_UNKNOWN); /* ignored */
    T_LABELS(&ls, "__name__", "w", "pod", "p");
    CHECK_EQ(t_write1(st, &ls, 1000, 1.0), 0);
    store_set_metric_type(st, "w", 1, API_RW_TYPE_GAUGE);
    store_set_metric_type(st, "w", 1, API_RW_TYPE_COUNTER); /* the last word wins */

    T_LABELS(&ls, "__name__", "x_total", "pod", "p");
    CHECK_EQ(t_write1(st, &ls, 1000, 1.0), 0); /* takes the type metadata gave before */
    T_LABELS(&ls, "__name__", "y", "pod", "p");
    CHECK_EQ(t_write1(st, &ls, 1000, 1.0), 0);

    rcu_read_lock();
    struct store_iter it;
    int seen = 0;
    for (struct store_metric *m = store_metric_first(st, &it); m; m = store_metric_next(st, &it)) {
        size_t len;
        const char *name = store_metric_name(m, &len);
        CHECK_EQ(strlen(name), len);
        if (!strcmp(name, "x_total")) {
            CHECK_EQ(store_metric_type(m), API_RW_TYPE_COUNTER);
            seen |= 1;
        } else if (!strcmp(name, "y")) {
            CHECK_EQ(store_metric_type(m), API_RW_TYPE_GAUGE);
            seen |= 2;
        } else if (!strcmp(name, "w")) {
            CHECK_EQ(store_metric_type(m), API_RW_TYPE_COUNTER);
            CHECK_EQ(store_metric_series(m), 1);
            seen |= 4;
        } else {
            fprintf(stderr, "unexpected metric %s\n", name);
            abort();
        }
    }
    CHECK_EQ(seen, 7);
    rcu_read_unlock();
    store_free(st);
}

static int admit_calls, admit_last_type;

/* Keeps every series whose metric name does not start with "drop_". */
static int admit_no_drop(void *ctx, const struct api_rw_label *labels, size_t n, int type)
{
    CHECK(ctx == &admit_calls);
    admit_calls++;
    admit_last_type = type;
    for (size_t i = 0; i < n; i++)
        if (labels[i].name_len == 8 && !memcmp(labels[i].name, "__name__", 8))
            return !(labels[i].value_len >= 5 && !memcmp(labels[i].value, "drop_", 5));
    return 1;
}

/* The admission hook is asked once per new series, never for updates; unwanted series leave nothing. */
static void test_admit_hook(void)
{
    struct store *st = new_store(0, 0, 0);
    struct t_labels ls;
    struct store_stats ss;
    store_set_admit(st, admit_no_drop, &admit_calls);

    T_LABELS(&ls, "__name__", "keep_total", "pod", "p");
    CHECK_EQ(t_write1(st, &ls, 1000, 1.0), STORE_REFUSED_NONE);
    CHECK_EQ(t_write1(st, &ls, 2000, 2.0), STORE_REFUSED_NONE);
    CHECK_EQ(admit_calls, 1);
    CHECK_EQ(admit_last_type, API_RW_TYPE_UNKNOWN);

    store_set_metric_type(st, "drop_me", 7, API_RW_TYPE_GAUGE);
    T_LABELS(&ls, "__name__", "drop_me", "pod", "p");
    struct api_rw_sample two[2] = {{1.0, 1000}, {2.0, 2000}};
    struct store_tally t = {0};
    CHECK_EQ(store_write(st, ls.l, ls.n, two, 2, &t), STORE_REFUSED_NO_RULE);
    CHECK_EQ(t.unwanted, 2);
    CHECK_EQ(t.refused, 0);
    store_tally_flush(st, &t);
    CHECK_EQ(admit_calls, 2);
    CHECK_EQ(admit_last_type, API_RW_TYPE_GAUGE);

    T_LABELS(&ls, "__name__", "drop_unknown", "pod", "p");
    CHECK_EQ(t_write1(st, &ls, 1000, 1.0), STORE_REFUSED_NO_RULE);
    store_get_stats(st, &ss);
    CHECK_EQ(ss.series_live, 1);
    CHECK_EQ(ss.refused[STORE_REFUSED_NO_RULE], 2);
    CHECK_EQ(ss.dropped_unwanted, 3);
    CHECK_EQ(ss.dropped_refused, 0);
    /* Neither refused name left a metric entry ("drop_me"'s type is in the type table). */
    CHECK_EQ(ss.metrics_live, 1);
    CHECK_EQ(ss.types_live, 1);
    rcu_read_lock();
    CHECK(!store_metric_lookup(st, "drop_unknown", 12));
    rcu_read_unlock();
    CHECK_EQ(strcmp(store_refusal_str(STORE_REFUSED_NO_RULE), "no_rule"), 0);
    store_free(st);
}

/* A group's generation changes on every insert and unlink of its series, never on updates. */
static uint64_t group_gen(struct store *st, const char *metric)
{
    uint64_t gen[2];
    rcu_read_lock();
    struct store_group *g = store_group_lookup(st, metric, strlen(metric), "", 0);
    CHECK(g != NULL);
    store_group_generation(st, g, gen);
    rcu_read_unlock();
    CHECK(gen[1] != STORE_GEN_UNLINKING);
    return gen[1];
}

static void test_generation(void)
{
    struct store *st = new_store(0, 0, 0);
    struct t_labels ls, other;
    T_LABELS(&ls, "__name__", "m", "pod", "p");
    T_LABELS(&other, "__name__", "m", "pod", "q");
    CHECK_EQ(t_write1(st, &ls, 1000, 1.0), 0);
    uint64_t g1 = group_gen(st, "m");
    CHECK_EQ(t_write1(st, &ls, 2000, 2.0), 0);
    CHECK_EQ(t_write1(st, &ls, 2000, 2.0), 0); /* duplicate */
    store_set_metric_type(st, "m", 1, API_RW_TYPE_GAUGE);
    CHECK_EQ(group_gen(st, "m"), g1);
    CHECK_EQ(t_write1(st, &other, 2000, 1.0), 0);
    uint64_t g2 = group_gen(st, "m");
    CHECK(g2 != g1);
    CHECK_EQ(t_write1(st, &ls, 3000, api_stale_nan()), 0);
    uint64_t g3 = group_gen(st, "m");
    CHECK(g3 != g2);
    CHECK_EQ(t_write1(st, &ls, 4000, 1.0), 0);
    uint64_t g4 = group_gen(st, "m");
    CHECK(g4 != g3);
    CHECK_EQ(t_write1(st, &other, 4000, 1.0), 0);
    CHECK_EQ(store_reap(st, 4000 + 300001), 2);
    store_free(st);
}

static void test_collect(void)
{
    struct store *st = new_store(0, 0, 0);
    struct t_labels ls;
    struct buf b = BUF_INIT;
    T_LABELS(&ls, "__name__", "m", "pod", "p");
    CHECK_EQ(t_write1(st, &ls, 1000, 1.0), 0);
    CHECK_EQ(t_write1(st, &ls, 1000, 1.0), 0);
    store_collect(st, &b);
    CHECK(b.data);
    CHECK(strstr(b.data, "\nmetrics_adapter_series_live 1\n"));
    CHECK(strstr(b.data, "\nmetrics_adapter_samples_accepted_total 1\n"));
    CHECK(strstr(b.data, "\nmetrics_adapter_samples_dropped_total{reason=\"out_of_order\"} 1\n"));
    CHECK(strstr(b.data, "\nmetrics_adapter_series_deleted_total{cause=\"stale\"} 0\n"));
    CHECK(strstr(b.data, "\nmetrics_adapter_series_refused_total{reason=\"max_series\"} 0\n"));
    CHECK(strstr(b.data, "\nmetrics_adapter_series_table_entries 1\n"));
    buf_free(&b);
    store_free(st);
}

int main(void)
{
    rcu_register_thread();
    test_create_update_out_of_order();
    test_labels_order_and_no_namespace();
    test_stale_markers_and_nan();
    test_window_and_heap_ring();
    test_compaction();
    test_longer_rule_window();
    test_ttl_reap_and_empty_groups();
    test_reaper_thread();
    test_limits();
    test_metadata_bounded();
    test_metric_types_and_discovery();
    test_admit_hook();
    test_generation();
    test_collect();
    ml_shutdown();
    rcu_unregister_thread();
    printf("test_store: ok\n");
    return 0;
}
