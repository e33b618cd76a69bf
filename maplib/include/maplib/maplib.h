#ifndef MAPLIB_MAPLIB_H
#define MAPLIB_MAPLIB_H

/*
 * maplib: a compacting concurrent map over liburcu's lock-free hash table.
 *
 * Copyright the metrics-adapter authors. Licensed like the rest of the project.
 *
 * What it is
 * ----------
 * A hash map from byte-string keys to caller-owned entries, built on cds_lfht:
 * lookups and iteration are lock-free and never block; insert, replace and
 * delete are lock-free too. Deleted entries are handed to the caller's reclaim
 * callback only after an RCU grace period, so a reader that found an entry
 * can keep using it until it leaves its read-side critical section.
 *
 * "Compacting" means that memory follows the live set both ways:
 *  - deleted entries are reclaimed after a grace period (never left linked as
 *    tombstones, whether or not anything reads the table);
 *  - the bucket array follows the entry count down as well as up: maplib owns
 *    the sizing policy (liburcu's automatic resize is switched off, see
 *    "Sizing" below), so the bucket count in ml_stats is the one maplib set;
 *  - an empty map can be retired without blocking (ml_map_retire), which is
 *    how a caller removes a group that lost its last entry;
 *  - freed memory is given back to the operating system (see "Memory").
 *
 * Entries are intrusive: the caller embeds a struct ml_node in its own entry
 * and gets it back with caa_container_of(). The key bytes live in the caller's
 * entry too, after the node (ml_node_init() records their offset from it);
 * they must not change while the node is linked and until its reclaim
 * callback has run. A map whose entries all keep the key at the same offset
 * says so (ml_map_config.key_offset) and its lookups compute the key's
 * address instead of loading it from the node.
 *
 * RCU flavour and threads
 * -----------------------
 * maplib uses the default liburcu flavour, urcu-memb (<urcu.h>, -lurcu). A
 * registered thread outside a read-side critical section never holds back a
 * grace period. Why: under memb, rcu_read_lock() stores the current grace
 * period phase in the thread's own reader word and the outermost
 * rcu_read_unlock() clears it; synchronize_rcu() waits only for the readers
 * whose word is non-zero and of the old phase, so a thread whose word is zero
 * (outside any section, however long it sleeps) is skipped, with no action of
 * its own. Measured too (tests/maplib/test_maplib_idle: eight registered threads
 * blocked on a condition variable, 100,000 deletes reclaimed round after
 * round within 20-35 ms; its control shows a thread blocked INSIDE a
 * read-side section does hold reclamation back). That is why memb and not
 * qsbr: threads we do not create (libmicrohttpd's pool) may sit idle for
 * minutes, and under qsbr an idle registered thread stalls every grace period
 * until it reports a quiescent state. urcu-bp registers threads by itself;
 * its read side measured no dearer than memb's here (an rcu_read_lock() +
 * rcu_read_unlock() pair, best of 5 x 10M on the loaded 2-vCPU machine: memb
 * 17.1 ns through liburcu's exported functions and 2.6 ns inlined with
 * _LGPL_SOURCE; bp 14.2 and 1.4 ns), so cost does not decide. memb is kept
 * because lazy registration with ml_thread_online() gives bp's convenience
 * for the threads we do not create, and because the whole project uses the
 * default flavour through <urcu.h> (one flavour, one call_rcu worker, one
 * registry). A caller whose licence allows inlining liburcu (LGPL) may
 * define _LGPL_SOURCE before including this header for the inlined read side.
 *
 * Every thread that calls into maplib must be a registered RCU reader. Threads
 * the project creates call rcu_register_thread()/rcu_unregister_thread() or
 * ml_thread_online() (which also unregisters automatically at thread exit);
 * a thread uses one or the other, never both. libmicrohttpd's pool threads
 * call ml_thread_online() at the top of every handler (a thread-local flag
 * makes the repeat calls free) and are unregistered by a pthread key
 * destructor when the pool stops.
 *
 * Thread safety: every function is safe to call from any registered thread
 * unless its comment says otherwise.
 *
 * Sizing
 * ------
 * liburcu 0.13.2's CDS_LFHT_AUTO_RESIZE can switch itself off for good (a race
 * in the lazy-resize launcher), cds_lfht_resize() spins forever on a size that
 * is not a power of two, and the library exposes no bucket count. maplib
 * therefore creates tables without AUTO_RESIZE and resizes them itself:
 * writers keep an entry count (per-thread striped counters, summed only when
 * a threshold may have been crossed), and when it leaves the band the map is
 * queued to maplib's single maintenance thread (one per process, however many
 * maps), which calls cds_lfht_resize() with a power of two. The band: grow
 * when count > buckets, to next_pow2(count) (load 0.5-1 after a grow); shrink
 * when count * 8 < buckets, to next_pow2(count), never below min_buckets nor
 * above max_buckets. A once-a-second sweep of all maps catches maps whose
 * writes stopped just short of a check. ml_map_maintain() applies the policy
 * synchronously. tests/maplib/test_maplib_resize grows a map from 1 bucket to
 * 100,000 entries and back 50 times; lookup_cost.py measures instructions
 * per lookup under callgrind: 233 at 100,000 entries, the same after the map
 * went 0 -> 100,000 -> 0 -> 100,000, and 260 at 1,000 entries, fresh or after
 * shrinking from 100,000 (a table stuck at one bucket: 65,000 at 10,000).
 *
 * The bucket array's layout is chosen by ml_map_config.max_buckets (see
 * there): the default (order allocator) is cheapest for small maps; big maps
 * should set max_buckets for the contiguous layout, which made lookups in a
 * 100,000-entry map about 1.5-2x faster here.
 *
 * Back-pressure
 * -------------
 * call_rcu has none: a writer that deletes faster than grace periods end
 * piles up unlinked entries (a grace period waits for every reader preempted
 * inside its section; on a loaded machine that is tens of ms). Writers call
 * ml_throttle(limit) outside their read-side sections, e.g. once per
 * remote-write request; tests/maplib/test_maplib_churn holds pending under
 * 22,048 with it, where peaks of 117,000 were seen without.
 *
 * What ThreadSanitizer covers
 * ---------------------------
 * TSan cannot see liburcu 0.13's grace periods (the library is not
 * instrumented). In TSan builds maplib annotates publication (a node is
 * released when linked and acquired when a lookup or walk returns it), so the
 * caller's initialisation of an entry is ordered before readers' use of it;
 * frees in reclaim callbacks run on liburcu's call_rcu thread, and
 * tests/tsan.supp suppresses the races reported with a reclaim callback on
 * either stack, by the callbacks' names (not liburcu's modules: code liburcu
 * calls back, such as the key compare, stays checked, and
 * maplib_tsan_control plants a race there that must be reported). What the
 * tsan tests check is therefore the concurrency that is not RCU: maplib's
 * striped counters, resize queue and registry, the per-entry lock and state
 * words of the get-or-create-then-update pattern, and maplib's side of thread
 * registration (threads that join with ml_thread_online() and exit; liburcu's
 * own registry is not instrumented). A too-early free is ASan's job (the
 * stress test under ASan, plus poisoned entries checked by readers).
 *
 * Tracing
 * -------
 * USDT probes (<sys/sdt.h>, provider "maplib"), each with (map, node, name):
 * insert (a node was linked, the insert half of an upsert or replace
 * included), delete (a node was unlinked; its reclaim follows after a grace
 * period) and reclaim (the reclaim callback is about to free it). A probe is
 * a nop instruction until a tracer attaches; see deploy/tracing/.
 *
 * Memory
 * ------
 * Entries are the caller's; maplib adds a 56-byte ml_node to each and 16
 * bytes per bucket. glibc keeps freed small chunks, so maplib's allocator
 * policy has two parts, both measured (bench/README.md, "maplib"):
 *  - ml_tune_allocator(), called once by main(): fastbins off, so freed
 *    entries coalesce instead of staying scattered among live ones (under
 *    write-only churn quiescent RSS crept +18 % in 40 s with fastbins, +0-1 %
 *    without, same throughput);
 *  - the maintenance thread calls malloc_trim(0) when at least 65,536
 *    entries (all maps) were reclaimed since the last trim, at most once a
 *    second (ml_set_trim_policy() tunes or disables it). After deleting
 *    2,000,000 entries RSS drops to near the empty process's within the next
 *    maintenance tick, where without the trim it stays at the peak. It also
 *    trims once when reclamation has been quiet for an interval after at
 *    least min/16 entries (4,096) were reclaimed since the last trim: the
 *    tail of a drain. In bench/churn's drain of 200,000 series to 2,000
 *    that tail held 43 MB of free pages (69 MB RSS, 26 MB after it).
 */

#include <stddef.h>
#include <stdint.h>

#include <urcu.h>
#include <urcu/rculfhash.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ml_map;

/*
 * The node the caller embeds in its entry. All fields are private to maplib:
 * a caller must not read or write them.
 */
struct ml_node {
    struct cds_lfht_node _lfht;
    struct rcu_head _rcu;
    struct ml_map *_map;
    uint32_t _keylen;
    uint32_t _keyoff; /* the key is this many bytes after the node */
};

/*
 * The caller's reclaim callback: frees the entry that embeds @node. Called
 * once per linked-then-unlinked node, after a grace period, from liburcu's
 * call_rcu worker thread (a registered reader, outside any read-side critical
 * section). It must not block for long and must not call ml_map_destroy().
 */
typedef void (*ml_reclaim_fn)(struct ml_node *node);

struct ml_map_config {
    /* Name used in statistics. Copied. NULL means "unnamed". */
    const char *name;
    /* Minimum number of buckets, rounded up to a power of two; 0 means 1. */
    unsigned long min_buckets;
    /* Frees the enclosing entry after a grace period. Required. */
    ml_reclaim_fn reclaim;
    /*
     * Maximum number of buckets, a power of two <= 2^30, or 0 for 2^30.
     * It also selects the bucket array's layout:
     *  0: cds_lfht's order allocator, one small array per doubling. Cheapest
     *     for small maps (a map starts at one 16-byte bucket), and what the
     *     many per-group maps should use.
     *  non-zero: one contiguous reservation of max_buckets * 16 bytes of
     *     address space (PROT_NONE until the table grows into it; 1-2 VMAs
     *     per map). A bucket is one array index away: in a 100,000-entry map
     *     lookups measured up to ~1.5-2x faster than with the order
     *     allocator (bench/README.md, "maplib"). Meant for the few big maps,
     *     e.g. 1 << 24 for a series index (256 MB of address space, none of
     *     it resident until used). Past max_buckets the map keeps working
     *     with longer chains.
     */
    unsigned long max_buckets;
    /*
     * 0, or the distance in bytes from every entry's node to its key
     * (offsetof(entry, key) - offsetof(entry, node)): at least
     * sizeof(struct ml_node), below 2^32. When set, a compare during lookup
     * computes the stored key's address from the node's, so the key's cache
     * line is fetched alongside the node's instead of after it (measured in
     * bench/README.md, "maplib"), and ml_insert(), ml_upsert() and
     * ml_replace() refuse a node whose key is elsewhere.
     */
    size_t key_offset;
};

/* Counters of one map. Gauges are exact when the map is quiescent. */
struct ml_stats {
    uint64_t live;      /* entries linked in the table */
    uint64_t pending;   /* unlinked, waiting for their grace period */
    uint64_t reclaimed; /* total entries handed to the reclaim callback */
    uint64_t inserts;   /* total successful inserts (including the insert half of a replace) */
    uint64_t deletes;   /* total successful unlinks (including the removal half of a replace) */
    uint64_t buckets;   /* bucket count maplib last resized the table to */
    uint64_t resizes;   /* total resizes performed */
};

/*
 * ml_map_new - create a map.
 * @cfg: configuration; cfg->reclaim is required. Not retained after the call
 *       (the name is copied).
 * @out: on success, the new map. Written only on success.
 *
 * Returns 0, -EINVAL (bad configuration) or -ENOMEM.
 * Must be called from a registered thread, outside a read-side critical
 * section. Starts maplib's maintenance thread on first use. The process-wide
 * set-up of that first use (the hash seed from getrandom(), the thread) has no
 * caller to fail to: if it fails, maplib prints the cause and aborts, as
 * liburcu does when it cannot start its own threads.
 */
int ml_map_new(const struct ml_map_config *cfg, struct ml_map **out);

/*
 * ml_map_destroy - delete every entry, wait for their reclaim and free the map.
 * @map: the map; no other thread may use it any more.
 *
 * Every remaining entry is unlinked and handed to the reclaim callback after
 * a grace period; the call returns once all of this map's callbacks have run
 * (it waits with rcu_barrier()).
 * Returns 0. Must be called from a registered thread, outside a read-side
 * critical section, and never from a reclaim callback.
 */
int ml_map_destroy(struct ml_map *map);

/*
 * ml_map_retire - destroy an empty map later, without blocking.
 * @map: a map that is empty and unreachable for new readers (the caller has
 *       already unlinked whatever pointed to it).
 *
 * The maintenance thread waits for a grace period, so that readers that still
 * hold @map finish, then destroys it. Returns 0, -ENOTEMPTY if the map
 * still holds entries, or -EINVAL if it was already retired (the map is then
 * left untouched).
 * May be called inside a read-side critical section and from a reclaim
 * callback.
 */
int ml_map_retire(struct ml_map *map);

/*
 * ml_map_is_retired - whether ml_map_retire() succeeded on @map.
 *
 * maplib does not stop an insert into a retired map (that would put a check
 * on every insert); a caller that can race "remove the empty group" with
 * "insert into the group" checks this under its own group lock, exactly like
 * ml_node_is_deleted() for entries. Entries inserted after a retire anyway are
 * not leaked: the maintenance thread unlinks and reclaims them before the
 * destroy, so the insert is lost, not the memory. Safe from any thread, while
 * the map has not been destroyed (after a retire: inside a read-side critical
 * section that began before the map was unpublished).
 */
int ml_map_is_retired(struct ml_map *map);

/*
 * ml_node_init - prepare a node before insertion.
 * @node: the node embedded in the caller's entry.
 * @key, @keylen: the key bytes, owned by the caller's entry and placed after
 *       @node in it (@key >= @node + 1, less than 2^32 bytes away); they must
 *       stay valid and unchanged until the node's reclaim callback has run
 *       (or, if the node is never linked, until the caller frees it).
 *       @keylen must be below 2^32. Both are asserted (builds without NDEBUG).
 */
void ml_node_init(struct ml_node *node, const void *key, size_t keylen);

/* The key of a node, as given to ml_node_init(). */
static inline const void *ml_node_key(const struct ml_node *node, size_t *keylen)
{
    *keylen = node->_keylen;
    return (const char *)node + node->_keyoff;
}

/*
 * ml_lookup - find the entry with this key.
 * @map: the map.
 * @key, @keylen: the key bytes (only read during the call).
 *
 * Returns the node or NULL. Call with rcu_read_lock() held; the node stays
 * valid (not freed) until rcu_read_unlock(), but it may be unlinked
 * concurrently: ml_node_is_deleted() tells. Acts as an rcu_dereference():
 * the entry's fields written before its ml_insert() are visible.
 */
struct ml_node *ml_lookup(struct ml_map *map, const void *key, size_t keylen);

/*
 * ml_insert - insert a node unless its key is present.
 * @node: initialised with ml_node_init(); not linked in any map.
 * @existing: if not NULL and the key is present, receives the present node.
 *
 * Returns 0 when @node was linked, -EEXIST when the key was present (then the
 * caller still owns @node and may free it at once: no reader ever saw it),
 * -EINVAL when the map has a key_offset and @node's key is not there. Call with rcu_read_lock() held. Full
 * memory barrier before a successful insert (writes to the entry are visible to readers that find it). May
 * queue a resize to the maintenance thread; never resizes inline.
 */
int ml_insert(struct ml_map *map, struct ml_node *node, struct ml_node **existing);

/*
 * ml_upsert - insert a node, replacing the node with the same key if any.
 * @node: initialised with ml_node_init(); not linked in any map.
 * @replaced: if not NULL, receives the replaced node or NULL.
 *
 * Returns 0, or -EINVAL (nothing done) when the map has a key_offset and
 * @node's key is not there. A replaced node is unlinked and handed to the reclaim callback
 * after a grace period; the caller may read it until rcu_read_unlock().
 * Call with rcu_read_lock() held. Full memory barrier before and after.
 */
int ml_upsert(struct ml_map *map, struct ml_node *node, struct ml_node **replaced);

/*
 * ml_replace - replace one specific node by another with the same key.
 * @old: a node found in @map.
 * @node: initialised with ml_node_init() with the same key bytes as @old.
 *
 * Used to relocate an entry into fresh memory. Returns 0 when @old was
 * replaced (it is reclaimed after a grace period), -ENOENT when @old had
 * already been unlinked (the caller still owns @node), -EINVAL when the keys
 * differ or @node's key is not at the map's key_offset. Call with rcu_read_lock() held. Full memory barrier
 * on success.
 */
int ml_replace(struct ml_map *map, struct ml_node *old, struct ml_node *node);

/*
 * ml_delete - unlink a node.
 *
 * Returns 0 when this call unlinked @node (its reclaim callback runs after a
 * grace period), -ENOENT when it was already unlinked by another thread.
 * Call with rcu_read_lock() held; @node may be read until rcu_read_unlock().
 * Full memory barrier on success.
 */
int ml_delete(struct ml_map *map, struct ml_node *node);

/*
 * ml_node_is_deleted - whether a node has been unlinked (or replaced).
 * Call with rcu_read_lock() held. Writers that update an entry found by
 * lookup check this under their per-entry lock (DESIGN 4a: get-or-create then
 * update must not land in a dead node).
 */
int ml_node_is_deleted(struct ml_node *node);

/*
 * Iteration over all linked nodes, in no particular order. Nodes inserted or
 * deleted during the walk may or may not be seen; every node linked for the
 * whole walk is seen exactly once. Call with rcu_read_lock() held for the
 * whole walk.
 *
 *     struct ml_iter it;
 *     for (struct ml_node *n = ml_first(map, &it); n; n = ml_next(map, &it))
 *
 * ml_first() returns the first node and ml_next() the one after the last
 * returned, or NULL at the end. Nodes returned are valid until
 * rcu_read_unlock(), with the same guarantees as ml_lookup()'s.
 */
struct ml_iter {
    struct cds_lfht_iter _it;
};
struct ml_node *ml_first(struct ml_map *map, struct ml_iter *it);
struct ml_node *ml_next(struct ml_map *map, struct ml_iter *it);

/*
 * ml_iter_at - position @it at @node, so that ml_next() goes on after it.
 * @node: found in @map in the current read-side section (it may have been
 *        deleted since).
 *
 * The order of the walk does not depend on the bucket count, so a long walk
 * can be split into several read-side sections: remember the key of the last
 * node, end the section, and in the next one look the key up and resume from
 * the node found (when it is gone, start again with ml_first()). Nodes linked
 * for the whole walk are then seen at least once, those between the resumes
 * exactly once.
 */
void ml_iter_at(struct ml_map *map, struct ml_node *node, struct ml_iter *it);

/* Number of linked entries (relaxed read of maplib's own count). */
uint64_t ml_map_count(struct ml_map *map);

/* The map's name as configured ("" when unnamed). */
const char *ml_map_name(const struct ml_map *map);

/* ml_map_stats - copy the map's counters into @st. Safe from any thread. */
void ml_map_stats(struct ml_map *map, struct ml_stats *st);

/*
 * ml_stats_total - the sum of the counters of every map, including the
 * totals of maps already destroyed or retired. @st->buckets is the sum of
 * current bucket counts. Safe from any thread.
 */
void ml_stats_total(struct ml_stats *st);

/*
 * ml_stats_by_name - the counters of every map summed by map name (a name is
 * a kind of table, e.g. "store_series"), including the totals of destroyed
 * maps of that name, so counters per name never go backwards. @fn is called
 * once per name with the sums; @st->buckets is the sum of current bucket
 * counts. At most 16 names are tracked; maps beyond are left out.
 * @fn runs with maplib's registry lock held: it must not call maplib.
 * Safe from any thread.
 */
typedef void (*ml_stats_name_fn)(void *ctx, const char *name, const struct ml_stats *st);
void ml_stats_by_name(ml_stats_name_fn fn, void *ctx);

/*
 * ml_maps_each - call @fn for every map not being destroyed, until it returns
 * non-zero. The map cannot be freed while @fn runs (maplib's registry lock is
 * held): @fn may use ml_map_name(), ml_map_stats() and, inside its own
 * rcu_read_lock(), ml_map_chain_hist(); it must not create, retire or destroy
 * maps, and should be quick (it delays maplib's maintenance thread).
 */
typedef int (*ml_map_visit_fn)(void *ctx, struct ml_map *map);
void ml_maps_each(ml_map_visit_fn fn, void *ctx);

/*
 * ml_map_chain_hist - walk the table's entries and count its chains (entries
 * sharing a bucket of the bucket count maplib last set) by length:
 * @hist[i] is the number of chains of length i + 1, the last bin counting
 * every chain of length >= @nbins. Empty buckets are buckets minus the
 * return value.
 * @nbins: >= 1.
 * Returns the number of non-empty buckets. O(entries): a debugging aid, not
 * for hot paths. While a resize or concurrent writes run the result is an
 * approximation. Call with rcu_read_lock() held.
 */
uint64_t ml_map_chain_hist(struct ml_map *map, uint64_t *hist, unsigned nbins);

/*
 * ml_map_maintain - apply the sizing policy now, synchronously.
 *
 * Resizes the table to the power of two the policy derives from the current
 * count, if it differs from the current bucket count. Returns 1 if it resized,
 * 0 if not. Must be called from a registered thread, outside a read-side
 * critical section.
 */
int ml_map_maintain(struct ml_map *map);

/*
 * ml_thread_online - make the calling thread a registered RCU reader, once.
 *
 * Idempotent and cheap after the first call (a thread-local flag). The thread
 * is unregistered automatically when it exits (a pthread key destructor), so
 * this is how threads the project does not create (libmicrohttpd's pool)
 * join. Must not be called inside a read-side critical section.
 */
void ml_thread_online(void);

/*
 * ml_tune_allocator - apply maplib's allocator policy to the process.
 *
 * Switches glibc's fastbins off (mallopt(M_MXFAST, 0)): freed small chunks
 * then coalesce, so the maintenance thread's malloc_trim() can return their
 * pages. Call once from main(), before the first map; it changes malloc for
 * the whole process, which is why maplib does not do it on its own. The
 * measurements behind it are in bench/README.md ("maplib").
 */
void ml_tune_allocator(void);

/*
 * ml_pending_total - entries of all maps unlinked and not yet reclaimed.
 * A relaxed sum; safe from any thread.
 */
uint64_t ml_pending_total(void);

/*
 * ml_throttle - back-pressure for writers: call_rcu has none of its own.
 * @max_pending: the most unlinked-awaiting-reclaim entries (all maps
 *       together) the caller tolerates.
 *
 * If more than @max_pending entries are pending, waits until every reclaim
 * queued so far has run (rcu_barrier()), so a writer that deletes faster than
 * grace periods end (a grace period waits for every reader preempted inside
 * its read-side section, which on a loaded machine takes tens of ms) is slowed
 * down instead of piling up memory. Returns 1 if it waited, 0 if not (a few
 * relaxed loads: cheap enough to call once per batch of writes, e.g. once per
 * remote-write request).
 *
 * Must be called from a registered thread OUTSIDE any read-side critical
 * section and never from a reclaim callback.
 */
int ml_throttle(uint64_t max_pending);

/*
 * ml_set_trim_policy - tune the allocator policy (see "Memory" above).
 * @min_entries: trim once at least this many entries were reclaimed (all maps
 *       together) since the last trim; 0 switches trimming off.
 * @interval_ms: and at most once per this many milliseconds.
 * The defaults are 65536 entries and 1000 ms. Safe from any thread.
 */
void ml_set_trim_policy(uint64_t min_entries, unsigned interval_ms);

/* ml_trim_count - how many times the maintenance thread called malloc_trim(0). */
uint64_t ml_trim_count(void);

/*
 * ml_shutdown - stop maplib's maintenance thread and wait for every pending
 * reclaim (rcu_barrier()). Call once at process exit, after the last map is
 * destroyed, from a registered thread outside a read-side critical section.
 */
void ml_shutdown(void);

#ifdef __cplusplus
}
#endif

#endif /* MAPLIB_MAPLIB_H */
