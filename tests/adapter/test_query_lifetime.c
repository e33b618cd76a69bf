/*
 * query: what a read keeps beyond its read-side section.
 *
 * 1. A label index built while a series of its group is being unlinked
 *    (after the unlink's generation bump, before its ml_delete: the store's
 *    test hook runs a read there, on the same thread, so the index lands in
 *    that thread's cache) must not be used once the series is freed. ASan
 *    reports the use after free if it is; the sum tells in any build.
 *
 * 2. An external read's label names and values stay readable after the rule
 *    set it was evaluated with is freed (a reload frees the old set after a
 *    grace period, while the server still encodes the answer).
 *
 * Built with the store compiled with STORE_TEST_HOOKS (tests/adapter/CMakeLists.txt).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <urcu.h>

#include <maplib/maplib.h>

#include "check.h"
#include "query.h"

extern void (*store_test_unlink_hook)(void);

static struct store *ST;
static struct rules_set *RULES;
static int64_t BASE;
static double in_window_sum = -1;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put(const char *metric, const char *pod, const char *s, double v, int64_t t)
{
    struct api_rw_label l[4] = {
        {"__name__", metric, 8, (uint32_t)strlen(metric)},
        {"namespace", "ns", 9, 2},
        {"pod", pod, 3, (uint32_t)strlen(pod)},
        {"s", s, 1, (uint32_t)strlen(s)},
    };
    struct api_rw_sample smp = {v, t};
    struct store_tally tally = {0};
    CHECK_EQ(store_write(ST, l, 4, &smp, 1, &tally), 0);
    store_tally_flush(ST, &tally);
}

/* An object read of metric "big" (sum over the pod's series). */
static double read_pod(const char *pod)
{
    struct query_request q = {
        .ns = "ns", .resource = "pods", .name = pod, .metric = "big", .now_ms = now_ms(), .ttl_ms = 300000};
    struct query_result r;
    rcu_read_lock();
    CHECK_EQ(query_eval(RULES, ST, &q, &r), 0);
    rcu_read_unlock();
    double sum = 0;
    for (size_t i = 0; i < r.n; i++)
        sum += r.items[i].value;
    query_result_free(&r);
    return sum;
}

static void in_window(void)
{
    store_test_unlink_hook = NULL;
    in_window_sum = read_pod("p06");
}

static void *lindex_unlink_window(void *arg)
{
    (void)arg;
    rcu_register_thread();
    char pod[16], s[4];
    /* 400 series in one group: object reads go through the pod label's index. */
    for (int p = 0; p < 40; p++)
        for (int k = 0; k < 10; k++) {
            snprintf(pod, sizeof pod, "p%02d", p);
            snprintf(s, sizeof s, "%d", k);
            put("big", pod, s, 1, BASE);
        }
    CHECK(read_pod("p05") == 10);
    store_test_unlink_hook = in_window;
    uint64_t bits = 0x7ff0000000000002ull; /* a stale marker: unlinks p05/s=3 */
    double stale;
    memcpy(&stale, &bits, sizeof stale);
    put("big", "p05", "3", stale, BASE + 1000);
    CHECK(in_window_sum == 10);
    rcu_barrier(); /* the unlinked series' reclaim has run */
    CHECK(read_pod("p05") == 9);
    CHECK(read_pod("p06") == 10);
    rcu_unregister_thread();
    return NULL;
}

static void external_after_rules_freed(void)
{
    static const char yaml[] = "externalRules:\n"
                               "- seriesQuery: '{__name__=\"queue_consumer_lag\",name!=\"\"}'\n"
                               "  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (name)\n"
                               "  resources:\n"
                               "    overrides: { namespace: {resource: \"namespace\"} }\n";
    struct rules_set *rules;
    char err[256] = "";
    if (rules_load_buffer(yaml, sizeof yaml - 1, &rules, err, sizeof err) != 0) {
        fprintf(stderr, "rules: %s\n", err);
        abort();
    }
    const char *queues[] = {"q1", "q2"};
    for (int i = 0; i < 2; i++) {
        struct api_rw_label l[3] = {
            {"__name__", "queue_consumer_lag", 8, 18},
            {"name", queues[i], 4, 2},
            {"namespace", "ns", 9, 2},
        };
        struct api_rw_sample smp = {i + 1, BASE};
        struct store_tally tally = {0};
        CHECK_EQ(store_write(ST, l, 3, &smp, 1, &tally), 0);
        store_tally_flush(ST, &tally);
    }
    struct query_request q = {
        .external = true, .ns = "ns", .metric = "queue_consumer_lag", .now_ms = now_ms(), .ttl_ms = 300000};
    struct query_result r;
    rcu_read_lock();
    CHECK_EQ(query_eval(rules, ST, &q, &r), 0);
    rcu_read_unlock();
    synchronize_rcu();
    rules_free(rules); /* what a reload does to the old set */
    CHECK_EQ(r.n, 2);
    for (size_t i = 0; i < r.n; i++) {
        CHECK_EQ(r.items[i].nlabels, 1);
        CHECK_STR(r.items[i].lnames[0], "name");
        CHECK_STR(r.items[i].lvalues[0], queues[i]);
        CHECK(r.items[i].value == (double)(i + 1));
    }
    query_result_free(&r);
}

int main(void)
{
    rcu_register_thread();
    struct store_config cfg = {0};
    BASE = now_ms() - 60000;
    CHECK_EQ(store_new(&cfg, &ST), 0);
    CHECK_EQ(rules_default(NULL, &RULES, NULL, 0), 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, lindex_unlink_window, NULL), 0);
    pthread_join(t, NULL);
    external_after_rules_freed();
    rules_free(RULES);
    store_free(ST);
    ml_shutdown();
    rcu_unregister_thread();
    printf("ok\n");
    return 0;
}
