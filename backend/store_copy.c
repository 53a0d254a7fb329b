/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The bulk put of sessfs-migrate copy, be_store_put_many().  A copy-up of
 * a name that has neither a value nor a tombstone, nearly every name of a
 * first copy, needs no script: a chunk of TX_CHUNK such names is checked
 * and written by one optimistic transaction of plain commands,
 *
 *   WATCH K1 M1 .. Kn Mn, EXISTS K1 M1 .. Kn Mn            (the check)
 *   MULTI, SET Ki, HSET Mi, PEXPIRE Mi .., EXEC             (the write)
 *
 * which costs Redis far less CPU than a put script per name (each
 * redis.call in a script costs more than the command sent plainly:
 * bench/README.md).  When EXISTS finds any key of the chunk, each name is
 * read (PTTL K, EXISTS M, HMGET M) and the put script's stale and COPYUP
 * rules (store.c, lua_put) are applied here, in C, to decide which names
 * to write; a re-run of a finished copy writes nothing and reads no value.
 *
 * WATCH makes the write conditional on the check: a key of the chunk that
 * anyone changes after the WATCH (an app's write, a delete's tombstone, an
 * expiry) makes EXEC abort, and nothing of the chunk is written.  The chunk
 * is then checked again, and after TX_TRIES aborts its names go through the
 * put script, one atomic call each.  The put script also takes what the
 * transaction does not: CREATE and REPLACE puts, names of the names index
 * (its score needs Redis's clock), a name given twice in one chunk, and
 * every put once the server refused WATCH or MULTI (an ACL; a Cluster's
 * cross-slot rule).
 *
 * The write of a transaction is never resent on another connection: a
 * WATCH holds only on the connection that sent it, so the write goes with
 * BE_CMD_NORETRY after a check that no reconnect happened since the WATCH
 * (be_conn_marks()), and a transport error starts the chunk over at its
 * check.  The write sequences are taken once per call, so that a write
 * that did reach Redis before the error is found by the stale rule
 * (success, nothing written again), as a retried script finds it.
 *
 * NEEDSWORK: a chunk costs two round trips (check, write).  The next
 * chunk's check could follow this chunk's EXEC in the write's pipeline
 * (after EXEC, so that it is watched anew), halving them: the copy's own
 * CPU, not Redis's, bounds it now on two cores (bench/README.md).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "conn.h"
#include "store.h"
#include "store_i.h"
#include "util.h"

/*
 * Names per transaction.  Redis 7.0's WATCH compares each key with every
 * key the connection already watches, so its cost grows with the square
 * of the chunk, while each chunk costs six commands more; Redis's CPU per
 * session was lowest at 32 (bench/README.md: 16, 32, 64, 128 measured).
 */
#define TX_CHUNK 32
/* Aborted transactions of one chunk before its names go by script. */
#define TX_TRIES 3
#define TX_KEYS	 (2 * TX_CHUNK)
/* Round 2's commands: MULTI, up to 4 per name, EXEC. */
#define TX_CMDS (4 * TX_CHUNK + 2)

#define MIN_TTL_MS 1000
#define NS_PER_MS  1000000LL
#define NUM_SIZE   24

/*
 * be_conn_marks() bit set once a chunk's WATCH went out; a connect clears
 * it.  store.c uses bits 31 and 30 (put_tx()) and the low bits (one per
 * script).
 */
#define MARK_WATCHING (1U << 29)

/* Set once the server refused part of the transaction: scripts only. */
static atomic_bool tx_refused;

static be_put_many_hook_fn test_hook;
static void *test_hook_arg;

void be_store_put_many_set_hook(be_put_many_hook_fn fn, void *arg)
{
	test_hook = fn;
	test_hook_arg = arg;
}

enum tx_action {
	TX_WRITE = 0,
	TX_REFUSE, /* a value or tombstone the rule keeps: -EEXIST */
	TX_DONE, /* our own write is in place (stale rule): 0 */
};

/* One name of a chunk: its keys, the arguments of its write, its fate. */
struct tx_put {
	const struct be_put_item *it;
	size_t idx; /* in the caller's items and results */
	char *vkey;
	char *mkey;
	char hs[BE_HSEQ_DIGITS + 1];
	char vttl[NUM_SIZE], mttl[NUM_SIZE], mt[NUM_SIZE], ct[NUM_SIZE];
	char uid[NUM_SIZE], gid[NUM_SIZE], mode[NUM_SIZE], wv[NUM_SIZE];
	enum tx_action action;
	bool del; /* the meta holds "del" (a tombstone): HDEL it */
	const char *set[5];
	size_t setlen[5];
	const char *hset[20];
	const char *hdel[3];
	const char *pexpire[3];
};

/* Frees what tx_put_init() made. */
static void tx_put_release(struct tx_put *t)
{
	free(t->vkey);
	free(t->mkey);
	t->vkey = t->mkey = NULL;
}

static int64_t ns_to_ms(int64_t ns)
{
	return ns / NS_PER_MS - (ns % NS_PER_MS < 0);
}

static int64_t add_sat(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return INT64_MAX;
	return r;
}

/*
 * Fills 't' for items[idx]: keys, a new write sequence and the numbers of
 * the write, with the TTLs as put_args() (store.c) computes them.  0 or
 * -ENOMEM; tx_put_release() either way.
 */
static int tx_put_init(struct tx_put *t, const struct be_store_config *sc,
		       const struct be_put_item *items, size_t idx,
		       int64_t now_ms)
{
	const struct be_put_item *it = &items[idx];
	int64_t vttl = be_ttl_remaining_ms(&sc->ttl, it->name, it->data,
					   it->len, ns_to_ms(it->meta.mtime_ns),
					   now_ms);

	memset(t, 0, sizeof(*t));
	t->it = it;
	t->idx = idx;
	t->vkey = be_key_value(&sc->ks, it->name);
	t->mkey = t->vkey ? be_key_meta(&sc->ks, t->vkey) : NULL;
	if (!t->mkey)
		return -ENOMEM;
	if (vttl < MIN_TTL_MS)
		vttl = MIN_TTL_MS;
	be_hseq_format(t->hs, be_store_next_hseq());
	snprintf(t->vttl, NUM_SIZE, "%" PRId64, vttl);
	snprintf(t->mttl, NUM_SIZE, "%" PRId64,
		 add_sat(vttl, sc->ttl.ttl_s * 1000));
	snprintf(t->mt, NUM_SIZE, "%" PRId64, it->meta.mtime_ns);
	snprintf(t->ct, NUM_SIZE, "%" PRId64, it->meta.ctime_ns);
	snprintf(t->uid, NUM_SIZE, "%" PRId64, (int64_t)it->meta.uid);
	snprintf(t->gid, NUM_SIZE, "%" PRId64, (int64_t)it->meta.gid);
	snprintf(t->mode, NUM_SIZE, "%" PRId64,
		 (int64_t)(it->meta.mode & 07777));
	return 0;
}

/*
 * Whether the transaction may put 'it' (else the put script does).  Not
 * on a Cluster: a chunk's names span slots, which one WATCH or EXISTS
 * cannot (the scripts go per name, each to its node).
 */
static bool tx_eligible(const struct be_store_config *sc,
			const struct be_put_item *it)
{
	return it->mode == BE_PUT_COPYUP && !sc->cluster && sc->host_id &&
	       strlen(sc->host_id) < sizeof(it->meta.host) &&
	       be_name_classify(&sc->ks, it->name) == BE_NAME_SESSION &&
	       !be_store_is_indexed(sc, it->name);
}

/* The put script's isnum(): an optional '-' and decimal digits. */
static bool is_num(const char *s)
{
	if (*s == '-')
		s++;
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/*
 * The put script's numcmp(): compares the decimal integers 'a' and 'b'
 * (is_num() both) exactly, whatever their length: -1, 0 or 1.
 */
static int num_cmp(const char *a, const char *b)
{
	bool na = *a == '-', nb = *b == '-';
	size_t la, lb;
	int c;

	if (na != nb)
		return na ? -1 : 1;
	if (na)
		return num_cmp(b + 1, a + 1);
	while (*a == '0')
		a++;
	while (*b == '0')
		b++;
	la = strlen(a);
	lb = strlen(b);
	if (la != lb)
		return la < lb ? -1 : 1;
	c = strcmp(a, b);
	return c < 0 ? -1 : c > 0;
}

/* An HMGET field as a C string, NULL for nil (or anything not a string). */
static const char *field(const redisReply *h, size_t i)
{
	if (h->type != REDIS_REPLY_ARRAY || i >= h->elements ||
	    h->element[i]->type != REDIS_REPLY_STRING)
		return NULL;
	return h->element[i]->str;
}

/*
 * Applies lua_put's stale and COPYUP rules (store.c) to what the second
 * read found of 't''s name: PTTL of K, EXISTS of M, and HMGET of M's
 * host, hs, wv, del, mt.  Sets t->action, and for a write t->wv and
 * t->del.  -EPROTO for replies of the wrong type.
 */
static int tx_decide(struct tx_put *t, const struct be_store_config *sc,
		     int64_t now_ms, const redisReply *pttl,
		     const redisReply *mexists, const redisReply *h)
{
	const char *host = field(h, 0), *hs = field(h, 1), *wv = field(h, 2);
	const char *mt = field(h, 4);
	bool e, m, refuse = false;
	long long p, old_wv = 0;
	char *end;

	if (pttl->type != REDIS_REPLY_INTEGER ||
	    mexists->type != REDIS_REPLY_INTEGER ||
	    h->type != REDIS_REPLY_ARRAY || h->elements != 5)
		return -EPROTO;
	if (host && hs && !strcmp(host, sc->host_id) && is_num(hs) &&
	    strlen(hs) == strlen(t->hs) && num_cmp(hs, t->hs) >= 0) {
		t->action = TX_DONE;
		return 0;
	}
	p = pttl->integer;
	e = p != -2;
	m = mexists->integer != 0;
	if (e && !m) {
		/* A value without meta (phpredis): its mtime from its PTTL. */
		double ours = (double)t->it->meta.mtime_ns / 1e6;
		double theirs = (double)now_ms -
				((double)sc->ttl.ttl_s * 1000 - (double)p);

		refuse = p < 0 || ours <= theirs;
	} else if (e || m) {
		refuse = !mt || !is_num(mt) || num_cmp(mt, t->mt) >= 0;
	}
	if (refuse) {
		t->action = TX_REFUSE;
		return 0;
	}
	if (wv) {
		errno = 0;
		old_wv = strtoll(wv, &end, 10);
		if (errno || *end || end == wv || old_wv < 0)
			old_wv = 0;
	}
	snprintf(t->wv, NUM_SIZE, "%lld", old_wv + 1);
	t->del = field(h, 3) != NULL;
	t->action = TX_WRITE;
	return 0;
}

/* Sets every argument list of 't''s write; 'host' is sc's host id. */
static void tx_put_commands(struct tx_put *t, const char *host)
{
	const char *hset[20] = {
		"HSET", t->mkey, "v",	 "1",	"mt",	t->mt,	"ct",
		t->ct,	"uid",	 t->uid, "gid", t->gid, "mode", t->mode,
		"host", host,	 "hs",	 t->hs, "wv",	t->wv,
	};
	size_t i;

	t->set[0] = "SET";
	t->set[1] = t->vkey;
	t->set[2] = t->it->data ? t->it->data : "";
	t->set[3] = "PX";
	t->set[4] = t->vttl;
	for (i = 0; i < 5; i++)
		t->setlen[i] = i == 2 ? t->it->len : strlen(t->set[i]);
	memcpy(t->hset, hset, sizeof(hset));
	t->hdel[0] = "HDEL";
	t->hdel[1] = t->mkey;
	t->hdel[2] = "del";
	t->pexpire[0] = "PEXPIRE";
	t->pexpire[1] = t->mkey;
	t->pexpire[2] = t->mttl;
}

/*
 * Ends a check that writes nothing: a WATCH left behind would abort a
 * later EXEC.  A connection that did not take UNWATCH is closed.
 */
static void unwatch(struct be_conn *c)
{
	const char *argv[1] = { "UNWATCH" };
	redisReply *r;

	if (be_conn_command(c, &r, 1, argv, NULL, BE_CMD_NORETRY)) {
		be_conn_close(c);
		return;
	}
	if (r->type == REDIS_REPLY_ERROR)
		be_conn_close(c);
	freeReplyObject(r);
}

static void free_replies(redisReply **r, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		freeReplyObject(r[i]);
}

/*
 * The check: MULTI + DISCARD (were MULTI refused, the write's commands
 * would run outside any transaction, so it is tried first), WATCH and
 * EXISTS of every key of the chunk.  '*found' is EXISTS's count.  0, 1
 * when the server refused a command (scripts from now on), or -errno.
 */
static int tx_check(struct be_conn *c, struct tx_put *tx, size_t k,
		    long long *found)
{
	const char *watch[TX_KEYS + 1], *exists[TX_KEYS + 1];
	const char *multi[1] = { "MULTI" }, *discard[1] = { "DISCARD" };
	struct be_cmd cmds[4] = {
		{ 1, multi, NULL },
		{ 1, discard, NULL },
		{ (int)(2 * k + 1), watch, NULL },
		{ (int)(2 * k + 1), exists, NULL },
	};
	redisReply *r[4];
	size_t i;
	int ret;

	watch[0] = "WATCH";
	exists[0] = "EXISTS";
	for (i = 0; i < k; i++) {
		watch[1 + 2 * i] = exists[1 + 2 * i] = tx[i].vkey;
		watch[2 + 2 * i] = exists[2 + 2 * i] = tx[i].mkey;
	}
	ret = be_conn_pipeline(c, cmds, 4, r, 0);
	if (ret)
		return ret;
	be_conn_mark(c, MARK_WATCHING);
	if (r[0]->type == REDIS_REPLY_ERROR ||
	    r[1]->type == REDIS_REPLY_ERROR ||
	    r[2]->type == REDIS_REPLY_ERROR ||
	    r[3]->type != REDIS_REPLY_INTEGER) {
		/*
		 * A refused DISCARD leaves the connection queueing, a refused
		 * UNWATCH its keys watched: a new connection starts clean.
		 */
		atomic_store(&tx_refused, true);
		be_conn_close(c);
		ret = 1;
	} else {
		*found = r[3]->integer;
	}
	free_replies(r, 4);
	return ret;
}

/*
 * The second read, when the check found keys: PTTL K, EXISTS M and HMGET
 * of M for each name, then tx_decide().  0, 1 (a reply the rule cannot
 * read: scripts for the chunk) or -errno.
 */
static int tx_read(struct be_conn *c, const struct be_store_config *sc,
		   struct tx_put *tx, size_t k, int64_t now_ms)
{
	const char *argv[TX_CHUNK][11];
	struct be_cmd cmds[3 * TX_CHUNK] = { { 0 } };
	redisReply *r[3 * TX_CHUNK];
	size_t i;
	int ret;

	for (i = 0; i < k; i++) {
		const char *a[11] = {
			"PTTL",	 tx[i].vkey, "EXISTS", tx[i].mkey,
			"HMGET", tx[i].mkey, "host",   "hs",
			"wv",	 "del",	     "mt",
		};

		memcpy(argv[i], a, sizeof(a));
		cmds[3 * i] = (struct be_cmd){ 2, &argv[i][0], NULL };
		cmds[3 * i + 1] = (struct be_cmd){ 2, &argv[i][2], NULL };
		cmds[3 * i + 2] = (struct be_cmd){ 7, &argv[i][4], NULL };
	}
	ret = be_conn_pipeline(c, cmds, 3 * k, r, 0);
	if (ret)
		return ret;
	for (i = 0; i < k && !ret; i++)
		if (tx_decide(&tx[i], sc, now_ms, r[3 * i], r[3 * i + 1],
			      r[3 * i + 2]))
			ret = 1;
	free_replies(r, 3 * k);
	return ret;
}

/*
 * The write: MULTI, the commands of every TX_WRITE name, EXEC, on the
 * connection that sent the WATCH (never resent elsewhere).  Sets the
 * results of the written names.  0 (written, or refused ones left as they
 * are), 2 when EXEC aborted (a key changed since the check: check again),
 * 1 when the server refused the transaction (scripts for the chunk), or
 * -errno of the transport (nothing known of the write: check again).
 */
static int tx_write(struct be_conn *c, const struct be_store_config *sc,
		    struct tx_put *tx, size_t k, int *results)
{
	static const char *const multi[1] = { "MULTI" }, *exec[1] = { "EXEC" };
	struct be_cmd cmds[TX_CMDS];
	redisReply *r[TX_CMDS];
	size_t owner[TX_CMDS];
	const redisReply *x;
	size_t i, n = 0, j;
	int ret;

	cmds[n++] = (struct be_cmd){ 1, (const char **)multi, NULL };
	for (i = 0; i < k; i++) {
		if (tx[i].action != TX_WRITE)
			continue;
		tx_put_commands(&tx[i], sc->host_id);
		owner[n] = i;
		cmds[n++] = (struct be_cmd){ 5, tx[i].set, tx[i].setlen };
		owner[n] = i;
		cmds[n++] = (struct be_cmd){ 20, tx[i].hset, NULL };
		if (tx[i].del) {
			owner[n] = i;
			cmds[n++] = (struct be_cmd){ 3, tx[i].hdel, NULL };
		}
		owner[n] = i;
		cmds[n++] = (struct be_cmd){ 3, tx[i].pexpire, NULL };
	}
	cmds[n++] = (struct be_cmd){ 1, (const char **)exec, NULL };
	/* A connect since the WATCH would leave the write unguarded. */
	if (!(be_conn_marks(c) & MARK_WATCHING))
		return 2;
	ret = be_conn_pipeline(c, cmds, n, r, BE_CMD_NORETRY);
	if (ret)
		return ret;
	x = r[n - 1];
	if (x->type == REDIS_REPLY_NIL) {
		ret = 2;
	} else if (x->type != REDIS_REPLY_ARRAY || x->elements != n - 2) {
		/*
		 * EXECABORT (a command refused when queued: OOM, an ACL) or
		 * EXEC itself refused, which leaves the connection queueing.
		 */
		if (x->type == REDIS_REPLY_ERROR &&
		    strncmp(x->str, "EXECABORT", 9) != 0)
			be_conn_close(c);
		ret = 1;
	} else {
		for (i = 0; i < k; i++)
			if (tx[i].action == TX_WRITE)
				results[tx[i].idx] = 0;
		for (j = 1; j < n - 1; j++)
			if (x->element[j - 1]->type == REDIS_REPLY_ERROR &&
			    !results[tx[owner[j]].idx])
				results[tx[owner[j]].idx] =
					be_store_reply_errno(x->element[j - 1]);
	}
	free_replies(r, n);
	return ret;
}

/*
 * Puts the chunk 'tx' of 'k' names by transaction and sets their results.
 * 0, 1 when the chunk must go by script instead (its results unset), or
 * -errno of the transport.
 */
static int tx_chunk(struct be_conn *c, const struct be_store_config *sc,
		    struct tx_put *tx, size_t k, int *results)
{
	int64_t now_ms;
	long long found;
	size_t i, writes;
	int ret = 2, tries;

	for (tries = 0; tries < TX_TRIES && ret == 2; tries++) {
		now_ms = ns_to_ms(be_real_ns());
		ret = tx_check(c, tx, k, &found);
		if (ret)
			return ret;
		/* As found by a check that found no key of the chunk. */
		for (i = 0; i < k; i++) {
			tx[i].action = TX_WRITE;
			strcpy(tx[i].wv, "1");
			tx[i].del = false;
		}
		if (found) {
			ret = tx_read(c, sc, tx, k, now_ms);
			if (ret) {
				unwatch(c);
				return ret;
			}
		}
		writes = 0;
		for (i = 0; i < k; i++) {
			if (tx[i].action == TX_REFUSE)
				results[tx[i].idx] = -EEXIST;
			else if (tx[i].action == TX_DONE)
				results[tx[i].idx] = 0;
			else
				writes++;
		}
		if (!writes) {
			unwatch(c);
			return 0;
		}
		if (test_hook)
			test_hook(test_hook_arg);
		ret = tx_write(c, sc, tx, k, results);
		/* The write may or may not have run: check again. */
		if (ret < 0)
			ret = 2;
	}
	return ret == 2 ? 1 : ret;
}

/*
 * Puts items[idx[0..n-1]] by the put script, pipelined, and sets their
 * results.  0 or -errno of the transport (then every one of them holds it).
 */
static int scripts_many(struct be_conn *c, const struct be_store_config *sc,
			const struct be_put_item *items, const size_t *idx,
			size_t n, int *results)
{
	struct be_put_call **calls;
	redisReply **replies;
	struct be_cmd *cmds;
	size_t *sent;
	size_t i, nsent = 0;
	int ret = -ENOMEM;

	calls = calloc(n + 1, sizeof(*calls));
	cmds = calloc(n + 1, sizeof(*cmds));
	replies = calloc(n + 1, sizeof(*replies));
	sent = calloc(n + 1, sizeof(*sent));
	if (!calls || !cmds || !replies || !sent) {
		for (i = 0; i < n; i++)
			results[idx[i]] = -ENOMEM;
		goto out_free;
	}
	for (i = 0; i < n; i++) {
		calls[i] = be_store_put_call_new(sc, &items[idx[i]],
						 &results[idx[i]]);
		if (!calls[i])
			continue;
		be_store_put_call_cmd(calls[i], &cmds[nsent]);
		sent[nsent++] = idx[i];
	}
	ret = 0;
	if (nsent)
		ret = be_conn_pipeline(c, cmds, nsent, replies, 0);
	for (i = 0; i < nsent; i++) {
		if (ret) {
			results[sent[i]] = ret;
			continue;
		}
		results[sent[i]] = be_store_put_call_result(
			c, sc, &items[sent[i]], replies[i]);
		freeReplyObject(replies[i]);
	}
out_free:
	for (i = 0; calls && i < n; i++)
		be_store_put_call_free(calls[i]);
	free(calls);
	free(cmds);
	free(replies);
	free(sent);
	return ret;
}

/* Whether items[idx] has the name of one already in 'tx' (k of them). */
static bool tx_has_name(const struct tx_put *tx, size_t k,
			const struct be_put_item *it)
{
	size_t i;

	for (i = 0; i < k; i++)
		if (!strcmp(tx[i].it->name, it->name))
			return true;
	return false;
}

int be_store_put_many(struct be_conn *c, const struct be_store_config *sc,
		      const struct be_put_item *items, size_t n, int *results)
{
	int64_t now_ms = ns_to_ms(be_real_ns());
	struct tx_put *tx;
	size_t *script;
	size_t i = 0, k, nscript = 0;
	int ret = 0;

	script = calloc(n + 1, sizeof(*script));
	tx = calloc(TX_CHUNK, sizeof(*tx));
	if (!script || !tx) {
		for (i = 0; i < n; i++)
			results[i] = -ENOMEM;
		ret = -ENOMEM;
		goto out_free;
	}
	for (k = 0; k < n; k++)
		results[k] = 0;
	while (i < n) {
		/* A chunk; a name already in it waits for the scripts. */
		for (k = 0; i < n && k < TX_CHUNK && !ret; i++) {
			if (atomic_load(&tx_refused) ||
			    !tx_eligible(sc, &items[i]) ||
			    tx_has_name(tx, k, &items[i]))
				script[nscript++] = i;
			else
				ret = tx_put_init(&tx[k++], sc, items, i,
						  now_ms);
		}
		if (!ret && k)
			ret = tx_chunk(c, sc, tx, k, results);
		if (ret == 1)
			ret = 0;
		else
			k = 0;
		while (k > 0)
			script[nscript++] = tx[--k].idx;
		for (k = 0; k < TX_CHUNK; k++)
			tx_put_release(&tx[k]);
		if (ret) {
			/* Nothing more is sent; any put may have been applied. */
			for (k = 0; k < n; k++)
				results[k] = ret;
			goto out_free;
		}
	}
	ret = scripts_many(c, sc, items, script, nscript, results);
out_free:
	free(script);
	free(tx);
	return ret;
}
