#include "region.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Under ASan a freed entry is poisoned until its memory is handed out again,
 * so a read through a pointer kept past the grace period is reported as it is
 * for malloc'd memory. */
#if defined(__SANITIZE_ADDRESS__)
#define MA_REGION_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MA_REGION_ASAN 1
#endif
#endif
#ifdef MA_REGION_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define REGION_BYTES (1u << 20)
#define PAGE_BYTES   4096u
#define PAGES        (REGION_BYTES / PAGE_BYTES)

struct region {
    char *base;
    size_t used; /* bump pointer */
    size_t live; /* entries not yet freed */
    uint32_t page_live[PAGES];
};

static struct {
    pthread_mutex_t mu;
    struct region **v; /* sorted by base */
    size_t n, cap;
    struct region *cur; /* the one being filled */
} R = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Index of the region holding @p, or R.n. Locked. */
static size_t find(const char *p)
{
    size_t lo = 0, hi = R.n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (p < R.v[mid]->base)
            hi = mid;
        else if (p >= R.v[mid]->base + REGION_BYTES)
            lo = mid + 1;
        else
            return mid;
    }
    return R.n;
}

static void drop(size_t i)
{
    struct region *r = R.v[i];
    UNPOISON(r->base, REGION_BYTES);
    munmap(r->base, REGION_BYTES);
    free(r);
    memmove(R.v + i, R.v + i + 1, (R.n - i - 1) * sizeof(*R.v));
    R.n--;
}

static struct region *region_new(void)
{
    if (R.n == R.cap) {
        size_t cap = R.cap ? 2 * R.cap : 16;
        struct region **v = realloc(R.v, cap * sizeof(*v));
        if (!v)
            return NULL;
        R.v = v;
        R.cap = cap;
    }
    struct region *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->base = mmap(NULL, REGION_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r->base == MAP_FAILED) {
        free(r);
        return NULL;
    }
    POISON(r->base, REGION_BYTES);
    size_t i = 0;
    while (i < R.n && R.v[i]->base < r->base)
        i++;
    memmove(R.v + i + 1, R.v + i, (R.n - i) * sizeof(*R.v));
    R.v[i] = r;
    R.n++;
    return r;
}

void *region_alloc(size_t size)
{
    size = (size + 15) & ~(size_t)15;
    if (size == 0 || size > REGION_BYTES)
        return NULL;
    pthread_mutex_lock(&R.mu);
    struct region *r = R.cur;
    if (!r || REGION_BYTES - r->used < size) {
        struct region *old = r;
        r = region_new();
        if (!r) {
            pthread_mutex_unlock(&R.mu);
            return NULL;
        }
        R.cur = r;
        if (old && old->live == 0)
            drop(find(old->base));
    }
    char *p = r->base + r->used;
    UNPOISON(p, size);
    r->used += size;
    r->live++;
    for (size_t pg = (r->used - size) / PAGE_BYTES; pg <= (r->used - 1) / PAGE_BYTES; pg++)
        r->page_live[pg]++;
    pthread_mutex_unlock(&R.mu);
    return p;
}

int region_free(void *ptr, size_t size)
{
    char *p = ptr;
    size = (size + 15) & ~(size_t)15;
    pthread_mutex_lock(&R.mu);
    size_t i = find(p);
    if (i == R.n) {
        pthread_mutex_unlock(&R.mu);
        return 0;
    }
    struct region *r = R.v[i];
    size_t off = (size_t)(p - r->base);
    POISON(p, size);
    for (size_t pg = off / PAGE_BYTES; pg <= (off + size - 1) / PAGE_BYTES; pg++)
        if (--r->page_live[pg] == 0 && (pg + 1) * PAGE_BYTES <= r->used)
            madvise(r->base + pg * PAGE_BYTES, PAGE_BYTES, MADV_DONTNEED);
    if (--r->live == 0 && r != R.cur)
        drop(i);
    pthread_mutex_unlock(&R.mu);
    return 1;
}

int region_contains(const void *p)
{
    pthread_mutex_lock(&R.mu);
    int in = find(p) != R.n;
    pthread_mutex_unlock(&R.mu);
    return in;
}

size_t region_mapped_bytes(void)
{
    pthread_mutex_lock(&R.mu);
    size_t n = R.n * (size_t)REGION_BYTES;
    pthread_mutex_unlock(&R.mu);
    return n;
}

void region_release_idle(void)
{
    pthread_mutex_lock(&R.mu);
    if (R.cur && R.cur->live == 0) {
        drop(find(R.cur->base));
        R.cur = NULL;
    }
    if (R.n == 0) {
        free(R.v);
        R.v = NULL;
        R.cap = 0;
    }
    pthread_mutex_unlock(&R.mu);
}
