/*
 * region: packed memory for moved entries. Allocation packs entries side by
 * side; a page is returned once no entry touches it (checked with mincore:
 * the memory itself, not the module's counters); a region is unmapped once
 * empty and not being filled; foreign pointers are refused.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "region.h"

#define MIB   ((size_t)1 << 20)
#define ENTRY 336 /* a series entry's size in the memory benchmark */

static int resident(const void *p)
{
    unsigned char v = 0;
    uintptr_t page = (uintptr_t)p & ~(uintptr_t)4095;
    CHECK_EQ(mincore((void *)page, 4096, &v), 0);
    return v & 1;
}

int main(void)
{
    enum { N = 8000 }; /* about 2.6 MiB: three regions */
    char **e = calloc(N, sizeof(*e));
    CHECK(e);
    CHECK_EQ(region_mapped_bytes(), 0);
    for (int i = 0; i < N; i++) {
        e[i] = region_alloc(ENTRY);
        CHECK(e[i] != NULL);
        CHECK_EQ((uintptr_t)e[i] % 16, 0);
        memset(e[i], 0xab, ENTRY);
    }
    /* Packed: consecutive entries of one region are ENTRY bytes apart (rounded to 16). */
    CHECK_EQ(e[1] - e[0], 336);
    CHECK_EQ(region_mapped_bytes(), 3 * MIB);

    /* Foreign memory is not ours. */
    char *heap = malloc(ENTRY);
    CHECK_EQ(region_free(heap, ENTRY), 0);
    free(heap);

    /* Free the entries of one page of the first region, but not its neighbours:
     * that page goes back to the system, the next one stays. */
    uintptr_t page = ((uintptr_t)e[100] + 4095) & ~(uintptr_t)4095; /* a page boundary inside the region */
    CHECK(resident((void *)page));
    int freed = 0;
    for (int i = 0; i < N; i++) {
        uintptr_t a = (uintptr_t)e[i];
        if (a + ENTRY > page && a < page + 4096) {
            CHECK_EQ(region_free(e[i], ENTRY), 1);
            e[i] = NULL;
            freed++;
        }
    }
    CHECK_OP(freed, >=, 12);
    CHECK(!resident((void *)page));
    CHECK(resident((void *)(page + 4096)));
    CHECK_EQ(region_mapped_bytes(), 3 * MIB);

    /* Emptying the first region (not the one being filled) unmaps it. */
    char *first = e[0]; /* the first region's base */
    for (int i = 0; i < N; i++)
        if (e[i] && e[i] >= first && e[i] < first + MIB) {
            CHECK_EQ(region_free(e[i], ENTRY), 1);
            e[i] = NULL;
        }
    CHECK_EQ(region_mapped_bytes(), 2 * MIB);

    /* Everything else: the region being filled stays until released. */
    for (int i = 0; i < N; i++)
        if (e[i])
            CHECK_EQ(region_free(e[i], ENTRY), 1);
    CHECK_EQ(region_mapped_bytes(), 1 * MIB);
    region_release_idle();
    CHECK_EQ(region_mapped_bytes(), 0);
    /* Too big for a region. */
    CHECK(region_alloc(2 * MIB) == NULL);
    free(e);
    printf("test_region: ok\n");
    return 0;
}
