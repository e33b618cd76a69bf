/*
 * rules: the rule set, the defaults, and every question asked of a set.
 *
 * DESIGN
 *
 * A set is built once (rules_parse.c for a file, rules_default() here) and
 * never changes afterwards, so any number of threads may query it at once
 * without locks: ingest asks "does any rule want this series?", discovery asks
 * "which (resource, metric) pairs do these series make?", and a read asks
 * "which rules serve this metric for this resource, from which series name,
 * with which matchers?". The only mutable state a query touches is its
 * thread's PCRE2 match block.
 *
 * All memory of a set lives in one arena (a list of chunks) plus the list of
 * compiled regexes, so rules_free() releases the whole tree in one sweep. That
 * is what makes a reload cheap: build the new set, rcu_assign_pointer() it, and
 * free the old one after a grace period (the user's side of the contract).
 *
 * Reads go from the served metric name back to the series name, the inverse
 * of name.matches/as. Most rules allow that inversion (a fixed name in the
 * seriesQuery, "^prefix(.*)suffix$" with "$1", no rule at all); the lookup
 * then names the single source series so the store can go straight to its
 * group. For the rare rule that cannot be inverted the caller tests its
 * metric names with rules_name_serves().
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules_impl.h"

/* ---- arena ---- */

struct rules_chunk {
    struct rules_chunk *next;
    size_t used, cap;
    max_align_t data[];
};

#define CHUNK_SIZE 8192

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "rules: out of memory (%zu bytes)\n", n);
        abort();
    }
    return p;
}

void *rules__alloc(struct rules_set *s, size_t n)
{
    size_t align = sizeof(max_align_t);
    n = (n + align - 1) / align * align;
    struct rules_chunk *c = s->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > CHUNK_SIZE ? n : CHUNK_SIZE;
        c = xmalloc(sizeof(*c) + cap);
        c->used = 0;
        c->cap = cap;
        c->next = s->chunks;
        s->chunks = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *rules__strndup(struct rules_set *s, const char *p, size_t n)
{
    char *d = rules__alloc(s, n + 1);
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

char *rules__strdup(struct rules_set *s, const char *p)
{
    return rules__strndup(s, p, strlen(p));
}

struct rules_set *rules__new_set(bool config)
{
    struct rules_set *s = xmalloc(sizeof(*s));
    memset(s, 0, sizeof(*s));
    s->config = config;
    return s;
}

/* Rules live in a growable array (not the arena) while the set is built, so
 * their addresses are only stable once building is over: nothing keeps a
 * rule pointer before that. */
struct rules_rule *rules__add_rule(struct rules_set *s)
{
    if (s->n_rules == s->cap_rules) {
        s->cap_rules = s->cap_rules ? 2 * s->cap_rules : 8;
        struct rules_rule *n = realloc(s->rules, s->cap_rules * sizeof(*n));
        if (!n) {
            fprintf(stderr, "rules: out of memory\n");
            abort();
        }
        s->rules = n;
    }
    struct rules_rule *r = &s->rules[s->n_rules++];
    memset(r, 0, sizeof(*r));
    return r;
}

void rules__warn(struct rules_set *s, const char *msg)
{
    size_t old = s->warnings ? strlen(s->warnings) : 0, len = strlen(msg);
    char *w = rules__alloc(s, old + len + 2);
    if (old) {
        memcpy(w, s->warnings, old);
        w[old++] = '\n';
    }
    memcpy(w + old, msg, len + 1);
    s->warnings = w;
}

void rules_free(struct rules_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n_codes; i++)
        pcre2_code_free(set->codes[i]);
    free(set->codes);
    free(set->rules);
    struct rules_chunk *c = set->chunks;
    while (c) {
        struct rules_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(set);
}

bool rules_is_config(const struct rules_set *set)
{
    return set->config;
}

const char *rules_warnings(const struct rules_set *set)
{
    return set->warnings;
}

size_t rules_count(const struct rules_set *set)
{
    return set->n_rules;
}

const struct rules_rule *rules_get(const struct rules_set *set, size_t i)
{
    return i < set->n_rules ? &set->rules[i] : NULL;
}

/* ---- regexes ---- */

pcre2_code *rules__compile(struct rules_set *s, const char *re, size_t len, bool anchored, char *err,
                           size_t errlen)
{
    /* PromQL anchors label regexes at both ends; ENDANCHORED also stops "$"
     * from matching before a trailing newline. MATCH_INVALID_UTF lets label
     * values that are not valid UTF-8 simply fail to match. */
    uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY;
    if (anchored)
        opts |= PCRE2_ANCHORED | PCRE2_ENDANCHORED;
    int code;
    PCRE2_SIZE off;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, len, opts, &code, &off, NULL);
    if (!c) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof(msg));
        if (err)
            snprintf(err, errlen, "%s at offset %zu", (const char *)msg, (size_t)off);
        return NULL;
    }
    /* JIT is an optimisation: when unavailable the interpreter is used. */
    (void)pcre2_jit_compile(c, PCRE2_JIT_COMPLETE);
    if (s->n_codes == s->cap_codes) {
        s->cap_codes = s->cap_codes ? 2 * s->cap_codes : 16;
        pcre2_code **n = realloc(s->codes, s->cap_codes * sizeof(*n));
        if (!n) {
            fprintf(stderr, "rules: out of memory\n");
            abort();
        }
        s->codes = n;
    }
    s->codes[s->n_codes++] = c;
    return c;
}

/*
 * One match block per thread, made on first use and freed by the key's
 * destructor when the thread exits. Matching runs on every new series at
 * ingest and on every read, often inside a read-side section: a malloc/free
 * pair per regex there cost about a third of a lookup (3.4 us against 2.4 us
 * per lookup with the stock prometheus-adapter rules, measured on a loaded machine).
 */
#define MD_PAIRS 32

static pthread_key_t md_key;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static __thread pcre2_match_data *md_cached;

static void md_destroy(void *p)
{
    pcre2_match_data_free(p);
}

static void md_key_init(void)
{
    if (pthread_key_create(&md_key, md_destroy) != 0) {
        fprintf(stderr, "rules: pthread_key_create failed\n");
        abort();
    }
}

static pcre2_match_data *match_data(void)
{
    if (!md_cached) {
        pthread_once(&md_once, md_key_init);
        md_cached = pcre2_match_data_create(MD_PAIRS, NULL);
        if (!md_cached) {
            fprintf(stderr, "rules: out of memory\n");
            abort();
        }
        pthread_setspecific(md_key, md_cached);
    }
    return md_cached;
}

int rules__re_match(const pcre2_code *re, const char *subject, size_t len, size_t *ovec, size_t nvec)
{
    pcre2_match_data *md = match_data();
    /* The JIT entry point skips pcre2_match()'s checks, which cost more than
     * the compiled match on short names; it is safe here because every
     * pattern is compiled with MATCH_INVALID_UTF. Without JIT code for the
     * pattern it says so and the interpreter runs. */
    int rc = pcre2_jit_match(re, (PCRE2_SPTR)subject, len, 0, 0, md, NULL);
    if (rc == PCRE2_ERROR_JIT_BADOPTION)
        rc = pcre2_match(re, (PCRE2_SPTR)subject, len, 0, 0, md, NULL);
    if (rc < 0)
        return -1;
    if (rc == 0)
        rc = MD_PAIRS; /* matched, more groups than the block holds: the first ones are set */
    size_t n = (size_t)rc < nvec ? (size_t)rc : nvec;
    if (ovec) {
        PCRE2_SIZE *o = pcre2_get_ovector_pointer(md);
        for (size_t i = 0; i < n; i++) {
            bool set = o[2 * i] != PCRE2_UNSET;
            ovec[2 * i] = set ? o[2 * i] : (size_t)-1;
            ovec[2 * i + 1] = set ? o[2 * i + 1] : (size_t)-1;
        }
    }
    return (int)n;
}

/* ---- the resource table (the RESTMapper stand-in) ---- */

static const struct {
    struct rules_resource r;
    const char *singular;
} known[] = {
    {{"", "pods", true}, "pod"},
    {{"", "namespaces", false}, "namespace"},
    {{"", "nodes", false}, "node"},
    {{"", "services", true}, "service"},
    {{"", "endpoints", true}, "endpoints"},
    {{"", "persistentvolumeclaims", true}, "persistentvolumeclaim"},
    {{"", "persistentvolumes", false}, "persistentvolume"},
    {{"", "replicationcontrollers", true}, "replicationcontroller"},
    {{"apps", "deployments", true}, "deployment"},
    {{"apps", "statefulsets", true}, "statefulset"},
    {{"apps", "daemonsets", true}, "daemonset"},
    {{"apps", "replicasets", true}, "replicaset"},
    {{"batch", "jobs", true}, "job"},
    {{"batch", "cronjobs", true}, "cronjob"},
    {{"networking.k8s.io", "ingresses", true}, "ingress"},
    {{"autoscaling", "horizontalpodautoscalers", true}, "horizontalpodautoscaler"},
    {{"policy", "poddisruptionbudgets", true}, "poddisruptionbudget"},
};

const struct rules_resource *rules__known_at(size_t i, const char **singular)
{
    if (i >= sizeof(known) / sizeof(known[0]))
        return NULL;
    if (singular)
        *singular = known[i].singular;
    return &known[i].r;
}

const struct rules_resource *rules__known_resource(const char *group, const char *name)
{
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (group && *group && strcmp(group, known[i].r.group) != 0)
            continue;
        if (strcmp(name, known[i].r.resource) == 0 || strcmp(name, known[i].singular) == 0)
            return &known[i].r;
    }
    return NULL;
}

struct rules_resource rules__resolve_resource(struct rules_set *s, const char *group, const char *name)
{
    const struct rules_resource *k = rules__known_resource(group, name);
    if (k)
        return *k;
    /* Unknown (a custom resource): trust the operator, plural by appending "s". */
    struct rules_resource r = {rules__strdup(s, group ? group : ""), NULL, true};
    size_t len = strlen(name);
    if (len && name[len - 1] == 's') {
        r.resource = rules__strdup(s, name);
    } else {
        char *p = rules__alloc(s, len + 2);
        memcpy(p, name, len);
        p[len] = 's';
        r.resource = p;
    }
    return r;
}

static int cmp_label_res(const void *a, const void *b)
{
    return strcmp(((const struct rules_label_res *)a)->label, ((const struct rules_label_res *)b)->label);
}

void rules__sort_res(struct rules_label_res *r, size_t n)
{
    if (n > 1)
        qsort(r, n, sizeof(*r), cmp_label_res);
}

/* ---- names ---- */

const char *rules_agg_name(enum rules_agg a)
{
    static const char *const n[] = {"sum", "avg", "max", "min", "count"};
    return (unsigned)a < 5 ? n[a] : "?";
}

const char *rules_fn_name(enum rules_fn f)
{
    static const char *const n[] = {"none", "rate", "irate", "increase"};
    return (unsigned)f < 4 ? n[f] : "?";
}

/* ---- the defaults ---- */

/* Parse "label=resource[.group],..." into extra overrides. */
static int parse_extra_overrides(struct rules_set *s, const char *spec, struct rules_label_res **out,
                                 size_t *n_out, char *err, size_t errlen)
{
    size_t n = 0, cap = 8;
    struct rules_label_res *v = rules__alloc(s, cap * sizeof(*v));
    const char *p = spec;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq || eq == p || eq == p + len - 1) {
            snprintf(err, errlen, "default resource override '%.*s' is not label=resource[.group]", (int)len,
                     p);
            return -EINVAL;
        }
        char *label = rules__strndup(s, p, (size_t)(eq - p));
        char *res = rules__strndup(s, eq + 1, len - (size_t)(eq - p) - 1);
        char *dot = strchr(res, '.');
        const char *group = "";
        if (dot) {
            *dot = '\0';
            group = dot + 1;
        }
        if (n == cap) {
            struct rules_label_res *nv = rules__alloc(s, 2 * cap * sizeof(*nv));
            memcpy(nv, v, n * sizeof(*v));
            v = nv;
            cap *= 2;
        }
        v[n].label = label;
        v[n].res = rules__resolve_resource(s, group, res);
        n++;
        p = end ? end + 1 : NULL;
    }
    *out = v;
    *n_out = n;
    return 0;
}

static void add_default_rule(struct rules_set *s, bool external, bool counter,
                             const struct rules_label_res *res, size_t n_res, unsigned index)
{
    struct rules_rule *r = rules__add_rule(s);
    r->index = index;
    r->external = external;
    r->series_query = "{__name__!=\"\"}";
    r->agg = RULES_AGG_SUM;
    r->fn = counter ? RULES_FN_RATE : RULES_FN_NONE;
    r->window_ms = counter ? 120000 : 0;
    r->query = counter ? "sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)"
                       : "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)";
    r->_need_type = counter ? 1 : 2;
    r->_strip_total = counter;
    r->_res = res;
    r->_n_res = n_res;
    r->namespace_label = "namespace";
    r->ns_mode = external ? RULES_NS_EQUAL_OR_NONE : RULES_NS_EQUAL;
}

int rules_default(const char *extra_overrides, struct rules_set **out, char *errbuf, size_t errlen)
{
    char scratch[8];
    if (!errbuf) {
        errbuf = scratch;
        errlen = sizeof(scratch);
    }
    struct rules_set *s = rules__new_set(false);
    struct rules_label_res *extra = NULL;
    size_t n_extra = 0;
    int rc = parse_extra_overrides(s, extra_overrides, &extra, &n_extra, errbuf, errlen);
    if (rc < 0) {
        rules_free(s);
        return rc;
    }
    struct rules_label_res *res = rules__alloc(s, (n_extra + 2) * sizeof(*res));
    size_t n = 0;
    res[n++] = (struct rules_label_res){"namespace", *rules__known_resource("", "namespaces")};
    res[n++] = (struct rules_label_res){"pod", *rules__known_resource("", "pods")};
    for (size_t i = 0; i < n_extra; i++) {
        size_t j = 0;
        while (j < n && strcmp(res[j].label, extra[i].label) != 0)
            j++;
        res[j] = extra[i]; /* a repeated label: the later mapping wins */
        if (j == n)
            n++;
    }
    rules__sort_res(res, n);
    /* Counters before gauges, so that a lookup of `x` tries x_total first. */
    add_default_rule(s, false, true, res, n, 0);
    add_default_rule(s, false, false, res, n, 1);
    add_default_rule(s, true, true, res, n, 0);
    add_default_rule(s, true, false, res, n, 1);
    *out = s;
    return 0;
}

/* ---- matching ---- */

const char *rules_label_value(const struct rules_label *labels, size_t n, const char *name)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(labels[mid].name, name);
        if (c == 0)
            return labels[mid].value;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static bool matcher_match(const struct rules_matcher *m, const char *v)
{
    if (!v)
        v = "";
    switch (m->op) {
    case RULES_OP_EQ:
        return strcmp(v, m->value) == 0;
    case RULES_OP_NEQ:
        return strcmp(v, m->value) != 0;
    case RULES_OP_RE:
        return rules__re_match(m->_re, v, strlen(v), NULL, 0) >= 0;
    case RULES_OP_NRE:
        return rules__re_match(m->_re, v, strlen(v), NULL, 0) < 0;
    }
    return false;
}

bool rules_matchers_match(const struct rules_matcher *m, size_t nm, const struct rules_label *labels,
                          size_t n)
{
    for (size_t i = 0; i < nm; i++)
        if (!matcher_match(&m[i], rules_label_value(labels, n, m[i].name)))
            return false;
    return true;
}

static bool ends_with(const char *s, size_t len, const char *suf)
{
    size_t k = strlen(suf);
    return len >= k && memcmp(s + len - k, suf, k) == 0;
}

static bool is_counter(const char *name, enum rules_type type)
{
    return type == RULES_TYPE_COUNTER ||
           (type == RULES_TYPE_UNKNOWN && ends_with(name, strlen(name), "_total"));
}

/* Append to a bounded name buffer; false once it would overflow. */
static bool put(char *out, size_t *len, const char *p, size_t n)
{
    if (*len + n >= RULES_NAME_MAX)
        return false;
    memcpy(out + *len, p, n);
    *len += n;
    out[*len] = '\0';
    return true;
}

static bool is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/*
 * Expand the `as` template the way Go's Regexp.Expand does: $1, ${1}, $name,
 * ${name}; "$$" is a dollar; a reference to a group that does not exist or
 * did not take part expands to nothing; a "$" not followed by a valid name is
 * copied as is.
 */
static bool expand_as(const struct rules_rule *r, const char *name, const size_t *ovec, size_t nvec,
                      char *out)
{
    const char *t = r->_name_as;
    size_t len = 0;
    out[0] = '\0';
    while (*t) {
        if (*t != '$') {
            const char *d = strchr(t, '$');
            size_t n = d ? (size_t)(d - t) : strlen(t);
            if (!put(out, &len, t, n))
                return false;
            t += n;
            continue;
        }
        if (t[1] == '$') {
            if (!put(out, &len, "$", 1))
                return false;
            t += 2;
            continue;
        }
        const char *ref = t + 1, *next;
        size_t rlen = 0;
        if (*ref == '{') {
            ref++;
            while (is_word(ref[rlen]))
                rlen++;
            next = ref + rlen + 1;
            if (ref[rlen] != '}')
                rlen = 0;
        } else {
            while (is_word(ref[rlen]))
                rlen++;
            next = ref + rlen;
        }
        if (rlen == 0) {
            if (!put(out, &len, "$", 1))
                return false;
            t++;
            continue;
        }
        long g = -1;
        bool digits = true;
        for (size_t i = 0; i < rlen; i++)
            digits = digits && ref[i] >= '0' && ref[i] <= '9';
        if (digits && rlen < 9) {
            g = strtol(ref, NULL, 10);
        } else if (!digits && r->_name_re) {
            char nm[64];
            if (rlen < sizeof(nm)) {
                memcpy(nm, ref, rlen);
                nm[rlen] = '\0';
                g = pcre2_substring_number_from_name(r->_name_re, (PCRE2_SPTR)nm);
            }
        }
        if (g >= 0 && (size_t)g < nvec && ovec[2 * g] != (size_t)-1) {
            if (!put(out, &len, name + ovec[2 * g], ovec[2 * g + 1] - ovec[2 * g]))
                return false;
        }
        t = next;
    }
    return true;
}

#define NVEC 32

/* The served name of series @name under @r, without looking at labels other
 * than __name__; false when the rule does not take the name. @sel_done: the
 * caller already matched the whole seriesQuery, __name__ included. */
static bool served_name(const struct rules_rule *r, const char *name, enum rules_type type, char *out,
                        bool sel_done)
{
    size_t len = strlen(name);
    if (r->_need_type) {
        bool counter = is_counter(name, type);
        if ((r->_need_type == 1) != counter)
            return false;
        if (r->_strip_total && ends_with(name, len, "_total"))
            len -= 6;
        if (len == 0 || len >= RULES_NAME_MAX)
            return false;
        memcpy(out, name, len);
        out[len] = '\0';
        return true;
    }
    for (size_t i = 0; i < r->_n_sel && !sel_done; i++)
        if (strcmp(r->_sel[i].name, "__name__") == 0 && !matcher_match(&r->_sel[i], name))
            return false;
    for (size_t i = 0; i < r->_n_filters; i++)
        if ((rules__re_match(r->_filters[i].re, name, len, NULL, 0) >= 0) != r->_filters[i].positive)
            return false;
    size_t ovec[2 * NVEC];
    int ngroups = 1;
    if (r->_name_re) {
        /* Only the groups that took part are written; expand_as() reads no further. */
        if ((ngroups = rules__re_match(r->_name_re, name, len, ovec, NVEC)) < 0)
            return false;
    } else {
        /* ".*" on a metric name (no newline): group 0 is the whole name. */
        ovec[0] = 0;
        ovec[1] = len;
    }
    return expand_as(r, name, ovec, (size_t)ngroups, out) && out[0] != '\0';
}

bool rules_name_serves(const struct rules_rule *rule, const char *series_name, enum rules_type type,
                       const char *metric)
{
    char got[RULES_NAME_MAX];
    return served_name(rule, series_name, type, got, false) && strcmp(got, metric) == 0;
}

size_t rules_series_uses(const struct rules_set *set, const struct rules_label *labels, size_t n,
                         enum rules_type type, struct rules_use *out, size_t max)
{
    const char *name = rules_label_value(labels, n, "__name__");
    if (!name || !*name)
        return 0;
    size_t count = 0;
    for (size_t i = 0; i < set->n_rules; i++) {
        const struct rules_rule *r = &set->rules[i];
        if (!rules_matchers_match(r->_sel, r->_n_sel, labels, n))
            continue;
        char metric[RULES_NAME_MAX];
        if (!served_name(r, name, type, metric, true))
            continue;
        if (count < max) {
            out[count].rule = r;
            memcpy(out[count].metric, metric, strlen(metric) + 1);
        }
        count++;
    }
    return count;
}

bool rules_series_wanted(const struct rules_set *set, const struct rules_label *labels, size_t n,
                         enum rules_type type)
{
    return rules_series_uses(set, labels, n, type, NULL, 0) > 0;
}

const struct rules_resource *rules_label_resource(const struct rules_rule *rule, const char *label)
{
    size_t lo = 0, hi = rule->_n_res;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(rule->_res[mid].label, label);
        if (c == 0)
            return &rule->_res[mid].res;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* A request's resource, "pods" or "deployments.apps", split and made plural once. */
struct req_res {
    char name[128];
    const char *group, *plural;
};

static bool req_res_parse(const char *resource, struct req_res *q)
{
    const char *dot = strchr(resource, '.');
    size_t len = dot ? (size_t)(dot - resource) : strlen(resource);
    if (len >= sizeof(q->name))
        return false;
    memcpy(q->name, resource, len);
    q->name[len] = '\0';
    q->group = dot ? dot + 1 : "";
    const struct rules_resource *k = rules__known_resource(q->group, q->name);
    q->plural = k ? k->resource : q->name;
    return true;
}

/* A group left out in the request matches any group, as a RESTMapper does. */
static const char *label_for(const struct rules_rule *rule, const struct req_res *q)
{
    for (size_t i = 0; i < rule->_n_res; i++) {
        const struct rules_resource *r = &rule->_res[i].res;
        if (strcmp(r->resource, q->plural) == 0 && (!*q->group || strcmp(r->group, q->group) == 0))
            return rule->_res[i].label;
    }
    return NULL;
}

const char *rules_object_label(const struct rules_rule *rule, const char *resource)
{
    struct req_res q;
    return req_res_parse(resource, &q) ? label_for(rule, &q) : NULL;
}

/* ---- read side ---- */

/* The loader and the defaults both set namespace_label (NULL when no label
 * maps to namespaces, or for an external rule with namespaced: false). */
static const char *ns_label_of(const struct rules_rule *r)
{
    return r->namespace_label;
}

/* Fill t->source for a config rule; false when the metric cannot come from it. */
static bool derive_source(const struct rules_rule *r, const char *metric, struct rules_target *t)
{
    size_t len = 0;
    t->source[0] = '\0';
    if (r->_inv_kind == 1) {
        if (!put(t->source, &len, r->_inv_src, strlen(r->_inv_src)))
            return false;
    } else if (r->_inv_kind == 2) {
        size_t ml = strlen(metric), al = strlen(r->_inv_a), bl = strlen(r->_inv_b);
        if (ml < al + bl || strncmp(metric, r->_inv_a, al) != 0 || strcmp(metric + ml - bl, r->_inv_b) != 0)
            return false;
        if (!put(t->source, &len, r->_inv_p, strlen(r->_inv_p)) ||
            !put(t->source, &len, metric + al, ml - al - bl) ||
            !put(t->source, &len, r->_inv_s, strlen(r->_inv_s)))
            return false;
    } else {
        return true; /* not invertible: the caller scans names */
    }
    return rules_name_serves(r, t->source, RULES_TYPE_UNKNOWN, metric);
}

static void push(struct rules_target *out, size_t max, size_t *count, const struct rules_rule *r,
                 const char *object_label, const char *source)
{
    if (*count < max) {
        struct rules_target *t = &out[*count];
        t->rule = r;
        t->object_label = object_label;
        t->namespace_label = ns_label_of(r);
        size_t l = strlen(source);
        memcpy(t->source, source, l + 1);
    }
    (*count)++;
}

/* The defaults' sources for metric m: counters read m_total, or m typed
 * counter; gauges read m. */
static void default_targets(const struct rules_rule *r, const char *metric, const char *object_label,
                            struct rules_target *out, size_t max, size_t *count)
{
    size_t ml = strlen(metric);
    if (r->_need_type == 1) {
        if (ml + 6 < RULES_NAME_MAX) {
            char src[RULES_NAME_MAX];
            memcpy(src, metric, ml);
            memcpy(src + ml, "_total", 7);
            push(out, max, count, r, object_label, src);
        }
        push(out, max, count, r, object_label, metric);
    } else {
        push(out, max, count, r, object_label, metric);
    }
}

static size_t lookup(const struct rules_set *set, bool external, const char *resource, const char *metric,
                     struct rules_target *out, size_t max)
{
    size_t count = 0;
    struct req_res q;
    if (!*metric || strlen(metric) >= RULES_NAME_MAX || (!external && !req_res_parse(resource, &q)))
        return 0;
    for (size_t i = 0; i < set->n_rules; i++) {
        const struct rules_rule *r = &set->rules[i];
        if (r->external != external)
            continue;
        const char *object_label = NULL;
        if (!external) {
            object_label = label_for(r, &q);
            if (!object_label)
                continue;
        }
        if (r->_need_type) {
            default_targets(r, metric, object_label, out, max, &count);
            continue;
        }
        struct rules_target t;
        if (!derive_source(r, metric, &t))
            continue;
        push(out, max, &count, r, object_label, t.source);
    }
    return count;
}

size_t rules_lookup_custom(const struct rules_set *set, const char *resource, const char *metric,
                           struct rules_target *out, size_t max)
{
    return lookup(set, false, resource, metric, out, max);
}

size_t rules_lookup_external(const struct rules_set *set, const char *metric, struct rules_target *out,
                             size_t max)
{
    return lookup(set, true, NULL, metric, out, max);
}

bool rules_series_selected(const struct rules_target *t, const struct rules_label *labels, size_t n,
                           const char *ns, const char *object)
{
    const struct rules_rule *r = t->rule;
    if (r->external) {
        if (ns && r->ns_mode != RULES_NS_NONE) {
            const char *v = r->namespace_label ? rules_label_value(labels, n, r->namespace_label) : NULL;
            bool absent = !v || !*v;
            if (absent ? r->ns_mode != RULES_NS_EQUAL_OR_NONE : strcmp(v, ns) != 0)
                return false;
        }
    } else {
        if (ns) {
            const char *v = t->namespace_label ? rules_label_value(labels, n, t->namespace_label) : NULL;
            if (!v || strcmp(v, ns) != 0)
                return false;
        }
        const char *v = t->object_label ? rules_label_value(labels, n, t->object_label) : NULL;
        if (!v || !*v || (object && strcmp(v, object) != 0))
            return false;
    }
    return rules_matchers_match(r->extra, r->n_extra, labels, n);
}

/* ---- discovery ---- */

struct rules_disc {
    const struct rules_set *set;
    struct rules_served *v;
    size_t n, cap;
};

struct rules_disc *rules_disc_new(const struct rules_set *set)
{
    struct rules_disc *d = xmalloc(sizeof(*d));
    memset(d, 0, sizeof(*d));
    d->set = set;
    return d;
}

static int cmp_served(const struct rules_served *a, const struct rules_resource *rb, const char *mb)
{
    const struct rules_resource *ra = a->resource;
    if (!ra != !rb)
        return ra ? -1 : 1; /* custom before external */
    if (ra) {
        int c = strcmp(ra->group, rb->group);
        if (c)
            return c;
        c = strcmp(ra->resource, rb->resource);
        if (c)
            return c;
    }
    return strcmp(a->metric, mb);
}

/* Insert in order, merging duplicates: the result stays sorted and small
 * (one entry per distinct pair) however many series are added. */
static void disc_put(struct rules_disc *d, const struct rules_resource *res, const char *metric,
                     bool namespaced)
{
    size_t lo = 0, hi = d->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_served(&d->v[mid], res, metric);
        if (c == 0) {
            d->v[mid].namespaced = d->v[mid].namespaced || namespaced;
            return;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 16;
        struct rules_served *nv = realloc(d->v, d->cap * sizeof(*nv));
        if (!nv) {
            fprintf(stderr, "rules: out of memory\n");
            abort();
        }
        d->v = nv;
    }
    memmove(&d->v[lo + 1], &d->v[lo], (d->n - lo) * sizeof(*d->v));
    size_t ml = strlen(metric) + 1;
    char *m = xmalloc(ml);
    memcpy(m, metric, ml);
    d->v[lo] = (struct rules_served){res, m, namespaced};
    d->n++;
}

void rules_disc_add(struct rules_disc *d, const struct rules_label *labels, size_t n, enum rules_type type)
{
    const char *name = rules_label_value(labels, n, "__name__");
    if (!name || !*name)
        return;
    for (size_t k = 0; k < d->set->n_rules; k++) {
        const struct rules_rule *r = &d->set->rules[k];
        char metric[RULES_NAME_MAX];
        if (!rules_matchers_match(r->_sel, r->_n_sel, labels, n) || !served_name(r, name, type, metric, true))
            continue;
        if (r->external) {
            disc_put(d, NULL, metric, false);
            continue;
        }
        /* Each label that names an object makes the metric servable for
         * that resource, as prometheus-adapter's ResourcesForSeries does. */
        const char *nsl = ns_label_of(r);
        const char *nsv = nsl ? rules_label_value(labels, n, nsl) : NULL;
        bool has_ns = nsv && *nsv;
        for (size_t i = 0; i < n; i++) {
            if (!*labels[i].value)
                continue;
            const struct rules_resource *res = rules_label_resource(r, labels[i].name);
            if (!res)
                continue;
            bool is_ns = strcmp(res->resource, "namespaces") == 0 && !*res->group;
            disc_put(d, res, metric, has_ns && !is_ns);
        }
    }
}

size_t rules_disc_result(struct rules_disc *d, const struct rules_served **out)
{
    *out = d->v;
    return d->n;
}

void rules_disc_free(struct rules_disc *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        free((void *)d->v[i].metric);
    free(d->v);
    free(d);
}
