/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Layout v1 of session data in Redis, and the pure rules around it: which
 * file names are sessions, host-local temps or invalid; name <-> key
 * mapping; the meta hash; TTL math; cachelib's expiry header; CRC16 for
 * Cluster slots.  Nothing here does I/O: every function is pure and
 * thread-safe.  docs/DESIGN.md, "Data in Redis", is the specification.
 *
 * Keys (prefix "app1:", name "sess_x"):
 *   value key  K = "app1:sess_x"            exact file bytes (a string)
 *   meta key   M = "app1:{app1:sess_x}:m"   a hash, fields below
 *   lock key   L = "app1:{app1:sess_x}:lk"  the cross-host flock (fs/lock.h):
 *                                           owner token, with a lease
 *   want key   W = "app1:{app1:sess_x}:lw"  another host waits for L
 * In the phpredis layout K = prefix + sid for "sess_<sid>" (sid matching
 * [A-Za-z0-9,-]+), prefix "PHPREDIS_SESSION:" unless set.
 *
 * Meta hash fields (all decimal strings):
 *   v     layout version (1)
 *   mt    mtime, ns since the epoch      ct   ctime, ns since the epoch
 *   uid   gid   mode (st_mode & 07777)
 *   wv    write version, +1 on every change of the value or meta
 *   host  id of the host that wrote last (see be_host_id)
 *   hs    that host's write sequence, 20 zero-padded digits, so that a
 *         delayed retry of an older write is recognised and dropped
 *   del   "1" in a tombstone, absent otherwise
 */
#ifndef BACKEND_LAYOUT_H
#define BACKEND_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BE_LAYOUT_VERSION      1
#define BE_NAME_MAX	       255
#define BE_PHPREDIS_PREFIX     "PHPREDIS_SESSION:"
#define BE_CACHELIB_COUNT_NAME "2029240f6d1128be89ddc32729463129"
#define BE_CACHELIB_HEX_MIN    32 /* md5 */
#define BE_CACHELIB_HEX_MAX    128 /* sha512 */
#define BE_DEFAULT_TTL	       (32LL * 24 * 3600) /* seconds */
#define BE_DEFAULT_MAX_SIZE    (1024 * 1024) /* bytes */
#define BE_HSEQ_DIGITS	       20

enum be_layout {
	BE_LAYOUT_PLAIN = 0,
	BE_LAYOUT_PHPREDIS,
};

/** Where names live in Redis; zero-initialisable except 'prefix'. */
struct be_keyspace {
	const char *prefix; /* borrowed; "" allowed; never holds '{' or '}' */
	enum be_layout layout;
};

enum be_name_kind {
	BE_NAME_INVALID = 0, /* refused with EINVAL */
	BE_NAME_SESSION, /* stored in Redis */
	BE_NAME_LOCAL, /* host-local: temps and cachelib's count file */
};

/**
 * Checks a prefix: 0, or -EINVAL if it holds '{', '}', a newline or NUL
 * within 'len'.
 */
int be_prefix_check(const char *prefix);

/**
 * Classifies the file name 'name' (NUL-terminated):
 * - INVALID: empty, ".", "..", longer than BE_NAME_MAX, or holding '{',
 *   '}', '/', or '\n'; in the phpredis layout also a non-local name that is
 *   not "sess_<sid>" with sid in [A-Za-z0-9,-]+;
 * - LOCAL: "tmp" + 8 of [a-z0-9_] + ".__wz_cache" (cachelib mkstemp),
 *   "sessionid*_out_*" (Django mkstemp), any name containing ".tmp",
 *   and BE_CACHELIB_COUNT_NAME;
 * - SESSION: everything else.
 */
enum be_name_kind be_name_classify(const struct be_keyspace *ks,
				   const char *name);

/**
 * The error for a name be_name_classify() calls INVALID: -ENAMETOOLONG
 * when it is longer than BE_NAME_MAX, -EINVAL for everything else.
 */
int be_name_invalid_errno(const char *name);

/** True for a 32-lowercase-hex name (cachelib/Flask-Session). */
bool be_name_is_cachelib(const char *name);

/**
 * True for a name cachelib's FileSystemCache makes for an entry:
 * hash_method(key).hexdigest(), so BE_CACHELIB_HEX_MIN (md5, the default)
 * to BE_CACHELIB_HEX_MAX (sha512, blake2b) lowercase hex digits, and not
 * BE_CACHELIB_COUNT_NAME (its count file, management: never counted).
 * These are the names the names index holds and cachelib's count counts
 * (docs/DESIGN.md, "Names index").
 */
bool be_name_is_cachelib_entry(const char *name);

/**
 * Value key of the session name 'name' (must be BE_NAME_SESSION).  New
 * string; NULL on ENOMEM.
 */
char *be_key_value(const struct be_keyspace *ks, const char *name);

/** Meta key of the value key 'vkey'. New string; NULL on ENOMEM. */
char *be_key_meta(const struct be_keyspace *ks, const char *vkey);

/**
 * Lock key of the value key 'vkey' (fs/lock.h), in its slot.  New string;
 * NULL on ENOMEM.
 */
char *be_key_lock(const struct be_keyspace *ks, const char *vkey);

/**
 * Want key of the value key 'vkey': set, with a short expiry, by a host
 * that found the lock key held.  New string; NULL on ENOMEM.
 */
char *be_key_lock_want(const struct be_keyspace *ks, const char *vkey);

/**
 * Maps a key found by SCAN back to a session name.  Returns a new string,
 * or NULL when 'key' ('len' bytes, may hold NUL) is not a value key of
 * 'ks': not under the prefix, holds '{' (meta keys), maps to a name that
 * be_name_classify() would not call SESSION, or (phpredis) is a "_LOCK" key.
 * '*is_meta', when not NULL, is set when 'key' is a well-formed meta key
 * of 'ks' and then the name it belongs to is returned instead.
 */
char *be_key_to_name(const struct be_keyspace *ks, const char *key, size_t len,
		     bool *is_meta);

/** File metadata as stored in the meta hash. */
struct be_meta {
	int version; /* BE_LAYOUT_VERSION when read from Redis */
	int64_t mtime_ns; /* ns since the epoch */
	int64_t ctime_ns;
	uint32_t uid;
	uint32_t gid;
	uint32_t mode; /* permission bits only: st_mode & 07777 */
	uint64_t wver; /* write version */
	char host[64]; /* writer's host id, "" if unknown */
	bool deleted; /* tombstone */
	uint64_t hseq; /* writer's write sequence ("hs"), 0 if unknown */
};

/**
 * Parses a HGETALL-style flat field/value list ('n' strings with lengths)
 * into 'm'.  Unknown fields are ignored; a missing field stays 0.  Returns
 * 0, or -EINVAL if a known field is not a valid number or 'n' is odd.
 * Also -EINVAL: a negative or out-of-range number (mode above 07777, uid
 * above UINT32_MAX), "hs" not of BE_HSEQ_DIGITS digits, "host" of 64 bytes
 * or more, "del" other than "0" or "1".  Only "mt" and "ct" may be
 * negative.
 */
int be_meta_parse(struct be_meta *m, size_t n, const char *const *fields,
		  const size_t *lens);

/** Formats 'seq' as BE_HSEQ_DIGITS zero-padded digits + NUL into 'buf'. */
void be_hseq_format(char buf[BE_HSEQ_DIGITS + 1], uint64_t seq);

/** TTL policy shared by the mount and sessfs-migrate. */
struct be_ttl_policy {
	int64_t ttl_s; /* sliding TTL, seconds (> 0) */
	bool ignore_cachelib; /* ttl_from=none */
};

/**
 * Reads cachelib's expiry header: 'data' of 'len' bytes is a cachelib
 * file if len >= 5, and data[4] is 0x80 (pickle protocol marker).  Then
 * '*expiry' is the little-endian uint32 of bytes 0..3 (0 = never) and 0 is
 * returned; otherwise -EINVAL.
 */
int be_cachelib_expiry(const void *data, size_t len, uint32_t *expiry);

/**
 * Remaining life in ms of a session 'name' holding 'data'/'len' with the
 * given mtime, at 'now_ms': for a cachelib name with a valid non-zero
 * header (unless 'p->ignore_cachelib') it is expiry*1000 - now_ms,
 * otherwise mtime_ms + ttl_s*1000 - now_ms.  A result <= 0 means expired.
 */
int64_t be_ttl_remaining_ms(const struct be_ttl_policy *p, const char *name,
			    const void *data, size_t len, int64_t mtime_ms,
			    int64_t now_ms);

/**
 * True when the TTL of 'name' comes from its cachelib header, so that a
 * change of mtime alone (utimens, chmod) must keep the current TTL.  Needs
 * the first 5 bytes of the data ('data', 'len' may be shorter).
 */
bool be_ttl_from_header(const struct be_ttl_policy *p, const char *name,
			const void *data, size_t len);

/**
 * TTL in ms of the tombstone of a session whose last mtime was
 * 'mtime_ms': mtime + ttl - now, at least 1000 ms.
 */
int64_t be_tombstone_ttl_ms(const struct be_ttl_policy *p, int64_t mtime_ms,
			    int64_t now_ms);

/** CRC16/XMODEM of 'len' bytes, as Redis Cluster uses. */
uint16_t be_crc16(const void *buf, size_t len);

/** Cluster slot (0..16383) of 'key', honouring a {hash tag}. */
unsigned int be_key_slot(const char *key, size_t len);

#endif /* BACKEND_LAYOUT_H */
