/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The fcntl (POSIX) byte-range locks of one name on this host, as
 * fcntl(2) has them: pure list operations for fs/lock.c, which holds the
 * lists under its table's mutex and decides what they mean across hosts
 * (lock.h).
 *
 * A lock covers bytes 'start' to 'end', both included; 'end' INT64_MAX is
 * "to the end of the file, however far it grows" (a length of 0).  Its
 * owner is the kernel's lock owner of a process (an id of its file
 * table): locks of one owner never conflict with each other, and one
 * owner's pieces on one inode never overlap (a new lock replaces its own
 * pieces in its range).
 */
#ifndef FS_PLOCK_H
#define FS_PLOCK_H

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>

struct fs_plock {
	uint64_t owner;
	uint64_t ino; /* the nodeid: a name can change, the inode not */
	int64_t start, end;
	uint32_t pid; /* as the kernel gave it, for F_GETLK */
	bool ex; /* F_WRLCK; else F_RDLCK */
	struct fs_plock *next;
};

/**
 * The byte range of 'fl' (l_whence SEEK_SET, as libfuse gives it;
 * l_len 0: to the end) as inclusive ends in '*start' and '*end'.  0, or
 * -EINVAL for a negative start or length.
 */
int fs_plock_range(const struct flock *fl, int64_t *start, int64_t *end);

/**
 * The first lock of 'list' that keeps 'owner' from locking bytes 'start'
 * to 'end' ('ex': for writing): another owner's, overlapping, one of the
 * two a write lock.  NULL: none.
 */
const struct fs_plock *fs_plock_conflict(const struct fs_plock *list,
					 uint64_t owner, bool ex, int64_t start,
					 int64_t end);

/** Whether 'owner' holds a lock in 'list'. */
bool fs_plock_holds(const struct fs_plock *list, uint64_t owner);

/**
 * Sets bytes 'start' to 'end' of 'ino' for 'owner' to 'type' (F_UNLCK,
 * F_RDLCK, F_WRLCK) as fcntl(2) does: the owner's pieces of that inode in
 * the range are cut away (a piece around the range is split in two),
 * then the new piece is added.  '*count' follows the number of pieces.
 * 0, or -ENOMEM with the list unchanged.  It does not check conflicts.
 */
int fs_plock_set(struct fs_plock **list, uint64_t *count, uint64_t owner,
		 uint64_t ino, uint32_t pid, int type, int64_t start,
		 int64_t end);

/**
 * Drops every lock of 'owner' on 'ino' (a close of the file by that
 * process); whether one went.  '*count' follows.
 */
bool fs_plock_drop(struct fs_plock **list, uint64_t *count, uint64_t owner,
		   uint64_t ino);

/** Frees the whole list. */
void fs_plock_free(struct fs_plock *list);

#endif /* FS_PLOCK_H */
