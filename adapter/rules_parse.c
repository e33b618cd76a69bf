/*
 * rules_parse: the configuration loader (prometheus-adapter's YAML, the
 * subset described in rules.h).
 *
 * DESIGN
 *
 * libyaml loads the file into a document (a node graph); the loader walks it
 * with a fixed schema and builds rules into the set's arena; the PromQL in
 * seriesQuery and metricsQuery goes to rules_promql.c.
 *
 * Every error goes through rules__fail(), which prefixes the rule ("rules[2]
 * (seriesQuery '...'): ") so that an operator can find the line to fix. The
 * loader stops at the first error and frees everything it built.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "rules_impl.h"

#define MAX_RULES 10000

int rules__fail(struct rules__ctx *c, const char *fmt, ...)
{
    char msg[RULES_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->list && c->sq)
        snprintf(c->err, c->errlen, "%s[%zu] (seriesQuery '%.120s'): %s", c->list, c->index, c->sq, msg);
    else if (c->list)
        snprintf(c->err, c->errlen, "%s[%zu]: %s", c->list, c->index, msg);
    else
        snprintf(c->err, c->errlen, "%s", msg);
    return -EINVAL;
}

/* ---- YAML helpers ---- */

static yaml_node_t *node(struct rules__ctx *c, int id)
{
    return yaml_document_get_node(c->doc, id);
}

/* A plain empty or "null"/"~" scalar, as YAML reads it. */
static bool is_null(const yaml_node_t *n)
{
    if (!n)
        return true;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)n->data.scalar.value;
    size_t l = n->data.scalar.length;
    return l == 0 || (l == 1 && v[0] == '~') || (l == 4 && strncasecmp(v, "null", 4) == 0);
}

/* A string field: a scalar without NUL bytes (a null reads as ""). */
static int get_str(struct rules__ctx *c, const yaml_node_t *n, const char *what, const char **out)
{
    if (is_null(n)) {
        *out = "";
        return 0;
    }
    if (n->type != YAML_SCALAR_NODE)
        return rules__fail(c, "%s must be a string", what);
    size_t l = n->data.scalar.length;
    if (memchr(n->data.scalar.value, '\0', l))
        return rules__fail(c, "%s contains a NUL byte", what);
    *out = rules__strndup(c->s, (const char *)n->data.scalar.value, l);
    return 0;
}

static int get_bool(struct rules__ctx *c, const yaml_node_t *n, const char *what, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    if (n && n->type == YAML_SCALAR_NODE) {
        const char *v = (const char *)n->data.scalar.value;
        for (int i = 0; i < 3; i++) {
            if (strcasecmp(v, yes[i]) == 0) {
                *out = true;
                return 0;
            }
            if (strcasecmp(v, no[i]) == 0) {
                *out = false;
                return 0;
            }
        }
    }
    return rules__fail(c, "%s must be true or false", what);
}

static const char *key_of(const yaml_node_t *k)
{
    return k && k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "";
}

/*
 * YAML merge keys ("<<: *base" or "<<: [*a, *b]"), which go-yaml and so
 * prometheus-adapter honour: a key missing from a mapping is looked up in
 * the mappings its "<<" names, in order. Depth is bounded because anchors
 * can nest merges, and so is the number of mappings one lookup visits:
 * aliases may name the same mapping many times at every level (a mapping
 * that merges itself eight times would otherwise cost 8^8 visits).
 */
#define MERGE_DEPTH  8
#define MERGE_VISITS 256

static bool is_merge(struct rules__ctx *c, const yaml_node_pair_t *p)
{
    return strcmp(key_of(node(c, p->key)), "<<") == 0;
}

static const yaml_node_t *field_at(struct rules__ctx *c, const yaml_node_t *m, const char *name, int depth,
                                   int *visits)
{
    if (!m || m->type != YAML_MAPPING_NODE || depth > MERGE_DEPTH || --*visits < 0)
        return NULL;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++)
        if (!is_merge(c, p) && strcmp(key_of(node(c, p->key)), name) == 0)
            return node(c, p->value);
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        if (!is_merge(c, p))
            continue;
        const yaml_node_t *v = node(c, p->value), *f = NULL;
        if (v && v->type == YAML_SEQUENCE_NODE) {
            for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top && !f;
                 it++)
                f = field_at(c, node(c, *it), name, depth + 1, visits);
        } else {
            f = field_at(c, v, name, depth + 1, visits);
        }
        if (f)
            return f;
    }
    return NULL;
}

/* The value of key @name in mapping @m (merge keys included), or NULL. */
static const yaml_node_t *field(struct rules__ctx *c, const yaml_node_t *m, const char *name)
{
    int visits = MERGE_VISITS;
    return field_at(c, m, name, 0, &visits);
}

/*
 * Refuse keys outside @allowed (NULL-terminated; NULL @allowed allows any
 * key) and repeated keys in mapping @m, and check what its merge keys name:
 * a typo such as "metricQuery" or a second "name:" would otherwise change
 * what the rule means without a word. @where prefixes the message.
 */
static int check_keys_at(struct rules__ctx *c, const yaml_node_t *m, const char *const *allowed,
                         const char *where, int depth, int *visits)
{
    if (depth > MERGE_DEPTH)
        return rules__fail(c, "%smerge keys nested too deep", where);
    if (--*visits < 0)
        return rules__fail(c, "%smerge keys name more than %d mappings", where, MERGE_VISITS);
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        const char *k = key_of(node(c, p->key));
        for (yaml_node_pair_t *q = m->data.mapping.pairs.start; q < p; q++)
            if (strcmp(key_of(node(c, q->key)), k) == 0)
                return rules__fail(c, "%skey '%s' appears twice", where, k);
        if (is_merge(c, p)) {
            const yaml_node_t *v = node(c, p->value);
            bool seq = v && v->type == YAML_SEQUENCE_NODE;
            size_t n = seq ? (size_t)(v->data.sequence.items.top - v->data.sequence.items.start) : 1;
            for (size_t i = 0; i < n; i++) {
                const yaml_node_t *src = seq ? node(c, v->data.sequence.items.start[i]) : v;
                if (!src || src->type != YAML_MAPPING_NODE)
                    return rules__fail(c, "%s'<<' must name a mapping or a list of mappings", where);
                int rc = check_keys_at(c, src, allowed, where, depth + 1, visits);
                if (rc < 0)
                    return rc;
            }
            continue;
        }
        bool ok = !allowed;
        for (const char *const *a = allowed; a && *a && !ok; a++)
            ok = strcmp(k, *a) == 0;
        if (!ok)
            return rules__fail(c, "%sunknown key '%s'", where, k);
    }
    return 0;
}

static int check_keys(struct rules__ctx *c, const yaml_node_t *m, const char *const *allowed,
                      const char *where)
{
    int visits = MERGE_VISITS;
    return check_keys_at(c, m, allowed, where, 0, &visits);
}

/* ---- resources ---- */

struct rlist {
    struct rules_label_res *v;
    size_t n, cap;
};

/* Add label -> resource unless the label is already mapped (overrides win). */
static void rlist_add(struct rules__ctx *c, struct rlist *rl, const char *label, struct rules_resource res)
{
    for (size_t i = 0; i < rl->n; i++)
        if (strcmp(rl->v[i].label, label) == 0)
            return;
    if (rl->n == rl->cap) {
        size_t cap = rl->cap ? 2 * rl->cap : 8;
        struct rules_label_res *nv = rules__alloc(c->s, cap * sizeof(*nv));
        if (rl->n)
            memcpy(nv, rl->v, rl->n * sizeof(*nv));
        rl->v = nv;
        rl->cap = cap;
    }
    rl->v[rl->n].label = label;
    rl->v[rl->n].res = res;
    rl->n++;
}

/* Render a resource template for one known resource: <<.Group>> with dots and
 * dashes made underscores, <<.Resource>> singular, as prometheus-adapter does. */
static int render_template(struct rules__ctx *c, const char *tpl, const struct rules_resource *res,
                           const char *singular, char *out, size_t outlen)
{
    struct rules__lexer l = {tpl, tpl + strlen(tpl)};
    size_t n = 0;
    while (l.p < l.end) {
        const char *f;
        size_t fl;
        const char *add;
        size_t al;
        char group[64];
        if (rules__lex_action(&l, &f, &fl)) {
            if (rules__field_is(f, fl, ".Resource")) {
                add = singular;
            } else if (rules__field_is(f, fl, ".Group")) {
                snprintf(group, sizeof(group), "%s", res->group);
                for (char *g = group; *g; g++)
                    if (*g == '.' || *g == '-')
                        *g = '_';
                add = group;
            } else {
                return rules__fail(c, "resources.template: unsupported template field '<<%.*s>>'", (int)fl,
                                   f);
            }
            al = strlen(add);
        } else {
            add = l.p++;
            al = 1;
        }
        if (n + al >= outlen)
            return rules__fail(c, "resources.template: too long");
        memcpy(out + n, add, al);
        n += al;
    }
    out[n] = '\0';
    return 0;
}

static int parse_override(struct rules__ctx *c, struct rlist *rl, const char *label, const yaml_node_t *v)
{
    if (!v || v->type != YAML_MAPPING_NODE)
        return rules__fail(c, "resources.overrides.%s must be a mapping {group, resource}", label);
    static const char *const keys[] = {"group", "resource", NULL};
    char where[160];
    snprintf(where, sizeof(where), "resources.overrides.%.100s: ", label);
    int rc = check_keys(c, v, keys, where);
    if (rc < 0)
        return rc;
    const char *group = "", *res = "";
    if ((rc = get_str(c, field(c, v, "group"), "resources.overrides group", &group)) < 0 ||
        (rc = get_str(c, field(c, v, "resource"), "resources.overrides resource", &res)) < 0)
        return rc;
    if (!*res)
        return rules__fail(c, "resources.overrides.%s has no resource", label);
    if (!rules__ident_start(label[0]) || strchr(label, ':'))
        return rules__fail(c, "resources.overrides: '%s' is not a label name", label);
    rlist_add(c, rl, label, rules__resolve_resource(c->s, group, res));
    return 0;
}

/* overrides: {label: {group, resource}}; a label given directly wins over a
 * merged one (rlist_add keeps the first mapping of a label). */
static int parse_overrides(struct rules__ctx *c, struct rlist *rl, const yaml_node_t *m)
{
    if (m->type != YAML_MAPPING_NODE)
        return rules__fail(c, "resources.overrides must be a mapping");
    int rc = check_keys(c, m, NULL, "resources.overrides: ");
    if (rc < 0)
        return rc;
    for (yaml_node_pair_t *o = m->data.mapping.pairs.start; o < m->data.mapping.pairs.top; o++) {
        if (is_merge(c, o))
            continue;
        const char *label;
        if ((rc = get_str(c, node(c, o->key), "resources.overrides label", &label)) < 0 ||
            (rc = parse_override(c, rl, label, node(c, o->value))) < 0)
            return rc;
    }
    for (yaml_node_pair_t *o = m->data.mapping.pairs.start; o < m->data.mapping.pairs.top; o++) {
        if (!is_merge(c, o))
            continue;
        const yaml_node_t *v = node(c, o->value);
        if (v->type == YAML_MAPPING_NODE) {
            if ((rc = parse_overrides(c, rl, v)) < 0)
                return rc;
        } else {
            for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++)
                if ((rc = parse_overrides(c, rl, node(c, *it))) < 0)
                    return rc;
        }
    }
    return 0;
}

static int parse_resources(struct rules__ctx *c, struct rules_rule *r, const yaml_node_t *v,
                           bool *namespaced_set, bool *namespaced)
{
    struct rlist rl = {0};
    const char *tpl = NULL;
    if (!is_null(v)) {
        if (v->type != YAML_MAPPING_NODE)
            return rules__fail(c, "resources must be a mapping");
        static const char *const keys[] = {"overrides", "template", "namespaced", NULL};
        int rc = check_keys(c, v, keys, "resources: ");
        if (rc < 0)
            return rc;
        const yaml_node_t *ov = field(c, v, "overrides"), *ns = field(c, v, "namespaced");
        if (!is_null(ov) && (rc = parse_overrides(c, &rl, ov)) < 0)
            return rc;
        if ((rc = get_str(c, field(c, v, "template"), "resources.template", &tpl)) < 0)
            return rc;
        if (ns) {
            *namespaced_set = true;
            if ((rc = get_bool(c, ns, "resources.namespaced", namespaced)) < 0)
                return rc;
        }
    }
    if (tpl && *tpl) {
        const char *singular;
        const struct rules_resource *k;
        for (size_t i = 0; (k = rules__known_at(i, &singular)) != NULL; i++) {
            char label[256];
            int rc = render_template(c, tpl, k, singular, label, sizeof(label));
            if (rc < 0)
                return rc;
            if (*label && rules__ident_start(label[0]))
                rlist_add(c, &rl, rules__strdup(c->s, label), *k);
        }
    }
    rules__sort_res(rl.v, rl.n);
    r->_res = rl.v;
    r->_n_res = rl.n;
    return 0;
}

/* ---- name ---- */

static bool literal_char(char ch)
{
    return rules__ident_char(ch);
}

static size_t literal_span(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && literal_char(p[i]))
        i++;
    return i;
}

/* Split `as` into A <ref> B with at most one reference; returns the group
 * number (-1: no reference, -2: anything more complex). */
static int split_as(const char *as, size_t *a_len, const char **b)
{
    const char *d = strchr(as, '$');
    if (!d) {
        *a_len = strlen(as);
        *b = as + *a_len;
        return -1;
    }
    const char *p = d + 1;
    bool brace = *p == '{';
    if (brace)
        p++;
    size_t k = 0;
    while (p[k] >= '0' && p[k] <= '9' && k < 3)
        k++;
    if (k == 0)
        return -2;
    const char *end = p + k;
    if (brace) {
        if (*end != '}')
            return -2;
        end++;
    } else if (rules__ident_char(*end) && *end != ':') {
        return -2; /* "$1x" names group "1x" in Go's syntax */
    }
    if (strchr(end, '$'))
        return -2;
    *a_len = (size_t)(d - as);
    *b = end;
    return atoi(p);
}

/*
 * Work out how to go from a served metric name back to its source series
 * name, for the common shapes; everything else is left to name scans. The
 * result is always checked with rules_name_serves() before use, so a shape
 * misread here can cost a lookup miss, never a wrong series.
 */
static void analyse_name(struct rules__ctx *c, struct rules_rule *r, const char *matches)
{
    size_t a_len;
    const char *b;
    int g = split_as(r->_name_as, &a_len, &b);
    if (r->_exact_name) {
        r->_inv_kind = 1;
        r->_inv_src = r->_exact_name;
        return;
    }
    if (g == -2)
        return;
    const char *m = matches;
    size_t ml = strlen(m);
    bool caret = ml && m[0] == '^', dollar = ml && m[ml - 1] == '$';
    const char *body = m + caret;
    size_t bl = ml - caret - dollar;
    size_t pl = literal_span(body, bl);
    if (ml == 0) {
        if (g != 0)
            return;
        pl = 0; /* ".*": the whole name */
    } else if (pl == bl) {
        /* ^literal$: the only name that can match */
        if (caret && dollar) {
            r->_inv_kind = 1;
            r->_inv_src = rules__strndup(c->s, body, bl);
        }
        return;
    } else {
        const char *grp = body + pl;
        size_t rest = bl - pl;
        if (rest < 4 || (memcmp(grp, "(.*)", 4) != 0 && memcmp(grp, "(.+)", 4) != 0))
            return;
        size_t sl = literal_span(grp + 4, rest - 4);
        if (sl != rest - 4 || (!caret && pl) || (!dollar && sl) || g != 1)
            return;
        r->_inv_p = rules__strndup(c->s, body, pl);
        r->_inv_s = rules__strndup(c->s, grp + 4, sl);
    }
    if (!r->_inv_p) {
        r->_inv_p = "";
        r->_inv_s = "";
    }
    r->_inv_kind = 2;
    r->_inv_a = rules__strndup(c->s, r->_name_as, a_len);
    r->_inv_b = rules__strdup(c->s, b);
}

static int parse_name(struct rules__ctx *c, struct rules_rule *r, const yaml_node_t *v)
{
    const char *matches = "", *as = "";
    if (!is_null(v)) {
        if (v->type != YAML_MAPPING_NODE)
            return rules__fail(c, "name must be a mapping {matches, as}");
        static const char *const keys[] = {"matches", "as", NULL};
        int rc = check_keys(c, v, keys, "name: ");
        if (rc < 0)
            return rc;
        if ((rc = get_str(c, field(c, v, "matches"), "name.matches", &matches)) < 0 ||
            (rc = get_str(c, field(c, v, "as"), "name.as", &as)) < 0)
            return rc;
    }
    uint32_t groups = 0;
    if (*matches) {
        char e[200];
        r->_name_re = rules__compile(c->s, matches, strlen(matches), false, e, sizeof(e));
        if (!r->_name_re)
            return rules__fail(c, "name.matches: bad regex '%s': %s", matches, e);
        pcre2_pattern_info(r->_name_re, PCRE2_INFO_CAPTURECOUNT, &groups);
    }
    if (!*as) {
        /* prometheus-adapter's default: the whole match, or the only group. */
        if (groups > 1)
            return rules__fail(c, "name: 'as' is required when name.matches '%s' has %u capture groups",
                               matches, groups);
        as = groups ? "$1" : "$0";
    }
    r->_name_as = as;
    analyse_name(c, r, matches);
    return 0;
}

static int parse_filters(struct rules__ctx *c, struct rules_rule *r, const yaml_node_t *v)
{
    if (is_null(v))
        return 0;
    if (v->type != YAML_SEQUENCE_NODE)
        return rules__fail(c, "seriesFilters must be a list");
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    struct rules_filter *f = rules__alloc(c->s, (n ? n : 1) * sizeof(*f));
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *it = node(c, v->data.sequence.items.start[i]);
        if (!it || it->type != YAML_MAPPING_NODE)
            return rules__fail(c, "seriesFilters[%zu] must be a mapping {is} or {isNot}", i);
        static const char *const keys[] = {"is", "isNot", NULL};
        char where[64];
        snprintf(where, sizeof(where), "seriesFilters[%zu]: ", i);
        int rc = check_keys(c, it, keys, where);
        if (rc < 0)
            return rc;
        const char *is, *is_not, *re;
        if ((rc = get_str(c, field(c, it, "is"), "seriesFilters is", &is)) < 0 ||
            (rc = get_str(c, field(c, it, "isNot"), "seriesFilters isNot", &is_not)) < 0)
            return rc;
        if (!*is == !*is_not)
            return rules__fail(c, "seriesFilters[%zu] must have exactly one of 'is' and 'isNot'", i);
        f[i].positive = *is != '\0';
        re = f[i].positive ? is : is_not;
        char e[200];
        f[i].re = rules__compile(c->s, re, strlen(re), false, e, sizeof(e));
        if (!f[i].re)
            return rules__fail(c, "seriesFilters[%zu]: bad regex '%s': %s", i, re, e);
    }
    r->_filters = f;
    r->_n_filters = n;
    return 0;
}

/* ---- rules ---- */

static int parse_rule(struct rules__ctx *c, const yaml_node_t *m, bool external)
{
    static const char *const keys[] = {"seriesQuery", "seriesFilters", "resources",
                                       "name",        "metricsQuery",  NULL};
    if (!m || m->type != YAML_MAPPING_NODE)
        return rules__fail(c, "a rule must be a mapping");
    const char *sq = NULL;
    int rc = get_str(c, field(c, m, "seriesQuery"), "seriesQuery", &sq);
    if (rc < 0)
        return rc;
    if (!*sq)
        return rules__fail(c, "seriesQuery is missing");
    c->sq = sq;
    if (field(c, m, "labelValueReplacements"))
        return rules__fail(c, "labelValueReplacements is not supported");
    if ((rc = check_keys(c, m, keys, "")) < 0)
        return rc;
    struct rules_rule *r = rules__add_rule(c->s);
    r->index = (unsigned)c->index;
    r->external = external;
    r->series_query = sq;
    bool ns_set = false, namespaced = true;
    if ((rc = rules__parse_series_query(c, r, sq)) < 0 ||
        (rc = parse_filters(c, r, field(c, m, "seriesFilters"))) < 0 ||
        (rc = parse_resources(c, r, field(c, m, "resources"), &ns_set, &namespaced)) < 0 ||
        (rc = parse_name(c, r, field(c, m, "name"))) < 0 ||
        (rc = get_str(c, field(c, m, "metricsQuery"), "metricsQuery", &r->query)) < 0 ||
        (rc = rules__parse_metrics_query(c, r, r->query)) < 0)
        return rc;
    for (size_t i = 0; i < r->_n_res; i++)
        if (strcmp(r->_res[i].res.resource, "namespaces") == 0 && !*r->_res[i].res.group)
            r->namespace_label = r->_res[i].label;
    if (external) {
        if (ns_set && !namespaced) {
            r->ns_mode = RULES_NS_NONE;
            r->namespace_label = NULL;
        } else if (r->namespace_label) {
            r->ns_mode = RULES_NS_EQUAL;
        } else {
            return rules__fail(
                c, "no label maps to the namespace resource: add resources.overrides for it (e.g. "
                   "namespace: {resource: namespace}) or set resources.namespaced: false");
        }
    } else {
        r->ns_mode = RULES_NS_EQUAL;
        if (r->_n_res == 0)
            return rules__fail(
                c, "resources maps no label to a Kubernetes resource, so the rule can serve nothing");
    }
    return 0;
}

static int parse_list(struct rules__ctx *c, const yaml_node_t *v, const char *list, bool external)
{
    if (is_null(v))
        return 0;
    if (v->type != YAML_SEQUENCE_NODE)
        return rules__fail(c, "%s must be a list", list);
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        c->list = list;
        c->index = (size_t)(it - v->data.sequence.items.start);
        c->sq = NULL;
        if (c->s->n_rules >= MAX_RULES)
            return rules__fail(c, "more than %d rules", MAX_RULES);
        int rc = parse_rule(c, node(c, *it), external);
        if (rc < 0)
            return rc;
    }
    c->list = NULL;
    return 0;
}

/* Custom rules come first in the set, then external ones: load both lists in
 * that order whatever their order in the file. */
static int parse_root(struct rules__ctx *c)
{
    yaml_node_t *root = yaml_document_get_root_node(c->doc);
    if (!root || is_null(root))
        return rules__fail(c, "the configuration is empty");
    if (root->type != YAML_MAPPING_NODE)
        return rules__fail(c, "the configuration must be a mapping with 'rules' and/or 'externalRules'");
    static const char *const keys[] = {"rules", "externalRules", "resourceRules", NULL};
    int rc = check_keys(c, root, keys, "top level: ");
    if (rc < 0)
        return rc;
    if (field(c, root, "resourceRules"))
        rules__warn(c->s, "resourceRules ignored: the adapter does not serve the resource metrics API");
    rc = parse_list(c, field(c, root, "rules"), "rules", false);
    if (rc < 0)
        return rc;
    if ((rc = parse_list(c, field(c, root, "externalRules"), "externalRules", true)) < 0)
        return rc;
    if (c->s->n_rules == 0)
        return rules__fail(c, "the configuration has no rules");
    return 0;
}

int rules_load_buffer(const char *data, size_t len, struct rules_set **out, char *errbuf, size_t errlen)
{
    char scratch[8];
    if (!errbuf || errlen == 0) {
        errbuf = scratch;
        errlen = sizeof(scratch);
    }
    errbuf[0] = '\0';
    if (len > RULES_FILE_MAX) {
        snprintf(errbuf, errlen, "configuration larger than %u bytes", RULES_FILE_MAX);
        return -E2BIG;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        fprintf(stderr, "rules: out of memory\n");
        abort();
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(errbuf, errlen, "bad YAML at line %zu column %zu: %s%s%s", parser.problem_mark.line + 1,
                 parser.problem_mark.column + 1, parser.problem ? parser.problem : "error",
                 parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return -EINVAL;
    }
    struct rules__ctx c = {rules__new_set(true), &doc, errbuf, errlen, NULL, 0, NULL};
    int rc = parse_root(&c);
    /* A second document in the stream would be silently ignored: refuse it. */
    if (rc == 0) {
        yaml_document_t next;
        if (!yaml_parser_load(&parser, &next)) {
            rc = rules__fail(&c, "bad YAML after the first document: %s",
                             parser.problem ? parser.problem : "error");
        } else {
            if (yaml_document_get_root_node(&next))
                rc = rules__fail(&c, "the file holds more than one YAML document");
            yaml_document_delete(&next);
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (rc < 0) {
        rules_free(c.s);
        return rc;
    }
    *out = c.s;
    return 0;
}

int rules_load_file(const char *path, struct rules_set **out, char *errbuf, size_t errlen)
{
    char scratch[8];
    if (!errbuf || errlen == 0) {
        errbuf = scratch;
        errlen = sizeof(scratch);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(errbuf, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    int e = fstat(fd, &st) < 0 ? errno : st.st_size > (off_t)RULES_FILE_MAX ? E2BIG : 0;
    if (e) {
        snprintf(errbuf, errlen, "%s: %s", path, e == E2BIG ? "file too large" : strerror(e));
        close(fd);
        return -e;
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fprintf(stderr, "rules: out of memory\n");
        abort();
    }
    for (;;) {
        if (len == cap) {
            if (cap > RULES_FILE_MAX) {
                snprintf(errbuf, errlen, "%s: file too large", path);
                free(buf);
                close(fd);
                return -E2BIG;
            }
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                fprintf(stderr, "rules: out of memory\n");
                abort();
            }
            buf = nb;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            e = errno;
            snprintf(errbuf, errlen, "%s: %s", path, strerror(e));
            free(buf);
            close(fd);
            return -e;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    char msg[RULES_ERR_MAX];
    int rc = rules_load_buffer(buf, len, out, msg, sizeof(msg));
    free(buf);
    if (rc < 0)
        snprintf(errbuf, errlen, "%s: %s", path, msg);
    return rc;
}
