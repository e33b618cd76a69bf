#ifndef ADAPTER_SNAPSHOT_H
#define ADAPTER_SNAPSHOT_H

/*
 * snapshot: the series store saved on SIGTERM and loaded at start
 * (--snapshot-file), so that the HPA sees values at once after a restart
 * instead of a gap of one rate window.
 *
 * File format, version 1 (all integers little-endian):
 *
 *     offset  size  field
 *          0     8  magic "MAsnap\r\n"
 *          8     4  format version (1)
 *         12     4  header length (40)
 *         16     8  payload length in bytes
 *         24     8  newest sample held, Unix ms (0 when the store was empty)
 *         32     4  CRC-32 (zlib's) of the payload
 *         36     4  CRC-32 of bytes 0..35
 *         40     -  payload: an uncompressed remote-write v1 WriteRequest
 *                   (every series with every sample held, metadata giving
 *                   each known metric type)
 *
 * The payload is the remote-write wire format on purpose: loading goes
 * through the same decoder and validation as ingest (api_rw_decode_pb with
 * the ingest caps), so a snapshot can never put into the store anything a
 * remote-write request could not. A file is trusted only when the magic,
 * both checksums, the version and every length agree; anything else is
 * logged and ignored, never partly applied.
 *
 * Writing is atomic: PATH.tmp is written, fsync'ed, renamed over PATH and the
 * directory fsync'ed, so a crash (kill -9, power loss) leaves the previous
 * snapshot or the new one, never a torn file.
 */

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "remote_write.h"
#include "store.h"

#define SNAPSHOT_VERSION    1u
#define SNAPSHOT_HEADER_LEN 40u

struct snapshot_info {
    uint64_t series;   /* written / stored */
    uint64_t samples;  /* written / accepted by the store */
    uint64_t metrics;  /* metric types written / applied */
    uint64_t skipped;  /* load: series the decoder or the store refused */
    int64_t newest_ms; /* newest sample in the file */
    size_t bytes;      /* file size */
};

/*
 * snapshot_write - save every series of @st to @path (atomically, see above).
 * Call from a registered RCU thread, outside a read-side critical section,
 * once nothing writes to the store any more (after the listeners stopped):
 * the walk holds one read-side section for the whole store.
 * Returns 0 (and fills @info when not NULL) or a negative errno; on failure
 * the previous file at @path is left as it was.
 */
int snapshot_write(struct store *st, const char *path, struct snapshot_info *info);

/*
 * snapshot_parse - check a snapshot image and decode its payload.
 * @data, @len: the whole file. @now_ms, @ttl_ms: a file whose newest sample
 * is older than now - ttl is refused (-ESTALE). @lim: the ingest caps and
 * clock (drop_labels should be empty). @a: the arena @out lives in.
 * @why, @whylen: on failure, a short reason for the log.
 * Returns 0, -EINVAL (not a snapshot, truncated, corrupt, undecodable),
 * -EPROTO (a version this build does not read), -ESTALE, or -ENODATA (a valid
 * snapshot of an empty store). @out is written only on success.
 * Pure: no I/O, no store; the fuzz target drives it directly.
 */
int snapshot_parse(const void *data, size_t len, int64_t now_ms, int64_t ttl_ms,
                   const struct api_rw_limits *lim, struct arena *a, struct api_rw_request *out, char *why,
                   size_t whylen);

/*
 * snapshot_load - read @path and, when snapshot_parse() accepts it, write its
 * series into @st through store_write() (limits and the admission hook
 * apply as for ingest). Logs what happened in every case.
 * Returns 0 when series were stored (fills @info), -ENOENT when there is no
 * file, or the snapshot_parse() / read error; the store is untouched then.
 * Call from a registered RCU thread, outside a read-side critical section.
 */
int snapshot_load(struct store *st, const char *path, int64_t now_ms, const struct api_rw_limits *lim,
                  struct snapshot_info *info);

#endif /* ADAPTER_SNAPSHOT_H */
