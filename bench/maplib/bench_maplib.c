/*
 * maplib micro-benchmark: maplib vs raw cds_lfht vs a pthread_rwlock hash
 * table, in one process, at 1 and 2 threads, for two mixes:
 *
 *   read-mostly  90 % lookups of present keys, 10 % in-place value updates
 *   churn        50 % inserts of new keys, 50 % deletes (steady live set)
 *
 *   bench_maplib [--seconds S] [--repeat R] [--keys N] [--threads 1,2]
 *                [--mix read-mostly|churn|all] [--max-buckets M] [--smoke]
 *   bench_maplib --alloc N none|trim|tune     allocator-policy measurement
 *
 * All three tables use the same entries (16-byte binary keys, a 64-bit value),
 * the same seeded XXH3 hash and the same key comparison, so the maplib vs raw
 * difference is what maplib adds: its counters, its sizing checks and the
 * call through its API. The raw cds_lfht is created at its final size and
 * never resized; maplib starts at one bucket and sizes itself (the prefill
 * is done before timing), with max_buckets = --max-buckets (default 1 << 24,
 * the contiguous bucket layout a big map uses; 0 = the order allocator of
 * small maps, see maplib.h). The raw table gets the same layout. Updates
 * in read-mostly are relaxed atomic stores into the entry found (RCU tables)
 * or a store under the write lock (rwlock table). Churn frees through
 * call_rcu (RCU tables) or at once (rwlock).
 *
 * Each configuration (mix, thread count) fills the three tables once, then
 * runs R rounds; a round gives each table one slice of S/R seconds, in
 * rotating order, to the same worker threads. Rates are total operations over
 * total time; the ratios are the median of the per-round ratios, which pairs
 * slices taken a moment apart and so cancels most of the drift of a shared
 * machine.
 * --smoke checks that every run did work and that the tables hold what they
 * should afterwards; it does not judge speed.
 */

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <urcu.h>
#include <urcu/rculfhash.h>
#include <xxhash.h>

#include "maplib/maplib.h"

#define KEYLEN 16

struct ent {
    struct ml_node node; /* maplib; also holds the cds_lfht node for the raw table */
    struct ent *next;    /* rwlock table chain */
    uint64_t value;
    uint64_t key[2];
};

enum impl { IMPL_MAPLIB, IMPL_RAW, IMPL_RWLOCK, IMPL_N };
static const char *impl_name[] = {"maplib", "raw-lfht", "rwlock"};
enum mix { MIX_READ, MIX_CHURN, MIX_N };
static const char *mix_name[] = {"read-mostly", "churn"};

static struct {
    double seconds;
    int repeat;
    unsigned keys;
    int threads[4];
    int nthreads;
    int smoke;
    int mix; /* -1: all */
    unsigned long max_buckets;
} opt = {10.0, 20, 100000, {1, 2}, 2, 0, -1, 1UL << 24};

static uint64_t seed;
static atomic_long live_entries; /* allocated minus freed */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static struct ent *ent_new(uint64_t a, uint64_t b)
{
    struct ent *e = malloc(sizeof(*e));
    if (!e)
        abort();
    e->key[0] = a;
    e->key[1] = b;
    e->value = 0;
    e->next = NULL;
    ml_node_init(&e->node, e->key, KEYLEN);
    atomic_fetch_add_explicit(&live_entries, 1, memory_order_relaxed);
    return e;
}

static void ent_free(struct ent *e)
{
    atomic_fetch_sub_explicit(&live_entries, 1, memory_order_relaxed);
    free(e);
}

static inline uint64_t hash_key(const void *k)
{
    return XXH3_64bits_withSeed(k, KEYLEN, seed);
}

/* ---- the three tables ---- */

static void maplib_reclaim(struct ml_node *n)
{
    ent_free(caa_container_of(n, struct ent, node));
}

static int raw_match(struct cds_lfht_node *n, const void *key)
{
    const struct ent *e = caa_container_of(n, struct ent, node._lfht);
    return memcmp(e->key, key, KEYLEN) == 0;
}

static void raw_free_cb(struct rcu_head *h)
{
    ent_free(caa_container_of(h, struct ent, node._rcu));
}

struct rwtable {
    pthread_rwlock_t lock;
    struct ent **b;
    uint64_t mask;
    uint64_t count;
};

struct table {
    enum impl impl;
    struct ml_map *map;
    struct cds_lfht *ht;
    struct rwtable rw;
};

static unsigned long pow2_at_least(unsigned long n)
{
    unsigned long p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

static void table_new(struct table *t, enum impl impl, unsigned long expect)
{
    memset(t, 0, sizeof(*t));
    t->impl = impl;
    if (impl == IMPL_MAPLIB) {
        struct ml_map_config cfg = {.name = "bench",
                                    .min_buckets = 1,
                                    .reclaim = maplib_reclaim,
                                    .max_buckets = opt.max_buckets,
                                    .key_offset = offsetof(struct ent, key) - offsetof(struct ent, node)};
        if (ml_map_new(&cfg, &t->map))
            abort();
    } else if (impl == IMPL_RAW) {
        /* The same bucket layout as maplib's: a max selects cds_lfht's contiguous
         * (mmap) one, 0 its order allocator. */
        unsigned long b = pow2_at_least(expect);
        t->ht = cds_lfht_new(b, b, opt.max_buckets ? b : 0, 0, NULL);
        if (!t->ht)
            abort();
    } else {
        unsigned long b = pow2_at_least(expect);
        pthread_rwlock_init(&t->rw.lock, NULL);
        t->rw.b = calloc(b, sizeof(*t->rw.b));
        t->rw.mask = b - 1;
    }
}

/* Insert; returns 0 or -EEXIST (then the caller still owns @e). */
static int table_insert(struct table *t, struct ent *e)
{
    switch (t->impl) {
    case IMPL_MAPLIB: {
        rcu_read_lock();
        int r = ml_insert(t->map, &e->node, NULL);
        rcu_read_unlock();
        return r;
    }
    case IMPL_RAW: {
        rcu_read_lock();
        struct cds_lfht_node *n =
            cds_lfht_add_unique(t->ht, hash_key(e->key), raw_match, e->key, &e->node._lfht);
        rcu_read_unlock();
        return n == &e->node._lfht ? 0 : -EEXIST;
    }
    default: {
        uint64_t h = hash_key(e->key) & t->rw.mask;
        pthread_rwlock_wrlock(&t->rw.lock);
        for (struct ent *x = t->rw.b[h]; x; x = x->next)
            if (!memcmp(x->key, e->key, KEYLEN)) {
                pthread_rwlock_unlock(&t->rw.lock);
                return -EEXIST;
            }
        e->next = t->rw.b[h];
        t->rw.b[h] = e;
        t->rw.count++;
        pthread_rwlock_unlock(&t->rw.lock);
        return 0;
    }
    }
}

/* Delete the entry with this key; returns 0 or -ENOENT. Frees it (after a grace period for RCU). */
static int table_delete(struct table *t, const uint64_t *key)
{
    int r = -ENOENT;

    switch (t->impl) {
    case IMPL_MAPLIB: {
        rcu_read_lock();
        struct ml_node *n = ml_lookup(t->map, key, KEYLEN);
        if (n)
            r = ml_delete(t->map, n);
        rcu_read_unlock();
        return r;
    }
    case IMPL_RAW: {
        struct cds_lfht_iter it;
        rcu_read_lock();
        cds_lfht_lookup(t->ht, hash_key(key), raw_match, key, &it);
        struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
        if (n && cds_lfht_del(t->ht, n) == 0) {
            call_rcu(&caa_container_of(n, struct ent, node._lfht)->node._rcu, raw_free_cb);
            r = 0;
        }
        rcu_read_unlock();
        return r;
    }
    default: {
        uint64_t h = hash_key(key) & t->rw.mask;
        struct ent *victim = NULL;
        pthread_rwlock_wrlock(&t->rw.lock);
        for (struct ent **p = &t->rw.b[h]; *p; p = &(*p)->next)
            if (!memcmp((*p)->key, key, KEYLEN)) {
                victim = *p;
                *p = victim->next;
                t->rw.count--;
                break;
            }
        pthread_rwlock_unlock(&t->rw.lock);
        if (victim) {
            ent_free(victim);
            r = 0;
        }
        return r;
    }
    }
}

/* Look a key up; optionally store a new value in place. Returns 1 if found. */
static int table_get(struct table *t, const uint64_t *key, int update, uint64_t v)
{
    int found = 0;

    switch (t->impl) {
    case IMPL_MAPLIB: {
        rcu_read_lock();
        struct ml_node *n = ml_lookup(t->map, key, KEYLEN);
        if (n) {
            struct ent *e = caa_container_of(n, struct ent, node);
            if (update)
                __atomic_store_n(&e->value, v, __ATOMIC_RELAXED);
            else
                (void)__atomic_load_n(&e->value, __ATOMIC_RELAXED);
            found = 1;
        }
        rcu_read_unlock();
        return found;
    }
    case IMPL_RAW: {
        struct cds_lfht_iter it;
        rcu_read_lock();
        cds_lfht_lookup(t->ht, hash_key(key), raw_match, key, &it);
        struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
        if (n) {
            struct ent *e = caa_container_of(n, struct ent, node._lfht);
            if (update)
                __atomic_store_n(&e->value, v, __ATOMIC_RELAXED);
            else
                (void)__atomic_load_n(&e->value, __ATOMIC_RELAXED);
            found = 1;
        }
        rcu_read_unlock();
        return found;
    }
    default: {
        uint64_t h = hash_key(key) & t->rw.mask;
        if (update)
            pthread_rwlock_wrlock(&t->rw.lock);
        else
            pthread_rwlock_rdlock(&t->rw.lock);
        for (struct ent *x = t->rw.b[h]; x; x = x->next)
            if (!memcmp(x->key, key, KEYLEN)) {
                if (update)
                    x->value = v;
                else
                    (void)__atomic_load_n(&x->value, __ATOMIC_RELAXED);
                found = 1;
                break;
            }
        pthread_rwlock_unlock(&t->rw.lock);
        return found;
    }
    }
}

static uint64_t table_count(struct table *t)
{
    if (t->impl == IMPL_MAPLIB)
        return ml_map_count(t->map);
    if (t->impl == IMPL_RAW) {
        long before, after;
        unsigned long count;
        rcu_read_lock();
        cds_lfht_count_nodes(t->ht, &before, &count, &after);
        rcu_read_unlock();
        return count;
    }
    return t->rw.count;
}

static void table_destroy(struct table *t)
{
    if (t->impl == IMPL_MAPLIB) {
        ml_map_destroy(t->map);
    } else if (t->impl == IMPL_RAW) {
        struct cds_lfht_iter it;
        struct cds_lfht_node *n;
        rcu_read_lock();
        cds_lfht_first(t->ht, &it);
        while ((n = cds_lfht_iter_get_node(&it)) != NULL) {
            if (cds_lfht_del(t->ht, n) == 0)
                call_rcu(&caa_container_of(n, struct ent, node._lfht)->node._rcu, raw_free_cb);
            cds_lfht_next(t->ht, &it);
        }
        rcu_read_unlock();
        rcu_barrier();
        cds_lfht_destroy(t->ht, NULL);
    } else {
        for (uint64_t i = 0; i <= t->rw.mask; i++)
            while (t->rw.b[i]) {
                struct ent *e = t->rw.b[i];
                t->rw.b[i] = e->next;
                ent_free(e);
            }
        free(t->rw.b);
        pthread_rwlock_destroy(&t->rw.lock);
    }
}

/* ---- workers ---- */

/*
 * The three tables of one configuration are filled once and then measured in
 * short alternating slices (maplib, raw, rwlock, maplib, ...), with the same
 * worker threads throughout, so that a change in machine load during the run
 * hits all three alike. Each worker keeps its own state per table (its random
 * stream and, for churn, its ring of live keys) across slices.
 */

struct wstate {
    uint64_t rnd;
    uint64_t *ring; /* churn: per/2 keys as {k, generation} pairs */
    unsigned per, slot;
    uint64_t gen;
};

struct config {
    struct table t[IMPL_N];
    enum mix mix;
    unsigned n, nthreads;
    pthread_barrier_t start, end;
    atomic_int stop, quit;
    int cur; /* impl of the current slice; written before the start barrier */
};

/*
 * Each worker on its own pair of cache lines (128 B: the adjacent-line
 * prefetcher pairs them), so that one worker's stores never invalidate a line
 * another worker is reading. Without it the workers sat side by side on the
 * stack and the miss counter of one shared a line with the random state of the next;
 * which table paid for it depended on where the stack landed, and the
 * maplib/raw ratio at 2 threads changed from run to run (0.64 or 0.90).
 */
struct worker {
    _Alignas(128) pthread_t th;
    struct config *c;
    unsigned id;
    struct wstate st[IMPL_N];
    uint64_t ops;    /* ops of the last slice */
    uint64_t misses; /* lookups of present keys that failed, failed deletes/inserts: must stay 0 */
};

/*
 * The loop state lives in locals, written back once per slice: the calls into
 * the tables are opaque to the compiler, so state kept in the worker would be
 * loaded and stored around every operation.
 */
static uint64_t run_slice(struct worker *w, struct table *t, struct wstate *ws)
{
    uint64_t ops = 0, misses = 0;
    unsigned n = w->c->n;

    if (w->c->mix == MIX_READ) {
        uint64_t rs = ws->rnd;
        while (!atomic_load_explicit(&w->c->stop, memory_order_relaxed)) {
            for (int i = 0; i < 256; i++) {
                uint64_t r = rnd(&rs);
                uint64_t key[2] = {r % n, 0};
                misses += !table_get(t, key, (r >> 32) % 10 == 0, r);
            }
            ops += 256;
        }
        ws->rnd = rs;
        w->misses += misses;
        return ops;
    }
    unsigned slot = ws->slot;
    uint64_t gen = ws->gen;
    while (!atomic_load_explicit(&w->c->stop, memory_order_relaxed)) {
        for (int i = 0; i < 128; i++) {
            uint64_t *k = &ws->ring[2 * slot];
            if (table_delete(t, k))
                misses++;
            k[1] = gen++;
            struct ent *e = ent_new(k[0], k[1]);
            if (table_insert(t, e)) {
                misses++;
                ent_free(e);
            }
            slot = (slot + 1) % ws->per;
        }
        ops += 256;
    }
    ws->slot = slot;
    ws->gen = gen;
    w->misses += misses;
    return ops;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct config *c = w->c;

    ml_thread_online();
    for (int i = 0; i < IMPL_N; i++) {
        struct wstate *ws = &w->st[i];
        ws->rnd = 0x9e3779b97f4a7c15ULL * (w->id + 1);
        /*
         * Churn: each thread owns the prefill keys {k, 0} with
         * k % nthreads == id as a ring; it deletes the oldest and inserts
         * {k, generation}, so the live set stays at n.
         */
        ws->per = c->n / c->nthreads;
        ws->ring = malloc(ws->per * 2 * sizeof(uint64_t));
        if (!ws->ring)
            abort();
        for (unsigned k = 0; k < ws->per; k++) {
            ws->ring[2 * k] = (uint64_t)k * c->nthreads + w->id;
            ws->ring[2 * k + 1] = 0;
        }
        ws->gen = 1;
    }
    for (;;) {
        pthread_barrier_wait(&c->start);
        if (atomic_load(&c->quit))
            break;
        w->ops = run_slice(w, &c->t[c->cur], &w->st[c->cur]);
        pthread_barrier_wait(&c->end);
    }
    for (int i = 0; i < IMPL_N; i++)
        free(w->st[i].ring);
    return NULL;
}

static void fill(struct table *t, enum impl impl, unsigned n)
{
    table_new(t, impl, n);
    for (unsigned k = 0; k < n; k++) {
        struct ent *e = ent_new(k, 0);
        if (table_insert(t, e))
            abort();
    }
    if (impl == IMPL_MAPLIB) {
        struct ml_stats st;
        ml_map_maintain(t->map); /* sized before timing, like the raw table */
        ml_map_stats(t->map, &st);
        if (getenv("BENCH_VERBOSE"))
            fprintf(stderr, "maplib: %u entries, %llu buckets\n", n, (unsigned long long)st.buckets);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct result {
    double mops[IMPL_N];        /* total ops / total time, per impl */
    double ratio_raw, ratio_rw; /* maplib/raw and maplib/rwlock: median of the per-round ratios */
};

static void run_config(enum mix mix, unsigned nthreads, struct result *res)
{
    struct config *c = calloc(1, sizeof(*c));
    struct worker w[8];
    double tot_ops[IMPL_N] = {0}, tot_s[IMPL_N] = {0};
    double rr[64], rw[64];
    int rounds = opt.repeat;
    double slice = opt.seconds / rounds;

    c->mix = mix;
    c->nthreads = nthreads;
    c->n = opt.keys - opt.keys % nthreads;
    for (int i = 0; i < IMPL_N; i++)
        fill(&c->t[i], (enum impl)i, c->n);
    pthread_barrier_init(&c->start, NULL, nthreads + 1);
    pthread_barrier_init(&c->end, NULL, nthreads + 1);
    for (unsigned i = 0; i < nthreads; i++) {
        w[i] = (struct worker){.c = c, .id = i};
        if (pthread_create(&w[i].th, NULL, worker_main, &w[i]))
            abort();
    }
    for (int r = 0; r < rounds; r++) {
        double rate[IMPL_N];
        for (int k = 0; k < IMPL_N; k++) {
            /* Rotate the order too, so no impl always follows the same one. */
            int i = (k + r) % IMPL_N;
            c->cur = i;
            atomic_store(&c->stop, 0);
            pthread_barrier_wait(&c->start);
            double t0 = now();
            while (now() - t0 < slice)
                usleep(1000);
            atomic_store(&c->stop, 1);
            pthread_barrier_wait(&c->end);
            double el = now() - t0;
            uint64_t ops = 0;
            for (unsigned j = 0; j < nthreads; j++)
                ops += w[j].ops;
            tot_ops[i] += (double)ops;
            tot_s[i] += el;
            rate[i] = ops / el;
        }
        rr[r] = rate[IMPL_MAPLIB] / rate[IMPL_RAW];
        rw[r] = rate[IMPL_MAPLIB] / rate[IMPL_RWLOCK];
    }
    atomic_store(&c->quit, 1);
    pthread_barrier_wait(&c->start);
    uint64_t misses = 0;
    for (unsigned i = 0; i < nthreads; i++) {
        pthread_join(w[i].th, NULL);
        misses += w[i].misses;
    }
    for (int i = 0; i < IMPL_N; i++) {
        if (misses || table_count(&c->t[i]) != c->n) {
            fprintf(stderr, "bench: %s %s: %llu misses, %llu entries (expected %u)\n", impl_name[i],
                    mix_name[mix], (unsigned long long)misses, (unsigned long long)table_count(&c->t[i]),
                    c->n);
            exit(1);
        }
        table_destroy(&c->t[i]);
        res->mops[i] = tot_ops[i] / tot_s[i] / 1e6;
    }
    rcu_barrier();
    qsort(rr, (size_t)rounds, sizeof(double), cmp_double);
    qsort(rw, (size_t)rounds, sizeof(double), cmp_double);
    res->ratio_raw = rr[rounds / 2];
    res->ratio_rw = rw[rounds / 2];
    pthread_barrier_destroy(&c->start);
    pthread_barrier_destroy(&c->end);
    free(c);
}

static void bench_all(void)
{
    struct result res[MIX_N][4];

    printf("# keys=%u, %.2f s per configuration in %d rounds of alternating slices, maplib max_buckets=%lu\n",
           opt.keys, opt.seconds, opt.repeat, opt.max_buckets);
    printf("%-12s %-8s %-9s %10s %14s\n", "mix", "threads", "impl", "Mops/s", "ns/op/thread");
    for (int m = 0; m < MIX_N; m++)
        for (int ti = 0; ti < opt.nthreads; ti++) {
            if (opt.mix >= 0 && m != opt.mix)
                continue;
            run_config((enum mix)m, (unsigned)opt.threads[ti], &res[m][ti]);
            for (int i = 0; i < IMPL_N; i++) {
                double mops = res[m][ti].mops[i];
                printf("%-12s %-8d %-9s %10.3f %14.1f\n", mix_name[m], opt.threads[ti], impl_name[i], mops,
                       1e3 / (mops / opt.threads[ti]));
                if (opt.smoke && !(mops > 0 && isfinite(mops))) {
                    fprintf(stderr, "bench: no sane rate\n");
                    exit(1);
                }
            }
        }
    printf("\nratios: median over the rounds of the per-round ratio (paired slices)\n");
    printf("%-12s %-8s %16s %16s\n", "mix", "threads", "maplib/raw-lfht", "maplib/rwlock");
    for (int m = 0; m < MIX_N; m++)
        for (int ti = 0; ti < opt.nthreads; ti++)
            if (opt.mix < 0 || m == opt.mix)
                printf("%-12s %-8d %16.3f %16.2f\n", mix_name[m], opt.threads[ti], res[m][ti].ratio_raw,
                       res[m][ti].ratio_rw);
}

/* ---- allocator policy: RSS after deleting N entries ---- */

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (!f || fscanf(f, "%ld %ld", &size, &res) != 2)
        abort();
    fclose(f);
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static void alloc_policy(unsigned long n, const char *policy)
{
    struct table t;
    long base, full, after;
    double t0;

    if (!strcmp(policy, "tune"))
        ml_tune_allocator();
    if (!strcmp(policy, "none"))
        ml_set_trim_policy(0, 0);
    base = rss_kb();
    table_new(&t, IMPL_MAPLIB, 1);
    rcu_read_lock();
    for (unsigned long k = 0; k < n; k++) {
        struct ent *e = ent_new(k, 0);
        if (ml_insert(t.map, &e->node, NULL))
            abort();
        if ((k & 1023) == 1023) {
            rcu_read_unlock();
            rcu_read_lock();
        }
    }
    rcu_read_unlock();
    full = rss_kb();
    uint64_t trims0 = ml_trim_count();
    t0 = now();
    struct ml_iter it;
    rcu_read_lock();
    unsigned long k = 0;
    for (struct ml_node *x = ml_first(t.map, &it); x; x = ml_next(t.map, &it)) {
        ml_delete(t.map, x);
        if ((++k & 1023) == 0) {
            rcu_read_unlock();
            rcu_read_lock();
        }
    }
    rcu_read_unlock();
    rcu_barrier();
    /*
     * Every entry is reclaimed now. Give the maintenance thread its chance:
     * the shrink, then (policies with trimming) one trim that starts after
     * the last reclaim; up to 5 s.
     */
    uint64_t trims = ml_trim_count();
    double t1 = now();
    while (now() - t1 < 5.0) {
        struct ml_stats st;
        ml_map_stats(t.map, &st);
        if (st.buckets == 1 && (strcmp(policy, "none") == 0 || ml_trim_count() > trims))
            break;
        usleep(10000);
    }
    after = rss_kb();
    printf("alloc-policy %-5s n=%lu: RSS base %ld kB, full %ld kB, after deleting all %ld kB (%.1f s, trims "
           "%llu)\n",
           policy, n, base, full, after, now() - t0, (unsigned long long)(ml_trim_count() - trims0));
    table_destroy(&t);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {{"seconds", required_argument, NULL, 's'},
                                       {"repeat", required_argument, NULL, 'r'},
                                       {"keys", required_argument, NULL, 'k'},
                                       {"threads", required_argument, NULL, 't'},
                                       {"smoke", no_argument, NULL, 'S'},
                                       {"alloc", required_argument, NULL, 'a'},
                                       {"mix", required_argument, NULL, 'm'},
                                       {"max-buckets", required_argument, NULL, 'M'},
                                       {NULL, 0, NULL, 0}};
    unsigned long alloc_n = 0;
    int c;

    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 's':
            opt.seconds = atof(optarg);
            break;
        case 'r':
            opt.repeat = atoi(optarg);
            break;
        case 'k':
            opt.keys = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 't': {
            opt.nthreads = 0;
            for (char *p = strtok(optarg, ","); p && opt.nthreads < 4; p = strtok(NULL, ","))
                opt.threads[opt.nthreads++] = atoi(p);
            break;
        }
        case 'S':
            opt.smoke = 1;
            break;
        case 'M':
            opt.max_buckets = strtoul(optarg, NULL, 0);
            break;
        case 'm':
            opt.mix = !strcmp(optarg, "read-mostly") ? MIX_READ : !strcmp(optarg, "churn") ? MIX_CHURN : -1;
            break;
        case 'a':
            alloc_n = strtoul(optarg, NULL, 10);
            break;
        default:
            fprintf(stderr, "usage: see the comment at the top of bench_maplib.c\n");
            return 2;
        }
    }
    if (opt.repeat < 1 || opt.repeat > 64 || opt.keys < 16 || opt.seconds <= 0)
        return 2;
    for (int i = 0; i < opt.nthreads; i++)
        if (opt.threads[i] < 1 || opt.threads[i] > 8)
            return 2;
    seed = 0x5eed;
    ml_thread_online();
    if (alloc_n) {
        if (optind >= argc)
            return 2;
        alloc_policy(alloc_n, argv[optind]);
    } else {
        bench_all();
    }
    ml_shutdown();
    if (atomic_load(&live_entries) != 0) {
        fprintf(stderr, "bench: %ld entries not freed\n", atomic_load(&live_entries));
        return 1;
    }
    return 0;
}
