/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sessfs-migrate restore FILE URL: writes the sessions of a backup file
 * (backup.c, backend/bkfile.h) back into Redis.
 *
 * Two passes over FILE.  The first checks everything and writes nothing:
 * the magic, the header, every record's CRC and fields, the count, the
 * trailer, the file digest, and that nothing follows the trailer; a
 * corrupt or truncated file is refused before Redis is even connected.
 * The second reads the records again (checking each CRC again) and writes
 * them in pipelined batches of MIG_BATCH_FILES records or MIG_BATCH_BYTES
 * bytes, one restore script per record.  Memory holds one batch.
 *
 * A record whose key expired since the backup (its expiry time is past)
 * is skipped.  The others get what is left of their TTL, the meta hash as
 * it was, field by field, and the value's exact bytes; a tombstone
 * removes the value key.  Unless --replace, the script writes only where
 * Redis holds neither a value nor a meta key, or holds an older one: the
 * rule of the copy and copy-up (store.c's put script, BE_PUT_COPYUP), by
 * mtime, so a restore never undoes a newer write or a newer logout, and
 * running it again only finishes the work.  A cachelib entry's value key
 * joins the names index (store.h), as a mount's write would add it.
 *
 * FILE holds its prefix and layout.  The sessions go back under that
 * prefix; --prefix, when given, must name it (a check), and --to-prefix
 * restores them under another prefix on purpose.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/sha.h>

#include "acl.h"
#include "bkfile.h"
#include "conn.h"
#include "migrate_i.h"

#define READ_BUF_SIZE (1024 * 1024)
#define MIN_TTL_MS    1000
#define MAX_ARGS      (3 + 3 + 9 + 2 * BE_BK_META_MAX)

/*
 * KEYS: K, M, and the names index when ARGV[9] is "1".  ARGV: replace
 * ("1"/"0"), type ("V"/"T"), value bytes, value TTL ms ("0": none), meta
 * TTL ms ("0": none), the record's mtime (ns), now ms, ttl ms, indexed,
 * then the meta hash's fields and values.  Returns 0 when written, 1 when
 * refused: Redis holds a value or meta key as new or newer.  The refusal
 * is store.c's COPYUP rule, and numcmp() its exact comparison of decimal
 * strings (Lua numbers lose nanoseconds); keep the two in step.  One
 * difference: a value without meta key has only the mtime its TTL implies
 * on either side (it moves by the milliseconds between PTTL and the
 * clock), so there the record must be newer by more than a second.
 */
static const char lua_restore[] =
	"local K, M = KEYS[1], KEYS[2]\n"
	"local function numcmp(a, b)\n"
	"  local na, nb = a:sub(1, 1) == '-', b:sub(1, 1) == '-'\n"
	"  if na ~= nb then return na and -1 or 1 end\n"
	"  if na then return numcmp(b:sub(2), a:sub(2)) end\n"
	"  a = a:gsub('^0+', '')\n"
	"  b = b:gsub('^0+', '')\n"
	"  if #a ~= #b then return #a < #b and -1 or 1 end\n"
	"  for i = 1, #a, 15 do\n"
	"    local j = i + 14\n"
	"    local x, y = tonumber(a:sub(i, j)), tonumber(b:sub(i, j))\n"
	"    if x ~= y then return x < y and -1 or 1 end\n"
	"  end\n"
	"  return 0\n"
	"end\n"
	"local function isnum(s)\n"
	"  return type(s) == 'string' and s:match('^%-?%d+$') ~= nil\n"
	"end\n"
	"local mt = ARGV[6]\n"
	"if ARGV[1] ~= '1' then\n"
	"  local e = redis.call('EXISTS', K)\n"
	"  local m = redis.call('EXISTS', M)\n"
	"  local refuse = false\n"
	"  if e == 1 and m == 0 then\n"
	"    local p = redis.call('PTTL', K)\n"
	"    refuse = p < 0 or tonumber(mt) / 1e6 <=\n"
	"             tonumber(ARGV[7]) - (tonumber(ARGV[8]) - p) + 1000\n"
	"  elseif e == 1 or m == 1 then\n"
	"    local cur = redis.call('HMGET', M, 'mt')[1]\n"
	"    refuse = not isnum(cur) or numcmp(cur, mt) >= 0\n"
	"  end\n"
	"  if refuse then return 1 end\n"
	"end\n"
	"if ARGV[2] == 'V' then\n"
	"  if ARGV[4] == '0' then\n"
	"    redis.call('SET', K, ARGV[3])\n"
	"  else\n"
	"    redis.call('SET', K, ARGV[3], 'PX', ARGV[4])\n"
	"  end\n"
	"  if ARGV[9] == '1' then\n"
	"    local t = redis.call('TIME')\n"
	"    local now = tonumber(t[1]) * 1000 +\n"
	"                math.floor(tonumber(t[2]) / 1000)\n"
	"    local score = '+inf'\n"
	"    if ARGV[4] ~= '0' then\n"
	"      score = string.format('%.0f', now + tonumber(ARGV[4]))\n"
	"    end\n"
	"    redis.call('ZADD', KEYS[3], score, K)\n"
	"  end\n"
	"else\n"
	"  redis.call('DEL', K)\n"
	"  if ARGV[9] == '1' then redis.call('ZREM', KEYS[3], K) end\n"
	"end\n"
	"redis.call('DEL', M)\n"
	"if #ARGV > 9 then\n"
	"  redis.call('HSET', M, unpack(ARGV, 10))\n"
	"  if ARGV[5] ~= '0' then redis.call('PEXPIRE', M, ARGV[5]) end\n"
	"end\n"
	"return 0\n";

#define RESTORE_SCRIPT_WHAT \
	"the restore script (EVALSHA or EVAL, running EXISTS PTTL HMGET SET TIME ZADD DEL ZREM HSET PEXPIRE)"

struct restore_counts {
	long records;
	long values; /* restored */
	long tombstones; /* restored */
	long expired; /* skipped: expired since the backup */
	long newer; /* skipped: Redis holds the same or newer */
	long errors;
};

/* One record of a batch: its item (owned), decoded, and its arguments. */
struct restore_item {
	unsigned char *buf;
	struct be_bk_record r;
	char name[BE_NAME_MAX + 1];
	char *vkey, *mkey, *ikey;
	const char *argv[MAX_ARGS];
	size_t lens[MAX_ARGS];
	int argc;
	char nums[5][24]; /* value TTL, meta TTL, mtime, now, ttl */
};

struct restore {
	struct mig_options opt;
	const char *path;
	const char *url;
	const char *want_prefix; /* --prefix, borrowed */
	const char *to_prefix; /* --to-prefix, borrowed */
	bool layout_given;
	bool replace;
	bool json;
	int fd;
	/* A buffered reader over 'fd'. */
	unsigned char *rbuf;
	size_t rpos, rlen;
	uint64_t offset; /* of the next byte in the file */
	bool eof;
	/* What the first pass found. */
	struct be_bk_header header;
	unsigned char header_item[64 + BE_BK_PREFIX_MAX];
	size_t header_item_len;
	char file_prefix[BE_BK_PREFIX_MAX + 1];
	long file_values, file_tombstones;
	struct be_conn *conn;
	char sha[SHA_DIGEST_LENGTH * 2 + 1];
	struct restore_item items[MIG_BATCH_FILES];
	size_t nitems;
	size_t batch_bytes;
	struct restore_counts n;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: " MIG_PROGNAME " restore [options] FILE URL\n"
		"\n"
		"Writes the sessions of the backup FILE (made by '" MIG_PROGNAME
		" backup') into\n"
		"Redis at URL.  The whole file is checked first (every record's CRC, the\n"
		"count, the trailer, the file's SHA-256): a corrupt or truncated file is\n"
		"refused before anything is written.  Sessions expired since the backup\n"
		"are skipped; the others get what is left of their TTL, their meta key\n"
		"and exact bytes back; tombstones (deleted sessions) too.  A session\n"
		"Redis holds as new or newer (by mtime, as copy decides) is never\n"
		"overwritten unless --replace.  The sessions go back under the prefix\n"
		"and layout FILE holds.\n"
		"\n"
		"  --prefix PREFIX        the prefix FILE must hold (a check; default:\n"
		"                         whatever it holds)\n"
		"  --to-prefix PREFIX     restore under this prefix instead of FILE's\n"
		"  --replace              overwrite what Redis holds, newer or not\n"
		"  --json                 print the summary as JSON\n"
		"  -h, --help             this text\n"
		"\n" MIG_KEY_OPTIONS_HELP "\n"
		"--ttl is used only for a value without meta key (phpredis's own\n"
		"handler), to date the one Redis holds.\n"
		"\n"
		"Exit status: 0 restored (what was skipped is counted), 1 Redis errors,\n"
		"2 usage, or FILE refused (corrupt, truncated, another prefix).\n");
}

/* ---- reading FILE ---- */

/*
 * Reads exactly 'len' bytes into 'dst'.  1 when read, 0 at a clean end of
 * file before the first byte, -1 with errno (EIO for a short read: the
 * file ends inside an item).
 */
static int read_exact(struct restore *rs, void *dst, size_t len)
{
	unsigned char *d = dst;
	size_t got = 0, k;
	ssize_t r;

	while (got < len) {
		if (rs->rpos == rs->rlen) {
			r = read(rs->fd, rs->rbuf, READ_BUF_SIZE);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				return -1;
			}
			if (r == 0) {
				rs->eof = true;
				if (got == 0)
					return 0;
				errno = EIO;
				return -1;
			}
			rs->rpos = 0;
			rs->rlen = (size_t)r;
		}
		k = rs->rlen - rs->rpos;
		if (k > len - got)
			k = len - got;
		memcpy(d + got, rs->rbuf + rs->rpos, k);
		rs->rpos += k;
		got += k;
	}
	rs->offset += len;
	return 1;
}

static int rewind_file(struct restore *rs)
{
	if (lseek(rs->fd, 0, SEEK_SET) != 0)
		return error("cannot read '%s': %s", rs->path, strerror(errno));
	rs->rpos = rs->rlen = 0;
	rs->offset = 0;
	rs->eof = false;
	return 0;
}

/* Prints why FILE is refused, with the offset; returns -1. */
static int refuse(struct restore *rs, uint64_t at, const char *why)
{
	return error("refusing '%s': %s (at byte %" PRIu64
		     "); nothing was restored",
		     rs->path, why, at);
}

/*
 * Reads the next item into a new buffer '*item' of '*len' bytes.  1 when
 * read, 0 at the end of the file, -1 when refused (printed).
 */
static int read_item(struct restore *rs, unsigned char **item, size_t *len)
{
	unsigned char head[BE_BK_ITEM_HEAD_LEN];
	uint64_t at = rs->offset;
	int ret;

	*item = NULL;
	ret = read_exact(rs, head, sizeof(head));
	if (ret == 0)
		return 0;
	if (ret < 0)
		return refuse(rs, at,
			      errno == EIO ? "truncated" : strerror(errno));
	if (be_bk_item_len(head, len))
		return refuse(rs, at, "corrupt (an impossible item length)");
	*item = malloc(*len);
	if (!*item)
		return error("out of memory");
	memcpy(*item, head, sizeof(head));
	ret = read_exact(rs, *item + sizeof(head), *len - sizeof(head));
	if (ret <= 0) {
		free(*item);
		*item = NULL;
		return refuse(rs, at,
			      ret == 0 || errno == EIO ? "truncated"
						       : strerror(errno));
	}
	if (be_bk_item_check(*item, *len) < 0) {
		free(*item);
		*item = NULL;
		return refuse(rs, at, "corrupt (checksum mismatch)");
	}
	return 1;
}

/* Reads and checks the magic and the header; keeps the header item. */
static int read_header(struct restore *rs)
{
	char magic[BE_BK_MAGIC_LEN];
	unsigned char *item;
	size_t len;
	int ret;

	ret = read_exact(rs, magic, sizeof(magic));
	if (ret <= 0 || memcmp(magic, BE_BK_MAGIC, BE_BK_MAGIC_LEN) != 0)
		return refuse(rs, 0, "not a sessfs backup file");
	ret = read_item(rs, &item, &len);
	if (ret == 0)
		return refuse(rs, rs->offset, "truncated");
	if (ret < 0)
		return -1;
	ret = len <= sizeof(rs->header_item)
		      ? be_bk_header_decode(item, len, &rs->header)
		      : -EINVAL;
	if (ret == -ENOTSUP) {
		free(item);
		return refuse(rs, BE_BK_MAGIC_LEN,
			      "a backup format this version cannot read");
	}
	if (ret) {
		free(item);
		return refuse(rs, BE_BK_MAGIC_LEN, "corrupt (bad header)");
	}
	memcpy(rs->header_item, item, len);
	rs->header_item_len = len;
	memcpy(rs->file_prefix, rs->header.prefix, rs->header.prefix_len);
	rs->file_prefix[rs->header.prefix_len] = '\0';
	rs->header.prefix = rs->file_prefix;
	free(item);
	if (strlen(rs->file_prefix) != rs->header.prefix_len ||
	    be_prefix_check(rs->file_prefix))
		return refuse(rs, BE_BK_MAGIC_LEN,
			      "corrupt (an impossible prefix)");
	return 0;
}

/*
 * Checks that the record 'r' names a session of the file's layout; fills
 * 'name'.
 */
static bool record_name_ok(const struct restore *rs,
			   const struct be_bk_record *r, char *name)
{
	struct be_keyspace ks = { rs->file_prefix, rs->header.layout };

	memcpy(name, r->name, r->name_len);
	name[r->name_len] = '\0';
	return strlen(name) == r->name_len &&
	       be_name_classify(&ks, name) == BE_NAME_SESSION;
}

/*
 * The first pass: every item of FILE checked, nothing written.  0, or -1
 * with the reason printed.
 */
static int verify_file(struct restore *rs)
{
	unsigned char sha[BE_BK_DIGEST_LEN], digest[BE_BK_DIGEST_LEN];
	char name[BE_NAME_MAX + 1];
	struct be_bk_sum *sum = be_bk_sum_new();
	struct be_bk_trailer t;
	struct be_bk_record r;
	uint64_t count = 0, bytes = 0, at;
	unsigned char *item = NULL;
	size_t len;
	int ret = -1, kind;

	if (!sum)
		return error("out of memory");
	if (read_header(rs))
		goto out;
	for (;;) {
		at = rs->offset;
		ret = read_item(rs, &item, &len);
		if (ret == 0) {
			ret = refuse(rs, at, "truncated (no trailer)");
			goto out;
		}
		if (ret < 0)
			goto out;
		ret = -1;
		kind = item[BE_BK_ITEM_HEAD_LEN];
		if (kind == BE_BK_TRAILER)
			break;
		if (kind != BE_BK_RECORD ||
		    be_bk_record_decode(item, len, &r)) {
			refuse(rs, at, "corrupt (bad record)");
			goto out;
		}
		if (!record_name_ok(rs, &r, name)) {
			refuse(rs, at, "corrupt (a record names no session)");
			goto out;
		}
		if (r.type == BE_BK_VALUE)
			rs->file_values++;
		else
			rs->file_tombstones++;
		be_bk_sum_update(sum, item, len);
		bytes += len;
		count++;
		free(item);
		item = NULL;
	}
	if (be_bk_trailer_decode(item, len, &t)) {
		refuse(rs, at, "corrupt (bad trailer)");
		goto out;
	}
	if (t.count != count || rs->header.count != count ||
	    t.record_bytes != bytes) {
		refuse(rs, at, "corrupt (the record count does not match)");
		goto out;
	}
	be_bk_sum_final(sum, sha);
	if (be_bk_file_digest(rs->header_item, rs->header_item_len, sha, item,
			      digest)) {
		error("out of memory");
		goto out;
	}
	if (memcmp(digest, t.digest, sizeof(digest)) != 0) {
		refuse(rs, at, "corrupt (file digest mismatch)");
		goto out;
	}
	if (read_exact(rs, sha, 1) != 0) {
		refuse(rs, rs->offset - 1, "corrupt (data after the trailer)");
		goto out;
	}
	ret = 0;
out:
	free(item);
	be_bk_sum_free(sum);
	return ret;
}

/* ---- writing into Redis ---- */

static void item_release(struct restore_item *it)
{
	free(it->buf);
	free(it->vkey);
	free(it->mkey);
	free(it->ikey);
	memset(it, 0, sizeof(*it));
}

static void batch_release(struct restore *rs)
{
	size_t i;

	for (i = 0; i < rs->nitems; i++)
		item_release(&rs->items[i]);
	rs->nitems = 0;
	rs->batch_bytes = 0;
}

static bool is_decimal(const char *s, size_t len)
{
	size_t i = len && s[0] == '-';

	if (i == len || len > 20)
		return false;
	for (; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/*
 * Writes the record's mtime (ns) into 'buf' for the newer rule: the meta
 * key's "mt", or for a value without one the mtime its TTL implies (as
 * the store dates such a value: expiry - ttl).
 */
static void record_mtime(const struct restore *rs, const struct be_bk_record *r,
			 int64_t now_ms, char *buf, size_t size)
{
	int64_t ms;
	size_t i;

	for (i = 0; i < r->nmeta; i++) {
		if (r->meta[i].field_len == 2 &&
		    memcmp(r->meta[i].field, "mt", 2) == 0 &&
		    is_decimal(r->meta[i].value, r->meta[i].value_len)) {
			snprintf(buf, size, "%.*s", (int)r->meta[i].value_len,
				 r->meta[i].value);
			return;
		}
	}
	ms = r->value_expire_ms
		     ? r->value_expire_ms - rs->opt.sc.ttl.ttl_s * 1000
		     : now_ms;
	snprintf(buf, size, "%" PRId64, ms * 1000000);
}

static void arg(struct restore_item *it, const void *p, size_t len)
{
	it->argv[it->argc] = p ? p : "";
	it->lens[it->argc] = len;
	it->argc++;
}

static void arg_str(struct restore_item *it, const char *s)
{
	arg(it, s, strlen(s));
}

/*
 * Builds the script call of the item 'it' (its record decoded) at
 * 'now_ms'.  0, or -ENOMEM.
 */
static int item_args(struct restore *rs, struct restore_item *it,
		     int64_t now_ms)
{
	const struct be_bk_record *r = &it->r;
	/* A cluster keeps no names index (store.h). */
	bool indexed = !rs->opt.sc.cluster &&
		       be_store_is_indexed(&rs->opt.sc, it->name);
	int64_t vttl = 0, mttl = 0;
	size_t i;

	it->vkey = be_key_value(&rs->opt.sc.ks, it->name);
	it->mkey = it->vkey ? be_key_meta(&rs->opt.sc.ks, it->vkey) : NULL;
	it->ikey = indexed ? be_store_index_key(&rs->opt.sc) : NULL;
	if (!it->vkey || !it->mkey || (indexed && !it->ikey))
		return -ENOMEM;
	if (r->value_expire_ms)
		vttl = r->value_expire_ms - now_ms;
	if (r->meta_expire_ms) {
		mttl = r->meta_expire_ms - now_ms;
		/* Layout v1 never has a meta key die before its value. */
		if (mttl < vttl)
			mttl = vttl;
		if (mttl < MIN_TTL_MS)
			mttl = MIN_TTL_MS;
	}
	snprintf(it->nums[0], sizeof(it->nums[0]), "%" PRId64, vttl);
	snprintf(it->nums[1], sizeof(it->nums[1]), "%" PRId64, mttl);
	record_mtime(rs, r, now_ms, it->nums[2], sizeof(it->nums[2]));
	snprintf(it->nums[3], sizeof(it->nums[3]), "%" PRId64, now_ms);
	snprintf(it->nums[4], sizeof(it->nums[4]), "%" PRId64,
		 (int64_t)rs->opt.sc.ttl.ttl_s * 1000);
	it->argc = 0;
	arg_str(it, "EVALSHA");
	arg_str(it, rs->sha);
	arg_str(it, indexed ? "3" : "2");
	arg_str(it, it->vkey);
	arg_str(it, it->mkey);
	if (indexed)
		arg_str(it, it->ikey);
	arg_str(it, rs->replace ? "1" : "0");
	arg_str(it, r->type == BE_BK_VALUE ? "V" : "T");
	arg(it, r->value, r->value_len);
	arg_str(it, it->nums[0]);
	arg_str(it, it->nums[1]);
	arg_str(it, it->nums[2]);
	arg_str(it, it->nums[3]);
	arg_str(it, it->nums[4]);
	arg_str(it, indexed ? "1" : "0");
	for (i = 0; i < r->nmeta; i++) {
		arg(it, r->meta[i].field, r->meta[i].field_len);
		arg(it, r->meta[i].value, r->meta[i].value_len);
	}
	return 0;
}

/* Runs the item alone with EVAL: the server's script cache was flushed. */
static int item_eval(struct restore *rs, struct restore_item *it,
		     redisReply **reply)
{
	it->argv[0] = "EVAL";
	it->lens[0] = 4;
	it->argv[1] = lua_restore;
	it->lens[1] = strlen(lua_restore);
	return be_conn_command(rs->conn, reply, it->argc, it->argv, it->lens,
			       0);
}

/*
 * Counts the reply 'r' of item 'it'.  -1 when the restore must stop
 * (Redis full, refused by the ACL).
 */
static int count_reply(struct restore *rs, struct restore_item *it,
		       const redisReply *r)
{
	char q[MIG_QUOTE_MAX];

	if (r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
		if (it->r.type == BE_BK_VALUE)
			rs->n.values++;
		else
			rs->n.tombstones++;
		return 0;
	}
	if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
		rs->n.newer++;
		return 0;
	}
	rs->n.errors++;
	if (be_acl_is_denial(r)) {
		be_acl_denied(RESTORE_SCRIPT_WHAT, r);
		return error(
			"cannot restore '%s': refused by the redis user's ACL",
			mig_quote(it->name, q, sizeof(q)));
	}
	if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "OOM", 3) == 0)
		return error("cannot restore '%s': Redis is out of memory",
			     mig_quote(it->name, q, sizeof(q)));
	error("cannot restore '%s': %s", mig_quote(it->name, q, sizeof(q)),
	      r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
	return 0;
}

/* Sends the batch as one pipeline and counts the results. */
static int flush_batch(struct restore *rs)
{
	struct be_cmd cmds[MIG_BATCH_FILES];
	redisReply *replies[MIG_BATCH_FILES], *one;
	size_t i, n = rs->nitems;
	int ret = 0;

	if (!n)
		return 0;
	for (i = 0; i < n; i++)
		cmds[i] = (struct be_cmd){ rs->items[i].argc, rs->items[i].argv,
					   rs->items[i].lens };
	ret = be_conn_pipeline(rs->conn, cmds, n, replies, 0);
	if (ret) {
		rs->n.errors += (long)n;
		batch_release(rs);
		return error(
			"cannot write to Redis: %s (%s); run the restore again to finish it",
			strerror(-ret), be_conn_errstr(rs->conn));
	}
	for (i = 0; i < n; i++) {
		if (!ret && replies[i]->type == REDIS_REPLY_ERROR &&
		    strncmp(replies[i]->str, "NOSCRIPT", 8) == 0) {
			ret = item_eval(rs, &rs->items[i], &one);
			if (ret) {
				rs->n.errors++;
				ret = error(
					"cannot write to Redis: %s (%s); run the restore again to finish it",
					strerror(-ret),
					be_conn_errstr(rs->conn));
			} else {
				ret = count_reply(rs, &rs->items[i], one);
				freeReplyObject(one);
			}
		} else if (!ret) {
			ret = count_reply(rs, &rs->items[i], replies[i]);
		}
		freeReplyObject(replies[i]);
	}
	batch_release(rs);
	return ret;
}

/* Takes the record item 'buf' (stolen) into the batch or counts it. */
static int take(struct restore *rs, unsigned char *buf, size_t len, uint64_t at)
{
	struct restore_item *it = &rs->items[rs->nitems];
	int64_t now = mig_now_ms();
	int64_t expiry;

	it->buf = buf;
	if (be_bk_record_decode(buf, len, &it->r) ||
	    !record_name_ok(rs, &it->r, it->name)) {
		item_release(it);
		/* It passed the first pass: the file changed since. */
		return error(
			"refusing '%s': it changed while being restored (at byte %" PRIu64
			"); run the restore again",
			rs->path, at);
	}
	rs->n.records++;
	expiry = it->r.type == BE_BK_VALUE ? it->r.value_expire_ms
					   : it->r.meta_expire_ms;
	if (expiry && expiry <= now) {
		rs->n.expired++;
		item_release(it);
		return 0;
	}
	if (item_args(rs, it, now)) {
		item_release(it);
		return error("out of memory");
	}
	rs->nitems++;
	rs->batch_bytes += len;
	if (rs->nitems < MIG_BATCH_FILES && rs->batch_bytes < MIG_BATCH_BYTES)
		return 0;
	return flush_batch(rs);
}

/* The second pass: every record written (or skipped), batch by batch. */
static int write_records(struct restore *rs)
{
	unsigned char first[sizeof(rs->header_item)];
	size_t first_len = rs->header_item_len;
	unsigned char *item;
	uint64_t at;
	size_t len;
	int ret;

	/* The pass that checked the file saw this header: it must be the same. */
	memcpy(first, rs->header_item, first_len);
	if (rewind_file(rs) || read_header(rs))
		return -1;
	if (rs->header_item_len != first_len ||
	    memcmp(first, rs->header_item, first_len) != 0)
		return error(
			"refusing '%s': it changed while being restored; run the restore again",
			rs->path);
	for (;;) {
		at = rs->offset;
		ret = read_item(rs, &item, &len);
		if (ret <= 0) {
			batch_release(rs);
			return error(
				"refusing '%s': it changed while being restored; run the restore again",
				rs->path);
		}
		if (item[BE_BK_ITEM_HEAD_LEN] == BE_BK_TRAILER) {
			free(item);
			return flush_batch(rs);
		}
		if (take(rs, item, len, at)) {
			batch_release(rs);
			return -1;
		}
	}
}

static int load_script(struct restore *rs)
{
	const char *argv[3] = { "SCRIPT", "LOAD", lua_restore };
	size_t lens[3] = { 6, 4, strlen(lua_restore) };
	unsigned char md[SHA_DIGEST_LENGTH];
	redisReply *r;
	size_t j;
	int ret;

	SHA1((const unsigned char *)lua_restore, strlen(lua_restore), md);
	for (j = 0; j < SHA_DIGEST_LENGTH; j++)
		snprintf(rs->sha + 2 * j, 3, "%02x", md[j]);
	ret = be_conn_command(rs->conn, &r, 3, argv, lens, 0);
	if (ret)
		return error(
			"cannot load the restore script into Redis: %s (%s)",
			strerror(-ret), be_conn_errstr(rs->conn));
	if (be_acl_is_denial(r)) {
		/* EVAL may still be allowed: each call then sends the body. */
		be_acl_denied("SCRIPT LOAD", r);
	} else if (r->type != REDIS_REPLY_STRING ||
		   strcmp(r->str, rs->sha) != 0) {
		ret = error("cannot load the restore script into Redis: %s",
			    r->type == REDIS_REPLY_ERROR ? r->str
							 : "unexpected reply");
	}
	freeReplyObject(r);
	return ret;
}

/*
 * Chooses where the sessions go: FILE's prefix and layout, checked against
 * --prefix and --layout, or --to-prefix.  0, or prints why and returns -1.
 */
static int choose_keyspace(struct restore *rs)
{
	const char *target = rs->to_prefix ? rs->to_prefix : rs->file_prefix;

	if (rs->opt.prefix && strcmp(rs->opt.prefix, rs->file_prefix) != 0)
		return error(
			"'%s' holds the sessions of prefix '%s', not '%s': pass --prefix '%s', and --to-prefix '%s' to restore them under another prefix",
			rs->path, rs->file_prefix, rs->opt.prefix,
			rs->file_prefix, rs->opt.prefix);
	if (rs->layout_given && rs->opt.sc.ks.layout != rs->header.layout)
		return error(
			"'%s' holds sessions of the %s layout, not %s",
			rs->path,
			rs->header.layout == BE_LAYOUT_PHPREDIS ? "phpredis"
								: "plain",
			rs->opt.sc.ks.layout == BE_LAYOUT_PHPREDIS ? "phpredis"
								   : "plain");
	rs->opt.sc.ks.layout = rs->header.layout;
	free(rs->opt.prefix);
	rs->opt.prefix = strdup(target);
	if (!rs->opt.prefix)
		return error("out of memory");
	return mig_options_finish(&rs->opt);
}

static void print_summary(const struct restore *rs, bool complete,
			  double seconds)
{
	const struct restore_counts *n = &rs->n;
	json_t *sum;

	if (!rs->json) {
		printf("restored %ld of %ld records of '%s' under prefix '%s' in %.1f s (%.0f/s): %ld sessions, %ld tombstones; skipped %ld expired since the backup, %ld where Redis holds the same or newer; %ld errors%s\n",
		       n->values + n->tombstones, n->records, rs->path,
		       rs->opt.prefix, seconds,
		       seconds > 0 ? n->records / seconds : 0.0, n->values,
		       n->tombstones, n->expired, n->newer, n->errors,
		       complete ? "" : " (incomplete)");
		return;
	}
	sum = json_pack(
		"{s:b, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f}",
		"complete", complete, "file", rs->path, "file_prefix",
		rs->file_prefix, "prefix", rs->opt.prefix, "records",
		(json_int_t)n->records, "restored", (json_int_t)n->values,
		"tombstones", (json_int_t)n->tombstones, "skipped_expired",
		(json_int_t)n->expired, "skipped_newer", (json_int_t)n->newer,
		"errors", (json_int_t)n->errors, "seconds", seconds, "rate",
		seconds > 0 ? n->records / seconds : 0.0);
	json_dumpf(sum, stdout, JSON_PRESERVE_ORDER);
	printf("\n");
	json_decref(sum);
}

static int parse_args(struct restore *rs, int argc, char **argv)
{
	enum {
		OPT_TO_PREFIX = MIG_OPT_FIRST_FREE,
		OPT_REPLACE,
		OPT_JSON,
	};
	static const struct option longopts[] = {
		{ "to-prefix", required_argument, NULL, OPT_TO_PREFIX },
		{ "replace", no_argument, NULL, OPT_REPLACE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		MIG_KEY_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, MIG_SHORT_OPTIONS, longopts,
				NULL)) != -1) {
		switch (c) {
		case OPT_TO_PREFIX:
			if (be_prefix_check(optarg))
				return error(
					"invalid --to-prefix '%s': it must not hold '{', '}' or a newline",
					optarg);
			rs->to_prefix = optarg;
			break;
		case OPT_REPLACE:
			rs->replace = true;
			break;
		case OPT_JSON:
			rs->json = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case '?':
		case ':':
			return mig_bad_option(c, argv, "restore");
		case MIG_OPT_LAYOUT:
			rs->layout_given = true;
			/* fall through */
		default:
			if (mig_key_option(&rs->opt, c, optarg))
				return -1;
		}
	}
	if (argc - optind != 2)
		return error("restore takes FILE and URL; see '" MIG_PROGNAME
			     " restore --help'");
	rs->path = argv[optind];
	rs->url = argv[optind + 1];
	return 0;
}

int cmd_restore(int argc, char **argv)
{
	struct restore *rs = calloc(1, sizeof(*rs));
	double start;
	int ret, code = MIG_EXIT_USAGE;

	if (!rs) {
		error("out of memory");
		return MIG_EXIT_DIFF;
	}
	rs->fd = -1;
	mig_options_init(&rs->opt);
	ret = parse_args(rs, argc, argv);
	if (ret) {
		code = ret > 0 ? MIG_EXIT_OK : MIG_EXIT_USAGE;
		goto out_release;
	}
	rs->rbuf = malloc(READ_BUF_SIZE);
	if (!rs->rbuf) {
		error("out of memory");
		goto out_release;
	}
	rs->fd = open(rs->path, O_RDONLY | O_CLOEXEC);
	if (rs->fd < 0) {
		error("cannot open '%s': %s", rs->path, strerror(errno));
		goto out_release;
	}
	/* Before Redis is connected: a bad file writes nothing. */
	if (verify_file(rs) || choose_keyspace(rs))
		goto out_release;
	code = MIG_EXIT_DIFF;
	if (mig_connect(&rs->opt, rs->url, &rs->conn) || load_script(rs))
		goto out_release;
	start = mig_monotonic();
	ret = write_records(rs);
	print_summary(rs, !ret, mig_monotonic() - start);
	if (!ret && !rs->n.errors)
		code = MIG_EXIT_OK;
out_release:
	batch_release(rs);
	if (rs->fd >= 0)
		close(rs->fd);
	free(rs->rbuf);
	be_conn_free(rs->conn);
	mig_options_release(&rs->opt);
	free(rs);
	return code;
}
