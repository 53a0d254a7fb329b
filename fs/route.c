/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Routing of every session operation to the stores the migration mode
 * names (DESIGN.md, "Modes"): which store is read, which is written first
 * and must succeed (the authoritative one), and what happens when the
 * other one fails (the name goes into the repair journal and is read from
 * the store that holds its current value until repaired).  Also here: the
 * circuit breaker that keeps a Redis outage from costing redis_timeout on
 * every call, failed-read fencing, the set of names this host wrote last,
 * and the background threads (Redis prober, journal repair).
 *
 * Host-local names (temps, cachelib's count file) created in files or
 * dual-write live in the lower dir: their route is the lower dir only.
 *
 * Every function here is called with the name's stripe lock held (safety
 * rule 1), except the threads, which take it themselves.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs_i.h"
#include "journal.h"
#include "log.h"
#include "lowerstore.h"
#include "metrics.h"
#include "sentinel.h"
#include "shadow.h"
#include "track.h"

#define FS_JOURNAL_MAX 1000000
#define FS_FENCE_MAX   100000
#define FS_MINE_MAX    1000000
#define FS_PROBE_MS    100
#define FS_REPAIR_MS   500

/* True for the errors that say Redis is unreachable, not "no such key". */
static bool is_transport_err(int ret)
{
	switch (-ret) {
	case 0:
	case ENOENT:
	case EEXIST:
	case EFBIG:
	case ENOMEM:
	case ENOSPC: /* Redis out of memory: it answers, it refuses */
	case EPERM: /* an ACL refused the command: logged once (acl.h) */
	case EINVAL:
	case BE_ENOTDURABLE: /* it answers; too few replicas confirmed */
		return false;
	default:
		return ret < 0;
	}
}

/* ---- error rate ---- */

void fs_route_count(struct fs *fs, bool failed)
{
	int64_t sec = time(NULL);
	size_t i = (size_t)sec % 16;

	pthread_mutex_lock(&fs->rt.lock);
	if (fs->rt.rate[i].sec != sec) {
		fs->rt.rate[i].sec = sec;
		fs->rt.rate[i].ops = fs->rt.rate[i].errors = 0;
	}
	fs->rt.rate[i].ops++;
	if (failed)
		fs->rt.rate[i].errors++;
	pthread_mutex_unlock(&fs->rt.lock);
	fs_metrics_request(fs, failed);
}

void fs_route_error_rate(struct fs *fs, uint64_t *ops, uint64_t *errors)
{
	int64_t now = time(NULL);
	size_t i;

	*ops = *errors = 0;
	pthread_mutex_lock(&fs->rt.lock);
	for (i = 0; i < 16; i++) {
		if (now - fs->rt.rate[i].sec < 10) {
			*ops += fs->rt.rate[i].ops;
			*errors += fs->rt.rate[i].errors;
		}
	}
	pthread_mutex_unlock(&fs->rt.lock);
}

/* ---- the circuit breaker ---- */

static void redis_failed(struct fs *fs, int ret)
{
	if (!is_transport_err(ret))
		return;
	pthread_mutex_lock(&fs->rt.lock);
	if (!fs->rt.redis_down) {
		LOG_WARN(
			"redis is unreachable (%s): failing fast until it answers again",
			strerror(-ret));
		fs->rt.redis_down = true;
		fs_metrics_breaker_opened(fs);
		pthread_cond_broadcast(&fs->rt.cond);
	}
	pthread_mutex_unlock(&fs->rt.lock);
}

/*
 * Waits up to redis_timeout for Redis to be up; true when it is.  Calls
 * that cannot be served without Redis block here instead of each paying
 * the full timeout of its own connection.
 */
static bool redis_wait_up(struct fs *fs)
{
	struct timespec deadline;
	bool up;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += (time_t)fs->redis_timeout;
	deadline.tv_nsec +=
		(long)((fs->redis_timeout - (time_t)fs->redis_timeout) * 1e9);
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&fs->rt.lock);
	while (fs->rt.redis_down && !fs->rt.stopping)
		if (pthread_cond_timedwait(&fs->rt.cond, &fs->rt.lock,
					   &deadline) == ETIMEDOUT)
			break;
	up = !fs->rt.redis_down;
	pthread_mutex_unlock(&fs->rt.lock);
	return up;
}

bool fs_route_redis_down(struct fs *fs)
{
	bool down;

	pthread_mutex_lock(&fs->rt.lock);
	down = fs->rt.redis_down;
	pthread_mutex_unlock(&fs->rt.lock);
	return down;
}

/*
 * The sentinels name a new master (sentinel.h, the watcher's thread):
 * treated as an outage, so that calls wait for the prober to reach the
 * new master instead of each finding out alone (redis-first serves this
 * host's names from the lower dir meanwhile); every connection to the old
 * master is closed at its next use (conn.c), and nothing learnt through
 * tracking is believed any more (a new epoch: the new master never saw
 * what the old one tracked; the tracker moves to it on its own).
 */
static void failover(void *arg, bool started, const char *host, int port)
{
	struct fs *fs = arg;

	if (started)
		LOG_WARN(
			"redis failover of the master %s:%d in progress: calls wait for the new master",
			host, port);
	else
		LOG_WARN(
			"redis failover: the sentinels name %s:%d as the master now; failing fast until it answers",
			host, port);
	pthread_mutex_lock(&fs->rt.lock);
	fs->rt.redis_down = true;
	pthread_cond_broadcast(&fs->rt.cond);
	pthread_mutex_unlock(&fs->rt.lock);
	if (fs->tracker)
		be_tracker_lost(fs->tracker);
}

/*
 * durability=replica: a write the replicas did not confirm in time is an
 * EIO for the application ("not confirmed, may be stored"), logged at
 * most once a second.
 */
static int not_durable(struct fs *fs, const char *name, int ret)
{
	static _Atomic int64_t last_ns;
	int64_t now = fs_mono_ns(), last = atomic_load(&last_ns);

	if (ret != -BE_ENOTDURABLE)
		return ret;
	if (now - last >= 1000000000LL &&
	    atomic_compare_exchange_strong(&last_ns, &last, now))
		LOG_WARN(
			"write of '%s' not confirmed by %d replica%s within %d ms: EIO",
			name, fs->sc.wait_replicas,
			fs->sc.wait_replicas == 1 ? "" : "s", fs->sc.wait_ms);
	return -EIO;
}

/* ---- per-name facts ---- */

void fs_route_fence(struct fs *fs, const char *name, int err)
{
	/*
	 * A failed read makes Flask-Session write an empty session back:
	 * until a read succeeds, replacing or truncating the name fails.
	 */
	if (err != -ENOENT && err != -EINVAL &&
	    fs_nameset_add(&fs->rt.fenced, name) == 1)
		LOG_WARN(
			"fencing '%s' after a failed read: writes to it fail until a read succeeds",
			name);
}

void fs_route_unfence(struct fs *fs, const char *name)
{
	if (fs_nameset_any(&fs->rt.fenced) &&
	    fs_nameset_remove(&fs->rt.fenced, name))
		LOG_INFO("'%s' read again: fence lifted", name);
}

bool fs_route_is_fenced(struct fs *fs, const char *name)
{
	return fs_nameset_any(&fs->rt.fenced) &&
	       fs_nameset_has(&fs->rt.fenced, name);
}

/* Records who wrote 'name' last, as far as this host knows. */
static void note_writer(struct fs *fs, const char *name, const char *host)
{
	if (strcmp(host, fs->host_id) == 0)
		fs_nameset_add(&fs->rt.mine, name);
	else if (fs_nameset_any(&fs->rt.mine))
		fs_nameset_remove(&fs->rt.mine, name);
}

static int journal_add(struct fs *fs, const char *name, unsigned int stores)
{
	int ret = be_journal_add(fs->rt.journal, name, stores);

	if (ret < 0)
		LOG_ERR("cannot journal '%s': %s", name, strerror(-ret));
	else
		pthread_cond_broadcast(&fs->rt.cond);
	return ret;
}

/* ---- the Redis side ---- */

unsigned int fs_route_slot(const char *name)
{
	return (unsigned int)be_fnv1a64(name);
}

/*
 * Reads 'name' from Redis; when Redis has neither a value nor a tombstone,
 * from the lower dir (a legacy session), copying it up with COPYUP, which
 * never overwrites what another host wrote meanwhile.
 */
static int redis_resolve(struct fs *fs, const char *name, bool want_data,
			 struct be_file *f)
{
	struct be_file lower, cur = { 0 };
	struct be_conn *c = be_pool_get_at(fs->pool, fs_route_slot(name));
	int ret;

	ret = be_store_get(c, &fs->sc, name, want_data, f);
	if (ret < 0 || f->state != BE_ABSENT)
		goto out;
	ret = fs_lower_read(fs, name, &lower);
	if (ret == -ENOENT || ret == -EFBIG) {
		ret = 0; /* absent everywhere (or refused, and logged) */
		goto out;
	}
	if (ret < 0) {
		LOG_WARN("cannot read '%s' from the lower dir: %s", name,
			 strerror(-ret));
		ret = -EIO;
		goto out;
	}
	ret = be_store_put(c, &fs->sc, name, lower.data, lower.size,
			   &lower.meta, BE_PUT_COPYUP, NULL, &cur);
	if (ret == -EEXIST) {
		be_file_release(&lower);
		*f = cur;
		ret = 0;
		goto out;
	}
	if (ret < 0) {
		be_file_release(&lower);
		goto out;
	}
	LOG_DEBUG("copied '%s' up from the lower dir", name);
	fs_metrics_copyup(fs);
	*f = lower;
	if (!want_data) {
		free(f->data);
		f->data = NULL;
	}
out:
	be_pool_put(fs->pool, c);
	if (ret == 0 && f->state == BE_PRESENT && f->has_meta)
		note_writer(fs, name, f->meta.host);
	redis_failed(fs, ret);
	return not_durable(fs, name, ret);
}

static int redis_put(struct fs *fs, const char *name, const void *data,
		     size_t len, const struct be_meta *meta)
{
	struct be_conn *c = be_pool_get_at(fs->pool, fs_route_slot(name));
	int ret = be_store_put(c, &fs->sc, name, data, len, meta,
			       BE_PUT_REPLACE, NULL, NULL);

	be_pool_put(fs->pool, c);
	if (ret == 0)
		fs_nameset_add(&fs->rt.mine, name);
	redis_failed(fs, ret);
	return not_durable(fs, name, ret);
}

static int redis_delete(struct fs *fs, const char *name, int64_t mtime_ns)
{
	struct be_conn *c = be_pool_get_at(fs->pool, fs_route_slot(name));
	int ret = be_store_delete(c, &fs->sc, name, mtime_ns);

	be_pool_put(fs->pool, c);
	if (ret >= 0)
		fs_nameset_add(&fs->rt.mine, name);
	redis_failed(fs, ret);
	return not_durable(fs, name, ret);
}

static int redis_setmeta(struct fs *fs, const char *name,
			 const struct be_meta *meta)
{
	struct be_conn *c = be_pool_get_at(fs->pool, fs_route_slot(name));
	int ret = be_store_setmeta(c, &fs->sc, name, meta, NULL);

	be_pool_put(fs->pool, c);
	redis_failed(fs, ret);
	return not_durable(fs, name, ret);
}

/* ---- the lower side ---- */

static int lower_get(struct fs *fs, const char *name, bool want_data,
		     struct be_file *f)
{
	int ret = be_lower_get(fs->lower_fd, name, fs->max_size, want_data, f);

	if (ret == -EINVAL) { /* not a regular file: not a session */
		memset(f, 0, sizeof(*f));
		return 0;
	}
	return ret;
}

/* An exclusive create in the lower dir: O_EXCL decides for this host. */
static int lower_create(struct fs *fs, const char *name,
			const struct be_meta *meta)
{
	struct timespec ts[2];
	int fd;

	fd = openat(fs->lower_fd, name,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    meta->mode & 07777);
	if (fd < 0)
		return -errno;
	ts[0].tv_sec = ts[1].tv_sec = meta->mtime_ns / 1000000000LL;
	ts[0].tv_nsec = ts[1].tv_nsec = meta->mtime_ns % 1000000000LL;
	if (fchown(fd, meta->uid, meta->gid) < 0 ||
	    fchmod(fd, meta->mode & 07777) < 0 || futimens(fd, ts) < 0) {
		int err = -errno;

		close(fd);
		unlinkat(fs->lower_fd, name, 0);
		return err;
	}
	close(fd);
	return 0;
}

/* ---- host-local names ---- */

int fs_local_to_lower(struct fs *fs, struct fs_inode *inode, const char *name)
{
	struct be_meta meta;
	int ret;

	fs_meta_from_attr(&meta, &inode->attr);
	ret = be_lower_put(fs->lower_fd, name, inode->data ? inode->data : "",
			   inode->len, &meta);
	if (ret < 0)
		return ret;
	if (strcmp(inode->name, name) != 0) {
		ret = fs_inode_rename(fs, inode, name, false);
		if (ret < 0)
			return ret;
	} else {
		fs_inode_unlocal(fs, inode);
	}
	if (fs_inode_open_inc(fs, inode, 0) == 0) {
		fs_inode_drop_bytes(inode);
	}
	return 0;
}

/* ---- routing ---- */

enum route {
	ROUTE_LOWER, /* files; host-local names in the lower dir */
	ROUTE_DUAL, /* lower, then Redis */
	ROUTE_REDIS_FIRST, /* Redis, then lower */
	ROUTE_REDIS, /* Redis only */
};

static enum route route_of(struct fs *fs, const char *name)
{
	if (be_name_classify(&fs->sc.ks, name) == BE_NAME_LOCAL)
		return ROUTE_LOWER;
	switch (fs_mode_get(fs)) {
	case FS_MODE_FILES:
		return ROUTE_LOWER;
	case FS_MODE_DUAL_WRITE:
		return ROUTE_DUAL;
	case FS_MODE_REDIS_FIRST:
		return ROUTE_REDIS_FIRST;
	default:
		return ROUTE_REDIS;
	}
}

static bool is_session(struct fs *fs, const char *name)
{
	return be_name_classify(&fs->sc.ks, name) == BE_NAME_SESSION;
}

bool fs_route_cacheable(struct fs *fs, const char *name)
{
	return fs_mode_may_track(fs_mode_get(fs)) && is_session(fs, name) &&
	       !be_journal_get(fs->rt.journal, name) &&
	       !fs_route_is_fenced(fs, name);
}

/*
 * After a write to the authoritative store, the other one ('stores')
 * failed with 'ret': journal the name, so that it is repaired and read
 * from the current store meanwhile.  The client's call still succeeds.
 */
static void behind(struct fs *fs, const char *name, unsigned int stores,
		   int ret)
{
	LOG_DEBUG("'%s' not written to the %s: %s; journaled", name,
		  stores == BE_J_REDIS ? "redis" : "lower dir", strerror(-ret));
	journal_add(fs, name, stores);
}

int fs_route_get(struct fs *fs, const char *name, bool want_data,
		 struct be_file *f)
{
	enum route r = route_of(fs, name);
	unsigned int j = 0;
	int ret;

	memset(f, 0, sizeof(*f));
	if (is_session(fs, name))
		j = be_journal_get(fs->rt.journal, name);
	/* Until repaired, a name is read from the store that is current. */
	if (j & BE_J_LOWER)
		r = ROUTE_REDIS;
	else if (j & BE_J_REDIS)
		r = ROUTE_LOWER;

	if (r == ROUTE_DUAL && !j && want_data) {
		ret = lower_get(fs, name, want_data, f);
		if (ret == 0)
			fs_shadow_read(fs, name, f); /* -o shadow=PERCENT */
		return ret;
	}
	if (r == ROUTE_LOWER || r == ROUTE_DUAL)
		return lower_get(fs, name, want_data, f);
	if (r == ROUTE_REDIS_FIRST && fs_route_redis_down(fs) &&
	    fs_nameset_has(&fs->rt.mine, name)) {
		fs_metrics_fallback(fs, FS_M_GET);
		return lower_get(fs, name, want_data, f);
	}
	if (fs_route_redis_down(fs) && !redis_wait_up(fs))
		return -EIO;
	ret = redis_resolve(fs, name, want_data, f);
	if (ret < 0 && r == ROUTE_REDIS_FIRST &&
	    fs_nameset_has(&fs->rt.mine, name)) {
		/* This host wrote it last: its lower copy is current. */
		be_file_release(f);
		fs_metrics_fallback(fs, FS_M_GET);
		return lower_get(fs, name, want_data, f);
	}
	return ret;
}

int fs_route_put(struct fs *fs, const char *name, const void *data, size_t len,
		 const struct be_meta *meta)
{
	enum route r = route_of(fs, name);
	int ret;

	if (fs_route_is_fenced(fs, name))
		return -EIO;
	switch (r) {
	case ROUTE_LOWER:
		ret = be_lower_put(fs->lower_fd, name, data, len, meta);
		if (ret == 0 && is_session(fs, name))
			journal_add(fs, name, BE_J_REDIS);
		return ret;
	case ROUTE_DUAL:
		ret = be_lower_put(fs->lower_fd, name, data, len, meta);
		if (ret < 0)
			return ret;
		ret = fs_route_redis_down(fs)
			      ? -EIO
			      : redis_put(fs, name, data, len, meta);
		if (ret < 0)
			behind(fs, name, BE_J_REDIS, ret);
		return 0;
	case ROUTE_REDIS_FIRST:
		ret = fs_route_redis_down(fs)
			      ? -EIO
			      : redis_put(fs, name, data, len, meta);
		if (ret < 0 && is_transport_err(ret) &&
		    fs_nameset_has(&fs->rt.mine, name)) {
			/* Redis down, the name is ours: lower is current. */
			fs_metrics_fallback(fs, FS_M_PUT);
			ret = be_lower_put(fs->lower_fd, name, data, len, meta);
			if (ret == 0)
				behind(fs, name, BE_J_REDIS, -EIO);
			return ret;
		}
		if (ret < 0)
			return ret;
		ret = be_lower_put(fs->lower_fd, name, data, len, meta);
		if (ret < 0)
			behind(fs, name, BE_J_LOWER, ret);
		else if (be_journal_get(fs->rt.journal, name) & BE_J_LOWER)
			be_journal_done(fs->rt.journal, name, BE_J_LOWER);
		return 0;
	default:
		if (fs_route_redis_down(fs) && !redis_wait_up(fs))
			return -EIO;
		return redis_put(fs, name, data, len, meta);
	}
}

int fs_route_create(struct fs *fs, const char *name, const struct be_meta *meta,
		    struct be_file *cur, bool *created)
{
	enum route r = route_of(fs, name);
	struct be_conn *c;
	int ret;

	*created = false;
	memset(cur, 0, sizeof(*cur));
	if (r == ROUTE_LOWER || r == ROUTE_DUAL) {
		ret = lower_create(fs, name, meta);
		if (ret == -EEXIST)
			return lower_get(fs, name, true, cur);
		if (ret < 0)
			return ret;
		*created = true;
		if (r == ROUTE_LOWER) {
			if (is_session(fs, name))
				journal_add(fs, name, BE_J_REDIS);
			return 0;
		}
		ret = fs_route_redis_down(fs)
			      ? -EIO
			      : redis_put(fs, name, "", 0, meta);
		if (ret < 0)
			behind(fs, name, BE_J_REDIS, ret);
		return 0;
	}

	/*
	 * A live legacy file is the current session: never create over it.
	 * With no lower file of that name there is none, and the CREATE
	 * script alone decides (one round trip, not two).
	 */
	if (faccessat(fs->lower_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0 ||
	    errno != ENOENT) {
		ret = fs_route_get(fs, name, true, cur);
		if (ret < 0 || cur->state == BE_PRESENT)
			return ret;
		be_file_release(cur);
	}
	if (fs_route_redis_down(fs) && !redis_wait_up(fs))
		return -EIO;
	c = be_pool_get_at(fs->pool, fs_route_slot(name));
	ret = be_store_put(c, &fs->sc, name, "", 0, meta, BE_PUT_CREATE, NULL,
			   cur);
	be_pool_put(fs->pool, c);
	redis_failed(fs, ret);
	if (ret == -EEXIST)
		return 0; /* another host created it first: 'cur' holds it */
	if (ret < 0)
		return not_durable(fs, name, ret);
	*created = true;
	fs_nameset_add(&fs->rt.mine, name);
	if (r == ROUTE_REDIS_FIRST) {
		ret = be_lower_put(fs->lower_fd, name, "", 0, meta);
		if (ret < 0)
			behind(fs, name, BE_J_LOWER, ret);
	}
	return 0;
}

int fs_route_delete(struct fs *fs, const char *name, int64_t last_mtime_ns)
{
	enum route r = route_of(fs, name);
	int ret, lret;

	switch (r) {
	case ROUTE_LOWER:
		ret = be_lower_delete(fs->lower_fd, name);
		if (ret == 0 && is_session(fs, name))
			journal_add(fs, name, BE_J_REDIS);
		return ret == 0 ? 1 : ret == -ENOENT ? 0 : ret;
	case ROUTE_DUAL:
		ret = be_lower_delete(fs->lower_fd, name);
		if (ret < 0)
			return ret == -ENOENT ? 0 : ret;
		lret = fs_route_redis_down(fs)
			       ? -EIO
			       : redis_delete(fs, name, last_mtime_ns);
		if (lret < 0)
			behind(fs, name, BE_J_REDIS, lret);
		return 1;
	case ROUTE_REDIS_FIRST:
		ret = fs_route_redis_down(fs)
			      ? -EIO
			      : redis_delete(fs, name, last_mtime_ns);
		if (ret < 0 && is_transport_err(ret) &&
		    fs_nameset_has(&fs->rt.mine, name)) {
			fs_metrics_fallback(fs, FS_M_DELETE);
			lret = be_lower_delete(fs->lower_fd, name);
			if (lret < 0 && lret != -ENOENT)
				return lret;
			behind(fs, name, BE_J_REDIS, ret);
			return lret == 0 ? 1 : 0;
		}
		if (ret < 0)
			return ret;
		lret = be_lower_delete(fs->lower_fd, name);
		if (lret < 0 && lret != -ENOENT)
			behind(fs, name, BE_J_LOWER, lret);
		/* A legacy lower file deleted here counts as existing. */
		return ret > 0 || lret == 0 ? 1 : 0;
	default:
		if (fs_route_redis_down(fs) && !redis_wait_up(fs))
			return -EIO;
		return redis_delete(fs, name, last_mtime_ns);
	}
}

int fs_route_setmeta(struct fs *fs, const char *name,
		     const struct be_meta *meta)
{
	enum route r = route_of(fs, name);
	int ret;

	switch (r) {
	case ROUTE_LOWER:
		ret = be_lower_setmeta(fs->lower_fd, name, meta);
		if (ret == 0 && is_session(fs, name))
			journal_add(fs, name, BE_J_REDIS);
		return ret;
	case ROUTE_DUAL:
		ret = be_lower_setmeta(fs->lower_fd, name, meta);
		if (ret < 0)
			return ret;
		ret = fs_route_redis_down(fs) ? -EIO
					      : redis_setmeta(fs, name, meta);
		if (ret < 0 && ret != -ENOENT)
			behind(fs, name, BE_J_REDIS, ret);
		return 0;
	case ROUTE_REDIS_FIRST:
		ret = fs_route_redis_down(fs) ? -EIO
					      : redis_setmeta(fs, name, meta);
		if (ret < 0 && is_transport_err(ret) &&
		    fs_nameset_has(&fs->rt.mine, name)) {
			fs_metrics_fallback(fs, FS_M_SETMETA);
			ret = be_lower_setmeta(fs->lower_fd, name, meta);
			if (ret == 0)
				behind(fs, name, BE_J_REDIS, -EIO);
			return ret;
		}
		if (ret < 0)
			return ret;
		if (be_lower_setmeta(fs->lower_fd, name, meta) < 0)
			behind(fs, name, BE_J_LOWER, -EIO);
		return 0;
	default:
		if (fs_route_redis_down(fs) && !redis_wait_up(fs))
			return -EIO;
		return redis_setmeta(fs, name, meta);
	}
}

/*
 * Renames the lower-dir temp 'tmp' (a host-local file created in files or
 * dual-write) onto 'name', whose new bytes are 'data'.  In the modes that
 * keep the lower dir, the rename itself is the lower write.
 */
int fs_route_rename_lower_temp(struct fs *fs, const char *tmp, const char *name,
			       const void *data, size_t len,
			       const struct be_meta *meta)
{
	enum route r = route_of(fs, name);
	int ret;

	if (fs_route_is_fenced(fs, name))
		return -EIO;
	if (r == ROUTE_LOWER || r == ROUTE_DUAL) {
		ret = be_lower_rename(fs->lower_fd, tmp, name, false);
		if (ret < 0)
			return ret;
		if (!is_session(fs, name))
			return 0;
		if (r == ROUTE_LOWER) {
			journal_add(fs, name, BE_J_REDIS);
			return 0;
		}
		ret = fs_route_redis_down(fs)
			      ? -EIO
			      : redis_put(fs, name, data, len, meta);
		if (ret < 0)
			behind(fs, name, BE_J_REDIS, ret);
		return 0;
	}
	ret = fs_route_put(fs, name, data, len, meta);
	if (ret == 0)
		be_lower_delete(fs->lower_fd, tmp);
	return ret;
}

/* ---- background threads ---- */

/*
 * A name with both stores marked (a corrupt journal's names) is checked:
 * the newer copy wins; one missing copy is decided by the mode's
 * authoritative store.  Returns the store that is behind (0: equal).
 */
static unsigned int verify_one(struct fs *fs, const char *name)
{
	struct be_file lf = { 0 }, rf = { 0 };
	struct be_conn *c = be_pool_get_at(fs->pool, fs_route_slot(name));
	unsigned int behind_store = 0;
	bool lower_auth = fs_mode_get(fs) <= FS_MODE_DUAL_WRITE;
	int lret, rret;

	lret = be_lower_get(fs->lower_fd, name, fs->max_size, false, &lf);
	rret = be_store_get(c, &fs->sc, name, false, &rf);
	be_pool_put(fs->pool, c);
	if (lret == -EINVAL)
		lret = 0; /* not a regular file: absent as a session */
	if (lret < 0 || rret < 0) {
		behind_store = BE_J_REDIS | BE_J_LOWER; /* try again later */
	} else if (lf.state == BE_PRESENT && rf.state == BE_PRESENT) {
		if (lf.meta.mtime_ns > rf.meta.mtime_ns ||
		    (lf.meta.mtime_ns == rf.meta.mtime_ns &&
		     lf.size != rf.size && lower_auth))
			behind_store = BE_J_REDIS;
		else if (lf.meta.mtime_ns < rf.meta.mtime_ns ||
			 lf.size != rf.size)
			behind_store = BE_J_LOWER;
	} else if (lf.state == BE_PRESENT || rf.state == BE_PRESENT) {
		behind_store = lower_auth ? BE_J_REDIS : BE_J_LOWER;
	}
	be_file_release(&lf);
	be_file_release(&rf);
	return behind_store;
}

/* Repairs one journaled name; called with its stripe held. */
static int repair_one(struct fs *fs, const char *name, unsigned int stores)
{
	struct be_file f = { 0 };
	struct be_conn *c;
	int ret = 0;

	if (stores == (BE_J_REDIS | BE_J_LOWER)) {
		unsigned int b = verify_one(fs, name);

		if (b == (BE_J_REDIS | BE_J_LOWER))
			return -EAGAIN;
		be_journal_done(fs->rt.journal, name, stores & ~b);
		if (!b)
			return 0;
		stores = b;
		/* redis-only never writes the lower dir: export does. */
		if (b == BE_J_LOWER && fs_mode_get(fs) == FS_MODE_REDIS_ONLY) {
			be_journal_done(fs->rt.journal, name, BE_J_LOWER);
			return 0;
		}
	}

	if (stores & BE_J_REDIS) {
		/* files mode keeps Redis behind on purpose: replayed later. */
		if (fs_mode_get(fs) == FS_MODE_FILES)
			return 0;
		ret = be_lower_get(fs->lower_fd, name, fs->max_size, true, &f);
		c = be_pool_get_at(fs->pool, fs_route_slot(name));
		if (ret == 0 && f.state == BE_PRESENT)
			ret = be_store_put(c, &fs->sc, name, f.data, f.size,
					   &f.meta, BE_PUT_REPLACE, NULL, NULL);
		else if (ret == 0 || ret == -EINVAL)
			ret = be_store_delete(c, &fs->sc, name, fs_now_ns());
		be_pool_put(fs->pool, c);
		be_file_release(&f);
		redis_failed(fs, ret);
		if (ret < 0)
			return ret;
		be_journal_done(fs->rt.journal, name, BE_J_REDIS);
		LOG_DEBUG("repaired '%s' in redis", name);
		fs_metrics_repaired(fs, BE_J_REDIS);
	}
	if (stores & BE_J_LOWER) {
		c = be_pool_get_at(fs->pool, fs_route_slot(name));
		ret = be_store_get(c, &fs->sc, name, true, &f);
		be_pool_put(fs->pool, c);
		redis_failed(fs, ret);
		if (ret == 0 && f.state == BE_PRESENT)
			ret = be_lower_put(fs->lower_fd, name,
					   f.data ? f.data : "", f.size,
					   &f.meta);
		else if (ret == 0)
			ret = be_lower_delete(fs->lower_fd, name) == -ENOENT
				      ? 0
				      : -EIO;
		be_file_release(&f);
		if (ret < 0)
			return ret;
		be_journal_done(fs->rt.journal, name, BE_J_LOWER);
		LOG_DEBUG("repaired '%s' in the lower dir", name);
		fs_metrics_repaired(fs, BE_J_LOWER);
	}
	return 0;
}

static int repair_cb(const char *name, unsigned int stores, void *arg)
{
	struct fs *fs = arg;
	pthread_mutex_t *nl = fs_name_lock(fs, name);

	if (fs_route_redis_down(fs) || fs->rt.stopping)
		return 1; /* stop this pass */
	pthread_mutex_lock(nl);
	/* Re-read under the lock: an op may have repaired it meanwhile. */
	stores = be_journal_get(fs->rt.journal, name);
	if (stores)
		repair_one(fs, name, stores);
	pthread_mutex_unlock(nl);
	return 0;
}

/* Runs one repair pass over the whole journal; returns what is left. */
size_t fs_route_repair_pass(struct fs *fs)
{
	be_journal_foreach(fs->rt.journal, repair_cb, fs);
	return be_journal_count(fs->rt.journal);
}

static void *repair_thread(void *arg)
{
	struct fs *fs = arg;

	for (;;) {
		struct timespec ts;

		pthread_mutex_lock(&fs->rt.lock);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += FS_REPAIR_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (!fs->rt.stopping)
			pthread_cond_timedwait(&fs->rt.cond, &fs->rt.lock, &ts);
		pthread_mutex_unlock(&fs->rt.lock);
		if (fs->rt.stopping)
			return NULL;
		if (be_journal_count(fs->rt.journal) &&
		    !fs_route_redis_down(fs))
			fs_route_repair_pass(fs);
	}
}

/* While Redis is marked down, pings it every FS_PROBE_MS. */
static void *probe_thread(void *arg)
{
	struct fs *fs = arg;
	struct be_conn *c = be_conn_new(&fs->ep, FS_PROBE_MS / 1000.0);

	for (;;) {
		struct timespec ts = { 0, FS_PROBE_MS * 1000000L };
		bool down;

		pthread_mutex_lock(&fs->rt.lock);
		while (!fs->rt.redis_down && !fs->rt.stopping)
			pthread_cond_wait(&fs->rt.cond, &fs->rt.lock);
		down = fs->rt.redis_down;
		pthread_mutex_unlock(&fs->rt.lock);
		if (fs->rt.stopping)
			break;
		/* A fresh connection each time: an open one proves nothing. */
		if (c)
			be_conn_close(c);
		if (down && c && be_conn_connect(c) == 0) {
			pthread_mutex_lock(&fs->rt.lock);
			fs->rt.redis_down = false;
			pthread_cond_broadcast(&fs->rt.cond);
			pthread_mutex_unlock(&fs->rt.lock);
			LOG_WARN("redis answers again");
			continue;
		}
		nanosleep(&ts, NULL);
	}
	be_conn_free(c);
	return NULL;
}

int fs_route_init(struct fs *fs, const char *journal_path, char *err,
		  size_t errlen)
{
	bool corrupt = false;

	pthread_mutex_init(&fs->rt.lock, NULL);
	pthread_cond_init(&fs->rt.cond, NULL);
	fs_nameset_init(&fs->rt.fenced, FS_FENCE_MAX);
	fs_nameset_init(&fs->rt.mine, FS_MINE_MAX);
	fs->rt.journal = be_journal_open(journal_path, FS_JOURNAL_MAX, &corrupt,
					 err, errlen);
	if (!fs->rt.journal)
		return -1;
	fs->rt.journal_corrupt = corrupt;
	return 0;
}

int fs_route_start(struct fs *fs)
{
	if (pthread_create(&fs->rt.prober, NULL, probe_thread, fs) != 0)
		return -1;
	if (pthread_create(&fs->rt.repairer, NULL, repair_thread, fs) != 0)
		return -1;
	fs->rt.started = true;
	if (fs->ep.sentinel && be_sentinel_watch(fs->ep.sentinel, failover, fs))
		LOG_WARN(
			"cannot start the sentinel watcher: a failover is seen only when a connection fails");
	return 0;
}

void fs_route_stop(struct fs *fs)
{
	if (!fs->rt.journal)
		return;
	pthread_mutex_lock(&fs->rt.lock);
	fs->rt.stopping = true;
	pthread_cond_broadcast(&fs->rt.cond);
	pthread_mutex_unlock(&fs->rt.lock);
	be_sentinel_unwatch(fs->ep.sentinel);
	if (fs->rt.started) {
		pthread_join(fs->rt.prober, NULL);
		pthread_join(fs->rt.repairer, NULL);
	}
	be_journal_free(fs->rt.journal);
	fs->rt.journal = NULL;
	fs_nameset_release(&fs->rt.fenced);
	fs_nameset_release(&fs->rt.mine);
}
