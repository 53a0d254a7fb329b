/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzzes the mount options that are plain values (fs/opts.c), as main.c
 * hands them over from `-o`.  The input is one option a line,
 * "name=value" (a line without '=' or with an unknown name is skipped;
 * "\n" in a value stands for a newline).  Properties: the verdict is 0 or
 * -EINVAL, an error says "invalid ..." and fits 'err', and what parses
 * is in range (a valid mode, 0 < max_size <= 64 MiB, a prefix the key
 * layout takes, absolute dirs, a lease of at least 0.3 s, ...); parsing
 * again gives the same values.
 */
#include <errno.h>
#include <math.h>

#include "fuzz.h"
#include "layout.h"
#include "opts.h"

/* Where each option name's value goes in struct fs_opts. */
static const struct {
	const char *name;
	size_t off;
} fields[] = {
	{ "mode", offsetof(struct fs_opts, mode) },
	{ "legacy_reads_until", offsetof(struct fs_opts, legacy_reads_until) },
	{ "shadow", offsetof(struct fs_opts, shadow) },
	{ "cache", offsetof(struct fs_opts, cache) },
	{ "layout", offsetof(struct fs_opts, layout) },
	{ "prefix", offsetof(struct fs_opts, prefix) },
	{ "ttl", offsetof(struct fs_opts, ttl) },
	{ "ttl_from", offsetof(struct fs_opts, ttl_from) },
	{ "max_size", offsetof(struct fs_opts, max_size) },
	{ "redis_timeout", offsetof(struct fs_opts, redis_timeout) },
	{ "lock_lease", offsetof(struct fs_opts, lock_lease) },
	{ "ctl_dir", offsetof(struct fs_opts, ctl_dir) },
	{ "state_dir", offsetof(struct fs_opts, state_dir) },
};

/* Decodes "\n" into a newline in place. */
static void unescape(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] == 'n') {
			*out++ = '\n';
			s++;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

static void check_values(const struct fs_opt_values *v)
{
	FUZZ_CHECK((int)v->mode >= 0 && v->mode < FS_MODE_COUNT);
	FUZZ_CHECK(v->shadow_percent <= 100);
	FUZZ_CHECK(v->layout == BE_LAYOUT_PLAIN ||
		   v->layout == BE_LAYOUT_PHPREDIS);
	FUZZ_CHECK(v->prefix && be_prefix_check(v->prefix) == 0);
	FUZZ_CHECK(v->ttl_s > 0);
	FUZZ_CHECK(v->max_size > 0 && v->max_size <= FS_OPTS_MAX_SIZE_LIMIT);
	FUZZ_CHECK(v->redis_timeout > 0 && isfinite(v->redis_timeout));
	FUZZ_CHECK(v->lock_lease_ms == 0 || v->lock_lease_ms >= 300);
	FUZZ_CHECK(v->ctl_dir && v->ctl_dir[0] == '/');
	FUZZ_CHECK(v->state_dir && v->state_dir[0] == '/');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fs_opts in = { 0 };
	struct fs_opt_values v, again;
	char *text = fuzz_str(data, size), *line, *next, *eq;
	const char *durability = NULL;
	char err[128], err2[128];
	int ret, replicas, wait_ms;
	size_t i;

	for (line = text; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = '\0';
		unescape(eq + 1);
		if (!strcmp(line, "durability"))
			durability = eq + 1;
		for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
			if (!strcmp(line, fields[i].name))
				*(const char **)((char *)&in + fields[i].off) =
					eq + 1;
	}

	ret = fs_opts_parse(&in, &v, err, sizeof(err));
	FUZZ_CHECK(ret == 0 || ret == -EINVAL);
	if (ret == 0) {
		check_values(&v);
		FUZZ_CHECK(fs_opts_parse(&in, &again, err2, sizeof(err2)) == 0);
		FUZZ_CHECK(!memcmp(&v, &again, sizeof(v)));
	} else {
		FUZZ_CHECK(!strncmp(err, "invalid ", 8));
		FUZZ_CHECK(strlen(err) < sizeof(err));
		v.redis_timeout = 5.0;
	}

	ret = fs_opts_durability(durability, v.redis_timeout, &replicas,
				 &wait_ms, err, sizeof(err));
	FUZZ_CHECK(ret == 0 || ret == -EINVAL);
	if (ret == 0) {
		FUZZ_CHECK(replicas >= 0 && replicas <= 100);
		FUZZ_CHECK(replicas == 0 ? wait_ms == 0 : wait_ms >= 1);
	} else {
		FUZZ_CHECK(!strncmp(err, "invalid durability '", 20));
	}
	free(text);
	return 0;
}
