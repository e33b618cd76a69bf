#ifndef ADAPTER_DEBUG_H
#define ADAPTER_DEBUG_H

/*
 * debug: a read-only debug endpoint, off by default (--debug-endpoint) and
 * served only on a listener bound to a loopback address.
 *
 * GET /debug/maps[?limit=N] answers application/json:
 *
 *   {"kinds":[{"table":"store_series","maps":12,"live":1000,"pending":0,
 *              "buckets":1024,"nonempty_buckets":870,"max_chain":4,
 *              "chains":{"1":760,"2":95,...,"8+":0}}, ...],
 *    "tables":[{"table":"store_series","live":...,"pending":...,"buckets":...,
 *               "resizes":...,"nonempty_buckets":...,"max_chain":...,
 *               "chains":{...}}, ...],
 *    "maps_total":57,"tables_listed":57,"truncated":false}
 *
 * "chains" counts buckets by the number of entries they hold (1..7, then
 * "8+"), from a walk of every live table (ml_map_chain_hist); "kinds" sums
 * the tables of one kind (map name); "tables" lists the first N tables
 * (default 100, at most 10000). The walk is O(entries) and holds maplib's
 * registry lock and one read-side section per table while it runs: a
 * debugging aid, not something to scrape.
 *
 * Thread safety: the handler runs on any HTTP pool thread.
 */

struct http_server;

/* Add GET /debug/maps to @srv (before http_start()). Returns 0 or a negative errno. */
int debug_add_routes(struct http_server *srv);

#endif /* ADAPTER_DEBUG_H */
