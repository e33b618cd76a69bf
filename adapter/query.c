/*
 * query: one metrics-API read evaluated against the store. See query.h.
 *
 * DESIGN: the read is a single pass over the series of one source metric in
 * the groups the namespace allows. For each series the labels are copied
 * once into a scratch array of NUL-terminated strings (what rules.h and the
 * selector callback want), the rule and the selectors decide whether it
 * takes part, its samples are copied with store_series_snapshot() (never
 * torn), and its value folds into the accumulator of its object (custom) or
 * label set (external). Accumulators live in a small open-addressing table
 * keyed by a seeded XXH3 of the object name: names come from the network.
 *
 * Everything that outlives the read section (object names, label strings,
 * the items) is copied into the result's own chunks, so that the caller can
 * leave the read section before it builds JSON and writes to the socket.
 */
#include "query.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "podcache.h"
#include "rate.h"
#include "remote_write.h"

/* ---- result memory: a chain of chunks freed in one sweep ---- */

struct query__chunk {
    struct query__chunk *next;
    size_t used, cap;
    char data[];
};

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "query: out of memory\n");
        abort();
    }
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) {
        fprintf(stderr, "query: out of memory\n");
        abort();
    }
    return p;
}

static void *r_alloc(struct query_result *r, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    struct query__chunk *c = r->_mem;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 16384 ? n : 16384;
        c = xmalloc(sizeof(*c) + cap);
        c->next = r->_mem;
        c->used = 0;
        c->cap = cap;
        r->_mem = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

static char *r_strndup(struct query_result *r, const char *s, size_t n)
{
    char *p = r_alloc(r, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void query_result_free(struct query_result *r)
{
    struct query__chunk *c = r->_mem;
    while (c) {
        struct query__chunk *next = c->next;
        free(c);
        c = next;
    }
    free(r->items);
    memset(r, 0, sizeof(*r));
}

enum rules_type query_rules_type(int t)
{
    switch (t) {
    case API_RW_TYPE_COUNTER:
        return RULES_TYPE_COUNTER;
    case API_RW_TYPE_GAUGE:
        return RULES_TYPE_GAUGE;
    case API_RW_TYPE_UNKNOWN:
        return RULES_TYPE_UNKNOWN;
    default:
        return RULES_TYPE_OTHER;
    }
}

/* ---- per-object accumulators ---- */

struct acc {
    const char *key; /* in the result's memory; external: group-by values joined by '\0' */
    size_t key_len;
    uint64_t hash;
    const char *ns;
    double sum, min, max;
    uint64_t count;
    int64_t ts;
    /* external: the labels of the first series seen, restricted to group_by */
    const char **lnames, **lvalues;
    size_t nlabels;
};

struct table {
    struct acc *v; /* dense, in insertion order */
    size_t n, cap;
    uint32_t *slots; /* index + 1, 0 = empty */
    size_t nslots;
};

static uint64_t seed;
static pthread_once_t seed_once = PTHREAD_ONCE_INIT;

/* A per-process hash seed: object names and label values come from the network. */
static void seed_init(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    seed = ((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)&ts) | 1;
}

static void table_grow(struct table *t)
{
    size_t ns = t->nslots ? 2 * t->nslots : 64;
    free(t->slots);
    t->slots = calloc(ns, sizeof(*t->slots));
    if (!t->slots) {
        fprintf(stderr, "query: out of memory\n");
        abort();
    }
    t->nslots = ns;
    for (size_t i = 0; i < t->n; i++) {
        size_t j = t->v[i].hash & (ns - 1);
        while (t->slots[j])
            j = (j + 1) & (ns - 1);
        t->slots[j] = (uint32_t)(i + 1);
    }
}

/* The accumulator for key, created (zeroed, key copied) when missing. *created tells which. */
static struct acc *table_get(struct table *t, struct query_result *r, const char *key, size_t len,
                             bool *created)
{
    uint64_t h = XXH3_64bits_withSeed(key, len, seed);
    if ((t->n + 1) * 2 > t->nslots)
        table_grow(t);
    size_t j = h & (t->nslots - 1);
    while (t->slots[j]) {
        struct acc *a = &t->v[t->slots[j] - 1];
        if (a->hash == h && a->key_len == len && memcmp(a->key, key, len) == 0) {
            *created = false;
            return a;
        }
        j = (j + 1) & (t->nslots - 1);
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->v = xrealloc(t->v, t->cap * sizeof(*t->v));
    }
    struct acc *a = &t->v[t->n];
    memset(a, 0, sizeof(*a));
    a->key = r_strndup(r, key, len);
    a->key_len = len;
    a->hash = h;
    a->min = INFINITY;
    a->max = -INFINITY;
    t->slots[j] = (uint32_t)(++t->n);
    *created = true;
    return a;
}

/* ---- per-read scratch: one series' labels as NUL-terminated strings ---- */

struct scratch {
    struct rules_label *labels;
    size_t nlabels, cap_labels;
    char *text;
    size_t cap_text;
    struct api_rw_sample *samples;
    size_t cap_samples;
};

static void scratch_free(struct scratch *s)
{
    free(s->labels);
    free(s->text);
    free(s->samples);
}

/* Copy the labels of @s into the scratch arrays. */
static void load_labels(struct scratch *sc, const struct store_series *s)
{
    struct store_label_iter li;
    struct api_rw_label l;
    size_t n = 0, bytes = 0;
    store_series_labels(s, &li);
    while (store_series_label_next(&li, &l)) {
        n++;
        bytes += l.name_len + l.value_len + 2;
    }
    if (n > sc->cap_labels) {
        sc->cap_labels = n + 16;
        sc->labels = xrealloc(sc->labels, sc->cap_labels * sizeof(*sc->labels));
    }
    if (bytes > sc->cap_text) {
        sc->cap_text = bytes + 1024;
        sc->text = xrealloc(sc->text, sc->cap_text);
    }
    char *p = sc->text;
    size_t i = 0;
    store_series_labels(s, &li);
    while (store_series_label_next(&li, &l) && i < n) {
        memcpy(p, l.name, l.name_len);
        p[l.name_len] = '\0';
        sc->labels[i].name = p;
        p += l.name_len + 1;
        memcpy(p, l.value, l.value_len);
        p[l.value_len] = '\0';
        sc->labels[i].value = p;
        p += l.value_len + 1;
        i++;
    }
    sc->nlabels = i;
}

/* sel_lookup_fn over the scratch labels (sorted by name). */
static const char *label_lookup(void *ctx, const char *name, size_t name_len, size_t *value_len)
{
    const struct scratch *sc = ctx;
    size_t lo = 0, hi = sc->nlabels;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *k = sc->labels[mid].name;
        int c = strncmp(k, name, name_len);
        if (c == 0 && k[name_len] != '\0')
            c = 1;
        if (c == 0) {
            *value_len = strlen(sc->labels[mid].value);
            return sc->labels[mid].value;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ---- one series' value ---- */

/*
 * The value of series @s under @rule at q->now_ms and the timestamp of the
 * newest sample used. Returns false when the series gives no value (idle past
 * the TTL, too few samples in the window, not finite).
 */
static bool series_value(const struct rules_rule *rule, const struct query_request *q, struct scratch *sc,
                         const struct store_series *s, double *v, int64_t *ts)
{
    int64_t oldest_ok = q->now_ms - q->ttl_ms;
    if (store_series_newest(s) < oldest_ok)
        return false;
    if (!sc->samples) {
        sc->cap_samples = 64;
        sc->samples = xmalloc(sc->cap_samples * sizeof(*sc->samples));
    }
    size_t held = store_series_snapshot(s, sc->samples, sc->cap_samples);
    while (held > sc->cap_samples) {
        sc->cap_samples = held > STORE_MAX_SAMPLES ? STORE_MAX_SAMPLES : held;
        sc->samples = xrealloc(sc->samples, sc->cap_samples * sizeof(*sc->samples));
        held = store_series_snapshot(s, sc->samples, sc->cap_samples);
        if (held > STORE_MAX_SAMPLES)
            held = STORE_MAX_SAMPLES;
    }
    size_t n = held;
    const struct api_rw_sample *smp = sc->samples;

    /* The newest sample not after the request's arrival (a sender's clock may run ahead). */
    size_t last = n;
    while (last > 0 && smp[last - 1].timestamp_ms > q->now_ms)
        last--;
    if (last == 0 || smp[last - 1].timestamp_ms < oldest_ok)
        return false;

    double out;
    if (rule->fn == RULES_FN_NONE) {
        out = smp[last - 1].value;
        *ts = smp[last - 1].timestamp_ms;
    } else {
        enum rate_fn fn = rule->fn == RULES_FN_RATE    ? RATE_FN_RATE
                          : rule->fn == RULES_FN_IRATE ? RATE_FN_IRATE
                                                       : RATE_FN_INCREASE;
        int64_t start = q->now_ms - rule->window_ms;
        if (smp[last - 1].timestamp_ms < start)
            return false;
        if (rate_eval(fn, smp, last, start, q->now_ms, &out) != 0)
            return false;
        *ts = smp[last - 1].timestamp_ms;
    }
    if (!isfinite(out))
        return false;
    *v = out;
    return true;
}

/* ---- the scan ---- */

struct eval {
    struct store *st;
    const struct query_request *q;
    const struct rules_target *t;
    const char *object; /* the one object asked for, or NULL */
    const char *sel_ns; /* namespace passed to rules_series_selected */
    bool quick;         /* quick_select() decides alone: no label copy */
    bool ns_by_group;   /* the group was looked up by the namespace asked for */
    bool sel_done;      /* the label indexes decided every selector requirement */
    struct table tab;
    struct scratch sc;
    struct query_result *r;
    struct store_series **cand; /* candidates from the label indexes, by address */
    size_t ncand, cand_cap;
};

static void fold(struct acc *a, double v, int64_t ts)
{
    a->sum += v;
    if (v < a->min)
        a->min = v;
    if (v > a->max)
        a->max = v;
    a->count++;
    if (ts > a->ts)
        a->ts = ts;
}

/* The external accumulator key: the group-by values, each followed by '\0'
 * (or "\x01\0" when the label is absent, which no label value can be). */
static struct acc *external_acc(struct eval *e)
{
    const struct rules_rule *rule = e->t->rule;
    char stackkey[512] = "";
    size_t len = 0, cap = sizeof(stackkey);
    char *key = stackkey;
    for (size_t i = 0; i < rule->n_group_by; i++) {
        const char *v = rules_label_value(e->sc.labels, e->sc.nlabels, rule->group_by[i]);
        if (!v)
            v = "\x01";
        size_t vl = strlen(v) + 1;
        if (len + vl > cap) {
            cap = 2 * (len + vl);
            key = key == stackkey ? memcpy(xmalloc(cap), stackkey, len) : xrealloc(key, cap);
        }
        memcpy(key + len, v, vl);
        len += vl;
    }
    bool created;
    struct acc *a = table_get(&e->tab, e->r, key, len, &created);
    if (created && rule->n_group_by) {
        a->lnames = r_alloc(e->r, rule->n_group_by * sizeof(char *));
        a->lvalues = r_alloc(e->r, rule->n_group_by * sizeof(char *));
        for (size_t i = 0; i < rule->n_group_by; i++) {
            const char *v = rules_label_value(e->sc.labels, e->sc.nlabels, rule->group_by[i]);
            if (!v || !*v)
                continue; /* PromQL drops absent and empty labels from the output */
            /* Copied: the rule set may be freed once the caller leaves its read section. */
            a->lnames[a->nlabels] = r_strndup(e->r, rule->group_by[i], strlen(rule->group_by[i]));
            a->lvalues[a->nlabels] = r_strndup(e->r, v, strlen(v));
            a->nlabels++;
        }
    }
    if (key != stackkey)
        free(key);
    return a;
}

/* Whether the requirement is an equality (=, ==, in): a label index answers it. */
static bool req_equality(const struct sel_requirement *r)
{
    return r->op == SEL_OP_EQUALS || r->op == SEL_OP_DOUBLE_EQUALS || r->op == SEL_OP_IN;
}

/* Whether the series' own label satisfies an equality-like requirement, tested
 * in place (no copy); other operators are left to the full match. */
static bool req_quick(const struct sel_requirement *r, const struct store_series *s)
{
    if (!req_equality(r))
        return true;
    const char *v;
    size_t vl;
    if (!store_series_label(s, r->key, &v, &vl))
        return false;
    for (size_t i = 0; i < r->nvalues; i++)
        if (strlen(r->values[i]) == vl && memcmp(r->values[i], v, vl) == 0)
            return true;
    return false;
}

static bool sel_quick(const struct sel_selector *sel, const struct store_series *s)
{
    for (size_t i = 0; sel && i < sel_count(sel); i++)
        if (!req_quick(sel_get(sel, i), s))
            return false;
    return true;
}

/* Whether every requirement is an equality that sel_quick() decides alone. */
static bool sel_all_quick(const struct sel_selector *sel)
{
    for (size_t i = 0; sel && i < sel_count(sel); i++)
        if (!req_equality(sel_get(sel, i)))
            return false;
    return true;
}

/*
 * The common case without copying labels: a custom rule without extra
 * matchers and selectors made of equalities only needs the object and
 * namespace labels, read in place. Same decisions as rules_series_selected()
 * (namespace equal when asked, object label present and non-empty, equal to
 * the object asked for). Returns false when the series does not take part.
 */
static bool quick_select(struct eval *e, const struct store_series *s, const char **obj, size_t *objlen)
{
    const struct rules_target *t = e->t;
    if (e->sel_ns && !e->ns_by_group) {
        const char *v;
        size_t vl;
        if (!t->namespace_label || !store_series_label(s, t->namespace_label, &v, &vl) ||
            vl != strlen(e->sel_ns) || memcmp(v, e->sel_ns, vl) != 0)
            return false;
    }
    if (!store_series_label(s, t->object_label, obj, objlen) || *objlen == 0)
        return false;
    return !e->object || (*objlen == strlen(e->object) && memcmp(*obj, e->object, *objlen) == 0);
}

static void consider(struct eval *e, struct store_series *s);

#define PREFETCH_AHEAD 8

/* The walk is bound by memory latency (each series is a cache miss): the
 * next series are known, so ask for them ahead of time. */
static inline void prefetch_series(const struct store_series *s)
{
    const char *p = (const char *)s;
    __builtin_prefetch(p);
    __builtin_prefetch(p + 64);
    __builtin_prefetch(p + 128);
    __builtin_prefetch(p + 192);
}

/*
 * A slice of an object-label index: series whose object label is @obj. In
 * quick mode the object is known, so neither it nor (when the group was found
 * by namespace) the namespace is read from the series, and the accumulator is
 * looked up once per slice.
 */
static void consider_slice(struct eval *e, struct store_series **ss, size_t n, const char *obj, size_t objlen)
{
    if (!e->quick) {
        for (size_t k = 0; k < n; k++)
            consider(e, ss[k]);
        return;
    }
    const struct query_request *q = e->q;
    const struct rules_target *t = e->t;
    struct acc *a = NULL;
    for (size_t k = 0; k < n; k++) {
        struct store_series *s = ss[k];
        if (k + PREFETCH_AHEAD < n)
            prefetch_series(ss[k + PREFETCH_AHEAD]);
        if (!sel_quick(q->label_sel, s) || !sel_quick(q->metric_sel, s))
            continue;
        if (e->sel_ns && !e->ns_by_group) {
            const char *v;
            size_t vl;
            if (!t->namespace_label || !store_series_label(s, t->namespace_label, &v, &vl) ||
                vl != strlen(e->sel_ns) || memcmp(v, e->sel_ns, vl) != 0)
                continue;
        }
        double v;
        int64_t ts;
        if (!series_value(t->rule, q, &e->sc, s, &v, &ts))
            continue;
        if (!a) {
            bool created;
            a = table_get(&e->tab, e->r, obj, objlen, &created);
            if (created && t->namespace_label && q->ns)
                a->ns = r_strndup(e->r, q->ns, strlen(q->ns));
        }
        fold(a, v, ts);
    }
}

/* One series of a group: select it, value it, fold it into its accumulator. */
static void consider(struct eval *e, struct store_series *s)
{
    const struct query_request *q = e->q;
    const struct rules_target *t = e->t;
    /* Most series a selector rejects fail an equality: test those in place first. */
    if (!e->sel_done && (!sel_quick(q->label_sel, s) || !sel_quick(q->metric_sel, s)))
        return;
    if (e->quick) {
        const char *obj;
        size_t objlen;
        double v;
        int64_t ts;
        if (!quick_select(e, s, &obj, &objlen) || !series_value(t->rule, q, &e->sc, s, &v, &ts))
            return;
        bool created;
        struct acc *a = table_get(&e->tab, e->r, obj, objlen, &created);
        if (created && t->namespace_label && q->ns)
            a->ns = r_strndup(e->r, q->ns, strlen(q->ns));
        fold(a, v, ts);
        return;
    }
    load_labels(&e->sc, s);
    if (!rules_series_selected(t, e->sc.labels, e->sc.nlabels, e->sel_ns, e->object))
        return;
    if (!e->sel_done && q->label_sel && !sel_matches(q->label_sel, label_lookup, &e->sc))
        return;
    if (!e->sel_done && q->metric_sel && !sel_matches(q->metric_sel, label_lookup, &e->sc))
        return;
    double v;
    int64_t ts;
    if (!series_value(t->rule, q, &e->sc, s, &v, &ts))
        return;
    struct acc *a;
    if (t->rule->external) {
        a = external_acc(e);
    } else {
        const char *obj = rules_label_value(e->sc.labels, e->sc.nlabels, t->object_label);
        bool created;
        a = table_get(&e->tab, e->r, obj, strlen(obj), &created);
        if (created && t->namespace_label && q->ns) {
            const char *ns = rules_label_value(e->sc.labels, e->sc.nlabels, t->namespace_label);
            a->ns = ns ? r_strndup(e->r, ns, strlen(ns)) : NULL;
        }
    }
    fold(a, v, ts);
}

/*
 * Label indexes: for one group and one label name, the group's series
 * grouped by that label's value, so that an object read or a selector with
 * an equality visits only the series it can select instead of walking the
 * whole group (a hash-table walk is a pointer chase per series).
 *
 * An index holds series pointers across read-side sections, which is safe
 * only while no series of its group has been unlinked since it was built:
 * each index records store_group_generation() at build time and is used only
 * while both numbers are unchanged (a series insert or unlink in the group
 * changes the second, a group unlink anywhere the first, so a new group at a
 * reused address never matches; each bump precedes its unlink, so a reader
 * that still sees the old value entered its section before the grace period
 * could end). No index is built while an unlink in the group is in flight
 * (between its bump and its unlink a walk still finds the node, and the new
 * value would match later reads after it was freed). An index of another
 * group is never dereferenced, only matched by address and numbers. Indexes
 * are per thread (no locks on the read path), a few per thread, least
 * recently used evicted, freed at thread exit.
 */
#define IDX_PER_THREAD 8
#define IDX_LABEL_MAX  128

struct lindex {
    const struct store_group *g; /* NULL: empty slot */
    char label[IDX_LABEL_MAX];
    uint64_t gen[2], used;   /* store_group_generation() at build time */
    struct query_result mem; /* value strings */
    struct table values;     /* value -> slot; acc.count = series, acc.ts = slice offset,
                                acc.sum = fill cursor while building */
    struct store_series **series;
    size_t nseries;
};

struct lcache {
    struct lindex v[IDX_PER_THREAD];
    uint64_t clock;
};

static pthread_key_t lcache_key;
static pthread_once_t lcache_once = PTHREAD_ONCE_INIT;

static void lindex_clear(struct lindex *x)
{
    query_result_free(&x->mem);
    free(x->values.v);
    free(x->values.slots);
    free(x->series);
    memset(x, 0, sizeof(*x));
}

static void lcache_free(void *p)
{
    struct lcache *c = p;
    for (size_t i = 0; i < IDX_PER_THREAD; i++)
        lindex_clear(&c->v[i]);
    free(c);
}

static void lcache_init(void)
{
    pthread_key_create(&lcache_key, lcache_free);
}

static struct lcache *lcache_get(void)
{
    pthread_once(&lcache_once, lcache_init);
    struct lcache *c = pthread_getspecific(lcache_key);
    if (!c) {
        c = calloc(1, sizeof(*c));
        if (!c) {
            fprintf(stderr, "query: out of memory\n");
            abort();
        }
        pthread_setspecific(lcache_key, c);
    }
    return c;
}

struct idx_pair {
    uint32_t id;
    struct store_series *s;
};

static int ptr_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return (x > y) - (x < y);
}

static int pair_cmp(const void *a, const void *b)
{
    return ptr_cmp(((const struct idx_pair *)a)->s, ((const struct idx_pair *)b)->s);
}

static int series_ptr_cmp(const void *a, const void *b)
{
    return ptr_cmp(*(struct store_series *const *)a, *(struct store_series *const *)b);
}

/* Build an index of @g by @label into @x (one walk of the group). */
static void lindex_build(struct lindex *x, struct store_group *g, const char *label, const uint64_t gen[2])
{
    struct idx_pair *pairs = NULL;
    size_t n = 0, cap = 0;
    struct store_iter it;
    for (struct store_series *s = store_series_first(g, &it); s; s = store_series_next(g, &it)) {
        const char *v;
        size_t vl;
        if (!store_series_label(s, label, &v, &vl))
            continue;
        bool created;
        struct acc *a = table_get(&x->values, &x->mem, v, vl, &created);
        a->count++;
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            pairs = xrealloc(pairs, cap * sizeof(*pairs));
        }
        pairs[n].id = (uint32_t)(a - x->values.v);
        pairs[n].s = s;
        n++;
    }
    /* Address order first; the counting sort below is stable, so each slice
     * is in address order too: two slices intersect in one merge. */
    if (n > 1)
        qsort(pairs, n, sizeof(*pairs), pair_cmp);
    /* Counting sort by value: each value's series become one contiguous slice. */
    int64_t off = 0;
    for (size_t i = 0; i < x->values.n; i++) {
        x->values.v[i].ts = off;
        off += (int64_t)x->values.v[i].count;
    }
    x->series = xmalloc((n ? n : 1) * sizeof(*x->series));
    for (size_t i = 0; i < n; i++) {
        struct acc *a = &x->values.v[pairs[i].id];
        x->series[a->ts + (int64_t)(a->sum++)] = pairs[i].s;
    }
    free(pairs);
    x->nseries = n;
    x->g = g;
    x->gen[0] = gen[0];
    x->gen[1] = gen[1];
    snprintf(x->label, sizeof x->label, "%s", label);
}

/* The current index of @g by @label, built if missing or stale; NULL if the label name is too long. */
static struct lindex *lindex_get(struct store *st, struct store_group *g, const char *label)
{
    if (strlen(label) >= IDX_LABEL_MAX)
        return NULL;
    struct lcache *c = lcache_get();
    uint64_t gen[2];
    store_group_generation(st, g, gen);
    if (gen[1] == STORE_GEN_UNLINKING)
        return NULL; /* a series of @g is being unlinked: the caller walks the group, nothing is kept */
    struct lindex *victim = &c->v[0];
    for (size_t i = 0; i < IDX_PER_THREAD; i++) {
        struct lindex *x = &c->v[i];
        if (x->g == g && x->gen[0] == gen[0] && x->gen[1] == gen[1] && strcmp(x->label, label) == 0) {
            x->used = ++c->clock;
            return x;
        }
        if (x->g && (x->gen[0] != gen[0] || (x->g == g && x->gen[1] != gen[1])))
            lindex_clear(x); /* stale: can never match again, and its pointers must never be used */
        if (!x->g || (victim->g && x->used < victim->used))
            victim = x;
    }
    lindex_clear(victim);
    lindex_build(victim, g, label, gen);
    victim->used = ++c->clock;
    return victim;
}

/* The series of @x whose label value is @v, as a slice. */
static struct store_series **lindex_find(struct lindex *x, const char *v, size_t *n)
{
    bool created;
    size_t vl = strlen(v);
    uint64_t h = XXH3_64bits_withSeed(v, vl, seed);
    *n = 0;
    if (!x->values.nslots)
        return NULL;
    for (size_t j = h & (x->values.nslots - 1); x->values.slots[j]; j = (j + 1) & (x->values.nslots - 1)) {
        struct acc *a = &x->values.v[x->values.slots[j] - 1];
        if (a->hash == h && a->key_len == vl && memcmp(a->key, v, vl) == 0) {
            *n = a->count;
            return x->series + a->ts;
        }
    }
    (void)created;
    return NULL;
}

/* Series count an equality-like requirement selects through an index, or SIZE_MAX when it cannot. */
static size_t req_candidates(struct store *st, struct store_group *g, const struct sel_requirement *r)
{
    if (!req_equality(r))
        return SIZE_MAX;
    struct lindex *x = lindex_get(st, g, r->key);
    if (!x)
        return SIZE_MAX;
    size_t total = 0;
    for (size_t i = 0; i < r->nvalues; i++) {
        size_t n;
        lindex_find(x, r->values[i], &n);
        total += n;
    }
    return total;
}

static void cand_reserve(struct eval *e, size_t n)
{
    if (n > e->cand_cap) {
        e->cand_cap = n > 2 * e->cand_cap ? n : 2 * e->cand_cap;
        e->cand = xrealloc(e->cand, e->cand_cap * sizeof(*e->cand));
    }
}

/* The candidates: every series of the slices @r selects in @x, in address
 * order. The values of one requirement are distinct, so no series twice. */
static void cand_from(struct eval *e, struct lindex *x, const struct sel_requirement *r)
{
    e->ncand = 0;
    for (size_t i = 0; i < r->nvalues; i++) {
        size_t n;
        struct store_series **ss = lindex_find(x, r->values[i], &n);
        if (!n)
            continue;
        cand_reserve(e, e->ncand + n);
        memcpy(e->cand + e->ncand, ss, n * sizeof(*ss));
        e->ncand += n;
    }
    if (r->nvalues > 1)
        qsort(e->cand, e->ncand, sizeof(*e->cand), series_ptr_cmp);
}

/* Keep the candidates that are also in @ss (both in address order): a merge
 * over pointers, so a rejected series is never read. */
static void cand_intersect(struct eval *e, struct store_series *const *ss, size_t n)
{
    size_t i = 0, j = 0, out = 0;
    while (i < e->ncand && j < n) {
        uintptr_t a = (uintptr_t)e->cand[i], b = (uintptr_t)ss[j];
        if (a < b) {
            i++;
        } else if (b < a) {
            j++;
        } else {
            e->cand[out++] = e->cand[i++];
            j++;
        }
    }
    e->ncand = out;
}

/*
 * A selector with equalities: start from the most selective requirement's
 * slices, narrow them by the slice of every other single-valued equality,
 * then visit what is left. The candidates are copied out of the indexes, so
 * a later lindex_get() that evicts or invalidates an index cannot pull them
 * away: each slice was current when it was taken, inside this read section.
 * Returns false when no requirement has an index (the caller walks).
 */
static bool visit_indexed(struct eval *e, struct store_group *g)
{
    const struct sel_selector *sels[2] = {e->q->label_sel, e->q->metric_sel};
    const struct sel_requirement *best = NULL;
    size_t bn = SIZE_MAX;
    for (size_t k = 0; k < 2; k++) {
        for (size_t i = 0; sels[k] && i < sel_count(sels[k]); i++) {
            const struct sel_requirement *r = sel_get(sels[k], i);
            size_t n = req_candidates(e->st, g, r);
            if (n < bn) {
                bn = n;
                best = r;
            }
        }
    }
    /* Fetched again rather than kept: a later lindex_get() may have evicted
     * or invalidated an index returned earlier. */
    struct lindex *bx = best ? lindex_get(e->st, g, best->key) : NULL;
    if (!bx)
        return false;
    cand_from(e, bx, best);
    bool all = true; /* every requirement applied through an index */
    for (size_t k = 0; k < 2; k++) {
        for (size_t i = 0; e->ncand && sels[k] && i < sel_count(sels[k]); i++) {
            const struct sel_requirement *r = sel_get(sels[k], i);
            if (r == best)
                continue;
            struct lindex *x = r->nvalues == 1 && req_equality(r) ? lindex_get(e->st, g, r->key) : NULL;
            if (!x) {
                all = false;
                continue;
            }
            size_t n;
            struct store_series **ss = lindex_find(x, r->values[0], &n);
            cand_intersect(e, ss, n);
        }
    }
    /* An index holds exactly the series whose label equals its value, the
     * test sel_quick() and sel_matches() make for these operators. */
    e->sel_done = all;
    for (size_t k = 0; k < e->ncand; k++) {
        if (k + PREFETCH_AHEAD < e->ncand)
            prefetch_series(e->cand[k + PREFETCH_AHEAD]);
        consider(e, e->cand[k]);
    }
    e->sel_done = false;
    return true;
}

/* Small groups are walked: an index pays off only when it skips many series. */
#define IDX_MIN_SERIES 256

static void scan_group(struct eval *e, struct store_group *g)
{
    const struct rules_target *t = e->t;
    if (store_group_series(g) >= IDX_MIN_SERIES) {
        /* An object read: the object label's index. */
        if (e->object && t->object_label) {
            struct lindex *x = lindex_get(e->st, g, t->object_label);
            if (x) {
                size_t n;
                struct store_series **ss = lindex_find(x, e->object, &n);
                consider_slice(e, ss, n, e->object, strlen(e->object));
                return;
            }
        }
        if (visit_indexed(e, g))
            return;
        /* Every object: the object label's index is an array, cheaper to walk
         * than the hash table's chain (and it holds only series with the label).
         * Not for an object read: its slices are taken whole (the first
         * lindex_get() above may have found an unlink in flight, this one not). */
        struct lindex *x = t->object_label && !e->object ? lindex_get(e->st, g, t->object_label) : NULL;
        if (x) {
            for (size_t i = 0; i < x->values.n; i++) {
                const struct acc *v = &x->values.v[i];
                consider_slice(e, x->series + v->ts, v->count, v->key, v->key_len);
            }
            return;
        }
    }
    struct store_iter it;
    for (struct store_series *s = store_series_first(g, &it); s; s = store_series_next(g, &it))
        consider(e, s);
}

/* Scan the groups of metric @m that the request's namespace allows. */
static void scan_metric(struct eval *e, struct store_metric *m)
{
    const struct query_request *q = e->q;
    const struct rules_target *t = e->t;
    const struct rules_rule *rule = t->rule;
    size_t mlen;
    const char *mname = store_metric_name(m, &mlen);
    /* The store groups series by their `namespace` label: when that is the
     * label the rule reads the namespace from, lookups find the groups. */
    const char *direct = NULL;
    bool with_none = false;
    if (!rule->external) {
        if (q->ns && !t->namespace_label)
            return; /* a namespaced read through a rule without a namespace label */
        if (q->ns && strcmp(t->namespace_label, "namespace") == 0)
            direct = q->ns;
        else if (!q->ns && e->object && t->object_label && strcmp(t->object_label, "namespace") == 0)
            direct = e->object; /* a namespace's own metric */
    } else if (q->ns && rule->ns_mode != RULES_NS_NONE && rule->namespace_label &&
               strcmp(rule->namespace_label, "namespace") == 0) {
        direct = q->ns;
        with_none = rule->ns_mode == RULES_NS_EQUAL_OR_NONE;
    }
    if (direct) {
        struct store_group *g = store_group_lookup(e->st, mname, mlen, direct, strlen(direct));
        /* The group holds exactly the series whose `namespace` is the one asked for. */
        e->ns_by_group = !rule->external && q->ns && direct == q->ns;
        if (g)
            scan_group(e, g);
        e->ns_by_group = false;
        if (with_none && (g = store_group_lookup(e->st, mname, mlen, "", 0)) != NULL)
            scan_group(e, g);
        return;
    }
    struct store_iter it;
    for (struct store_group *g = store_group_first(m, &it); g; g = store_group_next(m, &it))
        scan_group(e, g);
}

/* Evaluate one target; the table collects what it finds. */
static void eval_target(struct eval *e)
{
    const struct rules_target *t = e->t;
    const char *metric = e->q->metric;
    if (t->source[0]) {
        struct store_metric *m = store_metric_lookup(e->st, t->source, strlen(t->source));
        if (!m || !rules_name_serves(t->rule, t->source, query_rules_type(store_metric_type(m)), metric))
            return;
        scan_metric(e, m);
        return;
    }
    /* A name rule that cannot be inverted: every metric name is a candidate. */
    struct store_iter it;
    for (struct store_metric *m = store_metric_first(e->st, &it); m; m = store_metric_next(e->st, &it)) {
        size_t len;
        const char *name = store_metric_name(m, &len);
        if (rules_name_serves(t->rule, name, query_rules_type(store_metric_type(m)), metric))
            scan_metric(e, m);
    }
}

static double agg_value(enum rules_agg agg, const struct acc *a)
{
    switch (agg) {
    case RULES_AGG_AVG:
        return a->sum / (double)a->count;
    case RULES_AGG_MAX:
        return a->max;
    case RULES_AGG_MIN:
        return a->min;
    case RULES_AGG_COUNT:
        return (double)a->count;
    case RULES_AGG_SUM:
    default:
        return a->sum;
    }
}

static int cmp_item_custom(const void *pa, const void *pb)
{
    const struct query_item *a = pa, *b = pb;
    return strcmp(a->object, b->object);
}

static int cmp_item_external(const void *pa, const void *pb)
{
    const struct query_item *a = pa, *b = pb;
    for (size_t i = 0; i < a->nlabels && i < b->nlabels; i++) {
        int c = strcmp(a->lnames[i], b->lnames[i]);
        if (c)
            return c;
        if ((c = strcmp(a->lvalues[i], b->lvalues[i])) != 0)
            return c;
    }
    return (a->nlabels > b->nlabels) - (a->nlabels < b->nlabels);
}

/* Turn the accumulators into items; returns how many are finite. */
static size_t emit(struct eval *e)
{
    const struct rules_rule *rule = e->t->rule;
    struct query_result *r = e->r;
    r->items = xrealloc(r->items, (e->tab.n ? e->tab.n : 1) * sizeof(*r->items));
    r->n = 0;
    for (size_t i = 0; i < e->tab.n; i++) {
        const struct acc *a = &e->tab.v[i];
        if (!a->count)
            continue;
        double v = agg_value(rule->agg, a);
        if (!isfinite(v))
            continue;
        struct query_item *it = &r->items[r->n++];
        memset(it, 0, sizeof(*it));
        it->value = v;
        it->timestamp_ms = a->ts;
        it->window_s = rule->fn == RULES_FN_NONE ? -1 : rule->window_ms / 1000;
        if (rule->external) {
            it->lnames = (const char *const *)a->lnames;
            it->lvalues = (const char *const *)a->lvalues;
            it->nlabels = a->nlabels;
        } else {
            it->object = a->key;
            it->ns = a->ns;
        }
    }
    qsort(r->items, r->n, sizeof(*r->items), rule->external ? cmp_item_external : cmp_item_custom);
    r->rule = rule;
    return r->n;
}

static void table_reset(struct table *t)
{
    t->n = 0;
    if (t->slots)
        memset(t->slots, 0, t->nslots * sizeof(*t->slots));
}

#define MAX_TARGETS 16

int query_eval(const struct rules_set *rules, struct store *st, const struct query_request *q,
               struct query_result *out)
{
    memset(out, 0, sizeof(*out));
    pthread_once(&seed_once, seed_init);
    struct rules_target targets[MAX_TARGETS];
    size_t nt = q->external ? rules_lookup_external(rules, q->metric, targets, MAX_TARGETS)
                            : rules_lookup_custom(rules, q->resource, q->metric, targets, MAX_TARGETS);
    if (nt > MAX_TARGETS)
        nt = MAX_TARGETS;

    /* Pods with a synced pod metadata cache: labelSelector is the pods'
     * labels, not the series'; the series are selected without it and each
     * pod's aggregate is kept only when the cache has the pod and it matches
     * (before the first sync, /readyz is 503 and the series' labels serve).
     * A read of all pods ("*") without a labelSelector keeps the pods the
     * cache has, as prometheus-adapter lists the pods and asks for those:
     * series of a pod deleted before its stale markers arrived are not
     * served. A read by name without a labelSelector does not consult it. */
    struct podcache *pods = NULL;
    const struct sel_selector *pod_sel = NULL;
    struct query_request qpods;
    if (!q->external && (q->label_sel || !q->name) && q->resource &&
        (strcmp(q->resource, "pods") == 0 || strcmp(q->resource, "pod") == 0) &&
        (pods = podcache_active()) != NULL && podcache_synced(pods)) {
        pod_sel = q->label_sel;
        qpods = *q;
        qpods.label_sel = NULL;
        q = &qpods;
    }
    struct eval e = {.st = st, .q = q, .r = out};
    bool is_ns_resource = !q->external && q->resource &&
                          (strcmp(q->resource, "namespaces") == 0 || strcmp(q->resource, "namespace") == 0);
    int rc = -ENOENT;
    for (size_t i = 0; i < nt; i++) {
        e.t = &targets[i];
        if (q->external) {
            e.object = NULL;
            e.sel_ns = q->ns;
        } else if (is_ns_resource) {
            /* A namespace's own metric: the object is the namespace. */
            e.object = q->name ? q->name : NULL;
            e.sel_ns = NULL;
        } else {
            e.object = q->name;
            e.sel_ns = q->ns;
        }
        e.quick = !q->external && !e.t->rule->n_extra && e.t->object_label && sel_all_quick(q->label_sel) &&
                  sel_all_quick(q->metric_sel);
        table_reset(&e.tab);
        eval_target(&e);
        for (size_t j = 0; pods && j < e.tab.n; j++) {
            struct acc *a = &e.tab.v[j];
            const char *ns = a->ns ? a->ns : q->ns;
            if (a->count && (!ns || !podcache_selected(pods, ns, a->key, a->key_len, pod_sel)))
                a->count = 0;
        }
        if (emit(&e) > 0) {
            rc = 0;
            break;
        }
    }
    free(e.tab.v);
    free(e.tab.slots);
    free(e.cand);
    scratch_free(&e.sc);
    return rc;
}
