/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The control socket of a mount and the run-time mode changes it serves.
 *
 * Protocol (DESIGN.md, "Observability and control"): a unix stream socket
 * at <ctl_dir>/<mount id>.sock, mode 0600, only root peers (SO_PEERCRED);
 * newline-delimited JSON, one request and one reply per line.  A request
 * is {"cmd": "...", ...}; a reply is {"ok": true, ...} or
 * {"ok": false, "error": "..."}.  Commands: status, mode {mode, force},
 * export, verify, repair, prepare-unmount, metrics (the Prometheus text
 * of metrics.h in "text"), backfill {action, rate, restart} (backfill.h).
 * status carries the protocol version.
 *
 * The mode change itself is modeswitch.c's, its rules mode.c's.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "fs_i.h"
#include "follower.h"
#include "acl.h"
#include "backfill.h"
#include "ctlreq.h"
#include "journal.h"
#include "kio.h"
#include "log.h"
#include "notify.h"
#include "lowerstore.h"
#include "metrics.h"
#include "sentinel.h"
#include "shadow.h"
#include "track.h"

#define FS_CTL_PROTOCOL 1
#define FS_CTL_LINE_MAX 65536

/* ---- requests ---- */

static json_t *reply_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static json_t *reply_error(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

/* The "cache" object of status: tracked lookups (tracked.c). */
static json_t *cache_status(struct fs *fs)
{
	struct be_tracker *t = fs->tracker;

	if (!t)
		return json_pack("{s:s}", "kind", "off");
	return json_pack("{s:s, s:b, s:s?, s:I, s:I}", "kind", "tracking", "up",
			 be_tracker_up(t), "refused", be_tracker_disabled(t),
			 "invalidations",
			 (json_int_t)be_tracker_invalidations(t), "hits",
			 (json_int_t)atomic_load(&fs->track_hits));
}

/*
 * The "durability" object of status: the level, and what the WAITs of
 * the writes since the start said (store.h).
 */
static json_t *durability_status(struct fs *fs)
{
	long long seen;
	uint64_t ok, short_;

	if (!fs->sc.wait_replicas)
		return json_pack("{s:s}", "level", "none");
	be_store_durability(&seen, &ok, &short_);
	return json_pack("{s:s, s:i, s:i, s:I, s:I, s:I}", "level", "replica",
			 "replicas", fs->sc.wait_replicas, "timeout_ms",
			 fs->sc.wait_ms, "replicas_seen", (json_int_t)seen,
			 "confirmed", (json_int_t)ok, "unconfirmed",
			 (json_int_t)short_);
}

/* The "sentinel" object of status: the master now, and failovers seen. */
static json_t *sentinel_status(struct fs *fs)
{
	struct be_sentinel *s = fs->ep.sentinel;
	char host[256], addr[300];
	int port;

	if (!be_sentinel_master(s, host, sizeof(host), &port))
		addr[0] = '\0';
	else
		snprintf(addr, sizeof(addr),
			 strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
	return json_pack("{s:s, s:s?, s:I}", "master_name",
			 be_sentinel_master_name(s), "master",
			 addr[0] ? addr : NULL, "failovers",
			 (json_int_t)be_sentinel_failovers(s));
}

/*
 * The "legacy" object of status: the cutoff of -o legacy_reads_until (ISO
 * 8601, UTC; null: none), whether it has passed, and whether legacy files
 * are read (and copied up) in the mode now.
 */
static json_t *legacy_status(struct fs *fs)
{
	bool passed = fs_legacy_cutoff_passed(fs);
	char until[32] = "";
	time_t t = (time_t)(fs->legacy_until_ns / 1000000000LL);
	struct tm tm;

	if (fs->legacy_until_ns && gmtime_r(&t, &tm))
		strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_pack("{s:s?, s:b, s:b}", "until", until[0] ? until : NULL,
			 "passed", passed, "reads",
			 fs_mode_get(fs) >= FS_MODE_REDIS_FIRST &&
				 !fs_legacy_reads_ended(fs));
}

static json_t *cmd_status(struct fs *fs)
{
	uint64_t ops, errors;
	unsigned int layers = 0, dead = 0;
	size_t inodes;
	json_t *st;

	fs_route_error_rate(fs, &ops, &errors);
	fs_layers(fs, &layers, &dead);
	pthread_mutex_lock(&fs->tab_lock);
	inodes = fs->name_count;
	pthread_mutex_unlock(&fs->tab_lock);
	st = json_pack(
		"{s:b, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:I, s:b, s:I, s:{s:I, s:I}, s:b, s:i, s:i, s:b, s:I}",
		"ok", 1, "protocol", FS_CTL_PROTOCOL, "version",
		PACKAGE_VERSION, "mode", fs_mode_name(fs_mode_get(fs)),
		"mountpoint", fs->cfg.mountpoint, "redis", fs->display_url,
		"prefix", fs->sc.ks.prefix, "host_id", fs->host_id, "redis_up",
		!fs_route_redis_down(fs), "journal",
		(json_int_t)be_journal_count(fs->rt.journal), "journal_corrupt",
		fs->rt.journal_corrupt, "fenced",
		(json_int_t)fs_nameset_count(&fs->rt.fenced), "recent", "ops",
		(json_int_t)ops, "errors", (json_int_t)errors, "lower_current",
		fs->lower_current, "layers", (int)layers, "dead_layers",
		(int)dead, "parallel_lookups", fs_kio_parallel_dirops(),
		"inodes", (json_int_t)inodes);
	if (st) {
		json_object_set_new(st, "cache", cache_status(fs));
		json_object_set_new(st, "durability", durability_status(fs));
		if (fs->ep.sentinel)
			json_object_set_new(st, "sentinel",
					    sentinel_status(fs));
		json_object_set_new(st, "legacy", legacy_status(fs));
		json_object_set_new(st, "backfill", fs_backfill_status(fs));
		json_object_set_new(st, "shadow", fs_shadow_status(fs));
		if (fs->fleet)
			json_object_set_new(st, "fleet", fs_fleet_status(fs));
	}
	return st;
}

static json_t *cmd_mode(struct fs *fs, const struct fs_ctl_req *req)
{
	const char *name = req->mode;
	bool force = req->force;
	enum fs_mode to, from = fs_mode_get(fs);
	char why[1024];
	struct timespec t0, t1;

	if (!name || fs_mode_parse(name, &to) < 0)
		return reply_error(
			"invalid mode '%s' (files, dual-write, redis-first or redis-only)",
			name ? name : "");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (fs_mode_change(fs, to, force, why, sizeof(why)) < 0)
		return reply_error("cannot change mode from %s to %s: %s",
				   fs_mode_name(from), name, why);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fs_fleet_local_change(fs); /* an override of the fleet's request */
	return json_pack(
		"{s:b, s:s, s:s, s:b, s:f}", "ok", 1, "from",
		fs_mode_name(from), "mode", name, "forced", force, "seconds",
		(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
}

static json_t *cmd_export(struct fs *fs)
{
	enum fs_mode mode = fs_mode_get(fs);
	struct fs_export_stats st;
	struct timespec t0, t1;
	int ret;

	/* There the files are authoritative: Redis may be behind them. */
	if (mode <= FS_MODE_DUAL_WRITE)
		return reply_error(
			"nothing to export in mode %s: the files underneath are current",
			fs_mode_name(mode));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = fs_export(fs, &st);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (ret == 0 && fs_mode_get(fs) == FS_MODE_REDIS_FIRST)
		fs->lower_current = true;
	if (ret < 0 && st.errors == 0)
		return reply_error("export failed: %s", strerror(-ret));
	return json_pack(
		"{s:b, s:I, s:I, s:I, s:I, s:I, s:f, s:s*}", "ok", ret == 0,
		"names", (json_int_t)st.names, "written",
		(json_int_t)st.written, "deleted", (json_int_t)st.deleted,
		"unchanged", (json_int_t)st.unchanged, "errors",
		(json_int_t)st.errors, "seconds",
		(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
		"error",
		ret < 0 ? "some names could not be exported (see the daemon log)"
			: NULL);
}

static json_t *cmd_verify(struct fs *fs)
{
	struct fs_verify_result vr;
	json_t *diffs, *reply;
	size_t i;
	int ret;

	ret = fs_verify(fs, &vr);
	if (ret < 0) {
		fs_verify_release(&vr);
		return reply_error("verify failed: %s", strerror(-ret));
	}
	diffs = json_array();
	for (i = 0; i < vr.ndiff && i < FS_VERIFY_MAX_DIFF; i++)
		json_array_append_new(diffs, json_pack("{s:s, s:s}", "name",
						       vr.diff[i].name, "why",
						       vr.diff[i].why));
	if (vr.ndiff == 0)
		fs_mode_verified(fs);
	reply = json_pack("{s:b, s:I, s:I, s:o}", "ok", 1, "checked",
			  (json_int_t)vr.checked, "differences",
			  (json_int_t)vr.ndiff, "diff", diffs);
	fs_verify_release(&vr);
	return reply;
}

/*
 * Before an unmount with the application running (lazy: the daemon lives
 * on while files are open): the manifest is written now, so that what the
 * application writes to the plain files after the unmount counts as
 * changed underneath at the next mount.  What the daemon still writes
 * through open files is journaled as usual.
 */
static json_t *cmd_prepare_unmount(struct fs *fs)
{
	fs_prepare_unmount(fs);
	return json_pack("{s:b, s:s}", "ok", 1, "mode",
			 fs_mode_name(fs_mode_get(fs)));
}

/* The same text as GET /metrics (metrics.h), as one JSON string. */
static json_t *cmd_metrics(struct fs *fs)
{
	size_t len = 0;
	char *text = fs_metrics_render(fs, &len);
	json_t *reply;

	if (!text)
		return reply_error("cannot render the metrics: out of memory");
	reply = json_pack("{s:b, s:s%}", "ok", 1, "text", text, len);
	free(text);
	return reply;
}

static json_t *handle(struct fs *fs, const char *line)
{
	struct fs_ctl_req req;
	char err[1024];
	json_t *reply;

	if (fs_ctl_req_parse(line, &req, err, sizeof(err)) < 0)
		return reply_error("%s", err);
	switch (req.cmd) {
	case FS_CTL_STATUS:
		reply = cmd_status(fs);
		break;
	case FS_CTL_MODE:
		reply = cmd_mode(fs, &req);
		break;
	case FS_CTL_EXPORT:
		reply = cmd_export(fs);
		break;
	case FS_CTL_VERIFY:
		reply = cmd_verify(fs);
		break;
	case FS_CTL_PREPARE_UNMOUNT:
		reply = cmd_prepare_unmount(fs);
		break;
	case FS_CTL_METRICS:
		reply = cmd_metrics(fs);
		break;
	case FS_CTL_BACKFILL:
		reply = fs_backfill_command(fs, req.json);
		break;
	case FS_CTL_REPAIR:
		reply = json_pack("{s:b, s:I}", "ok", 1, "journal",
				  (json_int_t)fs_route_repair_pass(fs));
		break;
	default:
		reply = reply_error("unknown command");
		break;
	}
	fs_ctl_req_release(&req);
	return reply;
}

/* ---- the socket ---- */

/* A control connection, on fs->ctl_clients while its thread runs. */
struct ctl_client {
	struct fs *fs;
	int fd;
	struct ctl_client *next, *prev;
};

static void client_add(struct fs *fs, struct ctl_client *cl)
{
	pthread_mutex_lock(&fs->ctl_lock);
	cl->prev = NULL;
	cl->next = fs->ctl_clients;
	if (cl->next)
		cl->next->prev = cl;
	fs->ctl_clients = cl;
	pthread_mutex_unlock(&fs->ctl_lock);
}

/*
 * Unlinks, closes and frees 'cl'.  The close is under ctl_lock, so
 * fs_ctl_stop() never shuts down an fd number a later open() reused.
 */
static void client_end(struct ctl_client *cl)
{
	struct fs *fs = cl->fs;

	pthread_mutex_lock(&fs->ctl_lock);
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		fs->ctl_clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	close(cl->fd);
	pthread_cond_broadcast(&fs->ctl_cond);
	pthread_mutex_unlock(&fs->ctl_lock);
	free(cl);
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= n;
	}
	return 0;
}

static void *client_thread(void *arg)
{
	struct ctl_client *cl = arg;
	char *buf = malloc(FS_CTL_LINE_MAX);
	size_t used = 0;

	while (buf) {
		char *nl;
		ssize_t n =
			recv(cl->fd, buf + used, FS_CTL_LINE_MAX - 1 - used, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		used += n;
		buf[used] = '\0';
		while ((nl = memchr(buf, '\n', used))) {
			json_t *reply;
			char *out;
			int ret;

			*nl = '\0';
			reply = handle(cl->fs, buf);
			out = json_dumps(reply, JSON_COMPACT);
			json_decref(reply);
			ret = out ? write_all(cl->fd, out, strlen(out)) : -1;
			if (ret == 0)
				ret = write_all(cl->fd, "\n", 1);
			free(out);
			used -= nl + 1 - buf;
			memmove(buf, nl + 1, used);
			if (ret < 0)
				goto out;
		}
		if (used == FS_CTL_LINE_MAX - 1)
			break; /* a line too long: drop the client */
	}
out:
	free(buf);
	client_end(cl);
	return NULL;
}

static bool peer_is_root(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
	       cred.uid == 0;
}

static void *accept_thread(void *arg)
{
	struct fs *fs = arg;

	for (;;) {
		struct pollfd pfd = { .fd = fs->ctl_fd, .events = POLLIN };
		struct ctl_client *cl;
		pthread_t t;
		int fd;

		if (poll(&pfd, 1, 200) < 0 && errno != EINTR)
			break;
		if (atomic_load(&fs->ctl_stopping))
			break;
		if (!(pfd.revents & POLLIN))
			continue;
		fd = accept4(fs->ctl_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if (!peer_is_root(fd)) {
			LOG_WARN("refused a control connection: not root");
			close(fd);
			continue;
		}
		cl = malloc(sizeof(*cl));
		if (!cl) {
			close(fd);
			continue;
		}
		cl->fs = fs;
		cl->fd = fd;
		client_add(fs, cl);
		if (pthread_create(&t, NULL, client_thread, cl) != 0) {
			client_end(cl);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

int fs_ctl_start(struct fs *fs)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int ret;

	pthread_mutex_init(&fs->ctl_lock, NULL);
	pthread_cond_init(&fs->ctl_cond, NULL);
	fs->ctl_clients = NULL;
	ret = be_ctl_socket_path(sa.sun_path, sizeof(sa.sun_path),
				 fs->cfg.ctl_dir, fs->cfg.mountpoint);
	if (ret)
		return ret;
	fs->ctl_path = strdup(sa.sun_path);
	if (!fs->ctl_path)
		return -ENOMEM;
	if (mkdir(fs->cfg.ctl_dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	fs->ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fs->ctl_fd < 0)
		return -errno;
	unlink(sa.sun_path);
	if (bind(fs->ctl_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(sa.sun_path, 0600) < 0 || listen(fs->ctl_fd, 16) < 0)
		return -errno;
	if (pthread_create(&fs->ctl_thread, NULL, accept_thread, fs) != 0)
		return -EAGAIN;
	fs->ctl_started = true;
	return 0;
}

/*
 * A client thread still answering (a `status` during the unmount) reads
 * fs, the journal and the endpoint, which main() frees after this
 * returns: every connection is shut down (recv() returns 0, a reply
 * fails) and every client thread waited for.
 */
void fs_ctl_stop(struct fs *fs)
{
	struct ctl_client *cl;

	atomic_store(&fs->ctl_stopping, true);
	if (fs->ctl_started) {
		pthread_join(fs->ctl_thread, NULL);
		pthread_mutex_lock(&fs->ctl_lock);
		for (cl = fs->ctl_clients; cl; cl = cl->next)
			shutdown(cl->fd, SHUT_RDWR);
		while (fs->ctl_clients)
			pthread_cond_wait(&fs->ctl_cond, &fs->ctl_lock);
		pthread_mutex_unlock(&fs->ctl_lock);
	}
	if (fs->ctl_fd > 0)
		close(fs->ctl_fd);
	if (fs->ctl_path)
		unlink(fs->ctl_path);
	free(fs->ctl_path);
	fs->ctl_path = NULL;
}
