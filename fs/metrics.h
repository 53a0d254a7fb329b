/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon's metrics in the Prometheus text exposition format (0.0.4):
 * store operations with their latency, errors by kind, fallbacks,
 * copy-ups, repairs, and gauges read when asked (mode, Redis up, journal
 * depth, fenced names, inodes, handles, memory).  Served over HTTP on
 * -o metrics_addr=HOST:PORT (GET /metrics) by a thread of its own, and
 * through the control socket ({"cmd":"metrics"}, ctl.c).
 *
 * Counting.  Every counter is a C11 atomic, added to with relaxed order:
 * no lock on a FUSE thread's path.  A histogram keeps one atomic count
 * per bucket (not cumulative; the renderer sums them) and the sum of its
 * observations in ns.  A scrape reads the counters one by one, so it is
 * not a snapshot: a histogram's _count is the sum of the bucket counts it
 * read, its _sum may be a few observations ahead or behind.
 *
 * Store operations are observed at the link: fs/meson.build links the
 * daemon with -Wl,--wrap= for each backend call of a store (be_store_*,
 * be_lower_*, and fs_lower_read(), the legacy read), so every call the
 * daemon's own files make (route.c, export.c, count.c, dir.c, ops.c,
 * state.c) goes through a wrapper here that times it; calls inside
 * backend/ itself are not counted.  Nothing in those files changes.  The
 * wrappers find the metrics through the one pointer fs_metrics_new() set
 * (one daemon per process).
 *
 * Serving.  fs_metrics_check() parses metrics_addr with the other options,
 * fs_metrics_listen() binds before the mount (a bad address or a port in
 * use fails the mount with one line);
 * fs_metrics_start() starts the thread after fuse_daemonize();
 * fs_metrics_stop() ends it.  The thread polls with 100 ms timeouts, holds
 * at most FS_METRICS_CLIENTS connections, gives each FS_METRICS_IO_MS to
 * send its request and read the answer, and answers GET /metrics (200),
 * other paths (404), other methods (405) and anything else (400), then
 * closes.  Rendering takes the daemon's locks only as long as reading one
 * count under each needs (tab_lock, rt.lock, the journal's, the fenced
 * set's): it never waits for a store call.
 *
 * Call order: fs_metrics_new() -> fs_metrics_check() ->
 * fs_metrics_listen() -> (mount, fork)
 * fs_metrics_start() -> ... -> fs_metrics_stop() -> fs_metrics_free().
 */
#ifndef FS_METRICS_H
#define FS_METRICS_H

#include <stdbool.h>
#include <stddef.h>

struct fs;
struct fs_metrics;

#define FS_METRICS_CLIENTS 8
#define FS_METRICS_IO_MS   5000

/** A store operation (the op label); see metrics.c for the valid pairs. */
enum fs_m_op {
	FS_M_GET = 0,
	FS_M_PUT,
	FS_M_CREATE,
	FS_M_COPYUP,
	FS_M_DELETE,
	FS_M_SETMETA,
	FS_M_RENAME,
	FS_M_LIST,
	FS_M_COUNT,
	FS_M_INDEX,
	FS_M_LEGACY_READ,
	FS_M_NOPS,
};

/**
 * Returns new, zeroed metrics, and makes them the ones the link-time
 * wrappers count into.  NULL on ENOMEM.  Main thread, before any other.
 */
struct fs_metrics *fs_metrics_new(void);
/**
 * Closes the listening socket and frees 'm' (NULL allowed); the wrappers
 * count nothing from then on.  After fs_metrics_stop() and after every
 * thread that calls a store has ended.
 */
void fs_metrics_free(struct fs_metrics *m);

/**
 * Parses fs->cfg.metrics_addr (nothing to do when NULL).  Accepted:
 * "PORT" or ":PORT" (127.0.0.1), "localhost:PORT", "IPV4:PORT",
 * "[IPV6]:PORT", port 1-65535.  A host name other than localhost is
 * refused (no DNS at mount time; a name must not silently open the
 * metrics to the network): anything but loopback must be written as an
 * address.  0, or -1 after one line on stderr.  Main thread, with the
 * other option checks.
 */
int fs_metrics_check(struct fs *fs);
/**
 * Listens on the address fs_metrics_check() parsed, if any; one that is
 * not loopback is logged as reachable from the network.  0, or -1 after
 * one line on stderr (a port in use).  Main thread, before the mount and
 * after the mountpoint's lock, so that a second mount on the same
 * mountpoint is refused for that and not for the port.
 */
int fs_metrics_listen(struct fs *fs);
/** Starts the HTTP thread when listening; 0 or -errno.  After the fork. */
int fs_metrics_start(struct fs *fs);
/** Stops the HTTP thread (within about 100 ms) if it runs. */
void fs_metrics_stop(struct fs *fs);

/**
 * Renders every metric as exposition text: a new NUL-terminated string
 * ('*len' bytes without the NUL) the caller frees, or NULL on ENOMEM.
 * Any thread; holds no lock when called.
 */
char *fs_metrics_render(struct fs *fs, size_t *len);

/*
 * Counting calls, one per site where the daemon decides something the
 * wrappers cannot see.  Any thread, any locks; lock-free.
 */

/** A client-facing store result (route.c fs_route_count()). */
void fs_metrics_request(struct fs *fs, bool failed);
/** redis-first served 'op' from the lower dir: Redis was down. */
void fs_metrics_fallback(struct fs *fs, enum fs_m_op op);
/** A legacy file was copied up into Redis. */
void fs_metrics_copyup(struct fs *fs);
/** The repair thread brought 'stores' (BE_J_* of journal.h) up to date. */
void fs_metrics_repaired(struct fs *fs, unsigned int stores);
/** The circuit breaker opened (Redis marked down). */
void fs_metrics_breaker_opened(struct fs *fs);
/**
 * A lookup asked whether tracking vouches for an inode and it did not:
 * counts a miss when tracking is on.  Returns false, for the caller's
 * return statement.
 */
bool fs_metrics_track_miss(struct fs *fs);

#endif /* FS_METRICS_H */
