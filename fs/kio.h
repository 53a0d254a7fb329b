/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon's reads and writes of /dev/fuse (libfuse's custom I/O hook).
 *
 * They are plain read(2) and writev(2), with one change to the reply to
 * the kernel's INIT: libfuse 3.14 (Debian 12) never passes
 * FUSE_CAP_PARALLEL_DIROPS on to the kernel, even when the filesystem asks
 * for it, so the kernel serialises every LOOKUP of our one directory: a
 * lookup waiting for Redis holds up all the others (N lookups during an
 * outage took N * redis_timeout).  We set FUSE_PARALLEL_DIROPS in that
 * reply ourselves when the kernel offered it.  Our lookups and readdirs
 * are safe in parallel: each name has its own stripe lock.
 */
#ifndef FS_KIO_H
#define FS_KIO_H

#include <stdbool.h>
#include <stdint.h>

struct fuse_session;

/**
 * Installs the hook on a mounted session (after fuse_session_mount(),
 * before the loop).  Returns 0 or -errno; without it the session works,
 * only with serialised lookups.
 */
int fs_kio_install(struct fuse_session *se);

/** True once the kernel has accepted parallel lookups (for --status). */
bool fs_kio_parallel_dirops(void);

/**
 * The loop's progress so far, for the watchdog (notify.c): requests read
 * that expect a reply (not FORGET, BATCH_FORGET, INTERRUPT, NOTIFY_REPLY)
 * and replies written.  Any thread.
 */
void fs_kio_progress(uint64_t *requests, uint64_t *replies);

#endif /* FS_KIO_H */
