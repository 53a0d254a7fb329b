/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The inode table: a map from current names to inodes, the reference
 * counts that decide when an inode may be freed (kernel lookups, open
 * handles, threads using it), FORGET, detaching on unlink and rename, and
 * the accounting of host-local bytes.  The nodeid is the inode's address.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs_i.h"
#include "log.h"

int fs_table_init(struct fs *fs)
{
	size_t i;

	pthread_mutex_init(&fs->tab_lock, NULL);
	for (i = 0; i < FS_NAME_STRIPES; i++)
		pthread_mutex_init(&fs->name_stripes[i], NULL);
	fs->name_map_size = 1024;
	fs->name_map = calloc(fs->name_map_size, sizeof(*fs->name_map));
	if (!fs->name_map)
		return -ENOMEM;
	fs->next_ino = 2; /* 1 is the root */
	fs->next_generation = 1;
	return 0;
}

static void inode_free(struct fs_inode *inode)
{
	pthread_mutex_destroy(&inode->lock);
	free(inode->name);
	free(inode->replaced);
	free(inode->data);
	free(inode->saved);
	free(inode);
}

void fs_table_destroy(struct fs *fs)
{
	struct fs_inode *inode, *next;
	struct fs_handle *h, *hnext;

	/*
	 * Everything still referenced at the end: inodes the kernel had not
	 * forgotten, handles whose RELEASE never came (a lazy unmount ends
	 * the connection before the last asynchronous releases).
	 */
	for (h = fs->handles; h; h = hnext) {
		hnext = h->next;
		free(h);
	}
	fs_dirs_free(fs);
	for (inode = fs->all_inodes; inode; inode = next) {
		next = inode->all_next;
		inode_free(inode);
	}
	free(fs->name_map);
}

void fs_handle_track(struct fs *fs, struct fs_handle *h, bool add)
{
	pthread_mutex_lock(&fs->tab_lock);
	if (add) {
		h->prev = NULL;
		h->next = fs->handles;
		if (fs->handles)
			fs->handles->prev = h;
		fs->handles = h;
	} else {
		if (h->prev)
			h->prev->next = h->next;
		else
			fs->handles = h->next;
		if (h->next)
			h->next->prev = h->prev;
	}
	pthread_mutex_unlock(&fs->tab_lock);
}

/*
 * The list of every inode is kept in order of last use by the kernel
 * (LOOKUP, CREATE): most recent first.  The trimmer (trim.c) walks it from
 * the tail.  Caller holds tab_lock.
 */
static void all_list_remove(struct fs *fs, struct fs_inode *inode)
{
	if (inode->all_prev)
		inode->all_prev->all_next = inode->all_next;
	else if (fs->all_inodes == inode)
		fs->all_inodes = inode->all_next;
	if (inode->all_next)
		inode->all_next->all_prev = inode->all_prev;
	else if (fs->all_tail == inode)
		fs->all_tail = inode->all_prev;
	inode->all_next = inode->all_prev = NULL;
}

static void all_list_push(struct fs *fs, struct fs_inode *inode)
{
	inode->all_prev = NULL;
	inode->all_next = fs->all_inodes;
	if (fs->all_inodes)
		fs->all_inodes->all_prev = inode;
	else
		fs->all_tail = inode;
	fs->all_inodes = inode;
}

static struct fs_inode **name_slot(struct fs *fs, const char *name)
{
	return &fs->name_map[be_fnv1a64(name) & (fs->name_map_size - 1)];
}

static void name_map_remove(struct fs *fs, struct fs_inode *inode)
{
	struct fs_inode **p = name_slot(fs, inode->name);

	while (*p && *p != inode)
		p = &(*p)->name_next;
	if (*p)
		*p = inode->name_next;
	inode->name_next = NULL;
	fs->name_count--;
}

static void name_map_grow(struct fs *fs)
{
	size_t nsize = fs->name_map_size * 2, i;
	struct fs_inode **nmap = calloc(nsize, sizeof(*nmap));

	if (!nmap)
		return; /* longer chains, still correct */
	for (i = 0; i < fs->name_map_size; i++) {
		struct fs_inode *inode = fs->name_map[i], *next;

		for (; inode; inode = next) {
			size_t b = be_fnv1a64(inode->name) & (nsize - 1);

			next = inode->name_next;
			inode->name_next = nmap[b];
			nmap[b] = inode;
		}
	}
	free(fs->name_map);
	fs->name_map = nmap;
	fs->name_map_size = nsize;
}

static void name_map_add(struct fs *fs, struct fs_inode *inode)
{
	struct fs_inode **slot;

	if (fs->name_count >= fs->name_map_size)
		name_map_grow(fs);
	slot = name_slot(fs, inode->name);
	inode->name_next = *slot;
	*slot = inode;
	fs->name_count++;
}

static struct fs_inode *name_map_find(struct fs *fs, const char *name)
{
	struct fs_inode *inode = *name_slot(fs, name);

	while (inode && strcmp(inode->name, name) != 0)
		inode = inode->name_next;
	return inode;
}

static void local_list_add(struct fs *fs, struct fs_inode *inode)
{
	inode->local_prev = NULL;
	inode->local_next = fs->local_list;
	if (fs->local_list)
		fs->local_list->local_prev = inode;
	fs->local_list = inode;
}

static void local_list_remove(struct fs *fs, struct fs_inode *inode)
{
	if (inode->local_prev)
		inode->local_prev->local_next = inode->local_next;
	else if (fs->local_list == inode)
		fs->local_list = inode->local_next;
	if (inode->local_next)
		inode->local_next->local_prev = inode->local_prev;
	inode->local_next = inode->local_prev = NULL;
}

/*
 * Decides, under tab_lock, whether 'inode' can go: nobody references it,
 * and it either has no name or is a session inode whose state lives in
 * the store.  Returns true when the caller must free it (outside the lock).
 */
static bool inode_release_locked(struct fs *fs, struct fs_inode *inode)
{
	if (inode->nlookup || inode->nopen || inode->refs)
		return false;
	if (inode->name && inode->local)
		return false; /* a temp keeps its bytes until unlinked */
	if (inode->name)
		name_map_remove(fs, inode);
	if (inode->local)
		fs->local_bytes -= (long long)inode->cap;
	all_list_remove(fs, inode);
	return true;
}

struct fs_inode *fs_inode_get_name(struct fs *fs, const char *name, bool create,
				   bool local)
{
	struct fs_inode *inode;

	pthread_mutex_lock(&fs->tab_lock);
	inode = name_map_find(fs, name);
	if (inode) {
		inode->refs++;
		pthread_mutex_unlock(&fs->tab_lock);
		return inode;
	}
	if (!create) {
		pthread_mutex_unlock(&fs->tab_lock);
		return NULL;
	}
	inode = calloc(1, sizeof(*inode));
	if (inode)
		inode->name = strdup(name);
	if (!inode || !inode->name) {
		pthread_mutex_unlock(&fs->tab_lock);
		free(inode);
		return NULL;
	}
	pthread_mutex_init(&inode->lock, NULL);
	inode->ino = fs->next_ino++;
	inode->generation = fs->next_generation++;
	inode->local = local;
	inode->refs = 1;
	inode->used = fs_mono_ns() / 1000000000LL;
	all_list_push(fs, inode);
	name_map_add(fs, inode);
	if (local)
		local_list_add(fs, inode);
	pthread_mutex_unlock(&fs->tab_lock);
	return inode;
}

struct fs_inode *fs_inode_get(struct fs *fs, fuse_ino_t ino)
{
	struct fs_inode *inode = (struct fs_inode *)(uintptr_t)ino;

	pthread_mutex_lock(&fs->tab_lock);
	inode->refs++;
	pthread_mutex_unlock(&fs->tab_lock);
	return inode;
}

void fs_inode_put(struct fs *fs, struct fs_inode *inode)
{
	bool gone;

	if (!inode)
		return;
	pthread_mutex_lock(&fs->tab_lock);
	inode->refs--;
	gone = inode_release_locked(fs, inode);
	pthread_mutex_unlock(&fs->tab_lock);
	if (gone)
		inode_free(inode);
}

void fs_inode_lookup_inc(struct fs *fs, struct fs_inode *inode)
{
	int64_t now = fs_mono_ns() / 1000000000LL;

	pthread_mutex_lock(&fs->tab_lock);
	inode->nlookup++;
	inode->used = now;
	inode->trimmed = false;
	if (fs->all_inodes != inode) {
		all_list_remove(fs, inode);
		all_list_push(fs, inode);
	}
	pthread_mutex_unlock(&fs->tab_lock);
}

size_t fs_inode_idle_names(struct fs *fs, int64_t used_before, size_t keep,
			   char **names, size_t max)
{
	struct fs_inode *inode, *prev;
	size_t n = 0, over;

	pthread_mutex_lock(&fs->tab_lock);
	over = fs->name_count > keep ? fs->name_count - keep : 0;
	for (inode = fs->all_tail; inode && n < max && n < over; inode = prev) {
		prev = inode->all_prev;
		if (inode->used >= used_before)
			break; /* the rest were used more recently */
		if (!inode->name || inode->local || inode->nopen ||
		    inode->refs || !inode->nlookup || inode->trimmed)
			continue;
		names[n] = strdup(inode->name);
		if (!names[n])
			break;
		n++;
		/*
		 * Asked once; its FORGET will follow.  Moved to the head so
		 * that the next walk from the tail does not step over it.
		 */
		inode->trimmed = true;
		all_list_remove(fs, inode);
		all_list_push(fs, inode);
	}
	pthread_mutex_unlock(&fs->tab_lock);
	return n;
}

void fs_inode_forget(struct fs *fs, fuse_ino_t ino, uint64_t n)
{
	struct fs_inode *inode = (struct fs_inode *)(uintptr_t)ino;
	bool gone;

	if (ino == FUSE_ROOT_ID)
		return;
	pthread_mutex_lock(&fs->tab_lock);
	if (n > inode->nlookup) {
		LOG_ERR("forget of %llu references, only %llu known",
			(unsigned long long)n,
			(unsigned long long)inode->nlookup);
		n = inode->nlookup;
	}
	inode->nlookup -= n;
	gone = inode_release_locked(fs, inode);
	pthread_mutex_unlock(&fs->tab_lock);
	if (gone)
		inode_free(inode);
}

static void detach_locked(struct fs *fs, struct fs_inode *inode)
{
	if (!inode->name)
		return;
	name_map_remove(fs, inode);
	free(inode->name);
	inode->name = NULL;
	if (inode->local)
		local_list_remove(fs, inode);
}

void fs_inode_detach(struct fs *fs, struct fs_inode *inode)
{
	pthread_mutex_lock(&fs->tab_lock);
	detach_locked(fs, inode);
	pthread_mutex_unlock(&fs->tab_lock);
}

int fs_inode_rename(struct fs *fs, struct fs_inode *inode, const char *newname,
		    bool local)
{
	char *copy = strdup(newname);
	struct fs_inode *old;

	if (!copy)
		return -ENOMEM;
	pthread_mutex_lock(&fs->tab_lock);
	old = name_map_find(fs, newname);
	if (old && old != inode) {
		detach_locked(fs, old);
		free(old->replaced);
		old->replaced = strdup(newname);
	}
	detach_locked(fs, inode);
	if (inode->local && !local)
		fs->local_bytes -= (long long)inode->cap;
	inode->name = copy;
	inode->local = local;
	name_map_add(fs, inode);
	if (local)
		local_list_add(fs, inode);
	pthread_mutex_unlock(&fs->tab_lock);
	/*
	 * A detached inode that nobody references is freed when its last
	 * reference (FORGET, RELEASE, or a thread's put) goes.
	 */
	return 0;
}

void fs_inode_drop_bytes(struct fs_inode *inode)
{
	free(inode->data);
	inode->data = NULL;
	inode->len = inode->cap = 0;
	inode->loaded = false;
	inode->prefetched = false;
}

unsigned int fs_inode_open_inc(struct fs *fs, struct fs_inode *inode, int delta)
{
	unsigned int n;

	pthread_mutex_lock(&fs->tab_lock);
	inode->nopen += delta;
	n = inode->nopen;
	pthread_mutex_unlock(&fs->tab_lock);
	return n;
}

struct fs_inode **fs_local_grab(struct fs *fs, size_t *n)
{
	struct fs_inode *inode, **all;
	size_t count = 0;

	pthread_mutex_lock(&fs->tab_lock);
	for (inode = fs->local_list; inode; inode = inode->local_next)
		count++;
	all = calloc(count ? count : 1, sizeof(*all));
	*n = 0;
	for (inode = fs->local_list; all && inode; inode = inode->local_next) {
		inode->refs++;
		all[(*n)++] = inode;
	}
	pthread_mutex_unlock(&fs->tab_lock);
	return all;
}

void fs_inode_unlocal(struct fs *fs, struct fs_inode *inode)
{
	pthread_mutex_lock(&fs->tab_lock);
	if (inode->local) {
		if (inode->name)
			local_list_remove(fs, inode);
		fs->local_bytes -= (long long)inode->cap;
		inode->local = false;
	}
	pthread_mutex_unlock(&fs->tab_lock);
}

void fs_local_foreach(struct fs *fs,
		      void (*cb)(struct fs_inode *inode, void *arg), void *arg)
{
	struct fs_inode *inode;

	pthread_mutex_lock(&fs->tab_lock);
	for (inode = fs->local_list; inode; inode = inode->local_next)
		cb(inode, arg);
	pthread_mutex_unlock(&fs->tab_lock);
}

void fs_local_sweep(struct fs *fs, time_t now)
{
	struct fs_inode *inode, *next, *victims = NULL;

	/*
	 * A temp whose writer died before renaming it (cachelib leaves one
	 * on a failed rename) would hold memory forever: drop it an hour
	 * after its last handle closed, if the kernel no longer knows it.
	 */
	pthread_mutex_lock(&fs->tab_lock);
	for (inode = fs->local_list; inode; inode = next) {
		next = inode->local_next;
		if (inode->nopen || inode->refs || inode->nlookup ||
		    now - inode->closed_at < FS_LOCAL_IDLE_SEC)
			continue;
		LOG_INFO("dropping '%s': unused temp file for an hour",
			 inode->name);
		detach_locked(fs, inode);
		fs->local_bytes -= (long long)inode->cap;
		all_list_remove(fs, inode);
		inode->name_next = victims;
		victims = inode;
	}
	pthread_mutex_unlock(&fs->tab_lock);
	for (inode = victims; inode; inode = next) {
		next = inode->name_next;
		inode_free(inode);
	}
}

int fs_local_charge(struct fs *fs, long long delta)
{
	int ret = 0;

	pthread_mutex_lock(&fs->tab_lock);
	if (delta > 0 && fs->local_bytes + delta > FS_LOCAL_MAX_BYTES)
		ret = -ENOSPC;
	else
		fs->local_bytes += delta;
	pthread_mutex_unlock(&fs->tab_lock);
	return ret;
}

pthread_mutex_t *fs_name_lock(struct fs *fs, const char *name)
{
	return &fs->name_stripes[be_fnv1a64(name) % FS_NAME_STRIPES];
}

void fs_name_lock2(struct fs *fs, const char *a, const char *b)
{
	pthread_mutex_t *la = fs_name_lock(fs, a), *lb = fs_name_lock(fs, b);

	if (la == lb) {
		pthread_mutex_lock(la);
	} else if (la < lb) {
		pthread_mutex_lock(la);
		pthread_mutex_lock(lb);
	} else {
		pthread_mutex_lock(lb);
		pthread_mutex_lock(la);
	}
}

void fs_name_unlock2(struct fs *fs, const char *a, const char *b)
{
	pthread_mutex_t *la = fs_name_lock(fs, a), *lb = fs_name_lock(fs, b);

	pthread_mutex_unlock(la);
	if (lb != la)
		pthread_mutex_unlock(lb);
}
