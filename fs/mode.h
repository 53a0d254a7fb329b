/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The migration modes and their rules, in one place (DESIGN.md, "Modes"):
 * names, the guards a step must pass, what a step does to the files
 * underneath and to host-local names, and which store each mode reads and
 * writes.  Everything here is pure and thread-safe: the facts a guard
 * needs (journal, markers, whether the lower dir is current) are gathered
 * by the caller (modeswitch.c for a mount, the fleet follower for a fleet
 * step), so the rules can be tested without a mount.
 *
 * The order of the enum is the order of a migration; a step is one move
 * along it, and code compares modes with < and >.
 */
#ifndef FS_MODE_H
#define FS_MODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The migration modes, in the order a migration goes through them. */
enum fs_mode {
	FS_MODE_FILES = 0,
	FS_MODE_DUAL_WRITE,
	FS_MODE_REDIS_FIRST,
	FS_MODE_REDIS_ONLY,
};

#define FS_MODE_COUNT 4

/** The mode's name ("files", "dual-write", ...); static storage. */
const char *fs_mode_name(enum fs_mode mode);

/** Parses a mode name into '*mode'; 0, or -EINVAL when 's' names none. */
int fs_mode_parse(const char *s, enum fs_mode *mode);

/** Whether the files underneath are the authoritative store ('mode'). */
bool fs_mode_lower_authoritative(enum fs_mode mode);

/** Whether 'mode' reads or writes Redis (every mode but files). */
bool fs_mode_uses_redis(enum fs_mode mode);

/** Whether 'mode' writes the files underneath (every mode but redis-only). */
bool fs_mode_uses_lower(enum fs_mode mode);

/**
 * Whether what Redis says of a session may be kept in memory between
 * requests (tracked lookups): only where Redis is the only store.
 */
bool fs_mode_may_track(enum fs_mode mode);

/**
 * What a mount knows when it weighs a step.  'verified' and 'files' are
 * the markers' times (ns; 0 when unset): the last clean verify of this
 * host's files underneath, and the last time a host entered or left
 * files.  'mount' names the mount in the advice of a refusal.
 */
struct fs_mode_facts {
	bool lower_current; /* the files underneath hold every session */
	bool journal_lower; /* names the lower dir is behind on */
	bool journal_redis; /* names Redis is behind on */
	size_t journal; /* names in the repair journal */
	int64_t verified;
	int64_t files;
	const char *mount;
};

/**
 * The guards of a step 'from' -> 'to' (DESIGN.md): 0 when it may go; else
 * -EPERM and, in 'why' (always NUL-terminated), the reason and what to run
 * first.  A step to the same mode passes.
 */
int fs_mode_guard(enum fs_mode from, enum fs_mode to,
		  const struct fs_mode_facts *facts, char *why, size_t whylen);

/**
 * Whether the files underneath hold every session after 'from' -> 'to',
 * given 'before' (they did before the step).
 */
bool fs_mode_lower_current_after(enum fs_mode from, enum fs_mode to,
				 bool before);

/**
 * Whether new host-local names (temps) live in memory in 'mode' rather
 * than in the lower dir: in the modes where Redis is authoritative, so an
 * unmount drops them instead of leaving them in the lower dir.
 */
bool fs_mode_locals_in_memory(enum fs_mode mode);

/**
 * Whether cachelib's count file lives in the lower dir in 'mode': in
 * files and dual-write like every host-local name, and in redis-first,
 * which keeps the lower dir current, so the unmount leaves the count it
 * showed.
 */
bool fs_mode_count_in_lower(enum fs_mode mode);

/** Which host-local names a step moves from memory to the lower dir. */
enum fs_mode_locals {
	FS_MODE_LOCALS_STAY = 0,
	FS_MODE_LOCALS_ALL, /* entering a mode that keeps them underneath */
	FS_MODE_LOCALS_COUNT, /* only cachelib's count file */
};

/** What 'from' -> 'to' does with host-local names (see the enum). */
enum fs_mode_locals fs_mode_locals_move(enum fs_mode from, enum fs_mode to);

/**
 * Whether 'from' -> 'to' begins or ends a files period: the "files"
 * marker is then set, so an earlier verify no longer counts.
 */
bool fs_mode_files_period_edge(enum fs_mode from, enum fs_mode to);

/**
 * The next mode on the way from 'from' to 'to', one step along the
 * migration order ('to' itself when adjacent or equal): how a mount that
 * follows a fleet moves, through each guard in turn.
 */
enum fs_mode fs_mode_step_toward(enum fs_mode from, enum fs_mode to);

#endif /* FS_MODE_H */
