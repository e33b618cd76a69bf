/*
 * podcache: pods' metadata from LIST + WATCH, in a maplib map (podcache.h).
 *
 * DESIGN: one writer (the cache's thread), readers anywhere. An entry is
 * immutable once linked: a change of labels is a new entry put in place with
 * ml_upsert, so a reader holds either version whole. A LIST stamps every
 * entry it writes with the list's generation; once the list is complete,
 * entries of older generations (pods deleted while no watch ran) are unlinked.
 */
#include "podcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <urcu.h>

#include <curl/curl.h>
#include <jansson.h>
#include <maplib/maplib.h>

#include "buf.h"
#include "log.h"
#include "selfmetrics.h"

SM_GAUGE(pc_pods, "metrics_adapter_pod_cache_pods", NULL, "Pods held by the pod metadata cache.");
SM_COUNTER(pc_lists, "metrics_adapter_pod_cache_lists_total", NULL,
           "Pod LIST pages fetched by the pod metadata cache.");
SM_COUNTER(pc_watches, "metrics_adapter_pod_cache_watches_total", NULL, "Pod WATCH requests started.");
SM_COUNTER(pc_relists, "metrics_adapter_pod_cache_relists_total", NULL,
           "Full relists after a 410 Gone (expired continue token or resourceVersion).");
SM_COUNTER(pc_errors, "metrics_adapter_pod_cache_errors_total", NULL,
           "Failed pod LIST or WATCH requests (each followed by a backoff).");

#define LIST_ACCEPT    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
#define WATCH_ACCEPT   "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 30000

struct pod {
    struct ml_node node;
    uint64_t gen;
    uint32_t keylen;  /* "namespace/name" */
    uint32_t nlabels; /* then nlabels pairs "key\0value\0" */
    uint32_t nslen;
    char data[];
};

struct podcache {
    struct kube *k;
    struct ml_map *map;
    pthread_t thread;
    int stop;
    int synced;
    uint64_t gen;
    char rv[128];
    int relist; /* set by an ERROR 410 event */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned seed;
};

static struct podcache *active;

void podcache_set_active(struct podcache *pc)
{
    __atomic_store_n(&active, pc, __ATOMIC_RELEASE);
}

struct podcache *podcache_active(void)
{
    return __atomic_load_n(&active, __ATOMIC_ACQUIRE);
}

bool podcache_synced(const struct podcache *pc)
{
    return __atomic_load_n(&pc->synced, __ATOMIC_ACQUIRE) != 0;
}

size_t podcache_size(const struct podcache *pc)
{
    struct ml_stats st;
    ml_map_stats(pc->map, &st);
    return st.live;
}

static void pod_reclaim(struct ml_node *n)
{
    free(caa_container_of(n, struct pod, node));
}

/* ---- readers ------------------------------------------------------------ */

static const char *pod_label(void *ctx, const char *name, size_t name_len, size_t *value_len)
{
    const struct pod *p = ctx;
    const char *c = p->data + p->keylen + 1;
    for (uint32_t i = 0; i < p->nlabels; i++) {
        size_t kl = strlen(c);
        const char *v = c + kl + 1;
        size_t vl = strlen(v);
        if (kl == name_len && memcmp(c, name, kl) == 0) {
            *value_len = vl;
            return v;
        }
        c = v + vl + 1;
    }
    return NULL;
}

bool podcache_selected(const struct podcache *pc, const char *ns, const char *name, size_t name_len,
                       const struct sel_selector *sel)
{
    char key[512];
    size_t nl = strlen(ns);
    if (nl + 1 + name_len > sizeof(key))
        return false;
    memcpy(key, ns, nl);
    key[nl] = '/';
    memcpy(key + nl + 1, name, name_len);
    struct ml_node *n = ml_lookup(pc->map, key, nl + 1 + name_len);
    if (!n)
        return false;
    struct pod *p = caa_container_of(n, struct pod, node);
    return !sel || sel_matches(sel, pod_label, p);
}

/* ---- the writer --------------------------------------------------------- */

/* One pod's metadata object into the map (upsert), or out of it (@del). */
static void apply(struct podcache *pc, json_t *meta, bool del)
{
    const char *ns = json_string_value(json_object_get(meta, "namespace"));
    const char *name = json_string_value(json_object_get(meta, "name"));
    if (!ns || !name || strchr(ns, '/') || strchr(name, '/'))
        return;
    size_t nsl = strlen(ns), nl = strlen(name);
    if (del) {
        char key[512];
        if (nsl + 1 + nl > sizeof(key))
            return;
        memcpy(key, ns, nsl);
        key[nsl] = '/';
        memcpy(key + nsl + 1, name, nl);
        rcu_read_lock();
        struct ml_node *n = ml_lookup(pc->map, key, nsl + 1 + nl);
        if (n && ml_delete(pc->map, n) == 0)
            sm_sub(&pc_pods, 1);
        rcu_read_unlock();
        return;
    }
    json_t *labels = json_object_get(meta, "labels");
    size_t size = nsl + 1 + nl + 1;
    const char *lk;
    json_t *lv;
    uint32_t nlabels = 0;
    json_object_foreach(labels, lk, lv)
    {
        if (json_is_string(lv)) {
            size += strlen(lk) + 1 + json_string_length(lv) + 1;
            nlabels++;
        }
    }
    struct pod *p = malloc(sizeof(*p) + size);
    if (!p) {
        fprintf(stderr, "podcache: out of memory\n");
        abort();
    }
    p->gen = pc->gen;
    p->keylen = (uint32_t)(nsl + 1 + nl);
    p->nslen = (uint32_t)nsl;
    p->nlabels = nlabels;
    char *c = p->data;
    memcpy(c, ns, nsl);
    c[nsl] = '/';
    memcpy(c + nsl + 1, name, nl);
    c += nsl + 1 + nl;
    *c++ = '\0';
    json_object_foreach(labels, lk, lv)
    {
        if (!json_is_string(lv))
            continue;
        size_t kl = strlen(lk), vl = json_string_length(lv);
        memcpy(c, lk, kl + 1);
        c += kl + 1;
        memcpy(c, json_string_value(lv), vl);
        c[vl] = '\0';
        c += vl + 1;
    }
    ml_node_init(&p->node, p->data, p->keylen);
    struct ml_node *old = NULL;
    rcu_read_lock();
    ml_upsert(pc->map, &p->node, &old);
    rcu_read_unlock();
    if (!old)
        sm_add(&pc_pods, 1);
}

static void set_rv(struct podcache *pc, json_t *meta)
{
    const char *rv = json_string_value(json_object_get(meta, "resourceVersion"));
    if (rv && strlen(rv) < sizeof(pc->rv) && strspn(rv, "0123456789abcdefABCDEF-_.") == strlen(rv))
        strcpy(pc->rv, rv);
}

/* Sleep @ms unless stopped. Returns true when stopped. */
static bool nap(struct podcache *pc, unsigned ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&pc->mu);
    while (!__atomic_load_n(&pc->stop, __ATOMIC_RELAXED))
        if (pthread_cond_timedwait(&pc->cv, &pc->mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&pc->mu);
    return __atomic_load_n(&pc->stop, __ATOMIC_RELAXED) != 0;
}

/* Back off after an error: a random time in [d/2, d], d doubling to the cap. */
static bool backoff(struct podcache *pc, unsigned *d)
{
    sm_inc(&pc_errors);
    unsigned ms = *d / 2 + (unsigned)rand_r(&pc->seed) % (*d / 2 + 1);
    *d = *d * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *d * 2;
    return nap(pc, ms);
}

/* A full LIST into a new generation. 0, 410 (restart it), or -1 (error). */
static int list_all(struct podcache *pc)
{
    pc->gen++;
    char cont[1024] = "";
    for (;;) {
        struct buf path = {0};
        buf_puts(&path, "/api/v1/pods?limit=500");
        if (cont[0])
            buf_printf(&path, "&continue=%s", cont);
        long status = 0;
        json_t *body = NULL;
        int rc = kube_get(pc->k, path.data, LIST_ACCEPT, &pc->stop, &status, &body);
        buf_free(&path);
        sm_inc(&pc_lists);
        if (rc != 0 || status != 200 || !json_is_object(body)) {
            json_decref(body);
            if (rc == 0 && status == 410)
                return 410;
            if (rc != -ECANCELED) /* stopping */
                log_warn("pod LIST failed", "status=%ld error=%d", status, rc);
            return -1;
        }
        size_t i;
        json_t *item;
        json_array_foreach(json_object_get(body, "items"), i, item)
        {
            apply(pc, json_object_get(item, "metadata"), false);
        }
        json_t *lmeta = json_object_get(body, "metadata");
        const char *c = json_string_value(json_object_get(lmeta, "continue"));
        if (c && *c) {
            /* Tokens are base64url; escape the rest anyway. */
            char *esc = curl_easy_escape(NULL, c, 0);
            snprintf(cont, sizeof(cont), "%s", esc ? esc : "");
            curl_free(esc);
            json_decref(body);
            continue;
        }
        set_rv(pc, lmeta);
        json_decref(body);
        break;
    }
    /* Drop what the new list no longer has. */
    rcu_read_lock();
    struct ml_iter it;
    for (struct ml_node *n = ml_first(pc->map, &it); n; n = ml_next(pc->map, &it)) {
        struct pod *p = caa_container_of(n, struct pod, node);
        if (p->gen != pc->gen && ml_delete(pc->map, n) == 0)
            sm_sub(&pc_pods, 1);
    }
    rcu_read_unlock();
    return 0;
}

static int on_event(void *ctx, const char *line, size_t len)
{
    struct podcache *pc = ctx;
    json_t *ev = json_loadb(line, len, 0, NULL);
    if (!ev)
        return 0;
    const char *type = json_string_value(json_object_get(ev, "type"));
    json_t *obj = json_object_get(ev, "object");
    json_t *meta = json_object_get(obj, "metadata");
    int end = 0;
    if (!type) {
    } else if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0) {
        apply(pc, meta, false);
        set_rv(pc, meta);
    } else if (strcmp(type, "DELETED") == 0) {
        apply(pc, meta, true);
        set_rv(pc, meta);
    } else if (strcmp(type, "BOOKMARK") == 0) {
        set_rv(pc, meta);
    } else if (strcmp(type, "ERROR") == 0) {
        json_int_t code = json_integer_value(json_object_get(obj, "code"));
        log_info("pod WATCH ended by an ERROR event", "code=%lld", (long long)code);
        if (code == 410)
            pc->relist = 1;
        end = 1;
    }
    json_decref(ev);
    return end;
}

static void *run(void *arg)
{
    struct podcache *pc = arg;
    rcu_register_thread();
    unsigned delay = BACKOFF_MIN_MS;
    bool first = true;
    while (!__atomic_load_n(&pc->stop, __ATOMIC_RELAXED)) {
        int rc = list_all(pc);
        if (rc == 410) {
            sm_inc(&pc_relists);
            log_info("pod LIST continue token expired: listing again", NULL);
            continue;
        }
        if (rc != 0) {
            if (backoff(pc, &delay))
                break;
            continue;
        }
        if (!first)
            sm_inc(&pc_relists);
        first = false;
        __atomic_store_n(&pc->synced, 1, __ATOMIC_RELEASE);
        delay = BACKOFF_MIN_MS;
        /* Watch until a 410 asks for a relist. */
        pc->relist = 0;
        while (!pc->relist && !__atomic_load_n(&pc->stop, __ATOMIC_RELAXED)) {
            struct buf path = {0};
            buf_printf(&path,
                       "/api/v1/pods?watch=1&allowWatchBookmarks=true&resourceVersion=%s&timeoutSeconds=%u",
                       pc->rv, 240 + (unsigned)rand_r(&pc->seed) % 120);
            long status = 0;
            sm_inc(&pc_watches);
            int wrc = kube_watch(pc->k, path.data, WATCH_ACCEPT, on_event, pc, &pc->stop, &status);
            buf_free(&path);
            if (wrc == -ECANCELED)
                break;
            if (wrc == 0 && status == 410) {
                pc->relist = 1;
            } else if (wrc != 0 || status != 200) {
                log_warn("pod WATCH failed", "status=%ld error=%d", status, wrc);
                if (backoff(pc, &delay))
                    break;
            } else if (!pc->relist) {
                delay = BACKOFF_MIN_MS; /* ended normally: resume at once */
            }
        }
    }
    rcu_unregister_thread();
    return NULL;
}

int podcache_start(struct kube *k, struct podcache **out)
{
    struct podcache *pc = calloc(1, sizeof(*pc));
    if (!pc)
        return -ENOMEM;
    pc->k = k;
    pc->seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)pc;
    pthread_mutex_init(&pc->mu, NULL);
    pthread_cond_init(&pc->cv, NULL);
    struct ml_map_config cfg = {.name = "pods",
                                .reclaim = pod_reclaim,
                                .key_offset = offsetof(struct pod, data) - offsetof(struct pod, node)};
    int rc = ml_map_new(&cfg, &pc->map);
    if (rc == 0 && (rc = -pthread_create(&pc->thread, NULL, run, pc)) != 0)
        ml_map_destroy(pc->map);
    if (rc) {
        pthread_cond_destroy(&pc->cv);
        pthread_mutex_destroy(&pc->mu);
        free(pc);
        return rc;
    }
    *out = pc;
    return 0;
}

void podcache_stop(struct podcache *pc)
{
    if (!pc)
        return;
    pthread_mutex_lock(&pc->mu);
    __atomic_store_n(&pc->stop, 1, __ATOMIC_RELAXED);
    pthread_cond_broadcast(&pc->cv);
    pthread_mutex_unlock(&pc->mu);
    pthread_join(pc->thread, NULL);
    sm_set(&pc_pods, 0);
    ml_map_destroy(pc->map);
    pthread_cond_destroy(&pc->cv);
    pthread_mutex_destroy(&pc->mu);
    free(pc);
}
