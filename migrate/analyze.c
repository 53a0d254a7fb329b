/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sessfs-migrate analyze DIR [URL]: what a copy of DIR would meet, without
 * writing anywhere.  Walks and reads DIR as copy does, counts entries by
 * kind and by what copy would do with them, dates and sizes the sessions,
 * and estimates the Redis memory they will take.  With URL it also counts what the prefix already holds and
 * times a sample of the copy's work against that server, with a no-op
 * read-only script carrying the same keys and bytes, to estimate the copy
 * time.  The report is built as JSON; the table is printed from it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "conn.h"
#include "migrate_i.h"

#define DEFAULT_SAMPLE 2000
#define MAX_SAMPLE     100000
#define MAX_EXAMPLES   10
/*
 * Redis 7.0 (jemalloc, 64 bit), measured with INFO used_memory over 20000
 * sessions: besides its two key names and its value rounded up to an
 * allocation size class, a session takes about 394 bytes (dict and
 * expires entries, objects, and a meta hash with a 13-byte host id).
 */
#define MEM_PER_SESSION 394
/*
 * The probe cannot write, so it times the round trips, the transfer of
 * the sample's bytes and a script call, not the copy's writes:
 * bench/copy_bench.sh measured a real copy to take this many times the
 * probe's Redis time (Redis 7.0, loopback; see bench/README.md).  It was
 * 2.5 with a put script per session; the copy's transactions
 * (store_copy.c) took 0.64-0.81 of that copy's time in the same runs.
 */
#define PROBE_WRITE_FACTOR 1.8
/* The argv of the probe: EVAL_RO script 2 K M value mt ct uid gid mode host hs */
#define PROBE_ARGC 14
#define PROBE_NUMS 6

struct bucket {
	const char *label;
	long long max; /* largest size in the bucket; -1: no limit */
};

static const struct bucket buckets[] = {
	{ "0", 0 },
	{ "1-1K", 1024 },
	{ "1K-4K", 4096 },
	{ "4K-16K", 16384 },
	{ "16K-64K", 65536 },
	{ "64K-256K", 262144 },
	{ "256K-1M", 1048576 },
	{ ">1M", -1 },
};

#define N_BUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct analyze {
	struct mig_options opt;
	const char *dir_path;
	const char *url;
	bool json;
	long sample_max;

	long entries;
	long status[MIG_STATUS_COUNT];
	long kinds[MIG_KIND_COUNT]; /* session files, live or not */
	long sizes[N_BUCKETS];
	long empty;
	long bad_header;
	long long live_bytes;
	double mem_bytes;
	int64_t oldest_ns, newest_ns;
	long dated;
	json_t *examples; /* status name -> [quoted names] */
	char **sample; /* names of live sessions, for the estimate */
	long nsample;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: " MIG_PROGNAME " analyze [options] DIR [URL]\n"
		"\n"
		"Counts the entries of the session directory DIR by kind (PHP sess_*,\n"
		"cachelib 32-hex, Django sessionid*, other, invalid names, host-local\n"
		"temps), live and expired sessions, sizes, oldest and newest mtime,\n"
		"refused entries (symlinks, subdirectories, special files, files over\n"
		"--max-size), and the Redis memory a copy will take.  With URL it also\n"
		"counts what the prefix already holds there and estimates the copy time\n"
		"from a measured sample; nothing is written.\n"
		"\n"
		"  --json                 print the report as JSON (stdout)\n"
		"  --sample N             sessions timed for the estimate (default %d)\n"
		"  -h, --help             this text\n"
		"\n" MIG_KEY_OPTIONS_HELP "\n"
		"Exit status: 0 ok, 1 refused or unreadable entries found, 2 usage or\n"
		"unusable directory.\n",
		DEFAULT_SAMPLE);
}

static size_t bucket_of(long long size)
{
	size_t i;

	for (i = 0; i < N_BUCKETS - 1; i++) {
		if (size <= buckets[i].max)
			return i;
	}
	return N_BUCKETS - 1;
}

/* Rounds 'n' up to a jemalloc size class (4 per doubling above 128). */
static size_t alloc_size(size_t n)
{
	size_t group = 128, step;

	if (n <= 8)
		return 8;
	if (n <= 128)
		return (n + 15) & ~(size_t)15;
	while (group < n)
		group <<= 1;
	step = group / 8;
	return (n + step - 1) / step * step;
}

/* Estimated Redis memory of the session 'name' of 'len' bytes. */
static double mem_estimate(const struct mig_options *o, const char *name,
			   size_t len)
{
	char *vkey = be_key_value(&o->sc.ks, name);
	size_t vklen, mklen;
	size_t hdr = len < 256 ? 3 : len < 65536 ? 5 : 9;

	if (!vkey)
		return 0;
	vklen = strlen(vkey);
	mklen = strlen(o->prefix) + 1 + vklen + 3;
	free(vkey);
	return MEM_PER_SESSION + (double)vklen + (double)mklen +
	       (double)alloc_size(len + hdr + 1);
}

static void add_example(struct analyze *a, const struct mig_file *f)
{
	const char *key = mig_status_names[f->status];
	json_t *list = json_object_get(a->examples, key);
	char q[MIG_QUOTE_MAX];

	if (!list) {
		list = json_array();
		json_object_set_new(a->examples, key, list);
	}
	if (json_array_size(list) < MAX_EXAMPLES)
		json_array_append_new(
			list, json_string(mig_quote(f->name, q, sizeof(q))));
}

static int add_sample(struct analyze *a, const char *name)
{
	if (a->nsample >= a->sample_max || !a->url)
		return 0;
	if (!a->sample) {
		a->sample = calloc((size_t)a->sample_max, sizeof(*a->sample));
		if (!a->sample)
			return -ENOMEM;
	}
	a->sample[a->nsample] = strdup(name);
	if (!a->sample[a->nsample])
		return -ENOMEM;
	a->nsample++;
	return 0;
}

static int account(struct analyze *a, const struct mig_file *f)
{
	int64_t mtime;

	a->status[f->status]++;
	if (mig_status_is_problem(f->status))
		add_example(a, f);
	if (f->status != MIG_OK && f->status != MIG_EXPIRED &&
	    f->status != MIG_TOO_LARGE)
		return 0;

	a->kinds[f->kind]++;
	a->sizes[bucket_of((long long)f->len)]++;
	if (f->len == 0)
		a->empty++;
	mtime = f->meta.mtime_ns;
	if (!a->dated || mtime < a->oldest_ns)
		a->oldest_ns = mtime;
	if (!a->dated || mtime > a->newest_ns)
		a->newest_ns = mtime;
	a->dated++;
	if (f->status != MIG_OK)
		return 0;
	a->live_bytes += (long long)f->len;
	a->mem_bytes += mem_estimate(&a->opt, f->name, f->len);
	if (f->bad_header)
		a->bad_header++;
	return add_sample(a, f->name);
}

static int walk(struct analyze *a, struct mig_dir *d)
{
	const struct dirent *de;
	struct mig_file f = { 0 };
	int64_t now = mig_now_ms();
	int err, ret = 0;

	while (!ret && (de = mig_dir_next(d, &err))) {
		a->entries++;
		mig_file_read(d, &a->opt, de, now, &f);
		mig_file_report(&f, &a->opt);
		ret = account(a, &f);
	}
	mig_file_release(&f);
	if (ret)
		return error("out of memory");
	if (err)
		return error("cannot list '%s': %s", a->dir_path,
			     strerror(-err));
	return 0;
}

/* "2024-11-29T03:48:00Z" for 'ns' since the epoch, into 'buf'. */
static const char *iso_time(int64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000LL);
	struct tm tm;

	if (!gmtime_r(&t, &tm) ||
	    !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "?");
	return buf;
}

static double nonzero(double t)
{
	return t > 0 ? t : 1e-9;
}

/* One probe: the arguments a copy's put of one file would carry. */
struct probe {
	struct mig_file f;
	char *vkey, *mkey;
	char nums[PROBE_NUMS][24];
	const char *argv[PROBE_ARGC];
	size_t lens[PROBE_ARGC];
};

static void probe_release(struct probe *p)
{
	mig_file_release(&p->f);
	free(p->vkey);
	free(p->mkey);
	p->vkey = p->mkey = NULL;
}

/*
 * Fills the argv of 'p' for 'method': EVAL_RO of a script that returns 0
 * with the keys, value and meta a COPYUP script gets, or ECHO of the value
 * where EVAL_RO is refused (Redis before 7, an ACL).
 */
static int probe_fill(struct probe *p, const struct mig_options *o,
		      const char *method)
{
	const struct be_meta *m = &p->f.meta;
	char hs[BE_HSEQ_DIGITS + 1];
	size_t i;

	if (strcmp(method, "ECHO") == 0) {
		p->argv[0] = "ECHO";
		p->argv[1] = p->f.data ? p->f.data : "";
		p->lens[0] = 4;
		p->lens[1] = p->f.len;
		return 2;
	}
	be_hseq_format(hs, (uint64_t)mig_now_ms() * 1000000);
	snprintf(p->nums[0], sizeof(p->nums[0]), "%" PRId64, m->mtime_ns);
	snprintf(p->nums[1], sizeof(p->nums[1]), "%" PRId64, m->ctime_ns);
	snprintf(p->nums[2], sizeof(p->nums[2]), "%" PRIu32, m->uid);
	snprintf(p->nums[3], sizeof(p->nums[3]), "%" PRIu32, m->gid);
	snprintf(p->nums[4], sizeof(p->nums[4]), "%" PRIu32, m->mode);
	snprintf(p->nums[5], sizeof(p->nums[5]), "%s", hs);
	p->argv[0] = "EVAL_RO";
	p->argv[1] = "return 0";
	p->argv[2] = "2";
	p->argv[3] = p->vkey;
	p->argv[4] = p->mkey;
	p->argv[5] = p->f.data ? p->f.data : "";
	for (i = 0; i < PROBE_NUMS - 1; i++)
		p->argv[6 + i] = p->nums[i];
	p->argv[11] = o->host_id;
	p->argv[12] = p->nums[5];
	p->argv[13] = "1";
	for (i = 0; i < PROBE_ARGC; i++)
		p->lens[i] = i == 5 ? p->f.len : strlen(p->argv[i]);
	return PROBE_ARGC;
}

/*
 * Sends the probes 'p[0..n)' in one pipeline with 'method'.  Returns 0,
 * 1 when the server refused the method, or -errno.
 */
static int probe_send(struct be_conn *c, struct probe *p, size_t n,
		      const struct mig_options *o, const char *method)
{
	struct be_cmd cmds[MIG_BATCH_FILES] = { { 0 } };
	redisReply *replies[MIG_BATCH_FILES];
	size_t i;
	int ret;

	for (i = 0; i < n; i++) {
		cmds[i].argc = probe_fill(&p[i], o, method);
		cmds[i].argv = p[i].argv;
		cmds[i].argvlen = p[i].lens;
	}
	ret = be_conn_pipeline(c, cmds, n, (struct redisReply **)replies, 0);
	if (ret)
		return ret;
	for (i = 0; i < n; i++) {
		if (replies[i]->type == REDIS_REPLY_ERROR)
			ret = 1;
		freeReplyObject(replies[i]);
	}
	return ret;
}

/* What measure() has timed so far. */
struct timing {
	const char *method; /* "EVAL_RO", or "ECHO" where it is refused */
	double files; /* seconds reading files */
	double redis; /* seconds in pipelines */
	long timed; /* sessions sent */
};

/*
 * Sends the batch 'p[0..n)' of probes, timed, falling back from EVAL_RO
 * (Redis 7, and allowed by the ACL) to ECHO; releases the probes.  0 or
 * -1 with the reason in 'why'.
 */
static int send_timed(struct be_conn *c, struct probe *p, size_t n,
		      const struct mig_options *o, struct timing *tm, char *why,
		      size_t len)
{
	double t = mig_monotonic();
	int ret;

	ret = probe_send(c, p, n, o, tm->method);
	if (ret == 1 && strcmp(tm->method, "EVAL_RO") == 0) {
		tm->method = "ECHO";
		t = mig_monotonic();
		ret = probe_send(c, p, n, o, tm->method);
	}
	tm->redis += mig_monotonic() - t;
	tm->timed += (long)n;
	while (n)
		probe_release(&p[--n]);
	if (ret > 0)
		snprintf(why, len, "the server refused EVAL_RO and ECHO");
	else if (ret < 0)
		snprintf(why, len, "%s", be_conn_errstr(c));
	return ret ? -1 : 0;
}

/*
 * Reads the sample file 'name' into the probe 'p'.  1 if it is a live
 * session, 0 if not (any more), -1 on ENOMEM.
 */
static int probe_read(struct analyze *a, struct mig_dir *d, const char *name,
		      struct probe *p, struct timing *tm)
{
	struct dirent de = { .d_type = DT_UNKNOWN };
	double t = mig_monotonic();

	snprintf(de.d_name, sizeof(de.d_name), "%s", name);
	mig_file_read(d, &a->opt, &de, mig_now_ms(), &p->f);
	tm->files += mig_monotonic() - t;
	if (p->f.status != MIG_OK) {
		probe_release(p);
		return 0;
	}
	/* The walk's name is gone with 'de'. */
	p->f.name = name;
	p->vkey = be_key_value(&a->opt.sc.ks, name);
	p->mkey = p->vkey ? be_key_meta(&a->opt.sc.ks, p->vkey) : NULL;
	return p->mkey ? 1 : -1;
}

/*
 * Times the sample: reading each file whole, then the pipelined probes in
 * the copy's batches.  Writes the estimate, or why there is none, into
 * 'est'.  0, or -1 on ENOMEM.
 */
static int measure(struct analyze *a, struct mig_dir *d, struct be_conn *c,
		   json_t *est)
{
	struct timing tm = { .method = "EVAL_RO" };
	size_t n = 0, bytes = 0;
	struct probe *batch;
	char why[256] = "";
	double per_file, per_redis, t;
	int ret = 0;
	long i;

	batch = calloc(MIG_BATCH_FILES, sizeof(*batch));
	if (!batch)
		return error("out of memory");
	for (i = 0; i < a->nsample && !ret; i++) {
		ret = probe_read(a, d, a->sample[i], &batch[n], &tm);
		if (ret <= 0)
			continue;
		ret = 0;
		bytes += batch[n++].f.len;
		if (n == MIG_BATCH_FILES || bytes >= MIG_BATCH_BYTES) {
			ret = send_timed(c, batch, n, &a->opt, &tm, why,
					 sizeof(why));
			n = bytes = 0;
		}
	}
	if (!ret && n)
		ret = send_timed(c, batch, n, &a->opt, &tm, why, sizeof(why));
	while (n)
		probe_release(&batch[--n]);
	free(batch);
	if (ret && !why[0])
		return error("out of memory");
	if (!ret && tm.timed == 0)
		snprintf(why, sizeof(why), "no live session to time");
	if (why[0]) {
		json_object_set_new(est, "measured", json_false());
		json_object_set_new(est, "reason", json_string(why));
		return 0;
	}
	/*
	 * Copy jobs read files while Redis runs scripts: the slower of the
	 * two sets the pace.
	 */
	per_file = tm.files / (double)tm.timed;
	per_redis = tm.redis / (double)tm.timed * PROBE_WRITE_FACTOR;
	t = per_file > per_redis ? per_file : per_redis;
	json_object_set_new(est, "measured", json_true());
	json_object_set_new(est, "sample", json_integer(tm.timed));
	json_object_set_new(est, "method", json_string(tm.method));
	json_object_set_new(est, "file_rate", json_real(1 / nonzero(per_file)));
	json_object_set_new(est, "redis_rate",
			    json_real(1 / nonzero(per_redis)));
	json_object_set_new(est, "rate", json_real(1 / nonzero(t)));
	json_object_set_new(est, "seconds",
			    json_real(t * (double)a->status[MIG_OK]));
	return 0;
}

static int count_cb(const char *name, enum be_state state, void *arg)
{
	long *counts = arg;

	counts[state == BE_PRESENT ? 0 : 1]++;
	return 0;
}

/* The "redis" section: the server's state and the estimate. */
static int redis_section(struct analyze *a, struct mig_dir *d, json_t *rep)
{
	struct mig_options opt = a->opt;
	json_t *r = json_object(), *est = json_object();
	long counts[2] = { 0, 0 };
	struct be_conn *c;
	char err[256];
	int ret;

	json_object_set_new(rep, "redis", r);
	json_object_set_new(rep, "copy_estimate", est);
	if (!a->url) {
		json_object_set_new(est, "measured", json_false());
		json_object_set_new(est, "reason",
				    json_string("no Redis URL given"));
		return 0;
	}
	/* An evicting policy is a finding here, not a reason to stop. */
	opt.allow_evicting = true;
	if (mig_connect(&opt, a->url, &c))
		return -1;
	ret = be_store_check_server(c, false, err, sizeof(err));
	json_object_set_new(r, "policy_ok", json_boolean(ret == 0));
	if (ret)
		json_object_set_new(r, "policy_error", json_string(err));
	ret = be_store_list(c, &a->opt.sc, count_cb, counts);
	if (ret) {
		error("cannot list '%s' in Redis: %s", a->opt.prefix,
		      strerror(-ret));
		goto out_free_conn;
	}
	json_object_set_new(r, "values", json_integer(counts[0]));
	json_object_set_new(r, "tombstones", json_integer(counts[1]));
	ret = measure(a, d, c, est);
out_free_conn:
	be_conn_free(c);
	return ret ? -1 : 0;
}

static json_t *report_json(struct analyze *a, const struct mig_dir *d)
{
	json_t *rep = json_object(), *kinds = json_object(), *refused;
	json_t *sizes = json_array(), *mtime = json_object();
	long sessions = 0;
	char t[32];
	size_t i;

	json_object_set_new(rep, "dir", json_string(d->path));
	json_object_set_new(rep, "read_underneath_mount",
			    json_boolean(d->underneath));
	json_object_set_new(rep, "prefix", json_string(a->opt.prefix));
	json_object_set_new(rep, "entries", json_integer(a->entries));
	for (i = 0; i < MIG_KIND_COUNT; i++) {
		json_object_set_new(kinds, mig_kind_names[i],
				    json_integer(a->kinds[i]));
		sessions += a->kinds[i];
	}
	json_object_set_new(kinds, "invalid",
			    json_integer(a->status[MIG_BAD_NAME]));
	json_object_set_new(kinds, "local", json_integer(a->status[MIG_LOCAL]));
	json_object_set_new(rep, "kinds", kinds);
	json_object_set_new(rep, "sessions", json_integer(sessions));
	json_object_set_new(rep, "live", json_integer(a->status[MIG_OK]));
	json_object_set_new(rep, "expired",
			    json_integer(a->status[MIG_EXPIRED]));
	json_object_set_new(rep, "empty", json_integer(a->empty));
	json_object_set_new(rep, "bad_cachelib_header",
			    json_integer(a->bad_header));
	refused = json_object();
	for (i = 0; i < MIG_STATUS_COUNT; i++) {
		if (mig_status_is_problem(i))
			json_object_set_new(refused, mig_status_names[i],
					    json_integer(a->status[i]));
	}
	json_object_set_new(rep, "refused", refused);
	json_object_set_new(rep, "examples", a->examples);
	a->examples = NULL;
	for (i = 0; i < N_BUCKETS; i++)
		json_array_append_new(
			sizes, json_pack("{s:s, s:o, s:I}", "range",
					 buckets[i].label, "max",
					 buckets[i].max < 0
						 ? json_null()
						 : json_integer(buckets[i].max),
					 "count", (json_int_t)a->sizes[i]));
	json_object_set_new(rep, "sizes", sizes);
	if (a->dated) {
		json_object_set_new(
			mtime, "oldest",
			json_string(iso_time(a->oldest_ns, t, sizeof(t))));
		json_object_set_new(
			mtime, "newest",
			json_string(iso_time(a->newest_ns, t, sizeof(t))));
	}
	json_object_set_new(rep, "mtime", mtime);
	json_object_set_new(rep, "live_bytes", json_integer(a->live_bytes));
	json_object_set_new(rep, "redis_memory_estimate",
			    json_integer((json_int_t)a->mem_bytes));
	return rep;
}

/* "12.3 MiB" for 'bytes' into 'buf'. */
static const char *human(double bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	size_t u = 0;

	while (bytes >= 1024 && u < 4) {
		bytes /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
	return buf;
}

static long long geti(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static void print_examples(const char *status, const json_t *names)
{
	const json_t *name;
	size_t i;

	json_array_foreach(names, i, name)
		printf("  %-12s '%s'\n", status, json_string_value(name));
}

/* Prints ", symlink 1" after 'sep' unless the count is 0; the next sep. */
static const char *print_count(const char *sep, const char *status,
			       const json_t *count)
{
	if (json_integer_value(count) == 0)
		return sep;
	printf("%s%s %lld", sep, status, (long long)json_integer_value(count));
	return ", ";
}

/* "refused 2  (symlink 1, directory 1)", then the examples. */
static void print_refused(const json_t *refused, const json_t *examples)
{
	const char *sep = "  (", *status;
	long long total = 0;
	const json_t *v;

	json_object_foreach((json_t *)refused, status, v)
		total += json_integer_value(v);
	printf("refused        %lld", total);
	json_object_foreach((json_t *)refused, status, v)
		sep = print_count(sep, status, v);
	printf("%s\n", total ? ")" : "");
	json_object_foreach((json_t *)examples, status, v)
		print_examples(status, v);
}

static void print_table(const json_t *rep)
{
	const json_t *kinds = json_object_get(rep, "kinds");
	const json_t *refused = json_object_get(rep, "refused");
	const json_t *mtime = json_object_get(rep, "mtime");
	const json_t *redis = json_object_get(rep, "redis");
	const json_t *est = json_object_get(rep, "copy_estimate");
	const json_t *v;
	char h[32];
	size_t i;

	printf("directory      %s%s\n",
	       json_string_value(json_object_get(rep, "dir")),
	       json_is_true(json_object_get(rep, "read_underneath_mount"))
		       ? "  (read underneath its sessfs mount)"
		       : "");
	printf("entries        %lld\n", geti(rep, "entries"));
	printf("sessions       %lld  (php %lld, cachelib %lld, django %lld, other %lld)\n",
	       geti(rep, "sessions"), geti(kinds, "php"),
	       geti(kinds, "cachelib"), geti(kinds, "django"),
	       geti(kinds, "other"));
	printf("  live         %lld  (%s)\n", geti(rep, "live"),
	       human((double)geti(rep, "live_bytes"), h, sizeof(h)));
	printf("  expired      %lld  (not copied)\n", geti(rep, "expired"));
	printf("  empty        %lld  (0 bytes: empty sessions, copied)\n",
	       geti(rep, "empty"));
	printf("  bad header   %lld  (cachelib name without a valid expiry header: TTL from mtime)\n",
	       geti(rep, "bad_cachelib_header"));
	printf("host-local     %lld  (temps and cachelib's count file: never copied)\n",
	       geti(kinds, "local"));
	print_refused(refused, json_object_get(rep, "examples"));
	printf("sizes          ");
	json_array_foreach(json_object_get(rep, "sizes"), i, v)
		printf("%s: %lld  ",
		       json_string_value(json_object_get(v, "range")),
		       geti(v, "count"));
	printf("\n");
	if (json_object_size(mtime))
		printf("mtime          oldest %s, newest %s\n",
		       json_string_value(json_object_get(mtime, "oldest")),
		       json_string_value(json_object_get(mtime, "newest")));
	printf("redis memory   %s (estimate for %lld value and meta keys under '%s')\n",
	       human((double)geti(rep, "redis_memory_estimate"), h, sizeof(h)),
	       geti(rep, "live"),
	       json_string_value(json_object_get(rep, "prefix")));
	if (json_object_size(redis)) {
		printf("redis now      %lld values, %lld tombstones under the prefix\n",
		       geti(redis, "values"), geti(redis, "tombstones"));
		if (!json_is_true(json_object_get(redis, "policy_ok")))
			printf("redis policy   %s (copy will refuse it)\n",
			       json_string_value(
				       json_object_get(redis, "policy_error")));
	}
	if (json_is_true(json_object_get(est, "measured")))
		printf("copy time      %.1f s estimated (%.0f sessions/s; timed on %lld: files %.0f/s, Redis %.0f/s from %s)\n",
		       json_real_value(json_object_get(est, "seconds")),
		       json_real_value(json_object_get(est, "rate")),
		       geti(est, "sample"),
		       json_real_value(json_object_get(est, "file_rate")),
		       json_real_value(json_object_get(est, "redis_rate")),
		       json_string_value(json_object_get(est, "method")));
	else
		printf("copy time      not estimated: %s\n",
		       json_string_value(json_object_get(est, "reason")));
}

static int parse_args(struct analyze *a, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "sample", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		MIG_KEY_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, MIG_SHORT_OPTIONS, longopts,
				NULL)) != -1) {
		switch (c) {
		case 'j':
			a->json = true;
			break;
		case 's':
			a->sample_max = strtol(optarg, &end, 10);
			if (*end || end == optarg || a->sample_max < 1 ||
			    a->sample_max > MAX_SAMPLE)
				return error("invalid --sample '%s': 1 to %d",
					     optarg, MAX_SAMPLE);
			break;
		case 'h':
			usage(stdout);
			return 1;
		case '?':
		case ':':
			return mig_bad_option(c, argv, "analyze");
		default:
			if (mig_key_option(&a->opt, c, optarg))
				return -1;
		}
	}
	if (argc - optind < 1 || argc - optind > 2)
		return error(
			"analyze takes DIR and an optional URL; see '" MIG_PROGNAME
			" analyze --help'");
	a->dir_path = argv[optind];
	a->url = argc - optind == 2 ? argv[optind + 1] : NULL;
	return mig_options_finish(&a->opt);
}

int cmd_analyze(int argc, char **argv)
{
	struct analyze a = { .sample_max = DEFAULT_SAMPLE };
	struct mig_dir d;
	json_t *rep = NULL;
	int ret, code = MIG_EXIT_USAGE;
	long i;

	mig_options_init(&a.opt);
	a.examples = json_object();
	ret = parse_args(&a, argc, argv);
	if (ret) {
		code = ret > 0 ? MIG_EXIT_OK : MIG_EXIT_USAGE;
		goto out_release;
	}
	if (mig_dir_open(&d, a.dir_path))
		goto out_release;
	code = MIG_EXIT_DIFF;
	if (walk(&a, &d))
		goto out_close;
	rep = report_json(&a, &d);
	if (redis_section(&a, &d, rep))
		goto out_close;
	if (a.json) {
		json_dumpf(rep, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("\n");
	} else {
		print_table(rep);
	}
	code = MIG_EXIT_OK;
	for (i = 0; i < MIG_STATUS_COUNT; i++) {
		if (mig_status_is_problem(i) && a.status[i])
			code = MIG_EXIT_DIFF;
	}
out_close:
	json_decref(rep);
	mig_dir_close(&d);
out_release:
	for (i = 0; i < a.nsample; i++)
		free(a.sample[i]);
	free(a.sample);
	json_decref(a.examples);
	mig_options_release(&a.opt);
	return code;
}
