/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of fs/opts.c, the mount options that are plain values:
 * defaults, the checks and their messages (main.c prints them as they
 * are), durability's WAIT budget, and the dates of legacy_reads_until,
 * with what fuzz_opts found.  Pure: no mount, no Redis.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "opts.h"
#include "testutil.h"

static void test_defaults(void)
{
	struct fs_opts in = { 0 };
	struct fs_opt_values v;
	char err[256];

	CHECK(fs_opts_parse(&in, &v, err, sizeof(err)) == 0);
	CHECK(v.mode == FS_MODE_REDIS_ONLY);
	CHECK(v.layout == BE_LAYOUT_PLAIN && !strcmp(v.prefix, "sessfs:"));
	CHECK(v.ttl_s == BE_DEFAULT_TTL && v.max_size == BE_DEFAULT_MAX_SIZE);
	CHECK(v.redis_timeout == 5.0 && v.lock_lease_ms == 0);
	CHECK(v.legacy_until_ns == 0 && v.shadow_percent == 0);
	CHECK(!strcmp(v.ctl_dir, "/run/sessfs"));
	CHECK(!strcmp(v.state_dir, "/var/lib/sessfs"));
	in.layout = "phpredis";
	CHECK(fs_opts_parse(&in, &v, err, sizeof(err)) == 0);
	CHECK(!strcmp(v.prefix, BE_PHPREDIS_PREFIX));
}

static void test_values(void)
{
	struct fs_opts in = { .mode = "dual-write",
			      .ttl = "3600",
			      .ttl_from = "none",
			      .max_size = "67108864",
			      .redis_timeout = "0.25",
			      .lock_lease = "1.5",
			      .shadow = "25",
			      .legacy_reads_until = "1970-01-02" };
	struct fs_opt_values v;
	char err[256];

	CHECK(fs_opts_parse(&in, &v, err, sizeof(err)) == 0);
	CHECK(v.mode == FS_MODE_DUAL_WRITE && v.ttl_s == 3600);
	CHECK(v.ignore_cachelib && v.max_size == 64 * 1024 * 1024);
	CHECK(v.redis_timeout == 0.25 && v.lock_lease_ms == 1500);
	CHECK(v.shadow_percent == 25);
	CHECK(v.legacy_until_ns == 86400LL * 1000000000LL);
}

/* The first problem in 'in', as main.c prints it. */
static const char *first_error(const struct fs_opts *in)
{
	static char err[256];
	struct fs_opt_values v;

	if (fs_opts_parse(in, &v, err, sizeof(err)) != -EINVAL)
		return "";
	return err;
}

static void test_errors(void)
{
	struct fs_opts in = { .max_size = "67108865" };

	CHECK(!strcmp(first_error(&in),
		      "invalid max_size '67108865': at most 67108864 bytes"));
	/* In main.c's order: the mode before max_size. */
	in.mode = "redis";
	CHECK(!strcmp(
		first_error(&in),
		"invalid mode 'redis' (files, dual-write, redis-first or redis-only)"));
	in = (struct fs_opts){ .ttl = "1.5" };
	CHECK(!strcmp(first_error(&in),
		      "invalid ttl '1.5': expected a positive whole number"));
	in = (struct fs_opts){ .redis_timeout = "nan" };
	CHECK(!strcmp(
		first_error(&in),
		"invalid redis_timeout 'nan': expected a positive number"));
	in = (struct fs_opts){ .lock_lease = "0.2" };
	CHECK(!strcmp(first_error(&in),
		      "invalid lock_lease '0.2': at least 0.3 seconds"));
	in = (struct fs_opts){ .prefix = "a{b}" };
	CHECK(!strncmp(first_error(&in), "invalid prefix 'a{b}'", 21));
	in = (struct fs_opts){ .ctl_dir = "run" };
	CHECK(!strncmp(first_error(&in), "invalid ctl_dir 'run'", 21));
	in = (struct fs_opts){ .shadow = "+5" };
	CHECK(!strncmp(first_error(&in), "invalid shadow '+5'", 19));
	in = (struct fs_opts){ .cache = "on" };
	CHECK(!strcmp(first_error(&in),
		      "invalid cache 'on' (tracking or off)"));
	/* A message longer than the buffer is cut, not overrun. */
	{
		char small[8];
		struct fs_opt_values v;

		CHECK(fs_opts_parse(&in, &v, small, sizeof(small)) == -EINVAL);
		CHECK(!strcmp(small, "invalid"));
	}
}

static void test_durability(void)
{
	char err[256];
	int n, ms;

	CHECK(fs_opts_durability(NULL, 5, &n, &ms, err, sizeof(err)) == 0);
	CHECK(n == 0 && ms == 0);
	CHECK(fs_opts_durability("replica", 5, &n, &ms, err, sizeof(err)) == 0);
	CHECK(n == 1 && ms == 2500);
	CHECK(fs_opts_durability("replica:3", 0.001, &n, &ms, err,
				 sizeof(err)) == 0);
	CHECK(n == 3 && ms == 1);
	/* redis_timeout goes up to 1e12 s: the budget is capped, not UB. */
	CHECK(fs_opts_durability("replica", 1e12, &n, &ms, err, sizeof(err)) ==
	      0);
	CHECK(ms == INT_MAX);
	CHECK(fs_opts_durability("replica:101", 5, &n, &ms, err, sizeof(err)) ==
	      -EINVAL);
	CHECK(!strcmp(
		err,
		"invalid durability 'replica:101': N is a number of replicas, 1 to 100"));
	CHECK(fs_opts_durability("replicas", 5, &n, &ms, err, sizeof(err)) ==
	      -EINVAL);
}

static void test_dates(void)
{
	int64_t ns;

	CHECK(fs_legacy_parse_until("2027-02-28T12:30:15+02:00", &ns) == 0);
	CHECK(ns == (1803817815LL - 7200) * 1000000000LL);
	CHECK(fs_legacy_parse_until("2027-02-30", &ns) == -EINVAL);
	CHECK(fs_legacy_parse_until("1969-12-31", &ns) == -EINVAL);
	/* The last day int64 nanoseconds hold, and the first they do not. */
	CHECK(fs_legacy_parse_until("2262-04-11", &ns) == 0);
	CHECK(fs_legacy_parse_until("2262-04-12", &ns) == -EINVAL);
	/* fuzz_opts: the product overflowed (corpus/opts/crash-year-4054). */
	CHECK(fs_legacy_parse_until("4054-12-31 23:59Z", &ns) == -EINVAL);
}

int main(void)
{
	test_defaults();
	test_values();
	test_errors();
	test_durability();
	test_dates();
	return test_exit();
}
