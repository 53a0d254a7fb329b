/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Layout v1 of session data in Redis (see layout.h and docs/DESIGN.md,
 * "Data in Redis"): which names are sessions, how a name maps to its value
 * and meta keys and back, how the meta hash is parsed, how long a session
 * lives, and the CRC16 that picks a Cluster slot.  Everything here is pure:
 * no I/O, no global state, safe from any thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layout.h"

#define PHPREDIS_NAME_PREFIX "sess_"
#define PHPREDIS_LOCK_SUFFIX "_LOCK"
#define META_SUFFIX	     "}:m"
#define LOCK_SUFFIX	     "}:lk"
#define WANT_SUFFIX	     "}:lw"
#define CACHELIB_TMP_PREFIX  "tmp"
#define CACHELIB_TMP_SUFFIX  ".__wz_cache"
#define CACHELIB_TMP_RANDOM  8
#define DJANGO_TMP_PREFIX    "sessionid"
#define DJANGO_TMP_INFIX     "_out_"
#define MIN_TTL_MS	     1000
#define CLUSTER_SLOTS	     16384

int be_prefix_check(const char *prefix)
{
	if (!prefix)
		return -EINVAL;
	if (strpbrk(prefix, "{}\n"))
		return -EINVAL;
	return 0;
}

static bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool has_suffix(const char *s, size_t len, const char *suffix)
{
	size_t slen = strlen(suffix);

	return len >= slen && memcmp(s + len - slen, suffix, slen) == 0;
}

/*
 * Python's tempfile draws mkstemp names from lowercase letters, digits and
 * '_': cachelib's temp is "tmp" + 8 of those + ".__wz_cache".
 */
static bool is_cachelib_tmp(const char *name, size_t len)
{
	size_t plen = strlen(CACHELIB_TMP_PREFIX);
	size_t slen = strlen(CACHELIB_TMP_SUFFIX);
	size_t i;

	if (len != plen + CACHELIB_TMP_RANDOM + slen)
		return false;
	if (!has_prefix(name, CACHELIB_TMP_PREFIX) ||
	    !has_suffix(name, len, CACHELIB_TMP_SUFFIX))
		return false;
	for (i = plen; i < plen + CACHELIB_TMP_RANDOM; i++) {
		char ch = name[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		      ch == '_'))
			return false;
	}
	return true;
}

/* Django's file backend: mkstemp(prefix=cookie name + "_out_"). */
static bool is_django_tmp(const char *name)
{
	if (!has_prefix(name, DJANGO_TMP_PREFIX))
		return false;
	return strstr(name + strlen(DJANGO_TMP_PREFIX), DJANGO_TMP_INFIX);
}

static bool is_local(const char *name, size_t len)
{
	return is_cachelib_tmp(name, len) || is_django_tmp(name) ||
	       strstr(name, ".tmp") ||
	       strcmp(name, BE_CACHELIB_COUNT_NAME) == 0;
}

/* phpredis accepts session ids of [A-Za-z0-9,-] only. */
static bool is_phpredis_sid(const char *sid, size_t len)
{
	size_t i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++) {
		char ch = sid[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == ',' || ch == '-'))
			return false;
	}
	return true;
}

enum be_name_kind be_name_classify(const struct be_keyspace *ks,
				   const char *name)
{
	size_t len = strlen(name);
	size_t plen = strlen(PHPREDIS_NAME_PREFIX);

	if (len == 0 || len > BE_NAME_MAX)
		return BE_NAME_INVALID;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return BE_NAME_INVALID;
	if (strpbrk(name, "{}/\n"))
		return BE_NAME_INVALID;
	if (is_local(name, len))
		return BE_NAME_LOCAL;
	if (ks->layout == BE_LAYOUT_PHPREDIS &&
	    (!has_prefix(name, PHPREDIS_NAME_PREFIX) ||
	     !is_phpredis_sid(name + plen, len - plen)))
		return BE_NAME_INVALID;
	return BE_NAME_SESSION;
}

int be_name_invalid_errno(const char *name)
{
	return strnlen(name, BE_NAME_MAX + 1) > BE_NAME_MAX ? -ENAMETOOLONG
							    : -EINVAL;
}

bool be_name_is_cachelib(const char *name)
{
	size_t i;

	for (i = 0; name[i]; i++) {
		char ch = name[i];

		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
			return false;
	}
	return i == 32;
}

bool be_name_is_cachelib_entry(const char *name)
{
	size_t i;

	for (i = 0; name[i] && i <= BE_CACHELIB_HEX_MAX; i++) {
		char ch = name[i];

		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
			return false;
	}
	return i >= BE_CACHELIB_HEX_MIN && i <= BE_CACHELIB_HEX_MAX &&
	       strcmp(name, BE_CACHELIB_COUNT_NAME) != 0;
}

/* Returns a new string of 'a' ('alen' bytes) followed by 'b' and 'c'. */
static char *concat3(const char *a, size_t alen, const char *b, size_t blen,
		     const char *c, size_t clen)
{
	char *s = malloc(alen + blen + clen + 1);

	if (!s)
		return NULL;
	memcpy(s, a, alen);
	memcpy(s + alen, b, blen);
	memcpy(s + alen + blen, c, clen);
	s[alen + blen + clen] = '\0';
	return s;
}

char *be_key_value(const struct be_keyspace *ks, const char *name)
{
	const char *prefix = ks->prefix ? ks->prefix : "";

	if (ks->layout == BE_LAYOUT_PHPREDIS &&
	    has_prefix(name, PHPREDIS_NAME_PREFIX))
		name += strlen(PHPREDIS_NAME_PREFIX);
	return concat3(prefix, strlen(prefix), name, strlen(name), "", 0);
}

char *be_key_meta(const struct be_keyspace *ks, const char *vkey)
{
	const char *prefix = ks->prefix ? ks->prefix : "";
	size_t plen = strlen(prefix);
	size_t vlen = strlen(vkey);
	char *s = malloc(plen + 1 + vlen + strlen(META_SUFFIX) + 1);

	if (!s)
		return NULL;
	memcpy(s, prefix, plen);
	s[plen] = '{';
	memcpy(s + plen + 1, vkey, vlen);
	strcpy(s + plen + 1 + vlen, META_SUFFIX);
	return s;
}

/* prefix + '{' + 'vkey' + 'suffix': a key in the slot of 'vkey'. */
static char *key_tagged(const struct be_keyspace *ks, const char *vkey,
			const char *suffix)
{
	const char *prefix = ks->prefix ? ks->prefix : "";
	size_t plen = strlen(prefix);
	size_t vlen = strlen(vkey);
	char *s = malloc(plen + 1 + vlen + strlen(suffix) + 1);

	if (!s)
		return NULL;
	memcpy(s, prefix, plen);
	s[plen] = '{';
	memcpy(s + plen + 1, vkey, vlen);
	strcpy(s + plen + 1 + vlen, suffix);
	return s;
}

char *be_key_lock(const struct be_keyspace *ks, const char *vkey)
{
	return key_tagged(ks, vkey, LOCK_SUFFIX);
}

char *be_key_lock_want(const struct be_keyspace *ks, const char *vkey)
{
	return key_tagged(ks, vkey, WANT_SUFFIX);
}

/*
 * Maps the part of a value key after the prefix ('rest', 'len' bytes) to
 * a session name, or NULL (also on ENOMEM).
 */
static char *value_rest_to_name(const struct be_keyspace *ks, const char *rest,
				size_t len)
{
	size_t plen = strlen(PHPREDIS_NAME_PREFIX);
	char *name;

	if (len == 0 || memchr(rest, '\0', len) || memchr(rest, '{', len))
		return NULL;
	if (ks->layout == BE_LAYOUT_PHPREDIS) {
		if (has_suffix(rest, len, PHPREDIS_LOCK_SUFFIX))
			return NULL;
		name = concat3(PHPREDIS_NAME_PREFIX, plen, rest, len, "", 0);
	} else {
		name = concat3(rest, len, "", 0, "", 0);
	}
	if (name && be_name_classify(ks, name) != BE_NAME_SESSION) {
		free(name);
		return NULL;
	}
	return name;
}

char *be_key_to_name(const struct be_keyspace *ks, const char *key, size_t len,
		     bool *is_meta)
{
	const char *prefix = ks->prefix ? ks->prefix : "";
	size_t plen = strlen(prefix);
	size_t slen = strlen(META_SUFFIX);
	const char *rest, *vkey;
	size_t rlen, vlen;
	char *name;

	if (is_meta)
		*is_meta = false;
	if (len < plen || memcmp(key, prefix, plen) != 0)
		return NULL;
	rest = key + plen;
	rlen = len - plen;
	if (rlen == 0 || rest[0] != '{')
		return value_rest_to_name(ks, rest, rlen);

	/* A meta key: prefix + "{" + prefix + rest of the value key + "}:m". */
	if (!is_meta || rlen < 1 + plen + slen ||
	    !has_suffix(rest, rlen, META_SUFFIX))
		return NULL;
	vkey = rest + 1;
	vlen = rlen - 1 - slen;
	if (memcmp(vkey, prefix, plen) != 0)
		return NULL;
	name = value_rest_to_name(ks, vkey + plen, vlen - plen);
	if (name)
		*is_meta = true;
	return name;
}

/*
 * Parses the decimal integer 's' ('len' bytes, no sign unless 'min' < 0,
 * no spaces, no leading '+') into '*out' when it lies within
 * ['min', 'max'].  0 or -EINVAL.
 */
static int parse_int(const char *s, size_t len, int64_t min, uint64_t max,
		     bool *neg, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;

	*neg = false;
	if (len > 0 && s[0] == '-' && min < 0) {
		*neg = true;
		i = 1;
	}
	if (i == len)
		return -EINVAL;
	for (; i < len; i++) {
		unsigned int d = (unsigned char)s[i] - '0';

		if (d > 9)
			return -EINVAL;
		if (v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	if (*neg ? v > (uint64_t) - (min + 1) + 1 : v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	bool neg;

	return parse_int(s, len, 0, max, &neg, out);
}

static int parse_s64(const char *s, size_t len, int64_t *out)
{
	uint64_t v;
	bool neg;
	int ret;

	ret = parse_int(s, len, INT64_MIN, INT64_MAX, &neg, &v);
	if (ret)
		return ret;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

static bool field_is(const char *field, size_t len, const char *name)
{
	return len == strlen(name) && memcmp(field, name, len) == 0;
}

/* Parses the value 'v' ('len' bytes) of the meta field 'f' into 'm'. */
static int meta_field(struct be_meta *m, const char *f, size_t flen,
		      const char *v, size_t len)
{
	uint64_t u;
	int ret = 0;

	if (field_is(f, flen, "v")) {
		ret = parse_u64(v, len, INT_MAX, &u);
		m->version = (int)u;
	} else if (field_is(f, flen, "mt")) {
		ret = parse_s64(v, len, &m->mtime_ns);
	} else if (field_is(f, flen, "ct")) {
		ret = parse_s64(v, len, &m->ctime_ns);
	} else if (field_is(f, flen, "uid")) {
		ret = parse_u64(v, len, UINT32_MAX, &u);
		m->uid = (uint32_t)u;
	} else if (field_is(f, flen, "gid")) {
		ret = parse_u64(v, len, UINT32_MAX, &u);
		m->gid = (uint32_t)u;
	} else if (field_is(f, flen, "mode")) {
		ret = parse_u64(v, len, 07777, &u);
		m->mode = (uint32_t)u;
	} else if (field_is(f, flen, "wv")) {
		ret = parse_u64(v, len, UINT64_MAX, &m->wver);
	} else if (field_is(f, flen, "hs")) {
		if (len != BE_HSEQ_DIGITS)
			return -EINVAL;
		ret = parse_u64(v, len, UINT64_MAX, &m->hseq);
	} else if (field_is(f, flen, "host")) {
		if (len >= sizeof(m->host) || memchr(v, '\0', len))
			return -EINVAL;
		memcpy(m->host, v, len);
		m->host[len] = '\0';
	} else if (field_is(f, flen, "del")) {
		if (len != 1 || (v[0] != '0' && v[0] != '1'))
			return -EINVAL;
		m->deleted = v[0] == '1';
	}
	if (ret)
		return -EINVAL;
	return 0;
}

int be_meta_parse(struct be_meta *m, size_t n, const char *const *fields,
		  const size_t *lens)
{
	size_t i;
	int ret;

	memset(m, 0, sizeof(*m));
	if (n % 2)
		return -EINVAL;
	for (i = 0; i < n; i += 2) {
		ret = meta_field(m, fields[i], lens[i], fields[i + 1],
				 lens[i + 1]);
		if (ret)
			return ret;
	}
	return 0;
}

void be_hseq_format(char buf[BE_HSEQ_DIGITS + 1], uint64_t seq)
{
	snprintf(buf, BE_HSEQ_DIGITS + 1, "%020" PRIu64, seq);
}

int be_cachelib_expiry(const void *data, size_t len, uint32_t *expiry)
{
	const unsigned char *p = data;

	if (len < 5 || p[4] != 0x80)
		return -EINVAL;
	*expiry = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		  (uint32_t)p[3] << 24;
	return 0;
}

bool be_ttl_from_header(const struct be_ttl_policy *p, const char *name,
			const void *data, size_t len)
{
	uint32_t expiry;

	if (p->ignore_cachelib || !be_name_is_cachelib(name))
		return false;
	if (be_cachelib_expiry(data, len, &expiry))
		return false;
	return expiry != 0;
}

/* a + b - c, saturated to the int64_t range. */
static int64_t add_sub_sat(int64_t a, int64_t b, int64_t c)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	if (__builtin_sub_overflow(r, c, &r))
		return c < 0 ? INT64_MAX : INT64_MIN;
	return r;
}

static int64_t ttl_ms(const struct be_ttl_policy *p)
{
	int64_t ms;

	if (__builtin_mul_overflow(p->ttl_s, (int64_t)1000, &ms))
		return p->ttl_s > 0 ? INT64_MAX : INT64_MIN;
	return ms;
}

int64_t be_ttl_remaining_ms(const struct be_ttl_policy *p, const char *name,
			    const void *data, size_t len, int64_t mtime_ms,
			    int64_t now_ms)
{
	uint32_t expiry;

	if (be_ttl_from_header(p, name, data, len)) {
		be_cachelib_expiry(data, len, &expiry);
		return add_sub_sat((int64_t)expiry * 1000, 0, now_ms);
	}
	return add_sub_sat(mtime_ms, ttl_ms(p), now_ms);
}

int64_t be_tombstone_ttl_ms(const struct be_ttl_policy *p, int64_t mtime_ms,
			    int64_t now_ms)
{
	int64_t ms = add_sub_sat(mtime_ms, ttl_ms(p), now_ms);

	return ms < MIN_TTL_MS ? MIN_TTL_MS : ms;
}

/* CRC16/XMODEM: polynomial 0x1021, initial value 0, no reflection. */
uint16_t be_crc16(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint16_t crc = 0;
	size_t i;
	int bit;

	for (i = 0; i < len; i++) {
		crc ^= (uint16_t)(p[i] << 8);
		for (bit = 0; bit < 8; bit++) {
			if (crc & 0x8000)
				crc = (uint16_t)(crc << 1) ^ 0x1021;
			else
				crc = (uint16_t)(crc << 1);
		}
	}
	return crc;
}

/*
 * Redis Cluster hashes only the part between the first '{' and the next
 * '}' when that part is not empty; otherwise the whole key.
 */
unsigned int be_key_slot(const char *key, size_t len)
{
	const char *open = memchr(key, '{', len);
	const char *close;

	if (open) {
		close = memchr(open + 1, '}', len - (size_t)(open + 1 - key));
		if (close && close > open + 1)
			return be_crc16(open + 1, (size_t)(close - open - 1)) %
			       CLUSTER_SLOTS;
	}
	return be_crc16(key, len) % CLUSTER_SLOTS;
}
