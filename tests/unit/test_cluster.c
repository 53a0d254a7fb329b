/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of backend/cluster.c: the pure parsers (CLUSTER SLOTS
 * replies, MOVED and ASK errors, the first key of a command), then the
 * router against a real two-master cluster made here (two redis-servers
 * joined by CLUSTER MEET, half the slots each): a pipeline over both
 * masters, a MULTI block, a MOVED after a slot's owner changed, an ASK
 * while a slot migrates, and per-master commands.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "cluster.h"
#include "conn.h"
#include "layout.h"
#include "resp.h"
#include "url.h"
#include "testutil.h"

/* Parses the RESP text 'resp' into a reply (NULL when it does not parse). */
static redisReply *parse(const char *resp)
{
	redisReader *r = be_resp_reader_new();
	void *reply = NULL;

	if (redisReaderFeed(r, resp, strlen(resp)) != REDIS_OK ||
	    redisReaderGetReply(r, &reply) != REDIS_OK)
		reply = NULL;
	be_resp_reader_free(r);
	return reply;
}

static void test_slots_parse(void)
{
	struct be_slot_map *map = malloc(sizeof(*map));
	redisReply *r;

	/* Two ranges on one master, one on another with a replica. */
	r = parse(
		"*3\r\n"
		"*3\r\n:0\r\n:99\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n"
		"*4\r\n:100\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:7001\r\n"
		"*2\r\n$9\r\n127.0.0.1\r\n:7002\r\n"
		"*3\r\n:50\r\n:60\r\n*2\r\n$0\r\n\r\n:7003\r\n");
	CHECK(r);
	CHECK(be_cluster_slots_parse(r, "10.0.0.9", map) == 16384);
	CHECK(map->nnodes == 3);
	CHECK(map->slot[0] == 0 && map->slot[99] == 1 - 1);
	CHECK(map->slot[100] == 1 && map->slot[16383] == 1);
	CHECK(!strcmp(map->nodes[1].host, "127.0.0.1") &&
	      map->nodes[1].port == 7001);
	/* An empty host is the node asked. */
	CHECK(map->slot[55] == 2 && !strcmp(map->nodes[2].host, "10.0.0.9") &&
	      map->nodes[2].port == 7003);
	freeReplyObject(r);

	/* Uncovered slots stay unserved. */
	r = parse("*1\r\n*3\r\n:0\r\n:9\r\n*2\r\n$1\r\nh\r\n:1\r\n");
	CHECK(be_cluster_slots_parse(r, NULL, map) == 10);
	CHECK(map->slot[10] == BE_SLOT_NONE);
	freeReplyObject(r);
	r = parse("*0\r\n");
	CHECK(be_cluster_slots_parse(r, NULL, map) == 0);
	freeReplyObject(r);

	/* Wrong shapes. */
	r = parse("*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n");
	CHECK(be_cluster_slots_parse(r, NULL, map) == -EPROTO);
	freeReplyObject(r);
	r = parse("*1\r\n*3\r\n:9\r\n:0\r\n*2\r\n$1\r\nh\r\n:1\r\n");
	CHECK(be_cluster_slots_parse(r, NULL, map) == -EPROTO);
	freeReplyObject(r);
	r = parse("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:0\r\n");
	CHECK(be_cluster_slots_parse(r, NULL, map) == -EPROTO);
	freeReplyObject(r);
	r = parse("*1\r\n*2\r\n:0\r\n:1\r\n");
	CHECK(be_cluster_slots_parse(r, NULL, map) == -EPROTO);
	freeReplyObject(r);
	r = parse("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$0\r\n\r\n:5\r\n");
	CHECK(be_cluster_slots_parse(r, NULL, map) == -EPROTO);
	freeReplyObject(r);
	r = parse("-ERR This instance has cluster support disabled\r\n");
	CHECK(be_cluster_slots_parse(r, NULL, map) == -EPROTO);
	freeReplyObject(r);
	CHECK(be_cluster_slots_parse(NULL, NULL, map) == -EPROTO);
	free(map);
}

static void check_redirect(const char *s, enum be_redirect want,
			   unsigned int slot, const char *host, int port)
{
	char h[64] = "unset";
	unsigned int got_slot = 0;
	int got_port = 0;
	enum be_redirect got;

	got = be_redirect_parse(s, strlen(s), &got_slot, h, sizeof(h),
				&got_port);
	if (got != want) {
		fprintf(stderr, "'%s': redirect %d, want %d\n", s, got, want);
		test_failures++;
		return;
	}
	if (want == BE_REDIRECT_NONE)
		return;
	CHECK(got_slot == slot);
	CHECK(!strcmp(h, host));
	CHECK(got_port == port);
}

static void test_redirect_parse(void)
{
	check_redirect("MOVED 3999 127.0.0.1:6381", BE_REDIRECT_MOVED, 3999,
		       "127.0.0.1", 6381);
	check_redirect("ASK 0 10.0.0.2:7000", BE_REDIRECT_ASK, 0, "10.0.0.2",
		       7000);
	check_redirect("MOVED 16383 ::1:7000", BE_REDIRECT_MOVED, 16383, "::1",
		       7000);
	check_redirect("MOVED 12 :7000", BE_REDIRECT_MOVED, 12, "", 7000);
	check_redirect("MOVED 16384 h:1", BE_REDIRECT_NONE, 0, NULL, 0);
	check_redirect("MOVED 1 h", BE_REDIRECT_NONE, 0, NULL, 0);
	check_redirect("MOVED 1 h:", BE_REDIRECT_NONE, 0, NULL, 0);
	check_redirect("MOVED 1 h:0", BE_REDIRECT_NONE, 0, NULL, 0);
	check_redirect("MOVED 1 h:65536", BE_REDIRECT_NONE, 0, NULL, 0);
	check_redirect("MOVED 1 h:1x", BE_REDIRECT_NONE, 0, NULL, 0);
	check_redirect("MOVED x h:1", BE_REDIRECT_NONE, 0, NULL, 0);
	check_redirect("MOVED  h:1", BE_REDIRECT_NONE, 0, NULL, 0);
	check_redirect("MOVED 1 a b:1", BE_REDIRECT_NONE, 0, NULL, 0);
	check_redirect("MOVED", BE_REDIRECT_NONE, 0, NULL, 0);
	check_redirect("ASKING", BE_REDIRECT_NONE, 0, NULL, 0);
	check_redirect("ERR MOVED 1 h:1", BE_REDIRECT_NONE, 0, NULL, 0);
	check_redirect("TRYAGAIN Multiple keys", BE_REDIRECT_NONE, 0, NULL, 0);
}

/* The first key of the command of words 'argv' (NULL-terminated). */
static const char *first_key(const char **argv)
{
	static char buf[64];
	struct be_cmd cmd = { 0, argv, NULL };
	const char *key;
	size_t len;

	while (argv[cmd.argc])
		cmd.argc++;
	if (!be_cmd_first_key(&cmd, &key, &len))
		return NULL;
	snprintf(buf, sizeof(buf), "%.*s", (int)len, key);
	return buf;
}

static void test_first_key(void)
{
	const char *get[] = { "GET", "k", NULL };
	const char *hset[] = { "hset", "m", "f", "v", NULL };
	const char *eval[] = { "EVALSHA", "abc", "2", "v", "m", "x", NULL };
	const char *eval0[] = { "EVAL", "return 1", "0", "x", NULL };
	const char *evalshort[] = { "EVAL", "return 1", "1", NULL };
	const char *multi[] = { "MULTI", NULL };
	const char *wait[] = { "WAIT", "1", "100", NULL };
	const char *scan[] = { "SCAN", "0", "MATCH", "p*", NULL };
	const char *script[] = { "SCRIPT", "LOAD", "return 1", NULL };
	const char *object[] = { "OBJECT", "ENCODING", "k2", NULL };
	const char *ping[] = { "PING", NULL };
	const char *empty[] = { NULL };

	CHECK(!strcmp(first_key(get), "k"));
	CHECK(!strcmp(first_key(hset), "m"));
	CHECK(!strcmp(first_key(eval), "v"));
	CHECK(!first_key(eval0));
	CHECK(!first_key(evalshort));
	CHECK(!first_key(multi));
	CHECK(!first_key(wait));
	CHECK(!first_key(scan));
	CHECK(!first_key(script));
	CHECK(!strcmp(first_key(object), "k2"));
	CHECK(!first_key(ping));
	CHECK(!first_key(empty));
}

/* A plain connection to one node of the test's cluster. */
static struct be_conn *node_conn(int port)
{
	char host[] = "127.0.0.1";
	struct be_endpoint ep = { .host = host, .port = port };

	return be_conn_new(&ep, 5);
}

/* Runs a command of words on 'c'; its reply, or NULL. */
static redisReply *cmd(struct be_conn *c, const char **argv)
{
	redisReply *r;
	int argc = 0;

	while (argv[argc])
		argc++;
	if (be_conn_command(c, &r, argc, argv, NULL, 0) < 0) {
		fprintf(stderr, "command %s failed: %s\n", argv[0],
			be_conn_errstr(c));
		return NULL;
	}
	return r;
}

/* Runs a command and checks that it answered +OK. */
static void ok(struct be_conn *c, const char **argv)
{
	redisReply *r = cmd(c, argv);

	if (!r || r->type != REDIS_REPLY_STATUS) {
		fprintf(stderr, "%s %s: %s\n", argv[0], argv[1] ? argv[1] : "",
			r && r->str ? r->str : "no reply");
		test_failures++;
	}
	if (r)
		freeReplyObject(r);
}

static bool state_ok(struct be_conn *c)
{
	const char *info[] = { "CLUSTER", "INFO", NULL };
	redisReply *r = cmd(c, info);
	bool yes;

	yes = r && r->type == REDIS_REPLY_STRING &&
	      strstr(r->str, "cluster_state:ok");
	if (r)
		freeReplyObject(r);
	return yes;
}

/* A key with a slot in [lo, hi] into 'buf'. */
static void key_in(char *buf, size_t len, unsigned int lo, unsigned int hi,
		   const char *tag)
{
	unsigned int i, s;

	for (i = 0;; i++) {
		snprintf(buf, len, "%s%u", tag, i);
		s = be_key_slot(buf, strlen(buf));
		if (s >= lo && s <= hi)
			return;
	}
}

static void node_id(struct be_conn *c, char *id, size_t len)
{
	const char *myid[] = { "CLUSTER", "MYID", NULL };
	redisReply *r = cmd(c, myid);

	snprintf(id, len, "%s", r && r->str ? r->str : "");
	if (r)
		freeReplyObject(r);
}

static void test_router(struct test_redis *ra, struct test_redis *rb)
{
	struct be_conn *a = node_conn(ra->port), *b = node_conn(rb->port);
	char pa[16], pb[16], url[128], err[256], ida[64], idb[64];
	char ka[32], kb[32], kc[32], kd[32], tagged[48], slot[16];
	const char *addslots_a[] = { "CLUSTER", "ADDSLOTSRANGE", "0", "8191",
				     NULL };
	const char *addslots_b[] = { "CLUSTER", "ADDSLOTSRANGE", "8192",
				     "16383", NULL };
	const char *meet[] = { "CLUSTER", "MEET", "127.0.0.1", pb, NULL };
	struct be_endpoint ep;
	struct be_conn *c;
	redisReply *rep[8];
	unsigned int n;
	int i;

	snprintf(pa, sizeof(pa), "%d", ra->port);
	snprintf(pb, sizeof(pb), "%d", rb->port);
	ok(a, addslots_a);
	ok(b, addslots_b);
	ok(a, meet);
	for (i = 0; i < 200 && !(state_ok(a) && state_ok(b)); i++)
		usleep(50000);
	CHECK(state_ok(a) && state_ok(b));
	node_id(a, ida, sizeof(ida));
	node_id(b, idb, sizeof(idb));

	snprintf(url, sizeof(url), "redis-cluster://127.0.0.1:%s", pa);
	CHECK(be_url_parse(url, &ep, err, sizeof(err)) == 0);
	c = be_conn_new(&ep, 5);
	CHECK(c && be_conn_is_cluster(c));
	CHECK(be_conn_connect(c) == 0);
	CHECK(be_conn_masters(c, &n) == 0 && n == 2);

	/* One pipeline over both masters, a MULTI block, a WAIT. */
	key_in(ka, sizeof(ka), 0, 8191, "a");
	key_in(kb, sizeof(kb), 8192, 16383, "b");
	snprintf(tagged, sizeof(tagged), "{%s}:x", ka);
	{
		const char *s1[] = { "SET", ka, "1" };
		const char *s2[] = { "SET", kb, "2" };
		const char *g1[] = { "GET", ka };
		const char *g2[] = { "GET", kb };
		const char *mu[] = { "MULTI" };
		const char *s3[] = { "SET", tagged, "3" };
		const char *g3[] = { "GET", tagged };
		const char *ex[] = { "EXEC" };
		struct be_cmd p[8] = { { 3, s1, NULL }, { 3, s2, NULL },
				       { 2, g1, NULL }, { 2, g2, NULL },
				       { 1, mu, NULL }, { 3, s3, NULL },
				       { 2, g3, NULL }, { 1, ex, NULL } };

		CHECK(be_conn_pipeline(c, p, 8, rep, 0) == 0);
		CHECK(rep[0] && rep[0]->type == REDIS_REPLY_STATUS);
		CHECK(rep[2] && rep[2]->type == REDIS_REPLY_STRING &&
		      !strcmp(rep[2]->str, "1"));
		CHECK(rep[3] && rep[3]->type == REDIS_REPLY_STRING &&
		      !strcmp(rep[3]->str, "2"));
		CHECK(rep[7] && rep[7]->type == REDIS_REPLY_ARRAY &&
		      rep[7]->elements == 2 &&
		      !strcmp(rep[7]->element[1]->str, "3"));
		for (i = 0; i < 8; i++)
			if (rep[i])
				freeReplyObject(rep[i]);
	}
	/* Each key is on its own master. */
	{
		const char *ga[] = { "GET", ka, NULL };
		const char *gb[] = { "GET", kb, NULL };
		redisReply *r = cmd(a, ga), *r2 = cmd(b, gb);

		CHECK(r && r->type == REDIS_REPLY_STRING);
		CHECK(r2 && r2->type == REDIS_REPLY_STRING);
		if (r)
			freeReplyObject(r);
		if (r2)
			freeReplyObject(r2);
	}

	/* MOVED: an empty slot of A given to B behind the map's back. */
	key_in(kc, sizeof(kc), 0, 8191, "c");
	snprintf(slot, sizeof(slot), "%u", be_key_slot(kc, strlen(kc)));
	{
		const char *setb[] = { "CLUSTER", "SETSLOT", slot,
				       "NODE",	  idb,	     NULL };
		const char *set[] = { "SET", kc, "moved" };
		const char *gb[] = { "GET", kc, NULL };
		redisReply *r;

		ok(b, setb);
		ok(a, setb);
		CHECK(be_conn_command(c, &rep[0], 3, set, NULL, 0) == 0);
		CHECK(rep[0] && rep[0]->type == REDIS_REPLY_STATUS);
		if (rep[0])
			freeReplyObject(rep[0]);
		r = cmd(b, gb);
		CHECK(r && r->type == REDIS_REPLY_STRING &&
		      !strcmp(r->str, "moved"));
		if (r)
			freeReplyObject(r);
	}

	/* ASK: an empty slot of A migrating to B. */
	key_in(kd, sizeof(kd), 0, 8191, "d");
	snprintf(slot, sizeof(slot), "%u", be_key_slot(kd, strlen(kd)));
	{
		const char *imp[] = { "CLUSTER",   "SETSLOT", slot,
				      "IMPORTING", ida,	      NULL };
		const char *mig[] = { "CLUSTER",   "SETSLOT", slot,
				      "MIGRATING", idb,	      NULL };
		const char *set[] = { "SET", kd, "asked" };
		const char *asking[] = { "ASKING" };
		const char *get[] = { "GET", kd };
		struct be_cmd p[2] = { { 1, asking, NULL }, { 2, get, NULL } };
		struct be_conn *plain_b = node_conn(rb->port);

		ok(b, imp);
		ok(a, mig);
		CHECK(be_conn_command(c, &rep[0], 3, set, NULL, 0) == 0);
		CHECK(rep[0] && rep[0]->type == REDIS_REPLY_STATUS);
		if (rep[0])
			freeReplyObject(rep[0]);
		/* Only B has it, in the slot it imports. */
		CHECK(be_conn_pipeline(plain_b, p, 2, rep, 0) == 0);
		CHECK(rep[1] && rep[1]->type == REDIS_REPLY_STRING &&
		      !strcmp(rep[1]->str, "asked"));
		for (i = 0; i < 2; i++)
			if (rep[i])
				freeReplyObject(rep[i]);
		/* Through the cluster connection it reads back. */
		CHECK(be_conn_command(c, &rep[0], 2, get, NULL, 0) == 0);
		CHECK(rep[0] && rep[0]->type == REDIS_REPLY_STRING &&
		      !strcmp(rep[0]->str, "asked"));
		if (rep[0])
			freeReplyObject(rep[0]);
		be_conn_free(plain_b);
	}

	/* Per-master commands reach both, and only as many as there are. */
	{
		const char *dbsize[] = { "DBSIZE" };
		long long total = 0;
		char where[300];
		struct be_cmd p = { 1, dbsize, NULL };

		for (n = 0; n < 2; n++) {
			CHECK(be_conn_pipeline_at(c, n, &p, 1, rep, 0, where,
						  sizeof(where)) == 0);
			CHECK(strstr(where, "127.0.0.1:"));
			if (rep[0] && rep[0]->type == REDIS_REPLY_INTEGER)
				total += rep[0]->integer;
			if (rep[0])
				freeReplyObject(rep[0]);
		}
		CHECK(total == 5);
		CHECK(be_conn_pipeline_at(c, 2, &p, 1, rep, 0, NULL, 0) ==
		      -ESTALE);
	}
	be_conn_free(c);
	be_endpoint_release(&ep);
	be_conn_free(a);
	be_conn_free(b);
}

/* A redis-cluster:// URL to a server without cluster mode. */
static void test_not_a_cluster(struct test_redis *plain)
{
	char url[128], err[256];
	struct be_endpoint ep;
	struct be_conn *c;

	snprintf(url, sizeof(url), "redis-cluster://127.0.0.1:%d", plain->port);
	CHECK(be_url_parse(url, &ep, err, sizeof(err)) == 0);
	c = be_conn_new(&ep, 2);
	CHECK(be_conn_connect(c) == -EINVAL);
	CHECK(strstr(be_conn_errstr(c), "not a cluster node"));
	be_conn_free(c);
	be_endpoint_release(&ep);
}

int main(void)
{
	const char *conf = "cluster-enabled yes\n"
			   "cluster-config-file nodes.conf\n"
			   "cluster-node-timeout 1000";
	struct test_redis a, b, plain;
	int ret;

	test_slots_parse();
	test_redirect_parse();
	test_first_key();
	ret = test_redis_start(&a, conf);
	if (ret)
		return ret;
	ret = test_redis_start(&b, conf);
	if (ret) {
		test_redis_stop(&a);
		return ret;
	}
	ret = test_redis_start(&plain, NULL);
	if (ret == 0) {
		test_not_a_cluster(&plain);
		test_redis_stop(&plain);
	}
	test_router(&a, &b);
	test_redis_stop(&a);
	test_redis_stop(&b);
	return test_exit();
}
