/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the subcommands of sessfs-migrate share: messages, the key options
 * that must match the mount's (so that copy stores exactly what a mount
 * with the same options reads), the walk over a session directory that
 * never follows a symlink, and the connection to Redis.
 *
 * Call order in a subcommand: mig_options_init() -> getopt_long() with
 * MIG_KEY_LONG_OPTIONS, passing their codes to mig_key_option() ->
 * mig_options_finish() -> mig_dir_open() -> mig_dir_next() /
 * mig_file_read() per entry -> mig_dir_close().  Messages and the
 * progress bar may be used from any thread; mig_file_read() too, on
 * entries the caller took from mig_dir_next() under its own lock.
 */
#ifndef MIGRATE_MIGRATE_I_H
#define MIGRATE_MIGRATE_I_H

#include <dirent.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "layout.h"
#include "store.h"
#include "tls.h"
#include "util.h"

struct be_conn;

#define MIG_PROGNAME	    "sessfs-migrate"
#define MIG_DEFAULT_PREFIX  "sessfs:"
#define MIG_DEFAULT_TIMEOUT 10.0 /* seconds per Redis call */

/*
 * A copy sends its puts in pipelined batches of this many files or bytes,
 * whichever comes first; analyze measures its estimate the same way.
 */
#define MIG_BATCH_FILES 256
#define MIG_BATCH_BYTES (4 * 1024 * 1024)

/* Exit codes of every subcommand. */
#define MIG_EXIT_OK    0
#define MIG_EXIT_DIFF  1 /* differences, refused input or errors */
#define MIG_EXIT_USAGE 2 /* bad command line or unusable directory */

/** Prints "error: <message>" to stderr; returns -1. */
int error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/** Prints "warning: <message>" to stderr. */
void warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/**
 * Writes 'name' into 'buf' of 'len' bytes for messages and JSON: printable
 * ASCII as is, a backslash, newline, tab and every other byte escaped
 * ("\\n", "\\x7f").  Truncated with "..." when 'buf' is too small.
 * Returns 'buf'.
 */
const char *mig_quote(const char *name, char *buf, size_t len);
#define MIG_QUOTE_MAX (BE_NAME_MAX * 4 + 8)

/* Option codes of the key options, above any short option character. */
enum mig_key_opt {
	MIG_OPT_PREFIX = 0x100,
	MIG_OPT_LAYOUT,
	MIG_OPT_TTL,
	MIG_OPT_TTL_FROM,
	MIG_OPT_MAX_SIZE,
	MIG_OPT_PASSWORD_FILE,
	MIG_OPT_REDIS_TIMEOUT,
	MIG_OPT_HOST_ID,
	MIG_OPT_ALLOW_EVICTING,
	MIG_OPT_TLS_CA,
	MIG_OPT_TLS_CERT,
	MIG_OPT_TLS_KEY,
	MIG_OPT_TLS_SERVER_NAME,
	MIG_OPT_SENTINEL_PASSWORD_FILE,
	MIG_OPT_MOUNT, /* the online options, MIG_ONLINE_LONG_OPTIONS */
	MIG_OPT_CTL_DIR,
	MIG_OPT_FIRST_FREE, /* subcommands number their own options from here */
};

/* The key options, for a subcommand's struct option table. */
/* clang-format off */
#define MIG_KEY_LONG_OPTIONS						\
	{ "prefix", required_argument, NULL, MIG_OPT_PREFIX },		\
	{ "layout", required_argument, NULL, MIG_OPT_LAYOUT },		\
	{ "ttl", required_argument, NULL, MIG_OPT_TTL },		\
	{ "ttl-from", required_argument, NULL, MIG_OPT_TTL_FROM },	\
	{ "max-size", required_argument, NULL, MIG_OPT_MAX_SIZE },	\
	{ "password-file", required_argument, NULL, MIG_OPT_PASSWORD_FILE }, \
	{ "redis-timeout", required_argument, NULL, MIG_OPT_REDIS_TIMEOUT }, \
	{ "host-id", required_argument, NULL, MIG_OPT_HOST_ID },	\
	{ "allow-evicting-redis", no_argument, NULL, MIG_OPT_ALLOW_EVICTING }, \
	{ "tls-ca", required_argument, NULL, MIG_OPT_TLS_CA },		\
	{ "tls-cert", required_argument, NULL, MIG_OPT_TLS_CERT },	\
	{ "tls-key", required_argument, NULL, MIG_OPT_TLS_KEY },	\
	{ "tls-server-name", required_argument, NULL, MIG_OPT_TLS_SERVER_NAME }, \
	{ "sentinel-password-file", required_argument, NULL,		\
	  MIG_OPT_SENTINEL_PASSWORD_FILE }
/* clang-format on */

/* Help text of the key options, for a subcommand's usage. */
#define MIG_KEY_OPTIONS_HELP                                                   \
	"Key options (the same as the mount's, so that copy stores what the\n" \
	"mount reads):\n"                                                      \
	"  --prefix PREFIX        key prefix (default \"" MIG_DEFAULT_PREFIX   \
	"\",\n"                                                                \
	"                         \"" BE_PHPREDIS_PREFIX                       \
	"\" with --layout phpredis)\n"                                         \
	"  --layout plain|phpredis  key layout (default plain)\n"              \
	"  --ttl SECONDS          sliding TTL (default 2764800, 32 days)\n"    \
	"  --ttl-from cachelib|none  TTL from cachelib's expiry header\n"      \
	"                         (default cachelib)\n"                        \
	"  --max-size BYTES       largest session (default 1048576)\n"         \
	"  --password-file FILE   Redis password, first line of FILE\n"        \
	"  --redis-timeout SECONDS  budget of one Redis call (default 10)\n"   \
	"  --host-id ID           writer id in meta keys (default: hostname\n" \
	"                         and machine-id)\n"                           \
	"  --allow-evicting-redis  accept an evicting maxmemory-policy (or\n"  \
	"                         one the Redis user may not read)\n"          \
	"\nTLS options (a rediss:// URL; the mount's tls_* options):\n"        \
	"  --tls-ca FILE          trusted CAs, PEM (default: the system's)\n"  \
	"  --tls-cert FILE        client certificate, PEM (mutual TLS)\n"      \
	"  --tls-key FILE         its private key, PEM\n"                      \
	"  --tls-server-name NAME  name the server's certificate must match\n" \
	"                         (default: the URL's host; with Sentinel,\n"  \
	"                         each sentinel's and the master's address)\n" \
	"\nSentinel (redis-sentinel:// or rediss-sentinel://, the master\n"    \
	"asked of the sentinels host[:port][,host[:port]...] and checked\n"    \
	"with ROLE):\n"                                                        \
	"  --sentinel-password-file FILE  the sentinels' own password\n"       \
	"                         (AUTH), first line of FILE\n"

/** Everything the key options set; see mig_options_init(). */
struct mig_options {
	struct be_store_config sc; /* ks.prefix and host_id point into here */
	char *prefix; /* owned */
	char *host_id; /* owned */
	const char *password_file; /* borrowed from argv */
	const char *sentinel_password_file; /* borrowed from argv */
	struct be_tls_options tls; /* strings borrowed from argv */
	double redis_timeout;
	size_t max_size;
	bool allow_evicting;
};

/*
 * getopt_long() option string of every subcommand: the leading ':' makes
 * a missing value ':' rather than '?', so mig_bad_option() can say which.
 */
#define MIG_SHORT_OPTIONS ":h"

/**
 * Prints a one-line error for getopt_long()'s result 'c' ('?' or ':') on
 * 'argv' of the subcommand 'cmd'; returns -1.
 */
int mig_bad_option(int c, char **argv, const char *cmd);

/** Sets the defaults into 'o'. */
void mig_options_init(struct mig_options *o);
/** Frees what 'o' owns. */
void mig_options_release(struct mig_options *o);

/**
 * Handles the key option 'opt' (a MIG_OPT_* code) with argument 'arg'.
 * Returns 0, or prints why and returns -1 for a bad value.
 */
int mig_key_option(struct mig_options *o, int opt, const char *arg);

/**
 * Checks across options and fills the defaults that depend on others
 * (the phpredis prefix, the host id).  0, or prints why and returns -1.
 */
int mig_options_finish(struct mig_options *o);

/**
 * Parses 'url' and connects (AUTH with --password-file, SELECT), then
 * checks the server's eviction policy.  Returns a new connection in
 * '*conn', or prints why and returns -1.
 */
int mig_connect(struct mig_options *o, const char *url, struct be_conn **conn);
/**
 * Both set 'o->sc.cluster' for a redis-cluster:// URL (store.h).
 * As mig_connect(), 'n' connections into 'conns' that share one endpoint
 * (with rediss://, one TLS context: the files are read once and the later
 * connections resume the first one's session).  On failure none is left.
 */
int mig_connect_n(struct mig_options *o, const char *url,
		  struct be_conn **conns, int n);

/** Current CLOCK_REALTIME in ms, and CLOCK_MONOTONIC in seconds. */
int64_t mig_now_ms(void);
double mig_monotonic(void);

/*
 * A progress bar on stderr, drawn only when stderr is a terminal: "copy
 * [=====>    ]  45%  45000/100000  12000/s  ETA 0:05".  error() and
 * warning() clear it before printing, and it is redrawn at the next
 * update.  Any thread may call these and error() / warning().
 */
struct mig_progress {
	const char *label;
	long total;
	long done;
	double start;
	double drawn; /* when it was last drawn, 0: never */
	bool enabled;
};

/** Starts a bar for 'total' items; 'enabled' false draws nothing. */
void mig_progress_start(struct mig_progress *p, const char *label, long total,
			bool enabled);
/** Sets the count to 'done'; redraws at most ten times a second. */
void mig_progress_update(struct mig_progress *p, long done);
/** Removes the bar. */
void mig_progress_end(struct mig_progress *p);

/* ---- The session directory ---- */

/** An open session directory; see mig_dir_open(). */
struct mig_dir {
	const char *path; /* borrowed */
	int fd; /* O_RDONLY | O_DIRECTORY */
	DIR *dir; /* over a dup of 'fd' */
	bool underneath; /* read under a sessfs mount (private namespace) */
};

/**
 * Resolves 'path' into the absolute 'out' (PATH_MAX bytes), symlinks
 * resolved.  A dead FUSE mount answers ENOTCONN to stat, so then its
 * parent is resolved and the last component appended.  0 or -errno.
 */
int mig_resolve_path(const char *path, char *out);

/**
 * Finds the topmost fuse.sessfs mount that holds the absolute path 'real'
 * (the mountpoint itself or a directory under it) and copies its
 * mountpoint into 'mnt' of 'len' bytes.  1 if found, 0 if not, -errno.
 */
int mig_find_sessfs_mount(const char *real, char *mnt, size_t len);

/**
 * Opens the session directory 'path' for a walk.  The offline commands read
 * the files themselves, never a sessfs mount: when 'path' is (or lies in)
 * a fuse.sessfs mount, every sessfs layer on it is detached in a private
 * mount namespace of this process (root only), which shows the directory
 * underneath without changing anyone else's view, and 'd->underneath' is
 * set.  When that is not possible the directory is refused.  Returns 0,
 * or prints why and returns -1.
 */
int mig_dir_open(struct mig_dir *d, const char *path);
/** Closes 'd'. */
void mig_dir_close(struct mig_dir *d);
/** Counts the entries (except "." and ".."), then rewinds; -1 on error. */
long mig_dir_count(struct mig_dir *d);

/** What kind of session a valid name is, by its client's naming. */
enum mig_kind {
	MIG_KIND_PHP = 0, /* sess_* */
	MIG_KIND_CACHELIB, /* 32 hex (Flask-Session's cachelib) */
	MIG_KIND_DJANGO, /* sessionid* */
	MIG_KIND_OTHER,
	MIG_KIND_COUNT,
};

/** Names of enum mig_kind: "php", "cachelib", "django", "other". */
extern const char *const mig_kind_names[MIG_KIND_COUNT];

/** Why an entry is not a session to copy. */
enum mig_status {
	MIG_OK = 0, /* a live session, read */
	MIG_LOCAL, /* host-local temp or cachelib's count file */
	MIG_BAD_NAME, /* '{', '}', newline, or not a phpredis name */
	MIG_SYMLINK, /* refused: never followed */
	MIG_DIRECTORY, /* refused: sessions are flat */
	MIG_SPECIAL, /* refused: fifo, socket, device */
	MIG_TOO_LARGE, /* refused: over --max-size */
	MIG_EXPIRED, /* its own header or mtime + ttl says so */
	MIG_VANISHED, /* deleted between readdir and open */
	MIG_UNSTABLE, /* kept changing while read */
	MIG_READ_ERROR, /* open, fstat or read failed: 'err' */
	MIG_STATUS_COUNT,
};

/** Short names of enum mig_status for messages and JSON. */
extern const char *const mig_status_names[MIG_STATUS_COUNT];

/** One entry of the directory, read by mig_file_read(). */
struct mig_file {
	const char *name; /* borrowed: the entry's d_name */
	enum mig_status status;
	enum mig_kind kind;
	int err; /* -errno for MIG_READ_ERROR */
	/*
	 * Valid for MIG_OK and MIG_EXPIRED; for MIG_TOO_LARGE only 'len' and
	 * meta.mtime_ns.
	 */
	char *data; /* owned; 'len' bytes */
	size_t len;
	struct be_meta meta; /* mtime, ctime, uid, gid, mode of the file */
	bool bad_header; /* cachelib name, header unreadable: mtime TTL */
	int64_t ttl_ms; /* remaining life at read time */
};

/**
 * Returns the next entry of 'd' (borrowed, valid until the next call),
 * skipping "." and "..", or NULL at the end or on error ('*err' then
 * -errno, else 0).
 */
const struct dirent *mig_dir_next(struct mig_dir *d, int *err);

/**
 * Reads the entry 'de' of 'd' into 'f' (released first): classifies the
 * name, looks at the entry without opening it, reads a regular file whole
 * with be_lower_get() (never following a symlink, again while it changes
 * under the read), refuses what is not a regular file or is over
 * --max-size, and decides whether it has expired at 'now_ms'.  Never
 * fails: the outcome is 'f->status'.
 */
void mig_file_read(struct mig_dir *d, const struct mig_options *o,
		   const struct dirent *de, int64_t now_ms, struct mig_file *f);

/** Frees f->data and zeroes 'f'. */
void mig_file_release(struct mig_file *f);

/**
 * Prints why the entry 'f' was not copied or checked to stderr, one line
 * ("refusing 'x': symbolic link"), for the statuses that need the
 * operator's attention; prints nothing for MIG_OK, MIG_LOCAL, MIG_EXPIRED
 * and MIG_VANISHED.  Also warns of a cachelib name with a bad header.
 */
void mig_file_report(const struct mig_file *f, const struct mig_options *o);

/** True for the statuses mig_file_report() reports as refused or failed. */
bool mig_status_is_problem(enum mig_status s);

/* ---- Online commands: a mount's control socket (fs/ctl.c) ---- */

/*
 * The daemon of a mount listens on <ctl_dir>/<id>.sock (mode 0600, root
 * peers only), <id> being 16 hex digits of the 64-bit FNV-1a hash of the
 * absolute mountpoint path.  Newline-delimited JSON, one request and one
 * reply per line; a reply is {"ok": true, ...} or {"ok": false, "error":
 * "..."}.  Call order: mig_ctl_open() -> mig_ctl_call()... ->
 * mig_ctl_close().  Single-threaded.
 */
#define MIG_DEFAULT_CTL_DIR "/run/sessfs"
#define MIG_CTL_PROTOCOL    1 /* the protocol of status we understand */
#define MIG_SESSFS_FSTYPE   "fuse.sessfs"

/* The online options, for a subcommand's struct option table. */
/* clang-format off */
#define MIG_ONLINE_LONG_OPTIONS						\
	{ "mount", required_argument, NULL, MIG_OPT_MOUNT },		\
	{ "ctl-dir", required_argument, NULL, MIG_OPT_CTL_DIR }
/* clang-format on */

/* Help text of the online options, for a subcommand's usage. */
#define MIG_ONLINE_OPTIONS_HELP                                               \
	"  --mount MOUNTPOINT     the sessfs mount to talk to\n"              \
	"  --ctl-dir DIR          where its control socket is (the mount's\n" \
	"                         -o ctl_dir; default /run/sessfs)\n"

/* The line of --help of mode, status and rollback that names --fleet. */
#define MIG_FLEET_OPTION_HELP                                                        \
	"  --fleet URL            every mount of --prefix, on every host, through\n" \
	"                         Redis instead (see '--fleet URL --help')\n"

struct json_t;

/** A connection to a mount's daemon; see mig_ctl_open(). */
struct mig_ctl {
	char mount[PATH_MAX]; /* absolute mountpoint */
	char path[PATH_MAX]; /* the socket */
	int fd;
	int pid; /* the daemon's, from SO_PEERCRED; 0 if unknown */
	bool spinner; /* draw "label ... 3.2 s" on stderr while waiting */
};

/**
 * Resolves 'mount', checks that a fuse.sessfs mount is there and connects
 * to its daemon's socket under 'ctl_dir' (NULL: the default).  The
 * spinner is on when stderr is a terminal.  Returns 0, or prints why
 * (and what to run) and returns -1; 'c' needs mig_ctl_close() in either
 * case.
 */
int mig_ctl_open(struct mig_ctl *c, const char *mount, const char *ctl_dir);

/**
 * Sends the request 'req' (borrowed) and waits for the reply, drawing
 * 'label' with the time spent on a terminal (NULL: nothing).  Returns 0
 * with the reply object in '*reply' (a new reference, "ok" may be false),
 * or prints why and returns -1 (transport error, not JSON, no "ok").
 */
int mig_ctl_call(struct mig_ctl *c, struct json_t *req, const char *label,
		 struct json_t **reply);

/**
 * Sends {"cmd": 'cmd'} and waits as mig_ctl_call(); a reply with "ok"
 * false is printed as an error ("<what>: <the daemon's error>") and gives
 * -1 too, with the reply still in '*reply' when it was one.
 */
int mig_ctl_simple(struct mig_ctl *c, const char *cmd, const char *label,
		   struct json_t **reply);

/** The "error" string of 'reply' (borrowed), or "no reason given". */
const char *mig_ctl_error(struct json_t *reply);

/** Closes the connection. */
void mig_ctl_close(struct mig_ctl *c);

/**
 * Counts the fuse.sessfs mounts stacked exactly on the absolute path
 * 'mount' (/proc/self/mountinfo).  Returns the count, or -errno.
 */
int mig_sessfs_layers(const char *mount);

/* ---- Subcommands: each returns an exit code (MIG_EXIT_*) ---- */

int cmd_analyze(int argc, char **argv);
int cmd_copy(int argc, char **argv);
/** copy --mount: the online backfill (backfill.c); from cmd_copy(). */
int cmd_copy_online(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_mode(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_rollback(int argc, char **argv);
/* fleet.c: mode, status and rollback with --fleet URL (mode.c etc. hand over) */
/** Whether 'argv' holds --fleet: the fleet form of mode, status or rollback. */
bool mig_fleet_wanted(int argc, char **argv);
int cmd_fleet_mode(int argc, char **argv);
int cmd_fleet_status(int argc, char **argv);
int cmd_fleet_rollback(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_cleanup(int argc, char **argv);

#endif /* MIGRATE_MIGRATE_I_H */
