/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Shadow reads (-o shadow=PERCENT): in dual-write the files underneath
 * answer every read and Redis is only written; on PERCENT of the reads of
 * a session's bytes Redis is read too and compared with what the files
 * gave (bytes and mtime), under the name's stripe, so no write through
 * this mount lands between the two reads.  A mismatch is read again from
 * both stores before it counts (another host's write to Redis, a file
 * changed underneath by hand); the counts and the consistency rate are in
 * status ("shadow") and in the metrics.  A name the repair journal says
 * Redis is behind for is not compared (that is known, and repaired), nor
 * a file expired by the TTL (Redis may have expired it already).
 * verify --mount stays the full check.
 *
 * Threading: fs_shadow_read() runs on FUSE threads with the stripe held;
 * the counters are atomics.
 */
#ifndef FS_SHADOW_H
#define FS_SHADOW_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

struct fs;
struct be_file;
struct json_t;

/** What the shadow reads found, since the mount. */
struct fs_shadow_counts {
	uint64_t compared; /* shadow reads that compared */
	uint64_t consistent; /* Redis held what the files gave */
	uint64_t differ; /* a value with other bytes or mtime, twice */
	uint64_t missing; /* no value in Redis (not copied yet), twice */
	uint64_t cleared; /* a first mismatch the re-check did not confirm */
	uint64_t errors; /* Redis did not answer: nothing compared */
};

/**
 * Parses -o shadow's 'value' (an integer percent, 0 to 100) into
 * '*percent'; 0 or -EINVAL.  Pure (inline: tests/unit/test_shadow.c).
 */
static inline int fs_shadow_parse(const char *value, unsigned int *percent)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(value, &end, 10);
	if (!*value || *end || errno || v < 0 || v > 100 || value[0] == '+' ||
	    value[0] == ' ')
		return -EINVAL;
	*percent = (unsigned int)v;
	return 0;
}

/**
 * Whether the 'nth' read (counting from 0) is one of 'percent' in 100 to
 * shadow: evenly spread, exactly 'percent' of every 100 consecutive ones
 * (read nth is taken when it makes nth * percent / 100 step up).  Pure.
 */
static inline bool fs_shadow_sample(uint64_t nth, unsigned int percent)
{
	/* The pattern repeats every 100 reads: no overflow for a large nth. */
	uint64_t k = nth % 100;

	return ((k + 1) * percent) / 100 != (k * percent) / 100;
}
/**
 * After the lower dir answered a read of the bytes of session 'name' with
 * 'lower' in dual-write (no repair pending for it): compares with Redis
 * when this read is sampled.  Caller holds the stripe of 'name'.
 */
void fs_shadow_read(struct fs *fs, const char *name,
		    const struct be_file *lower);
/** Copies the counters into 'n'.  Any thread. */
void fs_shadow_counts(struct fs *fs, struct fs_shadow_counts *n);
/** The "shadow" object of status: a new reference. */
struct json_t *fs_shadow_status(struct fs *fs);

#endif /* FS_SHADOW_H */
