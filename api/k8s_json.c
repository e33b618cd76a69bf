/*
 * k8s_json: Kubernetes JSON bodies, written directly into a buf.
 *
 * DESIGN. The bodies are small and their shape is fixed, so they are written
 * with a handful of helpers rather than built as a document tree: a JSON
 * library would allocate per node on the HPA's hot path and still need our
 * own Quantity strings, field order and omitempty rules. The field order is
 * the Go struct order, which is what encoding/json emits; map-typed fields
 * (matchLabels, metricLabels) are written with keys sorted by bytes, as Go
 * sorts map keys.
 *
 * Every value is formatted before the first byte is appended, so a refused
 * body (a NaN or infinite value) leaves the buffer exactly as it was.
 */
#include "k8s_json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quantity.h"

/* Length of the valid UTF-8 sequence at s[0..len), or 0 if it is invalid
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_seq(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        n = 2, v = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3, v = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

void api_json_string(struct buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    buf_reserve(b, len + 2);
    buf_putc(b, '"');
    size_t run = 0; /* bytes at p[i - run .. i) that need no escaping */
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        const char *esc = NULL;
        char u[7];
        size_t adv = 1;
        if (c >= 0x80) {
            uint32_t cp;
            adv = utf8_seq(p + i, len - i, &cp);
            if (adv == 0) {
                esc = "\\ufffd"; /* one replacement per invalid byte, as Go does */
                adv = 1;
            } else if (cp == 0x2028 || cp == 0x2029) {
                esc = cp == 0x2028 ? "\\u2028" : "\\u2029";
            }
        } else if (c == '"') {
            esc = "\\\"";
        } else if (c == '\\') {
            esc = "\\\\";
        } else if (c == '\n') {
            esc = "\\n";
        } else if (c == '\r') {
            esc = "\\r";
        } else if (c == '\t') {
            esc = "\\t";
        } else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
            memcpy(u, "\\u00", 4);
            u[4] = hex[c >> 4];
            u[5] = hex[c & 15];
            u[6] = '\0';
            esc = u;
        }
        if (esc) {
            buf_append(b, p + i - run, run);
            run = 0;
            buf_puts(b, esc);
        } else {
            run += adv;
        }
        i += adv;
    }
    buf_append(b, p + len - run, run);
    buf_putc(b, '"');
}

static void json_str(struct buf *b, const char *s)
{
    api_json_string(b, s ? s : "", s ? strlen(s) : 0);
}

/* ,"key":"value" (or without the comma for the first field). */
static void field_str(struct buf *b, bool comma, const char *key, const char *value)
{
    buf_printf(b, "%s\"%s\":", comma ? "," : "", key);
    json_str(b, value);
}

static bool nonempty(const char *s)
{
    return s && *s;
}

void api_json_time(struct buf *b, int64_t unix_ms)
{
    /* floor division: metav1.Time drops the sub-second part of the instant */
    int64_t secs = unix_ms / 1000 - (unix_ms % 1000 < 0);
    time_t t = (time_t)secs;
    struct tm tm;
    char out[64];
    if (!gmtime_r(&t, &tm) || strftime(out, sizeof(out), "\"%Y-%m-%dT%H:%M:%SZ\"", &tm) == 0) {
        buf_puts(b, "null");
        return;
    }
    buf_puts(b, out);
}

/* The TypeMeta and empty ListMeta every object body starts with. */
static void object_head(struct buf *b, const char *kind, const char *api_version)
{
    buf_puts(b, "{");
    field_str(b, false, "kind", kind);
    field_str(b, true, "apiVersion", api_version);
    buf_puts(b, ",\"metadata\":{}");
}

static void object_ref(struct buf *b, const struct api_object_ref *o)
{
    bool comma = false;
    buf_puts(b, "{");
    if (nonempty(o->kind)) {
        field_str(b, comma, "kind", o->kind);
        comma = true;
    }
    if (nonempty(o->namespace_)) {
        field_str(b, comma, "namespace", o->namespace_);
        comma = true;
    }
    if (nonempty(o->name)) {
        field_str(b, comma, "name", o->name);
        comma = true;
    }
    if (nonempty(o->api_version))
        field_str(b, comma, "apiVersion", o->api_version);
    buf_puts(b, "}");
}

struct kv_ref {
    const char *k, *v;
};

static int kv_cmp(const void *a, const void *b)
{
    return strcmp(((const struct kv_ref *)a)->k, ((const struct kv_ref *)b)->k);
}

/* A Go map[string]string: keys sorted by bytes. */
static void string_map(struct buf *b, const char *const *keys, const char *const *values, size_t n)
{
    struct kv_ref stack[16];
    struct kv_ref *kv = n <= 16 ? stack : malloc(n * sizeof(*kv));
    if (!kv)
        abort(); /* the project's OOM policy: internal allocation failure is fatal */
    for (size_t i = 0; i < n; i++)
        kv[i] = (struct kv_ref){keys[i], values[i]};
    qsort(kv, n, sizeof(*kv), kv_cmp);
    buf_puts(b, "{");
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(b, ',');
        json_str(b, kv[i].k);
        buf_putc(b, ':');
        json_str(b, kv[i].v);
    }
    buf_puts(b, "}");
    if (kv != stack)
        free(kv);
}

static void string_array(struct buf *b, const char *const *v, size_t n)
{
    buf_puts(b, "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(b, ',');
        json_str(b, v[i]);
    }
    buf_puts(b, "]");
}

static void label_selector(struct buf *b, const struct api_label_selector *s)
{
    if (!s) {
        buf_puts(b, "null");
        return;
    }
    buf_puts(b, "{");
    if (s->nmatch) {
        buf_puts(b, "\"matchLabels\":");
        string_map(b, s->match_keys, s->match_values, s->nmatch);
    }
    if (s->nexprs) {
        buf_puts(b, s->nmatch ? ",\"matchExpressions\":[" : "\"matchExpressions\":[");
        for (size_t i = 0; i < s->nexprs; i++) {
            const struct api_label_selector_expr *e = &s->exprs[i];
            buf_puts(b, i ? ",{" : "{");
            field_str(b, false, "key", e->key);
            field_str(b, true, "operator", e->op);
            if (e->nvalues) {
                buf_puts(b, ",\"values\":");
                string_array(b, e->values, e->nvalues);
            }
            buf_puts(b, "}");
        }
        buf_puts(b, "]");
    }
    buf_puts(b, "}");
}

/* "timestamp", the optional window and "value", in Go's field order. */
static void time_window_value(struct buf *b, int64_t ts_ms, const char *window_key, int64_t window_s,
                              const char *quantity)
{
    buf_puts(b, ",\"timestamp\":");
    api_json_time(b, ts_ms);
    if (window_s >= 0)
        buf_printf(b, ",\"%s\":%lld", window_key, (long long)window_s);
    field_str(b, true, "value", quantity);
}

int api_json_metric_value_list(struct buf *b, enum api_cm_version ver, const struct api_metric_value *items,
                               size_t n, const struct api_label_selector *selector)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(items[i].value))
            return -EDOM;
    bool v2 = ver == API_CM_V1BETA2;
    object_head(b, "MetricValueList", v2 ? "custom.metrics.k8s.io/v1beta2" : "custom.metrics.k8s.io/v1beta1");
    buf_puts(b, ",\"items\":[");
    for (size_t i = 0; i < n; i++) {
        const struct api_metric_value *it = &items[i];
        char q[API_QUANTITY_MAX];
        api_quantity_format(it->value, q, sizeof(q));
        buf_puts(b, i ? ",{\"describedObject\":" : "{\"describedObject\":");
        object_ref(b, &it->object);
        if (v2) {
            buf_puts(b, ",\"metric\":{");
            field_str(b, false, "name", it->metric);
            buf_puts(b, ",\"selector\":");
            label_selector(b, selector);
            buf_puts(b, "}");
            time_window_value(b, it->timestamp_ms, "windowSeconds", it->window_s, q);
        } else {
            field_str(b, true, "metricName", it->metric);
            time_window_value(b, it->timestamp_ms, "window", it->window_s, q);
            buf_puts(b, ",\"selector\":");
            label_selector(b, selector);
        }
        buf_puts(b, "}");
    }
    buf_puts(b, "]}");
    return 0;
}

int api_json_external_value_list(struct buf *b, const struct api_external_value *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(items[i].value))
            return -EDOM;
    object_head(b, "ExternalMetricValueList", "external.metrics.k8s.io/v1beta1");
    buf_puts(b, ",\"items\":[");
    for (size_t i = 0; i < n; i++) {
        const struct api_external_value *it = &items[i];
        char q[API_QUANTITY_MAX];
        api_quantity_format(it->value, q, sizeof(q));
        buf_puts(b, i ? ",{" : "{");
        field_str(b, false, "metricName", it->metric);
        buf_puts(b, ",\"metricLabels\":");
        string_map(b, it->label_names, it->label_values, it->nlabels);
        time_window_value(b, it->timestamp_ms, "window", it->window_s, q);
        buf_puts(b, "}");
    }
    buf_puts(b, "]}");
    return 0;
}

void api_json_status(struct buf *b, int code, const char *reason, const char *message)
{
    object_head(b, "Status", "v1");
    field_str(b, true, "status", "Failure");
    if (nonempty(message))
        field_str(b, true, "message", message);
    if (nonempty(reason))
        field_str(b, true, "reason", reason);
    if (code)
        buf_printf(b, ",\"code\":%d", code);
    buf_puts(b, "}");
}

void api_json_resource_list(struct buf *b, const char *group_version, const struct api_resource *res,
                            size_t n)
{
    object_head(b, "APIResourceList", "v1");
    field_str(b, true, "groupVersion", group_version);
    buf_puts(b, ",\"resources\":[");
    for (size_t i = 0; i < n; i++) {
        buf_puts(b, i ? ",{" : "{");
        field_str(b, false, "name", res[i].name);
        buf_printf(b, ",\"singularName\":\"\",\"namespaced\":%s", res[i].namespaced ? "true" : "false");
        field_str(b, true, "kind", res[i].kind);
        buf_puts(b, ",\"verbs\":[\"get\"]}");
    }
    buf_puts(b, "]}");
}

static void group_version(struct buf *b, const char *group, const char *version)
{
    buf_puts(b, "{\"groupVersion\":");
    struct buf gv = BUF_INIT;
    buf_printf(&gv, "%s/%s", group, version);
    api_json_string(b, gv.data, gv.len);
    buf_free(&gv);
    field_str(b, true, "version", version);
    buf_puts(b, "}");
}

/* The fields of an APIGroup after its TypeMeta (comma: whether one precedes them). */
static void group_body(struct buf *b, bool comma, const struct api_group *g)
{
    field_str(b, comma, "name", g->name);
    buf_puts(b, ",\"versions\":[");
    for (size_t i = 0; i < g->nversions; i++) {
        if (i)
            buf_putc(b, ',');
        group_version(b, g->name, g->versions[i]);
    }
    buf_puts(b, "],\"preferredVersion\":");
    group_version(b, g->name, g->preferred);
}

void api_json_group_list(struct buf *b, const struct api_group *groups, size_t n)
{
    object_head(b, "APIGroupList", "v1");
    buf_puts(b, ",\"groups\":[");
    for (size_t i = 0; i < n; i++) {
        /* an APIGroup inside a list has an empty TypeMeta: omitted */
        buf_puts(b, i ? ",{" : "{");
        group_body(b, false, &groups[i]);
        buf_puts(b, "}");
    }
    buf_puts(b, "]}");
}

void api_json_group(struct buf *b, const struct api_group *group)
{
    object_head(b, "APIGroup", "v1");
    group_body(b, true, group);
    buf_puts(b, "}");
}

void api_json_api_versions(struct buf *b, const char *const *versions, size_t n)
{
    object_head(b, "APIVersions", "v1");
    buf_puts(b, ",\"versions\":");
    string_array(b, versions, n);
    buf_puts(b, ",\"serverAddressByClientCIDRs\":[]}");
}

void api_json_version_info(struct buf *b, const struct api_version_info *v)
{
    buf_puts(b, "{");
    field_str(b, false, "major", v->major);
    field_str(b, true, "minor", v->minor);
    field_str(b, true, "gitVersion", v->git_version);
    field_str(b, true, "gitCommit", v->git_commit);
    field_str(b, true, "gitTreeState", v->git_tree_state);
    field_str(b, true, "buildDate", v->build_date);
    field_str(b, true, "goVersion", v->go_version);
    field_str(b, true, "compiler", v->compiler);
    field_str(b, true, "platform", v->platform);
    buf_puts(b, "}");
}
