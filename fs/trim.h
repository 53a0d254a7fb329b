/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The trimmer: makes the kernel forget the inodes it no longer uses.
 *
 * With entry timeouts of 0 a cached dentry saves nothing (every path walk
 * sends a LOOKUP anyway), yet it keeps its inode referenced, and with it
 * the daemon's struct fs_inode: after Debian's phpsessionclean walks a
 * directory of 1 M sessions, the daemon would hold 1 M inodes until the
 * kernel reclaims its caches.  Once a second, the trimmer asks the kernel
 * to invalidate the entries of inodes unused for FS_TRIM_IDLE_SEC (no
 * handle open, not host-local), beyond the FS_TRIM_KEEP most recently used;
 * the kernel then sends FORGET and the inodes are freed.
 *
 * It writes FUSE_NOTIFY_INVAL_ENTRY itself, on its own dup of the /dev/fuse
 * fd: it never touches the libfuse session, and the descriptor it writes
 * to cannot be closed (and reused for another file) under it.
 */
#ifndef FS_TRIM_H
#define FS_TRIM_H

struct fs;

#define FS_TRIM_IDLE_SEC 2
#define FS_TRIM_KEEP	 1024

/** Starts the trimmer on the mounted session's fd; 0 or -errno. */
int fs_trim_start(struct fs *fs, int fuse_fd);
/** Stops it (waits up to 2 s; a trimmer stuck in the kernel is left). */
void fs_trim_stop(void);

#endif /* FS_TRIM_H */
