/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The lower dir as a store: the session directory underneath the mount,
 * reached through a directory fd opened before mounting.  Used by the
 * mount in the modes that keep it current (files, dual-write,
 * redis-first), by legacy reads, and by sessfs-migrate export.
 *
 * Rules: never follow a symlink (openat O_NOFOLLOW, fstat on the opened
 * fd, AT_SYMLINK_NOFOLLOW); only regular files are sessions; a write is
 * atomic for every reader (a temp file in the same directory, written,
 * given owner, mode and mtime, then renameat over the name); the temps are
 * named BE_LOWER_TEMP_PREFIX + anything, never listed, never visible
 * through the mount, and removed by be_lower_cleanup() at start.  No call
 * fsyncs (the clients never do; a daemon crash loses nothing written).
 *
 * Threading: every function may be called from any thread.
 */
#ifndef BACKEND_LOWERSTORE_H
#define BACKEND_LOWERSTORE_H

#include <stdbool.h>
#include <stddef.h>

#include "store.h"

#define BE_LOWER_TEMP_PREFIX ".sessfs-tmp."

/** True for a name of our own temp files. */
bool be_lower_is_temp(const char *name);

/**
 * Reads 'name' from the directory 'dirfd'.  On 0, 'f' is PRESENT (size;
 * meta: mtime, ctime, uid, gid, mode from fstat; has_meta true; pttl_ms
 * -1; the bytes when 'want_data') or ABSENT (no such name).  A name that
 * is not a regular file (symlink, directory, fifo) gives -EINVAL; a file
 * over 'max_size' bytes -EFBIG; other errors -errno (EIO, EACCES).  A file
 * that shrinks while read gives -EAGAIN.
 */
int be_lower_get(int dirfd, const char *name, size_t max_size, bool want_data,
		 struct be_file *f);

/**
 * Atomically replaces (or creates) 'name' with 'len' bytes of 'data',
 * owner meta->uid/gid, mode meta->mode, mtime meta->mtime_ns (atime the
 * same).  0, or -errno (-ENOSPC, -EDQUOT, -EROFS, -EACCES, ...) with the
 * temp removed and 'name' untouched.
 */
int be_lower_put(int dirfd, const char *name, const void *data, size_t len,
		 const struct be_meta *meta);

/** Removes 'name': 0, -ENOENT, or -errno.  Refuses (-EISDIR) a directory. */
int be_lower_delete(int dirfd, const char *name);

/**
 * Sets owner, mode and mtime of the existing regular file 'name' to those
 * of 'meta' without following a symlink.  0, -ENOENT, or -errno.
 */
int be_lower_setmeta(int dirfd, const char *name, const struct be_meta *meta);

/**
 * Renames 'from' to 'to' inside the directory (renameat; 'noreplace' uses
 * RENAME_NOREPLACE).  0 or -errno.
 */
int be_lower_rename(int dirfd, const char *from, const char *to,
		    bool noreplace);

/**
 * Calls 'cb' with state BE_PRESENT for each regular file of the directory
 * (d_type, or fstatat when DT_UNKNOWN), skipping our temps, "." and "..".
 * 0, the callback's non-zero result, or -errno.
 */
int be_lower_list(int dirfd, be_list_cb cb, void *arg);

/** Removes our leftover temps; returns how many, or -errno. */
int be_lower_cleanup(int dirfd);

#endif /* BACKEND_LOWERSTORE_H */
