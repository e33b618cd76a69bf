/*
 * snapshot: the store saved on SIGTERM, loaded at start (format in snapshot.h).
 *
 * DESIGN: writing walks the store inside one read-side critical section and
 * encodes each series as a one-series remote-write v1 message appended to
 * the payload; concatenated protobuf messages of one type are one message
 * whose repeated fields are the concatenation, so the payload decodes as one
 * WriteRequest. The walk runs at shutdown, after the listeners stopped, so
 * the only thing its long read-side section delays is the reaper's grace
 * periods for the few seconds it takes.
 *
 * Loading trusts nothing: the header is checked field by field, both CRCs
 * must match, the payload length must be exactly the rest of the file, and
 * the payload goes through the ingest decoder with the ingest caps, which
 * bounds-checks every length and validates every label set. Only then is
 * anything written to the store, so a bad file leaves it untouched.
 */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <urcu.h>
#include <zlib.h>

#include "log.h"

static const unsigned char magic[8] = {'M', 'A', 's', 'n', 'a', 'p', '\r', '\n'};

/* Snapshots above this are refused on load (and never written by a sane store). */
#define SNAPSHOT_MAX_BYTES ((uint64_t)4 << 30)

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* zlib's crc32 takes a uInt length: feed it in slices. */
static uint32_t crc(const unsigned char *p, size_t n)
{
    uLong c = crc32(0L, Z_NULL, 0);
    while (n) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

/* ---- writing ---- */

/* Append every series of @st to @payload; fills the counts and the newest sample. */
static void encode_store(struct store *st, struct buf *payload, struct snapshot_info *info)
{
    struct api_rw_sample *samples = malloc(STORE_MAX_SAMPLES * sizeof(*samples));
    size_t lcap = 64;
    struct api_rw_label *labels = malloc(lcap * sizeof(*labels));
    struct api_rw_metadata *md = NULL;
    size_t nmd = 0, mdcap = 0;
    if (!samples || !labels) {
        log_error("out of memory", "what=snapshot");
        abort();
    }

    /* Held across the walk: the pointers below (labels, names) live until unlock. */
    rcu_read_lock();
    struct store_iter mit, git, sit;
    for (struct store_metric *m = store_metric_first(st, &mit); m; m = store_metric_next(st, &mit)) {
        int type = store_metric_type(m);
        if (type != API_RW_TYPE_UNKNOWN) {
            if (nmd == mdcap) {
                mdcap = mdcap ? mdcap * 2 : 64;
                md = realloc(md, mdcap * sizeof(*md));
                if (!md) {
                    log_error("out of memory", "what=snapshot");
                    abort();
                }
            }
            size_t len;
            const char *name = store_metric_name(m, &len);
            md[nmd++] = (struct api_rw_metadata){.family = name, .family_len = (uint32_t)len, .type = type};
        }
        for (struct store_group *g = store_group_first(m, &git); g; g = store_group_next(m, &git)) {
            for (struct store_series *s = store_series_first(g, &sit); s; s = store_series_next(g, &sit)) {
                size_t held = store_series_snapshot(s, samples, STORE_MAX_SAMPLES);
                if (held > STORE_MAX_SAMPLES)
                    held = STORE_MAX_SAMPLES;
                if (!held)
                    continue;
                struct store_label_iter li;
                struct api_rw_label l;
                size_t nl = 0;
                store_series_labels(s, &li);
                while (store_series_label_next(&li, &l)) {
                    if (nl == lcap) {
                        lcap *= 2;
                        labels = realloc(labels, lcap * sizeof(*labels));
                        if (!labels) {
                            log_error("out of memory", "what=snapshot");
                            abort();
                        }
                    }
                    labels[nl++] = l;
                }
                struct api_rw_series one = {
                    .labels = labels, .n_labels = nl, .samples = samples, .n_samples = held};
                struct api_rw_request rq = {.version = 1, .series = &one, .n_series = 1};
                api_rw_encode(&rq, 1, API_RW_ENC_RAW, payload);
                info->series++;
                info->samples += held;
                if (samples[held - 1].timestamp_ms > info->newest_ms)
                    info->newest_ms = samples[held - 1].timestamp_ms;
            }
        }
    }
    if (nmd) {
        struct api_rw_request rq = {.version = 1, .metadata = md, .n_metadata = nmd};
        api_rw_encode(&rq, 1, API_RW_ENC_RAW, payload);
        info->metrics = nmd;
    }
    rcu_read_unlock();
    free(md);
    free(labels);
    free(samples);
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* fsync the directory holding @path, so that the rename itself is durable. */
static void sync_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

int snapshot_write(struct store *st, const char *path, struct snapshot_info *info)
{
    struct snapshot_info local = {0};
    struct buf payload = BUF_INIT;
    encode_store(st, &payload, &local);

    unsigned char h[SNAPSHOT_HEADER_LEN];
    memcpy(h, magic, sizeof magic);
    put_u32(h + 8, SNAPSHOT_VERSION);
    put_u32(h + 12, SNAPSHOT_HEADER_LEN);
    put_u64(h + 16, payload.len);
    put_u64(h + 24, (uint64_t)local.newest_ms);
    put_u32(h + 32, crc((const unsigned char *)payload.data, payload.len));
    put_u32(h + 36, crc(h, 36));

    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) {
        buf_free(&payload);
        return -ENOMEM;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);

    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    if ((rc = write_all(fd, h, sizeof h)) == 0 && (rc = write_all(fd, payload.data, payload.len)) == 0 &&
        fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc) {
        unlink(tmp);
        goto out;
    }
    sync_dir(path);
    local.bytes = sizeof h + payload.len;
    if (info)
        *info = local;
out:
    free(tmp);
    buf_free(&payload);
    return rc;
}

/* ---- loading ---- */

static int refuse(int rc, char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int refuse(int rc, char *why, size_t whylen, const char *fmt, ...)
{
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

int snapshot_parse(const void *data, size_t len, int64_t now_ms, int64_t ttl_ms,
                   const struct api_rw_limits *lim, struct arena *a, struct api_rw_request *out, char *why,
                   size_t whylen)
{
    const unsigned char *p = data;
    if (len < sizeof magic || memcmp(p, magic, sizeof magic) != 0)
        return refuse(-EINVAL, why, whylen, "not a snapshot (bad magic)");
    if (len < SNAPSHOT_HEADER_LEN)
        return refuse(-EINVAL, why, whylen, "truncated header (%zu bytes)", len);
    if (get_u32(p + 36) != crc(p, 36))
        return refuse(-EINVAL, why, whylen, "header checksum mismatch");
    uint32_t version = get_u32(p + 8);
    if (version != SNAPSHOT_VERSION)
        return refuse(-EPROTO, why, whylen, "format version %u, this build reads %u", version,
                      SNAPSHOT_VERSION);
    if (get_u32(p + 12) != SNAPSHOT_HEADER_LEN)
        return refuse(-EINVAL, why, whylen, "header length %u", get_u32(p + 12));
    uint64_t plen = get_u64(p + 16);
    if (plen != len - SNAPSHOT_HEADER_LEN)
        return refuse(-EINVAL, why, whylen, "payload length %llu, file holds %zu", (unsigned long long)plen,
                      len - SNAPSHOT_HEADER_LEN);
    const unsigned char *payload = p + SNAPSHOT_HEADER_LEN;
    if (get_u32(p + 32) != crc(payload, (size_t)plen))
        return refuse(-EINVAL, why, whylen, "payload checksum mismatch");
    int64_t newest = (int64_t)get_u64(p + 24);
    if (plen == 0)
        return refuse(-ENODATA, why, whylen, "empty store");
    /* Unsigned: @newest comes from the file and may be anything. */
    if (newest < now_ms - ttl_ms)
        return refuse(-ESTALE, why, whylen, "newest sample %llu ms old, older than --series-ttl (%lld ms)",
                      (unsigned long long)((uint64_t)now_ms - (uint64_t)newest), (long long)ttl_ms);
    struct api_rw_request rq;
    int rc = api_rw_decode_pb(payload, (size_t)plen, 1, lim, a, &rq);
    if (rc != API_RW_OK) {
        const char *msg;
        api_rw_http_status(rc, NULL, &msg);
        return refuse(-EINVAL, why, whylen, "payload does not decode: %s", msg);
    }
    *out = rq;
    return 0;
}

/* Read the whole file; -ENOENT, -EFBIG or another negative errno. */
static int read_file(const char *path, unsigned char **data, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > SNAPSHOT_MAX_BYTES) {
        close(fd);
        return S_ISREG(sb.st_mode) ? -EFBIG : -EINVAL;
    }
    size_t n = (size_t)sb.st_size, got = 0;
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break; /* shorter than fstat said: checked as truncated below */
        got += (size_t)r;
    }
    close(fd);
    *data = buf;
    *len = got;
    return 0;
}

int snapshot_load(struct store *st, const char *path, int64_t now_ms, const struct api_rw_limits *lim,
                  struct snapshot_info *info)
{
    unsigned char *data = NULL;
    size_t len = 0;
    int rc = read_file(path, &data, &len);
    if (rc == -ENOENT) {
        log_info("no snapshot to load", "flag=--snapshot-file path=%s", path);
        return rc;
    }
    if (rc) {
        log_warn("snapshot ignored", "path=%s reason=%s", path, strerror(-rc));
        return rc;
    }
    struct arena a;
    arena_init(&a, 0);
    struct api_rw_request rq;
    char why[200];
    rc = snapshot_parse(data, len, now_ms, store_series_ttl_ms(st), lim, &a, &rq, why, sizeof why);
    if (rc == -ENODATA) {
        log_info("snapshot holds no series", "path=%s", path);
    } else if (rc) {
        log_warn("snapshot ignored", "path=%s bytes=%zu reason=%s", path, len, why);
    } else {
        struct snapshot_info in = {.bytes = len, .newest_ms = (int64_t)get_u64(data + 24)};
        struct store_tally t = {0};
        for (size_t i = 0; i < rq.n_metadata; i++) {
            store_set_metric_type(st, rq.metadata[i].family, rq.metadata[i].family_len,
                                  (int)rq.metadata[i].type);
            in.metrics++;
        }
        for (size_t i = 0; i < rq.n_series; i++) {
            const struct api_rw_series *s = &rq.series[i];
            if (s->reason != API_RW_SERIES_OK || !s->n_samples) {
                in.skipped++;
                continue;
            }
            uint64_t before = t.accepted;
            if (store_write(st, s->labels, s->n_labels, s->samples, s->n_samples, &t) == 0) {
                in.series++;
                in.samples += t.accepted - before;
            } else {
                in.skipped++;
            }
        }
        store_tally_flush(st, &t);
        log_info("snapshot loaded", "path=%s bytes=%zu series=%llu samples=%llu skipped=%llu age_ms=%lld",
                 path, len, (unsigned long long)in.series, (unsigned long long)in.samples,
                 (unsigned long long)in.skipped, (long long)(now_ms - in.newest_ms));
        if (info)
            *info = in;
        if (!in.series)
            rc = -ENODATA;
    }
    arena_free(&a);
    free(data);
    return rc;
}
