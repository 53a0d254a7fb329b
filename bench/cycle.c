/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cycle: the session-cycle driver of the sessfs benchmarks.  It runs the
 * file operations that PHP's `files` handler and cachelib (Flask-Session)
 * make on a session directory, in threads, times every operation with
 * clock_gettime, and prints one JSON object: per operation the count,
 * errors, median, p99 and mean latency, and per run the sessions (cycles)
 * and operations per second.  bench/run drives it; it knows nothing of
 * FUSE or Redis, so the same run measures a plain directory, the floor
 * and sessfs.  A benchmark, never a test: it reports, it asserts nothing.
 *
 * One cycle is the life of one session (docs: /work/shared/CLIENTS.md):
 *   create   open(O_RDWR|O_CREAT|O_EXCL, 0600), pwrite, close
 *   read     open(O_RDWR), fstat, pread(st_size)     (PHP, fd kept)
 *   rewrite  ftruncate(0), pwrite, close             (PHP's save)
 *   replace  mkstemp-style temp, write, close, rename onto the session
 *   touch    utimensat(path, NULL)                   (PHP lazy_write)
 *   unlink   unlink                                  (logout, GC)
 *
 * Modes:
 *   cycle [opts] DIR              the cycle above, in --threads threads
 *   cycle --existing N [opts] DIR open, fstat, pread, close of random names
 *                                 "sess_sc%024u" below N (bench/run preloads
 *                                 Redis with those names)
 *   cycle --ping HOST:PORT        Redis PING round trips on one connection
 * With --mark, each operation is preceded by an fstatfs() of DIR (one
 * STATFS request in a FUSE debug log) and, with --mark-redis HOST:PORT, an
 * "ECHO mark-<op>" to Redis (one line in MONITOR), so that bench/run can
 * count FUSE requests and Redis commands per operation.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#define CY_MAX_THREADS	 256
#define CY_MARK_PAUSE_US 2000 /* lets async requests (RELEASE) drain */

enum cy_op {
	OP_CREATE,
	OP_READ,
	OP_REWRITE,
	OP_REPLACE,
	OP_TOUCH,
	OP_UNLINK,
	OP_COUNT,
	OP_OPENREAD = 0, /* --existing: the only operation */
};

static const char *const cycle_names[OP_COUNT] = {
	"create", "read", "rewrite", "replace", "touch", "unlink",
};

/* A growable array of latencies in ns. */
struct cy_samples {
	uint64_t *v;
	size_t n;
	size_t cap;
};

struct cy_config {
	const char *dir;
	int threads;
	double duration; /* seconds measured */
	double warmup; /* seconds run before, not recorded */
	long cycles; /* per thread; 0: run for 'duration' */
	size_t size; /* bytes of a session */
	unsigned long existing; /* --existing N */
	bool mark;
	const char *mark_redis; /* HOST:PORT or NULL */
	char tag[16]; /* makes names unique per run */
};

struct cy_thread {
	pthread_t tid;
	int id;
	const struct cy_config *cfg;
	struct cy_samples lat[OP_COUNT];
	struct cy_samples cycle;
	unsigned long errors[OP_COUNT];
	char first_error[160];
	unsigned long warm; /* cycles (or reads) of the warm-up */
	uint64_t rng;
	int dirfd; /* for --mark */
	int redis_fd; /* for --mark-redis */
};

static pthread_barrier_t start_barrier;
static struct timespec t_start; /* of the measured phase */
static struct timespec t_end;

static uint64_t ts_ns(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * 1000000000ULL + (uint64_t)ts->tv_nsec;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts_ns(&ts);
}

static int samples_add(struct cy_samples *s, uint64_t ns)
{
	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 4096;
		uint64_t *p = realloc(s->v, ncap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		s->v = p;
		s->cap = ncap;
	}
	s->v[s->n++] = ns;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile 'q' (0..1] of the sorted 'v'. */
static double pct_us(const uint64_t *v, size_t n, double q)
{
	size_t k;

	if (!n)
		return 0;
	k = (size_t)(q * (double)n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return (double)v[k - 1] / 1000.0;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

static void note_error(struct cy_thread *t, enum cy_op op, const char *what,
		       const char *name)
{
	int err = errno;

	t->errors[op]++;
	if (!t->first_error[0])
		snprintf(t->first_error, sizeof(t->first_error),
			 "%s: %s '%s': %s",
			 t->cfg->existing ? "openread" : cycle_names[op], what,
			 name, strerror(err));
}

/* Connects to "HOST:PORT" with TCP_NODELAY; -1 with a message on error. */
static int tcp_connect(const char *hostport)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	char host[256];
	const char *colon = strrchr(hostport, ':');
	int fd = -1, one = 1;

	if (!colon || (size_t)(colon - hostport) >= sizeof(host)) {
		fprintf(stderr, "cycle: invalid HOST:PORT '%s'\n", hostport);
		return -1;
	}
	memcpy(host, hostport, colon - hostport);
	host[colon - hostport] = '\0';
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0) {
		fprintf(stderr, "cycle: cannot resolve '%s'\n", hostport);
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		fprintf(stderr, "cycle: cannot connect to '%s': %s\n", hostport,
			strerror(errno));
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* Sends 'cmd' and reads one reply line; 0 or -1. */
static int redis_roundtrip(int fd, const char *cmd, size_t len)
{
	char buf[256];
	size_t got = 0;

	if (write(fd, cmd, len) != (ssize_t)len)
		return -1;
	while (got == 0 || buf[got - 1] != '\n') {
		ssize_t n = read(fd, buf + got, sizeof(buf) - got);

		if (n <= 0)
			return -1;
		got += (size_t)n;
		if (got == sizeof(buf))
			got = 1; /* keep reading to the end of the line */
	}
	return 0;
}

/* The --mark markers before operation 'op'. */
static void mark(struct cy_thread *t, enum cy_op op)
{
	char cmd[96];
	struct statfs sf;
	int len;

	usleep(CY_MARK_PAUSE_US);
	if (t->redis_fd >= 0) {
		len = snprintf(cmd, sizeof(cmd),
			       "*2\r\n$4\r\nECHO\r\n$%zu\r\nmark-%s\r\n",
			       strlen(cycle_names[op]) + 5, cycle_names[op]);
		redis_roundtrip(t->redis_fd, cmd, (size_t)len);
	}
	fstatfs(t->dirfd, &sf);
}

/*
 * Runs the operation 'op' of one cycle on 'path' ('tmp' for the replace
 * temp); '*fd' carries the handle from read to rewrite.  0 or -1 (counted).
 */
static int run_op(struct cy_thread *t, enum cy_op op, const char *path,
		  const char *tmp, const char *data, char *buf, int *fd)
{
	size_t size = t->cfg->size;
	struct stat st;
	int f;

	switch (op) {
	case OP_CREATE:
		f = open(path,
			 O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			 0600);
		if (f < 0)
			break;
		if (pwrite(f, data, size, 0) != (ssize_t)size) {
			note_error(t, op, "pwrite", path);
			close(f);
			return -1;
		}
		if (close(f) == 0)
			return 0;
		break;
	case OP_READ:
		*fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (*fd < 0)
			break;
		if (fstat(*fd, &st) < 0)
			break;
		if ((size_t)st.st_size != size) {
			errno = EIO; /* someone else's bytes, or none */
			break;
		}
		errno = 0;
		if (pread(*fd, buf, size, 0) != (ssize_t)size) {
			if (errno == 0)
				errno = EIO;
			break;
		}
		return 0;
	case OP_REWRITE:
		if (ftruncate(*fd, 0) < 0 ||
		    pwrite(*fd, data, size, 0) != (ssize_t)size) {
			note_error(t, op, "write", path);
			close(*fd);
			*fd = -1;
			return -1;
		}
		f = close(*fd);
		*fd = -1;
		if (f == 0)
			return 0;
		break;
	case OP_REPLACE:
		f = open(tmp,
			 O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			 0600);
		if (f < 0) {
			note_error(t, op, "open", tmp);
			return -1;
		}
		if (write(f, data, size) != (ssize_t)size) {
			note_error(t, op, "write", tmp);
			close(f);
			unlink(tmp);
			return -1;
		}
		if (close(f) < 0 || rename(tmp, path) < 0) {
			note_error(t, op, "rename", tmp);
			unlink(tmp);
			return -1;
		}
		return 0;
	case OP_TOUCH:
		if (utimensat(AT_FDCWD, path, NULL, 0) == 0)
			return 0;
		break;
	case OP_UNLINK:
		if (unlink(path) == 0)
			return 0;
		break;
	default:
		break;
	}
	note_error(t, op, cycle_names[op], path);
	if (op == OP_READ && *fd >= 0) {
		close(*fd);
		*fd = -1;
	}
	return -1;
}

/* One session's life; 'record' says whether its latencies count. */
static void one_cycle(struct cy_thread *t, uint64_t seq, const char *data,
		      char *buf, bool record)
{
	char path[4096], tmp[4096];
	uint64_t c0 = now_ns(), t0, t1;
	int op, fd = -1;
	bool ok = true, created = false;

	/* PHP: "sess_" + 26 characters; cachelib: tmp + 8 + .__wz_cache */
	snprintf(path, sizeof(path), "%s/sess_%s%02d%012llu", t->cfg->dir,
		 t->cfg->tag, t->id % 100, (unsigned long long)seq);
	snprintf(tmp, sizeof(tmp), "%s/tmp%02d%06llx.__wz_cache", t->cfg->dir,
		 t->id % 100, (unsigned long long)(seq & 0xffffff));
	for (op = 0; op < OP_COUNT; op++) {
		/* After a failure only the unlink runs, to clean up. */
		if (!ok && (op != OP_UNLINK || !created))
			continue;
		if (t->cfg->mark)
			mark(t, op);
		t0 = now_ns();
		if (run_op(t, op, path, tmp, data, buf, &fd) < 0) {
			ok = false;
			continue;
		}
		if (op == OP_CREATE)
			created = true;
		t1 = now_ns();
		if (record)
			samples_add(&t->lat[op], t1 - t0);
	}
	if (record && ok)
		samples_add(&t->cycle, now_ns() - c0);
}

/* --existing: open, fstat, pread, close of a random preloaded name. */
static void one_read(struct cy_thread *t, char *buf, bool record)
{
	unsigned long i = (unsigned long)(xorshift(&t->rng) % t->cfg->existing);
	char path[4096];
	struct stat st;
	uint64_t t0;
	int fd;

	snprintf(path, sizeof(path), "%s/sess_sc%024lu", t->cfg->dir, i);
	t0 = now_ns();
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		note_error(t, OP_OPENREAD, "open", path);
		return;
	}
	if (fstat(fd, &st) < 0 || st.st_size > (off_t)(1 << 20) ||
	    pread(fd, buf, st.st_size, 0) != st.st_size) {
		note_error(t, OP_OPENREAD, "read", path);
		close(fd);
		return;
	}
	if (close(fd) < 0) {
		note_error(t, OP_OPENREAD, "close", path);
		return;
	}
	if (record)
		samples_add(&t->lat[OP_OPENREAD], now_ns() - t0);
}

static void *thread_main(void *arg)
{
	struct cy_thread *t = arg;
	const struct cy_config *cfg = t->cfg;
	size_t bufsize = cfg->existing ? (1 << 20) : cfg->size + 1;
	char *data = malloc(cfg->size + 1), *buf = malloc(bufsize);
	uint64_t seq = 0, warm_end, end;
	size_t i;

	if (!data || !buf) {
		fprintf(stderr, "cycle: out of memory\n");
		exit(1);
	}
	/* Looks like PHP's serializer output, padded to the size. */
	for (i = 0; i < cfg->size; i++)
		data[i] = "user|s:5:\"alice\";count|i:1;"[i % 27];
	pthread_barrier_wait(&start_barrier);
	warm_end = now_ns() + (uint64_t)(cfg->warmup * 1e9);
	while (!cfg->cycles && now_ns() < warm_end) {
		if (cfg->existing)
			one_read(t, buf, false);
		else
			one_cycle(t, seq++, data, buf, false);
		t->warm++;
	}
	pthread_barrier_wait(&start_barrier);
	if (t->id == 0)
		clock_gettime(CLOCK_MONOTONIC, &t_start);
	end = now_ns() + (uint64_t)(cfg->duration * 1e9);
	for (i = 0; cfg->cycles ? i < (size_t)cfg->cycles : now_ns() < end;
	     i++) {
		if (cfg->existing)
			one_read(t, buf, true);
		else
			one_cycle(t, seq++, data, buf, true);
	}
	pthread_barrier_wait(&start_barrier);
	if (t->id == 0)
		clock_gettime(CLOCK_MONOTONIC, &t_end);
	free(data);
	free(buf);
	return NULL;
}

/* Merges the threads' samples of one operation, sorted. */
static struct cy_samples merge(struct cy_thread *th, int n, int op)
{
	struct cy_samples all = { 0 };
	int i;

	for (i = 0; i < n; i++) {
		struct cy_samples *s = op < 0 ? &th[i].cycle : &th[i].lat[op];
		size_t j;

		for (j = 0; j < s->n; j++)
			samples_add(&all, s->v[j]);
	}
	if (all.n)
		qsort(all.v, all.n, sizeof(*all.v), cmp_u64);
	return all;
}

static void print_stats(FILE *out, const struct cy_samples *s)
{
	double sum = 0;
	size_t i;

	for (i = 0; i < s->n; i++)
		sum += (double)s->v[i];
	fprintf(out,
		"\"n\": %zu, \"median_us\": %.2f, \"p99_us\": %.2f, \"mean_us\": %.2f, \"max_us\": %.2f",
		s->n, pct_us(s->v, s->n, 0.5), pct_us(s->v, s->n, 0.99),
		s->n ? sum / (double)s->n / 1000.0 : 0.0,
		s->n ? (double)s->v[s->n - 1] / 1000.0 : 0.0);
}

static int run_threads(const struct cy_config *cfg)
{
	struct cy_thread *th = calloc(cfg->threads, sizeof(*th));
	const char *first_error = NULL;
	unsigned long warm = 0;
	struct rusage ru;
	double elapsed;
	size_t total = 0, cycles = 0;
	int i, op, nops = cfg->existing ? 1 : OP_COUNT;

	if (!th)
		return 1;
	pthread_barrier_init(&start_barrier, NULL, cfg->threads);
	for (i = 0; i < cfg->threads; i++) {
		th[i].id = i;
		th[i].cfg = cfg;
		th[i].rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1) ^
			    (uint64_t)getpid();
		th[i].dirfd = -1;
		th[i].redis_fd = -1;
		if (cfg->mark) {
			th[i].dirfd = open(cfg->dir, O_RDONLY | O_DIRECTORY);
			if (th[i].dirfd < 0) {
				perror("cycle: open DIR");
				return 1;
			}
		}
		if (cfg->mark_redis) {
			th[i].redis_fd = tcp_connect(cfg->mark_redis);
			if (th[i].redis_fd < 0)
				return 1;
		}
	}
	for (i = 0; i < cfg->threads; i++) {
		if (pthread_create(&th[i].tid, NULL, thread_main, &th[i]) !=
		    0) {
			fprintf(stderr, "cycle: cannot start a thread\n");
			return 1;
		}
	}
	for (i = 0; i < cfg->threads; i++)
		pthread_join(th[i].tid, NULL);
	elapsed = (double)(ts_ns(&t_end) - ts_ns(&t_start)) / 1e9;

	printf("{\"mode\": \"%s\", \"threads\": %d, \"size\": %zu, \"elapsed_s\": %.3f",
	       cfg->existing ? "existing" : "cycle", cfg->threads, cfg->size,
	       elapsed);
	if (cfg->existing)
		printf(", \"existing\": %lu", cfg->existing);
	printf(", \"ops\": {");
	for (op = 0; op < nops; op++) {
		struct cy_samples all = merge(th, cfg->threads, op);
		unsigned long errs = 0;

		for (i = 0; i < cfg->threads; i++)
			errs += th[i].errors[op];
		total += all.n;
		printf("%s\"%s\": {", op ? ", " : "",
		       cfg->existing ? "openread" : cycle_names[op]);
		print_stats(stdout, &all);
		printf(", \"errors\": %lu}", errs);
		free(all.v);
	}
	printf("}");
	if (!cfg->existing) {
		struct cy_samples all = merge(th, cfg->threads, -1);

		cycles = all.n;
		printf(", \"cycle\": {");
		print_stats(stdout, &all);
		printf("}, \"cycles\": %zu, \"cycles_per_s\": %.1f", cycles,
		       elapsed > 0 ? (double)cycles / elapsed : 0.0);
		free(all.v);
	}
	/*
	 * For CPU per cycle: the whole process (warm-up included) and the
	 * number of cycles it ran, so that bench/run can divide the CPU time
	 * of the daemon and Redis, measured around the process, by it too.
	 */
	getrusage(RUSAGE_SELF, &ru);
	for (i = 0; i < cfg->threads; i++)
		warm += th[i].warm;
	printf(", \"all_runs\": %zu, \"cpu_us\": %.0f",
	       (cfg->existing ? total : cycles) + warm,
	       (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
		       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec));
	printf(", \"ops_total\": %zu, \"ops_per_s\": %.1f", total,
	       elapsed > 0 ? (double)total / elapsed : 0.0);
	for (i = 0; i < cfg->threads; i++)
		if (th[i].first_error[0] && !first_error)
			first_error = th[i].first_error;
	printf(", \"first_error\": ");
	if (first_error) {
		const char *p;

		putchar('"');
		for (p = first_error; *p; p++) {
			if (*p == '"' || *p == '\\')
				putchar('\\');
			putchar((unsigned char)*p >= 0x20 ? *p : '?');
		}
		putchar('"');
	} else {
		printf("null");
	}
	printf("}\n");
	for (i = 0; i < cfg->threads; i++) {
		for (op = 0; op < OP_COUNT; op++)
			free(th[i].lat[op].v);
		free(th[i].cycle.v);
		if (th[i].dirfd >= 0)
			close(th[i].dirfd);
		if (th[i].redis_fd >= 0)
			close(th[i].redis_fd);
	}
	free(th);
	return 0;
}

/* --ping: 'count' PING round trips on one connection, after 10% warm-up. */
static int run_ping(const char *hostport, long count)
{
	static const char ping[] = "*1\r\n$4\r\nPING\r\n";
	struct cy_samples s = { 0 };
	long i, warm = count / 10 + 1;
	int fd = tcp_connect(hostport);

	if (fd < 0)
		return 1;
	for (i = 0; i < warm + count; i++) {
		uint64_t t0 = now_ns();

		if (redis_roundtrip(fd, ping, sizeof(ping) - 1) < 0) {
			fprintf(stderr, "cycle: PING to '%s' failed\n",
				hostport);
			close(fd);
			return 1;
		}
		if (i >= warm)
			samples_add(&s, now_ns() - t0);
	}
	close(fd);
	qsort(s.v, s.n, sizeof(*s.v), cmp_u64);
	printf("{\"mode\": \"ping\", ");
	print_stats(stdout, &s);
	printf("}\n");
	free(s.v);
	return 0;
}

static void usage(void)
{
	printf("usage: cycle [options] DIR\n"
	       "       cycle --existing N [options] DIR\n"
	       "       cycle --ping HOST:PORT [--count N]\n"
	       "\n"
	       "  -t, --threads N       threads (default 1)\n"
	       "  -d, --duration SEC    measured seconds (default 3)\n"
	       "  -w, --warmup SEC      unrecorded seconds before (default 0.5)\n"
	       "  -n, --cycles N        N cycles per thread instead of a duration\n"
	       "  -s, --size BYTES      session size (default 200)\n"
	       "  -e, --existing N      read random names sess_sc%%024u below N\n"
	       "  -m, --mark            fstatfs(DIR) before each operation\n"
	       "  -r, --mark-redis H:P  and ECHO mark-<op> to that Redis\n"
	       "  -p, --ping H:P        time PING round trips\n"
	       "  -c, --count N         PINGs (default 20000)\n"
	       "\n"
	       "Prints one JSON object on stdout.\n");
}

static int parse_num(const char *opt, const char *s, double min, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (errno || end == s || *end || *out < min) {
		fprintf(stderr, "cycle: invalid %s '%s'\n", opt, s);
		return -1;
	}
	return 0;
}

int main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "threads", required_argument, NULL, 't' },
		{ "duration", required_argument, NULL, 'd' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "cycles", required_argument, NULL, 'n' },
		{ "size", required_argument, NULL, 's' },
		{ "existing", required_argument, NULL, 'e' },
		{ "mark", no_argument, NULL, 'm' },
		{ "mark-redis", required_argument, NULL, 'r' },
		{ "ping", required_argument, NULL, 'p' },
		{ "count", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct cy_config cfg = {
		.threads = 1, .duration = 3, .warmup = 0.5, .size = 200
	};
	const char *ping = NULL;
	long count = 20000;
	double v;
	int c;

	while ((c = getopt_long(argc, argv, "t:d:w:n:s:e:mr:p:c:h", longopts,
				NULL)) != -1) {
		switch (c) {
		case 't':
			if (parse_num("--threads", optarg, 1, &v) < 0 ||
			    v > CY_MAX_THREADS)
				return 2;
			cfg.threads = (int)v;
			break;
		case 'd':
			if (parse_num("--duration", optarg, 0.01,
				      &cfg.duration))
				return 2;
			break;
		case 'w':
			if (parse_num("--warmup", optarg, 0, &cfg.warmup))
				return 2;
			break;
		case 'n':
			if (parse_num("--cycles", optarg, 1, &v))
				return 2;
			cfg.cycles = (long)v;
			break;
		case 's':
			if (parse_num("--size", optarg, 1, &v) || v > (1 << 20))
				return 2;
			cfg.size = (size_t)v;
			break;
		case 'e':
			if (parse_num("--existing", optarg, 1, &v))
				return 2;
			cfg.existing = (unsigned long)v;
			break;
		case 'm':
			cfg.mark = true;
			break;
		case 'r':
			cfg.mark_redis = optarg;
			cfg.mark = true;
			break;
		case 'p':
			ping = optarg;
			break;
		case 'c':
			if (parse_num("--count", optarg, 1, &v))
				return 2;
			count = (long)v;
			break;
		case 'h':
			usage();
			return 0;
		default:
			usage();
			return 2;
		}
	}
	if (ping)
		return run_ping(ping, count);
	if (optind != argc - 1) {
		usage();
		return 2;
	}
	cfg.dir = argv[optind];
	/* 12 characters: with the thread and the sequence, a 26-char sid. */
	snprintf(cfg.tag, sizeof(cfg.tag), "%06x%06x",
		 (unsigned int)getpid() & 0xffffff,
		 (unsigned int)(now_ns() / 1000) & 0xffffff);
	return run_threads(&cfg);
}
