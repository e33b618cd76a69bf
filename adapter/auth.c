/*
 * auth: the delegated authentication chain and SubjectAccessReview
 * authorization with a decision cache.
 *
 * DESIGN: the guard runs once per request, after the headers and before the
 * body, on a pool thread. Authentication first (auth.h gives the order and
 * what an error means), then authorization. Both may call the Kubernetes
 * API (TokenReview, SubjectAccessReview), which blocks the pool thread for
 * at most the client's timeout; their answers are cached so that the HPA's
 * steady stream of identical requests (same user, same path every 15 s)
 * costs one API call per TTL.
 *
 * The caches are direct-mapped tables of fixed size (bounded memory, no
 * eviction policy to get wrong): a key's slot is its FNV-1a hash modulo the
 * size, and a colliding key simply replaces the entry. Keys come from
 * authenticated callers (the front proxy's user names, our own paths), and
 * a collision costs only a cache miss, so an unseeded hash is enough here.
 * Entries are compared by full key, never by hash alone. One mutex per
 * cache; held only to copy in or out.
 *
 * Status codes are decided in exactly one place: deny().
 */
#include "auth.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <gnutls/crypto.h>

#include "flags.h"
#include "k8s_json.h"
#include "log.h"
#include "selfmetrics.h"
#include "tls.h"

#define MAX_LIST 16

#define AUTHN_HELP "Requests on the secure listener by how they were authenticated (failed: 401)."
SM_COUNTER(c_authn_rh, "metrics_adapter_authentication_total", "method=\"requestheader\"", AUTHN_HELP)
SM_COUNTER(c_authn_x509, "metrics_adapter_authentication_total", "method=\"x509\"", AUTHN_HELP)
SM_COUNTER(c_authn_token, "metrics_adapter_authentication_total", "method=\"token\"", AUTHN_HELP)
SM_COUNTER(c_authn_anon, "metrics_adapter_authentication_total", "method=\"anonymous\"", AUTHN_HELP)
SM_COUNTER(c_authn_failed, "metrics_adapter_authentication_total", "method=\"failed\"", AUTHN_HELP)
#define AUTHZ_HELP                                                                                           \
    "Authorization decisions on the secure listener, and whether a review answered or the cache."
SM_COUNTER(c_authz_allow_rev, "metrics_adapter_authorization_total", "decision=\"allow\",source=\"review\"",
           AUTHZ_HELP)
SM_COUNTER(c_authz_allow_cache, "metrics_adapter_authorization_total", "decision=\"allow\",source=\"cache\"",
           AUTHZ_HELP)
SM_COUNTER(c_authz_deny_rev, "metrics_adapter_authorization_total", "decision=\"deny\",source=\"review\"",
           AUTHZ_HELP)
SM_COUNTER(c_authz_deny_cache, "metrics_adapter_authorization_total", "decision=\"deny\",source=\"cache\"",
           AUTHZ_HELP)
SM_COUNTER(c_authz_error, "metrics_adapter_authorization_total", "decision=\"error\",source=\"review\"",
           AUTHZ_HELP)

struct cache_entry {
    char *key; /* NULL: empty slot */
    size_t keylen;
    int64_t expires_ms;
    int allowed;           /* SAR: the decision; token: authenticated */
    struct kube_user user; /* token cache: the user */
};

struct cache {
    pthread_mutex_t mu;
    struct cache_entry *slots;
    unsigned n;
};

struct auth {
    struct tls_trust *rh_ca, *client_ca;
    char *allowed[MAX_LIST];
    unsigned nallowed;
    char *user_hdrs[MAX_LIST];
    unsigned nuser_hdrs;
    char *group_hdrs[MAX_LIST];
    unsigned ngroup_hdrs;
    char *extra_pfx[MAX_LIST];
    unsigned nextra_pfx;
    int anonymous, always_allow;
    struct kube *kube;
    unsigned ttl_ms;
    struct cache sar, tokens;
    atomic_ulong sar_calls, sar_hits, token_calls, token_hits;
};

static char *xstrndup(const char *s, size_t n)
{
    char *d = strndup(s, n);
    if (!d) {
        fprintf(stderr, "fatal: out of memory\n");
        abort();
    }
    return d;
}

static unsigned split(const char *s, char **out)
{
    unsigned n = 0;
    while (s && *s && n < MAX_LIST) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        const char *a = s, *b = s + len;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (b > a)
            out[n++] = xstrndup(a, (size_t)(b - a));
        s = e ? e + 1 : NULL;
    }
    return n;
}

static void cache_init(struct cache *c, unsigned n)
{
    pthread_mutex_init(&c->mu, NULL);
    c->n = n;
    c->slots = calloc(n, sizeof(*c->slots));
    if (!c->slots) {
        fprintf(stderr, "fatal: out of memory\n");
        abort();
    }
}

static void cache_destroy(struct cache *c)
{
    for (unsigned i = 0; i < c->n; i++) {
        free(c->slots[i].key);
        kube_user_free(&c->slots[i].user);
    }
    free(c->slots);
    pthread_mutex_destroy(&c->mu);
}

int auth_new(const struct auth_config *cfg, struct auth **out)
{
    struct auth *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->rh_ca = cfg->requestheader_ca;
    a->client_ca = cfg->client_ca;
    a->nallowed = split(cfg->allowed_names, a->allowed);
    a->nuser_hdrs = split(cfg->username_headers ? cfg->username_headers : "X-Remote-User", a->user_hdrs);
    a->ngroup_hdrs = split(cfg->group_headers ? cfg->group_headers : "X-Remote-Group", a->group_hdrs);
    a->nextra_pfx = split(cfg->extra_prefixes ? cfg->extra_prefixes : "X-Remote-Extra-", a->extra_pfx);
    a->anonymous = cfg->anonymous;
    a->always_allow = cfg->always_allow;
    a->kube = cfg->kube;
    a->ttl_ms = cfg->cache_ttl_ms ? cfg->cache_ttl_ms : 10000;
    unsigned size = cfg->cache_size ? cfg->cache_size : 4096;
    cache_init(&a->sar, size);
    cache_init(&a->tokens, size);
    *out = a;
    return 0;
}

void auth_free(struct auth *a)
{
    if (!a)
        return;
    for (unsigned i = 0; i < a->nallowed; i++)
        free(a->allowed[i]);
    for (unsigned i = 0; i < a->nuser_hdrs; i++)
        free(a->user_hdrs[i]);
    for (unsigned i = 0; i < a->ngroup_hdrs; i++)
        free(a->group_hdrs[i]);
    for (unsigned i = 0; i < a->nextra_pfx; i++)
        free(a->extra_pfx[i]);
    cache_destroy(&a->sar);
    cache_destroy(&a->tokens);
    free(a);
}

void auth_get_stats(struct auth *a, struct auth_stats *out)
{
    out->sar_calls = atomic_load(&a->sar_calls);
    out->sar_cache_hits = atomic_load(&a->sar_hits);
    out->token_calls = atomic_load(&a->token_calls);
    out->token_cache_hits = atomic_load(&a->token_hits);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void user_copy(struct kube_user *dst, const struct kube_user *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->name = src->name ? xstrndup(src->name, strlen(src->name)) : NULL;
    dst->uid = src->uid ? xstrndup(src->uid, strlen(src->uid)) : NULL;
    for (size_t i = 0; i < src->ngroups; i++)
        kube_user_add_group(dst, src->groups[i]);
    for (size_t i = 0; i < src->nextra; i++)
        kube_user_add_extra(dst, src->extra_keys[i], src->extra_values[i]);
}

/* 1 (hit: *allowed and, when @u, the user copied out) or 0. */
static int cache_get(struct cache *c, const char *key, size_t keylen, int *allowed, struct kube_user *u)
{
    int hit = 0;
    pthread_mutex_lock(&c->mu);
    struct cache_entry *e = &c->slots[fnv1a(key, keylen) % c->n];
    if (e->key && e->keylen == keylen && memcmp(e->key, key, keylen) == 0 && e->expires_ms > now_ms()) {
        *allowed = e->allowed;
        if (u && e->allowed)
            user_copy(u, &e->user);
        hit = 1;
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

static void cache_put(struct cache *c, const char *key, size_t keylen, int allowed, const struct kube_user *u,
                      unsigned ttl_ms)
{
    struct kube_user copy = {0};
    if (u && allowed)
        user_copy(&copy, u);
    char *k = xstrndup(key, keylen);
    pthread_mutex_lock(&c->mu);
    struct cache_entry *e = &c->slots[fnv1a(key, keylen) % c->n];
    char *oldkey = e->key;
    struct kube_user olduser = e->user;
    e->key = k;
    e->keylen = keylen;
    e->allowed = allowed;
    e->user = copy;
    e->expires_ms = now_ms() + ttl_ms;
    pthread_mutex_unlock(&c->mu);
    free(oldkey);
    kube_user_free(&olduser);
}

/* ---- request attributes ------------------------------------------------- */

int auth_request_attrs(const char *method, const char *path, struct kube_attrs *a, char *buf, size_t buflen)
{
    memset(a, 0, sizeof(*a));
    size_t plen = strlen(path);
    /* The path, the lower-case verb and the parts all live in buf. */
    if (plen + 32 > buflen)
        return -ENOSPC;
    memcpy(buf, path, plen + 1);
    a->path = buf;
    char *verb = buf + plen + 1;
    size_t i = 0;
    for (; method[i] && i < 15; i++)
        verb[i] = (char)tolower((unsigned char)method[i]);
    verb[i] = '\0';
    a->verb = verb;
    char *parts_buf = verb + 16;
    if ((size_t)(parts_buf - buf) + plen + 1 > buflen)
        return -ENOSPC;
    memcpy(parts_buf, path, plen + 1);

    /* splitPath: trim slashes, split on "/". */
    char *parts[64];
    unsigned n = 0;
    char *p = parts_buf;
    while (*p == '/')
        p++;
    size_t l = strlen(p);
    while (l && p[l - 1] == '/')
        p[--l] = '\0';
    while (*p && n < 64) {
        parts[n++] = p;
        char *s = strchr(p, '/');
        if (!s)
            break;
        *s = '\0';
        p = s + 1;
    }
    if (n < 3 || !(strcmp(parts[0], "api") == 0 || strcmp(parts[0], "apis") == 0))
        return 0; /* non-resource */
    unsigned at = 1;
    const char *group = "";
    if (strcmp(parts[0], "apis") == 0) {
        if (n - at < 3)
            return 0;
        group = parts[at++];
    }
    a->is_resource = 1;
    a->group = group;
    a->version = parts[at++];
    const char *rv;
    if (!strcmp(method, "POST"))
        rv = "create";
    else if (!strcmp(method, "GET") || !strcmp(method, "HEAD"))
        rv = "get";
    else if (!strcmp(method, "PUT"))
        rv = "update";
    else if (!strcmp(method, "PATCH"))
        rv = "patch";
    else if (!strcmp(method, "DELETE"))
        rv = "delete";
    else
        rv = "";
    if (at < n && (strcmp(parts[at], "watch") == 0 || strcmp(parts[at], "proxy") == 0)) {
        rv = parts[at++];
    }
    if (at < n && strcmp(parts[at], "namespaces") == 0) {
        if (n - at > 1) {
            a->ns = parts[at + 1];
            /* A part after the namespace name that is not a namespace
             * subresource is a resource in its own right. */
            if (n - at > 2 && strcmp(parts[at + 2], "status") != 0 && strcmp(parts[at + 2], "finalize") != 0)
                at += 2;
        }
    }
    unsigned left = n - at;
    if (left >= 3 && strcmp(rv, "proxy") != 0)
        a->subresource = parts[at + 2];
    if (left >= 2)
        a->name = parts[at + 1];
    if (left >= 1)
        a->resource = parts[at];
    if (!a->name && strcmp(rv, "get") == 0)
        rv = "list";
    if (!a->name && strcmp(rv, "delete") == 0)
        rv = "deletecollection";
    a->verb = rv;
    return 0;
}

/* ---- header parsing ----------------------------------------------------- */

int auth_bearer(const char *h, const char **tok, size_t *len)
{
    if (!h)
        return -ENOENT;
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncasecmp(h, "bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return -ENOENT;
    h += 7;
    while (*h == ' ' || *h == '\t')
        h++;
    size_t n = strlen(h);
    while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    /* A token is one word: kube-apiserver refuses embedded blanks. */
    if (!n || memchr(h, ' ', n) || memchr(h, '\t', n))
        return -ENOENT;
    *tok = h;
    *len = n;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int auth_extra_key(const char *s, char *out, size_t outlen)
{
    size_t o = 0;
    /* kube-apiserver lower-cases the key first, then unescapes it. */
    for (size_t i = 0; s[i]; i++) {
        char c = (char)tolower((unsigned char)s[i]);
        if (c == '%') {
            int h1 = s[i + 1] ? hexval(s[i + 1]) : -1;
            int h2 = h1 >= 0 && s[i + 2] ? hexval(s[i + 2]) : -1;
            if (h1 < 0 || h2 < 0)
                return -EINVAL;
            c = (char)(h1 * 16 + h2);
            i += 2;
            if (c == '\0')
                return -EINVAL; /* keys are C strings here */
        }
        if (o + 1 >= outlen)
            return -EINVAL;
        out[o++] = c;
    }
    if (!o)
        return -EINVAL;
    out[o] = '\0';
    return 0;
}

void auth_headers_begin(const struct auth *a, struct auth_hdr_state *st, struct kube_user *u)
{
    memset(u, 0, sizeof(*u));
    st->a = a;
    st->u = u;
    st->user_rank = -1;
}

void auth_headers_add(struct auth_hdr_state *st, const char *name, const char *value)
{
    const struct auth *a = st->a;
    if (!value)
        value = "";
    for (unsigned i = 0; i < a->nuser_hdrs; i++) {
        /* The first configured header with a non-empty value names the user;
         * for one header, its first value. */
        if (strcasecmp(name, a->user_hdrs[i]) == 0 && *value &&
            (st->user_rank < 0 || (int)i < st->user_rank)) {
            free(st->u->name);
            st->u->name = xstrndup(value, strlen(value));
            st->user_rank = (int)i;
        }
    }
    for (unsigned i = 0; i < a->ngroup_hdrs; i++) {
        if (strcasecmp(name, a->group_hdrs[i]) == 0 && *value)
            kube_user_add_group(st->u, value);
    }
    for (unsigned i = 0; i < a->nextra_pfx; i++) {
        size_t pl = strlen(a->extra_pfx[i]);
        char key[256];
        if (strncasecmp(name, a->extra_pfx[i], pl) == 0 && *value &&
            auth_extra_key(name + pl, key, sizeof(key)) == 0)
            kube_user_add_extra(st->u, key, value);
    }
}

int auth_headers_end(struct auth_hdr_state *st)
{
    return st->u->name ? 0 : -ENOENT;
}

static int collect_header(void *ctx, const char *name, const char *value)
{
    auth_headers_add(ctx, name, value);
    return 0;
}

/* ---- the guard ---------------------------------------------------------- */

enum outcome {
    OK = 0,
    UNAUTHORIZED,  /* 401 */
    FORBIDDEN,     /* 403 */
    AUTHZ_FAILURE, /* 500: the authorizer could not decide */
};

static int name_allowed(const struct auth *a, const char *cn)
{
    if (!a->nallowed)
        return 1;
    for (unsigned i = 0; i < a->nallowed; i++)
        if (strcmp(a->allowed[i], cn) == 0)
            return 1;
    return 0;
}

static int token_review(struct auth *a, const char *tok, size_t len, struct kube_user *u)
{
    /* The cache key is the token's SHA-256: tokens are never kept. */
    unsigned char digest[32];
    char key[65];
    gnutls_hash_fast(GNUTLS_DIG_SHA256, tok, len, digest);
    for (int i = 0; i < 32; i++)
        snprintf(key + 2 * i, 3, "%02x", digest[i]);
    int ok = 0;
    if (cache_get(&a->tokens, key, 64, &ok, u)) {
        atomic_fetch_add(&a->token_hits, 1);
        return ok ? 0 : -EACCES;
    }
    char *t = xstrndup(tok, len);
    atomic_fetch_add(&a->token_calls, 1);
    int rc = kube_token_review(a->kube, t, &ok, u);
    explicit_bzero(t, len);
    free(t);
    if (rc)
        return -EACCES; /* kube-apiserver: a token it cannot review is not accepted */
    cache_put(&a->tokens, key, 64, ok, u, a->ttl_ms);
    return ok ? 0 : -EACCES;
}

/* Fill @u. 0 (authenticated or anonymous) or -EACCES (401). */
static int authenticate(struct auth *a, struct http_request *req, struct kube_user *u, const char **how)
{
    gnutls_session_t s = http_tls_session(req);
    struct tls_peer peer;
    int errors = 0;
    if (a->rh_ca && s) {
        int rc = tls_verify_peer(a->rh_ca, s, &peer);
        if (rc == 0 && !name_allowed(a, peer.cn)) {
            log_info("front-proxy certificate with a CN not allowed", "cn=%s", peer.cn);
            errors++;
        } else if (rc == 0) {
            struct auth_hdr_state st;
            auth_headers_begin(a, &st, u);
            http_header_each(req, collect_header, &st);
            if (auth_headers_end(&st) == 0) {
                *how = "requestheader";
                return 0;
            }
            kube_user_free(u);
        } else if (rc == -EACCES) {
            errors++;
        }
    }
    if (a->client_ca && s) {
        int rc = tls_verify_peer(a->client_ca, s, &peer);
        if (rc == 0 && peer.cn[0]) {
            memset(u, 0, sizeof(*u));
            u->name = xstrndup(peer.cn, strlen(peer.cn));
            for (unsigned i = 0; i < peer.norgs; i++)
                kube_user_add_group(u, peer.orgs[i]);
            *how = "x509";
            return 0;
        }
        if (rc != -ENOENT)
            errors++;
    }
    const char *tok;
    size_t len;
    if (a->kube && auth_bearer(http_header(req, "Authorization"), &tok, &len) == 0) {
        if (token_review(a, tok, len, u) == 0) {
            *how = "token";
            return 0;
        }
        errors++;
    }
    if (errors || !a->anonymous)
        return -EACCES;
    memset(u, 0, sizeof(*u));
    u->name = xstrndup("system:anonymous", 16);
    kube_user_add_group(u, "system:unauthenticated");
    *how = "anonymous";
    return 0;
}

static int has_group(const struct kube_user *u, const char *g)
{
    for (size_t i = 0; i < u->ngroups; i++)
        if (strcmp(u->groups[i], g) == 0)
            return 1;
    return 0;
}

static int skips_authorization(const char *path)
{
    static const char *const open[] = {"/healthz", "/livez", "/readyz"};
    for (unsigned i = 0; i < 3; i++) {
        size_t n = strlen(open[i]);
        if (strncmp(path, open[i], n) == 0 && (path[n] == '\0' || path[n] == '/'))
            return 1;
    }
    return 0;
}

static void key_add(struct buf *k, const char *s)
{
    buf_puts(k, s ? s : "");
    buf_putc(k, '\x1f'); /* unit separator: cannot appear in the parts */
}

static enum outcome authorize(struct auth *a, const struct kube_user *u, const struct kube_attrs *at,
                              char *reason, size_t reasonlen)
{
    if (a->always_allow || has_group(u, "system:masters"))
        return OK;
    if (!a->kube) {
        snprintf(reason, reasonlen,
                 "no authorizer: give --kubeconfig, run in a cluster, or "
                 "--authorization-always-allow");
        return FORBIDDEN;
    }
    struct buf key = BUF_INIT;
    key_add(&key, u->name);
    key_add(&key, u->uid);
    for (size_t i = 0; i < u->ngroups; i++)
        key_add(&key, u->groups[i]);
    buf_putc(&key, '\x1e');
    for (size_t i = 0; i < u->nextra; i++) {
        key_add(&key, u->extra_keys[i]);
        key_add(&key, u->extra_values[i]);
    }
    buf_putc(&key, '\x1e');
    key_add(&key, at->is_resource ? "r" : "n");
    key_add(&key, at->verb);
    if (at->is_resource) {
        key_add(&key, at->ns);
        key_add(&key, at->group);
        key_add(&key, at->version);
        key_add(&key, at->resource);
        key_add(&key, at->subresource);
        key_add(&key, at->name);
    } else {
        key_add(&key, at->path);
    }
    int allowed = 0;
    enum outcome out;
    if (cache_get(&a->sar, key.data, key.len, &allowed, NULL)) {
        atomic_fetch_add(&a->sar_hits, 1);
        sm_inc(allowed ? &c_authz_allow_cache : &c_authz_deny_cache);
        out = allowed ? OK : FORBIDDEN;
    } else {
        atomic_fetch_add(&a->sar_calls, 1);
        int rc = kube_sar(a->kube, u, at, &allowed, reason, reasonlen);
        if (rc) {
            snprintf(reason, reasonlen, "SubjectAccessReview failed: %s", strerror(-rc));
            sm_inc(&c_authz_error);
            out = AUTHZ_FAILURE;
        } else {
            cache_put(&a->sar, key.data, key.len, allowed, NULL, a->ttl_ms);
            sm_inc(allowed ? &c_authz_allow_rev : &c_authz_deny_rev);
            out = allowed ? OK : FORBIDDEN;
        }
    }
    buf_free(&key);
    return out;
}

/* The one place where an outcome becomes a status and a Status body. */
static int deny(struct http_response *resp, enum outcome o, const struct kube_user *u,
                const struct kube_attrs *at, const char *reason)
{
    struct buf msg = BUF_INIT;
    switch (o) {
    case UNAUTHORIZED:
        resp->status = 401;
        api_json_status(&resp->body, 401, "Unauthorized", "Unauthorized");
        break;
    case FORBIDDEN:
        resp->status = 403;
        if (at->is_resource) {
            /* kube-apiserver's wording: resource.group "name" is forbidden: ... */
            const char *res = at->resource ? at->resource : "";
            buf_printf(&msg, "%s%s%s \"%s\" is forbidden: User \"%s\" cannot %s resource \"%s%s%s\"", res,
                       at->group[0] ? "." : "", at->group, at->name ? at->name : "", u->name, at->verb, res,
                       at->subresource ? "/" : "", at->subresource ? at->subresource : "");
            buf_printf(&msg, " in API group \"%s\"", at->group);
            if (at->ns)
                buf_printf(&msg, " in the namespace \"%s\"", at->ns);
        } else {
            buf_printf(&msg, "forbidden: User \"%s\" cannot %s path \"%s\"", u->name, at->verb, at->path);
        }
        if (reason && *reason)
            buf_printf(&msg, ": %s", reason);
        api_json_status(&resp->body, 403, "Forbidden", msg.data);
        break;
    default:
        resp->status = 500;
        api_json_status(&resp->body, 500, "InternalError",
                        reason && *reason ? reason : "authorization failed");
        break;
    }
    resp->content_type = "application/json";
    buf_free(&msg);
    return 1;
}

int auth_guard(void *ctx, struct http_request *req, struct http_response *resp)
{
    struct auth *a = ctx;
    struct kube_user u = {0};
    struct kube_attrs at;
    char abuf[8192], reason[512] = "";
    const char *how = "";
    int rc = 0;
    if (authenticate(a, req, &u, &how) != 0) {
        sm_inc(&c_authn_failed);
        log_debug("request not authenticated", "path=%s", req->path);
        memset(&at, 0, sizeof(at));
        rc = deny(resp, UNAUTHORIZED, &u, &at, NULL);
        kube_user_free(&u);
        return rc;
    }
    switch (how[0]) {
    case 'r':
        sm_inc(&c_authn_rh);
        break;
    case 'x':
        sm_inc(&c_authn_x509);
        break;
    case 't':
        sm_inc(&c_authn_token);
        break;
    default:
        sm_inc(&c_authn_anon);
        break;
    }
    if (strcmp(how, "anonymous") != 0 && !has_group(&u, "system:authenticated"))
        kube_user_add_group(&u, "system:authenticated");
    req->authenticated = 1;
    if (!skips_authorization(req->path)) {
        if (auth_request_attrs(req->method, req->path, &at, abuf, sizeof(abuf)) != 0) {
            memset(&at, 0, sizeof(at));
            rc = deny(resp, FORBIDDEN, &u, &at, "path too long");
        } else {
            enum outcome o = authorize(a, &u, &at, reason, sizeof(reason));
            if (o != OK) {
                log_debug("request not authorized", "user=%s via=%s path=%s verb=%s", u.name, how, req->path,
                          at.verb);
                rc = deny(resp, o, &u, &at, reason);
            }
        }
    }
    kube_user_free(&u);
    return rc;
}

int auth_ingest_guard(void *ctx, struct http_request *req, struct http_response *resp)
{
    (void)resp;
    struct tls_trust *ca = ctx;
    struct tls_peer peer;
    gnutls_session_t s = http_tls_session(req);
    if (ca && s && tls_verify_peer(ca, s, &peer) == 0)
        req->authenticated = 1;
    return 0;
}

/* ---- set-up from the flags ---------------------------------------------- */

/* A ConfigMap list value: a JSON array of strings in a string; joined with commas. */
static char *cm_list(json_t *data, const char *key)
{
    const char *text = json_string_value(json_object_get(data, key));
    if (!text)
        return NULL;
    json_t *arr = json_loads(text, 0, NULL);
    struct buf b = BUF_INIT;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (json_is_string(v)) {
            if (b.len)
                buf_putc(&b, ',');
            buf_puts(&b, json_string_value(v));
        }
    }
    json_decref(arr);
    if (!b.len)
        buf_puts(&b, "");
    return buf_steal(&b, NULL);
}

static int load_trust(const char *flag, const char *path, struct tls_trust **out)
{
    int rc = tls_trust_new(path, out);
    if (rc)
        log_error("cannot load CA bundle", "flag=--%s path=%s error=%s", flag, path,
                  rc == -EINVAL ? "no certificate in the file" : strerror(-rc));
    else
        tls_watch_add_trust(*out);
    return rc == -ENOENT ? -EINVAL : rc;
}

static int load_server(const char *flag, const char *cert, const char *key, struct tls_server **out)
{
    int rc = tls_server_new(cert, key, out);
    if (rc)
        log_error("cannot load certificate and key", "flag=--%s cert=%s key=%s error=%s", flag, cert, key,
                  rc == -EINVAL ? "does not parse, or the key does not match the certificate"
                                : strerror(-rc));
    else
        tls_watch_add_server(*out);
    return rc == -ENOENT ? -EINVAL : rc;
}

int auth_stack_new(const struct ma_config *cfg, struct auth_stack *st)
{
    memset(st, 0, sizeof(*st));
    int rc = kube_new(cfg->kubeconfig, (unsigned)cfg->kube_api_timeout_ms, 1, &st->kube);
    if (rc == -ENOENT && !cfg->kubeconfig[0]) {
        st->kube = NULL;
        log_info("no Kubernetes API configured (no --kubeconfig, not in a cluster): no TokenReview, and "
                 "SubjectAccessReviews deny unless --authorization-always-allow",
                 NULL);
    } else if (rc) {
        if (rc != -EINVAL)
            log_error("cannot read the kubeconfig", "flag=--kubeconfig path=%s error=%s", cfg->kubeconfig,
                      strerror(-rc));
        return -EINVAL;
    }

    char *allowed = NULL, *uh = NULL, *gh = NULL, *ep = NULL;
    if (cfg->secure_port) {
        if (cfg->requestheader_client_ca_file[0] &&
            (rc = load_trust("requestheader-client-ca-file", cfg->requestheader_client_ca_file, &st->rh_ca)))
            goto fail;
        if (cfg->client_ca_file[0] &&
            (rc = load_trust("client-ca-file", cfg->client_ca_file, &st->client_ca)))
            goto fail;
        /* Like kube-apiserver's delegated authentication: what the flags leave
         * out comes from the cluster's own authentication ConfigMap. */
        json_t *data = NULL;
        if (st->kube && (!st->rh_ca || !st->client_ca) &&
            kube_configmap_data(st->kube, "kube-system", "extension-apiserver-authentication", &data) == 0) {
            const char *ca = json_string_value(json_object_get(data, "client-ca-file"));
            if (!st->client_ca && ca && tls_trust_new_pem(ca, &st->client_ca) == 0)
                log_info("client CA from the extension-apiserver-authentication ConfigMap", NULL);
            const char *rh = json_string_value(json_object_get(data, "requestheader-client-ca-file"));
            if (!st->rh_ca && rh && tls_trust_new_pem(rh, &st->rh_ca) == 0) {
                allowed = cm_list(data, "requestheader-allowed-names");
                uh = cm_list(data, "requestheader-username-headers");
                gh = cm_list(data, "requestheader-group-headers");
                ep = cm_list(data, "requestheader-extra-headers-prefix");
                log_info("front-proxy CA and headers from the extension-apiserver-authentication ConfigMap",
                         "allowed_names=%s", allowed ? allowed : "");
            }
            json_decref(data);
        }
        if (cfg->tls_cert_file[0]) {
            rc = load_server("tls-cert-file", cfg->tls_cert_file, cfg->tls_private_key_file, &st->serving);
        } else {
            char *cert = NULL, *key = NULL;
            rc = tls_selfsigned_ensure(cfg->cert_dir, &cert, &key);
            if (rc == 0)
                rc = load_server("cert-dir", cert, key, &st->serving);
            free(cert);
            free(key);
        }
        if (rc)
            goto fail;
        struct auth_config ac = {
            .requestheader_ca = st->rh_ca,
            .client_ca = st->client_ca,
            .allowed_names = allowed ? allowed : cfg->requestheader_allowed_names,
            .username_headers = uh && *uh ? uh : cfg->requestheader_username_headers,
            .group_headers = gh && *gh ? gh : cfg->requestheader_group_headers,
            .extra_prefixes = ep && *ep ? ep : cfg->requestheader_extra_headers_prefix,
            .anonymous = cfg->anonymous_auth,
            .always_allow = cfg->authorization_always_allow,
            .kube = st->kube,
            .cache_ttl_ms = (unsigned)cfg->authorization_cache_ttl_ms,
        };
        auth_new(&ac, &st->auth);
    }
    if (cfg->ingest_tls_cert_file[0] &&
        (rc = load_server("ingest-tls-cert-file", cfg->ingest_tls_cert_file, cfg->ingest_tls_private_key_file,
                          &st->ingest_serving)))
        goto fail;
    if (cfg->ingest_client_ca_file[0] &&
        (rc = load_trust("ingest-client-ca-file", cfg->ingest_client_ca_file, &st->ingest_ca)))
        goto fail;
    free(allowed);
    free(uh);
    free(gh);
    free(ep);
    return 0;
fail:
    free(allowed);
    free(uh);
    free(gh);
    free(ep);
    auth_stack_free(st);
    return rc;
}

void auth_stack_free(struct auth_stack *st)
{
    tls_watch_stop();
    auth_free(st->auth);
    tls_server_free(st->serving);
    tls_server_free(st->ingest_serving);
    tls_trust_free(st->rh_ca);
    tls_trust_free(st->client_ca);
    tls_trust_free(st->ingest_ca);
    kube_free(st->kube);
    memset(st, 0, sizeof(*st));
}
