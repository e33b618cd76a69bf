/*
 * Unit tests of maplib: every operation, its failure paths, the counters and
 * the sizing policy. A test that leaks fails: every entry allocated here must
 * have gone through the reclaim callback (or been freed after a failed insert)
 * by the end, and LeakSanitizer checks the rest in the asan build.
 */

#include <errno.h>
#include <pthread.h>

#include "key_equal.h"
#include "ml_test.h"

T_DEFINE_COUNTERS;

static struct ml_map *new_map(const char *name, unsigned long min)
{
    struct ml_map_config cfg = {.name = name, .min_buckets = min, .reclaim = t_reclaim};
    struct ml_map *m = NULL;

    CHECK_EQ(ml_map_new(&cfg, &m), 0);
    CHECK(m);
    return m;
}

static void key_of(char *buf, size_t len, unsigned i)
{
    snprintf(buf, len, "k%u", i);
}

static void test_new_invalid(void)
{
    struct ml_map_config cfg = {.name = "x", .min_buckets = 0, .reclaim = NULL};
    struct ml_map *m = (struct ml_map *)0x1;

    CHECK_EQ(ml_map_new(NULL, &m), -EINVAL);
    CHECK_EQ(ml_map_new(&cfg, &m), -EINVAL);
    cfg.reclaim = t_reclaim;
    cfg.min_buckets = 1UL << 40;
    CHECK_EQ(ml_map_new(&cfg, &m), -EINVAL);
    cfg.min_buckets = 0;
    cfg.max_buckets = 3; /* not a power of two */
    CHECK_EQ(ml_map_new(&cfg, &m), -EINVAL);
    cfg.max_buckets = 1UL << 31; /* beyond maplib's limit, 2^30 */
    CHECK_EQ(ml_map_new(&cfg, &m), -EINVAL);
    cfg.min_buckets = 64;
    cfg.max_buckets = 32; /* below the minimum */
    CHECK_EQ(ml_map_new(&cfg, &m), -EINVAL);
    cfg.max_buckets = 0;
    cfg.key_offset = sizeof(struct ml_node) - 1; /* inside the node */
    CHECK_EQ(ml_map_new(&cfg, &m), -EINVAL);
    cfg.key_offset = (size_t)UINT32_MAX + 1;
    CHECK_EQ(ml_map_new(&cfg, &m), -EINVAL);
    /* Out-parameters are written only on success. */
    CHECK_PTR(m, (struct ml_map *)0x1);
}

static void test_name_and_min(void)
{
    struct ml_map *a = new_map(NULL, 0), *b = new_map("series", 3);
    struct ml_stats st;

    CHECK_EQ(strcmp(ml_map_name(a), ""), 0);
    CHECK_EQ(strcmp(ml_map_name(b), "series"), 0);
    ml_map_stats(a, &st);
    CHECK_EQ(st.buckets, 1);
    ml_map_stats(b, &st);
    CHECK_EQ(st.buckets, 4); /* rounded up to a power of two */
    CHECK_EQ(st.live, 0);
    CHECK_EQ(ml_map_destroy(a), 0);
    CHECK_EQ(ml_map_destroy(b), 0);
}

/* The key compare itself: a lookup reaches it only on equal hashes, so collisions are rare to test through
 * it. */
static void test_key_equal(void)
{
    char a[64], b[64];

    for (size_t len = 0; len <= 40; len++)
        for (size_t off = 0; off < 8; off++) { /* any alignment */
            for (size_t i = 0; i < len; i++)
                a[off + i] = b[i] = (char)('a' + (i * 7 + len) % 26);
            CHECK_EQ(key_equal(a + off, b, len), 1);
            for (size_t p = 0; p < len; p++) { /* one byte differs, wherever it is */
                b[p] ^= 0x20;
                CHECK_EQ(key_equal(a + off, b, len), 0);
                b[p] ^= 0x20;
            }
        }
}

static void test_insert_lookup(void)
{
    struct ml_map *m = new_map("t", 1);
    struct t_ent *a = t_ent_new("alpha", 1), *dup = t_ent_new("alpha", 2), *e = t_ent_new("", 3);
    struct ml_node *existing = NULL;
    size_t klen;

    rcu_read_lock();
    CHECK_EQ(ml_insert(m, &a->node, NULL), 0);
    CHECK_EQ(ml_insert(m, &dup->node, &existing), -EEXIST);
    CHECK_PTR(existing, &a->node);
    CHECK_EQ(ml_insert(m, &dup->node, NULL), -EEXIST);
    CHECK_PTR(t_ent_of(ml_lookup(m, "alpha", 5)), a);
    CHECK_EQ(t_ent_of(ml_lookup(m, "alpha", 5))->value, 1);
    CHECK_PTR(ml_lookup(m, "alph", 4), NULL);
    CHECK_PTR(ml_lookup(m, "alphab", 6), NULL);
    CHECK_PTR(ml_lookup(m, "", 0), NULL);
    /* The empty key is a key like any other. */
    CHECK_EQ(ml_insert(m, &e->node, NULL), 0);
    CHECK_PTR(ml_lookup(m, "", 0), &e->node);
    CHECK_EQ(strncmp(ml_node_key(&a->node, &klen), "alpha", 5), 0);
    CHECK_EQ(klen, 5);
    CHECK_EQ(ml_node_is_deleted(&a->node), 0);
    rcu_read_unlock();
    /* A failed insert is freed at once: no reader ever saw it. */
    t_ent_free(dup);
    CHECK_EQ(ml_map_count(m), 2);
    CHECK_EQ(ml_map_destroy(m), 0);
}

/* A map told where its entries keep the key: same answers, and a node whose key is elsewhere is refused. */
static void test_key_offset(void)
{
    struct ml_map_config cfg = {.name = "fixed",
                                .reclaim = t_reclaim,
                                .key_offset = offsetof(struct t_ent, key) - offsetof(struct t_ent, node)};
    struct ml_map *m;
    struct ml_node *replaced = (struct ml_node *)0x1;
    char buf[16];

    CHECK_EQ(ml_map_new(&cfg, &m), 0);
    rcu_read_lock();
    for (unsigned i = 0; i < 1000; i++) {
        key_of(buf, sizeof buf, i);
        CHECK_EQ(ml_insert(m, &t_ent_new(buf, i)->node, NULL), 0);
    }
    for (unsigned i = 0; i < 1000; i++) {
        key_of(buf, sizeof buf, i);
        CHECK_EQ(t_ent_of(ml_lookup(m, buf, strlen(buf)))->value, i);
    }
    key_of(buf, sizeof buf, 1000);
    CHECK_PTR(ml_lookup(m, buf, strlen(buf)), NULL);
    CHECK_PTR(ml_lookup(m, "k1", 1), NULL); /* a prefix of a present key */

    /* The key two bytes further into the entry: refused by every linking call, nothing changed. */
    struct t_ent *off = t_ent_new("k7", 70);
    memmove(off->key + 2, off->key, off->klen);
    ml_node_init(&off->node, off->key + 2, off->klen);
    struct ml_node *k7 = ml_lookup(m, "k7", 2);
    CHECK_EQ(ml_insert(m, &off->node, NULL), -EINVAL);
    CHECK_EQ(ml_upsert(m, &off->node, &replaced), -EINVAL);
    CHECK_PTR(replaced, (struct ml_node *)0x1);
    CHECK_EQ(ml_replace(m, k7, &off->node), -EINVAL);
    CHECK_PTR(ml_lookup(m, "k7", 2), k7);
    CHECK_EQ(t_ent_of(k7)->value, 7);
    size_t klen;
    CHECK_EQ(memcmp(ml_node_key(&off->node, &klen), "k7", 2), 0); /* where ml_node_init() was told */
    CHECK_EQ(klen, 2);
    rcu_read_unlock();
    t_ent_free(off);
    CHECK_EQ(ml_map_count(m), 1000);
    CHECK_EQ(ml_map_destroy(m), 0);
}

static void test_delete(void)
{
    struct ml_map *m = new_map("t", 1);
    struct t_ent *a = t_ent_new("a", 1);
    struct ml_stats st;

    rcu_read_lock();
    CHECK_EQ(ml_insert(m, &a->node, NULL), 0);
    CHECK_EQ(ml_delete(m, &a->node), 0);
    CHECK_EQ(ml_node_is_deleted(&a->node), 1);
    /* Still readable inside this read-side section. */
    CHECK_EQ(a->value, 1);
    CHECK_EQ(ml_delete(m, &a->node), -ENOENT);
    CHECK_PTR(ml_lookup(m, "a", 1), NULL);
    rcu_read_unlock();
    ml_map_stats(m, &st);
    CHECK_EQ(st.live, 0);
    CHECK_EQ(st.inserts, 1);
    CHECK_EQ(st.deletes, 1);
    CHECK_EQ(st.pending + st.reclaimed, 1);
    rcu_barrier();
    ml_map_stats(m, &st);
    CHECK_EQ(st.pending, 0);
    CHECK_EQ(st.reclaimed, 1);
    CHECK_EQ(ml_map_destroy(m), 0);
}

static void test_upsert(void)
{
    struct ml_map *m = new_map("t", 1);
    struct t_ent *a = t_ent_new("k", 1), *b = t_ent_new("k", 2);
    struct ml_node *replaced = (struct ml_node *)0x1;
    struct ml_stats st;

    rcu_read_lock();
    CHECK_EQ(ml_upsert(m, &a->node, &replaced), 0);
    CHECK_PTR(replaced, NULL);
    CHECK_EQ(ml_upsert(m, &b->node, &replaced), 0);
    CHECK_PTR(replaced, &a->node);
    CHECK_EQ(ml_node_is_deleted(&a->node), 1);
    CHECK_EQ(t_ent_of(ml_lookup(m, "k", 1))->value, 2);
    rcu_read_unlock();
    rcu_barrier();
    ml_map_stats(m, &st);
    CHECK_EQ(st.live, 1);
    CHECK_EQ(st.inserts, 2);
    CHECK_EQ(st.deletes, 1);
    CHECK_EQ(st.reclaimed, 1);
    CHECK_EQ(ml_map_destroy(m), 0);
}

static void test_replace(void)
{
    struct ml_map *m = new_map("t", 1);
    struct t_ent *a = t_ent_new("k", 1), *b = t_ent_new("k", 2), *c = t_ent_new("k", 3);
    struct t_ent *other = t_ent_new("j", 4);
    struct ml_stats st;

    rcu_read_lock();
    CHECK_EQ(ml_insert(m, &a->node, NULL), 0);
    CHECK_EQ(ml_replace(m, &a->node, &other->node), -EINVAL);
    CHECK_EQ(ml_replace(m, &a->node, &b->node), 0);
    CHECK_EQ(ml_node_is_deleted(&a->node), 1);
    CHECK_PTR(ml_lookup(m, "k", 1), &b->node);
    /* a was replaced already: c is still the caller's. */
    CHECK_EQ(ml_replace(m, &a->node, &c->node), -ENOENT);
    CHECK_EQ(ml_delete(m, &b->node), 0);
    CHECK_EQ(ml_replace(m, &b->node, &c->node), -ENOENT);
    rcu_read_unlock();
    t_ent_free(c);
    t_ent_free(other);
    rcu_barrier();
    ml_map_stats(m, &st);
    CHECK_EQ(st.live, 0);
    CHECK_EQ(st.inserts, 2);
    CHECK_EQ(st.deletes, 2);
    CHECK_EQ(st.reclaimed, 2);
    CHECK_EQ(ml_map_destroy(m), 0);
}

static void test_iteration(void)
{
    enum { N = 5000 };
    struct ml_map *m = new_map("t", 1);
    static unsigned char seen[N];
    struct ml_iter it;
    unsigned n = 0;
    char key[16];

    rcu_read_lock();
    for (struct ml_node *x = ml_first(m, &it); x; x = ml_next(m, &it))
        CHECK(0); /* empty map: nothing */
    for (unsigned i = 0; i < N; i++) {
        key_of(key, sizeof(key), i);
        CHECK_EQ(ml_insert(m, &t_ent_new(key, i)->node, NULL), 0);
    }
    /* Delete every third while walking: the others are seen exactly once. */
    for (struct ml_node *x = ml_first(m, &it); x; x = ml_next(m, &it)) {
        struct t_ent *e = t_ent_of(x);
        CHECK_EQ(seen[e->value], 0);
        seen[e->value] = 1;
        n++;
        if (e->value % 3 == 0)
            CHECK_EQ(ml_delete(m, x), 0);
    }
    rcu_read_unlock();
    CHECK_EQ(n, N);
    CHECK_EQ(ml_map_count(m), N - (N + 2) / 3);
    n = 0;
    rcu_read_lock();
    for (struct ml_node *x = ml_first(m, &it); x; x = ml_next(m, &it)) {
        CHECK(t_ent_of(x)->value % 3 != 0);
        n++;
    }
    rcu_read_unlock();
    CHECK_EQ(n, N - (N + 2) / 3);

    /* A walk split into read-side sections, resumed from the last key: every node once. */
    memset(seen, 0, sizeof seen);
    n = 0;
    char last[16] = "";
    for (int done = 0; !done;) {
        rcu_read_lock();
        struct ml_node *x = NULL;
        if (last[0]) {
            struct ml_node *at = ml_lookup(m, last, strlen(last));
            CHECK(at != NULL);
            ml_iter_at(m, at, &it);
            x = ml_next(m, &it);
        } else {
            x = ml_first(m, &it);
        }
        for (int k = 0; x && k < 100; k++, x = ml_next(m, &it)) {
            struct t_ent *e = t_ent_of(x);
            CHECK_EQ(seen[e->value], 0);
            seen[e->value] = 1;
            n++;
            memcpy(last, e->key, e->klen);
            last[e->klen] = '\0';
        }
        done = x == NULL; /* else x, not yet counted, is where the next section resumes */
        rcu_read_unlock();
        /* A resize between sections does not change the order. */
        ml_map_maintain(m);
    }
    CHECK_EQ(n, N - (N + 2) / 3);
    CHECK_EQ(ml_map_destroy(m), 0);
}

/* The policy's band once applied: count <= buckets, and buckets <= 8 * count unless at the minimum. */
static void check_band(struct ml_map *m, unsigned long min)
{
    struct ml_stats st;

    ml_map_stats(m, &st);
    CHECK_EQ(st.buckets & (st.buckets - 1), 0);
    CHECK_OP(st.buckets, >=, min);
    CHECK_OP(st.live, <=, st.buckets);
    if (st.buckets > min)
        CHECK_OP(st.buckets, <=, 8 * st.live);
}

static void test_sizing(void)
{
    enum { N = 20000 };
    struct ml_map *m = new_map("t", 4);
    static struct t_ent *ents[N];
    struct ml_stats st;
    char key[16];

    rcu_read_lock();
    for (unsigned i = 0; i < N; i++) {
        key_of(key, sizeof(key), i);
        ents[i] = t_ent_new(key, i);
        CHECK_EQ(ml_insert(m, &ents[i]->node, NULL), 0);
    }
    rcu_read_unlock();
    /* The maintenance thread follows the count on its own... */
    CHECK(WAIT_UNTIL((ml_map_stats(m, &st), st.buckets >= N / 2), 10));
    /* ...and ml_map_maintain applies the policy synchronously. */
    ml_map_maintain(m);
    check_band(m, 4);
    CHECK_EQ(ml_map_maintain(m), 0); /* nothing left to do */
    rcu_read_lock();
    for (unsigned i = 0; i < N; i++)
        CHECK_EQ(ml_delete(m, &ents[i]->node), 0);
    rcu_read_unlock();
    /* Back to the minimum with no further call. */
    CHECK(WAIT_UNTIL((ml_map_stats(m, &st), st.buckets == 4), 10));
    ml_map_stats(m, &st);
    CHECK_OP(st.resizes, >=, 2);
    rcu_barrier();
    ml_map_stats(m, &st);
    CHECK_EQ(st.live, 0);
    CHECK_EQ(st.pending, 0);
    CHECK_EQ(st.reclaimed, N);
    CHECK_EQ(ml_map_destroy(m), 0);
}

/* A map with max_buckets (contiguous layout) grows up to its cap, not beyond. */
static void test_max_buckets(void)
{
    struct ml_map_config cfg = {.name = "capped", .min_buckets = 1, .reclaim = t_reclaim, .max_buckets = 64};
    struct ml_map *m = NULL;
    struct ml_stats st;
    char key[16];

    CHECK_EQ(ml_map_new(&cfg, &m), 0);
    rcu_read_lock();
    for (unsigned i = 0; i < 1000; i++) {
        key_of(key, sizeof(key), i);
        CHECK_EQ(ml_insert(m, &t_ent_new(key, i)->node, NULL), 0);
    }
    for (unsigned i = 0; i < 1000; i++) {
        key_of(key, sizeof(key), i);
        CHECK(ml_lookup(m, key, strlen(key)) != NULL);
    }
    rcu_read_unlock();
    ml_map_maintain(m);
    ml_map_stats(m, &st);
    CHECK_EQ(st.buckets, 64);
    CHECK_EQ(ml_map_destroy(m), 0);
}

static void test_destroy_with_entries(void)
{
    struct ml_map *m = new_map("t", 1);
    uint64_t before = __atomic_load_n(&t_frees, __ATOMIC_RELAXED);
    char key[16];

    rcu_read_lock();
    for (unsigned i = 0; i < 1000; i++) {
        key_of(key, sizeof(key), i);
        CHECK_EQ(ml_insert(m, &t_ent_new(key, i)->node, NULL), 0);
    }
    rcu_read_unlock();
    CHECK_EQ(ml_map_destroy(m), 0);
    /* Returns only after every reclaim callback ran. */
    CHECK_EQ(__atomic_load_n(&t_frees, __ATOMIC_RELAXED) - before, 1000);
}

static void test_retire(void)
{
    struct ml_map *m = new_map("group", 1);
    struct t_ent *a = t_ent_new("a", 1);
    uint64_t frees;

    rcu_read_lock();
    CHECK_EQ(ml_insert(m, &a->node, NULL), 0);
    CHECK_EQ(ml_map_retire(m), -ENOTEMPTY);
    CHECK_EQ(ml_map_is_retired(m), 0);
    CHECK_PTR(ml_lookup(m, "a", 1), &a->node); /* left untouched */
    CHECK_EQ(ml_delete(m, &a->node), 0);
    /* Retire works inside a read-side section; the map stays usable for
     * readers until they leave it. */
    CHECK_EQ(ml_map_retire(m), 0);
    CHECK_EQ(ml_map_is_retired(m), 1);
    CHECK_EQ(ml_map_retire(m), -EINVAL); /* once only */
    CHECK_PTR(ml_lookup(m, "a", 1), NULL);
    rcu_read_unlock();

    /* A caller that inserts after retiring loses the insert, not the memory. */
    rcu_barrier(); /* a's reclaim is not the one awaited below */
    struct ml_map *m2 = new_map("late", 1);
    struct t_ent *late = t_ent_new("x", 1);
    rcu_read_lock();
    CHECK_EQ(ml_map_retire(m2), 0);
    CHECK_EQ(ml_insert(m2, &late->node, NULL), 0);
    rcu_read_unlock();
    frees = __atomic_load_n(&t_frees, __ATOMIC_RELAXED);
    CHECK(WAIT_UNTIL(__atomic_load_n(&t_frees, __ATOMIC_RELAXED) > frees, 10));
}

/* Deletes are pending while a read-side section is open; ml_throttle() waits them out. */
static void test_throttle(void)
{
    enum { K = 500 };
    struct ml_map *m = new_map("throttle", 1);
    char key[16];
    struct ml_stats st;

    rcu_barrier(); /* nothing of the earlier tests pending */
    CHECK_EQ(ml_pending_total(), 0);
    rcu_read_lock();
    for (unsigned i = 0; i < K; i++) {
        key_of(key, sizeof(key), i);
        struct t_ent *e = t_ent_new(key, i);
        CHECK_EQ(ml_insert(m, &e->node, NULL), 0);
        CHECK_EQ(ml_delete(m, &e->node), 0);
    }
    /* No grace period can end while this section is open. */
    CHECK_EQ(ml_pending_total(), K);
    rcu_read_unlock();
    CHECK_EQ(ml_throttle(UINT64_MAX), 0); /* under the limit: returns at once */
    ml_throttle(0);                       /* over it (unless already reclaimed): waits */
    CHECK_EQ(ml_pending_total(), 0);
    ml_map_stats(m, &st);
    CHECK_EQ(st.reclaimed, K);
    CHECK_EQ(st.pending, 0);
    CHECK_EQ(ml_map_destroy(m), 0);
}

static void test_stats_total(void)
{
    struct ml_stats before, after;
    struct ml_map *a = new_map("a", 1), *b = new_map("b", 8);
    char key[16];

    rcu_barrier();
    ml_stats_total(&before);
    rcu_read_lock();
    for (unsigned i = 0; i < 10; i++) {
        key_of(key, sizeof(key), i);
        CHECK_EQ(ml_insert(a, &t_ent_new(key, i)->node, NULL), 0);
        CHECK_EQ(ml_insert(b, &t_ent_new(key, i)->node, NULL), 0);
    }
    rcu_read_unlock();
    ml_stats_total(&after);
    CHECK_EQ(after.live - before.live, 20);
    CHECK_EQ(after.inserts - before.inserts, 20);
    CHECK_OP(after.buckets, >=, 8 + 1); /* b has 8, a at least 1 */
    CHECK_EQ(ml_map_destroy(a), 0);
    ml_stats_total(&after);
    /* The destroyed map's totals stay in the sums; its live entries do not. */
    CHECK_EQ(after.inserts - before.inserts, 20);
    CHECK_EQ(after.deletes - before.deletes, 10);
    CHECK_EQ(after.reclaimed - before.reclaimed, 10);
    CHECK_EQ(after.live - before.live, 10);
    CHECK_EQ(ml_map_destroy(b), 0);
    ml_stats_total(&after);
    CHECK_EQ(after.live, before.live);
    CHECK_EQ(after.pending, 0);
}

static void *online_thread(void *arg)
{
    struct ml_map *m = arg;
    char key[32];

    ml_thread_online();
    ml_thread_online(); /* idempotent */
    snprintf(key, sizeof(key), "t%lu", (unsigned long)pthread_self());
    rcu_read_lock();
    struct t_ent *e = t_ent_new(key, 1);
    CHECK_EQ(ml_insert(m, &e->node, NULL), 0);
    CHECK_EQ(ml_delete(m, &e->node), 0);
    rcu_read_unlock();
    return NULL; /* unregistered by the key destructor */
}

static void test_thread_online(void)
{
    struct ml_map *m = new_map("t", 1);
    pthread_t th[8];

    for (int i = 0; i < 8; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, online_thread, m), 0);
    for (int i = 0; i < 8; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    /* Exited threads left the registry: grace periods still complete. */
    synchronize_rcu();
    rcu_barrier();
    CHECK_EQ(ml_map_count(m), 0);
    CHECK_EQ(ml_map_destroy(m), 0);
}

static void test_trim_policy(void)
{
    struct ml_map *m = new_map("t", 1);
    uint64_t trims = ml_trim_count();
    char key[16];

    ml_set_trim_policy(1, 0);
    rcu_read_lock();
    for (unsigned i = 0; i < 100; i++) {
        key_of(key, sizeof(key), i);
        struct t_ent *e = t_ent_new(key, i);
        CHECK_EQ(ml_insert(m, &e->node, NULL), 0);
        CHECK_EQ(ml_delete(m, &e->node), 0);
    }
    rcu_read_unlock();
    CHECK(WAIT_UNTIL(ml_trim_count() > trims, 10));
    ml_set_trim_policy(0, 0);
    rcu_barrier();
    trims = ml_trim_count();
    rcu_read_lock();
    struct t_ent *e = t_ent_new("z", 0);
    CHECK_EQ(ml_insert(m, &e->node, NULL), 0);
    CHECK_EQ(ml_delete(m, &e->node), 0);
    rcu_read_unlock();
    rcu_barrier();
    usleep(300 * 1000); /* one maintenance tick: must NOT trim (policy off) */
    CHECK_EQ(ml_trim_count(), trims);
    ml_set_trim_policy(65536, 1000);
    CHECK_EQ(ml_map_destroy(m), 0);
}

/* Fewer than min_entries reclaimed, then quiet for an interval: the tail of a drain is trimmed once. */
static void test_trim_tail(void)
{
    struct ml_map *m = new_map("tail", 1);
    char key[16];

    ml_set_trim_policy(1000, 100);
    rcu_barrier();
    usleep(300 * 1000); /* let any earlier reclaim settle and be trimmed */
    uint64_t trims = ml_trim_count();
    rcu_read_lock();
    for (unsigned i = 0; i < 200; i++) { /* 200 >= 1000 / 16, < 1000 */
        key_of(key, sizeof(key), i);
        struct t_ent *e = t_ent_new(key, i);
        CHECK_EQ(ml_insert(m, &e->node, NULL), 0);
        CHECK_EQ(ml_delete(m, &e->node), 0);
    }
    rcu_read_unlock();
    rcu_barrier();
    CHECK(WAIT_UNTIL(ml_trim_count() > trims, 10));
    ml_set_trim_policy(65536, 1000);
    CHECK_EQ(ml_map_destroy(m), 0);
}

int main(void)
{
    ml_thread_online();
    test_key_equal();
    test_new_invalid();
    test_name_and_min();
    test_insert_lookup();
    test_key_offset();
    test_delete();
    test_upsert();
    test_replace();
    test_iteration();
    test_sizing();
    test_max_buckets();
    test_destroy_with_entries();
    test_retire();
    test_throttle();
    test_stats_total();
    test_thread_online();
    test_trim_policy();
    test_trim_tail();
    ml_shutdown();
    /* Every entry allocated went back: through reclaim or a failed insert. */
    CHECK_EQ(t_allocs, t_frees);
    printf("maplib unit: ok (%llu entries allocated and freed)\n", (unsigned long long)t_allocs);
    return 0;
}
