/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The low-level FUSE operations of sessfs in redis-only mode: one fs_<op>
 * per fuse_lowlevel_ops slot, the fs_oper table at the end.  Each handler
 * ends in exactly one fuse_reply_*.  Session names are read from and
 * written to Redis through backend/store.h (legacy names from the lower
 * dir, copied up once); host-local names live in memory.  fs_i.h states
 * the inode, byte and lock invariants.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h> /* RENAME_NOREPLACE */
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "fs_i.h"
#include "lock.h"
#include "log.h"
#include "lowerstore.h"
#include "metrics.h"

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct fs_handle *handle_of(struct fuse_file_info *fi)
{
	return (struct fs_handle *)(uintptr_t)fi->fh;
}

static struct timespec now_ts(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts;
}

static int64_t ts_ns(struct timespec ts)
{
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static struct timespec ns_ts(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000LL,
			       .tv_nsec = ns % 1000000000LL };

	return ts;
}

/*
 * Maps a store result to what a client may see: the file errors pass,
 * everything about the transport (timeouts, resets, protocol, auth)
 * becomes EIO after being logged once here.
 */
static int store_err(struct fs *fs, int ret, const char *what, const char *name)
{
	fs_route_count(fs, ret < 0 && ret != -ENOENT && ret != -EEXIST);
	if (ret >= 0)
		return ret;
	switch (-ret) {
	case ENOENT:
	case EEXIST:
	case EFBIG:
	case ENOMEM:
	case ENOSPC: /* lower dir full, or Redis out of memory */
	case EDQUOT:
	case EROFS:
		return ret;
	default:
		LOG_WARN("cannot %s '%s' in redis: %s", what, name,
			 strerror(-ret));
		return -EIO;
	}
}

/* Copies the current name of 'inode' (NULL when detached or on ENOMEM). */
static char *inode_name_dup(struct fs *fs, struct fs_inode *inode)
{
	char *name = NULL;

	pthread_mutex_lock(&fs->tab_lock);
	if (inode->name)
		name = strdup(inode->name);
	pthread_mutex_unlock(&fs->tab_lock);
	return name;
}

/*
 * Whether 'h' (NULL: a LOOKUP, or a GETATTR or SETATTR without a handle)
 * sees the uncommitted draft of 'inode' rather than the committed bytes:
 * only a handle that changed the draft does (fs_i.h, the commit point).
 * Caller holds inode->lock.
 */
static bool sees_draft(const struct fs_inode *inode, const struct fs_handle *h)
{
	return !inode->pending || !inode->saved ||
	       (h && h->draft == inode->draft);
}

/* The attributes of 'inode' as 'h' sees them (sees_draft()). */
static const struct fs_attr *attr_seen(const struct fs_inode *inode,
				       const struct fs_handle *h)
{
	return sees_draft(inode, h) ? &inode->attr : &inode->saved_attr;
}

static void attr_to_stat(const struct fs_inode *inode,
			 const struct fs_handle *h, struct stat *st)
{
	const struct fs_attr *a = attr_seen(inode, h);

	memset(st, 0, sizeof(*st));
	st->st_ino = inode->ino;
	st->st_mode = S_IFREG | a->mode;
	st->st_nlink = inode->name ? 1 : 0;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_size = a->size;
	st->st_blksize = 4096;
	st->st_blocks = (a->size + 511) / 512;
	st->st_atim = a->mtime;
	st->st_mtim = a->mtime;
	st->st_ctim = a->ctime;
}

/*
 * Sets the attributes of 'inode' from a file read from the store or the
 * lower dir.  A value without meta (phpredis's native handler wrote it)
 * gets the root directory's owner and mode 0600.
 */
static void attr_from_file(struct fs *fs, struct fs_inode *inode,
			   const struct be_file *f)
{
	struct fs_attr *a = &inode->attr;

	inode->attr_at = fs_mono_ns();
	inode->prefetched = false; /* bytes of an older read: stale now */
	inode->wver = f->has_meta ? f->meta.wver : 0;
	inode->tracked = 0; /* until fs_track_end() says otherwise */
	a->size = f->size;
	a->mtime = ns_ts(f->meta.mtime_ns);
	a->ctime = ns_ts(f->meta.ctime_ns);
	if (f->has_meta) {
		a->mode = f->meta.mode & 07777;
		a->uid = f->meta.uid;
		a->gid = f->meta.gid;
	} else {
		struct stat st;

		a->mode = 0600;
		if (fs_lower_root_stat(fs, &st) == 0) {
			a->uid = st.st_uid;
			a->gid = st.st_gid;
		}
	}
}

void fs_meta_from_attr(struct be_meta *m, const struct fs_attr *a)
{
	memset(m, 0, sizeof(*m));
	m->version = BE_LAYOUT_VERSION;
	m->mtime_ns = ts_ns(a->mtime);
	m->ctime_ns = ts_ns(a->ctime);
	m->uid = a->uid;
	m->gid = a->gid;
	m->mode = a->mode & 07777;
}

/*
 * Reads 'name' through the router (route.c) and keeps the fence of
 * DESIGN.md: a failed read fences the name, a good one lifts the fence.
 * Transport errors become EIO.  Caller holds the name's stripe.
 */
static int read_name_as(struct fs *fs, const char *name, bool want_data,
			bool lift, struct be_file *f)
{
	int ret = store_err(fs, fs_route_get(fs, name, want_data, f), "read",
			    name);

	/*
	 * Only a read of the bytes for an OPEN lifts the fence: cachelib
	 * stats the name (a LOOKUP) between its failed read and its empty
	 * save.
	 */
	if (ret < 0)
		fs_route_fence(fs, name, ret);
	else if (lift)
		fs_route_unfence(fs, name);
	return ret;
}

static int read_name(struct fs *fs, const char *name, bool want_data,
		     struct be_file *f)
{
	return read_name_as(fs, name, want_data, want_data, f);
}

/* The entry of 'inode'; caller holds inode->lock. */
static void fill_entry(struct fuse_entry_param *e, struct fs_inode *inode)
{
	memset(e, 0, sizeof(*e));
	e->ino = (uintptr_t)inode;
	e->generation = inode->generation;
	attr_to_stat(inode, NULL, &e->attr);
	/* Redis can change underneath (other hosts, the tools): no caching. */
	e->attr_timeout = 0;
	e->entry_timeout = 0;
}

/*
 * Replies with an entry for 'inode', counting the kernel's reference.
 * Caller holds no inode lock: the attributes are read under inode->lock,
 * since a WRITE or SETATTR on another thread changes them under it (else
 * a size torn between the committed and the draft attributes).
 */
static void reply_entry(fuse_req_t req, struct fs *fs, struct fs_inode *inode)
{
	struct fuse_entry_param e;

	pthread_mutex_lock(&inode->lock);
	fill_entry(&e, inode);
	pthread_mutex_unlock(&inode->lock);
	fs_inode_lookup_inc(fs, inode);
	if (fuse_reply_entry(req, &e) != 0)
		fs_inode_forget(fs, e.ino, 1); /* the request was interrupted */
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;
	int ret;

	/* The threads start here: after fuse_daemonize() has forked. */
	if (fs_route_start(fs) < 0)
		LOG_ERR("cannot start the repair threads: repairs wait for a remount");
	ret = fs_track_start(fs);
	if (ret < 0)
		LOG_ERR("cannot start the tracker: every lookup asks redis (%s)",
			strerror(-ret));
	ret = fs_lock_start(fs);
	if (ret < 0)
		LOG_ERR("cannot start the lock thread: flock fails with ENOLCK (%s)",
			strerror(-ret));
	ret = fs_ctl_start(fs);
	if (ret < 0)
		LOG_ERR("cannot open the control socket in '%s': %s",
			fs->cfg.ctl_dir, strerror(-ret));
	/* One pwrite of a whole session arrives as one WRITE (commit point). */
	conn->max_write = FS_MAX_WRITE;
	fs->piece_min = FS_MAX_WRITE - (size_t)sysconf(_SC_PAGESIZE) + 1;
	/* An O_TRUNC open reaches us, to be held back like a truncate. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* Write errors must reach write(2), and times are ours: DESIGN.md. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	conn->time_gran = 1;
	/* flock() and fcntl locks reach us (lock.h). */
	if (conn->capable & FUSE_CAP_FLOCK_LOCKS)
		conn->want |= FUSE_CAP_FLOCK_LOCKS;
	if (conn->capable & FUSE_CAP_POSIX_LOCKS)
		conn->want |= FUSE_CAP_POSIX_LOCKS;
}

static int inode_reserve(struct fs *fs, struct fs_inode *inode, size_t size);

/* Whether what 'inode' holds answers without a store call (tracked.c). */
static bool tracked_hit(struct fs *fs, const struct fs_inode *inode)
{
	if (!fs_track_valid(fs, inode))
		return fs_metrics_track_miss(fs);
	atomic_fetch_add(&fs->track_hits, 1);
	return true;
}

/*
 * No handle needs the bytes of the stored 'inode' any more: they stay for
 * the next OPEN while Redis holds them and tracks them (tracked.c), up to
 * FS_PREFETCH_MAX; otherwise they go.  Caller holds inode->lock.
 */
static void release_bytes(struct fs *fs, struct fs_inode *inode)
{
	if (inode->loaded && !inode->pending && inode->len <= FS_PREFETCH_MAX &&
	    fs_track_valid(fs, inode)) {
		inode->loaded = false;
		inode->prefetched = true;
		/*
		 * Not "read just now" for inode_load()'s 5 ms rule: the next
		 * OPEN believes these bytes only through fs_track_valid().
		 */
		inode->attr_at = 0;
		return;
	}
	fs_inode_drop_bytes(inode);
}

/*
 * Reads the bytes and attributes of 'name' from the store into 'inode'
 * (tracked when nothing was invalidated meanwhile).  -ENOENT when the
 * name holds no file.  Caller holds the stripe of 'name' and inode->lock.
 */
static int read_bytes(struct fs *fs, struct fs_inode *inode, const char *name)
{
	struct fs_track_tok tok;
	struct be_file f = { 0 };
	int ret;

	fs_track_begin(fs, name, &tok);
	ret = read_name(fs, name, true, &f);
	if (ret == 0 && f.state != BE_PRESENT)
		ret = -ENOENT;
	if (ret == 0)
		ret = inode_reserve(fs, inode, f.size);
	if (ret == 0) {
		if (f.size)
			memcpy(inode->data, f.data, f.size);
		inode->len = f.size;
		attr_from_file(fs, inode, &f);
		fs_track_end(fs, inode, name, &tok, f.pttl_ms);
	}
	be_file_release(&f);
	return ret;
}

/*
 * Whether every handle open here on 'inode' was closed by the app (FLUSH,
 * no use since) and only waits for its RELEASE, which the kernel sends
 * after close() returned: then its bytes are what this host read or wrote
 * last, not necessarily what the store holds now, unless they were read
 * just now (by this open's LOOKUP, or a CREATE: FS_ATTR_FRESH_NS).  Caller
 * holds inode->lock.
 */
static bool only_closing(const struct fs_inode *inode)
{
	if (inode->nactive)
		return false;
	return inode->attr_at <= inode->flushed_at ||
	       fs_mono_ns() - inode->attr_at >= FS_ATTR_FRESH_NS;
}

/*
 * A loaded inode reads the store again for a new LOOKUP or OPEN when its
 * handles are only closing (only_closing()) and Redis does not vouch for
 * its bytes (tracked.c), or when Redis reported a change by another
 * client or may have while a message is on its way: close-to-open holds
 * even while a handle here lingers (RELEASE is asynchronous) or stays
 * open; the bytes are shared with those handles.  Not while this host has
 * a change pending, nor while a handle here is in use without tracking
 * (DESIGN.md: a handle open here answers from memory).  A name deleted
 * meanwhile is detached, as by an unlink here.  Caller holds the stripe
 * of 'name' and inode->lock.
 */
static int inode_reload(struct fs *fs, struct fs_inode *inode, const char *name)
{
	int ret;

	if (inode->pending || inode->local || !name)
		return 0;
	/*
	 * A message may be on its way: the same check as a cache hit, which
	 * fs_track_valid() makes itself (fs_track_unsure() implies invalid).
	 */
	if (!inode->stale && (only_closing(inode) ? fs_track_valid(fs, inode)
						  : !fs_track_unsure(fs)))
		return 0;
	ret = read_bytes(fs, inode, name);
	if (ret == 0 || ret == -ENOENT)
		inode->stale = false;
	if (ret == -ENOENT)
		fs_inode_detach(fs, inode);
	return ret;
}

/*
 * LOOKUP of a session this host has opened before: PHP and cachelib open
 * right after the lookup, so the lookup fetched the bytes with the
 * attributes (one reply), and an OPEN within FS_ATTR_FRESH_NS uses them
 * instead of a second round trip.  Caller holds inode->lock.
 */
static void keep_prefetched(struct fs *fs, struct fs_inode *inode,
			    const struct be_file *f)
{
	if (f->size > FS_PREFETCH_MAX || inode_reserve(fs, inode, f->size) < 0)
		return;
	if (f->size)
		memcpy(inode->data, f->data, f->size);
	inode->len = f->size;
	inode->prefetched = true;
}

/*
 * Looks 'name' up for LOOKUP and the ops that need the current state:
 * returns a new ref on its inode with fresh attributes, or NULL with
 * '*err'.  An inode with bytes loaded (open here, or host-local) answers
 * from memory; otherwise the store (and the lower dir) is asked.
 */
static struct fs_inode *lookup_name(struct fs *fs, const char *name, int *err)
{
	enum be_name_kind kind = be_name_classify(&fs->sc.ks, name);
	struct fs_inode *inode;
	struct fs_track_tok tok;
	struct be_file f = { 0 };
	bool prefetch = false;
	int ret;

	if (kind == BE_NAME_INVALID) {
		*err = be_name_invalid_errno(name);
		return NULL;
	}
	inode = fs_inode_get_name(fs, name, false, false);
	if (inode) {
		bool known;

		pthread_mutex_lock(&inode->lock);
		ret = inode->loaded ? inode_reload(fs, inode, name) : 0;
		/* Bytes here, or what Redis still holds (tracked.c). */
		known = inode->loaded || tracked_hit(fs, inode);
		prefetch = inode->opened && kind == BE_NAME_SESSION;
		pthread_mutex_unlock(&inode->lock);
		if (ret < 0) {
			fs_inode_put(fs, inode);
			*err = ret;
			return NULL;
		}
		if (known)
			return inode;
	}
	/* A fenced name's bytes wait for a real read by OPEN. */
	if (prefetch && fs_route_is_fenced(fs, name))
		prefetch = false;
	fs_track_begin(fs, name, &tok);
	ret = read_name_as(fs, name, prefetch, false, &f);
	if (ret == 0 && f.state != BE_PRESENT)
		ret = -ENOENT;
	if (ret < 0) {
		be_file_release(&f);
		fs_inode_put(fs, inode);
		*err = ret;
		return NULL;
	}
	if (!inode)
		inode = fs_inode_get_name(fs, name, true, false);
	if (!inode) {
		be_file_release(&f);
		*err = -ENOMEM;
		return NULL;
	}
	pthread_mutex_lock(&inode->lock);
	if (!inode->loaded) {
		attr_from_file(fs, inode, &f);
		fs_track_end(fs, inode, name, &tok, f.pttl_ms);
		if (prefetch)
			keep_prefetched(fs, inode, &f);
	}
	pthread_mutex_unlock(&inode->lock);
	be_file_release(&f);
	return inode;
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	pthread_mutex_t *nl;
	struct fs_inode *inode;
	int err = 0;

	if (parent != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (strcmp(name, BE_CACHELIB_COUNT_NAME) == 0)
		fs_count_refresh(fs); /* count.c: cachelib reads the truth */
	nl = fs_name_lock(fs, name);
	pthread_mutex_lock(nl);
	inode = lookup_name(fs, name, &err);
	pthread_mutex_unlock(nl);
	if (!inode) {
		fuse_reply_err(req, -err);
		return;
	}
	reply_entry(req, fs, inode);
	fs_inode_put(fs, inode);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fs_inode_forget(fs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	struct fs *fs = fs_of(req);
	size_t i;

	for (i = 0; i < count; i++)
		fs_inode_forget(fs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void reply_root_attr(fuse_req_t req, struct fs *fs)
{
	struct stat st;
	int ret = fs_lower_root_stat(fs, &st);

	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	st.st_ino = FUSE_ROOT_ID;
	fuse_reply_attr(req, &st, 0);
}

/*
 * Refreshes the attributes of an inode without bytes in memory from the
 * store; the caller holds inode->lock.  -ENOENT if the name is gone.
 */
static int refresh_attr(struct fs *fs, struct fs_inode *inode, const char *name)
{
	struct fs_track_tok tok;
	struct be_file f = { 0 };
	int ret;

	if (inode->loaded || !name ||
	    fs_mono_ns() - inode->attr_at < FS_ATTR_FRESH_NS ||
	    tracked_hit(fs, inode))
		return 0;
	fs_track_begin(fs, name, &tok);
	ret = read_name(fs, name, false, &f);
	if (ret == 0 && f.state != BE_PRESENT)
		ret = -ENOENT;
	if (ret == 0) {
		attr_from_file(fs, inode, &f);
		fs_track_end(fs, inode, name, &tok, f.pttl_ms);
	}
	be_file_release(&f);
	return ret;
}

/*
 * Locks the stripe of the current name of 'inode', then inode->lock, and
 * returns a copy of that name (NULL for a detached inode).  A rename may
 * move the inode between reading its name and locking the stripe: then
 * both locks are dropped and taken again for the new name, so that the
 * caller's store calls go to the name the inode has.
 */
static char *lock_inode_name(struct fs *fs, struct fs_inode *inode,
			     pthread_mutex_t **nl)
{
	for (;;) {
		char *name = inode_name_dup(fs, inode);
		bool same;

		*nl = name ? fs_name_lock(fs, name) : NULL;
		if (*nl)
			pthread_mutex_lock(*nl);
		pthread_mutex_lock(&inode->lock);
		pthread_mutex_lock(&fs->tab_lock);
		same = name ? inode->name && strcmp(inode->name, name) == 0
			    : !inode->name;
		pthread_mutex_unlock(&fs->tab_lock);
		if (same)
			return name;
		pthread_mutex_unlock(&inode->lock);
		if (*nl)
			pthread_mutex_unlock(*nl);
		free(name);
	}
}

static void unlock_inode_name(struct fs_inode *inode, char *name,
			      pthread_mutex_t *nl)
{
	pthread_mutex_unlock(&inode->lock);
	if (nl)
		pthread_mutex_unlock(nl);
	free(name);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *inode;
	struct stat st;
	char *name;
	int ret;

	if (ino == FUSE_ROOT_ID) {
		reply_root_attr(req, fs);
		return;
	}
	inode = fs_inode_get(fs, ino);
	name = inode_name_dup(fs, inode);
	pthread_mutex_lock(&inode->lock);
	ret = refresh_attr(fs, inode, name);
	/* With FUSE_GETATTR_FH (a read past i_size): that handle's view. */
	attr_to_stat(inode, fi ? handle_of(fi) : NULL, &st);
	pthread_mutex_unlock(&inode->lock);
	free(name);
	fs_inode_put(fs, inode);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_attr(req, &st, 0);
}

/* Grows the byte buffer of 'inode' to hold 'size' bytes. */
static int inode_reserve(struct fs *fs, struct fs_inode *inode, size_t size)
{
	size_t ncap = inode->cap ? inode->cap : 64;
	char *p;
	int ret;

	if (size <= inode->cap)
		return 0;
	while (ncap < size)
		ncap *= 2;
	if (inode->local) {
		ret = fs_local_charge(fs, (long long)(ncap - inode->cap));
		if (ret < 0)
			return ret;
	}
	p = realloc(inode->data, ncap);
	if (!p) {
		if (inode->local)
			fs_local_charge(fs, -(long long)(ncap - inode->cap));
		return -ENOMEM;
	}
	inode->data = p;
	inode->cap = ncap;
	return 0;
}

/*
 * Starts a change of the bytes that the store does not have yet, or joins
 * the one pending: the bytes become a draft that 'h' (NULL: no handle, a
 * change committed at once) sees from now on, while everybody else sees
 * the committed copy kept here, which a failed commit also puts back.
 * Host-local and detached inodes keep no copy (fs_i.h).
 */
static int begin_change(struct fs_inode *inode, struct fs_handle *h)
{
	if (!inode->pending && !inode->local && inode->name) {
		inode->saved = malloc(inode->len ? inode->len : 1);
		if (!inode->saved)
			return -ENOMEM;
		if (inode->len)
			memcpy(inode->saved, inode->data, inode->len);
		inode->saved_len = inode->len;
		inode->saved_attr = inode->attr;
	}
	if (!inode->pending) {
		inode->draft++;
		inode->draft_written = false;
	}
	inode->pending = true;
	inode->wver = 0; /* the bytes are no longer those read */
	if (h)
		h->draft = inode->draft;
	return 0;
}

/*
 * Ends the pending change: committed ('restore' false), or failed, when
 * the committed bytes and attributes are put back.
 */
static void end_change(struct fs_inode *inode, bool restore)
{
	if (restore && inode->saved) {
		if (inode->saved_len)
			memcpy(inode->data, inode->saved, inode->saved_len);
		inode->len = inode->saved_len;
		inode->attr = inode->saved_attr;
	}
	free(inode->saved);
	inode->saved = NULL;
	inode->pending = false;
}

/*
 * A change of 'inode' failed before it touched the draft: if it began the
 * change, nothing else is held and the change ends; a draft pending before
 * it holds bytes already acknowledged to the app (a held piece of a
 * write(2), a truncate) and stays for the next WRITE or FLUSH to commit.
 */
static void undo_change(struct fs_inode *inode, bool was_pending)
{
	if (!was_pending)
		end_change(inode, true);
}

/* Sets the length of the bytes to 'size', zero-filling growth. */
static int inode_resize(struct fs *fs, struct fs_inode *inode, size_t size)
{
	int ret = inode_reserve(fs, inode, size);

	if (ret < 0)
		return ret;
	if (size > inode->len)
		memset(inode->data + inode->len, 0, size - inode->len);
	inode->len = size;
	inode->attr.size = size;
	return 0;
}

/*
 * The commit point: writes the bytes and attributes of 'inode' to the
 * store as one atomic update of 'name' when they differ from it.  On
 * failure the stored bytes are restored in memory, so the file shows what
 * the store holds, unless 'keep' asks to leave the draft pending (the
 * caller undoes its own part).  Caller holds the name's stripe and
 * inode->lock.
 */
static int inode_commit(struct fs *fs, struct fs_inode *inode, const char *name,
			bool keep)
{
	struct fs_track_tok tok;
	struct be_meta meta;
	int ret;

	if (!inode->pending)
		return 0;
	if (inode->local || !name) {
		end_change(inode, false);
		return 0;
	}
	fs_meta_from_attr(&meta, &inode->attr);
	fs_track_begin(fs, name, &tok);
	ret = fs_route_put(fs, name, inode->data ? inode->data : "", inode->len,
			   &meta);
	ret = store_err(fs, ret, "write", name);
	if (ret == 0 || !keep)
		end_change(inode, ret < 0);
	/* Written through the name's tracked connection: Redis holds it. */
	if (ret == 0) {
		fs_track_end(fs, inode, name, &tok, 0);
		inode->stale = false; /* ours replaced the other change */
	} else {
		inode->tracked = 0;
	}
	return ret;
}

/* Loads the bytes of a session inode from the store (first open). */
static int inode_load(struct fs *fs, struct fs_inode *inode, const char *name)
{
	int ret;

	if (inode->loaded)
		return inode_reload(fs, inode, name);
	if (inode->prefetched) {
		inode->prefetched = false;
		if (name && fs_mono_ns() - inode->attr_at < FS_ATTR_FRESH_NS) {
			inode->loaded = true; /* read by the LOOKUP just now */
			fs_route_unfence(fs, name);
			return 0;
		}
		/* Bytes Redis still holds (tracked.c); a fence needs a read. */
		if (name && !fs_route_is_fenced(fs, name) &&
		    tracked_hit(fs, inode)) {
			inode->loaded = true;
			return 0;
		}
	}
	/*
	 * Renamed over between the kernel's LOOKUP and this OPEN: the old
	 * bytes are gone from the store, so the open gets what the name holds
	 * now.  A reader racing a rename sees the old or the new file, never
	 * ENOENT; an unlinked file is gone (Django expects ENOENT then).
	 */
	if (!name) {
		char *replaced = NULL;

		pthread_mutex_lock(&fs->tab_lock);
		if (inode->replaced)
			replaced = strdup(inode->replaced);
		pthread_mutex_unlock(&fs->tab_lock);
		if (!replaced)
			return -ENOENT;
		ret = inode_load(fs, inode, replaced);
		free(replaced);
		return ret;
	}
	ret = read_bytes(fs, inode, name);
	if (ret == 0)
		inode->loaded = true;
	return ret;
}

/*
 * Sets the size of 'inode' to 'size'.  Through the handle 'h', the change
 * is held back to its next WRITE or FLUSH (DESIGN.md, the commit point)
 * and only 'h' sees it meanwhile; without one it commits at once.
 */
static int setattr_size(struct fs *fs, struct fs_inode *inode, const char *name,
			off_t size, struct fs_handle *h)
{
	bool was_pending = inode->pending;
	int ret;

	if ((size_t)size > fs->max_size)
		return -EFBIG;
	/* A fenced name must not be truncated: DESIGN.md, failed reads. */
	if (!inode->local && name && fs_route_is_fenced(fs, name))
		return -EIO;
	ret = begin_change(inode, h);
	if (ret == 0)
		ret = inode_resize(fs, inode, size);
	if (ret < 0) {
		undo_change(inode, was_pending);
		return ret;
	}
	inode->attr.mtime = inode->attr.ctime = now_ts();
	return h ? 0 : inode_commit(fs, inode, name, false);
}

static void apply_attr(struct fs_attr *a, const struct stat *st, int to_set)
{
	struct timespec now = now_ts();

	if (to_set & FUSE_SET_ATTR_MODE)
		a->mode = st->st_mode & 07777;
	if (to_set & FUSE_SET_ATTR_UID)
		a->uid = st->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		a->gid = st->st_gid;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		a->mtime = now;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		a->mtime = st->st_mtim;
	a->ctime = now;
}

/* chmod, chown, utimens of a session without touching its bytes. */
static int setattr_meta(struct fs *fs, struct fs_inode *inode, const char *name,
			const struct stat *st, int to_set)
{
	struct fs_attr a = inode->attr;
	struct be_meta meta;
	int ret = 0;

	apply_attr(&a, st, to_set);
	/*
	 * A chmod/chown to what the file already has (cachelib chmods every
	 * file it has just renamed into place), or an atime-only change: no
	 * store write, no round trip.  Its ctime stays that of the last real
	 * change.
	 */
	if (!(to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) &&
	    a.mode == inode->attr.mode && a.uid == inode->attr.uid &&
	    a.gid == inode->attr.gid)
		return 0;
	if (!inode->local && name) {
		struct fs_track_tok tok;
		/*
		 * With a draft pending, the store gets the committed file with
		 * the change, so a failed commit cannot undo what this call
		 * acknowledged; the draft carries it along too.
		 */
		bool held = inode->pending && inode->saved;
		struct fs_attr c = held ? inode->saved_attr : a;

		if (held)
			apply_attr(&c, st, to_set);
		fs_meta_from_attr(&meta, &c);
		fs_track_begin(fs, name, &tok);
		ret = fs_route_setmeta(fs, name, &meta);
		ret = store_err(fs, ret, "change the metadata of", name);
		if (ret == 0)
			fs_track_end(fs, inode, name, &tok, 0);
		else
			inode->tracked = 0;
		if (ret == 0 && held)
			inode->saved_attr = c;
	}
	if (ret == 0)
		inode->attr = a;
	return ret;
}

static int setattr_root(struct fs *fs, struct stat *st, int to_set)
{
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT },
				  { .tv_nsec = UTIME_OMIT } };

	if ((to_set & FUSE_SET_ATTR_MODE) &&
	    fchmod(fs->lower_fd, st->st_mode & 07777) < 0)
		return -errno;
	if ((to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) &&
	    fchown(fs->lower_fd,
		   (to_set & FUSE_SET_ATTR_UID) ? st->st_uid : (uid_t)-1,
		   (to_set & FUSE_SET_ATTR_GID) ? st->st_gid : (gid_t)-1) < 0)
		return -errno;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		ts[1].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		ts[1] = st->st_mtim;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		ts[0].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		ts[0] = st->st_atim;
	if (futimens(fs->lower_fd, ts) < 0)
		return -errno;
	return 0;
}

/*
 * A READ, WRITE or truncate through 'h': a FLUSH it had was the close of
 * one of several descriptors (dup, fork), the file is still in use.
 * Caller holds h->inode->lock.
 */
static void handle_used(struct fs_handle *h)
{
	if (h->flushed) {
		h->flushed = false;
		h->inode->nactive++;
	}
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *inode;
	pthread_mutex_t *nl = NULL;
	struct stat st;
	char *name;
	int ret;

	if (ino == FUSE_ROOT_ID) {
		ret = setattr_root(fs, attr, to_set);
		if (ret < 0)
			fuse_reply_err(req, -ret);
		else
			reply_root_attr(req, fs);
		return;
	}
	inode = fs_inode_get(fs, ino);
	name = lock_inode_name(fs, inode, &nl);
	if (fi && (to_set & FUSE_SET_ATTR_SIZE))
		handle_used(handle_of(fi));
	ret = refresh_attr(fs, inode, name);
	if (ret == 0 && (to_set & FUSE_SET_ATTR_SIZE)) {
		/* ftruncate() through an open handle is held back. */
		struct fs_handle *h = fi && inode->loaded ? handle_of(fi)
							  : NULL;

		ret = inode_load(fs, inode, name);
		if (ret == 0)
			ret = setattr_size(fs, inode, name, attr->st_size, h);
		if (ret == 0 && !inode->local &&
		    fs_inode_open_inc(fs, inode, 0) == 0) {
			/* truncate(path) with no handle open: nothing to keep */
			fs_inode_drop_bytes(inode);
		}
	}
	if (ret == 0 && (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID |
				   FUSE_SET_ATTR_GID | FUSE_SET_ATTR_MTIME |
				   FUSE_SET_ATTR_MTIME_NOW)))
		ret = setattr_meta(fs, inode, name, attr, to_set);
	attr_to_stat(inode, fi ? handle_of(fi) : NULL, &st);
	unlock_inode_name(inode, name, nl);
	fs_inode_put(fs, inode);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_attr(req, &st, 0);
}

static void handle_close(struct fs *fs, fuse_ino_t ino,
			 struct fuse_file_info *fi);

/*
 * Opens 'inode' (ref held, stripe and inode->lock held): loads its bytes
 * on the first open, holds an O_TRUNC back, and fills 'fi'.
 */
static int open_locked(struct fs *fs, struct fs_inode *inode, const char *name,
		       struct fuse_file_info *fi)
{
	struct fs_handle *h;
	int ret;

	ret = inode_load(fs, inode, name);
	if (ret < 0)
		return ret;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	/* O_TRUNC is held back like ftruncate(), seen by this handle only. */
	if (fi->flags & O_TRUNC) {
		ret = setattr_size(fs, inode, name, 0, inode->local ? NULL : h);
		if (ret < 0) {
			free(h);
			return ret;
		}
	}
	h->inode = inode;
	h->flags = fi->flags;
	inode->opened = true;
	inode->nactive++;
	fs_handle_track(fs, h, true);
	fs_inode_open_inc(fs, inode, 1);
	fi->fh = (uintptr_t)h;
	/* A new open must see what another host stored meanwhile. */
	fi->keep_cache = 0;
	/*
	 * Every READ reaches us, whatever size the kernel believes: that
	 * size is one per file for every open on this host, set by any
	 * handle's reply, a held truncate's too, and a GETATTR that races a
	 * size change is dropped by the kernel.  Only we know what each
	 * handle may see (sees_draft()).
	 */
	fi->direct_io = 1;
	return 0;
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *inode = fs_inode_get(fs, ino);
	pthread_mutex_t *nl;
	char *name = lock_inode_name(fs, inode, &nl);
	int ret;

	ret = open_locked(fs, inode, name, fi);
	unlock_inode_name(inode, name, nl);
	/* The handle keeps the inode alive (nopen); the thread's ref goes. */
	fs_inode_put(fs, inode);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else if (fuse_reply_open(req, fi) != 0)
		handle_close(fs, ino, fi); /* the request was interrupted */
}

/*
 * Whether cachelib's count file lives in the lower dir: in files and
 * dual-write like every host-local name, and in redis-first, which keeps
 * the lower dir current, so that the unmount leaves the count it showed.
 */
static bool count_in_lower(struct fs *fs, const char *name)
{
	return fs_mode_count_in_lower(fs_mode_get(fs)) &&
	       strcmp(name, BE_CACHELIB_COUNT_NAME) == 0;
}

/* Whether a new host-local name lives in memory (redis-first, -only). */
static bool local_in_memory(struct fs *fs, const char *name)
{
	return be_name_classify(&fs->sc.ks, name) == BE_NAME_LOCAL &&
	       fs_mode_locals_in_memory(fs_mode_get(fs)) &&
	       !count_in_lower(fs, name);
}

static struct fs_inode *create_memory_local(fuse_req_t req, const char *name,
					    mode_t mode, int *err)
{
	struct fs *fs = fs_of(req);
	struct timespec now = now_ts();
	struct fs_inode *inode;

	fs_local_sweep(fs, now.tv_sec);
	inode = fs_inode_get_name(fs, name, true, true);
	if (!inode) {
		*err = -ENOMEM;
		return NULL;
	}
	pthread_mutex_lock(&inode->lock);
	inode->attr.mode = mode & 07777;
	inode->attr.uid = fuse_req_ctx(req)->uid;
	inode->attr.gid = fuse_req_ctx(req)->gid;
	inode->attr.mtime = inode->attr.ctime = now;
	inode->loaded = true;
	pthread_mutex_unlock(&inode->lock);
	return inode;
}

/*
 * CREATE and MKNOD: creates or opens 'name' ('fi' NULL for mknod).  O_EXCL
 * is atomic: the stores decide for every host (the CREATE script, O_EXCL in
 * the lower dir), the name's stripe for this one.  Returns a new ref on the
 * inode, or NULL + '*err'.
 */
static struct fs_inode *create_name(fuse_req_t req, const char *name,
				    mode_t mode, struct fuse_file_info *fi,
				    int *err)
{
	struct fs *fs = fs_of(req);
	bool excl = !fi || (fi->flags & O_EXCL), created = false;
	struct fs_track_tok tok;
	struct be_file f = { 0 };
	struct be_meta meta = { 0 };
	struct fs_inode *inode;
	int ret = 0;

	if (be_name_classify(&fs->sc.ks, name) == BE_NAME_INVALID) {
		*err = be_name_invalid_errno(name);
		return NULL;
	}
	inode = fs_inode_get_name(fs, name, false, false);
	if (inode) {
		pthread_mutex_lock(&inode->lock);
		ret = inode->loaded ? inode_reload(fs, inode, name) : 0;
		if (ret == 0 && inode->loaded)
			ret = excl ? -EEXIST : 0;
		else if (ret == 0)
			ret = 1; /* known name, no bytes here: ask the store */
		pthread_mutex_unlock(&inode->lock);
		if (ret == -ENOENT) {
			/* Deleted by another host: detached, the name is free. */
			fs_inode_put(fs, inode);
			inode = NULL;
			ret = 1;
		}
		if (ret <= 0)
			goto out;
		ret = 0;
	}
	if (!inode && local_in_memory(fs, name))
		return create_memory_local(req, name, mode, err);

	meta.version = BE_LAYOUT_VERSION;
	meta.mtime_ns = meta.ctime_ns = fs_now_ns();
	meta.uid = fuse_req_ctx(req)->uid;
	meta.gid = fuse_req_ctx(req)->gid;
	meta.mode = mode & 07777;
	fs_track_begin(fs, name, &tok);
	ret = store_err(fs, fs_route_create(fs, name, &meta, &f, &created),
			"create", name);
	if (ret == 0 && !created && f.state != BE_PRESENT)
		ret = -EIO; /* exists, yet unreadable: never create over it */
	if (ret == 0 && !created && excl)
		ret = -EEXIST;
	if (ret < 0)
		goto out;
	if (created) {
		f.state = BE_PRESENT;
		f.has_meta = true;
		f.meta = meta;
		f.size = 0;
	}
	if (!inode)
		inode = fs_inode_get_name(fs, name, true, false);
	if (!inode) {
		ret = -ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&inode->lock);
	if (!inode->loaded) {
		attr_from_file(fs, inode, &f);
		fs_track_end(fs, inode, name, &tok, created ? 0 : f.pttl_ms);
		/*
		 * Created empty for an open (CREATE): its bytes are known,
		 * the open need not read them back.  A failed open undoes it.
		 */
		if (created && fi) {
			inode->len = 0;
			inode->loaded = true;
		}
	}
	pthread_mutex_unlock(&inode->lock);
out:
	be_file_release(&f);
	if (ret < 0) {
		fs_inode_put(fs, inode);
		*err = ret;
		return NULL;
	}
	return inode;
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fuse_entry_param e;
	struct fs_inode *inode;
	pthread_mutex_t *nl;
	int err = 0;

	if (parent != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	nl = fs_name_lock(fs, name);
	pthread_mutex_lock(nl);
	inode = create_name(req, name, mode, fi, &err);
	if (inode)
		fs_count_changed(fs, name, false);
	if (inode) {
		pthread_mutex_lock(&inode->lock);
		err = open_locked(fs, inode, name, fi);
		if (err < 0 && !inode->local &&
		    fs_inode_open_inc(fs, inode, 0) == 0) {
			fs_inode_drop_bytes(inode);
		}
		fill_entry(&e, inode);
		pthread_mutex_unlock(&inode->lock);
	}
	pthread_mutex_unlock(nl);
	if (!inode) {
		fuse_reply_err(req, -err);
		return;
	}
	if (err < 0) {
		fs_inode_put(fs, inode);
		fuse_reply_err(req, -err);
		return;
	}
	fs_inode_lookup_inc(fs, inode);
	fs_inode_put(fs, inode);
	if (fuse_reply_create(req, &e, fi) != 0) {
		handle_close(fs, e.ino, fi);
		fs_inode_forget(fs, e.ino, 1);
	}
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *inode;
	pthread_mutex_t *nl;
	int err = 0;

	if (!S_ISREG(mode)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (parent != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	nl = fs_name_lock(fs, name);
	pthread_mutex_lock(nl);
	inode = create_name(req, name, mode, NULL, &err);
	if (inode)
		fs_count_changed(fs, name, false);
	pthread_mutex_unlock(nl);
	if (!inode) {
		fuse_reply_err(req, -err);
		return;
	}
	reply_entry(req, fs, inode);
	fs_inode_put(fs, inode);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs_handle *h = handle_of(fi);
	struct fs_inode *inode = h->inode;
	const char *data;
	size_t len, n = 0;

	pthread_mutex_lock(&inode->lock);
	handle_used(h);
	/* Another handle's uncommitted draft is not for this one to see. */
	data = sees_draft(inode, h) ? inode->data : inode->saved;
	len = sees_draft(inode, h) ? inode->len : inode->saved_len;
	if ((size_t)off < len) {
		n = len - off;
		if (n > size)
			n = size;
	}
	/* fuse_reply_buf copies before returning: the lock covers it. */
	fuse_reply_buf(req, n ? data + off : NULL, n);
	pthread_mutex_unlock(&inode->lock);
}

/* What a WRITE into a draft overwrote, to undo it alone (fs_write()). */
struct write_undo {
	size_t len; /* the draft's length before */
	struct fs_attr attr;
	off_t off;
	char *old; /* the bytes at 'off' it overwrote: 'nold' of them */
	size_t nold;
	bool taken;
};

/*
 * Keeps in 'u' what a WRITE of 'size' bytes at 'off' will change in the
 * draft of 'inode', when 'keep' (the draft outlives the WRITE's failure).
 * 0 or -ENOMEM.
 */
static int write_undo_take(struct write_undo *u, const struct fs_inode *inode,
			   off_t off, size_t size, bool keep)
{
	size_t n = 0;

	if (!keep)
		return 0;
	if ((size_t)off < inode->len) {
		n = inode->len - off < size ? inode->len - off : size;
		u->old = malloc(n);
		if (!u->old)
			return -ENOMEM;
		memcpy(u->old, inode->data + off, n);
	}
	u->nold = n;
	u->len = inode->len;
	u->attr = inode->attr;
	u->off = off;
	u->taken = true;
	return 0;
}

/* Puts back what the WRITE of 'u' changed, if it was taken. */
static void write_undo_apply(const struct write_undo *u, struct fs_inode *inode)
{
	if (!u->taken)
		return;
	if (u->nold)
		memcpy(inode->data + u->off, u->old, u->nold);
	inode->len = u->len;
	inode->attr = u->attr;
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_handle *h = handle_of(fi);
	struct fs_inode *inode = h->inode;
	pthread_mutex_t *nl;
	char *name = lock_inode_name(fs, inode, &nl);
	size_t end = (size_t)off + size;
	struct write_undo undo = { 0 };
	int ret = 0;

	handle_used(h);
	/*
	 * A draft holding bytes acknowledged to the app (a held piece of a
	 * write(2): it returns their count even when a later piece fails)
	 * outlives a failure of this WRITE, which then undoes only itself;
	 * otherwise (nothing pending, or a held truncate) a failure ends the
	 * draft and the committed bytes stay: DESIGN.md, the commit point.
	 */
	bool keep = inode->pending && inode->draft_written;

	/*
	 * A WRITE of piece_min bytes or more may be the first piece of a
	 * larger write(2).  When it ends within a page of max_size, a piece
	 * after it would not fit, and we cannot know whether one follows: it
	 * is refused and the whole call fails with nothing changed.  The
	 * price, at the default max_size (= max_write): one write(2) of the
	 * last page below max_size or more fails too.
	 */
	bool piece = size >= fs->piece_min;
	size_t page = FS_MAX_WRITE - fs->piece_min + 1;

	if (end > fs->max_size || (piece && end + page > fs->max_size && !keep))
		ret = -EFBIG;
	if (ret == 0)
		ret = begin_change(inode, h);
	if (ret == 0)
		ret = write_undo_take(&undo, inode, off, size, keep);
	if (ret == 0 && end > inode->len)
		ret = inode_resize(fs, inode, end);
	if (ret == 0) {
		memcpy(inode->data + off, buf, size);
		inode->attr.mtime = inode->attr.ctime = now_ts();
		/*
		 * A WRITE that may be a piece of a larger write(2) the kernel
		 * split is held: the next WRITE or FLUSH commits.
		 */
		if (!piece)
			ret = inode_commit(fs, inode, name, keep);
		else
			inode->draft_written = true;
	}
	if (ret < 0 && keep)
		write_undo_apply(&undo, inode);
	else if (ret < 0)
		end_change(inode, true);
	free(undo.old);
	unlock_inode_name(inode, name, nl);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_write(req, size);
}

/*
 * FLUSH (a close() of the handle's file) and FSYNC: both commit, and
 * return 0 or -errno.
 */
static int commit_handle(fuse_req_t req, struct fuse_file_info *fi,
			 bool closing)
{
	struct fs *fs = fs_of(req);
	struct fs_handle *h = handle_of(fi);
	struct fs_inode *inode = h->inode;
	pthread_mutex_t *nl;
	char *name = lock_inode_name(fs, inode, &nl);
	int ret;

	/* Another handle's draft is that handle's to commit. */
	ret = sees_draft(inode, h) ? inode_commit(fs, inode, name, false) : 0;
	if (closing && !h->flushed) {
		h->flushed = true;
		if (--inode->nactive == 0)
			inode->flushed_at = fs_mono_ns();
	}
	unlock_inode_name(inode, name, nl);
	return ret;
}

static void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int ret = commit_handle(req, fi, true);

	/* Any close drops the process's fcntl locks: after the commit. */
	fs_lock_flush_owner(fs_of(req), ino, fi->lock_owner);
	fuse_reply_err(req, -ret);
}

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	fuse_reply_err(req, -commit_handle(req, fi, false));
}

/*
 * Closes the handle in 'fi': drops bytes that were never committed (a
 * FLUSH failed) and, with the last handle, a session inode's bytes.
 */
static void handle_close(struct fs *fs, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	struct fs_handle *h = handle_of(fi);
	struct fs_inode *inode = fs_inode_get(fs, ino);

	pthread_mutex_lock(&inode->lock);
	if (!h->flushed)
		inode->nactive--;
	/*
	 * A draft this handle changed and no FLUSH committed goes; another
	 * handle's stays for that handle's next WRITE or FLUSH.
	 */
	if (inode->pending && !inode->local && h->draft == inode->draft)
		end_change(inode, true);
	if (fs_inode_open_inc(fs, inode, -1) == 0) {
		if (inode->local)
			inode->closed_at = now_ts().tv_sec;
		else
			release_bytes(fs, inode);
	}
	pthread_mutex_unlock(&inode->lock);
	fs_handle_track(fs, h, false);
	free(h);
	/* The last reference may be ours: put frees an unreferenced inode. */
	fs_inode_put(fs, inode);
}

/* RELEASE is asynchronous: it never commits (FLUSH did, or failed). */
static void fs_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	/* The last close of a file that was flock()ed drops its lock. */
	if (fi->flock_release)
		fs_lock_release_owner(fs_of(req), fi->lock_owner);
	handle_close(fs_of(req), ino, fi);
	fuse_reply_err(req, 0);
}

int fs_flock_refresh(struct fs *fs, uint64_t nodeid, uint64_t wver)
{
	struct fs_inode *inode = fs_inode_get(fs, nodeid);
	pthread_mutex_t *nl;
	char *name = lock_inode_name(fs, inode, &nl);
	int ret = 0;

	/*
	 * Unloaded bytes are read at the next OPEN anyway.  Bytes read at
	 * the write version Redis still had once the lock was ours are
	 * current: every write of a sessfs bumps it (lock.c, slot_fill()).
	 */
	if (inode->loaded && !(wver && inode->wver == wver)) {
		inode->stale = true;
		ret = inode_reload(fs, inode, name);
	}
	unlock_inode_name(inode, name, nl);
	fs_inode_put(fs, inode);
	return ret;
}

/*
 * The name of 'ino' for its lock across hosts (NULL: the root, or
 * detached), and whether it is host-local.  The caller frees it.
 */
static char *lock_name(struct fs *fs, fuse_ino_t ino, bool *local)
{
	struct fs_inode *inode;
	char *name;

	*local = true;
	if (ino == FUSE_ROOT_ID)
		return NULL;
	inode = fs_inode_get(fs, ino);
	name = inode_name_dup(fs, inode);
	*local = inode->local;
	fs_inode_put(fs, inode);
	return name;
}

/*
 * flock(2) and fcntl(2) locks on a file: lock.c decides, and replies now
 * or, for a lock that waits, later.
 */
static void fs_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     int op)
{
	struct fs *fs = fs_of(req);
	bool local;
	char *name = lock_name(fs, ino, &local);

	fs_lock_flock(fs, req, name, ino, local, fi->lock_owner, op);
	free(name);
}

static void fs_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     struct flock *lock)
{
	struct fs *fs = fs_of(req);
	bool local;
	char *name = lock_name(fs, ino, &local);

	fs_lock_getlk(fs, req, name, ino, local, fi->lock_owner, lock);
	free(name);
}

static void fs_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     struct flock *lock, int sleep)
{
	struct fs *fs = fs_of(req);
	bool local;
	char *name = lock_name(fs, ino, &local);

	fs_lock_setlk(fs, req, name, ino, local, fi->lock_owner, lock, sleep);
	free(name);
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	enum be_name_kind kind = be_name_classify(&fs->sc.ks, name);
	pthread_mutex_t *nl = fs_name_lock(fs, name);
	struct fs_inode *inode;
	int64_t mtime_ns;
	bool local = false;
	int ret = 0;

	if (parent != FUSE_ROOT_ID || kind == BE_NAME_INVALID) {
		fuse_reply_err(req, parent != FUSE_ROOT_ID
					    ? ENOENT
					    : -be_name_invalid_errno(name));
		return;
	}
	pthread_mutex_lock(nl);
	inode = fs_inode_get_name(fs, name, false, false);
	mtime_ns = fs_now_ns();
	if (inode) {
		pthread_mutex_lock(&inode->lock);
		mtime_ns = ts_ns(inode->attr.mtime);
		local = inode->local;
		pthread_mutex_unlock(&inode->lock);
	}
	if (!local) {
		ret = fs_route_delete(fs, name, mtime_ns);
		ret = store_err(fs, ret, "delete", name);
		if (ret == 0)
			ret = -ENOENT; /* nothing there: deleted first elsewhere */
		else if (ret > 0)
			ret = 0;
	}
	if (inode && ret == 0)
		fs_inode_detach(fs, inode);
	if (ret == 0)
		fs_count_changed(fs, name, true);
	pthread_mutex_unlock(nl);
	fs_inode_put(fs, inode);
	fuse_reply_err(req, -ret);
}

/*
 * Renames the host-local 'inode' onto the name 'newname' of a store: one
 * atomic update of the target with the temp's bytes and attributes (no
 * Redis RENAME: no cross-slot problem).  A temp in the lower dir is
 * renamed there (that is the lower write).  Caller holds both stripes and
 * inode->lock.
 */
static int rename_to_store(struct fs *fs, struct fs_inode *inode,
			   const char *name, const char *newname,
			   unsigned int flags)
{
	struct fs_track_tok tok;
	struct be_file f = { 0 };
	struct be_meta meta;
	int ret = 0;

	if (flags & RENAME_NOREPLACE) {
		ret = read_name(fs, newname, false, &f);
		if (ret == 0 && f.state == BE_PRESENT)
			ret = -EEXIST;
		be_file_release(&f);
	}
	if (ret == 0 && !inode->local)
		ret = inode_load(fs, inode, name);
	if (ret < 0)
		return ret;
	inode->attr.ctime = now_ts();
	fs_meta_from_attr(&meta, &inode->attr);
	fs_track_begin(fs, newname, &tok);
	if (inode->local)
		ret = fs_route_put(fs, newname, inode->data ? inode->data : "",
				   inode->len, &meta);
	else
		ret = fs_route_rename_lower_temp(fs, name, newname,
						 inode->data ? inode->data : "",
						 inode->len, &meta);
	ret = store_err(fs, ret, "write", newname);
	if (ret < 0)
		return ret;
	ret = fs_inode_rename(fs, inode, newname, false);
	if (ret < 0)
		return ret;
	/* The bytes went through the tracked connection of 'newname'. */
	inode->loaded = true;
	fs_track_end(fs, inode, newname, &tok, 0);
	/* A stored inode holds bytes only while a handle is open. */
	if (fs_inode_open_inc(fs, inode, 0) == 0)
		release_bytes(fs, inode);
	return ret;
}

/*
 * A temp in memory renamed onto a name kept in the lower dir (cachelib's
 * count file in redis-first): its bytes become that lower file, and the
 * temp's name goes.  Caller holds both stripes and inode->lock.
 */
static int local_rename_to_lower(struct fs *fs, struct fs_inode *inode,
				 const char *newname, unsigned int flags)
{
	if ((flags & RENAME_NOREPLACE) &&
	    faccessat(fs->lower_fd, newname, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	return fs_local_to_lower(fs, inode, newname);
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	struct fs *fs = fs_of(req);
	enum be_name_kind from = be_name_classify(&fs->sc.ks, name);
	enum be_name_kind to = be_name_classify(&fs->sc.ks, newname);
	struct fs_inode *inode, *target;
	int ret = 0;

	if (parent != FUSE_ROOT_ID || newparent != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (flags & ~RENAME_NOREPLACE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (from == BE_NAME_INVALID || to == BE_NAME_INVALID) {
		fuse_reply_err(req, -be_name_invalid_errno(
					    from == BE_NAME_INVALID ? name
								    : newname));
		return;
	}
	/* Between session names: mv falls back to copy + unlink. */
	if (from != BE_NAME_LOCAL) {
		fuse_reply_err(req, EXDEV);
		return;
	}
	if (strcmp(name, newname) == 0) {
		fuse_reply_err(req, 0);
		return;
	}
	fs_name_lock2(fs, name, newname);
	inode = lookup_name(fs, name, &ret);
	if (!inode)
		goto out;
	pthread_mutex_lock(&inode->lock);
	if (to == BE_NAME_LOCAL && inode->local) {
		target = fs_inode_get_name(fs, newname, false, false);
		if (target && (flags & RENAME_NOREPLACE))
			ret = -EEXIST;
		else if (count_in_lower(fs, newname))
			ret = local_rename_to_lower(fs, inode, newname, flags);
		else
			ret = fs_inode_rename(fs, inode, newname, true);
		fs_inode_put(fs, target);
	} else if (to == BE_NAME_LOCAL) {
		/* Both in the lower dir. */
		ret = be_lower_rename(fs->lower_fd, name, newname,
				      flags & RENAME_NOREPLACE);
		if (ret == 0)
			ret = fs_inode_rename(fs, inode, newname, false);
	} else {
		ret = rename_to_store(fs, inode, name, newname, flags);
	}
	pthread_mutex_unlock(&inode->lock);
	fs_inode_put(fs, inode);
	if (ret == 0) {
		fs_count_changed(fs, name, true);
		fs_count_changed(fs, newname, false);
	}
out:
	fs_name_unlock2(fs, name, newname);
	fuse_reply_err(req, -ret);
}

/* Whether 'name' exists, looked up under its stripe. */
static bool name_exists(struct fs *fs, const char *name)
{
	pthread_mutex_t *nl = fs_name_lock(fs, name);
	struct fs_inode *inode;
	int err = 0;

	pthread_mutex_lock(nl);
	inode = lookup_name(fs, name, &err);
	pthread_mutex_unlock(nl);
	fs_inode_put(fs, inode);
	return inode != NULL;
}

/* Only the root directory exists: mkdir/rmdir answer as a flat dir does. */
static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	fuse_reply_err(req, name_exists(fs_of(req), name) ? EEXIST : EPERM);
}

static void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, name_exists(fs_of(req), name) ? ENOTDIR : ENOENT);
}

static void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	fuse_reply_err(req, EPERM);
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	fuse_reply_err(req, EPERM);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct statvfs sv;

	if (fstatvfs(fs->lower_fd, &sv) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	sv.f_namemax = BE_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

/*
 * No extended attributes.  ENOSYS, which the kernel remembers: it stops
 * sending GETXATTR (it asked security.capability before every write, one
 * more request each time) and LISTXATTR, and applications get ENOTSUP,
 * which CLIENTS.md allows (shutil.copystat ignores it).
 */
static void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	fuse_reply_err(req, ENOSYS);
}

static void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	fuse_reply_err(req, ENOSYS);
}

static void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	fuse_reply_err(req, ENOTSUP);
}

static void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, ENODATA);
}

/* Python's open() asks TCGETS on every file: not a terminal. */
static void fs_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd,
		     void *arg, struct fuse_file_info *fi, unsigned int flags,
		     const void *in_buf, size_t in_bufsz, size_t out_bufsz)
{
	fuse_reply_err(req, ENOTTY);
}

static void fs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
			 off_t length, struct fuse_file_info *fi)
{
	fuse_reply_err(req, EOPNOTSUPP);
}

const struct fuse_lowlevel_ops fs_oper = {
	.init = fs_init,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.forget_multi = fs_forget_multi,
	.getattr = fs_getattr,
	.setattr = fs_setattr,
	.mknod = fs_mknod,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_rmdir,
	.symlink = fs_symlink,
	.rename = fs_rename,
	.link = fs_link,
	.open = fs_open,
	.read = fs_read,
	.write = fs_write,
	.flush = fs_flush,
	.release = fs_release,
	.fsync = fs_fsync,
	.flock = fs_flock,
	.getlk = fs_getlk,
	.setlk = fs_setlk,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.releasedir = fs_releasedir,
	.statfs = fs_statfs,
	.setxattr = fs_setxattr,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.removexattr = fs_removexattr,
	.create = fs_create,
	.ioctl = fs_ioctl,
	.fallocate = fs_fallocate,
};
