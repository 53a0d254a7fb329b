/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A mount's mode at run time: reading it, changing it with the guards of
 * mode.h, and the record in the state dir that brings a crash restart back
 * in it.  The rules are mode.c's; this file gathers the facts they need
 * (the repair journal, the markers in Redis through backend/fleet.h) and
 * does what a step requires.
 *
 * A mode change locks every name stripe, so no store call is in flight
 * while the mode flips; a handle opened before keeps its bytes and commits
 * through the new mode's route.  Stability is checked before and after
 * (probe write/read/delete on every store the new mode uses, recent error
 * rate below 1 %); a failed check after the change puts the old mode back.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs_i.h"
#include "fleet.h"
#include "journal.h"
#include "log.h"
#include "lowerstore.h"
#include "notify.h"

enum fs_mode fs_mode_get(struct fs *fs)
{
	return atomic_load(&fs->mode);
}

/* ---- markers ---- */

/* Sets the marker 'what' (of this host when 'host') to now. */
static int marker_set(struct fs *fs, const char *what, bool host)
{
	char *key =
		be_fleet_key(fs->sc.ks.prefix, what, host ? fs->host_id : NULL);
	struct be_conn *c;
	int ret;

	if (!key)
		return -ENOMEM;
	c = be_pool_get(fs->pool);
	ret = be_fleet_marker_set(c, key, fs_now_ns());
	be_pool_put(fs->pool, c);
	free(key);
	return ret;
}

static int marker_get(struct fs *fs, const char *what, bool host, int64_t *ns)
{
	char *key =
		be_fleet_key(fs->sc.ks.prefix, what, host ? fs->host_id : NULL);
	struct be_conn *c;
	int ret;

	*ns = 0;
	if (!key)
		return -ENOMEM;
	c = be_pool_get(fs->pool);
	ret = be_fleet_marker_get(c, key, ns);
	be_pool_put(fs->pool, c);
	free(key);
	return ret;
}

int fs_mode_verified(struct fs *fs)
{
	int ret = marker_set(fs, "verified", true);

	/* The prefix's marker stays for the tools that read it. */
	if (ret == 0)
		ret = marker_set(fs, "verified", false);
	return ret;
}

/* ---- stability ---- */

static int probe_redis(struct fs *fs)
{
	struct be_conn *c = be_pool_get(fs->pool);
	int ret = be_fleet_probe(c, fs->sc.ks.prefix, fs->host_id);

	be_pool_put(fs->pool, c);
	return ret;
}

static int probe_lower(struct fs *fs)
{
	static const char name[] = BE_LOWER_TEMP_PREFIX "probe";
	char buf[8] = { 0 };
	int fd, ret = 0;

	fd = openat(fs->lower_fd, name,
		    O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (pwrite(fd, "probe", 5, 0) != 5 || pread(fd, buf, 5, 0) != 5 ||
	    memcmp(buf, "probe", 5) != 0)
		ret = errno ? -errno : -EIO;
	close(fd);
	if (unlinkat(fs->lower_fd, name, 0) < 0 && ret == 0)
		ret = -errno;
	return ret;
}

int fs_mode_check_stable(struct fs *fs, enum fs_mode mode, char *why,
			 size_t whylen)
{
	uint64_t ops, errors;
	int ret;

	if (fs_mode_uses_redis(mode)) {
		ret = probe_redis(fs);
		if (ret < 0) {
			snprintf(why, whylen, "redis probe failed: %s",
				 strerror(-ret));
			return ret;
		}
	}
	if (fs_mode_uses_lower(mode)) {
		ret = probe_lower(fs);
		if (ret < 0) {
			snprintf(why, whylen,
				 "probe of the directory underneath failed: %s",
				 strerror(-ret));
			return ret;
		}
	}
	fs_route_error_rate(fs, &ops, &errors);
	if (ops >= 100 && errors * 100 > ops) {
		snprintf(why, whylen,
			 "%llu of the last %llu operations failed (over 1 %%)",
			 (unsigned long long)errors, (unsigned long long)ops);
		return -EIO;
	}
	return 0;
}

/* ---- guards ---- */

static int lower_behind_cb(const char *name, unsigned int stores, void *arg)
{
	return (stores & *(unsigned int *)arg) ? 1 : 0;
}

static bool journal_has(struct fs *fs, unsigned int stores)
{
	return be_journal_foreach(fs->rt.journal, lower_behind_cb, &stores) !=
	       0;
}

int fs_mode_facts(struct fs *fs, enum fs_mode from, enum fs_mode to,
		  struct fs_mode_facts *facts, char *why, size_t whylen)
{
	int ret = 0;

	memset(facts, 0, sizeof(*facts));
	facts->mount = fs->cfg.mountpoint;
	facts->lower_current = fs->lower_current;
	facts->journal = be_journal_count(fs->rt.journal);
	facts->journal_lower = journal_has(fs, BE_J_LOWER);
	facts->journal_redis = journal_has(fs, BE_J_REDIS);
	/* Only this step reads the markers: no Redis call for the others. */
	if (from == FS_MODE_DUAL_WRITE && to >= FS_MODE_REDIS_FIRST) {
		ret = marker_get(fs, "verified", true, &facts->verified);
		if (ret == 0)
			ret = marker_get(fs, "files", false, &facts->files);
		if (ret < 0)
			snprintf(
				why, whylen,
				"cannot read the migration markers in redis: %s",
				strerror(-ret));
	}
	return ret;
}

/* ---- the change ---- */

/* Locks every name stripe: no store call is in flight after this. */
static void lock_all_names(struct fs *fs)
{
	size_t i;

	for (i = 0; i < FS_NAME_STRIPES; i++)
		pthread_mutex_lock(&fs->name_stripes[i]);
}

static void unlock_all_names(struct fs *fs)
{
	size_t i;

	for (i = FS_NAME_STRIPES; i-- > 0;)
		pthread_mutex_unlock(&fs->name_stripes[i]);
}

/*
 * Entering files or dual-write, the host-local names held in memory move
 * to the lower dir, where those modes keep them: after a (lazy) unmount
 * the application's rename of a temp it wrote before finds it there,
 * instead of failing with ENOENT and losing that save.  Entering
 * redis-first, which keeps the lower dir current, cachelib's count file
 * moves ('count_only').  Caller holds every stripe.
 */
static void locals_to_lower(struct fs *fs, bool count_only)
{
	struct fs_inode **all;
	size_t n, i;

	all = fs_local_grab(fs, &n);
	for (i = 0; all && i < n; i++) {
		struct fs_inode *inode = all[i];
		int ret;

		pthread_mutex_lock(&inode->lock);
		if (inode->local && inode->name &&
		    (!count_only ||
		     strcmp(inode->name, BE_CACHELIB_COUNT_NAME) == 0)) {
			ret = fs_local_to_lower(fs, inode, inode->name);
			if (ret < 0)
				LOG_WARN("cannot move '%s' underneath: %s",
					 inode->name, strerror(-ret));
		}
		pthread_mutex_unlock(&inode->lock);
		fs_inode_put(fs, inode);
	}
	free(all);
}

static void set_mode(struct fs *fs, enum fs_mode from, enum fs_mode to)
{
	enum fs_mode_locals locals = fs_mode_locals_move(from, to);

	lock_all_names(fs);
	atomic_store(&fs->mode, to);
	/* What was learnt in another mode is not kept (tracked.c). */
	fs_track_reset(fs);
	if (locals != FS_MODE_LOCALS_STAY)
		locals_to_lower(fs, locals == FS_MODE_LOCALS_COUNT);
	fs->lower_current =
		fs_mode_lower_current_after(from, to, fs->lower_current);
	unlock_all_names(fs);
	fs_mode_save(fs);
	fs_notify_status(fs); /* systemd's STATUS= shows the mode */
	/* Leaving files: its journal is replayed into Redis now. */
	pthread_cond_broadcast(&fs->rt.cond);
}

int fs_mode_change(struct fs *fs, enum fs_mode to, bool force, char *why,
		   size_t whylen)
{
	struct fs_mode_facts facts;
	enum fs_mode from;
	int ret = 0;

	pthread_mutex_lock(&fs->mode_lock);
	from = fs_mode_get(fs);
	why[0] = '\0';
	if (from == to)
		goto out;
	if (!force) {
		ret = fs_mode_facts(fs, from, to, &facts, why, whylen);
		if (ret == 0)
			ret = fs_mode_guard(from, to, &facts, why, whylen);
		if (ret == 0)
			ret = fs_mode_check_stable(fs, to, why, whylen);
		if (ret < 0)
			goto out;
	}
	if (fs_mode_files_period_edge(from, to))
		marker_set(fs, "files", false);
	set_mode(fs, from, to);
	LOG_INFO("mode changed from %s to %s%s", fs_mode_name(from),
		 fs_mode_name(to), force ? " (forced)" : "");
	if (!force) {
		ret = fs_mode_check_stable(fs, to, why, whylen);
		if (ret < 0) {
			LOG_ERR("mode %s is not stable (%s): back to %s",
				fs_mode_name(to), why, fs_mode_name(from));
			set_mode(fs, to, from);
		}
	}
out:
	pthread_mutex_unlock(&fs->mode_lock);
	return ret;
}

/* ---- the record in the state dir ---- */

void fs_mode_save(struct fs *fs)
{
	char *path = fs_state_path(fs, "mode"), *tmp = NULL;
	FILE *f;

	if (!path || asprintf(&tmp, "%s.tmp", path) < 0)
		goto out;
	f = fopen(tmp, "w");
	if (!f)
		goto out;
	fprintf(f, "%s\n", fs_mode_name(fs_mode_get(fs)));
	if (fclose(f) == 0 && rename(tmp, path) < 0)
		unlink(tmp);
out:
	free(tmp);
	free(path);
}

int fs_mode_load(struct fs *fs, enum fs_mode *mode)
{
	char *path = fs_state_path(fs, "mode"), line[64] = "";
	FILE *f = path ? fopen(path, "r") : NULL;
	int ret = -ENOENT;

	if (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		ret = fs_mode_parse(line, mode);
	}
	if (f)
		fclose(f);
	free(path);
	return ret;
}

void fs_mode_forget(struct fs *fs)
{
	char *path = fs_state_path(fs, "mode");

	if (path)
		unlink(path);
	free(path);
}
