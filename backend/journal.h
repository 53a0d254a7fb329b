/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The repair journal and the unmount manifest, both files under the
 * mount's state_dir (never in the session directory).
 *
 * Journal: the names whose copy in one store is behind the other (a write
 * to the non-authoritative store failed; or, in files mode, every changed
 * or deleted name, for Redis to catch up when files mode ends).  It lives
 * in memory (a hash from name to a bit set of stale stores) and on disk as
 * an append-only log of records, one per line:
 *
 *     <op> <stores> <name> <crc32 hex>\n      op: + (add) or - (done)
 *
 * The CRC covers "<op> <stores> <name>".  The log is rewritten compactly
 * (temp + rename) when it holds more than twice the live entries.  It is
 * bounded: at 'max_names' live names be_journal_add() fails with -ENOSPC
 * (the caller then fails the client's call rather than lose track).
 * Opening a journal with a corrupt or torn record keeps every name that
 * could still be read, reports the corruption ('*corrupt' set and a line
 * in 'err'), and the caller must re-verify those names and everything the
 * corrupt part may have held (all names of the mount) instead of trusting
 * them.  A record is written with one write(2) before be_journal_add()
 * returns: it survives a daemon crash, not a power loss.
 *
 * Manifest: at unmount, the names the lower dir holds and their mtimes;
 * at the next mount it tells which files were deleted or changed
 * underneath meanwhile (DESIGN.md, "Remount").
 *
 * Threading: a struct be_journal has its own lock; every function may be
 * called from any thread.
 */
#ifndef BACKEND_JOURNAL_H
#define BACKEND_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum be_journal_store {
	BE_J_REDIS = (1 << 0), /* Redis is behind for this name */
	BE_J_LOWER = (1 << 1), /* the lower dir is behind for this name */
};

struct be_journal;

/**
 * Opens (creating if needed, mode 0600) the journal at 'path' and loads
 * it.  Returns a new journal or NULL with a reason in 'err'.  '*corrupt'
 * is set when records were lost (see above); the journal is then usable
 * and already rewritten without the corrupt part.
 */
struct be_journal *be_journal_open(const char *path, size_t max_names,
				   bool *corrupt, char *err, size_t errlen);
void be_journal_free(struct be_journal *j);

/**
 * Marks 'stores' (BE_J_* bits) of 'name' as behind, persisting the record
 * first.  0, -ENOSPC when the journal is full, or -errno of the write.
 */
int be_journal_add(struct be_journal *j, const char *name, unsigned int stores);

/** Marks 'stores' of 'name' as repaired.  0 or -errno. */
int be_journal_done(struct be_journal *j, const char *name,
		    unsigned int stores);

/** The stores behind for 'name' (0 when none).  No I/O. */
unsigned int be_journal_get(struct be_journal *j, const char *name);

/** Number of names with at least one store behind. */
size_t be_journal_count(struct be_journal *j);

/**
 * Calls 'cb' for each name with its stores, on a snapshot (the callback
 * may call be_journal_done()).  0 or the callback's non-zero result.
 */
int be_journal_foreach(struct be_journal *j,
		       int (*cb)(const char *name, unsigned int stores,
				 void *arg),
		       void *arg);

/** One manifest entry. */
struct be_manifest_entry {
	const char *name;
	int64_t mtime_ns;
};

/**
 * Writes the manifest of the directory 'dirfd' (every regular file but
 * our temps, with its mtime) to 'path' atomically (temp + rename), with a
 * header line holding the time of writing.  0 or -errno.
 */
int be_manifest_write(const char *path, int dirfd);

/**
 * Reads the manifest at 'path', calling 'cb' per entry; '*written_ns'
 * gets the header's time.  0, -ENOENT when there is none, -EBADMSG when it
 * is corrupt (nothing may be trusted then), or -errno.
 */
int be_manifest_read(const char *path, int64_t *written_ns,
		     int (*cb)(const struct be_manifest_entry *e, void *arg),
		     void *arg);

/**
 * Parses the manifest text 'buf' of 'len' bytes as be_manifest_read()
 * does the file's (same results, no I/O).  'buf' must hold a NUL at
 * 'buf[len]' (read_file()'s buffers do); the lines are cut in place, so
 * the entries' names point into 'buf' during the callback.  Pure;
 * thread-safe on distinct buffers.
 */
int be_manifest_parse(char *buf, size_t len, int64_t *written_ns,
		      int (*cb)(const struct be_manifest_entry *e, void *arg),
		      void *arg);

#endif /* BACKEND_JOURNAL_H */
