/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of backend/store.c against a real redis-server started for
 * the test: get/put/create/copy-up/delete/setmeta round trips with binary
 * data, tombstones against copy-up, the stale-retry rule, TTLs, values
 * written by phpredis's own handler, the server check, listing 10 000
 * names with tombstones, and the pipelined bulk put.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "conn.h"
#include "store.h"
#include "store_i.h"
#include "testutil.h"

#define TTL_S	   3600
#define TTL_MS	   (TTL_S * 1000LL)
#define SLACK_MS   3000
#define NS_PER_MS  1000000LL
#define LIST_NAMES 10000
#define LIST_DELS  2000

static struct be_store_config cfg = {
	.ks = { "app1:", BE_LAYOUT_PLAIN },
	.ttl = { .ttl_s = TTL_S },
	.host_id = "testhost-0123abcd",
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / NS_PER_MS;
}

static bool near(int64_t got, int64_t want)
{
	if (got >= want - SLACK_MS && got <= want + SLACK_MS)
		return true;
	fprintf(stderr, "got %lld, want %lld (+-%d)\n", (long long)got,
		(long long)want, SLACK_MS);
	return false;
}

/* Sends the command of the NULL-terminated words; returns the reply. */
static redisReply *cmd(struct be_conn *c, const char *word, ...)
{
	const char *argv[16];
	size_t lens[16];
	redisReply *r = NULL;
	va_list ap;
	int argc = 0;

	va_start(ap, word);
	for (; word && argc < 16; word = va_arg(ap, const char *)) {
		argv[argc] = word;
		lens[argc++] = strlen(word);
	}
	va_end(ap);
	if (be_conn_command(c, &r, argc, argv, lens, 0))
		return NULL;
	return r;
}

/* Runs a command and returns its integer reply, or -1000. */
static long long cmd_int(struct be_conn *c, const char *a, const char *b,
			 const char *d)
{
	redisReply *r = cmd(c, a, b, d, NULL);
	long long v = -1000;

	if (r && r->type == REDIS_REPLY_INTEGER)
		v = r->integer;
	freeReplyObject(r);
	return v;
}

/*
 * The counter 'field' (calls, rejected_calls) of the command 'name' in
 * INFO commandstats, 0 before its first use, or -1.
 */
static long long stat_of(struct be_conn *c, const char *name, const char *field)
{
	redisReply *r = cmd(c, "INFO", "commandstats", NULL);
	char key[64];
	long long v = -1;
	const char *p, *end;

	snprintf(key, sizeof(key), "cmdstat_%s:", name);
	if (r && r->type == REDIS_REPLY_STRING) {
		v = 0;
		p = strstr(r->str, key);
		end = p ? strchr(p, '\n') : NULL;
		snprintf(key, sizeof(key), "%s=", field);
		if (p)
			p = strstr(p, key);
		if (p && (!end || p < end))
			v = atoll(p + strlen(key));
	}
	freeReplyObject(r);
	return v;
}

/* How many times Redis ran 'name' so far, or -1. */
static long long calls_of(struct be_conn *c, const char *name)
{
	return stat_of(c, name, "calls");
}

static void cmd_ok(struct be_conn *c, const char *a, const char *b,
		   const char *d, const char *e, const char *f)
{
	redisReply *r = cmd(c, a, b, d, e, f, NULL);

	CHECK(r && r->type != REDIS_REPLY_ERROR);
	if (r && r->type == REDIS_REPLY_ERROR)
		fprintf(stderr, "%s: %s\n", a, r->str);
	freeReplyObject(r);
}

static struct be_meta meta_at(int64_t mtime_ms)
{
	struct be_meta m = {
		.mtime_ns = mtime_ms * NS_PER_MS + 123456,
		.ctime_ns = mtime_ms * NS_PER_MS + 654321,
		.uid = 33,
		.gid = 44,
		.mode = 0100640, /* file type bits are dropped */
	};

	return m;
}

static void test_get_put(struct be_conn *c)
{
	static const char data[] = "a\0b\0\xff\x80 session";
	struct be_meta m = meta_at(now_ms());
	long long execs, scripts;
	struct be_file f;
	uint64_t wv = 0;

	CHECK(be_store_get(c, &cfg, "sess_1", true, &f) == 0);
	CHECK(f.state == BE_ABSENT && !f.data);
	be_file_release(&f);

	CHECK(be_store_put(c, &cfg, "sess_1", data, sizeof(data), &m,
			   BE_PUT_REPLACE, &wv, NULL) == 0);
	CHECK(wv == 1);
	CHECK(be_store_get(c, &cfg, "sess_1", true, &f) == 0);
	CHECK(f.state == BE_PRESENT && f.has_meta);
	CHECK(f.size == sizeof(data) && f.data &&
	      memcmp(f.data, data, sizeof(data)) == 0);
	CHECK(f.meta.version == BE_LAYOUT_VERSION);
	CHECK(f.meta.mtime_ns == m.mtime_ns && f.meta.ctime_ns == m.ctime_ns);
	CHECK(f.meta.uid == 33 && f.meta.gid == 44 && f.meta.mode == 0640);
	CHECK(f.meta.wver == 1 && !f.meta.deleted);
	CHECK(strcmp(f.meta.host, cfg.host_id) == 0 && f.meta.hseq > 0);
	CHECK(near(f.pttl_ms, TTL_MS));
	be_file_release(&f);
	CHECK(near(cmd_int(c, "PTTL", "app1:{app1:sess_1}:m", NULL),
		   2 * TTL_MS));

	/* Without data: size only.  A read is a transaction, no script. */
	execs = calls_of(c, "exec");
	scripts = calls_of(c, "evalsha");
	CHECK(be_store_get(c, &cfg, "sess_1", false, &f) == 0);
	CHECK(f.state == BE_PRESENT && !f.data && f.size == sizeof(data));
	be_file_release(&f);
	CHECK(calls_of(c, "exec") == execs + 1);
	CHECK(calls_of(c, "evalsha") == scripts);

	/* Every write bumps the version; an empty value is a value. */
	CHECK(be_store_put(c, &cfg, "sess_1", NULL, 0, &m, BE_PUT_REPLACE, &wv,
			   NULL) == 0);
	CHECK(wv == 2);
	CHECK(be_store_get(c, &cfg, "sess_1", true, &f) == 0);
	CHECK(f.state == BE_PRESENT && f.size == 0 && f.data);
	be_file_release(&f);

	/*
	 * A key of another type under the prefix (not ours): the read's
	 * transaction gets WRONGTYPE inside EXEC, a clear -EIO, nothing kept.
	 */
	cmd_ok(c, "HSET", "app1:sess_w", "f", "v", NULL);
	CHECK(be_store_get(c, &cfg, "sess_w", true, &f) == -EIO);
	CHECK(!f.data && f.state == BE_ABSENT);
	CHECK(be_store_get(c, &cfg, "sess_w", false, &f) == -EIO);
	cmd_ok(c, "DEL", "app1:sess_w", NULL, NULL, NULL);
	CHECK(be_store_get(c, &cfg, "sess_w", false, &f) == 0);
	CHECK(f.state == BE_ABSENT);
	be_file_release(&f);

	/* Names that are not sessions never reach Redis. */
	CHECK(be_store_put(c, &cfg, "x.tmp", "x", 1, &m, BE_PUT_REPLACE, NULL,
			   NULL) == -EINVAL);
	CHECK(be_store_put(c, &cfg, "a{b", "x", 1, &m, BE_PUT_REPLACE, NULL,
			   NULL) == -EINVAL);
	CHECK(be_store_get(c, &cfg, "..", false, &f) == -EINVAL);
	CHECK(be_store_delete(c, &cfg, "/", 0) == -EINVAL);
	CHECK(be_store_setmeta(c, &cfg, "", &m, NULL) == -EINVAL);
}

static void test_ttl(struct be_conn *c)
{
	unsigned char hdr[] = { 0, 0, 0, 0, 0x80, 'p' };
	const char *cl = "0123456789abcdef0123456789abcdef";
	int64_t now = now_ms();
	uint32_t expiry = (uint32_t)(now / 1000 + 100);
	struct be_meta m = meta_at(now - 100 * 1000);
	struct be_meta old = meta_at(now - TTL_MS - 10000);
	long long pttl;

	/* Sliding: mtime + ttl - now. */
	CHECK(be_store_put(c, &cfg, "sess_t1", "x", 1, &m, BE_PUT_REPLACE, NULL,
			   NULL) == 0);
	CHECK(near(cmd_int(c, "PTTL", "app1:sess_t1", NULL), TTL_MS - 100000));
	CHECK(near(cmd_int(c, "PTTL", "app1:{app1:sess_t1}:m", NULL),
		   2 * TTL_MS - 100000));

	/* Expired by mtime: still stored, for at least a second. */
	CHECK(be_store_put(c, &cfg, "sess_t2", "x", 1, &old, BE_PUT_REPLACE,
			   NULL, NULL) == 0);
	pttl = cmd_int(c, "PTTL", "app1:sess_t2", NULL);
	CHECK(pttl > 0 && pttl <= 1000);
	CHECK(near(cmd_int(c, "PTTL", "app1:{app1:sess_t2}:m", NULL),
		   TTL_MS + 1000));

	/* A cachelib header sets the TTL... */
	memcpy(hdr,
	       &(uint8_t[4]){ expiry & 0xff, (expiry >> 8) & 0xff,
			      (expiry >> 16) & 0xff, expiry >> 24 },
	       4);
	CHECK(be_store_put(c, &cfg, cl, hdr, sizeof(hdr), &m, BE_PUT_REPLACE,
			   NULL, NULL) == 0);
	CHECK(near(cmd_int(c, "PTTL", "app1:0123456789abcdef0123456789abcdef",
			   NULL),
		   (int64_t)expiry * 1000 - now));

	/* ...and a chmod or utimens keeps it (setmeta is tested below). */
	m = meta_at(now);
	CHECK(be_store_setmeta(c, &cfg, cl, &m, NULL) == 0);
	CHECK(near(cmd_int(c, "PTTL", "app1:0123456789abcdef0123456789abcdef",
			   NULL),
		   (int64_t)expiry * 1000 - now));
	CHECK(near(cmd_int(c, "PTTL",
			   "app1:{app1:0123456789abcdef0123456789abcdef}:m",
			   NULL),
		   (int64_t)expiry * 1000 - now + TTL_MS));

	/* A header of 0 means the sliding TTL. */
	memset(hdr, 0, 4);
	m = meta_at(now - 5000);
	CHECK(be_store_put(c, &cfg, cl, hdr, sizeof(hdr), &m, BE_PUT_REPLACE,
			   NULL, NULL) == 0);
	CHECK(near(cmd_int(c, "PTTL", "app1:0123456789abcdef0123456789abcdef",
			   NULL),
		   TTL_MS - 5000));
}

static void test_create(struct be_conn *c)
{
	struct be_meta m = meta_at(now_ms());
	struct be_file cur;
	uint64_t wv = 0;

	CHECK(be_store_put(c, &cfg, "sess_c", "one", 3, &m, BE_PUT_CREATE, &wv,
			   &cur) == 0);
	CHECK(wv == 1 && cur.state == BE_ABSENT);
	CHECK(be_store_put(c, &cfg, "sess_c", "two", 3, &m, BE_PUT_CREATE, &wv,
			   &cur) == -EEXIST);
	CHECK(cur.state == BE_PRESENT && cur.size == 3 && cur.data &&
	      memcmp(cur.data, "one", 3) == 0 && cur.meta.wver == 1);
	be_file_release(&cur);
	CHECK(be_store_put(c, &cfg, "sess_c", "two", 3, &m, BE_PUT_CREATE, NULL,
			   NULL) == -EEXIST);

	/* A new session under a deleted name. */
	CHECK(be_store_delete(c, &cfg, "sess_c", 0) == 1);
	CHECK(be_store_put(c, &cfg, "sess_c", "three", 5, &m, BE_PUT_CREATE,
			   &wv, NULL) == 0);
	CHECK(wv == 3);
	CHECK(be_store_get(c, &cfg, "sess_c", true, &cur) == 0);
	CHECK(cur.state == BE_PRESENT && !cur.meta.deleted && cur.size == 5 &&
	      memcmp(cur.data, "three", 5) == 0);
	be_file_release(&cur);
}

static void test_delete(struct be_conn *c)
{
	int64_t now = now_ms();
	struct be_meta m = meta_at(now - 60000);
	struct be_file f;
	long long pttl;

	CHECK(be_store_put(c, &cfg, "sess_d", "x", 1, &m, BE_PUT_REPLACE, NULL,
			   NULL) == 0);
	/* The meta's mtime wins over the argument. */
	CHECK(be_store_delete(c, &cfg, "sess_d", 0) == 1);
	CHECK(be_store_get(c, &cfg, "sess_d", true, &f) == 0);
	CHECK(f.state == BE_TOMBSTONE && f.meta.deleted && !f.data);
	CHECK(f.meta.wver == 2 && f.meta.mtime_ns == m.mtime_ns);
	be_file_release(&f);
	CHECK(cmd_int(c, "EXISTS", "app1:sess_d", NULL) == 0);
	CHECK(near(cmd_int(c, "PTTL", "app1:{app1:sess_d}:m", NULL),
		   TTL_MS - 60000));

	/* Deleting again: no value, the tombstone stays. */
	CHECK(be_store_delete(c, &cfg, "sess_d", 0) == 0);
	CHECK(be_store_get(c, &cfg, "sess_d", false, &f) == 0);
	CHECK(f.state == BE_TOMBSTONE && f.meta.wver == 3);
	be_file_release(&f);

	/* No value, no meta: a tombstone from the argument's mtime. */
	CHECK(be_store_delete(c, &cfg, "sess_d2",
			      (now - TTL_MS + 20000) * NS_PER_MS) == 0);
	CHECK(be_store_get(c, &cfg, "sess_d2", false, &f) == 0);
	CHECK(f.state == BE_TOMBSTONE && f.meta.deleted &&
	      f.meta.mtime_ns == (now - TTL_MS + 20000) * NS_PER_MS);
	be_file_release(&f);
	CHECK(near(cmd_int(c, "PTTL", "app1:{app1:sess_d2}:m", NULL), 20000));

	/* Tombstones live at least a second. */
	CHECK(be_store_delete(c, &cfg, "sess_d3", 0) == 0);
	pttl = cmd_int(c, "PTTL", "app1:{app1:sess_d3}:m", NULL);
	CHECK(pttl > 0 && pttl <= 1000);
}

static void test_copyup(struct be_conn *c)
{
	int64_t now = now_ms();
	struct be_meta t = meta_at(now - 30000);
	struct be_meta older = meta_at(now - 40000);
	struct be_meta newer = meta_at(now - 20000);
	struct be_file cur;
	uint64_t wv;

	/* Where nothing is, copy-up writes. */
	CHECK(be_store_put(c, &cfg, "sess_u", "lower", 5, &t, BE_PUT_COPYUP,
			   &wv, NULL) == 0);
	CHECK(wv == 1);
	/* Same or older mtime than the value: refused, current returned. */
	CHECK(be_store_put(c, &cfg, "sess_u", "old", 3, &older, BE_PUT_COPYUP,
			   NULL, &cur) == -EEXIST);
	CHECK(cur.state == BE_PRESENT && cur.size == 5 &&
	      memcmp(cur.data, "lower", 5) == 0);
	be_file_release(&cur);
	CHECK(be_store_put(c, &cfg, "sess_u", "same", 4, &t, BE_PUT_COPYUP,
			   NULL, NULL) == -EEXIST);

	/* A tombstone wins over a copy that is not newer. */
	CHECK(be_store_delete(c, &cfg, "sess_u", 0) == 1);
	CHECK(be_store_put(c, &cfg, "sess_u", "old", 3, &older, BE_PUT_COPYUP,
			   NULL, &cur) == -EEXIST);
	CHECK(cur.state == BE_TOMBSTONE && cur.meta.deleted && !cur.data);
	be_file_release(&cur);
	CHECK(be_store_put(c, &cfg, "sess_u", "lower", 5, &t, BE_PUT_COPYUP,
			   NULL, NULL) == -EEXIST);
	CHECK(cmd_int(c, "EXISTS", "app1:sess_u", NULL) == 0);

	/* A copy changed after the delete is newer: accepted. */
	CHECK(be_store_put(c, &cfg, "sess_u", "new", 3, &newer, BE_PUT_COPYUP,
			   &wv, NULL) == 0);
	CHECK(wv == 3);
	CHECK(be_store_get(c, &cfg, "sess_u", true, &cur) == 0);
	CHECK(cur.state == BE_PRESENT && !cur.meta.deleted &&
	      memcmp(cur.data, "new", 3) == 0 &&
	      cur.meta.mtime_ns == newer.mtime_ns);
	be_file_release(&cur);

	/* Over a newer value: refused; under an older one: accepted. */
	newer.mtime_ns += 1;
	CHECK(be_store_put(c, &cfg, "sess_u", "newest", 6, &newer,
			   BE_PUT_COPYUP, NULL, NULL) == 0);
	CHECK(be_store_put(c, &cfg, "sess_u", "new", 3, &t, BE_PUT_COPYUP, NULL,
			   NULL) == -EEXIST);

	/* A tombstone without mtime (not ours) is never overwritten. */
	cmd_ok(c, "HSET", "app1:{app1:sess_u2}:m", "del", "1", NULL);
	CHECK(be_store_put(c, &cfg, "sess_u2", "x", 1, &newer, BE_PUT_COPYUP,
			   NULL, NULL) == -EEXIST);
}

static void test_setmeta(struct be_conn *c)
{
	int64_t now = now_ms();
	struct be_meta m = meta_at(now);
	struct be_file f;
	uint64_t wv;

	CHECK(be_store_setmeta(c, &cfg, "sess_m", &m, &wv) == -ENOENT);
	CHECK(cmd_int(c, "EXISTS", "app1:{app1:sess_m}:m", NULL) == 0);
	CHECK(be_store_put(c, &cfg, "sess_m", "keep\0me", 7, &m, BE_PUT_REPLACE,
			   NULL, NULL) == 0);

	m = meta_at(now - 100000);
	m.uid = 1000;
	m.gid = 1001;
	m.mode = 0600;
	CHECK(be_store_setmeta(c, &cfg, "sess_m", &m, &wv) == 0);
	CHECK(wv == 2);
	CHECK(be_store_get(c, &cfg, "sess_m", true, &f) == 0);
	CHECK(f.state == BE_PRESENT && f.size == 7 &&
	      memcmp(f.data, "keep\0me", 7) == 0);
	CHECK(f.meta.uid == 1000 && f.meta.gid == 1001 && f.meta.mode == 0600);
	CHECK(f.meta.mtime_ns == m.mtime_ns && f.meta.ctime_ns == m.ctime_ns);
	CHECK(near(f.pttl_ms, TTL_MS - 100000));
	be_file_release(&f);
	CHECK(near(cmd_int(c, "PTTL", "app1:{app1:sess_m}:m", NULL),
		   2 * TTL_MS - 100000));

	/* An mtime far in the past: at least a second left. */
	m = meta_at(now - 2 * TTL_MS);
	CHECK(be_store_setmeta(c, &cfg, "sess_m", &m, NULL) == 0);
	CHECK(cmd_int(c, "PTTL", "app1:sess_m", NULL) <= 1000);
	CHECK(near(cmd_int(c, "PTTL", "app1:{app1:sess_m}:m", NULL),
		   TTL_MS + 1000));

	/* A tombstone has no value to change. */
	CHECK(be_store_delete(c, &cfg, "sess_m", 0) == 1);
	CHECK(be_store_setmeta(c, &cfg, "sess_m", &m, NULL) == -ENOENT);
	CHECK(be_store_get(c, &cfg, "sess_m", false, &f) == 0);
	CHECK(f.state == BE_TOMBSTONE);
	be_file_release(&f);
}

static void test_phpredis(struct be_conn *c)
{
	struct be_store_config php = cfg;
	struct be_meta m;
	struct be_file f;
	char pttl[32];
	int64_t now = now_ms();
	int64_t mtime_ms = now - 60000;

	php.ks.prefix = BE_PHPREDIS_PREFIX;
	php.ks.layout = BE_LAYOUT_PHPREDIS;
	snprintf(pttl, sizeof(pttl), "%lld", (long long)(TTL_MS - 60000));
	/* As phpredis's own handler writes it: no meta key. */
	cmd_ok(c, "SET", "PHPREDIS_SESSION:abc", "a|i:1;", "PX", pttl);

	CHECK(be_store_get(c, &php, "sess_abc", true, &f) == 0);
	CHECK(f.state == BE_PRESENT && !f.has_meta && f.size == 6 &&
	      memcmp(f.data, "a|i:1;", 6) == 0);
	CHECK(near(f.meta.mtime_ns / NS_PER_MS, mtime_ms));
	CHECK(f.meta.ctime_ns == f.meta.mtime_ns);
	CHECK(f.meta.uid == 0 && f.meta.mode == 0 && !f.meta.deleted);
	be_file_release(&f);

	/* A copy-up older than the value's implied mtime is refused. */
	m = meta_at(mtime_ms - 10000);
	CHECK(be_store_put(c, &php, "sess_abc", "old", 3, &m, BE_PUT_COPYUP,
			   NULL, &f) == -EEXIST);
	CHECK(f.state == BE_PRESENT && !f.has_meta);
	be_file_release(&f);
	/* setmeta adds the meta key. */
	m = meta_at(mtime_ms);
	CHECK(be_store_setmeta(c, &php, "sess_abc", &m, NULL) == 0);
	CHECK(be_store_get(c, &php, "sess_abc", true, &f) == 0);
	CHECK(f.has_meta && f.meta.mtime_ns == m.mtime_ns &&
	      memcmp(f.data, "a|i:1;", 6) == 0);
	be_file_release(&f);
	CHECK(cmd_int(c, "EXISTS", "PHPREDIS_SESSION:{PHPREDIS_SESSION:abc}:m",
		      NULL) == 1);

	/* A newer copy-up over a native value without meta is accepted. */
	cmd_ok(c, "SET", "PHPREDIS_SESSION:def", "x", "PX", pttl);
	m = meta_at(mtime_ms + 10000);
	CHECK(be_store_put(c, &php, "sess_def", "newer", 5, &m, BE_PUT_COPYUP,
			   NULL, NULL) == 0);
	CHECK(be_store_get(c, &php, "sess_def", true, &f) == 0);
	CHECK(f.has_meta && f.size == 5 && memcmp(f.data, "newer", 5) == 0);
	be_file_release(&f);
	CHECK(be_store_put(c, &php, "sess_a_b", "x", 1, &m, BE_PUT_REPLACE,
			   NULL, NULL) == -EINVAL);
}

/* Sets the meta's "hs" of 'mkey' to 'seq'. */
static void set_hseq(struct be_conn *c, const char *mkey, uint64_t seq)
{
	char buf[BE_HSEQ_DIGITS + 1];

	be_hseq_format(buf, seq);
	cmd_ok(c, "HSET", mkey, "hs", buf, NULL);
}

static void test_stale_retry(struct be_conn *c)
{
	const char *mkey = "app1:{app1:sess_s}:m";
	struct be_store_config other = cfg;
	struct be_meta m = meta_at(now_ms());
	struct be_file f;
	uint64_t wv = 0;

	CHECK(be_store_put(c, &cfg, "sess_s", "new", 3, &m, BE_PUT_REPLACE, &wv,
			   NULL) == 0);
	/*
	 * A newer write of ours is stored (its sequence is ahead of what
	 * the next call takes): the call is a delayed retry of an older
	 * write and must change nothing, yet succeed.
	 */
	set_hseq(c, mkey, be_store_next_hseq() + 60 * 1000000000ULL);
	CHECK(be_store_put(c, &cfg, "sess_s", "old", 3, &m, BE_PUT_REPLACE, &wv,
			   NULL) == 0);
	CHECK(wv == 1);
	CHECK(be_store_put(c, &cfg, "sess_s", "old", 3, &m, BE_PUT_CREATE, NULL,
			   NULL) == 0);
	CHECK(be_store_setmeta(c, &cfg, "sess_s", &m, NULL) == 0);
	CHECK(be_store_delete(c, &cfg, "sess_s", 0) == 1);
	CHECK(be_store_get(c, &cfg, "sess_s", true, &f) == 0);
	CHECK(f.state == BE_PRESENT && f.meta.wver == 1 &&
	      memcmp(f.data, "new", 3) == 0);
	be_file_release(&f);

	/* The sequence of another host means nothing to us. */
	other.host_id = "otherhost";
	CHECK(be_store_put(c, &other, "sess_s", "two", 3, &m, BE_PUT_REPLACE,
			   &wv, NULL) == 0);
	CHECK(wv == 2);

	/* An older sequence of ours: a normal write. */
	set_hseq(c, mkey, 1);
	cmd_ok(c, "HSET", mkey, "host", cfg.host_id, NULL);
	CHECK(be_store_put(c, &cfg, "sess_s", "three", 5, &m, BE_PUT_REPLACE,
			   &wv, NULL) == 0);
	CHECK(wv == 3);
	CHECK(be_store_get(c, &cfg, "sess_s", true, &f) == 0);
	CHECK(f.size == 5 && memcmp(f.data, "three", 5) == 0);
	be_file_release(&f);

	/* A corrupt sequence does not block writes. */
	cmd_ok(c, "HSET", mkey, "hs", "zzz", NULL);
	CHECK(be_store_put(c, &cfg, "sess_s", "four", 4, &m, BE_PUT_REPLACE,
			   &wv, NULL) == 0);
	CHECK(wv == 4);
}

#define HSEQ_THREADS 4
#define HSEQ_CALLS   20000

static void *hseq_thread(void *arg)
{
	uint64_t *seqs = arg;
	size_t i;

	for (i = 0; i < HSEQ_CALLS; i++)
		seqs[i] = be_store_next_hseq();
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void test_hseq_threads(void)
{
	uint64_t *seqs = calloc(HSEQ_THREADS * HSEQ_CALLS, sizeof(*seqs));
	pthread_t th[HSEQ_THREADS];
	uint64_t before = (uint64_t)now_ms() * NS_PER_MS;
	size_t i;

	if (!seqs)
		abort();
	for (i = 0; i < HSEQ_THREADS; i++)
		pthread_create(&th[i], NULL, hseq_thread,
			       seqs + i * HSEQ_CALLS);
	for (i = 0; i < HSEQ_THREADS; i++)
		pthread_join(th[i], NULL);
	/* Per thread increasing, all distinct, from the real-time clock. */
	for (i = 0; i < HSEQ_THREADS * HSEQ_CALLS; i++)
		if (i % HSEQ_CALLS)
			CHECK(seqs[i] > seqs[i - 1]);
	qsort(seqs, HSEQ_THREADS * HSEQ_CALLS, sizeof(*seqs), cmp_u64);
	for (i = 1; i < HSEQ_THREADS * HSEQ_CALLS; i++)
		if (seqs[i] == seqs[i - 1]) {
			CHECK(seqs[i] != seqs[i - 1]);
			break;
		}
	CHECK(seqs[0] >= before);
	free(seqs);
}

static void test_noscript(struct be_conn *c)
{
	struct be_meta m = meta_at(now_ms());
	struct be_file f;

	cmd_ok(c, "SCRIPT", "FLUSH", NULL, NULL, NULL);
	CHECK(be_store_get(c, &cfg, "sess_n", false, &f) == 0);
	CHECK(f.state == BE_ABSENT);
	cmd_ok(c, "SCRIPT", "FLUSH", NULL, NULL, NULL);
	CHECK(be_store_put(c, &cfg, "sess_n", "x", 1, &m, BE_PUT_REPLACE, NULL,
			   NULL) == 0);
	CHECK(be_store_get(c, &cfg, "sess_n", false, &f) == 0);
	CHECK(f.state == BE_PRESENT);
}

struct list_seen {
	unsigned char state[LIST_NAMES]; /* reports per name: state * 16 */
	int others;
	int calls;
	int stop_after;
};

static int list_cb(const char *name, enum be_state state, void *arg)
{
	struct list_seen *s = arg;
	unsigned int i;
	char end;

	s->calls++;
	if (sscanf(name, "sess_l%u%c", &i, &end) == 1 && i < LIST_NAMES)
		s->state[i] += (unsigned char)(state == BE_PRESENT ? 1 : 16);
	else
		s->others++;
	if (s->stop_after && s->calls == s->stop_after)
		return 42;
	return 0;
}

static void test_list_and_put_many(struct be_conn *c)
{
	struct be_store_config lc = cfg;
	struct be_put_item *items;
	struct list_seen *seen;
	struct be_file f;
	char(*names)[32];
	int *results;
	int64_t now = now_ms();
	size_t i;
	int bad = 0;

	lc.ks.prefix = "l*[x]:";
	items = calloc(LIST_NAMES, sizeof(*items));
	names = calloc(LIST_NAMES, sizeof(*names));
	results = calloc(LIST_NAMES, sizeof(*results));
	seen = calloc(1, sizeof(*seen));
	if (!items || !names || !results || !seen)
		abort();
	for (i = 0; i < LIST_NAMES; i++) {
		snprintf(names[i], sizeof(names[i]), "sess_l%zu", i);
		items[i].name = names[i];
		items[i].data = names[i];
		items[i].len = strlen(names[i]);
		items[i].meta = meta_at(now);
		items[i].mode = BE_PUT_COPYUP;
	}
	CHECK(be_store_load_scripts(c) == 0);
	CHECK(be_store_put_many(c, &lc, items, LIST_NAMES, results) == 0);
	for (i = 0; i < LIST_NAMES; i++)
		bad += results[i] != 0;
	CHECK(bad == 0);
	/* Chunks whose check found nothing: meta as the put script's. */
	CHECK(be_store_get(c, &lc, names[7], true, &f) == 0);
	CHECK(f.state == BE_PRESENT && f.has_meta && f.meta.wver == 1 &&
	      f.meta.mtime_ns == items[7].meta.mtime_ns && f.size == 7 &&
	      memcmp(f.data, "sess_l7", 7) == 0);
	be_file_release(&f);
	for (i = 0; i < LIST_DELS; i++)
		CHECK(be_store_delete(c, &lc, names[i * 5], 0) == 1);
	/* Keys that are no names: ignored. */
	cmd_ok(c, "SET", "l*[x]:a{b", "x", NULL, NULL);
	cmd_ok(c, "SET", "lQx:sess_l1", "x", NULL, NULL);
	cmd_ok(c, "SET", "l*[x]:x.tmp", "x", NULL, NULL);
	cmd_ok(c, "SET", "l*[x]:{l*[x]:}:m", "x", NULL, NULL);
	/* A name with only a meta key that is not marked deleted. */
	cmd_ok(c, "HSET", "l*[x]:{l*[x]:metaonly}:m", "mt", "1", NULL);

	CHECK(be_store_list(c, &lc, list_cb, seen) == 0);
	bad = 0;
	for (i = 0; i < LIST_NAMES; i++)
		bad += seen->state[i] != (i % 5 || i / 5 >= LIST_DELS ? 1 : 16);
	CHECK(bad == 0);
	CHECK(seen->others == 1); /* "metaonly", a tombstone */
	CHECK(seen->calls == LIST_NAMES + 1);

	memset(seen, 0, sizeof(*seen));
	seen->stop_after = 3;
	CHECK(be_store_list(c, &lc, list_cb, seen) == 42);
	CHECK(seen->calls == 3);

	/* Copy-up again: all refused but the deleted names made newer. */
	for (i = 0; i < LIST_NAMES; i++)
		if (i % 5 == 0)
			items[i].meta.mtime_ns += 1;
	items[1].name = "x.tmp";
	cmd_ok(c, "SCRIPT", "FLUSH", NULL, NULL, NULL);
	CHECK(be_store_put_many(c, &lc, items, LIST_NAMES, results) == 0);
	bad = 0;
	for (i = 2; i < LIST_NAMES; i++)
		bad += results[i] != (i % 5 ? -EEXIST : 0);
	CHECK(bad == 0);
	CHECK(results[0] == 0 && results[1] == -EINVAL);
	CHECK(be_store_put_many(c, &lc, items, 0, results) == 0);

	free(items);
	free(names);
	free(results);
	free(seen);
}

/* Puts 'n' items named "<stem><i>" with 'data' and 'm' by be_store_put_many(). */
static void many_items(struct be_put_item *items, char (*names)[32], size_t n,
		       const char *stem, const char *data,
		       const struct be_meta *m)
{
	size_t i;

	for (i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "%s%zu", stem, i);
		items[i] = (struct be_put_item){
			.name = names[i],
			.data = data,
			.len = strlen(data),
			.meta = *m,
			.mode = BE_PUT_COPYUP,
		};
	}
}

/* Whether 'name' holds the value 'data' in Redis. */
static bool holds(struct be_conn *c, const char *name, const char *data)
{
	struct be_file f;
	bool ok;

	if (be_store_get(c, &cfg, name, true, &f))
		return false;
	ok = f.state == BE_PRESENT && f.size == strlen(data) &&
	     memcmp(f.data, data, f.size) == 0;
	be_file_release(&f);
	return ok;
}

/*
 * The transaction of be_store_put_many() (store_copy.c) applies the put
 * script's rules exactly, without running it: names absent, newer, the
 * same, older, tombstones newer and older, a tombstone without mtime,
 * values without meta (phpredis) newer and older, and our own write found
 * by the stale rule.  What it stores is what the script stores.
 */
static void test_put_many_rules(struct be_conn *c)
{
	int64_t now = now_ms();
	struct be_meta t = meta_at(now - 30000);
	struct be_meta older = meta_at(now - 40000);
	struct be_meta newer = meta_at(now - 20000);
	struct be_put_item items[10];
	char names[10][32];
	int results[10];
	long long scripts, execs, gets;
	char px[32];
	struct be_file f;
	size_t i;

	many_items(items, names, 10, "sess_tx", "copy", &t);
	/* 1: newer value, 2: same mtime, 3: older value (wv 1 -> 2). */
	CHECK(be_store_put(c, &cfg, names[1], "app", 3, &newer, BE_PUT_REPLACE,
			   NULL, NULL) == 0);
	CHECK(be_store_put(c, &cfg, names[2], "app", 3, &t, BE_PUT_REPLACE,
			   NULL, NULL) == 0);
	CHECK(be_store_put(c, &cfg, names[3], "app", 3, &older, BE_PUT_REPLACE,
			   NULL, NULL) == 0);
	/* 4: tombstone of a newer value, 5: of an older one. */
	CHECK(be_store_put(c, &cfg, names[4], "app", 3, &newer, BE_PUT_REPLACE,
			   NULL, NULL) == 0);
	CHECK(be_store_delete(c, &cfg, names[4], 0) == 1);
	CHECK(be_store_put(c, &cfg, names[5], "app", 3, &older, BE_PUT_REPLACE,
			   NULL, NULL) == 0);
	CHECK(be_store_delete(c, &cfg, names[5], 0) == 1);
	/* 6: a tombstone without mtime (not ours). */
	cmd_ok(c, "HSET", "app1:{app1:sess_tx6}:m", "del", "1", NULL);
	/* 7, 8: phpredis values, written 10 s ago and 60 s ago. */
	snprintf(px, sizeof(px), "%lld", TTL_MS - 10000);
	cmd_ok(c, "SET", "app1:sess_tx7", "php", "PX", px);
	snprintf(px, sizeof(px), "%lld", TTL_MS - 60000);
	cmd_ok(c, "SET", "app1:sess_tx8", "php", "PX", px);
	/* 9: our own write, newer in sequence: a retry finds it (stale). */
	cmd_ok(c, "HSET", "app1:{app1:sess_tx9}:m", "host", cfg.host_id, NULL);
	cmd_ok(c, "HSET", "app1:{app1:sess_tx9}:m", "hs",
	       "99999999999999999999", NULL);
	cmd_ok(c, "HSET", "app1:{app1:sess_tx9}:m", "mt", "1", NULL);

	scripts = calls_of(c, "evalsha") + calls_of(c, "eval");
	execs = calls_of(c, "exec");
	CHECK(be_store_put_many(c, &cfg, items, 10, results) == 0);
	CHECK(calls_of(c, "evalsha") + calls_of(c, "eval") == scripts);
	CHECK(calls_of(c, "exec") == execs + 1);
	CHECK(results[0] == 0 && holds(c, names[0], "copy"));
	CHECK(results[1] == -EEXIST && holds(c, names[1], "app"));
	CHECK(results[2] == -EEXIST && holds(c, names[2], "app"));
	CHECK(results[3] == 0 && holds(c, names[3], "copy"));
	CHECK(results[4] == -EEXIST &&
	      cmd_int(c, "EXISTS", "app1:sess_tx4", NULL) == 0);
	CHECK(results[5] == 0 && holds(c, names[5], "copy"));
	CHECK(results[6] == -EEXIST &&
	      cmd_int(c, "EXISTS", "app1:sess_tx6", NULL) == 0);
	CHECK(results[7] == -EEXIST && holds(c, names[7], "php"));
	CHECK(results[8] == 0 && holds(c, names[8], "copy"));
	CHECK(results[9] == 0 &&
	      cmd_int(c, "EXISTS", "app1:sess_tx9", NULL) == 0);

	/* Stored as the put script stores: meta, versions, TTLs. */
	CHECK(be_store_get(c, &cfg, names[0], false, &f) == 0);
	CHECK(f.has_meta && f.meta.wver == 1 && !f.meta.deleted &&
	      f.meta.mtime_ns == t.mtime_ns && f.meta.ctime_ns == t.ctime_ns &&
	      f.meta.uid == 33 && f.meta.gid == 44 && f.meta.mode == 0640 &&
	      strcmp(f.meta.host, cfg.host_id) == 0);
	CHECK(near(f.pttl_ms, TTL_MS - 30000));
	be_file_release(&f);
	CHECK(near(cmd_int(c, "PTTL", "app1:{app1:sess_tx0}:m", NULL),
		   2 * TTL_MS - 30000));
	CHECK(be_store_get(c, &cfg, names[3], false, &f) == 0);
	CHECK(f.meta.wver == 2 && f.meta.mtime_ns == t.mtime_ns);
	be_file_release(&f);
	CHECK(be_store_get(c, &cfg, names[5], false, &f) == 0);
	CHECK(f.state == BE_PRESENT && !f.meta.deleted && f.meta.wver == 3);
	be_file_release(&f);
	CHECK(cmd_int(c, "HEXISTS", "app1:{app1:sess_tx5}:m", "del") == 0);

	/* Run again: all in place, nothing written, no value read. */
	execs = calls_of(c, "exec");
	gets = calls_of(c, "get");
	CHECK(be_store_put_many(c, &cfg, items, 10, results) == 0);
	for (i = 0; i < 10; i++)
		CHECK(results[i] == (i == 9 ? 0 : -EEXIST));
	CHECK(calls_of(c, "exec") == execs && calls_of(c, "get") == gets);
}

/*
 * The app of the race tests: another host (this host's own newer write
 * would be taken for a delayed retry of the copy's, the stale rule).
 */
static struct be_store_config app_cfg = {
	.ks = { "app1:", BE_LAYOUT_PLAIN },
	.ttl = { .ttl_s = TTL_S },
	.host_id = "apphost-4567cdef",
};

/* What the test hook does between a transaction's check and its write. */
struct race {
	struct be_conn *app; /* the app's connection */
	const struct be_put_item *items;
	int calls;
	int every; /* 0: race on the first call only; else on every call */
};

/*
 * An app writes a newer value of item 0 and deletes item 1 (a tombstone
 * newer than the copy) after the check; with 'every', it writes a newer
 * value of item 'calls' on each call instead.
 */
static void race_hook(void *arg)
{
	struct race *r = arg;
	struct be_meta m = r->items[0].meta;
	const char *name = r->items[r->every ? r->calls : 0].name;

	m.mtime_ns += 1000 * NS_PER_MS;
	r->calls++;
	if (!r->every && r->calls > 1)
		return;
	CHECK(be_store_put(r->app, &app_cfg, name, "app", 3, &m, BE_PUT_REPLACE,
			   NULL, NULL) == 0);
	if (!r->every)
		CHECK(be_store_delete(r->app, &app_cfg, r->items[1].name,
				      m.mtime_ns) == 0);
}

/*
 * A batch that races the app: a value the app writes, or a name it
 * deletes, between the transaction's check and its write is never
 * overwritten nor resurrected; the rest of the batch is copied.  When
 * every try is raced, the names go through the put script.
 */
static void test_put_many_race(struct be_conn *c, int port)
{
	struct be_endpoint ep = { .host = (char *)"127.0.0.1", .port = port };
	struct be_meta m = meta_at(now_ms() - 30000);
	struct be_put_item items[8];
	char names[8][32];
	int results[8];
	struct race r = { .items = items };
	struct be_file f;
	long long scripts;
	size_t i;

	r.app = be_conn_new(&ep, 5.0);
	CHECK(r.app != NULL);
	if (!r.app)
		return;
	many_items(items, names, 8, "sess_race", "copy", &m);
	be_store_put_many_set_hook(race_hook, &r);
	CHECK(be_store_put_many(c, &cfg, items, 8, results) == 0);
	CHECK(r.calls == 2); /* the first EXEC aborted */
	CHECK(results[0] == -EEXIST && holds(c, names[0], "app"));
	CHECK(results[1] == -EEXIST &&
	      cmd_int(c, "EXISTS", "app1:sess_race1", NULL) == 0 &&
	      cmd_int(c, "EXISTS", "app1:{app1:sess_race1}:m", NULL) == 1);
	for (i = 2; i < 8; i++)
		CHECK(results[i] == 0 && holds(c, names[i], "copy"));
	/* Written by a chunk whose check found nothing: a first version. */
	CHECK(be_store_get(c, &cfg, names[2], false, &f) == 0);
	CHECK(f.has_meta && f.meta.wver == 1 && f.meta.mtime_ns == m.mtime_ns);
	be_file_release(&f);

	many_items(items, names, 8, "sess_rall", "copy", &m);
	r.calls = 0;
	r.every = 1;
	scripts = calls_of(c, "evalsha");
	CHECK(be_store_put_many(c, &cfg, items, 8, results) == 0);
	be_store_put_many_set_hook(NULL, NULL);
	CHECK(r.calls == 3);
	/* The app's 3 writes, then the batch's 8 scripts. */
	CHECK(calls_of(c, "evalsha") == scripts + 3 + 8);
	for (i = 0; i < 8; i++)
		CHECK(results[i] == (i < 3 ? -EEXIST : 0) &&
		      holds(c, names[i], i < 3 ? "app" : "copy"));
	be_conn_free(r.app);
}

static void test_oom(struct be_conn *c)
{
	struct be_meta m = meta_at(now_ms());
	long long scripts;
	struct be_file f;

	cmd_ok(c, "CONFIG", "SET", "maxmemory", "1", NULL);
	CHECK(be_store_put(c, &cfg, "sess_1", "x", 1, &m, BE_PUT_REPLACE, NULL,
			   NULL) == -ENOSPC);
	/*
	 * Reads and deletes still work when Redis is full.  Redis refuses a
	 * transaction's commands then: the read script reads instead.
	 */
	scripts = calls_of(c, "evalsha");
	CHECK(be_store_get(c, &cfg, "sess_1", true, &f) == 0);
	CHECK(f.state == BE_PRESENT && f.data);
	be_file_release(&f);
	CHECK(calls_of(c, "evalsha") == scripts + 1);
	CHECK(be_store_delete(c, &cfg, "sess_1", 0) == 1);
	cmd_ok(c, "CONFIG", "SET", "maxmemory", "0", NULL);
}

/*
 * A user whose ACL denies MULTI reads through the script, from the first
 * refusal on.  Last: the refusal is remembered for the process.
 */
static void test_multi_refused(struct be_conn *admin, int port)
{
	struct be_endpoint ep = { .host = (char *)"127.0.0.1",
				  .port = port,
				  .user = (char *)"txless",
				  .password = (char *)"pw" };
	struct be_meta m = meta_at(now_ms());
	struct be_put_item items[4];
	long long scripts, refused;
	char names[4][32];
	int results[4];
	struct be_conn *c;
	struct be_file f;
	redisReply *r;
	size_t i;

	r = cmd(admin, "ACL", "SETUSER", "txless", "reset", "on", ">pw", "~*",
		"&*", "+@all", "-multi", NULL);
	CHECK(r && r->type == REDIS_REPLY_STATUS);
	freeReplyObject(r);
	c = be_conn_new(&ep, 5.0);
	CHECK(c != NULL);
	if (!c)
		return;
	CHECK(be_store_put(c, &cfg, "sess_acl", "acl", 3, &m, BE_PUT_REPLACE,
			   NULL, NULL) == 0);
	scripts = calls_of(admin, "evalsha");
	refused = stat_of(admin, "multi", "rejected_calls");
	CHECK(be_store_get(c, &cfg, "sess_acl", true, &f) == 0);
	CHECK(f.state == BE_PRESENT && f.size == 3 && f.data &&
	      memcmp(f.data, "acl", 3) == 0);
	be_file_release(&f);
	CHECK(be_store_get(c, &cfg, "sess_acl", false, &f) == 0);
	CHECK(f.state == BE_PRESENT && f.size == 3);
	be_file_release(&f);
	/* Both reads ran the script; only the first tried MULTI. */
	CHECK(calls_of(admin, "evalsha") == scripts + 2);
	CHECK(stat_of(admin, "multi", "rejected_calls") == refused + 1);

	/* The bulk put's transaction is refused too: the script puts. */
	many_items(items, names, 4, "sess_acl_many", "copy", &m);
	CHECK(be_store_put_many(c, &cfg, items, 4, results) == 0);
	for (i = 0; i < 4; i++)
		CHECK(results[i] == 0 && holds(admin, names[i], "copy"));
	CHECK(stat_of(admin, "multi", "rejected_calls") == refused + 2);
	be_conn_free(c);
}

static void test_check_server(struct be_conn *c)
{
	char err[256] = "";

	CHECK(be_store_check_server(c, false, err, sizeof(err)) == 0);
	cmd_ok(c, "CONFIG", "SET", "maxmemory-policy", "allkeys-lru", NULL);
	CHECK(be_store_check_server(c, false, err, sizeof(err)) == -EPERM);
	CHECK(strcmp(err,
		     "redis maxmemory-policy is 'allkeys-lru': it would evict sessions; set noeviction or pass -o allow_evicting_redis") ==
	      0);
	CHECK(be_store_check_server(c, true, err, sizeof(err)) == 0);
	cmd_ok(c, "CONFIG", "SET", "maxmemory-policy", "volatile-ttl", NULL);
	CHECK(be_store_check_server(c, false, err, sizeof(err)) == -EPERM);
	CHECK(strstr(err, "'volatile-ttl'"));
	CHECK(be_store_check_server(c, false, NULL, 0) == -EPERM);
	cmd_ok(c, "CONFIG", "SET", "maxmemory-policy", "noeviction", NULL);
	CHECK(be_store_check_server(c, false, err, sizeof(err)) == 0);
}

/* CONFIG renamed away: the policy comes from INFO memory. */
static void test_check_server_renamed(const char *policy, int want)
{
	struct be_endpoint ep = { .host = (char *)"127.0.0.1" };
	struct test_redis r;
	struct be_conn *c;
	char conf[128];
	char err[256] = "";

	snprintf(conf, sizeof(conf),
		 "rename-command CONFIG \"\"\nmaxmemory-policy %s\n", policy);
	if (test_redis_start(&r, conf) != 0) {
		CHECK(!"cannot start a second redis-server");
		return;
	}
	ep.port = r.port;
	c = be_conn_new(&ep, 5.0);
	CHECK(be_store_check_server(c, false, err, sizeof(err)) == want);
	if (want)
		CHECK(strstr(err, policy));
	be_conn_free(c);
	test_redis_stop(&r);
}

static void test_host_id(void)
{
	char *id = be_host_id_default();

	CHECK(id && *id && strlen(id) < sizeof(((struct be_meta *)0)->host));
	CHECK(id && !strchr(id, '{') && !strchr(id, '\n'));
	free(id);
}

/* Error replies to -errno, an EXEC refused on its own by its cause. */
static int errno_of_text(const char *text)
{
	redisReply r = { .type = REDIS_REPLY_ERROR };

	r.str = (char *)text;
	r.len = strlen(text);
	return be_store_reply_errno(&r);
}

static void test_reply_errno(void)
{
	CHECK(errno_of_text("OOM command not allowed when used memory > "
			    "'maxmemory'.") == -ENOSPC);
	/* What Redis 7 says when maxmemory was crossed after the queueing. */
	CHECK(errno_of_text("EXECABORT Transaction discarded because of: OOM "
			    "command not allowed when used memory > "
			    "'maxmemory'.") == -ENOSPC);
	CHECK(errno_of_text("EXECABORT Transaction discarded because of "
			    "previous errors.") == -EIO);
	CHECK(errno_of_text("READONLY You can't write against a read only "
			    "replica.") == -EROFS);
	CHECK(errno_of_text("NOPERM this user has no permissions") == -EPERM);
	CHECK(errno_of_text("WRONGPASS invalid username-password pair") ==
	      -EACCES);
	CHECK(errno_of_text("OOMX not a code") == -EIO);
	CHECK(errno_of_text("") == -EIO);
}

int main(void)
{
	struct be_endpoint ep = { .host = (char *)"127.0.0.1" };
	struct test_redis r;
	struct be_conn *c;
	int ret;

	test_hseq_threads();
	test_host_id();
	test_reply_errno();
	ret = test_redis_start(&r, NULL);
	if (ret)
		return ret;
	ep.port = r.port;
	c = be_conn_new(&ep, 5.0);
	if (!c) {
		test_redis_stop(&r);
		return 1;
	}
	test_check_server(c);
	test_get_put(c);
	test_ttl(c);
	test_create(c);
	test_delete(c);
	test_copyup(c);
	test_setmeta(c);
	test_phpredis(c);
	test_stale_retry(c);
	test_noscript(c);
	test_list_and_put_many(c);
	test_put_many_rules(c);
	test_put_many_race(c, r.port);
	test_oom(c);
	test_multi_refused(c, r.port);
	be_conn_free(c);
	test_redis_stop(&r);

	test_check_server_renamed("allkeys-lfu", -EPERM);
	test_check_server_renamed("noeviction", 0);
	return test_exit();
}
