/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Online export and verify: bringing the lower dir up to Redis while the
 * application runs, and comparing the two.  Each name is handled under its
 * stripe lock, so it is ordered with live traffic on that name (safety
 * rule 1): a write that lands before the export of its name is exported,
 * one that lands after goes to both stores itself (redis-first).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_i.h"
#include "journal.h"
#include "log.h"
#include "lowerstore.h"

struct name_list {
	char **names;
	enum be_state *states;
	size_t n, cap;
};

static int collect_cb(const char *name, enum be_state state, void *arg)
{
	struct name_list *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		char **names = realloc(l->names, cap * sizeof(*names));
		enum be_state *states;

		if (!names)
			return -ENOMEM;
		l->names = names;
		states = realloc(l->states, cap * sizeof(*states));
		if (!states)
			return -ENOMEM;
		l->states = states;
		l->cap = cap;
	}
	l->names[l->n] = strdup(name);
	if (!l->names[l->n])
		return -ENOMEM;
	l->states[l->n++] = state;
	return 0;
}

static void name_list_release(struct name_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->names[i]);
	free(l->names);
	free(l->states);
	memset(l, 0, sizeof(*l));
}

static bool same_file(const struct be_file *a, const struct be_file *b)
{
	if (a->state != b->state)
		return false;
	if (a->state != BE_PRESENT)
		return true;
	return a->size == b->size && a->meta.mtime_ns == b->meta.mtime_ns &&
	       a->meta.mode == b->meta.mode && a->meta.uid == b->meta.uid &&
	       a->meta.gid == b->meta.gid &&
	       (a->size == 0 || memcmp(a->data, b->data, a->size) == 0);
}

/* Exports one name; caller holds its stripe.  Updates 'st'. */
static int export_one(struct fs *fs, struct be_conn *c, const char *name,
		      struct fs_export_stats *st)
{
	struct be_file rf = { 0 }, lf = { 0 };
	int ret;

	ret = be_store_get(c, &fs->sc, name, true, &rf);
	if (ret < 0)
		goto out;
	ret = be_lower_get(fs->lower_fd, name, fs->max_size, true, &lf);
	if (ret == -EINVAL) {
		LOG_WARN("not exporting '%s': not a regular file underneath",
			 name);
		st->errors++;
		ret = 0;
		goto out;
	}
	if (ret < 0)
		goto out;
	if (rf.state == BE_PRESENT && !rf.has_meta) {
		struct stat root;

		/* Written by phpredis: the root's owner, mode 0600. */
		if (fstat(fs->lower_fd, &root) == 0) {
			rf.meta.uid = root.st_uid;
			rf.meta.gid = root.st_gid;
		}
		rf.meta.mode = 0600;
	}
	if (rf.state == BE_PRESENT) {
		if (same_file(&rf, &lf)) {
			st->unchanged++;
		} else {
			ret = be_lower_put(fs->lower_fd, name,
					   rf.data ? rf.data : "", rf.size,
					   &rf.meta);
			if (ret == 0)
				st->written++;
		}
	} else if (lf.state == BE_PRESENT) {
		/* A tombstone (or an expired value): the logout stays. */
		ret = be_lower_delete(fs->lower_fd, name);
		if (ret == -ENOENT)
			ret = 0;
		if (ret == 0)
			st->deleted++;
	}
	if (ret == 0 && (be_journal_get(fs->rt.journal, name) & BE_J_LOWER))
		be_journal_done(fs->rt.journal, name, BE_J_LOWER);
out:
	if (ret < 0) {
		LOG_WARN("cannot export '%s': %s", name, strerror(-ret));
		st->errors++;
	}
	be_file_release(&rf);
	be_file_release(&lf);
	return ret;
}

int fs_export(struct fs *fs, struct fs_export_stats *st)
{
	struct name_list l = { 0 };
	struct be_conn *c = be_pool_get(fs->pool);
	size_t i;
	int ret;

	memset(st, 0, sizeof(*st));
	ret = be_store_list(c, &fs->sc, collect_cb, &l);
	be_pool_put(fs->pool, c);
	for (i = 0; ret == 0 && i < l.n; i++) {
		pthread_mutex_t *nl;

		if (be_name_classify(&fs->sc.ks, l.names[i]) != BE_NAME_SESSION)
			continue;
		/* Stripe first, then the name's connection (route.c). */
		nl = fs_name_lock(fs, l.names[i]);
		pthread_mutex_lock(nl);
		c = be_pool_get_at(fs->pool, fs_route_slot(l.names[i]));
		export_one(fs, c, l.names[i], st);
		be_pool_put(fs->pool, c);
		pthread_mutex_unlock(nl);
		st->names++;
	}
	name_list_release(&l);
	if (ret < 0)
		return ret;
	/*
	 * The expired legacy files the mount hides go from underneath now
	 * (DESIGN.md, "Expired legacy files"): a listing removes them.
	 */
	if (fs_mode_get(fs) >= FS_MODE_REDIS_FIRST) {
		struct fs_census cs;

		ret = fs_dir_census(fs, &cs);
		if (ret < 0)
			return ret;
	}
	return st->errors ? -EIO : 0;
}

/*
 * Whether the lower file 'lf' of 'name' is expired: no copy (offline or
 * backfill) takes it to Redis, so its absence there is no difference.
 */
static bool lower_expired(struct fs *fs, const char *name,
			  const struct be_file *lf)
{
	return be_ttl_remaining_ms(&fs->sc.ttl, name, lf->data, lf->size,
				   lf->meta.mtime_ns / 1000000,
				   fs_now_ns() / 1000000) <= 0;
}

/*
 * Whether 'name' is another host's business: Redis holds it as another
 * host wrote it last, and the file underneath is absent or older.  In a
 * fleet each host has its own files underneath, so a session written
 * through another host is missing (or older) in this host's files, and
 * that is no reason to keep this host from redis-first; a file here newer
 * than Redis (written here in a files period) still is, and so is one of
 * the same mtime (a copy made under another host id) whose bytes differ.
 * The same for a session another host deleted last.
 */
static bool other_hosts(struct fs *fs, const struct be_file *rf,
			const struct be_file *lf)
{
	if (rf->state == BE_ABSENT || !rf->meta.host[0] ||
	    strcmp(rf->meta.host, fs->host_id) == 0)
		return false;
	/*
	 * Another host's delete: a tombstone (its meta without has_meta, see
	 * store.h) keeps the session's last mtime, so a file here no newer
	 * than that is the version it deleted.
	 */
	if (rf->state == BE_TOMBSTONE)
		return lf->state != BE_PRESENT ||
		       lf->meta.mtime_ns <= rf->meta.mtime_ns;
	if (!rf->has_meta)
		return false;
	return lf->state != BE_PRESENT || lf->meta.mtime_ns < rf->meta.mtime_ns;
}

/* Compares one name in both stores; caller holds its stripe. */
static int verify_one(struct fs *fs, struct be_conn *c, const char *name,
		      struct fs_verify_result *vr)
{
	struct be_file rf = { 0 }, lf = { 0 };
	const char *why = NULL;
	int ret;

	ret = be_store_get(c, &fs->sc, name, true, &rf);
	if (ret == 0)
		ret = be_lower_get(fs->lower_fd, name, fs->max_size, true, &lf);
	if (ret == -EINVAL) {
		why = "not a regular file underneath";
		ret = 0;
	} else if (ret == 0 && other_hosts(fs, &rf, &lf)) {
		why = NULL;
	} else if (ret < 0) {
		why = "unreadable";
	} else if (rf.state == BE_PRESENT && lf.state != BE_PRESENT) {
		why = "missing underneath";
	} else if (rf.state != BE_PRESENT && lf.state == BE_PRESENT) {
		/*
		 * Where the files are authoritative, Redis must hold every one
		 * (the verify unlocks redis-first); after, a legacy file Redis
		 * never had is current as it is.
		 */
		if (rf.state == BE_TOMBSTONE)
			why = "deleted in redis, present underneath";
		else if (fs_mode_get(fs) <= FS_MODE_DUAL_WRITE &&
			 !lower_expired(fs, name, &lf))
			why = "missing in redis (run sessfs-migrate copy)";
	} else if (rf.state == BE_PRESENT) {
		if (rf.size != lf.size ||
		    (rf.size && memcmp(rf.data, lf.data, rf.size) != 0))
			why = "bytes differ";
		else if (rf.has_meta && rf.meta.mtime_ns != lf.meta.mtime_ns)
			why = "mtime differs";
		else if (rf.has_meta && (rf.meta.mode != lf.meta.mode ||
					 rf.meta.uid != lf.meta.uid ||
					 rf.meta.gid != lf.meta.gid))
			why = "owner or mode differs";
	}
	vr->checked++;
	if (why) {
		if (vr->ndiff < FS_VERIFY_MAX_DIFF) {
			vr->diff[vr->ndiff].name = strdup(name);
			vr->diff[vr->ndiff].why = why;
		}
		vr->ndiff++;
	}
	be_file_release(&rf);
	be_file_release(&lf);
	return ret;
}

int fs_verify(struct fs *fs, struct fs_verify_result *vr)
{
	struct name_list l = { 0 };
	struct be_conn *c = be_pool_get(fs->pool);
	size_t i;
	int ret;

	memset(vr, 0, sizeof(*vr));
	fs_nameset_init(&vr->seen, 0);
	ret = be_store_list(c, &fs->sc, collect_cb, &l);
	be_pool_put(fs->pool, c);
	if (ret == 0)
		ret = be_lower_list(fs->lower_fd, collect_cb, &l);
	for (i = 0; ret == 0 && i < l.n; i++) {
		pthread_mutex_t *nl;

		if (be_name_classify(&fs->sc.ks, l.names[i]) != BE_NAME_SESSION)
			continue;
		/* Names listed twice (in both stores) are checked once. */
		if (fs_nameset_add(&vr->seen, l.names[i]) == 0)
			continue;
		nl = fs_name_lock(fs, l.names[i]);
		pthread_mutex_lock(nl);
		c = be_pool_get_at(fs->pool, fs_route_slot(l.names[i]));
		ret = verify_one(fs, c, l.names[i], vr);
		be_pool_put(fs->pool, c);
		pthread_mutex_unlock(nl);
	}
	name_list_release(&l);
	return ret;
}

void fs_verify_release(struct fs_verify_result *vr)
{
	size_t i;

	for (i = 0; i < vr->ndiff && i < FS_VERIFY_MAX_DIFF; i++)
		free(vr->diff[i].name);
	fs_nameset_release(&vr->seen);
}
