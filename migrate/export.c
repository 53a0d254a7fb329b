/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sessfs-migrate export: brings a session directory up to Redis, the way
 * back from Redis to plain files.
 *
 * Online (--mount MOUNTPOINT): the mount's daemon exports into the
 * directory underneath it, each name under its lock, so the export is
 * ordered with live traffic (fs/export.c).  Only in redis-first and
 * redis-only, where Redis is authoritative: in files and dual-write the
 * files are, and Redis may be behind them.
 *
 * Offline (URL DIR): for a directory no mount serves.  Every name under
 * the prefix is read from Redis and written with the lower-dir store
 * (be_lower_put: a temp file, then renameat, so a reader sees the old or
 * the new session, never a part): the exact bytes, mtime from the meta
 * key, owner and mode kept (a value without meta key, written by
 * phpredis's own handler, gets the directory's owner and mode 0600).
 * Expired sessions are not written; a deleted session (tombstone) is
 * removed from the directory.  A file in the directory newer than what
 * Redis holds is kept: the app wrote it after Redis did.  Files Redis
 * knows nothing about are left alone.
 *
 * The offline work is shared by a few jobs (threads), each with its own
 * connection, taking names from one list under xp->lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "conn.h"
#include "lowerstore.h"
#include "migrate_i.h"

#define DEFAULT_JOBS 4
#define MAX_JOBS     16

struct export_counts {
	long names; /* under the prefix, listed */
	long written;
	long deleted; /* tombstoned in Redis, removed from the directory */
	long unchanged; /* the directory holds the same already */
	long expired; /* not written */
	long kept_newer; /* the directory's file is newer than Redis's */
	long vanished; /* gone from Redis since the listing */
	long refused; /* not a regular file in the directory */
	long errors;
	long long bytes; /* written */
};

struct export;

struct export_job {
	struct export *xp;
	struct be_conn *conn;
	struct export_counts n;
	pthread_t thread;
};

struct export
{
	struct mig_options opt;
	const char *url;
	const char *dir_path;
	const char *mount; /* online */
	const char *ctl_dir;
	int dirfd;
	uid_t dir_uid;
	gid_t dir_gid;
	int njobs;
	int progress; /* -1: when stderr is a terminal */
	bool json;

	pthread_mutex_t lock;
	char **names; /* listed from Redis */
	size_t nnames, cap;
	size_t next; /* the next name to take */
	long done;
	bool aborted; /* Redis failed: every job stops */
	struct mig_progress bar;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: " MIG_PROGNAME " export --mount MOUNTPOINT [--json]\n"
		"       " MIG_PROGNAME " export [options] URL DIR\n"
		"\n"
		"Brings session files up to Redis, the way back to plain files.\n"
		"\n"
		"With --mount, online: the mount's daemon writes every session Redis\n"
		"holds into the directory underneath the mount and removes the ones\n"
		"deleted in Redis, each ordered with the application's live traffic.\n"
		"Only in redis-first or redis-only (Redis authoritative).\n"
		"\n"
		"With URL DIR, offline, for a directory no mount serves: every session\n"
		"under the prefix is written into DIR atomically (temp file + rename)\n"
		"with its exact bytes, its mtime from the meta key, its owner and mode;\n"
		"expired sessions are skipped, deleted ones (tombstones) removed from\n"
		"DIR.  A file in DIR newer than Redis's copy is kept; files Redis does\n"
		"not know are left alone.\n"
		"\n" MIG_ONLINE_OPTIONS_HELP
		"  --jobs N               offline: connections working at once\n"
		"                         (default %d)\n"
		"  --json                 print the summary as JSON\n"
		"  --progress, --no-progress  force the progress bar on or off\n"
		"  -h, --help             this text\n"
		"\n" MIG_KEY_OPTIONS_HELP "\n"
		"Exit status: 0 exported, 1 errors or refused, 2 usage or unusable\n"
		"directory.\n",
		DEFAULT_JOBS);
}

/* ---- online ---- */

static int export_online(struct export *xp)
{
	struct mig_ctl ctl;
	json_t *req, *reply = NULL;
	const char *mode;
	int code = MIG_EXIT_DIFF, ret;

	if (mig_ctl_open(&ctl, xp->mount, xp->ctl_dir) ||
	    mig_ctl_simple(&ctl, "status", NULL, &reply))
		goto out;
	mode = json_string_value(json_object_get(reply, "mode"));
	if (!mode || (strcmp(mode, "redis-first") != 0 &&
		      strcmp(mode, "redis-only") != 0)) {
		error("'%s' is in mode %s: the files underneath are authoritative and Redis may be behind them, so there is nothing to export; export runs in redis-first or redis-only",
		      ctl.mount, mode ? mode : "?");
		goto out;
	}
	json_decref(reply);
	reply = NULL;
	req = json_pack("{s:s}", "cmd", "export");
	ret = req ? mig_ctl_call(&ctl, req, "export", &reply)
		  : error("out of memory");
	json_decref(req);
	if (ret)
		goto out;
	if (xp->json) {
		json_dumpf(reply, stdout, JSON_PRESERVE_ORDER);
		printf("\n");
	} else if (json_object_get(reply, "names")) {
		printf("exported %lld sessions into '%s' in %.1f s: %lld written, %lld deleted, %lld unchanged, %lld errors\n",
		       (long long)json_integer_value(
			       json_object_get(reply, "names")),
		       ctl.mount,
		       json_number_value(json_object_get(reply, "seconds")),
		       (long long)json_integer_value(
			       json_object_get(reply, "written")),
		       (long long)json_integer_value(
			       json_object_get(reply, "deleted")),
		       (long long)json_integer_value(
			       json_object_get(reply, "unchanged")),
		       (long long)json_integer_value(
			       json_object_get(reply, "errors")));
	}
	if (!json_is_true(json_object_get(reply, "ok"))) {
		error("export on '%s' failed: %s; see the daemon's log, fix the cause and run the export again",
		      ctl.mount, mig_ctl_error(reply));
		goto out;
	}
	code = MIG_EXIT_OK;
out:
	json_decref(reply);
	mig_ctl_close(&ctl);
	return code;
}

/* ---- offline ---- */

static int collect_cb(const char *name, enum be_state state, void *arg)
{
	struct export *xp = arg;

	(void)state; /* each name is read again: it may change meanwhile */
	if (xp->nnames == xp->cap) {
		size_t cap = xp->cap ? xp->cap * 2 : 1024;
		char **names = realloc(xp->names, cap * sizeof(*names));

		if (!names)
			return -ENOMEM;
		xp->names = names;
		xp->cap = cap;
	}
	xp->names[xp->nnames] = strdup(name);
	if (!xp->names[xp->nnames])
		return -ENOMEM;
	xp->nnames++;
	return 0;
}

/*
 * True when the file 'l' holds the value 'r' with the meta 'm'.  A value
 * without meta key has only an estimated mtime (from its TTL), which
 * moves: its bytes, owner and mode decide.
 */
static bool same_file(const struct be_file *r, const struct be_meta *m,
		      const struct be_file *l)
{
	return r->size == l->size &&
	       (!r->has_meta || m->mtime_ns == l->meta.mtime_ns) &&
	       m->mode == l->meta.mode && m->uid == l->meta.uid &&
	       m->gid == l->meta.gid &&
	       (r->size == 0 || memcmp(r->data, l->data, r->size) == 0);
}

/* Writes the value 'r' of 'name' into the directory unless it is there. */
static int export_present(struct export_job *job, const char *name,
			  const struct be_file *r)
{
	struct export *xp = job->xp;
	struct be_meta m = r->meta;
	struct be_file l = { 0 };
	char q[MIG_QUOTE_MAX];
	int ret;

	if (!r->has_meta) {
		/* phpredis's own handler wrote it: as the mount shows it. */
		m.uid = xp->dir_uid;
		m.gid = xp->dir_gid;
		m.mode = 0600;
	}
	if (be_ttl_remaining_ms(&xp->opt.sc.ttl, name, r->data, r->size,
				m.mtime_ns / 1000000, mig_now_ms()) <= 0) {
		job->n.expired++;
		return 0;
	}
	ret = be_lower_get(xp->dirfd, name, xp->opt.max_size, true, &l);
	if (ret == -EINVAL) {
		job->n.refused++;
		return error(
			"refusing to write '%s': in '%s' it is not a regular file",
			mig_quote(name, q, sizeof(q)), xp->dir_path);
	}
	/* A file over --max-size is replaced like any other. */
	if (ret && ret != -EFBIG) {
		job->n.errors++;
		return error("cannot read '%s' in '%s': %s",
			     mig_quote(name, q, sizeof(q)), xp->dir_path,
			     strerror(-ret));
	}
	if (!ret && l.state == BE_PRESENT) {
		if (same_file(r, &m, &l)) {
			job->n.unchanged++;
			goto out;
		}
		if (l.meta.mtime_ns > m.mtime_ns) {
			job->n.kept_newer++;
			warning("keeping '%s': the file in '%s' is newer than Redis's copy",
				mig_quote(name, q, sizeof(q)), xp->dir_path);
			goto out;
		}
	}
	ret = be_lower_put(xp->dirfd, name, r->data ? r->data : "", r->size,
			   &m);
	if (ret) {
		job->n.errors++;
		error("cannot write '%s' into '%s': %s",
		      mig_quote(name, q, sizeof(q)), xp->dir_path,
		      strerror(-ret));
	} else {
		job->n.written++;
		job->n.bytes += (long long)r->size;
	}
out:
	be_file_release(&l);
	return ret;
}

/* Removes a session deleted in Redis ('r', a tombstone) from the directory. */
static int export_tombstone(struct export_job *job, const char *name,
			    const struct be_file *r)
{
	struct export *xp = job->xp;
	struct be_file l = { 0 };
	char q[MIG_QUOTE_MAX];
	int ret;

	ret = be_lower_get(xp->dirfd, name, xp->opt.max_size, false, &l);
	if (ret == -EINVAL) {
		job->n.refused++;
		return error(
			"refusing to remove '%s': in '%s' it is not a regular file",
			mig_quote(name, q, sizeof(q)), xp->dir_path);
	}
	if (ret && ret != -EFBIG) {
		job->n.errors++;
		return error("cannot read '%s' in '%s': %s",
			     mig_quote(name, q, sizeof(q)), xp->dir_path,
			     strerror(-ret));
	}
	if (!ret && l.state != BE_PRESENT) {
		job->n.unchanged++;
		return 0;
	}
	if (!ret && l.meta.mtime_ns > r->meta.mtime_ns) {
		job->n.kept_newer++;
		warning("keeping '%s': deleted in Redis, but the file in '%s' is newer",
			mig_quote(name, q, sizeof(q)), xp->dir_path);
		return 0;
	}
	ret = be_lower_delete(xp->dirfd, name);
	if (ret == -ENOENT) {
		job->n.unchanged++;
		return 0;
	}
	if (ret) {
		job->n.errors++;
		return error("cannot remove '%s' from '%s': %s",
			     mig_quote(name, q, sizeof(q)), xp->dir_path,
			     strerror(-ret));
	}
	job->n.deleted++;
	return 0;
}

/* Exports one name; -1 only when Redis failed (the export stops). */
static int export_name(struct export_job *job, const char *name)
{
	struct be_file r = { 0 };
	char q[MIG_QUOTE_MAX];
	int ret;

	ret = be_store_get(job->conn, &job->xp->opt.sc, name, true, &r);
	if (ret) {
		job->n.errors++;
		return error(
			"cannot read '%s' from Redis: %s (%s); run the export again to finish it",
			mig_quote(name, q, sizeof(q)), strerror(-ret),
			be_conn_errstr(job->conn));
	}
	if (r.state == BE_PRESENT)
		export_present(job, name, &r);
	else if (r.state == BE_TOMBSTONE)
		export_tombstone(job, name, &r);
	else
		job->n.vanished++;
	be_file_release(&r);
	return 0;
}

/* The next name to export, or NULL at the end or when aborted. */
static const char *take(struct export *xp, long finished)
{
	const char *name = NULL;
	long done;

	pthread_mutex_lock(&xp->lock);
	done = xp->done += finished;
	if (!xp->aborted && xp->next < xp->nnames)
		name = xp->names[xp->next++];
	pthread_mutex_unlock(&xp->lock);
	mig_progress_update(&xp->bar, done);
	return name;
}

static void *job_run(void *arg)
{
	struct export_job *job = arg;
	struct export *xp = job->xp;
	const char *name;
	long finished = 0;

	while ((name = take(xp, finished))) {
		finished = 1;
		if (export_name(job, name)) {
			pthread_mutex_lock(&xp->lock);
			xp->aborted = true;
			pthread_mutex_unlock(&xp->lock);
		}
	}
	return NULL;
}

static void add_counts(struct export_counts *sum, const struct export_counts *n)
{
	sum->written += n->written;
	sum->deleted += n->deleted;
	sum->unchanged += n->unchanged;
	sum->expired += n->expired;
	sum->kept_newer += n->kept_newer;
	sum->vanished += n->vanished;
	sum->refused += n->refused;
	sum->errors += n->errors;
	sum->bytes += n->bytes;
}

static int run_jobs(struct export *xp, struct export_job *jobs,
		    struct export_counts *sum)
{
	bool bar = xp->progress < 0 ? isatty(STDERR_FILENO) : xp->progress;
	int i, started, ret = 0;

	mig_progress_start(&xp->bar, "export", (long)xp->nnames, bar);
	for (started = 1; started < xp->njobs; started++) {
		ret = pthread_create(&jobs[started].thread, NULL, job_run,
				     &jobs[started]);
		if (ret) {
			error("cannot start an export job: %s", strerror(ret));
			ret = -1;
			break;
		}
	}
	job_run(&jobs[0]);
	for (i = 1; i < started; i++)
		pthread_join(jobs[i].thread, NULL);
	mig_progress_end(&xp->bar);
	for (i = 0; i < xp->njobs; i++)
		add_counts(sum, &jobs[i].n);
	sum->names = (long)xp->nnames;
	return ret;
}

static void print_summary(const struct export *xp,
			  const struct export_counts *n, bool complete,
			  double seconds)
{
	json_t *sum;

	if (!xp->json) {
		printf("exported %ld sessions from Redis into '%s' in %.1f s: %ld written, %ld deleted, %ld unchanged, %ld expired (skipped), %ld kept (newer in the directory), %ld refused, %ld errors%s\n",
		       n->names, xp->dir_path, seconds, n->written, n->deleted,
		       n->unchanged, n->expired, n->kept_newer, n->refused,
		       n->errors, complete ? "" : " (incomplete)");
		return;
	}
	sum = json_pack(
		"{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f}",
		"complete", complete, "names", (json_int_t)n->names, "written",
		(json_int_t)n->written, "deleted", (json_int_t)n->deleted,
		"unchanged", (json_int_t)n->unchanged, "expired",
		(json_int_t)n->expired, "kept_newer", (json_int_t)n->kept_newer,
		"vanished", (json_int_t)n->vanished, "refused",
		(json_int_t)n->refused, "errors", (json_int_t)n->errors,
		"bytes", (json_int_t)n->bytes, "seconds", seconds);
	json_dumpf(sum, stdout, JSON_PRESERVE_ORDER);
	printf("\n");
	json_decref(sum);
}

/*
 * Opens the target directory: it must exist, and no sessfs mount may
 * serve it (the daemon would race with us; export --mount is the way).
 */
static int open_dir(struct export *xp)
{
	char real[PATH_MAX], mnt[PATH_MAX];
	struct stat st;
	int ret;

	ret = mig_resolve_path(xp->dir_path, real);
	if (ret)
		return error("cannot open '%s': %s", xp->dir_path,
			     strerror(-ret));
	ret = mig_find_sessfs_mount(real, mnt, sizeof(mnt));
	if (ret < 0)
		return error("cannot read the mount table: %s", strerror(-ret));
	if (ret > 0)
		return error(
			"'%s' is served by the sessfs mount on '%s': export through it with '" MIG_PROGNAME
			" export --mount %s', which orders the export with live traffic",
			xp->dir_path, mnt, mnt);
	xp->dirfd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (xp->dirfd < 0 || fstat(xp->dirfd, &st) < 0)
		return error("cannot open '%s': %s", xp->dir_path,
			     errno == ENOTDIR ? "not a directory"
					      : strerror(errno));
	xp->dir_uid = st.st_uid;
	xp->dir_gid = st.st_gid;
	return 0;
}

static int export_offline(struct export *xp)
{
	struct export_counts sum = { 0 };
	struct export_job *jobs;
	struct be_conn **conns;
	double start;
	int i, ret, code = MIG_EXIT_USAGE;

	if (open_dir(xp))
		goto out_close;
	code = MIG_EXIT_DIFF;
	jobs = calloc((size_t)xp->njobs, sizeof(*jobs));
	if (!jobs) {
		error("out of memory");
		goto out_close;
	}
	/* Reading only: the eviction policy is copy's concern. */
	xp->opt.allow_evicting = true;
	conns = calloc((size_t)xp->njobs, sizeof(*conns));
	if (!conns) {
		error("out of memory");
		goto out_free_jobs;
	}
	/* One endpoint: the jobs share its TLS context. */
	ret = mig_connect_n(&xp->opt, xp->url, conns, xp->njobs);
	for (i = 0; i < xp->njobs; i++) {
		jobs[i].xp = xp;
		jobs[i].conn = conns[i];
	}
	free(conns);
	if (ret)
		goto out_free_jobs;
	start = mig_monotonic();
	ret = be_store_list(jobs[0].conn, &xp->opt.sc, collect_cb, xp);
	if (ret) {
		error("cannot list the sessions under the prefix '%s': %s",
		      xp->opt.prefix, strerror(-ret));
		goto out_free_jobs;
	}
	if (run_jobs(xp, jobs, &sum))
		xp->aborted = true;
	print_summary(xp, &sum, !xp->aborted, mig_monotonic() - start);
	if (!xp->aborted && !sum.errors && !sum.refused)
		code = MIG_EXIT_OK;
out_free_jobs:
	for (i = 0; i < xp->njobs; i++)
		be_conn_free(jobs[i].conn);
	free(jobs);
out_close:
	if (xp->dirfd >= 0)
		close(xp->dirfd);
	return code;
}

/* ---- command line ---- */

static int parse_args(struct export *xp, int argc, char **argv)
{
	enum {
		OPT_JOBS = MIG_OPT_FIRST_FREE,
		OPT_JSON,
		OPT_PROGRESS,
		OPT_NO_PROGRESS,
	};
	static const struct option longopts[] = {
		{ "jobs", required_argument, NULL, OPT_JOBS },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "progress", no_argument, NULL, OPT_PROGRESS },
		{ "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
		{ "help", no_argument, NULL, 'h' },
		MIG_ONLINE_LONG_OPTIONS,
		MIG_KEY_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	bool key_options = false;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, MIG_SHORT_OPTIONS, longopts,
				NULL)) != -1) {
		switch (c) {
		case MIG_OPT_MOUNT:
			xp->mount = optarg;
			break;
		case MIG_OPT_CTL_DIR:
			xp->ctl_dir = optarg;
			break;
		case OPT_JOBS:
			xp->njobs = (int)strtol(optarg, &end, 10);
			if (*end || end == optarg || xp->njobs < 1 ||
			    xp->njobs > MAX_JOBS)
				return error("invalid --jobs '%s': 1 to %d",
					     optarg, MAX_JOBS);
			break;
		case OPT_JSON:
			xp->json = true;
			break;
		case OPT_PROGRESS:
		case OPT_NO_PROGRESS:
			xp->progress = c == OPT_PROGRESS;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case '?':
		case ':':
			return mig_bad_option(c, argv, "export");
		default:
			if (mig_key_option(&xp->opt, c, optarg))
				return -1;
			key_options = true;
		}
	}
	if (xp->mount) {
		if (argc != optind || key_options)
			return error(
				"export --mount takes no URL, DIR or key options: the mount has its own; see '" MIG_PROGNAME
				" export --help'");
		return 0;
	}
	if (argc - optind != 2)
		return error(
			"export takes URL and DIR (offline) or --mount MOUNTPOINT (online); see '" MIG_PROGNAME
			" export --help'");
	xp->url = argv[optind];
	xp->dir_path = argv[optind + 1];
	return mig_options_finish(&xp->opt);
}

int cmd_export(int argc, char **argv)
{
	struct export xp = {
		.dirfd = -1,
		.njobs = DEFAULT_JOBS,
		.progress = -1,
	};
	size_t i;
	int ret, code;

	pthread_mutex_init(&xp.lock, NULL);
	mig_options_init(&xp.opt);
	ret = parse_args(&xp, argc, argv);
	if (ret)
		code = ret > 0 ? MIG_EXIT_OK : MIG_EXIT_USAGE;
	else if (xp.mount)
		code = export_online(&xp);
	else
		code = export_offline(&xp);
	for (i = 0; i < xp.nnames; i++)
		free(xp.names[i]);
	free(xp.names);
	mig_options_release(&xp.opt);
	pthread_mutex_destroy(&xp.lock);
	return code;
}
