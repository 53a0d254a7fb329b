/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cachelib's count file (FileSystemCache's `__wz_cache_count`, md5 name
 * BE_CACHELIB_COUNT_NAME) tells cachelib how many entries the directory
 * holds; cachelib prunes by it and never recounts while it runs.  Through
 * sessfs the directory changes without cachelib: sessions expire in Redis,
 * other hosts add and delete, expired legacy files are hidden.  So every
 * LOOKUP of the count file first rewrites it with the truth: the number of
 * cachelib entries (be_store_is_indexed(): lowercase hex names, not the
 * count file) a listing would show at that moment.  Other names (another
 * app's files in a shared directory, temps) are never counted, in any
 * mode, so the names index need not hold them.  What cachelib writes to
 * it is stored as before and overwritten by the next LOOKUP.
 *
 * The truth, per mode (DESIGN.md, "cachelib's count"):
 *  - files, dual-write: the listing is the lower dir (and host-local names
 *    in memory), which only this daemon changes while mounted: a census
 *    counts it, an unlink through the mount takes one off at once, any
 *    other change marks the census stale;
 *  - redis-first, redis-only: the live members of the names index in
 *    Redis (store.h: exact across hosts and expiries, O(log N)), plus the
 *    cachelib entries the listing shows besides Redis's names (live
 *    legacy files of the lower dir), from a census that is taken again
 *    when the first of those legacy files expires or after a change here.
 * A census lists the whole directory, so it is taken again at most every
 * COUNT_COST_FACTOR times its own duration: at most about a tenth of one
 * thread's time, whatever the size.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs_i.h"
#include "log.h"
#include "lowerstore.h"
#include "store.h"

#define COUNT_COST_FACTOR 10
/*
 * cachelib reads the count two or three times per save, within a fraction
 * of a millisecond: a ZCOUNT answers them all while nothing changed here,
 * for at most this long (what another host or an expiry changes in that
 * time shows at the next read; cf. the cross-host window of tracking).
 */
#define COUNT_REUSE_NS (2 * 1000 * 1000)
#define COUNT_FILE_MAX 20 /* header + the longest pickle we write */

void fs_count_init(struct fs_count *c)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
}

void fs_count_destroy(struct fs_count *c)
{
	pthread_mutex_destroy(&c->lock);
}

/*
 * Whether the census must be taken again (c->lock held): never taken in
 * this mode, or stale and old enough for its cost.  In the Redis modes a
 * census only matters while it found something besides Redis's names.
 */
static bool census_due(const struct fs_count *c, enum fs_mode mode,
		       int64_t now_ns)
{
	bool stale;

	if (!c->valid || c->mode != mode)
		return true;
	if (mode <= FS_MODE_DUAL_WRITE)
		stale = c->dirty;
	else
		stale = c->other > 0 &&
			(c->dirty || fs_now_ns() / 1000000 >= c->end_ms);
	return stale && now_ns - c->at_ns >= COUNT_COST_FACTOR * c->cost_ns;
}

static int census(struct fs *fs, struct fs_count *c, enum fs_mode mode)
{
	int64_t t0 = fs_mono_ns();
	struct fs_census cs;
	int ret;

	/* Changes from now on may be missed by the listing: stale again. */
	c->dirty = false;
	pthread_mutex_unlock(&c->lock);
	ret = fs_dir_census(fs, &cs);
	pthread_mutex_lock(&c->lock);
	if (ret < 0) {
		c->dirty = true;
		return ret;
	}
	c->valid = true;
	c->mode = mode;
	c->other = mode <= FS_MODE_DUAL_WRITE
			   ? (int64_t)cs.entries
			   : (int64_t)(cs.entries - cs.redis);
	c->end_ms = cs.legacy_end_ms;
	c->at_ns = fs_mono_ns();
	c->cost_ns = c->at_ns - t0;
	return 0;
}

/*
 * More live members than cachelib entries in Redis: an older sessfs
 * indexed every name.  Drops the members of the 'n' Redis names 'names'
 * that are not cachelib's, so that they are not counted until they
 * expire; '*total' says how many.  0 or -errno.
 */
static int unindex(struct fs *fs, struct be_conn *conn,
		   const char *const *names, size_t n, long long *total)
{
	long long removed;
	size_t i, k;
	int ret = 0;

	for (i = 0; ret == 0 && i < n; i += k) {
		k = n - i < BE_REINDEX_MAX ? n - i : BE_REINDEX_MAX;
		ret = be_store_unindex(conn, &fs->sc, names + i, k, &removed);
		*total += ret == 0 ? removed : 0;
	}
	if (*total > 0)
		LOG_INFO("dropped %lld other names from the names index",
			 *total);
	return ret;
}

void fs_count_reindex(struct fs *fs, const char *const *names, size_t n)
{
	long long indexed, added, total = 0, dropped = 0;
	size_t i, k, want = 0;
	struct be_conn *conn;
	int ret;

	if (fs->sc.ks.layout != BE_LAYOUT_PLAIN || fs->sc.cluster)
		return; /* no index there */
	for (i = 0; i < n; i++)
		want += be_store_is_indexed(&fs->sc, names[i]);
	conn = be_pool_get(fs->pool);
	ret = be_store_count(conn, &fs->sc, &indexed);
	if (ret == 0 && (size_t)indexed > want && want < n)
		ret = unindex(fs, conn, names, n, &dropped);
	if (ret == 0 && dropped > 0)
		ret = be_store_count(conn, &fs->sc, &indexed);
	for (i = 0; ret == 0 && (size_t)indexed < want && i < n; i += k) {
		k = n - i < BE_REINDEX_MAX ? n - i : BE_REINDEX_MAX;
		ret = be_store_reindex(conn, &fs->sc, names + i, k, &added);
		total += ret == 0 ? added : 0;
	}
	be_pool_put(fs->pool, conn);
	if (ret < 0)
		LOG_WARN("cannot index the sessions in redis: %s",
			 strerror(-ret));
	if (total > 0)
		LOG_INFO("added %lld sessions to the names index", total);
}

/* The live members of the names index, or the last ZCOUNT if still good. */
static int count_indexed(struct fs *fs, long long *n)
{
	struct fs_count *c = &fs->count;
	int64_t t0 = fs_mono_ns();
	struct be_conn *conn;
	uint64_t gen;
	int ret;

	pthread_mutex_lock(&c->lock);
	gen = c->gen;
	if (c->indexed_at_ns && c->indexed_gen == gen &&
	    t0 - c->indexed_at_ns < COUNT_REUSE_NS) {
		*n = c->indexed;
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	pthread_mutex_unlock(&c->lock);
	conn = be_pool_get(fs->pool);
	ret = be_store_count(conn, &fs->sc, n);
	be_pool_put(fs->pool, conn);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&c->lock);
	if (t0 > c->indexed_at_ns) {
		c->indexed = *n;
		c->indexed_at_ns = t0;
		c->indexed_gen = gen;
	}
	pthread_mutex_unlock(&c->lock);
	return 0;
}

int fs_count_get(struct fs *fs, long long *n)
{
	struct fs_count *c = &fs->count;
	enum fs_mode mode = fs_mode_get(fs);
	long long indexed = 0, other;
	int ret = 0;

	/* Never wait for a Redis known down: cachelib would wait with us. */
	if (mode >= FS_MODE_REDIS_FIRST && fs_route_redis_down(fs))
		return -EAGAIN;
	pthread_mutex_lock(&c->lock);
	if (census_due(c, mode, fs_mono_ns()))
		ret = census(fs, c, mode);
	other = c->other;
	pthread_mutex_unlock(&c->lock);
	if (ret < 0)
		return ret;
	if (mode >= FS_MODE_REDIS_FIRST) {
		ret = count_indexed(fs, &indexed);
		if (ret < 0)
			return ret;
	}
	*n = indexed + (other > 0 ? other : 0);
	return 0;
}

void fs_count_changed(struct fs *fs, const char *name, bool removed)
{
	struct fs_count *c = &fs->count;

	/* Nothing the count counts changed: PHP, Django, temps cost nothing. */
	if (!be_store_is_indexed(&fs->sc, name))
		return;
	pthread_mutex_lock(&c->lock);
	if (c->valid && c->mode <= FS_MODE_DUAL_WRITE && removed &&
	    c->other > 0)
		c->other--; /* it was listed, and is gone */
	c->dirty = true;
	c->gen++;
	pthread_mutex_unlock(&c->lock);
}

/*
 * The count file's bytes for 'n' in 'buf': cachelib's "never expires"
 * header, then pickle.dumps(n, protocol=5) as CPython writes it (a frame
 * only above 255).  Returns the length.
 */
static size_t count_bytes(long long n, unsigned char *buf)
{
	static const unsigned char frame[] = { 0x80, 0x05, 0x95 };
	size_t len = 4, i, w;

	if (n < 0)
		n = 0;
	if (n > INT32_MAX)
		n = INT32_MAX;
	memset(buf, 0, 4);
	if (n <= 0xff) {
		buf[len++] = 0x80;
		buf[len++] = 0x05;
		buf[len++] = 'K';
		buf[len++] = (unsigned char)n;
		buf[len++] = '.';
		return len;
	}
	w = n <= 0xffff ? 2 : 4;
	memcpy(buf + len, frame, sizeof(frame));
	len += sizeof(frame);
	for (i = 0; i < 8; i++) /* frame length, little-endian */
		buf[len++] = i == 0 ? (unsigned char)(w + 2) : 0;
	buf[len++] = w == 2 ? 'M' : 'J';
	for (i = 0; i < w; i++)
		buf[len++] = (unsigned char)(n >> (8 * i));
	buf[len++] = '.';
	return len;
}

/* The count file in the lower dir: rewritten if its bytes differ. */
static void refresh_lower(struct fs *fs, const unsigned char *buf, size_t len)
{
	unsigned char cur[COUNT_FILE_MAX + 1];
	struct be_meta meta = { 0 };
	struct stat st;
	ssize_t n;
	int fd, ret;

	fd = openat(fs->lower_fd, BE_CACHELIB_COUNT_NAME,
		    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return; /* cachelib writes it at its start */
	n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode)
		    ? pread(fd, cur, sizeof(cur), 0)
		    : -1;
	close(fd);
	if (n < 0 || ((size_t)n == len && memcmp(cur, buf, len) == 0))
		return;
	meta.version = BE_LAYOUT_VERSION;
	meta.mtime_ns = meta.ctime_ns = fs_now_ns();
	meta.uid = st.st_uid;
	meta.gid = st.st_gid;
	meta.mode = st.st_mode & 07777;
	ret = be_lower_put(fs->lower_fd, BE_CACHELIB_COUNT_NAME, buf, len,
			   &meta);
	if (ret < 0)
		LOG_WARN("cannot write '%s' in the lower dir: %s",
			 BE_CACHELIB_COUNT_NAME, strerror(-ret));
}

/*
 * The count file in memory (redis-only): its bytes replaced.  False when
 * there is none in memory: the file a LOOKUP finds is then the lower one.
 */
static bool refresh_memory(struct fs *fs, const unsigned char *buf, size_t len)
{
	struct fs_inode *inode;
	bool local;
	char *p;

	inode = fs_inode_get_name(fs, BE_CACHELIB_COUNT_NAME, false, false);
	if (!inode)
		return false;
	pthread_mutex_lock(&inode->lock);
	local = inode->local;
	if (!inode->local || !inode->loaded || inode->pending ||
	    (inode->len == len && memcmp(inode->data, buf, len) == 0))
		goto out_unlock;
	if (inode->cap < len) {
		if (fs_local_charge(fs, (long long)(len - inode->cap)) < 0)
			goto out_unlock;
		p = realloc(inode->data, len);
		if (!p) {
			fs_local_charge(fs, -(long long)(len - inode->cap));
			goto out_unlock;
		}
		inode->data = p;
		inode->cap = len;
	}
	memcpy(inode->data, buf, len);
	inode->len = len;
	inode->attr.size = len;
	clock_gettime(CLOCK_REALTIME, &inode->attr.mtime);
	inode->attr.ctime = inode->attr.mtime;
out_unlock:
	pthread_mutex_unlock(&inode->lock);
	fs_inode_put(fs, inode);
	return local;
}

void fs_count_refresh(struct fs *fs)
{
	unsigned char buf[COUNT_FILE_MAX];
	pthread_mutex_t *nl;
	long long n;
	size_t len;
	int ret;

	if (fs->sc.ks.layout != BE_LAYOUT_PLAIN)
		return; /* no cachelib names there */
	/* Before the stripe: a census takes the stripes of expired names. */
	ret = fs_count_get(fs, &n);
	if (ret == -EAGAIN)
		return; /* Redis is down: the breaker logged it */
	if (ret < 0) {
		LOG_WARN("cannot count the sessions in redis for '%s': %s",
			 BE_CACHELIB_COUNT_NAME, strerror(-ret));
		return;
	}
	len = count_bytes(n, buf);
	nl = fs_name_lock(fs, BE_CACHELIB_COUNT_NAME);
	pthread_mutex_lock(nl);
	if (fs_mode_get(fs) <= FS_MODE_REDIS_FIRST ||
	    !refresh_memory(fs, buf, len))
		refresh_lower(fs, buf, len);
	pthread_mutex_unlock(nl);
}
