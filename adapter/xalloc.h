#ifndef ADAPTER_XALLOC_H
#define ADAPTER_XALLOC_H

/* Allocation that cannot fail: out of memory is fatal (the message, then abort). */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A copy of @s; NULL is copied as "". */
static inline char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d) {
        fprintf(stderr, "fatal: out of memory\n");
        abort();
    }
    return d;
}

#endif /* ADAPTER_XALLOC_H */
