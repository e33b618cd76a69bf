/*
 * maplib: a compacting concurrent map over liburcu's cds_lfht.
 *
 * DESIGN
 * ------
 * A map is a cds_lfht created without CDS_LFHT_AUTO_RESIZE, plus maplib's own
 * counters and sizing state. Readers only ever touch the cds_lfht (lookups and
 * iteration under rcu_read_lock()); everything else here is for writers, the
 * call_rcu worker and maplib's single maintenance thread.
 *
 * Invariants
 *  - A node is linked in at most one map; node->_map is written before the
 *    node is published by cds_lfht_add_unique/add_replace/replace (their full
 *    barrier orders it) and read by the reclaim callback after the unlink.
 *  - Every node that this library unlinked (delete, replace, upsert, destroy,
 *    retire) is passed to call_rcu exactly once, by the thread whose unlink
 *    succeeded (cds_lfht_del/replace elect a single owner). A node that was
 *    never linked is never passed to call_rcu: the caller frees it.
 *  - live = inserts - deletes and pending = deletes - reclaimed, summed over
 *    the stripes. Each stripe counter only grows. A stripe is written by the
 *    threads hashed to it; sums are therefore exact only when the map is
 *    quiescent, and may be transiently off by in-flight operations (a reader
 *    of the stats can see an increment of one stripe and not yet of another).
 *  - map->buckets is the bucket count maplib last passed to cds_lfht_resize()
 *    (or the initial size); it is written only under map->resize_lock, and
 *    every value is a power of two (cds_lfht_resize spins forever otherwise).
 *  - The maintenance thread is the only one that destroys a retired map, and
 *    it does so after synchronize_rcu() (no reader still holds the map) and
 *    rcu_barrier() (no reclaim callback of the map is still queued), outside
 *    any read-side critical section (0.13.2's destroy can deadlock inside one).
 *
 * What readers can observe
 *  Exactly what cds_lfht gives: a lookup sees either the old or the new node
 *  of a replace, never neither; a node found stays allocated until the
 *  reader's rcu_read_unlock(); a deleted node may still be returned by a
 *  lookup that started before the delete, which is why writers that update in
 *  place check ml_node_is_deleted() under their own per-entry lock.
 *
 * Who frees what
 *  Entries: the caller's reclaim callback, after a grace period, from the
 *  call_rcu worker. Failed inserts: the caller, at once. Maps: ml_map_destroy
 *  (caller's thread, after rcu_barrier) or the maintenance thread (retire).
 *
 * Counters
 *  The hot path must stay within a few percent of raw cds_lfht, so there is no
 *  shared counter that every writer hits: each map has one cache line per
 *  stripe, and a thread always uses the stripe given by a thread-local index
 *  (assigned round-robin at first use). Updates are relaxed atomic adds on the
 *  thread's own line; the sums are computed on read. Relaxed is enough because
 *  the counters never order anything: the cds_lfht operations carry the
 *  barriers, and the only decisions taken on counts (resize, retire's
 *  emptiness check) tolerate or re-check a stale sum.
 *
 * Sizing
 *  After each write a thread compares its stripe's operation count with
 *  next_check (own cache line, cheap). When due, it sums the stripes and
 *  applies the policy: grow when count > buckets (to next_pow2(count)),
 *  shrink when count * 8 < buckets (to next_pow2(count), not below
 *  min_buckets). If a resize is needed the map is queued to the maintenance
 *  thread (one per process, however many maps); otherwise next_check is moved
 *  forward by the distance to the nearest threshold divided by the number of
 *  stripes, so a busy map sums its stripes rarely and a tiny map on every op.
 *  A once-per-tick sweep of all maps by the maintenance thread catches what
 *  the estimate misses (a map whose writes stopped just short of a check).
 *
 * Acquire/release pairings
 *  - g.lock (mutex) protects the map list, the resize and retire queues, the
 *    per-map queued/resizing/dead flags' transitions and the totals of dead
 *    maps; the maintenance thread never holds it across a grace period, so
 *    writers inside read-side critical sections may take it.
 *  - map->resize_lock serialises resizes of one map and the write of
 *    map->buckets; writers read map->buckets with a relaxed load (a stale
 *    value only delays a resize decision by one check).
 *  - the stripes' next_check is reset to 0 by the resizer (relaxed store) and
 *    read relaxed by writers: a missed reset only delays the next check.
 */

#include <assert.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <sys/sdt.h>
#include <urcu.h>
#include <urcu/list.h>
#include <urcu/rculfhash.h>
/*
 * The hash is on every lookup: take libxxhash's header-only (inline) build of
 * the same function, so XXH3 is specialised for the call site instead of
 * reached through the shared library's PLT.
 */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "maplib/maplib.h"

#include "key_equal.h"

/*
 * ThreadSanitizer does not see liburcu's barriers (the library is not
 * instrumented), so it would report the caller's initialisation of an entry
 * as racing with every reader that finds it. In TSan builds maplib states the
 * publication itself: a node is released before cds_lfht links it and
 * acquired when a lookup or walk returns it, which is the ordering cds_lfht's
 * full barriers and rcu_dereference() give. Grace periods are not modelled:
 * frees in reclaim callbacks are left to tests/tsan.supp (liburcu frames) and
 * to ASan, which is the tool that catches a too-early free.
 */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ML_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define ML_TSAN 1
#endif
#ifdef ML_TSAN
#include <sanitizer/tsan_interface.h>
#define tsan_publish(n) __tsan_release(n)
#define tsan_consume(n) __tsan_acquire(n)
#else
#define tsan_publish(n) ((void)0)
#define tsan_consume(n) ((void)0)
#endif

#define ML_MAX_STRIPES 16
#define ML_MAX_BUCKETS (1UL << 30)
#define ML_TICK_MS     200
#define ML_SWEEP_TICKS 5 /* sweep every map once a second */
#define ML_CACHELINE   64

/* Default allocator policy (see the header, "Memory"). */
#define ML_TRIM_MIN_ENTRIES 65536
#define ML_TRIM_INTERVAL_MS 1000

struct ml_stripe {
    uint64_t ins;
    uint64_t del;
    uint64_t recl;
    uint64_t next_check;
} __attribute__((aligned(ML_CACHELINE)));

struct ml_map {
    struct cds_lfht *ht;
    ml_reclaim_fn reclaim;
    uint32_t key_offset; /* 0, or every node's key is this many bytes after it */
    struct ml_stripe *stripes;
    unsigned long min_buckets;
    unsigned long max_buckets;
    unsigned long buckets; /* written under resize_lock */
    uint64_t resizes;      /* written under resize_lock */
    pthread_mutex_t resize_lock;
    /* The following are protected by g.lock. */
    int queued;   /* in g.resize_q, or being resized by the maintenance thread */
    int resizing; /* the maintenance thread is resizing it now */
    int retired;
    int dead; /* ml_map_destroy has started */
    struct cds_list_head all_link;
    struct cds_list_head q_link;
    char name[];
};

/* What node_match() compares against. @off is the map's key_offset: when it
 * is set, the stored key's address is computed from the node's rather than
 * loaded from it, so the two cache misses of a compare can overlap. */
struct ml_key {
    const void *p;
    size_t len;
    uint32_t off;
};

static struct {
    pthread_once_t once;
    pthread_mutex_t lock;
    pthread_cond_t wake;    /* the maintenance thread waits on it */
    pthread_cond_t settled; /* a map stopped being resized */
    struct cds_list_head maps;
    struct cds_list_head resize_q;
    struct cds_list_head retire_q;
    pthread_t thread;
    int running;
    int stop;
    unsigned nstripes;
    uint64_t seed;
    pthread_key_t online_key;
    struct ml_stats dead; /* totals of destroyed maps (buckets unused) */
    /* Allocator policy. */
    uint64_t reclaimed_total; /* atomic, every reclaim of every map */
    uint64_t trim_min_entries;
    unsigned trim_interval_ms;
    uint64_t trims;
} g = {
    .once = PTHREAD_ONCE_INIT,
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .settled = PTHREAD_COND_INITIALIZER,
    .maps = CDS_LIST_HEAD_INIT(g.maps),
    .resize_q = CDS_LIST_HEAD_INIT(g.resize_q),
    .retire_q = CDS_LIST_HEAD_INIT(g.retire_q),
    .trim_min_entries = ML_TRIM_MIN_ENTRIES,
    .trim_interval_ms = ML_TRIM_INTERVAL_MS,
};

/*
 * Totals of destroyed maps by name (ml_stats_by_name), so that a kind's
 * counters never go backwards when one of its maps is freed. Names are few
 * (one per kind of table); past ML_MAX_KINDS they only count in g.dead.
 * Protected by g.lock.
 */
#define ML_MAX_KINDS 16
static struct {
    char name[48];
    struct ml_stats dead;
} g_kinds[ML_MAX_KINDS];
static unsigned g_nkinds;

/* The slot of @name, created if there is room. Called with g.lock held. */
static int kind_slot(const char *name)
{
    for (unsigned i = 0; i < g_nkinds; i++)
        if (strcmp(g_kinds[i].name, name) == 0)
            return (int)i;
    if (g_nkinds == ML_MAX_KINDS || strlen(name) >= sizeof(g_kinds[0].name))
        return -1;
    strcpy(g_kinds[g_nkinds].name, name);
    return (int)g_nkinds++;
}

/* Unlinks of every map, striped like the maps' counters (see ml_throttle). */
static struct {
    uint64_t n;
} __attribute__((aligned(ML_CACHELINE))) g_unlinked[ML_MAX_STRIPES];

static __thread unsigned tls_stripe_plus1;
static __thread int tls_online;

static void die(const char *what, int err)
{
    fprintf(stderr, "maplib: fatal: %s: %s\n", what, strerror(err));
    abort();
}

static unsigned long next_pow2(uint64_t v)
{
    unsigned long p = 1;
    while (p < v && p < ML_MAX_BUCKETS)
        p <<= 1;
    return p;
}

static void online_key_dtor(void *unused)
{
    (void)unused;
    rcu_unregister_thread();
    tls_online = 0;
}

static void global_init(void)
{
    long ncpu = sysconf(_SC_NPROCESSORS_CONF);
    unsigned n = 1;

    while ((long)n < ncpu && n < ML_MAX_STRIPES)
        n <<= 1;
    g.nstripes = n;
    /*
     * A per-process random seed so that nobody can compute colliding keys
     * offline. getrandom() without flags only blocks before the kernel's pool
     * is initialised, which is long past when a daemon starts.
     */
    if (getrandom(&g.seed, sizeof(g.seed), 0) != sizeof(g.seed))
        die("getrandom", errno);
    int err = pthread_key_create(&g.online_key, online_key_dtor);
    if (err)
        die("pthread_key_create", err);
}

static void ensure_init(void)
{
    pthread_once(&g.once, global_init);
}

static inline unsigned my_index(void)
{
    unsigned idx = tls_stripe_plus1;

    if (caa_unlikely(!idx)) {
        static unsigned next;
        idx = __atomic_fetch_add(&next, 1, __ATOMIC_RELAXED) + 1;
        tls_stripe_plus1 = idx;
    }
    return (idx - 1) & (g.nstripes - 1);
}

static inline struct ml_stripe *my_stripe(struct ml_map *map)
{
    return &map->stripes[my_index()];
}

static inline uint64_t load_relaxed(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline void add_relaxed(uint64_t *p, uint64_t v)
{
    __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

static inline uint64_t map_hash(const void *key, size_t len)
{
    return XXH3_64bits_withSeed(key, len, g.seed);
}

static int node_match(struct cds_lfht_node *ln, const void *key)
{
    const struct ml_node *n = caa_container_of(ln, struct ml_node, _lfht);
    const struct ml_key *k = key;

    /* The chain walk reached @ln through an rcu_dereference, as a lookup's result. */
    tsan_consume(ln);

    const char *stored = (const char *)n + (k->off ? k->off : n->_keyoff);

    return n->_keylen == k->len && key_equal(stored, k->p, k->len);
}

struct map_sums {
    uint64_t ins, del, recl;
};

static void map_sums(struct ml_map *map, struct map_sums *s)
{
    memset(s, 0, sizeof(*s));
    for (unsigned i = 0; i < g.nstripes; i++) {
        s->ins += load_relaxed(&map->stripes[i].ins);
        s->del += load_relaxed(&map->stripes[i].del);
        s->recl += load_relaxed(&map->stripes[i].recl);
    }
}

static uint64_t map_live(struct ml_map *map)
{
    struct map_sums s;

    map_sums(map, &s);
    /* Sums of stripes read at different instants can cross: clamp. */
    return s.ins > s.del ? s.ins - s.del : 0;
}

/* The sizing policy: the bucket count a map with @count entries should have. */
static unsigned long policy_target(uint64_t count, unsigned long cur, unsigned long min, unsigned long max)
{
    unsigned long t = cur;

    if (count > (uint64_t)cur && cur < max)
        t = next_pow2(count);
    else if (cur > min && count * 8 < cur)
        t = next_pow2(count);
    if (t > max)
        t = max;
    return t < min ? min : t;
}

/* Queue @map for the maintenance thread. Safe inside a read-side section. */
static void queue_resize(struct ml_map *map)
{
    pthread_mutex_lock(&g.lock);
    if (!map->queued && !map->retired && !map->dead) {
        map->queued = 1;
        cds_list_add_tail(&map->q_link, &g.resize_q);
        pthread_cond_signal(&g.wake);
    }
    pthread_mutex_unlock(&g.lock);
}

/*
 * Sum the stripes and decide. Called by writers when their stripe's next_check
 * is due, and by the sweep. Returns 1 if the map needs a resize.
 */
static int check_size(struct ml_map *map, struct ml_stripe *st, uint64_t ops)
{
    uint64_t count = map_live(map);
    unsigned long cur = __atomic_load_n(&map->buckets, __ATOMIC_RELAXED);
    unsigned long t = policy_target(count, cur, map->min_buckets, map->max_buckets);

    if (t != cur)
        return 1;
    if (st) {
        /* Distance to the nearest threshold, shared among the stripes. */
        uint64_t d = count <= (uint64_t)cur ? (uint64_t)cur + 1 - count : UINT64_MAX / 4;
        if (cur > map->min_buckets) {
            uint64_t lo = cur / 8;
            uint64_t dlo = count >= lo ? count - lo + 1 : 1;
            if (dlo < d)
                d = dlo;
        }
        d /= g.nstripes;
        __atomic_store_n(&st->next_check, ops + (d ? d : 1), __ATOMIC_RELAXED);
    }
    return 0;
}

static inline void after_write(struct ml_map *map, struct ml_stripe *st)
{
    uint64_t ops = load_relaxed(&st->ins) + load_relaxed(&st->del);

    if (caa_unlikely(ops >= load_relaxed(&st->next_check)) && check_size(map, st, ops))
        queue_resize(map);
}

static void reclaim_cb(struct rcu_head *head)
{
    struct ml_node *node = caa_container_of(head, struct ml_node, _rcu);
    struct ml_map *map = node->_map;

    /* USDT maplib:reclaim(map, node, name): the node is about to be freed. */
    STAP_PROBE3(maplib, reclaim, map, node, (const char *)map->name);
    map->reclaim(node);
    /* After the free: a waiter that sees pending == 0 may free the map. */
    add_relaxed(&my_stripe(map)->recl, 1);
    add_relaxed(&g.reclaimed_total, 1);
}

static void count_unlink(struct ml_map *map, struct ml_node *node)
{
    unsigned i = my_index();

    /* USDT maplib:delete(map, node, name): unlinked, reclaimed after a grace period. */
    STAP_PROBE3(maplib, delete, map, node, (const char *)map->name);
    add_relaxed(&map->stripes[i].del, 1);
    /* The process-wide unlink count, for ml_throttle(): own line too. */
    add_relaxed(&g_unlinked[i].n, 1);
    call_rcu(&node->_rcu, reclaim_cb);
}

/* Resize @map to what the policy says now. Outside any read-side section. */
static int do_resize(struct ml_map *map)
{
    int resized = 0;

    pthread_mutex_lock(&map->resize_lock);
    unsigned long cur = map->buckets;
    unsigned long t = policy_target(map_live(map), cur, map->min_buckets, map->max_buckets);
    if (t != cur) {
        cds_lfht_resize(map->ht, t);
        __atomic_store_n(&map->buckets, t, __ATOMIC_RELAXED);
        __atomic_store_n(&map->resizes, map->resizes + 1, __ATOMIC_RELAXED);
        resized = 1;
    }
    /* Make every writer re-evaluate against the new bucket count. */
    for (unsigned i = 0; i < g.nstripes; i++)
        __atomic_store_n(&map->stripes[i].next_check, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&map->resize_lock);
    return resized;
}

/* ---- maintenance thread ---- */

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void process_resizes(void)
{
    pthread_mutex_lock(&g.lock);
    while (!cds_list_empty(&g.resize_q)) {
        struct ml_map *map = cds_list_first_entry(&g.resize_q, struct ml_map, q_link);
        cds_list_del_init(&map->q_link);
        map->resizing = 1;
        pthread_mutex_unlock(&g.lock);

        do_resize(map);

        pthread_mutex_lock(&g.lock);
        map->resizing = 0;
        map->queued = 0;
        pthread_cond_broadcast(&g.settled);
        /*
         * Writers may have moved the count a long way while the resize ran
         * (a mass delete is faster than a shrink) and then gone quiet: look
         * again now rather than wait for the sweep.
         */
        if (!map->dead && !map->retired && check_size(map, NULL, 0)) {
            map->queued = 1;
            cds_list_add_tail(&map->q_link, &g.resize_q);
        }
    }
    pthread_mutex_unlock(&g.lock);
}

/* Unlink every node of @map (the caller is outside a read-side section). */
static void unlink_all(struct ml_map *map)
{
    struct cds_lfht_iter it;
    struct cds_lfht_node *ln;

    rcu_read_lock();
    cds_lfht_first(map->ht, &it);
    while ((ln = cds_lfht_iter_get_node(&it)) != NULL) {
        struct ml_node *n = caa_container_of(ln, struct ml_node, _lfht);
        if (cds_lfht_del(map->ht, ln) == 0)
            count_unlink(map, n);
        cds_lfht_next(map->ht, &it);
    }
    rcu_read_unlock();
}

/* Free a map whose entries are all reclaimed. Outside any read-side section. */
static void free_map(struct ml_map *map)
{
    struct map_sums s;
    int err = cds_lfht_destroy(map->ht, NULL);

    if (err)
        die("cds_lfht_destroy", -err);
    map_sums(map, &s);
    pthread_mutex_lock(&g.lock);
    cds_list_del(&map->all_link);
    g.dead.inserts += s.ins;
    g.dead.deletes += s.del;
    g.dead.reclaimed += s.recl;
    g.dead.resizes += map->resizes;
    int k = kind_slot(map->name);
    if (k >= 0) {
        g_kinds[k].dead.inserts += s.ins;
        g_kinds[k].dead.deletes += s.del;
        g_kinds[k].dead.reclaimed += s.recl;
        g_kinds[k].dead.resizes += map->resizes;
    }
    pthread_mutex_unlock(&g.lock);
    pthread_mutex_destroy(&map->resize_lock);
    free(map->stripes);
    free(map);
}

static void process_retired(void)
{
    struct cds_list_head batch = CDS_LIST_HEAD_INIT(batch);
    struct ml_map *map, *tmp;

    pthread_mutex_lock(&g.lock);
    cds_list_splice(&g.retire_q, &batch);
    CDS_INIT_LIST_HEAD(&g.retire_q);
    pthread_mutex_unlock(&g.lock);
    if (cds_list_empty(&batch))
        return;

    /* Readers that found these maps before they were unpublished finish. */
    synchronize_rcu();
    /*
     * A caller that inserted into a map after retiring it broke the contract;
     * rather than leak or crash, its entries are reclaimed like a destroy's.
     */
    cds_list_for_each_entry(map, &batch, q_link)
    {
        if (map_live(map))
            unlink_all(map);
    }
    /* Every reclaim callback of these maps has run after this. */
    rcu_barrier();
    cds_list_for_each_entry_safe(map, tmp, &batch, q_link)
    {
        cds_list_del(&map->q_link);
        free_map(map);
    }
}

static void sweep_maps(void)
{
    struct ml_map *map;

    pthread_mutex_lock(&g.lock);
    cds_list_for_each_entry(map, &g.maps, all_link)
    {
        if (map->queued || map->retired || map->dead)
            continue;
        if (check_size(map, NULL, 0)) {
            map->queued = 1;
            cds_list_add_tail(&map->q_link, &g.resize_q);
        }
    }
    pthread_mutex_unlock(&g.lock);
}

static uint64_t trim_last_reclaimed;
static uint64_t trim_last_ms;
static uint64_t trim_seen_reclaimed; /* reclaimed_total when it last changed, and when */
static uint64_t trim_seen_ms;

/*
 * The allocator policy: give freed chunks back to the kernel once enough
 * entries were reclaimed since the last trim, at most once per interval.
 * And once more when reclamation has gone quiet for an interval with at
 * least min/16 entries reclaimed since the last trim: the tail of a big
 * drain (fewer than min entries freed after its last trim) would otherwise
 * keep its free pages until the next drain.
 */
static void maybe_trim(uint64_t now)
{
    uint64_t r = load_relaxed(&g.reclaimed_total);
    uint64_t min = __atomic_load_n(&g.trim_min_entries, __ATOMIC_RELAXED);
    unsigned ival = __atomic_load_n(&g.trim_interval_ms, __ATOMIC_RELAXED);

    if (r != trim_seen_reclaimed) {
        trim_seen_reclaimed = r;
        trim_seen_ms = now;
    }
    if (!min || now - trim_last_ms < ival)
        return;
    if (r - trim_last_reclaimed < min) {
        uint64_t tail = min / 16 ? min / 16 : 1;
        if (r - trim_last_reclaimed < tail || now - trim_seen_ms < (ival ? ival : ML_TICK_MS))
            return;
    }
    malloc_trim(0);
    trim_last_reclaimed = r;
    trim_last_ms = now;
    add_relaxed(&g.trims, 1);
}

static void *maint_main(void *arg)
{
    unsigned tick = 0;

    (void)arg;
    rcu_register_thread();
    pthread_mutex_lock(&g.lock);
    while (!g.stop || !cds_list_empty(&g.retire_q)) {
        if (cds_list_empty(&g.resize_q) && cds_list_empty(&g.retire_q) && !g.stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += ML_TICK_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            if (pthread_cond_timedwait(&g.wake, &g.lock, &ts) == ETIMEDOUT && ++tick % ML_SWEEP_TICKS == 0) {
                pthread_mutex_unlock(&g.lock);
                sweep_maps();
                pthread_mutex_lock(&g.lock);
            }
        }
        pthread_mutex_unlock(&g.lock);
        process_resizes();
        process_retired();
        maybe_trim(now_ms());
        pthread_mutex_lock(&g.lock);
    }
    pthread_mutex_unlock(&g.lock);
    rcu_unregister_thread();
    return NULL;
}

/* Start the maintenance thread if it is not running. Called with g.lock held. */
static void start_maint_locked(void)
{
    sigset_t all, old;
    int err;

    if (g.running)
        return;
    /* The thread must never take the process's signals (see DESIGN 4a). */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    g.stop = 0;
    err = pthread_create(&g.thread, NULL, maint_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err)
        die("pthread_create", err);
    g.running = 1;
}

/* ---- public API ---- */

int ml_map_new(const struct ml_map_config *cfg, struct ml_map **out)
{
    struct ml_map *map;
    size_t nlen;
    unsigned long min;
    int err;

    if (!cfg || !cfg->reclaim || !out || cfg->min_buckets > ML_MAX_BUCKETS || cfg->key_offset > UINT32_MAX ||
        (cfg->key_offset && cfg->key_offset < sizeof(struct ml_node)))
        return -EINVAL;
    /* A power of two, at most 2^30: cds_lfht takes the contiguous (mmap) layout for it. */
    if (cfg->max_buckets &&
        ((cfg->max_buckets & (cfg->max_buckets - 1)) || cfg->max_buckets > ML_MAX_BUCKETS ||
         cfg->max_buckets < (cfg->min_buckets ? cfg->min_buckets : 1)))
        return -EINVAL;
    ensure_init();
    min = next_pow2(cfg->min_buckets ? cfg->min_buckets : 1);
    nlen = cfg->name ? strlen(cfg->name) : 0;
    map = calloc(1, sizeof(*map) + nlen + 1);
    if (!map)
        return -ENOMEM;
    if (posix_memalign((void **)&map->stripes, ML_CACHELINE, g.nstripes * sizeof(struct ml_stripe))) {
        err = -ENOMEM;
        goto fail_map;
    }
    memset(map->stripes, 0, g.nstripes * sizeof(struct ml_stripe));
    if (nlen)
        memcpy(map->name, cfg->name, nlen);
    map->reclaim = cfg->reclaim;
    map->key_offset = (uint32_t)cfg->key_offset;
    map->min_buckets = min;
    map->max_buckets = cfg->max_buckets ? cfg->max_buckets : ML_MAX_BUCKETS;
    map->buckets = min;
    /* No CDS_LFHT_AUTO_RESIZE, no ACCOUNTING: maplib sizes the table itself. */
    /*
     * max_buckets == 0: cds_lfht's order allocator, one small array per
     * doubling, cheap for the many small maps. Otherwise one reservation of
     * max_buckets nodes populated as the table grows: a bucket is then one
     * array index away, which measured up to ~1.5-2x faster lookups in a
     * 100,000-entry map on this machine (bench/README.md).
     */
    map->ht = cds_lfht_new(min, 1, cfg->max_buckets, 0, NULL);
    if (!map->ht) {
        err = -ENOMEM;
        goto fail_stripes;
    }
    pthread_mutex_init(&map->resize_lock, NULL);
    CDS_INIT_LIST_HEAD(&map->q_link);

    pthread_mutex_lock(&g.lock);
    start_maint_locked();
    cds_list_add_tail(&map->all_link, &g.maps);
    pthread_mutex_unlock(&g.lock);
    *out = map;
    return 0;

fail_stripes:
    free(map->stripes);
fail_map:
    free(map);
    return err;
}

int ml_map_destroy(struct ml_map *map)
{
    pthread_mutex_lock(&g.lock);
    map->dead = 1;
    if (map->queued && !map->resizing) {
        cds_list_del_init(&map->q_link);
        map->queued = 0;
    }
    while (map->resizing)
        pthread_cond_wait(&g.settled, &g.lock);
    pthread_mutex_unlock(&g.lock);

    unlink_all(map);
    rcu_barrier();
    free_map(map);
    return 0;
}

int ml_map_retire(struct ml_map *map)
{
    int ret = 0;

    pthread_mutex_lock(&g.lock);
    if (map->retired || map->dead) {
        ret = -EINVAL;
    } else if (map_live(map)) {
        ret = -ENOTEMPTY;
    } else {
        map->retired = 1;
        /*
         * Take it off the resize queue. If the maintenance thread is resizing
         * it right now, q_link is already off every list; the retire queue is
         * processed after the resize by that same thread, so the destroy
         * cannot overtake the resize.
         */
        if (map->queued && !map->resizing)
            cds_list_del_init(&map->q_link);
        cds_list_add_tail(&map->q_link, &g.retire_q);
        pthread_cond_signal(&g.wake);
    }
    pthread_mutex_unlock(&g.lock);
    return ret;
}

int ml_map_is_retired(struct ml_map *map)
{
    pthread_mutex_lock(&g.lock);
    int r = map->retired;
    pthread_mutex_unlock(&g.lock);
    return r;
}

void ml_node_init(struct ml_node *node, const void *key, size_t keylen)
{
    uintptr_t off = (uintptr_t)key - (uintptr_t)node;

    assert((uintptr_t)key >= (uintptr_t)(node + 1) && off <= UINT32_MAX && keylen <= UINT32_MAX);
    cds_lfht_node_init(&node->_lfht);
    node->_map = NULL;
    node->_keyoff = (uint32_t)off;
    node->_keylen = (uint32_t)keylen;
}

/* The key of a node to insert into @map, or -EINVAL when the map's fixed key
 * offset says otherwise. */
static int node_key(const struct ml_map *map, const struct ml_node *node, struct ml_key *k)
{
    if (map->key_offset && node->_keyoff != map->key_offset)
        return -EINVAL;
    k->p = (const char *)node + node->_keyoff;
    k->len = node->_keylen;
    k->off = map->key_offset;
    return 0;
}

struct ml_node *ml_lookup(struct ml_map *map, const void *key, size_t keylen)
{
    struct ml_key k = {key, keylen, map->key_offset};
    struct cds_lfht_iter it;
    struct cds_lfht_node *ln;

    cds_lfht_lookup(map->ht, map_hash(key, keylen), node_match, &k, &it);
    ln = cds_lfht_iter_get_node(&it);
    if (!ln)
        return NULL;
    tsan_consume(ln);
    return caa_container_of(ln, struct ml_node, _lfht);
}

int ml_insert(struct ml_map *map, struct ml_node *node, struct ml_node **existing)
{
    struct ml_key k;
    struct cds_lfht_node *ln;
    struct ml_stripe *st;

    if (node_key(map, node, &k))
        return -EINVAL;
    node->_map = map;
    tsan_publish(&node->_lfht);
    ln = cds_lfht_add_unique(map->ht, map_hash(k.p, k.len), node_match, &k, &node->_lfht);
    if (ln != &node->_lfht) {
        node->_map = NULL;
        tsan_consume(ln);
        if (existing)
            *existing = caa_container_of(ln, struct ml_node, _lfht);
        return -EEXIST;
    }
    st = my_stripe(map);
    add_relaxed(&st->ins, 1);
    /* USDT maplib:insert(map, node, name): linked. */
    STAP_PROBE3(maplib, insert, map, node, (const char *)map->name);
    after_write(map, st);
    return 0;
}

int ml_upsert(struct ml_map *map, struct ml_node *node, struct ml_node **replaced)
{
    struct ml_key k;
    struct cds_lfht_node *ln;
    struct ml_stripe *st = my_stripe(map);

    if (node_key(map, node, &k))
        return -EINVAL;
    node->_map = map;
    tsan_publish(&node->_lfht);
    ln = cds_lfht_add_replace(map->ht, map_hash(k.p, k.len), node_match, &k, &node->_lfht);
    add_relaxed(&st->ins, 1);
    STAP_PROBE3(maplib, insert, map, node, (const char *)map->name);
    if (ln)
        tsan_consume(ln);
    if (ln)
        count_unlink(map, caa_container_of(ln, struct ml_node, _lfht));
    if (replaced)
        *replaced = ln ? caa_container_of(ln, struct ml_node, _lfht) : NULL;
    after_write(map, st);
    return 0;
}

int ml_replace(struct ml_map *map, struct ml_node *old, struct ml_node *node)
{
    struct ml_key k;
    struct cds_lfht_iter it;
    int ret;

    if (node_key(map, node, &k) || old->_keylen != node->_keylen ||
        (k.len && memcmp((const char *)old + old->_keyoff, k.p, k.len) != 0))
        return -EINVAL;
    /*
     * cds_lfht_replace() only uses the iterator's node and its next pointer as
     * the first guess of its compare-and-swap; a stale guess is retried, and a
     * removed flag on it means @old is gone.
     */
    it.node = &old->_lfht;
    it.next = CMM_LOAD_SHARED(old->_lfht.next);
    node->_map = map;
    tsan_publish(&node->_lfht);
    ret = cds_lfht_replace(map->ht, &it, map_hash(k.p, k.len), node_match, &k, &node->_lfht);
    if (ret) {
        node->_map = NULL;
        return ret;
    }
    add_relaxed(&my_stripe(map)->ins, 1);
    STAP_PROBE3(maplib, insert, map, node, (const char *)map->name);
    count_unlink(map, old);
    return 0;
}

int ml_delete(struct ml_map *map, struct ml_node *node)
{
    struct ml_stripe *st;

    if (cds_lfht_del(map->ht, &node->_lfht))
        return -ENOENT;
    st = my_stripe(map);
    count_unlink(map, node);
    after_write(map, st);
    return 0;
}

int ml_node_is_deleted(struct ml_node *node)
{
    return cds_lfht_is_node_deleted(&node->_lfht);
}

struct ml_node *ml_first(struct ml_map *map, struct ml_iter *it)
{
    struct cds_lfht_node *ln;

    cds_lfht_first(map->ht, &it->_it);
    ln = cds_lfht_iter_get_node(&it->_it);
    if (!ln)
        return NULL;
    tsan_consume(ln);
    return caa_container_of(ln, struct ml_node, _lfht);
}

struct ml_node *ml_next(struct ml_map *map, struct ml_iter *it)
{
    struct cds_lfht_node *ln;

    cds_lfht_next(map->ht, &it->_it);
    ln = cds_lfht_iter_get_node(&it->_it);
    if (!ln)
        return NULL;
    tsan_consume(ln);
    return caa_container_of(ln, struct ml_node, _lfht);
}

void ml_iter_at(struct ml_map *map, struct ml_node *node, struct ml_iter *it)
{
    (void)map;
    /* What cds_lfht_next() reads: the node and its next pointer. */
    it->_it.node = &node->_lfht;
    it->_it.next = rcu_dereference(node->_lfht.next);
}

uint64_t ml_map_count(struct ml_map *map)
{
    return map_live(map);
}

const char *ml_map_name(const struct ml_map *map)
{
    return map->name;
}

void ml_map_stats(struct ml_map *map, struct ml_stats *st)
{
    struct map_sums s;

    map_sums(map, &s);
    st->inserts = s.ins;
    st->deletes = s.del;
    st->reclaimed = s.recl;
    st->live = s.ins > s.del ? s.ins - s.del : 0;
    st->pending = s.del > s.recl ? s.del - s.recl : 0;
    st->buckets = __atomic_load_n(&map->buckets, __ATOMIC_RELAXED);
    st->resizes = __atomic_load_n(&map->resizes, __ATOMIC_RELAXED);
}

void ml_stats_total(struct ml_stats *st)
{
    struct ml_map *map;
    struct ml_stats one;

    pthread_mutex_lock(&g.lock);
    *st = g.dead;
    st->live = 0;
    st->buckets = 0;
    st->pending = 0;
    cds_list_for_each_entry(map, &g.maps, all_link)
    {
        ml_map_stats(map, &one);
        st->inserts += one.inserts;
        st->deletes += one.deletes;
        st->reclaimed += one.reclaimed;
        st->resizes += one.resizes;
        st->buckets += one.buckets;
    }
    pthread_mutex_unlock(&g.lock);
    st->live = st->inserts > st->deletes ? st->inserts - st->deletes : 0;
    st->pending = st->deletes > st->reclaimed ? st->deletes - st->reclaimed : 0;
}

void ml_stats_by_name(ml_stats_name_fn fn, void *ctx)
{
    struct ml_stats sums[ML_MAX_KINDS];
    const char *names[ML_MAX_KINDS];
    unsigned n = 0;
    struct ml_map *map;
    struct ml_stats one;

    pthread_mutex_lock(&g.lock);
    for (unsigned i = 0; i < g_nkinds; i++) {
        names[n] = g_kinds[i].name;
        sums[n] = g_kinds[i].dead;
        sums[n].buckets = 0;
        n++;
    }
    cds_list_for_each_entry(map, &g.maps, all_link)
    {
        unsigned i;
        for (i = 0; i < n; i++)
            if (strcmp(names[i], map->name) == 0)
                break;
        if (i == n) {
            if (n == ML_MAX_KINDS)
                continue;
            names[n] = map->name;
            memset(&sums[n], 0, sizeof(sums[n]));
            n++;
        }
        ml_map_stats(map, &one);
        sums[i].inserts += one.inserts;
        sums[i].deletes += one.deletes;
        sums[i].reclaimed += one.reclaimed;
        sums[i].resizes += one.resizes;
        sums[i].buckets += one.buckets;
    }
    for (unsigned i = 0; i < n; i++) {
        sums[i].live = sums[i].inserts > sums[i].deletes ? sums[i].inserts - sums[i].deletes : 0;
        sums[i].pending = sums[i].deletes > sums[i].reclaimed ? sums[i].deletes - sums[i].reclaimed : 0;
        fn(ctx, names[i], &sums[i]);
    }
    pthread_mutex_unlock(&g.lock);
}

void ml_maps_each(ml_map_visit_fn fn, void *ctx)
{
    struct ml_map *map;

    pthread_mutex_lock(&g.lock);
    cds_list_for_each_entry(map, &g.maps, all_link)
    {
        if (map->dead)
            continue;
        if (fn(ctx, map))
            break;
    }
    pthread_mutex_unlock(&g.lock);
}

/*
 * cds_lfht keeps every node in one list sorted by bit-reversed hash, so the
 * nodes of one bucket (same low hash bits) are consecutive: a walk that
 * counts runs of equal (hash & (buckets - 1)) sees each chain once.
 */
uint64_t ml_map_chain_hist(struct ml_map *map, uint64_t *hist, unsigned nbins)
{
    unsigned long buckets = __atomic_load_n(&map->buckets, __ATOMIC_RELAXED);
    unsigned long mask = buckets ? buckets - 1 : 0;
    struct cds_lfht_iter it;
    struct cds_lfht_node *ln;
    uint64_t chains = 0, run = 0;
    unsigned long cur = 0;

    memset(hist, 0, nbins * sizeof(*hist));
    cds_lfht_first(map->ht, &it);
    while ((ln = cds_lfht_iter_get_node(&it)) != NULL) {
        struct ml_node *node = caa_container_of(ln, struct ml_node, _lfht);
        unsigned long b = (unsigned long)map_hash((const char *)node + node->_keyoff, node->_keylen) & mask;
        if (run && b != cur) {
            hist[run < nbins ? run - 1 : nbins - 1]++;
            chains++;
            run = 0;
        }
        cur = b;
        run++;
        cds_lfht_next(map->ht, &it);
    }
    if (run) {
        hist[run < nbins ? run - 1 : nbins - 1]++;
        chains++;
    }
    return chains;
}

int ml_map_maintain(struct ml_map *map)
{
    return do_resize(map);
}

void ml_thread_online(void)
{
    if (tls_online)
        return;
    ensure_init();
    rcu_register_thread();
    tls_online = 1;
    /* Any non-NULL value makes the key's destructor run at thread exit. */
    pthread_setspecific(g.online_key, (void *)1);
}

void ml_tune_allocator(void)
{
    /*
     * Fastbin chunks are never coalesced until something large is
     * allocated, so under churn the freed entries stay scattered among live
     * ones and malloc_trim() cannot give their pages back. Measured with
     * tests/maplib/test_maplib_churn (bench/README.md): quiescent RSS crept
     * +18 % in 40 s with fastbins and stayed flat (+1 %) without, at the same
     * throughput; the per-thread tcache keeps the fast path.
     */
    mallopt(M_MXFAST, 0);
}

uint64_t ml_pending_total(void)
{
    uint64_t del = 0, recl;

    /* Read the reclaims first: each is counted after its unlink was. */
    recl = __atomic_load_n(&g.reclaimed_total, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < ML_MAX_STRIPES; i++)
        del += load_relaxed(&g_unlinked[i].n);
    return del > recl ? del - recl : 0;
}

int ml_throttle(uint64_t max_pending)
{
    if (ml_pending_total() <= max_pending)
        return 0;
    /* Every callback queued so far, by any thread, has run after this. */
    rcu_barrier();
    return 1;
}

void ml_set_trim_policy(uint64_t min_entries, unsigned interval_ms)
{
    __atomic_store_n(&g.trim_min_entries, min_entries, __ATOMIC_RELAXED);
    __atomic_store_n(&g.trim_interval_ms, interval_ms, __ATOMIC_RELAXED);
}

uint64_t ml_trim_count(void)
{
    return load_relaxed(&g.trims);
}

void ml_shutdown(void)
{
    pthread_mutex_lock(&g.lock);
    if (g.running) {
        g.stop = 1;
        pthread_cond_signal(&g.wake);
        pthread_mutex_unlock(&g.lock);
        pthread_join(g.thread, NULL);
        pthread_mutex_lock(&g.lock);
        g.running = 0;
        /* Anything queued after the thread's last pass. */
        while (!cds_list_empty(&g.resize_q)) {
            struct ml_map *map = cds_list_first_entry(&g.resize_q, struct ml_map, q_link);
            cds_list_del_init(&map->q_link);
            map->queued = 0;
        }
    }
    pthread_mutex_unlock(&g.lock);
    rcu_barrier();
}
