/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of backend/resp.c, the transport's RESP reader: replies are
 * the same as hiredis's own reader makes (freed by freeReplyObject()),
 * and the hostile array headers fuzz_resp found (a count hiredis 0.14
 * would allocate before any element arrives) are refused as the server's
 * error.  No
 * Redis needed.
 */
#include <string.h>

#include <hiredis/hiredis.h>

#include "resp.h"
#include "testutil.h"

/*
 * Feeds 'resp' to a new reader: the first reply (new) or NULL, and in
 * '*failed' whether the reader failed, in '*refused' whether it refused.
 */
static redisReply *read_one(const char *resp, bool *failed, bool *refused)
{
	redisReader *r = be_resp_reader_new();
	void *reply = NULL;

	*failed = *refused = false;
	CHECK(r);
	if (!r)
		return NULL;
	if (redisReaderFeed(r, resp, strlen(resp)) != REDIS_OK ||
	    redisReaderGetReply(r, &reply) != REDIS_OK) {
		*failed = true;
		*refused = be_resp_refused(r);
		reply = NULL;
	}
	be_resp_reader_free(r);
	return reply;
}

static void test_replies(void)
{
	bool failed, refused;
	redisReply *r;

	r = read_one("*3\r\n$3\r\nfoo\r\n:-7\r\n*2\r\n$-1\r\n+OK\r\n", &failed,
		     &refused);
	CHECK(r && !failed);
	if (!r)
		return;
	CHECK(r->type == REDIS_REPLY_ARRAY && r->elements == 3);
	CHECK(r->element[0]->type == REDIS_REPLY_STRING &&
	      r->element[0]->len == 3 && !strcmp(r->element[0]->str, "foo"));
	CHECK(r->element[1]->type == REDIS_REPLY_INTEGER &&
	      r->element[1]->integer == -7);
	CHECK(r->element[2]->type == REDIS_REPLY_ARRAY &&
	      r->element[2]->elements == 2);
	CHECK(r->element[2]->element[0]->type == REDIS_REPLY_NIL);
	CHECK(r->element[2]->element[1]->type == REDIS_REPLY_STATUS &&
	      !strcmp(r->element[2]->element[1]->str, "OK"));
	freeReplyObject(r);

	r = read_one("-ERR no\r\n", &failed, &refused);
	CHECK(r && r->type == REDIS_REPLY_ERROR && !strcmp(r->str, "ERR no"));
	freeReplyObject(r);
	r = read_one("*0\r\n", &failed, &refused);
	CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 0);
	freeReplyObject(r);
	r = read_one("*-1\r\n", &failed, &refused);
	CHECK(r && r->type == REDIS_REPLY_NIL);
	freeReplyObject(r);
}

static void test_hostile(void)
{
	bool failed, refused;

	/* hiredis's own reader callocs 16 GB for this. */
	CHECK(!read_one("*2147483647\r\n", &failed, &refused));
	CHECK(failed && refused);
	CHECK(!read_one("*1048577\r\n", &failed, &refused));
	CHECK(failed && refused);
	/* A negative count other than -1 (nil): Debian's hiredis refuses it
	 * itself, ours would too. */
	CHECK(!read_one("*-5\r\n", &failed, &refused));
	CHECK(failed);
	/* Nested: the outer array is freed with the refusal. */
	CHECK(!read_one("*2\r\n:1\r\n*2000000000\r\n", &failed, &refused));
	CHECK(failed && refused);
	/* Not a refusal: a protocol error of hiredis's own. */
	CHECK(!read_one("?\r\n", &failed, &refused));
	CHECK(failed && !refused);
}

/*
 * Feeds 'len' bytes of 'resp' to a reader taking bulk strings up to
 * 'max_bulk': whether it gave no reply, no error and then
 * be_resp_check_pending() refused what it waits for.
 */
static bool pending_refused(const char *resp, size_t len, size_t max_bulk)
{
	redisReader *r = be_resp_reader_new();
	void *reply = NULL;
	bool refused = false;

	CHECK(r);
	if (!r)
		return false;
	be_resp_set_max_bulk(r, max_bulk);
	CHECK(redisReaderFeed(r, resp, len) == REDIS_OK);
	CHECK(redisReaderGetReply(r, &reply) == REDIS_OK);
	if (reply)
		freeReplyObject(reply);
	else
		refused = be_resp_check_pending(r);
	be_resp_reader_free(r);
	return refused;
}

static void test_bulk_limit(void)
{
	char big[200];

	/* The default: a header over BE_RESP_MAX_BULK, refused at once. */
	CHECK(pending_refused("$134217729\r\n", 12, BE_RESP_MAX_BULK));
	CHECK(pending_refused("$9223372036854775807\r\nab", 24,
			      BE_RESP_MAX_BULK));
	/* Even before the header's CRLF is there. */
	CHECK(pending_refused("$99999999999", 12, BE_RESP_MAX_BULK));
	/* At the limit it waits for the rest. */
	CHECK(!pending_refused("$134217728\r\nabc", 15, BE_RESP_MAX_BULK));
	CHECK(!pending_refused("$1342", 5, BE_RESP_MAX_BULK));
	/* Nested in an array, after a whole element. */
	CHECK(pending_refused("*2\r\n$1\r\na\r\n$17\r\n", 16, 16));
	CHECK(!pending_refused("*2\r\n$1\r\na\r\n$16\r\n", 16, 16));
	/* A whole string at the limit is a reply. */
	CHECK(!pending_refused("$16\r\n0123456789abcdef\r\n", 23, 16));
	/* Nil, and nothing yet. */
	CHECK(!pending_refused("$-1\r\n", 5, 16));
	CHECK(!pending_refused("$", 1, 16));
	/* A line item that never ends: refused once past the limit. */
	memset(big, 'x', sizeof(big));
	big[0] = '+';
	CHECK(!pending_refused(big, 16 + 32, 16));
	CHECK(pending_refused(big, sizeof(big), 16));
	/* A bulk string trickling in below its announced length. */
	CHECK(!pending_refused("$17\r\n0123", 9, 100));
}

int main(void)
{
	test_replies();
	test_hostile();
	test_bulk_limit();
	return test_exit();
}
