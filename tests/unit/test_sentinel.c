/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of backend/sentinel.c's pure parts: the replies to SENTINEL
 * get-master-addr-by-name, SENTINEL master and ROLE, each fed to hiredis's
 * reader as the bytes a server sends (RESP2), and the record of the
 * master's address and its generation.  No Redis needed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "sentinel.h"
#include "testutil.h"

/* The reply hiredis reads from the RESP bytes 'resp' (new; NULL: bad). */
static redisReply *reply_of(const char *resp)
{
	redisReader *r = redisReaderCreate();
	void *reply = NULL;

	if (!r)
		return NULL;
	if (redisReaderFeed(r, resp, strlen(resp)) != REDIS_OK ||
	    redisReaderGetReply(r, &reply) != REDIS_OK)
		reply = NULL;
	redisReaderFree(r);
	return reply;
}

static void check_addr(const char *resp, int want, const char *host, int port)
{
	redisReply *r = reply_of(resp);
	char got[64] = "";
	int p = 0, ret;

	CHECK(r);
	if (!r)
		return;
	ret = be_sentinel_parse_addr(r, got, sizeof(got), &p);
	if (ret != want || (want == 1 && (strcmp(got, host) || p != port))) {
		fprintf(stderr, "%s: got %d '%s':%d, want %d '%s':%d\n", resp,
			ret, got, p, want, host ? host : "", port);
		test_failures++;
	}
	freeReplyObject(r);
}

static void test_addr(void)
{
	check_addr("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n", 1, "127.0.0.1",
		   6380);
	check_addr("*2\r\n$3\r\n::1\r\n$5\r\n65535\r\n", 1, "::1", 65535);
	/* The sentinel does not know the master. */
	check_addr("*-1\r\n", 0, NULL, 0);
	check_addr("$-1\r\n", 0, NULL, 0);
	check_addr("-NOAUTH Authentication required.\r\n", -EPROTO, NULL, 0);
	check_addr("*1\r\n$1\r\nh\r\n", -EPROTO, NULL, 0);
	check_addr("*2\r\n$1\r\nh\r\n$1\r\nx\r\n", -EPROTO, NULL, 0);
	check_addr("*2\r\n$1\r\nh\r\n$1\r\n0\r\n", -EPROTO, NULL, 0);
	check_addr("*2\r\n$1\r\nh\r\n$5\r\n70000\r\n", -EPROTO, NULL, 0);
	check_addr("*2\r\n$0\r\n\r\n$1\r\n1\r\n", -EPROTO, NULL, 0);
	check_addr("*2\r\n:1\r\n$1\r\n1\r\n", -EPROTO, NULL, 0);
	/* A host that does not fit the buffer is refused, not cut. */
	check_addr(
		"*2\r\n$70\r\n"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"\r\n$1\r\n1\r\n",
		-EPROTO, NULL, 0);
}

static void check_role(const char *resp, int want, const char *role)
{
	redisReply *r = reply_of(resp);
	char got[32] = "";
	int ret;

	CHECK(r);
	if (!r)
		return;
	ret = be_role_parse(r, got, sizeof(got));
	if (ret != want || (role && strcmp(got, role))) {
		fprintf(stderr, "%s: got %d '%s', want %d '%s'\n", resp, ret,
			got, want, role ? role : "");
		test_failures++;
	}
	freeReplyObject(r);
}

static void test_role(void)
{
	/* ROLE of a master: role, offset, replicas. */
	check_role("*3\r\n$6\r\nmaster\r\n:3129659\r\n*1\r\n*3\r\n$9\r\n"
		   "127.0.0.1\r\n$4\r\n9001\r\n$7\r\n3129242\r\n",
		   1, NULL);
	check_role("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:9000\r\n"
		   "$9\r\nconnected\r\n:3167038\r\n",
		   0, "slave");
	check_role("*2\r\n$8\r\nsentinel\r\n*0\r\n", 0, "sentinel");
	check_role("-NOPERM this user has no permissions\r\n", -EPROTO, NULL);
	check_role("*0\r\n", -EPROTO, NULL);
	check_role(":1\r\n", -EPROTO, NULL);
}

static void check_master(const char *resp, int want, bool failing,
			 long long epoch)
{
	redisReply *r = reply_of(resp);
	bool f = !failing;
	long long e = -1;
	int ret;

	CHECK(r);
	if (!r)
		return;
	ret = be_sentinel_parse_master(r, &f, &e);
	if (ret != want || (want == 0 && (f != failing || e != epoch))) {
		fprintf(stderr, "%s: got %d %d %lld, want %d %d %lld\n", resp,
			ret, f, e, want, failing, epoch);
		test_failures++;
	}
	freeReplyObject(r);
}

static void test_master(void)
{
	check_master("*6\r\n$4\r\nname\r\n$1\r\nm\r\n$5\r\nflags\r\n"
		     "$6\r\nmaster\r\n$12\r\nconfig-epoch\r\n$1\r\n7\r\n",
		     0, false, 7);
	check_master("*4\r\n$5\r\nflags\r\n$34\r\n"
		     "master,o_down,failover_in_progress\r\n"
		     "$12\r\nconfig-epoch\r\n$2\r\n12\r\n",
		     0, true, 12);
	/* No flags field: not a master's state. */
	check_master("*2\r\n$4\r\nname\r\n$1\r\nm\r\n", -EPROTO, false, 0);
	check_master("*3\r\n$5\r\nflags\r\n$1\r\nx\r\n$1\r\ny\r\n", -EPROTO,
		     false, 0);
	check_master("-ERR No such master with that name\r\n", -EPROTO, false,
		     0);
}

/* The record: the first address is generation 1, a change the next. */
static void test_confirm(void)
{
	struct be_sentinel *s = be_sentinel_new("m");
	char host[64];
	int port;

	CHECK(s);
	if (!s)
		return;
	CHECK(be_sentinel_add(s, "127.0.0.1", 26379) == 0);
	CHECK(be_sentinel_gen(s) == 0);
	CHECK(!be_sentinel_master(s, host, sizeof(host), &port));
	CHECK(be_sentinel_confirm(s, "10.0.0.1", 6379) == 1);
	CHECK(be_sentinel_confirm(s, "10.0.0.1", 6379) == 1);
	CHECK(be_sentinel_failovers(s) == 0);
	CHECK(be_sentinel_confirm(s, "10.0.0.2", 6379) == 2);
	CHECK(be_sentinel_confirm(s, "10.0.0.2", 6380) == 3);
	CHECK(be_sentinel_failovers(s) == 2);
	CHECK(be_sentinel_master(s, host, sizeof(host), &port));
	CHECK(!strcmp(host, "10.0.0.2") && port == 6380);
	CHECK(!be_sentinel_holding(s));
	CHECK(be_sentinel_ref(s) == s);
	be_sentinel_unref(s);
	CHECK(be_sentinel_set_password(s, "pw") == 0);
	be_sentinel_unref(s);
}

int main(void)
{
	test_addr();
	test_role();
	test_master();
	test_confirm();
	return test_exit();
}
