/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The mount's state in state_dir: the repair journal and the unmount
 * manifest, named after a stable id of the mountpoint.  At a clean unmount
 * in a mode that keeps the lower dir current, the manifest records what
 * the lower dir held; at the next mount, every name deleted, changed or
 * added underneath meanwhile goes into the journal as "Redis behind", so
 * that it is read from the lower dir and repaired in Redis before Redis is
 * read for it again (DESIGN.md, "Remount").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs_i.h"
#include "journal.h"
#include "log.h"
#include "lowerstore.h"
#include "mountpt.h"

/* A stable id of the mountpoint: FNV-1a of its absolute path. */
static unsigned long long mount_id(struct fs *fs)
{
	return (unsigned long long)be_fnv1a64(fs->cfg.mountpoint);
}

char *fs_state_path(struct fs *fs, const char *suffix)
{
	char *path;

	if (asprintf(&path, "%s/%016llx.%s", fs->cfg.state_dir, mount_id(fs),
		     suffix) < 0)
		return NULL;
	return path;
}

void fs_layers(struct fs *fs, unsigned int *layers, unsigned int *dead)
{
	struct fs_mountpt_layers l;

	*layers = *dead = 0;
	if (fs_mountpt_layers(fs->cfg.mountpoint, &l) == 0) {
		*layers = l.total;
		*dead = l.top_dead ? 1 : 0;
	}
}

struct manifest_state {
	struct fs *fs;
	struct fs_nameset seen;
	size_t changed;
};

static int manifest_cb(const struct be_manifest_entry *e, void *arg)
{
	struct manifest_state *ms = arg;
	struct be_file f = { 0 };
	int ret;

	fs_nameset_add(&ms->seen, e->name);
	if (be_name_classify(&ms->fs->sc.ks, e->name) != BE_NAME_SESSION)
		return 0;
	ret = be_lower_get(ms->fs->lower_fd, e->name, ms->fs->max_size, false,
			   &f);
	/* Gone, or changed: the lower dir was written while unmounted. */
	if (ret == 0 &&
	    (f.state != BE_PRESENT || f.meta.mtime_ns != e->mtime_ns)) {
		be_journal_add(ms->fs->rt.journal, e->name, BE_J_REDIS);
		ms->changed++;
	}
	be_file_release(&f);
	return 0;
}

static int new_name_cb(const char *name, enum be_state state, void *arg)
{
	struct manifest_state *ms = arg;

	if (be_name_classify(&ms->fs->sc.ks, name) == BE_NAME_SESSION &&
	    !fs_nameset_has(&ms->seen, name)) {
		be_journal_add(ms->fs->rt.journal, name, BE_J_REDIS);
		ms->changed++;
	}
	return 0;
}

int fs_manifest_apply(struct fs *fs)
{
	struct manifest_state ms = { .fs = fs };
	char *path = fs_state_path(fs, "manifest");
	int64_t written;
	int ret;

	if (!path)
		return -ENOMEM;
	fs_nameset_init(&ms.seen, 0);
	ret = be_manifest_read(path, &written, manifest_cb, &ms);
	if (ret == 0)
		ret = be_lower_list(fs->lower_fd, new_name_cb, &ms);
	if (ret == 0) {
		if (ms.changed)
			LOG_INFO(
				"%zu session files changed underneath while unmounted: redis is repaired from them",
				ms.changed);
		unlink(path);
	} else if (ret == -ENOENT) {
		ret = 0;
	} else if (ret == -EBADMSG) {
		LOG_ERR("the unmount manifest '%s' is corrupt: every session file underneath is re-verified",
			path);
		/* Trust nothing: every lower name goes through the journal. */
		ret = be_lower_list(fs->lower_fd, new_name_cb, &ms);
		if (ret == 0)
			unlink(path);
	}
	fs_nameset_release(&ms.seen);
	free(path);
	return ret;
}

static int lower_behind_cb(const char *name, unsigned int stores, void *arg)
{
	return (stores & BE_J_LOWER) ? 1 : 0;
}

void fs_manifest_save(struct fs *fs)
{
	char *path = fs_state_path(fs, "manifest");
	int ret;

	if (!path)
		return;
	/*
	 * Only a lower dir that is current is worth a manifest: after
	 * redis-only, or with lower repairs pending, it is not (export
	 * first), and the next mount must not take it for the truth.
	 */
	if (fs_mode_get(fs) == FS_MODE_REDIS_ONLY ||
	    be_journal_foreach(fs->rt.journal, lower_behind_cb, NULL) != 0) {
		unlink(path);
		free(path);
		return;
	}
	ret = be_manifest_write(path, fs->lower_fd);
	if (ret < 0)
		LOG_ERR("cannot write the unmount manifest '%s': %s", path,
			strerror(-ret));
	free(path);
}

void fs_prepare_unmount(struct fs *fs)
{
	fs_manifest_save(fs);
	fs->manifest_saved = true;
}

static int reverify_cb(const char *name, enum be_state state, void *arg)
{
	struct fs *fs = arg;

	if (state == BE_PRESENT &&
	    be_name_classify(&fs->sc.ks, name) == BE_NAME_SESSION)
		return be_journal_add(fs->rt.journal, name,
				      BE_J_REDIS | BE_J_LOWER) == -ENOSPC
			       ? -ENOSPC
			       : 0;
	return 0;
}

int fs_journal_reverify(struct fs *fs)
{
	struct be_conn *c;
	int ret;

	/* Both bits: the repair compares the two copies (route.c). */
	ret = be_lower_list(fs->lower_fd, reverify_cb, fs);
	if (ret < 0)
		return ret;
	c = be_pool_get(fs->pool);
	ret = be_store_list(c, &fs->sc, reverify_cb, fs);
	be_pool_put(fs->pool, c);
	return ret;
}
