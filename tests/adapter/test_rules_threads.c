/*
 * The rules module's thread-safety claim: one immutable set queried by many
 * threads at once (ingest's rules_series_uses, reads' lookups and selection)
 * gives every thread the same answers as a single thread does, and each
 * thread's PCRE2 match block is its own. Run in the plain and ASan builds
 * (unit) and under TSan (tsan), where a shared match block would be a race.
 *
 * Usage: test_rules_threads CONFIG [threads] [iterations]
 *        test_rules_threads --bench CONFIG|--defaults   (single-thread costs)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "check.h"

static const struct rules_set *set;
static int iterations;

static const struct rules_label series[][4] = {
    {{"__name__", "container_cpu_usage_seconds_total"},
     {"container", "app"},
     {"namespace", "ns1"},
     {"pod", "p1"}},
    {{"__name__", "container_memory_rss"}, {"container", "app"}, {"namespace", "ns1"}, {"pod", "p2"}},
    {{"__name__", "http_requests_total"}, {"namespace", "ns1"}, {"pod", "p3"}, {"service", "web"}},
    {{"__name__", "job_duration_seconds_total"}, {"job", "j"}, {"namespace", "ns2"}, {"pod", "p4"}},
};
#define NS (sizeof(series) / sizeof(series[0]))

/* What one thread computes; every thread must get the same. */
struct answer {
    char metric[NS][RULES_NAME_MAX];
    size_t uses[NS], targets[NS];
    char source[NS][RULES_NAME_MAX];
    bool selected[NS];
};

static void compute(struct answer *a)
{
    memset(a, 0, sizeof(*a));
    for (size_t i = 0; i < NS; i++) {
        struct rules_use u[4];
        a->uses[i] = rules_series_uses(set, series[i], 4, RULES_TYPE_UNKNOWN, u, 4);
        if (!a->uses[i])
            continue;
        snprintf(a->metric[i], sizeof(a->metric[i]), "%s", u[0].metric);
        struct rules_target t[8];
        a->targets[i] = rules_lookup_custom(set, "pods", u[0].metric, t, 8);
        for (size_t k = 0; k < a->targets[i] && k < 8; k++) {
            if (t[k].rule == u[0].rule) {
                snprintf(a->source[i], sizeof(a->source[i]), "%s", t[k].source);
                a->selected[i] = rules_series_selected(&t[k], series[i], 4,
                                                       rules_label_value(series[i], 4, "namespace"), NULL);
            }
        }
    }
}

static struct answer reference;

static void *worker(void *arg)
{
    struct answer a;
    for (int n = 0; n < iterations; n++) {
        compute(&a);
        if (memcmp(&a, &reference, sizeof(a)) != 0) {
            fprintf(stderr, "thread %ld: answer %d differs from the single-threaded one\n",
                    (long)(intptr_t)arg, n);
            abort();
        }
    }
    return NULL;
}

/* ns per rules_series_wanted() and per rules_lookup_custom() on one thread. */
static int bench(const char *config)
{
    struct rules_set *s;
    char err[RULES_ERR_MAX];
    int rc = strcmp(config, "--defaults") == 0 ? rules_default(NULL, &s, err, sizeof(err))
                                               : rules_load_file(config, &s, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    static const struct rules_label l[] = {
        {"__name__", "http_requests_total"}, {"container", "app"}, {"instance", "10.0.0.1:8080"},
        {"job", "kubernetes-pods"},          {"namespace", "ns1"}, {"pod", "web-abc"},
    };
    const int n = 200000;
    volatile size_t sink = 0;
    struct rules_target t[16];
    double t0 = t_now();
    for (int i = 0; i < n; i++)
        sink += rules_series_wanted(s, l, 6, RULES_TYPE_UNKNOWN);
    double t1 = t_now();
    for (int i = 0; i < n; i++)
        sink += rules_lookup_custom(s, "pods", "http_requests", t, 16);
    double t2 = t_now();
    printf("%s: rules_series_wanted %.0f ns/series, rules_lookup_custom %.0f ns/lookup (%zu)\n", config,
           (t1 - t0) / n * 1e9, (t2 - t1) / n * 1e9, (size_t)sink);
    rules_free(s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--bench") == 0)
        return bench(argv[2]);
    if (argc < 2) {
        fprintf(stderr, "usage: %s CONFIG [threads] [iterations]\n", argv[0]);
        return 2;
    }
    int threads = argc > 2 ? atoi(argv[2]) : 4;
    iterations = argc > 3 ? atoi(argv[3]) : 2000;
    struct rules_set *s;
    char err[RULES_ERR_MAX];
    if (rules_load_file(argv[1], &s, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    set = s;
    compute(&reference);
    /* the stock shape: every series is served by exactly one rule */
    for (size_t i = 0; i < NS; i++) {
        CHECK_EQ(reference.uses[i], 1);
        CHECK(reference.selected[i]);
    }
    CHECK_STR(reference.metric[0], "cpu_usage");
    CHECK_STR(reference.source[2], "http_requests_total");
    pthread_t th[64];
    if (threads > 64)
        threads = 64;
    double t0 = t_now();
    for (int i = 0; i < threads; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i), 0);
    for (int i = 0; i < threads; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    printf("test_rules_threads: ok (%d threads x %d rounds in %.2f s)\n", threads, iterations, t_now() - t0);
    rules_free(s);
    return 0;
}
