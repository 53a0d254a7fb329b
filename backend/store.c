/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Sessions in Redis, layout v1: each write is one Lua script on a name's
 * value key K and meta key M (KEYS[1], KEYS[2]; M's hash tag is K, so both
 * live in one Cluster slot), run with EVALSHA and, when the server has not
 * cached it yet, EVAL; a read is one MULTI/EXEC transaction of plain reads
 * (be_store_get()).  The scripts keep K and M consistent,
 * bump the write version and apply the stale-retry rule of store.h; the C
 * side computes TTLs with layout.c's policy, builds arguments and parses
 * replies.  The bulk put of sessfs-migrate is in store_copy.c (it borrows
 * the put script's calls from here), listing in store_list.c, the server
 * check and the host id in store_check.c.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <openssl/sha.h>

#include "acl.h"
#include "conn.h"
#include "store.h"
#include "store_i.h"
#include "util.h"

#define MIN_TTL_MS   1000
#define NS_PER_MS    1000000LL
#define MAX_ARGS     24
#define MAX_NUM_ARGS 12
#define NUM_ARG_SIZE 24

/*
 * Helpers every script starts with.  numcmp() compares decimal integer
 * strings exactly: Lua numbers are doubles and lose nanoseconds above 2^53,
 * and Lua's string order follows the server's locale, so equal-length
 * digit strings are compared in exact 15-digit pieces.
 * meta() reads, in one call, the fields of M the write scripts need;
 * stale() is the rule of store.h on them: M written by this host with a
 * sequence >= ours means this call is a delayed retry of an older write.
 * snapshot() needs no EXISTS: PTTL says -2 for a missing key.  Each
 * redis.call costs Redis CPU (bench/README.md): the scripts make as few as
 * they can.  A write script returns through tracked(), whose read of K and
 * M makes a connection with CLIENT TRACKING (track.h) track them again:
 * Redis forgets a tracked key once it changed, and NOLOOP sent nothing.
 */
#define LUA_PRELUDE                                                           \
	"local K, M = KEYS[1], KEYS[2]\n"                                     \
	"local function numcmp(a, b)\n"                                       \
	"  local na, nb = a:sub(1, 1) == '-', b:sub(1, 1) == '-'\n"           \
	"  if na ~= nb then return na and -1 or 1 end\n"                      \
	"  if na then return numcmp(b:sub(2), a:sub(2)) end\n"                \
	"  a = a:gsub('^0+', '')\n"                                           \
	"  b = b:gsub('^0+', '')\n"                                           \
	"  if #a ~= #b then return #a < #b and -1 or 1 end\n"                 \
	"  for i = 1, #a, 15 do\n"                                            \
	"    local j = i + 14\n"                                              \
	"    local x, y = tonumber(a:sub(i, j)), tonumber(b:sub(i, j))\n"     \
	"    if x ~= y then return x < y and -1 or 1 end\n"                   \
	"  end\n"                                                             \
	"  return 0\n"                                                        \
	"end\n"                                                               \
	"local function isnum(s)\n"                                           \
	"  return type(s) == 'string' and s:match('^%-?%d+$') ~= nil\n"       \
	"end\n"                                                               \
	"local function meta()\n"                                             \
	"  return redis.call('HMGET', M, 'host', 'hs', 'wv', 'del', 'mt')\n"  \
	"end\n"                                                               \
	"local function stale(h, host, hs)\n"                                 \
	"  return h[1] == host and isnum(h[2]) and #h[2] == #hs and\n"        \
	"         numcmp(h[2], hs) >= 0\n"                                    \
	"end\n"                                                               \
	"local function snapshot(want)\n"                                     \
	"  local p = redis.call('PTTL', K)\n"                                 \
	"  local s = {p == -2 and 0 or 1, 0, p, redis.call('HGETALL', M),\n"  \
	"             false}\n"                                               \
	"  if p == -2 then return s end\n"                                    \
	"  if want then\n"                                                    \
	"    s[5] = redis.call('GET', K)\n"                                   \
	"    s[2] = #s[5]\n"                                                  \
	"  else\n"                                                            \
	"    s[2] = redis.call('STRLEN', K)\n"                                \
	"  end\n"                                                             \
	"  return s\n"                                                        \
	"end\n"                                                               \
	"local function tracked(r)\n"                                         \
	"  redis.call('EXISTS', K, M)\n"                                      \
	"  return r\n"                                                        \
	"end\n"                                                               \
	"local function index(pttl)\n"                                        \
	"  local t = redis.call('TIME')\n"                                    \
	"  local now = tonumber(t[1]) * 1000 +\n"                             \
	"              math.floor(tonumber(t[2]) / 1000)\n"                   \
	"  local score = string.format('%.0f', now + pttl)\n"                 \
	"  redis.call('ZADD', KEYS[3], score, K)\n"                           \
	"  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf',\n"                 \
	"             string.format('(%.0f', now))\n"                         \
	"end\n"                                                               \
	"local function setmeta(h, host, hs, mt, ct, uid, gid, mode)\n"       \
	"  local wv = (tonumber(h[3]) or 0) + 1\n"                            \
	"  redis.call('HSET', M, 'v', '1', 'mt', mt, 'ct', ct, 'uid', uid,\n" \
	"             'gid', gid, 'mode', mode, 'host', host, 'hs', hs,\n"    \
	"             'wv', wv)\n"                                            \
	"  if h[4] then redis.call('HDEL', M, 'del') end\n"                   \
	"  return wv\n"                                                       \
	"end\n"

/* ARGV: want_data ("0"/"1").  Returns a snapshot. */
static const char lua_get[] = LUA_PRELUDE "return snapshot(ARGV[1] == '1')\n";

/*
 * ARGV: put mode, host, hs, data, value TTL ms, meta TTL ms, mt, ct, uid,
 * gid, mode, now ms, ttl ms, "1" if the name is indexed (then KEYS[3] is
 * the names index; index() costs TIME, ZADD and ZREMRANGEBYSCORE).  Returns {0, wv}, or {1, snapshot} when CREATE
 * or COPYUP finds a value or tombstone it must not overwrite.  A value
 * without meta (phpredis's own handler) has the mtime its PTTL implies.
 */
static const char lua_put[] = LUA_PRELUDE
	"local mode, mt = ARGV[1], ARGV[7]\n"
	"local h = meta()\n"
	"if stale(h, ARGV[2], ARGV[3]) then return tracked({0, h[3] or '0'}) end\n"
	"if mode ~= '0' then\n"
	"  local e = redis.call('EXISTS', K)\n"
	"  local m = redis.call('EXISTS', M)\n"
	"  local refuse = false\n"
	"  if mode == '1' then\n"
	"    refuse = e == 1\n"
	"  elseif e == 1 and m == 0 then\n"
	"    local p = redis.call('PTTL', K)\n"
	"    refuse = p < 0 or tonumber(mt) / 1e6 <=\n"
	"             tonumber(ARGV[12]) - (tonumber(ARGV[13]) - p)\n"
	"  elseif e == 1 or m == 1 then\n"
	"    refuse = not isnum(h[5]) or numcmp(h[5], mt) >= 0\n"
	"  end\n"
	"  if refuse then return tracked({1, snapshot(true)}) end\n"
	"end\n"
	"redis.call('SET', K, ARGV[4], 'PX', ARGV[5])\n"
	"if ARGV[14] == '1' then index(tonumber(ARGV[5])) end\n"
	"local wv = setmeta(h, ARGV[2], ARGV[3], mt, ARGV[8], ARGV[9], ARGV[10],\n"
	"                   ARGV[11])\n"
	"redis.call('PEXPIRE', M, ARGV[6])\n"
	"return tracked({0, wv})\n";

/*
 * ARGV: host, hs, now ms, ttl ms, fallback mt ns, fallback tombstone TTL
 * ms, "1" if the name is indexed (KEYS[3]).  Returns 1 if a value existed, else 0.  The tombstone keeps the last
 * mtime, so that a later copy-up can tell an older copy from a newer one.
 */
static const char lua_delete[] = LUA_PRELUDE
	"local h = meta()\n"
	"if stale(h, ARGV[1], ARGV[2]) then return tracked(1) end\n"
	"local existed = redis.call('DEL', K)\n"
	"if ARGV[7] == '1' then redis.call('ZREM', KEYS[3], K) end\n"
	"local mt = h[5]\n"
	"local ttl\n"
	"if isnum(mt) then\n"
	"  ttl = math.floor(tonumber(mt) / 1e6) + tonumber(ARGV[4]) -\n"
	"        tonumber(ARGV[3])\n"
	"  if ttl < 1000 then ttl = 1000 end\n"
	"  ttl = string.format('%.0f', ttl)\n"
	"else\n"
	"  ttl = ARGV[6]\n"
	"  redis.call('HSET', M, 'mt', ARGV[5], 'ct', ARGV[5])\n"
	"end\n"
	"redis.call('HSET', M, 'v', '1', 'del', '1', 'host', ARGV[1],\n"
	"           'hs', ARGV[2], 'wv', (tonumber(h[3]) or 0) + 1)\n"
	"redis.call('PEXPIRE', M, ttl)\n"
	"return tracked(existed)\n";

/*
 * ARGV: host, hs, mt, ct, uid, gid, mode, sliding value TTL ms, ttl ms,
 * "1" if a cachelib header would set the TTL, "1" if the name is indexed
 * (KEYS[3]).  Returns {0, wv} or {2}
 * (no value).  A valid non-zero cachelib header keeps the value's TTL.
 */
static const char lua_setmeta[] = LUA_PRELUDE
	"local h = meta()\n"
	"if stale(h, ARGV[1], ARGV[2]) then return tracked({0, h[3] or '0'}) end\n"
	"if redis.call('EXISTS', K) == 0 then return tracked({2}) end\n"
	"local vttl = tonumber(ARGV[8])\n"
	"local keep = false\n"
	"if ARGV[10] == '1' then\n"
	"  local h = redis.call('GETRANGE', K, 0, 4)\n"
	"  if #h == 5 and h:byte(5) == 128 and\n"
	"     h:sub(1, 4) ~= string.char(0, 0, 0, 0) then\n"
	"    local p = redis.call('PTTL', K)\n"
	"    if p > 0 then vttl, keep = p, true end\n"
	"  end\n"
	"end\n"
	"if not keep then redis.call('PEXPIRE', K, ARGV[8]) end\n"
	"if ARGV[11] == '1' then index(vttl) end\n"
	"local wv = setmeta(h, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5],\n"
	"                   ARGV[6], ARGV[7])\n"
	"redis.call('PEXPIRE', M,\n"
	"           string.format('%.0f', vttl + tonumber(ARGV[9])))\n"
	"return tracked({0, wv})\n";

/*
 * KEYS: the names index.  Counts the members whose value has not expired
 * by Redis's clock: a value key exists while now <= its expiry time, and
 * a write scores its key with that time (index() above).  Read-only: the
 * writes drop the expired members.
 */
static const char lua_names[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"return redis.call('ZCOUNT', KEYS[1], string.format('%.0f', now),\n"
	"                  '+inf')\n";

/*
 * KEYS: the names index, then value keys.  Adds each value key that
 * exists and is not a member yet, scored as index() does; returns how
 * many it added.  For values written before the index existed.
 */
static const char lua_reindex[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local n = 0\n"
	"for i = 2, #KEYS do\n"
	"  local p = redis.call('PTTL', KEYS[i])\n"
	"  if p > 0 then\n"
	"    n = n + redis.call('ZADD', KEYS[1], 'NX',\n"
	"                       string.format('%.0f', now + p), KEYS[i])\n"
	"  end\n"
	"end\n"
	"return n\n";

enum script_id {
	SCRIPT_GET = 0,
	SCRIPT_PUT,
	SCRIPT_DELETE,
	SCRIPT_SETMETA,
	SCRIPT_NAMES,
	SCRIPT_REINDEX,
	SCRIPT_COUNT,
};

/* Script results (first element of the reply array). */
enum {
	RES_OK = 0,
	RES_EXISTS = 1,
	RES_NOVALUE = 2,
};

/*
 * 'what' names a script in an ACL refusal (acl.h): Redis's message for a
 * command a script may not run does not say which, so it lists them all.
 */
struct script {
	const char *body;
	const char *what;
	char sha[SHA_DIGEST_LENGTH * 2 + 1];
};

/* One line each: clang-format would fill the lines. */
/* clang-format off */
static struct script scripts[SCRIPT_COUNT] = {
	[SCRIPT_GET] = { lua_get, "the get script (EVALSHA or EVAL, running PTTL HGETALL GET STRLEN)", "" },
	[SCRIPT_PUT] = { lua_put, "the put script (EVALSHA or EVAL, running HMGET EXISTS PTTL HGETALL GET STRLEN SET HSET HDEL PEXPIRE TIME ZADD ZREMRANGEBYSCORE)", "" },
	[SCRIPT_DELETE] = { lua_delete, "the delete script (EVALSHA or EVAL, running HMGET EXISTS DEL ZREM HSET PEXPIRE)", "" },
	[SCRIPT_SETMETA] = { lua_setmeta, "the setmeta script (EVALSHA or EVAL, running HMGET EXISTS GETRANGE PTTL PEXPIRE HSET HDEL TIME ZADD ZREMRANGEBYSCORE)", "" },
	[SCRIPT_NAMES] = { lua_names, "the count script (EVALSHA or EVAL, running TIME ZCOUNT)", "" },
	[SCRIPT_REINDEX] = { lua_reindex, "the reindex script (EVALSHA or EVAL, running TIME PTTL ZADD)", "" },
};
/* clang-format on */

static pthread_once_t scripts_once = PTHREAD_ONCE_INIT;

static void scripts_hash(void)
{
	unsigned char md[SHA_DIGEST_LENGTH];
	size_t i, j;

	for (i = 0; i < SCRIPT_COUNT; i++) {
		SHA1((const unsigned char *)scripts[i].body,
		     strlen(scripts[i].body), md);
		for (j = 0; j < SHA_DIGEST_LENGTH; j++)
			snprintf(scripts[i].sha + 2 * j, 3, "%02x", md[j]);
	}
}

static struct script *script_get(enum script_id id)
{
	pthread_once(&scripts_once, scripts_hash);
	return &scripts[id];
}

static int64_t ns_to_ms(int64_t ns)
{
	return ns / NS_PER_MS - (ns % NS_PER_MS < 0);
}

static int64_t ttl_ms(const struct be_store_config *sc)
{
	return sc->ttl.ttl_s * 1000;
}

static _Atomic uint64_t last_hseq;

uint64_t be_store_next_hseq(void)
{
	uint64_t now = (uint64_t)be_real_ns();
	uint64_t old = atomic_load(&last_hseq);
	uint64_t next;

	do {
		next = now > old ? now : old + 1;
	} while (!atomic_compare_exchange_weak(&last_hseq, &old, next));
	return next;
}

/*
 * Arguments of one script call: "EVALSHA" sha "2" K M ARGV..., borrowed
 * strings plus the numbers formatted into 'nums'.
 */
struct script_args {
	enum script_id id;
	const char *argv[MAX_ARGS];
	size_t lens[MAX_ARGS];
	int argc;
	char nums[MAX_NUM_ARGS][NUM_ARG_SIZE];
	int nnums;
	char *ikey; /* the names index (KEYS[3] of an indexed write), owned */
	bool index; /* the name is indexed: the script's last ARGV */
	/* A write under durability=replica: WAIT for this many, this long. */
	int wait_replicas;
	int wait_ms;
	const char *prefix; /* sc's key prefix, for wait_again()'s marker */
};

static void arg_mem(struct script_args *a, const void *p, size_t len)
{
	assert(a->argc < MAX_ARGS);
	a->argv[a->argc] = p ? p : "";
	a->lens[a->argc] = len;
	a->argc++;
}

static void arg_str(struct script_args *a, const char *s)
{
	arg_mem(a, s, strlen(s));
}

static char *arg_buf(struct script_args *a)
{
	assert(a->nnums < MAX_NUM_ARGS);
	return a->nums[a->nnums++];
}

static void arg_i64(struct script_args *a, int64_t v)
{
	char *buf = arg_buf(a);

	snprintf(buf, NUM_ARG_SIZE, "%" PRId64, v);
	arg_str(a, buf);
}

static void arg_hseq(struct script_args *a)
{
	char *buf = arg_buf(a);

	be_hseq_format(buf, be_store_next_hseq());
	arg_str(a, buf);
}

/*
 * Starts the arguments of script 'id' on 'vkey' and 'mkey'.  With 'sc' (a
 * write) and 'name' indexed there (be_store_is_indexed()), the names index
 * of sc's prefix is KEYS[3]; a name that is not indexed names only its own
 * two keys.  0 or -ENOMEM; args_release() frees what it made either way.
 */
static int args_init(struct script_args *a, enum script_id id, const char *vkey,
		     const char *mkey, const struct be_store_config *sc,
		     const char *name)
{
	struct script *s = script_get(id);

	a->id = id;
	a->argc = 0;
	a->nnums = 0;
	a->wait_replicas = sc ? sc->wait_replicas : 0;
	a->wait_ms = sc && sc->wait_ms > 0 ? sc->wait_ms : 1;
	a->prefix = sc ? sc->ks.prefix : "";
	/* A cluster keeps no names index: it has a slot of its own. */
	a->index = sc && !sc->cluster && be_store_is_indexed(sc, name);
	a->ikey = a->index ? be_store_index_key(sc) : NULL;
	arg_str(a, "EVALSHA");
	arg_str(a, s->sha);
	arg_str(a, a->index ? "3" : "2");
	arg_str(a, vkey);
	arg_str(a, mkey);
	if (!a->index)
		return 0;
	if (!a->ikey)
		return -ENOMEM;
	arg_str(a, a->ikey);
	return 0;
}

/* The write script's last argument: whether it keeps the names index. */
static void arg_index(struct script_args *a)
{
	arg_str(a, a->index ? "1" : "0");
}

static void args_release(struct script_args *a)
{
	free(a->ikey);
	a->ikey = NULL;
}

bool be_store_is_indexed(const struct be_store_config *sc, const char *name)
{
	return sc->ks.layout == BE_LAYOUT_PLAIN &&
	       be_name_is_cachelib_entry(name);
}

char *be_store_index_key(const struct be_store_config *sc)
{
	char *key;

	if (asprintf(&key, "%s" BE_INDEX_KEY_SUFFIX, sc->ks.prefix) < 0)
		return NULL;
	return key;
}

/* The script's sequence is taken when its arguments are built. */
static void args_host(struct script_args *a, const struct be_store_config *sc)
{
	arg_str(a, sc->host_id ? sc->host_id : "");
	arg_hseq(a);
}

/* Whether the error text 's' of 'len' bytes begins with the code 'code'. */
static bool text_is_code(const char *s, size_t len, const char *code)
{
	size_t clen = strlen(code);

	return len >= clen && strncmp(s, code, clen) == 0 &&
	       (len == clen || s[clen] == ' ');
}

static bool reply_is_error(const redisReply *r, const char *code)
{
	return r->type == REDIS_REPLY_ERROR &&
	       text_is_code(r->str, (size_t)r->len, code);
}

int be_store_reply_errno(const redisReply *r)
{
	static const char abort_pfx[] = "EXECABORT ";
	static const char cause[] = "because of: ";
	const char *s = r->str, *c;
	size_t len = r->type == REDIS_REPLY_ERROR ? (size_t)r->len : 0;

	/*
	 * An EXEC refused on its own ("EXECABORT Transaction discarded
	 * because of: OOM ...": Redis went over maxmemory between the
	 * queueing and the EXEC) means what its cause means.
	 */
	if (len > sizeof(abort_pfx) - 1 &&
	    strncmp(s, abort_pfx, sizeof(abort_pfx) - 1) == 0) {
		c = strstr(s, cause);
		if (c) {
			c += sizeof(cause) - 1;
			len -= (size_t)(c - s);
			s = c;
		}
	}
	if (text_is_code(s, len, "OOM"))
		return -ENOSPC;
	if (text_is_code(s, len, "NOPERM"))
		return -EPERM; /* an ACL refused the command (acl.h) */
	if (text_is_code(s, len, "NOAUTH") || text_is_code(s, len, "WRONGPASS"))
		return -EACCES;
	if (text_is_code(s, len, "READONLY"))
		return -EROFS;
	return -EIO;
}

/* durability=replica: what the WAITs said (be_store_durability()). */
static _Atomic long long wait_last = -1;
static _Atomic uint64_t wait_confirmed, wait_unconfirmed;

void be_store_durability(long long *replicas_seen, uint64_t *confirmed,
			 uint64_t *unconfirmed)
{
	*replicas_seen = atomic_load(&wait_last);
	*confirmed = atomic_load(&wait_confirmed);
	*unconfirmed = atomic_load(&wait_unconfirmed);
}

/*
 * A be_conn_marks() bit no script id uses: set before a durable write is
 * sent, gone after it when the call reconnected (marks start at 0 on each
 * connect).
 */
#define MARK_SAME_CONN (1U << 31)

/*
 * The WAIT of a durable write whose call reconnected: the first attempt
 * may have run on the old connection, and then the retry finds its own
 * write in place (stale()) and writes nothing.  Redis 7.0 sets a
 * connection's offset to the master's after any command, so the retry's
 * WAIT counts the first attempt too (test_durable_write_retried_after_a_cut
 * passes without this); a server that counts only the connection's own
 * writes would confirm at once.  A write of a marker key under the prefix
 * puts this connection's offset past everything the master had, the first
 * attempt included, on any server; WAIT then counts what matters.
 * Replaces '*wr' (the retry's WAIT reply) with the new one.  0 or -errno.
 */
static int wait_again(struct be_conn *c, const struct script_args *a,
		      const char **wait, redisReply **wr)
{
	char *key;
	const char *set[5] = { "SET", NULL, "1", "PX", "60000" };
	struct be_cmd cmds[2] = { { 5, set, NULL }, { 3, wait, NULL } };
	redisReply *r[2];
	int ret;

	/*
	 * On a cluster WAIT counts the node that took the marker: it must be
	 * the write's, so the marker takes the session's hash tag (argv[3]
	 * is the value key, KEYS[1]).
	 */
	if (be_conn_is_cluster(c)
		    ? asprintf(&key, "%s{%s}:wait", a->prefix, a->argv[3]) < 0
		    : asprintf(&key, "%s" BE_WAIT_KEY_SUFFIX, a->prefix) < 0)
		return -ENOMEM;
	set[1] = key;
	ret = be_conn_pipeline(c, cmds, 2, r, 0);
	free(key);
	if (ret)
		return ret;
	if (r[0]->type == REDIS_REPLY_ERROR) {
		ret = be_acl_is_denial(r[0])
			      ? be_acl_denied("SET of the WAIT marker", r[0])
			      : be_store_reply_errno(r[0]);
		freeReplyObject(r[0]);
		freeReplyObject(r[1]);
		return ret;
	}
	freeReplyObject(r[0]);
	freeReplyObject(*wr);
	*wr = r[1];
	return 0;
}

/*
 * Sends the script call of 'a', followed, for a write under
 * durability=replica, by "WAIT n ms" in the same pipeline: WAIT counts
 * the replicas that acknowledged this connection's writes, so it must
 * follow the write on the same connection, and one round trip carries
 * both.  '*waited' (when not NULL) is set to the count WAIT returned, or
 * -1 for none.  0 with '*reply' as be_conn_command(), or -errno;
 * -EACCES or -EIO when WAIT itself was refused.
 */
static int script_call(struct be_conn *c, struct script_args *a,
		       redisReply **reply, long long *waited, int wait_ms)
{
	char n[16], ms[16];
	const char *wait[3] = { "WAIT", n, ms };
	struct be_cmd cmds[2] = { { a->argc, a->argv, a->lens },
				  { 3, wait, NULL } };
	redisReply *r[2];
	int ret;

	*waited = -1;
	if (!a->wait_replicas)
		return be_conn_command(c, reply, a->argc, a->argv, a->lens, 0);
	snprintf(n, sizeof(n), "%d", a->wait_replicas);
	/* WAIT with 0 ms would block for ever. */
	snprintf(ms, sizeof(ms), "%d", wait_ms > 0 ? wait_ms : 1);
	/*
	 * A script this connection's server may not have (a new master
	 * after a failover keeps no script cache) goes alone first: a WAIT
	 * behind a NOSCRIPT would wait for a write that never happened.
	 */
	be_conn_mark(c, MARK_SAME_CONN);
	if (!strcmp(a->argv[0], "EVALSHA") &&
	    !(be_conn_marks(c) & (1U << a->id))) {
		ret = be_conn_command(c, reply, a->argc, a->argv, a->lens, 0);
		if (ret || (*reply)->type == REDIS_REPLY_ERROR)
			return ret;
		be_conn_mark(c, 1U << a->id);
		ret = be_conn_command(c, &r[1], 3, wait, NULL, 0);
		if (ret) {
			freeReplyObject(*reply);
			*reply = NULL;
			return ret;
		}
		goto out_wait;
	}
	/*
	 * A retry after a transport error resends both on a new connection
	 * (wait_again() below).
	 */
	ret = be_conn_pipeline(c, cmds, 2, r, 0);
	if (ret)
		return ret;
	*reply = r[0];
	if (r[0]->type != REDIS_REPLY_ERROR)
		be_conn_mark(c, 1U << a->id);
out_wait:
	/* A WAIT that found too few replicas already says "not durable". */
	if ((*reply)->type != REDIS_REPLY_ERROR &&
	    !(be_conn_marks(c) & MARK_SAME_CONN) &&
	    r[1]->type == REDIS_REPLY_INTEGER &&
	    r[1]->integer >= a->wait_replicas) {
		ret = wait_again(c, a, wait, &r[1]);
		if (ret) {
			freeReplyObject(*reply);
			*reply = NULL;
			freeReplyObject(r[1]);
			return ret;
		}
	}
	be_conn_mark(c, MARK_SAME_CONN);
	if (r[1]->type == REDIS_REPLY_INTEGER) {
		*waited = r[1]->integer;
	} else {
		ret = be_store_reply_errno(r[1]);
		freeReplyObject(r[0]);
		*reply = NULL;
	}
	freeReplyObject(r[1]);
	return ret;
}

/*
 * Runs the script of 'a' on 'c': EVALSHA, then EVAL if the server does not
 * have it cached.  On 0, '*reply' is a new reply that is not an error.  A
 * write under durability=replica that fewer replicas than asked
 * confirmed in time returns -BE_ENOTDURABLE: it is on the master, and may
 * or may not survive a failover.
 */
static int script_run(struct be_conn *c, struct script_args *a,
		      redisReply **reply)
{
	struct script *s = script_get(a->id);
	long long waited;
	int ret;

	ret = script_call(c, a, reply, &waited, a->wait_ms);
	if (ret)
		return ret;
	if (reply_is_error(*reply, "NOSCRIPT")) {
		freeReplyObject(*reply);
		a->argv[0] = "EVAL";
		a->lens[0] = strlen("EVAL");
		a->argv[1] = s->body;
		a->lens[1] = strlen(s->body);
		/* The replicas were short a moment ago: do not wait twice. */
		ret = script_call(c, a, reply, &waited,
				  waited >= 0 && waited < a->wait_replicas
					  ? 1
					  : a->wait_ms);
		if (ret)
			return ret;
	}
	if ((*reply)->type != REDIS_REPLY_ERROR && waited >= 0) {
		atomic_store(&wait_last, waited);
		if (waited < a->wait_replicas) {
			atomic_fetch_add(&wait_unconfirmed, 1);
			freeReplyObject(*reply);
			*reply = NULL;
			return -BE_ENOTDURABLE;
		}
		atomic_fetch_add(&wait_confirmed, 1);
	}
	if ((*reply)->type == REDIS_REPLY_ERROR) {
		ret = be_acl_is_denial(*reply) ? be_acl_denied(s->what, *reply)
					       : be_store_reply_errno(*reply);
		freeReplyObject(*reply);
		*reply = NULL;
	}
	return ret;
}

/*
 * Sets '*vkey' and '*mkey' to new strings, the keys of 'name'.  0, -EINVAL
 * for a name that is not stored in Redis, or -ENOMEM.
 */
static int keys_new(const struct be_store_config *sc, const char *name,
		    char **vkey, char **mkey)
{
	if (be_name_classify(&sc->ks, name) != BE_NAME_SESSION)
		return -EINVAL;
	*vkey = be_key_value(&sc->ks, name);
	if (!*vkey)
		return -ENOMEM;
	*mkey = be_key_meta(&sc->ks, *vkey);
	if (!*mkey) {
		free(*vkey);
		return -ENOMEM;
	}
	return 0;
}

/* The host id is required for writes and must fit the meta's field. */
static bool host_id_ok(const struct be_store_config *sc)
{
	return sc->host_id &&
	       strlen(sc->host_id) < sizeof(((struct be_meta *)0)->host);
}

/* Reads an integer reply, or a string holding a decimal integer. */
static int reply_int(const redisReply *r, long long *v)
{
	char *end;

	if (r->type == REDIS_REPLY_INTEGER) {
		*v = r->integer;
		return 0;
	}
	if (r->type != REDIS_REPLY_STRING || r->len == 0)
		return -EPROTO;
	errno = 0;
	*v = strtoll(r->str, &end, 10);
	if (errno || end != r->str + r->len)
		return -EPROTO;
	return 0;
}

/* Parses the HGETALL reply 'r' into 'm'. */
static int reply_meta(const redisReply *r, struct be_meta *m)
{
	const char **fields;
	size_t *lens;
	size_t i;
	int ret = -ENOMEM;

	if (r->type != REDIS_REPLY_ARRAY)
		return -EPROTO;
	fields = calloc(r->elements + 1, sizeof(*fields));
	lens = calloc(r->elements + 1, sizeof(*lens));
	if (!fields || !lens)
		goto out_free;
	ret = -EPROTO;
	for (i = 0; i < r->elements; i++) {
		if (r->element[i]->type != REDIS_REPLY_STRING)
			goto out_free;
		fields[i] = r->element[i]->str;
		lens[i] = (size_t)r->element[i]->len;
	}
	if (be_meta_parse(m, r->elements, fields, lens) == 0)
		ret = 0;
out_free:
	free(fields);
	free(lens);
	return ret;
}

/*
 * The meta of a value written without one (phpredis's own handler): its
 * mtime is what its PTTL implies under the sliding TTL.
 */
static void meta_default(const struct be_store_config *sc, int64_t pttl,
			 struct be_meta *m)
{
	int64_t now_ms = ns_to_ms(be_real_ns());
	int64_t mtime_ms = pttl >= 0 ? now_ms - (ttl_ms(sc) - pttl) : now_ms;

	memset(m, 0, sizeof(*m));
	m->mtime_ns = mtime_ms * NS_PER_MS;
	m->ctime_ns = m->mtime_ns;
}

/*
 * Fills 'f' from what Redis holds: whether K exists, its length, PTTL, the
 * HGETALL reply of M and, with 'want_data', K's value.  0, -EPROTO or
 * -ENOMEM.
 */
static int fill_file(const struct be_store_config *sc, bool exists,
		     long long size, long long pttl, const redisReply *meta,
		     const redisReply *data, bool want_data, struct be_file *f)
{
	bool has_meta;

	memset(f, 0, sizeof(*f));
	f->pttl_ms = -1;
	if (size < 0)
		return -EPROTO;
	has_meta = meta->type == REDIS_REPLY_ARRAY && meta->elements > 0;
	if (has_meta && reply_meta(meta, &f->meta))
		return -EPROTO;
	if (!exists) {
		f->state = has_meta ? BE_TOMBSTONE : BE_ABSENT;
		/* A live meta key without a value counts as deleted. */
		f->meta.deleted = has_meta;
		return 0;
	}
	f->state = BE_PRESENT;
	f->has_meta = has_meta;
	f->pttl_ms = pttl;
	f->size = (size_t)size;
	if (has_meta)
		f->meta.deleted = false;
	else
		meta_default(sc, pttl, &f->meta);
	if (!want_data)
		return 0;
	if (data->type != REDIS_REPLY_STRING)
		return -EPROTO;
	f->data = malloc((size_t)data->len + 1);
	if (!f->data)
		return -ENOMEM;
	memcpy(f->data, data->str, (size_t)data->len);
	f->data[data->len] = '\0';
	f->size = (size_t)data->len;
	return 0;
}

/*
 * Fills 'f' from the snapshot reply 'r' of a script: {exists, STRLEN,
 * PTTL, HGETALL of M, value or nil}.  0, -EPROTO or -ENOMEM.
 */
static int reply_file(const struct be_store_config *sc, const redisReply *r,
		      bool want_data, struct be_file *f)
{
	long long exists, size, pttl;

	memset(f, 0, sizeof(*f));
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 5 ||
	    reply_int(r->element[0], &exists) ||
	    reply_int(r->element[1], &size) || reply_int(r->element[2], &pttl))
		return -EPROTO;
	return fill_file(sc, exists != 0, size, pttl, r->element[3],
			 r->element[4], want_data, f);
}

void be_file_release(struct be_file *f)
{
	free(f->data);
	memset(f, 0, sizeof(*f));
}

/*
 * Fills 'f' from the replies of be_store_get()'s transaction: OK, three
 * QUEUED, and EXEC's {PTTL, HGETALL of M, value or nil (STRLEN without
 * the data)}.  An error reply anywhere is the call's error; an ACL's
 * refusal of r[i] is reported as one of 'cmds[i]' (acl.h).
 */
static int exec_file(const struct be_store_config *sc, redisReply **r,
		     const char *const *cmds, bool want_data, struct be_file *f)
{
	const redisReply *x = r[4];
	long long size = 0, pttl;
	size_t i;

	memset(f, 0, sizeof(*f));
	for (i = 0; i < 5; i++) {
		/* MULTI refused: the caller reads by script (a warning). */
		if (i > 0 && be_acl_is_denial(r[i]))
			return be_acl_denied(cmds[i], r[i]);
		if (r[i]->type == REDIS_REPLY_ERROR)
			return be_store_reply_errno(r[i]);
	}
	if (x->type != REDIS_REPLY_ARRAY || x->elements != 3)
		return -EPROTO;
	for (i = 0; i < 3; i++)
		if (x->element[i]->type == REDIS_REPLY_ERROR)
			return be_store_reply_errno(x->element[i]);
	if (reply_int(x->element[0], &pttl))
		return -EPROTO;
	if (!want_data && reply_int(x->element[2], &size))
		return -EPROTO;
	/* PTTL says -2 for a missing key: no EXISTS needed. */
	return fill_file(sc, pttl != -2, size, pttl, x->element[1],
			 x->element[2], want_data, f);
}

/* be_store_get() by the get script: the same snapshot, ~8 µs slower. */
static int get_by_script(struct be_conn *c, const struct be_store_config *sc,
			 const char *vkey, const char *mkey, bool want_data,
			 struct be_file *f)
{
	struct script_args a;
	redisReply *reply;
	int ret;

	args_init(&a, SCRIPT_GET, vkey, mkey, NULL, NULL);
	arg_str(&a, want_data ? "1" : "0");
	ret = script_run(c, &a, &reply);
	if (ret)
		return ret;
	ret = reply_file(sc, reply, want_data, f);
	freeReplyObject(reply);
	return ret;
}

/*
 * Set once an ACL refused MULTI (or another command only transactions
 * need): from then on every read and rewrite is a script (the user may
 * run scripts and the commands inside them, not transactions).
 */
static atomic_bool tx_refused;

/* One line each in the log (acl.h), for reads and rewrites alike. */
#define TX_MULTI_REFUSED \
	"MULTI (every read and rewrite runs a script instead, a little slower)"
#define TX_EXEC_REFUSED \
	"EXEC (every read and rewrite runs a script instead, a little slower)"

/*
 * A read is a transaction, not a script: as atomic, and Redis runs it in
 * a third of the time (bench/README.md).  Its reads are tracked like a
 * script's (CLIENT TRACKING, track.h).  Redis refuses every command queued
 * in a transaction while it is over maxmemory (OOM), where a script may
 * still read: then the script reads, so that sessions stay readable when
 * Redis is full; so it does for a user whose ACL denies MULTI.
 */
int be_store_get(struct be_conn *c, const struct be_store_config *sc,
		 const char *name, bool want_data, struct be_file *f)
{
	static const char *const what[5] = { TX_MULTI_REFUSED, "PTTL",
					     "HGETALL", NULL, TX_EXEC_REFUSED };
	const char *names[5] = { what[0], what[1], what[2],
				 want_data ? "GET" : "STRLEN", what[4] };
	const char *multi[1] = { "MULTI" }, *exec[1] = { "EXEC" };
	const char *pttl[2] = { "PTTL" }, *hgetall[2] = { "HGETALL" };
	const char *value[2] = { want_data ? "GET" : "STRLEN" };
	struct be_cmd cmds[5] = {
		{ 1, multi, NULL }, { 2, pttl, NULL }, { 2, hgetall, NULL },
		{ 2, value, NULL }, { 1, exec, NULL },
	};
	redisReply *r[5];
	char *vkey, *mkey;
	size_t i;
	int ret;

	memset(f, 0, sizeof(*f));
	ret = keys_new(sc, name, &vkey, &mkey);
	if (ret)
		return ret;
	pttl[1] = value[1] = vkey;
	hgetall[1] = mkey;
	ret = atomic_load(&tx_refused) ? -EPERM
				       : be_conn_pipeline(c, cmds, 5, r, 0);
	if (ret == 0) {
		if (be_acl_is_denial(r[0])) {
			be_acl_denied(names[0], r[0]);
			atomic_store(&tx_refused, true);
		}
		/* MULTI without EXEC would leave the connection queueing. */
		if (r[0]->type != REDIS_REPLY_ERROR && be_acl_is_denial(r[4])) {
			be_conn_close(c);
			atomic_store(&tx_refused, true);
		}
		ret = exec_file(sc, r, names, want_data, f);
		for (i = 0; i < 5; i++)
			freeReplyObject(r[i]);
		if (ret)
			be_file_release(f);
	}
	if (ret == -ENOSPC || (ret == -EPERM && atomic_load(&tx_refused)))
		ret = get_by_script(c, sc, vkey, mkey, want_data, f);
	if (ret)
		be_file_release(f);
	free(vkey);
	free(mkey);
	return ret;
}

static int64_t clamp_ttl(int64_t ms)
{
	return ms < MIN_TTL_MS ? MIN_TTL_MS : ms;
}

/* a + b without overflow: PEXPIRE refuses what does not fit anyway. */
static int64_t add_sat(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return INT64_MAX;
	return r;
}

/*
 * Builds the arguments of a put; 'vkey' and 'mkey' stay borrowed.  0 or
 * -ENOMEM; args_release() either way.
 */
static int put_args(struct script_args *a, const struct be_store_config *sc,
		    const char *name, const char *vkey, const char *mkey,
		    const void *data, size_t len, const struct be_meta *meta,
		    enum be_put_mode mode)
{
	int64_t now_ms = ns_to_ms(be_real_ns());
	int64_t vttl = clamp_ttl(be_ttl_remaining_ms(
		&sc->ttl, name, data, len, ns_to_ms(meta->mtime_ns), now_ms));

	if (args_init(a, SCRIPT_PUT, vkey, mkey, sc, name))
		return -ENOMEM;
	arg_i64(a, mode);
	args_host(a, sc);
	arg_mem(a, data, len);
	arg_i64(a, vttl);
	arg_i64(a, add_sat(vttl, ttl_ms(sc)));
	arg_i64(a, meta->mtime_ns);
	arg_i64(a, meta->ctime_ns);
	arg_i64(a, meta->uid);
	arg_i64(a, meta->gid);
	arg_i64(a, meta->mode & 07777);
	arg_i64(a, now_ms);
	arg_i64(a, ttl_ms(sc));
	arg_index(a);
	return 0;
}

/*
 * Reads the reply of the put or setmeta script: {0, wv}, {1, snapshot} or
 * {2}.  0, -EEXIST (with the snapshot in 'cur' if not NULL), -ENOENT or
 * -EPROTO.
 */
static int reply_put(const struct be_store_config *sc, const redisReply *r,
		     uint64_t *wver, struct be_file *cur)
{
	long long code, wv;
	int ret;

	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    reply_int(r->element[0], &code))
		return -EPROTO;
	switch (code) {
	case RES_OK:
		if (r->elements != 2 || reply_int(r->element[1], &wv) || wv < 0)
			return -EPROTO;
		if (wver)
			*wver = (uint64_t)wv;
		return 0;
	case RES_EXISTS:
		if (r->elements != 2)
			return -EPROTO;
		if (cur) {
			ret = reply_file(sc, r->element[1], true, cur);
			if (ret) {
				be_file_release(cur);
				return ret;
			}
		}
		return -EEXIST;
	case RES_NOVALUE:
		return -ENOENT;
	default:
		return -EPROTO;
	}
}

/*
 * A be_conn_marks() bit for put_tx(): the WATCH of this connection was
 * acknowledged.  (store_copy.c's chunks use bit 29.)
 */
#define MARK_WATCHED (1U << 30)
/* Aborted transactions (M changed under the WATCH) before the script. */
#define TX_TRIES 8
/* Commands of put_tx()'s transaction, MULTI and EXEC included. */
#define TX_CMDS 7

/* Whether a put of 'name' in 'mode' may go as put_tx(). */
static bool tx_put_ok(const struct be_store_config *sc, const char *name,
		      enum be_put_mode mode)
{
	return mode == BE_PUT_REPLACE && sc->tx_writes && !sc->wait_replicas &&
	       !be_store_is_indexed(sc, name) && !atomic_load(&tx_refused);
}

/*
 * An error reply of put_tx()'s WATCH or transaction: an ACL's refusal
 * returns -ENOTSUP (the caller runs the script at once).  A command only
 * the transaction needs ('what' not NULL: WATCH, MULTI, HINCRBY, EXEC) is
 * named once and turns the transactions off for the process, reads
 * included; one the script runs too is left for the script to report.
 * Otherwise the reply's errno.
 */
static int tx_error(const redisReply *r, const char *what)
{
	if (!be_acl_is_denial(r))
		return be_store_reply_errno(r);
	if (what) {
		be_acl_denied(what, r);
		atomic_store(&tx_refused, true);
	}
	return -ENOTSUP;
}

/*
 * be_store_put() of BE_PUT_REPLACE without Lua (docs/DESIGN.md, "Writes
 * without Lua"): "WATCH M", and once Redis acknowledged it, on the same
 * connection, "MULTI, SET K, HSET M, HINCRBY M wv 1, HDEL M del,
 * PEXPIRE M, EXEC".  The stale-retry rule of store.h is kept
 * by the WATCH: an EXEC runs only if M did not change since its WATCH,
 * and the WATCH was acknowledged before the EXEC was sent, so before this
 * call returned and before any newer write of this name from this host
 * (the caller's stripe orders them) began.  A transaction that reaches
 * Redis late, after a newer write, finds M changed and does nothing.  So
 * the transaction is never resent by be_conn on another connection
 * (BE_CMD_NORETRY): a transport error starts over with a new WATCH.  No
 * read re-arms tracking (the scripts' tracked()): there is no tracker
 * with tx_writes.  Only for 'sc' with
 * tx_writes (a connection that is never replaced between two calls of
 * one thread: no Sentinel, no tracker), no WAIT and names the names index
 * does not hold (tx_put_ok()).  Returns as be_store_put(), or -EAGAIN:
 * run the script (M kept changing, or an ACL refused a command).
 */
static int put_tx(struct be_conn *c, const struct be_store_config *sc,
		  const char *name, const char *vkey, const char *mkey,
		  const void *data, size_t len, const struct be_meta *meta,
		  uint64_t *wver)
{
	/*
	 * A refused MULTI lets the commands after it run one by one, at
	 * once: the same write, acknowledged before the script repeats it.
	 */
	static const char *const what[TX_CMDS] = {
		TX_MULTI_REFUSED,
		NULL,
		NULL,
		"HINCRBY (every rewrite runs the put script instead)",
		NULL,
		NULL,
		TX_EXEC_REFUSED,
	};
	int64_t now_ms = ns_to_ms(be_real_ns());
	int64_t vttl = clamp_ttl(be_ttl_remaining_ms(
		&sc->ttl, name, data, len, ns_to_ms(meta->mtime_ns), now_ms));
	char nums[8][NUM_ARG_SIZE];
	const char *watch[2] = { "WATCH", mkey };
	const char *multi[1] = { "MULTI" }, *exec[1] = { "EXEC" };
	const char *set[5] = { "SET", vkey, data ? (const char *)data : "",
			       "PX", nums[0] };
	size_t setlen[5] = { 3, strlen(vkey), len, 2, 0 };
	const char *hset[18] = { "HSET", mkey,	  "v",	  "1",
				 "mt",	 nums[1], "ct",	  nums[2],
				 "uid",	 nums[3], "gid",  nums[4],
				 "mode", nums[5], "host", sc->host_id,
				 "hs",	 nums[6] };
	const char *incr[4] = { "HINCRBY", mkey, "wv", "1" };
	const char *hdel[3] = { "HDEL", mkey, "del" };
	const char *pexp[3] = { "PEXPIRE", mkey, nums[7] };
	struct be_cmd cmds[TX_CMDS] = {
		{ 1, multi, NULL }, { 5, set, setlen }, { 18, hset, NULL },
		{ 4, incr, NULL },  { 3, hdel, NULL },	{ 3, pexp, NULL },
		{ 1, exec, NULL },
	};
	redisReply *r[TX_CMDS], *w;
	const redisReply *x;
	int tries, ret = -EAGAIN;
	size_t i;

	snprintf(nums[0], NUM_ARG_SIZE, "%" PRId64, vttl);
	setlen[4] = strlen(nums[0]);
	snprintf(nums[1], NUM_ARG_SIZE, "%" PRId64, meta->mtime_ns);
	snprintf(nums[2], NUM_ARG_SIZE, "%" PRId64, meta->ctime_ns);
	snprintf(nums[3], NUM_ARG_SIZE, "%" PRId64, (int64_t)meta->uid);
	snprintf(nums[4], NUM_ARG_SIZE, "%" PRId64, (int64_t)meta->gid);
	snprintf(nums[5], NUM_ARG_SIZE, "%" PRId64,
		 (int64_t)(meta->mode & 07777));
	be_hseq_format(nums[6], be_store_next_hseq());
	snprintf(nums[7], NUM_ARG_SIZE, "%" PRId64, add_sat(vttl, ttl_ms(sc)));
	for (tries = 0; tries < TX_TRIES; tries++) {
		ret = be_conn_command(c, &w, 2, watch, NULL, 0);
		if (ret)
			return ret;
		ret = w->type == REDIS_REPLY_ERROR
			      ? tx_error(w, "WATCH (every rewrite runs the "
					    "put script instead)")
			      : 0;
		freeReplyObject(w);
		if (ret)
			return ret == -ENOTSUP ? -EAGAIN : ret;
		be_conn_mark(c, MARK_WATCHED);
		ret = be_conn_pipeline(c, cmds, TX_CMDS, r, BE_CMD_NORETRY);
		if (ret == -ETIMEDOUT)
			return ret;
		if (ret)
			continue; /* a new connection, a new WATCH */
		/* sc->tx_writes: never a new connection between the two. */
		assert(be_conn_marks(c) & MARK_WATCHED);
		ret = 0;
		for (i = 0; i < TX_CMDS && !ret; i++)
			if (r[i]->type == REDIS_REPLY_ERROR)
				ret = tx_error(r[i], what[i]);
		x = r[TX_CMDS - 1];
		if (!ret && x->type == REDIS_REPLY_ARRAY) {
			if (x->elements != TX_CMDS - 2 || !wver)
				ret = x->elements == TX_CMDS - 2 ? 0 : -EPROTO;
			else if (x->element[2]->type != REDIS_REPLY_INTEGER ||
				 x->element[2]->integer < 0)
				ret = -EPROTO;
			else
				*wver = (uint64_t)x->element[2]->integer;
		} else if (!ret) {
			ret = -EAGAIN; /* nil: M changed under the WATCH */
		}
		for (i = 0; i < TX_CMDS; i++)
			freeReplyObject(r[i]);
		if (ret == -ENOTSUP)
			return -EAGAIN;
		if (ret != -EAGAIN)
			return ret;
	}
	return -EAGAIN;
}

int be_store_put(struct be_conn *c, const struct be_store_config *sc,
		 const char *name, const void *data, size_t len,
		 const struct be_meta *meta, enum be_put_mode mode,
		 uint64_t *wver, struct be_file *cur)
{
	struct script_args a;
	redisReply *reply;
	char *vkey, *mkey;
	int ret;

	if (cur)
		memset(cur, 0, sizeof(*cur));
	if (!host_id_ok(sc))
		return -EINVAL;
	ret = keys_new(sc, name, &vkey, &mkey);
	if (ret)
		return ret;
	memset(&a, 0, sizeof(a));
	if (tx_put_ok(sc, name, mode)) {
		ret = put_tx(c, sc, name, vkey, mkey, data, len, meta, wver);
		if (ret != -EAGAIN)
			goto out_free_keys;
	}
	ret = put_args(&a, sc, name, vkey, mkey, data, len, meta, mode);
	if (!ret)
		ret = script_run(c, &a, &reply);
	if (ret)
		goto out_free_keys;
	ret = reply_put(sc, reply, wver, cur);
	freeReplyObject(reply);
out_free_keys:
	args_release(&a);
	free(vkey);
	free(mkey);
	return ret;
}

int be_store_delete(struct be_conn *c, const struct be_store_config *sc,
		    const char *name, int64_t last_mtime_ns)
{
	int64_t now_ms = ns_to_ms(be_real_ns());
	struct script_args a;
	redisReply *reply;
	char *vkey, *mkey;
	int ret;

	if (!host_id_ok(sc))
		return -EINVAL;
	ret = keys_new(sc, name, &vkey, &mkey);
	if (ret)
		return ret;
	if (args_init(&a, SCRIPT_DELETE, vkey, mkey, sc, name)) {
		ret = -ENOMEM;
		goto out_free_keys;
	}
	args_host(&a, sc);
	arg_i64(&a, now_ms);
	arg_i64(&a, ttl_ms(sc));
	arg_i64(&a, last_mtime_ns);
	arg_i64(&a,
		be_tombstone_ttl_ms(&sc->ttl, ns_to_ms(last_mtime_ns), now_ms));
	arg_index(&a);
	ret = script_run(c, &a, &reply);
	if (ret)
		goto out_free_keys;
	if (reply->type == REDIS_REPLY_INTEGER &&
	    (reply->integer == 0 || reply->integer == 1))
		ret = (int)reply->integer;
	else
		ret = -EPROTO;
	freeReplyObject(reply);
out_free_keys:
	args_release(&a);
	free(vkey);
	free(mkey);
	return ret;
}

int be_store_count(struct be_conn *c, const struct be_store_config *sc,
		   long long *n)
{
	struct script_args a = { .id = SCRIPT_NAMES };
	redisReply *reply;
	char *ikey;
	int ret;

	if (sc->cluster)
		return be_store_count_scan(c, sc, n);
	ikey = be_store_index_key(sc);
	if (!ikey)
		return -ENOMEM;
	arg_str(&a, "EVALSHA");
	arg_str(&a, script_get(SCRIPT_NAMES)->sha);
	arg_str(&a, "1");
	arg_str(&a, ikey);
	ret = script_run(c, &a, &reply);
	if (ret)
		goto out_free_key;
	if (reply->type == REDIS_REPLY_INTEGER && reply->integer >= 0)
		*n = reply->integer;
	else
		ret = -EPROTO;
	freeReplyObject(reply);
out_free_key:
	free(ikey);
	return ret;
}

/*
 * Fills 'keys' with the index key, then the value keys of those session
 * names of 'names' that the index holds ('indexed') or must not hold
 * (!'indexed'); '*k' of them, each malloc'd (free with free_keys()).
 * 0 or -ENOMEM.
 */
static int index_keys(const struct be_store_config *sc,
		      const char *const *names, size_t n, bool indexed,
		      char **keys, size_t *k)
{
	size_t i;

	*k = 0;
	keys[0] = be_store_index_key(sc);
	if (!keys[0])
		return -ENOMEM;
	*k = 1;
	for (i = 0; i < n; i++) {
		if (be_name_classify(&sc->ks, names[i]) != BE_NAME_SESSION ||
		    be_store_is_indexed(sc, names[i]) != indexed)
			continue;
		keys[*k] = be_key_value(&sc->ks, names[i]);
		if (!keys[*k])
			return -ENOMEM;
		(*k)++;
	}
	return 0;
}

static void free_keys(char **keys, size_t k)
{
	size_t i;

	for (i = 0; i < k; i++)
		free(keys[i]);
}

/*
 * An integer reply into '*out' (0), or the reply's error; frees it.  An
 * ACL's refusal is reported as one of 'what'.
 */
static int integer_reply(redisReply *reply, long long *out, const char *what)
{
	int ret = 0;

	if (reply->type == REDIS_REPLY_INTEGER)
		*out = reply->integer;
	else if (be_acl_is_denial(reply))
		ret = be_acl_denied(what, reply);
	else
		ret = reply->type == REDIS_REPLY_ERROR
			      ? be_store_reply_errno(reply)
			      : -EPROTO;
	freeReplyObject(reply);
	return ret;
}

int be_store_reindex(struct be_conn *c, const struct be_store_config *sc,
		     const char *const *names, size_t n, long long *added)
{
	struct script *sp = script_get(SCRIPT_REINDEX);
	char *keys[BE_REINDEX_MAX + 1];
	const char *argv[BE_REINDEX_MAX + 4];
	size_t lens[BE_REINDEX_MAX + 4];
	char nkeys[24];
	redisReply *reply = NULL;
	size_t i, k = 1;
	int ret = -ENOMEM, argc;

	if (n > BE_REINDEX_MAX)
		return -EINVAL;
	*added = 0;
	ret = index_keys(sc, names, n, true, keys, &k);
	if (ret < 0 || k == 1)
		goto out_free;
	snprintf(nkeys, sizeof(nkeys), "%zu", k);
	argv[0] = "EVALSHA";
	argv[1] = sp->sha;
	argv[2] = nkeys;
	for (i = 0; i < k; i++)
		argv[3 + i] = keys[i];
	argc = (int)k + 3;
	for (i = 0; i < (size_t)argc; i++)
		lens[i] = strlen(argv[i]);
	ret = be_conn_command(c, &reply, argc, argv, lens, 0);
	if (!ret && reply_is_error(reply, "NOSCRIPT")) {
		freeReplyObject(reply);
		reply = NULL;
		argv[0] = "EVAL";
		lens[0] = strlen(argv[0]);
		argv[1] = sp->body;
		lens[1] = strlen(sp->body);
		ret = be_conn_command(c, &reply, argc, argv, lens, 0);
	}
	if (ret == 0)
		ret = integer_reply(reply, added, sp->what);
out_free:
	free_keys(keys, k);
	return ret;
}

int be_store_unindex(struct be_conn *c, const struct be_store_config *sc,
		     const char *const *names, size_t n, long long *removed)
{
	char *keys[BE_REINDEX_MAX + 1];
	const char *argv[BE_REINDEX_MAX + 2];
	size_t lens[BE_REINDEX_MAX + 2];
	redisReply *reply;
	size_t i, k = 1;
	int ret = -ENOMEM;

	if (n > BE_REINDEX_MAX)
		return -EINVAL;
	*removed = 0;
	ret = index_keys(sc, names, n, false, keys, &k);
	if (ret < 0 || k == 1)
		goto out_free;
	argv[0] = "ZREM";
	for (i = 0; i < k; i++)
		argv[1 + i] = keys[i];
	for (i = 0; i < k + 1; i++)
		lens[i] = strlen(argv[i]);
	ret = be_conn_command(c, &reply, (int)k + 1, argv, lens, 0);
	if (ret == 0)
		ret = integer_reply(reply, removed, "ZREM");
out_free:
	free_keys(keys, k);
	return ret;
}

int be_store_setmeta(struct be_conn *c, const struct be_store_config *sc,
		     const char *name, const struct be_meta *meta,
		     uint64_t *wver)
{
	int64_t now_ms = ns_to_ms(be_real_ns());
	bool header = !sc->ttl.ignore_cachelib && be_name_is_cachelib(name);
	struct script_args a;
	redisReply *reply;
	char *vkey, *mkey;
	int64_t vttl;
	int ret;

	if (!host_id_ok(sc))
		return -EINVAL;
	ret = keys_new(sc, name, &vkey, &mkey);
	if (ret)
		return ret;
	/* Without data, the policy gives the sliding TTL. */
	vttl = clamp_ttl(be_ttl_remaining_ms(&sc->ttl, name, NULL, 0,
					     ns_to_ms(meta->mtime_ns), now_ms));
	if (args_init(&a, SCRIPT_SETMETA, vkey, mkey, sc, name)) {
		ret = -ENOMEM;
		goto out_free_keys;
	}
	args_host(&a, sc);
	arg_i64(&a, meta->mtime_ns);
	arg_i64(&a, meta->ctime_ns);
	arg_i64(&a, meta->uid);
	arg_i64(&a, meta->gid);
	arg_i64(&a, meta->mode & 07777);
	arg_i64(&a, vttl);
	arg_i64(&a, ttl_ms(sc));
	arg_str(&a, header ? "1" : "0");
	arg_index(&a);
	ret = script_run(c, &a, &reply);
	if (ret)
		goto out_free_keys;
	ret = reply_put(sc, reply, wver, NULL);
	freeReplyObject(reply);
out_free_keys:
	args_release(&a);
	free(vkey);
	free(mkey);
	return ret;
}

int be_store_load_scripts(struct be_conn *c)
{
	const char *argv[3] = { "SCRIPT", "LOAD" };
	size_t lens[3] = { 6, 4 };
	struct script *s;
	unsigned int m, nm;
	redisReply *r;
	int i, ret;

	/* On a cluster each master has its own script cache. */
	ret = be_conn_masters(c, &nm);
	if (ret)
		return ret;
	for (i = 0; i < SCRIPT_COUNT * (int)nm; i++) {
		s = script_get(i % SCRIPT_COUNT);
		m = (unsigned int)(i / SCRIPT_COUNT);
		argv[2] = s->body;
		lens[2] = strlen(s->body);
		ret = be_conn_command_at(c, m, &r, 3, argv, lens, 0);
		if (ret)
			return ret;
		if (be_acl_is_denial(r))
			ret = be_acl_denied("SCRIPT LOAD", r);
		else if (r->type == REDIS_REPLY_ERROR)
			ret = be_store_reply_errno(r);
		else if (r->type != REDIS_REPLY_STRING ||
			 strcmp(r->str, s->sha) != 0)
			ret = -EPROTO;
		freeReplyObject(r);
		if (ret)
			return ret;
	}
	return 0;
}

/* One put script call of a pipeline: its arguments and the keys they borrow. */
struct be_put_call {
	struct script_args a;
	char *vkey;
	char *mkey;
};

struct be_put_call *be_store_put_call_new(const struct be_store_config *sc,
					  const struct be_put_item *it,
					  int *err)
{
	struct be_put_call *pc;

	if (!host_id_ok(sc)) {
		*err = -EINVAL;
		return NULL;
	}
	pc = calloc(1, sizeof(*pc));
	if (!pc) {
		*err = -ENOMEM;
		return NULL;
	}
	*err = keys_new(sc, it->name, &pc->vkey, &pc->mkey);
	if (!*err)
		*err = put_args(&pc->a, sc, it->name, pc->vkey, pc->mkey,
				it->data, it->len, &it->meta, it->mode);
	if (*err) {
		be_store_put_call_free(pc);
		return NULL;
	}
	return pc;
}

void be_store_put_call_cmd(struct be_put_call *pc, struct be_cmd *cmd)
{
	cmd->argc = pc->a.argc;
	cmd->argv = pc->a.argv;
	cmd->argvlen = pc->a.lens;
}

int be_store_put_call_result(struct be_conn *c,
			     const struct be_store_config *sc,
			     const struct be_put_item *it, const redisReply *r)
{
	/* The script cache was flushed since be_store_load_scripts(). */
	if (reply_is_error(r, "NOSCRIPT"))
		return be_store_put(c, sc, it->name, it->data, it->len,
				    &it->meta, it->mode, NULL, NULL);
	if (be_acl_is_denial(r))
		return be_acl_denied(script_get(SCRIPT_PUT)->what, r);
	if (r->type == REDIS_REPLY_ERROR)
		return be_store_reply_errno(r);
	return reply_put(sc, r, NULL, NULL);
}

void be_store_put_call_free(struct be_put_call *pc)
{
	if (!pc)
		return;
	args_release(&pc->a);
	free(pc->vkey);
	free(pc->mkey);
	free(pc);
}
