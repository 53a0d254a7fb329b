/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of fs/mode.c, the rules of the migration modes (names, the
 * guards of each step, what a step does to the files underneath and to
 * host-local names, the fleet follower's path), and of the parser of a
 * fleet request in backend/fleet.c.  Pure: no mount, no Redis.
 */
#include <errno.h>
#include <string.h>

#include "fleet.h"
#include "mode.h"
#include "testutil.h"

#define WHY 1024

static const enum fs_mode all[] = { FS_MODE_FILES, FS_MODE_DUAL_WRITE,
				    FS_MODE_REDIS_FIRST, FS_MODE_REDIS_ONLY };

static void test_names(void)
{
	enum fs_mode m;
	size_t i;

	for (i = 0; i < FS_MODE_COUNT; i++) {
		CHECK(fs_mode_parse(fs_mode_name(all[i]), &m) == 0);
		CHECK(m == all[i]);
	}
	CHECK(strcmp(fs_mode_name(FS_MODE_DUAL_WRITE), "dual-write") == 0);
	CHECK(fs_mode_parse("redis", &m) == -EINVAL);
	CHECK(fs_mode_parse("", &m) == -EINVAL);
	CHECK(fs_mode_parse(NULL, &m) == -EINVAL);
}

static void test_placement(void)
{
	CHECK(fs_mode_lower_authoritative(FS_MODE_FILES));
	CHECK(fs_mode_lower_authoritative(FS_MODE_DUAL_WRITE));
	CHECK(!fs_mode_lower_authoritative(FS_MODE_REDIS_FIRST));
	CHECK(!fs_mode_uses_redis(FS_MODE_FILES));
	CHECK(fs_mode_uses_redis(FS_MODE_DUAL_WRITE));
	CHECK(fs_mode_uses_lower(FS_MODE_REDIS_FIRST));
	CHECK(!fs_mode_uses_lower(FS_MODE_REDIS_ONLY));
	CHECK(!fs_mode_locals_in_memory(FS_MODE_DUAL_WRITE));
	CHECK(fs_mode_locals_in_memory(FS_MODE_REDIS_FIRST));
	CHECK(fs_mode_count_in_lower(FS_MODE_REDIS_FIRST));
	CHECK(!fs_mode_count_in_lower(FS_MODE_REDIS_ONLY));
	/* A step's move of the locals matches where they live after it. */
	CHECK(fs_mode_locals_move(FS_MODE_REDIS_ONLY, FS_MODE_REDIS_FIRST) ==
	      FS_MODE_LOCALS_COUNT);
	CHECK(fs_mode_may_track(FS_MODE_REDIS_ONLY));
	CHECK(!fs_mode_may_track(FS_MODE_REDIS_FIRST));
}

/* A mount where every guard passes. */
static struct fs_mode_facts clean(void)
{
	struct fs_mode_facts f = { .lower_current = true,
				   .verified = 200,
				   .files = 100,
				   .mount = "/srv/sess" };
	return f;
}

static void test_guards(void)
{
	struct fs_mode_facts f = clean();
	char why[WHY];
	size_t i, j;

	/* A clean mount may take every step but the skipping ones. */
	for (i = 0; i < FS_MODE_COUNT; i++) {
		for (j = 0; j < FS_MODE_COUNT; j++) {
			int ret = fs_mode_guard(all[i], all[j], &f, why, WHY);
			bool skip = (all[i] == FS_MODE_FILES &&
				     all[j] >= FS_MODE_REDIS_FIRST) ||
				    (all[i] == FS_MODE_REDIS_ONLY &&
				     all[j] <= FS_MODE_DUAL_WRITE);

			CHECK(ret == (skip ? -EPERM : 0));
			CHECK(skip == (why[0] != '\0'));
		}
	}
	CHECK(fs_mode_guard(FS_MODE_FILES, FS_MODE_REDIS_FIRST, &f, why, WHY) ==
	      -EPERM);
	CHECK(strstr(why, "go through dual-write") != NULL);
	CHECK(strstr(why, "/srv/sess") != NULL);

	/* Down from redis-first needs current files underneath. */
	f.lower_current = false;
	CHECK(fs_mode_guard(FS_MODE_REDIS_FIRST, FS_MODE_FILES, &f, why, WHY) ==
	      -EPERM);
	CHECK(strstr(why, "export") != NULL);
	f = clean();
	f.journal_lower = true;
	CHECK(fs_mode_guard(FS_MODE_REDIS_FIRST, FS_MODE_DUAL_WRITE, &f, why,
			    WHY) == -EPERM);

	/* Up from dual-write: an empty journal, then a later verify. */
	f = clean();
	f.journal_redis = true;
	f.journal = 7;
	CHECK(fs_mode_guard(FS_MODE_DUAL_WRITE, FS_MODE_REDIS_FIRST, &f, why,
			    WHY) == -EPERM);
	CHECK(strstr(why, "behind for 7 names") != NULL);
	f = clean();
	f.verified = f.files;
	CHECK(fs_mode_guard(FS_MODE_DUAL_WRITE, FS_MODE_REDIS_ONLY, &f, why,
			    WHY) == -EPERM);
	CHECK(strstr(why, "verify") != NULL);
	f.verified = 0;
	f.files = 0;
	CHECK(fs_mode_guard(FS_MODE_DUAL_WRITE, FS_MODE_REDIS_FIRST, &f, why,
			    WHY) == -EPERM);
}

static void test_effects(void)
{
	CHECK(!fs_mode_lower_current_after(FS_MODE_REDIS_FIRST,
					   FS_MODE_REDIS_ONLY, true));
	CHECK(fs_mode_lower_current_after(FS_MODE_DUAL_WRITE,
					  FS_MODE_REDIS_FIRST, false));
	CHECK(!fs_mode_lower_current_after(FS_MODE_REDIS_ONLY,
					   FS_MODE_REDIS_FIRST, false));
	CHECK(fs_mode_lower_current_after(FS_MODE_REDIS_ONLY,
					  FS_MODE_REDIS_FIRST, true));
	CHECK(fs_mode_lower_current_after(FS_MODE_REDIS_FIRST, FS_MODE_FILES,
					  false));
	CHECK(fs_mode_locals_move(FS_MODE_REDIS_FIRST, FS_MODE_FILES) ==
	      FS_MODE_LOCALS_ALL);
	CHECK(fs_mode_locals_move(FS_MODE_REDIS_ONLY, FS_MODE_REDIS_FIRST) ==
	      FS_MODE_LOCALS_COUNT);
	CHECK(fs_mode_locals_move(FS_MODE_DUAL_WRITE, FS_MODE_REDIS_FIRST) ==
	      FS_MODE_LOCALS_STAY);
	CHECK(fs_mode_files_period_edge(FS_MODE_FILES, FS_MODE_DUAL_WRITE));
	CHECK(fs_mode_files_period_edge(FS_MODE_REDIS_FIRST, FS_MODE_FILES));
	CHECK(!fs_mode_files_period_edge(FS_MODE_FILES, FS_MODE_FILES));
	CHECK(!fs_mode_files_period_edge(FS_MODE_DUAL_WRITE,
					 FS_MODE_REDIS_FIRST));
}

static void test_path(void)
{
	CHECK(fs_mode_step_toward(FS_MODE_FILES, FS_MODE_REDIS_ONLY) ==
	      FS_MODE_DUAL_WRITE);
	CHECK(fs_mode_step_toward(FS_MODE_REDIS_FIRST, FS_MODE_REDIS_ONLY) ==
	      FS_MODE_REDIS_ONLY);
	CHECK(fs_mode_step_toward(FS_MODE_REDIS_ONLY, FS_MODE_FILES) ==
	      FS_MODE_REDIS_FIRST);
	CHECK(fs_mode_step_toward(FS_MODE_REDIS_FIRST, FS_MODE_FILES) ==
	      FS_MODE_FILES);
	CHECK(fs_mode_step_toward(FS_MODE_DUAL_WRITE, FS_MODE_DUAL_WRITE) ==
	      FS_MODE_DUAL_WRITE);
}

static void test_fleet_req(void)
{
	struct be_fleet_req r;

	CHECK(be_fleet_req_parse("12 redis-first -", &r) == 0);
	CHECK(r.version == 12 && !r.exporting);
	CHECK(strcmp(r.mode, "redis-first") == 0);
	CHECK(be_fleet_req_parse("3 files export", &r) == 0);
	CHECK(r.version == 3 && r.exporting && !r.unmount);
	CHECK(be_fleet_req_parse("5 files unmount", &r) == 0);
	CHECK(r.version == 5 && r.exporting && r.unmount);
	CHECK(be_fleet_req_parse("6 files unmount,x", &r) == -EINVAL);
	CHECK(be_fleet_req_parse("3 files", &r) == -EINVAL);
	CHECK(r.version == 0);
	CHECK(be_fleet_req_parse("0 files -", &r) == -EINVAL);
	CHECK(be_fleet_req_parse("x files -", &r) == -EINVAL);
	CHECK(be_fleet_req_parse("4 files now", &r) == -EINVAL);
}

int main(void)
{
	test_names();
	test_placement();
	test_guards();
	test_effects();
	test_path();
	test_fleet_req();
	return test_exit();
}
