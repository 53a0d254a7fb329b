/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon's metrics (metrics.h): lock-free counters and fixed-bucket
 * histograms, the link-time wrappers that time every store call, the
 * renderer of the Prometheus text format 0.0.4, and the small HTTP/1.x
 * server of -o metrics_addr on a thread of its own.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fs_i.h"
#include "backfill.h"
#include "journal.h"
#include "log.h"
#include "lowerstore.h"
#include "metrics.h"
#include "shadow.h"
#include "track.h"

enum fs_m_store {
	FS_M_REDIS = 0,
	FS_M_LOWER,
	FS_M_NSTORES,
};

/* Error kinds (the kind label), from a store call's -errno. */
enum fs_m_err {
	FS_E_TIMEOUT = 0,
	FS_E_REFUSED,
	FS_E_RESET,
	FS_E_PROTOCOL,
	FS_E_DENIED,
	FS_E_NO_SPACE,
	FS_E_NO_MEMORY,
	FS_E_TOO_BIG,
	FS_E_INVALID,
	FS_E_EIO,
	FS_E_OTHER,
	FS_E_NKINDS,
};

static const char *const store_names[FS_M_NSTORES] = { "redis", "lower" };

static const char *const op_names[FS_M_NOPS] = {
	"get",	  "put",  "create", "copyup", "delete",	     "setmeta",
	"rename", "list", "count",  "index",  "legacy_read",
};

static const char *const err_names[FS_E_NKINDS] = {
	"timeout",   "refused", "reset",   "protocol", "denied", "no_space",
	"no_memory", "too_big", "invalid", "eio",      "other",
};

/* The (store, op) pairs the daemon makes: only those are rendered. */
static const bool op_valid[FS_M_NSTORES][FS_M_NOPS] = {
	[FS_M_REDIS] = { [FS_M_GET] = true,
			 [FS_M_PUT] = true,
			 [FS_M_CREATE] = true,
			 [FS_M_COPYUP] = true,
			 [FS_M_DELETE] = true,
			 [FS_M_SETMETA] = true,
			 [FS_M_LIST] = true,
			 [FS_M_COUNT] = true,
			 [FS_M_INDEX] = true },
	[FS_M_LOWER] = { [FS_M_GET] = true,
			 [FS_M_PUT] = true,
			 [FS_M_DELETE] = true,
			 [FS_M_SETMETA] = true,
			 [FS_M_RENAME] = true,
			 [FS_M_LIST] = true,
			 [FS_M_LEGACY_READ] = true },
};

/* The fallbacks of redis-first (route.c): the op label. */
static const enum fs_m_op fallback_ops[] = { FS_M_GET, FS_M_PUT, FS_M_DELETE,
					     FS_M_SETMETA };

/* Upper bounds of the latency buckets, in seconds and in ns: 0.1 ms .. 5 s. */
#define FS_M_BUCKETS 15
static const char *const bucket_le[FS_M_BUCKETS] = {
	"0.0001", "0.00025", "0.0005", "0.001", "0.0025",
	"0.005",  "0.01",    "0.025",  "0.05",	"0.1",
	"0.25",	  "0.5",     "1",      "2.5",	"5",
};
static const int64_t bucket_ns[FS_M_BUCKETS] = {
	100000,	   250000,    500000,	  1000000,    2500000,
	5000000,   10000000,  25000000,	  50000000,   100000000,
	250000000, 500000000, 1000000000, 2500000000, 5000000000,
};

struct fs_m_hist {
	atomic_uint_fast64_t bucket[FS_M_BUCKETS + 1]; /* the last: +Inf */
	atomic_uint_fast64_t sum_ns;
};

/* One connection of the HTTP server. */
struct fs_m_client {
	int fd; /* -1: free */
	int64_t deadline_ns; /* CLOCK_MONOTONIC */
	char in[2048];
	size_t in_len;
	char *out; /* the whole answer once the request is read */
	size_t out_len, out_off;
};

struct fs_metrics {
	struct fs_m_hist ops[FS_M_NSTORES][FS_M_NOPS];
	atomic_uint_fast64_t errors[FS_M_NSTORES][FS_E_NKINDS];
	atomic_uint_fast64_t requests, requests_failed;
	atomic_uint_fast64_t fallbacks[FS_M_NOPS];
	atomic_uint_fast64_t copyups;
	atomic_uint_fast64_t repairs[FS_M_NSTORES];
	atomic_uint_fast64_t breaker_opened;
	atomic_uint_fast64_t track_misses;
	double start_time; /* CLOCK_REALTIME s */

	/* The HTTP server: listen_fd >= 0 once fs_metrics_listen() bound. */
	char *addr; /* as given; NULL: no metrics_addr (or not checked) */
	struct sockaddr_storage ss; /* 'addr' parsed by fs_metrics_check() */
	socklen_t sslen;
	bool loopback;
	int listen_fd;
	pthread_t thread;
	bool started;
	atomic_bool stopping;
	struct fs_m_client clients[FS_METRICS_CLIENTS];
};

/* What the link-time wrappers count into (metrics.h: one per process). */
static struct fs_metrics *_Atomic wrapped;

static void inc(atomic_uint_fast64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static uint64_t get(atomic_uint_fast64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

struct fs_metrics *fs_metrics_new(void)
{
	struct fs_metrics *m = calloc(1, sizeof(*m));
	struct timespec ts;
	size_t i;

	if (!m)
		return NULL;
	clock_gettime(CLOCK_REALTIME, &ts);
	m->start_time = ts.tv_sec + ts.tv_nsec / 1e9;
	m->listen_fd = -1;
	for (i = 0; i < FS_METRICS_CLIENTS; i++)
		m->clients[i].fd = -1;
	atomic_store(&wrapped, m);
	return m;
}

void fs_metrics_free(struct fs_metrics *m)
{
	if (!m)
		return;
	atomic_store(&wrapped, NULL);
	if (m->listen_fd >= 0)
		close(m->listen_fd);
	free(m->addr);
	free(m);
}

/* ---- observing store calls ---- */

static enum fs_m_err err_kind(int ret)
{
	switch (-ret) {
	case ETIMEDOUT:
		return FS_E_TIMEOUT;
	case ECONNREFUSED:
	case EHOSTUNREACH:
	case ENETUNREACH:
		return FS_E_REFUSED;
	case ECONNRESET:
	case ECONNABORTED:
	case EPIPE:
	case ENOTCONN:
		return FS_E_RESET;
	case EPROTO:
		return FS_E_PROTOCOL;
	case EPERM:
	case EACCES:
		return FS_E_DENIED;
	case ENOSPC:
	case EDQUOT:
		return FS_E_NO_SPACE;
	case ENOMEM:
		return FS_E_NO_MEMORY;
	case EFBIG:
		return FS_E_TOO_BIG;
	case EINVAL:
		return FS_E_INVALID;
	case EIO:
		return FS_E_EIO;
	default:
		return FS_E_OTHER;
	}
}

/*
 * Counts one call of 'op' on 'store' begun at 't0' (CLOCK_MONOTONIC ns)
 * with result 'ret'.  "No such name" and "exists already" are answers,
 * not errors.
 */
static void observe(enum fs_m_store store, enum fs_m_op op, int64_t t0, int ret)
{
	struct fs_metrics *m = atomic_load(&wrapped);
	int64_t ns = fs_mono_ns() - t0;
	struct fs_m_hist *h;
	size_t b = 0;

	if (!m)
		return;
	h = &m->ops[store][op];
	while (b < FS_M_BUCKETS && ns > bucket_ns[b])
		b++;
	inc(&h->bucket[b]);
	atomic_fetch_add_explicit(&h->sum_ns, (uint64_t)(ns > 0 ? ns : 0),
				  memory_order_relaxed);
	if (ret < 0 && ret != -ENOENT && ret != -EEXIST)
		inc(&m->errors[store][err_kind(ret)]);
}

/*
 * The wrappers.  The linker sends the daemon's calls of each function
 * 'f' to __wrap_f and names the real one __real_f (ld's --wrap, listed
 * in fs/meson.build): those names are the linker's, not ours.
 */
int __real_be_store_get(struct be_conn *c, const struct be_store_config *sc,
			const char *name, bool want_data, struct be_file *f);
int __wrap_be_store_get(struct be_conn *c, const struct be_store_config *sc,
			const char *name, bool want_data, struct be_file *f);
int __real_be_store_put(struct be_conn *c, const struct be_store_config *sc,
			const char *name, const void *data, size_t len,
			const struct be_meta *meta, enum be_put_mode mode,
			uint64_t *wver, struct be_file *cur);
int __wrap_be_store_put(struct be_conn *c, const struct be_store_config *sc,
			const char *name, const void *data, size_t len,
			const struct be_meta *meta, enum be_put_mode mode,
			uint64_t *wver, struct be_file *cur);
int __real_be_store_delete(struct be_conn *c, const struct be_store_config *sc,
			   const char *name, int64_t last_mtime_ns);
int __wrap_be_store_delete(struct be_conn *c, const struct be_store_config *sc,
			   const char *name, int64_t last_mtime_ns);
int __real_be_store_setmeta(struct be_conn *c, const struct be_store_config *sc,
			    const char *name, const struct be_meta *meta,
			    uint64_t *wver);
int __wrap_be_store_setmeta(struct be_conn *c, const struct be_store_config *sc,
			    const char *name, const struct be_meta *meta,
			    uint64_t *wver);
int __real_be_store_count(struct be_conn *c, const struct be_store_config *sc,
			  long long *n);
int __wrap_be_store_count(struct be_conn *c, const struct be_store_config *sc,
			  long long *n);
int __real_be_store_reindex(struct be_conn *c, const struct be_store_config *sc,
			    const char *const *names, size_t n,
			    long long *added);
int __wrap_be_store_reindex(struct be_conn *c, const struct be_store_config *sc,
			    const char *const *names, size_t n,
			    long long *added);
int __real_be_store_unindex(struct be_conn *c, const struct be_store_config *sc,
			    const char *const *names, size_t n,
			    long long *removed);
int __wrap_be_store_unindex(struct be_conn *c, const struct be_store_config *sc,
			    const char *const *names, size_t n,
			    long long *removed);
int __real_be_store_list(struct be_conn *c, const struct be_store_config *sc,
			 be_list_cb cb, void *arg);
int __wrap_be_store_list(struct be_conn *c, const struct be_store_config *sc,
			 be_list_cb cb, void *arg);
int __real_be_lower_get(int dirfd, const char *name, size_t max_size,
			bool want_data, struct be_file *f);
int __wrap_be_lower_get(int dirfd, const char *name, size_t max_size,
			bool want_data, struct be_file *f);
int __real_be_lower_put(int dirfd, const char *name, const void *data,
			size_t len, const struct be_meta *meta);
int __wrap_be_lower_put(int dirfd, const char *name, const void *data,
			size_t len, const struct be_meta *meta);
int __real_be_lower_delete(int dirfd, const char *name);
int __wrap_be_lower_delete(int dirfd, const char *name);
int __real_be_lower_setmeta(int dirfd, const char *name,
			    const struct be_meta *meta);
int __wrap_be_lower_setmeta(int dirfd, const char *name,
			    const struct be_meta *meta);
int __real_be_lower_rename(int dirfd, const char *from, const char *to,
			   bool noreplace);
int __wrap_be_lower_rename(int dirfd, const char *from, const char *to,
			   bool noreplace);
int __real_be_lower_list(int dirfd, be_list_cb cb, void *arg);
int __wrap_be_lower_list(int dirfd, be_list_cb cb, void *arg);
int __real_fs_lower_read(struct fs *fs, const char *name, struct be_file *f);
int __wrap_fs_lower_read(struct fs *fs, const char *name, struct be_file *f);

int __wrap_be_store_get(struct be_conn *c, const struct be_store_config *sc,
			const char *name, bool want_data, struct be_file *f)
{
	int64_t t0 = fs_mono_ns();
	int ret = __real_be_store_get(c, sc, name, want_data, f);

	observe(FS_M_REDIS, FS_M_GET, t0, ret);
	return ret;
}

int __wrap_be_store_put(struct be_conn *c, const struct be_store_config *sc,
			const char *name, const void *data, size_t len,
			const struct be_meta *meta, enum be_put_mode mode,
			uint64_t *wver, struct be_file *cur)
{
	int64_t t0 = fs_mono_ns();
	int ret = __real_be_store_put(c, sc, name, data, len, meta, mode, wver,
				      cur);

	observe(FS_M_REDIS,
		mode == BE_PUT_CREATE	? FS_M_CREATE
		: mode == BE_PUT_COPYUP ? FS_M_COPYUP
					: FS_M_PUT,
		t0, ret);
	return ret;
}

int __wrap_be_store_delete(struct be_conn *c, const struct be_store_config *sc,
			   const char *name, int64_t last_mtime_ns)
{
	int64_t t0 = fs_mono_ns();
	int ret = __real_be_store_delete(c, sc, name, last_mtime_ns);

	observe(FS_M_REDIS, FS_M_DELETE, t0, ret);
	return ret;
}

int __wrap_be_store_setmeta(struct be_conn *c, const struct be_store_config *sc,
			    const char *name, const struct be_meta *meta,
			    uint64_t *wver)
{
	int64_t t0 = fs_mono_ns();
	int ret = __real_be_store_setmeta(c, sc, name, meta, wver);

	observe(FS_M_REDIS, FS_M_SETMETA, t0, ret);
	return ret;
}

int __wrap_be_store_count(struct be_conn *c, const struct be_store_config *sc,
			  long long *n)
{
	int64_t t0 = fs_mono_ns();
	int ret = __real_be_store_count(c, sc, n);

	observe(FS_M_REDIS, FS_M_COUNT, t0, ret);
	return ret;
}

int __wrap_be_store_reindex(struct be_conn *c, const struct be_store_config *sc,
			    const char *const *names, size_t n,
			    long long *added)
{
	int64_t t0 = fs_mono_ns();
	int ret = __real_be_store_reindex(c, sc, names, n, added);

	observe(FS_M_REDIS, FS_M_INDEX, t0, ret);
	return ret;
}

int __wrap_be_store_unindex(struct be_conn *c, const struct be_store_config *sc,
			    const char *const *names, size_t n,
			    long long *removed)
{
	int64_t t0 = fs_mono_ns();
	int ret = __real_be_store_unindex(c, sc, names, n, removed);

	observe(FS_M_REDIS, FS_M_INDEX, t0, ret);
	return ret;
}

int __wrap_be_store_list(struct be_conn *c, const struct be_store_config *sc,
			 be_list_cb cb, void *arg)
{
	int64_t t0 = fs_mono_ns();
	int ret = __real_be_store_list(c, sc, cb, arg);

	observe(FS_M_REDIS, FS_M_LIST, t0, ret);
	return ret;
}

int __wrap_be_lower_get(int dirfd, const char *name, size_t max_size,
			bool want_data, struct be_file *f)
{
	int64_t t0 = fs_mono_ns();
	int ret = __real_be_lower_get(dirfd, name, max_size, want_data, f);

	observe(FS_M_LOWER, FS_M_GET, t0, ret);
	return ret;
}

int __wrap_be_lower_put(int dirfd, const char *name, const void *data,
			size_t len, const struct be_meta *meta)
{
	int64_t t0 = fs_mono_ns();
	int ret = __real_be_lower_put(dirfd, name, data, len, meta);

	observe(FS_M_LOWER, FS_M_PUT, t0, ret);
	return ret;
}

int __wrap_be_lower_delete(int dirfd, const char *name)
{
	int64_t t0 = fs_mono_ns();
	int ret = __real_be_lower_delete(dirfd, name);

	observe(FS_M_LOWER, FS_M_DELETE, t0, ret);
	return ret;
}

int __wrap_be_lower_setmeta(int dirfd, const char *name,
			    const struct be_meta *meta)
{
	int64_t t0 = fs_mono_ns();
	int ret = __real_be_lower_setmeta(dirfd, name, meta);

	observe(FS_M_LOWER, FS_M_SETMETA, t0, ret);
	return ret;
}

int __wrap_be_lower_rename(int dirfd, const char *from, const char *to,
			   bool noreplace)
{
	int64_t t0 = fs_mono_ns();
	int ret = __real_be_lower_rename(dirfd, from, to, noreplace);

	observe(FS_M_LOWER, FS_M_RENAME, t0, ret);
	return ret;
}

int __wrap_be_lower_list(int dirfd, be_list_cb cb, void *arg)
{
	int64_t t0 = fs_mono_ns();
	int ret = __real_be_lower_list(dirfd, cb, arg);

	observe(FS_M_LOWER, FS_M_LIST, t0, ret);
	return ret;
}

int __wrap_fs_lower_read(struct fs *fs, const char *name, struct be_file *f)
{
	int64_t t0 = fs_mono_ns();
	int ret = __real_fs_lower_read(fs, name, f);

	observe(FS_M_LOWER, FS_M_LEGACY_READ, t0, ret);
	return ret;
}

/* ---- counting calls ---- */

void fs_metrics_request(struct fs *fs, bool failed)
{
	if (!fs->metrics)
		return;
	inc(&fs->metrics->requests);
	if (failed)
		inc(&fs->metrics->requests_failed);
}

void fs_metrics_fallback(struct fs *fs, enum fs_m_op op)
{
	if (fs->metrics && op < FS_M_NOPS)
		inc(&fs->metrics->fallbacks[op]);
}

void fs_metrics_copyup(struct fs *fs)
{
	if (fs->metrics)
		inc(&fs->metrics->copyups);
}

void fs_metrics_repaired(struct fs *fs, unsigned int stores)
{
	if (!fs->metrics)
		return;
	if (stores & BE_J_REDIS)
		inc(&fs->metrics->repairs[FS_M_REDIS]);
	if (stores & BE_J_LOWER)
		inc(&fs->metrics->repairs[FS_M_LOWER]);
}

void fs_metrics_breaker_opened(struct fs *fs)
{
	if (fs->metrics)
		inc(&fs->metrics->breaker_opened);
}

bool fs_metrics_track_miss(struct fs *fs)
{
	if (fs->metrics && fs->tracker)
		inc(&fs->metrics->track_misses);
	return false;
}

/* ---- rendering ---- */

struct outbuf {
	char *buf;
	size_t len, cap;
	bool failed; /* ENOMEM: the text is incomplete */
};

static void out_printf(struct outbuf *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Makes room for 'more' bytes and a NUL; false (and 'failed') on ENOMEM. */
static bool out_reserve(struct outbuf *o, size_t more)
{
	size_t cap = (o->len + more + 1) * 2;
	char *bigger;

	if (o->cap - o->len > more)
		return true;
	bigger = realloc(o->buf, cap);
	if (!bigger) {
		o->failed = true;
		return false;
	}
	o->buf = bigger;
	o->cap = cap;
	return true;
}

static void out_printf(struct outbuf *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->failed || !out_reserve(o, 256))
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n >= o->cap - o->len && out_reserve(o, n)) {
		va_start(ap, fmt);
		n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
	}
	if (n < 0 || (size_t)n >= o->cap - o->len) {
		o->failed = true;
		return;
	}
	o->len += (size_t)n;
}

static void family(struct outbuf *o, const char *name, const char *type,
		   const char *help)
{
	out_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void histograms(struct outbuf *o, struct fs_metrics *m)
{
	const char *name = "sessfs_store_operation_duration_seconds";
	size_t s, op, b;

	family(o, name, "histogram",
	       "Duration of the daemon's calls of a store (redis or the lower dir), by operation, retries included.");
	for (s = 0; s < FS_M_NSTORES; s++) {
		for (op = 0; op < FS_M_NOPS; op++) {
			struct fs_m_hist *h = &m->ops[s][op];
			uint64_t cum = 0;

			if (!op_valid[s][op])
				continue;
			for (b = 0; b <= FS_M_BUCKETS; b++) {
				cum += get(&h->bucket[b]);
				out_printf(
					o,
					"%s_bucket{store=\"%s\",op=\"%s\",le=\"%s\"} %llu\n",
					name, store_names[s], op_names[op],
					b < FS_M_BUCKETS ? bucket_le[b]
							 : "+Inf",
					(unsigned long long)cum);
			}
			out_printf(o, "%s_sum{store=\"%s\",op=\"%s\"} %.9f\n",
				   name, store_names[s], op_names[op],
				   get(&h->sum_ns) / 1e9);
			out_printf(o, "%s_count{store=\"%s\",op=\"%s\"} %llu\n",
				   name, store_names[s], op_names[op],
				   (unsigned long long)cum);
		}
	}
}

static void counters(struct outbuf *o, struct fs_metrics *m)
{
	size_t s, k;

	family(o, "sessfs_store_errors_total", "counter",
	       "Failed calls of a store by kind of error (not found and exists already are answers, not errors).");
	for (s = 0; s < FS_M_NSTORES; s++)
		for (k = 0; k < FS_E_NKINDS; k++)
			out_printf(
				o,
				"sessfs_store_errors_total{store=\"%s\",kind=\"%s\"} %llu\n",
				store_names[s], err_names[k],
				(unsigned long long)get(&m->errors[s][k]));
	family(o, "sessfs_requests_total", "counter",
	       "Session operations routed for clients (the mode change's error rate counts these).");
	out_printf(o, "sessfs_requests_total %llu\n",
		   (unsigned long long)get(&m->requests));
	family(o, "sessfs_requests_failed_total", "counter",
	       "Session operations that failed for the client (not found and exists already excepted).");
	out_printf(o, "sessfs_requests_failed_total %llu\n",
		   (unsigned long long)get(&m->requests_failed));
	family(o, "sessfs_fallbacks_total", "counter",
	       "Operations redis-first served from the lower dir because redis was down (names this host wrote last).");
	for (k = 0; k < sizeof(fallback_ops) / sizeof(fallback_ops[0]); k++)
		out_printf(o, "sessfs_fallbacks_total{op=\"%s\"} %llu\n",
			   op_names[fallback_ops[k]],
			   (unsigned long long)get(
				   &m->fallbacks[fallback_ops[k]]));
	family(o, "sessfs_copyups_total", "counter",
	       "Legacy files of the lower dir copied up into redis.");
	out_printf(o, "sessfs_copyups_total %llu\n",
		   (unsigned long long)get(&m->copyups));
	family(o, "sessfs_repairs_total", "counter",
	       "Names the repair thread brought up to date, by the store that was behind.");
	for (s = 0; s < FS_M_NSTORES; s++)
		out_printf(o, "sessfs_repairs_total{store=\"%s\"} %llu\n",
			   store_names[s],
			   (unsigned long long)get(&m->repairs[s]));
	family(o, "sessfs_redis_breaker_opened_total", "counter",
	       "Times the circuit breaker marked redis down.");
	out_printf(o, "sessfs_redis_breaker_opened_total %llu\n",
		   (unsigned long long)get(&m->breaker_opened));
}

static size_t open_handles(struct fs *fs, size_t *inodes)
{
	struct fs_handle *h;
	size_t n = 0;

	pthread_mutex_lock(&fs->tab_lock);
	for (h = fs->handles; h; h = h->next)
		n++;
	*inodes = fs->name_count;
	pthread_mutex_unlock(&fs->tab_lock);
	return n;
}

static void process_memory(struct outbuf *o)
{
	unsigned long long size = 0, rss = 0;
	long page = sysconf(_SC_PAGESIZE);
	FILE *f = fopen("/proc/self/statm", "re");

	if (f) {
		if (fscanf(f, "%llu %llu", &size, &rss) != 2)
			size = rss = 0;
		fclose(f);
	}
	family(o, "process_resident_memory_bytes", "gauge",
	       "Resident memory of the daemon (/proc/self/statm).");
	out_printf(o, "process_resident_memory_bytes %llu\n",
		   rss * (unsigned long long)page);
	family(o, "process_virtual_memory_bytes", "gauge",
	       "Virtual memory of the daemon (/proc/self/statm).");
	out_printf(o, "process_virtual_memory_bytes %llu\n",
		   size * (unsigned long long)page);
}

static void gauges(struct outbuf *o, struct fs *fs)
{
	static const enum fs_mode modes[] = { FS_MODE_FILES, FS_MODE_DUAL_WRITE,
					      FS_MODE_REDIS_FIRST,
					      FS_MODE_REDIS_ONLY };
	enum fs_mode mode = fs_mode_get(fs);
	struct be_tracker *t = fs->tracker;
	size_t i, handles, inodes;

	family(o, "sessfs_build_info", "gauge",
	       "Always 1: the daemon's version, libfuse's and the layout of the data in redis.");
	out_printf(
		o,
		"sessfs_build_info{version=\"%s\",libfuse=\"%s\",layout=\"%d\"} 1\n",
		PACKAGE_VERSION, fuse_pkgversion(), BE_LAYOUT_VERSION);
	family(o, "process_start_time_seconds", "gauge",
	       "When the daemon started, in seconds since the epoch.");
	out_printf(o, "process_start_time_seconds %.3f\n",
		   fs->metrics->start_time);
	family(o, "sessfs_mode", "gauge",
	       "The migration mode of the mount: 1 for the current one.");
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		out_printf(o, "sessfs_mode{mode=\"%s\"} %d\n",
			   fs_mode_name(modes[i]), modes[i] == mode);
	family(o, "sessfs_redis_up", "gauge",
	       "1 while the circuit breaker has redis up, 0 while it fails fast.");
	out_printf(o, "sessfs_redis_up %d\n", !fs_route_redis_down(fs));
	family(o, "sessfs_journal_names", "gauge",
	       "Names in the repair journal: one store is behind for them.");
	out_printf(o, "sessfs_journal_names %zu\n",
		   fs->rt.journal ? be_journal_count(fs->rt.journal) : 0);
	family(o, "sessfs_fenced_names", "gauge",
	       "Names fenced after a failed read: writes to them fail until a read succeeds.");
	out_printf(o, "sessfs_fenced_names %zu\n",
		   fs->rt.journal ? fs_nameset_count(&fs->rt.fenced) : 0);
	family(o, "sessfs_lower_current", "gauge",
	       "1 when the lower dir holds every current session (a rollback to files may go).");
	out_printf(o, "sessfs_lower_current %d\n", fs->lower_current);
	handles = open_handles(fs, &inodes);
	family(o, "sessfs_inodes", "gauge", "Named inodes in memory.");
	out_printf(o, "sessfs_inodes %zu\n", inodes);
	family(o, "sessfs_open_handles", "gauge", "Open file handles.");
	out_printf(o, "sessfs_open_handles %zu\n", handles);
	family(o, "sessfs_tracking_enabled", "gauge",
	       "1 with -o cache=tracking.");
	out_printf(o, "sessfs_tracking_enabled %d\n", t != NULL);
	family(o, "sessfs_tracking_up", "gauge",
	       "1 while the tracker is subscribed to redis's invalidations.");
	out_printf(o, "sessfs_tracking_up %d\n", t && be_tracker_up(t));
	family(o, "sessfs_tracking_hits_total", "counter",
	       "Lookups and opens answered from memory (cache=tracking).");
	out_printf(o, "sessfs_tracking_hits_total %llu\n",
		   (unsigned long long)atomic_load(&fs->track_hits));
	family(o, "sessfs_tracking_misses_total", "counter",
	       "Lookups and opens tracking could not answer (cache=tracking).");
	out_printf(o, "sessfs_tracking_misses_total %llu\n",
		   (unsigned long long)get(&fs->metrics->track_misses));
	family(o, "sessfs_tracking_invalidations_total", "counter",
	       "Invalidations redis sent the tracker (keys).");
	out_printf(o, "sessfs_tracking_invalidations_total %llu\n",
		   (unsigned long long)(t ? be_tracker_invalidations(t) : 0));
	process_memory(o);
}

/* The online backfill and the shadow reads (backfill.h, shadow.h). */
static void migration(struct outbuf *o, struct fs *fs)
{
	static const char *const states[] = { "idle", "running", "paused",
					      "done" };
	struct fs_backfill_counts n;
	struct fs_shadow_counts sh;
	const char *state = fs_backfill_counts(fs, &n);
	size_t i;

	family(o, "sessfs_backfill_state", "gauge",
	       "The online backfill (copy --mount): 1 for its state now.");
	for (i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		out_printf(o, "sessfs_backfill_state{state=\"%s\"} %d\n",
			   states[i], strcmp(states[i], state) == 0);
	family(o, "sessfs_backfill_names", "gauge",
	       "Names of the backfill's run: total (done and to do) and done.");
	out_printf(o, "sessfs_backfill_names{of=\"total\"} %llu\n",
		   (unsigned long long)n.total);
	out_printf(o, "sessfs_backfill_names{of=\"done\"} %llu\n",
		   (unsigned long long)n.done);
	family(o, "sessfs_backfill_results", "gauge",
	       "What the backfill's run did with the names it handled, by result.");
	out_printf(o, "sessfs_backfill_results{result=\"copied\"} %llu\n",
		   (unsigned long long)n.copied);
	out_printf(o, "sessfs_backfill_results{result=\"existing\"} %llu\n",
		   (unsigned long long)n.existing);
	out_printf(o, "sessfs_backfill_results{result=\"tombstone\"} %llu\n",
		   (unsigned long long)n.tombstone);
	out_printf(o, "sessfs_backfill_results{result=\"expired\"} %llu\n",
		   (unsigned long long)n.expired);
	out_printf(o, "sessfs_backfill_results{result=\"skipped\"} %llu\n",
		   (unsigned long long)n.skipped);
	out_printf(o, "sessfs_backfill_results{result=\"vanished\"} %llu\n",
		   (unsigned long long)n.vanished);
	out_printf(o, "sessfs_backfill_results{result=\"error\"} %llu\n",
		   (unsigned long long)n.errors);
	fs_shadow_counts(fs, &sh);
	family(o, "sessfs_shadow_reads_total", "counter",
	       "Shadow reads in dual-write (-o shadow), by what the comparison with redis found.");
	out_printf(o, "sessfs_shadow_reads_total{result=\"consistent\"} %llu\n",
		   (unsigned long long)sh.consistent);
	out_printf(o, "sessfs_shadow_reads_total{result=\"differ\"} %llu\n",
		   (unsigned long long)sh.differ);
	out_printf(o, "sessfs_shadow_reads_total{result=\"missing\"} %llu\n",
		   (unsigned long long)sh.missing);
	out_printf(o, "sessfs_shadow_reads_total{result=\"error\"} %llu\n",
		   (unsigned long long)sh.errors);
	family(o, "sessfs_shadow_rechecks_cleared_total", "counter",
	       "Shadow-read mismatches that a second read of both stores did not confirm.");
	out_printf(o, "sessfs_shadow_rechecks_cleared_total %llu\n",
		   (unsigned long long)sh.cleared);
}

char *fs_metrics_render(struct fs *fs, size_t *len)
{
	struct outbuf o = { 0 };

	if (!fs->metrics)
		return NULL;
	gauges(&o, fs);
	migration(&o, fs);
	counters(&o, fs->metrics);
	histograms(&o, fs->metrics);
	if (o.failed || !o.buf) {
		free(o.buf);
		return NULL;
	}
	*len = o.len;
	return o.buf;
}

/* ---- the address ---- */

/*
 * Parses 'addr' (metrics.h) into 'ss'; '*loopback' says whether it is a
 * loopback address.  0, or -1 with the reason in 'why'.
 */
static int parse_addr(const char *addr, struct sockaddr_storage *ss,
		      socklen_t *sslen, bool *loopback, char *why,
		      size_t whylen)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	const char *colon = strrchr(addr, ':'), *port_s;
	char host[64];
	size_t hlen;
	char *end;
	long port;

	port_s = colon ? colon + 1 : addr;
	hlen = colon ? (size_t)(colon - addr) : 0;
	errno = 0;
	port = strtol(port_s, &end, 10);
	if (!*port_s || *end || errno || port < 1 || port > 65535 ||
	    port_s[0] == '+' || port_s[0] == '-' || port_s[0] == ' ') {
		snprintf(why, whylen, "expected HOST:PORT with a port 1-65535");
		return -1;
	}
	if (hlen >= sizeof(host)) {
		snprintf(why, whylen, "the host is too long");
		return -1;
	}
	memcpy(host, addr, hlen);
	host[hlen] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (hlen == 0 || strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	if (host[0] == '[') {
		if (hlen < 3 || host[hlen - 1] != ']') {
			snprintf(
				why, whylen,
				"an IPv6 address goes in brackets: [::1]:PORT");
			return -1;
		}
		host[hlen - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &in6->sin6_addr) != 1) {
			snprintf(why, whylen, "'%s' is not an IPv6 address",
				 host + 1);
			return -1;
		}
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*sslen = sizeof(*in6);
		*loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
			    (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) &&
			     in6->sin6_addr.s6_addr[12] == 127);
		return 0;
	}
	if (strchr(host, ':')) {
		snprintf(why, whylen,
			 "an IPv6 address goes in brackets: [::1]:PORT");
		return -1;
	}
	if (inet_pton(AF_INET, host, &in4->sin_addr) != 1) {
		snprintf(
			why, whylen,
			"the host must be an IP address or localhost (no names: a name must not open the metrics to the network)");
		return -1;
	}
	in4->sin_family = AF_INET;
	in4->sin_port = htons((uint16_t)port);
	*sslen = sizeof(*in4);
	*loopback = (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
	return 0;
}

int fs_metrics_check(struct fs *fs)
{
	struct fs_metrics *m = fs->metrics;
	const char *addr = fs->cfg.metrics_addr;
	char why[256];

	if (!addr)
		return 0;
	if (!m) {
		fprintf(stderr, "sessfs: out of memory\n");
		return -1;
	}
	if (parse_addr(addr, &m->ss, &m->sslen, &m->loopback, why,
		       sizeof(why)) < 0) {
		fprintf(stderr,
			"sessfs: invalid metrics_addr '%s': %s; see 'sessfs -h' for usage\n",
			addr, why);
		return -1;
	}
	m->addr = strdup(addr);
	if (!m->addr) {
		fprintf(stderr, "sessfs: out of memory\n");
		return -1;
	}
	return 0;
}

int fs_metrics_listen(struct fs *fs)
{
	struct fs_metrics *m = fs->metrics;
	int fd, one = 1;

	if (!m || !m->addr)
		return 0;
	fd = socket(m->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&m->ss, m->sslen) < 0 ||
	    listen(fd, 16) < 0) {
		fprintf(stderr,
			"sessfs: cannot listen on metrics_addr '%s': %s\n",
			m->addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	m->listen_fd = fd;
	if (!m->loopback)
		LOG_INFO(
			"metrics on '%s' are reachable from the network, without authentication",
			m->addr);
	return 0;
}

/* ---- the HTTP server ---- */

static void client_close(struct fs_m_client *cl)
{
	close(cl->fd);
	free(cl->out);
	memset(cl, 0, sizeof(*cl));
	cl->fd = -1;
}

/* Sets the answer of 'cl': status line, headers and 'body' (stolen). */
static void client_answer(struct fs_m_client *cl, const char *version,
			  const char *status, const char *extra,
			  const char *type, char *body, size_t body_len)
{
	char *head = NULL;
	int n;

	n = asprintf(
		&head,
		"%s %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n",
		version, status, type, body_len, extra);
	if (n < 0) {
		free(body);
		return;
	}
	cl->out = malloc((size_t)n + body_len);
	if (cl->out) {
		memcpy(cl->out, head, (size_t)n);
		if (body_len)
			memcpy(cl->out + n, body, body_len);
		cl->out_len = (size_t)n + body_len;
		cl->out_off = 0;
	}
	free(head);
	free(body);
}

static void client_answer_text(struct fs_m_client *cl, const char *version,
			       const char *status, const char *extra,
			       const char *text)
{
	char *body = strdup(text);

	client_answer(cl, version, status, extra, "text/plain; charset=utf-8",
		      body, body ? strlen(body) : 0);
}

static void client_answer_metrics(struct fs *fs, struct fs_m_client *cl,
				  const char *version)
{
	size_t len = 0;
	char *text = fs_metrics_render(fs, &len);

	if (!text) {
		client_answer_text(cl, version, "503 Service Unavailable", "",
				   "out of memory\n");
		return;
	}
	client_answer(cl, version, "200 OK", "",
		      "text/plain; version=0.0.4; charset=utf-8", text, len);
}

/*
 * Answers the request in cl->in (complete: ends with an empty line).
 * Only the request line matters: GET /metrics, with or without a query.
 */
static void client_request(struct fs *fs, struct fs_m_client *cl)
{
	char *line = cl->in, *sp1, *sp2, *eol, *q;
	const char *version = "HTTP/1.1";
	size_t plen;

	eol = strpbrk(line, "\r\n");
	if (eol)
		*eol = '\0';
	sp1 = strchr(line, ' ');
	sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || strchr(sp2 + 1, ' ') ||
	    (strcmp(sp2 + 1, "HTTP/1.0") != 0 &&
	     strcmp(sp2 + 1, "HTTP/1.1") != 0)) {
		client_answer_text(cl, version, "400 Bad Request", "",
				   "bad request\n");
		return;
	}
	version = strcmp(sp2 + 1, "HTTP/1.0") == 0 ? "HTTP/1.0" : "HTTP/1.1";
	*sp1 = *sp2 = '\0';
	q = strchr(sp1 + 1, '?');
	plen = q ? (size_t)(q - (sp1 + 1)) : strlen(sp1 + 1);
	if (strcmp(line, "HEAD") == 0) {
		/* An answer to HEAD has no body. */
		client_answer(cl, version, "405 Method Not Allowed",
			      "Allow: GET\r\n", "text/plain; charset=utf-8",
			      NULL, 0);
		return;
	}
	if (strcmp(line, "GET") != 0) {
		client_answer_text(cl, version, "405 Method Not Allowed",
				   "Allow: GET\r\n", "only GET /metrics\n");
		return;
	}
	if (plen != 8 || memcmp(sp1 + 1, "/metrics", 8) != 0) {
		client_answer_text(cl, version, "404 Not Found", "",
				   "not found: try GET /metrics\n");
		return;
	}
	client_answer_metrics(fs, cl, version);
}

/* Reads what 'cl' sent; answers once the header is complete. */
static void client_read(struct fs *fs, struct fs_m_client *cl)
{
	ssize_t n = recv(cl->fd, cl->in + cl->in_len,
			 sizeof(cl->in) - 1 - cl->in_len, 0);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_close(cl);
		return;
	}
	cl->in_len += (size_t)n;
	cl->in[cl->in_len] = '\0';
	if (strstr(cl->in, "\r\n\r\n") || strstr(cl->in, "\n\n")) {
		client_request(fs, cl);
		if (!cl->out)
			client_close(cl);
	} else if (cl->in_len == sizeof(cl->in) - 1) {
		client_answer_text(cl, "HTTP/1.1",
				   "431 Request Header Fields Too Large", "",
				   "request too large\n");
		if (!cl->out)
			client_close(cl);
	}
}

static void client_write(struct fs_m_client *cl)
{
	ssize_t n = send(cl->fd, cl->out + cl->out_off,
			 cl->out_len - cl->out_off, MSG_NOSIGNAL);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_close(cl);
		return;
	}
	cl->out_off += (size_t)n;
	if (cl->out_off == cl->out_len)
		client_close(cl);
}

static void accept_one(struct fs_metrics *m)
{
	size_t i;
	int fd;

	for (i = 0; i < FS_METRICS_CLIENTS; i++)
		if (m->clients[i].fd < 0)
			break;
	if (i == FS_METRICS_CLIENTS)
		return;
	fd = accept4(m->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	m->clients[i].fd = fd;
	m->clients[i].deadline_ns = fs_mono_ns() + FS_METRICS_IO_MS * 1000000LL;
}

static void *serve_thread(void *arg)
{
	struct fs *fs = arg;
	struct fs_metrics *m = fs->metrics;
	struct pollfd pfd[FS_METRICS_CLIENTS + 1];
	int idx[FS_METRICS_CLIENTS + 1];

	while (!atomic_load(&m->stopping)) {
		int64_t now = fs_mono_ns();
		size_t i, n = 0, used = 0;

		for (i = 0; i < FS_METRICS_CLIENTS; i++) {
			struct fs_m_client *cl = &m->clients[i];

			if (cl->fd < 0)
				continue;
			if (now >= cl->deadline_ns) {
				client_close(cl);
				continue;
			}
			used++;
			pfd[n].fd = cl->fd;
			pfd[n].events = cl->out ? POLLOUT : POLLIN;
			pfd[n].revents = 0;
			idx[n++] = (int)i;
		}
		/* Full: new connections wait in the listen backlog. */
		if (used < FS_METRICS_CLIENTS) {
			pfd[n].fd = m->listen_fd;
			pfd[n].events = POLLIN;
			pfd[n].revents = 0;
			idx[n++] = -1;
		}
		if (poll(pfd, n, 100) <= 0)
			continue;
		for (i = 0; i < n; i++) {
			struct fs_m_client *cl;

			if (!pfd[i].revents)
				continue;
			if (idx[i] < 0) {
				accept_one(m);
				continue;
			}
			cl = &m->clients[idx[i]];
			if (cl->out)
				client_write(cl);
			else
				client_read(fs, cl);
		}
	}
	return NULL;
}

int fs_metrics_start(struct fs *fs)
{
	struct fs_metrics *m = fs->metrics;

	if (!m || m->listen_fd < 0)
		return 0;
	if (pthread_create(&m->thread, NULL, serve_thread, fs) != 0)
		return -EAGAIN;
	m->started = true;
	LOG_DEBUG("metrics served on '%s'", m->addr ? m->addr : "?");
	return 0;
}

void fs_metrics_stop(struct fs *fs)
{
	struct fs_metrics *m = fs->metrics;
	size_t i;

	if (!m || !m->started)
		return;
	atomic_store(&m->stopping, true);
	pthread_join(m->thread, NULL);
	m->started = false;
	for (i = 0; i < FS_METRICS_CLIENTS; i++)
		if (m->clients[i].fd >= 0)
			client_close(&m->clients[i]);
}
