/*
 * region: packed memory for entries moved out of a fragmented heap.
 *
 * After a mass delete the survivors are scattered over the pages the deleted
 * entries occupied, a few per page, and each keeps its page resident: glibc
 * returns only pages that are wholly free, and it would place a copy of a
 * survivor in one of those same holes. Regions are fresh memory that malloc
 * never hands out: 1 MiB mappings filled by a bump pointer, so that moved
 * entries sit side by side and the pages they left empty out.
 *
 * Each page of a region counts the entries that touch it; a page whose count
 * drops to zero is returned to the system at once (MADV_DONTNEED), and a
 * region with no entry left is unmapped, so that later deletes among the
 * moved entries free memory page by page, as they would in glibc's heap.
 *
 * Thread-safe (one mutex: allocations happen only when entries are moved, and
 * frees come from the reclaim callbacks). Process-wide.
 */
#ifndef MA_REGION_H
#define MA_REGION_H

#include <stddef.h>

/* @size bytes, 16-byte aligned, in a region; NULL when no memory is left. */
void *region_alloc(size_t size);

/*
 * Free @p of @size bytes if it came from region_alloc(): returns 1. Returns 0
 * (and does nothing) for any other pointer, which the caller frees as usual.
 */
int region_free(void *p, size_t size);

/* Whether @p lies in a region. */
int region_contains(const void *p);

/* Bytes of the regions currently mapped (resident or not). */
size_t region_mapped_bytes(void);

/* Unmap the current region if no entry is left in it (shutdown, tests). */
void region_release_idle(void);

#endif
