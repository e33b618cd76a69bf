/*
 * query: evaluation against a real store, and its label indexes under churn.
 *
 *   test_query [seconds]
 *
 * 1. Values: a group large enough for the indexes (40 pods x 10 series) and
 *    a small one (walked): object, wildcard and selector reads give the same
 *    sums either way; a series idle past the TTL is not served.
 * 2. Churn (the stress part, run under ASan): a writer creates and
 *    stale-deletes series of the large group while reader threads keep
 *    reading through the indexes, each read in its own read-side section.
 *    An index built before a delete must never be used after it: ASan
 *    reports a use-after-free if it is, and every read must still see the
 *    ten permanent series of its pod.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <urcu.h>

#include <maplib/maplib.h>

#include "query.h"
#include "check.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put(struct store *st, const char *metric, const char *ns, const char *pod, const char *s,
                double v, int64_t t)
{
    struct api_rw_label l[4] = {
        {"__name__", metric, (uint32_t)strlen(metric), (uint32_t)strlen(metric)},
        {"namespace", ns, 9, (uint32_t)strlen(ns)},
        {"pod", pod, 3, (uint32_t)strlen(pod)},
        {"s", s, 1, (uint32_t)strlen(s)},
    };
    l[0].name_len = 8;
    struct api_rw_sample smp = {v, t};
    struct store_tally tally = {0};
    CHECK_EQ(store_write(st, l, 4, &smp, 1, &tally), 0);
    store_tally_flush(st, &tally);
}

static void stale(struct store *st, const char *metric, const char *ns, const char *pod, const char *s,
                  int64_t t)
{
    uint64_t bits = 0x7ff0000000000002ull;
    double v;
    memcpy(&v, &bits, sizeof v);
    put(st, metric, ns, pod, s, v, t);
}

struct env {
    struct store *st;
    struct rules_set *rules;
    int64_t base;
};

/* Evaluate one read; returns rc, fills the sum of values and the item count. */
static int read1(struct env *e, const char *metric, const char *pod, const char *lsel, double *sum, size_t *n)
{
    struct sel_selector *sel = NULL;
    if (lsel)
        CHECK_EQ(sel_parse(lsel, strlen(lsel), &sel, NULL, 0), 0);
    struct query_request q = {
        .ns = "ns",
        .resource = "pods",
        .name = pod,
        .metric = metric,
        .label_sel = sel,
        .now_ms = now_ms(),
        .ttl_ms = 300000,
    };
    struct query_result r;
    rcu_read_lock();
    int rc = query_eval(e->rules, e->st, &q, &r);
    rcu_read_unlock();
    *sum = 0;
    *n = r.n;
    for (size_t i = 0; i < r.n; i++)
        *sum += r.items[i].value;
    query_result_free(&r);
    sel_free(sel);
    return rc;
}

static void values(struct env *e)
{
    char pod[16], s[4];
    /* big: 40 pods x 10 series, series k of pod p holds p + k/4 (exact in binary). */
    for (int p = 0; p < 40; p++)
        for (int k = 0; k < 10; k++) {
            snprintf(pod, sizeof pod, "p%02d", p);
            snprintf(s, sizeof s, "%d", k);
            put(e->st, "big", "ns", pod, s, p + k * 0.25, e->base);
        }
    /* small: 3 pods x 2 series (walked, not indexed). */
    for (int p = 0; p < 3; p++)
        for (int k = 0; k < 2; k++) {
            snprintf(pod, sizeof pod, "p%02d", p);
            snprintf(s, sizeof s, "%d", k);
            put(e->st, "small", "ns", pod, s, 1, e->base);
        }
    put(e->st, "old", "ns", "p00", "0", 1, e->base - 400000);

    double sum;
    size_t n;
    for (int round = 0; round < 3; round++) { /* the first builds the indexes, the others use them */
        CHECK_EQ(read1(e, "big", "p07", NULL, &sum, &n), 0);
        CHECK_EQ(n, 1);
        CHECK(sum == 70 + 0.25 * 45);
        CHECK_EQ(read1(e, "big", NULL, NULL, &sum, &n), 0);
        CHECK_EQ(n, 40);
        CHECK(sum == 10 * (39 * 40 / 2) + 40 * 0.25 * 45);
        CHECK_EQ(read1(e, "big", NULL, "s in (1,2)", &sum, &n), 0);
        CHECK_EQ(n, 40);
        CHECK(sum == 2 * (39 * 40 / 2) + 40 * 0.75);
        CHECK_EQ(read1(e, "big", NULL, "s=3,pod!=p00", &sum, &n), 0);
        CHECK_EQ(n, 39);
        /* Two equalities: the smaller slice narrowed by the other's, either order. */
        CHECK_EQ(read1(e, "big", NULL, "s=3,pod=p05", &sum, &n), 0);
        CHECK(n == 1 && sum == 5 + 0.75);
        CHECK_EQ(read1(e, "big", NULL, "pod==p05,s in (9)", &sum, &n), 0);
        CHECK(n == 1 && sum == 5 + 2.25);
        CHECK_EQ(read1(e, "big", NULL, "s in (1,2),pod=p05", &sum, &n), 0);
        CHECK(n == 1 && sum == 10 + 0.75);
        CHECK_EQ(read1(e, "big", NULL, "s=3,pod=p99", &sum, &n), -ENOENT);
        CHECK_EQ(read1(e, "big", NULL, "s=3,nolabel=x", &sum, &n), -ENOENT);
        CHECK_EQ(read1(e, "big", "nope", NULL, &sum, &n), -ENOENT);
        CHECK_EQ(read1(e, "small", "p01", NULL, &sum, &n), 0);
        CHECK(n == 1 && sum == 2);
        CHECK_EQ(read1(e, "old", NULL, NULL, &sum, &n), -ENOENT);
    }
}

static void *values_thread(void *arg)
{
    rcu_register_thread();
    values(arg);
    rcu_unregister_thread();
    return NULL;
}

struct churn {
    struct env *e;
    volatile int stop;
    unsigned long reads;
};

/* Transient series live while the next TRANSIENT are created, so that indexes
 * do hold series that are deleted (and freed) while readers keep reading. */
#define TRANSIENT 8

static void transient_key(unsigned long i, char *pod, size_t podlen, char *s, size_t slen)
{
    snprintf(pod, podlen, "p%02lu", i % 40);
    snprintf(s, slen, "%c", (int)('a' + (i / 40) % 6));
}

static void *writer(void *arg)
{
    struct churn *c = arg;
    rcu_register_thread();
    char pod[16], s[4];
    int64_t t = c->e->base + 1;
    for (unsigned long i = 0; !c->stop; i++) {
        transient_key(i, pod, sizeof pod, s, sizeof s);
        put(c->e->st, "big", "ns", pod, s, 1, t++);
        if (i >= TRANSIENT) {
            transient_key(i - TRANSIENT, pod, sizeof pod, s, sizeof s);
            stale(c->e->st, "big", "ns", pod, s, t++);
        }
        if (i % 64 == 0) {
            struct timespec d = {0, 200000}; /* let readers use their indexes for a while */
            nanosleep(&d, NULL);
        }
    }
    rcu_unregister_thread();
    return NULL;
}

static void *reader(void *arg)
{
    struct churn *c = arg;
    rcu_register_thread();
    char pod[16];
    unsigned long n = 0;
    while (!c->stop) {
        double sum;
        size_t items;
        snprintf(pod, sizeof pod, "p%02lu", n % 40);
        CHECK_EQ(read1(c->e, "big", pod, NULL, &sum, &items), 0);
        /* the ten permanent series (p + k/4), plus at most TRANSIENT transient ones of value 1 */
        double perm = 10.0 * (double)(n % 40) + 0.25 * 45;
        CHECK(items == 1 && sum >= perm && sum <= perm + TRANSIENT);
        CHECK_EQ(read1(c->e, "big", NULL, "s=3", &sum, &items), 0);
        CHECK_EQ(items, 40);
        n++;
    }
    __atomic_fetch_add(&c->reads, n, __ATOMIC_RELAXED);
    rcu_unregister_thread();
    return NULL;
}

int main(int argc, char **argv)
{
    int seconds = argc > 1 ? atoi(argv[1]) : 2;
    rcu_register_thread();
    struct store_config cfg = {0};
    struct env e = {.base = now_ms() - 60000};
    CHECK_EQ(store_new(&cfg, &e.st), 0);
    CHECK_EQ(rules_default(NULL, &e.rules, NULL, 0), 0);

    /* On a thread of its own: the per-thread indexes are freed when a thread exits. */
    pthread_t v;
    pthread_create(&v, NULL, values_thread, &e);
    pthread_join(v, NULL);

    struct churn c = {.e = &e};
    pthread_t w, r[2];
    pthread_create(&w, NULL, writer, &c);
    for (int i = 0; i < 2; i++)
        pthread_create(&r[i], NULL, reader, &c);
    struct timespec d = {seconds, 0};
    nanosleep(&d, NULL);
    c.stop = 1;
    pthread_join(w, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(r[i], NULL);
    CHECK(c.reads > 0);
    printf("test_query: ok (%lu reads under churn in %d s)\n", c.reads, seconds);

    rules_free(e.rules);
    store_free(e.st);
    ml_shutdown();
    rcu_unregister_thread();
    return 0;
}
