/*
 * metrics-adapter: the process.
 *
 * DESIGN: main blocks the signals it handles before anything else can start
 * a thread, because liburcu 0.13's call_rcu and resize workers (and
 * libmicrohttpd's pool) do not block signals themselves and inherit the
 * creating thread's mask: with the mask set first, every thread has them
 * blocked and the only place they are received is the sigwaitinfo() loop
 * below, on the main thread. SIGPIPE is ignored (a client that goes away
 * must not kill the process).
 *
 * Start-up order: flags, log, RCU registration of main, the series store,
 * the listeners and their routes, then the signal loop. Shutdown runs the same
 * list backwards: stop the listeners (in-flight requests finish, MHD joins its
 * pool), free the store, then ml_shutdown() waits for every pending RCU
 * callback so that nothing is left for LeakSanitizer to report.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <urcu.h>

#include <maplib/maplib.h>

#include "auth.h"
#include "crash.h"
#include "debug.h"
#include "flags.h"
#include "http.h"
#include "ingest.h"
#include "log.h"
#include "podcache.h"
#include "selfmetrics.h"
#include "serve.h"
#include "snapshot.h"
#include "store.h"
#include "valve.h"
#include "tls.h"

/* Block the handled signals in the calling thread (and every thread it creates). */
static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Wait for SIGTERM or SIGINT; SIGHUP asks for a reload. Returns the signal. */
static int wait_for_stop(const sigset_t *set, struct serve *sv)
{
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(set, &si);
        if (sig < 0) {
            if (errno == EINTR)
                continue;
            log_error("sigwaitinfo failed", "error=%s", strerror(errno));
            return SIGTERM;
        }
        if (sig == SIGHUP) {
            /* Reload: the rule set now; certificates and CA files are polled
             * anyway, SIGHUP only makes the watcher look at once. */
            log_info("reload requested", "signal=SIGHUP");
            serve_reload(sv); /* keeps the rules in use when the new ones do not load */
            tls_watch_poke();
            continue;
        }
        return sig;
    }
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Warm restart: load --snapshot-file through the ingest decoder and caps, so
 * that values are served (and /readyz is ready) at once. Anything wrong with
 * the file is logged by snapshot_load() and the start continues empty.
 */
static void load_snapshot(const struct ma_config *cfg, struct store *store, struct serve *sv)
{
    if (!cfg->snapshot_file || !*cfg->snapshot_file)
        return;
    int64_t now = wall_ms();
    struct api_rw_limits lim = {
        .max_labels = cfg->max_labels_per_series,
        .max_label_name_len = cfg->max_label_name_length,
        .max_label_value_len = cfg->max_label_value_length,
        .max_future_ms = (int64_t)cfg->max_future_ms,
        .now_ms = now,
    };
    struct snapshot_info info;
    if (snapshot_load(store, cfg->snapshot_file, now, &lim, &info) == 0)
        serve_mark_warm(sv);
}

/*
 * Graceful stop (SIGTERM): close the listening sockets, give the requests
 * already begun --shutdown-timeout to finish, then stop the pools (open
 * keep-alive connections are closed) and save the store.
 */
static void drain(const struct ma_config *cfg, struct http_server *ingest, struct http_server *secure)
{
    if (http_quiesce(ingest) || http_quiesce(secure))
        log_warn("cannot stop accepting: closing at once", NULL);
    int64_t deadline = wall_ms() + (int64_t)cfg->shutdown_timeout_ms;
    unsigned n;
    while ((n = http_in_flight(ingest) + http_in_flight(secure)) != 0 && wall_ms() < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (n)
        log_warn("shutdown timeout: closing requests still in flight", "requests=%u flag=--shutdown-timeout",
                 n);
}

static void save_snapshot(const struct ma_config *cfg, struct store *store)
{
    if (!cfg->snapshot_file || !*cfg->snapshot_file)
        return;
    struct snapshot_info info;
    int64_t t0 = wall_ms();
    int rc = snapshot_write(store, cfg->snapshot_file, &info);
    if (rc)
        log_error("cannot write the snapshot", "flag=--snapshot-file path=%s error=%s", cfg->snapshot_file,
                  strerror(-rc));
    else
        log_info("snapshot written", "path=%s bytes=%zu series=%llu samples=%llu duration_ms=%lld",
                 cfg->snapshot_file, info.bytes, (unsigned long long)info.series,
                 (unsigned long long)info.samples, (long long)(wall_ms() - t0));
}

static int start_listener(const struct ma_config *cfg, struct ingest *ing, struct serve *sv,
                          const struct auth_stack *as, struct http_server **out)
{
    struct http_listener_config lc = {
        .name = "ingest",
        .address = cfg->listen_address,
        .threads = cfg->http_threads,
        .max_connections = cfg->max_connections,
        .timeout_s = (unsigned)(cfg->http_timeout_ms / 1000),
        .default_body_cap = 1 << 20,
    };
    struct http_server *srv;
    int rc = http_server_new(&lc, &srv);
    if (rc == -EINVAL) {
        fprintf(stderr,
                "metrics-adapter: invalid value \"%s\" for flag --listen-address: expected host:port\n",
                cfg->listen_address);
        return 2;
    }
    if (rc) {
        log_error("cannot create listener", "listener=ingest error=%s", strerror(-rc));
        return 1;
    }
    if ((rc = selfmetrics_add_routes(srv)) != 0) {
        log_error("cannot add routes", "listener=ingest error=%s", strerror(-rc));
        http_server_free(srv);
        return 1;
    }
    /* The debug endpoint is served on a loopback listener only (debug.h). */
    if (cfg->debug_endpoint && !ingest_address_is_loopback(cfg->listen_address)) {
        log_warn("debug endpoint not served: the listener is not loopback", "flag=--debug-endpoint addr=%s",
                 cfg->listen_address);
    } else if (cfg->debug_endpoint && (rc = debug_add_routes(srv)) != 0) {
        log_error("cannot add routes", "listener=ingest error=%s", strerror(-rc));
        http_server_free(srv);
        return 1;
    }
    /* TLS on the ingest listener: a client certificate the ingest CA verifies
     * authenticates remote write, as the bearer token does. */
    if (as->ingest_serving) {
        char *pem = as->ingest_ca ? tls_trust_pem(as->ingest_ca) : NULL;
        rc = http_set_tls(srv, as->ingest_serving, pem);
        free(pem);
        if (as->ingest_ca)
            http_set_guard(srv, auth_ingest_guard, as->ingest_ca);
        if (rc) {
            log_error("cannot serve TLS", "listener=ingest error=%s", strerror(-rc));
            http_server_free(srv);
            return 1;
        }
    }
    if ((rc = ingest_add_routes(ing, srv)) != 0) {
        log_error("cannot add routes", "listener=ingest error=%s", strerror(-rc));
        http_server_free(srv);
        return 1;
    }
    /* The metrics API is served without authentication only on a loopback listener (DESIGN 5). */
    if ((rc = serve_add_routes(sv, srv, ingest_address_is_loopback(cfg->listen_address))) != 0) {
        log_error("cannot add routes", "listener=ingest error=%s", strerror(-rc));
        http_server_free(srv);
        return 1;
    }
    if ((rc = http_start(srv)) != 0) {
        log_error("cannot listen", "listener=ingest addr=%s error=%s", cfg->listen_address, strerror(-rc));
        http_server_free(srv);
        return 1;
    }
    log_info("listening", "listener=%s addr=%s loopback=%s", http_name(srv), http_bound_address(srv),
             http_is_loopback(srv) ? "true" : "false");
    *out = srv;
    return 0;
}

/* The pod metadata cache per --pod-labels-source (0, or an exit status). */
static int start_podcache(const struct ma_config *cfg, struct kube **k, struct podcache **pc)
{
    const char *src = cfg->pod_labels_source;
    if (strcmp(src, "series") == 0)
        return 0;
    if (strcmp(src, "auto") != 0 && strcmp(src, "kubernetes") != 0) {
        fprintf(stderr, "metrics-adapter: --pod-labels-source: want auto, series or kubernetes, not %s\n",
                src);
        return 2;
    }
    /* No retries in the client: the cache backs off by itself. */
    int rc = kube_new(cfg->kubeconfig, (unsigned)cfg->kube_api_timeout_ms, 0, k);
    if (rc == -ENOENT && strcmp(src, "auto") == 0) {
        log_info("no Kubernetes API: pods reads match labelSelector against series labels", NULL);
        return 0;
    }
    if (rc != 0) {
        log_error("cannot start the pod metadata cache", "flag=--pod-labels-source error=%s", strerror(-rc));
        return rc == -EINVAL || rc == -ENOENT ? 2 : 1;
    }
    if ((rc = podcache_start(*k, pc)) != 0) {
        log_error("cannot start the pod metadata cache", "error=%s", strerror(-rc));
        return 1;
    }
    podcache_set_active(*pc);
    log_info("pod metadata cache started: pods reads match labelSelector against pod labels", "server=%s",
             kube_server(*k));
    return 0;
}

/* The HTTPS listener for the aggregator: metrics APIs, discovery, /metrics and
 * health, behind authentication and authorization (auth.h). */
static int start_secure(const struct ma_config *cfg, struct serve *sv, const struct auth_stack *as,
                        struct http_server **out)
{
    char addr[300];
    if (strchr(cfg->bind_address, ':'))
        snprintf(addr, sizeof(addr), "[%s]:%u", cfg->bind_address, cfg->secure_port);
    else
        snprintf(addr, sizeof(addr), "%s:%u", cfg->bind_address, cfg->secure_port);
    struct http_listener_config lc = {
        .name = "secure",
        .address = addr,
        .threads = cfg->http_threads,
        .max_connections = cfg->max_connections,
        .timeout_s = (unsigned)(cfg->http_timeout_ms / 1000),
        .default_body_cap = 1 << 20,
    };
    struct http_server *srv;
    int rc = http_server_new(&lc, &srv);
    if (rc) {
        fprintf(stderr, "metrics-adapter: invalid value \"%s\" for flag --bind-address\n", cfg->bind_address);
        return 2;
    }
    /* The client-certificate request names both CAs; each chain is still
     * verified against its own list only (auth.c). */
    struct buf pem = BUF_INIT;
    struct tls_trust *cas[2] = {as->rh_ca, as->client_ca};
    for (int i = 0; i < 2; i++) {
        if (cas[i]) {
            char *p = tls_trust_pem(cas[i]);
            buf_puts(&pem, p);
            buf_putc(&pem, '\n');
            free(p);
        }
    }
    rc = http_set_tls(srv, as->serving, pem.len ? pem.data : NULL);
    buf_free(&pem);
    http_set_guard(srv, auth_guard, as->auth);
    if (rc == 0)
        rc = selfmetrics_add_routes(srv);
    if (rc == 0)
        rc = serve_add_routes(sv, srv, 1);
    if (rc == 0 && (rc = http_start(srv)) != 0)
        log_error("cannot listen", "listener=secure addr=%s error=%s", addr, strerror(-rc));
    else if (rc)
        log_error("cannot add routes", "listener=secure error=%s", strerror(-rc));
    if (rc) {
        http_server_free(srv);
        return 1;
    }
    log_info("listening", "listener=%s addr=%s loopback=%s", http_name(srv), http_bound_address(srv),
             http_is_loopback(srv) ? "true" : "false");
    *out = srv;
    return 0;
}

int main(int argc, char **argv)
{
    sigset_t sigs;
    /* Before the first RCU call and before any thread exists (see DESIGN). */
    block_signals(&sigs);
    crash_install();

    struct ma_config cfg;
    char err[512];
    int rc = flags_parse(&cfg, argc, argv, err, sizeof(err));
    if (rc == FLAGS_HELP || rc == FLAGS_VERSION) {
        if (rc == FLAGS_HELP)
            flags_usage(stdout, "metrics-adapter");
        else
            flags_version(stdout);
        flags_free(&cfg);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "metrics-adapter: %s\n", err);
        flags_free(&cfg);
        return 2;
    }
    log_set_level(cfg.log_level);
    selfmetrics_init();

    /* maplib's allocator policy (fastbins off, so that the maintenance
     * thread's malloc_trim can return the pages of deleted series) must be in
     * place before the first allocation of a map. */
    ml_tune_allocator();
    rcu_register_thread();
    int status = 0;
    struct http_server *ingest = NULL, *secure = NULL;
    struct auth_stack as = {0};
    struct kube *pods_kube = NULL;
    struct podcache *pods = NULL;

    struct store *store = NULL;
    struct ingest *ing = NULL;
    struct serve *sv = NULL;
    struct store_config scfg = {
        .max_series = cfg.max_series,
        .max_series_per_metric = cfg.max_series_per_metric,
        .rate_window_ms = (int64_t)cfg.rate_window_ms,
        .series_ttl_ms = (int64_t)cfg.series_ttl_ms,
        .reap_interval_ms = (int64_t)cfg.reap_interval_ms,
        .start_reaper = 1,
    };
    /* First (a bad --pod-labels-source leaves nothing behind), and before the
     * listeners: /readyz waits for its first LIST. */
    if ((status = start_podcache(&cfg, &pods_kube, &pods)) != 0)
        goto out_store;
    if ((rc = store_new(&scfg, &store)) != 0) {
        log_error("cannot create the series store", "error=%s", strerror(-rc));
        status = 1;
        goto out_store;
    }
    selfmetrics_register(store_collect, store);
    /* The memory valve acts on the store (refuse new series, reap at once); DESIGN 5. */
    struct valve_config vcfg;
    if (valve_parse(cfg.memory_limit, cfg.memory_soft_fraction, &vcfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "metrics-adapter: %s\n", err);
        status = 2;
        goto out_store;
    }
    if ((rc = valve_start(&vcfg, store)) != 0) {
        log_error("cannot start the memory valve", "error=%s", strerror(-rc));
        status = 1;
        goto out_store;
    }
    if ((rc = ingest_new(&cfg, store, &ing)) != 0) {
        status = rc == -EINVAL ? 2 : 1;
        goto out_store;
    }

    if ((rc = serve_new(&cfg, store, &sv)) != 0) {
        status = rc == -EINVAL ? 2 : 1;
        goto out_store;
    }
    ingest_set_rules(ing, serve_rules_ptr(sv));
    /* After the rules: the admission hook applies to the snapshot's series too. */
    load_snapshot(&cfg, store, sv);

    if ((rc = auth_stack_new(&cfg, &as)) != 0) {
        status = rc == -EINVAL ? 2 : 1;
        goto out_store;
    }
    status = start_listener(&cfg, ing, sv, &as, &ingest);
    if (status)
        goto out_store;
    if (cfg.secure_port && (status = start_secure(&cfg, sv, &as, &secure)) != 0)
        goto out_listeners;
    if ((rc = tls_watch_start((unsigned)cfg.tls_reload_interval_ms)) != 0) {
        log_error("cannot start the certificate watcher", "error=%s", strerror(-rc));
        status = 1;
        goto out_listeners;
    }
    log_info("started", "version=%s", MA_VERSION);

    int sig = wait_for_stop(&sigs, sv);
    log_info("shutting down", "signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
    drain(&cfg, ingest, secure);
    http_server_free(secure);
    http_server_free(ingest);
    secure = ingest = NULL;
    save_snapshot(&cfg, store);

out_listeners:
    http_server_free(secure);
    http_server_free(ingest);
out_store:
    podcache_set_active(NULL);
    synchronize_rcu(); /* no read holds the cache any more */
    podcache_stop(pods);
    if (pods_kube)
        kube_free(pods_kube);
    auth_stack_free(&as);
    serve_free(sv);
    ingest_free(ing);
    valve_stop();
    if (store) {
        selfmetrics_unregister(store_collect, store);
        store_free(store);
    }
    selfmetrics_shutdown();
    ml_shutdown();
    rcu_unregister_thread();
    if (status == 0)
        log_info("stopped", NULL);
    log_flush();
    flags_free(&cfg);
    return status;
}
