/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of backend/layout.c: name classification (sessions, host-local
 * temps, invalid names, the phpredis rules), name <-> key mapping in both
 * layouts, meta hash parsing, the write sequence format, cachelib's header,
 * TTL math and the Cluster CRC16 and key slots.  Pure: no Redis needed.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "layout.h"
#include "testutil.h"

static const struct be_keyspace plain = { "app1:", BE_LAYOUT_PLAIN };
static const struct be_keyspace noprefix = { "", BE_LAYOUT_PLAIN };
static const struct be_keyspace php = { BE_PHPREDIS_PREFIX,
					BE_LAYOUT_PHPREDIS };

static void test_prefix_check(void)
{
	CHECK(be_prefix_check("") == 0);
	CHECK(be_prefix_check("app1:") == 0);
	CHECK(be_prefix_check(BE_PHPREDIS_PREFIX) == 0);
	CHECK(be_prefix_check("a{b") == -EINVAL);
	CHECK(be_prefix_check("a}b") == -EINVAL);
	CHECK(be_prefix_check("a\nb") == -EINVAL);
	CHECK(be_prefix_check(NULL) == -EINVAL);
}

static void test_classify_invalid(void)
{
	char longname[BE_NAME_MAX + 2];

	CHECK(be_name_classify(&plain, "") == BE_NAME_INVALID);
	CHECK(be_name_classify(&plain, ".") == BE_NAME_INVALID);
	CHECK(be_name_classify(&plain, "..") == BE_NAME_INVALID);
	CHECK(be_name_classify(&plain, "sess_{x") == BE_NAME_INVALID);
	CHECK(be_name_classify(&plain, "sess_x}") == BE_NAME_INVALID);
	CHECK(be_name_classify(&plain, "a/b") == BE_NAME_INVALID);
	CHECK(be_name_classify(&plain, "a\nb") == BE_NAME_INVALID);
	/* Invalid wins over local: a temp name with a brace is refused. */
	CHECK(be_name_classify(&plain, "x.tmp{") == BE_NAME_INVALID);

	memset(longname, 'a', sizeof(longname));
	longname[BE_NAME_MAX] = '\0';
	CHECK(be_name_classify(&plain, longname) == BE_NAME_SESSION);
	longname[BE_NAME_MAX] = 'a';
	longname[BE_NAME_MAX + 1] = '\0';
	CHECK(be_name_classify(&plain, longname) == BE_NAME_INVALID);
	/* The client is told which: too long, or not a name we take. */
	CHECK(be_name_invalid_errno(longname) == -ENAMETOOLONG);
	CHECK(be_name_invalid_errno("sess_{x") == -EINVAL);
	CHECK(be_name_invalid_errno("") == -EINVAL);
}

static void test_classify_local(void)
{
	/* cachelib mkstemp: "tmp" + 8 of [a-z0-9_] + ".__wz_cache" */
	CHECK(be_name_classify(&plain, "tmpab_9xyz0.__wz_cache") ==
	      BE_NAME_LOCAL);
	CHECK(be_name_classify(&plain, "tmp________.__wz_cache") ==
	      BE_NAME_LOCAL);
	CHECK(be_name_classify(&plain, "tmpabcdefg.__wz_cache") ==
	      BE_NAME_SESSION); /* 7 random chars */
	CHECK(be_name_classify(&plain, "tmpabcdefghi.__wz_cache") ==
	      BE_NAME_SESSION); /* 9 random chars */
	CHECK(be_name_classify(&plain, "tmpABCDEFGH.__wz_cache") ==
	      BE_NAME_SESSION); /* upper case is not mkstemp's */
	CHECK(be_name_classify(&plain, "tmpab-defgh.__wz_cache") ==
	      BE_NAME_SESSION);
	CHECK(be_name_classify(&plain, "xmpabcdefgh.__wz_cache") ==
	      BE_NAME_SESSION);
	CHECK(be_name_classify(&plain, "tmpabcdefgh.__wz_cachf") ==
	      BE_NAME_SESSION);

	/* Django mkstemp: "sessionid*_out_*" */
	CHECK(be_name_classify(&plain, "sessionid_out_k2j3h4") ==
	      BE_NAME_LOCAL);
	CHECK(be_name_classify(&plain, "sessionidabc_out_") == BE_NAME_LOCAL);
	CHECK(be_name_classify(&plain, "sessionid_out") == BE_NAME_SESSION);
	CHECK(be_name_classify(&plain, "sessionidabc") == BE_NAME_SESSION);
	CHECK(be_name_classify(&plain, "xsessionid_out_1") == BE_NAME_SESSION);

	/* any ".tmp" */
	CHECK(be_name_classify(&plain, "sess_x.tmp") == BE_NAME_LOCAL);
	CHECK(be_name_classify(&plain, "a.tmp123") == BE_NAME_LOCAL);
	CHECK(be_name_classify(&plain, ".tmp") == BE_NAME_LOCAL);
	CHECK(be_name_classify(&plain, "atmp") == BE_NAME_SESSION);
	CHECK(be_name_classify(&plain, "a.TMP") == BE_NAME_SESSION);

	/* cachelib's count file, md5("__wz_cache_count") */
	CHECK(be_name_classify(&plain, BE_CACHELIB_COUNT_NAME) ==
	      BE_NAME_LOCAL);
	CHECK(be_name_classify(&php, BE_CACHELIB_COUNT_NAME) == BE_NAME_LOCAL);

	/* Local names stay local in the phpredis layout too. */
	CHECK(be_name_classify(&php, "sess_abc.tmp") == BE_NAME_LOCAL);
	CHECK(be_name_classify(&php, "sessionid_out_x") == BE_NAME_LOCAL);
	CHECK(be_name_classify(&php, "tmpabcdefgh.__wz_cache") ==
	      BE_NAME_LOCAL);
}

static void test_classify_session(void)
{
	CHECK(be_name_classify(&plain, "sess_abc") == BE_NAME_SESSION);
	CHECK(be_name_classify(&plain, "sess_a_b") == BE_NAME_SESSION);
	CHECK(be_name_classify(&plain, "sessionidabcdef") == BE_NAME_SESSION);
	CHECK(be_name_classify(&plain, "0123456789abcdef0123456789abcdef") ==
	      BE_NAME_SESSION);
	CHECK(be_name_classify(&plain, "...") == BE_NAME_SESSION);
	CHECK(be_name_classify(&plain, ".hidden") == BE_NAME_SESSION);

	CHECK(be_name_classify(&php, "sess_abcDEF019,-") == BE_NAME_SESSION);
	CHECK(be_name_classify(&php, "sess_") == BE_NAME_INVALID);
	CHECK(be_name_classify(&php, "sess_a_b") == BE_NAME_INVALID);
	CHECK(be_name_classify(&php, "sess_abc_LOCK") == BE_NAME_INVALID);
	CHECK(be_name_classify(&php, "sess_a.b") == BE_NAME_INVALID);
	CHECK(be_name_classify(&php, "sess_a b") == BE_NAME_INVALID);
	CHECK(be_name_classify(&php, "SESS_abc") == BE_NAME_INVALID);
	CHECK(be_name_classify(&php, "abc") == BE_NAME_INVALID);
	CHECK(be_name_classify(&php, "0123456789abcdef0123456789abcdef") ==
	      BE_NAME_INVALID);
}

static void test_is_cachelib(void)
{
	CHECK(be_name_is_cachelib("0123456789abcdef0123456789abcdef"));
	CHECK(be_name_is_cachelib(BE_CACHELIB_COUNT_NAME));
	CHECK(!be_name_is_cachelib("0123456789abcdef0123456789abcde"));
	CHECK(!be_name_is_cachelib("0123456789abcdef0123456789abcdef0"));
	CHECK(!be_name_is_cachelib("0123456789ABCDEF0123456789abcdef"));
	CHECK(!be_name_is_cachelib("0123456789abcdeg0123456789abcdef"));
	CHECK(!be_name_is_cachelib(""));
}

static void test_is_cachelib_entry(void)
{
	char name[BE_CACHELIB_HEX_MAX + 2];

	CHECK(be_name_is_cachelib_entry("0123456789abcdef0123456789abcdef"));
	/* sha1, sha256 */
	CHECK(be_name_is_cachelib_entry(
		"0123456789abcdef0123456789abcdef01234567"));
	CHECK(be_name_is_cachelib_entry("0123456789abcdef0123456789abcdef"
					"0123456789abcdef0123456789abcdef"));
	/* the count file is management, never an entry */
	CHECK(!be_name_is_cachelib_entry(BE_CACHELIB_COUNT_NAME));
	CHECK(!be_name_is_cachelib_entry("0123456789abcdef0123456789abcde"));
	CHECK(!be_name_is_cachelib_entry("0123456789ABCDEF0123456789abcdef"));
	CHECK(!be_name_is_cachelib_entry("0123456789abcdeg0123456789abcdef"));
	CHECK(!be_name_is_cachelib_entry("tmpab12cd_3.__wz_cache"));
	CHECK(!be_name_is_cachelib_entry("sess_0123456789abcdef0123456789ab"));
	CHECK(!be_name_is_cachelib_entry(
		"sessionid0123456789abcdef0123456789abcdef"));
	CHECK(!be_name_is_cachelib_entry(""));
	memset(name, 'a', BE_CACHELIB_HEX_MAX);
	name[BE_CACHELIB_HEX_MAX] = '\0';
	CHECK(be_name_is_cachelib_entry(name));
	name[BE_CACHELIB_HEX_MAX] = 'a';
	name[BE_CACHELIB_HEX_MAX + 1] = '\0';
	CHECK(!be_name_is_cachelib_entry(name));
}

/* Checks that 'key' maps to 'name' (NULL: to no name) and 'is_meta'. */
static void check_to_name(const struct be_keyspace *ks, const char *key,
			  size_t len, const char *name, bool meta)
{
	bool is_meta = !meta;
	char *got = be_key_to_name(ks, key, len, &is_meta);

	if (!name) {
		CHECK(got == NULL);
		CHECK(!is_meta);
	} else {
		CHECK(got && strcmp(got, name) == 0);
		CHECK(is_meta == meta);
	}
	free(got);
}

/*
 * The lock and want keys of a session are in its value key's slot (one
 * Cluster node runs the lock scripts) and are never taken for a session
 * or a meta key by a SCAN.
 */
static void test_keys_lock(void)
{
	char *k = be_key_value(&plain, "sess_x");
	char *l = k ? be_key_lock(&plain, k) : NULL;
	char *w = k ? be_key_lock_want(&plain, k) : NULL;
	bool is_meta = true;

	CHECK(l && strcmp(l, "app1:{app1:sess_x}:lk") == 0);
	CHECK(w && strcmp(w, "app1:{app1:sess_x}:lw") == 0);
	if (k && l && w) {
		CHECK(be_key_slot(k, strlen(k)) == be_key_slot(l, strlen(l)));
		CHECK(be_key_slot(k, strlen(k)) == be_key_slot(w, strlen(w)));
		CHECK(be_key_to_name(&plain, l, strlen(l), &is_meta) == NULL);
		CHECK(be_key_to_name(&plain, w, strlen(w), &is_meta) == NULL);
	}
	free(k);
	free(l);
	free(w);
	k = be_key_value(&php, "sess_abc");
	l = k ? be_key_lock(&php, k) : NULL;
	CHECK(l &&
	      strcmp(l, "PHPREDIS_SESSION:{PHPREDIS_SESSION:abc}:lk") == 0);
	free(k);
	free(l);
}

static void test_keys_plain(void)
{
	char *k = be_key_value(&plain, "sess_x");
	char *m = k ? be_key_meta(&plain, k) : NULL;
	char *n;

	CHECK(k && strcmp(k, "app1:sess_x") == 0);
	CHECK(m && strcmp(m, "app1:{app1:sess_x}:m") == 0);
	if (m)
		CHECK(be_key_slot(k, strlen(k)) == be_key_slot(m, strlen(m)));
	free(k);
	free(m);

	k = be_key_value(&noprefix, "sess_x");
	m = k ? be_key_meta(&noprefix, k) : NULL;
	CHECK(k && strcmp(k, "sess_x") == 0);
	CHECK(m && strcmp(m, "{sess_x}:m") == 0);
	free(k);
	free(m);

	check_to_name(&plain, "app1:sess_x", 11, "sess_x", false);
	check_to_name(&plain, "app1:{app1:sess_x}:m", 20, "sess_x", true);
	check_to_name(&plain, "app2:sess_x", 11, NULL, false);
	check_to_name(&plain, "app1:", 5, NULL, false);
	check_to_name(&plain, "app1", 4, NULL, false);
	check_to_name(&plain, "app1:a{b", 8, NULL, false);
	check_to_name(&plain, "app1:a}b", 8, NULL, false);
	check_to_name(&plain, "app1:a/b", 8, NULL, false);
	check_to_name(&plain, "app1:a\0b", 8, NULL, false);
	check_to_name(&plain, "app1:x.tmp", 10, NULL, false);
	check_to_name(&plain, "app1:.", 6, NULL, false);
	check_to_name(&plain, "app1:" BE_CACHELIB_COUNT_NAME, 37, NULL, false);
	/* Malformed meta keys. */
	check_to_name(&plain, "app1:{app1:sess_x}", 18, NULL, false);
	check_to_name(&plain, "app1:{app1:sess_x}:n", 20, NULL, false);
	check_to_name(&plain, "app1:{app2:sess_x}:m", 20, NULL, false);
	check_to_name(&plain, "app1:{app1:}:m", 14, NULL, false);
	check_to_name(&plain, "app1:{app1:a{b}:m", 17, NULL, false);
	check_to_name(&plain, "app1:{app1:a}b}:m", 17, NULL, false);
	check_to_name(&plain, "app1:{}:m", 9, NULL, false);
	check_to_name(&plain, "app1:{:m", 8, NULL, false);
	check_to_name(&plain, "app1:{app1:x.tmp}:m", 19, NULL, false);

	/* Without 'is_meta' a meta key is no name. */
	n = be_key_to_name(&plain, "app1:{app1:sess_x}:m", 20, NULL);
	CHECK(n == NULL);
	n = be_key_to_name(&plain, "app1:sess_y", 11, NULL);
	CHECK(n && strcmp(n, "sess_y") == 0);
	free(n);

	check_to_name(&noprefix, "sess_x", 6, "sess_x", false);
	check_to_name(&noprefix, "{sess_x}:m", 10, "sess_x", true);
	check_to_name(&noprefix, "{x}", 3, NULL, false);
}

static void test_keys_phpredis(void)
{
	char *k = be_key_value(&php, "sess_abc");
	char *m = k ? be_key_meta(&php, k) : NULL;

	CHECK(k && strcmp(k, "PHPREDIS_SESSION:abc") == 0);
	CHECK(m && strcmp(m, "PHPREDIS_SESSION:{PHPREDIS_SESSION:abc}:m") == 0);
	free(k);
	free(m);

	check_to_name(&php, "PHPREDIS_SESSION:abc", 20, "sess_abc", false);
	check_to_name(&php, "PHPREDIS_SESSION:a,b-C9", 23, "sess_a,b-C9",
		      false);
	check_to_name(&php, "PHPREDIS_SESSION:{PHPREDIS_SESSION:abc}:m", 41,
		      "sess_abc", true);
	check_to_name(&php, "PHPREDIS_SESSION:abc_LOCK", 25, NULL, false);
	check_to_name(&php, "PHPREDIS_SESSION:{PHPREDIS_SESSION:abc_LOCK}:m",
		      46, NULL, false);
	check_to_name(&php, "PHPREDIS_SESSION:a_b", 20, NULL, false);
	check_to_name(&php, "PHPREDIS_SESSION:a.b", 20, NULL, false);
	check_to_name(&php, "PHPREDIS_SESSION:", 17, NULL, false);
	check_to_name(&php, "PHPREDIS_SESSION:sess_abc", 25, NULL, false);
	check_to_name(&php, "app1:abc", 8, NULL, false);
}

/* Parses a NULL-terminated list of strings as a HGETALL reply. */
static int parse(struct be_meta *m, const char *const *kv)
{
	size_t lens[32];
	size_t n;

	for (n = 0; kv[n]; n++)
		lens[n] = strlen(kv[n]);
	return be_meta_parse(m, n, kv, lens);
}

static void test_meta_parse(void)
{
	static const char *const full[] = {
		"v",	"1",
		"mt",	"1700000000123456789",
		"ct",	"1700000000987654321",
		"uid",	"33",
		"gid",	"4294967295",
		"mode", "384",
		"wv",	"18446744073709551615",
		"host", "web1-3f2a9c1d",
		"hs",	"01700000000123456789",
		"del",	"1",
		"xyz",	"ignored",
		NULL,
	};
	static const char *const neg[] = { "mt", "-5", "ct", "0", NULL };
	static const char *const bad[][3] = {
		{ "v", "", NULL },
		{ "v", "-1", NULL },
		{ "v", "1x", NULL },
		{ "v", " 1", NULL },
		{ "v", "+1", NULL },
		{ "v", "2147483648", NULL },
		{ "mt", "9223372036854775808", NULL },
		{ "mt", "-9223372036854775809", NULL },
		{ "mt", "-", NULL },
		{ "uid", "4294967296", NULL },
		{ "uid", "-1", NULL },
		{ "gid", "abc", NULL },
		{ "mode", "4096", NULL },
		{ "wv", "18446744073709551616", NULL },
		{ "hs", "123", NULL },
		{ "hs", "0000000000000000000x", NULL },
		{ "hs", "99999999999999999999", NULL },
		{ "host",
		  "0123456789012345678901234567890123456789012345678901234567890123",
		  NULL },
		{ "del", "2", NULL },
		{ "del", "", NULL },
		{ "mt", NULL, NULL },
	};
	struct be_meta m;
	size_t lens[2] = { 1, 1 };
	const char *nul[2] = { "v", "1" };
	size_t i;

	CHECK(parse(&m, full) == 0);
	CHECK(m.version == 1);
	CHECK(m.mtime_ns == 1700000000123456789LL);
	CHECK(m.ctime_ns == 1700000000987654321LL);
	CHECK(m.uid == 33);
	CHECK(m.gid == UINT32_MAX);
	CHECK(m.mode == 0600);
	CHECK(m.wver == UINT64_MAX);
	CHECK(strcmp(m.host, "web1-3f2a9c1d") == 0);
	CHECK(m.hseq == 1700000000123456789ULL);
	CHECK(m.deleted);

	CHECK(parse(&m, neg) == 0);
	CHECK(m.mtime_ns == -5 && m.ctime_ns == 0 && !m.deleted);
	CHECK(m.version == 0 && m.host[0] == '\0' && m.wver == 0);

	CHECK(parse(&m, (const char *const[]){ "mt", "-9223372036854775808",
					       "del", "0", NULL }) == 0);
	CHECK(m.mtime_ns == INT64_MIN && !m.deleted);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = parse(&m, bad[i]);

		if (ret != -EINVAL)
			fprintf(stderr, "meta case %zu ('%s') parsed\n", i,
				bad[i][0]);
		CHECK(ret == -EINVAL);
	}

	/* Values are counted, not NUL-terminated: "1\0" is no number. */
	lens[1] = 2;
	nul[1] = "1\0";
	CHECK(be_meta_parse(&m, 2, nul, lens) == -EINVAL);
	CHECK(be_meta_parse(&m, 0, NULL, NULL) == 0);
	CHECK(m.version == 0);
}

static void test_hseq(void)
{
	char buf[BE_HSEQ_DIGITS + 1];

	be_hseq_format(buf, 0);
	CHECK(strcmp(buf, "00000000000000000000") == 0);
	be_hseq_format(buf, 1700000000123456789ULL);
	CHECK(strcmp(buf, "01700000000123456789") == 0);
	be_hseq_format(buf, UINT64_MAX);
	CHECK(strcmp(buf, "18446744073709551615") == 0);
}

static void test_cachelib_header(void)
{
	static const unsigned char hdr[] = { 0x78, 0x56, 0x34, 0x12, 0x80, 'x' };
	static const unsigned char zero[] = { 0, 0, 0, 0, 0x80 };
	static const unsigned char nopickle[] = { 1, 2, 3, 4, 0x7f };
	uint32_t e = 7;

	CHECK(be_cachelib_expiry(hdr, sizeof(hdr), &e) == 0 && e == 0x12345678);
	CHECK(be_cachelib_expiry(hdr, 5, &e) == 0 && e == 0x12345678);
	CHECK(be_cachelib_expiry(hdr, 4, &e) == -EINVAL);
	CHECK(be_cachelib_expiry(hdr, 0, &e) == -EINVAL);
	CHECK(be_cachelib_expiry(zero, 5, &e) == 0 && e == 0);
	CHECK(be_cachelib_expiry(nopickle, 5, &e) == -EINVAL);
	CHECK(be_cachelib_expiry("\xff\xff\xff\xff\x80", 5, &e) == 0 &&
	      e == UINT32_MAX);
}

static void test_ttl(void)
{
	struct be_ttl_policy p = { .ttl_s = 3600 };
	struct be_ttl_policy noheader = { .ttl_s = 3600,
					  .ignore_cachelib = true };
	const char *cl = "0123456789abcdef0123456789abcdef";
	/* expiry 2000 s since the epoch */
	static const unsigned char hdr[] = { 0xd0, 0x07, 0, 0, 0x80 };
	static const unsigned char zero[] = { 0, 0, 0, 0, 0x80 };
	int64_t now = 1000000;

	/* Sliding: mtime + ttl - now. */
	CHECK(be_ttl_remaining_ms(&p, "sess_x", NULL, 0, now, now) == 3600000);
	CHECK(be_ttl_remaining_ms(&p, "sess_x", NULL, 0, now - 3600000, now) ==
	      0);
	CHECK(be_ttl_remaining_ms(&p, "sess_x", NULL, 0, now - 3600001, now) ==
	      -1);
	CHECK(be_ttl_remaining_ms(&p, "sess_x", hdr, 5, now, now) == 3600000);

	/* The header applies to cachelib names only, and when non-zero. */
	CHECK(be_ttl_remaining_ms(&p, cl, hdr, 5, 0, now) == 2000000 - now);
	CHECK(be_ttl_remaining_ms(&p, cl, hdr, 5, 0, 2000000) == 0);
	CHECK(be_ttl_remaining_ms(&p, cl, hdr, 5, 0, 3000000) == -1000000);
	CHECK(be_ttl_remaining_ms(&p, cl, zero, 5, now, now) == 3600000);
	CHECK(be_ttl_remaining_ms(&p, cl, hdr, 4, now, now) == 3600000);
	CHECK(be_ttl_remaining_ms(&noheader, cl, hdr, 5, now, now) == 3600000);

	CHECK(be_ttl_from_header(&p, cl, hdr, 5));
	CHECK(!be_ttl_from_header(&p, cl, hdr, 4));
	CHECK(!be_ttl_from_header(&p, cl, zero, 5));
	CHECK(!be_ttl_from_header(&p, "sess_x", hdr, 5));
	CHECK(!be_ttl_from_header(&noheader, cl, hdr, 5));

	/* Tombstones live at least a second. */
	CHECK(be_tombstone_ttl_ms(&p, now, now) == 3600000);
	CHECK(be_tombstone_ttl_ms(&p, now - 3599000, now) == 1000);
	CHECK(be_tombstone_ttl_ms(&p, now - 3599001, now) == 1000);
	CHECK(be_tombstone_ttl_ms(&p, now - 3598999, now) == 1001);
	CHECK(be_tombstone_ttl_ms(&p, 0, now) == 3600000 - now);
	CHECK(be_tombstone_ttl_ms(&p, INT64_MIN, now) == 1000);

	/* No overflow at the edges. */
	p.ttl_s = INT64_MAX / 1000 + 1;
	CHECK(be_ttl_remaining_ms(&p, "sess_x", NULL, 0, INT64_MAX, 0) ==
	      INT64_MAX);
	CHECK(be_tombstone_ttl_ms(&p, INT64_MAX, -1) == INT64_MAX);
}

static void test_crc16(void)
{
	CHECK(be_crc16("123456789", 9) == 0x31C3);
	CHECK(be_crc16("", 0) == 0);
	CHECK(be_crc16("a", 1) == 0x7C87);

	/* Slots as redis-cli CLUSTER KEYSLOT reports them. */
	CHECK(be_key_slot("123456789", 9) == 12739);
	CHECK(be_key_slot("foo", 3) == 12182);
	CHECK(be_key_slot("bar", 3) == 5061);
	CHECK(be_key_slot("user1000", 8) == 3443);
	CHECK(be_key_slot("a", 1) == 15495);
	CHECK(be_key_slot("{user1000}.following", 20) ==
	      be_key_slot("user1000", 8));
	CHECK(be_key_slot("{user1000}.followers", 20) ==
	      be_key_slot("user1000", 8));
	/* An empty tag "{}" hashes the whole key. */
	CHECK(be_key_slot("foo{}{bar}", 10) == 8363);
	/* Only the first '{' counts, up to the first '}' after it. */
	CHECK(be_key_slot("foo{{bar}}zap", 13) == 4015);
	CHECK(be_key_slot("{bar", 4) == 4015);
	CHECK(be_key_slot("foo{bar}{zap}", 13) == be_key_slot("bar", 3));
	/* No closing brace: the whole key. */
	CHECK(be_key_slot("foo{bar", 7) == be_crc16("foo{bar", 7) % 16384);
	/* Binary keys. */
	CHECK(be_key_slot("a\0{b}", 5) == be_key_slot("b", 1));
}

int main(void)
{
	test_prefix_check();
	test_classify_invalid();
	test_classify_local();
	test_classify_session();
	test_is_cachelib();
	test_is_cachelib_entry();
	test_keys_plain();
	test_keys_phpredis();
	test_keys_lock();
	test_meta_parse();
	test_hseq();
	test_cachelib_header();
	test_ttl();
	test_crc16();
	return test_exit();
}
