#ifndef ADAPTER_SERVE_H
#define ADAPTER_SERVE_H

/*
 * serve: the metrics APIs over HTTP, and the rule set they are served with.
 *
 * Routes (GET; anything else is 405 with a Status body):
 *
 *   /apis/custom.metrics.k8s.io/{v1beta1|v1beta2}/namespaces/{ns}/{resource[.group]}/{name|*}/{metric}
 *   /apis/custom.metrics.k8s.io/{ver}/{resource}/{name|*}/{metric}        root-scoped (nodes)
 *   /apis/custom.metrics.k8s.io/{ver}/namespaces/{ns}/metrics/{metric}    the namespace itself
 *   /apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}
 *       query: labelSelector, metricLabelSelector (full selector syntax, 400 on error)
 *   /apis/custom.metrics.k8s.io/{ver}, /apis/external.metrics.k8s.io/v1beta1
 *       discovery APIResourceList: every (resource, metric) the rules serve
 *       from the series present; one placeholder resource while none is known
 *   /api, /apis, /apis/{group}, /version      so that kubectl --server works directly
 *   /openapi/v2, /openapi/v3                  404
 *   /readyz                                   200 once one rate window of data has
 *                                             been received since start (or a snapshot
 *                                             was loaded) and the pod metadata cache,
 *                                             when enabled, has synced; else 503
 *
 * Object and namespace reads answer exactly one item, wildcard reads at least
 * one; otherwise 404 NotFound. Errors are metav1.Status JSON, and errors
 * become HTTP statuses in exactly one place (serve.c: answer_error()).
 *
 * The rule set: built at start from --config (prometheus-adapter syntax) or
 * the defaults, published through an RCU pointer (rcu_assign_pointer),
 * read with rcu_dereference() inside the read-side section that also covers
 * the store reads of one request, and replaced by serve_reload() (SIGHUP):
 * build new, publish, synchronize_rcu(), free old.
 *
 * Thread safety: serve_new/serve_add_routes/serve_free from main; handlers on
 * any HTTP pool thread; serve_reload from the signal thread; serve_rules_ptr
 * readers from any registered RCU thread.
 */

#include "flags.h"
#include "http.h"
#include "rules.h"
#include "store.h"

struct serve;

/*
 * serve_new - load the rule set (--config, else the defaults) and prepare
 * the handlers.
 * @cfg: the flags (read now; config_path is copied).
 * @st: the store the handlers read; outlives the serve.
 * Returns 0; -EINVAL (a configuration the adapter refuses: logged with the
 * rule's name, the caller exits 2) or the negative errno of reading the file.
 * *out is written only on success. Call from a registered RCU thread.
 */
int serve_new(const struct ma_config *cfg, struct store *st, struct serve **out);

/* Add /readyz, and with @with_api the metrics-API, discovery, /api, /apis and
 * /version routes, to @srv. Before http_start(). */
int serve_add_routes(struct serve *sv, struct http_server *srv, int with_api);

/*
 * serve_mark_warm - a snapshot was loaded into the store: /readyz answers 200
 * from now on (DESIGN 7), without waiting for a rate window of new data.
 * Safe from any thread.
 */
void serve_mark_warm(struct serve *sv);

/*
 * serve_reload - rebuild the rule set from the same source and publish it;
 * the old set is freed after a grace period. On failure the old set stays
 * (logged). Returns 0 or the load error. Must not be called from a read-side
 * critical section.
 */
int serve_reload(struct serve *sv);

/*
 * serve_rules_ptr - the RCU-published rule-set pointer, for other modules
 * (ingest drops series no rule can use). Read it as
 *     rcu_read_lock(); set = rcu_dereference(*serve_rules_ptr(sv)); ... rcu_read_unlock();
 */
struct rules_set **serve_rules_ptr(struct serve *sv);

/* After the listeners are stopped. Frees the published rule set. */
void serve_free(struct serve *sv);

/*
 * serve_path_parse - the router's parser, exposed for the fuzz target and
 * tests. Splits a decoded path into its metrics-API request. Returns one of
 * enum serve_route and fills @p (pointers into @buf, a copy of the path).
 */
enum serve_route {
    SERVE_R_NOT_FOUND = 0, /* not a path this module knows: 404 */
    SERVE_R_BAD,           /* a metrics-API path that is malformed: 400 */
    SERVE_R_API,           /* /api */
    SERVE_R_APIS,          /* /apis */
    SERVE_R_GROUP,         /* /apis/{metrics group} */
    SERVE_R_DISCOVERY,     /* /apis/{group}/{version} */
    SERVE_R_CUSTOM,        /* a custom-metrics read */
    SERVE_R_EXTERNAL,      /* an external-metrics read */
    SERVE_R_VERSION,       /* /version */
    SERVE_R_OPENAPI,       /* /openapi/...: 404 */
};

struct serve_path {
    int external;   /* external.metrics.k8s.io */
    int v1beta1;    /* custom v1beta1 (else v1beta2) */
    const char *ns; /* NULL when root-scoped */
    const char *resource;
    const char *name; /* NULL for "*" */
    const char *metric;
    int namespace_object; /* namespaces/{ns}/metrics/{metric} */
};

#define SERVE_PATH_MAX 4096

enum serve_route serve_path_parse(const char *path, char *buf, size_t bufsize, struct serve_path *p);

#endif /* ADAPTER_SERVE_H */
