/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Shadow reads in dual-write: a sampled read also reads Redis and
 * compares (shadow.h).  The re-check reads both stores again at once:
 * the stripe is held, so only a writer outside this mount (another host
 * writing Redis, a hand edit underneath) can have changed either.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fs_i.h"
#include "log.h"
#include "lowerstore.h"
#include "shadow.h"

enum sh_counter {
	SH_COMPARED = 0,
	SH_CONSISTENT,
	SH_DIFFER,
	SH_MISSING,
	SH_CLEARED,
	SH_ERRORS,
};

/* Why 'lower' and Redis's 'r' differ, or NULL when they agree. */
static const char *differs(const struct be_file *lower, const struct be_file *r)
{
	if (r->state == BE_ABSENT)
		return "missing in redis";
	if (r->state == BE_TOMBSTONE)
		return "deleted in redis";
	if (r->size != lower->size ||
	    (r->size && memcmp(r->data, lower->data, r->size) != 0))
		return "bytes differ";
	if (r->has_meta && r->meta.mtime_ns != lower->meta.mtime_ns)
		return "mtime differs";
	return NULL;
}

/* Reads 'name' from Redis into 'r'; 0 or -errno. */
static int redis_read(struct fs *fs, const char *name, struct be_file *r)
{
	struct be_conn *c = be_pool_get_at(fs->pool, fs_route_slot(name));
	int ret = be_store_get(c, &fs->sc, name, true, r);

	be_pool_put(fs->pool, c);
	return ret;
}

static void bump(struct fs *fs, enum sh_counter k)
{
	atomic_fetch_add_explicit(&fs->shadow_counts[k], 1,
				  memory_order_relaxed);
}

void fs_shadow_read(struct fs *fs, const char *name,
		    const struct be_file *lower)
{
	struct be_file r = { 0 }, again = { 0 };
	const char *why;
	uint64_t nth;

	if (!fs->shadow_percent || lower->state != BE_PRESENT ||
	    fs_route_redis_down(fs))
		return;
	/* An expired file: Redis may have expired its copy already. */
	if (be_ttl_remaining_ms(&fs->sc.ttl, name, lower->data, lower->size,
				lower->meta.mtime_ns / 1000000,
				fs_now_ns() / 1000000) <= 0)
		return;
	nth = atomic_fetch_add_explicit(&fs->shadow_reads, 1,
					memory_order_relaxed);
	if (!fs_shadow_sample(nth, fs->shadow_percent))
		return;
	if (redis_read(fs, name, &r) < 0) {
		bump(fs, SH_ERRORS);
		goto out;
	}
	bump(fs, SH_COMPARED);
	why = differs(lower, &r);
	if (!why) {
		bump(fs, SH_CONSISTENT);
		goto out;
	}
	/* Both stores again: a mismatch counts only when it stays. */
	be_file_release(&r);
	if (be_lower_get(fs->lower_fd, name, fs->max_size, true, &again) < 0 ||
	    redis_read(fs, name, &r) < 0) {
		bump(fs, SH_ERRORS);
		goto out;
	}
	why = again.state == BE_PRESENT ? differs(&again, &r) : NULL;
	if (!why) {
		bump(fs, SH_CLEARED);
		bump(fs, SH_CONSISTENT);
		goto out;
	}
	bump(fs, r.state == BE_ABSENT ? SH_MISSING : SH_DIFFER);
	LOG_WARN("shadow read of '%s': %s", name, why);
out:
	be_file_release(&again);
	be_file_release(&r);
}

void fs_shadow_counts(struct fs *fs, struct fs_shadow_counts *n)
{
	n->compared = atomic_load(&fs->shadow_counts[SH_COMPARED]);
	n->consistent = atomic_load(&fs->shadow_counts[SH_CONSISTENT]);
	n->differ = atomic_load(&fs->shadow_counts[SH_DIFFER]);
	n->missing = atomic_load(&fs->shadow_counts[SH_MISSING]);
	n->cleared = atomic_load(&fs->shadow_counts[SH_CLEARED]);
	n->errors = atomic_load(&fs->shadow_counts[SH_ERRORS]);
}

json_t *fs_shadow_status(struct fs *fs)
{
	struct fs_shadow_counts n;
	json_t *o;

	fs_shadow_counts(fs, &n);
	o = json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:I}", "percent",
		      (int)fs->shadow_percent, "compared",
		      (json_int_t)n.compared, "consistent",
		      (json_int_t)n.consistent, "differ", (json_int_t)n.differ,
		      "missing", (json_int_t)n.missing, "cleared",
		      (json_int_t)n.cleared, "errors", (json_int_t)n.errors);
	/* The consistency rate; null until a read was compared. */
	if (o)
		json_object_set_new(o, "consistency",
				    n.compared
					    ? json_real((double)n.consistent /
							(double)n.compared)
					    : json_null());
	return o;
}
