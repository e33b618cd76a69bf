/*
 * Driver for lookup_cost.py: builds a map of N entries and runs L lookups of
 * present keys with callgrind's collection switched on only around them.
 *
 *   lookup_cost maplib N L    a maplib map (created with 1 bucket, sized by
 *                             maplib's own policy, automatically)
 *   lookup_cost cycled N L    the same map after 0 -> N -> 0 -> N entries
 *                             (grown, shrunk to its minimum, grown again)
 *   lookup_cost shrunk N L    the same map after 0 -> 100,000 -> N entries
 *                             (the lookups are of the N left)
 *   lookup_cost stuck N L     a raw cds_lfht left at 1 bucket with resizing
 *                             off: what a table whose resize switched itself
 *                             off costs (the control that shows the
 *                             measurement can fail)
 *
 * Keys are formatted before collection starts, so the instructions counted are
 * those of the hash, the bucket walk and the key comparison.
 */

#include <valgrind/callgrind.h>
#include <xxhash.h>

#include "ml_test.h"

T_DEFINE_COUNTERS;

struct raw_ent {
    struct cds_lfht_node node;
    uint32_t klen;
    char key[24];
};

static int raw_match(struct cds_lfht_node *n, const void *key)
{
    const struct raw_ent *e = caa_container_of(n, struct raw_ent, node);
    return strlen(key) == e->klen && memcmp(e->key, key, e->klen) == 0;
}

static void fill(struct ml_map *map, unsigned from, unsigned to)
{
    char key[24];
    rcu_read_lock();
    for (unsigned i = from; i < to; i++) {
        snprintf(key, sizeof(key), "key-%u", i);
        CHECK_EQ(ml_insert(map, &t_ent_new(key, i)->node, NULL), 0);
    }
    rcu_read_unlock();
}

/* Delete keys [from, to), in read-side sections of 1,024, then wait for maplib to size the map. */
static void drain(struct ml_map *map, unsigned from, unsigned to)
{
    char key[24];
    struct ml_stats st;
    for (unsigned i = from; i < to;) {
        rcu_read_lock();
        for (unsigned k = 0; k < 1024 && i < to; k++, i++) {
            snprintf(key, sizeof(key), "key-%u", i);
            struct ml_node *nd = ml_lookup(map, key, strlen(key));
            CHECK(nd != NULL);
            CHECK_EQ(ml_delete(map, nd), 0);
        }
        rcu_read_unlock();
    }
    CHECK(WAIT_UNTIL((ml_map_stats(map, &st), st.buckets == 1 || st.buckets <= 8 * st.live), 120));
}

int main(int argc, char **argv)
{
    CHECK(argc == 4);
    int stuck = !strcmp(argv[1], "stuck");
    unsigned n = (unsigned)atoi(argv[2]), l = (unsigned)atoi(argv[3]);
    char(*keys)[24] = calloc(l, 24);
    unsigned found = 0;
    struct ml_map *map = NULL;
    struct cds_lfht *ht = NULL;
    char key[24];

    CHECK(keys && n > 0 && l > 0);
    ml_thread_online();
    if (stuck) {
        ht = cds_lfht_new(1, 1, 0, 0, NULL);
        CHECK(ht);
    } else {
        struct ml_map_config cfg = {.name = "cost", .min_buckets = 1, .reclaim = t_reclaim};
        CHECK_EQ(ml_map_new(&cfg, &map), 0);
    }
    rcu_read_lock();
    for (unsigned i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "key-%u", i);
        if (stuck) {
            struct raw_ent *e = calloc(1, sizeof(*e));
            CHECK(e);
            e->klen = (uint32_t)strlen(key);
            memcpy(e->key, key, e->klen + 1);
            cds_lfht_node_init(&e->node);
            cds_lfht_add(ht, XXH3_64bits_withSeed(e->key, e->klen, 1), &e->node);
        } else {
            CHECK_EQ(ml_insert(map, &t_ent_new(key, i)->node, NULL), 0);
        }
    }
    rcu_read_unlock();
    if (!strcmp(argv[1], "cycled")) {
        drain(map, 0, n);
        fill(map, 0, n);
    } else if (!strcmp(argv[1], "shrunk")) {
        CHECK(n < 100000);
        fill(map, n, 100000);
        struct ml_stats st;
        CHECK(WAIT_UNTIL((ml_map_stats(map, &st), st.live <= 2 * st.buckets), 120));
        drain(map, n, 100000);
    }
    if (!stuck) {
        /* Wait for the maintenance thread, with no help from the test. */
        struct ml_stats st;
        CHECK(WAIT_UNTIL((ml_map_stats(map, &st), st.live <= 2 * st.buckets), 120));
        printf("buckets=%llu\n", (unsigned long long)st.buckets);
    }
    for (unsigned i = 0; i < l; i++)
        snprintf(keys[i], 24, "key-%u", (unsigned)(((uint64_t)i * 2654435761u) % n));

    CALLGRIND_TOGGLE_COLLECT;
    rcu_read_lock();
    for (unsigned i = 0; i < l; i++) {
        if (stuck) {
            struct cds_lfht_iter it;
            cds_lfht_lookup(ht, XXH3_64bits_withSeed(keys[i], strlen(keys[i]), 1), raw_match, keys[i], &it);
            found += cds_lfht_iter_get_node(&it) != NULL;
        } else {
            found += ml_lookup(map, keys[i], strlen(keys[i])) != NULL;
        }
    }
    rcu_read_unlock();
    CALLGRIND_TOGGLE_COLLECT;
    CHECK_EQ(found, l);
    printf("lookups=%u found=%u\n", l, found);
    /* Teardown outside collection; the stuck table's entries are simply left to exit. */
    if (map)
        CHECK_EQ(ml_map_destroy(map), 0);
    ml_shutdown();
    free(keys);
    return 0;
}
