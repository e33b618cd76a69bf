#ifndef API_K8S_JSON_H
#define API_K8S_JSON_H

/*
 * k8s_json: JSON encoders for the Kubernetes objects the adapter serves.
 *
 * Field names, field order and omitempty rules follow the Go types and
 * encoding/json, so that a body is byte for byte what an apiserver built on
 * custom-metrics-apiserver would send:
 *
 *   custom.metrics.k8s.io/v1beta1 MetricValueList   items: describedObject,
 *       metricName, timestamp, window (omitempty), value, selector (null when
 *       absent: the tag has no omitempty)
 *   custom.metrics.k8s.io/v1beta2 MetricValueList   items: describedObject,
 *       metric{name, selector (null when absent)}, timestamp, windowSeconds
 *       (omitempty), value
 *   external.metrics.k8s.io/v1beta1 ExternalMetricValueList   items:
 *       metricName, metricLabels (an object, keys sorted), timestamp, window
 *       (omitempty), value
 *   v1 Status, APIResourceList, APIGroupList, APIGroup, APIVersions, and the
 *       /version document (version.Info, which has no kind).
 *
 * Every Kubernetes object body starts with kind and apiVersion and carries
 * "metadata":{}. Timestamps are RFC 3339 in UTC at second precision
 * (metav1.Time). Values are canonical resource.Quantity strings
 * (api_quantity_format); an encoder handed a NaN or infinite value refuses
 * the whole body (-EDOM) and leaves the buffer as it was, so such a value can
 * never reach the wire: callers drop those items first.
 *
 * Strings are escaped as encoding/json does: quote, backslash and control
 * characters, '<', '>', '&', U+2028 and U+2029 escaped, each byte of an
 * invalid UTF-8 sequence replaced by U+FFFD.
 *
 * Encoders append to a struct buf (api/buf.h). Thread-safe: no shared state.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* v1.ObjectReference as the metrics APIs use it. Core objects (pods,
 * namespaces, nodes, services) have api_version "/v1" (group "" + "/" +
 * version), as custom-metrics-apiserver writes them. NULL or "" fields are
 * omitted (every field is omitempty). */
struct api_object_ref {
    const char *kind;
    const char *namespace_;
    const char *name;
    const char *api_version;
};

/* metav1.LabelSelectorRequirement: op is "In", "NotIn", "Exists" or
 * "DoesNotExist"; values are omitted when nvalues is 0. */
struct api_label_selector_expr {
    const char *key;
    const char *op;
    const char *const *values;
    size_t nvalues;
};

/* metav1.LabelSelector: matchLabels (written with keys sorted, as Go writes
 * a map) and matchExpressions (in the order given); both omitted when
 * empty. adapter/selector.h builds one from a parsed selector. */
struct api_label_selector {
    const char *const *match_keys;
    const char *const *match_values;
    size_t nmatch;
    const struct api_label_selector_expr *exprs;
    size_t nexprs;
};

/* One item of a custom-metrics MetricValueList. */
struct api_metric_value {
    struct api_object_ref object;
    const char *metric;   /* metric name */
    int64_t timestamp_ms; /* newest sample used, Unix ms (written at second precision) */
    int64_t window_s;     /* rate window in seconds; < 0: omitted (instantaneous value) */
    double value;
};

/* One item of an ExternalMetricValueList. */
struct api_external_value {
    const char *metric;
    const char *const *label_names; /* metricLabels, any order (written sorted) */
    const char *const *label_values;
    size_t nlabels;
    int64_t timestamp_ms;
    int64_t window_s; /* < 0: omitted */
    double value;
};

enum api_cm_version {
    API_CM_V1BETA1,
    API_CM_V1BETA2,
};

/* An APIResource of a discovery APIResourceList; singularName is "" and
 * verbs ["get"], as for every metrics-API resource. */
struct api_resource {
    const char *name; /* e.g. "pods/http_requests" */
    bool namespaced;
    const char *kind; /* "MetricValueList" or "ExternalMetricValueList" */
};

/* An APIGroup: versions[0..n) as "group/version" pairs, preferred one named. */
struct api_group {
    const char *name;            /* "custom.metrics.k8s.io" */
    const char *const *versions; /* "v1beta2", "v1beta1" */
    size_t nversions;
    const char *preferred; /* one of versions */
};

/* version.Info for /version; NULL fields are written as "". */
struct api_version_info {
    const char *major, *minor, *git_version, *git_commit, *git_tree_state, *build_date, *go_version,
        *compiler, *platform;
};

/*
 * api_json_metric_value_list: a custom.metrics.k8s.io MetricValueList.
 * @b: appended to.
 * @ver: v1beta1 (flat metricName, window, selector) or v1beta2 (metric{name,
 *       selector}, windowSeconds).
 * @items, @n: the items, in the order to write them (n may be 0).
 * @selector: the metric selector of the request, written in every item;
 *       NULL when the request had none (written as null).
 * Returns 0; -EDOM if an item's value is NaN or infinite (b unchanged).
 */
int api_json_metric_value_list(struct buf *b, enum api_cm_version ver, const struct api_metric_value *items,
                               size_t n, const struct api_label_selector *selector);

/* api_json_external_value_list: an external.metrics.k8s.io/v1beta1
 * ExternalMetricValueList. Returns 0; -EDOM on a non-finite value (b unchanged). */
int api_json_external_value_list(struct buf *b, const struct api_external_value *items, size_t n);

/*
 * api_json_status: a failed metav1.Status,
 *   {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
 *    "message":..., "reason":..., "code":...}
 * @code: the HTTP status (404, 400...); @reason: "NotFound", "BadRequest"...
 * (omitted when NULL or ""); @message: human-readable text (may hold any
 * bytes: it is escaped).
 */
void api_json_status(struct buf *b, int code, const char *reason, const char *message);

/* api_json_resource_list: a discovery APIResourceList for group_version
 * ("custom.metrics.k8s.io/v1beta2"). */
void api_json_resource_list(struct buf *b, const char *group_version, const struct api_resource *res,
                            size_t n);

/* api_json_group_list: the APIGroupList of /apis. */
void api_json_group_list(struct buf *b, const struct api_group *groups, size_t n);

/* api_json_group: one APIGroup, as /apis/<group> answers. */
void api_json_group(struct buf *b, const struct api_group *group);

/* api_json_api_versions: the APIVersions of /api (the core group's
 * versions; n may be 0 for a server without the core group).
 * serverAddressByClientCIDRs is written as [] (not null: the field is
 * required, and strict clients such as the Python client refuse null). */
void api_json_api_versions(struct buf *b, const char *const *versions, size_t n);

/* api_json_version_info: the /version document (version.Info). */
void api_json_version_info(struct buf *b, const struct api_version_info *info);

/* api_json_string: s[0..len) as a JSON string literal, quotes included. */
void api_json_string(struct buf *b, const char *s, size_t len);

/* api_json_time: Unix ms as a quoted RFC 3339 UTC timestamp at second
 * precision ("2024-05-01T12:00:00Z"); the milliseconds are truncated, as
 * metav1.Time's JSON form drops sub-second digits. */
void api_json_time(struct buf *b, int64_t unix_ms);

#endif /* API_K8S_JSON_H */
