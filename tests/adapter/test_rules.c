/*
 * Unit tests of the rules module: a prometheus-adapter-style configuration
 * with every supported construct (tests/adapter/rules/adapter-config.yaml),
 * the stock prometheus-adapter configuration shape, every load error with the
 * rule it names, and the built-in defaults.
 *
 * Usage: test_rules <dir holding the YAML test configs> <example config>
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "check.h"

static const char *cfg_dir;
static const char *example_path;

/* A label set from "name=value" strings, sorted by name as ingest gives it. */
struct lset {
    struct rules_label l[16];
    char buf[16][128];
    size_t n;
};

static int cmp_label(const void *a, const void *b)
{
    return strcmp(((const struct rules_label *)a)->name, ((const struct rules_label *)b)->name);
}

static struct lset *mk(struct lset *s, const char *const *kv)
{
    s->n = 0;
    for (; *kv; kv++) {
        snprintf(s->buf[s->n], sizeof(s->buf[0]), "%s", *kv);
        char *eq = strchr(s->buf[s->n], '=');
        CHECK(eq);
        *eq = '\0';
        s->l[s->n].name = s->buf[s->n];
        s->l[s->n].value = eq + 1;
        s->n++;
    }
    qsort(s->l, s->n, sizeof(s->l[0]), cmp_label);
    return s;
}

#define LS(...) mk(&(struct lset){0}, (const char *const[]){__VA_ARGS__, NULL})

static struct rules_set *load(const char *file)
{
    char path[512], err[RULES_ERR_MAX];
    snprintf(path, sizeof(path), "%s/%s", cfg_dir, file);
    struct rules_set *s = NULL;
    int rc = rules_load_file(path, &s, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "load %s: %s\n", path, err);
    CHECK_EQ(rc, 0);
    return s;
}

/* The one use of a series (checks there is exactly one). */
static struct rules_use one_use(const struct rules_set *s, struct lset *ls, enum rules_type type)
{
    struct rules_use u[4];
    size_t n = rules_series_uses(s, ls->l, ls->n, type, u, 4);
    if (n != 1)
        for (size_t i = 0; i < n && i < 4; i++)
            fprintf(stderr, "use: %s[%u] as %s\n", u[i].rule->external ? "externalRules" : "rules",
                    u[i].rule->index, u[i].metric);
    CHECK_EQ(n, 1);
    return u[0];
}

static void test_config_series(void)
{
    struct rules_set *s = load("adapter-config.yaml");
    CHECK(rules_is_config(s));
    CHECK_EQ(rules_count(s), 7);
    CHECK_HAS(rules_warnings(s), "resourceRules ignored");

    /* rule 0: ^container_(.*)_seconds_total$ with the implicit $1 */
    struct rules_use u = one_use(
        s, LS("__name__=container_cpu_usage_seconds_total", "container=app", "namespace=ns1", "pod=p1"), 0);
    CHECK_EQ(u.rule->index, 0);
    CHECK_STR(u.metric, "cpu_usage");
    CHECK(!u.rule->external);
    CHECK_EQ(u.rule->agg, RULES_AGG_SUM);
    CHECK_EQ(u.rule->fn, RULES_FN_RATE);
    CHECK_EQ(u.rule->window_ms, 300000);
    CHECK_EQ(u.rule->n_extra, 1);
    CHECK_STR(u.rule->extra[0].name, "container");
    CHECK_STR(u.rule->extra[0].value, "POD");
    CHECK_EQ(u.rule->extra[0].op, RULES_OP_NEQ);
    const struct rules_resource *res = rules_label_resource(u.rule, "pod");
    CHECK(res);
    CHECK_STR(res->resource, "pods");
    CHECK_STR(res->group, "");
    CHECK(res->namespaced);
    res = rules_label_resource(u.rule, "namespace");
    CHECK_STR(res->resource, "namespaces");
    CHECK(!res->namespaced);
    CHECK(!rules_label_resource(u.rule, "container"));

    /* container="POD" fails the seriesQuery: no rule wants it */
    struct lset *pod =
        LS("__name__=container_cpu_usage_seconds_total", "container=POD", "namespace=ns1", "pod=p1");
    CHECK_EQ(rules_series_uses(s, pod->l, pod->n, 0, NULL, 0), 0);
    CHECK(!rules_series_wanted(s, pod->l, pod->n, 0));
    /* neither does a series without a namespace */
    struct lset *nons = LS("__name__=container_cpu_usage_seconds_total", "container=app", "pod=p1");
    CHECK(!rules_series_wanted(s, nons->l, nons->n, 0));

    /* rule 1: gauge, filtered with isNot, "agg by (...) (...)" form, two extra matchers */
    u = one_use(
        s, LS("__name__=container_memory_working_set_bytes", "container=app", "namespace=ns1", "pod=p1"), 0);
    CHECK_EQ(u.rule->index, 1);
    CHECK_STR(u.metric, "memory_working_set_bytes");
    CHECK_EQ(u.rule->agg, RULES_AGG_MAX);
    CHECK_EQ(u.rule->fn, RULES_FN_NONE);
    CHECK_EQ(u.rule->window_ms, 0);
    CHECK_EQ(u.rule->n_extra, 2);
    CHECK_STR(u.rule->extra[1].name, "image");
    CHECK_EQ(u.rule->extra[1].op, RULES_OP_RE);
    CHECK_STR(rules_label_resource(u.rule, "pod")->resource, "pods"); /* "pods" accepted as written */

    /* rule 2: template <<.Resource>>: pod, namespace and node labels all map */
    u = one_use(s, LS("__name__=queue_depth", "namespace=ns1", "pod=p1", "node=n1", "job=x"), 0);
    CHECK_EQ(u.rule->index, 2);
    CHECK_STR(u.metric, "queue_depth");
    CHECK_EQ(u.rule->agg, RULES_AGG_AVG);
    CHECK_STR(rules_label_resource(u.rule, "node")->resource, "nodes");
    CHECK_STR(rules_label_resource(u.rule, "deployment")->group, "apps");
    CHECK_STR(rules_label_resource(u.rule, "job")->group, "batch"); /* as a RESTMapper would */
    CHECK_STR(rules_object_label(u.rule, "nodes"), "node");
    CHECK_STR(rules_object_label(u.rule, "deployments.apps"), "deployment");
    CHECK(!rules_object_label(u.rule, "deployments.extensions"));

    /* rule 3: ${1}_per_second, increase over 1m30s; rule 2 drops it (isNot .*_total$) */
    u = one_use(s, LS("__name__=http_requests_total", "method=GET", "namespace=ns1", "pod=p1"), 0);
    CHECK_EQ(u.rule->index, 3);
    CHECK_STR(u.metric, "http_requests_per_second");
    CHECK_EQ(u.rule->fn, RULES_FN_INCREASE);
    CHECK_EQ(u.rule->window_ms, 90000);

    /* rule 4: kube_<<.Group>>_<<.Resource>> */
    u = one_use(
        s, LS("__name__=kube_deployment_status_replicas", "kube__namespace=ns1", "kube_apps_deployment=web"),
        0);
    CHECK_EQ(u.rule->index, 4);
    CHECK_STR(u.metric, "kube_deployment_status_replicas");
    CHECK_EQ(u.rule->agg, RULES_AGG_MIN);
    CHECK_EQ(u.rule->fn, RULES_FN_IRATE);
    CHECK_EQ(u.rule->window_ms, 60000);
    CHECK_STR(rules_label_resource(u.rule, "kube_apps_deployment")->resource, "deployments");
    CHECK_STR(rules_label_resource(u.rule, "kube__pod")->resource, "pods");
    CHECK_STR(rules_object_label(u.rule, "deployments"), "kube_apps_deployment");

    /* external 0: by (name), namespace through its override; rule 2 (any
     * namespaced gauge) serves the same series as a custom metric */
    struct rules_use two[4];
    struct lset *lag = LS("__name__=queue_consumer_lag", "name=orders", "namespace=ns1");
    CHECK_EQ(rules_series_uses(s, lag->l, lag->n, 0, two, 4), 2);
    CHECK_EQ(two[0].rule->index, 2);
    CHECK(!two[0].rule->external);
    u = two[1];
    CHECK(u.rule->external);
    CHECK_EQ(u.rule->index, 0);
    CHECK_STR(u.metric, "queue_consumer_lag");
    CHECK_EQ(u.rule->n_group_by, 1);
    CHECK_STR(u.rule->group_by[0], "name");
    CHECK_EQ(u.rule->ns_mode, RULES_NS_EQUAL);
    CHECK_STR(u.rule->namespace_label, "namespace");

    /* external 1: namespaced: false, renamed */
    u = one_use(s, LS("__name__=sqs_messages_visible", "queue=q1"), 0);
    CHECK(u.rule->external);
    CHECK_STR(u.metric, "queue_messages_visible");
    CHECK_EQ(u.rule->agg, RULES_AGG_COUNT);
    CHECK_EQ(u.rule->ns_mode, RULES_NS_NONE);
    CHECK_EQ(u.rule->n_group_by, 0);

    /* nothing wants an unrelated series */
    struct lset *other = LS("__name__=up", "job=x");
    CHECK(!rules_series_wanted(s, other->l, other->n, 0));
    rules_free(s);
}

static void test_config_lookup(void)
{
    struct rules_set *s = load("adapter-config.yaml");
    struct rules_target t[8];

    /* Candidates in configuration order, each with the one source series
     * name that would serve it; the store decides which exist. */
    size_t n = rules_lookup_custom(s, "pods", "cpu_usage", t, 8);
    CHECK_EQ(n, 3);
    CHECK_EQ(t[1].rule->index, 1);
    CHECK_STR(t[1].source, "container_cpu_usage");
    CHECK_EQ(t[2].rule->index, 2);
    CHECK_STR(t[2].source, "cpu_usage");
    CHECK_EQ(t[0].rule->index, 0);
    CHECK_STR(t[0].source, "container_cpu_usage_seconds_total");
    CHECK_STR(t[0].object_label, "pod");
    CHECK_STR(t[0].namespace_label, "namespace");
    CHECK(rules_name_serves(t[0].rule, t[0].source, RULES_TYPE_UNKNOWN, "cpu_usage"));

    /* object selection: namespace, object name, the extra container!="POD" */
    struct lset *a =
        LS("__name__=container_cpu_usage_seconds_total", "container=app", "namespace=ns1", "pod=p1");
    struct lset *b =
        LS("__name__=container_cpu_usage_seconds_total", "container=POD", "namespace=ns1", "pod=p1");
    CHECK(rules_series_selected(&t[0], a->l, a->n, "ns1", "p1"));
    CHECK(rules_series_selected(&t[0], a->l, a->n, "ns1", NULL));
    CHECK(!rules_series_selected(&t[0], a->l, a->n, "ns2", "p1"));
    CHECK(!rules_series_selected(&t[0], a->l, a->n, "ns1", "p2"));
    CHECK(!rules_series_selected(&t[0], b->l, b->n, "ns1", "p1"));

    /* namespaces resource: the namespace is the object */
    n = rules_lookup_custom(s, "namespaces", "cpu_usage", t, 8);
    CHECK_EQ(n, 3);
    CHECK_STR(t[0].object_label, "namespace");
    CHECK(rules_series_selected(&t[0], a->l, a->n, NULL, "ns1"));
    CHECK(!rules_series_selected(&t[0], a->l, a->n, NULL, "ns2"));

    /* for nodes only the template rule applies */
    CHECK_EQ(rules_lookup_custom(s, "nodes", "cpu_usage", t, 8), 1);
    CHECK_EQ(t[0].rule->index, 2);
    CHECK_STR(t[0].object_label, "node");
    /* a metric rule 2's filter refuses has no candidate there */
    CHECK_EQ(rules_lookup_custom(s, "nodes", "errors_total", t, 8), 0);
    CHECK_EQ(rules_lookup_custom(s, "services", "cpu_usage", t, 8), 1);
    CHECK_EQ(rules_lookup_custom(s, "widgets", "cpu_usage", t, 8), 0);

    /* ${1}_per_second inverted to its source; rule 2 also offers it as a gauge name */
    n = rules_lookup_custom(s, "pods", "http_requests_per_second", t, 8);
    CHECK_EQ(n, 4);
    CHECK_STR(t[0].source, "container_http_requests_per_second_seconds_total");
    CHECK_STR(t[1].source, "container_http_requests_per_second");
    CHECK_EQ(t[2].rule->index, 2);
    CHECK_STR(t[2].source, "http_requests_per_second");
    CHECK_EQ(t[3].rule->index, 3);
    CHECK_STR(t[3].source, "http_requests_total");
    CHECK_EQ(t[3].rule->fn, RULES_FN_INCREASE);
    CHECK_EQ(rules_lookup_custom(s, "pods", "http_requests_per_second", t, 2), 4); /* count beyond max */

    /* gauge via the template, on nodes */
    n = rules_lookup_custom(s, "nodes", "queue_depth", t, 8);
    CHECK_EQ(n, 1);
    CHECK_STR(t[0].source, "queue_depth");
    CHECK_STR(t[0].object_label, "node");

    /* the fixed name from the seriesQuery, group-qualified resource */
    n = rules_lookup_custom(s, "deployments.apps", "kube_deployment_status_replicas", t, 8);
    CHECK_EQ(n, 2); /* rule 2's template also maps "deployment" */
    CHECK_EQ(t[1].rule->index, 4);
    CHECK_STR(t[1].source, "kube_deployment_status_replicas");
    CHECK_STR(t[1].object_label, "kube_apps_deployment");
    CHECK_STR(t[1].namespace_label, "kube__namespace");

    /* external */
    n = rules_lookup_external(s, "queue_consumer_lag", t, 8);
    CHECK_EQ(n, 2); /* externalRules[1] would read sqs_consumer_lag as queue_consumer_lag */
    CHECK_STR(t[1].source, "sqs_consumer_lag");
    CHECK_STR(t[0].source, "queue_consumer_lag");
    CHECK(!t[0].object_label);
    struct lset *q1 = LS("__name__=queue_consumer_lag", "name=orders", "namespace=ns1");
    struct lset *q2 = LS("__name__=queue_consumer_lag", "name=orders");
    CHECK(rules_series_selected(&t[0], q1->l, q1->n, "ns1", NULL));
    CHECK(!rules_series_selected(&t[0], q1->l, q1->n, "ns2", NULL));
    CHECK(!rules_series_selected(&t[0], q2->l, q2->n, "ns1", NULL));

    n = rules_lookup_external(s, "queue_messages_visible", t, 8);
    CHECK_EQ(n, 1);
    CHECK_STR(t[0].source, "sqs_messages_visible");
    struct lset *sq = LS("__name__=sqs_messages_visible", "queue=q1");
    CHECK(rules_series_selected(&t[0], sq->l, sq->n, "any", NULL));
    CHECK_EQ(rules_lookup_external(s, "cpu_usage", t, 8), 0);
    rules_free(s);
}

static const struct rules_served *find_served(const struct rules_served *v, size_t n, const char *resource,
                                              const char *metric)
{
    for (size_t i = 0; i < n; i++) {
        bool ext = v[i].resource == NULL;
        if ((resource == NULL) != ext || strcmp(v[i].metric, metric) != 0)
            continue;
        if (ext || strcmp(v[i].resource->resource, resource) == 0)
            return &v[i];
    }
    return NULL;
}

static void test_config_discovery(void)
{
    struct rules_set *s = load("adapter-config.yaml");
    struct rules_disc *d = rules_disc_new(s);
    struct lset *in[] = {
        LS("__name__=container_cpu_usage_seconds_total", "container=app", "namespace=ns1", "pod=p1"),
        LS("__name__=container_cpu_usage_seconds_total", "container=app", "namespace=ns1", "pod=p2"),
        LS("__name__=http_requests_total", "namespace=ns1", "pod=p1"),
        LS("__name__=queue_depth", "namespace=ns1", "node=n1"),
        LS("__name__=queue_consumer_lag", "name=orders", "namespace=ns1"),
        LS("__name__=sqs_messages_visible", "queue=q1"),
        LS("__name__=up", "job=x"),
    };
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
        rules_disc_add(d, in[i]->l, in[i]->n, 0);
    const struct rules_served *v;
    size_t n = rules_disc_result(d, &v);
    for (size_t i = 0; i < n; i++)
        printf("  served: %s%s%s/%s%s\n", v[i].resource ? v[i].resource->resource : "external",
               v[i].resource && *v[i].resource->group ? "." : "", v[i].resource ? v[i].resource->group : "",
               v[i].metric, v[i].namespaced ? " (namespaced)" : "");
    CHECK_EQ(n, 9);
    CHECK(find_served(v, n, "pods", "cpu_usage")->namespaced);
    CHECK(!find_served(v, n, "namespaces", "cpu_usage")->namespaced);
    CHECK(find_served(v, n, "pods", "http_requests_per_second"));
    CHECK(find_served(v, n, "namespaces", "http_requests_per_second"));
    CHECK(find_served(v, n, "nodes", "queue_depth")->namespaced); /* upstream: the series has a namespace */
    CHECK(find_served(v, n, "namespaces", "queue_depth"));
    CHECK(!find_served(v, n, "pods", "queue_depth"));
    CHECK(find_served(v, n, NULL, "queue_consumer_lag"));
    CHECK(find_served(v, n, NULL, "queue_messages_visible"));
    /* sorted: custom before external, then group, resource, metric */
    CHECK(v[n - 1].resource == NULL && v[0].resource != NULL);
    rules_disc_free(d);
    rules_free(s);
}

static void test_stock_config(void)
{
    struct rules_set *s = load("stock.yaml");
    CHECK_EQ(rules_count(s), 6);
    CHECK(!rules_warnings(s));
    struct rules_use u[4];
    struct lset *cpu =
        LS("__name__=container_cpu_usage_seconds_total", "container=app", "namespace=ns1", "pod=p1");
    CHECK_EQ(rules_series_uses(s, cpu->l, cpu->n, 0, u, 4), 1);
    CHECK_STR(u[0].metric, "cpu_usage");
    struct lset *net =
        LS("__name__=container_network_receive_bytes_total", "container=app", "namespace=ns1", "pod=p1");
    CHECK_EQ(rules_series_uses(s, net->l, net->n, 0, u, 4), 1);
    CHECK_STR(u[0].metric, "network_receive_bytes");
    CHECK_EQ(u[0].rule->index, 1);
    struct lset *mem = LS("__name__=container_memory_rss", "container=app", "namespace=ns1", "pod=p1");
    CHECK_EQ(rules_series_uses(s, mem->l, mem->n, 0, u, 4), 1);
    CHECK_STR(u[0].metric, "memory_rss");
    struct lset *req = LS("__name__=http_requests_total", "namespace=ns1", "pod=p1", "service=web");
    CHECK_EQ(rules_series_uses(s, req->l, req->n, 0, u, 4), 1);
    CHECK_STR(u[0].metric, "http_requests");
    CHECK_EQ(u[0].rule->index, 4);
    CHECK_EQ(u[0].rule->window_ms, 300000);
    /* _seconds_total outside cAdvisor: rules 4 (filter is unanchored .*_seconds_total: excluded) and 5 */
    struct lset *lat = LS("__name__=job_duration_seconds_total", "namespace=ns1", "pod=p1");
    CHECK_EQ(rules_series_uses(s, lat->l, lat->n, 0, u, 4), 1);
    CHECK_STR(u[0].metric, "job_duration");
    CHECK_EQ(u[0].rule->index, 5);

    struct rules_target t[8];
    CHECK_EQ(rules_lookup_custom(s, "services", "http_requests", t, 8), 3); /* rules 3, 4 and 5 */
    CHECK_STR(t[2].source, "http_requests_seconds_total");
    CHECK_STR(t[1].source, "http_requests_total");
    CHECK_STR(t[1].object_label, "service");
    rules_free(s);
}

static void test_example_config(void)
{
    char err[RULES_ERR_MAX];
    struct rules_set *s = NULL;
    int rc = rules_load_file(example_path, &s, err, sizeof(err));
    if (rc)
        fprintf(stderr, "%s\n", err);
    CHECK_EQ(rc, 0);
    CHECK(rules_count(s) >= 3);
    rules_free(s);
}

/* YAML merge keys, as go-yaml (and so prometheus-adapter) reads them. */
static void test_merge_keys(void)
{
    static const char yaml[] = "rules:\n"
                               "- &base\n"
                               "  seriesQuery: '{__name__=~\"^a_.*\",namespace!=\"\"}'\n"
                               "  resources:\n"
                               "    overrides: &ov\n"
                               "      namespace: {resource: namespace}\n"
                               "      pod: {resource: pod}\n"
                               "  name: {matches: \"^a_(.*)$\"}\n"
                               "  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)\n"
                               "- <<: *base\n"
                               "  seriesQuery: '{__name__=~\"^b_.*\",namespace!=\"\"}'\n"
                               "  name: {matches: \"^b_(.*)$\", as: \"b_$1\"}\n"
                               "  resources:\n"
                               "    overrides:\n"
                               "      <<: *ov\n"
                               "      pod: {group: apps, resource: deployment}\n";
    char err[RULES_ERR_MAX];
    struct rules_set *s = NULL;
    int rc = rules_load_buffer(yaml, sizeof(yaml) - 1, &s, err, sizeof(err));
    if (rc)
        fprintf(stderr, "%s\n", err);
    CHECK_EQ(rc, 0);
    CHECK_EQ(rules_count(s), 2);
    const struct rules_rule *r = rules_get(s, 1);
    CHECK_EQ(r->agg, RULES_AGG_SUM);                                    /* metricsQuery merged */
    CHECK_STR(rules_label_resource(r, "pod")->resource, "deployments"); /* own key wins */
    CHECK_STR(rules_label_resource(r, "namespace")->resource, "namespaces");
    struct rules_use u[2];
    struct lset *b = LS("__name__=b_x", "namespace=ns", "pod=web");
    CHECK_EQ(rules_series_uses(s, b->l, b->n, 0, u, 2), 1);
    CHECK_STR(u[0].metric, "b_x");
    rules_free(s);
}

/* Load @yaml and expect -EINVAL with every needle in the message. */
static void expect_error(const char *yaml, const char *n1, const char *n2)
{
    char err[RULES_ERR_MAX];
    struct rules_set *s = (struct rules_set *)0x1;
    int rc = rules_load_buffer(yaml, strlen(yaml), &s, err, sizeof(err));
    if (rc != -EINVAL)
        fprintf(stderr, "no error for:\n%s\n", yaml);
    CHECK_EQ(rc, -EINVAL);
    CHECK(s == (struct rules_set *)0x1); /* out-parameter untouched */
    CHECK_HAS(err, n1);
    if (n2)
        CHECK_HAS(err, n2);
}

#define RULE(sq, q)                                                                                          \
    "rules:\n- seriesQuery: '" sq "'\n  resources: {template: <<.Resource>>}\n  metricsQuery: '" q "'\n"
#define GOOD_Q "sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)"

static void test_errors(void)
{
    /* YAML itself */
    expect_error("rules: [\n  - {seriesQuery: 'x'\n", "bad YAML at line", NULL);
    expect_error("", "empty", NULL);
    expect_error("- a\n- b\n", "must be a mapping", NULL);
    expect_error("rules: []\n", "no rules", NULL);
    expect_error("rule:\n- seriesQuery: x\n", "top level: unknown key 'rule'", NULL);
    expect_error("rules: x\n", "rules must be a list", NULL);
    expect_error(RULE("x{a!=\"\"}", GOOD_Q) "---\nrules: []\n", "more than one YAML document", NULL);

    /* unsupported queries, each naming the rule */
    expect_error(
        RULE("x{a!=\"\"}", "histogram_quantile(0.9, sum(rate(<<.Series>>{<<.LabelMatchers>>}[5m])) by "
                           "(le, <<.GroupBy>>))"),
        "rules[0] (seriesQuery 'x{a!=\"\"}')", "unsupported aggregation or function 'histogram_quantile'");
    expect_error(RULE("x", GOOD_Q " * 100"), "rules[0] (seriesQuery 'x')", "arithmetic");
    expect_error(RULE("x", "sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m]) / 2) by (<<.GroupBy>>)"),
                 "rules[0]", "arithmetic");
    expect_error(RULE("x", "stddev(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)"),
                 "unsupported aggregation or function 'stddev'", NULL);
    expect_error(RULE("x", "sum(delta(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)"),
                 "unsupported function 'delta'", NULL);
    expect_error(RULE("x", "sum(rate(<<.Series>>{<<.LabelMatchers>>})) by (<<.GroupBy>>)"), "range", NULL);
    expect_error(RULE("x", "sum(rate(<<.Series>>{<<.LabelMatchers>>}[5x])) by (<<.GroupBy>>)"),
                 "bad range duration '5x'", NULL);
    expect_error(RULE("x", "sum(rate(<<.Series>>{<<.LabelMatchers>>}[5m:1m])) by (<<.GroupBy>>)"),
                 "subqueries", NULL);
    expect_error(RULE("x", "sum(rate(<<.Series>>{<<.LabelMatchers>>}[5m] offset 1m)) by (<<.GroupBy>>)"),
                 "offset is not supported", NULL);
    expect_error(RULE("x", "sum(<<.Series>>{<<.LabelMatchers>>}[5m]) by (<<.GroupBy>>)"),
                 "needs rate, irate or increase", NULL);
    expect_error(RULE("x", "sum(<<.Series>>{<<.LabelValuesByName>>}) by (<<.GroupBy>>)"),
                 "unsupported template field '<<.LabelValuesByName>>'", NULL);
    expect_error(RULE("x", "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBySlice>>)"),
                 "unsupported template field '<<.GroupBySlice>>'", NULL);
    expect_error(RULE("x", "sum(<<.Series>>) by (<<.GroupBy>>)"), "<<.LabelMatchers>>", NULL);
    expect_error(RULE("x", "sum(<<.Series>>{a=\"b\"}) by (<<.GroupBy>>)"), "exactly once", NULL);
    expect_error(RULE("x", "sum(<<.Series>>{<<.LabelMatchers>>})"), "must group by (<<.GroupBy>>)", NULL);
    expect_error(RULE("x", "sum(<<.Series>>{<<.LabelMatchers>>}) by (pod)"), "must group by (<<.GroupBy>>)",
                 NULL);
    expect_error(RULE("x", "sum without (a) (<<.Series>>{<<.LabelMatchers>>})"), "'without' is not supported",
                 NULL);
    expect_error(RULE("x", ""), "metricsQuery is missing", NULL);
    expect_error(RULE("x", "sum(<<.Series>>{<<.LabelMatchers>>,a=~\"(\"}) by (<<.GroupBy>>)"),
                 "bad regex '('", NULL);

    /* seriesQuery */
    expect_error(RULE("{__name__=~\"foo(\"}", GOOD_Q), "rules[0] (seriesQuery '{__name__=~\"foo(\"}')",
                 "bad regex 'foo('");
    expect_error(RULE("rate(x[5m])", GOOD_Q), "seriesQuery: unsupported text", NULL);
    expect_error(RULE("{a>\"1\"}", GOOD_Q), "expected =, !=, =~ or !~", NULL);
    expect_error(RULE("{a=\"1}", GOOD_Q), "unterminated string", NULL);
    expect_error(RULE("{}", GOOD_Q), "empty selector", NULL);
    expect_error("rules:\n- metricsQuery: x\n", "rules[0]: seriesQuery is missing", NULL);

    /* filters and names */
    expect_error("rules:\n- seriesQuery: x\n  seriesFilters: [{is: 'a('}]\n  resources: {template: "
                 "<<.Resource>>}\n  metricsQuery: '" GOOD_Q "'\n",
                 "seriesFilters[0]: bad regex 'a('", NULL);
    expect_error("rules:\n- seriesQuery: x\n  seriesFilters: [{is: a, isNot: b}]\n  resources: {template: "
                 "<<.Resource>>}\n  metricsQuery: '" GOOD_Q "'\n",
                 "exactly one of 'is' and 'isNot'", NULL);
    expect_error("rules:\n- seriesQuery: x\n  name: {matches: '^(a'}\n  resources: {template: "
                 "<<.Resource>>}\n  metricsQuery: '" GOOD_Q "'\n",
                 "name.matches: bad regex '^(a'", NULL);
    expect_error("rules:\n- seriesQuery: x\n  name: {matches: '^(a)_(b)$'}\n  resources: {template: "
                 "<<.Resource>>}\n  metricsQuery: '" GOOD_Q "'\n",
                 "'as' is required", "2 capture groups");

    /* keys */
    expect_error("rules:\n- seriesQuery: x\n  resources: {template: <<.Resource>>}\n  metricQuery: '" GOOD_Q
                 "'\n",
                 "rules[0] (seriesQuery 'x'): unknown key 'metricQuery'", NULL);
    expect_error(
        "rules:\n- seriesQuery: x\n  resources: {template: <<.Resource>>}\n  labelValueReplacements: "
        "[{find: a, replace: b}]\n  metricsQuery: '" GOOD_Q "'\n",
        "labelValueReplacements is not supported", NULL);
    expect_error("rules:\n- seriesQuery: x\n  resources: {template: '<<.Kind>>'}\n  metricsQuery: '" GOOD_Q
                 "'\n",
                 "resources.template: unsupported template field '<<.Kind>>'", NULL);
    expect_error("rules:\n- seriesQuery: x\n  resources: {overrides: {pod: pod}}\n  metricsQuery: '" GOOD_Q
                 "'\n",
                 "resources.overrides.pod must be a mapping", NULL);
    expect_error("rules:\n- seriesQuery: x\n  metricsQuery: '" GOOD_Q "'\n", "serve nothing", NULL);
    expect_error(
        "rules:\n- seriesQuery: x\n  name: {as: a, as: b}\n  resources: {template: <<.Resource>>}\n  "
        "metricsQuery: '" GOOD_Q "'\n",
        "name: key 'as' appears twice", NULL);
    expect_error("rules:\n- seriesQuery: x\n  resources: {overrides: {pod: {resource: pod, kind: Pod}}}\n  "
                 "metricsQuery: '" GOOD_Q "'\n",
                 "resources.overrides.pod: unknown key 'kind'", NULL);

    /* merge keys are checked like the keys they bring */
    expect_error("rules:\n- <<: {seriesQuery: x, metricQuery: y}\n  resources: {template: <<.Resource>>}\n",
                 "unknown key 'metricQuery'", NULL);
    expect_error("rules:\n- <<: [1]\n  seriesQuery: x\n", "'<<' must name a mapping", NULL);
    /* Eight mappings each merging the previous one eight times, defined inline:
     * 8^8 visits unbounded (what fuzz_rules' long run timed out on); refused
     * after MERGE_VISITS. */
    {
        char m[8][1024], bomb[2048];
        snprintf(m[0], sizeof m[0], "&a0 {seriesQuery: x}");
        for (int i = 1; i < 8; i++)
            snprintf(m[i], sizeof m[i], "&a%d {<<: [%s, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]}", i,
                     m[i - 1], i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
        snprintf(bomb, sizeof bomb, "rules:\n- <<: %s\n  metricsQuery: '" GOOD_Q "'\n", m[7]);
        expect_error(bomb, "merge keys name more than 256 mappings", NULL);
    }

    /* external rules */
    expect_error("externalRules:\n- seriesQuery: x\n  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>})\n",
                 "externalRules[0] (seriesQuery 'x')", "namespaced: false");
    expect_error(
        "externalRules:\n- seriesQuery: x\n  resources: {namespaced: false}\n  metricsQuery: "
        "sum(<<.Series>>{<<.LabelMatchers>>})\n- seriesQuery: y\n  resources: {namespaced: false}\n  "
        "metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m]) by (a)\n",
        "externalRules[1] (seriesQuery 'y')", "closing the aggregation");
    expect_error("externalRules:\n- seriesQuery: x\n  resources: {namespaced: maybe}\n  metricsQuery: "
                 "sum(<<.Series>>{<<.LabelMatchers>>})\n",
                 "resources.namespaced must be true or false", NULL);

    /* files */
    char err[RULES_ERR_MAX];
    struct rules_set *s = NULL;
    CHECK_EQ(rules_load_file("/nonexistent/rules.yaml", &s, err, sizeof(err)), -ENOENT);
    CHECK_HAS(err, "/nonexistent/rules.yaml");
    CHECK(s == NULL);
}

/* Syntax corners: named groups in `as`, raw and escaped strings, compound
 * durations, YAML anchors, "$$", namespaced external grouping. */
static void test_syntax(void)
{
    static const char yaml[] =
        "rules:\n"
        "- &r\n"
        "    seriesQuery: 'x_total{a=~\"b.*\",c!~\"d|e\",f!=\"\",g=\"\\u00e9\\x41\",h=~`\\d+`}'\n"
        "    seriesFilters: [{isNot: \"_x$\"}]\n"
        "    resources: {overrides: {a: {group: apps, resource: deployment}}}\n"
        "    name: {matches: \"^(?P<base>.*)_total$\", as: \"${base}_rate$$\"}\n"
        "    metricsQuery: >\n"
        "      avg by (<< .GroupBy >>) (irate(<<.Series>>{<<.LabelMatchers>>, c != `x`,}[1h30m15s500ms]))\n"
        "- *r\n"
        "externalRules:\n"
        "- seriesQuery: '{__name__=~\"^sqs_.*\"}'\n"
        "  resources: {namespaced: false}\n"
        "  metricsQuery: COUNT BY (a, b) (increase(<<.Series>>{<<.LabelMatchers>>}[5m]))\n";
    char err[RULES_ERR_MAX];
    struct rules_set *s = NULL;
    int rc = rules_load_buffer(yaml, sizeof(yaml) - 1, &s, err, sizeof(err));
    if (rc)
        fprintf(stderr, "%s\n", err);
    CHECK_EQ(rc, 0);
    CHECK_EQ(rules_count(s), 3);
    const struct rules_rule *r = rules_get(s, 1);
    CHECK_EQ(r->index, 1);
    CHECK_EQ(r->window_ms, 5415500);
    CHECK_EQ(r->fn, RULES_FN_IRATE);
    CHECK_EQ(r->n_extra, 1);
    CHECK_STR(r->extra[0].value, "x");
    CHECK_STR(rules_object_label(r, "deployments"), "a");
    struct lset *ok = LS("__name__=x_total", "a=bz", "c=q", "f=1",
                         "g=\xc3\xa9"
                         "A",
                         "h=42");
    struct rules_use u[4];
    CHECK_EQ(rules_series_uses(s, ok->l, ok->n, 0, u, 4), 2);
    CHECK_STR(u[0].metric, "x_rate$");
    /* each matcher refuses in turn: anchored regexes, !~, !=, =, raw string */
    struct lset *bad[] = {
        LS("__name__=x_total", "a=zb", "c=q", "f=1",
           "g=\xc3\xa9"
           "A",
           "h=42"),
        LS("__name__=x_total", "a=bz", "c=d", "f=1",
           "g=\xc3\xa9"
           "A",
           "h=42"),
        LS("__name__=x_total", "a=bz", "c=q",
           "g=\xc3\xa9"
           "A",
           "h=42"),
        LS("__name__=x_total", "a=bz", "c=q", "f=1", "g=eA", "h=42"),
        LS("__name__=x_total", "a=bz", "c=q", "f=1",
           "g=\xc3\xa9"
           "A",
           "h=4x"),
        LS("__name__=y_total", "a=bz", "c=q", "f=1",
           "g=\xc3\xa9"
           "A",
           "h=42"),
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_EQ(rules_series_uses(s, bad[i]->l, bad[i]->n, 0, u, 4), 0);
    struct rules_target t[4];
    CHECK_EQ(rules_lookup_custom(s, "deployments.apps", "x_rate$", t, 4), 2);
    CHECK_STR(t[0].source, "x_total");

    r = rules_get(s, 2);
    CHECK(r->external);
    CHECK_EQ(r->agg, RULES_AGG_COUNT);
    CHECK_EQ(r->n_group_by, 2);
    CHECK_STR(r->group_by[1], "b");
    /* name.matches absent: served under its own name, inverted as identity */
    CHECK_EQ(rules_lookup_external(s, "sqs_depth", t, 4), 1);
    CHECK_STR(t[0].source, "sqs_depth");
    CHECK_EQ(rules_lookup_external(s, "other", t, 4), 0);
    rules_free(s);
}

static void test_defaults(void)
{
    struct rules_set *s = NULL;
    char err[RULES_ERR_MAX];
    CHECK_EQ(rules_default(NULL, &s, err, sizeof(err)), 0);
    CHECK(!rules_is_config(s));
    struct rules_use u[4];

    /* x_total: custom and external, served as x with sum(rate(x_total[2m])) */
    struct lset *c = LS("__name__=x_total", "namespace=ns1", "pod=p1");
    CHECK_EQ(rules_series_uses(s, c->l, c->n, RULES_TYPE_UNKNOWN, u, 4), 2);
    CHECK_STR(u[0].metric, "x");
    CHECK(!u[0].rule->external);
    CHECK_EQ(u[0].rule->fn, RULES_FN_RATE);
    CHECK_EQ(u[0].rule->window_ms, 120000);
    CHECK_EQ(u[0].rule->agg, RULES_AGG_SUM);
    CHECK_STR(u[1].metric, "x");
    CHECK(u[1].rule->external);

    /* a gauge: sum(x) */
    struct lset *g = LS("__name__=mem_bytes", "namespace=ns1", "pod=p1");
    CHECK_EQ(rules_series_uses(s, g->l, g->n, RULES_TYPE_UNKNOWN, u, 4), 2);
    CHECK_STR(u[0].metric, "mem_bytes");
    CHECK_EQ(u[0].rule->fn, RULES_FN_NONE);

    /* a counter known from metadata keeps its name but is a rate */
    struct lset *tc = LS("__name__=requests", "namespace=ns1", "pod=p1");
    CHECK_EQ(rules_series_uses(s, tc->l, tc->n, RULES_TYPE_COUNTER, u, 4), 2);
    CHECK_STR(u[0].metric, "requests");
    CHECK_EQ(u[0].rule->fn, RULES_FN_RATE);
    /* a gauge named _total by metadata stays a gauge */
    CHECK_EQ(rules_series_uses(s, c->l, c->n, RULES_TYPE_GAUGE, u, 4), 2);
    CHECK_STR(u[0].metric, "x_total");
    CHECK_EQ(u[0].rule->fn, RULES_FN_NONE);

    /* the defaults want everything with a name, even without object labels */
    struct lset *bare = LS("__name__=queue_length", "queue=a");
    CHECK(rules_series_wanted(s, bare->l, bare->n, 0));
    struct lset *noname = LS("job=a");
    CHECK(!rules_series_wanted(s, noname->l, noname->n, 0));

    /* lookup of x: x_total as a counter, x typed counter, x as a gauge */
    struct rules_target t[8];
    size_t n = rules_lookup_custom(s, "pods", "x", t, 8);
    CHECK_EQ(n, 3);
    CHECK_STR(t[0].source, "x_total");
    CHECK_STR(t[0].object_label, "pod");
    CHECK_STR(t[0].namespace_label, "namespace");
    CHECK(rules_name_serves(t[0].rule, "x_total", RULES_TYPE_UNKNOWN, "x"));
    CHECK_STR(t[1].source, "x");
    CHECK(!rules_name_serves(t[1].rule, "x", RULES_TYPE_UNKNOWN, "x"));
    CHECK(rules_name_serves(t[1].rule, "x", RULES_TYPE_COUNTER, "x"));
    CHECK_STR(t[2].source, "x");
    CHECK(rules_name_serves(t[2].rule, "x", RULES_TYPE_GAUGE, "x"));
    CHECK_EQ(t[2].rule->fn, RULES_FN_NONE);
    CHECK_EQ(rules_lookup_custom(s, "nodes", "x", t, 8), 0);
    CHECK_EQ(rules_lookup_custom(s, "namespaces", "x", t, 8), 3);
    CHECK_STR(t[0].object_label, "namespace");

    /* default external: namespace ns sums namespace=ns and no namespace at all */
    n = rules_lookup_external(s, "queue_length", t, 8);
    CHECK_EQ(n, 3);
    CHECK_STR(t[2].source, "queue_length");
    CHECK_EQ(t[2].rule->ns_mode, RULES_NS_EQUAL_OR_NONE);
    struct lset *in = LS("__name__=queue_length", "namespace=ns1", "queue=a");
    struct lset *out = LS("__name__=queue_length", "namespace=ns2", "queue=a");
    CHECK(rules_series_selected(&t[2], bare->l, bare->n, "ns1", NULL));
    CHECK(rules_series_selected(&t[2], in->l, in->n, "ns1", NULL));
    CHECK(!rules_series_selected(&t[2], out->l, out->n, "ns1", NULL));

    /* discovery: pods/x, namespaces/x, external x */
    struct rules_disc *d = rules_disc_new(s);
    rules_disc_add(d, c->l, c->n, 0);
    rules_disc_add(d, c->l, c->n, 0);
    rules_disc_add(d, bare->l, bare->n, 0);
    const struct rules_served *v;
    n = rules_disc_result(d, &v);
    CHECK_EQ(n, 4);
    CHECK(find_served(v, n, "pods", "x")->namespaced);
    CHECK(!find_served(v, n, "namespaces", "x")->namespaced);
    CHECK(find_served(v, n, NULL, "x"));
    CHECK(find_served(v, n, NULL, "queue_length"));
    rules_disc_free(d);
    rules_free(s);

    /* extra object labels */
    CHECK_EQ(rules_default("node=nodes,deployment=deployments.apps,pod=pods", &s, err, sizeof(err)), 0);
    const struct rules_rule *r = rules_get(s, 0);
    CHECK_STR(rules_object_label(r, "nodes"), "node");
    CHECK_STR(rules_object_label(r, "deployments.apps"), "deployment");
    CHECK_STR(rules_object_label(r, "pods"), "pod");
    CHECK_STR(rules_label_resource(r, "deployment")->group, "apps");
    rules_free(s);
    s = NULL;
    CHECK_EQ(rules_default("node", &s, err, sizeof(err)), -EINVAL);
    CHECK_HAS(err, "'node'");
    CHECK(s == NULL);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s CONFIG_DIR EXAMPLE_CONFIG\n", argv[0]);
        return 2;
    }
    cfg_dir = argv[1];
    example_path = argv[2];
    test_config_series();
    test_config_lookup();
    test_config_discovery();
    test_stock_config();
    test_example_config();
    test_syntax();
    test_merge_keys();
    test_errors();
    test_defaults();
    printf("test_rules: ok\n");
    return 0;
}
