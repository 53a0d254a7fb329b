/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The fleet follower of a mount (DESIGN.md, "Fleet"): every mount of a
 * prefix follows the desired mode that `sessfs-migrate mode --fleet` puts
 * in Redis (backend/fleet.h), through the same guards as a local change,
 * one step at a time (mode.h's fs_mode_step_toward()), and writes a
 * heartbeat with a TTL: host id, mode, desired mode and version, health,
 * journal depth, what blocks it, its answer to a fleet check.
 *
 * One thread, started after daemonizing, ticks every FS_FLEET_TICK_MS on
 * a Redis connection of its own (a Redis outage costs it, never a FUSE
 * worker).  A local `mode --mount` while a fleet request is in force is an
 * override: the mount keeps its mode until the next fleet request, and the
 * heartbeat says so.  A fleet rollback with the flag "unmount" ends in
 * files with the manifest written and every sessfs layer of the
 * mountpoint removed lazily (as `sessfs -u`): the loop then ends when the
 * last open file is closed, and the daemon exits 0.
 */
#ifndef FS_FOLLOWER_H
#define FS_FOLLOWER_H

#include <jansson.h>

struct fs;

#define FS_FLEET_TICK_MS 500
/* A heartbeat lives this long: a host silent for longer is down. */
#define FS_FLEET_TTL_MS 3000

/** Starts the follower thread.  0 or -errno.  Main thread. */
int fs_fleet_start(struct fs *fs);

/** Stops it (joins the thread); safe when not started. */
void fs_fleet_stop(struct fs *fs);

/**
 * Tells the follower that the mode was changed locally (ctl.c's mode):
 * an override of the fleet's request in force, if any.  Any thread.
 */
void fs_fleet_local_change(struct fs *fs);

/** The "fleet" object of status (new reference); NULL when not started. */
json_t *fs_fleet_status(struct fs *fs);

#endif /* FS_FOLLOWER_H */
