/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sessfs-migrate backup URL FILE: writes every session of a prefix, as
 * layout v1 stores it (the value's exact bytes, its meta hash field by
 * field, a tombstone's meta hash, the expiry time of each key), into a
 * backup file (backend/bkfile.h, format 1) that restore.c reads back.
 *
 * Streaming, in bounded memory: SCAN walks the prefix; the names of each
 * SCAN batch are read in pipelined chunks of MIG_BATCH_FILES, one
 * MULTI/EXEC per name (PTTL and GET of the value key, HGETALL and PTTL of
 * the meta key: value and meta of one name are one snapshot; a name found
 * by its meta key is probed with EXISTS of its value key first, as the
 * value key's own turn writes it), and every record is written as soon as
 * it is read.  Nothing is kept per name, so
 * memory does not grow with the number of sessions; SCAN may return a key
 * twice (while Redis resizes its table), and such a session is then
 * written twice (restore counts the second as "Redis holds the same").
 * While writers run, each record is consistent, the file as a whole is
 * not a snapshot of one instant (as with copy and export).
 *
 * The file is written as a temp file next to FILE (mode 0600: it holds
 * every session), fsync'd, and renamed onto FILE, which must not exist
 * unless --force; then the directory is fsync'd.  A backup that fails
 * leaves no FILE and no temp.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "acl.h"
#include "bkfile.h"
#include "conn.h"
#include "migrate_i.h"

#define SCAN_COUNT	"1000"
#define CMDS_PER_NAME	6 /* MULTI PTTL GET HGETALL PTTL EXEC */
#define WRITE_BUF_SIZE	(1024 * 1024)
#define HEADER_BUF_SIZE (64 + BE_BK_PREFIX_MAX)

struct backup_counts {
	long values;
	long tombstones;
	long vanished; /* listed, gone when read */
	long skipped; /* under the prefix, but not a string: no session */
	long long bytes; /* of the file */
};

/* How a name of a chunk is read next. */
enum read_how {
	READ_NONE = 0, /* done */
	READ_PROBE, /* EXISTS of the value key */
	READ_FULL, /* MULTI, PTTL, GET, HGETALL, PTTL, EXEC */
};

/* One name of a chunk: its keys (owned) and where SCAN saw it. */
struct backup_name {
	char *name;
	char *vkey;
	char *mkey;
	bool from_meta;
	enum read_how how;
};

struct backup {
	struct mig_options opt;
	const char *url;
	const char *path; /* FILE */
	char *tmp_path; /* owned; NULL once renamed or removed */
	bool force;
	bool json;
	struct be_conn *conn;
	FILE *out;
	struct be_bk_sum *sum; /* of the record items */
	unsigned char header[HEADER_BUF_SIZE];
	size_t header_len;
	unsigned char *rec; /* a record's encoding, grown as needed */
	size_t rec_cap;
	struct backup_counts n;
	uint64_t record_bytes;
	struct backup_name names[MIG_BATCH_FILES];
	size_t nnames;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: " MIG_PROGNAME " backup [options] URL FILE\n"
		"\n"
		"Writes every session under the prefix in Redis at URL into FILE: each\n"
		"value's exact bytes, its meta key (mtime, ctime, owner, mode, version,\n"
		"writer) field by field, each tombstone (a deleted session's meta key),\n"
		"and when each key expires.  Each record has a CRC-32C, the file a\n"
		"SHA-256 digest; '" MIG_PROGNAME
		" restore' checks both before it writes\n"
		"anything.  Streams: memory does not grow with the number of sessions.\n"
		"FILE is written as a temp file (mode 0600), fsync'd and renamed into\n"
		"place; an existing FILE is refused unless --force.  Redis is only read.\n"
		"\n"
		"  --force                replace FILE if it exists\n"
		"  --json                 print the summary as JSON\n"
		"  -h, --help             this text\n"
		"\n" MIG_KEY_OPTIONS_HELP "\n"
		"Exit status: 0 written, 1 Redis or file errors (no FILE written), 2\n"
		"usage or FILE exists.\n");
}

static void names_release(struct backup *bk)
{
	size_t i;

	for (i = 0; i < bk->nnames; i++) {
		free(bk->names[i].name);
		free(bk->names[i].vkey);
		free(bk->names[i].mkey);
	}
	bk->nnames = 0;
}

static int write_bytes(struct backup *bk, const void *buf, size_t len)
{
	if (fwrite(buf, 1, len, bk->out) != len)
		return error("cannot write '%s': %s", bk->tmp_path,
			     strerror(errno));
	bk->n.bytes += (long long)len;
	return 0;
}

/* Grows the record buffer to 'len' bytes. */
static int rec_reserve(struct backup *bk, size_t len)
{
	unsigned char *p;

	if (len <= bk->rec_cap)
		return 0;
	p = realloc(bk->rec, len);
	if (!p)
		return error("out of memory");
	bk->rec = p;
	bk->rec_cap = len;
	return 0;
}

/* An expiry time from a PTTL read at 't0': 0 for none. */
static int64_t expiry_of(long long pttl, int64_t t0)
{
	return pttl >= 0 ? t0 + pttl : 0;
}

/*
 * Writes the record of 'nm' from the EXEC reply 'x' ({PTTL K, GET K,
 * HGETALL M, PTTL M}) read at 't0'.  0 (written or nothing to write) or
 * -1.
 */
static int write_record(struct backup *bk, const struct backup_name *nm,
			const redisReply *x, int64_t t0)
{
	const redisReply *vp = x->element[0], *v = x->element[1];
	const redisReply *h = x->element[2], *mp = x->element[3];
	struct be_bk_record r = { 0 };
	char q[MIG_QUOTE_MAX];
	size_t i, len;

	if (vp->type != REDIS_REPLY_INTEGER ||
	    mp->type != REDIS_REPLY_INTEGER || h->type != REDIS_REPLY_ARRAY ||
	    h->elements % 2)
		return error("cannot read '%s' from Redis: unexpected reply",
			     mig_quote(nm->name, q, sizeof(q)));
	if (vp->integer == -2 && h->elements == 0) {
		bk->n.vanished++;
		return 0;
	}
	/* The value key's own turn writes it: once, with its meta. */
	if (vp->integer != -2 && nm->from_meta)
		return 0;
	if (h->elements / 2 > BE_BK_META_MAX)
		return error(
			"cannot back up '%s': its meta key has %zu fields, more than %d",
			mig_quote(nm->name, q, sizeof(q)), h->elements / 2,
			BE_BK_META_MAX);
	r.name = nm->name;
	r.name_len = strlen(nm->name);
	r.flags = h->elements ? BE_BK_HAS_META : 0;
	r.nmeta = h->elements / 2;
	for (i = 0; i < r.nmeta; i++) {
		const redisReply *f = h->element[2 * i];
		const redisReply *fv = h->element[2 * i + 1];

		if (f->type != REDIS_REPLY_STRING ||
		    fv->type != REDIS_REPLY_STRING)
			return error(
				"cannot read '%s' from Redis: unexpected reply",
				mig_quote(nm->name, q, sizeof(q)));
		r.meta[i] = (struct be_bk_pair){ f->str, (size_t)f->len,
						 fv->str, (size_t)fv->len };
	}
	r.meta_expire_ms = h->elements ? expiry_of(mp->integer, t0) : 0;
	if (vp->integer == -2) {
		r.type = BE_BK_TOMBSTONE;
	} else {
		/* Another app's key under the prefix: no session. */
		if (v->type == REDIS_REPLY_ERROR) {
			warning("skipping '%s': its value key is no string (%s)",
				mig_quote(nm->name, q, sizeof(q)), v->str);
			bk->n.skipped++;
			return 0;
		}
		if (v->type != REDIS_REPLY_STRING)
			return error(
				"cannot read '%s' from Redis: unexpected reply",
				mig_quote(nm->name, q, sizeof(q)));
		r.type = BE_BK_VALUE;
		r.value = v->str;
		r.value_len = (size_t)v->len;
		r.value_expire_ms = expiry_of(vp->integer, t0);
	}
	len = be_bk_record_size(&r);
	if (!len)
		return error(
			"cannot back up '%s': a field of its meta key is over %d bytes or its value over %d",
			mig_quote(nm->name, q, sizeof(q)), BE_BK_FIELD_MAX,
			BE_BK_VALUE_MAX);
	if (rec_reserve(bk, len))
		return -1;
	be_bk_record_encode(&r, bk->rec);
	be_bk_sum_update(bk->sum, bk->rec, len);
	bk->record_bytes += len;
	if (r.type == BE_BK_VALUE)
		bk->n.values++;
	else
		bk->n.tombstones++;
	return write_bytes(bk, bk->rec, len);
}

/* Checks the MULTI/QUEUED replies of name 'i' of a chunk. */
static int check_queued(struct backup *bk, redisReply **r, size_t i)
{
	static const char *const what[CMDS_PER_NAME] = { "MULTI", "PTTL",
							 "GET",	  "HGETALL",
							 "PTTL",  "EXEC" };
	char q[MIG_QUOTE_MAX];
	size_t k;

	for (k = 0; k < CMDS_PER_NAME; k++) {
		if (be_acl_is_denial(r[k])) {
			be_acl_denied(what[k], r[k]);
			return error(
				"cannot read '%s' from Redis: the redis user may not run %s",
				mig_quote(bk->names[i].name, q, sizeof(q)),
				what[k]);
		}
		if (r[k]->type == REDIS_REPLY_ERROR)
			return error("cannot read '%s' from Redis: %s",
				     mig_quote(bk->names[i].name, q, sizeof(q)),
				     r[k]->str);
	}
	if (r[5]->type != REDIS_REPLY_ARRAY || r[5]->elements != 4)
		return error("cannot read '%s' from Redis: unexpected reply",
			     mig_quote(bk->names[i].name, q, sizeof(q)));
	return 0;
}

/*
 * Builds the commands of the names still to read into 'cmds' ('argv' and
 * 'lens' hold their words): MULTI, PTTL and GET of the value key, HGETALL
 * and PTTL of the meta key, EXEC for READ_FULL; EXISTS of the value key
 * for READ_PROBE.  Returns the number of commands.
 */
static size_t build_reads(struct backup *bk, struct be_cmd *cmds,
			  const char *(*argv)[4][2], size_t (*lens)[4][2])
{
	static const char *multi[1] = { "MULTI" }, *exec[1] = { "EXEC" };
	static const size_t multi_len[1] = { 5 }, exec_len[1] = { 4 };
	static const char *const words[4] = { "PTTL", "GET", "HGETALL",
					      "PTTL" };
	struct backup_name *nm;
	size_t i, k, n = 0;

	for (i = 0; i < bk->nnames; i++) {
		nm = &bk->names[i];
		if (nm->how == READ_PROBE) {
			argv[i][0][0] = "EXISTS";
			argv[i][0][1] = nm->vkey;
			lens[i][0][0] = 6;
			lens[i][0][1] = strlen(nm->vkey);
			cmds[n++] =
				(struct be_cmd){ 2, argv[i][0], lens[i][0] };
			continue;
		}
		if (nm->how != READ_FULL)
			continue;
		cmds[n++] = (struct be_cmd){ 1, multi, multi_len };
		for (k = 0; k < 4; k++) {
			argv[i][k][0] = words[k];
			argv[i][k][1] = k < 2 ? nm->vkey : nm->mkey;
			lens[i][k][0] = strlen(words[k]);
			lens[i][k][1] = strlen(argv[i][k][1]);
			cmds[n++] =
				(struct be_cmd){ 2, argv[i][k], lens[i][k] };
		}
		cmds[n++] = (struct be_cmd){ 1, exec, exec_len };
	}
	return n;
}

/*
 * Handles the replies 'r' of one name read 'nm->how' (index 'i'):
 * writes its record, or after a probe decides whether it needs a full
 * read ('*again').  Returns the number of replies it used, or 0 after
 * printing an error.
 */
static size_t handle_reads(struct backup *bk, size_t i, redisReply **r,
			   int64_t t0, bool *again)
{
	struct backup_name *nm = &bk->names[i];
	char q[MIG_QUOTE_MAX];

	if (nm->how == READ_PROBE) {
		if (be_acl_is_denial(r[0])) {
			be_acl_denied("EXISTS", r[0]);
			error("cannot read '%s' from Redis: the redis user may not run EXISTS",
			      mig_quote(nm->name, q, sizeof(q)));
			return 0;
		}
		if (r[0]->type != REDIS_REPLY_INTEGER) {
			error("cannot read '%s' from Redis: %s",
			      mig_quote(nm->name, q, sizeof(q)),
			      r[0]->type == REDIS_REPLY_ERROR
				      ? r[0]->str
				      : "unexpected reply");
			return 0;
		}
		/* A value: its own key's turn writes it.  None: a tombstone. */
		nm->how = r[0]->integer ? READ_NONE : READ_FULL;
		*again = *again || nm->how == READ_FULL;
		return 1;
	}
	nm->how = READ_NONE;
	if (check_queued(bk, r, i) || write_record(bk, nm, r[5], t0))
		return 0;
	return CMDS_PER_NAME;
}

/*
 * One pipeline of the reads the chunk's names still need.  '*again' is
 * set when a probe found a name that needs a full read.  0 or -1.
 */
static int read_pass(struct backup *bk, bool *again)
{
	size_t i, used, k = 0, ncmds;
	const char *argv[MIG_BATCH_FILES][4][2];
	size_t lens[MIG_BATCH_FILES][4][2];
	struct be_cmd *cmds;
	redisReply **replies;
	enum read_how how;
	int64_t t0;
	int ret = 0;

	*again = false;
	cmds = calloc(bk->nnames * CMDS_PER_NAME, sizeof(*cmds));
	replies = calloc(bk->nnames * CMDS_PER_NAME, sizeof(*replies));
	if (!cmds || !replies) {
		free(cmds);
		free(replies);
		return error("out of memory");
	}
	ncmds = build_reads(bk, cmds, argv, lens);
	/* PTTL says "from now": the expiry times count from before sending. */
	t0 = mig_now_ms();
	ret = ncmds ? be_conn_pipeline(bk->conn, cmds, ncmds, replies, 0) : 0;
	if (ret) {
		error("cannot read from Redis: %s (%s)", strerror(-ret),
		      be_conn_errstr(bk->conn));
		goto out_free;
	}
	for (i = 0; i < bk->nnames && !ret; i++) {
		how = bk->names[i].how;
		if (how == READ_NONE)
			continue;
		used = handle_reads(bk, i, &replies[k], t0, again);
		if (!used)
			ret = -1;
		k += how == READ_PROBE ? 1 : CMDS_PER_NAME;
	}
	for (i = 0; i < ncmds; i++)
		freeReplyObject(replies[i]);
out_free:
	free(cmds);
	free(replies);
	return ret;
}

/*
 * Reads the names of the chunk and writes their records: a name seen by
 * its value key is read whole at once; one seen by its meta key is only
 * probed (EXISTS of the value key: the value key's own turn writes it),
 * and read whole when that finds no value (a tombstone).  So a session
 * costs one full read and one EXISTS, not two full reads.
 */
static int flush_chunk(struct backup *bk)
{
	bool again = true;
	size_t i;
	int ret = 0;

	for (i = 0; i < bk->nnames; i++)
		bk->names[i].how = bk->names[i].from_meta ? READ_PROBE
							  : READ_FULL;
	while (!ret && again && bk->nnames)
		ret = read_pass(bk, &again);
	names_release(bk);
	return ret;
}

/* Adds the key 'key' of a SCAN batch to the chunk if it is a session's. */
static int add_key(struct backup *bk, const char *key, size_t len)
{
	struct backup_name *nm;
	bool is_meta = false;
	char *name;

	name = be_key_to_name(&bk->opt.sc.ks, key, len, &is_meta);
	if (!name)
		return 0;
	nm = &bk->names[bk->nnames];
	nm->name = name;
	nm->from_meta = is_meta;
	nm->vkey = be_key_value(&bk->opt.sc.ks, name);
	nm->mkey = nm->vkey ? be_key_meta(&bk->opt.sc.ks, nm->vkey) : NULL;
	bk->nnames++;
	if (!nm->vkey || !nm->mkey)
		return error("out of memory");
	return bk->nnames == MIG_BATCH_FILES ? flush_chunk(bk) : 0;
}

/* Returns a new SCAN pattern matching every key under 'prefix'. */
static char *scan_pattern(const char *prefix)
{
	char *pat = malloc(2 * strlen(prefix) + 2);
	char *p = pat;

	if (!pat)
		return NULL;
	for (; *prefix; prefix++) {
		if (strchr("*?[]\\", *prefix))
			*p++ = '\\';
		*p++ = *prefix;
	}
	strcpy(p, "*");
	return pat;
}

/*
 * One SCAN call on master 'm' from 'cursor' (updated); its keys go into
 * chunks.
 */
static int scan_once(struct backup *bk, unsigned int m, char *cursor,
		     size_t size, const char *pattern)
{
	const char *argv[6] = { "SCAN",	 cursor,  "MATCH",
				pattern, "COUNT", SCAN_COUNT };
	const redisReply *keys;
	size_t lens[6], i;
	redisReply *r;
	int ret;

	for (i = 0; i < 6; i++)
		lens[i] = strlen(argv[i]);
	ret = be_conn_command_at(bk->conn, m, &r, 6, argv, lens, 0);
	if (ret)
		return error("cannot list the prefix '%s' in Redis: %s (%s)",
			     bk->opt.prefix, strerror(-ret),
			     be_conn_errstr(bk->conn));
	if (be_acl_is_denial(r)) {
		be_acl_denied("SCAN", r);
		ret = error(
			"cannot list the prefix '%s': the redis user may not run SCAN",
			bk->opt.prefix);
	} else if (r->type == REDIS_REPLY_ERROR) {
		ret = error("cannot list the prefix '%s': %s", bk->opt.prefix,
			    r->str);
	} else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		   r->element[0]->type != REDIS_REPLY_STRING ||
		   (size_t)r->element[0]->len >= size ||
		   r->element[1]->type != REDIS_REPLY_ARRAY) {
		ret = error(
			"cannot list the prefix '%s': unexpected SCAN reply",
			bk->opt.prefix);
	} else {
		memcpy(cursor, r->element[0]->str,
		       (size_t)r->element[0]->len + 1);
		keys = r->element[1];
		for (i = 0; i < keys->elements && !ret; i++) {
			if (keys->element[i]->type != REDIS_REPLY_STRING)
				continue;
			ret = add_key(bk, keys->element[i]->str,
				      (size_t)keys->element[i]->len);
		}
	}
	freeReplyObject(r);
	return ret;
}

/* SCANs every master (one, but on a cluster). */
static int scan_all(struct backup *bk)
{
	char cursor[32];
	char *pattern = scan_pattern(bk->opt.prefix);
	unsigned int m, nm;
	int ret = 0;

	if (!pattern)
		return error("out of memory");
	ret = be_conn_masters(bk->conn, &nm);
	if (ret) {
		free(pattern);
		return error("cannot list the prefix '%s' in Redis: %s (%s)",
			     bk->opt.prefix, strerror(-ret),
			     be_conn_errstr(bk->conn));
	}
	for (m = 0; !ret && m < nm; m++) {
		strcpy(cursor, "0");
		do {
			ret = scan_once(bk, m, cursor, sizeof(cursor), pattern);
		} while (!ret && strcmp(cursor, "0") != 0);
	}
	if (!ret)
		ret = flush_chunk(bk);
	names_release(bk);
	free(pattern);
	return ret;
}

/* Creates the temp file next to FILE and writes the magic and header. */
static int open_tmp(struct backup *bk)
{
	struct be_bk_header h = {
		.version = BE_BK_VERSION,
		.created_ms = mig_now_ms(),
		.layout = bk->opt.sc.ks.layout,
		.prefix = bk->opt.prefix,
		.prefix_len = strlen(bk->opt.prefix),
	};
	int fd;

	if (h.prefix_len > BE_BK_PREFIX_MAX)
		return error("the prefix is longer than %d bytes",
			     BE_BK_PREFIX_MAX);
	if (asprintf(&bk->tmp_path, "%s.tmp.XXXXXX", bk->path) < 0) {
		bk->tmp_path = NULL;
		return error("out of memory");
	}
	/* mkstemp: O_EXCL, mode 0600. */
	fd = mkostemp(bk->tmp_path, O_CLOEXEC);
	if (fd < 0) {
		error("cannot create '%s': %s", bk->tmp_path, strerror(errno));
		free(bk->tmp_path);
		bk->tmp_path = NULL;
		return -1;
	}
	bk->out = fdopen(fd, "w");
	if (!bk->out) {
		close(fd);
		return error("cannot write '%s': %s", bk->tmp_path,
			     strerror(errno));
	}
	setvbuf(bk->out, NULL, _IOFBF, WRITE_BUF_SIZE);
	bk->header_len =
		be_bk_header_encode(&h, bk->header, sizeof(bk->header));
	if (write_bytes(bk, BE_BK_MAGIC, BE_BK_MAGIC_LEN) ||
	    write_bytes(bk, bk->header, bk->header_len))
		return -1;
	return 0;
}

/*
 * Ends the file: the header again with the final count (same length, in
 * place), the trailer with the digest, fsync.
 */
static int finish_tmp(struct backup *bk)
{
	struct be_bk_header h;
	struct be_bk_trailer t = { 0 };
	unsigned char sha[BE_BK_DIGEST_LEN];
	unsigned char trailer[BE_BK_TRAILER_LEN];
	int fd = fileno(bk->out);

	be_bk_header_decode(bk->header, bk->header_len, &h);
	h.count = (uint64_t)(bk->n.values + bk->n.tombstones);
	be_bk_header_encode(&h, bk->header, sizeof(bk->header));
	t.count = h.count;
	t.record_bytes = bk->record_bytes;
	be_bk_sum_final(bk->sum, sha);
	be_bk_trailer_encode(&t, trailer);
	if (be_bk_file_digest(bk->header, bk->header_len, sha, trailer,
			      t.digest))
		return error("out of memory");
	be_bk_trailer_encode(&t, trailer);
	if (write_bytes(bk, trailer, sizeof(trailer)))
		return -1;
	if (fflush(bk->out) != 0 ||
	    pwrite(fd, bk->header, bk->header_len, BE_BK_MAGIC_LEN) !=
		    (ssize_t)bk->header_len ||
	    fsync(fd) != 0)
		return error("cannot write '%s': %s", bk->tmp_path,
			     strerror(errno));
	if (fclose(bk->out) != 0) {
		bk->out = NULL;
		return error("cannot write '%s': %s", bk->tmp_path,
			     strerror(errno));
	}
	bk->out = NULL;
	return 0;
}

/* fsync of the directory holding 'path', so that the rename is durable. */
static int sync_dir(const char *path)
{
	char *copy = strdup(path);
	int fd, ret = 0;

	if (!copy)
		return error("out of memory");
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0)
		ret = error("cannot sync the directory of '%s': %s", path,
			    strerror(errno));
	if (fd >= 0)
		close(fd);
	free(copy);
	return ret;
}

/* Renames the temp file onto FILE: never over one unless --force. */
static int install(struct backup *bk)
{
	int ret;

	if (bk->force)
		ret = rename(bk->tmp_path, bk->path);
	else
		ret = renameat2(AT_FDCWD, bk->tmp_path, AT_FDCWD, bk->path,
				RENAME_NOREPLACE);
	/* A file system without RENAME_NOREPLACE: link() never replaces. */
	if (ret && !bk->force && errno == EINVAL) {
		ret = link(bk->tmp_path, bk->path);
		if (!ret)
			unlink(bk->tmp_path);
	}
	if (ret)
		return error(
			errno == EEXIST
				? "'%s' exists (made meanwhile): not replaced; pass --force to replace it"
				: "cannot rename the backup onto '%s': %s",
			bk->path, strerror(errno));
	free(bk->tmp_path);
	bk->tmp_path = NULL;
	return sync_dir(bk->path);
}

static void print_summary(const struct backup *bk, double seconds)
{
	long count = bk->n.values + bk->n.tombstones;
	json_t *sum;

	if (!bk->json) {
		printf("backed up %ld sessions of prefix '%s' into '%s' in %.1f s (%.0f/s): %ld values, %ld tombstones, %lld bytes; %ld keys skipped (no session)\n",
		       count, bk->opt.prefix, bk->path, seconds,
		       seconds > 0 ? count / seconds : 0.0, bk->n.values,
		       bk->n.tombstones, bk->n.bytes, bk->n.skipped);
		return;
	}
	sum = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f}",
			"file", bk->path, "prefix", bk->opt.prefix, "records",
			(json_int_t)count, "values", (json_int_t)bk->n.values,
			"tombstones", (json_int_t)bk->n.tombstones, "vanished",
			(json_int_t)bk->n.vanished, "skipped",
			(json_int_t)bk->n.skipped, "bytes",
			(json_int_t)bk->n.bytes, "seconds", seconds, "rate",
			seconds > 0 ? count / seconds : 0.0);
	json_dumpf(sum, stdout, JSON_PRESERVE_ORDER);
	printf("\n");
	json_decref(sum);
}

static int parse_args(struct backup *bk, int argc, char **argv)
{
	enum {
		OPT_FORCE = MIG_OPT_FIRST_FREE,
		OPT_JSON,
	};
	static const struct option longopts[] = {
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		MIG_KEY_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, MIG_SHORT_OPTIONS, longopts,
				NULL)) != -1) {
		switch (c) {
		case OPT_FORCE:
			bk->force = true;
			break;
		case OPT_JSON:
			bk->json = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case '?':
		case ':':
			return mig_bad_option(c, argv, "backup");
		default:
			if (mig_key_option(&bk->opt, c, optarg))
				return -1;
		}
	}
	if (argc - optind != 2)
		return error("backup takes URL and FILE; see '" MIG_PROGNAME
			     " backup --help'");
	bk->url = argv[optind];
	bk->path = argv[optind + 1];
	return mig_options_finish(&bk->opt);
}

int cmd_backup(int argc, char **argv)
{
	struct backup *bk = calloc(1, sizeof(*bk));
	struct stat st;
	double start;
	int ret, code = MIG_EXIT_USAGE;

	if (!bk) {
		error("out of memory");
		return MIG_EXIT_DIFF;
	}
	mig_options_init(&bk->opt);
	ret = parse_args(bk, argc, argv);
	if (ret) {
		code = ret > 0 ? MIG_EXIT_OK : MIG_EXIT_USAGE;
		goto out_release;
	}
	if (!bk->force && lstat(bk->path, &st) == 0) {
		error("'%s' exists: not replaced; pass --force to replace it",
		      bk->path);
		goto out_release;
	}
	code = MIG_EXIT_DIFF;
	/* Reading only: the eviction policy is copy's and restore's concern. */
	bk->opt.allow_evicting = true;
	bk->sum = be_bk_sum_new();
	if (!bk->sum) {
		error("out of memory");
		goto out_release;
	}
	if (mig_connect(&bk->opt, bk->url, &bk->conn))
		goto out_release;
	start = mig_monotonic();
	if (open_tmp(bk) || scan_all(bk) || finish_tmp(bk) || install(bk))
		goto out_release;
	print_summary(bk, mig_monotonic() - start);
	code = MIG_EXIT_OK;
out_release:
	if (bk->out)
		fclose(bk->out);
	if (bk->tmp_path) {
		unlink(bk->tmp_path);
		free(bk->tmp_path);
	}
	names_release(bk);
	be_conn_free(bk->conn);
	be_bk_sum_free(bk->sum);
	free(bk->rec);
	mig_options_release(&bk->opt);
	free(bk);
	return code;
}
