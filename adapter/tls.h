#ifndef ADAPTER_TLS_H
#define ADAPTER_TLS_H

/*
 * tls: serving credentials, the adapter's own client-CA trust lists, peer
 * verification, and the reload watcher (GnuTLS 3.7).
 *
 * Serving credentials (struct tls_server) are immutable, refcounted
 * snapshots of a certificate chain and its private key. A TLS handshake takes
 * a reference (tls_server_acquire()) and gives it back when it no longer
 * needs the key (http releases it on the connection's first request or when
 * the connection closes). A reload publishes a new snapshot; the old one is
 * freed when its last handshake lets go, so a reload never drops a
 * connection nor frees a key under a running handshake.
 *
 * Trust lists (struct tls_trust) are the adapter's own, one per CA file:
 * libmicrohttpd only *requests* a client certificate and cannot reload its
 * trust (DESIGN 4a), so every chain is verified here, each against its own
 * list, never a union (a certificate from the general client CA must not
 * pose as the front proxy).
 *
 * Reload: tls_watch_*() polls the files (stat of the resolved path: a Secret
 * volume's `..data` symlink swap changes the inode) every interval. A server
 * switches only when the new certificate and key both parse and the key
 * matches the certificate; a half-written pair keeps the old credentials.
 *
 * Thread safety: every function is safe from any thread once the object
 * exists, except *_free (after the listeners using it are stopped).
 */

#include <stddef.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>

struct tls_server;
struct tls_trust;

/* One snapshot of serving credentials (read-only for users). */
struct tls_creds {
    gnutls_pcert_st *pcert; /* chain, leaf first */
    unsigned npcert;
    gnutls_privkey_t key;
    unsigned long generation; /* 1 for the first load, +1 per reload */
};

/*
 * tls_server_new - load @cert_path and @key_path (PEM).
 * Returns 0, -ENOENT (a file is missing), -EINVAL (does not parse, or the key
 * does not match the certificate). *out is written only on success.
 */
int tls_server_new(const char *cert_path, const char *key_path, struct tls_server **out);
void tls_server_free(struct tls_server *s);

/* The current snapshot with a reference taken; never NULL. Fast: one mutex. */
struct tls_creds *tls_server_acquire(struct tls_server *s);
/* Give back a reference from tls_server_acquire(); NULL is ignored. */
void tls_creds_release(struct tls_creds *c);

/*
 * tls_server_check - reload when a file changed. Returns 1 when new
 * credentials were published, 0 when nothing changed or the new pair is not
 * usable yet (logged once per change; the old pair stays).
 */
int tls_server_check(struct tls_server *s);

/*
 * tls_selfsigned_ensure - the certificate pair in @dir (apiserver.crt,
 * apiserver.key, like prometheus-adapter): kept when both exist and match,
 * else a new self-signed ECDSA P-256 pair for localhost, 127.0.0.1 and the
 * host name, valid one year, written with mode 0600 for the key.
 * @cert_out, @key_out: malloc'ed paths, written on success.
 * Returns 0 or a negative errno (the directory cannot be created or written).
 */
int tls_selfsigned_ensure(const char *dir, char **cert_out, char **key_out);

/*
 * tls_trust_new - a trust list from a PEM bundle of CA certificates.
 * Returns 0, -ENOENT, or -EINVAL when the file holds no certificate.
 */
int tls_trust_new(const char *ca_path, struct tls_trust **out);
/* A trust list from PEM text (a ConfigMap's value): never reloaded from a file.
 * Returns 0 or -EINVAL. */
int tls_trust_new_pem(const char *pem, struct tls_trust **out);
void tls_trust_free(struct tls_trust *t);
/* Reload when the file changed (a bundle that does not parse keeps the old). Returns 1 when reloaded. */
int tls_trust_check(struct tls_trust *t);
/* The PEM text last loaded (for libmicrohttpd's client-certificate request); malloc'ed copy. */
char *tls_trust_pem(struct tls_trust *t);

/* A verified client certificate's subject. */
struct tls_peer {
    char cn[256];
    char orgs[16][128]; /* O= values, in order */
    unsigned norgs;
};

/*
 * tls_verify_peer - verify the client chain of @session against @t only
 * (validity dates, signatures, client-auth purpose when the certificate
 * states purposes).
 * Returns 0 (verified; @peer filled), -ENOENT (no client certificate),
 * -EACCES (a certificate that does not verify against @t).
 */
int tls_verify_peer(struct tls_trust *t, gnutls_session_t session, struct tls_peer *peer);

/*
 * The watcher: one thread that calls tls_server_check() and
 * tls_trust_check() on everything added, every @interval_ms.
 * Add before tls_watch_start(); tls_watch_stop() joins the thread.
 */
void tls_watch_add_server(struct tls_server *s);
void tls_watch_add_trust(struct tls_trust *t);
int tls_watch_start(unsigned interval_ms);
/* Run the checks now rather than at the next interval (SIGHUP). Safe from any thread. */
void tls_watch_poke(void);
void tls_watch_stop(void);

#endif /* ADAPTER_TLS_H */
