/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Listing the root directory: the union of the sessions in Redis, the live
 * legacy files of the lower dir that Redis has neither a value nor a
 * tombstone for, and the host-local files in memory.  OPENDIR takes no
 * snapshot; READDIR at offset 0 builds one (so rewinddir sees new names),
 * later offsets index into it, as getdents64 in several calls expects.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs_i.h"
#include "log.h"
#include "lowerstore.h"

/* An open directory: the snapshot of names, in listing order. */
struct fs_dir {
	char **names;
	size_t n;
	size_t cap;
	struct fs_nameset seen; /* names in 'names' */
	struct fs_nameset deleted; /* tombstones in Redis */
	const struct be_keyspace *ks;
	size_t n_redis; /* names from Redis */
	size_t n_legacy; /* live legacy files cachelib counts (indexed names) */
	int64_t legacy_end_ms; /* when the first of those expires */
};

static int dir_add(struct fs_dir *d, const char *name)
{
	int ret = fs_nameset_add(&d->seen, name);

	if (ret <= 0)
		return ret;
	if (d->n == d->cap) {
		size_t ncap = d->cap ? d->cap * 2 : 64;
		char **p = realloc(d->names, ncap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		d->names = p;
		d->cap = ncap;
	}
	d->names[d->n] = strdup(name);
	if (!d->names[d->n])
		return -ENOMEM;
	d->n++;
	return 0;
}

static void dir_init(struct fs_dir *d)
{
	memset(d, 0, sizeof(*d));
	d->legacy_end_ms = INT64_MAX;
	fs_nameset_init(&d->seen, 0);
	fs_nameset_init(&d->deleted, 0);
}

static void dir_release(struct fs_dir *d)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		free(d->names[i]);
	free(d->names);
	fs_nameset_release(&d->seen);
	fs_nameset_release(&d->deleted);
}

static int list_cb(const char *name, enum be_state state, void *arg)
{
	struct fs_dir *d = arg;

	if (state == BE_PRESENT)
		return dir_add(d, name) < 0 ? -ENOMEM : 0;
	return fs_nameset_add(&d->deleted, name) < 0 ? -ENOMEM : 0;
}

static void local_cb(struct fs_inode *inode, void *arg)
{
	dir_add(arg, inode->name);
}

/*
 * What is left of the life (mtime + ttl, or its cachelib header) of the
 * lower file 'name', in ms: > 0 live, 0 expired, -1 not a file we serve.
 */
static int64_t lower_life_ms(struct fs *fs, const char *name, int64_t now_ms)
{
	int64_t ms;
	unsigned char head[5];
	struct stat st;
	ssize_t n = 0;
	int fd;

	fd = openat(fs->lower_fd, name,
		    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size > fs->max_size) {
		close(fd);
		return -1;
	}
	if (be_name_is_cachelib(name))
		n = pread(fd, head, sizeof(head), 0);
	close(fd);
	ms = be_ttl_remaining_ms(&fs->sc.ttl, name, head, n < 0 ? 0 : n,
				 st.st_mtim.tv_sec * 1000LL +
					 st.st_mtim.tv_nsec / 1000000,
				 now_ms);
	return ms > 0 ? ms : 0;
}

/*
 * The expired legacy file 'name' is hidden, so it goes from the lower dir
 * too (fs_lower_sweep() removes it, under the name's stripe, if it is
 * still expired; also past legacy_reads_until).  Returns its life in ms if
 * it was rewritten meanwhile, else 0.
 */
static int64_t lower_expire(struct fs *fs, const char *name)
{
	pthread_mutex_t *nl = fs_name_lock(fs, name);
	struct be_file f;
	int64_t ms = 0;

	pthread_mutex_lock(nl);
	if (fs_lower_sweep(fs, name, &f) == 0)
		ms = f.pttl_ms > 0 ? f.pttl_ms : 1;
	be_file_release(&f);
	pthread_mutex_unlock(nl);
	return ms;
}

static int add_lower(struct fs *fs, struct fs_dir *d)
{
	struct timespec now;
	struct dirent *de;
	int64_t now_ms, life;
	bool ended;
	DIR *dir;
	int fd;

	fd = openat(fs->lower_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -errno;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	now_ms = now.tv_sec * 1000LL + now.tv_nsec / 1000000;
	ended = fs_legacy_reads_ended(fs);
	while ((de = readdir(dir))) {
		/* cachelib's count file: kept underneath in redis-first. */
		if (strcmp(de->d_name, BE_CACHELIB_COUNT_NAME) == 0 &&
		    (de->d_type == DT_REG || de->d_type == DT_UNKNOWN)) {
			if (dir_add(d, de->d_name) < 0) {
				closedir(dir);
				return -ENOMEM;
			}
			continue;
		}
		if (be_name_classify(&fs->sc.ks, de->d_name) !=
			    BE_NAME_SESSION ||
		    fs_nameset_has(&d->seen, de->d_name) ||
		    fs_nameset_has(&d->deleted, de->d_name))
			continue;
		life = lower_life_ms(fs, de->d_name, now_ms);
		if (life == 0)
			life = lower_expire(fs, de->d_name);
		/* Past legacy_reads_until no legacy file is shown (lower.c). */
		if (life <= 0 || ended)
			continue;
		if (dir_add(d, de->d_name) < 0) {
			closedir(dir);
			return -ENOMEM;
		}
		if (!be_store_is_indexed(&fs->sc, de->d_name))
			continue;
		d->n_legacy++;
		if (now_ms + life < d->legacy_end_ms)
			d->legacy_end_ms = now_ms + life;
	}
	closedir(dir);
	/* The count's census of legacy files ends with them (count.c). */
	if (d->n_legacy && fs->legacy_until_ns &&
	    fs->legacy_until_ns / 1000000 < d->legacy_end_ms)
		d->legacy_end_ms = fs->legacy_until_ns / 1000000;
	return 0;
}

/* Names of the lower dir itself: files and dual-write list what it holds. */
static int lower_cb(const char *name, enum be_state state, void *arg)
{
	struct fs_dir *d = arg;

	return be_name_classify(d->ks, name) == BE_NAME_INVALID ? 0
	       : dir_add(d, name) < 0				? -ENOMEM
								: 0;
}

static int dir_fill(struct fs *fs, struct fs_dir *d)
{
	struct be_conn *c;
	int ret;

	dir_release(d);
	dir_init(d);
	d->ks = &fs->sc.ks;
	if (fs_mode_get(fs) <= FS_MODE_DUAL_WRITE) {
		ret = be_lower_list(fs->lower_fd, lower_cb, d);
		if (ret < 0) {
			LOG_WARN("cannot list the lower dir: %s",
				 strerror(-ret));
			return -EIO;
		}
		fs_local_foreach(fs, local_cb, d);
		return 0;
	}
	c = be_pool_get(fs->pool);
	ret = be_store_list(c, &fs->sc, list_cb, d);
	be_pool_put(fs->pool, c);
	if (ret < 0) {
		LOG_WARN("cannot list the sessions in redis: %s",
			 strerror(-ret));
		return -EIO;
	}
	d->n_redis = d->n;
	ret = add_lower(fs, d);
	if (ret < 0) {
		LOG_WARN("cannot list the lower dir: %s", strerror(-ret));
		return -EIO;
	}
	fs_local_foreach(fs, local_cb, d);
	return 0;
}

int fs_dir_census(struct fs *fs, struct fs_census *c)
{
	struct fs_dir d;
	size_t i;
	int ret;

	dir_init(&d);
	ret = dir_fill(fs, &d);
	/* dir_fill() lists Redis's names first. */
	if (ret == 0 && fs_mode_get(fs) >= FS_MODE_REDIS_FIRST)
		fs_count_reindex(fs, (const char *const *)d.names, d.n_redis);
	memset(c, 0, sizeof(*c));
	c->legacy_end_ms = INT64_MAX;
	if (ret == 0) {
		/* The rule of the names index, for every name listed. */
		for (i = 0; i < d.n; i++) {
			if (!be_store_is_indexed(&fs->sc, d.names[i]))
				continue;
			c->entries++;
			c->redis += i < d.n_redis;
		}
		c->legacy = d.n_legacy;
		c->legacy_end_ms = d.legacy_end_ms;
	}
	dir_release(&d);
	return ret;
}

/*
 * An open directory: its listing, and its place in the list of open ones
 * (fs->dirs, under tab_lock), which the daemon frees at exit: a lazy
 * unmount can end the connection before the last RELEASEDIR.
 */
struct fs_dirh {
	struct fs_dir dir;
	struct fs_dirh *next, *prev;
};

static struct fs_dir *dir_of(struct fuse_file_info *fi)
{
	return &((struct fs_dirh *)(uintptr_t)fi->fh)->dir;
}

static void dirh_track(struct fs *fs, struct fs_dirh *h, bool add)
{
	pthread_mutex_lock(&fs->tab_lock);
	if (add) {
		h->prev = NULL;
		h->next = fs->dirs;
		if (fs->dirs)
			fs->dirs->prev = h;
		fs->dirs = h;
	} else {
		if (h->prev)
			h->prev->next = h->next;
		else
			fs->dirs = h->next;
		if (h->next)
			h->next->prev = h->prev;
	}
	pthread_mutex_unlock(&fs->tab_lock);
}

static void dirh_free(struct fs *fs, struct fs_dirh *h)
{
	dirh_track(fs, h, false);
	dir_release(&h->dir);
	free(h);
}

void fs_dirs_free(struct fs *fs)
{
	while (fs->dirs)
		dirh_free(fs, fs->dirs);
}

void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_dirh *h;

	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	h = malloc(sizeof(*h));
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	dir_init(&h->dir);
	dirh_track(fs, h, true);
	fi->fh = (uintptr_t)h;
	if (fuse_reply_open(req, fi) != 0)
		dirh_free(fs, h);
}

void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_dir *d = dir_of(fi);
	struct stat st = { .st_mode = S_IFREG };
	size_t used = 0, i;
	char *buf;
	int ret;

	/* Offsets: 1 ".", 2 "..", 3 + i the i-th name. */
	if (off == 0) {
		ret = dir_fill(fs, d);
		if (ret < 0) {
			fuse_reply_err(req, -ret);
			return;
		}
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (i = off; i < d->n + 2; i++) {
		const char *name = i == 0   ? "."
				   : i == 1 ? ".."
					    : d->names[i - 2];
		size_t len;

		st.st_mode = i < 2 ? S_IFDIR : S_IFREG;
		/* d_ino only needs to be non-zero; stat gives the real one. */
		st.st_ino = i < 2 ? FUSE_ROOT_ID
				  : be_fnv1a64(name) | (1ULL << 63);
		len = fuse_add_direntry(req, buf + used, size - used, name, &st,
					i + 1);
		if (len > size - used)
			break;
		used += len;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	dirh_free(fuse_req_userdata(req), (struct fs_dirh *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}
