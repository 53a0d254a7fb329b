/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sessfs-migrate verify DIR URL: compares every live session of DIR (or a
 * sample) with what Redis holds under the same key options: the bytes, the
 * meta key's mtime, mode, uid and gid, and the TTL within a tolerance.  A
 * session Redis holds newer, or has deleted since (a tombstone at least
 * as new), is what a copy leaves alone and is not a difference.  A
 * mismatch is checked again, file and Redis re-read, before it is
 * reported, so a session the app rewrote during the run is not a false
 * alarm.
 *
 * sessfs-migrate verify --mount MOUNTPOINT: the mount's daemon compares
 * Redis with the directory underneath it, each name under its lock (so
 * live traffic cannot make a false alarm); a clean result is what allows
 * dual-write -> redis-first.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "conn.h"
#include "migrate_i.h"

#define DEFAULT_TOLERANCE_S 60
#define MAX_LISTED	    10000 /* differences kept for --json */
#define NS_PER_S	    ((int64_t)1000000000)

enum outcome {
	SAME = 0,
	REDIS_NEWER, /* Redis holds a newer write: not a difference */
	REDIS_DELETED, /* a tombstone at least as new as the file */
	DIFFERENT,
	EXPIRING, /* expires within the tolerance: may be gone in Redis */
	NOT_CHECKED, /* not a live session file: the file's status says why */
	REDIS_ERROR,
};

struct verify_counts {
	long checked;
	long same;
	long redis_newer;
	long redis_deleted;
	long different;
	long not_sampled;
	long skipped_expiring; /* expired, or expiring within the tolerance */
	long skipped_local;
	long refused; /* invalid names, symlinks, ... as copy */
	long errors; /* unreadable files, Redis errors */
};

struct verify {
	struct mig_options opt;
	const char *dir_path;
	const char *url;
	const char *mount; /* online */
	const char *ctl_dir;
	bool key_options; /* given: not with --mount */
	double sample_pct;
	int64_t tolerance_ms;
	bool json;
	int progress; /* -1: when stderr is a terminal */
	struct be_conn *conn;
	struct verify_counts n;
	json_t *diffs;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: " MIG_PROGNAME " verify [options] DIR URL\n"
		"       " MIG_PROGNAME " verify --mount MOUNTPOINT [--json]\n"
		"\n"
		"Compares every live session of DIR with Redis at URL: the bytes, the\n"
		"meta key's mtime, mode, uid and gid, and the TTL.  A session Redis\n"
		"holds newer, or has deleted since, is not a difference (copy leaves it\n"
		"alone too).  A mismatch is re-checked (file and Redis read again)\n"
		"before it is reported.  Differences are listed on stdout.\n"
		"\n"
		"With --mount, online: the mount's daemon compares Redis with the\n"
		"directory underneath it, name by name under the name's lock, while the\n"
		"application runs.  A clean result allows dual-write -> redis-first.\n"
		"\n" MIG_ONLINE_OPTIONS_HELP
		"  --sample PCT           check about PCT percent of the sessions\n"
		"                         (default 100)\n"
		"  --ttl-tolerance SECONDS  allowed TTL difference (default %d); a\n"
		"                         session expiring sooner is not checked\n"
		"  --json                 print the summary and differences as JSON\n"
		"  --progress, --no-progress  force the progress bar on or off\n"
		"  -h, --help             this text\n"
		"\n" MIG_KEY_OPTIONS_HELP "\n"
		"Exit status: 0 no difference, 1 differences or errors, 2 usage or\n"
		"unusable directory.\n",
		DEFAULT_TOLERANCE_S);
}

/* Appends "; " (unless first) and a formatted reason to 'why' at '*o'. */
static void add_reason(char *why, size_t len, size_t *o, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void add_reason(char *why, size_t len, size_t *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*o && *o + 2 < len) {
		strcpy(why + *o, "; ");
		*o += 2;
	}
	if (*o >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(why + *o, len - *o, fmt, ap);
	va_end(ap);
	if (n > 0)
		*o = *o + (size_t)n < len ? *o + (size_t)n : len;
}

/* Adds the differences of the metadata 'fm' (file) and 'rm' (Redis). */
static void compare_meta(const struct be_meta *fm, const struct be_meta *rm,
			 char *why, size_t len, size_t *o)
{
	if (rm->mtime_ns != fm->mtime_ns)
		add_reason(why, len, o,
			   "mtime %" PRId64 ".%09" PRId64 " in Redis, %" PRId64
			   ".%09" PRId64 " in the file",
			   rm->mtime_ns / NS_PER_S, rm->mtime_ns % NS_PER_S,
			   fm->mtime_ns / NS_PER_S, fm->mtime_ns % NS_PER_S);
	if (rm->mode != fm->mode)
		add_reason(why, len, o, "mode %04o in Redis, %04o in the file",
			   rm->mode, fm->mode);
	if (rm->uid != fm->uid)
		add_reason(why, len, o, "uid %u in Redis, %u in the file",
			   rm->uid, fm->uid);
	if (rm->gid != fm->gid)
		add_reason(why, len, o, "gid %u in Redis, %u in the file",
			   rm->gid, fm->gid);
}

/*
 * Compares the file 'f' with the Redis state 'r' and writes why they
 * differ into 'why'.  A value without meta key (phpredis's own handler
 * wrote it) has no times or owner to compare: that is a difference.
 */
static enum outcome compare(const struct verify *v, const struct mig_file *f,
			    const struct be_file *r, char *why, size_t len)
{
	const struct be_meta *fm = &f->meta, *rm = &r->meta;
	int64_t ttl_diff;
	size_t o = 0;

	why[0] = '\0';
	if (r->state == BE_ABSENT) {
		snprintf(why, len, "missing in Redis");
		return DIFFERENT;
	}
	if (r->state == BE_TOMBSTONE) {
		if (rm->mtime_ns >= fm->mtime_ns)
			return REDIS_DELETED;
		snprintf(why, len, "deleted in Redis, but the file is newer");
		return DIFFERENT;
	}
	if (r->has_meta && rm->mtime_ns > fm->mtime_ns)
		return REDIS_NEWER;

	if (r->size != f->len || (f->len && memcmp(r->data, f->data, f->len)))
		add_reason(
			why, len, &o,
			"value differs (%zu bytes in Redis, %zu in the file)",
			r->size, f->len);
	if (r->has_meta)
		compare_meta(fm, rm, why, len, &o);
	else
		add_reason(why, len, &o, "no meta key");
	if (r->pttl_ms < 0) {
		add_reason(why, len, &o, "no TTL in Redis");
	} else {
		ttl_diff = r->pttl_ms - f->ttl_ms;
		if (ttl_diff > v->tolerance_ms || -ttl_diff > v->tolerance_ms)
			add_reason(why, len, &o,
				   "TTL %" PRId64 " s in Redis, %" PRId64
				   " s expected",
				   r->pttl_ms / 1000, f->ttl_ms / 1000);
	}
	return o ? DIFFERENT : SAME;
}

/*
 * Reads 'de' from the directory into 'f' and from Redis, and compares
 * them; 'why' says how they differ, or why Redis could not be read.
 */
static enum outcome check_once(struct verify *v, struct mig_dir *d,
			       const struct dirent *de, struct mig_file *f,
			       char *why, size_t len)
{
	struct be_file r = { 0 };
	enum outcome out;
	int ret;

	mig_file_read(d, &v->opt, de, mig_now_ms(), f);
	if (f->status != MIG_OK)
		return NOT_CHECKED;
	if (f->ttl_ms <= v->tolerance_ms)
		return EXPIRING;
	ret = be_store_get(v->conn, &v->opt.sc, de->d_name, true, &r);
	if (ret) {
		snprintf(why, len, "cannot read it from Redis: %s",
			 strerror(-ret));
		return REDIS_ERROR;
	}
	out = compare(v, f, &r, why, len);
	be_file_release(&r);
	return out;
}

static void list_difference(struct verify *v, const char *name, const char *why)
{
	char q[MIG_QUOTE_MAX];

	mig_quote(name, q, sizeof(q));
	if (v->json) {
		if (json_array_size(v->diffs) < MAX_LISTED)
			json_array_append_new(v->diffs,
					      json_pack("{s:s, s:s}", "name", q,
							"difference", why));
	} else {
		printf("'%s': %s\n", q, why);
	}
}

/* Counts an entry that is not a live session, by the file's status. */
static void count_not_checked(struct verify *v, const struct mig_file *f)
{
	mig_file_report(f, &v->opt);
	switch (f->status) {
	case MIG_EXPIRED:
		v->n.skipped_expiring++;
		break;
	case MIG_LOCAL:
		v->n.skipped_local++;
		break;
	case MIG_VANISHED:
		break;
	case MIG_UNSTABLE:
	case MIG_READ_ERROR:
		v->n.errors++;
		break;
	default:
		v->n.refused++;
	}
}

/* Checks one entry, re-checking a mismatch, and counts the outcome. */
static void check(struct verify *v, struct mig_dir *d, const struct dirent *de)
{
	struct mig_file f = { 0 };
	char why[512], q[MIG_QUOTE_MAX];
	enum outcome out;

	out = check_once(v, d, de, &f, why, sizeof(why));
	/* The app or another host may have been writing it: look again. */
	if (out == DIFFERENT)
		out = check_once(v, d, de, &f, why, sizeof(why));
	if (out <= DIFFERENT)
		v->n.checked++;
	switch (out) {
	case SAME:
		v->n.same++;
		break;
	case REDIS_NEWER:
		v->n.redis_newer++;
		break;
	case REDIS_DELETED:
		v->n.redis_deleted++;
		break;
	case DIFFERENT:
		v->n.different++;
		list_difference(v, de->d_name, why);
		break;
	case EXPIRING:
		v->n.skipped_expiring++;
		break;
	case NOT_CHECKED:
		count_not_checked(v, &f);
		break;
	case REDIS_ERROR:
		v->n.errors++;
		error("'%s': %s", mig_quote(de->d_name, q, sizeof(q)), why);
		break;
	}
	mig_file_release(&f);
}

static bool sampled(const struct verify *v)
{
	return v->sample_pct >= 100 || drand48() * 100 < v->sample_pct;
}

static int verify_dir(struct verify *v, struct mig_dir *d)
{
	bool shown = v->progress < 0 ? isatty(STDERR_FILENO) : v->progress;
	/* Only a bar needs the total: a first pass over the names. */
	long total = shown ? mig_dir_count(d) : 0, seen = 0;
	struct mig_progress bar;
	const struct dirent *de;
	int err;

	mig_progress_start(&bar, "verify", total < 0 ? 0 : total, shown);
	while ((de = mig_dir_next(d, &err))) {
		if (sampled(v))
			check(v, d, de);
		else
			v->n.not_sampled++;
		mig_progress_update(&bar, ++seen);
	}
	mig_progress_end(&bar);
	if (err) {
		v->n.errors++;
		return error("cannot list '%s': %s", v->dir_path,
			     strerror(-err));
	}
	return 0;
}

static void print_summary(struct verify *v, double seconds)
{
	const struct verify_counts *n = &v->n;
	json_t *sum;

	if (!v->json) {
		printf("checked %ld sessions in %.1f s: %ld same, %ld newer in Redis, %ld deleted in Redis, %ld different; %ld not sampled, %ld expiring, %ld host-local, %ld refused, %ld errors\n",
		       n->checked, seconds, n->same, n->redis_newer,
		       n->redis_deleted, n->different, n->not_sampled,
		       n->skipped_expiring, n->skipped_local, n->refused,
		       n->errors);
		return;
	}
	sum = json_pack(
		"{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:O}",
		"checked", (json_int_t)n->checked, "same", (json_int_t)n->same,
		"redis_newer", (json_int_t)n->redis_newer, "redis_deleted",
		(json_int_t)n->redis_deleted, "different",
		(json_int_t)n->different, "not_sampled",
		(json_int_t)n->not_sampled, "skipped_expiring",
		(json_int_t)n->skipped_expiring, "skipped_local",
		(json_int_t)n->skipped_local, "refused", (json_int_t)n->refused,
		"errors", (json_int_t)n->errors, "seconds", seconds,
		"differences", v->diffs);
	json_dumpf(sum, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	printf("\n");
	json_decref(sum);
}

/* verify --mount: the daemon's verify, its differences listed. */
static int verify_online(struct verify *v)
{
	double start = mig_monotonic();
	struct mig_ctl ctl;
	json_t *reply = NULL, *diff, *d;
	json_int_t checked, ndiff;
	int code = MIG_EXIT_DIFF;
	size_t i;

	if (mig_ctl_open(&ctl, v->mount, v->ctl_dir) ||
	    mig_ctl_simple(&ctl, "verify", "verify", &reply))
		goto out;
	checked = json_integer_value(json_object_get(reply, "checked"));
	ndiff = json_integer_value(json_object_get(reply, "differences"));
	diff = json_object_get(reply, "diff");
	if (v->json) {
		json_object_set_new(reply, "seconds",
				    json_real(mig_monotonic() - start));
		json_dumpf(reply, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("\n");
	} else {
		json_array_foreach(diff, i, d)
			printf("'%s': %s\n",
			       json_string_value(json_object_get(d, "name")),
			       json_string_value(json_object_get(d, "why")));
		if ((json_int_t)json_array_size(diff) < ndiff)
			printf("... and %lld more\n",
			       (long long)(ndiff -
					   (json_int_t)json_array_size(diff)));
		printf("checked %lld sessions on '%s' in %.1f s: %lld differences\n",
		       (long long)checked, ctl.mount, mig_monotonic() - start,
		       (long long)ndiff);
	}
	if (ndiff == 0)
		code = MIG_EXIT_OK;
out:
	json_decref(reply);
	mig_ctl_close(&ctl);
	return code;
}

static int parse_args(struct verify *v, int argc, char **argv)
{
	enum {
		OPT_SAMPLE = MIG_OPT_FIRST_FREE,
		OPT_TOLERANCE,
		OPT_JSON,
		OPT_PROGRESS,
		OPT_NO_PROGRESS,
	};
	static const struct option longopts[] = {
		{ "sample", required_argument, NULL, OPT_SAMPLE },
		{ "ttl-tolerance", required_argument, NULL, OPT_TOLERANCE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "progress", no_argument, NULL, OPT_PROGRESS },
		{ "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
		{ "help", no_argument, NULL, 'h' },
		MIG_ONLINE_LONG_OPTIONS,
		MIG_KEY_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	long long tol;
	int c;

	while ((c = getopt_long(argc, argv, MIG_SHORT_OPTIONS, longopts,
				NULL)) != -1) {
		switch (c) {
		case OPT_SAMPLE:
			v->sample_pct = strtod(optarg, &end);
			if (*end || end == optarg || !(v->sample_pct > 0) ||
			    v->sample_pct > 100)
				return error(
					"invalid --sample '%s': a percentage above 0, at most 100",
					optarg);
			break;
		case OPT_TOLERANCE:
			tol = strtoll(optarg, &end, 10);
			if (*end || end == optarg || tol < 0 || tol > 86400)
				return error(
					"invalid --ttl-tolerance '%s': 0 to 86400 seconds",
					optarg);
			v->tolerance_ms = tol * 1000;
			break;
		case OPT_JSON:
			v->json = true;
			break;
		case OPT_PROGRESS:
		case OPT_NO_PROGRESS:
			v->progress = c == OPT_PROGRESS;
			break;
		case MIG_OPT_MOUNT:
			v->mount = optarg;
			break;
		case MIG_OPT_CTL_DIR:
			v->ctl_dir = optarg;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case '?':
		case ':':
			return mig_bad_option(c, argv, "verify");
		default:
			if (mig_key_option(&v->opt, c, optarg))
				return -1;
			v->key_options = true;
		}
	}
	if (v->mount) {
		if (argc != optind || v->key_options)
			return error(
				"verify --mount takes no DIR, URL or key options: the mount has its own; see '" MIG_PROGNAME
				" verify --help'");
		return 0;
	}
	if (argc - optind != 2)
		return error("verify takes DIR and URL; see '" MIG_PROGNAME
			     " verify --help'");
	v->dir_path = argv[optind];
	v->url = argv[optind + 1];
	return mig_options_finish(&v->opt);
}

int cmd_verify(int argc, char **argv)
{
	struct verify v = {
		.sample_pct = 100,
		.tolerance_ms = DEFAULT_TOLERANCE_S * 1000,
		.progress = -1,
	};
	struct mig_dir d;
	double start;
	int ret, code = MIG_EXIT_USAGE;

	mig_options_init(&v.opt);
	v.diffs = json_array();
	ret = parse_args(&v, argc, argv);
	if (ret) {
		code = ret > 0 ? MIG_EXIT_OK : MIG_EXIT_USAGE;
		goto out_release;
	}
	if (v.mount) {
		code = verify_online(&v);
		goto out_release;
	}
	srand48((long)mig_now_ms() ^ (long)getpid());
	if (mig_dir_open(&d, v.dir_path))
		goto out_release;
	code = MIG_EXIT_DIFF;
	/* Verifying reads only: the eviction policy is copy's concern. */
	v.opt.allow_evicting = true;
	if (mig_connect(&v.opt, v.url, &v.conn))
		goto out_close;
	start = mig_monotonic();
	verify_dir(&v, &d);
	print_summary(&v, mig_monotonic() - start);
	if (!v.n.different && !v.n.errors)
		code = MIG_EXIT_OK;
out_close:
	be_conn_free(v.conn);
	mig_dir_close(&d);
out_release:
	json_decref(v.diffs);
	mig_options_release(&v.opt);
	return code;
}
