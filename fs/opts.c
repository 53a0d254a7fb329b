/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The mount options that are plain values, checked and converted; see
 * opts.h.  The messages are main.c's, word for word: test_cli.py and
 * the man page's users read them.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "opts.h"
#include "shadow.h"

/* Formats one error line into 'err'; returns -EINVAL. */
static int __attribute__((format(printf, 3, 4)))
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!errlen)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/*
 * A positive number (a whole one with 'integer') of at most 1e12 in 's',
 * the value of option 'name', into '*out'.  0 or -EINVAL.
 */
static int parse_positive(const char *name, const char *s, double *out,
			  bool integer, char *err, size_t errlen)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	/* The bound before the cast: a double past long long's range is UB. */
	if (errno || end == s || *end || !(v > 0) || !isfinite(v) || v > 1e12 ||
	    (integer && v != (long long)v))
		return fail(err, errlen,
			    "invalid %s '%s': expected a positive %s", name, s,
			    integer ? "whole number" : "number");
	*out = v;
	return 0;
}

/* The plain values, in the order main.c checked them. */
static int parse_values(const struct fs_opts *in, struct fs_opt_values *out,
			char *err, size_t errlen)
{
	const char *layout = in->layout ? in->layout : "plain";
	const char *mode = in->mode ? in->mode : "redis-only";
	double v;

	if (fs_mode_parse(mode, &out->mode) < 0)
		return fail(
			err, errlen,
			"invalid mode '%s' (files, dual-write, redis-first or redis-only)",
			mode);
	if (in->legacy_reads_until &&
	    fs_legacy_parse_until(in->legacy_reads_until,
				  &out->legacy_until_ns) < 0)
		return fail(
			err, errlen,
			"invalid legacy_reads_until '%s' (YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS], UTC unless Z or +HH:MM follows)",
			in->legacy_reads_until);
	if (in->shadow && fs_shadow_parse(in->shadow, &out->shadow_percent) < 0)
		return fail(
			err, errlen,
			"invalid shadow '%s' (a percent of the reads, 0 to 100)",
			in->shadow);
	if (in->cache && strcmp(in->cache, "tracking") != 0 &&
	    strcmp(in->cache, "off") != 0)
		return fail(err, errlen, "invalid cache '%s' (tracking or off)",
			    in->cache);

	if (strcmp(layout, "plain") == 0) {
		out->layout = BE_LAYOUT_PLAIN;
		out->prefix = in->prefix ? in->prefix : "sessfs:";
	} else if (strcmp(layout, "phpredis") == 0) {
		out->layout = BE_LAYOUT_PHPREDIS;
		out->prefix = in->prefix ? in->prefix : BE_PHPREDIS_PREFIX;
	} else {
		return fail(err, errlen,
			    "invalid layout '%s' (plain or phpredis)", layout);
	}
	if (be_prefix_check(out->prefix) < 0)
		return fail(
			err, errlen,
			"invalid prefix '%s': it must not contain '{', '}' or a newline",
			out->prefix);

	out->ttl_s = BE_DEFAULT_TTL;
	if (in->ttl) {
		if (parse_positive("ttl", in->ttl, &v, true, err, errlen) < 0)
			return -EINVAL;
		out->ttl_s = (int64_t)v;
	}
	if (in->ttl_from) {
		if (strcmp(in->ttl_from, "none") == 0)
			out->ignore_cachelib = true;
		else if (strcmp(in->ttl_from, "cachelib") != 0)
			return fail(err, errlen,
				    "invalid ttl_from '%s' (none or cachelib)",
				    in->ttl_from);
	}
	out->max_size = BE_DEFAULT_MAX_SIZE;
	if (in->max_size) {
		if (parse_positive("max_size", in->max_size, &v, true, err,
				   errlen) < 0)
			return -EINVAL;
		if (v > FS_OPTS_MAX_SIZE_LIMIT)
			return fail(
				err, errlen,
				"invalid max_size '%s': at most 67108864 bytes",
				in->max_size);
		out->max_size = (size_t)v;
	}
	out->redis_timeout = 5.0;
	if (in->redis_timeout) {
		if (parse_positive("redis_timeout", in->redis_timeout, &v,
				   false, err, errlen) < 0)
			return -EINVAL;
		out->redis_timeout = v;
	}
	if (in->lock_lease) {
		if (parse_positive("lock_lease", in->lock_lease, &v, false, err,
				   errlen) < 0)
			return -EINVAL;
		if (v < 0.3)
			return fail(
				err, errlen,
				"invalid lock_lease '%s': at least 0.3 seconds",
				in->lock_lease);
		out->lock_lease_ms = (int64_t)(v * 1000);
	}
	out->state_dir = in->state_dir ? in->state_dir : "/var/lib/sessfs";
	out->ctl_dir = in->ctl_dir ? in->ctl_dir : "/run/sessfs";
	if (out->ctl_dir[0] != '/')
		return fail(err, errlen,
			    "invalid ctl_dir '%s': it must be an absolute path",
			    out->ctl_dir);
	if (out->state_dir[0] != '/')
		return fail(
			err, errlen,
			"invalid state_dir '%s': it must be an absolute path",
			out->state_dir);
	return 0;
}

int fs_opts_parse(const struct fs_opts *in, struct fs_opt_values *out,
		  char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (errlen)
		err[0] = '\0';
	return parse_values(in, out, err, errlen);
}

int fs_opts_durability(const char *d, double redis_timeout, int *replicas,
		       int *wait_ms, char *err, size_t errlen)
{
	long n = 1;
	char *end;

	*replicas = 0;
	*wait_ms = 0;
	if (!d || strcmp(d, "none") == 0)
		return 0;
	if (strncmp(d, "replica", 7) != 0 || (d[7] && d[7] != ':'))
		return fail(
			err, errlen,
			"invalid durability '%s' (none, replica or replica:N)",
			d);
	if (d[7] == ':') {
		errno = 0;
		n = strtol(d + 8, &end, 10);
		if (errno || end == d + 8 || *end || n < 1 || n > 100)
			return fail(
				err, errlen,
				"invalid durability '%s': N is a number of replicas, 1 to 100",
				d);
	}
	*replicas = (int)n;
	/*
	 * redis_timeout goes up to 1e12 s: cap before the conversion, which
	 * is undefined for a value an int cannot hold (fuzz_opts).
	 */
	if (redis_timeout * 1000 / 2 >= INT_MAX)
		*wait_ms = INT_MAX;
	else
		*wait_ms = (int)(redis_timeout * 1000 / 2);
	if (*wait_ms < 1)
		*wait_ms = 1;
	return 0;
}

/* Reads exactly 'n' digits at '*p' into '*v'; false if not there. */
static bool digits(const char **p, int n, int *v)
{
	int i;

	*v = 0;
	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return false;
		*v = *v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	return true;
}

/* Reads 'c' at '*p'; false if something else is there. */
static bool skip(const char **p, char c)
{
	if (**p != c)
		return false;
	(*p)++;
	return true;
}

int fs_legacy_parse_until(const char *s, int64_t *ns)
{
	struct tm tm = { 0 }, back;
	int y, mo, d, h = 0, mi = 0, sec = 0, oh = 0, om = 0, sign = 0;
	const char *p = s;
	time_t t;

	if (!digits(&p, 4, &y) || !skip(&p, '-') || !digits(&p, 2, &mo) ||
	    !skip(&p, '-') || !digits(&p, 2, &d))
		return -EINVAL;
	if (*p == 'T' || *p == ' ') {
		p++;
		if (!digits(&p, 2, &h) || !skip(&p, ':') || !digits(&p, 2, &mi))
			return -EINVAL;
		if (skip(&p, ':') && !digits(&p, 2, &sec))
			return -EINVAL;
		if (*p == 'Z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			sign = *p++ == '+' ? 1 : -1;
			if (!digits(&p, 2, &oh))
				return -EINVAL;
			skip(&p, ':');
			if (!digits(&p, 2, &om) || oh > 23 || om > 59)
				return -EINVAL;
		}
	}
	if (*p || y < 1970 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 ||
	    sec > 59)
		return -EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	/* timegm() moves 2027-02-30 to March: refuse what moved. */
	if (t == (time_t)-1 || !gmtime_r(&t, &back) || back.tm_mday != d ||
	    back.tm_mon != mo - 1)
		return -EINVAL;
	t -= sign * (oh * 3600 + om * 60);
	/*
	 * Nanoseconds in an int64_t end in April 2262: a later date
	 * overflowed the product (fuzz_opts, corpus/opts/crash-year-4054).
	 */
	if (t > INT64_MAX / 1000000000LL)
		return -EINVAL;
	*ns = (int64_t)t * 1000000000LL;
	return 0;
}
