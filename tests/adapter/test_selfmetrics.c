/* Unit tests of adapter/selfmetrics.c: static counters grouped by family, collectors, unregister. */
#include "selfmetrics.h"

#include <errno.h>

#include <maplib/maplib.h>

#include "expo.h"
#include "check.h"

SM_COUNTER(c_dup, "test_dropped_total", "reason=\"duplicate\"", "Samples dropped, by reason.");
SM_COUNTER(c_old, "test_dropped_total", "reason=\"too_old\"", "Samples dropped, by reason.");
SM_GAUGE(g_live, "test_live", NULL, "Live things.");
static const double lat_bounds[] = {0.1, 1};
SM_HISTOGRAM(h_lat, "test_latency_seconds", "listener=\"x\"", "Latency.", lat_bounds, 2)

static int ncollect;

static void collect(void *ctx, struct buf *out)
{
    ncollect++;
    expo_header(out, "test_collected", "gauge", "From a collector.");
    const char *labels[] = {"who", (const char *)ctx, NULL};
    expo_sample(out, "test_collected", labels, 0.5);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

int main(void)
{
    rcu_register_thread();
    selfmetrics_init();
    sm_inc(&c_dup);
    sm_add(&c_dup, 41);
    sm_inc(&c_old);
    sm_set(&g_live, 10);
    sm_sub(&g_live, 3);
    sm_observe(&h_lat, 0.05);
    sm_observe(&h_lat, 0.1); /* le is inclusive */
    sm_observe(&h_lat, 0.5);
    sm_observe(&h_lat, 7);

    CHECK_EQ(selfmetrics_register(collect, "a"), 0);
    CHECK_EQ(selfmetrics_register(collect, "a"), -EEXIST);
    CHECK_EQ(selfmetrics_register(collect, "b"), 0);

    struct buf b = BUF_INIT;
    selfmetrics_render(&b);
    CHECK_EQ(ncollect, 2);
    /* One header per family, both label sets under it. */
    CHECK_EQ(count(b.data, "# TYPE test_dropped_total counter\n"), 1);
    CHECK_EQ(count(b.data, "# HELP test_dropped_total "), 1);
    CHECK_HAS(b.data, "test_dropped_total{reason=\"duplicate\"} 42\n");
    CHECK_HAS(b.data, "test_dropped_total{reason=\"too_old\"} 1\n");
    CHECK_HAS(b.data, "# TYPE test_live gauge\ntest_live 7\n");
    /* Histograms: cumulative buckets, +Inf, sum and count with the static labels. */
    CHECK_HAS(b.data, "# TYPE test_latency_seconds histogram\n"
                      "test_latency_seconds_bucket{listener=\"x\",le=\"0.1\"} 2\n"
                      "test_latency_seconds_bucket{listener=\"x\",le=\"1\"} 3\n"
                      "test_latency_seconds_bucket{listener=\"x\",le=\"+Inf\"} 4\n"
                      "test_latency_seconds_sum{listener=\"x\"} 7.65\n"
                      "test_latency_seconds_count{listener=\"x\"} 4\n");
    CHECK_HAS(b.data, "test_collected{who=\"a\"} 0.5\n");
    CHECK_HAS(b.data, "test_collected{who=\"b\"} 0.5\n");
    /* Built-ins. */
    static const char *builtin[] = {
        "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes ",
        "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 1",
        "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total ",
        "# TYPE process_open_fds gauge\nprocess_open_fds ",
        "metrics_adapter_build_info{version=\"",
        "metrics_adapter_map_live_entries ",
        "metrics_adapter_map_pending_entries ",
        "metrics_adapter_map_reclaimed_entries_total ",
        "metrics_adapter_map_buckets ",
        "metrics_adapter_map_resizes_total ",
    };
    for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
        CHECK_HAS(b.data, builtin[i]);
    /* Every line is a comment or "name[{labels}] value". */
    for (char *line = strtok(b.data, "\n"); line; line = strtok(NULL, "\n"))
        CHECK(line[0] == '#' || strchr(line, ' '));

    /* After unregister the collector never runs again. */
    selfmetrics_unregister(collect, "a");
    buf_reset(&b);
    ncollect = 0;
    selfmetrics_render(&b);
    CHECK_EQ(ncollect, 1);
    CHECK(!strstr(b.data, "who=\"a\""));
    selfmetrics_shutdown();
    buf_reset(&b);
    ncollect = 0;
    selfmetrics_render(&b);
    CHECK_EQ(ncollect, 0);
    buf_free(&b);
    ml_shutdown();
    rcu_unregister_thread();
    printf("test_selfmetrics: ok\n");
    return 0;
}
