/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of backend/bkfile.c, the backup file codec: the CRC-32C check
 * value, header, record and trailer round trips, every single-byte flip
 * and every truncation of an item refused, limits, and the file digest.
 * Pure: no Redis needed.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bkfile.h"
#include "testutil.h"

static void test_crc32c(void)
{
	CHECK(be_bk_crc32c(0, "123456789", 9) == 0xe3069283u);
	/* Continuing a CRC gives the CRC of the concatenation. */
	CHECK(be_bk_crc32c(be_bk_crc32c(0, "1234", 4), "56789", 5) ==
	      0xe3069283u);
	CHECK(be_bk_crc32c(0, "", 0) == 0);
	/* 32 zero bytes, and a run long enough for the 8-byte steps. */
	{
		unsigned char zeros[32] = { 0 };
		char text[64];

		CHECK(be_bk_crc32c(0, zeros, sizeof(zeros)) == 0x8a9136aau);
		memset(text, 'a', sizeof(text));
		CHECK(be_bk_crc32c(0, text, 61) ==
		      be_bk_crc32c(be_bk_crc32c(0, text, 3), text + 3, 58));
	}
}

static void test_header(void)
{
	struct be_bk_header h = { BE_BK_VERSION,
				  1765000000123LL,
				  BE_LAYOUT_PHPREDIS,
				  42,
				  "app1:",
				  5 };
	struct be_bk_header d;
	unsigned char buf[256];
	size_t len, again;

	len = be_bk_header_encode(&h, buf, sizeof(buf));
	CHECK(len > 0);
	CHECK(be_bk_header_encode(&h, buf, len - 1) == 0);
	CHECK(be_bk_header_decode(buf, len, &d) == 0);
	CHECK(d.version == BE_BK_VERSION && d.created_ms == h.created_ms);
	CHECK(d.layout == BE_LAYOUT_PHPREDIS && d.count == 42);
	CHECK(d.prefix_len == 5 && memcmp(d.prefix, "app1:", 5) == 0);
	/* The count can change in place: the length stays. */
	h.count = 1000000;
	again = be_bk_header_encode(&h, buf, sizeof(buf));
	CHECK(again == len);
	CHECK(be_bk_header_decode(buf, len, &d) == 0 && d.count == 1000000);
	CHECK(be_bk_header_decode(buf, len - 1, &d) == -EINVAL);
	h.version = 2;
	be_bk_header_encode(&h, buf, sizeof(buf));
	CHECK(be_bk_header_decode(buf, len, &d) == -ENOTSUP);
	h.version = BE_BK_VERSION;
	h.prefix_len = BE_BK_PREFIX_MAX + 1;
	CHECK(be_bk_header_encode(&h, buf, sizeof(buf)) == 0);
}

static void fill_record(struct be_bk_record *r)
{
	static const char value[] = "user|s:5:\"alice\";\0binary\xff";

	memset(r, 0, sizeof(*r));
	r->type = BE_BK_VALUE;
	r->flags = BE_BK_HAS_META;
	r->name = "sess_abc";
	r->name_len = 8;
	r->value_expire_ms = 1765000100000LL;
	r->meta_expire_ms = 1767000100000LL;
	r->nmeta = 2;
	r->meta[0] = (struct be_bk_pair){ "mt", 2, "1765000000000000001", 19 };
	r->meta[1] = (struct be_bk_pair){ "mode", 4, "384", 3 };
	r->value = value;
	r->value_len = sizeof(value) - 1;
}

static void test_record_round_trip(void)
{
	struct be_bk_record r, d;
	unsigned char *buf;
	size_t len;

	fill_record(&r);
	len = be_bk_record_size(&r);
	CHECK(len > 0);
	buf = malloc(len);
	CHECK(be_bk_record_encode(&r, buf) == len);
	CHECK(be_bk_item_check(buf, len) == BE_BK_RECORD);
	CHECK(be_bk_record_decode(buf, len, &d) == 0);
	CHECK(d.type == BE_BK_VALUE && d.flags == BE_BK_HAS_META);
	CHECK(d.name_len == 8 && memcmp(d.name, "sess_abc", 8) == 0);
	CHECK(d.value_expire_ms == r.value_expire_ms);
	CHECK(d.meta_expire_ms == r.meta_expire_ms);
	CHECK(d.nmeta == 2 && d.meta[1].value_len == 3 &&
	      memcmp(d.meta[1].value, "384", 3) == 0);
	CHECK(d.value_len == r.value_len &&
	      memcmp(d.value, r.value, r.value_len) == 0);
	free(buf);
}

/* Every flipped byte and every cut of a record is refused. */
static void test_record_corruption(void)
{
	struct be_bk_record r, d;
	unsigned char *buf;
	size_t len, i;
	int bit, bad = 0;

	fill_record(&r);
	len = be_bk_record_size(&r);
	buf = malloc(len);
	be_bk_record_encode(&r, buf);
	for (i = 0; i < len; i++) {
		for (bit = 0; bit < 8; bit++) {
			buf[i] ^= (unsigned char)(1 << bit);
			if (be_bk_record_decode(buf, len, &d) == 0)
				bad++;
			buf[i] ^= (unsigned char)(1 << bit);
		}
	}
	CHECK(bad == 0);
	for (i = 0; i < len; i++)
		CHECK(be_bk_record_decode(buf, i, &d) == -EINVAL);
	CHECK(be_bk_record_decode(buf, len, &d) == 0);
	free(buf);
}

static void test_record_limits(void)
{
	char name[BE_NAME_MAX + 2];
	struct be_bk_record r;
	unsigned char head[4] = { 0xff, 0xff, 0xff, 0x7f };
	size_t len;

	fill_record(&r);
	memset(name, 'a', sizeof(name));
	r.name = name;
	r.name_len = BE_NAME_MAX + 1;
	CHECK(be_bk_record_size(&r) == 0);
	fill_record(&r);
	r.nmeta = BE_BK_META_MAX + 1;
	CHECK(be_bk_record_size(&r) == 0);
	fill_record(&r);
	r.type = BE_BK_TOMBSTONE; /* a tombstone has no value */
	CHECK(be_bk_record_size(&r) == 0);
	r.value_len = 0;
	CHECK(be_bk_record_size(&r) > 0);
	r.flags = 0; /* nor is it without meta */
	r.nmeta = 0;
	CHECK(be_bk_record_size(&r) == 0);
	/* A huge length field is refused before anything is allocated. */
	CHECK(be_bk_item_len(head, &len) == -EINVAL);
	memset(head, 0, sizeof(head));
	head[0] = 3; /* shorter than any item */
	CHECK(be_bk_item_len(head, &len) == -EINVAL);
	head[0] = 9;
	CHECK(be_bk_item_len(head, &len) == 0 && len == 9);
}

static void test_trailer_and_digest(void)
{
	struct be_bk_trailer t = { 7, 12345, { 0 } }, d;
	unsigned char item[BE_BK_TRAILER_LEN], header[64];
	unsigned char sha[BE_BK_DIGEST_LEN] = { 1 };
	unsigned char a[BE_BK_DIGEST_LEN], b[BE_BK_DIGEST_LEN];
	struct be_bk_header h = {
		BE_BK_VERSION, 1, BE_LAYOUT_PLAIN, 7, "p:", 2
	};
	size_t hlen = be_bk_header_encode(&h, header, sizeof(header));

	be_bk_trailer_encode(&t, item);
	CHECK(be_bk_file_digest(header, hlen, sha, item, a) == 0);
	memcpy(t.digest, a, sizeof(a));
	CHECK(be_bk_trailer_encode(&t, item) == BE_BK_TRAILER_LEN);
	CHECK(be_bk_trailer_decode(item, sizeof(item), &d) == 0);
	CHECK(d.count == 7 && d.record_bytes == 12345);
	CHECK(memcmp(d.digest, a, sizeof(a)) == 0);
	/* The digest does not depend on the digest field itself... */
	CHECK(be_bk_file_digest(header, hlen, sha, item, b) == 0);
	CHECK(memcmp(a, b, sizeof(a)) == 0);
	/* ...but on the header, the records' sum and the count. */
	header[10] ^= 1;
	CHECK(be_bk_file_digest(header, hlen, sha, item, b) == 0);
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	header[10] ^= 1;
	sha[3] ^= 1;
	CHECK(be_bk_file_digest(header, hlen, sha, item, b) == 0);
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	item[sizeof(item) - 1] ^= 1;
	CHECK(be_bk_trailer_decode(item, sizeof(item), &d) == -EINVAL);
}

static void test_sum_streams(void)
{
	unsigned char one[BE_BK_DIGEST_LEN], two[BE_BK_DIGEST_LEN];
	struct be_bk_sum *s = be_bk_sum_new();

	be_bk_sum_update(s, "hello world", 11);
	be_bk_sum_final(s, one);
	be_bk_sum_free(s);
	s = be_bk_sum_new();
	be_bk_sum_update(s, "hello ", 6);
	be_bk_sum_update(s, "world", 5);
	be_bk_sum_final(s, two);
	be_bk_sum_free(s);
	CHECK(memcmp(one, two, sizeof(one)) == 0);
	/* SHA-256("hello world") starts b94d27b9. */
	CHECK(one[0] == 0xb9 && one[1] == 0x4d && one[2] == 0x27);
}

int main(void)
{
	test_crc32c();
	test_header();
	test_record_round_trip();
	test_record_corruption();
	test_record_limits();
	test_trailer_and_digest();
	test_sum_streams();
	return test_exit();
}
