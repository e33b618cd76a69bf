/*
 * Concurrent tests of the series store (label stress; also run under
 * ASan+UBSan, which is what catches a node or a sample block freed before
 * its grace period).
 *
 *   test_store_stress [seconds-per-scenario] [readers] [writers] [tsan]
 *
 * 1. torn: one series (the single-key, maximum-contention case), two or more
 *    writers, readers copying snapshots. Every value is f(timestamp), so a
 *    snapshot mixing two writes shows up; timestamps must be strictly
 *    increasing and span at most the window. Writers jump ahead now and then
 *    so that the ring moves between its inline slots and heap blocks. A
 *    mover thread compacts the store over and over (store_compact: the series
 *    is copied and replaced under its lock): after each write of timestamp t
 *    a writer checks that the series it finds holds a sample at t or newer,
 *    which a sample written into a copy already replaced would fail.
 * 2. dead: writers and a stale-marker sender on a few series, each in its own
 *    group, while a reaper removes the groups they empty. After every write of
 *    timestamp t a writer checks that the series is live with newest >= t,
 *    unless a stale marker newer than t was sent meanwhile: a sample that
 *    landed in a dead node (or a group being removed) fails that check.
 *    Finally the counters must match a walk of the store, and deleting
 *    everything must leave no series, group or metric behind.
 *
 * With "tsan" (the ThreadSanitizer build) only scenario 1 runs, with a
 * window that always fits the inline ring: no sample block and no series is
 * ever freed, so nothing depends on grace periods, which TSan cannot see
 * (DESIGN 4a), and what it checks is the lock word, the seqlock and the
 * counters.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "test_store.h"

static int64_t window_ms = 64;

static double seconds = 1.0;
static int nreaders = 2, nwriters = 2;

static struct store *st;
static atomic_llong clock_ts; /* the shared timestamp source */
static atomic_int stop;
static atomic_llong snapshots, writes, checks, moves;

static double f(int64_t ts)
{
    return (double)ts * 0.5 + 3.0;
}

static int tsan_mode;

static struct store *mk(unsigned inl)
{
    struct store_config cfg = {.rate_window_ms = window_ms, .series_ttl_ms = 1000000, .inline_samples = inl};
    struct store *s;
    CHECK_EQ(store_new(&cfg, &s), 0);
    return s;
}

/* ---- 1. torn reads ------------------------------------------------------- */

static void *torn_writer(void *arg)
{
    struct t_labels ls;
    unsigned r = (unsigned)(uintptr_t)arg;
    rcu_register_thread();
    T_LABELS(&ls, "__name__", "torn_total", "namespace", "ns", "pod", "only");
    while (!atomic_load(&stop)) {
        r = r * 1103515245u + 12345u;
        /* Now and then a jump past the window, so the ring shrinks back inline and grows again. */
        int64_t step = !tsan_mode && (r >> 16) % 500 == 0 ? 2 * window_ms : 1;
        int64_t ts = atomic_fetch_add(&clock_ts, step) + step;
        t_write1(st, &ls, ts, f(ts));
        atomic_fetch_add(&writes, 1);
        rcu_read_lock();
        struct store_group *g = store_group_lookup(st, "torn_total", 10, "ns", 2);
        struct store_iter it;
        struct store_series *s = g ? store_series_first(g, &it) : NULL;
        CHECK(s != NULL);
        CHECK_OP(store_series_newest(s), >=, ts);
        rcu_read_unlock();
    }
    rcu_unregister_thread();
    return NULL;
}

static void *torn_mover(void *arg)
{
    (void)arg;
    rcu_register_thread();
    while (!atomic_load(&stop))
        atomic_fetch_add(&moves, (long long)store_compact(st));
    rcu_unregister_thread();
    return NULL;
}

static void *torn_reader(void *arg)
{
    struct api_rw_sample *buf = malloc(sizeof *buf * STORE_MAX_SAMPLES);
    rcu_register_thread();
    while (!atomic_load(&stop)) {
        rcu_read_lock();
        struct store_group *g = store_group_lookup(st, "torn_total", 10, "ns", 2);
        struct store_iter it;
        struct store_series *s = g ? store_series_first(g, &it) : NULL;
        if (s) {
            size_t n = store_series_snapshot(s, buf, STORE_MAX_SAMPLES);
            CHECK(n >= 1);
            CHECK(n <= STORE_MAX_SAMPLES);
            for (size_t i = 0; i < n; i++) {
                if (buf[i].value != f(buf[i].timestamp_ms)) {
                    fprintf(stderr, "torn: ts %lld value %g\n", (long long)buf[i].timestamp_ms, buf[i].value);
                    abort();
                }
                if (i)
                    CHECK_OP(buf[i - 1].timestamp_ms, <, buf[i].timestamp_ms);
            }
            /* Exactly the window: nothing older than newest - window is kept. */
            CHECK_OP(buf[n - 1].timestamp_ms - buf[0].timestamp_ms, <=, window_ms);
            atomic_fetch_add(&snapshots, 1);
        }
        rcu_read_unlock();
    }
    rcu_unregister_thread();
    free(buf);
    return NULL;
}

static void run_torn(void)
{
    pthread_t th[64];
    int n = 0;
    st = mk(tsan_mode ? 64 : 8);
    atomic_store(&stop, 0);
    atomic_store(&clock_ts, 1000);
    atomic_store(&snapshots, 0);
    atomic_store(&writes, 0);
    atomic_store(&moves, 0);
    if (!tsan_mode) /* a move frees the old copy after a grace period */
        pthread_create(&th[n++], NULL, torn_mover, NULL);
    for (int i = 0; i < nwriters; i++)
        pthread_create(&th[n++], NULL, torn_writer, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < nreaders; i++)
        pthread_create(&th[n++], NULL, torn_reader, NULL);
    usleep((useconds_t)(seconds * 1e6));
    atomic_store(&stop, 1);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    struct store_stats ss;
    store_get_stats(st, &ss);
    printf("torn: %lld writes, %lld snapshots, %llu accepted, %llu out of order, %lld moves\n",
           (long long)writes, (long long)snapshots, (unsigned long long)ss.samples_accepted,
           (unsigned long long)ss.dropped_out_of_order, (long long)moves);
    CHECK(atomic_load(&snapshots) > 0);
    if (!tsan_mode) {
        CHECK(atomic_load(&moves) > 0);
        CHECK_EQ(ss.moved, (unsigned long long)atomic_load(&moves));
    }
    CHECK_EQ(ss.series_live, 1);
    CHECK_EQ(ss.samples_accepted + ss.dropped_out_of_order, (unsigned long long)atomic_load(&writes));
    if (tsan_mode)
        CHECK_EQ(ss.heap_blocks, 0);
    store_free(st);
}

/* ---- 2. get-or-create against delete and group removal -------------------- */

#define NKEYS 6
static atomic_llong max_stale_sent[NKEYS];

static void key_labels(struct t_labels *ls, int k, char *ns, char *metric)
{
    /* Two metrics, each key its own namespace: every delete empties a group. */
    sprintf(ns, "ns%d", k);
    sprintf(metric, "dead_%d", k % 2);
    T_LABELS(ls, "__name__", metric, "namespace", ns, "pod", "p");
}

/* Live series of key k: its newest timestamp, or -1 when absent. */
static int64_t key_newest(int k)
{
    char ns[16], metric[16];
    struct t_labels ls;
    int64_t newest = -1;
    key_labels(&ls, k, ns, metric);
    rcu_read_lock();
    struct store_group *g = store_group_lookup(st, metric, strlen(metric), ns, strlen(ns));
    if (g) {
        struct store_iter it;
        struct store_series *s = store_series_first(g, &it);
        if (s)
            newest = store_series_newest(s);
    }
    rcu_read_unlock();
    return newest;
}

static void *dead_writer(void *arg)
{
    unsigned r = (unsigned)(uintptr_t)arg;
    char ns[16], metric[16];
    struct t_labels ls;
    rcu_register_thread();
    while (!atomic_load(&stop)) {
        r = r * 1103515245u + 12345u;
        int k = (int)((r >> 16) % NKEYS);
        key_labels(&ls, k, ns, metric);
        int64_t ts = atomic_fetch_add(&clock_ts, 1) + 1;
        CHECK_EQ(t_write1(st, &ls, ts, 1.0), 0);
        int64_t newest = key_newest(k);
        if (newest < ts && atomic_load(&max_stale_sent[k]) <= ts) {
            fprintf(stderr, "lost sample: key %d ts %lld newest %lld last stale %lld\n", k, (long long)ts,
                    (long long)newest, (long long)atomic_load(&max_stale_sent[k]));
            abort();
        }
        atomic_fetch_add(&checks, 1);
    }
    rcu_unregister_thread();
    return NULL;
}

static void *dead_staler(void *arg)
{
    unsigned r = (unsigned)(uintptr_t)arg;
    char ns[16], metric[16];
    struct t_labels ls;
    rcu_register_thread();
    while (!atomic_load(&stop)) {
        r = r * 1103515245u + 12345u;
        int k = (int)((r >> 16) % NKEYS);
        key_labels(&ls, k, ns, metric);
        int64_t ts = atomic_fetch_add(&clock_ts, 1) + 1;
        /* Announce before sending: a writer that checks afterwards must see it. */
        long long prev = atomic_load(&max_stale_sent[k]);
        while (prev < ts && !atomic_compare_exchange_weak(&max_stale_sent[k], &prev, ts))
            ;
        CHECK_EQ(t_write1(st, &ls, ts, api_stale_nan()), 0);
    }
    rcu_unregister_thread();
    return NULL;
}

static void *dead_reaper(void *arg)
{
    rcu_register_thread();
    while (!atomic_load(&stop))
        store_reap(st, 0); /* nothing expires: this only removes empty groups and metrics */
    rcu_unregister_thread();
    return NULL;
}

static void run_dead(void)
{
    pthread_t th[64];
    int n = 0;
    st = mk(4);
    atomic_store(&stop, 0);
    atomic_store(&clock_ts, 1000);
    atomic_store(&checks, 0);
    for (int k = 0; k < NKEYS; k++)
        atomic_store(&max_stale_sent[k], 0);
    for (int i = 0; i < nwriters; i++)
        pthread_create(&th[n++], NULL, dead_writer, (void *)(uintptr_t)(i + 7));
    pthread_create(&th[n++], NULL, dead_staler, (void *)(uintptr_t)99);
    pthread_create(&th[n++], NULL, dead_reaper, NULL);
    usleep((useconds_t)(seconds * 1e6));
    atomic_store(&stop, 1);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);

    /* The counters agree with a walk. */
    struct store_stats ss;
    store_get_stats(st, &ss);
    uint64_t walked = 0, groups = 0, metrics = 0;
    rcu_read_lock();
    struct store_iter mi, gi, si;
    for (struct store_metric *m = store_metric_first(st, &mi); m; m = store_metric_next(st, &mi)) {
        uint64_t per = 0;
        metrics++;
        for (struct store_group *g = store_group_first(m, &gi); g; g = store_group_next(m, &gi)) {
            uint64_t in = 0;
            groups++;
            for (struct store_series *s = store_series_first(g, &si); s; s = store_series_next(g, &si))
                in++;
            CHECK_EQ(in, store_group_series(g));
            per += in;
        }
        CHECK_EQ(per, store_metric_series(m));
        walked += per;
    }
    rcu_read_unlock();
    printf("dead: %lld checked writes, %llu created, %llu stale deletes, %llu live, %llu groups\n",
           (long long)checks, (unsigned long long)ss.series_created, (unsigned long long)ss.deleted_stale,
           (unsigned long long)ss.series_live, (unsigned long long)ss.groups_live);
    CHECK(atomic_load(&checks) > 0);
    CHECK_EQ(walked, ss.series_live);
    CHECK_EQ(groups, ss.groups_live);
    CHECK_EQ(metrics, ss.metrics_live);
    CHECK_EQ(ss.series_created - ss.deleted_stale, ss.series_live);

    /* Delete everything: nothing is left behind. */
    int64_t ts = atomic_load(&clock_ts) + 1;
    char ns[16], metric[16];
    struct t_labels ls;
    for (int k = 0; k < NKEYS; k++) {
        key_labels(&ls, k, ns, metric);
        CHECK_EQ(t_write1(st, &ls, ts, api_stale_nan()), 0);
    }
    store_reap(st, 0);
    store_get_stats(st, &ss);
    CHECK_EQ(ss.series_live, 0);
    CHECK_EQ(ss.groups_live, 0);
    CHECK_EQ(ss.metrics_live, 0);
    store_free(st);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        seconds = atof(argv[1]);
    if (argc > 2)
        nreaders = atoi(argv[2]);
    if (argc > 3)
        nwriters = atoi(argv[3]);
    if (argc > 4)
        tsan_mode = strcmp(argv[4], "tsan") == 0;
    if (nreaders < 1 || nreaders > 30 || nwriters < 1 || nwriters > 30 || (argc > 4 && !tsan_mode)) {
        fprintf(stderr, "usage: %s [seconds] [readers 1-30] [writers 1-30] [tsan]\n", argv[0]);
        return 2;
    }
    if (tsan_mode)
        window_ms = 32; /* at most 33 samples: always inline */
    rcu_register_thread();
    run_torn();
    if (!tsan_mode)
        run_dead();
    ml_shutdown();
    rcu_unregister_thread();
    printf("test_store_stress: ok\n");
    return 0;
}
