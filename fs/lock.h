/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * flock() and fcntl() locks on a session file across hosts (docs/DESIGN.md,
 * "Session locks").  PHP's files handler holds flock(LOCK_EX) on the session file
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
 * fcntl (POSIX) locks share the table and the Redis lock: a host holding
 * any lock on a name, flock or fcntl, or waiting for one, holds the Redis
 * lock.  On a host their byte ranges and owners (the kernel's id of a
 * process's file table) decide as fcntl(2) does, beside flock locks as
 * the kernel has them (the two kinds do not exclude each other); across
 * hosts the whole file is the unit.  GETLK answers a local lock with its
 * pid, another host's as a write lock on the whole file with pid 0.  A
 * close of the file by a process drops its fcntl locks on it (FLUSH
 * carries the owner).
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

#include <fcntl.h>
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
 * SETLK ('sleep' false) or SETLKW of lock owner 'owner' (a process) with
 * the lock 'fl' (SEEK_SET, as libfuse gives it) on the inode 'ino', named
 * as for fs_lock_flock().  Replies as fs_lock_flock() does: EAGAIN for a
 * SETLK that conflicts here or with another host (after one Redis try),
 * EINTR for an interrupted SETLKW.  Any FUSE thread.
 */
void fs_lock_setlk(struct fs *fs, fuse_req_t req, const char *name,
		   uint64_t ino, bool local, uint64_t owner,
		   const struct flock *fl, bool sleep);

/**
 * GETLK: replies to 'req' with the lock that keeps 'owner' from taking
 * 'fl' (a local one with its pid; another host's: F_WRLCK on the whole
 * file, pid 0) or F_UNLCK; asks Redis from the lock thread when this host
 * does not hold the name.  Any FUSE thread.
 */
void fs_lock_getlk(struct fs *fs, fuse_req_t req, const char *name,
		   uint64_t ino, bool local, uint64_t owner,
		   const struct flock *fl);

/**
 * Drops every fcntl lock of 'owner' on 'ino' (a FLUSH: any close of the
 * file by that process).  Cheap when no fcntl lock is held.  Any FUSE
 * thread.
 */
void fs_lock_flush_owner(struct fs *fs, uint64_t ino, uint64_t owner);

/**
 * Drops every flock of 'owner' (a RELEASE with the flock-release flag: the
 * last close of that open file description).  Any FUSE thread.
 */
void fs_lock_release_owner(struct fs *fs, uint64_t owner);

#endif /* FS_LOCK_H */
