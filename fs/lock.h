/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * flock() on a session file across hosts (docs/DESIGN.md, "Session
 * locks").  PHP's files handler holds flock(LOCK_EX) on the session file
 * for the whole request; with two hosts on one prefix that lock must
 * exclude the other host's requests too.
 *
 * Two levels.  On this host a table of names, each with its holders (by
 * the kernel's lock owner, the open file description) and a FIFO of
 * waiting FLOCK requests, decides between this host's processes, without
 * Redis.  Across hosts, the host holds one Redis lock per name while any
 * of its processes holds or waits for the flock: the lock key of the
 * session (be_key_lock(): the value key's slot), set to an owner token
 * with a lease, renewed at a third of the lease, released by
 * compare-and-delete once the name has neither holder nor waiter here.
 * Handing the flock from one local process to the next keeps the Redis
 * lock: no round trip.  A host that finds the Redis lock taken sets the
 * want key; the holding host then stops handing the lock on locally once
 * its current holders are done, and releases it.
 *
 * Threads.  A blocking LOCK_EX that must wait is queued and its FUSE
 * worker returns at once; one lock thread talks to Redis for every name
 * (acquire, poll, renew, release; one pipeline per round) and replies to
 * the waiters it grants.  A FUSE INTERRUPT (a signal to the waiting app)
 * replies EINTR to the queued request.  A dead holder: its process (the
 * kernel unlocks at close), this daemon (kill -9: the lease runs out) or
 * its host (the same).
 *
 * Locks: the table's mutex is taken after none of fs_i.h's locks and
 * only route.c's breaker lock is taken under it; grants are answered
 * after it is dropped (a re-read takes the name stripe and inode->lock).
 *
 * Which names: in dual-write, redis-first and redis-only, session names
 * (decided when the name's entry is made, that is when no process of this
 * host holds or waits for it).  In files mode, host-local names and
 * detached inodes, the table alone decides (as the kernel did).
 */
#ifndef FS_LOCK_H
#define FS_LOCK_H

#include <stdbool.h>
#include <stdint.h>

#include <fuse_lowlevel.h>

struct fs;

#define FS_LOCK_LEASE_DEFAULT_MS 10000

/**
 * Makes the lock table of 'fs' with a lease of 'lease_ms'.  0 or -ENOMEM.
 * Called before the session runs; the thread starts in fs_lock_start().
 */
int fs_lock_init(struct fs *fs, int64_t lease_ms);

/** Starts the lock thread (from fs_init, after the fork).  0 or -errno. */
int fs_lock_start(struct fs *fs);

/**
 * Stops the lock thread once the session loop ended, releases every Redis
 * lock this host holds (compare-and-delete) and frees the table.  Safe
 * when fs_lock_init() was not called or failed.
 */
void fs_lock_stop(struct fs *fs);

/**
 * The FLOCK request 'req' of lock owner 'owner' on the inode 'ino' (the
 * nodeid), named 'name' (NULL: detached); 'local' for a host-local name;
 * 'op' is LOCK_SH, LOCK_EX or LOCK_UN, with LOCK_NB.  Replies to 'req' now
 * or, for a blocking lock that waits, later from another thread; a grant
 * just after this host took the Redis lock first reads the session again
 * (fs_flock_refresh()).  Any FUSE thread.
 */
void fs_lock_flock(struct fs *fs, fuse_req_t req, const char *name,
		   uint64_t ino, bool local, uint64_t owner, int op);

/**
 * Drops every flock of 'owner' (a RELEASE with the flock-release flag: the
 * last close of that open file description).  Any FUSE thread.
 */
void fs_lock_release_owner(struct fs *fs, uint64_t owner);

#endif /* FS_LOCK_H */
