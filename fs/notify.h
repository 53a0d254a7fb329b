/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * systemd supervision (Type=notify) without libsystemd: the sd_notify
 * protocol is one datagram of "KEY=VALUE" lines sent to the unix socket
 * named by $NOTIFY_SOCKET (a path, or an abstract name written with a
 * leading '@').  Outside systemd (no $NOTIFY_SOCKET) every call here does
 * nothing.
 *
 * What the daemon says, and when (docs/DESIGN.md, "Supervision"):
 *
 *   READY=1      once the mount answers: a thread stats the mountpoint
 *                until the stat is served by our own layer (its st_dev is
 *                the device of the layer we mounted), so the kernel mount
 *                exists and a request made the round trip through the
 *                loop.  Sent with the first STATUS=.
 *   STATUS=      "mode M" (and whether the legacy reads have ended), again
 *                at every run-time mode change (ctl.c).
 *   WATCHDOG=1   when $WATCHDOG_USEC is set (and $WATCHDOG_PID, if set, is
 *                ours), every half interval while the daemon serves: a
 *                self-stat of the mountpoint was answered, or the loop
 *                wrote replies since the last check (a Redis outage keeps
 *                them coming: its calls fail with EIO after redis_timeout,
 *                and the root's GETATTR never asks Redis), or, when the
 *                mountpoint no longer leads to our layer (a lazy unmount
 *                finishing), no request is waiting for its reply.
 *   STOPPING=1   when the loop has ended (unmounted, or a signal).
 *
 * Call order (main thread):
 *
 *   fs_notify_init();               in main(), before any thread
 *   fuse_session_mount(); fuse_daemonize(foreground);
 *   fs_notify_start(fs, dev);       READY and the watchdog from a thread
 *   fuse_session_loop_mt();
 *   fs_notify_stopping();
 *   fuse_session_unmount();
 *   fs_notify_stop();               joins the threads
 *
 * fs_notify_status() may be called from any thread at any time.
 */
#ifndef FS_NOTIFY_H
#define FS_NOTIFY_H

#include <stdbool.h>
#include <sys/types.h>

struct fs;

/**
 * Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID and removes them
 * from the environment (no child process, fusermount3 say, may speak for
 * us).  Returns true when systemd listens.  Call once, single-threaded.
 */
bool fs_notify_init(void);

/**
 * Sends 'fmt' (newline-separated KEY=VALUE lines) as one datagram to
 * systemd.  Returns 0 (also when systemd does not listen) or -errno.
 * Thread-safe.
 */
int fs_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/**
 * Starts the supervisor of the mount on fs->cfg.mountpoint whose layer is
 * the device 'dev' (fs_mountpt.dev; 0: unknown, any answer counts):
 * READY=1 once the mount answers, then
 * WATCHDOG=1 while it serves.  Call after fuse_daemonize() (threads do not
 * survive its fork).  0 (also when systemd does not listen) or -errno.
 */
int fs_notify_start(struct fs *fs, dev_t dev);

/** Sends STATUS= with the current mode; nothing before READY=1. */
void fs_notify_status(struct fs *fs);

/** Sends STOPPING=1: the loop has ended. */
void fs_notify_stopping(void);

/**
 * Stops the supervisor's threads, after fuse_session_unmount() (a
 * self-stat in flight ends when the connection does).  A thread stuck in
 * the kernel for 2 s is left running, detached.
 */
void fs_notify_stop(void);

#endif /* FS_NOTIFY_H */
