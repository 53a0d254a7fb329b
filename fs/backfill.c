/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Online backfill: the daemon copies the sessions of its lower dir into
 * Redis while the application runs (backfill.h has the contract).  One
 * thread walks a sorted listing, one name at a time under the name's
 * stripe, paced by the rate limit; everything in struct fs_backfill is
 * under its lock, which is never held across a store call.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "fs_i.h"
#include "backfill.h"
#include "journal.h"
#include "log.h"
#include "lowerstore.h"

#define BF_SAVE_NS	1000000000LL /* the cursor is saved this often */
#define BF_WAIT_NS	200000000LL /* a waiting thread looks again */
#define BF_FILE_SUFFIX	"backfill"
#define BF_FILE_VERSION 1

enum bf_state {
	BF_IDLE = 0,
	BF_RUNNING,
	BF_PAUSED,
	BF_DONE,
};

static const char *const bf_state_names[] = { "idle", "running", "paused",
					      "done" };

/* What became of one name. */
enum bf_result {
	BF_COPIED,
	BF_EXISTING,
	BF_TOMBSTONE,
	BF_EXPIRED,
	BF_SKIPPED,
	BF_VANISHED,
	BF_ERROR,
	BF_RETRY, /* Redis unreachable: the same name again later */
};

struct fs_backfill {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* state, rate or gen changed; stopping */
	pthread_t thread;
	bool started;
	bool stopping;
	enum bf_state state;
	uint64_t gen; /* bumped by a start from the beginning */
	char *cursor; /* the last name done; NULL: none yet */
	double rate; /* names per second; 0: no limit */
	struct fs_backfill_counts n;
	bool resumed; /* this run was saved by an earlier daemon */
	int64_t started_ns, finished_ns; /* CLOCK_REALTIME */
	/* The current stretch of running, for pacing, speed and ETA. */
	int64_t seg_start; /* CLOCK_MONOTONIC ns; 0: not running */
	uint64_t seg_done; /* n.done at seg_start */
	const char *waiting; /* why a running walk waits; NULL: it works */
	bool busy; /* a name is being copied (the lock is not held) */
	int64_t saved_at; /* CLOCK_MONOTONIC ns of the last save */
};

struct fs_backfill *fs_backfill_new(void)
{
	struct fs_backfill *b = calloc(1, sizeof(*b));
	pthread_condattr_t ca;

	if (!b)
		return NULL;
	pthread_mutex_init(&b->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->cond, &ca);
	pthread_condattr_destroy(&ca);
	return b;
}

void fs_backfill_free(struct fs_backfill *b)
{
	if (!b)
		return;
	free(b->cursor);
	pthread_cond_destroy(&b->cond);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

/* ---- the cursor file ---- */

static char *hex_of(const char *s)
{
	size_t i, len = strlen(s);
	char *out = malloc(len * 2 + 1);

	for (i = 0; out && i < len; i++)
		sprintf(out + 2 * i, "%02x", (unsigned char)s[i]);
	if (out)
		out[len * 2] = '\0';
	return out;
}

static char *unhex(const char *s)
{
	size_t i, len = strlen(s);
	char *out;

	if (len % 2)
		return NULL;
	out = malloc(len / 2 + 1);
	for (i = 0; out && i < len / 2; i++) {
		unsigned int v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1 || v == 0) {
			free(out);
			return NULL;
		}
		out[i] = (char)v;
	}
	if (out)
		out[len / 2] = '\0';
	return out;
}

static json_t *counts_json(const struct fs_backfill_counts *n)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			 "total", (json_int_t)n->total, "done",
			 (json_int_t)n->done, "copied", (json_int_t)n->copied,
			 "existing", (json_int_t)n->existing, "tombstone",
			 (json_int_t)n->tombstone, "expired",
			 (json_int_t)n->expired, "skipped",
			 (json_int_t)n->skipped, "vanished",
			 (json_int_t)n->vanished, "errors",
			 (json_int_t)n->errors);
}

static uint64_t count_of(json_t *o, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(o, key));

	return v > 0 ? (uint64_t)v : 0;
}

/*
 * Writes the run to <state_dir>/<id>.backfill (a temp, then rename: a
 * crash leaves the old file or the new one).  Caller holds b->lock.
 */
static void bf_save(struct fs *fs, struct fs_backfill *b)
{
	char *path = fs_state_path(fs, BF_FILE_SUFFIX), *tmp = NULL;
	char *cur = b->cursor ? hex_of(b->cursor) : NULL;
	json_t *o;

	b->saved_at = fs_mono_ns();
	if (!path || asprintf(&tmp, "%s.tmp", path) < 0)
		tmp = NULL;
	o = json_pack("{s:i, s:s, s:s?, s:f, s:I, s:I, s:o}", "version",
		      BF_FILE_VERSION, "state", bf_state_names[b->state],
		      "cursor", cur, "rate", b->rate, "started_ns",
		      (json_int_t)b->started_ns, "finished_ns",
		      (json_int_t)b->finished_ns, "counts", counts_json(&b->n));
	if (tmp && o && json_dump_file(o, tmp, JSON_COMPACT) == 0) {
		if (rename(tmp, path) < 0)
			LOG_WARN("cannot save the backfill cursor '%s': %s",
				 path, strerror(errno));
	} else if (path) {
		LOG_WARN("cannot save the backfill cursor '%s'", path);
	}
	json_decref(o);
	free(cur);
	free(tmp);
	free(path);
}

/* Loads a saved run, if any; a running or paused one is 'resumed'. */
static void bf_load(struct fs *fs, struct fs_backfill *b)
{
	char *path = fs_state_path(fs, BF_FILE_SUFFIX);
	json_t *o = path ? json_load_file(path, 0, NULL) : NULL;
	const char *state, *cur;
	json_t *n;
	size_t i;

	if (!o)
		goto out;
	state = json_string_value(json_object_get(o, "state"));
	cur = json_string_value(json_object_get(o, "cursor"));
	n = json_object_get(o, "counts");
	if (json_integer_value(json_object_get(o, "version")) !=
		    BF_FILE_VERSION ||
	    !state || !json_is_object(n)) {
		LOG_WARN("ignoring the backfill cursor '%s': not ours", path);
		goto out;
	}
	for (i = 0; i < sizeof(bf_state_names) / sizeof(*bf_state_names); i++)
		if (strcmp(state, bf_state_names[i]) == 0)
			b->state = (enum bf_state)i;
	b->cursor = cur ? unhex(cur) : NULL;
	b->rate = json_number_value(json_object_get(o, "rate"));
	b->started_ns = json_integer_value(json_object_get(o, "started_ns"));
	b->finished_ns = json_integer_value(json_object_get(o, "finished_ns"));
	b->n.total = count_of(n, "total");
	b->n.done = count_of(n, "done");
	b->n.copied = count_of(n, "copied");
	b->n.existing = count_of(n, "existing");
	b->n.tombstone = count_of(n, "tombstone");
	b->n.expired = count_of(n, "expired");
	b->n.skipped = count_of(n, "skipped");
	b->n.vanished = count_of(n, "vanished");
	b->n.errors = count_of(n, "errors");
	if (b->state == BF_RUNNING || b->state == BF_PAUSED) {
		b->resumed = true;
		LOG_INFO("backfill %s after %llu of %llu names",
			 b->state == BF_RUNNING ? "resumes" : "stays paused",
			 (unsigned long long)b->n.done,
			 (unsigned long long)b->n.total);
	}
out:
	json_decref(o);
	free(path);
}

/* ---- one name ---- */

/* Errors Redis answered (it is up): counted, not retried. */
static bool is_refusal(int ret)
{
	return ret == -ENOSPC || ret == -EPERM || ret == -EINVAL ||
	       ret == -EFBIG || ret == -BE_ENOTDURABLE || ret == -ENOMEM;
}

/*
 * Copies the lower file 'name' into Redis unless Redis holds it as new
 * or newer, or deleted it since.  Takes the name's stripe.
 */
static enum bf_result copy_one(struct fs *fs, const char *name)
{
	pthread_mutex_t *nl = fs_name_lock(fs, name);
	struct be_file lf = { 0 }, cur = { 0 };
	enum bf_result res;
	struct be_conn *c;
	int64_t now_ms = fs_now_ns() / 1000000;
	int ret;

	pthread_mutex_lock(nl);
	/* The lower dir is behind Redis until repaired: Redis's value wins. */
	if (be_journal_get(fs->rt.journal, name) & BE_J_LOWER) {
		res = BF_EXISTING;
		goto out;
	}
	ret = be_lower_get(fs->lower_fd, name, fs->max_size, true, &lf);
	if (ret == -EINVAL || ret == -EFBIG) {
		LOG_WARN("backfill skips '%s': %s", name,
			 ret == -EFBIG ? "over max_size"
				       : "not a regular file");
		res = BF_SKIPPED;
		goto out;
	}
	if (ret < 0) {
		LOG_WARN("backfill cannot read '%s': %s", name, strerror(-ret));
		res = BF_ERROR;
		goto out;
	}
	if (lf.state != BE_PRESENT) {
		res = BF_VANISHED;
		goto out;
	}
	/* As the offline copy: an expired file is never copied. */
	if (be_ttl_remaining_ms(&fs->sc.ttl, name, lf.data, lf.size,
				lf.meta.mtime_ns / 1000000, now_ms) <= 0) {
		res = BF_EXPIRED;
		goto out;
	}
	lf.meta.version = BE_LAYOUT_VERSION;
	c = be_pool_get_at(fs->pool, fs_route_slot(name));
	ret = be_store_put(c, &fs->sc, name, lf.data ? lf.data : "", lf.size,
			   &lf.meta, BE_PUT_COPYUP, NULL, &cur);
	be_pool_put(fs->pool, c);
	if (ret == 0) {
		res = BF_COPIED;
	} else if (ret == -EEXIST) {
		res = cur.state == BE_TOMBSTONE ? BF_TOMBSTONE : BF_EXISTING;
	} else if (is_refusal(ret)) {
		LOG_WARN("backfill cannot copy '%s': %s", name, strerror(-ret));
		res = BF_ERROR;
	} else {
		res = BF_RETRY;
	}
out:
	pthread_mutex_unlock(nl);
	be_file_release(&cur);
	be_file_release(&lf);
	return res;
}

static void bf_count(struct fs_backfill_counts *n, enum bf_result r)
{
	n->done++;
	switch (r) {
	case BF_COPIED:
		n->copied++;
		break;
	case BF_EXISTING:
		n->existing++;
		break;
	case BF_TOMBSTONE:
		n->tombstone++;
		break;
	case BF_EXPIRED:
		n->expired++;
		break;
	case BF_SKIPPED:
		n->skipped++;
		break;
	case BF_VANISHED:
		n->vanished++;
		break;
	default:
		n->errors++;
	}
}

/* ---- the walk ---- */

struct bf_list {
	struct fs *fs;
	const char *after; /* only names sorting after this one */
	char **names;
	size_t n, cap;
};

static int list_cb(const char *name, enum be_state state, void *arg)
{
	struct bf_list *l = arg;

	(void)state;
	if (be_name_classify(&l->fs->sc.ks, name) != BE_NAME_SESSION ||
	    be_lower_is_temp(name) || (l->after && strcmp(name, l->after) <= 0))
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		char **names = realloc(l->names, cap * sizeof(*names));

		if (!names)
			return -ENOMEM;
		l->names = names;
		l->cap = cap;
	}
	l->names[l->n] = strdup(name);
	return l->names[l->n++] ? 0 : -ENOMEM;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_free(char **names, size_t n)
{
	size_t i;

	for (i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
}

/*
 * Why the walk cannot go on now, or NULL.  In files the lower dir changes
 * without Redis; in redis-only it is not current.
 */
static const char *wait_reason(struct fs *fs)
{
	enum fs_mode m = fs_mode_get(fs);

	if (m != FS_MODE_DUAL_WRITE && m != FS_MODE_REDIS_FIRST)
		return "mode: the backfill runs in dual-write and redis-first";
	if (m == FS_MODE_REDIS_FIRST && fs_legacy_reads_ended(fs))
		return "legacy reads have ended (legacy_reads_until)";
	if (fs_route_redis_down(fs))
		return "redis is down";
	return NULL;
}

/* Waits on b->cond (b->lock held) until 'deadline' (monotonic ns). */
static void wait_until(struct fs_backfill *b, int64_t deadline)
{
	struct timespec ts = { .tv_sec = deadline / 1000000000LL,
			       .tv_nsec = deadline % 1000000000LL };

	pthread_cond_timedwait(&b->cond, &b->lock, &ts);
}

/* The stretch of running starts now (a start, a resume, a new rate). */
static void seg_begin(struct fs_backfill *b)
{
	b->seg_start = fs_mono_ns();
	b->seg_done = b->n.done;
}

/*
 * Lists what remains of the run (b->lock held; dropped while listing).
 * Returns false when the listing failed; the walk then waits and retries.
 */
static bool bf_relist(struct fs *fs, struct fs_backfill *b, char ***names,
		      size_t *n)
{
	struct bf_list l = { .fs = fs };
	uint64_t gen = b->gen;
	int ret;

	l.after = b->cursor ? strdup(b->cursor) : NULL;
	pthread_mutex_unlock(&b->lock);
	ret = be_lower_list(fs->lower_fd, list_cb, &l);
	if (ret == 0)
		qsort(l.names, l.n, sizeof(*l.names), by_name);
	free((char *)l.after);
	pthread_mutex_lock(&b->lock);
	if (ret < 0 || gen != b->gen) {
		if (ret < 0)
			LOG_WARN("backfill cannot list the lower dir: %s",
				 strerror(-ret));
		list_free(l.names, l.n);
		return false;
	}
	*names = l.names;
	*n = l.n;
	b->n.total = b->n.done + l.n;
	return true;
}

static void *bf_thread(void *arg)
{
	struct fs *fs = arg;
	struct fs_backfill *b = fs->backfill;
	char **names = NULL;
	size_t n = 0, i = 0;
	uint64_t gen = 0;
	bool listed = false;

	pthread_mutex_lock(&b->lock);
	while (!b->stopping) {
		enum bf_result r;
		const char *why;
		int64_t now = fs_mono_ns();

		if (b->state != BF_RUNNING) {
			pthread_cond_wait(&b->cond, &b->lock);
			continue;
		}
		if (!listed || gen != b->gen) {
			list_free(names, n);
			names = NULL;
			n = i = 0;
			gen = b->gen;
			listed = bf_relist(fs, b, &names, &n);
			if (!listed)
				wait_until(b, now + BF_SAVE_NS);
			continue;
		}
		if (i == n) {
			b->state = BF_DONE;
			b->finished_ns = fs_now_ns();
			b->seg_start = 0;
			LOG_INFO(
				"backfill done: %llu names, %llu copied, %llu unreadable or refused",
				(unsigned long long)b->n.done,
				(unsigned long long)b->n.copied,
				(unsigned long long)b->n.errors);
			bf_save(fs, b);
			list_free(names, n);
			names = NULL;
			n = i = 0;
			listed = false;
			continue;
		}
		why = wait_reason(fs);
		b->waiting = why;
		if (why) {
			wait_until(b, now + BF_WAIT_NS);
			seg_begin(b); /* pacing starts again after a wait */
			continue;
		}
		if (b->rate > 0) {
			int64_t due =
				b->seg_start +
				(int64_t)((double)(b->n.done - b->seg_done) *
					  1e9 / b->rate);

			if (now < due) {
				wait_until(b, due);
				continue;
			}
		}
		b->busy = true;
		pthread_mutex_unlock(&b->lock);
		r = copy_one(fs, names[i]);
		pthread_mutex_lock(&b->lock);
		b->busy = false;
		pthread_cond_broadcast(&b->cond); /* a pause waits for this */
		if (gen != b->gen)
			continue; /* started again meanwhile: this one too */
		if (r == BF_RETRY) {
			b->waiting = "redis is unreachable";
			wait_until(b, fs_mono_ns() + BF_WAIT_NS);
			continue;
		}
		bf_count(&b->n, r);
		free(b->cursor);
		b->cursor = names[i];
		names[i++] = NULL;
		if (fs_mono_ns() - b->saved_at >= BF_SAVE_NS)
			bf_save(fs, b);
	}
	bf_save(fs, b);
	pthread_mutex_unlock(&b->lock);
	list_free(names, n);
	return NULL;
}

int fs_backfill_start(struct fs *fs)
{
	struct fs_backfill *b = fs->backfill;
	int ret;

	if (!b)
		return -ENOMEM;
	/* The control socket may ask already: all of it under the lock. */
	pthread_mutex_lock(&b->lock);
	bf_load(fs, b);
	if (b->state == BF_RUNNING)
		seg_begin(b);
	ret = pthread_create(&b->thread, NULL, bf_thread, fs);
	if (ret == 0)
		b->started = true;
	pthread_mutex_unlock(&b->lock);
	return -ret;
}

void fs_backfill_stop(struct fs *fs)
{
	struct fs_backfill *b = fs->backfill;

	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	if (!b->started) {
		pthread_mutex_unlock(&b->lock);
		return;
	}
	b->stopping = true;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	pthread_join(b->thread, NULL);
	pthread_mutex_lock(&b->lock);
	b->started = false;
	pthread_mutex_unlock(&b->lock);
}

/* ---- control ---- */

/* The status object; caller holds b->lock. */
static json_t *status_locked(struct fs_backfill *b)
{
	double secs = 0, speed = 0, eta = -1;
	json_t *o, *n;

	if (b->state == BF_RUNNING && b->seg_start) {
		secs = (fs_mono_ns() - b->seg_start) / 1e9;
		if (secs > 0)
			speed = (b->n.done - b->seg_done) / secs;
		if (speed > 0 && b->n.total >= b->n.done)
			eta = (b->n.total - b->n.done) / speed;
	} else if (b->state == BF_DONE) {
		eta = 0;
	}
	o = json_pack("{s:s, s:s?, s:f, s:f, s:b, s:I, s:I}", "state",
		      bf_state_names[b->state], "waiting",
		      b->state == BF_RUNNING ? b->waiting : NULL, "rate_limit",
		      b->rate, "per_second", speed, "resumed", b->resumed,
		      "started_ns", (json_int_t)b->started_ns, "finished_ns",
		      (json_int_t)b->finished_ns);
	n = counts_json(&b->n);
	if (!o || !n) {
		json_decref(o);
		json_decref(n);
		return NULL;
	}
	json_object_update(o, n);
	json_decref(n);
	if (eta >= 0)
		json_object_set_new(o, "eta_seconds", json_real(eta));
	else
		json_object_set_new(o, "eta_seconds", json_null());
	return o;
}

json_t *fs_backfill_status(struct fs *fs)
{
	struct fs_backfill *b = fs->backfill;
	json_t *o;

	if (!b)
		return json_null();
	pthread_mutex_lock(&b->lock);
	o = status_locked(b);
	pthread_mutex_unlock(&b->lock);
	return o;
}

const char *fs_backfill_counts(struct fs *fs, struct fs_backfill_counts *n)
{
	struct fs_backfill *b = fs->backfill;
	enum bf_state s;

	memset(n, 0, sizeof(*n));
	if (!b)
		return bf_state_names[BF_IDLE];
	pthread_mutex_lock(&b->lock);
	*n = b->n;
	s = b->state;
	pthread_mutex_unlock(&b->lock);
	return bf_state_names[s];
}

static json_t *error_reply(const char *msg)
{
	return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

/* A run from the first name on; caller holds b->lock. */
static void begin_run(struct fs_backfill *b)
{
	free(b->cursor);
	b->cursor = NULL;
	memset(&b->n, 0, sizeof(b->n));
	b->gen++;
	b->resumed = false;
	b->started_ns = fs_now_ns();
	b->finished_ns = 0;
	b->state = BF_RUNNING;
	seg_begin(b);
}

json_t *fs_backfill_command(struct fs *fs, json_t *req)
{
	struct fs_backfill *b = fs->backfill;
	const char *action = json_string_value(json_object_get(req, "action"));
	json_t *rate = json_object_get(req, "rate"), *st, *reply;
	bool restart = json_is_true(json_object_get(req, "restart"));
	enum fs_mode m = fs_mode_get(fs);
	const char *err = NULL;

	if (!b)
		return error_reply("the backfill thread is not running");
	if (!action)
		action = "status";
	if (rate && (!json_is_number(rate) || json_number_value(rate) < 0))
		return error_reply(
			"invalid rate: a number of sessions per second, 0 for no limit");
	pthread_mutex_lock(&b->lock);
	if (!b->started || b->stopping) {
		err = "the backfill thread is not running";
	} else if (strcmp(action, "start") == 0) {
		if (m != FS_MODE_DUAL_WRITE && m != FS_MODE_REDIS_FIRST)
			err = "the backfill runs in dual-write or redis-first: in files Redis is not written, in redis-only the files underneath are not current";
		else if (restart || b->state == BF_IDLE || b->state == BF_DONE)
			begin_run(b);
		else if (b->state == BF_PAUSED)
			b->state = BF_RUNNING;
	} else if (strcmp(action, "pause") == 0) {
		if (b->state == BF_RUNNING)
			b->state = BF_PAUSED;
		else if (b->state != BF_PAUSED)
			err = "no backfill is running";
		/* Paused means no copy in flight: the counts stand still. */
		while (!err && b->busy)
			pthread_cond_wait(&b->cond, &b->lock);
	} else if (strcmp(action, "resume") == 0) {
		if (b->state == BF_PAUSED)
			b->state = BF_RUNNING;
		else if (b->state != BF_RUNNING)
			err = "no backfill is paused (start one)";
	} else if (strcmp(action, "rate") != 0 &&
		   strcmp(action, "status") != 0) {
		err = "unknown action (start, pause, resume, rate or status)";
	}
	if (!err && rate)
		b->rate = json_number_value(rate);
	if (!err && strcmp(action, "status") != 0) {
		if (b->state == BF_RUNNING)
			seg_begin(b);
		bf_save(fs, b);
		pthread_cond_broadcast(&b->cond);
	}
	st = status_locked(b);
	pthread_mutex_unlock(&b->lock);
	if (err) {
		json_decref(st);
		return error_reply(err);
	}
	reply = json_pack("{s:b, s:o}", "ok", 1, "backfill", st);
	return reply;
}
