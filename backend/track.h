/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Redis's server-assisted client-side caching (CLIENT TRACKING, RESP2
 * redirect mode), for the daemon's lookup cache (docs/DESIGN.md, "Tracked
 * lookups").
 *
 * A tracker owns one connection subscribed to __redis__:invalidate and a
 * thread that reads it.  Every connection of a pool given the tracker
 * (be_pool_set_tracker) sends CLIENT TRACKING ON REDIRECT <that
 * connection's id> NOLOOP when it connects: Redis then remembers the keys
 * each connection reads and tells the tracker when anyone else changes one
 * (a write, a delete, an expiry, FLUSHALL), while a connection's own writes
 * tell nothing (NOLOOP).  A write script ends by reading its keys again,
 * since Redis forgets a key once it changed.  A name's keys go through its
 * slot's connection whenever it is free (be_pool_get_at): through another
 * one, our own write is reported to the connection that read the key, and
 * only costs us that entry (never a stale one).
 *
 * The epoch says whether what was learnt through tracked connections can
 * still be trusted: it is 0 while the tracker is not subscribed (or
 * tracking was refused), and changes whenever an invalidation may have been
 * lost: the tracker reconnected, a data connection reconnected (its keys
 * are no longer tracked), or an idle one was found closed by the server.
 * A cache entry records the epoch it was made in and is good only while
 * that is still the epoch.
 *
 * Over a cluster (redis-cluster://) the tracker made for the endpoint is
 * a parent of one tracker per node (be_tracker_node()), each subscribed
 * on its node; the links a connection keeps to each node (cluster.h)
 * redirect to their node's tracker.  The parent's epoch is 0 unless the
 * tracker of every current master is up, and changes with any of them;
 * quiet means all of them are quiet; invalidations are summed.
 */
#ifndef BACKEND_TRACK_H
#define BACKEND_TRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "pool.h"

struct be_tracker;

/**
 * Called by the tracker thread for each key some other client changed;
 * 'key' NULL means every key (FLUSHALL, or the tracker lost its
 * connection).  Must not block on Redis.
 */
typedef void (*be_inval_cb)(void *arg, const char *key, size_t len);

/**
 * A new tracker for 'ep' (copied), not started.  'tick' (may be NULL) is
 * called by its thread about every 50 ms: the daemon checks its idle
 * connections there (be_pool_sweep).  NULL on ENOMEM.
 */
struct be_tracker *be_tracker_new(const struct be_endpoint *ep, double timeout,
				  be_inval_cb cb, void (*tick)(void *arg),
				  void *arg);
/** Starts the thread; 0 or -errno. */
int be_tracker_start(struct be_tracker *t);
/** Stops the thread (if started) and frees 't'; NULL is allowed. */
void be_tracker_free(struct be_tracker *t);

/** The current epoch; 0 when nothing learnt may be trusted. */
uint64_t be_tracker_epoch(struct be_tracker *t);
/**
 * The client id to redirect to and its generation ('*gen'), or 0 while
 * the tracker is not subscribed.
 */
long long be_tracker_redirect(struct be_tracker *t, uint64_t *gen);
/** The generation of the current redirect id (0: none). */
uint64_t be_tracker_gen(struct be_tracker *t);
/** Some connection lost its tracking: a new epoch. */
void be_tracker_lost(struct be_tracker *t);
/**
 * Redis refused to track (e.g. an ACL without CLIENT or without the
 * invalidation channel): the epoch stays 0 for the daemon's life, and
 * 'why' is logged once by the caller of be_tracker_disabled().
 */
void be_tracker_disable(struct be_tracker *t, const char *why);
/** Why tracking was disabled, or NULL. Borrowed. */
const char *be_tracker_disabled(struct be_tracker *t);
/** Whether the tracker is subscribed now. */
bool be_tracker_up(struct be_tracker *t);
/**
 * Whether no invalidation is on its way in: the tracker heard from Redis
 * within the last 1.5 s (it pings after 1 s of silence), nothing is
 * unread on the subscribed socket and nothing read is not yet applied.  A
 * cache hit checks this first, then its entry.  Not a guarantee across
 * hosts: Redis writes the writer's reply before our message, and a
 * preempted Redis may leave microseconds to a millisecond between them
 * (docs/DESIGN.md, "Tracked lookups").
 */
bool be_tracker_quiet(struct be_tracker *t);
/** Invalidation messages received (keys counted one by one). */
uint64_t be_tracker_invalidations(struct be_tracker *t);
/**
 * The tracker of node 'i' of the cluster of the parent 't' (cluster.h's
 * node index), made and started on first use (its thread calls 'tick'
 * only if it is the first child).  NULL when 't' is not over a cluster,
 * on ENOMEM, or for an unknown node.  Thread-safe.
 */
struct be_tracker *be_tracker_node(struct be_tracker *t, unsigned int i);

#endif /* BACKEND_TRACK_H */
