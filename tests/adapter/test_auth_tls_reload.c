/*
 * Serving credentials and trust lists under reload, from several threads:
 * handshake-like users take and drop references (tls_server_acquire /
 * tls_creds_release) and verify with a trust list while one thread swaps a
 * `..data`-style symlink between two self-signed pairs and calls the checks.
 * Every snapshot a user holds must stay whole (certificate and key usable
 * together) until released. Runs under ASan (a snapshot freed too early is a
 * use-after-free) and TSan (the refcount, mutex and rwlock are plain
 * pthread/atomic code, which TSan sees entirely).
 *
 *   test_auth_tls_reload [seconds] [threads]
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>

#include "tls.h"
#include "check.h"

static char dir[] = "/tmp/ma-test-tls-XXXXXX";
static struct tls_server *srv;
static struct tls_trust *trust;
static atomic_int stop;
static atomic_ulong uses;

/* Sign a few bytes with the snapshot's key and check them with its certificate. */
static void use(struct tls_creds *c)
{
    static const unsigned char msg[] = "handshake";
    gnutls_datum_t data = {(unsigned char *)msg, sizeof(msg)}, sig = {0};
    CHECK_EQ(gnutls_privkey_sign_data(c->key, GNUTLS_DIG_SHA256, 0, &data, &sig), 0);
    int algo = gnutls_pk_to_sign(gnutls_pubkey_get_pk_algorithm(c->pcert[0].pubkey, NULL), GNUTLS_DIG_SHA256);
    CHECK(gnutls_pubkey_verify_data2(c->pcert[0].pubkey, algo, 0, &data, &sig) >= 0);
    gnutls_free(sig.data);
}

static void *user(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        struct tls_creds *c = tls_server_acquire(srv);
        use(c);
        tls_creds_release(c);
        char *pem = tls_trust_pem(trust);
        CHECK(strstr(pem, "BEGIN CERTIFICATE"));
        free(pem);
        atomic_fetch_add(&uses, 1);
    }
    return NULL;
}

static void path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static void swap_to(const char *gen)
{
    char tmp[512], data[512];
    path(tmp, sizeof(tmp), "..data_tmp");
    path(data, sizeof(data), "..data");
    unlink(tmp);
    CHECK(symlink(gen, tmp) == 0);
    CHECK(rename(tmp, data) == 0);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    int nthreads = argc > 2 ? atoi(argv[2]) : 3;
    CHECK(mkdtemp(dir));
    char a[512], b[512], cert[512], key[512], ca[512];
    path(a, sizeof(a), "a");
    path(b, sizeof(b), "b");
    char *c1, *k1;
    CHECK_EQ(tls_selfsigned_ensure(a, &c1, &k1), 0);
    free(c1);
    free(k1);
    CHECK_EQ(tls_selfsigned_ensure(b, &c1, &k1), 0);
    free(c1);
    free(k1);
    swap_to("a");
    path(cert, sizeof(cert), "apiserver.crt");
    path(key, sizeof(key), "apiserver.key");
    CHECK(symlink("..data/apiserver.crt", cert) == 0);
    CHECK(symlink("..data/apiserver.key", key) == 0);
    CHECK_EQ(tls_server_new(cert, key, &srv), 0);
    /* The serving certificate doubles as a one-certificate CA bundle. */
    CHECK_EQ(tls_trust_new(cert, &trust), 0);

    /* A key that does not match is refused at start. */
    struct tls_server *bad;
    char bkey[600];
    snprintf(bkey, sizeof(bkey), "%s/apiserver.key", b);
    CHECK_EQ(tls_server_new(cert, bkey, &bad), -EINVAL);
    path(ca, sizeof(ca), "missing");
    CHECK_EQ(tls_server_new(ca, key, &bad), -ENOENT);
    struct tls_trust *none;
    CHECK_EQ(tls_trust_new(ca, &none), -ENOENT);

    pthread_t th[16];
    if (nthreads > 16)
        nthreads = 16;
    for (int i = 0; i < nthreads; i++)
        CHECK(pthread_create(&th[i], NULL, user, NULL) == 0);
    double end = t_now() + seconds;
    unsigned long reloads = 0;
    int which = 0;
    while (t_now() < end) {
        which = !which;
        swap_to(which ? "b" : "a");
        reloads += (unsigned long)tls_server_check(srv);
        tls_trust_check(trust);
        usleep(2000);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);

    struct tls_creds *c = tls_server_acquire(srv);
    CHECK(c->generation == reloads + 1);
    use(c);
    tls_creds_release(c);
    CHECK(reloads > 0);
    CHECK(atomic_load(&uses) > 0);
    printf("reloads=%lu uses=%lu\n", reloads, atomic_load(&uses));
    tls_server_free(srv);
    tls_trust_free(trust);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    printf("ok\n");
    return 0;
}
