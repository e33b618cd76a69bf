#ifndef ADAPTER_KUBE_H
#define ADAPTER_KUBE_H

/*
 * kube: a small Kubernetes API client (libcurl + jansson; kubeconfig through
 * libyaml).
 *
 * Where the API is: --kubeconfig (its current context: cluster server,
 * certificate-authority[-data], insecure-skip-tls-verify; user token,
 * tokenFile, client-certificate[-data], client-key[-data]; relative paths
 * are relative to the kubeconfig's directory), else the in-cluster service
 * account (KUBERNETES_SERVICE_HOST/PORT, the token and ca.crt under
 * /var/run/secrets/kubernetes.io/serviceaccount; the token file is re-read
 * so that rotated tokens are used).
 *
 * Every call has a per-attempt timeout and retries transport errors, 429 and
 * 5xx answers with exponential backoff (100 ms, 200 ms, ...), so a call takes
 * at most about (retries + 1) * timeout plus the backoff.
 *
 * Errors: 0 or a negative errno: -ETIMEDOUT (no answer in time), -EIO
 * (transport error or an unexpected answer), -EPROTO (an answer that is not
 * the JSON expected).
 *
 * Thread safety: after kube_new(), every call is safe from any thread (one
 * curl easy handle per call).
 */

#include <stddef.h>

#include <jansson.h>

struct kube;

/*
 * kube_new - a client from @kubeconfig_path, or the in-cluster
 * configuration when it is NULL or "".
 * @timeout_ms: per attempt; @retries: extra attempts after the first.
 * Returns 0, -ENOENT (no kubeconfig given and not in a cluster), -EINVAL
 * (a kubeconfig that does not parse or names no server; logged), or the
 * errno of reading a file. *out is written only on success.
 */
int kube_new(const char *kubeconfig_path, unsigned timeout_ms, unsigned retries, struct kube **out);
void kube_free(struct kube *k);
/* The API server's base URL ("https://10.0.0.1:443"). */
const char *kube_server(const struct kube *k);

/*
 * kube_request - one JSON call. @body: request body or NULL (not stolen).
 * On 0, *status is the HTTP status and *out the parsed body (NULL when the
 * body is empty or not JSON); the caller json_decref()s it.
 */
int kube_request(struct kube *k, const char *method, const char *path, json_t *body, long *status,
                 json_t **out);

/*
 * kube_get - a GET with this Accept header (e.g. a metadata-only list:
 * "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
 * retried as kube_request is. Same results as kube_request, and -ECANCELED
 * when @stop (NULL: never) turns non-zero during the call (checked about once
 * a second), so that a shutdown does not wait for a slow API server.
 */
int kube_get(struct kube *k, const char *path, const char *accept, const int *stop, long *status,
             json_t **out);

/* Called once per line of a watch's answer (without the newline); non-zero ends the watch. */
typedef int (*kube_line_fn)(void *ctx, const char *line, size_t len);

/*
 * kube_watch - a streamed GET (a watch): @fn gets each newline-delimited
 * line as it arrives, whatever the status (the caller checks *status after,
 * and ignores lines of a non-200 answer). No overall timeout: the call lasts
 * until the server ends the answer (ask with timeoutSeconds), @fn returns
 * non-zero, or *@stop turns non-zero (checked about once a second; then
 * -ECANCELED). Not retried. Returns 0 when the answer ended (or @fn ended
 * it) with *status set, or a negative errno.
 */
int kube_watch(struct kube *k, const char *path, const char *accept, kube_line_fn fn, void *ctx,
               const int *stop, long *status);

/* A user as the API describes it (TokenReview status, SubjectAccessReview spec). */
struct kube_user {
    char *name;
    char *uid;
    char **groups;
    size_t ngroups;
    char **extra_keys; /* parallel arrays: one (key, value) per entry; a key may repeat */
    char **extra_values;
    size_t nextra;
};
void kube_user_add_group(struct kube_user *u, const char *g);
void kube_user_add_extra(struct kube_user *u, const char *key, const char *value);
void kube_user_free(struct kube_user *u);

/* SubjectAccessReview attributes (kube-apiserver's request info). */
struct kube_attrs {
    int is_resource;
    const char *verb;
    /* resource requests */
    const char *ns, *group, *version, *resource, *subresource, *name;
    /* non-resource requests */
    const char *path;
};

/* The SubjectAccessReview object sent for @u and @a (exposed for tests). */
json_t *kube_sar_body(const struct kube_user *u, const struct kube_attrs *a);

/*
 * kube_sar - POST a SubjectAccessReview. *allowed is 1 or 0; @reason (may be
 * NULL) gets status.reason. Returns 0 or a negative errno (no decision).
 */
int kube_sar(struct kube *k, const struct kube_user *u, const struct kube_attrs *a, int *allowed,
             char *reason, size_t reasonlen);

/*
 * kube_token_review - POST a TokenReview for @token. On 0, *authenticated is
 * 1 (and @u filled: the caller kube_user_free()s it) or 0. Negative errno
 * when the API could not decide.
 */
int kube_token_review(struct kube *k, const char *token, int *authenticated, struct kube_user *u);

/*
 * kube_configmap_data - GET /api/v1/namespaces/@ns/configmaps/@name; *data
 * is a new reference to its "data" object (an empty object when it has
 * none). Returns 0, -ENOENT (404), -EACCES (401/403) or another negative errno.
 */
int kube_configmap_data(struct kube *k, const char *ns, const char *name, json_t **data);

#endif /* ADAPTER_KUBE_H */
