/*
 * Concurrent stress test of maplib.
 *
 *   stress_maplib [--readers N] [--writers N] [--deleters N] [--seconds S]
 *                 [--keys K] [--mode all|mixed|single|getcreate|threads]
 *
 * mixed:     readers look up random keys and check the entry they find;
 *            writers insert (half the time) or upsert random keys; deleters
 *            look up random keys and delete them, or walk the map deleting.
 * single:    the same on one key: every thread fights over one chain.
 * getcreate: the get-or-create-then-update pattern racing delete. Updaters
 *            find or create the entry, take its lock word, check
 *            ml_node_is_deleted() and only then add to its value; deleters
 *            unlink under the same lock and record the value at that moment.
 *            The reclaim callback checks that no update landed after the
 *            unlink, and the sum of all values equals the updates applied.
 * threads:   short-lived threads that join with ml_thread_online(), do a few
 *            operations and exit (the key destructor unregisters them).
 * all:       mixed, then single, then getcreate, then threads (the default).
 *
 * Every run ends with the leak counter (entries allocated minus entries freed)
 * at exactly zero after ml_map_destroy() (which waits with rcu_barrier()), and
 * with reclaimed == deleted in maplib's own counters. Freed entries are
 * poisoned before free() and every reader checks the poison, so a reader that
 * touches an entry freed too early is caught even without ASan (with ASan it
 * is a use-after-free report).
 */

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "ml_test.h"

T_DEFINE_COUNTERS; /* unused here: the stress entries have their own counters */

#define LIVE_MAGIC 0x4c495645u /* "LIVE" */
#define DEAD_MAGIC 0xdeaddeadu

struct s_ent {
    struct ml_node node;
    uint32_t magic;
    uint32_t lock;   /* getcreate: per-entry lock word (writers only) */
    uint64_t value;  /* getcreate: updates applied */
    uint64_t at_del; /* getcreate: value when unlinked, UINT64_MAX before */
    uint32_t keyidx;
    uint32_t klen;
    char key[16];
};

static struct {
    int readers, writers, deleters;
    double seconds;
    unsigned keys;
} opt = {2, 1, 1, 2.0, 1000};

static atomic_ulong n_alloc, n_free;
static atomic_ulong n_reads, n_hits, n_inserts, n_deletes, n_updates, n_retries;
static atomic_ullong sum_at_del;
static atomic_int stop;
static struct ml_map *map;

static void die_check(const char *what, struct s_ent *e)
{
    fprintf(stderr, "stress: %s (entry %p magic %#x)\n", what, (void *)e, e ? e->magic : 0);
    abort();
}

static void make_key(char *buf, unsigned idx)
{
    snprintf(buf, 16, "key-%u", idx);
}

static struct s_ent *ent_new(unsigned idx)
{
    struct s_ent *e = malloc(sizeof(*e));

    CHECK(e);
    memset(e, 0, sizeof(*e));
    e->magic = LIVE_MAGIC;
    e->keyidx = idx;
    e->at_del = UINT64_MAX;
    make_key(e->key, idx);
    e->klen = (uint32_t)strlen(e->key);
    ml_node_init(&e->node, e->key, e->klen);
    atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
    return e;
}

static void ent_free(struct s_ent *e)
{
    if (e->magic != LIVE_MAGIC)
        die_check("double free or corrupt entry", e);
    /* Poison: a reader that still sees this entry after free fails its check. */
    e->magic = DEAD_MAGIC;
    memset(e->key, 0x5a, sizeof(e->key));
    atomic_fetch_add_explicit(&n_free, 1, memory_order_relaxed);
    free(e);
}

static void reclaim(struct ml_node *n)
{
    struct s_ent *e = caa_container_of(n, struct s_ent, node);
    uint64_t at_del = __atomic_load_n(&e->at_del, __ATOMIC_RELAXED);

    /* getcreate: no update may land after the unlink (both under e->lock). */
    if (at_del != UINT64_MAX && __atomic_load_n(&e->value, __ATOMIC_RELAXED) != at_del)
        die_check("update landed in a deleted entry", e);
    ent_free(e);
}

static void check_live(struct s_ent *e, unsigned idx)
{
    if (__atomic_load_n(&e->magic, __ATOMIC_RELAXED) != LIVE_MAGIC)
        die_check("reader found a freed entry", e);
    if (e->keyidx != idx)
        die_check("reader found an entry with another key", e);
}

static uint64_t rnd(uint64_t *s)
{
    /* xorshift64*: per-thread, no shared state. */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static void lock_ent(struct s_ent *e)
{
    /* Pairs with the release in unlock_ent(). */
    while (__atomic_exchange_n(&e->lock, 1, __ATOMIC_ACQUIRE))
        caa_cpu_relax();
}

static void unlock_ent(struct s_ent *e)
{
    __atomic_store_n(&e->lock, 0, __ATOMIC_RELEASE);
}

static void *reader(void *arg)
{
    uint64_t s = (uintptr_t)arg * 7919 + 1;
    unsigned long reads = 0, hits = 0;
    char key[16];

    ml_thread_online();
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        unsigned idx = (unsigned)(rnd(&s) % opt.keys);
        make_key(key, idx);
        rcu_read_lock();
        struct ml_node *n = ml_lookup(map, key, strlen(key));
        if (n) {
            check_live(caa_container_of(n, struct s_ent, node), idx);
            hits++;
        }
        rcu_read_unlock();
        reads++;
        if ((reads & 1023) == 0) {
            /* Now and then walk part of the map, checking every entry. */
            struct ml_iter it;
            int k = 0;
            rcu_read_lock();
            for (struct ml_node *x = ml_first(map, &it); x && k < 64; x = ml_next(map, &it), k++) {
                struct s_ent *e = caa_container_of(x, struct s_ent, node);
                check_live(e, e->keyidx);
            }
            rcu_read_unlock();
        }
    }
    atomic_fetch_add(&n_reads, reads);
    atomic_fetch_add(&n_hits, hits);
    return NULL;
}

static void *writer(void *arg)
{
    uint64_t s = (uintptr_t)arg * 104729 + 3;
    unsigned long ins = 0;

    ml_thread_online();
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        uint64_t r = rnd(&s);
        unsigned idx = (unsigned)(r % opt.keys);
        struct s_ent *e = ent_new(idx);
        rcu_read_lock();
        if (r & (1ULL << 40)) {
            if (ml_insert(map, &e->node, NULL) == 0)
                ins++;
            else
                ent_free(e); /* never seen by a reader */
        } else {
            struct ml_node *old;
            CHECK_EQ(ml_upsert(map, &e->node, &old), 0);
            if (old)
                check_live(caa_container_of(old, struct s_ent, node), idx);
            ins++;
        }
        rcu_read_unlock();
    }
    atomic_fetch_add(&n_inserts, ins);
    return NULL;
}

static void *deleter(void *arg)
{
    uint64_t s = (uintptr_t)arg * 15485863 + 5;
    unsigned long dels = 0, loops = 0;
    char key[16];

    ml_thread_online();
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        unsigned idx = (unsigned)(rnd(&s) % opt.keys);
        make_key(key, idx);
        rcu_read_lock();
        struct ml_node *n = ml_lookup(map, key, strlen(key));
        if (n) {
            check_live(caa_container_of(n, struct s_ent, node), idx);
            if (ml_delete(map, n) == 0)
                dels++;
        }
        if ((++loops & 255) == 0) {
            /* Delete while walking, as a reaper does. */
            struct ml_iter it;
            int k = 0;
            for (struct ml_node *x = ml_first(map, &it); x && k < 32; x = ml_next(map, &it), k++)
                if (ml_delete(map, x) == 0)
                    dels++;
        }
        rcu_read_unlock();
    }
    atomic_fetch_add(&n_deletes, dels);
    return NULL;
}

/* getcreate: find or create the entry for a key, then update it under its lock. */
static void *updater(void *arg)
{
    uint64_t s = (uintptr_t)arg * 32452843 + 7;
    unsigned long upd = 0, retries = 0;
    char key[16];

    ml_thread_online();
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        unsigned idx = (unsigned)(rnd(&s) % opt.keys);
        make_key(key, idx);
        rcu_read_lock();
        for (;;) {
            struct ml_node *n = ml_lookup(map, key, strlen(key));
            if (!n) {
                struct s_ent *e = ent_new(idx);
                struct ml_node *ex;
                if (ml_insert(map, &e->node, &ex) == 0) {
                    n = &e->node;
                } else {
                    ent_free(e);
                    n = ex;
                }
            }
            struct s_ent *e = caa_container_of(n, struct s_ent, node);
            check_live(e, idx);
            lock_ent(e);
            if (ml_node_is_deleted(n)) {
                /* Lost the race with a delete: retry on a live entry. */
                unlock_ent(e);
                retries++;
                continue;
            }
            __atomic_store_n(&e->value, e->value + 1, __ATOMIC_RELAXED);
            unlock_ent(e);
            upd++;
            break;
        }
        rcu_read_unlock();
    }
    atomic_fetch_add(&n_updates, upd);
    atomic_fetch_add(&n_retries, retries);
    return NULL;
}

static void *gc_deleter(void *arg)
{
    uint64_t s = (uintptr_t)arg * 49979687 + 11;
    unsigned long dels = 0;
    char key[16];

    ml_thread_online();
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        unsigned idx = (unsigned)(rnd(&s) % opt.keys);
        make_key(key, idx);
        rcu_read_lock();
        struct ml_node *n = ml_lookup(map, key, strlen(key));
        if (n) {
            struct s_ent *e = caa_container_of(n, struct s_ent, node);
            check_live(e, idx);
            lock_ent(e);
            if (ml_delete(map, n) == 0) {
                uint64_t v = e->value;
                __atomic_store_n(&e->at_del, v, __ATOMIC_RELAXED);
                atomic_fetch_add(&sum_at_del, v);
                dels++;
            }
            unlock_ent(e);
        }
        rcu_read_unlock();
    }
    atomic_fetch_add(&n_deletes, dels);
    return NULL;
}

static void *churn_thread(void *arg)
{
    uint64_t s = (uintptr_t)arg * 67867967 + 13;

    ml_thread_online();
    for (int i = 0; i < 200; i++) {
        unsigned idx = (unsigned)(rnd(&s) % opt.keys);
        struct s_ent *e = ent_new(idx);
        rcu_read_lock();
        if (ml_insert(map, &e->node, NULL) == 0) {
            if (rnd(&s) & 1)
                ml_delete(map, &e->node);
        } else {
            ent_free(e);
        }
        rcu_read_unlock();
    }
    return NULL;
}

static void *thread_spawner(void *arg)
{
    unsigned long k = (uintptr_t)arg;

    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        pthread_t th[4];
        for (int i = 0; i < 4; i++)
            CHECK_EQ(pthread_create(&th[i], NULL, churn_thread, (void *)(uintptr_t)(k++)), 0);
        for (int i = 0; i < 4; i++)
            CHECK_EQ(pthread_join(th[i], NULL), 0);
    }
    return NULL;
}

struct group {
    void *(*fn)(void *);
    int n;
};

static void run(const char *mode, struct group *groups, int ngroups, unsigned keys)
{
    struct ml_map_config cfg = {.name = mode, .min_buckets = 1, .reclaim = reclaim};
    pthread_t th[256];
    int nth = 0;
    unsigned saved_keys = opt.keys;
    struct ml_stats st;

    opt.keys = keys;
    atomic_store(&n_alloc, 0);
    atomic_store(&n_free, 0);
    atomic_store(&n_reads, 0);
    atomic_store(&n_hits, 0);
    atomic_store(&n_inserts, 0);
    atomic_store(&n_deletes, 0);
    atomic_store(&n_updates, 0);
    atomic_store(&n_retries, 0);
    atomic_store(&sum_at_del, 0);
    atomic_store(&stop, 0);
    CHECK_EQ(ml_map_new(&cfg, &map), 0);

    for (int g = 0; g < ngroups; g++)
        for (int i = 0; i < groups[g].n; i++, nth++) {
            CHECK(nth < 256);
            CHECK_EQ(pthread_create(&th[nth], NULL, groups[g].fn, (void *)(uintptr_t)(nth + 1)), 0);
        }
    double end = t_now() + opt.seconds;
    while (t_now() < end) {
        usleep(10 * 1000);
        if (getenv("STRESS_DEBUG")) {
            struct ml_stats d;
            ml_map_stats(map, &d);
            fprintf(stderr, "live=%llu buckets=%llu pending=%llu\n", (unsigned long long)d.live,
                    (unsigned long long)d.buckets, (unsigned long long)d.pending);
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < nth; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);

    /* getcreate: every update is in a live entry or was counted at its delete. */
    uint64_t live_sum = 0;
    struct ml_iter it;
    rcu_read_lock();
    for (struct ml_node *x = ml_first(map, &it); x; x = ml_next(map, &it))
        live_sum += caa_container_of(x, struct s_ent, node)->value;
    rcu_read_unlock();
    if (!strcmp(mode, "getcreate"))
        CHECK_EQ(live_sum + atomic_load(&sum_at_del), atomic_load(&n_updates));

    rcu_barrier();
    ml_map_stats(map, &st);
    CHECK_EQ(st.pending, 0);
    CHECK_EQ(st.reclaimed, st.deletes);
    CHECK_EQ(st.live, st.inserts - st.deletes);
    CHECK_EQ(st.live, ml_map_count(map));
    /* Every entry that was linked and unlinked went through reclaim. */
    CHECK_EQ(atomic_load(&n_alloc) - atomic_load(&n_free), st.live);
    CHECK_EQ(ml_map_destroy(map), 0);
    /* The leak counter: exactly zero after destroy (rcu_barrier inside). */
    CHECK_EQ(atomic_load(&n_alloc) - atomic_load(&n_free), 0);
    printf("%-9s keys=%-7u threads=%-3d reads=%lu hits=%lu inserts=%lu deletes=%lu updates=%lu "
           "retries=%lu buckets_end=%llu resizes=%llu allocs=%lu leak=0\n",
           mode, keys, nth, atomic_load(&n_reads), atomic_load(&n_hits), atomic_load(&n_inserts),
           atomic_load(&n_deletes), atomic_load(&n_updates), atomic_load(&n_retries),
           (unsigned long long)st.buckets, (unsigned long long)st.resizes, atomic_load(&n_alloc));
    opt.keys = saved_keys;
}

static void run_mode(const char *mode)
{
    struct group mixed[] = {{reader, opt.readers}, {writer, opt.writers}, {deleter, opt.deleters}};
    struct group gc[] = {{reader, opt.readers}, {updater, opt.writers + 1}, {gc_deleter, opt.deleters}};
    struct group thr[] = {{reader, 1}, {thread_spawner, 2}, {deleter, 1}};

    if (!strcmp(mode, "mixed")) {
        run("mixed", mixed, 3, opt.keys);
    } else if (!strcmp(mode, "single")) {
        /* The maximum-contention case: every thread on one key. */
        run("single", mixed, 3, 1);
    } else if (!strcmp(mode, "getcreate")) {
        run("getcreate", gc, 3, opt.keys < 64 ? opt.keys : 64);
    } else if (!strcmp(mode, "threads")) {
        run("threads", thr, 3, opt.keys);
    } else if (!strcmp(mode, "all")) {
        run_mode("mixed");
        run_mode("single");
        run_mode("getcreate");
        run_mode("threads");
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {{"readers", required_argument, NULL, 'r'},
                                       {"writers", required_argument, NULL, 'w'},
                                       {"deleters", required_argument, NULL, 'd'},
                                       {"seconds", required_argument, NULL, 's'},
                                       {"keys", required_argument, NULL, 'k'},
                                       {"mode", required_argument, NULL, 'm'},
                                       {NULL, 0, NULL, 0}};
    const char *mode = "all";
    int c;

    while ((c = getopt_long(argc, argv, "r:w:d:s:k:m:", lo, NULL)) != -1) {
        switch (c) {
        case 'r':
            opt.readers = atoi(optarg);
            break;
        case 'w':
            opt.writers = atoi(optarg);
            break;
        case 'd':
            opt.deleters = atoi(optarg);
            break;
        case 's':
            opt.seconds = atof(optarg);
            break;
        case 'k':
            opt.keys = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'm':
            mode = optarg;
            break;
        default:
            fprintf(stderr,
                    "usage: %s [--readers N] [--writers N] [--deleters N] [--seconds S] [--keys K] "
                    "[--mode all|mixed|single|getcreate|threads]\n",
                    argv[0]);
            return 2;
        }
    }
    if (opt.keys < 1 || opt.readers < 0 || opt.writers < 1 || opt.deleters < 1 || opt.seconds <= 0 ||
        opt.readers + opt.writers + opt.deleters > 200) {
        fprintf(stderr, "bad knobs\n");
        return 2;
    }
    ml_thread_online();
    run_mode(mode);
    ml_shutdown();
    printf("stress: ok\n");
    return 0;
}
