/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The sessfs backup file format (bkfile.h): encoding and decoding of its
 * items, CRC-32C per item and the SHA-256 file digest.  Pure: no I/O, no
 * global state but the CRC table, built once.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "bkfile.h"

#define CRC32C_POLY    0x82f63b78u /* reflected Castagnoli */
#define HEADER_FIXED   (4 + 1 + 4 + 8 + 1 + 8 + 2 + 4)
#define RECORD_FIXED   (4 + 1 + 1 + 1 + 2 + 8 + 8 + 4 + 4 + 4)
#define TRAILER_SUMMED (BE_BK_TRAILER_LEN - BE_BK_DIGEST_LEN - 4)

/*
 * Slicing-by-8: crc_table[k][b] is the CRC of byte b followed by k zero
 * bytes, so eight input bytes take eight lookups and no loop over bits.
 */
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_table_build(void)
{
	uint32_t c;
	int i, k;

	for (i = 0; i < 256; i++) {
		c = (uint32_t)i;
		for (k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		crc_table[0][i] = c;
	}
	for (i = 0; i < 256; i++) {
		c = crc_table[0][i];
		for (k = 1; k < 8; k++) {
			c = crc_table[0][c & 0xff] ^ (c >> 8);
			crc_table[k][i] = c;
		}
	}
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

uint32_t be_bk_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint32_t lo, hi;

	pthread_once(&crc_once, crc_table_build);
	crc = ~crc;
	for (; len >= 8; p += 8, len -= 8) {
		lo = crc ^ le32(p);
		hi = le32(p + 4);
		crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
		      crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
		      crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
		      crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
	}
	for (; len; p++, len--)
		crc = crc_table[0][(crc ^ *p) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* Little-endian writers: each returns the position after what it wrote. */
static unsigned char *put_u8(unsigned char *p, unsigned int v)
{
	*p = (unsigned char)v;
	return p + 1;
}

static unsigned char *put_le(unsigned char *p, uint64_t v, int bytes)
{
	int i;

	for (i = 0; i < bytes; i++)
		p[i] = (unsigned char)(v >> (8 * i));
	return p + bytes;
}

static unsigned char *put_mem(unsigned char *p, const void *src, size_t len)
{
	if (len)
		memcpy(p, src, len);
	return p + len;
}

static uint64_t get_le(const unsigned char *p, int bytes)
{
	uint64_t v = 0;
	int i;

	for (i = bytes - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* A cursor over a decoded item: reads fail once past 'end'. */
struct reader {
	const unsigned char *p;
	const unsigned char *end;
	bool bad;
};

static uint64_t rd_le(struct reader *r, int bytes)
{
	uint64_t v;

	if (r->bad || (size_t)(r->end - r->p) < (size_t)bytes) {
		r->bad = true;
		return 0;
	}
	v = get_le(r->p, bytes);
	r->p += bytes;
	return v;
}

static const char *rd_mem(struct reader *r, size_t len)
{
	const char *s = (const char *)r->p;

	if (r->bad || (size_t)(r->end - r->p) < len) {
		r->bad = true;
		return NULL;
	}
	r->p += len;
	return s;
}

/* Writes the CRC of item[0..len-4) into its last 4 bytes. */
static void seal(unsigned char *item, size_t len)
{
	put_le(item + len - 4, be_bk_crc32c(0, item, len - 4), 4);
}

int be_bk_item_len(const unsigned char *head, size_t *len)
{
	uint64_t v = get_le(head, BE_BK_ITEM_HEAD_LEN);

	if (v < BE_BK_ITEM_HEAD_LEN + 1 + 4 || v > BE_BK_ITEM_MAX)
		return -EINVAL;
	*len = (size_t)v;
	return 0;
}

int be_bk_item_check(const unsigned char *item, size_t len)
{
	size_t said;

	if (len < BE_BK_ITEM_HEAD_LEN + 1 + 4 || be_bk_item_len(item, &said) ||
	    said != len)
		return -EINVAL;
	if (be_bk_crc32c(0, item, len - 4) !=
	    (uint32_t)get_le(item + len - 4, 4))
		return -EINVAL;
	return item[BE_BK_ITEM_HEAD_LEN];
}

size_t be_bk_header_encode(const struct be_bk_header *h, unsigned char *buf,
			   size_t size)
{
	size_t len = HEADER_FIXED + h->prefix_len;
	unsigned char *p = buf;

	if (h->prefix_len > BE_BK_PREFIX_MAX || size < len)
		return 0;
	p = put_le(p, len, 4);
	p = put_u8(p, BE_BK_HEADER);
	p = put_le(p, h->version, 4);
	p = put_le(p, (uint64_t)h->created_ms, 8);
	p = put_u8(p, (unsigned int)h->layout);
	p = put_le(p, h->count, 8);
	p = put_le(p, h->prefix_len, 2);
	put_mem(p, h->prefix, h->prefix_len);
	seal(buf, len);
	return len;
}

int be_bk_header_decode(const unsigned char *item, size_t len,
			struct be_bk_header *h)
{
	struct reader r = { item + BE_BK_ITEM_HEAD_LEN + 1, item + len - 4,
			    false };
	unsigned int layout;

	if (be_bk_item_check(item, len) != BE_BK_HEADER)
		return -EINVAL;
	memset(h, 0, sizeof(*h));
	h->version = (uint32_t)rd_le(&r, 4);
	h->created_ms = (int64_t)rd_le(&r, 8);
	layout = (unsigned int)rd_le(&r, 1);
	h->count = rd_le(&r, 8);
	h->prefix_len = (size_t)rd_le(&r, 2);
	h->prefix = rd_mem(&r, h->prefix_len);
	if (r.bad || r.p != r.end || h->prefix_len > BE_BK_PREFIX_MAX)
		return -EINVAL;
	if (h->version != BE_BK_VERSION)
		return -ENOTSUP;
	if (layout != BE_LAYOUT_PLAIN && layout != BE_LAYOUT_PHPREDIS)
		return -EINVAL;
	h->layout = (enum be_layout)layout;
	return 0;
}

static bool record_fields_ok(const struct be_bk_record *r)
{
	size_t i;

	if (r->name_len == 0 || r->name_len > BE_NAME_MAX ||
	    r->nmeta > BE_BK_META_MAX || r->value_len > BE_BK_VALUE_MAX)
		return false;
	if (r->type != BE_BK_VALUE && r->type != BE_BK_TOMBSTONE)
		return false;
	if (r->flags & ~(unsigned int)BE_BK_HAS_META)
		return false;
	if (r->type == BE_BK_TOMBSTONE &&
	    (r->value_len || !(r->flags & BE_BK_HAS_META)))
		return false;
	if (!(r->flags & BE_BK_HAS_META) && r->nmeta)
		return false;
	for (i = 0; i < r->nmeta; i++)
		if (r->meta[i].field_len > BE_BK_FIELD_MAX ||
		    r->meta[i].value_len > BE_BK_FIELD_MAX)
			return false;
	return true;
}

size_t be_bk_record_size(const struct be_bk_record *r)
{
	size_t len = RECORD_FIXED + r->name_len + r->value_len;
	size_t i;

	if (!record_fields_ok(r))
		return 0;
	for (i = 0; i < r->nmeta; i++)
		len += 8 + r->meta[i].field_len + r->meta[i].value_len;
	return len;
}

size_t be_bk_record_encode(const struct be_bk_record *r, unsigned char *buf)
{
	size_t len = be_bk_record_size(r);
	unsigned char *p = buf;
	size_t i;

	p = put_le(p, len, 4);
	p = put_u8(p, BE_BK_RECORD);
	p = put_u8(p, r->type);
	p = put_u8(p, r->flags);
	p = put_le(p, r->name_len, 2);
	p = put_le(p, (uint64_t)r->value_expire_ms, 8);
	p = put_le(p, (uint64_t)r->meta_expire_ms, 8);
	p = put_le(p, r->nmeta, 4);
	p = put_le(p, r->value_len, 4);
	p = put_mem(p, r->name, r->name_len);
	for (i = 0; i < r->nmeta; i++) {
		p = put_le(p, r->meta[i].field_len, 4);
		p = put_le(p, r->meta[i].value_len, 4);
		p = put_mem(p, r->meta[i].field, r->meta[i].field_len);
		p = put_mem(p, r->meta[i].value, r->meta[i].value_len);
	}
	put_mem(p, r->value, r->value_len);
	seal(buf, len);
	return len;
}

int be_bk_record_decode(const unsigned char *item, size_t len,
			struct be_bk_record *r)
{
	struct reader rd = { item + BE_BK_ITEM_HEAD_LEN + 1, item + len - 4,
			     false };
	struct be_bk_pair *m;
	size_t i;

	if (be_bk_item_check(item, len) != BE_BK_RECORD)
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	r->type = (enum be_bk_type)rd_le(&rd, 1);
	r->flags = (unsigned int)rd_le(&rd, 1);
	r->name_len = (size_t)rd_le(&rd, 2);
	r->value_expire_ms = (int64_t)rd_le(&rd, 8);
	r->meta_expire_ms = (int64_t)rd_le(&rd, 8);
	r->nmeta = (size_t)rd_le(&rd, 4);
	r->value_len = (size_t)rd_le(&rd, 4);
	if (rd.bad || r->nmeta > BE_BK_META_MAX)
		return -EINVAL;
	r->name = rd_mem(&rd, r->name_len);
	for (i = 0; i < r->nmeta; i++) {
		m = &r->meta[i];
		m->field_len = (size_t)rd_le(&rd, 4);
		m->value_len = (size_t)rd_le(&rd, 4);
		m->field = rd_mem(&rd, m->field_len);
		m->value = rd_mem(&rd, m->value_len);
	}
	r->value = rd_mem(&rd, r->value_len);
	if (rd.bad || rd.p != rd.end || !record_fields_ok(r))
		return -EINVAL;
	return 0;
}

size_t be_bk_trailer_encode(const struct be_bk_trailer *t, unsigned char *buf)
{
	unsigned char *p = buf;

	p = put_le(p, BE_BK_TRAILER_LEN, 4);
	p = put_u8(p, BE_BK_TRAILER);
	p = put_le(p, t->count, 8);
	p = put_le(p, t->record_bytes, 8);
	put_mem(p, t->digest, BE_BK_DIGEST_LEN);
	seal(buf, BE_BK_TRAILER_LEN);
	return BE_BK_TRAILER_LEN;
}

int be_bk_trailer_decode(const unsigned char *item, size_t len,
			 struct be_bk_trailer *t)
{
	struct reader r = { item + BE_BK_ITEM_HEAD_LEN + 1, item + len - 4,
			    false };

	if (len != BE_BK_TRAILER_LEN ||
	    be_bk_item_check(item, len) != BE_BK_TRAILER)
		return -EINVAL;
	t->count = rd_le(&r, 8);
	t->record_bytes = rd_le(&r, 8);
	memcpy(t->digest, rd_mem(&r, BE_BK_DIGEST_LEN), BE_BK_DIGEST_LEN);
	return r.bad ? -EINVAL : 0;
}

struct be_bk_sum {
	EVP_MD_CTX *ctx;
};

struct be_bk_sum *be_bk_sum_new(void)
{
	struct be_bk_sum *s = malloc(sizeof(*s));

	if (!s)
		return NULL;
	s->ctx = EVP_MD_CTX_new();
	if (!s->ctx || EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(s->ctx);
		free(s);
		return NULL;
	}
	return s;
}

void be_bk_sum_update(struct be_bk_sum *s, const void *buf, size_t len)
{
	EVP_DigestUpdate(s->ctx, buf, len);
}

void be_bk_sum_final(struct be_bk_sum *s, unsigned char out[BE_BK_DIGEST_LEN])
{
	unsigned int n = BE_BK_DIGEST_LEN;

	EVP_DigestFinal_ex(s->ctx, out, &n);
}

void be_bk_sum_free(struct be_bk_sum *s)
{
	if (!s)
		return;
	EVP_MD_CTX_free(s->ctx);
	free(s);
}

int be_bk_file_digest(const unsigned char *header, size_t header_len,
		      const unsigned char records_sha[BE_BK_DIGEST_LEN],
		      const unsigned char *trailer,
		      unsigned char out[BE_BK_DIGEST_LEN])
{
	struct be_bk_sum *s = be_bk_sum_new();

	if (!s)
		return -ENOMEM;
	be_bk_sum_update(s, BE_BK_MAGIC, BE_BK_MAGIC_LEN);
	be_bk_sum_update(s, header, header_len);
	be_bk_sum_update(s, records_sha, BE_BK_DIGEST_LEN);
	be_bk_sum_update(s, trailer, TRAILER_SUMMED);
	be_bk_sum_final(s, out);
	be_bk_sum_free(s);
	return 0;
}
