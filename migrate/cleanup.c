/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sessfs-migrate cleanup DIR URL --older-than D: removes the session files
 * of a lower dir that Redis has made redundant, once the migration is
 * done.
 *
 * A file is removed only when all of these hold: its name is a session
 * name to copy (the walk and the rules of copy: dir.c, mig_file_read());
 * it is a regular file whose mtime is older than now - D; and Redis holds
 * its session as new or newer: a value whose mtime is later than the
 * file's, or the same mtime and the same bytes, or a tombstone (the
 * session was deleted) at the file's mtime or later, which the file
 * would otherwise outlive and, once the tombstone expired, bring back as
 * a legacy file.  A file Redis lacks, holds older, or holds at the same
 * mtime with other bytes is kept, and so is every file that is not a
 * session (temps, other apps' files, symlinks, subdirectories).  Just
 * before the unlink the file is looked at again: if it changed since it
 * was read, it is kept.
 *
 * Without --yes nothing is removed: what would be is printed.  The
 * directory must not be a sessfs mount: cleanup is for the lower dir once
 * no mount reads it (a mount in files or dual-write reads those files).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "conn.h"
#include "migrate_i.h"

struct cleanup_counts {
	long entries;
	long removed; /* or, in a dry run, would be */
	long removed_deleted; /* of those: deleted in Redis (tombstone) */
	long kept_absent; /* Redis lacks it */
	long kept_older; /* Redis holds it older, or the same mtime and other bytes */
	long kept_recent; /* the file is younger than --older-than */
	long kept_other; /* not a session file */
	long changed; /* changed between the read and the unlink */
	long errors;
	long long bytes; /* removed */
};

struct cleanup {
	struct mig_options opt;
	const char *dir_path;
	const char *url;
	int64_t older_than_ms;
	bool yes;
	bool json;
	bool quiet;
	struct mig_dir dir;
	struct be_conn *conn;
	struct cleanup_counts n;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: " MIG_PROGNAME
		" cleanup [options] DIR URL --older-than AGE [--yes]\n"
		"\n"
		"Removes the session files of DIR (the lower dir, with no sessfs mount\n"
		"over it) that Redis at URL has made redundant: a session file older\n"
		"than AGE (by mtime) whose session Redis holds as new or newer (a later\n"
		"mtime, or the same mtime and bytes) or has deleted since (a\n"
		"tombstone).  Files Redis lacks or holds older, younger files, and\n"
		"anything that is not a session file are never touched.  Without --yes,\n"
		"a dry run: prints what it would remove and removes nothing.\n"
		"\n"
		"  --older-than AGE       only files whose mtime is older than AGE:\n"
		"                         a number with s, m, h, d or w (7d, 12h, 3600s)\n"
		"  --yes                  remove them (default: dry run)\n"
		"  --quiet                print only the summary, not each file\n"
		"  --json                 print the summary as JSON\n"
		"  -h, --help             this text\n"
		"\n" MIG_KEY_OPTIONS_HELP "\n"
		"Exit status: 0 done, 1 errors, 2 usage, unusable or mounted DIR.\n");
}

/* Parses "7d", "12h", "30m", "3600s", "2w" (or bare seconds) into ms. */
static int parse_age(const char *arg, int64_t *ms)
{
	static const struct {
		char unit;
		int64_t ms;
	} units[] = {
		{ 's', 1000LL },     { 'm', 60000LL },	   { 'h', 3600000LL },
		{ 'd', 86400000LL }, { 'w', 604800000LL },
	};
	char *end;
	long long v;
	size_t i;

	errno = 0;
	v = strtoll(arg, &end, 10);
	if (errno || end == arg || v < 0 || v > 100LL * 366 * 86400)
		return -1;
	if (!*end) {
		*ms = v * 1000;
		return 0;
	}
	if (end[1])
		return -1;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (*end == units[i].unit) {
			*ms = v * units[i].ms;
			return 0;
		}
	}
	return -1;
}

enum verdict {
	KEEP_ABSENT,
	KEEP_OLDER,
	REMOVE_SAME_OR_NEWER,
	REMOVE_DELETED,
};

/* What Redis's copy 'r' says about the file 'f'. */
static enum verdict judge(const struct be_file *r, const struct mig_file *f)
{
	if (r->state == BE_ABSENT)
		return KEEP_ABSENT;
	if (r->state == BE_TOMBSTONE)
		return r->meta.mtime_ns >= f->meta.mtime_ns ? REMOVE_DELETED
							    : KEEP_OLDER;
	if (r->meta.mtime_ns > f->meta.mtime_ns)
		return REMOVE_SAME_OR_NEWER;
	if (r->meta.mtime_ns == f->meta.mtime_ns && r->size == f->len &&
	    (f->len == 0 || memcmp(r->data, f->data, f->len) == 0))
		return REMOVE_SAME_OR_NEWER;
	return KEEP_OLDER;
}

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

/*
 * Removes the file 'f' if it is still what was read: a regular file of
 * the same size and mtime.  1 removed, 0 changed (kept), -1 error.
 */
static int remove_file(struct cleanup *cl, const struct mig_file *f)
{
	char q[MIG_QUOTE_MAX];
	struct stat st;

	if (fstatat(cl->dir.fd, f->name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno == ENOENT)
			return 0;
		return error("cannot look at '%s': %s",
			     mig_quote(f->name, q, sizeof(q)), strerror(errno));
	}
	if (!S_ISREG(st.st_mode) || (size_t)st.st_size != f->len ||
	    ts_ns(&st.st_mtim) != f->meta.mtime_ns)
		return 0;
	if (!cl->yes)
		return 1;
	if (unlinkat(cl->dir.fd, f->name, 0) != 0) {
		if (errno == ENOENT)
			return 0;
		return error("cannot remove '%s': %s",
			     mig_quote(f->name, q, sizeof(q)), strerror(errno));
	}
	return 1;
}

/* Decides about one entry and removes it when it may go.  -1: Redis failed. */
static int cleanup_entry(struct cleanup *cl, const struct mig_file *f,
			 int64_t cutoff_ns)
{
	struct be_file r = { 0 };
	char q[MIG_QUOTE_MAX];
	enum verdict v;
	int ret;

	if (f->status != MIG_OK && f->status != MIG_EXPIRED) {
		if (f->status == MIG_READ_ERROR || f->status == MIG_UNSTABLE) {
			cl->n.errors++;
			mig_file_report(f, &cl->opt);
		} else {
			cl->n.kept_other++;
		}
		return 0;
	}
	if (f->meta.mtime_ns >= cutoff_ns) {
		cl->n.kept_recent++;
		return 0;
	}
	ret = be_store_get(cl->conn, &cl->opt.sc, f->name, true, &r);
	if (ret) {
		cl->n.errors++;
		return error("cannot read '%s' from Redis: %s (%s)",
			     mig_quote(f->name, q, sizeof(q)), strerror(-ret),
			     be_conn_errstr(cl->conn));
	}
	v = judge(&r, f);
	be_file_release(&r);
	if (v == KEEP_ABSENT) {
		cl->n.kept_absent++;
		return 0;
	}
	if (v == KEEP_OLDER) {
		cl->n.kept_older++;
		return 0;
	}
	ret = remove_file(cl, f);
	if (ret < 0) {
		cl->n.errors++;
		return 0;
	}
	if (ret == 0) {
		cl->n.changed++;
		return 0;
	}
	cl->n.removed++;
	cl->n.bytes += (long long)f->len;
	if (v == REMOVE_DELETED)
		cl->n.removed_deleted++;
	if (!cl->quiet)
		printf("%s '%s'%s\n", cl->yes ? "removed" : "would remove",
		       mig_quote(f->name, q, sizeof(q)),
		       v == REMOVE_DELETED ? " (deleted in Redis)" : "");
	return 0;
}

static int walk(struct cleanup *cl)
{
	int64_t now_ms = mig_now_ms();
	int64_t cutoff_ns = (now_ms - cl->older_than_ms) * 1000000LL;
	const struct dirent *de;
	struct mig_file f = { 0 };
	int err = 0, ret = 0;

	while (!ret && (de = mig_dir_next(&cl->dir, &err))) {
		cl->n.entries++;
		mig_file_read(&cl->dir, &cl->opt, de, now_ms, &f);
		ret = cleanup_entry(cl, &f, cutoff_ns);
		mig_file_release(&f);
	}
	if (err) {
		cl->n.errors++;
		return error("cannot list '%s': %s", cl->dir_path,
			     strerror(-err));
	}
	if (!ret && cl->yes && cl->n.removed && fsync(cl->dir.fd) != 0)
		return error("cannot sync '%s': %s", cl->dir_path,
			     strerror(errno));
	return ret;
}

static void print_summary(const struct cleanup *cl, bool complete)
{
	const struct cleanup_counts *n = &cl->n;
	json_t *sum;

	if (!cl->json) {
		printf("%s %ld of %ld entries of '%s' (%ld deleted in Redis, %lld bytes); kept %ld Redis lacks, %ld Redis holds older, %ld younger than --older-than, %ld not session files, %ld changed meanwhile; %ld errors%s%s\n",
		       cl->yes ? "removed" : "would remove", n->removed,
		       n->entries, cl->dir_path, n->removed_deleted, n->bytes,
		       n->kept_absent, n->kept_older, n->kept_recent,
		       n->kept_other, n->changed, n->errors,
		       complete ? "" : " (incomplete)",
		       cl->yes ? "" : " (dry run: pass --yes to remove)");
		return;
	}
	sum = json_pack(
		"{s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		"complete", complete, "dry_run", !cl->yes, "entries",
		(json_int_t)n->entries, "removed", (json_int_t)n->removed,
		"removed_deleted", (json_int_t)n->removed_deleted,
		"kept_absent", (json_int_t)n->kept_absent, "kept_older",
		(json_int_t)n->kept_older, "kept_recent",
		(json_int_t)n->kept_recent, "kept_other",
		(json_int_t)n->kept_other, "changed", (json_int_t)n->changed,
		"errors", (json_int_t)n->errors, "bytes", (json_int_t)n->bytes);
	json_dumpf(sum, stdout, JSON_PRESERVE_ORDER);
	printf("\n");
	json_decref(sum);
}

static int parse_args(struct cleanup *cl, int argc, char **argv)
{
	enum {
		OPT_OLDER_THAN = MIG_OPT_FIRST_FREE,
		OPT_YES,
		OPT_QUIET,
		OPT_JSON,
	};
	static const struct option longopts[] = {
		{ "older-than", required_argument, NULL, OPT_OLDER_THAN },
		{ "yes", no_argument, NULL, OPT_YES },
		{ "quiet", no_argument, NULL, OPT_QUIET },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		MIG_KEY_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	int c;

	cl->older_than_ms = -1;
	while ((c = getopt_long(argc, argv, MIG_SHORT_OPTIONS, longopts,
				NULL)) != -1) {
		switch (c) {
		case OPT_OLDER_THAN:
			if (parse_age(optarg, &cl->older_than_ms))
				return error(
					"invalid --older-than '%s': a number with s, m, h, d or w (7d, 12h, 3600s)",
					optarg);
			break;
		case OPT_YES:
			cl->yes = true;
			break;
		case OPT_QUIET:
			cl->quiet = true;
			break;
		case OPT_JSON:
			cl->json = true;
			cl->quiet = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case '?':
		case ':':
			return mig_bad_option(c, argv, "cleanup");
		default:
			if (mig_key_option(&cl->opt, c, optarg))
				return -1;
		}
	}
	if (argc - optind != 2)
		return error("cleanup takes DIR and URL; see '" MIG_PROGNAME
			     " cleanup --help'");
	if (cl->older_than_ms < 0)
		return error(
			"cleanup needs --older-than AGE (7d, 12h, 3600s); see '" MIG_PROGNAME
			" cleanup --help'");
	cl->dir_path = argv[optind];
	cl->url = argv[optind + 1];
	return mig_options_finish(&cl->opt);
}

/*
 * Whether 'st' is the lower dir of a live mount, reached some other way:
 * each daemon binds its lower dir at /run/sessfs/<id>/lower
 * (fs/mountpt.h), so the same directory has the same device and inode
 * there.  The bind's path goes into 'bind'.
 */
static bool is_a_mounts_lower_dir(const struct stat *st, char *bind, size_t len)
{
	struct dirent *de;
	struct stat b;
	bool found = false;
	DIR *run;

	run = opendir(MIG_DEFAULT_CTL_DIR);
	if (!run)
		return false;
	while (!found && (de = readdir(run))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(bind, len, "%s/%s/lower", MIG_DEFAULT_CTL_DIR,
			 de->d_name);
		found = stat(bind, &b) == 0 && S_ISDIR(b.st_mode) &&
			b.st_dev == st->st_dev && b.st_ino == st->st_ino;
	}
	closedir(run);
	return found;
}

/*
 * Refuses a directory a sessfs mount serves (or one under it): that is
 * the mount, not the lower dir, and the mount may still read the files;
 * so is the lower dir of a live mount reached through the daemon's bind.
 */
static int check_not_mounted(const struct cleanup *cl)
{
	char real[PATH_MAX], mnt[PATH_MAX];
	struct stat st;
	int ret;

	ret = mig_resolve_path(cl->dir_path, real);
	if (ret)
		return error("cannot open '%s': %s", cl->dir_path,
			     strerror(-ret));
	ret = mig_find_sessfs_mount(real, mnt, sizeof(mnt));
	if (ret < 0)
		return error("cannot read the mount table: %s", strerror(-ret));
	if (ret > 0)
		return error(
			"'%s' is a sessfs mount (on '%s'), not a lower dir: cleanup removes files underneath a mount only once it is gone; unmount it first ('" MIG_PROGNAME
			" rollback' or sessfs -u)",
			cl->dir_path, mnt);
	if (stat(real, &st) == 0 &&
	    is_a_mounts_lower_dir(&st, mnt, sizeof(mnt)))
		return error(
			"'%s' is the lower dir of a live sessfs mount (bound at '%s'): the mount may read these files; unmount it first",
			cl->dir_path, mnt);
	return 0;
}

int cmd_cleanup(int argc, char **argv)
{
	struct cleanup cl = { 0 };
	int ret, code = MIG_EXIT_USAGE;

	cl.dir.fd = -1;
	mig_options_init(&cl.opt);
	ret = parse_args(&cl, argc, argv);
	if (ret) {
		code = ret > 0 ? MIG_EXIT_OK : MIG_EXIT_USAGE;
		goto out_release;
	}
	if (check_not_mounted(&cl) || mig_dir_open(&cl.dir, cl.dir_path))
		goto out_release;
	code = MIG_EXIT_DIFF;
	/* Reading only. */
	cl.opt.allow_evicting = true;
	if (mig_connect(&cl.opt, cl.url, &cl.conn))
		goto out_close;
	ret = walk(&cl);
	print_summary(&cl, !ret);
	if (!ret && !cl.n.errors)
		code = MIG_EXIT_OK;
out_close:
	mig_dir_close(&cl.dir);
out_release:
	be_conn_free(cl.conn);
	mig_options_release(&cl.opt);
	return code;
}
