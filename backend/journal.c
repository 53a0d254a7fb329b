/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The repair journal and the unmount manifest (see journal.h).  The
 * journal keeps a chained hash table from name to the BE_J_* bits of the
 * stores that are behind, guarded by the journal's own mutex, and mirrors
 * every change in an append-only log: one record per line, written with a
 * single write(2) on an O_APPEND fd before the table changes, each with a
 * CRC32 (IEEE 802.3, reflected, polynomial 0xEDB88320) of its text so that
 * a torn or damaged record is recognised on load.  When the log holds more
 * than twice the live names (and more than COMPACT_MIN records) it is
 * rewritten from the table into a temp file that is renamed over it.
 *
 * A name is the last field before the CRC and may hold spaces, so a record
 * is parsed from both ends: op and stores from the front, the CRC from the
 * back, the name is what lies between.
 *
 * The manifest is a text file written to a temp file and renamed: a header
 * "sessfs-manifest v1 <written_ns>", one "<mtime_ns> <name>" line per
 * regular file of the lower dir, and a last line "end <count> <crc32>"
 * whose CRC covers every byte before it, so that a truncated or damaged
 * manifest is refused as a whole.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "layout.h"
#include "lowerstore.h"
#include "util.h"

#define STORES_ALL     (BE_J_REDIS | BE_J_LOWER)
#define COMPACT_MIN    512 /* records: below this the log is never rewritten */
#define CRC_HEX	       8
#define RECORD_MAX     (BE_NAME_MAX + 16) /* "+ 3 " name " xxxxxxxx\n" */
#define MIN_BUCKETS    64
#define MANIFEST_MAGIC "sessfs-manifest v1 "
#define MANIFEST_END   "end "

/* CRC32 ------------------------------------------------------------------ */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	uint32_t c;
	int i, k;

	for (i = 0; i < 256; i++) {
		c = (uint32_t)i;
		for (k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0xEDB88320U : c >> 1;
		crc_table[i] = c;
	}
}

/* CRC32 of 'len' bytes at 'buf' ("123456789" gives 0xcbf43926). */
static uint32_t crc32_of(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint32_t c = 0xFFFFFFFFU;

	pthread_once(&crc_once, crc_init);
	while (len--)
		c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
	return c ^ 0xFFFFFFFFU;
}

/* Small helpers -------------------------------------------------------- */

/*
 * Reads the whole file 'fd' into a new NUL-terminated buffer ('*len' bytes
 * without the NUL).  0 or -errno.
 */
static int read_file(int fd, char **out, size_t *len)
{
	size_t size = 0, cap = 4096;
	char *buf, *nbuf;
	ssize_t n;

	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (cap - size < 2) {
			nbuf = realloc(buf, cap * 2);
			if (!nbuf) {
				free(buf);
				return -ENOMEM;
			}
			buf = nbuf;
			cap *= 2;
		}
		n = pread(fd, buf + size, cap - size - 1, (off_t)size);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return -errno;
		}
		if (n == 0)
			break;
		size += (size_t)n;
	}
	buf[size] = '\0';
	*out = buf;
	*len = size;
	return 0;
}

/* Parses exactly CRC_HEX lowercase hex digits at 'p'. */
static bool parse_crc(const char *p, uint32_t *crc)
{
	uint32_t v = 0;
	int i;

	for (i = 0; i < CRC_HEX; i++) {
		if (p[i] >= '0' && p[i] <= '9')
			v = v << 4 | (uint32_t)(p[i] - '0');
		else if (p[i] >= 'a' && p[i] <= 'f')
			v = v << 4 | (uint32_t)(p[i] - 'a' + 10);
		else
			return false;
	}
	*crc = v;
	return true;
}

/*
 * Parses the 'len' bytes at 'p' as a decimal number: an optional '-' (only
 * when 'neg_ok'), then 1 to 19 digits, nothing else.
 */
static bool parse_num(const char *p, size_t len, bool neg_ok, int64_t *out)
{
	bool neg = false;
	int64_t v = 0;
	size_t i = 0;

	if (len && p[0] == '-' && neg_ok) {
		neg = true;
		i = 1;
	}
	if (i == len || len - i > 19)
		return false;
	for (; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, p[i] - '0', &v))
			return false;
	}
	*out = neg ? -v : v;
	return true;
}

/*
 * Writes 'len' bytes of 'buf' to a new temp file next to 'path' and
 * renames it over 'path'.  When 'keep_fd' is not NULL the temp is opened
 * O_APPEND and its fd, now that of 'path', goes to '*keep_fd'; otherwise
 * it is fsynced and closed.  0 or -errno, with the temp removed.
 */
static int replace_file(const char *path, const char *buf, size_t len,
			int *keep_fd)
{
	size_t plen = strlen(path);
	char *tmp;
	int fd, ret;

	tmp = malloc(plen + sizeof(".XXXXXX"));
	if (!tmp)
		return -ENOMEM;
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".XXXXXX", sizeof(".XXXXXX"));
	fd = mkostemp(tmp, O_CLOEXEC | (keep_fd ? O_APPEND : 0));
	if (fd < 0) {
		ret = -errno;
		goto out_free;
	}
	ret = be_write_all(fd, buf, len);
	if (!ret && !keep_fd && fsync(fd) < 0)
		ret = -errno;
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret) {
		unlink(tmp);
		close(fd);
	} else if (keep_fd) {
		*keep_fd = fd;
	} else if (close(fd) < 0 && errno != EINTR) {
		ret = -errno; /* renamed already: the caller sees the error */
	}
out_free:
	free(tmp);
	return ret;
}

/* The journal ----------------------------------------------------------- */

struct entry {
	struct entry *next;
	uint64_t hash;
	unsigned int stores;
	size_t len;
	char name[]; /* 'len' bytes and a NUL */
};

struct be_journal {
	pthread_mutex_t lock;
	char *path;
	int fd; /* O_APPEND */
	size_t max_names;
	struct entry **buckets;
	size_t nbuckets; /* a power of 2 */
	size_t live; /* entries (each has stores != 0) */
	size_t records; /* records in the log */
	size_t compact_retry; /* after a failed rewrite: records to wait for */
	bool torn; /* the log may end in a partial record */
};

static uint64_t name_hash(const char *name, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */

	while (len--) {
		h ^= (unsigned char)*name++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/*
 * A name the journal can hold: 1 to BE_NAME_MAX bytes, not "." or "..",
 * without '/', NUL, newline, '{' or '}' (the daemon refuses those names).
 */
static bool name_ok(const char *name, size_t len)
{
	size_t i;

	if (len == 0 || len > BE_NAME_MAX)
		return false;
	if ((len == 1 && name[0] == '.') ||
	    (len == 2 && name[0] == '.' && name[1] == '.'))
		return false;
	for (i = 0; i < len; i++) {
		switch (name[i]) {
		case '/':
		case '\0':
		case '\n':
		case '{':
		case '}':
			return false;
		}
	}
	return true;
}

static struct entry **find_slot(struct be_journal *j, const char *name,
				size_t len, uint64_t hash)
{
	struct entry **pp = &j->buckets[hash & (j->nbuckets - 1)];

	for (; *pp; pp = &(*pp)->next) {
		if ((*pp)->hash == hash && (*pp)->len == len &&
		    !memcmp((*pp)->name, name, len))
			break;
	}
	return pp;
}

/* Doubles the table when it is 3/4 full; on ENOMEM chains just grow. */
static void maybe_grow(struct be_journal *j)
{
	struct entry **nb, *e, *next;
	size_t i, n = j->nbuckets * 2;

	if (j->live < j->nbuckets / 4 * 3)
		return;
	nb = calloc(n, sizeof(*nb));
	if (!nb)
		return;
	for (i = 0; i < j->nbuckets; i++) {
		for (e = j->buckets[i]; e; e = next) {
			next = e->next;
			e->next = nb[e->hash & (n - 1)];
			nb[e->hash & (n - 1)] = e;
		}
	}
	free(j->buckets);
	j->buckets = nb;
	j->nbuckets = n;
}

static struct entry *entry_new(const char *name, size_t len, uint64_t hash)
{
	struct entry *e;

	e = malloc(sizeof(*e) + len + 1);
	if (!e)
		return NULL;
	e->next = NULL;
	e->hash = hash;
	e->stores = 0;
	e->len = len;
	memcpy(e->name, name, len);
	e->name[len] = '\0';
	return e;
}

/* Links the new entry 'e' at the slot 'pp' found for it. */
static void entry_link(struct be_journal *j, struct entry **pp, struct entry *e)
{
	*pp = e;
	j->live++;
	maybe_grow(j);
}

static void entry_unlink(struct be_journal *j, struct entry **pp)
{
	struct entry *e = *pp;

	*pp = e->next;
	j->live--;
	free(e);
}

/*
 * Applies the record 'op' ('+' or '-') of 'stores' for 'name' to the table.
 * 0 or -ENOMEM.
 */
static int apply(struct be_journal *j, char op, unsigned int stores,
		 const char *name, size_t len)
{
	uint64_t hash = name_hash(name, len);
	struct entry **pp = find_slot(j, name, len, hash);
	struct entry *e = *pp;

	if (op == '+') {
		if (!e) {
			e = entry_new(name, len, hash);
			if (!e)
				return -ENOMEM;
			entry_link(j, pp, e);
		}
		e->stores |= stores;
	} else if (e) {
		e->stores &= ~stores;
		if (!e->stores)
			entry_unlink(j, pp);
	}
	return 0;
}

/*
 * Formats the record "<op> <stores> <name> <crc>\n" into 'buf' (at least
 * RECORD_MAX bytes) and returns its length.
 */
static size_t format_record(char *buf, char op, unsigned int stores,
			    const char *name, size_t len)
{
	size_t n;

	buf[0] = op;
	buf[1] = ' ';
	buf[2] = (char)('0' + stores);
	buf[3] = ' ';
	memcpy(buf + 4, name, len);
	n = 4 + len;
	n += (size_t)snprintf(buf + n, RECORD_MAX - n, " %08" PRIx32 "\n",
			      crc32_of(buf, n));
	return n;
}

/*
 * Parses the record 'p' of 'len' bytes (without its newline).  NULL and
 * the fields, or the reason it is bad.
 */
static const char *parse_record(const char *p, size_t len, char *op,
				unsigned int *stores, const char **name,
				size_t *nlen)
{
	uint32_t crc;

	if (len < 5 + CRC_HEX + 1 || p[len - CRC_HEX - 1] != ' ' ||
	    !parse_crc(p + len - CRC_HEX, &crc))
		return "bad field";
	len -= CRC_HEX + 1;
	if (crc32_of(p, len) != crc)
		return "bad checksum";
	if (p[0] != '+' && p[0] != '-')
		return "bad op";
	if (p[1] != ' ' || p[2] < '1' || p[2] > '0' + STORES_ALL ||
	    p[3] != ' ' || !name_ok(p + 4, len - 4))
		return "bad field";
	*op = p[0];
	*stores = (unsigned int)(p[2] - '0');
	*name = p + 4;
	*nlen = len - 4;
	return NULL;
}

/*
 * Rewrites the log from the table (temp + rename) and switches to the new
 * file.  Called with the lock held (or before the journal is shared).
 * 0 or -errno; on error the old log stays in use.
 */
static int compact(struct be_journal *j)
{
	size_t i, len = 0;
	struct entry *e;
	char *buf;
	int fd, ret;

	buf = malloc(j->live * RECORD_MAX + 1);
	if (!buf)
		return -ENOMEM;
	for (i = 0; i < j->nbuckets; i++) {
		for (e = j->buckets[i]; e; e = e->next)
			len += format_record(buf + len, '+', e->stores, e->name,
					     e->len);
	}
	ret = replace_file(j->path, buf, len, &fd);
	free(buf);
	if (ret)
		return ret;
	close(j->fd);
	j->fd = fd;
	j->records = j->live;
	j->torn = false;
	return 0;
}

static bool needs_compact(const struct be_journal *j)
{
	return j->records > COMPACT_MIN && j->records > 2 * j->live &&
	       j->records >= j->compact_retry;
}

/*
 * Rewrites the log when it has grown too long.  A failure is not the
 * caller's: its record is in the log already; try again later.
 */
static void maybe_compact(struct be_journal *j)
{
	if (!needs_compact(j))
		return;
	if (compact(j))
		j->compact_retry = j->records + COMPACT_MIN;
	else
		j->compact_retry = 0;
}

/*
 * Appends one record with one write(2).  0 or -errno.  A short write (a
 * full disk) is cut off again, so that the next record starts on a line
 * of its own; if that fails too, the next record starts with a newline.
 */
static int append(struct be_journal *j, char op, unsigned int stores,
		  const char *name, size_t len)
{
	char buf[RECORD_MAX + 1];
	size_t n = 0;
	struct stat st;
	ssize_t w;

	if (j->torn)
		buf[n++] = '\n';
	n += format_record(buf + n, op, stores, name, len);
	do {
		w = write(j->fd, buf, n);
	} while (w < 0 && errno == EINTR);
	if (w < 0)
		return -errno;
	if ((size_t)w == n) {
		j->records++;
		j->torn = false;
		return 0;
	}
	j->torn = true;
	if (fstat(j->fd, &st) == 0 && st.st_size >= w &&
	    ftruncate(j->fd, st.st_size - w) == 0)
		j->torn = false;
	return -ENOSPC;
}

/*
 * Loads the log text 'buf' of 'len' bytes into the table.  Bad records are
 * skipped; the first one's line and reason go to '*bad_line' and
 * '*reason', their number is returned (or -ENOMEM).
 */
static long load(struct be_journal *j, const char *buf, size_t len,
		 size_t *bad_line, const char **reason)
{
	const char *p = buf, *end = buf + len, *nl, *why, *name;
	unsigned int stores;
	size_t line, nlen;
	long bad = 0;
	char op;

	for (line = 1; p < end; line++, p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl) {
			if (!bad++) {
				*bad_line = line;
				*reason = "torn last line";
			}
			break;
		}
		why = parse_record(p, (size_t)(nl - p), &op, &stores, &name,
				   &nlen);
		if (why) {
			if (!bad++) {
				*bad_line = line;
				*reason = why;
			}
			continue;
		}
		if (apply(j, op, stores, name, nlen))
			return -ENOMEM;
		j->records++;
	}
	return bad;
}

void be_journal_free(struct be_journal *j)
{
	struct entry *e, *next;
	size_t i;

	if (!j)
		return;
	for (i = 0; i < j->nbuckets; i++) {
		for (e = j->buckets[i]; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(j->buckets);
	if (j->fd >= 0)
		close(j->fd);
	free(j->path);
	pthread_mutex_destroy(&j->lock);
	free(j);
}

static struct be_journal *journal_new(const char *path, size_t max_names)
{
	struct be_journal *j;

	j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->fd = -1;
	j->max_names = max_names;
	j->nbuckets = MIN_BUCKETS;
	j->buckets = calloc(j->nbuckets, sizeof(*j->buckets));
	j->path = strdup(path);
	if (!j->buckets || !j->path || pthread_mutex_init(&j->lock, NULL)) {
		free(j->buckets);
		free(j->path);
		free(j);
		return NULL;
	}
	return j;
}

/*
 * Reads and loads the log of the open journal 'j'; on corruption sets
 * '*corrupt', says so in 'err' and rewrites the log.  0 or -errno with a
 * reason in 'err'.
 */
static int journal_load(struct be_journal *j, bool *corrupt, char *err,
			size_t errlen)
{
	const char *reason = NULL;
	size_t len, bad_line = 0;
	char *buf;
	long bad;
	int ret;

	ret = read_file(j->fd, &buf, &len);
	if (ret) {
		be_fail(err, errlen, 0, "cannot read journal '%s': %s", j->path,
			strerror(-ret));
		return ret;
	}
	bad = load(j, buf, len, &bad_line, &reason);
	free(buf);
	if (bad < 0) {
		be_fail(err, errlen, 0, "cannot load journal '%s': %s", j->path,
			strerror(ENOMEM));
		return -ENOMEM;
	}
	if (!bad) {
		maybe_compact(j);
		return 0;
	}
	ret = compact(j);
	if (ret) {
		be_fail(err, errlen, 0,
			"cannot rewrite corrupt journal '%s' (line %zu: %s): %s",
			j->path, bad_line, reason, strerror(-ret));
		return ret;
	}
	if (corrupt)
		*corrupt = true;
	if (bad > 1)
		be_fail(err, errlen, 0,
			"journal '%s' is corrupt at line %zu: %s (%ld bad lines); its names will be re-verified",
			j->path, bad_line, reason, bad);
	else
		be_fail(err, errlen, 0,
			"journal '%s' is corrupt at line %zu: %s; its names will be re-verified",
			j->path, bad_line, reason);
	return 0;
}

struct be_journal *be_journal_open(const char *path, size_t max_names,
				   bool *corrupt, char *err, size_t errlen)
{
	struct be_journal *j;
	struct stat st;

	if (corrupt)
		*corrupt = false;
	be_fail(err, errlen, 0, "%s", "");
	j = journal_new(path, max_names);
	if (!j) {
		be_fail(err, errlen, 0, "cannot open journal '%s': %s", path,
			strerror(ENOMEM));
		return NULL;
	}
	j->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
		     0600);
	if (j->fd < 0) {
		be_fail(err, errlen, 0, "cannot open journal '%s': %s", path,
			strerror(errno));
		goto out_free;
	}
	if (fstat(j->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		be_fail(err, errlen, 0, "cannot open journal '%s': %s", path,
			"not a regular file");
		goto out_free;
	}
	if (journal_load(j, corrupt, err, errlen))
		goto out_free;
	return j;
out_free:
	if (corrupt)
		*corrupt = false;
	be_journal_free(j);
	return NULL;
}

int be_journal_add(struct be_journal *j, const char *name, unsigned int stores)
{
	size_t len = strlen(name);
	struct entry **pp, *e;
	uint64_t hash;
	int ret = 0;

	if (!name_ok(name, len) || !stores || (stores & ~STORES_ALL))
		return -EINVAL;
	hash = name_hash(name, len);
	pthread_mutex_lock(&j->lock);
	pp = find_slot(j, name, len, hash);
	e = *pp;
	if (e && (e->stores & stores) == stores)
		goto out_unlock; /* recorded already */
	if (!e) {
		if (j->live >= j->max_names) {
			ret = -ENOSPC;
			goto out_unlock;
		}
		/* Allocated first: a persisted record must reach the table. */
		e = entry_new(name, len, hash);
		if (!e) {
			ret = -ENOMEM;
			goto out_unlock;
		}
	}
	ret = append(j, '+', stores, name, len);
	if (ret) {
		if (!*pp)
			free(e);
		goto out_unlock;
	}
	if (!*pp)
		entry_link(j, pp, e);
	e->stores |= stores;
	maybe_compact(j);
out_unlock:
	pthread_mutex_unlock(&j->lock);
	return ret;
}

int be_journal_done(struct be_journal *j, const char *name, unsigned int stores)
{
	size_t len = strlen(name);
	struct entry **pp;
	unsigned int bits;
	int ret = 0;

	if (!name_ok(name, len) || (stores & ~STORES_ALL))
		return -EINVAL;
	pthread_mutex_lock(&j->lock);
	pp = find_slot(j, name, len, name_hash(name, len));
	if (!*pp || !((*pp)->stores & stores))
		goto out_unlock;
	bits = (*pp)->stores & stores;
	ret = append(j, '-', bits, name, len);
	if (ret)
		goto out_unlock;
	(*pp)->stores &= ~bits;
	if (!(*pp)->stores)
		entry_unlink(j, pp);
	maybe_compact(j);
out_unlock:
	pthread_mutex_unlock(&j->lock);
	return ret;
}

unsigned int be_journal_get(struct be_journal *j, const char *name)
{
	size_t len = strlen(name);
	unsigned int stores;
	struct entry *e;

	pthread_mutex_lock(&j->lock);
	e = *find_slot(j, name, len, name_hash(name, len));
	stores = e ? e->stores : 0;
	pthread_mutex_unlock(&j->lock);
	return stores;
}

size_t be_journal_count(struct be_journal *j)
{
	size_t n;

	pthread_mutex_lock(&j->lock);
	n = j->live;
	pthread_mutex_unlock(&j->lock);
	return n;
}

struct snap {
	char *name;
	unsigned int stores;
};

/* Copies the table into a new array of '*n' entries; NULL on ENOMEM. */
static struct snap *snapshot(struct be_journal *j, size_t *n)
{
	struct snap *s;
	struct entry *e;
	size_t i, k = 0;

	pthread_mutex_lock(&j->lock);
	s = calloc(j->live ? j->live : 1, sizeof(*s));
	for (i = 0; s && i < j->nbuckets; i++) {
		for (e = j->buckets[i]; e; e = e->next) {
			s[k].name = strdup(e->name);
			s[k].stores = e->stores;
			if (!s[k++].name)
				goto out_fail;
		}
	}
	pthread_mutex_unlock(&j->lock);
	*n = k;
	return s;
out_fail:
	pthread_mutex_unlock(&j->lock);
	while (k--)
		free(s[k].name);
	free(s);
	return NULL;
}

int be_journal_foreach(struct be_journal *j,
		       int (*cb)(const char *name, unsigned int stores,
				 void *arg),
		       void *arg)
{
	struct snap *s;
	size_t i, n;
	int ret = 0;

	s = snapshot(j, &n);
	if (!s)
		return -ENOMEM;
	for (i = 0; i < n && !ret; i++)
		ret = cb(s[i].name, s[i].stores, arg);
	for (i = 0; i < n; i++)
		free(s[i].name);
	free(s);
	return ret;
}

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/* The manifest ---------------------------------------------------------- */

struct mbuf {
	char *buf;
	size_t len, cap;
	size_t count;
	int dirfd;
};

static int mbuf_printf(struct mbuf *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int mbuf_printf(struct mbuf *m, const char *fmt, ...)
{
	va_list ap;
	char *nbuf;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(m->buf + m->len, m->cap - m->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -EINVAL;
		if ((size_t)n < m->cap - m->len)
			break;
		nbuf = realloc(m->buf, m->cap * 2 + (size_t)n);
		if (!nbuf)
			return -ENOMEM;
		m->buf = nbuf;
		m->cap = m->cap * 2 + (size_t)n;
	}
	m->len += (size_t)n;
	return 0;
}

static int manifest_entry(const char *name, enum be_state state, void *arg)
{
	struct mbuf *m = arg;
	struct stat st;

	/* A newline cannot be stored; the mount refuses such names anyway. */
	if (strchr(name, '\n'))
		return 0;
	if (fstatat(m->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISREG(st.st_mode))
		return 0;
	m->count++;
	return mbuf_printf(m, "%" PRId64 " %s\n", ts_ns(&st.st_mtim), name);
}

int be_manifest_write(const char *path, int dirfd)
{
	struct mbuf m = { .cap = 4096, .dirfd = dirfd };
	struct timespec now;
	int ret;

	m.buf = malloc(m.cap);
	if (!m.buf)
		return -ENOMEM;
	clock_gettime(CLOCK_REALTIME, &now);
	ret = mbuf_printf(&m, MANIFEST_MAGIC "%" PRId64 "\n", ts_ns(&now));
	if (!ret)
		ret = be_lower_list(dirfd, manifest_entry, &m);
	if (!ret)
		ret = mbuf_printf(&m, MANIFEST_END "%zu %08" PRIx32 "\n",
				  m.count, crc32_of(m.buf, m.len));
	if (!ret)
		ret = replace_file(path, m.buf, m.len, NULL);
	free(m.buf);
	return ret;
}

/*
 * Checks the manifest text 'buf' of 'len' bytes as a whole: header, every
 * entry, the end line's count and CRC.  0 or -EBADMSG.
 */
static int manifest_check(const char *buf, size_t len, int64_t *written_ns)
{
	const char *p, *nl, *last, *sp;
	size_t count = 0;
	int64_t n, mtime;
	uint32_t crc;

	if (!len || buf[len - 1] != '\n')
		return -EBADMSG;
	/* The end line: "end <count> <crc>\n", CRC of everything before. */
	last = buf + len - 1;
	while (last > buf && last[-1] != '\n')
		last--;
	if (last == buf || (size_t)(buf + len - last) < 4 + 1 + 1 + CRC_HEX + 1)
		return -EBADMSG;
	if (memcmp(last, MANIFEST_END, 4) ||
	    !parse_crc(buf + len - 1 - CRC_HEX, &crc) ||
	    buf[len - 2 - CRC_HEX] != ' ' ||
	    !parse_num(last + 4, (size_t)(buf + len - 2 - CRC_HEX - last - 4),
		       false, &n) ||
	    crc32_of(buf, (size_t)(last - buf)) != crc)
		return -EBADMSG;
	/* The header. */
	nl = memchr(buf, '\n', (size_t)(last - buf));
	if (!nl || strncmp(buf, MANIFEST_MAGIC, strlen(MANIFEST_MAGIC)) ||
	    !parse_num(buf + strlen(MANIFEST_MAGIC),
		       (size_t)(nl - buf) - strlen(MANIFEST_MAGIC), true,
		       written_ns))
		return -EBADMSG;
	/* The entries: "<mtime_ns> <name>", the name without '/' or NUL. */
	for (p = nl + 1; p < last; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(last - p));
		sp = memchr(p, ' ', (size_t)(nl - p));
		if (!sp || !parse_num(p, (size_t)(sp - p), true, &mtime) ||
		    sp + 1 == nl ||
		    memchr(sp + 1, '/', (size_t)(nl - sp - 1)) ||
		    memchr(sp + 1, '\0', (size_t)(nl - sp - 1)))
			return -EBADMSG;
		count++;
	}
	return (int64_t)count == n ? 0 : -EBADMSG;
}

int be_manifest_parse(char *buf, size_t len, int64_t *written_ns,
		      int (*cb)(const struct be_manifest_entry *e, void *arg),
		      void *arg)
{
	struct be_manifest_entry e;
	char *p, *nl, *sp;
	int64_t written;
	int ret;

	ret = manifest_check(buf, len, &written);
	if (ret)
		return ret;
	if (written_ns)
		*written_ns = written;
	/* Checked: now every line but the header and the end is an entry. */
	p = strchr(buf, '\n') + 1;
	for (;; p = nl + 1) {
		nl = strchr(p, '\n');
		if (!strncmp(p, MANIFEST_END, 4))
			break;
		*nl = '\0';
		sp = strchr(p, ' ');
		*sp = '\0';
		e.mtime_ns = strtoll(p, NULL, 10);
		e.name = sp + 1;
		ret = cb(&e, arg);
		if (ret)
			break;
	}
	return ret;
}

int be_manifest_read(const char *path, int64_t *written_ns,
		     int (*cb)(const struct be_manifest_entry *e, void *arg),
		     void *arg)
{
	size_t len;
	char *buf;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	ret = read_file(fd, &buf, &len);
	close(fd);
	if (ret)
		return ret;
	ret = be_manifest_parse(buf, len, written_ns, cb, arg);
	free(buf);
	return ret;
}
