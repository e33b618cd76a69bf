/*
 * tls: serving credentials with reload, trust lists, peer verification.
 *
 * DESIGN: a tls_server holds a pointer to its current tls_creds under a
 * mutex. tls_server_acquire() takes the mutex, bumps the snapshot's refcount
 * and returns it; a reload builds the new snapshot outside the mutex, swaps
 * the pointer under it and drops the server's own reference to the old one.
 * The snapshot is freed by whoever drops the last reference, which may be a
 * handshake that started before the reload. Nothing else is shared: a
 * snapshot is never modified after it is published.
 *
 * A trust list is swapped the same way, under a rwlock: verifications take
 * it shared (verification is CPU only, a few tens of microseconds), a reload
 * takes it exclusively just for the pointer swap.
 *
 * Change detection compares stat() of the path (following symlinks): device,
 * inode, size and mtime. A Kubernetes Secret volume replaces files by
 * swapping the `..data` symlink, so the resolved inode changes; an in-place
 * rewrite changes the mtime or size.
 */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include "log.h"
#include "selfmetrics.h"
#include "xalloc.h"

#define MAX_CHAIN 16

#define RELOAD_HELP                                                                                          \
    "Certificate and CA files reloaded after a change, and changes not usable yet (kept the old)."
SM_COUNTER(c_reload_ok, "metrics_adapter_tls_reloads_total", "result=\"reloaded\"", RELOAD_HELP)
SM_COUNTER(c_reload_kept, "metrics_adapter_tls_reloads_total", "result=\"kept\"", RELOAD_HELP)

struct file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    int exists;
};

struct creds_impl {
    struct tls_creds pub; /* first: users see this part */
    atomic_uint refs;
};

struct tls_server {
    char *cert_path, *key_path;
    pthread_mutex_t mu;
    struct creds_impl *cur;         /* guarded by mu */
    struct file_id cert_id, key_id; /* of the pair last tried (watcher only) */
    unsigned long generation;
};

struct tls_trust {
    char *path;
    pthread_rwlock_t lock;
    gnutls_x509_trust_list_t list; /* guarded by lock */
    char *pem;                     /* guarded by lock */
    struct file_id id;             /* watcher only */
};

static void *xmalloc(size_t n)
{
    void *p = calloc(1, n);
    if (!p) {
        fprintf(stderr, "fatal: out of memory\n");
        abort();
    }
    return p;
}

static void file_id_of(const char *path, struct file_id *id)
{
    struct stat st;
    memset(id, 0, sizeof(*id));
    if (stat(path, &st) == 0) {
        id->exists = 1;
        id->dev = st.st_dev;
        id->ino = st.st_ino;
        id->size = st.st_size;
        id->mtime = st.st_mtim;
    }
}

static int file_id_equal(const struct file_id *a, const struct file_id *b)
{
    return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static int read_file(const char *path, gnutls_datum_t *out)
{
    int rc = gnutls_load_file(path, out);
    if (rc == GNUTLS_E_FILE_ERROR)
        return access(path, F_OK) == 0 ? -EACCES : -ENOENT;
    return rc < 0 ? -EIO : 0;
}

static void creds_destroy(struct creds_impl *c)
{
    for (unsigned i = 0; i < c->pub.npcert; i++)
        gnutls_pcert_deinit(&c->pub.pcert[i]);
    free(c->pub.pcert);
    if (c->pub.key)
        gnutls_privkey_deinit(c->pub.key);
    free(c);
}

/* Whether the private key belongs to the leaf certificate: same public key id. */
static int key_matches(gnutls_pcert_st *leaf, gnutls_privkey_t key)
{
    gnutls_pubkey_t pub;
    unsigned char a[64], b[64];
    size_t alen = sizeof(a), blen = sizeof(b);
    if (gnutls_pubkey_init(&pub) < 0)
        return 0;
    int ok = gnutls_pubkey_import_privkey(pub, key, 0, 0) == 0 &&
             gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA256, a, &alen) == 0 &&
             gnutls_pubkey_get_key_id(leaf->pubkey, GNUTLS_KEYID_USE_SHA256, b, &blen) == 0 && alen == blen &&
             memcmp(a, b, alen) == 0;
    gnutls_pubkey_deinit(pub);
    return ok;
}

/* Build a snapshot from the two files. 0, -ENOENT, -EACCES or -EINVAL. */
static int creds_load(const char *cert_path, const char *key_path, struct creds_impl **out)
{
    gnutls_datum_t cert = {0}, key = {0};
    int rc = read_file(cert_path, &cert);
    if (rc)
        return rc;
    if ((rc = read_file(key_path, &key)) != 0) {
        gnutls_free(cert.data);
        return rc;
    }
    struct creds_impl *c = xmalloc(sizeof(*c));
    c->pub.pcert = xmalloc(MAX_CHAIN * sizeof(gnutls_pcert_st));
    unsigned n = MAX_CHAIN;
    rc = -EINVAL;
    if (gnutls_pcert_list_import_x509_raw(c->pub.pcert, &n, &cert, GNUTLS_X509_FMT_PEM, 0) < 0 || n == 0)
        goto fail;
    c->pub.npcert = n;
    if (gnutls_privkey_init(&c->pub.key) < 0)
        goto fail;
    if (gnutls_privkey_import_x509_raw(c->pub.key, &key, GNUTLS_X509_FMT_PEM, NULL, 0) < 0)
        goto fail;
    if (!key_matches(&c->pub.pcert[0], c->pub.key))
        goto fail;
    atomic_init(&c->refs, 1);
    *out = c;
    rc = 0;
    goto done;
fail:
    creds_destroy(c);
done:
    gnutls_memset(key.data, 0, key.size);
    gnutls_free(key.data);
    gnutls_free(cert.data);
    return rc;
}

int tls_server_new(const char *cert_path, const char *key_path, struct tls_server **out)
{
    struct creds_impl *c;
    struct file_id cid, kid;
    file_id_of(cert_path, &cid);
    file_id_of(key_path, &kid);
    int rc = creds_load(cert_path, key_path, &c);
    if (rc)
        return rc;
    struct tls_server *s = xmalloc(sizeof(*s));
    s->cert_path = xstrdup(cert_path);
    s->key_path = xstrdup(key_path);
    pthread_mutex_init(&s->mu, NULL);
    s->cert_id = cid;
    s->key_id = kid;
    s->generation = c->pub.generation = 1;
    s->cur = c;
    *out = s;
    return 0;
}

void tls_server_free(struct tls_server *s)
{
    if (!s)
        return;
    tls_creds_release(&s->cur->pub);
    pthread_mutex_destroy(&s->mu);
    free(s->cert_path);
    free(s->key_path);
    free(s);
}

struct tls_creds *tls_server_acquire(struct tls_server *s)
{
    pthread_mutex_lock(&s->mu);
    struct creds_impl *c = s->cur;
    /* Under mu, so the server's own reference keeps c alive while we add ours. */
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&s->mu);
    return &c->pub;
}

void tls_creds_release(struct tls_creds *pc)
{
    if (!pc)
        return;
    struct creds_impl *c = (struct creds_impl *)pc;
    /* acq_rel: the last dropper sees every use of the snapshot before freeing it. */
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        creds_destroy(c);
}

int tls_server_check(struct tls_server *s)
{
    struct file_id cid, kid;
    file_id_of(s->cert_path, &cid);
    file_id_of(s->key_path, &kid);
    if (file_id_equal(&cid, &s->cert_id) && file_id_equal(&kid, &s->key_id))
        return 0;
    s->cert_id = cid;
    s->key_id = kid;
    struct creds_impl *c;
    int rc = creds_load(s->cert_path, s->key_path, &c);
    if (rc) {
        /* Typically the certificate was replaced and the key not yet: the
         * next change of either file tries again. */
        log_warn("serving certificate changed but is not usable yet; keeping the current one",
                 "cert=%s key=%s error=%s", s->cert_path, s->key_path,
                 rc == -EINVAL ? "the pair does not parse or the key does not match" : strerror(-rc));
        sm_inc(&c_reload_kept);
        return 0;
    }
    pthread_mutex_lock(&s->mu);
    struct creds_impl *old = s->cur;
    c->pub.generation = ++s->generation;
    s->cur = c;
    pthread_mutex_unlock(&s->mu);
    tls_creds_release(&old->pub); /* freed now, or by the last handshake still using it */
    sm_inc(&c_reload_ok);
    log_info("serving certificate reloaded", "cert=%s generation=%lu", s->cert_path, c->pub.generation);
    return 1;
}

/* ---- self-signed certificate -------------------------------------------- */

static int write_file(const char *path, const gnutls_datum_t *d, mode_t mode)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    ssize_t w = write(fd, d->data, d->size);
    int rc = (w == (ssize_t)d->size && fsync(fd) == 0) ? 0 : -EIO;
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc)
        unlink(tmp);
    return rc;
}

static int mkdirs(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s", dir);
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0700) != 0 && errno != EEXIST)
                return -errno;
            *s = '/';
        }
    }
    if (mkdir(p, 0700) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int generate_pair(const char *cert_path, const char *key_path)
{
    gnutls_x509_privkey_t key = NULL;
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t kpem = {0}, cpem = {0};
    int rc = -EIO;
    unsigned char serial[16];
    char host[256] = "localhost", cn[300];
    static const unsigned char lo[4] = {127, 0, 0, 1};
    time_t now = time(NULL);

    gethostname(host, sizeof(host) - 1);
    snprintf(cn, sizeof(cn), "metrics-adapter@%lld", (long long)now);
    if (gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial)) < 0)
        goto out;
    serial[0] &= 0x7f; /* a positive serial */
    if (gnutls_x509_privkey_init(&key) < 0 ||
        gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
                                     0) < 0)
        goto out;
    if (gnutls_x509_crt_init(&crt) < 0 || gnutls_x509_crt_set_version(crt, 3) < 0 ||
        gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)) < 0 ||
        gnutls_x509_crt_set_activation_time(crt, now - 3600) < 0 ||
        gnutls_x509_crt_set_expiration_time(crt, now + 365 * 24 * 3600) < 0 ||
        gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, (unsigned)strlen(cn)) < 0 ||
        gnutls_x509_crt_set_key(crt, key) < 0 ||
        gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9, GNUTLS_FSAN_APPEND) <
            0 ||
        gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, host, (unsigned)strlen(host),
                                             GNUTLS_FSAN_APPEND) < 0 ||
        gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, lo, 4, GNUTLS_FSAN_APPEND) < 0 ||
        gnutls_x509_crt_set_basic_constraints(crt, 0, -1) < 0 ||
        gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE | GNUTLS_KEY_KEY_ENCIPHERMENT) < 0 ||
        gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0) < 0 ||
        gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0) < 0)
        goto out;
    if (gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &kpem) < 0 ||
        gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &cpem) < 0)
        goto out;
    /* Key first: a reader that finds the certificate finds its key too. */
    if ((rc = write_file(key_path, &kpem, 0600)) == 0)
        rc = write_file(cert_path, &cpem, 0644);
out:
    if (kpem.data) {
        gnutls_memset(kpem.data, 0, kpem.size);
        gnutls_free(kpem.data);
    }
    gnutls_free(cpem.data);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (key)
        gnutls_x509_privkey_deinit(key);
    return rc;
}

int tls_selfsigned_ensure(const char *dir, char **cert_out, char **key_out)
{
    char cert[4096], key[4096];
    snprintf(cert, sizeof(cert), "%s/apiserver.crt", dir);
    snprintf(key, sizeof(key), "%s/apiserver.key", dir);
    struct creds_impl *c;
    if (creds_load(cert, key, &c) == 0) {
        creds_destroy(c);
        log_info("using the serving certificate found in --cert-dir", "cert=%s", cert);
    } else {
        int rc = mkdirs(dir);
        if (rc == 0)
            rc = generate_pair(cert, key);
        if (rc) {
            log_error("cannot write a self-signed certificate", "flag=--cert-dir dir=%s error=%s", dir,
                      strerror(-rc));
            return rc;
        }
        log_info("generated a self-signed serving certificate", "cert=%s", cert);
    }
    *cert_out = xstrdup(cert);
    *key_out = xstrdup(key);
    return 0;
}

/* ---- trust lists -------------------------------------------------------- */

static int trust_from_mem(gnutls_datum_t d, gnutls_x509_trust_list_t *out, char **pem_out);

static int trust_load(const char *path, gnutls_x509_trust_list_t *out, char **pem_out)
{
    gnutls_datum_t d = {0};
    int rc = read_file(path, &d);
    if (rc)
        return rc;
    return trust_from_mem(d, out, pem_out);
}

/* Takes ownership of d.data (gnutls-allocated). */
static int trust_from_mem(gnutls_datum_t d, gnutls_x509_trust_list_t *out, char **pem_out)
{
    gnutls_x509_trust_list_t l;
    if (gnutls_x509_trust_list_init(&l, 0) < 0) {
        gnutls_free(d.data);
        return -ENOMEM;
    }
    int n = gnutls_x509_trust_list_add_trust_mem(l, &d, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
    if (n <= 0) {
        gnutls_x509_trust_list_deinit(l, 1);
        gnutls_free(d.data);
        return -EINVAL;
    }
    char *pem = xmalloc(d.size + 1);
    memcpy(pem, d.data, d.size);
    gnutls_free(d.data);
    *out = l;
    *pem_out = pem;
    return 0;
}

int tls_trust_new(const char *ca_path, struct tls_trust **out)
{
    struct tls_trust *t = xmalloc(sizeof(*t));
    file_id_of(ca_path, &t->id);
    int rc = trust_load(ca_path, &t->list, &t->pem);
    if (rc) {
        free(t);
        return rc;
    }
    t->path = xstrdup(ca_path);
    pthread_rwlock_init(&t->lock, NULL);
    *out = t;
    return 0;
}

int tls_trust_new_pem(const char *pem, struct tls_trust **out)
{
    size_t n = strlen(pem);
    gnutls_datum_t d = {gnutls_malloc(n + 1), (unsigned)n};
    if (!d.data)
        return -ENOMEM;
    memcpy(d.data, pem, n + 1);
    struct tls_trust *t = xmalloc(sizeof(*t));
    int rc = trust_from_mem(d, &t->list, &t->pem);
    if (rc) {
        free(t);
        return rc;
    }
    pthread_rwlock_init(&t->lock, NULL);
    *out = t;
    return 0;
}

void tls_trust_free(struct tls_trust *t)
{
    if (!t)
        return;
    gnutls_x509_trust_list_deinit(t->list, 1);
    pthread_rwlock_destroy(&t->lock);
    free(t->pem);
    free(t->path);
    free(t);
}

int tls_trust_check(struct tls_trust *t)
{
    if (!t->path)
        return 0; /* from a ConfigMap's text */
    struct file_id id;
    file_id_of(t->path, &id);
    if (file_id_equal(&id, &t->id))
        return 0;
    t->id = id;
    gnutls_x509_trust_list_t l;
    char *pem;
    int rc = trust_load(t->path, &l, &pem);
    if (rc) {
        log_warn("CA file changed but holds no usable certificate; keeping the current one", "file=%s",
                 t->path);
        sm_inc(&c_reload_kept);
        return 0;
    }
    pthread_rwlock_wrlock(&t->lock);
    gnutls_x509_trust_list_t old = t->list;
    char *oldpem = t->pem;
    t->list = l;
    t->pem = pem;
    pthread_rwlock_unlock(&t->lock);
    gnutls_x509_trust_list_deinit(old, 1);
    free(oldpem);
    sm_inc(&c_reload_ok);
    log_info("client CA reloaded", "file=%s", t->path);
    return 1;
}

char *tls_trust_pem(struct tls_trust *t)
{
    pthread_rwlock_rdlock(&t->lock);
    char *p = xstrdup(t->pem);
    pthread_rwlock_unlock(&t->lock);
    return p;
}

static void subject_of(gnutls_x509_crt_t crt, struct tls_peer *peer)
{
    size_t len = sizeof(peer->cn);
    memset(peer, 0, sizeof(*peer));
    if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, peer->cn, &len) < 0)
        peer->cn[0] = '\0';
    for (unsigned i = 0; i < sizeof(peer->orgs) / sizeof(peer->orgs[0]); i++) {
        len = sizeof(peer->orgs[0]);
        if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATION_NAME, i, 0, peer->orgs[i], &len) <
            0)
            break;
        peer->norgs++;
    }
}

int tls_verify_peer(struct tls_trust *t, gnutls_session_t session, struct tls_peer *peer)
{
    unsigned n = 0;
    const gnutls_datum_t *raw = session ? gnutls_certificate_get_peers(session, &n) : NULL;
    if (!raw || n == 0)
        return -ENOENT;
    if (n > MAX_CHAIN)
        return -EACCES;
    gnutls_x509_crt_t crts[MAX_CHAIN];
    unsigned ok = 0;
    int rc = -EACCES;
    for (; ok < n; ok++) {
        if (gnutls_x509_crt_init(&crts[ok]) < 0)
            goto out;
        if (gnutls_x509_crt_import(crts[ok], &raw[ok], GNUTLS_X509_FMT_DER) < 0) {
            ok++;
            goto out;
        }
    }
    /* The purpose check passes for certificates that state no purpose, as
     * Go's crypto/x509 does for kube-apiserver. */
    gnutls_typed_vdata_st purpose = {
        .type = GNUTLS_DT_KEY_PURPOSE_OID, .data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT, .size = 0};
    unsigned status = 0;
    pthread_rwlock_rdlock(&t->lock);
    int vr = gnutls_x509_trust_list_verify_crt2(t->list, crts, n, &purpose, 1, 0, &status, NULL);
    pthread_rwlock_unlock(&t->lock);
    if (vr == 0 && status == 0) {
        subject_of(crts[0], peer);
        rc = 0;
    }
out:
    for (unsigned i = 0; i < ok; i++)
        gnutls_x509_crt_deinit(crts[i]);
    return rc;
}

/* ---- watcher ------------------------------------------------------------ */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int running, stop, poked;
    unsigned interval_ms;
    struct tls_server *servers[8];
    unsigned nservers;
    struct tls_trust *trusts[8];
    unsigned ntrusts;
} watch = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

void tls_watch_add_server(struct tls_server *s)
{
    if (s && watch.nservers < 8)
        watch.servers[watch.nservers++] = s;
}

void tls_watch_add_trust(struct tls_trust *t)
{
    if (t && watch.ntrusts < 8)
        watch.trusts[watch.ntrusts++] = t;
}

static void *watch_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&watch.mu);
    while (!watch.stop) {
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_sec += watch.interval_ms / 1000;
        dl.tv_nsec += (long)(watch.interval_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        while (!watch.stop && !watch.poked && pthread_cond_timedwait(&watch.cv, &watch.mu, &dl) != ETIMEDOUT)
            ;
        if (watch.stop)
            break;
        watch.poked = 0;
        pthread_mutex_unlock(&watch.mu);
        for (unsigned i = 0; i < watch.nservers; i++)
            tls_server_check(watch.servers[i]);
        for (unsigned i = 0; i < watch.ntrusts; i++)
            tls_trust_check(watch.trusts[i]);
        pthread_mutex_lock(&watch.mu);
    }
    pthread_mutex_unlock(&watch.mu);
    return NULL;
}

int tls_watch_start(unsigned interval_ms)
{
    if (watch.running || (!watch.nservers && !watch.ntrusts))
        return 0;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_destroy(&watch.cv);
    pthread_cond_init(&watch.cv, &ca);
    pthread_condattr_destroy(&ca);
    watch.interval_ms = interval_ms ? interval_ms : 2000;
    watch.stop = 0;
    int rc = pthread_create(&watch.thread, NULL, watch_main, NULL);
    if (rc)
        return -rc;
    watch.running = 1;
    return 0;
}

void tls_watch_poke(void)
{
    pthread_mutex_lock(&watch.mu);
    watch.poked = 1;
    pthread_cond_signal(&watch.cv);
    pthread_mutex_unlock(&watch.mu);
}

void tls_watch_stop(void)
{
    if (watch.running) {
        pthread_mutex_lock(&watch.mu);
        watch.stop = 1;
        pthread_cond_signal(&watch.cv);
        pthread_mutex_unlock(&watch.mu);
        pthread_join(watch.thread, NULL);
        watch.running = 0;
    }
    watch.nservers = watch.ntrusts = 0;
}
