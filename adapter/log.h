#ifndef ADAPTER_LOG_H
#define ADAPTER_LOG_H

/*
 * log: one structured line per event, logfmt style, on stderr.
 *
 *     ts=2026-11-25T21:00:00.123Z level=info msg="listening" listener=ingest addr=127.0.0.1:8080
 *
 * The key=value part is a printf-like format whose %s conversions are quoted
 * and escaped when the value needs it (space, '=', '"', '\\', control bytes,
 * or empty), so callers never build quoted strings themselves:
 *
 *     log_info("listening", "listener=%s addr=%s", name, addr);
 *
 * Repeats at info level and above are rate-limited by message (debug, being
 * asked for, is not): at most `burst` events with the same level and msg per
 * `interval`; the first event after a window in which some
 * were dropped is preceded by one line saying how many were suppressed
 * (log_flush() reports the last ones at exit).
 *
 * Thread safety: every function is safe from any thread. The level check is a
 * relaxed atomic load; the rate limiter takes a per-slot mutex (slots are
 * chosen by a hash of the message, so unrelated messages rarely meet); the
 * write itself is one write(2) under a short mutex so lines never interleave.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

enum log_level {
    LOG_DEBUG = 0,
    LOG_INFO = 1,
    LOG_WARN = 2,
    LOG_ERROR = 3,
};

/* Parse "debug", "info", "warn" (or "warning"), "error". Returns 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Whether an event at @level would be written (use to skip costly arguments). */
int log_enabled(enum log_level level);

/* Write to @fd instead of stderr (tests). The fd is not closed by log. */
void log_set_fd(int fd);

/*
 * At most @burst events per (level, msg) every @interval_ms; 0 for @burst
 * turns rate limiting off. Default: 20 per 10 s.
 */
void log_set_ratelimit(unsigned burst, unsigned interval_ms);

/*
 * log_event - write one event.
 * @msg: a short constant description; also the rate limiter's key.
 * @fmt: NULL, or key=value pairs in printf syntax. Supported conversions:
 *       %s (quoted/escaped when needed; NULL prints as ""), %c, %d %i %u %x
 *       with the h/hh/l/ll/z/j/t length modifiers, %f %g %e, %p, %%.
 */
void log_event(enum log_level level, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_eventv(enum log_level level, const char *msg, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Report suppressed counts that are still pending (call at exit). */
void log_flush(void);

#define log_debug(msg, ...)                                                                                  \
    do {                                                                                                     \
        if (log_enabled(LOG_DEBUG))                                                                          \
            log_event(LOG_DEBUG, msg, __VA_ARGS__);                                                          \
    } while (0)
#define log_info(msg, ...)  log_event(LOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...)  log_event(LOG_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_event(LOG_ERROR, msg, __VA_ARGS__)

/* Append @s to @dst (capacity @cap, NUL-terminated), quoted and escaped if needed.
 * Returns the length written (truncated to fit). Exposed for tests and callers
 * that format logfmt values themselves. */
size_t log_quote(char *dst, size_t cap, const char *s);

#endif /* ADAPTER_LOG_H */
