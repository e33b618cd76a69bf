/*
 * kube: the Kubernetes API client.
 *
 * DESIGN: the configuration (server, credentials) is read once in
 * kube_new() and never changes, so calls share it without locks. Each call
 * uses its own curl easy handle: calls are rare (authorization answers are
 * cached by auth) and this keeps the client trivially thread-safe. Bodies go
 * through jansson both ways; no JSON is written or parsed by hand.
 */
#include "kube.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <gnutls/gnutls.h>
#include <yaml.h>

#include "buf.h"
#include "log.h"
#include "xalloc.h"

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct kube {
    char *server;
    char *token;      /* static token, or NULL */
    char *token_file; /* re-read per call, or NULL */
    char *ca_file;
    struct buf ca_data; /* PEM, from certificate-authority-data */
    char *cert_file, *key_file;
    struct buf cert_data, key_data;
    int insecure;
    unsigned timeout_ms, retries;
};

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "fatal: out of memory\n");
        abort();
    }
    return q;
}

/* ---- kubeconfig --------------------------------------------------------- */

static yaml_node_t *map_get(yaml_document_t *d, yaml_node_t *m, const char *key)
{
    if (!m || m->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(d, p->key);
        if (k && k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0)
            return yaml_document_get_node(d, p->value);
    }
    return NULL;
}

static const char *scalar(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* The entry of a named list (clusters, users, contexts) with this name: its inner object. */
static yaml_node_t *named(yaml_document_t *d, yaml_node_t *root, const char *list, const char *name,
                          const char *inner)
{
    yaml_node_t *seq = map_get(d, root, list);
    if (!seq || seq->type != YAML_SEQUENCE_NODE || !name)
        return NULL;
    for (yaml_node_item_t *i = seq->data.sequence.items.start; i < seq->data.sequence.items.top; i++) {
        yaml_node_t *e = yaml_document_get_node(d, *i);
        const char *n = scalar(map_get(d, e, "name"));
        if (n && strcmp(n, name) == 0)
            return map_get(d, e, inner);
    }
    return NULL;
}

/* A path from the kubeconfig, made absolute against its directory. */
static char *rel_path(const char *dir, const char *p)
{
    if (!p || !*p)
        return NULL;
    if (p[0] == '/')
        return xstrdup(p);
    struct buf b = {0};
    buf_printf(&b, "%s/%s", dir, p);
    return buf_steal(&b, NULL);
}

static int b64_field(const char *text, struct buf *out)
{
    if (!text)
        return 0;
    gnutls_datum_t in = {(unsigned char *)text, (unsigned)strlen(text)}, dec = {0};
    if (gnutls_base64_decode2(&in, &dec) < 0)
        return -EINVAL;
    buf_append(out, dec.data, dec.size);
    gnutls_free(dec.data);
    return 0;
}

static int load_kubeconfig(struct kube *k, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    int rc = -EINVAL;
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_parser_delete(&parser);
        fclose(f);
        log_error("kubeconfig does not parse", "flag=--kubeconfig path=%s", path);
        return -EINVAL;
    }
    char *pathcopy = xstrdup(path);
    const char *dir = dirname(pathcopy);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    const char *cur = scalar(map_get(&doc, root, "current-context"));
    yaml_node_t *ctx = named(&doc, root, "contexts", cur, "context");
    yaml_node_t *cluster = named(&doc, root, "clusters", scalar(map_get(&doc, ctx, "cluster")), "cluster");
    yaml_node_t *user = named(&doc, root, "users", scalar(map_get(&doc, ctx, "user")), "user");
    const char *server = scalar(map_get(&doc, cluster, "server"));
    if (!server) {
        log_error("kubeconfig names no server for its current context", "flag=--kubeconfig path=%s", path);
        goto out;
    }
    k->server = xstrdup(server);
    size_t n = strlen(k->server);
    while (n && k->server[n - 1] == '/')
        k->server[--n] = '\0';
    k->ca_file = rel_path(dir, scalar(map_get(&doc, cluster, "certificate-authority")));
    const char *insecure = scalar(map_get(&doc, cluster, "insecure-skip-tls-verify"));
    k->insecure = insecure && strcmp(insecure, "true") == 0;
    const char *tok = scalar(map_get(&doc, user, "token"));
    if (tok)
        k->token = xstrdup(tok);
    k->token_file = rel_path(dir, scalar(map_get(&doc, user, "tokenFile")));
    k->cert_file = rel_path(dir, scalar(map_get(&doc, user, "client-certificate")));
    k->key_file = rel_path(dir, scalar(map_get(&doc, user, "client-key")));
    if (b64_field(scalar(map_get(&doc, cluster, "certificate-authority-data")), &k->ca_data) ||
        b64_field(scalar(map_get(&doc, user, "client-certificate-data")), &k->cert_data) ||
        b64_field(scalar(map_get(&doc, user, "client-key-data")), &k->key_data)) {
        log_error("kubeconfig has a *-data field that is not base64", "flag=--kubeconfig path=%s", path);
        goto out;
    }
    rc = 0;
out:
    free(pathcopy);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

static int load_in_cluster(struct kube *k)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    if (!host || !*host || access(SA_DIR "/token", R_OK) != 0)
        return -ENOENT;
    struct buf b = {0};
    if (strchr(host, ':'))
        buf_printf(&b, "https://[%s]:%s", host, port && *port ? port : "443");
    else
        buf_printf(&b, "https://%s:%s", host, port && *port ? port : "443");
    k->server = buf_steal(&b, NULL);
    k->token_file = xstrdup(SA_DIR "/token");
    k->ca_file = xstrdup(SA_DIR "/ca.crt");
    return 0;
}

void kube_free(struct kube *k)
{
    if (!k)
        return;
    free(k->server);
    if (k->token) {
        explicit_bzero(k->token, strlen(k->token));
        free(k->token);
    }
    free(k->token_file);
    free(k->ca_file);
    free(k->cert_file);
    free(k->key_file);
    buf_free(&k->ca_data);
    buf_free(&k->cert_data);
    if (k->key_data.data)
        explicit_bzero(k->key_data.data, k->key_data.len);
    buf_free(&k->key_data);
    free(k);
}

int kube_new(const char *kubeconfig_path, unsigned timeout_ms, unsigned retries, struct kube **out)
{
    static int curl_ready;
    if (!curl_ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl_ready = 1;
    }
    struct kube *k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    k->timeout_ms = timeout_ms ? timeout_ms : 5000;
    k->retries = retries;
    int rc = kubeconfig_path && *kubeconfig_path ? load_kubeconfig(k, kubeconfig_path) : load_in_cluster(k);
    if (rc) {
        kube_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

const char *kube_server(const struct kube *k)
{
    return k->server;
}

/* ---- requests ----------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct buf *b = ud;
    if (b->len + size * n > (64u << 20))
        return 0; /* no answer we ask for is this large */
    buf_append(b, p, size * n);
    return size * n;
}

static char *current_token(struct kube *k)
{
    if (k->token)
        return xstrdup(k->token);
    if (!k->token_file)
        return NULL;
    FILE *f = fopen(k->token_file, "rb");
    if (!f)
        return NULL;
    char tok[16384];
    size_t n = fread(tok, 1, sizeof(tok) - 1, f);
    fclose(f);
    tok[n] = '\0';
    while (n && (tok[n - 1] == '\n' || tok[n - 1] == '\r' || tok[n - 1] == ' '))
        tok[--n] = '\0';
    char *r = n ? xstrdup(tok) : NULL;
    explicit_bzero(tok, sizeof(tok));
    return r;
}

static void set_blob(CURL *c, CURLoption opt, const struct buf *b)
{
    struct curl_blob blob = {.data = b->data, .len = b->len, .flags = CURL_BLOB_COPY};
    curl_easy_setopt(c, opt, &blob);
}

/* How one attempt reads its answer: into a buffer (a JSON call) or streamed (a watch). */
struct reader {
    const char *accept;        /* the Accept header's value */
    curl_write_callback write; /* NULL: on_body into the buffer */
    void *write_ctx;
    const int *stop; /* NULL, or abort once *stop is non-zero */
};

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    const int *stop = ud;
    return __atomic_load_n(stop, __ATOMIC_RELAXED) ? 1 : 0;
}

/* One attempt. 0 with *status, or a negative errno. */
static int attempt_with(struct kube *k, const char *method, const char *url, const char *body,
                        struct buf *resp, const struct reader *rd, long *status)
{
    CURL *c = curl_easy_init();
    if (!c)
        return -ENOMEM;
    struct curl_slist *h = NULL;
    {
        struct buf a = {0};
        buf_printf(&a, "Accept: %s", rd->accept);
        h = curl_slist_append(h, a.data);
        buf_free(&a);
    }
    if (body)
        h = curl_slist_append(h, "Content-Type: application/json");
    char *tok = current_token(k);
    if (tok) {
        struct buf a = {0};
        buf_printf(&a, "Authorization: Bearer %s", tok);
        char *line = buf_steal(&a, NULL);
        h = curl_slist_append(h, line);
        explicit_bzero(line, strlen(line));
        free(line);
        explicit_bzero(tok, strlen(tok));
        free(tok);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)k->timeout_ms);
    if (rd->stop) {
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)rd->stop);
    }
    if (rd->write) {
        /* A watch lasts until the server ends it (timeoutSeconds) or *stop. */
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, rd->write);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, rd->write_ctx);
    } else {
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)k->timeout_ms);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    }
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    if (k->ca_data.len)
        set_blob(c, CURLOPT_CAINFO_BLOB, &k->ca_data);
    else if (k->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, k->ca_file);
    if (k->cert_data.len)
        set_blob(c, CURLOPT_SSLCERT_BLOB, &k->cert_data);
    else if (k->cert_file)
        curl_easy_setopt(c, CURLOPT_SSLCERT, k->cert_file);
    if (k->key_data.len)
        set_blob(c, CURLOPT_SSLKEY_BLOB, &k->key_data);
    else if (k->key_file)
        curl_easy_setopt(c, CURLOPT_SSLKEY, k->key_file);
    if (k->insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    CURLcode cr = curl_easy_perform(c);
    int rc = 0;
    if (cr == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    } else if (cr == CURLE_ABORTED_BY_CALLBACK || (rd->write && cr == CURLE_WRITE_ERROR)) {
        rc = -ECANCELED; /* stopped, or the line callback ended the watch */
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    } else {
        rc = cr == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
        log_warn("Kubernetes API call failed", "method=%s url=%s error=%s", method, url,
                 curl_easy_strerror(cr));
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc;
}

static int attempt(struct kube *k, const char *method, const char *url, const char *body, struct buf *resp,
                   long *status)
{
    const struct reader rd = {.accept = "application/json"};
    return attempt_with(k, method, url, body, resp, &rd, status);
}

int kube_request(struct kube *k, const char *method, const char *path, json_t *body, long *status,
                 json_t **out)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct buf url = {0};
    buf_printf(&url, "%s%s", k->server, path);
    struct buf resp = {0};
    int rc = -EIO;
    for (unsigned i = 0; i <= k->retries; i++) {
        if (i) {
            /* Exponential backoff: 100 ms, 200 ms, 400 ms... */
            struct timespec ts = {.tv_sec = 0, .tv_nsec = 100000000L};
            for (unsigned j = 1; j < i && ts.tv_sec < 5; j++) {
                ts.tv_nsec *= 2;
                ts.tv_sec += ts.tv_nsec / 1000000000L;
                ts.tv_nsec %= 1000000000L;
            }
            nanosleep(&ts, NULL);
        }
        buf_reset(&resp);
        rc = attempt(k, method, url.data, text, &resp, status);
        if (rc == 0 && *status != 429 && *status < 500)
            break;
    }
    if (rc == 0) {
        *out = resp.len ? json_loadb(resp.data, resp.len, 0, NULL) : NULL;
    }
    buf_free(&resp);
    buf_free(&url);
    free(text);
    return rc;
}

int kube_get(struct kube *k, const char *path, const char *accept, const int *stop, long *status,
             json_t **out)
{
    struct buf url = {0};
    buf_printf(&url, "%s%s", k->server, path);
    struct buf resp = {0};
    const struct reader rd = {.accept = accept, .stop = stop};
    int rc = -EIO;
    for (unsigned i = 0; i <= k->retries && rc != -ECANCELED; i++) {
        if (i)
            nanosleep(&(struct timespec){.tv_nsec = 100000000L << (i > 3 ? 3 : i - 1)}, NULL);
        buf_reset(&resp);
        rc = attempt_with(k, "GET", url.data, NULL, &resp, &rd, status);
        if (rc == 0 && *status != 429 && *status < 500)
            break;
    }
    if (rc == 0)
        *out = resp.len ? json_loadb(resp.data, resp.len, 0, NULL) : NULL;
    buf_free(&resp);
    buf_free(&url);
    return rc;
}

/* A watch's answer, cut into lines. */
struct line_reader {
    kube_line_fn fn;
    void *ctx;
    struct buf pending;
    int ended; /* the callback asked to stop */
};

static size_t on_stream(char *p, size_t size, size_t n, void *ud)
{
    struct line_reader *lr = ud;
    size_t len = size * n;
    buf_append(&lr->pending, p, len);
    size_t start = 0;
    for (size_t i = 0; i < lr->pending.len; i++) {
        if (lr->pending.data[i] != '\n')
            continue;
        if (i > start && lr->fn(lr->ctx, lr->pending.data + start, i - start) != 0) {
            lr->ended = 1;
            return 0;
        }
        start = i + 1;
    }
    if (lr->pending.len - start > (16u << 20))
        return 0; /* one event this large is not a pod's metadata */
    memmove(lr->pending.data, lr->pending.data + start, lr->pending.len - start);
    lr->pending.len -= start;
    return len;
}

int kube_watch(struct kube *k, const char *path, const char *accept, kube_line_fn fn, void *ctx,
               const int *stop, long *status)
{
    struct buf url = {0};
    buf_printf(&url, "%s%s", k->server, path);
    struct line_reader lr = {.fn = fn, .ctx = ctx};
    const struct reader rd = {.accept = accept, .write = on_stream, .write_ctx = &lr, .stop = stop};
    *status = 0;
    int rc = attempt_with(k, "GET", url.data, NULL, NULL, &rd, status);
    if (rc == 0 && lr.pending.len && *status == 200)
        fn(ctx, lr.pending.data, lr.pending.len); /* a last line without its newline */
    if (rc == -ECANCELED && lr.ended)
        rc = 0;
    buf_free(&lr.pending);
    buf_free(&url);
    return rc;
}

/* ---- users -------------------------------------------------------------- */

void kube_user_add_group(struct kube_user *u, const char *g)
{
    u->groups = xrealloc(u->groups, (u->ngroups + 1) * sizeof(char *));
    u->groups[u->ngroups++] = xstrdup(g);
}

void kube_user_add_extra(struct kube_user *u, const char *key, const char *value)
{
    u->extra_keys = xrealloc(u->extra_keys, (u->nextra + 1) * sizeof(char *));
    u->extra_values = xrealloc(u->extra_values, (u->nextra + 1) * sizeof(char *));
    u->extra_keys[u->nextra] = xstrdup(key);
    u->extra_values[u->nextra++] = xstrdup(value);
}

void kube_user_free(struct kube_user *u)
{
    free(u->name);
    free(u->uid);
    for (size_t i = 0; i < u->ngroups; i++)
        free(u->groups[i]);
    free(u->groups);
    for (size_t i = 0; i < u->nextra; i++) {
        free(u->extra_keys[i]);
        free(u->extra_values[i]);
    }
    free(u->extra_keys);
    free(u->extra_values);
    memset(u, 0, sizeof(*u));
}

static void set_str(json_t *o, const char *key, const char *v)
{
    if (v && *v)
        json_object_set_new(o, key, json_string(v));
}

json_t *kube_sar_body(const struct kube_user *u, const struct kube_attrs *a)
{
    json_t *spec = json_object();
    set_str(spec, "user", u->name);
    set_str(spec, "uid", u->uid);
    json_t *groups = json_array();
    for (size_t i = 0; i < u->ngroups; i++)
        json_array_append_new(groups, json_string(u->groups[i]));
    json_object_set_new(spec, "groups", groups);
    if (u->nextra) {
        json_t *extra = json_object();
        for (size_t i = 0; i < u->nextra; i++) {
            json_t *list = json_object_get(extra, u->extra_keys[i]);
            if (!list) {
                list = json_array();
                json_object_set_new(extra, u->extra_keys[i], list);
            }
            json_array_append_new(list, json_string(u->extra_values[i]));
        }
        json_object_set_new(spec, "extra", extra);
    }
    json_t *attrs = json_object();
    set_str(attrs, "verb", a->verb);
    if (a->is_resource) {
        set_str(attrs, "namespace", a->ns);
        set_str(attrs, "group", a->group);
        set_str(attrs, "version", a->version);
        set_str(attrs, "resource", a->resource);
        set_str(attrs, "subresource", a->subresource);
        set_str(attrs, "name", a->name);
        json_object_set_new(spec, "resourceAttributes", attrs);
    } else {
        set_str(attrs, "path", a->path);
        json_object_set_new(spec, "nonResourceAttributes", attrs);
    }
    json_t *sar = json_object();
    json_object_set_new(sar, "apiVersion", json_string("authorization.k8s.io/v1"));
    json_object_set_new(sar, "kind", json_string("SubjectAccessReview"));
    json_object_set_new(sar, "spec", spec);
    return sar;
}

static int post_review(struct kube *k, const char *path, json_t *req, json_t **status_out)
{
    long status = 0;
    json_t *resp = NULL;
    int rc = kube_request(k, "POST", path, req, &status, &resp);
    if (rc)
        return rc;
    if (status < 200 || status > 299) {
        log_warn("Kubernetes API refused a review", "path=%s status=%ld", path, status);
        json_decref(resp);
        return status == 401 || status == 403 ? -EACCES : -EIO;
    }
    json_t *st = json_object_get(resp, "status");
    if (!json_is_object(st)) {
        json_decref(resp);
        return -EPROTO;
    }
    *status_out = json_incref(st);
    json_decref(resp);
    return 0;
}

int kube_sar(struct kube *k, const struct kube_user *u, const struct kube_attrs *a, int *allowed,
             char *reason, size_t reasonlen)
{
    json_t *req = kube_sar_body(u, a), *st = NULL;
    int rc = post_review(k, "/apis/authorization.k8s.io/v1/subjectaccessreviews", req, &st);
    json_decref(req);
    if (rc)
        return rc;
    *allowed = json_is_true(json_object_get(st, "allowed")) && !json_is_true(json_object_get(st, "denied"));
    if (reason && reasonlen) {
        const char *r = json_string_value(json_object_get(st, "reason"));
        snprintf(reason, reasonlen, "%s", r ? r : "");
    }
    json_decref(st);
    return 0;
}

int kube_token_review(struct kube *k, const char *token, int *authenticated, struct kube_user *u)
{
    json_t *req = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "authentication.k8s.io/v1", "kind",
                            "TokenReview", "spec", "token", token);
    json_t *st = NULL;
    int rc = post_review(k, "/apis/authentication.k8s.io/v1/tokenreviews", req, &st);
    json_decref(req);
    if (rc)
        return rc;
    *authenticated = json_is_true(json_object_get(st, "authenticated"));
    if (*authenticated) {
        json_t *user = json_object_get(st, "user");
        const char *name = json_string_value(json_object_get(user, "username"));
        if (!name || !*name) {
            *authenticated = 0;
        } else {
            memset(u, 0, sizeof(*u));
            u->name = xstrdup(name);
            const char *uid = json_string_value(json_object_get(user, "uid"));
            if (uid)
                u->uid = xstrdup(uid);
            size_t i;
            json_t *v;
            json_array_foreach(json_object_get(user, "groups"), i, v)
            {
                if (json_is_string(v))
                    kube_user_add_group(u, json_string_value(v));
            }
            const char *key;
            json_t *vals;
            json_object_foreach(json_object_get(user, "extra"), key, vals)
            {
                json_array_foreach(vals, i, v)
                {
                    if (json_is_string(v))
                        kube_user_add_extra(u, key, json_string_value(v));
                }
            }
        }
    }
    json_decref(st);
    return 0;
}

int kube_configmap_data(struct kube *k, const char *ns, const char *name, json_t **data)
{
    struct buf p = {0};
    buf_printf(&p, "/api/v1/namespaces/%s/configmaps/%s", ns, name);
    long status = 0;
    json_t *resp = NULL;
    int rc = kube_request(k, "GET", p.data, NULL, &status, &resp);
    buf_free(&p);
    if (rc)
        return rc;
    if (status == 404 || status == 401 || status == 403 || status < 200 || status > 299) {
        json_decref(resp);
        return status == 404 ? -ENOENT : (status == 401 || status == 403) ? -EACCES : -EIO;
    }
    json_t *d = json_object_get(resp, "data");
    *data = d ? json_incref(d) : json_object();
    json_decref(resp);
    return 0;
}
