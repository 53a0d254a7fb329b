/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Online backfill (sessfs-migrate copy --mount): a thread of the daemon
 * walks the lower dir under live traffic and copies each live session
 * into Redis with the store's COPYUP script, which writes only where
 * Redis holds neither a value nor a tombstone, or an older value.  Each
 * name is copied under its stripe (safety rule 1), so it is ordered with
 * every FUSE operation on that name: a write that lands before the copy
 * of its name is what the copy reads (and Redis already holds it, written
 * by dual-write), one that lands after overwrites the copy.
 *
 * The walk is the lower dir's names sorted bytewise; the last name done
 * is the cursor, saved (with the counts) in <state_dir>/<id>.backfill at
 * least once a second, at a pause and at the end, so a restarted daemon
 * (clean or after kill -9) resumes after it.  Names redone after a crash
 * are harmless: COPYUP finds them present.
 *
 * It runs in dual-write and redis-first only (there the lower dir holds
 * every current session of this host); in another mode, and while the
 * circuit breaker has Redis down, it waits, and status says why.
 *
 * Call order: fs_backfill_new() -> fs_backfill_start() (after the fork;
 * resumes a saved run) -> fs_backfill_command()... ->
 * fs_backfill_stop() -> fs_backfill_free().  The command and status
 * functions may be called from any thread.
 */
#ifndef FS_BACKFILL_H
#define FS_BACKFILL_H

#include <stdint.h>

struct fs;
struct fs_backfill;
struct json_t;

/** The counts of a run, for status and the metrics; see backfill.c. */
struct fs_backfill_counts {
	uint64_t total; /* names the run has (done + still to do) */
	uint64_t done; /* names handled */
	uint64_t copied; /* written into Redis */
	uint64_t existing; /* Redis held it as new or newer */
	uint64_t tombstone; /* deleted in Redis since: left deleted */
	uint64_t expired; /* expired files: not copied */
	uint64_t skipped; /* not a regular file, over max_size */
	uint64_t vanished; /* deleted by the app before its turn */
	uint64_t errors; /* read errors, Redis refusals (retried later) */
};

/** New, idle backfill state for 'fs'; NULL on ENOMEM. */
struct fs_backfill *fs_backfill_new(void);
/**
 * Loads a run saved by an earlier daemon of this mountpoint and starts
 * the thread (a saved running run goes on at once).  0 or -errno.
 */
int fs_backfill_start(struct fs *fs);
/** Ends the thread, saving the cursor; the run resumes at the next start. */
void fs_backfill_stop(struct fs *fs);
void fs_backfill_free(struct fs_backfill *b);
/**
 * Serves the control socket's {"cmd":"backfill"}: 'action' start (from
 * the beginning when idle or done, or with "restart"), pause, resume or
 * status; "rate" (sessions per second, 0 for no limit) with start, resume
 * or rate.  Returns a new reply object.
 */
struct json_t *fs_backfill_command(struct fs *fs, struct json_t *req);
/** The "backfill" object of status: a new reference. */
struct json_t *fs_backfill_status(struct fs *fs);
/**
 * Copies the counts into 'n' and returns the state name ("idle",
 * "running", "paused", "done").  Any thread.
 */
const char *fs_backfill_counts(struct fs *fs, struct fs_backfill_counts *n);

#endif /* FS_BACKFILL_H */
