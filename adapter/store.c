/*
 * store: the series store. See store.h for the API.
 *
 * DESIGN
 *
 * Three levels of maplib maps: metrics (by name) -> groups (by namespace)
 * -> series (by encoded labels). Readers find a series with three lookups
 * under one rcu_read_lock() and never take a lock.
 *
 * Series. Writers serialise on s->lock (a spin lock word; two HA senders or a
 * retry racing the original may write one series at the same moment). Under
 * it they bracket every change of the sample ring with s->seq (odd while a
 * change is in progress). Readers copy the ring with relaxed atomic loads
 * between two reads of s->seq and retry when it was odd or changed: a
 * snapshot is always one that a writer left in place. The ring lives inline
 * in the series entry; when the window holds more samples than fit, the
 * writer copies them into a bigger heap block and publishes it with
 * rcu_assign_pointer (pairs with the rcu_dereference in snapshot_once()); the
 * block it replaced is freed through call_rcu, because a reader may still be
 * copying from it. The capacity a reader uses comes from the block itself, so
 * a reader that sees a new block with an old head/count (caught by the seqlock
 * afterwards) still never reads out of bounds.
 *
 * Get-or-create versus delete (DESIGN 4a). A stale marker or the reaper
 * deletes a series under its lock; a writer that found the series by lookup
 * takes the lock and then checks ml_node_is_deleted(): if the node is dead it
 * retries the lookup (and creates a new series), so a sample never lands in
 * a dead node.
 *
 * Groups and metric entries are removed when empty, and only by the reaper
 * (one reaper pass at a time, reap_mu). The race with a writer that is about
 * to insert into that group is settled by the group's state word: creators
 * increment it (an in-flight count) while they insert and before they count
 * the new series; the reaper CASes it from 0 to DEAD, then re-reads the
 * series count (an insert may have completed between its first look and the
 * CAS) and backs off (stores 0) if the count is not zero. A creator that sees
 * DEAD waits for the reaper to either unlink the entry or back off, and then
 * looks it up again. Because only the reaper unlinks groups and metrics, the
 * reaper may keep pointers to them across read-side sections, which is how it
 * keeps those sections to one group at a time.
 *
 * Counters are relaxed atomics. Per-sample counts are tallied per request by
 * the caller (struct store_tally) and added once.
 */

#include "store.h"

#include "expo.h"
#include "region.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEAD_BIT (UINT64_C(1) << 63)

#define RELAXED   __ATOMIC_RELAXED
#define LD(p)     __atomic_load_n((p), RELAXED)
#define ST(p, v)  __atomic_store_n((p), (v), RELAXED)
#define ADD(p, v) __atomic_fetch_add((p), (v), RELAXED)
#define SUB(p, v) __atomic_fetch_sub((p), (v), RELAXED)

struct slot {
    int64_t ts;
    uint64_t vbits; /* the value's bits: stored and loaded as an integer, so no torn double */
};

struct sample_block {
    struct rcu_head rcu;
    uint32_t cap;
    struct slot s[];
};

struct store_metric {
    struct ml_node node;
    uint64_t state;   /* DEAD_BIT | creators in flight */
    uint64_t nseries; /* live series of this metric, plus reservations in flight */
    uint64_t ngroups; /* linked groups */
    int type;
    struct ml_map *groups;
    uint32_t name_len;
    char name[];
};

struct store_group {
    struct ml_node node;
    uint64_t state;   /* DEAD_BIT | creators in flight */
    uint64_t nseries; /* linked series */
    uint64_t gen;     /* bumped on every series insert and before every unlink: store_group_generation() */
    uint64_t unl_begin, unl_end; /* series unlinks started, finished: store_group_generation() */
    struct store_metric *metric;
    struct ml_map *series;
    uint32_t ns_len;
    char ns[];
};

/* A metric type from remote-write metadata, kept apart from the metric entries
 * (Prometheus sends metadata for every family it scrapes, most of which never
 * reach the store): at most STORE_MAX_TYPES, dropped by the reaper when not
 * refreshed for the series TTL. Only the reaper unlinks them. */
struct store_typed {
    struct ml_node node;
    int type;
    uint32_t seen;   /* set by metadata, cleared by the reaper */
    int64_t last_ms; /* the reaper's clock when it last found seen set */
    char name[];
};

struct store_series {
    struct ml_node node;
    struct store_group *group;
    uint32_t lock; /* writers only */
    uint32_t seq;  /* odd while a writer changes the ring */
    int64_t newest;
    struct sample_block *heap; /* NULL: the ring is inl[] */
    uint16_t head, n, cap, inl_cap;
    struct slot inl[]; /* inl_cap slots, then the key bytes */
};

/* Each entry's key offset from its node is the key's offset in the entry. */
_Static_assert(offsetof(struct store_metric, node) == 0 && offsetof(struct store_group, node) == 0 &&
                   offsetof(struct store_typed, node) == 0 && offsetof(struct store_series, node) == 0,
               "the map node comes first");

struct counters {
    uint64_t series_live, groups_live, metrics_live;
    uint64_t series_created, deleted_stale, deleted_ttl;
    uint64_t refused[STORE_REFUSED_COUNT];
    uint64_t accepted, out_of_order, dropped_refused, dropped_invalid, dropped_unwanted, stale_absent;
    uint64_t heap_blocks, reap_passes;
    uint64_t moved, compactions;
    uint64_t types_live, types_refused;
    uint64_t group_gen; /* bumped before every group unlink: store_group_generation() */
};

struct store {
    struct store_config cfg;
    struct ml_map *metrics;
    struct ml_map *types; /* name -> struct store_typed */
    int refuse_new;
    int64_t window_ms;    /* samples kept: max(cfg.rate_window_ms, store_set_rate_window()); relaxed */
    store_admit_fn admit; /* NULL: every new series is wanted */
    void *admit_ctx;
    struct counters c;
    uint64_t live_peak; /* most live series since the last compaction; under reap_mu */

    pthread_mutex_t reap_mu; /* one reap pass at a time: only the reaper unlinks groups and metrics */
    pthread_t reaper;
    int reaper_started;
    pthread_mutex_t wake_mu;
    pthread_cond_t wake_cv;
    int wake, stop;
};

/* ------------------------------------------------------------------------- */
/* Small helpers                                                              */
/* ------------------------------------------------------------------------- */

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "store: out of memory (%zu bytes)\n", n);
        abort();
    }
    return p;
}

static inline void cpu_relax(unsigned *spins)
{
    if (++*spins < 64)
        caa_cpu_relax();
    else
        sched_yield();
}

/* hold_enter/hold_exit: a creator's in-flight count; fails once the entry is DEAD. */
static int hold_enter(uint64_t *w)
{
    uint64_t v = __atomic_load_n(w, __ATOMIC_ACQUIRE);
    for (;;) {
        if (v & DEAD_BIT)
            return 0;
        /* Pairs with the CAS in try_kill(): a hold taken first makes the kill fail. */
        if (__atomic_compare_exchange_n(w, &v, v + 1, 1, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return 1;
    }
}

static void hold_exit(uint64_t *w)
{
    /* Release: the counts the creator bumped are visible to the reaper's acquiring CAS. */
    __atomic_fetch_sub(w, 1, __ATOMIC_RELEASE);
}

static int try_kill(uint64_t *w)
{
    uint64_t zero = 0;
    return __atomic_compare_exchange_n(w, &zero, DEAD_BIT, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

static void unkill(uint64_t *w)
{
    __atomic_store_n(w, 0, __ATOMIC_RELEASE);
}

static void series_lock(struct store_series *s)
{
    unsigned spins = 0;
    /* Acquire pairs with the release in series_unlock(). */
    while (__atomic_exchange_n(&s->lock, 1, __ATOMIC_ACQUIRE))
        while (LD(&s->lock))
            cpu_relax(&spins);
}

static void series_unlock(struct store_series *s)
{
    __atomic_store_n(&s->lock, 0, __ATOMIC_RELEASE);
}

static void seq_begin(struct store_series *s)
{
    ST(&s->seq, s->seq + 1);
    /* Orders the odd seq before the ring stores; pairs with the acquire fence in snapshot_once(). */
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

static void seq_end(struct store_series *s)
{
    /* Release: the ring stores happen before the even seq; pairs with the reader's first acquire load. */
    __atomic_store_n(&s->seq, s->seq + 1, __ATOMIC_RELEASE);
}

static size_t varint_len(size_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *varint_put(uint8_t *p, size_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static int varint_get(const uint8_t **pp, const uint8_t *end, size_t *v)
{
    const uint8_t *p = *pp;
    size_t x = 0;
    for (unsigned shift = 0; p < end && shift < 64; shift += 7) {
        uint8_t b = *p++;
        x |= (size_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            *pp = p;
            return 1;
        }
    }
    return 0;
}

static int is_label(const struct api_rw_label *l, const char *name, size_t len)
{
    return l->name_len == len && memcmp(l->name, name, len) == 0;
}

const char *store_refusal_str(enum store_refusal r)
{
    switch (r) {
    case STORE_REFUSED_MAX_SERIES:
        return "max_series";
    case STORE_REFUSED_MAX_PER_METRIC:
        return "max_series_per_metric";
    case STORE_REFUSED_MEMORY:
        return "memory";
    case STORE_REFUSED_NO_RULE:
        return "no_rule";
    default:
        return "none";
    }
}

/* ------------------------------------------------------------------------- */
/* Reclaim callbacks (after a grace period, from call_rcu's worker)           */
/* ------------------------------------------------------------------------- */

/* Bytes of a series entry: the header, the inline slots, the key. */
static size_t series_bytes(const struct store_series *s)
{
    size_t klen;
    const char *key = ml_node_key(&s->node, &klen);
    return (size_t)(key - (const char *)s) + klen;
}

static void series_reclaim(struct ml_node *node)
{
    struct store_series *s = caa_container_of(node, struct store_series, node);
    if (s->heap)
        free(s->heap);
    if (!region_free(s, series_bytes(s)))
        free(s);
}

static void group_reclaim(struct ml_node *node)
{
    struct store_group *g = caa_container_of(node, struct store_group, node);
    if (g->series && ml_map_retire(g->series) != 0)
        fprintf(stderr, "store: group map not empty at reclaim (leaked)\n");
    free(g);
}

static void metric_reclaim(struct ml_node *node)
{
    struct store_metric *m = caa_container_of(node, struct store_metric, node);
    if (m->groups && ml_map_retire(m->groups) != 0)
        fprintf(stderr, "store: metric map not empty at reclaim (leaked)\n");
    free(m);
}

static void typed_reclaim(struct ml_node *node)
{
    free(caa_container_of(node, struct store_typed, node));
}

static void block_free_cb(struct rcu_head *head)
{
    free(caa_container_of(head, struct sample_block, rcu));
}

/* @key_offset: where every entry of the map keeps its key, from its node (maplib.h). */
static struct ml_map *map_new(const char *name, unsigned long min_buckets, ml_reclaim_fn fn,
                              size_t key_offset)
{
    struct ml_map_config mc = {
        .name = name, .min_buckets = min_buckets, .reclaim = fn, .key_offset = key_offset};
    struct ml_map *m;
    if (ml_map_new(&mc, &m) != 0) {
        fprintf(stderr, "store: cannot create map %s\n", name);
        abort();
    }
    return m;
}

/* ------------------------------------------------------------------------- */
/* Write path                                                                 */
/* ------------------------------------------------------------------------- */

/* The parsed identity of the series being written. */
struct wkey {
    const struct api_rw_label *labels; /* as given to store_write(), for the admission hook */
    size_t nlabels;
    const char *name, *ns;
    size_t name_len, ns_len;
    const uint8_t *key;
    size_t key_len;
};

/* Maps created outside the read-side section, consumed by the creators. */
struct spare {
    struct ml_map *groups_map; /* for a new metric */
    struct ml_map *series_map; /* for a new group */
    int admitted;              /* the admission hook said yes once; not asked again on a retry */
};

/* The type metadata gave for @name, UNKNOWN if none is held. Read lock held. */
static int typed_type(struct store *st, const char *name, size_t len)
{
    struct ml_node *n = ml_lookup(st->types, name, len);
    return n ? LD(&caa_container_of(n, struct store_typed, node)->type) : API_RW_TYPE_UNKNOWN;
}

enum { GET_OK = 0, GET_ABSENT = 1, GET_NEED_GROUPS_MAP = 2, GET_NEED_SERIES_MAP = 3, GET_RETRY = 4 };
#define GET_REFUSED(r) (16 + (r))

static int metric_hold(struct store *st, const char *name, size_t len, struct spare *sp,
                       struct store_metric **out)
{
    unsigned spins = 0;
    for (;;) {
        struct ml_node *n = ml_lookup(st->metrics, name, len);
        if (n) {
            struct store_metric *m = caa_container_of(n, struct store_metric, node);
            if (hold_enter(&m->state)) {
                *out = m;
                return GET_OK;
            }
            /* Being removed by the reaper: it unlinks it or backs off in a moment. */
            cpu_relax(&spins);
            continue;
        }
        if (!sp->groups_map)
            return GET_NEED_GROUPS_MAP;
        struct store_metric *m = xmalloc(sizeof *m + len + 1);
        memset(m, 0, sizeof *m);
        m->state = 1; /* born held by its creator */
        m->type = typed_type(st, name, len);
        m->groups = sp->groups_map;
        m->name_len = (uint32_t)len;
        memcpy(m->name, name, len);
        m->name[len] = 0;
        ml_node_init(&m->node, m->name, len);
        if (ml_insert(st->metrics, &m->node, NULL) == 0) {
            sp->groups_map = NULL;
            ADD(&st->c.metrics_live, 1);
            /* Metadata that came in meanwhile: store_set_metric_type() sets the
             * type, fences, then looks for the entry; this side links, fences,
             * then reads the type, so one of the two sees the other. */
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
            int type = typed_type(st, name, len);
            if (type != API_RW_TYPE_UNKNOWN && type != m->type)
                ST(&m->type, type);
            *out = m;
            return GET_OK;
        }
        free(m); /* lost a race: never seen by anyone, free at once */
    }
}

static int group_hold(struct store *st, struct store_metric *m, const char *ns, size_t len, struct spare *sp,
                      struct store_group **out)
{
    unsigned spins = 0;
    for (;;) {
        struct ml_node *n = ml_lookup(m->groups, ns, len);
        if (n) {
            struct store_group *g = caa_container_of(n, struct store_group, node);
            if (hold_enter(&g->state)) {
                *out = g;
                return GET_OK;
            }
            cpu_relax(&spins);
            continue;
        }
        if (!sp->series_map)
            return GET_NEED_SERIES_MAP;
        struct store_group *g = xmalloc(sizeof *g + len + 1);
        memset(g, 0, sizeof *g);
        g->state = 1;
        g->metric = m;
        g->series = sp->series_map;
        g->ns_len = (uint32_t)len;
        memcpy(g->ns, ns, len);
        g->ns[len] = 0;
        ml_node_init(&g->node, g->ns, len);
        if (ml_insert(m->groups, &g->node, NULL) == 0) {
            sp->series_map = NULL;
            /* Counted while m is held, so the reaper's kill of m sees it. */
            ADD(&m->ngroups, 1);
            ADD(&st->c.groups_live, 1);
            *out = g;
            return GET_OK;
        }
        free(g);
    }
}

/* The key follows the inline slots, whose number is the store's. */
static size_t series_key_offset(const struct store *st)
{
    return offsetof(struct store_series, inl) + st->cfg.inline_samples * sizeof(struct slot);
}

static struct store_series *series_alloc(struct store *st, struct store_group *g, const struct wkey *k)
{
    unsigned ic = st->cfg.inline_samples;
    struct store_series *s = xmalloc(sizeof *s + ic * sizeof(struct slot) + k->key_len);
    memset(s, 0, sizeof *s);
    s->group = g;
    s->lock = 1; /* born locked by its creator: other writers wait for its first samples */
    s->newest = INT64_MIN;
    s->cap = (uint16_t)ic;
    s->inl_cap = (uint16_t)ic;
    uint8_t *key = (uint8_t *)s + series_key_offset(st);
    if (k->key_len)
        memcpy(key, k->key, k->key_len);
    ml_node_init(&s->node, key, k->key_len);
    return s;
}

/*
 * Reserve one live series globally and for the metric, checking the limits.
 * Reserving (add, then check, then undo) keeps the limits exact under races.
 */
static int reserve(struct store *st, struct store_metric *m)
{
    if (LD(&st->refuse_new))
        return STORE_REFUSED_MEMORY;
    uint64_t live = ADD(&st->c.series_live, 1) + 1;
    if (st->cfg.max_series && live > st->cfg.max_series) {
        SUB(&st->c.series_live, 1);
        return STORE_REFUSED_MAX_SERIES;
    }
    uint64_t per = ADD(&m->nseries, 1) + 1;
    if (st->cfg.max_series_per_metric && per > st->cfg.max_series_per_metric) {
        SUB(&m->nseries, 1);
        SUB(&st->c.series_live, 1);
        return STORE_REFUSED_MAX_PER_METRIC;
    }
    return 0;
}

static void unreserve(struct store *st, struct store_metric *m)
{
    SUB(&m->nseries, 1);
    SUB(&st->c.series_live, 1);
}

/* Create the series (or find the one a racing creator just linked). Read lock held. */
static int series_create(struct store *st, const struct wkey *k, struct spare *sp, struct store_series **out)
{
    struct store_metric *m;
    struct store_group *g;
    if (st->admit && !sp->admitted) {
        /* Asked before anything is created, so an unwanted series leaves no metric entry behind. */
        struct ml_node *mn = ml_lookup(st->metrics, k->name, k->name_len);
        int type = mn ? LD(&caa_container_of(mn, struct store_metric, node)->type)
                      : typed_type(st, k->name, k->name_len);
        if (!st->admit(st->admit_ctx, k->labels, k->nlabels, type))
            return GET_REFUSED(STORE_REFUSED_NO_RULE);
        sp->admitted = 1;
    }
    int r = metric_hold(st, k->name, k->name_len, sp, &m);
    if (r != GET_OK)
        return r;
    r = reserve(st, m);
    if (r) {
        hold_exit(&m->state);
        return GET_REFUSED(r);
    }
    r = group_hold(st, m, k->ns, k->ns_len, sp, &g);
    if (r != GET_OK) {
        unreserve(st, m);
        hold_exit(&m->state);
        return r;
    }
    struct store_series *s = series_alloc(st, g, k);
    if (ml_insert(g->series, &s->node, NULL) == 0) {
        /* Counted before the hold is released: pairs with the reaper's re-check after try_kill(). */
        ADD(&g->nseries, 1);
        ADD(&st->c.series_created, 1);
        __atomic_fetch_add(&g->gen, 1, __ATOMIC_RELEASE);
        hold_exit(&g->state);
        hold_exit(&m->state);
        *out = s; /* locked */
        return GET_OK;
    }
    free(s);
    unreserve(st, m);
    hold_exit(&g->state);
    hold_exit(&m->state);
    return GET_RETRY;
}

/*
 * Find the live series and lock it, creating it when @create. Read lock held.
 * A node found dead under its lock is retried: that is the guard against
 * samples landing in a node a concurrent stale marker or the reaper removed.
 */
static int series_get_locked(struct store *st, const struct wkey *k, int create, struct spare *sp,
                             struct store_series **out)
{
    for (;;) {
        struct ml_node *n = ml_lookup(st->metrics, k->name, k->name_len);
        struct store_group *g = NULL;
        if (n) {
            struct store_metric *m = caa_container_of(n, struct store_metric, node);
            struct ml_node *gn = ml_lookup(m->groups, k->ns, k->ns_len);
            if (gn)
                g = caa_container_of(gn, struct store_group, node);
        }
        if (g) {
            struct ml_node *sn = ml_lookup(g->series, k->key, k->key_len);
            if (sn) {
                struct store_series *s = caa_container_of(sn, struct store_series, node);
                series_lock(s);
                if (!ml_node_is_deleted(&s->node)) {
                    *out = s;
                    return GET_OK;
                }
                series_unlock(s);
                continue;
            }
        }
        if (!create)
            return GET_ABSENT;
        int r = series_create(st, k, sp, out);
        if (r != GET_RETRY)
            return r;
    }
}

#ifdef STORE_TEST_HOOKS
/* Tests only: called between an unlink's generation bump and its ml_delete(). */
void (*store_test_unlink_hook)(void);
#endif

/* Unlink a locked series and count it. Read lock held. */
static int series_unlink(struct store *st, struct store_series *s)
{
    struct store_group *g = s->group;
    /* The generation is bumped before the unlink, so before ml_delete() queues
     * the reclaim: a reader that still sees the old generation entered its read
     * section before the grace period ends and may use the node. A reader that
     * sees the new one while the node is still linked must not keep what it
     * found: unl_begin != unl_end tells it (store_group_generation). */
    __atomic_fetch_add(&g->unl_begin, 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&g->gen, 1, __ATOMIC_SEQ_CST);
#ifdef STORE_TEST_HOOKS
    if (store_test_unlink_hook)
        store_test_unlink_hook();
#endif
    int del = ml_delete(g->series, &s->node);
    /* Release: a reader that sees the count also sees the node unlinked. */
    __atomic_fetch_add(&g->unl_end, 1, __ATOMIC_RELEASE);
    if (del != 0)
        return 0;
    SUB(&g->metric->nseries, 1);
    SUB(&g->nseries, 1);
    SUB(&st->c.series_live, 1);
    if (s->heap)
        SUB(&st->c.heap_blocks, 1);
    return 1;
}

static struct slot *ring_slots(struct store_series *s)
{
    return s->heap ? s->heap->s : s->inl;
}

/* Move the ring into a block of @cap slots (inline when cap == inl_cap). Writer, inside seq_begin/end. */
static void ring_move(struct store *st, struct store_series *s, unsigned cap)
{
    struct slot *old = ring_slots(s);
    struct sample_block *oldblk = s->heap, *blk = NULL;
    struct slot *dst;
    struct slot tmp[64];

    if (cap == s->inl_cap) {
        /* Copy out first: the inline slots are the destination. */
        for (unsigned i = 0; i < s->n; i++)
            tmp[i] = old[(s->head + i) % s->cap];
        dst = s->inl;
        for (unsigned i = 0; i < s->n; i++) {
            ST(&dst[i].ts, tmp[i].ts);
            ST(&dst[i].vbits, tmp[i].vbits);
        }
    } else {
        blk = xmalloc(sizeof *blk + cap * sizeof(struct slot));
        blk->cap = cap;
        for (unsigned i = 0; i < s->n; i++)
            blk->s[i] = old[(s->head + i) % s->cap];
    }
    ST(&s->head, 0);
    ST(&s->cap, (uint16_t)cap);
    /* Publication: pairs with rcu_dereference(s->heap) in snapshot_once(). */
    rcu_assign_pointer(s->heap, blk);
    if (oldblk) {
        /* A reader may still be copying from it. */
        call_rcu(&oldblk->rcu, block_free_cb);
        SUB(&st->c.heap_blocks, 1);
    }
    if (blk)
        ADD(&st->c.heap_blocks, 1);
}

/* Append one sample to a locked series inside seq_begin/end, evicting what left the window. */
static void ring_append(struct store *st, struct store_series *s, int64_t ts, uint64_t vbits)
{
    int64_t horizon = ts - LD(&st->window_ms);
    /* Evict first: what is older than the new window never needs room. */
    while (s->n > 0 && ring_slots(s)[s->head].ts < horizon) {
        ST(&s->head, (uint16_t)((s->head + 1) % s->cap));
        ST(&s->n, (uint16_t)(s->n - 1));
    }
    if (s->n == s->cap) {
        if (s->cap < STORE_MAX_SAMPLES) {
            unsigned cap = s->cap * 2u < STORE_MAX_SAMPLES ? s->cap * 2u : STORE_MAX_SAMPLES;
            ring_move(st, s, cap);
        } else {
            /* At the hard cap: lose the oldest rather than grow without bound. */
            ST(&s->head, (uint16_t)((s->head + 1) % s->cap));
            ST(&s->n, (uint16_t)(s->n - 1));
        }
    } else if (s->heap && s->n + 1u <= s->inl_cap / 2u) {
        /* The window fits inline again with room to spare: give the block back. */
        ring_move(st, s, s->inl_cap);
    }
    struct slot *sl = &ring_slots(s)[(s->head + s->n) % s->cap];
    ST(&sl->ts, ts);
    ST(&sl->vbits, vbits);
    ST(&s->n, (uint16_t)(s->n + 1));
    ST(&s->newest, ts);
}

static int wkey_build(const struct api_rw_label *labels, size_t nlabels, struct wkey *k, uint8_t *stackbuf,
                      size_t stackcap, uint8_t **heapbuf)
{
    size_t len = 0;
    memset(k, 0, sizeof *k);
    k->ns = "";
    for (size_t i = 0; i < nlabels; i++) {
        const struct api_rw_label *l = &labels[i];
        if (is_label(l, "__name__", 8)) {
            k->name = l->value;
            k->name_len = l->value_len;
        } else if (is_label(l, "namespace", 9)) {
            k->ns = l->value;
            k->ns_len = l->value_len;
        } else {
            len += varint_len(l->name_len) + l->name_len + varint_len(l->value_len) + l->value_len;
        }
    }
    if (!k->name)
        return -EINVAL;
    uint8_t *buf = stackbuf;
    *heapbuf = NULL;
    if (len > stackcap)
        buf = *heapbuf = xmalloc(len);
    uint8_t *p = buf;
    for (size_t i = 0; i < nlabels; i++) {
        const struct api_rw_label *l = &labels[i];
        if (is_label(l, "__name__", 8) || is_label(l, "namespace", 9))
            continue;
        p = varint_put(p, l->name_len);
        memcpy(p, l->name, l->name_len);
        p += l->name_len;
        p = varint_put(p, l->value_len);
        memcpy(p, l->value, l->value_len);
        p += l->value_len;
    }
    k->key = buf;
    k->key_len = len;
    k->labels = labels;
    k->nlabels = nlabels;
    return 0;
}

static void spare_fill(const struct store *st, int need, struct spare *sp)
{
    if (need == GET_NEED_GROUPS_MAP)
        sp->groups_map = map_new("store_groups", 1, group_reclaim, offsetof(struct store_group, ns));
    else
        sp->series_map = map_new("store_series", 4, series_reclaim, series_key_offset(st));
}

static void spare_drop(struct spare *sp)
{
    /* Empty and never linked anywhere: retiring does not block. */
    if (sp->groups_map)
        ml_map_retire(sp->groups_map);
    if (sp->series_map)
        ml_map_retire(sp->series_map);
}

int store_write(struct store *st, const struct api_rw_label *labels, size_t nlabels,
                const struct api_rw_sample *samples, size_t nsamples, struct store_tally *t)
{
    uint8_t stackbuf[512], *heapbuf;
    struct wkey k;
    struct spare sp = {0};
    struct store_series *s = NULL; /* locked, inside seq_begin, when not NULL */
    int result = STORE_REFUSED_NONE;

    if (wkey_build(labels, nlabels, &k, stackbuf, sizeof stackbuf, &heapbuf) != 0)
        return -EINVAL;
    rcu_read_lock();
    for (size_t i = 0; i < nsamples;) {
        const struct api_rw_sample *smp = &samples[i];
        int stale = api_is_stale_nan(smp->value);
        if (!s) {
            int r = series_get_locked(st, &k, !stale, &sp, &s);
            if (r == GET_NEED_GROUPS_MAP || r == GET_NEED_SERIES_MAP) {
                /* ml_map_new() must run outside a read-side section. */
                rcu_read_unlock();
                spare_fill(st, r, &sp);
                rcu_read_lock();
                continue;
            }
            if (r >= GET_REFUSED(0)) {
                result = r - GET_REFUSED(0);
                if (result == STORE_REFUSED_NO_RULE)
                    t->unwanted += nsamples - i;
                else
                    t->refused += nsamples - i;
                t->refused_series[result]++;
                break;
            }
            if (r == GET_ABSENT) {
                t->stale_absent++;
                i++;
                continue;
            }
            seq_begin(s);
        }
        i++;
        if (smp->timestamp_ms <= s->newest) {
            t->out_of_order++;
            continue;
        }
        t->accepted++;
        if (stale) {
            if (series_unlink(st, s))
                ADD(&st->c.deleted_stale, 1);
            seq_end(s);
            series_unlock(s);
            s = NULL;
            continue;
        }
        uint64_t bits;
        memcpy(&bits, &smp->value, sizeof bits);
        ring_append(st, s, smp->timestamp_ms, bits);
    }
    if (s) {
        seq_end(s);
        series_unlock(s);
    }
    rcu_read_unlock();
    spare_drop(&sp);
    free(heapbuf);
    return result;
}

void store_tally_flush(struct store *st, struct store_tally *t)
{
    if (t->accepted)
        ADD(&st->c.accepted, t->accepted);
    if (t->out_of_order)
        ADD(&st->c.out_of_order, t->out_of_order);
    if (t->refused)
        ADD(&st->c.dropped_refused, t->refused);
    if (t->invalid)
        ADD(&st->c.dropped_invalid, t->invalid);
    if (t->unwanted)
        ADD(&st->c.dropped_unwanted, t->unwanted);
    if (t->stale_absent)
        ADD(&st->c.stale_absent, t->stale_absent);
    for (int r = 1; r < STORE_REFUSED_COUNT; r++)
        if (t->refused_series[r])
            ADD(&st->c.refused[r], t->refused_series[r]);
    memset(t, 0, sizeof *t);
}

void store_set_metric_type(struct store *st, const char *name, size_t len, int type)
{
    if (type == API_RW_TYPE_UNKNOWN)
        return;
    rcu_read_lock();
    struct ml_node *n = ml_lookup(st->types, name, len);
    if (!n && ADD(&st->c.types_live, 1) < STORE_MAX_TYPES) {
        struct store_typed *t = xmalloc(sizeof *t + len + 1);
        memset(t, 0, sizeof *t);
        t->type = type;
        t->seen = 1;
        memcpy(t->name, name, len);
        t->name[len] = 0;
        ml_node_init(&t->node, t->name, len);
        if (ml_insert(st->types, &t->node, &n) != 0) {
            free(t); /* a racing request linked it first */
            SUB(&st->c.types_live, 1);
        }
    } else if (!n) {
        SUB(&st->c.types_live, 1); /* full: only a metric already held gets the type */
        ADD(&st->c.types_refused, 1);
    }
    if (n) {
        struct store_typed *t = caa_container_of(n, struct store_typed, node);
        if (LD(&t->type) != type)
            ST(&t->type, type);
        if (!LD(&t->seen))
            ST(&t->seen, 1);
    }
    /* Pairs with the fence in metric_hold() after a new entry is linked. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    struct ml_node *mn = ml_lookup(st->metrics, name, len);
    if (mn && LD(&caa_container_of(mn, struct store_metric, node)->type) != type)
        ST(&caa_container_of(mn, struct store_metric, node)->type, type);
    rcu_read_unlock();
}

void store_set_admit(struct store *st, store_admit_fn fn, void *ctx)
{
    st->admit_ctx = ctx;
    st->admit = fn;
}

void store_set_refuse_new(struct store *st, int on)
{
    ST(&st->refuse_new, on ? 1 : 0);
}

/* ------------------------------------------------------------------------- */
/* Reaper                                                                     */
/* ------------------------------------------------------------------------- */

/* Pending reclaims (all maps) above which the reaper waits for them between sections. */
#define REAP_MAX_PENDING 100000
#define WALK_SECTION     1024 /* series visited per read-side section */
#define WALK_RESTARTS    3    /* restarts after which a walk finishes in one section */

/*
 * One step of a group walk: called with the read lock held; returns the
 * series now at @s's place in the map (s itself, or the copy that replaced
 * it), or NULL when @s is no longer linked.
 */
typedef struct store_series *(*series_step_fn)(struct store_series *s, int restarted, void *ctx);

/*
 * Visit every series of group @g, in read-side sections of at most
 * WALK_SECTION series, so that no section (and no grace period held up by
 * it) grows with the group, and wait for pending reclaims between sections
 * (REAP_MAX_PENDING) so that a mass delete does not outrun the grace periods.
 * The group is the reaper's (reap_mu held): it stays valid between sections.
 * Each section resumes after the last series a step left linked, looked up
 * by its key (ml_iter_at); series unlinked meanwhile are skipped by the map.
 * If that anchor itself was deleted meanwhile, the walk starts again with
 * @restarted set; after WALK_RESTARTS restarts the rest is one section, so
 * the walk ends however writers delete.
 */
#ifdef STORE_TEST_HOOKS
/* Called at the end of each section but the last, read lock held, with the anchor. */
void (*store_test_walk_hook)(struct store_series *anchor);
#endif

static void walk_group(struct store_group *g, series_step_fn step, void *ctx)
{
    struct buf last = BUF_INIT; /* key of the anchor */
    int have_last = 0;
    unsigned restarts = 0;
    for (int done = 0; !done;) {
        struct ml_iter it;
        struct ml_node *node;
        rcu_read_lock();
        struct ml_node *at = have_last ? ml_lookup(g->series, last.data, last.len) : NULL;
        if (at) {
            ml_iter_at(g->series, at, &it);
            node = ml_next(g->series, &it);
        } else {
            restarts += have_last;
            node = ml_first(g->series, &it);
        }
        for (unsigned k = 0; node && (k < WALK_SECTION || restarts >= WALK_RESTARTS);
             node = ml_next(g->series, &it), k++) {
            struct store_series *a =
                step(caa_container_of(node, struct store_series, node), restarts > 0, ctx);
            if (a) {
                size_t klen;
                const void *key = ml_node_key(&a->node, &klen);
                buf_reset(&last);
                buf_append(&last, key, klen);
                have_last = 1;
#ifdef STORE_TEST_HOOKS
                at = &a->node;
#endif
            }
        }
        done = node == NULL;
#ifdef STORE_TEST_HOOKS
        if (store_test_walk_hook && !done && at)
            store_test_walk_hook(caa_container_of(at, struct store_series, node));
#endif
        rcu_read_unlock();
        ml_throttle(REAP_MAX_PENDING);
    }
    buf_free(&last);
}

struct reap_ctx {
    struct store *st;
    int64_t cutoff;
    uint64_t deleted;
};

/* Delete @s if it expired (a walk_group step). */
static struct store_series *reap_series(struct store_series *s, int restarted, void *arg)
{
    struct reap_ctx *c = arg;
    (void)restarted;
    if (LD(&s->newest) >= c->cutoff)
        return s;
    /* Re-check under the lock: a writer may have just added a sample. */
    series_lock(s);
    if (!ml_node_is_deleted(&s->node) && s->newest < c->cutoff && series_unlink(c->st, s)) {
        ADD(&c->st->c.deleted_ttl, 1);
        c->deleted++;
    }
    series_unlock(s);
    return ml_node_is_deleted(&s->node) ? NULL : s;
}

/* Remove a group if it is empty. Read lock held; caller holds reap_mu. */
static void group_remove_if_empty(struct store *st, struct store_metric *m, struct store_group *g)
{
    if (LD(&g->nseries) != 0 || !try_kill(&g->state))
        return;
    /* An insert may have completed between the first look and the CAS. */
    if (__atomic_load_n(&g->nseries, __ATOMIC_ACQUIRE) != 0) {
        unkill(&g->state);
        return;
    }
    /* Before the unlink, as for series (store_group_generation). */
    __atomic_fetch_add(&st->c.group_gen, 1, __ATOMIC_SEQ_CST);
    if (ml_delete(m->groups, &g->node) == 0) {
        SUB(&m->ngroups, 1);
        SUB(&st->c.groups_live, 1);
    }
}

static void metric_remove_if_empty(struct store *st, struct store_metric *m)
{
    /* Typed or not: the type stays in st->types while metadata refreshes it. */
    if (LD(&m->ngroups) != 0 || !try_kill(&m->state))
        return;
    if (__atomic_load_n(&m->ngroups, __ATOMIC_ACQUIRE) != 0) {
        unkill(&m->state);
        return;
    }
    if (ml_delete(st->metrics, &m->node) == 0)
        SUB(&st->c.metrics_live, 1);
}

/* The reaper's each_group steps. */
static void reap_group(struct store *st, struct store_metric *m, struct store_group *g, void *ctx)
{
    walk_group(g, reap_series, ctx);
    rcu_read_lock();
    group_remove_if_empty(st, m, g);
    rcu_read_unlock();
}

static void reap_metric(struct store *st, struct store_metric *m, void *ctx)
{
    (void)ctx;
    rcu_read_lock();
    metric_remove_if_empty(st, m);
    rcu_read_unlock();
}

/*
 * The entries of @map, in a malloc'd array (the caller frees it), their
 * number in *@n; entries inserted meanwhile beyond some slack are left for
 * the next pass. Takes the read lock for the walk. Pointers stay valid after
 * the section ends because only the reaper unlinks these entries, and it
 * holds reap_mu (or the store is being destroyed).
 */
static struct ml_node **collect(struct ml_map *map, size_t *n)
{
    size_t max = ml_map_count(map) + 16;
    struct ml_node **out = xmalloc(max * sizeof *out);
    struct ml_iter it;
    *n = 0;
    rcu_read_lock();
    for (struct ml_node *node = ml_first(map, &it); node && *n < max; node = ml_next(map, &it))
        out[(*n)++] = node;
    rcu_read_unlock();
    return out;
}

/*
 * Call @on_group for every group of every metric, then @on_metric (if any)
 * for the metric, outside read-side sections. Entries created during the
 * walk are left for the next one. The reaper's (reap_mu held) or the
 * destroyer's: groups and metrics stay valid while the callbacks run.
 */
static void each_group(struct store *st,
                       void (*on_group)(struct store *st, struct store_metric *m, struct store_group *g,
                                        void *ctx),
                       void (*on_metric)(struct store *st, struct store_metric *m, void *ctx), void *ctx)
{
    size_t nm;
    struct ml_node **ms = collect(st->metrics, &nm);
    for (size_t i = 0; i < nm; i++) {
        struct store_metric *m = caa_container_of(ms[i], struct store_metric, node);
        size_t ng;
        struct ml_node **gs = collect(m->groups, &ng);
        for (size_t j = 0; j < ng; j++)
            on_group(st, m, caa_container_of(gs[j], struct store_group, node), ctx);
        free(gs);
        if (on_metric)
            on_metric(st, m, ctx);
    }
    free(ms);
}

/*
 * Compaction. After a mass delete (a scale-down, a burst that drained) the
 * survivors are scattered over the pages the deleted series used and keep
 * them resident. When the live series fall to half their peak since the
 * last compaction (and by at least COMPACT_MIN_DROP), the reaper
 * moves every live series into packed region memory (region.h): a copy
 * replaces the series in its map (ml_replace) and the old copy is reclaimed
 * after a grace period like a deleted one, so that glibc's pages empty out
 * and maplib's trim returns them.
 *
 * A move happens under the series' writer lock, so no writer changes the old
 * copy after it was copied: a writer waiting for that lock finds the old node
 * deleted and looks the series up again (series_get_locked), as after a
 * stale-marker delete. Readers that hold the old copy read what the new one
 * starts with. For the label indexes a move is an unlink (the same generation
 * bumps as series_unlink), so no index keeps a pointer to the old copy. A
 * heap sample block is copied too, so each copy frees its own. Until the old
 * copies are reclaimed both exist: the pass walks each group as the reaper
 * does (walk_group), in bounded read-side sections with a wait for pending
 * reclaims between them, so neither the sections nor the old copies grow
 * with the group.
 */
#define COMPACT_RATIO_DIV 2        /* live <= peak / 2 */
#define COMPACT_MIN_DROP  65536ull /* and peak - live >= this */

/* Move a locked, linked series into region memory. Read lock held. Returns
 * the new copy (unlocked), or NULL when the series was not moved. */
static struct store_series *series_move(struct store_series *s)
{
    size_t size = series_bytes(s);
    struct store_series *n = region_alloc(size);
    if (!n)
        return NULL;
    memcpy(n, s, size); /* the lock word comes along held: n is ours until series_unlock(n) */
    size_t klen;
    const char *key = ml_node_key(&s->node, &klen);
    ml_node_init(&n->node, (const char *)n + (key - (const char *)s), klen);
    if (s->heap) {
        size_t bytes = sizeof(struct sample_block) + s->heap->cap * sizeof(struct slot);
        n->heap = xmalloc(bytes);
        memcpy(n->heap, s->heap, bytes);
    }
    struct store_group *g = s->group;
    __atomic_fetch_add(&g->unl_begin, 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&g->gen, 1, __ATOMIC_SEQ_CST);
    int rc = ml_replace(g->series, &s->node, &n->node);
    __atomic_fetch_add(&g->unl_end, 1, __ATOMIC_RELEASE);
    if (rc != 0) { /* cannot happen: the lock keeps the series linked */
        free(n->heap);
        region_free(n, size);
        return NULL;
    }
    series_unlock(n);
    return n;
}

/* Move @s unless it is gone, or (@restarted) already moved in this pass (a walk_group step). */
static struct store_series *compact_series(struct store_series *s, int restarted, void *arg)
{
    uint64_t *moved = arg;
    if (restarted && region_contains(s))
        return s;
    series_lock(s);
    struct store_series *n = ml_node_is_deleted(&s->node) ? NULL : series_move(s);
    *moved += n != NULL;
    series_unlock(s);
    return n ? n : ml_node_is_deleted(&s->node) ? NULL : s;
}

static void compact_group(struct store *st, struct store_metric *m, struct store_group *g, void *moved)
{
    (void)st, (void)m;
    walk_group(g, compact_series, moved);
}

/* Compact every group; caller holds reap_mu. */
static uint64_t compact_locked(struct store *st)
{
    uint64_t moved = 0;
    each_group(st, compact_group, NULL, &moved);
    ADD(&st->c.moved, moved);
    ADD(&st->c.compactions, 1);
    st->live_peak = LD(&st->c.series_live);
    return moved;
}

uint64_t store_compact(struct store *st)
{
    pthread_mutex_lock(&st->reap_mu);
    uint64_t moved = compact_locked(st);
    pthread_mutex_unlock(&st->reap_mu);
    return moved;
}

uint64_t store_reap(struct store *st, int64_t now_ms)
{
    int64_t cutoff = now_ms - st->cfg.series_ttl_ms;
    struct reap_ctx rc = {st, cutoff, 0};

    pthread_mutex_lock(&st->reap_mu);
    each_group(st, reap_group, reap_metric, &rc);

    /* Types not refreshed by metadata for the TTL (on this clock: seen is
     * cleared at each pass, last_ms is the last pass that found it set). */
    size_t nt;
    struct ml_node **ts = collect(st->types, &nt);
    rcu_read_lock();
    for (size_t i = 0; i < nt; i++) {
        struct store_typed *t = caa_container_of(ts[i], struct store_typed, node);
        if (LD(&t->seen)) {
            ST(&t->seen, 0);
            ST(&t->last_ms, now_ms);
        } else if (LD(&t->last_ms) < cutoff && ml_delete(st->types, &t->node) == 0) {
            SUB(&st->c.types_live, 1);
        }
    }
    rcu_read_unlock();
    free(ts);

    uint64_t live = LD(&st->c.series_live);
    if (live > st->live_peak)
        st->live_peak = live;
    if (live <= st->live_peak / COMPACT_RATIO_DIV && st->live_peak - live >= COMPACT_MIN_DROP)
        compact_locked(st);
    ADD(&st->c.reap_passes, 1);
    pthread_mutex_unlock(&st->reap_mu);
    return rc.deleted;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *reaper_main(void *arg)
{
    struct store *st = arg;
    rcu_register_thread();
    pthread_mutex_lock(&st->wake_mu);
    while (!st->stop) {
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        int64_t ns = dl.tv_nsec + (st->cfg.reap_interval_ms % 1000) * 1000000;
        dl.tv_sec += st->cfg.reap_interval_ms / 1000 + ns / 1000000000;
        dl.tv_nsec = ns % 1000000000;
        while (!st->stop && !st->wake)
            if (pthread_cond_timedwait(&st->wake_cv, &st->wake_mu, &dl) == ETIMEDOUT)
                break;
        if (st->stop)
            break;
        st->wake = 0;
        pthread_mutex_unlock(&st->wake_mu);
        store_reap(st, wall_ms());
        pthread_mutex_lock(&st->wake_mu);
    }
    pthread_mutex_unlock(&st->wake_mu);
    rcu_unregister_thread();
    return NULL;
}

int64_t store_series_ttl_ms(const struct store *st)
{
    return st->cfg.series_ttl_ms;
}

int64_t store_rate_window_ms(const struct store *st)
{
    return LD(&st->window_ms);
}

void store_set_rate_window(struct store *st, int64_t ms)
{
    int64_t w = ms > st->cfg.rate_window_ms ? ms : st->cfg.rate_window_ms;
    /* Written only when it changes: callers may call this on every request. */
    if (LD(&st->window_ms) != w)
        ST(&st->window_ms, w);
}

void store_reap_now(struct store *st)
{
    pthread_mutex_lock(&st->wake_mu);
    st->wake = 1;
    pthread_cond_signal(&st->wake_cv);
    pthread_mutex_unlock(&st->wake_mu);
}

uint64_t store_reap_passes(struct store *st)
{
    return LD(&st->c.reap_passes);
}

/* ------------------------------------------------------------------------- */
/* Life cycle                                                                 */
/* ------------------------------------------------------------------------- */

int store_new(const struct store_config *cfg, struct store **out)
{
    struct store *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    st->cfg = *cfg;
    if (st->cfg.rate_window_ms <= 0)
        st->cfg.rate_window_ms = 120000;
    st->window_ms = st->cfg.rate_window_ms;
    if (st->cfg.series_ttl_ms <= 0)
        st->cfg.series_ttl_ms = 300000;
    if (st->cfg.reap_interval_ms <= 0)
        st->cfg.reap_interval_ms = 10000;
    if (st->cfg.inline_samples == 0)
        st->cfg.inline_samples = (unsigned)(st->cfg.rate_window_ms / 15000 + 2);
    if (st->cfg.inline_samples < 2)
        st->cfg.inline_samples = 2;
    if (st->cfg.inline_samples > 64)
        st->cfg.inline_samples = 64;
    st->metrics = map_new("store_metrics", 64, metric_reclaim, offsetof(struct store_metric, name));
    st->types = map_new("store_types", 64, typed_reclaim, offsetof(struct store_typed, name));
    pthread_mutex_init(&st->reap_mu, NULL);
    pthread_mutex_init(&st->wake_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->wake_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (cfg->start_reaper) {
        if (pthread_create(&st->reaper, NULL, reaper_main, st) != 0) {
            ml_map_destroy(st->metrics);
            ml_map_destroy(st->types);
            free(st);
            return -EAGAIN;
        }
        st->reaper_started = 1;
    }
    *out = st;
    return 0;
}

/* store_free's each_group steps. */
static void destroy_group_series(struct store *st, struct store_metric *m, struct store_group *g, void *ctx)
{
    (void)st, (void)m, (void)ctx;
    ml_map_destroy(g->series);
    g->series = NULL;
}

static void destroy_metric_groups(struct store *st, struct store_metric *m, void *ctx)
{
    (void)st, (void)ctx;
    ml_map_destroy(m->groups);
    m->groups = NULL;
}

void store_free(struct store *st)
{
    if (!st)
        return;
    if (st->reaper_started) {
        pthread_mutex_lock(&st->wake_mu);
        st->stop = 1;
        pthread_cond_signal(&st->wake_cv);
        pthread_mutex_unlock(&st->wake_mu);
        pthread_join(st->reaper, NULL);
    }
    /* Nobody else uses the store now: destroy bottom-up, so no reclaim callback retires a live map. */
    each_group(st, destroy_group_series, destroy_metric_groups, NULL);
    ml_map_destroy(st->metrics);
    ml_map_destroy(st->types);
    rcu_barrier(); /* heap blocks replaced by writers */
    region_release_idle();
    pthread_cond_destroy(&st->wake_cv);
    pthread_mutex_destroy(&st->wake_mu);
    pthread_mutex_destroy(&st->reap_mu);
    free(st);
}

/* ------------------------------------------------------------------------- */
/* Read API                                                                   */
/* ------------------------------------------------------------------------- */

/* The entry holding map node @n, or NULL when @n is NULL (the end of a walk, a miss). */
static inline struct store_metric *metric_of(struct ml_node *n)
{
    return n ? caa_container_of(n, struct store_metric, node) : NULL;
}

static inline struct store_group *group_of(struct ml_node *n)
{
    return n ? caa_container_of(n, struct store_group, node) : NULL;
}

static inline struct store_series *series_of(struct ml_node *n)
{
    return n ? caa_container_of(n, struct store_series, node) : NULL;
}

struct store_metric *store_metric_lookup(struct store *st, const char *name, size_t len)
{
    return metric_of(ml_lookup(st->metrics, name, len));
}

struct store_metric *store_metric_first(struct store *st, struct store_iter *it)
{
    return metric_of(ml_first(st->metrics, &it->_it));
}

struct store_metric *store_metric_next(struct store *st, struct store_iter *it)
{
    return metric_of(ml_next(st->metrics, &it->_it));
}

const char *store_metric_name(const struct store_metric *m, size_t *len)
{
    if (len)
        *len = m->name_len;
    return m->name;
}

int store_metric_type(const struct store_metric *m)
{
    return LD(&m->type);
}

uint64_t store_metric_series(const struct store_metric *m)
{
    return LD(&m->nseries);
}

struct store_group *store_group_lookup(struct store *st, const char *metric, size_t mlen, const char *ns,
                                       size_t nslen)
{
    struct store_metric *m = store_metric_lookup(st, metric, mlen);
    if (!m)
        return NULL;
    return group_of(ml_lookup(m->groups, ns, nslen));
}

struct store_group *store_group_first(struct store_metric *m, struct store_iter *it)
{
    return group_of(ml_first(m->groups, &it->_it));
}

struct store_group *store_group_next(struct store_metric *m, struct store_iter *it)
{
    return group_of(ml_next(m->groups, &it->_it));
}

const char *store_group_namespace(const struct store_group *g, size_t *len)
{
    if (len)
        *len = g->ns_len;
    return g->ns;
}

struct store_metric *store_group_metric(const struct store_group *g)
{
    return g->metric;
}

uint64_t store_group_series(const struct store_group *g)
{
    return LD(&g->nseries);
}

struct store_series *store_series_first(struct store_group *g, struct store_iter *it)
{
    return series_of(ml_first(g->series, &it->_it));
}

struct store_series *store_series_next(struct store_group *g, struct store_iter *it)
{
    return series_of(ml_next(g->series, &it->_it));
}

struct store_group *store_series_group(const struct store_series *s)
{
    return s->group;
}

void store_series_labels(const struct store_series *s, struct store_label_iter *li)
{
    size_t len;
    li->_p = ml_node_key(&s->node, &len);
    li->_end = li->_p + len;
    li->_g = s->group;
    li->_emitted = 0;
}

/* Emit __name__ (bit 0) and namespace (bit 1) at their sorted places among the key's labels. */
int store_series_label_next(struct store_label_iter *li, struct api_rw_label *out)
{
    struct api_rw_label next = {0};
    int have = 0;
    if (li->_p < li->_end) {
        const uint8_t *p = li->_p;
        size_t nl, vl;
        if (varint_get(&p, li->_end, &nl) && (size_t)(li->_end - p) >= nl) {
            next.name = (const char *)p;
            next.name_len = (uint32_t)nl;
            p += nl;
            if (varint_get(&p, li->_end, &vl) && (size_t)(li->_end - p) >= vl) {
                next.value = (const char *)p;
                next.value_len = (uint32_t)vl;
                p += vl;
                have = 1;
            }
        }
        if (!have)
            li->_end = li->_p; /* corrupt key: cannot happen, stop */
        else
            li->_p = p;
    }
    static const char nm[] = "__name__", nsn[] = "namespace";
    const struct store_group *g = li->_g;
    int want_name = !(li->_emitted & 1), want_ns = !(li->_emitted & 2) && g->ns_len > 0;
    /* Which comes first among __name__, namespace and the key's next label. */
    struct api_rw_label cand[3];
    int nc = 0;
    if (want_name)
        cand[nc++] = (struct api_rw_label){nm, g->metric->name, 8, g->metric->name_len};
    if (want_ns)
        cand[nc++] = (struct api_rw_label){nsn, g->ns, 9, g->ns_len};
    if (have)
        cand[nc++] = next;
    if (nc == 0)
        return 0;
    int best = 0;
    for (int i = 1; i < nc; i++) {
        size_t a = cand[i].name_len, b = cand[best].name_len;
        int c = memcmp(cand[i].name, cand[best].name, a < b ? a : b);
        if (c < 0 || (c == 0 && a < b))
            best = i;
    }
    *out = cand[best];
    if (out->name == nm)
        li->_emitted |= 1;
    else if (out->name == nsn)
        li->_emitted |= 2;
    if (have && out->name != next.name) {
        /* Give the key's label back: it is emitted on a later call. */
        size_t back = varint_len(next.name_len) + next.name_len + varint_len(next.value_len) + next.value_len;
        li->_p -= back;
    }
    return 1;
}

int store_series_label(const struct store_series *s, const char *name, const char **value, size_t *len)
{
    struct store_label_iter li;
    struct api_rw_label l;
    size_t nl = strlen(name);
    store_series_labels(s, &li);
    while (store_series_label_next(&li, &l)) {
        if (l.name_len == nl && memcmp(l.name, name, nl) == 0) {
            *value = l.value;
            *len = l.value_len;
            return 1;
        }
    }
    return 0;
}

int64_t store_series_newest(const struct store_series *s)
{
    int64_t t = LD(&s->newest);
    return t == INT64_MIN ? 0 : t;
}

/* One attempt at a snapshot; returns 0 if a writer interfered. */
static int snapshot_once(const struct store_series *s, struct api_rw_sample *out, size_t max, size_t *held)
{
    /* Acquire pairs with the release store in seq_end(). */
    uint32_t s1 = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
    if (s1 & 1)
        return 0;
    const struct sample_block *blk = rcu_dereference(s->heap);
    const struct slot *slots = blk ? blk->s : s->inl;
    unsigned cap = blk ? blk->cap : s->inl_cap;
    unsigned head = LD(&s->head), n = LD(&s->n);
    if (n > cap || head >= cap)
        return 0; /* fields from different writes: the seq check would fail anyway */
    size_t take = n < max ? n : max;
    for (size_t i = 0; i < take; i++) {
        const struct slot *sl = &slots[(head + (n - take) + i) % cap];
        uint64_t bits = LD(&sl->vbits);
        out[i].timestamp_ms = LD(&sl->ts);
        memcpy(&out[i].value, &bits, sizeof bits);
    }
    /* Orders the copies before the re-read; pairs with the release fence in seq_begin(). */
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (LD(&s->seq) != s1)
        return 0;
    *held = n;
    return 1;
}

size_t store_series_snapshot(const struct store_series *s, struct api_rw_sample *out, size_t max)
{
    size_t held = 0;
    unsigned spins = 0;
    while (!snapshot_once(s, out, max, &held))
        cpu_relax(&spins);
    return held;
}

/* ------------------------------------------------------------------------- */
/* Counters                                                                   */
/* ------------------------------------------------------------------------- */

void store_group_generation(struct store *st, const struct store_group *g, uint64_t out[2])
{
    /* Pairs with the increments in series_create, series_unlink and the group reaper.
     * unl_end first, unl_begin last: equal, they mean that every unlink whose bump
     * these loads may have seen had finished its ml_delete() before unl_end was
     * read (an unlink counts unl_begin before its bump), so a walk of the group
     * from here on does not find its node. */
    uint64_t end = __atomic_load_n(&g->unl_end, __ATOMIC_ACQUIRE);
    out[0] = __atomic_load_n(&st->c.group_gen, __ATOMIC_ACQUIRE);
    out[1] = __atomic_load_n(&g->gen, __ATOMIC_ACQUIRE);
    if (__atomic_load_n(&g->unl_begin, __ATOMIC_ACQUIRE) != end)
        out[1] = STORE_GEN_UNLINKING;
}

void store_get_stats(struct store *st, struct store_stats *o)
{
    memset(o, 0, sizeof *o);
    o->series_live = LD(&st->c.series_live);
    o->groups_live = LD(&st->c.groups_live);
    o->metrics_live = LD(&st->c.metrics_live);
    o->series_created = LD(&st->c.series_created);
    o->deleted_stale = LD(&st->c.deleted_stale);
    o->deleted_ttl = LD(&st->c.deleted_ttl);
    for (int r = 0; r < STORE_REFUSED_COUNT; r++)
        o->refused[r] = LD(&st->c.refused[r]);
    o->samples_accepted = LD(&st->c.accepted);
    o->dropped_out_of_order = LD(&st->c.out_of_order);
    o->dropped_refused = LD(&st->c.dropped_refused);
    o->dropped_invalid = LD(&st->c.dropped_invalid);
    o->dropped_unwanted = LD(&st->c.dropped_unwanted);
    o->stale_absent = LD(&st->c.stale_absent);
    o->heap_blocks = LD(&st->c.heap_blocks);
    o->reap_passes = LD(&st->c.reap_passes);
    o->moved = LD(&st->c.moved);
    o->compactions = LD(&st->c.compactions);
    o->types_live = LD(&st->c.types_live);
    o->types_refused = LD(&st->c.types_refused);
}

static void family(struct buf *b, const char *name, const char *type, const char *help, uint64_t v)
{
    expo_header(b, name, type, help);
    expo_sample_u64(b, name, NULL, v);
}

/* maplib's numbers summed over the series tables only (the process totals are selfmetrics' map_*). */
static void series_tables_stats(struct store *st, struct ml_stats *out)
{
    struct store_iter mi, gi;
    memset(out, 0, sizeof *out);
    rcu_read_lock();
    for (struct store_metric *m = store_metric_first(st, &mi); m; m = store_metric_next(st, &mi)) {
        for (struct store_group *g = store_group_first(m, &gi); g; g = store_group_next(m, &gi)) {
            struct ml_stats ms;
            ml_map_stats(g->series, &ms);
            out->live += ms.live;
            out->pending += ms.pending;
            out->buckets += ms.buckets;
        }
    }
    rcu_read_unlock();
}

void store_collect(void *ctx, struct buf *b)
{
    struct store *st = ctx;
    struct store_stats s;
    struct ml_stats ms;
    store_get_stats(st, &s);
    series_tables_stats(st, &ms);

    family(b, "metrics_adapter_series_live", "gauge", "Series held in the store.", s.series_live);
    family(b, "metrics_adapter_groups_live", "gauge", "Groups (metric, namespace) held in the store.",
           s.groups_live);
    family(b, "metrics_adapter_metric_names_live", "gauge", "Metric names held in the store.",
           s.metrics_live);
    family(b, "metrics_adapter_series_created_total", "counter", "Series created.", s.series_created);

    expo_header(b, "metrics_adapter_series_deleted_total", "counter", "Series deleted, by cause.");
    expo_sample_raw(b, "metrics_adapter_series_deleted_total", "cause=\"stale\"", s.deleted_stale);
    expo_sample_raw(b, "metrics_adapter_series_deleted_total", "cause=\"ttl\"", s.deleted_ttl);

    expo_header(b, "metrics_adapter_series_refused_total", "counter",
                "New series refused by a limit, by reason.");
    for (int r = 1; r < STORE_REFUSED_COUNT; r++) {
        const char *lv[] = {"reason", store_refusal_str((enum store_refusal)r), NULL};
        expo_sample_u64(b, "metrics_adapter_series_refused_total", lv, s.refused[r]);
    }

    family(b, "metrics_adapter_samples_accepted_total", "counter", "Samples stored (stale markers included).",
           s.samples_accepted);
    expo_header(b, "metrics_adapter_samples_dropped_total", "counter", "Samples not stored, by reason.");
    expo_sample_raw(b, "metrics_adapter_samples_dropped_total", "reason=\"out_of_order\"",
                    s.dropped_out_of_order);
    expo_sample_raw(b, "metrics_adapter_samples_dropped_total", "reason=\"invalid\"", s.dropped_invalid);
    expo_sample_raw(b, "metrics_adapter_samples_dropped_total", "reason=\"refused\"", s.dropped_refused);
    expo_sample_raw(b, "metrics_adapter_samples_dropped_total", "reason=\"no_rule\"", s.dropped_unwanted);
    expo_sample_raw(b, "metrics_adapter_samples_dropped_total", "reason=\"stale_unknown_series\"",
                    s.stale_absent);

    family(b, "metrics_adapter_metadata_types", "gauge",
           "Metric names whose type remote-write metadata gave, held for metrics not seen yet.",
           s.types_live);
    family(b, "metrics_adapter_metadata_types_refused_total", "counter",
           "Metadata for names not held that the full type table did not keep.", s.types_refused);
    family(b, "metrics_adapter_series_heap_blocks", "gauge",
           "Series whose rate window outgrew the inline sample ring.", s.heap_blocks);
    family(b, "metrics_adapter_reaper_passes_total", "counter", "Completed reaper passes.", s.reap_passes);
    family(b, "metrics_adapter_store_compactions_total", "counter",
           "Times the live series were moved into packed memory after a mass delete.", s.compactions);
    family(b, "metrics_adapter_series_moved_total", "counter", "Series moved by compactions.", s.moved);
    family(b, "metrics_adapter_store_region_bytes", "gauge",
           "Address space of the packed memory that holds moved series (resident or not).",
           (uint64_t)region_mapped_bytes());
    family(b, "metrics_adapter_store_rate_window_seconds", "gauge",
           "Samples are kept for this long: the longest of --rate-window and the rules' windows.",
           (uint64_t)(store_rate_window_ms(st) / 1000));
    family(b, "metrics_adapter_series_table_entries", "gauge",
           "Entries linked in the series tables (maplib, live groups).", ms.live);
    family(b, "metrics_adapter_series_table_pending_reclaim", "gauge",
           "Series unlinked and waiting for their grace period (maplib, live groups).", ms.pending);
    family(b, "metrics_adapter_series_table_buckets", "gauge", "Hash buckets of the series tables (maplib).",
           ms.buckets);
}
