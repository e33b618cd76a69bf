#ifndef API_BUF_H
#define API_BUF_H

/*
 * buf: a growable byte buffer for encoders (JSON, exposition text) and
 * response bodies. Internal allocation failure aborts (the project's single
 * OOM policy); sizes that come from the network are checked by callers
 * before they reach a buf.
 */

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data; /* NUL-terminated when len > 0 */
    size_t len;
    size_t cap;
};

#define BUF_INIT {NULL, 0, 0}

void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Take ownership of the bytes; the buf is reset to empty. */
char *buf_steal(struct buf *b, size_t *len);
void buf_reset(struct buf *b); /* len = 0, keeps the memory */
void buf_free(struct buf *b);

#endif /* API_BUF_H */
