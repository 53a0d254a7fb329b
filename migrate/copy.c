/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sessfs-migrate copy DIR URL: copies the live sessions of DIR into Redis
 * in layout v1, exactly as a mount with the same key options would store
 * them: the bytes as the value key, mtime, ctime, uid, gid and mode in the
 * meta key, the remaining life as the TTL.  Every put is a COPYUP, sent in
 * pipelined batches (be_store_put_many): it writes only where Redis holds
 * neither a value nor a tombstone, or an older value.  So a copy never
 * undoes a logout or a newer write, and running it again, also after a
 * kill -9, only finishes the work ("already present" for the rest).
 *
 * The work is shared by a few jobs (threads), each with its own connection
 * and batch, taking entries from one directory walk: while Redis runs one
 * job's batch, another reads files.  The walk, the totals and 'aborted'
 * are under copy->lock; everything in a struct copy_job is its own.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "acl.h"
#include "conn.h"
#include "migrate_i.h"

#define DEFAULT_JOBS 4
#define MAX_JOBS     16

/* What happened to the entries; printed as the JSON summary. */
struct copy_counts {
	long copied;
	long skipped_expired;
	long skipped_existing; /* Redis holds this mtime or a newer one */
	long skipped_tombstone; /* deleted in Redis since: not restored */
	long skipped_local; /* temps and cachelib's count file */
	long vanished; /* deleted by the app during the copy */
	long invalid; /* refused input, by reason in 'refused' */
	long errors; /* unreadable files, failed puts */
	long bad_header; /* copied, TTL from mtime */
	long long bytes; /* copied */
	long refused[MIG_STATUS_COUNT];
};

/* One file waiting in a batch, with its own copy of its name. */
struct slot {
	struct dirent de;
	struct mig_file f;
};

struct copy;

struct copy_job {
	struct copy *cp;
	struct be_conn *conn;
	struct copy_counts n;
	struct slot slots[MIG_BATCH_FILES];
	struct be_put_item items[MIG_BATCH_FILES];
	int results[MIG_BATCH_FILES];
	size_t nslots;
	size_t bytes;
	pthread_t thread;
};

struct copy {
	struct mig_options opt;
	const char *dir_path;
	const char *url;
	int progress; /* -1: when stderr is a terminal */
	int njobs;

	pthread_mutex_t lock;
	struct mig_dir dir;
	struct mig_progress bar;
	long done; /* entries finished, for the bar */
	int list_err; /* -errno of readdir */
	bool aborted; /* Redis failed: every job stops */
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: " MIG_PROGNAME " copy [options] DIR URL\n"
		"       " MIG_PROGNAME
		" copy --mount MOUNTPOINT [options]  (online;\n"
		"                         see 'copy --mount M --help')\n"
		"\n"
		"Copies the live sessions of DIR into Redis at URL, as a mount with the\n"
		"same key options stores them: value key with the exact bytes, meta key\n"
		"with mtime, ctime, uid, gid and mode, TTL = remaining life.  Expired\n"
		"sessions and host-local temps are skipped.  A session Redis already\n"
		"holds (as new or newer) or has deleted since (a tombstone) is never\n"
		"overwritten, so a copy can run again, also after being killed.\n"
		"Symlinks, subdirectories, special files, invalid names and files over\n"
		"--max-size are refused and reported.  A progress bar is shown on a\n"
		"terminal (stderr); a JSON summary is printed at the end (stdout).\n"
		"\n"
		"  --jobs N               connections working at once (default %d)\n"
		"  --progress, --no-progress  force the progress bar on or off\n"
		"  -h, --help             this text\n"
		"\n" MIG_KEY_OPTIONS_HELP "\n"
		"Exit status: 0 every entry copied or skipped as above, 1 refused\n"
		"entries or errors, 2 usage or unusable directory.\n",
		DEFAULT_JOBS);
}

/* Adds 'k' entries to the bar. */
static void finished(struct copy *cp, long k)
{
	long done;

	pthread_mutex_lock(&cp->lock);
	done = cp->done += k;
	pthread_mutex_unlock(&cp->lock);
	mig_progress_update(&cp->bar, done);
}

static void set_aborted(struct copy *cp)
{
	pthread_mutex_lock(&cp->lock);
	cp->aborted = true;
	pthread_mutex_unlock(&cp->lock);
}

/*
 * Sorts the COPYUP refusals of the batch: one pipelined EXISTS of each
 * value key tells a newer value from a tombstone.
 */
static int count_refusals(struct copy_job *job, size_t n)
{
	struct be_cmd cmds[MIG_BATCH_FILES] = { { 0 } };
	redisReply *replies[MIG_BATCH_FILES];
	const char *argv[MIG_BATCH_FILES][2];
	size_t lens[MIG_BATCH_FILES][2];
	char *keys[MIG_BATCH_FILES];
	size_t i, k = 0;
	int ret = 0, denied = 0;

	for (i = 0; i < n; i++) {
		if (job->results[i] != -EEXIST)
			continue;
		keys[k] = be_key_value(&job->cp->opt.sc.ks, job->items[i].name);
		if (!keys[k]) {
			ret = -ENOMEM;
			break;
		}
		argv[k][0] = "EXISTS";
		argv[k][1] = keys[k];
		lens[k][0] = 6;
		lens[k][1] = strlen(keys[k]);
		cmds[k].argc = 2;
		cmds[k].argv = argv[k];
		cmds[k].argvlen = lens[k];
		k++;
	}
	if (!ret && k)
		ret = be_conn_pipeline(job->conn, cmds, k,
				       (struct redisReply **)replies, 0);
	for (i = 0; i < k; i++) {
		if (!ret) {
			if (be_acl_is_denial(replies[i]))
				denied = be_acl_denied("EXISTS", replies[i]);
			else if (replies[i]->type == REDIS_REPLY_INTEGER &&
				 replies[i]->integer == 0)
				job->n.skipped_tombstone++;
			else
				job->n.skipped_existing++;
			freeReplyObject(replies[i]);
		}
		free(keys[i]);
	}
	return ret ? ret : denied;
}

/* Counts the result of each put of the batch; false if Redis is full. */
static bool count_results(struct copy_job *job, size_t n)
{
	char q[MIG_QUOTE_MAX];
	bool ok = true;
	size_t i;
	int res;

	for (i = 0; i < n; i++) {
		res = job->results[i];
		if (res == 0) {
			job->n.copied++;
			job->n.bytes += (long long)job->items[i].len;
		} else if (res != -EEXIST) {
			job->n.errors++;
			error("cannot copy '%s': %s",
			      mig_quote(job->items[i].name, q, sizeof(q)),
			      res == -ENOSPC ? "Redis is out of memory"
					     : strerror(-res));
			ok = ok && res != -ENOSPC;
		}
	}
	return ok;
}

/* Sends the job's batch and counts the results; -1 stops the copy. */
static int flush(struct copy_job *job)
{
	struct copy *cp = job->cp;
	size_t i, n = job->nslots;
	int ret = 0;

	if (!n)
		return 0;
	for (i = 0; i < n; i++) {
		const struct mig_file *f = &job->slots[i].f;

		job->items[i] = (struct be_put_item){
			.name = job->slots[i].de.d_name,
			.data = f->data,
			.len = f->len,
			.meta = f->meta,
			.mode = BE_PUT_COPYUP,
		};
	}
	ret = be_store_put_many(job->conn, &cp->opt.sc, job->items, n,
				job->results);
	if (ret) {
		job->n.errors += (long)n;
		error("cannot write to Redis: %s (%s); run the copy again to finish it",
		      strerror(-ret), be_conn_errstr(job->conn));
	} else if (!count_results(job, n)) {
		ret = -ENOSPC;
	} else {
		ret = count_refusals(job, n);
		if (ret)
			error("cannot read from Redis: %s", strerror(-ret));
	}
	for (i = 0; i < n; i++)
		mig_file_release(&job->slots[i].f);
	job->nslots = 0;
	job->bytes = 0;
	finished(cp, (long)n);
	if (ret) {
		set_aborted(cp);
		return -1;
	}
	return 0;
}

/* The counter of an entry that is not copied, by its status. */
static long *skip_counter(struct copy_counts *n, enum mig_status s)
{
	switch (s) {
	case MIG_EXPIRED:
		return &n->skipped_expired;
	case MIG_LOCAL:
		return &n->skipped_local;
	case MIG_VANISHED:
		return &n->vanished;
	case MIG_UNSTABLE:
	case MIG_READ_ERROR:
		return &n->errors;
	default:
		n->refused[s]++;
		return &n->invalid;
	}
}

/*
 * Copies the next entry of the walk into the job's next slot; false at
 * the end of the walk or when the copy was aborted.
 */
static bool next_entry(struct copy_job *job, struct dirent *out)
{
	struct copy *cp = job->cp;
	const struct dirent *de = NULL;
	int err = 0;

	pthread_mutex_lock(&cp->lock);
	if (!cp->aborted && !cp->list_err)
		de = mig_dir_next(&cp->dir, &err);
	/* readdir()'s entries are shorter than a struct dirent. */
	if (de) {
		out->d_type = de->d_type;
		strcpy(out->d_name, de->d_name);
	}
	if (err)
		cp->list_err = err;
	pthread_mutex_unlock(&cp->lock);
	return de != NULL;
}

/* Reads the entry in the job's next slot into the batch or counts it. */
static int take(struct copy_job *job, int64_t now)
{
	struct slot *s = &job->slots[job->nslots];

	mig_file_read(&job->cp->dir, &job->cp->opt, &s->de, now, &s->f);
	mig_file_report(&s->f, &job->cp->opt);
	if (s->f.status != MIG_OK) {
		(*skip_counter(&job->n, s->f.status))++;
		mig_file_release(&s->f);
		finished(job->cp, 1);
		return 0;
	}
	if (s->f.bad_header)
		job->n.bad_header++;
	job->nslots++;
	job->bytes += s->f.len;
	if (job->nslots < MIG_BATCH_FILES && job->bytes < MIG_BATCH_BYTES)
		return 0;
	return flush(job);
}

static void *job_run(void *arg)
{
	struct copy_job *job = arg;
	int ret = 0;

	while (!ret && next_entry(job, &job->slots[job->nslots].de))
		ret = take(job, mig_now_ms());
	if (!ret)
		flush(job);
	while (job->nslots)
		mig_file_release(&job->slots[--job->nslots].f);
	return NULL;
}

static void add_counts(struct copy_counts *sum, const struct copy_counts *n)
{
	size_t i;

	sum->copied += n->copied;
	sum->skipped_expired += n->skipped_expired;
	sum->skipped_existing += n->skipped_existing;
	sum->skipped_tombstone += n->skipped_tombstone;
	sum->skipped_local += n->skipped_local;
	sum->vanished += n->vanished;
	sum->invalid += n->invalid;
	sum->errors += n->errors;
	sum->bad_header += n->bad_header;
	sum->bytes += n->bytes;
	for (i = 0; i < MIG_STATUS_COUNT; i++)
		sum->refused[i] += n->refused[i];
}

/*
 * Runs the jobs over the walk and adds up their counts into 'sum'.  The
 * first job runs on this thread.  -1 when a job could not be started.
 */
static int run_jobs(struct copy *cp, struct copy_job *jobs,
		    struct copy_counts *sum)
{
	bool bar = cp->progress < 0 ? isatty(STDERR_FILENO) : cp->progress;
	/* Only a bar needs the total: a first pass over the names. */
	long total = bar ? mig_dir_count(&cp->dir) : 0;
	int i, started, ret = 0;

	mig_progress_start(&cp->bar, "copy", total < 0 ? 0 : total, bar);
	for (started = 1; started < cp->njobs; started++) {
		ret = pthread_create(&jobs[started].thread, NULL, job_run,
				     &jobs[started]);
		if (ret) {
			error("cannot start a copy job: %s", strerror(ret));
			set_aborted(cp);
			ret = -1;
			break;
		}
	}
	job_run(&jobs[0]);
	for (i = 1; i < started; i++)
		pthread_join(jobs[i].thread, NULL);
	mig_progress_end(&cp->bar);
	for (i = 0; i < cp->njobs; i++)
		add_counts(sum, &jobs[i].n);
	if (cp->list_err) {
		sum->errors++;
		set_aborted(cp);
		error("cannot list '%s': %s", cp->dir_path,
		      strerror(-cp->list_err));
	}
	return ret;
}

static void print_summary(const struct copy_counts *n, bool complete,
			  double seconds)
{
	json_t *sum, *refused = json_object();
	long handled;
	size_t i;

	for (i = 0; i < MIG_STATUS_COUNT; i++) {
		if (n->refused[i])
			json_object_set_new(refused, mig_status_names[i],
					    json_integer(n->refused[i]));
	}
	handled = n->copied + n->skipped_expired + n->skipped_existing +
		  n->skipped_tombstone + n->skipped_local + n->vanished +
		  n->invalid + n->errors;
	sum = json_pack(
		"{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:I, s:I, s:f, s:f}",
		"complete", complete, "copied", (json_int_t)n->copied,
		"skipped_expired", (json_int_t)n->skipped_expired,
		"skipped_existing", (json_int_t)n->skipped_existing,
		"skipped_tombstone", (json_int_t)n->skipped_tombstone,
		"skipped_local", (json_int_t)n->skipped_local, "vanished",
		(json_int_t)n->vanished, "invalid", (json_int_t)n->invalid,
		"refused", refused, "errors", (json_int_t)n->errors,
		"bad_cachelib_header", (json_int_t)n->bad_header, "entries",
		(json_int_t)handled, "bytes", (json_int_t)n->bytes, "seconds",
		seconds, "rate", seconds > 0 ? handled / seconds : 0.0);
	json_dumpf(sum, stdout, JSON_PRESERVE_ORDER);
	printf("\n");
	json_decref(sum);
}

static int parse_args(struct copy *cp, int argc, char **argv)
{
	enum {
		OPT_JOBS = MIG_OPT_FIRST_FREE,
		OPT_PROGRESS,
		OPT_NO_PROGRESS,
	};
	static const struct option longopts[] = {
		{ "jobs", required_argument, NULL, OPT_JOBS },
		{ "progress", no_argument, NULL, OPT_PROGRESS },
		{ "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
		{ "help", no_argument, NULL, 'h' },
		MIG_KEY_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, MIG_SHORT_OPTIONS, longopts,
				NULL)) != -1) {
		switch (c) {
		case OPT_JOBS:
			cp->njobs = (int)strtol(optarg, &end, 10);
			if (*end || end == optarg || cp->njobs < 1 ||
			    cp->njobs > MAX_JOBS)
				return error("invalid --jobs '%s': 1 to %d",
					     optarg, MAX_JOBS);
			break;
		case OPT_PROGRESS:
		case OPT_NO_PROGRESS:
			cp->progress = c == OPT_PROGRESS;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case '?':
		case ':':
			return mig_bad_option(c, argv, "copy");
		default:
			if (mig_key_option(&cp->opt, c, optarg))
				return -1;
		}
	}
	if (argc - optind != 2)
		return error("copy takes DIR and URL; see '" MIG_PROGNAME
			     " copy --help'");
	cp->dir_path = argv[optind];
	cp->url = argv[optind + 1];
	return mig_options_finish(&cp->opt);
}

/* Connects every job (one endpoint) and loads the scripts once. */
static int connect_jobs(struct copy *cp, struct copy_job *jobs)
{
	struct be_conn **conns = calloc(cp->njobs, sizeof(*conns));
	int i, ret;

	if (!conns)
		return error("out of memory");
	ret = mig_connect_n(&cp->opt, cp->url, conns, cp->njobs);
	for (i = 0; i < cp->njobs; i++) {
		jobs[i].cp = cp;
		jobs[i].conn = conns[i];
	}
	free(conns);
	if (ret)
		return -1;
	ret = be_store_load_scripts(jobs[0].conn);
	if (ret)
		return error("cannot load the store scripts into Redis: %s",
			     strerror(-ret));
	return 0;
}

int cmd_copy(int argc, char **argv)
{
	struct copy cp = { .progress = -1, .njobs = DEFAULT_JOBS };
	struct copy_counts sum = { 0 };
	struct copy_job *jobs = NULL;
	double start;
	int i, ret, code = MIG_EXIT_USAGE;

	/* With --mount the mount's daemon copies, online (backfill.c). */
	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--mount") == 0 ||
		    strncmp(argv[i], "--mount=", 8) == 0)
			return cmd_copy_online(argc, argv);
	pthread_mutex_init(&cp.lock, NULL);
	mig_options_init(&cp.opt);
	ret = parse_args(&cp, argc, argv);
	if (ret) {
		code = ret > 0 ? MIG_EXIT_OK : MIG_EXIT_USAGE;
		goto out_release;
	}
	if (mig_dir_open(&cp.dir, cp.dir_path))
		goto out_release;
	code = MIG_EXIT_DIFF;
	/* Each job's batch is large: keep it off the stack. */
	jobs = calloc((size_t)cp.njobs, sizeof(*jobs));
	if (!jobs) {
		error("out of memory");
		goto out_close;
	}
	if (connect_jobs(&cp, jobs))
		goto out_free_jobs;
	start = mig_monotonic();
	if (run_jobs(&cp, jobs, &sum))
		cp.aborted = true;
	if (sum.skipped_existing)
		fprintf(stderr,
			"%ld sessions already present in Redis (as new or newer): not overwritten\n",
			sum.skipped_existing);
	if (sum.skipped_tombstone)
		fprintf(stderr,
			"%ld sessions deleted in Redis since (tombstones): not restored\n",
			sum.skipped_tombstone);
	print_summary(&sum, !cp.aborted, mig_monotonic() - start);
	if (!cp.aborted && !sum.errors && !sum.invalid)
		code = MIG_EXIT_OK;
out_free_jobs:
	for (i = 0; i < cp.njobs; i++)
		be_conn_free(jobs[i].conn);
	free(jobs);
out_close:
	mig_dir_close(&cp.dir);
out_release:
	mig_options_release(&cp.opt);
	pthread_mutex_destroy(&cp.lock);
	return code;
}
