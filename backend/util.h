/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Small helpers every part of sessfs shares, once: the string hash, the
 * clocks and a whole write.  Pure or thin over one system call; no state.
 */
#ifndef BACKEND_UTIL_H
#define BACKEND_UTIL_H

#include <stddef.h>
#include <stdint.h>

/*
 * 64-bit FNV-1a of the string 's'.  The daemon's one name hash, and the
 * id of a mountpoint (its run dir, state files and control socket are
 * named by the hash of its absolute path: the daemon and sessfs-migrate
 * must agree on it, so both call this).
 */
uint64_t be_fnv1a64(const char *s);

/**
 * The control socket of the mount at 'mount' (its absolute path) in the
 * directory 'ctl_dir', "<ctl_dir>/<be_fnv1a64(mount) as 16 hex>.sock",
 * into 'buf' of 'size' bytes: the daemon listens there and
 * sessfs-migrate connects there, so both name it here.  0, or
 * -ENAMETOOLONG when it does not fit (a unix socket path must fit
 * sun_path: pass its size).
 */
int be_ctl_socket_path(char *buf, size_t size, const char *ctl_dir,
		       const char *mount);

/**
 * Formats the reason into 'err' of 'errlen' bytes (nothing when 'err' is
 * NULL or 'errlen' 0) and returns 'ret': `return be_fail(err, errlen,
 * -EINVAL, "bad %s", what);`.
 */
int be_fail(char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/** CLOCK_MONOTONIC in ns and in ms. */
int64_t be_mono_ns(void);
int64_t be_mono_ms(void);
/** CLOCK_REALTIME in ns since the epoch. */
int64_t be_real_ns(void);

/**
 * Writes all 'len' bytes of 'buf' to 'fd', again after EINTR and short
 * writes.  0, or -errno (-EIO when write() returned 0).
 */
int be_write_all(int fd, const void *buf, size_t len);

#endif
