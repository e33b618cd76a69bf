#ifndef ADAPTER_QUERY_H
#define ADAPTER_QUERY_H

/*
 * query: evaluate one metrics-API read against the series store.
 *
 * A read names a metric, a resource ("pods", "deployments.apps",
 * "namespaces", "nodes"...) or the external API, a namespace, an object
 * name or "*", and two optional selectors. Evaluation, as prometheus-adapter
 * does it with PromQL but straight from memory:
 *
 *   1. rules_lookup_custom/_external give the rules that can serve the
 *      metric, in order, with the source series name each reads; the first
 *      whose source exists in the store (and whose name and type the rule
 *      confirms) and which yields at least one item answers;
 *   2. the series of that source name in the groups the namespace allows are
 *      selected by the rule (object and namespace matchers, its extra
 *      matchers), then by labelSelector and metricLabelSelector; for pods
 *      with a synced pod metadata cache (podcache.h) labelSelector is matched
 *      against the pod's own labels, otherwise against the series' labels;
 *   3. each series gets one value: fn (rate, irate, increase) over the
 *      rule's window ending at the request's arrival time, or its newest
 *      sample for fn none; a series whose newest sample is older than the TTL
 *      gives nothing; non-finite values are left out;
 *   4. values are aggregated per object (custom) or per group-by label set
 *      (external) with the rule's agg; an item whose aggregate is not finite
 *      is left out; its timestamp is the newest sample used.
 *
 * Read-side section: the caller holds one around query_eval(), because the
 * rule set it dereferenced must stay valid for the whole evaluation. The
 * section is bounded by the series the request selects (one group for a
 * namespaced read) and never spans I/O: everything the answer needs is
 * copied out into the result (its own memory), so the JSON is built and the
 * response sent after rcu_read_unlock().
 *
 * Errors are negative errno values: -ENOENT when no rule serves the metric
 * for the resource or nothing matched (the caller answers 404), -ENOMEM
 * never (allocation failure aborts). Thread-safe: any number of reads run at
 * once; the caller must be a registered RCU thread.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rules.h"
#include "selector.h"
#include "store.h"

struct query_request {
    bool external;
    const char *ns;       /* namespace, or NULL (root-scoped objects, namespaces/{ns}/metrics reads) */
    const char *resource; /* custom: "pods", "deployments.apps", "namespaces"...; NULL for external */
    const char *name;     /* custom: object name, or NULL for "*" (any object); NULL for external */
    const char *metric;
    const struct sel_selector *label_sel;  /* labelSelector, or NULL */
    const struct sel_selector *metric_sel; /* metricLabelSelector (custom only), or NULL */
    int64_t now_ms;                        /* the request's arrival: the window ends here */
    int64_t ttl_ms;                        /* series idle longer than this are not served */
};

/* One answer item. Strings belong to the result. */
struct query_item {
    const char *object;        /* custom: the object's name */
    const char *ns;            /* custom: the object's namespace, or NULL (root-scoped) */
    const char *const *lnames; /* external: metricLabels, sorted by name */
    const char *const *lvalues;
    size_t nlabels;
    double value;
    int64_t timestamp_ms; /* newest sample used */
    int64_t window_s;     /* the rule's window in seconds; -1 for an instantaneous value */
};

struct query_result {
    struct query_item *items; /* custom: sorted by object name; external: by label set */
    size_t n;
    const struct rules_rule *rule; /* the rule that answered: part of the rule set, valid only until
                                      rcu_read_unlock() (unlike everything else in the result) */
    /* private */
    struct query__chunk *_mem;
    size_t _cap;
};

/*
 * query_eval - evaluate @q with @rules against @st.
 * @out: filled on success; release it with query_result_free() whatever the
 *       result (it is initialised first).
 * Returns 0 with at least one item, or -ENOENT (no rule for the metric and
 * resource, no such series, or every value was filtered out).
 * Call with rcu_read_lock held (the same section in which @rules was
 * rcu_dereference()d); the result stays valid after rcu_read_unlock().
 */
int query_eval(const struct rules_set *rules, struct store *st, const struct query_request *q,
               struct query_result *out);

void query_result_free(struct query_result *r);

/* rules_type of a store metric's remote-write metadata type. */
enum rules_type query_rules_type(int api_rw_type);

#endif /* ADAPTER_QUERY_H */
