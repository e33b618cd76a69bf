#ifndef ADAPTER_AUTH_H
#define ADAPTER_AUTH_H

/*
 * auth: authentication and authorization of the secure listener, as
 * kube-apiserver's delegated chain does it, and the client-certificate check
 * of the ingest listener.
 *
 * Authentication, first success wins:
 *  1. request-header: a client certificate that verifies against the
 *     --requestheader-client-ca-file list, with a CN in
 *     --requestheader-allowed-names (empty = any): the user is the first
 *     non-empty username header, groups every group header (repeated), extras
 *     every header under an extra prefix (key lower-cased and
 *     percent-decoded, as kube-apiserver does). Identity headers from any
 *     other client are ignored.
 *  2. client certificate: verifies against --client-ca-file: user = CN,
 *     groups = O.
 *  3. Authorization: Bearer: a TokenReview (when a Kubernetes API is
 *     configured; answers cached).
 * A certificate or token that fails to verify, and a front-proxy certificate
 * with a CN not allowed, is an error unless a later step succeeds: 401, as
 * kube-apiserver answers ("Unable to authenticate the request"); it is not
 * downgraded to anonymous. With no credentials at all the request is
 * system:anonymous (group system:unauthenticated), or 401 with
 * --anonymous-auth=false. Authenticated users get system:authenticated.
 *
 * Authorization: /healthz, /livez, /readyz (and below) skip it;
 * --authorization-always-allow and the group system:masters allow; anything
 * else is a SubjectAccessReview with kube-apiserver's request attributes
 * for the path (auth_request_attrs()), decisions cached (allow and deny) for
 * the cache TTL in a bounded direct-mapped table. Denied: 403; the API could
 * not decide: 500 (not cached). Bodies are metav1.Status JSON.
 *
 * Thread safety: auth_guard and auth_ingest_guard run on any pool thread;
 * auth_new/auth_free from main.
 */

#include <stddef.h>

#include "http.h"
#include "kube.h"

struct tls_trust;
struct auth;

struct auth_config {
    struct tls_trust *requestheader_ca; /* NULL: no front proxy */
    struct tls_trust *client_ca;        /* NULL: no client certificates */
    const char *allowed_names;          /* comma-separated CNs; "" = any */
    const char *username_headers;       /* comma-separated, e.g. "X-Remote-User" */
    const char *group_headers;          /* "X-Remote-Group" */
    const char *extra_prefixes;         /* "X-Remote-Extra-" */
    int anonymous;                      /* --anonymous-auth */
    int always_allow;                   /* --authorization-always-allow */
    struct kube *kube;                  /* NULL: no TokenReview, SAR denies */
    unsigned cache_ttl_ms;              /* 0: 10 s */
    unsigned cache_size;                /* entries; 0: 4096 */
};

/* Copies what it needs from @cfg (borrows the trusts and the kube client). Returns 0. */
int auth_new(const struct auth_config *cfg, struct auth **out);
void auth_free(struct auth *a);

/* The http_guard_fn of the secure listener; @ctx is the struct auth. */
int auth_guard(void *ctx, struct http_request *req, struct http_response *resp);

/* The http_guard_fn of a TLS ingest listener; @ctx is the ingest client CA
 * (struct tls_trust). Sets req->authenticated for a verified client
 * certificate; never refuses (ingest still accepts its bearer token). */
int auth_ingest_guard(void *ctx, struct http_request *req, struct http_response *resp);

/* Counters for tests and /metrics-style checks. */
struct auth_stats {
    unsigned long sar_calls, sar_cache_hits, token_calls, token_cache_hits;
};
void auth_get_stats(struct auth *a, struct auth_stats *out);

/*
 * The whole trust set-up from the flags, for main: the Kubernetes client
 * (--kubeconfig, else in-cluster, else none), the CA trust lists (from the
 * flags; a CA flag left empty is read from
 * kube-system/extension-apiserver-authentication when a Kubernetes API is
 * configured: client-ca-file, and requestheader-client-ca-file with the
 * requestheader-* lists, which are JSON arrays in strings), the serving
 * credentials (--tls-cert-file or a self-signed pair in --cert-dir), the
 * ingest TLS credentials and CA, and the struct auth. Every file is added to
 * the reload watcher; tls_watch_start() is left to the caller.
 *
 * Returns 0, -EINVAL (a bad file or kubeconfig: the caller exits 2) or
 * another negative errno (exit 1); each failure is logged with its flag.
 * auth_stack_free() releases whatever was set up, after the listeners stop.
 */
struct ma_config;
struct tls_server;
struct auth_stack {
    struct kube *kube;
    struct tls_trust *rh_ca, *client_ca, *ingest_ca;
    struct tls_server *serving, *ingest_serving;
    struct auth *auth;
};
int auth_stack_new(const struct ma_config *cfg, struct auth_stack *st);
void auth_stack_free(struct auth_stack *st);

/* ---- pieces exposed for tests and the fuzz target ---------------------- */

/*
 * auth_request_attrs - kube-apiserver's request info for @method and the
 * decoded @path: resource attributes for /api/{v}/... and
 * /apis/{group}/{v}/... with at least a resource, else non-resource
 * attributes (path, verb = lower-case method). Strings point into @buf.
 * Returns 0 or -ENOSPC (path too long for @buf).
 */
int auth_request_attrs(const char *method, const char *path, struct kube_attrs *a, char *buf, size_t buflen);

/* The token of "Bearer <token>" (scheme case-insensitive, blanks trimmed):
 * 0 with *tok and *len, or -ENOENT. */
int auth_bearer(const char *header, const char **tok, size_t *len);

/* An extra key from the header-name suffix after the prefix: lower-cased,
 * percent-decoded. Returns 0 or -EINVAL (bad escape, empty, too long). */
int auth_extra_key(const char *suffix, char *out, size_t outlen);

/*
 * Front-proxy identity headers, one header at a time (the order received):
 * auth_headers_begin() clears @u; auth_headers_add() applies one header;
 * auth_headers_end() returns 0 when a user name was found, -ENOENT otherwise.
 */
struct auth_hdr_state {
    const struct auth *a;
    struct kube_user *u;
    int user_rank; /* index of the username header that set u->name; -1 = none */
};
void auth_headers_begin(const struct auth *a, struct auth_hdr_state *st, struct kube_user *u);
void auth_headers_add(struct auth_hdr_state *st, const char *name, const char *value);
int auth_headers_end(struct auth_hdr_state *st);

#endif /* ADAPTER_AUTH_H */
