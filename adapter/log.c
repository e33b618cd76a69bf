/*
 * log: structured key=value lines with per-message rate limiting.
 *
 * DESIGN: an event is formatted into a stack buffer (one line, at most
 * LOG_LINE_MAX bytes, truncated with "..." beyond), then written with a single
 * write(2) under a short mutex, so concurrent events never interleave and a
 * slow stderr only holds up the threads that actually log. The level is a
 * relaxed atomic: a racing log_set_level() may let one event through on
 * either side of the change, which is harmless.
 *
 * The rate limiter is a small table of slots indexed by a hash of (level, msg).
 * Each slot remembers one key and counts events in the current window. When
 * two keys share a slot the newer one takes it over (after reporting what the
 * older one suppressed), so the limiter never grows and never drops a
 * "suppressed" report silently.
 */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096
#define RL_SLOTS     64
#define RL_KEY_MAX   64

static atomic_int log_level = LOG_INFO;
static atomic_int log_fd = STDERR_FILENO;
static atomic_uint rl_burst = 20;
static atomic_uint rl_interval_ms = 10000;
static pthread_mutex_t write_mu = PTHREAD_MUTEX_INITIALIZER;

struct rl_slot {
    pthread_mutex_t mu;
    int used;
    int level;
    char key[RL_KEY_MAX];
    uint64_t window_start_ms;
    unsigned count;      /* events let through in the current window */
    uint64_t suppressed; /* events dropped in the current window */
};

static struct rl_slot rl_slots[RL_SLOTS] = {[0 ... RL_SLOTS - 1] = {.mu = PTHREAD_MUTEX_INITIALIZER}};

static const char *level_names[] = {"debug", "info", "warn", "error"};

int log_parse_level(const char *s, enum log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *out = LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

const char *log_level_name(enum log_level level)
{
    if ((unsigned)level > LOG_ERROR)
        return "unknown";
    return level_names[level];
}

void log_set_level(enum log_level level)
{
    atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

enum log_level log_get_level(void)
{
    return (enum log_level)atomic_load_explicit(&log_level, memory_order_relaxed);
}

int log_enabled(enum log_level level)
{
    return (int)level >= atomic_load_explicit(&log_level, memory_order_relaxed);
}

void log_set_fd(int fd)
{
    atomic_store_explicit(&log_fd, fd, memory_order_relaxed);
}

void log_set_ratelimit(unsigned burst, unsigned interval_ms)
{
    atomic_store_explicit(&rl_burst, burst, memory_order_relaxed);
    atomic_store_explicit(&rl_interval_ms, interval_ms, memory_order_relaxed);
}

/* A small appender over a fixed buffer that remembers truncation. */
struct line {
    char buf[LOG_LINE_MAX];
    size_t len;
    int truncated;
};

static void line_put(struct line *l, const char *s, size_t n)
{
    /* Keep room for "...\n". */
    size_t room = sizeof(l->buf) - 5 - l->len;
    if (n > room) {
        n = room;
        l->truncated = 1;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void line_puts(struct line *l, const char *s)
{
    line_put(l, s, strlen(s));
}

static int needs_quote(const char *s)
{
    if (*s == '\0')
        return 1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p <= ' ' || *p == '=' || *p == '"' || *p == '\\' || *p == 0x7f)
            return 1;
    }
    return 0;
}

size_t log_quote(char *dst, size_t cap, const char *s)
{
    size_t n = 0;
    if (cap == 0)
        return 0;
#define PUT(c)                                                                                               \
    do {                                                                                                     \
        if (n + 1 < cap)                                                                                     \
            dst[n++] = (c);                                                                                  \
    } while (0)
    if (!s)
        s = "";
    if (!needs_quote(s)) {
        for (; *s; s++)
            PUT(*s);
        dst[n] = '\0';
        return n;
    }
    PUT('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            PUT('\\');
            PUT((char)c);
        } else if (c == '\n') {
            PUT('\\');
            PUT('n');
        } else if (c == '\t') {
            PUT('\\');
            PUT('t');
        } else if (c == '\r') {
            PUT('\\');
            PUT('r');
        } else if (c < 0x20 || c == 0x7f) {
            static const char hex[] = "0123456789abcdef";
            PUT('\\');
            PUT('x');
            PUT(hex[c >> 4]);
            PUT(hex[c & 15]);
        } else {
            PUT((char)c);
        }
    }
    PUT('"');
#undef PUT
    dst[n] = '\0';
    return n;
}

static void line_quoted(struct line *l, const char *s)
{
    char tmp[LOG_LINE_MAX];
    size_t n = log_quote(tmp, sizeof(tmp), s);
    line_put(l, tmp, n);
}

/*
 * Format the key=value part. Each conversion spec is copied into a small
 * format string and handed to snprintf with the argument of the right type;
 * %s arguments are quoted instead. This keeps printf's type checking at the
 * call site (the prototype carries the format attribute).
 */
static void line_kv(struct line *l, const char *fmt, va_list ap)
{
    const char *p = fmt;
    while (*p) {
        const char *pct = strchr(p, '%');
        if (!pct) {
            line_puts(l, p);
            return;
        }
        line_put(l, p, (size_t)(pct - p));
        const char *q = pct + 1;
        if (*q == '%') {
            line_put(l, "%", 1);
            p = q + 1;
            continue;
        }
        while (*q && strchr("-+ #0", *q))
            q++;
        while (*q >= '0' && *q <= '9')
            q++;
        if (*q == '.') {
            q++;
            while (*q >= '0' && *q <= '9')
                q++;
        }
        int lng = 0; /* 'h' hh l ll z j t */
        char lenmod = 0;
        while (*q && strchr("hlzjt", *q)) {
            lenmod = *q;
            lng++;
            q++;
        }
        char conv = *q;
        if (!conv)
            return;
        char spec[32];
        size_t speclen = (size_t)(q - pct + 1);
        if (speclen >= sizeof(spec)) {
            p = q + 1;
            continue;
        }
        memcpy(spec, pct, speclen);
        spec[speclen] = '\0';
        char tmp[128];
        tmp[0] = '\0';
        switch (conv) {
        case 's':
            line_quoted(l, va_arg(ap, const char *));
            break;
        case 'c':
            snprintf(tmp, sizeof(tmp), spec, va_arg(ap, int));
            break;
        case 'd':
        case 'i':
        case 'u':
        case 'x':
        case 'X':
        case 'o':
            if (lenmod == 'l' && lng == 2)
                snprintf(tmp, sizeof(tmp), spec, va_arg(ap, long long));
            else if (lenmod == 'l')
                snprintf(tmp, sizeof(tmp), spec, va_arg(ap, long));
            else if (lenmod == 'z')
                snprintf(tmp, sizeof(tmp), spec, va_arg(ap, size_t));
            else if (lenmod == 'j')
                snprintf(tmp, sizeof(tmp), spec, va_arg(ap, intmax_t));
            else if (lenmod == 't')
                snprintf(tmp, sizeof(tmp), spec, va_arg(ap, ptrdiff_t));
            else
                snprintf(tmp, sizeof(tmp), spec, va_arg(ap, int));
            break;
        case 'f':
        case 'g':
        case 'e':
        case 'F':
        case 'G':
        case 'E':
            snprintf(tmp, sizeof(tmp), spec, va_arg(ap, double));
            break;
        case 'p':
            snprintf(tmp, sizeof(tmp), spec, va_arg(ap, void *));
            break;
        default:
            /* Unknown conversion: print it literally and stop consuming arguments. */
            line_put(l, pct, speclen);
            p = q + 1;
            if (*p)
                line_puts(l, p);
            return;
        }
        line_puts(l, tmp);
        p = q + 1;
    }
}

static uint64_t now_ms_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void line_begin(struct line *l, enum log_level level, const char *msg)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char head[64];
    int n =
        snprintf(head, sizeof(head),
                 "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L, log_level_name(level));
    l->len = 0;
    l->truncated = 0;
    line_put(l, head, (size_t)n);
    /* msg is always quoted, so that lines are easy to grep by message. */
    char tmp[LOG_LINE_MAX];
    size_t qn = log_quote(tmp, sizeof(tmp), msg);
    if (tmp[0] != '"') {
        line_put(l, "\"", 1);
        line_put(l, tmp, qn);
        line_put(l, "\"", 1);
    } else {
        line_put(l, tmp, qn);
    }
}

static void line_write(struct line *l)
{
    if (l->truncated) {
        memcpy(l->buf + l->len, "...", 3);
        l->len += 3;
    }
    l->buf[l->len++] = '\n';
    int fd = atomic_load_explicit(&log_fd, memory_order_relaxed);
    pthread_mutex_lock(&write_mu);
    const char *p = l->buf;
    size_t left = l->len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        left -= (size_t)w;
    }
    pthread_mutex_unlock(&write_mu);
}

static void write_suppressed(enum log_level level, const char *key, uint64_t n)
{
    struct line l;
    line_begin(&l, level, "log messages suppressed");
    line_puts(&l, " key=");
    line_quoted(&l, key);
    char tmp[32];
    snprintf(tmp, sizeof(tmp), " suppressed=%llu", (unsigned long long)n);
    line_puts(&l, tmp);
    line_write(&l);
}

static uint32_t key_hash(enum log_level level, const char *msg)
{
    uint32_t h = 2166136261u ^ (uint32_t)level; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return h;
}

/*
 * Decide whether this event passes. When a window closes with events
 * suppressed, or a slot changes hands, the count is written before returning
 * (outside the slot lock, from copies).
 */
static int ratelimit_pass(enum log_level level, const char *msg)
{
    unsigned burst = atomic_load_explicit(&rl_burst, memory_order_relaxed);
    if (burst == 0)
        return 1;
    uint64_t interval = atomic_load_explicit(&rl_interval_ms, memory_order_relaxed);
    uint64_t now = now_ms_monotonic();
    struct rl_slot *s = &rl_slots[key_hash(level, msg) % RL_SLOTS];
    char old_key[RL_KEY_MAX];
    int old_level = 0;
    uint64_t report = 0;
    int pass;

    pthread_mutex_lock(&s->mu);
    if (!s->used || s->level != (int)level || strncmp(s->key, msg, RL_KEY_MAX - 1) != 0) {
        if (s->used && s->suppressed) {
            memcpy(old_key, s->key, sizeof(old_key));
            old_level = s->level;
            report = s->suppressed;
        }
        s->used = 1;
        s->level = (int)level;
        snprintf(s->key, sizeof(s->key), "%s", msg);
        s->window_start_ms = now;
        s->count = 0;
        s->suppressed = 0;
    } else if (now - s->window_start_ms >= interval) {
        if (s->suppressed) {
            memcpy(old_key, s->key, sizeof(old_key));
            old_level = s->level;
            report = s->suppressed;
        }
        s->window_start_ms = now;
        s->count = 0;
        s->suppressed = 0;
    }
    if (s->count < burst) {
        s->count++;
        pass = 1;
    } else {
        s->suppressed++;
        pass = 0;
    }
    pthread_mutex_unlock(&s->mu);

    if (report)
        write_suppressed((enum log_level)old_level, old_key, report);
    return pass;
}

void log_eventv(enum log_level level, const char *msg, const char *fmt, va_list ap)
{
    if (!log_enabled(level))
        return;
    /* Debug is verbosity an operator asked for (the access log, say): only
     * info and above are rate-limited. */
    if (level > LOG_DEBUG && !ratelimit_pass(level, msg))
        return;
    struct line l;
    line_begin(&l, level, msg);
    if (fmt && *fmt) {
        line_put(&l, " ", 1);
        line_kv(&l, fmt, ap);
    }
    line_write(&l);
}

void log_event(enum log_level level, const char *msg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_eventv(level, msg, fmt, ap);
    va_end(ap);
}

void log_flush(void)
{
    for (int i = 0; i < RL_SLOTS; i++) {
        struct rl_slot *s = &rl_slots[i];
        char key[RL_KEY_MAX];
        int level;
        uint64_t n;
        pthread_mutex_lock(&s->mu);
        n = s->suppressed;
        level = s->level;
        memcpy(key, s->key, sizeof(key));
        s->suppressed = 0;
        pthread_mutex_unlock(&s->mu);
        if (n)
            write_suppressed((enum log_level)level, key, n);
    }
}
