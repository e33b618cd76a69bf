#ifndef ADAPTER_RULES_H
#define ADAPTER_RULES_H

/*
 * rules: which series the adapter serves, under which metric names, for which
 * Kubernetes objects, and how a read aggregates them.
 *
 * A rule set comes either from a prometheus-adapter configuration file (the
 * `rules:` and `externalRules:` lists, in the subset described below) or from
 * the built-in defaults used when no file is given:
 *
 *   - a series `x_total` (or any series whose metadata says counter) is served
 *     as metric `x` with sum(rate(x_total[2m])) by (object);
 *   - any other series `x` is served as `x` with sum(x) by (object);
 *   - objects come from the `namespace` and `pod` labels, plus any extra
 *     label -> resource overrides the operator passes;
 *   - every metric is also an external metric; a read in namespace `ns` sums
 *     the series whose `namespace` label is `ns` plus those with no
 *     `namespace` label at all (cluster-level series such as a queue length).
 *
 * The configuration subset (prometheus-adapter's own syntax, so an existing
 * file of this shape loads unchanged):
 *
 *   seriesQuery     PromQL series selector: `name`, `name{...}` or `{...}` with
 *                   =, !=, =~, !~ matchers; regexes fully anchored as in PromQL.
 *   seriesFilters   list of {is: re} / {isNot: re} on the series name, unanchored.
 *   resources       overrides: {label: {group, resource}}, template:
 *                   "<<.Resource>>", "kube_<<.Group>>_<<.Resource>>"...,
 *                   namespaced: false (external rules: no namespace restriction).
 *   name            matches: unanchored regex (default ".*"); as: "$1", "${1}",
 *                   "$name", literal text (default "$0" with no capture group,
 *                   "$1" with one, an error with more: prometheus-adapter's rule).
 *   metricsQuery    AGG(FN(<<.Series>>{<<.LabelMatchers>>[,m...]}[W])) by (<<.GroupBy>>)
 *                   AGG by (<<.GroupBy>>) (FN(...)), or without FN:
 *                   AGG(<<.Series>>{<<.LabelMatchers>>[,m...]}) by (<<.GroupBy>>);
 *                   AGG in sum/avg/max/min/count, FN in rate/irate/increase,
 *                   W any PromQL duration. External rules may group by a
 *                   literal label list or not group at all.
 *   resourceRules   (top level) ignored with a warning: the adapter does not
 *                   serve metrics.k8s.io.
 *   Anchors, aliases and merge keys ("<<: *base") work as go-yaml reads them.
 *
 * Anything else (histogram_quantile, arithmetic, offset, subqueries, unknown
 * template fields, labelValueReplacements, unknown keys) is a load error whose
 * message names the rule ("rules[2] (seriesQuery '{...}'): ...").
 *
 * Evaluation follows prometheus-adapter: the seriesQuery and the filters decide
 * which series a rule discovers (and, with a config, which series ingest keeps);
 * a read then selects, among the series of the source metric name, those that
 * satisfy the object matchers (namespace, object name) and the metricsQuery's
 * extra matchers (rules_rule.extra), which is why stock configs repeat
 * container!="POD" inside the metricsQuery.
 *
 * Resources: templates and overrides are resolved against a built-in table of
 * Kubernetes resources (pods, namespaces, nodes, services, deployments,
 * statefulsets, daemonsets, replicasets, jobs, cronjobs, ingresses, hpas,
 * pdbs, pvcs...), standing in for prometheus-adapter's RESTMapper. A template
 * therefore only yields resources in that table; overrides may name any
 * resource (an unknown one is taken as namespaced, plural = name + "s" unless
 * it already ends in "s").
 *
 * Lifetime and threads: a set is immutable once built. Every function that
 * takes a const set is safe to call from any thread at once, inside an RCU
 * read-side critical section (regexes match into a per-thread block made on
 * the thread's first match and freed at thread exit; nothing else allocates
 * except rules_disc_*). The user publishes a set with rcu_assign_pointer(),
 * reads it with rcu_dereference(), and frees the old one with rules_free()
 * after a grace period.
 *
 * Cost, counted with `valgrind --tool=callgrind build/bin/test_rules_threads
 * --bench tests/adapter/rules/stock.yaml` (and `--bench --defaults`), which
 * is repeatable where timings on this shared machine are not: with the
 * defaults ~560 instructions per rules_series_wanted() and ~630 per
 * rules_lookup_custom(); with prometheus-adapter's six stock rules ~6,000 and
 * ~13,000 (1-3 us on a loaded 2-core machine). So ingest calls
 * rules_series_wanted() when it creates a series, never per sample.
 *
 * Errors are negative errno values: -EINVAL for a configuration the adapter
 * refuses (errbuf says why), -ENOENT/-EACCES/... for a file that cannot be
 * read, -E2BIG for a file over RULES_FILE_MAX. Out-parameters are written only
 * on success.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RULES_FILE_MAX (4u << 20) /* config files larger than this are refused */
#define RULES_NAME_MAX 256        /* longest served metric name, with its NUL */
#define RULES_ERR_MAX  512        /* a good size for errbuf */

struct rules_set;

enum rules_agg { RULES_AGG_SUM, RULES_AGG_AVG, RULES_AGG_MAX, RULES_AGG_MIN, RULES_AGG_COUNT };
enum rules_fn { RULES_FN_NONE, RULES_FN_RATE, RULES_FN_IRATE, RULES_FN_INCREASE };
enum rules_op { RULES_OP_EQ, RULES_OP_NEQ, RULES_OP_RE, RULES_OP_NRE };

/* What a series' metadata says its type is (remote-write metadata). */
enum rules_type { RULES_TYPE_UNKNOWN, RULES_TYPE_COUNTER, RULES_TYPE_GAUGE, RULES_TYPE_OTHER };

/* How an external read in namespace ns selects series. */
enum rules_ns_mode {
    RULES_NS_NONE,         /* namespace ignored (`namespaced: false`) */
    RULES_NS_EQUAL,        /* namespace label == ns (prometheus-adapter's external rules) */
    RULES_NS_EQUAL_OR_NONE /* namespace label == ns, or no namespace label (the defaults) */
};

/* One label of a series; a label set is an array of these sorted by name,
 * including __name__, all strings NUL-terminated. */
struct rules_label {
    const char *name;
    const char *value;
};

/* A label matcher (PromQL semantics: a missing label has the value ""). */
struct rules_matcher {
    const char *name;
    const char *value;
    enum rules_op op;
    void *_re; /* private: the compiled, fully anchored regex for =~ and !~ */
};

/* A Kubernetes group-resource. */
struct rules_resource {
    const char *group;    /* "" for the core group, else "apps", "batch"... */
    const char *resource; /* plural, lowercase: "pods", "deployments" */
    bool namespaced;      /* the resource's own scope: pods yes, nodes and namespaces no */
};

/* One rule, read-only. Fields not described are private. */
struct rules_rule {
    unsigned index;           /* position in its list in the file (0-based) */
    bool external;            /* from externalRules (or a default external rule) */
    const char *series_query; /* the seriesQuery text, for messages */
    const char *query;        /* the metricsQuery text, for messages */

    /* The evaluation: AGG(FN(series{object matchers, extra...}[window])) by (group_by). */
    enum rules_agg agg;
    enum rules_fn fn;
    int64_t window_ms; /* 0 when fn is RULES_FN_NONE */
    size_t n_extra;
    const struct rules_matcher *extra; /* the metricsQuery's own matchers */
    size_t n_group_by;                 /* external rules only: literal `by (a, b)` labels */
    const char *const *group_by;

    /* The label naming the namespace (NULL if none maps to namespaces); for
     * external rules, how the request's namespace selects series. */
    enum rules_ns_mode ns_mode;
    const char *namespace_label;

    /* private */
    const char *_exact_name; /* __name__ fixed by the seriesQuery, or NULL */
    size_t _n_sel;
    const struct rules_matcher *_sel; /* seriesQuery matchers, __name__ ones included */
    size_t _n_filters;
    const struct rules_filter *_filters;
    void *_name_re;       /* name.matches, NULL = ".*" */
    const char *_name_as; /* expansion template */
    /* Inverting the name rule (served metric -> source series name):
     * _inv_kind 0: not invertible; 1: the source is always _inv_src;
     * 2: metric = _inv_a X _inv_b and source = _inv_p X _inv_s. */
    int _inv_kind;
    const char *_inv_src, *_inv_a, *_inv_b, *_inv_p, *_inv_s;
    int _need_type;    /* defaults: 0 any, 1 counter only, 2 anything but counters */
    bool _strip_total; /* defaults: drop a trailing _total */
    size_t _n_res;
    const struct rules_label_res *_res; /* label -> resource, sorted by label */
};

/* ---- building and freeing ---- */

/*
 * rules_load_file: build a set from a prometheus-adapter configuration file.
 * @path: the file.
 * @out: receives the set on success; the caller frees it with rules_free().
 * @errbuf, @errlen: receive a one-line message on failure (may be NULL).
 * Returns 0, -EINVAL (bad YAML or outside the supported subset), -E2BIG, or
 * the negative errno of open/read. Not for read-side critical sections (it
 * does file I/O).
 */
int rules_load_file(const char *path, struct rules_set **out, char *errbuf, size_t errlen);

/* rules_load_buffer: the same from memory (the bytes need not be NUL-terminated). */
int rules_load_buffer(const char *data, size_t len, struct rules_set **out, char *errbuf, size_t errlen);

/*
 * rules_default: the built-in rules (see the top of this file).
 * @extra_overrides: NULL, or "label=resource[.group],..." naming more object
 *   labels than namespace and pod, e.g. "node=nodes,deployment=deployments.apps"
 *   (singular names are accepted; a known resource needs no group).
 * Returns 0 or -EINVAL for a malformed @extra_overrides (errbuf says why).
 */
int rules_default(const char *extra_overrides, struct rules_set **out, char *errbuf, size_t errlen);

/* rules_free: free a set and everything it owns. NULL is a no-op. No reader may
 * still hold it: call after a grace period once it has been unpublished. */
void rules_free(struct rules_set *set);

/* Whether the set came from a file (true) or is the defaults (false). */
bool rules_is_config(const struct rules_set *set);
/* Warnings collected while loading (one per line), or NULL. */
const char *rules_warnings(const struct rules_set *set);
/* All rules, custom then external. */
size_t rules_count(const struct rules_set *set);
const struct rules_rule *rules_get(const struct rules_set *set, size_t i);

/* ---- series side: ingest and discovery ---- */

/* One way a series is used: by @rule, served as @metric. */
struct rules_use {
    const struct rules_rule *rule;
    char metric[RULES_NAME_MAX];
};

/*
 * rules_series_uses: which rules discover a series and the metric name each
 * serves it under. @labels: the series' labels sorted by name, __name__
 * included; @type: from metadata, RULES_TYPE_UNKNOWN when none. Writes up to
 * @max uses to @out (may be NULL when @max is 0) and returns how many there
 * are in total. A series without __name__ has no use.
 */
size_t rules_series_uses(const struct rules_set *set, const struct rules_label *labels, size_t n,
                         enum rules_type type, struct rules_use *out, size_t max);

/*
 * rules_series_wanted: whether any rule can use the series. Ingest drops the
 * others when the set is a config (rules_is_config()); the defaults want
 * every series with a __name__.
 */
bool rules_series_wanted(const struct rules_set *set, const struct rules_label *labels, size_t n,
                         enum rules_type type);

/*
 * rules_label_resource: the resource a label names under @rule (through its
 * overrides or template), or NULL.
 */
const struct rules_resource *rules_label_resource(const struct rules_rule *rule, const char *label);

/*
 * rules_object_label: the label that names objects of @resource under @rule
 * (e.g. "pod" for pods, "namespace" for namespaces), or NULL if the rule does
 * not serve that resource. @resource is a path segment, "pods" or
 * "deployments.apps"; singular names are accepted for known resources.
 */
const char *rules_object_label(const struct rules_rule *rule, const char *resource);

/* ---- read side: what to evaluate for a request ---- */

/* One rule that may serve a request, and where its source series are. */
struct rules_target {
    const struct rules_rule *rule;
    const char *object_label;    /* custom: label naming the requested objects; NULL for external */
    const char *namespace_label; /* label naming the namespace, NULL if the rule has none */
    /* The one series name the rule can read for this metric, when it can be
     * derived from the rule (nearly always); "" otherwise, and the caller
     * tests its metric names with rules_name_serves(). */
    char source[RULES_NAME_MAX];
};

/*
 * rules_lookup_custom: the candidates for custom metric @metric on
 * @resource ("pods", "deployments.apps", "namespaces"...): every rule that
 * maps a label to that resource and would serve @metric from some series
 * name, with that name (the source), in configuration order (for the
 * defaults: counters before gauges). Several rules usually qualify (a
 * template gauge rule offers `m` itself, a counter rule offers `m_total`);
 * the caller takes the first whose source exists in the store, as
 * prometheus-adapter serves whatever discovery found. A rule may appear twice
 * (the defaults serve `x` from `x_total`, or from `x` typed counter). Once
 * the caller knows the source's type from the store it confirms the target
 * with rules_name_serves(t->rule, t->source, type, metric); everything that
 * does not depend on the type has already been checked.
 * Writes up to @max targets and returns how many there are.
 */
size_t rules_lookup_custom(const struct rules_set *set, const char *resource, const char *metric,
                           struct rules_target *out, size_t max);

/* rules_lookup_external: the same for external metric @metric. */
size_t rules_lookup_external(const struct rules_set *set, const char *metric, struct rules_target *out,
                             size_t max);

/*
 * rules_name_serves: whether series named @series_name (of metadata type
 * @type) are served by @rule as @metric: the name passes the seriesQuery's
 * __name__ matchers, the filters and name.matches, and expands to @metric.
 */
bool rules_name_serves(const struct rules_rule *rule, const char *series_name, enum rules_type type,
                       const char *metric);

/*
 * rules_series_selected: whether a series of the source name takes part in a
 * read by @rule for objects whose @object_label is @object (NULL: any object,
 * but the label must be present and non-empty) in namespace @ns (NULL: no
 * namespace restriction), i.e. it satisfies the object matchers and the
 * rule's extra matchers. The caller adds the request's labelSelector /
 * metricLabelSelector. For the namespaces resource (a namespace's own
 * metrics) pass @ns NULL and the namespace as @object. A custom read with @ns
 * fails for a rule that has no namespace label. External rules ignore @object
 * and apply ns_mode with @ns.
 */
bool rules_series_selected(const struct rules_target *t, const struct rules_label *labels, size_t n,
                           const char *ns, const char *object);

/* rules_matchers_match: whether a label set satisfies every matcher. */
bool rules_matchers_match(const struct rules_matcher *m, size_t nm, const struct rules_label *labels,
                          size_t n);

/* rules_label_value: the value of @name in a sorted label set, or NULL. */
const char *rules_label_value(const struct rules_label *labels, size_t n, const char *name);

/* ---- discovery ---- */

/* One (resource, metric) the rules can serve; resource is NULL for external. */
struct rules_served {
    const struct rules_resource *resource;
    const char *metric;
    bool namespaced; /* as listed in discovery: the series has a namespace label,
                        and the resource is not namespaces itself */
};

struct rules_disc;

/*
 * A discovery pass: feed it the series present, read back the sorted,
 * de-duplicated (resource, metric) pairs. One pass belongs to one thread; it
 * allocates (one entry per distinct pair), so the caller copies what it
 * needs out of the store rather than holding a read-side section across a
 * long pass. The entries point into @set, which must outlive the pass.
 */
struct rules_disc *rules_disc_new(const struct rules_set *set);
/* Add one present series (labels sorted, __name__ included; same rules as
 * rules_series_uses()). Adding a series twice changes nothing. */
void rules_disc_add(struct rules_disc *d, const struct rules_label *labels, size_t n, enum rules_type type);
/* The result, sorted by (external, group, resource, metric), without duplicates.
 * Valid until the next rules_disc_add() or rules_disc_free(). */
size_t rules_disc_result(struct rules_disc *d, const struct rules_served **out);
void rules_disc_free(struct rules_disc *d);

/* Names for messages and metrics. */
const char *rules_agg_name(enum rules_agg a);
const char *rules_fn_name(enum rules_fn f);

#endif /* ADAPTER_RULES_H */
