/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The rules of the migration modes (mode.h): pure functions, shared by the
 * run-time mode change (modeswitch.c), the routing (route.c), the fleet
 * follower (fleet.c) and the unit test.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mode.h"

static const char *const names[FS_MODE_COUNT] = {
	[FS_MODE_FILES] = "files",
	[FS_MODE_DUAL_WRITE] = "dual-write",
	[FS_MODE_REDIS_FIRST] = "redis-first",
	[FS_MODE_REDIS_ONLY] = "redis-only",
};

const char *fs_mode_name(enum fs_mode mode)
{
	if ((unsigned int)mode >= FS_MODE_COUNT)
		return "redis-only"; /* never stored: the enum holds four */
	return names[mode];
}

int fs_mode_parse(const char *s, enum fs_mode *mode)
{
	unsigned int i;

	for (i = 0; s && i < FS_MODE_COUNT; i++) {
		if (strcmp(s, names[i]) == 0) {
			*mode = (enum fs_mode)i;
			return 0;
		}
	}
	return -EINVAL;
}

bool fs_mode_lower_authoritative(enum fs_mode mode)
{
	return mode <= FS_MODE_DUAL_WRITE;
}

bool fs_mode_uses_redis(enum fs_mode mode)
{
	return mode != FS_MODE_FILES;
}

bool fs_mode_uses_lower(enum fs_mode mode)
{
	return mode != FS_MODE_REDIS_ONLY;
}

bool fs_mode_may_track(enum fs_mode mode)
{
	return mode == FS_MODE_REDIS_ONLY;
}

bool fs_mode_locals_in_memory(enum fs_mode mode)
{
	return mode >= FS_MODE_REDIS_FIRST;
}

bool fs_mode_count_in_lower(enum fs_mode mode)
{
	return mode <= FS_MODE_REDIS_FIRST;
}

int fs_mode_guard(enum fs_mode from, enum fs_mode to,
		  const struct fs_mode_facts *facts, char *why, size_t whylen)
{
	const char *mnt = facts->mount ? facts->mount : "MOUNTPOINT";

	why[0] = '\0';
	if (from == FS_MODE_REDIS_ONLY && to <= FS_MODE_DUAL_WRITE) {
		snprintf(
			why, whylen,
			"in redis-only the sessions are only in redis: run 'sessfs-migrate mode redis-first --mount %s' and 'sessfs-migrate export --mount %s' first",
			mnt, mnt);
		return -EPERM;
	}
	if (from == FS_MODE_REDIS_FIRST && to <= FS_MODE_DUAL_WRITE &&
	    (!facts->lower_current || facts->journal_lower)) {
		snprintf(
			why, whylen,
			"the files underneath are not known to be current: run 'sessfs-migrate export --mount %s' first",
			mnt);
		return -EPERM;
	}
	if (from == FS_MODE_FILES && to >= FS_MODE_REDIS_FIRST) {
		snprintf(
			why, whylen,
			"from files, go through dual-write: run 'sessfs-migrate mode dual-write --mount %s', then copy and verify",
			mnt);
		return -EPERM;
	}
	if (from == FS_MODE_DUAL_WRITE && to >= FS_MODE_REDIS_FIRST) {
		if (facts->journal_redis) {
			snprintf(
				why, whylen,
				"redis is behind for %zu names (the repair journal is not empty): wait for the repair, see 'sessfs-migrate status --mount %s'",
				facts->journal, mnt);
			return -EPERM;
		}
		/*
		 * The verify must be this host's, of its own files underneath,
		 * and later than the last files period of any host: a host in
		 * files wrote only its own files, so Redis missed those writes.
		 */
		if (facts->verified <= facts->files) {
			snprintf(
				why, whylen,
				"no copy + verify of this host's files has completed since the last files period: run 'sessfs-migrate copy' and 'sessfs-migrate verify --mount %s' first",
				mnt);
			return -EPERM;
		}
	}
	return 0;
}

bool fs_mode_lower_current_after(enum fs_mode from, enum fs_mode to,
				 bool before)
{
	if (from == to)
		return before;
	if (to == FS_MODE_REDIS_ONLY)
		return false;
	/*
	 * Entering redis-first from a mode where the files were
	 * authoritative: they are current, and redis-first keeps them so.
	 * Leaving redis-only for redis-first: only an export makes them so.
	 */
	if (to == FS_MODE_REDIS_FIRST)
		return from <= FS_MODE_DUAL_WRITE ? true : before;
	return true;
}

enum fs_mode_locals fs_mode_locals_move(enum fs_mode from, enum fs_mode to)
{
	if (to <= FS_MODE_DUAL_WRITE && from >= FS_MODE_REDIS_FIRST)
		return FS_MODE_LOCALS_ALL;
	if (to == FS_MODE_REDIS_FIRST && from == FS_MODE_REDIS_ONLY)
		return FS_MODE_LOCALS_COUNT;
	return FS_MODE_LOCALS_STAY;
}

bool fs_mode_files_period_edge(enum fs_mode from, enum fs_mode to)
{
	return from != to && (from == FS_MODE_FILES || to == FS_MODE_FILES);
}

enum fs_mode fs_mode_step_toward(enum fs_mode from, enum fs_mode to)
{
	if (to > from)
		return (enum fs_mode)(from + 1);
	/*
	 * Down, redis-first may go straight to dual-write or files once the
	 * files underneath are current; redis-only must pass redis-first.
	 */
	if (to < from && from == FS_MODE_REDIS_ONLY)
		return FS_MODE_REDIS_FIRST;
	return to;
}
