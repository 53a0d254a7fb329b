/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Tracked lookups (docs/DESIGN.md; -o cache=tracking): what a store call
 * in redis-only learnt of a name (its attributes, and the bytes of a
 * closed session) answers the next LOOKUP, GETATTR and OPEN of that name
 * without a round trip, for as long as Redis has not said that someone
 * else changed it (backend/track.h).
 *
 * A store call takes a token first (fs_track_begin): the epoch, and the
 * count of invalidations of the name's stripe.  What the call learnt is
 * kept (inode->tracked) only if neither moved meanwhile: an invalidation
 * handled while the reply was on its way must not be overwritten by the
 * older state.  The tracker thread counts the stripe up first and then
 * clears the inode's mark, under inode->lock, which the installer holds
 * while it checks and marks.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"
#include "log.h"
#include "track.h"

/* What a store call learnt is trusted for at most this long. */
#define FS_TRACK_MAX_NS (60 * 1000000000LL)

static atomic_uint *stripe_count(struct fs *fs, const char *name)
{
	return &fs->track_inval[be_fnv1a64(name) % FS_NAME_STRIPES];
}

/* The epoch entries are made in now, or 0 when none may be. */
static uint64_t epoch_now(struct fs *fs)
{
	if (!fs->tracker || !fs_mode_may_track(fs_mode_get(fs)))
		return 0;
	return be_tracker_epoch(fs->tracker);
}

void fs_track_begin(struct fs *fs, const char *name, struct fs_track_tok *tok)
{
	/* The cheap test first: no journal or fence lookup with tracking off. */
	tok->epoch = name ? epoch_now(fs) : 0;
	if (tok->epoch && !fs_route_cacheable(fs, name))
		tok->epoch = 0;
	tok->inval = tok->epoch ? atomic_load(stripe_count(fs, name)) : 0;
}

void fs_track_end(struct fs *fs, struct fs_inode *inode, const char *name,
		  const struct fs_track_tok *tok, int64_t pttl_ms)
{
	int64_t ttl = FS_TRACK_MAX_NS;

	inode->tracked = 0;
	if (!tok->epoch || atomic_load(stripe_count(fs, name)) != tok->inval ||
	    epoch_now(fs) != tok->epoch)
		return;
	if (pttl_ms > 0 && pttl_ms * 1000000LL < ttl)
		ttl = pttl_ms * 1000000LL;
	inode->tracked = tok->epoch;
	inode->tracked_until = fs_mono_ns() + ttl;
}

bool fs_track_valid(struct fs *fs, const struct fs_inode *inode)
{
	if (!fs->tracker || !inode->tracked ||
	    fs_mono_ns() >= inode->tracked_until)
		return false;
	/*
	 * An invalidation that reached this host is applied before the entry
	 * is believed: the tracker is asked first (inode->lock is held, so
	 * the invalidation of this inode cannot land between the two).
	 */
	if (!be_tracker_quiet(fs->tracker))
		return false;
	return inode->tracked == epoch_now(fs);
}

bool fs_track_unsure(struct fs *fs)
{
	return epoch_now(fs) != 0 && !be_tracker_quiet(fs->tracker);
}

#define OWN_KEYS "{sessfs}:"

/* The tracker thread: someone else changed 'key' (NULL: anything). */
static void invalidate(void *arg, const char *key, size_t len)
{
	struct fs *fs = arg;
	struct fs_inode *inode;
	bool is_meta;
	char *name;

	if (!key) {
		/* A new epoch: every entry goes at once. */
		be_tracker_lost(fs->tracker);
		return;
	}
	name = be_key_to_name(&fs->sc.ks, key, len, &is_meta);
	if (!name) {
		/* Under our prefix yet no name (or ENOMEM): forget it all. */
		size_t plen = strlen(fs->sc.ks.prefix);

		/*
		 * Our own keys ('{sessfs}:' after the prefix: the names index
		 * that count reads, the fleet markers) hold no session.
		 */
		if (len >= plen && memcmp(key, fs->sc.ks.prefix, plen) == 0 &&
		    !(len - plen >= sizeof(OWN_KEYS) - 1 &&
		      memcmp(key + plen, OWN_KEYS, sizeof(OWN_KEYS) - 1) == 0))
			be_tracker_lost(fs->tracker);
		return;
	}
	atomic_fetch_add(stripe_count(fs, name), 1);
	inode = fs_inode_get_name(fs, name, false, false);
	if (inode) {
		pthread_mutex_lock(&inode->lock);
		inode->tracked = 0;
		inode->attr_at = 0;
		if (inode->loaded)
			inode->stale = true;
		else
			inode->prefetched = false;
		pthread_mutex_unlock(&inode->lock);
		fs_inode_put(fs, inode);
	}
	free(name);
}

/* The tracker thread, every 50 ms: idle connections closed by Redis. */
static void tick(void *arg)
{
	struct fs *fs = arg;
	const char *why = be_tracker_disabled(fs->tracker);

	if (why && !atomic_exchange(&fs->track_refusal_logged, true))
		LOG_WARN(
			"redis refused client tracking (%s): every lookup asks redis",
			why);
	if (be_pool_sweep(fs->pool))
		be_tracker_lost(fs->tracker);
}

int fs_track_start(struct fs *fs)
{
	int ret;

	if (!fs->cfg.cache || strcmp(fs->cfg.cache, "tracking") != 0)
		return 0;
	fs->tracker = be_tracker_new(&fs->ep, fs->redis_timeout, invalidate,
				     tick, fs);
	if (!fs->tracker)
		return -ENOMEM;
	be_pool_set_tracker(fs->pool, fs->tracker);
	ret = be_tracker_start(fs->tracker);
	if (ret < 0) {
		be_pool_set_tracker(fs->pool, NULL);
		be_tracker_free(fs->tracker);
		fs->tracker = NULL;
	}
	return ret;
}

void fs_track_stop(struct fs *fs)
{
	if (!fs->tracker)
		return;
	be_pool_set_tracker(fs->pool, NULL);
	be_tracker_free(fs->tracker);
	fs->tracker = NULL;
}

void fs_track_reset(struct fs *fs)
{
	if (fs->tracker)
		be_tracker_lost(fs->tracker);
}
