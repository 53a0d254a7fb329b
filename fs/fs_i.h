/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Private state of the sessfs daemon: its configuration, the inode table
 * and open-file handles.  docs/DESIGN.md is the map; this header states the
 * invariants the code relies on.
 *
 * Inodes.  The nodeid handed to the kernel is the address of a struct
 * fs_inode (as libfuse's passthrough_ll does), except FUSE_ROOT_ID for the
 * root, which is the lower directory.  An inode has a current name while
 * the name points at it; unlink and rename-over detach it (name == NULL),
 * and it lives on, with its bytes, while the kernel still references it
 * (nlookup) or a handle is open (nopen).  No ".fuse_hidden" file ever
 * exists.
 *
 * Bytes.  A session inode holds its bytes only while a handle is open: the
 * first OPEN loads them from the store, the last RELEASE drops them.  A
 * host-local inode (temp files, cachelib's count file) always holds its
 * bytes in memory; they never reach Redis unless renamed onto a session
 * name.
 *
 * Locks, taken in this order: the name stripe(s) (fs_name_lock, which
 * orders every store call on one name, DESIGN.md safety rule 1), then
 * inode->lock (bytes and attributes), then fs->tab_lock (the name map and
 * the reference counts; held briefly, never across I/O).
 */
#ifndef FS_FS_I_H
#define FS_FS_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include <fuse_lowlevel.h>

#include "conn.h"
#include "mode.h"
#include "mountpt.h"
#include "nameset.h"
#include "pool.h"
#include "store.h"

#define FS_NAME_STRIPES	   1024
#define FS_MAX_WRITE	   (1024 * 1024)
#define FS_MAX_THREADS	   16
#define FS_LOCAL_MAX_BYTES (64LL * 1024 * 1024)
#define FS_LOCAL_IDLE_SEC  3600
/*
 * Attributes read from a store answer GETATTR and SETATTR of an inode
 * with no handle open for this long: the GETATTR the kernel sends right
 * after a LOOKUP (default_permissions) costs no second round trip.
 */
#define FS_ATTR_FRESH_NS (5 * 1000000LL)
/* Largest session whose bytes a LOOKUP keeps for the OPEN that follows. */
#define FS_PREFETCH_MAX (64 * 1024)

/* Wall-clock time in ns: mtimes and the markers are wall-clock. */
static inline int64_t fs_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Monotonic time in ns: ages and deadlines. */
static inline int64_t fs_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/** Everything the command line sets; see fs/main.c for the table. */
struct fs_config {
	char *url; /* as given; never shown (may hold a password) */
	char *mountpoint; /* absolute */
	char *mode;
	char *prefix;
	char *layout;
	char *ttl;
	char *ttl_from;
	char *max_size;
	char *redis_timeout;
	char *state_dir;
	char *password_file;
	char *sentinel_password_file; /* Sentinel URLs only */
	char *durability; /* "none" (NULL), "replica" or "replica:N" */
	char *tls_ca; /* rediss:// only; NULL: the system's trust store */
	char *tls_cert;
	char *tls_key;
	char *tls_server_name; /* NULL: the URL's host */
	char *host_id;
	char *ctl_dir;
	char *cache; /* "tracking" or "off" */
	char *metrics_addr; /* HOST:PORT of GET /metrics (metrics.h) */
	char *legacy_reads_until; /* as given; parsed into fs.legacy_until_ns */
	char *shadow; /* PERCENT of dual-write reads compared (shadow.h) */
	char *lock_lease; /* seconds; parsed into fs.lock_lease_ms */
	int allow_evicting;
	int foreground;
	int debug;
	int show_help;
	int show_version;
	int allow_other;
	int unmount; /* -u MOUNTPOINT */
	int status; /* --status MOUNTPOINT */
	int nonopts; /* positional arguments seen */
	char *unknown; /* first unknown option or extra argument */
};

/** Attributes of a regular file, as reported by stat. */
struct fs_attr {
	off_t size;
	mode_t mode; /* permission bits only */
	uid_t uid;
	gid_t gid;
	struct timespec mtime;
	struct timespec ctime;
};

struct fs_inode {
	uint64_t ino; /* st_ino, unique for the daemon's life */
	uint64_t generation;
	char *name; /* current name, NULL when detached; under tab_lock */
	char *replaced; /* detached by a rename onto its name: that name */
	bool local; /* host-local in memory: bytes never reach a store */

	/* Under fs->tab_lock. */
	uint64_t nlookup; /* kernel references */
	unsigned int nopen; /* open handles */
	unsigned int refs; /* threads using the pointer right now */
	struct fs_inode *name_next; /* chain in the name map */
	struct fs_inode *local_next, *local_prev; /* list of local inodes */
	struct fs_inode *all_next, *all_prev; /* every inode, by last use */
	int64_t used; /* CLOCK_MONOTONIC s of the last LOOKUP or CREATE */
	bool trimmed; /* the kernel was asked to forget it (trim.c) */

	/* Under lock. */
	pthread_mutex_t lock;
	struct fs_attr attr;
	int64_t attr_at; /* CLOCK_MONOTONIC ns when 'attr' came from a store */
	char *data; /* file bytes: valid if 'loaded' */
	size_t len;
	size_t cap;
	bool loaded;
	bool opened; /* opened here before: a LOOKUP fetches the bytes too */
	bool prefetched; /* 'data' holds bytes read with 'attr' at attr_at */
	/*
	 * The meta's write version ("wv") read with 'attr' (and the bytes,
	 * when loaded or prefetched); 0 when unknown or changed here since.
	 */
	uint64_t wver;
	/*
	 * Tracked lookups (tracked.c): the epoch in which 'attr' (and the
	 * bytes, when 'prefetched') were what Redis held, tracked since; 0
	 * when not.  Good until 'tracked_until' (CLOCK_MONOTONIC ns).
	 */
	uint64_t tracked;
	int64_t tracked_until;
	/*
	 * Loaded, and Redis reported a change by another client since: the
	 * next LOOKUP or OPEN reads the store again (close-to-open), as no
	 * handle here may still need these bytes (RELEASE is asynchronous).
	 */
	bool stale;
	/*
	 * Open handles used since their last FLUSH, and when the last of them
	 * was flushed (CLOCK_MONOTONIC ns).  With none, every handle here was
	 * closed by the app and only waits for its RELEASE (asynchronous):
	 * the bytes no longer answer a new LOOKUP or OPEN (inode_reload()).
	 */
	unsigned int nactive;
	int64_t flushed_at;
	/*
	 * The commit point (DESIGN.md): a truncate through a handle, or an
	 * O_TRUNC open, is held back until the next WRITE or FLUSH; so is a
	 * WRITE of exactly max_write bytes.  'pending' says 'data' and 'attr'
	 * differ from the store: they are a draft, seen only through the
	 * handles that changed it (fs_handle.draft == 'draft'); every other
	 * handle, LOOKUP and GETATTR sees the committed bytes and attributes
	 * kept in 'saved', 'saved_len' and 'saved_attr', which a failed commit
	 * puts back.  Host-local and detached inodes keep no copy: nothing
	 * else can see them committed, so their one view is 'data'.
	 */
	bool pending;
	uint64_t draft; /* the draft's number, new for each change begun */
	bool draft_written; /* holds a WRITE acknowledged uncommitted */
	char *saved;
	size_t saved_len;
	struct fs_attr saved_attr;
	time_t closed_at; /* local: when the last handle closed */
};

/** An open file: fi->fh. */
struct fs_handle {
	struct fs_inode *inode;
	int flags;
	bool flushed; /* FLUSH came and no use since; under inode->lock */
	uint64_t draft; /* the inode's draft this handle changed; 0: none */
	struct fs_handle *next, *prev; /* open handles, under tab_lock */
};

struct be_journal;
struct fs_backfill;
struct fs_dirh;
struct fs_metrics;

/** Routing state (route.c): breaker, journal, per-name facts, threads. */
struct fs_route {
	pthread_mutex_t lock; /* redis_down, stopping; with cond */
	pthread_cond_t cond; /* breaker changes; journal work */
	bool redis_down;
	bool stopping;
	bool started;
	struct be_journal *journal;
	bool journal_corrupt;
	struct fs_nameset fenced; /* failed reads: no replace until read */
	struct fs_nameset mine; /* names this host wrote last */
	pthread_t prober;
	pthread_t repairer;
	/* Recent operations and failures, one slot per second. */
	struct {
		int64_t sec;
		uint64_t ops;
		uint64_t errors;
	} rate[16];
};

/** cachelib's count (count.c): the census of the listing, under lock. */
struct fs_count {
	pthread_mutex_t lock;
	bool valid; /* a census was taken in 'mode' */
	enum fs_mode mode;
	bool dirty; /* a counted name changed here since the census */
	int64_t other; /* counted names the names index does not hold */
	int64_t end_ms; /* CLOCK_REALTIME ms: a legacy file counted expires */
	int64_t at_ns, cost_ns; /* CLOCK_MONOTONIC: when, how long it took */
	uint64_t gen; /* changes here (fs_count_changed()) so far */
	long long indexed; /* the last ZCOUNT of the names index */
	int64_t indexed_at_ns; /* CLOCK_MONOTONIC, when it was sent */
	uint64_t indexed_gen; /* 'gen' when it was sent */
};

/** The daemon: fuse_req_userdata(). */
struct fs {
	struct fs_config cfg;
	struct be_endpoint ep;
	struct be_store_config sc;
	struct be_pool *pool;
	char *display_url;
	char *host_id;
	double redis_timeout;
	size_t max_size;
	/*
	 * The smallest WRITE that may be a piece of a larger write(2): the
	 * kernel cuts a direct write at max_write bytes or at max_pages pages
	 * of the app's buffer, whichever comes first, so a piece that is not
	 * the last is at least max_write - page size + 1 bytes (fs_init).
	 */
	size_t piece_min;
	_Atomic enum fs_mode mode; /* changed at run time (ctl.c) */
	pthread_mutex_t mode_lock; /* serialises mode changes */
	/*
	 * The lower dir holds every current session.  Written under the mode
	 * lock, read without it (status, metrics, the fleet's heartbeat).
	 */
	_Atomic bool lower_current;
	bool manifest_saved; /* by prepare-unmount: not again at the end */
	struct fs_route rt;
	struct fs_count count;
	struct fs_mountpt mp; /* the mountpoint, its bind and layers */
	int ctl_fd;
	char *ctl_path;
	pthread_t ctl_thread;
	bool ctl_started;
	_Atomic bool ctl_stopping;
	/*
	 * The control clients' threads (detached): fs_ctl_stop() ends their
	 * connections and waits for the last before fs is torn down.  Under
	 * ctl_lock, with ctl_cond signalled as one ends.
	 */
	pthread_mutex_t ctl_lock;
	pthread_cond_t ctl_cond;
	struct ctl_client *ctl_clients;
	int lower_fd; /* the directory under the mount, opened before it */
	/*
	 * -o legacy_reads_until: from this CLOCK_REALTIME ns on, redis-first
	 * and redis-only neither read nor copy up legacy files (lower.c); 0:
	 * never.  'legacy_ended_seen' makes the log say so once.
	 */
	int64_t legacy_until_ns;
	atomic_bool legacy_ended_seen;

	pthread_mutex_t tab_lock;
	struct fs_inode **name_map;
	size_t name_map_size; /* buckets, a power of two */
	size_t name_count;
	struct fs_inode *local_list;
	struct fs_inode *all_inodes; /* most recently used first */
	struct fs_inode *all_tail;
	struct fs_handle *handles; /* a lazy unmount may never release them */
	struct fs_dirh *dirs; /* open directories (dir.c), the same */
	long long local_bytes;
	uint64_t next_ino;
	uint64_t next_generation;

	pthread_mutex_t name_stripes[FS_NAME_STRIPES];

	/* Tracked lookups (tracked.c); tracker NULL when off. */
	struct be_tracker *tracker;
	atomic_uint track_inval[FS_NAME_STRIPES]; /* invalidations seen */
	_Atomic uint64_t track_hits; /* store calls saved */
	_Atomic bool track_refusal_logged;

	struct fs_metrics *metrics; /* metrics.h; NULL only on ENOMEM */

	/* The online backfill (backfill.h); NULL only on ENOMEM. */
	struct fs_backfill *backfill;
	/*
	 * Shadow reads (shadow.h): the percent sampled, reads that could
	 * be, and struct fs_shadow_counts's fields in their order.
	 */
	unsigned int shadow_percent;
	_Atomic uint64_t shadow_reads;
	_Atomic uint64_t shadow_counts[6];
	struct fs_fleet *fleet; /* follower.h; NULL when not started */
	struct fs_locks *locks; /* flock across hosts (lock.h) */
	int64_t lock_lease_ms;
};

/* inode.c */
int fs_table_init(struct fs *fs);
void fs_table_destroy(struct fs *fs);
/**
 * Returns the inode named 'name' with a new ref, creating it (detached
 * attributes zero, 'local' as given) when 'create' is set; NULL if absent
 * and not 'create', or on ENOMEM.  Drop the ref with fs_inode_put().
 */
struct fs_inode *fs_inode_get_name(struct fs *fs, const char *name, bool create,
				   bool local);
/** Takes a ref on 'ino' (a nodeid the kernel holds). */
struct fs_inode *fs_inode_get(struct fs *fs, fuse_ino_t ino);
void fs_inode_put(struct fs *fs, struct fs_inode *inode);
/** Counts one more kernel reference (an entry reply). */
void fs_inode_lookup_inc(struct fs *fs, struct fs_inode *inode);
/** FORGET: drops 'n' kernel references. */
void fs_inode_forget(struct fs *fs, fuse_ino_t ino, uint64_t n);
/** Detaches 'inode' from its name (unlink, rename-over). */
void fs_inode_detach(struct fs *fs, struct fs_inode *inode);
/**
 * Moves 'inode' to 'newname', detaching the inode that had it; 'local'
 * becomes the kind of the new name.  0 or -ENOMEM.
 */
int fs_inode_rename(struct fs *fs, struct fs_inode *inode, const char *newname,
		    bool local);
/**
 * Frees the bytes of a stored inode (no handle needs them any more); the
 * next open reads them again.  Caller holds inode->lock.
 */
void fs_inode_drop_bytes(struct fs_inode *inode);
/** Adds (open) or removes (release) 'h' in the list freed at exit. */
void fs_handle_track(struct fs *fs, struct fs_handle *h, bool add);
/** Counts handles: +1 on open, -1 on release (returns the new count). */
unsigned int fs_inode_open_inc(struct fs *fs, struct fs_inode *inode,
			       int delta);
/**
 * Copies into 'names' (at most 'max', each malloc'd) the names of inodes
 * the kernel references but nothing here uses (no handle, not local, no
 * thread), last used before 'used_before' (monotonic s), oldest first,
 * leaving the 'keep' most recent named inodes alone.  Returns the count.
 */
size_t fs_inode_idle_names(struct fs *fs, int64_t used_before, size_t keep,
			   char **names, size_t max);
/** Every named local inode, each with a new ref; '*n' of them (malloc'd). */
struct fs_inode **fs_local_grab(struct fs *fs, size_t *n);
/**
 * Turns the local inode into a stored one (its bytes were just written to
 * a store); caller holds inode->lock.
 */
void fs_inode_unlocal(struct fs *fs, struct fs_inode *inode);
/** The layout-v1 meta of attributes 'a' (ops.c). */
void fs_meta_from_attr(struct be_meta *m, const struct fs_attr *a);
/**
 * Writes the bytes of the local inode (in memory) to the lower file
 * 'name' (atomically, with its owner, mode and mtime) and makes the inode
 * that lower file, named 'name'; its bytes stay only while a handle is
 * open.  Caller holds inode->lock and the stripe of 'name'.  0 or -errno.
 */
int fs_local_to_lower(struct fs *fs, struct fs_inode *inode, const char *name);
/** Calls 'cb' for each named local inode (under tab_lock: no I/O). */
void fs_local_foreach(struct fs *fs,
		      void (*cb)(struct fs_inode *inode, void *arg), void *arg);
/** Frees the bytes of local inodes idle for FS_LOCAL_IDLE_SEC. */
void fs_local_sweep(struct fs *fs, time_t now);
/** Accounts 'delta' bytes of local data; -ENOSPC past the cap. */
int fs_local_charge(struct fs *fs, long long delta);

pthread_mutex_t *fs_name_lock(struct fs *fs, const char *name);
/** Locks the stripes of two names in a fixed order (one if shared). */
void fs_name_lock2(struct fs *fs, const char *a, const char *b);
void fs_name_unlock2(struct fs *fs, const char *a, const char *b);

/**
 * A process of this host was granted the flock of the session inode
 * 'nodeid' (lock.c) just after this host took its Redis lock: another host
 * may have changed the session since this host read it, so its bytes, if
 * loaded, are read again: unless a change of this host is pending, or
 * 'wver' (the write version of its meta, read once the lock was ours; 0:
 * unknown) is the one they were read at.  0 or -errno.  Any thread; takes the name stripe and inode->lock (ops.c).
 */
int fs_flock_refresh(struct fs *fs, uint64_t nodeid, uint64_t wver);

/* lower.c: legacy reads from the lower dir */
/**
 * Reads the lower file 'name' (a legacy session: Redis has neither a value
 * nor a tombstone for it) when it is a live regular session file: 0 with
 * '*f' PRESENT (data, size, meta from the file), -ENOENT when it does not
 * exist, is expired (and is then removed from the lower dir), or is not a
 * regular file (reported once), -EFBIG over max_size, or -errno.  Caller
 * holds the stripe of 'name'.
 */
int fs_lower_read(struct fs *fs, const char *name, struct be_file *f);
/**
 * fs_lower_read() whatever the legacy cutoff: for a listing that found
 * 'name' expired, which removes it if it still is (and reads it if it was
 * rewritten meanwhile).  Caller holds the stripe of 'name'.
 */
int fs_lower_sweep(struct fs *fs, const char *name, struct be_file *f);
/** lstat of the lower dir itself, for the root's attributes. */
int fs_lower_root_stat(struct fs *fs, struct stat *st);
/**
 * Whether the legacy reads are over: the cutoff has passed, whatever the
 * mode (status shows it).  Any thread.
 */
bool fs_legacy_cutoff_passed(struct fs *fs);
/**
 * Whether legacy files are neither read nor copied up nor listed now: the
 * cutoff has passed and the mode is redis-first or redis-only (in files
 * and dual-write the lower dir is the store itself).  Any thread.
 */
bool fs_legacy_reads_ended(struct fs *fs);

/* dir.c: the root directory's listing */
void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi);
void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/** Frees the open directories whose RELEASEDIR never came (at exit). */
void fs_dirs_free(struct fs *fs);
/**
 * What a listing of the root shows now, as cachelib's count counts it:
 * only the names the names index would hold (be_store_is_indexed(),
 * cachelib's entries), wherever they live.
 */
struct fs_census {
	size_t entries; /* cachelib entries listed */
	size_t redis; /* of which from Redis (Redis modes) */
	size_t legacy; /* of which live legacy files (Redis modes) */
	int64_t legacy_end_ms; /* CLOCK_REALTIME ms: the first expires */
};
/**
 * Lists the root as READDIR does (removing expired legacy files underneath
 * on the way: takes their stripes, so hold none) and counts it into 'c'.
 * 0 or -EIO.
 */
int fs_dir_census(struct fs *fs, struct fs_census *c);

/* count.c: cachelib's count file tells the truth */
void fs_count_init(struct fs_count *c);
void fs_count_destroy(struct fs_count *c);
/**
 * Sets '*n' to the number of names a listing shows now that cachelib
 * counts.  0, -EAGAIN at once while the circuit breaker has Redis down,
 * or -errno (Redis unreachable).  Any thread; holds no stripe.
 */
int fs_count_get(struct fs *fs, long long *n);
/**
 * Rewrites cachelib's count file, where it lives in this mode, with
 * fs_count_get()'s number, if the file exists (cachelib makes it at its
 * start).  Called before a LOOKUP of it, holding no stripe; a failure is
 * logged and leaves the file as it was.
 */
void fs_count_refresh(struct fs *fs);
/**
 * Adds to the names index (store.h) those of the 'n' Redis names 'names'
 * (a census's) that it should hold (be_store_is_indexed()) and lacks, when
 * it counts fewer than those: sessions written before it existed.
 * Failures are logged.  Holds no lock.
 */
void fs_count_reindex(struct fs *fs, const char *const *names, size_t n);
/**
 * Tells the count that 'name' was created, replaced ('removed' false) or
 * removed ('removed' true) through this mount; only a name the count
 * counts (be_store_is_indexed()) matters.  Any thread, any locks.
 */
void fs_count_changed(struct fs *fs, const char *name, bool removed);

/* route.c: each session operation to the stores of the mode */
/** Opens the journal at 'journal_path'; -1 with a reason in 'err'. */
int fs_route_init(struct fs *fs, const char *journal_path, char *err,
		  size_t errlen);
/** Starts the prober and repair threads (after daemonizing). */
int fs_route_start(struct fs *fs);
void fs_route_stop(struct fs *fs);
/**
 * Reads 'name' from the store that holds its current value: PRESENT,
 * TOMBSTONE or ABSENT in 'f' on 0; -errno (EIO after redis_timeout).
 */
int fs_route_get(struct fs *fs, const char *name, bool want_data,
		 struct be_file *f);
/** Writes the whole file; -EIO when 'name' is fenced. */
int fs_route_put(struct fs *fs, const char *name, const void *data, size_t len,
		 const struct be_meta *meta);
/**
 * Creates 'name' empty unless it exists: '*created' says which; on 0
 * without '*created', 'cur' holds the existing file (with its bytes).
 */
int fs_route_create(struct fs *fs, const char *name, const struct be_meta *meta,
		    struct be_file *cur, bool *created);
/** 1 when something was deleted, 0 when nothing existed, or -errno. */
int fs_route_delete(struct fs *fs, const char *name, int64_t last_mtime_ns);
int fs_route_setmeta(struct fs *fs, const char *name,
		     const struct be_meta *meta);
int fs_route_rename_lower_temp(struct fs *fs, const char *tmp, const char *name,
			       const void *data, size_t len,
			       const struct be_meta *meta);
/** Whether the circuit breaker has Redis down now.  Any thread. */
bool fs_route_redis_down(struct fs *fs);
/** Marks 'name' fenced after a read failed with 'err' (not ENOENT). */
void fs_route_fence(struct fs *fs, const char *name, int err);
void fs_route_unfence(struct fs *fs, const char *name);
bool fs_route_is_fenced(struct fs *fs, const char *name);
/**
 * Whether what Redis says of 'name' may be kept (tracked.c): a session
 * name in redis-only, neither fenced nor waiting for a repair.
 */
bool fs_route_cacheable(struct fs *fs, const char *name);
/** The pool slot whose connection reads and writes 'name' (track.h). */
unsigned int fs_route_slot(const char *name);
/** One repair pass over the journal; returns the names still behind. */
size_t fs_route_repair_pass(struct fs *fs);
/** Counts one routed operation, failed or not. */
void fs_route_count(struct fs *fs, bool failed);
/** Operations and failures of the last 10 seconds. */
void fs_route_error_rate(struct fs *fs, uint64_t *ops, uint64_t *errors);

/* state.c: journal and manifest files of the mount */
/** state_dir + "/" + the mountpoint's id + "." + 'suffix'; new string. */
char *fs_state_path(struct fs *fs, const char *suffix);
/** Journals what changed underneath while unmounted (at mount). */
int fs_manifest_apply(struct fs *fs);
/** Writes the unmount manifest when the lower dir is current. */
void fs_manifest_save(struct fs *fs);
/**
 * Before a lazy unmount with the application running (ctl's
 * prepare-unmount, the fleet's rollback): writes the manifest now, and not
 * again at the end, so that what the application writes to the plain
 * files after the unmount counts as changed underneath at the next mount.
 */
void fs_prepare_unmount(struct fs *fs);
/** After a corrupt journal: journals every lower name for a re-check. */
int fs_journal_reverify(struct fs *fs);
/** sessfs layers on the mountpoint: all, and dead ones. */
void fs_layers(struct fs *fs, unsigned int *layers, unsigned int *dead);

/* export.c: online export (Redis -> lower dir) and verify */
struct fs_export_stats {
	size_t names; /* names looked at */
	size_t written; /* files written underneath */
	size_t deleted; /* files removed underneath (tombstones) */
	size_t unchanged; /* already equal */
	size_t errors;
};
/** Exports every session in Redis to the lower dir; -EIO if any failed. */
int fs_export(struct fs *fs, struct fs_export_stats *st);

#define FS_VERIFY_MAX_DIFF 100
struct fs_verify_result {
	size_t checked;
	size_t ndiff; /* all differences; the first FS_VERIFY_MAX_DIFF kept */
	struct {
		char *name;
		const char *why;
	} diff[FS_VERIFY_MAX_DIFF];
	struct fs_nameset seen;
};
/** Compares Redis and the lower dir name by name; 0 or -errno. */
int fs_verify(struct fs *fs, struct fs_verify_result *vr);
void fs_verify_release(struct fs_verify_result *vr);

/* ctl.c: the control socket */
/** Starts listening on /run/sessfs/<id>.sock (or ctl_dir); 0 or -errno. */
int fs_ctl_start(struct fs *fs);
void fs_ctl_stop(struct fs *fs);

/* modeswitch.c: the mount's mode at run time (rules: mode.h) */
/** The mode now.  Any thread, any locks. */
enum fs_mode fs_mode_get(struct fs *fs);
/**
 * Changes the mode to 'to' at run time: the guards of mode.h (skipped
 * with 'force'), the stability checks before and after (a failed one
 * after puts the old mode back).  0, or -errno with the reason in 'why'.
 * Takes fs->mode_lock and every name stripe: call with no lock held.
 */
int fs_mode_change(struct fs *fs, enum fs_mode to, bool force, char *why,
		   size_t whylen);
/**
 * Gathers what the guards of 'from' -> 'to' need (the markers are read
 * from Redis only for dual-write -> redis-first).  0, or -errno with the
 * reason in 'why'.
 */
int fs_mode_facts(struct fs *fs, enum fs_mode from, enum fs_mode to,
		  struct fs_mode_facts *facts, char *why, size_t whylen);
/** Probes the stores 'mode' uses and the recent error rate; as above. */
int fs_mode_check_stable(struct fs *fs, enum fs_mode mode, char *why,
			 size_t whylen);
/** Records a clean verify of this host's files (its marker and the prefix's). */
int fs_mode_verified(struct fs *fs);
/** Records the current mode, so a crash restart comes back in it. */
void fs_mode_save(struct fs *fs);
/** The mode recorded by a daemon that did not unmount cleanly. */
int fs_mode_load(struct fs *fs, enum fs_mode *mode);
/** Removes the record at a clean unmount. */
void fs_mode_forget(struct fs *fs);

/* tracked.c: tracked lookups (-o cache=tracking) */
/** What a store call may keep: taken before the call. */
struct fs_track_tok {
	uint64_t epoch; /* 0: nothing may be kept */
	unsigned int inval;
};
/** Starts the tracker when -o cache=tracking; 0 or -errno. */
int fs_track_start(struct fs *fs);
void fs_track_stop(struct fs *fs);
/** Drops every tracked entry (a mode change). */
void fs_track_reset(struct fs *fs);
/** Before a store call on 'name' (stripe held). */
void fs_track_begin(struct fs *fs, const char *name, struct fs_track_tok *tok);
/**
 * After a store call on 'name' whose result 'inode' now holds (inode->lock
 * held): marks it tracked if nothing was invalidated meanwhile, for at most
 * 'pttl_ms' when > 0.
 */
void fs_track_end(struct fs *fs, struct fs_inode *inode, const char *name,
		  const struct fs_track_tok *tok, int64_t pttl_ms);
/** Whether 'inode' (inode->lock held) still holds what Redis holds. */
bool fs_track_valid(struct fs *fs, const struct fs_inode *inode);
/**
 * Whether tracking is on and an invalidation may be on its way in: a
 * loaded inode is then read again rather than believed (ops.c).
 */
bool fs_track_unsure(struct fs *fs);

/* ops.c */
extern const struct fuse_lowlevel_ops fs_oper;

#endif /* FS_FS_I_H */
