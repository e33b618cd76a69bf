/*
 * The group walk of the reaper and of compaction: read-side sections of at
 * most 1,024 series, each resumed after the last series left linked, looked
 * up by its key. One group several sections long, expired and live series
 * interleaved; then a hook (STORE_TEST_HOOKS) that deletes the anchor at the
 * end of every section, so each section is followed by a restart, until the
 * walk finishes the rest in one section (after WALK_RESTARTS = 3 restarts).
 */

#include "region.h"
#include "test_store.h"

extern void (*store_test_walk_hook)(struct store_series *anchor);

enum { N = 5000, T_OLD = 1000, T_NEW = 400000, TTL = 300000, WALK_RESTARTS = 3 };

static struct store *ST;
static int hook_calls;
static char by_hook[N]; /* pods the hook deleted */

static int put_pod(int i, int64_t ts, double v)
{
    char pod[16];
    struct t_labels ls;
    snprintf(pod, sizeof pod, "p%05d", i);
    T_LABELS(&ls, "__name__", "m", "namespace", "ns", "pod", pod);
    return t_write1(ST, &ls, ts, v);
}

static int pod_index(const struct store_series *s)
{
    const char *v;
    size_t len;
    CHECK(store_series_label(s, "pod", &v, &len));
    CHECK_EQ(len, 6); /* "p%05d", not NUL-terminated */
    int i = 0;
    for (size_t k = 1; k < len; k++)
        i = i * 10 + (v[k] - '0');
    return i;
}

/* Delete the anchor with a stale marker, as a scrape that lost its target would. */
static void delete_anchor(struct store_series *anchor)
{
    int i = pod_index(anchor);
    hook_calls++;
    by_hook[i] = 1;
    CHECK_EQ(put_pod(i, T_NEW + 1, api_stale_nan()), 0);
}

/* Which pods the group holds, each with its one sample checked (value = index). */
static size_t present(char *out)
{
    struct api_rw_sample smp[4];
    size_t n = 0;
    memset(out, 0, N);
    rcu_read_lock();
    struct store_group *g = store_group_lookup(ST, "m", 1, "ns", 2);
    struct store_iter it;
    for (struct store_series *s = g ? store_series_first(g, &it) : NULL; s; s = store_series_next(g, &it)) {
        int i = pod_index(s);
        CHECK(i >= 0 && i < N && !out[i]);
        CHECK_EQ(store_series_snapshot(s, smp, 4), 1);
        CHECK(smp[0].value == (double)i);
        out[i] = 1;
        n++;
    }
    rcu_read_unlock();
    return n;
}

static void fill(int with_expired)
{
    struct store_config cfg = {.rate_window_ms = 120000, .series_ttl_ms = TTL, .inline_samples = 2};
    CHECK_EQ(store_new(&cfg, &ST), 0);
    for (int i = 0; i < N; i++)
        CHECK_EQ(put_pod(i, with_expired && (i & 1) ? T_OLD : T_NEW, (double)i), 0);
    memset(by_hook, 0, sizeof by_hook);
    hook_calls = 0;
}

/* Odd pods expired, even ones fresh: exactly the odd ones go, whatever the sections. */
static void test_reap(int hook)
{
    char have[N];
    fill(1);
    store_test_walk_hook = hook ? delete_anchor : NULL;
    CHECK_EQ(store_reap(ST, T_NEW), N / 2);
    store_test_walk_hook = NULL;
    /* The hook ran once per section until the walk stopped restarting; it only ever sees fresh pods. */
    CHECK_EQ(hook_calls, hook ? WALK_RESTARTS : 0);
    size_t n = present(have);
    CHECK_EQ(n, (size_t)(N / 2 - hook_calls));
    for (int i = 0; i < N; i++) {
        CHECK(!by_hook[i] || !(i & 1));
        CHECK_EQ(have[i], !(i & 1) && !by_hook[i]);
    }
    struct store_stats ss;
    store_get_stats(ST, &ss);
    CHECK_EQ(ss.series_live, n);
    store_free(ST);
}

/* Every series moved exactly once, restarts or not; the moved copies read the same. */
static void test_compact(int hook)
{
    char have[N];
    fill(0);
    store_test_walk_hook = hook ? delete_anchor : NULL;
    CHECK_EQ(store_compact(ST), N);
    store_test_walk_hook = NULL;
    CHECK_EQ(hook_calls, hook ? WALK_RESTARTS : 0);
    CHECK_EQ(present(have), (size_t)(N - hook_calls));
    for (int i = 0; i < N; i++)
        CHECK_EQ(have[i], !by_hook[i]);
    rcu_read_lock();
    struct store_group *g = store_group_lookup(ST, "m", 1, "ns", 2);
    struct store_iter it;
    for (struct store_series *s = store_series_first(g, &it); s; s = store_series_next(g, &it))
        CHECK(region_contains(s));
    rcu_read_unlock();
    store_free(ST);
    CHECK_EQ(region_mapped_bytes(), 0);
}

int main(void)
{
    rcu_register_thread();
    test_reap(0);
    test_reap(1);
    test_compact(0);
    test_compact(1);
    ml_shutdown();
    rcu_unregister_thread();
    printf("test_store_walk: ok\n");
    return 0;
}
