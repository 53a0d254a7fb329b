/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sessfs: mounts a FUSE filesystem over a session directory and keeps the
 * sessions in Redis.  This file parses the command line (also as run by
 * mount.fuse3 for `mount -t fuse.sessfs`), checks everything that can be
 * checked before mounting (URL, options, Redis reachable and not
 * evicting, mountpoint a directory), opens the lower dir, mounts, detaches
 * unless -f, and runs the multi-threaded loop until unmounted.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "acl.h"
#include "backfill.h"
#include "fs_i.h"
#include "follower.h"
#include "kio.h"
#include "lock.h"
#include "log.h"
#include "lowerstore.h"
#include "metrics.h"
#include "mountpt.h"
#include "notify.h"
#include "opts.h"
#include "sentinel.h"
#include "shadow.h"
#include "tls.h"
#include "trim.h"
#include "url.h"

#define FS_OPT(t, field, v)                             \
	{                                               \
		t, offsetof(struct fs_config, field), v \
	}

enum {
	KEY_HELP,
	KEY_VERSION,
	KEY_FOREGROUND,
	KEY_DEBUG,
	KEY_KEEP,
	KEY_UNMOUNT,
	KEY_STATUS,
};

static const struct fuse_opt fs_opts[] = {
	FS_OPT("mode=%s", mode, 0), FS_OPT("prefix=%s", prefix, 0),
	FS_OPT("layout=%s", layout, 0), FS_OPT("ttl=%s", ttl, 0),
	FS_OPT("ttl_from=%s", ttl_from, 0), FS_OPT("max_size=%s", max_size, 0),
	FS_OPT("redis_timeout=%s", redis_timeout, 0),
	FS_OPT("state_dir=%s", state_dir, 0),
	FS_OPT("password_file=%s", password_file, 0),
	FS_OPT("sentinel_password_file=%s", sentinel_password_file, 0),
	FS_OPT("durability=%s", durability, 0), FS_OPT("tls_ca=%s", tls_ca, 0),
	FS_OPT("tls_cert=%s", tls_cert, 0), FS_OPT("tls_key=%s", tls_key, 0),
	FS_OPT("tls_server_name=%s", tls_server_name, 0),
	FS_OPT("host_id=%s", host_id, 0), FS_OPT("ctl_dir=%s", ctl_dir, 0),
	FS_OPT("cache=%s", cache, 0),
	FS_OPT("metrics_addr=%s", metrics_addr, 0),
	FS_OPT("legacy_reads_until=%s", legacy_reads_until, 0),
	FS_OPT("shadow=%s", shadow, 0), FS_OPT("lock_lease=%s", lock_lease, 0),
	FS_OPT("allow_evicting_redis", allow_evicting, 1),
	FUSE_OPT_KEY("-h", KEY_HELP), FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION), FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("-f", KEY_FOREGROUND), FUSE_OPT_KEY("-u", KEY_UNMOUNT),
	FUSE_OPT_KEY("--status", KEY_STATUS), FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("debug", KEY_DEBUG),
	/* fstab-only words that mount(8) passes on: meaningless to us. */
	FUSE_OPT_KEY("_netdev", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("auto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("noauto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("user", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nouser", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("users", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("defaults", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nofail", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("default_permissions", FUSE_OPT_KEY_DISCARD),
	/* Generic mount options libfuse understands. */
	FUSE_OPT_KEY("allow_other", KEY_KEEP), FUSE_OPT_KEY("rw", KEY_KEEP),
	FUSE_OPT_KEY("ro", KEY_KEEP), FUSE_OPT_KEY("suid", KEY_KEEP),
	FUSE_OPT_KEY("nosuid", KEY_KEEP), FUSE_OPT_KEY("dev", KEY_KEEP),
	FUSE_OPT_KEY("nodev", KEY_KEEP), FUSE_OPT_KEY("exec", KEY_KEEP),
	FUSE_OPT_KEY("noexec", KEY_KEEP), FUSE_OPT_KEY("async", KEY_KEEP),
	FUSE_OPT_KEY("sync", KEY_KEEP), FUSE_OPT_KEY("atime", KEY_KEEP),
	FUSE_OPT_KEY("noatime", KEY_KEEP), FUSE_OPT_KEY("relatime", KEY_KEEP),
	FUSE_OPT_KEY("dirsync", KEY_KEEP), FUSE_OPT_END
};

static void usage(const char *prog)
{
	printf("usage: %s REDIS_URL MOUNTPOINT [-f] [-d] [-o opt[,opt...]]\n"
	       "       %s -u MOUNTPOINT        unmount every sessfs layer\n"
	       "       %s --status MOUNTPOINT  show the sessfs layers\n"
	       "\n"
	       "Mounts sessfs over the session directory MOUNTPOINT: the files\n"
	       "the application writes there are stored in Redis; files already\n"
	       "there are read once and copied up.\n"
	       "\n"
	       "REDIS_URL:\n"
	       "    redis://[user:password@]host[:port][/db]   (6379, db 0)\n"
	       "    rediss://...           the same over TLS (port 6379 too)\n"
	       "    unix:///path/to/redis.sock[?db=N]\n"
	       "    redis-sentinel://[user:password@]host[:port][,host[:port]...]\n"
	       "                     /MASTER[/db]\n"
	       "                           the master the sentinels (port 26379)\n"
	       "                           name MASTER, checked with ROLE at\n"
	       "                           every connect; user and password\n"
	       "                           are the master's\n"
	       "    rediss-sentinel://...  the same over TLS (sentinels and\n"
	       "                           master; each verified by its own\n"
	       "                           address unless tls_server_name)\n"
	       "    redis-cluster://[user:password@]host[:port][,host[:port]...]\n"
	       "                           a Redis Cluster from these seed\n"
	       "                           nodes (port 6379); db 0 only\n"
	       "    rediss-cluster://...   the same over TLS to every node\n"
	       "\n"
	       "options:\n"
	       "    -h, --help             print this help and exit\n"
	       "    -V, --version          print the version and exit\n"
	       "    -f                     stay in the foreground\n"
	       "    -d, -o debug           log every request (implies -f)\n"
	       "    -o mode=M              migration mode: files, dual-write,\n"
	       "                           redis-first, redis-only (default)\n"
	       "    -o prefix=P            key prefix (default 'sessfs:'; with\n"
	       "                           layout=phpredis 'PHPREDIS_SESSION:')\n"
	       "    -o layout=L            plain (key = prefix + file name) or\n"
	       "                           phpredis (sess_<id> -> prefix + id)\n"
	       "    -o ttl=SECONDS         sliding TTL of every session key\n"
	       "                           (default %lld, 32 days)\n"
	       "    -o ttl_from=none       ignore cachelib's expiry header\n"
	       "                           (used by default)\n"
	       "    -o max_size=BYTES      largest session (default %d); one\n"
	       "                           write() of about 1 MiB that reaches\n"
	       "                           its last page fails whole with EFBIG\n"
	       "    -o redis_timeout=SEC   how long a call waits for Redis,\n"
	       "                           retries included (default 5)\n"
	       "    -o state_dir=DIR       daemon state (default /var/lib/sessfs)\n"
	       "    -o password_file=FILE  Redis password, first line of FILE\n"
	       "    -o sentinel_password_file=FILE\n"
	       "                           the sentinels' own password (AUTH),\n"
	       "                           first line of FILE\n"
	       "    -o durability=D        none (default), or replica[:N]: a\n"
	       "                           write succeeds only once N replicas\n"
	       "                           (default 1) confirm it (WAIT, up to\n"
	       "                           half of redis_timeout), else EIO\n"
	       "                           (the master may still hold it)\n"
	       "    -o tls_ca=FILE         rediss://: trusted CAs, PEM (default:\n"
	       "                           the system's trust store)\n"
	       "    -o tls_cert=FILE       rediss://: client certificate, PEM,\n"
	       "                           for mutual TLS (with tls_key)\n"
	       "    -o tls_key=FILE        rediss://: its private key, PEM\n"
	       "    -o tls_server_name=N   rediss://: the name the server's\n"
	       "                           certificate must match, sent as SNI\n"
	       "                           (default: the URL's host); the\n"
	       "                           certificate and name are always\n"
	       "                           verified\n"
	       "    -o host_id=ID          this host's id in the meta keys and the fleet\n"
	       "    -o ctl_dir=DIR         where the control socket lives\n"
	       "                           (default /run/sessfs)\n"
	       "    -o cache=tracking      in redis-only, answer lookups of\n"
	       "                           names already read from memory\n"
	       "                           while Redis reports no change\n"
	       "                           (CLIENT TRACKING); default off\n"
	       "    -o metrics_addr=HOST:PORT  serve Prometheus metrics on\n"
	       "                           GET /metrics (default off); PORT\n"
	       "                           alone means 127.0.0.1:PORT; HOST\n"
	       "                           is an IP address or localhost,\n"
	       "                           never a name; no authentication\n"
	       "    -o legacy_reads_until=DATE  from DATE (YYYY-MM-DD, 00:00\n"
	       "                           UTC, or YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM])\n"
	       "                           on, redis-first and redis-only no\n"
	       "                           longer read, copy up or list\n"
	       "                           sessions only in the files\n"
	       "                           underneath; default: never\n"
	       "    -o shadow=PERCENT      in dual-write, also read Redis on\n"
	       "                           PERCENT (0-100) of the reads and\n"
	       "                           compare; default 0\n"
	       "    -o lock_lease=SEC      a flock() or fcntl() lock on a session\n"
	       "                           holds a Redis lock with this lease,\n"
	       "                           renewed while held: how long the lock\n"
	       "                           of a dead host lasts (default 10)\n"
	       "    -o allow_evicting_redis  mount even if Redis may evict keys\n"
	       "                           (or the Redis user may not read\n"
	       "                           the policy: INFO, CONFIG GET)\n"
	       "    -o allow_other         let other users (the web server) in\n"
	       "\n"
	       "default_permissions is always on.  Unmount with\n"
	       "'sessfs -u MOUNTPOINT' (every layer, also after a crash; a\n"
	       "plain unmount is tried for 2 s before a lazy one).\n"
	       "\n"
	       "Under systemd (Type=notify, with -f): READY=1 once the mount\n"
	       "answers, STATUS= with the mode, WATCHDOG=1 while it serves\n"
	       "(WatchdogSec=), STOPPING=1 at unmount ($NOTIFY_SOCKET).\n",
	       prog, prog, prog, (long long)BE_DEFAULT_TTL,
	       BE_DEFAULT_MAX_SIZE);
}

static int opt_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct fs_config *cfg = data;

	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (cfg->nonopts == 0)
			cfg->url = strdup(arg);
		else if (cfg->nonopts == 1)
			cfg->mountpoint = strdup(arg);
		else if (!cfg->unknown)
			cfg->unknown = strdup(arg);
		cfg->nonopts++;
		return 0;
	case KEY_HELP:
		cfg->show_help = 1;
		return 0;
	case KEY_VERSION:
		cfg->show_version = 1;
		return 0;
	case KEY_FOREGROUND:
		cfg->foreground = 1;
		return 0;
	case KEY_DEBUG:
		cfg->debug = 1;
		cfg->foreground = 1;
		return 1; /* libfuse prints its request trace */
	case KEY_KEEP:
		if (strcmp(arg, "allow_other") == 0)
			cfg->allow_other = 1;
		return 1;
	case KEY_UNMOUNT:
		cfg->unmount = 1;
		return 0;
	case KEY_STATUS:
		cfg->status = 1;
		return 0;
	default:
		/* Anything we do not know is an error, not libfuse's guess. */
		if (!cfg->unknown)
			cfg->unknown = strdup(arg);
		return 0;
	}
}

/* Prints one error line about the command line; returns -1. */
static int __attribute__((format(printf, 1, 2))) bad(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "sessfs: %s; see 'sessfs -h' for usage\n", msg);
	return -1;
}

/*
 * An option error from opts.c, as bad() prints it but uncut: the line
 * quotes the value, which may be long.  Returns -1.
 */
#define OPT_ERR_MAX 4096
static int bad_opt(const char *err)
{
	fprintf(stderr, "sessfs: %s; see 'sessfs -h' for usage\n", err);
	return -1;
}

/*
 * Checks the tls_* options against the URL and, for rediss://, loads the
 * files into the context every connection shares.  -1 after an error line.
 */
static int configure_tls(struct fs *fs)
{
	struct fs_config *cfg = &fs->cfg;
	struct be_tls_options o = { .ca = cfg->tls_ca,
				    .cert = cfg->tls_cert,
				    .key = cfg->tls_key,
				    .server_name = cfg->tls_server_name };
	char err[512];

	if (be_tls_options_check(&o, fs->ep.tls, false, err, sizeof(err)) < 0)
		return bad("%s", err);
	if (!fs->ep.tls)
		return 0;
	fs->ep.tls_ctx = be_tls_new(&o, fs->ep.host, err, sizeof(err));
	if (!fs->ep.tls_ctx) {
		fprintf(stderr, "sessfs: %s\n", err);
		return -1;
	}
	/* rediss-sentinel://: the sentinels speak TLS too. */
	if (fs->ep.sentinel)
		be_sentinel_set_tls(fs->ep.sentinel, fs->ep.tls_ctx);
	return 0;
}

/*
 * Checks sentinel_password_file against the URL and gives the sentinels
 * their password.  -1 after an error line.
 */
static int configure_sentinel(struct fs *fs)
{
	const char *file = fs->cfg.sentinel_password_file;
	char err[512], *password;
	int ret;

	if (!file)
		return 0;
	if (!fs->ep.sentinel)
		return bad(
			"sentinel_password_file needs a redis-sentinel:// or rediss-sentinel:// URL");
	if (be_password_file_read(file, &password, err, sizeof(err)) < 0) {
		fprintf(stderr, "sessfs: %s\n", err);
		return -1;
	}
	ret = be_sentinel_set_password(fs->ep.sentinel, password);
	explicit_bzero(password, strlen(password));
	free(password);
	if (ret < 0) {
		fprintf(stderr, "sessfs: out of memory\n");
		return -1;
	}
	return 0;
}

/*
 * durability=none or replica[:N] (opts.c): every write then WAITs for N
 * replicas, up to half of redis_timeout (the other half is the write's).
 * -1 after an error line.
 */
static int configure_durability(struct fs *fs)
{
	char err[OPT_ERR_MAX];

	if (fs_opts_durability(fs->cfg.durability, fs->redis_timeout,
			       &fs->sc.wait_replicas, &fs->sc.wait_ms, err,
			       sizeof(err)) < 0)
		return bad_opt(err);
	return 0;
}

/* Checks the options and fills 'fs' from them; -1 after an error line. */
static int configure(struct fs *fs)
{
	struct fs_config *cfg = &fs->cfg;
	struct fs_opts in = {
		.mode = cfg->mode,
		.legacy_reads_until = cfg->legacy_reads_until,
		.shadow = cfg->shadow,
		.cache = cfg->cache,
		.layout = cfg->layout,
		.prefix = cfg->prefix,
		.ttl = cfg->ttl,
		.ttl_from = cfg->ttl_from,
		.max_size = cfg->max_size,
		.redis_timeout = cfg->redis_timeout,
		.lock_lease = cfg->lock_lease,
		.ctl_dir = cfg->ctl_dir,
		.state_dir = cfg->state_dir,
	};
	struct fs_opt_values o;
	char err[OPT_ERR_MAX];

	if (fs_opts_parse(&in, &o, err, sizeof(err)) < 0)
		return bad_opt(err);
	atomic_store(&fs->mode, o.mode);
	fs->legacy_until_ns = o.legacy_until_ns;
	fs->shadow_percent = o.shadow_percent;
	fs->sc.ks.layout = o.layout;
	/* The strings o points to are cfg's or static: cfg owns copies. */
	if (!cfg->prefix)
		cfg->prefix = strdup(o.prefix);
	fs->sc.ks.prefix = cfg->prefix;
	fs->sc.ttl.ttl_s = o.ttl_s;
	fs->sc.ttl.ignore_cachelib = o.ignore_cachelib;
	fs->max_size = o.max_size;
	fs->redis_timeout = o.redis_timeout;
	fs->lock_lease_ms = o.lock_lease_ms ? o.lock_lease_ms
					    : FS_LOCK_LEASE_DEFAULT_MS;
	if (!cfg->state_dir)
		cfg->state_dir = strdup(o.state_dir);
	if (!cfg->ctl_dir)
		cfg->ctl_dir = strdup(o.ctl_dir);
	if (!cfg->state_dir || !cfg->ctl_dir) {
		fprintf(stderr, "sessfs: out of memory\n");
		return -1;
	}

	if (be_url_parse(cfg->url, &fs->ep, err, sizeof(err)) < 0) {
		fprintf(stderr,
			"sessfs: invalid redis URL: %s; see 'sessfs -h' for usage\n",
			err);
		return -1;
	}
	if (cfg->password_file) {
		free(fs->ep.password);
		fs->ep.password = NULL;
		if (be_password_file_read(cfg->password_file, &fs->ep.password,
					  err, sizeof(err)) < 0) {
			fprintf(stderr, "sessfs: %s\n", err);
			return -1;
		}
	}
	if (configure_sentinel(fs) < 0 || configure_tls(fs) < 0)
		return -1;
	if (configure_durability(fs) < 0)
		return -1;
	fs->display_url = be_url_display(&fs->ep);
	/* A cluster keeps no names index (store.h). */
	fs->sc.cluster = fs->ep.cluster != NULL;
	fs->host_id = cfg->host_id ? strdup(cfg->host_id)
				   : be_host_id_default();
	fs->sc.host_id = fs->host_id;
	/*
	 * Connections the tracker, the sentinels or a cluster's redirections
	 * never replace (a MOVED sends the EXEC on another node than WATCH).
	 */
	fs->sc.tx_writes = !fs->ep.sentinel && !fs->ep.cluster &&
			   !(cfg->cache && strcmp(cfg->cache, "tracking") == 0);
	if (!fs->display_url || !fs->host_id || !cfg->prefix) {
		fprintf(stderr, "sessfs: out of memory\n");
		return -1;
	}
	return 0;
}

/*
 * Resolves the mountpoint and checks that it is a directory, or a dead
 * sessfs mount (ENOTCONN: the restart path of mountpt.c).
 */
static int check_mountpoint(struct fs *fs)
{
	char *abs = realpath(fs->cfg.mountpoint, NULL);
	struct stat st;

	if (!abs && errno == ENOTCONN)
		abs = strdup(fs->cfg.mountpoint); /* dead: resolved below */
	if (!abs) {
		fprintf(stderr, "sessfs: cannot use mountpoint '%s': %s\n",
			fs->cfg.mountpoint, strerror(errno));
		return -1;
	}
	free(fs->cfg.mountpoint);
	fs->cfg.mountpoint = abs;
	if (stat(abs, &st) < 0) {
		if (errno == ENOTCONN)
			return 0;
		fprintf(stderr, "sessfs: cannot use mountpoint '%s': %s\n", abs,
			strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr,
			"sessfs: cannot use mountpoint '%s': not a directory\n",
			abs);
		return -1;
	}
	return 0;
}

/*
 * Opens the lower dir through its private bind under /run/sessfs, or,
 * over a dead layer, through the bind the dead daemon left (mountpt.c).
 */
static int open_lower(struct fs *fs)
{
	char err[512];

	if (fs_mountpt_prepare(&fs->mp, fs->cfg.mountpoint, err, sizeof(err)) <
	    0) {
		fprintf(stderr, "sessfs: %s\n", err);
		return -1;
	}
	free(fs->cfg.mountpoint);
	fs->cfg.mountpoint = strdup(fs->mp.mountpoint);
	fs->lower_fd = fs->mp.lower_fd;
	if (fs->mp.restart)
		LOG_INFO("a dead sessfs layer is on '%s': mounting over it",
			 fs->cfg.mountpoint);
	return fs->cfg.mountpoint ? 0 : -1;
}

/* An ACL refusal (acl.h), once per command: what the operator must grant. */
static void report_acl(const char *msg)
{
	LOG_WARN(
		"%s; grant it to the redis user (docs/RUNBOOK.md, \"A Redis user for sessfs\")",
		msg);
}

/* Reaches Redis once before mounting, so that a bad setup fails loudly. */
static int check_redis(struct fs *fs)
{
	struct be_conn *c = be_conn_new(&fs->ep, fs->redis_timeout);
	char err[512];
	int ret;

	if (!c) {
		fprintf(stderr, "sessfs: out of memory\n");
		return -1;
	}
	ret = be_conn_connect(c);
	if (ret < 0) {
		fprintf(stderr, "sessfs: cannot connect to redis '%s': %s\n",
			fs->display_url, be_conn_errstr(c));
		be_conn_free(c);
		return -1;
	}
	ret = be_store_check_server(c, fs->cfg.allow_evicting, err,
				    sizeof(err));
	be_conn_free(c);
	if (ret < 0) {
		fprintf(stderr, "sessfs: %s\n", err);
		return -1;
	}
	if (err[0])
		LOG_WARN("%s", err);
	return 0;
}

static int make_state_dir(const char *dir)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "sessfs: cannot create state_dir '%s': %s\n",
			dir, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Prepares the stores before the mount serves anything: our leftover
 * temps go, the journal is loaded, changes made underneath while unmounted
 * are journaled, and in the Redis-authoritative modes Redis is repaired
 * from the journal before it is read.
 */
static int prepare_state(struct fs *fs)
{
	char err[512], *path = fs_state_path(fs, "journal");
	enum fs_mode saved;
	int ret;

	/*
	 * A daemon that did not unmount cleanly (a crash) left its mode:
	 * the mount comes back in it, whatever the command line says, so a
	 * restart from fstab never serves a stale store.
	 */
	if (fs_mode_load(fs, &saved) == 0 && saved != fs_mode_get(fs)) {
		LOG_WARN(
			"restarting in mode %s, the mode of the previous daemon (not %s)",
			fs_mode_name(saved), fs_mode_name(fs_mode_get(fs)));
		atomic_store(&fs->mode, saved);
	}
	fs->lower_current = fs_mode_get(fs) <= FS_MODE_DUAL_WRITE;

	if (!path) {
		fprintf(stderr, "sessfs: out of memory\n");
		return -1;
	}
	ret = fs_route_init(fs, path, err, sizeof(err));
	free(path);
	if (ret < 0) {
		fprintf(stderr, "sessfs: %s\n", err);
		return -1;
	}
	if (fs->rt.journal_corrupt)
		LOG_ERR("%s", err);
	ret = be_lower_cleanup(fs->lower_fd);
	if (ret > 0)
		LOG_INFO("removed %d leftover temp files of ours underneath",
			 ret);
	ret = fs_manifest_apply(fs);
	if (ret == 0 && fs->rt.journal_corrupt)
		ret = fs_journal_reverify(fs);
	if (ret < 0) {
		fprintf(stderr,
			"sessfs: cannot reconcile with the files underneath: %s\n",
			strerror(-ret));
		return -1;
	}
	fs_mode_save(fs);
	if (fs_mode_get(fs) >= FS_MODE_REDIS_FIRST &&
	    fs_route_repair_pass(fs) > 0) {
		fprintf(stderr,
			"sessfs: cannot repair redis from the journal before serving from it; is redis writable?\n");
		return -1;
	}
	return 0;
}

static void config_release(struct fs_config *cfg)
{
	free(cfg->url);
	free(cfg->mountpoint);
	free(cfg->mode);
	free(cfg->prefix);
	free(cfg->layout);
	free(cfg->ttl);
	free(cfg->ttl_from);
	free(cfg->max_size);
	free(cfg->redis_timeout);
	free(cfg->state_dir);
	free(cfg->password_file);
	free(cfg->sentinel_password_file);
	free(cfg->durability);
	free(cfg->tls_ca);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	free(cfg->tls_server_name);
	free(cfg->host_id);
	free(cfg->lock_lease);
	free(cfg->ctl_dir);
	free(cfg->cache);
	free(cfg->metrics_addr);
	free(cfg->legacy_reads_until);
	free(cfg->shadow);
	free(cfg->unknown);
}

/* Adds our fixed mount options and the fsname (the URL, no password). */
static int add_mount_opts(struct fs *fs, struct fuse_args *args)
{
	char *opt;
	int ret;

	if (fuse_opt_add_arg(args, "-odefault_permissions,subtype=sessfs") < 0)
		return -1;
	if (asprintf(&opt, "fsname=%s", fs->display_url) < 0)
		return -1;
	ret = fuse_opt_add_arg(args, "-o");
	if (ret == 0) {
		char *escaped = NULL;

		/* mount options are comma-separated: escape the URL's. */
		ret = fuse_opt_add_opt_escaped(&escaped, opt);
		if (ret == 0)
			ret = fuse_opt_add_arg(args, escaped);
		free(escaped);
	}
	free(opt);
	return ret;
}

static int run(struct fs *fs, struct fuse_args *args)
{
	struct fuse_loop_config *lc;
	struct fuse_session *se;
	char err[512];
	int ret = 1;

	se = fuse_session_new(args, &fs_oper, sizeof(fs_oper), fs);
	if (!se)
		return 1;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_destroy;
	if (fs_mountpt_mount_arg(&fs->mp, fs->display_url, fs->cfg.allow_other,
				 err, sizeof(err)) < 0) {
		fprintf(stderr, "sessfs: %s\n", err);
		fs_mountpt_rollback(&fs->mp, err, sizeof(err));
		goto out_signals;
	}
	if (fuse_session_mount(se, fs->mp.fuse_mnt_arg) != 0) {
		fs_mountpt_rollback(&fs->mp, err, sizeof(err));
		goto out_signals;
	}
	fs_mountpt_mounted(&fs->mp);
	if (fs_kio_install(se) < 0)
		LOG_WARN(
			"cannot hook /dev/fuse: lookups are served one at a time");
	LOG_INFO("mounted '%s' on '%s', mode %s, prefix '%s'", fs->display_url,
		 fs->cfg.mountpoint, fs_mode_name(fs_mode_get(fs)),
		 fs->sc.ks.prefix);
	fuse_daemonize(fs->cfg.foreground);
	/* Threads start after the fork of fuse_daemonize(). */
	if (fs_trim_start(fs, fuse_session_fd(se)) < 0)
		LOG_WARN("cannot start the trimmer: idle inodes stay until "
			 "the kernel forgets them");
	if (fs_metrics_start(fs) < 0)
		LOG_ERR("cannot start the metrics thread: no GET /metrics");
	if (fs_backfill_start(fs) < 0)
		LOG_ERR("cannot start the backfill thread: no copy --mount");
	if (fs_fleet_start(fs) < 0)
		LOG_ERR("cannot start the fleet follower: fleet requests are not followed");
	/* READY=1 once our layer answers a stat, then the watchdog. */
	if (fs_notify_start(fs, fs->mp.dev) < 0)
		LOG_ERR("cannot start the systemd supervisor: no READY=1 will be sent");

	lc = fuse_loop_cfg_create();
	fuse_loop_cfg_set_clone_fd(lc, 0);
	fuse_loop_cfg_set_idle_threads(lc, FS_MAX_THREADS / 2);
	fuse_loop_cfg_set_max_threads(lc, FS_MAX_THREADS);
	ret = fuse_session_loop_mt(se, lc) ? 1 : 0;
	fs_notify_stopping();
	/* Before the unmount: no process here holds a flock any more. */
	fs_lock_stop(fs);
	fuse_loop_cfg_destroy(lc);
	fs_trim_stop();
	fs_backfill_stop(fs);
	fs_metrics_stop(fs);
	fuse_session_unmount(se);
	fs_notify_stop();
	fs_ctl_stop(fs);
	fs_fleet_stop(fs);
	if (!fs->manifest_saved)
		fs_manifest_save(fs);
	fs_mode_forget(fs);
	/* Dead layers below ours and the bind go too: plain files remain. */
	if (fs_mountpt_cleanup_after_unmount(&fs->mp, err, sizeof(err)) < 0)
		LOG_ERR("%s", err);
	LOG_INFO("unmounted '%s'", fs->cfg.mountpoint);
out_signals:
	fuse_remove_signal_handlers(se);
out_destroy:
	fuse_session_destroy(se);
	return ret;
}

/* sessfs -u MOUNTPOINT: removes every sessfs layer, top down. */
/*
 * Asks a live daemon on 'sock' to write its unmount manifest now, before
 * a lazy unmount lets the application write the plain files.  Best effort:
 * no daemon, no manifest needed.
 */
static void prepare_unmount(const char *sock)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	static const char req[] = "{\"cmd\":\"prepare-unmount\"}\n";
	char reply[256];
	int fd;

	if (strlen(sock) >= sizeof(sa.sun_path))
		return;
	strcpy(sa.sun_path, sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    write(fd, req, sizeof(req) - 1) == (ssize_t)sizeof(req) - 1)
		(void)!read(fd, reply, sizeof(reply));
	close(fd);
}

static int unmount_all(const char *mountpoint)
{
	char err[512], *abs, *sock = NULL;
	unsigned int n = 0;

	abs = realpath(mountpoint, NULL);
	if (abs && asprintf(&sock, "%s/%016llx.sock", FS_MOUNTPT_RUN_DIR,
			    (unsigned long long)be_fnv1a64(abs)) < 0)
		sock = NULL;
	if (sock)
		prepare_unmount(sock);

	if (fs_mountpt_unmount_all(mountpoint, &n, err, sizeof(err)) < 0) {
		fprintf(stderr, "sessfs: %s\n", err);
		free(sock);
		free(abs);
		return 1;
	}
	printf("unmounted %u sessfs layer%s from '%s'\n", n, n == 1 ? "" : "s",
	       mountpoint);
	/* A killed daemon leaves its control socket (default ctl_dir). */
	if (sock)
		unlink(sock);
	free(sock);
	free(abs);
	return 0;
}

static int print_status(const char *mountpoint)
{
	char err[512];

	if (fs_mountpt_print_status(mountpoint, stdout, err, sizeof(err)) < 0) {
		fprintf(stderr, "sessfs: %s\n", err);
		return 1;
	}
	return 0;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fs *fs = calloc(1, sizeof(*fs));
	char err[512];
	int ret = 1;

	if (!fs)
		return 1;
	fs_mountpt_init(&fs->mp);
	fs->lower_fd = -1;
	fs->ctl_fd = -1;
	pthread_mutex_init(&fs->mode_lock, NULL);
	fs_count_init(&fs->count);
	fs->metrics = fs_metrics_new();
	fs->backfill = fs_backfill_new();
	fs->cfg.mode = strdup("redis-only");
	fs->cfg.layout = strdup("plain");
	if (fuse_opt_parse(&args, &fs->cfg, fs_opts, opt_proc) != 0)
		goto out;
	/* A password in the URL is ours now: ps shows stars (url.h). */
	for (int i = 1; fs->cfg.url && i < argc; i++)
		if (strcmp(argv[i], fs->cfg.url) == 0)
			be_url_hide_password(argv[i]);
	if (fs->cfg.show_help) {
		usage(argv[0]);
		ret = 0;
		goto out;
	}
	if (fs->cfg.show_version) {
		printf("sessfs %s (libfuse %s, layout v%d)\n", PACKAGE_VERSION,
		       fuse_pkgversion(), BE_LAYOUT_VERSION);
		ret = 0;
		goto out;
	}
	if (fs->cfg.unknown) {
		bad("unknown option or argument '%s'", fs->cfg.unknown);
		goto out;
	}
	if (fs->cfg.unmount || fs->cfg.status) {
		/* One argument: the mountpoint (parsed as the first). */
		if (!fs->cfg.url || fs->cfg.mountpoint) {
			bad("%s", "-u and --status take one MOUNTPOINT");
			goto out;
		}
		ret = fs->cfg.unmount ? unmount_all(fs->cfg.url)
				      : print_status(fs->cfg.url);
		goto out;
	}
	if (!fs->cfg.url || !fs->cfg.mountpoint) {
		bad("%s", "missing REDIS_URL or MOUNTPOINT");
		goto out;
	}
	fs_log_init(fs->cfg.debug ? FS_LOG_DEBUG : FS_LOG_INFO);
	fs_notify_init();
	be_acl_set_reporter(report_acl);
	if (fs_metrics_check(fs) < 0)
		goto out;
	if (configure(fs) < 0 || check_mountpoint(fs) < 0 ||
	    make_state_dir(fs->cfg.state_dir) < 0 || check_redis(fs) < 0 ||
	    open_lower(fs) < 0)
		goto out_mountpt;
	if (fs_metrics_listen(fs) < 0)
		goto out_mountpt;
	fs->pool = be_pool_new(&fs->ep, fs->redis_timeout, FS_MAX_THREADS + 4);
	if (!fs->pool || fs_table_init(fs) < 0 || add_mount_opts(fs, &args) ||
	    fs_lock_init(fs, fs->lock_lease_ms) < 0) {
		fprintf(stderr, "sessfs: out of memory\n");
		goto out_mountpt;
	}
	if (prepare_state(fs) == 0)
		ret = run(fs, &args);
	else
		fs_mountpt_rollback(&fs->mp, err, sizeof(err));
	fs_lock_stop(fs); /* when run() ended before the loop */
	fs_route_stop(fs);
	fs_track_stop(fs);
	fs_table_destroy(fs);
	goto out;
out_mountpt:
	fs_mountpt_rollback(&fs->mp, err, sizeof(err));
out:
	be_pool_free(fs->pool);
	fs_mountpt_release(&fs->mp); /* closes the lower dir */
	be_endpoint_release(&fs->ep);
	free(fs->display_url);
	free(fs->host_id);
	config_release(&fs->cfg);
	fuse_opt_free_args(&args);
	fs_count_destroy(&fs->count);
	fs_metrics_free(fs->metrics);
	fs_backfill_free(fs->backfill);
	free(fs);
	return ret;
}
