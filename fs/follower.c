/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The fleet follower (follower.h): reads the fleet's desired mode and check
 * request, walks this mount toward the desired mode through the guards,
 * answers a check, and writes the heartbeat.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs_i.h"
#include "fleet.h"
#include "follower.h"
#include "journal.h"
#include "log.h"
#include "mountpt.h"

#define FLEET_WHY_MAX 1024
/* Budget of one Redis call of the follower, in seconds (at most). */
#define FS_FLEET_REDIS_TIMEOUT 1.0

struct fs_fleet {
	struct fs *fs;
	struct be_conn *c; /* the thread's own */
	pthread_t thread;
	pthread_mutex_t lock; /* the fields below */
	pthread_cond_t cond;
	bool stopping;
	struct be_fleet_req desired; /* as last read */
	long long override; /* the request version a local change overrode */
	char blocked[FLEET_WHY_MAX]; /* why the desired mode is not reached */
	char progress[64]; /* what the follower does now ("" when idle) */
	bool redis_ok; /* the last tick reached Redis */
	/*
	 * The unmount a fleet rollback asks for happens once per request:
	 * 'unmounted_req' is the last request this host unmounted for, from
	 * its own last heartbeat in Redis once 'known' (so a mount made again
	 * after the rollback stays); 'gone' once this daemon unmounted itself
	 * (it follows nothing more, and its last heartbeat stays as its word).
	 */
	bool known;
	long long unmounted_req;
	bool gone;
	struct {
		long long version;
		char mode[BE_FLEET_MODE_MAX];
		bool ok;
		char why[FLEET_WHY_MAX];
	} check;
};

static void set_text(struct fs_fleet *fl, char *dst, size_t len,
		     const char *text)
{
	pthread_mutex_lock(&fl->lock);
	snprintf(dst, len, "%s", text);
	pthread_mutex_unlock(&fl->lock);
}

static bool overridden(struct fs_fleet *fl, const struct be_fleet_req *want)
{
	bool ret;

	pthread_mutex_lock(&fl->lock);
	ret = fl->override && want->version <= fl->override;
	pthread_mutex_unlock(&fl->lock);
	return ret;
}

/*
 * Records that 'why' blocks the fleet's request; the log says it once per
 * reason, not every tick.
 */
static void block(struct fs_fleet *fl, const char *why)
{
	bool changed;

	pthread_mutex_lock(&fl->lock);
	changed = strcmp(fl->blocked, why) != 0;
	snprintf(fl->blocked, sizeof(fl->blocked), "%s", why);
	pthread_mutex_unlock(&fl->lock);
	if (changed)
		LOG_INFO("fleet: cannot follow yet: %s", why);
}

/*
 * On the way down with a rollback's request, redis-first exports what the
 * files underneath lack before it leaves (as `export --mount` would).
 */
static int export_first(struct fs_fleet *fl)
{
	struct fs *fs = fl->fs;
	struct fs_export_stats st;
	char why[FLEET_WHY_MAX];
	int ret;

	set_text(fl, fl->progress, sizeof(fl->progress), "exporting");
	LOG_INFO("fleet: exporting to the files underneath (rollback)");
	ret = fs_export(fs, &st);
	set_text(fl, fl->progress, sizeof(fl->progress), "");
	if (ret == 0 && fs_mode_get(fs) == FS_MODE_REDIS_FIRST)
		fs->lower_current = true;
	if (ret < 0) {
		snprintf(
			why, sizeof(why),
			"the export failed: %zu of %zu names (see the daemon log)",
			st.errors, st.names);
		block(fl, why);
		return ret;
	}
	LOG_INFO("fleet: exported %zu names (%zu written, %zu deleted)",
		 st.names, st.written, st.deleted);
	return 0;
}

static bool unmount_done(struct fs_fleet *fl, const struct be_fleet_req *want)
{
	bool ret;

	pthread_mutex_lock(&fl->lock);
	ret = want->unmount && want->version <= fl->unmounted_req;
	pthread_mutex_unlock(&fl->lock);
	return ret;
}

static void heartbeat(struct fs_fleet *fl);

/*
 * The end of a fleet rollback in files: the manifest, then every sessfs
 * layer of the mountpoint removed lazily, as `sessfs -u` does (files the
 * application holds open are finished through this daemon; it exits when
 * the last is closed, with status 0, which a unit with Restart=on-failure
 * does not restart).  The last heartbeat says "unmounted".
 */
static void unmount_self(struct fs_fleet *fl, const struct be_fleet_req *want)
{
	struct fs *fs = fl->fs;
	char err[512], msg[600];
	unsigned int n = 0;

	set_text(fl, fl->progress, sizeof(fl->progress), "unmounting");
	heartbeat(fl);
	fs_prepare_unmount(fs);
	if (fs_mountpt_unmount_all(fs->cfg.mountpoint, &n, err, sizeof(err)) <
	    0) {
		set_text(fl, fl->progress, sizeof(fl->progress), "");
		snprintf(msg, sizeof(msg), "in files, but cannot unmount: %s",
			 err);
		block(fl, msg);
		return;
	}
	pthread_mutex_lock(&fl->lock);
	fl->unmounted_req = want->version;
	fl->gone = true;
	fl->progress[0] = '\0';
	pthread_mutex_unlock(&fl->lock);
	LOG_INFO(
		"fleet: unmounted %u sessfs layer%s from '%s' (fleet request %lld: rollback); exiting once the files opened before are closed",
		n, n == 1 ? "" : "s", fs->cfg.mountpoint, want->version);
	heartbeat(fl);
}

/* Walks the mode toward 'want', one guarded step at a time. */
static void follow(struct fs_fleet *fl, const struct be_fleet_req *want)
{
	struct fs *fs = fl->fs;
	enum fs_mode target, cur, next;
	char why[FLEET_WHY_MAX], msg[FLEET_WHY_MAX + 64];

	if (!want->version || overridden(fl, want) || unmount_done(fl, want))
		return;
	if (fs_mode_parse(want->mode, &target) < 0) {
		snprintf(msg, sizeof(msg), "unknown mode '%s' requested",
			 want->mode);
		block(fl, msg);
		return;
	}
	for (;;) {
		cur = fs_mode_get(fs);
		if (cur == target || overridden(fl, want))
			break;
		next = fs_mode_step_toward(cur, target);
		if (want->exporting && cur == FS_MODE_REDIS_FIRST &&
		    next < FS_MODE_REDIS_FIRST && !fs->lower_current &&
		    export_first(fl) < 0)
			return;
		if (fs_mode_change(fs, next, false, why, sizeof(why)) < 0) {
			snprintf(msg, sizeof(msg), "from %s to %s: %s",
				 fs_mode_name(cur), fs_mode_name(next), why);
			block(fl, msg);
			return;
		}
		LOG_INFO("fleet: mode %s -> %s (fleet request %lld: %s)",
			 fs_mode_name(cur), fs_mode_name(next), want->version,
			 want->mode);
	}
	set_text(fl, fl->blocked, sizeof(fl->blocked), "");
	if (want->unmount && cur == FS_MODE_FILES && !overridden(fl, want))
		unmount_self(fl, want);
}

/*
 * Whether this mount could walk to the mode of 'req' now: each step's
 * guard with the facts as they will be after the steps before it, then
 * the stores of the target probed.  The answer goes into fl->check.
 */
static void answer_check(struct fs_fleet *fl, const struct be_fleet_req *req)
{
	struct fs *fs = fl->fs;
	enum fs_mode target, sim, next;
	struct fs_mode_facts f;
	bool lower, left_files = false;
	char why[FLEET_WHY_MAX] = "", msg[FLEET_WHY_MAX + 64] = "";
	int ret = 0;

	if (fs_mode_parse(req->mode, &target) < 0) {
		snprintf(msg, sizeof(msg), "unknown mode '%s'", req->mode);
		ret = -EINVAL;
	}
	/*
	 * Under the mode lock: the mode stays put while it is judged, and
	 * the probes never meet a mode change's (they share their keys).
	 */
	pthread_mutex_lock(&fs->mode_lock);
	sim = fs_mode_get(fs);
	lower = fs->lower_current;
	while (ret == 0 && sim != target) {
		next = fs_mode_step_toward(sim, target);
		ret = fs_mode_facts(fs, sim, next, &f, why, sizeof(why));
		f.lower_current = lower;
		/* A rollback exports before leaving redis-first. */
		if (req->exporting && sim == FS_MODE_REDIS_FIRST &&
		    next < FS_MODE_REDIS_FIRST) {
			f.lower_current = true;
			f.journal_lower = false;
		}
		/*
		 * Leaving files on the way ends a files period then, which
		 * no verify of today covers; its journal is replayed after.
		 */
		if (left_files) {
			f.files = INT64_MAX;
			f.journal_redis = false;
		}
		if (ret == 0)
			ret = fs_mode_guard(sim, next, &f, why, sizeof(why));
		if (ret < 0)
			snprintf(msg, sizeof(msg), "from %s to %s: %s",
				 fs_mode_name(sim), fs_mode_name(next), why);
		lower = fs_mode_lower_current_after(sim, next, lower);
		left_files |= sim == FS_MODE_FILES;
		sim = next;
	}
	if (ret == 0) {
		ret = fs_mode_check_stable(fs, target, why, sizeof(why));
		if (ret < 0)
			snprintf(msg, sizeof(msg), "%s", why);
	}
	pthread_mutex_unlock(&fs->mode_lock);
	pthread_mutex_lock(&fl->lock);
	fl->check.version = req->version;
	snprintf(fl->check.mode, sizeof(fl->check.mode), "%s", req->mode);
	fl->check.ok = ret == 0;
	snprintf(fl->check.why, sizeof(fl->check.why), "%s", msg);
	pthread_mutex_unlock(&fl->lock);
}

/* What is wrong with the mount now, as status --mount sees it. */
static json_t *problems(struct fs *fs)
{
	json_t *p = json_array();
	uint64_t ops, errors;

	/*
	 * Through the accessor, under rt's lock: the probe thread flips
	 * redis_down while this (the fleet thread's heartbeat) reads it.
	 */
	if (fs_route_redis_down(fs))
		json_array_append_new(p, json_string("redis unreachable"));
	if (fs->rt.journal_corrupt)
		json_array_append_new(p, json_string("journal corrupt"));
	if (fs_nameset_count(&fs->rt.fenced))
		json_array_append_new(p, json_string("names fenced"));
	fs_route_error_rate(fs, &ops, &errors);
	if (ops >= 100 && errors * 100 > ops)
		json_array_append_new(p, json_string("error rate over 1 %"));
	return p;
}

json_t *fs_fleet_status(struct fs *fs)
{
	struct fs_fleet *fl = fs->fleet;
	json_t *st, *probs;

	if (!fl)
		return NULL;
	probs = problems(fs);
	pthread_mutex_lock(&fl->lock);
	st = json_pack(
		"{s:s, s:s, s:s, s:s?, s:I, s:b, s:s?, s:s?, s:s, s:o, s:I, s:b, s:b, s:{s:I, s:s, s:b, s:s?}, s:s, s:I}",
		"host", fs->host_id, "mount", fs->cfg.mountpoint, "mode",
		fs_mode_name(fs_mode_get(fs)), "desired",
		fl->desired.version ? fl->desired.mode : NULL, "request",
		(json_int_t)fl->desired.version, "override",
		fl->override && fl->desired.version <= fl->override, "blocked",
		fl->blocked[0] ? fl->blocked : NULL, "progress",
		fl->progress[0] ? fl->progress : NULL, "health",
		json_array_size(probs) ? "degraded" : "ok", "problems", probs,
		"journal", (json_int_t)be_journal_count(fs->rt.journal),
		"lower_current", fs->lower_current, "redis_ok", fl->redis_ok,
		"check", "version", (json_int_t)fl->check.version, "mode",
		fl->check.mode, "ok", fl->check.ok, "why",
		fl->check.why[0] ? fl->check.why : NULL, "version",
		PACKAGE_VERSION, "at_ms", (json_int_t)(fs_now_ns() / 1000000));
	json_object_set_new(st, "unmounted", json_boolean(fl->gone));
	json_object_set_new(st, "unmounted_request",
			    json_integer(fl->unmounted_req));
	pthread_mutex_unlock(&fl->lock);
	return st;
}

static void heartbeat(struct fs_fleet *fl)
{
	json_t *st = fs_fleet_status(fl->fs);
	char *text = st ? json_dumps(st, JSON_COMPACT) : NULL;

	if (text)
		be_fleet_heartbeat_put(fl->c, fl->fs->sc.ks.prefix,
				       fl->fs->host_id, text, FS_FLEET_TTL_MS);
	free(text);
	json_decref(st);
}

/*
 * Reads this host's own last heartbeat (0 or -errno): the last rollback it
 * unmounted for.  A host with none was not in the fleet when the request
 * in force was made: a rollback's unmount is not for this mount.
 */
static int load_own(struct fs_fleet *fl, const struct be_fleet_req *want)
{
	struct fs *fs = fl->fs;
	struct be_fleet_host *hosts;
	long long done = want->unmount ? want->version : 0;
	size_t n, i;
	json_t *hb;
	int ret;

	ret = be_fleet_hosts(fl->c, fs->sc.ks.prefix, &hosts, &n);
	if (ret < 0)
		return ret;
	for (i = 0; i < n; i++) {
		if (strcmp(hosts[i].host, fs->host_id) != 0)
			continue;
		hb = json_loads(hosts[i].json, 0, NULL);
		done = json_integer_value(
			json_object_get(hb, "unmounted_request"));
		json_decref(hb);
		break;
	}
	be_fleet_hosts_free(hosts, n);
	pthread_mutex_lock(&fl->lock);
	fl->unmounted_req = done;
	fl->known = true;
	pthread_mutex_unlock(&fl->lock);
	if (want->unmount && want->version <= done)
		LOG_INFO(
			"fleet: the rollback of fleet request %lld is done here (unmounted before this mount, or it predates it): this mount stays until the next fleet request",
			want->version);
	return 0;
}

static void tick(struct fs_fleet *fl)
{
	const char *prefix = fl->fs->sc.ks.prefix;
	struct be_fleet_req want, check;
	bool ok, answer;
	int ret;

	if (fl->gone)
		return;
	ret = be_fleet_req_get(fl->c, prefix, "desired", &want);
	if (ret == 0)
		ret = be_fleet_req_get(fl->c, prefix, "check", &check);
	if (ret == 0 && !fl->known)
		ret = load_own(fl, &want);
	ok = ret == 0;
	pthread_mutex_lock(&fl->lock);
	if (ok != fl->redis_ok)
		LOG_INFO("fleet: %s", ok ? "following the fleet's requests"
					 : "cannot read the fleet's requests");
	fl->redis_ok = ok;
	if (ok)
		fl->desired = want;
	answer = ok && check.version && check.version != fl->check.version;
	pthread_mutex_unlock(&fl->lock);
	if (!ok)
		return;
	if (answer)
		answer_check(fl, &check);
	follow(fl, &want);
	heartbeat(fl);
}

static void *fleet_thread(void *arg)
{
	struct fs_fleet *fl = arg;
	struct timespec until;

	for (;;) {
		tick(fl);
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += FS_FLEET_TICK_MS * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		pthread_mutex_lock(&fl->lock);
		while (!fl->stopping &&
		       pthread_cond_timedwait(&fl->cond, &fl->lock, &until) !=
			       ETIMEDOUT)
			;
		if (fl->stopping) {
			pthread_mutex_unlock(&fl->lock);
			break;
		}
		pthread_mutex_unlock(&fl->lock);
	}
	return NULL;
}

int fs_fleet_start(struct fs *fs)
{
	struct fs_fleet *fl = calloc(1, sizeof(*fl));
	pthread_condattr_t ca;

	if (!fl)
		return -ENOMEM;
	fl->fs = fs;
	fl->redis_ok = true;
	/*
	 * A short budget: a tick in an outage must not hold up an unmount,
	 * and the next tick tries again anyway.
	 */
	fl->c = be_conn_new(&fs->ep, fs->redis_timeout < FS_FLEET_REDIS_TIMEOUT
					     ? fs->redis_timeout
					     : FS_FLEET_REDIS_TIMEOUT);
	if (!fl->c)
		goto out_free;
	pthread_mutex_init(&fl->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&fl->cond, &ca);
	pthread_condattr_destroy(&ca);
	/*
	 * Published before the thread starts: its first tick reads
	 * fs->fleet (fs_fleet_status()), and pthread_create() orders this
	 * write before that read; set after, the two raced (TSan).
	 */
	fs->fleet = fl;
	if (pthread_create(&fl->thread, NULL, fleet_thread, fl) != 0)
		goto out_destroy;
	return 0;
out_destroy:
	fs->fleet = NULL;
	pthread_cond_destroy(&fl->cond);
	pthread_mutex_destroy(&fl->lock);
	be_conn_free(fl->c);
out_free:
	free(fl);
	return -EAGAIN;
}

void fs_fleet_stop(struct fs *fs)
{
	struct fs_fleet *fl = fs->fleet;

	if (!fl)
		return;
	pthread_mutex_lock(&fl->lock);
	fl->stopping = true;
	pthread_cond_signal(&fl->cond);
	pthread_mutex_unlock(&fl->lock);
	pthread_join(fl->thread, NULL);
	/*
	 * A clean unmount takes the host out of the fleet: a host that is
	 * down without one stays listed, silent, and blocks fleet steps.
	 */
	if (fl->redis_ok && !fl->gone)
		be_fleet_forget(fl->c, fs->sc.ks.prefix, fs->host_id);
	fs->fleet = NULL;
	pthread_cond_destroy(&fl->cond);
	pthread_mutex_destroy(&fl->lock);
	be_conn_free(fl->c);
	free(fl);
}

void fs_fleet_local_change(struct fs *fs)
{
	struct fs_fleet *fl = fs->fleet;
	enum fs_mode want;

	if (!fl)
		return;
	pthread_mutex_lock(&fl->lock);
	if (fl->desired.version &&
	    fs_mode_parse(fl->desired.mode, &want) == 0 &&
	    want != fs_mode_get(fs))
		fl->override = fl->desired.version;
	else
		fl->override = 0;
	pthread_mutex_unlock(&fl->lock);
}
