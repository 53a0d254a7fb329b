/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The cross-host flock and fcntl locks of session files: the host's table
 * of names with holders (flock owners, fcntl byte ranges: plock.h) and
 * waiters, and the lock thread that holds, renews and releases one Redis
 * lock per name for the host.  lock.h states the design.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "fs_i.h"
#include "layout.h"
#include "lock.h"
#include "log.h"
#include "plock.h"

/* A host that lost the race polls again after 2 ms, then up to 20 ms. */
#define LK_POLL_MIN_MS 2
#define LK_POLL_MAX_MS 20
/*
 * A waiting host refreshes the want key at each poll; it outlives a few
 * polls so that the holder sees it between them.
 */
#define LK_WANT_MS (4 * LK_POLL_MAX_MS)
/*
 * While its processes hand the flock on among themselves, a host checks
 * the want key this often.
 */
#define LK_CHECK_MS 20
/*
 * A host keeps the Redis lock of a name this long after its last local
 * holder left, so that a process of this host that locks again soon pays
 * no round trip; at once if the want key says another host waits.
 */
#define LK_LINGER_MS 5
#define LK_BATCH     64
#define LK_TOKEN_MAX 128

/*
 * KEYS[1] lock, KEYS[2] want; ARGV[1] token, ARGV[2] lease ms, ARGV[3]
 * want ms, ARGV[4] "1" when this host gave the lock up for another.
 * Taking the lock again with our own token only extends it, so that a
 * pipeline resent after a cut connection cannot lock us out.  A host that
 * yielded does not take a free lock while the want key is set: the host
 * that asked takes it (deleting the want key), however slow its polls;
 * if that host is gone, the want key expires.  Nor does it set the want
 * key then: its own would hold the lock free for ever.
 */
static const char ACQUIRE_LUA[] =
	"local v = redis.call('get', KEYS[1]) "
	"if v == ARGV[1] or not v then "
	"if v ~= ARGV[1] and ARGV[4] == '1' and "
	"redis.call('exists', KEYS[2]) == 1 then return 0 end "
	"redis.call('set', KEYS[1], ARGV[1], 'px', ARGV[2]) "
	"redis.call('del', KEYS[2]) return 1 end "
	"redis.call('set', KEYS[2], '1', 'px', ARGV[3]) return 0";
/* KEYS[1] lock; ARGV[1] token, ARGV[2] lease ms: 1 renewed, 0 lost. */
static const char RENEW_LUA[] =
	"if redis.call('get', KEYS[1]) == ARGV[1] then "
	"return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0";
/* KEYS[1] lock; ARGV[1] token: compare-and-delete. */
static const char RELEASE_LUA[] =
	"if redis.call('get', KEYS[1]) == ARGV[1] then "
	"return redis.call('del', KEYS[1]) end return 0";

struct lk_holder {
	uint64_t owner;
	bool ex;
	struct lk_holder *next;
};

struct lk_waiter {
	fuse_req_t req;
	uint64_t nodeid;
	uint64_t owner;
	bool ex;
	bool nb; /* LOCK_NB: refused, not queued, when Redis says taken */
	bool refresh; /* granted first after the Redis lock was taken */
	uint64_t wver; /* with 'refresh': lk_name's acq_wver */
	bool posix; /* a SETLK(W) for the range below, not a FLOCK */
	int64_t start, end;
	uint32_t pid;
	int err; /* the reply of a grant: 0, or ENOLCK */
	struct lk_waiter *next;
};

/* A GETLK that asks Redis whether another host holds the name. */
struct lk_peek {
	fuse_req_t req;
	uint64_t owner;
	struct flock fl;
	struct lk_peek *next;
};

enum lk_call {
	LK_NONE = 0,
	LK_ACQUIRE,
	LK_RENEW,
	LK_RELEASE,
	LK_CHECK,
	LK_PEEK,
};

struct lk_name {
	char *name; /* the table's key: a session name or "#<ino>" */
	char *key; /* Redis lock key; NULL: this host alone decides */
	char *want; /* want key, with 'key' */
	/*
	 * The session's meta key, with 'key' in the plain layout (in the
	 * phpredis layout phpredis's own handler may write the value without
	 * touching the meta: no version to trust).
	 */
	char *meta;
	/*
	 * The meta's write version read right after the SET NX that took
	 * the lock (slot_fill()); 0: unknown (taken by the script).
	 */
	uint64_t acq_wver;
	struct lk_holder *holders; /* flock */
	struct fs_plock *plocks; /* fcntl */
	struct lk_waiter *head, **tail;
	struct lk_peek *peeks;
	bool held; /* the Redis lock is ours (or 'key' is NULL) */
	bool yield; /* another host wants it: no new local grant */
	bool yielded; /* released for another host, not retaken since */
	/*
	 * The SET NX of the first try found the lock taken: the script
	 * follows at once, with the same token (slot_fill()).
	 */
	bool nx_failed;
	enum lk_call busy; /* a call the lock thread has in flight */
	char token[LK_TOKEN_MAX];
	int64_t renew_at, check_at, next_try; /* CLOCK_MONOTONIC ns */
	int poll_ms;
	/* Redis locks taken, and the last one a grant re-read the bytes of. */
	uint64_t acq_gen, fresh_gen;
	int64_t idle_since; /* held with no holder or waiter since; 0: not */
	bool idle_checked; /* the want key was read since 'idle_since' */
	struct lk_name *next;
};

struct fs_locks {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct lk_name *names;
	int64_t lease_ms;
	uint64_t seq;
	uint64_t nplocks; /* fcntl locks in the table: FLUSH skips at 0 */
	uint32_t boot; /* random: tokens differ across restarts */
	struct be_conn *conn; /* the lock thread's own */
	pthread_t thread;
	bool started;
	bool stopping;
	bool degraded_logged;
};

static int64_t ms_ns(int64_t ms)
{
	return ms * 1000000LL;
}

static struct lk_name *name_find(struct fs_locks *lk, const char *name)
{
	struct lk_name *n;

	for (n = lk->names; n; n = n->next)
		if (strcmp(n->name, name) == 0)
			return n;
	return NULL;
}

/*
 * The entry of 'name', made on first use: with a Redis key when 'redis'
 * (a session name in a mode that stores sessions in Redis).  NULL on
 * ENOMEM.  Caller holds lk->lock.
 */
static struct lk_name *name_get(struct fs *fs, const char *name, bool redis)
{
	struct fs_locks *lk = fs->locks;
	struct lk_name *n = name_find(lk, name);
	char *vkey;

	if (n)
		return n;
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->name = strdup(name);
	n->tail = &n->head;
	n->held = true;
	/* Redis is down (route.c's breaker): no call would be answered. */
	if (redis && fs_route_redis_down(fs))
		redis = false;
	if (redis) {
		vkey = be_key_value(&fs->sc.ks, name);
		n->key = vkey ? be_key_lock(&fs->sc.ks, vkey) : NULL;
		n->want = vkey ? be_key_lock_want(&fs->sc.ks, vkey) : NULL;
		if (vkey && fs->sc.ks.layout == BE_LAYOUT_PLAIN)
			n->meta = be_key_meta(&fs->sc.ks, vkey);
		free(vkey);
		n->held = false;
		if (!n->key || !n->want ||
		    (fs->sc.ks.layout == BE_LAYOUT_PLAIN && !n->meta))
			goto out_free;
	}
	if (!n->name)
		goto out_free;
	n->next = lk->names;
	lk->names = n;
	return n;
out_free:
	free(n->key);
	free(n->want);
	free(n->meta);
	free(n->name);
	free(n);
	return NULL;
}

/* Whether a process of this host holds a lock on 'n', flock or fcntl. */
static bool has_holders(const struct lk_name *n)
{
	return n->holders || n->plocks;
}

static bool name_idle(const struct lk_name *n)
{
	return !has_holders(n) && !n->head && !n->peeks && !n->busy &&
	       (!n->key || !n->held);
}

/* Frees the entries nothing uses.  Caller holds lk->lock. */
static void names_sweep(struct fs_locks *lk)
{
	struct lk_name **pp = &lk->names, *n;

	while ((n = *pp)) {
		if (!name_idle(n)) {
			pp = &n->next;
			continue;
		}
		*pp = n->next;
		free(n->key);
		free(n->want);
		free(n->meta);
		free(n->name);
		free(n);
	}
}

/* Removes the holder 'owner' of 'n'; whether there was one. */
static bool holder_drop(struct lk_name *n, uint64_t owner)
{
	struct lk_holder **pp, *h;

	for (pp = &n->holders; (h = *pp); pp = &h->next)
		if (h->owner == owner) {
			*pp = h->next;
			free(h);
			return true;
		}
	return false;
}

/* Whether 'owner' may take the flock ('ex') next to the holders of 'n'. */
static bool compatible(const struct lk_name *n, uint64_t owner, bool ex)
{
	const struct lk_holder *h;

	for (h = n->holders; h; h = h->next)
		if (h->owner != owner && (h->ex || ex))
			return false;
	return true;
}

static void waiter_unlink(struct lk_name *n, struct lk_waiter *w)
{
	struct lk_waiter **pp;

	for (pp = &n->head; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	n->tail = &n->head;
	while (*n->tail)
		n->tail = &(*n->tail)->next;
}

/*
 * Whether the waiter 'w' of 'n' may be granted now, with flock waiters
 * before it blocked or not ('fblocked').  The host must hold the Redis
 * lock; once another host asked for it, only a process that holds an
 * fcntl lock here may still change its locks (it could not let go while
 * its own change waits).
 */
static bool grantable(const struct lk_name *n, const struct lk_waiter *w,
		      bool fblocked)
{
	if (!n->held)
		return false;
	if (!w->posix)
		return !fblocked && !n->yield && compatible(n, w->owner, w->ex);
	if (n->yield && !fs_plock_holds(n->plocks, w->owner))
		return false;
	return !fs_plock_conflict(n->plocks, w->owner, w->ex, w->start, w->end);
}

/*
 * Grants the waiters of 'n' that fit with the holders while the host may
 * grant (grantable()).  flock waiters go FIFO, so a stream of shared locks
 * cannot starve an exclusive one; fcntl waiters whenever their range is
 * free, as the kernel has it (flock and fcntl locks do not exclude each
 * other on a host).  Each waiter granted moves to the list '*out' (linked
 * by 'next'), for deliver() once lk->lock is dropped.  Caller holds
 * lk->lock.
 */
static void grant(struct fs_locks *lk, struct lk_name *n,
		  struct lk_waiter **out)
{
	struct lk_waiter *w, *next;
	struct lk_holder *h;
	bool fblocked = false;

	for (w = n->head; w; w = next) {
		next = w->next;
		if (!grantable(n, w, fblocked)) {
			fblocked |= !w->posix;
			continue;
		}
		if (w->posix) {
			if (fs_plock_set(&n->plocks, &lk->nplocks, w->owner,
					 w->nodeid, w->pid,
					 w->ex ? F_WRLCK : F_RDLCK, w->start,
					 w->end) < 0)
				w->err = ENOLCK;
		} else {
			h = malloc(sizeof(*h));
			if (!h) {
				fblocked = true;
				continue;
			}
			h->owner = w->owner;
			h->ex = w->ex;
			h->next = n->holders;
			n->holders = h;
		}
		waiter_unlink(n, w);
		n->idle_since = 0;
		n->idle_checked = false;
		w->refresh = n->key && n->fresh_gen != n->acq_gen;
		w->wver = n->acq_wver;
		n->fresh_gen = n->acq_gen;
		while (*out)
			out = &(*out)->next;
		w->next = NULL;
		*out = w;
	}
}

/*
 * Replies to the requests granted in 'list' and frees them; the first
 * grant after the host took the Redis lock first reads the session again
 * (fs_flock_refresh()): it was opened, and its bytes read, before the
 * lock was ours.  Called without lk->lock.
 */
static void deliver(struct fs *fs, struct lk_waiter *list)
{
	struct lk_waiter *w;
	int ret;

	while ((w = list)) {
		list = w->next;
		if (w->refresh) {
			ret = fs_flock_refresh(fs, w->nodeid, w->wver);
			if (ret < 0 && ret != -ENOENT)
				LOG_WARN(
					"cannot read a session again after its lock was taken: %s",
					strerror(-ret));
		}
		fuse_reply_err(w->req, w->err);
		free(w);
	}
}

/* Replies 'err' to every LOCK_NB waiter of 'n'.  Caller holds lk->lock. */
static void refuse_nb(struct lk_name *n, int err)
{
	struct lk_waiter **pp = &n->head, *w;

	while ((w = *pp)) {
		if (!w->nb) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		fuse_reply_err(w->req, err);
		free(w);
	}
	n->tail = &n->head;
	while (*n->tail)
		n->tail = &(*n->tail)->next;
}

/*
 * The FUSE INTERRUPT of a queued request: replies EINTR if it still
 * waits.  'data' is the table; the request is found by address, as a
 * request already granted is no longer queued.  libfuse holds the
 * request's own lock here, and keeps it alive.
 */
static void on_interrupt(fuse_req_t req, void *data)
{
	struct fs_locks *lk = data;
	struct lk_name *n;
	struct lk_waiter *w;

	pthread_mutex_lock(&lk->lock);
	for (n = lk->names; n; n = n->next)
		for (w = n->head; w; w = w->next)
			if (w->req == req) {
				waiter_unlink(n, w);
				fuse_reply_err(req, EINTR);
				free(w);
				names_sweep(lk);
				pthread_cond_signal(&lk->cond);
				goto out;
			}
out:
	pthread_mutex_unlock(&lk->lock);
}

/* The first flock waiter of 'n' (fcntl ones do not queue before it). */
static struct lk_waiter *first_flock(const struct lk_name *n)
{
	struct lk_waiter *w;

	for (w = n->head; w && w->posix; w = w->next)
		;
	return w;
}

void fs_lock_flock(struct fs *fs, fuse_req_t req, const char *name,
		   uint64_t ino, bool local, uint64_t owner, int op)
{
	struct fs_locks *lk = fs->locks;
	char tmp[32];
	struct lk_name *n;
	struct lk_waiter *w = NULL, *granted = NULL;
	bool redis, nb = (op & LOCK_NB) != 0;
	int cmd = op & (LOCK_SH | LOCK_EX | LOCK_UN);

	if (!lk) {
		fuse_reply_err(req, ENOLCK);
		return;
	}
	if (!name) {
		snprintf(tmp, sizeof(tmp), "#%" PRIu64, ino);
		name = tmp;
	}
	redis = name != tmp && !local && fs_mode_get(fs) != FS_MODE_FILES;
	if (cmd != LOCK_UN && !nb) {
		/* Registered first: an interrupt that came already runs now. */
		fuse_req_interrupt_func(req, on_interrupt, lk);
	}
	pthread_mutex_lock(&lk->lock);
	if (cmd == LOCK_UN) {
		/*
		 * By owner, under whatever name: the file may have been renamed
		 * since it was locked.
		 */
		for (n = lk->names; n; n = n->next)
			if (holder_drop(n, owner))
				grant(lk, n, &granted);
		pthread_cond_signal(&lk->cond);
		fuse_reply_err(req, 0);
		goto out;
	}
	n = name_get(fs, name, redis);
	if (n)
		w = calloc(1, sizeof(*w));
	if (!w) {
		fuse_reply_err(req, ENOLCK);
		goto out;
	}
	/* flock(2): a conversion drops the old lock, then takes the new. */
	holder_drop(n, owner);
	w->req = req;
	w->nodeid = ino;
	w->owner = owner;
	w->ex = cmd == LOCK_EX;
	w->nb = nb;
	*n->tail = w;
	n->tail = &w->next;
	grant(lk, n, &granted);
	for (w = n->head; w && w->req != req; w = w->next)
		;
	if (!w)
		goto out; /* granted */
	if (nb && (!compatible(n, owner, w->ex) || !n->key || n->yield ||
		   first_flock(n) != w)) {
		waiter_unlink(n, w);
		fuse_reply_err(req, EWOULDBLOCK);
		free(w);
	} else if (!nb && fuse_req_interrupted(req)) {
		waiter_unlink(n, w);
		fuse_reply_err(req, EINTR);
		free(w);
	}
	pthread_cond_signal(&lk->cond);
out:
	names_sweep(lk);
	pthread_mutex_unlock(&lk->lock);
	deliver(fs, granted);
}

void fs_lock_release_owner(struct fs *fs, uint64_t owner)
{
	struct fs_locks *lk = fs->locks;
	struct lk_name *n;
	struct lk_waiter *granted = NULL;
	bool any = false;

	if (!lk)
		return;
	pthread_mutex_lock(&lk->lock);
	for (n = lk->names; n; n = n->next)
		if (holder_drop(n, owner)) {
			grant(lk, n, &granted);
			any = true;
		}
	if (any) {
		names_sweep(lk);
		pthread_cond_signal(&lk->cond);
	}
	pthread_mutex_unlock(&lk->lock);
	deliver(fs, granted);
}

void fs_lock_setlk(struct fs *fs, fuse_req_t req, const char *name,
		   uint64_t ino, bool local, uint64_t owner,
		   const struct flock *fl, bool sleep)
{
	struct fs_locks *lk = fs->locks;
	char tmp[32];
	struct lk_name *n;
	struct lk_waiter *w = NULL, *granted = NULL;
	int64_t start, end;
	bool redis;
	int err = 0;

	if (!lk || fs_plock_range(fl, &start, &end) < 0) {
		fuse_reply_err(req, lk ? EINVAL : ENOLCK);
		return;
	}
	if (!name) {
		snprintf(tmp, sizeof(tmp), "#%" PRIu64, ino);
		name = tmp;
	}
	redis = name != tmp && !local && fs_mode_get(fs) != FS_MODE_FILES;
	if (fl->l_type != F_UNLCK && sleep)
		fuse_req_interrupt_func(req, on_interrupt, lk);
	pthread_mutex_lock(&lk->lock);
	if (fl->l_type == F_UNLCK) {
		/* By inode, under whatever name (a rename since the lock). */
		for (n = lk->names; n; n = n->next) {
			if (fs_plock_set(&n->plocks, &lk->nplocks, owner, ino,
					 0, F_UNLCK, start, end) < 0)
				err = ENOLCK;
			grant(lk, n, &granted);
		}
		pthread_cond_signal(&lk->cond);
		fuse_reply_err(req, err);
		goto out;
	}
	n = name_get(fs, name, redis);
	if (n)
		w = calloc(1, sizeof(*w));
	if (!w) {
		fuse_reply_err(req, ENOLCK);
		goto out;
	}
	w->req = req;
	w->nodeid = ino;
	w->owner = owner;
	w->ex = fl->l_type == F_WRLCK;
	w->nb = !sleep;
	w->posix = true;
	w->start = start;
	w->end = end;
	w->pid = (uint32_t)fl->l_pid;
	*n->tail = w;
	n->tail = &w->next;
	grant(lk, n, &granted);
	for (w = n->head; w && w->req != req; w = w->next)
		;
	if (!w)
		goto out; /* granted */
	if (!sleep && (fs_plock_conflict(n->plocks, owner, w->ex, start, end) ||
		       !n->key || n->held || n->yield)) {
		/* Only a Redis lock not yet tried makes F_SETLK wait: once. */
		waiter_unlink(n, w);
		fuse_reply_err(req, EAGAIN);
		free(w);
	} else if (sleep && fuse_req_interrupted(req)) {
		waiter_unlink(n, w);
		fuse_reply_err(req, EINTR);
		free(w);
	}
	pthread_cond_signal(&lk->cond);
out:
	names_sweep(lk);
	pthread_mutex_unlock(&lk->lock);
	deliver(fs, granted);
}

/*
 * Answers the GETLK 'q' on 'n': the first local fcntl lock in its way, or
 * when 'remote' (another host holds the name) a write lock on the whole
 * file with no pid (0: not a process of this host); F_UNLCK when free.
 * Frees 'q'.  Caller holds lk->lock.
 */
static void peek_answer(const struct lk_name *n, struct lk_peek *q, bool remote)
{
	const struct fs_plock *p = NULL;
	int64_t start, end;

	if (fs_plock_range(&q->fl, &start, &end) == 0 && n)
		p = fs_plock_conflict(n->plocks, q->owner,
				      q->fl.l_type == F_WRLCK, start, end);
	if (p) {
		q->fl.l_type = p->ex ? F_WRLCK : F_RDLCK;
		q->fl.l_start = p->start;
		q->fl.l_len = p->end == INT64_MAX ? 0 : p->end - p->start + 1;
		q->fl.l_pid = (pid_t)p->pid;
	} else if (remote) {
		q->fl.l_type = F_WRLCK;
		q->fl.l_start = 0;
		q->fl.l_len = 0;
		q->fl.l_pid = 0;
	} else {
		q->fl.l_type = F_UNLCK;
	}
	q->fl.l_whence = SEEK_SET;
	fuse_reply_lock(q->req, &q->fl);
	free(q);
}

/* Answers every queued GETLK of 'n'.  Caller holds lk->lock. */
static void peeks_answer(struct lk_name *n, bool remote)
{
	struct lk_peek *q;

	while ((q = n->peeks)) {
		n->peeks = q->next;
		peek_answer(n, q, remote);
	}
}

void fs_lock_getlk(struct fs *fs, fuse_req_t req, const char *name,
		   uint64_t ino, bool local, uint64_t owner,
		   const struct flock *fl)
{
	struct fs_locks *lk = fs->locks;
	char tmp[32];
	struct lk_name *n;
	struct lk_peek *q = calloc(1, sizeof(*q));
	int64_t start, end;
	bool redis;

	if (!lk || !q || fs_plock_range(fl, &start, &end) < 0) {
		free(q);
		fuse_reply_err(req, !lk || !q ? ENOLCK : EINVAL);
		return;
	}
	q->req = req;
	q->owner = owner;
	q->fl = *fl;
	if (!name) {
		snprintf(tmp, sizeof(tmp), "#%" PRIu64, ino);
		name = tmp;
	}
	redis = name != tmp && !local && fs_mode_get(fs) != FS_MODE_FILES;
	pthread_mutex_lock(&lk->lock);
	n = name_find(lk, name);
	if ((n && n->held) || !redis ||
	    (n && fs_plock_conflict(n->plocks, owner, fl->l_type == F_WRLCK,
				    start, end))) {
		/* This host decides: it holds the name, or nobody else can. */
		peek_answer(n, q, false);
		goto out;
	}
	n = name_get(fs, name, true);
	if (!n || !n->key) {
		peek_answer(n, q, false);
		goto out;
	}
	/* The lock thread asks Redis (LK_PEEK) and answers. */
	q->next = n->peeks;
	n->peeks = q;
	pthread_cond_signal(&lk->cond);
out:
	names_sweep(lk);
	pthread_mutex_unlock(&lk->lock);
}

void fs_lock_flush_owner(struct fs *fs, uint64_t ino, uint64_t owner)
{
	struct fs_locks *lk = fs->locks;
	struct lk_name *n;
	struct lk_waiter *granted = NULL;
	bool any = false;

	if (!lk)
		return;
	pthread_mutex_lock(&lk->lock);
	for (n = lk->nplocks ? lk->names : NULL; n; n = n->next)
		if (fs_plock_drop(&n->plocks, &lk->nplocks, owner, ino)) {
			grant(lk, n, &granted);
			any = true;
		}
	if (any) {
		names_sweep(lk);
		pthread_cond_signal(&lk->cond);
	}
	pthread_mutex_unlock(&lk->lock);
	deliver(fs, granted);
}

/* A fresh token for 'n': host id, pid, boot nonce and a sequence. */
static void token_new(struct fs *fs, struct lk_name *n)
{
	struct fs_locks *lk = fs->locks;

	snprintf(n->token, sizeof(n->token), "%.64s:%ld:%08" PRIx32 ":%" PRIu64,
		 fs->host_id, (long)getpid(), lk->boot, ++lk->seq);
}

/* The Redis call 'n' needs now, if any.  Caller holds lk->lock. */
static enum lk_call call_due(const struct lk_name *n, int64_t now)
{
	if (!n->key || n->busy)
		return LK_NONE;
	if (!n->held && n->peeks)
		return LK_PEEK;
	if (!n->held)
		return n->head && now >= n->next_try ? LK_ACQUIRE : LK_NONE;
	if (!has_holders(n) && n->yield)
		return LK_RELEASE;
	if (!has_holders(n) && !n->head && n->idle_since) {
		if (now >= n->idle_since + ms_ns(LK_LINGER_MS))
			return LK_RELEASE;
		if (!n->idle_checked)
			return LK_CHECK;
	}
	if (now >= n->renew_at)
		return LK_RENEW;
	if (n->head && !n->yield && now >= n->check_at)
		return LK_CHECK;
	return LK_NONE;
}

/* When the lock thread has work for 'n' next (INT64_MAX: none). */
static int64_t call_when(const struct lk_name *n)
{
	int64_t t = INT64_MAX;

	if (!n->key || n->busy)
		return t;
	if (!n->held && n->peeks)
		return 0;
	if (!n->held)
		return n->head ? n->next_try : t;
	t = n->renew_at;
	if (n->head && !n->yield && n->check_at < t)
		t = n->check_at;
	if (!has_holders(n) && !n->head && n->idle_since &&
	    n->idle_since + ms_ns(LK_LINGER_MS) < t)
		t = n->idle_since + ms_ns(LK_LINGER_MS);
	return t;
}

struct lk_slot {
	struct lk_name *n;
	enum lk_call call;
	bool nx; /* an LK_ACQUIRE sent as SET NX, not the script */
	int ncmd; /* commands sent for it: slot_cmds() */
	const char *hget[3]; /* after the SET NX: HMGET meta wv */
	const char *argv[9];
	size_t lens[9];
	char lease[24], want[24];
};

/* Fills 's' with the command of its call.  The strings stay in 'n'. */
static void slot_fill(struct fs_locks *lk, struct lk_slot *s, struct be_cmd *c)
{
	int argc = 0;

	snprintf(s->lease, sizeof(s->lease), "%" PRId64, lk->lease_ms);
	snprintf(s->want, sizeof(s->want), "%d", LK_WANT_MS);
	/*
	 * The first try of a host that did not yield is a plain SET NX PX
	 * (docs/DESIGN.md, "Session locks"): the lock is usually free, and a
	 * script costs Redis several times a SET.  It does not delete the
	 * want key: a host that set one polls with the script, which does.
	 * Found taken (by another host, or by our own token when a resent
	 * pipeline ran twice), the script follows with the same token.
	 */
	s->nx = s->call == LK_ACQUIRE && !s->n->yielded && !s->n->poll_ms &&
		!s->n->nx_failed;
	switch (s->call) {
	case LK_ACQUIRE:
		if (s->nx) {
			s->argv[argc++] = "SET";
			s->argv[argc++] = s->n->key;
			s->argv[argc++] = s->n->token;
			s->argv[argc++] = "NX";
			s->argv[argc++] = "PX";
			s->argv[argc++] = s->lease;
			break;
		}
		s->argv[argc++] = "EVAL";
		s->argv[argc++] = ACQUIRE_LUA;
		s->argv[argc++] = "2";
		s->argv[argc++] = s->n->key;
		s->argv[argc++] = s->n->want;
		s->argv[argc++] = s->n->token;
		s->argv[argc++] = s->lease;
		break;
	case LK_RENEW:
	case LK_RELEASE:
		s->argv[argc++] = "EVAL";
		s->argv[argc++] = s->call == LK_RENEW ? RENEW_LUA : RELEASE_LUA;
		s->argv[argc++] = "1";
		s->argv[argc++] = s->n->key;
		s->argv[argc++] = s->n->token;
		s->argv[argc++] = s->lease;
		break;
	case LK_PEEK:
		s->argv[argc++] = "EXISTS";
		s->argv[argc++] = s->n->key;
		break;
	case LK_CHECK:
	case LK_NONE:
		s->argv[argc++] = "EXISTS";
		s->argv[argc++] = s->n->want;
		break;
	}
	if (s->call == LK_ACQUIRE && !s->nx) {
		s->argv[argc++] = s->want;
		s->argv[argc++] = s->n->yielded ? "1" : "0";
	}
	for (int i = 0; i < argc; i++)
		s->lens[i] = strlen(s->argv[i]);
	c->argc = argc;
	c->argv = s->argv;
	c->argvlen = s->lens;
}

/*
 * Redis could not be asked within redis_timeout: the name falls back to
 * this host's table alone (as the kernel's local flock did), so a Redis
 * outage never blocks a request on its lock.  Caller holds lk->lock.
 */
static void degrade(struct fs_locks *lk, struct lk_name *n, int err)
{
	if (!lk->degraded_logged)
		LOG_WARN(
			"cannot take the lock of '%s' in redis: %s; it excludes this host's processes only",
			n->name, strerror(-err));
	lk->degraded_logged = true;
	free(n->key);
	free(n->want);
	free(n->meta);
	n->key = n->want = n->meta = NULL;
	n->held = true;
	n->yield = false;
}

/* Applies the reply 'r' (NULL: transport error 'err') of slot 's'. */
static void slot_done(struct fs_locks *lk, struct lk_slot *s, redisReply *r,
		      int err, int64_t now, struct lk_waiter **granted)
{
	struct lk_name *n = s->n;
	bool yes = r && ((r->type == REDIS_REPLY_INTEGER && r->integer == 1) ||
			 (s->nx && r->type == REDIS_REPLY_STATUS));

	n->busy = LK_NONE;
	if (r && r->type == REDIS_REPLY_ERROR) {
		LOG_ERR("cannot lock '%s' in redis: %s", n->name, r->str);
		err = -EIO;
		r = NULL;
	}
	switch (s->call) {
	case LK_ACQUIRE:
		n->nx_failed = s->nx && r && !yes;
		if (!r) {
			degrade(lk, n, err);
		} else if (n->nx_failed) {
			n->next_try = now; /* the script, at once */
		} else if (yes) {
			n->held = true;
			n->yielded = false;
			n->acq_gen++;
			n->poll_ms = 0;
			n->renew_at = now + ms_ns(lk->lease_ms / 3);
			n->check_at = now + ms_ns(LK_CHECK_MS);
		} else {
			n->poll_ms = n->poll_ms ? 2 * n->poll_ms
						: LK_POLL_MIN_MS;
			if (n->poll_ms > LK_POLL_MAX_MS)
				n->poll_ms = LK_POLL_MAX_MS;
			n->next_try = now + ms_ns(n->poll_ms);
		}
		grant(lk, n, granted);
		/* LOCK_NB had its one try: what was not granted is refused. */
		refuse_nb(n, EWOULDBLOCK);
		break;
	case LK_RENEW:
		if (r && !yes) {
			LOG_ERR("lost the lock of '%s' in redis (its lease ran out): another host may hold it",
				n->name);
			n->held = false;
			n->next_try = now;
		}
		/* A transport error: try again soon, within the lease. */
		n->renew_at = now + ms_ns(r ? lk->lease_ms / 3 : 500);
		break;
	case LK_RELEASE:
		if (r && !yes)
			LOG_DEBUG("lock of '%s' had expired before its release",
				  n->name);
		if (n->yield)
			n->yielded = true;
		n->yield = false;
		n->idle_since = 0;
		n->idle_checked = false;
		break;
	case LK_CHECK:
		n->check_at = now + ms_ns(LK_CHECK_MS);
		if (!has_holders(n) && !n->head)
			n->idle_checked = true;
		if (yes)
			n->yield = true;
		break;
	case LK_PEEK:
		/* Not held here (no acquire was in flight): another host's. */
		peeks_answer(n, yes);
		break;
	case LK_NONE:
		break;
	}
	/* GETLKs that came while this host took the lock: it decides. */
	if (n->peeks && (n->held || !n->key))
		peeks_answer(n, false);
}

/*
 * Fills 'c' with the commands of slot 's' (slot_fill()) and returns how
 * many: an acquire by SET NX is followed by "HMGET meta wv", which Redis
 * runs once the lock is ours: the write version that tells the grant
 * whether the bytes read before are still current (fs_flock_refresh();
 * every write of a sessfs bumps it).
 */
static size_t slot_cmds(struct fs_locks *lk, struct lk_slot *s,
			struct be_cmd *c)
{
	slot_fill(lk, s, c);
	s->ncmd = 1;
	if (!s->nx || !s->n->meta)
		return 1;
	s->ncmd = 2;
	s->hget[0] = "HMGET";
	s->hget[1] = s->n->meta;
	s->hget[2] = "wv";
	c[1] = (struct be_cmd){ 3, s->hget, NULL };
	return 2;
}

/* The write version in the reply 'r' of slot_cmds()'s HMGET; 0: none. */
static uint64_t reply_wver(const redisReply *r)
{
	char *end;
	unsigned long long v;

	if (r->type != REDIS_REPLY_ARRAY || r->elements != 1)
		return 0;
	r = r->element[0];
	if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->str[0] == '-')
		return 0;
	errno = 0;
	v = strtoull(r->str, &end, 10);
	return errno || end != r->str + r->len ? 0 : (uint64_t)v;
}

/* Rounds of release_tx() that found a watched key changed, then scripts. */
#define LK_TX_TRIES 3

/* Whether the GET reply 'r' holds the token of 'n'. */
static bool holds_token(const redisReply *r, const struct lk_name *n)
{
	return r->type == REDIS_REPLY_STRING &&
	       (size_t)r->len == strlen(n->token) &&
	       memcmp(r->str, n->token, (size_t)r->len) == 0;
}

/*
 * The releases of one round of the lock thread without a script
 * (docs/DESIGN.md, "Session locks"): "WATCH" of their keys with a GET of
 * each, then, for the keys that still hold our token, "MULTI, DEL ...,
 * EXEC", which be_conn never resends on another connection
 * (BE_CMD_NORETRY).  The EXEC runs only if no watched key changed since
 * the WATCH, and the WATCH was acknowledged before it was sent: a lock
 * that expired and was taken by another host in between is never
 * deleted, however late the EXEC reaches Redis, as the compare-and-delete
 * script had it.  An EXEC that found a key changed tries again, at most
 * LK_TX_TRIES times, then the script; a transport error leaves the locks
 * to their lease, as a failed script did.  Without 'tx', the scripts at
 * once.  Lock thread, without lk->lock
 * ('rel' are busy: nothing else changes them).
 */
static void release_tx(struct fs_locks *lk, struct lk_slot **rel, size_t nrel,
		       bool tx)
{
	const char *watch[LK_BATCH + 1] = { "WATCH" };
	const char *get[LK_BATCH][2], *del[LK_BATCH][2];
	const char *multi[1] = { "MULTI" }, *exec[1] = { "EXEC" };
	const char *unwatch[1] = { "UNWATCH" };
	struct be_cmd cmds[LK_BATCH + 2];
	redisReply *r[LK_BATCH + 2];
	size_t i, k, mine;
	int tries;

	for (i = 0; i < nrel; i++) {
		watch[1 + i] = rel[i]->n->key;
		get[i][0] = "GET";
		get[i][1] = rel[i]->n->key;
		del[i][0] = "DEL";
	}
	for (tries = tx ? 0 : LK_TX_TRIES; tries < LK_TX_TRIES; tries++) {
		cmds[0] = (struct be_cmd){ (int)nrel + 1, watch, NULL };
		for (i = 0; i < nrel; i++)
			cmds[1 + i] = (struct be_cmd){ 2, get[i], NULL };
		if (be_conn_pipeline(lk->conn, cmds, nrel + 1, r, 0))
			return;
		/* WATCH refused (an ACL): the scripts, unwatched DELs never. */
		if (r[0]->type == REDIS_REPLY_ERROR) {
			for (i = 0; i < nrel + 1; i++)
				freeReplyObject(r[i]);
			break;
		}
		mine = 0;
		for (i = 0; i < nrel; i++)
			if (holds_token(r[1 + i], rel[i]->n))
				del[mine++][1] = rel[i]->n->key;
		for (i = 0; i < nrel + 1; i++)
			freeReplyObject(r[i]);
		if (!mine) {
			if (be_conn_command(lk->conn, &r[0], 1, unwatch, NULL,
					    0) == 0)
				freeReplyObject(r[0]);
			return;
		}
		cmds[0] = (struct be_cmd){ 1, multi, NULL };
		for (k = 0; k < mine; k++)
			cmds[1 + k] = (struct be_cmd){ 2, del[k], NULL };
		cmds[1 + mine] = (struct be_cmd){ 1, exec, NULL };
		if (be_conn_pipeline(lk->conn, cmds, mine + 2, r,
				     BE_CMD_NORETRY))
			return;
		/* An array: deleted; nil: a key changed, look again. */
		k = r[1 + mine]->type == REDIS_REPLY_ARRAY ||
		    r[0]->type == REDIS_REPLY_ERROR;
		for (i = 0; i < mine + 2; i++)
			freeReplyObject(r[i]);
		if (k)
			return;
	}
	for (i = 0; i < nrel; i++)
		slot_fill(lk, rel[i], &cmds[i]);
	if (be_conn_pipeline(lk->conn, cmds, nrel, r, 0) == 0)
		for (i = 0; i < nrel; i++)
			freeReplyObject(r[i]);
}

static void *lock_thread(void *arg)
{
	struct fs *fs = arg;
	struct fs_locks *lk = fs->locks;
	struct lk_slot *slots = calloc(LK_BATCH, sizeof(*slots));
	struct lk_slot *rel[LK_BATCH];
	struct be_cmd cmds[2 * LK_BATCH];
	redisReply *replies[2 * LK_BATCH];
	struct lk_name *n;
	struct lk_waiter *granted;
	size_t k, nslots, ncmds, nrel;
	int64_t now, next;
	int ret;

	if (!slots) {
		LOG_ERR("cannot run the lock thread: out of memory");
		return NULL;
	}
	pthread_mutex_lock(&lk->lock);
	while (!lk->stopping) {
		now = fs_mono_ns();
		nslots = ncmds = nrel = 0;
		next = INT64_MAX;
		for (n = lk->names; n && nslots < LK_BATCH; n = n->next) {
			enum lk_call call;

			if (n->key && n->held && !has_holders(n) && !n->head &&
			    !n->idle_since)
				n->idle_since = now;
			call = call_due(n, now);

			if (call == LK_NONE) {
				if (call_when(n) < next)
					next = call_when(n);
				continue;
			}
			if (call == LK_ACQUIRE && !n->nx_failed)
				token_new(fs, n);
			if (call == LK_RELEASE)
				n->held = false; /* no grant until retaken */
			n->busy = call;
			slots[nslots].n = n;
			slots[nslots].call = call;
			if (call == LK_RELEASE)
				rel[nrel++] = &slots[nslots];
			else
				ncmds += slot_cmds(lk, &slots[nslots],
						   &cmds[ncmds]);
			nslots++;
		}
		if (!nslots) {
			struct timespec ts;

			if (next == INT64_MAX) {
				pthread_cond_wait(&lk->cond, &lk->lock);
				continue;
			}
			/* The condition variable runs on CLOCK_MONOTONIC. */
			ts.tv_sec = next / 1000000000LL;
			ts.tv_nsec = next % 1000000000LL;
			pthread_cond_timedwait(&lk->cond, &lk->lock, &ts);
			continue;
		}
		pthread_mutex_unlock(&lk->lock);
		ret = ncmds ? be_conn_pipeline(lk->conn, cmds, ncmds, replies,
					       0)
			    : 0;
		/*
		 * On a Cluster, the scripts: a MOVED between the WATCH and
		 * the EXEC would send the transaction to a node that holds no
		 * WATCH of its keys (and WATCH of keys in several slots is
		 * refused there anyway).
		 */
		if (nrel)
			release_tx(lk, rel, nrel, !fs->sc.cluster);
		pthread_mutex_lock(&lk->lock);
		now = fs_mono_ns();
		granted = NULL;
		for (k = ncmds = 0; k < nslots; k++) {
			/* A release: done, or left to its lease. */
			if (slots[k].call == LK_RELEASE) {
				slot_done(lk, &slots[k], NULL, 0, now,
					  &granted);
				continue;
			}
			if (slots[k].call == LK_ACQUIRE)
				slots[k].n->acq_wver =
					slots[k].ncmd == 2 && ret == 0
						? reply_wver(replies[ncmds + 1])
						: 0;
			slot_done(lk, &slots[k],
				  ret < 0 ? NULL : replies[ncmds], ret, now,
				  &granted);
			for (int j = 0; j < slots[k].ncmd; j++)
				if (ret == 0)
					freeReplyObject(replies[ncmds + j]);
			ncmds += slots[k].ncmd;
		}
		names_sweep(lk);
		if (granted) {
			pthread_mutex_unlock(&lk->lock);
			deliver(fs, granted);
			pthread_mutex_lock(&lk->lock);
		}
	}
	pthread_mutex_unlock(&lk->lock);
	free(slots);
	return NULL;
}

int fs_lock_init(struct fs *fs, int64_t lease_ms)
{
	struct fs_locks *lk = calloc(1, sizeof(*lk));
	pthread_condattr_t ca;

	if (!lk)
		return -ENOMEM;
	lk->lease_ms = lease_ms;
	if (getrandom(&lk->boot, sizeof(lk->boot), 0) != sizeof(lk->boot))
		lk->boot = (uint32_t)fs_now_ns();
	lk->conn = be_conn_new(&fs->ep, fs->redis_timeout);
	if (!lk->conn) {
		free(lk);
		return -ENOMEM;
	}
	pthread_mutex_init(&lk->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&lk->cond, &ca);
	pthread_condattr_destroy(&ca);
	fs->locks = lk;
	return 0;
}

int fs_lock_start(struct fs *fs)
{
	struct fs_locks *lk = fs->locks;
	int ret;

	if (!lk)
		return -ENOMEM;
	ret = pthread_create(&lk->thread, NULL, lock_thread, fs);
	if (ret)
		return -ret;
	lk->started = true;
	return 0;
}

/* Releases the Redis locks still held, one pipeline; at exit. */
static void release_all(struct fs_locks *lk)
{
	struct lk_slot *slots = calloc(LK_BATCH, sizeof(*slots));
	struct be_cmd cmds[LK_BATCH];
	redisReply *replies[LK_BATCH];
	struct lk_name *n = lk->names;
	size_t k, nslots;

	while (slots && n) {
		for (nslots = 0; n && nslots < LK_BATCH; n = n->next) {
			if (!n->key || (!n->held && n->busy != LK_RELEASE &&
					n->busy != LK_RENEW))
				continue;
			slots[nslots].n = n;
			slots[nslots].call = LK_RELEASE;
			slot_fill(lk, &slots[nslots], &cmds[nslots]);
			nslots++;
		}
		if (nslots &&
		    be_conn_pipeline(lk->conn, cmds, nslots, replies, 0) == 0)
			for (k = 0; k < nslots; k++)
				freeReplyObject(replies[k]);
	}
	free(slots);
}

void fs_lock_stop(struct fs *fs)
{
	struct fs_locks *lk = fs->locks;
	struct lk_name *n;
	struct lk_holder *h;
	struct lk_waiter *w;
	struct lk_peek *q;

	if (!lk)
		return;
	if (lk->started) {
		pthread_mutex_lock(&lk->lock);
		lk->stopping = true;
		pthread_cond_signal(&lk->cond);
		pthread_mutex_unlock(&lk->lock);
		pthread_join(lk->thread, NULL);
	}
	release_all(lk);
	/*
	 * The session is over: a request still queued gets no reply (the
	 * kernel dropped it with the connection).
	 */
	while ((n = lk->names)) {
		lk->names = n->next;
		while ((h = n->holders)) {
			n->holders = h->next;
			free(h);
		}
		while ((w = n->head)) {
			n->head = w->next;
			free(w);
		}
		fs_plock_free(n->plocks);
		while ((q = n->peeks)) {
			n->peeks = q->next;
			free(q);
		}
		free(n->key);
		free(n->want);
		free(n->meta);
		free(n->name);
		free(n);
	}
	be_conn_free(lk->conn);
	pthread_cond_destroy(&lk->cond);
	pthread_mutex_destroy(&lk->lock);
	free(lk);
	fs->locks = NULL;
}
