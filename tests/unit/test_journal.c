/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of backend/journal.c in a temp dir under /tmp: the record
 * format and its CRC32 (checked against a bitwise CRC of our own here and
 * a value computed elsewhere), add/done/get/count/foreach, persistence
 * across reopen, compaction, the max_names bound, names with spaces, a
 * torn last line, flipped bytes and a bad op (corrupt, other names kept,
 * the file rewritten so that the next open is clean), adds from 8 threads;
 * the manifest's round trip, and every truncation and every flipped byte
 * refused with -EBADMSG.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "lowerstore.h"
#include "testutil.h"

static char topdir[64];
static char jpath[192];

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	remove(path);
	return 0;
}

/* A plain bitwise CRC32 (IEEE, reflected), independent of journal.c's. */
static uint32_t crc32_bitwise(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint32_t c = 0xFFFFFFFFU;
	int k;

	while (len--) {
		c ^= *p++;
		for (k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xEDB88320U & (0U - (c & 1)));
	}
	return ~c;
}

/* Reads the file 'path' into a new NUL-terminated buffer; NULL if none. */
static char *slurp(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf && read(fd, buf, (size_t)st.st_size) != st.st_size) {
		free(buf);
		buf = NULL;
	}
	if (buf)
		buf[st.st_size] = '\0';
	if (len)
		*len = (size_t)st.st_size;
	close(fd);
	return buf;
}

static void spew(const char *path, const char *buf, size_t len, int flags)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0600);

	CHECK(fd >= 0);
	CHECK(write(fd, buf, len) == (ssize_t)len);
	close(fd);
}

static size_t count_lines(const char *path)
{
	size_t n = 0;
	char *buf, *p;

	buf = slurp(path, NULL);
	for (p = buf; p && *p; p++)
		n += *p == '\n';
	free(buf);
	return n;
}

/* True when no temp of a rewrite ("<file>.XXXXXX") is left in topdir. */
static bool no_temps(void)
{
	struct dirent *de;
	bool ok = true;
	DIR *d;

	d = opendir(topdir);
	if (!d)
		return false;
	while ((de = readdir(d))) {
		if (!strncmp(de->d_name, "journal.", 8) ||
		    !strncmp(de->d_name, "manifest.", 9))
			ok = false;
	}
	closedir(d);
	return ok;
}

static struct be_journal *open_clean(size_t max_names)
{
	char err[256] = "x";
	bool corrupt = true;
	struct be_journal *j;

	j = be_journal_open(jpath, max_names, &corrupt, err, sizeof(err));
	CHECK(j);
	CHECK(!corrupt);
	CHECK(err[0] == '\0');
	if (err[0])
		fprintf(stderr, "unexpected: %s\n", err);
	return j;
}

static void test_crc_and_format(void)
{
	struct be_journal *j;
	char *buf;

	CHECK(crc32_bitwise("123456789", 9) == 0xcbf43926U);
	unlink(jpath);
	j = open_clean(10);
	CHECK(be_journal_add(j, "sess_a", BE_J_REDIS) == 0);
	be_journal_free(j);
	buf = slurp(jpath, NULL);
	/* The CRC as zlib.crc32(b"+ 1 sess_a") computes it. */
	CHECK(buf && !strcmp(buf, "+ 1 sess_a a4d336f1\n"));
	CHECK(crc32_bitwise("+ 1 sess_a", 10) == 0xa4d336f1U);
	free(buf);
}

struct collect {
	char names[64][300];
	unsigned int stores[64];
	int n;
	struct be_journal *done_in_cb;
	int stop_at;
};

static int collect_cb(const char *name, unsigned int stores, void *arg)
{
	struct collect *c = arg;

	if (c->n >= 64)
		return -1;
	snprintf(c->names[c->n], sizeof(c->names[0]), "%s", name);
	c->stores[c->n++] = stores;
	if (c->done_in_cb)
		CHECK(be_journal_done(c->done_in_cb, name, stores) == 0);
	return c->n == c->stop_at ? 7 : 0;
}

static unsigned int collected(const struct collect *c, const char *name)
{
	int i;

	for (i = 0; i < c->n; i++) {
		if (!strcmp(c->names[i], name))
			return c->stores[i];
	}
	return 0;
}

static void test_basic(void)
{
	struct collect c = { 0 };
	struct be_journal *j;
	char longname[300];

	unlink(jpath);
	j = open_clean(100);
	CHECK(be_journal_count(j) == 0);
	CHECK(be_journal_get(j, "sess_a") == 0);
	CHECK(be_journal_add(j, "sess_a", BE_J_REDIS) == 0);
	CHECK(be_journal_add(j, "sess_a", BE_J_LOWER) == 0);
	CHECK(be_journal_add(j, "sess_b", BE_J_LOWER) == 0);
	CHECK(be_journal_get(j, "sess_a") == (BE_J_REDIS | BE_J_LOWER));
	CHECK(be_journal_get(j, "sess_b") == BE_J_LOWER);
	CHECK(be_journal_count(j) == 2);
	/* An add of bits already set writes nothing. */
	CHECK(be_journal_add(j, "sess_a", BE_J_REDIS) == 0);
	CHECK(count_lines(jpath) == 3);

	CHECK(be_journal_done(j, "sess_a", BE_J_REDIS) == 0);
	CHECK(be_journal_get(j, "sess_a") == BE_J_LOWER);
	CHECK(be_journal_done(j, "sess_none", BE_J_REDIS) == 0);
	CHECK(be_journal_done(j, "sess_b", BE_J_REDIS) == 0); /* not set */
	CHECK(count_lines(jpath) == 4);
	CHECK(be_journal_count(j) == 2);

	/* Invalid names and store bits. */
	CHECK(be_journal_add(j, "", BE_J_REDIS) == -EINVAL);
	CHECK(be_journal_add(j, "a/b", BE_J_REDIS) == -EINVAL);
	CHECK(be_journal_add(j, "a\nb", BE_J_REDIS) == -EINVAL);
	CHECK(be_journal_add(j, "a{b", BE_J_REDIS) == -EINVAL);
	CHECK(be_journal_add(j, "a}b", BE_J_REDIS) == -EINVAL);
	CHECK(be_journal_add(j, "..", BE_J_REDIS) == -EINVAL);
	CHECK(be_journal_add(j, "sess_c", 0) == -EINVAL);
	CHECK(be_journal_add(j, "sess_c", 4) == -EINVAL);
	CHECK(be_journal_done(j, "a/b", BE_J_REDIS) == -EINVAL);
	memset(longname, 'x', 256);
	longname[256] = '\0';
	CHECK(be_journal_add(j, longname, BE_J_REDIS) == -EINVAL);
	longname[255] = '\0';
	CHECK(be_journal_add(j, longname, BE_J_REDIS) == 0);
	CHECK(be_journal_done(j, longname, BE_J_REDIS) == 0);

	/* foreach on a snapshot: the callback may call done. */
	c.done_in_cb = j;
	CHECK(be_journal_foreach(j, collect_cb, &c) == 0);
	CHECK(c.n == 2);
	CHECK(collected(&c, "sess_a") == BE_J_LOWER);
	CHECK(collected(&c, "sess_b") == BE_J_LOWER);
	CHECK(be_journal_count(j) == 0);

	CHECK(be_journal_add(j, "sess_x", BE_J_REDIS) == 0);
	CHECK(be_journal_add(j, "sess_y", BE_J_REDIS) == 0);
	memset(&c, 0, sizeof(c));
	c.stop_at = 1;
	CHECK(be_journal_foreach(j, collect_cb, &c) == 7);
	CHECK(c.n == 1);
	be_journal_free(j);
	be_journal_free(NULL);
}

static void test_persist_and_spaces(void)
{
	static const char *const names[] = { "sess a b", " lead", "trail ",
					     "x  y", "sess_\t\r\x01\xff" };
	struct collect c = { 0 };
	struct be_journal *j;
	size_t i;

	unlink(jpath);
	j = open_clean(100);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		CHECK(be_journal_add(j, names[i], BE_J_REDIS) == 0);
	CHECK(be_journal_add(j, "sess_gone", BE_J_LOWER) == 0);
	CHECK(be_journal_add(j, "sess_half", BE_J_LOWER | BE_J_REDIS) == 0);
	CHECK(be_journal_done(j, "sess_gone", BE_J_LOWER) == 0);
	CHECK(be_journal_done(j, "sess_half", BE_J_REDIS) == 0);
	be_journal_free(j);

	j = open_clean(100);
	CHECK(be_journal_count(j) == 6);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		CHECK(be_journal_get(j, names[i]) == BE_J_REDIS);
	CHECK(be_journal_get(j, "sess_gone") == 0);
	CHECK(be_journal_get(j, "sess_half") == BE_J_LOWER);
	CHECK(be_journal_get(j, "sess") == 0);
	CHECK(be_journal_foreach(j, collect_cb, &c) == 0);
	CHECK(c.n == 6);
	CHECK(collected(&c, "sess a b") == BE_J_REDIS);
	CHECK(collected(&c, "trail ") == BE_J_REDIS);
	be_journal_free(j);
}

static void test_compaction(void)
{
	struct be_journal *j;
	int i;

	unlink(jpath);
	j = open_clean(100);
	CHECK(be_journal_add(j, "sess_live1", BE_J_REDIS) == 0);
	CHECK(be_journal_add(j, "sess live2", BE_J_LOWER) == 0);
	for (i = 0; i < 3000; i++) {
		CHECK(be_journal_add(j, "sess_churn", BE_J_REDIS) == 0);
		CHECK(be_journal_done(j, "sess_churn", BE_J_REDIS) == 0);
	}
	CHECK(be_journal_add(j, "sess_live3", BE_J_REDIS | BE_J_LOWER) == 0);
	/* 6003 records written; compaction kept the log short. */
	CHECK(count_lines(jpath) <= 520);
	CHECK(no_temps());
	CHECK(be_journal_count(j) == 3);
	be_journal_free(j);

	j = open_clean(100);
	CHECK(be_journal_count(j) == 3);
	CHECK(be_journal_get(j, "sess_live1") == BE_J_REDIS);
	CHECK(be_journal_get(j, "sess live2") == BE_J_LOWER);
	CHECK(be_journal_get(j, "sess_live3") == (BE_J_REDIS | BE_J_LOWER));
	CHECK(be_journal_get(j, "sess_churn") == 0);
	be_journal_free(j);
}

static void test_max_names(void)
{
	struct be_journal *j;

	unlink(jpath);
	j = open_clean(3);
	CHECK(be_journal_add(j, "a", BE_J_REDIS) == 0);
	CHECK(be_journal_add(j, "b", BE_J_REDIS) == 0);
	CHECK(be_journal_add(j, "c", BE_J_REDIS) == 0);
	CHECK(be_journal_add(j, "d", BE_J_REDIS) == -ENOSPC);
	CHECK(be_journal_get(j, "d") == 0);
	/* More bits for a name already held is no new name. */
	CHECK(be_journal_add(j, "a", BE_J_LOWER) == 0);
	CHECK(be_journal_done(j, "c", BE_J_REDIS) == 0);
	CHECK(be_journal_add(j, "d", BE_J_REDIS) == 0);
	CHECK(be_journal_count(j) == 3);
	be_journal_free(j);

	/* A smaller bound on reopen keeps every name. */
	j = open_clean(1);
	CHECK(be_journal_count(j) == 3);
	CHECK(be_journal_add(j, "e", BE_J_REDIS) == -ENOSPC);
	be_journal_free(j);
}

/* Writes a journal of sess_a, sess_b, sess_c (one add each). */
static void make_abc(void)
{
	struct be_journal *j;

	unlink(jpath);
	j = open_clean(100);
	CHECK(be_journal_add(j, "sess_a", BE_J_REDIS) == 0);
	CHECK(be_journal_add(j, "sess_b", BE_J_LOWER) == 0);
	CHECK(be_journal_add(j, "sess_c", BE_J_REDIS) == 0);
	be_journal_free(j);
}

/*
 * Opens the damaged journal: it must be reported corrupt with 'reason' at
 * 'line', keep 'kept' names, and open clean the next time.
 */
static void check_corrupt(const char *reason, int line, size_t kept)
{
	char err[512], want[256];
	struct be_journal *j;
	bool corrupt = false;
	size_t len;
	char *buf;

	j = be_journal_open(jpath, 100, &corrupt, err, sizeof(err));
	CHECK(j);
	if (!j)
		return;
	CHECK(corrupt);
	snprintf(
		want, sizeof(want),
		"journal '%s' is corrupt at line %d: %s; its names will be re-verified",
		jpath, line, reason);
	CHECK(!strcmp(err, want));
	if (strcmp(err, want))
		fprintf(stderr, "got '%s'\nwant '%s'\n", err, want);
	CHECK(be_journal_count(j) == kept);
	CHECK(be_journal_get(j, "sess_a") == BE_J_REDIS);
	/* Still usable. */
	CHECK(be_journal_add(j, "sess_new", BE_J_REDIS) == 0);
	be_journal_free(j);

	buf = slurp(jpath, &len);
	CHECK(buf && len > 0 && buf[len - 1] == '\n');
	free(buf);
	j = open_clean(100);
	CHECK(be_journal_count(j) == kept + 1);
	CHECK(be_journal_get(j, "sess_new") == BE_J_REDIS);
	be_journal_free(j);
}

static void test_corrupt(void)
{
	char line[128];
	size_t len;
	char *buf, *p;

	/* A torn last record. */
	make_abc();
	spew(jpath, "+ 1 sess_d 1234", 15, O_APPEND);
	check_corrupt("torn last line", 4, 3);

	/* A flipped byte in the second record's name. */
	make_abc();
	buf = slurp(jpath, &len);
	p = strstr(buf, "sess_b");
	CHECK(p);
	p[5] ^= 0x01;
	spew(jpath, buf, len, O_TRUNC);
	free(buf);
	check_corrupt("bad checksum", 2, 2);
	CHECK(access(jpath, F_OK) == 0);

	/* A flipped byte in a checksum. */
	make_abc();
	buf = slurp(jpath, &len);
	p = buf + len - 1; /* the last record's newline */
	p[-1] = p[-1] == '0' ? '1' : '0';
	spew(jpath, buf, len, O_TRUNC);
	free(buf);
	check_corrupt("bad checksum", 3, 2);

	/* A newline lost between two records merges them. */
	make_abc();
	buf = slurp(jpath, &len);
	*strchr(strchr(buf, '\n') + 1, '\n') = 'x';
	spew(jpath, buf, len, O_TRUNC);
	free(buf);
	/* Lines 2 and 3 are now one bad line: sess_b and sess_c are gone. */
	check_corrupt("bad checksum", 2, 1);

	/* A record with a valid checksum but an unknown op. */
	make_abc();
	snprintf(line, sizeof(line), "* 1 sess_z");
	snprintf(line + 10, sizeof(line) - 10, " %08x\n",
		 crc32_bitwise(line, 10));
	spew(jpath, line, strlen(line), O_APPEND);
	check_corrupt("bad op", 4, 3);

	/* Valid checksum, store bits out of range. */
	make_abc();
	snprintf(line, sizeof(line), "+ 4 sess_z");
	snprintf(line + 10, sizeof(line) - 10, " %08x\n",
		 crc32_bitwise(line, 10));
	spew(jpath, line, strlen(line), O_APPEND);
	check_corrupt("bad field", 4, 3);

	/* Garbage in the middle, counted. */
	make_abc();
	buf = slurp(jpath, &len);
	p = strchr(buf, '\n') + 1;
	spew(jpath, buf, (size_t)(p - buf), O_TRUNC);
	spew(jpath, "junk\n\n", 6, O_APPEND);
	spew(jpath, p, len - (size_t)(p - buf), O_APPEND);
	free(buf);
	{
		char err[512];
		bool corrupt = false;
		struct be_journal *j;

		j = be_journal_open(jpath, 100, &corrupt, err, sizeof(err));
		CHECK(j && corrupt);
		CHECK(strstr(err, "at line 2: bad field (2 bad lines)"));
		CHECK(j && be_journal_count(j) == 3);
		be_journal_free(j);
	}
}

static void test_open_errors(void)
{
	char err[512], path[160];
	bool corrupt = true;

	snprintf(path, sizeof(path), "%s/nodir/journal", topdir);
	CHECK(!be_journal_open(path, 10, &corrupt, err, sizeof(err)));
	CHECK(!corrupt);
	CHECK(strstr(err, "cannot open journal") != NULL);
	CHECK(!be_journal_open(topdir, 10, NULL, err, sizeof(err)));
	CHECK(strstr(err, "cannot open journal") != NULL);
}

/*
 * A full disk (a tmpfs of two pages) cuts records short: every add either
 * succeeds and survives a reopen, or fails and leaves no partial record.
 * Skipped without permission to mount.
 */
static void test_enospc(void)
{
	char mnt[128], name[64];
	struct be_journal *j;
	int i, ok = 0, ret = 0;

	snprintf(mnt, sizeof(mnt), "%s/mnt", topdir);
	CHECK(mkdir(mnt, 0700) == 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=8k,mode=0700") < 0) {
		fprintf(stderr, "cannot mount a tmpfs: %s: skipping\n",
			strerror(errno));
		return;
	}
	snprintf(jpath, sizeof(jpath), "%s/journal", mnt);
	j = open_clean(100000);
	for (i = 0; j && i < 100000; i++) {
		snprintf(name, sizeof(name), "sess_%d_padding_padding", i);
		ret = be_journal_add(j, name, BE_J_REDIS);
		if (ret)
			break;
		ok++;
	}
	CHECK(ret == -ENOSPC);
	CHECK(ok > 10);
	CHECK(be_journal_add(j, "sess_x", BE_J_REDIS) == -ENOSPC);
	CHECK(be_journal_count(j) == (size_t)ok);
	be_journal_free(j);
	j = open_clean(100000);
	CHECK(be_journal_count(j) == (size_t)ok);
	be_journal_free(j);
	snprintf(jpath, sizeof(jpath), "%s/journal", topdir);
	if (umount(mnt) < 0)
		CHECK(umount2(mnt, MNT_DETACH) == 0);
}

struct worker {
	struct be_journal *j;
	int id;
	int fails;
};

static void *add_worker(void *arg)
{
	struct worker *w = arg;
	char name[64];
	int i;

	for (i = 0; i < 400; i++) {
		snprintf(name, sizeof(name), "sess_t%d_%d", w->id, i);
		if (be_journal_add(w->j, name, BE_J_REDIS))
			w->fails++;
		if (be_journal_add(w->j, "sess shared", BE_J_LOWER))
			w->fails++;
		if (i % 4 == 0 && be_journal_done(w->j, name, BE_J_REDIS))
			w->fails++;
	}
	return NULL;
}

static void test_threads(void)
{
	struct worker w[8];
	struct be_journal *j;
	pthread_t t[8];
	char name[64];
	int i, k, missing = 0;

	unlink(jpath);
	j = open_clean(100000);
	for (i = 0; i < 8; i++) {
		w[i] = (struct worker){ .j = j, .id = i };
		CHECK(pthread_create(&t[i], NULL, add_worker, &w[i]) == 0);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		CHECK(w[i].fails == 0);
	}
	CHECK(be_journal_count(j) == 8 * 300 + 1);
	be_journal_free(j);

	j = open_clean(100000);
	CHECK(be_journal_count(j) == 8 * 300 + 1);
	for (i = 0; i < 8; i++) {
		for (k = 0; k < 400; k++) {
			snprintf(name, sizeof(name), "sess_t%d_%d", i, k);
			missing += be_journal_get(j, name) !=
				   (k % 4 ? BE_J_REDIS : 0U);
		}
	}
	CHECK(missing == 0);
	CHECK(be_journal_get(j, "sess shared") == BE_J_LOWER);
	be_journal_free(j);
}

/* Manifest ---------------------------------------------------------------- */

struct mlist {
	char names[16][64];
	int64_t mtimes[16];
	int n;
};

static int mlist_cb(const struct be_manifest_entry *e, void *arg)
{
	struct mlist *m = arg;

	if (m->n >= 16)
		return -1;
	snprintf(m->names[m->n], sizeof(m->names[0]), "%s", e->name);
	m->mtimes[m->n++] = e->mtime_ns;
	return 0;
}

static int64_t mlist_mtime(const struct mlist *m, const char *name)
{
	int i;

	for (i = 0; i < m->n; i++) {
		if (!strcmp(m->names[i], name))
			return m->mtimes[i];
	}
	return -1;
}

static int stop_cb(const struct be_manifest_entry *e, void *arg)
{
	return 5;
}

static void make_file(int dfd, const char *name, int64_t mtime_ns)
{
	struct timespec ts[2];
	int fd;

	fd = openat(dfd, name, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	ts[0].tv_sec = mtime_ns / 1000000000;
	ts[0].tv_nsec = mtime_ns % 1000000000;
	ts[1] = ts[0];
	CHECK(futimens(fd, ts) == 0);
	close(fd);
}

static void test_manifest(void)
{
	char ddir[128], mpath[160];
	struct mlist m = { 0 };
	struct timespec now;
	int64_t written = 0, now_ns;
	size_t len, i;
	char *buf, *copy;
	int dfd, ret, bad = 0;

	snprintf(ddir, sizeof(ddir), "%s/lower", topdir);
	snprintf(mpath, sizeof(mpath), "%s/manifest", topdir);
	CHECK(mkdir(ddir, 0700) == 0);
	dfd = open(ddir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(dfd >= 0);

	CHECK(be_manifest_read(mpath, &written, mlist_cb, &m) == -ENOENT);

	/* An empty directory. */
	CHECK(be_manifest_write(mpath, dfd) == 0);
	CHECK(be_manifest_read(mpath, &written, mlist_cb, &m) == 0);
	CHECK(m.n == 0);
	clock_gettime(CLOCK_REALTIME, &now);
	now_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	CHECK(written > now_ns - 60000000000LL && written <= now_ns);

	make_file(dfd, "sess_a", 1700000000123456789LL);
	make_file(dfd, "sess b c", 1600000000000000001LL);
	make_file(dfd, "0123456789abcdef0123456789abcdef", 5);
	make_file(dfd, ".sessfs-tmp.x", 7);
	make_file(dfd, "end 1 00000000", 8);
	CHECK(mkdirat(dfd, "subdir", 0700) == 0);
	CHECK(symlinkat("/etc/passwd", dfd, "sess_link") == 0);
	make_file(dfd, "sess\nnl", 9);
	CHECK(be_manifest_write(mpath, dfd) == 0);
	CHECK(be_manifest_read(mpath, &written, mlist_cb, &m) == 0);
	CHECK(m.n == 4);
	CHECK(mlist_mtime(&m, "sess_a") == 1700000000123456789LL);
	CHECK(mlist_mtime(&m, "sess b c") == 1600000000000000001LL);
	CHECK(mlist_mtime(&m, "0123456789abcdef0123456789abcdef") == 5);
	CHECK(mlist_mtime(&m, "end 1 00000000") == 8);
	CHECK(be_manifest_read(mpath, NULL, stop_cb, NULL) == 5);

	/* Every truncation and every flipped byte is refused as a whole. */
	buf = slurp(mpath, &len);
	CHECK(buf && len > 40);
	for (i = 0; buf && i < len; i++) {
		spew(mpath, buf, i, O_TRUNC);
		memset(&m, 0, sizeof(m));
		ret = be_manifest_read(mpath, &written, mlist_cb, &m);
		bad += ret != -EBADMSG || m.n != 0;
	}
	CHECK(bad == 0);
	copy = malloc(len);
	for (i = 0; buf && copy && i < len; i++) {
		memcpy(copy, buf, len);
		copy[i] ^= 0x01;
		spew(mpath, copy, len, O_TRUNC);
		memset(&m, 0, sizeof(m));
		ret = be_manifest_read(mpath, &written, mlist_cb, &m);
		if (ret != -EBADMSG || m.n != 0) {
			fprintf(stderr, "flip at %zu: %d\n", i, ret);
			bad++;
		}
	}
	CHECK(bad == 0);
	free(copy);
	/* Intact again: read fine. */
	spew(mpath, buf, len, O_TRUNC);
	memset(&m, 0, sizeof(m));
	CHECK(be_manifest_read(mpath, &written, mlist_cb, &m) == 0);
	CHECK(m.n == 4);
	free(buf);

	CHECK(count_lines(mpath) == 6); /* header, 4 entries, end */
	CHECK(no_temps());
	close(dfd);
}

int main(void)
{
	snprintf(topdir, sizeof(topdir), "/tmp/sessfs-journal-XXXXXX");
	if (!mkdtemp(topdir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(jpath, sizeof(jpath), "%s/journal", topdir);
	test_crc_and_format();
	test_basic();
	test_persist_and_spaces();
	test_compaction();
	test_max_names();
	test_corrupt();
	test_open_errors();
	test_enospc();
	test_threads();
	test_manifest();
	nftw(topdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	return test_exit();
}
