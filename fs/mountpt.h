/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The mountpoint and the lower dir under it, across crashes (DESIGN.md,
 * "Crash restart").  A daemon killed with SIGKILL leaves its FUSE layer
 * answering ENOTCONN, so the application never sees the stale lower files
 * (we never use auto_unmount).  To reach the lower dir again without
 * removing that layer, the daemon never opens the lower dir through the
 * mountpoint: it opens it through a bind mount of the mountpoint's
 * directory at /run/sessfs/<id>/lower, made before the first FUSE mount
 * and kept by the kernel after the daemon died.  <id> is 16 hex digits of
 * the 64-bit FNV-1a hash of the absolute mountpoint path (m->mountpoint),
 * as the control socket's /run/sessfs/<id>.sock.
 *
 * Propagation.  On a host where '/' is shared (systemd), a bind that is not
 * private would receive the FUSE mount made on the mountpoint and show it
 * instead of the lower files; so the bind is made MS_PRIVATE before any
 * FUSE mount.  /run/sessfs itself is a private bind onto itself (made once
 * and kept, like iproute2's /run/netns), so that the lower binds under it
 * never propagate into other mount namespaces.  /run/sessfs and
 * /run/sessfs/<id> are mode 0700, owned by root.
 *
 * One daemon per mountpoint.  fs_mountpt_prepare() takes an exclusive
 * flock on the directory /run/sessfs/<id> and holds it until
 * fs_mountpt_release() (across fuse_daemonize(): the child inherits it).
 * The kernel drops it when the daemon dies, so a held lock means a live
 * daemon.  The directory is removed only when no sessfs layer is left on
 * the mountpoint, so a daemon serving a layer always holds the lock of the
 * current directory.
 *
 * Layers.  Every sessfs mount on the mountpoint is a "layer"
 * (fstype fuse.sessfs in /proc/self/mountinfo); a restart stacks a new
 * layer on the dead one.  Only the top layer can be asked whether it is
 * dead (stat gives ENOTCONN); the ones below are "covered".  Which mount
 * is on top comes from the mount id of an O_PATH open of the path, which
 * asks no filesystem, not from the order of mountinfo (a namespace may
 * list a mount at the same path hidden under another one).
 *
 * Call order in the daemon (single-threaded, before and after the loop):
 *
 *   fs_mountpt_init(&m);
 *   fs_mountpt_prepare(&m, mountpoint, ...);   lower_fd is usable now
 *                                      (the caller may steal it: set -1)
 *   ... other checks; on failure: fs_mountpt_rollback(), release ...
 *   fs_mountpt_mount_arg(&m, fsname, allow_other, ...);
 *   fuse_session_mount(se, m.fuse_mnt_arg);   then fs_mountpt_mounted(&m)
 *   fuse_daemonize(); fuse_session_loop_mt();
 *   fuse_session_unmount(se);
 *   fs_mountpt_cleanup_after_unmount(&m, ...);
 *   fuse_session_destroy(se);
 *   fs_mountpt_release(&m);
 *
 * Other processes (sessfs -u, sessfs --status) use fs_mountpt_unmount_all(),
 * fs_mountpt_layers() and fs_mountpt_print_status() alone; the daemon may
 * call fs_mountpt_layers() on its own mountpoint from any thread (it
 * never asks the FUSE mount while the lock is held).  Mounting needs root
 * (CAP_SYS_ADMIN); everything acts in the caller's mount namespace; the
 * functions that take a struct fs_mountpt are not thread-safe.
 */
#ifndef FS_MOUNTPT_H
#define FS_MOUNTPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#define FS_MOUNTPT_RUN_DIR "/run/sessfs"
#define FS_MOUNTPT_FSTYPE  "fuse.sessfs"

/** One daemon's view of its mountpoint; see fs_mountpt_init(). */
struct fs_mountpt {
	char *mountpoint; /* absolute, symlinks resolved */
	char *run_dir; /* /run/sessfs/<id> */
	char *bind; /* /run/sessfs/<id>/lower: the lower dir */
	int lower_fd; /* lower dir, opened through 'bind'; owned */
	bool restart; /* a dead sessfs layer is on the mountpoint */
	int fuse_fd; /* restart: our /dev/fuse fd, until mounted() */
	char *fuse_mnt_arg; /* for fuse_session_mount() */
	dev_t dev; /* our layer's device (st_dev) once mounted(); 0: unknown */

	/* Private. */
	int lock_fd; /* run_dir, flock()ed */
	int bind_mnt_id; /* mount id of 'bind' as opened, or -1 */
	int fuse_mnt_id; /* restart: mount id of our own layer, or -1 */
	/*
	 * ... and its device: a mount id is reused as soon as it is free, so
	 * only id and device together tell our layer from a newer mount.
	 */
	unsigned int fuse_major, fuse_minor;
	bool made_bind; /* prepare() made 'bind' (not a restart) */
};

/** Layer count of a mountpoint, for `sessfs --status`. */
struct fs_mountpt_layers {
	unsigned int total; /* fuse.sessfs mounts stacked on the mountpoint */
	unsigned int covered; /* of those, under another mount */
	bool top_sessfs; /* the visible mount is a sessfs layer */
	bool top_dead; /* ...and it answers ENOTCONN */
	bool bind; /* /run/sessfs/<id>/lower is mounted */
};

/** Empties 'm' (no fds, no strings); fs_mountpt_release() is then safe. */
void fs_mountpt_init(struct fs_mountpt *m);

/**
 * Finds out how to mount sessfs on 'mountpoint' and opens the lower dir,
 * without mounting FUSE.  'm' must be freshly initialised.
 *
 * No sessfs layer on the mountpoint: the normal path.  Binds the
 * mountpoint's directory to m->bind (a stale bind there is replaced),
 * makes it private, opens m->lower_fd from it; m->restart is false.
 *
 * A dead sessfs layer on top (stat gives ENOTCONN): the restart path.
 * Opens m->lower_fd from the bind the dead daemon left and checks that it
 * is the directory under the layers; m->restart is true.  Without that
 * bind it refuses (-ENOENT): the lower dir cannot be reached without
 * exposing it to the application.
 *
 * Refused as well: not root (-EPERM); another sessfs holds the lock or
 * serves the mountpoint (-EBUSY); a sessfs layer covered by another mount,
 * a dead mount of another filesystem, a mountpoint that is not a directory.
 *
 * Returns 0, or -errno with a one-line reason in 'err' ('errlen' bytes, no
 * trailing newline, e.g. "another sessfs still runs on '/srv/s' (it holds
 * '/run/sessfs/0123456789abcdef')").  On failure nothing is left mounted
 * or created by this call except /run/sessfs and its self-bind; call
 * fs_mountpt_release() in either case.
 */
int fs_mountpt_prepare(struct fs_mountpt *m, const char *mountpoint, char *err,
		       size_t errlen);

/**
 * Sets m->fuse_mnt_arg, the string to pass to fuse_session_mount().
 *
 * Normal path: a copy of m->mountpoint; libfuse mounts.
 *
 * Restart path: opens /dev/fuse, mount(2)s a new fuse.sessfs layer over the
 * dead one with source 'fsname' (the URL without its password), options
 * "fd=N,rootmode=40000,user_id=U,group_id=G,default_permissions" plus
 * ",allow_other" if 'allow_other', and the per-mount flags of the dead
 * layer (nosuid, nodev, noexec, ro, atime flags: a restart replaces the
 * layer like for like).  fuse_mnt_arg is "/dev/fd/N": libfuse then skips
 * its own mount and path checks (which fail on ENOTCONN).  Until the loop
 * answers INIT, any access to the mountpoint blocks.
 *
 * Returns 0, or -errno with a reason in 'err'.  After a failure nothing new
 * is mounted.
 */
int fs_mountpt_mount_arg(struct fs_mountpt *m, const char *fsname,
			 bool allow_other, char *err, size_t errlen);

/**
 * Tells 'm' that fuse_session_mount(se, m->fuse_mnt_arg) returned 0: on the
 * restart path the session now owns m->fuse_fd (fuse_session_destroy()
 * closes it), so m forgets it.  Sets m->dev to our layer's device (the top
 * mount now, on the normal path), from mountinfo: no request is sent.
 */
void fs_mountpt_mounted(struct fs_mountpt *m);

/**
 * Undoes a start that failed after fs_mountpt_prepare(), leaving the
 * mountpoint as it was found: on the restart path it detaches the layer
 * mount_arg() made (the dead layer stays, so the mountpoint keeps
 * answering ENOTCONN; the bind stays for the next try); on the normal path
 * it removes the bind it made, once no sessfs layer is on the mountpoint
 * (call fuse_session_unmount() first if libfuse had mounted).  0 or
 * -errno with a reason in 'err'.
 */
int fs_mountpt_rollback(struct fs_mountpt *m, char *err, size_t errlen);

/**
 * After the daemon's loop ended and fuse_session_unmount() ran (so the
 * normal path's layer is gone; before fuse_session_destroy()): detaches our
 * own layer if it is still mounted (restart path, loop ended by a signal),
 * then every dead sessfs layer that is now on top, top down, and, when no
 * sessfs layer is left on the mountpoint, the bind (only if it is still
 * the one we opened: a newer daemon may have made its own) and
 * /run/sessfs/<id>.  So `fusermount3 -u` of the top layer leaves the plain
 * files, not a dead layer.  A live sessfs layer on top (another daemon)
 * stops it: that daemon owns the rest.  Returns 0, or -errno with a reason
 * in 'err' (the first failure; it goes on with what it can do).
 */
int fs_mountpt_cleanup_after_unmount(struct fs_mountpt *m, char *err,
				     size_t errlen);

/**
 * Removes every fuse.sessfs layer on 'mountpoint', top down, each with
 * umount2(MNT_DETACH) (a live daemon's open files keep working until
 * closed, new opens see the layer below: what a rollback with the
 * application still running needs; that daemon exits when its last file
 * is closed), then the bind and /run/sessfs/<id>.  Refuses (-EBUSY) if a
 * sessfs layer is covered by another mount.  Nothing mounted: 0.  Returns
 * 0, or -errno with a reason in 'err'.  'unmounted', if not NULL, gets the
 * number of layers removed.
 */
int fs_mountpt_unmount_all(const char *mountpoint, unsigned int *unmounted,
			   char *err, size_t errlen);

/**
 * Counts the sessfs layers on 'mountpoint' into 'out' from
 * /proc/self/mountinfo.  top_dead comes from stat() of the mountpoint,
 * which is skipped (top alive) while a daemon holds the mountpoint's lock:
 * a stopped daemon does not hang the caller, and the daemon itself may
 * ask.  Needs no root (without it the lock cannot be seen: stat is used).
 * Returns 0, or -errno (-ENOENT: no such directory).  Thread-safe.
 */
int fs_mountpt_layers(const char *mountpoint, struct fs_mountpt_layers *out);

/**
 * Prints the layers of 'mountpoint' to 'out' for `sessfs --status`, one
 * "key: value" line each:
 *
 *   mountpoint: /srv/sessions
 *   layers: 2            fuse.sessfs mounts stacked there
 *   top: alive           alive, dead, other (a mount of another type
 *                        covers the layers) or none (no layer)
 *   covered: 1           layers under the top one
 *   bind: /run/sessfs/0123456789abcdef/lower     or "none"
 *
 * Returns 0, or -errno with a reason in 'err'.
 */
int fs_mountpt_print_status(const char *mountpoint, FILE *out, char *err,
			    size_t errlen);

/**
 * Closes lower_fd, the lock and an fuse_fd that was not handed over, and
 * frees the strings; unmounts nothing.  'm' is then as after
 * fs_mountpt_init().
 */
void fs_mountpt_release(struct fs_mountpt *m);

#endif /* FS_MOUNTPT_H */
