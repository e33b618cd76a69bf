/*
 * arena: DESIGN. A singly linked list of chunks, newest first. Allocation
 * bumps an offset in the newest chunk; a request that does not fit opens a
 * new chunk of max(chunk size, request) bytes, so one large allocation (a
 * decoded body) gets a chunk of its own and never wastes the tail of the
 * current one for long. Reset keeps one default-sized chunk, so a worker
 * thread that reuses its arena does not go back to malloc for a typical
 * request, and frees the rest, so one huge request does not pin its memory.
 */
#include "arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN         16
#define ARENA_DEFAULT_CHUNK ((size_t)64 << 10)

struct arena_chunk {
    struct arena_chunk *prev;
    size_t size; /* usable bytes in data[] */
    size_t used;
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

static void *pb_alloc(void *allocator_data, size_t size)
{
    return arena_try_alloc(allocator_data, size);
}

/* protobuf-c frees what it allocated on error paths; the arena frees it all at reset. */
static void pb_free(void *allocator_data, void *pointer)
{
    (void)allocator_data;
    (void)pointer;
}

void arena_init(struct arena *a, size_t chunk_size)
{
    a->_head = NULL;
    a->_chunk_size = chunk_size ? chunk_size : ARENA_DEFAULT_CHUNK;
    a->_total = 0;
    a->_limit = 0;
    a->_over = 0;
    a->pb.alloc = pb_alloc;
    a->pb.free = pb_free;
    a->pb.allocator_data = a;
}

static struct arena_chunk *chunk_new(size_t size)
{
    if (size > SIZE_MAX - sizeof(struct arena_chunk)) {
        fprintf(stderr, "fatal: arena chunk of %zu bytes\n", size);
        abort();
    }
    struct arena_chunk *c = malloc(sizeof *c + size);
    if (!c) {
        fprintf(stderr, "fatal: out of memory (arena chunk %zu bytes)\n", size);
        abort();
    }
    c->prev = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

void *arena_alloc(struct arena *a, size_t n)
{
    size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < n) {
        fprintf(stderr, "fatal: arena allocation of %zu bytes\n", n);
        abort();
    }
    if (need == 0)
        need = ARENA_ALIGN;
    struct arena_chunk *c = a->_head;
    if (!c || c->size - c->used < need) {
        struct arena_chunk *nc = chunk_new(need > a->_chunk_size ? need : a->_chunk_size);
        /* A dedicated big chunk goes behind the current one, so the current
         * chunk's free tail stays usable for the small allocations to come. */
        if (c && need > a->_chunk_size && c->size - c->used >= ARENA_ALIGN) {
            nc->prev = c->prev;
            c->prev = nc;
            nc->used = need;
            a->_total += need;
            return nc->data;
        }
        nc->prev = c;
        a->_head = c = nc;
    }
    void *p = c->data + c->used;
    c->used += need;
    a->_total += need;
    return p;
}

void *arena_calloc(struct arena *a, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        fprintf(stderr, "fatal: arena calloc %zu x %zu overflows\n", n, size);
        abort();
    }
    void *p = arena_alloc(a, n * size);
    memset(p, 0, n * size);
    return p;
}

void arena_set_limit(struct arena *a, size_t limit)
{
    a->_limit = limit;
}

void *arena_try_alloc(struct arena *a, size_t n)
{
    if (a->_limit && (n > a->_limit || a->_total > a->_limit - n)) {
        a->_over = 1;
        return NULL;
    }
    return arena_alloc(a, n);
}

int arena_over_limit(const struct arena *a)
{
    return a->_over;
}

char *arena_strndup(struct arena *a, const char *p, size_t n)
{
    char *s = arena_alloc(a, n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

size_t arena_used(const struct arena *a)
{
    return a->_total;
}

void arena_reset(struct arena *a)
{
    struct arena_chunk *keep = NULL;
    struct arena_chunk *c = a->_head;
    while (c) {
        struct arena_chunk *prev = c->prev;
        if (!keep && c->size == a->_chunk_size)
            keep = c;
        else
            free(c);
        c = prev;
    }
    if (keep) {
        keep->prev = NULL;
        keep->used = 0;
    }
    a->_head = keep;
    a->_total = 0;
    a->_over = 0;
}

void arena_free(struct arena *a)
{
    struct arena_chunk *c = a->_head;
    while (c) {
        struct arena_chunk *prev = c->prev;
        free(c);
        c = prev;
    }
    a->_head = NULL;
    a->_total = 0;
    a->_over = 0;
}
