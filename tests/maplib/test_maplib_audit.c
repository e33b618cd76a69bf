/*
 * Unit tests of maplib's audit functions: counters summed per map name
 * (ml_stats_by_name) that never go backwards when a map is destroyed, the
 * walk of live maps (ml_maps_each) and the chain-length histogram
 * (ml_map_chain_hist), whose counts must account for every entry.
 */

#include <errno.h>

#include "ml_test.h"

T_DEFINE_COUNTERS;

#define NBINS 8

struct found {
    const char *name;
    struct ml_stats st;
    int seen;
};

static void by_name(void *ctx, const char *name, const struct ml_stats *st)
{
    struct found *f = ctx;
    if (strcmp(name, f->name) == 0) {
        f->st = *st;
        f->seen++;
    }
}

/* The sums for @name; every field 0 when no map of that name ever existed. */
static struct ml_stats kind(const char *name)
{
    struct found f = {.name = name};
    ml_stats_by_name(by_name, &f);
    CHECK(f.seen <= 1);
    return f.st;
}

struct visit {
    const char *name;
    int maps;
    uint64_t live, chained, nonempty, buckets;
};

static int visit(void *ctx, struct ml_map *map)
{
    struct visit *v = ctx;
    if (strcmp(ml_map_name(map), v->name) != 0)
        return 0;
    uint64_t hist[NBINS];
    struct ml_stats st;
    ml_map_stats(map, &st);
    rcu_read_lock();
    uint64_t nonempty = ml_map_chain_hist(map, hist, NBINS);
    rcu_read_unlock();
    uint64_t sum = 0;
    for (int i = 0; i < NBINS; i++) {
        sum += hist[i];
        v->chained += hist[i] * (uint64_t)(i + 1);
    }
    CHECK_EQ(hist[NBINS - 1], 0); /* small tables: no chain of 8 */
    CHECK_EQ(sum, nonempty);
    CHECK(nonempty <= st.buckets);
    v->maps++;
    v->live += st.live;
    v->nonempty += nonempty;
    v->buckets += st.buckets;
    return 0;
}

static void fill(struct ml_map *m, const char *prefix, unsigned n, struct t_ent **out)
{
    char key[20];
    for (unsigned i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "%s%u", prefix, i);
        out[i] = t_ent_new(key, i);
        CHECK_EQ(ml_insert(m, &out[i]->node, NULL), 0);
    }
}

int main(void)
{
    struct ml_map_config ca = {.name = "audit_a", .min_buckets = 4, .reclaim = t_reclaim};
    struct ml_map_config cb = {.name = "audit_b", .min_buckets = 1, .reclaim = t_reclaim};
    struct ml_map *a, *b;
    static struct t_ent *ea[300], *eb[10];

    rcu_register_thread();
    CHECK_EQ(ml_map_new(&ca, &a), 0);
    CHECK_EQ(ml_map_new(&cb, &b), 0);
    fill(a, "a", 300, ea);
    fill(b, "b", 10, eb);
    for (unsigned i = 0; i < 50; i++)
        CHECK_EQ(ml_delete(a, &ea[i]->node), 0);
    CHECK(WAIT_UNTIL(kind("audit_a").reclaimed == 50, 10));

    struct ml_stats s = kind("audit_a");
    CHECK_EQ(s.inserts, 300);
    CHECK_EQ(s.deletes, 50);
    CHECK_EQ(s.live, 250);
    CHECK_EQ(s.pending, 0);
    CHECK_EQ(kind("audit_b").live, 10);
    CHECK_EQ(kind("audit_none").inserts, 0);

    /* The walk sees each live map once; chains account for every entry. */
    /* Buckets follow the counts before the histograms are read: without this
     * b's 10 entries may still share one bucket if the maintenance thread has
     * not run yet, and the "no chain of 8" check would depend on timing. */
    ml_map_maintain(a);
    ml_map_maintain(b);
    struct visit va = {.name = "audit_a"}, vb = {.name = "audit_b"};
    ml_maps_each(visit, &va);
    ml_maps_each(visit, &vb);
    CHECK_EQ(va.maps, 1);
    CHECK_EQ(vb.maps, 1);
    CHECK_EQ(va.chained, 250);
    CHECK_EQ(vb.chained, 10);
    CHECK(va.nonempty > 250 / 4); /* a seeded hash spreads 250 keys over the buckets */

    /* Destroying a map keeps its totals under its name. */
    CHECK_EQ(ml_map_destroy(a), 0);
    s = kind("audit_a");
    CHECK_EQ(s.inserts, 300);
    CHECK_EQ(s.deletes, 300);
    CHECK_EQ(s.reclaimed, 300);
    CHECK_EQ(s.live, 0);
    CHECK_EQ(s.buckets, 0);
    va = (struct visit){.name = "audit_a"};
    ml_maps_each(visit, &va);
    CHECK_EQ(va.maps, 0);

    /* A new map of the same name adds to them. */
    CHECK_EQ(ml_map_new(&ca, &a), 0);
    fill(a, "c", 5, ea);
    s = kind("audit_a");
    CHECK_EQ(s.inserts, 305);
    CHECK_EQ(s.live, 5);

    CHECK_EQ(ml_map_destroy(a), 0);
    CHECK_EQ(ml_map_destroy(b), 0);
    ml_shutdown();
    CHECK_EQ(t_allocs, t_frees);
    rcu_unregister_thread();
    printf("test_maplib_audit: ok\n");
    return 0;
}
