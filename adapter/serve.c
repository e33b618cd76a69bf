/*
 * serve: routing, discovery, readiness and the Status error path. See serve.h.
 *
 * DESIGN: one request is a straight line. The path is split into segments
 * (libmicrohttpd has already percent-decoded it, so %2A is '*'), the query's
 * selectors are parsed, then one RCU read-side section covers
 * rcu_dereference() of the rule set and query_eval() over the store; the
 * result is copied memory, so the JSON is built after rcu_read_unlock() and
 * http.c writes it to the socket after the handler returns. No read section
 * is ever held across socket I/O.
 *
 * Every handler ends in either a body of its own or answer_error(), the one
 * place where the module's negative errno values become HTTP statuses and
 * metav1.Status bodies.
 *
 * Readiness: the adapter can answer well once it has seen one rate window of
 * data. The first time a handler sees samples in the store it records the
 * time; /readyz turns 200 when --rate-window has passed since then. The
 * record happens on any metrics-API request or probe, so it may lag the first
 * sample by up to one probe period: readiness errs on the late side, never
 * the early one. Memory pressure plays no part (every replica receives the
 * same stream and would fail together).
 */
#include "serve.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <urcu.h>

#include "k8s_json.h"
#include "log.h"
#include "podcache.h"
#include "query.h"
#include "selector.h"
#include "selfmetrics.h"

#define G_CUSTOM   "custom.metrics.k8s.io"
#define G_EXTERNAL "external.metrics.k8s.io"
#define CT_JSON    "application/json"

struct serve {
    struct store *store;
    struct rules_set *rules; /* RCU-published: rcu_assign_pointer / rcu_dereference */
    char *config_path;       /* NULL: the defaults */
    char *overrides;         /* the defaults' extra label=resource pairs, or NULL */
    int64_t ttl_ms;
    int64_t ready_window_ms;
    int64_t first_data_ms; /* 0 until samples were seen (atomic) */
};

#define REQ_HELP "Metrics-API requests answered, by status code."
SM_COUNTER(api_c_200, "metrics_adapter_api_requests_total", "code=\"200\"", REQ_HELP)
SM_COUNTER(api_c_400, "metrics_adapter_api_requests_total", "code=\"400\"", REQ_HELP)
SM_COUNTER(api_c_404, "metrics_adapter_api_requests_total", "code=\"404\"", REQ_HELP)
SM_COUNTER(api_c_405, "metrics_adapter_api_requests_total", "code=\"405\"", REQ_HELP)
SM_COUNTER(api_c_5xx, "metrics_adapter_api_requests_total", "code=\"5xx\"", REQ_HELP)

static void count_code(int status)
{
    switch (status) {
    case 200:
        sm_inc(&api_c_200);
        break;
    case 400:
        sm_inc(&api_c_400);
        break;
    case 404:
        sm_inc(&api_c_404);
        break;
    case 405:
        sm_inc(&api_c_405);
        break;
    default:
        if (status >= 500)
            sm_inc(&api_c_5xx);
        break;
    }
}

/*
 * Reads of metric values (what the HPA asks), by API and outcome:
 * metrics_adapter_metric_reads_total{api, outcome}. Discovery and the
 * other paths are left out; their codes are in the counter above.
 */
#define READS_HELP "Metric value reads (the HPA's requests), by API version and outcome."
#define READ_C(api, o)                                                                                       \
    SM_COUNTER_INIT("metrics_adapter_metric_reads_total", "api=\"" api "\",outcome=\"" o "\"", READS_HELP)
#define READS_ROW(api)                                                                                       \
    {                                                                                                        \
        READ_C(api, "ok"), READ_C(api, "not_found"), READ_C(api, "bad_request"), READ_C(api, "error")        \
    }
static struct sm_counter reads[3][4] = {
    READS_ROW("custom.metrics.k8s.io/v1beta1"),
    READS_ROW("custom.metrics.k8s.io/v1beta2"),
    READS_ROW("external.metrics.k8s.io/v1beta1"),
};

static void __attribute__((constructor)) reads_register(void)
{
    for (int a = 0; a < 3; a++)
        for (int o = 0; o < 4; o++)
            sm_counter_register(&reads[a][o]);
}

static void count_read(const struct serve_path *p, int status)
{
    int api = p->external ? 2 : p->v1beta1 ? 0 : 1;
    int outcome = status == 200 ? 0 : status == 404 ? 1 : status >= 400 && status < 500 ? 2 : 3;
    sm_inc(&reads[api][outcome]);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the one place errors become statuses ---- */

static void answer_error(struct http_response *resp, int err, const char *message)
{
    int code;
    const char *reason;
    switch (err) {
    case -ENOENT:
        code = 404;
        reason = "NotFound";
        break;
    case -EINVAL:
    case -E2BIG:
        code = 400;
        reason = "BadRequest";
        break;
    case -EOPNOTSUPP:
        code = 405;
        reason = "MethodNotAllowed";
        break;
    default:
        code = 500;
        reason = "InternalError";
        break;
    }
    resp->status = code;
    resp->content_type = CT_JSON;
    buf_reset(&resp->body);
    api_json_status(&resp->body, code, reason, message);
    if (code == 405)
        http_resp_header(resp, "Allow", "GET");
}

static void answer_json(struct http_response *resp)
{
    resp->status = 200;
    resp->content_type = CT_JSON;
}

/* ---- the path router ---- */

#define MAX_SEGS 9

static int valid_resource(const char *s)
{
    if (!*s)
        return 0;
    for (const char *p = s; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-' || *p == '.'))
            return 0;
    return s[0] != '.' && s[strlen(s) - 1] != '.';
}

static int valid_segment(const char *s)
{
    return *s && strlen(s) < RULES_NAME_MAX;
}

enum serve_route serve_path_parse(const char *path, char *buf, size_t bufsize, struct serve_path *p)
{
    memset(p, 0, sizeof(*p));
    size_t len = strlen(path);
    if (len + 1 > bufsize || path[0] != '/')
        return SERVE_R_NOT_FOUND;
    memcpy(buf, path, len + 1);
    /* Split on '/'. An empty segment (a double or trailing slash) is kept as "". */
    char *seg[MAX_SEGS + 1];
    size_t n = 0;
    char *s = buf + 1;
    for (;;) {
        if (n == MAX_SEGS + 1)
            return SERVE_R_NOT_FOUND;
        seg[n++] = s;
        char *slash = strchr(s, '/');
        if (!slash)
            break;
        *slash = '\0';
        s = slash + 1;
    }
    if (n == 1 && strcmp(seg[0], "api") == 0)
        return SERVE_R_API;
    if (n == 1 && strcmp(seg[0], "version") == 0)
        return SERVE_R_VERSION;
    if (strcmp(seg[0], "openapi") == 0)
        return SERVE_R_OPENAPI;
    if (strcmp(seg[0], "apis") != 0)
        return SERVE_R_NOT_FOUND;
    if (n == 1)
        return SERVE_R_APIS;
    if (strcmp(seg[1], G_CUSTOM) == 0) {
        p->external = 0;
    } else if (strcmp(seg[1], G_EXTERNAL) == 0) {
        p->external = 1;
    } else {
        return SERVE_R_NOT_FOUND;
    }
    if (n == 2)
        return SERVE_R_GROUP;
    if (p->external ? strcmp(seg[2], "v1beta1") != 0
                    : strcmp(seg[2], "v1beta1") != 0 && strcmp(seg[2], "v1beta2") != 0)
        return SERVE_R_NOT_FOUND;
    p->v1beta1 = !p->external && strcmp(seg[2], "v1beta1") == 0;
    if (n == 3)
        return SERVE_R_DISCOVERY;
    for (size_t i = 3; i < n; i++)
        if (!valid_segment(seg[i]))
            return SERVE_R_BAD;
    if (p->external) {
        if (n != 6 || strcmp(seg[3], "namespaces") != 0)
            return SERVE_R_BAD;
        p->ns = seg[4];
        p->metric = seg[5];
        return SERVE_R_EXTERNAL;
    }
    if (n == 7 && strcmp(seg[3], "namespaces") == 0 && strcmp(seg[5], "metrics") == 0) {
        /* The namespace's own metric: the object is the namespace. */
        p->resource = "namespaces";
        p->name = seg[4];
        p->metric = seg[6];
        p->namespace_object = 1;
        return SERVE_R_CUSTOM;
    }
    if (n == 8 && strcmp(seg[3], "namespaces") == 0) {
        p->ns = seg[4];
        p->resource = seg[5];
        p->name = strcmp(seg[6], "*") == 0 ? NULL : seg[6];
        p->metric = seg[7];
    } else if (n == 6) {
        p->resource = seg[3];
        p->name = strcmp(seg[4], "*") == 0 ? NULL : seg[4];
        p->metric = seg[5];
        if (strcmp(p->resource, "namespaces") == 0)
            p->namespace_object = p->name != NULL;
    } else {
        return SERVE_R_BAD;
    }
    if (!valid_resource(p->resource))
        return SERVE_R_BAD;
    return SERVE_R_CUSTOM;
}

/* ---- describedObject: kind and apiVersion of a resource ---- */

static const struct {
    const char *resource, *group, *kind;
} kinds[] = {
    {"pods", "", "Pod"},
    {"namespaces", "", "Namespace"},
    {"nodes", "", "Node"},
    {"services", "", "Service"},
    {"persistentvolumeclaims", "", "PersistentVolumeClaim"},
    {"persistentvolumes", "", "PersistentVolume"},
    {"replicationcontrollers", "", "ReplicationController"},
    {"endpoints", "", "Endpoints"},
    {"configmaps", "", "ConfigMap"},
    {"deployments", "apps", "Deployment"},
    {"statefulsets", "apps", "StatefulSet"},
    {"daemonsets", "apps", "DaemonSet"},
    {"replicasets", "apps", "ReplicaSet"},
    {"jobs", "batch", "Job"},
    {"cronjobs", "batch", "CronJob"},
    {"ingresses", "networking.k8s.io", "Ingress"},
    {"horizontalpodautoscalers", "autoscaling", "HorizontalPodAutoscaler"},
    {"poddisruptionbudgets", "policy", "PodDisruptionBudget"},
};

/* Fill kind and api_version (in @kbuf, @vbuf) for a path's resource segment. */
static void resource_kind(const char *resource, char *kbuf, size_t kcap, char *vbuf, size_t vcap)
{
    const char *dot = strchr(resource, '.');
    size_t rl = dot ? (size_t)(dot - resource) : strlen(resource);
    const char *group = dot ? dot + 1 : NULL;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strlen(kinds[i].resource) == rl && memcmp(kinds[i].resource, resource, rl) == 0 &&
            (!group || strcmp(group, kinds[i].group) == 0)) {
            snprintf(kbuf, kcap, "%s", kinds[i].kind);
            snprintf(vbuf, vcap, "%s/v1", kinds[i].group);
            return;
        }
    }
    /* Unknown: the kind is the singular capitalised, as a RESTMapper would guess it. */
    size_t kl = rl && resource[rl - 1] == 's' ? rl - 1 : rl;
    if (kl + 1 > kcap)
        kl = kcap - 1;
    memcpy(kbuf, resource, kl);
    kbuf[kl] = '\0';
    if (kl)
        kbuf[0] = (char)toupper((unsigned char)kbuf[0]);
    snprintf(vbuf, vcap, "%s/v1", group ? group : "");
}

/* ---- readiness ---- */

static void note_data(struct serve *sv)
{
    if (__atomic_load_n(&sv->first_data_ms, __ATOMIC_RELAXED))
        return;
    struct store_stats s;
    store_get_stats(sv->store, &s);
    if (s.samples_accepted) {
        int64_t zero = 0;
        __atomic_compare_exchange_n(&sv->first_data_ms, &zero, wall_ms(), false, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED);
    }
}

/* A loaded snapshot holds a rate window of data already (DESIGN 7): ready at once. */
void serve_mark_warm(struct serve *sv)
{
    __atomic_store_n(&sv->first_data_ms, wall_ms() - sv->ready_window_ms, __ATOMIC_RELAXED);
}

static void handle_readyz(void *ctx, const struct http_request *req, struct http_response *resp)
{
    struct serve *sv = ctx;
    note_data(sv);
    int64_t first = __atomic_load_n(&sv->first_data_ms, __ATOMIC_RELAXED);
    int64_t now = wall_ms();
    struct podcache *pc = podcache_active();
    if (pc && !podcache_synced(pc)) {
        resp->status = 503;
        buf_puts(&resp->body, "not ready: pod metadata cache not synced yet\n");
    } else if (first && now - first >= sv->ready_window_ms) {
        resp->status = 200;
        buf_puts(&resp->body, "ok\n");
    } else {
        resp->status = 503;
        if (!first)
            buf_puts(&resp->body, "not ready: no data received yet\n");
        else
            buf_printf(&resp->body, "not ready: %lld ms of data, waiting for one rate window (%lld ms)\n",
                       (long long)(now - first), (long long)sv->ready_window_ms);
    }
}

/* ---- discovery ---- */

/* Series of one metric with the same label names add nothing to discovery:
 * remember the label-name signatures already added. */
struct sigset {
    uint64_t *v;
    size_t n, cap;
};

static int sig_seen(struct sigset *s, uint64_t sig)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i] == sig)
            return 1;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->v = realloc(s->v, s->cap * sizeof(*s->v));
        if (!s->v)
            abort();
    }
    s->v[s->n++] = sig;
    return 0;
}

static uint64_t names_signature(const struct rules_label *l, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        for (const char *p = l[i].name; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull;
    }
    return h;
}

/* Add every distinct label-name shape of every metric in the store to @d.
 * Call with rcu_read_lock held: the walk is one read-side section, bounded
 * by the series held (discovery is rare: kubectl and the aggregator's
 * periodic check). */
static void discover(struct serve *sv, const struct rules_set *rules, struct rules_disc *d)
{
    struct rules_label labels[128];
    char text[16384];
    struct sigset seen = {0};
    bool config = rules_is_config(rules);
    int64_t oldest_ok = wall_ms() - sv->ttl_ms;
    struct store_iter mit;
    for (struct store_metric *m = store_metric_first(sv->store, &mit); m;
         m = store_metric_next(sv->store, &mit)) {
        enum rules_type type = query_rules_type(store_metric_type(m));
        seen.n = 0;
        struct store_iter git, sit;
        for (struct store_group *g = store_group_first(m, &git); g; g = store_group_next(m, &git)) {
            for (struct store_series *s = store_series_first(g, &sit); s; s = store_series_next(g, &sit)) {
                if (store_series_newest(s) < oldest_ok)
                    continue; /* idle past the TTL: never served, so not listed */
                struct store_label_iter li;
                struct api_rw_label l;
                size_t n = 0, used = 0;
                int fits = 1;
                store_series_labels(s, &li);
                while (store_series_label_next(&li, &l)) {
                    if (n == 128 || used + l.name_len + l.value_len + 2 > sizeof(text)) {
                        fits = 0;
                        break;
                    }
                    labels[n].name = memcpy(text + used, l.name, l.name_len);
                    text[used + l.name_len] = '\0';
                    used += l.name_len + 1;
                    labels[n].value = memcpy(text + used, l.value, l.value_len);
                    text[used + l.value_len] = '\0';
                    used += l.value_len + 1;
                    n++;
                }
                /* Only the defaults decide from label names alone; a config's
                 * seriesQuery may test values, so every series counts there. */
                if (!fits || (!config && sig_seen(&seen, names_signature(labels, n))))
                    continue;
                rules_disc_add(d, labels, n, type);
            }
        }
    }
    free(seen.v);
}

static void resource_name(struct buf *b, const struct rules_served *s)
{
    buf_puts(b, s->resource->resource);
    if (*s->resource->group) {
        buf_putc(b, '.');
        buf_puts(b, s->resource->group);
    }
    buf_putc(b, '/');
    buf_puts(b, s->metric);
}

static void handle_discovery(struct serve *sv, const struct serve_path *p, struct http_response *resp)
{
    rcu_read_lock();
    const struct rules_set *rules = rcu_dereference(sv->rules);
    struct rules_disc *d = rules_disc_new(rules);
    discover(sv, rules, d);
    const struct rules_served *served;
    size_t n = rules_disc_result(d, &served);
    /* Names are built into one buffer first: its memory may move while it grows. */
    struct buf names = {0};
    size_t *off = calloc(n + 1, sizeof(*off));
    struct api_resource *res = calloc(n + 1, sizeof(*res));
    if (!off || !res)
        abort();
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const struct rules_served *s = &served[i];
        if ((s->resource == NULL) != (p->external != 0))
            continue;
        off[k] = names.len;
        if (s->resource)
            resource_name(&names, s);
        else
            buf_puts(&names, s->metric);
        buf_putc(&names, '\0');
        res[k].namespaced = s->resource ? s->namespaced : true;
        res[k].kind = p->external ? "ExternalMetricValueList" : "MetricValueList";
        k++;
    }
    rules_disc_free(d);
    rcu_read_unlock();
    for (size_t i = 0; i < k; i++)
        res[i].name = names.data + off[i];
    if (k == 0) {
        /* Never an empty group: clients warn about those (custom-metrics-apiserver does the same). */
        res[0].name = p->external ? "placeholder" : "pods/placeholder";
        res[0].namespaced = true;
        res[0].kind = p->external ? "ExternalMetricValueList" : "MetricValueList";
        k = 1;
    }
    char gv[64];
    snprintf(gv, sizeof gv, "%s/%s", p->external ? G_EXTERNAL : G_CUSTOM,
             p->external  ? "v1beta1"
             : p->v1beta1 ? "v1beta1"
                          : "v1beta2");
    api_json_resource_list(&resp->body, gv, res, k);
    answer_json(resp);
    buf_free(&names);
    free(off);
    free(res);
}

/* ---- group lists, /api, /version ---- */

static const char *const custom_versions[] = {"v1beta2", "v1beta1"};
static const char *const external_versions[] = {"v1beta1"};
static const struct api_group groups[] = {
    {G_CUSTOM, custom_versions, 2, "v1beta2"},
    {G_EXTERNAL, external_versions, 1, "v1beta1"},
};

static void handle_version(struct http_response *resp)
{
    struct api_version_info vi = {
        .major = "1",
        .minor = "0",
        .git_version = "v" MA_VERSION,
        .git_commit = "",
        .git_tree_state = "",
        .build_date = "",
        .go_version = "",
        .compiler = "gcc",
        .platform = "linux",
    };
    api_json_version_info(&resp->body, &vi);
    answer_json(resp);
}

/* ---- metric reads ---- */

/* Parse one selector query argument; on error answer 400 and return -EINVAL. */
static int parse_selector(const struct http_request *req, const char *key, struct sel_selector **out,
                          struct http_response *resp)
{
    const char *text = http_query(req, key);
    *out = NULL;
    if (!text || !*text)
        return 0;
    char err[SEL_ERR_MAX];
    int rc = sel_parse(text, strlen(text), out, err, sizeof err);
    if (rc) {
        char msg[SEL_ERR_MAX + 64];
        snprintf(msg, sizeof msg, "invalid %s: %s", key, rc == -E2BIG ? "too long" : err);
        answer_error(resp, -EINVAL, msg);
        return -EINVAL;
    }
    return 0;
}

static void not_found(struct http_response *resp, const struct serve_path *p)
{
    char msg[3 * RULES_NAME_MAX + 128];
    if (p->external)
        snprintf(msg, sizeof msg, "the server could not find the metric %s for namespace %s", p->metric,
                 p->ns);
    else if (p->name)
        snprintf(msg, sizeof msg, "the server could not find the metric %s for %s %s", p->metric, p->resource,
                 p->name);
    else
        snprintf(msg, sizeof msg, "the server could not find the metric %s for %s", p->metric, p->resource);
    answer_error(resp, -ENOENT, msg);
}

static void write_custom(struct http_response *resp, const struct serve_path *p, const struct query_result *r,
                         const struct sel_selector *msel)
{
    char kind[RULES_NAME_MAX], apiv[RULES_NAME_MAX];
    resource_kind(p->resource, kind, sizeof kind, apiv, sizeof apiv);
    struct api_metric_value *items = calloc(r->n, sizeof(*items));
    if (!items)
        abort();
    for (size_t i = 0; i < r->n; i++) {
        const struct query_item *it = &r->items[i];
        items[i].object = (struct api_object_ref){kind, it->ns ? it->ns : p->ns, it->object, apiv};
        if (p->namespace_object)
            items[i].object.namespace_ = NULL;
        items[i].metric = p->metric;
        items[i].timestamp_ms = it->timestamp_ms;
        items[i].window_s = it->window_s;
        items[i].value = it->value;
    }
    int rc = api_json_metric_value_list(&resp->body, p->v1beta1 ? API_CM_V1BETA1 : API_CM_V1BETA2, items,
                                        r->n, msel ? sel_label_selector(msel) : NULL);
    free(items);
    if (rc)
        answer_error(resp, rc, "a value could not be encoded");
    else
        answer_json(resp);
}

static void write_external(struct http_response *resp, const struct serve_path *p,
                           const struct query_result *r)
{
    struct api_external_value *items = calloc(r->n, sizeof(*items));
    if (!items)
        abort();
    for (size_t i = 0; i < r->n; i++) {
        const struct query_item *it = &r->items[i];
        items[i] = (struct api_external_value){p->metric,        it->lnames,   it->lvalues, it->nlabels,
                                               it->timestamp_ms, it->window_s, it->value};
    }
    int rc = api_json_external_value_list(&resp->body, items, r->n);
    free(items);
    if (rc)
        answer_error(resp, rc, "a value could not be encoded");
    else
        answer_json(resp);
}

static void handle_read(struct serve *sv, const struct http_request *req, const struct serve_path *p,
                        struct http_response *resp)
{
    int64_t now = wall_ms();
    struct sel_selector *lsel = NULL, *msel = NULL;
    if (parse_selector(req, "labelSelector", &lsel, resp) ||
        (!p->external && parse_selector(req, "metricLabelSelector", &msel, resp)))
        goto out;
    struct query_request q = {
        .external = p->external,
        .ns = p->ns,
        .resource = p->resource,
        .name = p->name,
        .metric = p->metric,
        .label_sel = lsel,
        .metric_sel = msel,
        .now_ms = now,
        .ttl_ms = sv->ttl_ms,
    };
    struct query_result r;
    rcu_read_lock();
    /* Pairs with rcu_assign_pointer() in publish(); the set stays valid until rcu_read_unlock(). */
    const struct rules_set *rules = rcu_dereference(sv->rules);
    int rc = query_eval(rules, sv->store, &q, &r);
    rcu_read_unlock();
    if (rc == 0 && p->name && r.n != 1) {
        /* An object read names one object: several items cannot happen with
         * one object label, but a read is never answered with more than one. */
        r.n = 1;
    }
    if (rc)
        not_found(resp, p);
    else if (p->external)
        write_external(resp, p, &r);
    else
        write_custom(resp, p, &r, msel);
    query_result_free(&r);
out:
    sel_free(lsel);
    sel_free(msel);
}

static void handle_apis(void *ctx, const struct http_request *req, struct http_response *resp)
{
    struct serve *sv = ctx;
    char buf[SERVE_PATH_MAX];
    struct serve_path p;
    enum serve_route route = serve_path_parse(req->path, buf, sizeof buf, &p);
    note_data(sv);
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        answer_error(resp, -EOPNOTSUPP, "only GET is served");
        goto done;
    }
    switch (route) {
    case SERVE_R_API:
        api_json_api_versions(&resp->body, NULL, 0);
        answer_json(resp);
        break;
    case SERVE_R_APIS:
        api_json_group_list(&resp->body, groups, 2);
        answer_json(resp);
        break;
    case SERVE_R_GROUP:
        api_json_group(&resp->body, &groups[p.external ? 1 : 0]);
        answer_json(resp);
        break;
    case SERVE_R_VERSION:
        handle_version(resp);
        break;
    case SERVE_R_DISCOVERY:
        handle_discovery(sv, &p, resp);
        break;
    case SERVE_R_CUSTOM:
    case SERVE_R_EXTERNAL:
        handle_read(sv, req, &p, resp);
        break;
    case SERVE_R_BAD:
        answer_error(resp, -EINVAL, "malformed metrics API path");
        break;
    case SERVE_R_OPENAPI:
    case SERVE_R_NOT_FOUND:
    default:
        answer_error(resp, -ENOENT, "the server could not find the requested resource");
        break;
    }
done:
    count_code(resp->status);
    if (route == SERVE_R_CUSTOM || route == SERVE_R_EXTERNAL)
        count_read(&p, resp->status);
}

/* ---- the rule set ---- */

static int load_rules(const char *path, const char *overrides, struct rules_set **out)
{
    char err[RULES_ERR_MAX];
    int rc =
        path ? rules_load_file(path, out, err, sizeof err) : rules_default(overrides, out, err, sizeof err);
    if (rc) {
        if (path)
            log_error("cannot load the rules", "flag=--config path=%s error=%s", path,
                      rc == -EINVAL ? err : strerror(-rc));
        else
            log_error("cannot build the default rules", "flag=--resource-labels error=%s", err);
        return rc;
    }
    const char *w = rules_warnings(*out);
    if (w)
        log_warn("rules loaded with warnings", "warnings=%s", w);
    log_info("rules loaded", "source=%s rules=%zu", path ? path : "defaults", rules_count(*out));
    return 0;
}

int serve_new(const struct ma_config *cfg, struct store *st, struct serve **out)
{
    struct serve *sv = calloc(1, sizeof(*sv));
    if (!sv)
        return -ENOMEM;
    sv->store = st;
    sv->ttl_ms = cfg->series_ttl_ms ? (int64_t)cfg->series_ttl_ms : 300000;
    sv->ready_window_ms = (int64_t)cfg->rate_window_ms;
    if (cfg->config_path && *cfg->config_path) {
        sv->config_path = strdup(cfg->config_path);
        if (!sv->config_path) {
            free(sv);
            return -ENOMEM;
        }
    }
    if (cfg->resource_labels && *cfg->resource_labels && !(sv->overrides = strdup(cfg->resource_labels))) {
        free(sv->config_path);
        free(sv);
        return -ENOMEM;
    }
    struct rules_set *rules;
    int rc = load_rules(sv->config_path, sv->overrides, &rules);
    if (rc) {
        free(sv->overrides);
        free(sv->config_path);
        free(sv);
        return rc;
    }
    /* Not yet shared: a plain store is enough; handlers start after this returns. */
    rcu_assign_pointer(sv->rules, rules);
    *out = sv;
    return 0;
}

int serve_reload(struct serve *sv)
{
    struct rules_set *rules;
    int rc = load_rules(sv->config_path, sv->overrides, &rules);
    if (rc) {
        log_warn("reload failed: keeping the rules in use", NULL);
        return rc;
    }
    /* Publish the new set (pairs with rcu_dereference() in the handlers), wait
     * until no reader can still hold the old one, then free it. */
    struct rules_set *old = rcu_xchg_pointer(&sv->rules, rules);
    synchronize_rcu();
    rules_free(old);
    return 0;
}

struct rules_set **serve_rules_ptr(struct serve *sv)
{
    return &sv->rules;
}

int serve_add_routes(struct serve *sv, struct http_server *srv, int with_api)
{
    int rc;
    if ((rc = http_route(srv, "/readyz", HTTP_ROUTE_EXACT, 0, handle_readyz, sv)))
        return rc;
    if (!with_api)
        return 0;
    if ((rc = http_route(srv, "/apis", HTTP_ROUTE_PREFIX, 0, handle_apis, sv)))
        return rc;
    if ((rc = http_route(srv, "/api", HTTP_ROUTE_EXACT, 0, handle_apis, sv)))
        return rc;
    if ((rc = http_route(srv, "/version", HTTP_ROUTE_EXACT, 0, handle_apis, sv)))
        return rc;
    return http_route(srv, "/openapi/", HTTP_ROUTE_PREFIX, 0, handle_apis, sv);
}

void serve_free(struct serve *sv)
{
    if (!sv)
        return;
    rules_free(sv->rules);
    free(sv->overrides);
    free(sv->config_path);
    free(sv);
}
