/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzzes RESP replies as the transport reads them (backend/conn.c: the
 * reader of be_resp_reader_new(), fed what recv() returned): the bytes a
 * hostile or broken server sends, once in one piece and once split at
 * every byte.  Both must give the same replies and the same verdict (a
 * protocol error, a bulk string refused at its header, or neither), and
 * nothing may crash or leak.
 */
#include <hiredis/hiredis.h>

#include "fuzz.h"
#include "resp.h"

#define MAX_REPLIES 64

struct run {
	redisReply *replies[MAX_REPLIES];
	size_t n;
	bool error;
};

/* Reads every reply 'r' holds into 'run'; false once it failed. */
static bool drain(redisReader *r, struct run *run)
{
	void *reply;

	while (run->n < MAX_REPLIES) {
		reply = NULL;
		if (redisReaderGetReply(r, &reply) != REDIS_OK) {
			run->error = true;
			return false;
		}
		if (!reply) {
			/* conn.c's next_reply(): a refused header ends it. */
			if (be_resp_check_pending(r)) {
				run->error = true;
				return false;
			}
			break;
		}
		run->replies[run->n++] = reply;
	}
	return true;
}

/* Feeds 'size' bytes of 'data' in pieces of 'step' bytes. */
static void feed(const uint8_t *data, size_t size, size_t step, struct run *run)
{
	redisReader *r = be_resp_reader_new();
	size_t off, n;

	FUZZ_CHECK(r);
	for (off = 0; off < size && run->n < MAX_REPLIES; off += n) {
		n = size - off < step ? size - off : step;
		if (redisReaderFeed(r, (const char *)data + off, n) !=
		    REDIS_OK) {
			run->error = true;
			break;
		}
		if (!drain(r, run))
			break;
	}
	be_resp_reader_free(r);
}

static bool equal(const redisReply *a, const redisReply *b)
{
	size_t i;

	if (a->type != b->type || a->integer != b->integer ||
	    a->len != b->len || a->elements != b->elements)
		return false;
	if (a->len && memcmp(a->str, b->str, a->len))
		return false;
	for (i = 0; i < a->elements; i++)
		if (!equal(a->element[i], b->element[i]))
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run whole = { 0 }, bytes = { 0 };
	size_t i;

	feed(data, size, size ? size : 1, &whole);
	feed(data, size, 1, &bytes);
	/* Split at every byte, a reply may be complete sooner: compare the
	 * replies both runs got. */
	if (whole.n == bytes.n)
		FUZZ_CHECK(whole.error == bytes.error);
	for (i = 0; i < whole.n && i < bytes.n; i++)
		FUZZ_CHECK(equal(whole.replies[i], bytes.replies[i]));
	for (i = 0; i < whole.n; i++)
		freeReplyObject(whole.replies[i]);
	for (i = 0; i < bytes.n; i++)
		freeReplyObject(bytes.replies[i]);
	return 0;
}
