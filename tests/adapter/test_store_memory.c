/*
 * Bytes of resident memory per live series, and memory given back after
 * they are all deleted (label memory: plain build, run serially).
 *
 *   test_store_memory [series]        (default 200000)
 *
 * The shape of issue 8's target: 6 labels (__name__, container, instance,
 * job, namespace, pod; 20 namespaces), one sample every 15 s, a 2 m window
 * (9 samples held per series). Asserts at most MAX_BYTES_PER_SERIES of RSS
 * per series (everything included: entries, keys, sample rings, maplib's
 * bucket arrays, malloc overhead), then stale-marks every series, lets the
 * reaper remove the groups, waits for the reclaims and asserts that RSS is
 * back within RSS_BACK_SLACK of where it started.
 */

#include <malloc.h>
#include <unistd.h>

#include "test_store.h"

#define MAX_BYTES_PER_SERIES 400
#define RSS_BACK_SLACK       (8 << 20)

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    CHECK(f);
    CHECK_EQ(fscanf(f, "%ld %ld", &pages, &res), 2);
    fclose(f);
    return res * sysconf(_SC_PAGESIZE);
}

struct lab {
    char pod[48], inst[32], ns[16];
    struct api_rw_label l[6];
};

static void make(struct lab *x, int i)
{
    snprintf(x->pod, sizeof x->pod, "app-%08x-%05d", (unsigned)i * 2654435761u, i % 100000);
    snprintf(x->inst, sizeof x->inst, "10.%d.%d.%d:8080", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    snprintf(x->ns, sizeof x->ns, "ns-%d", i % 20);
    struct api_rw_label l[6] = {
        {"__name__", "http_requests_total", 8, 19},          {"container", "app", 9, 3},
        {"instance", x->inst, 8, (uint32_t)strlen(x->inst)}, {"job", "kubernetes-pods", 3, 15},
        {"namespace", x->ns, 9, (uint32_t)strlen(x->ns)},    {"pod", x->pod, 3, (uint32_t)strlen(x->pod)},
    };
    memcpy(x->l, l, sizeof l);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 200000;
    const int64_t T0 = 1700000000000LL;
    struct store_config cfg = {0}; /* 2 m window, 5 m TTL */
    struct store *st;
    struct store_stats ss;
    struct lab x;

    rcu_register_thread();
    CHECK_EQ(store_new(&cfg, &st), 0);
    malloc_trim(0);
    long r0 = rss_bytes();

    for (int k = 0; k < 9; k++) {
        struct store_tally t = {0};
        for (int i = 0; i < n; i++) {
            make(&x, i);
            struct api_rw_sample s = {.value = (double)(i + k), .timestamp_ms = T0 + 15000LL * k};
            CHECK_EQ(store_write(st, x.l, 6, &s, 1, &t), 0);
        }
        store_tally_flush(st, &t);
    }
    /* Let maplib's maintenance thread settle the bucket arrays it queued. */
    usleep(500000);
    long r1 = rss_bytes();
    store_get_stats(st, &ss);
    CHECK_EQ(ss.series_live, (uint64_t)n);
    CHECK_EQ(ss.samples_accepted, 9ULL * n);
    CHECK_EQ(ss.heap_blocks, 0);
    double per = (double)(r1 - r0) / n;
    printf("%d series, 6 labels, 9 samples each: %.1f bytes of RSS per series (limit %d)\n", n, per,
           MAX_BYTES_PER_SERIES);
    CHECK_OP(per, <=, MAX_BYTES_PER_SERIES);

    /* Delete everything with stale markers; the reaper pass removes the empty groups. */
    struct store_tally t = {0};
    for (int i = 0; i < n; i++) {
        make(&x, i);
        struct api_rw_sample s = {.value = api_stale_nan(), .timestamp_ms = T0 + 15000LL * 9};
        CHECK_EQ(store_write(st, x.l, 6, &s, 1, &t), 0);
    }
    store_tally_flush(st, &t);
    store_reap(st, T0 + 15000LL * 9);
    store_get_stats(st, &ss);
    CHECK_EQ(ss.series_live, 0);
    CHECK_EQ(ss.groups_live, 0);
    store_free(st); /* waits for every reclaim */
    malloc_trim(0);
    long r2 = rss_bytes();
    printf("RSS: %.1f MiB before, %.1f MiB with the series, %.1f MiB after deleting them all\n",
           r0 / 1048576.0, r1 / 1048576.0, r2 / 1048576.0);
    CHECK_OP(r2, <=, r0 + RSS_BACK_SLACK);
    ml_shutdown();
    rcu_unregister_thread();
    printf("test_store_memory: ok\n");
    return 0;
}
