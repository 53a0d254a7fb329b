/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A set of file names with its own lock, for the daemon's small per-name
 * facts: which names are fenced after a failed read, which names this host
 * wrote last.  Chained hashing, grows by doubling; optionally bounded.
 */
#ifndef FS_NAMESET_H
#define FS_NAMESET_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct fs_nameset {
	pthread_mutex_t lock;
	struct fs_name_node **buckets;
	size_t nbuckets; /* a power of two, 0 until the first add */
	/* Changed under lock; atomic for fs_nameset_any()'s unlocked look. */
	_Atomic size_t count;
	size_t max; /* 0: unbounded */
};

/** Initialises an empty set holding at most 'max' names (0: no limit). */
void fs_nameset_init(struct fs_nameset *s, size_t max);
/** Frees every name; the set is empty and unusable until init. */
void fs_nameset_release(struct fs_nameset *s);
/** Adds a copy of 'name': 1 if added, 0 if present, -ENOSPC, -ENOMEM. */
int fs_nameset_add(struct fs_nameset *s, const char *name);
/** Removes 'name'; true if it was there. */
bool fs_nameset_remove(struct fs_nameset *s, const char *name);
bool fs_nameset_has(struct fs_nameset *s, const char *name);
size_t fs_nameset_count(struct fs_nameset *s);
/**
 * Whether the set holds any name, without taking the lock: the fast path
 * of a caller that looks a name up only when the set is not empty.  A name
 * added before, under the same per-name lock the caller holds, is seen; a
 * change by another thread may be seen late, which only costs (or saves) a
 * locked look for a name that is not its own.  Any thread.
 */
bool fs_nameset_any(struct fs_nameset *s);

#endif /* FS_NAMESET_H */
