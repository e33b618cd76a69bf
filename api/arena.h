#ifndef API_ARENA_H
#define API_ARENA_H

/*
 * arena: a per-request bump allocator. Memory comes in chunks; nothing is
 * freed one by one; arena_reset() keeps the first chunk for the next request
 * and frees the others, arena_free() frees everything. protobuf-c's unpack
 * copies every string and allocates every sub-message (22 allocations per
 * series with malloc); pointing its ProtobufCAllocator at an arena turns that
 * into pointer bumps and one sweep per request.
 *
 * Internal allocation failure aborts (the project's OOM policy): the sizes
 * that reach an arena are bounded by the caller (the decoded-size cap).
 *
 * Not thread-safe: one arena per request (or per worker thread, reset
 * between requests).
 */

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

struct arena_chunk;

struct arena {
    struct arena_chunk *_head; /* private: current chunk, linked to older ones */
    size_t _chunk_size;        /* private: default size of a new chunk */
    size_t _total;             /* private: bytes handed out since the last reset */
    size_t _limit;             /* private: arena_try_alloc() budget on _total, 0 = none */
    int _over;                 /* private: a try allocation hit the budget */
    ProtobufCAllocator pb;     /* pass &a->pb to *_unpack(); allocator_data is the arena; budgeted */
};

/* Initialise an empty arena whose chunks are at least chunk_size bytes (0 = 64 KiB). No allocation. */
void arena_init(struct arena *a, size_t chunk_size);

/* n bytes aligned to 16 (max_align_t). n = 0 returns a valid unique pointer. Never NULL. */
void *arena_alloc(struct arena *a, size_t n);

/*
 * Budget for arena_try_alloc() and for protobuf-c through a->pb: once the
 * bytes handed out since the last reset would pass @limit, try allocations
 * return NULL (protobuf-c's unpack then fails cleanly) and arena_over_limit()
 * says so. 0 removes the budget. arena_alloc() ignores it. Reset clears the
 * flag, not the budget.
 */
void arena_set_limit(struct arena *a, size_t limit);
void *arena_try_alloc(struct arena *a, size_t n);
int arena_over_limit(const struct arena *a);

/* n * size bytes, zeroed; aborts on multiplication overflow. */
void *arena_calloc(struct arena *a, size_t n, size_t size);

/* A NUL-terminated copy of p[0..n). */
char *arena_strndup(struct arena *a, const char *p, size_t n);

/* Bytes handed out since the last reset (for tests and stats). */
size_t arena_used(const struct arena *a);

/* Forget every allocation; keeps the newest chunk for reuse, frees the others. */
void arena_reset(struct arena *a);

/* Free every chunk. The arena may be reused after arena_init(). */
void arena_free(struct arena *a);

#endif /* API_ARENA_H */
