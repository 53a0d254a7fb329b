/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The mount options that are plain values, checked and turned into
 * config in one pure function, so that tests/fuzz/fuzz_opts.c fuzzes
 * exactly what main.c runs on `-o mode=...,ttl=...,max_size=...`.
 *
 * main.c collects the option strings (libfuse's fuse_opt_parse()), calls
 * fs_opts_parse(), then does what touches the world (the URL, password
 * and TLS files, the state dir), then fs_opts_durability() (which needs
 * redis_timeout and comes after the URL, as it always did, so that the
 * first error a command line shows stays the same).  Neither function
 * prints: an error comes back as one line in 'err', which main.c prints
 * as "sessfs: <err>; see 'sessfs -h' for usage".
 *
 * Everything here is pure and thread-safe.
 */
#ifndef FS_OPTS_H
#define FS_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"
#include "mode.h"

/* The option strings as given; NULL when absent.  Zero-initialisable. */
struct fs_opts {
	const char *mode; /* NULL: redis-only */
	const char *legacy_reads_until;
	const char *shadow;
	const char *cache;
	const char *layout; /* NULL: plain */
	const char *prefix;
	const char *ttl;
	const char *ttl_from;
	const char *max_size;
	const char *redis_timeout;
	const char *lock_lease;
	const char *ctl_dir; /* NULL: /run/sessfs */
	const char *state_dir; /* NULL: /var/lib/sessfs */
};

/* What the options say, defaults filled in. */
struct fs_opt_values {
	enum fs_mode mode;
	int64_t legacy_until_ns; /* 0: no legacy_reads_until */
	unsigned int shadow_percent;
	enum be_layout layout;
	const char *prefix; /* the option's, or the layout's default (static) */
	int64_t ttl_s;
	bool ignore_cachelib; /* ttl_from=none */
	size_t max_size;
	double redis_timeout; /* seconds */
	int64_t lock_lease_ms; /* 0: not given (lock.h's default) */
	const char *ctl_dir; /* the option's or the default (static) */
	const char *state_dir; /* the option's or the default (static) */
};

/* Largest max_size: 64 MiB. */
#define FS_OPTS_MAX_SIZE_LIMIT (64 * 1024 * 1024)

/**
 * Checks the options 'in' in the order main.c always did and fills
 * '*out' (pointers in it point into 'in' or to static strings).  0, or
 * -EINVAL with the first problem in 'err' (one line, no newline, cut to
 * 'errlen'); '*out' is then partly filled.
 */
int fs_opts_parse(const struct fs_opts *in, struct fs_opt_values *out,
		  char *err, size_t errlen);

/**
 * Parses durability=none, replica or replica:N ('d' NULL: none) into
 * '*replicas' (0 for none) and '*wait_ms', the WAIT budget: half of
 * 'redis_timeout' seconds (the other half is the write's), at least 1.
 * 0, or -EINVAL with the reason in 'err'.
 */
int fs_opts_durability(const char *d, double redis_timeout, int *replicas,
		       int *wait_ms, char *err, size_t errlen);

/**
 * Parses the -o legacy_reads_until value 's': YYYY-MM-DD (00:00 UTC) or
 * YYYY-MM-DDTHH:MM[:SS] (a space for the 'T' too), UTC unless it ends in
 * 'Z' or an offset (+HH:MM, -HHMM).  0 with CLOCK_REALTIME ns in '*ns', or
 * -EINVAL.  (Here since the option split; lower.c uses the result.)
 */
int fs_legacy_parse_until(const char *s, int64_t *ns);

#endif /* FS_OPTS_H */
