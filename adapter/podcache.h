#ifndef ADAPTER_PODCACHE_H
#define ADAPTER_PODCACHE_H

/*
 * podcache: the pods' metadata (namespace, name, labels), kept current by a
 * LIST then WATCH of /api/v1/pods as metadata only, so that pods reads
 * resolve labelSelector against the POD's labels with no API call per read.
 *
 * One thread per cache: LIST (pages of 500, Accept ...PartialObjectMetadataList;
 * an expired continue token, HTTP 410, restarts the LIST), then WATCH from
 * the list's resourceVersion with bookmarks; a watch that ends is resumed
 * from the last resourceVersion seen (events and bookmarks move it); an
 * ERROR event with code 410 in the stream (or a 410 answer) relists; errors
 * back off with jitter (100 ms doubling to 30 s). A relist drops the pods the
 * new list no longer has.
 *
 * Memory: per pod one maplib entry holding "namespace/name" and the labels in
 * one buffer; MODIFIED replaces the entry with ml_upsert (a reader sees the old
 * or the new labels, never a mix), DELETED unlinks it (freed after a grace
 * period).
 *
 * Thread safety: podcache_selected() and podcache_synced() from any
 * registered RCU thread; start/stop from one thread. Pods reads use the cache
 * only once it is synced (before, /readyz is 503 and series labels serve).
 */

#include <stdbool.h>
#include <stddef.h>

#include "kube.h"
#include "selector.h"

struct podcache;

/* Start the cache's thread on @k (borrowed: it must outlive the cache). 0 or a negative errno. */
int podcache_start(struct kube *k, struct podcache **out);
/* Stop the thread and free the cache (after podcache_set_active(NULL) and no reader left). */
void podcache_stop(struct podcache *pc);

/* True once the first full LIST has been applied. */
bool podcache_synced(const struct podcache *pc);
/* Pods held. */
size_t podcache_size(const struct podcache *pc);

/*
 * podcache_selected - whether pod @ns/@name (@name_len bytes) is cached and its
 * labels satisfy @sel (NULL or empty: any cached pod). Call inside a read-side
 * critical section.
 */
bool podcache_selected(const struct podcache *pc, const char *ns, const char *name, size_t name_len,
                       const struct sel_selector *sel);

/*
 * The process's cache for pods reads (query.c), or NULL: labelSelector is then
 * matched against the series' own labels (--pod-labels-source=series, or no
 * Kubernetes API). /readyz waits for podcache_synced() of the active cache.
 * query.c consults it, once synced, for pods reads that carry a labelSelector
 * and for reads of all pods (name "*").
 */
void podcache_set_active(struct podcache *pc);
struct podcache *podcache_active(void);

#endif /* ADAPTER_PODCACHE_H */
