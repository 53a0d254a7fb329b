/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Sessions in Redis, layout v1 (backend/layout.h): every operation on one
 * name is one Lua script (EVALSHA, falling back to EVAL on NOSCRIPT), so
 * the value key and its meta key change together and each call is one
 * round trip; a read is a MULTI/EXEC transaction, and so is a rewrite
 * with tx_writes (WATCH first: two round trips).  Used by the mount (fs/)
 * and by sessfs-migrate.
 *
 * Ordering: every write carries this process's host id and a write
 * sequence (monotonic, from CLOCK_REALTIME ns, 20 digits).  A script that
 * finds a meta key written by the same host with a sequence >= its own
 * does nothing and reports success: a delayed retry of an older write (a
 * connection that was timed out while Redis was paused) can never undo a
 * newer one.  A rewrite by transaction keeps the rule by its WATCH
 * (docs/DESIGN.md, "Writes without Lua").
 *
 * Threading: all functions may be called from any thread; each call uses
 * the connection it is given, which the caller holds alone.
 */
#ifndef BACKEND_STORE_H
#define BACKEND_STORE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

struct be_conn;

/** What every store call needs; zero-initialisable but for the strings. */
struct be_store_config {
	struct be_keyspace ks;
	struct be_ttl_policy ttl;
	const char *host_id; /* borrowed; this host's id (layout.h "host") */
	/*
	 * durability=replica:N: every write script (put, delete, setmeta) is
	 * followed on its connection by "WAIT wait_replicas wait_ms"; 0 (the
	 * default, durability=none) sends no WAIT.  wait_ms must leave room
	 * in the connection's budget for the write itself.
	 */
	int wait_replicas;
	int wait_ms;
	/*
	 * The keys live on a Redis Cluster (a redis-cluster:// endpoint):
	 * the names index, a key of its own slot, is not kept (the scripts
	 * name only a session's two keys), and be_store_count() counts by a
	 * SCAN of every master instead.
	 */
	bool cluster;
	/*
	 * Whether a rewrite (be_store_put() with BE_PUT_REPLACE) of a name
	 * the names index does not hold may go as plain commands, WATCH
	 * then MULTI/EXEC, instead of the put script (docs/DESIGN.md,
	 * "Writes without Lua").  Only for connections that are never
	 * replaced between two calls of one thread, unless a call failed:
	 * no Sentinel, no Cluster, no cache=tracking tracker.  Ignored with
	 * wait_replicas.
	 */
	bool tx_writes;
};

/*
 * A write under durability=replica that fewer than wait_replicas replicas
 * confirmed within wait_ms returns -BE_ENOTDURABLE: the master has it
 * ("not confirmed, may be stored"), a failover may lose it.  Not a
 * transport error: the caller reports EIO and Redis stays up.
 */
#define BE_ENOTDURABLE EREMOTEIO

/**
 * What the WAITs of durability=replica said, since the process started:
 * '*replicas_seen' the count the last one returned (-1: none yet),
 * '*confirmed' and '*unconfirmed' the writes that reached wait_replicas
 * or not.  Any thread.
 */
void be_store_durability(long long *replicas_seen, uint64_t *confirmed,
			 uint64_t *unconfirmed);

enum be_state {
	BE_ABSENT = 0, /* neither value nor meta key */
	BE_PRESENT, /* value key exists */
	BE_TOMBSTONE, /* no value, meta key exists (deleted or expired) */
};

/** One name as read from Redis. */
struct be_file {
	enum be_state state;
	bool has_meta; /* PRESENT without meta: written by phpredis */
	struct be_meta meta; /* PRESENT with meta, or TOMBSTONE */
	int64_t pttl_ms; /* value's PTTL when PRESENT (-1: none) */
	size_t size; /* value length when PRESENT */
	char *data; /* value bytes when asked for; owned, may be NULL */
};

/** Frees f->data and zeroes 'f'. */
void be_file_release(struct be_file *f);

/**
 * Reads the name 'name' (a BE_NAME_SESSION name): state, meta, PTTL and
 * size, and the bytes when 'want_data'.  When PRESENT without meta, fills
 * f->meta from defaults: mtime = now - (ttl - PTTL), ctime = mtime, uid,
 * gid, mode 0 (the caller substitutes the root directory's).  0 or -errno
 * (transport, -EPROTO for an unexpected reply).
 */
int be_store_get(struct be_conn *c, const struct be_store_config *sc,
		 const char *name, bool want_data, struct be_file *f);

enum be_put_mode {
	/* Write unconditionally (a session write, a rename onto the name). */
	BE_PUT_REPLACE = 0,
	/*
	 * Create an empty or given value if no value exists (a tombstone is
	 * overwritten: a new session under an old name); if a value exists,
	 * write nothing and return -EEXIST with it in '*cur'.
	 */
	BE_PUT_CREATE,
	/*
	 * Copy-up, backfill, repair: write only if neither a value nor a
	 * tombstone exists, or if the existing meta's mtime is older than
	 * 'meta->mtime_ns'; otherwise -EEXIST with the current state in '*cur'.
	 */
	BE_PUT_COPYUP,
};

/**
 * Stores 'len' bytes of 'data' as the value of 'name' with the meta 'meta'
 * (its wver, host and deleted fields are ignored: the script sets them),
 * in one script.  Value TTL = be_ttl_remaining_ms() for 'data' and
 * meta->mtime_ns, at least 1000 ms; meta TTL = value TTL + ttl.  On 0,
 * '*wver' (if not NULL) is the new write version.  On -EEXIST (CREATE,
 * COPYUP) '*cur' (if not NULL) holds the current file with its data; the
 * caller releases it.  Other results: -errno.
 */
int be_store_put(struct be_conn *c, const struct be_store_config *sc,
		 const char *name, const void *data, size_t len,
		 const struct be_meta *meta, enum be_put_mode mode,
		 uint64_t *wver, struct be_file *cur);

/**
 * Deletes 'name': removes the value and turns the meta key into a
 * tombstone with TTL be_tombstone_ttl_ms() of the last mtime (the meta's,
 * or 'last_mtime_ns' when there is no meta, e.g. a legacy lower file).
 * A tombstone is written also when no value exists.  Returns 1 if a value
 * existed, 0 if not, or -errno.
 */
int be_store_delete(struct be_conn *c, const struct be_store_config *sc,
		    const char *name, int64_t last_mtime_ns);

/**
 * Changes only the metadata of 'name' (chmod, chown, utimens): writes
 * uid, gid, mode, mtime and ctime of 'meta'.  Unless the value's TTL comes
 * from its cachelib header (be_ttl_from_header on its first bytes), the
 * value TTL is recomputed from the new mtime (sliding).  -ENOENT if no
 * value exists; 0 or -errno otherwise; '*wver' as for be_store_put().
 */
int be_store_setmeta(struct be_conn *c, const struct be_store_config *sc,
		     const char *name, const struct be_meta *meta,
		     uint64_t *wver);

/** Called by be_store_list() for each name; non-zero stops the scan. */
typedef int (*be_list_cb)(const char *name, enum be_state state, void *arg);

/*
 * The names index: a sorted set under the prefix (never a session name,
 * like every key holding '{'), one member per value key of an indexed
 * name (be_store_is_indexed(): cachelib's entries), scored with the
 * value's expiry time in ms by Redis's clock.  The put, setmeta and delete
 * scripts keep it for indexed names, in the same script as the value, so
 * it always holds the indexed value keys our scripts wrote, and the live
 * ones are those scored from now on: the cachelib entries a listing shows,
 * across hosts and expiries.  A write of any other name (PHP's sess_*,
 * Django's sessionid*, the whole phpredis layout) never touches it.
 */
#define BE_INDEX_KEY_SUFFIX "{sessfs}:names"

/**
 * Whether the names index holds 'name' (a BE_NAME_SESSION name) in 'sc':
 * in the plain layout, a cachelib entry name (be_name_is_cachelib_entry());
 * in the phpredis layout, never.  Pure; any thread.
 */
bool be_store_is_indexed(const struct be_store_config *sc, const char *name);

/*
 * The marker a durable write (durability=replica) sets, with a TTL of 60 s,
 * when its call reconnected before WAIT: see wait_again() in store.c.  On
 * a cluster it is "<prefix>{<value key>}:wait" instead, in the write's
 * slot, so that WAIT asks the node that took the write.
 */
#define BE_WAIT_KEY_SUFFIX "{sessfs}:wait"

/** prefix + BE_INDEX_KEY_SUFFIX as a new string, or NULL (ENOMEM). */
char *be_store_index_key(const struct be_store_config *sc);

/**
 * Sets '*n' to the number of live members of the names index (one script
 * run: O(log N)); on a cluster ('sc->cluster') the number of indexed names
 * present, by a SCAN of every master (O(N)).  0 or -errno as for
 * be_store_get().
 */
int be_store_count(struct be_conn *c, const struct be_store_config *sc,
		   long long *n);

/** Most names one be_store_reindex() call takes. */
#define BE_REINDEX_MAX 500

/**
 * Adds to the names index the value keys of 'names' (at most
 * BE_REINDEX_MAX; names that are not sessions or not indexed,
 * be_store_is_indexed(), are skipped) that exist and are not members yet: values written before the index existed.  Sets
 * '*added'.  0 or -errno as for be_store_get().
 */
int be_store_reindex(struct be_conn *c, const struct be_store_config *sc,
		     const char *const *names, size_t n, long long *added);

/**
 * Removes from the names index the value keys of those of 'names' (at
 * most BE_REINDEX_MAX) that it must not hold (sessions not
 * be_store_is_indexed()): members an older sessfs added for every name,
 * which would be counted until their expiry.  One ZREM; sets '*removed'.
 * 0 or -errno as for be_store_get().
 */
int be_store_unindex(struct be_conn *c, const struct be_store_config *sc,
		     const char *const *names, size_t n, long long *removed);

/**
 * Lists every name under the prefix with SCAN (MATCH on the glob-escaped
 * prefix, COUNT 1000): PRESENT for names with a value key, TOMBSTONE for
 * names with only a meta key.  A name is reported once.  0, the callback's
 * non-zero result, or -errno.
 */
int be_store_list(struct be_conn *c, const struct be_store_config *sc,
		  be_list_cb cb, void *arg);

/**
 * Checks the server before mounting or copying: PING, then the
 * maxmemory-policy (CONFIG GET, or INFO memory when CONFIG is renamed or
 * the ACL denies it).  Returns 0, -EPERM with a reason in 'err' for an
 * evicting policy (allkeys-*, volatile-*) or one that cannot be read
 * unless 'allow_evicting', or -errno with the connection's error in
 * 'err'.  On 0, 'err' is empty or holds a warning for the caller to show:
 * 'allow_evicting' and the ACL refused both CONFIG GET and INFO.
 */
int be_store_check_server(struct be_conn *c, bool allow_evicting, char *err,
			  size_t errlen);

/** One put of be_store_put_many(); the strings and data are borrowed. */
struct be_put_item {
	const char *name; /* a BE_NAME_SESSION name */
	const void *data; /* 'len' bytes; NULL allowed when 'len' is 0 */
	size_t len;
	struct be_meta meta; /* as for be_store_put() */
	enum be_put_mode mode; /* BE_PUT_COPYUP for the bulk copier */
};

/**
 * Loads every store script into the server's script cache (SCRIPT LOAD; on
 * a cluster into every master's),
 * so that a pipeline of EVALSHA calls does not meet NOSCRIPT.  Needed once
 * per server (and again after SCRIPT FLUSH or a restart); be_store_put_many()
 * still copes with NOSCRIPT by falling back to single calls.  0, -EPROTO if
 * the server's SHA1 differs from ours, or -errno.
 */
int be_store_load_scripts(struct be_conn *c);

/**
 * Puts the 'n' items of 'items' with the effect be_store_put() would have
 * for each, batched (store_copy.c): COPYUP puts of names outside the names
 * index go by optimistic transactions of plain commands (WATCH, EXISTS,
 * MULTI/EXEC) in chunks, the put script's rules applied in C, and whatever
 * a transaction cannot take (other modes, indexed names, a chunk raced by
 * another writer three times, a server refusing WATCH or MULTI) by the put
 * script, pipelined.  Names should be distinct; a repeated one is put
 * after the others.  Writes each put's result into 'results[i]': 0,
 * -EEXIST (CREATE, COPYUP: nothing written), -EINVAL (not a session name)
 * or -errno for an error reply (-ENOSPC for OOM).  Returns 0 when every
 * item has its result, or -errno of the transport (then every item holds
 * that error; any of the puts may or may not have been applied, and
 * resending them is safe).  For sessfs-migrate's bulk copy: the current
 * values of refused items are neither read nor returned, and no WAIT
 * follows the writes (durability=replica is the mount's).
 */
int be_store_put_many(struct be_conn *c, const struct be_store_config *sc,
		      const struct be_put_item *items, size_t n, int *results);

/**
 * Returns this process's next write sequence ("hs"): max(last + 1,
 * CLOCK_REALTIME in ns), atomically, so it grows across all threads.
 * Every write call takes one; exposed for tests and tools.
 */
uint64_t be_store_next_hseq(void);

/**
 * Returns this host's default id: the hostname and the machine-id's first
 * 8 characters, "web1-3f2a9c1d".  New string.
 */
char *be_host_id_default(void);

#endif /* BACKEND_STORE_H */
