/*
 * Control for the tsan stage: a real data race that ThreadSanitizer must
 * report through tests/tsan.supp. One thread rewrites an entry's key bytes
 * (the same bytes: still a race) while another looks the key up, so maplib's
 * node_match compares them, called back from inside liburcu's
 * cds_lfht_lookup. A suppression that named liburcu's modules (any frame of
 * either stack) would hide this race and every other one in code that liburcu
 * calls back; tests/tsan.supp names only the reclaim callbacks. Exits 0 only
 * if TSan did not report (the ctest wrapper then fails the test).
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <urcu.h>

#include "maplib/maplib.h"

struct ent {
    struct ml_node node;
    char key[8];
};

static struct ent e = {.key = "control"};
static atomic_int stop;

static void no_reclaim(struct ml_node *n)
{
    (void)n;
}

static void *rewriter(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop))
        memcpy(e.key, "control", 8);
    return NULL;
}

int main(void)
{
    struct ml_map_config cfg = {.name = "tsan-control", .reclaim = no_reclaim};
    struct ml_map *m;
    pthread_t th;

    ml_thread_online();
    if (ml_map_new(&cfg, &m))
        abort();
    ml_node_init(&e.node, e.key, 8);
    rcu_read_lock();
    if (ml_insert(m, &e.node, NULL))
        abort();
    rcu_read_unlock();
    pthread_create(&th, NULL, rewriter, NULL);
    for (int i = 0; i < 100000; i++) {
        rcu_read_lock();
        if (!ml_lookup(m, "control", 8))
            abort();
        rcu_read_unlock();
    }
    atomic_store(&stop, 1);
    pthread_join(th, NULL);
    rcu_read_lock();
    ml_delete(m, &e.node);
    rcu_read_unlock();
    ml_map_destroy(m);
    ml_shutdown();
    printf("tsan_control: no race reported\n");
    return 0;
}
